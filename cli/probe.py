"""``landscape probe``: mechanism analyses of one checkpoint (lesion, paths, gradflow, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from landscape import storage
from landscape.checkpoints import load_checkpoint
from landscape.losses import loss_name
from landscape.mechanisms import ANALYSES, USES_LOSS, applicable_analyses, run_analyses

from ._command import add_command, add_file_output_args, comma_choices
from ._common import (
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    check_device,
    checkpoint_selection,
    data_spec,
    default_out,
    dtype_arg,
    load_ckpt,
    load_datasets,
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


def _init_checkpoint(path: str) -> Path | None:
    init = Path(path).with_name("epoch_0000.pt")
    if init.is_file() and init.resolve() != Path(path).resolve():
        return init
    return None


def run(args: argparse.Namespace) -> int:
    what = comma_choices("--what", args.what, ANALYSES)
    loss = loss_arg(args.loss) if args.loss is not None else None
    check_device(args.device)
    out = args.out or default_out(args.checkpoint, "mechanisms")
    storage.check_writable(out, overwrite=args.overwrite)
    ckpt = load_ckpt(args, args.checkpoint)
    model = ckpt.model.to(args.device, dtype_arg(args))
    if what is None:
        what = applicable_analyses(model, args.blocks)
    sets = load_datasets(data_spec(args, ckpt), ["train", "test"], model)
    torch.manual_seed(args.seed)
    results, seconds = run_analyses(model, sets["train"], what, blocks=args.blocks,
                                    seed=args.seed, test_data=sets["test"], loss=loss)
    groups = {r.GROUP: r.to_group() for r in results.values()}
    with_loss = {r.GROUP for w, r in results.items() if w in USES_LOSS} | {"gradflow_init"}
    init = _init_checkpoint(args.checkpoint) if "gradflow" in what else None
    if init is not None:
        model0 = load_checkpoint(init, model=model, trust=args.trust_checkpoint,
                                 **checkpoint_selection(args)).model
        res0, _ = run_analyses(model0.to(args.device, dtype_arg(args)), sets["train"],
                               ["gradflow"], blocks=args.blocks, seed=args.seed, loss=loss)
        groups["gradflow_init"] = res0["gradflow"].to_group()
    for name, g in groups.items():
        g.attrs["checkpoint"] = str(args.checkpoint)
        g.attrs["sha256"] = ckpt.sha256
        g.attrs["dtype"] = args.dtype
        if name in with_loss:
            g.attrs["loss"] = loss_name(loss) if loss is not None else "default"
        if name in seconds:
            g.attrs["seconds"] = seconds[name]
    storage.update_file(out, groups, overwrite=args.overwrite)
    took = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items())
    print(f"wrote {','.join(sorted(groups))} to {out} ({took})")
    return 0
