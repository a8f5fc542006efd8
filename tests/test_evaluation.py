import math

import pytest
import torch
from torch import nn

from landscape._functional import named_tensors, resolve_loss
from landscape.errors import LandscapeError
from landscape.evaluation import Evaluator, evaluate

from .conftest import Data


def test_loss_and_accuracy_match_direct_computation(tiny_mlp, image_data):
    d = image_data["train"]
    m = evaluate(tiny_mlp, d, batch_size=37)  # uneven batches
    with torch.no_grad():
        out = tiny_mlp(d.x)
    ref = nn.functional.cross_entropy(out.double(), d.y).item()
    assert math.isclose(m.loss, ref, rel_tol=1e-6)
    assert m.accuracy == pytest.approx((out.argmax(1) == d.y).float().mean().item())
    assert m.n == len(d)


def test_batch_size_does_not_change_result(tiny_conv, image_data):
    a = evaluate(tiny_conv, image_data["train"], batch_size=7).loss
    b = evaluate(tiny_conv, image_data["train"], batch_size=1000).loss
    assert math.isclose(a, b, rel_tol=1e-6)


def test_evaluator_does_not_modify_model(tiny_conv, image_data):
    before = {k: v.clone() for k, v in tiny_conv.state_dict().items()}
    ev = Evaluator(tiny_conv, image_data, bn="recalibrate", batch_size=50, bn_batches=2)
    w = named_tensors(tiny_conv)
    ev({k: v * 1.5 for k, v in w.items()})
    for k, v in tiny_conv.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not tiny_conv.training


def test_recalibrate_equals_exact_batch_statistics(tiny_conv, image_data):
    ev = Evaluator(tiny_conv, image_data, bn="recalibrate", batch_size=7, bn_batches=3,
                   bn_batch_size=40)
    ev.evaluate_loaded()
    x = image_data["train"].x[:120]
    with torch.no_grad():
        h = tiny_conv.conv(x)
    bn = ev.model.bn
    torch.testing.assert_close(bn.running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert not bn.training


def test_recalibrate_refuses_states(tiny_conv, image_data):
    with pytest.raises(LandscapeError, match="recalibrate"):
        Evaluator(tiny_conv, image_data, bn="recalibrate", what="states")


def test_at_is_independent_of_history(tiny_mlp, image_data):
    ev = Evaluator(tiny_mlp, image_data)
    base = named_tensors(tiny_mlp)
    d = ({k: torch.randn_like(v) * 0.1 for k, v in base.items()},)
    a = ev.at(base, d, (0.3,))
    ev.at(base, d, (-0.9,))
    b = ev.at(base, d, (0.3,))
    assert a == b


def test_mse_and_callable_losses(image_data):
    torch.manual_seed(0)
    lin = nn.Linear(3, 2)
    x = torch.randn(20, 3)
    y = torch.randn(20, 2)
    m = evaluate(lin, Data(x, y), loss="mse")
    assert m.accuracy is None
    with torch.no_grad():
        ref = ((lin(x) - y) ** 2).mean().item()
    assert math.isclose(m.loss, ref, rel_tol=1e-6)
    m2 = evaluate(lin, Data(x, y), loss=lambda o, t: ((o - t) ** 2).mean())
    assert math.isclose(m2.loss, ref, rel_tol=1e-6)
    with pytest.raises(LandscapeError, match="loss"):
        resolve_loss("hinge")


def test_nan_weights_give_nan_loss(tiny_mlp, image_data):
    w = named_tensors(tiny_mlp)
    bad = {k: torch.full_like(v, float("nan")) for k, v in w.items()}
    m = Evaluator(tiny_mlp, image_data)(bad)["train"]
    assert math.isnan(m.loss)


# ----------------------------------------------------------------------------- standard errors
def _std_err(per) -> float:
    import numpy as np

    per = np.asarray(per, dtype=np.float64)
    return float(np.std(per, ddof=1) / np.sqrt(len(per)))


@pytest.mark.usefixtures("one_thread")
def test_loss_se_is_std_over_sqrt_n_for_any_batch_size_and_streamed_data():
    from torch.utils.data import DataLoader, TensorDataset

    from .conftest import toy_classifier

    model, d = toy_classifier(0, n=61)
    with torch.no_grad():
        per = nn.functional.cross_entropy(model(d.x), d.y, reduction="none")
    ref = _std_err(per)
    for bs in (1, 7, 16, 61, 100):  # uneven last batches
        m = Evaluator(model, {"t": d}, batch_size=bs).evaluate_loaded()["t"]
        assert m.loss_se == pytest.approx(ref, rel=1e-12), bs
    stream = DataLoader(TensorDataset(d.x, d.y), batch_size=9)
    for budget in (0, None):  # streamed every pass, or kept on the device after the first
        ev = Evaluator(model, {"t": stream}, data_budget=budget)
        assert ev.evaluate_loaded()["t"].loss_se == pytest.approx(ref, rel=1e-12)


class _TinyLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 5)
        self.out = nn.Linear(5, 7)

    def forward(self, x):
        return self.out(torch.tanh(self.emb(x)))


def _ratio_se(t, w) -> float:
    import numpy as np

    t, w = np.asarray(t, np.float64), np.asarray(w, np.float64)
    keep = w > 0
    t, w = t[keep], w[keep]
    n, r = len(t), t.sum() / w.sum()
    return float(np.sqrt(n / (n - 1) * np.sum((t - r * w) ** 2)) / w.sum())


@pytest.mark.usefixtures("one_thread")
def test_token_weighted_loss_se_is_the_ratio_estimator_over_sequences():
    from landscape.data import TensorData

    torch.manual_seed(0)
    model = _TinyLM().double().eval()
    x = torch.randint(0, 7, (11, 6))
    y = torch.randint(0, 7, (11, 6))
    y[0, 3:] = -100  # sequences of different lengths
    y[4, 1:] = -100
    y[7, :] = -100  # nothing counted: not a sample of the mean
    with torch.no_grad():
        tok = nn.functional.cross_entropy(model(x).reshape(-1, 7), y.reshape(-1),
                                          reduction="none").reshape(11, 6)
    keep = y != -100
    t, w = (tok * keep).sum(1), keep.sum(1)
    ref = _ratio_se(t, w)
    for bs in (1, 3, 5, 11):
        m = Evaluator(model, {"t": TensorData(x, y, "t")}, batch_size=bs).evaluate_loaded()["t"]
        assert m.loss == pytest.approx(float(tok[keep].mean()), rel=1e-12)
        assert m.loss_se == pytest.approx(ref, rel=1e-12), bs
    # equal lengths: the ratio estimator is the s/sqrt(n) of the sequences' mean losses
    y2 = torch.randint(0, 7, (11, 6))
    with torch.no_grad():
        tok2 = nn.functional.cross_entropy(model(x).reshape(-1, 7), y2.reshape(-1),
                                           reduction="none").reshape(11, 6)
    m = Evaluator(model, {"t": TensorData(x, y2, "t")}, batch_size=4).evaluate_loaded()["t"]
    assert m.loss_se == pytest.approx(_std_err(tok2.mean(1)), rel=1e-12)


@pytest.mark.usefixtures("one_thread")
def test_regression_loss_se_and_undefined_cases():
    from landscape.data import TensorData

    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    x, y = torch.randn(23, 3, dtype=torch.float64), torch.randn(23, 2, dtype=torch.float64)
    with torch.no_grad():
        per = ((model(x) - y) ** 2).mean(1)
    m = evaluate(model, TensorData(x, y, "r"), loss="mse", batch_size=5)
    assert m.loss_se == pytest.approx(_std_err(per), rel=1e-12)
    # undefined: one sample; a user loss that returns only its mean; a diverged point
    assert math.isnan(evaluate(model, TensorData(x[:1], y[:1], "r"), loss="mse").loss_se)

    def mean_only(out, target):
        return ((out - target) ** 2).mean()

    assert math.isnan(evaluate(model, TensorData(x, y, "r"), loss=mean_only).loss_se)
    nan_w = {k: torch.full_like(v, float("nan")) for k, v in named_tensors(model).items()}
    assert math.isnan(evaluate(model, TensorData(x, y, "r"), nan_w, loss="mse").loss_se)


@pytest.mark.usefixtures("one_thread")
def test_loss_se_has_no_cancellation_for_a_large_mean():
    """Losses 1e8 + 1e-2 noise: raw power sums (Σl² - n mean²) lose every digit of the
    variance in float64; the centred merge keeps it to rounding."""
    from landscape.data import TensorData

    g = torch.Generator().manual_seed(1)
    v = 1e8 + 1e-2 * torch.randn(50, generator=g, dtype=torch.float64)

    def given(out, target):  # the per-sample "loss" is the target itself
        return target + 0.0 * out[:, 0]

    data = TensorData(torch.zeros(50, 1, dtype=torch.float64), v, "v")
    for bs in (3, 16, 50):
        m = evaluate(nn.Linear(1, 1).double(), data, loss=given, batch_size=bs)
        assert m.loss_se == pytest.approx(_std_err(v), rel=1e-6), bs


# --------------------------------------------------------------------------- memory format
class _FlattensWithView(nn.Module):
    """A conv net whose forward needs contiguous activations (``view`` on a feature map)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.fc(h.view(h.size(0), -1))


def test_channels_last_auto_rule(tiny_conv, tiny_mlp, image_data):
    from landscape.evaluation import resolve_channels_last

    d = image_data["train"]
    assert resolve_channels_last(tiny_conv, d) is True  # conv net, CPU, float32, 4-D inputs
    assert resolve_channels_last(tiny_conv, d, dtype=torch.float64) is False
    assert resolve_channels_last(tiny_conv, d, autocast="bf16") is False
    assert resolve_channels_last(tiny_mlp, Data(d.x.flatten(1), d.y)) is False  # no conv
    assert resolve_channels_last(_FlattensWithView(), d) is False  # view() fails: not chosen
    with pytest.raises(LandscapeError, match="channels_last"):  # ... where forcing it fails
        Evaluator(_FlattensWithView(), image_data, channels_last=True)
    assert resolve_channels_last(tiny_mlp, d, channels_last=True) is True  # a bool is kept
    with pytest.raises(LandscapeError, match="channels_last"):
        resolve_channels_last(tiny_conv, d, channels_last="yes")
    assert Evaluator(tiny_conv, image_data).channels_last is True
    assert Evaluator(_FlattensWithView(), image_data).channels_last is False


def test_channels_last_gives_the_contiguous_values(tiny_conv, image_data):
    base = named_tensors(tiny_conv)
    shifted = {k: v * 1.1 for k, v in base.items()}
    auto = Evaluator(tiny_conv, image_data, batch_size=64)
    off = Evaluator(tiny_conv, image_data, batch_size=64, channels_last=False)
    assert auto.channels_last and not off.channels_last
    assert auto.model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    for point in (base, shifted):
        a, b = auto(point), off(point)
        for split in image_data:
            assert math.isclose(a[split].loss, b[split].loss, rel_tol=1e-6)
            assert a[split].accuracy == b[split].accuracy
