"""The report's figures, drawn with :mod:`landscape.plot`'s public functions, with captions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._utils import is_pca

if TYPE_CHECKING:
    from .render import Report

__all__ = ["draw_figures"]


def _recolor(lines: list, color: str, name: str) -> None:
    for ln in lines:
        label = str(ln.get_label())
        if label.startswith("diverged"):
            continue
        ln.set_color(color)
        if label.startswith("test"):
            ln.set_linestyle("--")
        ln.set_label(f"{name}: {label}")


def _names(res: list) -> str:
    names = [r.name for r in res]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def draw_figures(report: Report, out: Path, *, dpi: int) -> list[tuple[str, str]]:
    """Side-by-side / overlaid pictures of every network.

    Returns
    -------
    list of (str, str)
        The file names written in ``out`` and a one-sentence caption of each.
    """
    from matplotlib.collections import QuadMesh
    from matplotlib.figure import Figure

    from .. import plot

    res = list(report.results)
    array = report.parameters.get("array", "train_loss")
    what = array.replace("_", " ")
    written: list[tuple[str, str]] = []

    def save(fig: Any, name: str, caption: str) -> None:
        plot.save_figure(fig, out / name, dpi=dpi)
        written.append((name, caption))

    colors = [f"C{i}" for i in range(10)]
    surf = [r for r in res if r.surface is not None and array in r.surface.arrays]
    two = [r for r in surf if r.surface.ndim == 2]  # type: ignore[union-attr]
    if two:
        for kind in ("contour", "contourf"):
            fig = plot.compare_panels([r.surface for r in two], titles=[r.name for r in two],
                                      array=array, kind=kind)
            look = "Contour lines" if kind == "contour" else "Filled contours"
            save(fig, f"surface_{kind}.png",
                 f"{look} of the {what} of {_names(two)} around the trained weights θ* "
                 "(the origin) along two filter-normalized directions, on shared levels and "
                 "one colour scale.")
    hess = [r for r in res if r.hessian_surface is not None and r.hessian_surface.ndim == 2
            and array in r.hessian_surface.arrays]
    if hess:
        fig = plot.compare_panels([r.hessian_surface for r in hess],  # type: ignore[misc]
                                  titles=[f"{r.name}: Hessian directions" for r in hess],
                                  array=array, kind="contourf")
        save(fig, "hessian_surface.png",
             f"Filled contours of the {what} of {_names(hess)} around θ* along Hessian "
             "eigenvectors (x: λmax; y: the second eigenvalue, or λmin for a top/bottom "
             "slice), on shared levels and one colour scale: the curvature that random "
             "slices miss.")
    one = [r for r in surf if r.surface.ndim == 1]  # type: ignore[union-attr]
    if one:
        fig = Figure(figsize=(7.0, 4.8), layout="constrained")
        ax = fig.add_subplot()
        for i, r in enumerate(one):
            before = len(ax.lines)
            plot.plot_1d(r.surface, metric="loss", ax=ax, twin=False)  # type: ignore[arg-type]
            _recolor(ax.lines[before:], colors[i % 10], r.name)
        ax.legend(loc="best", fontsize=8, framealpha=0.7)
        ax.set_title("1D surfaces (shared axes)", fontsize=10)
        save(fig, "surface_1d.png",
             f"Loss of {_names(one)} along one direction through θ* (the origin), on shared "
             "axes; dashed lines are test losses, markers diverged points.")
    traj = [r for r in res if r.trajectory is not None]
    if traj:
        unders = [r.pca_surface or (r.surface if (
            r.surface is not None and r.surface.ndim == 2 and array in r.surface.arrays
            and is_pca(r.surface)) else None) for r in traj]
        fig = plot.compare_trajectories(
            [r.trajectory.coords for r in traj], surfaces=unders,  # type: ignore[union-attr]
            titles=[f"{r.name}: optimizer path" for r in traj], array=array,
            explained_variance_ratios=[r.trajectory.explained_variance_ratio  # type: ignore[union-attr]
                                       for r in traj],
            epochs=[r.trajectory.epochs for r in traj])  # type: ignore[union-attr]
        save(fig, "trajectory.png",
             f"Optimizer path of {_names(traj)} through the checkpoints, each projected on "
             "the first two principal components of its own path (axis labels give their "
             "explained variance), over the loss on that plane where it was computed, on "
             "shared contour levels and one colour scale.")
    maps = [r for r in res if r.ratio_map is not None]
    if maps:
        ratios = []
        for r in maps:
            rm = r.ratio_map
            v = np.abs(np.asarray(rm.ratio, dtype=np.float64))  # type: ignore[union-attr]
            ratios.append(np.where(np.asarray(rm.done, bool), v, np.nan))  # type: ignore[union-attr]
        finite = np.concatenate([v[np.isfinite(v)].ravel() for v in ratios])
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        fig = Figure(figsize=(4.6 * len(maps) + 1.0, 4.2), layout="constrained")
        axes = fig.subplots(1, len(maps), squeeze=False)[0]
        threshold = report.parameters.get("ratio_threshold")
        for a, r, v in zip(axes, maps, ratios, strict=True):
            rm = r.ratio_map
            plot.plot_ratio_map(rm.x, rm.y if v.ndim == 2 else None, v,  # type: ignore[union-attr]
                                ax=a, threshold=threshold, done=rm.done)  # type: ignore[union-attr]
            for m in a.collections:
                if isinstance(m, QuadMesh):
                    m.set_clim(0.0, top)
            if v.ndim == 1:
                a.set_ylim(0.0, top * 1.05)
            note = "" if rm.complete else f", incomplete ({rm.n_done}/{rm.n_points})"  # type: ignore[union-attr]
            a.set_title(f"{r.name}: |λmin/λmax|{note}", fontsize=10)
        save(fig, "ratio_map.png",
             f"|λmin/λmax| of the Hessian on a coarse grid around θ* for {_names(maps)}, on "
             "one colour scale (Li et al. 2018: small values look convex, "
             + (f"below {threshold:g} as counted in the table; " if threshold is not None
                else "") + "large ones mark strong negative curvature).")
    dens = [r for r in res if r.curvature is not None
            and r.curvature.density is not None and r.curvature.density_grid is not None]
    if dens:
        fig = plot.compare_densities(
            {r.name: (r.curvature.density_grid, r.curvature.density)  # type: ignore[union-attr]
             for r in dens},
            eigenvalues={r.name: r.curvature.top_eigenvalues for r in dens})  # type: ignore[union-attr]
        save(fig, "density.png",
             f"Eigenvalue density of the Hessian at θ* for {_names(dens)} (stochastic "
             "Lanczos quadrature, Gaussian-smoothed), one panel per network with its own "
             "eigenvalue axis and a shared density axis.")
    mech = {r.name: r.mechanisms for r in res if r.mechanisms}
    if mech:
        from ..mechanisms import plot as mplot

        captions = {
            "lesion": "Test error after deleting blocks (Veit et al. 2016): one block at a time "
                      "and k random blocks, every network on one axis.",
            "paths": "Gradient reaching the input per path length (branches taken), times the "
                     "number of such paths (Veit et al. 2016, Sec. 4.2).",
            "gradflow": "Gradient norms and block Jacobian spectral norms by depth.",
            "dilution": "k-dilution of each block and the gradient scale coefficient "
                        "(Philipp et al. 2018).",
            "shatter": "Autocorrelation of input gradients along a line of inputs, by depth "
                       "(Balduzzi et al. 2017).",
            "sharpening": "λmax along training against the stability threshold 2/η and "
                          "(2 + 2β)/η (Cohen et al. 2021).",
            "gates": "Mean transform-gate openness T per highway layer (1 - T is carried; "
                     "Srivastava et al. 2015).",
        }
        for name, fn in (("lesion", "plot_lesion"), ("paths", "plot_path_lengths"),
                         ("gradflow", "plot_gradflow"), ("dilution", "plot_dilution"),
                         ("shatter", "plot_shatter"), ("sharpening", "plot_sharpening"),
                         ("gates", "plot_gates")):
            per_net = {n: m[name] for n, m in mech.items() if name in m}
            if per_net:
                ax = getattr(mplot, fn)(per_net)
                save(ax.figure, f"mechanisms_{name}.png", captions[name])
    conn = [r for r in res if r.connectivity is not None]
    if conn:
        from ..connect import plot_connectivity

        fig = Figure(figsize=(5.2 * len(conn), 4.0), layout="constrained")
        axes = fig.subplots(1, len(conn), squeeze=False)[0]
        for a, r in zip(axes, conn, strict=True):
            plot_connectivity(r.connectivity, ax=a)  # type: ignore[arg-type]
            a.set_title(f"{r.name}: from one minimum to another", fontsize=10)
        save(fig, "connectivity.png",
             f"Loss along the straight line and along a trained Bezier curve between two "
             f"independently trained minima of {_names(conn)} (t = 0 and 1), with BatchNorm "
             "statistics recomputed at every t; the legend gives each barrier.")
    return written
