"""Surfaces of checkpoint files: what ``landscape surface`` does, as library calls.

:func:`compute_checkpoint_surface` goes from a checkpoint file to a written surface: it loads
the checkpoint and its data (:class:`~landscape.inputs.CheckpointInputs`), makes the
directions -- random (one pair, or ``n_directions`` pairs of a
:class:`~landscape.surface_set.SurfaceSet`), from a file, the line to a second checkpoint, the
plane through three, or the Hessian's eigenvectors -- records the checkpoint in the recipe and
computes (:func:`~landscape.surface.compute_surface`,
:func:`~landscape.surface_set.compute_surface_set` or
:func:`~landscape.hessian.compute_hessian_surface`). :func:`interpolation_directions` and
:func:`checkpoint_plane_directions` make the directions of the line and the plane through
checkpoints for :func:`~landscape.surface.compute_surface`; :func:`summary_lines` says what a
computed surface holds.

Examples
--------
>>> import landscape as ls                                                 # doctest: +SKIP
>>> s = ls.compute_checkpoint_surface("runs/mlp/epoch_0020.pt", x="-1:1:51", y="-1:1:51",
...                                   out="surface.h5")                    # doctest: +SKIP
>>> line = ls.compute_checkpoint_surface("a.pt", interpolate="b.pt", x="-0.5:1.5:41",
...                                      out="ab.h5")                      # doctest: +SKIP
>>> a, b = ls.load_checkpoint("a.pt"), ls.load_checkpoint("b.pt")        # doctest: +SKIP
>>> dirs = ls.interpolation_directions(a, b)                              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from ._functional import named_tensors
from ._grid import check_grid_fits
from ._resume import RUN_FIELDS, RunOptions
from ._resume import run_options as run_options_of
from .checkpoints import Checkpoint
from .directions import (
    Directions,
    check_spanning,
    direction_norms,
    interpolation_direction,
    plane_directions,
    random_directions,
)
from .errors import LandscapeError, check_int, check_option
from .inputs import CheckpointInputs
from .parameters import ParameterSelection, select_parameters
from .recipes import checkpoint_provenance, checkpoint_recipe
from .surface import SURFACE_GROUP, Surface, compute_surface, load_directions, parse_axis
from .surface_set import SurfaceSet, compute_surface_set, member_seeds

__all__ = ["DIRECTION_KINDS", "checkpoint_plane_directions", "compute_checkpoint_surface",
           "interpolation_directions", "summary_lines"]

#: The kinds of ``directions``: random directions, or the Hessian's eigenvectors (``pair``
#: ``"top"`` or ``"topbottom"`` of :func:`landscape.hessian.compute_hessian_surface`).
DIRECTION_KINDS = ("random", "hessian", "hessian-topbottom")
_PAIRS = {"hessian": "top", "hessian-topbottom": "topbottom"}

#: The settings of the directions that :func:`compute_checkpoint_surface` takes in
#: ``**options``, with their defaults.
_DIRECTION_SETTINGS: dict[str, Any] = {
    "what": "weights", "norm": None, "ignore": "biasbn", "seed": 0, "orthogonal": False,
    "params": None, "exclude": None, "include_frozen": False, "hessian_samples": None,
    "hessian_tol": 1e-6,
}
#: The evaluation settings of :func:`~landscape.surface.compute_surface` that it passes on.
_EVALUATION = ("loss", "bn", "bn_batches", "bn_batch_size", "batch_size", "device", "dtype",
               "autocast", "channels_last", "rel_precision", "precision_seed", "min_batches",
               "min_samples", "shard", "direction_dtype", "check_memory")


def _architecture_difference(base: Mapping[str, Tensor], other: Mapping[str, Tensor], *,
                             both_ways: bool = True) -> str | None:
    """How ``other``'s tensors differ from ``base``'s (names, shapes), or ``None``."""
    for k, v in other.items():
        if k not in base:
            return f"it has a tensor '{k}' that this model lacks"
        if tuple(v.shape) != tuple(base[k].shape):
            return (f"its tensor '{k}' has shape {tuple(v.shape)}, this model's "
                    f"{tuple(base[k].shape)}")
    missing = [k for k in base if k not in other] if both_ways else []
    if missing:
        return f"it lacks this model's tensor '{missing[0]}'"
    return None


def _moved_tensors(origin: Checkpoint, other: Checkpoint, base: Mapping[str, Tensor],
                   selection: ParameterSelection, role: str) -> dict[str, Tensor]:
    """``other``'s tensors (of ``selection.what``), checked to be of ``origin``'s architecture,
    with the tensors the selection holds fixed taken from ``base`` (``origin``'s)."""
    if not isinstance(other, Checkpoint):
        raise LandscapeError(f"{role} must be a Checkpoint (load_checkpoint(path)). Got "
                             f"{type(other).__name__}.")
    tensors = named_tensors(other.model, selection.what)
    diff = _architecture_difference(base, tensors)
    if diff:
        raise LandscapeError(f"{role} '{other.path}' is another architecture than "
                             f"'{origin.path}': {diff}; give checkpoints of one network")
    return {k: v if selection.moves(k) else base[k] for k, v in tensors.items()}


def _origin(checkpoint: Checkpoint, what: str, selection: ParameterSelection | None
            ) -> tuple[dict[str, Tensor], ParameterSelection]:
    if not isinstance(checkpoint, Checkpoint):
        raise LandscapeError(f"The 'checkpoint' parameter must be a Checkpoint "
                             f"(load_checkpoint(path)). Got {type(checkpoint).__name__}.")
    check_option("what", what, ("weights", "states"))
    if selection is None:
        selection = select_parameters(checkpoint.model, what)
    if selection.what != what:
        raise LandscapeError(f"the selection was made for what={selection.what!r}, the "
                             f"directions for what={what!r}; pass the same tensor selection")
    return named_tensors(checkpoint.model, what), selection


def interpolation_directions(checkpoint: Checkpoint, interpolate: Checkpoint, *,
                             what: str = "weights",
                             selection: ParameterSelection | None = None) -> Directions:
    """The direction of the line from one checkpoint to another (1D :class:`Directions`).

    ``checkpoint + 1 * d`` is ``interpolate`` in the tensors that ``selection`` moves (the
    others are held at ``checkpoint``'s). The recipe records the target's path and SHA-256.

    Parameters
    ----------
    checkpoint : Checkpoint
        The origin (``alpha = 0``).
    interpolate : Checkpoint
        The other end (``alpha = 1``), of the same architecture.
    what : {"weights", "states"}, default "weights"
        Parameters only, or the whole state dict.
    selection : ParameterSelection, optional
        The tensors that move (default ``select_parameters(checkpoint.model, what)``).

    Returns
    -------
    Directions

    Raises
    ------
    LandscapeError
        If the two are different architectures or have the same tensors (a zero direction).
    """
    base, selection = _origin(checkpoint, what, selection)
    other = _moved_tensors(checkpoint, interpolate, base, selection,
                           "the `interpolate` checkpoint")
    recipe = {"kind": "interpolation", "what": what, "target": interpolate.path,
              "target_sha256": interpolate.sha256, **selection.recipe}
    d = interpolation_direction(base, other)
    if direction_norms(d) == 0:
        raise LandscapeError(
            f"the `interpolate` checkpoint '{interpolate.path}' has the same {what} as "
            f"'{checkpoint.path}': the direction between them is zero and the line one point")
    return Directions((d,), recipe)


def checkpoint_plane_directions(checkpoint: Checkpoint, plane: Sequence[Checkpoint], *,
                                what: str = "weights", orthogonal: bool = False,
                                selection: ParameterSelection | None = None) -> Directions:
    """The directions of the plane through three checkpoints (2D :class:`Directions`).

    ``checkpoint`` is at the origin, ``plane = (b, c)`` at ``(1, 0)`` and ``(0, 1)`` (or, with
    ``orthogonal``, ``c`` where :func:`~landscape.directions.plane_directions` puts it); the
    recipe records both paths, their SHA-256s and the coordinates of the three.

    Parameters
    ----------
    checkpoint : Checkpoint
        The origin.
    plane : (Checkpoint, Checkpoint)
        The two other points, of the same architecture.
    what, selection
        As for :func:`interpolation_directions`.
    orthogonal : bool, default False
        Make the second direction orthogonal to the first, of the same norm.

    Returns
    -------
    Directions

    Raises
    ------
    LandscapeError
        If the three are not one architecture, or do not span a plane.
    """
    base, selection = _origin(checkpoint, what, selection)
    if isinstance(plane, Checkpoint) or len(plane) != 2:
        got = "one Checkpoint" if isinstance(plane, Checkpoint) else f"{len(plane)}"
        raise LandscapeError(f"The 'plane' parameter must be two checkpoints (b and c). Got "
                             f"{got}.")
    b, c = (_moved_tensors(checkpoint, p, base, selection, "a `plane` checkpoint")
            for p in plane)
    try:
        dx, dy, coords = plane_directions(base, b, c, orthogonal=orthogonal)
    except LandscapeError as exc:
        names = f"a = '{checkpoint.path}', b = '{plane[0].path}', c = '{plane[1].path}'"
        raise LandscapeError(f"`plane`: {exc} ({names})") from None
    recipe = {"kind": "plane", "what": what, "models": [p.path for p in plane],
              "sha256": [p.sha256 for p in plane], "orthogonal": orthogonal, "coords": coords,
              **selection.recipe}
    return Directions((dx, dy), recipe)


def _file_directions(dir_file: str | os.PathLike, ckpt: Checkpoint, what: str,
                     ndim: int) -> Directions:
    """The first ``ndim`` directions of ``dir_file``, checked against ``ckpt``'s model."""
    d = load_directions(dir_file, ckpt.model, what)
    if d.recipe.get("kind") != "li2018" and d.what != what:  # Li's: told by the count
        raise LandscapeError(f"directions in '{dir_file}' are for what={d.what!r}, not {what}")
    if d.ndim < ndim:
        raise LandscapeError(f"'{dir_file}' has {d.ndim} direction(s); `y` needs 2")
    if d.ndim > ndim:
        d = Directions(d.vectors[:ndim], {**d.recipe, "used": ndim})
    check_spanning(d.vectors, [f"{ax} of '{dir_file}'" for ax in ("x", "y")])
    base = named_tensors(ckpt.model, d.what)
    for vec in d.vectors:
        diff = _architecture_difference(base, vec, both_ways=False)
        if diff:
            raise LandscapeError(
                f"directions in '{dir_file}' were made for another architecture than "
                f"'{ckpt.path}' ({diff}); drop dir_file=... to draw new directions")
    return d


def _given(pairs: Sequence[tuple[str, Any]]) -> str:
    """``name=...`` of the settings given (truthy), for a message's "drop ..." list."""
    return ", ".join(name for name, on in pairs if on)


def _check_combination(kind: str, n_directions: int, ndim: int, sources: Mapping[str, Any],
                       settings: Mapping[str, Any], evaluation: Mapping[str, Any],
                       splits: Sequence[str]) -> None:
    """Refuse, before loading anything, settings that the chosen directions cannot honour."""
    s, e = settings, evaluation
    chosen = [k for k, v in sources.items() if v is not None]
    if len(chosen) > 1:
        raise LandscapeError(f"give one source of directions, not {' and '.join(chosen)}")
    selecting = (("params=...", s["params"]), ("exclude=...", s["exclude"]),
                 ("include_frozen=True", s["include_frozen"]))
    common = (*((f"{k}=...", v is not None) for k, v in sources.items()),
              ("orthogonal=True", s["orthogonal"]),
              (f"rel_precision={e.get('rel_precision')}", e.get("rel_precision") is not None),
              ("what='states'", s["what"] != "weights"))
    if kind != "random":
        other = _given((*common, ("n_directions=...", n_directions > 1),
                        ("shard=...", e.get("shard") is not None),
                        ("direction_dtype=...", e.get("direction_dtype") is not None),
                        *selecting))
        if other:
            raise LandscapeError(f"directions={kind!r} draws the directions from the Hessian's "
                                 f"eigenvectors; drop {other}")
        if s["norm"] not in ("filter", "none"):
            raise LandscapeError(f"directions={kind!r} takes norm='filter' (filter-normalized "
                                 "like random directions) or norm='none' (unit eigenvectors); "
                                 f"got norm={s['norm']!r}")
        if "train" not in splits:
            raise LandscapeError(f"directions={kind!r} needs the train split (the Hessian is "
                                 "that of the training loss): add it to the 'splits' parameter")
    elif n_directions > 1:
        other = _given((*common, (f"autocast={e.get('autocast')!r}", e.get("autocast") is not None),
                        ("direction_dtype=...", e.get("direction_dtype") is not None),
                        ("bn='recalibrate'", e.get("bn", "eval") != "eval")))
        if other:
            raise LandscapeError(
                f"n_directions={n_directions} draws K random direction pairs of the weights, "
                f"evaluated in fp32 with the checkpoint's BatchNorm statistics; drop {other}")
    elif sources["dir_file"] is not None and _given(selecting):
        raise LandscapeError(f"{_given(selecting)} choose the tensors of new directions; "
                             "dir_file=... brings its own -- drop one of them")
    elif sources["interpolate"] is not None and ndim != 1:
        raise LandscapeError("interpolate=... gives a 1D line; drop y=...")
    elif sources["plane"] is not None and ndim != 2:
        raise LandscapeError("plane=... gives a 2D plane; add y=...")


def _check_not_an_input(out: Any, inputs: Sequence[tuple[str, Any]]) -> None:
    """Refuse an ``out`` that names an input checkpoint (``overwrite`` would replace it)."""
    for role, path in inputs:
        if out is None or path is None:
            continue
        try:
            same = os.path.samefile(out, path)
        except OSError:  # out does not exist yet
            same = False
        if same:
            raise LandscapeError(f"`out` '{out}' is {role} '{path}'; writing the surface there "
                                 "would destroy it -- choose another out=PATH")


def compute_checkpoint_surface(
    checkpoint: str | os.PathLike,
    *,
    x: str,
    y: str | None = None,
    inputs: CheckpointInputs | None = None,
    splits: Sequence[str] = ("train", "test"),
    directions: str = "random",
    dir_file: str | os.PathLike | None = None,
    interpolate: str | os.PathLike | None = None,
    plane: Sequence[str | os.PathLike] | None = None,
    n_directions: int = 1,
    full_check: bool = True,
    command: str | None = None,
    run: RunOptions | None = None,
    **options: Any,
) -> Surface | SurfaceSet:
    """A loss/accuracy surface around a checkpoint file, written as it goes (and resumed).

    Parameters
    ----------
    checkpoint : path
        The checkpoint at the origin.
    x, y : str
        The grid, ``"min:max:num"`` (``y`` for 2D).
    inputs : CheckpointInputs, optional
        How the checkpoints and the data are loaded (default: each file's own spec and data).
    splits : sequence of str, default ("train", "test")
        The data splits evaluated.
    directions : {"random", "hessian", "hessian-topbottom"}, default "random"
        Random directions (or those of ``dir_file``, ``interpolate``, ``plane``), or the
        Hessian's top two eigenvectors, or those of its largest and smallest eigenvalue, in
        the file's ``/hessian_surface`` (:func:`~landscape.hessian.compute_hessian_surface`).
    dir_file : path, optional
        A file with directions (:func:`~landscape.surface.load_directions`).
    interpolate : path, optional
        A second checkpoint: the 1D line to it (:func:`interpolation_directions`).
    plane : (path, path), optional
        Two more checkpoints: the plane through the three (:func:`checkpoint_plane_directions`).
    n_directions : int, default 1
        ``K > 1``: a :class:`~landscape.surface_set.SurfaceSet` of ``K`` random direction pairs
        (seeds ``seed``, ``seed + 2``, ...).
    full_check : bool, default True
        On a subset (``inputs.subset``), evaluate the origin once on the full data too.
    command : str, optional
        The command line recorded in the provenance.
    run : RunOptions, optional
        How the run writes; ``run.out`` must not be an input checkpoint.
    **options
        The directions': ``what``, ``norm`` (default "filter"; "none" for Hessian directions),
        ``ignore``, ``seed``, ``orthogonal`` (:func:`~landscape.directions.random_directions`),
        ``params``, ``exclude``, ``include_frozen`` (:func:`~landscape.select_parameters`),
        ``hessian_samples`` (the first N training samples) and ``hessian_tol``; the
        evaluation's (``loss``, ``bn``, ``batch_size``, ``device``, ``dtype``, ``autocast``,
        ``rel_precision``, ``shard``, ... of :func:`~landscape.surface.compute_surface`); and
        the fields of ``run`` one by one.

    Returns
    -------
    Surface or SurfaceSet

    Raises
    ------
    LandscapeError
        Before anything is loaded, on a bad grid, one too big for the memory, settings the
        directions cannot honour or an ``out`` that is an input; then on inputs that do not fit.
    """
    inputs = CheckpointInputs() if inputs is None else inputs
    opts = run_options_of(run, **{k: options.pop(k) for k in list(options) if k in RUN_FIELDS})
    settings = {k: options.pop(k, v) for k, v in _DIRECTION_SETTINGS.items()}
    sources = {"dir_file": dir_file, "interpolate": interpolate, "plane": plane}
    kind, ndim = _check_request(x, y, directions, n_directions, list(splits), sources, settings,
                                options)
    _check_not_an_input(opts.out, [("the checkpoint", checkpoint),
                                   ("the `interpolate` checkpoint", interpolate),
                                   *(("a `plane` checkpoint", p) for p in plane or ())])
    ckpt = inputs.load(checkpoint)
    datasets = inputs.datasets(ckpt, list(splits))
    at = {"recipe": checkpoint_recipe(ckpt, inputs.data_spec(ckpt)), "run": opts,
          "provenance": checkpoint_provenance(ckpt, checkpoint, command or ""),
          "full_data": _full_data(inputs, ckpt, datasets) if full_check else None}
    if kind != "random":
        return _hessian_surface(ckpt, datasets, kind, x, y, settings, options, at)
    if n_directions > 1:
        return compute_surface_set(
            ckpt.model, datasets, seeds=member_seeds(n_directions, settings["seed"]), x=x, y=y,
            norm=settings["norm"], ignore=settings["ignore"],
            selection=_selection(ckpt, settings), loss=options.get("loss", "cross_entropy"),
            batch_size=options.get("batch_size", "auto"), device=options.get("device"),
            dtype=options.get("dtype"), shard=options.get("shard"), **at)
    dirs = _directions(ckpt, inputs, sources, settings, ndim)
    if options.get("direction_dtype") is not None:  # rounded now: no full-precision copy stays
        dirs = dirs.astype(options["direction_dtype"])
    return compute_surface(ckpt.model, dirs, datasets, x=x, y=y, **at, **options)


def _check_request(x: str, y: str | None, directions: str, n_directions: int,
                   splits: list[str], sources: Mapping[str, Any], settings: dict[str, Any],
                   evaluation: Mapping[str, Any]) -> tuple[str, int]:
    """The checks made before anything is loaded; the kind of directions and the grid's
    dimension. Fills in the default ``norm`` of the kind."""
    unknown = sorted(set(evaluation) - set(_EVALUATION))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
    kind = check_option("directions", directions, DIRECTION_KINDS)
    n_directions = check_int("n_directions", n_directions, 1)
    if settings["norm"] is None:
        settings["norm"] = "filter" if kind == "random" else "none"
    ax, ay = parse_axis(x, "x"), parse_axis(y, "y") if y is not None else None
    if evaluation.get("dtype") is not None:
        for name, a in (("x", ax), ("y", ay)):
            if a is not None:
                a.check_dtype(name, evaluation["dtype"])
    _check_grid_fits(ax.num * (ay.num if ay is not None else 1), len(splits),
                     n_directions if kind == "random" else 1)
    ndim = 1 if ay is None else 2
    _check_combination(kind, n_directions, ndim, sources, settings, evaluation, splits)
    return kind, ndim


def _check_grid_fits(n_points: int, n_splits: int, n_directions: int = 1) -> None:
    """Refuse a grid (of ``n_directions`` direction pairs) whose arrays alone would not fit in
    this machine's memory (float64 loss, accuracy and standard error per split)."""
    if n_directions == 1:
        check_grid_fits(n_points, 3 * n_splits)
    else:
        check_grid_fits(n_directions * n_points, 3 * n_splits,
                        what=f"a set of {n_directions:,} direction pairs on a "
                             f"{n_points:,}-point grid",
                        fix="use fewer points or direction pairs (n_directions)")


def _selection(ckpt: Checkpoint, settings: Mapping[str, Any]) -> ParameterSelection:
    return select_parameters(ckpt.model, settings["what"], params=settings["params"],
                             exclude=settings["exclude"],
                             include_frozen=bool(settings["include_frozen"]))


def _full_data(inputs: CheckpointInputs, ckpt: Checkpoint, datasets: Mapping[str, Any]
               ) -> dict[str, Any] | None:
    """On a subset: the splits without it (the checkpoint's own data, or the whole data set),
    where they are larger than the subsets; else ``None``."""
    if inputs.subset is None:
        return None
    full = dataclasses.replace(inputs, subset=None).datasets(ckpt, list(datasets))
    return full if any(len(full[s]) > len(datasets[s]) for s in datasets) else None


def _directions(ckpt: Checkpoint, inputs: CheckpointInputs, sources: Mapping[str, Any],
                settings: Mapping[str, Any], ndim: int) -> Directions:
    """The directions of a single surface: from a file, to checkpoints, or random."""
    what = settings["what"]
    if sources["dir_file"] is not None:
        return _file_directions(sources["dir_file"], ckpt, what, ndim)
    selection = _selection(ckpt, settings)
    if sources["interpolate"] is not None:
        return interpolation_directions(ckpt, inputs.load(sources["interpolate"]), what=what,
                                        selection=selection)
    if sources["plane"] is not None:
        return checkpoint_plane_directions(ckpt, [inputs.load(p) for p in sources["plane"]],
                                           what=what, orthogonal=settings["orthogonal"],
                                           selection=selection)
    return random_directions(named_tensors(ckpt.model, what), ndim=ndim, seeds=settings["seed"],
                             norm=settings["norm"], ignore=settings["ignore"], what=what,
                             orthogonal=settings["orthogonal"], selection=selection)


def _hessian_surface(ckpt: Checkpoint, datasets: Mapping[str, Any], kind: str, x: str,
                     y: str | None, settings: Mapping[str, Any], evaluation: Mapping[str, Any],
                     at: dict[str, Any]) -> Surface:
    """A surface along the Hessian's eigenvectors, in ``/hessian_surface``."""
    from .hessian import compute_hessian_surface  # scipy: only for these surfaces

    train, n = datasets["train"], settings["hessian_samples"]
    opts: RunOptions = at.pop("run")
    batch_size = evaluation.get("batch_size", "auto")
    return compute_hessian_surface(
        ckpt.model, datasets, x=x, y=y, pair=_PAIRS[kind],
        hessian_data=train.subset(n) if n else train, scale=settings["norm"],
        ignore=settings["ignore"], tol=settings["hessian_tol"], seed=settings["seed"],
        hessian_batch_size=512 if batch_size == "auto" else batch_size,
        out=opts.out, overwrite=opts.overwrite, progress=opts.progress,
        flush_seconds=opts.flush_seconds, max_points=opts.max_points, **at,
        **{k: v for k, v in evaluation.items()
           if k not in ("shard", "direction_dtype", "check_memory")})


def summary_lines(result: Surface | SurfaceSet, out: str | os.PathLike | None = None
                  ) -> list[str]:
    """What a computed surface holds, as lines for a log.

    The first says where it was written and what it is (grid, points done, arrays; for a
    Hessian surface its eigenvalues); the others are notes: non-finite losses, the subset
    check (:meth:`Surface.subset_lines`), the samples saved by ``rel_precision``, eigenpairs
    that did not converge.
    """
    where = f"wrote {out}" if out is not None else "computed"
    if isinstance(result, SurfaceSet):
        return [f"{where}: {result.n_members} direction pairs (seeds {result.seeds}), "
                f"{result.n_done}/{result.n_points} points ({', '.join(sorted(result.arrays))})",
                *_subset_notes(result.member(0))]
    s = result
    grid = f"{len(s.x)}" if s.y is None else f"{len(s.y)}x{len(s.x)}"
    if s.group != SURFACE_GROUP:
        r = s.directions.recipe if s.directions is not None else {}
        lams = ", ".join(f"{v:.4g}" for v in r.get("eigenvalues", []))
        pair = "largest and smallest" if r.get("pair") == "topbottom" else "top"
        lines = [f"{where} (/{s.group}): {s.ndim}D {grid} surface along the Hessian's {pair} "
                 f"eigenvector{'s' if s.ndim == 2 else ''} (eigenvalues {lams}), {s.n_done}/"
                 f"{s.n_points} points"]
        if r.get("note"):
            lines.append(f"note: {r['note']}; raise the 'hessian_tol' parameter or give more "
                         "HVPs")
        return lines + _subset_notes(s)
    shard = s.recipe.get("shard")
    lines = [f"{where}: {s.ndim}D {grid} surface"
             f"{'' if shard is None else ' (shard {} of {})'.format(*shard)}, {s.n_done}/"
             f"{s.n_points} points ({', '.join(sorted(s.arrays))})"]
    bad = sum(int(np.sum(~np.isfinite(a[s.done]))) for k, a in s.arrays.items()
              if k.endswith("_loss"))
    if bad:
        lines.append(f"note: {bad} loss values are NaN/inf (diverged points); plots mask them")
    lines += _subset_notes(s)
    rel = (s.recipe.get("precision") or {}).get("rel_precision")
    for split, used in sorted(s.precision_summary().items()):
        lines.append(f"{split}: {used['samples']:,} of {used['full']:,} sample evaluations "
                     f"({used['full'] / max(used['samples'], 1):.2f}x fewer) to reach the "
                     f"standard error <= {rel:g} x |loss|")
    return lines


def _subset_notes(s: Surface) -> list[str]:
    return [f"subset check: {line}" for line in s.subset_lines()]
