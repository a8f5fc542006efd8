"""The batch protocol: batch structures, device moves, model calls and output shapes."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

from landscape.batches import (
    batch_len,
    batch_nbytes,
    call_model,
    functional_call_batch,
    move_batch,
    output_logits,
    output_loss,
    split_batch,
)
from landscape.errors import LandscapeError


def test_split_batch_structures():
    x, y = torch.zeros(3, 2), torch.arange(3)
    assert split_batch((x, y))[0][0] is x and split_batch((x, y))[2] is y
    args, kwargs, target = split_batch([x, x, y])
    assert len(args) == 2 and kwargs == {} and target is y
    assert split_batch(x) == ((x,), {}, None)
    assert split_batch((x,))[2] is None
    m = {"input_ids": torch.ones(3, 4, dtype=torch.long), "labels": y}
    args, kwargs, target = split_batch(m)
    assert args == () and set(kwargs) == {"input_ids", "labels"} and target is y
    assert split_batch({"input_ids": m["input_ids"]})[2] is None
    with pytest.raises(LandscapeError, match="batch"):
        split_batch("text")
    with pytest.raises(LandscapeError, match="empty"):
        split_batch(())


def test_move_batch_keeps_integer_dtypes():
    b = {"input_ids": torch.ones(2, 3, dtype=torch.long),
         "attention_mask": torch.ones(2, 3, dtype=torch.bool),
         "pixel_values": torch.zeros(2, 3), "labels": torch.tensor([0, 1])}
    out = move_batch(b, "cpu", torch.float64)
    assert out["input_ids"].dtype == torch.long and out["attention_mask"].dtype == torch.bool
    assert out["pixel_values"].dtype == torch.float64 and out["labels"].dtype == torch.long
    pair = move_batch((torch.zeros(2), torch.ones(2, dtype=torch.int32)), None, torch.float16)
    assert isinstance(pair, tuple) and pair[0].dtype == torch.float16
    assert pair[1].dtype == torch.int32
    assert batch_len(b) == 2 and batch_nbytes(b) == 6 * 8 + 6 + 6 * 4 + 2 * 8
    with pytest.raises(LandscapeError, match="no tensor"):
        batch_len({"a": 1})


class _KW(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def forward(self, x, scale=None):
        out = self.lin(x)
        return out if scale is None else out * scale


def test_call_model_and_functional_call():
    torch.manual_seed(0)
    m = _KW()
    x = torch.randn(4, 2)
    assert torch.equal(call_model(m, (x, torch.zeros(4))), m(x))
    assert torch.equal(call_model(m, {"x": x, "scale": 2.0}), m(x) * 2.0)
    zeros = {k: torch.zeros_like(v) for k, v in m.named_parameters()}
    assert torch.equal(functional_call_batch(m, zeros, {"x": x}), torch.zeros(4, 3))
    assert torch.equal(m(x), call_model(m, x))  # the model itself is untouched


def test_output_logits_and_loss():
    z, loss = torch.randn(2, 3), torch.tensor(1.5)
    Out = namedtuple("Out", ["loss", "logits"])
    assert output_logits(z) is z and output_loss(z) is None
    assert output_logits((z, "aux")) is z
    assert output_logits({"loss": loss, "logits": z}) is z
    assert output_logits({"loss": loss, "scores": z}) is z
    assert output_loss({"loss": loss, "logits": z}) is loss
    obj = Out(loss, z)
    assert output_logits(obj) is z and output_loss(obj) is loss
    with pytest.raises(LandscapeError, match="logits"):
        output_logits("nope")
