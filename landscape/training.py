"""A small, deterministic SGD trainer that leaves a directory of checkpoints behind.

The landscape tools need trained models and, for trajectory plots, the whole path of the
optimizer from its initialisation. :func:`train` writes, into one output directory::

    epoch_0000.pt   the initialisation (before any step)
    epoch_0001.pt   after each ``save_every`` epochs, and always after the last one
    ...
    run.json        the manifest: model, data, config, and every checkpoint with its metrics

Checkpoints are landscape checkpoints (:func:`~landscape.checkpoints.save_checkpoint`) whose
``meta`` holds ``epoch``, ``step``, ``lr``, ``train_loss``, ``train_acc``, ``test_loss``,
``test_acc``, ``seed``, ``config`` and ``data``. ``run.json`` is rewritten atomically after
every checkpoint, so a killed run still has a valid manifest of what it wrote.

Training is deterministic given ``TrainConfig.seed`` (on the CPU): the seed initialises the
model inside :func:`torch.random.fork_rng` (the caller's global RNG is left untouched) and a
private :class:`torch.Generator` shuffles the data.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._atomic import atomic_write as _atomic_write
from .checkpoints import file_sha256, save_checkpoint
from .data import DataSpec, TensorData, load_splits
from .errors import LandscapeError, check_float, check_int, check_option
from .models import ModelSpec

__all__ = [
    "RUN_FORMAT",
    "RUN_FORMAT_VERSION",
    "SCHEDULES",
    "TrainConfig",
    "TrainRun",
    "train",
    "lr_at_epoch",
    "list_checkpoints",
]

RUN_FORMAT = "landscape.run"
RUN_FORMAT_VERSION = 1
SCHEDULES = ("cosine", "step", "constant")
#: Metric keys recorded for every checkpoint (in its meta and in run.json).
METRIC_KEYS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc")

_MANIFEST = "run.json"
#: SGD multiplies float32 weights by ``lr`` and ``weight_decay``: larger values cannot be
#: converted to float32 and fail inside the optimizer step, after the run directory exists.
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)
_CKPT_RE = re.compile(r"^epoch_(\d+)\.pt$")
_EVAL_BATCH_SIZE = 1024


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
        }
        if checked["nesterov"] and checked["momentum"] == 0.0:
            raise LandscapeError(
                "Nesterov momentum needs momentum > 0; pass --momentum 0.9 or drop --nesterov"
            )
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)

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
    status : str
        ``"running"`` (still going, or killed), ``"complete"`` or ``"diverged"``.
    """

    out_dir: Path
    checkpoints: list[Path]
    history: list[dict]
    spec: ModelSpec
    data: DataSpec
    config: TrainConfig
    status: str = "complete"

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
                f"'{out}' holds no {_MANIFEST}; pass the output directory of `landscape train`"
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
            )
        except LandscapeError as e:
            raise LandscapeError(f"'{manifest}' is damaged: {e}") from e
        except (KeyError, TypeError, ValueError) as e:
            raise LandscapeError(
                f"'{manifest}' is damaged (bad or missing entry {e}); retrain or repair it"
            ) from e


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run directory, in training order.

    Taken from ``run.json`` when present, else the ``epoch_NNNN.pt`` files sorted by epoch.

    Raises
    ------
    LandscapeError
        If the directory does not exist, holds no checkpoint, or ``run.json`` lists a file
        that is missing.
    """
    out = Path(run_dir)
    if not out.is_dir():
        raise LandscapeError(
            f"training run directory '{out}' does not exist; pass the output directory of "
            "`landscape train`"
        )
    if (out / _MANIFEST).is_file():
        paths = TrainRun.load(out).checkpoints
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
            "with `landscape train` first"
        )
    return paths


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _evaluate(model: nn.Module, data: TensorData, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole split, in eval mode."""
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.inference_mode():
        for x, y in data.batches(_EVAL_BATCH_SIZE):
            x, y = x.to(device), y.to(device).long()
            out = model(x)
            total += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(dim=1) == y).sum())
            n += len(y)
    return total / n, correct / n


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise LandscapeError(f"output path '{out}' is a file; pass a directory for the run")
    if not out.exists():
        out.mkdir(parents=True)
        return
    old = [p for p in out.iterdir() if p.name == _MANIFEST or _CKPT_RE.match(p.name)]
    if not old:
        return
    if not overwrite:
        what = _MANIFEST if (out / _MANIFEST).exists() else "epoch_NNNN.pt checkpoints"
        raise LandscapeError(
            f"'{out}' already holds a training run ({what}); choose another output directory "
            "or pass --overwrite (overwrite=True)"
        )
    for p in old:
        p.unlink()


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    _atomic_write(out / _MANIFEST, lambda f: f.write(text.encode("utf-8")))


def train(
    spec: ModelSpec,
    data: DataSpec,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
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
        Replace an earlier run in ``out_dir`` (its ``run.json`` and ``epoch_*.pt`` files are
        deleted first); otherwise such a directory is refused.
    device : str or torch.device, default "cpu"
        Where to train. Bitwise reproducibility is only promised on the CPU.

    Returns
    -------
    TrainRun
        The run, as :meth:`TrainRun.load` would read it back.

    Raises
    ------
    LandscapeError
        If ``out_dir`` already holds a run (and not ``overwrite``), or the training loss
        becomes NaN/inf (the checkpoints written until then are kept and listed in
        ``run.json`` with status ``"diverged"``).

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
    _prepare_out_dir(out, overwrite)
    train_set, test_set = load_splits(data)

    config_d, data_d = config.to_dict(), data.to_dict()
    manifest: dict[str, Any] = {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "status": "running",
        "model": spec.to_dict(),
        "data": data_d,
        "config": config_d,
        "torch_version": torch.__version__,
        "checkpoints": [],
    }
    history: list[dict[str, Any]] = manifest["checkpoints"]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = spec.build().to(device)
        shuffle = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        step = 0

        def diverged(value: float, epoch: int, lr: float, where: str) -> LandscapeError:
            kept = history[-1]["epoch"] if history else None
            msg = (
                f"training loss became {value} {where} epoch {epoch} (after {step} steps) with lr "
                f"{lr:g}; lower the learning rate (--lr)"
                + (f"; the checkpoints up to epoch {kept} are kept in '{out}'" if history else "")
            )
            manifest["status"], manifest["error"] = "diverged", msg
            _write_manifest(out, manifest)
            return LandscapeError(msg)

        def checkpoint(epoch: int, lr: float) -> dict[str, Any]:
            train_loss, train_acc = _evaluate(model, train_set, device)
            if not math.isfinite(train_loss):
                raise diverged(train_loss, epoch, lr, "after")
            test_loss, test_acc = _evaluate(model, test_set, device)
            metrics = {
                "epoch": epoch,
                "step": step,
                "lr": lr,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": _finite_or_none(test_loss),
                "test_acc": test_acc,
            }
            path = save_checkpoint(
                out / _ckpt_name(epoch), model, spec,
                **metrics, seed=config.seed, config=config_d, data=data_d,
            )
            history.append({**metrics, "checkpoint": path.name, "sha256": file_sha256(path)})
            _write_manifest(out, manifest)
            return metrics

        bar = tqdm(
            total=config.epochs, desc=f"train {spec.name}", unit="epoch",
            disable=not progress, dynamic_ncols=True,
        )
        try:
            checkpoint(0, lr_at_epoch(config, 1))
            n = len(train_set)
            for epoch in range(1, config.epochs + 1):
                lr = lr_at_epoch(config, epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                model.train()
                order = torch.randperm(n, generator=shuffle)
                for start in range(0, n, config.batch_size):
                    idx = order[start : start + config.batch_size]
                    x = train_set.x[idx].to(device)
                    y = train_set.y[idx].to(device).long()
                    loss = F.cross_entropy(model(x), y)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise diverged(value, epoch, lr, "in")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step += 1
                if epoch % config.save_every == 0 or epoch == config.epochs:
                    last = checkpoint(epoch, lr)
                    bar.set_postfix(
                        loss=f"{last['train_loss']:.4g}",
                        acc=f"{last['train_acc']:.3f}",
                        test_acc=f"{last['test_acc']:.3f}",
                    )
                bar.update(1)
        finally:
            bar.close()

    manifest["status"] = "complete"
    _write_manifest(out, manifest)
    return TrainRun.load(out)
