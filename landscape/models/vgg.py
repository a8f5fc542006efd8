"""The VGG networks of Li et al. (2018): VGG-9 and VGG-16 for CIFAR, with BatchNorm.

As in Li et al.'s code (``cifar10/models/vgg.py``): 3x3 convolutions with bias, each followed
by BatchNorm and ReLU; 2x2 max pooling with ``ceil_mode=True`` at each ``"M"``; then one hidden
fully connected layer (``Linear`` to as many features as the last convolution has channels,
``BatchNorm1d``, ReLU) and the linear classifier. VGG-9 is the configuration
``[64, 64, M, 128, 128, M, 256, 256, 256, M]`` (seven convolutions and two linear layers):
2,789,706 parameters on 32x32 CIFAR-10 images, the count of their code. VGG-16 has 13
convolutions in five pooled stages, 14,991,946 parameters on CIFAR-10.

VGG has no skip connection, so it has no plain twin: it is the plain baseline of Li et al.'s
comparison. With ``ceil_mode`` pooling an 8x8 digit shrinks 8 -> 4 -> 2 -> 1 and then stays
1x1, so VGG-16 runs on the digits too.

References
----------
.. [1] K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
   Recognition", ICLR 2015.
.. [2] H. Li, Z. Xu, G. Taylor, C. Studer and T. Goldstein, "Visualizing the Loss Landscape
   of Neural Nets", NeurIPS 2018.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import LandscapeError, check_float, check_int
from ._common import check_images, scale_channels

__all__ = ["VGG", "VGG_CONFIGS", "vgg9", "vgg16"]

#: Convolution channels ("M": 2x2 max pooling) of Li et al.'s VGG configurations.
VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    9: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG-9 or VGG-16 in the form of Li et al.'s CIFAR code.

    Parameters
    ----------
    depth : {9, 16}, default=9
        Which configuration (:data:`VGG_CONFIGS`).
    in_channels : int, default=3
        Channels of the input images.
    num_classes : int, default=10
        Outputs of the classifier.
    width : int or float, default=1
        Channel multiplier of every convolution (and of the hidden linear layer).
    image_size : int, default=32
        Side of the (square) input images; it fixes the input features of the hidden linear
        layer (``channels * s * s`` with ``s`` the side after the poolings).

    Attributes
    ----------
    features : nn.Sequential
        Convolutions, BatchNorm, ReLU and pooling.
    fc : nn.Sequential
        ``Linear``, ``BatchNorm1d``, ReLU.
    classifier : nn.Linear
        The last layer.

    Examples
    --------
    >>> import torch
    >>> VGG(9, in_channels=1, image_size=8)(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        depth: int = 9,
        in_channels: int = 3,
        num_classes: int = 10,
        width: float = 1,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if depth not in VGG_CONFIGS or isinstance(depth, bool):
            raise LandscapeError(
                f"The 'depth' parameter must be one of {sorted(VGG_CONFIGS)}. Got {depth!r} "
                "instead."
            )
        self.depth = depth
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.width = check_float("width", width, low=0.0, closed="neither")
        self.image_size = check_int("image_size", image_size, low=1)
        layers: list[nn.Module] = []
        c, side = self.in_channels, self.image_size
        for v in VGG_CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                side = math.ceil(side / 2)
            else:
                out = scale_channels(int(v), self.width)
                layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.BatchNorm2d(out),
                           nn.ReLU(inplace=False)]
                c = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c * side * side, c), nn.BatchNorm1d(c),
                                nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_images("VGG", x, self.in_channels)
        if x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise LandscapeError(
                f"VGG expects {self.image_size}x{self.image_size} images. Got shape "
                f"{tuple(x.shape)} instead. Build it with image_size={x.shape[2]} for such data."
            )
        out = self.features(x).flatten(1)
        return self.classifier(self.fc(out))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width:g}, image_size={self.image_size}"


def vgg9(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1, image_size: int = 32
) -> VGG:
    """Li et al.'s VGG-9 (2,789,706 parameters on CIFAR-10); see :class:`VGG`."""
    return VGG(9, in_channels, num_classes, width, image_size)


def vgg16(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1, image_size: int = 32
) -> VGG:
    """Li et al.'s VGG-16 with BatchNorm (14,991,946 parameters on CIFAR-10); see :class:`VGG`."""
    return VGG(16, in_channels, num_classes, width, image_size)
