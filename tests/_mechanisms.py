"""Tiny models with known answers for the mechanism tests."""

from __future__ import annotations

import torch
from torch import nn


class LinearBlock(nn.Module):
    """A user block ``x + branch(x)`` with a linear branch (or ``branch(x)`` when plain)."""

    def __init__(self, width: int, shortcut: bool = True) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.lin = nn.Linear(width, width)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.lin(x) if self.shortcut else self.lin(x)


class UserNet(nn.Module):
    """stem -> n user blocks (``layers.0`` ...) -> head; linear when ``act`` is None."""

    def __init__(self, n: int = 4, width: int = 6, d_in: int = 5, classes: int = 3,
                 shortcut: bool = True, block: type[nn.Module] = LinearBlock) -> None:
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.layers = nn.ModuleList(block(width, shortcut) for _ in range(n))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for b in self.layers:
            h = b(h)
        return self.head(h)


def user_net(seed: int = 0, n: int = 4, shortcut: bool = True, scale: float = 0.3, **kw):
    torch.manual_seed(seed)
    net = UserNet(n, shortcut=shortcut, **kw).double().eval()
    with torch.no_grad():
        for b in net.layers:
            b.lin.weight.mul_(scale)
    return net


def xy(n: int = 32, d: int = 5, classes: int = 3, seed: int = 0, shape=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *(shape or (d,)), generator=g, dtype=torch.float64)
    return x, torch.randint(0, classes, (n,), generator=g)
