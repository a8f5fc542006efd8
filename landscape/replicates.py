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

from ._atomic import write_bytes
from .errors import LandscapeError, check_float
from .stats import (
    SeedDifference,
    SeedSummary,
    seed_difference,
    seed_summary,
    seed_values,
)

__all__ = ["MINIMUM_KEYS", "ArmComparison", "SeedDifference", "SeedSummary", "compare_arms",
           "seed_difference", "seed_summary", "seed_values"]

#: Rows that presuppose a minimum: shown as "not at a minimum" for an arm that is not at one.
MINIMUM_KEYS = frozenset({
    "lambda_min", "ratio_at_minimum", "convex_area_fraction", "eps_sharpness",
    "eps_sharpness_ascent", "adaptive_sharpness", "adaptive_sharpness_avg", "basin_width_x",
    "basin_width_y", "line_train_loss_barrier", "line_test_loss_barrier",
    "curve_train_loss_barrier", "curve_test_loss_barrier",
})

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
    from .report.comparison import compare

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
