"""Token ids: the integer inputs of a batch, the check that they fit a model's vocabulary, and
that vocabulary's size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from landscape.errors import LandscapeError

__all__ = ["token_ids", "check_token_ids", "model_vocab_size"]


def token_ids(b: Any) -> Tensor | None:
    """The integer token ids of a batch: integer ``x`` of a pair, or ``input_ids``."""
    if isinstance(b, Tensor):
        t = b
    elif isinstance(b, tuple | list) and b:
        t = b[0]
    elif isinstance(b, Mapping):
        t = b.get("input_ids")
    else:
        return None
    if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex() or t.ndim == 0:
        return None
    return None if t.dtype == torch.bool else t


def check_token_ids(ids: Tensor | None, vocab_size: int, where: str, owner: str, *,
                    rows: Any = None, offset: int = 0) -> None:
    """Refuse token ids outside ``0 .. vocab_size - 1`` (an embedding lookup would fail).

    Raises
    ------
    LandscapeError
        Naming the first offending sample and the largest id.
    """
    if ids is None or ids.numel() == 0:
        return
    bad = (ids < 0) | (ids >= vocab_size)
    if not bool(bad.any()):
        return
    row = int(bad.reshape(ids.shape[0], -1).any(1).nonzero()[0, 0])
    index = offset + row
    if rows is not None:
        index = int(rows[index])
    top, low = int(ids.max()), int(ids.min())
    worst = f"the largest id is {top}" if top >= vocab_size else f"ids go down to {low}"
    raise LandscapeError(
        f"{where} has a token id outside the vocabulary of {owner} ({vocab_size} ids, 0 .. "
        f"{vocab_size - 1}) in sample {index}; {worst}: tokenize with the model's own "
        "tokenizer, or give the model a larger vocabulary"
    )


def model_vocab_size(model: torch.nn.Module) -> int | None:
    """The number of token ids a model embeds: HuggingFace ``config.vocab_size``, else the
    ``num_embeddings`` of its first :class:`torch.nn.Embedding` (``None``: neither)."""
    v = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            return int(m.num_embeddings)
    return None
