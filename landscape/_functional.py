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
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call

from .batches import functional_call_batch
from .losses import BatchLoss
from .losses import loss_name as _loss_name
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

#: A loss is a name (``"cross_entropy"``, ``"mse"``, ``"package.module:function"``), a
#: callable ``f(output, target)`` / ``f(model, batch)`` or a :class:`~landscape.losses.BatchLoss`
#: (see :mod:`landscape.losses`).
LossSpec = str | Callable[..., Any] | BatchLoss


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
