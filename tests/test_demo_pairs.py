"""The single-pair demos (`landscape demo --pair NAME --quick`) end to end, each in a
subprocess; apart from tests/test_demo.py so that the test workers share them out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


class TestQuickVitPair:  # a class: its own scope, so workers share the pairs
    def test_end_to_end(self, tmp_path):
        """`landscape demo --pair vit --quick`: the ViT with and without its residual stream."""
        out = tmp_path / "vit"
        cmd = [sys.executable, "-m", "landscape.cli", "demo", "--pair", "vit", "--quick", "--out",
               str(out), "--no-progress"]
        # one thread: about 30 s; torch's threads on a busy 2-core machine made it 10x slower
        env = dict(os.environ, OMP_NUM_THREADS="1")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert '"residual": false' in r.stdout and '"residual": true' in r.stdout
        report = json.loads((out / "report" / "report.json").read_text())
        table = report["metrics"]
        assert set(table) == {"residual", "plain"}
        for name, row in table.items():
            for key in ("lambda_max", "trace", "eps_sharpness", "train_acc", "test_acc",
                        "block_heterogeneity"):  # per transformer block (Zhang et al. 2024)
                assert isinstance(row[key], int | float), (name, key, row[key])
        for fig in ("surface_contour.png", "trajectory.png", "ratio_map.png", "density.png"):
            assert (out / "report" / fig).stat().st_size > 1000, fig
        run = json.loads((out / "runs" / "plain" / "run.json").read_text())
        assert run["model"] == {"name": "vit", "kwargs": {"width": 32, "depth": 4, "heads": 4,
                                                          "residual": False}}


@pytest.mark.slow
def test_quick_stochastic_depth_pair_end_to_end(tmp_path):
    """`landscape demo --pair stochastic-depth --quick`: ResNet-20 trained with and without
    stochastic depth, both arms through the whole comparison, lesions and path lengths
    included (about 3 minutes on a quiet 2-core machine)."""
    from landscape.mechanisms import LesionResult, PathLengthResult

    out = tmp_path / "sd"
    cmd = [sys.executable, "-m", "landscape.cli", "demo", "--pair", "stochastic-depth",
           "--quick", "--out", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)  # hang guard
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stochastic depth 0.5" in r.stdout
    report = json.loads((out / "report" / "report.json").read_text())
    assert set(report["metrics"]) == {"stochastic_depth", "residual"}
    runs = {n: json.loads((out / "runs" / n / "run.json").read_text())
            for n in ("stochastic_depth", "residual")}
    assert runs["stochastic_depth"]["config"]["stochastic_depth"] == 0.5
    assert "stochastic_depth" not in runs["residual"]["config"]
    assert runs["stochastic_depth"]["model"] == runs["residual"]["model"]  # both residual
    for name in runs:
        les = LesionResult.load(out / f"{name}.h5")
        paths = PathLengthResult.load(out / f"{name}.h5")
        assert len(les.blocks) == 9 and paths.n_blocks == 9


def _quick_pair(tmp_path, pair):
    out = tmp_path / pair
    cmd = [sys.executable, "-m", "landscape.cli", "demo", "--pair", pair, "--quick", "--out",
           str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)  # hang guard
    assert r.returncode == 0, r.stderr[-3000:]
    assert '"shortcut": false' in r.stdout and '"shortcut": true' in r.stdout
    report = json.loads((out / "report" / "report.json").read_text())
    assert set(report["metrics"]) == {"residual", "plain"}
    for name, row in report["metrics"].items():
        for key in ("lambda_max", "trace", "eps_sharpness"):
            assert isinstance(row[key], int | float), (name, key, row[key])
    assert (out / "report" / "surface_contour.png").stat().st_size > 1000
    return out, report


class TestQuickUnetPair:  # a class: its own scope, so workers share the pairs
    def test_end_to_end(self, tmp_path):
        """`landscape demo --pair unet --quick`: U-Net with and without its long skips, denoising
        digits, every measurement in mean squared error (no accuracy)."""
        out, report = _quick_pair(tmp_path, "unet")
        for row in report["metrics"].values():
            assert row["test_acc"] is None and row["train_loss"] < 0.25  # below the noise's MSE
        run = json.loads((out / "runs" / "plain" / "run.json").read_text())
        assert run["data"]["name"] == "digits-denoise"
        from landscape.surface import Surface

        assert Surface.load(out / "residual.h5").recipe["loss"] == "mse"


class TestQuickHighwayPair:  # a class: its own scope, so workers share the pairs
    def test_end_to_end(self, tmp_path):
        """`landscape demo --pair highway --quick`: carry paths vs none; the gates are probed."""
        out, report = _quick_pair(tmp_path, "highway")
        from landscape.mechanisms import GateResult

        for name in ("residual", "plain"):
            g = GateResult.load(out / f"{name}.h5")
            assert len(g.mean_gate) == 10 and g.carry == [name == "residual"] * 10
        assert (out / "report" / "mechanisms_gates.png").stat().st_size > 1000


class TestQuickResnextPair:  # a class: its own scope, so workers share the pairs
    def test_end_to_end(self, tmp_path):
        """`landscape demo --pair resnext --quick`: ResNeXt with and without shortcuts, with the
        block analyses (lesion, paths, ...) of its bottlenecks."""
        out, report = _quick_pair(tmp_path, "resnext")
        from landscape.mechanisms import load_results

        assert {"lesion", "paths", "shatter"} <= set(load_results(out / "residual.h5"))
