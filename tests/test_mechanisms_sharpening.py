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
