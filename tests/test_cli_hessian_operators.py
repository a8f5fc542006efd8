"""``landscape hessian --operator ggn|fisher`` and ``--blocks``: results, records, refusals."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from landscape.cli import hessian
from landscape.cli import main as cli_main

from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec
from landscape.hessian import BlockSpectra, CurvatureResult
from landscape.models import ModelSpec

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]

SPEC = ModelSpec("mlp", {"width": 8, "depth": 2})
DATA = DataSpec("digits", subset=60)


@pytest.fixture
def cli(monkeypatch):
    parser = cli_main.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "hessian" not in sub.choices:
        hessian.add_parser(sub)
    monkeypatch.setattr(cli_main, "build_parser", lambda commands=None: parser)
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    return cli_main.main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ops") / "m.pt", SPEC.build(), SPEC,
                           data=DATA.to_dict())


def test_operator_is_passed_recorded_and_named(cli, ckpt, tmp_path, capsys):
    out = tmp_path / "g.h5"
    assert cli(["hessian", str(ckpt), "--operator", "ggn", "--top-k", "2", "--trace",
                "--trace-samples", "9", "--out", str(out), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "operator: Gauss-Newton (GGN)"
    res = CurvatureResult.load(out)
    assert res.operator == "ggn" and res.provenance["operator"] == "ggn"
    assert np.all(res.top_eigenvalues > 0)
    # another operator is another recipe: no silent merge into the GGN's group
    assert cli(["hessian", str(ckpt), "--top-k", "1", "--out", str(out), "--no-progress"]) == 2
    assert "operator" in capsys.readouterr().err


def test_blocks_write_their_group(cli, ckpt, tmp_path, capsys):
    out = tmp_path / "b.h5"
    args = ["hessian", str(ckpt), "--blocks", "block", "--operator", "fisher", "--top-k", "1",
            "--trace-samples", "6", "--density-steps", "6", "--density-runs", "1",
            "--out", str(out), "--no-progress"]
    assert cli(args) == 0
    text = capsys.readouterr().out
    assert "per-block spectra of the empirical Fisher (2 blocks, block)" in text
    assert "heterogeneity (mean pairwise Jensen-Shannon distance" in text
    res = BlockSpectra.load(out)
    assert res.block_names == ["blocks.0", "blocks.1"] and res.operator == "fisher"
    assert cli(args) == 2  # an existing group is never replaced silently
    assert "already holds per-block spectra" in capsys.readouterr().err
    assert cli([*args, "--overwrite"]) == 0
    capsys.readouterr()
    assert cli(["hessian", str(ckpt), "--blocks", "blocks.0.*,head.*", "--top-k", "1",
                "--trace-samples", "3", "--density-steps", "3", "--density-runs", "1",
                "--out", str(tmp_path / "g.h5"), "--no-progress"]) == 0
    assert BlockSpectra.load(tmp_path / "g.h5").block_names == ["blocks.0.*", "head.*"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--blocks", "block", "--min"], "drop --min"),
    (["--blocks", "attn-mlp"], "'blocks'"),
    (["--grid", "x.h5", "--operator", "ggn"], "do not apply to --grid"),
])
def test_refusals_are_one_line(cli, ckpt, tmp_path, capsys, extra, message):
    assert cli(["hessian", str(ckpt), "--out", str(tmp_path / "x.h5"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x.h5").exists()
