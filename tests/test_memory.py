"""The memory model (landscape.memory): exact parameter and direction storage terms, the
activation probe against a closed form, Lanczos vectors against what the solver allocates,
the refusal of runs that will not fit (one line, exit 2 from the CLI), and surfaces with
directions held in bfloat16 against the float32 ones within the rounding bfloat16 implies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from landscape.cli.main import main
from torch import nn

import landscape._grid as grid
from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec, TensorData, load_data
from landscape.directions import Directions, random_directions
from landscape.errors import LandscapeError
from landscape.hessian import HessianOperator, compute_curvature, top_eigen
from landscape.memory import (
    _LiveBytes,
    curvature_memory,
    forward_peak_bytes,
    hvp_memory,
    lanczos_vector_bytes,
    model_bytes,
    surface_memory,
    tensor_bytes,
    trajectory_memory,
)
from landscape.models import ModelSpec
from landscape.surface import Surface, compute_surface

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),
]

BF16_UNIT = 2.0**-8  # |round_bf16(x) - x| <= 2**-8 |x| (8 significand bits, round to nearest)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def _data(n: int = 64) -> TensorData:
    g = torch.Generator().manual_seed(1)
    return TensorData(torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g),
                      "blobs")


N_PARAMS = 8 * 16 + 16 + 16 * 3 + 3  # 195


def test_parameter_and_direction_bytes_are_exact():
    m = _mlp()
    assert model_bytes(m) == 4 * N_PARAMS
    assert model_bytes(m, torch.float64) == 8 * N_PARAMS
    assert model_bytes(m, torch.bfloat16) == 2 * N_PARAMS
    d = random_directions(m, seeds=0)
    est = surface_memory(m, d.vectors, None, activations=0)
    assert est.terms["model"] == est.terms["evaluation copy"] == 4 * N_PARAMS
    assert est.terms["saved origin"] == 4 * N_PARAMS
    assert est.terms["directions"] == 2 * 4 * N_PARAMS
    assert est.held == ("model", "directions")
    half = surface_memory(m, d.vectors, None, activations=0, direction_dtype=torch.bfloat16)
    assert half.terms["directions"] == 2 * 2 * N_PARAMS  # exactly half
    assert half.total == est.total - 2 * 2 * N_PARAMS - 2 * N_PARAMS * 2  # and the file image
    assert "directions" not in half.held  # converted copies are still to be made


def test_tied_and_aliased_tensors_count_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    m = nn.ModuleDict({"emb": emb, "head": head})
    assert model_bytes(m) == 10 * 4 * 4
    w = torch.zeros(6)
    assert tensor_bytes([w, w[:3].view(3), torch.zeros(2, dtype=torch.int64)]) == 6 * 4 + 3 * 4 \
        + 16  # a view of other shape is counted by its own size; integers keep their dtype


def test_forward_peak_is_the_largest_live_set():
    """Linear -> ReLU -> Linear: the peak is the first layer's output and the ReLU's, both
    alive at the ReLU: 2 x batch x width x 4 bytes, exactly, at any batch size."""
    m = nn.Sequential(nn.Linear(100, 400), nn.ReLU(), nn.Linear(400, 10))
    x, y = torch.randn(64, 100), torch.zeros(64, dtype=torch.long)
    assert forward_peak_bytes(m, (x, y)) == 2 * 64 * 400 * 4
    assert forward_peak_bytes(m, (x, y), batch_size=256) == 2 * 256 * 400 * 4
    assert forward_peak_bytes(m, (x, y), probe_samples=3) == 2 * 64 * 400 * 4
    assert forward_peak_bytes(m, (x, y), dtype=torch.float64) == 2 * 2 * 64 * 400 * 4
    m.train()
    forward_peak_bytes(m, (x, y))
    assert m.training and all(c.training for c in m)  # modes restored


@pytest.mark.filterwarnings("ignore:1 of 1 eigenpairs did not reach")
def test_lanczos_vectors_are_what_the_solver_allocates():
    """Bytes of every tensor the solver creates and holds at once (the dispatch mode sees
    them) against lanczos_vector_bytes: the basis dominates and the count is within 10%."""
    n, ncv = 20_000, 8
    diag = torch.linspace(1.0, 2.0, n, dtype=torch.float64)

    class Diag:
        shape, dtype, device = (n, n), torch.float64, torch.device("cpu")

        def __matmul__(self, v):
            return diag[:, None] * v if v.ndim == 2 else diag * v

    mode = _LiveBytes()
    with mode:
        top_eigen(Diag(), 1, ncv=ncv, max_hvp=3 * ncv, tol=1e-14)
    want = lanczos_vector_bytes(n, ncv, 1, solver_dtype=torch.float64,
                                hvp_dtype=torch.float64)
    assert abs(mode.peak - want) <= 0.1 * want, (mode.peak, want)
    assert lanczos_vector_bytes(n, ncv, solver_dtype=torch.float32, hvp_dtype=torch.float32) \
        < 0.55 * want


def test_curvature_terms_and_autograd_vs_finite_differences():
    m, data = _mlp(), _data()
    auto = HessianOperator(m, data, batch_size=64)
    fd = HessianOperator(m, data, batch_size=64, hvp="finite-difference")
    est = curvature_memory(auto, m, top_k=2, ncv=6, solver_dtype=torch.float64)
    assert est.terms["model"] == est.terms["operator copy"] == 4 * N_PARAMS
    assert est.terms["solver vectors"] == lanczos_vector_bytes(N_PARAMS, 6, 2)
    # a single-backward graph is smaller than the double-backward one, even with the two
    # shifted points and gradients of the central difference
    g_auto = hvp_memory(auto) - 2 * 4 * N_PARAMS
    g_fd = hvp_memory(fd) - 6 * 4 * N_PARAMS
    assert 0 < g_fd < g_auto


def test_trajectory_terms():
    est = trajectory_memory(1000, 3, 4000, n_components=2)
    assert est.terms["difference matrix"] == 8 * 3 * 1000
    assert est.terms["float64 vectors"] == 8 * 14 * 1000
    assert est.total == 4000 + 24_000 + 112_000


@pytest.fixture
def little_memory(monkeypatch):
    """This machine reports 1 KiB available."""
    monkeypatch.setattr(grid, "available_memory", lambda: 1024)


def test_runs_that_will_not_fit_are_refused(little_memory):
    m, data = _mlp(), _data()
    d = random_directions(m, seeds=0)
    with pytest.raises(LandscapeError) as err:
        compute_surface(m, d, {"train": data}, x="-1:1:3", y="-1:1:3", batch_size=64)
    msg = str(err.value)
    assert "predicted to peak" in msg and "check_memory=False" in msg
    assert "direction_dtype" in msg and "--no-" not in msg and "--direction" not in msg
    s = compute_surface(m, d, {"train": data}, x="-1:1:3", y="-1:1:3", batch_size=64,
                        check_memory=False)
    assert s.n_done == 9
    with pytest.raises(LandscapeError, match="check_memory=False"):
        compute_curvature(m, data, top_k=1)
    assert compute_curvature(m, data, top_k=1, check_memory=False).n_hvp > 0


def test_cli_refuses_in_one_line_and_runs_when_told(little_memory, tmp_path, capsys):
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "m.pt", spec.build(), spec,
                         data=DataSpec("digits", subset=40).to_dict())
    base = [str(ck), "--x=-1:1:2", "--y=-1:1:2", "--no-progress"]
    assert main(["surface", *base, "--out", str(tmp_path / "s.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "predicted to peak" in err, err
    assert "--no-memory-check to run it anyway" in err and "--direction-dtype bfloat16" in err
    assert main(["surface", *base, "--out", str(tmp_path / "s.h5"), "--no-memory-check",
                 "--direction-dtype", "bfloat16"]) == 0
    assert Surface.load(tmp_path / "s.h5").recipe["direction_dtype"] == "bfloat16"
    assert main(["hessian", str(ck), "--top-k", "1", "--out", str(tmp_path / "h.h5")]) == 2
    err = capsys.readouterr().err
    assert "predicted to peak" in err and "--solver-dtype float32" in err and "--ncv N" in err


def _hessian_norm(m: nn.Module, point: dict, data: TensorData) -> float:
    """||H||_2 of the loss at ``point``, from the dense float64 Hessian."""
    names = list(point)
    shapes = [point[k].shape for k in names]
    flat = torch.cat([point[k].detach().double().reshape(-1) for k in names])
    m64 = _mlp().double()

    def f(v):
        parts, i = {}, 0
        for k, s in zip(names, shapes, strict=True):
            parts[k] = v[i:i + s.numel()].reshape(s)
            i += s.numel()
        out = torch.func.functional_call(m64, parts, (data.x.double(),))
        return nn.functional.cross_entropy(out, data.y)

    h = torch.func.hessian(f)(flat)
    return float(torch.linalg.eigvalsh(h).abs().max())


def test_bfloat16_directions_within_the_rounding_they_imply(tmp_path):
    """A surface along directions held in bfloat16 is the float32 surface along the rounded
    directions, bit for bit; against the unrounded ones every value is within
    ``|L(a, b) - L32(a, b)| <= ||grad L(p)|| ||delta|| + 0.5 L2 ||delta||^2`` with
    ``delta = a (d1 - round(d1)) + b (d2 - round(d2))``, ``||delta|| <= 2**-8 (|a| ||d1|| +
    |b| ||d2||)``; the gradient term dominates (float32 evaluation noise: 1e-6)."""
    m, data = _mlp(), _data()
    d = random_directions(m, seeds=0)
    grid_x = grid_y = "-1:1:5"
    full = compute_surface(m, d, {"train": data}, x=grid_x, y=grid_y, batch_size=64)
    half = compute_surface(m, d, {"train": data}, x=grid_x, y=grid_y, batch_size=64,
                           direction_dtype=torch.bfloat16, out=tmp_path / "h.h5")
    rounded = Directions(tuple({k: v.to(torch.bfloat16).float() for k, v in vec.items()}
                               for vec in d.vectors), d.recipe)
    along = compute_surface(m, rounded, {"train": data}, x=grid_x, y=grid_y, batch_size=64)
    np.testing.assert_array_equal(half["train_loss"], along["train_loss"])
    for vec, r in zip(d.vectors, rounded.vectors, strict=True):
        for k in vec:
            assert torch.all((vec[k] - r[k]).abs() <= BF16_UNIT * vec[k].abs())
    base = {k: v.detach() for k, v in m.named_parameters()}
    diffs = [{k: vec[k] - r[k] for k in vec} for vec, r in zip(d.vectors, rounded.vectors,
                                                               strict=True)]
    worst = 0.0
    for iy, b in enumerate(full.y):
        for ix, a in enumerate(full.x):
            delta = torch.cat([(a * diffs[0][k] + b * diffs[1][k]).reshape(-1) for k in base])
            bound_norm = BF16_UNIT * sum(
                abs(c) * float(torch.cat([v.reshape(-1) for v in vec.values()]).norm())
                for c, vec in zip((a, b), d.vectors, strict=True))
            assert float(delta.norm()) <= bound_norm * (1 + 1e-6)
            point = {k: (base[k] + a * d.vectors[0][k] + b * d.vectors[1][k]).requires_grad_()
                     for k in base}
            loss = nn.functional.cross_entropy(
                torch.func.functional_call(m, point, (data.x,)), data.y)
            grads = torch.autograd.grad(loss, list(point.values()))
            gnorm = float(torch.cat([g.reshape(-1) for g in grads]).norm())
            curv = 2 * _hessian_norm(m, point, data)  # 2x: the segment is ~1e-3 long
            bound = gnorm * float(delta.norm()) + 0.5 * curv * float(delta.norm()) ** 2 + 1e-6
            diff = abs(half["train_loss"][iy, ix] - full["train_loss"][iy, ix])
            assert diff <= bound, (a, b, diff, bound)
            worst = max(worst, diff)
    assert worst > 0  # the rounding is really there
    # stored as bfloat16, recorded in the recipe, and resumed from the file
    again = Surface.load(tmp_path / "h.h5")
    assert again.recipe["direction_dtype"] == "bfloat16"
    assert all(v.dtype == torch.bfloat16 for v in again.directions.vectors[0].values())
    assert "direction_dtype" not in full.recipe
    resumed = compute_surface(m, d, {"train": data}, x=grid_x, y=grid_y, batch_size=64,
                              direction_dtype=torch.bfloat16, out=tmp_path / "h.h5")
    np.testing.assert_array_equal(resumed["train_loss"], half["train_loss"])
    same = compute_surface(m, d, {"train": data}, x=grid_x, y=grid_y, batch_size=64,
                           direction_dtype=torch.float32)
    assert "direction_dtype" not in same.recipe  # the model's dtype: not recorded
    np.testing.assert_array_equal(same["train_loss"], full["train_loss"])


def test_digits_surface_probe_is_cheap_and_positive():
    train = load_data(DataSpec("digits", subset=40), "train")
    m = ModelSpec("mlp", {"width": 8, "depth": 1}).build()
    d = random_directions(m, seeds=0)
    from landscape.surface import surface_memory_estimate

    est = surface_memory_estimate(m, d, {"train": train}, batch_size=40)
    assert est.terms["activations or file image"] >= est.terms["directions"]
