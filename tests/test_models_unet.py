"""The U-Net and its twin without long skips, on the digits-denoise task."""

from __future__ import annotations

import pytest
import torch

from landscape.checkpoints import load_checkpoint
from landscape.data import DataSpec, load_data
from landscape.errors import LandscapeError
from landscape.models import ModelSpec, UNet, build, skip_switch
from tests._pipeline import through_the_pipeline, train_tiny

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]


def _twins(**kwargs):
    torch.manual_seed(0)
    res = UNet(**kwargs).eval()
    torch.manual_seed(0)
    plain = UNet(**kwargs, shortcut=False).eval()
    return res, plain


@pytest.mark.parametrize(("kwargs", "shape"), [({}, (3, 1, 8, 8)),
                                               ({"in_channels": 3, "channels": 4},
                                                (2, 3, 32, 32)),
                                               ({"channels": 4, "levels": 3}, (2, 1, 16, 16))])
def test_output_is_an_image_and_twins_share_state_dict(kwargs, shape) -> None:
    res, plain = _twins(**kwargs)
    a, b = res.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(*shape)
    assert res(x).shape == plain(x).shape == x.shape
    assert not torch.allclose(res(x), plain(x))
    assert skip_switch("unet") == "shortcut"
    assert build("unet", shortcut=False, **kwargs).shortcut is False


def test_twin_differs_only_by_the_skip_path() -> None:
    """Zeroing the decoder weights that read the skip half makes the skip model compute the
    twin's function: nothing but the long skips differs."""
    res, plain = _twins(channels=4)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        for dec in res.dec:
            conv = dec[0]
            half = conv.weight.shape[1] // 2
            conv.weight[:, :half] = 0  # [skip, up] concatenated: the skip comes first
    torch.testing.assert_close(res(x), plain(x), rtol=0, atol=0)


def test_twin_leaves_the_skip_weights_without_gradient() -> None:
    _, plain = _twins(channels=4)
    plain.train()
    plain(torch.randn(4, 1, 8, 8)).square().sum().backward()
    for dec in plain.dec:
        g = dec[0].weight.grad
        half = g.shape[1] // 2
        assert torch.equal(g[:, :half], torch.zeros_like(g[:, :half]))
        assert g[:, half:].abs().sum() > 0


def test_shape_errors() -> None:
    with pytest.raises(LandscapeError, match="divisible by 4"):
        UNet()(torch.randn(1, 1, 6, 6))
    with pytest.raises(LandscapeError, match="in_channels=3"):
        UNet()(torch.randn(1, 3, 8, 8))
    with pytest.raises(LandscapeError, match="levels"):
        UNet(levels=0)


@pytest.mark.parametrize("shortcut", [True, False])
def test_trains_on_denoising_and_goes_through_the_toolkit(tmp_path, capsys, shortcut) -> None:
    data = DataSpec("digits-denoise", subset=64)
    spec = ModelSpec("unet", {"channels": 4, "shortcut": shortcut})
    run = train_tiny(tmp_path, spec, data, epochs=3, lr=0.02)
    losses = [h["train_loss"] for h in run.history]
    assert losses[-1] < losses[0]
    assert all(h["train_acc"] is None and h["test_acc"] is None for h in run.history)
    # the training loss is the mean squared error over pixels
    model = load_checkpoint(run.final).model
    d = load_data(data)
    with torch.no_grad():
        mse = float((model.eval()(d.x) - d.y).pow(2).mean())
    assert mse == pytest.approx(losses[-1], rel=1e-5)
    # the U-Net has no residual blocks or gates: the probe refuses it in one line
    err = through_the_pipeline(tmp_path, run, capsys, loss="mse", probe="refused")
    assert "UNet has no built-in residual blocks" in err


@pytest.mark.parametrize("shortcut", [True, False])
def test_hessian_through_the_unet_matches_dense_truth(shortcut) -> None:
    """Transposed convolutions, pooling and concatenation have exact HVPs (both methods) and
    the exact Hessian of the decoder's last weights under the mean squared error."""
    from landscape.hessian.operator import HessianOperator
    from tests.reference import dense_from_operator, exact_hessian

    torch.manual_seed(0)
    model = UNet(channels=2, shortcut=shortcut).double().eval()
    data = load_data(DataSpec("digits-denoise", subset=12))
    names = ["up.1.weight", "out.weight", "out.bias"]
    others = [k for k, _ in model.named_parameters() if k not in names]
    graph = HessianOperator(model, data, loss="mse", dtype=torch.float64, method="graph")
    func = HessianOperator(model, data, loss="mse", dtype=torch.float64, method="func")
    v = torch.randn(graph.shape[0], dtype=torch.float64)
    hv = graph @ v
    assert torch.isfinite(hv).all() and hv.abs().sum() > 0
    torch.testing.assert_close(func @ v, hv, rtol=1e-9, atol=1e-11)
    op = HessianOperator(model, data, loss="mse", dtype=torch.float64, ignore=others)
    truth = exact_hessian(model, data.x, data.y, names, loss="mse")
    torch.testing.assert_close(dense_from_operator(op), truth, rtol=1e-7, atol=1e-10)
