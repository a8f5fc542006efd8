"""The README's tour runs as written: every command of its bash block, then its Python block.

The block is taken from the README itself (the section "A short tour"), so the README cannot
drift from what the tool does: a renamed flag, a file the tour never wrote or a refusal
(different recipes, an existing file) fails here. Commands run in order, in one fresh
directory, as a user would type them; each must exit 0. The first runs through the installed
``landscape`` entry point and ``torchrun`` commands through ``torchrun``; the other
``landscape`` commands run one after another in one Python process through the same
``landscape.cli.main.main(argv)`` the entry point calls (the tool keeps no global state, and
this saves a torch import of ~2.5 s per command, a third of the test's time).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no section '## {title}'"
    return m.group(1)


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", section, re.S | re.M)


def tour_commands() -> list[str]:
    """The commands of the tour's bash block (comments and blank lines dropped)."""
    (block,) = _blocks(_section(README.read_text(encoding="utf-8"), "A short tour"), "bash")
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def tour_python() -> str:
    (block,) = _blocks(_section(README.read_text(encoding="utf-8"), "A short tour"), "python")
    return block


#: Runs ``landscape`` command lines (JSON list in argv[1]) in this one process, in order, and
#: stops at the first that does not exit 0, printing ``{"cmd": ..., "rc": ...}`` per command.
_DRIVER = """
import json, shlex, sys
from landscape.cli.main import main
for cmd in json.loads(sys.argv[1]):
    print(f"$ {cmd}", file=sys.stderr, flush=True)
    rc = main(shlex.split(cmd)[1:])
    print(json.dumps({"cmd": cmd, "rc": rc}), flush=True)
    if rc != 0:
        sys.exit(1)
"""


def _plain(cmd: str) -> bool:
    """Whether a command line is one program call (no pipes, redirections, lists, expansions)."""
    return not any(ch in cmd for ch in "|&;<>$`*?(){}")


def _run_in_one_process(cmds: list[str], cwd: Path, env: dict[str, str]) -> None:
    r = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(cmds)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=3000)
    done = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith('{"cmd"')]
    failed = [d for d in done if d["rc"] != 0]
    assert r.returncode == 0 and not failed and len(done) == len(cmds), (
        f"{failed or cmds[len(done):len(done) + 1]}\nexit {r.returncode}\n{r.stderr[-2000:]}")


def test_the_tour_is_there_and_uses_the_installed_commands() -> None:
    cmds = tour_commands()
    assert len(cmds) >= 15
    for c in cmds:
        assert shlex.split(c)[0] in ("landscape", "torchrun"), c


@pytest.mark.skipif(shutil.which("landscape", path=str(BIN)) is None,
                    reason="the landscape entry point is not installed in this environment")
def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LANDSCAPE_DEBUG"}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    batch: list[str] = []
    for i, cmd in enumerate(tour_commands()):
        if i > 0 and shlex.split(cmd)[0] == "landscape" and _plain(cmd):
            batch.append(cmd)
            continue
        if batch:
            _run_in_one_process(batch, tmp_path, env)
            batch = []
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600, executable="/bin/bash")
        assert r.returncode == 0, f"{cmd}\nexit {r.returncode}\n{r.stderr[-2000:]}"
    if batch:
        _run_in_one_process(batch, tmp_path, env)
    assert (tmp_path / "report" / "report.html").is_file()
    assert any((tmp_path / "figs").iterdir())
    r = subprocess.run([sys.executable, "-c", tour_python()], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


def test_own_model_section_runs_as_written(tmp_path: Path) -> None:
    """The 'Your own model' section: its Python setup, its commands, its Python API block."""
    pytest.importorskip("transformers")
    if shutil.which("landscape", path=str(BIN)) is None:
        pytest.skip("the landscape entry point is not installed in this environment")
    section = _section(README.read_text(encoding="utf-8"), "Your own model")
    setup, api = _blocks(section, "python")
    (bash,) = _blocks(section, "bash")
    env = {k: v for k, v in os.environ.items() if k != "LANDSCAPE_DEBUG"}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["MPLBACKEND"] = "Agg"
    for code in (setup,):
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
    for cmd in [ln.strip() for ln in bash.splitlines() if ln.strip()]:
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600, executable="/bin/bash")
        assert r.returncode == 0, f"{cmd}\nexit {r.returncode}\n{r.stderr[-2000:]}"
    r = subprocess.run([sys.executable, "-c", api], cwd=tmp_path,
                       env={**env, "PYTHONPATH": str(tmp_path)}, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
