"""``landscape trajectory``: PCA directions of a training run, its projected path, and
(optionally) the loss surface on the PCA plane, all in one HDF5 file."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

from landscape.checkpoints import load_checkpoint
from landscape.directions import IGNORES, Directions
from landscape.errors import LandscapeError, on_interrupt
from landscape.losses import resolve_loss
from landscape.recipes import checkpoint_provenance, checkpoint_recipe
from landscape.surface import compute_surface, parse_axis
from landscape.training import TrainRun
from landscape.trajectory import TrajectoryPCA, list_run_checkpoints

from ._common import (
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    add_progress_arg,
    batch_size_arg,
    check_device,
    command_line,
    data_spec,
    distributed,
    examples,
    float_arg,
    int_arg,
    load_datasets,
    model_arg,
    parse_splits,
    selection_kwargs,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trajectory",
        help="PCA of a training run's checkpoints, projected path, surface on the PC plane",
        description="Fit PCA to the checkpoints of a run (theta_i - theta_final), record the "
                    "explained variance and the path projected on the first components, and "
                    "with --surface evaluate the loss on the plane of PC1/PC2 around the final "
                    "model so that path and surface share coordinates.",
        epilog=examples(
            "landscape trajectory runs/res20 --surface --out res20_traj.h5",
            "landscape trajectory runs/res20 --surface --x=-10:40:26 --y=-20:20:21",
            "landscape trajectory e1.pt e2.pt e3.pt final.pt --components 3",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    add_progress_arg(p)
    p.set_defaults(func=run)


def _warn_if_partial(run_dir: str) -> None:
    """One line on stderr when --allow-partial let an unfinished run through."""
    if not (Path(run_dir) / "run.json").is_file():
        return
    state = TrainRun.load(run_dir).unfinished()
    if state is not None:
        print(f"landscape trajectory: warning: run '{run_dir}' is {state}; its last "
              "checkpoint is used as the final model", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.surface:
        if args.components < 2:
            raise LandscapeError("--surface needs --components >= 2 (a plane)")
        resolve_loss(args.loss)  # a bad --loss is a usage error before any work
        for name in ("x", "y"):
            if getattr(args, name) is not None:
                parse_axis(getattr(args, name), name)
        splits = parse_splits(args.splits)
        check_device(args.device)
    else:
        given = [f for f, on in (("--x", args.x), ("--y", args.y),
                                 ("--loss", args.loss != "cross_entropy"),
                                 ("--dtype", args.dtype != "float32"),
                                 ("--device", args.device != "cpu")) if on]
        if given:
            raise LandscapeError(f"{'/'.join(given)} set the evaluation of --surface (the PCA "
                                 "needs no loss); add --surface or drop them")
    paths = args.run
    if len(paths) == 1:
        if not Path(paths[0]).is_dir():
            raise LandscapeError(
                f"'{paths[0]}' is not a run directory; give a run directory or at least "
                "three checkpoints in training order"
            )
        ckpts = list_run_checkpoints(paths[0], allow_partial=args.allow_partial)
        _warn_if_partial(paths[0])
        default_out = Path(paths[0]) / "trajectory.h5"
    else:
        ckpts = [Path(p) for p in paths]
        default_out = ckpts[-1].with_name(f"{ckpts[-1].stem}_trajectory.h5")
    out = Path(args.out) if args.out else default_out
    from landscape import storage

    storage.check_writable(out, overwrite=args.overwrite)
    t0 = time.perf_counter()
    pca = TrajectoryPCA(args.components, ignore=args.ignore, what=args.dir_type,
                        include_final=not args.exclude_final, seed=args.seed,
                        **selection_kwargs(args))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        pca.fit(ckpts, model=model_arg(args), trust=args.trust_checkpoint)
    for w in caught:
        print(f"landscape trajectory: warning: {w.message}", file=sys.stderr)
    final_path = pca.checkpoints_[-1]["path"]  # the last in recorded order (fit sorts them)
    final = load_checkpoint(final_path, model=model_arg(args), trust=args.trust_checkpoint)
    spec = data_spec(args, final)
    datasets = load_datasets(spec, splits, final.model) if args.surface else None
    pca.save_or_resume(out, overwrite=args.overwrite)  # same run, same PCA: resume its surface
    # from here on the PCA is on disk (and a --surface resumes from it)
    with on_interrupt(f"the PCA is saved in '{out}'", resumable=True):
        summ = pca.summary()
        print(
            f"PCA of {summ['n_checkpoints']} checkpoints: PC1 {100 * summ['pc1']:.1f}%, "
            f"PC1+PC2 {100 * summ['pc1_pc2']:.1f}%, {summ['n_components_for_90']} component(s) "
            f"for 90%; the PC plane captures {100 * summ['path_capture']:.1f}% of the path "
            f"(two random directions: {100 * summ['random_path_capture']:.2f}%)"
        )
        if args.surface:
            auto_x, auto_y = pca.plane_axes(args.points)
            ax = parse_axis(args.x, "x") if args.x else auto_x
            ay = parse_axis(args.y, "y") if args.y else auto_y
            dirs = pca.pca_directions_
            if dirs.ndim != 2:
                dirs = Directions(dirs.vectors[:2], dirs.recipe)
            recipe = checkpoint_recipe(final, spec)
            provenance = checkpoint_provenance(None, final_path, command_line(args))
            with distributed(args.device) as (rank, _world, device):
                s = compute_surface(
                    final.model, dirs, datasets, x=ax, y=ay, batch_size=args.batch_size,
                    loss=resolve_loss(args.loss).spec,
                    dtype=None if args.dtype == "float32" else torch.float64,
                    device=device, out=out, recipe=recipe, provenance=provenance,
                    progress=not args.no_progress, flush_seconds=args.flush_seconds,
                )
            if rank != 0:
                return 0
            print(f"surface on the PCA plane: {len(s.y)}x{len(s.x)} grid, x {ax.spec}, "
                  f"y {ay.spec}, {s.n_done}/{s.n_points} points")
        print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
        return 0
