"""CLI: train -> surface -> info from the shell, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from landscape.cli.main import main

from landscape.checkpoints import load_checkpoint
from landscape.data import load_data
from landscape.evaluation import evaluate
from landscape.surface import Surface

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
ENV.pop("LANDSCAPE_DEBUG", None)


def landscape(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "landscape.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    r = landscape("train", "--model", "mlp", "--model-kwargs", '{"width": 16, "depth": 2}',
                  "--epochs", "2", "--subset", "400", "--out", "run", "--no-progress", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "wrote 3 checkpoints" in r.stdout
    return d


def test_train_surface_info_from_the_shell(run_dir):
    r = landscape("surface", "run/epoch_0002.pt", "--x=-1:1:5", "--y=-1:1:3", "--out", "s.h5",
                  "--no-progress", cwd=run_dir)
    assert r.returncode == 0, r.stderr
    assert "wrote s.h5: 2D 3x5 surface, 15/15 points" in r.stdout
    s = Surface.load(run_dir / "s.h5")
    ck = load_checkpoint(run_dir / "run/epoch_0002.pt")
    data = load_data(ck.meta["data"]["name"], "train").subset(400)
    # the data spec (incl. --subset 400) comes from the checkpoint
    assert s.recipe["datasets"] == {"train": 400, "test": 360}
    assert s.recipe["checkpoint_sha256"] == ck.sha256
    assert s.recipe["model"] == {"name": "mlp", "kwargs": {"width": 16, "depth": 2}}
    assert s["train_loss"][1, 2] == pytest.approx(evaluate(ck.model, data).loss, rel=1e-6)
    assert "surface.py" not in r.stderr  # no traceback
    r = landscape("info", "s.h5", cwd=run_dir)
    assert r.returncode == 0, r.stderr
    assert "15/15 points done (100.0%)" in r.stdout and "filter" in r.stdout
    r = landscape("info", "s.h5", "--json", cwd=run_dir)
    info = json.loads(r.stdout)
    assert info["surface_completion"]["done"] == 15


def test_interpolate_and_1d(run_dir):
    r = landscape("surface", "run/epoch_0000.pt", "--interpolate", "run/epoch_0002.pt",
                  "--x=0:1:3", "--out", "ab.h5", "--no-progress", "--splits", "train", cwd=run_dir)
    assert r.returncode == 0, r.stderr
    s = Surface.load(run_dir / "ab.h5")
    a = load_checkpoint(run_dir / "run/epoch_0000.pt")
    b = load_checkpoint(run_dir / "run/epoch_0002.pt")
    data = load_data("digits", "train").subset(400)
    assert s["train_loss"][0] == pytest.approx(evaluate(a.model, data).loss, rel=1e-6)
    assert s["train_loss"][-1] == pytest.approx(evaluate(b.model, data).loss, rel=1e-5)
    assert s.directions.recipe["kind"] == "interpolation"


def test_dir_file_reuses_directions(run_dir, monkeypatch):
    monkeypatch.chdir(run_dir)
    assert main(["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--y=-1:1:3", "--out",
                 "first.h5", "--no-progress", "--seed", "5"]) == 0
    assert main(["surface", "run/epoch_0001.pt", "--dir-file", "first.h5", "--x=-1:1:3",
                 "--y=-1:1:3", "--out", "second.h5", "--no-progress"]) == 0
    a, b = Surface.load("first.h5"), Surface.load("second.h5")
    assert a.directions.digest() == b.directions.digest()
    assert b.directions.recipe["seeds"] == [5, 6]


def _assert_one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["surface", "missing.pt", "--x=-1:1:3"], "does not exist"),
        (["surface", "run/epoch_0002.pt", "--x=1:-1:5"], "min must be smaller"),
        (["surface", "run/epoch_0002.pt", "--x=a:b:c"], "bad grid"),
        (["surface", "run/epoch_0002.pt", "--x=0:1:0"], "number of points"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:1.5"], "positive integer"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--model", "nonet"], "nonet"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--model", "resnet20"],
         "does not fit the model"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--data", "nodata"], "nodata"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--data", "mnist"], "mnist"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--loss", "hinge"], "--loss"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--interpolate", "x.pt"], "x.pt"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--out", "/nonexistent/dir/o.h5"],
         "/nonexistent/dir"),
        (["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--norm", "unit"], "--norm"),
        (["surface", "run/epoch_0002.pt"], "--x"),
        (["info", "missing.h5"], "does not exist"),
        (["info", "run/run.json"], "not a valid HDF5"),
        (["train", "--model", "mlp", "--out", "run", "--epochs", "1"], "run"),
        (["train", "--model", "mlp", "--out", "x", "--lr", "-1"], "lr"),
        (["bogus"], "invalid choice"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(run_dir, capsys, monkeypatch, args, message):
    monkeypatch.chdir(run_dir)
    code = main(args)
    err = capsys.readouterr().err
    _assert_one_line_error(code, err)
    assert message in err


def test_wrong_checkpoint_and_foreign_files(run_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("garbage.pt").write_bytes(b"\x00garbage")
    _assert_one_line_error(main(["surface", "garbage.pt", "--x=-1:1:3"]),
                           capsys.readouterr().err)
    torch.save(torch.nn.Linear(64, 10), "pickled.pt")
    code = main(["surface", "pickled.pt", "--x=-1:1:3"])
    err = capsys.readouterr().err
    _assert_one_line_error(code, err)
    assert "--trust-checkpoint" in err
    with h5py.File("foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    before = Path("foreign.h5").read_bytes()
    code = main(["surface", str(run_dir / "run/epoch_0002.pt"), "--x=-1:1:3", "--out",
                 "foreign.h5", "--no-progress"])
    _assert_one_line_error(code, capsys.readouterr().err)
    assert Path("foreign.h5").read_bytes() == before


def test_existing_result_with_other_recipe_is_kept(run_dir, capsys, monkeypatch):
    monkeypatch.chdir(run_dir)
    assert main(["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--out", "keep.h5",
                 "--no-progress"]) == 0
    before = Path("keep.h5").read_bytes()
    code = main(["surface", "run/epoch_0002.pt", "--x=-1:1:5", "--out", "keep.h5",
                 "--no-progress"])
    err = capsys.readouterr().err
    _assert_one_line_error(code, err)
    assert "--overwrite" in err
    assert Path("keep.h5").read_bytes() == before
    assert main(["surface", "run/epoch_0002.pt", "--x=-1:1:5", "--out", "keep.h5",
                 "--no-progress", "--overwrite"]) == 0
    assert Surface.load("keep.h5").shape == (5,)


def test_help_has_examples(capsys):
    assert main(["surface", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out


def test_output_piped_into_head_stops_quietly(run_dir, monkeypatch, capsys):
    """A closed stdout (``landscape info F.h5 | head -1``) is not an error."""
    monkeypatch.chdir(run_dir)
    assert main(["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--out", "pipe.h5",
                 "--no-progress"]) == 0
    capsys.readouterr()

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info", "pipe.h5"]) == 0
    assert "Broken pipe" not in capsys.readouterr().err


def test_negative_grid_after_a_space_is_accepted(run_dir, monkeypatch):
    """`--x -1:1:3` (space, not '=') is what people type; argparse alone rejects it."""
    monkeypatch.chdir(run_dir)
    assert main(["surface", "run/epoch_0002.pt", "--x", "-1:1:3", "--y", "-.5:.5:3", "--out",
                 "space.h5", "--no-progress"]) == 0
    s = Surface.load("space.h5")
    assert s.recipe["grid"] == {"x": "-1:1:3", "y": "-0.5:0.5:3"}


def test_train_interrupt_messages_are_true(tmp_path, monkeypatch, capsys):
    """Ctrl-C before the first checkpoint: nothing saved; after epoch 1: resumable; the same
    command then resumes after epoch 1."""
    import landscape.training as training

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    argv = ["train", "--model", "mlp", "--model-kwargs", '{"width": 8, "depth": 1}',
            "--epochs", "3", "--subset", "64", "--out", "r", "--no-progress"]
    real_evaluate, real_epoch = training._evaluate, training._Trainer.train_epoch

    def evaluate_interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_evaluate", evaluate_interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err == "landscape train: interrupted; nothing was saved\n"
    monkeypatch.setattr(training, "_evaluate", real_evaluate)

    def epoch_2_interrupted(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self)

    monkeypatch.setattr(training._Trainer, "train_epoch", epoch_2_interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err == ("landscape train: interrupted; checkpoints up to epoch 1 "
                                       "are saved in 'r', run the same command again to "
                                       "resume\n")
    monkeypatch.setattr(training._Trainer, "train_epoch", real_epoch)
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out.startswith("resumed after epoch 1: wrote 2 checkpoints to r (4 in all; final: ")


def test_subset_surface_says_how_far_it_is_from_the_run_data(run_dir, monkeypatch, capsys):
    monkeypatch.chdir(run_dir)
    assert main(["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--subset", "100", "--out",
                 "sub.h5", "--no-progress", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "subset check: train loss at the origin: subset " in out
    s = Surface.load(run_dir / "sub.h5")
    c = s.subset_check["train"]
    # the run trained on 400 samples (its own --subset): that is the full data here
    assert (c["subset_n"], c["full_n"]) == (100, 400)
    ck = load_checkpoint(run_dir / "run/epoch_0002.pt")
    whole = evaluate(ck.model, load_data("digits", "train").subset(400))
    assert c["full_loss"] == pytest.approx(whole.loss, rel=1e-6)
    assert c["subset_loss"] == s["train_loss"][1]
    assert main(["info", "sub.h5"]) == 0
    assert s.subset_lines()[1] in capsys.readouterr().out
    assert main(["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--subset", "100", "--out",
                 "sub2.h5", "--no-progress", "--batch-size", "64", "--no-full-check"]) == 0
    assert Surface.load(run_dir / "sub2.h5").subset_check is None


def test_hessian_directions_surface_beside_the_random_one(run_dir, monkeypatch, capsys):
    monkeypatch.chdir(run_dir)
    base = ["surface", "run/epoch_0002.pt", "--x=-1:1:3", "--y=-1:1:3", "--no-progress",
            "--batch-size", "64", "--hessian-samples", "64", "--out", "hs.h5"]
    assert main(base[:-2] + ["--out", "hs.h5"]) == 0  # the random surface first
    assert main([*base, "--directions", "hessian"]) == 0
    out = capsys.readouterr().out
    assert "wrote hs.h5 (/hessian_surface): 2D 3x3 surface along the Hessian's top " \
           "eigenvectors (eigenvalues " in out
    h = Surface.load(run_dir / "hs.h5", "hessian_surface")
    r = h.directions.recipe
    assert r["pair"] == "top" and r["n_samples"] == 64 and len(r["eigenvalues"]) == 2
    assert r["eigenvalues"][0] >= r["eigenvalues"][1] and all(r["converged"])
    assert Surface.load(run_dir / "hs.h5").directions.recipe["kind"] == "random"
    assert main(["info", "hs.h5"]) == 0
    assert "hessian surface: 3x3 grid along the Hessian's top eigenvectors (eigenvalues " \
        f"{r['eigenvalues'][0]:.6g}" in capsys.readouterr().out
    assert main([*base, "--directions", "hessian-topbottom"]) == 2  # resume refuses it
    assert "differs in: pair" in capsys.readouterr().err
    assert main([*base, "--directions", "hessian-topbottom", "--overwrite"]) == 0
    lam = Surface.load(run_dir / "hs.h5", "hessian_surface").directions.recipe["eigenvalues"]
    assert lam[0] == pytest.approx(r["eigenvalues"][0], rel=1e-6) and lam[1] < lam[0]
    # --overwrite replaced the Hessian group only: the random surface is still there
    assert Surface.load(run_dir / "hs.h5").directions.recipe["kind"] == "random"
    capsys.readouterr()
    for extra, msg in ((["--plane", "run/epoch_0000.pt", "run/epoch_0001.pt"], "--plane"),
                       (["--norm", "layer"], "--norm"), (["--n-directions", "2"], "--n-dir")):
        assert main([*base, "--directions", "hessian", *extra]) == 2
        assert msg in capsys.readouterr().err
