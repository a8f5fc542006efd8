"""Shards as jobs (``landscape.executors.run_shards``, ``landscape surface --executor``):
submitit's local executor gives the single-process file, waited for or merged later; a
killed shard resumes; a failed job is one line; the SLURM job array is checked in the sbatch
script and job pickles that submitit writes (a stand-in ``sbatch`` on PATH records them)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from landscape.cli import main as cli_main

from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.executors import MISSING, local_gpus, run_shards
from landscape.models import ModelSpec
from landscape.surface import Surface, compute_surface

submitit = pytest.importorskip("submitit")

# one thread in every process (the jobs too): the files are compared bit for bit
GRID = ["--x=-1:1:3", "--y=-1:1:3", "--batch-size", "32", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("executors")
    spec, data = ModelSpec("mlp", {"width": 8, "depth": 1}), DataSpec("digits", subset=90)
    torch.manual_seed(0)
    ck = save_checkpoint(d / "m.pt", spec.build(), spec, data=data.to_dict())
    single = d / "single.h5"
    assert cli_main.main(["surface", str(ck), *GRID, "--out", str(single)]) == 0
    return d, ck, single


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def add(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5py.File(path) as f:
        f.visititems(add)
    return out


def _assert_same_file(a: Path, b: Path) -> None:
    """Every dataset bit for bit and every attribute equal, except the root's ``created`` and
    the recorded command line (a shard job records its own)."""
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db)
    for k in da:
        assert da[k].dtype == db[k].dtype and da[k].tobytes() == db[k].tobytes(), k
    with h5py.File(a) as f, h5py.File(b) as g:
        names: list[str] = ["/"]
        f.visit(names.append)
        for k in names:
            ka = {n: v for n, v in f[k].attrs.items() if not (k == "/" and n == "created")}
            kb = {n: v for n, v in g[k].attrs.items() if not (k == "/" and n == "created")}
            assert sorted(ka) == sorted(kb), k
            for n in ka:
                va, vb = ka[n], kb[n]
                if n == "provenance":
                    va, vb = ({**json.loads(v), "command": None} for v in (va, vb))
                assert np.array_equal(np.asarray(va), np.asarray(vb)) if not isinstance(
                    va, dict) else va == vb, (k, n)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main.main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)


def test_local_jobs_resume_a_killed_shard_and_merge(setup, tmp_path, capsys):
    _, ck, single = setup
    out = tmp_path / "s.h5"
    # shard 0 of 2 "killed" after some points: point 8 unfinished, point 0 done (with a planted
    # value that only a resumed run keeps)
    part = tmp_path / "s_shard0of2.h5"
    assert cli_main.main(["surface", str(ck), *GRID, "--shard", "0/2", "--out", str(part)]) == 0
    s = Surface.load(part)
    s.done.reshape(-1)[8] = False
    s.arrays["train_loss"].reshape(-1)[0] = 123.0
    s.save(part, overwrite=True)
    code, stdout, err = _run(["surface", str(ck), *GRID, "--executor", "local", "--jobs", "2",
                              "--out", str(out)], capsys)
    assert code == 0, err
    assert "submitted 2 local job(s)" in stdout and "9/9 points" in stdout
    merged, ref = _datasets(out), _datasets(single)
    assert merged["surface/train_loss"].reshape(-1)[0] == 123.0  # resumed, not recomputed
    merged["surface/train_loss"].reshape(-1)[0] = ref["surface/train_loss"].reshape(-1)[0]
    for k in ref:
        assert ref[k].tobytes() == merged[k].tobytes(), k
    # the merged file exists: a second run is refused, not silently replaced
    code, _, err = _run(["surface", str(ck), *GRID, "--executor", "local", "--jobs", "2",
                         "--out", str(out)], capsys)
    assert code == 2 and "exists; pass --overwrite" in err


def test_no_wait_then_merge_is_the_single_process_file(setup, tmp_path, capsys):
    _, ck, single = setup
    out = tmp_path / "s.h5"
    code, stdout, err = _run(["surface", str(ck), *GRID, "--executor", "local", "--jobs", "2",
                              "--no-wait", "--out", str(out)], capsys)
    assert code == 0, err
    merge = stdout.strip().splitlines()[-1].split(": ", 1)[1].split()
    assert merge[:3] == ["landscape", "merge", str(out)] and len(merge) == 5
    deadline = time.monotonic() + 300  # hang guard only
    while len(list((tmp_path / "s_jobs").glob("*_result.pkl"))) < 2:
        assert time.monotonic() < deadline, "the local jobs did not finish"
        time.sleep(0.2)
    assert not out.exists()
    assert cli_main.main(merge[1:]) == 0
    _assert_same_file(single, out)


def test_a_failed_job_is_one_line(setup, tmp_path, capsys):
    _, ck, _ = setup
    code, _, err = _run(["surface", str(ck), "--x=-1:1:3", "--directions", "hessian",
                         "--no-progress", "--threads", "1", "--executor", "local", "--jobs", "1",
                         "--out", str(tmp_path / "h.h5")], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "shard 0 of 1 (job " in err and "drop --shard" in err
    log = err.split("(log: ", 1)[1].split(")", 1)[0]
    assert Path(log).is_file() and "drop --shard" in Path(log).read_text()


def test_slurm_job_array_script_and_jobs(setup, tmp_path, monkeypatch, capsys):
    """The SLURM path up to sbatch: the job array's script and the pickled shard jobs."""
    _, ck, _ = setup
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_ / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {tmp_path / 'script.sh'}\n"
                                 "echo 'Submitted batch job 4242'\n")
    for f in bin_.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "s.h5"
    code, stdout, err = _run(
        ["surface", str(ck), *GRID, "--executor", "slurm", "--jobs", "3", "--no-wait",
         "--slurm-partition", "gpu", "--slurm-account", "proj", "--job-time", "1:30:00",
         "--job-gpus", "1", "--slurm-cpus", "4", "--slurm-mem-gb", "16",
         "--slurm-option", "qos=high", "--out", str(out)], capsys)
    assert code == 0, err
    assert "submitted 3 slurm job(s) (4242_0 ... 4242_2)" in stdout
    script = (tmp_path / "script.sh").read_text()
    for line in ("--array=0-2%3", "--partition=gpu", "--account=proj", "--time=90",
                 "--gpus-per-node=1", "--cpus-per-task=4", "--mem=16GB", "--qos=high",
                 "--requeue", "--signal=USR2@90", "--job-name=landscape"):
        assert f"#SBATCH {line}\n" in script, line
    assert "submitit.core._submit" in script
    delayed = submitit.core.utils.DelayedSubmission.load(
        tmp_path / "s_jobs" / "4242_1_submitted.pkl")
    job = delayed.function
    assert job.shard == (1, 3) and job.out == str(tmp_path / "s_shard1of3.h5")
    argv = job.kwargs["argv"]
    assert argv[:2] == ["surface", str(ck)] and "--out" not in argv
    assert not any(a.startswith(("--executor", "--jobs", "--slurm", "--job-", "--no-wait"))
                   for a in argv)
    assert job.checkpoint().function is job  # requeued unchanged: the shard file resumes


def test_local_jobs_get_their_own_gpus():
    assert [local_gpus(i, None, 2) for i in range(3)] == [[0], [1], [0]]
    assert [local_gpus(i, 2, 4) for i in range(3)] == [[0, 1], [2, 3], [0, 1]]
    assert local_gpus(1, None, 0) == [] and local_gpus(0, 0, 2) == []
    with pytest.raises(LandscapeError, match="asks for 3 GPUs per job; this machine has 2"):
        local_gpus(0, 3, 2)


def test_refusals(setup, tmp_path, monkeypatch, capsys):
    _, ck, single = setup
    kw = dict(model=None, directions=None, data=None)
    with pytest.raises(LandscapeError, match="The 'jobs' parameter"):
        run_shards(compute_surface, kw, jobs=0, out=tmp_path / "a.h5")
    with pytest.raises(LandscapeError, match="must not hold 'shard'"):
        run_shards(compute_surface, {**kw, "shard": (0, 2)}, jobs=2, out=tmp_path / "a.h5")
    with pytest.raises(LandscapeError, match="exists; pass overwrite=True"):
        run_shards(compute_surface, kw, jobs=2, out=single)
    with pytest.raises(LandscapeError, match="applies to executor='slurm' only"):
        run_shards(compute_surface, kw, jobs=2, out=tmp_path / "a.h5", partition="gpu")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    with pytest.raises(LandscapeError, match="'srun' is not on"):
        run_shards(compute_surface, kw, jobs=2, out=tmp_path / "a.h5", executor="slurm")
    argv = ["surface", str(ck), *GRID, "--out", str(tmp_path / "b.h5")]
    for extra, words in ((["--jobs", "2"], "--jobs need(s) --executor"),
                         (["--executor", "local"], "needs --jobs N"),
                         (["--executor", "local", "--jobs", "2", "--shard", "0/2"], "drop --shard"),
                         (["--executor", "local", "--jobs", "2", "--slurm-account", "a"],
                          "--slurm-account: The 'account' parameter applies to --executor slurm")):
        code, _, err = _run([*argv, *extra], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setitem(sys.modules, "submitit", None)  # not installed
    code, _, err = _run([*argv, "--executor", "local", "--jobs", "2"], capsys)
    assert code == 2 and "pip install 'landscape[slurm]'" in err and MISSING in err


def _single_and_jobs(argv: list[str], tmp_path: Path, capsys) -> tuple[Path, Path, str]:
    """``argv`` run in one process into ``single.h5`` and as two local jobs into
    ``jobs.h5`` (the command must succeed both ways); the two paths and the jobs' stdout."""
    single, merged = tmp_path / "single.h5", tmp_path / "jobs.h5"
    assert cli_main.main([*argv, "--out", str(single)]) == 0
    capsys.readouterr()
    code, out, err = _run([*argv, "--out", str(merged), "--executor", "local", "--jobs", "2"],
                          capsys)
    assert code == 0, err
    return single, merged, out


def test_connect_local_jobs_give_the_single_process_file(setup, tmp_path, capsys):
    """``landscape connect --executor local --jobs 2``: every job trains the same bends and
    evaluates its shard; the merged file is the single-process one."""
    d, ck, _ = setup
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    torch.manual_seed(1)
    ck_b = save_checkpoint(tmp_path / "b.pt", spec.build(), spec,
                           data=DataSpec("digits", subset=90).to_dict())
    conn = ["connect", str(ck), str(ck_b), "--steps", "6", "--points", "3", "--batch-size",
            "32", "--train-batch-size", "16", "--no-progress", "--threads", "1"]
    single, merged, out = _single_and_jobs(conn, tmp_path, capsys)
    assert "merged from 2 shard files, 6/6 points" in out, out
    _assert_same_file(single, merged)


def test_ratio_map_local_jobs_give_the_single_process_map(setup, tmp_path, capsys):
    """``landscape hessian --grid S.h5 --no-warm-start --executor local --jobs 2``: the merged
    map is the single-process cold-start map."""
    _, ck, surface = setup
    hess = ["hessian", str(ck), "--grid", str(surface), "--no-warm-start", "--no-progress",
            "--batch-size", "64", "--threads", "1"]
    single, merged, out = _single_and_jobs(hess, tmp_path, capsys)
    assert "merged from 2 shard files, 9/9 points" in out, out
    a, b = _datasets(single), _datasets(merged)
    for k in a:
        if k.startswith("ratio_map/"):
            assert a[k].tobytes() == b[k].tobytes(), k


def test_surface_set_local_jobs_give_the_single_process_set(setup, tmp_path, capsys):
    """``landscape surface --n-directions 2 --executor local --jobs 2``: the merged surface set
    is the single-process one."""
    _, ck, _ = setup
    sets = ["surface", str(ck), *GRID, "--n-directions", "2"]
    single, merged, out = _single_and_jobs(sets, tmp_path, capsys)
    assert "merged from 2 shard files" in out, out
    _assert_same_file(single, merged)
