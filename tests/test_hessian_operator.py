"""HessianOperator's automatic batch size and graph caching (memory estimates, not timing)
and its ``distributed`` parameter outside a process group. Products, gradients and solvers
are tested against dense references in tests/test_hessian.py; 2-rank runs in
tests/test_distributed.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.hessian import HessianOperator

from .conftest import toy_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def _conv_case(n: int = 40):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 3)).to(F64).eval()
    g = torch.Generator().manual_seed(0)
    return model, (torch.randn(n, 1, 8, 8, generator=g, dtype=F64),
                   torch.randint(0, 3, (n,), generator=g))


def test_auto_batch_is_the_whole_data_and_equals_small_batches():
    model, data = toy_classifier(0, n=60)
    op = HessianOperator(model, data)
    assert op.batch_size == 60 and op.cache_graph  # tiny: one batch, graph kept
    v = torch.randn(op.numel, dtype=F64, generator=torch.Generator().manual_seed(1))
    small = HessianOperator(model, data, batch_size=7, cache_graph=False)
    torch.testing.assert_close(op @ v, small @ v, rtol=1e-12, atol=0)
    torch.testing.assert_close(op.gradient(), small.gradient(), rtol=1e-12, atol=1e-16)
    assert op.loss() == pytest.approx(small.loss(), rel=1e-13)


def test_graph_bytes_count_activations_and_are_deterministic():
    model, data = _conv_case()
    a, b = HessianOperator(model, data), HessianOperator(model, data)
    per = a.graph_bytes(2) - a.graph_bytes(1)
    # at least the conv activations (4 x 8 x 8 float64 per sample), far above the parameters
    assert per >= 4 * 64 * 8
    assert a.graph_bytes(10) == pytest.approx(a.graph_bytes(0) + 10 * per)
    assert [a.graph_bytes(40), a.batch_size] == [b.graph_bytes(40), b.batch_size]


def test_memory_budget_bounds_batch_and_cache():
    model, data = _conv_case()
    big = HessianOperator(model, data, memory_budget=2**30)
    assert big.batch_size == 40 and big.cache_graph
    budget = int(big.graph_bytes(10))  # room for 10 samples: batches of 8, nothing cached
    small = HessianOperator(model, data, memory_budget=budget)
    assert small.batch_size == 8 and not small.cache_graph
    assert HessianOperator(model, data, memory_budget=0).batch_size == 1
    v = torch.randn(big.numel, dtype=F64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(small @ v, big @ v, rtol=1e-12, atol=1e-15)
    # an explicit batch size is kept; cache_graph=True is obeyed whatever the budget
    op = HessianOperator(model, data, batch_size=16, memory_budget=0, cache_graph=True)
    assert op.batch_size == 16 and op.cache_graph


def test_distributed_parameter_outside_a_process_group():
    model, data = toy_classifier(0, n=10)
    op = HessianOperator(model, data)
    assert (op.rank, op.world_size, op.shard) == (0, 1, None)
    assert HessianOperator(model, data, distributed=False).world_size == 1
    with pytest.raises(LandscapeError, match="process group"):
        HessianOperator(model, data, distributed=True)
    with pytest.raises(LandscapeError, match="'distributed'"):
        HessianOperator(model, data, distributed="yes")
    with pytest.raises(LandscapeError, match="'batch_size'"):
        HessianOperator(model, data, batch_size="big")


def test_bn_recalibrate_uses_the_data_statistics_at_the_point():
    """``bn="recalibrate"``: the loss and products are those of the model whose BatchNorm
    running statistics are the data's own (closed form: the mean and unbiased variance of the
    layer's input), at the operator's point; the model is not touched."""
    import copy

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                        nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).to(F64).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 1, 4, 4, generator=g, dtype=F64)
    y = torch.randint(0, 3, (16,), generator=g)
    point = {k: v.detach() * 3.0 if k == "0.weight" else v.detach()
             for k, v in net.named_parameters()}  # a point other than the model's weights
    by_hand = copy.deepcopy(net)
    with torch.no_grad():
        by_hand[0].weight.copy_(point["0.weight"])
        h = by_hand[0](x)
        by_hand[1].running_mean.copy_(h.mean(dim=(0, 2, 3)))
        by_hand[1].running_var.copy_(h.transpose(0, 1).reshape(2, -1).var(dim=1))
    op = HessianOperator(net, (x, y), params=point, bn="recalibrate")
    ref = HessianOperator(by_hand, (x, y))
    assert op.bn == "recalibrated" and ref.bn == "eval"
    assert op.loss() == pytest.approx(ref.loss(), rel=1e-12)
    v = torch.randn(op.numel, dtype=F64, generator=g)
    torch.testing.assert_close(op @ v, ref @ v, rtol=1e-10, atol=1e-12)
    assert float(net[1].running_mean.abs().max()) == 0.0  # the model's own are untouched
    with pytest.raises(LandscapeError, match="what='states'"):
        HessianOperator(net, (x, y), what="states", bn="recalibrate")
    with pytest.raises(LandscapeError, match="'bn'"):
        HessianOperator(net, (x, y), bn="train")
