"""Landscape metrics against analytic truth: quadratic bowls, known minima, exact box maxima."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.metrics import (
    basin_width,
    convex_area_fraction,
    eps_sharpness_ascent,
    eps_sharpness_from_surface,
    low_dimensionality,
    origin_index,
    roughness,
    surface_minimum,
)
from landscape.surface import Surface
from landscape.trajectory import Trajectory

from .conftest import Data


def _surf(z: np.ndarray, x: np.ndarray, y: np.ndarray | None = None,
          done: np.ndarray | None = None) -> Surface:
    done = np.ones(z.shape, bool) if done is None else done
    return Surface(x=x, y=y, arrays={"train_loss": np.asarray(z, dtype=np.float64)},
                   done=done, recipe={}, provenance={})


def _grid(n: int = 101, lim: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-lim, lim, n)
    xx, yy = np.meshgrid(x, x)  # Z[iy, ix]
    return x, xx, yy


def _quad(a: float, n: int = 101, offset: float = 0.0) -> Surface:
    x, xx, yy = _grid(n)
    return _surf(offset + a * (xx**2 + yy**2), x, x.copy())


# --------------------------------------------------------------------------- minimum
def test_surface_minimum_finds_the_lowest_finished_finite_point():
    x, xx, yy = _grid(21)
    z = (xx - 0.3) ** 2 + (yy + 0.2) ** 2
    z[0, 0] = -5.0  # lower, but not finished
    z[1, 1] = np.nan  # diverged
    done = np.ones(z.shape, bool)
    done[0, 0] = False
    value, (mx, my) = surface_minimum(_surf(z, x, x.copy(), done))
    assert value == pytest.approx(0.0, abs=1e-12)
    assert (mx, my) == pytest.approx((0.3, -0.2))
    v1, c1 = surface_minimum(_surf(x**2 + 1, x))
    assert v1 == pytest.approx(1.0) and c1 == pytest.approx((0.0,))
    with pytest.raises(LandscapeError, match="no finished finite point"):
        surface_minimum(_surf(z, x, x.copy(), np.zeros(z.shape, bool)))
    with pytest.raises(LandscapeError, match="'array' parameter"):
        surface_minimum(_surf(z, x, x.copy()), array="test_loss")


def test_origin_index_tolerates_linspace_rounding_and_reports_absence():
    x = np.linspace(-1, 1, 51)
    assert origin_index(_surf(x**2, x)) == (25,)
    assert origin_index(_surf(x**2, x + 1e-17)) == (25,)
    x_even = np.linspace(-1, 1, 50)
    assert origin_index(_surf(x_even**2, x_even)) is None


# --------------------------------------------------------------------------- eps-sharpness
def test_eps_sharpness_of_quadratics_is_exact_and_orders_sharp_above_flat():
    sharp, flat = _quad(10.0), _quad(1.0)
    # max of a (x^2 + y^2) over |x|, |y| <= 0.1 is a * 0.02 at the corners; L(0) = 0
    assert eps_sharpness_from_surface(sharp, 0.1) == pytest.approx(100 * 10 * 0.02)
    assert eps_sharpness_from_surface(flat, 0.1) == pytest.approx(100 * 1 * 0.02)
    # with L(0) = 1 the denominator is 2
    assert eps_sharpness_from_surface(_quad(1.0, offset=1.0), 0.1) == pytest.approx(1.0)
    # the 1D restriction: only x
    x = np.linspace(-1, 1, 101)
    assert eps_sharpness_from_surface(_surf(3 * x**2, x), 0.2) == pytest.approx(100 * 3 * 0.04)


def test_eps_sharpness_gives_the_absolute_rise_beside_keskars_normalised_value():
    """Two quadratic arms at different losses: Keskar's division by 1 + L(θ) ranks the
    shallower bowl at the lower loss as sharper; the absolute rise says the opposite."""
    eps = 0.1
    low = eps_sharpness_from_surface(_quad(1.0), eps, details=True)  # L(θ) = 0
    high = eps_sharpness_from_surface(_quad(3.0, offset=4.0), eps, details=True)  # L(θ) = 4
    # max of a (x^2 + y^2) over the box is 2 a eps^2 at the corners
    assert low["rise"] == pytest.approx(2 * 1.0 * eps**2)
    assert high["rise"] == pytest.approx(2 * 3.0 * eps**2)
    assert low["eps_sharpness"] == pytest.approx(100 * 2 * eps**2 / 1.0)
    assert high["eps_sharpness"] == pytest.approx(100 * 6 * eps**2 / 5.0)
    assert high["origin_loss"] == 4.0 and high["max_loss"] == pytest.approx(4 + 6 * eps**2)
    assert high["n_points"] == 11 * 11 - 1  # the box on the 0.02 grid, origin left out
    assert low["eps_sharpness"] > high["eps_sharpness"] and low["rise"] < high["rise"]
    # the plain call still returns Keskar's number
    assert eps_sharpness_from_surface(_quad(3.0, offset=4.0), eps) == high["eps_sharpness"]
    s = _quad(1.0, n=51)
    z = s["train_loss"].copy()
    z[25, 26] = np.inf
    d = eps_sharpness_from_surface(_surf(z, s.x, s.y), 0.1, details=True)
    assert d["rise"] == math.inf and d["eps_sharpness"] == math.inf


def test_eps_sharpness_errors_and_diverged_points():
    s = _quad(1.0, n=51)  # step 0.04
    with pytest.raises(LandscapeError, match=r"grid step 0\.04"):
        eps_sharpness_from_surface(s, 0.01)
    with pytest.raises(LandscapeError, match="'eps' parameter"):
        eps_sharpness_from_surface(s, 0.0)
    x = np.linspace(-1, 1, 50)  # no origin on the grid
    xx, yy = np.meshgrid(x, x)
    no_origin = _surf(xx**2 + yy**2, x, x.copy())
    with pytest.raises(LandscapeError, match="origin_loss"):
        eps_sharpness_from_surface(no_origin, 0.1)
    got = eps_sharpness_from_surface(no_origin, 0.1, origin_loss=0.0)
    inside = (np.abs(xx) <= 0.1) & (np.abs(yy) <= 0.1)
    assert got == pytest.approx(100 * float((xx**2 + yy**2)[inside].max()))
    z = s["train_loss"].copy()
    z[25, 26] = np.inf
    assert eps_sharpness_from_surface(_surf(z, s.x, s.y), 0.1) == math.inf
    z[25, 26] = 1.0
    done = np.ones(z.shape, bool)
    done[24:27, 24:27] = False
    done[25, 25] = True
    with pytest.raises(LandscapeError, match="not computed yet"):
        eps_sharpness_from_surface(_surf(z, s.x, s.y, done), 0.05)


# --------------------------------------------------------------------------- basin width
@pytest.mark.parametrize("a", [1.0, 4.0, 10.0])
def test_basin_width_of_quadratic_matches_2_sqrt_t_over_a(a):
    t = 0.1
    bw = basin_width(_quad(a), threshold=t)
    want = 2 * math.sqrt(t / a)
    step = 0.02
    for axis in ("x", "y"):
        r = bw[axis]
        # chords of a convex function cross the level early, by far less than a grid step
        assert r["width"] == pytest.approx(want, abs=0.1 * step)
        assert r["left"] == pytest.approx(r["right"], abs=1e-12)
        assert not r["censored"]
    assert bw["minimum"] == 0.0 and bw["level"] == pytest.approx(t)
    assert bw["argmin"] == pytest.approx((0.0, 0.0))


def test_sharper_basin_is_narrower_and_relative_threshold():
    assert basin_width(_quad(10.0))["x"]["width"] < basin_width(_quad(1.0))["x"]["width"]
    # L = 1 + a r^2: relative 10 % above the minimum is the absolute level 1.1
    rel = basin_width(_quad(2.0, offset=1.0), threshold=0.1, relative=True)
    assert rel["x"]["width"] == pytest.approx(2 * math.sqrt(0.1 / 2.0), abs=0.002)
    with pytest.raises(LandscapeError, match="non-negative minimum"):
        basin_width(_quad(1.0, offset=-1.0), relative=True)


def test_basin_width_censoring_diverged_and_1d():
    wide = basin_width(_quad(0.01), threshold=0.1)  # 2 sqrt(10) > the grid
    assert wide["x"]["censored"] and wide["x"]["censored_left"] and wide["x"]["censored_right"]
    assert wide["x"]["width"] == pytest.approx(2.0)  # edge to edge, not inf
    x = np.linspace(-1, 1, 101)
    z = 4 * x**2
    one = basin_width(_surf(z, x), threshold=1.0)
    assert one["y"] is None
    assert one["x"]["width"] == pytest.approx(1.0, abs=0.002)
    # an unfinished point censors that side at the last finished point before it
    done = np.ones(101, bool)
    done[60] = False  # x = 0.2, inside the basin (edge at 0.5)
    cut = basin_width(_surf(z, x, done=done), threshold=1.0)["x"]
    assert cut["censored_right"] and not cut["censored_left"]
    assert cut["right"] == pytest.approx(0.18) and cut["left"] == pytest.approx(0.5, abs=1e-3)
    # a diverged point ends the basin (not censored) at the last point before it
    zd = z.copy()
    zd[60] = np.nan
    div = basin_width(_surf(zd, x), threshold=1.0)["x"]
    assert not div["censored"] and div["right"] == pytest.approx(0.18)


# --------------------------------------------------------------------------- roughness
def _three_wells() -> Surface:
    x = np.linspace(-2, 2, 81)  # step 0.05; wells on grid points
    xx, yy = np.meshgrid(x, x)
    z = 0.05 * (xx**2 + yy**2)
    for cx, cy in ((0.0, 0.0), (1.0, -1.0), (-1.0, 1.0)):  # the bowl's own minimum: a well
        z = z - np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.15**2))
    return _surf(z, x, x.copy())


def test_roughness_counts_three_known_minima_and_one_in_a_bowl():
    assert roughness(_three_wells())["local_minima"] == 3
    assert roughness(_quad(1.0))["local_minima"] == 1
    x = np.linspace(-1, 1, 41)
    assert roughness(_surf(x**2, x))["local_minima"] == 1
    # a monotone slope has its lowest point on the edge: not a minimum unless asked
    assert roughness(_surf(x, x))["local_minima"] == 0
    assert roughness(_surf(x, x), include_edges=True)["local_minima"] == 1


def test_roughness_unknown_and_diverged_neighbours():
    s = _quad(1.0, n=21)
    z = s["train_loss"].copy()
    done = np.ones(z.shape, bool)
    done[10, 11] = False  # a neighbour of the minimum is unknown: not counted
    assert roughness(_surf(z, s.x, s.y, done))["local_minima"] == 0
    z2 = z.copy()
    z2[5, 5] = np.nan  # diverged: counts as high, and as a non-finite point
    r = roughness(_surf(z2, s.x, s.y))
    assert r["local_minima"] == 1
    assert r["nonfinite_fraction"] == pytest.approx(1 / z.size)
    assert r["n_finished"] == z.size
    with pytest.raises(LandscapeError, match="no finished point"):
        roughness(_surf(z, s.x, s.y, np.zeros(z.shape, bool)))


def test_total_variation_values_and_ordering():
    x = np.linspace(-1, 1, 101)
    assert roughness(_surf(x, x))["total_variation"] == pytest.approx(1.0)
    assert roughness(_surf(x**2, x))["total_variation"] == pytest.approx(2.0)
    assert roughness(_surf(np.ones(101), x))["total_variation"] == 0.0
    bowl = _quad(1.0)
    xs, xx, yy = _grid(101)
    ripples = _surf(xx**2 + yy**2 + 0.5 * np.sin(25 * xx) * np.cos(25 * yy), xs, xs.copy())
    tv_bowl = roughness(bowl)["total_variation"]
    tv_rough = roughness(ripples)["total_variation"]
    # every line of a (x^2 + y^2) rises by 1 on each side of its own minimum; range 2
    assert tv_bowl == pytest.approx(1.0)
    assert tv_rough > 2 * tv_bowl
    assert roughness(ripples)["local_minima"] > 1
    # independent of resolution for a smooth surface
    assert roughness(_quad(1.0, n=51))["total_variation"] == pytest.approx(tv_bowl, rel=0.02)


def _exploding_edges(height: float) -> Surface:
    """A rippled bowl near the centre; beyond x = 0.8 a wall rising to ``height``."""
    x, xx, yy = _grid(41)
    z = xx**2 + yy**2 + 0.2 * np.sin(15 * xx) * np.sin(15 * yy)
    z = z + height * np.clip((xx - 0.8) / 0.2, 0.0, None)
    return _surf(z, x, x.copy())


def test_total_variation_is_taken_in_a_window_the_exploding_edges_do_not_set():
    tame, wild = roughness(_exploding_edges(10.0)), roughness(_exploding_edges(1e9))
    # over the whole range of values the edge decides the number: the ripples vanish and
    # what is left is the wall's one traversal per row (41 of 82 lines)
    assert wild["total_variation_full_range"] < 0.8 * tame["total_variation_full_range"]
    assert wild["total_variation_full_range"] == pytest.approx(0.5, abs=1e-6)
    # in the window [min, L(centre) + 2] they do not
    assert wild["total_variation"] == pytest.approx(tame["total_variation"], rel=1e-12)
    assert wild["total_variation"] > 1.0  # the ripples: more than a bowl's one per line
    assert wild["total_variation_level"] == pytest.approx(2.0)  # L(centre) = 0
    assert wild["total_variation_base"] == "centre" and wild["total_variation_rise"] == 2.0
    assert wild["total_variation_points"] == tame["total_variation_points"] > 9
    assert "L(centre) + 2" in wild["total_variation_window"]
    assert wild["total_variation_reason"] is None
    # a window holding every value gives the full-range number
    bowl = roughness(_quad(1.0), tv_rise=10.0)
    assert bowl["total_variation"] == pytest.approx(bowl["total_variation_full_range"])
    # diverged points count as above the level, not as missing
    z = _exploding_edges(1e9)["train_loss"].copy()
    z[:, -1] = np.inf  # the rim of the wall diverged
    x = _grid(41)[0]
    assert roughness(_surf(z, x, x.copy()))["total_variation"] == \
        pytest.approx(wild["total_variation"], rel=1e-12)


def test_total_variation_is_nan_with_a_reason_when_the_window_is_too_small():
    r = roughness(_quad(1e4, n=21))  # only the centre lies within 2 nats of it
    assert math.isnan(r["total_variation"]) and r["total_variation_points"] == 1
    assert "at least 9" in r["total_variation_reason"]
    assert r["total_variation_full_range"] == pytest.approx(1.0)
    assert not math.isnan(roughness(_quad(1e4, n=21), tv_rise=1e4)["total_variation"])
    with pytest.raises(LandscapeError, match="'tv_rise'"):
        roughness(_quad(1.0), tv_rise=0.0)


# --------------------------------------------------------------------------- ratio maps
def test_convex_area_fraction_on_a_known_map():
    x = np.linspace(-1, 1, 5)
    y = np.linspace(-1, 1, 3)
    ratio = np.array([[0.00, 0.05, 0.50, 0.09, 2.0],
                      [0.20, 0.01, 0.03, np.nan, 0.4],
                      [0.08, 0.11, 0.10, 0.02, -0.05]])  # signed values count by |.|
    done = np.ones(ratio.shape, bool)
    done[2, 0] = False
    # the arithmetic on a small map: the coarse-grid rule (test below) waived explicitly
    out = convex_area_fraction({"x": x, "y": y, "ratio": ratio, "done": done}, threshold=0.1,
                               min_points=3)
    # finished finite: 13; below 0.1: 0, .05, .09, .01, .03, .02, |-.05| = 7
    assert out["n_points"] == 13
    assert out["convex_area_fraction"] == pytest.approx(7 / 13)
    assert out["ratio_at_minimum"] == pytest.approx(0.03)  # (x, y) = (0, 0)
    # from the eigenvalues, without x: no location
    lmax = np.full((2, 2), 10.0)
    lmin = np.array([[-0.5, -2.0], [0.1, -5.0]])
    out2 = convex_area_fraction({"lambda_max": lmax, "lambda_min": lmin}, threshold=0.1,
                                min_points=2)
    assert out2["convex_area_fraction"] == pytest.approx(0.5)
    assert math.isnan(out2["ratio_at_minimum"])
    with pytest.raises(LandscapeError, match="no 'ratio'"):
        convex_area_fraction({"x": x})


# --------------------------------------------------------------------------- trajectories
def test_low_dimensionality_reads_the_trajectory_summary():
    t = Trajectory(
        coords=np.zeros((4, 2)), explained_variance_ratio=np.array([0.7, 0.2, 0.1]),
        explained_variance=np.array([7.0, 2.0, 1.0]), singular_values=np.ones(3),
        step_capture=np.ones(3), random_capture=np.zeros(3), n_components=2,
        n_components_for_90=2, path_capture=0.95, random_path_capture=0.01,
        random_variance_ratio=0.02,
    )
    assert low_dimensionality(t) == pytest.approx({
        "pc1": 0.7, "pc1_pc2": 0.9, "n_components_for_90": 2, "path_capture": 0.95,
        "random_path_capture": 0.01})


# --------------------------------------------------------------------------- ascent
def _regression(n: int = 40) -> Data:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    y = (1.5 * x[:, 0] - 0.3 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64))
    return Data(x, y)


def _mse_np(w: float, b: float, data: Data) -> float:
    x, y = data.x[:, 0].numpy(), data.y.numpy()
    return float(np.mean((w * x + b - y) ** 2))


@pytest.mark.parametrize("eps", [1e-3, 5e-4, 0.05])
def test_ascent_sharpness_equals_the_box_maximum_of_linear_regression(eps):
    data = _regression()
    model = nn.Linear(1, 1).double()
    with torch.no_grad():
        model.weight.fill_(1.2)
        model.bias.fill_(0.4)
    w0, b0 = 1.2, 0.4
    l0 = _mse_np(w0, b0, data)
    # a convex quadratic attains its maximum over a box at a vertex: enumerate the 4
    hw, hb = eps * (abs(w0) + 1), eps * (abs(b0) + 1)
    top = max(_mse_np(w0 + sw * hw, b0 + sb * hb, data)
              for sw, sb in itertools.product((-1, 1), repeat=2))
    want = 100 * (top - l0) / (1 + l0)
    got = eps_sharpness_ascent(model, data, eps, loss="mse", batch_size=7)
    assert got == pytest.approx(want, rel=1e-6)
    d = eps_sharpness_ascent(model, data, eps, loss="mse", batch_size=7, details=True)
    assert d["rise"] == pytest.approx(top - l0, rel=1e-6)  # nats, not divided by 1 + L
    assert d["origin_loss"] == pytest.approx(l0, rel=1e-12)
    assert d["eps_sharpness"] == got
    assert model.weight.item() == 1.2 and model.bias.item() == 0.4  # untouched


def test_ascent_sharpness_at_an_exact_minimum_of_a_one_parameter_model():
    data = _regression()
    model = nn.Linear(1, 1, bias=False).double()
    x, y = data.x[:, 0], data.y
    w_star = float((x * y).sum() / (x * x).sum())
    with torch.no_grad():
        model.weight.fill_(w_star)
    eps = 1e-3
    l0 = _mse_np(w_star, 0.0, data)
    h = eps * (abs(w_star) + 1)
    top = max(_mse_np(w_star + s * h, 0.0, data) for s in (-1, 1))  # symmetric: both equal
    got = eps_sharpness_ascent(model, data, eps, loss="mse")
    assert got == pytest.approx(100 * (top - l0) / (1 + l0), rel=1e-6)
    assert got > 0


def test_ascent_sharpness_beats_a_random_vertex_and_is_deterministic(tiny_mlp, image_data):
    train = image_data["train"]
    model = tiny_mlp
    training = model.training
    eps = 1e-2
    got = eps_sharpness_ascent(model, train, eps, steps=5)
    assert got == eps_sharpness_ascent(model, train, eps, steps=5)
    assert model.training == training
    with torch.no_grad():
        base = {k: v.clone() for k, v in model.named_parameters()}
        g = torch.Generator().manual_seed(1)
        l0 = nn.functional.cross_entropy(model(train.x), train.y).item()
        for p in model.parameters():
            s = torch.randint(0, 2, p.shape, generator=g).to(p) * 2 - 1
            p.add_(eps * (p.abs() + 1) * s)
        lr = nn.functional.cross_entropy(model(train.x), train.y).item()
        for k, p in model.named_parameters():
            p.copy_(base[k])
    assert got > 100 * (lr - l0) / (1 + l0)
    with pytest.raises(LandscapeError, match="'steps' parameter"):
        eps_sharpness_ascent(model, train, steps=0)
    with pytest.raises(LandscapeError, match="'data' parameter"):
        eps_sharpness_ascent(model, object())


def test_convex_area_fraction_reads_a_ratio_map_object():
    from landscape.hessian import RatioMap

    x, y = np.linspace(-1, 1, 3), np.linspace(-1, 1, 2)
    ratio = np.array([[0.05, 0.5, 0.01], [0.2, 0.03, 0.0]])
    ones = np.ones(ratio.shape, bool)
    rm = RatioMap(x=x, y=y, lambda_max=np.ones(ratio.shape), lambda_min=-ratio, ratio=ratio,
                  n_hvp=np.ones(ratio.shape, np.int64), done=ones, converged=ones)
    out = convex_area_fraction(rm, threshold=0.1, min_points=2)  # coarse-grid rule waived
    assert out == convex_area_fraction({"x": x, "y": y, "ratio": ratio, "done": ones}, 0.1,
                                       min_points=2)
    assert out["convex_area_fraction"] == pytest.approx(4 / 6)
    assert math.isnan(convex_area_fraction(rm, threshold=0.1)["convex_area_fraction"])


def test_convex_area_fraction_only_from_a_fine_grid_near_the_minimum():
    g = np.random.default_rng(0)
    # a 3x3 map, as the demo computes: NaN with the reason, whatever its values
    x3 = np.linspace(-1, 1, 3)
    coarse = convex_area_fraction({"x": x3, "y": x3, "ratio": g.uniform(0, 0.2, (3, 3))})
    assert math.isnan(coarse["convex_area_fraction"])
    assert "too coarse" in coarse["reason"] and "1/9" in coarse["reason"]
    assert coarse["grid_shape"] == (3, 3) and coarse["n_points"] == 9
    assert coarse["ratio_at_minimum"] == coarse["ratio_at_minimum"]  # still reported
    # a fine map: the fraction
    x = np.linspace(-1, 1, 11)
    xx, yy = np.meshgrid(x, x)
    ratio = np.where(xx**2 + yy**2 < 0.5, 0.01, 0.5)
    fine = convex_area_fraction({"x": x, "y": x, "ratio": ratio})
    assert fine["reason"] is None
    assert fine["convex_area_fraction"] == pytest.approx(float(np.mean(xx**2 + yy**2 < 0.5)))
    # with the loss: a fine map whose points mostly sit far above the centre is refused
    steep = 1e4 * (xx**2 + yy**2)
    far = convex_area_fraction({"x": x, "y": x, "ratio": ratio}, loss=steep)
    assert math.isnan(far["convex_area_fraction"]) and "nats above" in far["reason"]
    assert far["n_far"] == int(np.sum(steep > 10.0))
    near = convex_area_fraction({"x": x, "y": x, "ratio": ratio}, loss=xx**2 + yy**2)
    assert near["convex_area_fraction"] == fine["convex_area_fraction"]
    assert near["n_far"] == 0
    # the surface itself can be passed: its grid gives the centre
    surf = _surf(steep, x, x.copy())
    assert convex_area_fraction({"ratio": ratio}, loss=surf)["n_far"] == far["n_far"]
    with pytest.raises(LandscapeError, match="centre_loss"):
        convex_area_fraction({"ratio": ratio}, loss=steep)
    with pytest.raises(LandscapeError, match="shape"):
        convex_area_fraction({"ratio": ratio}, loss=steep[:5])
