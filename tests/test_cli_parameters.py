"""CLI: --params / --exclude / --include-frozen for surface, hessian and trajectory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from landscape.cli.main import main

from landscape.checkpoints import save_checkpoint
from landscape.hessian.results import CurvatureResult
from landscape.models import ModelSpec
from landscape.surface import Surface
from landscape.trajectory import load_trajectory

SPEC = ModelSpec("mlp", {"width": 8, "depth": 2})
X = "--x=-0.5:0.5:3"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sel")
    for i in range(3):
        torch.manual_seed(i)
        save_checkpoint(d / f"epoch_{i:04d}.pt", SPEC.build(), SPEC, epoch=i)
    return d


def _names() -> list[str]:
    return [k for k, _ in SPEC.build().named_parameters()]


def test_surface_params_and_exclude(ckpts: Path, monkeypatch) -> None:
    monkeypatch.chdir(ckpts)
    names = _names()
    first = names[0].rsplit(".", 1)[0]
    assert main(["surface", "epoch_0002.pt", X, "--params", f"{first}*", "--exclude",
                 "*.bias", "--subset", "50", "--splits", "train", "--out", "p.h5",
                 "--no-progress"]) == 0
    s = Surface.load(ckpts / "p.h5")
    rec = s.directions.recipe
    assert rec["params"] == [f"{first}*"] and rec["exclude"] == ["*.bias"]
    d = s.directions.vectors[0]
    moved = [k for k, v in d.items() if torch.count_nonzero(v) > 0]
    assert moved == [names[0]]
    # the default recipe has no selection keys
    assert main(["surface", "epoch_0002.pt", X, "--subset", "50", "--splits", "train",
                 "--out", "d.h5", "--no-progress"]) == 0
    assert "params" not in Surface.load(ckpts / "d.h5").directions.recipe
    assert main(["surface", "epoch_0002.pt", X, "--params", "nothing.*", "--out", "e.h5",
                 "--no-progress"]) == 2


def test_hessian_exclude_shrinks_the_operator(ckpts: Path, monkeypatch) -> None:
    monkeypatch.chdir(ckpts)
    common = ["hessian", "epoch_0002.pt", "--top-k", "1", "--subset", "50", "--no-progress"]
    assert main([*common, "--out", "all.h5"]) == 0
    assert main([*common, "--exclude", "*.bias", "--out", "w.h5"]) == 0
    full, weights = CurvatureResult.load(ckpts / "all.h5"), CurvatureResult.load(ckpts / "w.h5")
    n_bias = sum(p.numel() for k, p in SPEC.build().named_parameters() if k.endswith("bias"))
    assert weights.n_params == full.n_params - n_bias
    assert weights.recipe["exclude"] == ["*.bias"] and "exclude" not in full.recipe


def test_trajectory_params(ckpts: Path, monkeypatch) -> None:
    monkeypatch.chdir(ckpts)
    last = [k for k in _names() if k.endswith("weight")][-1]
    assert main(["trajectory", "epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt",
                 "--params", last, "--out", "t.h5", "--no-progress"]) == 0
    t = load_trajectory(ckpts / "t.h5")
    assert t.recipe["params"] == [last]
    moved = [k for k, v in t.directions.vectors[0].items() if torch.count_nonzero(v) > 0]
    assert moved == [last]


def test_interpolation_holds_excluded_tensors(ckpts: Path, monkeypatch) -> None:
    monkeypatch.chdir(ckpts)
    assert main(["surface", "epoch_0000.pt", "--interpolate", "epoch_0002.pt", X,
                 "--exclude", "*.bias", "--subset", "50", "--splits", "train",
                 "--out", "i.h5", "--no-progress"]) == 0
    s = Surface.load(ckpts / "i.h5")
    d = s.directions.vectors[0]
    assert all(torch.count_nonzero(v) == 0 for k, v in d.items() if k.endswith("bias"))
    assert all(torch.count_nonzero(v) > 0 for k, v in d.items() if k.endswith("weight"))
    assert s.directions.recipe["exclude"] == ["*.bias"]
    assert main(["surface", "epoch_0000.pt", "--dir-file", "i.h5", X, "--params", "*",
                 "--out", "j.h5", "--no-progress"]) == 2


def test_trajectory_sorts_out_of_order_checkpoints(ckpts: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ckpts)
    assert main(["trajectory", "epoch_0002.pt", "epoch_0000.pt", "epoch_0001.pt",
                 "--out", "o.h5", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning: the checkpoints are not in training order" in err
    t = load_trajectory(ckpts / "o.h5")
    assert t.epochs.tolist() == [0, 1, 2]
    assert t.checkpoints[-1]["path"].endswith("epoch_0002.pt")
