"""Reading one network's result files into :class:`NetworkResults`.

Every part is read through its result class: :meth:`Surface.load
<landscape.surface.Surface.load>`, :meth:`Trajectory.load <landscape.trajectory.Trajectory.load>`,
:meth:`CurvatureResult.load <landscape.hessian.results.CurvatureResult.load>` and
:meth:`RatioMap.load <landscape.hessian.ratio_map.RatioMap.load>`; the report never reads an
HDF5 dataset by name itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import storage
from ..connect import GROUP as CONNECT_GROUP
from ..connect import Connectivity
from ..errors import LandscapeError
from ..hessian.blocks import GROUP as BLOCKS_GROUP
from ..hessian.blocks import BlockSpectra
from ..hessian.directions import HESSIAN_GROUP
from ..hessian.ratio_map import RatioMap
from ..hessian.results import CurvatureResult
from ..mechanisms import RESULTS as MECHANISM_RESULTS
from ..mechanisms import load_results as load_mechanisms
from ..surface import Surface
from ..surface_set import SurfaceSet
from ..trajectory import Trajectory
from ._utils import is_pca

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


def load_results(path: str | os.PathLike | Sequence[str | os.PathLike],
                 name: str | None = None) -> NetworkResults:
    """Read everything :func:`~landscape.report.compare` uses from one network's file(s).

    Parameters
    ----------
    path : str or os.PathLike, or a sequence of them
        A landscape HDF5 file (or a surface file of Li et al.), or several files of the same
        network that are merged: the first file holding a group wins, except that a surface
        along PCA directions (from ``landscape trajectory --surface``) is kept apart as
        ``pca_surface`` (drawn under the optimizer path) and never used as ``surface``.
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
    if not isinstance(path, str | os.PathLike):
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
    p = str(path)
    name = Path(p).stem if name is None else name
    if storage.file_kind(p) == "li2018":
        return NetworkResults(name, p, surface=Surface.load(p))
    groups = storage.list_groups(p)
    surface = Surface.load(p) if "surface" in groups else None
    trajectory = Trajectory.load(p) if "trajectory" in groups else None
    curvature = CurvatureResult.load(p) if "curvature" in groups else None
    ratio_map = RatioMap.load(p) if "ratio_map" in groups else None
    surface_set = SurfaceSet.load(p) if "surfaces" in groups else None
    if surface is None and surface_set is not None:
        surface = surface_set.member(0)  # seed 0: the default single surface
    mech_groups = {cls.GROUP for cls in MECHANISM_RESULTS.values()}
    mechanisms = load_mechanisms(p) if mech_groups & set(groups) else {}
    connectivity = Connectivity.load(p) if CONNECT_GROUP in groups else None
    hessian = Surface.load(p, HESSIAN_GROUP) if HESSIAN_GROUP in groups else None
    blocks = BlockSpectra.load(p) if BLOCKS_GROUP in groups else None
    if surface is None and trajectory is None and curvature is None and ratio_map is None \
            and surface_set is None and not mechanisms and connectivity is None \
            and hessian is None and blocks is None:
        raise LandscapeError(
            f"'{p}' holds nothing to compare: no /surface, /surfaces, /trajectory, /curvature, "
            "/ratio_map, /connect, /hessian_surface, /block_spectra or mechanism group"
        )
    return NetworkResults(name, p, surface, trajectory, curvature, ratio_map,
                          surface_set=surface_set, mechanisms=mechanisms,
                          connectivity=connectivity, hessian_surface=hessian,
                          block_spectra=blocks)
