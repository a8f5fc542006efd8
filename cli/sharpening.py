"""``landscape sharpening``: lambda_max and trace at every checkpoint of a run vs 2/eta."""

from __future__ import annotations

import argparse
from pathlib import Path

from landscape.mechanisms import sharpening_of_run

from ._command import add_command, add_file_output_args
from ._common import add_compute_args, check_device, dtype_arg, selection_kwargs
from ._types import int_arg, loss_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "sharpening", run,
        help="lambda_max and trace along a training run against the threshold 2/eta",
        description="For every checkpoint of a `landscape train` run: the top Hessian "
                    "eigenvalues and the trace of the training loss on a fixed subset, the "
                    "stability thresholds 2/eta and (2+2 beta)/eta from the run's schedule and "
                    "momentum, and the fraction of each step (between checkpoints) inside the "
                    "top-k eigenspace and the trajectory's PCA plane. For an AdamW run also the "
                    "top eigenvalues of the preconditioned Hessian P^-1 H (P from the second "
                    "moments in each checkpoint) against (2+2 beta1)/((1-beta1) eta), 38/eta "
                    "for beta1 = 0.9 (Cohen et al. 2022). Stored as /sharpening.",
        examples=[
            "landscape sharpening runs/res20 --out res20_sharp.h5",
            "landscape sharpening runs/res20 --k 3 --subset 512 --every 2 --out s.h5",
        ],
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--k", type=int_arg("k", 1), default=1, help="top eigenpairs per checkpoint")
    p.add_argument("--subset", type=int_arg("subset", 1), default=256, metavar="N",
                   help="training samples of the loss (default 256)")
    p.add_argument("--every", type=int_arg("every", 1), default=1,
                   help="use every N-th checkpoint (the last always)")
    p.add_argument("--trace-samples", type=int_arg("trace_samples", 0), default=30,
                   help="Hutch++ products per checkpoint (0: no trace)")
    add_file_output_args(p, "RUN_DIR/sharpening.h5")
    add_compute_args(p, loss_help="loss of the Hessian: cross_entropy | mse | "
                                  "package.module:function (see landscape.losses)",
                     dtype_help="dtype of the Hessian-vector products (default float32)")


def run(args: argparse.Namespace) -> int:
    loss = loss_arg(args.loss)
    check_device(args.device)
    out = args.out or str(Path(args.run_dir) / "sharpening.h5")
    res = sharpening_of_run(args.run_dir, subset=args.subset, every=args.every, k=args.k,
                            n_trace=args.trace_samples, loss=loss, dtype=dtype_arg(args),
                            device=args.device, **selection_kwargs(args), out=out,
                            overwrite=args.overwrite)
    lm = res.lambda_max
    print(f"wrote /sharpening ({len(lm)} checkpoints, lambda_max {lm[0]:.3g} -> {lm[-1]:.3g}, "
          f"2/eta at the end {res.threshold[-1]:.3g}) to {out}")
    pre = res.precond_lambda_max
    if pre is not None:
        thr = res.threshold_adam
        print("Adam: lambda_max(P^-1 H) per checkpoint "
              + ", ".join(f"{v:.4g}" for v in pre)
              + f"; (2+2 beta1)/((1-beta1) eta) = {thr[-1]:.4g} at the end "
              f"(beta1 {res.beta1:g}); final ratio {pre[-1] / thr[-1]:.3g}")
    return 0
