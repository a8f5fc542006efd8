"""k-dilution of blocks and the gradient scale coefficient (Philipp, Song and Carbonell, 2018).

**k-dilution.** A block ``f`` is k-diluted with respect to its input distribution ``v`` if
``f(v) = S v + rho(v)`` with ``Q||S v|| / Q||rho(v)|| = k``, ``Q[X] = E[X^2]^(1/2)`` and ``S``
the best linear fit. The estimator here fits an *affine* map (the constant part counts as
linear and is left out of both norms) and takes as ``S`` the mean Jacobian::

    S = E_v[J_f(v)],   rho(v) = f(v) - E f - S (v - E v),
    k = Q||S (v - E v)|| / Q||rho(v)||.

For Gaussian ``v`` the mean Jacobian *is* the least-squares slope (Stein's lemma:
``Cov(f(v), v) = E[J_f] Cov(v)``), so the estimator is the paper's definition there; for
other inputs it is "the average linearisation". It scales to convolutional blocks: ``S`` is
never formed; ``S u`` is the average of JVPs at ``n_linear`` sampled inputs. It is exact for
a linear block (``rho = 0``: ``k = inf``, reported as ``inf`` once ``Q||rho||`` is below
``100 eps`` of ``Q||S v||``; a map constant on the samples gives NaN, not ``inf``) and for
``relu`` of ``v ~ N(0, I)`` it gives ``S = I/2``, ``rho = |v|/2 - 1/sqrt(2 pi)`` per
coordinate, ``k = 1/sqrt(1 - 2/pi) = 1.659`` (with a purely linear fit, the constant
``1/sqrt(2 pi)`` would count as non-linear and ``k = 1``).

**Gradient scale coefficient.** How much a relative change of the activations ``h_l`` at
depth ``l`` changes the output ``h_L`` (the logits) relatively::

    GSC(l) = ||J_l||_qm * Q||h_l|| / Q||h_L||,   ||J_l||_qm^2 = E ||J_l u||^2 (u uniform on
    the unit sphere) = ||J_l||_F^2 / d_l,   J_l = dh_L / dh_l,

with ``||J_l||_F^2 = E_w ||J_l^T w||^2`` estimated from one Rademacher vector ``w`` per sample
(one backward pass gives every depth). ``GSC(L) = 1``; a GSC that grows exponentially
towards the input is the "exploding gradient" of the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import check_int
from ._common import Linearization, Result, as_xy, eval_mode, qm, to_model
from .blocks import Block, block_inputs, check_blocks, find_blocks

__all__ = ["DilutionResult", "dilution", "k_dilution", "gradient_scale"]


def k_dilution(f: Any, v: Tensor, n_linear: int = 16, seed: int = 0) -> tuple[float, float,
                                                                                 float]:
    """Estimate the k-dilution of a sample-wise map ``f`` on the samples ``v``.

    Parameters
    ----------
    f : callable
        ``f(v)`` for a batch ``v`` (must not mix samples).
    v : Tensor
        Input samples, ``(N, ...)``.
    n_linear : int, default=16
        Samples at which the Jacobian is averaged to form ``S`` (all ``N`` if fewer).
    seed : int, default=0
        Seed choosing those samples.

    Returns
    -------
    k, q_linear, q_rest : float
        ``k = q_linear / q_rest`` (``inf`` when ``q_rest`` is at the rounding floor; NaN
        for a map that is constant on the samples, e.g. a plain block whose ReLUs are all
        dead: ``0 / 0``),
        ``q_linear = Q||S (v - E v)||`` and ``q_rest = Q||rho(v)||``.
    """
    n = v.shape[0]
    m = min(check_int("n_linear", n_linear, 1), n)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(n, generator=g)[:m].tolist()
    with torch.no_grad():
        fv = f(v)
    dv = v - v.mean(0, keepdim=True)
    sv = torch.zeros_like(fv)
    for i in pick:
        vi = v[i : i + 1].expand_as(v).contiguous()
        sv += Linearization(f, vi).jvp(dv)
    sv /= m
    rho = fv - fv.mean(0, keepdim=True) - sv
    q_lin = qm(sv.flatten(1).norm(dim=1))
    q_rest = qm(rho.flatten(1).norm(dim=1))
    eps = torch.finfo(v.dtype).eps
    if q_lin == 0.0 and q_rest <= 100 * eps * float(fv.abs().max()):
        k = math.nan  # a constant map (e.g. every ReLU dead): neither linear nor not
    elif q_rest <= 100 * eps * q_lin:
        k = math.inf
    else:
        k = q_lin / q_rest
    return k, q_lin, q_rest


def gradient_scale(model: nn.Module, blocks: list[Block], x: Tensor, seed: int = 0
                   ) -> np.ndarray:
    """GSC at every block's input and at the last block's output (see the module notes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        out, ins, outs = block_inputs(model, blocks, x, keep_graph=True)
        w = (torch.randint(0, 2, out.shape, generator=g) * 2 - 1).to(out)
        acts = [*ins, outs[-1]]
        grads = torch.autograd.grad((out * w).sum(), acts)
    q_out = qm(out.detach().flatten(1).norm(dim=1))
    gsc = []
    for h, gr in zip(acts, grads, strict=True):
        d = h[0].numel()
        jqm = math.sqrt(float(gr.double().flatten(1).pow(2).sum(1).mean()) / d)
        gsc.append(jqm * qm(h.detach().flatten(1).norm(dim=1)) / q_out if q_out > 0
                   else float("nan"))
    return np.array(gsc)


@dataclass(frozen=True)
class DilutionResult(Result):
    """k-dilution per block and the GSC through depth.

    Attributes
    ----------
    blocks : list of str
        Block names.
    k : np.ndarray, shape (n,)
        k-dilution of each block on its input distribution (``inf`` for a linear block).
    q_linear, q_rest : np.ndarray, shape (n,)
        ``Q||S (v - E v)||`` and ``Q||rho(v)||`` per block.
    gsc : np.ndarray, shape (n + 1,)
        Gradient scale coefficient at each block's input, then at the last block's output,
        relative to the logits.
    residual : list of bool
        Whether each block has a shortcut.
    n_samples : int
        Samples of the input distribution.
    """

    GROUP: ClassVar[str] = "dilution"

    blocks: list
    k: np.ndarray
    q_linear: np.ndarray
    q_rest: np.ndarray
    gsc: np.ndarray
    residual: list
    n_samples: int

    def numbers(self) -> dict[str, float]:
        """Headline numbers: median and minimum block k (over blocks where it is defined), the
        GSC at the first block's input."""
        ok = bool(np.isfinite(self.k).any() or np.isinf(self.k).any())
        return {
            "dilution_k_median": float(np.nanmedian(self.k)) if ok else float("nan"),
            "dilution_k_min": float(np.nanmin(self.k)) if ok else float("nan"),
            "gsc_input": float(self.gsc[0]),
            "gsc_max": float(np.max(self.gsc)),
        }


def dilution(
    model: nn.Module,
    data: Any,
    *,
    blocks: str | list[Block] | None = None,
    batch_size: int = 64,
    n_linear: int = 16,
    seed: int = 0,
) -> DilutionResult:
    """k-dilution of every block and the gradient scale coefficient by depth.

    Parameters
    ----------
    model : nn.Module
        The network (eval mode).
    data : TensorData or (x, y)
        The first ``batch_size`` samples define the input distribution of each block.
    blocks : str, list of Block or None
        See :func:`~landscape.mechanisms.blocks.find_blocks`.
    batch_size : int, default=64
        Samples.
    n_linear : int, default=16
        Linearisation points of the mean-Jacobian fit (cost: ``n_linear`` JVPs of the batch
        per block).
    seed : int, default=0
        Seed.

    Returns
    -------
    DilutionResult

    References
    ----------
    .. [1] G. Philipp, D. Song and J. G. Carbonell, "Gradients explode - Deep Networks are
       shallow - ResNet explained", ICLR 2018 workshop (arXiv:1712.05577).
    """
    x, _ = to_model(model, *as_xy(data, check_int("batch_size", batch_size, 2)))
    bl = find_blocks(model, blocks)
    with eval_mode(model):
        with torch.no_grad():
            check_blocks(model, bl, x)
            _, ins, _ = block_inputs(model, bl, x)
        ks, ql, qr = [], [], []
        for i, (b, v) in enumerate(zip(bl, ins, strict=True)):
            k, a, r = k_dilution(b.forward, v, n_linear, seed + i)
            ks.append(k)
            ql.append(a)
            qr.append(r)
        gsc = gradient_scale(model, bl, x, seed)
    return DilutionResult(blocks=[b.name for b in bl], k=np.array(ks), q_linear=np.array(ql),
                          q_rest=np.array(qr), gsc=gsc, residual=[b.residual for b in bl],
                          n_samples=int(len(x)))
