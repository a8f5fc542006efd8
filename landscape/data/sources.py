"""The built-in data sets: scikit-learn's digits, CIFAR-10 and MNIST read from local files,
and the registry :data:`BUILTIN` of every named source (with ``"modadd"`` and
``"digits-denoise"``). Nothing is downloaded."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.errors import LandscapeError

from . import denoise, modadd
from .spec import DataSpec
from .tensors import TensorData

__all__ = ["BUILTIN", "cifar_dir"]


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


_DIGITS_TEST_SIZE = 360


def cache_dir() -> Path | None:
    """Where derived copies of built-in data are cached: ``$LANDSCAPE_CACHE``, else
    ``$XDG_CACHE_HOME/landscape``, else ``~/.cache/landscape``; ``None`` (no cache) when
    ``LANDSCAPE_CACHE`` is set to the empty string."""
    env = os.environ.get("LANDSCAPE_CACHE")
    if env is not None:
        return Path(env).expanduser() if env else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "landscape"


def _digits_split() -> dict[str, np.ndarray]:
    """scikit-learn's digits, stratified into train and test by ``train_test_split``
    (``test_size=360, random_state=0``), as float32 images in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=_DIGITS_TEST_SIZE,
        random_state=0,
        stratify=labels,
    )
    out = {}
    for split, idx in (("train", train_idx), ("test", test_idx)):
        out[f"{split}_x"] = (images[idx] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        out[f"{split}_y"] = labels[idx].astype(np.int64)
    return out


def _digits_arrays() -> dict[str, np.ndarray]:
    """:func:`_digits_split`, cached on disk per scikit-learn version (importing
    scikit-learn's data sets and model selection costs seconds at every start; the cache
    holds that function's output and nothing else). An unreadable cache is recomputed, an
    unwritable cache directory is skipped."""
    from importlib.metadata import PackageNotFoundError, version

    root = cache_dir()
    try:
        key = f"digits-split-v1-sklearn{version('scikit-learn')}-test{_DIGITS_TEST_SIZE}.npz"
    except PackageNotFoundError:
        root = None
    path = None if root is None else root / key
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if (sorted(arrays) == ["test_x", "test_y", "train_x", "train_y"]
                    and arrays["test_x"].shape == (_DIGITS_TEST_SIZE, 1, 8, 8)
                    and arrays["train_x"].shape == (1797 - _DIGITS_TEST_SIZE, 1, 8, 8)
                    and arrays["train_x"].dtype == np.float32
                    and arrays["train_y"].dtype == np.int64):
                return arrays
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            pass
    arrays = _digits_split()
    if path is not None:
        from landscape._atomic import atomic_write

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: np.savez(f, **arrays))
        except (OSError, LandscapeError):
            pass
    return arrays


def _load_digits(spec: DataSpec, split: str) -> TensorData:
    _check_kwargs(spec, {})
    arrays = _digits_arrays()
    x = torch.from_numpy(arrays[f"{split}_x"])
    y = torch.from_numpy(arrays[f"{split}_y"])
    return TensorData(x, y, "digits", n_classes=10)


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


def cifar_dir(root: Path, names: list[str]) -> Path:
    """The folder under ``root`` (itself or its ``cifar-10-batches-py``) holding ``names``."""
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
    folder = cifar_dir(root, names)
    parts = [_read_cifar_batch(folder / n) for n in names]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32).to(torch.float32).div_(255.0)
    if opts.get("normalize", True):
        mean = torch.tensor(_CIFAR_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(_CIFAR_STD, dtype=torch.float32).view(1, 3, 1, 1)
        x = (x - mean) / std
    return TensorData(x, torch.from_numpy(labels), "cifar10", n_classes=10)


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


def _load_modadd(spec: DataSpec, split: str) -> TensorData:
    return modadd.load(spec.kwargs, split)


def _load_digits_denoise(spec: DataSpec, split: str) -> TensorData:
    return denoise.load(spec.kwargs, _load_digits(DataSpec("digits"), split), split)


#: The built-in data sets by name; each loader is called as ``loader(spec, split)``.
BUILTIN: dict[str, Callable[[DataSpec, str], TensorData]] = {
    "digits": _load_digits,
    "cifar10": _load_cifar10,
    "mnist": _load_mnist,
    "modadd": _load_modadd,
    "digits-denoise": _load_digits_denoise,
}
