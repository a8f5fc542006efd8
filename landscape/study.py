"""The depth study: residual vs plain networks at two depths, several training seeds each.

This is what ``landscape demo`` runs. A comparison of two architectures is a result only if it
holds on another training seed and compares like with like, so the study

1. trains every arm (residual, plain) at every depth with ``S`` seeds, one recipe for all
   (training at a fixed thread count: bit-identical on one machine whatever the load);
2. measures each network at its final checkpoint: loss surface along seeded filter-normalized
   directions, Hessian curvature (λmax, λmin, trace), filter-normalized directional curvature
   ``dᵀHd`` over ``K`` directions (which the rescalings BatchNorm allows cannot change) and the
   weight norm beside the raw-scale numbers, a stationarity test
   (:func:`landscape.convergence.stationarity`), the PCA of its optimizer path, the mechanism
   analyses at convergence and at initialization (BatchNorm statistics recalibrated), and at
   the first depth λmax along training against ``(2 + 2β)/η``;
3. where one arm ends far above the other's train loss, measures the better arm again at its
   checkpoint of *matched train loss* (:func:`landscape.convergence.matched_checkpoint`);
4. compares the arms at the seed level (:func:`landscape.replicates.compare_arms`: Student-t
   intervals over seeds, Welch's interval of the difference, an exact permutation test), at
   convergence and at matched loss, never ranking a metric that assumes a minimum for an arm
   that is not at one;
5. states each claim of the residual story as reproduced, not reproduced or not testable here,
   with the number, its seed interval and the reason (:func:`claims`).

Every step writes its file as it goes and is skipped when done, so re-running resumes.

Layout of ``out_dir``::

    runs/d{depth}/{arm}/seed_{s}/     checkpoints and run.json of each run
    d{depth}_{arm}_s{s}.h5            /surface, /directions, /curvature, mechanism groups
    d{depth}_{arm}_s{s}_trajectory.h5 /trajectory (PCA of the path)
    d{depth}_{arm}_s{s}.json          stationarity, dᵀHd, weight norm, numbers at init
    d{depth}_residual_matched_s{s}_e{epoch}.*  the same at the checkpoint of matched train loss
    report/                           report.md, report.html, report.json, figures;
                                      d{depth}/ and d{depth}_matched/ per-seed reports and
                                      arms.md (seed-level tables)
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import storage
from ._atomic import check_own_directory, write_bytes
from .checkpoints import load_checkpoint
from .convergence import Stationarity, judge, matched_checkpoint, no_progress_loss, stationarity
from .data import DataSpec, load_data
from .directions import random_directions
from .errors import LandscapeError
from .hessian.results import CurvatureResult, compute_curvature
from .models import ModelSpec
from .replicates import ArmComparison, compare_arms
from .surface import compute_surface, parse_axis
from .training import TrainConfig, TrainRun, train
from .trajectory import TrajectoryPCA

__all__ = ["ARMS", "Claim", "StudyConfig", "StudyReport", "claims", "run_study"]

ARMS = ("residual", "plain")


@dataclass(frozen=True)
class StudyConfig:
    """What the depth study trains and measures.

    Attributes
    ----------
    family : str
        Registry name of the architecture with a ``depth`` argument (``"resnet"``); the plain
        arm is the same with ``shortcut=False``.
    depths : tuple of int
        Network depths, shallow first.
    seeds : tuple of int
        Training seeds per depth (``0 .. S-1``).
    epochs : tuple of int
        Training epochs per depth.
    model_kwargs : dict
        Further architecture arguments (``in_channels=1`` and half width for the digits).
    train : TrainConfig
        The one recipe of every run (its ``epochs`` and ``seed`` are set per run).
    data : str
        Built-in data set.
    eval_subset : int
        Training (and test) samples of every measurement (a deterministic subset).
    grid : str
        Grid of the surfaces, both axes.
    top_k, trace_samples : int
        Hessian settings (top eigenvalues; Hutch++ products of the trace).
    tol : float
        Relative tolerance of the eigenvalues.
    fn_directions : int
        Filter-normalized directions of ``dᵀHd``.
    mechanisms : {"quick", "default"}
        Settings of the mechanism analyses.
    sharpening_every : int
        λmax at every ``n``-th checkpoint of every run at the first depth (0: not computed).
    """

    family: str = "resnet"
    depths: tuple[int, ...] = (20, 56)
    seeds: tuple[int, ...] = (3, 3)
    epochs: tuple[int, ...] = (8, 10)
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"in_channels": 1,
                                                                  "width": 0.5})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=10, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4,
        schedule="cosine", seed=0, save_every=1))
    data: str = "digits"
    eval_subset: int = 256
    grid: str = "-1:1:11"
    top_k: int = 2
    trace_samples: int = 12
    tol: float = 1e-3
    fn_directions: int = 5
    mechanisms: str = "quick"
    sharpening_every: int = 4

    def __post_init__(self) -> None:
        n = len(self.depths)
        if n < 2 or len(self.seeds) != n or len(self.epochs) != n:
            raise LandscapeError("A study needs at least two depths and one seed count and "
                                 "one epoch count per depth.")
        if min(self.seeds) < 2:
            raise LandscapeError("A study needs at least two seeds per arm (the unit of "
                                 "replication).")

    @classmethod
    def quick(cls) -> StudyConfig:
        """The small version (ResNet-8 and -14, 2 seeds each, 4 epochs) for a quick look."""
        return cls(depths=(8, 14), seeds=(2, 2), epochs=(4, 4), eval_subset=96,
                   grid="-1:1:7", top_k=1, trace_samples=3, tol=1e-2, fn_directions=3,
                   sharpening_every=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what a resumed study must match)."""
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        d["depths"], d["seeds"], d["epochs"] = (list(self.depths), list(self.seeds),
                                                list(self.epochs))
        return d

    def spec(self, depth: int, arm: str) -> ModelSpec:
        """The architecture of one arm at one depth."""
        return ModelSpec(self.family, {**self.model_kwargs, "depth": depth,
                                       "shortcut": arm == "residual"})


@dataclass(frozen=True)
class Claim:
    """One claim of the residual story and what the study says of it.

    Attributes
    ----------
    claim : str
        The claim, with its source.
    verdict : str
        ``"reproduces"``, ``"does not reproduce"`` or ``"not testable here"``.
    evidence : str
        The numbers (seed means with their intervals) the verdict rests on.
    reason : str
        Why this verdict (or why it cannot be tested).
    """

    claim: str
    verdict: str
    evidence: str
    reason: str


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log is not None:
        log(msg)


def _has(path: Path, group: str) -> bool:
    return path.exists() and group in storage.list_groups(path)


def _write_json(path: Path, doc: Any) -> None:
    write_bytes(path, json.dumps(doc, indent=2, sort_keys=True).encode())


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


# ------------------------------------------------------------------ one network
def _fn_curvature(model: Any, data: Any, k: int) -> dict[str, Any]:
    """``dᵀHd`` along ``k`` seeded filter-normalized directions (seeds 1000..) and the weight
    norm of the tensors they move (:func:`landscape.scale.filter_normalized_curvature`)."""
    from .scale import filter_normalized_curvature

    c = filter_normalized_curvature(model, data, k=k, seed=1000)
    return {"fn_curvature": [float(v) for v in c.values], "weight_norm": float(c.weight_norm)}


def _init_numbers(cfg: StudyConfig, run: TrainRun, train_data: Any) -> dict[str, Any]:
    """Mechanism numbers at initialization with BatchNorm statistics recalibrated."""
    from .hessian.operator import recalibrated_bn
    from .mechanisms import QUICK, mechanism_numbers

    model = load_checkpoint(run.checkpoints[0]).model
    stats = recalibrated_bn(model, train_data)
    model.load_state_dict({**model.state_dict(), **stats})
    nums = mechanism_numbers(model.eval(), train_data,
                             what=("gradflow", "dilution", "shatter"),
                             settings=QUICK if cfg.mechanisms == "quick" else None)
    return {f"init_{k}": v for k, v in nums.items() if not k.startswith("seconds_")}


def _measure(cfg: StudyConfig, model: Any, stem: Path, train_data: Any, test_data: Any,
             recipe: Mapping[str, Any], progress: bool, mechanisms: bool) -> CurvatureResult:
    """Surface, curvature and (at convergence) the mechanism analyses of one point."""
    main = stem.with_suffix(".h5")
    compute_surface(model, random_directions(model, seeds=0), {"train": train_data},
                    x=cfg.grid, y=cfg.grid, out=main, recipe=recipe,
                    provenance={"command": "landscape demo"}, progress=progress)
    if not _has(main, "curvature"):
        compute_curvature(model, train_data, top_k=cfg.top_k, min_eig=True, trace=True,
                          trace_samples=cfg.trace_samples, tol=cfg.tol, recipe=recipe,
                          progress=progress).save(main)
    if mechanisms:
        from .mechanisms import QUICK, RESULTS, applicable_analyses, run_analyses

        todo = [w for w in applicable_analyses(model) if not _has(main, RESULTS[w].GROUP)]
        if todo:
            results, _ = run_analyses(model, train_data, what=todo, test_data=test_data,
                                      settings=QUICK if cfg.mechanisms == "quick" else None)
            for r in results.values():
                r.save(main)
    return CurvatureResult.load(main)


def _extra(path: Path, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    doc = make()
    _write_json(path, doc)
    return doc


def _network(cfg: StudyConfig, out: Path, depth: int, epochs: int, arm: str, seed: int,
             splits: tuple[Any, Any], log: Any, progress: bool) -> dict[str, Any]:
    """Train (or resume) one run and measure it at its final checkpoint."""
    from .recipes import checkpoint_recipe

    train_data, test_data = splits
    run_dir = out / "runs" / f"d{depth}" / arm / f"seed_{seed}"
    spec = cfg.spec(depth, arm)
    t0 = time.perf_counter()
    train(spec, DataSpec(cfg.data), dataclasses.replace(cfg.train, epochs=epochs, seed=seed),
          run_dir, progress=progress)
    run = TrainRun.load(run_dir)
    last = run.history[-1]
    stem = out / f"d{depth}_{arm}_s{seed}"
    ckpt = load_checkpoint(run.final)
    model = ckpt.model
    recipe = checkpoint_recipe(ckpt, DataSpec(cfg.data, subset=cfg.eval_subset))
    cur = _measure(cfg, model, stem, train_data, test_data, recipe, progress, mechanisms=True)
    traj = Path(f"{stem}_trajectory.h5")
    if not _has(traj, "trajectory"):
        TrajectoryPCA(2).fit_run(run_dir).save(traj, overwrite=True)
    if cfg.sharpening_every and depth == cfg.depths[0]:
        from .mechanisms import RESULTS, sharpening_of_run

        if not _has(stem.with_suffix(".h5"), RESULTS["sharpening"].GROUP):
            sharpening_of_run(run_dir, subset=cfg.eval_subset, every=cfg.sharpening_every,
                              n_trace=0).save(stem.with_suffix(".h5"))

    def make() -> dict[str, Any]:
        st = stationarity(model, train_data, lambda_max=float(cur.top_eigenvalues[0]),
                          history=run.history)
        return {"stationarity": st.to_dict(), **_fn_curvature(model, train_data,
                                                               cfg.fn_directions),
                **_init_numbers(cfg, run, train_data),
                "final_train_loss": last["train_loss"], "final_test_acc": last["test_acc"],
                "history": [{k: h.get(k) for k in ("epoch", "train_loss", "test_acc")}
                            for h in run.history]}

    doc = _extra(Path(f"{stem}.json"), make)
    judged = _judged(doc, no_progress_loss(train_data))
    where = "at a minimum" if judged is not None and judged.at_minimum else "not at a minimum"
    _say(log, f"[d{depth} {arm} seed {seed}] train loss {last['train_loss']:.4g}, test acc "
              f"{100 * last['test_acc']:.1f}%, λmax {cur.top_eigenvalues[0]:.4g}, {where} "
              f"({time.perf_counter() - t0:.0f} s)")
    return {"run": str(run_dir), "files": [str(stem.with_suffix(".h5")), str(traj)],
            "extra": doc}


def _matched(cfg: StudyConfig, out: Path, depth: int, seed: int, run_dir: Path, target: float,
             splits: tuple[Any, Any], log: Any, progress: bool) -> dict[str, Any] | None:
    """The residual run measured at its first checkpoint at or below ``target`` train loss."""
    from .recipes import checkpoint_recipe

    run = TrainRun.load(run_dir)
    entry = matched_checkpoint(run.history, target)
    if entry is None:
        return None
    train_data, test_data = splits
    # the epoch in the name: a file is always about one checkpoint
    stem = out / f"d{depth}_residual_matched_s{seed}_e{entry['epoch']}"
    ckpt = load_checkpoint(run_dir / entry["checkpoint"])
    model = ckpt.model
    recipe = checkpoint_recipe(ckpt, DataSpec(cfg.data, subset=cfg.eval_subset))
    cur = _measure(cfg, model, stem, train_data, test_data, recipe, progress,
                   mechanisms=False)

    def make() -> dict[str, Any]:
        st = stationarity(model, train_data, lambda_max=float(cur.top_eigenvalues[0]),
                          history=run.history[: run.history.index(entry) + 1])
        upto = run.history[: run.history.index(entry) + 1]
        return {"stationarity": st.to_dict(), "matched_epoch": entry["epoch"],
                "history": [{k: h.get(k) for k in ("epoch", "train_loss", "test_acc")}
                            for h in upto],
                "matched_train_loss": entry["train_loss"], "target_train_loss": target,
                **_fn_curvature(model, train_data, cfg.fn_directions)}

    doc = _extra(Path(f"{stem}.json"), make)
    _say(log, f"[d{depth} residual seed {seed}] at matched train loss {target:.4g}: epoch "
              f"{entry['epoch']} (loss {entry['train_loss']:.4g}), λmax "
              f"{cur.top_eigenvalues[0]:.4g}")
    return {"files": [str(stem.with_suffix(".h5"))], "extra": doc}


# ------------------------------------------------------------------ comparison
def _judged(doc: Mapping[str, Any], reference: float | None) -> Stationarity | None:
    """The stationarity verdict of a network from its stored measurements (recomputed, so a
    report always applies today's rule to the stored gradient, curvature and history)."""
    st = doc.get("stationarity")
    if not st or st.get("grad_norm") is None or st.get("loss") is None:
        return None
    lam = st.get("lambda_max")
    return judge(st["loss"], st["grad_norm"], math.nan if lam is None else lam,
                 reference_loss=reference, history=doc.get("history"))


def _extra_rows(doc: Mapping[str, Any], reference: float | None) -> dict[str, Any]:
    """The per-run numbers of a network's JSON as rows of the seed-level tables."""
    st = _judged(doc, reference)
    rows = {"fn_curvature": doc.get("fn_curvature"), "weight_norm": doc.get("weight_norm"),
            # at matched loss, the loss of the checkpoint measured
            "final_train_loss": doc.get("final_train_loss", doc.get("matched_train_loss")),
            "final_test_acc": doc.get("final_test_acc")}
    if st is not None:
        rows.update({"gradient_gain": st.gradient_gain, "loss_trend": st.trend,
                     "at_minimum": float(st.at_minimum)})
    rows.update({k: v for k, v in doc.items() if k.startswith("init_")})
    gsc = doc.get("init_gsc_input")
    if isinstance(gsc, int | float) and gsc > 0:
        # it grows exponentially with depth in a plain net: compared on a log scale
        rows["init_log10_gsc_input"] = math.log10(gsc)
    return {k: v for k, v in rows.items() if v is not None}


def _off_minimum(docs: Sequence[Mapping[str, Any]], reference: float | None) -> str | None:
    judged = [_judged(d, reference) for d in docs]
    reasons = [j.reason for j in judged if j is not None and not j.at_minimum]
    if not reasons:
        return None
    return f"{len(reasons)} of {len(docs)} seeds: {reasons[0]}"


def _compare(arms: Mapping[str, Sequence[Mapping[str, Any]]], eps: float,
             reference: float | None) -> tuple[ArmComparison, Any]:
    return compare_arms(
        {a: [n["files"] for n in nets] for a, nets in arms.items()},
        at_minimum={a: _off_minimum([n["extra"] for n in nets], reference)
                    for a, nets in arms.items()},
        extra={a: [_extra_rows(n["extra"], reference) for n in nets]
               for a, nets in arms.items()},
        eps=eps, progress=False)


# ------------------------------------------------------------------ claims
def _num(comp: ArmComparison | None, key: str, arm: str) -> str:
    if comp is None or key not in comp.summaries:
        return "n/a"
    return f"{arm} {comp.summaries[key][arm].text()}"


def _diff(comp: ArmComparison | None, key: str) -> Any:
    return None if comp is None else comp.differences.get(key)


def _claim_difference(comp: ArmComparison | None, key: str, want: str, claim: str,
                      what: str, where: str) -> Claim:
    """A claim that arm A's ``key`` is below (``want="lower"``) or above arm B's."""
    if comp is None or key not in comp.summaries:
        return Claim(claim, "not testable here", "n/a", f"{what} was not measured {where}")
    a, b = comp.arms[:2]
    evidence = f"{_num(comp, key, a)}; {_num(comp, key, b)}"
    verdict = comp.verdict(key)
    d = comp.differences[key]
    if verdict.startswith("not at a minimum"):
        return Claim(claim, "not testable here", evidence, f"{verdict} {where}")
    if verdict == "not testable":
        return Claim(claim, "not testable here", evidence,
                     f"fewer than two seeds with a finite {what} {where}")
    evidence += f"; difference {d.delta:.3g} [{d.lo:.3g}, {d.hi:.3g}]"
    right = d.delta < 0 if want == "lower" else d.delta > 0
    if verdict == "differs" and right:
        return Claim(claim, "reproduces", evidence,
                     f"{a} {'below' if want == 'lower' else 'above'} {b} beyond the "
                     f"seed-to-seed spread {where}")
    if verdict == "differs":
        return Claim(claim, "does not reproduce", evidence,
                     f"the opposite order, beyond the seed spread, {where}")
    return Claim(claim, "does not reproduce", evidence,
                 f"the difference is within the seed-to-seed spread {where} "
                 f"(permutation p {d.p_permutation:.2g}, smallest possible {d.p_min:.2g})")


def claims(depths: Sequence[int], conv: Mapping[int, ArmComparison],
           matched: Mapping[int, ArmComparison]) -> list[Claim]:
    """Each claim of the residual story against the study's seed-level comparisons.

    Parameters
    ----------
    depths : sequence of int
        The study's depths, shallow first.
    conv : mapping of int to ArmComparison
        Per depth, residual vs plain at convergence.
    matched : mapping of int to ArmComparison
        Per depth where it was measured, residual at matched train loss vs plain.

    Returns
    -------
    list of Claim
    """
    shallow, deep = depths[0], depths[-1]
    at = f"at {deep} layers"

    def like(depth: int) -> tuple[ArmComparison | None, str]:
        """The like-for-like comparison at a depth: at matched train loss where the plain
        arm ended far above the residual one, else at convergence."""
        if depth in matched:
            return matched[depth], (f"at {depth} layers, residual at the plain net's final "
                                    "train loss")
        return conv.get(depth), f"at {depth} layers, at convergence"

    shallow_like, shallow_where = like(shallow)
    deep_like, deep_where = like(deep)
    out: list[Claim] = []
    # degradation (He et al. 2016)
    c = conv.get(deep)
    cl = _claim_difference(c, "final_train_loss", "lower",
                           f"He et al. 2016: a deep plain net trains worse than its residual "
                           f"twin (degradation), {deep} layers", "the final train loss", at)
    out.append(cl)
    # Li et al.: curvature / convexity
    out.append(_claim_difference(
        shallow_like, "lambda_max", "lower",
        f"Li et al. 2018: flatter residual landscape (λmax), {shallow} layers, like for like",
        "λmax", shallow_where))
    out.append(_claim_difference(
        shallow_like, "fn_curvature", "lower",
        f"the same in scale-invariant units (filter-normalized dᵀHd), {shallow} layers",
        "dᵀHd", shallow_where))
    out.append(_claim_difference(
        deep_like, "lambda_max", "lower",
        f"Li et al. 2018: flatter residual landscape (λmax), {deep} layers, like for like",
        "λmax", deep_where))
    out.append(_claim_difference(
        deep_like, "fn_curvature", "lower",
        f"the same in filter-normalized dᵀHd, {deep} layers, like for like", "dᵀHd",
        deep_where))
    out.append(_claim_difference(
        deep_like, "ratio_at_minimum", "lower",
        f"Li et al. 2018: plain nets get non-convex as they deepen (|λmin/λmax|), {deep} "
        "layers", "|λmin/λmax|", deep_where))
    # trajectories
    c = conv.get(shallow)
    if c is not None and "pc1_pc2" in c.summaries:
        lows = [c.summaries["pc1_pc2"][a].lo for a in c.arms]
        means = [c.summaries["pc1_pc2"][a].mean for a in c.arms]
        ok = all(math.isfinite(v) and v >= 0.4 for v in lows)
        out.append(Claim(
            "Li et al. 2018: 40-90% of an optimizer path's variation lies in its first two "
            f"PCA directions ({shallow} layers)",
            "reproduces" if ok else "does not reproduce",
            "; ".join(_num(c, "pc1_pc2", a) for a in c.arms),
            ("the lower end of every arm's seed interval is at least 40%"
             + ("; above 90%, the paths are even lower-dimensional than Li et al. saw"
                if min(means) > 0.9 else "")) if ok else
            f"a seed interval reaches below 40% (means {', '.join(f'{m:.2f}' for m in means)})"))
    # Veit et al. lesions
    c = conv.get(shallow)
    lesion = _claim_difference(
        c, "lesion_single_mean", "lower",
        f"Veit et al. 2016: deleting one residual block barely hurts, one plain layer is "
        f"catastrophic ({shallow} layers)", "the single-deletion test error",
        f"at {shallow} layers")
    out.append(lesion)
    # Philipp et al.: gradient scale and k-dilution at initialization
    out.append(_claim_difference(
        conv.get(deep), "init_log10_gsc_input", "lower",
        f"Philipp et al. 2018: gradients explode through a plain net, not a residual one "
        f"(log10 of the gradient scale coefficient at initialization, {deep} layers)",
        "the GSC", at))
    out.append(_claim_difference(
        conv.get(deep), "init_dilution_k_median", "higher",
        f"Philipp et al. 2018: residual blocks are k-diluted (k > 1) at initialization "
        f"({deep} layers)", "k-dilution", at))
    out.append(_claim_difference(
        conv.get(deep), "init_shatter_corr_output", "higher",
        f"Balduzzi et al. 2017: plain nets' input gradients shatter (lag-1 correlation at "
        f"the output, initialization, {deep} layers)", "the gradient correlation", at))
    # sharpening
    c = conv.get(shallow)
    key = "sharpening_peak_over_threshold"
    if c is not None and key in c.summaries:
        ev = "; ".join(_num(c, key, a) for a in c.arms)
        out.append(Claim(
            "Cohen et al. 2021: λmax rises to (2 + 2β)/η and hovers there (edge of "
            "stability)", "not testable here", ev,
            "a full-batch gradient-descent claim; the study trains with SGD at batch 64 (and "
            "a cosine schedule), where λmax is expected to stay below the threshold: the "
            "numbers are the peak λmax over the threshold along training"))
    else:
        out.append(Claim("Cohen et al. 2021: λmax rises to (2 + 2β)/η (edge of stability)",
                         "not testable here", "n/a", "sharpening was not measured"))
    out.append(Claim("He et al. 2016b: pre-activation blocks keep the skip path the identity "
                     "and train deeper nets better", "not testable here", "n/a",
                     "not part of this study: run `landscape demo --pair preresnet56`"))
    out.append(Claim("Transformers' residual streams: a transformer without them trains and "
                     "looks like a plain CNN", "not testable here", "n/a",
                     "not part of this study: run `landscape demo --pair vit` or "
                     "`--pair gpt` (their no-residual arms do not train in the demo's "
                     "budget)"))
    return out


# ------------------------------------------------------------------ report
@dataclass(frozen=True)
class StudyReport:
    """The study's claims and seed-level tables.

    Attributes
    ----------
    config : dict
        :meth:`StudyConfig.to_dict`.
    claims : tuple of Claim
    conv, matched : dict[int, ArmComparison]
        Per depth, at convergence and at matched train loss.
    seconds : float
        Wall-clock seconds of the call that wrote the report (a resumed call: only its own).
    notes : tuple of str
    """

    config: dict[str, Any]
    claims: tuple[Claim, ...]
    conv: dict[int, ArmComparison]
    matched: dict[int, ArmComparison]
    seconds: float = math.nan
    notes: tuple[str, ...] = ()
    histories: dict[str, list[list[float | None]]] = field(default_factory=dict)

    #: Rows of the seed-level tables, in order (those measured).
    ROWS = ("final_train_loss", "final_test_acc", "at_minimum", "gradient_gain", "loss_trend",
            "lambda_max", "weight_norm", "fn_curvature", "lambda_min", "ratio_at_minimum",
            "trace", "eps_sharpness", "eps_rise", "basin_width_x", "basin_width_y",
            "local_minima", "pc1_pc2", "lesion_single_mean", "lesion_single_max",
            "path_length_mean", "gradflow_input_ratio", "dilution_k_median", "gsc_input",
            "shatter_corr_output", "init_gsc_input", "init_log10_gsc_input",
            "init_dilution_k_median",
            "init_shatter_corr_output", "init_gradflow_input_ratio",
            "sharpening_peak_over_threshold")

    def claims_markdown(self) -> str:
        """The claims table."""
        lines = ["| claim | verdict | evidence (seed mean ± sd [95% CI]) | why |",
                 "|---|---|---|---|"]
        def cell(text: str) -> str:
            return text.replace("|", "\\|")  # |λmin/λmax| inside a pipe table

        for c in self.claims:
            lines.append(f"| {cell(c.claim)} | **{c.verdict}** | {cell(c.evidence)} | "
                         f"{cell(c.reason)} |")
        return "\n".join(lines)

    def tables_markdown(self, level: int = 2) -> str:
        """Per depth, the seed-level tables at convergence and at matched train loss."""
        h = "#" * level
        parts = []
        for depth, comp in self.conv.items():
            parts.append(f"{h} {depth} layers, at convergence\n\n"
                         + "".join(f"- {n}\n" for n in comp.notes)
                         + _at_min_line(comp) + "\n" + comp.markdown_table(self.ROWS))
            if depth in self.matched:
                m = self.matched[depth]
                parts.append(f"{h} {depth} layers, at matched train loss\n\n"
                             + "The residual runs measured at their first checkpoint whose "
                               "train loss reaches the plain run's final train loss (same "
                               "seed).\n\n" + _at_min_line(m) + "\n"
                             + m.markdown_table(self.ROWS))
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        """The whole report as Markdown."""
        cfg = self.config
        t = cfg["train"]
        head = (
            "# Residual vs plain: a depth study with seeds\n\n"
            f"{cfg['family']} at depths {', '.join(map(str, cfg['depths']))} with and without "
            f"shortcuts, {', '.join(map(str, cfg['seeds']))} training seeds per arm, "
            f"{', '.join(map(str, cfg['epochs']))} epochs; one recipe for all: SGD lr "
            f"{t['lr']:g}, momentum {t['momentum']:g}, weight decay {t['weight_decay']:g}, "
            f"batch {t['batch_size']}, {t['schedule']}, {t['threads']} training thread(s); "
            f"measurements on {cfg['eval_subset']} training samples. Every number is a mean "
            "over seeds ± the seed-to-seed sd with a Student-t 95% interval; differences "
            "carry Welch's interval and an exact permutation p-value.\n\n")
        fig = ("![train loss along training, every run](training_curves.png)\n\n"
               "The train loss of every run at every epoch, as training records it: in eval "
               "mode, with BatchNorm's running statistics, which lag the weights early on (the "
               "spikes at epochs 0-1 are those statistics, not diverging weights; the matched "
               "checkpoints are chosen on these same numbers for both arms).\n\n"
               if self.histories else "")
        notes = "".join(f"- {n}\n" for n in self.notes)
        return (head + "## Claims\n\n" + self.claims_markdown() + "\n\n" + fig
                + (f"## Notes\n\n{notes}\n" if notes else "")
                + self.tables_markdown(2) + "\n")

    def readme_table(self, link: str | None = None) -> str:
        """The claims table (what the README shows), with a link to the full report."""
        tail = f"\n\nFull report: [{link}]({link})." if link else ""
        return (self.claims_markdown() + "\n\nWritten by `landscape demo`; the seed-level "
                "tables behind each verdict are in the report." + tail)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"config": self.config,
                "claims": [dataclasses.asdict(c) for c in self.claims],
                "conv": {str(d): c.to_dict() for d, c in self.conv.items()},
                "matched": {str(d): c.to_dict() for d, c in self.matched.items()},
                "seconds": _finite(self.seconds), "notes": list(self.notes),
                "histories": self.histories}

    @classmethod
    def load(cls, path: str | os.PathLike) -> StudyReport:
        """Read a ``report.json``: the claims, configuration, notes, training curves and
        seconds (the seed-level tables stay in the JSON and in ``arms.json``)."""
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        try:
            return cls(config=doc["config"], claims=tuple(Claim(**c) for c in doc["claims"]),
                       conv={}, matched={},
                       seconds=math.nan if doc.get("seconds") is None else doc["seconds"],
                       notes=tuple(doc.get("notes", ())), histories=doc.get("histories", {}))
        except (KeyError, TypeError) as exc:
            raise LandscapeError(f"'{path}' is not a study report ({exc})") from None

    def save(self, out_dir: str | os.PathLike) -> StudyReport:
        """Write ``report.md``, ``report.json``, ``report.html`` and the training curves."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        images: dict[str, bytes] = {}
        if self.histories:
            images["training_curves.png"] = _training_figure(self.histories)
            write_bytes(out / "training_curves.png", images["training_curves.png"])
        md = self.to_markdown()
        write_bytes(out / "report.md", md.encode())
        write_bytes(out / "report.json", json.dumps(self.to_dict(), indent=2).encode())
        write_bytes(out / "report.html", _html(md, images).encode())
        return self


def _at_min_line(comp: ArmComparison) -> str:
    off = {a: r for a, r in comp.at_minimum.items() if r}
    if not off:
        return "Every run is at a stationary point.\n"
    return "".join(f"- **{a} is not at a minimum** ({r}): rows that assume one are not "
                   "ranked.\n" for a, r in off.items())


def _training_figure(histories: Mapping[str, Sequence[Sequence[float | None]]]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    depths = sorted({int(k.split("/")[0][1:]) for k in histories})
    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 3.2), sharey=True)
    axes = [axes] if len(depths) == 1 else list(axes)
    colors = {"residual": "C0", "plain": "C3"}
    for ax, depth in zip(axes, depths, strict=True):
        for key, losses in histories.items():
            d, arm, _ = key.split("/")
            if int(d[1:]) != depth:
                continue
            ys = [math.nan if v is None else v for v in losses]
            ax.plot(range(len(ys)), ys, color=colors.get(arm, "k"), alpha=0.8, lw=1.2,
                    label=arm)
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles, strict=True))
        ax.legend(uniq.values(), uniq.keys(), fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{depth} layers")
    axes[0].set_ylabel("train loss, eval mode [nats]")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _md_to_html(md: str) -> str:
    """A small Markdown subset (headings, lists, pipe tables, images, bold) as HTML."""
    out, table = [], []

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    def flush() -> None:
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|(-+\|)+", r.replace(":", ""))]
            cells = [[c.strip().replace("\\|", "|")
                      for c in re.split(r"(?<!\\)\|", r.strip().strip("|"))] for r in rows]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0])
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r)
                                           + "</tr>" for r in cells[1:]) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        m = re.match(r"^(#+) (.*)", line)
        img = re.match(r"^!\[(.*?)\]\((.*?)\)", line)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
        elif img:
            out.append(f'<img alt="{html.escape(img.group(1))}" src="{img.group(2)}">')
        elif line.startswith("- "):
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)


def _html(md: str, images: Mapping[str, bytes]) -> str:
    body = _md_to_html(md)
    for name, png in images.items():
        body = body.replace(f'src="{name}"',
                            f'src="data:image/png;base64,{base64.b64encode(png).decode()}"')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>landscape depth "
            f"study</title><style>{style}</style></head><body>{body}</body></html>")


def _save_per_seed(report: Any, out: Path, *, figures: bool) -> None:
    """The per-seed report (one column per run): with its figures (surfaces, paths, ...) for
    the deepest depth, whose pictures the README shows; as ``report.json`` alone otherwise
    (drawing every depth's figures took a third of a quick study)."""
    if figures:
        report.save(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_bytes(out / "report.json", report.to_json().encode())


# ------------------------------------------------------------------ entry point
def run_study(out_dir: str | os.PathLike = "data/demo", config: StudyConfig | None = None, *,
              progress: bool = True, log: Callable[[str], None] | None = print,
              threads: str | int | None = None) -> StudyReport:
    """Run the depth study and write its report under ``out_dir/report``.

    Parameters
    ----------
    out_dir : path, default "data/demo"
        Output directory (created; an existing one must be empty or hold this study).
        Re-running resumes: finished steps are skipped.
    config : StudyConfig, optional
        Default :class:`StudyConfig` (``StudyConfig.quick()`` for the small version).
    progress : bool, default True
        Progress bars with ETA.
    log : callable or None, default print
        Receives one line per step.
    threads : "auto", int or None, default None
        Thread policy applied before each network's measurements
        (:func:`landscape.threads.configure_threads`: ``"auto"`` re-reads the free CPUs, so a
        machine that gets busy mid-run is noticed); ``None`` leaves torch's setting. Training
        uses the recipe's fixed count whatever this is.

    Returns
    -------
    StudyReport
    """
    from .threads import configure_threads

    cfg = config or StudyConfig()
    out = Path(out_dir)
    cfg_file = out / "study_config.json"
    cfg_json = json.dumps(cfg.to_dict(), sort_keys=True, indent=2)
    check_own_directory(out, "study_config.json", "a study (demo) output")
    if cfg_file.exists() and cfg_file.read_text() != cfg_json:
        raise LandscapeError(f"'{out}' holds a study with another configuration; choose "
                             "another output directory (or delete it)")
    out.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(cfg_json)
    t_start = time.perf_counter()
    subset = DataSpec(cfg.data, subset=cfg.eval_subset)
    splits = (load_data(subset, "train"), load_data(subset, "test"))
    nets: dict[int, dict[str, list[dict[str, Any]]]] = {}
    matched: dict[int, list[dict[str, Any]]] = {}
    for depth, n_seeds, epochs in zip(cfg.depths, cfg.seeds, cfg.epochs, strict=True):
        nets[depth] = {arm: [] for arm in ARMS}
        for arm in ARMS:
            for seed in range(n_seeds):
                if threads is not None:
                    configure_threads(threads)
                nets[depth][arm].append(_network(cfg, out, depth, epochs, arm, seed, splits,
                                                 log, progress))
        res = [n["extra"]["final_train_loss"] for n in nets[depth]["residual"]]
        plain = [n["extra"]["final_train_loss"] for n in nets[depth]["plain"]]
        if min(plain) > 1.5 * max(res):  # far apart: add the like-for-like comparison
            found = []
            for seed in range(n_seeds):
                m = _matched(cfg, out, depth, seed,
                             Path(nets[depth]["residual"][seed]["run"]), plain[seed], splits,
                             log, progress)
                if m is None:
                    found = []
                    break
                found.append(m)
            if found:
                matched[depth] = found
    step = parse_axis(cfg.grid)
    eps = (step.max - step.min) / (step.num - 1)
    reference = no_progress_loss(splits[0])  # ln C: the loss of no progress
    conv_c: dict[int, ArmComparison] = {}
    matched_c: dict[int, ArmComparison] = {}
    report_dir = out / "report"
    for depth in cfg.depths:
        comp, rep = _compare(nets[depth], eps, reference)
        _save_per_seed(rep, report_dir / f"d{depth}", figures=depth == cfg.depths[-1])
        comp.save(report_dir / f"d{depth}")
        conv_c[depth] = comp
        if depth in matched:
            comp, rep = _compare({"residual": matched[depth], "plain": nets[depth]["plain"]},
                                 eps, reference)
            _save_per_seed(rep, report_dir / f"d{depth}_matched", figures=False)
            comp.save(report_dir / f"d{depth}_matched")
            matched_c[depth] = comp
    histories = {f"d{d}/{a}/s{i}": [h["train_loss"] for h in n["extra"]["history"]]
                 for d, per in nets.items() for a, ns in per.items() for i, n in enumerate(ns)}
    notes = [f"{d} layers: the plain runs end far above the residual runs' train loss, so the "
             "arms are also compared at matched train loss" for d in matched]
    report = StudyReport(cfg.to_dict(), tuple(claims(cfg.depths, conv_c, matched_c)), conv_c,
                         matched_c, time.perf_counter() - t_start, tuple(notes), histories)
    report.save(report_dir)
    _say(log, f"wrote {report_dir}/report.md, report.html, report.json "
              f"({time.perf_counter() - t_start:.0f} s in all)")
    return report
