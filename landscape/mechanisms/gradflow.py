"""Gradient flow by depth: weight- and input-gradient norms, block Jacobian spectral norms.

A residual block has ``dy/dx = D (I + dF/dx)`` (``D`` the derivative of ``post``; the
identity for pre-activation and MLP blocks): its Jacobian stays near an isometry when the
branch is small, which is the usual explanation of why gradients neither vanish nor explode
through a deep ResNet. This module measures, on a batch:

- the norm of the loss gradient of every weight tensor (``ndim >= 2``), in model order;
- the mean per-sample norm of the gradient of the summed loss at every block's input;
- per block, the spectral norm of the per-sample Jacobian of the block and of its branch
  alone, by power iteration on ``J^T J`` with forward- and reverse-mode products
  (double backward), averaged over samples, and their
  running product through depth. Each factor is a power-iteration estimate, a lower bound of
  that block's spectral norm converging from below, so the product is a product of lower
  bounds of the block norms; it is *not* an upper bound of the end-to-end Jacobian norm (the
  product of the exact block norms would be one, by submultiplicativity, but the estimates may
  fall short of them), and not an estimate of it either (the blocks' top singular directions
  need not line up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import check_int
from ._common import Linearization, Result, as_xy, eval_mode, loss_sum_mean, to_model
from .blocks import Block, block_inputs, check_blocks, find_blocks

__all__ = ["GradFlowResult", "gradient_flow", "jacobian_spectral_norm"]


def _unit(v: Tensor) -> tuple[Tensor, Tensor]:
    n = v.flatten(1).norm(dim=1)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    return v / safe.view(-1, *([1] * (v.ndim - 1))), n


def jacobian_spectral_norm(f: Callable[[Tensor], Tensor], x: Tensor, n_iter: int = 20,
                           seed: int = 0) -> Tensor:
    """Per-sample spectral norm of the Jacobian of a sample-wise map ``f`` at ``x``.

    Power iteration on ``J^T J`` (one JVP and one VJP per step, from one forward pass:
    :class:`~landscape.mechanisms._common.Linearization`), one independent iteration
    per sample (``f`` must not mix samples: modules in eval mode). A Jacobian that is exactly
    zero gives 0.

    Returns
    -------
    Tensor, shape (batch,)
        ``||J_i||_2`` for each sample ``i`` (a lower bound that converges from below).
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    v, _ = _unit(v)
    lin = Linearization(f, x)
    sigma = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for _ in range(n_iter):
        u = lin.jvp(v)
        sigma = u.flatten(1).norm(dim=1)
        v_new, n = _unit(lin.vjp(u))
        if bool((n == 0).all()):
            break
        v = torch.where((n > 0).view(-1, *([1] * (v.ndim - 1))), v_new, v)
    return sigma.detach()


@dataclass(frozen=True)
class GradFlowResult(Result):
    """Gradient norms and block Jacobians through depth.

    Attributes
    ----------
    layers : list of str
        Weight tensors (``ndim >= 2``) in model order.
    weight_grad : np.ndarray
        Norm of the mean-loss gradient of each of them.
    blocks : list of str
        Block names.
    input_grad : np.ndarray, shape (n + 1,)
        Mean per-sample norm of the summed-loss gradient at each block's input, then at the
        last block's output.
    jac_block : np.ndarray, shape (n,)
        Mean over samples of the spectral norm of each block's Jacobian.
    jac_branch : np.ndarray, shape (n,)
        The same for the branch alone (0 for a branch that is exactly zero).
    jac_product : np.ndarray, shape (n,)
        Mean over samples of the running product of the per-sample block norm estimates
        (a product of lower bounds of the block norms; neither a bound nor an estimate of
        the end-to-end Jacobian norm).
    residual : list of bool
        Whether each block has a shortcut.
    """

    GROUP: ClassVar[str] = "gradflow"

    layers: list
    weight_grad: np.ndarray
    blocks: list
    input_grad: np.ndarray
    jac_block: np.ndarray
    jac_branch: np.ndarray
    jac_product: np.ndarray
    residual: list

    def numbers(self) -> dict[str, float]:
        """Headline numbers: input-gradient ratio first/last block, mean block and branch
        Jacobian norms, and the end-to-end product."""
        g = self.input_grad
        return {
            "gradflow_input_ratio": float(g[0] / g[-1]) if g[-1] > 0 else float("nan"),
            "gradflow_jac_block_mean": float(np.mean(self.jac_block)),
            "gradflow_jac_branch_mean": float(np.mean(self.jac_branch)),
            "gradflow_jac_product": float(self.jac_product[-1]),
        }


def gradient_flow(
    model: nn.Module,
    data: Any,
    *,
    blocks: str | list[Block] | None = None,
    batch_size: int = 64,
    n_iter: int = 8,
    seed: int = 0,
    loss: Any = None,
) -> GradFlowResult:
    """Measure gradient norms and block Jacobian spectral norms by depth.

    Parameters
    ----------
    model : nn.Module
        The network (eval mode).
    data : TensorData or (x, y)
        The first ``batch_size`` samples are used.
    blocks : str, list of Block or None
        See :func:`~landscape.mechanisms.blocks.find_blocks`.
    batch_size : int, default=64
        Samples.
    n_iter : int, default=8
        Power iterations per block.
    seed : int, default=0
        Seed of the start vectors.
    loss : str, callable or None
        The per-sample loss (a :mod:`landscape.losses` loss; default: cross-entropy for class
        targets, squared error for float targets).

    Returns
    -------
    GradFlowResult
    """
    n_iter = check_int("n_iter", n_iter, 1)
    x, y = to_model(model, *as_xy(data, check_int("batch_size", batch_size, 1)))
    bl = find_blocks(model, blocks)
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    params = [p for n, p in model.named_parameters() if p.ndim >= 2]
    with eval_mode(model):
        with torch.no_grad():
            check_blocks(model, bl, x)
        with torch.enable_grad():
            out, ins, outs = block_inputs(model, bl, x, keep_graph=True)
            total, mean = loss_sum_mean(out, x, y, loss)
            acts = [*ins, outs[-1]]
            grads = torch.autograd.grad(total, acts, retain_graph=True)
            wgrads = torch.autograd.grad(mean, params, allow_unused=True)
        input_grad = np.array([float(g.flatten(1).norm(dim=1).mean()) for g in grads])
        wg = np.array([0.0 if g is None else float(g.norm()) for g in wgrads])
        jb, jf, prod = [], [], []
        running = torch.ones(len(x), dtype=torch.float64)
        for i, (b, xi) in enumerate(zip(bl, ins, strict=True)):
            xi = xi.detach()
            s_block = jacobian_spectral_norm(b.forward, xi, n_iter, seed + i)
            s_branch = jacobian_spectral_norm(b.branch, xi, n_iter, seed + i)
            running = running * s_block.double().cpu()
            jb.append(float(s_block.mean()))
            jf.append(float(s_branch.mean()))
            prod.append(float(running.mean()))
    return GradFlowResult(
        layers=names, weight_grad=wg, blocks=[b.name for b in bl], input_grad=input_grad,
        jac_block=np.array(jb), jac_branch=np.array(jf), jac_product=np.array(prod),
        residual=[b.residual for b in bl],
    )
