"""k-dilution against closed forms (ReLU of a Gaussian, linear maps) and the GSC of a
linear network against its dense Jacobians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape.mechanisms import DilutionResult, dilution, k_dilution
from landscape.models import MLP

from ._mechanisms import user_net, xy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_relu_of_a_gaussian_has_the_closed_form_dilution():
    g = torch.Generator().manual_seed(0)
    d = 10
    v = torch.randn(3000, d, generator=g, dtype=torch.float64)
    k, q_lin, q_rest = k_dilution(torch.relu, v, n_linear=300)
    # S = I/2; rho = |v|/2 - 1/sqrt(2 pi) per coordinate; k = 1/sqrt(1 - 2/pi)
    assert q_lin == pytest.approx(0.5 * math.sqrt(d), rel=0.04)
    assert q_rest == pytest.approx(0.5 * math.sqrt(d * (1 - 2 / math.pi)), rel=0.04)
    assert k == pytest.approx(1 / math.sqrt(1 - 2 / math.pi), rel=0.04)


def test_linear_maps_are_infinitely_diluted():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 6, generator=g, dtype=torch.float64)
    v = torch.randn(50, 6, generator=g, dtype=torch.float64)
    k, q_lin, q_rest = k_dilution(lambda u: u @ a.T + 3.0, v, n_linear=5)
    assert k == math.inf and q_lin > 0 and q_rest < 1e-12
    r = dilution(user_net(n=3), xy(40), blocks="layers.*")
    assert np.isinf(r.k).all()
    # a constant map (every ReLU dead) is 0/0: NaN, not inf
    k, q_lin, q_rest = k_dilution(lambda u: torch.relu(-u.abs() - 1.0), v, n_linear=5)
    assert math.isnan(k) and q_lin == 0 and q_rest == 0


def test_gsc_of_a_linear_network_matches_dense_jacobians(tmp_path):
    net = user_net(n=3)
    x, y = xy(4000)
    r = dilution(net, (x, y), blocks="layers.*", batch_size=4000, n_linear=2)
    w_head = net.head.weight.detach()
    with torch.no_grad():
        hs = [net.stem(x)]
        for b in net.layers:
            hs.append(b(hs[-1]))
        out = net(x)
    q_out = out.norm(dim=1).pow(2).mean().sqrt()
    jac = w_head
    want = []
    for i in reversed(range(4)):  # J from h_i to the logits
        want.append(float(jac.norm() / math.sqrt(6) * hs[i].norm(dim=1).pow(2).mean().sqrt()
                          / q_out))
        if i > 0:
            wi = net.layers[i - 1].lin.weight.detach()
            jac = jac @ (torch.eye(6, dtype=wi.dtype) + wi)
    np.testing.assert_allclose(r.gsc, want[::-1], rtol=0.05)
    r.save(tmp_path / "d.h5")
    back = DilutionResult.load(tmp_path / "d.h5")
    assert np.isinf(back.k).all() and back.numbers()["dilution_k_median"] == math.inf


def test_residual_mlp_blocks_are_more_diluted_than_plain():
    data = xy(64, classes=10, shape=(1, 8, 8))
    torch.manual_seed(0)
    res = dilution(MLP(depth=3).double().eval(), data, n_linear=8)
    torch.manual_seed(0)
    plain = dilution(MLP(depth=3, shortcut=False).double().eval(), data, n_linear=8)
    assert np.median(res.k) > np.median(plain.k)
