"""torchrun sharding: a 2-process gloo run equals the single-process file; killed runs resume."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from landscape.surface import Surface

from .conftest import assert_h5_equal

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not Path("/proc").is_dir(),
    reason="needs torch.distributed and /proc",
)

ENV = {k: v for k, v in os.environ.items() if k != "LANDSCAPE_DEBUG"}


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun's workers included)."""
    for p in reversed(_descendants(pid)):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], cwd: Path, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "landscape.cli", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _single(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "landscape.cli", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dist")
    r = _single(["train", "--model", "mlp", "--model-kwargs", '{"width": 16, "depth": 2}',
                 "--epochs", "1", "--subset", "300", "--out", "run", "--no-progress"], d)
    assert r.returncode == 0, r.stderr
    return d / "run" / "epoch_0001.pt"


def _workdir(tmp_path: Path, name: str, ckpt: Path) -> Path:
    w = tmp_path / name
    w.mkdir()
    shutil.copy(ckpt, w / "model.pt")
    return w


# A fixed batch size: with "auto" two fresh runs may time differently and record different
# batch_size_used in their provenance (resumes reuse the recorded one).
ARGS = ["surface", "model.pt", "--x=-1:1:9", "--y=-1:1:7", "--out", "s.h5", "--no-progress",
        "--flush-seconds", "0", "--batch-size", "256"]


def test_two_process_run_equals_single_process(tmp_path, ckpt):
    one = _workdir(tmp_path, "one", ckpt)
    two = _workdir(tmp_path, "two", ckpt)
    r = _single(ARGS, one)
    assert r.returncode == 0, r.stderr
    p = _torchrun(ARGS, two)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert out.count("wrote s.h5") == 1  # only rank 0 reports
    assert_h5_equal(one / "s.h5", two / "s.h5")


def test_killed_two_process_run_resumes(tmp_path, ckpt):
    ref = _workdir(tmp_path, "ref", ckpt)
    work = _workdir(tmp_path, "work", ckpt)
    big = [a if not a.startswith("--x") else "--x=-1:1:41" for a in ARGS]
    big = [a if not a.startswith("--y") else "--y=-1:1:31" for a in big]
    assert _single(big, ref).returncode == 0
    p = _torchrun(big, work)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (work / "s.h5").exists():
        time.sleep(0.01)
    time.sleep(0.3)
    _kill_tree(p.pid)
    p.communicate(timeout=60)
    partial = Surface.load(work / "s.h5")
    assert 0 < partial.n_done < partial.n_points
    p = _torchrun(big, work)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert_h5_equal(ref / "s.h5", work / "s.h5")
