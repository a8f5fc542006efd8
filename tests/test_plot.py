"""Pictures: every plot kind renders (not blank) on complete, diverged, all-NaN, partial and 1D
surfaces; shared levels in comparisons; ParaView/HTML exports; notebook reprs; the CLI."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
from landscape.cli import plot as cli_plot

from landscape import storage
from landscape.errors import LandscapeError
from landscape.hessian.ratio_map import RatioMap
from landscape.hessian.results import CurvatureResult
from landscape.plot import (
    auto_levels,
    compare_panels,
    export_plotly_html,
    export_vtp,
    plot_1d,
    plot_3d,
    plot_contour,
    plot_density,
    plot_file,
    plot_ratio_map,
    plot_trajectory,
    save_figure,
    surface_repr_html,
    surface_repr_png,
)
from landscape.surface import Surface
from landscape.trajectory import Trajectory

RECIPE = {"directions": {"kind": "random", "norm": "filter", "seeds": [0, 1]}}


# --------------------------------------------------------------------------- fixtures
def _grid(nx: int = 13, ny: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1, 1, nx)
    y = np.linspace(-0.5, 1.5, ny)
    xx, yy = np.meshgrid(x, y)
    return x, y, xx, yy


def _surf2d(loss: np.ndarray, done: np.ndarray | None = None, **kw) -> Surface:
    x, y, _, _ = _grid(loss.shape[1], loss.shape[0])
    done = np.ones(loss.shape, bool) if done is None else done
    acc = np.clip(1 - loss / 10, 0, 1)
    return Surface(x=x, y=y, arrays={"train_loss": loss, "train_acc": acc}, done=done,
                   directions=None, recipe=kw.pop("recipe", RECIPE), provenance={})


def _bowl() -> np.ndarray:
    _, _, xx, yy = _grid()
    return 0.05 + xx**2 + 2 * (yy - 0.5) ** 2


@pytest.fixture
def complete() -> Surface:
    return _surf2d(_bowl())


@pytest.fixture
def diverged() -> Surface:
    z = _bowl() * 100
    z[1:4, 2:5] = np.nan
    z[6, 10] = np.inf
    return _surf2d(z)


@pytest.fixture
def all_nan() -> Surface:
    return _surf2d(np.full((9, 13), np.nan))


@pytest.fixture
def partial() -> Surface:
    z = _bowl()
    done = np.zeros(z.shape, bool)
    done.reshape(-1)[:50] = True
    z[~done] = np.nan
    return _surf2d(z, done)


def _surf1d(nan: bool = False) -> Surface:
    x = np.linspace(-0.5, 1.5, 31)
    loss = 0.1 + (x * (x - 1)) ** 2
    if nan:
        loss[4:7] = np.nan
        loss[20] = np.inf
    arrays = {"train_loss": loss, "test_loss": loss + 0.2,
              "train_acc": np.clip(1 - loss, 0, 1), "test_acc": np.clip(0.9 - loss, 0, 1)}
    return Surface(x=x, y=None, arrays=arrays, done=np.ones(31, bool), directions=None,
                   recipe={"directions": {"kind": "interpolation", "target": "b.pt"}},
                   provenance={})


def _trajectory(coords: np.ndarray, evr: list[float]) -> Trajectory:
    """A trajectory result as TrajectoryPCA would leave it (only coords, evr, epochs matter)."""
    n = len(coords)
    r = np.asarray(evr, dtype=np.float64)
    return Trajectory(coords=coords, explained_variance_ratio=r, explained_variance=r,
                      singular_values=np.sqrt(r), step_capture=np.full(n - 1, 0.9),
                      random_capture=np.full(n - 1, 0.01), n_components=2,
                      n_components_for_90=2, path_capture=0.9, random_path_capture=0.01,
                      random_variance_ratio=0.02, epochs=np.arange(n))


def _ratio_map(x: np.ndarray, y: np.ndarray, ratio: np.ndarray,
               done: np.ndarray | None = None) -> RatioMap:
    done = np.ones(ratio.shape, bool) if done is None else done
    return RatioMap(x=x, y=y, lambda_max=np.ones(ratio.shape), lambda_min=-ratio, ratio=ratio,
                    n_hvp=np.full(ratio.shape, 10), done=done, converged=done,
                    recipe={}, provenance={})


@pytest.fixture(params=["complete", "diverged", "all_nan", "partial"])
def surf2d(request) -> Surface:
    return request.getfixturevalue(request.param)


def _empty_png(fig) -> np.ndarray:
    from matplotlib.figure import Figure

    empty = Figure(figsize=fig.get_size_inches(), layout="constrained")
    buf = io.BytesIO()
    empty.savefig(buf, format="png", dpi=60)
    buf.seek(0)
    import matplotlib.image as mpimg

    return mpimg.imread(buf)


def _assert_not_blank(obj, tmp_path: Path, name: str) -> Path:
    """Save as PNG, check the PNG signature and that it is not an empty figure."""
    import matplotlib.image as mpimg

    fig = obj if hasattr(obj, "savefig") else obj.figure
    path = save_figure(obj, tmp_path / f"{name}.png", dpi=60)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.std() > 0.02, f"{name}: blank picture"
    empty = _empty_png(fig)
    assert img.shape == empty.shape
    assert np.abs(img - empty).mean() > 0.005, f"{name}: same as an empty figure"
    return path


# --------------------------------------------------------------------------- levels
def test_auto_levels_ignore_nonfinite_and_go_log_over_two_decades():
    assert auto_levels([np.nan, np.inf]) is None
    lv = auto_levels([0.0, 1.0, np.nan, np.inf, -np.inf], n=3)
    np.testing.assert_allclose(lv, [0.0, 0.475, 0.95])  # 95th percentile, not the max
    lv = auto_levels(np.geomspace(1e-3, 10, 50), n=5)
    np.testing.assert_allclose(np.diff(np.log(lv)), np.diff(np.log(lv))[0])  # log-spaced
    lv = auto_levels(np.linspace(1, 5, 50), n=5)
    np.testing.assert_allclose(np.diff(lv), np.diff(lv)[0])  # linear
    lv = auto_levels([0.0, 1e-3, 10.0], n=4, log=True)  # zero: start at the smallest > 0
    assert lv[0] == pytest.approx(1e-3) and np.all(lv > 0)
    lv = auto_levels([2.0, 2.0], n=3)  # constant: a narrow range around it
    assert lv[0] < 2.0 < lv[-1]
    with pytest.raises(LandscapeError, match="vmin"):
        auto_levels([1.0, 2.0], vmin=3.0, vmax=1.0)


# --------------------------------------------------------------------------- 2D
@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap"])
def test_2d_kinds_render_on_every_surface(surf2d, kind, tmp_path):
    ax = plot_contour(surf2d, kind=kind)
    _assert_not_blank(ax, tmp_path, kind)
    assert ax.get_xlabel() == "x: filter-normalized random, seed 0"
    assert ax.get_ylabel() == "y: filter-normalized random, seed 1"


def test_all_nan_draws_an_empty_panel_with_a_note(all_nan):
    ax = plot_contour(all_nan, kind="contourf")
    assert any("no finite value" in t.get_text() for t in ax.texts)
    assert len(ax.figure.axes) == 1  # no colorbar for nothing


def test_diverged_points_are_masked_and_marked(diverged):
    from matplotlib.contour import ContourSet

    ax = plot_contour(diverged, kind="contourf")
    cs = [c for c in ax.collections if isinstance(c, ContourSet)][0]
    assert np.all(np.isfinite(cs.levels))
    marks = [ln for ln in ax.lines if ln.get_label().startswith("diverged")]
    assert marks and len(marks[0].get_xdata()) == 10  # 9 NaN + 1 inf


def test_partial_surface_says_how_far_it_got(partial):
    ax = plot_contour(partial)
    assert "50/117 points done" in ax.get_title()


def test_explicit_levels_log_levels_and_errors(complete):
    from matplotlib.colors import LogNorm
    from matplotlib.contour import ContourSet

    ax = plot_contour(complete, kind="contourf", log_levels=True, levels=7)
    cs = [c for c in ax.collections if isinstance(c, ContourSet)][0]
    assert len(cs.levels) == 7 and isinstance(cs.norm, LogNorm)
    ax = plot_contour(complete, levels=[0.1, 0.5, 1.0], label=False, colorbar=False)
    cs = [c for c in ax.collections if isinstance(c, ContourSet)][0]
    np.testing.assert_allclose(cs.levels, [0.1, 0.5, 1.0])
    with pytest.raises(LandscapeError, match="levels"):
        plot_contour(complete, levels=[1.0, 0.5])
    with pytest.raises(LandscapeError, match="'array'"):
        plot_contour(complete, array="test_loss")
    with pytest.raises(LandscapeError, match="'kind'"):
        plot_contour(complete, kind="surface")
    with pytest.raises(LandscapeError, match="1D"):
        plot_contour(_surf1d())


def test_draws_into_a_given_axes_and_leaves_pyplot_alone(complete):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    assert plot_contour(complete, ax=ax, colorbar=False) is ax
    r = subprocess.run(
        [sys.executable, "-c",
         "import sys, landscape, landscape.plot, landscape.cli.plot; "
         "print('matplotlib' in sys.modules)"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.stdout.strip() == "False", r.stderr  # imported lazily


# --------------------------------------------------------------------------- 3D
@pytest.mark.parametrize("name", ["complete", "diverged", "all_nan"])
def test_3d_is_not_blank(request, name, tmp_path):
    s = request.getfixturevalue(name)
    ax = plot_3d(s)
    assert ax.name == "3d"
    _assert_not_blank(ax, tmp_path, f"3d_{name}")


def test_3d_clip_and_axes_check(diverged):
    from matplotlib.figure import Figure

    ax = plot_3d(diverged, clip=50.0)
    assert "clipped at 50" in ax.get_title()
    ax = plot_3d(diverged, clip=np.inf)
    assert "clipped" not in ax.get_title()
    with pytest.raises(LandscapeError, match="3D Axes"):
        plot_3d(diverged, ax=Figure().add_subplot())


# --------------------------------------------------------------------------- 1D
@pytest.mark.parametrize("nan", [False, True])
def test_1d_dual_axis(nan, tmp_path):
    s = _surf1d(nan)
    ax = plot_1d(s)
    assert len(ax.figure.axes) == 2  # loss + twin accuracy axis
    twin = ax.figure.axes[1]
    assert twin.get_ylabel() == "accuracy" and ax.get_ylabel() == "loss"
    assert ax.get_xlabel() == "x: interpolation (0: origin, 1: b.pt)"
    _assert_not_blank(ax, tmp_path, f"1d_{nan}")
    if nan:
        line = [ln for ln in ax.lines if ln.get_label() == "train loss"][0]
        y = line.get_ydata()
        assert np.ma.is_masked(y) and np.ma.getmaskarray(y)[4:7].all()
        assert any(ln.get_label() == "diverged (4)" for ln in ax.lines)


def test_1d_options_and_nan_only(tmp_path):
    s = _surf1d(True)
    ax = plot_1d(s, log=True, splits=["test"], twin=False)
    assert ax.get_yscale() == "log" and len(ax.figure.axes) == 1
    assert [ln.get_label() for ln in ax.lines][:1] == ["test loss"]
    ax = plot_1d(s, metric="acc")
    assert ax.get_ylabel() == "accuracy"
    empty = Surface(x=s.x, y=None, arrays={"train_loss": np.full(31, np.nan)},
                    done=np.zeros(31, bool))
    ax = plot_1d(empty)
    assert any("no point computed" in t.get_text() for t in ax.texts)
    _assert_not_blank(ax, tmp_path, "1d_empty")
    with pytest.raises(LandscapeError, match="splits"):
        plot_1d(s, splits=["val"])
    with pytest.raises(LandscapeError, match="2D"):
        plot_1d(_surf2d(_bowl()))


def test_1d_error_band_is_two_standard_errors_wide():
    s = _surf1d(True)
    assert not plot_1d(s).collections  # no standard errors stored: no band
    se = np.full(31, 0.01)
    se[10] = np.nan  # unknown there: a gap
    s.stderrs = {"train_loss_se": se}
    ax = plot_1d(s, twin=False)
    (band,) = ax.collections
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    z = s["train_loss"][np.isfinite(s["train_loss"])]
    assert ys.min() == pytest.approx(z.min() - 0.02) and ys.max() == pytest.approx(z.max() + 0.02)
    xs = np.concatenate([p.vertices[:, 0] for p in band.get_paths()])
    assert s.x[10] not in xs and s.x[5] not in xs  # unknown error, masked loss
    assert not plot_1d(s, band=False).collections


# --------------------------------------------------------------------------- others
def test_trajectory_over_contour(complete, tmp_path):
    t = np.linspace(0, 1, 12)
    coords = np.column_stack([0.8 * (1 - t), 1.2 * (1 - t) ** 2 + 0.5 * t])
    ax = plot_trajectory(coords, surface=complete, explained_variance_ratio=[0.623, 0.2],
                         epochs=np.arange(12))
    assert ax.get_xlabel() == "PC1 (62.3%)" and ax.get_ylabel() == "PC2 (20.0%)"
    texts = [t.get_text() for t in ax.texts]
    assert "start (epoch 0)" in texts and "end (epoch 11)" in texts
    _assert_not_blank(ax, tmp_path, "trajectory")
    ax = plot_trajectory(coords)  # alone
    assert ax.get_xlabel() == "PC1"
    _assert_not_blank(ax, tmp_path, "trajectory_alone")
    with pytest.raises(LandscapeError, match="coords"):
        plot_trajectory(np.zeros((4, 3, 2)))


def test_ratio_map_scale_and_threshold(tmp_path):
    x, y, xx, yy = _grid()
    ratio = -np.abs(xx * yy) * 3  # signed input: the absolute value is drawn
    ratio[0, 0] = np.inf
    ax = plot_ratio_map(x, y, ratio, threshold=0.5)
    mesh = ax.collections[0]
    assert mesh.get_clim() == (0.0, pytest.approx(3 * 1.0 * 1.5))
    assert len(ax.collections) == 2  # mesh + the threshold contour
    _assert_not_blank(ax, tmp_path, "ratio2d")
    ax = plot_ratio_map(x, y, np.full_like(xx, 0.1))
    assert ax.collections[0].get_clim() == (0.0, 1.0)  # at least [0, 1]
    ax = plot_ratio_map(x, None, np.abs(x), threshold=0.2)
    _assert_not_blank(ax, tmp_path, "ratio1d")
    with pytest.raises(LandscapeError, match="transposed"):
        plot_ratio_map(x, y, ratio.T)


def test_density_log_and_eigenvalues(tmp_path):
    g = np.linspace(-1, 10, 200)
    d = np.exp(-(g**2) * 5)
    ax = plot_density(g, d, eigenvalues=[8.0, 9.5])
    assert ax.get_yscale() == "log"
    assert ax.get_ylim()[0] > 0
    assert sum(ln.get_linestyle() == "--" for ln in ax.lines) == 2
    _assert_not_blank(ax, tmp_path, "density")
    ax = plot_density(g, d, log=False)
    assert ax.get_yscale() == "linear"
    with pytest.raises(LandscapeError, match="same length"):
        plot_density(g, d[:-1])


def test_compare_panels_share_levels_clim_and_one_colorbar(complete, diverged, tmp_path):
    from matplotlib.contour import ContourSet

    for kind in ("contour", "contourf"):
        fig = compare_panels([complete, diverged], titles=["resnet", "plain"], kind=kind)
        panels = [a for a in fig.axes if a.get_title() in ("resnet", "plain")]
        assert len(panels) == 2 and len(fig.axes) == 3  # one colorbar
        sets = [[c for c in a.collections if isinstance(c, ContourSet)][0] for a in panels]
        np.testing.assert_array_equal(sets[0].levels, sets[1].levels)
        assert sets[0].get_clim() == sets[1].get_clim()
        # levels come from both surfaces: they reach far above the first one's values
        assert sets[0].levels[-1] > np.nanmax(complete["train_loss"])
        _assert_not_blank(fig, tmp_path, f"compare_{kind}")
    fig = compare_panels([complete, diverged], kind="heatmap")
    m = [a.collections[0] for a in fig.axes[:2]]
    assert m[0].get_clim() == m[1].get_clim()
    with pytest.raises(LandscapeError, match="2D"):
        compare_panels([complete, _surf1d()])
    with pytest.raises(LandscapeError, match="titles"):
        compare_panels([complete], titles=["a", "b"])


# --------------------------------------------------------------------------- files
def test_save_figure_formats_and_errors(complete, tmp_path):
    ax = plot_contour(complete)
    assert save_figure(ax, tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"
    assert b"<svg" in save_figure(ax.figure, tmp_path / "a.svg").read_bytes()[:2000]
    with pytest.raises(LandscapeError, match=r"\.png, \.pdf or \.svg"):
        save_figure(ax, tmp_path / "a.jpg")
    with pytest.raises(LandscapeError, match="does not exist"):
        save_figure(ax, tmp_path / "missing" / "a.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "a.svg"]  # no temp files


def test_export_vtp_is_well_formed(diverged, tmp_path):
    path = export_vtp(diverged, tmp_path / "s.vtp")
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "PolyData"
    piece = root.find("PolyData/Piece")
    ok = np.isfinite(diverged["train_loss"]) & diverged.done
    quads = ok[:-1, :-1] & ok[:-1, 1:] & ok[1:, :-1] & ok[1:, 1:]
    n_pts, n_polys = int(piece.get("NumberOfPoints")), int(piece.get("NumberOfPolys"))
    assert n_pts == ok.sum() == 117 - 10 and n_polys == quads.sum()
    pts = np.array(piece.find("Points/DataArray").text.split(), float).reshape(-1, 3)
    assert pts.shape == (n_pts, 3) and np.all(np.isfinite(pts))
    arrays = {a.get("Name"): a for a in piece.iter("DataArray")}
    loss = np.array(arrays["train_loss"].text.split(), float)
    np.testing.assert_allclose(loss, diverged["train_loss"][ok], rtol=1e-9)
    conn = np.array(arrays["connectivity"].text.split(), int)
    offs = np.array(arrays["offsets"].text.split(), int)
    assert conn.size == 4 * n_polys and offs[-1] == conn.size and conn.max() < n_pts
    # log heights, capped
    path = export_vtp(diverged, tmp_path / "log.vtp", log=True, zmax=2.0)
    z = np.array(ET.parse(path).getroot().find("PolyData/Piece/Points/DataArray")
                 .text.split(), float).reshape(-1, 3)[:, 2]
    assert z.max() <= 2.0 and z.min() == pytest.approx(np.log10(np.nanmin(
        diverged["train_loss"][np.isfinite(diverged["train_loss"])])))
    with pytest.raises(LandscapeError, match="no finished finite"):
        export_vtp(_surf2d(np.full((9, 13), np.nan)), tmp_path / "x.vtp")
    with pytest.raises(LandscapeError, match="2D"):
        export_vtp(_surf1d(), tmp_path / "x.vtp")


def test_plotly_missing_and_present(complete, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(LandscapeError, match=r"plotly is not installed; pip install "
                                             r"'landscape\[interactive\]'"):
        export_plotly_html(complete, tmp_path / "s.html")
    # a stand-in plotly: the surface it receives has gaps (None) where values are not finite
    seen = {}

    class Fig:
        def __init__(self, data):
            seen["data"] = data

        def update_layout(self, **kw):
            seen["layout"] = kw

        def to_html(self, **kw):
            return "<html>plotly</html>"

    go = types.SimpleNamespace(Figure=Fig, Surface=lambda **kw: kw)
    pkg = types.ModuleType("plotly")
    pkg.graph_objects = go
    monkeypatch.setitem(sys.modules, "plotly", pkg)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", go)
    s = _surf2d(_bowl())
    s.arrays["train_loss"][0, 0] = np.nan
    out = export_plotly_html(s, tmp_path / "s.html")
    assert out.read_text() == "<html>plotly</html>"
    z = seen["data"][0]["z"]
    assert len(z) == 9 and len(z[0]) == 13 and z[0][0] is None and z[1][1] is not None


# --------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize("name", ["complete", "all_nan", "1d"])
def test_jupyter_reprs(request, name):
    s = _surf1d() if name == "1d" else request.getfixturevalue(name)
    png = surface_repr_png(s)
    assert png[:4] == b"\x89PNG"
    page = surface_repr_html(s)
    assert "<table" in page and "data:image/png;base64," in page
    assert f"{s.n_done}/{s.n_points} points" in page and "train_loss" in page


# --------------------------------------------------------------------------- CLI
def _cli(*argv: str) -> int:
    p = argparse.ArgumentParser(prog="landscape")
    sub = p.add_subparsers(dest="command")
    cli_plot.add_parser(sub)
    args = p.parse_args(["plot", *argv])
    return args.func(args)


def test_cli_2d_defaults_and_exports(complete, tmp_path, capsys):
    f = tmp_path / "res.h5"
    complete.save(f)
    assert _cli(str(f), "--vtp") == 0
    out = capsys.readouterr().out.splitlines()
    names = ["res_contour.png", "res_contourf.png", "res_heatmap.png", "res_3d.png",
             "res_train_loss.vtp"]
    assert out == [f"wrote {tmp_path / n}" for n in names]
    for n in names[:4]:
        assert (tmp_path / n).read_bytes()[:4] == b"\x89PNG"
    ET.parse(tmp_path / "res_train_loss.vtp")
    assert storage.file_kind(f) == "landscape"  # the input is untouched
    assert _cli(str(f), "--kind", "contour,heatmap", "--format", "svg", "--out",
                str(tmp_path / "figs"), "--array", "train_acc", "--log-levels") == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "res_contour.svg", "res_heatmap.svg"]


def test_cli_1d(tmp_path, capsys):
    f = tmp_path / "line.h5"
    _surf1d(True).save(f)
    assert _cli(str(f), "--out", str(tmp_path / "o")) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'o' / 'line_1d.png'}"
    assert (tmp_path / "o" / "line_1d.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_draws_a_hessian_direction_surface(complete, tmp_path, capsys):
    import dataclasses

    f = tmp_path / "h.h5"
    dataclasses.replace(complete, group="hessian_surface").save(f)  # no /surface at all
    assert _cli(str(f)) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'h_hessian.png'}"
    assert (tmp_path / "h_hessian.png").read_bytes()[:4] == b"\x89PNG"
    g = tmp_path / "s.h5"
    complete.save(g)
    with pytest.raises(LandscapeError, match="no /hessian_surface group"):
        _cli(str(g), "--kind", "hessian")


def test_cli_errors_name_what_is_missing(complete, tmp_path):
    f = tmp_path / "s.h5"
    complete.save(f)
    with pytest.raises(LandscapeError, match="no /trajectory group"):
        _cli(str(f), "--kind", "trajectory")
    with pytest.raises(LandscapeError, match="1D surface"):
        _cli(str(f), "--kind", "1d")
    with pytest.raises(LandscapeError, match="--kind must be"):
        _cli(str(f), "--kind", "contour,pie")
    with pytest.raises(LandscapeError, match="'array'"):
        _cli(str(f), "--array", "test_loss")
    storage.update_file(f, {"curvature": storage.Group(datasets={"ratio_map": np.ones((9, 13))})})
    # the 'grid' alias is gone: plot reads /curvature only through CurvatureResult.load
    with pytest.raises(LandscapeError, match="no eigenvalue density .*'density_grid'"):
        _cli(str(f), "--kind", "density")
    line = tmp_path / "l.h5"
    _surf1d().save(line)
    with pytest.raises(LandscapeError, match="2D surface"):
        _cli(str(line), "--vtp")
    assert not list(tmp_path.glob("*.png"))  # nothing written before an error


def test_cli_trajectory_ratio_density(complete, tmp_path, capsys):
    f = tmp_path / "t.h5"
    complete.save(f)
    t = np.linspace(0, 1, 8)
    _trajectory(np.column_stack([1 - t, (1 - t) ** 2]), [0.7, 0.2]).save(f, overwrite=False)
    g = np.linspace(-1, 5, 100)
    CurvatureResult(density_grid=g, density=np.exp(-(g**2)),
                    top_eigenvalues=np.array([4.0, 3.5])).save(f)
    _ratio_map(complete.x, complete.y,
               np.abs(np.random.default_rng(0).normal(size=(9, 13)))).save(f)
    written = plot_file(f, kinds=["trajectory", "ratio", "density"])
    assert [p.name for p in written] == ["t_trajectory.png", "t_ratio.png", "t_density.png"]
    for p in written:
        assert p.read_bytes()[:4] == b"\x89PNG"
    assert _cli(str(f), "--out", str(tmp_path / "all")) == 0  # defaults include them all
    assert len(capsys.readouterr().out.splitlines()) == 7


def test_plot_file_reads_li2018_files(tmp_path):
    f = tmp_path / "li.h5"
    x, y, xx, yy = _grid()
    loss = xx**2 + yy**2
    loss[0, 0] = -1  # unfinished in their convention
    with h5py.File(f, "w") as h:
        h["xcoordinates"], h["ycoordinates"] = x, y
        h["train_loss"], h["train_acc"] = loss, 100 - loss
    written = plot_file(f, kinds=["contourf"])
    assert written[0].name == "li_contourf.png"


def test_plot_file_reads_top_level_ratio_map_and_scalar_curvature(tmp_path):
    """/ratio_map (from compute_ratio_map) is drawn; a scalar /curvature/ratio is not a map."""
    import numpy as np

    from landscape import storage
    from landscape.plot import plot_file
    from landscape.surface import Surface

    x = np.linspace(-1, 1, 5)
    z = np.add.outer(x**2, x**2)
    path = tmp_path / "r.h5"
    Surface(x=x, y=x, arrays={"train_loss": z}, done=np.ones(z.shape, bool)).save(path)
    ratio = np.abs(np.add.outer(x, x)) / 2
    done = np.ones(ratio.shape, bool)
    done[0, 0] = False
    _ratio_map(x, x, ratio, done).save(path)
    CurvatureResult(ratio=0.1, top_eigenvalues=np.array([2.0, 1.0])).save(path)
    written = plot_file(path, out_dir=tmp_path / "out")
    names = sorted(p.name for p in written)
    assert "r_ratio.png" in names and "r_contour.png" in names
    storage.update_file(path, {"ratio_map": None})
    written = plot_file(path, out_dir=tmp_path / "out2")
    assert not any(p.name.endswith("_ratio.png") for p in written)


# --------------------------------------------------------------------------- surface sets
def _surface_set(ndim: int = 2, k: int = 3, incomplete: bool = False):
    """A set of ``k`` member surfaces: member ``m`` is ``(m + 1) * (x^2 + y^2)``."""
    import torch

    from landscape.directions import Directions
    from landscape.surface_set import SurfaceSet

    x = np.linspace(-1, 1, 5)
    y = np.linspace(-1, 1, 4) if ndim == 2 else None
    base = (x[None, :] ** 2 + y[:, None] ** 2) if ndim == 2 else x ** 2
    loss = np.stack([(m + 1) * base for m in range(k)])
    done = np.ones(loss.shape, bool)
    if incomplete:
        done[1, ..., 0] = False
    dirs = [Directions(tuple({"w": torch.full((2,), float(m + a))} for a in range(ndim)),
                       {"kind": "random", "norm": "filter", "seeds": [2 * m, 2 * m + 1][:ndim]})
            for m in range(k)]
    return SurfaceSet(x=x, y=y, arrays={"train_loss": loss, "train_acc": 1 - loss / 10},
                      done=done, directions=dirs, seeds=[2 * m for m in range(k)],
                      recipe={"grid": {}})


def test_surface_set_mean_is_the_mean_over_members():
    s = _surface_set(incomplete=True)
    m = s.mean()
    assert m.ndim == 2 and m.shape == (4, 5)
    assert m.done[:, 1:].all() and not m.done[:, 0].any()  # member 1 is not done there
    np.testing.assert_allclose(m["train_loss"][:, 1:], 2 * s.arrays["train_loss"][0][:, 1:])
    assert np.isnan(m["train_loss"][:, 0]).all()
    assert m.recipe["directions"]["members"] == 3 and "seeds" not in m.recipe["directions"]


@pytest.mark.parametrize("ndim", [1, 2])
def test_plot_file_draws_a_surface_set(tmp_path, ndim):
    """The mean surface by default; every member with members=True; titles say which."""
    import matplotlib.image

    _surface_set(ndim).save(tmp_path / "set.h5")
    kinds = ["contour", "contourf", "heatmap", "3d"] if ndim == 2 else ["1d"]
    written = plot_file(tmp_path / "set.h5", out_dir=tmp_path / "a")
    assert [p.name for p in written] == [f"set_{k}.png" for k in kinds]
    both = plot_file(tmp_path / "set.h5", out_dir=tmp_path / "b", members=True)
    assert [p.name for p in both] == [f"set_{k}.png" for k in kinds] + [
        f"set_m{m}_{k}.png" for m in range(3) for k in kinds]
    for p in both:
        assert matplotlib.image.imread(p).size > 0
    from landscape.plot import files

    r = files._Results(tmp_path / "set.h5")
    assert r.caption == "mean of 3 direction pairs"
    assert r.member(2).caption == "direction pair 2, seeds " + ("4, 5" if ndim == 2 else "4")
    title = files._with_caption(files.FIGURE_KINDS[kinds[0]].draw(
        r, files._options(r, None, False)), r.caption)
    ax = title if hasattr(title, "get_title") else title.axes[0]
    assert "(mean of 3 direction pairs)" in ax.get_title()


def test_plot_file_members_needs_a_set(tmp_path):
    _surface_set().save(tmp_path / "set.h5")
    with pytest.raises(LandscapeError, match="'members' parameter must be a bool"):
        plot_file(tmp_path / "set.h5", members="all")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5"]


def test_cli_plot_members_flag(tmp_path, capsys):
    from landscape.cli.main import main

    _surface_set().save(tmp_path / "set.h5")
    assert main(["plot", str(tmp_path / "set.h5"), "--kind", "heatmap", "--members",
                 "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert [line.rsplit("/", 1)[-1] for line in out.splitlines()] == [
        "set_heatmap.png", "set_m0_heatmap.png", "set_m1_heatmap.png", "set_m2_heatmap.png"]
