"""One selection of perturbed tensors: tied weights once, frozen out, globs, biasbn by module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape._functional import named_tensors
from landscape.directions import (
    filter_norms,
    normalize_direction,
    orthogonalize,
    random_direction,
    random_directions,
)
from landscape.errors import LandscapeError
from landscape.hessian import HessianOperator
from landscape.parameters import ParameterSelection, select_parameters, tied_aliases

F64 = torch.float64


class Tied(nn.Module):
    """Embedding and output layer sharing one weight (a tiny language model)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 4)
        self.mix = nn.Linear(4, 4)
        self.out = nn.Linear(4, 7, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.mix(self.emb(x))))


class Frozen(nn.Module):
    """A frozen feature layer under a trainable head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(5, 6)
        self.head = nn.Linear(6, 3)
        self.features.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.features(x)))


class WithLayerNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 64)
        self.ln = nn.LayerNorm([8, 8])
        self.head = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(torch.tanh(self.fc(x)).reshape(-1, 8, 8))
        return self.head(h.flatten(1))


def _data(n: int = 12, d: int = 5, c: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randint(0, c, (n,), generator=g)


def _tiny_gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32)
    return transformers.GPT2LMHeadModel(cfg).eval()


# ----------------------------------------------------------------------------- tied weights


def test_tied_weight_is_one_tensor_in_both_selections():
    m = Tied()
    assert tied_aliases(m) == {"out.weight": "emb.weight"}
    for what in ("weights", "states"):
        t = named_tensors(m, what)
        assert "out.weight" not in t and "emb.weight" in t
        d = random_directions(t, seeds=0, what=what, selection=select_parameters(m, what))
        assert all("out.weight" not in v for v in d.vectors)


def test_tied_gpt2_gets_one_direction_for_states():
    m = _tiny_gpt2()
    assert "lm_head.weight" in m.state_dict()
    sel = select_parameters(m, "states")
    assert sel.aliases == {"lm_head.weight": "transformer.wte.weight"}
    t = named_tensors(m, "states")
    assert "lm_head.weight" not in t
    d = random_directions(t, ndim=1, seeds=0, what="states", selection=sel)
    assert "transformer.wte.weight" in d.vectors[0]
    assert torch.count_nonzero(d.vectors[0]["transformer.wte.weight"]) > 0
    # every tensor of the model exactly once
    assert len({id(v) for v in t.values()}) == len(t)


def test_tied_hessian_has_one_block_and_matches_dense_reference():
    m = Tied().double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 7, (10,), generator=g), torch.randint(0, 7, (10,), generator=g)
    op = HessianOperator(m, (x, y), dtype=F64)
    assert op.names == ["emb.weight", "mix.weight", "mix.bias"]
    assert op.numel == 7 * 4 + 16 + 4
    # the operator differentiates the shared weight once: d/dW of L(W, W)
    p0 = {k: v.detach().clone() for k, v in m.named_parameters()}
    flat0 = torch.cat([p0[k].reshape(-1) for k in op.names])

    def loss(flat):
        parts, o = {}, 0
        for k in op.names:
            n = p0[k].numel()
            parts[k] = flat[o:o + n].reshape(p0[k].shape)
            o += n
        parts["out.weight"] = parts["emb.weight"]
        out = torch.func.functional_call(m, parts, (x,), tie_weights=False)
        return nn.functional.cross_entropy(out, y)

    H = torch.func.hessian(loss)(flat0)
    v = torch.randn(op.numel, dtype=F64, generator=g)
    torch.testing.assert_close(op @ v, H @ v, rtol=1e-9, atol=1e-10)


# ----------------------------------------------------------------------------- frozen


def test_frozen_parameters_are_not_perturbed_unless_asked():
    m = Frozen()
    w = named_tensors(m)
    sel = select_parameters(m)
    assert sel.frozen == ("features.weight", "features.bias")
    assert sel.perturbed == ("head.weight", "head.bias")
    d = random_direction(w, seed=0, ignore="none", selection=sel)
    assert torch.count_nonzero(d["features.weight"]) == 0
    assert torch.count_nonzero(d["head.weight"]) > 0
    sel_all = select_parameters(m, include_frozen=True)
    d_all = random_direction(w, seed=0, ignore="none", selection=sel_all)
    assert torch.count_nonzero(d_all["features.weight"]) > 0
    # the draws are the same: the head's direction does not change
    assert torch.equal(d_all["head.weight"], d["head.weight"])
    dirs = random_directions(w, seeds=0, selection=sel_all)
    assert dirs.recipe["include_frozen"] is True
    assert "include_frozen" not in random_directions(w, seeds=0, selection=sel).recipe


def test_frozen_parameters_are_outside_the_hessian():
    m = Frozen().double()
    data = _data()
    op = HessianOperator(m, data, dtype=F64)
    assert op.names == ["head.weight", "head.bias"] and op.numel == 6 * 3 + 3
    op_all = HessianOperator(m, data, dtype=F64, include_frozen=True)
    assert op_all.numel == 5 * 6 + 6 + 6 * 3 + 3
    # the trainable block is the principal submatrix of the full Hessian
    eye = torch.eye(op_all.numel, dtype=F64)
    H_all = torch.stack([op_all @ eye[i] for i in range(op_all.numel)])
    eye = torch.eye(op.numel, dtype=F64)
    H = torch.stack([op @ eye[i] for i in range(op.numel)])
    torch.testing.assert_close(H, H_all[-op.numel:, -op.numel:], rtol=0, atol=1e-12)
    with pytest.raises(LandscapeError, match="include_frozen"):
        HessianOperator(m, data, params="features.*")


# ----------------------------------------------------------------------------- biasbn by module


def test_layernorm_2d_is_ignored_under_biasbn():
    m = WithLayerNorm()
    w = named_tensors(m)
    sel = select_parameters(m)
    assert sel.is_biasbn("ln.weight") and sel.is_biasbn("ln.bias")
    assert not sel.is_biasbn("fc.weight")
    d = random_direction(w, seed=0, selection=sel)
    assert torch.count_nonzero(d["ln.weight"]) == 0 and torch.count_nonzero(d["ln.bias"]) == 0
    assert torch.count_nonzero(d["fc.weight"]) > 0
    # ignore="none": Li et al.'s rule for bias/BN tensors, d = θ
    d_none = random_direction(w, seed=0, ignore="none", selection=sel)
    assert torch.equal(d_none["ln.weight"], w["ln.weight"])
    op = HessianOperator(m.double(), (torch.randn(4, 64, dtype=F64), torch.tensor([0, 1, 2, 0])),
                         ignore="biasbn")
    assert op.names == ["fc.weight", "head.weight"]


@pytest.mark.parametrize("norm_layer", [
    nn.BatchNorm1d(4), nn.GroupNorm(2, 4), nn.InstanceNorm1d(4, affine=True), nn.RMSNorm(4),
])
def test_every_normalisation_layer_counts_as_bn(norm_layer):
    m = nn.Sequential(nn.Linear(3, 4), norm_layer)
    sel = select_parameters(m, "states")
    assert all(sel.is_biasbn(k) for k in sel.names if k.startswith("1."))
    assert not sel.is_biasbn("0.weight") and sel.is_biasbn("0.bias")


def test_hf_norm_class_by_name():
    class T5LayerNorm(nn.Module):  # HF style: a plain Module named *Norm*
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(2, 3))

    m = nn.Sequential(nn.Linear(3, 6), T5LayerNorm())
    assert select_parameters(m).is_biasbn("1.weight")


# ----------------------------------------------------------------------------- Conv1D


def test_hf_conv1d_filters_follow_output_units():
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    torch.manual_seed(0)
    conv = nn.Sequential(pytorch_utils.Conv1D(nf=5, nx=3))  # weight (in=3, out=5)
    lin = nn.Sequential(nn.Linear(3, 5))
    with torch.no_grad():
        lin[0].weight.copy_(conv[0].weight.T)
        lin[0].bias.copy_(conv[0].bias)
    sel_c, sel_l = select_parameters(conv), select_parameters(lin)
    assert sel_c.filter_dim("0.weight") == 1 and sel_l.filter_dim("0.weight") == 0
    wc, wl = named_tensors(conv), named_tensors(lin)
    g = torch.Generator().manual_seed(1)
    raw_c = {"0.weight": torch.randn(3, 5, generator=g), "0.bias": torch.randn(5, generator=g)}
    raw_l = {"0.weight": raw_c["0.weight"].T.clone(), "0.bias": raw_c["0.bias"].clone()}
    dc = normalize_direction(raw_c, wc, selection=sel_c)
    dl = normalize_direction(raw_l, wl, selection=sel_l)
    torch.testing.assert_close(dc["0.weight"], dl["0.weight"].T, rtol=1e-6, atol=0)
    torch.testing.assert_close(filter_norms(dc["0.weight"], dim=1),
                               filter_norms(wc["0.weight"], dim=1), rtol=1e-6, atol=0)
    # orthogonalisation inside every output unit, also along dim 1
    raw2 = {"0.weight": torch.randn(3, 5, generator=g), "0.bias": torch.randn(5, generator=g)}
    d2 = orthogonalize(normalize_direction(raw2, wc, selection=sel_c), dc, wc, selection=sel_c)
    cols = (d2["0.weight"] * dc["0.weight"]).sum(dim=0)
    assert float(cols.abs().max()) < 1e-6
    torch.testing.assert_close(filter_norms(d2["0.weight"], dim=1),
                               filter_norms(wc["0.weight"], dim=1), rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- globs


def test_params_and_exclude_globs_select_exactly():
    m = _tiny_gpt2()
    sel = select_parameters(m, params="transformer.h.*.attn.*")
    assert sel.perturbed == (
        "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
        "transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias",
        "transformer.h.1.attn.c_attn.weight", "transformer.h.1.attn.c_attn.bias",
        "transformer.h.1.attn.c_proj.weight", "transformer.h.1.attn.c_proj.bias",
    )
    sel = select_parameters(m, params=["transformer.h.1.mlp"], exclude="*.bias")
    assert sel.perturbed == ("transformer.h.1.mlp.c_fc.weight",
                             "transformer.h.1.mlp.c_proj.weight")
    assert sel.recipe == {"params": ["transformer.h.1.mlp"], "exclude": ["*.bias"]}
    # a tied tensor matches under any of its names
    assert select_parameters(m, params="lm_head").perturbed == ("transformer.wte.weight",)
    assert select_parameters(m).recipe == {}
    with pytest.raises(LandscapeError, match="matches no tensor"):
        select_parameters(m, params="encoder.*")
    with pytest.raises(LandscapeError, match="no tensor is left"):
        select_parameters(m, params="transformer.h.0.*", exclude="transformer.h.0")


def test_globs_select_hessian_variables():
    m = Frozen().double()
    op = HessianOperator(m, _data(), params="head.weight", include_frozen=True)
    assert op.names == ["head.weight"]
    op = HessianOperator(m, _data(), exclude="head.bias")
    assert op.names == ["head.weight"]


def test_excluded_tensors_get_zero_directions():
    m = WithLayerNorm()
    sel = select_parameters(m, exclude="head")
    d = random_direction(named_tensors(m), seed=0, selection=sel)
    assert torch.count_nonzero(d["head.weight"]) == 0
    assert torch.count_nonzero(d["fc.weight"]) > 0


# ----------------------------------------------------------------------------- compatibility


@pytest.mark.parametrize("norm", ["filter", "layer", "model", "none"])
@pytest.mark.parametrize("what", ["weights", "states"])
def test_default_selection_of_a_plain_net_is_bit_identical(tiny_conv, norm, what):
    w = named_tensors(tiny_conv, what)
    sel = select_parameters(tiny_conv, what)
    assert sel.names == tuple(tiny_conv.state_dict() if what == "states"
                              else dict(tiny_conv.named_parameters()))
    for ignore in ("biasbn", "none"):
        a = random_directions(w, seeds=3, norm=norm, ignore=ignore, what=what, orthogonal=True)
        b = random_directions(w, seeds=3, norm=norm, ignore=ignore, what=what, orthogonal=True,
                              selection=sel)
        assert a.recipe == b.recipe
        assert a.digest() == b.digest()


def test_selection_from_bare_tensors_and_bad_options():
    t = {"a.weight": torch.ones(2, 3), "a.bias": torch.ones(2), "b.weight": torch.ones(3, 3)}
    sel = ParameterSelection.from_tensors(t, exclude="b")
    assert sel.perturbed == ("a.weight", "a.bias") and sel.is_biasbn("a.bias")
    with pytest.raises(LandscapeError, match="glob pattern"):
        select_parameters(nn.Linear(2, 2), params=[3])
    with pytest.raises(LandscapeError, match="include_frozen"):
        select_parameters(nn.Linear(2, 2), include_frozen="yes")
    with pytest.raises(LandscapeError, match="selection"):
        random_direction(t, seed=0, selection={"a.weight": 0})
    with pytest.raises(LandscapeError, match="does not know the tensors"):
        random_direction(t, seed=0, selection=select_parameters(nn.Linear(2, 2)))


def test_float64_hessian_casts_non_persistent_buffers():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 3)
            self.register_buffer("mix", torch.eye(3) * 0.5 + 0.1, persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) @ self.mix  # a matmul refuses mixed dtypes

    m = Scaled()  # float32 weights and buffer, float64 operator
    x, y = _data()
    op = HessianOperator(m, (x.float(), y), dtype=F64)
    assert m.mix.dtype == torch.float32  # the model is untouched
    ref = Scaled().double()
    ref.load_state_dict(m.state_dict())
    op_ref = HessianOperator(ref, (x, y), dtype=F64)
    v = torch.randn(op.numel, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op @ v, op_ref @ v, rtol=1e-6, atol=1e-8)


def test_tied_gpt2_hessian_is_one_block():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32,
                                  attn_implementation="eager")

    class LastToken(nn.Module):  # class logits of the last position: today's (x, y) protocol
        def __init__(self) -> None:
            super().__init__()
            self.gpt = transformers.GPT2LMHeadModel(cfg)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.gpt(ids).logits[:, -1]

    m = LastToken().double().eval()
    g = torch.Generator().manual_seed(0)
    ids, y = torch.randint(0, 50, (6, 5), generator=g), torch.randint(0, 50, (6,), generator=g)
    op = HessianOperator(m, (ids, y), params="gpt.lm_head", dtype=F64)  # the tied alias' name
    assert op.names == ["gpt.transformer.wte.weight"] and op.numel == 50 * 16
    w0 = m.gpt.transformer.wte.weight.detach().clone()

    def loss(w):  # both names get the same tensor explicitly
        out = torch.func.functional_call(
            m, {"gpt.transformer.wte.weight": w, "gpt.lm_head.weight": w}, (ids,),
            tie_weights=False)
        return nn.functional.cross_entropy(out, y)

    v = torch.randn(50, 16, dtype=F64, generator=g)
    _, ref = torch.autograd.functional.hvp(loss, w0, v)
    torch.testing.assert_close(op @ v.reshape(-1), ref.reshape(-1), rtol=1e-9, atol=1e-12)


def test_random_directions_of_a_module_use_its_default_selection(tiny_conv):
    m = Frozen()
    d = random_directions(m, seeds=0, ignore="none")
    assert torch.count_nonzero(d.vectors[0]["features.weight"]) == 0
    assert torch.count_nonzero(d.vectors[0]["head.weight"]) > 0
    plain = random_directions(named_tensors(tiny_conv), seeds=0)
    assert random_directions(tiny_conv, seeds=0).digest() == plain.digest()
