"""The main job: `landscape demo --quick` end to end, then a resume that recomputes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

VERDICTS = {"reproduces", "does not reproduce", "not testable here"}


def _tiny_study():
    from landscape.study import StudyConfig

    # the quick study's nets with 2 epochs and tiny grids: every step of the default study
    # (sharpening included) in seconds
    return StudyConfig(depths=(8, 14), seeds=(2, 2), epochs=(2, 2), eval_subset=64,
                       grid="-1:1:5", top_k=1, trace_samples=3, fn_directions=2,
                       sharpening_every=2)


def test_study_end_to_end_and_resume(tmp_path):
    """The depth study behind `landscape demo`: every network, the seed-level tables, the
    claims, the report; then a resume that recomputes nothing."""
    from landscape.study import run_study

    out = tmp_path / "study"
    report = run_study(out, _tiny_study(), progress=False, log=None)
    doc = json.loads((out / "report" / "report.json").read_text())
    assert {c["verdict"] for c in doc["claims"]} <= VERDICTS
    assert len(doc["claims"]) == len(report.claims) >= 10
    for depth in ("8", "14"):
        conv = doc["conv"][depth]
        assert conv["arms"] == ["residual", "plain"]
        assert conv["summaries"]["lambda_max"]["plain"]["n"] == 2
        assert (out / "report" / f"d{depth}" / "arms.md").exists()
    assert "sharpening_peak_over_threshold" in doc["conv"]["8"]["summaries"]
    md = (out / "report" / "report.md").read_text()
    assert md.index("## Claims") < md.index("## 8 layers, at convergence")
    html = (out / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    assert (out / "report" / "training_curves.png").stat().st_size > 1000
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    again = run_study(out, _tiny_study(), progress=False, log=None)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.h5")} == before
    assert [c.verdict for c in again.claims] == [c.verdict for c in report.claims]


def test_study_refuses_foreign_or_other_directories(tmp_path):
    from landscape.errors import LandscapeError
    from landscape.study import StudyConfig, run_study

    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(LandscapeError, match="a study .demo. output .with study_config.json"):
        run_study(tmp_path, _tiny_study(), progress=False, log=None)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(LandscapeError, match="at least two seeds"):
        StudyConfig(seeds=(1, 2))


def test_readme_claims_block_is_generated_from_the_committed_report():
    """The README's results block is the claims table of docs/demo/report.json (the committed
    `landscape demo` run), as StudyReport.readme_table gives it."""
    from pathlib import Path

    from landscape.report import update_readme
    from landscape.study import StudyReport

    repo = Path(__file__).resolve().parents[1]
    rep = StudyReport.load(repo / "docs" / "demo" / "report.json")
    assert update_readme(repo / "README.md", rep, link="docs/demo/report.md", check=True), (
        "README.md's results block is stale: run python -c \"from landscape.report import "
        "update_readme; from landscape.study import StudyReport; update_readme('README.md', "
        "StudyReport.load('docs/demo/report.json'), link='docs/demo/report.md')\"")
    assert {c.verdict for c in rep.claims} <= VERDICTS and len(rep.claims) >= 10


@pytest.mark.slow
def test_quick_demo_through_the_cli(tmp_path):
    """`landscape demo --quick` as a user runs it, through the installed CLI (about a minute)."""
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "landscape.cli", "demo", "--quick", "--out", str(out),
           "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)  # a hang guard
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| claim | verdict |" in r.stdout
    doc = json.loads((out / "report" / "report.json").read_text())
    assert {c["verdict"] for c in doc["claims"]} <= VERDICTS


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
    assert set(PAIRS) == {"resnet56", "preresnet56", "densenet", "vit", "gpt", "unet", "highway",
                          "resnext", "stochastic-depth"}
    sd = DemoConfig.for_pair("stochastic-depth")
    assert sd.model == "resnet56" and sd.train.stochastic_depth == 0.5
    assert [(n, t.stochastic_depth) for n, _, t in sd.arms()] == [("stochastic_depth", 0.5),
                                                                  ("residual", 0.0)]
    assert [n for n, _, _ in DemoConfig().arms()] == ["residual", "plain"]
    unet = DemoConfig.for_pair("unet", quick=True)
    assert unet.loss == "mse" and unet.data == "digits-denoise"
    assert unet.to_dict()["loss"] == "mse" and "loss" not in DemoConfig.for_pair("vit").to_dict()


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


def test_quick_unet_pair_end_to_end(tmp_path):
    """`landscape demo --pair unet --quick`: U-Net with and without its long skips, denoising
    digits, every measurement in mean squared error (no accuracy)."""
    out, report = _quick_pair(tmp_path, "unet")
    for row in report["metrics"].values():
        assert row["test_acc"] is None and row["train_loss"] < 0.25  # below the noise's MSE
    run = json.loads((out / "runs" / "plain" / "run.json").read_text())
    assert run["data"]["name"] == "digits-denoise"
    from landscape.surface import Surface

    assert Surface.load(out / "residual.h5").recipe["loss"] == "mse"


def test_quick_highway_pair_end_to_end(tmp_path):
    """`landscape demo --pair highway --quick`: carry paths vs none; the gates are probed."""
    out, report = _quick_pair(tmp_path, "highway")
    from landscape.mechanisms import GateResult

    for name in ("residual", "plain"):
        g = GateResult.load(out / f"{name}.h5")
        assert len(g.mean_gate) == 10 and g.carry == [name == "residual"] * 10
    assert (out / "report" / "mechanisms_gates.png").stat().st_size > 1000


def test_quick_resnext_pair_end_to_end(tmp_path):
    """`landscape demo --pair resnext --quick`: ResNeXt with and without shortcuts, with the
    block analyses (lesion, paths, ...) of its bottlenecks."""
    out, report = _quick_pair(tmp_path, "resnext")
    from landscape.mechanisms import load_results

    assert {"lesion", "paths", "shatter"} <= set(load_results(out / "residual.h5"))
