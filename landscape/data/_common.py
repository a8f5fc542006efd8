"""Helpers shared by the loaders and the streams: how messages name a data set, and a loader's
arrays as tensors."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from landscape.errors import LandscapeError

from .spec import DataSpec
from .tensors import TensorData

__all__ = ["describe", "as_inputs", "as_targets", "finish_tensors"]


def _as_tensor(value: Any, name: str, what: str) -> Tensor:
    """``torch.as_tensor(value)``, or a one-line error naming the data set and ``what`` it
    returned (``"inputs"`` or ``"targets"``)."""
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise LandscapeError(
            f"dataset {name!r} returned {what} of type {type(value).__name__} that cannot become "
            f"a tensor: {err}"
        ) from err


def as_inputs(x: Any, name: str) -> Tensor:
    """A loader's inputs as a tensor: floating ones float32, integer ones (token ids) int64;
    complex and bool inputs are refused."""
    t = _as_tensor(x, name, "inputs")
    if t.is_complex() or t.dtype == torch.bool:
        raise LandscapeError(
            f"dataset {name!r} returned inputs of dtype {t.dtype}; return real numbers"
        )
    if not t.is_floating_point():
        return t.to(torch.int64)  # token ids and other integer inputs keep an integer dtype
    return t.to(torch.float32)


def as_targets(y: Any, name: str) -> Tensor:
    """A loader's targets as a tensor: floating ones float32 (regression), integer ones int64
    labels; complex targets are refused."""
    t = _as_tensor(y, name, "targets")
    if t.is_complex():
        raise LandscapeError(f"dataset {name!r} returned complex targets; return real numbers")
    if t.is_floating_point():
        return t.to(torch.float32)
    return t.to(torch.int64)


def describe(name: str, split: str | None) -> str:
    """How messages name a data set: ``"The train split of 'mod:fn'"``."""
    return f"The {split} split of {name!r}" if split else f"Dataset {name!r}"


def finish_tensors(x_t: Tensor, y_t: Tensor, spec: DataSpec,
                   split: str | None = None) -> TensorData:
    """A loader's ``(x, y)`` tensors as a :class:`TensorData` named ``spec.name`` (an
    ``(N, 1)`` column of labels flattened); no samples or negative labels are refused."""
    if y_t.ndim == 2 and y_t.shape[1] == 1 and not y_t.is_floating_point():
        y_t = y_t[:, 0]
    if x_t.ndim < 1 or y_t.ndim < 1:
        raise LandscapeError(
            f"dataset loader {spec.name!r} returned x of shape {tuple(x_t.shape)} and y of "
            f"shape {tuple(y_t.shape)}; both need a leading sample dimension"
        )
    if len(x_t) == 0:
        raise LandscapeError(f"dataset loader {spec.name!r} returned no samples")
    if not y_t.is_floating_point() and y_t.min() < 0:
        raise LandscapeError(
            f"dataset loader {spec.name!r} returned negative class labels; labels must be "
            "0..C-1 (return float targets for regression)"
        )
    return TensorData(x_t, y_t, spec.name, split=split)
