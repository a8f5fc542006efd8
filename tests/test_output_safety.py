"""Nothing the user has is lost: outputs that are not ours, FIFOs, links, full disks, two writers.

Cases in the style of ``test_bad_inputs.py`` (one line on stderr, exit 2, every file of the
working directory byte-identical), for the outputs of every writing command, plus the
behaviours that are not errors: a link is written through, two processes adding different
groups to one file keep both.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from landscape.cli.main import main

from landscape import _atomic, storage
from landscape.errors import LandscapeError
from landscape.surface import Surface

from . import test_bad_inputs as _bad
from .test_bad_inputs import ENV, X, assert_one_line_error, snapshot

corpus = _bad.corpus  # the bad-input corpus and its per-test working copy
work = _bad.work

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX file types and locks")


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run_dir(work) -> Path:
    """A finished two-epoch training run inside the working directory."""
    d = work / "run"
    shutil.copytree(work / "oldrun", d)
    shutil.copy(work / "mlp_b.pt", d / "epoch_0001.pt")
    return d


OVERWRITE_FOREIGN = [
    # --overwrite replaces landscape files only: a checkpoint, a Li file, any other file stays
    ("hessian-out-is-the-checkpoint",
     ["hessian", "mlp.pt", "--top-k", "1", "--out", "mlp.pt", "--overwrite"], "mlp.pt"),
    ("hessian-out-other-checkpoint",
     ["hessian", "mlp.pt", "--top-k", "1", "--out", "mlp_b.pt", "--overwrite"],
     "not a landscape file"),
    ("hessian-grid-onto-checkpoint",
     ["hessian", "mlp.pt", "--grid", "s.h5", "--out", "mlp_b.pt", "--overwrite"],
     "not a landscape file"),
    ("surface-out-text-file-overwrite", ["surface", "mlp.pt", X, "--out", "afile",
                                         "--overwrite"], "not a landscape file"),
    ("surface-out-foreign-h5-overwrite", ["surface", "mlp.pt", X, "--out", "foreign.h5",
                                          "--overwrite"], "not a landscape file"),
    ("surface-out-li-file-overwrite", ["surface", "mlp.pt", X, "--out", "li.h5",
                                       "--overwrite"], "Li et al."),
    ("surface-out-truncated-overwrite", ["surface", "mlp.pt", X, "--out", "truncated.h5",
                                         "--overwrite"], "not a landscape file"),
]


@pytest.mark.parametrize("argv, fragment", [pytest.param(a, f, id=i)
                                            for i, a, f in OVERWRITE_FOREIGN])
def test_overwrite_never_replaces_a_foreign_file(work, capsys, argv, fragment):
    before = snapshot(work)
    code, out, err = _run(argv, capsys)
    assert_one_line_error(code, out, err, fragment, argv[0])
    assert snapshot(work) == before


def test_trajectory_out_onto_a_checkpoint_of_the_run(work, run_dir, capsys):
    before = snapshot(work)
    argv = ["trajectory", "run", "--out", "run/epoch_0001.pt", "--overwrite", "--no-progress"]
    code, out, err = _run(argv, capsys)
    assert_one_line_error(code, out, err, "epoch_0001.pt", "trajectory")
    assert snapshot(work) == before


@POSIX
@pytest.mark.parametrize("argv", [
    ["info", "fifo.h5"],
    ["surface", "mlp.pt", X, "--out", "fifo.h5"],
    ["surface", "mlp.pt", X, "--out", "fifo.h5", "--overwrite"],
    ["surface", "mlp.pt", X, "--dir-file", "fifo.h5"],
    ["hessian", "mlp.pt", "--grid", "fifo.h5"],
    ["hessian", "mlp.pt", "--grid", "s.h5", "--out", "fifo.h5"],
    ["hessian", "mlp.pt", "--top-k", "1", "--out", "fifo.h5"],
    ["compare", "s.h5", "fifo.h5"],
    ["plot", "fifo.h5"],
    ["surface", "fifo.h5", X],  # a checkpoint: "is not a file"
], ids=lambda a: "-".join(a[:1] + [w for w in a if "fifo" in w or w == "--overwrite"]))
def test_a_fifo_is_refused_not_opened(corpus, tmp_path, argv):
    """Opening a FIFO blocks until a writer appears: run in a subprocess with a timeout."""
    w = tmp_path / "w"
    shutil.copytree(corpus, w)
    before = snapshot(w)
    os.mkfifo(w / "fifo.h5")  # after the snapshot: reading a FIFO would block the test
    r = subprocess.run([sys.executable, "-m", "landscape.cli", *argv], cwd=w, env=ENV,
                       capture_output=True, text=True, timeout=120)
    fragment = "is not a file" if argv[:2] == ["surface", "fifo.h5"] else "is a FIFO (named pipe)"
    assert_one_line_error(r.returncode, r.stdout, r.stderr, fragment, argv[0])
    (w / "fifo.h5").unlink()
    assert snapshot(w) == before


def test_out_through_a_symlink_replaces_the_target_and_keeps_the_link(work, capsys):
    """A link to a partial surface: the run resumes it, completes the target, link intact."""
    target = work / "adir" / "target.h5"
    argv = ["surface", "mlp.pt", "--x=-1:1:5", "--no-progress", "--batch-size", "64"]
    assert main([*argv, "--out", str(target)]) == 0
    full = Surface.load(target)
    part = Surface.load(target)  # as a run killed after two points leaves it
    part.done[2:] = False
    for a in part.arrays.values():
        a[2:] = np.nan
    part.save(target, overwrite=True)
    assert Surface.load(target).n_done == 2
    (work / "link.h5").symlink_to(target)
    code, out, err = _run([*argv, "--out", "link.h5"], capsys)
    assert code == 0, err
    assert (work / "link.h5").is_symlink()
    assert os.readlink(work / "link.h5") == str(target)
    done = Surface.load(target)
    assert done.complete
    for k, a in full.arrays.items():
        assert a.tobytes() == done.arrays[k].tobytes(), k
    assert sorted(os.listdir(work / "adir")) == ["target.h5"]  # no temp or lock left


def test_disk_full_keeps_the_previous_file(work, monkeypatch):
    """ENOSPC in the middle of a write: one LandscapeError, old bytes, no temporary file."""
    before = (work / "s.h5").read_bytes()
    real = os.write
    calls = {"n": 0}

    def full(fd, data):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, bytes(memoryview(data)[:100]))  # a short first write, then full

    monkeypatch.setattr(_atomic.os, "write", full)
    with pytest.raises(LandscapeError, match="no space left on device; the previous file is"):
        storage.update_file(work / "s.h5", {"extra": storage.Group(attrs={"a": 1})})
    monkeypatch.undo()
    assert (work / "s.h5").read_bytes() == before
    assert [n for n in os.listdir(work) if n.endswith(".tmp") or n.endswith(".lock")] == []


def _limit_file_size(limit: int):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


@POSIX
def test_file_size_limit_is_one_line_and_exit_2(corpus, tmp_path):
    """``ulimit -f``: EFBIG (Python ignores SIGXFSZ) ends the command with one line, exit 2, and
    the previous file byte-identical; HDF5 never writes to the disk itself, so it cannot crash.
    """
    w = tmp_path / "w"
    shutil.copytree(corpus, w)
    before = snapshot(w)
    size = (w / "s.h5").stat().st_size
    r = subprocess.run(
        [sys.executable, "-m", "landscape.cli", "hessian", "mlp.pt", "--top-k", "1", "--out",
         "s.h5", "--no-progress"],
        cwd=w, env=ENV, capture_output=True, text=True, timeout=300,
        preexec_fn=_limit_file_size(size + 64),
    )
    assert_one_line_error(r.returncode, r.stdout, r.stderr, "file size limit exceeded",
                          "hessian")
    assert "previous file is intact" in r.stderr
    assert snapshot(w) == before


def _add_groups(path: str, prefix: str, n: int) -> None:
    for i in range(n):
        storage.update_file(path, {f"{prefix}{i}": storage.Group(attrs={"i": i})})


@POSIX
def test_two_processes_adding_groups_lose_nothing(tmp_path):
    """Read-modify-write under the lock: every group of both writers is in the final file."""
    path = str(tmp_path / "both.h5")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_groups, args=(path, p, 15)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    names = storage.list_groups(path)
    assert sorted(names) == sorted([f"a{i}" for i in range(15)] + [f"b{i}" for i in range(15)])
    assert not (tmp_path / ".both.h5.lock").exists()


def _hold(path: str, ready, release) -> None:
    with _atomic.output_lock(path):
        ready.set()
        release.wait(60)


@contextmanager
def _held_by_another_process(path: Path) -> Iterator[int]:
    """Another process holds the output lock of ``path`` inside the block; yields its pid."""
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        yield holder.pid
    finally:
        release.set()
        holder.join(60)


@POSIX
def test_a_second_writer_fails_clearly_while_a_run_holds_the_file(work, capsys):
    """A long run holds its output; another command writing it stops at once, file untouched."""
    with _held_by_another_process(work / "s.h5") as pid:
        before = snapshot(work)
        for argv in (["hessian", "mlp.pt", "--top-k", "1", "--out", "s.h5", "--no-progress"],
                     ["surface", "mlp.pt", "--x=-1:1:5", "--out", "s.h5", "--overwrite",
                      "--no-progress"],
                     ["hessian", "mlp.pt", "--grid", "s.h5"]):
            t0 = time.monotonic()
            code, out, err = _run(argv, capsys)
            assert_one_line_error(code, out, err, "is being written by another landscape "
                                  f"process (pid {pid})", argv[0])
            assert time.monotonic() - t0 < 60
            assert snapshot(work) == before


def test_lock_is_reentrant_and_removed(tmp_path):
    p = tmp_path / "f.h5"
    with _atomic.output_lock(p) as a:
        assert (tmp_path / ".f.h5.lock").exists()
        with _atomic.output_lock(p) as b:  # the same process may flush inside its run
            assert a == b
            storage.update_file(p, {"g": storage.Group(attrs={"a": 1})})
        assert (tmp_path / ".f.h5.lock").exists()
    assert sorted(os.listdir(tmp_path)) == ["f.h5"]


def test_atomic_write_follows_links(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    (tmp_path / "link.txt").symlink_to(target)
    _atomic.atomic_write(tmp_path / "link.txt", lambda f: f.write(b"new"))
    assert (tmp_path / "link.txt").is_symlink() and target.read_text() == "new"


def test_serialisation_error_leaves_nothing(tmp_path):
    """An exception while serialising (before the disk is touched) leaves no temp file."""
    def boom(f):
        f.write(b"partial")
        raise RuntimeError("serialiser failed")

    with pytest.raises(RuntimeError):
        _atomic.atomic_write(tmp_path / "x.bin", boom)
    assert os.listdir(tmp_path) == []


@POSIX
def test_a_second_train_into_the_same_directory_fails_clearly(work, capsys):
    with _held_by_another_process(work / "newrun"):
        before = snapshot(work)
        argv = ["train", "--model", "mlp", "--epochs", "1", "--subset", "50", "--no-progress",
                "--out", "newrun"]
        code, out, err = _run(argv, capsys)
        assert_one_line_error(code, out, err, "'newrun' is being written by another landscape "
                              "process", "train")
        assert snapshot(work) == before


@POSIX
def test_a_file_system_without_flock_writes_unlocked(tmp_path, monkeypatch):
    """ENOLCK from flock (NFS without a lock daemon, Lustre -o noflock) must not stop writes."""
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    storage.update_file(tmp_path / "f.h5", {"g": storage.Group(attrs={"a": 1})})
    assert storage.read_group(tmp_path / "f.h5", "g").attrs == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["f.h5"]


# ------------------------------------------------------------------ stale locks

_FORKING_WRITER = """
import os, sys, time
from landscape import _atomic
with _atomic.output_lock(sys.argv[1]):
    child = os.fork()
    if child == 0:  # a worker that outlives its killed parent
        time.sleep(120)
        os._exit(0)
    print(child, flush=True)
    time.sleep(120)
"""

_RAW_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(120)
"""


@contextmanager
def _process(script: str, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A Python process running ``script``; yields it and its first line of output."""
    p = subprocess.Popen([sys.executable, "-c", script, *args], env=ENV, text=True,
                         stdout=subprocess.PIPE)
    try:
        yield p, p.stdout.readline().strip()
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(60)
        p.stdout.close()


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(60)
    return p.pid


@POSIX
def test_a_killed_writers_lock_does_not_block_the_next_run(tmp_path):
    """SIGKILL a writer whose forked worker lives on: the next writer takes the lock."""
    import signal

    path = tmp_path / "f.h5"
    with _process(_FORKING_WRITER, str(path)) as (writer, line):
        child = int(line)
        try:
            assert (tmp_path / ".f.h5.lock").exists()
            writer.send_signal(signal.SIGKILL)
            writer.wait(60)
            with _atomic.output_lock(path):
                storage.update_file(path, {"g": storage.Group(attrs={"a": 1})})
        finally:
            os.kill(child, signal.SIGKILL)
    assert storage.read_group(path, "g").attrs == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["f.h5"]


@POSIX
def test_a_lock_of_a_dead_writer_is_stale(tmp_path):
    """The flock is held (by a process that inherited it), but the writer the lock file records
    died on this machine: the lock is stale, the next writer proceeds."""
    path, lock = tmp_path / "f.h5", tmp_path / ".f.h5.lock"
    with _process(_RAW_HOLDER, str(lock)) as (_holder, line):
        assert line == "ready"
        lock.write_text(f"{_dead_pid()} {_atomic.machine_tag()}")
        with _atomic.output_lock(path):
            storage.update_file(path, {"g": storage.Group(attrs={"a": 1})})
    assert storage.read_group(path, "g").attrs == {"a": 1}


@POSIX
def test_a_live_lock_is_still_refused(tmp_path):
    """The recorded writer is alive (or on another machine, or unknown): refused."""
    path, lock = tmp_path / "f.h5", tmp_path / ".f.h5.lock"
    with _process(_RAW_HOLDER, str(lock)) as (holder, line):
        assert line == "ready"
        for record, shown in ((f"{holder.pid} {_atomic.machine_tag()}", f"(pid {holder.pid})"),
                              (f"{_dead_pid()} 00000000", "on another machine"),
                              (f"{_dead_pid()}", "(pid "), ("", "process;")):
            lock.write_text(record)
            with pytest.raises(LandscapeError, match="being written by another") as e:
                with _atomic.output_lock(path):
                    pass
            assert shown in str(e.value)
            assert lock.read_text() == record
    assert not path.exists()


@POSIX
def test_the_next_run_proceeds_past_a_stale_lock_and_stops_at_a_live_one(work, capsys):
    """Through the CLI: a lock file of a writer that died is taken over (the surface is
    written); one whose writer lives is refused in one line, nothing touched."""
    lock = work / ".new.h5.lock"
    argv = ["surface", "mlp.pt", X, "--out", "new.h5", "--no-progress"]
    with _process(_RAW_HOLDER, str(lock)) as (holder, line):
        assert line == "ready"
        lock.write_text(f"{holder.pid} {_atomic.machine_tag()}")
        before = snapshot(work)
        code, out, err = _run(argv, capsys)
        assert_one_line_error(code, out, err, "'new.h5' is being written by another landscape "
                              f"process (pid {holder.pid})", "surface")
        assert snapshot(work) == before
        lock.write_text(f"{_dead_pid()} {_atomic.machine_tag()}")
        code, out, err = _run(argv, capsys)
        assert code == 0, err
    assert Surface.load(work / "new.h5").complete
    assert not lock.exists()


def test_holds_output_finds_the_path_in_run_options_and_keyword_arguments(tmp_path):
    """The lock is held whether the output is a named argument, one of ``**`` keyword
    arguments or the ``out`` of a ``run`` options object (how compute_ratio_map and
    compute_connectivity take it)."""
    from landscape.inputs import RunOptions

    @_atomic.holds_output("out")
    def named(*, out=None):
        return (tmp_path / f".{Path(out).name}.lock").exists()

    @_atomic.holds_output("out", "fallback")
    def grouped(fallback=None, *, run=None, **run_options):
        out = run.out if run is not None else run_options.get("out", fallback)
        return (tmp_path / f".{Path(out).name}.lock").exists()

    assert named(out=tmp_path / "a.h5")
    assert grouped(run=RunOptions(out=tmp_path / "b.h5"))
    assert grouped(out=tmp_path / "c.h5")
    assert grouped(tmp_path / "d.h5")
    assert sorted(os.listdir(tmp_path)) == []
