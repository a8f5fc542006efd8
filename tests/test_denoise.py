"""The digits-denoise task: deterministic noisy digits as inputs, clean digits as targets."""

from __future__ import annotations

import pytest
import torch

from landscape.data import DataSpec, available_datasets, load_data, load_splits
from landscape.data.denoise import NOISE, corrupt
from landscape.errors import LandscapeError
from landscape.models import ModelSpec, adapt_to_data


def test_targets_are_the_clean_digits_and_inputs_add_gaussian_noise() -> None:
    assert "digits-denoise" in available_datasets()
    for split in ("train", "test"):
        clean = load_data("digits", split)
        d = load_data("digits-denoise", split)
        assert d.x.shape == d.y.shape == clean.x.shape and d.y.dtype == torch.float32
        assert torch.equal(d.y, clean.x) and d.num_classes is None and d.split == split
        eps = (d.x - d.y) / NOISE
        # the noise is N(0, 1) per pixel: mean and std within 5 standard errors
        n = eps.numel()
        assert abs(float(eps.mean())) < 5 / n**0.5
        assert abs(float(eps.std()) - 1) < 5 * (0.5 / n) ** 0.5
        # exactly the seeded generator's draw (train: seed, test: seed + 1)
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        torch.testing.assert_close(d.x, clean.x + NOISE * torch.randn(clean.x.shape,
                                                                      generator=g))


def test_deterministic_and_seeded() -> None:
    a, b = load_data("digits-denoise"), load_data("digits-denoise")
    assert torch.equal(a.x, b.x)
    train, test = load_splits("digits-denoise")
    assert not torch.equal((train.x - train.y)[:300], (test.x - test.y)[:300])
    other = load_data(DataSpec("digits-denoise", kwargs={"seed": 3, "noise": 0.1}))
    assert torch.equal(other.y, a.y) and not torch.equal(other.x, a.x)
    assert float((other.x - other.y).std()) == pytest.approx(0.1, rel=0.02)
    assert torch.equal(load_data(DataSpec("digits-denoise", kwargs={"noise": 0.0})).x, a.y)
    small = load_data(DataSpec("digits-denoise", subset=50))
    assert len(small) == 50 and small.y.shape == (50, 1, 8, 8)


def test_bad_options() -> None:
    with pytest.raises(LandscapeError, match="unknown option"):
        load_data(DataSpec("digits-denoise", kwargs={"sigma": 0.1}))
    with pytest.raises(LandscapeError, match="'noise'"):
        load_data(DataSpec("digits-denoise", kwargs={"noise": -1.0}))
    with pytest.raises(LandscapeError, match="'split'"):
        corrupt(load_data("digits"), split="val")


def test_models_adapt_to_it_and_cross_entropy_refuses_it() -> None:
    from landscape.losses import BatchLoss

    d = load_data(DataSpec("digits-denoise", subset=8))
    assert adapt_to_data(ModelSpec("unet"), d).kwargs == {}  # in_channels=1 is the default
    with pytest.raises(LandscapeError, match="mse"):
        BatchLoss("cross_entropy").terms(torch.zeros(8, 1, 8, 8), (d.x, d.y))
    t = BatchLoss("mse").terms(d.x, (d.x, d.y))  # the noisy input as prediction
    assert float(t.total / t.weight) == pytest.approx(float((d.x - d.y).pow(2).mean()))
