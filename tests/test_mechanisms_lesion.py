"""Lesion study: known answers (identity blocks), plain nets, storage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.mechanisms import LesionResult, gradient_flow, lesion_study
from landscape.models import MLP, ResNet

from ._mechanisms import xy

pytestmark = pytest.mark.usefixtures("one_thread")


def identity_block_mlp():
    """A residual MLP whose block 1 is exactly the identity (branch relu(0 x - 1) = 0)."""
    torch.manual_seed(0)
    net = MLP(depth=3, width=16).double().eval()
    with torch.no_grad():
        net.blocks[1].linear.weight.zero_()
        net.blocks[1].linear.bias.fill_(-1.0)
    return net


def test_deleting_an_identity_block_changes_nothing(tmp_path):
    net = identity_block_mlp()
    data = xy(200, classes=10, shape=(1, 8, 8))
    r = lesion_study(net, data, n_samples=3)
    assert r.single_error[1] == r.base_error
    assert list(r.k) == [0, 1, 2, 3]
    assert r.k_errors[0, 0] == r.base_error
    assert r.chance_error == pytest.approx(0.9)
    # and its branch Jacobian is exactly zero, the block's the identity (norm 1)
    g = gradient_flow(net, data, batch_size=16)
    assert g.jac_branch[1] == 0.0
    assert g.jac_block[1] == pytest.approx(1.0, abs=1e-12)
    assert g.jac_branch[0] > 0
    r.save(tmp_path / "m.h5")
    back = LesionResult.load(tmp_path / "m.h5")
    np.testing.assert_array_equal(back.single_error, r.single_error)
    assert back.blocks == r.blocks and back.base_error == r.base_error
    assert back.numbers() == r.numbers()


def test_plain_resnet_records_what_cannot_be_deleted():
    torch.manual_seed(0)
    net = ResNet(8, shortcut=False, in_channels=1).double().eval()
    r = lesion_study(net, xy(40, classes=10, shape=(1, 8, 8)), n_samples=2)
    assert list(r.deletable) == [True, False, False]
    assert np.isnan(r.single_error[1:]).all() and np.isfinite(r.single_error[0])
    assert list(r.k) == [0, 1]
    n = r.numbers()
    assert n["lesion_deletable_fraction"] == pytest.approx(1 / 3)


def test_random_deletions_are_distinct_subsets():
    net = MLP(depth=4, width=8).double().eval()
    r = lesion_study(net, xy(30, classes=10, shape=(1, 8, 8)), n_samples=10)
    # C(4, 2) = 6 < 10: every subset once, the rest NaN
    assert np.isfinite(r.k_errors[2]).sum() == 6
    assert np.isfinite(r.k_errors[4]).sum() == 1
    assert r.k_mean.shape == (5,)
