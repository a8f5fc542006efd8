"""Adaptive sharpness against closed forms and the rescaling invariance that defines it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.metrics import eps_sharpness_ascent
from landscape.sharpness import adaptive_sharpness, adaptive_sharpness_of

try:  # tests/ as a package or as a plain directory on sys.path
    from .conftest import toy_classifier
except ImportError:
    from conftest import toy_classifier

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


def _quadratic(n: int, seed: int, diagonal: bool = False):
    """``L(w) = (w - w*)' A (w - w*) / 2`` with A SPD; returns (loss_of, w*, A)."""
    g = torch.Generator().manual_seed(seed)
    if diagonal:
        A = torch.diag(torch.rand(n, generator=g, dtype=F64) + 0.1)
    else:
        Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
        A = Q @ torch.diag(torch.linspace(0.1, 3.0, n, dtype=F64)) @ Q.T
    w_star = torch.randn(n, generator=g, dtype=F64)

    def loss_of(p):
        d = p["w"] - w_star
        return 0.5 * d @ A @ d

    return loss_of, {"w": w_star.clone()}, A


def test_worst_case_l2_on_a_quadratic_equals_the_closed_form():
    loss_of, w, A = _quadratic(6, 0)
    rho = 0.3
    D = torch.diag(w["w"].abs())
    want = 0.5 * rho**2 * float(torch.linalg.eigvalsh(D @ A @ D).max())
    got = adaptive_sharpness_of(loss_of, w, rho=rho, p=2, steps=300)
    assert got.value == pytest.approx(want, rel=1e-8)
    assert got.base_loss == 0.0 and math.isnan(got.stderr)


def test_worst_case_linf_on_a_diagonal_quadratic_is_the_corner():
    loss_of, w, A = _quadratic(5, 1, diagonal=True)
    rho = 0.2
    want = 0.5 * rho**2 * float((w["w"] ** 2 * torch.diag(A)).sum())
    got = adaptive_sharpness_of(loss_of, w, rho=rho, p=math.inf, steps=5)
    assert got.value == pytest.approx(want, rel=1e-12)


def test_average_case_on_a_quadratic_is_half_rho2_trace_dhd():
    loss_of, w, A = _quadratic(6, 2)
    rho = 0.5
    D = torch.diag(w["w"].abs())
    want = 0.5 * rho**2 * float(torch.trace(D @ A @ D))
    got = adaptive_sharpness_of(loss_of, w, rho=rho, kind="average", samples=4000, seed=3)
    assert abs(got.value - want) < 4 * got.stderr  # Monte-Carlo error
    assert got.stderr < 0.05 * want


def _rescaled(model: nn.Sequential, a: float) -> nn.Sequential:
    """Same function: first layer (weight and bias) times a, the next layer's weight / a."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        m[0].weight.mul_(a)
        m[0].bias.mul_(a)
        m[2].weight.div_(a)
    return m


@pytest.mark.parametrize(("kind", "p"), [("worst", 2), ("worst", math.inf), ("average", 2)])
def test_invariant_to_rescaling_a_relu_layer(kind, p):
    model, data = toy_classifier(4, nn.ReLU, n=40)
    other = _rescaled(model, 3.0)
    x = data.x
    assert torch.allclose(model(x), other(x), rtol=1e-12, atol=1e-12)
    kw = {"rho": 0.05, "p": p, "kind": kind, "steps": 10, "samples": 20, "seed": 1}
    a = adaptive_sharpness(model, data, **kw)
    b = adaptive_sharpness(other, data, **kw)
    assert a.value > 0
    assert b.value == pytest.approx(a.value, rel=1e-6)


def test_keskar_sharpness_is_not_invariant():
    model, data = toy_classifier(4, nn.ReLU, n=40)
    other = _rescaled(model, 3.0)
    a = eps_sharpness_ascent(model, data, eps=1e-2, steps=5)
    b = eps_sharpness_ascent(other, data, eps=1e-2, steps=5)
    assert abs(a - b) > 1e-2 * abs(a)


def test_m_sharpness_averages_the_batches():
    model, data = toy_classifier(5, nn.Tanh, n=30)
    res = adaptive_sharpness(model, data, rho=0.05, m=10, steps=3)
    assert res.recipe["n_batches"] == 3 and res.recipe["m"] == 10
    assert np.isfinite(res.stderr) and res.value > 0
    full = adaptive_sharpness(model, data, rho=0.05, steps=3)
    assert full.recipe["m"] is None and full.recipe["n_batches"] == 1


def test_bad_settings_are_clear_errors():
    model, data = toy_classifier(5, nn.Tanh, n=10)
    with pytest.raises(LandscapeError, match="'p'"):
        adaptive_sharpness(model, data, rho=0.1, p=1)
    with pytest.raises(LandscapeError, match="'rho'"):
        adaptive_sharpness(model, data, rho=0.0)
    with pytest.raises(LandscapeError, match="'kind'"):
        adaptive_sharpness(model, data, rho=0.1, kind="best")
    with pytest.raises(LandscapeError, match="'m'"):
        adaptive_sharpness(model, data, rho=0.1, m=11)
