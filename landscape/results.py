"""Results that open themselves: the registry of stored result kinds and :func:`open`.

Every analysis stores its result as one top-level HDF5 group whose layout belongs to one result
class (``Surface`` owns ``/surface``, ``CurvatureResult`` owns ``/curvature``, ...). This
module is the one table that says which class owns which group; readers of files
(``landscape plot``, ``landscape info``, the comparison report, notebooks) go through
:func:`open` instead of guessing from group names themselves.

The table names classes by dotted path and imports them on first use, so importing this module
imports no analysis (and closes no import circle).

Examples
--------
>>> import landscape as ls                                          # doctest: +SKIP
>>> f = ls.open("resnet20.h5")                                      # doctest: +SKIP
>>> sorted(f)                                  # the result kinds the file holds  # doctest: +SKIP
['curvature', 'surface']
>>> f["curvature"].top_eigenvalues                                  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import storage
from .errors import LandscapeError

__all__ = ["ResultKind", "RESULT_KINDS", "ResultFile", "open", "result_kind"]


@dataclass(frozen=True)
class ResultKind:
    """One kind of stored result: its group, the class that owns it, and how to load it.

    Parameters
    ----------
    name : str
        The kind's name (the key of :data:`RESULT_KINDS` and of :class:`ResultFile`).
    group : str
        The top-level HDF5 group holding it.
    owner : str
        ``"module:Class"`` of the class whose ``load`` reads the group.
    load_kwargs : tuple of (str, Any)
        Keyword arguments of ``Class.load`` beyond the path (e.g. the group of a surface
        stored under another name).
    title : str
        A few words for listings.
    """

    name: str
    group: str
    owner: str
    load_kwargs: tuple[tuple[str, Any], ...] = ()
    title: str = ""

    def owner_class(self) -> type:
        """The owning class (imported on first use)."""
        module, _, cls = self.owner.partition(":")
        return getattr(importlib.import_module(module), cls)

    def load(self, path: str | os.PathLike) -> Any:
        """Load this kind's result from ``path`` with its owner's ``load``."""
        return self.owner_class().load(path, **dict(self.load_kwargs))


def _mechanism(name: str, group: str, cls: str, title: str) -> ResultKind:
    return ResultKind(name, group, f"landscape.mechanisms.{cls}", (("name", group),), title)


#: Every stored result kind, by name. The order is the order of listings.
RESULT_KINDS: dict[str, ResultKind] = {k.name: k for k in (
    ResultKind("surface", "surface", "landscape.surface:Surface", (), "loss surface"),
    ResultKind("surface_set", "surfaces", "landscape.surface_set:SurfaceSet", (),
               "surfaces along several direction sets"),
    ResultKind("hessian_surface", "hessian_surface", "landscape.surface:Surface",
               (("group", "hessian_surface"),), "surface along Hessian eigenvectors"),
    ResultKind("trajectory", "trajectory", "landscape.trajectory:Trajectory", (),
               "optimizer path in PCA coordinates"),
    ResultKind("curvature", "curvature", "landscape.hessian.results:CurvatureResult", (),
               "Hessian eigenvalues, trace and density"),
    ResultKind("ratio_map", "ratio_map", "landscape.hessian.ratio_map:RatioMap", (),
               "|lambda_min/lambda_max| over a surface's grid"),
    ResultKind("block_spectra", "block_spectra", "landscape.hessian.blocks:BlockSpectra", (),
               "per-block spectra and their heterogeneity"),
    ResultKind("connectivity", "connect", "landscape.connect:Connectivity", (),
               "loss along a line and a curve between two minima"),
    _mechanism("lesion", "lesion", "lesion:LesionResult", "single-block lesions"),
    _mechanism("paths", "path_lengths", "paths:PathLengthResult", "effective path lengths"),
    _mechanism("gradflow", "gradflow", "gradflow:GradFlowResult", "gradient flow per block"),
    _mechanism("gradflow_init", "gradflow_init", "gradflow:GradFlowResult",
               "gradient flow per block at initialization"),
    _mechanism("dilution", "dilution", "dilution:DilutionResult", "k-dilution"),
    _mechanism("shatter", "shattering", "shatter:ShatterResult", "shattered gradients"),
    _mechanism("sharpening", "sharpening", "sharpening:SharpeningResult",
               "progressive sharpening"),
    _mechanism("gates", "gates", "gates:GateResult", "highway gates' openness"),
)}


def result_kind(name: str) -> ResultKind:
    """The registered kind ``name`` (raises :class:`LandscapeError` naming the known ones)."""
    try:
        return RESULT_KINDS[name]
    except KeyError:
        raise LandscapeError(f"unknown result kind {name!r}; known: "
                             f"{', '.join(RESULT_KINDS)}") from None


@dataclass
class ResultFile(Mapping[str, Any]):
    """The results one file holds, by kind name; each is loaded (and validated) on first access.

    A read-only mapping: ``"curvature" in f``, ``f["curvature"]``, ``f.get("trajectory")``,
    ``list(f)`` (the kinds present, in :data:`RESULT_KINDS` order). A surface file written by
    Li et al.'s scripts holds one kind, ``"surface"``.

    Attributes
    ----------
    path : str
        The file.
    file_kind : str
        ``"landscape"`` or ``"li2018"`` (a surface file of Li et al.).
    groups : tuple of str
        Its top-level groups (empty for Li et al.'s files).
    """

    path: str
    file_kind: str
    groups: tuple[str, ...]
    _kinds: tuple[str, ...] = field(repr=False, default=())
    _cache: dict[str, Any] = field(repr=False, default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name not in self._kinds:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = RESULT_KINDS[name].load(self.path)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def mechanisms(self) -> dict[str, Any]:
        """The mechanism results present, by analysis name (each loaded)."""
        return {k: self[k] for k in self._kinds
                if RESULT_KINDS[k].owner.startswith("landscape.mechanisms.")}


def open(path: str | os.PathLike) -> ResultFile:  # noqa: A001 - the public name is the verb
    """Open a result file: every result it holds, each as its own class, loaded on access.

    Parameters
    ----------
    path : str or os.PathLike
        A landscape HDF5 file, or a surface file of Li et al.

    Returns
    -------
    ResultFile
        A mapping from kind name (:data:`RESULT_KINDS`) to the loaded result.

    Raises
    ------
    LandscapeError
        If the file cannot be read or is neither a landscape file nor a surface file of
        Li et al.
    """
    p = str(path)
    kind = storage.file_kind(p)
    if kind == "li2018":
        return ResultFile(p, kind, (), ("surface",))
    groups = tuple(storage.list_groups(p))
    present = [k.name for k in RESULT_KINDS.values() if k.group in groups]
    return ResultFile(p, kind, groups, tuple(present))
