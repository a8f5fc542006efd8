"""The U-Net and its twin without long skips, on the digits-denoise task."""

from __future__ import annotations

import pytest
import torch

from landscape.checkpoints import load_checkpoint
from landscape.data import DataSpec, load_data
from landscape.errors import LandscapeError
from landscape.models import ModelSpec, UNet, build, skip_switch
from tests._pipeline import through_the_pipeline, train_tiny

pytestmark = pytest.mark.usefixtures("one_thread")


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
