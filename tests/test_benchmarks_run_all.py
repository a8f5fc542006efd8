"""benchmarks/run_all.py: every benchmark it names exists and takes the options it passes."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_benchmark_takes_the_options_run_all_passes():
    mod = _run_all()
    for name, (script, full, quick, seconds, pattern) in mod.BENCHMARKS.items():
        source = (BENCH / script).read_text()
        for flag in [a for a in [*full, *quick, "--device"] if a.startswith("--")]:
            assert re.search(rf"add_argument\(\s*\"{re.escape(flag)}\"", source), (name, flag)
        assert seconds > 0 and re.compile(pattern)


def test_unknown_benchmark_is_one_line_and_exit_2(capsys, tmp_path):
    assert _run_all().main(["--only", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
