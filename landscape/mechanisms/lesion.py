"""Lesion study: test error after deleting blocks (Veit, Wilber and Belongie, 2016).

Deleting a residual block keeps only its shortcut (``post(s(x))``); a plain block is replaced
by the identity where its input and output shapes agree, and is recorded as not deletable
otherwise (its single-deletion error is NaN and random deletions never pick it).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import check_int
from ._common import Result, as_xy, error_rate, eval_mode, to_model
from .blocks import Block, check_blocks, find_blocks, rerouted

__all__ = ["LesionResult", "lesion_study"]


@dataclass(frozen=True)
class LesionResult(Result):
    """Errors of a network with blocks deleted.

    Attributes
    ----------
    blocks : list of str
        Block names in forward order.
    residual : list of bool
        Whether each block has a shortcut.
    deletable : np.ndarray of bool, shape (n,)
        Whether each block could be deleted (plain blocks that change the shape cannot).
    downsampling : np.ndarray of bool, shape (n,)
        Whether each block changes the shape (projection shortcut).
    base_error : float
        Error of the intact network.
    single_error : np.ndarray, shape (n,)
        Error with only block ``i`` deleted (NaN where not deletable).
    k : np.ndarray of int, shape (m,)
        Numbers of deleted blocks, ``0..n_deletable``.
    k_errors : np.ndarray, shape (m, n_samples)
        Error for each random draw of ``k`` deleted blocks (NaN-padded where fewer distinct
        subsets exist than samples).
    chance_error : float
        ``1 - 1/n_classes``: the error of guessing.
    n_samples_eval : int
        Samples the errors are computed on.
    """

    GROUP: ClassVar[str] = "lesion"

    blocks: list
    residual: list
    deletable: np.ndarray
    downsampling: np.ndarray
    base_error: float
    single_error: np.ndarray
    k: np.ndarray
    k_errors: np.ndarray
    chance_error: float
    n_samples_eval: int

    @property
    def k_mean(self) -> np.ndarray:
        """Mean error per ``k``."""
        return np.nanmean(self.k_errors, axis=1)

    @property
    def k_std(self) -> np.ndarray:
        """Standard deviation of the error per ``k`` (0 where one draw)."""
        return np.nanstd(self.k_errors, axis=1)

    def numbers(self) -> dict[str, float]:
        """Headline numbers: the intact error (``lesion_base_error``), the test *error* after
        deleting one block (mean, max, and max over non-downsampling blocks; errors, not
        increases: the increase is the value minus ``lesion_base_error``), the mean error at
        ``k`` closest to ``n/2`` and the fraction of blocks that are deletable."""
        inc = self.single_error - self.base_error
        ok = ~np.isnan(inc)
        inner = ok & ~self.downsampling
        half = int(np.argmin(np.abs(self.k - len(self.blocks) / 2)))
        nan = float("nan")
        return {
            "lesion_base_error": self.base_error,
            "lesion_single_mean": float(np.mean(self.single_error[ok])) if ok.any() else nan,
            "lesion_single_max": float(np.max(self.single_error[ok])) if ok.any() else nan,
            "lesion_single_max_inner": float(np.max(self.single_error[inner]))
            if inner.any() else nan,
            "lesion_k_half": int(self.k[half]),
            "lesion_error_k_half": float(self.k_mean[half]),
            "lesion_deletable_fraction": float(np.mean(self.deletable)),
        }


def lesion_study(
    model: nn.Module,
    data: Any,
    *,
    blocks: str | list[Block] | None = None,
    n_samples: int = 5,
    max_samples_eval: int | None = None,
    seed: int = 0,
    batch_size: int = 512,
) -> LesionResult:
    """Test error after deleting each single block, and after deleting ``k`` random blocks.

    Parameters
    ----------
    model : nn.Module
        The network (evaluated in eval mode; its flags are restored).
    data : TensorData or (x, y)
        Labelled samples, usually the test split.
    blocks : str, list of Block or None
        Which blocks, see :func:`~landscape.mechanisms.blocks.find_blocks`.
    n_samples : int, default=5
        Random subsets per ``k`` (all subsets when there are fewer).
    max_samples_eval : int, optional
        Evaluate on the first this many samples only.
    seed : int, default=0
        Seed of the random subsets.
    batch_size : int, default=512
        Samples per forward pass.

    Returns
    -------
    LesionResult

    References
    ----------
    .. [1] A. Veit, M. Wilber and S. Belongie, "Residual Networks Behave Like Ensembles of
       Relatively Shallow Networks", NeurIPS 2016.
    """
    n_samples = check_int("n_samples", n_samples, 1)
    x, y = to_model(model, *as_xy(data, max_samples_eval))
    bl = find_blocks(model, blocks)
    n = len(bl)
    deletable = np.array([b.deletable for b in bl])
    idx_del = np.flatnonzero(deletable)
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1 if not y.is_floating_point() else 0

    def err(deleted: list[int]) -> float:
        with rerouted(bl, {bl[i].name: "lesion" for i in deleted}):
            return error_rate(model, x, y, batch_size)

    with eval_mode(model), torch.no_grad():
        check_blocks(model, bl, x[:batch_size])
        base = error_rate(model, x, y, batch_size)
        single = np.array([err([i]) if deletable[i] else np.nan for i in range(n)])
        ks = np.arange(len(idx_del) + 1)
        k_err = np.full((len(ks), n_samples), np.nan)
        for k in ks:
            draws = _subsets(idx_del, int(k), n_samples, rng)
            for j, d in enumerate(draws):
                k_err[k, j] = base if k == 0 else err(list(d))
    return LesionResult(
        blocks=[b.name for b in bl], residual=[b.residual for b in bl], deletable=deletable,
        downsampling=np.array([b.projection for b in bl]), base_error=base, single_error=single,
        k=ks, k_errors=k_err, chance_error=1.0 - 1.0 / n_classes if n_classes else float("nan"),
        n_samples_eval=int(len(x)),
    )


def _subsets(pool: np.ndarray, k: int, n: int, rng: np.random.Generator) -> list[tuple]:
    """``n`` distinct random ``k``-subsets of ``pool`` (all of them when there are fewer)."""
    total = math.comb(len(pool), k)
    if total <= n:
        return list(itertools.combinations(pool.tolist(), k))
    seen: set[tuple] = set()
    while len(seen) < n:
        seen.add(tuple(sorted(rng.choice(pool, size=k, replace=False).tolist())))
    return sorted(seen)
