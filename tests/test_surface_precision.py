"""Surfaces evaluated to a stated precision (``rel_precision``).

Ground truth by enumeration: the per-sample losses of the whole data set in float64, put in the
documented random order (``torch.randperm`` with a generator seeded with ``precision_seed``),
and the first prefix of whole batches -- at least ``min_batches`` of them and ``min_samples``
samples -- whose standard error ``s / sqrt(n)`` is at most ``R * |mean|``.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from landscape.cli import main as cli_main
from torch import nn

from landscape._functional import named_tensors
from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec, StreamData, TensorData, permuted
from landscape.directions import random_directions
from landscape.errors import LandscapeError
from landscape.evaluation import Evaluator
from landscape.models import ModelSpec
from landscape.surface import Surface, compute_surface

from .conftest import assert_h5_equal

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(n: int = 400, seed: int = 0) -> tuple[nn.Module, TensorData]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, TensorData(x, y, "train")


def _expected(model: nn.Module, data: TensorData, r: float, bs: int, min_batches: int = 2,
              seed: int = 0, min_samples: int = 256) -> tuple[int, float, float]:
    """``(n, loss, se)`` of the documented stopping rule, by enumeration of the prefixes."""
    with torch.no_grad():
        per = F.cross_entropy(model(data.x), data.y, reduction="none").double()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    per = per[order].numpy()
    n_total = len(per)
    k = 0
    while True:
        k += 1
        n = min(k * bs, n_total)
        mean, se = per[:n].mean(), per[:n].std(ddof=1) / math.sqrt(n)
        if n == n_total or (k >= min_batches and n >= min_samples and se <= r * abs(mean)):
            return n, float(mean), float(se)


@pytest.mark.parametrize(("r", "bs", "floor"), [(0.05, 16, 1), (0.02, 32, 1), (0.03, 7, 1),
                                                (1e-6, 50, 1), (0.05, 16, 256), (0.5, 7, 100)])
def test_stopping_rule_matches_enumeration(r, bs, floor):
    model, data = _problem()
    ev = Evaluator(model, {"train": data}, batch_size=bs, rel_precision=r, min_samples=floor)
    m = ev.evaluate_loaded()["train"]
    n, loss, se = _expected(model, data, r, bs, min_samples=floor)
    assert n >= min(floor, len(data))
    assert m.n == n
    assert m.loss == pytest.approx(loss, rel=1e-12)
    assert m.loss_se == pytest.approx(se, rel=1e-9)
    if n < len(data):
        assert m.loss_se <= r * abs(m.loss)


def test_runs_out_of_data_equals_full_evaluation():
    model, data = _problem(n=150)
    full = Evaluator(model, {"train": data}, batch_size=32).evaluate_loaded()["train"]
    prec = Evaluator(model, {"train": data}, batch_size=32,
                     rel_precision=1e-9).evaluate_loaded()["train"]
    assert prec.n == full.n == 150
    assert prec.loss == pytest.approx(full.loss, rel=1e-13)
    assert prec.accuracy == pytest.approx(full.accuracy)
    assert prec.loss_se == pytest.approx(full.loss_se, rel=1e-9)


def test_min_batches_and_seed():
    model, data = _problem()
    for mb in (1, 2, 5):
        m = Evaluator(model, {"train": data}, batch_size=10, rel_precision=0.5,
                      min_batches=mb, min_samples=1).evaluate_loaded()["train"]
        assert m.n == _expected(model, data, 0.5, 10, mb, min_samples=1)[0] == 10 * mb
    m = Evaluator(model, {"train": data}, batch_size=10,
                  rel_precision=0.5).evaluate_loaded()["train"]
    assert m.n == 260  # the default floor of 256 samples, in whole batches
    a = Evaluator(model, {"train": data}, batch_size=16, rel_precision=0.05, precision_seed=3,
                  min_samples=1)
    n, loss, _ = _expected(model, data, 0.05, 16, seed=3, min_samples=1)
    m = a.evaluate_loaded()["train"]
    assert (m.n, m.loss) == (n, pytest.approx(loss, rel=1e-12))


def test_permuted_order_is_the_same_for_tensors_and_datasets():
    _, data = _problem(n=50)
    ds = torch.utils.data.TensorDataset(data.x, data.y)
    a, b = permuted(data, 4), permuted(StreamData(ds, "train"), 4)
    xb = torch.cat([bt[0] for bt in b.batches(16)])
    assert torch.equal(a.x, xb)
    assert sorted(a.y.tolist()) == sorted(data.y.tolist())
    with pytest.raises(LandscapeError, match="cannot be put in a random order"):
        permuted(torch.utils.data.DataLoader(ds, batch_size=8), 0)


def test_bad_inputs():
    model, data = _problem(n=40)
    with pytest.raises(LandscapeError, match="'rel_precision' parameter"):
        Evaluator(model, {"train": data}, rel_precision=0.0)
    with pytest.raises(LandscapeError, match="'min_batches' parameter"):
        Evaluator(model, {"train": data}, rel_precision=0.1, min_batches=0)
    with pytest.raises(LandscapeError, match="'min_samples' parameter"):
        Evaluator(model, {"train": data}, rel_precision=0.1, min_samples=0)

    def mean_loss(out, y):  # a user loss that returns a batch mean: no per-sample terms
        return F.cross_entropy(out, y)

    ev = Evaluator(model, {"train": data}, loss=mean_loss, batch_size=8, rel_precision=0.1)
    with pytest.raises(LandscapeError, match="rel_precision needs the loss of every sample"):
        ev.evaluate_loaded()


def _surface_kw(tmp_path, **kw):
    return dict(x="-1:1:5", y="-1:1:4", progress=False, batch_size=16,
                provenance={"command": "same"}, **kw)


def test_surface_counts_stored_and_resume_bit_for_bit(tmp_path):
    model, train = _problem(n=300)
    _, test = _problem(n=120, seed=1)
    data = {"train": train, "test": test}
    d = random_directions(named_tensors(model), seeds=0)
    kw = _surface_kw(tmp_path, rel_precision=0.04, min_samples=32)
    full = tmp_path / "full.h5"
    s = compute_surface(model, d, data, out=full, **kw)
    assert s.recipe["precision"] == {"rel_precision": 0.04, "seed": 0, "min_batches": 2,
                                     "min_samples": 32}
    loaded = Surface.load(full)
    for split, dd in data.items():
        n = loaded.count(f"{split}_loss")
        assert n.dtype == np.int64 and n.shape == (4, 5)
        np.testing.assert_array_equal(n, s.count(f"{split}_loss"))
        assert (n >= 32).all() and (n <= len(dd)).all()
        assert (n < len(dd)).any()  # the early stop happened somewhere
    # one point by enumeration: the model moved to that point
    iy, ix = 1, 3
    moved = {k: named_tensors(model)[k] + s.x[ix] * d.vectors[0][k] + s.y[iy] * d.vectors[1][k]
             for k in named_tensors(model)}
    m2 = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    m2.load_state_dict(moved)
    n, loss, se = _expected(m2, train, 0.04, 16, min_samples=32)
    assert loaded.count("train_loss")[iy, ix] == n
    assert loaded["train_loss"][iy, ix] == pytest.approx(loss, rel=1e-10)
    assert loaded.stderr("train_loss")[iy, ix] == pytest.approx(se, rel=1e-8)
    summary = loaded.precision_summary()
    assert summary["train"]["full"] == 300 * 20
    assert summary["train"]["samples"] == int(loaded.count("train_loss").sum())
    # interrupted and resumed: the same bits
    part = tmp_path / "part.h5"
    assert compute_surface(model, d, data, out=part, max_points=7, **kw).n_done == 7
    with h5py.File(part) as f:
        assert int(f["surface/train_loss_n"][()].astype(bool).sum()) == 7
    assert compute_surface(model, d, data, out=part, **kw).complete
    assert_h5_equal(full, part)
    # another precision is another recipe
    with pytest.raises(LandscapeError, match="differs in: precision"):
        compute_surface(model, d, data, out=part,
                        **_surface_kw(tmp_path, rel_precision=0.04, min_samples=64))
    with pytest.raises(LandscapeError, match="differs in: precision"):
        compute_surface(model, d, data, out=part, **_surface_kw(tmp_path))


def test_plain_surface_has_no_counts(tmp_path):
    model, train = _problem(n=60)
    d = random_directions(named_tensors(model), seeds=0, ndim=1)
    out = tmp_path / "s.h5"
    s = compute_surface(model, d, {"train": train}, x="-1:1:3", progress=False, out=out)
    assert s.counts is None and "precision" not in s.recipe
    with h5py.File(out) as f:
        assert "train_loss_n" not in f["surface"]
    loaded = Surface.load(out)
    assert loaded.counts is None and loaded.count("train_loss") is None
    assert loaded.precision_summary() == {}


def test_1d_plot_draws_the_band(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    model, train = _problem(n=200)
    d = random_directions(named_tensors(model), seeds=0, ndim=1)
    s = compute_surface(model, d, {"train": train}, x="-1:1:5", progress=False, batch_size=16,
                        rel_precision=0.05)
    ax = s.plot()
    assert len(ax.collections) >= 1  # the +-2 SE band of the stored standard errors
    import matplotlib.pyplot as plt

    plt.close("all")


def test_cli_rel_precision(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    spec, data = ModelSpec("mlp", {"width": 8, "depth": 1}), DataSpec("digits", subset=200)
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "m.pt", spec.build(), spec, data=data.to_dict())
    out = tmp_path / "s.h5"
    rc = cli_main.main(["surface", str(ck), "--x", "-1:1:3", "--splits", "train",
                        "--batch-size", "16", "--rel-precision", "0.05", "--out", str(out),
                        "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "sample evaluations" in text and "fewer" in text
    s = Surface.load(out)
    assert s.count("train_loss") is not None and s.recipe["precision"]["rel_precision"] == 0.05
    rc = cli_main.main(["surface", str(ck), "--x", "-1:1:3", "--rel-precision", "0",
                        "--out", str(tmp_path / "t.h5")])
    assert rc == 2
    rc = cli_main.main(["surface", str(ck), "--x", "-1:1:3", "--y", "-1:1:3",
                        "--n-directions", "2", "--rel-precision", "0.1",
                        "--out", str(tmp_path / "u.h5")])
    assert rc == 2 and "--rel-precision" in capsys.readouterr().err


def test_info_reports_the_samples(tmp_path):
    from landscape.info import describe, summarize

    model, train = _problem(n=300)
    d = random_directions(named_tensors(model), seeds=0, ndim=1)
    out = tmp_path / "p.h5"
    compute_surface(model, d, {"train": train}, x="-1:1:3", progress=False, batch_size=16,
                    rel_precision=0.05, out=out)
    s = Surface.load(out)
    info = summarize(out)["surface_precision"]
    assert info["rel_precision"] == 0.05
    assert info["samples"]["train"]["samples"] == int(s.count("train_loss").sum())
    assert "sample evaluations" in describe(out)
