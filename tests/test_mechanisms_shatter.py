"""Gradient autocorrelation against closed forms; shattering on built-in networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.errors import LandscapeError
from landscape.mechanisms import ShatterResult, autocorrelation, shattering
from landscape.models import MLP, ResNet

from ._mechanisms import user_net, xy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_autocorrelation_closed_forms():
    t = np.arange(400)
    w = 2 * np.pi * 5 / 400  # five full periods: the mean is exactly zero
    g = np.stack([np.cos(w * t), np.sin(w * t)], axis=1)
    np.testing.assert_allclose(autocorrelation(g, 6), np.cos(w * np.arange(7)), atol=1e-12)
    noise = np.random.default_rng(0).standard_normal((4000, 10))
    r = autocorrelation(noise, 3)
    assert r[0] == pytest.approx(1.0) and np.abs(r[1:]).max() < 0.03
    assert np.isnan(autocorrelation(np.ones((10, 3)), 2)).all()
    with pytest.raises(LandscapeError, match="max_lag"):
        autocorrelation(noise[:5], 5)


def test_linear_network_gradient_is_constant_along_the_line():
    r = shattering(user_net(n=3), xy(4), blocks="layers.*", n_points=16, max_lag=3)
    assert np.isnan(r.corr).all()  # nothing fluctuates: NaN, not a made-up number
    assert r.depths == ["layers.0", "layers.1", "layers.2", "logits"]


@pytest.mark.parametrize("net", [
    lambda: MLP(depth=3).double().eval(),
    lambda: ResNet(8, shortcut=False, in_channels=1).double().eval(),
])
def test_shattering_runs_and_stores(net, tmp_path):
    torch.manual_seed(0)
    r = shattering(net(), xy(4, classes=10, shape=(1, 8, 8)), n_points=32, max_lag=4)
    assert r.corr.shape == (len(r.depths), 5)
    np.testing.assert_allclose(r.corr[:, 0], 1.0)
    assert np.isfinite(r.numbers()["shatter_corr_output"])
    r.save(tmp_path / "s.h5")
    np.testing.assert_array_equal(ShatterResult.load(tmp_path / "s.h5").corr, r.corr)
