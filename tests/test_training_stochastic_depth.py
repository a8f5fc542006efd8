"""Stochastic depth (Huang et al. 2016) in the trainer: the decay rule, the masks, the
forwards, and bit-identical resumption."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from scipy.stats import binomtest

from landscape.checkpoints import load_checkpoint, load_optimizer_state
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.models import MLP, ModelSpec, PreResNet, ResNet, ViT
from landscape.stochastic_depth import (
    StochasticDepth,
    draw_drops,
    drop_probabilities,
    residual_units,
)
from landscape.training import TrainConfig, TrainRun, train

SPEC = ModelSpec("mlp", {"width": 16, "depth": 4})
DATA = DataSpec("digits", subset=300)
CONFIG = TrainConfig(epochs=3, batch_size=32, lr=0.1, stochastic_depth=0.5, seed=3)


def test_linear_decay_rule_is_exact() -> None:
    assert drop_probabilities(4, 0.5) == [0.125, 0.25, 0.375, 0.5]
    assert drop_probabilities(3, 1.0) == [1 / 3, 2 / 3, 1.0]
    assert drop_probabilities(1, 0.2) == [0.2]
    L = 27  # ResNet-56's blocks
    p = drop_probabilities(L, 0.5)
    assert all(q == 0.5 * (i + 1) / L for i, q in enumerate(p))
    for bad in ((0, 0.5), (3, 1.5), (3, -0.1)):
        with pytest.raises(LandscapeError):
            drop_probabilities(*bad)


def test_masks_enumerate_the_expected_schedule() -> None:
    """With P = 1 the last unit is always dropped; every mask is u_l < p_l of the seeded
    uniforms, one rand(L) per mini-batch."""
    probs = torch.tensor(drop_probabilities(4, 1.0), dtype=torch.float32)
    g = torch.Generator().manual_seed(7)
    masks = torch.stack([draw_drops(probs, g) for _ in range(200)])
    ref = torch.Generator().manual_seed(7)
    u = torch.stack([torch.rand(4, generator=ref) for _ in range(200)])
    assert torch.equal(masks, u < probs)
    assert masks[:, -1].all()  # p_L = 1
    # enumeration of the first draws against hand-computed thresholds 0.25, 0.5, 0.75, 1
    for row, uu in zip(masks[:10], u[:10], strict=True):
        assert row.tolist() == [bool(uu[i] < (i + 1) / 4) for i in range(4)]


def test_survival_within_binomial_intervals() -> None:
    probs = torch.tensor(drop_probabilities(5, 0.8), dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    n = 20000
    kept = (~torch.stack([draw_drops(probs, g) for _ in range(n)])).sum(0)
    for k, p in zip(kept.tolist(), drop_probabilities(5, 0.8), strict=True):
        ci = binomtest(k, n).proportion_ci(0.999)
        assert ci.low <= 1 - p <= ci.high, (k, p)


@pytest.mark.parametrize("build", [
    lambda: MLP(depth=3, width=8),
    lambda: MLP(depth=3, width=8, batchnorm=True),
    lambda: ResNet(8, in_channels=1, width=0.25),
    lambda: PreResNet(8, in_channels=1, width=0.25),
    lambda: ViT(width=16, depth=2, heads=2),
])
def test_forwards_drop_and_scale_each_unit(build) -> None:
    """Keeping every unit (with the 1/(1-p) scale set to 1 by p = 0) is the model's own
    forward; dropping unit l gives the block's shortcut (the lesion of landscape.mechanisms);
    a kept unit scales its branch by 1 / (1 - p_l)."""
    torch.manual_seed(0)
    model = build().double().eval()
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    sd = StochasticDepth(model, 0.0)
    with torch.no_grad():
        ref = model(x)
        with sd.installed():
            assert torch.allclose(model(x), ref, atol=1e-12)
        assert "forward" not in vars(sd.units[0].module)  # restored
        sd = StochasticDepth(model, 0.5)
        L = len(sd.units)
        with sd.installed():
            sd.dropped = torch.ones(L, dtype=torch.bool)
            all_dropped = model(x)
        if sd.units[0].kind == "block":
            from landscape.mechanisms import find_blocks, rerouted

            blocks = find_blocks(model)
            with rerouted(blocks, {b.name: "lesion" for b in blocks}):
                assert torch.allclose(all_dropped, model(x), atol=1e-12)
            # one kept unit: its branch enters scaled by 1/(1 - p_1)
            b = blocks[0]
            h = {}
            hook = b.module.register_forward_hook(lambda m, a, o: h.update(x=a[0], y=o))
            with sd.installed():
                sd.dropped = torch.zeros(L, dtype=torch.bool)
                model(x)
            hook.remove()
            s, f = b.parts(h["x"])
            assert torch.allclose(h["y"], b.post(s + f / (1 - sd.p[0])), atol=1e-12)


def test_units_of_the_models_and_refusals() -> None:
    assert [u.name for u in residual_units(MLP(depth=2))] == ["blocks.0", "blocks.1"]
    assert len(residual_units(ResNet(20, in_channels=1))) == 9
    vit = residual_units(ViT(width=16, depth=2, heads=2))
    assert [u.name for u in vit] == ["blocks.0:attn", "blocks.0:mlp", "blocks.1:attn",
                                     "blocks.1:mlp"]
    with pytest.raises(LandscapeError, match="plain twin has none"):
        residual_units(ResNet(8, shortcut=False, in_channels=1))
    with pytest.raises(LandscapeError, match="plain twin has none"):
        residual_units(ViT(width=16, depth=2, heads=2, residual=False))
    with pytest.raises(LandscapeError, match="has none"):
        residual_units(torch.nn.Sequential(torch.nn.Linear(3, 3)))
    with pytest.raises(LandscapeError, match="stochastic_depth"):
        TrainConfig(stochastic_depth=1.0)


def test_train_refuses_plain_twins_before_writing(tmp_path: Path) -> None:
    plain = ModelSpec("mlp", {"width": 16, "depth": 2, "shortcut": False})
    with pytest.raises(LandscapeError, match="cannot train mlp with stochastic_depth=0.5: "
                       ".*plain twin has none"):
        train(plain, DATA, CONFIG, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(LandscapeError, match="has none"):
        train(ModelSpec("vgg9", {"in_channels": 1, "width": 0.125}), DATA, CONFIG,
              tmp_path / "run", progress=False)


def test_cli_refuses_a_plain_twin_and_p_one(tmp_path: Path, capsys) -> None:
    from landscape.cli.main import main

    base = ["train", "--model", "mlp", "--subset", "100", "--epochs", "1", "--no-progress"]
    assert main([*base, "--plain", "--stochastic-depth", "0.5", "--out",
                 str(tmp_path / "a")]) == 2
    assert "plain twin has none" in capsys.readouterr().err
    assert main([*base, "--stochastic-depth", "1", "--out", str(tmp_path / "b")]) == 2
    assert "stochastic_depth" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> TrainRun:
    return train(SPEC, DATA, CONFIG, tmp_path_factory.mktemp("sd"), progress=False)


def test_run_records_it_and_differs_from_no_drop(reference: TrainRun, tmp_path: Path) -> None:
    manifest = json.loads((reference.out_dir / "run.json").read_text())
    assert manifest["config"]["stochastic_depth"] == 0.5
    rec = manifest["stochastic_depth"]
    assert rec["p_last"] == 0.5 and rec["rule"] == "linear" and rec["scaling"] == "inverted"
    assert [u["p"] for u in rec["units"]] == [0.125, 0.25, 0.375, 0.5]
    assert load_checkpoint(reference.final).meta["config"]["stochastic_depth"] == 0.5
    # a checkpoint is an ordinary model: it loads and evaluates without any hook
    ckpt = load_checkpoint(reference.final)
    assert "forward" not in vars(ckpt.model.blocks[0])
    assert load_optimizer_state(reference.final) is None  # SGD's checkpoints keep no state
    assert math.isfinite(reference.history[-1]["train_loss"])
    # without stochastic depth the config has no key (runs of before it still resume)
    assert "stochastic_depth" not in TrainConfig().to_dict()
    # the same seed without drops trains other weights; the initialisation is the same
    other = train(SPEC, DATA, TrainConfig(epochs=1, batch_size=32, lr=0.1, seed=3), tmp_path,
                  progress=False)
    a = load_checkpoint(reference.checkpoints[0]).model.state_dict()
    b = load_checkpoint(other.checkpoints[0]).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    a = load_checkpoint(reference.checkpoints[1]).model.state_dict()
    b = load_checkpoint(other.checkpoints[1]).model.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_training_drops_the_scheduled_units(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """Over a run, each unit is dropped at a rate within the binomial interval of p_l, and the
    masks are those of the seeded generator."""
    seen = []
    real = StochasticDepth.draw

    def draw(self, generator):
        out = real(self, generator)
        seen.append(out.clone())
        return out

    monkeypatch.setattr(StochasticDepth, "draw", draw)
    config = TrainConfig(epochs=4, batch_size=8, lr=0.05, stochastic_depth=0.9, seed=1)
    train(SPEC, DATA, config, tmp_path, progress=False)
    masks = torch.stack(seen)
    assert len(masks) == 4 * math.ceil(300 / 8)  # one mask per step (300 training samples)
    for k, p in zip(masks.sum(0).tolist(), drop_probabilities(4, 0.9), strict=True):
        ci = binomtest(k, len(masks)).proportion_ci(0.999)
        assert ci.low <= p <= ci.high


def test_interrupted_run_resumes_bit_for_bit(reference: TrainRun, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real_step = torch.optim.SGD.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):  # Ctrl-C in the middle of epoch 2
        calls["n"] += 1
        if calls["n"] == math.ceil(300 / 32) + 3:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch.optim.SGD, "step", step)
        with pytest.raises(KeyboardInterrupt):
            train(SPEC, DATA, CONFIG, tmp_path, progress=False)
    assert torch.load(tmp_path / "resume.pt", weights_only=True)["epoch"] == 1
    resumed = train(SPEC, DATA, CONFIG, tmp_path, progress=False)
    assert resumed.start_epoch == 1 and resumed.history == reference.history
    for pa, pb in zip(reference.checkpoints, resumed.checkpoints, strict=True):
        sa = load_checkpoint(pa).model.state_dict()
        sb = load_checkpoint(pb).model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_transformer_sublayers_drop_and_scale(norm: str) -> None:
    """A dropped sublayer is one whose output projection is zero; a kept one is one whose
    output projection is scaled by 1 / (1 - p): the same network with edited weights."""
    import copy

    torch.manual_seed(0)
    model = ViT(width=16, depth=2, heads=2, norm=norm).double().eval()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    sd = StochasticDepth(model, 0.6)
    keep = [True, False, False, True]  # blocks.0:attn and blocks.1:mlp kept
    edited = copy.deepcopy(model)
    layers = [m for b in edited.blocks for m in (b.attn.proj, b.mlp[2])]  # the units' order
    with torch.no_grad():
        for lin, kept, p in zip(layers, keep, sd.p, strict=True):
            c = 1 / (1 - p) if kept else 0.0
            lin.weight.mul_(c)
            lin.bias.mul_(c)
        with sd.installed():
            sd.dropped = torch.tensor([not k for k in keep])
            got = model(x)
        want = edited(x)
    assert torch.allclose(got, want, atol=1e-12)
