"""Connectivity of minima: loss along the straight line and along a trained curve between them.

Given two minima ``theta_A`` and ``theta_B`` of one architecture (e.g. trained from two seeds),
:func:`compute_connectivity` evaluates the loss and accuracy of every dataset

- along the **line** ``(1 - t) theta_A + t theta_B``, and
- along a **curve** through ``n_bends`` trainable bend points ``theta_1 .. theta_n``
  (Garipov et al. 2018): a Bezier curve of degree ``n + 1`` (default: one bend, the quadratic
  ``(1-t)^2 theta_A + 2t(1-t) theta_1 + t^2 theta_B``) or a polygonal chain through the bends
  at ``t = k / (n + 1)``,

on the uniform grid of ``n_points`` values of ``t`` in ``[0, 1]``. The **barrier** of a path
(Frankle et al. 2020) is ``max_t L(t) - ((1 - t) L(0) + t L(1))`` over the grid: ``0`` when the
path lies below the chord of its end losses (as for a convex loss), large when a ridge
separates the minima.

**Barriers at chance.** Between two independently initialised networks the middle of the line
often predicts no better than a uniform guess: its loss is the chance level ``ln C`` of a
``C``-class cross-entropy (and its error ``1 - 1/C``), so the barrier is ``ln C`` minus the end
loss and says nothing about the minima (Frankle et al. 2020 measure connectivity between runs
*spawned* from a shared early checkpoint instead: ``landscape train --init``). Every barrier
comes with a flag (:meth:`Connectivity.at_chance`, the ``*_at_chance`` numbers of
:func:`connectivity_numbers`) saying whether the path's maximum loss reaches
``CHANCE_FRACTION`` (0.9) of ``ln C`` (its maximum error ``0.9 (1 - 1/C)``), with the reason in
:func:`barrier_notes`; NaN where ``C`` is unknown (regression data, another loss, or a file
written before ``C`` was recorded).

**Curve training.** The bends start on the line (``theta_k = theta_A + k/(n+1) (theta_B -
theta_A)``, plus ``init_noise`` times a seeded Gaussian of the chord's per-coordinate scale)
and minimise ``E_{t ~ U(0,1)} L(curve(t))``: at every step one ``t`` is drawn uniformly and one
minibatch of the training data is taken (a seeded permutation per epoch), and the mean loss of
the minibatch at ``curve(t)`` is one stochastic gradient for the bends only (the ends stay
fixed). Optimiser: SGD with momentum (default) or Adam, learning rate ``lr`` for the first 50%
of the steps, then decreasing linearly to ``lr / 100`` at 90%, then constant (the schedule of
Garipov et al.'s code). Both ``t`` and the minibatch of step ``s`` are functions of ``(seed,
s)`` alone, so a resumed training repeats an uninterrupted one bit for bit (on the CPU).
During training BatchNorm layers use batch statistics (train mode); dropout stays off.

**Parameter selection.** With ``selection`` (:func:`~landscape.parameters.select_parameters`,
the CLI's ``--params`` / ``--exclude``) only the selected tensors travel: the others are held
at A's values on the line, at the far end (``B`` takes A's values there) and in every bend
(reset to A's after every optimiser step, so neither weight decay nor momentum moves them).
Frozen parameters (``requires_grad=False``) are held the same way unless the selection
includes them. The recipe records the selection and the number of held entries.

**BatchNorm along the paths.** With ``bn="recalibrate"`` (the default here) the running
statistics are recomputed at every evaluated ``t`` (:class:`~landscape.evaluation.Evaluator`);
without it the statistics of neither end fit an inner point (the wrong test errors reported by
the users of Garipov et al.'s code). ``bn="eval"`` interpolates the floating buffers linearly
between the ends (``(1-t) A + t B`` on both paths) and is recorded as such.

**Resume and sharding.** Results go into the top-level group ``/connect`` of ``out``, written
atomically. Curve training saves its state (bends, optimiser state, step) into the group at
most every ``flush_seconds`` and when interrupted; the evaluated points are a grid of shape
``(n_paths, n_points)`` run by :class:`~landscape._grid.GridRunner` (flushing, progress,
``max_points``, strided sharding under ``torchrun``; the bends are trained on every rank and
rank 0's are broadcast). Re-running with the same recipe continues where the file stopped; a
file with another recipe is refused unless ``overwrite``.

**Shard files.** With ``shard=(i, n)`` only shard ``i`` of ``n`` of the grid's points (every
``n``-th flat index ``row * n_points + col``, :func:`landscape._grid.shard_points`) is
evaluated, into a file of its own; ``shard`` joins the recipe. The bends are not sharded:
every shard trains them itself, which repeats the single-process training bit for bit (the
drawn ``t`` and minibatch of every step are functions of the seed and the step alone), so the
``n`` files hold the same bends and :func:`landscape.shards.merge_shards` joins them into the
file one process writes -- and refuses files whose bends differ (trained on machines whose
rounding differs) or whose training is unfinished.

Layout::

    /connect              attrs: recipe (JSON), provenance (JSON), paths (JSON list), n_params,
                          tensors (JSON [[name, shape], ...]), trained_steps
    /connect/t            (n_points,) float64
    /connect/<split>_loss (n_paths, n_points) float64, NaN where not done
    /connect/<split>_acc  same (classification only)
    /connect/done         (n_paths, n_points) uint8
    /connect/bends        (n_bends, n_params) [curves only] the bend points, flat, model dtype
    /connect/fit_history  (trained_steps,) float64: the minibatch loss of every training step
    /connect/train_state  [unfinished training only] optimiser state datasets

References
----------
.. [1] T. Garipov, P. Izmailov, D. Podoprikhin, D. Vetrov, A. G. Wilson, "Loss Surfaces, Mode
   Connectivity, and Fast Ensembling of DNNs", NeurIPS 2018.
.. [2] J. Frankle, G. K. Dziugaite, D. M. Roy, M. Carbin, "Linear Mode Connectivity and the
   Lottery Ticket Hypothesis", ICML 2020.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from . import _schema, storage
from ._atomic import holds_output
from ._functional import LossSpec, is_perturbable, loss_name, named_tensors, resolve_loss
from ._grid import (
    GridProgress,
    MetricsRunner,
    check_fits_in_memory,
    check_grid_fits,
    check_shard,
    dist_info,
    metric_array_names,
    pending,
    shard_points,
)
from ._resume import RUN_FIELDS, RunOptions, stored_result
from ._resume import run_options as run_options_of
from ._version import tool_versions
from .data import as_splits
from .errors import (
    Int,
    LandscapeError,
    Options,
    Real,
    check_int,
    check_option,
    note_interruption,
    validate_params,
)
from .evaluation import BN_MODES, Evaluator
from .inputs import CheckpointInputs
from .parameters import ParameterSelection, select_parameters
from .recipes import checkpoint_provenance, checkpoint_recipe

__all__ = ["AT_CHANCE_NOTE", "CHANCE_FRACTION", "CURVES", "OPTIMIZERS", "Connectivity",
           "barrier", "barrier_notes", "bend_model", "chance_level",
           "compute_connectivity", "connectivity_numbers", "curve_coefficients", "excess",
           "lr_at", "plot_connectivity", "plot_curve_on_plane"]

GROUP = "connect"
CURVES = ("bezier", "polychain")
OPTIMIZERS = ("sgd", "adam")
#: A path's maximum loss (error) is "at chance" from this fraction of the chance level up.
CHANCE_FRACTION = 0.9
#: The reason given for a barrier whose path reaches the chance level.
AT_CHANCE_NOTE = "the barrier is ln C minus the end loss: uninformative"


# ---------------------------------------------------------------------------- curves (pure)
def curve_coefficients(kind: str, t: float, n_bends: int = 1) -> np.ndarray:
    """Weights of the control points ``(theta_A, theta_1, ..., theta_n, theta_B)`` at ``t``.

    ``"line"`` has the two ends only; ``"bezier"`` the Bernstein polynomials of degree
    ``n_bends + 1``; ``"polychain"`` the hat functions of the chain whose ``k``-th control
    point sits at ``t = k / (n_bends + 1)``. The weights are non-negative and sum to 1.

    Examples
    --------
    >>> curve_coefficients("bezier", 0.5).tolist()
    [0.25, 0.5, 0.25]
    >>> curve_coefficients("polychain", 0.25).tolist()
    [0.5, 0.5, 0.0]
    """
    t = float(t)
    if kind == "line":
        return np.array([1.0 - t, t])
    m = n_bends + 1  # number of segments / the degree
    if kind == "bezier":
        return np.array([comb(m, k) * t**k * (1.0 - t) ** (m - k) for k in range(m + 1)])
    if kind == "polychain":
        c = np.zeros(m + 1)
        s = min(int(math.floor(t * m)), m - 1)
        u = t * m - s
        c[s], c[s + 1] = 1.0 - u, u
        return c
    raise LandscapeError(f"unknown curve kind {kind!r}; use one of {('line', *CURVES)}")


def excess(losses: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``L(t) - ((1 - t) L(0) + t L(1))`` at every grid point (``t[0] = 0``, ``t[-1] = 1``)."""
    losses = np.asarray(losses, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    return losses - ((1.0 - t) * losses[0] + t * losses[-1])


def barrier(losses: np.ndarray, t: np.ndarray) -> float:
    """Frankle et al.'s barrier ``max_t L(t) - ((1 - t) L(0) + t L(1))`` over the grid.

    NaN if any value is NaN (a point not computed): never a maximum over part of the path.
    """
    e = excess(losses, t)
    if e.size == 0 or np.isnan(e).any():
        return float("nan")
    return float(np.max(e))


def chance_level(num_classes: int | None, metric: str = "loss") -> float:
    """The loss (``ln C``) or error (``1 - 1/C``) of a uniform prediction over ``C`` classes.

    NaN when ``num_classes`` is ``None`` (regression: no chance level) or below 2.

    Examples
    --------
    >>> round(chance_level(10), 6), chance_level(4, "error")
    (2.302585, 0.75)
    """
    check_option("metric", metric, ("loss", "error"))
    if num_classes is None or int(num_classes) < 2:
        return float("nan")
    c = int(num_classes)
    return math.log(c) if metric == "loss" else 1.0 - 1.0 / c


def lr_at(step: int, steps: int, lr: float) -> float:
    """The learning rate of step ``step`` of ``steps`` (Garipov et al.'s schedule).

    ``lr`` up to 50% of the steps, then linear to ``lr / 100`` at 90%, then ``lr / 100``.
    """
    a = step / max(steps, 1)
    if a <= 0.5:
        f = 1.0
    elif a <= 0.9:
        f = 1.0 - (a - 0.5) / 0.4 * 0.99
    else:
        f = 0.01
    return lr * f


# ---------------------------------------------------------------------------- the result
@dataclass(eq=False)
class Connectivity(GridProgress):
    """Loss and accuracy along the line (and a trained curve) between two minima.

    Attributes
    ----------
    t : np.ndarray, shape (n_points,)
        The grid of ``t`` in ``[0, 1]`` (``t[0] = 0``, ``t[-1] = 1``).
    paths : tuple of str
        Rows of the arrays: ``"line"`` and/or ``"curve"``.
    arrays : dict[str, np.ndarray]
        ``<split>_loss`` and ``<split>_acc``, each ``(n_paths, n_points)``; NaN if not done.
    done : np.ndarray of bool, shape (n_paths, n_points)
        Completion mask.
    bends : np.ndarray or None, shape (n_bends, n_params)
        The bend points (flattened in :attr:`tensors` order); ``None`` without a curve.
    tensors : list of (str, tuple)
        Names and shapes of the flattened parameters.
    trained_steps : int
        Training steps done (the curve is trained when it equals ``recipe["steps"]``).
    fit_history : np.ndarray
        Minibatch loss of every training step of the curve.
    recipe, provenance : dict
        What must match to resume (checkpoint SHA-256s of A and B, curve, bends, training
        settings, t grid, BN policy, ...); informational (command line, versions).
    stderrs : dict[str, np.ndarray]
        Standard error of each loss array (``<split>_loss_se``, same shape; see
        :mod:`landscape.evaluation`); empty for files written before they were stored.
    num_classes : int or None
        The number of classes ``C`` of the data (the chance loss is ``ln C``); ``None`` for
        regression data and for files written before it was recorded.
    """

    t: np.ndarray
    paths: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    done: np.ndarray
    bends: np.ndarray | None = None
    tensors: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    trained_steps: int = 0
    fit_history: np.ndarray = field(default_factory=lambda: np.zeros(0))
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    train_state: dict[str, np.ndarray] | None = None
    stderrs: dict[str, np.ndarray] = field(default_factory=dict)
    num_classes: int | None = None

    @property
    def curve_trained(self) -> bool:
        """Whether the curve's training is finished (``False`` without a curve)."""
        return "curve" in self.paths and self.trained_steps >= int(self.recipe.get("steps", 0))

    def lines(self) -> list[str]:
        """What the result holds, as lines for a log.

        The first names the paths, the points done and the BatchNorm policy; then the finite
        loss barriers (:func:`connectivity_numbers`) and the barriers whose path reaches
        chance (:meth:`at_chance`), if any.
        """
        out = [f"{'+'.join(self.paths)}, {self.n_done}/{self.n_points} points, "
               f"bn={self.recipe['bn']}"]
        nums = connectivity_numbers(self)
        shown = [f"{k.replace('_barrier', '')} {v:.4g}" for k, v in nums.items()
                 if "_loss_" in k and math.isfinite(v)]
        if shown:
            out.append("barriers: " + ", ".join(shown))
        flagged = [k.replace("_at_chance", "") for k, v in nums.items()
                   if k.endswith("_loss_at_chance") and v == 1.0]
        if flagged:
            out.append(f"at chance (ln {self.num_classes} = {nums['chance_loss']:.4g}): "
                       f"{', '.join(flagged)} -- {AT_CHANCE_NOTE}; connect runs spawned from a "
                       "shared early checkpoint (train(init=...)) for an informative barrier")
        return out

    def values(self, path: str, name: str) -> np.ndarray:
        """The row of ``path`` (``"line"``, ``"curve"``) of array ``name`` (``"train_loss"``)."""
        if path not in self.paths:
            raise LandscapeError(f"this result has no path {path!r}; it has {list(self.paths)}")
        if name not in self.arrays:
            raise LandscapeError(f"this result has no array {name!r}; it has "
                                 f"{sorted(self.arrays)}")
        return self.arrays[name][self.paths.index(path)]

    def barrier(self, path: str = "line", split: str = "train", metric: str = "loss") -> float:
        """Barrier of ``path`` on ``split``; ``metric="error"`` uses ``1 - accuracy``.

        NaN while a point of the path is not computed.
        """
        check_option("metric", metric, ("loss", "error"))
        if metric == "loss":
            v = self.values(path, f"{split}_loss")
        else:
            v = 1.0 - self.values(path, f"{split}_acc")
        return barrier(v, self.t)

    def at_chance(self, path: str = "line", split: str = "train",
                  metric: str = "loss") -> tuple[float, str]:
        """Whether the maximum of ``path``'s loss (or error) on ``split`` sits at chance.

        At chance: the maximum over the grid is at least :data:`CHANCE_FRACTION` times the
        loss of a uniform prediction, ``ln C`` for the cross-entropy of ``C`` classes (for
        ``metric="error"``: of the chance error ``1 - 1/C``). The barrier is then ``ln C``
        minus the end loss, whatever the minima: uninformative.

        Returns
        -------
        flag : float
            1.0 (at chance), 0.0 (below), or NaN where it cannot be decided.
        reason : str
            Why: :data:`AT_CHANCE_NOTE` when flagged, otherwise the maximum and the chance
            level, or why the flag is NaN (classes unknown, another loss, path incomplete).
        """
        check_option("metric", metric, ("loss", "error"))
        c = self.num_classes
        if c is None:
            return float("nan"), ("the number of classes is unknown (regression data, or a "
                                  "file written before it was recorded): no chance level")
        if c < 2:
            return float("nan"), f"{c} class: no chance level"
        loss = self.recipe.get("loss")
        if metric == "loss" and loss != "cross_entropy":
            return float("nan"), (f"the loss is {loss!r}, not the cross-entropy: ln C is not "
                                  "its chance level")
        if metric == "loss":
            v = self.values(path, f"{split}_loss")
        elif f"{split}_acc" in self.arrays:
            v = 1.0 - self.values(path, f"{split}_acc")
        else:
            return float("nan"), "no accuracy recorded: no error to compare"
        if v.size == 0 or np.isnan(v).any():
            return float("nan"), "the path is not complete"
        level = chance_level(c, metric)
        top = float(np.max(v))
        name = f"ln {c} = {level:.4g}" if metric == "loss" else f"1 - 1/{c} = {level:.4g}"
        if top >= CHANCE_FRACTION * level:
            return 1.0, (f"the maximum {metric} {top:.4g} along the {path} ({split}) is at "
                         f"chance ({name}; flagged from {CHANCE_FRACTION:g} of it): "
                         + (AT_CHANCE_NOTE if metric == "loss" else
                            "the barrier is 1 - 1/C minus the end error: uninformative"))
        return 0.0, (f"the maximum {metric} {top:.4g} along the {path} ({split}) is below "
                     f"chance ({name})")

    def __repr__(self) -> str:
        return (f"Connectivity({'+'.join(self.paths)}, {len(self.t)} points, "
                f"done={self.n_done}/{self.n_points})")

    # ------------------------------------------------------------------ storage
    def to_group(self) -> storage.Group:
        """The ``/connect`` group."""
        g = storage.Group(attrs={
            "recipe": storage.dumps(self.recipe),
            "provenance": storage.dumps(self.provenance),
            "paths": json.dumps(list(self.paths)),
            "tensors": json.dumps([[k, list(s)] for k, s in self.tensors]),
            "n_params": int(sum(math.prod(s) for _, s in self.tensors)),
            "trained_steps": int(self.trained_steps),
        })
        if self.num_classes is not None:
            g.attrs["num_classes"] = int(self.num_classes)
        done = np.asarray(self.done, dtype=bool).copy()
        g.datasets["t"] = np.asarray(self.t, dtype=np.float64)
        for k, a in self.arrays.items():
            g.datasets[k] = np.where(done, np.asarray(a, dtype=np.float64), np.nan)
        g.datasets.update(_schema.stderr_datasets(self.stderrs, done))
        g.datasets["done"] = done.astype(np.uint8)
        if self.bends is not None:
            g.datasets["bends"] = np.asarray(self.bends)
        g.datasets["fit_history"] = np.asarray(self.fit_history, dtype=np.float64)
        if self.train_state:
            g.groups["train_state"] = storage.Group(
                datasets={k: np.asarray(v) for k, v in self.train_state.items()})
        return g

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the ``/connect`` group of ``path`` atomically (other groups are kept)."""
        storage.update_file(path, {GROUP: self.to_group()}, overwrite=overwrite)

    @classmethod
    def from_group(cls, g: storage.Group, where: str = "the /connect group") -> Connectivity:
        """Read a ``/connect`` group (see :meth:`to_group`)."""
        d = g.datasets
        t = _schema.coordinates(d, "t", where)
        paths = tuple(_schema.json_attr(g.attrs, "paths", where, list))
        tensors = [(str(k), tuple(int(n) for n in s))
                   for k, s in _schema.json_attr(g.attrs, "tensors", where, list)]
        shape = (len(paths), len(t))
        names = sorted(k for k in d if k.endswith(("_loss", "_acc")))
        arrays = {k: _schema.grid_array(d, k, shape, where) for k in names}
        bends = np.asarray(d["bends"]) if "bends" in d else None
        state = None
        if "train_state" in g.groups:
            state = {k: np.asarray(v) for k, v in g.groups["train_state"].datasets.items()}
        return cls(
            t=t, paths=paths, arrays=arrays,
            done=_schema.grid_array(d, "done", shape, where, mask=True),
            bends=bends, tensors=tensors, trained_steps=int(g.attrs.get("trained_steps", 0)),
            fit_history=np.asarray(d.get("fit_history", np.zeros(0)), dtype=np.float64),
            recipe=_schema.json_attr(g.attrs, "recipe", where, dict),
            provenance=_schema.json_attr(g.attrs, "provenance", where, dict, default={}),
            train_state=state, stderrs=_schema.stderr_arrays(d, names, shape, where),
            num_classes=_num_classes_attr(g.attrs.get("num_classes"), where),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Connectivity:
        """Read the ``/connect`` group of a landscape file."""
        g = storage.require_group(path, GROUP, "holds no connectivity result (no /connect group); "
                                  "compute one with compute_connectivity(out=PATH)")
        return cls.from_group(g, f"'{path}' has a damaged /connect group")

    def plot(self, **kwargs: Any) -> Any:
        """:func:`plot_connectivity` of this result."""
        return plot_connectivity(self, **kwargs)

    def bend_tensors(self, k: int = 0) -> dict[str, Tensor]:
        """The parameters of bend ``k`` by name (views of :attr:`bends`)."""
        if self.bends is None:
            raise LandscapeError("this result has no curve, hence no bend points")
        check_int("k", k, 0, len(self.bends) - 1)
        return _unflat(torch.as_tensor(np.asarray(self.bends[k])), self.tensors)

    def curve_in_plane(self) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates ``(x, y)`` of the curve at :attr:`t` in the plane through A, B and the
        bend with A at (0, 0), B at (1, 0), the bend at (0, 1) (the non-orthogonal plane of
        :func:`~landscape.directions.plane_directions`, ``landscape surface A --plane B
        BEND``): ``theta(t) = A + x (B - A) + y (bend - A)`` exactly, for one bend."""
        if self.bends is None or len(self.bends) != 1:
            raise LandscapeError("the plane through A, B and the bend needs a curve with "
                                 "exactly one bend")
        c = np.stack([curve_coefficients(self.recipe["curve"], t, 1) for t in self.t])
        return c[:, 2], c[:, 1]


def bend_model(result: Connectivity, model: nn.Module, k: int = 0) -> nn.Module:
    """A copy of ``model`` (end A) holding bend ``k``'s parameters (buffers: A's).

    Save it with :func:`~landscape.checkpoints.save_checkpoint` to draw the plane through A,
    B and the bend with ``landscape surface A.pt --plane B.pt BEND.pt --bn recalibrate``.
    """
    out = copy.deepcopy(model)
    tensors = result.bend_tensors(k)
    names = [k2 for k2, _ in model.named_parameters()]
    if names != list(tensors):
        raise LandscapeError("the model's parameters are not those the curve was trained for")
    with torch.no_grad():
        for name, p in out.named_parameters():
            p.copy_(tensors[name])
    return out


def connectivity_numbers(result: Connectivity) -> dict[str, float]:
    """The barriers of a result, for reports: ``{"<path>_<split>_<loss|error>_barrier": value}``.

    Every path and split of the result is listed (errors only for classification data); NaN
    where the path is not complete. Beside each barrier, ``..._<loss|error>_at_chance`` is
    1.0 when the path's maximum sits at chance (see :meth:`Connectivity.at_chance`: the
    barrier is then ``ln C`` minus the end loss, uninformative), 0.0 when it does not, NaN
    where that cannot be decided (the reasons: :func:`barrier_notes`); ``chance_loss`` and
    ``chance_error`` are ``ln C`` and ``1 - 1/C`` (NaN when ``C`` is unknown). All values are
    floats.
    """
    out: dict[str, float] = {}
    for key, path, split, metric in _barriers(result):
        out[f"{key}_barrier"] = result.barrier(path, split, metric)
        out[f"{key}_at_chance"] = result.at_chance(path, split, metric)[0]
    out["chance_loss"] = chance_level(result.num_classes, "loss")
    out["chance_error"] = chance_level(result.num_classes, "error")
    return out


def barrier_notes(result: Connectivity) -> dict[str, str]:
    """Why each ``*_at_chance`` number of :func:`connectivity_numbers` is what it is.

    Keys as there (``"line_train_loss_at_chance"``); the values say
    :data:`AT_CHANCE_NOTE` for a barrier at chance, the maximum and the chance level for one
    below, or why the flag is NaN.
    """
    return {f"{key}_at_chance": result.at_chance(path, split, metric)[1]
            for key, path, split, metric in _barriers(result)}


def _barriers(result: Connectivity) -> Iterator[tuple[str, str, str, str]]:
    """``("<path>_<split>_<metric>", path, split, metric)`` for every barrier of a result
    (errors only for classification data)."""
    splits = sorted({k[: -len("_loss")] for k in result.arrays if k.endswith("_loss")})
    for path in result.paths:
        for split in splits:
            for metric in ("loss", "error"):
                if metric == "error" and f"{split}_acc" not in result.arrays:
                    continue
                yield f"{path}_{split}_{metric}", path, split, metric


# ---------------------------------------------------------------------------- helpers
def _num_classes_attr(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        c = int(value)
    except (TypeError, ValueError):
        c = -1
    if c < 1:
        raise LandscapeError(f"{where}: its num_classes attribute is {value!r}, not a "
                             "positive count")
    return c


def _data_classes(*sets: Any) -> int | None:
    """The number of classes of the first data set that knows it (``None``: regression, or
    streamed data that do not say)."""
    for d in sets:
        if d is None:
            continue
        try:
            c = getattr(d, "num_classes", None)
        except Exception:  # noqa: BLE001 - a data set that cannot say does not know
            c = None
        if c is not None:
            return int(c)
    return None


def _flat(tensors: Mapping[str, Tensor]) -> Tensor:
    return torch.cat([v.detach().reshape(-1) for v in tensors.values()])


def _unflat(flat: Tensor, layout: Sequence[tuple[str, tuple[int, ...]]]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    i = 0
    for k, s in layout:
        n = math.prod(s)
        out[k] = flat[i:i + n].view(s)
        i += n
    return out


def _combine(coeffs: np.ndarray, points: Sequence[Tensor]) -> Tensor:
    """``sum_k coeffs[k] points[k]`` (zero weights skipped, so an end is reproduced exactly)."""
    acc: Tensor | None = None
    for c, p in zip(coeffs, points, strict=True):
        if c == 0.0:
            continue
        term = p * float(c) if c != 1.0 else p
        acc = term if acc is None else acc + term
    return acc if acc is not None else torch.zeros_like(points[0])


def _t_grid(n_points: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n_points)


def _batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Minibatch of step ``step``: a slice of epoch ``step // per_epoch``'s seeded permutation."""
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, 1, epoch]).permutation(n)
    return perm[k * batch_size:(k + 1) * batch_size]


def _t_of_step(seed: int, step: int) -> float:
    return float(np.random.default_rng([seed, 2, step]).uniform())


# ---------------------------------------------------------------------------- training
class _CurveTrainer:
    """Stochastic training of the bends on ``E_t L(curve(t))`` (see the module docstring)."""

    def __init__(self, res: Connectivity, model: nn.Module, ends: tuple[Tensor, Tensor],
                 train: Any, *, loss: LossSpec, out: Path | None, flush_seconds: float,
                 first_write: bool, device: torch.device, progress: bool,
                 held: Tensor | None = None) -> None:
        r = res.recipe
        self.res, self.out, self.flush_seconds = res, out, flush_seconds
        self.first_write = first_write
        self.kind, self.n_bends = r["curve"], int(r["n_bends"])
        self.steps, self.lr, self.seed = int(r["steps"]), float(r["lr"]), int(r["seed"])
        self.batch_size, self.momentum = int(r["train_batch_size"]), float(r["momentum"] or 0.0)
        self.weight_decay = float(r["weight_decay"])
        self.progress = progress
        self.loss_fn = resolve_loss(loss)
        self.model = copy.deepcopy(model).to(device).eval()
        for m in self.model.modules():  # batch statistics during training; dropout stays off
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.a, self.b = (e.to(device) for e in ends)
        self.held = held.to(device) if held is not None else None
        self.x = train.x.to(device, dtype=self.a.dtype if train.x.is_floating_point() else None)
        self.y = train.y.to(device)
        bends = torch.as_tensor(np.asarray(res.bends)).to(device=device, dtype=self.a.dtype)
        self.bends = bends.clone().requires_grad_(True)
        if r["optimizer"] == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(
                [self.bends], lr=self.lr, momentum=self.momentum,
                weight_decay=self.weight_decay)
        else:
            self.opt = torch.optim.Adam([self.bends], lr=self.lr, weight_decay=self.weight_decay)
        if res.train_state:
            st = {k: torch.as_tensor(v).to(device) for k, v in res.train_state.items()}
            if "step" in st:
                st["step"] = st["step"].cpu().to(torch.float32).reshape(())
            sd = self.opt.state_dict()
            sd["state"] = {0: st}
            self.opt.load_state_dict(sd)
        self.history = list(np.asarray(res.fit_history, dtype=np.float64))

    def step(self, s: int) -> float:
        """One training step (``s`` counts from 0)."""
        for g in self.opt.param_groups:
            g["lr"] = lr_at(s, self.steps, self.lr)
        t = _t_of_step(self.seed, s)
        idx = torch.as_tensor(_batch_indices(len(self.x), self.batch_size, self.seed, s))
        c = curve_coefficients(self.kind, t, self.n_bends)
        w = _combine(c, [self.a, *self.bends.unbind(0), self.b])
        params = _unflat(w, self.res.tensors)
        out = functional_call(self.model, params, (self.x[idx],), strict=False)
        t_ = self.loss_fn.terms(out, (self.x[idx], self.y[idx]))
        loss = t_.total / t_.weight
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.held is not None:  # held entries stay A's (weight decay, momentum, Adam)
            with torch.no_grad():
                self.bends[:, self.held] = self.a[self.held]
        return float(loss.detach())

    def sync(self) -> None:
        """Copy the training state into the result."""
        self.res.bends = self.bends.detach().cpu().numpy().copy()
        self.res.fit_history = np.asarray(self.history, dtype=np.float64)
        self.res.trained_steps = len(self.history)
        st = self.opt.state_dict()["state"].get(0, {})
        self.res.train_state = None if self.res.curve_trained else {
            k: (v.detach().cpu().numpy().copy() if isinstance(v, Tensor) else np.asarray(v))
            for k, v in st.items() if v is not None}

    def save(self) -> None:
        self.sync()
        rank, _ = dist_info()
        if self.out is not None and rank == 0:
            self.res.save(self.out, overwrite=self.first_write)
            self.first_write = False

    def run(self) -> None:
        from tqdm.auto import tqdm

        start = len(self.history)
        rank, world = dist_info()
        bar = tqdm(total=self.steps, initial=start, desc="curve training", unit="step",
                   disable=not self.progress or rank != 0, dynamic_ncols=True)
        last = time.monotonic()
        try:
            for s in range(start, self.steps):
                self.history.append(self.step(s))
                bar.update(1)
                if s % 20 == 0:
                    bar.set_postfix_str(f"loss {self.history[-1]:.4g}", refresh=False)
                if time.monotonic() - last >= self.flush_seconds and s + 1 < self.steps:
                    self.save()
                    last = time.monotonic()
        except KeyboardInterrupt as exc:
            if len(self.history) > start:
                self.save()
            saved = self.out is not None and len(self.history) > 0
            note_interruption(exc, f"the curve's training up to step {len(self.history)} is "
                              f"saved in '{self.out}'" if saved else None, resumable=saved)
            raise
        finally:
            bar.close()
        if world > 1:
            import torch.distributed as tdist

            with torch.no_grad():
                tdist.broadcast(self.bends.data, src=0)
        self.save()


# ---------------------------------------------------------------------------- evaluation
class _ConnectRun(MetricsRunner):
    """Loss and accuracy at every ``(path, t)`` of the grid, BN recalibrated per point."""

    def __init__(self, res: Connectivity, ev: Evaluator, control: dict[str, list[Tensor]],
                 buffers: tuple[dict[str, Tensor], dict[str, Tensor]] | None, *,
                 out: Path | None, first_write: bool, **loop: Any) -> None:
        super().__init__(res, overwrite=first_write, out=out, desc="connectivity",
                         sharding="strided", points_per_round=4, **loop)
        self.res, self.ev, self.control, self.buffers = res, ev, control, buffers
        self.n_bends = int(res.recipe.get("n_bends") or 0)

    def params(self, index: int) -> dict[str, Tensor]:
        """The tensors at point ``index`` of the grid."""
        row, col = divmod(index, len(self.res.t))
        path = self.res.paths[row]
        t = float(self.res.t[col])
        kind = "line" if path == "line" else self.res.recipe["curve"]
        c = curve_coefficients(kind, t, self.n_bends)
        tensors = _unflat(_combine(c, self.control[path]), self.res.tensors)
        if self.buffers is not None:  # bn="eval": float buffers linear between the ends
            ba, bb = self.buffers
            lin = curve_coefficients("line", t)
            for k, va in ba.items():
                tensors[k] = _combine(lin, [va, bb[k]]) if is_perturbable(va) else va
        return tensors

    def evaluate(self, index: int) -> Mapping[str, Any]:
        return self.ev(self.params(index))


# ---------------------------------------------------------------------------- entry point
def _check_same_architecture(ta: Mapping[str, Tensor], tb: Mapping[str, Tensor]) -> None:
    for k, v in ta.items():
        if k not in tb or tuple(tb[k].shape) != tuple(v.shape):
            raise LandscapeError(
                f"the two models are different architectures (tensor '{k}' "
                f"{'is missing in B' if k not in tb else 'has another shape in B'}); "
                "connect two minima of one network"
            )
    extra = [k for k in tb if k not in ta]
    if extra:
        raise LandscapeError(f"the two models are different architectures (B has a tensor "
                             f"'{extra[0]}' that A lacks); connect two minima of one network")


def _initial_bends(a: Tensor, b: Tensor, n_bends: int, init_noise: float,
                   seed: int) -> np.ndarray:
    rows = []
    scale = float(torch.linalg.vector_norm((b - a).double())) / math.sqrt(max(a.numel(), 1))
    for k in range(1, n_bends + 1):
        p = a + (k / (n_bends + 1)) * (b - a)
        if init_noise > 0:
            g = np.random.default_rng([seed, 3, k]).standard_normal(a.numel())
            p = p + torch.as_tensor(init_noise * scale * g, dtype=a.dtype)
        rows.append(p.detach().cpu().numpy())
    return np.stack(rows)


@holds_output("out")
def compute_connectivity(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Mapping[str, Any],
    *,
    curve: str | None = "bezier",
    n_bends: int = 1,
    n_points: int = 31,
    steps: int = 1000,
    lr: float = 0.05,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    train_batch_size: int = 128,
    init_noise: float = 0.0,
    seed: int = 0,
    train_data: Any | None = None,
    loss: LossSpec = "cross_entropy",
    bn: str = "recalibrate",
    bn_batches: int = 10,
    bn_batch_size: int = 128,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    recipe: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    selection: ParameterSelection | None = None,
    shard: tuple[int, int] | None = None,
    run: RunOptions | None = None,
    **run_options: Any,
) -> Connectivity:
    """Loss and accuracy along the line and a trained curve between two minima.

    Parameters
    ----------
    model_a, model_b : nn.Module
        The two ends (same architecture; not modified). Their parameters are connected; their
        buffers serve ``bn="eval"`` only.
    data : dict[str, TensorData]
        Datasets to evaluate, e.g. ``{"train": train, "test": test}``.
    curve : {"bezier", "polychain"} or None, default "bezier"
        The trained curve; ``None`` evaluates the line only.
    n_bends : int, default 1
        Trainable bend points (1: the quadratic Bezier curve / a chain of two segments).
    n_points : int, default 31
        Uniform grid of ``t`` in ``[0, 1]`` (at least 3).
    steps : int, default 1000
        Training steps of the bends (one uniformly drawn ``t`` and one minibatch each).
    lr : float, default 0.05
        Initial learning rate (schedule: see :func:`lr_at`).
    optimizer : {"sgd", "adam"}, default "sgd"
        SGD with ``momentum``, or Adam.
    momentum, weight_decay : float
        Of the optimiser (``momentum`` for SGD only).
    train_batch_size : int, default 128
        Minibatch size of the training.
    init_noise : float, default 0
        Bends start on the line plus this times a seeded Gaussian scaled by
        ``||theta_B - theta_A|| / sqrt(n_params)`` (breaks the symmetry of e.g. antipodal
        ends of a rotation-symmetric valley).
    seed : int, default 0
        Seed of the drawn ``t``, minibatches and initial noise.
    train_data : TensorData, optional
        Data the bends are trained on (default ``data["train"]``). Streamed data (a
        DataLoader) are read into memory once (:func:`~landscape.data.as_tensor_data`): they
        must be finite and small, else a :class:`~landscape.errors.LandscapeError` says so.
    loss : str or callable, default "cross_entropy"
        Per-sample loss (see :func:`landscape._functional.resolve_loss`).
    bn : {"recalibrate", "eval"}, default "recalibrate"
        BatchNorm statistics recomputed at every evaluated ``t``, or interpolated linearly
        between the ends' (see the module docstring).
    bn_batches, bn_batch_size : int
        Batches used by the recalibration, and their size.
    batch_size : int, default 1024
        Evaluation batch size.
    device : torch.device or str, optional
        Where to train and evaluate (default: model A's device).
    recipe, provenance : dict, optional
        Extra recipe entries (the checkpoints' SHA-256s, data spec) and informational entries.
    selection : ParameterSelection, optional
        The tensors that travel (``select_parameters(model_a, "weights", ...)``); the others
        stay at A's values everywhere. Default: every trainable parameter.
    shard : (int, int), optional
        ``(i, n)``: evaluate only shard ``i`` of ``n`` of the ``(path, t)`` points into
        ``out``, a file of its own that resumes like any other (every shard trains the bends
        itself; see the module docstring); ``shard`` joins the recipe.
        :func:`landscape.shards.merge_shards` joins the ``n`` files.
    run : RunOptions, optional
        How the run writes (:class:`~landscape._resume.RunOptions`): ``out``, the landscape
        file whose ``/connect`` group is written as the run goes and resumed from;
        ``overwrite``, replace a ``/connect`` group computed with another recipe;
        ``progress``; ``flush_seconds``, write at most this often (and always at the end and
        when interrupted); ``max_points``, stop after this many newly evaluated points (the
        file stays resumable).
    **run_options
        The fields of ``run`` given one by one instead (``out=..., overwrite=...``).

    Returns
    -------
    Connectivity

    Examples
    --------
    >>> res = compute_connectivity(a.model, b.model, {"train": tr, "test": te},
    ...                            out="ab.h5")                        # doctest: +SKIP
    >>> connectivity_numbers(res)["line_test_loss_barrier"]              # doctest: +SKIP
    """
    opts = run_options_of(run, **run_options)
    settings = validate_params(
        {"curve": curve, "n_bends": n_bends, "n_points": n_points, "steps": steps, "lr": lr,
         "optimizer": optimizer, "momentum": momentum, "weight_decay": weight_decay,
         "train_batch_size": train_batch_size, "init_noise": init_noise, "seed": seed,
         "bn": bn, "bn_batches": bn_batches, "bn_batch_size": bn_batch_size,
         "batch_size": batch_size}, _CONSTRAINTS)
    shard = None if shard is None else check_shard(shard)
    ends = _Ends.of(model_a, model_b, data, train_data, settings["curve"], selection)
    paths = ("line", "curve") if curve is not None else ("line",)
    _check_sizes(len(paths), n_points, len(ends.data), curve, n_bends, steps, optimizer,
                 ends.fa)
    full = _connect_recipe(settings, ends, loss, recipe)
    if shard is not None:  # only when set: the merged file's recipe is the plain one
        full["shard"] = list(shard)
    shape = (len(paths), n_points)
    res = Connectivity(
        t=_t_grid(n_points), paths=paths,
        arrays={k: np.full(shape, np.nan) for k in metric_array_names(ends.data)},
        done=np.zeros(shape, dtype=bool), tensors=ends.layout, recipe=full,
        provenance={**tool_versions(), **dict(provenance or {})},
    )
    old = stored_result(opts.out, overwrite=opts.overwrite, recipe=full, group=GROUP,
                        load=Connectivity.load, subject="holds a connectivity result")
    if old is not None:
        _check_stored(old, res, opts.path)
        old.provenance = old.provenance or res.provenance
        res = old
    if res.num_classes is None:  # C of the chance level ln C (None: regression / unknown)
        res.num_classes = _data_classes(ends.train, *ends.data.values())
    _connect_run(res, ends, settings, loss, device, opts, shard=shard)
    return res


def connect_checkpoints(
    path_a: str | os.PathLike,
    path_b: str | os.PathLike,
    *,
    inputs: CheckpointInputs | None = None,
    splits: Sequence[str] = ("train", "test"),
    params: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    include_frozen: bool = False,
    save_bend: str | os.PathLike | None = None,
    command: str | None = None,
    run: RunOptions | None = None,
    **options: Any,
) -> Connectivity:
    """:func:`compute_connectivity` between two checkpoint files, recorded as they are.

    Loads both checkpoints and the data (``inputs``), refuses what cannot be a pair of minima
    (the same file twice, two architectures), records both checkpoints' SHA-256s in the
    recipe, computes, and writes the trained bend as a checkpoint when asked.

    Parameters
    ----------
    path_a, path_b : path
        The two ends' checkpoint files.
    inputs : CheckpointInputs, optional
        How to load them and which data (default: each file's own spec and training data).
    splits : sequence of str, default ("train", "test")
        The splits evaluated along the paths (the curve trains on ``"train"`` either way).
    params, exclude, include_frozen
        The tensors that travel (:func:`~landscape.parameters.select_parameters`).
    save_bend : path, optional
        Write the trained bend (``bend_model``) here as a checkpoint; never replaces a file.
    command : str, optional
        The command line recorded in the provenance.
    run : RunOptions, optional
        How the run writes; ``run.out`` must not be either checkpoint.
    **options
        :func:`compute_connectivity`'s settings (``curve``, ``n_bends``, ``n_points``,
        ``steps``, ``lr``, ...) and run options given one by one.

    Returns
    -------
    Connectivity
    """
    from .checkpoints import save_checkpoint
    from .data import load_data

    inputs = CheckpointInputs() if inputs is None else inputs
    run_keys = {k: options.pop(k) for k in list(options) if k in RUN_FIELDS}
    opts = run_options_of(run, **run_keys)
    _check_not_an_input(opts.out, [path_a, path_b])
    curve = options.get("curve", "bezier")
    if save_bend is not None:
        if curve is None:
            raise LandscapeError("save_bend needs a curve; drop curve=None")
        if os.path.exists(save_bend):
            raise LandscapeError(f"save_bend '{save_bend}' exists; choose another name (it is "
                                 "never replaced)")
    ckpt_a, ckpt_b = inputs.load(path_a), inputs.load(path_b)
    if ckpt_a.sha256 == ckpt_b.sha256:
        raise LandscapeError(f"'{path_a}' and '{path_b}' are the same checkpoint; pass two "
                             "different minima (e.g. two seeds)")
    if ckpt_a.spec is not None and ckpt_b.spec is not None and ckpt_a.spec != ckpt_b.spec:
        raise LandscapeError(f"'{path_a}' is a {ckpt_a.spec.to_dict()} and '{path_b}' a "
                             f"{ckpt_b.spec.to_dict()}: connect two minima of one architecture")
    spec = inputs.data_spec(ckpt_a)
    datasets = inputs.datasets(ckpt_a, list(splits))
    train = datasets.get("train")
    if curve is not None and train is None:
        train = load_data(spec, "train")
    selection = select_parameters(ckpt_a.model, "weights", params=params, exclude=exclude,
                                  include_frozen=include_frozen)
    recipe = {**checkpoint_recipe(ckpt_a, spec), "checkpoint_b_sha256": ckpt_b.sha256}
    provenance = {**checkpoint_provenance(ckpt_a, path_a, command or ""),
                  "checkpoint_b": str(path_b)}
    res = compute_connectivity(ckpt_a.model, ckpt_b.model, datasets, train_data=train,
                               recipe=recipe, provenance=provenance, selection=selection,
                               run=opts, **options)
    if save_bend is not None and res.curve_trained and _is_rank_zero():
        save_checkpoint(save_bend, bend_model(res, ckpt_a.model), ckpt_a.spec,
                        data=spec.to_dict(), bend_of=[ckpt_a.sha256, ckpt_b.sha256])
    return res


def _is_rank_zero() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _check_not_an_input(out: str | os.PathLike | None, inputs: Sequence[Any]) -> None:
    """Refuse an output file that is one of the input checkpoints (writing would destroy it)."""
    if out is None:
        return
    for path in inputs:
        try:
            same = os.path.samefile(out, path)
        except OSError:
            same = False
        if same:
            raise LandscapeError(f"out '{out}' is the checkpoint '{path}'; writing there "
                                 "would destroy it -- choose another out")


#: The declared constraints of :func:`compute_connectivity`'s settings.
_CONSTRAINTS = {
    "curve": Options(CURVES, optional=True), "n_bends": Int(1), "n_points": Int(3),
    "steps": Int(1), "lr": Real(0.0, closed="neither"), "optimizer": Options(OPTIMIZERS),
    "momentum": Real(0.0, 1.0, closed="left"), "weight_decay": Real(0.0),
    "train_batch_size": Int(1), "init_noise": Real(0.0), "seed": Int(0),
    "bn": Options(BN_MODES), "bn_batches": Int(1), "bn_batch_size": Int(1),
    "batch_size": Int(1),
}


@dataclass(frozen=True)
class _Ends:
    """The two ends as flat vectors, with the data and the tensors that travel."""

    model_a: nn.Module
    model_b: nn.Module
    data: dict[str, Any]
    train: Any
    ta: dict[str, Tensor]
    tb: dict[str, Tensor]
    fa: Tensor
    fb: Tensor
    held: Tensor
    layout: list[tuple[str, tuple[int, ...]]]
    selection: ParameterSelection

    @classmethod
    def of(cls, model_a: nn.Module, model_b: nn.Module, data: Any, train_data: Any,
           curve: str | None, selection: ParameterSelection | None) -> _Ends:
        for name, m in (("model_a", model_a), ("model_b", model_b)):
            if not isinstance(m, nn.Module):
                raise LandscapeError(f"The '{name}' parameter must be a torch.nn.Module. "
                                     f"Got {type(m).__name__}.")
        data = as_splits(data) if data is not None else {}
        if not data:
            raise LandscapeError("no dataset given to evaluate the paths on")
        train = train_data if train_data is not None else data.get("train")
        if curve is not None and train is None:
            raise LandscapeError("training the curve needs training data: pass a 'train' "
                                 "dataset or train_data (or curve=None for the line only)")
        if curve is not None:
            # the curve draws minibatches by index: streamed data (a custom DataLoader) are
            # read into memory once if finite and small, else refused in one line
            from .data import as_tensor_data

            train = as_tensor_data(train)
        ta, tb = named_tensors(model_a, "weights"), named_tensors(model_b, "weights")
        _check_same_architecture(ta, tb)
        if not ta:
            raise LandscapeError("the models have no parameters to connect")
        if selection is None:
            selection = select_parameters(model_a, "weights")
        elif not isinstance(selection, ParameterSelection) or selection.what != "weights" or \
                set(selection.names) != set(ta):
            raise LandscapeError("The 'selection' parameter must be a ParameterSelection of "
                                 "model_a's weights (select_parameters(model_a, 'weights', "
                                 "...)).")
        tb = {k: v if selection.moves(k) else ta[k] for k, v in tb.items()}
        fa, fb = _flat(ta), _flat(tb)
        held = torch.cat([torch.full((v.numel(),), not selection.moves(k))
                          for k, v in ta.items()])
        if torch.equal(fa, fb):
            raise LandscapeError("the two models have the same parameters: there is no path "
                                 "between them; pass two different minima"
                                 + (" (or select tensors in which they differ)"
                                    if held.any() else ""))
        return cls(model_a, model_b, data, train, ta, tb, fa, fb, held,
                   [(k, tuple(v.shape)) for k, v in ta.items()], selection)


def _connect_recipe(settings: Mapping[str, Any], ends: _Ends, loss: LossSpec,
                    extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Everything that identifies the computation (a resumed file must have the same)."""
    st = settings
    curve, bn = st["curve"], st["bn"]
    full: dict[str, Any] = dict(extra or {})
    full.update({
        "paths": ["line", "curve"] if curve is not None else ["line"],
        "curve": curve,
        "n_bends": st["n_bends"] if curve is not None else None,
        "t": {"min": 0.0, "max": 1.0, "num": st["n_points"]},
        "steps": st["steps"] if curve is not None else 0,
        "lr": st["lr"], "optimizer": st["optimizer"],
        "momentum": st["momentum"] if st["optimizer"] == "sgd" else None,
        "weight_decay": st["weight_decay"], "train_batch_size": st["train_batch_size"],
        "lr_schedule": "garipov: lr to 50%, linear to lr/100 at 90%, then lr/100",
        "t_sampling": "uniform, one t per step",
        "init": {"kind": "linear", "noise": st["init_noise"]},
        "seed": st["seed"],
        "n_train": len(ends.train) if ends.train is not None else None,
        "datasets": {k: len(v) for k, v in ends.data.items()},
        "loss": loss_name(loss),
        "bn": bn,
        "bn_batches": st["bn_batches"] if bn == "recalibrate" else None,
        "bn_batch_size": st["bn_batch_size"] if bn == "recalibrate" else None,
        "bn_eval_buffers": "linear between the ends" if bn == "eval" else None,
        "batch_size": st["batch_size"],
        "dtype": str(ends.fa.dtype).replace("torch.", ""),
        "n_params": int(ends.fa.numel()),
        **ends.selection.recipe,
    })
    if ends.held.any():  # absent for the default of an ordinary network: old files resume
        full["n_held"] = int(ends.held.sum())
    if curve is None:
        for k in ("lr", "optimizer", "momentum", "weight_decay", "train_batch_size",
                  "lr_schedule", "t_sampling", "init", "n_train"):
            full[k] = None
    return json.loads(storage.dumps(full))


def _check_stored(old: Connectivity, new: Connectivity, path: Path | None) -> None:
    if set(old.arrays) != set(new.arrays) or old.shape != new.shape \
            or old.tensors != new.tensors or not np.array_equal(old.t, new.t):
        raise LandscapeError(f"'{path}' has a damaged /connect group (its arrays, t grid or "
                             "tensors differ from its recipe's); pass overwrite=True to "
                             "recompute it")


def _connect_run(res: Connectivity, ends: _Ends, st: Mapping[str, Any], loss: LossSpec,
                 device: torch.device | str | None, opts: RunOptions,
                 shard: tuple[int, int] | None = None) -> None:
    """Train the bends (unless stored), then evaluate the pending points of every path."""
    curve, bn, held = st["curve"], st["bn"], ends.held
    # the first write of this run replaces the file when overwrite is set (then never again)
    write_over = opts.overwrite
    dev = torch.device(device) if device is not None else ends.fa.device
    if curve is not None and res.bends is None:
        res.bends = _initial_bends(ends.fa, ends.fb, st["n_bends"], st["init_noise"],
                                   st["seed"])
        if held.any():  # no initial noise on held entries either
            res.bends[:, held.numpy()] = ends.fa[held].cpu().numpy()
    if curve is not None and not res.curve_trained:
        _CurveTrainer(res, ends.model_a, (ends.fa, ends.fb), ends.train, loss=loss,
                      out=opts.path, flush_seconds=opts.flush_seconds, first_write=write_over,
                      device=dev, progress=opts.progress,
                      held=held if held.any() else None).run()
        write_over = False
    mine = None if shard is None else shard_points(range(res.done.size), *shard)
    if not pending(res.done, opts.max_points, mine):
        return
    ev = Evaluator(ends.model_a, ends.data, loss=loss,
                   what="weights" if bn == "recalibrate" else "states",
                   batch_size=st["batch_size"], bn=bn, bn_data=ends.train,
                   bn_batches=st["bn_batches"], bn_batch_size=st["bn_batch_size"], device=dev,
                   dtype=ends.fa.dtype)
    control = {"line": [ends.fa.to(ev.device), ends.fb.to(ev.device)]}
    if curve is not None:
        bends = torch.as_tensor(np.asarray(res.bends)).to(ev.device, dtype=ends.fa.dtype)
        control["curve"] = [control["line"][0], *bends.unbind(0), control["line"][1]]
    buffers = None
    if bn == "eval":
        sa = named_tensors(ends.model_a, "states")
        sb = named_tensors(ends.model_b, "states")
        buffers = ({k: v.to(ev.device) for k, v in sa.items() if k not in ends.ta},
                   {k: v.to(ev.device) for k, v in sb.items() if k not in ends.tb})
    _ConnectRun(res, ev, control, buffers, out=opts.path, first_write=write_over,
                progress=opts.progress, flush_seconds=opts.flush_seconds,
                max_points=opts.max_points, shard=shard).run()


def _check_sizes(n_paths: int, n_points: int, n_splits: int, curve: str | None, n_bends: int,
                 steps: int, optimizer: str, flat: Tensor) -> None:
    """Refuse counts (``n_points``, ``n_bends``, ``steps``) whose arrays would not fit in this
    machine's memory, before anything is allocated."""
    check_grid_fits(n_paths * n_points, 3 * n_splits,  # loss, accuracy, standard error
                    what=f"the t grid of the {n_paths} path(s)",
                    fix="use fewer n_points")
    if curve is None:
        return
    # the bends: initial rows and their stack, the trained tensor, its gradient, the
    # optimiser's state (momentum; Adam's two moments) and the copy kept in the result
    copies = 5 + (2 if optimizer == "adam" else 1)
    check_fits_in_memory(copies * n_bends * flat.numel() * flat.element_size(),
                         f"{n_bends:,} bend points of {flat.numel():,} parameters",
                         "use fewer n_bends")
    # the training history: one Python float per step (and its float64 copy when saved)
    check_fits_in_memory(steps * (24 + 8 + 8), f"the losses of {steps:,} training steps",
                         "use fewer steps")


# ---------------------------------------------------------------------------- plotting
def plot_connectivity(result: Connectivity, *, metric: str = "loss", ax: Any = None) -> Any:
    """Loss (or error) along ``t`` for every path and split; the barriers in the legend.

    Returns the Axes (of a new pyplot-free Figure when ``ax`` is None).
    """
    check_option("metric", metric, ("loss", "error"))
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(6.0, 4.0), layout="constrained").add_subplot()
    splits = sorted({k[: -len("_loss")] for k in result.arrays if k.endswith("_loss")})
    styles = {"train": "-", "test": "--"}
    for path in result.paths:
        color = "tab:blue" if path == "line" else "tab:red"
        for split in splits:
            if metric == "loss":
                v = result.values(path, f"{split}_loss")
            elif f"{split}_acc" in result.arrays:
                v = 1.0 - result.values(path, f"{split}_acc")
            else:
                continue
            b = result.barrier(path, split, metric)
            label = f"{path}, {split} (barrier {b:.3g})" if math.isfinite(b) else \
                f"{path}, {split}"
            ax.plot(result.t, v, styles.get(split, ":"), color=color, marker=".", label=label)
    ax.set_xlabel("t (0: A, 1: B)")
    ax.set_ylabel("loss" if metric == "loss" else "error (1 - accuracy)")
    curve = result.recipe.get("curve")
    ax.set_title(f"line{' and ' + curve + ' curve' if curve else ''} between two minima "
                 f"(BN: {result.recipe.get('bn')})", fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def plot_curve_on_plane(result: Connectivity, surface: Any, *, array: str = "train_loss",
                        ax: Any = None, **contour: Any) -> Any:
    """The surface of the plane through A, B and the bend, with the line and curve drawn.

    ``surface`` is a 2D :class:`~landscape.surface.Surface` computed with
    ``landscape surface A.pt --plane B.pt BEND.pt`` (non-orthogonal; BEND from
    :func:`bend_model`); its contour is drawn by :func:`landscape.plot.plot_contour`
    (``contour`` passes options on).
    """
    from .plot import plot_contour

    rec = getattr(surface, "directions", None)
    kind = (rec.recipe if rec is not None else {}).get("kind")
    if kind != "plane" or (rec.recipe.get("orthogonal")):
        raise LandscapeError("the surface is not the non-orthogonal plane through A, B and the "
                             "bend; compute it along plane_directions(A, B, BEND, "
                             "orthogonal=False)")
    ax = plot_contour(surface, array=array, ax=ax, **contour)
    x, y = result.curve_in_plane()
    ax.plot([0.0, 1.0], [0.0, 0.0], "-", color="tab:blue", lw=2, label="line")
    ax.plot(x, y, "-", color="tab:red", lw=2, label=f"{result.recipe['curve']} curve")
    ax.plot([0.0, 1.0, 0.0], [0.0, 0.0, 1.0], "o", color="k", ms=5)
    for (px, py), name in (((0.0, 0.0), "A"), ((1.0, 0.0), "B"), ((0.0, 1.0), "bend")):
        ax.annotate(name, (px, py), textcoords="offset points", xytext=(4, 4))
    ax.legend(fontsize="small")
    return ax
