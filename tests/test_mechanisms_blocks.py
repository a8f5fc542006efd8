"""Finding, checking and rerouting residual blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.mechanisms import check_blocks, find_blocks, rerouted
from landscape.models import MLP, PreResNet, ResNet

from ._mechanisms import user_net, xy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shortcut", [True, False])
def test_builtin_resnet_blocks(shortcut):
    torch.manual_seed(0)
    net = ResNet(8, shortcut=shortcut, in_channels=1).double().eval()
    bl = find_blocks(net)
    assert [b.name for b in bl] == ["layer1.0", "layer2.0", "layer3.0"]
    assert [b.projection for b in bl] == [False, True, True]
    assert all(b.residual is shortcut for b in bl)
    assert [b.deletable for b in bl] == ([True] * 3 if shortcut else [True, False, False])
    check_blocks(net, bl, xy(4, shape=(1, 8, 8))[0])


@pytest.mark.parametrize("make", [
    lambda s: PreResNet(8, shortcut=s, in_channels=1),
    lambda s: ResNet(11, shortcut=s, in_channels=1, bottleneck=True),
    lambda s: MLP(depth=3, shortcut=s, batchnorm=True),
])
@pytest.mark.parametrize("shortcut", [True, False])
def test_builtin_blocks_split_exactly(make, shortcut):
    torch.manual_seed(0)
    net = make(shortcut).double()
    net.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net(xy(16, shape=(1, 8, 8))[0])
    net.eval()
    bl = find_blocks(net)
    assert bl and all(b.residual is shortcut for b in bl)
    check_blocks(net, bl, xy(4, shape=(1, 8, 8))[0])


def test_user_blocks_by_glob_and_refusals():
    net = user_net()
    bl = find_blocks(net, "layers.*")
    assert [b.name for b in bl] == [f"layers.{i}" for i in range(4)]
    assert all(b.kind == "user" and b.residual for b in bl)
    check_blocks(net, bl, xy()[0])
    with pytest.raises(LandscapeError, match="no built-in residual blocks"):
        find_blocks(net)
    with pytest.raises(LandscapeError, match="matches the block pattern"):
        find_blocks(net, "nothing*")
    with pytest.raises(LandscapeError, match="no callable 'branch'"):
        find_blocks(net, "stem")


def test_a_block_that_is_not_x_plus_branch_is_refused():
    class Doubling(nn.Module):
        def __init__(self, w, shortcut=True):
            super().__init__()
            self.lin = nn.Linear(w, w)

        def branch(self, x):
            return self.lin(x)

        def forward(self, x):
            return 2 * x + self.lin(x)

    torch.manual_seed(0)
    net = user_net(block=Doubling)
    with pytest.raises(LandscapeError, match="does not compute x \\+ branch"):
        check_blocks(net, find_blocks(net, "layers.*"), xy()[0])


def test_rerouted_restores_forward_and_lesion_keeps_shortcut():
    net = MLP(depth=2).double().eval()
    bl = find_blocks(net)
    x = xy(4, shape=(1, 8, 8))[0]
    with torch.no_grad():
        h = net.relu(net.stem(x.flatten(1)))
        want = net.head(bl[1].module(h))  # block 0 reduced to its shortcut (identity)
        with rerouted(bl, {"blocks.0": "lesion"}):
            assert "forward" in vars(bl[0].module)
            got = net(x)
        assert "forward" not in vars(bl[0].module)
    torch.testing.assert_close(got, want)
    with pytest.raises(LandscapeError, match="mode"):
        with rerouted(bl, {"blocks.0": "nope"}):
            pass
    assert "forward" not in vars(bl[0].module)
    plain = ResNet(8, shortcut=False, in_channels=1)
    with pytest.raises(LandscapeError, match="cannot be replaced by the identity"):
        with rerouted(find_blocks(plain), {"layer2.0": "lesion"}):
            pass
