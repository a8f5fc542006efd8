"""A data set held in memory as two tensors (:class:`TensorData`), and the check that refuses
non-finite inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from landscape.errors import LandscapeError, check_int

__all__ = ["SUBSET_SEED", "TensorData", "check_finite"]


#: Seed of the fixed permutation a subset is drawn from (:meth:`TensorData.subset`);
#: streamed data and custom Datasets pick the same samples with it.
SUBSET_SEED = 0


@dataclass(frozen=True, eq=False, repr=False)
class TensorData:
    """A whole data set held as two tensors.

    Parameters
    ----------
    x : Tensor
        Inputs, one sample per row of the first dimension (``N x C x H x W`` for images,
        float32 as loaded).
    y : Tensor
        Targets: int64 class labels of shape ``(N,)``, or float targets for regression.
    name : str
        The data set's name, used in messages and stored with results.
    n_classes : int or None, default=None
        The number of classes when it is known from the data set (10 for digits, CIFAR-10 and
        MNIST), so that a small subset keeps it; when ``None`` it is inferred from ``y``.
    split : str or None, default=None
        The split (``"train"``, ``"test"``) it was loaded as, named in messages.

    Attributes
    ----------
    input_shape : tuple of int
        Shape of one sample, ``x.shape[1:]``.
    num_classes : int or None
        Number of classes for integer targets, ``None`` for float (regression) targets.

    Notes
    -----
    Instances compare by identity (comparing tensors element-wise has no single truth value).
    """

    x: Tensor
    y: Tensor
    name: str
    n_classes: int | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.x, Tensor) or not isinstance(self.y, Tensor):
            raise LandscapeError(
                f"dataset {self.name!r}: x and y must be torch tensors, got "
                f"{type(self.x).__name__} and {type(self.y).__name__}; convert them with "
                "torch.as_tensor"
            )
        if self.x.ndim < 1 or self.y.ndim < 1:
            raise LandscapeError(
                f"dataset {self.name!r}: x and y need a leading sample dimension, got shapes "
                f"{tuple(self.x.shape)} and {tuple(self.y.shape)}"
            )
        if self.x.shape[0] != self.y.shape[0]:
            raise LandscapeError(
                f"dataset {self.name!r} has {self.x.shape[0]} inputs but {self.y.shape[0]} "
                "targets; x and y must have the same length"
            )
        if self.n_classes is not None:
            check_int("n_classes", self.n_classes, low=1)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (
            f"TensorData(name={self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
            f"x_dtype={self.x.dtype}, y_dtype={self.y.dtype}, num_classes={self.num_classes}, "
            f"device={self.x.device})"
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (``x.shape[1:]``)."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def num_classes(self) -> int | None:
        """Number of classes, or ``None`` for float (regression) targets."""
        if self.n_classes is not None:
            return self.n_classes
        if torch.is_floating_point(self.y) or torch.is_complex(self.y) or self.y.numel() == 0:
            return None
        return int(self.y.max().item()) + 1

    def subset(self, n: int | None) -> TensorData:
        """Return ``n`` samples, the same ones every time.

        The samples are the first ``n`` of a fixed permutation (a ``torch.Generator`` seeded
        with 0), put back in their original order.

        Parameters
        ----------
        n : int or None
            Number of samples, at least 1. ``None`` or ``n >= len(self)`` returns ``self``.

        Returns
        -------
        TensorData
            The subset, keeping :attr:`num_classes`.
        """
        if n is None:
            return self
        n = check_int("subset", n, low=1)
        if n >= len(self):
            return self
        gen = torch.Generator().manual_seed(SUBSET_SEED)
        idx = torch.randperm(len(self), generator=gen)[:n].sort().values
        idx = idx.to(self.x.device)
        return TensorData(
            self.x[idx], self.y[idx.to(self.y.device)], self.name, n_classes=self.num_classes,
            split=self.split,
        )

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Iterate over contiguous ``(x, y)`` slices in order; the last may be smaller.

        Parameters
        ----------
        batch_size : int
            Samples per batch, at least 1 (checked at the call, not at the first ``next``).

        Returns
        -------
        iterator of (Tensor, Tensor)
            Views into :attr:`x` and :attr:`y`.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        return self._iter_batches(batch_size)

    def _iter_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self), batch_size):
            yield self.x[start : start + batch_size], self.y[start : start + batch_size]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TensorData:
        """Return a copy on ``device``; ``dtype``, when given, applies to floating-point ``x``
        only (integer inputs such as token ids keep their dtype)."""
        if not self.x.is_floating_point():
            dtype = None
        return dataclasses.replace(
            self,
            x=self.x.to(device=device, dtype=dtype),
            y=self.y.to(device=device),
        )


def _first_nonfinite(t: Any) -> tuple[int, float] | None:
    """The first sample (row) of a floating tensor holding a NaN or inf, and that value."""
    if not isinstance(t, Tensor) or not (t.is_floating_point() or t.is_complex()):
        return None
    if t.ndim == 0 or t.shape[0] == 0:
        return None
    bad = ~torch.isfinite(t)
    if not bool(bad.any()):
        return None
    row = int(bad.reshape(t.shape[0], -1).any(1).nonzero()[0, 0])
    value = t[row][bad[row]].reshape(-1)[0]
    return row, float(value.real if value.is_complex() else value)


def check_finite(x: Any, y: Any, where: str, *, rows: Any = None, offset: int = 0) -> None:
    """Refuse NaN or infinite inputs ``x`` (and float targets ``y``): one NaN input makes
    every loss of a landscape NaN.

    Parameters
    ----------
    x, y : Tensor or batch parts
        Inputs and targets, one sample per row (``y`` may be ``None``).
    where : str
        The data set as messages name it (``"The train split of 'mod:fn'"``).
    rows : sequence of int, optional
        The data set's sample index of each row (a subset's indices); default row + ``offset``.
    offset : int, default=0
        Index of the first row (a streamed batch's position).

    Raises
    ------
    LandscapeError
        Naming the first offending sample and its value.
    """
    for kind, t in (("input", x), ("target", y)):
        found = _first_nonfinite(t)
        if found is None:
            continue
        row, value = found
        index = offset + row
        if rows is not None:
            index = int(rows[index])
        raise LandscapeError(
            f"{where} has a non-finite {kind} in sample {index} ({value}); one such sample "
            "makes the loss non-finite at every point: remove or repair these samples"
        )
