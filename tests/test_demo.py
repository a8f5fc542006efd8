"""The main job: `landscape demo --quick` end to end, then a resume that recomputes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from landscape.report import METRIC_KEYS


def test_quick_demo_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "landscape.cli", "demo", "--quick", "--out", str(out),
           "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report" / "report.json").read_text())
    table = report["metrics"]
    assert set(table) == {"residual", "plain"}
    for name, row in table.items():
        for key in METRIC_KEYS:
            assert key in row, (name, key)
        for key in ("lambda_max", "lambda_min", "trace", "eps_sharpness", "basin_width_x",
                    "basin_width_y", "convex_area_fraction", "pc1_pc2",
                    "n_components_for_90", "train_acc", "test_acc", "local_minima"):
            assert isinstance(row[key], int | float), (name, key, row[key])
    for fig in ("surface_contour.png", "trajectory.png", "ratio_map.png", "density.png"):
        assert (out / "report" / fig).stat().st_size > 1000, fig
    assert (out / "report" / "report.html").exists() and (out / "report" / "report.md").exists()
    # the same command again resumes: every step is already done
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert time.perf_counter() - t < 60
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.h5")} == before


def test_pairs_keep_the_default_demo_unchanged():
    from landscape.demo import PAIRS, DemoConfig

    assert DemoConfig.for_pair() == DemoConfig()
    assert DemoConfig.for_pair("resnet56", quick=True) == DemoConfig.quick()
    # demo_config.json of the default demo has exactly the keys it had before --pair existed
    assert sorted(DemoConfig().to_dict()) == [
        "density_runs", "density_steps", "eval_subset", "grid", "model", "model_kwargs",
        "ratio_grid", "ratio_tol", "top_k", "trace_samples", "train", "trajectory_points"]
    gpt = DemoConfig.for_pair("gpt")
    assert gpt.data == "modadd" and gpt.to_dict()["data_kwargs"] == {"p": 97,
                                                                       "train_fraction": 0.5}
    assert gpt.train.lr == 0.2 and gpt.train.momentum == DemoConfig().train.momentum
    assert set(PAIRS) == {"resnet56", "preresnet56", "densenet", "vit", "gpt"}


def test_quick_vit_pair_end_to_end(tmp_path):
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
        for key in ("lambda_max", "trace", "eps_sharpness", "train_acc", "test_acc"):
            assert isinstance(row[key], int | float), (name, key, row[key])
    for fig in ("surface_contour.png", "trajectory.png", "ratio_map.png", "density.png"):
        assert (out / "report" / fig).stat().st_size > 1000, fig
    run = json.loads((out / "runs" / "plain" / "run.json").read_text())
    assert run["model"] == {"name": "vit", "kwargs": {"width": 32, "depth": 4, "heads": 4,
                                                      "residual": False}}
