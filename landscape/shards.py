"""Shard files of a grid analysis, merged into the file one process would have written.

A grid analysis computed with ``shard=(i, n)`` -- a surface
(:func:`landscape.surface.compute_surface`; CLI ``landscape surface --shard I/N``), a surface
set (:func:`landscape.surface_set.compute_surface_set`; ``landscape surface --n-directions K
--shard I/N``), a ratio map (:func:`landscape.hessian.compute_ratio_map`; ``landscape hessian
--grid S.h5 --no-warm-start --shard I/N``) or a connectivity result
(:func:`landscape.connect.compute_connectivity`; ``landscape connect --shard I/N``) -- holds
the points of shard ``i`` -- every ``n``-th point in raster order from the ``i``-th, the
assignment torchrun ranks get within one job -- in a file of its own, resumable like any other:
the ``n`` shards can run as a job array, a loop of processes or on separate machines sharing a
filesystem. :func:`merge_shards` finds the kind of the files through the registry of stored
results (:func:`landscape.results.open`), checks that they belong together (one kind, the
same recipe apart from ``shard``, ``n`` agreeing, distinct shards, what the kind's shards
share -- directions, grid, evaluation batch size, subset check, a connectivity result's
trained bends --, disjoint ``done`` masks with every point in its own shard) and writes the
union: every per-point array taken from the shard that computed the point, the recipe without
``shard`` and everything else from the lowest shard. When every shard is complete and shared
the provenance of a single run, the merged file equals that run's bit for bit (its ``created``
time apart); a merge of some shards is a partial file that a run without ``shard`` resumes.

What differs between kinds is one :class:`ShardKind` each in :data:`SHARD_KINDS`: its
per-point arrays and what its shards must share; the checks and the union are written once.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from ._atomic import holds_output
from ._grid import recipe_differences, shard_points
from .errors import LandscapeError

__all__ = ["SHARD_KINDS", "ShardKind", "merge_shards"]


@dataclass(frozen=True)
class ShardKind:
    """What merging the shard files of one result kind needs to know about it.

    Parameters
    ----------
    what : str
        How messages name one result (``"surface"``).
    fields : tuple of str
        The result's dataclass fields laid out like its ``done`` mask (an array, or a dict of
        arrays, or ``None``): the merge takes each point from the shard that computed it.
    shared : callable
        ``shared(result) -> {name: value}``: what every shard of one computation holds alike
        beyond the recipe (compared exactly, arrays bit for bit); ``name`` completes "hold
        different ...".
    refuse : callable
        ``refuse(result) -> str or None``: why a file of this kind cannot be merged (the rest
        of a sentence after the file's name), ``None`` when it can.
    """

    what: str
    fields: tuple[str, ...]
    shared: Callable[[Any], Mapping[str, Any]]
    refuse: Callable[[Any], str | None] = lambda result: None


def _grid(r: Any) -> tuple[Any, Any]:
    return r.x, r.y


def _surface_refuse(s: Any) -> str | None:
    return "has per-array masks; it is not a shard file" if s.done_per_array is not None \
        else None


def _connect_refuse(c: Any) -> str | None:
    if "curve" in c.paths and not c.curve_trained:
        return (f"has not finished training its curve (step {c.trained_steps} of "
                f"{c.recipe.get('steps')}); resume it as the same shard before merging")
    return None


#: What a difference in a shared value means, where the name alone does not say it.
_MEANING = {
    "evaluation batch sizes": "their values would differ in rounding; compute the shards with "
                              "one batch size",
    "bends": "each shard trains them, and machines whose rounding differs train different "
             "ones; compute the shards on one kind of machine",
}

#: The mergeable kinds, by their name in :data:`landscape.results.RESULT_KINDS`.
SHARD_KINDS: dict[str, ShardKind] = {
    "surface": ShardKind(
        "surface", ("arrays", "stderrs", "counts"),
        lambda s: {"directions": None if s.directions is None else s.directions.digest(),
                   "grid coordinates": _grid(s),
                   "evaluation batch sizes": s.provenance.get("batch_size_used"),
                   "subset checks": s.subset_check},
        _surface_refuse),
    "surface_set": ShardKind(
        "surface set", ("arrays", "stderrs"),
        lambda s: {"directions": [d.digest() for d in s.directions], "seeds": s.seeds,
                   "grid coordinates": _grid(s),
                   "evaluation batch sizes": s.provenance.get("batch_size_used"),
                   "subset checks": s.subset_check}),
    "ratio_map": ShardKind(
        "ratio map", ("lambda_max", "lambda_min", "ratio", "n_hvp", "converged", "status"),
        lambda m: {"grid coordinates": _grid(m)}),
    "connectivity": ShardKind(
        "connectivity result", ("arrays", "stderrs"),
        lambda c: {"t grids": c.t, "paths": c.paths, "tensors": c.tensors,
                   "bends": c.bends,
                   "curve trainings": (c.trained_steps, c.fit_history),
                   "numbers of classes": c.num_classes},
        _connect_refuse),
}


def _same(a: Any, b: Any) -> bool:
    """Exact equality of nested values (arrays bit for bit, NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _shard_result(path: str) -> tuple[str, Any, tuple[int, int]]:
    """The kind, the result and the ``(i, n)`` of the one sharded result in ``path``."""
    from .results import open as open_results

    f = open_results(path)
    found = []
    for name in (k for k in f if k in SHARD_KINDS):
        result = f[name]
        shard = result.recipe.get("shard")
        if shard is not None:
            found.append((name, result, shard))
    if not found:
        raise LandscapeError(
            f"'{path}' is not a shard file (it holds no surface, surface set, ratio map or "
            "connectivity result whose recipe has a 'shard' entry); compute shards with "
            "shard=(i, n)")
    if len(found) > 1:
        raise LandscapeError(
            f"'{path}' holds shards of several kinds ({', '.join(k for k, _, _ in found)}); "
            "merge files that hold one")
    name, result, shard = found[0]
    if not (isinstance(shard, list) and len(shard) == 2
            and all(isinstance(v, int) for v in shard) and 0 <= shard[0] < shard[1]):
        raise LandscapeError(f"'{path}' has a damaged recipe: its 'shard' entry is {shard!r}")
    return name, result, (int(shard[0]), int(shard[1]))


def _check_together(kind: ShardKind, results: Sequence[Any], paths: Sequence[str],
                    shards: Sequence[tuple[int, int]]) -> None:
    """A :class:`LandscapeError` where the files do not belong together."""
    first, p0, (i0, n0) = results[0], paths[0], shards[0]
    plain0 = {k: v for k, v in first.recipe.items() if k != "shard"}
    shared0 = kind.shared(first)
    for r, p, (i, n) in zip(results, paths, shards, strict=True):
        if n != n0:
            raise LandscapeError(
                f"'{p}' is shard {i} of {n} but '{p0}' is shard {i0} of {n0}; merge the "
                "shards of one split of the grid"
            )
        diff = recipe_differences(plain0, {k: v for k, v in r.recipe.items() if k != "shard"})
        if diff:
            raise LandscapeError(
                f"'{p}' and '{p0}' were computed with different recipes (differ in: "
                f"{', '.join(diff)}); merge shards of one computation"
            )
        for name, value in kind.shared(r).items():
            if not _same(value, shared0[name]):
                why = f": {_MEANING[name]}" if name in _MEANING else ""
                raise LandscapeError(f"'{p}' and '{p0}' hold different {name}{why}")
        if r.done.shape != first.done.shape or any(
                _layout(r, f) != _layout(first, f) for f in kind.fields):
            raise LandscapeError(f"'{p}' and '{p0}' hold different arrays")
    seen: dict[int, str] = {}
    for p, (i, _) in zip(paths, shards, strict=True):
        if i in seen:
            raise LandscapeError(f"'{p}' and '{seen[i]}' are both shard {i}; pass each once")
        seen[i] = p


def _layout(r: Any, field: str) -> Any:
    """The names of a field's arrays (``None``: it has none; ``""``: one array)."""
    v = getattr(r, field)
    return None if v is None else sorted(v) if isinstance(v, dict) else ""


def _check_masks(results: Sequence[Any], paths: Sequence[str],
                 shards: Sequence[tuple[int, int]]) -> None:
    """Every point in its own shard, no point in two files."""
    size = results[0].done.size
    owner = np.full(size, -1)
    for j, (r, p, (i, n)) in enumerate(zip(results, paths, shards, strict=True)):
        flat = np.asarray(r.done, dtype=bool).reshape(-1)
        theirs = np.zeros(size, dtype=bool)
        theirs[shard_points(range(size), i, n)] = True
        stray = np.flatnonzero(flat & ~theirs)
        if stray.size:
            raise LandscapeError(
                f"'{p}' (shard {i} of {n}) holds point {int(stray[0])}, which is not one of its "
                "shard's points; it was not written by a shard run"
            )
        both = np.flatnonzero(flat & (owner >= 0))
        if both.size:
            raise LandscapeError(
                f"'{p}' and '{paths[int(owner[both[0]])]}' both hold point {int(both[0])}; the "
                "done masks of shards must be disjoint"
            )
        owner[flat] = j


def _union(results: Sequence[Any], field: str) -> Any:
    """Field ``field`` of the first result with every point taken from the shard that
    computed it (``None`` where the results have none)."""

    def fill(parts: Sequence[np.ndarray]) -> np.ndarray:
        base = np.array(parts[0], copy=True)
        for r, part in zip(results[1:], parts[1:], strict=True):
            done = np.asarray(r.done, dtype=bool)
            base[done] = np.asarray(part)[done]
        return base

    values = [getattr(r, field) for r in results]
    if values[0] is None:
        return None
    if isinstance(values[0], dict):
        return {k: fill([v[k] for v in values]) for k in values[0]}
    return fill(values)


@holds_output("out")
def merge_shards(out: str | os.PathLike, shards: Sequence[str | os.PathLike], *,
                 overwrite: bool = False) -> Any:
    """Merge the shard files of one grid computation into one file (see the module docstring).

    Parameters
    ----------
    out : path
        The merged file. An existing file is refused unless ``overwrite`` (only landscape
        files are ever replaced); it must not be one of ``shards``.
    shards : sequence of paths
        Shard files of one computation, in any order (any subset of the ``n`` shards): each
        holds a surface, a surface set, a ratio map or a connectivity result computed with
        ``shard=(i, n)``.
    overwrite : bool, default=False
        Replace an existing ``out``.

    Returns
    -------
    Surface, SurfaceSet, RatioMap or Connectivity
        The merged result (as written), of the shards' kind.

    Raises
    ------
    LandscapeError
        When a file is not a shard file, the files hold different kinds, their recipes
        (apart from ``shard``), directions, grids, batch sizes, subset checks or (connectivity)
        bends differ, two files are the same shard, or their done masks overlap.
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
    found = [_shard_result(p) for p in paths]
    name0 = found[0][0]
    for (name, _, _), p in zip(found, paths, strict=True):
        if name != name0:
            raise LandscapeError(
                f"'{p}' holds a {SHARD_KINDS[name].what} shard but '{paths[0]}' a "
                f"{SHARD_KINDS[name0].what} shard; merge the shards of one computation")
    order = np.argsort([i for _, _, (i, _) in found], kind="stable")
    paths = [paths[int(k)] for k in order]
    results = [found[int(k)][1] for k in order]
    split = [found[int(k)][2] for k in order]
    kind = SHARD_KINDS[name0]
    for r, p in zip(results, paths, strict=True):
        why = kind.refuse(r)
        if why is not None:
            raise LandscapeError(f"'{p}' {why}")
    _check_together(kind, results, paths, split)
    _check_masks(results, paths, split)
    first = results[0]
    merged = dataclasses.replace(
        first, done=np.logical_or.reduce([np.asarray(r.done, dtype=bool) for r in results]),
        recipe={k: v for k, v in first.recipe.items() if k != "shard"},
        provenance=dict(first.provenance),
        **{f: _union(results, f) for f in kind.fields})
    merged.save(out, overwrite=overwrite)
    return merged
