"""Surfaces: loss/accuracy curves of 1D surfaces, contour lines, filled contours, heatmaps and
3D views of 2D ones, and side-by-side panels with shared levels.

Every function draws into the Axes it is given or, when ``ax`` is ``None``, into a new
:class:`matplotlib.figure.Figure` that is *not* registered with pyplot. Unfinished points
(``done == 0``) and diverged points (NaN or inf) are masked and leave gaps; diverged points are
marked with a red ``x``. An array with no finite value gives an empty panel with a note.

The 3D plot uses ``fig.add_subplot(projection="3d")``; the ``fig.gca(projection="3d")`` /
``Axes3D(fig)`` calls of Li et al.'s ``plot_2D.py`` give a blank picture on matplotlib >= 3.6.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LandscapeError, check_float, check_option
from ._labels import place_contour_labels, renderer_of
from ._style import (
    BIG,
    CMAP,
    KINDS_2D,
    ROBUST_PERCENTILE,
    LevelFormat,
    add_colorbar,
    add_note,
    axis_labels,
    cell_edges,
    direction_recipe,
    diverged_mask,
    equal_aspect,
    finite_values,
    mark_diverged,
    masked_values,
    new_axes,
    new_figure,
    norm_for,
    pretty,
    progress_note,
    resolve_levels,
    tick_levels,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from ..surface import Surface

__all__ = ["KINDS_2D", "plot_1d", "plot_contour", "plot_3d", "compare_panels"]


@dataclass
class Panel:
    """What :func:`draw_panel` drew: the colour mappable and the contour lines still to label."""

    mappable: Any = None
    lines: Any = None
    levels: np.ndarray | None = None
    log: bool = False


def _same_units(surface: Surface) -> bool:
    """Whether both axes are displacements in the same units (random, PCA directions, ...)."""
    r = direction_recipe(surface)
    return r is not None and r.get("kind") not in ("plane", "interpolation")


def smooth_grid(x: np.ndarray, y: np.ndarray, z: np.ma.MaskedArray, log: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ma.MaskedArray]:
    """A 4x finer grid for drawing contour lines (monotone PCHIP interpolation along each
    axis, in log space for log levels) so that they are not polygons on a 21x21 grid. Only
    complete grids with increasing coordinates are refined; the levels, the colour scale and
    every number shown come from the computed points."""
    if np.ma.getmaskarray(z).any() or len(x) < 4 or len(y) < 4 or len(x) * len(y) > 4096 \
            or np.any(np.diff(x) <= 0) or np.any(np.diff(y) <= 0):
        return x, y, z
    from scipy.interpolate import PchipInterpolator

    zz = np.ma.filled(z, np.nan)
    use_log = log and bool(np.all(zz > 0))
    vals = np.log(zz) if use_log else zz
    xs = np.linspace(x[0], x[-1], 4 * (len(x) - 1) + 1)
    ys = np.linspace(y[0], y[-1], 4 * (len(y) - 1) + 1)
    out = PchipInterpolator(x, vals, axis=1)(xs)  # along x, then along y
    out = PchipInterpolator(y, out, axis=0)(ys)
    out = np.exp(out) if use_log else out
    return xs, ys, np.ma.masked_invalid(np.clip(out, np.nanmin(zz), np.nanmax(zz)))


def panel_figsize(surface: Surface, n: int, width: float = 3.8) -> tuple[float, float]:
    """Figure size for ``n`` panels side by side (and a colour bar) whose height follows the
    grid's aspect when the axes share units, so equal-aspect panels fill the figure."""
    ratio = 1.0
    if _same_units(surface) and surface.y is not None and len(surface.x) > 1:
        xs = float(np.ptp(surface.x))
        ratio = float(np.ptp(surface.y)) / xs if xs > 0 else 1.0
    ratio = min(max(ratio, 0.25), 1.6)
    return (width * n + 1.3, width * ratio + 1.1)


def mark_origin(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    """Mark the trained model θ* at the grid's origin (when the grid holds it)."""
    if not (x.min() <= 0 <= x.max() and y.min() <= 0 <= y.max()) or x.size < 2 or y.size < 2:
        return
    ax.plot([0.0], [0.0], marker="o", markersize=5, markerfacecolor="white",
            markeredgecolor="black", markeredgewidth=1.0, linestyle="none", zorder=8,
            gid="theta-star")
    ax.annotate("θ*", (0.0, 0.0), xytext=(5, 4), textcoords="offset points", fontsize=8,
                zorder=8, bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                                "alpha": 0.7})


def draw_panel(ax: Axes, surface: Surface, array: str, kind: str, levels: np.ndarray | None,
             log: bool, norm: Normalize | None = None, label: bool = True,
             origin: bool = True) -> Panel:
    """Draw one 2D panel (without contour labels: :func:`label_panel` adds them once the
    layout is done)."""
    if surface.ndim != 2:
        raise LandscapeError(
            f"a {kind} plot needs a 2D surface; this one is 1D (use plot_1d)"
        )
    z = masked_values(surface, array)
    x = np.asarray(surface.x, dtype=np.float64)
    y = np.asarray(surface.y, dtype=np.float64)
    xlabel, ylabel = axis_labels(surface)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(pretty(array) + progress_note(surface), fontsize=10)
    if _same_units(surface) and len(x) > 1 and len(y) > 1:
        equal_aspect(ax)
    bad = diverged_mask(surface, array)
    iy, ix = np.nonzero(bad)
    if levels is None or z.count() == 0:
        ax.set_xlim(cell_edges(x)[[0, -1]])
        ax.set_ylim(cell_edges(y)[[0, -1]])
        what = "no point computed yet" if surface.n_done == 0 else \
            f"no finite value of {array!r}"
        add_note(ax, what + (f"\n({bad.sum()} diverged points)" if bad.any() else ""))
        mark_diverged(ax, x[ix], y[iy])
        return Panel()
    if log:
        z = np.ma.masked_where(np.ma.filled(z, 1.0) <= 0, z)
    z = np.ma.clip(z, -BIG, BIG)
    if norm is None:
        norm = norm_for(levels, log)
    finite = finite_values(z)
    lo, hi = float(finite.min()), float(finite.max())
    inside = levels[(levels >= lo) & (levels <= hi)]
    small = len(x) < 2 or len(y) < 2
    flat = kind == "contour" and (lo == hi or inside.size == 0)  # no line to draw
    panel = Panel(levels=levels, log=log)
    if kind == "heatmap" or small or flat:
        m = ax.pcolormesh(cell_edges(x), cell_edges(y), z, cmap=CMAP, norm=norm, shading="flat")
        if flat and not small:
            what = f"constant value {lo:.4g}" if lo == hi else \
                f"no contour level within [{lo:.4g}, {hi:.4g}]"
            ax.text(0.02, 0.98, what + ": drawn as a heatmap", transform=ax.transAxes,
                    va="top", fontsize=8, color="0.2")
    elif kind == "contourf":
        extend = {(False, False): "neither", (True, False): "min", (False, True): "max",
                  (True, True): "both"}[(lo < levels[0], hi > levels[-1])]
        xs, ys, zs = smooth_grid(x, y, z, log)
        m = ax.contourf(xs, ys, zs, levels=levels, cmap=CMAP, norm=norm, extend=extend)
    else:
        xs, ys, zs = smooth_grid(x, y, z, log)
        m = ax.contour(xs, ys, zs, levels=levels, cmap=CMAP, norm=norm, linewidths=1.0)
        if label:
            panel.lines = m
    panel.mappable = m
    mark_diverged(ax, x[ix], y[iy])
    if origin:
        mark_origin(ax, x, y)
    if ix.size:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return panel


def label_panel(ax: Axes, panel: Panel, avoid: np.ndarray | None = None,
                renderer: Any = None) -> None:
    """Contour labels at the colour bar's tick levels, in its format, where they fit."""
    if panel.lines is None or panel.levels is None:
        return
    ticks = tick_levels(panel.levels, panel.log)
    place_contour_labels(ax, panel.lines, list(ticks), LevelFormat(ticks), avoid=avoid,
                         renderer=renderer)


def plot_1d(
    surface: Surface,
    *,
    metric: str = "loss",
    splits: Sequence[str] | None = None,
    log: bool = False,
    ax: Axes | None = None,
    twin: bool = True,
    band: bool = True,
) -> Axes:
    """Loss (and accuracy, on a twin y-axis) along a 1D surface.

    Parameters
    ----------
    surface : Surface
        A 1D surface.
    metric : {"loss", "acc"}, default="loss"
        Quantity on the main (left) y-axis; the other one, when the surface has it, goes on a
        twin axis at the right (dashed lines).
    splits : sequence of str, optional
        Splits to draw (default: every split with an array, ``train`` first).
    log : bool, default=False
        Log scale for the loss axis (non-positive values are masked).
    ax : Axes, optional
        Where to draw; default a new Figure.
    twin : bool, default=True
        Draw the other quantity on a twin axis (``ax.figure.axes[-1]`` after the call).
    band : bool, default=True
        Shade ``loss ± 2 SE`` around every loss curve where the surface stores standard errors
        (:meth:`~landscape.surface.Surface.stderr`: the evaluation noise of a data-set mean,
        wide on small subsets); nothing is drawn where they are unknown.

    Returns
    -------
    Axes
        The main Axes.

    Notes
    -----
    Unfinished and non-finite points leave gaps; diverged points (finished, NaN or inf) are
    marked with a red ``x`` at the top of the axes.
    """
    check_option("metric", metric, ("loss", "acc"))
    if surface.ndim != 1:
        raise LandscapeError(
            "plot_1d needs a 1D surface; this one is 2D (use plot_contour or plot_3d)"
        )
    names = sorted({k.rpartition("_")[0] for k in surface.arrays if "_" in k},
                   key=lambda s: (s != "train", s != "test", s))
    if splits is not None:
        splits = [splits] if isinstance(splits, str) else list(splits)
        unknown = [s for s in splits if s not in names]
        if unknown:
            raise LandscapeError(
                f"The 'splits' parameter must name splits of the surface {names}. "
                f"Got {unknown} instead."
            )
        names = splits
    x = np.asarray(surface.x, dtype=np.float64)
    other = "acc" if metric == "loss" else "loss"
    colors = ["C0", "C1", "C2", "C3", "C4", "C5"]
    marker = "o" if len(x) <= 60 else None
    handles = []
    drawn = 0
    bad_x: set[float] = set()
    main_cols = [f"{s}_{metric}" for s in names if f"{s}_{metric}" in surface.arrays]
    if not main_cols:
        raise LandscapeError(
            f"surface has no {metric} array for splits {names} to plot; it has "
            f"{sorted(surface.arrays)}"
        )
    ax = new_axes(ax)
    for which, target in ((metric, "main"), (other, "twin")):
        cols = [f"{s}_{which}" for s in names if f"{s}_{which}" in surface.arrays]
        if not cols or (target == "twin" and not twin):
            continue
        dest = ax if target == "main" else ax.twinx()
        for name in cols:
            z = masked_values(surface, name)
            if which == "loss" and log:
                z = np.ma.masked_where(np.ma.filled(z, 1.0) <= 0, z)
            c = colors[names.index(name.rpartition("_")[0]) % len(colors)]
            (h,) = dest.plot(x, z, color=c, linestyle="-" if target == "main" else "--",
                             marker=marker, markersize=3, label=pretty(name))
            handles.append(h)
            if which == "loss" and band:
                _error_band(dest, x, z, surface.stderr(name), c, log)
            drawn += int(z.count())
            bad_x.update(x[diverged_mask(surface, name)].tolist())
        dest.set_ylabel("loss" if which == "loss" else "accuracy")
        if which == "loss" and log:
            dest.set_yscale("log", nonpositive="mask")
        values = np.concatenate([finite_values(masked_values(surface, c)) for c in cols])
        if which == "acc" and (values.size == 0 or (values.min() >= 0 and values.max() <= 1)):
            dest.set_ylim(-0.02, 1.02)
    xlabel, _ = axis_labels(surface)
    ax.set_xlabel(xlabel)
    ax.set_xlim(cell_edges(x)[[0, -1]] if len(x) == 1 else (x.min(), x.max()))
    ax.set_title("1D surface" + progress_note(surface), fontsize=10)
    if bad_x:
        xs = np.array(sorted(bad_x))
        (h,) = ax.plot(xs, np.full(xs.size, 0.97), linestyle="none", marker="x", color="red",
                       transform=ax.get_xaxis_transform(), label=f"diverged ({xs.size})")
        handles.append(h)
    if drawn == 0:
        add_note(ax, "no point computed yet" if surface.n_done == 0 else "no finite value")
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.7)
    return ax


def _error_band(ax: Axes, x: np.ndarray, z: np.ma.MaskedArray, se: np.ndarray | None,
                color: str, log: bool = False) -> None:
    """Shade ``z ± 2 se`` where both are finite (gaps elsewhere; on a log axis also where
    the band reaches 0)."""
    if se is None:
        return
    se = np.asarray(se, dtype=np.float64)
    mid = np.ma.filled(z, np.nan)
    ok = ~np.ma.getmaskarray(z) & np.isfinite(se)
    if log:
        ok &= mid - 2 * se > 0
    if not ok.any():
        return
    ax.fill_between(x, mid - 2 * se, mid + 2 * se, where=ok, color=color, alpha=0.2,
                    linewidth=0, interpolate=False)


def plot_contour(
    surface: Surface,
    *,
    array: str = "train_loss",
    kind: str = "contour",
    levels: int | Sequence[float] | None = None,
    log_levels: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    ax: Axes | None = None,
    colorbar: bool = True,
    label: bool = True,
) -> Axes:
    """Contour lines, filled contours or a heatmap of a 2D surface.

    Parameters
    ----------
    surface : Surface
        A 2D surface (arrays ``Z[iy, ix]``).
    array : str, default="train_loss"
        Array to draw.
    kind : {"contour", "contourf", "heatmap"}, default="contour"
        Picture kind.
    levels : int or sequence of float, optional
        Number of automatic levels (default 20 for contour lines, 30 otherwise) or the
        levels themselves. The heatmap's colour range is the levels' range.
    log_levels : bool, default=False
        Log-spaced levels and a log colour scale (chosen automatically anyway when the values
        span more than two decades).
    vmin, vmax : float, optional
        Range of automatic levels (default: minimum and 95th percentile of finite values).
    ax : Axes, optional
        Where to draw; default a new Figure.
    colorbar : bool, default=True
        Add a colorbar.
    label : bool, default=True
        Label contour lines with their values.

    Returns
    -------
    Axes

    Notes
    -----
    Unfinished points and NaN/inf values are masked; diverged points are marked with a red
    ``x``. An array without finite values gives an empty panel with a note. Grids with a
    single row or column are drawn as a heatmap.
    """
    check_option("kind", kind, KINDS_2D)
    if surface.ndim != 2:
        raise LandscapeError("plot_contour needs a 2D surface; this one is 1D (use plot_1d)")
    z = masked_values(surface, array)
    lv, log = resolve_levels(z, kind, levels, log_levels, vmin, vmax)
    ax = new_axes(ax)
    panel = draw_panel(ax, surface, array, kind, lv, log, label=label)
    if colorbar and panel.mappable is not None:
        add_colorbar(ax.figure, panel.mappable, ax, pretty(array), log, levels=lv)
    label_panel(ax, panel)
    return ax


def plot_3d(
    surface: Surface,
    *,
    array: str = "train_loss",
    ax: Axes | None = None,
    clip: float | None = None,
) -> Axes:
    """3D surface plot that renders on current matplotlib.

    Parameters
    ----------
    surface : Surface
        A 2D surface.
    array : str, default="train_loss"
        Array to draw.
    ax : Axes3D, optional
        A 3D Axes (``fig.add_subplot(projection="3d")``); default a new Figure.
    clip : float, optional
        Values above are drawn at ``clip`` so that a few huge values do not flatten the
        basin. Default: the 95th percentile of the finite values (``np.inf``: no clipping).

    Returns
    -------
    Axes3D
    """
    if surface.ndim != 2:
        raise LandscapeError("plot_3d needs a 2D surface; this one is 1D (use plot_1d)")
    ax = new_axes(ax, projection="3d")
    z = masked_values(surface, array)
    x = np.asarray(surface.x, dtype=np.float64)
    y = np.asarray(surface.y, dtype=np.float64)
    # the directions go into the title: long labels along the slanted 3D axes run into the
    # tick labels
    xlabel, ylabel = axis_labels(surface)
    short = [lab.partition(":")[0] for lab in (xlabel, ylabel)]
    _layout_3d(ax, short[0], short[1], pretty(array))
    title = pretty(array) + progress_note(surface)
    if short != [xlabel, ylabel]:
        title += "\n" + "; ".join(lab for lab in (xlabel, ylabel) if ":" in lab)
    finite = finite_values(z)
    if finite.size == 0:
        ax.set_title(title, fontsize=10)
        ax.text2D(0.5, 0.5, f"no finite value of {array!r}", transform=ax.transAxes,
                  ha="center", va="center", color="0.3")
        return ax
    if clip is None:
        top = float(np.percentile(finite, ROBUST_PERCENTILE))
        top = top if top > finite.min() else float(finite.max())
    elif isinstance(clip, int | float) and clip == math.inf:
        top = float(finite.max())
    else:
        top = check_float("clip", clip)
    zz = np.ma.filled(z, np.nan)
    clipped = int(np.sum(zz > top))
    zz = np.where(zz > top, top, zz)
    if clipped:
        title += f"\n(clipped at {top:.3g}: {clipped} points)"
    ax.set_title(title, fontsize=9)
    if len(x) < 2 or len(y) < 2:
        xx, yy = np.meshgrid(x, y)
        ok = np.isfinite(zz)
        ax.scatter(xx[ok], yy[ok], zz[ok], c=zz[ok], cmap=CMAP)
        return ax
    xx, yy = np.meshgrid(x, y)
    lo = float(np.nanmin(zz))
    ax.plot_surface(xx, yy, zz, cmap=CMAP, vmin=lo, vmax=top if top > lo else lo + 1,
                    rstride=1, cstride=1, linewidth=0, antialiased=True, alpha=0.95)
    ix, iy = np.flatnonzero(x == 0), np.flatnonzero(y == 0)
    if ix.size and iy.size and np.isfinite(zz[iy[0], ix[0]]):
        z0 = float(zz[iy[0], ix[0]])
        ax.scatter([0.0], [0.0], [z0], color="white", edgecolors="black", s=25, zorder=10,
                   depthshade=False)
        ax.text(0.0, 0.0, z0, "  θ*", fontsize=8, zorder=10)
    return ax


def _layout_3d(ax: Axes, xlabel: str, ylabel: str, zlabel: str) -> None:
    """Axis labels wrapped to fit beside a 3D box, few small ticks, a box that leaves room."""
    import textwrap

    from matplotlib.ticker import MaxNLocator

    for axis, text in ((ax.xaxis, xlabel), (ax.yaxis, ylabel), (ax.zaxis, zlabel)):
        axis.set_major_locator(MaxNLocator(4))
        axis.set_tick_params(labelsize=7, pad=1)
        axis.set_label_text(textwrap.fill(text, 20), fontsize=8)
        axis.labelpad = 6
    ax.set_box_aspect(None, zoom=0.82)


def compare_panels(
    surfaces: Sequence[Surface],
    *,
    titles: Sequence[str] | None = None,
    array: str = "train_loss",
    kind: str = "contour",
    levels: int | Sequence[float] | None = None,
    log_levels: bool = False,
) -> Figure:
    """Side-by-side 2D panels with the same contour levels, colour scale and one colorbar.

    The levels are computed once from the finite values of *all* surfaces, so the same colour
    means the same loss in every panel (e.g. a ResNet beside its plain twin).

    Parameters
    ----------
    surfaces : sequence of Surface
        2D surfaces.
    titles : sequence of str, optional
        One title per panel.
    array : str, default="train_loss"
        Array to draw.
    kind : {"contour", "contourf", "heatmap"}, default="contour"
        Picture kind.
    levels : int or sequence of float, optional
        As for :func:`plot_contour`.
    log_levels : bool, default=False
        Log-spaced levels and colour scale.

    Returns
    -------
    Figure
    """
    check_option("kind", kind, KINDS_2D)
    surfaces = list(surfaces)
    if not surfaces:
        raise LandscapeError("compare_panels needs at least one surface")
    if any(s.ndim != 2 for s in surfaces):
        raise LandscapeError(
            "compare_panels needs 2D surfaces; draw 1D surfaces with plot_1d on shared axes"
        )
    if titles is not None:
        titles = list(titles)
        if len(titles) != len(surfaces):
            raise LandscapeError(
                f"The 'titles' parameter must give one title per surface ({len(surfaces)}). "
                f"Got {len(titles)} instead."
            )
    zs = [masked_values(s, array) for s in surfaces]
    pooled = np.concatenate([finite_values(z) for z in zs])
    lv, log = resolve_levels(pooled, kind, levels, log_levels, None, None)
    norm = norm_for(lv, log) if lv is not None else None
    n = len(surfaces)
    fig = new_figure(panel_figsize(surfaces[0], n))
    axes = fig.subplots(1, n, squeeze=False)[0]
    panels = []
    for i, (s, a) in enumerate(zip(surfaces, axes, strict=True)):
        panels.append(draw_panel(a, s, array, kind, lv, log, norm=norm, label=True))
        if titles is not None:
            a.set_title(str(titles[i]) + progress_note(s), fontsize=10)
    mappable = next((p.mappable for p in panels if p.mappable is not None), None)
    if mappable is not None:
        add_colorbar(fig, mappable, list(axes), pretty(array), log, levels=lv)
    renderer = renderer_of(fig) if any(p.lines is not None for p in panels) else None
    for a, p in zip(axes, panels, strict=True):
        label_panel(a, p, renderer=renderer)
    return fig
