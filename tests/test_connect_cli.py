"""``landscape connect``: output, resume, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from landscape.cli.main import main

from landscape.checkpoints import file_sha256, load_checkpoint, save_checkpoint
from landscape.connect import Connectivity
from landscape.models import ModelSpec

pytestmark = pytest.mark.usefixtures("one_thread")

_DATA = {"name": "digits", "root": None, "subset": 40, "kwargs": {}}


def _ckpt(path, seed: int, **kwargs) -> str:
    spec = ModelSpec("mlp", {"width": 8, "depth": 1, **kwargs})
    torch.manual_seed(seed)
    save_checkpoint(path, spec.build(), spec, data=_DATA)
    return str(path)


@pytest.fixture()
def pair(tmp_path):
    return _ckpt(tmp_path / "a.pt", 0), _ckpt(tmp_path / "b.pt", 1)


def test_connect_writes_barriers_and_resumes(tmp_path, pair, capsys):
    a, b = pair
    out = tmp_path / "ab.h5"
    args = ["connect", a, b, "--steps", "10", "--points", "5", "--train-batch-size", "16",
            "--out", str(out), "--no-progress", "--flush-seconds", "0"]
    assert main([*args, "--max-points", "3"]) == 0
    assert "3/10 points" in capsys.readouterr().out
    bend = tmp_path / "bend.pt"
    assert main([*args, "--save-bend", str(bend)]) == 0
    text = capsys.readouterr().out
    assert "10/10 points" in text and "bn=recalibrate" in text
    assert "barriers: " in text and "line_train_loss" in text
    res = Connectivity.load(out)
    assert res.complete and res.recipe["checkpoint_sha256"] == file_sha256(a)
    assert res.recipe["checkpoint_b_sha256"] == file_sha256(b)
    assert res.recipe["curve"] == "bezier" and res.recipe["steps"] == 10
    assert res.recipe["t"]["num"] == 5 and res.recipe["bn"] == "recalibrate"
    assert np.isfinite(res.arrays["test_loss"]).all()
    # another recipe: refused in one line, the file kept
    code = main([*args, "--steps", "11"])
    err = capsys.readouterr().err
    assert code == 2 and "different recipe" in err and len(err.strip().splitlines()) == 1
    assert Connectivity.load(out).recipe["steps"] == 10
    # the bend is a checkpoint of A's architecture holding the stored bend
    ckpt = load_checkpoint(bend)
    np.testing.assert_array_equal(
        torch.cat([p.detach().reshape(-1) for p in ckpt.model.parameters()]).numpy(),
        res.bends[0])
    assert main([*args, "--save-bend", str(bend)]) == 2  # never replaced
    assert "never replaced" in capsys.readouterr().err


def test_connect_line_only_and_bad_inputs(tmp_path, pair, capsys):
    a, b = pair
    out = tmp_path / "line.h5"
    assert main(["connect", a, b, "--curve", "none", "--points", "3", "--out", str(out),
                 "--no-progress"]) == 0
    assert Connectivity.load(out).paths == ("line",)
    capsys.readouterr()
    assert main(["connect", a, a, "--out", str(tmp_path / "x.h5")]) == 2
    assert "same checkpoint" in capsys.readouterr().err
    plain = _ckpt(tmp_path / "plain.pt", 2, shortcut=False)
    assert main(["connect", a, plain, "--out", str(tmp_path / "x.h5")]) == 2
    assert "one architecture" in capsys.readouterr().err
    assert main(["connect", a, b, "--out", a]) == 2
    assert "destroy" in capsys.readouterr().err
    assert main(["connect", a, b, "--points", "2"]) == 2
    assert main(["connect", "--help"]) == 0


def test_connect_trains_the_curve_on_streamed_data(tmp_path, pair, capsys, monkeypatch):
    """--data package.module:fn returning a DataLoader: the curve is trained on the stream
    read into memory (the same bends as from the same samples in memory); an endless stream
    is refused in one line -- never an internal error."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    a, b = pair
    common = ["connect", a, b, "--steps", "6", "--points", "3", "--train-batch-size", "16",
              "--splits", "train", "--no-progress"]
    outs = {}
    for name in ("tiny_loader", "tiny_arrays"):
        outs[name] = tmp_path / f"{name}.h5"
        code = main([*common, "--data", f"tests._datasets:{name}", "--out", str(outs[name])])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "internal error" not in err and "barriers: " in out
    stream, mem = (Connectivity.load(outs[k]) for k in ("tiny_loader", "tiny_arrays"))
    assert stream.complete and stream.recipe["n_train"] == 48
    np.testing.assert_array_equal(stream.bends, mem.bends)
    assert stream.num_classes == mem.num_classes is not None
    code = main([*common, "--data", "tests._datasets:endless_loader",
                 "--out", str(tmp_path / "endless.h5")])
    out, err = capsys.readouterr()
    assert code == 2 and "internal error" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_spawned_runs_from_the_cli_then_connected(tmp_path, capsys, monkeypatch):
    """The docs' recipe: a parent run, two runs spawned from its epoch-1 checkpoint with two
    seeds (--init), then connect their final checkpoints."""
    monkeypatch.chdir(tmp_path)
    common = ["train", "--model", "mlp", "--model-kwargs", '{"width": 8, "depth": 1}',
              "--subset", "64", "--batch-size", "16", "--epochs", "1", "--no-progress"]
    assert main([*common, "--out", "runs/a"]) == 0
    for seed in (1, 2):
        assert main([*common, "--init", "runs/a/epoch_0001.pt", "--seed", str(seed),
                     "--out", f"runs/spawn{seed}"]) == 0
    capsys.readouterr()
    w = [load_checkpoint(f"runs/spawn{s}/epoch_0000.pt").model.state_dict() for s in (1, 2)]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])
    code = main(["connect", "runs/spawn1/epoch_0001.pt", "runs/spawn2/epoch_0001.pt",
                 "--curve", "none", "--points", "3", "--splits", "train", "--subset", "64",
                 "--out", "spawned.h5", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "barriers: " in out
    assert Connectivity.load("spawned.h5").num_classes == 10
    # another architecture: one line, exit 2, nothing written
    code = main(["train", "--model", "mlp", "--model-kwargs", '{"width": 4, "depth": 1}',
                 "--subset", "64", "--epochs", "1", "--no-progress",
                 "--init", "runs/a/epoch_0001.pt", "--out", "runs/bad"])
    err = capsys.readouterr().err
    assert code == 2 and "same architecture" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "bad").exists()


def test_connect_flags_a_barrier_at_chance(tmp_path, capsys):
    """A and B = -A (every parameter negated): the midpoint of the line is the zero network,
    whose logits are 0 -- loss exactly ln 10 -- so the line's barrier is flagged at chance."""
    a = _ckpt(tmp_path / "a.pt", 0)
    ckpt = load_checkpoint(a)
    with torch.no_grad():
        for p in ckpt.model.parameters():
            p.neg_()
    b = tmp_path / "neg.pt"
    save_checkpoint(b, ckpt.model, ckpt.spec, data=_DATA)
    out = tmp_path / "line.h5"
    assert main(["connect", a, str(b), "--curve", "none", "--points", "3", "--splits",
                 "train", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "at chance (ln 10 = 2.303): line_train_loss" in text
    assert "the barrier is ln C minus the end loss: uninformative" in text
    res = Connectivity.load(out)
    assert res.values("line", "train_loss")[1] == pytest.approx(np.log(10), rel=1e-6)
