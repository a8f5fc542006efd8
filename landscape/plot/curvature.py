"""Curvature pictures: the ``|λmin/λmax|`` map of the Hessian over a grid and the Hessian
eigenvalue density.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018, section 6.
B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
Hessian eigenvalue density", ICML 2019.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LandscapeError, check_float
from ._style import add_colorbar, add_note, cell_edges, finite_values, new_axes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["plot_ratio_map", "plot_density"]


def plot_ratio_map(
    x: Any,
    y: Any,
    ratio: Any,
    *,
    ax: Axes | None = None,
    threshold: float | None = None,
    done: Any = None,
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
    ax = new_axes(ax)
    rm = np.ma.masked_invalid(r)
    finite = finite_values(rm)
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

        m = ax.pcolormesh(cell_edges(xv), cell_edges(yv), rm, cmap="magma",
                          norm=Normalize(vmin=0.0, vmax=top), shading="flat")
        add_colorbar(ax.figure, m, ax, label, False)
        if threshold is not None and xv.size > 1 and yv.size > 1 and finite.size \
                and finite.min() < threshold < finite.max():
            ax.contour(xv, yv, rm, levels=[threshold], colors="cyan", linewidths=1.2)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    if finite.size == 0:
        add_note(ax, "no finite ratio")
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
    ax = new_axes(ax)
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
        add_note(ax, "no finite density value")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.set_title("Hessian eigenvalue density", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return ax
