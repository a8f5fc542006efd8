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


# ------------------------------------------------------------------------- bad data (issue 24)
def _tiny(split: str, n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded samples of the digits' shape (1, 8, 8), labels in 0..9."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def nan_input(split: str, where: int = 17, value: float = float("nan")) -> tuple:
    """Digits-shaped arrays with one non-finite pixel in sample ``where`` of the train split."""
    x, y = _tiny(split)
    if split == "train":
        x[where, 0, 3, 4] = value
    return x.numpy(), y.numpy()


def inf_target(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression data whose float target of sample 2 is inf."""
    x = torch.linspace(-1, 1, 8).unsqueeze(1)
    y = 2 * x[:, 0]
    y[2] = float("inf")
    return x, y


class NanPairs(Dataset):
    """A map-style Dataset of ``n`` digits-shaped pairs whose item ``bad`` has a NaN input."""

    def __init__(self, n: int = 48, bad: int = 37) -> None:
        self.x, self.y = _tiny("train", n)
        self.x[bad, 0, 0, 0] = float("nan")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def nan_loader(split: str, batch_size: int = 10) -> torch.utils.data.DataLoader:
    """A DataLoader (streamed) with a NaN input in sample 37."""
    return torch.utils.data.DataLoader(NanPairs(), batch_size=batch_size, collate_fn=_stack)


def _stack(items: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


class Endless(torch.utils.data.IterableDataset):
    """Digits-shaped samples forever (no ``__len__``): item ``i`` is seeded by ``i``."""

    def __iter__(self):
        i = 0
        while True:
            g = torch.Generator().manual_seed(i)
            yield torch.rand(1, 8, 8, generator=g), int(torch.randint(0, 10, (), generator=g))
            i += 1


def endless(split: str) -> Endless:
    """An endless IterableDataset."""
    return Endless()


def endless_loader(split: str) -> torch.utils.data.DataLoader:
    """A DataLoader over an endless IterableDataset."""
    return torch.utils.data.DataLoader(Endless(), batch_size=16)


def tiny_arrays(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """48 digits-shaped samples as tensors (in memory)."""
    return _tiny(split)


def tiny_loader(split: str, batch_size: int = 10, shuffle: bool = False,
                drop_last: bool = False) -> torch.utils.data.DataLoader:
    """The same 48 samples as :func:`tiny_arrays`, as a (streamed) DataLoader with its own
    collation (so it is read batch by batch, not sliced)."""
    x, y = _tiny(split)
    items = list(zip(x, y, strict=True))
    return torch.utils.data.DataLoader(items, batch_size=batch_size, shuffle=shuffle,
                                       drop_last=drop_last, collate_fn=_stack)


def oov_tokens(split: str, bad: int = 5, token: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``(16, 4)`` below 10, but ``token`` in sample ``bad`` of the train split."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 10, (16, 4), generator=g)
    if split == "train":
        ids[bad, 2] = token
    return ids, torch.arange(16) % 3


def oov_token_loader(split: str) -> torch.utils.data.DataLoader:
    """HF-style mapping batches of 4 whose sample 9 has the token id 30."""
    ids, y = oov_tokens("test")
    ids[9, 0] = 30
    items = [{"input_ids": ids[i], "labels": y[i]} for i in range(len(ids))]
    return torch.utils.data.DataLoader(items, batch_size=4)


class TokenClassifier(torch.nn.Module):
    """Embedding of ``vocab`` ids, mean over positions, linear head to 3 classes."""

    def __init__(self, vocab: int = 10) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.head(self.embed(input_ids).mean(1))


def token_classifier(vocab: int = 10) -> TokenClassifier:
    """Factory of :class:`TokenClassifier` (``--model tests._datasets:token_classifier``)."""
    return TokenClassifier(vocab)
