"""An optimizer's path in the PCA plane of its trajectory, over the surface there.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018, section 7.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LandscapeError, check_option
from ._labels import freeze_legend, renderer_of, thin_texts
from ._style import (
    add_colorbar,
    add_note,
    default_levels,
    equal_aspect,
    finite_values,
    masked_values,
    new_axes,
    new_figure,
    nice_levels,
    norm_for,
    pretty,
    resolve_levels,
)
from .surfaces import Panel, draw_panel, label_panel

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..surface import Surface

__all__ = ["plot_trajectory", "compare_trajectories", "path_values"]


def _check_coords(coords: Any) -> np.ndarray:
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2 or c.shape[0] < 1:
        raise LandscapeError(
            f"The 'coords' parameter must be an (n, 2) array of path coordinates. Got shape "
            f"{c.shape} instead."
        )
    return c[:, :2]


def path_values(surface: Surface, coords: Any, array: str = "train_loss") -> np.ndarray:
    """Values of a 2D surface along a path, by bilinear interpolation between grid points.

    NaN outside the grid and next to points that are unfinished or not finite (nothing is
    extrapolated).

    Parameters
    ----------
    surface : Surface
        A 2D surface.
    coords : array_like, shape (n, 2)
        Points ``(x, y)`` of the path.
    array : str, default="train_loss"

    Returns
    -------
    np.ndarray, shape (n,)
    """
    from scipy.interpolate import RegularGridInterpolator

    c = _check_coords(coords)
    x = np.asarray(surface.x, dtype=np.float64)
    y = np.asarray(surface.y, dtype=np.float64)
    z = np.ma.filled(masked_values(surface, array), np.nan)
    if len(x) < 2 or len(y) < 2 or np.any(np.diff(x) <= 0) or np.any(np.diff(y) <= 0):
        return np.full(len(c), np.nan)
    f = RegularGridInterpolator((y, x), z, method="linear", bounds_error=False,
                                fill_value=np.nan)
    ok = np.all(np.isfinite(c), axis=1)
    out = np.full(len(c), np.nan)
    out[ok] = f(c[ok][:, ::-1])
    return out


def _levels_covering(values: np.ndarray, along: np.ndarray, log_levels: bool
                     ) -> tuple[np.ndarray | None, bool]:
    """Round levels of ``values`` that also cover (with at least 4 levels) the range of
    ``along``, the values the path crosses."""
    lv, log = default_levels(values, "contour", True if log_levels else None, None, None)
    pv = along[np.isfinite(along)]
    if lv is None or pv.size == 0:
        return lv, log
    lo_p, hi_p = float(pv.min()), float(pv.max())
    if log and lo_p <= 0:
        return lv, log
    if lo_p < lv[0] or hi_p > lv[-1]:
        lv = nice_levels(min(lo_p, float(lv[0])), max(hi_p, float(lv[-1])), log, 12)
    if hi_p > lo_p and np.sum((lv >= lo_p) & (lv <= hi_p)) < 4:
        extra = nice_levels(lo_p, hi_p, False, 5)
        extra = extra[(extra >= lo_p) & (extra <= hi_p) & (extra > 0 if log else True)]
        lv = np.unique(np.concatenate([lv, extra]))
    return lv, log


def _label_epochs(ax: Axes, p: np.ndarray, labels: Sequence[str]) -> list[Any]:
    """Epoch numbers beside (not on) the path: offset along the path's normal."""
    disp = ax.transData.transform(p)
    out = []
    for j in range(1, len(p) - 1):
        d = disp[j + 1] - disp[j - 1]
        n = np.array([-d[1], d[0]])
        norm = float(np.hypot(*n))
        n = n / norm if norm > 0 else np.array([0.0, 1.0])
        out.append(ax.annotate(labels[j], p[j], xytext=(7 * n[0], 7 * n[1]),
                               textcoords="offset points", fontsize=7, color="tab:red",
                               ha="center", va="center", zorder=9))
    return out


def _dense(p: np.ndarray, per: int = 12) -> np.ndarray:
    """Points along the polyline ``p`` (so that no label covers the path)."""
    if len(p) < 2:
        return p
    t = np.linspace(0, 1, per, endpoint=False)
    pts = [p[i] + np.outer(t, p[i + 1] - p[i]) for i in range(len(p) - 1)]
    return np.vstack([*pts, p[-1:]])


def _annotate_inward(ax: Axes, text: str, xy: np.ndarray, c: np.ndarray) -> None:
    """Label a point on the side that faces the middle of the path (so that the text stays
    inside the axes)."""
    ok = np.all(np.isfinite(c), axis=1)
    mid = 0.5 * (c[ok].min(axis=0) + c[ok].max(axis=0))
    right = xy[0] <= mid[0]
    up = xy[1] <= mid[1]
    ax.annotate(text, xy, xytext=(7 if right else -7, 7 if up else -7),
                textcoords="offset points", fontsize=8, zorder=9,
                ha="left" if right else "right", va="bottom" if up else "top",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})


def _draw_path(ax: Axes, c: np.ndarray, epochs: list | None) -> tuple[np.ndarray, list[Any]]:
    """Draw the path, its start and end; returns the finite points and the epoch labels."""
    ok = np.all(np.isfinite(c), axis=1)
    p = c[ok]
    if not p.size:
        add_note(ax, "no finite trajectory coordinates")
        return p, []
    ax.plot(p[:, 0], p[:, 1], color="tab:red", linewidth=1.5, marker="o", markersize=3,
            label="path", zorder=6)
    ax.plot(*p[0], marker="o", markersize=8, color="tab:green", linestyle="none",
            zorder=7, label="start")
    ax.plot(*p[-1], marker="*", markersize=13, color="k", linestyle="none", zorder=7,
            label="end (θ*)")
    idx = np.flatnonzero(ok)
    first = f"start (epoch {epochs[idx[0]]})" if epochs is not None else "start"
    last = f"end (epoch {epochs[idx[-1]]})" if epochs is not None else "end"
    _annotate_inward(ax, first, p[0], c)
    _annotate_inward(ax, last, p[-1], c)
    marks: list[Any] = []
    if epochs is not None and len(p) > 2:
        marks = _label_epochs(ax, p, [str(epochs[i]) for i in idx])
    return p, marks


def _axis_titles(ax: Axes, explained_variance_ratio: Sequence[float] | None) -> None:
    labels = ["PC1", "PC2"]
    if explained_variance_ratio is not None:
        r = np.asarray(explained_variance_ratio, dtype=np.float64).ravel()
        labels = [f"PC{i + 1} ({100 * r[i]:.1f}%)" if i < r.size and np.isfinite(r[i])
                  else f"PC{i + 1}" for i in range(2)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])


def _span_ratio(c: np.ndarray, surface: Surface | None) -> float:
    """Width over height of what a panel shows (the surface's grid, else the path)."""
    if surface is not None and surface.y is not None and len(surface.x) > 1:
        w, h = float(np.ptp(surface.x)), float(np.ptp(surface.y))
    else:
        ok = c[np.all(np.isfinite(c), axis=1)]
        w, h = (np.ptp(ok, axis=0) if len(ok) else (1.0, 1.0))
    return float(w / h) if h > 0 and w > 0 else 1.0


#: ``aspect="auto"`` stretches the shorter PC axis to at most this width-to-height ratio.
MAX_RATIO = 3.0


def _shown_ratio(ratio: float, aspect: str) -> float:
    """Width over height of the panel :func:`_set_aspect` gives."""
    return MAX_RATIO if aspect == "auto" and ratio > 1.25 * MAX_RATIO else ratio


def _set_aspect(ax: Axes, c: np.ndarray, surface: Surface | None, aspect: str) -> None:
    """Equal scales (PC1 and PC2 share units), or with ``"auto"`` a stretch of PC2 capped
    so that the panel is at most :data:`MAX_RATIO` wide, said in the y label."""
    if aspect == "equal":
        equal_aspect(ax)
        return
    ratio = _span_ratio(c, surface)
    if ratio <= 1.25 * MAX_RATIO:  # no stretch of a few per cent
        equal_aspect(ax)
        return
    stretch = ratio / MAX_RATIO
    equal_aspect(ax)
    ax.set_aspect(stretch, adjustable="box")
    ax.set_ylabel(ax.get_ylabel() + f", stretched ×{stretch:.3g}")


def _draw_trajectory(ax: Axes, c: np.ndarray, surface: Surface | None, array: str,
                     explained_variance_ratio: Sequence[float] | None, epochs: list | None,
                     levels: np.ndarray | None, log: bool, aspect: str = "equal"
                     ) -> tuple[Panel | None, Any]:
    """Everything of one panel but its colour bar and labels; returns the surface panel and
    what :func:`_finish` needs."""
    panel = None
    if surface is not None:
        panel = draw_panel(ax, surface, array, "contour", levels, log,
                           norm=norm_for(levels, log) if levels is not None else None,
                           label=True, origin=False)
    p, marks = _draw_path(ax, c, epochs)
    _axis_titles(ax, explained_variance_ratio)
    _set_aspect(ax, c, surface, aspect)
    ax.set_title("optimizer trajectory" + (f" over the {pretty(array)}" if surface is not None
                                           else ""), fontsize=10)
    if ax.get_legend_handles_labels()[0]:  # beside the panel: it covers neither path nor labels
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7,
                  frameon=False)
    return panel, (p, marks)


def _finish(ax: Axes, panel: Panel | None, state: Any, renderer: Any) -> None:
    """After the layout: keep the legend where it is, drop epoch numbers that would overlap,
    label the contours away from the path."""
    p, marks = state
    freeze_legend(ax, renderer)
    avoid = _dense(p) if len(p) else None
    thin_texts(ax, marks, renderer, avoid=avoid)
    if panel is not None:
        label_panel(ax, panel, avoid=avoid, renderer=renderer)


def plot_trajectory(
    coords: Any,
    *,
    surface: Surface | None = None,
    array: str = "train_loss",
    explained_variance_ratio: Sequence[float] | None = None,
    epochs: Sequence[int] | None = None,
    ax: Axes | None = None,
    levels: int | Sequence[float] | None = None,
    log_levels: bool = False,
    colorbar: bool = True,
    aspect: str = "auto",
) -> Axes:
    """An optimizer's path in the PCA plane, over the contour lines of the surface there.

    PC1 and PC2 are drawn to the same scale (equal aspect), so the path is not distorted.

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
        Epoch of each checkpoint; the points are labelled with it beside the path (numbers
        that would overlap are left out).
    ax : Axes, optional
        Where to draw; default a new Figure.
    levels : int or sequence of float, optional
        Contour levels. Default: round levels over the surface's range that also cover the
        values the path crosses (interpolated from the surface, :func:`path_values`) with at
        least 4 levels; an int or a sequence as for :func:`~landscape.plot.plot_contour`.
    log_levels : bool, default=False
        Log-spaced levels (chosen anyway over more than two decades).
    colorbar : bool, default=True
        Add a colour bar (with a surface); below the panel when it is wide.
    aspect : {"auto", "equal"}, default="auto"
        ``"equal"``: PC1 and PC2 to the same scale, whatever the panel's shape (a path 20
        times longer than wide gives a flat strip); ``"auto"``: the same scale as long as the
        panel is at most 3 times wider than tall, beyond that PC2 stretched just enough, the
        stretch written in the y label ("PC2 (13.0%), stretched ×6.7").

    Returns
    -------
    Axes

    References
    ----------
    Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
    Landscape of Neural Nets". NeurIPS 2018, section 7.
    """
    c = _check_coords(coords)
    ep = _check_epochs(epochs, len(c))
    check_option("aspect", aspect, ("equal", "auto"))
    if surface is not None and surface.ndim != 2:
        raise LandscapeError("plot_trajectory needs a 2D surface under the path")
    ratio = _span_ratio(c, surface)
    shown = _shown_ratio(ratio, aspect)
    wide = shown > 2.0
    ax = new_axes(ax, figsize=(7.5, min(4.8, 7.0 / max(shown, 0.5) + 1.9)) if wide
                  else (6.0, 4.8))
    lv, log = None, False
    if surface is not None:
        z = masked_values(surface, array)
        if levels is None:
            lv, log = _levels_covering(finite_values(z), path_values(surface, c, array),
                                       log_levels)
        else:
            lv, log = resolve_levels(z, "contour", levels, log_levels, None, None)
    panel, state = _draw_trajectory(ax, c, surface, array, explained_variance_ratio, ep, lv, log,
                                    aspect)
    if colorbar and panel is not None and panel.mappable is not None:
        add_colorbar(ax.figure, panel.mappable, ax, pretty(array), log, levels=lv,
                     location="bottom" if wide else "right")
    _finish(ax, panel, state, renderer_of(ax.figure))
    return ax


def _check_epochs(epochs: Sequence[int] | None, n: int) -> list | None:
    if epochs is None:
        return None
    out = list(np.asarray(epochs).ravel())
    if len(out) != n:
        raise LandscapeError(
            f"The 'epochs' parameter must give one epoch per point ({n}). Got "
            f"{len(out)} instead."
        )
    return out


def compare_trajectories(
    paths: Sequence[Any],
    *,
    surfaces: Sequence[Surface | None] | None = None,
    titles: Sequence[str] | None = None,
    array: str = "train_loss",
    explained_variance_ratios: Sequence[Sequence[float] | None] | None = None,
    epochs: Sequence[Sequence[int] | None] | None = None,
    log_levels: bool = False,
    layout: str = "auto",
    aspect: str = "auto",
) -> Figure:
    """Several optimizer paths, each over its own PCA-plane surface, with the same contour
    levels and colour scale (one colour bar) in every panel.

    Parameters
    ----------
    paths : sequence of array_like, each shape (n_i, 2)
        PCA coordinates of every run.
    surfaces : sequence of Surface or None, optional
        The surface under each path (``None`` for none).
    titles : sequence of str, optional
    array : str, default="train_loss"
    explained_variance_ratios, epochs : sequences, optional
        Per run, as for :func:`plot_trajectory`.
    log_levels : bool, default=False
    layout : {"auto", "row", "column"}, default="auto"
        Panels side by side, stacked, or (``"auto"``) stacked when the paths are much wider
        than tall (equal aspect makes such panels flat strips).
    aspect : {"auto", "equal"}, default="auto"
        As for :func:`plot_trajectory`.

    Returns
    -------
    Figure
    """
    check_option("layout", layout, ("auto", "row", "column"))
    cs = [_check_coords(p) for p in paths]
    n = len(cs)
    if n == 0:
        raise LandscapeError("compare_trajectories needs at least one path")

    def per_run(name: str, v: Sequence | None) -> list:
        if v is None:
            return [None] * n
        v = list(v)
        if len(v) != n:
            raise LandscapeError(
                f"The '{name}' parameter must give one entry per path ({n}). Got {len(v)} "
                "instead."
            )
        return v

    surfs = per_run("surfaces", surfaces)
    names = per_run("titles", titles)
    evrs = per_run("explained_variance_ratios", explained_variance_ratios)
    eps = [_check_epochs(e, len(c)) for e, c in zip(per_run("epochs", epochs), cs, strict=True)]
    if any(s is not None and s.ndim != 2 for s in surfs):
        raise LandscapeError("compare_trajectories needs 2D surfaces under the paths")
    drawn = [(s, c) for s, c in zip(surfs, cs, strict=True) if s is not None]
    lv, log = None, False
    if drawn:
        values = np.concatenate([finite_values(masked_values(s, array)) for s, _ in drawn])
        along = np.concatenate([path_values(s, c, array) for s, c in drawn])
        lv, log = _levels_covering(values, along, log_levels)
    check_option("aspect", aspect, ("equal", "auto"))
    ratios = [_span_ratio(c, s) for c, s in zip(cs, surfs, strict=True)]
    shown = [_shown_ratio(r, aspect) for r in ratios]
    column = layout == "column" or (layout == "auto" and min(shown) > 2.0)
    if column:
        size = (7.5, sum(min(4.0, 6.2 / max(r, 0.5) + 0.9) for r in shown) + 0.4)
    else:
        size = (4.4 * n + 1.2, 4.4)
    fig = new_figure(size)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0] if column else \
        fig.subplots(1, n, squeeze=False)[0]
    states = []
    for a, s, c, name, evr, ep in zip(axes, surfs, cs, names, evrs, eps, strict=True):
        panel, state = _draw_trajectory(a, c, s, array, evr, ep, lv, log, aspect)
        if name is not None:
            a.set_title(str(name), fontsize=10)
        states.append((panel, state))
    mappable = next((p.mappable for p, _ in states if p is not None and p.mappable is not None),
                    None)
    if mappable is not None:
        add_colorbar(fig, mappable, list(axes), pretty(array), log, levels=lv)
    renderer = renderer_of(fig)
    for a, (panel, state) in zip(axes, states, strict=True):
        _finish(a, panel, state, renderer)
    return fig
