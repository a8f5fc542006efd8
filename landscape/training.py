"""A small, deterministic SGD/AdamW trainer that leaves a directory of checkpoints behind.

The landscape tools need trained models and, for trajectory plots, the whole path of the
optimizer from its initialisation. :func:`train` writes, into one output directory::

    epoch_0000.pt   the initialisation (before any step)
    epoch_0001.pt   after each ``save_every`` epochs, and always after the last one
    ...
    run.json        the manifest: model, data, config, and every checkpoint with its metrics
    resume.pt       while the run is unfinished: what resuming after the last checkpoint needs

Checkpoints are landscape checkpoints (:func:`~landscape.checkpoints.save_checkpoint`) whose
``meta`` holds ``epoch``, ``step``, ``lr``, ``train_loss``, ``train_acc``, ``test_loss``,
``test_acc``, ``seed``, ``config`` and ``data``. ``run.json`` is rewritten atomically after
every checkpoint, so a killed run still has a valid manifest of what it wrote.

The loss is the cross-entropy for class targets and the mean squared error for float targets
(image-to-image tasks such as ``"digits-denoise"``), whose accuracies are recorded as ``None``.

Training is deterministic given ``TrainConfig.seed`` (on the CPU): the seed initialises the
model inside :func:`torch.random.fork_rng` (the caller's global RNG is left untouched) and a
private :class:`torch.Generator` shuffles the data.

Resuming. With every checkpoint, :func:`train` also writes (atomically) ``resume.pt``, one file
overwritten each time so that the epoch checkpoints stay plain weights for the other commands:
the optimizer's state (momentum buffers), the epoch and step counters, every RNG state training
draws from (the global CPU RNG, the shuffling generator, and the device's RNG on CUDA; nothing
is drawn from numpy's or Python's), the history so far, and the name and SHA-256 of the
checkpoint holding the weights. It loads with ``torch.load(weights_only=True)``. Calling
:func:`train` again on a directory whose run is unfinished (``run.json`` says ``"running"``:
killed, interrupted, or still going) with the same model, data and config continues after that
checkpoint, and the final weights and the history are bit-identical to an uninterrupted run's
(the learning rate is a function of the epoch, see :func:`lr_at_epoch`). Work since the last
checkpoint is redone, so ``save_every`` also bounds what a kill costs. If ``resume.pt`` is
missing or does not match, training restarts from epoch 0 with a warning (the replayed
checkpoints come out identical). The three files are written in the order checkpoint,
``resume.pt``, ``run.json``; a kill between two leaves a directory that resumes, and temporary
files of a write cut short are removed when training starts again. Other settings are refused
(naming the keys that differ); a complete run is returned as it is, without writing anything,
and ``resume.pt`` is deleted when a run completes. ``run.json`` records each resumption under
``"resumed"``. Running two trainings in one directory at once is not detected.

Spawned runs (Frankle et al. 2020). With ``init=PATH`` the model starts from the weights (and
buffers) of a checkpoint of the same architecture, e.g. epoch ``k`` of another run, instead of
its seeded initialisation; ``TrainConfig.seed`` then sets the data order (and any other
randomness), so two runs spawned from one checkpoint with two seeds differ only in the SGD noise
after it. The epoch numbering restarts at 0 (``epoch_0000.pt`` holds the checkpoint's weights),
as do the learning-rate schedule and the momentum buffers. ``run.json`` records the checkpoint's
path and SHA-256 under ``"init"``; the SHA-256 is part of what must match for a resume.

AdamW. ``TrainConfig(optimizer="adamw")`` trains with :class:`torch.optim.AdamW` (``betas``,
``eps``, decoupled ``weight_decay``) under the same schedules; its moments are part of the
resume state like SGD's momentum, and every epoch checkpoint of an AdamW run also stores the
second moments by parameter name (``"optimizer_state"``, see :func:`landscape.optim.adam_state`)
for the preconditioned sharpness of :func:`landscape.mechanisms.sharpening_of_run`.
``warmup_steps`` ramps the learning rate linearly over the first steps (either optimizer;
:func:`lr_at_step`).

Stochastic depth. ``TrainConfig(stochastic_depth=P)`` drops the residual units of the model at
random while it trains (Huang et al. 2016; :mod:`landscape.stochastic_depth`), the masks drawn
from the run's shuffling generator after each batch's indices, so that a resumed run stays
bit-identical; ``run.json`` records the units and their probabilities under
``"stochastic_depth"``. The checkpoints are ordinary models (inverted scaling).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._atomic import atomic_write as _atomic_write
from ._atomic import holds_output
from .checkpoints import file_sha256, load_checkpoint, save_checkpoint
from .data import DataSpec, TensorData, as_tensor_data, check_compatible, load_data, load_splits
from .errors import LandscapeError, check_float, check_int, check_option, note_interruption
from .losses import BatchLoss
from .models import ModelSpec, adapt_to_data, parse_model_kwargs, skip_switch
from .optim import OPTIMIZERS, adam_state, build_optimizer
from .threads import torch_threads

__all__ = [
    "RUN_FORMAT",
    "RUN_FORMAT_VERSION",
    "SCHEDULES",
    "TrainConfig",
    "TrainRun",
    "TrainedRuns",
    "registry_spec",
    "train",
    "train_model",
    "train_seeds",
    "lr_at_epoch",
    "lr_at_step",
    "list_checkpoints",
]

RUN_FORMAT = "landscape.run"
RUN_FORMAT_VERSION = 1
SCHEDULES = ("cosine", "step", "constant")
#: Metric keys recorded for every checkpoint (in its meta and in run.json).
METRIC_KEYS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc")

RESUME_FORMAT = "landscape.train_resume"
RESUME_FORMAT_VERSION = 1

_MANIFEST = "run.json"
_RESUME = "resume.pt"
#: SGD multiplies float32 weights by ``lr`` and ``weight_decay``: larger values cannot be
#: converted to float32 and fail inside the optimizer step, after the run directory exists.
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)
_CKPT_RE = re.compile(r"^epoch_(\d+)\.pt$")
#: Temporary files of :func:`~landscape._atomic.atomic_write` for the files of a run.
_TMP_RE = re.compile(r"^\.(?:epoch_\d+\.pt|run\.json|resume\.pt)\..+\.tmp$")
_EVAL_BATCH_SIZE = 1024
#: Training minimises the batch/loss protocol's cross-entropy (mean over counted examples)
#: for class targets, and the mean squared error for float targets (image-to-image tasks such
#: as ``"digits-denoise"``; no accuracy).
_LOSS = BatchLoss("cross_entropy")
_MSE = BatchLoss("mse")


def _loss_and_targets(y: Tensor) -> tuple[BatchLoss, Tensor]:
    """The training loss for targets ``y`` and the targets as it reads them."""
    return (_MSE, y) if y.is_floating_point() else (_LOSS, y.long())


def _ckpt_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}.pt"


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LandscapeError(f"The '{name}' parameter must be a bool. Got {value!r} instead.")
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train` (validated on construction).

    Parameters
    ----------
    epochs : int, default 30
        Passes over the training split.
    batch_size : int, default 64
        Mini-batch size (the last, smaller batch of an epoch is kept).
    lr : float, default 0.1
        Initial learning rate of SGD, in ``(0, 3.4e38]`` (what float32 holds; a large but
        representable rate makes the loss diverge, which :func:`train` reports).
    momentum : float, default 0.9
        SGD momentum in ``[0, 1)``.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default 5e-4
        L2 penalty (SGD's ``weight_decay``), at most 3.4e38 (float32).
    schedule : {"cosine", "step", "constant"}, default "cosine"
        Learning rate per epoch, see :func:`lr_at_epoch`.
    seed : int, default 0
        Seeds the initialisation and the shuffling.
    save_every : int, default 1
        Save a checkpoint every this many epochs (the last epoch is always saved).
    threads : int, default 1
        CPU threads torch uses while training (restored afterwards). Fixed, and part of the
        recipe, because SGD's result depends on it: the backward pass splits its reductions
        by thread, and one epoch of ResNet-20 on the digits ended at train loss 1.98 with one
        thread and 1.92 with two. With it fixed, a run is bit-identical on one machine
        whatever ``OMP_NUM_THREADS`` or the load (see :mod:`landscape.threads`). One thread is
        also the fastest for the small networks of the demo on 2 cores (ResNet-20: 3.1 s vs
        3.8 s an epoch) and cannot collapse on a busy machine; raise it for large models on
        many cores. Runs written before this field existed read back as 1.
    optimizer : {"sgd", "adamw"}, default "sgd"
        SGD with momentum, or AdamW (decoupled weight decay; ``momentum`` is then not used,
        and ``nesterov`` is refused).
    betas : tuple of float, default (0.9, 0.999)
        AdamW's ``beta1`` and ``beta2``, each in ``[0, 1)``.
    eps : float, default 1e-8
        AdamW's ``eps`` (> 0).
    warmup_steps : int, default 0
        Linear warmup: step ``s`` (0-based, counted over the run) uses the epoch's rate times
        ``min(1, (s + 1) / warmup_steps)`` (:func:`lr_at_step`).
    stochastic_depth : float, default 0.0
        Drop probability ``P`` of the last residual unit, in ``[0, 1)``; unit ``l`` of ``L``
        is dropped with ``l / L * P`` (:mod:`landscape.stochastic_depth`). Models without
        residual units are refused.

    :meth:`to_dict` leaves ``optimizer``, ``betas``, ``eps``, ``warmup_steps`` and
    ``stochastic_depth`` out while they are the defaults, so that the runs (and resume states)
    written before these fields existed still match and resume.

    Raises
    ------
    LandscapeError
        If a value is out of range.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    save_every: int = 1
    threads: int = 1
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    stochastic_depth: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> TrainConfig:
        """Check every field (normalising numbers to ``int``/``float``) and return ``self``."""
        checked = {
            "epochs": check_int("epochs", self.epochs, 1),
            "batch_size": check_int("batch_size", self.batch_size, 1),
            "lr": check_float("lr", self.lr, 0.0, _FLOAT32_MAX, closed="right"),
            "momentum": check_float("momentum", self.momentum, 0.0, 1.0, closed="left"),
            "nesterov": _check_bool("nesterov", self.nesterov),
            "weight_decay": check_float("weight_decay", self.weight_decay, 0.0, _FLOAT32_MAX),
            "schedule": check_option("schedule", self.schedule, SCHEDULES),
            "seed": check_int("seed", self.seed, 0, 2**63 - 1),
            "save_every": check_int("save_every", self.save_every, 1),
            "threads": check_int("threads", self.threads, 1),
            "optimizer": check_option("optimizer", self.optimizer, OPTIMIZERS),
            "betas": _check_betas(self.betas),
            "eps": check_float("eps", self.eps, 0.0, _FLOAT32_MAX, closed="right"),
            "warmup_steps": check_int("warmup_steps", self.warmup_steps, 0),
            "stochastic_depth": check_float("stochastic_depth", self.stochastic_depth, 0.0, 1.0,
                                            closed="left"),
        }
        if checked["nesterov"] and checked["optimizer"] != "sgd":
            raise LandscapeError(
                f"Nesterov momentum is an option of SGD; optimizer {checked['optimizer']!r} "
                "does not take nesterov=True")
        if checked["nesterov"] and checked["momentum"] == 0.0:
            raise LandscapeError(
                "Nesterov momentum needs momentum > 0; pass momentum=0.9 or drop nesterov=True"
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict (the fields added after the first runs are
        left out while they are the defaults)."""
        d = asdict(self)
        d["betas"] = list(d["betas"])
        for late in _LATE_FIELDS:
            if getattr(self, late) == type(self).__dataclass_fields__[late].default:
                del d[late]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        known = {f.name for f in fields(cls)}
        if not isinstance(d, Mapping) or set(d) - known:
            extra = sorted(set(d) - known) if isinstance(d, Mapping) else d
            raise LandscapeError(
                f"A train config must be a mapping with keys among {sorted(known)}. "
                f"Got unknown {extra!r} instead."
            )
        return cls(**d)


#: TrainConfig fields that :meth:`TrainConfig.to_dict` leaves out at their defaults.
_LATE_FIELDS = ("optimizer", "betas", "eps", "warmup_steps", "stochastic_depth")


def _check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, list | tuple) or len(betas) != 2:
        raise LandscapeError(f"The 'betas' parameter must be a pair of floats in [0, 1). Got "
                             f"{betas!r} instead.")
    return (check_float("betas", betas[0], 0.0, 1.0, closed="left"),
            check_float("betas", betas[1], 0.0, 1.0, closed="left"))


def lr_at_step(config: TrainConfig, epoch: int, step: int) -> float:
    """Learning rate of the optimizer step ``step`` (0-based, counted over the whole run),
    taken in training epoch ``epoch`` (1-based): :func:`lr_at_epoch` times the linear warmup
    factor ``min(1, (step + 1) / warmup_steps)`` (1 without warmup)."""
    lr = lr_at_epoch(config, epoch)
    if config.warmup_steps and step < config.warmup_steps:
        lr *= (step + 1) / config.warmup_steps
    return lr


def lr_at_epoch(config: TrainConfig, epoch: int) -> float:
    """Learning rate used during training epoch ``epoch`` (1-based).

    ``"constant"``: ``lr``. ``"cosine"``: ``lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2``.
    ``"step"``: ``lr``, times 0.1 from 50 % of the epochs on and 0.01 from 75 % on.
    """
    e = epoch - 1
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * e / config.epochs))
    if config.schedule == "step":
        drops = (e >= 0.5 * config.epochs) + (e >= 0.75 * config.epochs)
        return config.lr * 0.1**drops
    return config.lr


@dataclass(frozen=True)
class TrainRun:
    """A training run on disk, as described by its ``run.json``.

    Attributes
    ----------
    out_dir : Path
        The run's directory.
    checkpoints : list[Path]
        Checkpoint files in training order (``epoch_0000.pt`` first).
    history : list[dict]
        One dict per checkpoint: ``epoch``, ``step``, ``lr``, ``train_loss``, ``train_acc``,
        ``test_loss``, ``test_acc``, ``checkpoint`` (file name) and ``sha256``.
    spec : ModelSpec
        The architecture.
    data : DataSpec
        The data set.
    config : TrainConfig
        The hyper-parameters.
    init : dict or None
        For a run spawned from a checkpoint (``train(..., init=PATH)``): ``{"path": ...,
        "sha256": ...}`` of that checkpoint; ``None`` for a run from its seeded
        initialisation.
    status : str
        ``"running"`` (still going, or killed: re-running :func:`train` resumes it),
        ``"complete"`` or ``"diverged"``.
    start_epoch : int or None
        Set by :func:`train` on the run it returns: the epoch that call started from (0 for
        a fresh run, ``k`` when it resumed after epoch ``k``), or ``None`` when it trained
        nothing because the run was already complete. ``None`` from :meth:`load`; not
        compared by ``==``.
    """

    out_dir: Path
    checkpoints: list[Path]
    history: list[dict]
    spec: ModelSpec
    data: DataSpec
    config: TrainConfig
    status: str = "complete"
    init: dict | None = None
    start_epoch: int | None = field(default=None, compare=False)

    @property
    def epochs_done(self) -> int:
        """The epoch of the last checkpoint (0 when only the initialisation is saved)."""
        return int(self.history[-1]["epoch"]) if self.history else 0

    def unfinished(self) -> str | None:
        """``None`` for a complete run, else a phrase saying how far it got, e.g. ``"unfinished
        (status 'running': 3 of 10 epochs, 4 checkpoints)"``."""
        if self.status == "complete":
            return None
        return (f"unfinished (status '{self.status}': {self.epochs_done} of "
                f"{self.config.epochs} epochs, {len(self.checkpoints)} checkpoints)")

    @property
    def final(self) -> Path:
        """The last checkpoint written (its metrics are ``history[-1]``)."""
        if not self.checkpoints:
            raise LandscapeError(f"training run '{self.out_dir}' has no checkpoints yet")
        return self.checkpoints[-1]

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> TrainRun:
        """Read the ``run.json`` of a run directory.

        Raises
        ------
        LandscapeError
            If ``run.json`` is missing, not valid JSON, or not a landscape run manifest.
        """
        out = Path(out_dir)
        manifest = out / _MANIFEST
        if not manifest.is_file():
            raise LandscapeError(
                f"'{out}' holds no {_MANIFEST}; pass the output directory of train()"
            )
        try:
            d = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LandscapeError(
                f"'{manifest}' is corrupted ({type(e).__name__}); list the checkpoints by hand "
                "or retrain"
            ) from e
        if not isinstance(d, dict) or d.get("format") != RUN_FORMAT:
            raise LandscapeError(f"'{manifest}' is not a landscape run manifest; check the path")
        if not isinstance(d.get("format_version"), int) or d["format_version"] > RUN_FORMAT_VERSION:
            raise LandscapeError(
                f"'{manifest}' has format version {d.get('format_version')!r}, newer than this "
                f"version of landscape reads ({RUN_FORMAT_VERSION}); upgrade landscape"
            )
        try:
            history = [dict(h) for h in d["checkpoints"]]
            checkpoints = [out / h["checkpoint"] for h in history]
            return cls(
                out_dir=out,
                checkpoints=checkpoints,
                history=history,
                spec=ModelSpec.from_dict(d["model"]),
                data=DataSpec.from_dict(d["data"]),
                config=TrainConfig.from_dict(d["config"]),
                status=str(d.get("status", "complete")),
                init=dict(d["init"]) if d.get("init") is not None else None,
            )
        except LandscapeError as e:
            raise LandscapeError(f"'{manifest}' is damaged: {e}") from e
        except (KeyError, TypeError, ValueError) as e:
            raise LandscapeError(
                f"'{manifest}' is damaged (bad or missing entry {e}); retrain or repair it"
            ) from e


def list_checkpoints(run_dir: str | os.PathLike, *, allow_partial: bool = False) -> list[Path]:
    """Checkpoints of a run directory, in training order.

    Taken from ``run.json`` when present, else the ``epoch_NNNN.pt`` files sorted by epoch.

    Parameters
    ----------
    run_dir : str or os.PathLike
        Output directory of :func:`train`.
    allow_partial : bool, default False
        Accept a run whose ``run.json`` does not say ``"complete"`` (still training, killed,
        or diverged): its last checkpoint is then not the final model of the run.

    Raises
    ------
    LandscapeError
        If the directory does not exist, holds no checkpoint, ``run.json`` lists a file
        that is missing, or the run is unfinished and not ``allow_partial``.
    """
    _check_bool("allow_partial", allow_partial)
    out = Path(run_dir)
    if not out.is_dir():
        raise LandscapeError(
            f"training run directory '{out}' does not exist; pass the output directory of "
            "train()"
        )
    if (out / _MANIFEST).is_file():
        run = TrainRun.load(out)
        state = run.unfinished()
        if state is not None and not allow_partial:
            fix = "resume it: train() with the same settings continues it" \
                if run.status == "running" else "retrain it"
            raise LandscapeError(
                f"training run '{out}' is {state}; {fix}, or pass "
                "allow_partial=True to use the checkpoints it has"
            )
        paths = run.checkpoints
        for p in paths:
            if not p.is_file():
                raise LandscapeError(
                    f"checkpoint '{p}' listed in '{out / _MANIFEST}' is missing; restore it or "
                    "retrain"
                )
    else:
        found = [(int(m.group(1)), p) for p in out.iterdir() if (m := _CKPT_RE.match(p.name))]
        paths = [p for _, p in sorted(found)]
    if not paths:
        raise LandscapeError(
            f"'{out}' holds no checkpoints (no {_MANIFEST}, no epoch_NNNN.pt files); train "
            "with train() first"
        )
    return paths


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _acc_text(acc: float | None) -> str:
    return "n/a" if acc is None else f"{acc:.3f}"


def _evaluate(model: nn.Module, data: TensorData, device: torch.device) -> tuple[float, float]:
    """Mean loss (cross-entropy, or MSE for float targets) and accuracy (NaN without classes)
    over a whole split, in eval mode (the batch/loss
    protocol of :mod:`landscape.losses`)."""
    model.eval()
    total, weight, correct, counted = 0.0, 0.0, 0, 0
    with torch.inference_mode():
        for x, y in data.batches(_EVAL_BATCH_SIZE):
            loss, y = _loss_and_targets(y.to(device))
            t = loss.model_terms(model, (x.to(device), y), accuracy=True)
            total += float(t.total)
            weight += float(t.weight)
            if t.correct is not None:
                correct += int(t.correct)
                counted += int(t.counted)
    return total / weight, (correct / counted if counted else float("nan"))


def _plain_json(x: Any) -> Any:
    """``x`` as JSON would give it back (tuples become lists), for comparisons."""
    return json.loads(json.dumps(x))


def _setup_of(spec: ModelSpec, data: DataSpec, config: TrainConfig,
              init_sha256: str | None = None) -> dict[str, Any]:
    """What must match for a run directory to be resumed: model, data and config (and the
    SHA-256 of the checkpoint a spawned run starts from; absent for a seeded start, so that
    the runs written before spawning existed still resume)."""
    setup = {"model": spec.to_dict(), "data": data.to_dict(), "config": config.to_dict()}
    if init_sha256 is not None:
        setup["init"] = {"sha256": init_sha256}
    return _plain_json(setup)


def _differences(run: TrainRun, setup: Mapping[str, Any]) -> list[str]:
    """The keys in which ``run`` differs from ``setup``, with both values (config keys bare,
    model and data keys prefixed: ``lr (run 0.1, now 0.05)``, ``data.subset (...)``)."""
    old = _setup_of(run.spec, run.data, run.config,
                    (run.init or {}).get("sha256"))
    out = []
    if old.get("init") != setup.get("init"):
        a, b = (None if s.get("init") is None else s["init"]["sha256"] for s in (old, setup))
        out.append(f"init (run {a!r}, now {b!r})")
    for section in ("model", "data", "config"):
        a, b = old[section], setup[section]
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                name = key if section == "config" else f"{section}.{key}"
                out.append(f"{name} (run {a.get(key)!r}, now {b.get(key)!r})")
    return out


@dataclass(frozen=True)
class _Start:
    """How :func:`train` starts in its directory (decided before anything is modified)."""

    kind: str  # "new", "resume" or "complete"
    run: TrainRun | None = None
    state: dict[str, Any] | None = None  # resume state; None: (re)start from epoch 0
    stale: tuple[Path, ...] = ()  # files to delete first (overwrite) or leftover temp files


def _plan(out: Path, setup: Mapping[str, Any], overwrite: bool) -> _Start:
    """Look at ``out`` and decide how to start; raises (modifying nothing) when it cannot."""
    if out.exists() and not out.is_dir():
        raise LandscapeError(f"output path '{out}' is a file; pass a directory for the run")
    if not out.exists():
        return _Start("new")
    ours = [p for p in out.iterdir()
            if p.name in (_MANIFEST, _RESUME) or _CKPT_RE.match(p.name) or _TMP_RE.match(p.name)]
    temps = tuple(p for p in ours if _TMP_RE.match(p.name))
    if overwrite:
        return _Start("new", stale=tuple(ours))
    if not (out / _MANIFEST).is_file():
        if len(ours) == len(temps):  # nothing but the temp files of a run killed at once
            return _Start("new", stale=temps)
        raise LandscapeError(
            f"'{out}' already holds a training run (epoch_NNNN.pt checkpoints but no "
            f"{_MANIFEST}); choose another output directory or pass overwrite=True"
        )
    try:
        run = TrainRun.load(out)
    except LandscapeError as e:
        raise LandscapeError(
            f"{e}; or pass overwrite=True to train afresh in '{out}'"
        ) from e
    diff = _differences(run, setup)
    if diff:
        raise LandscapeError(
            f"'{out}' already holds a training run with other settings (differs in: "
            f"{', '.join(diff)}); re-run with the run's settings to resume it, choose another "
            "output directory or pass overwrite=True"
        )
    if run.status == "complete":
        return _Start("complete", run)
    if run.status != "running":
        raise LandscapeError(
            f"'{out}' holds a training run that {run.status} with these settings (see its "
            f"{_MANIFEST}); it would do so again: lower the learning rate (the 'lr' "
            "parameter) and choose another output directory or pass overwrite=True"
        )
    if not run.history:  # killed before its first checkpoint: nothing to resume from
        return _Start("resume", run, None, stale=temps)
    return _Start("resume", run, _read_resume(out, setup), stale=temps)


def _read_resume(out: Path, setup: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resume state of ``out`` if it is usable: readable, of this setup, and pointing at
    a checkpoint that is still there with the SHA-256 it had. ``None`` otherwise (with a
    warning when a file was there but could not be used)."""
    path = out / _RESUME
    if not path.is_file():
        why = f"no {_RESUME}"
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file means: start over
            state, why = None, f"{_RESUME} is unreadable ({type(e).__name__})"
        if isinstance(state, dict):
            ckpt = out / str(state.get("checkpoint"))
            if (state.get("format"), state.get("format_version")) != \
                    (RESUME_FORMAT, RESUME_FORMAT_VERSION):
                why = f"{_RESUME} has another format"
            elif state.get("setup") != json.dumps(setup, sort_keys=True):
                why = f"{_RESUME} belongs to other settings"
            elif not ckpt.is_file() or file_sha256(ckpt) != state.get("checkpoint_sha256"):
                why = f"its checkpoint '{ckpt.name}' is missing or changed"
            else:
                return state
        elif state is not None:
            why = f"{_RESUME} is not a resume state"
    warnings.warn(
        f"training run '{out}' is unfinished but cannot be resumed ({why}); training restarts "
        "from epoch 0 and re-creates its checkpoints (identical on the CPU: training is "
        "deterministic)",
        RuntimeWarning,
        stacklevel=3,
    )
    return None


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    _atomic_write(out / _MANIFEST, lambda f: f.write(text.encode("utf-8")))


def _cuda_index(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    return device.index if device.index is not None else torch.cuda.current_device()


class _Trainer:
    """The state of one training run (model, optimizer, RNGs, counters) and its steps.

    Built inside :func:`torch.random.fork_rng` right after ``torch.manual_seed(config.seed)``,
    so that the model's initialisation is the seeded one.
    """

    def __init__(self, spec: ModelSpec, data: DataSpec, config: TrainConfig, out: Path,
                 device: torch.device, manifest: dict[str, Any], setup: Mapping[str, Any],
                 splits: tuple[TensorData, TensorData],
                 init_state: Mapping[str, Tensor] | None = None) -> None:
        self.spec, self.config, self.out, self.device = spec, config, out, device
        self.meta = {"seed": config.seed, "config": config.to_dict(), "data": data.to_dict()}
        if manifest.get("init") is not None:
            self.meta["init"] = dict(manifest["init"])
        self.manifest, self.setup_json = manifest, json.dumps(setup, sort_keys=True)
        self.train_set, self.test_set = splits
        self.history: list[dict[str, Any]] = manifest["checkpoints"]
        self.model = spec.build().to(device)
        if init_state is not None:  # a spawned run: the checkpoint's weights and buffers
            self.model.load_state_dict(init_state)
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.optimizer = build_optimizer(self.model, config)
        self.depth = None
        if config.stochastic_depth:
            from .stochastic_depth import StochasticDepth

            self.depth = StochasticDepth(self.model, config.stochastic_depth)
            manifest["stochastic_depth"] = {"p_last": config.stochastic_depth,
                                            **self.depth.record()}
        self.step = 0
        self.epoch = 0  # epochs done
        self.cuda = _cuda_index(device)

    # ------------------------------------------------------------------ resume state
    def rng_state(self) -> dict[str, Tensor]:
        """Every random state training draws from: the global CPU RNG (dropout and the like
        in user models), the shuffling generator and, on CUDA, the device's RNG. (Training
        draws nothing from numpy's or Python's RNGs.)"""
        state = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state()}
        if self.cuda is not None:
            state["cuda"] = torch.cuda.get_rng_state(self.cuda)
        return state

    def resume_state(self) -> dict[str, Any]:
        """What :meth:`restore` needs to continue after the checkpoint just written."""
        last = self.history[-1]
        return {
            "format": RESUME_FORMAT,
            "format_version": RESUME_FORMAT_VERSION,
            "setup": self.setup_json,
            "epoch": self.epoch,
            "step": self.step,
            "checkpoint": last["checkpoint"],
            "checkpoint_sha256": last["sha256"],
            "history": [dict(h) for h in self.history],
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng_state(),
            "torch_version": str(torch.__version__),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a resume state: weights from its checkpoint, everything else from
        the state itself."""
        ckpt = torch.load(self.out / state["checkpoint"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.shuffle.set_state(rng["shuffle"])
        if self.cuda is not None and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.cuda)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history[:] = [dict(h) for h in state["history"]]

    # ------------------------------------------------------------------ steps
    def diverged(self, value: float, epoch: int, lr: float, where: str) -> LandscapeError:
        kept = self.history[-1]["epoch"] if self.history else None
        msg = (
            f"training loss became {value} {where} epoch {epoch} (after {self.step} steps) "
            f"with lr {lr:g}; lower the learning rate (the 'lr' parameter)"
            + (f"; the checkpoints up to epoch {kept} are kept in '{self.out}'"
               if self.history else "")
        )
        self.manifest["status"], self.manifest["error"] = "diverged", msg
        _write_manifest(self.out, self.manifest)
        return LandscapeError(msg)

    def checkpoint(self, lr: float) -> dict[str, Any]:
        """Evaluate, then write the epoch's checkpoint, the resume state and run.json (in
        this order, each atomically: a kill between two leaves a state that resumes)."""
        train_loss, train_acc = _evaluate(self.model, self.train_set, self.device)
        if not math.isfinite(train_loss):
            raise self.diverged(train_loss, self.epoch, lr, "after")
        test_loss, test_acc = _evaluate(self.model, self.test_set, self.device)
        metrics = {
            "epoch": self.epoch,
            "step": self.step,
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": _finite_or_none(train_acc),  # None: no accuracy (float targets)
            "test_loss": _finite_or_none(test_loss),
            "test_acc": _finite_or_none(test_acc),
        }
        path = save_checkpoint(
            self.out / _ckpt_name(self.epoch), self.model, self.spec, **metrics, **self.meta,
            optimizer_state=adam_state(self.model, self.optimizer),
        )
        self.history.append({**metrics, "checkpoint": path.name, "sha256": file_sha256(path)})
        state = self.resume_state()
        _atomic_write(self.out / _RESUME, lambda f: torch.save(state, f))
        _write_manifest(self.out, self.manifest)
        return metrics

    def train_epoch(self) -> float:
        """One pass over the shuffled training split; returns the epoch's learning rate."""
        epoch = self.epoch + 1
        lr = lr_at_epoch(self.config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        n = len(self.train_set)
        order = torch.randperm(n, generator=self.shuffle)
        with self._depth_installed():
            for start in range(0, n, self.config.batch_size):
                if self.config.warmup_steps:
                    lr = lr_at_step(self.config, epoch, self.step)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                idx = order[start : start + self.config.batch_size]
                if self.depth is not None:  # after the batch's indices, from the same generator
                    self.depth.draw(self.shuffle)
                x = self.train_set.x[idx].to(self.device)
                loss_fn, y = _loss_and_targets(self.train_set.y[idx].to(self.device))
                t = loss_fn.model_terms(self.model, (x, y))
                loss = t.total / t.weight
                value = loss.item()
                if not math.isfinite(value):
                    raise self.diverged(value, epoch, lr, "in")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.step += 1
        self.epoch = epoch
        return lr_at_epoch(self.config, epoch)

    def _depth_installed(self) -> Any:
        """Stochastic depth's forwards while the epoch trains (none without it)."""
        if self.depth is None:
            from contextlib import nullcontext

            return nullcontext()
        return self.depth.installed()

    def fit(self, progress: bool) -> None:
        """Train from ``self.epoch`` to ``config.epochs`` (checkpoint 0 first if fresh)."""
        config = self.config
        bar = tqdm(
            total=config.epochs, initial=self.epoch, desc=f"train {self.spec.name}",
            unit="epoch", disable=not progress, dynamic_ncols=True,
        )
        try:
            if not self.history:
                self.checkpoint(lr_at_epoch(config, 1))
            while self.epoch < config.epochs:
                lr = self.train_epoch()
                if self.epoch % config.save_every == 0 or self.epoch == config.epochs:
                    last = self.checkpoint(lr)
                    bar.set_postfix(
                        loss=f"{last['train_loss']:.4g}",
                        acc=_acc_text(last["train_acc"]),
                        test_acc=_acc_text(last["test_acc"]),
                    )
                bar.update(1)
        finally:
            bar.close()


@holds_output("out_dir")  # a second train into the same directory fails at once
def train(
    spec: ModelSpec,
    data: DataSpec,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    init: str | os.PathLike | None = None,
) -> TrainRun:
    """Train a model with SGD and save its checkpoints and a ``run.json`` manifest.

    Parameters
    ----------
    spec : ModelSpec
        The architecture (built after ``torch.manual_seed(config.seed)``).
    data : DataSpec
        The data set; trained on its ``"train"`` split, evaluated on both splits.
    config : TrainConfig
        Hyper-parameters.
    out_dir : str or os.PathLike
        Directory for ``epoch_NNNN.pt`` and ``run.json`` (created if needed).
    progress : bool, default True
        Show a progress bar over epochs (on stderr) with the loss and accuracies.
    overwrite : bool, default False
        Replace an earlier run in ``out_dir`` (its ``run.json``, ``resume.pt`` and
        ``epoch_*.pt`` files are deleted first). Otherwise an earlier run with the same
        model, data and config is resumed when unfinished and returned as it is when
        complete, and any other run is refused.
    device : str or torch.device, default "cpu"
        Where to train. Bitwise reproducibility is only promised on the CPU.
    init : str or os.PathLike, optional
        Spawn the run from this checkpoint (Frankle et al. 2020): the model starts from its
        weights and buffers (it must be a checkpoint of ``spec``'s architecture, e.g.
        ``runs/a/epoch_0002.pt``) instead of the seeded initialisation, and
        ``config.seed`` sets the data order only. Epochs count from 0 again; the learning
        rate schedule and the momentum start afresh. Its path and SHA-256 are recorded in
        ``run.json`` (``"init"``); the SHA-256 must match for a resume.

    Returns
    -------
    TrainRun
        The run, as :meth:`TrainRun.load` would read it back, with ``start_epoch`` saying
        where this call started (``None``: the run was complete already, nothing was done).

    Raises
    ------
    LandscapeError
        If ``out_dir`` already holds a run with other settings, a diverged run, or epoch
        checkpoints without ``run.json`` (and not ``overwrite``); nothing is modified then.
        Also if the training loss becomes NaN/inf (the checkpoints written until then are
        kept and listed in ``run.json`` with status ``"diverged"``).
    KeyboardInterrupt
        Passed on, noted (:func:`~landscape.errors.note_interruption`) with the last epoch
        saved; calling :func:`train` again resumes.

    Examples
    --------
    >>> run = train(ModelSpec("mlp", {"width": 16}), DataSpec("digits"),
    ...             TrainConfig(epochs=5), "runs/mlp")                    # doctest: +SKIP
    >>> run.history[-1]["test_acc"], run.final                            # doctest: +SKIP
    """
    if not isinstance(spec, ModelSpec):
        raise LandscapeError(
            f"The 'spec' parameter must be a ModelSpec. Got {type(spec).__name__} instead."
        )
    if not isinstance(data, DataSpec):
        raise LandscapeError(
            f"The 'data' parameter must be a DataSpec. Got {type(data).__name__} instead."
        )
    if not isinstance(config, TrainConfig):
        raise LandscapeError(
            f"The 'config' parameter must be a TrainConfig. Got {type(config).__name__} instead."
        )
    _check_bool("progress", progress)
    _check_bool("overwrite", overwrite)
    device = torch.device(device)
    out = Path(out_dir)
    init_record, init_state = _spawn_point(init, spec)
    _check_depth(spec, config)
    setup = _setup_of(spec, data, config, init_record and init_record["sha256"])
    start = _plan(out, setup, overwrite)
    if start.kind == "complete":
        return dataclasses.replace(start.run, start_epoch=None)
    from .data import as_tensor_data  # streamed data: read into memory if finite and small

    splits = tuple(as_tensor_data(sp) for sp in load_splits(data))
    # from here on the directory is modified
    out.mkdir(parents=True, exist_ok=True)
    for stale in start.stale:
        stale.unlink(missing_ok=True)
    manifest: dict[str, Any] = {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "status": "running",
        "model": spec.to_dict(),
        "data": data.to_dict(),
        "config": config.to_dict(),
        "torch_version": str(torch.__version__),
        "checkpoints": [],
        "resumed": [],
    }
    if init_record is not None:
        manifest["init"] = init_record
    cuda = _cuda_index(device)
    with torch.random.fork_rng(devices=[] if cuda is None else [cuda]):
        torch.manual_seed(config.seed)
        trainer = _Trainer(spec, data, config, out, device, manifest, setup, splits,
                           init_state)
        if start.state is not None:
            trainer.restore(start.state)
            manifest["resumed"] = [*_resumed_of(out), {"epoch": trainer.epoch,
                                                      "torch_version": str(torch.__version__)}]
        first = trainer.epoch
        _write_manifest(out, manifest)
        try:
            with torch_threads(config.threads):
                trainer.fit(progress)
        except KeyboardInterrupt as exc:
            kept = trainer.history[-1]["epoch"] if trainer.history else None
            note_interruption(
                exc, None if kept is None else f"checkpoints up to epoch {kept} are saved in "
                f"'{out}'", resumable=True,
            )
            raise
    manifest["status"] = "complete"
    _write_manifest(out, manifest)
    (out / _RESUME).unlink(missing_ok=True)  # a complete run has nothing to resume
    return dataclasses.replace(TrainRun.load(out), start_epoch=first)


def train_seeds(
    spec: ModelSpec,
    data: DataSpec,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    seeds: Sequence[int],
    **kwargs: Any,
) -> list[TrainRun]:
    """Train one run per seed into ``out_dir/seed_S``: the replicates of a comparison arm.

    Parameters
    ----------
    spec, data, config
        As for :func:`train`; ``config.seed`` is replaced by each seed in turn.
    out_dir : str or os.PathLike
        Parent directory of the runs.
    seeds : sequence of int
        Distinct seeds.
    **kwargs
        Passed to :func:`train` (``progress``, ``overwrite``, ``device``, ``init``: every
        seed spawned from one checkpoint).

    Returns
    -------
    list of TrainRun
        In the order of ``seeds``. Each run resumes or is left as it is exactly as
        :func:`train` would; re-running the call after an interruption continues where it
        stopped.
    """
    seeds = [check_int("seed", s, 0, 2**63 - 1) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise LandscapeError(
            f"The 'seeds' parameter must be a non-empty sequence of distinct ints. Got "
            f"{list(seeds)!r} instead."
        )
    out = Path(out_dir)
    return [train(spec, data, dataclasses.replace(config, seed=s), out / f"seed_{s}", **kwargs)
            for s in seeds]


@dataclass(frozen=True)
class TrainedRuns:
    """What :func:`train_model` trained: its runs, one per seed.

    Attributes
    ----------
    runs : tuple of TrainRun
        The runs in the order of the seeds (one without ``seeds``), each with
        ``start_epoch`` set as :func:`train` sets it.
    seeds : tuple of int, optional
        The seeds of :func:`train_seeds` (``None``: one run of ``config.seed``).
    """

    runs: tuple[TrainRun, ...]
    seeds: tuple[int, ...] | None = None

    def lines(self) -> list[str]:
        """One line per run: trained, resumed or already complete, and its final numbers."""
        heads = [""] if self.seeds is None else [f"seed {s}: " for s in self.seeds]
        return [_run_line(run, head) for run, head in zip(self.runs, heads, strict=True)]


def _run_line(run: TrainRun, head: str) -> str:
    last = run.history[-1]
    final = f"final: train loss {last['train_loss']:.4g}, " + (
        f"test loss {last['test_loss']:.4g}" if last["test_acc"] is None  # float targets
        else f"test acc {100 * last['test_acc']:.1f}%")
    n = len(run.checkpoints)
    if run.start_epoch is None:
        return (f"{head}{run.out_dir} already holds this run, complete ({n} checkpoints; "
                f"{final}); nothing to do (overwrite=True retrains)")
    if run.start_epoch > 0:
        new = sum(h["epoch"] > run.start_epoch for h in run.history)
        return (f"{head}resumed after epoch {run.start_epoch}: wrote {new} checkpoints to "
                f"{run.out_dir} ({n} in all; {final})")
    return f"{head}wrote {n} checkpoints to {run.out_dir} ({final})"


def registry_spec(model: str, data: DataSpec, *, model_kwargs: str | Mapping[str, Any] | None
                  = None, plain: bool = False) -> ModelSpec:
    """The architecture :func:`train_model` trains: a registry model fitted to the data.

    Parameters
    ----------
    model : str
        Registry name (``"resnet20"``, ``"vit"``, ...) or ``package.module:factory``.
    data : DataSpec
        The data set; its ``"train"`` split gives the input channels, image size, classes,
        ... that ``model_kwargs`` leaves open (:func:`~landscape.models.adapt_to_data`).
    model_kwargs : str or mapping, optional
        Architecture keyword arguments, or a JSON object of them.
    plain : bool, default False
        The no-skip twin: ``"shortcut": false`` (``"residual": false`` for the transformers;
        :func:`~landscape.models.skip_switch`).

    Returns
    -------
    ModelSpec
        The spec, with the arguments the data determines recorded.

    Raises
    ------
    LandscapeError
        If the name or the arguments build no model, ``plain`` contradicts
        ``model_kwargs``, or the data are missing or do not fit the model.
    """
    kwargs = (dict(model_kwargs) if isinstance(model_kwargs, Mapping)
              else parse_model_kwargs(model_kwargs))
    if _check_bool("plain", plain):
        switch = skip_switch(model)  # "shortcut", or "residual" for the transformers
        if kwargs.get(switch) is True:
            raise LandscapeError(f"`plain` contradicts \"{switch}\": true in `model_kwargs`")
        kwargs[switch] = False
    spec = ModelSpec(model, kwargs)
    with torch.random.fork_rng(devices=[]):  # building draws; leave the caller's RNG alone
        net = spec.build()  # fail fast on a bad name or kwargs
        # streamed data (a Dataset or DataLoader of a custom loader) are trained on in memory:
        # a finite stream of (x, y) pairs is read once (train() does the same)
        spec = adapt_to_data(spec, as_tensor_data(load_data(data, "train")))
        net = spec.build() if spec.kwargs != kwargs else net
    check_compatible(net, load_data(data, "train"))  # missing or unsuitable data
    return spec


def train_model(
    model: str,
    data: DataSpec,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    model_kwargs: str | Mapping[str, Any] | None = None,
    plain: bool = False,
    seeds: Sequence[int] | None = None,
    **kwargs: Any,
) -> TrainedRuns:
    """Train a registry model fitted to the data: one run, or one per seed.

    The model's input channels, image size, classes, ... come from the data unless
    ``model_kwargs`` sets them (:func:`registry_spec`); a bad model or data are refused
    before ``out_dir`` is created.

    Parameters
    ----------
    model : str
        Registry name or ``package.module:factory``.
    data : DataSpec
        The data set.
    config : TrainConfig
        Hyper-parameters.
    out_dir : str or os.PathLike
        The run's directory (with ``seeds``: the parent of ``seed_S``).
    model_kwargs : str or mapping, optional
        Architecture keyword arguments, or a JSON object of them.
    plain : bool, default False
        The no-skip twin of ``model``.
    seeds : sequence of int, optional
        Train one run per seed (:func:`train_seeds`) instead of one of ``config.seed``.
    **kwargs
        Passed to :func:`train` (``progress``, ``overwrite``, ``device``, ``init``).

    Returns
    -------
    TrainedRuns
        The runs, with :meth:`~TrainedRuns.lines` for a log.

    Examples
    --------
    >>> done = train_model("resnet20", DataSpec("digits"), TrainConfig(epochs=5), "runs/plain",
    ...                    plain=True)                                    # doctest: +SKIP
    >>> done.runs[0].final                                                # doctest: +SKIP
    """
    spec = registry_spec(model, data, model_kwargs=model_kwargs, plain=plain)
    if seeds is None:
        return TrainedRuns((train(spec, data, config, out_dir, **kwargs),))
    runs = train_seeds(spec, data, config, out_dir, seeds, **kwargs)
    return TrainedRuns(tuple(runs), tuple(seeds))


def _spawn_point(init: str | os.PathLike | None, spec: ModelSpec
                 ) -> tuple[dict[str, str] | None, dict[str, Tensor] | None]:
    """The record (``{"path", "sha256"}``) and the state dict of the checkpoint a spawned run
    starts from; ``(None, None)`` without ``init``. Raises one line when the file is missing,
    unreadable, or of another architecture than ``spec``."""
    if init is None:
        return None, None
    if not isinstance(init, str | os.PathLike):
        raise LandscapeError(f"The 'init' parameter must be a path to a checkpoint or None. "
                             f"Got {type(init).__name__} instead.")
    path = Path(init)
    if not path.is_file():
        raise LandscapeError(f"The 'init' parameter must be an existing checkpoint file. "
                             f"Got '{path}', which does not exist.")
    try:
        with torch.random.fork_rng(devices=[]):  # building the models draws; leave no trace
            ckpt = load_checkpoint(path)
            template = spec.build().state_dict()
    except LandscapeError as e:
        raise LandscapeError(f"cannot spawn from the 'init' checkpoint '{path}': {e}") from e
    if ckpt.spec is not None and _plain_json(ckpt.spec.to_dict()) != \
            _plain_json(spec.to_dict()):
        raise LandscapeError(
            f"the 'init' checkpoint '{path}' is a {ckpt.spec.to_dict()} but the run trains a "
            f"{spec.to_dict()}; spawn from a checkpoint of the same architecture")
    state = {k: v.detach().clone() for k, v in ckpt.model.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in template.items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want != have:
        bad = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise LandscapeError(
            f"the 'init' checkpoint '{path}' does not fit the architecture {spec.to_dict()} "
            f"(tensor '{bad[0]}' differs); spawn from a checkpoint of the same architecture")
    return {"path": str(path), "sha256": ckpt.sha256}, state


def _check_depth(spec: ModelSpec, config: TrainConfig) -> None:
    """Refuse stochastic depth for a model without residual units, before anything is
    written."""
    if not config.stochastic_depth:
        return
    from .stochastic_depth import residual_units

    with torch.random.fork_rng(devices=[]):  # building the model draws; leave no trace
        model = spec.build()
    try:
        residual_units(model)
    except LandscapeError as e:
        raise LandscapeError(f"cannot train {spec.name} with stochastic_depth="
                             f"{config.stochastic_depth:g}: {e}") from e


def _resumed_of(out: Path) -> list[Any]:
    """The ``resumed`` entries of the run.json being replaced (to keep the record)."""
    try:
        old = json.loads((out / _MANIFEST).read_text(encoding="utf-8")).get("resumed", [])
    except (OSError, ValueError, AttributeError):
        return []
    return old if isinstance(old, list) else []
