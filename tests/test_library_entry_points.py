"""The one library call of ``landscape compare``, ``train`` and ``connect`` writes what the command
writes: ``compare_files``, ``train_model`` and ``Connectivity.lines`` (issue 26: a CLI handler
parses, makes one library call and prints; a notebook makes the same call)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from landscape.cli._common import flag_message
from landscape.cli.main import build_parser, main

from landscape import compare_files, train_model
from landscape.checkpoints import load_checkpoint, save_checkpoint
from landscape.connect import Connectivity
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.models import ModelSpec
from landscape.report import SavedComparison
from landscape.training import TrainConfig, TrainRun
from tests.test_compare import _surface, _trajectory

pytestmark = pytest.mark.usefixtures("one_thread")


def _report_doc(folder: Path) -> dict:
    """report.json without what differs between two runs of one comparison: the date and the
    command line."""
    doc = json.loads((folder / "report.json").read_text())
    doc["provenance"].pop("environment")
    return doc


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.name not in ("report.json", "report.md", "report.html")}


# ------------------------------------------------------------------------------------ compare
@pytest.fixture
def nets(tmp_path) -> dict[str, str]:
    """Two networks (one with a trajectory file beside its surface) and two seeds of each."""
    names = {}
    for name, a in (("res", 1.0), ("plain", 10.0), ("res1", 1.2), ("plain1", 9.0)):
        _surface(a).save(tmp_path / f"{name}.h5")
        names[name] = str(tmp_path / f"{name}.h5")
    _trajectory(0.8).save(tmp_path / "res_traj.h5")
    names["res_traj"] = str(tmp_path / "res_traj.h5")
    return names


def test_compare_files_writes_what_the_command_writes(nets, tmp_path, capsys):
    files = [f"{nets['res']}+{nets['res_traj']}", nets["plain"]]
    assert main(["compare", *files, "--names", "residual,plain", "--eps", "0.2",
                 "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    done = compare_files(files, names="residual,plain", eps=0.2, out=tmp_path / "lib",
                         progress=False)
    assert isinstance(done, SavedComparison) and done.arms is None
    assert done.out == tmp_path / "lib" and done.report.names == ("residual", "plain")
    assert _report_doc(tmp_path / "lib") == _report_doc(tmp_path / "cli")
    assert _files(tmp_path / "lib") == _files(tmp_path / "cli") != {}
    assert "trajectory" in json.dumps(_report_doc(tmp_path / "lib"))  # the '+' file was read
    lines = [ln.replace(str(tmp_path / "lib"), str(tmp_path / "cli")) for ln in done.lines()]
    assert printed == "".join(f"{ln}\n" for ln in lines)
    # the default folder, beside the first file and named after the networks
    default = compare_files([nets["res"], nets["plain"]], progress=False)
    assert default.out == Path(nets["res"]).parent / "compare_res_vs_plain"
    assert (default.out / "report.html").is_file()


def test_compare_files_of_arms_writes_what_the_command_writes(nets, tmp_path, capsys):
    arms = [f"{nets['res']},{nets['res1']}", f"{nets['plain']},{nets['plain1']}"]
    assert main(["compare", *arms, "--names", "residual,plain", "--eps", "0.2",
                 "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    done = compare_files(arms, names="residual,plain", eps=0.2, out=tmp_path / "lib",
                         progress=False)
    assert done.arms is not None and done.arms.arms == ("residual", "plain")
    assert (tmp_path / "lib" / "arms.json").read_bytes() == \
        (tmp_path / "cli" / "arms.json").read_bytes()
    assert (tmp_path / "lib" / "arms.md").read_bytes() == \
        (tmp_path / "cli" / "arms.md").read_bytes()
    assert _report_doc(tmp_path / "lib") == _report_doc(tmp_path / "cli")
    lines = [ln.replace(str(tmp_path / "lib"), str(tmp_path / "cli")) for ln in done.lines()]
    assert printed == "".join(f"{ln}\n" for ln in lines)
    # default folder: named after the arms, beside the first seed's file
    default = compare_files(arms, progress=False)
    assert default.out == Path(nets["res"]).parent / "compare_res_vs_plain"


@pytest.mark.parametrize(("files", "kwargs", "message", "flags"), [
    (["res", "plain"], {"names": "a"}, "`names` must give 2 comma-separated entries",
     "--names must give 2 comma-separated entries"),
    (["res", "plain"], {"names": "a,"}, "`names` has an empty entry",
     "--names has an empty entry"),
    (["res", "plain"], {"models": "a.pt"}, "`models` must give 2",
     "--checkpoints must give 2"),
    (["res", "plain"], {"device": "cuda"}, "`device` sets where the `models` are evaluated",
     "--device sets where the --checkpoints are evaluated; add --checkpoints or drop --device"),
    (["res,res1", "plain,plain1"], {"models": "a.pt,b.pt"}, "`models` is not supported with arms",
     "--checkpoints is not supported with arms"),
    (["res,res1", "plain,plain1"], {"names": "a,a"}, "`names` must give distinct arm names",
     "--names must give distinct arm names"),
    (["res,", "plain"], {}, "an arm has an empty entry", "an arm has an empty entry"),
    (["res,res1", "plain,plain1"], {"names": ["a"]}, "must give one name per arm (2)",
     "--names: The 'names' parameter must give one name per arm (2)"),
])
def test_compare_files_names_parameters_and_the_command_its_options(nets, files, kwargs,
                                                                     message, flags):
    given = [",".join(nets[f] if f else "" for f in a.split(",")) for a in files]
    with pytest.raises(LandscapeError) as info:
        compare_files(given, progress=False, **kwargs)
    assert message in str(info.value) and "--" not in str(info.value)
    assert flags in flag_message(str(info.value), build_parser(["compare"]), "compare")


# -------------------------------------------------------------------------------------- train
_MLP = '{"width": 8, "depth": 1}'


def _run(out: Path) -> dict:
    doc = json.loads((out / "run.json").read_text())
    return {k: doc[k] for k in ("model", "data", "config", "status")} | {
        "sha256": [c["sha256"] for c in doc["checkpoints"]]}


def test_train_model_trains_what_the_command_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = DataSpec("digits", subset=64)
    assert main(["train", "--model", "mlp", "--model-kwargs", _MLP, "--plain", "--subset",
                 "64", "--epochs", "1", "--no-progress", "--out", "cli"]) == 0
    printed = capsys.readouterr().out
    rng = torch.get_rng_state()
    done = train_model("mlp", data, TrainConfig(epochs=1), "lib", model_kwargs=_MLP,
                       plain=True, progress=False)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is left alone
    assert len(done.runs) == 1 and isinstance(done.runs[0], TrainRun)
    assert done.runs[0].spec.kwargs["shortcut"] is False
    assert _run(tmp_path / "lib") == _run(tmp_path / "cli")  # bit-identical checkpoints
    assert done.lines() == [printed.replace("cli", "lib").rstrip("\n")]
    assert done.lines()[0].startswith("wrote 2 checkpoints to lib (final: train loss ")
    # again: complete, nothing to do; the library names the parameter, the command its option
    again = train_model("mlp", data, TrainConfig(epochs=1), "lib", model_kwargs=_MLP,
                        plain=True, progress=False)
    assert again.runs[0].start_epoch is None
    assert again.lines()[0].endswith("nothing to do (overwrite=True retrains)")
    assert main(["train", "--model", "mlp", "--model-kwargs", _MLP, "--plain", "--subset",
                 "64", "--epochs", "1", "--no-progress", "--out", "cli"]) == 0
    assert capsys.readouterr().out == again.lines()[0].replace(
        "lib", "cli").replace("overwrite=True", "--overwrite") + "\n"


def test_train_model_with_seeds_and_its_refusals(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = DataSpec("digits", subset=64)
    done = train_model("mlp", data, TrainConfig(epochs=1), "arm", model_kwargs={"width": 8,
                       "depth": 1}, seeds=[0, 1], progress=False)
    assert [r.out_dir for r in done.runs] == [Path("arm/seed_0"), Path("arm/seed_1")]
    assert [ln.split(":")[0] for ln in done.lines()] == ["seed 0", "seed 1"]
    assert main(["train", "--model", "mlp", "--model-kwargs", _MLP, "--subset", "64",
                 "--epochs", "1", "--no-progress", "--seeds", "0,1", "--out", "cli"]) == 0
    capsys.readouterr()
    for s in (0, 1):
        assert _run(tmp_path / "arm" / f"seed_{s}") == _run(tmp_path / "cli" / f"seed_{s}")
    with pytest.raises(LandscapeError, match="`plain` contradicts") as info:
        train_model("mlp", data, TrainConfig(epochs=1), "x", model_kwargs='{"shortcut": true}',
                    plain=True)
    assert "--" not in str(info.value) and not Path("x").exists()
    with pytest.raises(LandscapeError):  # a bad name is refused before anything is written
        train_model("no_such_model", data, TrainConfig(epochs=1), "y")
    assert not Path("y").exists()
    assert main(["train", "--model", "mlp", "--model-kwargs", '{"shortcut": true}', "--plain",
                 "--out", "z"]) == 2
    assert ("--plain contradicts \"shortcut\": true in --model-kwargs"
            in capsys.readouterr().err)


# ------------------------------------------------------------------------------------ connect
def test_connectivity_lines_are_what_the_command_prints(tmp_path, capsys):
    """A and B = -A: the line's midpoint is the zero network, its loss ln 10 (at chance)."""
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    data = {"name": "digits", "root": None, "subset": 40, "kwargs": {}}
    torch.manual_seed(0)
    a, b = tmp_path / "a.pt", tmp_path / "neg.pt"
    save_checkpoint(a, spec.build(), spec, data=data)
    ckpt = load_checkpoint(a)
    with torch.no_grad():
        for p in ckpt.model.parameters():
            p.neg_()
    save_checkpoint(b, ckpt.model, ckpt.spec, data=data)
    out = tmp_path / "line.h5"
    assert main(["connect", str(a), str(b), "--curve", "none", "--points", "3", "--splits",
                 "train", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    lines = Connectivity.load(out).lines()
    assert lines[0] == "line, 3/3 points, bn=recalibrate"
    assert printed[0].startswith(f"wrote {out}: {lines[0]} in ")
    assert lines[2].startswith("at chance (ln 10 = 2.303): line_train_loss -- ")
    assert "train(init=...)" in lines[2] and not any("--" in ln.replace(" -- ", "")
                                                       for ln in lines)
    assert printed[1:] == [flag_message(ln, build_parser(["connect"]), "connect")
                           for ln in lines[1:]]
    assert "('landscape train --init CHECKPOINT')" in printed[2]
