"""Scale-aware numbers: weight norms and filter-normalized dᵀHd, against dense float64
Hessians and under the rescaling BatchNorm allows (Dinh et al. 2017)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.directions import random_direction
from landscape.errors import LandscapeError
from landscape.hessian import HessianOperator
from landscape.parameters import named_tensors, select_parameters
from landscape.scale import filter_normalized_curvature, weight_norms

from .reference import dense_from_operator, flat_loss_fn

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def _conv_bn_net(batch_statistics: bool = True) -> nn.Module:
    """conv (no bias) -> BatchNorm -> ReLU -> linear; the BatchNorm eps (torch wants it > 0) is
    negligible next to any variance in float64, so the scale divides out exactly. With
    ``batch_statistics`` the BatchNorm keeps no running
    statistics, so it normalises by the batch's, in eval mode too."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False),
        nn.BatchNorm2d(3, eps=1e-300, track_running_stats=not batch_statistics),
        nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).to(F64).eval()


def _data(n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(n, 1, 4, 4, generator=g, dtype=F64),
            torch.randint(0, 3, (n,), generator=g))


def _scaled(net: nn.Module, alpha: float) -> nn.Module:
    out = copy.deepcopy(net)
    with torch.no_grad():
        out[0].weight.mul_(alpha)
    return out


def _dense_hessian(net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   names: list[str]) -> torch.Tensor:
    """Dense float64 Hessian by two methods that must agree: reverse-over-reverse autograd
    and central differences of the gradient. (``torch.func.hessian``, forward over reverse,
    is off by up to 0.08 here: BatchNorm with batch statistics.)"""
    f, theta = flat_loss_fn(net, x, y, names)
    h = torch.autograd.functional.hessian(f, theta)

    def grad(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().requires_grad_(True)
        return torch.autograd.grad(f(t), t)[0]

    step = 1e-6
    eye = torch.eye(len(theta), dtype=F64)
    fd = torch.stack([(grad(theta + step * e) - grad(theta - step * e)) / (2 * step)
                      for e in eye], dim=1)
    torch.testing.assert_close(h, fd, rtol=1e-5, atol=1e-7)
    return (h + h.T) / 2


def test_weight_norms_are_those_of_the_perturbed_tensors():
    net = _conv_bn_net()
    w = weight_norms(net)
    # biases and the BatchNorm scale/shift are not moved by a filter-normalized direction
    assert set(w["per_layer"]) == {"0.weight", "4.weight"}
    assert w["per_layer"]["0.weight"] == pytest.approx(float(net[0].weight.detach().norm()))
    assert w["global"] == pytest.approx(math.hypot(float(net[0].weight.detach().norm()),
                                                   float(net[4].weight.detach().norm())))
    assert w["n_params"] == 27 + 144
    every = weight_norms(net, ignore="none")
    assert set(every["per_layer"]) == {"0.weight", "1.weight", "1.bias", "4.weight", "4.bias"}
    d = random_direction(named_tensors(net), seed=0, selection=select_parameters(net))
    assert weight_norms(net, d) == w  # the tensors the direction moves
    assert weight_norms(_scaled(net, 3.0))["per_layer"]["0.weight"] == \
        pytest.approx(3 * w["per_layer"]["0.weight"])


def test_filter_normalized_curvature_equals_dense_float64_quadratic_forms():
    net, (x, y) = _conv_bn_net(), _data()
    names = [k for k, _ in net.named_parameters()]
    h = _dense_hessian(net, x, y, names)
    op = HessianOperator(net, (x, y), dtype=F64)
    assert op.names == names
    torch.testing.assert_close(dense_from_operator(op), h, rtol=1e-9, atol=1e-10)
    res = filter_normalized_curvature(net, (x, y), k=4, seed=3)
    sel = select_parameters(net)
    want = []
    for s in (3, 4, 5, 6):
        d = random_direction(named_tensors(net), seed=s, norm="filter", selection=sel)
        v = torch.cat([d[k].reshape(-1) for k in names])
        want.append(float(v @ h @ v))
    np.testing.assert_allclose(res.values, want, rtol=1e-9)
    assert res.mean == pytest.approx(np.mean(want), rel=1e-9)
    assert res.sd == pytest.approx(np.std(want, ddof=1), rel=1e-9)
    assert res.seeds == [3, 4, 5, 6] and res.n_hvp == 4 and res.k == 4
    assert res.weight_norm == pytest.approx(weight_norms(net)["global"])
    assert res.recipe["norm"] == "filter" and res.recipe["bn"] == "eval"
    assert math.isnan(filter_normalized_curvature(net, (x, y), k=1).sd)


@pytest.mark.parametrize("alpha", [0.25, 3.7])
@pytest.mark.parametrize("batch_statistics", [True, False])
def test_filter_normalized_curvature_is_invariant_to_the_rescaling_batchnorm_allows(
        alpha, batch_statistics):
    """Scaling the conv weights before a BatchNorm that normalises by the statistics of its
    input (batch statistics, or running statistics recalibrated at the weights) leaves the
    function unchanged and scales the conv block of H by 1/alpha^2; filter normalization
    scales d there by alpha, so d^T H d is unchanged. Raw curvature is not."""
    net, data = _conv_bn_net(batch_statistics), _data()
    bn = "eval" if batch_statistics else "recalibrate"
    big = _scaled(net, alpha)
    op, op_big = HessianOperator(net, data, bn=bn), HessianOperator(big, data, bn=bn)
    assert op_big.loss() == pytest.approx(op.loss(), rel=1e-10)  # the same function
    # raw scale: the conv block of the Hessian scales by 1/alpha^2
    n_conv = net[0].weight.numel()
    h, h_big = dense_from_operator(op), dense_from_operator(op_big)
    torch.testing.assert_close(h_big[:n_conv, :n_conv] * alpha**2, h[:n_conv, :n_conv],
                               rtol=1e-7, atol=1e-10)
    assert not torch.allclose(h_big, h, rtol=1e-3)
    a = filter_normalized_curvature(net, data, k=5, bn=bn)
    b = filter_normalized_curvature(big, data, k=5, bn=bn)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-7)
    assert b.weight_norm != pytest.approx(a.weight_norm)  # the norms do change


def test_filter_normalized_curvature_refuses_directions_that_move_nothing():
    net = nn.Sequential(nn.Linear(3, 2)).to(F64)
    x, y = torch.randn(6, 3, dtype=F64), torch.randint(0, 2, (6,))
    with pytest.raises(LandscapeError, match="move no tensor"):
        filter_normalized_curvature(net, (x, y), params="0.bias")
    with pytest.raises(LandscapeError, match="'k'"):
        filter_normalized_curvature(net, (x, y), k=0)
