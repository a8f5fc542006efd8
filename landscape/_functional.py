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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call

from .batches import functional_call_batch
from .errors import check_option
from .losses import BatchLoss
from .losses import loss_name as _loss_name

__all__ = [
    "TENSOR_SELECTIONS",
    "LossSpec",
    "named_tensors",
    "functional_forward",
    "resolve_loss",
    "loss_name",
    "is_perturbable",
]

TENSOR_SELECTIONS = ("weights", "states")

#: A loss is a name (``"cross_entropy"``, ``"mse"``, ``"package.module:function"``), a
#: callable ``f(output, target)`` / ``f(model, batch)`` or a :class:`~landscape.losses.BatchLoss`
#: (see :mod:`landscape.losses`).
LossSpec = str | Callable[..., Any] | BatchLoss


def named_tensors(model: nn.Module, what: str = "weights") -> dict[str, Tensor]:
    """Return detached copies-by-reference of the model's tensors.

    Parameters
    ----------
    model : nn.Module
        The network.
    what : {"weights", "states"}
        ``"weights"``: the parameters; ``"states"``: the whole ``state_dict`` (parameters and
        buffers, e.g. BatchNorm running statistics).

    Returns
    -------
    dict[str, Tensor]
        Name to tensor, in the model's own order. The tensors are detached views; do not
        modify them in place.
    """
    check_option("what", what, TENSOR_SELECTIONS)
    if what == "weights":
        return {k: v.detach() for k, v in model.named_parameters()}
    return {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()}


def is_perturbable(t: Tensor) -> bool:
    """Whether a tensor may be moved along a direction (floating point)."""
    return t.is_floating_point() or t.is_complex()


def functional_forward(model: nn.Module, tensors: Mapping[str, Tensor], batch: Any) -> Any:
    """Run ``model`` on ``batch`` with ``tensors`` substituted for its own parameters/buffers.

    ``batch`` is an input tensor or any batch of :mod:`landscape.batches` (``model(x)`` for
    tuples, ``model(**batch)`` for mappings). Tensors missing from ``tensors`` (e.g. buffers
    when only weights are given) are taken from the model itself.
    """
    if isinstance(batch, Tensor):
        return functional_call(model, dict(tensors), (batch,), strict=False)
    return functional_call_batch(model, tensors, batch)


def loss_name(loss: LossSpec) -> str:
    """A printable, storable name for a loss specification."""
    return _loss_name(loss)


def resolve_loss(loss: LossSpec) -> BatchLoss:
    """Return the :class:`landscape.losses.BatchLoss` of a loss specification.

    ``"cross_entropy"`` (per sample or per counted token), ``"mse"`` (per sample),
    ``"package.module:function"`` or a callable; see :mod:`landscape.losses`.
    """
    return BatchLoss(loss)
