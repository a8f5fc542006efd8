"""Tests for landscape.training: deterministic SGD runs, checkpoints, run.json, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from landscape.checkpoints import file_sha256, load_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.models import ModelSpec
from landscape.training import (
    METRIC_KEYS,
    TrainConfig,
    TrainRun,
    list_checkpoints,
    lr_at_epoch,
    train,
)

SPEC = ModelSpec("mlp", {"width": 16, "depth": 2})
DATA = DataSpec("digits", subset=400)
CONFIG = TrainConfig(epochs=3, batch_size=32, lr=0.1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    return train(SPEC, DATA, CONFIG, tmp_path_factory.mktemp("run"), progress=False)


# ------------------------------------------------------------------------------------ config


def test_config_defaults_and_round_trip() -> None:
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (30, 64, 0.1, 0.9, 5e-4)
    assert (c.schedule, c.seed, c.save_every, c.nesterov) == ("cosine", 0, 1, False)
    d = CONFIG.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert TrainConfig.from_dict(d) == CONFIG
    assert type(TrainConfig(lr=1).lr) is float


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": 1e308}, "lr"),  # SGD cannot turn it into float32
        ({"weight_decay": 1e39}, "weight_decay"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"schedule": "linear"}, "schedule"),
        ({"seed": -1}, "seed"),
        ({"save_every": 0}, "save_every"),
        ({"nesterov": 1}, "nesterov"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, name: str) -> None:
    with pytest.raises(LandscapeError, match=f"The '{name}' parameter"):
        TrainConfig(**kwargs)


def test_config_nesterov_needs_momentum() -> None:
    with pytest.raises(LandscapeError, match="momentum > 0"):
        TrainConfig(nesterov=True, momentum=0.0)


def test_config_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(LandscapeError, match="unknown"):
        TrainConfig.from_dict({"epochs": 2, "learning_rate": 0.1})


def test_lr_schedules() -> None:
    step = TrainConfig(epochs=4, lr=1.0, schedule="step")
    assert [lr_at_epoch(step, e) for e in range(1, 5)] == pytest.approx([1, 1, 0.1, 0.01])
    const = TrainConfig(epochs=4, lr=0.3, schedule="constant")
    assert [lr_at_epoch(const, e) for e in range(1, 5)] == [0.3] * 4
    cos = TrainConfig(epochs=4, lr=1.0)
    lrs = [lr_at_epoch(cos, e) for e in range(1, 5)]
    assert lrs[0] == 1.0 and all(a > b > 0 for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[2] == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


# -------------------------------------------------------------------------------------- train


def test_run_writes_checkpoints_and_manifest(run: TrainRun) -> None:
    names = [p.name for p in run.checkpoints]
    assert names == ["epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt", "epoch_0003.pt"]
    assert all(p.is_file() for p in run.checkpoints)
    assert run.final == run.out_dir / "epoch_0003.pt"
    assert run.status == "complete"
    assert (run.spec, run.data, run.config) == (SPEC, DATA, CONFIG)
    manifest = json.loads((run.out_dir / "run.json").read_text())
    assert manifest["model"] == SPEC.to_dict() and manifest["data"] == DATA.to_dict()
    assert manifest["config"] == CONFIG.to_dict()
    assert [h["epoch"] for h in run.history] == [0, 1, 2, 3]
    n_batches = math.ceil(400 / 32)
    assert [h["step"] for h in run.history] == [0, n_batches, 2 * n_batches, 3 * n_batches]
    for h, path in zip(run.history, run.checkpoints, strict=True):
        assert set(METRIC_KEYS) <= set(h)
        assert h["checkpoint"] == path.name and h["sha256"] == file_sha256(path)
        assert 0.0 <= h["train_acc"] <= 1.0 and 0.0 <= h["test_acc"] <= 1.0
    assert [h["lr"] for h in run.history[1:]] == [lr_at_epoch(CONFIG, e) for e in (1, 2, 3)]
    assert TrainRun.load(run.out_dir) == run
    assert list_checkpoints(run.out_dir) == run.checkpoints


def test_checkpoint_meta(run: TrainRun) -> None:
    ckpt = load_checkpoint(run.final)
    assert ckpt.spec == SPEC
    for key in METRIC_KEYS:
        assert ckpt.meta[key] == run.history[-1][key]
    assert ckpt.meta["seed"] == CONFIG.seed
    assert ckpt.meta["config"] == CONFIG.to_dict() and ckpt.meta["data"] == DATA.to_dict()
    init = load_checkpoint(run.checkpoints[0])
    assert init.meta["epoch"] == 0 and init.meta["step"] == 0


def test_loss_goes_down(run: TrainRun) -> None:
    losses = [h["train_loss"] for h in run.history]
    assert losses[-1] < 0.5 * losses[0]
    assert run.history[-1]["train_acc"] > 0.6 and run.history[-1]["test_acc"] > 0.5


def test_init_checkpoint_is_the_seeded_initialisation(run: TrainRun) -> None:
    torch.manual_seed(CONFIG.seed)
    fresh = SPEC.build().state_dict()
    init = load_checkpoint(run.checkpoints[0]).model.state_dict()
    assert all(torch.equal(fresh[k], init[k]) for k in fresh)


def test_training_is_deterministic_and_leaves_global_rng(run: TrainRun, tmp_path: Path) -> None:
    rng_before = torch.get_rng_state()
    again = train(SPEC, DATA, CONFIG, tmp_path / "again", progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before)
    a = load_checkpoint(run.final).model.state_dict()
    b = load_checkpoint(again.final).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in run.history]


def test_save_every_keeps_last_epoch(tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05, save_every=2, seed=1)
    small = DataSpec("digits", subset=128)
    r = train(SPEC, small, config, tmp_path, progress=False)
    assert [h["epoch"] for h in r.history] == [0, 2, 3]
    assert [p.name for p in r.checkpoints] == ["epoch_0000.pt", "epoch_0002.pt", "epoch_0003.pt"]


def test_refuses_existing_run_unless_overwrite(tmp_path: Path) -> None:
    config = TrainConfig(epochs=1, batch_size=64, lr=0.05)
    small = DataSpec("digits", subset=64)
    train(SPEC, small, config, tmp_path, progress=False)
    with pytest.raises(LandscapeError, match="already holds a training run.*--overwrite"):
        train(SPEC, small, config, tmp_path, progress=False)
    (tmp_path / "epoch_0009.pt").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("keep me")
    r = train(SPEC, small, config, tmp_path, progress=False, overwrite=True)
    assert not (tmp_path / "epoch_0009.pt").exists() and (tmp_path / "notes.txt").exists()
    assert [p.name for p in r.checkpoints] == ["epoch_0000.pt", "epoch_0001.pt"]


def test_diverging_run_stops_and_keeps_checkpoints(tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, batch_size=64, lr=1e6, schedule="constant")
    with pytest.raises(LandscapeError, match=r"epoch 1 .*lower the learning rate \(--lr\)") as err:
        train(SPEC, DataSpec("digits", subset=256), config, tmp_path, progress=False)
    assert "\n" not in str(err.value)
    r = TrainRun.load(tmp_path)
    assert r.status == "diverged"
    assert list_checkpoints(tmp_path) == [tmp_path / "epoch_0000.pt"]
    load_checkpoint(tmp_path / "epoch_0000.pt")  # finite, loadable


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = TrainConfig(epochs=1, batch_size=64, lr=0.05)
    train(SPEC, DataSpec("digits", subset=64), config, tmp_path, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "train mlp" in captured.err


def test_train_checks_argument_types(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="'config' parameter must be a TrainConfig"):
        train(SPEC, DATA, {"epochs": 1}, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(LandscapeError, match="'spec' parameter must be a ModelSpec"):
        train("mlp", DATA, CONFIG, tmp_path)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- run dirs and manifest


def test_list_checkpoints_without_manifest(tmp_path: Path, run: TrainRun) -> None:
    for name in ("epoch_0010.pt", "epoch_0002.pt", "epoch_0000.pt", "epoch_x.pt", "other.pt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "epoch_0000.pt", "epoch_0002.pt", "epoch_0010.pt"
    ]


def test_list_checkpoints_errors(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="does not exist"):
        list_checkpoints(tmp_path / "nope")
    with pytest.raises(LandscapeError, match="holds no checkpoints"):
        list_checkpoints(tmp_path)


def test_list_checkpoints_reports_missing_file(tmp_path: Path, run: TrainRun) -> None:
    (tmp_path / "run.json").write_text((run.out_dir / "run.json").read_text())
    with pytest.raises(LandscapeError, match="epoch_0000.pt' listed in .* is missing"):
        list_checkpoints(tmp_path)


@pytest.mark.parametrize(
    "content, match",
    [(None, "holds no run.json"), ("{not json", "corrupted"), ('{"a": 1}', "not a landscape run"),
     ('{"format": "landscape.run", "format_version": 1}', "damaged")],
)
def test_trainrun_load_errors(tmp_path: Path, content: str | None, match: str) -> None:
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(LandscapeError, match=match):
        TrainRun.load(tmp_path)
