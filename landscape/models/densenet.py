"""DenseNet-BC for CIFAR (Huang et al. 2017) and a plain (no-skip) twin with the same tensors.

Three dense blocks of ``n = (depth - 4) / 6`` bottleneck layers each; a layer computes
``conv3x3(relu(bn(conv1x1(relu(bn(x))))))`` with ``4k`` then ``k`` (growth rate) channels and
its output is *concatenated* to its input, so every layer sees every earlier feature map of its
block. Transitions (BN, ReLU, 1x1 convolution compressing the channels by ``compression``,
2x2 average pooling) join the blocks; the stem is a 3x3 convolution with ``2k`` channels and
the head BN, ReLU, global average pooling and a linear layer. DenseNet-BC-100 with ``k = 12``
has 769,162 parameters (the paper's 0.8M).

The concatenations are DenseNet's skip connections. ``shortcut=False`` builds a plain twin
with exactly the same modules and ``state_dict``: every layer, transition and the head still
receive the whole concatenation (so BatchNorm statistics are computed as before), but after
their BN-ReLU the channels of all feature maps except the most recent one are zeroed, so the
network is a chain ``stem -> layer -> layer -> ... -> transition -> ...`` in which each layer
sees only its predecessor's ``k`` maps (the first layer of a block sees the whole block
input). The convolution weights and BN parameters of the zeroed channels get zero gradient.

References
----------
.. [1] G. Huang, Z. Liu, L. van der Maaten and K. Q. Weinberger, "Densely Connected
   Convolutional Networks", CVPR 2017.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import LandscapeError, check_float, check_int
from ._common import check_bool, check_images, init_he, scale_channels

__all__ = ["DenseLayer", "Transition", "DenseNet", "densenet_bc100", "densenet_bc40"]


def _keep_last(a: Tensor, keep: int | None) -> Tensor:
    """Zero all channels of ``a`` but the last ``keep`` (``None``: keep all)."""
    if keep is None or keep >= a.shape[1]:
        return a
    return torch.cat([torch.zeros_like(a[:, :-keep]), a[:, -keep:]], dim=1)


class DenseLayer(nn.Module):
    """One bottleneck layer: BN-ReLU-Conv1x1 (``4k``), BN-ReLU-Conv3x3 (``k``).

    ``forward(x, keep)`` returns the ``k`` new maps; with ``keep`` set, only the last ``keep``
    input channels reach the convolution (the plain twin).
    """

    def __init__(self, in_planes: int, growth_rate: int) -> None:
        super().__init__()
        inner = 4 * growth_rate
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, inner, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, growth_rate, kernel_size=3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor, keep: int | None = None) -> Tensor:
        a = _keep_last(self.relu(self.bn1(x)), keep)
        return self.conv2(self.relu(self.bn2(self.conv1(a))))


class Transition(nn.Module):
    """BN-ReLU-Conv1x1 (compression) and 2x2 average pooling between dense blocks."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: Tensor, keep: int | None = None) -> Tensor:
        return self.pool(self.conv(_keep_last(self.relu(self.bn(x)), keep)))


class DenseNet(nn.Module):
    """DenseNet-BC for CIFAR-sized inputs, or its plain (no-concatenation) twin.

    Parameters
    ----------
    depth : int, default=100
        ``6n + 4`` (40, 100, 190, ...): ``n`` bottleneck layers in each of three blocks.
    growth_rate : int, default=12
        ``k``: maps added by each layer (before the width multiplier).
    shortcut : bool, default=True
        ``False``: the plain twin described in the module docstring (same ``state_dict``).
    in_channels : int, default=3
        Channels of the input images.
    num_classes : int, default=10
        Outputs of the linear head.
    width : int or float, default=1
        Multiplier of the growth rate: ``k = round(growth_rate * width)`` (at least 1).
    compression : float, default=0.5
        ``theta`` in (0, 1]: a transition keeps ``floor(theta * channels)`` maps.

    Attributes
    ----------
    k : int
        The growth rate after the width multiplier.
    num_layers : int
        Layers per dense block.

    References
    ----------
    .. [1] G. Huang, Z. Liu, L. van der Maaten and K. Q. Weinberger, "Densely Connected
       Convolutional Networks", CVPR 2017.

    Examples
    --------
    >>> import torch
    >>> net = DenseNet(40, in_channels=1)
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> DenseNet(40, in_channels=1, shortcut=False).load_state_dict(net.state_dict())
    <All keys matched successfully>
    """

    def __init__(
        self,
        depth: int = 100,
        growth_rate: int = 12,
        shortcut: bool = True,
        in_channels: int = 3,
        num_classes: int = 10,
        width: float = 1,
        compression: float = 0.5,
    ) -> None:
        super().__init__()
        depth = check_int("depth", depth, low=10)
        if (depth - 4) % 6 != 0:
            raise LandscapeError(
                "The 'depth' parameter must be an int of the form 6n+4 (40, 100, 190, ...). "
                f"Got {depth!r} instead."
            )
        self.depth = depth
        self.growth_rate = check_int("growth_rate", growth_rate, low=1)
        self.shortcut = check_bool("shortcut", shortcut)
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.width = check_float("width", width, low=0.0, closed="neither")
        self.compression = check_float("compression", compression, 0.0, 1.0, closed="right")
        self.num_layers = (depth - 4) // 6
        self.k = k = scale_channels(self.growth_rate, self.width)

        c = 2 * k
        self.conv1 = nn.Conv2d(self.in_channels, c, kernel_size=3, padding=1, bias=False)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        for i in range(3):
            self.blocks.append(nn.ModuleList(
                DenseLayer(c + j * k, k) for j in range(self.num_layers)))
            c += self.num_layers * k
            if i < 2:
                out = max(1, math.floor(self.compression * c))
                self.transitions.append(Transition(c, out))
                c = out
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=False)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, self.num_classes)
        init_he(self)

    def forward(self, x: Tensor) -> Tensor:
        check_images("DenseNet", x, self.in_channels)
        out = self.conv1(x)
        keep: int | None = None  # channels of the most recent map (plain twin only)
        for i, block in enumerate(self.blocks):
            feats = out
            if not self.shortcut:
                keep = out.shape[1]
            for layer in block:
                new = layer(feats, keep)
                feats = torch.cat([feats, new], dim=1)
                if not self.shortcut:
                    keep = self.k
            out = feats
            if i < len(self.transitions):
                out = self.transitions[i](out, keep)
        out = _keep_last(self.relu(self.bn(out)), keep)
        return self.fc(self.avgpool(out).flatten(1))

    def extra_repr(self) -> str:
        return (f"depth={self.depth}, growth_rate={self.k}, shortcut={self.shortcut}, "
                f"compression={self.compression:g}")


def densenet_bc100(
    *, growth_rate: int = 12, shortcut: bool = True, in_channels: int = 3,
    num_classes: int = 10, width: float = 1,
) -> DenseNet:
    """DenseNet-BC-100, ``k = 12`` (769,162 parameters on CIFAR-10); see :class:`DenseNet`."""
    return DenseNet(100, growth_rate, shortcut, in_channels, num_classes, width)


def densenet_bc40(
    *, growth_rate: int = 12, shortcut: bool = True, in_channels: int = 3,
    num_classes: int = 10, width: float = 1,
) -> DenseNet:
    """DenseNet-BC-40, ``k = 12``: a small one for CPU runs; see :class:`DenseNet`."""
    return DenseNet(40, growth_rate, shortcut, in_channels, num_classes, width)
