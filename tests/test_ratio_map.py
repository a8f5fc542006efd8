"""Ratio maps (Li et al.'s |lambda_min/lambda_max| over a surface's grid) against dense truth."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from landscape import storage
from landscape._functional import named_tensors
from landscape.directions import random_directions
from landscape.errors import LandscapeError
from landscape.hessian import RatioMap, compute_ratio_map, serpentine_order
from landscape.surface import Surface, compute_surface

try:  # tests/ as a package or as a plain directory on sys.path
    from .conftest import toy_classifier
    from .reference import exact_hessian
except ImportError:
    from conftest import toy_classifier
    from reference import exact_hessian

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),  # conftest: tiny models, threads only add overhead
]

F64 = torch.float64



@pytest.fixture(scope="module")
def toy():
    """A float64 Linear-ReLU-Linear net (51 parameters), 60 random samples, 2 directions."""
    model, data = toy_classifier(0, nn.ReLU)
    dirs = random_directions(named_tensors(model), seeds=0)
    return model, data, dirs


def _surface(toy, path, x="-1:1:3", y="-1:1:3"):
    model, data, dirs = toy
    if y is None:
        from landscape.directions import Directions

        dirs = Directions(dirs.vectors[:1], dirs.recipe)
    compute_surface(model, dirs, {"train": data}, x=x, y=y, out=path, progress=False,
                    batch_size=32)
    return path


@pytest.fixture(scope="module")
def surf5(toy, tmp_path_factory):
    return _surface(toy, tmp_path_factory.mktemp("rm") / "s5.h5", "-1:1:5", "-1:1:5")


def test_serpentine_order_visits_neighbours():
    order = serpentine_order((3, 4))
    assert sorted(order.tolist()) == list(range(12))
    iy, ix = np.divmod(order, 4)
    steps = np.abs(np.diff(iy)) + np.abs(np.diff(ix))
    assert np.all(steps == 1)
    assert serpentine_order((5,)).tolist() == [0, 1, 2, 3, 4]


def test_matches_exact_hessians_on_3x3(toy, tmp_path):
    model, data, dirs = toy
    path = _surface(toy, tmp_path / "s.h5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rm = compute_ratio_map(model, path, data, tol=1e-10, progress=False, batch_size=25)
    assert rm.complete and rm.converged.all() and rm.shape == (3, 3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    base, names = named_tensors(model), list(named_tensors(model))
    for iy in range(3):
        for ix in range(3):
            p = {k: base[k] + rm.x[ix] * dirs.vectors[0][k] + rm.y[iy] * dirs.vectors[1][k]
                 for k in base}
            ev = torch.linalg.eigvalsh(exact_hessian(model, data.x, data.y, names, params=p))
            lmax, lmin = float(ev[-1]), float(ev[0])
            assert rm.lambda_max[iy, ix] == pytest.approx(lmax, abs=1e-6)
            assert rm.lambda_min[iy, ix] == pytest.approx(lmin, abs=1e-6)
            assert rm.ratio[iy, ix] == pytest.approx(abs(lmin / lmax), abs=1e-6)
    # stored beside the surface, which is untouched
    assert set(storage.list_groups(path)) == {"surface", "directions", "ratio_map"}
    assert Surface.load(path).complete
    back = RatioMap.load(path)
    for name in ("x", "y", "lambda_max", "lambda_min", "ratio", "n_hvp", "done", "converged"):
        assert np.array_equal(getattr(back, name), getattr(rm, name)), name
    assert back.recipe["n_samples"] == 60 and back.recipe["tol"] == 1e-10
    g = storage.read_group(path, "ratio_map")
    assert g.datasets["done"].dtype == np.uint8 and "warm_vectors" not in g.datasets


def test_warm_start_saves_hvps(toy, surf5, tmp_path):
    model, data, _ = toy
    cold = compute_ratio_map(model, surf5, data, warm_start=False, out=tmp_path / "cold.h5",
                             progress=False)
    warm = compute_ratio_map(model, surf5, data, warm_start=True, out=tmp_path / "warm.h5",
                             progress=False)
    assert warm.total_hvp < 0.9 * cold.total_hvp
    scale = np.abs(cold.lambda_max)
    assert np.all(np.abs(warm.lambda_max - cold.lambda_max) <= 2e-3 * scale)
    assert np.all(np.abs(warm.lambda_min - cold.lambda_min) <= 2e-3 * scale)


def test_resume_gives_identical_arrays(toy, surf5, tmp_path):
    model, data, _ = toy
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    shutil.copy(surf5, a)
    shutil.copy(surf5, b)
    full = compute_ratio_map(model, a, data, progress=False)
    part = compute_ratio_map(model, b, data, progress=False, max_points=7)
    assert part.n_done == 7
    g = storage.read_group(b, "ratio_map")
    assert g.datasets["warm_vectors"].dtype == np.float32  # the chain end, for resuming
    # the first 7 points of the serpentine order
    assert sorted(np.flatnonzero(part.done.ravel())) == sorted(serpentine_order((5, 5))[:7])
    part = compute_ratio_map(model, b, data, progress=False, max_points=9)
    assert part.n_done == 16
    rest = compute_ratio_map(model, b, data, progress=False)
    assert rest.complete
    for name in ("lambda_max", "lambda_min", "ratio", "n_hvp", "done", "converged"):
        assert np.array_equal(getattr(rest, name), getattr(full, name)), name
    assert "warm_vectors" not in storage.read_group(b, "ratio_map").datasets
    # a complete map is returned without computing
    again = compute_ratio_map(model, b, data, progress=False)
    assert np.array_equal(again.lambda_max, full.lambda_max)


def test_unresolved_points_have_no_ratio(toy, tmp_path):
    model, data, _ = toy
    path = _surface(toy, tmp_path / "s.h5")
    with pytest.warns(RuntimeWarning, match="ratio is NaN"):
        rm = compute_ratio_map(model, path, data, tol=1e-8, max_hvp=4, progress=False)
    assert rm.complete and not rm.converged.any()
    assert np.all(np.isnan(rm.ratio)) and np.all(np.isfinite(rm.lambda_min))
    assert np.all(np.isin(rm.status, (1, 2, 3)))
    back = RatioMap.load(path)
    assert np.array_equal(back.status, rm.status) and np.all(np.isnan(back.ratio))
    codes = json.loads(storage.read_group(path, "ratio_map").attrs["ratio_status_codes"])
    assert codes["1"].startswith("lambda_min not resolved")
    ok = compute_ratio_map(model, path, data, out=tmp_path / "ok.h5", progress=False)
    assert ok.converged.all() and np.all(ok.status == 0) and np.all(np.isfinite(ok.ratio))


def test_recipe_mismatch_refused(toy, surf5, tmp_path):
    model, data, _ = toy
    f = tmp_path / "f.h5"
    shutil.copy(surf5, f)
    compute_ratio_map(model, f, data, progress=False, max_points=3)
    with pytest.raises(LandscapeError, match=r"different recipe \(differs in: tol\)"):
        compute_ratio_map(model, f, data, progress=False, tol=1e-4)
    with pytest.raises(LandscapeError, match="batch_size"):
        compute_ratio_map(model, f, data, progress=False, batch_size=7)
    rm = compute_ratio_map(model, f, data, progress=False, tol=1e-4, overwrite=True,
                           max_points=2)
    assert rm.n_done == 2 and rm.recipe["tol"] == 1e-4
    assert Surface.load(f).complete  # overwrite replaced the ratio map only


def test_bad_inputs(toy, tmp_path):
    model, data, dirs = toy
    f = tmp_path / "nosurf.h5"
    storage.update_file(f, {"other": storage.Group(attrs={"a": 1})})
    with pytest.raises(LandscapeError, match="no surface"):
        compute_ratio_map(model, f, data, progress=False)
    path = _surface(toy, tmp_path / "s.h5")
    other = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).to(F64)
    with pytest.raises(LandscapeError, match="do not fit this model"):
        compute_ratio_map(other, path, data, progress=False)
    with pytest.raises(LandscapeError, match="'tol'"):
        compute_ratio_map(model, path, data, tol=0)
    with pytest.raises(LandscapeError, match="no ratio map"):
        RatioMap.load(path)


def test_1d_surface_and_out_file(toy, tmp_path):
    model, data, _ = toy
    path = _surface(toy, tmp_path / "line.h5", "-1:1:4", None)
    rm = compute_ratio_map(model, path, data, out=tmp_path / "rm.h5", progress=False,
                           ignore="biasbn")
    assert rm.y is None and rm.shape == (4,) and rm.complete
    g = storage.read_group(tmp_path / "rm.h5", "ratio_map")
    assert "y" not in g.datasets and g.datasets["ratio"].shape == (4,)
    assert "ratio_map" not in storage.list_groups(path)
    assert np.all(rm.lambda_max > 0)


def test_follows_the_directions_parameter_selection(toy, tmp_path):
    """A surface drawn with exclude='2.*' gets a ratio map of the Hessian over '0.*' only."""
    from landscape.parameters import select_parameters

    model, data, _ = toy
    sel = select_parameters(model, exclude="2.*")
    dirs = random_directions(named_tensors(model), seeds=0, selection=sel)
    assert dirs.recipe["exclude"] == ["2.*"]
    path = tmp_path / "sel.h5"
    compute_surface(model, dirs, {"train": data}, x="0:1:2", y="0:0:1", out=path,
                    progress=False)
    rm = compute_ratio_map(model, path, data, tol=1e-10, progress=False)
    base = named_tensors(model)
    names = ["0.weight", "0.bias"]
    for ix in range(2):
        p = {k: base[k] + rm.x[ix] * dirs.vectors[0][k] for k in base}
        ev = torch.linalg.eigvalsh(exact_hessian(model, data.x, data.y, names, params=p))
        assert rm.lambda_max[0, ix] == pytest.approx(float(ev[-1]), abs=1e-6)
        assert rm.lambda_min[0, ix] == pytest.approx(float(ev[0]), abs=1e-6)
