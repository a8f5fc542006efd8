"""``landscape hessian``: curvature of a checkpoint's loss, or a ratio map over a surface's grid."""

from __future__ import annotations

import argparse

from landscape.hessian.blocks import BLOCK_GROUPINGS
from landscape.hessian.checkpoint import TOL_GRID, TOL_POINT, TOP_K, curvature_of_checkpoint
from landscape.hessian.directions import SCALES
from landscape.hessian.ggn import OPERATORS
from landscape.hessian.operator import HVPS
from landscape.hessian.results import TRACE_METHODS
from landscape.inputs import RunOptions

from ._common import (
    DTYPES,
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    add_executor_args,
    add_memory_check_arg,
    add_progress_arg,
    check_device,
    command_line,
    default_out,
    distributed,
    dtype_arg,
    examples,
    flag_message,
    float_arg,
    inputs_of,
    int_arg,
    loss_arg,
    selection_kwargs,
    shard_arg,
    submit_jobs,
    unicode_output,
    uses_jobs,
)


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
            "for i in 0 1; do landscape hessian final.pt --grid s.h5 --no-warm-start "
            "--shard $i/2 & done; wait; landscape merge map.h5 s_ratio_map_shard*of2.h5",
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
                   help=f"number of top eigenvalues (default {TOP_K}; 0 for none)")
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
    g.add_argument("--shard", type=shard_arg, metavar="I/N",
                   help="compute only shard I of N of the map's points (every N-th point "
                        "from the I-th, in raster order) into a file of its own (default "
                        "<surface>_ratio_map_shardIofN.h5), resumable; needs --no-warm-start; "
                        "join the N files with 'landscape merge OUT SHARD...'")
    e = p.add_argument_group("computation")
    e.add_argument("--tol", type=float_arg("tol", 0.0, closed="neither"),
                   help=f"relative residual of the eigenpairs (default {TOL_POINT:g}; "
                        f"{TOL_GRID:g} with --grid)")
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
    add_executor_args(p)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if uses_jobs(args):
        return submit_jobs(args, default_out(args.grid or args.checkpoint, "ratio_map"))
    check_device(args.device)
    with distributed(args.device) as (rank, _world, device):
        done = curvature_of_checkpoint(
            args.checkpoint, inputs=inputs_of(args, dtype=False), split=args.split,
            grid=args.grid, blocks=args.blocks, eigvec_directions=args.eigvec_directions,
            eigvec_scale=args.eigvec_scale, command=command_line(args), top_k=args.top_k,
            min_eig=args.min, trace=args.trace, trace_method=args.trace_method,
            trace_samples=args.trace_samples, density=args.density,
            density_steps=args.density_steps, density_runs=args.density_runs,
            operator=args.operator, keep_eigenvectors=args.save_eigenvectors,
            warm_start=not args.no_warm_start, shard=args.shard, tol=args.tol,
            batch_size=args.batch_size,
            solver_dtype=DTYPES[args.solver_dtype], ignore=args.ignore, seed=args.seed,
            max_hvp=args.max_hvp, hvp=args.hvp, ncv=args.ncv,
            check_memory=not args.no_check_memory, loss=loss_arg(args.loss),
            dtype=dtype_arg(args), device=device, **selection_kwargs(args),
            run=RunOptions(args.out, args.overwrite, not args.no_progress, args.flush_seconds,
                           args.max_points))
    if rank == 0:
        for line in done.lines(unicode=unicode_output()):
            print(flag_message(line, args.root_parser, "hessian"))
    return 0
