"""``landscape probe``: mechanism analyses of one checkpoint (lesion, paths, gradflow, ...)."""

from __future__ import annotations

import argparse

from landscape.mechanisms import ANALYSES, probe_checkpoint

from ._command import add_command, add_file_output_args, comma_choices
from ._common import (
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    check_device,
    inputs_of,
)
from ._types import int_arg, loss_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "probe", run,
        help="why skips help: lesion, path lengths, gradient flow, dilution, shattering",
        description="Run mechanism analyses of a checkpoint and store one HDF5 group each: "
                    "lesion (test error after deleting blocks), paths (gradient per path "
                    "length), gradflow (gradient norms and block Jacobians by depth; also at "
                    "the run's epoch_0000.pt when the checkpoint lies in a run directory, as "
                    "/gradflow_init), dilution (k-dilution per block and the gradient scale "
                    "coefficient), shatter (input-gradient autocorrelation along a line), "
                    "gates (mean transform-gate openness per layer of a highway network). "
                    "Lesions use the test split, the others the training split.",
        examples=[
            "landscape probe runs/res20/epoch_0003.pt --out res20_mech.h5",
            "landscape probe runs/plain20/epoch_0003.pt --what lesion,paths --out plain.h5",
            "landscape probe my.pt --model pkg.mod:net --blocks 'encoder.*' --out my_mech.h5",
        ],
    )
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--what", default=None, metavar="LIST",
                   help=f"comma list of {','.join(ANALYSES)} (default: all that apply: the "
                        "block analyses for residual nets, gates for highway nets)")
    p.add_argument("--blocks", metavar="GLOB",
                   help="module-name glob of the residual blocks (default: the built-in "
                        "ResNet/PreResNet/MLP blocks); each must compute x + branch(x)")
    p.add_argument("--seed", type=int_arg("seed", 0), default=0, help="seed of random choices")
    add_file_output_args(p, "<checkpoint stem>_mechanisms.h5 beside it")
    add_checkpoint_args(p)
    add_data_args(p)
    add_compute_args(
        p, loss_default=None,
        loss_help="loss of the analyses that differentiate one (paths, gradflow): "
                  "cross_entropy | mse | package.module:function (default: cross-entropy for "
                  "class targets, squared error summed over outputs for float targets)",
        device_help="device of the analyses (cpu, cuda, cuda:N, mps)",
        dtype_help="dtype of the model and inputs (default float32)",
        unused={"params": "the analyses delete or reroute whole blocks and differentiate "
                          "with respect to inputs and activations, not a selection of weights"})


def run(args: argparse.Namespace) -> int:
    what = comma_choices("--what", args.what, ANALYSES)
    loss = loss_arg(args.loss) if args.loss is not None else None
    check_device(args.device)
    done = probe_checkpoint(args.checkpoint, inputs=inputs_of(args), what=what,
                            blocks=args.blocks, seed=args.seed, loss=loss, device=args.device,
                            out=args.out, overwrite=args.overwrite)
    print(done.line())
    return 0
