"""SIGKILL at random moments: the surface file stays readable and resuming gives the same bits.

``landscape surface ... --flush-seconds 0`` rewrites its file after every point (temporary file,
fsync, rename), so most of a run is spent writing and a kill at a random moment usually lands
inside a write. After every kill we check that

* the output either does not exist yet or loads with :meth:`Surface.load`, with the recipe of an
  uninterrupted run, every finished point bit-identical to that run and every other point NaN;
* ``landscape info`` exits 0 and reports as done exactly the sum of the file's done mask;
* the directory holds nothing but the output and temporary files named ``.F.h5.*.tmp`` (a
  kill inside a write may leave one; it is ignored, and removed by the next successful write);

and, once the same command has been re-run to completion, that the file equals the
uninterrupted run's (every dataset and attribute, except the root ``created`` time).

Several processes writing one file at once (sharding) are tested in ``test_distributed.py``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from landscape.cli.main import main

from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec
from landscape.models import ModelSpec
from landscape.surface import Surface

from .conftest import assert_h5_equal

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k != "LANDSCAPE_DEBUG"}
ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
ENV["OMP_NUM_THREADS"] = "1"  # the same arithmetic in every process, and no oversubscription
OUT = "F.h5"
TMP_RE = re.compile(r"\.F\.h5\..+\.tmp")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny MLP checkpoint whose data is the seeded ``tests._bad_data:tiny`` set."""
    d = tmp_path_factory.mktemp("ft")
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    torch.manual_seed(0)
    return save_checkpoint(d / "model.pt", spec.build(), spec,
                           data=DataSpec("tests._bad_data:tiny").to_dict())


def _command(ckpt: Path, n: int, flush: str = "0") -> list[str]:
    return [sys.executable, "-m", "landscape.cli", "surface", str(ckpt), f"--x=-1:1:{n}",
            f"--y=-1:1:{n}", "--out", OUT, "--flush-seconds", flush, "--no-progress"]


def _default_sigint() -> None:
    """In the child: Ctrl-C as in a terminal. A test run started in the background of a
    non-interactive shell (``cmd &``) inherits SIGINT *ignored*, and Python then installs no
    KeyboardInterrupt handler -- the signal the test sends would be lost (seen in CI)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _finish(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"wrote {OUT}" in r.stdout and r.stderr == "", (r.stdout, r.stderr)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _reference(cmd: list[str], d: Path) -> tuple[Surface, float, float]:
    """Uninterrupted run: the surface, seconds to its first write and to the end."""
    d.mkdir()
    t0 = time.monotonic()
    p = _start(cmd, d)
    while _stamp(d / OUT) is None and p.poll() is None:
        time.sleep(0.002)
    first = time.monotonic() - t0
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return Surface.load(d / OUT), first, time.monotonic() - t0


def _check_after_kill(d: Path, ref: Surface, capsys) -> tuple[int, list[str]]:
    """The invariants that hold whenever the writer died; returns (points done, temp files)."""
    names = sorted(os.listdir(d))
    tmps = [n for n in names if TMP_RE.fullmatch(n)]
    # a killed writer may leave its lock file (the kernel released the lock; the next writer
    # takes it and removes the file) besides temporary files; nothing else
    lock = f".{OUT}.lock"
    assert [n for n in names if n not in (OUT, lock) and n not in tmps] == [], names
    path = d / OUT
    if not path.exists():
        return 0, tmps
    s = Surface.load(path)
    assert s.recipe == ref.recipe
    # includes batch_size_used: with the tiny data set '--batch-size auto' has one candidate
    assert s.provenance == ref.provenance
    assert s.directions.digest() == ref.directions.digest()
    assert sorted(s.arrays) == sorted(ref.arrays)
    for k, a in s.arrays.items():
        assert a[s.done].tobytes() == ref.arrays[k][s.done].tobytes(), k
        assert np.isnan(a[~s.done]).all(), k
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["surface_completion"]["done"] == int(s.done.sum())
    assert info["surface_completion"]["total"] == s.done.size
    assert main(["info", str(path)]) == 0
    assert f" {int(s.done.sum())}/{s.done.size} points done" in capsys.readouterr().out
    return int(s.done.sum()), tmps


@pytest.fixture(scope="module")
def ref10(ckpt, tmp_path_factory) -> tuple[Surface, Path, float]:
    """Uninterrupted 10x10 run: surface, file, seconds from start to the first write."""
    d = tmp_path_factory.mktemp("ref10") / "ref"
    ref, first_write, _ = _reference(_command(ckpt, 10), d)
    return ref, d / OUT, first_write


def test_sigkill_chain_resumes_bit_for_bit(tmp_path, ckpt, ref10, capsys):
    """10 kills of one resumed run (each run resumes the last one's file), then completion.

    The first kill lands during start-up (no file yet); the others mostly a random moment
    after the process's first write of the file, i.e. inside the write loop, some of them
    the moment a temporary file appears (the file is built in memory first, so the window in
    which a temporary file exists is only the write, fsync and rename).
    """
    n_kills = 10
    cmd = _command(ckpt, 10)
    ref, ref_file, first_write = ref10
    rng = random.Random(20240607)
    work = tmp_path / "work"
    work.mkdir()
    kills = mid_write = completions = attempts = 0
    done = 0
    while kills < n_kills:
        attempts += 1
        assert attempts < 5 * n_kills
        before = _stamp(work / OUT)
        p = _start(cmd, work)
        if kills == 0 or rng.random() < 0.2:  # during start-up
            time.sleep(rng.uniform(0.05, 0.5 * first_write))
        else:  # after this process's first write, at a random phase of the write loop
            deadline = time.monotonic() + 120
            while _stamp(work / OUT) == before and p.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            if rng.random() < 0.4:  # aim: the moment a temporary file appears (mid-write)
                while p.poll() is None and not any(TMP_RE.fullmatch(n)
                                                   for n in os.listdir(work)):
                    assert time.monotonic() < deadline
            else:
                time.sleep(rng.uniform(0.0, 0.15))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.communicate(timeout=60)
        assert p.returncode in (0, -signal.SIGKILL), p.returncode
        if attempts == 1:
            assert not (work / OUT).exists()  # killed before its first write
        now, tmps = _check_after_kill(work, ref, capsys)
        assert now >= done  # finished points are never lost
        done = now
        mid_write += bool(tmps)
        if done == ref.n_points:  # the run finished before the kill: start a new chain
            assert_h5_equal(ref_file, work / OUT)
            completions += 1
            (work / OUT).unlink()
            done = 0
    _finish(cmd, work)
    assert_h5_equal(ref_file, work / OUT)
    assert mid_write >= 1, "no kill landed inside a write (no temporary file was ever left)"
    # the successful write removed the temporary files that killed writers left behind
    assert sorted(os.listdir(work)) == [OUT]


@pytest.fixture(scope="module")
def ref100(ckpt, tmp_path_factory) -> tuple[list[str], Surface, Path]:
    """Uninterrupted 100x100 run (about 2 s of work), flushed every 0.2 s."""
    cmd = _command(ckpt, 100, flush="0.2")
    d = tmp_path_factory.mktemp("ref100") / "ref"
    ref, _, _ = _reference(cmd, d)
    return cmd, ref, d / OUT


def test_sigint_and_sigterm_save_finished_points(tmp_path, ref100, capsys):
    """Ctrl-C, then a scheduler's SIGTERM on the resumed run: each time the points computed
    since the last flush are saved; a third run completes the file."""
    cmd, ref, ref_file = ref100
    done = 0
    for sig, code, word in [(signal.SIGINT, 130, "interrupted"),
                            (signal.SIGTERM, 143, "terminated (SIGTERM)")]:
        before = _stamp(tmp_path / OUT)
        p = _start(cmd, tmp_path)
        deadline = time.monotonic() + 120
        while _stamp(tmp_path / OUT) == before and p.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        flushed = Surface.load(tmp_path / OUT).n_done  # its first periodic flush (after 0.2 s)
        time.sleep(0.08)  # before the next one
        assert p.poll() is None, "the run finished before the signal; use a bigger grid"
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert p.returncode == code, err
        assert err == (f"landscape surface: {word}; finished work is saved, run the same "
                       "command again to resume\n")
        now, tmps = _check_after_kill(tmp_path, ref, capsys)
        assert tmps == [] and done < flushed < now < ref.n_points, (done, flushed, now)
        done = now
    _finish(cmd, tmp_path)
    assert_h5_equal(ref_file, tmp_path / OUT)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("LANDSCAPE_SLOW") != "1",
                    reason="long SIGKILL campaign; set LANDSCAPE_SLOW=1 to run it")
def test_sigkill_independent_trials(tmp_path, ckpt, capsys):
    """25 fresh runs, each killed at a random moment, checked, then resumed to completion in a
    new process. Even trials draw the moment uniformly over an uninterrupted run's duration
    (start-up included), odd ones over its write loop (from its first write to its end)."""
    n_trials, n = 25, 16
    cmd = _command(ckpt, n)
    ref, first, total = _reference(cmd, tmp_path / "ref")
    rng = random.Random(7)
    outcomes = {"no file": 0, "partial": 0, "temp left": 0, "finished": 0}
    for trial in range(n_trials):
        d = tmp_path / f"t{trial:02d}"
        d.mkdir()
        p = _start(cmd, d)
        time.sleep(rng.uniform(0.0 if trial % 2 == 0 else first, total))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        done, tmps = _check_after_kill(d, ref, capsys)
        outcomes["temp left"] += bool(tmps)
        if not (d / OUT).exists():
            outcomes["no file"] += 1
        elif done < ref.n_points:
            outcomes["partial"] += 1
        else:
            outcomes["finished"] += 1
        _finish(cmd, d)
        assert_h5_equal(tmp_path / "ref" / OUT, d / OUT)
        assert sorted(os.listdir(d)) == [OUT]
    print(outcomes)
    assert outcomes["partial"] >= n_trials // 3 and outcomes["temp left"] >= 1, outcomes


def test_only_temp_files_of_dead_writers_are_removed(tmp_path):
    """The clean-up never touches a live writer's file, another machine's or another file's."""
    from landscape import _atomic, storage

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        tag = _atomic.machine_tag()
        other = "00000000" if tag != "00000000" else "11111111"
        names = {
            f".F.h5.{dead}-{tag}.k2j4h5xz.tmp": False,  # writer died here: removed
            f".F.h5.{live.pid}-{tag}.a8d9c7b6.tmp": True,  # writer alive: kept
            f".F.h5.{dead}-{other}.q1w2e3r4.tmp": True,  # another machine: kept
            f".G.h5.{dead}-{tag}.z9x8c7v6.tmp": True,  # another file: kept
            ".F.h5.x7y6z5w4.tmp": True,  # another naming scheme: kept
        }
        for n in names:
            (tmp_path / n).write_bytes(b"partial")
        storage.update_file(tmp_path / OUT, {"extra": storage.Group(attrs={"a": 1})})
        for n, kept in names.items():
            assert (tmp_path / n).exists() == kept, n
        assert storage.read_group(tmp_path / OUT, "extra").attrs == {"a": 1}
    finally:
        live.kill()
        live.wait()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    """Not mkstemp's 0o600: new files get 0o666 less the umask, rewritten ones keep theirs."""
    from landscape import storage

    old = os.umask(0o027)
    try:
        storage.update_file(tmp_path / OUT, {"extra": storage.Group(attrs={"a": 1})})
        assert (tmp_path / OUT).stat().st_mode & 0o777 == 0o640
        (tmp_path / OUT).chmod(0o604)
        storage.update_file(tmp_path / OUT, {"extra": storage.Group(attrs={"a": 2})})
        assert (tmp_path / OUT).stat().st_mode & 0o777 == 0o604
        spec = ModelSpec("mlp", {"width": 8, "depth": 1})
        save_checkpoint(tmp_path / "c.pt", spec.build(), spec)
        assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


# ------------------------------------------------------------------------ landscape train
# A tiny MLP on 200 digits, batch size 2: about 50 ms per epoch, so that a kill after the
# first checkpoints lands inside the training loop (between, or inside, checkpoint writes).
TRAIN = [sys.executable, "-m", "landscape.cli", "train", "--model", "mlp", "--model-kwargs",
         '{"width": 8, "depth": 1}', "--subset", "200", "--epochs", "16", "--batch-size", "2",
         "--lr", "0.05", "--out", "run", "--no-progress"]
RUN_FILE_RE = re.compile(r"epoch_\d{4}\.pt|run\.json|resume\.pt")
RUN_TMP_RE = re.compile(r"\.(epoch_\d{4}\.pt|run\.json|resume\.pt)\..+\.tmp")


@pytest.fixture(scope="module")
def train_ref(tmp_path_factory) -> tuple[Path, dict]:
    """An uninterrupted run: its directory and its run.json."""
    d = tmp_path_factory.mktemp("train_ref")
    r = subprocess.run(TRAIN, cwd=d, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return d / "run", json.loads((d / "run" / "run.json").read_text())


def _wait_for(path: Path, p: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.002)


def _check_killed_run(run: Path) -> None:
    """What a killed train leaves: a valid run.json (status running) whose checkpoints exist,
    nothing but the run's files and temporary files of a write cut short."""
    from landscape.training import TrainRun

    names = os.listdir(run)
    assert all(RUN_FILE_RE.fullmatch(n) or RUN_TMP_RE.fullmatch(n) for n in names), names
    r = TrainRun.load(run)
    assert r.status == "running" and all(p.is_file() for p in r.checkpoints)


def _finish_train(cwd: Path, ref: tuple[Path, dict]) -> subprocess.CompletedProcess:
    """Re-run the same command to completion; the run must equal the uninterrupted one."""
    r = subprocess.run(TRAIN, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    ref_dir, ref_manifest = ref
    manifest = json.loads((cwd / "run" / "run.json").read_text())
    assert manifest["status"] == "complete"
    # every metric and the SHA-256 of every checkpoint file (weights and meta) are equal
    assert manifest["checkpoints"] == ref_manifest["checkpoints"]
    a = torch.load(ref_dir / "epoch_0016.pt", weights_only=True)["state_dict"]
    b = torch.load(cwd / "run" / "epoch_0016.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(os.listdir(cwd / "run")) == sorted(os.listdir(ref_dir))  # no temp, no resume
    return r


def test_train_sigkill_then_same_command_resumes_bit_for_bit(tmp_path, train_ref, capsys,
                                                             monkeypatch):
    """kill -9 a train after its first checkpoints, re-run the same command: the final weights
    and history equal the uninterrupted run's."""
    p = _start(TRAIN, tmp_path)
    _wait_for(tmp_path / "run" / "epoch_0002.pt", p)
    time.sleep(random.Random(11).uniform(0.0, 0.2))
    assert p.poll() is None, "the run finished before the kill; make it longer"
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    _check_killed_run(tmp_path / "run")
    r = _finish_train(tmp_path, train_ref)
    assert re.match(r"resumed after epoch \d+: wrote \d+ checkpoints to run \(17 in all; ",
                    r.stdout), r.stdout
    # and once complete, the same command (here in-process: quicker) changes nothing
    before = {n: (tmp_path / "run" / n).stat().st_mtime_ns for n in os.listdir(tmp_path / "run")}
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(TRAIN[3:]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("run already holds this run, complete (17 checkpoints; ") and not err
    assert {n: (tmp_path / "run" / n).stat().st_mtime_ns
            for n in os.listdir(tmp_path / "run")} == before


def test_train_sigint_and_sigterm_say_what_is_saved(tmp_path, train_ref):
    """Ctrl-C, then SIGTERM on the resumed run: each time the message names the last saved
    epoch and says that re-running resumes, which the third run then does."""
    for sig, code, word, wait in [(signal.SIGINT, 130, "interrupted", "epoch_0002.pt"),
                                  (signal.SIGTERM, 143, "terminated (SIGTERM)", "epoch_0008.pt")]:
        p = _start(TRAIN, tmp_path)
        _wait_for(tmp_path / "run" / wait, p)
        assert p.poll() is None, "the run finished before the signal; make it longer"
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert p.returncode == code, err
        m = re.fullmatch(rf"landscape train: {re.escape(word)}; checkpoints up to epoch (\d+) "
                         r"are saved in 'run', run the same command again to resume\n", err)
        assert m, err
        assert (tmp_path / "run" / f"epoch_{int(m.group(1)):04d}.pt").is_file()
        _check_killed_run(tmp_path / "run")
    _finish_train(tmp_path, train_ref)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("LANDSCAPE_SLOW") != "1",
                    reason="long SIGKILL campaign; set LANDSCAPE_SLOW=1 to run it")
def test_train_sigkill_chain(tmp_path, train_ref):
    """12 kills of one run at random moments (start-up included), each run resuming the last
    one's directory, then completion: the same bits as the uninterrupted run."""
    rng = random.Random(5)
    kills = attempts = 0
    while kills < 12:
        attempts += 1
        assert attempts < 60
        p = _start(TRAIN, tmp_path)
        if rng.random() < 0.25:
            time.sleep(rng.uniform(0.05, 1.5))  # often during start-up
        else:
            names = set(os.listdir(tmp_path / "run")) if (tmp_path / "run").exists() else set()
            deadline = time.monotonic() + 120
            while p.poll() is None and time.monotonic() < deadline and \
                    (not (tmp_path / "run").exists() or set(os.listdir(tmp_path / "run")) <= names):
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.1))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.communicate(timeout=60)
        if (tmp_path / "run" / "run.json").exists() and json.loads(
                (tmp_path / "run" / "run.json").read_text())["status"] == "complete":
            _finish_train(tmp_path, train_ref)
            shutil.rmtree(tmp_path / "run")
        elif (tmp_path / "run" / "run.json").exists():
            _check_killed_run(tmp_path / "run")
    _finish_train(tmp_path, train_ref)
