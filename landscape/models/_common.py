"""Helpers shared by the reference models: argument checks, layers and input checks."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..errors import LandscapeError

__all__ = ["check_bool", "conv3x3", "check_images", "scale_channels"]


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a ``bool`` (not merely truthy) and return it."""
    if not isinstance(value, bool):
        raise LandscapeError(f"The '{name}' parameter must be a bool. Got {value!r} instead.")
    return value


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """A bias-free 3x3 convolution with padding 1."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def scale_channels(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1 (the width multiplier of wide networks)."""
    return max(1, round(channels * width))


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
