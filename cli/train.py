"""``landscape train``: train a registry model and save per-epoch checkpoints."""

from __future__ import annotations

import argparse

from landscape.data import DataSpec
from landscape.models import parse_model_kwargs
from landscape.training import TrainConfig, train_model

from ._command import add_command
from ._common import add_compute_args, add_data_args, add_progress_arg, check_device, flag_message
from ._types import float_arg, int_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "train", run,
        help="train a model with SGD or AdamW, saving a checkpoint every --save-every epochs",
        description="Train a registry model on a data set with SGD or AdamW; writes epoch_NNNN.pt "
                    "checkpoints (epoch 0 = initialisation) and run.json into --out. A run "
                    "that was killed or interrupted resumes from its last checkpoint when the "
                    "same command is run again (the result is bit-identical to an "
                    "uninterrupted run); a complete run is left as it is. A custom loader "
                    "that returns a Dataset or DataLoader of (x, y) pairs is read into "
                    "memory once (it must be finite -- one without a length needs --subset -- "
                    "and fit 512 MiB) and shuffled by --seed like any in-memory data.",
        examples=[
            "landscape train --model mlp --epochs 20 --out runs/mlp",
            "landscape train --model resnet20 --plain --lr 0.01 --out runs/plain20",
            "landscape train --model gpt --data modadd --lr 0.2 --epochs 30 --out runs/gpt",
            "landscape train --model unet --data digits-denoise --lr 0.01 --out runs/unet",
            "landscape train --model mlp --epochs 20 --init runs/a/epoch_0002.pt --seed 1 "
            "--out runs/spawn1",
            "landscape train --model vit --optimizer adamw --lr 1e-3 --betas 0.9,0.999 "
            "--warmup-steps 100 --weight-decay 0.05 --out runs/vit-adamw",
            "landscape train --model resnet56 --stochastic-depth 0.5 --out runs/res56-sd",
        ],
    )
    p.add_argument("--model", required=True, metavar="NAME",
                   help="registry name (resnet20, preresnet56, densenet_bc40, vgg9, vit, gpt, "
                        "...) or package.module:factory; input "
                        "channels and classes are taken from the data unless --model-kwargs "
                        "sets them")
    p.add_argument("--model-kwargs", metavar="JSON", help="architecture keyword arguments")
    p.add_argument("--plain", action="store_true",
                   help="the no-skip twin (same as adding \"shortcut\": false, or "
                        "\"residual\": false for vit and gpt)")
    add_data_args(p, default_from_checkpoint=False)
    d = TrainConfig()
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int_arg("epochs", 1), default=d.epochs)
    g.add_argument("--batch-size", type=int_arg("batch_size", 1), default=d.batch_size)
    g.add_argument("--lr", type=float_arg("lr", 0.0, closed="neither"), default=d.lr)
    g.add_argument("--momentum", type=float_arg("momentum", 0.0, 1.0, closed="left"),
                   default=d.momentum)
    g.add_argument("--nesterov", action="store_true")
    g.add_argument("--weight-decay", type=float_arg("weight_decay", 0.0), default=d.weight_decay)
    g.add_argument("--schedule", choices=["cosine", "step", "constant"], default=d.schedule)
    g.add_argument("--seed", type=int_arg("seed", 0), default=d.seed)
    g.add_argument("--seeds", type=_seeds_arg, metavar="S,S,...",
                   help="train one run per seed (the unit of replication of a comparison), "
                        "into --out/seed_S each: e.g. 0,1,2 or 0-2; replaces --seed")
    g.add_argument("--init", metavar="CHECKPOINT",
                   help="spawn the run from this checkpoint of the same architecture (e.g. "
                        "runs/a/epoch_0002.pt; Frankle et al. 2020): start from its weights "
                        "instead of the seeded initialisation, --seed then sets the data "
                        "order only; epochs, the lr schedule and momentum start afresh at 0; "
                        "its path and SHA-256 go into run.json. Two runs spawned with two "
                        "seeds differ only in SGD noise: connect them with 'landscape "
                        "connect' beside two independent seeds")
    g.add_argument("--optimizer", choices=["sgd", "adamw"], default=d.optimizer,
                   help="SGD with momentum (default) or AdamW (decoupled --weight-decay; "
                        "--momentum is not used)")
    g.add_argument("--betas", type=_betas_arg, default=d.betas, metavar="B1,B2",
                   help="AdamW's betas (default 0.9,0.999)")
    g.add_argument("--eps", type=float_arg("eps", 0.0, closed="neither"), default=d.eps,
                   help="AdamW's eps (default 1e-8)")
    g.add_argument("--warmup-steps", "--warmup", dest="warmup_steps",
                   type=int_arg("warmup_steps", 0), default=d.warmup_steps, metavar="STEPS",
                   help="linear learning-rate warmup over the first STEPS optimizer steps "
                        "(default 0: none), then the --schedule")
    g.add_argument("--stochastic-depth", type=float_arg("stochastic_depth", 0.0, 1.0,
                                                        closed="left"),
                   default=d.stochastic_depth, metavar="P",
                   help="stochastic depth (Huang et al. 2016) for residual models: the last "
                        "residual block is dropped with probability P in [0, 1) at each "
                        "training step, block l of L with l/L*P (default 0: off)")
    g.add_argument("--save-every", type=int_arg("save_every", 1),
                   default=d.save_every, metavar="EPOCHS")
    add_compute_args(
        p, device_help="training device (cpu, cuda, cuda:N, mps); runs are bit-identical on "
                       "resume on the CPU only",
        unused={"loss": "landscape train minimises the cross-entropy of its registry "
                        "classifiers; train other losses with your own loop and analyse the "
                        "checkpoints",
                "dtype": "training runs in float32; the analysis commands take --dtype",
                "params": "every parameter of the registry model is trained; to train a "
                          "part, train your own model and analyse its checkpoints"})
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="output directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run in --out (instead of resuming it)")
    add_progress_arg(p)


def _seeds_arg(text: str) -> list[int]:
    """argparse type of ``--seeds``: ``0,1,2`` or ``0-2`` (distinct non-negative ints)."""
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(v) for v in text.split("-"))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(v) for v in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(
            f"must be distinct non-negative seeds like 0,1,2 or 0-2, got {text!r}")
    return seeds


def _betas_arg(text: str) -> tuple[float, float]:
    """argparse type of ``--betas``: two floats in [0, 1), e.g. ``0.9,0.999``."""
    try:
        betas = tuple(float(v) for v in text.split(","))
    except ValueError:
        betas = ()
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise argparse.ArgumentTypeError(
            f"must be two numbers in [0, 1) like 0.9,0.999, got {text!r}")
    return betas  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    check_device(args.device)
    data = DataSpec(name=args.data or "digits", root=args.data_root, subset=args.subset,
                    kwargs=parse_model_kwargs(args.data_kwargs))
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.weight_decay, schedule=args.schedule,
        seed=args.seed, save_every=args.save_every, optimizer=args.optimizer,
        betas=args.betas, eps=args.eps, warmup_steps=args.warmup_steps,
        stochastic_depth=args.stochastic_depth,
        # training's thread count is part of its recipe (results depend on it): --threads N,
        # else TrainConfig's fixed default, never the machine-dependent 'auto'
        **({"threads": args.threads} if isinstance(args.threads, int) else {}),
    )
    done = train_model(args.model, data, config, args.out, model_kwargs=args.model_kwargs,
                       plain=args.plain, seeds=args.seeds, progress=not args.no_progress,
                       overwrite=args.overwrite, device=args.device, init=args.init)
    for line in done.lines():  # parameters named as this command's options
        print(flag_message(line, args.root_parser, "train"))
    return 0
