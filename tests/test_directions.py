import pytest
import torch
from torch import nn

from landscape._functional import named_tensors
from landscape.directions import (
    Directions,
    check_spanning,
    filter_norms,
    inner,
    interpolation_direction,
    normalize_direction,
    orthogonalize,
    plane_directions,
    random_direction,
    random_directions,
)
from landscape.errors import LandscapeError


def test_filter_normalization_matches_weight_filter_norms(tiny_conv):
    w = named_tensors(tiny_conv)
    d = random_direction(w, seed=3)
    for k, v in w.items():
        if v.dim() > 1:
            torch.testing.assert_close(filter_norms(d[k]), filter_norms(v), rtol=1e-6, atol=0)
        else:
            assert torch.count_nonzero(d[k]) == 0, k  # biasbn ignored


def test_layer_and_model_norms(tiny_conv):
    w = named_tensors(tiny_conv)
    d = random_direction(w, seed=1, norm="layer")
    for k, v in w.items():
        if v.dim() > 1:
            torch.testing.assert_close(d[k].norm(), v.norm(), rtol=1e-6, atol=0)
    d = random_direction(w, seed=1, norm="model")
    moved = {k: v for k, v in w.items() if v.dim() > 1}
    wn = sum(float(v.double().pow(2).sum()) for v in moved.values()) ** 0.5
    assert abs(inner(d, d) ** 0.5 - wn) / wn < 1e-6


def test_norm_none_is_raw_gaussian_on_matrices(tiny_mlp):
    w = named_tensors(tiny_mlp)
    d = random_direction(w, seed=5, norm="none")
    g = torch.Generator().manual_seed(5)
    expected = {k: torch.randn(v.shape, generator=g) for k, v in w.items()}
    torch.testing.assert_close(d["1.weight"], expected["1.weight"])
    assert torch.count_nonzero(d["1.bias"]) == 0


def test_ignore_none_follows_li_for_vectors(tiny_conv):
    w = named_tensors(tiny_conv)
    d = random_direction(w, seed=0, ignore="none")
    torch.testing.assert_close(d["bn.weight"], w["bn.weight"])
    torch.testing.assert_close(d["conv.bias"], w["conv.bias"])


def test_seeds_reproducible_and_distinct(tiny_mlp):
    w = named_tensors(tiny_mlp)
    a = random_direction(w, seed=7)
    b = random_direction(w, seed=7)
    c = random_direction(w, seed=8)
    for k in w:
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["1.weight"], c["1.weight"])


def test_random_directions_recipe_and_seeds(tiny_mlp):
    w = named_tensors(tiny_mlp)
    dirs = random_directions(w, seeds=10)
    assert dirs.recipe["seeds"] == [10, 11]
    assert dirs.recipe["norm"] == "filter" and dirs.recipe["ignore"] == "biasbn"
    one = random_direction(w, seed=11)
    assert torch.equal(dirs.vectors[1]["1.weight"], one["1.weight"])
    with pytest.raises(LandscapeError, match="identical"):
        random_directions(w, seeds=[3, 3])
    with pytest.raises(LandscapeError, match="one seed per direction"):
        random_directions(w, seeds=[3])
    assert random_directions(w, ndim=1, seeds=4).ndim == 1


def test_orthogonalize_keeps_filter_norms_and_is_orthogonal(tiny_conv):
    w = named_tensors(tiny_conv)
    dirs = random_directions(w, seeds=0, orthogonal=True)
    d1, d2 = dirs.vectors
    assert abs(inner(d1, d2)) < 1e-5 * inner(d1, d1)
    for k, v in w.items():
        if v.dim() > 1:
            torch.testing.assert_close(filter_norms(d2[k]), filter_norms(v), rtol=1e-5, atol=0)
    for norm in ("layer", "model", "none"):
        a = random_direction(w, seed=0, norm=norm)
        b = orthogonalize(random_direction(w, seed=1, norm=norm), a, w, norm=norm)
        assert abs(inner(a, b)) < 1e-5 * inner(a, a), norm


def test_states_directions_move_floats_only():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    s = named_tensors(m, "states")
    assert "1.running_mean" in s and "1.num_batches_tracked" in s
    d = random_direction(s, seed=0, ignore="none", norm="filter")
    assert torch.count_nonzero(d["1.num_batches_tracked"]) == 0
    torch.testing.assert_close(d["1.running_var"], s["1.running_var"])


def test_interpolation_and_plane():
    a = {"w": torch.zeros(2, 2), "n": torch.tensor(3)}
    b = {"w": torch.ones(2, 2), "n": torch.tensor(5)}
    c = {"w": torch.tensor([[1.0, 0.0], [2.0, 0.0]]), "n": torch.tensor(1)}
    d = interpolation_direction(a, b)
    torch.testing.assert_close(a["w"] + d["w"], b["w"])
    assert d["n"].item() == 0
    dx, dy, coords = plane_directions(a, b, c)
    torch.testing.assert_close(dy["w"], c["w"])
    dx, dy, coords = plane_directions(a, b, c, orthogonal=True)
    assert abs(inner(dx, dy)) < 1e-6 * inner(dx, dx)
    cx, cy = coords["c"]
    torch.testing.assert_close(cx * dx["w"] + cy * dy["w"], c["w"])
    with pytest.raises(LandscapeError, match="collinear"):
        plane_directions(a, b, {"w": 2 * b["w"], "n": b["n"]}, orthogonal=True)


def test_mismatched_keys_and_shapes_raise():
    with pytest.raises(LandscapeError, match="different tensors"):
        normalize_direction({"a": torch.ones(2, 2)}, {"b": torch.ones(2, 2)})
    with pytest.raises(LandscapeError, match="shape"):
        normalize_direction({"a": torch.ones(2, 3)}, {"a": torch.ones(2, 2)})
    with pytest.raises(LandscapeError, match="norm"):
        random_direction({"a": torch.ones(2, 2)}, seed=0, norm="unit")
    with pytest.raises(LandscapeError, match="1 or 2 directions"):
        Directions((), {})


def test_digest_changes_with_content(tiny_mlp):
    w = named_tensors(tiny_mlp)
    a = random_directions(w, seeds=0)
    b = random_directions(w, seeds=0)
    c = random_directions(w, seeds=1)
    assert a.digest() == b.digest() != c.digest()


def test_check_spanning_refuses_zero_nonfinite_and_collinear(tiny_mlp):
    w = named_tensors(tiny_mlp)
    dx, dy = random_directions(w, seeds=[0, 1]).vectors
    check_spanning((dx, dy))  # two random directions are fine
    zero = {k: torch.zeros_like(v) for k, v in w.items()}
    with pytest.raises(LandscapeError, match="direction y is zero"):
        check_spanning((dx, zero))
    nan = {k: torch.full_like(v, float("nan")) for k, v in w.items()}
    with pytest.raises(LandscapeError, match="direction x has non-finite entries"):
        check_spanning((nan,))
    for c in (1.0, -3.0):  # identical, and collinear pointing the other way
        with pytest.raises(LandscapeError, match="directions x and y are collinear"):
            check_spanning((dx, {k: c * v for k, v in dx.items()}))


def test_plane_directions_refuse_degenerate_planes(tiny_mlp):
    a = named_tensors(tiny_mlp)
    b = {k: v + 1.0 for k, v in a.items()}
    c = {k: v + 3.0 for k, v in a.items()}  # on the line through a and b (float32 rounding)
    for orthogonal in (False, True):
        with pytest.raises(LandscapeError, match="models a and b are identical"):
            plane_directions(a, a, c, orthogonal=orthogonal)
        with pytest.raises(LandscapeError, match="models a and c are identical"):
            plane_directions(a, b, a, orthogonal=orthogonal)
        with pytest.raises(LandscapeError, match="the three models are collinear"):
            plane_directions(a, b, c, orthogonal=orthogonal)
        with pytest.raises(LandscapeError, match="the three models are collinear"):
            plane_directions(a, b, b, orthogonal=orthogonal)


def test_compute_surface_refuses_a_zero_direction(tiny_mlp, image_data, tmp_path):
    from landscape.surface import compute_surface

    w = named_tensors(tiny_mlp)
    zero = Directions(({k: torch.zeros_like(v) for k, v in w.items()},), {"kind": "random"})
    out = tmp_path / "s.h5"
    with pytest.raises(LandscapeError, match="direction x is zero"):
        compute_surface(tiny_mlp, zero, image_data, x="-1:1:3", out=out, progress=False)
    assert not out.exists()
