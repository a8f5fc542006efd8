"""The frame every subcommand shares: one parser with its help line, description, examples and
handler."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Sequence

from landscape.errors import LandscapeError

from ._common import examples as _examples

__all__ = ["add_command", "add_file_output_args", "comma_choices"]


def add_command(sub: argparse._SubParsersAction, name: str,
                run: Callable[[argparse.Namespace], int], *, help: str,  # noqa: A002
                description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` to ``sub``: ``help`` in the command list, ``description``
    and the ``examples`` command lines (as written, one a line) in its ``--help``, and ``run``
    as its handler (``args.func``). Returns the parser, for the command's own options."""
    p = sub.add_parser(name, help=help, description=description, epilog=_examples(*examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=run)
    return p


def add_file_output_args(p: argparse.ArgumentParser, default: str) -> None:
    """``--out FILE.h5`` (``default`` when not given) and ``--overwrite`` of a command that adds
    its groups to a landscape file, keeping the file's other groups."""
    p.add_argument("--out", metavar="FILE.h5",
                   help=f"output file (default: {default}); other groups of an existing "
                        "landscape file are kept")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing landscape file instead of adding to it")


def comma_choices(flag: str, text: str | None, choices: Collection[str]) -> list[str] | None:
    """The comma list ``text`` of the option ``flag`` (``None`` when not given), each item one
    of ``choices``; anything else is a one-line usage error."""
    if text is None:
        return None
    items = [k.strip() for k in text.split(",") if k.strip()]
    if not items or any(k not in choices for k in items):
        raise LandscapeError(f"{flag} must be a comma list of {','.join(choices)}; got {text!r}")
    return items
