"""Highway networks (MLP and conv) and their twins without carry paths."""

from __future__ import annotations

import pytest
import torch

from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.models import (
    HighwayConv,
    HighwayConvLayer,
    HighwayLayer,
    HighwayMLP,
    ModelSpec,
    build,
    skip_switch,
)
from landscape.models.highway import GATE_BIAS
from tests._pipeline import through_the_pipeline, train_tiny

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]

VARIANTS = [("highway", {"width": 8, "depth": 3}, (4, 1, 8, 8)),
            ("highway_conv", {"channels": 4, "depth": 2}, (4, 1, 8, 8))]


@pytest.mark.parametrize(("name", "kwargs", "shape"), VARIANTS)
def test_twins_share_state_dict_and_differ_in_forward(name, kwargs, shape) -> None:
    assert skip_switch(name) == "shortcut"
    torch.manual_seed(0)
    res = build(name, **kwargs)
    torch.manual_seed(0)
    plain = build(name, **kwargs, shortcut=False)
    a, b = res.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(*shape)
    assert res(x).shape == plain(x).shape == (shape[0], 10)
    assert not torch.allclose(res(x), plain(x))


@pytest.mark.parametrize("layer", [HighwayLayer(6), HighwayConvLayer(3)])
def test_layer_is_the_papers_formula_and_the_twin_drops_only_the_carry(layer) -> None:
    torch.manual_seed(1)
    x = torch.randn(5, 6) if isinstance(layer, HighwayLayer) else torch.randn(5, 3, 4, 4)
    h = torch.relu(layer.plain(x))
    t = torch.sigmoid(layer.transform(x))
    torch.testing.assert_close(layer(x), h * t + x * (1 - t))
    layer.shortcut = False
    torch.testing.assert_close(layer(x), h * t)
    # the gate bias starts at the paper's negative value: the layers start near the carry
    assert torch.equal(layer.transform.bias, torch.full_like(layer.transform.bias, GATE_BIAS))
    assert GATE_BIAS == -2.0


def test_closed_gates_carry_the_input_through() -> None:
    """With T = 0 (a very negative bias and zero gate weights) a highway layer is the identity
    and its twin outputs zero."""
    layer = HighwayLayer(4, gate_bias=-1e4)
    with torch.no_grad():
        layer.transform.weight.zero_()
    x = torch.randn(3, 4)
    assert torch.equal(layer(x), x)
    layer.shortcut = False
    assert torch.equal(layer(x), torch.zeros_like(x))


def test_argument_errors() -> None:
    with pytest.raises(LandscapeError, match="'depth'"):
        HighwayMLP(depth=0)
    with pytest.raises(LandscapeError, match="'shortcut'"):
        HighwayConv(shortcut=1)
    with pytest.raises(LandscapeError, match="in_features=64"):
        HighwayMLP()(torch.randn(2, 10))


@pytest.mark.parametrize(("name", "kwargs"), [(n, k) for n, k, _ in VARIANTS])
def test_trains_and_goes_through_the_toolkit(tmp_path, capsys, name, kwargs) -> None:
    run = train_tiny(tmp_path, ModelSpec(name, kwargs), DataSpec("digits", subset=64),
                     epochs=3, lr=0.1)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    out = through_the_pipeline(tmp_path, run, capsys)
    assert "gates" in out  # the probe's default on a highway net: its gates


@pytest.mark.parametrize("shortcut", [True, False])
def test_hessian_through_the_gates_matches_dense_truth(shortcut) -> None:
    """The gate's product H(x) T(x) and the carry term have exact HVPs (both methods) and the
    exact Hessian of one layer's gate and transform weights."""
    from landscape.data import load_data
    from landscape.hessian.operator import HessianOperator
    from tests.reference import dense_from_operator, exact_hessian

    torch.manual_seed(0)
    model = HighwayMLP(width=4, depth=2, shortcut=shortcut).double().eval()
    data = load_data(DataSpec("digits", subset=12))
    names = ["layers.1.plain.bias", "layers.1.transform.weight", "layers.1.transform.bias"]
    others = [k for k, _ in model.named_parameters() if k not in names]
    graph = HessianOperator(model, data, dtype=torch.float64, method="graph")
    func = HessianOperator(model, data, dtype=torch.float64, method="func")
    v = torch.randn(graph.shape[0], dtype=torch.float64)
    torch.testing.assert_close(func @ v, graph @ v, rtol=1e-9, atol=1e-11)
    op = HessianOperator(model, data, dtype=torch.float64, ignore=others)
    truth = exact_hessian(model, data.x, data.y, names)
    torch.testing.assert_close(dense_from_operator(op), truth, rtol=1e-7, atol=1e-10)
