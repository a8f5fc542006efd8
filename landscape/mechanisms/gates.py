"""How open the transform gates of a highway network are: the identity that training keeps.

A highway layer (:class:`~landscape.models.HighwayLayer`,
:class:`~landscape.models.HighwayConvLayer`) computes ``y = H(x) T(x) + x (1 - T(x))`` with the
transform gate ``T(x) = sigmoid(W_T x + b_T)``. Where ``T`` is near 0 the layer carries its
input through (the identity path); near 1 it transforms it. Srivastava et al. (2015, Fig. 2)
found the gates of trained networks mostly closed -- biased towards carrying -- and
selectively open per input. This analysis reports, for every highway layer in forward order,
the mean of ``T`` over the samples and units (channels and positions for the convolutional
layer), the spread of the per-unit means, and the fraction of units whose mean gate is above
one half.

At the initialisation with ``W_T = 0`` every gate equals ``sigmoid(b_T)`` exactly (``0.1192``
for the default bias ``-2``): the closed form the tests check.

References
----------
.. [1] R. K. Srivastava, K. Greff and J. Schmidhuber, "Training Very Deep Networks", NeurIPS
   2015.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import LandscapeError, check_int
from ..models import HighwayConvLayer, HighwayLayer
from ._common import Result, as_xy, eval_mode, to_model

__all__ = ["GateResult", "find_gates", "gate_openness"]


def find_gates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The highway layers of ``model`` in registration (forward) order, as ``(name, module)``.

    Raises
    ------
    LandscapeError
        If the model has none.
    """
    found = [(n, m) for n, m in model.named_modules()
             if isinstance(m, HighwayLayer | HighwayConvLayer)]
    if not found:
        raise LandscapeError(
            f"{type(model).__name__} has no highway gates (HighwayLayer or HighwayConvLayer "
            "modules); the gates analysis applies to the highway models only"
        )
    return found


@dataclass(frozen=True)
class GateResult(Result):
    """Mean openness of the transform gates per highway layer.

    Attributes
    ----------
    layers : list of str
        Module names of the highway layers, in forward order.
    mean_gate : np.ndarray, shape (n_layers,)
        Mean of ``T`` over samples and units (and positions) of each layer.
    unit_std : np.ndarray, shape (n_layers,)
        Standard deviation over units (features or channels) of the per-unit mean gate.
    open_fraction : np.ndarray, shape (n_layers,)
        Fraction of units whose mean gate exceeds 0.5 (mostly transforming).
    gate_bias_mean : np.ndarray, shape (n_layers,)
        Mean bias ``b_T`` of each layer's gate (``sigmoid`` of it is the openness at zero
        gate weights; the initial bias, -2 by default, moves with training).
    carry : list of bool
        Whether each layer has its carry path (``False`` in the carry-less twin).
    n_samples : int
        Samples averaged over.
    """

    GROUP: ClassVar[str] = "gates"

    layers: list
    mean_gate: np.ndarray
    unit_std: np.ndarray
    open_fraction: np.ndarray
    gate_bias_mean: np.ndarray
    carry: list
    n_samples: int

    def numbers(self) -> dict[str, float]:
        """Headline numbers: the mean gate over all layers, at the first and the last layer
        (1 minus it is the carried fraction)."""
        return {
            "gate_mean": float(np.mean(self.mean_gate)),
            "gate_first": float(self.mean_gate[0]),
            "gate_last": float(self.mean_gate[-1]),
        }


def _unit_means(t: Tensor) -> Tensor:
    """Sum over samples (and positions) per unit: ``(N, C)`` or ``(N, C, H, W)`` -> ``(C,)``,
    with the count of summed values per unit."""
    return t.double().transpose(0, 1).reshape(t.shape[1], -1).sum(1)


@torch.no_grad()
def gate_openness(model: nn.Module, data: Any, *, n_samples: int | None = 512,
                  batch_size: int = 256) -> GateResult:
    """Mean transform-gate openness ``T`` of every highway layer, in eval mode.

    Parameters
    ----------
    model : nn.Module
        A network with :class:`~landscape.models.HighwayLayer` or
        :class:`~landscape.models.HighwayConvLayer` modules.
    data : TensorData or (x, y)
        Inputs (their first ``n_samples``; the targets are not used).
    n_samples : int or None, default=512
        Samples to average over (``None``: all).
    batch_size : int, default=256
        Samples per forward pass.

    Returns
    -------
    GateResult

    Raises
    ------
    LandscapeError
        If the model has no highway layers.
    """
    if n_samples is not None:
        n_samples = check_int("n_samples", n_samples, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    gates = find_gates(model)
    x, y = as_xy(data, n_samples)
    sums: list[Tensor | None] = [None] * len(gates)
    counts = [0] * len(gates)

    def hook(i: int, m: nn.Module) -> Any:
        def pre(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
            t = m.gate(args[0])
            s = _unit_means(t)
            sums[i] = s if sums[i] is None else sums[i] + s
            counts[i] += t.numel() // t.shape[1]
        return pre

    handles = [m.register_forward_pre_hook(hook(i, m)) for i, (_, m) in enumerate(gates)]
    try:
        with eval_mode(model):
            for s in range(0, len(x), batch_size):
                xb, _ = to_model(model, x[s: s + batch_size], y[s: s + batch_size])
                model(xb)
    finally:
        for h in handles:
            h.remove()
    missing = [n for (n, _), v in zip(gates, sums, strict=True) if v is None]
    if missing:
        raise LandscapeError(f"highway layers {missing[:3]} were not called by the model's "
                             "forward")
    per_unit = [v / c for v, c in zip(sums, counts, strict=True)]  # type: ignore[operator]
    return GateResult(
        layers=[n for n, _ in gates],
        mean_gate=np.array([float(u.mean()) for u in per_unit]),
        unit_std=np.array([float(u.std(unbiased=False)) for u in per_unit]),
        open_fraction=np.array([float((u > 0.5).double().mean()) for u in per_unit]),
        gate_bias_mean=np.array([float(m.transform.bias.double().mean()) for _, m in gates]),
        carry=[bool(m.shortcut) for _, m in gates],
        n_samples=len(x),
    )
