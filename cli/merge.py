"""``landscape merge``: shard files of a surface joined into the file one process would write."""

from __future__ import annotations

import argparse

from landscape.shards import merge_shards

from ._common import examples


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="join the shard files of 'landscape surface --shard I/N' into one file",
        description="Check that the shard files belong together (recipes apart from the "
                    "shard, directions, checkpoint, batch size; disjoint done masks) and write "
                    "their union: with every shard complete, the file a single process would "
                    "have written (bit for bit on one machine). A merge of some of the shards "
                    "is a partial surface that 'landscape surface' without --shard resumes.",
        epilog=examples(
            "landscape merge final_surface.h5 final_surface_shard0of2.h5 "
            "final_surface_shard1of2.h5",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT.h5", help="the merged file")
    p.add_argument("shards", metavar="SHARD.h5", nargs="+", help="shard files, any order")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    s = merge_shards(args.out, args.shards, overwrite=args.overwrite)
    grid = f"{len(s.x)}" if s.y is None else f"{len(s.y)}x{len(s.x)}"
    print(f"wrote {args.out}: {s.ndim}D {grid} surface from {len(args.shards)} shard file(s), "
          f"{s.n_done}/{s.n_points} points")
    return 0
