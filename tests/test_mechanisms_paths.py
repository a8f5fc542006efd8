"""Path gradients: all 2^n routings add up to the ordinary gradient (enumeration, n <= 6)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from landscape.mechanisms import PathLengthResult, find_blocks, path_gradient, path_lengths
from landscape.models import MLP, ResNet

from ._mechanisms import user_net, xy

pytestmark = pytest.mark.usefixtures("one_thread")


def _sum_of_paths(net, blocks, x, y):
    total = 0
    for mask in itertools.product([False, True], repeat=len(blocks)):
        total = total + path_gradient(net, blocks, x, y, list(mask))
    return total


@pytest.mark.parametrize("make,shape,pattern", [
    (lambda: user_net(n=6), (5,), "layers.*"),                      # a linear network
    (lambda: MLP(depth=5, width=8).double().eval(), (1, 8, 8), None),
    (lambda: ResNet(8, in_channels=1).double().eval(), (1, 8, 8), None),  # projections, post-ReLU
])
def test_all_paths_sum_to_the_full_gradient(make, shape, pattern):
    torch.manual_seed(0)
    net = make()
    x, y = xy(6, classes=3, shape=shape)
    bl = find_blocks(net, pattern)
    full = path_gradient(net, bl, x, y, None)
    assert full.abs().max() > 0
    torch.testing.assert_close(_sum_of_paths(net, bl, x, y), full, rtol=1e-10, atol=1e-12)


def test_linear_network_path_gradient_is_the_product_of_its_choices():
    net = user_net(n=3)
    x, y = xy(4)
    bl = find_blocks(net, "layers.*")
    mask = [True, False, True]
    g = path_gradient(net, bl, x, y, mask)
    # dL/dh0 = (A2)^T (I)^T (A0)^T dL/dh3 for the path branch, skip, branch
    h = net.stem(x)
    for b in net.layers:
        h = b(h)
    h = h.detach().requires_grad_(True)
    (gout,) = torch.autograd.grad(torch.nn.functional.cross_entropy(
        net.head(h), y, reduction="sum"), h)
    a = [b.lin.weight.detach() for b in net.layers]
    want = gout @ a[2] @ a[0]
    torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-12)


def test_path_lengths_counts_and_plain_net(tmp_path):
    net = MLP(depth=4, width=8).double().eval()
    data = xy(16, classes=10, shape=(1, 8, 8))
    r = path_lengths(net, data, n_paths=3, batch_size=16)
    assert list(r.k) == [0, 1, 2, 3, 4]
    assert list(r.n_paths) == [math.comb(4, k) for k in range(5)]
    assert list(r.n_sampled) == [1, 3, 3, 3, 1]
    assert r.fraction.sum() == pytest.approx(1.0)
    lo, hi = r.effective_range(1.0)
    assert (lo, hi) == (0, 4) or r.fraction[[0, -1]].min() == 0
    r.save(tmp_path / "p.h5")
    np.testing.assert_array_equal(PathLengthResult.load(tmp_path / "p.h5").total, r.total)
    plain = MLP(depth=4, width=8, shortcut=False).double().eval()
    p = path_lengths(plain, data, batch_size=16)
    assert list(p.k) == [4] and p.n_residual == 0
    assert p.grad_mean[0] == pytest.approx(p.full_grad)
