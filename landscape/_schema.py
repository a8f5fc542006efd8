"""Checks of the datasets of a stored grid result (surface, ratio map), shared by their loaders.

A loader reads a group into memory (:func:`landscape.storage.read_group`) and validates it here
once, so that a damaged or hand-edited file gives one :class:`LandscapeError` naming the file,
the dataset and what was expected, instead of a failure deep inside plotting or a resumed run.
Every message starts with ``where`` (e.g. ``"'s.h5' has a damaged /surface group"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._grid import count_name, stderr_name
from .errors import LandscapeError

__all__ = ["describe", "coordinates", "check_coordinates_fit", "grid_array", "json_attr",
           "grid_shape", "stderr_arrays", "stderr_datasets", "count_arrays", "count_datasets"]


def describe(a: Any) -> str:
    """``"a float64 array of shape (3,)"``, ``"a string array (|S1) of shape (3,)"``, ..."""
    a = np.asarray(a)
    kind = {"S": "string", "U": "string", "O": "object", "V": "compound"}.get(a.dtype.kind)
    what = f"a {kind} array ({a.dtype.str})" if kind else f"a {a.dtype} array"
    return f"{what} of shape {a.shape}" if a.ndim else f"a {a.dtype} scalar"


def coordinates(datasets: Mapping[str, Any], name: str, where: str) -> np.ndarray:
    """The coordinate dataset ``name``: finite numbers in a 1-D array, as float64."""
    if name not in datasets:
        raise LandscapeError(f"{where}: dataset '{name}' is missing; expected the grid "
                             "coordinates, a 1-D float array")
    a = np.asarray(datasets[name])
    if a.dtype.kind not in "fiu" or a.ndim != 1 or a.size == 0:
        raise LandscapeError(f"{where}: dataset '{name}' is {describe(a)}; expected the grid "
                             "coordinates, a 1-D float array")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise LandscapeError(f"{where}: dataset '{name}' holds non-finite coordinates")
    return a


def grid_shape(x: np.ndarray, y: np.ndarray | None) -> tuple[int, ...]:
    """``(ny, nx)`` or ``(nx,)``."""
    return (len(x),) if y is None else (len(y), len(x))


def check_coordinates_fit(datasets: Mapping[str, Any], names: list[str],
                          shape: tuple[int, ...], where: str) -> None:
    """Blame the coordinates when every array agrees on a shape that is not the grid's."""
    shapes = {np.shape(datasets[k]) for k in names if k in datasets}
    if len(shapes) != 1 or shapes == {shape}:
        return
    (found,) = shapes
    axes = ["x"] if len(shape) == 1 else ["y", "x"]
    if len(found) != len(shape):
        return
    for ax, n, m in zip(axes, shape, found, strict=True):
        if n != m:
            raise LandscapeError(
                f"{where}: dataset '{ax}' has {n} coordinates but the arrays have {m} points "
                f"along it (shape {found}); expected one coordinate per point"
            )


def grid_array(datasets: Mapping[str, Any], name: str, shape: tuple[int, ...], where: str,
               *, mask: bool = False, dtype: Any = np.float64) -> np.ndarray:
    """The dataset ``name`` with one number per grid point (``mask``: only 0 and 1), checked
    against the grid's ``shape``."""
    want = (f"a 0/1 mask of shape {shape}" if mask
            else f"numbers of shape {shape}, one per grid point")
    if name not in datasets:
        raise LandscapeError(f"{where}: dataset '{name}' is missing; expected {want}")
    a = np.asarray(datasets[name])
    if a.dtype.kind not in "fiub" or a.shape != shape:
        raise LandscapeError(f"{where}: dataset '{name}' is {describe(a)}; expected {want}")
    if mask:
        if not np.isin(a, (0, 1)).all():
            raise LandscapeError(f"{where}: dataset '{name}' holds values other than 0 and 1; "
                                 f"expected {want}")
        return a.astype(bool)
    return a.astype(dtype)


def json_attr(attrs: Mapping[str, Any], name: str, where: str, kind: type,
              default: Any = None) -> Any:
    """The attribute ``name`` decoded from JSON, of type ``kind`` (``dict`` or ``list``)."""
    if name not in attrs:
        if default is not None:
            return default
        raise LandscapeError(f"{where}: attribute '{name}' is missing")
    try:
        v = json.loads(attrs[name])
    except (TypeError, ValueError):
        v = None
    if not isinstance(v, kind):
        raise LandscapeError(f"{where}: attribute '{name}' is not a JSON {kind.__name__}")
    return v


def stderr_arrays(datasets: Mapping[str, Any], names: list[str], shape: tuple[int, ...],
                  where: str) -> dict[str, np.ndarray]:
    """The standard-error arrays (``<loss>_se``) stored beside the loss arrays among ``names``,
    each checked against ``shape``; a loss without one (files written before they were
    stored) is simply absent from the result."""
    return {stderr_name(k): grid_array(datasets, stderr_name(k), shape, where)
            for k in names if k.endswith("_loss") and stderr_name(k) in datasets}


def stderr_datasets(stderrs: Mapping[str, Any], done: Any) -> dict[str, np.ndarray]:
    """The standard-error arrays as datasets: float64, NaN where ``done`` is not set."""
    mask = np.asarray(done, dtype=bool)
    return {k: np.where(mask, np.asarray(a, dtype=np.float64), np.nan)
            for k, a in sorted(stderrs.items())}


def count_arrays(datasets: Mapping[str, Any], names: list[str], shape: tuple[int, ...],
                 where: str) -> dict[str, np.ndarray] | None:
    """The sample-count arrays (``<loss>_n``) stored beside the loss arrays among ``names``
    (int64, each checked against ``shape``), or ``None`` when the group has none (surfaces
    evaluated on all the data, and files written before counts were stored)."""
    out = {count_name(k): grid_array(datasets, count_name(k), shape, where, dtype=np.int64)
           for k in names if k.endswith("_loss") and count_name(k) in datasets}
    return out or None


def count_datasets(counts: Mapping[str, Any] | None, done: Any) -> dict[str, np.ndarray]:
    """The sample-count arrays as datasets: int64, 0 where ``done`` is not set."""
    mask = np.asarray(done, dtype=bool)
    return {k: np.where(mask, np.asarray(a, dtype=np.int64), 0)
            for k, a in sorted((counts or {}).items())}
