"""A zoo model through the whole toolkit: train a few epochs, then surface, hessian, trajectory
and probe through the CLI (in-process), on a small data subset."""

from __future__ import annotations

import math
from pathlib import Path

from landscape.cli import main as cli_main

from landscape.data import DataSpec
from landscape.models import ModelSpec
from landscape.training import TrainConfig, TrainRun, train


def train_tiny(tmp: Path, spec: ModelSpec, data: DataSpec, epochs: int = 3,
               lr: float = 0.05) -> TrainRun:
    """``epochs`` epochs of SGD on ``data`` (one thread), every epoch checkpointed."""
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=lr, seed=0)
    return train(spec, data, cfg, tmp / "run", progress=False)


def through_the_pipeline(tmp: Path, run: TrainRun, capsys, *, loss: str | None = None,
                         probe: str | None = "ok") -> str:
    """surface (3x3), hessian (top-1), trajectory (PCA plane, 3x3) and probe of ``run``'s last
    checkpoint through ``landscape.cli``; every command must succeed (``probe="refused"``: the
    probe must refuse the model with one line, exit 2). Returns the probe's stdout/stderr."""
    ck = str(run.final)
    extra = ["--loss", loss] if loss else []
    common = ["--no-progress"]
    assert cli_main.main(["surface", ck, "--x=-1:1:3", "--y=-1:1:3", "--out",
                          str(tmp / "s.h5"), *extra, *common]) == 0, capsys.readouterr().err
    assert cli_main.main(["hessian", ck, "--top-k", "1", "--out", str(tmp / "h.h5"), *extra,
                          *common]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    lam = float(out.split("top-1 eigenvalues")[1].split(":")[1].split()[0])
    assert math.isfinite(lam)
    assert cli_main.main(["trajectory", str(tmp / "run"), "--surface", "--x=-1:1:3",
                          "--y=-1:1:3", "--out", str(tmp / "t.h5"), *extra, *common]) == 0, \
        capsys.readouterr().err
    capsys.readouterr()
    rc = cli_main.main(["probe", ck, "--out", str(tmp / "m.h5")])
    text = capsys.readouterr()
    if probe == "refused":
        assert rc == 2, text.out
        assert len(text.err.strip().splitlines()) == 1, text.err
        return text.err
    assert rc == 0, text.err
    return text.out
