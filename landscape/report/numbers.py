"""The numbers of one network: one column of the report's table.

Units of ε. A surface is in *direction units*: with filter-normalized directions one unit
moves every filter by its own norm. Keskar et al.'s ``ε = 1e-3`` box is therefore far below
one grid step (0.04 on a ``-1:1:51`` grid) and a surface cannot resolve it. The report gives
two numbers instead of one:

* ``eps_sharpness`` -- the surface-restricted estimate at radius ``eps`` in direction units
  (default 0.1, i.e. a 10 % relative perturbation of every filter, which spans +-2 grid steps of
  a ``-1:1:51`` or ``-1:1:41`` grid); the maximum is taken over the grid points in the box only,
  so it is a 2-D lower bound of a full-space value at that radius;
* ``eps_sharpness_ascent`` -- when checkpoints are given, Keskar et al.'s own definition in
  the full parameter space at ``ascent_eps`` (default 1e-3), maximised by projected
  sign-gradient ascent (:func:`landscape.metrics.eps_sharpness_ascent`).

References
----------
.. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of
   neural nets", NeurIPS 2018.
.. [2] N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang, "On large-batch
   training for deep learning: generalization gap and sharp minima", ICLR 2017.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._imports import ImportNameError, import_object
from ..errors import LandscapeError
from ..hessian.ggn import operator_label
from ..hessian.results import CurvatureResult
from ..metrics import (
    basin_width,
    convex_area_fraction,
    eps_sharpness_ascent,
    eps_sharpness_from_surface,
    low_dimensionality,
    origin_index,
    roughness,
    surface_minimum,
)
from ..sharpness import adaptive_sharpness
from ..surface import Surface
from .results import NetworkResults

__all__ = ["ERROR_KEYS", "METRIC_KEYS", "SECTION_DEFINITIONS", "SPREAD_KEYS", "network_numbers",
           "LoadedModel", "load_model_source", "model_numbers", "curvature_numbers",
           "hessian_numbers", "origin_errors",
           "section_numbers", "spread_numbers", "subset_numbers", "surface_numbers",
           "HESSIAN_KEYS", "TOPOLOGY_KEYS", "topology_numbers"]

#: Rows of the surface's shape around its origin, in the order of both :data:`METRIC_KEYS` and
#: :data:`SPREAD_KEYS` (basin widths, topology, roughness).
_SHAPE_KEYS = (
    "basin_width_x",
    "basin_width_y",
    "persistent_basins",
    "deepest_barrier",
    "smad",
    "local_minima",
    "total_variation",
    "nonfinite_fraction",
)

#: Rows of the comparison table, in order.
METRIC_KEYS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "train_loss_min",
    "eps_sharpness",
    "eps_rise",
    "eps_sharpness_ascent",
    "adaptive_sharpness",
    "adaptive_sharpness_avg",
    *_SHAPE_KEYS,
    "lambda_max",
    "lambda_min",
    "ratio_at_minimum",
    "convex_area_fraction",
    "trace",
    "trace_stderr",
    "block_heterogeneity",
    "pc1",
    "pc1_pc2",
    "n_components_for_90",
    "path_capture",
    "random_path_capture",
)

#: Rows that depend on the random directions: with a surface set (``/surfaces``), each is
#: computed per direction pair and reported with its spread.
SPREAD_KEYS = (
    "train_loss_min",
    "eps_sharpness",
    "eps_rise",
    *_SHAPE_KEYS,
)

#: Rows from the sublevel-set persistence of the surface (:mod:`landscape.topology`, needs the
#: ``topology`` extra): the headline in place of the raw ``local_minima`` count, kept beside them.
TOPOLOGY_KEYS = ("persistent_basins", "deepest_barrier", "smad")

#: Rows shown with their standard error where one is known: the evaluation noise of a data-set
#: mean (:meth:`Surface.stderr <landscape.surface.Surface.stderr>`, where the file stores it)
#: and the Monte-Carlo error of the average-case adaptive sharpness over its Gaussian samples.
ERROR_KEYS = ("train_loss", "test_loss", "adaptive_sharpness_avg")

#: Rows of the "Hessian-direction slices" section: the eigenvalues of the two directions and
#: every :data:`SPREAD_KEYS` surface metric of the surface along them (prefixed ``hessian_``).
HESSIAN_KEYS = ("hessian_lambda_x", "hessian_lambda_y",
                *(f"hessian_{k}" for k in SPREAD_KEYS))

_BUILTIN_LOSSES = ("cross_entropy", "mse")


def curvature_numbers(c: CurvatureResult) -> tuple[dict[str, float | None], list[str]]:
    """``lambda_max``, ``lambda_min``, ``ratio_at_minimum``, ``trace``, ``trace_stderr`` of a
    curvature result, and notes on what it cannot give.

    ``lambda_max`` is the largest of ``top_eigenvalues`` when they are the largest algebraic
    ones (``top_which`` ``"LA"``), or the largest magnitude ones with a positive maximum
    (``"LM"``: then no larger eigenvalue can be missing); otherwise it is unknown.
    """
    notes: list[str] = []
    lmax: float | None = None
    if c.top_eigenvalues is not None:
        t = c.top_eigenvalues[np.isfinite(c.top_eigenvalues)]
        which = c.top_which or "LA"
        if t.size and (which == "LA" or (which == "LM" and t.max() > 0)):
            lmax = float(t.max())
        elif t.size:
            notes.append(f"the top eigenvalues were computed with which={which!r}, which does "
                         "not give λmax")
    lmin = c.min_eigenvalue
    ratio = c.ratio
    if ratio is not None and c.ratio_note is not None:  # unresolved: no number, the reason
        notes.append(f"|λmin/λmax| at θ* is not given: {c.ratio_note}")
        ratio = None
    elif ratio is None and lmin is not None and lmax not in (None, 0.0) \
            and c.min_converged is not False:
        ratio = lmin / lmax  # type: ignore[operator]
    return {
        "lambda_max": lmax,
        "lambda_min": lmin,
        "ratio_at_minimum": None if ratio is None else abs(ratio),
        "trace": c.trace,
        "trace_stderr": c.trace_stderr,
    }, notes


def _at_origin(s: Surface, array: str) -> float | None:
    if array not in s.arrays:
        return None
    o = origin_index(s)
    if o is None or not bool(s.done_of(array)[o]):
        return None
    return float(np.asarray(s.arrays[array], dtype=np.float64)[o])


def _error_at_origin(s: Surface, array: str) -> float | None:
    se = s.stderr(array)
    o = origin_index(s)
    if se is None or o is None or not bool(s.done_of(array)[o]):
        return None
    v = float(np.asarray(se, dtype=np.float64)[o])
    return v if math.isfinite(v) else None


def origin_errors(res: NetworkResults, from_model: Mapping[str, Any] | None = None
                  ) -> dict[str, float]:
    """Standard errors of the :data:`ERROR_KEYS` rows at θ*: from the surface where its
    origin gives the row, else from the model's evaluation (``<key>_se`` of
    :func:`model_numbers`); rows without one are left out (files written before standard
    errors were stored)."""
    from_model = from_model or {}
    out: dict[str, float] = {}
    s = res.surface
    for k in ERROR_KEYS:
        if s is not None and _at_origin(s, k) is not None:
            v = _error_at_origin(s, k)
        else:
            v = from_model.get(f"{k}_se")
        if isinstance(v, int | float) and math.isfinite(v):
            out[k] = float(v)
    return out


def needs_origin_metrics(s: Surface | None) -> bool:
    """Whether a surface lacks any of the losses and accuracies at θ* (a model must give them)."""
    return s is None or any(_at_origin(s, k) is None
                            for k in ("train_loss", "train_acc", "test_loss", "test_acc"))


def _resolve_loss(name: Any) -> Any:
    """The loss recorded in a recipe: a built-in name, or ``module:function`` imported."""
    if not isinstance(name, str) or name in _BUILTIN_LOSSES:
        return name if isinstance(name, str) else "cross_entropy"
    try:
        return import_object(name, what="loss")
    except ImportNameError as exc:
        raise LandscapeError(
            f"cannot import the loss {name!r} recorded in the file ({exc.detail or exc}); "
            "make its module importable"
        ) from exc


@dataclass
class LoadedModel:
    """A network at θ* loaded and checked for :func:`model_numbers` (see
    :func:`load_model_source`)."""

    model: Any
    info: dict[str, Any]
    spec: Any
    loss: Any
    train: Any
    test: Any = None


def load_model_source(res: NetworkResults, source: Any, *, trust: bool,
                      need_origin: bool = False,
                      data_cache: dict[str, Any] | None = None) -> LoadedModel:
    """Load and check the network at θ* of ``res`` and the data it is evaluated on.

    Everything that can fail on a bad input (an unreadable checkpoint, one that is not the
    one the surface was computed at, an unknown data spec or loss, data that cannot be
    loaded) fails here, so that :func:`~landscape.report.compare` refuses it before any
    progress output.

    Parameters
    ----------
    res : NetworkResults
        The network's results (its surface recipe names the data, loss and checkpoint hash).
    source : path, Checkpoint or nn.Module
        The network at θ*.
    trust : bool
        Allow checkpoints that are full pickles.
    need_origin : bool, default=False
        Also load the test split (for the metrics at θ*).
    data_cache : dict, optional
        Splits already loaded, by data spec and split: networks of one comparison share
        their data (one recipe), which is then loaded once.

    Returns
    -------
    LoadedModel
    """
    from torch import nn

    from ..checkpoints import Checkpoint, load_checkpoint
    from ..data import DataSpec, load_data
    from ..models import ModelSpec

    recipe = dict(res.surface.recipe) if res.surface is not None and \
        isinstance(res.surface.recipe, Mapping) else {}
    ckpt = None
    info: dict[str, Any] = {}
    if isinstance(source, nn.Module):
        model = source
    else:
        if isinstance(source, Checkpoint):
            ckpt = source
        else:
            spec = recipe.get("model")
            ckpt = load_checkpoint(source, model=ModelSpec.from_dict(spec)
                                   if isinstance(spec, Mapping) else None, trust=trust)
        model = ckpt.model
        sha = recipe.get("checkpoint_sha256")
        if sha and ckpt.sha256 != sha:
            raise LandscapeError(
                f"checkpoint '{ckpt.path}' given for {res.name!r} is not the one '{res.path}' "
                "was computed at (its SHA-256 differs); pass that checkpoint"
            )
        info = {"path": str(ckpt.path), "sha256": ckpt.sha256}
        for key, name in (("config", "training"), ("seed", "seed"), ("epoch", "epoch")):
            if key in ckpt.meta:
                info[name] = ckpt.meta[key]
    data_d = recipe.get("data")
    if not isinstance(data_d, Mapping) and ckpt is not None:
        data_d = ckpt.meta.get("data")
    if not isinstance(data_d, Mapping):
        raise LandscapeError(
            f"cannot tell which data {res.name!r} was evaluated on: '{res.path}' records no "
            "data spec and the checkpoint none either"
        )
    spec = DataSpec.from_dict(data_d)
    loss = _resolve_loss(recipe.get("loss", "cross_entropy"))
    cache = data_cache if data_cache is not None else {}

    def split(name: str) -> Any:
        key = json.dumps([spec.to_dict(), name], sort_keys=True, default=str)
        if key not in cache:
            cache[key] = load_data(spec, name)
        return cache[key]

    return LoadedModel(model=model, info=info, spec=spec, loss=loss, train=split("train"),
                       test=split("test") if need_origin else None)


def model_numbers(res: NetworkResults, source: Any, *, ascent_eps: float, steps: int,
                  batch_size: int, trust: bool, device: Any, need_origin: bool,
                  adaptive_rho: float = 0.01, adaptive_samples: int = 20,
                  tick: Callable[[str], None] | None = None
                  ) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Ascent sharpness (and, when the surface lacks them, metrics at θ*) from a model.

    Parameters
    ----------
    res : NetworkResults
        The network's results (its surface recipe names the data, loss and checkpoint hash).
    source : path, Checkpoint, nn.Module or LoadedModel
        The network at θ* (a :class:`LoadedModel` from :func:`load_model_source` is used as
        it is).
    tick : callable, optional
        Called with a label after each long step (loading, ascent, evaluation): progress.

    Returns
    -------
    numbers : dict
        ``eps_sharpness_ascent``, ``adaptive_sharpness`` (worst case, l-inf ball of radius
        ``adaptive_rho`` relative to every weight, ``steps`` ascent steps) and
        ``adaptive_sharpness_avg`` (average over ``adaptive_samples`` Gaussian perturbations
        of relative size ``adaptive_rho``), see :mod:`landscape.sharpness`; with
        ``need_origin``, ``{train,test}_{loss,acc}`` and ``{train,test}_loss_se``.
    checkpoint : dict
        What the checkpoint says about itself: ``path``, ``sha256``, ``training`` (the
        training config of its run), ``seed``, ``epoch`` (entries it does not hold are left
        out; empty for a module).
    """
    from ..evaluation import Evaluator

    done = tick or (lambda label: None)
    loaded = source if isinstance(source, LoadedModel) else \
        load_model_source(res, source, trust=trust, need_origin=need_origin)
    model, loss, train = loaded.model, loaded.loss, loaded.train
    done(f"{res.name}: model and data loaded")
    out: dict[str, float | None] = {
        "eps_sharpness_ascent": eps_sharpness_ascent(
            model, train, ascent_eps, steps=steps, loss=loss, batch_size=batch_size,
            device=device),
        "adaptive_sharpness": adaptive_sharpness(
            model, train, rho=adaptive_rho, p=math.inf, kind="worst", steps=steps,
            batch_size=batch_size, loss=loss).value,
    }
    avg = adaptive_sharpness(model, train, rho=adaptive_rho, kind="average",
                             samples=adaptive_samples, batch_size=batch_size, loss=loss)
    out["adaptive_sharpness_avg"] = avg.value
    out["adaptive_sharpness_avg_se"] = avg.stderr  # Monte-Carlo error over the samples
    done(f"{res.name}: ascent and adaptive sharpness")
    if need_origin:
        test = loaded.test
        if test is None:  # a LoadedModel loaded without the test split
            from ..data import load_data

            test = load_data(loaded.spec, "test")
        ev = Evaluator(model, {"train": train, "test": test}, loss=loss,
                       batch_size=batch_size, device=device)
        for split, m in ev.evaluate_loaded().items():
            out[f"{split}_loss"] = m.loss
            out[f"{split}_loss_se"] = m.loss_se
            out[f"{split}_acc"] = m.accuracy
        done(f"{res.name}: loss and accuracy at θ*")
    return out, loaded.info


def surface_numbers(s: Surface, name: str, *, eps: float, basin_threshold: float, array: str,
                    from_model: Mapping[str, Any] | None = None
                    ) -> tuple[dict[str, Any], list[str], list[str]]:
    """The rows of :data:`SPREAD_KEYS` from one surface, the keys that are lower bounds, and
    notes (``name`` labels them)."""
    row: dict[str, Any] = dict.fromkeys(SPREAD_KEYS)
    censored: list[str] = []
    notes: list[str] = []
    from_model = from_model or {}
    split = array.rpartition("_")[0] or "train"
    row["train_loss_min"] = surface_minimum(s, array)[0]
    origin_loss = _at_origin(s, array)
    if origin_loss is None and from_model.get(f"{split}_loss") is not None:
        origin_loss = from_model[f"{split}_loss"]
    if not s.complete:
        notes.append(f"{name}: the surface has {s.n_done}/{s.n_points} points done; "
                     "its metrics use the finished points only")
    if origin_loss is None:
        notes.append(f"{name}: the grid has no computed point at the origin, so "
                     "eps_sharpness is unknown (give its checkpoint)")
    else:
        try:
            sharp = eps_sharpness_from_surface(s, eps, array, origin_loss=origin_loss,
                                               details=True)
            row["eps_sharpness"], row["eps_rise"] = sharp["eps_sharpness"], sharp["rise"]
        except LandscapeError as exc:  # points in the box not computed yet
            notes.append(f"{name}: eps_sharpness unknown: {exc}")
        if row["eps_sharpness"] == math.inf:
            notes.append(f"{name}: eps_sharpness is infinite (a point within "
                         f"eps={eps:g} diverged); the JSON holds null")
    bw = basin_width(s, basin_threshold, array)
    for axis in ("x", "y"):
        b = bw[axis]
        if b is None:
            continue
        row[f"basin_width_{axis}"] = b["width"]
        if b["censored"]:
            censored.append(f"basin_width_{axis}")
    rough = roughness(s, array)
    for k in ("local_minima", "total_variation", "nonfinite_fraction"):
        row[k] = rough[k]
    topo, more = topology_numbers(s, name, array)
    row.update(topo)
    notes.extend(more)
    return row, censored, notes


def topology_numbers(s: Surface, name: str, array: str) -> tuple[dict[str, Any], list[str]]:
    """The :data:`TOPOLOGY_KEYS` rows of one surface (:func:`landscape.topology.
    surface_persistence` with its default threshold, 4 standard errors of each basin's depth)
    and notes; ``None`` rows, with the reason in a note, where gudhi is not installed or the
    file stores no standard errors."""
    from ..topology import gudhi_missing_reason, surface_persistence

    out: dict[str, Any] = dict.fromkeys(TOPOLOGY_KEYS)
    missing = gudhi_missing_reason()
    if missing is not None:  # the same for every surface: one note (compare drops repeats)
        return out, [f"{', '.join(TOPOLOGY_KEYS)} are n/a: {missing}"]
    r = surface_persistence(s, array)
    if r.reason is not None:
        return out, [f"{name}: {', '.join(TOPOLOGY_KEYS)} are n/a: {r.reason}"]
    out.update(persistent_basins=r.n_basins, deepest_barrier=r.deepest_barrier, smad=r.smad)
    notes: list[str] = []
    if r.n_missing and any(r.basins[i].death == math.inf for i in r.persistent[1:]):
        notes.append(f"{name}: {r.n_missing} grid point(s) are unfinished or diverged and "
                     "separate persistent basins with no finite barrier between them")
    return out, notes


def hessian_numbers(res: NetworkResults, *, eps: float, basin_threshold: float, array: str
                    ) -> tuple[dict[str, float | None], list[str]]:
    """The :data:`HESSIAN_KEYS` rows of ``res.hessian_surface`` (the surface metrics of
    :func:`surface_numbers`, computed the same way, and the eigenvalues its directions were
    taken for), and notes; empty without such a surface. A basin width cut by the grid edge
    is a lower bound (said in a note)."""
    s = res.hessian_surface
    if s is None:
        return {}, []
    label = f"{res.name} (Hessian directions)"
    if array not in s.arrays:
        return {}, [f"{label}: the surface has no array {array!r}; its section is empty"]
    row, censored, notes = surface_numbers(s, label, eps=eps, basin_threshold=basin_threshold,
                                           array=array)
    out: dict[str, float | None] = {f"hessian_{k}": _finite(row[k]) for k in SPREAD_KEYS}
    if row.get("eps_sharpness") == math.inf:
        out["hessian_eps_sharpness"] = math.inf
    recipe = s.directions.recipe if s.directions is not None else {}
    lams = list(recipe.get("eigenvalues") or [])
    for i, axis in enumerate(("x", "y")):
        out[f"hessian_lambda_{axis}"] = _finite(lams[i]) if i < len(lams) else None
    notes += [f"{label}: {k} is a lower bound (the basin reaches the grid edge)"
              for k in censored]
    if recipe.get("note"):
        notes.append(f"{label}: {recipe['note']}")
    return out, notes


def spread_numbers(res: NetworkResults, *, eps: float, basin_threshold: float, array: str
                   ) -> tuple[dict[str, list[float | None]], list[str]]:
    """Per direction pair of ``res.surface_set``: the value of every :data:`SPREAD_KEYS` row
    (``{key: [member 0, member 1, ...]}``), and notes. Empty without a surface set."""
    ss = res.surface_set
    if ss is None:
        return {}, []
    values: dict[str, list[float | None]] = {k: [] for k in SPREAD_KEYS}
    notes: list[str] = []
    for k in range(ss.n_members):
        part, _, more = surface_numbers(ss.member(k), f"{res.name} (direction pair {k})",
                                        eps=eps, basin_threshold=basin_threshold, array=array)
        for key in SPREAD_KEYS:
            v = part[key]
            values[key].append(None if v is None or not math.isfinite(v) else float(v))
        notes.extend(more)
    grid = ss.recipe.get("grid") or {}
    main = res.surface.recipe.get("grid") if res.surface is not None else None
    if grid and grid != main:
        where = " x ".join(str(g) for g in (grid.get("x"), grid.get("y")) if g)
        notes.append(f"{res.name}: the {ss.n_members} direction pairs of the spread section lie "
                     f"on the grid {where}, not on the surface's own grid; their rows describe "
                     "that window")
    return values, notes


#: What the rows of the mechanism and connectivity sections mean (key prefix -> text).
SECTION_DEFINITIONS = {
    "lesion_base_error": "test error of the intact network",
    "lesion_single_mean": "mean test error after deleting one block (Veit et al. 2016)",
    "lesion_single_max": "worst test error after deleting one block",
    "lesion_single_max_inner": "worst single deletion among non-downsampling blocks",
    "lesion_k_half": "number k of blocks deleted at random for the next row",
    "lesion_error_k_half": "mean test error with k = n/2 random blocks deleted",
    "lesion_deletable_fraction": "share of blocks that can be deleted (shapes allow it)",
    "path_length_peak": "path length (branches taken) carrying the most gradient",
    "path_length_mean": "gradient-weighted mean path length",
    "path_length_90_lo": "shortest length of the range holding 90 % of the gradient",
    "path_length_90_hi": "longest length of that range",
    "path_length_all_mean": "mean length of all 2^n paths (n/2)",
    "path_n_blocks": "number of blocks n",
    "gradflow_input_ratio": "input-gradient norm at the first block / at the last block",
    "gradflow_jac_block_mean": "mean spectral norm of the block Jacobians",
    "gradflow_jac_branch_mean": "mean spectral norm of the branch Jacobians alone",
    "gradflow_jac_product": "product of the block Jacobian norms through depth",
    "dilution_k_median": "median k-dilution of the blocks (Philipp et al. 2018)",
    "dilution_k_min": "smallest k-dilution of a block",
    "gsc_input": "gradient scale coefficient from the output to the input",
    "gsc_max": "largest gradient scale coefficient between depths",
    "shatter_corr_first": "lag-1 autocorrelation of input gradients along a line, first block",
    "shatter_corr_output": "the same at the output (Balduzzi et al. 2017)",
    "shatter_decay_per_block": "decay of that correlation per block",
    "sharpening_lambda_max_first": "λmax at the first checkpoint",
    "sharpening_lambda_max_final": "λmax at the last checkpoint",
    "sharpening_peak_over_threshold": "largest λmax / (2 + 2β)/η along training",
    "sharpening_step_in_topk_mean": "mean share of a training step in the top Hessian "
                                    "eigenspace",
    "sharpening_step_in_pca_mean": "mean share of a training step in the PCA plane",
    "line_train_loss_barrier": "max over t of the train loss on the straight line to a "
                               "second minimum minus the chord (Frankle et al. 2020)",
    "line_test_loss_barrier": "the same on test data",
    "curve_train_loss_barrier": "the same along the trained Bezier curve (Garipov et al. "
                                "2018)",
    "curve_test_loss_barrier": "the same on test data",
    "line_train_error_barrier": "error barrier on the straight line (train)",
    "line_test_error_barrier": "error barrier on the straight line (test)",
    "curve_train_error_barrier": "error barrier along the curve (train)",
    "curve_test_error_barrier": "error barrier along the curve (test)",
    **{f"{path}_{split}_{m}_at_chance": (
        f"1 when the {path}'s highest {split} {m} sits at chance (≥ 0.9 of "
        f"{'ln C' if m == 'loss' else '1 − 1/C'}): its barrier is then chance minus the end "
        "value, uninformative (between independent seeds; compare runs spawned from a shared "
        "checkpoint, Frankle et al. 2020)")
       for path in ("line", "curve") for split in ("train", "test") for m in ("loss", "error")},
    "chance_loss": "the loss of a uniform prediction, ln C",
    "chance_error": "the error of chance, 1 − 1/C",
    **{k: v for split in ("train", "test") for k, v in {
        f"{split}_loss_subset": f"{split} loss at θ* on the data subset the surface was "
                                "evaluated on",
        f"{split}_loss_subset_se": "its standard error as a mean over the subset's samples",
        f"{split}_loss_full": f"{split} loss at θ* on the full data (one extra evaluation)",
        f"{split}_loss_subset_minus_full_in_se": "(subset − full) / standard error: how far "
                                                 "the subset's value is from the full "
                                                 "data's, in units of its noise",
        f"{split}_n_subset": "samples in the subset",
        f"{split}_n_full": "samples in the full data",
    }.items()},
}


def section_numbers(res: NetworkResults) -> dict[str, dict[str, float | None]]:
    """The extra sections of a network: ``{"mechanisms": {...}, "connectivity": {...}}``
    (scalar numbers of every mechanism result and the barriers; empty without them)."""
    from ..connect import connectivity_numbers

    out: dict[str, dict[str, float | None]] = {}
    mech: dict[str, float | None] = {}
    for name, r in sorted(res.mechanisms.items()):
        if name == "gradflow_init":
            continue
        for k, v in r.numbers().items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                mech[k] = float(v) if math.isfinite(v) else None
    if mech:
        out["mechanisms"] = mech
    if res.connectivity is not None:
        out["connectivity"] = {k: (float(v) if math.isfinite(v) else None)
                               for k, v in connectivity_numbers(res.connectivity).items()}
    subset = subset_numbers(res)
    if subset:
        out["subset"] = subset
    return out


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def subset_numbers(res: NetworkResults) -> dict[str, float | None]:
    """The rows of the "data subsets" section from the surface's (or surface set's)
    :attr:`~landscape.surface.Surface.subset_check`; empty for surfaces on the full data."""
    check = res.surface.subset_check if res.surface is not None else None
    if not check and res.surface_set is not None:
        check = res.surface_set.subset_check
    out: dict[str, float | None] = {}
    for split, c in sorted((check or {}).items()):
        sub, se = _finite(c.get("subset_loss")), _finite(c.get("subset_loss_se"))
        full = _finite(c.get("full_loss"))
        out[f"{split}_loss_subset"] = sub
        out[f"{split}_loss_subset_se"] = se
        out[f"{split}_loss_full"] = full
        out[f"{split}_loss_subset_minus_full_in_se"] = (
            (sub - full) / se if sub is not None and full is not None and se else None)
        out[f"{split}_n_subset"] = _finite(c.get("subset_n"))
        out[f"{split}_n_full"] = _finite(c.get("full_n"))
    return out


def network_numbers(res: NetworkResults, *, eps: float, basin_threshold: float,
                    ratio_threshold: float, array: str, from_model: Mapping[str, Any]
                    ) -> tuple[dict[str, Any], list[str], list[str]]:
    """One column of the table, the keys that are lower bounds, and notes."""
    row: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
    censored: list[str] = []
    notes: list[str] = []
    s = res.surface
    if s is not None:
        for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
            row[k] = _at_origin(s, k)
        part, censored, notes = surface_numbers(s, res.name, eps=eps,
                                                basin_threshold=basin_threshold, array=array,
                                                from_model=from_model)
        row.update(part)
    for k, v in from_model.items():
        if k in row and (row[k] is None or k.startswith(("eps_sharpness_ascent",
                                                         "adaptive_sharpness"))):
            row[k] = v
    if res.curvature is not None:
        numbers, more = curvature_numbers(res.curvature)
        row.update(numbers)
        notes.extend(f"{res.name}: {n}" for n in more)
        if res.curvature.operator != "hessian":
            notes.append(f"{res.name}: λmax, λmin and the trace are those of the "
                         f"{operator_label(res.curvature.operator)}, not of the Hessian")
    bs = res.block_spectra
    if bs is not None:
        h = bs.heterogeneity
        row["block_heterogeneity"] = h if math.isfinite(h) else None
        if not math.isfinite(h):
            notes.append(f"{res.name}: no block heterogeneity ({bs.heterogeneity_note})")
    rm = res.ratio_map
    if rm is not None:
        arrays: dict[str, Any] = {"ratio": rm.ratio, "done": rm.done, "x": rm.x}
        if rm.y is not None:
            arrays["y"] = rm.y
        c = convex_area_fraction(arrays, ratio_threshold)
        row["convex_area_fraction"] = c["convex_area_fraction"]
        if row["ratio_at_minimum"] is None:
            row["ratio_at_minimum"] = c["ratio_at_minimum"]
    if res.trajectory is not None:
        row.update(low_dimensionality(res.trajectory))
    return row, censored, notes
