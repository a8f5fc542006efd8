"""Summaries over samples (direction pairs, seeds, batches): mean, spread, bootstrap intervals.

Every flatness number computed along random directions is one draw; over ``K`` draws the report
shows ``mean ± sd`` and a percentile-bootstrap 95% interval of the mean, and for two networks
whether the interval of the *difference* of their means excludes 0 (the difference exceeds the
spread over directions). The bootstrap is seeded, so reports are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import LandscapeError, check_float, check_int

__all__ = ["Summary", "Difference", "summarize", "difference"]


@dataclass(frozen=True)
class Summary:
    """``mean``, ``sd`` (ddof 1; NaN for one value), the bootstrap interval ``[lo, hi]`` of the
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
    """``a - b`` of two means with its bootstrap interval; ``resolved`` when the interval
    excludes 0 (``None`` when it cannot be told: fewer than two values on a side)."""

    delta: float
    lo: float
    hi: float
    resolved: bool | None


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray([float("nan") if v is None else v for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


def _boot_means(a: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    return a[idx].mean(axis=1)


def summarize(values: Sequence[float], *, level: float = 0.95, n_boot: int = 2000,
              seed: int = 0) -> Summary:
    """Mean, standard deviation and a percentile-bootstrap interval of the mean.

    Parameters
    ----------
    values : sequence of float
        One value per draw (non-finite and ``None`` values are left out and not counted).
    level : float, default 0.95
        Coverage of the interval.
    n_boot : int, default 2000
        Bootstrap resamples.
    seed : int, default 0
        Seed of the resampling.
    """
    level = check_float("level", level, 0.0, 1.0, closed="neither")
    n_boot = check_int("n_boot", n_boot, 1)
    a = _finite(values)
    if len(a) == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    if len(a) == 1:
        return Summary(float(a[0]), math.nan, math.nan, math.nan, 1)
    means = _boot_means(a, n_boot, np.random.default_rng(seed))
    q = (1 - level) / 2
    return Summary(float(a.mean()), float(a.std(ddof=1)), float(np.quantile(means, q)),
                   float(np.quantile(means, 1 - q)), len(a))


def difference(a: Sequence[float], b: Sequence[float], *, level: float = 0.95,
               n_boot: int = 2000, seed: int = 0) -> Difference:
    """Bootstrap interval of ``mean(a) - mean(b)`` (independent resampling of each side)."""
    xa, xb = _finite(a), _finite(b)
    if len(xa) == 0 or len(xb) == 0:
        raise LandscapeError("a difference needs at least one finite value on each side")
    delta = float(xa.mean() - xb.mean())
    if len(xa) < 2 or len(xb) < 2:
        return Difference(delta, math.nan, math.nan, None)
    rng = np.random.default_rng(seed)
    d = _boot_means(xa, n_boot, rng) - _boot_means(xb, n_boot, rng)
    q = (1 - level) / 2
    lo, hi = float(np.quantile(d, q)), float(np.quantile(d, 1 - q))
    return Difference(delta, lo, hi, bool(lo > 0 or hi < 0))
