"""AdamW and warmup in the trainer: the config, the schedule, the stored second moments and
bit-identical resumption."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from landscape.checkpoints import load_checkpoint, load_optimizer_state
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.models import ModelSpec
from landscape.optim import adam_preconditioner, adam_threshold
from landscape.training import TrainConfig, TrainRun, lr_at_epoch, lr_at_step, train

SPEC = ModelSpec("mlp", {"width": 16, "depth": 2})
DATA = DataSpec("digits", subset=300)
CONFIG = TrainConfig(epochs=3, batch_size=32, lr=3e-3, optimizer="adamw", betas=(0.8, 0.99),
                     eps=1e-7, warmup_steps=15, weight_decay=0.01, seed=2)


def test_config_round_trip_and_old_keys() -> None:
    d = CONFIG.to_dict()
    assert d["optimizer"] == "adamw" and d["betas"] == [0.8, 0.99] and d["warmup_steps"] == 15
    assert json.loads(json.dumps(d)) == d and TrainConfig.from_dict(d) == CONFIG
    # defaults leave the new keys out: the config of a run of before them is unchanged
    assert sorted(TrainConfig().to_dict()) == sorted(
        ["epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
         "seed", "save_every", "threads"])
    assert TrainConfig.from_dict(TrainConfig().to_dict()).optimizer == "sgd"


@pytest.mark.parametrize("kwargs, name", [
    ({"optimizer": "adam"}, "optimizer"),
    ({"betas": (0.9,)}, "betas"),
    ({"betas": (0.9, 1.0)}, "betas"),
    ({"eps": 0.0}, "eps"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"optimizer": "adamw", "nesterov": True}, "nesterov"),
])
def test_config_refuses(kwargs: dict, name: str) -> None:
    with pytest.raises(LandscapeError, match=name):
        TrainConfig(**kwargs)


def test_warmup_is_linear_then_the_schedule() -> None:
    c = TrainConfig(epochs=4, lr=0.1, warmup_steps=4)
    assert [lr_at_step(c, 1, s) for s in range(5)] == pytest.approx(
        [0.1 * k / 4 for k in (1, 2, 3, 4)] + [0.1])
    assert lr_at_step(c, 3, 100) == lr_at_epoch(c, 3)
    assert lr_at_step(TrainConfig(lr=0.1), 1, 0) == 0.1


def test_threshold() -> None:
    assert adam_threshold(0.9, 0.01) == pytest.approx(3800.0)
    assert adam_threshold(0.0, 0.5) == pytest.approx(4.0)  # 2 / eta


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    return train(SPEC, DATA, CONFIG, tmp_path_factory.mktemp("adamw"), progress=False)


def test_checkpoints_store_adam_second_moments(reference: TrainRun) -> None:
    first = load_optimizer_state(reference.checkpoints[0])
    assert first["step"] == {} and first["exp_avg_sq"] == {}
    with pytest.raises(LandscapeError, match="before the first step"):
        adam_preconditioner(first, ["stem.weight"])
    last = load_optimizer_state(reference.final)
    steps = reference.history[-1]["step"]
    assert set(last["step"].values()) == {steps} == {3 * math.ceil(300 / 32)}
    assert last["betas"] == [0.8, 0.99] and last["eps"] == 1e-7
    model = load_checkpoint(reference.final).model
    assert set(last["exp_avg_sq"]) == {n for n, _ in model.named_parameters()}
    # the preconditioner is the bias-corrected root second moment plus eps
    p = adam_preconditioner(last, ["head.bias"])["head.bias"]
    v = last["exp_avg_sq"]["head.bias"].double()
    assert torch.allclose(p, (v / (1 - 0.99**steps)).sqrt() + 1e-7)


def test_adamw_run_matches_a_hand_written_loop(reference: TrainRun) -> None:
    """Epoch 1 of the run is torch's AdamW over the seeded order with the warmup rates."""
    from landscape.data import load_data
    from landscape.losses import BatchLoss

    model = load_checkpoint(reference.checkpoints[0]).model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=CONFIG.lr, betas=(0.8, 0.99), eps=1e-7,
                            weight_decay=0.01)
    data = load_data(DATA, "train")
    g = torch.Generator().manual_seed(2)
    order = torch.randperm(len(data), generator=g)
    loss = BatchLoss("cross_entropy")
    for s, start in enumerate(range(0, len(data), 32)):
        idx = order[start:start + 32]
        for group in opt.param_groups:
            group["lr"] = lr_at_step(CONFIG, 1, s)
        t = loss.model_terms(model, (data.x[idx], data.y[idx].long()))
        opt.zero_grad()
        (t.total / t.weight).backward()
        opt.step()
    got = load_checkpoint(reference.checkpoints[1]).model.state_dict()
    want = model.state_dict()
    assert all(torch.allclose(got[k], want[k], rtol=0, atol=1e-6) for k in want)


def test_interrupted_adamw_run_resumes_bit_for_bit(reference: TrainRun, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):  # Ctrl-C in the middle of epoch 3 (after the warmup)
        calls["n"] += 1
        if calls["n"] == 2 * math.ceil(300 / 32) + 4:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch.optim.AdamW, "step", step)
        with pytest.raises(KeyboardInterrupt):
            train(SPEC, DATA, CONFIG, tmp_path, progress=False)
    state = torch.load(tmp_path / "resume.pt", weights_only=True)
    assert state["epoch"] == 2 and {"exp_avg", "exp_avg_sq"} <= set(state["optimizer"]
                                                                     ["state"][0])
    resumed = train(SPEC, DATA, CONFIG, tmp_path, progress=False)
    assert resumed.start_epoch == 2 and resumed.history == reference.history
    for pa, pb in zip(reference.checkpoints, resumed.checkpoints, strict=True):
        sa = load_checkpoint(pa).model.state_dict()
        sb = load_checkpoint(pb).model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        oa, ob = load_optimizer_state(pa), load_optimizer_state(pb)
        assert oa["step"] == ob["step"] and all(
            torch.equal(oa["exp_avg_sq"][k], ob["exp_avg_sq"][k]) for k in oa["exp_avg_sq"])


def test_cli_flags(tmp_path: Path) -> None:
    from landscape.cli.main import main

    out = tmp_path / "run"
    rc = main(["train", "--model", "mlp", "--model-kwargs", '{"width": 8, "depth": 2}',
               "--subset", "100", "--epochs", "1", "--optimizer", "adamw", "--lr", "1e-3",
               "--betas", "0.85,0.995", "--warmup", "3", "--stochastic-depth", "0.3",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    c = json.loads((out / "run.json").read_text())["config"]
    assert (c["optimizer"], c["betas"], c["warmup_steps"], c["stochastic_depth"]) == (
        "adamw", [0.85, 0.995], 3, 0.3)
    assert main(["train", "--model", "mlp", "--betas", "0.9", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
