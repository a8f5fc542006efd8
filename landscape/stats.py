"""Summaries over samples (direction pairs, seeds, batches): mean, spread, bootstrap intervals.

Every flatness number computed along random directions is one draw; over ``K`` draws the report
shows ``mean ± sd`` and a Student-t 95% interval of the mean, and for two networks whether
Welch's interval of the *difference* of their means excludes 0 (the difference exceeds the
spread over directions of these two trained networks -- not the spread over training seeds,
which :mod:`landscape.replicates` measures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import LandscapeError, check_float

__all__ = ["Summary", "Difference", "summarize", "difference"]


@dataclass(frozen=True)
class Summary:
    """``mean``, ``sd`` (ddof 1; NaN for one value), the Student-t interval ``[lo, hi]`` of the
    mean (NaN for one value), and ``n`` finite values (non-finite ones are left out)."""

    mean: float
    sd: float
    lo: float
    hi: float
    n: int

    def text(self, fmt: str = "{:.4g}") -> str:
        """``"1.23 ± 0.05 [1.19, 1.27]"`` (just the value for n = 1)."""
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return fmt.format(self.mean)
        return (f"{fmt.format(self.mean)} ± {fmt.format(self.sd)} "
                f"[{fmt.format(self.lo)}, {fmt.format(self.hi)}]")


@dataclass(frozen=True)
class Difference:
    """``a - b`` of two means with Welch's interval; ``resolved`` when the interval
    excludes 0 (``None`` when it cannot be told: fewer than two values on a side)."""

    delta: float
    lo: float
    hi: float
    resolved: bool | None


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray([float("nan") if v is None else v for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


def summarize(values: Sequence[float], *, level: float = 0.95) -> Summary:
    """Mean, standard deviation and a Student-t interval of the mean.

    Parameters
    ----------
    values : sequence of float
        One value per draw (non-finite and ``None`` values are left out and not counted).
    level : float, default 0.95
        Coverage of the interval.

    Notes
    -----
    Until 2026-12-05 this was a percentile bootstrap, which undercovers at the handful of
    draws a report has (K = 3-5 direction pairs); the t-interval is exact for normal draws
    and what :mod:`landscape.replicates` uses at the seed level.
    """
    from .replicates import seed_summary

    level = check_float("level", level, 0.0, 1.0, closed="neither")
    s = seed_summary(values, level=level)
    return Summary(s.mean, s.sd, s.lo, s.hi, s.n)


def difference(a: Sequence[float], b: Sequence[float], *, level: float = 0.95) -> Difference:
    """Welch's t-interval of ``mean(a) - mean(b)``; ``resolved`` when it excludes 0 (``None``
    with fewer than two finite values on a side or no spread at all)."""
    from .replicates import seed_difference

    xa, xb = _finite(a), _finite(b)
    if len(xa) == 0 or len(xb) == 0:
        raise LandscapeError("a difference needs at least one finite value on each side")
    d = seed_difference(xa, xb, level=level)
    resolved = {"differs": True, "within the seed spread": False}.get(d.verdict)
    return Difference(d.delta, d.lo, d.hi, resolved)
