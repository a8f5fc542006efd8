"""The main job: `landscape demo --quick` end to end, then a resume that recomputes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from landscape.compare import METRIC_KEYS


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
