"""The main job: `landscape demo --quick` end to end, then a resume that recomputes nothing."""

from __future__ import annotations

import json
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
