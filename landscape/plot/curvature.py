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

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LandscapeError, check_float, check_mask, check_option
from ._style import (
    add_colorbar,
    add_note,
    cell_edges,
    equal_aspect,
    finite_values,
    new_axes,
    new_figure,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: ``gid`` of density curves (an Axes holding several gets one x-scale for all of them).
DENSITY_GID = "landscape-density"

__all__ = ["plot_ratio_map", "plot_density", "compare_densities", "plot_block_spectra"]


def _completion(r: np.ndarray, done: Any) -> tuple[int, int]:
    """Points with a value (``done`` when given, else finite) and all points."""
    if done is not None:
        d = check_mask("done", done, "ratio", r.shape)
        return int(d.sum()), int(d.size)
    return int(np.isfinite(r).sum()), int(r.size)


def plot_ratio_map(
    x: Any,
    y: Any,
    ratio: Any,
    *,
    ax: Axes | None = None,
    threshold: float | None = None,
    done: Any = None,
    xlabel: str = "α (direction 1)",
    ylabel: str = "β (direction 2)",
) -> Axes:
    """Map of ``|λmin / λmax|`` of the Hessian over a grid (a line over a 1D grid).

    Small values mean locally convex-looking regions, large ones chaotic regions (Li et al.
    2018, section 6). The colour scale runs from 0 to ``max(1, largest finite ratio)``; grid
    points without a value are grey (legend entry "not computed") and the title says
    "incomplete (k/n)" while points are missing.

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
        Draw the ``|λmin/λmax| = threshold`` contour (a horizontal line in 1D), with a legend
        entry.
    done : array_like of bool, optional
        Completion mask (e.g. ``RatioMap.done``); default: the points with a finite ratio.
    xlabel, ylabel : str
        Axis labels (the directions of the surface the map was computed on).

    Returns
    -------
    Axes
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    xv = np.asarray(x, dtype=np.float64).ravel()
    r = np.abs(np.asarray(ratio, dtype=np.float64))
    if threshold is not None:
        threshold = check_float("threshold", threshold, 0.0)
    n_done, n_all = _completion(r, done)
    ax = new_axes(ax)
    rm = np.ma.masked_invalid(r)
    finite = finite_values(rm)
    top = max(1.0, float(finite.max())) if finite.size else 1.0
    label = "|λmin / λmax|"
    handles: list[Any] = []
    if y is None:
        if r.shape != xv.shape:
            raise LandscapeError(
                f"ratio has shape {r.shape}; a 1D map needs one value per x ({xv.size},)"
            )
        ax.plot(xv, rm, color="C0", marker="o" if xv.size <= 60 else None, markersize=3,
                label=label)
        ax.set_ylim(0, top * 1.05)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        if threshold is not None:
            ax.axhline(threshold, color="red", linestyle="--", linewidth=1,
                       label=f"threshold |λmin/λmax| = {threshold:g}")
        handles = ax.get_legend_handles_labels()[0]
    else:
        yv = np.asarray(y, dtype=np.float64).ravel()
        if r.shape != (yv.size, xv.size):
            hint = " (it looks transposed: lay it out Z[iy, ix])" \
                if r.shape == (xv.size, yv.size) else ""
            raise LandscapeError(
                f"ratio has shape {r.shape}; a 2D map needs (ny, nx) = ({yv.size}, {xv.size})"
                + hint
            )
        from matplotlib import colormaps
        from matplotlib.colors import Normalize

        cmap = colormaps["magma"].with_extremes(bad="0.82")
        m = ax.pcolormesh(cell_edges(xv), cell_edges(yv), rm, cmap=cmap,
                          norm=Normalize(vmin=0.0, vmax=top), shading="flat")
        add_colorbar(ax.figure, m, ax, label, False)
        if threshold is not None and xv.size > 1 and yv.size > 1 and finite.size \
                and finite.min() < threshold < finite.max():
            ax.contour(xv, yv, rm, levels=[threshold], colors="cyan", linewidths=1.2)
            handles.append(Line2D([], [], color="cyan", linewidth=1.2,
                                  label=f"threshold |λmin/λmax| = {threshold:g}"))
        if np.ma.getmaskarray(rm).any():
            handles.append(Patch(facecolor="0.82", edgecolor="0.5", linewidth=0.5,
                                 label=f"no value ({int(np.ma.getmaskarray(rm).sum())})"))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        equal_aspect(ax)
    if handles:
        # inside the axes: a caller's own title (compare reports set one) cannot cover it
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.85)
    if finite.size == 0:
        add_note(ax, "no finite ratio")
    title = "Hessian eigenvalue ratio |λmin/λmax|"
    if n_done < n_all:
        title += f"\nincomplete ({n_done}/{n_all} points)"
    ax.set_title(title, fontsize=10)
    return ax


def _bulk_width(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Width of the 5-95 % mass interval of a density, and the largest |x| it reaches."""
    ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
    if ok.sum() < 2:
        return math.inf, 0.0
    xs, ys = x[ok], y[ok]
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs))])
    if cum[-1] <= 0:
        return math.inf, float(np.abs(xs).max())
    cum /= cum[-1]
    lo, hi = np.interp([0.05, 0.95], cum, xs)
    return max(float(hi - lo), 1e-12), float(np.abs(xs).max())


def _set_spectrum_scale(ax: Axes, xscale: str) -> None:
    """One x-scale for every density curve of ``ax``: symmetric-log when the spectra reach
    more than 50 times beyond the narrowest bulk (a residual net's bulk beside a plain
    net's outliers at 5000), linear otherwise."""
    lines = [ln for ln in ax.lines if ln.get_gid() == DENSITY_GID]
    if xscale == "linear" or not lines:
        ax.set_xscale("linear")
        return
    stats = [_bulk_width(np.asarray(ln.get_xdata(), dtype=np.float64),
                         np.ma.filled(np.ma.asarray(ln.get_ydata(), dtype=np.float64), np.nan))
             for ln in lines]
    width = min(w for w, _ in stats)
    reach = max(e for _, e in stats)
    if xscale == "symlog" or (math.isfinite(width) and reach > 50 * width):
        w = width if math.isfinite(width) else max(reach / 100, 1e-12)
        ax.set_xscale("symlog", linthresh=10.0 ** math.floor(math.log10(w)), linscale=0.5)
    else:
        ax.set_xscale("linear")


def plot_density(
    grid: Any,
    density: Any,
    *,
    ax: Axes | None = None,
    log: bool = True,
    eigenvalues: Sequence[float] | None = None,
    xscale: str = "auto",
) -> Axes:
    """Hessian eigenvalue density (e.g. from stochastic Lanczos quadrature).

    Several calls on the same Axes overlay spectra; the x-scale is chosen for all of them.

    Parameters
    ----------
    grid : array_like, shape (n,)
        Eigenvalue grid.
    density : array_like, shape (n,)
        Density at the grid points.
    ax : Axes, optional
        Where to draw; default a new Figure.
    log : bool, default=True
        Log y-axis from ``1e-8`` times the peak; the curve is left out below that floor
        (no flat line along the bottom).
    eigenvalues : sequence of float, optional
        Top eigenvalues, drawn as vertical dashed lines.
    xscale : {"auto", "linear", "symlog"}, default="auto"
        ``"auto"``: symmetric-log when the spectra on the Axes reach more than 50 times the
        width of the narrowest bulk (5-95 % of the mass), else linear.

    Returns
    -------
    Axes

    References
    ----------
    B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
    Hessian eigenvalue density", ICML 2019.
    """
    check_option("xscale", xscale, ("auto", "linear", "symlog"))
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
        dm = np.ma.masked_array(d, mask=~ok | (d < floor))
        ax.plot(g, dm, color="C0", linewidth=1.2, label="density", gid=DENSITY_GID)
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    else:
        ax.plot(g, np.ma.masked_array(d, mask=~ok), color="C0", linewidth=1.2,
                label="density", gid=DENSITY_GID)
    if eigenvalues is not None:
        ev = np.asarray(eigenvalues, dtype=np.float64).ravel()
        ev = ev[np.isfinite(ev)]
        for i, e in enumerate(ev):
            ax.axvline(e, color="tab:red", linestyle="--", linewidth=0.9,
                       label=f"top eigenvalues ({ev.size})" if i == 0 else None)
    if not ok.any():
        add_note(ax, "no finite density value")
    _set_spectrum_scale(ax, xscale)
    ax.set_xlabel("eigenvalue" + (" (symmetric log scale)" if ax.get_xscale() == "symlog"
                                  else ""))
    ax.set_ylabel("density")
    ax.set_title("Hessian eigenvalue density", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return ax


def compare_densities(
    spectra: Mapping[str, tuple[Any, Any]],
    *,
    layout: str = "panels",
    log: bool = True,
    eigenvalues: Mapping[str, Sequence[float] | None] | None = None,
) -> Figure:
    """Eigenvalue densities of several networks: one panel each with its own x-axis and a
    shared y-axis (``"panels"``), or overlaid on one symmetric-log x-axis (``"overlay"``).

    Parameters
    ----------
    spectra : mapping of str to (grid, density)
        Per network.
    layout : {"panels", "overlay"}, default="panels"
    log : bool, default=True
        Log y-axis (see :func:`plot_density`).
    eigenvalues : mapping of str to sequence of float, optional
        Top eigenvalues per network.

    Returns
    -------
    Figure
    """
    check_option("layout", layout, ("panels", "overlay"))
    if not spectra:
        raise LandscapeError("compare_densities needs at least one spectrum")
    eig = dict(eigenvalues or {})
    names = list(spectra)
    if layout == "overlay":
        fig = new_figure((6.4, 4.2))
        ax = fig.add_subplot()
        for i, name in enumerate(names):
            g, d = spectra[name]
            before = len(ax.lines)
            plot_density(g, d, ax=ax, log=log, eigenvalues=eig.get(name), xscale="auto")
            for ln in ax.lines[before:]:
                ln.set_color(f"C{i % 10}")
                if ln.get_label() and not ln.get_label().startswith("_"):
                    ln.set_label(f"{name}: {ln.get_label()}")
        ax.legend(loc="best", fontsize=8)
        ax.set_title("Hessian eigenvalue densities", fontsize=10)
        return fig
    fig = new_figure((3.6 * len(names) + 0.6, 3.6))
    axes = fig.subplots(1, len(names), squeeze=False, sharey=True)[0]
    for a, name in zip(axes, names, strict=True):
        g, d = spectra[name]
        plot_density(g, d, ax=a, log=log, eigenvalues=eig.get(name), xscale="auto")
        a.set_title(str(name), fontsize=10)
        if a is not axes[0]:
            a.set_ylabel("")
    return fig


def plot_block_spectra(spectra: Any, *, log: bool = True, ncols: int = 4,
                       xscale: str = "linear") -> Figure:
    """Per-block eigenvalue densities as small multiples on one grid and one y-axis.

    Parameters
    ----------
    spectra : BlockSpectra
        From :func:`~landscape.hessian.compute_block_spectra` (or ``BlockSpectra.load``).
    log : bool, default=True
        Log y-axis (see :func:`plot_density`).
    ncols : int, default=4
        Panels per row.
    xscale : {"auto", "linear", "symlog"}, default="linear"
        x-scale of every panel (they share the common grid of the densities).

    Returns
    -------
    Figure
        One panel per block (its density, its top eigenvalues dashed); the title names the
        operator and the heterogeneity.

    References
    ----------
    Y. Zhang, C. Chen, T. Ding, Z. Li, R. Sun, Z.-Q. Luo, "Why transformers need Adam: a
    Hessian perspective", NeurIPS 2024.
    """
    from ..errors import check_int
    from ..hessian.ggn import operator_label

    ncols = check_int("ncols", ncols, 1)
    names = list(spectra.block_names)
    if not names:
        raise LandscapeError("plot_block_spectra needs at least one block")
    cols = min(ncols, len(names))
    rows = math.ceil(len(names) / cols)
    fig = new_figure((2.9 * cols + 0.4, 2.5 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).ravel()
    for i, (a, name) in enumerate(zip(axes, names, strict=False)):
        plot_density(spectra.density_grid, spectra.densities[i], ax=a, log=log,
                     eigenvalues=spectra.top_eigenvalues[i], xscale=xscale)
        a.set_title(f"{name} ({int(spectra.n_params[i]):,})", fontsize=9)
        if a.get_legend() is not None:
            a.get_legend().remove()
        if i % cols:
            a.set_ylabel("")
        if i < len(names) - cols:
            a.set_xlabel("")
        else:  # the lowest panel of its column: its tick labels too (sharex hides them)
            a.xaxis.set_tick_params(labelbottom=True)
    for a in axes[len(names):]:
        a.set_visible(False)
    h = spectra.heterogeneity
    het = f"heterogeneity {h:.3f} (mean pairwise JS distance)" if math.isfinite(h) else \
        "heterogeneity undefined"
    fig.suptitle(f"Per-block {operator_label(spectra.operator)} eigenvalue densities: {het}",
                 fontsize=10)
    return fig
