"""Per-block spectra: groupings, block-diagonal restrictions against dense float64 Hessians,
the Jensen-Shannon heterogeneity against scipy, storage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from torch import nn

from landscape.data import TensorData
from landscape.errors import LandscapeError
from landscape.hessian import (
    BlockSpectra,
    GGNOperator,
    compute_block_spectra,
    js_distances,
    parameter_blocks,
)
from landscape.models import build

from .conftest import toy_classifier
from .reference import dense_from_operator, exact_hessian

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]

F64 = torch.float64


def test_groupings_of_a_vit_and_a_resnet():
    vit = build("vit", width=8, depth=2, heads=2, num_classes=3)
    blocks = parameter_blocks(vit, "block")
    assert list(blocks) == ["blocks.0", "blocks.1"]
    assert all(p.startswith("blocks.0.") for p in blocks["blocks.0"])
    am = parameter_blocks(vit, "attn-mlp")
    assert list(am) == ["attn", "mlp"]
    assert "blocks.1.attn.qkv.weight" in am["attn"] and "blocks.0.mlp.2.bias" in am["mlp"]
    layers = parameter_blocks(vit, "layer")
    assert layers["(root)"] == ["cls_token", "pos_embed"]
    assert layers["blocks.0.attn.qkv"] == ["blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias"]
    globs = parameter_blocks(vit, ["blocks.*.attn.*", "blocks.*"])
    assert set(globs["blocks.*"]).isdisjoint(globs["blocks.*.attn.*"])  # first match wins
    assert parameter_blocks(vit, "head.*,patch_embed") == {
        "head.*": ["head.weight", "head.bias"],
        "patch_embed": ["patch_embed.weight", "patch_embed.bias"]}
    resnet = build("resnet20", in_channels=1, width=0.25, num_classes=3)
    rb = parameter_blocks(resnet, "block")
    assert len(rb) == 9 and list(rb)[0] == "layer1.0"
    with pytest.raises(LandscapeError, match="'blocks'.*attention and MLP"):
        parameter_blocks(resnet, "attn-mlp")
    with pytest.raises(LandscapeError, match="'blocks' pattern 'nope.*'"):
        parameter_blocks(resnet, ["nope.*"])
    with pytest.raises(LandscapeError, match="'blocks'.*residual or transformer"):
        parameter_blocks(nn.Sequential(nn.Linear(2, 2)), "block")


@pytest.mark.parametrize("operator", ["hessian", "ggn"])
def test_block_restrictions_match_the_dense_diagonal_blocks(operator):
    model, data = toy_classifier(0, activation=nn.Tanh, n=30)
    names = [k for k, _ in model.named_parameters()]
    if operator == "hessian":
        dense = exact_hessian(model, data.x, data.y, names)
    else:
        dense = dense_from_operator(GGNOperator(model, data))
    res = compute_block_spectra(model, data, blocks=["0.*", "2.*"], operator=operator,
                                top_k=2, tol=1e-10, trace_samples=3 * 30, density_steps=8,
                                dtype=F64)
    assert res.block_names == ["0.*", "2.*"] and list(res.n_params) == [30, 21]
    for i, idx in enumerate((slice(0, 30), slice(30, 51))):
        ev = np.linalg.eigvalsh(dense[idx, idx].numpy())
        np.testing.assert_allclose(res.top_eigenvalues[i], ev[::-1][:2], rtol=1e-7)
        assert res.trace[i] == pytest.approx(ev.sum(), rel=1e-8)
    np.testing.assert_allclose(np.trapezoid(res.densities, res.density_grid, axis=1), 1,
                               rtol=1e-10)
    assert res.heterogeneity == pytest.approx(res.js_distance[0, 1])
    assert res.recipe["operator"] == operator


def test_js_distances_against_scipy_and_identical_blocks():
    grid = np.linspace(-3, 3, 201)
    a = np.exp(-grid**2 / 2)
    b = np.exp(-(grid - 1) ** 2 / 2)
    c = np.where(grid > 2.5, 1.0, 0.0)
    js = js_distances(grid, np.stack([a, b, c, a]))
    assert js[0, 1] == pytest.approx(jensenshannon(a / a.sum(), b / b.sum()), rel=1e-12)
    assert js[0, 3] == 0 and js[1, 1] == 0
    assert js[1, 2] <= math.sqrt(math.log(2)) + 1e-12
    np.testing.assert_array_equal(js, js.T)
    # subnormal values once made scipy's terms infinite (p / ((p + q) / 2) with m == 0)
    tiny = np.array([1.0, 5e-324, 0.0]), np.array([0.5, 0.0, 0.5])
    assert math.isfinite(js_distances(np.arange(3.0), np.stack(tiny))[0, 1])

    # two blocks with identical restrictions: z = A x + B x with A == B
    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 2, bias=False)
            self.b = nn.Linear(3, 2, bias=False)
            self.b.weight.data.copy_(self.a.weight.data)

        def forward(self, x):
            return self.a(x) + self.b(x)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(20, 3, generator=g, dtype=F64),
                      torch.randint(0, 2, (20,), generator=g), "twin")
    res = compute_block_spectra(Twin().to(F64), data, blocks="layer", density_steps=6,
                                trace_samples=18)
    assert res.block_names == ["a", "b"]
    assert res.heterogeneity == pytest.approx(0.0, abs=1e-7)


def test_parameters_that_do_not_reach_the_loss_are_in_no_block():
    """A plain ResNet keeps its (unused) shortcut projections: they are left out, listed."""
    torch.manual_seed(0)
    model = build("resnet20", in_channels=1, width=0.25, num_classes=3, shortcut=False)
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,),
                                                                          generator=g), "x")
    res = compute_block_spectra(model, data, blocks=["layer2.0.*"], top_k=1,
                                density_steps=3, trace_samples=3, ignore="biasbn")
    assert res.recipe["unused"] == ["layer2.0.downsample.0.weight",
                                    "layer3.0.downsample.0.weight"]
    assert res.block_params == [["layer2.0.conv1.weight", "layer2.0.conv2.weight"]]


def test_save_load_and_refusals(tmp_path):
    model, data = toy_classifier(1, n=20)
    res = compute_block_spectra(model, data, blocks="layer", top_k=1, density_steps=5,
                                trace_samples=6, operator="fisher")
    out = tmp_path / "b.h5"
    res.save(out)
    back = BlockSpectra.load(out)
    assert back.block_names == ["0", "2"] and back.operator == "fisher"
    np.testing.assert_array_equal(back.js_distance, res.js_distance)
    assert back.heterogeneity == res.heterogeneity
    assert back.lines()[-1] == res.lines()[-1]
    with pytest.raises(LandscapeError, match="already holds per-block spectra"):
        res.save(out)
    res.save(out, overwrite=True)
    one = compute_block_spectra(model, data, blocks=["0.*"], top_k=1, density_steps=4,
                                trace_samples=3)
    assert math.isnan(one.heterogeneity) and "one block" in one.heterogeneity_note
    with pytest.raises(LandscapeError, match="'operator'"):
        compute_block_spectra(model, data, operator="kfac")
    # the settings' constraints are declared once; each message names its parameter
    for bad, name in (({"trace_samples": 2}, "trace_samples"), ({"density_sigma": 0.0},
                      "density_sigma"), ({"params": [3]}, "params"), ({"bn": "train"}, "bn"),
                      ({"solver_dtype": torch.float16}, "solver_dtype")):
        with pytest.raises(LandscapeError, match=f"'{name}'"):
            compute_block_spectra(model, data, **bad)
    with pytest.raises(TypeError, match="'top_kk'"):
        compute_block_spectra(model, data, top_kk=1)


def test_small_multiples_and_plot_file(tmp_path):
    from landscape.plot import plot_block_spectra, plot_file

    model, data = toy_classifier(2, n=20)
    res = compute_block_spectra(model, data, blocks="layer", top_k=1, density_steps=5,
                                trace_samples=6)
    fig = plot_block_spectra(res, ncols=1)
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    assert "heterogeneity" in fig._suptitle.get_text()
    res.save(tmp_path / "b.h5")
    written = plot_file(tmp_path / "b.h5")
    assert [p.name for p in written] == ["b_blocks.png"]


def test_compare_shows_the_heterogeneity_row(tmp_path):
    from landscape.report import compare

    files = []
    for seed in (0, 1):
        model, data = toy_classifier(seed, n=20)
        res = compute_block_spectra(model, data, blocks="layer", top_k=1, density_steps=5,
                                    trace_samples=6)
        files.append(tmp_path / f"n{seed}.h5")
        res.save(files[-1])
    rep = compare(files, names=["a", "b"], progress=False)
    assert rep.table["a"]["block_heterogeneity"] == pytest.approx(
        BlockSpectra.load(files[0]).heterogeneity)
    assert rep.recipe["block_spectra.blocks"] == "layer"
    assert "Block heterogeneity" in rep.markdown_table()
