"""The library's error type and the parameter validators shared by the library and the CLI.

Every user-facing check goes through a function here so that every message has the same shape
(after scikit-learn's ``_param_validation``)::

    The 'batch_size' parameter must be an int in [1, inf). Got 0 instead.

The CLI catches :class:`LandscapeError` and prints its message as one line with exit code 2.

Messages name *parameters*, never command-line flags, in three fixed forms only, so that the
CLI can show them as its options (``cli._common.flag_message``) and a notebook user reads the
names they typed:

- the scikit-learn form, ``The 'name' parameter ...`` (or ``the 'name' parameter`` inside a
  sentence, ``the 'a' and 'b' parameters``);
- the call form ``name=VALUE``: ``pass overwrite=True to replace it``, ``choose another
  out=PATH``, ``pass state_key=...``, ``loss='mse'``, ``dtype=torch.float64``;
- the name form, the parameter in backquotes standing for what was given to it: ``the
  `interpolate` checkpoint 'b.pt' is another architecture``, ```y` needs 2 directions``.

Where a missing result is made by another computation, a message names the library call
(``compute one with compute_ratio_map()``), never a ``landscape`` command; the CLI turns the
calls it knows into the command that makes them.

An interruption (Ctrl-C, or SIGTERM turned into :class:`KeyboardInterrupt` by the CLI) is not
an error, but what it leaves behind differs per computation: :func:`note_interruption` attaches
an :class:`Interruption` to the exception on its way out of a library call (a surface saves its
finished points, a training run its checkpoints and resume state, a Hessian at a point nothing),
and the CLI reads it back with :func:`interruption_of` to print a message that is true.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LandscapeError",
    "Interruption",
    "note_interruption",
    "interruption_of",
    "on_interrupt",
    "check_option",
    "Int",
    "Real",
    "Options",
    "validate_params",
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


@dataclass(frozen=True)
class Interruption:
    """What an interrupted computation left on disk (attached to its ``KeyboardInterrupt``).

    Attributes
    ----------
    saved : str or None
        A clause saying what was saved, e.g. ``"checkpoints up to epoch 3 are saved in
        'runs/mlp'"``; ``None`` when nothing was saved.
    resumable : bool
        Whether running the same computation again continues from what was saved (instead of
        starting over).
    """

    saved: str | None
    resumable: bool

    def message(self) -> str:
        """The clause the CLI prints after ``interrupted;``."""
        if self.saved is None:
            return "nothing was saved"
        if self.resumable:
            return f"{self.saved}, run the same command again to resume"
        return self.saved


_ATTR = "landscape_interruption"


def note_interruption(exc: BaseException, saved: str | None, resumable: bool) -> None:
    """Attach an :class:`Interruption` to ``exc`` (a ``KeyboardInterrupt`` being re-raised).

    The innermost note that says something was saved wins: a note is only replaced while it
    says nothing was saved (an outer computation may have saved earlier steps).
    """
    old = interruption_of(exc)
    if old is None or old.saved is None:
        setattr(exc, _ATTR, Interruption(saved, resumable))


def interruption_of(exc: BaseException) -> Interruption | None:
    """The :class:`Interruption` noted on ``exc``, or ``None`` (then nothing is known saved)."""
    note = getattr(exc, _ATTR, None)
    return note if isinstance(note, Interruption) else None


@contextmanager
def on_interrupt(saved: str | None, resumable: bool) -> Iterator[None]:
    """Note ``saved``/``resumable`` on a ``KeyboardInterrupt`` raised inside the block."""
    try:
        yield
    except KeyboardInterrupt as exc:
        note_interruption(exc, saved, resumable)
        raise


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


def check_mask(name: str, value: Any, like: str, shape: tuple[int, ...]) -> Any:
    """``value`` as a boolean numpy array of ``shape`` (that of the parameter ``like``), else
    a :class:`LandscapeError` naming both."""
    import numpy as np

    mask = np.asarray(value, dtype=bool)
    if mask.shape != tuple(shape):
        raise LandscapeError(
            f"The {name!r} parameter must have the shape of {like} {tuple(shape)}. Got "
            f"{mask.shape} instead."
        )
    return mask


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


# --------------------------------------------------------------------------- declared constraints
@dataclass(frozen=True)
class Int:
    """Constraint: an int in ``[low, high]`` (see :func:`check_int`); ``None`` allowed when
    ``optional``."""

    low: int | None = None
    high: int | None = None
    optional: bool = False

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        return check_int(name, value, self.low, self.high)


@dataclass(frozen=True)
class Real:
    """Constraint: a finite real in an interval (see :func:`check_float`)."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"
    optional: bool = False

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        return check_float(name, value, self.low, self.high, self.closed)


@dataclass(frozen=True)
class Options:
    """Constraint: one of the strings ``allowed`` (see :func:`check_option`); ``None`` allowed
    when ``optional``."""

    allowed: tuple[str, ...]
    optional: bool = False

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        return check_option(name, value, self.allowed)


def validate_params(values: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    """Check every value that has a declared constraint; return them normalised.

    After scikit-learn's ``_parameter_constraints``: a function declares its constraints once,
    as a module-level dict of :class:`Int`, :class:`Real` and :class:`Options` (or any
    callable ``(name, value) -> value``), and calls this with its arguments, e.g.
    ``validate_params(locals(), _CONSTRAINTS)``. Names without a constraint pass unchanged.
    """
    return {k: constraints[k](k, v) if k in constraints else v for k, v in values.items()}
