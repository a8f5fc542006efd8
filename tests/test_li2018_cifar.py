"""benchmarks/li2018_cifar.py end to end on a tiny generated CIFAR-10 folder, on the CPU.

The folder holds the six python-pickle batches the ``cifar10`` loader of
:mod:`landscape.data` reads (``data_batch_1`` ... ``data_batch_5``, ``test_batch`` and
``batches.meta``), a few random uint8 3x32x32 images each.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "li2018_cifar.py"
_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _script():
    spec = importlib.util.spec_from_file_location("li2018_cifar", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["li2018_cifar"] = mod  # dataclasses look their module up while building
    spec.loader.exec_module(mod)
    return mod


def _write_cifar(folder: Path, n: int = 12) -> None:
    """The python version of CIFAR-10 in miniature: ``n`` random images per batch."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(_FILES):
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = [(i + k) % 10 for i in range(n)]
        obj = {b"batch_label": name.encode(), b"data": data, b"labels": labels,
               b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(obj, protocol=4))
    meta = {b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": n,
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=4))


_TINY = ["--depths", "20", "--seeds", "2", "--epochs", "1", "--grid", "-1:1:3",
         "--ratio-grid", "-1:1:3", "--train-subset", "24", "--eval-subset", "20",
         "--hessian-subset", "16", "--width", "0.25", "--batch-size", "8",
         "--trace-samples", "6", "--tol", "1e-2", "--max-hvp", "60", "--device", "cpu",
         "--no-progress"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny protocol run once: (module, cifar root, out dir, stdout of each run)."""
    mod = _script()
    tmp = tmp_path_factory.mktemp("li2018")
    root = tmp / "cifar"
    _write_cifar(root / "cifar-10-batches-py")
    out = tmp / "out"
    args = ["--cifar-root", str(root), "--out", str(out), *_TINY]
    assert mod.main(args) == 0
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert mod.main(args) == 0  # everything done: resumes, i.e. skips
    return mod, root, out, args, mtimes


def test_end_to_end_writes_every_file_and_the_seed_level_table(finished):
    mod, root, out, args, _ = finished
    for arm in ("residual", "plain"):
        for s in (0, 1):
            run = json.loads((out / "runs" / "d20" / arm / f"seed_{s}" / "run.json")
                             .read_text())
            assert run["status"] == "complete"
            cfg = run["config"]
            assert (cfg["nesterov"], cfg["momentum"], cfg["schedule"], cfg["lr"],
                    cfg["weight_decay"], cfg["seed"]) == (True, 0.9, "step", 0.1, 5e-4, s)
            assert run["model"] == {"name": "resnet20",
                                    "kwargs": {"shortcut": arm == "residual", "width": 0.25}}
            for f in mod._files(out, 20, arm, s):
                assert f.is_file(), f
            from landscape import storage

            stem = out / "nets" / f"d20_{arm}_s{s}"
            assert {"surface", "curvature"} <= set(storage.list_groups(f"{stem}.h5"))
            assert {"surface", "ratio_map"} <= set(storage.list_groups(f"{stem}_ratio.h5"))
            doc = json.loads(Path(f"{stem}.json").read_text())
            assert doc["lr"] == 0.1 and 0 <= doc["test_error_pct"] <= 100
            assert "gradient_gain" in doc["stationarity"]
    arms = json.loads((out / "compare" / "d20" / "arms.json").read_text())
    assert arms["arms"] == ["residual", "plain"]
    assert arms["seeds"] == {"residual": ["residual/s0", "residual/s1"],
                             "plain": ["plain/s0", "plain/s1"]}
    for metric in ("lambda_max", "test_error_pct", "final_train_loss"):
        vals = arms["values"][metric]
        assert len(vals["residual"]) == 2 and len(vals["plain"]) == 2
        assert arms["summaries"][metric]["residual"]["n"] == 2
        assert "verdict_shown" in arms["differences"][metric]
    # the seed-level numbers are the per-seed files' numbers
    err = [json.loads((out / "nets" / f"d20_plain_s{s}.json").read_text())["test_error_pct"]
           for s in (0, 1)]
    assert arms["values"]["test_error_pct"]["plain"] == pytest.approx(err)
    md = (out / "compare" / "d20" / "arms.md").read_text()
    assert "residual − plain" in md and "| lambda_max |" in md
    summary = (out / "summary.md").read_text()
    assert "| resnet20 | residual | 0.1 |" in summary and "| 7.37 |" in summary
    assert "| resnet20 | plain | 0.1 |" in summary and "| 8.18 |" in summary
    assert "no data augmentation" in summary
    doc = json.loads((out / "summary.json").read_text())
    assert doc["depths"]["20"]["plain"]["paper_test_error_pct"] == 8.18
    assert len(doc["depths"]["20"]["residual"]["test_error_pct"]) == 2


def test_second_run_resumes_without_recomputing(finished):
    _, _, out, _, mtimes = finished
    for p, t in mtimes.items():
        if p.suffix in (".pt", ".h5") or p.name in ("run.json", "plan.json"):
            assert p.stat().st_mtime_ns == t, p


def test_other_settings_in_the_same_out_are_refused(finished, capsys):
    mod, _, _, args, _ = finished
    other = [*args]
    other[other.index("--seeds") + 1] = "3"
    assert mod.main(other) == 2
    assert "other settings (seeds)" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_computes_nothing(tmp_path, capsys):
    mod = _script()
    root = tmp_path / "cifar"
    _write_cifar(root)
    out = tmp_path / "out"
    assert mod.main(["--cifar-root", str(root), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert "six python batches are there" in text
    assert text.count("seed ") == 18  # 3 depths x 2 arms x 3 seeds
    assert "resnet56 plain    seed 0  lr 0.01" in text
    assert "resnet110 plain    seed 2  lr 0.01" in text
    assert "resnet20 plain    seed 1  lr 0.1" in text
    assert "resnet110 residual seed 0  lr 0.1" in text
    assert "lr x0.1 from epochs [151, 226]" in text
    assert "nets/d56_plain_s1.h5" in text and "compare/d110/arms.md" in text
    assert "surface -1:1:51" in text and "ratio map -1:1:13" in text
    assert "not measured" in text and "GPU hours" in text
    est = mod.estimate(mod.Plan.from_args(mod._parser().parse_args(
        ["--cifar-root", str(root), "--out", str(out)])))
    assert f"total: {est['total_hours']:.1f} GPU hours" in text
    # 18 networks, each at least its 300 epochs of training
    low = sum(6 * 300 * mod.COSTS[d]["epoch"] for d in (20, 56, 110)) / 3600
    assert est["total_hours"] > low


def test_dry_run_warns_about_a_folder_without_cifar(tmp_path, capsys):
    mod = _script()
    assert mod.main(["--cifar-root", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--dry-run", "--depths", "20"]) == 0
    assert "WARNING: CIFAR-10 files missing" in capsys.readouterr().out


def test_bad_depth_is_one_line_and_exit_2(tmp_path, capsys):
    mod = _script()
    assert mod.main(["--cifar-root", str(tmp_path), "--out", str(tmp_path),
                     "--depths", "32", "--dry-run"]) == 2
    assert "--depths takes [20, 56, 110]" in capsys.readouterr().err


def test_quick_check_plan_and_rescaled_estimate(tmp_path):
    mod = _script()
    base = ["--cifar-root", str(tmp_path), "--out", str(tmp_path)]
    full = mod.Plan.from_args(mod._parser().parse_args(base))
    quick = mod.Plan.from_args(mod._parser().parse_args([*base, "--quick-check"]))
    assert (full.seeds, full.epochs, full.grid, full.ratio_grid) == (3, 300, "-1:1:51",
                                                                     "-1:1:13")
    assert (quick.seeds, quick.epochs, quick.grid, quick.ratio_grid) == (2, 1, "-1:1:5",
                                                                         "-1:1:3")
    assert quick.train_subset is None  # the epoch it times is a whole one
    assert (quick.eval_subset, quick.hessian_subset) == (1000, 500)
    one, two = mod.estimate(full), mod.estimate(full, {20: 2.0, 56: 2.0, 110: 2.0})
    assert two["total_hours"] == pytest.approx(2 * one["total_hours"])
    assert mod._grid_args(["--grid", "-1:1:51", "--ratio-grid", "-1:1:13"]) == [
        "--grid=-1:1:51", "--ratio-grid=-1:1:13"]
