"""scikit-learn's 8x8 digits and their stratified train/test split, read without importing it.

``import sklearn`` imports ``scipy.stats`` and costs about as much as ``import torch`` (0.6 to
2.8 s measured here), which was most of what a command on digits paid before its first point.
The data file ships inside scikit-learn (``sklearn/datasets/data/digits.csv.gz``); it is found
with :func:`importlib.util.find_spec`, which locates the package without running it, and read
as :func:`sklearn.datasets.load_digits` reads it. The split repeats, call for call on the same
``numpy.random.RandomState``, what ``train_test_split(..., stratify=labels)`` does through
``StratifiedShuffleSplit`` (scikit-learn 1.x), so the indices are the same;
``tests/test_data.py`` compares both with scikit-learn's own functions. Where the file cannot be
found (scikit-learn installed in an unusual way), scikit-learn itself is used.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

__all__ = ["digits_arrays", "digits_split", "stratified_split"]


def _data_file() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` as ``sklearn.datasets.load_digits(return_X_y=True)`` gives them:
    float64 pixels 0..16 of shape (1797, 64) and int labels; read once per process, read-only.
    """
    path = _data_file()
    if path is None:  # pragma: no cover - scikit-learn installed without its data files
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
    else:
        with path.open("rb") as raw, gzip.open(raw, mode="rt", encoding="utf-8") as text:
            data = np.loadtxt(text, delimiter=",")
        labels = data[:, -1].astype(int, copy=False)
        images = data[:, :-1]
    for a in (images, labels):
        a.flags.writeable = False
    return images, labels


def _approximate_mode(class_counts: np.ndarray, n_draws: int,
                      rng: np.random.RandomState) -> np.ndarray:
    """scikit-learn's ``_approximate_mode``: samples per class, ties broken by ``rng``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        values = np.sort(np.unique(remainder))[::-1]
        for value in values:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``train_test_split(np.arange(len(labels)), test_size=n_test, random_state=seed,
    stratify=labels)``: the train and test indices, for 1-D labels with at least two samples
    per class and ``n_test`` (an int) at least the number of classes on either side."""
    n_train = len(labels) - n_test
    classes, y_indices, class_counts = np.unique(labels, return_inverse=True,
                                                 return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(classes.shape[0]):
        permutation = rng.permutation(class_counts[i])
        perm_indices_class_i = class_indices[i].take(permutation, mode="clip")
        train.extend(perm_indices_class_i[: n_i[i]])
        test.extend(perm_indices_class_i[n_i[i]: n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


@functools.lru_cache(maxsize=4)
def digits_split(n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The train and test indices of the digits (see :func:`stratified_split`), read-only."""
    train, test = stratified_split(digits_arrays()[1], n_test, seed)
    for a in (train, test):
        a.flags.writeable = False
    return train, test
