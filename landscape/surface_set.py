"""Many direction pairs on one grid: surfaces with error bars over directions.

One pair of random directions is one sample of the landscape around a minimum; a flatness
number read from it changes with the seed. :func:`compute_surface_set` evaluates ``K``
independent direction pairs (member ``k`` with seed ``s_k``: directions ``(s_k, s_k + 1)``, so
member 0 with seed 0 is exactly the default single surface) on the same grid, as *one* grid
analysis of ``K x points`` points: resumable, shardable under ``torchrun`` and into shard files
(``shard=(i, n)``, joined by :func:`landscape.shards.merge_shards`) and flushed like a surface
(the grid runner, :mod:`landscape._grid`). The result, a :class:`SurfaceSet`, gives every
member as a :class:`~landscape.surface.Surface` (``member(k)``), so every surface metric is
computed per direction pair and summarised as mean, standard deviation and a Student-t interval
(:func:`landscape.stats.summarize` -- the report does this for every metric).

Each member's values are bit-identical to a single-direction file computed with the same seed,
batch size and dtype (each point is evaluated from the base weights afresh, tested).

Layout (format version 2; see :mod:`landscape.storage`)::

    /surfaces                 attrs: recipe, provenance, ndim, arrays, n_members, seeds (JSON)
    /surfaces/x, y            grid coordinates
    /surfaces/<array>         (K, ny, nx) float64 [(K, nx) in 1D]; NaN where not done
    /surfaces/<split>_loss_se (K, ny, nx) standard error of each loss (not listed in 'arrays';
                              absent in files written before they were stored)
    /surfaces/done            (K, ny, nx) uint8
    /surfaces/directions/<k>  the directions of member k (a /directions group)

References
----------
.. [1] "Unveiling the Basin-Like Loss Landscape in Large Language Models", ICLR 2026 (basin
   statistics over many random directions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _schema, storage
from ._atomic import holds_output
from ._functional import LossSpec, loss_name, named_tensors
from ._grid import (
    GridProgress,
    MetricsRunner,
    agree,
    check_grid_fits,
    check_shard,
    metric_array_names,
    new_stderrs,
    pending,
    shard_points,
)
from ._resume import RunOptions, stored_result
from ._resume import run_options as run_options_of
from ._version import tool_versions
from .data import as_splits
from .directions import Directions, random_directions
from .errors import LandscapeError, check_int
from .evaluation import Evaluator
from .parameters import ParameterSelection, select_parameters
from .surface import (
    Axis,
    Surface,
    directions_group,
    evaluate_subset_check,
    load_directions_group,
    on_device,
    parse_axis,
)

__all__ = ["GROUP", "SurfaceSet", "compute_surface_set", "member_seeds"]

GROUP = "surfaces"


def member_seeds(n_directions: int, first: int = 0) -> list[int]:
    """Seeds of ``n_directions`` independent pairs: ``first, first + 2, ...`` (member ``k``
    uses seeds ``(s_k, s_k + 1)``)."""
    n_directions = check_int("n_directions", n_directions, 1)
    return [first + 2 * k for k in range(n_directions)]


@dataclass
class SurfaceSet(GridProgress):
    """``K`` surfaces on one grid along ``K`` independent direction pairs.

    Attributes
    ----------
    x, y : np.ndarray
        The grid (``y`` is ``None`` in 1D).
    arrays : dict[str, np.ndarray]
        ``(K, ny, nx)`` per array name (``train_loss``, ...); NaN where not done.
    done : np.ndarray of bool
        ``(K, ny, nx)`` completion mask.
    directions : list of Directions
        Member ``k``'s directions.
    seeds : list of int
        Member ``k``'s first seed.
    recipe, provenance : dict
    stderrs : dict[str, np.ndarray]
        ``(K, ny, nx)`` standard errors beside each loss array (``train_loss_se``; see
        :attr:`Surface.stderrs <landscape.surface.Surface.stderrs>`).
    subset_check : dict or None
        The origin on the subsets and on the full data (see :attr:`Surface.subset_check
        <landscape.surface.Surface.subset_check>`); the origin is common to every member.
    """

    x: np.ndarray
    y: np.ndarray | None
    arrays: dict[str, np.ndarray]
    done: np.ndarray
    directions: list[Directions]
    seeds: list[int]
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    stderrs: dict[str, np.ndarray] = field(default_factory=dict)
    subset_check: dict[str, dict[str, Any]] | None = None

    @property
    def n_members(self) -> int:
        """Number of direction pairs ``K``."""
        return len(self.directions)

    @property
    def ndim(self) -> int:
        """1 or 2."""
        return 1 if self.y is None else 2

    def member(self, k: int) -> Surface:
        """Member ``k`` as a :class:`Surface` (its arrays are views of the set's)."""
        if not 0 <= k < self.n_members:
            raise LandscapeError(f"member {k} out of range: the set has {self.n_members}")
        d = self.directions[k]
        return Surface(
            x=self.x, y=self.y, arrays={n: a[k] for n, a in self.arrays.items()},
            done=self.done[k], directions=d,
            recipe={**self.recipe, "directions": d.recipe, "directions_sha256": d.digest()},
            provenance=dict(self.provenance),
            stderrs={n: a[k] for n, a in self.stderrs.items()}, subset_check=self.subset_check,
        )

    def members(self) -> list[Surface]:
        """Every member, in order."""
        return [self.member(k) for k in range(self.n_members)]

    def plot(self, kind: str | None = None, **kwargs: Any) -> Any:
        """The mean surface over the members (:meth:`mean`), as :meth:`Surface.plot` draws
        it."""
        return self.mean().plot(kind, **kwargs)

    def mean(self) -> Surface:
        """The mean surface over the members: at every grid point the mean of each array over
        the ``K`` direction pairs, done where every member is done (NaN elsewhere).

        Its directions are ``None`` (there is no one pair of them); its recipe's
        ``directions`` entry is member 0's without its seeds, plus ``"members": K``.
        """
        done = np.asarray(self.done, dtype=bool).all(axis=0)
        with np.errstate(invalid="ignore"):
            arrays = {n: np.where(done, np.asarray(a, np.float64).mean(axis=0), np.nan)
                      for n, a in self.arrays.items()}
        first = self.directions[0].recipe if self.directions else {}
        dirs = {k: v for k, v in dict(first).items() if k not in ("seeds", "seed")}
        dirs["members"] = self.n_members
        return Surface(x=self.x, y=self.y, arrays=arrays, done=done, directions=None,
                       recipe={**self.recipe, "directions": dirs},
                       provenance=dict(self.provenance), subset_check=self.subset_check)

    def __repr__(self) -> str:
        grid = f"{len(self.x)}" if self.y is None else f"{len(self.y)}x{len(self.x)}"
        return (f"SurfaceSet({self.n_members} x {self.ndim}D {grid}, arrays="
                f"{sorted(self.arrays)}, done={self.n_done}/{self.n_points})")

    # ------------------------------------------------------------------ storage
    def to_group(self) -> storage.Group:
        """The ``/surfaces`` group (see the module docstring)."""
        g = storage.Group(attrs={
            "recipe": storage.dumps(self.recipe),
            "provenance": storage.dumps(self.provenance),
            "ndim": self.ndim,
            "arrays": json.dumps(sorted(self.arrays)),
            "n_members": self.n_members,
            "seeds": json.dumps(list(self.seeds)),
        })
        g.datasets["x"] = np.asarray(self.x, dtype=np.float64)
        if self.y is not None:
            g.datasets["y"] = np.asarray(self.y, dtype=np.float64)
        done = np.asarray(self.done, dtype=bool).copy()  # read first: see Surface._groups
        for name in sorted(self.arrays):
            g.datasets[name] = np.where(done, np.asarray(self.arrays[name], np.float64), np.nan)
        g.datasets.update(_schema.stderr_datasets(self.stderrs, done))
        g.datasets["done"] = done.astype(np.uint8)
        if self.subset_check is not None:
            g.attrs["subset_check"] = storage.dumps(self.subset_check)
        dirs = storage.Group()
        for k, d in enumerate(self.directions):
            dirs.groups[str(k)] = directions_group(d)
        g.groups["directions"] = dirs
        return g

    @classmethod
    def from_group(cls, g: storage.Group, where: str) -> SurfaceSet:
        """Validate and read a ``/surfaces`` group."""
        names = _schema.json_attr(g.attrs, "arrays", where, list)
        seeds = _schema.json_attr(g.attrs, "seeds", where, list)
        recipe = _schema.json_attr(g.attrs, "recipe", where, dict)
        prov = _schema.json_attr(g.attrs, "provenance", where, dict, default={})
        x = _schema.coordinates(g.datasets, "x", where)
        y = _schema.coordinates(g.datasets, "y", where) if "y" in g.datasets else None
        k = len(seeds)
        if k < 1 or "directions" not in g.groups or \
                sorted(g.groups["directions"].groups) != sorted(str(i) for i in range(k)):
            raise LandscapeError(f"{where}: 'seeds' and /directions/<k> do not match")
        shape = (k, *_schema.grid_shape(x, y))
        arrays = {n: _schema.grid_array(g.datasets, n, shape, where) for n in names}
        done = _schema.grid_array(g.datasets, "done", shape, where, mask=True)
        stderrs = _schema.stderr_arrays(g.datasets, names, shape, where)
        check = (_schema.json_attr(g.attrs, "subset_check", where, dict)
                 if "subset_check" in g.attrs else None)
        dirs = [load_directions_group(g.groups["directions"].groups[str(i)],
                                      f"{where} (directions of member {i})") for i in range(k)]
        return cls(x=x, y=y, arrays=arrays, done=done, directions=dirs,
                   seeds=[int(s) for s in seeds], recipe=recipe, provenance=prov,
                   stderrs=stderrs, subset_check=check)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the ``/surfaces`` group of ``path`` atomically (other groups are kept)."""
        storage.update_file(path, {GROUP: self.to_group()}, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SurfaceSet:
        """Read the ``/surfaces`` group of a landscape file."""
        g = storage.require_group(path, GROUP, "holds no surface set (no /surfaces group); "
                                  "compute one with compute_surface_set()")
        return cls.from_group(g, f"'{path}' has a damaged /surfaces group")


class _SetRun(MetricsRunner):
    """Flat point ``i`` is member ``i // P``, grid point ``i % P`` (P points per member)."""

    def __init__(self, s: SurfaceSet, ev: Evaluator, base: dict[str, Tensor],
                 dirs: list[tuple[dict[str, Tensor], ...]], **loop: Any) -> None:
        super().__init__(s, desc="surfaces", sharding="strided", points_per_round=4, **loop)
        self.ev, self.base, self.dirs = ev, base, dirs
        self.per_member = int(np.prod(s.done.shape[1:]))
        self.member0 = s.member(0)  # for coords()

    def evaluate(self, index: int) -> Mapping[str, Any]:
        k, j = divmod(index, self.per_member)
        return self.ev.at(self.base, self.dirs[k], self.member0.coords(j))


@holds_output("out")
def compute_surface_set(
    model: nn.Module,
    data: Mapping[str, Any],
    *,
    seeds: Sequence[int],
    x: str,
    y: str | None = None,
    norm: str = "filter",
    ignore: str = "biasbn",
    selection: ParameterSelection | None = None,
    loss: LossSpec = "cross_entropy",
    batch_size: int | str = 1024,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    recipe: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    full_data: Mapping[str, Any] | None = None,
    shard: tuple[int, int] | None = None,
    run: RunOptions | None = None,
    **run_options: Any,
) -> SurfaceSet:
    """Surfaces along ``len(seeds)`` independent random direction pairs on one grid.

    Parameters
    ----------
    model : nn.Module
        The network at theta* (not modified).
    data : dict[str, TensorData]
        Datasets by name (arrays ``<name>_loss``, ``<name>_acc``).
    seeds : sequence of int
        Member ``k`` uses directions ``random_directions(..., seeds=seeds[k])``, i.e. seeds
        ``(s_k, s_k + 1)`` in 2D; the seeds of different members must not overlap (see
        :func:`member_seeds`).
    x, y : str
        The grid, ``"min:max:num"`` (``y`` for 2D).
    norm, ignore : str
        Direction normalisation (see :func:`~landscape.directions.random_directions`).
    selection : ParameterSelection, optional
        The perturbed tensors (default ``select_parameters(model)``: what a single surface of
        the CLI uses).
    batch_size : int or "auto", default=1024
        Evaluation batch size; ``"auto"`` chooses it as
        :func:`~landscape.surface.compute_surface` does (from model and data sizes, no
        timing, so a single-direction ``"auto"`` file on the same machine chooses alike) and
        records the choice in the provenance (``batch_size_used``), which a resumed run
        reuses.
    loss, device, dtype, recipe, provenance, full_data
        As for :func:`~landscape.surface.compute_surface`.
    shard : (int, int), optional
        ``(i, n)``: compute only shard ``i`` of ``n`` of the set's ``K x points`` points
        (every ``n``-th flat index ``k * points + j`` from the ``i``-th,
        :func:`landscape._grid.shard_points`) into ``out``, a file of its own that resumes
        like any other; ``shard`` joins the recipe. :func:`landscape.shards.merge_shards`
        joins the ``n`` files into the file one process writes, bit for bit.
    run : RunOptions, optional
        How the run writes (``out``, ``overwrite``, ``progress``, ``flush_seconds``,
        ``max_points``; see :class:`~landscape._resume.RunOptions`).
    **run_options
        The fields of ``run`` given one by one instead.

    Raises
    ------
    LandscapeError
        On invalid parameters, including ``seeds`` and a grid whose arrays and directions
        would not fit in this machine's memory.

    Returns
    -------
    SurfaceSet
    """
    opts = run_options_of(run, **run_options)
    data = as_splits(data) if data is not None else data
    ax = parse_axis(x, "x")
    ay = parse_axis(y, "y") if y is not None else None
    ndim = 1 if ay is None else 2
    seeds = [check_int("seeds", s, 0) for s in seeds]
    if not seeds:
        raise LandscapeError("a surface set needs at least one seed")
    base_t = named_tensors(model, "weights")
    n_grid = ax.num * (ay.num if ay is not None else 1)
    dir_bytes = 2 * len(seeds) * ndim * sum(v.numel() * v.element_size()  # and on the device
                                            for v in base_t.values())
    check_grid_fits(len(seeds) * n_grid, 3 * len(data or {}),
                    what=f"a set of {len(seeds):,} direction pairs on a {n_grid:,}-point grid",
                    fix="use fewer seeds or grid points", extra=dir_bytes)
    used = [s + i for s in seeds for i in range(ndim)]
    if len(set(used)) != len(used):
        raise LandscapeError(
            f"the members' seeds {seeds} overlap (member k uses seeds s_k .. s_k + {ndim - 1});"
            f" use seeds {ndim} apart, e.g. {member_seeds(len(seeds))}"
        )
    if batch_size != "auto":
        batch_size = check_int("batch_size", batch_size, 1)
    if shard is not None:
        shard = check_shard(shard)
    if not data:
        raise LandscapeError("no dataset given to evaluate the surfaces on")
    if selection is None:
        selection = select_parameters(model, "weights")
    dirs = [random_directions(base_t, ndim=ndim, seeds=s, norm=norm, ignore=ignore,
                              selection=selection) for s in seeds]
    eval_dtype = dtype or next(iter(base_t.values())).dtype
    for name, a in (("x", ax), ("y", ay)):
        if a is not None:
            a.check_dtype(name, eval_dtype)
    full_recipe = _set_recipe(recipe, ax, ay, dirs, data, loss, batch_size, eval_dtype, shard)
    shape = (len(seeds), *((ay.num, ax.num) if ay is not None else (ax.num,)))
    names = metric_array_names(data)
    s = SurfaceSet(
        x=ax.values, y=ay.values if ay is not None else None,
        arrays={n: np.full(shape, np.nan) for n in names}, done=np.zeros(shape, dtype=bool),
        directions=dirs, seeds=seeds, recipe=full_recipe,
        provenance={**tool_versions(), **dict(provenance or {})},
    )
    s.stderrs = new_stderrs(s.arrays)
    old = stored_result(opts.out, overwrite=opts.overwrite, recipe=full_recipe, group=GROUP,
                        load=SurfaceSet.load, subject="was")
    if old is not None:
        s.arrays, s.done, s.provenance = old.arrays, old.done, old.provenance
        s.stderrs = new_stderrs(old.arrays, old.stderrs)
        s.subset_check = old.subset_check
    mine = None if shard is None else shard_points(range(s.done.size), *shard)
    if pending(s.done, opts.max_points, mine):
        _run_set(s, model, data, base_t, dirs, loss=loss, batch_size=batch_size, device=device,
                 dtype=dtype, full_data=full_data, opts=opts, shard=shard)
    return s


def _set_recipe(extra: Mapping[str, Any] | None, ax: Axis, ay: Axis | None,
                dirs: Sequence[Directions], data: Mapping[str, Any], loss: LossSpec,
                batch_size: int | str, eval_dtype: torch.dtype,
                shard: tuple[int, int] | None = None) -> dict[str, Any]:
    """Everything that identifies a surface set (a resumed file must have the same)."""
    full: dict[str, Any] = dict(extra or {})
    full.update({
        "grid": {"x": ax.spec, "y": ay.spec if ay else None},
        "directions": [d.recipe for d in dirs],
        "directions_sha256": [d.digest() for d in dirs],
        "datasets": {k: len(v) for k, v in data.items()},
        "loss": loss_name(loss),
        "bn": "eval",
        "batch_size": batch_size,
        "dtype": str(eval_dtype).replace("torch.", ""),
    })
    if shard is not None:  # only when set: the merged file's recipe is the plain one
        full["shard"] = list(shard)
    return json.loads(storage.dumps(full))


def _run_set(s: SurfaceSet, model: nn.Module, data: Mapping[str, Any],
             base_t: Mapping[str, Tensor], dirs: Sequence[Directions], *, loss: LossSpec,
             batch_size: int | str, device: torch.device | str | None,
             dtype: torch.dtype | None, full_data: Mapping[str, Any] | None,
             opts: RunOptions, shard: tuple[int, int] | None = None) -> None:
    """Evaluate the pending points of every member (the batch size chosen once, kept)."""
    ev = Evaluator(model, data, loss=loss, what="weights",
                   batch_size=1024 if batch_size == "auto" else batch_size,
                   device=device, dtype=dtype)
    if batch_size == "auto":  # as compute_surface: chosen once, kept by a resumed file
        used = s.provenance.get("batch_size_used")
        if not isinstance(used, int):
            used = agree(ev.choose_batch_size())
        ev.batch_size = used
        s.provenance["batch_size_used"] = used
    placed = [on_device(base_t, d.vectors, ev.device, dtype) for d in dirs]
    base_dev, dirs_dev = placed[0][0], [p[1] for p in placed]
    if full_data and s.subset_check is None:
        s.subset_check = evaluate_subset_check(ev, model, full_data, base_dev, loss=loss,
                                               what="weights", dtype=dtype)
    _SetRun(s, ev, base_dev, dirs_dev, out=opts.out, overwrite=opts.overwrite,
            progress=opts.progress, flush_seconds=opts.flush_seconds,
            max_points=opts.max_points, shard=shard).run()
