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

from ..errors import LandscapeError
from ._style import add_note, new_axes, pretty
from .surfaces import plot_contour

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ..surface import Surface

__all__ = ["plot_trajectory"]


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
    ax = new_axes(ax)
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
        add_note(ax, "no finite trajectory coordinates")
    labels = ["PC1", "PC2"]
    if explained_variance_ratio is not None:
        r = np.asarray(explained_variance_ratio, dtype=np.float64).ravel()
        labels = [f"PC{i + 1} ({100 * r[i]:.1f}%)" if i < r.size and np.isfinite(r[i])
                  else f"PC{i + 1}" for i in range(2)]
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title("optimizer trajectory" + (f" over the {pretty(array)}" if surface is not None
                                           else ""), fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=7, framealpha=0.7)
    return ax
