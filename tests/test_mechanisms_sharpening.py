"""Sharpening: a quadratic loss whose lambda_max per checkpoint is known; a real run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape.data import DataSpec
from landscape.mechanisms import SharpeningResult, sharpening, sharpening_of_run
from landscape.models import ModelSpec
from landscape.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


class Scaled(nn.Module):
    """``s * (x @ w)``: with the MSE loss, Hessian ``(2 s^2 / N) X^T X`` at every ``w``."""

    def __init__(self, w: torch.Tensor, s: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.register_buffer("s", torch.tensor(s, dtype=w.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.s * (x @ self.w)[:, None]


def test_quadratic_loss_lambda_max_per_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = torch.randn(40, 1, generator=g, dtype=torch.float64)
    h0 = 2 / 40 * (x.T @ x)
    evals, evecs = torch.linalg.eigh(h0)
    top = evecs[:, -1]
    w0 = torch.randn(5, generator=g, dtype=torch.float64)
    scales = [1.0, 2.0, 3.0]
    # steps along the top eigenvector, then along the bottom one
    ws = [w0, w0 + 0.5 * top, w0 + 0.5 * top + 0.2 * evecs[:, 0]]
    models = [Scaled(w, s) for w, s in zip(ws, scales, strict=True)]
    r = sharpening(models, (x, y), lrs=[0.1, 0.05, 0.01], momentum=0.9, loss="mse", k=2,
                   n_trace=15, tol=1e-10)
    want = np.array([s**2 * float(evals[-1]) for s in scales])
    np.testing.assert_allclose(r.lambda_max, want, rtol=1e-8)
    np.testing.assert_allclose(r.eigenvalues[:, 1], [s**2 * float(evals[-2]) for s in scales],
                               rtol=1e-8)
    np.testing.assert_allclose(r.trace, [s**2 * float(evals.sum()) for s in scales], rtol=1e-8)
    np.testing.assert_allclose(r.threshold, [20, 40, 200])
    np.testing.assert_allclose(r.threshold_momentum, [38, 76, 380])
    np.testing.assert_allclose(r.step_in_topk, [1.0, 0.0], atol=1e-8)
    np.testing.assert_allclose(r.step_in_pca, [1.0, 1.0], atol=1e-8)  # 2 steps span the plane
    r.save(tmp_path / "s.h5")
    back = SharpeningResult.load(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.eigenvalues, r.eigenvalues)
    assert back.momentum == 0.9 and back.numbers() == r.numbers()


def test_sharpening_of_a_run(tmp_path):
    run = train(ModelSpec("mlp", {"width": 8, "depth": 1}), DataSpec("digits", subset=60),
                TrainConfig(epochs=2, lr=0.05, momentum=0.5, schedule="constant"),
                tmp_path / "run", progress=False)
    r = sharpening_of_run(run.out_dir, subset=40, n_trace=0)
    assert list(r.epochs) == [0, 1, 2]
    np.testing.assert_allclose(r.lr, 0.05)
    assert r.momentum == 0.5 and np.isnan(r.trace).all()
    assert (r.lambda_max > 0).all() and r.converged.all()
    assert r.step_in_topk.shape == (2,) and ((0 <= r.step_in_topk) & (r.step_in_topk <= 1)).all()


# --------------------------------------------------------------------------- BatchNorm at init
F64 = torch.float64


def _bn_net_with_unset_statistics() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """conv -> BatchNorm -> ReLU -> linear whose conv weights were moved far from where the
    initial running statistics (mean 0, variance 1) describe them: the eval-mode loss with
    those statistics is huge."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                        nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).to(F64)
    with torch.no_grad():
        net[0].weight.mul_(100.0)
        net[0].bias.copy_(torch.tensor([40.0, -30.0]))
        net[4].weight.mul_(5.0)
        net[1].weight.copy_(torch.tensor([1.5, 0.7]))
        net[1].bias.copy_(torch.tensor([0.2, -0.1]))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 1, 4, 4, generator=g, dtype=F64)
    y = torch.randint(0, 3, (24,), generator=g)
    return net.eval(), x, y


def _dense_lambda_max(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top eigenvalue of the eval-mode Hessian, by two dense methods that must agree."""
    from landscape.hessian import HessianOperator

    from .reference import dense_from_operator, exact_hessian

    names = [k for k, _ in net.named_parameters()]
    h_func = exact_hessian(net, x, y, names)
    h_op = dense_from_operator(HessianOperator(net, (x, y), dtype=F64))
    torch.testing.assert_close(h_op, h_func, rtol=1e-9, atol=1e-9)
    return float(torch.linalg.eigvalsh(h_func)[-1])


def test_lambda_max_at_unset_batchnorm_statistics_is_taken_with_recalibrated_ones():
    net, x, y = _bn_net_with_unset_statistics()
    with torch.no_grad():
        assert float(nn.functional.cross_entropy(net(x), y)) > 30  # unset statistics
    # the statistics SGD's forward passes would have: the data's own, in closed form
    by_hand = __import__("copy").deepcopy(net)
    with torch.no_grad():
        h = net[0](x)
        by_hand[1].running_mean.copy_(h.mean(dim=(0, 2, 3)))
        by_hand[1].running_var.copy_(h.transpose(0, 1).reshape(2, -1).var(dim=1))  # unbiased
    with torch.no_grad():
        assert float(nn.functional.cross_entropy(by_hand(x), y)) < 5
    want = _dense_lambda_max(by_hand, x, y)
    stale = _dense_lambda_max(net, x, y)
    assert abs(stale - want) > 0.5 * want  # the artefact is large here

    r = sharpening([net], (x, y), lrs=[0.1], k=1, n_trace=0, tol=1e-10, max_hvp=200)
    assert r.bn == "recalibrated"
    np.testing.assert_allclose(r.lambda_max, [want], rtol=1e-7)
    # the caller's model keeps its own (unset) statistics
    assert float(net[1].running_mean.abs().max()) == 0.0
    assert float((net[1].running_var - 1).abs().max()) == 0.0
    # the checkpoint's own statistics, on request: the old number, recorded as such
    e = sharpening([net], (x, y), lrs=[0.1], k=1, n_trace=0, tol=1e-10, max_hvp=200, bn="eval")
    assert e.bn == "eval"
    np.testing.assert_allclose(e.lambda_max, [stale], rtol=1e-7)


def test_sharpening_bn_field_round_trips_and_old_files_read_as_eval(tmp_path):
    from landscape import storage

    net, x, y = _bn_net_with_unset_statistics()
    r = sharpening([net, net], (x, y), lrs=[0.1, 0.1], n_trace=0, tol=1e-6)
    r.save(tmp_path / "s.h5")
    assert SharpeningResult.load(tmp_path / "s.h5").bn == "recalibrated"
    g = r.to_group()
    del g.attrs["bn"]  # a file written before the field existed
    storage.update_file(tmp_path / "old.h5", {"sharpening": g})
    assert SharpeningResult.load(tmp_path / "old.h5").bn == "eval"
    plain = sharpening([nn.Linear(4, 3).to(F64)], (torch.randn(8, 4, dtype=F64),
                                                  torch.randint(0, 3, (8,))),
                       lrs=[0.1], n_trace=0)
    assert plain.bn == "no batchnorm"


# --------------------------------------------------------------------------- Adam: P^-1 H
def test_preconditioned_eigenvalues_match_dense_references():
    """lambda(P^-1 H) by Lanczos on P^-1/2 H P^-1/2 against dense float64 references: the
    Hessian by torch.func.hessian and by a double-backward HVP loop, and eig of the
    non-symmetric P^-1 H itself."""
    from .conftest import toy_classifier
    from .reference import exact_hessian, flat_loss_fn

    model, data = toy_classifier(3)
    names = [n for n, _ in model.named_parameters()]
    h1 = exact_hessian(model, data.x, data.y, names)
    f, theta = flat_loss_fn(model, data.x, data.y, names)
    theta = theta.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(theta), theta, create_graph=True)
    eye = torch.eye(len(theta), dtype=torch.float64)
    h2 = torch.stack([torch.autograd.grad(grad, theta, e, retain_graph=True)[0] for e in eye])
    torch.testing.assert_close(h1, h2, rtol=1e-10, atol=1e-10)
    g = torch.Generator().manual_seed(5)
    p = {n: torch.rand(q.shape, generator=g, dtype=torch.float64) * 0.1 + 1e-3
         for n, q in model.named_parameters()}
    d = torch.cat([p[n].reshape(-1) for n in names])
    sym = torch.linalg.eigvalsh(h1 / d.sqrt()[:, None] / d.sqrt()[None, :])
    nonsym = torch.linalg.eigvals(h2 / d[:, None])
    assert nonsym.imag.abs().max() < 1e-8
    np.testing.assert_allclose(np.sort(nonsym.real.numpy())[-2:], sym[-2:].numpy(),
                               rtol=1e-9)
    r = sharpening([model], data, lrs=[0.01], k=2, n_trace=0, tol=1e-10,
                   preconditioners=[p], beta1=0.9)
    np.testing.assert_allclose(r.precond_eigenvalues[0], sym.numpy()[::-1][:2], rtol=1e-8)
    assert r.precond_converged.all() and r.optimizer == "adamw" and r.beta1 == 0.9
    np.testing.assert_allclose(r.threshold_adam, [3800.0])
    np.testing.assert_allclose(r.lambda_max, [float(torch.linalg.eigvalsh(h1)[-1])], rtol=1e-6)
    # P = 1 everywhere is the Hessian itself
    ones = {n: torch.ones_like(v) for n, v in p.items()}
    r1 = sharpening([model], data, lrs=[0.01], n_trace=0, tol=1e-10, preconditioners=[ones],
                    beta1=0.0)
    np.testing.assert_allclose(r1.precond_lambda_max, r1.lambda_max, rtol=1e-8)
    with pytest.raises(Exception, match="go together"):
        sharpening([model], data, lrs=[0.01], preconditioners=[p])


def test_sharpening_of_an_adamw_run(tmp_path, capsys):
    """Epoch 0 has no preconditioner (NaN); later checkpoints' P^-1 H eigenvalue is the one
    from the stored second moments; eta is the rate after the warmup; saved and read back."""
    from landscape.checkpoints import load_checkpoint, load_optimizer_state
    from landscape.hessian import HessianOperator, PreconditionedOperator, top_eigen
    from landscape.optim import adam_preconditioner

    config = TrainConfig(epochs=2, lr=2e-3, optimizer="adamw", betas=(0.9, 0.99),
                         warmup_steps=2, schedule="constant")
    run = train(ModelSpec("mlp", {"width": 8, "depth": 1}), DataSpec("digits", subset=60),
                config, tmp_path / "run", progress=False)
    r = sharpening_of_run(run.out_dir, subset=40, n_trace=0, tol=1e-6)
    assert list(r.epochs) == [0, 1, 2] and r.momentum == 0.0 and r.beta1 == 0.9
    np.testing.assert_allclose(r.lr, [1e-3, 2e-3, 2e-3])  # step 0 of the warmup, then lr
    np.testing.assert_allclose(r.threshold_adam, 38 / r.lr)
    pre = r.precond_lambda_max
    assert np.isnan(pre[0]) and np.isfinite(pre[1:]).all() and r.precond_converged[1:].all()
    ckpt = load_checkpoint(run.final)
    from landscape.data import load_data

    data = load_data(DataSpec("digits", subset=60), "train").subset(40)
    op = HessianOperator(ckpt.model, (data.x, data.y))
    state = load_optimizer_state(run.final)
    want = top_eigen(PreconditionedOperator(op, adam_preconditioner(state, op.names)), 1,
                     which="LA", tol=1e-6).eigenvalues[0]
    np.testing.assert_allclose(pre[-1], want, rtol=1e-4)
    assert pre[-1] > 10 * r.lambda_max[-1]  # P is small: sqrt(v_hat) << 1
    nums = r.numbers()
    assert nums["sharpening_precond_final_over_threshold"] == pytest.approx(pre[-1] / (38 / 2e-3))
    r.save(tmp_path / "s.h5")
    back = SharpeningResult.load(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.precond_eigenvalues, r.precond_eigenvalues)
    assert back.optimizer == "adamw" and back.beta1 == 0.9
    ax = r.plot()
    labels = [t.get_label() for t in ax.get_lines()]
    assert "run λmax(P⁻¹H)" in labels and "run 38/η" in labels
    from landscape.cli.main import main

    assert main(["sharpening", str(run.out_dir), "--subset", "40", "--trace-samples", "0",
                 "--every", "2", "--out", str(tmp_path / "cli.h5")]) == 0
    said = capsys.readouterr().out
    assert "Adam: lambda_max(P^-1 H) per checkpoint nan, " in said
    assert "(2+2 beta1)/((1-beta1) eta) = 1.9e+04 at the end (beta1 0.9)" in said
