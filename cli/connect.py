"""``landscape connect``: loss along the line and a trained curve between two minima, in HDF5."""

from __future__ import annotations

import argparse
import time

from landscape.connect import CURVES, OPTIMIZERS, connect_checkpoints
from landscape.evaluation import BN_MODES
from landscape.inputs import RunOptions

from ._command import add_command
from ._common import (
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    add_executor_args,
    add_progress_arg,
    check_device,
    command_line,
    default_out,
    distributed,
    flag_message,
    inputs_of,
    parse_splits,
    selection_kwargs,
    shard_arg,
    submit_jobs,
    uses_jobs,
)
from ._types import float_arg, int_arg, loss_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "connect", run,
        help="barriers on the line and a trained Bezier/polychain curve between two minima",
        description="Evaluate train/test loss and accuracy along the straight line between "
                    "two minima A and B of one network and along a curve through trained "
                    "bend points (Garipov et al. 2018), with BatchNorm statistics recomputed "
                    "at every t (default), and print the barriers max_t L(t) - ((1-t) L(0) + "
                    "t L(1)) (Frankle et al. 2020). A barrier whose path reaches chance (its "
                    "maximum loss at least 0.9 ln C for C classes, the loss of a uniform "
                    "prediction) is flagged 'at chance': the barrier is then ln C minus the "
                    "end loss, uninformative -- as it typically is between independent seeds. "
                    "For an informative barrier connect runs spawned from a shared early "
                    "checkpoint (landscape train --init CHECKPOINT --seed S) beside the "
                    "independent seeds. Streamed data (--data package.module:fn returning a "
                    "DataLoader) are read into memory once to train the curve (finite and "
                    "small streams only). Re-running the same command resumes an unfinished "
                    "file.",
        examples=[
            "landscape connect runs/s1/epoch_0030.pt runs/s2/epoch_0030.pt --out s1s2.h5",
            "landscape train --model mlp --epochs 20 --init runs/a/epoch_0002.pt --seed 1 "
            "--out runs/spawn1   # and --seed 2 --out runs/spawn2",
            "landscape connect runs/spawn1/epoch_0020.pt runs/spawn2/epoch_0020.pt "
            "--out spawned.h5",
            "landscape connect a.pt b.pt --curve polychain --bends 2 --steps 3000 --out ab.h5",
            "landscape connect a.pt b.pt --curve none --points 51 --out line.h5",
            "for i in 0 1; do landscape connect a.pt b.pt --shard $i/2 & done; wait; "
            "landscape merge ab.h5 a_connect_shard*of2.h5",
        ],
    )
    p.add_argument("checkpoint_a", metavar="A.pt", help="first minimum (t = 0)")
    p.add_argument("checkpoint_b", metavar="B.pt", help="second minimum (t = 1)")
    add_checkpoint_args(p)
    add_data_args(p)
    p.add_argument("--splits", default="train,test", help="data splits to evaluate")
    c = p.add_argument_group("curve")
    c.add_argument("--curve", choices=[*CURVES, "none"], default="bezier",
                   help="trained curve besides the line ('none': the line only)")
    c.add_argument("--bends", type=int_arg("bends", 1), default=1,
                   help="trainable bend points (1: quadratic Bezier / two-segment chain)")
    c.add_argument("--steps", type=int_arg("steps", 1), default=1000,
                   help="training steps of the bends (one uniform t and minibatch each)")
    c.add_argument("--lr", type=float_arg("lr", 0.0, closed="neither"), default=0.05,
                   help="initial learning rate (constant to 50%%, linear to lr/100 at 90%%)")
    c.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    c.add_argument("--momentum", type=float_arg("momentum", 0.0, 1.0, closed="left"),
                   default=0.9)
    c.add_argument("--weight-decay", type=float_arg("weight_decay", 0.0), default=0.0)
    c.add_argument("--train-batch-size", type=int_arg("train_batch_size", 1), default=128)
    c.add_argument("--init-noise", type=float_arg("init_noise", 0.0), default=0.0,
                   help="seeded noise added to the bends' start on the line")
    c.add_argument("--seed", type=int_arg("seed", 0), default=0,
                   help="seed of the drawn t, minibatches and initial noise")
    e = p.add_argument_group("evaluation")
    e.add_argument("--points", type=int_arg("points", 3), default=31,
                   help="uniform grid of t in [0, 1]")
    e.add_argument("--bn", choices=BN_MODES, default="recalibrate",
                   help="BatchNorm: recomputed at every t (default), or the ends' statistics "
                        "interpolated linearly")
    e.add_argument("--bn-batches", type=int_arg("bn_batches", 1), default=10)
    e.add_argument("--batch-size", type=int_arg("batch_size", 1), default=1024,
                   help="evaluation batch size")
    add_compute_args(p, group=e, device_help="device of the training and evaluation (cpu, "
                                             "cuda, cuda:N, mps)",
                     dtype_help="dtype of the ends, bends and evaluation (default float32)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="FILE.h5",
                   help="output file (default: <A>_connect.h5 beside A)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace an existing result computed with another recipe")
    o.add_argument("--flush-seconds", type=float_arg("flush_seconds", 0.0), default=10.0,
                   help="write progress to disk at least this often")
    o.add_argument("--save-bend", metavar="BEND.pt",
                   help="also save the (first) trained bend as a checkpoint, for the plane "
                        "surface 'landscape surface A.pt --plane B.pt BEND.pt'")
    o.add_argument("--max-points", type=int_arg("max_points", 0), metavar="N",
                   help="stop after N newly evaluated points (re-run to continue)")
    o.add_argument("--shard", type=shard_arg, metavar="I/N",
                   help="evaluate only shard I of N of the (path, t) points (every N-th from "
                        "the I-th) into a file of its own (default <A>_connect_shardIofN.h5), "
                        "resumable; every shard trains the same bends (seeded); join the N "
                        "files with 'landscape merge OUT SHARD...'")
    add_executor_args(p)
    add_progress_arg(p)


def run(args: argparse.Namespace) -> int:
    if uses_jobs(args):
        return submit_jobs(args, default_out(args.checkpoint_a, "connect"))
    check_device(args.device)
    out = args.out or default_out(args.checkpoint_a, "connect" if args.shard is None else
                                  "connect_shard{}of{}".format(*args.shard))
    t0 = time.perf_counter()
    with distributed(args.device) as (rank, _world, device):
        res = connect_checkpoints(
            args.checkpoint_a, args.checkpoint_b, inputs=inputs_of(args),
            splits=parse_splits(args.splits), save_bend=args.save_bend,
            command=command_line(args), curve=None if args.curve == "none" else args.curve,
            n_bends=args.bends, n_points=args.points, steps=args.steps, lr=args.lr,
            optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay,
            train_batch_size=args.train_batch_size, init_noise=args.init_noise,
            seed=args.seed, loss=loss_arg(args.loss), bn=args.bn, bn_batches=args.bn_batches,
            batch_size=args.batch_size, device=device, shard=args.shard,
            **selection_kwargs(args),
            run=RunOptions(out, args.overwrite, not args.no_progress, args.flush_seconds,
                           args.max_points))
    if rank != 0:
        return 0
    first, *notes = res.lines()
    print(f"wrote {out}: {first} in {time.perf_counter() - t0:.1f} s")
    if args.save_bend and res.curve_trained:
        print(f"wrote {args.save_bend}: the trained bend (plane: landscape surface "
              f"{args.checkpoint_a} --plane {args.checkpoint_b} {args.save_bend} ...)")
    for line in notes:  # parameters and calls named as this command's options and commands
        print(flag_message(line, args.root_parser, "connect"))
    return 0
