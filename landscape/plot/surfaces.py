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
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LandscapeError, check_float, check_option
from ._style import (
    BIG,
    CMAP,
    KINDS_2D,
    ROBUST_PERCENTILE,
    add_colorbar,
    add_note,
    axis_labels,
    cell_edges,
    diverged_mask,
    finite_values,
    mark_diverged,
    masked_values,
    new_axes,
    norm_for,
    pretty,
    progress_note,
    resolve_levels,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from ..surface import Surface

__all__ = ["KINDS_2D", "plot_1d", "plot_contour", "plot_3d", "compare_panels"]


def _draw_2d(ax: Axes, surface: Surface, array: str, kind: str, levels: np.ndarray | None,
             log: bool, norm: Normalize | None = None, label: bool = True) -> Any:
    """Draw one 2D panel; returns the mappable (or None for an empty panel)."""
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
    bad = diverged_mask(surface, array)
    iy, ix = np.nonzero(bad)
    if levels is None or z.count() == 0:
        ax.set_xlim(cell_edges(x)[[0, -1]])
        ax.set_ylim(cell_edges(y)[[0, -1]])
        what = "no point computed yet" if surface.n_done == 0 else \
            f"no finite value of {array!r}"
        add_note(ax, what + (f"\n({bad.sum()} diverged points)" if bad.any() else ""))
        mark_diverged(ax, x[ix], y[iy])
        return None
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
        m = ax.contourf(x, y, z, levels=levels, cmap=CMAP, norm=norm, extend=extend)
    else:
        m = ax.contour(x, y, z, levels=levels, cmap=CMAP, norm=norm, linewidths=1.0)
        if label:
            step = max(1, len(inside) // 8)
            ax.clabel(m, inside[::step], inline=True, fontsize=7, fmt="%.3g")
    mark_diverged(ax, x[ix], y[iy])
    if ix.size:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return m


def plot_1d(
    surface: Surface,
    *,
    metric: str = "loss",
    splits: Sequence[str] | None = None,
    log: bool = False,
    ax: Axes | None = None,
    twin: bool = True,
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
    m = _draw_2d(ax, surface, array, kind, lv, log, label=label)
    if colorbar and m is not None:
        add_colorbar(ax.figure, m, ax, pretty(array), log)
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
    xlabel, ylabel = axis_labels(surface)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_zlabel(pretty(array), fontsize=8)
    title = pretty(array) + progress_note(surface)
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
                    rstride=1, cstride=1, linewidth=0, antialiased=True)
    return ax



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
    from matplotlib.figure import Figure

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
    fig = Figure(figsize=(4.2 * n + 1.2, 4.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    mappable = None
    for i, (s, a) in enumerate(zip(surfaces, axes, strict=True)):
        m = _draw_2d(a, s, array, kind, lv, log, norm=norm, label=True)
        if mappable is None:
            mappable = m
        if titles is not None:
            a.set_title(str(titles[i]) + progress_note(s), fontsize=10)
    if mappable is not None:
        add_colorbar(fig, mappable, list(axes), pretty(array), log)
    return fig
