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
