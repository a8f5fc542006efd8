"""End to end: landscape train -> landscape trajectory --surface -> one HDF5 file."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landscape import storage
from landscape.checkpoints import load_checkpoint
from landscape.data import load_data
from landscape.evaluation import evaluate
from landscape.surface import Surface
from landscape.trajectory import load_trajectory


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "landscape.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("traj")
    r = _cli("train", "--model", "mlp", "--model-kwargs", '{"width": 16, "depth": 2}',
             "--epochs", "4", "--subset", "300", "--lr", "0.05", "--out", "run",
             "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    return d


def test_trajectory_with_surface_end_to_end(run):
    r = _cli("trajectory", "run", "--surface", "--x=-2:6:9", "--y=-2:2:5", "--out", "t.h5",
             "--no-progress", cwd=run)
    assert r.returncode == 0, r.stderr
    assert "PC1+PC2" in r.stdout and "wrote t.h5" in r.stdout
    f = run / "t.h5"
    assert {"directions", "surface", "trajectory"} <= set(storage.list_groups(f))
    t = load_trajectory(f)
    assert t.coords.shape == (5, 2)  # epochs 0..4
    np.testing.assert_array_equal(t.coords[-1], [0.0, 0.0])
    assert 0 < t.explained_variance_ratio[:2].sum() <= 1 + 1e-12
    s = Surface.load(f)
    assert s.complete and s.shape == (5, 9)
    assert s.directions.recipe["kind"] == "pca"
    # the surface at the final model's projection (0, 0) is the final model's own loss
    final = load_checkpoint(run / "run" / "epoch_0004.pt")
    data = load_data("digits", "train").subset(300)
    iy, ix = int(np.flatnonzero(s.y == 0)[0]), int(np.flatnonzero(s.x == 0)[0])
    assert math.isclose(s["train_loss"][iy, ix], evaluate(final.model, data).loss, rel_tol=1e-6)
    info = _cli("info", "t.h5", cwd=run)
    assert info.returncode == 0 and "explained_variance_ratio" in info.stdout
    assert "45/45 points done" in info.stdout
    # the same command again resumes (nothing to do) and keeps the file
    before = f.read_bytes()
    r = _cli("trajectory", "run", "--surface", "--x=-2:6:9", "--y=-2:2:5", "--out", "t.h5",
             "--no-progress", cwd=run)
    assert r.returncode == 0, r.stderr
    assert f.read_bytes() == before


def test_trajectory_auto_grid_and_errors(run):
    r = _cli("trajectory", "run", "--out", "only.h5", cwd=run)
    assert r.returncode == 0, r.stderr
    assert "surface" not in storage.list_groups(run / "only.h5")
    r = _cli("trajectory", "run", "--components", "3", "--out", "only.h5", cwd=run)
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("trajectory", "run/epoch_0001.pt", cwd=run)
    assert r.returncode == 2 and "run directory" in r.stderr
    r = _cli("trajectory", "run", "--x=-1:1:3", cwd=run)
    assert r.returncode == 2 and "--surface" in r.stderr


def test_trajectory_refuses_an_unfinished_run_unless_allow_partial(run, tmp_path, monkeypatch,
                                                                    capsys):
    """A run whose run.json says "running" (killed, or still training) is not used silently:
    without --allow-partial one error line and nothing written; with it, a warning line."""
    import json
    import shutil

    from landscape.cli.main import main

    part = tmp_path / "part"
    shutil.copytree(run / "run", part)
    manifest = json.loads((part / "run.json").read_text())
    manifest["status"] = "running"
    manifest["checkpoints"] = manifest["checkpoints"][:4]  # killed after epoch 3 of 4
    (part / "run.json").write_text(json.dumps(manifest))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in part.iterdir())
    assert main(["trajectory", "part", "--out", "t.h5", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("landscape trajectory: error: training run 'part' is unfinished "
                          "(status 'running': 3 of 4 epochs, 4 checkpoints); resume it")
    assert "--allow-partial" in err
    assert sorted(p.name for p in part.iterdir()) == before and not (tmp_path / "t.h5").exists()

    assert main(["trajectory", "part", "--allow-partial", "--out", "t.h5",
                 "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert err == ("landscape trajectory: warning: run 'part' is unfinished (status 'running': "
                   "3 of 4 epochs, 4 checkpoints); its last checkpoint is used as the final "
                   "model\n")
    assert "PCA of 4 checkpoints" in out and "wrote t.h5" in out


def test_trajectory_surface_takes_loss_and_dtype(run):
    r = _cli("trajectory", "run", "--surface", "--x=-1:1:3", "--y=-1:1:3", "--loss", "mse",
             "--dtype", "float64", "--splits", "train", "--out", "mse.h5", "--no-progress",
             cwd=run)
    assert r.returncode == 0, r.stderr
    s = Surface.load(run / "mse.h5")
    assert s.recipe["loss"] == "mse" and s.recipe["dtype"] == "float64"
    final = load_checkpoint(run / "run" / "epoch_0004.pt")
    data = load_data("digits", "train").subset(300)
    assert math.isclose(s["train_loss"][1, 1], evaluate(final.model, data, loss="mse").loss,
                        rel_tol=1e-6)
    r = _cli("trajectory", "run", "--surface", "--loss", "hinge", "--out", "bad.h5", cwd=run)
    assert r.returncode == 2 and "loss" in r.stderr and not (run / "bad.h5").exists()


def test_the_library_call_writes_what_the_command_writes(run, monkeypatch):
    """compute_trajectory(...) in a notebook gives the file `landscape trajectory` writes."""
    from landscape import CheckpointInputs, RunOptions, TrajectoryPCA, compute_trajectory

    r = _cli("trajectory", "run", "--surface", "--x=-2:6:5", "--y=-2:2:3", "--out", "cli.h5",
             "--no-progress", cwd=run)
    assert r.returncode == 0, r.stderr
    monkeypatch.chdir(run)  # the recipe records the checkpoints' paths as given
    pca = compute_trajectory("run", TrajectoryPCA(2), inputs=CheckpointInputs(),
                             surface=True, x="-2:6:5", y="-2:2:3", batch_size="auto",
                             run=RunOptions("lib.h5", progress=False))
    assert pca.surface_ is not None and pca.surface_.complete
    a, b = Surface.load(run / "cli.h5"), Surface.load(run / "lib.h5")
    assert a.recipe == b.recipe
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
    np.testing.assert_array_equal(load_trajectory(run / "cli.h5").coords,
                                  load_trajectory(run / "lib.h5").coords)
