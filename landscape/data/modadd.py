"""The modular-addition task of Power et al. (2022, "Grokking"), generated, never downloaded.

Every pair ``(a, b)`` with ``0 <= a, b < p`` is one sample: the input is the token sequence
``a b =`` (``=`` is token ``p``, so the vocabulary has ``p + 1`` tokens) and the target is
``(a + b) mod p``, one of ``p`` classes. A fixed fraction of the ``p^2`` pairs, drawn with a
seeded :class:`torch.Generator`, is the training split and the rest the test split, so the
same arguments always give the same split.

It is the built-in data set ``"modadd"`` (``DataSpec("modadd", kwargs={"p": 97,
"train_fraction": 0.5, "seed": 0})``, ``--data modadd --data-kwargs '{"p": 23}'``). Inputs are
int64 token ids of shape ``(N, 3)``; :class:`~landscape.models.GPT` reads them and returns the
logits of the answer only, so the usual cross-entropy and accuracy apply.

References
----------
.. [1] A. Power, Y. Burda, H. Edwards, I. Babuschkin and V. Misra, "Grokking: Generalization
   Beyond Overfitting on Small Algorithmic Datasets", 2022 (p = 97; train fractions of 30 to
   50% of the pairs).

Examples
--------
>>> train = modular_addition(p=5, train_fraction=0.6, split="train")
>>> len(train), train.x.dtype, train.num_classes
(15, torch.int64, 5)
>>> bool(((train.x[:, 0] + train.x[:, 1]) % 5 == train.y).all())
True
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import LandscapeError, check_float, check_int, check_option
from .tensors import TensorData

__all__ = ["modular_addition"]


def modular_addition(
    p: int = 97, train_fraction: float = 0.5, seed: int = 0, split: str = "train"
) -> TensorData:
    """One split of ``a + b mod p``.

    Parameters
    ----------
    p : int, default=97
        The modulus (at least 2); ``p^2`` samples in all.
    train_fraction : float, default=0.5
        Fraction of the pairs in the training split, in (0, 1); at least one pair lands in
        each split.
    seed : int, default=0
        Seeds the split.
    split : {"train", "test"}, default="train"
        Which split.

    Returns
    -------
    TensorData
        ``x``: int64 ``(N, 3)`` rows ``[a, b, p]``; ``y``: int64 ``(a + b) % p``; ``p`` classes.
        Samples are in ``(a, b)`` order within a split.
    """
    p = check_int("p", p, low=2)
    frac = check_float("train_fraction", train_fraction, 0.0, 1.0, closed="neither")
    seed = check_int("seed", seed, low=0)
    split = check_option("split", split, ("train", "test"))
    n = p * p
    n_train = min(max(1, round(frac * n)), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    idx = (perm[:n_train] if split == "train" else perm[n_train:]).sort().values
    a, b = idx // p, idx % p
    x = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    return TensorData(x, (a + b) % p, "modadd", n_classes=p)


def load(kwargs: dict[str, Any], split: str) -> TensorData:
    """The ``"modadd"`` loader of :mod:`landscape.data` (options ``p``, ``train_fraction``,
    ``seed``)."""
    unknown = sorted(set(kwargs) - {"p", "train_fraction", "seed"})
    if unknown:
        raise LandscapeError(
            f"dataset 'modadd' got unknown option(s) {unknown}; its options are "
            "['p', 'seed', 'train_fraction']"
        )
    return modular_addition(split=split, **kwargs)
