"""CLI: every computing subcommand takes --loss, --device, --dtype, --params, --exclude
(cli/_common.add_compute_args); where one means nothing for a command its help says why and
giving it is a one-line usage error. Two commands that lacked them run for real with
``--dtype float64 --params``: connect (held tensors stay A's on the line and in the trained
bends; the line's midpoint equals the loss of the mixed parameters) and sharpening (lambda_max
of the selection equals a dense float64 Hessian)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from landscape.cli.main import build_parser, main

from landscape import storage
from landscape.checkpoints import save_checkpoint
from landscape.connect import Connectivity
from landscape.data import DataSpec, load_data
from landscape.mechanisms import SharpeningResult
from landscape.models import ModelSpec

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = ModelSpec("mlp", {"width": 8, "depth": 2})
#: argv up to the options of each computing subcommand (files need not exist: parsing only)
PREFIX = {
    "surface": ["surface", "c.pt", "--x=-1:1:3"],
    "hessian": ["hessian", "c.pt"],
    "trajectory": ["trajectory", "run"],
    "connect": ["connect", "a.pt", "b.pt"],
    "probe": ["probe", "c.pt"],
    "sharpening": ["sharpening", "run"],
    "train": ["train", "--model", "mlp", "--out", "run"],
    "compare": ["compare", "a.h5"],
}
#: options that mean nothing for a command (listed, refused when given)
UNUSED = {"probe": {"params"}, "train": {"loss", "dtype", "params"},
          "compare": {"loss", "dtype", "params"}}
OPTIONS = {"loss": ["--loss", "mse"], "device": ["--device", "cpu"],
           "dtype": ["--dtype", "float64"],
           "params": ["--params", "head*", "--exclude", "*.bias", "--include-frozen"]}


@pytest.mark.parametrize("command", sorted(PREFIX))
def test_every_computing_subcommand_takes_the_compute_options(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--loss", "--device", "--dtype", "--params", "--exclude", "--include-frozen"):
        assert flag in text, flag
    parser = build_parser()
    for key, argv in OPTIONS.items():
        if key in UNUSED.get(command, ()):
            for i, flag in enumerate(argv):
                if not flag.startswith("--"):
                    continue
                value = argv[i + 1:i + 2] if i + 1 < len(argv) and \
                    not argv[i + 1].startswith("--") else []
                with pytest.raises(SystemExit) as exc:
                    parser.parse_args([*PREFIX[command], flag, *value])
                assert exc.value.code == 2
                assert "does not apply" in capsys.readouterr().err
            continue
        args = parser.parse_args([*PREFIX[command], *argv])
        if key == "params":
            assert args.params == ["head*"] and args.exclude == ["*.bias"]
            assert args.include_frozen is True
        else:
            assert getattr(args, key) == argv[1]


def test_unused_options_are_named_in_the_help(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--loss LOSS not used here: landscape train minimises the cross" in text
    assert main(["train", "--model", "mlp", "--out", "r", "--loss", "mse"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--loss does not apply to 'landscape train'" in err


def test_trajectory_refuses_evaluation_options_without_surface(tmp_path, capsys):
    assert main(["trajectory", "a.pt", "b.pt", "c.pt", "--dtype", "float64"]) == 2
    assert "--dtype set the evaluation of --surface" in capsys.readouterr().err


# ---------------------------------------------------------------------------- real runs
def _data(n: int = 50):
    return load_data(DataSpec("digits", subset=n), "train")


def test_connect_float64_with_params(tmp_path: Path, capsys) -> None:
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(save_checkpoint(tmp_path / f"s{seed}.pt", SPEC.build(), SPEC))
    out = tmp_path / "ab.h5"
    assert main(["connect", str(paths[0]), str(paths[1]), "--params", "head", "--exclude",
                 "*.bias", "--dtype", "float64", "--steps", "4", "--weight-decay", "0.1",
                 "--train-batch-size", "16", "--points", "3", "--subset", "50", "--splits",
                 "train", "--out", str(out), "--no-progress"]) == 0
    res = Connectivity.load(out)
    assert res.recipe["dtype"] == "float64" and res.recipe["params"] == ["head"]
    assert res.recipe["exclude"] == ["*.bias"]
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in paths)
    moved = ["head.weight"]
    assert res.recipe["n_held"] == sum(v.numel() for k, v in a.items() if k not in moved)
    # held entries of the trained bend are exactly A's (weight decay did not move them)
    flat_a = torch.cat([a[k].reshape(-1).double() for k, _ in res.tensors])
    held = torch.cat([torch.full((a[k].numel(),), k not in moved) for k, _ in res.tensors])
    bend = torch.as_tensor(np.asarray(res.bends))[0]
    assert bend.dtype == torch.float64
    assert torch.equal(bend[held], flat_a[held]) and not torch.equal(bend[~held], flat_a[~held])
    # the line's midpoint: A with head.weight halfway to B's, in float64
    model = SPEC.build().double().eval()
    model.load_state_dict({k: v.double() for k, v in a.items()})
    with torch.no_grad():
        model.head.weight.copy_((a["head.weight"].double() + b["head.weight"].double()) / 2)
        d = _data()
        want = float(torch.nn.functional.cross_entropy(model(d.x.double()), d.y))
    assert res.values("line", "train_loss")[1] == pytest.approx(want, rel=1e-12)
    # another selection is another recipe: the file is not resumed with it
    assert main(["connect", str(paths[0]), str(paths[1]), "--dtype", "float64", "--steps", "4",
                 "--weight-decay", "0.1", "--train-batch-size", "16", "--points", "3",
                 "--subset", "50", "--splits", "train", "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "another recipe" in err or "--overwrite" in err, err


def test_sharpening_float64_with_params(tmp_path: Path) -> None:
    from torch.autograd.functional import hessian

    from landscape.checkpoints import load_checkpoint
    from landscape.training import TrainRun

    run = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--model-kwargs", '{"width": 8, "depth": 2}',
                 "--epochs", "2", "--subset", "60", "--out", str(run), "--no-progress"]) == 0
    out = tmp_path / "s.h5"
    assert main(["sharpening", str(run), "--subset", "40", "--trace-samples", "0",
                 "--dtype", "float64", "--params", "head", "--out", str(out)]) == 0
    res = SharpeningResult.load(out)
    recipe = json.loads(storage.read_group(out, "sharpening").attrs["recipe"])
    assert recipe == {"loss": "cross_entropy", "dtype": "float64", "params": ["head"]}
    model = load_checkpoint(TrainRun.load(run).checkpoints[-1]).model.double().eval()
    d = load_data(TrainRun.load(run).data, "train").subset(40)
    w0, b0 = model.head.weight.detach(), model.head.bias.detach()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        w, b = flat[:w0.numel()].view_as(w0), flat[w0.numel():]
        out = torch.func.functional_call(model, {"head.weight": w, "head.bias": b},
                                         (d.x.double(),))
        return torch.nn.functional.cross_entropy(out, d.y)

    H = hessian(loss, torch.cat([w0.reshape(-1), b0]))
    want = float(np.linalg.eigvalsh(((H + H.T) / 2).numpy())[-1])
    assert res.converged[-1, 0]
    assert res.lambda_max[-1] == pytest.approx(want, rel=1e-5)
