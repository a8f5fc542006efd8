"""``landscape connect``: output, resume, one-line errors."""

from __future__ import annotations

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
