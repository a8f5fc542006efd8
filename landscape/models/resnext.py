"""CIFAR ResNeXt (Xie et al., 2017) and its plain (no-skip) twin.

ResNeXt-29 for CIFAR (section 5.3 of the paper, the ``fb.resnet.torch``-based code of the
authors): a 3x3 stem to 64 channels, three stages of ``n`` bottleneck blocks with outputs of
256, 512 and 1024 channels (the second and third start with stride 2), global average pooling
and a linear head; ``depth = 9n + 2`` (29: ``n = 3``). Each block is ``1x1 -> grouped 3x3 ->
1x1``: the 1x1 reduction has ``C * d`` channels, with ``C`` the *cardinality* (groups of the
3x3 convolution) and ``d`` the *bottleneck width* (channels per group), ``d`` doubling at each
stage (``64, 128, 256`` for "8x64d"). Shortcuts are the identity, or a 1x1 projection with
BatchNorm where the shape changes (stage entries).

The blocks are :class:`~landscape.models.Bottleneck` blocks with a grouped middle
convolution (:class:`ResNeXtBlock` subclasses it), so the mechanism analyses
(:mod:`landscape.mechanisms`) find and split them like the ResNet's. ``shortcut=False`` builds
the plain twin with the same modules, ``state_dict`` keys and shapes (projections kept and
unused), as for :class:`~landscape.models.ResNet`.

Parameter counts on CIFAR-10 (``in_channels=3``, ``num_classes=10``): 8x64d 34,426,698 and
16x64d 68,155,210, the paper's 34.4M and 68.1M (Table 7).

References
----------
.. [1] S. Xie, R. Girshick, P. Dollár, Z. Tu and K. He, "Aggregated Residual Transformations
   for Deep Neural Networks", CVPR 2017.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import check_float, check_int
from ._common import (
    ShortcutUnit,
    check_bool,
    check_cifar_depth,
    check_images,
    init_he,
    post_activation_forward,
    projection,
    scale_channels,
)
from ._common import conv3x3 as _conv3x3
from .resnet import Bottleneck

__all__ = ["ResNeXt", "ResNeXtBlock", "resnext29_8x64d", "resnext29_16x64d"]


class ResNeXtBlock(Bottleneck):
    """A ResNeXt bottleneck block: 1x1 to ``C * d``, grouped 3x3 (``C`` groups), 1x1 out.

    ``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + s(x))``, with ``s`` the identity
    or ``downsample`` (1x1 convolution and BatchNorm, kept but unused when
    ``shortcut=False``); the forward of :class:`~landscape.models.Bottleneck`.

    Parameters
    ----------
    in_planes : int
        Input channels.
    inner : int
        Channels of the 1x1 reduction and the grouped 3x3 convolution (``C * d``).
    out_planes : int
        Output channels.
    cardinality : int
        Groups of the 3x3 convolution (must divide ``inner``).
    stride : int, default=1
        Stride of the 3x3 convolution.
    shortcut : bool, default=True
        Whether ``forward`` adds the shortcut.
    """

    def __init__(self, in_planes: int, inner: int, out_planes: int, cardinality: int,
                 stride: int = 1, shortcut: bool = True) -> None:
        ShortcutUnit.__init__(self, shortcut)
        self.cardinality = cardinality
        self.conv1 = nn.Conv2d(in_planes, inner, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, kernel_size=3, stride=stride, padding=1,
                               groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = projection(in_planes, out_planes, stride)

    def extra_repr(self) -> str:
        return f"cardinality={self.cardinality}, shortcut={self.shortcut}"


class ResNeXt(nn.Module):
    """CIFAR ResNeXt of depth ``9n + 2`` (Xie et al., 2017), or its plain twin.

    Parameters
    ----------
    depth : int, default=29
        ``9n + 2`` (11, 20, 29, ...); ``n`` blocks per stage.
    cardinality : int, default=8
        Groups ``C`` of the 3x3 convolutions.
    bottleneck_width : int, default=64
        Channels per group ``d`` in the first stage (doubled at each later stage).
    shortcut : bool, default=True
        ``False``: the plain twin (same ``state_dict``; shortcuts ignored by ``forward``).
    in_channels : int, default=3
        Channels of the input images.
    num_classes : int, default=10
        Outputs of the linear head.
    width : int or float, default=1
        Multiplier of the stem (64) and stage output (256, 512, 1024) channels, for small
        versions; ``bottleneck_width`` sets the inner channels.

    Attributes
    ----------
    num_blocks : int
        Blocks per stage.
    stage_channels : tuple of int
        Output channels of the three stages.

    Examples
    --------
    >>> import torch
    >>> net = ResNeXt(11, cardinality=2, bottleneck_width=4, in_channels=1, width=0.125)
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, depth: int = 29, cardinality: int = 8, bottleneck_width: int = 64,
                 shortcut: bool = True, in_channels: int = 3, num_classes: int = 10,
                 width: float = 1) -> None:
        super().__init__()
        self.depth, self.num_blocks = check_cifar_depth(depth, bottleneck=True)
        self.cardinality = check_int("cardinality", cardinality, low=1)
        self.bottleneck_width = check_int("bottleneck_width", bottleneck_width, low=1)
        self.shortcut = check_bool("shortcut", shortcut)
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.width = check_float("width", width, low=0.0, closed="neither")
        stem = scale_channels(64, self.width)
        self.stage_channels = tuple(scale_channels(c, self.width) for c in (256, 512, 1024))
        self.conv1 = _conv3x3(self.in_channels, stem)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=False)
        c = stem
        stages = []
        for i, out in enumerate(self.stage_channels):
            inner = self.cardinality * self.bottleneck_width * 2**i
            blocks = []
            for j in range(self.num_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(ResNeXtBlock(c, inner, out, self.cardinality, stride,
                                           self.shortcut))
                c = out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, self.num_classes)
        init_he(self)

    def forward(self, x: Tensor) -> Tensor:
        check_images("ResNeXt", x, self.in_channels)
        return post_activation_forward(self, x)

    def extra_repr(self) -> str:
        return (f"depth={self.depth}, cardinality={self.cardinality}, "
                f"bottleneck_width={self.bottleneck_width}, shortcut={self.shortcut}, "
                f"width={self.width:g}")


def resnext29_8x64d(*, shortcut: bool = True, in_channels: int = 3,
                    num_classes: int = 10) -> ResNeXt:
    """ResNeXt-29 8x64d (34.4M parameters on CIFAR-10, Table 7); see :class:`ResNeXt`."""
    return ResNeXt(29, 8, 64, shortcut, in_channels, num_classes)


def resnext29_16x64d(*, shortcut: bool = True, in_channels: int = 3,
                     num_classes: int = 10) -> ResNeXt:
    """ResNeXt-29 16x64d (68.1M parameters on CIFAR-10, Table 7); see :class:`ResNeXt`."""
    return ResNeXt(29, 16, 64, shortcut, in_channels, num_classes)
