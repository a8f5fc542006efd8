"""``landscape compare``: a report comparing the landscapes of several networks."""

from __future__ import annotations

import argparse

from landscape.report import compare_files

from ._command import add_command
from ._common import add_compute_args, add_progress_arg, check_device, command_line, flag_errors
from ._types import float_arg, int_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "compare", run,
        help="compare the landscapes of networks (e.g. residual vs plain) in one report",
        description="Read one landscape file per network (surface, trajectory, curvature, "
                    "ratio map), check that they were computed with the same recipe (grid, "
                    "directions, loss, data, BN mode), and write a Markdown, self-contained "
                    "HTML (figures embedded) and JSON report "
                    "with sharpness, basin widths, roughness, curvature and trajectory "
                    "numbers side by side plus pictures on shared scales. --eps is in "
                    "direction units (filter-normalized: 0.1 = 10% of every filter's norm); "
                    "Keskar et al.'s full-space epsilon-sharpness (--ascent-eps, default "
                    "1e-3) needs --checkpoints. Files holding a surface along Hessian "
                    "eigenvectors (landscape surface --directions hessian or "
                    "hessian-topbottom: /hessian_surface) get a 'Hessian-direction slices' "
                    "section with the same surface metrics; losses at θ* are shown ± their "
                    "standard error, and surfaces on --subset data say how far their origin "
                    "is from the full data's.",
        examples=[
            "landscape compare res20.h5 plain20.h5 --names residual,plain --out report",
            "landscape compare res20.h5 plain20.h5 --checkpoints res20.pt,plain20.pt",
            "landscape compare a.h5 b.h5 c.h5 --eps 0.05 --basin-threshold 0.5",
            "landscape compare res0.h5,res1.h5,res2.h5 plain0.h5,plain1.h5,plain2.h5 "
            "--names residual,plain",
        ],
    )
    p.add_argument("files", nargs="+", metavar="FILE.h5",
                   help="one result file per network, or several joined with '+' "
                        "(e.g. res.h5+res_traj.h5: a surface file and a trajectory file); "
                        "ARMS: one argument per arm with its seeds' files joined by ',' "
                        "(res_s0.h5,res_s1.h5,res_s2.h5): a seed-level comparison")
    p.add_argument("--names", metavar="A,B,...",
                   help="column names, comma separated (default: the file stems); with arms, "
                        "the arm names")
    p.add_argument("--level", type=float_arg("level", 0.0, 1.0, closed="neither"),
                   default=0.95,
                   help="coverage of the seed-level intervals with arms (default 0.95)")
    p.add_argument("--out", metavar="DIR",
                   help="output directory (default: compare_<A>_vs_<B> beside the first file)")
    p.add_argument("--eps", type=float_arg("eps", 0.0, closed="neither"), default=0.1,
                   help="radius of the surface epsilon-sharpness box, direction units "
                        "(default 0.1; at least one grid step)")
    p.add_argument("--ascent-eps", type=float_arg("ascent_eps", 0.0, closed="neither"),
                   default=1e-3,
                   help="Keskar et al.'s relative epsilon for the full-space ascent "
                        "(default 1e-3; needs --checkpoints)")
    p.add_argument("--ascent-steps", type=int_arg("ascent_steps", 1), default=10,
                   help="projected sign-gradient steps of the ascent (default 10)")
    p.add_argument("--basin-threshold", type=float_arg("basin_threshold", 0.0, closed="neither"),
                   default=0.1,
                   help="loss increase that ends a basin (default 0.1)")
    p.add_argument("--ratio-threshold", type=float_arg("ratio_threshold", 0.0, closed="neither"),
                   default=0.1,
                   help="|lambda_min/lambda_max| below which a point looks convex "
                        "(default 0.1)")
    p.add_argument("--array", default="train_loss",
                   help="surface array the surface metrics use (default train_loss)")
    p.add_argument("--checkpoints", metavar="A.pt,B.pt,...",
                   help="the checkpoints of the networks, one per file in order (leave one "
                        "empty to skip it): full-space ascent sharpness and missing accuracies")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that are full pickles (only for files you trust)")
    p.add_argument("--batch-size", type=int_arg("batch_size", 1), default=1024,
                   help="evaluation batch size of the checkpoints (default 1024)")
    add_compute_args(
        p, device_help="device of the checkpoint evaluations (default cpu)",
        unused={"loss": "the checkpoint evaluations use the loss recorded in each surface's "
                        "recipe, so that they match the surface",
                "dtype": "the checkpoints are evaluated in their own dtype",
                "params": "Keskar's and the adaptive sharpness perturb every parameter, as "
                          "their definitions do; surface metrics use the surfaces' own "
                          "selections"})
    p.add_argument("--dpi", type=int_arg("dpi", 10, 2400),
                   default=120, help="resolution of the pictures")
    add_progress_arg(p)


def run(args: argparse.Namespace) -> int:
    with flag_errors(args, "compare"):  # also when called without main()
        done = compare_files(
            args.files, names=args.names, models=args.checkpoints,
            device=args.device if args.checkpoints is None else check_device(args.device),
            level=args.level, out=args.out, dpi=args.dpi, eps=args.eps,
            ascent_eps=args.ascent_eps, ascent_steps=args.ascent_steps,
            basin_threshold=args.basin_threshold, ratio_threshold=args.ratio_threshold,
            array=args.array, trust=args.trust_checkpoint, batch_size=args.batch_size,
            progress=not args.no_progress, command=command_line(args))
    for line in done.lines():
        print(line)
    return 0
