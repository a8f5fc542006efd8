"""``landscape demo``: residual vs plain network on bundled data, the whole comparison."""

from __future__ import annotations

import argparse

from landscape.demo import PAIRS, DemoConfig, run_demo
from landscape.errors import on_interrupt
from landscape.study import StudyConfig, run_study

from ._command import add_command
from ._common import add_progress_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "demo", run,
        help="train a residual net and its plain twin on digits and compare their landscapes",
        description="The main job, a depth study: trains ResNet-20 and ResNet-56 (half width) "
                    "with and without shortcuts on scikit-learn's bundled digits, several "
                    "seeds per arm (3 at each depth), one recipe for all; measures "
                    "each network (surface, curvature, filter-normalized curvature, "
                    "stationarity, PCA path, mechanisms at initialization and convergence) "
                    "at convergence and, where the plain net ends far above, at matched train "
                    "loss; and writes a report that opens with a claims table: each claim of "
                    "the residual story reproduced, not reproduced or not testable here, with "
                    "seed-level intervals. --pair other than resnet56 runs the single-pair "
                    "comparison of that architecture. Re-running resumes.",
        examples=["landscape demo", "landscape demo --quick --out data/demo-quick",
                  "landscape demo --pair vit --quick"],
    )
    p.add_argument("--quick", action="store_true",
                   help="smaller nets and grids: ResNet-8 and -14, 2 seeds each (about a "
                        "minute on 2 CPU cores)")
    p.add_argument("--pair", choices=list(PAIRS), default="resnet56",
                   help="the residual/plain pair and its recipe: resnet56 (default: the "
                        "depth study), "
                        "preresnet56, densenet (DenseNet-BC-40), vit (with/without residual "
                         "stream), gpt (on generated modular addition), unet (long skips, on "
                         "digits-denoise), highway (carry paths), resnext, stochastic-depth "
                         "(ResNet trained with vs without stochastic depth)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (default: data/demo, data/demo-quick, or "
                        "data/demo-PAIR[-quick] for another --pair)")
    add_progress_arg(p)


def run(args: argparse.Namespace) -> int:
    stem = "data/demo" if args.pair == "resnet56" else f"data/demo-{args.pair}"
    out = args.out or (f"{stem}-quick" if args.quick else stem)
    with on_interrupt(f"finished steps are saved in '{out}'", resumable=True):
        if args.pair == "resnet56":
            study = run_study(out, StudyConfig.quick() if args.quick else StudyConfig(),
                              progress=not args.no_progress, threads=args.threads)
            print(study.claims_markdown())
            return 0
        cfg = DemoConfig.for_pair(args.pair, quick=args.quick)
        report = run_demo(out, cfg, progress=not args.no_progress)
    print(report.markdown_table())
    return 0
