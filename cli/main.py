"""Entry point of the ``landscape`` command.

Every subcommand lives in its own module exposing ``add_parser(subparsers)``; the parser it
registers sets ``func`` to a function ``run(args) -> int`` that parses nothing itself, calls the
library and prints one line saying what was written.

Errors caused by the user's input (:class:`~landscape.errors.LandscapeError`, unreadable or
unwritable files, bad arguments) are printed as ONE line on stderr with exit code 2 and no
traceback. Ctrl-C exits with 130 after the partial results have been saved. Set
``LANDSCAPE_DEBUG=1`` to see full tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from landscape import __version__
from landscape.errors import LandscapeError

from . import info, plot, surface, train, trajectory


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage block) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one subparser per subcommand)."""
    p = _Parser(
        prog="landscape",
        description="Loss landscapes of PyTorch models: surfaces, trajectories, curvature.",
        epilog="Run 'landscape COMMAND --help' for the options of a command.",
    )
    p.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in (train, surface, trajectory, info, plot):
        mod.add_parser(sub)
    return p


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    args.argv = ["landscape", *argv]
    debug = os.environ.get("LANDSCAPE_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except LandscapeError as exc:
        if debug:
            raise
        print(f"landscape {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if debug:
            raise
        where = f": '{exc.filename}'" if getattr(exc, "filename", None) else ""
        msg = exc.strerror or str(exc)
        print(f"landscape {args.command}: error: {_one_line(msg)}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"landscape {args.command}: interrupted; finished work is saved, run the same "
            "command again to resume",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:  # a bug of ours: still one line, traceback on request
        if debug:
            raise
        print(
            f"landscape {args.command}: internal error: {type(exc).__name__}: "
            f"{_one_line(exc)[:300]} (set LANDSCAPE_DEBUG=1 for the traceback and "
            "please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
