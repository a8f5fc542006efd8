"""Tests for landscape.training: deterministic SGD runs, checkpoints, run.json, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import pytest
import torch

import landscape.training as training
from landscape.checkpoints import file_sha256, load_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError, interruption_of
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


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and mtime of every file under ``root`` (hidden ones included)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                       p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


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


def test_rerun_of_complete_run_writes_nothing(run: TrainRun) -> None:
    before = _snapshot(run.out_dir)
    again = train(SPEC, DATA, CONFIG, run.out_dir, progress=False)
    assert again == run and again.start_epoch is None
    assert _snapshot(run.out_dir) == before


def test_other_settings_are_refused_naming_the_keys(run: TrainRun) -> None:
    before = _snapshot(run.out_dir)
    other = TrainConfig(epochs=4, batch_size=32, lr=0.05)
    with pytest.raises(LandscapeError, match=r"differs in: epochs \(run 3, now 4\), lr \(run "
                       r"0.1, now 0.05\)\); .*overwrite=True") as err:
        train(SPEC, DATA, other, run.out_dir, progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(LandscapeError, match=r"model.kwargs .*data.subset \(run 400, now 300\)"):
        train(ModelSpec("mlp", {"width": 8}), DataSpec("digits", subset=300), CONFIG,
              run.out_dir, progress=False)
    assert _snapshot(run.out_dir) == before


def test_refuses_checkpoints_without_manifest_unless_overwrite(tmp_path: Path) -> None:
    config = TrainConfig(epochs=1, batch_size=64, lr=0.05)
    small = DataSpec("digits", subset=64)
    (tmp_path / "epoch_0000.pt").write_bytes(b"foreign")
    with pytest.raises(LandscapeError, match="already holds a training run.*overwrite=True"):
        train(SPEC, small, config, tmp_path, progress=False)
    assert (tmp_path / "epoch_0000.pt").read_bytes() == b"foreign"
    train(SPEC, small, config, tmp_path / "run", progress=False)
    for name in ("run.json", "epoch_0000.pt", "epoch_0001.pt"):
        (tmp_path / name).write_bytes((tmp_path / "run" / name).read_bytes())
    (tmp_path / "epoch_0009.pt").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("keep me")
    r = train(SPEC, small, config, tmp_path, progress=False, overwrite=True)
    assert r.start_epoch == 0
    assert not (tmp_path / "epoch_0009.pt").exists() and (tmp_path / "notes.txt").exists()
    assert [p.name for p in r.checkpoints] == ["epoch_0000.pt", "epoch_0001.pt"]


def test_diverging_run_stops_and_keeps_checkpoints(tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, batch_size=64, lr=1e6, schedule="constant")
    with pytest.raises(LandscapeError,
                       match=r"epoch 1 .*lower the learning rate \(the 'lr' parameter\)") as err:
        train(SPEC, DataSpec("digits", subset=256), config, tmp_path, progress=False)
    assert "\n" not in str(err.value)
    r = TrainRun.load(tmp_path)
    assert r.status == "diverged"
    with pytest.raises(LandscapeError, match="unfinished .*'diverged'.*allow_partial=True"):
        list_checkpoints(tmp_path)
    assert list_checkpoints(tmp_path, allow_partial=True) == [tmp_path / "epoch_0000.pt"]
    load_checkpoint(tmp_path / "epoch_0000.pt")  # finite, loadable
    before = _snapshot(tmp_path)
    with pytest.raises(LandscapeError, match="diverged with these settings.*'lr'"):
        train(SPEC, DataSpec("digits", subset=256), config, tmp_path, progress=False)
    assert _snapshot(tmp_path) == before


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


# ---------------------------------------------------------------------------------- resuming

#: momentum, nesterov, weight decay, a cosine schedule and save_every=1: every piece of state
RESUME_CONFIG = TrainConfig(epochs=5, batch_size=32, lr=0.1, nesterov=True, seed=3)
RESUME_DATA = DataSpec("digits", subset=160)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    """The uninterrupted run that every resumed run must equal bit for bit."""
    return train(SPEC, RESUME_DATA, RESUME_CONFIG, tmp_path_factory.mktemp("ref"),
                 progress=False)


def _assert_same_run(a: TrainRun, b: TrainRun) -> None:
    assert b.status == "complete"
    assert [p.name for p in a.checkpoints] == [p.name for p in b.checkpoints]
    assert a.history == b.history  # metrics, and the SHA-256 of every checkpoint file
    for pa, pb in zip(a.checkpoints, b.checkpoints, strict=True):
        sa = load_checkpoint(pa).model.state_dict()
        sb = load_checkpoint(pb).model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, where: str, epoch: int) -> None:
    """Raise KeyboardInterrupt (as Ctrl-C would) at a moment of training epoch ``epoch``."""
    if where == "mid-epoch":  # the third optimizer step of the epoch
        real_step = torch.optim.SGD.step
        calls = {"n": 0}
        steps_per_epoch = math.ceil(len(RESUME_DATA.subset * [0]) / RESUME_CONFIG.batch_size)

        def step(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == (epoch - 1) * steps_per_epoch + 3:
                raise KeyboardInterrupt
            return real_step(self, *args, **kwargs)

        monkeypatch.setattr(torch.optim.SGD, "step", step)
        return
    # "before resume.pt": the epoch's checkpoint is written, its resume state is not;
    # "before run.json": checkpoint and resume state written, the manifest not yet
    target = {"before resume.pt": "resume.pt", "before run.json": "run.json"}[where]
    real_write = training._atomic_write

    def write(path, fn):
        if Path(path).name == target and (Path(path).parent / training._ckpt_name(epoch)).exists():
            raise KeyboardInterrupt
        return real_write(path, fn)

    monkeypatch.setattr(training, "_atomic_write", write)


@pytest.mark.parametrize("where", ["mid-epoch", "before resume.pt", "before run.json"])
def test_interrupted_run_resumes_bit_for_bit(tmp_path: Path, reference: TrainRun,
                                             monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    rng_before = torch.get_rng_state()
    with monkeypatch.context() as m:
        _interrupt_at(m, where, epoch=3)
        with pytest.raises(KeyboardInterrupt) as err:
            train(SPEC, RESUME_DATA, RESUME_CONFIG, tmp_path, progress=False)
    kept = 2 if where == "mid-epoch" else 3
    note = interruption_of(err.value)
    assert note is not None and note.resumable
    assert note.saved == f"checkpoints up to epoch {kept} are saved in '{tmp_path}'"
    assert TrainRun.load(tmp_path).status == "running"
    state = torch.load(tmp_path / "resume.pt", weights_only=True)  # plain data only
    assert state["epoch"] == (3 if where == "before run.json" else 2)
    assert set(state["rng"]) == {"torch", "shuffle"} and state["optimizer"]["state"]
    with pytest.raises(LandscapeError, match="unfinished .*'running'.*allow_partial=True"):
        list_checkpoints(tmp_path)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the resume state is used: no restart warning
        resumed = train(SPEC, RESUME_DATA, RESUME_CONFIG, tmp_path, progress=False)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is untouched
    assert resumed.start_epoch == state["epoch"]
    _assert_same_run(reference, resumed)
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert [r["epoch"] for r in manifest["resumed"]] == [state["epoch"]]
    assert not (tmp_path / "resume.pt").exists()  # a complete run has nothing to resume


def test_two_interruptions_and_save_every(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """save_every=2: a run resumes from its last saved checkpoint, twice."""
    config = TrainConfig(epochs=5, batch_size=32, lr=0.05, save_every=2, seed=1)
    ref = train(SPEC, RESUME_DATA, config, tmp_path_factory.mktemp("ref2"), progress=False)
    for stop_epoch, start in ((4, 2), (5, 4)):  # interrupted in epoch 4, then in epoch 5
        real = training._Trainer.train_epoch

        def train_epoch(self, real=real, stop_epoch=stop_epoch):
            if self.epoch + 1 == stop_epoch:
                raise KeyboardInterrupt
            return real(self)

        with monkeypatch.context() as m:
            m.setattr(training._Trainer, "train_epoch", train_epoch)
            with pytest.raises(KeyboardInterrupt):
                train(SPEC, RESUME_DATA, config, tmp_path, progress=False)
        assert torch.load(tmp_path / "resume.pt", weights_only=True)["epoch"] == start
    resumed = train(SPEC, RESUME_DATA, config, tmp_path, progress=False)
    assert resumed.start_epoch == 4
    _assert_same_run(ref, resumed)
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert [r["epoch"] for r in manifest["resumed"]] == [2, 4]


def test_unusable_resume_state_restarts_from_scratch(tmp_path: Path, reference: TrainRun,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """No resume.pt (or a damaged one): training restarts, with a warning, to the same bits;
    temporary files that a killed writer left behind are removed."""
    with monkeypatch.context() as m:
        _interrupt_at(m, "mid-epoch", epoch=2)
        with pytest.raises(KeyboardInterrupt):
            train(SPEC, RESUME_DATA, RESUME_CONFIG, tmp_path, progress=False)
    (tmp_path / "resume.pt").write_bytes(b"damaged")
    left = [".epoch_0002.pt.k2j4h5xz.tmp", ".run.json.a8d9c7b6.tmp", ".resume.pt.q1w2e3r4.tmp"]
    for name in left:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / ".notes.txt.tmp").write_text("not ours")
    with pytest.warns(RuntimeWarning, match="cannot be resumed .*unreadable.*restarts from "
                                            "epoch 0"):
        again = train(SPEC, RESUME_DATA, RESUME_CONFIG, tmp_path, progress=False)
    assert again.start_epoch == 0
    _assert_same_run(reference, again)
    assert not any((tmp_path / n).exists() for n in left)
    assert (tmp_path / ".notes.txt.tmp").exists()


def test_resume_state_of_other_settings_is_not_used(tmp_path: Path) -> None:
    """A resume.pt copied from another run (other settings) is ignored, with a warning."""
    small = DataSpec("digits", subset=64)
    a, b = TrainConfig(epochs=2, batch_size=64, lr=0.05), TrainConfig(epochs=2, lr=0.02)
    real = training._Trainer.train_epoch

    def stop_in_2(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self)

    training_dirs = [tmp_path / "a", tmp_path / "b"]
    for d, config in zip(training_dirs, (a, b), strict=True):
        with pytest.MonkeyPatch.context() as m:
            m.setattr(training._Trainer, "train_epoch", stop_in_2)
            with pytest.raises(KeyboardInterrupt):
                train(SPEC, small, config, d, progress=False)
    os.replace(tmp_path / "b" / "resume.pt", tmp_path / "a" / "resume.pt")
    with pytest.warns(RuntimeWarning, match="belongs to other settings"):
        r = train(SPEC, small, a, tmp_path / "a", progress=False)
    assert r.start_epoch == 0 and r.status == "complete"


# ------------------------------------------------------------------- spawned runs (Frankle)
SPAWN_DATA = DataSpec("digits", subset=96)
SPAWN_CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    """The run whose epoch-1 checkpoint the spawned runs start from."""
    return train(SPEC, SPAWN_DATA, SPAWN_CONFIG, tmp_path_factory.mktemp("parent"),
                 progress=False)


def test_spawned_runs_share_epoch_0_and_differ_after(parent: TrainRun, tmp_path: Path) -> None:
    init = parent.checkpoints[1]  # epoch 1 of the parent
    rng_before = torch.get_rng_state()
    r1 = train(SPEC, SPAWN_DATA, dataclasses.replace(SPAWN_CONFIG, seed=1), tmp_path / "s1",
               progress=False, init=init)
    r2 = train(SPEC, SPAWN_DATA, dataclasses.replace(SPAWN_CONFIG, seed=2), tmp_path / "s2",
               progress=False, init=init)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is untouched
    w0 = _weights(init)
    # epoch 0 of both is the checkpoint's weights, bit for bit (numbering restarts at 0)
    assert r1.history[0]["epoch"] == 0 and r1.history[0]["step"] == 0
    assert _same(_weights(r1.checkpoints[0]), w0) and _same(_weights(r2.checkpoints[0]), w0)
    assert r1.history[0]["train_loss"] == parent.history[1]["train_loss"]
    # then the data order (the seed) alone makes them differ
    assert not _same(_weights(r1.final), _weights(r2.final))
    # a seeded start differs from the spawned one already at epoch 0
    assert not _same(_weights(parent.checkpoints[0]), w0)
    record = {"path": str(init), "sha256": file_sha256(init)}
    for r in (r1, r2):
        manifest = json.loads((r.out_dir / "run.json").read_text())
        assert manifest["init"] == record and r.init == record
        assert load_checkpoint(r.final).meta["init"] == record
    # the same seed spawned again gives the same bits
    r1b = train(SPEC, SPAWN_DATA, dataclasses.replace(SPAWN_CONFIG, seed=1), tmp_path / "s1b",
                progress=False, init=init)
    assert r1b.history == r1.history


def test_spawned_run_resumes_bit_for_bit(parent: TrainRun, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    init = parent.checkpoints[1]
    config = dataclasses.replace(SPAWN_CONFIG, epochs=3, seed=1)
    ref = train(SPEC, SPAWN_DATA, config, tmp_path / "ref", progress=False, init=init)
    real = training._Trainer.train_epoch

    def stop_in_3(self):
        if self.epoch == 2:
            raise KeyboardInterrupt
        return real(self)

    with monkeypatch.context() as m:
        m.setattr(training._Trainer, "train_epoch", stop_in_3)
        with pytest.raises(KeyboardInterrupt):
            train(SPEC, SPAWN_DATA, config, tmp_path / "cut", progress=False, init=init)
    # the init is part of what must match: a seeded start (or another checkpoint) is refused
    with pytest.raises(LandscapeError, match=r"differs in: init \(run '[0-9a-f]{64}', now None"):
        train(SPEC, SPAWN_DATA, config, tmp_path / "cut", progress=False)
    with pytest.raises(LandscapeError, match="differs in: init"):
        train(SPEC, SPAWN_DATA, config, tmp_path / "cut", progress=False,
              init=parent.checkpoints[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the resume state is used: no restart warning
        resumed = train(SPEC, SPAWN_DATA, config, tmp_path / "cut", progress=False, init=init)
    assert resumed.start_epoch == 2
    _assert_same_run(ref, resumed)
    assert resumed.init == ref.init


def test_spawn_refuses_another_architecture_or_no_file(parent: TrainRun, tmp_path: Path) -> None:
    other = ModelSpec("mlp", {"width": 8, "depth": 2})
    with pytest.raises(LandscapeError, match="same architecture") as err:
        train(other, SPAWN_DATA, SPAWN_CONFIG, tmp_path / "x", progress=False,
              init=parent.checkpoints[1])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()  # refused before anything is written
    with pytest.raises(LandscapeError, match="'init' parameter must be an existing"):
        train(SPEC, SPAWN_DATA, SPAWN_CONFIG, tmp_path / "y", progress=False,
              init=tmp_path / "missing.pt")
    with pytest.raises(LandscapeError, match="'init' parameter must be a path"):
        train(SPEC, SPAWN_DATA, SPAWN_CONFIG, tmp_path / "y", progress=False, init=3)
