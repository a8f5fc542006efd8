"""Types of the command-line options: each parses an option's text into the value a library
call takes, or fails as a one-line usage error."""

from __future__ import annotations

import argparse
from typing import Any

from landscape._imports import ImportNameError, import_object, is_import_name
from landscape.errors import LandscapeError, parse_float, parse_int

__all__ = ["batch_size_arg", "float_arg", "int_arg", "loss_arg", "shard_arg"]


def loss_arg(text: str) -> Any:
    """``--loss``: a built-in name, or ``package.module:function`` imported now."""
    if text in ("cross_entropy", "mse"):
        return text
    if is_import_name(text):
        try:
            return import_object(text, what="loss")
        except ImportNameError as exc:
            if exc.problem == "callable":
                raise LandscapeError(f"loss '{text}' is not callable") from exc
            raise LandscapeError(f"cannot import loss '{text}': {exc.detail}") from exc
    raise LandscapeError(
        f"unknown --loss {text!r}: use cross_entropy, mse or package.module:function"
    )


def batch_size_arg(text: str) -> int | str:
    """argparse type for ``--batch-size``: a positive int or ``auto``."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive integer, got {text!r}")
    return value


def int_arg(name: str, low: int | None = None, high: int | None = None):
    """argparse type: an int checked by :func:`landscape.errors.parse_int` (int64 at most)."""

    def parse(text: str) -> int:
        try:
            return parse_int(name, text, low, high)
        except LandscapeError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "int"
    return parse


def float_arg(name: str, low: float | None = None, high: float | None = None,
              closed: str = "both"):
    """argparse type: a finite float checked by :func:`landscape.errors.parse_float`."""

    def parse(text: str) -> float:
        try:
            return parse_float(name, text, low, high, closed)
        except LandscapeError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "float"
    return parse


def shard_arg(text: str) -> tuple[int, int]:
    """argparse type of ``--shard I/N``: shard ``I`` of ``N`` (``0 <= I < N``)."""
    i_s, sep, n_s = text.partition("/")
    try:
        i, n = int(i_s), int(n_s)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(
            f"expected I/N with 0 <= I < N (shard I of N, e.g. 0/4), got {text!r}")
    return i, n
