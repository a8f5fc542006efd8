"""The grid runner: one loop for every analysis laid out on a grid of points.

A grid analysis (a loss surface, a ratio map, a surface on a trajectory's PC plane, ...) is a
result object with a ``done`` mask plus a way to compute one point. :class:`GridRunner` owns
everything else, once:

- the *todo list*: the points whose ``done`` flag is not set, in the analysis' visiting order,
  cut to ``max_points``;
- *sharding* under ``torch.distributed`` (``torchrun``): ``"strided"`` (rank ``r`` of ``w``
  takes ``todo[r::w]``) or ``"contiguous"`` (one block of the order per rank, for analyses whose
  points warm-start from their predecessor); after each round of ``points_per_round`` points
  the results are gathered, every rank records all of them and rank 0 alone writes. Inside the
  loop :func:`points_sharded` is true: each rank computes its own points, so operators built
  there (a ratio map's Hessians) use the whole data on each rank instead of averaging over
  ranks (see :class:`~landscape.hessian.HessianOperator`'s ``distributed``);
- *flushing*: the file is written at most every ``flush_seconds`` and always at the end, also
  when the run is interrupted (Ctrl-C, SIGTERM): finished points are never lost;
- *progress*: a tqdm bar with ETA on rank 0, and one line with the estimated time of the whole
  run after the first point when it is long (:data:`LONG_RUN_SECONDS`).

Resume and the overwrite rule live in the analyses' ``start`` (they differ in what must match:
a surface's recipe, a ratio map's recipe and its surface), which every subclass gets from
:func:`resume_or_refuse`.

A subclass writes the method that computes a point (:meth:`GridRunner.compute`), the one that
records its result (:meth:`GridRunner.record`) and the one that writes the file
(:meth:`GridRunner.save`); see ``docs/architecture.md`` for where to add a new grid analysis.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import LandscapeError, note_interruption

__all__ = ["GridProgress", "GridRunner", "MetricsRunner", "LONG_RUN_SECONDS", "STDERR_SUFFIX",
           "agree", "all_reduce_sum", "available_memory", "check_fits_in_memory",
           "check_grid_fits", "dist_info",
           "format_duration", "metric_array_names", "new_stderrs", "pending",
           "physical_memory", "points_sharded", "recipe_differences", "resume_or_refuse",
           "shard_bounds", "stderr_name", "count_name", "new_counts", "check_shard",
           "shard_points"]

#: A run whose estimated time exceeds this many seconds gets a line with the estimate and
#: what makes it shorter.
LONG_RUN_SECONDS = 600.0

SHARDINGS = ("strided", "contiguous")


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised default process group, else ``(0, 1)``."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        return tdist.get_rank(), tdist.get_world_size()
    return 0, 1


def agree(value: int) -> int:
    """Rank 0's value on every rank (identity outside torch.distributed)."""
    _, world = dist_info()
    if world == 1:
        return value
    import torch.distributed as tdist

    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return int(box[0])


def all_reduce_sum(t: Any) -> Any:
    """Sum a tensor over the ranks of the default process group, in place; returns it.

    Identity outside ``torch.distributed``. Every rank receives the same bits: gloo's and
    NCCL's all-reduce reduce each chunk once (ring: reduce-scatter then all-gather; tree:
    reduce then broadcast) and copy the result to every rank (checked in
    ``tests/test_distributed.py``), which is what lets each rank run the same solver.
    """
    _, world = dist_info()
    if world > 1:
        import torch.distributed as tdist

        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t


def shard_bounds(n: int, world: int) -> list[tuple[int, int]]:
    """Contiguous, balanced split of ``n`` items over ``world`` ranks: rank ``r`` holds
    ``[r * n // world, (r + 1) * n // world)`` (sizes differ by at most one)."""
    return [(r * n // world, (r + 1) * n // world) for r in range(world)]


def check_shard(shard: Any) -> tuple[int, int]:
    """``shard`` as ``(i, n)``: shard ``i`` of ``n`` (``0 <= i < n``), else a
    :class:`LandscapeError` naming the parameter."""
    ok = (isinstance(shard, tuple | list) and len(shard) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
          and shard[1] >= 1 and 0 <= shard[0] < shard[1])
    if not ok:
        raise LandscapeError(
            f"The 'shard' parameter must be a pair (i, n) of ints with 0 <= i < n. Got "
            f"{shard!r} instead."
        )
    return int(shard[0]), int(shard[1])


def shard_points(order: Iterable[int], i: int, n: int) -> list[int]:
    """The points of shard ``i`` of ``n``: every ``n``-th point of the visiting ``order``
    from the ``i``-th -- the strided assignment of torchrun ranks (:meth:`GridRunner._mine`)
    over every point of the grid, finished or not, so that a shard's points never change
    between runs."""
    return list(order)[i::n]


_POINTS_SHARDED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "landscape_points_sharded", default=False)


def points_sharded() -> bool:
    """Whether the caller runs inside :meth:`GridRunner.run`'s loop, where every rank computes
    its own grid points (so nothing computed there may be averaged over ranks)."""
    return _POINTS_SHARDED.get()


@contextlib.contextmanager
def _sharding_points() -> Iterator[None]:
    token = _POINTS_SHARDED.set(True)
    try:
        yield
    finally:
        _POINTS_SHARDED.reset(token)


def recipe_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Top-level keys whose values differ between two recipes."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def resume_or_refuse(path: Any, old: Mapping[str, Any], new: Mapping[str, Any],
                     *, subject: str = "was") -> None:
    """The overwrite rule: a file may be resumed only with the recipe it was computed with.

    Raises
    ------
    LandscapeError
        Naming the recipe entries that differ and the ways out (``overwrite`` or another
        output file).
    """
    diff = recipe_differences(old, new)
    if diff:
        raise LandscapeError(
            f"'{path}' {subject} computed with a different recipe (differs in: "
            f"{', '.join(diff)}); pass overwrite=True to replace it or choose another out=PATH"
        )


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or ``None`` where it cannot be told."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not available on this platform
        return None


def available_memory() -> int | None:
    """Memory this system reports available now (``MemAvailable`` of ``/proc/meminfo``, in
    bytes), or ``None`` where it cannot be told."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return None


def check_fits_in_memory(need: int, what: str, fix: str, *, available: bool = False) -> None:
    """Refuse work whose arrays alone (``need`` bytes) would not fit in this machine's memory.

    Called with user-given counts before anything is allocated, so that a count with a few
    zeros too many is one clear error instead of a run that the kernel kills later.

    Parameters
    ----------
    need : int
        Bytes the arrays need.
    what : str
        What needs them, for the message (``"the grid has 1,000 points; its arrays"``).
    fix : str
        What to do instead (``"use fewer points"``).
    available : bool, default=False
        Compare with the memory available now (:func:`available_memory`; the physical memory
        where that cannot be told) instead of the physical memory.

    Raises
    ------
    LandscapeError
        If ``need`` exceeds the physical (or available) memory.
    """
    now = available_memory() if available else None
    total = now if now is not None else physical_memory()
    if total is not None and need > total:
        where = "available now" if now is not None else "of memory"
        raise LandscapeError(
            f"{what} need {need / 2**30:,.1f} GiB, more than this machine's "
            f"{total / 2**30:,.1f} GiB {where} -- {fix}"
        )


#: Bytes per grid point besides the float64 arrays: the ``done`` mask (1) and the runner's todo
#: list of Python ints (an 8-byte pointer and a 28-32-byte int each) with this rank's slice of
#: it (8).
_POINT_OVERHEAD = 1 + 40 + 8


def check_grid_fits(n_points: int, n_arrays: int, *, what: str = "the grid",
                    fix: str = "use fewer points", extra: int = 0) -> None:
    """Refuse a grid analysis of ``n_points`` points whose arrays would not fit in memory.

    Counts ``n_arrays`` float64 arrays of ``n_points`` values and the copy of each made when
    the result is written, the ``done`` mask and the runner's todo list, plus ``extra`` bytes
    (e.g. the directions of a surface set); see :func:`check_fits_in_memory`.
    """
    need = n_points * (2 * 8 * n_arrays + _POINT_OVERHEAD) + extra
    check_fits_in_memory(need, f"{what} has {n_points:,} points; its arrays", fix)


def pending(done: np.ndarray, max_points: int | None = None,
            order: Iterable[int] | None = None) -> list[int]:
    """Flat indices of the unfinished points of ``done`` in ``order`` (default: raster),
    cut to ``max_points``."""
    flat = np.asarray(done, dtype=bool).reshape(-1)
    todo = [int(i) for i in (range(flat.size) if order is None else order) if not flat[i]]
    return todo if max_points is None else todo[:max_points]


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min"``, ``"1 h 32 min"``."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


class GridProgress:
    """Completion of a result laid out on a grid (needs a boolean ``done`` array)."""

    done: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """``(ny, nx)`` or ``(nx,)``."""
        return tuple(self.done.shape)

    @property
    def n_points(self) -> int:
        """Total number of grid points."""
        return int(self.done.size)

    @property
    def n_done(self) -> int:
        """Number of computed points."""
        return int(self.done.sum())

    @property
    def complete(self) -> bool:
        """Whether every point has been computed."""
        return bool(self.done.all())


class GridRunner(ABC):
    """Base class of grid analyses: owns the loop; a subclass computes and records a point.

    Parameters
    ----------
    done : np.ndarray of bool
        The result's completion mask (any shape; flat raster indices address it). The runner
        reads it, :meth:`record` sets it.
    out : path or None
        File written by :meth:`save` (``None``: nothing is written).
    progress : bool
        Progress bar with ETA (rank 0 only).
    flush_seconds : float
        Write at most this often (and always at the end).
    max_points : int or None
        Stop after this many new points (the file stays resumable).
    desc : str
        Label of the progress bar and of the time estimate.
    sharding : {"strided", "contiguous"}
        How ranks share the todo list under ``torch.distributed``.
    points_per_round : int
        Points a rank computes between two gatherings.
    hint : str
        What makes a long run shorter (printed with the estimate of a long run).
    shard : (int, int) or None
        ``(i, n)``: compute only shard ``i`` of ``n`` (:func:`shard_points` of the raster
        order), e.g. into a file of its own that :func:`landscape.shards.merge_shards` joins
        with the others.
    """

    def __init__(self, done: np.ndarray, *, out: Any, progress: bool, flush_seconds: float,
                 max_points: int | None, desc: str, sharding: str = "strided",
                 points_per_round: int = 4,
                 hint: str = "use a coarser grid or a data subset",
                 shard: tuple[int, int] | None = None) -> None:
        if sharding not in SHARDINGS:
            raise LandscapeError(f"sharding must be one of {SHARDINGS}; got {sharding!r}")
        self.done = done
        self.out = out
        self.progress = progress
        self.flush_seconds = flush_seconds
        self.max_points = max_points
        self.desc = desc
        self.sharding = sharding
        self.points_per_round = points_per_round
        self.hint = hint
        self.shard = None if shard is None else check_shard(shard)
        self.n_computed = 0  # points computed (on any rank) and recorded in this run
        self.bar: Any = None

    # ------------------------------------------------------------------ subclass API
    def order(self) -> Sequence[int]:
        """Flat indices in visiting order (default: raster order)."""
        return range(self.done.size)

    @abstractmethod
    def compute(self, index: int) -> Any:
        """Compute point ``index``; return a picklable payload for :meth:`record`."""

    @abstractmethod
    def record(self, index: int, payload: Any) -> None:
        """Store ``payload`` of point ``index`` in the result and set its ``done`` flag."""

    @abstractmethod
    def save(self) -> None:
        """Write the result to :attr:`out` (called on rank 0 only, with ``out`` set)."""

    def postfix(self) -> str | None:
        """Extra text of the progress bar after a round (e.g. HVPs per point)."""
        return None

    # ------------------------------------------------------------------ the loop
    def todo(self) -> list[int]:
        """Unfinished points (of :attr:`shard`) in visiting order, cut to ``max_points``.

        A shard's points are those of :func:`shard_points` over the raster order whatever
        the visiting order (a ratio map visits in serpentine order), so that
        :func:`landscape.shards.merge_shards` checks every kind's files alike."""
        order = self.order()
        if self.shard is not None:
            mine = set(shard_points(range(self.done.size), *self.shard))
            order = [p for p in order if p in mine]
        return pending(self.done, self.max_points, order)

    def _mine(self, todo: list[int], rank: int, world: int,
              per_round: int) -> tuple[list[int], int]:
        """This rank's points and the number of rounds every rank runs."""
        if self.sharding == "strided":
            mine = todo[rank::world]
            per_rank = -(-len(todo) // world)
        else:
            per_rank = -(-len(todo) // world)
            mine = todo[rank * per_rank:(rank + 1) * per_rank]
        return mine, -(-per_rank // per_round)

    def run(self) -> None:
        """Compute every point of :meth:`todo` and write :attr:`out` as the run goes."""
        todo = self.todo()
        if not todo:
            return
        from tqdm.auto import tqdm

        rank, world = dist_info()
        # Rounds exist for gathering; one process records (and may flush) after every point.
        per_round = self.points_per_round if world > 1 else 1
        mine, n_rounds = self._mine(todo, rank, world, per_round)
        flat_done = self.done.reshape(-1)
        self.bar = tqdm(total=flat_done.size, initial=int(flat_done.sum()),
                        disable=not self.progress or rank != 0, desc=self.desc, unit="pt",
                        dynamic_ncols=True)
        last = time.monotonic()
        started = time.perf_counter()
        try:
            for r in range(n_rounds):
                chunk = mine[r * per_round:(r + 1) * per_round]
                with _sharding_points():  # each rank its own points: nothing averaged
                    results = [(i, self.compute(i)) for i in chunk]
                if world > 1:
                    import torch.distributed as tdist

                    gathered: list[object] = [None] * world
                    tdist.all_gather_object(gathered, results)
                    results = [it for part in gathered for it in part]  # type: ignore[union-attr]
                self._record_all(results)
                if r == 0:
                    self._estimate(time.perf_counter() - started, len(todo), len(results))
                if (rank == 0 and self.out is not None
                        and time.monotonic() - last >= self.flush_seconds):
                    self.save()
                    last = time.monotonic()
        except KeyboardInterrupt as exc:  # the finally below saves the finished points
            saved = self.out is not None and bool(flat_done.any())
            note_interruption(exc, "finished work is saved" if saved else None, resumable=True)
            raise
        finally:
            self.bar.close()
            if rank == 0 and self.out is not None and self.n_computed:
                self.save()
        if world > 1:
            import torch.distributed as tdist

            tdist.barrier()

    def _record_all(self, results: Iterable[tuple[int, Any]]) -> None:
        n = 0
        for i, payload in results:
            self.record(i, payload)
            n += 1
        self.n_computed += n
        self.bar.update(n)
        text = self.postfix()
        if text:
            self.bar.set_postfix_str(text, refresh=False)

    def _estimate(self, seconds: float, n_todo: int, n_first: int) -> None:
        """After the first round: one line with the estimated time when the run is long."""
        rank, world = dist_info()
        if rank != 0 or not self.progress or n_first == 0 or n_todo <= n_first:
            return
        per_point = seconds * world / n_first
        eta = per_point * (n_todo - n_first) / world
        if eta >= LONG_RUN_SECONDS:
            self.bar.write(
                f"{self.desc}: about {format_duration(eta)} for {n_todo - n_first:,} more "
                f"points ({per_point:.3g} s per point); {self.hint} to make it shorter",
                file=sys.stderr,
            )


def metric_array_names(data: Mapping[str, Any]) -> list[str]:
    """The arrays a :class:`MetricsRunner` fills for datasets ``data``: ``<name>_loss`` each,
    and ``<name>_acc`` where the targets are class labels (regression has no accuracy)."""
    from .data import has_class_targets

    names = []
    for k, v in data.items():
        names.append(f"{k}_loss")
        if has_class_targets(v):
            names.append(f"{k}_acc")
    return names


#: Suffix of the standard-error array of a loss array: ``train_loss`` -> ``train_loss_se``.
STDERR_SUFFIX = "_se"


def stderr_name(array: str) -> str:
    """The standard-error array beside the loss array ``array`` of
    :func:`metric_array_names`: ``train_loss`` -> ``train_loss_se`` (the standard error of
    the data-set mean loss, :attr:`landscape.evaluation.Metrics.loss_se`)."""
    return array + STDERR_SUFFIX


def new_stderrs(arrays: Mapping[str, np.ndarray],
                old: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One standard-error array per loss array of ``arrays`` (NaN, same shape), taking those of
    ``old`` that exist (a file written before standard errors were stored has none: its
    points keep NaN)."""
    old = old or {}
    out = {}
    for k, a in arrays.items():
        if k.endswith("_loss"):
            name = stderr_name(k)
            prev = old.get(name)
            out[name] = (np.asarray(prev, dtype=np.float64) if prev is not None
                         and np.shape(prev) == np.shape(a) else np.full(np.shape(a), np.nan))
    return out


#: Suffix of the sample-count array of a loss array: ``train_loss`` -> ``train_loss_n``.
COUNT_SUFFIX = "_n"


def count_name(array: str) -> str:
    """The array of the number of samples behind each value of the loss array ``array``
    (stored by surfaces evaluated to a precision): ``train_loss`` -> ``train_loss_n``."""
    return array + COUNT_SUFFIX


def new_counts(arrays: Mapping[str, np.ndarray],
               old: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One int64 sample-count array per loss array of ``arrays`` (0: not computed), taking
    those of ``old`` that exist with the right shape."""
    old = old or {}
    out = {}
    for k, a in arrays.items():
        if k.endswith("_loss"):
            prev = old.get(count_name(k))
            out[count_name(k)] = (np.asarray(prev, dtype=np.int64).copy() if prev is not None
                                  and np.shape(prev) == np.shape(a)
                                  else np.zeros(np.shape(a), dtype=np.int64))
    return out


class MetricsRunner(GridRunner):
    """A grid of loss/accuracy evaluations: a subclass writes :meth:`evaluate` only.

    The result object holds ``arrays`` (``<split>_loss``, ``<split>_acc``) and ``done`` of the
    same shape and a ``save(path, overwrite=...)``; point ``i`` is recorded into flat index
    ``i`` of every array (``NaN`` for an accuracy that is not defined), and the standard error
    of each loss into ``stderrs["<split>_loss_se"]`` when the result has ``stderrs`` (missing
    arrays there are created, NaN: see :func:`new_stderrs`), and the number of samples behind
    it into ``counts["<split>_loss_n"]`` when the result's ``counts`` is not ``None`` (see
    :func:`new_counts`).

    Parameters
    ----------
    result : object
        The result being filled (``arrays``, ``done``, ``save``).
    overwrite : bool
        Whether the first write replaces the file (a fresh run with ``overwrite``).
    **loop
        :class:`GridRunner`'s parameters.
    """

    def __init__(self, result: Any, *, overwrite: bool, **loop: Any) -> None:
        super().__init__(result.done, **loop)
        self.result = result
        self.flat = {k: v.reshape(-1) for k, v in result.arrays.items()}
        if hasattr(result, "stderrs"):
            result.stderrs = new_stderrs(result.arrays, result.stderrs)
            self.flat.update({k: v.reshape(-1) for k, v in result.stderrs.items()})
        if getattr(result, "counts", None) is not None:
            result.counts = new_counts(result.arrays, result.counts)
            self.flat.update({k: v.reshape(-1) for k, v in result.counts.items()})
        self.first_write = overwrite

    @abstractmethod
    def evaluate(self, index: int) -> Mapping[str, Any]:
        """The metrics (objects with ``.loss``, ``.accuracy`` and ``.loss_se``) of every split
        at point ``index``."""

    def compute(self, index: int) -> dict[str, tuple[float, float | None, float, int]]:
        return {name: (m.loss, m.accuracy, getattr(m, "loss_se", math.nan), getattr(m, "n", 0))
                for name, m in self.evaluate(index).items()}

    def record(self, index: int, payload: dict[str, tuple[float, float | None, float, int]]
               ) -> None:
        for name, (loss, acc, se, n) in payload.items():
            self.flat[f"{name}_loss"][index] = loss
            if f"{name}_acc" in self.flat:
                self.flat[f"{name}_acc"][index] = np.nan if acc is None else acc
            if stderr_name(f"{name}_loss") in self.flat:
                self.flat[stderr_name(f"{name}_loss")][index] = se
            if count_name(f"{name}_loss") in self.flat:
                self.flat[count_name(f"{name}_loss")][index] = n
        self.done.reshape(-1)[index] = True

    def save(self) -> None:
        self.result.save(self.out, overwrite=self.first_write)
        self.first_write = False

