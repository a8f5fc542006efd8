"""The generated modular-addition task (Power et al. 2022) and its ``"modadd"`` data entry."""

from __future__ import annotations

import pytest
import torch

from landscape.data import DataSpec, load_data, load_splits
from landscape.data.modadd import modular_addition
from landscape.errors import LandscapeError


def test_all_pairs_split_deterministically() -> None:
    train, test = load_splits(DataSpec("modadd", kwargs={"p": 13, "train_fraction": 0.3}))
    assert len(train) == round(0.3 * 169) and len(train) + len(test) == 169
    assert train.x.dtype == test.x.dtype == torch.int64 and train.input_shape == (3,)
    assert train.num_classes == test.num_classes == 13
    pairs = {tuple(r) for r in torch.cat([train.x, test.x])[:, :2].tolist()}
    assert len(pairs) == 169  # every pair once, in exactly one split
    for d in (train, test):
        assert torch.equal(d.y, (d.x[:, 0] + d.x[:, 1]) % 13)
        assert (d.x[:, 2] == 13).all()
    again = modular_addition(p=13, train_fraction=0.3, split="train")
    assert torch.equal(again.x, train.x)
    other = modular_addition(p=13, train_fraction=0.3, seed=1, split="train")
    assert not torch.equal(other.x, train.x)


def test_defaults_and_subset_keep_integer_tokens() -> None:
    train = load_data("modadd")
    assert len(train) == round(0.5 * 97 * 97) and train.num_classes == 97
    small = load_data(DataSpec("modadd", subset=10))
    assert small.x.dtype == torch.int64 and small.num_classes == 97
    assert small.to("cpu", torch.float64).x.dtype == torch.int64


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"p": 1}, "'p'"), ({"train_fraction": 1.0}, "train_fraction"),
     ({"q": 3}, "unknown option"), ({"p": True}, "'p'")],
)
def test_bad_options(kwargs, pattern) -> None:
    with pytest.raises(LandscapeError, match=pattern):
        load_data(DataSpec("modadd", kwargs=kwargs))
