"""Library messages name parameters; the CLI shows them as its options (issue 26).

Three layers: a static scan of ``landscape/`` (no string literal outside a docstring names a
command-line flag or a ``landscape <command>``, but for the allow-list of
``benchmarks/architecture.py``: the demo's provenance and report text), the translator
``cli._common.flag_message`` on examples, and end-to-end CLI runs whose one-line errors show
the flags that the library's messages name as parameters.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from landscape.cli._common import CALL_COMMANDS, PARAMETER_OPTIONS, flag_message
from landscape.cli.main import build_parser, main

from landscape import storage
from landscape.checkpoints import load_checkpoint, save_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.models import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def _architecture():
    spec = importlib.util.spec_from_file_location("architecture",
                                                  ROOT / "benchmarks" / "architecture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_library_literals_name_no_flag_and_no_command():
    """Only the allow-list (``CLI_WORDS_ALLOWED``: the demo's provenance and report text)."""
    arch = _architecture()
    flags, commands = arch.cli_words()
    assert [h for h in flags if not arch.cli_word_allowed(h)] == []
    assert [h for h in commands if not arch.cli_word_allowed(h)] == []


def test_the_scan_finds_flags_and_commands(tmp_path, monkeypatch):
    """The scan itself: f-strings, implicit concatenation and calls count; docstrings do not."""
    arch = _architecture()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        '"""Module docstring: --out and `landscape surface` are fine here."""\n'
        "def f(name):\n"
        '    """Docstring: --overwrite."""\n'
        '    raise ValueError("pass " "--overwrite to replace it")\n'
        "def g(name):\n"
        '    raise ValueError(f"bad grid --{name}=1")\n'
        "def h():\n"
        "    return \"compute one with 'landscape hessian CKPT'\"\n"
        "def i():\n"
        '    return "the landscape file, a -- dash and x--y"\n'
    )
    monkeypatch.setattr(arch, "ROOT", tmp_path)
    flags, commands = arch.cli_words("pkg")
    assert [h.split(" ", 1)[0] for h in flags] == ["pkg/m.py:4", "pkg/m.py:6"]
    assert [h.split(" ", 1)[0] for h in commands] == ["pkg/m.py:8"]


# ------------------------------------------------------------------------------ translator
@pytest.fixture(scope="module")
def parser():
    return build_parser()


@pytest.mark.parametrize(("command", "message", "expected"), [
    # the scikit-learn form: the option in front, as argparse writes its own errors
    ("hessian", "The 'top_k' parameter must be an int in [0, inf). Got -1 instead.",
     "--top-k: The 'top_k' parameter must be an int in [0, inf). Got -1 instead."),
    ("demo", "The 'out_dir' parameter must be a directory. Got 'f', which is a file.",
     "--out: The 'out_dir' parameter must be a directory. Got 'f', which is a file."),
    # ... and inside a sentence
    ("train", "diverged; lower the learning rate (the 'lr' parameter)",
     "diverged; lower the learning rate (the --lr option)"),
    ("surface", "no tensor is left to perturb: check the 'params' and 'exclude' parameters",
     "no tensor is left to perturb: check the --params and --exclude options"),
    ("surface", "made for another model or another 'what' parameter",
     "made for another model or another --dir-type option"),
    # the call form: flags, values, metavars, negations
    ("surface", "'s.h5' holds a /surface computed with a different recipe (differs in: seed); "
                "pass overwrite=True to replace it or choose another out=PATH",
     "'s.h5' holds a /surface computed with a different recipe (differs in: seed); "
     "pass --overwrite to replace it or choose another --out PATH"),
    ("hessian", "nothing to compute: pass top_k=K (K >= 1), min_eig=True, trace=True or "
                "density=True",
     "nothing to compute: pass --top-k K (K >= 1), --min, --trace or --density"),
    ("surface", "choose one with state_key=...; pass trust=True; use loss='mse'",
     "choose one with --state-key KEY; pass --trust-checkpoint; use --loss mse"),
    ("hessian", "pass dtype=torch.float64 for more", "pass --dtype float64 for more"),
    ("surface", "pass channels_last=False", "pass --no-channels-last"),
    ("hessian", "warm_start=False", "--no-warm-start"),
    ("surface", "bad grid y='0:1': expected min:max:num", "bad grid --y 0:1: expected min:max:num"),
    ("surface", "pass model=NAME (and model_kwargs=JSON)",
     "pass --model NAME (and --model-kwargs JSON)"),
    ("train", "set DataSpec(root=DIR) to the directory", "set --data-root DIR to the directory"),
    # library calls become the command that makes the result
    ("plot", "it has no /ratio_map group (compute one with compute_ratio_map())",
     "it has no /ratio_map group (compute one with 'landscape hessian CKPT --grid SURFACE.h5')"),
    ("plot", "compute them with compute_curvature(density=True))",
     "compute them with 'landscape hessian CKPT --density')"),
    ("plot", "write one with TrajectoryPCA(...).fit(checkpoints).save(path))",
     "write one with 'landscape trajectory CHECKPOINTS --out FILE.h5')"),
    ("connect", "compute it along plane_directions(A, B, BEND, orthogonal=False)",
     "compute it along 'landscape surface A.pt --plane B.pt BEND.pt'"),
    # names that are no option of the command, ordinary words and other calls are kept
    ("train", "x=3, the 'tol' parameter, model.train() and print(x)",
     "x=3, the 'tol' parameter, model.train() and print(x)"),
    ("probe", "the 'what' parameter", "the --what option"),
    ("info", "overwrite=True", "overwrite=True"),
])
def test_flag_message(parser, command, message, expected):
    assert flag_message(message, parser, command) == expected


def test_the_maps_name_real_options_and_commands(parser):
    """Every option of PARAMETER_OPTIONS exists in some command; every command of
    CALL_COMMANDS is a subcommand, with only options it has."""
    sub = next(a for a in parser._actions if a.choices and "surface" in a.choices).choices
    options = {o for p in sub.values() for a in p._actions for o in a.option_strings}
    assert set(PARAMETER_OPTIONS.values()) <= options
    for target in filter(None, CALL_COMMANDS.values()):
        name, *words = target.split()
        assert name in sub
        mine = {o for a in sub[name]._actions for o in a.option_strings}
        assert {w for w in words if w.startswith("--")} <= mine, target


# ------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("messages")
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    torch.manual_seed(0)
    save_checkpoint(d / "mlp.pt", spec.build(), spec,
                    data=DataSpec("digits", subset=60).to_dict())
    torch.save(spec.build().state_dict(), d / "state_only.pt")
    cwd = Path.cwd()
    os.chdir(d)
    try:
        assert main(["surface", "mlp.pt", "--x=-1:1:3", "--out", "s.h5", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    return d


def _error(capsys, argv: list[str], work: Path) -> str:
    cwd = Path.cwd()
    os.chdir(work)
    try:
        code = main(argv)
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1, (code, out, err)
    assert err.startswith(f"landscape {argv[0]}: error: ")
    return err


def test_existing_output_names_the_flags(work, capsys):
    err = _error(capsys, ["surface", "mlp.pt", "--x=-1:1:3", "--seed", "1", "--out", "s.h5",
                          "--no-progress"], work)
    assert "pass --overwrite to replace it or choose another --out PATH" in err
    assert "overwrite=True" not in err


def test_a_bare_state_dict_names_model_flags(work, capsys):
    err = _error(capsys, ["surface", "state_only.pt", "--x=-1:1:3", "--out", "b.h5"], work)
    assert "carries no model spec; pass --model NAME (and --model-kwargs JSON)" in err
    with pytest.raises(LandscapeError, match=r"pass model=NAME \(and model_kwargs=JSON\)"):
        load_checkpoint(work / "state_only.pt")  # the library says the same in its words


def test_a_missing_group_names_the_command_that_makes_it(work, capsys):
    err = _error(capsys, ["plot", "s.h5", "--kind", "ratio"], work)
    assert "compute one with 'landscape hessian CKPT --grid SURFACE.h5'" in err
    assert set(storage.list_groups(work / "s.h5")) == {"surface", "directions"}
