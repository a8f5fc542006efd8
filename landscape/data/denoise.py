"""An image-to-image task made from the bundled digits: denoising, deterministic, no download.

The input is a digit (scikit-learn's 8x8 digits scaled to ``[0, 1]``, the split of ``"digits"``)
plus Gaussian noise of standard deviation ``noise``, drawn from a :class:`torch.Generator`
seeded with ``seed`` (train) or ``seed + 1`` (test), so the same arguments always give the same
tensors; the target is the clean digit. Inputs and targets are float32 of shape
``(N, 1, 8, 8)``: a regression task without classes, trained and measured with the mean
squared error (``loss="mse"``; ``landscape train`` picks it for float targets). The noise is
not clipped, so it is exactly Gaussian.

It is the built-in data set ``"digits-denoise"`` (``DataSpec("digits-denoise", kwargs={"noise":
0.5, "seed": 0})``, ``--data digits-denoise --data-kwargs '{"noise": 0.3}'``) for image-to-image
models such as :class:`~landscape.models.UNet`.

Examples
--------
>>> from landscape.data import load_data
>>> train = load_data("digits-denoise")
>>> train.x.shape, train.y.shape, train.num_classes
(torch.Size([1437, 1, 8, 8]), torch.Size([1437, 1, 8, 8]), None)
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import LandscapeError, check_float, check_int
from .tensors import TensorData

__all__ = ["NAME", "NOISE", "corrupt", "load"]

#: The data set's name in :mod:`landscape.data`.
NAME = "digits-denoise"
#: Default standard deviation of the noise (pixels lie in [0, 1]).
NOISE = 0.5
_SPLIT_OFFSET = {"train": 0, "test": 1}


def corrupt(clean: TensorData, noise: float = NOISE, seed: int = 0,
            split: str = "train") -> TensorData:
    """The denoising task of a set of clean images: ``(clean + noise, clean)``.

    Parameters
    ----------
    clean : TensorData
        Clean images ``x`` (their labels are dropped).
    noise : float, default=0.5
        Standard deviation of the additive Gaussian noise, ``>= 0`` (0: the identity task).
    seed : int, default=0
        Seeds the noise; the test split uses ``seed + 1``.
    split : {"train", "test"}, default="train"
        Which split ``clean`` is.

    Returns
    -------
    TensorData
        Noisy inputs and clean float targets of the same shape, named ``"digits-denoise"``.
    """
    noise = check_float("noise", noise, low=0.0)
    seed = check_int("seed", seed, low=0)
    if split not in _SPLIT_OFFSET:
        raise LandscapeError(f"The 'split' parameter must be 'train' or 'test'. Got {split!r} "
                             "instead.")
    x = clean.x.float()
    g = torch.Generator().manual_seed(seed + _SPLIT_OFFSET[split])
    eps = torch.randn(x.shape, generator=g, dtype=torch.float32)
    return TensorData(x + noise * eps, x.clone(), NAME, split=split)


def load(kwargs: dict[str, Any], clean: TensorData, split: str) -> TensorData:
    """The ``"digits-denoise"`` loader of :mod:`landscape.data` (options ``noise``, ``seed``),
    given the clean split of ``"digits"``."""
    unknown = sorted(set(kwargs) - {"noise", "seed"})
    if unknown:
        raise LandscapeError(
            f"dataset {NAME!r} got unknown option(s) {unknown}; its options are "
            "['noise', 'seed']"
        )
    return corrupt(clean, split=split, **kwargs)
