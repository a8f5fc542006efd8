"""Summaries over samples (direction pairs, seeds, batches): mean, spread, bootstrap intervals.

Every flatness number computed along random directions is one draw; over ``K`` draws the report
shows ``mean ± sd`` and a Student-t 95% interval of the mean, and for two networks whether
Welch's interval of the *difference* of their means excludes 0 (the difference exceeds the
spread over directions of these two trained networks -- not the spread over training seeds,
which :mod:`landscape.replicates` measures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _st

from .errors import LandscapeError, check_float

__all__ = ["Summary", "Difference", "summarize", "difference", "SeedSummary", "SeedDifference",
           "seed_summary", "seed_difference", "seed_values", "finite_values"]


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


def finite_values(values: Sequence[Any]) -> np.ndarray:
    """The finite values of ``values`` as float64 (``None`` and non-finite left out)."""
    a = np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


_finite = finite_values


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
    level = check_float("level", level, 0.0, 1.0, closed="neither")
    s = seed_summary(values, level=level)
    return Summary(s.mean, s.sd, s.lo, s.hi, s.n)


def difference(a: Sequence[float], b: Sequence[float], *, level: float = 0.95) -> Difference:
    """Welch's t-interval of ``mean(a) - mean(b)``; ``resolved`` when it excludes 0 (``None``
    with fewer than two finite values on a side or no spread at all)."""
    xa, xb = _finite(a), _finite(b)
    if len(xa) == 0 or len(xb) == 0:
        raise LandscapeError("a difference needs at least one finite value on each side")
    d = seed_difference(xa, xb, level=level)
    resolved = {"differs": True, "within the seed spread": False}.get(d.verdict)
    return Difference(d.delta, d.lo, d.hi, resolved)


# --------------------------------------------------------------------------- seed level
#: Permutations enumerated exactly up to this many; a seeded Monte-Carlo sample beyond.
_MAX_EXACT = 200_000


def seed_values(draws: Sequence[Any]) -> list[float]:
    """One value per seed: a number stays, a sequence of draws (direction pairs) becomes its
    mean over its finite draws (NaN when it has none).

    Parameters
    ----------
    draws : sequence
        Per seed, a number (or ``None``) or a sequence of per-direction values.

    Returns
    -------
    list of float
    """
    out = []
    for d in draws:
        if d is None or isinstance(d, int | float | np.floating | np.integer):
            out.append(math.nan if d is None else float(d))
        else:
            a = _finite(list(d))
            out.append(float(a.mean()) if len(a) else math.nan)
    return out


@dataclass(frozen=True)
class SeedSummary:
    """One arm's metric over its seeds.

    Attributes
    ----------
    mean, sd : float
        Over the finite seed values (``sd`` with ddof 1; NaN for one seed).
    lo, hi : float
        Student-t interval of the mean at ``level`` (NaN for fewer than two seeds).
    n : int
        Seeds with a finite value.
    level : float
        Coverage of the interval.
    values : tuple of float
        The seed values (NaN where a seed had none).
    """

    mean: float
    sd: float
    lo: float
    hi: float
    n: int
    level: float
    values: tuple[float, ...] = ()

    def text(self, fmt: str = "{:.3g}") -> str:
        """``"1.23 ± 0.05 [1.11, 1.35] (3 seeds)"``; the value alone for one seed."""
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return f"{fmt.format(self.mean)} (1 seed)"
        return (f"{fmt.format(self.mean)} ± {fmt.format(self.sd)} "
                f"[{fmt.format(self.lo)}, {fmt.format(self.hi)}] ({self.n} seeds)")


def seed_summary(values: Sequence[Any], *, level: float = 0.95) -> SeedSummary:
    """Mean, sd and Student-t interval of the mean over seed values.

    Parameters
    ----------
    values : sequence of float or None
        One value per seed (``None`` and non-finite values are left out and not counted).
    level : float, default 0.95
        Coverage of the interval.

    Returns
    -------
    SeedSummary
    """
    level = check_float("level", level, 0.0, 1.0, closed="neither")
    raw = tuple(math.nan if v is None else float(v) for v in values)
    a = _finite(raw)
    n = len(a)
    if n == 0:
        return SeedSummary(math.nan, math.nan, math.nan, math.nan, 0, level, raw)
    mean = float(a.mean())
    if n == 1:
        return SeedSummary(mean, math.nan, math.nan, math.nan, 1, level, raw)
    sd = float(a.std(ddof=1))
    half = float(_st.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return SeedSummary(mean, sd, mean - half, mean + half, n, level, raw)


@dataclass(frozen=True)
class SeedDifference:
    """``mean(a) - mean(b)`` over seeds, with Welch's interval and a permutation test.

    Attributes
    ----------
    delta : float
        Difference of the seed means.
    lo, hi : float
        Welch's t-interval of the difference at ``level`` (NaN with fewer than two seeds on a
        side).
    df : float
        Welch-Satterthwaite degrees of freedom.
    p_welch : float
        Two-sided p-value of Welch's t-test.
    p_permutation : float
        Two-sided p-value of the exact permutation test of the difference of means (every
        split of the pooled values into the two arms' sizes, twice the smaller one-sided
        p-value as :func:`scipy.stats.permutation_test` defines it; a seeded sample of 9,999
        splits when there are more than 200,000); ``p_min`` is the smallest it can be.
    p_min : float
        Smallest attainable permutation p-value (2 / C(n_a + n_b, n_a)).
    n_a, n_b : int
        Seeds with finite values on each side.
    level : float
    verdict : str
        ``"differs"`` (Welch's interval excludes 0), ``"within the seed spread"``, or
        ``"not testable"`` (fewer than two seeds on a side, or no spread at all).
    """

    delta: float
    lo: float
    hi: float
    df: float
    p_welch: float
    p_permutation: float
    p_min: float
    n_a: int
    n_b: int
    level: float
    verdict: str


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.mean(axis=axis) - y.mean(axis=axis)


def _permutation_p(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Two-sided permutation p-value of the difference of means (scipy's
    :func:`~scipy.stats.permutation_test`: exact over every split up to
    :data:`_MAX_EXACT` splits, else a seeded sample) and the smallest attainable one."""
    total = math.comb(len(a) + len(b), len(a))
    exact = total <= _MAX_EXACT
    res = _st.permutation_test((a, b), _mean_difference, permutation_type="independent",
                               vectorized=True, alternative="two-sided",
                               n_resamples=np.inf if exact else 9999,
                               random_state=np.random.default_rng(seed))
    return float(res.pvalue), min(1.0, 2 / total) if exact else 1 / 10000


def seed_difference(a: Sequence[Any], b: Sequence[Any], *, level: float = 0.95
                    ) -> SeedDifference:
    """Compare two arms' seed values: Welch's t-interval and an exact permutation test.

    Parameters
    ----------
    a, b : sequence of float or None
        One value per seed of each arm (non-finite values are left out).
    level : float, default 0.95
        Coverage of the interval.

    Returns
    -------
    SeedDifference
    """
    level = check_float("level", level, 0.0, 1.0, closed="neither")
    xa, xb = _finite(a), _finite(b)
    na, nb = len(xa), len(xb)
    nan = math.nan
    if na == 0 or nb == 0:
        return SeedDifference(nan, nan, nan, nan, nan, nan, nan, na, nb, level, "not testable")
    delta = float(xa.mean() - xb.mean())
    if na < 2 or nb < 2:
        return SeedDifference(delta, nan, nan, nan, nan, nan, nan, na, nb, level,
                              "not testable")
    va, vb = xa.var(ddof=1) / na, xb.var(ddof=1) / nb
    p_perm, p_min = _permutation_p(xa, xb)
    if va + vb == 0:
        return SeedDifference(delta, delta, delta, nan, nan, p_perm, p_min, na, nb, level,
                              "not testable")
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = float(_st.t.ppf((1 + level) / 2, df)) * se
    p_welch = float(2 * _st.t.sf(abs(delta) / se, df))
    lo, hi = delta - half, delta + half
    verdict = "differs" if (lo > 0 or hi < 0) else "within the seed spread"
    return SeedDifference(delta, lo, hi, float(df), p_welch, p_perm, p_min, na, nb, level,
                          verdict)
