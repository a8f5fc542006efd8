"""Entry point of the ``landscape`` command.

Every subcommand lives in its own module exposing ``add_parser(subparsers)``; the parser it
registers sets ``func`` to a function ``run(args) -> int`` that parses nothing itself, calls the
library and prints one line saying what was written.

Errors caused by the user's input (:class:`~landscape.errors.LandscapeError`, unreadable or
unwritable files, bad arguments) are printed as ONE line on stderr with exit code 2 and no
traceback. Ctrl-C exits with 130, SIGTERM (sent by job schedulers before they kill a job) the
same way with 143; the one line printed then says what the interrupted library call saved and
whether re-running resumes (the :class:`~landscape.errors.Interruption` that the call noted on
the exception; "nothing was saved" when it noted none). Set ``LANDSCAPE_DEBUG=1`` to see full
tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any

from landscape import __version__
from landscape.errors import LandscapeError, interruption_of
from landscape.threads import configure_threads

from ._common import flag_message
from ._types import batch_size_arg  # 'auto' or a positive int: the same type


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (no usage block) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


#: The subcommands, in the order of ``--help``; each is the module ``landscape.cli.<name>``,
#: imported only when its parser is built (a command imports what it uses, not the others).
COMMANDS = ("demo", "train", "surface", "trajectory", "hessian", "info", "plot", "compare",
            "connect", "probe", "sharpening", "merge")

#: Commands whose handler reads ``args.root_parser`` (the full parser): they always get it.
_NEED_ROOT = frozenset({"info"})


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: one subparser per subcommand, all of :data:`COMMANDS` by default.

    ``commands`` registers only those (in that order): ``main`` parses a command line naming
    one command with that command's parser alone, which parses it exactly as the full one
    does but imports only that command's module.
    """
    p = _Parser(
        prog="landscape",
        description="Loss landscapes of PyTorch models: surfaces, trajectories, curvature.",
        epilog="Run 'landscape COMMAND --help' for the options of a command.",
    )
    p.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS if commands is None else commands:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    for command in sub.choices.values():
        add_threads_arg(command)
    return p


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    """``--threads auto|N``, on every subcommand (applied by :func:`main` before it runs)."""
    p.add_argument(
        "--threads", type=batch_size_arg, default="auto", metavar="auto|N",
        help="CPU threads of torch: 'auto' (default) uses OMP_NUM_THREADS when set, else the "
             "CPUs found idle when the command starts (one thread per free core, at least 1: "
             "spinning OpenMP threads on a busy machine are many times slower than one); N: "
             "exactly N. Recorded in each result's provenance. Training (train, demo) runs at a "
             "fixed count that is part of its recipe, recorded in run.json: N when given, "
             "else 1",
    )


_GRID_OPTIONS = ("--x", "--y")
_NEGATIVE_GRID = re.compile(r"^-[\d.].*:")


def _join_negative_grids(argv: list[str]) -> list[str]:
    """Let ``--x -1:1:51`` mean ``--x=-1:1:51`` (argparse takes ``-1:1:51`` for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _GRID_OPTIONS and i + 1 < len(argv) and _NEGATIVE_GRID.match(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _one_line_warning(command: str, message: Warning | str, category: type[Warning],
                      filename: str, lineno: int, file: Any = None, line: str | None = None
                      ) -> None:
    """A library warning as one line, ``landscape CMD: warning: ...`` (no source line)."""
    print(f"landscape {command}: warning: {_one_line(message)}", file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = _join_negative_grids(list(sys.argv[1:] if argv is None else argv))
    one = argv[0] if argv and argv[0] in COMMANDS and argv[0] not in _NEED_ROOT else None
    parser = build_parser() if one is None else build_parser([one])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    args.argv = ["landscape", *argv]
    args.root_parser = parser  # for handlers that translate library text (_NEED_ROOT: full)
    debug = os.environ.get("LANDSCAPE_DEBUG", "") not in ("", "0")
    previous = _catch_sigterm()
    try:
        args.thread_policy = configure_threads(getattr(args, "threads", "auto"))
        with warnings.catch_warnings():  # restores the warning machinery afterwards
            warnings.showwarning = partial(_one_line_warning, args.command)
            return int(args.func(args) or 0)
    except LandscapeError as exc:
        if debug:
            raise
        full = parser if one is None else build_parser()  # other commands' options too
        message = flag_message(str(exc), full, args.command)  # parameters as options
        print(f"landscape {args.command}: error: {_one_line(message)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` & co: stop quietly, like Unix tools
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - swallow the flush at exit
        except OSError:
            pass
        return 0
    except OSError as exc:
        if debug:
            raise
        where = f": '{exc.filename}'" if getattr(exc, "filename", None) else ""
        msg = exc.strerror or str(exc)
        print(f"landscape {args.command}: error: {_one_line(msg)}{where}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        if debug:
            raise
        print(
            f"landscape {args.command}: error: out of memory ({_one_line(exc)[:200]}); use a "
            "smaller grid, data subset or --batch-size",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        note = interruption_of(exc)
        tail = note.message() if note is not None else "nothing was saved"
        print(f"landscape {args.command}: {how}; {tail}", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
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
    finally:
        _restore_sigterm(previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (schedulers, ``kill``, ``docker stop``), handled like Ctrl-C."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise _Terminated()


def _catch_sigterm():
    """Turn SIGTERM into :class:`_Terminated` while a command runs; returns the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or not allowed
        return None


def _restore_sigterm(previous) -> None:
    if previous is None:
        return
    import signal

    try:
        signal.signal(signal.SIGTERM, previous)
    except (ValueError, OSError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
