"""Connectivity of minima: closed forms (quadratic, ring valley), BN, resume, storage."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from scipy import integrate, optimize
from torch import nn

from landscape import connect
from landscape.connect import (
    Connectivity,
    barrier,
    compute_connectivity,
    connectivity_numbers,
    curve_coefficients,
    excess,
    lr_at,
)
from landscape.data import TensorData
from landscape.errors import LandscapeError
from landscape.evaluation import Evaluator
from landscape.models import MLP

pytestmark = pytest.mark.usefixtures("one_thread")


class Quadratic(nn.Module):
    """``L(theta) = 1/2 (theta - c)^T H (theta - c)`` for every sample (float64)."""

    def __init__(self, theta, h, c) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.as_tensor(theta, dtype=torch.float64))
        self.register_buffer("h", torch.as_tensor(h, dtype=torch.float64))
        self.register_buffer("c", torch.as_tensor(c, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.theta - self.c
        return (0.5 * d @ self.h @ d).expand(x.shape[0], 1)


class Ring(nn.Module):
    """``L(theta) = (|theta|^2 - 1)^2``: a valley along the unit circle (float64)."""

    def __init__(self, theta) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.as_tensor(theta, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (((self.theta**2).sum() - 1) ** 2).expand(x.shape[0], 1)


def value(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The model's output is the per-sample loss."""
    return out.reshape(-1)


def _toy_data(n: int = 8) -> TensorData:
    z = torch.zeros(n, 1, dtype=torch.float64)
    return TensorData(z, z.clone(), "toy")


# ------------------------------------------------------------------------ pure functions
def test_curve_coefficients_are_the_closed_forms():
    for t in np.linspace(0, 1, 11):
        assert curve_coefficients("line", t).tolist() == [1 - t, t]
        np.testing.assert_allclose(curve_coefficients("bezier", t),
                                   [(1 - t) ** 2, 2 * t * (1 - t), t**2], rtol=0, atol=1e-15)
        c3 = curve_coefficients("bezier", t, 2)
        np.testing.assert_allclose(c3, [(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t),
                                        t**3], atol=1e-15)
        for n in (1, 2, 3):
            for kind in ("bezier", "polychain"):
                c = curve_coefficients(kind, t, n)
                assert (c >= 0).all() and abs(c.sum() - 1) < 1e-14
    # the chain passes through its control points at t = k / (n + 1)
    np.testing.assert_allclose(curve_coefficients("polychain", 1 / 3, 2), [0, 1, 0, 0],
                               atol=1e-15)
    assert curve_coefficients("polychain", 1.0).tolist() == [0.0, 0.0, 1.0]
    assert curve_coefficients("polychain", 0.75).tolist() == [0.0, 0.5, 0.5]
    with pytest.raises(LandscapeError, match="unknown curve kind"):
        curve_coefficients("spline", 0.5)


def test_barrier_of_a_known_profile():
    t = np.linspace(0, 1, 5)
    losses = np.array([1.0, 2.5, 3.0, 2.5, 2.0])  # chord 1, 1.25, 1.5, 1.75, 2
    np.testing.assert_allclose(excess(losses, t), [0, 1.25, 1.5, 0.75, 0])
    assert barrier(losses, t) == 1.5
    assert np.isnan(barrier(np.array([1.0, np.nan, 2.0]), np.linspace(0, 1, 3)))


def test_lr_schedule():
    assert lr_at(0, 100, 1.0) == 1.0 and lr_at(50, 100, 1.0) == 1.0
    assert lr_at(70, 100, 1.0) == pytest.approx(1 - 0.5 * 0.99)
    assert lr_at(90, 100, 1.0) == pytest.approx(0.01) and lr_at(99, 100, 1.0) == 0.01


# ------------------------------------------------------------------------ ground truth
def test_linear_barrier_of_a_convex_quadratic_is_the_closed_form():
    g = np.random.default_rng(0)
    m = g.standard_normal((4, 4))
    h = m @ m.T + 0.5 * np.eye(4)
    c = g.standard_normal(4)
    a, b = g.standard_normal(4), g.standard_normal(4)
    res = compute_connectivity(Quadratic(a, h, c), Quadratic(b, h, c), {"train": _toy_data()},
                               curve=None, loss=value, n_points=11, progress=False)
    d = b - a
    t = res.t
    la, lb = 0.5 * (a - c) @ h @ (a - c), 0.5 * (b - c) @ h @ (b - c)
    line = res.values("line", "train_loss")
    np.testing.assert_allclose(line[[0, -1]], [la, lb], rtol=1e-13)
    # L(t) - chord(t) = -t (1 - t) d^T H d / 2 <= 0, its maximum 0 (at the ends)
    want = -t * (1 - t) * (d @ h @ d) / 2
    np.testing.assert_allclose(excess(line, t), want, rtol=1e-10, atol=1e-12)
    assert (excess(line, t)[1:-1] < 0).all()
    nums = connectivity_numbers(res)
    assert set(nums) == {"line_train_loss_barrier", "line_train_loss_at_chance", "chance_loss",
                         "chance_error"}
    assert abs(nums["line_train_loss_barrier"]) <= 1e-12
    # regression data: no number of classes, hence no chance level and no flag
    assert all(np.isnan(nums[k]) for k in ("line_train_loss_at_chance", "chance_loss",
                                            "chance_error"))
    assert res.recipe["bn"] == "recalibrate" and res.recipe["curve"] is None


def _ring_objective(p: np.ndarray) -> float:
    """``E_t L(bezier(t))`` for ends (-1, 0), (1, 0) and bend ``p``, by quadrature."""
    a, b = np.array([-1.0, 0.0]), np.array([1.0, 0.0])

    def f(t: float) -> float:
        q = (1 - t) ** 2 * a + 2 * t * (1 - t) * p + t**2 * b
        return float((q @ q - 1) ** 2)

    return integrate.quad(f, 0, 1, epsabs=1e-14, epsrel=1e-12)[0]


def test_curve_through_the_ring_valley_has_barrier_near_zero():
    res = compute_connectivity(Ring([-1.0, 0.0]), Ring([1.0, 0.0]), {"train": _toy_data()},
                               loss=value, steps=800, lr=0.1, train_batch_size=4,
                               init_noise=0.1, n_points=21, progress=False)
    nums = connectivity_numbers(res)
    # the line passes through the origin: L(0, 0) = 1 above the ends' 0
    assert nums["line_train_loss_barrier"] == pytest.approx(1.0, abs=1e-12)
    line = res.values("line", "train_loss")
    np.testing.assert_allclose(line, ((2 * res.t - 1) ** 2 - 1) ** 2, atol=1e-12)
    # the trained bend is the minimiser of E_t L(curve(t)) (found here by quadrature)
    best = optimize.minimize(_ring_objective, np.array([0.1, 1.0]), method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-15})
    np.testing.assert_allclose(best.x, [0.0, 3 / np.sqrt(2)], atol=1e-5)  # by hand
    bend = res.bends[0]
    assert abs(bend[0]) < 0.05 and abs(abs(bend[1]) - best.x[1]) < 0.05
    assert _ring_objective(np.abs(bend)) < best.fun * 1.02
    assert 0 <= nums["curve_train_loss_barrier"] < 0.06  # the best Bezier's own is 0.047
    # the curve's values are those of its bend, recomputed by hand
    q = np.stack([curve_coefficients("bezier", t) for t in res.t]) @ np.stack(
        [[-1.0, 0.0], bend, [1.0, 0.0]])
    np.testing.assert_allclose(res.values("curve", "train_loss"),
                               ((q**2).sum(1) - 1) ** 2, atol=1e-12)


def test_polychain_with_bends_follows_the_ring():
    res = compute_connectivity(Ring([1.0, 0.0]), Ring([0.0, 1.0]), {"train": _toy_data()},
                               curve="polychain", n_bends=3, loss=value, steps=400, lr=0.05,
                               train_batch_size=4, n_points=17, progress=False)
    nums = connectivity_numbers(res)
    # line (1-t, t): L = 4 t^2 (1-t)^2, barrier 1/4 at t = 1/2
    assert nums["line_train_loss_barrier"] == pytest.approx(0.25, abs=1e-12)
    assert nums["curve_train_loss_barrier"] < 0.05
    assert res.bends.shape == (3, 2)


# ------------------------------------------------------------------------ BatchNorm
def _digits_like(n: int, seed: int, features: int = 16) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return TensorData(x, y, "blobs", n_classes=3)


def _mlp(seed: int, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(in_features=16, width=8, depth=2, num_classes=3, batchnorm=batchnorm).eval()


def test_bn_recalibration_changes_nothing_without_bn():
    data = {"train": _digits_like(64, 0), "test": _digits_like(32, 1)}
    kw = dict(steps=20, train_batch_size=16, n_points=5, progress=False, lr=0.1)
    rec = compute_connectivity(_mlp(0), _mlp(1), data, bn="recalibrate", **kw)
    ev = compute_connectivity(_mlp(0), _mlp(1), data, bn="eval", **kw)
    assert rec.recipe["bn"] == "recalibrate" and ev.recipe["bn"] == "eval"
    np.testing.assert_array_equal(rec.bends, ev.bends)
    for k in rec.arrays:
        np.testing.assert_array_equal(rec.arrays[k], ev.arrays[k])
    assert np.isfinite(rec.arrays["test_acc"]).all()


def test_bn_recalibrated_at_every_point_of_a_bn_model():
    data = {"train": _digits_like(64, 0), "test": _digits_like(32, 1)}
    a, b = _mlp(0, True), _mlp(1, True)
    for m, seed in ((a, 5), (b, 6)):  # running statistics that fit neither inner point
        g = torch.Generator().manual_seed(seed)
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g))
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    kw = dict(steps=20, train_batch_size=16, n_points=5, progress=False, lr=0.1)
    rec = compute_connectivity(a, b, data, bn="recalibrate", bn_batch_size=64, **kw)
    ev = compute_connectivity(a, b, data, bn="eval", **kw)
    assert not np.array_equal(rec.arrays["train_loss"], ev.arrays["train_loss"])
    # ground truth at t = 1/2 of the line: a fresh model with the mean weights whose BN
    # statistics are the mean / unbiased variance of its pre-BN activations on the data, the
    # activations computed as in train mode (normalised by the biased batch variance)
    ta, tb = dict(a.named_parameters()), dict(b.named_parameters())
    mid = _mlp(0, True)
    with torch.no_grad():
        for k, p in mid.named_parameters():
            p.copy_(ta[k] * 0.5 + tb[k] * 0.5)
        h = torch.relu(mid.stem(data["train"].x.flatten(1)))
        for block in mid.blocks:
            z = block.linear(h)
            block.bn.running_mean.copy_(z.mean(0))
            block.bn.running_var.copy_(z.var(0, unbiased=True))
            zn = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + block.bn.eps)
            h = h + torch.relu(zn * block.bn.weight + block.bn.bias)
        want = Evaluator(mid, data, bn="eval")(dict(mid.named_parameters()))
    got_loss = rec.values("line", "train_loss")[2]
    assert got_loss == pytest.approx(want["train"].loss, rel=1e-5)
    assert rec.values("line", "test_acc")[2] == want["test"].accuracy
    # bn="eval" at the ends uses each end's own statistics
    want_a = Evaluator(a, data, bn="eval")(dict(a.named_parameters()))
    want_b = Evaluator(b, data, bn="eval")(dict(b.named_parameters()))
    assert ev.values("line", "train_loss")[0] == pytest.approx(want_a["train"].loss, rel=1e-6)
    assert ev.values("line", "train_loss")[-1] == pytest.approx(want_b["train"].loss, rel=1e-6)


# ------------------------------------------------------------------------ resume, storage
def _run(out, **kw):
    data = {"train": _digits_like(64, 0), "test": _digits_like(32, 1)}
    base = dict(steps=30, train_batch_size=16, n_points=7, progress=False, lr=0.1,
                flush_seconds=0.0, out=out)
    base.update(kw)
    return compute_connectivity(_mlp(0), _mlp(1), data, **base)


def _same(r1: Connectivity, r2: Connectivity) -> None:
    np.testing.assert_array_equal(r1.bends, r2.bends)
    np.testing.assert_array_equal(r1.fit_history, r2.fit_history)
    np.testing.assert_array_equal(r1.done, r2.done)
    for k in r1.arrays:
        np.testing.assert_array_equal(r1.arrays[k], r2.arrays[k])
    assert sorted(r1.stderrs) == sorted(r2.stderrs)
    for k in r1.stderrs:
        np.testing.assert_array_equal(r1.stderrs[k], r2.stderrs[k])


def test_resume_after_max_points_equals_an_uninterrupted_run(tmp_path):
    full = _run(tmp_path / "full.h5")
    part = _run(tmp_path / "part.h5", max_points=5)
    assert part.n_done == 5 and part.curve_trained
    assert np.isnan(connectivity_numbers(Connectivity.load(tmp_path / "part.h5"))[
        "curve_test_loss_barrier"])
    again = _run(tmp_path / "part.h5")
    assert again.complete
    _same(again, full)
    _same(Connectivity.load(tmp_path / "part.h5"), Connectivity.load(tmp_path / "full.h5"))


@pytest.mark.parametrize("opt", [{"optimizer": "adam", "lr": 0.01},
                                 {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-3}])
def test_resume_after_interrupted_training_and_evaluation(tmp_path, monkeypatch, opt):
    full = _run(tmp_path / "full.h5", **opt)
    out = tmp_path / "cut.h5"
    real_step = connect._CurveTrainer.step

    def stop_at_17(self, s):
        if s == 17:
            raise KeyboardInterrupt
        return real_step(self, s)

    monkeypatch.setattr(connect._CurveTrainer, "step", stop_at_17)
    with pytest.raises(KeyboardInterrupt):
        _run(out, **opt)
    saved = Connectivity.load(out)
    assert saved.trained_steps == 17 and saved.train_state and saved.n_done == 0
    monkeypatch.setattr(connect._CurveTrainer, "step", real_step)

    real_compute = connect._ConnectRun.compute
    calls = []

    def stop_at_4(self, i):
        calls.append(i)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_compute(self, i)

    monkeypatch.setattr(connect._ConnectRun, "compute", stop_at_4)
    with pytest.raises(KeyboardInterrupt):
        _run(out, **opt)
    saved = Connectivity.load(out)
    assert saved.curve_trained and saved.train_state is None and saved.n_done == 3
    monkeypatch.setattr(connect._ConnectRun, "compute", real_compute)
    again = _run(out, **opt)
    _same(again, full)
    _same(Connectivity.load(out), full)


def test_file_layout_and_recipe_rule(tmp_path):
    out = tmp_path / "c.h5"
    res = _run(out, recipe={"checkpoint_sha256": ["a" * 64, "b" * 64]})
    with h5py.File(out, "r") as f:
        g = f["connect"]
        assert g["train_loss"].shape == (2, 7) and g["fit_history"].shape == (30,)
        assert g["done"].shape == (2, 7) and g["bends"].shape == (1, res.recipe["n_params"])
        assert "train_state" not in g
        se = g["train_loss_se"][()]  # the standard error beside each loss
        assert se.shape == (2, 7) and np.all(np.isfinite(se)) and np.all(se > 0)
    back = Connectivity.load(out)
    assert sorted(back.stderrs) == ["test_loss_se", "train_loss_se"]
    assert back.recipe["checkpoint_sha256"] == ["a" * 64, "b" * 64]
    assert back.paths == ("line", "curve") and back.recipe["bn"] == "recalibrate"
    assert connectivity_numbers(back) == connectivity_numbers(res)
    with pytest.raises(LandscapeError, match="different recipe"):
        _run(out, steps=31)
    again = _run(out, steps=31, overwrite=True)
    assert again.recipe["steps"] == 31 and again.trained_steps == 31
    with pytest.raises(LandscapeError, match="no /connect group"):
        storage_file = tmp_path / "empty.h5"
        from landscape import storage

        storage.update_file(storage_file, {"other": storage.Group()})
        Connectivity.load(storage_file)


def test_bad_inputs():
    data = {"train": _digits_like(16, 0)}
    with pytest.raises(LandscapeError, match="same parameters"):
        compute_connectivity(_mlp(0), _mlp(0), data, progress=False)
    other = MLP(in_features=16, width=9, depth=2, num_classes=3)
    with pytest.raises(LandscapeError, match="different architectures"):
        compute_connectivity(_mlp(0), other, data, progress=False)
    with pytest.raises(LandscapeError, match="'curve' parameter"):
        compute_connectivity(_mlp(0), _mlp(1), data, curve="spline", progress=False)
    with pytest.raises(LandscapeError, match="'n_points' parameter"):
        compute_connectivity(_mlp(0), _mlp(1), data, n_points=2, progress=False)
    with pytest.raises(LandscapeError, match="needs training data"):
        compute_connectivity(_mlp(0), _mlp(1), {"test": data["train"]}, progress=False)


def test_counts_that_no_memory_holds_are_refused(monkeypatch):
    """n_points, n_bends and steps are checked against this machine's memory up front."""
    import landscape._grid

    data = {"train": _digits_like(16, 0)}
    monkeypatch.setattr(landscape._grid, "physical_memory", lambda: 2**20)
    for kw, fix in (({"curve": None, "n_points": 10**5}, "use fewer n_points"),
                    ({"n_bends": 1000}, "use fewer n_bends"),
                    ({"steps": 10**5}, "use fewer steps")):
        with pytest.raises(LandscapeError, match=f"GiB of memory -- {fix}"):
            compute_connectivity(_mlp(0), _mlp(1), data, progress=False, **kw)
    # the same counts where memory suffices are not refused by the check
    monkeypatch.setattr(landscape._grid, "physical_memory", lambda: 2**40)
    connect._check_sizes(2, 10**5, 1, "bezier", 1000, 10**5, "adam", torch.zeros(100))


def test_plot(tmp_path):
    res = _run(None)
    ax = res.plot()
    assert len(ax.lines) == 4  # line and curve, train and test
    ax = connect.plot_connectivity(res, metric="error")
    assert "error" in ax.get_ylabel()


def test_curve_on_the_plane_through_a_b_and_the_bend(tmp_path):
    from landscape.directions import Directions, plane_directions
    from landscape.surface import compute_surface

    a, b = Ring([1.0, 0.0]), Ring([0.0, 1.0])
    res = compute_connectivity(a, b, {"train": _toy_data()}, loss=value, steps=50,
                               train_batch_size=4, n_points=5, progress=False)
    bend = connect.bend_model(res, a)
    np.testing.assert_array_equal(bend.theta.detach().numpy(), res.bends[0])
    x, y = res.curve_in_plane()
    np.testing.assert_allclose(x, res.t**2) and np.testing.assert_allclose(y, 2 * res.t * (
        1 - res.t))
    ta, tb, tc = (dict(m.named_parameters()) for m in (a, b, bend))
    dx, dy, _ = plane_directions(ta, tb, tc)
    surf = compute_surface(a, Directions((dx, dy), {"kind": "plane", "orthogonal": False}),
                           {"train": _toy_data()}, x="0:1:5", y="0:1:3", loss=value,
                           batch_size=8, progress=False)
    # t = 1/2 of the curve is (x, y) = (1/4, 1/2), a grid point of the surface
    assert surf.arrays["train_loss"][1, 1] == pytest.approx(
        res.values("curve", "train_loss")[2], rel=1e-12)
    ax = connect.plot_curve_on_plane(res, surf)
    assert len(ax.lines) >= 3
    with pytest.raises(LandscapeError, match="non-orthogonal plane"):
        connect.plot_curve_on_plane(res, Connectivity.__new__(Connectivity))


# ------------------------------------------------------------------------ barriers at chance
def _two_layer(u: torch.Tensor, v: torch.Tensor) -> nn.Module:
    """The linear network ``x -> V U x`` (no biases, float64)."""
    net = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(u)
        net[1].weight.copy_(v)
    return net


def _three_classes() -> TensorData:
    """Three samples per class, ``x = 4 e_y``: balanced, separable."""
    y = torch.arange(3).repeat(3)
    return TensorData(4.0 * torch.eye(3, dtype=torch.float64)[y], y, "three")


def test_barrier_between_sign_flipped_twins_is_flagged_at_chance(tmp_path):
    """``(U, V)`` and ``(-U, -V)`` compute one function, but the middle of the line between
    them is the zero network: logits 0, a uniform prediction, loss exactly ln 3 and error
    ``1 - 1/3`` (argmax of ties is class 0). By the convexity of the cross-entropy in the
    logits, ``L((1-2t)^2 z) <= ln 3``, so the maximum is ln 3 and the barrier ``ln 3 - L(A)``:
    flagged as at chance."""
    eye = torch.eye(3, dtype=torch.float64)
    a, b = _two_layer(eye, eye), _two_layer(-eye, -eye)
    data = _three_classes()
    out = tmp_path / "ab.h5"
    res = compute_connectivity(a, b, {"train": data}, curve=None, n_points=5, out=out,
                               progress=False)
    end = float(np.log1p(2 * np.exp(-4.0)))  # L(A) = L(B) = ln(1 + 2 e^-4)
    loss = res.values("line", "train_loss")
    assert loss[2] == pytest.approx(np.log(3), rel=1e-12)
    assert loss[0] == pytest.approx(end, rel=1e-12) and loss[-1] == pytest.approx(end, rel=1e-12)
    nums = connectivity_numbers(res)
    assert nums["line_train_loss_barrier"] == pytest.approx(np.log(3) - end, rel=1e-12)
    assert nums["chance_loss"] == pytest.approx(np.log(3), rel=1e-15)
    assert nums["chance_error"] == pytest.approx(2 / 3, rel=1e-15)
    assert nums["line_train_loss_at_chance"] == 1.0
    assert nums["line_train_error_at_chance"] == 1.0
    assert all(isinstance(v, float) for v in nums.values())  # reports take floats only
    notes = connect.barrier_notes(res)
    assert connect.AT_CHANCE_NOTE in notes["line_train_loss_at_chance"]
    assert notes["line_train_loss_at_chance"].endswith(
        "the barrier is ln C minus the end loss: uninformative")
    # C is stored with the result
    again = Connectivity.load(out)
    assert again.num_classes == 3
    assert connectivity_numbers(again) == pytest.approx(nums, nan_ok=True)


def test_barrier_between_near_identical_classifiers_is_not_at_chance():
    """Two nearly equal good classifiers: the loss stays near L(A) << ln 3 on the whole line."""
    eye = torch.eye(3, dtype=torch.float64)
    a = _two_layer(eye, eye)
    b = _two_layer(eye + 1e-3 * torch.ones(3, 3, dtype=torch.float64), eye)
    res = compute_connectivity(a, b, {"train": _three_classes()}, curve=None, n_points=5,
                               progress=False)
    nums = connectivity_numbers(res)
    assert np.nanmax(res.values("line", "train_loss")) < 0.05
    assert nums["line_train_loss_at_chance"] == 0.0
    assert nums["line_train_error_at_chance"] == 0.0
    assert "below chance" in connect.barrier_notes(res)["line_train_loss_at_chance"]


def test_at_chance_is_nan_with_a_reason_where_c_is_unknown():
    """Regression data: no number of classes, no chance level -- NaN, never a guess."""
    res = compute_connectivity(
        Quadratic([0.0, 0.0], np.eye(2), [0.5, 0.5]), Quadratic([1.0, 1.0], np.eye(2), [0.5, 0.5]),
        {"train": _toy_data()}, curve=None, n_points=5, loss=value, progress=False)
    assert res.num_classes is None
    nums = connectivity_numbers(res)
    assert np.isnan(nums["line_train_loss_at_chance"])
    assert np.isnan(nums["chance_loss"]) and np.isnan(nums["chance_error"])
    assert np.isfinite(nums["line_train_loss_barrier"])
    assert "number of classes is unknown" in connect.barrier_notes(res)["line_train_loss_at_chance"]
    # a classification result computed with another loss: ln C is not its chance level
    res.num_classes = 3
    flag, why = res.at_chance("line", "train", "loss")
    assert np.isnan(flag) and "not the cross-entropy" in why
    # an unfinished path: NaN
    res.recipe["loss"] = "cross_entropy"
    res.arrays["train_loss"][0, 2] = np.nan
    flag, why = res.at_chance("line", "train", "loss")
    assert np.isnan(flag) and "not complete" in why
    assert connect.chance_level(None) != connect.chance_level(None)  # NaN
    assert connect.chance_level(10) == pytest.approx(np.log(10))
