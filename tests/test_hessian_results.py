"""CurvatureResult (the /curvature group), compute_curvature and hessian_directions."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape import storage
from landscape._functional import named_tensors
from landscape.directions import filter_norms, random_directions
from landscape.errors import LandscapeError
from landscape.hessian import (
    CurvatureResult,
    EigenResult,
    SpectralDensity,
    TraceResult,
    compute_curvature,
    eigenvector_directions,
    hessian_directions,
)
from landscape.hessian.results import FLAT_FIELDS
from landscape.surface import Surface, compute_surface, load_directions, save_directions

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
    return toy_classifier(1, nn.Tanh)


@pytest.fixture(scope="module")
def spectrum(toy):
    model, data = toy
    names = list(named_tensors(model))
    return torch.linalg.eigvalsh(exact_hessian(model, data.x, data.y, names)).numpy()


@pytest.fixture(scope="module")
def full(toy):
    model, data = toy
    return compute_curvature(
        model, data, top_k=3, min_eig=True, trace=True, trace_samples=30, density=True,
        density_steps=20, density_runs=3, density_points=50, tol=1e-8, batch_size=16,
        keep_eigenvectors=True, recipe={"checkpoint_sha256": "abc"},
        provenance={"command": "test"},
    )


def _assert_same(a: CurvatureResult, b: CurvatureResult) -> None:
    for name in FLAT_FIELDS:  # every stored value (the parts hold them)
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, np.ndarray):
            assert isinstance(vb, np.ndarray) and va.dtype == vb.dtype, name
            assert np.array_equal(va, vb), name
        else:
            assert va == vb, name


def test_numbers_match_the_exact_hessian(full, spectrum):
    ev = spectrum
    assert full.n_params == 51
    np.testing.assert_allclose(full.top_eigenvalues, ev[::-1][:3], atol=1e-7)
    assert full.top_converged.all() and full.top_which == "LA"
    assert full.min_eigenvalue == pytest.approx(ev[0], abs=1e-7)
    assert full.ratio == pytest.approx(abs(ev[0] / ev[-1]), rel=1e-6)
    assert abs(full.trace - ev.sum()) < 4 * full.trace_stderr  # an unbiased estimate
    assert 0 < full.trace_stderr < 0.5 * abs(ev.sum())
    assert full.slq_nodes.shape == (3, 20) and full.slq_nodes.min() >= ev[0] - 1e-9
    area = np.sum((full.density[1:] + full.density[:-1]) * np.diff(full.density_grid)) / 2
    assert area == pytest.approx(1.0)
    assert full.eigenvectors.shape == (3, 51) and full.eigenvectors.dtype == np.float32
    assert full.n_hvp == full.top_n_hvp + full.min_n_hvp + full.trace_n_hvp + full.slq_n_hvp
    assert full.recipe["checkpoint_sha256"] == "abc" and full.recipe["n_samples"] == 60
    s = full.summary()
    assert s["lambda_max"] == pytest.approx(ev[-1], abs=1e-7) and s["trace_method"] == "hutch++"
    lines = full.lines()
    assert len(lines) == 4 and "λmax" in lines[1] and "|λmin/λmax|" in lines[1]
    assert "hutch++, 30 HVPs" in lines[2]
    assert all("λ" not in line for line in full.lines(unicode=False))


def test_round_trip_keeps_every_field_and_other_groups(full, toy, tmp_path):
    model, data = toy
    f = tmp_path / "s.h5"
    dirs = random_directions(named_tensors(model), seeds=0)
    surf = compute_surface(model, dirs, {"train": data}, x="-1:1:3", y="-1:1:3", out=f,
                           progress=False)
    written = full.save(f)
    _assert_same(written, full)
    back = CurvatureResult.load(f)
    _assert_same(back, full)
    assert set(storage.list_groups(f)) == {"surface", "directions", "curvature"}
    s = Surface.load(f)
    assert np.array_equal(s["train_loss"], surf["train_loss"]) and s.complete
    g = storage.read_group(f, "curvature")
    for name in ("top_eigenvalues", "top_residuals", "top_converged", "min_eigenvalue",
                 "ratio", "trace", "slq_nodes", "slq_weights", "density_grid", "density",
                 "eigenvectors"):
        assert name in g.datasets, name
    assert g.datasets["ratio"].shape == () and g.datasets["trace"].shape == ()
    assert "trace_stderr" in g.attrs
    # the surface can be rewritten without losing the curvature
    surf.save(f)
    _assert_same(CurvatureResult.load(f), full)
    # eigenvectors come back as tensors shaped like the parameters
    d = back.eigenvector_dicts()
    assert [tuple(t.shape) for t in d[0].values()] == [tuple(p.shape)
                                                       for p in model.parameters()]


def test_parts_are_the_solvers_results_and_the_flat_form_reads_them(full, tmp_path):
    assert isinstance(full.top, EigenResult) and isinstance(full.min, EigenResult)
    assert isinstance(full.trace_estimate, TraceResult)
    assert isinstance(full.spectrum, SpectralDensity)
    assert full.top.eigenvalues is full.top_eigenvalues and full.top.which == full.top_which
    assert full.top.eigenvectors.shape == (51, 3)  # columns, as the solver's; rows flat
    assert np.shares_memory(full.eigenvectors, full.top.eigenvectors)
    assert full.min_eigenvalue == full.min.eigenvalues[0]
    assert full.min_threshold == full.min.thresholds[0] and full.min.eigenvectors is None
    assert full.trace == full.trace_estimate.estimate and len(full.trace_estimate.samples) > 0
    assert full.density is full.spectrum.values and full.density_trace == pytest.approx(
        full.spectrum.trace_estimate(), rel=1e-12)
    assert full.eigenvector_names == tuple(n for n, _ in full.layout)
    with pytest.raises(AttributeError):
        full.trace = 1.0  # the flat form is read-only
    # the flat form builds the same result; dataclasses.replace takes flat names too
    flat = CurvatureResult.from_flat(**{k: getattr(full, k) for k in FLAT_FIELDS})
    _assert_same(flat, full)
    bare = dataclasses.replace(full, eigenvectors=None, eigenvector_names=None,
                               eigenvector_shapes=None)
    assert bare.eigenvectors is None and bare.layout is None and "eigenvectors" not in \
        bare.sections and bare.top_eigenvalues is full.top_eigenvalues
    lean = full.without_eigenvectors()
    assert lean.sections == ["top", "min", "trace", "density"]
    assert lean.recipe["top"]["eigenvectors"] is False and full.recipe["top"]["eigenvectors"]
    lean.save(tmp_path / "lean.h5")
    back = CurvatureResult.load(tmp_path / "lean.h5")
    assert back.eigenvectors is None and back.top.thresholds is None
    np.testing.assert_array_equal(back.top.eigenvalues, full.top.eigenvalues)
    assert back.trace_estimate.samples is None and back.trace == full.trace
    with pytest.raises(TypeError, match="top_eigenvalue"):
        CurvatureResult(top_eigenvalue=np.ones(2))


def test_sections_merge_and_other_operators_are_refused(toy, tmp_path, spectrum):
    model, data = toy
    f = tmp_path / "c.h5"
    top = compute_curvature(model, data, top_k=2, tol=1e-8)
    top.save(f)
    tr = compute_curvature(model, data, top_k=0, trace=True, trace_samples=12)
    merged = tr.save(f)
    back = CurvatureResult.load(f)
    assert back.sections == ["top", "trace"] == merged.sections
    assert set(back.recipe) >= {"top", "trace"}
    np.testing.assert_array_equal(back.top_eigenvalues, top.top_eigenvalues)
    mn = compute_curvature(model, data, top_k=0, min_eig=True, tol=1e-8)
    back = mn.save(f)
    assert back.ratio == pytest.approx(abs(spectrum[0] / spectrum[-1]), rel=1e-6)
    other = compute_curvature(model, data, top_k=1, loss="mse")
    with pytest.raises(LandscapeError, match="different recipe.*loss"):
        other.save(f)
    assert other.save(f, overwrite=True).sections == ["top"]
    assert CurvatureResult.load(f).recipe["loss"] == "mse"


def test_ratio_only_where_lambda_min_is_resolved(toy, spectrum, tmp_path):
    model, data = toy
    with pytest.warns(RuntimeWarning, match="did not reach"):
        res = compute_curvature(model, data, top_k=1, min_eig=True, tol=1e-8, max_hvp=4)
    assert res.min_converged is False and res.min_residual > res.min_threshold
    assert np.isnan(res.ratio) and "lambda_min is not resolved" in res.ratio_note
    assert "unresolved" in res.lines()[1] and res.summary()["ratio"] is None
    f = tmp_path / "c.h5"
    res.save(f)
    back = CurvatureResult.load(f)
    assert np.isnan(back.ratio) and back.ratio_note == res.ratio_note
    # resolved: a number, no note, lambda_min within its stored bound
    ok = compute_curvature(model, data, top_k=1, min_eig=True, tol=1e-3)
    assert ok.min_converged and ok.ratio_note is None
    assert abs(ok.min_eigenvalue - spectrum[0]) <= ok.min_threshold
    assert ok.min_threshold <= max(1e-3 * abs(spectrum[0]), 1e-6 * spectrum[-1]) * 1.01
    assert ok.recipe["min"]["scale_atol"] == 1e-6
    from landscape.report.numbers import curvature_numbers

    numbers, notes = curvature_numbers(back)
    assert numbers["ratio_at_minimum"] is None and "not resolved" in notes[-1]


def test_bad_inputs(toy, tmp_path):
    model, data = toy
    with pytest.raises(LandscapeError, match="nothing to compute"):
        compute_curvature(model, data, top_k=0)
    with pytest.raises(LandscapeError, match="'top_k'"):
        compute_curvature(model, data, top_k=-1)
    with pytest.raises(LandscapeError, match=r"'top_k'.*\[0, 51\]"):
        compute_curvature(model, data, top_k=52)
    with pytest.raises(LandscapeError, match="'trace_method'"):
        compute_curvature(model, data, trace=True, trace_method="exact")
    f = tmp_path / "empty.h5"
    storage.update_file(f, {"x": storage.Group()})
    with pytest.raises(LandscapeError, match="no curvature"):
        CurvatureResult.load(f)
    with pytest.raises(LandscapeError, match="holds no eigenvectors"):
        compute_curvature(model, data, top_k=1).eigenvector_dicts()


#: compute_curvature's keywords and defaults before its settings moved into CURVATURE_SETTINGS.
_KEYWORDS = {
    "top_k": 5, "which": "LA", "min_eig": False, "trace": False, "trace_method": "hutchpp",
    "trace_samples": 99, "density": False, "density_steps": 80, "density_runs": 5,
    "density_points": 500, "density_sigma": None, "tol": 1e-6, "seed": 0,
    "loss": "cross_entropy", "batch_size": 512, "what": "weights", "params": None,
    "ignore": None, "dtype": None, "max_hvp": None, "keep_eigenvectors": False,
    "recipe": None, "provenance": None, "exclude": None, "include_frozen": False,
    "progress": False, "solver_dtype": None, "hvp": "autograd", "operator": "hessian",
    "ncv": None, "check_memory": True,
}


def test_every_keyword_keeps_its_name_and_default(toy):
    import inspect

    sig = inspect.signature(compute_curvature)
    assert list(sig.parameters)[:2] == ["model", "data"]
    assert {k: p.default for k, p in list(sig.parameters.items())[2:]} == _KEYWORDS
    assert all(p.kind is p.KEYWORD_ONLY for p in list(sig.parameters.values())[2:])
    model, data = toy
    with pytest.raises(TypeError, match="unexpected keyword argument 'top_kk'"):
        compute_curvature(model, data, top_kk=1)
    with pytest.raises(LandscapeError, match="'trace_samples'.*\\[3, inf\\)"):
        compute_curvature(model, data, trace=True, trace_samples=2)
    with pytest.raises(LandscapeError, match="keep_eigenvectors needs top_k >= 1"):
        compute_curvature(model, data, top_k=0, trace=True, keep_eigenvectors=True)


def test_hessian_directions_are_eigenvectors(toy, spectrum):
    model, data = toy
    d = hessian_directions(model, data, k=2, scale="none", ignore="none", tol=1e-10)
    assert d.ndim == 2 and d.recipe["kind"] == "hessian"
    np.testing.assert_allclose(d.recipe["eigenvalues"], spectrum[::-1][:2], atol=1e-8)
    names = list(named_tensors(model))
    H = exact_hessian(model, data.x, data.y, names)
    for vec, lam in zip(d.vectors, d.recipe["eigenvalues"], strict=True):
        v = torch.cat([vec[k].reshape(-1) for k in names])
        assert float(v.norm()) == pytest.approx(1.0)
        torch.testing.assert_close(H @ v, lam * v, atol=1e-7, rtol=0)
        assert float(v[v.abs().argmax()]) > 0  # deterministic sign
    again = hessian_directions(model, data, k=2, scale="none", ignore="none", tol=1e-10)
    assert again.digest() == d.digest()
    scaled = hessian_directions(model, data, k=1, scale=3.0, ignore="none", tol=1e-10)
    v = torch.cat([t.reshape(-1) for t in scaled.vectors[0].values()])
    assert float(v.norm()) == pytest.approx(3.0)


def test_hessian_directions_make_surfaces(toy, tmp_path):
    model, data = toy
    w = named_tensors(model)
    d = hessian_directions(model, data, k=2)  # filter-normalized, biasbn
    for vec in d.vectors:
        for k, t in vec.items():
            if t.dim() <= 1:
                assert not torch.any(t != 0), k
            else:
                torch.testing.assert_close(filter_norms(t), filter_norms(w[k]))
    assert d.recipe["norm"] == "filter" and d.recipe["ignore"] == "biasbn"
    f = tmp_path / "dirs.h5"
    save_directions(f, d)
    back = load_directions(f)
    assert back.digest() == d.digest() and back.recipe["kind"] == "hessian"
    s = compute_surface(model, back, {"train": data}, x="-1:1:3", y="-0.5:0.5:3",
                        progress=False)
    assert s.complete and np.all(np.isfinite(s["train_loss"]))
    with pytest.raises(LandscapeError, match="'k'"):
        hessian_directions(model, data, k=3)
    with pytest.raises(LandscapeError, match="'scale'"):
        hessian_directions(model, data, scale="layer")
    with pytest.raises(LandscapeError, match="another model"):
        eigenvector_directions([{"nope": torch.zeros(2)}], w)


# ----------------------------------------------------------------- surfaces along eigenvectors
def _least_squares_model(n: int = 40, p: int = 12):
    """nn.Linear(p, 1) at its least-squares solution (a minimum of the mse: zero gradient), and
    the exact Hessian of the mse in its weights, 2/n XᵀX."""
    from landscape.data import TensorData

    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, p, generator=g, dtype=F64) * torch.linspace(3.0, 0.5, p, dtype=F64)
    y = x @ torch.randn(p, generator=g, dtype=F64) + 0.3 * torch.randn(n, generator=g,
                                                                       dtype=F64)
    a = torch.cat([x, torch.ones(n, 1, dtype=F64)], 1)
    sol = torch.linalg.lstsq(a, y.unsqueeze(1)).solution.squeeze(1)
    model = nn.Linear(p, 1).double()
    with torch.no_grad():
        model.weight.copy_(sol[:p].unsqueeze(0))
        model.bias.copy_(sol[p:])
    return model, TensorData(x, y.unsqueeze(1), "ls"), 2.0 / n * x.T @ x


def test_surface_along_the_top_eigenvectors_is_the_closed_form(tmp_path):
    from landscape.hessian import compute_hessian_surface

    model, data, h = _least_squares_model()
    lam = torch.linalg.eigvalsh(h).numpy()[::-1]
    s = compute_hessian_surface(model, {"train": data}, x="-0.05:0.05:5", y="-0.05:0.05:5",
                                loss="mse", scale="none", tol=1e-12, batch_size=16,
                                out=tmp_path / "h.h5", progress=False)
    assert s.group == "hessian_surface" and s.directions.recipe["pair"] == "top"
    np.testing.assert_allclose(s.directions.recipe["eigenvalues"], lam[:2], rtol=1e-10)
    centre = s["train_loss"][2, 2]
    a, b = np.meshgrid(s.x, s.y)
    want = centre + 0.5 * lam[0] * a**2 + 0.5 * lam[1] * b**2
    np.testing.assert_allclose(s["train_loss"], want, rtol=1e-8, atol=0)
    assert not np.allclose(s["train_loss"], centre)  # the steps do move the loss
    back = Surface.load(tmp_path / "h.h5", "hessian_surface")
    np.testing.assert_array_equal(back["train_loss"], s["train_loss"])
    assert back.directions.digest() == s.directions.digest()
    assert back.directions.recipe["eigenvalues"] == s.directions.recipe["eigenvalues"]


def test_top_bottom_slice_of_a_saddle_shows_the_negative_curvature():
    """L(w) = ½ Σ c_i w_i² with c = (3, 1, -2) at w = 0: λmax 3 along x, λmin -2 along y."""
    from landscape.data import TensorData
    from landscape.hessian import compute_hessian_surface

    class Saddle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1, 3, dtype=F64))

        def forward(self, x):
            return self.weight.expand(len(x), 3)

    c = torch.tensor([3.0, 1.0, -2.0], dtype=F64)

    def saddle_loss(out, target):
        return 0.5 * (out**2 * c).sum(1)

    data = TensorData(torch.zeros(4, 1, dtype=F64), torch.zeros(4, dtype=F64), "saddle")
    s = compute_hessian_surface(Saddle(), {"train": data}, x="-1:1:5", y="-1:1:5",
                                pair="topbottom", loss=saddle_loss, scale="none", tol=1e-12,
                                batch_size=4, progress=False)
    np.testing.assert_allclose(s.directions.recipe["eigenvalues"], [3.0, -2.0], atol=1e-10)
    a, b = np.meshgrid(s.x, s.y)
    np.testing.assert_allclose(s["train_loss"], 1.5 * a**2 - b**2, atol=1e-12)
    assert s["train_loss"][0, 2] < s["train_loss"][2, 2] < s["train_loss"][2, 0]  # a saddle
    top = compute_hessian_surface(Saddle(), {"train": data}, x="-1:1:3", y="-1:1:3",
                                  loss=saddle_loss, scale="none", tol=1e-12, progress=False)
    np.testing.assert_allclose(top.directions.recipe["eigenvalues"], [3.0, 1.0], atol=1e-10)
    assert np.all(top["train_loss"] >= 0)  # the top pair never sees the saddle
    with pytest.raises(LandscapeError, match="2D"):
        compute_hessian_surface(Saddle(), {"train": data}, x="-1:1:3", pair="topbottom",
                                loss=saddle_loss, progress=False)


def test_hessian_surface_sits_beside_the_random_one_and_resumes(toy, tmp_path, monkeypatch):
    from landscape.hessian import compute_hessian_surface
    from landscape.hessian import directions as hdir

    model, data = toy
    out = tmp_path / "both.h5"
    rand = compute_surface(model, random_directions(named_tensors(model), seeds=0),
                           {"train": data}, x="-1:1:3", y="-1:1:3", out=out, progress=False)
    kw = {"x": "-1:1:3", "y": "-1:1:3", "out": out, "progress": False, "batch_size": 16}
    full = compute_hessian_surface(model, {"train": data}, **{**kw, "out": None})
    part = compute_hessian_surface(model, {"train": data}, max_points=4, **kw)
    assert part.n_done == 4
    with h5py.File(out, "r") as f:
        assert {"surface", "directions", "hessian_surface"} <= set(f)
        assert "directions" in f["hessian_surface"] and f.attrs["format_version"] == 1
    # the random surface and its directions are untouched
    again_rand = Surface.load(out)
    np.testing.assert_array_equal(again_rand["train_loss"], rand["train_loss"])
    assert again_rand.directions.digest() == rand.directions.digest()

    def no_solve(*a, **k):
        raise AssertionError("a resumed Hessian surface must reuse its stored eigenvectors")

    monkeypatch.setattr(hdir, "hessian_directions", no_solve)
    done = compute_hessian_surface(model, {"train": data}, **kw)
    assert done.complete
    np.testing.assert_array_equal(done["train_loss"], full["train_loss"])
    with pytest.raises(LandscapeError, match="differs in: pair"):
        compute_hessian_surface(model, {"train": data}, pair="topbottom", **kw)
    with pytest.raises(LandscapeError, match="differs in: seed"):
        compute_hessian_surface(model, {"train": data}, seed=1, **kw)
    monkeypatch.undo()
    assert compute_hessian_surface(model, {"train": data}, pair="topbottom", overwrite=True,
                                   **kw).directions.recipe["pair"] == "topbottom"
    kept = Surface.load(out)  # overwrite replaced /hessian_surface only
    np.testing.assert_array_equal(kept["train_loss"], rand["train_loss"])
