"""Finite-difference Hessian-vector products (``hvp="finite-difference"``).

Ground truth: a dense float64 Hessian of a tiny transformer built two ways (reverse-over-reverse
:func:`torch.autograd.functional.hessian`, and exact HVPs applied to every basis vector), both
under the math attention kernel. ``torch.func.hessian`` (forward over reverse) is deliberately
not used: on an ``nn.TransformerEncoder`` it has disagreed with every other method.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from landscape.cli import main as cli_main
from torch import nn

from landscape import storage
from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.hessian import CurvatureResult, HessianOperator, compute_curvature
from landscape.hessian.operator import differentiable_attention
from landscape.models import ModelSpec

from .reference import dense_from_operator, flat_loss_fn

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyTransformer(nn.Module):
    """Linear embedding, one ``TransformerEncoderLayer`` (default attention kernels; GELU, as
    a ReLU's kinks make any difference quotient that straddles one meaningless), mean pooling,
    a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu",
                                              batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.inp(x)).mean(1))


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = TinyTransformer().double()
    x = torch.randn(24, 5, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (24,))
    names = [k for k, _ in model.named_parameters()]
    f, theta0 = flat_loss_fn(model, x, y, names)
    with differentiable_attention():
        H1 = torch.autograd.functional.hessian(f, theta0)
        exact = HessianOperator(model, (x, y), dtype=torch.float64, cache_graph=True)
        H2 = dense_from_operator(exact)
    return model, (x, y), (H1 + H1.T) / 2, H2


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unit(n: int, seed: int) -> torch.Tensor:
    v = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def test_dense_references_agree(problem):
    _, _, H1, H2 = problem
    assert H1.shape[0] > 600
    torch.testing.assert_close(H2, H1, rtol=0, atol=1e-10 * float(H1.abs().max()))


def test_default_kernels_have_no_double_backward(problem):
    """The reason for the option: autograd HVPs through the default CPU attention kernel fail."""
    model, (x, y), _, _ = problem
    ps = list(model.parameters())
    model.eval()
    loss = nn.functional.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, ps, create_graph=True)
    try:
        torch.autograd.grad(sum(t.sum() for t in g), ps)
    except RuntimeError as e:
        assert "not implemented" in str(e)
    else:
        pytest.skip("this torch build's default attention kernel has a double backward")


def test_fd_products_match_dense_within_estimate(problem):
    model, data, H1, _ = problem
    fd = HessianOperator(model, data, hvp="finite-difference", dtype=torch.float64)
    exact = HessianOperator(model, data, dtype=torch.float64)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    eps_mach = torch.finfo(torch.float64).eps
    assert fd.fd_step == pytest.approx(eps_mach ** (1 / 3) * (1 + float(theta.norm())))
    assert fd.cache_graph is False and "finite-difference" in repr(fd)
    for seed in range(3):
        v = _unit(fd.numel, seed) * (0.5 + seed)  # the step is relative to ||v||
        truth = H1 @ v
        got = fd @ v
        err = float((got - truth).norm())
        assert err <= fd.fd_error(v) * float(v.norm())
        assert err <= 1e-7 * float(truth.norm())
        torch.testing.assert_close(exact @ v, truth, rtol=1e-9, atol=1e-9)
    assert torch.equal(fd @ torch.zeros(fd.numel, dtype=torch.float64),
                       torch.zeros(fd.numel, dtype=torch.float64))


def test_fd_error_covers_float32(problem):
    """float32 gradients are rounded coarsely: the products are off by percents, and the
    estimate says so (it was 2-4x the actual error on this model)."""
    model, data, H1, _ = problem
    fd = HessianOperator(model, data, hvp="finite-difference", dtype=torch.float32)
    for seed in range(2):
        v = _unit(fd.numel, seed)
        err = float(((fd @ v.float()).double() - H1 @ v).norm())
        assert err <= fd.fd_error(v)


def test_top2_within_stated_bound(problem):
    model, data, H1, _ = problem
    dense = np.sort(np.linalg.eigvalsh(H1.numpy()))[::-1][:2]
    tol = 1e-8
    before = _params(model)
    res = compute_curvature(model, data, top_k=2, tol=tol, dtype=torch.float64,
                            hvp="finite-difference", batch_size=10)
    fd = res.provenance["finite_difference"]
    assert res.recipe["hvp"] == "finite-difference"
    assert fd["step"] > 0 and "cbrt(eps_mach)" in fd["rule"] and "truncation" in fd["error_bound"]
    assert len(fd["error_estimates"]["top"]) == 2
    bound = fd["error_estimate"]
    assert 0 < bound < 1e-6 * dense[0]
    assert res.top_converged.all()
    for got, want in zip(res.top_eigenvalues, dense, strict=True):
        assert abs(got - want) <= bound + tol * abs(want), (got, want, bound)
    after = _params(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # exact products record nothing new (older files stay comparable)
    ex = compute_curvature(model, data, top_k=1, tol=1e-6, dtype=torch.float64)
    assert "hvp" not in ex.recipe and "finite_difference" not in ex.provenance


class _Boom(nn.Module):
    """A model that raises on its ``fail_at``-th forward pass."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.calls, self.fail_at = 0, fail_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        return self.lin(x)


def test_parameters_untouched_even_on_exceptions():
    torch.manual_seed(1)
    model = _Boom(fail_at=10**9)
    data = (torch.randn(6, 3), torch.randint(0, 2, (6,)))
    before = _params(model)
    op = HessianOperator(model, data, hvp="finite-difference", batch_size=3)
    v = torch.randn(op.numel)
    op @ v
    assert all(torch.equal(before[k], v_) for k, v_ in _params(model).items())
    model.fail_at = model.calls + 3  # the plus point's second batch, mid-product
    with pytest.raises(RuntimeError, match="boom"):
        op @ v
    assert all(torch.equal(before[k], v_) for k, v_ in _params(model).items())
    assert all(p.grad is None for p in model.parameters())
    model.fail_at = 0
    torch.testing.assert_close(op @ v, op @ v)  # the operator's own point is intact too


def test_bad_parameters():
    model = nn.Linear(3, 2)
    data = (torch.randn(4, 3), torch.randint(0, 2, (4,)))
    with pytest.raises(LandscapeError, match="'hvp' parameter"):
        HessianOperator(model, data, hvp="fd")
    with pytest.raises(LandscapeError, match="cache_graph=True applies to hvp='autograd'"):
        HessianOperator(model, data, hvp="finite-difference", cache_graph=True)
    with pytest.raises(LandscapeError, match="fd_error applies"):
        HessianOperator(model, data).fd_error()
    with pytest.raises(LandscapeError, match="'hvp' parameter"):
        compute_curvature(model, data, top_k=1, hvp="exact")


def test_cli_hvp_finite_difference(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    spec, data = ModelSpec("mlp", {"width": 8, "depth": 1}), DataSpec("digits", subset=60)
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "m.pt", spec.build(), spec, data=data.to_dict())
    out = tmp_path / "h.h5"
    rc = cli_main.main(["hessian", str(ck), "--top-k", "1", "--hvp", "finite-difference",
                        "--dtype", "float64", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "finite-difference HVPs: step h" in text
    res = CurvatureResult.load(out)
    assert res.recipe["hvp"] == "finite-difference"
    assert res.provenance["finite_difference"]["error_estimate"] > 0
    assert storage.file_kind(out) == "landscape"
    assert cli_main.main(["hessian", str(ck), "--hvp", "nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    rc = cli_main.main(["hessian", str(ck), "--grid", str(out), "--hvp", "finite-difference"])
    assert rc == 2 and "--hvp" in capsys.readouterr().err
