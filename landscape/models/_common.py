"""Helpers shared by the reference models: argument checks, layers and input checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ..errors import LandscapeError, check_float, check_int

__all__ = ["CIFAR_CHANNELS", "CifarResNet", "ShortcutUnit", "check_bool", "check_cifar_resnet",
           "check_features", "check_images", "conv3x3", "depth_factory", "depth_repr",
           "fc_stack_forward", "init_he", "make_stage", "make_stages", "post_activation_forward",
           "projection", "scale_channels", "shortcut_out"]


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a ``bool`` (not merely truthy) and return it."""
    if not isinstance(value, bool):
        raise LandscapeError(f"The '{name}' parameter must be a bool. Got {value!r} instead.")
    return value


def check_cifar_depth(depth: Any, bottleneck: bool) -> tuple[int, int]:
    """Validate a CIFAR ResNet depth (6n+2 with basic blocks, 9n+2 with bottlenecks);
    returns ``(depth, n)`` with ``n`` the number of blocks per stage."""
    from ..errors import check_int

    per_block = 9 if bottleneck else 6
    depth = check_int("depth", depth, low=per_block + 2)
    if (depth - 2) % per_block != 0:
        examples = "29, 56, 110, 164" if bottleneck else "20, 32, 44, 56, 110"
        raise LandscapeError(
            f"The 'depth' parameter must be an int of the form {per_block}n+2 "
            f"({examples}, ...). Got {depth!r} instead."
        )
    return depth, (depth - 2) // per_block


#: Channels of the three stages of the CIFAR ResNets at ``width=1`` (He et al., 2016).
CIFAR_CHANNELS = (16, 32, 64)


def check_cifar_resnet(net: nn.Module, depth: Any, shortcut: Any, in_channels: Any,
                       num_classes: Any, width: Any, bottleneck: Any) -> None:
    """Check the parameters the CIFAR ResNets share and set them on ``net``: ``bottleneck``,
    ``depth`` and ``num_blocks`` (see :func:`check_cifar_depth`), ``shortcut``,
    ``in_channels``, ``num_classes``, ``width`` and the stage ``channels``."""
    net.bottleneck = check_bool("bottleneck", bottleneck)
    net.depth, net.num_blocks = check_cifar_depth(depth, net.bottleneck)
    net.shortcut = check_bool("shortcut", shortcut)
    net.in_channels = check_int("in_channels", in_channels, low=1)
    net.num_classes = check_int("num_classes", num_classes, low=1)
    net.width = check_float("width", width, low=0.0, closed="neither")
    net.channels = tuple(scale_channels(c, net.width) for c in CIFAR_CHANNELS)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """A bias-free 3x3 convolution with padding 1."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def scale_channels(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1 (the width multiplier of wide networks)."""
    return max(1, round(channels * width))


def check_features(model: str, x: Tensor, in_features: int) -> None:
    """Raise a one-line error unless ``x`` is a batch of samples with ``in_features``
    features each (any shape after the batch dimension)."""
    if x.ndim < 2 or x.shape[1:].numel() != in_features:
        raise LandscapeError(
            f"{model} expects inputs with {in_features} features per sample "
            f"(in_features={in_features}). Got shape {tuple(x.shape)} instead."
        )


def check_images(model: str, x: Tensor, in_channels: int) -> None:
    """Raise a one-line error unless ``x`` is a batch of ``in_channels``-channel images."""
    if x.ndim == 4 and x.shape[1] == in_channels:
        return
    msg = (
        f"{model} expects images of shape (B, {in_channels}, H, W). "
        f"Got shape {tuple(x.shape)} instead."
    )
    if x.ndim == 4:
        msg += f" Build it with in_channels={x.shape[1]} for such data."
    raise LandscapeError(msg)


def init_he(model: nn.Module) -> None:
    """He et al.'s initialisation, in place: every convolution
    ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, every BatchNorm weight 1 and bias
    0 (modules in :meth:`~torch.nn.Module.modules` order; the rest keep PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def make_stage(block: Any, in_planes: int, planes: int, stride: int, num_blocks: int,
               shortcut: bool) -> nn.Sequential:
    """``num_blocks`` residual units ``block(in, planes, stride, shortcut)``: the first takes
    ``in_planes`` channels with ``stride``, the others ``block.expansion * planes`` with
    stride 1."""
    out_planes = block.expansion * planes
    blocks = [block(in_planes, planes, stride, shortcut)]
    blocks += [block(out_planes, planes, 1, shortcut) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def make_stages(block: Any, channels: tuple[int, ...], num_blocks: int,
                shortcut: bool) -> list[nn.Sequential]:
    """The stages of a CIFAR ResNet (:func:`make_stage`): stage ``i`` has ``channels[i]``
    planes, the first keeps the resolution of the stem (``channels[0]`` channels), every other
    halves it."""
    stages, in_planes = [], channels[0]
    for i, planes in enumerate(channels):
        stages.append(make_stage(block, in_planes, planes, 1 if i == 0 else 2, num_blocks,
                                 shortcut))
        in_planes = block.expansion * planes
    return stages


def post_activation_forward(net: nn.Module, x: Tensor) -> Tensor:
    """``fc(avgpool(layer3(layer2(layer1(relu(bn1(conv1(x))))))))``: the forward pass of the
    post-activation CIFAR networks (ResNet, ResNeXt)."""
    out = net.relu(net.bn1(net.conv1(x)))
    out = net.layer3(net.layer2(net.layer1(out)))
    return net.fc(net.avgpool(out).flatten(1))


def fc_stack_forward(net: nn.Module, layers: nn.ModuleList, x: Tensor) -> Tensor:
    """``head(layers(relu(stem(x.flatten(1)))))``: the forward pass of the fully connected
    networks (MLP, highway MLP), ``layers`` applied in order."""
    h = net.relu(net.stem(x.flatten(1)))
    for layer in layers:
        h = layer(h)
    return net.head(h)


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut of a post-activation unit (1x1 convolution with ``stride`` and
    BatchNorm), or ``None`` where the unit keeps its resolution and channels (an identity
    shortcut)."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class ShortcutUnit(nn.Module):
    """A unit whose ``forward`` adds its shortcut only where ``shortcut`` is true: the plain
    twin's units keep every module (same ``state_dict``) and drop the addition.

    Parameters
    ----------
    shortcut : bool
        Whether ``forward`` adds the shortcut.
    """

    def __init__(self, shortcut: bool) -> None:
        super().__init__()
        self.shortcut = shortcut

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}"


def shortcut_out(block: nn.Module, out: Tensor, x: Tensor) -> Tensor:
    """``relu(out + s(x))`` of a post-activation unit, ``s`` the identity or its
    ``downsample``; ``relu(out)`` for the plain twin (``block.shortcut`` false)."""
    if block.shortcut:
        out = out + (x if block.downsample is None else block.downsample(x))
    return block.relu(out)


def depth_repr(net: nn.Module) -> str:
    """``extra_repr`` of the CIFAR ResNets: depth, shortcut, width and bottleneck units."""
    kind = ", bottleneck=True" if net.bottleneck else ""
    return f"depth={net.depth}, shortcut={net.shortcut}, width={net.width:g}{kind}"


class CifarResNet(nn.Module):
    """The frame of the CIFAR ResNets (post- and pre-activation): the parameters checked by
    :func:`check_cifar_resnet`, a 3x3 stem ``conv1``, the modules :meth:`_build_body` adds
    (the three stages and their BatchNorm), global average pooling ``avgpool``, the linear head
    ``fc`` and :func:`init_he` -- registered in that order, which fixes the ``state_dict``
    order and the draws of the initialisation.

    Subclasses set :attr:`units` and define :meth:`_build_body` and ``forward``; their
    docstrings document the parameters.
    """

    #: The unit classes: ``(basic, bottleneck)``.
    units: tuple[type[nn.Module], type[nn.Module]]

    def __init__(
        self,
        depth: int,
        shortcut: bool = True,
        in_channels: int = 3,
        num_classes: int = 10,
        width: float = 1,
        bottleneck: bool = False,
    ) -> None:
        super().__init__()
        check_cifar_resnet(self, depth, shortcut, in_channels, num_classes, width, bottleneck)
        block = self.units[self.bottleneck]
        self.conv1 = conv3x3(self.in_channels, self.channels[0])
        self._build_body(block)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(block.expansion * self.channels[-1], self.num_classes)
        init_he(self)

    def _build_body(self, block: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return depth_repr(self)


def depth_factory(cls: Callable[..., nn.Module], depth: int, name: str, doc: str, *,
                  bottleneck: bool = False) -> Callable[..., nn.Module]:
    """The registry factory ``name`` of a CIFAR ResNet of fixed ``depth``:
    ``name(*, shortcut=True, in_channels=3, num_classes=10, width=1)`` builds
    ``cls(depth, shortcut, in_channels, num_classes, width, bottleneck=bottleneck)``; ``doc``
    is its docstring."""

    def factory(*, shortcut: bool = True, in_channels: int = 3, num_classes: int = 10,
                width: float = 1) -> nn.Module:
        return cls(depth, shortcut, in_channels, num_classes, width, bottleneck=bottleneck)

    factory.__name__ = factory.__qualname__ = name
    factory.__module__ = cls.__module__
    factory.__doc__ = doc
    factory.__annotations__ = {**factory.__annotations__, "return": cls.__name__}
    return factory
