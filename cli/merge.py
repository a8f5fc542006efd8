"""``landscape merge``: shard files of a grid analysis joined into the file one process would
write."""

from __future__ import annotations

import argparse

from landscape.shards import merge_shards

from ._common import examples


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="join the shard files of a surface, surface set, ratio map or connect run "
             "(--shard I/N) into one file",
        description="Find the kind of the shard files (a surface or surface set of 'landscape "
                    "surface --shard I/N', a ratio map of 'landscape hessian --grid S.h5 "
                    "--no-warm-start --shard I/N', a connectivity result of 'landscape "
                    "connect --shard I/N'), check that they belong together (one kind, "
                    "recipes apart from the shard, directions, checkpoints, grid, batch "
                    "size, a connect run's trained bends; disjoint done masks, every point in "
                    "its own shard) and write their union: with every shard complete, the file "
                    "a single process would have written (bit for bit on one machine). A merge "
                    "of some of the shards is a partial file that the same command without "
                    "--shard resumes.",
        epilog=examples(
            "landscape merge final_surface.h5 final_surface_shard0of2.h5 "
            "final_surface_shard1of2.h5",
            "landscape merge map.h5 s_ratio_map_shard0of2.h5 s_ratio_map_shard1of2.h5",
            "landscape merge ab.h5 a_connect_shard*of2.h5",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT.h5", help="the merged file")
    p.add_argument("shards", metavar="SHARD.h5", nargs="+", help="shard files, any order")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    res = merge_shards(args.out, args.shards, overwrite=args.overwrite)
    print(f"wrote {args.out}: {res!r} from {len(args.shards)} shard file(s), "
          f"{res.n_done}/{res.n_points} points")
    return 0
