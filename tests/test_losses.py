"""Per-example weighted losses against closed forms (torch's own reductions)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import LandscapeError
from landscape.evaluation import Evaluator, evaluate
from landscape.losses import BatchLoss, resolve_loss


def _mean(loss: BatchLoss, out, batch) -> float:
    t = loss.terms(out, batch)
    return float(t.total) / float(t.weight)


def test_class_and_token_cross_entropy_match_torch():
    torch.manual_seed(0)
    ce = resolve_loss("cross_entropy")
    z, y = torch.randn(5, 4), torch.tensor([0, 3, -100, 1, 2])
    assert math.isclose(_mean(ce, z, (None, y)), float(F.cross_entropy(z, y)), rel_tol=1e-6)
    # sequences (B, T, V): mean over counted tokens, not a per-sample sum over tokens
    z3, y2 = torch.randn(3, 6, 7), torch.randint(0, 7, (3, 6))
    y2[0, 4:] = -100
    ref = F.cross_entropy(z3.reshape(-1, 7), y2.reshape(-1))
    t = ce.terms(z3, (None, y2), accuracy=True)
    assert math.isclose(float(t.total / t.weight), float(ref), rel_tol=1e-6)
    assert int(t.weight) == 16 and int(t.counted) == 16
    keep = y2 != -100
    assert int(t.correct) == int(((z3.argmax(-1) == y2) & keep).sum())
    # torch's (B, C, T) layout
    zc = z3[:, :, :5]  # (3, 6, 5) read as C=6 classes over T=5 positions
    yc = torch.randint(0, 6, (3, 5))
    assert math.isclose(_mean(ce, zc, (None, yc)), float(F.cross_entropy(zc, yc)), rel_tol=1e-6)


def test_cross_entropy_refuses_float_targets_and_bad_shapes():
    ce = resolve_loss("cross_entropy")
    with pytest.raises(LandscapeError, match="integer class targets"):
        ce.check_batch((torch.zeros(2, 3), torch.zeros(2)))
    with pytest.raises(LandscapeError, match="shape"):
        ce.terms(torch.zeros(2, 3, 4), (None, torch.zeros(2, 5, dtype=torch.long)))
    with pytest.raises(LandscapeError, match="needs targets"):
        ce.check_batch(torch.zeros(2, 3))
    with pytest.raises(LandscapeError, match="loss"):
        resolve_loss("hinge")
    with pytest.raises(LandscapeError, match="cannot import"):
        resolve_loss("no_such_pkg_xyz.mod:f")


def test_evaluator_refuses_float_targets_before_computing():
    lin = nn.Linear(3, 2)
    with pytest.raises(LandscapeError, match="integer class targets"):
        Evaluator(lin, {"train": (torch.randn(8, 3), torch.randn(8))})


def test_regression_has_no_accuracy():
    torch.manual_seed(0)
    lin = nn.Linear(3, 2)
    x, y = torch.randn(10, 3), torch.randn(10, 2)
    m = evaluate(lin, (x, y), loss="mse", batch_size=3)
    assert m.accuracy is None
    with torch.no_grad():
        assert math.isclose(m.loss, float(F.mse_loss(lin(x), y)), rel_tol=1e-6)


def test_user_losses_output_and_model_styles():
    torch.manual_seed(0)
    lin = nn.Linear(3, 4)
    x, y = torch.randn(7, 3), torch.randint(0, 4, (7,))
    with torch.no_grad():
        ref = float(F.cross_entropy(lin(x), y))

    def per_sample(out, target):
        return F.cross_entropy(out, target, reduction="none")

    def model_style(model, batch):
        xb, yb = batch
        return F.cross_entropy(model(xb), yb)

    def pair(out, target):
        return F.cross_entropy(out, target, reduction="sum"), target.numel()

    for fn in (per_sample, model_style, pair):
        m = evaluate(lin, (x, y), loss=fn, batch_size=3)
        assert math.isclose(m.loss, ref, rel_tol=1e-6), fn.__name__
    assert BatchLoss(model_style).takes_model and not BatchLoss(per_sample).takes_model
    with pytest.raises(LandscapeError, match="per-sample"):
        evaluate(lin, (x, y), loss=lambda o, t: o[:2, 0])


def test_sample_terms_group_tokens_by_sequence():
    torch.manual_seed(0)
    ce = resolve_loss("cross_entropy")
    z, y = torch.randn(4, 3), torch.tensor([0, -100, 2, 1])
    t, w = ce.terms(z, (None, y)).sample_terms()
    ref = F.cross_entropy(z, y, reduction="none", ignore_index=-100)[y != -100]
    assert torch.equal(t, ref.double()) and torch.equal(w, torch.ones(3, dtype=torch.float64))
    z3, y2 = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5))
    y2[1, 2:] = -100
    t, w = ce.terms(z3, (None, y2), accuracy=True).sample_terms()  # accuracy keeps them
    tok = F.cross_entropy(z3.reshape(-1, 7), y2.reshape(-1), reduction="none").reshape(3, 5)
    torch.testing.assert_close(t, tok.sum(1).double())
    assert w.tolist() == [5.0, 2.0, 5.0]
    assert resolve_loss(lambda out, target: out.mean()).terms(z, (None, y)).sample_terms() \
        is None
