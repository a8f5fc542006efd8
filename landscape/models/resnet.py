"""CIFAR-style residual networks and their plain (no-skip) twins.

The ResNets of He et al. (2016, section 4.2): a 3x3 stem, three stages of ``n`` basic blocks
with 16, 32 and 64 channels (times a WRN-style ``width`` multiplier), global average pooling and
a linear head, ``depth = 6n + 2`` layers in all. Downsampling blocks use a projection shortcut
(1x1 convolution with stride 2, then BatchNorm; "option B"). ``bottleneck=True`` uses the
bottleneck block of the deeper ResNets instead (1x1 reduce, 3x3, 1x1 expand by 4), with
``depth = 9n + 2``: ResNet-164 is the CIFAR bottleneck network of He et al. (2016b).

``shortcut=False`` builds the plain twin used by Li et al. (2018) to show how skip connections
smooth the loss surface. The twin has *exactly* the same modules, ``state_dict`` keys and
shapes as the residual network -- projection shortcuts included -- and only its ``forward``
differs: it ignores every shortcut. A checkpoint of one twin therefore loads into the other,
and random directions drawn with the same seed line up parameter by parameter. The projection
parameters of a plain net are simply unused by the loss (their gradient is ``None``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._common import (
    CifarResNet,
    ShortcutUnit,
    check_images,
    depth_factory,
    make_stages,
    post_activation_forward,
    projection,
    shortcut_out,
)
from ._common import conv3x3 as _conv3x3

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet20",
    "resnet56",
    "resnet110",
    "resnet164",
]


class BasicBlock(ShortcutUnit):
    """Two 3x3 convolutions with BatchNorm and an (optionally used) shortcut.

    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + s(x))`` where ``s`` is the identity or, when the
    block changes the resolution or the number of channels, ``downsample`` (1x1 convolution and
    BatchNorm). With ``shortcut=False`` the ``+ s(x)`` term is dropped but ``downsample`` is
    still created, so that both variants have the same parameters.

    Parameters
    ----------
    in_planes : int
        Input channels.
    planes : int
        Output channels.
    stride : int, default=1
        Stride of the first convolution (2 in the first block of stages 2 and 3).
    shortcut : bool, default=True
        Whether ``forward`` adds the shortcut.

    Attributes
    ----------
    downsample : nn.Sequential or None
        The projection shortcut, or ``None`` for an identity shortcut.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__(shortcut)
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = projection(in_planes, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return shortcut_out(self, out, x)


class Bottleneck(ShortcutUnit):
    """A post-activation bottleneck block: 1x1 reduce, 3x3, 1x1 expand (times 4).

    ``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + s(x))`` with ``s`` the identity
    or, when the shape changes, ``downsample`` (1x1 convolution and BatchNorm). As for
    :class:`BasicBlock`, ``shortcut=False`` drops ``+ s(x)`` but keeps ``downsample``.

    Parameters
    ----------
    in_planes : int
        Input channels.
    planes : int
        Channels of the 1x1 and 3x3 convolutions inside the block; the output has
        ``4 * planes`` channels.
    stride : int, default=1
        Stride of the 3x3 convolution.
    shortcut : bool, default=True
        Whether ``forward`` adds the shortcut.
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__(shortcut)
        out_planes = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = projection(in_planes, out_planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return shortcut_out(self, out, x)


class ResNet(CifarResNet):
    """CIFAR-style ResNet of depth ``6n + 2`` (He et al., 2016), or its plain twin.

    Parameters
    ----------
    depth : int
        Number of weighted layers, ``6n + 2`` with ``n >= 1`` (20, 32, 44, 56, 110, ...);
        each of the three stages holds ``n`` basic blocks. With ``bottleneck=True``,
        ``9n + 2`` (29, 56, 110, 164, ...) and ``n`` bottleneck blocks per stage.
    shortcut : bool, default=True
        ``True`` for the residual network; ``False`` for the plain twin, whose ``forward``
        ignores every shortcut but which keeps the projection modules, so that both twins
        have identical ``state_dict`` keys and shapes (checkpoints and same-seed directions
        are interchangeable; the unused projection parameters get no gradient).
    in_channels : int, default=3
        Channels of the input images (3 for CIFAR, 1 for the 8x8 digits).
    num_classes : int, default=10
        Outputs of the linear head.
    width : int or float, default=1
        Channel multiplier (wide ResNets, Zagoruyko & Komodakis 2016): the stages have
        ``round(16 * width)``, ``round(32 * width)`` and ``round(64 * width)`` channels (at
        least one each). Must be > 0.
    bottleneck : bool, default=False
        Use :class:`Bottleneck` blocks (stage outputs 4x the channels above) instead of
        :class:`BasicBlock`.

    Attributes
    ----------
    channels : tuple of int
        Channels of the three stages after the width multiplier (inside the blocks for
        bottleneck networks, whose stage outputs have 4x as many).
    num_blocks : int
        Blocks per stage, ``n = (depth - 2) / 6``.

    Notes
    -----
    Any input resolution works (the head follows a global average pool); the two stride-2
    stages divide it by 4, e.g. 32x32 -> 8x8 and 8x8 -> 2x2. Convolutions are initialised with
    ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, BatchNorm with weight 1 and bias
    0, and the linear head keeps PyTorch's default initialisation.

    The two projection shortcuts add 2,752 parameters (at ``width=1``) to the counts of the
    paper, which used parameter-free shortcuts: ResNet-20 has 272,474 parameters here
    (269,722 + 2,752) and ResNet-56 855,770 (853,018 + 2,752).

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Deep Residual Learning for Image Recognition",
       CVPR 2016.
    .. [2] K. He, X. Zhang, S. Ren and J. Sun, "Identity Mappings in Deep Residual Networks",
       ECCV 2016 (ResNet-164, bottleneck).
    .. [3] S. Zagoruyko and N. Komodakis, "Wide Residual Networks", BMVC 2016.
    .. [4] H. Li, Z. Xu, G. Taylor, C. Studer and T. Goldstein, "Visualizing the Loss Landscape
       of Neural Nets", NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> net = ResNet(20, in_channels=1)
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> plain = ResNet(20, shortcut=False, in_channels=1)
    >>> plain.load_state_dict(net.state_dict())
    <All keys matched successfully>
    """

    units = (BasicBlock, Bottleneck)

    def _build_body(self, block: Any) -> None:
        self.bn1 = nn.BatchNorm2d(self.channels[0])
        self.relu = nn.ReLU(inplace=False)
        self.layer1, self.layer2, self.layer3 = make_stages(block, self.channels, self.num_blocks,
                                                            self.shortcut)

    def forward(self, x: Tensor) -> Tensor:
        check_images("ResNet", x, self.in_channels)
        return post_activation_forward(self, x)


resnet20 = depth_factory(
    ResNet, 20, "resnet20",
    """ResNet-20 (``n = 3``; 272,474 parameters on CIFAR-10); see :class:`ResNet`.""")
resnet56 = depth_factory(
    ResNet, 56, "resnet56",
    """ResNet-56 (``n = 9``; 855,770 parameters on CIFAR-10); see :class:`ResNet`.""")
resnet110 = depth_factory(
    ResNet, 110, "resnet110",
    """ResNet-110 (``n = 18``; 1,730,714 parameters on CIFAR-10); see :class:`ResNet`.""")
resnet164 = depth_factory(
    ResNet, 164, "resnet164",
    """ResNet-164 with bottleneck blocks (``n = 18``; 1,704,154 parameters on CIFAR-10).

    The post-activation bottleneck network of He et al. (2016b, table 1; 1.7M parameters);
    see :class:`ResNet`.
    """, bottleneck=True)
