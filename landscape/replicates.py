"""Comparisons with training seeds as the unit of replication.

A number that ranks two networks is a result only if it holds on another training seed: the
variance over training runs (initialisation, data order) usually exceeds the variance over
evaluation choices such as the random directions of a surface (Bouthillier et al. 2021). So a
comparison *arm* here is several training runs (seeds) of one architecture, and every metric is
summarised at the seed level:

* per seed, one value (a metric measured along ``K`` random direction pairs is first averaged
  over its pairs: directions are nested within seeds, so ``K`` pairs of one network are not
  ``K`` replicates);
* per arm, ``mean ± sd`` over seeds and a Student-t interval of the mean,
  ``mean ± t_{S-1} sd / sqrt(S)``;
* per pair of arms, Welch's t-interval of the difference of means (Welch-Satterthwaite
  degrees of freedom) and an exact two-sided permutation test over every relabelling of the
  pooled seed values. The verdict ("differs beyond the seed-to-seed spread" or not) is Welch's
  interval excluding 0; the permutation p-value is reported beside it. With 3 seeds per arm
  no permutation test can reach p < 0.1 (the smallest two-sided p is 2/20): the table says so
  rather than pretending otherwise.

No bootstrap is used: at 2-5 seeds a percentile bootstrap undercovers badly.

Metrics that assume the network sits at a minimum (``lambda_min``, ``|lambda_min/lambda_max|``,
sharpness, basin widths, the convex-looking area, barriers) are not ranked for an arm whose
runs are not at a stationary point (:func:`landscape.convergence.stationarity`): the verdict
then says "not at a minimum".

References
----------
.. [1] X. Bouthillier et al., "Accounting for variance in machine learning benchmarks",
   MLSys 2021.
.. [2] B. L. Welch, "The generalization of 'Student's' problem when several different
   population variances are involved", Biometrika 34, 1947.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as _st

from ._atomic import write_bytes
from .errors import LandscapeError, check_float

__all__ = ["MINIMUM_KEYS", "ArmComparison", "SeedDifference", "SeedSummary", "compare_arms",
           "seed_difference", "seed_summary", "seed_values"]

#: Rows that presuppose a minimum: shown as "not at a minimum" for an arm that is not at one.
MINIMUM_KEYS = frozenset({
    "lambda_min", "ratio_at_minimum", "convex_area_fraction", "eps_sharpness",
    "eps_sharpness_ascent", "adaptive_sharpness", "adaptive_sharpness_avg", "basin_width_x",
    "basin_width_y", "line_train_loss_barrier", "line_test_loss_barrier",
    "curve_train_loss_barrier", "curve_test_loss_barrier",
})

#: Permutations enumerated exactly up to this many; a seeded Monte-Carlo sample beyond.
_MAX_EXACT = 200_000


def _finite(values: Sequence[Any]) -> np.ndarray:
    a = np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


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


@dataclass(frozen=True)
class ArmComparison:
    """Several arms (architectures), each several seeds, compared metric by metric.

    Attributes
    ----------
    arms : tuple of str
        Arm names, in order; differences are ``arms[0] - arms[1]``.
    seeds : dict[str, tuple of str]
        Per arm, the labels of its runs (the report columns).
    values : dict[str, dict[str, list of float]]
        ``values[metric][arm]``: one value per seed (direction metrics averaged over the
        seed's direction pairs first).
    summaries : dict[str, dict[str, SeedSummary]]
        ``summaries[metric][arm]``.
    differences : dict[str, SeedDifference]
        ``differences[metric]`` for the first two arms.
    at_minimum : dict[str, str or None]
        Per arm, ``None`` when every run is at a stationary point, else the reason it is not
        (rows of :data:`MINIMUM_KEYS` are then not ranked).
    level : float
    notes : tuple of str
    """

    arms: tuple[str, ...]
    seeds: dict[str, tuple[str, ...]]
    values: dict[str, dict[str, list[float]]]
    summaries: dict[str, dict[str, SeedSummary]]
    differences: dict[str, SeedDifference]
    at_minimum: dict[str, str | None] = field(default_factory=dict)
    level: float = 0.95
    notes: tuple[str, ...] = ()

    def verdict(self, metric: str) -> str:
        """The difference's verdict, or ``"not at a minimum"`` for a row that assumes one
        when an arm is not at one."""
        if metric in MINIMUM_KEYS:
            off = [a for a in self.arms[:2] if self.at_minimum.get(a)]
            if off:
                return f"not at a minimum ({', '.join(off)}): not ranked"
        d = self.differences.get(metric)
        return d.verdict if d is not None else "not testable"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (NaN becomes ``None``)."""

        def clean(x: Any) -> Any:
            if isinstance(x, float):
                return x if math.isfinite(x) else None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list | tuple):
                return [clean(v) for v in x]
            return x

        return clean({
            "arms": list(self.arms), "seeds": {k: list(v) for k, v in self.seeds.items()},
            "level": self.level, "at_minimum": dict(self.at_minimum),
            "values": self.values,
            "summaries": {m: {a: asdict(s) for a, s in per.items()}
                          for m, per in self.summaries.items()},
            "differences": {m: {**asdict(d), "verdict_shown": self.verdict(m)}
                            for m, d in self.differences.items()},
            "notes": list(self.notes),
        })

    def markdown_table(self, metrics: Sequence[str] | None = None, fmt: str = "{:.3g}") -> str:
        """One row per metric: each arm's seed summary, the difference with Welch's interval,
        the permutation p-value and the verdict."""
        metrics = [m for m in (metrics or self.summaries) if m in self.summaries]
        pct = int(round(100 * self.level))
        head = ["metric", *(f"{a} (mean ± sd [{pct}% CI])" for a in self.arms)]
        two = len(self.arms) >= 2
        if two:
            head += [f"{self.arms[0]} − {self.arms[1]} [{pct}% CI]", "permutation p",
                     "verdict"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in metrics:
            row = [m, *(self.summaries[m][a].text(fmt) for a in self.arms)]
            if two:
                d = self.differences[m]
                diff = ("n/a" if not math.isfinite(d.delta) else fmt.format(d.delta)
                        if not math.isfinite(d.lo) else
                        f"{fmt.format(d.delta)} [{fmt.format(d.lo)}, {fmt.format(d.hi)}]")
                p = ("n/a" if not math.isfinite(d.p_permutation)
                     else f"{d.p_permutation:.2g} (min {d.p_min:.2g})")
                row += [diff, p, self.verdict(m)]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write ``arms.json`` and ``arms.md`` into ``out_dir`` (created); returns the dir."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_bytes(out / "arms.json", json.dumps(self.to_dict(), indent=2).encode())
        text = (f"# Seed-level comparison: {' vs '.join(self.arms)}\n\n"
                + "".join(f"- {n}\n" for n in self.notes) + "\n" + self.markdown_table()
                + "\n")
        write_bytes(out / "arms.md", text.encode())
        return out


def compare_arms(
    arms: Mapping[str, Sequence[Any]],
    *,
    level: float = 0.95,
    at_minimum: Mapping[str, str | None] | None = None,
    extra: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    **compare_kwargs: Any,
) -> tuple[ArmComparison, Any]:
    """Compare arms of several seeds each, at the seed level.

    Parameters
    ----------
    arms : mapping of str to sequence
        Per arm (in order), its runs: one result file per seed, or a list of files per seed
        (as :func:`landscape.report.compare` takes them).
    level : float, default 0.95
        Coverage of the intervals.
    at_minimum : mapping of str to str or None, optional
        Per arm, the reason its runs are not at a stationary point (``None``: they are),
        e.g. from :func:`landscape.convergence.stationarity`; rows of :data:`MINIMUM_KEYS`
        are not ranked for an arm with a reason.
    extra : mapping of str to sequence of mapping, optional
        Per arm, one dict of further numbers per run (in the order of the runs), e.g. a
        stationarity test or numbers measured at initialization: added as rows (a value may
        be a list of per-direction draws, averaged within the seed).
    **compare_kwargs
        Passed to :func:`landscape.report.compare` (``eps``, ``basin_threshold``,
        ``models`` as one checkpoint per run in the order of the runs, ...).

    Returns
    -------
    ArmComparison
        The seed-level comparison.
    Report
        The per-run report it was computed from (one column per seed, named ``ARM/sN``).

    Raises
    ------
    LandscapeError
        If there are fewer than two arms, an arm has no run, or the runs were computed with
        different recipes.
    """
    from .report import compare

    level = check_float("level", level, 0.0, 1.0, closed="neither")
    if not isinstance(arms, Mapping) or len(arms) < 2:
        raise LandscapeError("The 'arms' parameter must map at least two arm names to their "
                             f"runs. Got {arms!r} instead.")
    files: list[Any] = []
    labels: dict[str, tuple[str, ...]] = {}
    for arm, runs in arms.items():
        runs = [runs] if isinstance(runs, str | os.PathLike) else list(runs)
        if not runs:
            raise LandscapeError(f"The arm {arm!r} has no runs.")
        labels[arm] = tuple(f"{arm}/s{i}" for i in range(len(runs)))
        files.extend(runs)
    names = [n for arm in arms for n in labels[arm]]
    report = compare(files, names=names, **compare_kwargs)
    rows: dict[str, dict[str, Any]] = {n: dict(report.table[n]) for n in names}
    for per_network in report.sections.values():  # mechanisms, connectivity, hessian slices
        for n, numbers in per_network.items():
            rows[n].update(numbers)
    for arm, per_run in (extra or {}).items():
        if arm not in labels or len(per_run) != len(labels[arm]):
            raise LandscapeError(f"The 'extra' parameter must give one dict per run of arm "
                                 f"{arm!r} ({len(labels.get(arm, ()))}). Got {len(per_run)}.")
        for n, numbers in zip(labels[arm], per_run, strict=True):
            rows[n].update(numbers)
    metrics = list(dict.fromkeys(k for n in names for k in rows[n]))
    values: dict[str, dict[str, list[float]]] = {}
    summaries: dict[str, dict[str, SeedSummary]] = {}
    differences: dict[str, SeedDifference] = {}
    arm_names = list(arms)
    for m in metrics:
        per_arm = {}
        if any(isinstance(rows[n].get(m), str | bool) for n in names):
            continue  # not a number
        for arm in arm_names:
            draws = []
            for col in labels[arm]:
                spread = report.spread.get(col, {}).get(m)
                draws.append(spread if spread else rows[col].get(m))
            per_arm[arm] = seed_values(draws)
        if all(not np.isfinite(v).any() for v in per_arm.values()):
            continue  # a row no run has
        values[m] = per_arm
        summaries[m] = {a: seed_summary(v, level=level) for a, v in per_arm.items()}
        differences[m] = seed_difference(per_arm[arm_names[0]], per_arm[arm_names[1]],
                                         level=level)
    notes = []
    sizes = {a: len(v) for a, v in labels.items()}
    if min(sizes.values()) < 2:
        notes.append("an arm has a single seed: no seed-level interval, nothing is ranked")
    n_a, n_b = sizes[arm_names[0]], sizes[arm_names[1]]
    p_min = 2 / math.comb(n_a + n_b, n_a)
    notes.append(f"{n_a} vs {n_b} seeds: the smallest attainable two-sided permutation p is "
                 f"{p_min:.3g}; verdicts use Welch's {round(100 * level)}% interval")
    return ArmComparison(tuple(arm_names), labels, values, summaries, differences,
                         dict(at_minimum or {}), level, tuple(notes)), report
