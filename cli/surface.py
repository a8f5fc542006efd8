"""``landscape surface``: a 1D or 2D loss/accuracy surface of a checkpoint, in HDF5."""

from __future__ import annotations

import argparse
import time

from landscape.checkpoint_surface import (
    DIRECTION_KINDS,
    compute_checkpoint_surface,
    summary_lines,
)
from landscape.directions import IGNORES, NORMS
from landscape.evaluation import BN_MODES
from landscape.inputs import RunOptions

from ._common import (
    DIRECTION_DTYPES,
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    add_executor_args,
    add_memory_check_arg,
    add_progress_arg,
    batch_size_arg,
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
    parse_splits,
    selection_kwargs,
    shard_arg,
    submit_jobs,
    uses_jobs,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "surface",
        help="loss/accuracy surface around a checkpoint along 1 or 2 directions",
        description="Evaluate train/test loss and accuracy on a grid along filter-normalized "
                    "random directions (default), directions from a file, the line to a "
                    "second checkpoint, the plane through three, or the Hessian's "
                    "eigenvectors (--directions hessian: the top two; hessian-topbottom: the "
                    "largest and the smallest eigenvalue's, written to the file's "
                    "/hessian_surface group beside the random /surface). Re-running the same "
                    "command resumes an unfinished file.",
        epilog=examples(
            "landscape surface runs/mlp/epoch_0020.pt --x=-1:1:51 --y=-1:1:51",
            "landscape surface a.pt --interpolate b.pt --x=-0.5:1.5:41 --out ab.h5",
            "landscape surface final.pt --dir-file traj.h5 --x=-5:25:31 --y=-10:10:21",
            "landscape surface final.pt --directions hessian-topbottom --x=-1:1:21 "
            "--y=-1:1:21 --hessian-samples 500",
            "for i in 0 1 2 3; do landscape surface final.pt --x=-1:1:51 --y=-1:1:51 "
            "--shard $i/4 & done; wait; landscape merge s.h5 final_surface_shard*of4.h5",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint at the origin")
    add_checkpoint_args(p)
    add_data_args(p)
    p.add_argument("--splits", default="train,test", help="data splits to evaluate")
    g = p.add_argument_group("grid")
    g.add_argument("--x", required=True, metavar="MIN:MAX:NUM", help="grid along direction x")
    g.add_argument("--y", metavar="MIN:MAX:NUM", help="grid along direction y (2D)")
    d = p.add_argument_group("directions")
    d.add_argument("--dir-type", choices=["weights", "states"], default="weights",
                   help="perturb parameters only, or the state_dict incl. BN running stats")
    d.add_argument("--norm", choices=NORMS,
                   help="normalization (default filter; for --directions hessian*: none, "
                        "the unit eigenvectors)")
    d.add_argument("--ignore", choices=IGNORES, default="biasbn",
                   help="'biasbn': zero direction for biases and BN parameters")
    d.add_argument("--seed", type=int_arg("seed", 0), default=0,
                   help="seed of direction x (y uses seed+1)")
    d.add_argument("--orthogonal", action="store_true",
                   help="make direction y orthogonal to x (filter norms kept)")
    d.add_argument("--directions", choices=DIRECTION_KINDS, default="random",
                   help="random (default); hessian: the Hessian's top eigenvectors (top two "
                        "in 2D); hessian-topbottom: those of its largest and smallest "
                        "eigenvalue (2D). Hessian surfaces go to /hessian_surface, with the "
                        "eigenvalues in their directions' recipe; unit eigenvectors unless "
                        "--norm filter (then no longer eigenvectors); --seed seeds the "
                        "Lanczos start vector")
    d.add_argument("--hessian-samples", type=int_arg("hessian_samples", 1), metavar="N",
                   help="Hessian directions: the loss of the first N training samples (of "
                        "a fixed permutation; default all the surface's training data)")
    d.add_argument("--hessian-tol", type=float_arg("hessian_tol", 0.0, closed="neither"),
                   default=1e-6, metavar="TOL",
                   help="Hessian directions: relative residual of the eigenpairs (float64 "
                        "HVPs; default 1e-6)")
    d.add_argument("--n-directions", type=int_arg("n_directions", 1), default=1, metavar="K",
                   help="K independent random direction pairs on the same grid (seeds --seed, "
                        "--seed+2, ...) in one /surfaces group: every surface metric of "
                        "'landscape compare' then gets mean ± sd and a bootstrap interval")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--dir-file", metavar="FILE.h5",
                     help="directions saved in a surface/trajectory/directions file, or a "
                          "direction file of Li et al.'s code (weights or states, told by "
                          "the number of tensors)")
    src.add_argument("--interpolate", metavar="CKPT_B", help="1D line from CKPT to CKPT_B")
    src.add_argument("--plane", nargs=2, metavar=("CKPT_B", "CKPT_C"),
                     help="2D plane through CKPT, CKPT_B, CKPT_C")
    e = p.add_argument_group("evaluation")
    e.add_argument("--bn", choices=BN_MODES, default="eval",
                   help="BatchNorm: checkpoint statistics, or recalibrated at every point")
    e.add_argument("--bn-batches", type=int_arg("bn_batches", 1), default=10)
    e.add_argument("--batch-size", type=batch_size_arg, default="auto",
                   help="evaluation batch size, or 'auto' to choose it from model and data "
                        "sizes (recorded in the file)")
    e.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="forward passes under autocast in bf16/fp16 (recorded in the file)")
    e.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default="auto",
                   help="channels_last memory format (default: chosen for conv nets on the CPU "
                        "in float32, where it measured 1.2-1.9x faster; recorded in the file)")
    e.add_argument("--rel-precision", type=float_arg("rel_precision", 0.0, closed="neither"),
                   metavar="R",
                   help="evaluate each point batch by batch, samples in a seeded random order, "
                        "until the standard error of its mean loss is <= R x |loss| (at least "
                        "2 batches and 256 samples) or the data run out; the samples used "
                        "per point are stored (e.g. 0.01)")
    add_compute_args(p, group=e, device_help="evaluation device (cpu, cuda, cuda:N, mps)",
                     dtype_help="evaluation dtype (default float32)")
    e.add_argument("--direction-dtype", choices=sorted(DIRECTION_DTYPES),
                   help="hold the directions in this dtype (bfloat16/float16 halve their "
                        "memory where it binds; default: the model's dtype)")
    add_memory_check_arg(e)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="FILE.h5",
                   help="output file (default: <checkpoint>_surface.h5 beside it)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace an existing output computed with another recipe")
    o.add_argument("--shard", type=shard_arg, metavar="I/N",
                   help="compute only shard I of N of the grid's points (every N-th point "
                        "from the I-th) into a file of its own (default "
                        "<checkpoint>_surface_shardIofN.h5; also with --n-directions), "
                        "resumable; join the N files with "
                        "'landscape merge OUT SHARD...'")
    o.add_argument("--flush-seconds", type=float_arg("flush_seconds", 0.0), default=10.0,
                   help="write finished points to disk at least this often")
    o.add_argument("--no-full-check", action="store_true",
                   help="with --subset, skip the one evaluation of the origin on the full "
                        "data that says how far the subset's values are from it")
    add_executor_args(p)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if uses_jobs(args):
        return submit_jobs(args, default_out(args.checkpoint, "surface"))
    check_device(args.device)
    out = args.out or default_out(args.checkpoint, "surface" if args.shard is None else
                                  "surface_shard{}of{}".format(*args.shard))
    t0 = time.perf_counter()
    with distributed(args.device) as (rank, _world, device):
        s = compute_checkpoint_surface(
            args.checkpoint, x=args.x, y=args.y, inputs=inputs_of(args, dtype=False),
            splits=parse_splits(args.splits), directions=args.directions,
            dir_file=args.dir_file, interpolate=args.interpolate, plane=args.plane,
            n_directions=args.n_directions, full_check=not args.no_full_check,
            command=command_line(args), what=args.dir_type, norm=args.norm,
            ignore=args.ignore, seed=args.seed, orthogonal=args.orthogonal,
            hessian_samples=args.hessian_samples, hessian_tol=args.hessian_tol,
            loss=loss_arg(args.loss), bn=args.bn, bn_batches=args.bn_batches,
            batch_size=args.batch_size, device=device, dtype=dtype_arg(args),
            autocast=None if args.precision == "fp32" else args.precision,
            channels_last=args.channels_last, rel_precision=args.rel_precision,
            shard=args.shard, direction_dtype=DIRECTION_DTYPES.get(args.direction_dtype),
            check_memory=not args.no_check_memory, **selection_kwargs(args),
            run=RunOptions(out, args.overwrite, not args.no_progress, args.flush_seconds))
    if rank != 0:
        return 0
    first, *notes = summary_lines(s, out)
    print(f"{first} in {time.perf_counter() - t0:.1f} s")
    for line in notes:  # parameters named by the notes as this command's options
        print(flag_message(line, args.root_parser, "surface"))
    return 0
