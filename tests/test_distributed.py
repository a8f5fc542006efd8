"""torchrun: a 2-process gloo surface run equals the single-process file and killed runs
resume; so does a run over two "nodes" (two torchrun launchers meeting at a c10d rendezvous on
localhost); a 2-process Hessian (data sharded, HVPs all-reduced) equals the single process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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


# A fixed batch size: "auto" depends on the machine's L2 cache size (resumes reuse the recorded
# one); the files compared here need not.
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


def test_two_node_c10d_run_equals_single_process(tmp_path, ckpt):
    """Multi-node as SLURM runs it (docs/distributed.md): one torchrun launcher per node,
    ``--nnodes 2 --nproc_per_node 1``, meeting at a c10d rendezvous (the first launcher hosts
    the store); here both "nodes" are processes of this machine sharing the work directory."""
    one = _workdir(tmp_path, "one", ckpt)
    two = _workdir(tmp_path, "two", ckpt)
    r = _single(ARGS, one)
    assert r.returncode == 0, r.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
           "--rdzv_backend=c10d", f"--rdzv_endpoint=localhost:{_free_port()}",
           "--rdzv_id=two-nodes", "-m", "landscape.cli", *ARGS]
    nodes = [subprocess.Popen(cmd, cwd=two, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
             for _ in range(2)]
    try:
        results = [p.communicate(timeout=300) for p in nodes]  # hang guard only
    finally:
        for p in nodes:
            if p.poll() is None:
                _kill_tree(p.pid)
    for p, (_, err) in zip(nodes, results, strict=True):
        assert p.returncode == 0, err
    assert sum(out.count("wrote s.h5") for out, _ in results) == 1  # global rank 0 only
    assert_h5_equal(one / "s.h5", two / "s.h5")


# ----------------------------------------------------------------------- distributed Hessians
HESSIAN = ["hessian", "model.pt", "--top-k", "5", "--min", "--trace", "--trace-samples", "30",
           "--density", "--density-steps", "30", "--density-runs", "2", "--dtype", "float64",
           "--batch-size", "64", "--out", "c.h5", "--no-progress"]


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _assert_close_json(a, b, where: str = "") -> None:
    """Equal nested JSON, floats to 1e-10 relative (recipes hold tolerances scaled by λmax)."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for k in a:
            _assert_close_json(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_close_json(u, v, f"{where}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-10 * abs(b), where
    else:
        assert a == b, where


def test_two_process_hessian_equals_single_process(tmp_path, ckpt, monkeypatch, one_thread):
    """torchrun, 2 gloo ranks, float64: every rank holds half the data and the HVPs are
    all-reduced. The CLI's top-5, λmin, trace (same probes) and density equal the single
    process to 1e-10 relative, rank 0 alone writes (the split is in the provenance); the
    library's loss, gradient and HVPs are the same bits on both ranks and equal the single
    process for tensors, DataLoaders and iterable Datasets; inside a grid loop operators stay
    local."""
    import h5py
    from landscape.cli.main import main

    from . import _dist_hessian

    one = _workdir(tmp_path, "one", ckpt)
    two = _workdir(tmp_path, "two", ckpt)
    monkeypatch.chdir(one)  # the single process in this one (saves a start-up)
    assert main(HESSIAN) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           str(Path(_dist_hessian.__file__)), str(two), *HESSIAN]
    p = subprocess.Popen(cmd, cwd=two, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        _kill_tree(p.pid)  # no worker outlives a hang
        raise
    assert p.returncode == 0, err
    assert out.count("wrote c.h5") == 1  # only rank 0 reports
    with h5py.File(one / "c.h5", "r") as fa, h5py.File(two / "c.h5", "r") as fb:
        a, b = fa["curvature"], fb["curvature"]
        assert sorted(a) == sorted(b)
        for k in ("top_eigenvalues", "min_eigenvalue", "trace", "slq_nodes", "slq_weights",
                  "density"):
            assert _rel(b[k][()], a[k][()]) <= 1e-10, k
        _assert_close_json(json.loads(b.attrs["recipe"]), json.loads(a.attrs["recipe"]))
        prov = json.loads(b.attrs["provenance"])
    assert prov["distributed"]["world_size"] == 2
    assert prov["distributed"]["split"] == "samples"
    (lo0, hi0), (lo1, hi1) = prov["distributed"]["shards"]
    assert lo0 == 0 and hi0 == lo1 and hi1 > lo1

    ref = _dist_hessian.library_numbers()
    r0, r1 = (dict(np.load(two / f"rank{i}.npz")) for i in (0, 1))
    for k, v in ref.items():
        assert r0[k].tobytes() == r1[k].tobytes(), k  # every rank: the same bits
        if not k.endswith("_n"):  # counts: world_size differs
            assert _rel(r0[k], v) <= 1e-12, k
    for name in ("tensors", "loader", "iterable"):
        assert r0[f"{name}_n"].tolist() == [61, 61, 2]
    assert r0["local_n"].tolist() == [1] and bool(r0["refused"])
