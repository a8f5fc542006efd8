"""Custom data loaders for tests/test_data.py, named as ``"tests._datasets:<function>"``."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def xy_arrays(split: str, n: int = 12, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x, y)`` numpy arrays: ``n`` samples of 3 features, labels ``i % 3``."""
    start = 0 if split == "train" else 1000
    x = np.arange(start, start + 3 * n, dtype=np.float64).reshape(n, 3) + offset
    y = np.arange(n) % 3
    return x, y


def regression(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return float targets (a regression data set)."""
    x = torch.linspace(-1, 1, 8).unsqueeze(1)
    return x, 2 * x[:, 0]


class _Pairs(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 2, 2), float(i)), i % 2


def pair_dataset(split: str, n: int = 5) -> Dataset:
    """Return a map-style Dataset of ``(x, y)`` pairs."""
    return _Pairs(n)


def bad_return(split: str) -> str:
    """Return something that is not a data set."""
    return "not data"


def no_split() -> tuple[np.ndarray, np.ndarray]:
    """A loader that forgot the ``split`` parameter."""
    return xy_arrays("train")


NOT_CALLABLE = 42


class Counting(Dataset):
    """A map-style Dataset that records which items were read."""

    reads: list[int] = []

    def __init__(self, n: int = 20) -> None:
        self.n = n
        Counting.reads = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        Counting.reads.append(i)
        return torch.full((2,), float(i)), i % 3


def counting(split: str, n: int = 20) -> Dataset:
    """A Dataset that records its reads (to check --subset reads only the chosen items)."""
    return Counting(n)


def token_loader(split: str) -> torch.utils.data.DataLoader:
    """A DataLoader of HF-style mapping batches with integer token ids."""
    ids = torch.arange(24).reshape(6, 4) % 7
    items = [{"input_ids": ids[i], "labels": ids[i]} for i in range(6)]
    return torch.utils.data.DataLoader(items, batch_size=4)


def int_inputs(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer inputs (token ids) with class targets."""
    return np.arange(12).reshape(4, 3) % 5, np.arange(4) % 2
