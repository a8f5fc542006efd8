"""Paper-quality figures: on small synthetic data shaped like ``landscape demo``'s results,
every picture kind renders with no text overlapping another text (tick labels, contour labels,
axis labels, titles, legends, annotations) and all text inside the figure; colour-bar ticks and
contour labels are the same values written the same way; the other issue-13 checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy.integrate import trapezoid

from landscape.plot import (
    compare_densities,
    compare_panels,
    compare_trajectories,
    plot_1d,
    plot_3d,
    plot_contour,
    plot_density,
    plot_ratio_map,
    plot_trajectory,
    save_figure,
)
from landscape.surface import Surface

RANDOM = {"directions": {"kind": "random", "norm": "filter", "seeds": [0, 1]}}
PCA = {"directions": {"kind": "pca"}}


# --------------------------------------------------------------------------- demo-shaped data
def _surface(z: np.ndarray, x: np.ndarray, y: np.ndarray, recipe: dict) -> Surface:
    return Surface(x=x, y=y, arrays={"train_loss": z, "train_acc": np.clip(1 - z / 50, 0, 1)},
                   done=np.ones(z.shape, bool), recipe=recipe, provenance={})


def _grid21() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1, 1, 21)
    xx, yy = np.meshgrid(x, x)
    return x, xx, yy


@pytest.fixture(scope="module")
def residual() -> Surface:
    """A smooth basin: 0.05 at theta*, about 25 at the corners."""
    x, xx, yy = _grid21()
    return _surface(0.05 + 8 * (xx**2 + 0.6 * yy**2) + 2 * xx**4, x, x, RANDOM)


@pytest.fixture(scope="module")
def plain() -> Surface:
    """A sharp, chaotic one: 0.05 at theta*, up to about 2400 at the corners."""
    x, xx, yy = _grid21()
    z = 0.05 + 30 * (xx**2 + yy**2) + 2400 * (xx * yy) ** 2 + 5 * np.sin(7 * xx) ** 2
    return _surface(z, x, x, RANDOM)


def _path() -> np.ndarray:
    """9 checkpoints; PC1 spans 60, PC2 3 (the plain net's demo path); the last is 0."""
    t = np.linspace(0, 1, 9)
    return np.column_stack([-60 * (1 - t) ** 1.5, 3 * np.sin(3 * t) * (1 - t)])


def _pca_surface(path: np.ndarray) -> Surface:
    """The surface on the PCA plane, the path's box plus 25 %, losses 1.2-2.3 along the path
    and far higher away from it."""
    lo, hi = path.min(axis=0), path.max(axis=0)
    span = hi - lo
    x = np.linspace(lo[0] - 0.25 * span[0], hi[0] + 0.25 * span[0], 9)
    y = np.linspace(lo[1] - 0.25 * span[1], hi[1] + 0.25 * span[1], 9)
    xx, yy = np.meshgrid(x, y)
    along = np.interp(xx, path[::-1, 0], path[::-1, 1])
    z = 1.2 + 1.1 * (-xx / 60) + 40 * ((yy - along) / span[1]) ** 2
    return _surface(z, x, y, PCA)


def _spectra() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    g1 = np.linspace(-0.4, 6.6, 200)
    d1 = np.exp(-(g1**2) / 0.02) + 1e-4 * np.exp(-((g1 - 6.0) ** 2) / 0.05)
    g2 = np.linspace(-1.0, 5000.0, 400)
    d2 = np.exp(-(g2**2) / 2) + 1e-6 * np.exp(-((g2 - 4800) ** 2) / 2000)
    return {"residual": (g1, d1 / trapezoid(d1, g1)),
            "plain": (g2, d2 / trapezoid(d2, g2))}


def _ratio_3_of_81() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1, 1, 9)
    ratio = np.full((9, 9), np.nan)
    done = np.zeros((9, 9), bool)
    done[4, 3:6] = True
    ratio[4, 3:6] = [0.2, 0.01, 0.3]
    return x, x, ratio, done


# --------------------------------------------------------------------------- text geometry
def _tick_labels(axis) -> list:
    lo, hi = sorted(axis.get_view_interval())
    tol = 1e-9 * max(abs(hi - lo), 1e-300)
    out = []
    for tick, loc in zip(axis.get_major_ticks(), axis.get_majorticklocs(), strict=False):
        if lo - tol <= loc <= hi + tol:
            out += [t for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text()]
    return out


def _texts(fig) -> list:
    """Every text drawn: titles, axis labels, tick labels, texts (contour labels,
    annotations, notes), legend entries and titles, of every Axes (colour bars included)."""
    out = []
    for ax in fig.axes:
        axes_list = [ax.xaxis, ax.yaxis] + ([ax.zaxis] if hasattr(ax, "zaxis") else [])
        for axis in axes_list:
            out += _tick_labels(axis)
            out.append(axis.label)
        out.append(ax.title)
        out += list(ax.texts)
        leg = ax.get_legend()
        if leg is not None:
            out += list(leg.get_texts()) + [leg.get_title()]
    out += list(fig.texts)
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def _check_layout(fig, name: str) -> int:
    """No two texts overlap, all of them lie inside the figure; returns the count."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _texts(fig)
    boxes = [t.get_window_extent(renderer) for t in texts]
    page = fig.bbox
    for t, b in zip(texts, boxes, strict=True):
        assert b.x0 >= page.x0 - 1 and b.y0 >= page.y0 - 1 and b.x1 <= page.x1 + 1 \
            and b.y1 <= page.y1 + 1, f"{name}: {t.get_text()!r} leaves the figure ({b})"
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert w <= 1.0 or h <= 1.0, (
                f"{name}: {texts[i].get_text()!r} overlaps {texts[j].get_text()!r}")
    # the whole drawing (matplotlib's tight bbox) is inside the figure, too
    tight = fig.get_tightbbox(renderer)
    inches = fig.bbox_inches
    assert tight.x0 >= -0.02 and tight.y0 >= -0.02 and tight.x1 <= inches.x1 + 0.02 \
        and tight.y1 <= inches.y1 + 0.02, f"{name}: drawing leaves the figure ({tight})"
    return len(texts)


def _labels_of(ax) -> list[str]:
    from matplotlib.contour import ContourSet

    sets = [c for c in ax.collections if isinstance(c, ContourSet)]
    return [t.get_text() for cs in sets for t in cs.labelTexts]


# --------------------------------------------------------------------------- every kind
@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap"])
def test_2d_kinds_have_no_overlapping_text(plain, kind):
    ax = plot_contour(plain, kind=kind)
    assert _check_layout(ax.figure, kind) > 10


def test_compare_panels_and_3d_and_1d_have_no_overlapping_text(residual, plain):
    for kind in ("contour", "contourf"):
        fig = compare_panels([residual, plain], titles=["residual", "plain"], kind=kind)
        _check_layout(fig, f"compare {kind}")
    _check_layout(plot_3d(plain).figure, "3d")
    x = np.linspace(-1, 1, 41)
    loss = 0.05 + 6 * x**2
    one = Surface(x=x, y=None, arrays={"train_loss": loss, "test_loss": loss + 0.3,
                                       "train_acc": 1 - loss / 10, "test_acc": 0.9 - loss / 10},
                  done=np.ones(41, bool), recipe=RANDOM)
    _check_layout(plot_1d(one).figure, "1d")


def test_trajectory_ratio_map_density_have_no_overlapping_text():
    path = _path()
    under = _pca_surface(path)
    ax = plot_trajectory(path, surface=under, explained_variance_ratio=[0.82, 0.13],
                         epochs=np.arange(9))
    _check_layout(ax.figure, "trajectory")
    fig = compare_trajectories([path, path * [0.1, 0.5]],
                               surfaces=[under, _pca_surface(path * [0.1, 0.5])],
                               titles=["plain", "residual"], epochs=[np.arange(9)] * 2)
    _check_layout(fig, "compare trajectories")
    ax = plot_ratio_map(*_ratio_3_of_81()[:3], done=_ratio_3_of_81()[3], threshold=0.1)
    _check_layout(ax.figure, "ratio map")
    spectra = _spectra()
    ax = None
    for g, d in spectra.values():
        ax = plot_density(g, d, ax=ax)
    _check_layout(ax.figure, "density overlay")
    _check_layout(compare_densities(spectra), "density panels")


# --------------------------------------------------------------------------- the points
def test_colorbar_ticks_and_contour_labels_agree(plain):
    """Same values, same formatter: every contour label is a colour-bar tick label."""
    ax = plot_contour(plain)
    fig = ax.figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    cbar = fig.axes[-1]
    ticks = [t.get_text() for t in _tick_labels(cbar.yaxis)]
    labels = _labels_of(ax)
    assert 3 <= len(ticks) <= 8, ticks
    assert labels and set(labels) <= set(ticks), (labels, ticks)
    assert not any("e+" in s for s in ticks + labels)  # 2000, not 2e+03


def test_theta_star_is_marked_and_aspect_is_equal(residual):
    ax = plot_contour(residual)
    assert any(t.get_text() == "θ*" for t in ax.texts)
    assert ax.get_aspect() == 1.0


def test_trajectory_levels_cover_the_path_and_panels_share_a_scale():
    from matplotlib.contour import ContourSet

    from landscape.plot import path_values

    path = _path()
    under = _pca_surface(path)
    ax = plot_trajectory(path, surface=under, epochs=np.arange(9))
    cs = [c for c in ax.collections if isinstance(c, ContourSet)][0]
    along = path_values(under, path)
    lo, hi = np.nanmin(along), np.nanmax(along)
    assert np.sum((cs.levels >= lo) & (cs.levels <= hi)) >= 4
    # PC1 spans 60, PC2 3: the same scale would be a flat strip; "auto" stretches PC2 to a
    # 3:1 panel and says so, "equal" keeps PC1 and PC2 to the same scale
    shown = np.ptp(under.x) / (np.ptp(under.y) * ax.get_aspect())
    assert ax.get_aspect() > 1 and shown == pytest.approx(3.0)
    assert "stretched ×" in ax.get_ylabel()
    assert plot_trajectory(path, surface=under, aspect="equal").get_aspect() == 1.0
    small = path * [0.05, 1.0]  # 3 by 1.7: to scale
    assert plot_trajectory(small, surface=_pca_surface(small)).get_aspect() == 1.0
    fig = compare_trajectories([path, path * [0.1, 0.5]],
                               surfaces=[under, _pca_surface(path * [0.1, 0.5])])
    sets = [[c for c in a.collections if isinstance(c, ContourSet)][0]
            for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(sets) == 2
    np.testing.assert_array_equal(sets[0].levels, sets[1].levels)
    assert sets[0].get_clim() == sets[1].get_clim()


def test_density_overlay_uses_symlog_and_no_floor_line():
    spectra = _spectra()
    ax = None
    for g, d in spectra.values():
        ax = plot_density(g, d, ax=ax)
    assert ax.get_xscale() == "symlog"
    floor = ax.get_ylim()[0]
    for ln in ax.lines:
        y = np.ma.asarray(ln.get_ydata())
        assert np.ma.min(y) >= floor  # below the floor the curve is left out, not flattened
        assert np.ma.getmaskarray(y).any()
    g, d = spectra["residual"]
    assert plot_density(g, d).get_xscale() == "linear"  # one narrow spectrum: linear


def test_ratio_map_says_incomplete_and_explains_the_threshold():
    x, y, ratio, done = _ratio_3_of_81()
    ax = plot_ratio_map(x, y, ratio, done=done, threshold=0.1)
    assert "incomplete (3/81 points)" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "threshold |λmin/λmax| = 0.1" in legend and "no value (78)" in legend
    assert ax.get_xlabel() != "x" and ax.get_ylabel() != "y"


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_paper_formats(plain, fmt, tmp_path):
    fig = compare_panels([plain, plain], titles=["a", "b"])
    data = save_figure(fig, tmp_path / f"f.{fmt}").read_bytes()
    assert data[:4] in (b"\x89PNG", b"%PDF") or b"<svg" in data[:2000]
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    assert buf.getvalue()
