"""A small U-Net (Ronneberger et al., 2015) for image-to-image tasks, and its skip-less twin.

An encoder of ``levels`` stages (two 3x3 convolutions with BatchNorm and ReLU, then 2x2 max
pooling) halves the resolution at each level and doubles the channels; a bottleneck stage
works at the lowest resolution; a decoder mirrors the encoder (a 2x2 transposed convolution
with stride 2 up, then two 3x3 convolutions); a 1x1 convolution maps to ``out_channels``. The
output has the input's shape (regress it with the mean squared error, e.g. on the
``"digits-denoise"`` data). 8x8 digits with ``levels=2`` go 8 -> 4 -> 2 -> 4 -> 8; 32x32
images work the same (the side must be divisible by ``2 ** levels``).

The long skip connections concatenate each encoder stage's output to the decoder's upsampled
map at the same resolution, as in the paper: they give the decoder a path to the
high-resolution features that does not pass through the bottleneck.

``shortcut=False`` builds the twin without them. Concatenation is kept, with **zeros of the
skip's shape** in place of the encoder's map, so the twin has exactly the same modules,
``state_dict`` keys and shapes (the decoder's first convolution still reads ``2c`` channels);
the weights that read the skip half multiply zeros, so they have no effect on the output and
get zero gradient -- like the unused projection shortcuts of the plain ResNet. (Additive skips
would also keep the shapes, but they are not the U-Net's design.) Nothing else differs: with
those weights set to zero in the skip model, both twins compute the same function.

References
----------
.. [1] O. Ronneberger, P. Fischer and T. Brox, "U-Net: Convolutional Networks for Biomedical
   Image Segmentation", MICCAI 2015.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import LandscapeError, check_int
from ._common import check_bool, check_images
from ._common import conv3x3 as _conv3x3

__all__ = ["UNet", "DoubleConv"]


class DoubleConv(nn.Sequential):
    """``relu(bn(conv3x3(relu(bn(conv3x3(x))))))`` from ``in_planes`` to ``planes`` channels."""

    def __init__(self, in_planes: int, planes: int) -> None:
        super().__init__(
            _conv3x3(in_planes, planes), nn.BatchNorm2d(planes), nn.ReLU(inplace=False),
            _conv3x3(planes, planes), nn.BatchNorm2d(planes), nn.ReLU(inplace=False),
        )


class UNet(nn.Module):
    """A U-Net with ``levels`` down- and up-sampling stages, or its twin without long skips.

    Parameters
    ----------
    in_channels : int, default=1
        Channels of the input images.
    out_channels : int or None, default=None
        Channels of the output (``None``: ``in_channels``, an image of the input's shape).
    channels : int, default=16
        Channels of the first encoder stage; stage ``i`` has ``channels * 2**i`` and the
        bottleneck ``channels * 2**levels``.
    levels : int, default=2
        Encoder stages (each halves the resolution).
    shortcut : bool, default=True
        ``True``: the decoder stages read the encoder's maps (concatenated); ``False``: the
        twin, which concatenates zeros instead (same parameters; see the module docstring).

    Attributes
    ----------
    down : nn.ModuleList
        The encoder stages (:class:`DoubleConv`).
    bottleneck : DoubleConv
        The stage at the lowest resolution.
    up : nn.ModuleList
        The transposed convolutions, deepest first.
    dec : nn.ModuleList
        The decoder stages, deepest first; ``dec[i]`` reads ``[skip, up]`` concatenated.
    out : nn.Conv2d
        The 1x1 output convolution.

    Examples
    --------
    >>> import torch
    >>> net = UNet()
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 1, 8, 8])
    >>> UNet(shortcut=False).load_state_dict(net.state_dict())
    <All keys matched successfully>
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None,
                 channels: int = 16, levels: int = 2, shortcut: bool = True) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.out_channels = (self.in_channels if out_channels is None
                             else check_int("out_channels", out_channels, low=1))
        self.channels = check_int("channels", channels, low=1)
        self.levels = check_int("levels", levels, low=1)
        self.shortcut = check_bool("shortcut", shortcut)
        widths = [self.channels * 2**i for i in range(self.levels + 1)]
        self.down = nn.ModuleList()
        c = self.in_channels
        for w in widths[:-1]:
            self.down.append(DoubleConv(c, w))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(c, widths[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(self.levels)):
            self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], kernel_size=2, stride=2))
            self.dec.append(DoubleConv(2 * widths[i], widths[i]))
        self.out = nn.Conv2d(widths[0], self.out_channels, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        check_images("UNet", x, self.in_channels)
        side = 2**self.levels
        if x.shape[2] % side or x.shape[3] % side:
            raise LandscapeError(
                f"UNet with levels={self.levels} expects image sides divisible by {side}. Got "
                f"shape {tuple(x.shape)} instead."
            )
        skips = []
        h = x
        for stage in self.down:
            h = stage(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottleneck(h)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            h = up(h)
            h = dec(torch.cat([skip if self.shortcut else torch.zeros_like(skip), h], dim=1))
        return self.out(h)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, channels={self.channels}, shortcut={self.shortcut}"
