"""Curvature of a checkpoint *file*: what ``landscape hessian`` computes, one call from a
notebook.

:func:`curvature_of_checkpoint` loads the checkpoint and its data (:class:`~landscape.inputs.
CheckpointInputs`), records both in the recipe, and computes one of three results into a
landscape file:

- the curvature at the checkpoint (:func:`~landscape.hessian.compute_curvature`, the
  ``/curvature`` group, merged with the file's earlier sections of the same operator), and on
  request the top eigenvectors as surface directions in a second file;
- per-block spectra with ``blocks`` (:func:`~landscape.hessian.compute_block_spectra`,
  ``/block_spectra``);
- a ratio map over a surface's grid with ``grid`` (:func:`~landscape.hessian.
  compute_ratio_map`, ``/ratio_map``, resumable).

It returns a :class:`CheckpointCurvature`: the result, the file written and the lines that
report both.

Examples
--------
>>> from landscape import CheckpointInputs, curvature_of_checkpoint      # doctest: +SKIP
>>> done = curvature_of_checkpoint("runs/mlp/epoch_0020.pt", top_k=2, min_eig=True,
...                                inputs=CheckpointInputs(subset=512))  # doctest: +SKIP
>>> print("\\n".join(done.lines()))                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import storage
from .._functional import named_tensors
from .._resume import RUN_FIELDS, RunOptions
from .._resume import run_options as run_options_of
from ..checkpoints import Checkpoint
from ..errors import LandscapeError, check_int, on_interrupt
from ..inputs import CheckpointInputs
from ..parameters import select_parameters
from ..recipes import checkpoint_provenance, checkpoint_recipe
from ..surface import Surface, save_directions
from .blocks import BLOCK_GROUPINGS, BlockSpectra, compute_block_spectra
from .directions import eigenvector_directions
from .operator import shard_plan
from .ratio_map import RatioMap, compute_ratio_map
from .results import CurvatureResult, compute_curvature

__all__ = ["CheckpointCurvature", "curvature_of_checkpoint"]

#: Defaults of ``top_k`` and ``tol`` where they are not given: at a point, per block, on a grid.
TOP_K, TOP_K_BLOCKS = 5, 2
TOL_POINT, TOL_GRID = 1e-6, 1e-3


@dataclass(frozen=True)
class CheckpointCurvature:
    """What :func:`curvature_of_checkpoint` computed and wrote.

    Attributes
    ----------
    result : CurvatureResult, BlockSpectra or RatioMap
        The computed result (a curvature result holds only the sections computed now).
    out : str
        The landscape file written.
    seconds : float
        Wall-clock seconds of the computation.
    kept : tuple of str
        Sections of an earlier ``/curvature`` group of ``out`` that were kept (merged).
    directions : str, optional
        The file of eigenvector directions written (``eigvec_directions``).
    n_directions : int
        How many directions it holds.
    eigvec_scale : {"filter", "none"}
        Their scale (filter-normalized or unit eigenvectors).
    """

    result: CurvatureResult | BlockSpectra | RatioMap
    out: str
    seconds: float
    kept: tuple[str, ...] = ()
    directions: str | None = None
    n_directions: int = 0
    eigvec_scale: str = "filter"

    def lines(self, *, unicode: bool = True) -> list[str]:
        """The report: the result's numbers, what they are over and what was written."""
        res = self.result
        if isinstance(res, RatioMap):
            return [*res.lines(unicode=unicode, seconds=self.seconds), f"wrote {self.out}"]
        if isinstance(res, BlockSpectra):
            return [*res.lines(unicode=unicode),
                    f"wrote {self.out} ({res.n_hvp} products in {self.seconds:.1f} s)"]
        out = res.lines(unicode=unicode)
        if res.n_params is not None:  # what the numbers are over: it differs from the surfaces'
            held = "biases and normalization layers held fixed" \
                if res.recipe.get("ignore") == "biasbn" else \
                ("biases and normalization layers included; surfaces and trajectories hold them "
                 "fixed by default (ignore='biasbn' to match)")
            out.append(f"over {res.n_params:,} parameters ({held})")
        fd = res.provenance.get("finite_difference")
        if fd:
            out.append(f"finite-difference HVPs: step h {fd['step']:.3g}, estimated error "
                       f"{fd['error_estimate']:.2g} per unit vector (the eigenvalues' error "
                       "beyond the solver's residual)")
        kept = f"; kept its earlier {', '.join(self.kept)}" if self.kept else ""
        out.append(f"wrote {self.out} ({res.n_hvp} HVPs in {self.seconds:.1f} s{kept})")
        if self.directions is not None:
            how = "filter-normalized" if self.eigvec_scale == "filter" else "unit"
            out.append(f"wrote {self.directions} ({self.n_directions} {how} direction(s) along "
                       "the top eigenvectors; use with load_directions())")
        return out


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _given(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """The options among ``defaults`` given with another value, in the call form."""
    out = []
    for name, default in defaults.items():
        value = options.get(name, default)
        if value is not None and value != default:
            out.append(f"{name}={value!r}" if isinstance(value, str | bool) else f"{name}=...")
    return out


#: Options of a curvature at a point, with their defaults (refused with ``grid``).
_POINT_ONLY = {"top_k": None, "min_eig": False, "trace": False, "density": False,
               "keep_eigenvectors": False, "eigvec_directions": None, "hvp": "autograd",
               "ncv": None, "check_memory": True}
#: Options of a ratio map besides the run options, with their defaults (refused without
#: ``grid``; compute_ratio_map takes them).
_GRID_ONLY = {"warm_start": True, "shard": None}


def curvature_of_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    inputs: CheckpointInputs | None = None,
    split: str = "train",
    grid: str | os.PathLike | None = None,
    blocks: str | None = None,
    eigvec_directions: str | os.PathLike | None = None,
    eigvec_scale: str = "filter",
    command: str | None = None,
    run: RunOptions | None = None,
    **options: Any,
) -> CheckpointCurvature:
    """The curvature of the loss at a checkpoint file, written to a landscape file.

    Parameters
    ----------
    checkpoint : path
        The checkpoint file.
    inputs : CheckpointInputs, optional
        How to load it and which data (default: its own spec and training data; with
        ``grid``, the data the surface recorded).
    split : {"train", "test"}, default "train"
        The split of the loss.
    grid : path, optional
        A surface file computed at this checkpoint: compute the ratio map over its grid
        (:func:`~landscape.hessian.compute_ratio_map`; ``tol`` defaults to 1e-3).
    blocks : str, optional
        ``"layer"``, ``"block"``, ``"attn-mlp"`` or a comma list of globs: per-block spectra
        (:func:`~landscape.hessian.compute_block_spectra`; ``top_k`` defaults to 2, ``tol``
        to 1e-3).
    eigvec_directions : path, optional
        Also write the top one or two eigenvectors as surface directions to this file
        (another file than ``run.out``; read by :func:`~landscape.surface.load_directions`).
    eigvec_scale : {"filter", "none"}, default "filter"
        Filter-normalized eigenvectors (like random directions) or unit eigenvectors.
    command : str, optional
        The command line recorded in the provenance (its first two words are the directions'
        ``source``).
    run : RunOptions, optional
        ``out`` (default: ``<checkpoint stem>_hessian.h5`` beside the checkpoint; with
        ``grid`` the surface file itself, or ``<surface stem>_ratio_map_shardIofN.h5`` for
        ``shard=(i, n)``), ``overwrite``, ``progress``; ``flush_seconds`` and ``max_points``
        apply to a ratio map. Its fields may also be given one by one.
    **options
        Settings of the computation: those of :func:`~landscape.hessian.compute_curvature`
        (``top_k`` (default 5), ``min_eig``, ``trace``, ``density``, ``tol`` (default 1e-6),
        ``operator``, ``hvp``, ``keep_eigenvectors``, ...), of
        :func:`~landscape.hessian.compute_block_spectra` or of
        :func:`~landscape.hessian.compute_ratio_map` (``warm_start``, ``shard``), and
        ``device``.

    Returns
    -------
    CheckpointCurvature
    """
    inputs = CheckpointInputs() if inputs is None else inputs
    opts = run_options_of(run, **{k: options.pop(k) for k in list(options) if k in RUN_FIELDS})
    if options.get("ignore") == "none":
        options["ignore"] = None
    if grid is not None:
        return _grid(checkpoint, inputs, split, grid, blocks, eigvec_directions, command or "",
                     opts, options)
    rank, world = _rank_world()
    out = str(opts.out) if opts.out is not None else str(
        Path(checkpoint).with_name(f"{Path(checkpoint).stem}_hessian.h5"))
    # every rank runs the same solvers (HVPs all-reduced); rank 0 alone holds the output from
    # the start (a second writer fails now, not after the computation), writes and reports
    with storage.output_lock(out) if rank == 0 else contextlib.nullcontext():
        grid_only = ["max_points=..."] if opts.max_points is not None else []
        grid_only += _given(options, _GRID_ONLY)
        if grid_only:
            raise LandscapeError(f"only a ratio map takes {' and '.join(grid_only)}; add "
                                 "grid=...")
        for name in _GRID_ONLY:
            options.pop(name, None)
        if blocks is not None:
            return _blocks(checkpoint, inputs, split, blocks, eigvec_directions, command or "",
                           opts, out, options, rank, world)
        return _point(checkpoint, inputs, split, eigvec_directions, eigvec_scale, command or "",
                      opts, out, options, rank, world)


def _loaded(checkpoint: str | os.PathLike, inputs: CheckpointInputs, split: str,
            command: str, world: int) -> tuple[Checkpoint, Any, dict, dict]:
    """The checkpoint, its data split, recipe and provenance."""
    ckpt = inputs.load(checkpoint)
    data = inputs.datasets(ckpt, [split])[split]
    recipe = checkpoint_recipe(ckpt, inputs.data_spec(ckpt), split=split)
    provenance = checkpoint_provenance(ckpt, checkpoint, command)
    if world > 1:  # the deterministic split of the data over the ranks, for the record
        provenance["distributed"] = shard_plan(data, world)
    return ckpt, data, recipe, provenance


def _point(checkpoint: str | os.PathLike, inputs: CheckpointInputs, split: str,
           eigvec_directions: str | os.PathLike | None, eigvec_scale: str, command: str,
           opts: RunOptions, out: str, options: dict[str, Any], rank: int,
           world: int) -> CheckpointCurvature:
    top_k = options.pop("top_k", None)
    top_k = TOP_K if top_k is None else check_int("top_k", top_k, 0)
    method = options.get("trace_method", "hutchpp")
    check_int("trace_samples", options.get("trace_samples", 99), 3 if method == "hutchpp" else 1)
    check_int("density_steps", options.get("density_steps", 80), 1)
    check_int("density_runs", options.get("density_runs", 5), 1)
    keep = bool(options.pop("keep_eigenvectors", False))
    if (eigvec_directions is not None or keep) and top_k < 1:
        raise LandscapeError("the 'eigvec_directions' and 'keep_eigenvectors' parameters need "
                             "top_k=K with K >= 1")
    if not (top_k or options.get("min_eig") or options.get("trace") or options.get("density")):
        raise LandscapeError("nothing to compute: top_k=0 needs min_eig=True, trace=True or "
                             "density=True")
    storage.check_writable(out, overwrite=opts.overwrite)
    if eigvec_directions is not None:
        _check_directions_out(eigvec_directions, out, opts.overwrite)
    ckpt, data, recipe, provenance = _loaded(checkpoint, inputs, split, command, world)
    device = options.pop("device", None)
    model = ckpt.model if device is None else ckpt.model.to(device)
    if options.get("tol") is None:
        options["tol"] = TOL_POINT
    want = eigvec_directions is not None or keep
    t0 = time.perf_counter()
    res = compute_curvature(model, data, top_k=top_k, keep_eigenvectors=want, recipe=recipe,
                            provenance=provenance, progress=opts.progress and rank == 0,
                            **options)
    seconds = time.perf_counter() - t0
    if rank != 0:
        return CheckpointCurvature(res, out, seconds)
    vectors = res.eigenvector_dicts()[:2] if eigvec_directions is not None else None
    if not keep:
        res = res.without_eigenvectors()
    saved = res.save(out, overwrite=opts.overwrite)
    kept = tuple(s for s in saved.sections if s not in res.sections)
    if vectors is None:
        return CheckpointCurvature(res, out, seconds, kept)
    # until here an interruption leaves nothing; now the curvature is saved
    with on_interrupt(f"the curvature is saved in '{out}'", resumable=False):
        dirs = eigenvector_directions(
            vectors, named_tensors(ckpt.model, "weights"), scale=eigvec_scale,
            ignore="biasbn" if res.recipe.get("ignore") == "biasbn" else "none",
            selection=select_parameters(ckpt.model, "weights"),
            recipe=_directions_recipe(res, ckpt, len(vectors), command))
        save_directions(eigvec_directions, dirs, overwrite=opts.overwrite)
    return CheckpointCurvature(res, out, seconds, kept, str(eigvec_directions), len(vectors),
                               eigvec_scale)


def _directions_recipe(res: CurvatureResult, ckpt: Checkpoint, n: int,
                       command: str) -> dict[str, Any]:
    """The recipe of the eigenvector directions: the eigenpairs and what they were of."""
    words = shlex.split(command)[:2] if command else []
    return {
        "what": "weights",
        "source": " ".join(words) if words else "curvature_of_checkpoint",
        "checkpoint_sha256": ckpt.sha256,
        "eigenvalues": [float(v) for v in res.top_eigenvalues[:n]],
        "which": res.top_which,
        "tol": res.recipe["top"]["tol"],
        "seed": res.recipe["top"]["seed"],
        "loss": res.recipe["loss"],
        "n_samples": res.recipe["n_samples"],
        "sign": "largest-magnitude entry positive",
        **({"operator": res.operator} if res.operator != "hessian" else {}),
    }


def _check_directions_out(path: str | os.PathLike, out: str, overwrite: bool) -> None:
    storage.check_writable(path, overwrite=overwrite)
    p = Path(path)
    if p.exists() and storage.file_kind(p) == "landscape" and \
            "surface" in storage.list_groups(p):
        raise LandscapeError(
            f"eigvec_directions='{path}' holds a surface whose directions must not change; "
            "choose another file"
        )
    if p.resolve() == Path(out).resolve():
        raise LandscapeError(
            "eigvec_directions=... must be another file than out=... (a directions file is "
            "read whole by load_directions())"
        )


def _blocks(checkpoint: str | os.PathLike, inputs: CheckpointInputs, split: str, blocks: str,
            eigvec_directions: str | os.PathLike | None, command: str, opts: RunOptions,
            out: str, options: dict[str, Any], rank: int, world: int) -> CheckpointCurvature:
    """Per-block spectra into the ``/block_spectra`` group."""
    point_only = _given({**options, "eigvec_directions": eigvec_directions},
                        {k: _POINT_ONLY[k] for k in
                         ("min_eig", "keep_eigenvectors", "eigvec_directions", "ncv")})
    if point_only:
        raise LandscapeError(f"the 'blocks' parameter computes per-block spectra; drop "
                             f"{', '.join(point_only)}")
    for name in ("trace", "density", "trace_method", "hvp", "min_eig", "keep_eigenvectors",
                 "ncv", "check_memory"):
        options.pop(name, None)  # every block gets its trace and density; autograd HVPs
    BlockSpectra.check_output(out, overwrite=opts.overwrite)
    ckpt, data, recipe, provenance = _loaded(checkpoint, inputs, split, command, world)
    device = options.pop("device", None)
    model = ckpt.model if device is None else ckpt.model.to(device)
    groups = blocks if blocks in BLOCK_GROUPINGS else \
        [g.strip() for g in blocks.split(",") if g.strip()]
    for name, default in (("top_k", TOP_K_BLOCKS), ("tol", TOL_GRID)):
        if options.get(name) is None:
            options[name] = default
    t0 = time.perf_counter()
    res = compute_block_spectra(model, data, blocks=groups, recipe=recipe,
                                provenance=provenance, **options)
    seconds = time.perf_counter() - t0
    if rank == 0:
        res.save(out, overwrite=opts.overwrite)
    return CheckpointCurvature(res, out, seconds)


def _grid(checkpoint: str | os.PathLike, inputs: CheckpointInputs, split: str,
          grid: str | os.PathLike, blocks: str | None,
          eigvec_directions: str | os.PathLike | None, command: str, opts: RunOptions,
          options: dict[str, Any]) -> CheckpointCurvature:
    """The ratio map over the grid of the surface file ``grid``."""
    selection = _given(options, {"params": None, "exclude": None, "include_frozen": False})
    if selection:
        raise LandscapeError(
            f"{', '.join(selection)} do not apply to grid=...: a ratio map uses the parameter "
            "selection recorded with the surface's directions")
    if options.get("operator", "hessian") != "hessian" or blocks is not None:
        raise LandscapeError("the 'operator' and 'blocks' parameters do not apply to grid=... "
                             "(a ratio map of the Hessian); leave out the 'grid' parameter")
    point_only = _given({**options, "eigvec_directions": eigvec_directions}, _POINT_ONLY)
    if point_only:
        raise LandscapeError(
            f"the 'grid' parameter asks for a ratio map (λmax, λmin, |λmin/λmax| at every "
            f"grid point); drop {', '.join(point_only)} or leave out the 'grid' parameter")
    for name in (*_POINT_ONLY, "operator", "params", "exclude", "include_frozen",
                 "trace_method", "trace_samples", "density_steps", "density_runs"):
        options.pop(name, None)
    surf = Surface.load(grid)  # its recipe names the data of the map
    shard = options.get("shard")
    out = str(opts.out) if opts.out is not None else str(grid) if shard is None else str(
        Path(grid).with_name(f"{Path(grid).stem}_ratio_map_shard{shard[0]}of{shard[1]}.h5"))
    storage.check_writable(out, overwrite=opts.overwrite)
    ckpt = inputs.load(checkpoint)
    inputs = _surface_data(inputs, surf)
    spec = inputs.data_spec(ckpt)
    data = inputs.datasets(ckpt, [split])[split]
    if options.get("tol") is None:
        options["tol"] = TOL_GRID
    t0 = time.perf_counter()
    rm = compute_ratio_map(
        ckpt.model, grid, data, out=out, overwrite=opts.overwrite, progress=opts.progress,
        flush_seconds=opts.flush_seconds, max_points=opts.max_points,
        recipe=checkpoint_recipe(ckpt, spec, split=split, model=False),
        provenance=checkpoint_provenance(None, checkpoint, command), **options)
    return CheckpointCurvature(rm, out, time.perf_counter() - t0)


def _surface_data(inputs: CheckpointInputs, surf: Surface) -> CheckpointInputs:
    """``inputs`` with the surface's recorded data where they name none (each of root,
    subset and kwargs given in ``inputs`` still wins)."""
    recorded = surf.recipe.get("data")
    if inputs.data is not None or not isinstance(recorded, dict):
        return inputs
    from ..data import DataSpec

    base = DataSpec.from_dict(recorded)
    return dataclasses.replace(
        inputs, data=base.name, root=inputs.root if inputs.root is not None else base.root,
        subset=inputs.subset if inputs.subset is not None else base.subset,
        kwargs=dict(inputs.kwargs) or dict(base.kwargs))
