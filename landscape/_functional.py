"""Pure-function view of a model: parameter dicts in, outputs and per-sample losses out.

Library code never writes into ``model.parameters()``; it reads the model's tensors once with
:func:`named_tensors` and calls the model through :func:`torch.func.functional_call` with a
dict of (possibly perturbed) tensors.

Two selections of tensors exist throughout the package:

``"weights"``
    ``dict(model.named_parameters())`` -- what an optimizer moves.
``"states"``
    ``model.state_dict()`` -- parameters plus buffers such as BatchNorm running statistics.
    Integer buffers (``num_batches_tracked``) are carried along but never perturbed.

Tied tensors appear once, under their first name; :mod:`landscape.parameters` decides which
of the tensors are perturbed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .errors import LandscapeError, check_option
from .parameters import TENSOR_SELECTIONS, is_perturbable, named_tensors

__all__ = [
    "TENSOR_SELECTIONS",
    "LossSpec",
    "named_tensors",
    "functional_forward",
    "resolve_loss",
    "loss_name",
    "is_perturbable",
]

#: A loss is a name (``"cross_entropy"``, ``"mse"``) or ``f(output, target) -> Tensor``
#: returning per-sample losses of shape ``(B,)`` (or their mean, a scalar).
LossSpec = str | Callable[[Tensor, Tensor], Tensor]

_BUILTIN_LOSSES = ("cross_entropy", "mse")


def functional_forward(model: nn.Module, tensors: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Run ``model`` on ``x`` with ``tensors`` substituted for its own parameters/buffers.

    Tensors missing from ``tensors`` (e.g. buffers when only weights are given) are taken from
    the model itself.
    """
    return functional_call(model, dict(tensors), (x,), strict=False)


def loss_name(loss: LossSpec) -> str:
    """A printable, storable name for a loss specification."""
    if isinstance(loss, str):
        return loss
    mod = getattr(loss, "__module__", None) or "?"
    name = getattr(loss, "__qualname__", None) or type(loss).__qualname__
    return f"{mod}:{name}"


def _cross_entropy(out: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out, y, reduction="none")


def _mse(out: Tensor, y: Tensor) -> Tensor:
    if not y.is_floating_point() and out.ndim == 2 and y.ndim == 1:
        y = F.one_hot(y.long(), out.shape[1]).to(out.dtype)
    y = y.to(out.dtype).reshape(out.shape)
    return (out - y).pow(2).reshape(out.shape[0], -1).mean(dim=1)


def resolve_loss(loss: LossSpec) -> Callable[[Tensor, Tensor], Tensor]:
    """Return ``f(output, target) -> per-sample losses (B,)`` for a loss specification.

    ``"cross_entropy"`` is :func:`torch.nn.functional.cross_entropy` per sample; ``"mse"`` is the
    per-sample mean squared error (integer class targets are one-hot encoded). A user callable
    may return per-sample losses of shape ``(B,)`` or their mean (a scalar), which is then
    treated as the mean over the batch.
    """
    if isinstance(loss, str):
        check_option("loss", loss, _BUILTIN_LOSSES)
        return _cross_entropy if loss == "cross_entropy" else _mse
    if not callable(loss):
        raise LandscapeError(
            f"The 'loss' parameter must be one of {_BUILTIN_LOSSES} or a callable. "
            f"Got {loss!r} instead."
        )

    def per_sample(out: Tensor, y: Tensor) -> Tensor:
        val = loss(out, y)
        if not isinstance(val, Tensor):
            val = torch.as_tensor(val, dtype=out.dtype)
        if val.ndim == 0:
            return val.expand(out.shape[0])
        return val.reshape(out.shape[0], -1).mean(dim=1) if val.ndim > 1 else val

    return per_sample
