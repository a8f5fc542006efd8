"""``landscape plot``: every picture a result file can give, written beside it.

The picture kinds are a table (:data:`FIGURE_KINDS`): for each kind, what it needs from the
file (a 2D surface, a trajectory, a ratio map, an eigenvalue density) and how to draw it. The
file is read only through :func:`landscape.results.open` (each result loaded by its own class,
at most once); this module imports neither the file layer nor h5py.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import make_output_dir
from ..errors import LandscapeError, check_option
from ..results import RESULT_KINDS
from ..results import open as open_results
from ._output import check_out_dir
from ._style import array_values, default_array
from .export import FORMATS, export_plotly_html, export_vtp, save_figure
from .surfaces import plot_1d, plot_3d, plot_contour

if TYPE_CHECKING:
    from ..hessian.ratio_map import RatioMap
    from ..hessian.results import CurvatureResult
    from ..surface import Surface
    from ..trajectory import Trajectory

_SET_GROUP = RESULT_KINDS["surface_set"].group
_HESSIAN_GROUP = RESULT_KINDS["hessian_surface"].group

__all__ = ["FILE_KINDS", "FIGURE_KINDS", "SURFACE_KINDS", "FigureKind", "plot_file"]


# --------------------------------------------------------------------------- what a file holds
class _Results:
    """The results of one file, each loaded by its own class at most once.

    The surface drawn is the file's ``/surface``; a file with a surface set (``/surfaces``)
    and no ``/surface`` draws the set's mean surface (:meth:`SurfaceSet.mean
    <landscape.surface_set.SurfaceSet.mean>`), and ``caption`` says so.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open_results(path)
        self.groups = self.file.groups
        self.surface = self.file.get("surface")
        self.surface_set = self.file.get("surface_set")
        self.caption = ""
        if self.surface is None and self.surface_set is not None:
            self.surface = self.surface_set.mean()
            self.caption = f"mean of {self.surface_set.n_members} direction pairs"

    def member(self, k: int) -> _Results:
        """These results with member ``k`` of the surface set as the surface."""
        assert self.surface_set is not None
        r = copy.copy(self)
        r.surface = self.surface_set.member(k)
        seeds = r.surface.directions.recipe.get("seeds") if r.surface.directions else None
        r.caption = f"direction pair {k}" + (f", seeds {', '.join(map(str, seeds))}"
                                             if isinstance(seeds, list) else "")
        return r

    def trajectory(self) -> Trajectory | None:
        return self.file.get("trajectory")

    def ratio_map(self) -> RatioMap | None:
        return self.file.get("ratio_map")

    def curvature(self) -> CurvatureResult | None:
        return self.file.get("curvature")

    def hessian_surface(self) -> Surface | None:
        return self.file.get("hessian_surface")

    def block_spectra(self) -> Any:
        return self.file.get("block_spectra")


@dataclass(frozen=True)
class _Options:
    array: str | None  # as given
    name2d: str | None  # the surface array of 2D pictures and exports
    log_levels: bool


# --------------------------------------------------------------------------- needs
def _needs_surface(ndim: int, r: _Results) -> str | None:
    if r.surface is None:
        return f"it has no /surface or /{_SET_GROUP} group"
    if r.surface.ndim != ndim:
        use = "1d" if ndim == 2 else "contour, contourf, heatmap or 3d"
        return (f"it needs a {ndim}D surface and holds a {r.surface.ndim}D one "
                f"(use the 'kinds' parameter: {use})")
    return None


def _needs_trajectory(r: _Results) -> str | None:
    t = r.trajectory()
    if t is None:
        return ("it has no /trajectory group (write one with "
                "TrajectoryPCA(...).fit(checkpoints).save(path))")
    if t.coords.shape[1] < 2:
        return f"its trajectory has {t.coords.shape[1]} component; the picture needs 2"
    return None


def _needs_ratio_map(r: _Results) -> str | None:
    if r.ratio_map() is None:
        return "it has no /ratio_map group (compute one with compute_ratio_map())"
    return None


def _needs_density(r: _Results) -> str | None:
    c = r.curvature()
    if c is None:
        return "it has no /curvature group (compute one with compute_curvature(density=True))"
    if c.density is None or c.density_grid is None:
        return ("its /curvature group has no eigenvalue density (datasets 'density_grid' and "
                "'density'; compute them with compute_curvature(density=True))")
    return None


def _needs_hessian_surface(r: _Results) -> str | None:
    if r.hessian_surface() is None:
        return (f"it has no /{_HESSIAN_GROUP} group (compute one with "
                "compute_hessian_surface())")
    return None


def _needs_blocks(r: _Results) -> str | None:
    if r.block_spectra() is None:
        return ("it has no /block_spectra group (compute one with "
                "compute_block_spectra())")
    return None


# --------------------------------------------------------------------------- drawing
def _draw_2d(kind: str, r: _Results, o: _Options) -> Any:
    return plot_contour(r.surface, array=o.name2d, kind=kind,  # type: ignore[arg-type]
                        log_levels=o.log_levels)


def _draw_3d(r: _Results, o: _Options) -> Any:
    return plot_3d(r.surface, array=o.name2d)  # type: ignore[arg-type]


def _draw_1d(r: _Results, o: _Options) -> Any:
    if o.array is None:
        return plot_1d(r.surface, log=o.log_levels)  # type: ignore[arg-type]
    split, _, what = o.array.rpartition("_")
    return plot_1d(r.surface, metric="acc" if what == "acc" else "loss",  # type: ignore[arg-type]
                   splits=[split], log=o.log_levels)


def _draw_trajectory(r: _Results, o: _Options) -> Any:
    t = r.trajectory()
    assert t is not None  # checked by _needs_trajectory
    s = r.surface
    return t.plot(surface=s if s is not None and s.ndim == 2 else None,
                  array=o.name2d or "train_loss")


def _draw_ratio_map(r: _Results, o: _Options) -> Any:
    rm = r.ratio_map()
    assert rm is not None  # checked by _needs_ratio_map
    return rm.plot(surface=r.surface)


def _draw_hessian_surface(r: _Results, o: _Options) -> Any:
    h = r.hessian_surface()
    assert h is not None  # checked by _needs_hessian_surface
    if h.ndim == 1:
        return plot_1d(h, log=o.log_levels)
    name = o.name2d if o.name2d in h.arrays else default_array(h)
    ax = plot_contour(h, array=name, kind="contourf", log_levels=o.log_levels)
    ax.set_title(f"{ax.get_title()} (Hessian directions)".strip(), fontsize=10)
    return ax


def _needs_persistence(r: _Results) -> str | None:
    from ..topology import gudhi_missing_reason

    if r.surface is None:
        return f"it has no /surface or /{_SET_GROUP} group"
    return gudhi_missing_reason()


def _draw_persistence(r: _Results, o: _Options) -> Any:
    from ..topology import surface_persistence
    from .topology import plot_persistence

    s = r.surface
    assert s is not None  # checked by _needs_persistence
    name = o.name2d if o.name2d in s.arrays else default_array(s)
    ax = plot_persistence(surface_persistence(s, name))  # type: ignore[arg-type]
    ax.set_title(f"{ax.get_title()}\n{name}", fontsize=10)
    return ax


def _draw_density(r: _Results, o: _Options) -> Any:
    c = r.curvature()
    assert c is not None  # checked by _needs_density
    return c.plot()


def _draw_blocks(r: _Results, o: _Options) -> Any:
    return r.block_spectra().plot()


@dataclass(frozen=True)
class FigureKind:
    """One picture kind of :func:`plot_file`.

    Attributes
    ----------
    name : str
        The ``--kind`` name; the picture is written as ``<stem>_<name>.<fmt>``.
    needs : callable
        ``needs(results) -> str | None``: why the file cannot give this picture (``None`` when
        it can). Kinds whose needs are met are drawn by default.
    draw : callable
        ``draw(results, options) -> Figure | Axes``.
    default : bool
        Drawn when no kinds are asked for (and its needs are met).
    """

    name: str
    needs: Callable[[_Results], str | None] = field(repr=False)
    draw: Callable[[_Results, _Options], Any] = field(repr=False)
    default: bool = True


#: The table "kind -> what it needs -> how to draw it", in the order pictures are written.
FIGURE_KINDS: dict[str, FigureKind] = {k.name: k for k in (
    FigureKind("contour", partial(_needs_surface, 2), partial(_draw_2d, "contour")),
    FigureKind("contourf", partial(_needs_surface, 2), partial(_draw_2d, "contourf")),
    FigureKind("heatmap", partial(_needs_surface, 2), partial(_draw_2d, "heatmap")),
    FigureKind("3d", partial(_needs_surface, 2), _draw_3d),
    FigureKind("1d", partial(_needs_surface, 1), _draw_1d),
    FigureKind("trajectory", _needs_trajectory, _draw_trajectory),
    FigureKind("ratio", _needs_ratio_map, _draw_ratio_map),
    FigureKind("density", _needs_density, _draw_density),
    FigureKind("hessian", _needs_hessian_surface, _draw_hessian_surface),
    FigureKind("blocks", _needs_blocks, _draw_blocks),
    FigureKind("persistence", _needs_persistence, _draw_persistence, default=False),
)}
#: Picture kinds of :func:`plot_file` (and ``landscape plot --kind``).
FILE_KINDS = tuple(FIGURE_KINDS)
#: The kinds that draw the surface: drawn per member of a surface set with ``members``.
SURFACE_KINDS = ("contour", "contourf", "heatmap", "3d", "1d")


def _with_caption(picture: Any, caption: str) -> Any:
    """``picture`` (an Axes or a Figure) with ``caption`` added to its (first) title."""
    if caption:
        ax = picture if hasattr(picture, "set_title") else picture.axes[0]
        first, newline, rest = ax.get_title().partition("\n")
        first = f"{first} ({caption})" if first else caption
        ax.set_title(first + newline + rest, fontsize=ax.title.get_fontsize())
    return picture


# --------------------------------------------------------------------------- plot_file
def _chosen_kinds(r: _Results, kinds: Sequence[str] | None) -> list[FigureKind]:
    """The requested kinds (checked against the file), or every kind the file can give."""
    if kinds is None:
        chosen = [k for k in FIGURE_KINDS.values() if k.default and k.needs(r) is None]
        if not chosen:
            raise LandscapeError(
                f"'{r.path}' holds nothing to draw: no /surface, /trajectory, /ratio_map, "
                f"/curvature, /hessian_surface, /block_spectra or /{_SET_GROUP} group with a "
                "picture in it"
            )
        return chosen
    names = list(dict.fromkeys(kinds))
    for name in names:
        check_option("kind", name, FILE_KINDS)
    chosen = [FIGURE_KINDS[name] for name in names]
    for k in chosen:
        why = k.needs(r)
        if why is not None:
            raise LandscapeError(f"'{r.path}' cannot be drawn as kinds={k.name!r}: {why}")
    return chosen


def _options(r: _Results, array: str | None, log_levels: bool) -> _Options:
    s = r.surface
    if array is not None and s is not None:
        array_values(s, array)  # an unknown array is an error
        if s.ndim == 1 and "_" not in array:
            raise LandscapeError("The 'array' parameter must name a <split>_loss/_acc "
                                 f"array. Got {array!r} instead.")
    name2d = array or (default_array(s) if s is not None else None)
    return _Options(array=array, name2d=name2d, log_levels=bool(log_levels))


def _check_plotly() -> None:
    try:
        found = importlib.util.find_spec("plotly") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise LandscapeError("plotly is not installed; pip install 'landscape[interactive]'")


def _output_dir(src: Path, out_dir: str | os.PathLike | None) -> Path:
    return make_output_dir(out_dir if out_dir is not None else
                           (src.parent if str(src.parent) else Path(".")))


def _check_targets(src: Path, targets: Sequence[Path]) -> None:
    for t in targets:
        if t.resolve() == src.resolve():
            raise LandscapeError(f"refusing to overwrite the input file '{src}' with a picture")
        check_out_dir(t)


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
    members: bool = False,
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
        Among :data:`FILE_KINDS`. Default: every kind the file can give (``contour,
        contourf, heatmap, 3d`` for a 2D surface, ``1d`` for a 1D one, ``trajectory`` for a
        ``/trajectory``, ``ratio`` for a ``/ratio_map``, ``density`` for a ``/curvature``
        with an eigenvalue density, ``hessian`` for a ``/hessian_surface``: filled contours
        along the Hessian's eigenvectors). ``persistence`` (the persistence diagram of the
        surface array, :func:`~landscape.plot.plot_persistence`; needs gudhi) only when asked.
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
    members : bool, default=False
        For a file with a surface set (``/surfaces``, from ``landscape surface ...
        --n-directions K``): also draw the surface kinds (``contour``, ``contourf``,
        ``heatmap``, ``3d``, ``1d``) of every member, as ``<stem>_m<k>_<kind>.<fmt>``. A file
        whose only surface is a set draws the set's mean surface (over the members) as its
        surface, with or without ``members``.

    Returns
    -------
    list of Path
        The files written, in order.

    Raises
    ------
    LandscapeError
        For an unreadable file, a kind the file cannot give (naming the missing group or
        result), an unknown array, a path that would overwrite the input, or an unwritable
        output directory.
    """
    src = Path(path)
    check_option("fmt", fmt, FORMATS)
    if not isinstance(members, bool | np.bool_):
        raise LandscapeError(f"The 'members' parameter must be a bool. Got {members!r} "
                             "instead.")
    r = _Results(src)
    if members and r.surface_set is None:
        raise LandscapeError(
            f"'{src}' has no /{_SET_GROUP} group: members are those of a surface set (compute "
            "one with compute_surface_set())"
        )
    chosen = _chosen_kinds(r, kinds)
    opts = _options(r, array, log_levels)
    if (vtp or html) and (r.surface is None or r.surface.ndim != 2):
        raise LandscapeError(
            f"vtp=True and html=True export a 2D surface; '{src}' "
            + ("has no /surface group" if r.surface is None else "holds a 1D one")
        )
    if html:
        _check_plotly()
    out = _output_dir(src, out_dir)
    pictures = [(r, k, out / f"{src.stem}_{k.name}.{fmt}") for k in chosen]
    if members:
        assert r.surface_set is not None
        set_ndim = r.surface_set.ndim
        per_member = [k for k in chosen if k.name in SURFACE_KINDS
                      and (k.name == "1d") == (set_ndim == 1)]
        if not per_member:
            raise LandscapeError(
                f"'{src}' holds a {set_ndim}D surface set; members=True draws it with the "
                "'kinds' parameter set to "
                + ("1d" if set_ndim == 1 else "contour, contourf, heatmap or 3d")
            )
        pictures += [(r.member(m), k, out / f"{src.stem}_m{m}_{k.name}.{fmt}")
                     for m in range(r.surface_set.n_members) for k in per_member]
    exports = [(fn, out / f"{src.stem}_{opts.name2d}.{ext}")
               for fn, ext, wanted in ((export_vtp, "vtp", vtp), (export_plotly_html, "html", html))
               if wanted]
    _check_targets(src, [t for _, _, t in pictures] + [t for _, t in exports])
    written = [save_figure(_with_caption(k.draw(rk, opts),
                                         rk.caption if k.name in SURFACE_KINDS else ""),
                           target, dpi=dpi)
               for rk, k, target in pictures]
    for export, target in exports:
        written.append(export(r.surface, target, array=opts.name2d))  # type: ignore[arg-type]
    return written
