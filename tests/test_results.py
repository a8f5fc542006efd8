"""landscape.results: the registry of stored result kinds and open()."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import landscape as ls
from landscape import storage
from landscape.connect import GROUP as CONNECT_GROUP
from landscape.errors import LandscapeError
from landscape.hessian.blocks import GROUP as BLOCKS_GROUP
from landscape.hessian.directions import HESSIAN_GROUP
from landscape.hessian.ratio_map import GROUP as RATIO_GROUP
from landscape.hessian.results import GROUP as CURVATURE_GROUP
from landscape.hessian.results import CurvatureResult
from landscape.mechanisms import RESULTS as MECHANISM_RESULTS
from landscape.results import RESULT_KINDS, result_kind
from landscape.surface import SURFACE_GROUP, Surface
from landscape.surface_set import GROUP as SET_GROUP


def test_every_kind_names_its_owners_group():
    """The registry's group of each kind is the owner's own constant (one source of truth)."""
    owners = {"surface": SURFACE_GROUP, "surface_set": SET_GROUP,
              "hessian_surface": HESSIAN_GROUP, "curvature": CURVATURE_GROUP,
              "ratio_map": RATIO_GROUP, "connectivity": CONNECT_GROUP,
              "trajectory": "trajectory", "block_spectra": BLOCKS_GROUP}
    for name, cls in MECHANISM_RESULTS.items():
        owners[name] = cls.GROUP
        assert RESULT_KINDS[name].owner_class() is cls
    owners["gradflow_init"] = "gradflow_init"
    assert {k: v.group for k, v in RESULT_KINDS.items()} == owners
    for kind in RESULT_KINDS.values():
        assert callable(kind.owner_class().load)


def test_unknown_kind_is_one_clear_error():
    with pytest.raises(LandscapeError, match="unknown result kind 'nope'; known: surface"):
        result_kind("nope")


def _surface() -> Surface:
    x = np.linspace(-1, 1, 5)
    z = np.add.outer(x**2, x**2)
    return Surface(x=x, y=x, arrays={"train_loss": z}, done=np.ones(z.shape, bool))


def test_open_returns_each_result_as_its_class_loaded_once(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    _surface().save(path)
    CurvatureResult(top_eigenvalues=np.array([2.0, 1.0])).save(path)
    f = ls.open(path)
    assert list(f) == ["surface", "curvature"] and len(f) == 2
    assert "trajectory" not in f and f.get("trajectory") is None
    assert f.file_kind == "landscape" and set(f.groups) >= {"surface", "curvature"}
    calls = []
    real = CurvatureResult.load.__func__
    monkeypatch.setattr(CurvatureResult, "load",
                        classmethod(lambda cls, p: calls.append(p) or real(cls, p)))
    c = f["curvature"]
    assert isinstance(c, CurvatureResult) and f["curvature"] is c and len(calls) == 1
    np.testing.assert_array_equal(c.top_eigenvalues, [2.0, 1.0])
    s = f["surface"]
    assert isinstance(s, Surface)
    np.testing.assert_array_equal(s["train_loss"], _surface()["train_loss"])
    assert f.mechanisms() == {}
    with pytest.raises(KeyError):
        f["trajectory"]


def test_open_reads_a_surface_file_of_li_et_al(tmp_path):
    path = tmp_path / "li.h5"
    x = np.linspace(-1, 1, 4)
    with h5py.File(path, "w") as h:
        h["xcoordinates"], h["ycoordinates"] = x, x
        h["train_loss"] = np.add.outer(x**2, x**2)
    f = ls.open(path)
    assert f.file_kind == "li2018" and list(f) == ["surface"] and f.groups == ()
    assert f["surface"].shape == (4, 4)


def test_open_refuses_what_is_not_a_result_file(tmp_path):
    bad = tmp_path / "x.h5"
    with h5py.File(bad, "w") as h:
        h["a"] = 1
    with pytest.raises(LandscapeError, match="not a landscape file"):
        ls.open(bad)
    text = tmp_path / "t.h5"
    text.write_text("hello")
    with pytest.raises(LandscapeError, match="not a valid HDF5 file"):
        ls.open(text)


def test_an_empty_landscape_file_holds_no_results(tmp_path):
    path = tmp_path / "e.h5"
    _surface().save(path)
    storage.update_file(path, {"surface": None})
    assert len(ls.open(path)) == 0


def test_every_result_kind_draws_itself():
    for kind in RESULT_KINDS.values():
        assert callable(getattr(kind.owner_class(), "plot", None)), kind.owner


def test_results_plot_themselves(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from landscape.hessian.ratio_map import RatioMap

    grid = np.linspace(-1, 1, 21)
    c = CurvatureResult(top_eigenvalues=np.array([2.0]), density_grid=grid,
                        density=np.exp(-grid**2) / np.trapezoid(np.exp(-grid**2), grid))
    assert c.plot().has_data()
    with pytest.raises(LandscapeError, match="no eigenvalue density; compute it with density="):
        CurvatureResult(top_eigenvalues=np.array([2.0])).plot()
    x = np.linspace(-1, 1, 4)
    shape = (4, 4)
    rm = RatioMap(x=x, y=x, lambda_max=np.ones(shape), lambda_min=-np.ones(shape) / 10,
                  ratio=np.full(shape, 0.1), n_hvp=np.ones(shape, dtype=np.int64),
                  done=np.ones(shape, bool), converged=np.ones(shape, bool))
    assert rm.plot(surface=_surface()).get_xlabel()
    plt.close("all")
