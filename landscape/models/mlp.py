"""A fully connected residual MLP and its plain (no-skip) twin.

Small enough for exact Hessians and brute-force grids in tests, and shaped for the 8x8 digits
(64 input features) by default. As for :class:`~landscape.models.ResNet`, ``shortcut=False``
changes only ``forward``: both twins have the same ``state_dict`` keys and shapes.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import check_int
from ._common import ShortcutUnit, check_features, fc_stack_forward
from ._common import check_bool as _check_bool

__all__ = ["MLPBlock", "MLP"]


class MLPBlock(ShortcutUnit):
    """One hidden block: ``h + relu(linear(h))``, or ``relu(linear(h))`` without shortcut.

    With ``batchnorm=True`` the branch is ``relu(bn(linear(h)))`` and the linear layer has no
    bias (BatchNorm would cancel it, leaving an exactly flat direction in the landscape).

    Parameters
    ----------
    width : int
        Features in and out.
    shortcut : bool, default=True
        Whether ``forward`` adds the input to the branch.
    batchnorm : bool, default=False
        Whether the branch has a ``BatchNorm1d`` after the linear layer.
    """

    def __init__(self, width: int, shortcut: bool = True, batchnorm: bool = False) -> None:
        super().__init__(shortcut)
        self.linear = nn.Linear(width, width, bias=not batchnorm)
        self.bn: nn.BatchNorm1d | None = nn.BatchNorm1d(width) if batchnorm else None
        self.relu = nn.ReLU(inplace=False)

    def forward(self, h: Tensor) -> Tensor:
        z = self.linear(h)
        if self.bn is not None:
            z = self.bn(z)
        z = self.relu(z)
        return h + z if self.shortcut else z


class MLP(nn.Module):
    """Fully connected network with ``depth`` residual (or plain) hidden blocks.

    ``x -> flatten -> relu(stem) -> depth x MLPBlock -> head``.

    Parameters
    ----------
    in_features : int, default=64
        Features of a flattened input sample (64 for the 1x8x8 digits).
    width : int, default=32
        Hidden features.
    depth : int, default=4
        Number of hidden blocks (0 gives a one-hidden-layer network).
    num_classes : int, default=10
        Outputs of the head.
    shortcut : bool, default=True
        ``True``: each block computes ``h + relu(linear(h))``; ``False``: the plain twin,
        ``relu(linear(h))``, with the same parameters.
    batchnorm : bool, default=False
        Put a ``BatchNorm1d`` between each block's linear layer (then bias-free) and its ReLU.

    Attributes
    ----------
    stem : nn.Linear
        ``Linear(in_features, width)``, followed by a ReLU.
    blocks : nn.ModuleList
        The ``depth`` hidden blocks.
    head : nn.Linear
        ``Linear(width, num_classes)``.

    Examples
    --------
    >>> import torch
    >>> MLP(depth=2)(torch.randn(5, 1, 8, 8)).shape
    torch.Size([5, 10])
    """

    def __init__(
        self,
        in_features: int = 64,
        width: int = 32,
        depth: int = 4,
        num_classes: int = 10,
        shortcut: bool = True,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, low=1)
        self.width = check_int("width", width, low=1)
        self.depth = check_int("depth", depth, low=0)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.shortcut = _check_bool("shortcut", shortcut)
        self.batchnorm = _check_bool("batchnorm", batchnorm)
        self.stem = nn.Linear(self.in_features, self.width)
        self.relu = nn.ReLU(inplace=False)
        self.blocks = nn.ModuleList(
            MLPBlock(self.width, self.shortcut, self.batchnorm) for _ in range(self.depth)
        )
        self.head = nn.Linear(self.width, self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_features("MLP", x, self.in_features)
        return fc_stack_forward(self, self.blocks, x)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, shortcut={self.shortcut}, batchnorm={self.batchnorm}"
