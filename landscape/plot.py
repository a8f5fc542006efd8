"""Pictures of surfaces, trajectories and curvature: the one module that imports matplotlib.

matplotlib is imported lazily, inside the functions, so ``import landscape`` stays light and
works without a display. Every ``plot_*`` function draws into the Axes it is given or, when
``ax`` is ``None``, into a new :class:`matplotlib.figure.Figure` that is *not* registered with
pyplot (nothing leaks into ``plt.gcf()``, nothing needs ``plt.close``); it returns the Axes
(or the Figure for several panels). :func:`save_figure` writes PNG, PDF or SVG;
:func:`export_vtp` (ParaView) and :func:`export_plotly_html` (optional plotly) export a surface;
:func:`plot_file` draws everything a result file holds (``landscape plot``);
:func:`surface_repr_png` / :func:`surface_repr_html` show a surface in Jupyter.

Data that are not finite are expected, not exceptional: points not yet computed (``done ==
0``) and diverged points (NaN or inf loss) are masked and leave gaps; diverged points are
marked with a red ``x``. An array with no finite value gives an empty panel with a note instead
of an error.

Automatic contour levels come from the finite values only: evenly spaced from the minimum to a
robust maximum (the 95th percentile, so a few huge values at the corners of the grid do not
squash the basin into one level), or log-spaced when asked or when the values span more than
two decades.

The 3D plot uses ``fig.add_subplot(projection="3d")``; the ``fig.gca(projection="3d")`` /
``Axes3D(fig)`` calls of Li et al.'s ``plot_2D.py`` give a blank picture on matplotlib >= 3.6.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from html import escape as _escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LandscapeError, check_float, check_int, check_option
from .surface import Surface

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

__all__ = [
    "KINDS_2D",
    "FORMATS",
    "auto_levels",
    "plot_1d",
    "plot_contour",
    "plot_3d",
    "plot_trajectory",
    "plot_ratio_map",
    "plot_density",
    "compare_panels",
    "save_figure",
    "export_vtp",
    "export_plotly_html",
    "surface_repr_png",
    "surface_repr_html",
    "plot_file",
    "FILE_KINDS",
]

#: Kinds of 2D pictures drawn by :func:`plot_contour` and :func:`compare_panels`.
KINDS_2D = ("contour", "contourf", "heatmap")
#: File formats written by :func:`save_figure` (by extension).
FORMATS = ("png", "pdf", "svg")

_CMAP = "viridis"
_ROBUST_PERCENTILE = 95.0
_LOG_DECADES = 2.0
_DEFAULT_LEVELS = {"contour": 20, "contourf": 30, "heatmap": 30}
_FIGSIZE = (6.0, 4.8)
#: Values are drawn within +-this (matplotlib's filled contours extend to 1e250 at most).
_BIG = 1e200
_NORMS = {
    "filter": "filter-normalized",
    "layer": "layer-normalized",
    "model": "model-normalized",
    "none": "unnormalized",
}


# --------------------------------------------------------------------------- helpers
def _new_axes(ax: Axes | None, *, projection: str | None = None,
              figsize: tuple[float, float] = _FIGSIZE) -> Axes:
    """``ax`` itself, or the Axes of a new pyplot-free Figure."""
    if ax is not None:
        if projection == "3d" and getattr(ax, "name", "") != "3d":
            raise LandscapeError(
                "plot_3d needs a 3D Axes; create it with fig.add_subplot(projection='3d') "
                "or pass ax=None"
            )
        return ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot(projection=projection)


def _pretty(name: str) -> str:
    """``"train_loss"`` -> ``"train loss"``, ``"test_acc"`` -> ``"test accuracy"``."""
    split, _, what = name.rpartition("_")
    if what == "acc":
        what = "accuracy"
    return f"{split} {what}" if split else name


def _array(surface: Surface, name: str) -> np.ndarray:
    if name not in surface.arrays:
        raise LandscapeError(
            f"The 'array' parameter must be one of {sorted(surface.arrays)}. Got {name!r} "
            "instead."
        )
    return np.asarray(surface.arrays[name], dtype=np.float64)


def _masked(surface: Surface, name: str) -> np.ma.MaskedArray:
    """The array with unfinished and non-finite points masked."""
    z = _array(surface, name)
    done = surface.done_of(name)
    if done.shape != z.shape:
        raise LandscapeError(
            f"array {name!r} has shape {z.shape} but the done mask has {done.shape}; the "
            "surface is damaged"
        )
    return np.ma.masked_array(z, mask=~done | ~np.isfinite(z))


def _diverged(surface: Surface, name: str) -> np.ndarray:
    """Mask of finished points whose value is NaN or inf."""
    z = _array(surface, name)
    return surface.done_of(name) & ~np.isfinite(z)


def _finite(values: Any) -> np.ndarray:
    a = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan).ravel()
    return a[np.isfinite(a)]


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=10, color="0.3", wrap=True)


def _auto(values: Any, n: int, log: bool | None, vmin: float | None, vmax: float | None
          ) -> tuple[np.ndarray | None, bool]:
    """Automatic levels and whether they are log-spaced (see :func:`auto_levels`)."""
    n = check_int("levels", n, 2)
    a = _finite(values)
    if vmin is not None:
        vmin = check_float("vmin", vmin)
    if vmax is not None:
        vmax = check_float("vmax", vmax)
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise LandscapeError(f"vmin must be smaller than vmax; got vmin={vmin!r}, vmax={vmax!r}")
    if a.size == 0 and (vmin is None or vmax is None):
        return None, False
    lo = float(a.min()) if vmin is None else vmin
    if vmax is not None:
        hi = vmax
    else:
        hi = float(np.percentile(a, _ROBUST_PERCENTILE)) if a.size else lo
        if hi <= lo and a.size:
            hi = float(a.max())
    lo, hi = max(lo, -_BIG), min(hi, _BIG)
    if hi <= lo:  # constant values (or vmin above all of them): widen around the value
        half = 1e-3 * max(abs(lo), abs(hi), 1.0)
        lo, hi = min(lo, hi) - half, max(lo, hi) + half
    if log is None:  # automatic: positive values spanning more than two decades
        log = lo > 0 and math.log10(hi / lo) > _LOG_DECADES
    if log:
        if lo <= 0:
            if vmin is not None:
                raise LandscapeError(f"log-spaced levels need vmin > 0; got vmin={vmin!r}")
            pos = a[(a > 0) & (a < hi)]
            if pos.size == 0:  # nothing positive below the top: linear levels after all
                return np.linspace(lo, hi, n), False
            lo = float(pos.min())
        return np.geomspace(lo, hi, n), True
    return np.linspace(lo, hi, n), False


def auto_levels(
    values: Any,
    n: int = 20,
    *,
    log: bool | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray | None:
    """Contour levels from the finite entries of ``values``.

    Parameters
    ----------
    values : array_like
        Any array (masked entries, NaN and inf are ignored).
    n : int, default=20
        Number of levels.
    log : bool or None, default=None
        Log-spaced levels. ``None`` chooses them when all values are positive and span more
        than two decades between the minimum and the robust maximum. With ``True`` and
        non-positive values the levels start at the smallest positive value.
    vmin, vmax : float, optional
        Range of the levels; default the minimum and the 95th percentile of the finite values
        (the maximum when that percentile equals the minimum). A constant array gets a narrow
        range around its value.

    Returns
    -------
    np.ndarray or None
        ``n`` increasing levels, or ``None`` when there is no finite value (and no range).

    Examples
    --------
    >>> auto_levels([0.0, 1.0, np.nan, np.inf], n=3).tolist()
    [0.0, 0.475, 0.95]
    >>> auto_levels([0.01, 0.1, 10.0, 100.0], n=3, vmax=100.0).tolist()  # 4 decades: log
    [0.01, 1.0, 100.0]
    """
    return _auto(values, n, log, vmin, vmax)[0]


def _resolve_levels(values: Any, kind: str, levels: int | Sequence[float] | None,
                    log_levels: bool, vmin: float | None, vmax: float | None
                    ) -> tuple[np.ndarray | None, bool]:
    """Levels and log flag from the ``levels`` argument of the plot functions."""
    if levels is None or isinstance(levels, int | np.integer):
        n = _DEFAULT_LEVELS[kind] if levels is None else int(levels)
        return _auto(values, n, True if log_levels else None, vmin, vmax)
    lv = np.asarray(levels, dtype=np.float64).ravel()
    if lv.size < 2 or not np.all(np.isfinite(lv)) or np.any(np.diff(lv) <= 0):
        raise LandscapeError(
            "The 'levels' parameter must be an int >= 2 or an increasing sequence of at least "
            f"2 finite numbers. Got {levels!r} instead."
        )
    if log_levels and lv[0] <= 0:
        raise LandscapeError("log_levels=True needs positive levels; the first is <= 0")
    return lv, bool(log_levels)


def _norm(levels: np.ndarray, log: bool) -> Normalize:
    from matplotlib.colors import LogNorm, Normalize

    if log:
        return LogNorm(vmin=float(levels[0]), vmax=float(levels[-1]))
    return Normalize(vmin=float(levels[0]), vmax=float(levels[-1]))


def _colorbar(fig: Any, m: Any, ax: Any, label: str, log: bool) -> Any:
    """A colorbar with readable ticks (decades and 2, 5 for a log scale; ``%.3g`` labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

    cb = fig.colorbar(m, ax=ax)
    digits = 3
    lo, hi = m.norm.vmin, m.norm.vmax
    if not log and lo is not None and hi is not None and hi > lo:
        # enough significant digits to tell ticks of a narrow range apart
        digits = min(12, max(3, math.ceil(math.log10(max(abs(lo), abs(hi)) / (hi - lo))) + 2))
    cb.locator = LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)) if log else MaxNLocator(8)
    cb.formatter = FuncFormatter(lambda v, _pos: f"{v:.{digits}g}")
    cb.update_ticks()
    if log:
        cb.ax.minorticks_off()
    cb.set_label(label)
    return cb


def _edges(v: np.ndarray) -> np.ndarray:
    """Cell edges around the (increasing or not) coordinates ``v`` for pcolormesh."""
    v = np.asarray(v, dtype=np.float64)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _direction_recipe(surface: Surface) -> dict[str, Any] | None:
    r = surface.recipe.get("directions") if isinstance(surface.recipe, Mapping) else None
    if not isinstance(r, Mapping) and surface.directions is not None:
        r = surface.directions.recipe
    return dict(r) if isinstance(r, Mapping) else None


def _describe_direction(recipe: Mapping[str, Any] | None, axis: int) -> str | None:
    """``"filter-normalized random, seed 0"`` and the like, or ``None``."""
    if not recipe:
        return None
    kind = recipe.get("kind")
    if kind == "random":
        norm = _NORMS.get(str(recipe.get("norm")), str(recipe.get("norm", "")))
        seeds = recipe.get("seeds")
        text = f"{norm} random".strip()
        if isinstance(seeds, Sequence) and not isinstance(seeds, str) and len(seeds) > axis:
            text += f", seed {seeds[axis]}"
        if axis == 1 and recipe.get("orthogonal"):
            text += ", orthogonalized"
        return text
    if kind == "interpolation":
        target = recipe.get("target")
        return f"interpolation (0: origin, 1: {Path(str(target)).name})" if target \
            else "interpolation"
    if kind == "plane":
        models = recipe.get("models")
        if isinstance(models, Sequence) and len(models) > axis:
            return f"plane, towards {Path(str(models[axis])).name}"
        return "plane"
    if kind == "pca":
        return f"PC{axis + 1} of the trajectory"
    return str(kind) if kind else None


def _axis_labels(surface: Surface) -> tuple[str, str]:
    recipe = _direction_recipe(surface)
    names = ("x", "y")
    out = []
    for i, n in enumerate(names):
        d = _describe_direction(recipe, i)
        out.append(f"{n}: {d}" if d else n)
    return out[0], out[1]


def _progress_note(surface: Surface) -> str:
    if surface.complete:
        return ""
    return f" ({surface.n_done}/{surface.n_points} points done)"


def _mark_diverged(ax: Axes, xs: np.ndarray, ys: np.ndarray) -> None:
    if xs.size:
        ax.plot(xs, ys, linestyle="none", marker="x", color="red", markersize=4,
                label=f"diverged ({xs.size})", zorder=5)


def _draw_2d(ax: Axes, surface: Surface, array: str, kind: str, levels: np.ndarray | None,
             log: bool, norm: Normalize | None = None, label: bool = True) -> Any:
    """Draw one 2D panel; returns the mappable (or None for an empty panel)."""
    if surface.ndim != 2:
        raise LandscapeError(
            f"a {kind} plot needs a 2D surface; this one is 1D (use plot_1d)"
        )
    z = _masked(surface, array)
    x = np.asarray(surface.x, dtype=np.float64)
    y = np.asarray(surface.y, dtype=np.float64)
    xlabel, ylabel = _axis_labels(surface)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(_pretty(array) + _progress_note(surface), fontsize=10)
    bad = _diverged(surface, array)
    iy, ix = np.nonzero(bad)
    if levels is None or z.count() == 0:
        ax.set_xlim(_edges(x)[[0, -1]])
        ax.set_ylim(_edges(y)[[0, -1]])
        what = "no point computed yet" if surface.n_done == 0 else \
            f"no finite value of {array!r}"
        _note(ax, what + (f"\n({bad.sum()} diverged points)" if bad.any() else ""))
        _mark_diverged(ax, x[ix], y[iy])
        return None
    if log:
        z = np.ma.masked_where(np.ma.filled(z, 1.0) <= 0, z)
    z = np.ma.clip(z, -_BIG, _BIG)
    if norm is None:
        norm = _norm(levels, log)
    finite = _finite(z)
    lo, hi = float(finite.min()), float(finite.max())
    inside = levels[(levels >= lo) & (levels <= hi)]
    small = len(x) < 2 or len(y) < 2
    flat = kind == "contour" and (lo == hi or inside.size == 0)  # no line to draw
    if kind == "heatmap" or small or flat:
        m = ax.pcolormesh(_edges(x), _edges(y), z, cmap=_CMAP, norm=norm, shading="flat")
        if flat and not small:
            what = f"constant value {lo:.4g}" if lo == hi else \
                f"no contour level within [{lo:.4g}, {hi:.4g}]"
            ax.text(0.02, 0.98, what + ": drawn as a heatmap", transform=ax.transAxes,
                    va="top", fontsize=8, color="0.2")
    elif kind == "contourf":
        extend = {(False, False): "neither", (True, False): "min", (False, True): "max",
                  (True, True): "both"}[(lo < levels[0], hi > levels[-1])]
        m = ax.contourf(x, y, z, levels=levels, cmap=_CMAP, norm=norm, extend=extend)
    else:
        m = ax.contour(x, y, z, levels=levels, cmap=_CMAP, norm=norm, linewidths=1.0)
        if label:
            step = max(1, len(inside) // 8)
            ax.clabel(m, inside[::step], inline=True, fontsize=7, fmt="%.3g")
    _mark_diverged(ax, x[ix], y[iy])
    if ix.size:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.6)
    return m


# --------------------------------------------------------------------------- plots
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
    ax = _new_axes(ax)
    for which, target in ((metric, "main"), (other, "twin")):
        cols = [f"{s}_{which}" for s in names if f"{s}_{which}" in surface.arrays]
        if not cols or (target == "twin" and not twin):
            continue
        dest = ax if target == "main" else ax.twinx()
        for name in cols:
            z = _masked(surface, name)
            if which == "loss" and log:
                z = np.ma.masked_where(np.ma.filled(z, 1.0) <= 0, z)
            c = colors[names.index(name.rpartition("_")[0]) % len(colors)]
            (h,) = dest.plot(x, z, color=c, linestyle="-" if target == "main" else "--",
                             marker=marker, markersize=3, label=_pretty(name))
            handles.append(h)
            drawn += int(z.count())
            bad_x.update(x[_diverged(surface, name)].tolist())
        dest.set_ylabel("loss" if which == "loss" else "accuracy")
        if which == "loss" and log:
            dest.set_yscale("log", nonpositive="mask")
        values = np.concatenate([_finite(_masked(surface, c)) for c in cols])
        if which == "acc" and (values.size == 0 or (values.min() >= 0 and values.max() <= 1)):
            dest.set_ylim(-0.02, 1.02)
    xlabel, _ = _axis_labels(surface)
    ax.set_xlabel(xlabel)
    ax.set_xlim(_edges(x)[[0, -1]] if len(x) == 1 else (x.min(), x.max()))
    ax.set_title("1D surface" + _progress_note(surface), fontsize=10)
    if bad_x:
        xs = np.array(sorted(bad_x))
        (h,) = ax.plot(xs, np.full(xs.size, 0.97), linestyle="none", marker="x", color="red",
                       transform=ax.get_xaxis_transform(), label=f"diverged ({xs.size})")
        handles.append(h)
    if drawn == 0:
        _note(ax, "no point computed yet" if surface.n_done == 0 else "no finite value")
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
    z = _masked(surface, array)
    lv, log = _resolve_levels(z, kind, levels, log_levels, vmin, vmax)
    ax = _new_axes(ax)
    m = _draw_2d(ax, surface, array, kind, lv, log, label=label)
    if colorbar and m is not None:
        _colorbar(ax.figure, m, ax, _pretty(array), log)
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
    ax = _new_axes(ax, projection="3d")
    z = _masked(surface, array)
    x = np.asarray(surface.x, dtype=np.float64)
    y = np.asarray(surface.y, dtype=np.float64)
    xlabel, ylabel = _axis_labels(surface)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_zlabel(_pretty(array), fontsize=8)
    title = _pretty(array) + _progress_note(surface)
    finite = _finite(z)
    if finite.size == 0:
        ax.set_title(title, fontsize=10)
        ax.text2D(0.5, 0.5, f"no finite value of {array!r}", transform=ax.transAxes,
                  ha="center", va="center", color="0.3")
        return ax
    if clip is None:
        top = float(np.percentile(finite, _ROBUST_PERCENTILE))
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
        ax.scatter(xx[ok], yy[ok], zz[ok], c=zz[ok], cmap=_CMAP)
        return ax
    xx, yy = np.meshgrid(x, y)
    lo = float(np.nanmin(zz))
    ax.plot_surface(xx, yy, zz, cmap=_CMAP, vmin=lo, vmax=top if top > lo else lo + 1,
                    rstride=1, cstride=1, linewidth=0, antialiased=True)
    return ax


def plot_trajectory(
    coords: Any,
    *,
    surface: Surface | None = None,
    array: str = "train_loss",
    explained_variance_ratio: Sequence[float] | None = None,
    epochs: Sequence[int] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """An optimizer's path in the PCA plane, over the contour of the surface there.

    Parameters
    ----------
    coords : array_like, shape (n, 2)
        Coordinates of the checkpoints along PC1 and PC2 (e.g. ``Trajectory.coords``).
    surface : Surface, optional
        A 2D surface computed along the same two directions, drawn as contour lines below.
    array : str, default="train_loss"
        Array of ``surface`` to draw.
    explained_variance_ratio : sequence of float, optional
        Fractions for the axis labels (``"PC1 (62.3%)"``).
    epochs : sequence of int, optional
        Epoch of each checkpoint; some points are labelled with it.
    ax : Axes, optional
        Where to draw; default a new Figure.

    Returns
    -------
    Axes

    References
    ----------
    Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
    Landscape of Neural Nets". NeurIPS 2018, section 7.
    """
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2 or c.shape[0] < 1:
        raise LandscapeError(
            f"The 'coords' parameter must be an (n, 2) array of path coordinates. Got shape "
            f"{c.shape} instead."
        )
    c = c[:, :2]
    if epochs is not None:
        epochs = list(np.asarray(epochs).ravel())
        if len(epochs) != len(c):
            raise LandscapeError(
                f"The 'epochs' parameter must give one epoch per point ({len(c)}). Got "
                f"{len(epochs)} instead."
            )
    ax = _new_axes(ax)
    if surface is not None:
        if surface.ndim != 2:
            raise LandscapeError("plot_trajectory needs a 2D surface under the path")
        plot_contour(surface, array=array, kind="contour", ax=ax, colorbar=True, label=True)
    ok = np.all(np.isfinite(c), axis=1)
    p = c[ok]
    if p.size:
        ax.plot(p[:, 0], p[:, 1], color="tab:red", linewidth=1.5, marker="o", markersize=3,
                label="path", zorder=6)
        ax.plot(*p[0], marker="o", markersize=8, color="tab:green", linestyle="none",
                zorder=7, label="start")
        ax.plot(*p[-1], marker="*", markersize=13, color="k", linestyle="none", zorder=7,
                label="end")
        idx = np.flatnonzero(ok)
        first = f"start (epoch {epochs[idx[0]]})" if epochs is not None else "start"
        last = f"end (epoch {epochs[idx[-1]]})" if epochs is not None else "end"
        ax.annotate(first, p[0], xytext=(6, 6), textcoords="offset points", fontsize=8)
        ax.annotate(last, p[-1], xytext=(6, -12), textcoords="offset points", fontsize=8)
        if epochs is not None and len(p) > 2:
            step = max(1, len(p) // 6)
            for j in range(step, len(p) - 1, step):
                ax.annotate(str(epochs[idx[j]]), p[j], xytext=(4, 4),
                            textcoords="offset points", fontsize=7, color="tab:red")
    else:
        _note(ax, "no finite trajectory coordinates")
    labels = ["PC1", "PC2"]
    if explained_variance_ratio is not None:
        r = np.asarray(explained_variance_ratio, dtype=np.float64).ravel()
        labels = [f"PC{i + 1} ({100 * r[i]:.1f}%)" if i < r.size and np.isfinite(r[i])
                  else f"PC{i + 1}" for i in range(2)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("optimizer trajectory" + (f" over the {_pretty(array)}" if surface is not None
                                           else ""), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=7, framealpha=0.7)
    return ax


def plot_ratio_map(
    x: Any,
    y: Any,
    ratio: Any,
    *,
    ax: Axes | None = None,
    threshold: float | None = None,
) -> Axes:
    """Map of ``|λmin / λmax|`` of the Hessian over a grid (a line over a 1D grid).

    Small values mean locally convex-looking regions, large ones chaotic regions (Li et al.
    2018, section 6). The colour scale runs from 0 to ``max(1, largest finite ratio)``.

    Parameters
    ----------
    x : array_like, shape (nx,)
        Grid coordinates.
    y : array_like, shape (ny,), or None
        Second coordinate (``None`` for a 1D line).
    ratio : array_like, shape (ny, nx) or (nx,)
        Ratios, laid out ``Z[iy, ix]``; the absolute value is drawn, NaN/inf are masked.
    ax : Axes, optional
        Where to draw; default a new Figure.
    threshold : float, optional
        Draw the ``|λmin/λmax| = threshold`` contour (a horizontal line in 1D).

    Returns
    -------
    Axes
    """
    xv = np.asarray(x, dtype=np.float64).ravel()
    r = np.abs(np.asarray(ratio, dtype=np.float64))
    if threshold is not None:
        threshold = check_float("threshold", threshold, 0.0)
    ax = _new_axes(ax)
    rm = np.ma.masked_invalid(r)
    finite = _finite(rm)
    top = max(1.0, float(finite.max())) if finite.size else 1.0
    label = "|λmin / λmax|"
    if y is None:
        if r.shape != xv.shape:
            raise LandscapeError(
                f"ratio has shape {r.shape}; a 1D map needs one value per x ({xv.size},)"
            )
        ax.plot(xv, rm, color="C0", marker="o" if xv.size <= 60 else None, markersize=3,
                label=label)
        ax.set_ylim(0, top * 1.05)
        ax.set_xlabel("x")
        ax.set_ylabel(label)
        if threshold is not None:
            ax.axhline(threshold, color="red", linestyle="--", linewidth=1,
                       label=f"threshold {threshold:g}")
        ax.legend(loc="best", fontsize=8)
    else:
        yv = np.asarray(y, dtype=np.float64).ravel()
        if r.shape != (yv.size, xv.size):
            hint = " (it looks transposed: lay it out Z[iy, ix])" \
                if r.shape == (xv.size, yv.size) else ""
            raise LandscapeError(
                f"ratio has shape {r.shape}; a 2D map needs (ny, nx) = ({yv.size}, {xv.size})"
                + hint
            )
        from matplotlib.colors import Normalize

        m = ax.pcolormesh(_edges(xv), _edges(yv), rm, cmap="magma",
                          norm=Normalize(vmin=0.0, vmax=top), shading="flat")
        _colorbar(ax.figure, m, ax, label, False)
        if threshold is not None and xv.size > 1 and yv.size > 1 and finite.size \
                and finite.min() < threshold < finite.max():
            ax.contour(xv, yv, rm, levels=[threshold], colors="cyan", linewidths=1.2)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    if finite.size == 0:
        _note(ax, "no finite ratio")
    ax.set_title("Hessian eigenvalue ratio |λmin/λmax|", fontsize=10)
    return ax


def plot_density(
    grid: Any,
    density: Any,
    *,
    ax: Axes | None = None,
    log: bool = True,
    eigenvalues: Sequence[float] | None = None,
) -> Axes:
    """Hessian eigenvalue density (e.g. from stochastic Lanczos quadrature).

    Parameters
    ----------
    grid : array_like, shape (n,)
        Eigenvalue grid.
    density : array_like, shape (n,)
        Density at the grid points.
    ax : Axes, optional
        Where to draw; default a new Figure.
    log : bool, default=True
        Log y-axis; values are clipped below at ``1e-8`` times the peak so that empty
        stretches of the spectrum stay visible.
    eigenvalues : sequence of float, optional
        Top eigenvalues, drawn as vertical dashed lines.

    Returns
    -------
    Axes

    References
    ----------
    B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
    Hessian eigenvalue density", ICML 2019.
    """
    g = np.asarray(grid, dtype=np.float64).ravel()
    d = np.asarray(density, dtype=np.float64).ravel()
    if g.shape != d.shape or g.size < 2:
        raise LandscapeError(
            f"grid and density must be 1-D arrays of the same length >= 2; got {g.shape} "
            f"and {d.shape}"
        )
    ax = _new_axes(ax)
    ok = np.isfinite(g) & np.isfinite(d)
    peak = float(d[ok].max()) if ok.any() else 0.0
    if log:
        floor = peak * 1e-8 if peak > 0 else 1e-12
        dm = np.ma.masked_array(np.maximum(d, floor), mask=~ok)
        ax.plot(g, dm, color="C0", linewidth=1.2, label="density")
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    else:
        ax.plot(g, np.ma.masked_array(d, mask=~ok), color="C0", linewidth=1.2,
                label="density")
    if eigenvalues is not None:
        ev = np.asarray(eigenvalues, dtype=np.float64).ravel()
        ev = ev[np.isfinite(ev)]
        for i, e in enumerate(ev):
            ax.axvline(e, color="tab:red", linestyle="--", linewidth=0.9,
                       label=f"top eigenvalues ({ev.size})" if i == 0 else None)
    if not ok.any():
        _note(ax, "no finite density value")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title("Hessian eigenvalue density", fontsize=10)
    ax.legend(loc="best", fontsize=8)
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
    zs = [_masked(s, array) for s in surfaces]
    pooled = np.concatenate([_finite(z) for z in zs])
    lv, log = _resolve_levels(pooled, kind, levels, log_levels, None, None)
    norm = _norm(lv, log) if lv is not None else None
    n = len(surfaces)
    fig = Figure(figsize=(4.2 * n + 1.2, 4.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    mappable = None
    for i, (s, a) in enumerate(zip(surfaces, axes, strict=True)):
        m = _draw_2d(a, s, array, kind, lv, log, norm=norm, label=True)
        if mappable is None:
            mappable = m
        if titles is not None:
            a.set_title(str(titles[i]) + _progress_note(s), fontsize=10)
    if mappable is not None:
        _colorbar(fig, mappable, list(axes), _pretty(array), log)
    return fig


# --------------------------------------------------------------------------- output
def _figure_of(fig_or_ax: Any) -> Figure:
    from matplotlib.figure import Figure

    if isinstance(fig_or_ax, Figure):
        return fig_or_ax
    fig = getattr(fig_or_ax, "figure", None)
    if fig is None:
        raise LandscapeError(
            f"save_figure needs a matplotlib Figure or Axes; got {type(fig_or_ax).__name__}"
        )
    root = getattr(fig, "figure", fig)  # a SubFigure's .figure is the root Figure
    return root if isinstance(root, Figure) else fig


def _check_out_dir(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise LandscapeError(f"cannot write '{path}': it is a directory")
    if not parent.is_dir():
        raise LandscapeError(f"cannot write '{path}': directory '{parent}' does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LandscapeError(f"cannot write '{path}': directory '{parent}' is not writable")
    return parent


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(fh)`` (a binary handle) atomically; see :mod:`landscape._atomic`."""
    from ._atomic import atomic_write

    _check_out_dir(path)
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise LandscapeError(f"cannot write '{path}': {exc.strerror or exc}") from exc


def save_figure(fig_or_ax: Any, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write a Figure (or the Figure of an Axes) as PNG, PDF or SVG, chosen by extension.

    Parameters
    ----------
    fig_or_ax : Figure or Axes
        What to save.
    path : str or os.PathLike
        Output file ending in ``.png``, ``.pdf`` or ``.svg``; written atomically.
    dpi : int, default=150
        Resolution (raster parts).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    LandscapeError
        For another extension, or a missing or unwritable directory.
    """
    p = Path(path)
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise LandscapeError(
            f"cannot save a figure as '{p.name}': use a .png, .pdf or .svg file name"
        )
    dpi = check_int("dpi", dpi, 10, 2400)
    fig = _figure_of(fig_or_ax)
    _atomic_write(p, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    return p


def _grid_values(surface: Surface, array: str, log: bool, zmax: float | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    z = _masked(surface, array)
    zz = np.ma.filled(z.astype(np.float64), np.nan)
    raw = zz.copy()
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = np.where(zz > 0, np.log10(np.where(zz > 0, zz, 1.0)), np.nan)
    if zmax is not None:
        zmax = check_float("zmax", zmax)
        zz = np.where(zz > zmax, zmax, zz)
    return zz, raw


def export_vtp(
    surface: Surface,
    path: str | os.PathLike,
    *,
    array: str = "train_loss",
    log: bool = False,
    zmax: float | None = None,
) -> Path:
    """Write a 2D surface as a ParaView file (VTK XML PolyData, ASCII).

    Points are the grid points ``(x, y, z)`` that are finished with a finite value (``z`` the
    value, ``log10`` of it with ``log=True``, capped at ``zmax``); polygons are the quads
    between four such neighbours; the point data hold the raw value (named after ``array``)
    and ``z``. No dependency beyond the standard library.

    Parameters
    ----------
    surface : Surface
        A 2D surface.
    path : str or os.PathLike
        Output file (``.vtp``), written atomically.
    array : str, default="train_loss"
        Array to export.
    log : bool, default=False
        Height ``log10(value)`` (non-positive values are left out).
    zmax : float, optional
        Cap on the height.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    LandscapeError
        For a 1D surface, an array with no finite finished value, or an unwritable path.
    """
    if surface.ndim != 2:
        raise LandscapeError("export_vtp needs a 2D surface; this one is 1D")
    p = Path(path)
    z, raw = _grid_values(surface, array, log, zmax)
    x = np.asarray(surface.x, dtype=np.float64)
    y = np.asarray(surface.y, dtype=np.float64)
    ny, nx = z.shape
    ok = np.isfinite(z)
    if not ok.any():
        raise LandscapeError(
            f"array {array!r} has no finished finite value" + (" > 0" if log else "")
            + "; nothing to export"
        )
    index = np.full((ny, nx), -1, dtype=np.int64)
    index[ok] = np.arange(int(ok.sum()))
    iy, ix = np.nonzero(ok)
    pts = np.column_stack([x[ix], y[iy], z[iy, ix]])
    vals = raw[iy, ix]
    quad = ok[:-1, :-1] & ok[:-1, 1:] & ok[1:, 1:] & ok[1:, :-1]
    qy, qx = np.nonzero(quad)
    conn = np.column_stack([index[qy, qx], index[qy, qx + 1], index[qy + 1, qx + 1],
                            index[qy + 1, qx]]) if qy.size else np.zeros((0, 4), np.int64)
    offsets = 4 * np.arange(1, len(conn) + 1)

    def nums(a: np.ndarray, per_line: int, fmt: str = "{:.10g}") -> str:
        flat = [fmt.format(v) for v in np.asarray(a).ravel().tolist()]
        return "\n".join(" ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line))

    name = _escape(array, quote=True)
    text = "\n".join([
        '<?xml version="1.0"?>',
        '<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian">',
        "  <PolyData>",
        f'    <Piece NumberOfPoints="{len(pts)}" NumberOfVerts="0" NumberOfLines="0" '
        f'NumberOfStrips="0" NumberOfPolys="{len(conn)}">',
        f'      <PointData Scalars="{name}">',
        f'        <DataArray type="Float64" Name="{name}" NumberOfComponents="1" '
        'format="ascii">',
        nums(vals, 6),
        "        </DataArray>",
        '        <DataArray type="Float64" Name="z" NumberOfComponents="1" format="ascii">',
        nums(pts[:, 2], 6),
        "        </DataArray>",
        "      </PointData>",
        "      <Points>",
        '        <DataArray type="Float64" NumberOfComponents="3" format="ascii">',
        nums(pts, 3),
        "        </DataArray>",
        "      </Points>",
        "      <Polys>",
        '        <DataArray type="Int64" Name="connectivity" format="ascii">',
        nums(conn, 4, "{:d}"),
        "        </DataArray>",
        '        <DataArray type="Int64" Name="offsets" format="ascii">',
        nums(offsets, 10, "{:d}"),
        "        </DataArray>",
        "      </Polys>",
        "    </Piece>",
        "  </PolyData>",
        "</VTKFile>",
        "",
    ])
    _atomic_write(p, lambda fh: fh.write(text.encode("utf-8")))
    return p


def export_plotly_html(
    surface: Surface,
    path: str | os.PathLike,
    *,
    array: str = "train_loss",
) -> Path:
    """Write an interactive 3D surface as a self-contained HTML page (needs plotly).

    Parameters
    ----------
    surface : Surface
        A 2D surface.
    path : str or os.PathLike
        Output ``.html`` file, written atomically; plotly.js is embedded so the page works
        offline.
    array : str, default="train_loss"
        Array to draw (unfinished and non-finite points are gaps).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    LandscapeError
        If plotly is not installed, for a 1D surface or an unwritable path.
    """
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise LandscapeError(
            "plotly is not installed; pip install 'landscape[interactive]'"
        ) from None
    if surface.ndim != 2:
        raise LandscapeError("export_plotly_html needs a 2D surface; this one is 1D")
    p = Path(path)
    z = np.ma.filled(_masked(surface, array), np.nan)
    zl: list[list[float | None]] = [[v if math.isfinite(v) else None for v in row]
                                    for row in z.tolist()]
    xlabel, ylabel = _axis_labels(surface)
    fig = go.Figure(data=[go.Surface(x=np.asarray(surface.x).tolist(),
                                     y=np.asarray(surface.y).tolist(), z=zl,
                                     colorscale="Viridis", colorbar={"title": _pretty(array)})])
    fig.update_layout(title=_pretty(array) + _progress_note(surface),
                      scene={"xaxis_title": xlabel, "yaxis_title": ylabel,
                             "zaxis_title": _pretty(array)})
    page = fig.to_html(include_plotlyjs=True, full_html=True)
    _atomic_write(p, lambda fh: fh.write(page.encode("utf-8")))
    return p


# --------------------------------------------------------------------------- notebooks
def _default_array(surface: Surface) -> str | None:
    for name in ("train_loss", "test_loss"):
        if name in surface.arrays:
            return name
    losses = sorted(k for k in surface.arrays if k.endswith("_loss"))
    return losses[0] if losses else (sorted(surface.arrays)[0] if surface.arrays else None)


def _default_figure(surface: Surface, figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    name = _default_array(surface)
    if name is None:
        _note(ax, "surface without arrays")
    elif surface.ndim == 1:
        plot_1d(surface, ax=ax)
    else:
        plot_contour(surface, array=name, kind="contour", ax=ax)
    return fig


def surface_repr_png(surface: Surface, *, figsize: tuple[float, float] = (5.0, 4.0),
                     dpi: int = 80) -> bytes:
    """PNG bytes of the default picture of a surface (contour for 2D, curves for 1D).

    Meant for ``Surface._repr_png_`` so that a surface shows itself in Jupyter.

    Returns
    -------
    bytes
        A PNG image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _default_figure(surface, figsize)
    FigureCanvasAgg(fig)  # attaches itself to the figure: no pyplot, no backend switch
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fmt_range(a: np.ndarray, done: np.ndarray) -> tuple[str, str, int]:
    vals = np.asarray(a, dtype=np.float64)[done]
    fin = vals[np.isfinite(vals)]
    bad = int(vals.size - fin.size)
    if fin.size == 0:
        return "–", "–", bad
    return f"{fin.min():.6g}", f"{fin.max():.6g}", bad


def _recipe_summary(surface: Surface) -> str:
    r = _direction_recipe(surface)
    parts = []
    if r:
        parts.append("; ".join(
            f"{ax}: {d}" for ax, d in zip(("x", "y"), (_describe_direction(r, i)
                                                      for i in range(surface.ndim)),
                                          strict=False) if d))
    rec = surface.recipe if isinstance(surface.recipe, Mapping) else {}
    for key in ("loss", "bn", "dtype"):
        if key in rec and rec[key] is not None:
            parts.append(f"{key} {rec[key]}")
    if isinstance(rec.get("model"), Mapping) and rec["model"].get("name"):
        parts.append(f"model {rec['model']['name']}")
    if isinstance(rec.get("data"), Mapping) and rec["data"].get("name"):
        parts.append(f"data {rec['data']['name']}")
    src = surface.provenance.get("source_format") if isinstance(surface.provenance,
                                                                Mapping) else None
    if src:
        parts.append(f"source {src}")
    return "; ".join(p for p in parts if p) or "–"


def surface_repr_html(surface: Surface) -> str:
    """A small HTML summary of a surface with its default picture inline.

    Meant for ``Surface._repr_html_``: grid, completion, value range of every array (over
    finished points), the direction recipe and a PNG (base64).

    Returns
    -------
    str
        An HTML fragment (a ``<div>`` with a ``<table>`` and an ``<img>``).
    """
    e = _escape
    x = np.asarray(surface.x, dtype=np.float64)
    if surface.y is None:
        grid = f"1D, {x.size} points, x ∈ [{x.min():g}, {x.max():g}]"
    else:
        y = np.asarray(surface.y, dtype=np.float64)
        grid = (f"2D, {y.size} × {x.size} (y × x), x ∈ [{x.min():g}, {x.max():g}], "
                f"y ∈ [{y.min():g}, {y.max():g}]")
    pct = 100.0 * surface.n_done / max(surface.n_points, 1)
    rows = [
        ("grid", e(grid)),
        ("completion", e(f"{surface.n_done}/{surface.n_points} points ({pct:.1f}%)")),
        ("recipe", e(_recipe_summary(surface))),
    ]
    arr_rows = []
    for k in sorted(surface.arrays):
        lo, hi, bad = _fmt_range(surface.arrays[k], surface.done_of(k))
        arr_rows.append(f"<tr><td>{e(k)}</td><td>{lo}</td><td>{hi}</td><td>{bad}</td></tr>")
    png = base64.b64encode(surface_repr_png(surface)).decode("ascii")
    head = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
                   for k, v in rows)
    arrays = ("<table><tr><th>array</th><th>min</th><th>max</th><th>non-finite</th></tr>"
              + "".join(arr_rows) + "</table>")
    return (
        "<div class='landscape-surface'>"
        f"<table>{head}<tr><th style='text-align:left'>arrays</th><td>{arrays}</td></tr>"
        "</table>"
        f"<img src='data:image/png;base64,{png}' alt='{e(_default_array(surface) or '')}'/>"
        "</div>"
    )


# --------------------------------------------------------------------------- files
#: Picture kinds of :func:`plot_file` (and ``landscape plot --kind``).
FILE_KINDS = ("contour", "contourf", "heatmap", "3d", "1d", "trajectory", "ratio", "density")
_SURFACE_KINDS_2D = ("contour", "contourf", "heatmap", "3d")
_RATIO_NAMES = ("ratio_map", "ratio")
_GRID_NAMES = ("density_grid", "grid")
_DENSITY_NAMES = ("density",)
_EIG_NAMES = ("top_eigenvalues", "eigenvalues")


def _as_array(v: Any) -> np.ndarray | None:
    """A float array from a dataset or a JSON-list attribute (``None`` if neither)."""
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a


def _lookup(g: Any, names: Sequence[str], *, attrs: bool = False
            ) -> tuple[np.ndarray, Any] | None:
    """First of ``names`` among the datasets of ``g`` or of its direct subgroups.

    Returns the array and the group that holds it (so that its coordinates can be looked up
    beside it); with ``attrs=True`` JSON-list attributes count too.
    """
    for grp in (g, *g.groups.values()):
        for n in names:
            if n in grp.datasets:
                a = _as_array(grp.datasets[n])
                if a is not None:
                    return a, grp
            if attrs and n in grp.attrs:
                a = _as_array(grp.attrs[n])
                if a is not None and a.ndim >= 1:
                    return a, grp
    return None


def _contents(g: Any) -> str:
    names = sorted(g.datasets) + sorted(f"{k}/" for k in g.groups)
    return ", ".join(names) if names else "nothing"


def _missing(path: Path, kind: str, group: str, what: Sequence[str], g: Any) -> LandscapeError:
    alts = " or ".join(repr(w) for w in what)
    return LandscapeError(
        f"'{path}' cannot be drawn as --kind {kind}: its /{group} group has no {alts} dataset "
        f"(it has: {_contents(g)})"
    )


def _read_group(path: Path, groups: Sequence[str], name: str, kind: str) -> Any:
    if name not in groups:
        raise LandscapeError(
            f"'{path}' cannot be drawn as --kind {kind}: it has no /{name} group (it has: "
            f"{', '.join('/' + k for k in groups) or 'no groups'})"
        )
    from . import storage

    return storage.read_group(path, name)


def _ratio_source(path: Path, groups: Sequence[str]) -> tuple[np.ndarray, Any, Any] | None:
    """The |λmin/λmax| map of a file: ``/ratio_map`` (unfinished points NaN), else an array
    (ndim >= 1) inside ``/curvature``. Returns ``(ratio, holder group, parent group)``."""
    from . import storage

    if "ratio_map" in groups:
        from . import _schema

        storage.check_no_links(path, "ratio_map")
        g = storage.read_group(path, "ratio_map")
        if g is not None and "ratio" in g.datasets:
            where = f"'{path}' has a damaged /ratio_map group"
            d = g.datasets
            shape = np.shape(d["ratio"])
            if "x" in d:
                x = _schema.coordinates(d, "x", where)
                y = _schema.coordinates(d, "y", where) if "y" in d else None
                shape = _schema.grid_shape(x, y)
                _schema.check_coordinates_fit(d, [k for k in ("ratio", "done") if k in d],
                                              shape, where)
            ratio = _schema.grid_array(d, "ratio", shape, where)
            if "done" in d:
                done = _schema.grid_array(d, "done", shape, where, mask=True)
                ratio = np.where(done, ratio, np.nan)
            if ratio.ndim >= 1:
                return ratio, g, g
    if "curvature" in groups:
        g = storage.read_group(path, "curvature")
        found = _lookup(g, _RATIO_NAMES)
        if found is not None and found[0].ndim >= 1:
            return found[0], found[1], g
    return None


def _check_plotly() -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec("plotly") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise LandscapeError("plotly is not installed; pip install 'landscape[interactive]'")


def plot_file(
    path: str | os.PathLike,
    *,
    kinds: Sequence[str] | None = None,
    array: str | None = None,
    out_dir: str | os.PathLike | None = None,
    fmt: str = "png",
    log_levels: bool = False,
    vtp: bool = False,
    html: bool = False,
    dpi: int = 150,
) -> list[Path]:
    """Draw the pictures of a result file and write them beside it (or into ``out_dir``).

    Files are named ``<out_dir>/<file stem>_<kind>.<fmt>``; ``vtp`` and ``html`` add
    ``<stem>_<array>.vtp`` / ``.html``. Everything is checked (kinds against the file's
    content, the output directory, plotly for ``html``) before the first file is written.

    Parameters
    ----------
    path : str or os.PathLike
        A landscape HDF5 file (or a surface file of Li et al.).
    kinds : sequence of str, optional
        Among :data:`FILE_KINDS`. Default: ``contour, contourf, heatmap, 3d`` for a 2D
        surface, ``1d`` for a 1D one, plus ``trajectory``/``ratio``/``density`` when the
        file's ``/trajectory`` and ``/curvature`` groups hold what they need.
    array : str, optional
        Surface array (default ``train_loss``; for ``1d``: all splits, loss and accuracy).
    out_dir : str or os.PathLike, optional
        Output directory (created if missing); default the file's directory.
    fmt : {"png", "pdf", "svg"}, default="png"
        Picture format.
    log_levels : bool, default=False
        Log-spaced contour levels (and a log loss axis for ``1d``).
    vtp, html : bool, default=False
        Also export the surface for ParaView (:func:`export_vtp`) / as interactive HTML
        (:func:`export_plotly_html`, needs plotly).
    dpi : int, default=150
        Resolution of raster pictures.

    Returns
    -------
    list of Path
        The files written, in order.

    Raises
    ------
    LandscapeError
        For an unreadable file, a kind the file cannot give (naming the missing group or
        dataset), an unknown array, a path that would overwrite the input, or an unwritable
        output directory.
    """
    from . import storage

    src = Path(path)
    check_option("fmt", fmt, FORMATS)
    file_kind = storage.file_kind(src)
    groups = storage.list_groups(src) if file_kind == "landscape" else []
    surface = Surface.load(src) if file_kind == "li2018" or "surface" in groups else None
    if kinds is None:
        chosen: list[str] = []
        if surface is not None:
            chosen += list(_SURFACE_KINDS_2D) if surface.ndim == 2 else ["1d"]
        if "trajectory" in groups:
            chosen.append("trajectory")
        if _ratio_source(src, groups) is not None:
            chosen.append("ratio")
        if "curvature" in groups:
            g = storage.read_group(src, "curvature")
            if _lookup(g, _DENSITY_NAMES) is not None and _lookup(g, _GRID_NAMES) is not None:
                chosen.append("density")
        if not chosen:
            raise LandscapeError(
                f"'{src}' holds nothing to draw: no /surface, /trajectory or /curvature group"
            )
    else:
        chosen = list(dict.fromkeys(kinds))
        for k in chosen:
            check_option("kind", k, FILE_KINDS)
    # ---- check and gather everything before writing anything
    if array is not None and surface is not None:
        _array(surface, array)
    name2d = array or (_default_array(surface) if surface is not None else None)
    jobs: list[tuple[str, Any]] = []
    for k in chosen:
        if k in _SURFACE_KINDS_2D or k == "1d":
            if surface is None:
                raise LandscapeError(
                    f"'{src}' cannot be drawn as --kind {k}: it has no /surface group"
                )
            if k == "1d" and surface.ndim != 1:
                raise LandscapeError(
                    f"--kind 1d needs a 1D surface; '{src}' holds a 2D one (use "
                    "contour, contourf, heatmap or 3d)"
                )
            if k != "1d" and surface.ndim != 2:
                raise LandscapeError(
                    f"--kind {k} needs a 2D surface; '{src}' holds a 1D one (use 1d)"
                )
            if array is not None and surface.ndim == 1 and "_" not in array:
                raise LandscapeError(f"--array {array!r} is not a <split>_loss/_acc array")
            jobs.append((k, None))
        elif k == "trajectory":
            g = _read_group(src, groups, "trajectory", k)
            found = _lookup(g, ("coords",))
            if found is None:
                raise _missing(src, k, "trajectory", ("coords",), g)
            coords = found[0]
            if coords.ndim != 2 or coords.shape[1] < 2:
                raise LandscapeError(
                    f"'{src}': /trajectory/coords has shape {coords.shape}, expected (n, 2)"
                )
            evr = _lookup(g, ("explained_variance_ratio",), attrs=True)
            ep = _lookup(g, ("epochs",))
            under = surface if surface is not None and surface.ndim == 2 else None
            jobs.append((k, (coords, None if evr is None else evr[0],
                             None if ep is None else ep[0].astype(np.int64), under)))
        elif k == "ratio":
            src_found = _ratio_source(src, groups)
            if src_found is None:
                raise LandscapeError(
                    f"'{src}' cannot be drawn as --kind ratio: it has no /ratio_map group and "
                    "no ratio map in /curvature (compute one with 'landscape hessian CKPT "
                    "--grid SURFACE.h5')"
                )
            ratio, holder, g = src_found
            coords = []
            for axis in ("x", "y")[: max(1, min(ratio.ndim, 2))]:
                c = holder.datasets.get(axis, g.datasets.get(axis))
                if c is None and surface is not None and surface.ndim == ratio.ndim:
                    c = surface.x if axis == "x" else surface.y
                if c is None:
                    raise _missing(src, k, "curvature", (axis,), holder)
                coords.append(np.asarray(c, dtype=np.float64))
            y = coords[1] if ratio.ndim == 2 else None
            thr = g.attrs.get("threshold")
            jobs.append((k, (coords[0], y, ratio,
                             float(thr) if isinstance(thr, int | float) else None)))
        elif k == "density":
            g = _read_group(src, groups, "curvature", k)
            grid = _lookup(g, _GRID_NAMES)
            if grid is None:
                raise _missing(src, k, "curvature", _GRID_NAMES, g)
            dens = _lookup(g, _DENSITY_NAMES)
            if dens is None:
                raise _missing(src, k, "curvature", _DENSITY_NAMES, g)
            eig = _lookup(g, _EIG_NAMES, attrs=True)
            jobs.append((k, (grid[0], dens[0], None if eig is None else eig[0])))
    if (vtp or html) and (surface is None or surface.ndim != 2):
        raise LandscapeError(
            f"--vtp and --html export a 2D surface; '{src}' "
            + ("has no /surface group" if surface is None else "holds a 1D one")
        )
    if html:
        _check_plotly()
    out = Path(out_dir) if out_dir is not None else (src.parent if str(src.parent) else
                                                     Path("."))
    if out.exists() and not out.is_dir():
        raise LandscapeError(f"--out '{out}' is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LandscapeError(f"cannot create output directory '{out}': {exc.strerror}") from exc
    stem = src.stem
    targets = [(k, out / f"{stem}_{k}.{fmt}") for k, _ in jobs]
    if vtp:
        targets.append(("vtp", out / f"{stem}_{name2d}.vtp"))
    if html:
        targets.append(("html", out / f"{stem}_{name2d}.html"))
    for _, t in targets:
        if t.resolve() == src.resolve():
            raise LandscapeError(f"refusing to overwrite the input file '{src}' with a picture")
        _check_out_dir(t)
    # ---- draw and write
    written: list[Path] = []
    for (k, data), (_, target) in zip(jobs, targets, strict=False):
        if k == "1d":
            if array is not None:
                split, _, what = array.rpartition("_")
                ax = plot_1d(surface, metric="acc" if what == "acc" else "loss",
                             splits=[split], log=log_levels)
            else:
                ax = plot_1d(surface, log=log_levels)
        elif k == "3d":
            ax = plot_3d(surface, array=name2d)
        elif k in KINDS_2D:
            ax = plot_contour(surface, array=name2d, kind=k, log_levels=log_levels)
        elif k == "trajectory":
            coords, evr, epochs, under = data
            ax = plot_trajectory(coords, surface=under, array=name2d or "train_loss",
                                 explained_variance_ratio=evr, epochs=epochs)
        elif k == "ratio":
            x, y, ratio, thr = data
            ax = plot_ratio_map(x, y, ratio, threshold=thr)
        else:
            grid, dens, eig = data
            ax = plot_density(grid, dens, eigenvalues=eig)
        written.append(save_figure(ax, target, dpi=dpi))
    for k, target in targets[len(jobs):]:
        if k == "vtp":
            written.append(export_vtp(surface, target, array=name2d))
        else:
            written.append(export_plotly_html(surface, target, array=name2d))
    return written
