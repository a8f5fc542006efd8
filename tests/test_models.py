"""Tests for ``landscape.models``: ResNets, the MLP, their plain twins and the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.errors import LandscapeError
from landscape.models import (
    MLP,
    MODELS,
    ModelSpec,
    ResNet,
    available_models,
    build,
    parse_model_kwargs,
    resnet20,
    resnet56,
    resnet110,
)

# The module:factory form is tested with a factory from this very module. Whatever name pytest
# imported it under ("test_models", "tests.test_models") is in sys.modules, so this is robust.
FACTORY = f"{__name__}:tiny_factory"


def tiny_factory(hidden: int = 3, out: int = 2) -> nn.Module:
    """A user model factory for the ``"module:factory"`` form."""
    return nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, out))


def not_a_module_factory() -> int:
    return 42


def buggy_factory() -> nn.Module:
    return nn.Linear(2)  # type: ignore[call-arg]  # a bug inside user code, not a bad kwarg


NOT_CALLABLE = 3


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resnet_params_closed_form(
    depth: int, in_channels: int = 3, num_classes: int = 10, channels=(16, 32, 64)
) -> int:
    """Parameter count of the ResNet with projection shortcuts, counted by hand."""
    n = (depth - 2) // 6

    def conv_bn(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k * k + 2 * c_out  # bias-free conv + BN weight and bias

    total = conv_bn(in_channels, channels[0], 3)
    c_in = channels[0]
    for c in channels:
        total += conv_bn(c_in, c, 3) + conv_bn(c, c, 3)
        if c_in != c:
            total += conv_bn(c_in, c, 1)
        total += (n - 1) * 2 * conv_bn(c, c, 3)
        c_in = c
    return total + channels[-1] * num_classes + num_classes


# ----------------------------------------------------------------------------- ResNet


def test_resnet_parameter_counts_exact() -> None:
    assert n_params(resnet20()) == 272_474
    assert n_params(resnet56()) == 855_770
    assert n_params(resnet110()) == 1_730_714
    # The paper's 0.27M / 0.85M, plus 2,752 for the two projection shortcuts.
    assert 269_722 + 2_752 == 272_474
    assert round(n_params(resnet56()) / 1e6, 2) == 0.86


@pytest.mark.parametrize(
    ("depth", "kwargs", "channels"),
    [
        (20, {}, (16, 32, 64)),
        (56, {}, (16, 32, 64)),
        (8, {"in_channels": 1, "num_classes": 7}, (16, 32, 64)),
        (20, {"width": 2}, (32, 64, 128)),
        (20, {"width": 0.5, "in_channels": 1}, (8, 16, 32)),
    ],
)
def test_resnet_parameter_counts_match_closed_form(depth, kwargs, channels) -> None:
    model = ResNet(depth, **kwargs)
    expected = resnet_params_closed_form(
        depth, kwargs.get("in_channels", 3), kwargs.get("num_classes", 10), channels
    )
    assert n_params(model) == expected


@pytest.mark.parametrize(
    ("factory", "depth", "n"), [(resnet20, 20, 3), (resnet56, 56, 9), (resnet110, 110, 18)]
)
def test_named_variants(factory, depth, n) -> None:
    model = factory(in_channels=1)
    assert isinstance(model, ResNet)
    assert model.depth == depth and model.num_blocks == n
    assert len(model.layer1) == len(model.layer2) == len(model.layer3) == n
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == depth  # 3x3 convs plus the linear head


@pytest.mark.parametrize("shortcut", [True, False])
def test_resnet_forward_shapes(shortcut: bool) -> None:
    torch.manual_seed(0)
    digits = resnet20(in_channels=1, shortcut=shortcut)
    assert digits(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    cifar = resnet20(shortcut=shortcut, num_classes=100)
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_width_multiplier_changes_channels() -> None:
    for width, channels in [
        (1, (16, 32, 64)),
        (2, (32, 64, 128)),
        (1.5, (24, 48, 96)),
        (0.25, (4, 8, 16)),
    ]:
        model = resnet20(width=width, in_channels=1)
        assert model.channels == channels
        assert model.conv1.weight.shape == (channels[0], 1, 3, 3)
        assert model.layer2[0].conv1.weight.shape == (channels[1], channels[0], 3, 3)
        assert model.layer3[-1].conv2.weight.shape == (channels[2], channels[2], 3, 3)
        assert model.layer3[0].downsample[0].weight.shape == (channels[2], channels[1], 1, 1)
        assert model.fc.in_features == channels[2]
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert n_params(resnet20(width=2)) > n_params(resnet20())


def test_projection_shortcuts_only_where_shape_changes() -> None:
    model = resnet20()
    with_proj = [
        name for name, m in model.named_modules() if getattr(m, "downsample", None) is not None
    ]
    assert with_proj == ["layer2.0", "layer3.0"]
    proj = model.layer2[0].downsample
    assert proj[0].kernel_size == (1, 1) and proj[0].stride == (2, 2) and proj[0].bias is None
    assert isinstance(proj[1], nn.BatchNorm2d)


def test_resnet_init() -> None:
    torch.manual_seed(0)
    model = resnet20(width=4)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
    # kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (out * k * k)).
    w = model.layer3[1].conv1.weight  # 256 x 256 x 3 x 3
    expected = (2.0 / (w.shape[0] * 9)) ** 0.5
    assert abs(w.std().item() / expected - 1) < 0.02
    assert abs(w.mean().item()) < 0.01 * expected


@pytest.mark.parametrize("name", ["resnet20", "mlp"])
def test_deterministic_init(name: str) -> None:
    def init(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build(name).state_dict()

    a, b, c = init(0), init(0), init(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


# ----------------------------------------------------------------------------- plain twins

TWINS = [
    ("resnet20", {"in_channels": 1}, (4, 1, 8, 8)),
    ("resnet", {"depth": 8, "width": 0.5}, (4, 3, 16, 16)),
    ("mlp", {}, (4, 1, 8, 8)),
    ("mlp", {"batchnorm": True, "depth": 2}, (4, 64)),
]


@pytest.mark.parametrize(("name", "kwargs", "shape"), TWINS)
def test_plain_twin_has_identical_state_dict(name, kwargs, shape) -> None:
    res = build(name, **kwargs)
    plain = build(name, shortcut=False, **kwargs)
    a, b = res.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a)
    assert [n for n, _ in res.named_parameters()] == [n for n, _ in plain.named_parameters()]
    # Checkpoints are interchangeable both ways.
    plain.load_state_dict(a, strict=True)
    res.load_state_dict(b, strict=True)


@pytest.mark.parametrize(("name", "kwargs", "shape"), TWINS)
def test_plain_twin_computes_something_else(name, kwargs, shape) -> None:
    torch.manual_seed(0)
    res = build(name, **kwargs).eval()
    plain = build(name, shortcut=False, **kwargs).eval()
    plain.load_state_dict(res.state_dict())
    x = torch.randn(shape)
    with torch.no_grad():
        assert not torch.allclose(res(x), plain(x))
        again = build(name, **kwargs).eval()
        again.load_state_dict(res.state_dict())
        assert torch.equal(again(x), res(x))  # same weights, same twin: same output


def _perturb_projections(model: ResNet) -> None:
    with torch.no_grad():
        for block in (model.layer2[0], model.layer3[0]):
            for p in block.downsample.parameters():
                p.add_(torch.randn_like(p))


def test_projection_used_only_by_residual_net() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 1, 8, 8)
    for shortcut in (True, False):
        model = resnet20(in_channels=1, shortcut=shortcut).eval()
        with torch.no_grad():
            before = model(x)
            _perturb_projections(model)
            after = model(x)
        assert torch.allclose(before, after) is (not shortcut)


def test_plain_twin_projection_parameters_get_no_gradient() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    for shortcut in (True, False):
        model = resnet20(in_channels=1, shortcut=shortcut)
        nn.functional.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            if ".downsample." in name and not shortcut:
                assert p.grad is None, name
            else:
                assert p.grad is not None, name
    assert sum(".downsample." in n for n, _ in resnet20().named_parameters()) == 6


# ----------------------------------------------------------------------------- MLP


def test_mlp_structure_and_counts() -> None:
    model = MLP()
    assert n_params(model) == (64 * 32 + 32) + 4 * (32 * 32 + 32) + (32 * 10 + 10) == 6634
    bn = MLP(batchnorm=True)  # bias-free linear + BN weight and bias
    assert n_params(bn) == (64 * 32 + 32) + 4 * (32 * 32 + 64) + (32 * 10 + 10) == 6762
    assert len(MLP(depth=0).blocks) == 0
    small = MLP(in_features=12, width=5, depth=2, num_classes=3)
    assert small(torch.randn(7, 3, 4)).shape == (7, 3)
    assert small(torch.randn(7, 12)).shape == (7, 3)


def test_mlp_block_math() -> None:
    torch.manual_seed(0)
    res, plain = MLP(depth=1), MLP(depth=1, shortcut=False)
    plain.load_state_dict(res.state_dict())
    x = torch.randn(5, 64)
    h = torch.relu(res.stem(x))
    z = torch.relu(res.blocks[0].linear(h))
    with torch.no_grad():
        torch.testing.assert_close(res(x), res.head(h + z))
        torch.testing.assert_close(plain(x), res.head(z))


def test_forward_rejects_wrong_input_shape() -> None:
    with pytest.raises(LandscapeError, match="in_channels=3"):
        resnet20(in_channels=1)(torch.randn(2, 3, 32, 32))
    with pytest.raises(LandscapeError, match="64 features"):
        MLP()(torch.randn(2, 3, 32, 32))


# ----------------------------------------------------------------------------- registry


def test_available_models_and_read_only_registry() -> None:
    assert available_models() == [
        "densenet", "densenet_bc100", "densenet_bc40", "gpt", "highway", "highway_conv", "mlp",
        "preresnet", "preresnet110", "preresnet164", "preresnet20", "preresnet56", "resnet",
        "resnet110", "resnet164", "resnet20", "resnet56", "resnext", "resnext29_16x64d",
        "resnext29_8x64d", "unet", "vgg", "vgg16", "vgg9", "vit",
    ]
    with pytest.raises(TypeError):
        MODELS["evil"] = MLP  # type: ignore[index]
    assert "evil" not in MODELS


def test_build_builtin_models() -> None:
    assert isinstance(build("mlp", width=8), MLP)
    net = build("resnet", depth=32, in_channels=1, shortcut=False)
    assert isinstance(net, ResNet) and net.depth == 32 and net.shortcut is False
    assert build("resnet110").depth == 110


def test_build_user_factory() -> None:
    model = build(FACTORY, hidden=5)
    assert isinstance(model, nn.Sequential) and model[1].out_features == 5
    assert model(torch.randn(2, 2, 2)).shape == (2, 2)
    lin = build("torch.nn:Linear", in_features=3, out_features=2)
    assert isinstance(lin, nn.Linear)
    spec = ModelSpec(FACTORY, {"out": 4})
    assert ModelSpec.from_json(spec.to_json()).build()[-1].out_features == 4


def test_model_spec_round_trip() -> None:
    spec = ModelSpec("resnet20", {"shortcut": False, "in_channels": 1, "width": 1.5})
    assert spec.to_dict() == {
        "name": "resnet20",
        "kwargs": {"shortcut": False, "in_channels": 1, "width": 1.5},
    }
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    text = spec.to_json()
    assert text == (
        '{"kwargs": {"in_channels": 1, "shortcut": false, "width": 1.5}, "name": "resnet20"}'
    )
    assert ModelSpec.from_json(text) == spec
    # Stable: insertion order does not matter.
    same = ModelSpec("resnet20", {"width": 1.5, "in_channels": 1, "shortcut": False})
    assert same.to_json() == text
    assert ModelSpec("mlp").to_json() == '{"kwargs": {}, "name": "mlp"}'
    assert ModelSpec.from_dict({"name": "mlp"}) == ModelSpec("mlp")

    torch.manual_seed(0)
    a = spec.build()
    torch.manual_seed(0)
    b = resnet20(shortcut=False, in_channels=1, width=1.5)
    assert isinstance(a, ResNet) and a.shortcut is False and a.channels == (24, 48, 96)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_model_spec_is_isolated_from_callers_dicts() -> None:
    kwargs = {"width": 8}
    spec = ModelSpec("mlp", kwargs)
    kwargs["width"] = 9
    spec.to_dict()["kwargs"]["width"] = 10
    assert spec.kwargs == {"width": 8}
    with pytest.raises(AttributeError):
        spec.name = "resnet20"  # type: ignore[misc]


def test_parse_model_kwargs() -> None:
    assert parse_model_kwargs('{"shortcut": false, "width": 2}') == {"shortcut": False, "width": 2}
    assert parse_model_kwargs(None) == {}
    assert parse_model_kwargs("  ") == {}
    assert parse_model_kwargs("{}") == {}
    assert build("resnet20", **parse_model_kwargs('{"shortcut": false}')).shortcut is False


ERRORS = [
    (lambda: build("resnet21"), r"Unknown model 'resnet21'.*'resnet20'.*package\.module:factory"),
    (lambda: build("lenet"), r"Available models: 'densenet', .*'mlp', .*module:factory"),
    (lambda: build("resnet"), r"'resnet'.*missing a required argument: 'depth'"),
    (lambda: build("resnet", depth=21), r"'resnet'.*'depth'.*6n\+2.*Got 21"),
    (lambda: build("resnet", depth=2), r"'resnet'.*'depth'"),
    (lambda: build("resnet20", depth=56), r"'resnet20'.*unexpected keyword.*'depth'.*accepts"),
    (lambda: build("resnet20", width=0), r"'resnet20'.*'width'.*Got 0"),
    (lambda: build("resnet20", width="2"), r"'resnet20'.*'width'"),
    (lambda: build("resnet20", shortcut="false"), r"'resnet20'.*'shortcut'.*bool"),
    (lambda: build("resnet56", in_channels=0), r"'resnet56'.*'in_channels'"),
    (lambda: build("mlp", hidden=3), r"'mlp'.*unexpected keyword.*'hidden'"),
    (lambda: build("mlp", depth=-1), r"'mlp'.*'depth'.*\[0, inf\)"),
    (lambda: build("mlp", batchnorm=1), r"'mlp'.*'batchnorm'.*bool"),
    (lambda: build(3), r"'name'.*str"),  # type: ignore[arg-type]
    (lambda: build("no_such_pkg.mod:f"), r"Cannot import module 'no_such_pkg\.mod'"),
    (lambda: build(f"{__name__}:missing"), r"no attribute 'missing'"),
    (lambda: build(f"{__name__}:NOT_CALLABLE"), r"not callable"),
    (
        lambda: build(f"{__name__}:not_a_module_factory"),
        r"returned an object of type 'int', not a torch\.nn",
    ),
    (lambda: build(FACTORY, width=3), r"unexpected keyword.*'width'.*hidden, out"),
    (lambda: build(":f"), r"'package\.module:factory'"),
    (lambda: ResNet(21), r"6n\+2"),
    (lambda: MLP(width=0), r"'width'"),
    (lambda: parse_model_kwargs("{shortcut: false}"), r"JSON object.*Got"),
    (lambda: parse_model_kwargs("[1, 2]"), r"JSON object.*a JSON list"),
    (lambda: parse_model_kwargs('"x"'), r"JSON object"),
    (lambda: ModelSpec(""), r"'name'"),
    (lambda: ModelSpec("mlp", [1]), r"'kwargs'"),  # type: ignore[arg-type]
    (lambda: ModelSpec("mlp", {"x": object()}).to_json(), r"cannot be written as JSON"),
    (lambda: ModelSpec.from_json("nope"), r"JSON object"),
    (lambda: ModelSpec.from_dict({"kwargs": {}}), r"'name'"),
    (lambda: ModelSpec.from_dict({"name": "mlp", "extra": 1}), r"'name'.*'kwargs'"),
]


@pytest.mark.parametrize(("call", "pattern"), ERRORS)
def test_errors_are_one_line_landscape_errors(call, pattern) -> None:
    with pytest.raises(LandscapeError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bug_inside_user_factory_is_not_disguised() -> None:
    with pytest.raises(TypeError):
        build(f"{__name__}:buggy_factory")
