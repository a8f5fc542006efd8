"""The library's error type and the parameter validators shared by the library and the CLI.

Every user-facing check goes through a function here so that every message has the same shape
(after scikit-learn's ``_param_validation``)::

    The 'batch_size' parameter must be an int in [1, inf). Got 0 instead.

The CLI catches :class:`LandscapeError` and prints its message as one line with exit code 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "LandscapeError",
    "check_option",
    "check_int",
    "check_float",
    "parse_int",
    "parse_float",
    "INT64_MAX",
]

#: The largest integer a parameter may take unless it says otherwise: what int64 (torch, NumPy,
#: HDF5) holds. Larger values overflow far from where they were given.
INT64_MAX = 2**63 - 1


class LandscapeError(ValueError):
    """An error caused by the user's input (bad parameter, file, checkpoint, data...).

    Its message is a single line that says what is wrong and, where possible, how to fix it.
    """


def _interval(low: float | None, high: float | None, closed: str = "both") -> str:
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    left = "[" if closed in ("both", "left") and low is not None else "("
    right = "]" if closed in ("both", "right") and high is not None else ")"
    return f"{left}{lo}, {hi}{right}"


def check_option(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Check that ``value`` is one of the strings in ``allowed`` and return it."""
    allowed = list(allowed)
    if not isinstance(value, str) or value not in allowed:
        opts = ", ".join(repr(a) for a in allowed)
        raise LandscapeError(
            f"The '{name}' parameter must be one of {{{opts}}}. Got {value!r} instead."
        )
    return value


def check_int(
    name: str, value: Any, low: int | None = None, high: int | None = None
) -> int:
    """Check that ``value`` is an integer in ``[low, high]`` and return it as ``int``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and value.is_integer()
    if ok:
        value = int(value)
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise LandscapeError(
            f"The '{name}' parameter must be an int in {_interval(low, high)}. "
            f"Got {value!r} instead."
        )
    return int(value)


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
) -> float:
    """Check that ``value`` is a finite real in the interval and return it as ``float``.

    ``closed`` is one of ``"both"``, ``"left"``, ``"right"``, ``"neither"``.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        v = float(value)
        if low is not None:
            ok = v >= low if closed in ("both", "left") else v > low
        if ok and high is not None:
            ok = v <= high if closed in ("both", "right") else v < high
    if not ok:
        raise LandscapeError(
            f"The '{name}' parameter must be a float in {_interval(low, high, closed)}. "
            f"Got {value!r} instead."
        )
    return float(value)


def parse_int(name: str, text: str, low: int | None = None, high: int | None = None) -> int:
    """Parse a command-line integer and check it with :func:`check_int`.

    ``high`` defaults to :data:`INT64_MAX` (and ``low`` to its negative), so that a value that
    would overflow int64 later (``99999999999999999999``) is refused where it is given.

    Examples
    --------
    >>> parse_int("epochs", "30", 1)
    30
    """
    try:
        value: Any = int(str(text).strip())
    except ValueError:
        raise LandscapeError(
            f"The '{name}' parameter must be an int in "
            f"{_interval(low, INT64_MAX if high is None else high)}. Got {text!r} instead."
        ) from None
    if high is None:  # the library's message for its own bound, then the int64 ceiling
        check_int(name, value, low)
    return check_int(name, value, -INT64_MAX - 1 if low is None else low,
                     INT64_MAX if high is None else high)


def parse_float(
    name: str,
    text: str,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
) -> float:
    """Parse a command-line real number and check it with :func:`check_float`.

    ``nan``, ``inf`` and numbers too large for a float (``1e400``) are refused.

    Examples
    --------
    >>> parse_float("lr", "0.1", 0.0, closed="neither")
    0.1
    """
    try:
        value: Any = float(str(text).strip())
    except ValueError:
        value = text
    return check_float(name, value, low, high, closed)
