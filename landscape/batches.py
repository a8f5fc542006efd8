"""One batch protocol for every model: what a batch is, how a model is called on it, and what
its output means.

A *batch* is one of

``(x, y)`` (a tuple or list)
    inputs ``x`` passed positionally, targets ``y``. Longer tuples ``(x1, ..., xk, y)`` pass
    ``x1 ... xk`` positionally; a 1-tuple ``(x,)`` or a bare tensor has no targets.
a mapping (HuggingFace style)
    ``{"input_ids": ..., "attention_mask": ..., "labels": ...}``; the model is called as
    ``model(**batch)`` and the targets are ``batch["labels"]`` (``None`` when absent).

Integer tensors (token ids, masks, class labels) keep their dtype whatever the evaluation
dtype; only floating-point tensors are cast.

A model's *output* may be a tensor, a tuple or list (its first element is the logits), a
mapping (``"logits"``, else its first value) or an object with ``.logits`` (and optionally
``.loss``, the model's own loss, e.g. HuggingFace's ``ModelOutput``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .errors import LandscapeError

__all__ = [
    "Batch",
    "split_batch",
    "batch_targets",
    "batch_len",
    "move_batch",
    "batch_nbytes",
    "call_model",
    "functional_call_batch",
    "output_logits",
    "output_loss",
]

#: ``(x, y)``, ``(x1, ..., xk, y)``, a tensor, or a mapping of named tensors.
Batch = Tensor | tuple | list | Mapping[str, Any]

TARGET_KEY = "labels"


def split_batch(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], Tensor | None]:
    """Return ``(args, kwargs, targets)`` of a batch (see the module docstring)."""
    if isinstance(batch, Tensor):
        return (batch,), {}, None
    if isinstance(batch, Mapping):
        return (), dict(batch), batch.get(TARGET_KEY)
    if isinstance(batch, tuple | list):
        if len(batch) == 0:
            raise LandscapeError("a batch is an empty tuple; use (x, y) or a mapping")
        if len(batch) == 1:
            return (batch[0],), {}, None
        return tuple(batch[:-1]), {}, batch[-1]
    raise LandscapeError(
        f"a batch must be a tensor, an (x, y) tuple or a mapping of tensors; got "
        f"{type(batch).__name__}"
    )


def batch_targets(batch: Any) -> Tensor | None:
    """The targets of a batch (``y`` or ``batch["labels"]``), ``None`` when it has none."""
    return split_batch(batch)[2]


def _first_tensor(obj: Any) -> Tensor | None:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, tuple | list):
        for v in obj:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def batch_len(batch: Any) -> int:
    """Number of samples in a batch: the leading dimension of its first tensor."""
    t = _first_tensor(batch)
    if t is None or t.ndim == 0:
        raise LandscapeError(
            f"a batch ({type(batch).__name__}) holds no tensor with a leading sample dimension"
        )
    return int(t.shape[0])


def move_batch(batch: Any, device: torch.device | str | None = None,
               dtype: torch.dtype | None = None, non_blocking: bool = False) -> Any:
    """Return the batch with every tensor on ``device``; floating tensors cast to ``dtype``
    (integer and boolean tensors keep theirs). Tensors already there are returned as they are.
    """
    if isinstance(batch, Tensor):
        cast = dtype if (dtype is not None and batch.is_floating_point()) else None
        return batch.to(device=device, dtype=cast, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: move_batch(v, device, dtype, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(move_batch(v, device, dtype, non_blocking) for v in batch)
    return batch


def pin_batch(batch: Any) -> Any:
    """Page-locked copies of a batch's CPU tensors (for non-blocking copies to CUDA)."""
    if isinstance(batch, Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, Mapping):
        return {k: pin_batch(v) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(pin_batch(v) for v in batch)
    return batch


def batch_nbytes(batch: Any) -> int:
    """Bytes held by a batch's tensors."""
    if isinstance(batch, Tensor):
        return batch.numel() * batch.element_size()
    if isinstance(batch, Mapping):
        return sum(batch_nbytes(v) for v in batch.values())
    if isinstance(batch, tuple | list):
        return sum(batch_nbytes(v) for v in batch)
    return 0


def call_model(model: Any, batch: Any) -> Any:
    """``model(x)`` / ``model(x1, ..., xk)`` for tuple batches, ``model(**batch)`` for mappings."""
    args, kwargs, _ = split_batch(batch)
    return model(*args, **kwargs)


def functional_call_batch(model: nn.Module, tensors: Mapping[str, Tensor], batch: Any) -> Any:
    """:func:`call_model` with ``tensors`` substituted for the model's own (missing ones are
    taken from the model), through :func:`torch.func.functional_call`."""
    args, kwargs, _ = split_batch(batch)
    return functional_call(model, dict(tensors), args, kwargs, strict=False)


def output_logits(out: Any) -> Tensor:
    """The prediction tensor of a model output (see the module docstring)."""
    if isinstance(out, Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), Tensor):
            return out["logits"]
        t = next((v for k, v in out.items() if k != "loss" and isinstance(v, Tensor)), None)
        if t is not None:
            return t
    elif isinstance(out, tuple | list) and out and isinstance(out[0], Tensor):
        return out[0]
    raise LandscapeError(
        f"the model returned a {type(out).__name__}; expected a tensor, a tuple whose first "
        "element is a tensor, a mapping with 'logits' or an object with .logits"
    )


def output_loss(out: Any) -> Tensor | None:
    """The model's own loss (``out.loss`` or ``out["loss"]``), ``None`` when it has none."""
    if isinstance(out, Tensor):
        return None
    loss = out.get("loss") if isinstance(out, Mapping) else getattr(out, "loss", None)
    return loss if isinstance(loss, Tensor) else None
