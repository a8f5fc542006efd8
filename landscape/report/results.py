"""Reading one network's result files into :class:`NetworkResults`.

Every part is read through :func:`landscape.results.open` (the registry of result kinds, each
loaded by its own class); the report never reads an HDF5 group or dataset by name itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LandscapeError
from ..results import ResultFile
from ..results import open as open_results
from ._utils import is_pca

if TYPE_CHECKING:
    from ..connect import Connectivity
    from ..hessian.blocks import BlockSpectra
    from ..hessian.ratio_map import RatioMap
    from ..hessian.results import CurvatureResult
    from ..surface import Surface
    from ..surface_set import SurfaceSet
    from ..trajectory import Trajectory

__all__ = ["NetworkResults", "load_results"]


@dataclass(frozen=True)
class NetworkResults:
    """What one network's file(s) hold (each part ``None`` when absent).

    Attributes
    ----------
    name : str
        Column name in the report.
    path : str
        The file, as given (several files joined with ``" + "``).
    surface : Surface or None
        ``/surface`` (or a surface file of Li et al.), along random or interpolation
        directions.
    trajectory : Trajectory or None
        ``/trajectory``.
    curvature : CurvatureResult or None
        ``/curvature``.
    ratio_map : RatioMap or None
        ``/ratio_map``.
    pca_surface : Surface or None
        A surface along the trajectory's PCA directions (drawn under the optimizer path).
    surface_set : SurfaceSet or None
        ``/surfaces``: K surfaces along independent direction pairs (the report's spread
        over directions). Without a ``/surface``, its first member is ``surface``.
    mechanisms : dict
        Mechanism results by analysis name (:func:`landscape.mechanisms.load_results`:
        ``lesion``, ``paths``, ``gradflow``, ``dilution``, ``shatter``, ``sharpening``).
    connectivity : Connectivity or None
        ``/connect``: loss along the line and a curve to a second minimum.
    hessian_surface : Surface or None
        ``/hessian_surface``: a surface along Hessian eigenvectors (the report's
        "Hessian-direction slices"; never used as ``surface``).
    block_spectra : BlockSpectra or None
        ``/block_spectra``: per-block curvature spectra and their heterogeneity.
    """

    name: str
    path: str
    surface: Surface | None = None
    trajectory: Trajectory | None = None
    curvature: CurvatureResult | None = None
    ratio_map: RatioMap | None = None
    pca_surface: Surface | None = None
    surface_set: SurfaceSet | None = None
    mechanisms: dict[str, Any] = field(default_factory=dict)
    connectivity: Connectivity | None = None
    hessian_surface: Surface | None = None
    block_spectra: BlockSpectra | None = None


def load_results(path: str | os.PathLike | ResultFile | NetworkResults
                 | Sequence[str | os.PathLike | ResultFile],
                 name: str | None = None) -> NetworkResults:
    """Read everything :func:`~landscape.report.compare` uses from one network's file(s).

    Parameters
    ----------
    path : str, os.PathLike, ResultFile or NetworkResults, or a sequence of files
        A landscape HDF5 file (or a surface file of Li et al.) or one opened with
        :func:`landscape.open`, results already read (returned, renamed to ``name`` when
        given), or several files of the same network that are merged: the first file
        holding a group wins, except that a surface along PCA directions (from
        :func:`~landscape.trajectory.compute_trajectory`) is kept apart as ``pca_surface``
        (drawn under the optimizer path) and never used as ``surface``.
    name : str, optional
        Column name; default the file's stem.

    Returns
    -------
    NetworkResults

    Raises
    ------
    LandscapeError
        If a file cannot be read, a group is damaged, or a file holds none of ``/surface``,
        ``/trajectory``, ``/curvature``, ``/ratio_map``.
    """
    if isinstance(path, NetworkResults):
        return path if name is None else replace(path, name=name)
    if not isinstance(path, str | os.PathLike | ResultFile):
        parts = [load_results(q, name) for q in path]
        if not parts:
            raise LandscapeError("no file given for a network")
        found: dict[str, Any] = {}
        for r in parts:
            for surf in (r.surface, r.pca_surface):
                if surf is not None:
                    found.setdefault("pca_surface" if is_pca(surf) else "surface", surf)
            for key in ("trajectory", "curvature", "ratio_map", "surface_set", "connectivity",
                        "hessian_surface", "block_spectra"):
                if getattr(r, key) is not None:
                    found.setdefault(key, getattr(r, key))
            for name, m in r.mechanisms.items():
                found.setdefault("mechanisms", {}).setdefault(name, m)
        return NetworkResults(parts[0].name, " + ".join(r.path for r in parts), **found)
    f = path if isinstance(path, ResultFile) else open_results(path)
    p = f.path
    name = Path(p).stem if name is None else name
    found = {k: f[k] for k in ("surface", "trajectory", "curvature", "ratio_map", "surface_set",
                               "connectivity", "hessian_surface", "block_spectra") if k in f}
    if "surface" not in found and "surface_set" in found:
        found["surface"] = found["surface_set"].member(0)  # seed 0: the default single surface
    mechanisms = f.mechanisms()
    if not found and not mechanisms:
        raise LandscapeError(
            f"'{p}' holds nothing to compare: no /surface, /surfaces, /trajectory, /curvature, "
            "/ratio_map, /connect, /hessian_surface, /block_spectra or mechanism group"
        )
    return NetworkResults(name, p, mechanisms=mechanisms, **found)
