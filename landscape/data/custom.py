"""Your own data loaders, named ``"package.module:function"``: called, checked and turned into a
:class:`~landscape.data.TensorData` or a :class:`~landscape.data.StreamData`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

from landscape._imports import import_object
from landscape.errors import LandscapeError

from ._common import as_inputs, as_targets, describe, finish_tensors
from .spec import DataSpec
from .stream import DEVICE_BUDGET, StreamData
from .tensors import SUBSET_SEED, TensorData, check_finite

__all__ = ["load_custom"]


def _resolve_loader(name: str) -> Callable[..., Any]:
    return import_object(name, what="dataset")


def _bounded(stream: StreamData, spec: DataSpec) -> StreamData:
    """``stream`` reduced to ``spec.subset``; a stream of unknown length needs that bound."""
    if not stream.finite and spec.subset is None:
        raise LandscapeError(
            f"{describe(spec.name, stream.split)} is streamed with no known length (an iterable "
            "Dataset without __len__, which may never end); set the 'subset' parameter to "
            "read its first N samples, or give the Dataset a __len__"
        )
    return stream.subset(spec.subset)


def _read_dataset(ds: Any, spec: DataSpec, split: str | None = None) -> TensorData | StreamData:
    """A map-style Dataset of fixed-shape ``(x, y)`` pairs within :data:`DEVICE_BUDGET` as a
    TensorData (only the ``subset`` items are read, each copied once into preallocated
    tensors); anything else as a StreamData."""
    from torch.utils.data import IterableDataset

    name = spec.name
    stream = StreamData(ds, name, split=split)
    if isinstance(ds, IterableDataset) or not hasattr(ds, "__len__"):
        return _bounded(stream, spec)
    n_all = len(ds)
    if n_all == 0:
        raise LandscapeError(f"dataset {name!r} returned an empty Dataset")
    idx = list(range(n_all))
    if spec.subset is not None and spec.subset < n_all:
        gen = torch.Generator().manual_seed(SUBSET_SEED)
        idx = torch.randperm(n_all, generator=gen)[: spec.subset].sort().values.tolist()
    first = ds[idx[0]]
    if not isinstance(first, tuple | list) or len(first) != 2:
        if isinstance(first, Mapping):
            return _bounded(stream, spec)
        raise LandscapeError(
            f"dataset {name!r} returned a Dataset whose item 0 is a {type(first).__name__}; "
            "each item must be an (x, y) pair or a mapping of tensors"
        )
    x0, y0 = as_inputs(first[0], name), as_targets(first[1], name)
    size = (x0.numel() * x0.element_size() + y0.numel() * y0.element_size()) * len(idx)
    if size > DEVICE_BUDGET:
        return _bounded(stream, spec)
    xs = torch.empty((len(idx), *x0.shape), dtype=x0.dtype)
    ys = torch.empty((len(idx), *y0.shape), dtype=y0.dtype)
    for j, i in enumerate(idx):
        item = first if j == 0 else ds[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise LandscapeError(
                f"dataset {name!r} returned a Dataset whose item {i} is a "
                f"{type(item).__name__}; each item must be an (x, y) pair"
            )
        xi, yi = torch.as_tensor(item[0]), torch.as_tensor(item[1])
        if xi.shape != x0.shape or yi.shape != y0.shape:
            raise LandscapeError(
                f"dataset {name!r} returned samples of different shapes: item {i} has "
                f"{tuple(xi.shape)} and {tuple(yi.shape)}, item {idx[0]} {tuple(x0.shape)} and "
                f"{tuple(y0.shape)}; pass a DataLoader with a collate_fn that pads them"
            )
        xs[j] = xi
        ys[j] = yi
    check_finite(xs, ys, describe(name, split), rows=idx)
    return finish_tensors(xs, ys, spec)


def load_custom(spec: DataSpec, split: str) -> TensorData | StreamData:
    """One split from the loader ``spec.name`` names (``"package.module:function"``), called as
    ``function(split=split, **spec.kwargs)``."""
    fn = _resolve_loader(spec.name)
    try:
        inspect.signature(fn).bind(split=split, **spec.kwargs)
    except TypeError as err:
        raise LandscapeError(
            f"dataset loader {spec.name!r} cannot be called as function(split={split!r}"
            f"{''.join(f', {k}=...' for k in spec.kwargs)}): {err}; give it a 'split' "
            "parameter (and one for each option)"
        ) from err
    except ValueError:  # no signature available (some builtins): just call it
        pass
    try:
        out = fn(split=split, **spec.kwargs)
    except LandscapeError:
        raise
    except Exception as err:  # the user's code failed: say so in one line, not "internal error"
        first = (str(err).strip().splitlines() or [""])[0]
        raise LandscapeError(
            f"dataset loader {spec.name!r} failed on split {split!r}: "
            f"{type(err).__name__}: {first}"
        ) from err
    if isinstance(out, TensorData):
        return out
    if isinstance(out, torch.utils.data.DataLoader):
        return _bounded(StreamData(out, spec.name, split=split), spec)
    if isinstance(out, torch.utils.data.Dataset):
        return _read_dataset(out, spec, split)
    if isinstance(out, tuple | list) and len(out) == 2:
        x, y = out
    else:
        raise LandscapeError(
            f"dataset loader {spec.name!r} returned a {type(out).__name__}; it must return "
            "(x, y) tensors/arrays, a torch.utils.data.Dataset or a DataLoader"
        )
    return finish_tensors(as_inputs(x, spec.name), as_targets(y, spec.name), spec)
