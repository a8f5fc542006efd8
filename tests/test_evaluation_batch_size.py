"""Evaluator.choose_batch_size: a choice from model and data sizes, the same in every fresh run."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from landscape._functional import named_tensors
from landscape.directions import random_directions
from landscape.evaluation import Evaluator
from landscape.surface import compute_surface

from .conftest import Data

pytestmark = pytest.mark.usefixtures("one_thread")


def _conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10)).eval()


def _data(n: int) -> Data:
    g = torch.Generator().manual_seed(0)
    return Data(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))


def test_choice_follows_the_largest_activation_and_the_budget():
    # the largest intermediate: the conv output, 4 x 8 x 8 float32 = 1 KiB per sample
    ev = Evaluator(_conv(), {"train": _data(3000)})
    assert ev.choose_batch_size(budget=64 * 2**10) == 64 == ev.batch_size
    assert ev.choose_batch_size(budget=2**30) == 2048  # the largest CPU candidate
    assert ev.choose_batch_size(budget=0) == 16  # the smallest
    small = Evaluator(_conv(), {"train": _data(100)})
    assert small.choose_batch_size(budget=2**30) == 100  # capped at the data
    f64 = Evaluator(_conv(), {"train": _data(3000)}, dtype=torch.float64)
    assert f64.choose_batch_size(budget=64 * 2**10) == 32  # twice the bytes per sample


def test_streamed_data_keep_their_batches():
    d = _data(50)
    ev = Evaluator(_conv(), {"train": TensorDataset(d.x, d.y)}, batch_size=13)
    assert ev.choose_batch_size() == 13


def test_two_fresh_surfaces_record_the_same_choice(tmp_path):
    model, data = _conv(), {"train": _data(600)}
    d = random_directions(named_tensors(model), seeds=0)
    kw = dict(x="-1:1:2", y="0:1:2", progress=False)
    a = compute_surface(model, d, data, out=tmp_path / "a.h5", **kw)
    b = compute_surface(model, d, data, out=tmp_path / "b.h5", **kw)
    used = a.provenance["batch_size_used"]
    assert used == b.provenance["batch_size_used"]
    assert used == Evaluator(model, data).choose_batch_size()
    assert used == Evaluator(model, data).probe_batch_size()  # the former name


def test_default_budget_counts_each_thread_with_its_own_l2():
    from landscape.evaluation import _activation_budget

    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _activation_budget(cpu)
        torch.set_num_threads(2)
        assert _activation_budget(cpu) == 2 * one
    finally:
        torch.set_num_threads(before)
