"""CIFAR-style residual networks and their plain (no-skip) twins.

The ResNets of He et al. (2016, section 4.2): a 3x3 stem, three stages of ``n`` basic blocks
with 16, 32 and 64 channels (times a WRN-style ``width`` multiplier), global average pooling and
a linear head, ``depth = 6n + 2`` layers in all. Downsampling blocks use a projection shortcut
(1x1 convolution with stride 2, then BatchNorm; "option B").

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

from ..errors import LandscapeError, check_float, check_int

__all__ = [
    "BasicBlock",
    "ResNet",
    "resnet20",
    "resnet56",
    "resnet110",
]

#: Channels of the three stages before the width multiplier.
_BASE_CHANNELS = (16, 32, 64)


def _check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a ``bool`` (not merely truthy) and return it."""
    if not isinstance(value, bool):
        raise LandscapeError(f"The '{name}' parameter must be a bool. Got {value!r} instead.")
    return value


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
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

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"


class ResNet(nn.Module):
    """CIFAR-style ResNet of depth ``6n + 2`` (He et al., 2016), or its plain twin.

    Parameters
    ----------
    depth : int
        Number of weighted layers, ``6n + 2`` with ``n >= 1`` (20, 32, 44, 56, 110, ...);
        each of the three stages holds ``n`` basic blocks.
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

    Attributes
    ----------
    channels : tuple of int
        Channels of the three stages after the width multiplier.
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
    .. [2] S. Zagoruyko and N. Komodakis, "Wide Residual Networks", BMVC 2016.
    .. [3] H. Li, Z. Xu, G. Taylor, C. Studer and T. Goldstein, "Visualizing the Loss Landscape
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

    def __init__(
        self,
        depth: int,
        shortcut: bool = True,
        in_channels: int = 3,
        num_classes: int = 10,
        width: float = 1,
    ) -> None:
        super().__init__()
        depth = check_int("depth", depth, low=8)
        if (depth - 2) % 6 != 0:
            raise LandscapeError(
                "The 'depth' parameter must be an int of the form 6n+2 "
                f"(20, 32, 44, 56, 110, ...). Got {depth!r} instead."
            )
        self.depth = depth
        self.shortcut = _check_bool("shortcut", shortcut)
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.width = check_float("width", width, low=0.0, closed="neither")
        self.num_blocks = (depth - 2) // 6
        self.channels = tuple(max(1, round(c * self.width)) for c in _BASE_CHANNELS)

        c1, c2, c3 = self.channels
        self.conv1 = _conv3x3(self.in_channels, c1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=False)
        self.layer1 = self._make_stage(c1, c1, stride=1)
        self.layer2 = self._make_stage(c1, c2, stride=2)
        self.layer3 = self._make_stage(c2, c3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, self.num_classes)
        self._init_weights()

    def _make_stage(self, in_planes: int, planes: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_planes, planes, stride, self.shortcut)]
        blocks += [BasicBlock(planes, planes, 1, self.shortcut) for _ in range(self.num_blocks - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            msg = (
                f"ResNet expects images of shape (B, {self.in_channels}, H, W). "
                f"Got shape {tuple(x.shape)} instead."
            )
            if x.ndim == 4:
                msg += f" Build it with in_channels={x.shape[1]} for such data."
            raise LandscapeError(msg)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(self.avgpool(out).flatten(1))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, shortcut={self.shortcut}, width={self.width:g}"


def resnet20(
    *, shortcut: bool = True, in_channels: int = 3, num_classes: int = 10, width: float = 1
) -> ResNet:
    """ResNet-20 (``n = 3``; 272,474 parameters on CIFAR-10); see :class:`ResNet`."""
    return ResNet(20, shortcut, in_channels, num_classes, width)


def resnet56(
    *, shortcut: bool = True, in_channels: int = 3, num_classes: int = 10, width: float = 1
) -> ResNet:
    """ResNet-56 (``n = 9``; 855,770 parameters on CIFAR-10); see :class:`ResNet`."""
    return ResNet(56, shortcut, in_channels, num_classes, width)


def resnet110(
    *, shortcut: bool = True, in_channels: int = 3, num_classes: int = 10, width: float = 1
) -> ResNet:
    """ResNet-110 (``n = 18``; 1,730,714 parameters on CIFAR-10); see :class:`ResNet`."""
    return ResNet(110, shortcut, in_channels, num_classes, width)
