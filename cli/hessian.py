"""``landscape hessian``: curvature of a checkpoint's loss, or a ratio map over a surface's grid."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from landscape import storage
from landscape._functional import named_tensors
from landscape.checkpoints import Checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError, check_float, check_int, on_interrupt
from landscape.hessian.blocks import BLOCK_GROUPINGS, BlockSpectra, compute_block_spectra
from landscape.hessian.directions import SCALES, eigenvector_directions
from landscape.hessian.ggn import OPERATORS
from landscape.hessian.operator import HVPS, shard_plan
from landscape.hessian.ratio_map import compute_ratio_map
from landscape.hessian.results import TRACE_METHODS, CurvatureResult, compute_curvature
from landscape.models import parse_model_kwargs
from landscape.parameters import select_parameters
from landscape.recipes import checkpoint_provenance, checkpoint_recipe
from landscape.surface import Surface, save_directions

from ._common import (
    DTYPES,
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    add_memory_check_arg,
    add_progress_arg,
    check_device,
    command_line,
    data_spec,
    default_out,
    distributed,
    dtype_arg,
    examples,
    float_arg,
    int_arg,
    load_ckpt,
    load_datasets,
    loss_arg,
    selection_kwargs,
)

_TOP_K = 5
_TOL_POINT, _TOL_GRID = 1e-6, 1e-3


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hessian",
        help="Hessian curvature: top eigenvalues, λmin, trace, density, or a ratio map",
        description="Curvature of the loss at a checkpoint from exact Hessian-vector products: "
                    "top-k eigenvalues (Lanczos), the smallest eigenvalue and |λmin/λmax|, a "
                    "trace estimate (Hutch++ or Hutchinson) and the eigenvalue density "
                    "(stochastic Lanczos quadrature), written to the /curvature group of an "
                    "HDF5 file. With --grid SURFACE.h5: λmax, λmin and |λmin/λmax| at every "
                    "point of that surface's grid (Li et al.'s convexity map), warm-started "
                    "and resumable, written to its /ratio_map group.",
        epilog=examples(
            "landscape hessian runs/mlp/epoch_0020.pt --top-k 5 --min --trace",
            "landscape hessian runs/mlp/epoch_0020.pt --density --out curv.h5",
            "landscape hessian runs/mlp/epoch_0020.pt --top-k 2 "
            "--eigvec-directions eig.h5",
            "landscape hessian runs/mlp/epoch_0020.pt --grid runs/mlp/epoch_0020_surface.h5",
            "landscape hessian runs/mlp/epoch_0020.pt --operator ggn --top-k 2 --trace",
            "landscape hessian runs/vit/epoch_0006.pt --blocks block --top-k 1 "
            "--trace-samples 12 --density-steps 20 --density-runs 1",
            "torchrun --nproc-per-node 4 -m landscape.cli hessian final.pt --grid s.h5",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint at which to compute")
    add_checkpoint_args(p)
    add_data_args(p)
    p.add_argument("--split", choices=["train", "test"], default="train",
                   help="data split of the loss (default: train)")
    r = p.add_argument_group("results at the checkpoint")
    r.add_argument("--top-k", type=int_arg("top_k", 0), metavar="K",
                   help=f"number of top eigenvalues (default {_TOP_K}; 0 for none)")
    r.add_argument("--min", action="store_true",
                   help="also the smallest eigenvalue and |λmin/λmax|")
    r.add_argument("--trace", action="store_true", help="also a trace estimate")
    r.add_argument("--trace-method", choices=TRACE_METHODS, default="hutchpp")
    r.add_argument("--trace-samples", type=int_arg("trace_samples", 1), default=99, metavar="M",
                   help="HVPs of the trace estimate (default 99)")
    r.add_argument("--density", action="store_true",
                   help="also the eigenvalue density (stochastic Lanczos quadrature)")
    r.add_argument("--density-steps", type=int_arg("density_steps", 1), default=80, metavar="M",
                   help="Lanczos steps per SLQ run (default 80)")
    r.add_argument("--density-runs", type=int_arg("density_runs", 1), default=5, metavar="R",
                   help="SLQ runs (default 5)")
    r.add_argument("--operator", choices=OPERATORS, default="hessian",
                   help="curvature matrix: the Hessian, the generalised Gauss-Newton J^T H_L J "
                        "or the empirical Fisher (mean of per-sample gradient outer products)")
    r.add_argument("--blocks", metavar="|".join(BLOCK_GROUPINGS) + "|GLOB,...",
                   help="per-block spectra instead: top eigenvalues (--top-k, default 2), "
                        "Hutch++ trace (--trace-samples) and SLQ density (--density-steps, "
                        "--density-runs) of each block's restriction, and their heterogeneity "
                        "(mean pairwise Jensen-Shannon distance of the block densities, Zhang "
                        "et al. 2024), written to the /block_spectra group")
    r.add_argument("--save-eigenvectors", action="store_true",
                   help="store the top eigenvectors (k x n float32) in /curvature")
    r.add_argument("--eigvec-directions", metavar="FILE.h5",
                   help="also write the top-1/2 eigenvectors as surface directions "
                        "(use with 'landscape surface --dir-file FILE.h5')")
    r.add_argument("--eigvec-scale", choices=SCALES, default="filter",
                   help="'filter': filter-normalized like random directions (then no longer "
                        "exact eigenvectors); 'none': unit eigenvectors")
    g = p.add_argument_group("ratio map over a surface")
    g.add_argument("--grid", metavar="SURFACE.h5",
                   help="compute λmax, λmin, |λmin/λmax| at every point of this surface's grid "
                        "(CKPT must be the surface's checkpoint)")
    g.add_argument("--max-points", type=int_arg("max_points", 0), metavar="N",
                   help="stop after N new points (re-run to resume)")
    g.add_argument("--no-warm-start", action="store_true",
                   help="start every point from a random vector instead of the neighbour's "
                        "eigenvectors")
    g.add_argument("--flush-seconds", type=float_arg("flush_seconds", 0.0), default=10.0,
                   help="write finished points to disk at least this often")
    e = p.add_argument_group("computation")
    e.add_argument("--tol", type=float_arg("tol", 0.0, closed="neither"),
                   help=f"relative residual of the eigenpairs (default {_TOL_POINT:g}; "
                        f"{_TOL_GRID:g} with --grid)")
    e.add_argument("--batch-size", type=int_arg("batch_size", 1), default=512)
    e.add_argument("--solver-dtype", choices=sorted(DTYPES), default="float64",
                   help="dtype of the solvers' vectors (Krylov basis, probes) on the device "
                        "(default float64; float32 halves the basis memory, residuals only "
                        "to ~1e-6 of λmax)")
    e.add_argument("--ignore", choices=["none", "biasbn"], default="none",
                   help="'biasbn': hold biases and BN parameters fixed (default: the Hessian "
                        "over every parameter)")
    e.add_argument("--seed", type=int_arg("seed", 0),
                   default=0, help="seed of start vectors and probes")
    e.add_argument("--max-hvp", type=int_arg("max_hvp", 1),
                   metavar="N", help="HVP budget per eigen-solve")
    e.add_argument("--hvp", choices=HVPS, default="autograd",
                   help="'autograd': exact products (double backward); 'finite-difference': "
                        "central differences of gradients (models whose kernels have no "
                        "double backward, e.g. fused attention; less memory), step and "
                        "estimated error recorded and printed; use with --dtype float64")
    e.add_argument("--ncv", type=int_arg("ncv", 3), metavar="N",
                   help="largest Krylov basis of the eigen-solves (2N vectors of the solver "
                        "dtype; default 20 for --top-k); smaller fits larger models")
    add_memory_check_arg(e)
    add_compute_args(p, group=e, dtype_default="float32",
                     dtype_help="dtype of the Hessian-vector products (default float32, ~6x "
                                "cheaper than float64 on ResNet-20; the solvers accumulate in "
                                "float64 and the stored numbers stay within 1e-5 relative of "
                                "float64, a note in the file says so); float64 for tight "
                                "tolerances")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="FILE.h5",
                   help="output file (default: <checkpoint>_hessian.h5 beside it; with --grid "
                        "the surface file itself); other groups of the file are kept")
    o.add_argument("--overwrite", action="store_true",
                   help="replace results computed with another recipe")
    add_progress_arg(p)
    p.set_defaults(func=run)


def _symbols() -> bool:
    """Whether stdout can print λ and ±."""
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "λ±".encode(enc)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _check_common(args: argparse.Namespace) -> None:
    if args.tol is not None:
        check_float("tol", args.tol, 0.0, closed="neither")
    check_int("batch_size", args.batch_size, 1)
    check_int("seed", args.seed, 0)
    if args.max_hvp is not None:
        check_int("max_hvp", args.max_hvp, 1)
    check_device(args.device)


def run(args: argparse.Namespace) -> int:
    _check_common(args)
    if args.grid is not None:
        if args.params or args.exclude or args.include_frozen:
            raise LandscapeError(
                "--params/--exclude/--include-frozen do not apply to --grid: a ratio map uses "
                "the parameter selection recorded with the surface's directions"
            )
        if args.operator != "hessian" or args.blocks is not None:
            raise LandscapeError("--operator and --blocks do not apply to --grid (a ratio map "
                                 "of the Hessian); run without --grid")
        return _run_grid(args)
    return _run_point(args)


# -------------------------------------------------------------------------- one point
def _run_point(args: argparse.Namespace) -> int:
    # Under torchrun every rank holds a shard of the data and the HVPs are all-reduced, so
    # all ranks run the same solvers; rank 0 alone holds the output (from the start: a second
    # writer fails now, not after the computation), writes and prints.
    with distributed(args.device) as (rank, world, device):
        out = args.out or default_out(args.checkpoint, "hessian")
        with storage.output_lock(out) if rank == 0 else contextlib.nullcontext():
            return _compute_point(args, rank, world, device)


def _compute_point(args: argparse.Namespace, rank: int = 0, world: int = 1,
                   device: str | None = None) -> int:
    if args.max_points is not None or args.no_warm_start:
        raise LandscapeError("--max-points and --no-warm-start apply to ratio maps; add --grid")
    if args.blocks is not None:
        return _compute_blocks(args, rank, world, device)
    top_k = _TOP_K if args.top_k is None else check_int("top_k", args.top_k, 0)
    check_int("trace_samples", args.trace_samples, 3 if args.trace_method == "hutchpp" else 1)
    check_int("density_steps", args.density_steps, 1)
    check_int("density_runs", args.density_runs, 1)
    if (args.eigvec_directions or args.save_eigenvectors) and top_k < 1:
        raise LandscapeError("--eigvec-directions and --save-eigenvectors need --top-k >= 1")
    if not (top_k or args.min or args.trace or args.density):
        raise LandscapeError("nothing to compute: --top-k 0 needs --min, --trace or --density")
    loss = loss_arg(args.loss)
    out = args.out or default_out(args.checkpoint, "hessian")
    storage.check_writable(out, overwrite=args.overwrite)
    if args.eigvec_directions:
        _check_directions_out(args.eigvec_directions, out, args.overwrite)
    ckpt = load_ckpt(args, args.checkpoint)
    spec = data_spec(args, ckpt)
    data = load_datasets(spec, [args.split], ckpt.model)[args.split]
    recipe = checkpoint_recipe(ckpt, spec, split=args.split)
    provenance = checkpoint_provenance(ckpt, args.checkpoint, command_line(args))
    if world > 1:  # the deterministic split of the data over the ranks, for the record
        provenance["distributed"] = shard_plan(data, world)
    model = ckpt.model.to(device or args.device)
    want_vectors = bool(args.eigvec_directions or args.save_eigenvectors)
    t0 = time.perf_counter()
    res = compute_curvature(
        model, data, top_k=top_k, min_eig=args.min, trace=args.trace,
        trace_method=args.trace_method, trace_samples=args.trace_samples,
        density=args.density, density_steps=args.density_steps,
        density_runs=args.density_runs, tol=args.tol if args.tol is not None else _TOL_POINT,
        seed=args.seed, loss=loss, batch_size=args.batch_size,
        ignore=None if args.ignore == "none" else args.ignore, dtype=dtype_arg(args),
        max_hvp=args.max_hvp, keep_eigenvectors=want_vectors, recipe=recipe,
        provenance=provenance, progress=not args.no_progress and rank == 0,
        solver_dtype=DTYPES[args.solver_dtype], hvp=args.hvp, operator=args.operator,
        ncv=args.ncv, check_memory=not args.no_check_memory, **selection_kwargs(args),
    )
    dt = time.perf_counter() - t0
    if rank != 0:
        return 0
    vectors = res.eigenvector_dicts()[:2] if args.eigvec_directions else None
    if want_vectors and not args.save_eigenvectors:
        top = {**res.recipe["top"], "eigenvectors": False}
        res = dataclasses.replace(res, eigenvectors=None, eigenvector_names=None,
                                  eigenvector_shapes=None, recipe={**res.recipe, "top": top})
    saved = res.save(out, overwrite=args.overwrite)
    # until here an interruption leaves nothing (the CLI says so); the rest only prints and
    # writes the optional directions file
    with on_interrupt(f"the curvature is saved in '{out}'", resumable=False):
        return _report(args, res, saved, out, dt, vectors, ckpt)


def _compute_blocks(args: argparse.Namespace, rank: int = 0, world: int = 1,
                    device: str | None = None) -> int:
    """--blocks: per-block spectra into the /block_spectra group."""
    point_only = [name for name, on in (
        ("--min", args.min), ("--save-eigenvectors", args.save_eigenvectors),
        ("--eigvec-directions", args.eigvec_directions is not None)) if on]
    if point_only:
        raise LandscapeError(f"--blocks computes per-block spectra; drop {', '.join(point_only)}")
    out = args.out or default_out(args.checkpoint, "hessian")
    BlockSpectra.check_output(out, overwrite=args.overwrite)
    ckpt = load_ckpt(args, args.checkpoint)
    spec = data_spec(args, ckpt)
    data = load_datasets(spec, [args.split], ckpt.model)[args.split]
    recipe = checkpoint_recipe(ckpt, spec, split=args.split)
    provenance = checkpoint_provenance(ckpt, args.checkpoint, command_line(args))
    if world > 1:
        provenance["distributed"] = shard_plan(data, world)
    blocks = args.blocks if args.blocks in BLOCK_GROUPINGS else \
        [g.strip() for g in args.blocks.split(",") if g.strip()]
    t0 = time.perf_counter()
    res = compute_block_spectra(
        ckpt.model.to(device or args.device), data, blocks=blocks, operator=args.operator,
        top_k=2 if args.top_k is None else args.top_k, trace_samples=args.trace_samples,
        density_steps=args.density_steps, density_runs=args.density_runs,
        tol=args.tol if args.tol is not None else _TOL_GRID, seed=args.seed,
        loss=loss_arg(args.loss), batch_size=args.batch_size,
        ignore=None if args.ignore == "none" else args.ignore, dtype=dtype_arg(args),
        max_hvp=args.max_hvp, solver_dtype=DTYPES[args.solver_dtype], recipe=recipe,
        provenance=provenance, **selection_kwargs(args),
    )
    dt = time.perf_counter() - t0
    if rank != 0:
        return 0
    res.save(out, overwrite=args.overwrite)
    for line in res.lines(unicode=_symbols()):
        print(line)
    print(f"wrote {out} ({res.n_hvp} products in {dt:.1f} s)")
    return 0


def _report(args: argparse.Namespace, res: CurvatureResult, saved: CurvatureResult, out: str,
            dt: float, vectors: list[dict[str, torch.Tensor]] | None, ckpt: Checkpoint) -> int:
    """Print the results and what was written; write --eigvec-directions."""
    unicode = _symbols()
    for line in res.lines(unicode=unicode):
        print(line)
    if res.n_params is not None:  # what the numbers are over: it differs from the surfaces'
        held = "biases and normalization layers held fixed" if args.ignore == "biasbn" else \
            ("biases and normalization layers included; surfaces and trajectories hold them "
             "fixed by default (--ignore biasbn to match)")
        print(f"over {res.n_params:,} parameters ({held})")
    fd = res.provenance.get("finite_difference")
    if fd:
        print(f"finite-difference HVPs: step h {fd['step']:.3g}, estimated error "
              f"{fd['error_estimate']:.2g} per unit vector (the eigenvalues' error beyond the "
              "solver's residual)")
    kept = [s for s in saved.sections if s not in res.sections]
    print(f"wrote {out} ({res.n_hvp} HVPs in {dt:.1f} s"
          + (f"; kept its earlier {', '.join(kept)}" if kept else "") + ")")
    if vectors is not None:
        dirs = eigenvector_directions(
            vectors, named_tensors(ckpt.model, "weights"), scale=args.eigvec_scale,
            ignore="biasbn" if args.ignore == "biasbn" else "none",
            selection=select_parameters(ckpt.model, "weights"),
            recipe={
                "what": "weights",
                "source": "landscape hessian",
                "checkpoint_sha256": ckpt.sha256,
                "eigenvalues": [float(v) for v in res.top_eigenvalues[:len(vectors)]],
                "which": res.top_which,
                "tol": res.recipe["top"]["tol"],
                "seed": args.seed,
                "loss": res.recipe["loss"],
                "n_samples": res.recipe["n_samples"],
                "sign": "largest-magnitude entry positive",
                **({"operator": res.operator} if res.operator != "hessian" else {}),
            },
        )
        save_directions(args.eigvec_directions, dirs, overwrite=args.overwrite)
        how = "filter-normalized" if args.eigvec_scale == "filter" else "unit"
        print(f"wrote {args.eigvec_directions} ({len(vectors)} {how} direction(s) along the "
              "top eigenvectors; use with 'landscape surface --dir-file')")
    return 0


def _check_directions_out(path: str, out: str, overwrite: bool) -> None:
    storage.check_writable(path, overwrite=overwrite)
    p = Path(path)
    if p.exists() and storage.file_kind(p) == "landscape" and \
            "surface" in storage.list_groups(p):
        raise LandscapeError(
            f"--eigvec-directions '{path}' holds a surface whose directions must not change; "
            "choose another file"
        )
    if Path(path).resolve() == Path(out).resolve():
        raise LandscapeError(
            "--eigvec-directions must be another file than --out (a directions file is read "
            "whole by 'landscape surface --dir-file')"
        )


# -------------------------------------------------------------------------- ratio map
def _run_grid(args: argparse.Namespace) -> int:
    point_only = [name for name, on in (
        ("--top-k", args.top_k is not None), ("--min", args.min), ("--trace", args.trace),
        ("--density", args.density), ("--save-eigenvectors", args.save_eigenvectors),
        ("--eigvec-directions", args.eigvec_directions is not None)) if on]
    if args.hvp != "autograd":
        point_only.append("--hvp")
    if point_only:
        raise LandscapeError(
            f"--grid computes a ratio map (λmax, λmin, |λmin/λmax| at every grid point); "
            f"drop {', '.join(point_only)} or run without --grid"
        )
    if args.max_points is not None:
        check_int("max_points", args.max_points, 0)
    check_float("flush_seconds", args.flush_seconds, 0.0)
    loss = loss_arg(args.loss)
    surf = Surface.load(args.grid)  # its recipe names the data of the map
    out = args.out or args.grid
    storage.check_writable(out, overwrite=args.overwrite)
    ckpt = load_ckpt(args, args.checkpoint)
    spec = _grid_data_spec(args, surf, ckpt)
    data = load_datasets(spec, [args.split], ckpt.model)[args.split]
    recipe = checkpoint_recipe(ckpt, spec, split=args.split, model=False)
    provenance = checkpoint_provenance(None, args.checkpoint, command_line(args))
    t0 = time.perf_counter()
    with distributed(args.device) as (rank, _world, device):
        rm = compute_ratio_map(
            ckpt.model, args.grid, data, loss=loss, batch_size=args.batch_size,
            tol=args.tol if args.tol is not None else _TOL_GRID,
            warm_start=not args.no_warm_start, out=out, overwrite=args.overwrite,
            progress=not args.no_progress, flush_seconds=args.flush_seconds,
            max_points=args.max_points, ignore=None if args.ignore == "none" else args.ignore,
            dtype=dtype_arg(args), device=device, max_hvp=args.max_hvp, seed=args.seed,
            recipe=recipe, provenance=provenance, solver_dtype=DTYPES[args.solver_dtype],
        )
    dt = time.perf_counter() - t0
    if rank != 0:
        return 0
    lam = "λ" if _symbols() else "lambda_"
    grid = f"{len(rm.x)}" if rm.y is None else f"{len(rm.y)}x{len(rm.x)}"
    line = f"ratio map {grid}: {rm.n_done}/{rm.n_points} points"
    ok = rm.done & np.isfinite(rm.ratio)
    if ok.any():
        r = rm.ratio[ok]
        line += (f", |{lam}min/{lam}max| {r.min():.3g} to {r.max():.3g} (median "
                 f"{np.median(r):.3g}), {lam}max {rm.lambda_max[ok].min():.4g} to "
                 f"{rm.lambda_max[ok].max():.4g}")
    n_pts = max(rm.n_done, 1)
    line += f", {rm.total_hvp} HVPs ({rm.total_hvp / n_pts:.1f}/point) in {dt:.1f} s"
    print(line)
    bad = int(np.sum(rm.done & ~np.isfinite(rm.lambda_max)))
    if bad:
        print(f"note: {bad} points have non-finite curvature (diverged loss); they are NaN")
    unresolved = int(np.sum(rm.done & np.isin(rm.status, (1, 2, 3))))
    if unresolved:
        print(f"note: {unresolved} points have no ratio ({lam}min or {lam}max not resolved "
              "within the HVP budget: NaN, see /ratio_map/ratio_status); raise --max-hvp")
    print(f"wrote {out}")
    return 0


def _grid_data_spec(args: argparse.Namespace, surf: Surface, ckpt) -> DataSpec:
    """--data if given, else the surface's data spec, else the checkpoint's training data."""
    recorded = surf.recipe.get("data")
    if args.data is not None or not isinstance(recorded, dict):
        return data_spec(args, ckpt)
    base = DataSpec.from_dict(recorded)
    kwargs = parse_model_kwargs(args.data_kwargs) if args.data_kwargs else dict(base.kwargs)
    return DataSpec(
        name=base.name,
        root=args.data_root if args.data_root is not None else base.root,
        subset=args.subset if args.subset is not None else base.subset,
        kwargs=kwargs,
    )
