"""``landscape demo``: residual vs plain network on bundled data, the whole comparison."""

from __future__ import annotations

import argparse

from landscape.demo import PAIRS, DemoConfig, run_demo
from landscape.errors import on_interrupt

from ._common import add_progress_arg, examples


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a residual net and its plain twin on digits and compare their landscapes",
        description="The main job: trains a residual network and its plain (no-skip) twin on "
                    "scikit-learn's bundled digits data with one recipe, then computes "
                    "filter-normalized surfaces, Hessian curvature, a |lambda_min/lambda_max| "
                    "map, PCA trajectories and the comparison report. Re-running resumes.",
        epilog=examples("landscape demo", "landscape demo --quick --out data/demo-quick",
                        "landscape demo --pair vit --quick"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="smaller nets and grids (about three minutes on 2 CPU cores)")
    p.add_argument("--pair", choices=list(PAIRS), default="resnet56",
                   help="the residual/plain pair and its recipe: resnet56 (default), "
                        "preresnet56, densenet (DenseNet-BC-40), vit (with/without residual "
                        "stream), gpt (on generated modular addition)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (default: data/demo, data/demo-quick, or "
                        "data/demo-PAIR[-quick] for another --pair)")
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = DemoConfig.for_pair(args.pair, quick=args.quick)
    stem = "data/demo" if args.pair == "resnet56" else f"data/demo-{args.pair}"
    out = args.out or (f"{stem}-quick" if args.quick else stem)
    with on_interrupt(f"finished steps are saved in '{out}'", resumable=True):
        report = run_demo(out, cfg, progress=not args.no_progress)
    print(report.markdown_table())
    return 0
