"""Gradient flow: Jacobian spectral norms against dense SVDs, shapes on built-in nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.mechanisms import GradFlowResult, gradient_flow, jacobian_spectral_norm
from landscape.models import MLP, ResNet

from ._mechanisms import user_net, xy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_power_iteration_matches_the_svd():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 5, generator=g, dtype=torch.float64)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    s = jacobian_spectral_norm(lambda v: torch.tanh(v) @ a.T, x, n_iter=200)
    for i in range(3):
        jac = a * (1 - torch.tanh(x[i]) ** 2)
        assert float(s[i]) == pytest.approx(float(torch.linalg.matrix_norm(jac, 2)), rel=1e-8)


def test_linear_user_network_block_norms_are_exact(tmp_path):
    net = user_net(n=3)
    r = gradient_flow(net, xy(8), blocks="layers.*", n_iter=200)
    for i, b in enumerate(net.layers):
        w = b.lin.weight.detach()
        eye = torch.eye(len(w), dtype=w.dtype)
        assert r.jac_block[i] == pytest.approx(float(torch.linalg.matrix_norm(eye + w, 2)),
                                               rel=1e-6)
        assert r.jac_branch[i] == pytest.approx(float(torch.linalg.matrix_norm(w, 2)), rel=1e-6)
    assert r.jac_product[-1] == pytest.approx(np.prod(r.jac_block), rel=1e-10)
    assert r.input_grad.shape == (4,) and len(r.weight_grad) == len(r.layers) == 5
    r.save(tmp_path / "g.h5")
    assert GradFlowResult.load(tmp_path / "g.h5").layers == r.layers


@pytest.mark.parametrize("shortcut", [True, False])
def test_resnet_gradflow_runs(shortcut):
    torch.manual_seed(0)
    net = ResNet(8, shortcut=shortcut, in_channels=1).eval()
    r = gradient_flow(net, xy(8, classes=10, shape=(1, 8, 8)), n_iter=3)
    assert r.jac_block.shape == (3,) and np.isfinite(r.jac_block).all()
    assert np.isfinite(r.numbers()["gradflow_input_ratio"])


def test_plain_mlp_block_is_its_branch():
    torch.manual_seed(0)
    net = MLP(depth=3, shortcut=False).double().eval()
    r = gradient_flow(net, xy(8, classes=10, shape=(1, 8, 8)), n_iter=5)
    np.testing.assert_allclose(r.jac_block, r.jac_branch, rtol=1e-12)
