"""Gate openness of highway networks (`landscape probe --what gates`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from landscape.cli import main as cli_main

from landscape.data import DataSpec, load_data
from landscape.errors import LandscapeError
from landscape.mechanisms import (
    GateResult,
    applicable_analyses,
    gate_openness,
    load_results,
    run_analyses,
)
from landscape.models import HighwayConv, HighwayMLP, ModelSpec, ResNet
from tests._pipeline import train_tiny

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]


def _sigmoid(b: float) -> float:
    return 1.0 / (1.0 + math.exp(-b))


@pytest.mark.parametrize("net", [HighwayMLP(width=8, depth=3, gate_bias=-2.0),
                                 HighwayConv(channels=4, depth=2, gate_bias=-3.0),
                                 HighwayMLP(width=8, depth=2, gate_bias=-1.0, shortcut=False)])
def test_zero_gate_weights_give_sigmoid_of_the_bias(net) -> None:
    """At initialization with the gate weights set to zero, T = sigmoid(b) for every input
    (float64 model: the inputs are cast to its dtype)."""
    net = net.double()
    with torch.no_grad():
        for layer in net.layers:
            layer.transform.weight.zero_()
    r = gate_openness(net, load_data(DataSpec("digits", subset=40)))
    want = _sigmoid(net.gate_bias)
    np.testing.assert_allclose(r.mean_gate, want, rtol=1e-12)
    np.testing.assert_allclose(r.unit_std, 0, atol=1e-12)
    np.testing.assert_allclose(r.gate_bias_mean, net.gate_bias, rtol=1e-7)
    assert r.layers == [f"layers.{i}" for i in range(net.depth)]
    assert r.carry == [net.shortcut] * net.depth and r.n_samples == 40
    assert (r.open_fraction == 0).all()


def test_mean_gate_is_the_mean_over_samples_and_units() -> None:
    """Against a direct computation of every layer's input and gate, in float64."""
    torch.manual_seed(0)
    net = HighwayConv(channels=4, depth=3).double().eval()
    data = load_data(DataSpec("digits", subset=30))
    r = gate_openness(net, data, batch_size=7)  # batches that do not divide the samples
    with torch.no_grad():
        h = net.relu(net.stem(data.x.double()))
        for i, layer in enumerate(net.layers):
            t = layer.gate(h)
            per_unit = t.mean(dim=(0, 2, 3))
            assert r.mean_gate[i] == pytest.approx(float(t.mean()), rel=1e-12)
            assert r.unit_std[i] == pytest.approx(float(per_unit.std(unbiased=False)), rel=1e-9)
            assert r.open_fraction[i] == float((per_unit > 0.5).double().mean())
            h = layer(h)


def test_after_training_the_gates_move_and_the_result_round_trips(tmp_path) -> None:
    run = train_tiny(tmp_path, ModelSpec("highway", {"width": 16, "depth": 4}),
                     DataSpec("digits", subset=256), epochs=6, lr=0.1)
    from landscape.checkpoints import load_checkpoint

    data = load_data(DataSpec("digits", subset=256))
    init = gate_openness(load_checkpoint(run.checkpoints[0]).model, data)
    final = gate_openness(load_checkpoint(run.final).model, data)
    assert run.history[-1]["train_acc"] > 0.3  # it learned something
    # at initialization the gates sit near sigmoid(-2) = 0.119 (random weights spread them)
    assert np.all(np.abs(init.mean_gate - _sigmoid(-2.0)) < 0.05)
    assert not np.allclose(final.gate_bias_mean, init.gate_bias_mean)
    assert np.all((final.mean_gate > 0) & (final.mean_gate < 1))
    final.save(tmp_path / "g.h5")
    back = GateResult.load(tmp_path / "g.h5")
    np.testing.assert_array_equal(back.mean_gate, final.mean_gate)
    assert back.layers == final.layers and set(back.numbers()) == {
        "gate_mean", "gate_first", "gate_last"}
    assert load_results(tmp_path / "g.h5")["gates"].n_samples == 256
    ax = back.plot(label="highway")
    assert len(ax.lines) == 1


def test_which_analyses_apply() -> None:
    assert applicable_analyses(HighwayMLP(depth=2)) == ["gates"]
    res = applicable_analyses(ResNet(8, in_channels=1, width=0.25))
    assert "gates" not in res and {"lesion", "paths", "shatter"} <= set(res)
    data = load_data(DataSpec("digits", subset=16))
    with pytest.raises(LandscapeError, match="no highway gates"):
        run_analyses(ResNet(8, in_channels=1, width=0.25), data, ["gates"])
    results, _ = run_analyses(HighwayMLP(depth=2), data)
    assert list(results) == ["gates"]


def test_probe_gates_through_the_cli(tmp_path, capsys) -> None:
    run = train_tiny(tmp_path, ModelSpec("highway", {"width": 8, "depth": 2}),
                     DataSpec("digits", subset=32), epochs=1)
    out = tmp_path / "m.h5"
    assert cli_main.main(["probe", str(run.final), "--what", "gates", "--out", str(out)]) == 0
    assert "wrote gates" in capsys.readouterr().out
    assert GateResult.load(out).mean_gate.shape == (2,)
    # asking a residual net for its gates is a one-line usage error
    rn = train_tiny(tmp_path / "rn", ModelSpec("resnet", {"depth": 8, "in_channels": 1,
                                                          "width": 0.25}),
                    DataSpec("digits", subset=32), epochs=1)
    assert cli_main.main(["probe", str(rn.final), "--what", "gates", "--out",
                          str(tmp_path / "r.h5")]) == 2
    assert "no highway gates" in capsys.readouterr().err
