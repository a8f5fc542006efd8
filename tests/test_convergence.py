"""Stationarity against dense float64 references, trends, matched-loss checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.convergence import loss_trend, matched_checkpoint, stationarity
from landscape.data import DataSpec, TensorData, load_data
from landscape.errors import LandscapeError
from landscape.hessian.operator import HessianOperator

from .reference import exact_gradient, exact_hessian, exact_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_numbers_equal_the_dense_reference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Tanh(), nn.Linear(4, 10)).eval()
    data = load_data(DataSpec("digits", subset=64))
    names = HessianOperator(model, data).names
    st = stationarity(model, data)
    L = exact_loss(model, data.x, data.y, names)
    g = exact_gradient(model, data.x, data.y, names)
    lam = float(torch.linalg.eigvalsh(exact_hessian(model, data.x, data.y, names)).max())
    assert st.loss == pytest.approx(L, rel=1e-5)
    assert st.grad_norm == pytest.approx(float(g.norm()), rel=1e-4)
    assert st.lambda_max == pytest.approx(lam, rel=1e-4)
    assert st.reference_loss == pytest.approx(math.log(10))  # 10 classes: ln C
    progress = math.log(10) - L
    if progress > 0:
        assert st.gradient_gain == pytest.approx(float(g.norm()) ** 2 / (2 * lam * progress),
                                                 rel=1e-3)
    # an untrained net is far from a minimum
    assert not st.at_minimum and ("gradient step" in st.reason or "not trained" in st.reason)
    assert st.to_dict()["at_minimum"] is False


def _least_squares():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.3 * rng.standard_normal(80)
    data = TensorData(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
                      "lstsq")
    model = nn.Linear(5, 1)
    X1 = np.hstack([x, np.ones((80, 1))])
    coef = np.linalg.lstsq(X1, y, rcond=None)[0]
    with torch.no_grad():
        model.weight.copy_(torch.tensor(coef[:5][None], dtype=torch.float32))
        model.bias.copy_(torch.tensor(coef[5:], dtype=torch.float32))
    return model.eval(), data


def test_least_squares_minimum_is_a_minimum_and_a_shifted_point_is_not():
    model, data = _least_squares()
    st = stationarity(model, data, loss="mse")
    assert st.at_minimum and st.reason is None and st.gradient_gain < 1e-8
    with torch.no_grad():
        model.bias.add_(1.0)
    off = stationarity(model, data, loss="mse")
    assert not off.at_minimum and off.gradient_gain > 0.01


def test_a_descending_history_is_not_a_minimum():
    model, data = _least_squares()
    hist = [{"train_loss": v} for v in (1.0, 0.8, 0.5, 0.3)]
    st = stationarity(model, data, loss="mse", history=hist)
    assert not st.at_minimum and "still fell" in st.reason
    flat = [{"train_loss": v} for v in (0.301, 0.3005, 0.3002, 0.3)]
    assert stationarity(model, data, loss="mse", history=flat).at_minimum


def test_judge_against_the_progress_made():
    """The digits runs of the issue: ResNet-20 converged (train loss 0.039, ‖g‖ 0.474, λmax
    25.5) is at a minimum measured against its progress (ln 10 − 0.039) although one step
    would still remove 11% of its loss; a plain-56 whose loss fell 1.796 -> 1.745 over its
    last 3 epochs (9% of its 0.56-nat progress) is not; a net at chance has not trained."""
    from landscape.convergence import judge

    ln10 = math.log(10)
    res = judge(0.0389, 0.4743, 25.46, reference_loss=ln10,
                history=[{"train_loss": v} for v in (0.056, 0.043, 0.038, 0.037)])
    assert res.at_minimum, res.reason
    assert res.gradient_gain == pytest.approx(0.4743**2 / (2 * 25.46 * (ln10 - 0.0389)))
    against_loss = judge(0.0389, 0.4743, 25.46)
    assert not against_loss.at_minimum and "of the loss" in against_loss.reason
    plain = judge(1.745, 0.05, 1000.0, reference_loss=ln10,
                  history=[{"train_loss": v} for v in (1.796, 1.760, 1.743, 1.745)])
    assert not plain.at_minimum and "still fell" in plain.reason
    assert plain.trend == pytest.approx((1.796 - 1.745) / (ln10 - 1.745))
    chance = judge(2.35, 0.01, 5.0, reference_loss=ln10)
    assert not chance.at_minimum and "has not trained" in chance.reason


def test_loss_trend():
    hist = [{"train_loss": v} for v in (4.0, 2.0, 1.0, 0.5)]
    assert loss_trend(hist, 3) == pytest.approx((4.0 - 0.5) / 0.5)
    assert loss_trend(hist, 1) == pytest.approx(1.0)
    assert loss_trend(hist[:2], 3) is None
    assert loss_trend([{"train_loss": math.nan}] * 4, 3) is None


def test_matched_checkpoint():
    hist = [{"epoch": i, "train_loss": v, "checkpoint": f"epoch_{i:04d}.pt"}
            for i, v in enumerate((2.3, 1.9, 0.8, 0.1))]
    assert matched_checkpoint(hist, 1.95, how="first")["epoch"] == 1
    assert matched_checkpoint(hist, 0.8)["checkpoint"] == "epoch_0002.pt"
    assert matched_checkpoint(hist, 0.01) is None
    # the first entry below a target can be far below it: the nearer neighbour is taken
    assert matched_checkpoint(hist, 0.5, how="first")["epoch"] == 3
    assert matched_checkpoint(hist, 0.5)["epoch"] == 2  # |log(0.8/0.5)| < |log(0.1/0.5)|
    assert matched_checkpoint(hist, 0.2)["epoch"] == 3
    for bad in (math.nan, 0.0):
        with pytest.raises(LandscapeError, match="'target'"):
            matched_checkpoint(hist, bad)
    with pytest.raises(LandscapeError, match="'how'"):
        matched_checkpoint(hist, 0.5, how="last")
