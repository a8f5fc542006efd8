"""Highway networks (Srivastava, Greff and Schmidhuber, 2015) and their carry-less twins.

A highway layer computes

.. math:: y = H(x) \\cdot T(x) + x \\cdot (1 - T(x)),

with ``H`` the usual layer (affine map and ReLU), ``T(x) = sigmoid(W_T x + b_T)`` the *transform
gate* and ``1 - T`` the *carry gate*: the gated precursor of the residual connection, whose
identity path is open where the gate is closed. The gate bias is initialised negative so that
training starts near the identity (the carry path): the paper used ``-1``, ``-2`` and ``-3``
for networks 10, 20 and 30 layers deep (section 2.2 and appendix); the default here is ``-2``
(``gate_bias``). How open the gates are after training -- how much identity the network kept
-- is measured by :func:`landscape.mechanisms.gate_openness` (``landscape probe --what
gates``).

``shortcut=False`` builds the twin without the carry path, ``y = H(x) * T(x)``: the same
modules, ``state_dict`` keys and shapes, only ``forward`` differs (the convention of every
twin in :mod:`landscape.models`).

:class:`HighwayMLP` is fully connected (a linear stem to ``width`` features, ``depth``
highway layers, a linear head); :class:`HighwayConv` is convolutional (a 3x3 stem to
``channels`` maps, ``depth`` highway layers of 3x3 convolutions that keep the resolution,
global average pooling, a linear head).

References
----------
.. [1] R. K. Srivastava, K. Greff and J. Schmidhuber, "Training Very Deep Networks", NeurIPS
   2015 (and "Highway Networks", arXiv:1505.00387).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import check_float, check_int
from ._common import check_bool, check_features, check_images, fc_stack_forward

__all__ = ["HighwayLayer", "HighwayConvLayer", "HighwayMLP", "HighwayConv", "GATE_BIAS"]

#: Default initial bias of the transform gates (the paper: -1 to -3 with depth 10 to 30).
GATE_BIAS = -2.0


class _Highway(nn.Module):
    """``H(x) T(x) + x (1 - T(x))``, or ``H(x) T(x)`` without the carry path. Subclasses set
    ``plain`` (the ``H`` layer before its ReLU) and ``transform`` (the gate's affine map)."""

    plain: nn.Module
    transform: nn.Module

    def __init__(self, shortcut: bool, gate_bias: float) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.gate_bias = gate_bias
        self.relu = nn.ReLU(inplace=False)

    def _init_gate(self) -> None:
        nn.init.constant_(self.transform.bias, self.gate_bias)

    def gate(self, x: Tensor) -> Tensor:
        """The transform gate ``T(x) = sigmoid(W_T x + b_T)``, elementwise in ``(0, 1)``."""
        return self.transform(x).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        t = self.gate(x)
        h = self.relu(self.plain(x)) * t
        return h + x * (1 - t) if self.shortcut else h

    def extra_repr(self) -> str:
        return f"shortcut={self.shortcut}, gate_bias={self.gate_bias:g}"


class HighwayLayer(_Highway):
    """A fully connected highway layer of ``width`` features.

    Parameters
    ----------
    width : int
        Features in and out.
    shortcut : bool, default=True
        Keep the carry path ``x (1 - T(x))``.
    gate_bias : float, default=-2.0
        Initial bias of the transform gate (its weights keep PyTorch's initialisation).
    """

    def __init__(self, width: int, shortcut: bool = True, gate_bias: float = GATE_BIAS) -> None:
        super().__init__(shortcut, gate_bias)
        self.plain = nn.Linear(width, width)
        self.transform = nn.Linear(width, width)
        self._init_gate()


class HighwayConvLayer(_Highway):
    """A convolutional highway layer: 3x3 convolutions (padding 1) for ``H`` and ``T``.

    Parameters
    ----------
    channels : int
        Channels in and out.
    shortcut : bool, default=True
        Keep the carry path.
    gate_bias : float, default=-2.0
        Initial bias of the transform gate.
    """

    def __init__(self, channels: int, shortcut: bool = True,
                 gate_bias: float = GATE_BIAS) -> None:
        super().__init__(shortcut, gate_bias)
        self.plain = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.transform = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self._init_gate()


class _HighwayNet(nn.Module):
    """What the highway networks share: the checks of their common parameters and the repr."""

    def _check_common(self, depth: int, num_classes: int, shortcut: bool,
                      gate_bias: float) -> None:
        self.depth = check_int("depth", depth, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.shortcut = check_bool("shortcut", shortcut)
        self.gate_bias = check_float("gate_bias", gate_bias)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, shortcut={self.shortcut}, gate_bias={self.gate_bias:g}"


class HighwayMLP(_HighwayNet):
    """A fully connected highway network, or its twin without carry paths.

    ``x -> flatten -> relu(stem) -> depth x HighwayLayer -> head``.

    Parameters
    ----------
    in_features : int, default=64
        Features of a flattened sample (64 for the 1x8x8 digits).
    width : int, default=32
        Features of the highway layers.
    depth : int, default=8
        Number of highway layers.
    num_classes : int, default=10
        Outputs of the head.
    shortcut : bool, default=True
        ``False``: the twin without carry paths, ``y = H(x) T(x)``.
    gate_bias : float, default=-2.0
        Initial bias of every transform gate (the paper: -1 to -3).

    Examples
    --------
    >>> import torch
    >>> HighwayMLP(depth=2)(torch.randn(5, 1, 8, 8)).shape
    torch.Size([5, 10])
    """

    def __init__(self, in_features: int = 64, width: int = 32, depth: int = 8,
                 num_classes: int = 10, shortcut: bool = True,
                 gate_bias: float = GATE_BIAS) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, low=1)
        self.width = check_int("width", width, low=1)
        self._check_common(depth, num_classes, shortcut, gate_bias)
        self.stem = nn.Linear(self.in_features, self.width)
        self.relu = nn.ReLU(inplace=False)
        self.layers = nn.ModuleList(HighwayLayer(self.width, self.shortcut, self.gate_bias)
                                    for _ in range(self.depth))
        self.head = nn.Linear(self.width, self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_features("HighwayMLP", x, self.in_features)
        return fc_stack_forward(self, self.layers, x)


class HighwayConv(_HighwayNet):
    """A convolutional highway network, or its twin without carry paths.

    ``x -> relu(conv3x3 stem) -> depth x HighwayConvLayer -> global average pool -> head``.

    Parameters
    ----------
    in_channels : int, default=1
        Channels of the input images (1 for the digits).
    channels : int, default=16
        Channels of the highway layers.
    depth : int, default=6
        Number of highway layers.
    num_classes : int, default=10
        Outputs of the head.
    shortcut : bool, default=True
        ``False``: the twin without carry paths.
    gate_bias : float, default=-2.0
        Initial bias of every transform gate.

    Examples
    --------
    >>> import torch
    >>> HighwayConv(depth=2)(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 1, channels: int = 16, depth: int = 6,
                 num_classes: int = 10, shortcut: bool = True,
                 gate_bias: float = GATE_BIAS) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.channels = check_int("channels", channels, low=1)
        self._check_common(depth, num_classes, shortcut, gate_bias)
        self.stem = nn.Conv2d(self.in_channels, self.channels, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=False)
        self.layers = nn.ModuleList(HighwayConvLayer(self.channels, self.shortcut,
                                                     self.gate_bias)
                                    for _ in range(self.depth))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(self.channels, self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_images("HighwayConv", x, self.in_channels)
        h = self.relu(self.stem(x))
        for layer in self.layers:
            h = layer(h)
        return self.head(self.avgpool(h).flatten(1))
