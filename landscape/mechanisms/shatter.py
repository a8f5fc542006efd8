"""Shattered gradients: autocorrelation of input gradients along a line (Balduzzi et al., 2017).

Inputs ``x(t) = x_a + t (x_b - x_a)``, ``t`` on ``T`` evenly spaced points in ``[0, 1]``
between two samples of the data. At every depth ``l`` (each block's output, and the logits)
the scalar ``s_l(x) = <u_l, h_l(x)> / sqrt(d_l)`` with a fixed Rademacher vector ``u_l`` is
differentiated with respect to the input, giving a sequence of gradients ``g_l(t)``. Its
normalised autocorrelation (mean removed, :func:`autocorrelation`)::

    R(tau) = [1/(T - tau) sum_t <g~(t), g~(t + tau)>] / [1/T sum_t ||g~(t)||^2],
    g~(t) = g(t) - mean_t g(t),

is 1 at lag 0, stays near 1 for a smooth gradient and drops to about 0 at lag 1 for white
noise. Balduzzi et al. find that the correlation of gradients at nearby inputs decays like
``2^-L`` with depth for plain rectifier networks and like ``1/sqrt(L)`` with skip
connections: plain deep networks' gradients look like noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import LandscapeError, check_int
from ._common import Result, as_xy, eval_mode, to_model
from .blocks import Block, block_inputs, check_blocks, find_blocks

__all__ = ["ShatterResult", "autocorrelation", "shattering"]


def autocorrelation(g: Tensor | np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation ``R(0..max_lag)`` of a sequence of vectors ``g`` (``(T, ...)``);
    NaN where the sequence is constant (no fluctuation to correlate)."""
    a = torch.as_tensor(g).double().flatten(1)
    a = a - a.mean(0, keepdim=True)
    t = a.shape[0]
    if not 0 <= max_lag < t:
        raise LandscapeError(f"max_lag must be in [0, {t - 1}] for {t} points; got {max_lag}")
    var = float(a.pow(2).sum()) / t
    if var == 0.0:
        return np.full(max_lag + 1, np.nan)
    return np.array([float((a[: t - k] * a[k:]).sum()) / (t - k) / var
                     for k in range(max_lag + 1)])


@dataclass(frozen=True)
class ShatterResult(Result):
    """Input-gradient autocorrelation by depth.

    Attributes
    ----------
    depths : list of str
        Block names, then ``"logits"``.
    corr : np.ndarray, shape (n + 1, max_lag + 1)
        ``R(tau)`` at each depth.
    n_points : int
        Points on the line.
    step : float
        Distance between neighbouring points (input units).
    residual : list of bool
        Whether each block has a shortcut.
    """

    GROUP: ClassVar[str] = "shattering"

    depths: list
    corr: np.ndarray
    n_points: int
    step: float
    residual: list

    def decay_per_block(self) -> float:
        """Slope of ``log2 R_l(1)`` over block depth ``l`` (least squares over blocks with
        ``R_l(1) > 0``): about -1 for the ``2^-L`` decay of plain nets, near 0 for ResNets."""
        r = self.corr[:-1, 1]
        ok = np.isfinite(r) & (r > 0)
        if ok.sum() < 2:
            return float("nan")
        idx = np.flatnonzero(ok) + 1
        return float(np.polyfit(idx, np.log2(r[ok]), 1)[0])

    def numbers(self) -> dict[str, float]:
        """Headline numbers: lag-1 correlation at the first block, at the logits, and the
        decay per block."""
        return {
            "shatter_corr_first": float(self.corr[0, 1]),
            "shatter_corr_output": float(self.corr[-1, 1]),
            "shatter_decay_per_block": self.decay_per_block(),
        }


def shattering(
    model: nn.Module,
    data: Any,
    *,
    blocks: str | list[Block] | None = None,
    n_points: int = 128,
    max_lag: int = 8,
    pair: tuple[int, int] = (0, 1),
    seed: int = 0,
) -> ShatterResult:
    """Autocorrelation of input gradients along a line between two samples, by depth.

    Parameters
    ----------
    model : nn.Module
        The network (eval mode).
    data : TensorData or (x, y)
        The samples; ``pair`` picks the two ends of the line.
    blocks : str, list of Block or None
        See :func:`~landscape.mechanisms.blocks.find_blocks`.
    n_points : int, default=128
        Points on the line (one batch).
    max_lag : int, default=8
        Largest lag.
    pair : (int, int), default=(0, 1)
        Indices of the two samples.
    seed : int, default=0
        Seed of the projection vectors ``u_l``.

    Returns
    -------
    ShatterResult

    References
    ----------
    .. [1] D. Balduzzi, M. Frean, L. Leary, J. P. Lewis, K. W.-D. Ma and B. McWilliams, "The
       Shattered Gradients Problem: If resnets are the answer, then what is the question?",
       ICML 2017.
    """
    n_points = check_int("n_points", n_points, 3)
    max_lag = check_int("max_lag", max_lag, 1, n_points - 2)
    x, y = as_xy(data)
    a, b = pair
    if not (0 <= a < len(x) and 0 <= b < len(x)) or a == b:
        raise LandscapeError(f"pair must name two different samples of {len(x)}; got {pair}")
    x, _ = to_model(model, x[[a, b]], y[[a, b]])
    t = torch.linspace(0, 1, n_points, dtype=x.dtype, device=x.device)
    line = x[0:1] + t.view(-1, *([1] * (x.ndim - 1))) * (x[1:2] - x[0:1])
    bl = find_blocks(model, blocks)
    gen = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        with torch.no_grad():
            check_blocks(model, bl, line)
        line = line.detach().requires_grad_(True)
        with torch.enable_grad():
            out, _, outs = block_inputs(model, bl, line, keep_graph=True)
            corr = []
            acts = [*outs, out]
            for i, h in enumerate(acts):
                u = (torch.randint(0, 2, h.shape[1:], generator=gen) * 2 - 1).to(h)
                s = (h * u).flatten(1).sum(1) / h[0].numel() ** 0.5
                (g,) = torch.autograd.grad(s.sum(), line, retain_graph=i < len(acts) - 1)
                corr.append(autocorrelation(g, max_lag))
    step = float((x[1] - x[0]).norm()) / (n_points - 1)
    return ShatterResult(depths=[*(b.name for b in bl), "logits"], corr=np.array(corr),
                         n_points=n_points, step=step, residual=[b.residual for b in bl])
