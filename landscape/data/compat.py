"""Whether a model fits a data set: input shape, number of classes, token ids."""

from __future__ import annotations

import torch
from torch import Tensor

from landscape.batches import move_batch
from landscape.errors import LandscapeError

from ._common import describe
from .stream import StreamData
from .tensors import TensorData
from .tokens import check_token_ids, model_vocab_size, token_ids

__all__ = ["check_compatible"]


_SHAPE_WORDS = ("shape", "size", "dimension", "channel", "expected input", "mat1", "mat2")


def check_compatible(model: torch.nn.Module, data: TensorData | StreamData) -> None:
    """Check that ``model`` accepts ``data``'s inputs and has enough outputs for its classes.

    The model runs on one sample in eval mode under :func:`torch.inference_mode`; every
    submodule's training flag is restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    data : TensorData
        The data it will be evaluated on.

    Raises
    ------
    LandscapeError
        If the forward pass fails on the input shape, or for classification data the output is
        not ``(batch, K)`` with ``K >= data.num_classes``; or if integer inputs (token ids:
        integer ``x``, or ``input_ids``) fall outside the model's vocabulary
        (:func:`model_vocab_size`), naming the split, the first such sample and the largest
        id (for streamed data the first batch now, every later one as it is read).
    """
    vocab = model_vocab_size(model)
    owner = f"model {type(model).__name__}"
    if isinstance(data, StreamData):
        if vocab is not None:  # every later batch is checked as it is read
            data.vocab_size, data.vocab_owner = vocab, owner
            check_token_ids(token_ids(data.first_batch()), vocab,
                            describe(data.name, data.split), owner, rows=data.rows)
        _check_stream_compatible(model, data)
        return
    if len(data) == 0:
        raise LandscapeError(f"dataset {data.name!r} is empty; load at least one sample")
    if vocab is not None:
        check_token_ids(token_ids(data.x), vocab,
                        describe(data.name, getattr(data, "split", None)), owner)
    sample = data.x[:1]
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point():
        # integer inputs (token ids) keep their dtype
        dtype = param.dtype if sample.is_floating_point() else None
        sample = sample.to(device=param.device, dtype=dtype)
    model_name = type(model).__name__
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            out = model(sample)
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if not any(w in first.lower() for w in _SHAPE_WORDS):
            raise
        raise LandscapeError(
            f"model {model_name} cannot take inputs of shape {data.input_shape} from dataset "
            f"{data.name!r}: {first}; use a model built for this input shape"
        ) from err
    finally:
        for m, training in modes:
            m.training = training
    n_classes = data.num_classes
    if n_classes is None:
        return
    want_ndim = data.y.ndim + 1  # (batch, classes, *label_shape)
    if not isinstance(out, Tensor) or out.ndim != want_ndim or out.shape[0] != 1:
        got = f"shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
        want = ", ".join(["batch", f">= {n_classes}"] + [str(s) for s in data.y.shape[1:]])
        raise LandscapeError(
            f"model {model_name} returns {got} for one sample of dataset {data.name!r}; a "
            f"classifier for it must return logits of shape ({want})"
        )
    if out.shape[1] < n_classes:
        raise LandscapeError(
            f"model {model_name} outputs {out.shape[1]} values per sample but dataset "
            f"{data.name!r} has {n_classes} classes; give its last layer at least "
            f"{n_classes} outputs"
        )


def _check_stream_compatible(model: torch.nn.Module, data: StreamData) -> None:
    """Run the model on the first batch (eval mode, inference mode, flags restored)."""
    from landscape.batches import call_model

    batch = data.first_batch()
    param = next(model.parameters(), None)
    if param is not None and param.is_floating_point():
        batch = move_batch(batch, param.device, param.dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            call_model(model, batch)
    except (RuntimeError, TypeError, ValueError, IndexError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LandscapeError(
            f"model {type(model).__name__} cannot take the batches of dataset {data.name!r}: "
            f"{type(err).__name__}: {first}"
        ) from err
    finally:
        for m, training in modes:
            m.training = training
