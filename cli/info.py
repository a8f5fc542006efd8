"""``landscape info``: schema, provenance and completion of a landscape (or Li et al.) file."""

from __future__ import annotations

import argparse

from landscape.info import describe

from ._command import add_command
from ._common import flag_message


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "info", run,
        help="show what an HDF5 result file holds: schema, provenance, completion",
        description="Print the format, provenance and completion of a landscape HDF5 file "
                    "(surface, directions, trajectory, curvature groups), or of a surface "
                    "file written by Li et al.'s code.",
        examples=["landscape info runs/mlp/epoch_0020_surface.h5"],
    )
    p.add_argument("file", metavar="FILE.h5")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    text = describe(args.file, as_json=args.json)
    if not args.json:  # the format line's hint names a library call: here, its command
        parser = args.root_parser  # set by main()
        text = "\n".join(flag_message(line, parser, "info") if line.startswith("  format:")
                         else line for line in text.split("\n"))
    print(text)
    return 0
