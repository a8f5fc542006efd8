"""Shard files of a grid analysis, merged into the file one process would have written.

A surface computed with ``shard=(i, n)`` (:func:`landscape.surface.compute_surface`; CLI
``landscape surface --shard I/N``) holds the points of shard ``i`` -- every ``n``-th point in
raster order from the ``i``-th, the assignment torchrun ranks get within one job -- in a file of
its own, resumable like any other: the ``n`` shards can run as a job array, a loop of processes
or on separate machines sharing a filesystem. :func:`merge_shards` checks that the files belong
together (the same recipe apart from ``shard``, the same directions, the same evaluation batch
size and subset check, ``n`` agreeing, distinct shards, disjoint ``done`` masks with every point
in its own shard) and writes the union: every array, standard error and sample count taken from
the shard that computed the point, the recipe without ``shard`` and the provenance of the lowest
shard. When every shard is complete and shared the provenance of a single run, the merged file
equals that run's bit for bit (its ``created`` time apart); a merge of some shards is a partial
file that a run without ``shard`` resumes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from ._atomic import holds_output
from ._grid import recipe_differences, shard_points
from .errors import LandscapeError
from .surface import Surface

__all__ = ["merge_shards"]


def _shard_of(s: Surface, path: str) -> tuple[int, int]:
    shard = s.recipe.get("shard")
    if not (isinstance(shard, list) and len(shard) == 2
            and all(isinstance(v, int) for v in shard) and 0 <= shard[0] < shard[1]):
        raise LandscapeError(
            f"'{path}' is not a shard file (its surface's recipe has no 'shard' entry); "
            "compute shards with shard=(i, n)"
        )
    return int(shard[0]), int(shard[1])


def _check_together(surfaces: Sequence[Surface], paths: Sequence[str]) -> list[tuple[int, int]]:
    """The shards' ``(i, n)``; a :class:`LandscapeError` where the files do not belong
    together."""
    shards = [_shard_of(s, p) for s, p in zip(surfaces, paths, strict=True)]
    first, p0 = surfaces[0], paths[0]
    plain0 = {k: v for k, v in first.recipe.items() if k != "shard"}
    for s, p, (i, n) in zip(surfaces, paths, shards, strict=True):
        if n != shards[0][1]:
            raise LandscapeError(
                f"'{p}' is shard {i} of {n} but '{p0}' is shard {shards[0][0]} of "
                f"{shards[0][1]}; merge the shards of one split of the grid"
            )
        plain = {k: v for k, v in s.recipe.items() if k != "shard"}
        diff = recipe_differences(plain0, plain)
        if diff:
            raise LandscapeError(
                f"'{p}' and '{p0}' were computed with different recipes (differ in: "
                f"{', '.join(diff)}); merge shards of one computation"
            )
        d0, d = first.directions, s.directions
        if (d0 is None) != (d is None) or (d is not None and d.digest() != d0.digest()):
            raise LandscapeError(f"'{p}' and '{p0}' hold different directions")
        for key in ("batch_size_used",):
            if s.provenance.get(key) != first.provenance.get(key):
                raise LandscapeError(
                    f"'{p}' and '{p0}' were evaluated with different batch sizes "
                    f"({s.provenance.get(key)} and {first.provenance.get(key)}): their values "
                    "would differ in rounding; compute the shards with one batch size"
                )
        if s.subset_check != first.subset_check:
            raise LandscapeError(f"'{p}' and '{p0}' hold different subset checks")
    seen: dict[int, str] = {}
    for p, (i, _) in zip(paths, shards, strict=True):
        if i in seen:
            raise LandscapeError(f"'{p}' and '{seen[i]}' are both shard {i}; pass each once")
        seen[i] = p
    return shards


def _check_masks(surfaces: Sequence[Surface], paths: Sequence[str],
                 shards: Sequence[tuple[int, int]]) -> None:
    union = np.zeros(surfaces[0].done.shape, dtype=bool)
    owner = np.full(union.size, -1)
    for j, (s, p, (i, n)) in enumerate(zip(surfaces, paths, shards, strict=True)):
        done = np.asarray(s.done, dtype=bool)
        if s.done_per_array is not None:
            raise LandscapeError(f"'{p}' has per-array masks; it is not a shard file")
        flat = done.reshape(-1)
        theirs = np.zeros(flat.size, dtype=bool)
        theirs[shard_points(range(flat.size), i, n)] = True
        stray = np.flatnonzero(flat & ~theirs)
        if stray.size:
            raise LandscapeError(
                f"'{p}' (shard {i} of {n}) holds point {int(stray[0])}, which is not one of its "
                "shard's points; it was not written by a shard run"
            )
        both = np.flatnonzero(flat & union.reshape(-1))
        if both.size:
            raise LandscapeError(
                f"'{p}' and '{paths[int(owner[both[0]])]}' both hold point {int(both[0])}; the "
                "done masks of shards must be disjoint"
            )
        owner[flat] = j
        union |= done


def _union(surfaces: Sequence[Surface], names: Sequence[str], attr: str) -> dict[str, Any] | None:
    """Arrays of ``attr`` (``arrays``, ``stderrs``, ``counts``) filled from the shard that
    computed each point; ``None`` where the shards have none."""
    parts = [getattr(s, attr) for s in surfaces]
    if any(p is None for p in parts):
        if not all(p is None for p in parts):
            raise LandscapeError(f"some shards hold {attr} and others not")
        return None
    out = {}
    for k in names:
        base = np.array(parts[0][k], copy=True)
        for s, part in zip(surfaces[1:], parts[1:], strict=True):
            done = np.asarray(s.done, dtype=bool)
            base[done] = np.asarray(part[k])[done]
        out[k] = base
    return out


@holds_output("out")
def merge_shards(out: str | os.PathLike, shards: Sequence[str | os.PathLike], *,
                 overwrite: bool = False) -> Surface:
    """Merge the surface files of shards ``(i, n)`` into one file (see the module docstring).

    Parameters
    ----------
    out : path
        The merged file. An existing file is refused unless ``overwrite`` (only landscape
        files are ever replaced); it must not be one of ``shards``.
    shards : sequence of paths
        Shard files of one computation, in any order (any subset of the ``n`` shards).
    overwrite : bool, default=False
        Replace an existing ``out``.

    Returns
    -------
    Surface
        The merged surface (as written).

    Raises
    ------
    LandscapeError
        When a file is not a shard file, the files' recipes (apart from ``shard``),
        directions, batch sizes or subset checks differ, two files are the same shard, or
        their done masks overlap.
    """
    paths = [str(p) for p in shards]
    if not paths:
        raise LandscapeError("The 'shards' parameter must name at least one shard file.")
    if any(Path(p).resolve() == Path(out).resolve() for p in paths):
        raise LandscapeError(f"The 'out' file '{out}' is one of the shards; choose another")
    storage.check_writable(out, overwrite=overwrite)
    if Path(out).exists() and not overwrite:
        raise LandscapeError(
            f"'{out}' exists; pass overwrite=True to replace it or choose "
            "another output file"
        )
    surfaces = [Surface.load(p) for p in paths]
    order = np.argsort([_shard_of(s, p)[0] for s, p in zip(surfaces, paths, strict=True)],
                       kind="stable")
    surfaces = [surfaces[int(k)] for k in order]
    paths = [paths[int(k)] for k in order]
    found = _check_together(surfaces, paths)
    for s, p in zip(surfaces[1:], paths[1:], strict=True):
        if not (np.array_equal(s.x, surfaces[0].x) and (
                (s.y is None and surfaces[0].y is None) or np.array_equal(s.y, surfaces[0].y))):
            raise LandscapeError(f"'{p}' and '{paths[0]}' have different grid coordinates")
    _check_masks(surfaces, paths, found)
    first = surfaces[0]
    names = sorted(first.arrays)
    done = np.logical_or.reduce([np.asarray(s.done, dtype=bool) for s in surfaces])
    arrays = _union(surfaces, names, "arrays")
    stderrs = _union(surfaces, sorted(first.stderrs), "stderrs") or {}
    counts = _union(surfaces, sorted(first.counts or {}), "counts")
    recipe = {k: v for k, v in first.recipe.items() if k != "shard"}
    merged = Surface(x=first.x, y=first.y, arrays=arrays or {}, done=done,
                     directions=first.directions, recipe=recipe,
                     provenance=dict(first.provenance), stderrs=stderrs,
                     subset_check=first.subset_check, counts=counts)
    merged.save(out, overwrite=overwrite)
    return merged
