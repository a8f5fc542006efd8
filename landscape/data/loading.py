"""Loading a data set by name: :func:`load_data`, :func:`load_splits` and the names
(:func:`available_datasets`)."""

from __future__ import annotations

import dataclasses
import re

from landscape.errors import LandscapeError, check_option

from ._common import describe
from .custom import load_custom
from .sources import BUILTIN
from .spec import DataSpec
from .stream import StreamData
from .tensors import TensorData, check_finite

__all__ = ["available_datasets", "load_data", "load_splits"]


_SPLITS = ("train", "test")
_CUSTOM_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def available_datasets() -> list[str]:
    """Names of the built-in data sets (custom loaders are named ``"package.module:function"``)."""
    return sorted(BUILTIN)


def load_data(spec: DataSpec | str, split: str = "train") -> TensorData | StreamData:
    """Load one split of a data set into memory.

    Parameters
    ----------
    spec : DataSpec or str
        The data set; a str is its name.
    split : {"train", "test"}, default="train"
        Which split.

    Returns
    -------
    TensorData or StreamData
        The split, reduced to ``spec.subset`` samples when that is set. A custom loader's
        floating inputs are cast to float32 (not rescaled) and integer inputs to int64; its
        integer targets become int64 labels and float targets float32 regression targets.
        Datasets and DataLoaders come back as :class:`StreamData` unless small (see above).

    Raises
    ------
    LandscapeError
        For an unknown name, missing or malformed files, a failing custom loader or bad options;
        for a NaN or infinite input (or float target) of a custom loader, naming the split and
        the first such sample (streamed data are checked batch by batch as they are read);
        and for a streamed Dataset of unknown length (no ``__len__``: an iterable Dataset may
        never end) without ``spec.subset``, which then bounds it to its first samples.
    """
    spec = _as_spec(spec)
    split = check_option("split", split, _SPLITS)
    loader = BUILTIN.get(spec.name)
    if loader is not None:
        data = loader(spec, split)
    elif _CUSTOM_NAME.match(spec.name):
        data = load_custom(spec, split)
        if isinstance(data, StreamData):
            return data  # subset already applied before loading; batches checked as read
        check_finite(data.x, data.y, describe(spec.name, split))
    else:
        names = ", ".join(repr(n) for n in available_datasets())
        raise LandscapeError(
            f"The 'dataset' parameter must be one of {{{names}}} or 'package.module:function' "
            f"naming your own loader. Got {spec.name!r} instead."
        )
    return dataclasses.replace(data, split=split).subset(spec.subset)


def load_splits(spec: DataSpec | str) -> tuple[TensorData | StreamData,
                                              TensorData | StreamData]:
    """Load ``(train, test)``; see :func:`load_data`."""
    spec = _as_spec(spec)
    return load_data(spec, "train"), load_data(spec, "test")


def _as_spec(spec: DataSpec | str) -> DataSpec:
    if isinstance(spec, DataSpec):
        return spec
    if isinstance(spec, str):
        return DataSpec(name=spec)
    raise LandscapeError(
        f"The 'dataset' parameter must be a DataSpec or a name. Got {spec!r} instead."
    )
