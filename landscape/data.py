"""Data sets: in-memory tensors, streamed Datasets and DataLoaders, built-in and user loaders.

Loss landscapes are evaluated many times over the same data set, in the same order (no
shuffling). A data set that fits is held in memory as one :class:`TensorData` (inputs ``x`` and
targets ``y``) and sliced into contiguous batches; Datasets and DataLoaders are wrapped in a
:class:`StreamData` and read batch by batch, and :class:`DeviceData` puts either on the
evaluation device (kept there when it fits a memory budget, else streamed at every pass).

Streaming is made as cheap as the data allows: batches are read by a background thread
:data:`STREAM_PREFETCH` batches ahead of the computation (so loading overlaps the forward and
backward passes; items still arrive in order, so values are identical), tensor-backed Datasets
(``TensorDataset`` and ``Subset`` s of one, also inside a plain sequential ``DataLoader``) are
sliced instead of indexed item by item and collated, and the loaders built for a Dataset with
``num_workers > 0`` are kept with persistent workers, so workers start once, not at every point.
What remains is the Dataset's own ``__getitem__``: a Dataset that builds each item in Python
(decoding, augmenting, generating) costs that at every pass, which the in-memory path pays once
(see ``docs/benchmarks.md``).

Data sets are named by a :class:`DataSpec` (or just its name):

``"digits"``
    scikit-learn's 8x8 handwritten digits (shipped with scikit-learn, no download), pixels scaled
    to ``[0, 1]``, shape ``(N, 1, 8, 8)``, a fixed stratified split of 1437 train / 360 test.
``"cifar10"``
    The CIFAR-10 python batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``) read from
    the local directory ``root`` (or its ``cifar-10-batches-py`` subdirectory), shape
    ``(N, 3, 32, 32)``, normalised per channel unless ``kwargs={"normalize": False}``.
``"mnist"``
    The four MNIST idx files (optionally gzipped) read from ``root`` (or its ``MNIST/raw``
    subdirectory, torchvision's layout), shape ``(N, 1, 28, 28)``, scaled to ``[0, 1]``.
``"modadd"``
    Modular addition ``a + b mod p`` (Power et al. 2022), generated deterministically
    (:func:`landscape.modadd.modular_addition`; options ``p``, ``train_fraction``, ``seed``):
    int64 token ids ``[a, b, p]`` of shape ``(N, 3)`` and ``p`` classes.
``"package.module:function"``
    Your own loader, called as ``function(split=split, **kwargs)``; it returns ``(x, y)``
    (tensors or arrays), a map-style or iterable :class:`torch.utils.data.Dataset` or a
    :class:`torch.utils.data.DataLoader` (items and batches as in :mod:`landscape.batches`:
    ``(x, y)`` pairs or mappings such as ``{"input_ids", "attention_mask", "labels"}``).
    Integer inputs (token ids) keep their dtype. A map-style Dataset of fixed-shape
    ``(x, y)`` pairs whose size is at most :data:`DEVICE_BUDGET` is read once into a
    :class:`TensorData` (preallocated, each item copied in once); anything else becomes a
    :class:`StreamData`, read batch by batch. ``subset`` picks its indices before anything
    is read, so only the chosen items are loaded. An iterable Dataset (or a DataLoader over
    one) without ``__len__`` may never end: it needs ``subset`` (CLI ``--subset``), which
    then keeps its first ``subset`` samples. A DataLoader that shuffles or drops its last
    batch (a training loader) is read in order and whole: the landscape quantities are means
    over the full data, which do not depend on the order. Inputs (and float targets) must be
    finite: a NaN or inf is refused naming the split and the sample (streams as they are read).

Nothing is ever downloaded.

Examples
--------
>>> train, test = load_splits("digits")
>>> len(train), len(test), train.input_shape, train.num_classes
(1437, 360, (1, 8, 8), 10)
>>> small = load_data(DataSpec("digits", subset=256))
>>> [xb.shape[0] for xb, _ in small.batches(100)]
[100, 100, 56]
"""

from __future__ import annotations

import dataclasses
import gzip
import inspect
import io
import os
import pickle
import queue
import re
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape._imports import import_object
from landscape.batches import batch_len, batch_nbytes, batch_targets, move_batch
from landscape.errors import LandscapeError, check_int, check_option

__all__ = [
    "channels_last_batch",
    "TensorData",
    "StreamData",
    "DeviceData",
    "DEVICE_BUDGET",
    "STREAM_PREFETCH",
    "as_data",
    "as_splits",
    "sample_count",
    "has_class_targets",
    "check_finite",
    "as_tensor_data",
    "model_vocab_size",
    "DataSpec",
    "load_data",
    "load_splits",
    "available_datasets",
    "check_compatible",
]

_SPLITS = ("train", "test")
_CUSTOM_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SUBSET_SEED = 0


# --------------------------------------------------------------------------------------------
# TensorData
# --------------------------------------------------------------------------------------------


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
        gen = torch.Generator().manual_seed(_SUBSET_SEED)
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


# --------------------------------------------------------------------------------------------
# DataSpec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """Which data set to load and how.

    Parameters
    ----------
    name : str, default="digits"
        A built-in name (see :func:`available_datasets`) or ``"package.module:function"``.
    root : str or None, default=None
        Local directory holding the files (``cifar10``, ``mnist``).
    subset : int or None, default=None
        Keep this many samples of each split (see :meth:`TensorData.subset`); of a streamed
        iterable Dataset, which cannot be indexed, its first ``subset`` samples. A stream
        without ``__len__`` (which may never end) is refused without it.
    kwargs : dict, default={}
        Loader options, e.g. ``{"normalize": False}`` for ``cifar10``, or keyword arguments of a
        custom loader.
    """

    name: str = "digits"
    root: str | None = None
    subset: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise LandscapeError(
                f"The 'dataset' parameter must be a non-empty str. Got {self.name!r} instead."
            )
        if self.root is not None:
            if not isinstance(self.root, str | os.PathLike):
                raise LandscapeError(
                    f"The 'root' parameter must be a directory path or None. "
                    f"Got {self.root!r} instead."
                )
            object.__setattr__(self, "root", os.fspath(self.root))
        if self.subset is not None:
            object.__setattr__(self, "subset", check_int("subset", self.subset, low=1))
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise LandscapeError(
                f"The 'kwargs' parameter must be a dict with str keys. Got {self.kwargs!r} instead."
            )
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a plain (JSON-friendly when ``kwargs`` is) dict."""
        return {
            "name": self.name,
            "root": self.root,
            "subset": self.subset,
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataSpec:
        """Build a spec from :meth:`to_dict`'s output; missing keys take their defaults."""
        if not isinstance(d, Mapping):
            raise LandscapeError(f"a data spec must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LandscapeError(
                f"unknown data spec key(s) {unknown}; the keys are {sorted(known)}"
            )
        values = dict(d)
        if values.get("kwargs") is None:
            values.pop("kwargs", None)
        return cls(**values)


# --------------------------------------------------------------------------------------------
# Public loading functions
# --------------------------------------------------------------------------------------------


def available_datasets() -> list[str]:
    """Names of the built-in data sets (custom loaders are named ``"package.module:function"``)."""
    return sorted(_BUILTIN)


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
    loader = _BUILTIN.get(spec.name)
    if loader is not None:
        data = loader(spec, split)
    elif _CUSTOM_NAME.match(spec.name):
        data = _load_custom(spec, split)
        if isinstance(data, StreamData):
            return data  # subset already applied before loading; batches checked as read
        check_finite(data.x, data.y, _where(spec.name, split))
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


def _check_kwargs(spec: DataSpec, allowed: Mapping[str, type]) -> dict[str, Any]:
    """Return the loader options with defaults removed; reject unknown or mistyped ones."""
    unknown = sorted(set(spec.kwargs) - set(allowed))
    if unknown:
        hint = f"its options are {sorted(allowed)}" if allowed else "it takes no options"
        raise LandscapeError(f"dataset {spec.name!r} got unknown option(s) {unknown}; {hint}")
    for key, value in spec.kwargs.items():
        if not isinstance(value, allowed[key]):
            raise LandscapeError(
                f"The {key!r} option of dataset {spec.name!r} must be a "
                f"{allowed[key].__name__}. Got {value!r} instead."
            )
    return dict(spec.kwargs)


def _need_root(spec: DataSpec, expected: list[str]) -> Path:
    if spec.root is None:
        raise LandscapeError(
            f"dataset {spec.name!r} is read from local files and needs a root directory; set "
            f"DataSpec(root=DIR) to the directory holding {', '.join(expected)}"
        )
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise LandscapeError(
            f"data root '{root}' for dataset {spec.name!r} is not a directory; point it at the "
            f"directory holding {', '.join(expected)}"
        )
    return root


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------

_DIGITS_TEST_SIZE = 360


def _load_digits(spec: DataSpec, split: str) -> TensorData:
    # sklearn.datasets.load_digits and train_test_split(..., test_size=360, random_state=0,
    # stratify=labels), without importing scikit-learn (see landscape._digits)
    from landscape._digits import digits_arrays, digits_split

    _check_kwargs(spec, {})
    images, labels = digits_arrays()
    train_idx, test_idx = digits_split(_DIGITS_TEST_SIZE, 0)
    idx = train_idx if split == "train" else test_idx
    x = torch.from_numpy((images[idx] / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(labels[idx].astype(np.int64))
    return TensorData(x, y, "digits", n_classes=10)


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------

_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]
_CIFAR_SUBDIR = "cifar-10-batches-py"
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR-10 batch pickle may name: what rebuilds a numpy array."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for pkg in ("numpy.core", "numpy._core"):
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # pickle protocol 5 rebuilds arrays from a buffer instead
        allowed[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else callable.

    Every global a pickle names goes through :meth:`find_class`, so refusing all but the numpy
    array constructors means an untrusted file cannot run code while being read.
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._allowed = _numpy_globals()
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise LandscapeError(
                f"refusing to load '{self._source}': it names the global {module}.{name}, and "
                "a CIFAR-10 batch may only hold numpy arrays; use the original CIFAR-10 files"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise LandscapeError(
            f"refusing to load '{self._source}': it uses persistent ids, which a CIFAR-10 batch "
            "never does; use the original CIFAR-10 files"
        )


def _unpickle_numpy_only(path: Path) -> Any:
    """Read a pickle that may only contain builtin containers and numpy arrays."""
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, str(path)).load()
    except LandscapeError:
        raise
    except Exception as err:  # a malformed pickle raises many types
        raise LandscapeError(
            f"could not read CIFAR-10 batch '{path}': {type(err).__name__}: {err}; "
            "is it one of the original python-version batch files?"
        ) from err


def _cifar_dir(root: Path, names: list[str]) -> Path:
    for cand in (root / _CIFAR_SUBDIR, root):
        if all((cand / n).is_file() for n in names):
            return cand
    missing = [n for n in names if not (root / n).is_file()]
    raise LandscapeError(
        f"CIFAR-10 files missing in '{root}' (and in its '{_CIFAR_SUBDIR}' subdirectory): "
        f"{', '.join(missing)}; the directory must hold {', '.join(_CIFAR_TRAIN + _CIFAR_TEST)} "
        "(the python version of CIFAR-10)"
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    obj = _unpickle_numpy_only(path)
    if not isinstance(obj, dict):
        raise LandscapeError(
            f"CIFAR-10 batch '{path}' holds a {type(obj).__name__}, not a dict with "
            "b'data' and b'labels'"
        )
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise LandscapeError(
            f"CIFAR-10 batch '{path}' has keys {sorted(map(repr, obj))}; it needs b'data' and "
            "b'labels'"
        )
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise LandscapeError(
            f"CIFAR-10 batch '{path}' has data of shape {data.shape} and dtype {data.dtype}; "
            "expected uint8 of shape (N, 3072)"
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise LandscapeError(
            f"CIFAR-10 batch '{path}' has {data.shape[0]} images but labels of shape "
            f"{labels.shape} and dtype {labels.dtype}; expected {data.shape[0]} integers"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise LandscapeError(
            f"CIFAR-10 batch '{path}' has labels outside 0..9 "
            f"(min {labels.min()}, max {labels.max()})"
        )
    return data, labels.astype(np.int64)


def _load_cifar10(spec: DataSpec, split: str) -> TensorData:
    opts = _check_kwargs(spec, {"normalize": bool})
    names = _CIFAR_TRAIN if split == "train" else _CIFAR_TEST
    root = _need_root(spec, _CIFAR_TRAIN + _CIFAR_TEST)
    folder = _cifar_dir(root, names)
    parts = [_read_cifar_batch(folder / n) for n in names]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32).to(torch.float32).div_(255.0)
    if opts.get("normalize", True):
        mean = torch.tensor(_CIFAR_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(_CIFAR_STD, dtype=torch.float32).view(1, 3, 1, 1)
        x = (x - mean) / std
    return TensorData(x, torch.from_numpy(labels), "cifar10", n_classes=10)


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def _find_idx(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    all_names = [n for pair in _MNIST_FILES.values() for n in pair]
    raise LandscapeError(
        f"MNIST file '{stem}' (or '{stem}.gz') not found in '{root}'; the directory must hold "
        f"{', '.join(all_names)} (each optionally .gz)"
    )


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an idx file of unsigned bytes, checking its magic number and size."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as err:
        raise LandscapeError(f"could not read MNIST file '{path}': {err}") from err
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LandscapeError(
            f"MNIST file '{path}' is truncated: {len(raw)} bytes, shorter than its "
            f"{header}-byte header"
        )
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise LandscapeError(
            f"MNIST file '{path}' has magic number {found}, expected {magic}; is it the "
            "right (uncompressed or .gz) idx file?"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) != header + size:
        state = "truncated" if len(raw) < header + size else "longer than its header says"
        raise LandscapeError(
            f"MNIST file '{path}' is {state}: header says {dims} ({header + size} bytes), "
            f"file has {len(raw)} bytes; download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=size, offset=header).reshape(dims)


def _load_mnist(spec: DataSpec, split: str) -> TensorData:
    _check_kwargs(spec, {})
    all_names = [n for pair in _MNIST_FILES.values() for n in pair]
    root = _need_root(spec, all_names)
    images_stem, labels_stem = _MNIST_FILES[split]
    images_path = _find_idx(root, images_stem)
    labels_path = _find_idx(root, labels_stem)
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC)
    labels = _read_idx(labels_path, _IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise LandscapeError(
            f"MNIST {split} split has {images.shape[0]} images in '{images_path}' but "
            f"{labels.shape[0]} labels in '{labels_path}'; the files must come from the same set"
        )
    if labels.size and labels.max() > 9:
        raise LandscapeError(
            f"MNIST labels in '{labels_path}' go up to {labels.max()}; expected 0..9"
        )
    x = torch.from_numpy(images.copy()).unsqueeze(1).to(torch.float32).div_(255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return TensorData(x, y, "mnist", n_classes=10)


# --------------------------------------------------------------------------------------------
# custom loaders
# --------------------------------------------------------------------------------------------


def _resolve_loader(name: str) -> Callable[..., Any]:
    return import_object(name, what="dataset")


def _as_inputs(x: Any, name: str) -> Tensor:
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise LandscapeError(
            f"dataset {name!r} returned inputs of type {type(x).__name__} that cannot become "
            f"a tensor: {err}"
        ) from err
    if t.is_complex() or t.dtype == torch.bool:
        raise LandscapeError(
            f"dataset {name!r} returned inputs of dtype {t.dtype}; return real numbers"
        )
    if not t.is_floating_point():
        return t.to(torch.int64)  # token ids and other integer inputs keep an integer dtype
    return t.to(torch.float32)


def _as_targets(y: Any, name: str) -> Tensor:
    try:
        t = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as err:
        raise LandscapeError(
            f"dataset {name!r} returned targets of type {type(y).__name__} that cannot become "
            f"a tensor: {err}"
        ) from err
    if t.is_complex():
        raise LandscapeError(f"dataset {name!r} returned complex targets; return real numbers")
    if t.is_floating_point():
        return t.to(torch.float32)
    return t.to(torch.int64)


def _bounded(stream: StreamData, spec: DataSpec) -> StreamData:
    """``stream`` reduced to ``spec.subset``; a stream of unknown length needs that bound."""
    if not stream.finite and spec.subset is None:
        raise LandscapeError(
            f"{_where(spec.name, stream.split)} is streamed with no known length (an iterable "
            "Dataset without __len__, which may never end); set the 'subset' parameter to "
            "read its first N samples, or give the Dataset a __len__"
        )
    return stream.subset(spec.subset)


def _where(name: str, split: str | None) -> str:
    """How messages name a data set: ``"The train split of 'mod:fn'"``."""
    return f"The {split} split of {name!r}" if split else f"Dataset {name!r}"


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
        gen = torch.Generator().manual_seed(_SUBSET_SEED)
        idx = torch.randperm(n_all, generator=gen)[: spec.subset].sort().values.tolist()
    first = ds[idx[0]]
    if not isinstance(first, tuple | list) or len(first) != 2:
        if isinstance(first, Mapping):
            return _bounded(stream, spec)
        raise LandscapeError(
            f"dataset {name!r} returned a Dataset whose item 0 is a {type(first).__name__}; "
            "each item must be an (x, y) pair or a mapping of tensors"
        )
    x0, y0 = _as_inputs(first[0], name), _as_targets(first[1], name)
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
    check_finite(xs, ys, _where(name, split), rows=idx)
    return _finish_tensors(xs, ys, spec)


def _load_custom(spec: DataSpec, split: str) -> TensorData | StreamData:
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
    return _finish_tensors(_as_inputs(x, spec.name), _as_targets(y, spec.name), spec)


def _finish_tensors(x_t: Tensor, y_t: Tensor, spec: DataSpec,
                    split: str | None = None) -> TensorData:
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


def _load_modadd(spec: DataSpec, split: str) -> TensorData:
    from . import modadd

    return modadd.load(spec.kwargs, split)


_BUILTIN: dict[str, Callable[[DataSpec, str], TensorData]] = {
    "digits": _load_digits,
    "cifar10": _load_cifar10,
    "mnist": _load_mnist,
    "modadd": _load_modadd,
}


# --------------------------------------------------------------------------------------------
# model/data compatibility
# --------------------------------------------------------------------------------------------

_SHAPE_WORDS = ("shape", "size", "dimension", "channel", "expected input", "mat1", "mat2")


def check_compatible(model: torch.nn.Module, data: TensorData | StreamData) -> None:
    """Check that ``model`` accepts ``data``'s inputs and has enough outputs for its classes.

    The model runs on one sample in eval mode under :func:`torch.inference_mode`; every
    submodule's training flag is restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    data : TensorData
        The data it will be evaluated on.

    Raises
    ------
    LandscapeError
        If the forward pass fails on the input shape, or for classification data the output is
        not ``(batch, K)`` with ``K >= data.num_classes``; or if integer inputs (token ids:
        integer ``x``, or ``input_ids``) fall outside the model's vocabulary
        (:func:`model_vocab_size`), naming the split, the first such sample and the largest
        id (for streamed data the first batch now, every later one as it is read).
    """
    vocab = model_vocab_size(model)
    owner = f"model {type(model).__name__}"
    if isinstance(data, StreamData):
        if vocab is not None:  # every later batch is checked as it is read
            data.vocab_size, data.vocab_owner = vocab, owner
            check_token_ids(_token_ids(data.first_batch()), vocab,
                            _where(data.name, data.split), owner, rows=data.rows)
        _check_stream_compatible(model, data)
        return
    if len(data) == 0:
        raise LandscapeError(f"dataset {data.name!r} is empty; load at least one sample")
    if vocab is not None:
        check_token_ids(_token_ids(data.x), vocab, _where(data.name, getattr(data, "split", None)),
                        owner)
    sample = data.x[:1]
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point():
        # integer inputs (token ids) keep their dtype
        dtype = param.dtype if sample.is_floating_point() else None
        sample = sample.to(device=param.device, dtype=dtype)
    model_name = type(model).__name__
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            out = model(sample)
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if not any(w in first.lower() for w in _SHAPE_WORDS):
            raise
        raise LandscapeError(
            f"model {model_name} cannot take inputs of shape {data.input_shape} from dataset "
            f"{data.name!r}: {first}; use a model built for this input shape"
        ) from err
    finally:
        for m, training in modes:
            m.training = training
    n_classes = data.num_classes
    if n_classes is None:
        return
    want_ndim = data.y.ndim + 1  # (batch, classes, *label_shape)
    if not isinstance(out, Tensor) or out.ndim != want_ndim or out.shape[0] != 1:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        want = ", ".join(["batch", f">= {n_classes}"] + [str(s) for s in data.y.shape[1:]])
        raise LandscapeError(
            f"model {model_name} returns {got} for one sample of dataset {data.name!r}; a "
            f"classifier for it must return logits of shape ({want})"
        )
    if out.shape[1] < n_classes:
        raise LandscapeError(
            f"model {model_name} outputs {out.shape[1]} values per sample but dataset "
            f"{data.name!r} has {n_classes} classes; give its last layer at least "
            f"{n_classes} outputs"
        )


# --------------------------------------------------------------------------------------------
# streamed data: Datasets and DataLoaders
# --------------------------------------------------------------------------------------------

#: Data that is not already tensors is copied onto the evaluation device once and kept there
#: when its size is at most this many bytes; larger data is streamed batch by batch.
DEVICE_BUDGET = 512 * 2**20
#: Batches a background thread reads ahead while streamed data is consumed (0: read in the
#: consuming thread). The thread yields the batches in their order, so values do not change;
#: Datasets must not draw from torch's global random generator (they would give other data
#: at every point anyway).
STREAM_PREFETCH = 2


def _tensor_backed(ds: Any) -> tuple[tuple[Tensor, ...], Tensor | None] | None:
    """The tensors of a ``TensorDataset`` (or of nested ``Subset`` s of one) and the indices
    selected from them (``None``: all), else ``None``."""
    from torch.utils.data import Subset, TensorDataset

    idx: Tensor | None = None
    while isinstance(ds, Subset):
        sub = torch.as_tensor(list(ds.indices), dtype=torch.int64)
        idx = sub if idx is None else sub[idx]
        ds = ds.dataset
    if type(ds) is not TensorDataset or not ds.tensors:
        return None
    return tuple(ds.tensors), idx


def _slices(tensors: tuple[Tensor, ...], idx: Tensor | None, batch_size: int,
            drop_last: bool, pin_memory: bool) -> Iterator[list[Tensor]]:
    """The batches ``default_collate`` would give for a tensor-backed Dataset (a list per
    batch, as it gives for tuple items), by slicing."""
    n = len(tensors[0]) if idx is None else len(idx)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        if idx is None:
            b = [t[i:i + batch_size] for t in tensors]
        else:
            j = idx[i:i + batch_size]
            b = [t[j] for t in tensors]
        yield [t.pin_memory() for t in b] if pin_memory else b


def _plain_loader(loader: Any) -> bool:
    """Whether a DataLoader batches its Dataset in order with the default collation (so its
    batches are slices of a tensor-backed Dataset)."""
    from torch.utils.data import BatchSampler, SequentialSampler
    from torch.utils.data._utils.collate import default_collate

    return (loader.batch_size is not None and loader.collate_fn is default_collate
            and isinstance(loader.sampler, SequentialSampler)
            and type(loader.batch_sampler) is BatchSampler)


def _in_order(loader: Any, where: str) -> tuple[Any, str | None]:
    """A DataLoader that reads the same data in order and whole: ``loader`` itself, or, for
    a shuffling or ``drop_last`` one, the same loader over its Dataset with a sequential
    sampler and ``drop_last=False``; with a note saying which."""
    from torch.utils.data import DataLoader, IterableDataset, RandomSampler

    shuffles = isinstance(loader.sampler, RandomSampler)
    drops = bool(loader.drop_last) and loader.batch_size is not None
    if not shuffles and not drops:
        return loader, None
    if loader.batch_size is None:  # batched by a custom batch_sampler: cannot be rebuilt
        raise LandscapeError(
            f"{where} is a shuffling DataLoader with a custom batch_sampler; a loss landscape "
            "needs the same data in the same order at every point: pass shuffle=False"
        )
    workers = loader.num_workers
    # drop_last alone: the loader's own (non-random) sampler keeps choosing the samples
    keep = not shuffles and not isinstance(loader.dataset, IterableDataset)
    rebuilt = DataLoader(
        loader.dataset, batch_size=loader.batch_size, shuffle=False,
        sampler=loader.sampler if keep else None, collate_fn=loader.collate_fn,
        num_workers=workers, pin_memory=loader.pin_memory,
        drop_last=False, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if workers else None,
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=loader.persistent_workers if workers else False,
    )
    notes = [note for note, on in (
        ("the DataLoader's shuffle=True is not applied: its Dataset is read in order", shuffles),
        ("the DataLoader's drop_last=True is not applied: its last, smaller batch is read too",
         drops)) if on]
    return rebuilt, "; ".join(notes) + " (a mean over the full data, which does not depend " \
        "on the order)"


def _loader_samples(loader: Any, n_dataset: int) -> int | None:
    """The number of samples a DataLoader over a map-style Dataset reads per pass (its
    sampler's length, or its custom batch_sampler's total; ``None`` for a loader of
    ready-made batches), ``n_dataset`` if unknown."""
    if loader.batch_size is None and loader.batch_sampler is None:
        return None  # each item is a batch already: counted by a pass when asked
    try:
        if loader.batch_size is not None:
            return len(loader.sampler)
        return sum(len(b) for b in loader.batch_sampler)
    except TypeError:  # a sampler without __len__ or of unsized batches
        return n_dataset


def head_batch(batch: Any, n: int) -> Any:
    """The first ``n`` samples of a batch (tensors, mappings and sequences of them)."""
    if isinstance(batch, Tensor):
        return batch[:n]
    if isinstance(batch, Mapping):
        return {k: head_batch(v, n) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(head_batch(v, n) for v in batch)
    return batch


def _limited(batches: Iterator[Any], limit: int) -> Iterator[Any]:
    """The batches up to ``limit`` samples (the last one cut); stops reading there."""
    seen = 0
    try:
        for b in batches:
            n = batch_len(b)
            if seen + n >= limit:
                yield b if seen + n == limit else head_batch(b, limit - seen)
                return
            seen += n
            yield b
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


_TARGET_KEYS = ("labels", "label", "targets", "target", "y")


def _batch_parts(b: Any) -> tuple[Any, Any]:
    """Inputs and targets of a batch for the finiteness check: ``(x, y)`` of a pair; of a
    mapping, its float input tensors stacked by role (targets under ``labels`` & co)."""
    if isinstance(b, Tensor):
        return b, None
    if isinstance(b, tuple | list):
        x = b[0] if b else None
        y = b[1] if len(b) > 1 else None
        return (x if isinstance(x, Tensor) else None), (y if isinstance(y, Tensor) else None)
    if isinstance(b, Mapping):
        # float masks may hold -inf on purpose (additive attention masks): not inputs here
        xs = [v for k, v in b.items() if k not in _TARGET_KEYS and "mask" not in str(k)
              and isinstance(v, Tensor) and v.ndim > 0 and v.is_floating_point()]
        ys = [v for k, v in b.items() if k in _TARGET_KEYS and isinstance(v, Tensor)]
        x = torch.cat([v.reshape(v.shape[0], -1) for v in xs], 1) if xs else None
        return x, (ys[0] if ys else None)
    return None, None


def _token_ids(b: Any) -> Tensor | None:
    """The integer token ids of a batch: integer ``x`` of a pair, or ``input_ids``."""
    if isinstance(b, Tensor):
        t = b
    elif isinstance(b, tuple | list) and b:
        t = b[0]
    elif isinstance(b, Mapping):
        t = b.get("input_ids")
    else:
        return None
    if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex() or t.ndim == 0:
        return None
    return None if t.dtype == torch.bool else t


def check_token_ids(ids: Tensor | None, vocab_size: int, where: str, owner: str, *,
                    rows: Any = None, offset: int = 0) -> None:
    """Refuse token ids outside ``0 .. vocab_size - 1`` (an embedding lookup would fail).

    Raises
    ------
    LandscapeError
        Naming the first offending sample and the largest id.
    """
    if ids is None or ids.numel() == 0:
        return
    bad = (ids < 0) | (ids >= vocab_size)
    if not bool(bad.any()):
        return
    row = int(bad.reshape(ids.shape[0], -1).any(1).nonzero()[0, 0])
    index = offset + row
    if rows is not None:
        index = int(rows[index])
    top, low = int(ids.max()), int(ids.min())
    worst = f"the largest id is {top}" if top >= vocab_size else f"ids go down to {low}"
    raise LandscapeError(
        f"{where} has a token id outside the vocabulary of {owner} ({vocab_size} ids, 0 .. "
        f"{vocab_size - 1}) in sample {index}; {worst}: tokenize with the model's own "
        "tokenizer, or give the model a larger vocabulary"
    )


def model_vocab_size(model: torch.nn.Module) -> int | None:
    """The number of token ids a model embeds: HuggingFace ``config.vocab_size``, else the
    ``num_embeddings`` of its first :class:`torch.nn.Embedding` (``None``: neither)."""
    v = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            return int(m.num_embeddings)
    return None


_END = object()


def _prefetched(batches: Iterator[Any], depth: int,
                convert: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Iterate ``batches`` in a background thread, at most ``depth`` items ahead, in order.

    ``convert`` runs in that thread too. An exception of the producer is raised in the
    consumer; when the consumer stops early (``break``, an error, a closed generator) the
    producer stops after its current item and is joined.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in batches:
                if not put((True, convert(b) if convert is not None else b)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((False, exc))
            return
        put((True, _END))

    worker = threading.Thread(target=produce, name="landscape-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()


class StreamData:
    """A data set read batch by batch: a map-style or iterable Dataset, or a DataLoader.

    Nothing is materialised: each pass builds (or reuses) a :class:`~torch.utils.data.DataLoader`
    and yields its batches in order. Batches follow :mod:`landscape.batches`: ``(x, y)``
    pairs, tuples, or mappings such as ``{"input_ids", "attention_mask", "labels"}``. Every
    batch is checked as it is read: a NaN or inf input (or float target) raises a
    :class:`~landscape.errors.LandscapeError` naming the sample's index in the stream, and so
    does a token id (integer ``x`` or ``input_ids``) outside ``0 .. vocab_size - 1`` once
    :attr:`vocab_size` is set (by :func:`check_compatible`).

    Parameters
    ----------
    source : Dataset or DataLoader
        A map-style Dataset (``__len__`` and ``__getitem__``), an iterable Dataset, or a
        DataLoader. A DataLoader's own batch size and ``collate_fn`` are kept (the requested
        ``batch_size`` of :meth:`batches` is then ignored). A DataLoader that shuffles
        (``shuffle=True``) or drops its last incomplete batch (``drop_last=True``), as
        training loaders do, is read in order and whole instead (an equivalent loader over
        its Dataset with a sequential sampler and ``drop_last=False``): losses and Hessians
        are means over the full data, which do not depend on the order, and a landscape needs
        the same batches at every point. :attr:`reading` says so.
    name : str, default="data"
        Used in messages and stored with results.
    collate_fn : callable, optional
        Batch collation for a Dataset (e.g. padding variable-length sequences); default
        :func:`torch.utils.data.default_collate`.
    num_workers : int, default=0
        Loader worker processes for a Dataset.
    limit : int, optional
        Read at most this many samples per pass (the first ones; :meth:`subset` of a stream
        that cannot be indexed). A stream without ``__len__`` may be endless: bound it so.
    split : str, optional
        The split it was loaded as, named in messages.

    Attributes
    ----------
    reading : str or None
        How a shuffling or ``drop_last`` DataLoader is read (``None``: as it is).
    vocab_size : int or None
        Token ids of the inputs must be below it (set by :func:`check_compatible`).
    """

    def __init__(self, source: Any, name: str = "data", *, collate_fn: Callable | None = None,
                 num_workers: int = 0, limit: int | None = None,
                 split: str | None = None) -> None:
        from torch.utils.data import DataLoader, Dataset, IterableDataset

        self.reading: str | None = None
        if isinstance(source, DataLoader):
            source, self.reading = _in_order(source, _where(name, split))
        elif not isinstance(source, Dataset):
            raise LandscapeError(
                f"dataset {name!r} must be a torch Dataset or DataLoader, got "
                f"{type(source).__name__}"
            )
        self.source = source
        self.name = name
        self.split = split
        self.collate_fn = collate_fn
        self.num_workers = check_int("num_workers", num_workers, low=0)
        self.limit = None if limit is None else check_int("limit", limit, low=1)
        self.vocab_size: int | None = None
        self.vocab_owner = "the model"  # named with vocab_size in messages
        self.rows: list[int] | None = None  # the source's index of each sample (a subset)
        ds = source.dataset if isinstance(source, DataLoader) else source
        self.map_style = not isinstance(ds, IterableDataset) and hasattr(ds, "__len__")
        self._len: int | None = len(ds) if hasattr(ds, "__len__") else None
        #: whether a pass ends: the Dataset has a length, or a limit bounds the stream
        self.finite = self._len is not None or self.limit is not None
        if self._len is not None and isinstance(source, DataLoader) and self.map_style:
            self._len = _loader_samples(source, self._len)  # a sampler may choose fewer
        if self._len is not None and self.limit is not None:
            self._len = min(self._len, self.limit)
        self._first: Any = None
        self._tensors = _tensor_backed(ds) if collate_fn is None else None
        self._loaders: dict[tuple[int, bool], Any] = {}

    def __repr__(self) -> str:
        return f"StreamData(name={self.name!r}, n={self._len}, source={type(self.source).__name__})"

    def __len__(self) -> int:
        if self._len is None:  # counted by one pass (load_data refuses unbounded streams)
            self._len = sum(batch_len(b) for b in self.batches(256))
        return self._len

    @property
    def length(self) -> int | None:
        """The number of samples when known without reading the data, else ``None``."""
        return self._len

    @property
    def is_loader(self) -> bool:
        """Whether the source is a DataLoader (its own batch size is used)."""
        from torch.utils.data import DataLoader

        return isinstance(self.source, DataLoader)

    @property
    def loader_batch_size(self) -> int | None:
        """A DataLoader's own batch size (``None``: not a DataLoader, or batched by a custom
        ``batch_sampler``)."""
        return self.source.batch_size if self.is_loader else None

    def batches(self, batch_size: int, pin_memory: bool = False) -> Iterator[Any]:
        """Iterate over the batches in order (``batch_size`` ignored for a DataLoader).

        Tensor-backed Datasets (and plain sequential DataLoaders over one) are sliced, with
        the same batches as collating their items; loaders built here with workers keep them
        between passes (``persistent_workers``). Each batch is checked as it is read (see
        the class docstring); at most :attr:`limit` samples are read.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        it = self._raw_batches(batch_size, pin_memory)
        if self.limit is not None:
            it = _limited(it, self.limit)
        return self._checked(it)

    def _raw_batches(self, batch_size: int, pin_memory: bool) -> Iterator[Any]:
        from torch.utils.data import DataLoader

        if self.is_loader:
            src = self.source
            if self._tensors is not None and _plain_loader(src):
                return _slices(*self._tensors, src.batch_size, src.drop_last, pin_memory)
            return iter(src)
        if self._tensors is not None:
            return _slices(*self._tensors, batch_size, False, pin_memory)
        key = (batch_size, pin_memory)
        loader = self._loaders.get(key)
        if loader is None:
            loader = DataLoader(self.source, batch_size=batch_size, shuffle=False,
                                collate_fn=self.collate_fn, num_workers=self.num_workers,
                                pin_memory=pin_memory,
                                persistent_workers=self.num_workers > 0)
            if self.num_workers > 0:  # keep the workers for the next pass
                self._loaders[key] = loader
        return iter(loader)

    def _checked(self, batches: Iterator[Any]) -> Iterator[Any]:
        where = _where(self.name, self.split)
        seen = 0
        for b in batches:
            x, y = _batch_parts(b)
            check_finite(x, y, where, rows=self.rows, offset=seen)
            if self.vocab_size is not None:
                check_token_ids(_token_ids(b), self.vocab_size, where, self.vocab_owner,
                                rows=self.rows, offset=seen)
            seen += batch_len(b)
            yield b

    def first_batch(self) -> Any:
        """The first batch (of at most 2 samples for a Dataset), kept for checks."""
        if self._first is None:
            it = self.batches(2)
            try:
                self._first = next(it)
            except StopIteration:
                raise LandscapeError(f"dataset {self.name!r} is empty") from None
            finally:
                it.close()
        return self._first

    def nbytes(self) -> int | None:
        """Estimated size of the whole data set (``None`` when its length is unknown and
        unbounded)."""
        n = self._len if self._len is not None else self.limit
        if n is None:
            return None
        first = self.first_batch()
        return int(batch_nbytes(first) / max(batch_len(first), 1) * n)

    def subset(self, n: int | None) -> StreamData:
        """The same ``n`` samples as :meth:`TensorData.subset` picks, indexing only those
        items of a map-style Dataset (nothing else is read); for an iterable Dataset, which
        cannot be indexed, its first ``n`` samples (read lazily, pass by pass)."""
        from torch.utils.data import DataLoader, Subset

        if n is None:
            return self
        n = check_int("subset", n, low=1)
        if not self.map_style:
            limit = n if self.limit is None else min(n, self.limit)
            out = StreamData(self.source, self.name, collate_fn=self.collate_fn,
                             num_workers=self.num_workers, limit=limit, split=self.split)
            out.reading = self.reading
            return out
        if n >= len(self):
            return self
        gen = torch.Generator().manual_seed(_SUBSET_SEED)
        idx = torch.randperm(len(self), generator=gen)[:n].sort().values.tolist()
        if self.is_loader:
            src = self.source
            sub = DataLoader(Subset(src.dataset, idx), batch_size=src.batch_size, shuffle=False,
                             collate_fn=src.collate_fn, num_workers=src.num_workers,
                             pin_memory=src.pin_memory, drop_last=src.drop_last)
            out = StreamData(sub, self.name, split=self.split)
            out.reading = self.reading
        else:
            out = StreamData(Subset(self.source, idx), self.name, collate_fn=self.collate_fn,
                             num_workers=self.num_workers, split=self.split)
        out.rows = idx if self.rows is None else [self.rows[i] for i in idx]
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the first batch's bytes and the length: the data's identity in recipes."""
        import hashlib

        h = hashlib.sha256(f"{self._len}".encode())
        _hash_batch(h, self.first_batch())
        return h.hexdigest()


def _hash_batch(h: Any, batch: Any) -> None:
    if isinstance(batch, Tensor):
        t = batch.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(batch, Mapping):
        for k in sorted(batch):
            h.update(str(k).encode())
            _hash_batch(h, batch[k])
    elif isinstance(batch, tuple | list):
        for v in batch:
            _hash_batch(h, v)
    else:
        h.update(repr(batch).encode())


def as_data(obj: Any, name: str = "data") -> Any:
    """Any supported data (see :mod:`landscape.data`) as a :class:`TensorData` or
    :class:`StreamData`; objects with tensors ``.x`` and ``.y`` are returned as they are."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(obj, TensorData | StreamData):
        return obj
    if isinstance(obj, Dataset | DataLoader):
        return StreamData(obj, name)
    if isinstance(obj, tuple | list) and len(obj) == 2:
        return TensorData(torch.as_tensor(obj[0]), torch.as_tensor(obj[1]), name)
    if isinstance(getattr(obj, "x", None), Tensor) and isinstance(getattr(obj, "y", None), Tensor):
        return obj
    raise LandscapeError(
        f"data {name!r} must have tensors .x and .y (a TensorData), or be an (x, y) pair of "
        f"tensors, a torch Dataset or a DataLoader; got {type(obj).__name__}"
    )


def as_splits(data: Any, default: str = "train") -> dict[str, Any]:
    """Named datasets from a mapping ``{"train": ..., "test": ...}`` or from one dataset.

    Parameters
    ----------
    data : mapping of str to data, or data
        A mapping of split names to anything :func:`as_data` takes; or one such object (a
        :class:`TensorData`, an ``(x, y)`` pair of tensors, a torch ``Dataset`` or
        ``DataLoader``), which becomes the split ``default``.
    default : str, default "train"
        The split name of a single dataset.

    Returns
    -------
    dict of str to TensorData or StreamData
    """
    if isinstance(data, Mapping):
        return {str(k): as_data(v, str(k)) for k, v in data.items()}
    return {default: as_data(data, default)}


def as_tensor_data(data: Any, budget: int | None = None) -> TensorData:
    """Any supported data held as one :class:`TensorData` (for training, which shuffles).

    Tensor data are returned as they are. Streamed data (:class:`StreamData`) are read once,
    in order, and concatenated when their batches are ``(x, y)`` pairs of tensors with one
    sample shape and their size is at most ``budget`` bytes: a finite stream (one with a
    length, or bounded by ``subset``) that is small.

    Parameters
    ----------
    data : TensorData, StreamData or anything :func:`as_data` takes
    budget : int, optional
        Bytes; default :data:`DEVICE_BUDGET`.

    Returns
    -------
    TensorData
        Floating inputs as float32, integer inputs int64, integer targets int64 labels and
        float targets float32, as a custom loader's arrays become.

    Raises
    ------
    LandscapeError
        For batches that are not fixed-shape ``(x, y)`` pairs (mappings, padded sequences),
        data larger than ``budget``, or non-finite values.
    """
    data = as_data(data)
    if not isinstance(data, StreamData):
        return data
    budget = DEVICE_BUDGET if budget is None else check_int("budget", budget, low=0)
    where = _where(data.name, data.split)
    size = data.nbytes()
    if size is not None and size > budget:
        raise _too_big(where, f"about {_bytes(size)}", budget)
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    total = 0
    for b in data.batches(256):
        if not (isinstance(b, tuple | list) and len(b) == 2
                and all(isinstance(t, Tensor) for t in b)):
            kind = "mappings" if isinstance(b, Mapping) else f"{type(b).__name__}s"
            raise LandscapeError(
                f"{where} gives batches of {kind}; training needs (x, y) pairs of tensors "
                "(train other data with your own loop and analyse the checkpoints)"
            )
        x, y = _as_inputs(b[0], data.name), _as_targets(b[1], data.name)
        if xs and (x.shape[1:] != xs[0].shape[1:] or y.shape[1:] != ys[0].shape[1:]):
            raise LandscapeError(
                f"{where} gives batches of different sample shapes ({tuple(xs[0].shape[1:])} "
                f"and {tuple(x.shape[1:])}); training needs one input shape"
            )
        total += x.numel() * x.element_size() + y.numel() * y.element_size()
        if total > budget:
            raise _too_big(where, f"more than {_bytes(budget)}", budget)
        xs.append(x)
        ys.append(y)
    if not xs:
        raise LandscapeError(f"{where} is empty")
    return _finish_tensors(torch.cat(xs), torch.cat(ys), DataSpec(data.name),
                           split=data.split)


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _too_big(where: str, size: str, budget: int) -> LandscapeError:
    return LandscapeError(
        f"{where} is a stream of {size}, more than can be held in memory for training "
        f"({_bytes(budget)}); set the 'subset' parameter to train on fewer samples"
    )


def sample_count(data: Any) -> int:
    """Number of samples of any supported data (TensorData, an ``(x, y)`` pair, a Dataset, a
    DataLoader, :class:`StreamData`).

    Raises
    ------
    LandscapeError
        For unsupported data or an empty data set.
    """
    n = len(as_data(data))
    if n == 0:
        raise LandscapeError("The data set is empty; pass at least one sample.")
    return n


def first_batch(data: Any) -> Any:
    """A small first batch of any data (for checks before computing)."""
    if isinstance(data, StreamData):
        return data.first_batch()
    return (data.x[:2], data.y[:2])


def has_class_targets(data: Any) -> bool:
    """Whether the data's targets are integer class labels (then accuracy is defined)."""
    if isinstance(data, StreamData):
        y = batch_targets(data.first_batch())
        return isinstance(y, Tensor) and not (y.is_floating_point() or y.is_complex())
    return not (data.y.is_floating_point() or data.y.is_complex())


class DeviceData:
    """Batches of one data set on the evaluation device.

    Tensor data are checked for NaN and inf inputs (and float targets) and moved to the
    device whole once and sliced (the fast path). Streamed data
    whose estimated size is at most ``budget`` bytes are copied to the device during their
    first pass and then replayed from there; larger data are streamed every pass, batch by
    batch (from pinned memory with non-blocking copies on CUDA), never held whole.

    Parameters
    ----------
    data : TensorData, StreamData or anything :func:`as_data` takes
    device : torch.device
    dtype : torch.dtype, optional
        Cast floating tensors (integer inputs keep their dtype).
    budget : int, optional
        Bytes (default :data:`DEVICE_BUDGET`).
    channels_last : bool, default=False
        4-D floating inputs in ``torch.channels_last``.
    """

    def __init__(self, data: Any, device: torch.device, dtype: torch.dtype | None = None,
                 budget: int | None = None, channels_last: bool = False,
                 name: str = "data") -> None:
        self.data = as_data(data, name)
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = channels_last
        self.budget = DEVICE_BUDGET if budget is None else check_int("budget", budget, low=0)
        self._cache: list[Any] | None = None
        self._cache_bs: int | None = None
        self.streamed = isinstance(self.data, StreamData)
        if self.streamed:
            size = self.data.nbytes()
            self.cached = size is not None and size <= self.budget
        else:
            self.cached = True
            where = _where(getattr(self.data, "name", name), getattr(self.data, "split", None))
            check_finite(self.data.x, self.data.y, where)
            self.x = self.move(self.data.x)
            self.y = self.data.y.to(self.device)

    def move(self, t: Any, non_blocking: bool = False) -> Any:
        """A batch on this data's device and dtype (integer tensors keep theirs)."""
        t = move_batch(t, self.device, self.dtype, non_blocking)
        if self.channels_last:
            t = channels_last_batch(t)
        return t

    def __len__(self) -> int:
        return len(self.x) if not self.streamed else len(self.data)

    def batches(self, batch_size: int) -> Iterator[Any]:
        """Device batches in order (the last may be smaller)."""
        if not self.streamed:
            return ((self.x[i:i + batch_size], self.y[i:i + batch_size])
                    for i in range(0, len(self.x), batch_size))
        if self._cache is not None and (self._cache_bs == batch_size or self.data.is_loader):
            return iter(self._cache)
        return self._stream(batch_size)

    def _stream(self, batch_size: int) -> Iterator[Any]:
        cuda = self.device.type == "cuda"
        cache: list[Any] | None = [] if self.cached else None
        source = self.data.batches(batch_size, pin_memory=cuda)
        if STREAM_PREFETCH > 0:  # read ahead (and, off CUDA, cast) in a background thread
            source = _prefetched(source, STREAM_PREFETCH, None if cuda else self.move)
        try:
            for b in source:
                if cuda or STREAM_PREFETCH <= 0:
                    b = self.move(b, non_blocking=cuda)
                if cache is not None:
                    cache.append(b)
                yield b
        finally:  # a consumer that stops early stops the reader too
            close = getattr(source, "close", None)
            if close is not None:
                close()
        if cache is not None:
            self._cache, self._cache_bs = cache, batch_size


def channels_last_batch(b: Any) -> Any:
    """A batch with its 4-D floating tensors in ``torch.channels_last`` (others unchanged)."""
    if isinstance(b, Tensor):
        if b.dim() == 4 and b.is_floating_point():
            return b.contiguous(memory_format=torch.channels_last)
        return b
    if isinstance(b, Mapping):
        return {k: channels_last_batch(v) for k, v in b.items()}
    if isinstance(b, tuple | list):
        return type(b)(channels_last_batch(v) for v in b)
    return b


def _check_stream_compatible(model: torch.nn.Module, data: StreamData) -> None:
    """Run the model on the first batch (eval mode, inference mode, flags restored)."""
    from landscape.batches import call_model

    batch = data.first_batch()
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point():
        batch = move_batch(batch, param.device, param.dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            call_model(model, batch)
    except (RuntimeError, TypeError, ValueError, IndexError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LandscapeError(
            f"model {type(model).__name__} cannot take the batches of dataset {data.name!r}: "
            f"{type(err).__name__}: {first}"
        ) from err
    finally:
        for m, training in modes:
            m.training = training
