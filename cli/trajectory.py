"""``landscape trajectory``: PCA directions of a training run, its projected path, and
(optionally) the loss surface on the PCA plane, all in one HDF5 file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from landscape.directions import IGNORES
from landscape.errors import LandscapeError
from landscape.inputs import RunOptions
from landscape.trajectory import TrajectoryPCA, compute_trajectory

from ._command import add_command
from ._common import (
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    add_memory_check_arg,
    add_progress_arg,
    check_device,
    command_line,
    distributed,
    inputs_of,
    parse_splits,
    selection_kwargs,
)
from ._types import batch_size_arg, float_arg, int_arg, loss_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "trajectory", run,
        help="PCA of a training run's checkpoints, projected path, surface on the PC plane",
        description="Fit PCA to the checkpoints of a run (theta_i - theta_final), record the "
                    "explained variance and the path projected on the first components, and "
                    "with --surface evaluate the loss on the plane of PC1/PC2 around the final "
                    "model so that path and surface share coordinates.",
        examples=[
            "landscape trajectory runs/res20 --surface --out res20_traj.h5",
            "landscape trajectory runs/res20 --surface --x=-10:40:26 --y=-20:20:21",
            "landscape trajectory e1.pt e2.pt e3.pt final.pt --components 3",
        ],
    )
    p.add_argument("run", nargs="+", metavar="RUN_DIR|CKPT",
                   help="a training run directory, or checkpoints in order (the last is final)")
    p.add_argument("--components", type=int_arg("components", 1),
                   default=2, help="principal components to keep")
    p.add_argument("--ignore", choices=IGNORES, default="biasbn",
                   help="'biasbn': leave biases and BN parameters out of the PCA")
    p.add_argument("--dir-type", choices=["weights", "states"], default="weights")
    p.add_argument("--exclude-final", action="store_true",
                   help="leave the final model's (zero) row out of the PCA matrix")
    p.add_argument("--seed", type=int_arg("seed", 0),
                   default=0, help="seed of the random-direction baseline")
    p.add_argument("--allow-partial", action="store_true",
                   help="use an unfinished run (still training, killed or diverged) as it is; "
                        "by default it is refused (resume it with the same 'landscape train')")
    add_checkpoint_args(p, selection_unused="TrajectoryPCA.fit reads the checkpoints and "
                        "takes no state key or prefix yet")
    s = p.add_argument_group("surface on the PCA plane")
    s.add_argument("--surface", action="store_true", help="also compute the loss surface")
    s.add_argument("--x", metavar="MIN:MAX:NUM",
                   help="grid along PC1 (default: the path's range plus a margin, 21 points)")
    s.add_argument("--y", metavar="MIN:MAX:NUM", help="grid along PC2 (default: likewise)")
    s.add_argument("--points", type=int_arg("points", 2), default=21, metavar="NUM",
                   help="points per axis of the automatic grids (default 21)")
    s.add_argument("--splits", default="train,test")
    s.add_argument("--batch-size", type=batch_size_arg, default="auto")
    add_compute_args(p, group=s,
                     loss_help="loss of the surface: cross_entropy | mse | "
                               "package.module:function (see landscape.losses)",
                     device_help="evaluation device of the surface (the PCA itself runs on "
                                 "the CPU in float64)",
                     dtype_help="evaluation dtype of the surface (default float32)")
    s.add_argument("--flush-seconds", type=float_arg("flush_seconds", 0.0), default=10.0)
    add_data_args(p)
    p.add_argument("--out", metavar="FILE.h5",
                   help="output file (default: trajectory.h5 in the run directory)")
    p.add_argument("--overwrite", action="store_true")
    add_memory_check_arg(p)
    add_progress_arg(p)


def run(args: argparse.Namespace) -> int:
    given = [f for f, on in (("--x", args.x), ("--y", args.y),
                             ("--loss", args.loss != "cross_entropy"),
                             ("--dtype", args.dtype != "float32"),
                             ("--device", args.device != "cpu")) if on]
    if given and not args.surface:
        raise LandscapeError(f"{'/'.join(given)} set the evaluation of --surface (the PCA "
                             "needs no loss); add --surface or drop them")
    paths = args.run
    default = (Path(paths[0]) / "trajectory.h5" if len(paths) == 1 else
               Path(paths[-1]).with_name(f"{Path(paths[-1]).stem}_trajectory.h5"))
    out = Path(args.out) if args.out else default
    t0 = time.perf_counter()
    pca = TrajectoryPCA(args.components, ignore=args.ignore, what=args.dir_type,
                        include_final=not args.exclude_final, seed=args.seed,
                        **selection_kwargs(args))
    with distributed(check_device(args.device)) as (rank, _world, device):
        surface = {} if not args.surface else dict(
            splits=parse_splits(args.splits), x=args.x, y=args.y, points=args.points,
            loss=loss_arg(args.loss), batch_size=args.batch_size, device=device,
            dtype=None if args.dtype == "float32" else torch.float64, command=command_line(args))
        pca = compute_trajectory(
            paths[0] if len(paths) == 1 else paths, pca, inputs=inputs_of(args, dtype=False),
            allow_partial=args.allow_partial, surface=args.surface,
            check_memory=not args.no_check_memory, **surface,
            run=RunOptions(out, args.overwrite, not args.no_progress, args.flush_seconds))
    if rank != 0:
        return 0
    summ = pca.summary()
    print(f"PCA of {summ['n_checkpoints']} checkpoints: PC1 {100 * summ['pc1']:.1f}%, "
          f"PC1+PC2 {100 * summ['pc1_pc2']:.1f}%, {summ['n_components_for_90']} component(s) "
          f"for 90%; the PC plane captures {100 * summ['path_capture']:.1f}% of the path "
          f"(two random directions: {100 * summ['random_path_capture']:.2f}%)")
    if pca.surface_ is not None:
        s = pca.surface_
        print(f"surface on the PCA plane: {len(s.y)}x{len(s.x)} grid, x {s.recipe['grid']['x']}, "
              f"y {s.recipe['grid']['y']}, {s.n_done}/{s.n_points} points")
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0
