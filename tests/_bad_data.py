"""Data loaders named on the command line by the CLI tests (``--data tests._bad_data:NAME``).

``tiny`` is a small, seeded 1x8x8 classification set (the digits' shape, no scikit-learn
import, so a subprocess starts fast). The others are broken on purpose: ``cifar_like`` returns
3x32x32 images, which an MLP built for 8x8 digits cannot take; ``many_classes`` has labels up
to 15 for a 10-output model; ``empty`` returns no samples; ``broken`` raises.
"""

from __future__ import annotations

import torch

#: At most 128 samples: ``--batch-size auto`` then has one candidate (the whole split), so two
#: runs of one command choose the same batch size and give the same bits.
_SIZES = {"train": 100, "test": 50}


def tiny(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: 100 train / 50 test samples of shape (1, 8, 8), labels in 0..9."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    n = _SIZES[split]
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def cifar_like(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: 16 samples of shape (3, 32, 32), labels in 0..9."""
    g = torch.Generator().manual_seed(2)
    return torch.rand(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)


def many_classes(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: 1x8x8 inputs with labels in 0..15."""
    x, _ = tiny(split)
    return x, torch.arange(len(x)) % 16


def empty(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` with no samples."""
    return torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.int64)


def broken(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fails like a loader whose files are missing."""
    raise RuntimeError(f"cannot find the {split} shard on the cluster filesystem")
