"""CIFAR ResNeXt-29 (grouped bottlenecks) and its plain twin."""

from __future__ import annotations

import pytest
import torch

from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.mechanisms import find_blocks
from landscape.models import (
    ModelSpec,
    ResNeXt,
    ResNeXtBlock,
    build,
    resnext29_8x64d,
    resnext29_16x64d,
    skip_switch,
)
from tests._pipeline import through_the_pipeline, train_tiny

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]

TINY = {"depth": 11, "cardinality": 2, "bottleneck_width": 2, "in_channels": 1,
        "width": 0.125}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_of_the_paper() -> None:
    """Xie et al. (2017), Table 7: ResNeXt-29 8x64d 34.4M and 16x64d 68.1M on CIFAR-10 (built,
    never run at that size)."""
    counts = {"8x64d": n_params(resnext29_8x64d()), "16x64d": n_params(resnext29_16x64d())}
    assert counts == {"8x64d": 34_426_698, "16x64d": 68_155_210}
    for name, paper in (("8x64d", 34.4e6), ("16x64d", 68.1e6)):
        assert abs(counts[name] / paper - 1) < 0.05, name
        assert abs(counts[name] / paper - 1) < 0.001, name  # in fact within 0.1%


def test_closed_form_count_of_a_small_resnext() -> None:
    """Every layer counted by hand: stem conv+BN, per block 1x1, grouped 3x3 (C groups),
    1x1, three BNs, projections (conv+BN) at stage entries, the head."""
    c, d, stem, outs, n = 2, 2, 8, (32, 64, 128), 1
    total, cin = 1 * stem * 9 + 2 * stem, stem
    for i, out in enumerate(outs):
        inner = c * d * 2**i
        for _ in range(n):
            total += cin * inner + inner * (inner // c) * 9 + inner * out
            total += 2 * (2 * inner + out)
            if cin != out or i > 0:
                total += cin * out + 2 * out
            cin = out
    total += 128 * 10 + 10
    assert n_params(ResNeXt(**TINY)) == total
    conv2 = ResNeXt(**TINY).layer2[0].conv2
    assert conv2.groups == 2 and conv2.weight.shape == (8, 4, 3, 3)


def test_twins_share_state_dict_and_differ_only_by_the_shortcut() -> None:
    assert skip_switch("resnext") == "shortcut"
    torch.manual_seed(0)
    res = build("resnext", **TINY).eval()
    torch.manual_seed(0)
    plain = build("resnext", **TINY, shortcut=False).eval()
    a, b = res.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 1, 8, 8)
    assert not torch.allclose(res(x), plain(x))
    # per block: residual = relu(F(x) + s(x)), plain = relu(F(x)); the split is the
    # mechanisms' (which find the blocks as bottlenecks)
    blocks_r, blocks_p = find_blocks(res), find_blocks(plain)
    assert [b.name for b in blocks_r] == ["layer1.0", "layer2.0", "layer3.0"]
    h = torch.randn(2, 8, 8, 8)
    for br, bp in zip(blocks_r, blocks_p, strict=True):
        assert isinstance(br.module, ResNeXtBlock) and br.residual and not bp.residual
        s, f = br.parts(h)
        torch.testing.assert_close(br.module(h), torch.relu(s + f))
        torch.testing.assert_close(bp.module(h), torch.relu(f))
        h = br.module(h)
    # the plain twin's projections get no gradient
    plain.train()
    plain(x).sum().backward()
    proj = [p.grad for n, p in plain.named_parameters() if "downsample" in n]
    assert proj and all(g is None for g in proj)


def test_argument_errors() -> None:
    with pytest.raises(LandscapeError, match="9n\\+2"):
        ResNeXt(depth=30)
    with pytest.raises(LandscapeError, match="cardinality"):
        ResNeXt(cardinality=0)


def test_trains_and_goes_through_the_toolkit(tmp_path, capsys) -> None:
    run = train_tiny(tmp_path, ModelSpec("resnext", TINY), DataSpec("digits", subset=64),
                     epochs=3, lr=0.05)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    out = through_the_pipeline(tmp_path, run, capsys)
    assert "lesion" in out and "gates" not in out
