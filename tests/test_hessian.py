"""Tests of landscape.hessian against dense float64 ground truth (tests/reference.py)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from landscape.errors import LandscapeError
from landscape.hessian import (
    EigenResult,
    HessianOperator,
    SpectralDensity,
    eigen_ratio,
    extreme_pairs,
    hutchinson,
    hutchpp,
    hvp,
    min_eigen,
    slq,
    top_eigen,
)

try:  # tests/ as a package or as a plain directory on sys.path
    from .reference import dense_from_operator, exact_gradient, exact_hessian, exact_loss
except ImportError:
    from reference import dense_from_operator, exact_gradient, exact_hessian, exact_loss

# torch's forward-mode AD scripts its decompositions on first use (a torch-internal warning).
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),  # conftest: tiny models, threads only add overhead
]

N, BATCH = 50, 16  # uneven batches: 16, 16, 16, 2
F64 = torch.float64



@dataclass
class Data:
    x: Tensor
    y: Tensor


class SmallConvNet(nn.Module):
    """conv 1->4 3x3, BatchNorm, ReLU, max-pool, linear; plus a Linear that is never used."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 10)
        self.unused = nn.Linear(5, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.max_pool2d(x, 2)
        return self.fc(x.flatten(1))


def _mlp_case() -> tuple[nn.Module, Data]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10))
    data = Data(torch.rand(N, 64), torch.randint(0, 10, (N,)))
    return model, data


def _conv_case() -> tuple[nn.Module, Data]:
    torch.manual_seed(1)
    model = SmallConvNet()
    with torch.no_grad():  # non-trivial running statistics, so eval and train modes differ
        model.bn.running_mean.normal_(0.0, 0.3)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.normal_(0.0, 0.1)
    model.train()  # the operator must switch to eval mode by itself
    data = Data(torch.randn(N, 1, 8, 8), torch.randint(0, 10, (N,)))
    return model, data


@pytest.fixture(scope="module")
def mlp() -> tuple[nn.Module, Data, Tensor, list[str]]:
    model, data = _mlp_case()
    names = [k for k, _ in model.named_parameters()]
    return model, data, exact_hessian(model, data.x, data.y, names), names


@pytest.fixture(scope="module")
def conv() -> tuple[nn.Module, Data, Tensor, list[str]]:
    model, data = _conv_case()
    names = [k for k, _ in model.named_parameters()]
    return model, data, exact_hessian(model, data.x, data.y, names), names


@pytest.fixture(scope="module")
def mlp_eigh(mlp) -> np.ndarray:
    return np.linalg.eigvalsh(mlp[2].numpy())


def _op(case, **kw) -> HessianOperator:
    model, data = case[0], case[1]
    kw.setdefault("batch_size", BATCH)
    kw.setdefault("dtype", F64)
    return HessianOperator(model, data, **kw)


# --------------------------------------------------------------------------- operator
@pytest.mark.parametrize("case", ["mlp", "conv"])
@pytest.mark.parametrize("method", ["graph", "func"])
def test_hvp_matches_exact_hessian_on_uneven_batches(case, method, request):
    c = request.getfixturevalue(case)
    op = _op(c, method=method)
    assert op.method == method and op.shape == tuple(c[2].shape)
    V = torch.randn(op.numel, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op @ V, c[2] @ V, rtol=0, atol=1e-10)
    torch.testing.assert_close(op @ V[:, 0], c[2] @ V[:, 0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["graph", "func"])
def test_matmat_equals_columnwise_matvec(conv, method):
    op = _op(conv, method=method)
    V = torch.randn(op.numel, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    cols = torch.stack([op.matvec(V[:, j]) for j in range(4)], dim=1)
    torch.testing.assert_close(op.matmat(V), cols, rtol=0, atol=1e-12)


def test_cached_graph_recomputed_graph_and_batch_size_agree(mlp):
    v = torch.randn(mlp[2].shape[0], dtype=F64, generator=torch.Generator().manual_seed(2))
    ref = _op(mlp, method="graph", cache_graph=True) @ v
    for op in (
        _op(mlp, method="graph", cache_graph=False),
        _op(mlp, method="graph", batch_size=7),
        _op(mlp, method="graph", batch_size=N),
        _op(mlp, method="func", batch_size=1000),
    ):
        torch.testing.assert_close(op @ v, ref, rtol=0, atol=1e-12)
    assert _op(mlp).method == "graph"  # "auto"


@pytest.mark.parametrize("method", ["graph", "func"])
def test_unused_parameters_get_zero_curvature(conv, method):
    op = _op(conv, method=method)
    assert "unused.weight" in op.names and "unused.bias" in op.names
    H = dense_from_operator(op)
    mask = torch.cat(
        [torch.full((t.numel(),), k.startswith("unused")) for k, t in op.unflatten(H[0]).items()]
    )
    assert mask.sum() == 5 * 3 + 3
    assert torch.all(H[mask] == 0) and torch.all(H[:, mask] == 0)
    torch.testing.assert_close(H, conv[2], rtol=0, atol=1e-10)
    g = op.gradient()
    assert torch.all(g[mask] == 0)


def test_running_stats_and_training_flags_are_never_touched(conv):
    model = conv[0]
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for method in ("graph", "func"):
        op = _op(conv, method=method)
        V = torch.randn(op.numel, 3, dtype=F64)
        for _ in range(5):
            op @ V
            op @ V[:, 0]
        op.gradient()
        op.loss()
    top_eigen(_op(conv), k=2, tol=1e-3)
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert after["bn.num_batches_tracked"].item() == 0
    assert model.training and model.bn.training


def test_loss_and_gradient_match_reference(conv):
    op = _op(conv)
    x, y = conv[1].x, conv[1].y
    assert op.loss() == pytest.approx(exact_loss(conv[0], x, y, op.names), rel=1e-12)
    torch.testing.assert_close(
        op.gradient(), exact_gradient(conv[0], x, y, op.names), rtol=0, atol=1e-12
    )


def test_curvature_at_a_perturbed_point(mlp):
    model, data, _, names = mlp
    gen = torch.Generator().manual_seed(3)
    own = {k: v.detach().clone() for k, v in model.named_parameters()}
    point = {k: v + 0.3 * torch.randn(v.shape, generator=gen) for k, v in own.items()}
    op = HessianOperator(model, data, params=point, batch_size=BATCH, dtype=F64)
    H = exact_hessian(model, data.x, data.y, names, params=point)
    v = torch.randn(op.numel, dtype=F64, generator=gen)
    torch.testing.assert_close(op @ v, H @ v, rtol=0, atol=1e-10)
    assert not torch.allclose(H, mlp[2])
    for k, v in model.named_parameters():
        assert torch.equal(v, own[k])


def test_ignore_selects_a_principal_submatrix(conv):
    H_full, names = conv[2], conv[3]
    op_all = _op(conv)
    keep = torch.cat(
        [
            torch.full((t.numel(),), t.ndim > 1)
            for t in op_all.unflatten(torch.zeros(op_all.numel)).values()
        ]
    )
    op = _op(conv, ignore="biasbn")
    assert op.names == [k for k in names if k.endswith("weight") and not k.startswith("bn")]
    torch.testing.assert_close(dense_from_operator(op), H_full[keep][:, keep], rtol=0, atol=1e-10)
    op2 = _op(conv, ignore=["fc.bias", "unused.weight"])
    assert "fc.bias" not in op2.names and op2.numel == op_all.numel - 10 - 15


def test_states_selection_includes_float_buffers_only(conv):
    op = _op(conv, what="states")
    assert "bn.running_mean" in op.names and "bn.num_batches_tracked" not in op.names


def test_flatten_unflatten_roundtrip(conv):
    op = _op(conv)
    v = torch.arange(op.numel, dtype=F64)
    d = op.unflatten(v)
    assert list(d) == op.names
    assert all(d[k].shape == p.shape for k, p in conv[0].named_parameters())
    torch.testing.assert_close(op.flatten(d), v)


def test_to_scipy_and_counter(mlp):
    op = _op(mlp)
    lin = op.to_scipy()
    assert lin.shape == op.shape and lin.dtype == np.float64
    x = np.random.default_rng(0).standard_normal(op.numel)
    np.testing.assert_allclose(lin @ x, mlp[2].numpy() @ x, rtol=0, atol=1e-10)
    X = np.random.default_rng(1).standard_normal((op.numel, 3))
    np.testing.assert_allclose(lin.matmat(X), mlp[2].numpy() @ X, rtol=0, atol=1e-10)
    assert op.n_hvp == 4
    op @ torch.zeros(op.numel, 5, dtype=F64)
    assert op.n_hvp == 9


def test_float32_operator_is_close_to_float64(mlp):
    op = HessianOperator(mlp[0], mlp[1], batch_size=BATCH)
    assert op.dtype == torch.float32
    v = torch.randn(op.numel)
    torch.testing.assert_close((op @ v).double(), mlp[2] @ v.double(), rtol=0, atol=1e-5)


def test_hvp_function_takes_and_returns_dicts(conv):
    model, data = conv[0], conv[1]
    vec = {"fc.weight": torch.ones(10, 64, dtype=F64)}
    out = hvp(model, data, vec, batch_size=BATCH, dtype=F64)
    op = _op(conv, ignore=[k for k in conv[3] if k != "fc.weight"])
    torch.testing.assert_close(out["fc.weight"], op.unflatten(op @ op.flatten(vec))["fc.weight"])


def test_operator_validation(conv):
    model, data = conv[0], conv[1]
    with pytest.raises(LandscapeError, match="'method'"):
        HessianOperator(model, data, method="fd")
    with pytest.raises(LandscapeError, match="'batch_size'"):
        HessianOperator(model, data, batch_size=0)
    with pytest.raises(LandscapeError, match="ignore"):
        HessianOperator(model, data, ignore=["nope.weight"])
    with pytest.raises(LandscapeError, match="params"):
        HessianOperator(model, data, params={"nope": torch.zeros(1)})
    with pytest.raises(LandscapeError, match=r"\.x and \.y"):
        HessianOperator(model, object())
    with pytest.raises(LandscapeError, match="same number of samples"):
        HessianOperator(model, Data(data.x, data.y[:3]))
    with pytest.raises(LandscapeError, match="'loss'"):
        HessianOperator(model, data, loss="hinge")
    op = HessianOperator(model, data)
    with pytest.raises(LandscapeError, match="expected shape"):
        op @ torch.zeros(3)
    with pytest.raises(LandscapeError):
        op.flatten({"conv.weight": torch.zeros(1)})


# --------------------------------------------------------------------------- eigenpairs
@pytest.mark.parametrize("which", ["LM", "LA"])
def test_top_eigen_matches_eigh(mlp, mlp_eigh, which):
    op = _op(mlp)
    ev = mlp_eigh
    want = ev[np.argsort(-np.abs(ev))][:5] if which == "LM" else ev[::-1][:5]
    res = top_eigen(op, k=5, which=which, tol=1e-6)
    assert isinstance(res, EigenResult)
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-6)
    assert res.converged.all() and res.all_converged
    assert 0 < res.n_hvp == op.n_hvp < op.numel
    assert res.eigenvectors.shape == (op.numel, 5) and res.eigenvectors.dtype == np.float64
    # residuals recomputed independently with the exact Hessian
    H = mlp[2].numpy()
    Y = res.eigenvectors
    true_res = np.linalg.norm(H @ Y - Y * res.eigenvalues, axis=0)
    np.testing.assert_allclose(true_res, res.residuals, rtol=1e-3, atol=1e-13)
    assert np.all(true_res <= 1.01e-6 * np.abs(res.eigenvalues))
    np.testing.assert_allclose(Y.T @ Y, np.eye(5), atol=1e-10)


def test_arpack_solver_agrees(mlp, mlp_eigh):
    res = top_eigen(_op(mlp), k=3, which="LA", solver="arpack")
    np.testing.assert_allclose(res.eigenvalues, mlp_eigh[::-1][:3], rtol=1e-6)
    assert res.converged.all() and res.n_hvp > 0


def test_min_eigen_and_ratio(conv):
    ev = np.linalg.eigvalsh(conv[2].numpy())
    res = min_eigen(_op(conv), k=2, tol=1e-6)
    np.testing.assert_allclose(res.eigenvalues, ev[:2], rtol=1e-6)
    assert res.converged.all() and res.which == "SA"
    lmin, lmax, ratio = eigen_ratio(_op(conv))
    assert lmin == pytest.approx(ev[0], rel=1e-5) and lmax == pytest.approx(ev[-1], rel=1e-6)
    assert ratio == pytest.approx(abs(ev[0] / ev[-1]), rel=1e-5)


def _cluster_near_zero(n: int = 400, seed: int = 0) -> tuple[Tensor, np.ndarray]:
    """A dense symmetric matrix: 5 outliers (10 .. 2), n - 6 eigenvalues in [0, 0.02] and one
    small negative one, -0.00428 (the shape of a trained network's Hessian spectrum)."""
    rng = np.random.default_rng(seed)
    d = np.concatenate([[10.0, 6.0, 4.0, 3.0, 2.0], rng.uniform(0.0, 0.02, n - 6), [-0.00428]])
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return torch.tensor((Q * d) @ Q.T), np.sort(d)


def test_lambda_min_is_resolved_to_its_own_tolerance_in_a_cluster_near_zero():
    A, d = _cluster_near_zero()
    lmin, norm, tol = d[0], d[-1], 1e-3
    for scale_atol in (None, 0.0):  # the default floor min(tol, 1e-6) ||H||, or none
        floor = min(tol, 1e-6) if scale_atol is None else 0.0
        bound = max(tol * abs(lmin), floor * norm)
        for res in (min_eigen(A, tol=tol, scale_atol=scale_atol),
                    extreme_pairs(A, tol=tol, scale_atol=scale_atol)):
            got = float(res.eigenvalues.min())
            assert res.converged.all()
            assert abs(got - lmin) <= float(res.thresholds[np.argmin(res.eigenvalues)])
            assert float(res.thresholds[np.argmin(res.eigenvalues)]) <= bound * (1 + 1e-9)
    # lambda_max converges relative to itself too
    res = extreme_pairs(A, tol=tol)
    assert abs(res.eigenvalues.max() - norm) <= tol * norm
    # what a tolerance relative to lambda_max (the old criterion) accepts: a Ritz value in
    # the cluster, of the wrong sign, flagged converged
    old = extreme_pairs(A, tol=tol, scale_atol=tol)
    assert old.converged.all() and old.eigenvalues.min() > 0


def test_unresolved_lambda_min_gives_no_ratio():
    A, d = _cluster_near_zero()
    with pytest.warns(RuntimeWarning, match="did not reach"):
        res = min_eigen(A, tol=1e-3, max_hvp=8)
    assert not res.converged[0] and res.residuals[0] > res.thresholds[0]
    with pytest.warns(RuntimeWarning, match="did not reach"):
        lmin, lmax, ratio = eigen_ratio(A, tol=1e-3, max_hvp=8)
    assert np.isnan(ratio) and np.isfinite(lmin)
    lmin, lmax, ratio = eigen_ratio(A, tol=1e-3)
    assert ratio == pytest.approx(abs(d[0] / d[-1]), rel=1e-2)


def test_conditional_second_gram_schmidt_pass_keeps_the_basis_orthogonal(monkeypatch):
    # Three tight clusters (width 1e-6): the Krylov space is nearly invariant after 3 steps,
    # w = H v nearly lies in the basis and one classical Gram-Schmidt pass loses orthogonality
    # (measured: without any second pass no pair converges in 900 products and the Ritz
    # vectors are far from orthonormal). The DGKS test must make the second pass there, skip
    # it elsewhere, and give what a second pass at every step gives.
    from landscape.hessian import lanczos

    rng = np.random.default_rng(3)
    d = np.concatenate([4 + 1e-6 * rng.random(30), 2 + 1e-6 * rng.random(30),
                        1 + 1e-6 * rng.random(30)])
    Q, _ = np.linalg.qr(rng.standard_normal((90, 90)))
    A = torch.tensor((Q * d) @ Q.T)
    want = np.sort(d)[::-1][:3]
    calls = []
    real = lanczos._orthonormalise
    monkeypatch.setattr(lanczos, "_orthonormalise",
                        lambda v, V, passes=2: calls.append(passes) or real(v, V, passes))
    res = top_eigen(A, k=3, which="LA", tol=1e-12, ncv=20)
    assert res.converged.all()
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-14)
    np.testing.assert_allclose(res.eigenvectors.T @ res.eigenvectors, np.eye(3), atol=1e-13)
    assert calls.count(1) > 0  # made where needed
    # ... and skipped where the first pass left most of w: a spread spectrum
    calls.clear()
    e = np.concatenate([[10.0, 7.0, 5.0], rng.uniform(0.0, 1.0, 87)])
    B = torch.tensor((Q * e) @ Q.T)
    spread = top_eigen(B, k=3, which="LA", tol=1e-12, ncv=20)
    np.testing.assert_allclose(spread.eigenvalues, [10.0, 7.0, 5.0], rtol=1e-12)
    assert 0 < calls.count(1) < spread.n_hvp
    monkeypatch.setattr(lanczos, "DGKS", 2.0)  # a second pass at every step: the same answer
    for M, got in ((A, res), (B, spread)):
        always = top_eigen(M, k=3, which="LA", tol=1e-12, ncv=20)
        assert always.n_hvp == got.n_hvp
        np.testing.assert_allclose(always.eigenvalues, got.eigenvalues, rtol=1e-14)


def test_top_eigen_on_dense_tensor_and_tiny_n():
    d = torch.tensor([3.0, -5.0, 1.0, 0.5], dtype=F64)
    res = top_eigen(torch.diag(d), k=3, which="LM")  # k >= n - 1: dense fallback
    np.testing.assert_allclose(res.eigenvalues, [-5.0, 3.0, 1.0])
    assert res.n_hvp == 4 and res.converged.all()
    res = top_eigen(torch.diag(d), k=4, which="SA")
    np.testing.assert_allclose(res.eigenvalues, [-5.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(np.abs(res.eigenvectors), np.eye(4)[:, [1, 3, 2, 0]])


def test_exact_invariant_subspace_is_handled():
    # 3 distinct eigenvalues: the Krylov space is invariant after 3 steps.
    # Each fresh sequence finds one more copy of each repeated eigenvalue.
    d = np.repeat([4.0, 2.0, 1.0], 20)
    for k in (1, 3, 5):
        res = top_eigen(np.diag(d), k=k, which="LA")
        np.testing.assert_allclose(res.eigenvalues, np.full(k, 4.0), rtol=1e-10)
        assert res.converged.all()
        np.testing.assert_allclose(res.eigenvectors.T @ res.eigenvectors, np.eye(k), atol=1e-10)
        assert np.all(np.abs(res.eigenvectors[20:]) < 1e-10)


def test_warm_start_from_previous_eigenvectors(mlp):
    H = mlp[2]
    cold = top_eigen(H, k=3, which="LA")
    gen = torch.Generator().manual_seed(4)
    E = 1e-4 * torch.randn(H.shape, dtype=F64, generator=gen)
    H2 = H + (E + E.T)
    warm = top_eigen(H2, k=3, which="LA", v0=cold.eigenvectors)
    again = top_eigen(H2, k=3, which="LA")
    np.testing.assert_allclose(warm.eigenvalues, again.eigenvalues, rtol=1e-6)
    assert warm.n_hvp < again.n_hvp


def test_unconverged_pairs_are_reported_honestly(mlp):
    with pytest.warns(RuntimeWarning, match="did not reach"):
        res = top_eigen(mlp[2], k=5, max_hvp=6)
    assert res.n_hvp == 6 and not res.converged.all()
    assert np.all(res.residuals[~res.converged] > 1e-6 * np.abs(res.eigenvalues[~res.converged]))


def test_as_dicts_gives_directions(conv):
    op = _op(conv)
    res = top_eigen(op, k=2, tol=1e-4)
    dirs = res.as_dicts(op)
    assert len(dirs) == 2 and list(dirs[0]) == op.names
    torch.testing.assert_close(op.flatten(dirs[1]).numpy(), res.eigenvectors[:, 1])


def test_eigen_validation(mlp):
    H = mlp[2]
    with pytest.raises(LandscapeError, match="'k'"):
        top_eigen(H, k=0)
    with pytest.raises(LandscapeError, match="'k'"):
        top_eigen(H, k=H.shape[0] + 1)
    with pytest.raises(LandscapeError, match="'which'"):
        top_eigen(H, which="BE")
    with pytest.raises(LandscapeError, match="'tol'"):
        top_eigen(H, tol=0.0)
    with pytest.raises(LandscapeError, match="'tol'"):
        top_eigen(H, tol=-1e-3)
    with pytest.raises(LandscapeError, match="'max_hvp'"):
        top_eigen(H, max_hvp=0)
    with pytest.raises(LandscapeError, match="'solver'"):
        top_eigen(H, solver="power")
    with pytest.raises(LandscapeError, match="'v0'"):
        top_eigen(H, v0=np.ones(3))
    with pytest.raises(LandscapeError, match="square"):
        top_eigen(torch.zeros(3, 4))


# --------------------------------------------------------------------------- solvers in torch
class _Recording:
    """A dense torch operator that records what each product receives."""

    def __init__(self, A: Tensor) -> None:
        self.A, self.shape, self.dtype, self.device = A, tuple(A.shape), A.dtype, A.device
        self.inputs: list[tuple[type, torch.dtype]] = []

    def __matmul__(self, v):
        self.inputs.append((type(v), v.dtype))
        return self.A @ v


@pytest.mark.parametrize("solver", ["top", "min", "pairs", "hutchpp", "hutchinson", "slq"])
def test_solvers_stay_in_torch_and_move_only_small_arrays(monkeypatch, solver):
    from landscape.hessian import _linalg

    A, _ = _cluster_near_zero(200)
    A = A.to(torch.float32)  # float32 products, float64 solver vectors
    op, moved = _Recording(A), []
    real = _linalg.SolverMatmul.to_host

    def spy(t):
        moved.append(t.numel())
        return real(t)

    monkeypatch.setattr(_linalg.SolverMatmul, "to_host", staticmethod(spy))
    run = {"top": lambda: top_eigen(op, 3, which="LA", tol=1e-4),
           "min": lambda: min_eigen(op, tol=1e-3),
           "pairs": lambda: extreme_pairs(op, tol=1e-3),
           "hutchpp": lambda: hutchpp(op, 30),
           "hutchinson": lambda: hutchinson(op, 30),
           "slq": lambda: slq(op, 20, 3)}[solver]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run()
    assert op.inputs and all(t is Tensor and dt == torch.float32 for t, dt in op.inputs)
    n, n_products = 200, len(op.inputs)
    # per product only numbers of the small matrices (<= 3 ncv) come to the host; the
    # eigenvectors (n x k) once at the end
    small = moved[:-1] if solver in ("top", "min", "pairs") else moved
    assert max(small) <= 3 * 60 < n and len(moved) <= 4 * n_products + 4


def test_float32_solver_vectors_are_accurate_to_their_note(mlp, mlp_eigh):
    H = mlp[2]
    res = top_eigen(H, 3, which="LA", tol=1e-5, solver_dtype=torch.float32)
    assert res.converged.all()
    np.testing.assert_allclose(res.eigenvalues, mlp_eigh[::-1][:3], rtol=1e-5)
    tr = hutchpp(H, 30, solver_dtype=torch.float32)
    assert tr.estimate == pytest.approx(hutchpp(H, 30).estimate, rel=1e-5)
    sd = slq(H, 20, 2, solver_dtype=torch.float32)
    assert sd.top() == pytest.approx(slq(H, 20, 2).top(), rel=1e-5)
    with pytest.raises(LandscapeError, match="'solver_dtype'"):
        top_eigen(H, 2, solver_dtype=torch.float16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_solvers_on_cuda_equal_cpu(mlp):
    H = mlp[2]
    Hc = H.cuda()
    np.testing.assert_allclose(top_eigen(Hc, 3).eigenvalues, top_eigen(H, 3).eigenvalues,
                               rtol=1e-10)
    assert hutchpp(Hc, 30).estimate == pytest.approx(hutchpp(H, 30).estimate, rel=1e-10)
    assert slq(Hc, 20, 2).top() == pytest.approx(slq(H, 20, 2).top(), rel=1e-10)


# --------------------------------------------------------------------------- trace
def _decaying(n: int = 300, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=gen))
    d = 1.0 / torch.arange(1, n + 1, dtype=F64) ** 1.5
    return (Q * d) @ Q.T


def test_hutchinson_is_exact_on_a_diagonal():
    d = torch.linspace(-1.0, 3.0, 40, dtype=F64)
    res = hutchinson(torch.diag(d), 30)
    assert res.estimate == pytest.approx(float(d.sum()), abs=1e-12)
    assert res.stderr == pytest.approx(0.0, abs=1e-12)
    assert res.n_hvp == 30 and res.samples.shape == (30,)


def test_hutchpp_on_a_diagonal():
    d = torch.exp(-torch.arange(60, dtype=F64) / 5)
    res = hutchpp(torch.diag(d), 30)
    assert res.n_hvp == 30 and res.method == "hutch++"
    assert abs(res.estimate - float(d.sum())) <= 3 * res.stderr + 1e-12


@pytest.mark.parametrize("estimator", [hutchinson, hutchpp])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trace_within_three_standard_errors_on_the_exact_hessian(mlp, estimator, seed):
    H = mlp[2]
    res = estimator(H, 99, seed=seed)
    assert res.n_hvp == 99
    assert abs(res.estimate - float(torch.trace(H))) <= 3 * res.stderr


def test_trace_estimators_on_the_operator_count_products(mlp):
    op = _op(mlp)
    res = hutchpp(op, 30)
    assert res.n_hvp == op.n_hvp == 30
    assert abs(res.estimate - float(torch.trace(mlp[2]))) <= 3 * res.stderr


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    A = _decaying()
    tr = float(torch.trace(A))
    err_h = np.mean([abs(hutchinson(A, 99, seed=s).estimate - tr) for s in range(10)])
    err_pp = np.mean([abs(hutchpp(A, 99, seed=s).estimate - tr) for s in range(10)])
    assert err_pp < 0.5 * err_h


def test_hutchinson_stops_early_at_tol():
    A = _decaying(100) + torch.eye(100, dtype=F64)
    res = hutchinson(A, 1000, tol=0.01, block_size=10)
    assert res.n_hvp < 1000 and res.n_hvp % 10 == 0
    assert res.relative_stderr < 0.01


def test_trace_validation():
    A = torch.eye(5, dtype=F64)
    with pytest.raises(LandscapeError, match="'n_samples'"):
        hutchinson(A, 0)
    with pytest.raises(LandscapeError, match="'tol'"):
        hutchinson(A, 10, tol=-1.0)
    with pytest.raises(LandscapeError, match="'n_matvecs'"):
        hutchpp(A, 2)
    with pytest.raises(LandscapeError, match="square"):
        hutchinson(torch.zeros(2, 3), 5)


# --------------------------------------------------------------------------- density
def test_slq_on_the_exact_hessian(mlp, mlp_eigh):
    H = mlp[2]
    sd = slq(H, n_steps=80, n_runs=5, seed=0)
    assert isinstance(sd, SpectralDensity)
    assert sd.nodes.shape == sd.weights.shape == (5, 80) and sd.n_hvp == 400
    np.testing.assert_allclose(sd.weights.sum(axis=1), 1.0)
    assert sd.top() == pytest.approx(mlp_eigh[-1], rel=1e-6)
    assert sd.bottom() == pytest.approx(mlp_eigh[0], rel=1e-6)
    tr = float(torch.trace(H))
    assert abs(sd.trace_estimate() - tr) <= max(3 * sd.trace_stderr(), 0.1 * abs(tr))
    grid, values = sd.density()
    assert grid.shape == values.shape == (500,) and np.all(values >= 0)
    assert np.sum((values[1:] + values[:-1]) * np.diff(grid)) / 2 == pytest.approx(1.0)
    g2, v2 = sd.density(grid=np.linspace(-1, 1, 101), sigma=0.05)
    assert np.sum((v2[1:] + v2[:-1]) * np.diff(g2)) / 2 == pytest.approx(1.0)


def test_slq_on_the_operator(conv):
    op = _op(conv)
    sd = slq(op, n_steps=30, n_runs=2, seed=1)
    assert sd.n_hvp == op.n_hvp == 60 and sd.n_params == op.numel
    ev = np.linalg.eigvalsh(conv[2].numpy())
    assert sd.top() == pytest.approx(ev[-1], rel=1e-6)


def test_slq_handles_lanczos_breakdown():
    d = np.repeat([3.0, -1.0, 0.5], [10, 20, 30])
    sd = slq(torch.diag(torch.tensor(d)), n_steps=40, n_runs=3, seed=0)
    assert sd.n_hvp == 3 * 3  # every run stops after 3 steps
    for r in range(3):
        live = sd.weights[r] > 0
        np.testing.assert_allclose(np.sort(sd.nodes[r, live]), [-1.0, 0.5, 3.0], atol=1e-12)
        np.testing.assert_allclose(sd.weights[r, live], [20 / 60, 30 / 60, 10 / 60], atol=1e-12)
    assert sd.trace_estimate() == pytest.approx(d.sum())
    assert np.all(np.isfinite(sd.density()[1]))


def test_slq_validation():
    A = torch.eye(4, dtype=F64)
    with pytest.raises(LandscapeError, match="'n_steps'"):
        slq(A, n_steps=0)
    with pytest.raises(LandscapeError, match="'n_runs'"):
        slq(A, n_runs=0)
    with pytest.raises(LandscapeError, match="'sigma'"):
        slq(A).density(sigma=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert slq(A, n_steps=10).top() == pytest.approx(1.0)
