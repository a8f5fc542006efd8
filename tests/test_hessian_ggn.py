"""GGN and empirical Fisher operators against dense float64 references of tiny models.

The GGN is built two ways: explicitly as ``J^T H_L J`` from
:func:`torch.autograd.functional.jacobian` / ``hessian``, and column by column from the
operator; the empirical Fisher from a per-sample loop of gradients. Eigenvalues and traces of
the solvers are checked against :func:`numpy.linalg.eigvalsh` of those dense matrices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from landscape.data import TensorData
from landscape.errors import LandscapeError
from landscape.hessian import (
    FisherOperator,
    GGNOperator,
    HessianOperator,
    compute_curvature,
    curvature_operator,
    hutchpp,
    top_eigen,
)

from .reference import dense_from_operator

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]

F64 = torch.float64


def _case(seed: int = 0, n: int = 11, linear: bool = False):
    torch.manual_seed(seed)
    model = nn.Linear(4, 3) if linear else nn.Sequential(nn.Linear(4, 5), nn.Tanh(),
                                                         nn.Linear(5, 3))
    model = model.to(F64).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=F64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, TensorData(x, y, "toy")


def _flat(model):
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def unflat(theta):
        out, i = {}, 0
        for k, s in zip(names, shapes, strict=True):
            out[k] = theta[i:i + s.numel()].reshape(s)
            i += s.numel()
        return out

    return theta0, unflat


def _per_sample(out, y, loss):
    if loss == "cross_entropy":
        return F.cross_entropy(out, y, reduction="none")
    return (out - F.one_hot(y, out.shape[1]).to(out.dtype)).pow(2).mean(1)


def _explicit_ggn(model, data, loss):
    """``J^T H_L J`` with J the (N*C, n) Jacobian of the logits and H_L the (N*C, N*C)
    Hessian of the mean loss with respect to the logits."""
    theta0, unflat = _flat(model)
    x, y = data.x, data.y

    def logits(theta):
        return functional_call(model, unflat(theta), (x,)).reshape(-1)

    J = torch.autograd.functional.jacobian(logits, theta0)
    z0 = logits(theta0).detach()
    HL = torch.autograd.functional.hessian(
        lambda z: _per_sample(z.reshape(len(x), -1), y, loss).mean(), z0)
    return J.T @ HL @ J


def _loop_fisher(model, data, loss):
    theta0, unflat = _flat(model)
    grads = []
    for i in range(len(data.x)):
        th = theta0.clone().requires_grad_(True)
        out = functional_call(model, unflat(th), (data.x[i:i + 1],))
        (g,) = torch.autograd.grad(_per_sample(out, data.y[i:i + 1], loss).sum(), th)
        grads.append(g)
    G = torch.stack(grads)
    return G.T @ G / len(grads)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_ggn_is_jt_hl_j_and_positive_semidefinite(loss):
    model, data = _case()
    ref = _explicit_ggn(model, data, loss)
    for bs, cache in ((11, True), (4, False)):  # one batch; uneven batches 4 + 4 + 3
        op = GGNOperator(model, data, loss=loss, batch_size=bs, cache_graph=cache)
        dense = dense_from_operator(op)
        torch.testing.assert_close(dense, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dense, dense.T, rtol=0, atol=1e-12)
    ev = np.linalg.eigvalsh(dense.numpy())
    assert ev.min() >= -1e-10 * ev.max()
    # and it is not the Hessian of this nonlinear net
    H = dense_from_operator(HessianOperator(model, data, loss=loss))
    assert (H - dense).abs().max() > 1e-4


def test_ggn_equals_the_hessian_of_a_linear_model_with_mse():
    model, data = _case(1, linear=True)
    G = dense_from_operator(GGNOperator(model, data, loss="mse", batch_size=5))
    H = dense_from_operator(HessianOperator(model, data, loss="mse", batch_size=5))
    torch.testing.assert_close(G, H, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(G, _explicit_ggn(model, data, "mse"), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_empirical_fisher_is_the_mean_of_per_sample_outer_products(loss):
    model, data = _case(2)
    ref = _loop_fisher(model, data, loss)
    for bs in (11, 3):
        dense = dense_from_operator(FisherOperator(model, data, loss=loss, batch_size=bs))
        torch.testing.assert_close(dense, ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", ["ggn", "fisher"])
def test_top2_and_trace_from_the_solvers(kind):
    model, data = _case(3)
    op = curvature_operator(model, data, operator=kind, dtype=F64)
    ev = np.linalg.eigvalsh(dense_from_operator(op).numpy())
    res = top_eigen(op, 2, which="LA", tol=1e-10)
    np.testing.assert_allclose(res.eigenvalues, ev[::-1][:2], rtol=1e-8)
    tr = hutchpp(op, 3 * op.numel)  # r = n: Q spans everything, the estimate is exact
    assert tr.estimate == pytest.approx(ev.sum(), rel=1e-9)


def test_selection_is_the_hessian_operators():
    model, data = _case(4)
    full = dense_from_operator(GGNOperator(model, data))
    part = GGNOperator(model, data, ignore=["0.bias"])
    assert part.names == ["0.weight", "2.weight", "2.bias"]
    keep = torch.cat([torch.arange(0, 20), torch.arange(25, 43)])
    torch.testing.assert_close(dense_from_operator(part), full[keep][:, keep], rtol=1e-12,
                               atol=1e-14)


def test_compute_curvature_records_the_operator():
    model, data = _case(5)
    res = compute_curvature(model, data, top_k=2, trace=True, trace_samples=3 * 43,
                            operator="fisher", dtype=F64, tol=1e-10)
    ref = np.linalg.eigvalsh(_loop_fisher(model, data, "cross_entropy").numpy())
    np.testing.assert_allclose(res.top_eigenvalues, ref[::-1][:2], rtol=1e-8)
    assert res.trace == pytest.approx(ref.sum(), rel=1e-9)
    assert res.recipe["operator"] == "fisher" and res.operator == "fisher"
    assert "empirical Fisher" in res.lines()[0]
    plain = compute_curvature(model, data, top_k=1, dtype=F64)
    assert "operator" not in plain.recipe and plain.operator == "hessian"


def test_refusals_name_the_parameter():
    model, data = _case(6)

    def takes_model(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    with pytest.raises(LandscapeError, match="'loss'.*operator='ggn'"):
        GGNOperator(model, data, loss=takes_model)

    def mean_loss(out, y):
        return F.cross_entropy(out, y)

    with pytest.raises(LandscapeError, match="'loss'.*operator='fisher'"):
        FisherOperator(model, data, loss=mean_loss) @ torch.zeros(43, dtype=F64)
    with pytest.raises(LandscapeError, match="'operator'"):
        curvature_operator(model, data, operator="kfac")
    with pytest.raises(LandscapeError, match="'method'"):
        GGNOperator(model, data, method="func")


def test_products_on_a_tiny_vit_against_forward_mode():
    """A transformer (attention through the math kernel, LayerNorm): G v against
    ``J^T (H_L (J v))`` with J v from forward-mode :func:`torch.func.jvp` and the vector-
    Jacobian product from :func:`torch.func.vjp`; F v against a per-sample loop."""
    from landscape.models import build

    torch.manual_seed(0)
    model = build("vit", width=8, depth=1, heads=2, num_classes=3).to(F64).eval()
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(6, 1, 8, 8, generator=g, dtype=F64),
                      torch.randint(0, 3, (6,), generator=g), "toy")
    theta0, unflat = _flat(model)
    v = torch.randn(theta0.numel(), generator=g, dtype=F64)

    def logits(theta):
        return functional_call(model, unflat(theta), (data.x,))

    z0, jv = torch.func.jvp(logits, (theta0,), (v,))
    HL = torch.autograd.functional.hessian(
        lambda z: F.cross_entropy(z.reshape(6, 3), data.y), z0.detach().reshape(-1))
    _, back = torch.func.vjp(logits, theta0)
    (ref,) = back((HL @ jv.reshape(-1)).reshape(6, 3))
    op = GGNOperator(model, data, batch_size=4)
    torch.testing.assert_close(op @ v, ref, rtol=1e-9, atol=1e-12)

    grads = []
    for i in range(6):
        th = theta0.clone().requires_grad_(True)
        out = functional_call(model, unflat(th), (data.x[i:i + 1],))
        grads.append(torch.autograd.grad(F.cross_entropy(out, data.y[i:i + 1]), th)[0])
    G = torch.stack(grads)
    torch.testing.assert_close(FisherOperator(model, data, batch_size=4) @ v,
                               G.T @ (G @ v) / 6, rtol=1e-9, atol=1e-12)
