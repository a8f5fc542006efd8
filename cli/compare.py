"""``landscape compare``: a report comparing the landscapes of several networks."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from landscape.errors import LandscapeError
from landscape.report import compare

from ._command import add_command
from ._common import add_compute_args, add_progress_arg, check_device, command_line
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


def _split(text: str | None, option: str, n: int, *, allow_empty: bool) -> list[str] | None:
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")]
    if len(items) != n:
        raise LandscapeError(
            f"{option} must give {n} comma-separated entries, one per file; got {len(items)} "
            f"in {text!r}"
        )
    if not allow_empty and any(not s for s in items):
        raise LandscapeError(f"{option} has an empty entry in {text!r}")
    return items


def _default_out(first: str, names: list[str]) -> Path:
    slug = "_vs_".join(re.sub(r"[^\w.-]+", "_", n) for n in names)[:120]
    parent = Path(first).parent
    return parent / f"compare_{slug}"


def _run_arms(args: argparse.Namespace) -> int:
    """Arms of several seeds: ``compare_arms``, the per-seed report and ``arms.md``/``.json``."""
    from landscape.replicates import compare_arms

    arms = [[f.split("+") if "+" in f else f for f in a.split(",")] for a in args.files]
    if any(not f for a in arms for f in a):
        raise LandscapeError("an arm has an empty entry (two commas, or a trailing comma)")
    names = _split(args.names, "--names", len(arms), allow_empty=False) or [
        Path(str(a[0] if isinstance(a[0], str) else a[0][0])).stem for a in arms]
    if len(set(names)) != len(names):
        raise LandscapeError(f"--names must give distinct arm names; got {names}")
    if args.checkpoints is not None:
        raise LandscapeError("--checkpoints is not supported with arms (comma-joined seeds) "
                             "yet; compare the checkpoints of one seed at a time")
    if args.device != "cpu":
        raise LandscapeError("--device sets where the --checkpoints are evaluated; drop it")
    comparison, report = compare_arms(
        dict(zip(names, arms, strict=True)), level=args.level, eps=args.eps,
        basin_threshold=args.basin_threshold, ratio_threshold=args.ratio_threshold,
        array=args.array, progress=not args.no_progress, command=command_line(args))
    out = Path(args.out) if args.out else _default_out(args.files[0].split(",")[0]
                                                            .split("+")[0], names)
    report.save(out, dpi=args.dpi)
    comparison.save(out)
    print(comparison.markdown_table())
    for note in comparison.notes:
        print(f"note: {note}")
    for name in ("arms.md", "arms.json", "report.md", "report.html", "report.json"):
        print(f"wrote {out / name}")
    return 0


def run(args: argparse.Namespace) -> int:
    if any("," in f for f in args.files):
        return _run_arms(args)
    n = len(args.files)
    names = _split(args.names, "--names", n, allow_empty=False)
    checkpoints = _split(args.checkpoints, "--checkpoints", n, allow_empty=True)
    if checkpoints is not None:
        check_device(args.device)
    elif args.device != "cpu":
        raise LandscapeError("--device sets where the --checkpoints are evaluated; add "
                             "--checkpoints or drop --device")
    files = [f.split("+") if "+" in f else f for f in args.files]
    report = compare(
        files, names=names, eps=args.eps, ascent_eps=args.ascent_eps,
        ascent_steps=args.ascent_steps, basin_threshold=args.basin_threshold,
        ratio_threshold=args.ratio_threshold, array=args.array,
        models=[c or None for c in checkpoints] if checkpoints is not None else None,
        trust=args.trust_checkpoint, batch_size=args.batch_size,
        device=args.device if checkpoints is not None else None,
        progress=not args.no_progress, command=command_line(args),
    )
    out = Path(args.out) if args.out else _default_out(args.files[0].split("+")[0],
                                                            list(report.names))
    report = report.save(out, dpi=args.dpi)
    print(report.markdown_table())
    for note in report.notes:
        print(f"note: {note}")
    for name in ("report.md", "report.html", "report.json"):
        print(f"wrote {out / name}")
    if report.figures:
        print(f"wrote {len(report.figures)} figures in {out}: {', '.join(report.figures)}")
    return 0
