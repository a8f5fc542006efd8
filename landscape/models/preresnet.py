"""Pre-activation ResNets (He et al. 2016b, CIFAR form) and their plain (no-skip) twins.

A pre-activation unit moves BatchNorm and ReLU in front of each convolution,
``x + F(x)`` with ``F = conv(relu(bn(conv(relu(bn(x))))))``, so that nothing follows the
addition: the skip path is *exactly* the identity, and a stack of units passes its input
through unchanged when every branch is zero ("for new architectures, prefer the
pre-activation form"). The network is a 3x3 stem convolution, three stages of ``n`` units
(16, 32 and 64 channels, times ``width``), a final BatchNorm and ReLU, global average pooling
and a linear head. ``depth = 6n + 2`` with basic units (PreResNet-20/56/110) or ``9n + 2``
with bottleneck units (1x1, 3x3, 1x1 with 4x expansion; PreResNet-164).

Where a unit changes the resolution or the channels, the shortcut is a 1x1 convolution (stride
2 between stages) applied, as in the authors' code, to the unit's pre-activated input
``relu(bn1(x))``. ``shortcut=False`` builds the plain twin with *exactly* the same modules,
``state_dict`` keys and shapes (projections included, unused by its ``forward``), as for
:class:`~landscape.models.ResNet`.

References
----------
.. [1] K. He, X. Zhang, S. Ren and J. Sun, "Identity Mappings in Deep Residual Networks",
   ECCV 2016.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._common import CifarResNet, ShortcutUnit, check_images, conv3x3, depth_factory, make_stages

__all__ = [
    "PreActBlock",
    "PreActBottleneck",
    "PreResNet",
    "preresnet20",
    "preresnet56",
    "preresnet110",
    "preresnet164",
]


class PreActBlock(ShortcutUnit):
    """A pre-activation basic unit: ``x + conv2(relu(bn2(conv1(relu(bn1(x))))))``.

    Parameters
    ----------
    in_planes : int
        Input channels.
    planes : int
        Output channels.
    stride : int, default=1
        Stride of the first convolution.
    shortcut : bool, default=True
        Whether ``forward`` adds the shortcut (the plain twin drops it).

    Attributes
    ----------
    downsample : nn.Conv2d or None
        The 1x1 projection (on ``relu(bn1(x))``) where the shape changes, else ``None``: the
        skip is then the identity itself.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__(shortcut)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=False)
        self.downsample: nn.Conv2d | None = None
        if stride != 1 or in_planes != planes * self.expansion:
            self.downsample = nn.Conv2d(
                in_planes, planes * self.expansion, kernel_size=1, stride=stride, bias=False
            )

    def branch(self, a: Tensor) -> Tensor:
        """The residual branch ``F`` applied to the pre-activated input ``a = relu(bn1(x))``."""
        return self.conv2(self.relu(self.bn2(self.conv1(a))))

    def forward(self, x: Tensor) -> Tensor:
        a = self.relu(self.bn1(x))
        out = self.branch(a)
        if not self.shortcut:
            return out
        return out + (x if self.downsample is None else self.downsample(a))


class PreActBottleneck(PreActBlock):
    """A pre-activation bottleneck unit: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (4x), plus ``x``.

    Parameters
    ----------
    in_planes : int
        Input channels.
    planes : int
        Channels of the 1x1 and 3x3 convolutions; the output has ``4 * planes``.
    stride : int, default=1
        Stride of the 3x3 convolution.
    shortcut : bool, default=True
        Whether ``forward`` adds the shortcut.
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True) -> None:
        ShortcutUnit.__init__(self, shortcut)
        out_planes = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Conv2d(
                in_planes, out_planes, kernel_size=1, stride=stride, bias=False
            )

    def branch(self, a: Tensor) -> Tensor:
        out = self.conv2(self.relu(self.bn2(self.conv1(a))))
        return self.conv3(self.relu(self.bn3(out)))


class PreResNet(CifarResNet):
    """CIFAR-style pre-activation ResNet (He et al., 2016b), or its plain twin.

    Parameters
    ----------
    depth : int
        Weighted layers: ``6n + 2`` for basic units (20, 56, 110, ...), ``9n + 2`` with
        ``bottleneck=True`` (164, ...); each of the three stages holds ``n`` units.
    shortcut : bool, default=True
        ``False`` builds the plain twin: same modules and ``state_dict`` (the projection
        convolutions stay, unused), ``forward`` without any skip.
    in_channels : int, default=3
        Channels of the input images (1 for the 8x8 digits).
    num_classes : int, default=10
        Outputs of the linear head.
    width : int or float, default=1
        Channel multiplier: stages of ``round(16 w)``, ``round(32 w)``, ``round(64 w)``
        channels (inside the units for bottleneck networks, whose outputs have 4x as many).
    bottleneck : bool, default=False
        Use :class:`PreActBottleneck` units instead of :class:`PreActBlock`.

    Attributes
    ----------
    channels : tuple of int
        Channels of the three stages after the width multiplier.
    num_blocks : int
        Units per stage.

    Notes
    -----
    Parameter counts on CIFAR-10 (``width=1``): PreResNet-110 1,730,522 and PreResNet-164
    (bottleneck) 1,703,258, the paper's "1.7M" for both (its figures have two significant
    digits; the 1x1 projections add 2,560 and 41,984 parameters to parameter-free
    shortcuts). Initialisation as for :class:`~landscape.models.ResNet` (Kaiming normal, fan
    out; BatchNorm 1 and 0).

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Identity Mappings in Deep Residual Networks",
       ECCV 2016.

    Examples
    --------
    >>> import torch
    >>> net = PreResNet(20, in_channels=1)
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> PreResNet(20, shortcut=False, in_channels=1).load_state_dict(net.state_dict())
    <All keys matched successfully>
    """

    units = (PreActBlock, PreActBottleneck)

    def _build_body(self, block: Any) -> None:
        self.layer1, self.layer2, self.layer3 = make_stages(block, self.channels, self.num_blocks,
                                                            self.shortcut)
        self.bn = nn.BatchNorm2d(block.expansion * self.channels[-1])
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        check_images("PreResNet", x, self.in_channels)
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = self.relu(self.bn(out))
        return self.fc(self.avgpool(out).flatten(1))


preresnet20 = depth_factory(
    PreResNet, 20, "preresnet20",
    """Pre-activation ResNet-20 (basic units, ``n = 3``); see :class:`PreResNet`.""")
preresnet56 = depth_factory(
    PreResNet, 56, "preresnet56",
    """Pre-activation ResNet-56 (basic units, ``n = 9``); see :class:`PreResNet`.""")
preresnet110 = depth_factory(
    PreResNet, 110, "preresnet110",
    """Pre-activation ResNet-110 (basic units, ``n = 18``; 1,730,522 parameters on CIFAR-10).

    See :class:`PreResNet`.
    """)
preresnet164 = depth_factory(
    PreResNet, 164, "preresnet164",
    """Pre-activation ResNet-164 (bottleneck units, ``n = 18``; 1,703,258 parameters on CIFAR-10).

    See :class:`PreResNet`.
    """, bottleneck=True)
