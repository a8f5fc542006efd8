"""``landscape plot``: pictures (PNG/PDF/SVG) of a result file, plus ParaView/HTML exports."""

from __future__ import annotations

import argparse

from landscape.plot import FILE_KINDS, FORMATS, plot_file

from ._command import add_command, comma_choices
from ._types import int_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "plot", run,
        help="draw a surface, trajectory or curvature file as PNG/PDF/SVG",
        description="Draw the pictures of a landscape HDF5 file (or a surface file of Li et "
                    "al.): contour lines, filled contours, heatmap and 3D view of a 2D "
                    "surface, loss/accuracy curves of a 1D one, the optimizer path in the "
                    "PCA plane (/trajectory), the |λmin/λmax| map and the Hessian eigenvalue "
                    "density (/curvature). A surface set (/surfaces, from 'landscape surface "
                    "--n-directions K') is drawn as the mean surface over its direction "
                    "pairs, and with --members each pair's as well. Files are written as "
                    "OUT/<file stem>_<kind>.<format>; unfinished and diverged (NaN/inf) "
                    "points are masked.",
        examples=[
            "landscape plot res20.h5",
            "landscape plot res20.h5 --kind contour,3d --log-levels --format pdf --out figs",
            "landscape plot ab.h5                      # 1D: loss and accuracy curves",
            "landscape plot traj.h5 --kind trajectory",
            "landscape plot res20.h5 --vtp --html      # ParaView .vtp and interactive HTML",
            "landscape plot set.h5 --members           # mean surface, and each direction pair",
            "landscape plot res20.h5 --kind persistence   # basins and barriers (needs gudhi)",
        ],
    )
    p.add_argument("file", metavar="FILE.h5", help="result file to draw")
    p.add_argument("--kind", metavar="KINDS",
                   help=f"comma list of {','.join(FILE_KINDS)} (default: contour,contourf,"
                        "heatmap,3d for a 2D surface, 1d for a 1D one, plus trajectory/ratio/"
                        "density when the file holds them; persistence, the persistence "
                        "diagram of the surface, only when asked)")
    p.add_argument("--array", metavar="NAME",
                   help="surface array to draw, e.g. train_loss, test_acc (default: "
                        "train_loss; for 1d: every split's loss and accuracy)")
    p.add_argument("--out", metavar="DIR",
                   help="output directory, created if missing (default: the file's directory)")
    p.add_argument("--format", choices=FORMATS, default="png", help="picture format")
    p.add_argument("--dpi", type=int_arg("dpi", 10, 2400),
                   default=150, help="resolution of PNG pictures")
    p.add_argument("--log-levels", action="store_true",
                   help="log-spaced contour levels (and a log loss axis for 1d)")
    p.add_argument("--vtp", action="store_true",
                   help="also write <stem>_<array>.vtp for ParaView")
    p.add_argument("--html", action="store_true",
                   help="also write an interactive 3D <stem>_<array>.html (needs plotly)")
    p.add_argument("--members", action="store_true",
                   help="for a surface set (/surfaces): also draw the surface of every "
                        "direction pair k, as <stem>_m<k>_<kind>.<format> (the default "
                        "pictures show the mean over the pairs)")


def run(args: argparse.Namespace) -> int:
    written = plot_file(
        args.file, kinds=comma_choices("--kind", args.kind, FILE_KINDS), array=args.array,
        out_dir=args.out,
        fmt=args.format, log_levels=args.log_levels, vtp=args.vtp, html=args.html,
        dpi=args.dpi, members=args.members,
    )
    for path in written:
        print(f"wrote {path}")
    return 0
