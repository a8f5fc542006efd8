"""Path-length distribution of the gradient (Veit, Wilber and Belongie, 2016, Sec. 4.2).

A network of ``n`` residual blocks unrolls into ``2^n`` paths: at each block the signal goes
through the branch or through the shortcut. The forward pass is left as it is; in the
backward pass each block routes the gradient through its branch only or its shortcut only
(:func:`~landscape.mechanisms.blocks.rerouted`), so that exactly ``k`` branches are on the
path. The gradient of the summed per-sample loss is measured at the input of the first block
(the stem before it is common to every path). Summed over all ``2^n`` routings the path
gradients give the ordinary gradient exactly (:func:`path_gradient`; tested by enumeration).

For each length ``k`` a few random paths are sampled; their mean per-sample gradient norm,
times the number of paths ``C(n, k)``, is the total gradient magnitude paths of length ``k``
contribute. A plain block has no shortcut and is on every path: a plain network has a single
path, of length ``n``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import LandscapeError, check_int
from ._common import Result, as_xy, eval_mode, loss_sum_mean, to_model
from .blocks import Block, check_blocks, find_blocks, rerouted

__all__ = ["PathLengthResult", "path_gradient", "path_lengths"]


def path_gradient(model: nn.Module, blocks: Sequence[Block], x: Tensor, y: Tensor,
                  through_branch: Sequence[bool] | None, loss: Any = None) -> Tensor:
    """Gradient of the summed per-sample loss at the first block's input, routed through
    the branch of the blocks where ``through_branch`` is true and through the shortcut of the
    others (``None``: the ordinary gradient). Plain blocks always use their branch. ``loss``:
    see :func:`~landscape.mechanisms._common.loss_sum_mean` (default: cross-entropy for class
    targets, squared error for float targets).

    Returns
    -------
    Tensor
        Same shape as the first block's input (one gradient per sample).
    """
    if through_branch is not None and len(through_branch) != len(blocks):
        raise LandscapeError(
            f"through_branch has {len(through_branch)} entries for {len(blocks)} blocks"
        )
    leaf: list[Tensor] = []

    def pre(_m, args):
        t = args[0].detach().requires_grad_(True)
        leaf.append(t)
        return (t, *args[1:])

    modes = {} if through_branch is None else {
        b.name: ("branch" if t else "skip")
        for b, t in zip(blocks, through_branch, strict=True) if b.residual
    }
    h = blocks[0].module.register_forward_pre_hook(pre)
    try:
        with rerouted(blocks, modes), torch.enable_grad():
            total, _ = loss_sum_mean(model(x), x, y, loss)
            (g,) = torch.autograd.grad(total, leaf[0], allow_unused=True)
    finally:
        h.remove()
    return torch.zeros_like(leaf[0]) if g is None else g


@dataclass(frozen=True)
class PathLengthResult(Result):
    """Gradient magnitude per path length.

    Attributes
    ----------
    k : np.ndarray of int
        Path lengths (branches on the path), ``n_plain .. n``.
    n_paths : np.ndarray of float
        Number of distinct paths of each length, ``C(n_residual, k - n_plain)``.
    grad_mean : np.ndarray
        Mean (over sampled paths) of the mean per-sample gradient norm of one path.
    grad_std : np.ndarray
        Its standard deviation over the sampled paths.
    n_sampled : np.ndarray of int
        Paths sampled per length.
    total : np.ndarray
        ``grad_mean * n_paths``: gradient magnitude contributed by all paths of length ``k``.
    full_grad : float
        Mean per-sample norm of the ordinary gradient (all paths together).
    n_blocks : int
        Blocks in the network.
    n_residual : int
        Blocks with a shortcut.
    """

    GROUP: ClassVar[str] = "path_lengths"

    k: np.ndarray
    n_paths: np.ndarray
    grad_mean: np.ndarray
    grad_std: np.ndarray
    n_sampled: np.ndarray
    total: np.ndarray
    full_grad: float
    n_blocks: int
    n_residual: int

    @property
    def fraction(self) -> np.ndarray:
        """Share of the summed path gradient magnitude per length (NaN when no gradient
        reaches the input at all)."""
        s = self.total.sum()
        return self.total / s if s > 0 else np.full_like(self.total, np.nan)

    def effective_range(self, mass: float = 0.9) -> tuple[int, int]:
        """Shortest range of lengths holding at least ``mass`` of the total."""
        f = self.fraction
        best = (int(self.k[0]), int(self.k[-1]))
        width = len(f)
        for i in range(len(f)):
            c = np.cumsum(f[i:])
            j = int(np.searchsorted(c, mass - 1e-12))
            if j < len(c) and j + 1 < width:
                width, best = j + 1, (int(self.k[i]), int(self.k[i + j]))
        return best

    def numbers(self) -> dict[str, float]:
        """Headline numbers: the length with the most gradient, the mean length weighted by
        gradient, the 90 % range, and the mean length of all paths."""
        if not np.isfinite(self.fraction).all():
            nan = float("nan")
            return {"path_length_peak": nan, "path_length_mean": nan, "path_length_90_lo": nan,
                    "path_length_90_hi": nan, "path_length_all_mean": nan,
                    "path_n_blocks": self.n_blocks}
        lo, hi = self.effective_range()
        return {
            "path_length_peak": int(self.k[int(np.argmax(self.total))]),
            "path_length_mean": float(np.sum(self.fraction * self.k)),
            "path_length_90_lo": lo,
            "path_length_90_hi": hi,
            "path_length_all_mean": float(np.sum(self.n_paths * self.k) / self.n_paths.sum()),
            "path_n_blocks": self.n_blocks,
        }


def path_lengths(
    model: nn.Module,
    data: Any,
    *,
    blocks: str | list[Block] | None = None,
    n_paths: int = 8,
    batch_size: int = 64,
    seed: int = 0,
    loss: Any = None,
) -> PathLengthResult:
    """Sample paths of every length and measure the gradient each carries to the input.

    Parameters
    ----------
    model : nn.Module
        The network (eval mode).
    data : TensorData or (x, y)
        The first ``batch_size`` samples are used.
    blocks : str, list of Block or None
        See :func:`~landscape.mechanisms.blocks.find_blocks`.
    n_paths : int, default=8
        Random paths per length (all of them where there are fewer).
    batch_size : int, default=64
        Samples in the batch.
    seed : int, default=0
        Seed of the path draws.
    loss : str, callable or None
        The per-sample loss whose gradient is measured (a :mod:`landscape.losses` loss;
        default: cross-entropy for class targets, squared error for float targets).

    Returns
    -------
    PathLengthResult

    References
    ----------
    .. [1] A. Veit, M. Wilber and S. Belongie, "Residual Networks Behave Like Ensembles of
       Relatively Shallow Networks", NeurIPS 2016.
    """
    n_paths = check_int("n_paths", n_paths, 1)
    x, y = to_model(model, *as_xy(data, check_int("batch_size", batch_size, 1)))
    bl = find_blocks(model, blocks)
    res = [i for i, b in enumerate(bl) if b.residual]
    n, nr = len(bl), len(res)
    rng = np.random.default_rng(seed)

    def norm(g: Tensor) -> float:
        return float(g.flatten(1).norm(dim=1).mean())

    with eval_mode(model):
        with torch.no_grad():
            check_blocks(model, bl, x)
        full = norm(path_gradient(model, bl, x, y, None, loss))
        ks, counts, means, stds, sampled = [], [], [], [], []
        for j in range(nr + 1):
            mask_sets = _masks(nr, j, n_paths, rng)
            vals = []
            for chosen in mask_sets:
                through = [True] * n
                for i in res:
                    through[i] = False
                for c in chosen:
                    through[res[c]] = True
                vals.append(norm(path_gradient(model, bl, x, y, through, loss)))
            ks.append(n - nr + j)
            counts.append(float(math.comb(nr, j)))
            means.append(float(np.mean(vals)))
            stds.append(float(np.std(vals)))
            sampled.append(len(vals))
    means_a, counts_a = np.array(means), np.array(counts)
    return PathLengthResult(
        k=np.array(ks), n_paths=counts_a, grad_mean=means_a, grad_std=np.array(stds),
        n_sampled=np.array(sampled), total=means_a * counts_a, full_grad=full, n_blocks=n,
        n_residual=nr,
    )


def _masks(n: int, k: int, m: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``m`` distinct random ``k``-subsets of ``range(n)`` (all where there are fewer)."""
    if math.comb(n, k) <= m:
        return list(itertools.combinations(range(n), k))
    seen: set[tuple[int, ...]] = set()
    while len(seen) < m:
        seen.add(tuple(sorted(rng.choice(n, size=k, replace=False).tolist())))
    return sorted(seen)
