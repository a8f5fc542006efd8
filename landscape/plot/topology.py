"""The persistence diagram of a surface (:mod:`landscape.topology`).

References
----------
H. Edelsbrunner, D. Letscher, A. Zomorodian, "Topological persistence and simplification",
Discrete Comput. Geom. 28, 2002.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._style import add_note, new_axes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..topology import SublevelPersistence

__all__ = ["plot_persistence"]


def plot_persistence(result: SublevelPersistence, *, ax: Axes | None = None,
                     unit: str = "loss") -> Axes:
    """Persistence diagram: each basin's floor (birth) against its lowest barrier (death).

    Points far above the diagonal are deep basins; points near it are shallow (noise). The
    persistent basins are drawn in colour, the others in grey; the dashed line is the
    threshold ``death = birth + threshold`` (the median of the per-basin thresholds where they
    differ, the colours giving each basin's own decision). The deepest basin, which never
    merges, sits on the top line marked ``∞``.

    Parameters
    ----------
    result : SublevelPersistence
        From :func:`landscape.topology.surface_persistence` or
        :func:`~landscape.topology.sublevel_persistence`.
    ax : Axes, optional
        Where to draw; default a new Figure.
    unit : str, default="loss"
        What the values are, in the axis labels.

    Returns
    -------
    Axes
    """
    ax = new_axes(ax, figsize=(5.0, 4.8))
    pairs = result.pairs
    if pairs.size == 0:  # pragma: no cover - a grid always has its global minimum
        add_note(ax, "no basin")
        return ax
    births, deaths = pairs[:, 0], pairs[:, 1]
    fin = np.isfinite(deaths)
    lo = float(births.min())
    hi = float(deaths[fin].max()) if fin.any() else float(births.max())
    span = max(hi - lo, 1e-12 * max(1.0, abs(lo)), np.finfo(float).tiny)
    top = hi + 0.12 * span  # where deaths at infinity are drawn
    shown = np.where(fin, deaths, top)
    persistent = np.zeros(len(births), bool)
    persistent[list(result.persistent)] = True
    ax.plot([lo - 0.05 * span, top], [lo - 0.05 * span, top], color="0.6", linewidth=0.8)
    ax.axhline(top, color="0.6", linewidth=0.8, linestyle=":")
    ax.annotate("∞", (0.0, top), xycoords=("axes fraction", "data"), xytext=(-10, 0),
                textcoords="offset points", va="center", ha="right", fontsize=9)
    thr = result.thresholds
    known = thr[np.isfinite(thr) & fin]  # the deepest basin's has no saddle: left out
    if known.size == 0:
        known = thr[np.isfinite(thr)]
    if known.size:
        t = float(np.median(known))
        if result.min_persistence is not None:
            label = f"threshold: persistence = {t:.3g}"
        elif np.allclose(known, known[0]):
            label = f"threshold: {result.se_multiple:g} SE of the depth = {t:.3g}"
        else:
            label = f"threshold: {result.se_multiple:g} SE of each depth (median {t:.3g})"
        xs = np.array([lo - 0.05 * span, top - t])
        ax.plot(xs, xs + t, color="red", linestyle="--", linewidth=1, label=label)
    rest = ~persistent
    if rest.any():
        ax.scatter(births[rest], shown[rest], s=12, color="0.55", zorder=3,
                   label=f"not persistent ({int(rest.sum())})")
    if persistent.any():
        ax.scatter(births[persistent], shown[persistent], s=36, color="C0", zorder=4,
                   edgecolor="black", linewidth=0.5,
                   label=f"persistent ({int(persistent.sum())})")
    ax.set_xlabel(f"birth: basin minimum ({unit})")
    ax.set_ylabel(f"death: barrier height ({unit})")
    if result.n_basins is None:
        title = f"Persistence diagram: {len(births)} minima"
        add_note(ax, f"persistent basins unknown: {result.reason}")
    else:
        title = (f"Persistence diagram: {result.n_basins} persistent basin"
                 f"{'s' if result.n_basins != 1 else ''} of {len(births)} minima")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return ax

