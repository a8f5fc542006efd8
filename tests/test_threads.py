"""Thread policy: counts chosen from free CPUs, applied and restored; training fixes its own."""

from __future__ import annotations

import json

import pytest
import torch
from landscape.cli.main import main

from landscape import threads as th
from landscape.checkpoints import load_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.models import ModelSpec
from landscape.training import TrainConfig, train


def test_requested_count_is_taken_as_is():
    p = th.choose_threads(3)
    assert (p.threads, p.reason, p.requested, p.free_cpus) == (3, "requested", 3, None)
    assert th.choose_threads("2").threads == 2
    assert p.to_dict()["threads"] == 3


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5, True, None])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(LandscapeError, match="'threads' parameter must be 'auto' or an int"):
        th.choose_threads(bad)


def test_auto_follows_omp_num_threads_when_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    p = th.choose_threads("auto")
    assert (p.threads, p.reason) == (3, "OMP_NUM_THREADS")


def test_auto_counts_free_cpus(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(th, "usable_cpus", lambda: 4)
    for free, want in ((0.0, 1), (0.4, 1), (1.6, 2), (3.9, 4), (4.0, 4)):
        monkeypatch.setattr(th, "free_cpus", lambda seconds=0.1, f=free: f)
        p = th.choose_threads("auto")
        assert (p.threads, p.reason, p.free_cpus) == (want, "free CPUs", free), free
    monkeypatch.setattr(th, "free_cpus", lambda seconds=0.1: None)
    assert th.choose_threads("auto").threads == 4  # load unknown: the usable CPUs


def test_free_cpus_from_two_samples(monkeypatch):
    """busy/total jiffies between two reads of /proc/stat -> idle CPUs."""
    samples = iter([(100.0, 400.0), (150.0, 600.0)])  # 50 of 200 jiffies busy
    monkeypatch.setattr(th, "_cpu_times", lambda cpus: next(samples))
    monkeypatch.setattr(th.time, "sleep", lambda s: None)
    monkeypatch.setattr(th.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert th.free_cpus() == pytest.approx(2 * 0.75)
    monkeypatch.setattr(th, "_cpu_times", lambda cpus: None)
    assert th.free_cpus() is None


def test_cpu_times_reads_proc_stat_fields(tmp_path, monkeypatch):
    stat = ("cpu  9 9 9 9 9 9 9 9 0 0\n"
            "cpu0 10 1 5 100 4 1 1 2 0 0\n"   # busy 10+1+5+1+1+2 = 20, idle 104
            "cpu1 30 0 10 50 0 0 0 0 0 0\n"   # busy 40, idle 50
            "intr 1 2 3\n")
    real_open = open

    def fake_open(path, *a, **k):
        if path == "/proc/stat":
            return real_open(tmp_path / "stat", *a, **k)
        return real_open(path, *a, **k)

    (tmp_path / "stat").write_text(stat)
    monkeypatch.setattr("builtins.open", fake_open)
    assert th._cpu_times({0}) == (20.0, 124.0)
    assert th._cpu_times(None) == (60.0, 214.0)
    assert th._cpu_times({5}) is None


def test_free_cpus_on_this_machine_is_in_range():
    free = th.free_cpus(0.05)
    assert free is None or 0.0 <= free <= th.usable_cpus() + 1e-9


def test_configure_and_scope_restore():
    before = torch.get_num_threads()
    try:
        assert th.configure_threads(2).threads == 2 and torch.get_num_threads() == 2
        with th.torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with th.torch_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_training_is_bit_identical_whatever_the_callers_threads(tmp_path):
    """TrainConfig.threads fixes the count inside train(): the caller's setting is irrelevant,
    and it is restored afterwards."""
    spec = ModelSpec("resnet20", {"in_channels": 1, "width": 0.25})
    data = DataSpec("digits", subset=192)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.01)
    assert cfg.threads == 1 and cfg.to_dict()["threads"] == 1
    before = torch.get_num_threads()
    weights = []
    try:
        for n in (2, 1):
            torch.set_num_threads(n)
            run = train(spec, data, cfg, tmp_path / f"t{n}", progress=False)
            assert torch.get_num_threads() == n
            weights.append(load_checkpoint(run.final).model.state_dict())
            manifest = json.loads((tmp_path / f"t{n}" / "run.json").read_text())
            assert manifest["config"]["threads"] == 1
    finally:
        torch.set_num_threads(before)
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
    # a run.json written before the field existed reads back with threads = 1
    assert TrainConfig.from_dict({"epochs": 2}).threads == 1
    with pytest.raises(LandscapeError, match="'threads'"):
        TrainConfig(threads=0)


def test_cli_threads_option_is_applied_and_recorded(tmp_path, monkeypatch, capsys):
    from landscape.checkpoints import save_checkpoint
    from landscape.surface import Surface

    monkeypatch.chdir(tmp_path)
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", spec.build(), spec,
                    data=DataSpec("digits", subset=50).to_dict())
    before = torch.get_num_threads()
    try:
        assert main(["surface", "m.pt", "--x=-1:1:3", "--splits", "train", "--out", "s.h5",
                     "--no-progress", "--threads", "1"]) == 0
        assert Surface.load(tmp_path / "s.h5").provenance["threads"] == 1
        capsys.readouterr()
        assert main(["surface", "m.pt", "--x=-1:1:3", "--out", "t.h5", "--threads", "0"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--threads" in err[0] and "positive integer" in err[0]
        assert not (tmp_path / "t.h5").exists()
    finally:
        torch.set_num_threads(before)


def test_cli_train_seeds_and_threads(tmp_path, capsys):
    """--seeds trains one run per seed into OUT/seed_S; --threads N is the run's recorded
    training thread count, 'auto' keeps TrainConfig's fixed 1."""
    from landscape.training import TrainRun

    common = ["train", "--model", "mlp", "--model-kwargs", '{"width": 8, "depth": 1}',
              "--subset", "64", "--epochs", "1", "--no-progress"]
    before = torch.get_num_threads()
    try:
        assert main([*common, "--seeds", "0-1", "--out", str(tmp_path / "arm")]) == 0
        assert main([*common, "--seed", "1", "--out", str(tmp_path / "one"), "--threads",
                     "1"]) == 0
        assert main([*common, "--out", str(tmp_path / "two"), "--threads", "2"]) == 0
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert "seed 0: wrote" in out and "seed 1: wrote" in out
    runs = [TrainRun.load(tmp_path / "arm" / f"seed_{s}") for s in (0, 1)]
    assert [r.config.seed for r in runs] == [0, 1]
    assert runs[0].config.threads == 1
    assert TrainRun.load(tmp_path / "two").config.threads == 2
    # seed 1 of the arm is the same run as a single --seed 1 run
    a = load_checkpoint(runs[1].final).model.state_dict()
    b = load_checkpoint(TrainRun.load(tmp_path / "one").final).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for bad in ("1,1", "x", "-3"):
        assert main([*common, "--seeds", bad, "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
