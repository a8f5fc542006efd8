"""The architectures of the residual story: pre-activation and bottleneck ResNets, DenseNet-BC,
VGG, and transformers with and without a residual stream; plus adapting models to the data."""

from __future__ import annotations

import math

import pytest
import torch
from landscape.cli import main as cli_main
from torch import nn

from landscape.data import DataSpec, TensorData, load_data
from landscape.errors import LandscapeError
from landscape.hessian.operator import HessianOperator
from landscape.models import (
    GPT,
    VGG,
    DenseNet,
    ModelSpec,
    PreActBlock,
    PreActBottleneck,
    PreResNet,
    ResNet,
    ViT,
    adapt_to_data,
    build,
    densenet_bc100,
    preresnet110,
    preresnet164,
    resnet164,
    skip_switch,
    vgg9,
    vgg16,
)
from landscape.models.transformer import Attention

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),  # conftest: tiny models, threads only add overhead
]



def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- counts


def vgg_params_closed_form(cfg, in_channels=3, side=32, num_classes=10) -> int:
    """Li et al.'s VGG (cifar10/models/vgg.py), counted by hand: conv+bias+BN, fc+BN, head."""
    total, c = 0, in_channels
    for v in cfg:
        if v == "M":
            side = math.ceil(side / 2)
        else:
            total += c * v * 9 + v + 2 * v
            c = v
    return total + (c * side * side * c + c) + 2 * c + (c * num_classes + num_classes)


def test_parameter_counts_of_the_papers() -> None:
    counts = {
        "preresnet110": n_params(preresnet110()),
        "preresnet164": n_params(preresnet164()),
        "resnet164": n_params(resnet164()),
        "densenet_bc100": n_params(densenet_bc100()),
        "vgg9": n_params(vgg9()),
        "vgg16": n_params(vgg16()),
    }
    assert counts == {
        "preresnet110": 1_730_522,  # He et al. 2016b: 1.7M
        "preresnet164": 1_703_258,  # 1.7M
        "resnet164": 1_704_154,  # 1.7M (original bottleneck ResNet-164)
        "densenet_bc100": 769_162,  # Huang et al. 2017: 0.8M
        "vgg9": 2_789_706,  # Li et al.'s code
        "vgg16": 14_991_946,
    }
    # the papers give two significant digits (one for 0.8M); the bottleneck nets agree to 0.3%
    for name in ("preresnet110", "preresnet164", "resnet164"):
        assert round(counts[name], -5) == 1_700_000, name
    for name in ("preresnet164", "resnet164"):
        assert abs(counts[name] / 1.7e6 - 1) < 0.01, name
    assert round(counts["densenet_bc100"], -5) == 800_000
    # the projections are the only difference to parameter-free (option A) shortcuts
    assert counts["preresnet110"] - (16 * 32 + 32 * 64) == 1_727_962
    # VGG: exactly the layers of Li et al.'s code
    assert counts["vgg9"] == vgg_params_closed_form([64, 64, "M", 128, 128, "M", 256, 256, 256,
                                                     "M"])
    assert n_params(vgg9(in_channels=1, image_size=8)) == vgg_params_closed_form(
        [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"], in_channels=1, side=8)


def test_depth_rules() -> None:
    assert PreResNet(164, bottleneck=True).num_blocks == 18
    assert ResNet(56, bottleneck=True).num_blocks == 6
    assert DenseNet(100).num_layers == 16
    for call in (lambda: PreResNet(21), lambda: ResNet(30, bottleneck=True),
                 lambda: DenseNet(99), lambda: VGG(11)):
        with pytest.raises(LandscapeError, match="depth"):
            call()


# ----------------------------------------------------------------------------- twins

TWINS = [
    ("preresnet20", {"in_channels": 1, "width": 0.5}, (2, 1, 8, 8)),
    ("preresnet", {"depth": 29, "bottleneck": True, "in_channels": 1, "width": 0.25},
     (2, 1, 8, 8)),
    ("resnet", {"depth": 29, "bottleneck": True, "in_channels": 1, "width": 0.25}, (2, 1, 8, 8)),
    ("densenet", {"depth": 22, "growth_rate": 4, "in_channels": 1}, (2, 1, 8, 8)),
    ("vit", {"width": 16, "depth": 2, "heads": 2}, (2, 1, 8, 8)),
    ("vit", {"width": 16, "depth": 2, "heads": 2, "norm": "post"}, (2, 1, 8, 8)),
    ("gpt", {"width": 16, "depth": 2, "heads": 2}, None),
    ("resnext", {"depth": 11, "cardinality": 2, "bottleneck_width": 2, "in_channels": 1,
                 "width": 0.125}, (2, 1, 8, 8)),
    ("highway", {"width": 8, "depth": 2}, (2, 1, 8, 8)),
    ("highway_conv", {"channels": 4, "depth": 2}, (2, 1, 8, 8)),
]


def _inputs(shape):
    if shape is None:
        return torch.tensor([[1, 2, 97], [5, 96, 97]])
    return torch.randn(*shape)


@pytest.mark.parametrize(("name", "kwargs", "shape"), TWINS)
def test_twins_share_state_dict_and_differ_in_forward(name, kwargs, shape) -> None:
    switch = skip_switch(name)
    torch.manual_seed(0)
    res = build(name, **kwargs)
    torch.manual_seed(0)
    plain = build(name, **kwargs, **{switch: False})
    a, b = res.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    plain.load_state_dict(a)
    res.eval()
    plain.eval()
    x = _inputs(shape)
    out_r, out_p = res(x), plain(x)
    assert out_r.shape == out_p.shape == (2, 97 if name == "gpt" else 10)
    assert not torch.allclose(out_r, out_p)


def test_skip_switch() -> None:
    assert [skip_switch(n) for n in ("resnet20", "preresnet56", "densenet", "mlp")] == [
        "shortcut"] * 4
    assert skip_switch("vit") == skip_switch("gpt") == "residual"


@pytest.mark.parametrize("bottleneck", [False, True])
def test_preactivation_skip_is_exactly_the_identity(bottleneck) -> None:
    torch.manual_seed(0)
    depth = 29 if bottleneck else 20
    net = PreResNet(depth, in_channels=1, width=0.5, bottleneck=bottleneck).eval()
    blocks = [b for stage in (net.layer1, net.layer2, net.layer3) for b in stage]
    identity = [b for b in blocks if b.downsample is None]
    assert len(identity) == len(blocks) - (3 if bottleneck else 2)
    last = "conv3" if bottleneck else "conv2"
    with torch.no_grad():
        for b in identity:
            getattr(b, last).weight.zero_()  # the branch's last layer: F(x) = 0
    for b in identity:
        assert isinstance(b, PreActBottleneck if bottleneck else PreActBlock)
        c = b.bn1.num_features
        x = torch.randn(3, c, 4, 4) * 3 - 1  # negative values too: no ReLU after the sum
        assert torch.equal(b(x), x)
    # a whole stage of identity units is the identity map
    if not bottleneck:
        x = torch.randn(2, net.channels[0], 8, 8)
        assert torch.equal(net.layer1(x), x)
    # the post-activation ResNet's block is not: its ReLU after the sum clips x
    post = ResNet(20, in_channels=1, width=0.5).eval()
    with torch.no_grad():
        post.layer1[1].bn2.weight.zero_()
        post.layer1[1].bn2.bias.zero_()
    x = torch.randn(2, post.channels[0], 8, 8)
    assert torch.equal(post.layer1[1](x), x.relu()) and not torch.equal(x.relu(), x)


def test_plain_twins_leave_projections_unused() -> None:
    torch.manual_seed(0)
    plain = PreResNet(20, shortcut=False, in_channels=1, width=0.5)
    plain(torch.randn(4, 1, 8, 8)).sum().backward()
    proj = {n: p.grad for n, p in plain.named_parameters() if "downsample" in n}
    assert proj and all(g is None for g in proj.values())


def test_densenet_plain_twin_is_a_chain() -> None:
    """In the plain DenseNet a layer sees only its predecessor: the weights reading any older
    map get zero gradient, while the dense net uses all of them."""
    kwargs = {"depth": 22, "growth_rate": 4, "in_channels": 1}
    x = torch.randn(8, 1, 8, 8)
    for shortcut in (True, False):
        torch.manual_seed(0)
        net = DenseNet(**kwargs, shortcut=shortcut)
        net(x).square().sum().backward()
        third = net.blocks[1][2].conv1.weight.grad  # layer 3 of block 2: input = in + 2 maps
        older, newest = third[:, :-4], third[:, -4:]
        assert newest.abs().sum() > 0
        assert (older.abs().sum() > 0) == shortcut
        head = net.fc.weight.grad  # the head sees the last 4 maps only in the plain twin
        assert (head[:, :-4].abs().sum() > 0) == shortcut


def test_vgg_on_digits_and_shape_errors() -> None:
    out = vgg16(in_channels=1, image_size=8, width=0.25)(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)
    with pytest.raises(LandscapeError, match="image_size=8"):
        vgg9(in_channels=1)(torch.randn(2, 1, 8, 8))
    with pytest.raises(LandscapeError, match="in_channels=1"):
        PreResNet(20)(torch.randn(2, 1, 8, 8))


# ----------------------------------------------------------------------------- transformers


def test_transformer_variants_share_keys() -> None:
    keys = {k: v.shape for k, v in ViT().state_dict().items()}
    for residual in (True, False):
        for norm in ("pre", "post"):
            other = ViT(residual=residual, norm=norm).state_dict()
            assert {k: v.shape for k, v in other.items()} == keys
    with pytest.raises(LandscapeError, match="norm"):
        ViT(norm="sandwich")
    with pytest.raises(LandscapeError, match="divisible"):
        GPT(width=30, heads=4)


def test_attention_is_causal_and_matches_sdpa() -> None:
    torch.manual_seed(0)
    att = Attention(16, 2, causal=True)
    x = torch.randn(3, 5, 16)
    y = att(x)
    x2 = x.clone()
    x2[:, 3:] += 1.0
    assert torch.allclose(att(x2)[:, :3], y[:, :3]) and not torch.allclose(att(x2), y)
    # the explicit formula is PyTorch's attention
    q, k, v = att.qkv(x).reshape(3, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
    ref = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(att.proj(ref.transpose(1, 2).reshape(3, 5, 16)), y, atol=1e-6)


def test_gpt_reads_token_ids() -> None:
    net = GPT(width=16, depth=1, heads=2).eval()
    ids = torch.tensor([[1, 2, 97], [4, 4, 97]])
    out = net(ids)
    assert out.shape == (2, 97)
    assert torch.equal(net(ids.double().float()), out)  # whole-number floats are accepted
    with pytest.raises(LandscapeError, match="integer"):
        net(torch.tensor([[0.5, 1.0, 97.0]]))
    with pytest.raises(LandscapeError, match="0..97"):
        net(torch.tensor([[1, 2, 98]]))


@pytest.mark.parametrize("name", ["vit", "gpt"])
@pytest.mark.parametrize("residual", [True, False])
def test_hessian_through_attention_matches_dense_truth(name, residual) -> None:
    """Fused attention has no double backward; the explicit one gives exact HVPs (both
    methods) and the exact Hessian of the attention weights."""
    from tests.reference import dense_from_operator, exact_hessian

    torch.manual_seed(0)
    if name == "vit":
        model = ViT(width=8, depth=1, heads=2, residual=residual)
        data = load_data(DataSpec("digits", subset=16))
    else:
        model = GPT(vocab_size=6, num_classes=5, width=8, depth=1, heads=2, residual=residual)
        data = load_data(DataSpec("modadd", kwargs={"p": 5}))
    attn = ["blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight"]
    others = [k for k, _ in model.named_parameters() if k not in attn]
    graph = HessianOperator(model, data, dtype=torch.float64, method="graph")
    func = HessianOperator(model, data, dtype=torch.float64, method="func")
    v = torch.randn(graph.shape[0], dtype=torch.float64)
    hv = graph @ v
    assert torch.isfinite(hv).all() and hv.abs().sum() > 0
    torch.testing.assert_close(func @ v, hv, rtol=1e-9, atol=1e-11)
    op = HessianOperator(model, data, dtype=torch.float64, ignore=others)
    dense = dense_from_operator(op)
    truth = exact_hessian(model, data.x, data.y, attn)
    torch.testing.assert_close(dense, truth, rtol=1e-7, atol=1e-10)


# ----------------------------------------------------------------------------- adapting


def test_adapt_to_data_fills_only_what_is_missing() -> None:
    digits = load_data(DataSpec("digits", subset=50))
    spec = adapt_to_data(ModelSpec("resnet20", {"width": 0.5}), digits)
    assert spec.kwargs == {"width": 0.5, "in_channels": 1}  # 10 classes: the default
    assert spec.build()(digits.x[:2]).shape == (2, 10)
    kept = adapt_to_data(ModelSpec("resnet20", {"num_classes": 12}), digits)
    assert kept.kwargs == {"num_classes": 12, "in_channels": 1}
    assert adapt_to_data(ModelSpec("vgg9"), digits).kwargs == {"in_channels": 1,
                                                               "image_size": 8}
    fits = ModelSpec("mlp", {"width": 8})
    assert adapt_to_data(fits, digits) is fits  # a spec that fits is left as it is
    tokens = load_data(DataSpec("modadd", kwargs={"p": 11}))
    assert adapt_to_data(ModelSpec("gpt"), tokens).kwargs == {"vocab_size": 12,
                                                              "num_classes": 11}
    rgb = TensorData(torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 3]), "rgb")
    assert adapt_to_data(ModelSpec("densenet"), rgb).kwargs == {"num_classes": 4}
    mlp = adapt_to_data(ModelSpec("mlp"), rgb)
    assert mlp.kwargs == {"in_features": 108, "num_classes": 4}


def test_cli_train_takes_channels_and_classes_from_the_data(tmp_path, capsys) -> None:
    from landscape.training import TrainRun

    out = tmp_path / "run"
    rc = cli_main.main(["train", "--model", "preresnet20", "--data", "digits", "--subset", "64",
                        "--model-kwargs", '{"width": 0.25}', "--epochs", "1", "--plain",
                        "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert TrainRun.load(out).spec == ModelSpec(
        "preresnet20", {"width": 0.25, "shortcut": False, "in_channels": 1})
    rc = cli_main.main(["train", "--model", "gpt", "--data", "modadd", "--data-kwargs",
                        '{"p": 5}', "--model-kwargs", '{"width": 8, "depth": 1, "heads": 2}',
                        "--plain", "--epochs", "1", "--out", str(tmp_path / "gpt"),
                        "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    spec = TrainRun.load(tmp_path / "gpt").spec
    assert spec.kwargs["residual"] is False and spec.kwargs["num_classes"] == 5
    assert spec.kwargs["vocab_size"] == 6


def test_cli_hessian_top1_on_transformers(tmp_path, capsys) -> None:
    from landscape.checkpoints import save_checkpoint

    cases = [
        (ModelSpec("vit", {"width": 16, "depth": 1, "heads": 2, "residual": False}),
         DataSpec("digits", subset=40)),
        (ModelSpec("gpt", {"vocab_size": 6, "num_classes": 5, "width": 16, "depth": 1,
                           "heads": 2}), DataSpec("modadd", kwargs={"p": 5})),
    ]
    for i, (spec, data) in enumerate(cases):
        torch.manual_seed(0)
        ckpt = save_checkpoint(tmp_path / f"m{i}.pt", spec.build(), spec, data=data.to_dict())
        rc = cli_main.main(["hessian", str(ckpt), "--top-k", "1", "--out",
                            str(tmp_path / f"h{i}.h5"), "--no-progress"])
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert "top-1 eigenvalues" in out.out
