"""Tests of landscape.trajectory: PCA of optimizer trajectories (Li et al. 2018, section 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import Tensor, nn

from landscape import storage
from landscape._functional import named_tensors
from landscape.checkpoints import load_checkpoint, save_checkpoint
from landscape.data import DataSpec, TensorData
from landscape.directions import random_directions
from landscape.errors import LandscapeError
from landscape.evaluation import evaluate
from landscape.models import ModelSpec
from landscape.surface import Axis, Surface, compute_surface, load_directions
from landscape.trajectory import Trajectory, TrajectoryPCA, load_trajectory

# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------


def _random_path(n: int, seed: int = 0) -> list[dict[str, Tensor]]:
    """``n`` tensor dicts of a small two-layer network (weights, biases, an int buffer)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        out.append({
            "l1.weight": torch.randn(12, 7, generator=g),
            "l1.bias": torch.randn(12, generator=g),
            "l2.weight": torch.randn(3, 12, generator=g),
            "l2.bias": torch.randn(3, generator=g),
            "steps": torch.tensor(5),
        })
    return out


def _flat(t: dict[str, Tensor], names: list[str]) -> np.ndarray:
    return np.concatenate([t[k].double().reshape(-1).numpy() for k in names])


def _plane_path(
    model: nn.Module, coeffs: np.ndarray, *, ignore: str, seed: int = 1
) -> tuple[list[dict[str, Tensor]], dict[str, Tensor], dict[str, Tensor]]:
    """Checkpoints ``θ_f + a_i u + b_i v`` (u, v random; zero on 1-D tensors for biasbn)."""
    final = {k: v.detach().clone() for k, v in named_tensors(model).items()}
    g = torch.Generator().manual_seed(seed)

    def direction() -> dict[str, Tensor]:
        d = {}
        for k, w in final.items():
            r = torch.randn(w.shape, generator=g, dtype=torch.float64).to(w.dtype)
            d[k] = torch.zeros_like(w) if (ignore == "biasbn" and w.dim() <= 1) else r
        return d

    u, v = direction(), direction()
    path = [
        {k: final[k] + float(a) * u[k] + float(b) * v[k] for k in final} for a, b in coeffs
    ]
    return path + [final], u, v


@pytest.fixture
def mlp64() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()


@pytest.fixture
def data64() -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    return TensorData(x, y, "synthetic")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 3-epoch SGD run of a small MLP on a digits subset (4 checkpoints)."""
    from landscape.training import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    train(
        ModelSpec("mlp", {"width": 16, "depth": 1}),
        DataSpec("digits", subset=400),
        TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=0),
        out,
        progress=False,
    )
    return out


# --------------------------------------------------------------------------------------------
# the PCA itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("include_final", [True, False])
def test_explained_variance_ratio_equals_sklearn(include_final: bool) -> None:
    path = _random_path(9)
    pca = TrajectoryPCA(n_components=3, include_final=include_final).fit(path)
    names = ["l1.weight", "l2.weight"]  # ignore="biasbn": 1-D tensors and ints are out
    assert pca.tensor_names_ == names
    final = _flat(path[-1], names)
    rows = path if include_final else path[:-1]
    matrix = np.stack([_flat(t, names) - final for t in rows])
    ref = PCA(svd_solver="full").fit(matrix)
    np.testing.assert_allclose(
        pca.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(pca.singular_values_, ref.singular_values_, rtol=1e-10,
                               atol=1e-12)
    for mine, theirs in zip(pca.components_, ref.components_[:3], strict=True):
        sign = np.sign(mine @ theirs)
        np.testing.assert_allclose(mine, sign * theirs, atol=1e-10)
    assert pca.n_samples_ == len(rows)
    assert pca.explained_variance_ratio_.shape == (len(rows),)
    cum = np.cumsum(pca.explained_variance_ratio_)
    k90 = pca.n_components_for_90_
    assert cum[k90 - 1] >= 0.9 - 1e-12 and (k90 == 1 or cum[k90 - 2] < 0.9)


def test_components_are_orthonormal_and_coords_are_projections() -> None:
    path = _random_path(7)
    pca = TrajectoryPCA().fit(path)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(2), atol=1e-12)
    final = _flat(path[-1], pca.tensor_names_)
    expected = np.stack([_flat(t, pca.tensor_names_) - final for t in path]) @ pca.components_.T
    np.testing.assert_allclose(pca.coords_, expected, atol=1e-10)
    np.testing.assert_allclose(pca.transform(path), pca.coords_, atol=1e-10)


def test_final_model_projects_to_exactly_origin() -> None:
    pca = TrajectoryPCA().fit(_random_path(6))
    assert pca.coords_.shape == (6, 2)
    assert np.array_equal(pca.coords_[-1], [0.0, 0.0])
    assert np.all(pca.coords_[:-1] != 0)


@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_plane_trajectory_is_captured_completely(mlp64: nn.Module, ignore: str) -> None:
    coeffs = np.array([[3.0, -2.0], [2.5, 0.5], [1.0, 1.5], [0.2, -0.7], [-0.4, 0.3]])
    path, _, _ = _plane_path(mlp64, coeffs, ignore=ignore)
    pca = TrajectoryPCA(ignore=ignore).fit(path)
    assert pca.explained_variance_ratio_[:2].sum() >= 1 - 1e-9
    assert pca.n_components_for_90_ <= 2
    final = _flat(pca.final_, pca.tensor_names_)
    for theta, c in zip(path, pca.coords_, strict=True):
        np.testing.assert_allclose(final + c @ pca.components_, _flat(theta, pca.tensor_names_),
                                   atol=1e-10)
    np.testing.assert_allclose(pca.step_capture_, 1.0, atol=1e-9)
    assert pca.path_capture_ == pytest.approx(1.0, abs=1e-9)
    assert pca.step_capture_.shape == (len(coeffs),)


def test_ignore_biasbn_zeroes_one_dimensional_entries() -> None:
    path = _random_path(6)
    pca = TrajectoryPCA(ignore="biasbn").fit(path)
    for vec in pca.pca_directions_.vectors:
        for k in ("l1.bias", "l2.bias", "steps"):
            assert not torch.any(vec[k] != 0), k
        assert vec["steps"].dtype == torch.int64
        assert torch.any(vec["l1.weight"] != 0)
        norm = sum(float(vec[k].double().pow(2).sum()) for k in ("l1.weight", "l2.weight"))
        assert norm == pytest.approx(1.0, abs=1e-6)  # unit norm (float32 tensors)
    full = TrajectoryPCA(ignore="none").fit(path)
    assert full.tensor_names_ == ["l1.weight", "l1.bias", "l2.weight", "l2.bias"]
    assert torch.any(full.pca_directions_.vectors[0]["l1.bias"] != 0)
    assert not torch.any(full.pca_directions_.vectors[0]["steps"] != 0)  # ints never move


def test_pca_directions_recipe() -> None:
    pca = TrajectoryPCA(what="weights").fit(_random_path(5))
    d = pca.pca_directions_
    assert d is pca.directions_ and d.ndim == 2
    r = d.recipe
    assert r["kind"] == "pca" and r["norm"] == "none" and r["ignore"] == "biasbn"
    assert r["what"] == "weights" and r["n_components"] == 2
    assert r["explained_variance_ratio"] == pytest.approx(
        pca.explained_variance_ratio_[:2].tolist()
    )
    assert len(r["checkpoints"]) == 5
    one = TrajectoryPCA(n_components=1).fit(_random_path(5))
    assert one.pca_directions_.ndim == 1 and one.coords_.shape == (5, 1)


def test_surface_at_projected_point_equals_checkpoint_loss(
    mlp64: nn.Module, data64: TensorData
) -> None:
    coeffs = np.array([[1.5, -1.0], [1.2, 0.4], [0.6, 0.9], [0.1, -0.3]])
    path, _, _ = _plane_path(mlp64, coeffs, ignore="biasbn")
    pca = TrajectoryPCA().fit(path)
    for j in (0, 2):
        a, b = (float(c) for c in pca.coords_[j])
        surf = compute_surface(
            mlp64, pca.pca_directions_, {"train": data64}, x=Axis(a, a, 1), y=Axis(b, b, 1),
            base=pca.final_, progress=False,
        )
        own = evaluate(mlp64, data64, path[j]).loss
        assert surf["train_loss"][0, 0] == pytest.approx(own, rel=1e-6)
        assert own != pytest.approx(evaluate(mlp64, data64).loss, rel=1e-3)  # not the final


# --------------------------------------------------------------------------------------------
# inputs, errors
# --------------------------------------------------------------------------------------------


def test_too_few_checkpoints() -> None:
    with pytest.raises(LandscapeError, match="at least 3 checkpoints"):
        TrajectoryPCA().fit(_random_path(2))


def test_mismatched_keys_and_shapes() -> None:
    path = _random_path(4)
    path[1] = {k: v for k, v in path[1].items() if k != "l2.weight"}
    with pytest.raises(LandscapeError, match=r"checkpoint #1 .*missing \['l2.weight'\]"):
        TrajectoryPCA().fit(path)
    path = _random_path(4)
    path[0]["l1.weight"] = torch.zeros(12, 8)
    with pytest.raises(LandscapeError, match="'l1.weight' has shape"):
        TrajectoryPCA().fit(path)
    path = _random_path(4)
    path[2]["l1.weight"][0, 0] = float("nan")
    with pytest.raises(LandscapeError, match="NaN"):
        TrajectoryPCA().fit(path)


def test_degenerate_paths() -> None:
    same = [_random_path(1)[0]] * 4
    with pytest.raises(LandscapeError, match="do not move"):
        TrajectoryPCA().fit(same)
    # without the final row, 3 checkpoints leave 2 rows: one dimension after centring
    with pytest.raises(LandscapeError, match="span only 1 dimension"):
        TrajectoryPCA(include_final=False).fit(_random_path(3))
    assert TrajectoryPCA().fit(_random_path(3)).coords_.shape == (3, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_components": 0}, "'n_components' parameter"),
        ({"ignore": "bias"}, "'ignore' parameter"),
        ({"what": "params"}, "'what' parameter"),
        ({"include_final": 1}, "'include_final' parameter"),
    ],
)
def test_parameter_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(LandscapeError, match=match):
        TrajectoryPCA(**kwargs)


def test_bad_inputs_and_unfitted(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="not fitted"):
        TrajectoryPCA().save(tmp_path / "t.h5")
    with pytest.raises(LandscapeError, match="not a dict of tensors"):
        TrajectoryPCA().fit([{"a": 1}] * 3)
    with pytest.raises(LandscapeError, match="is a int"):
        TrajectoryPCA().fit([1, 2, 3])
    with pytest.raises(LandscapeError, match="not a directory"):
        TrajectoryPCA().fit(str(tmp_path / "nothing"))


# --------------------------------------------------------------------------------------------
# checkpoint files and training runs
# --------------------------------------------------------------------------------------------


def test_fit_checkpoint_files_equals_fit_tensors(tmp_path: Path) -> None:
    spec = ModelSpec("mlp", {"width": 8, "depth": 1, "batchnorm": True})
    files, dicts = [], []
    for i in range(4):
        torch.manual_seed(i)
        net = spec.build()
        files.append(save_checkpoint(tmp_path / f"epoch_{i:04d}.pt", net, spec, epoch=i))
        dicts.append({k: v.detach().clone() for k, v in net.named_parameters()})
    from_files = TrajectoryPCA().fit(files)
    from_dicts = TrajectoryPCA().fit(dicts)
    np.testing.assert_allclose(from_files.coords_, from_dicts.coords_, atol=1e-12)
    assert from_files.epochs_.tolist() == [0, 1, 2, 3]
    assert from_dicts.epochs_ is None
    rec = from_files.checkpoints_[-1]
    assert rec["path"] == str(files[-1]) and len(rec["sha256"]) == 64
    # Checkpoint objects, and what="states" (BatchNorm running stats are 1-D: left out)
    ckpts = [load_checkpoint(f) for f in files]
    states = TrajectoryPCA(what="states").fit(ckpts)
    assert states.tensor_names_ == from_files.tensor_names_
    full = TrajectoryPCA(what="states", ignore="none").fit(ckpts)
    assert any("running_mean" in k for k in full.tensor_names_)
    assert not any("num_batches_tracked" in k for k in full.tensor_names_)
    # a directory of epoch_NNNN.pt files is a run
    np.testing.assert_allclose(TrajectoryPCA().fit(tmp_path).coords_, from_files.coords_)


def test_real_training_run(real_run: Path) -> None:
    pca = TrajectoryPCA().fit_run(real_run)
    assert pca.n_checkpoints_ == 4 and pca.epochs_.tolist() == [0, 1, 2, 3]
    pc12 = pca.explained_variance_ratio_[:2].sum()
    assert 0 < pc12 <= 1 + 1e-12
    assert np.array_equal(pca.coords_[-1], [0.0, 0.0])
    assert np.all(np.isfinite(pca.step_capture_)) and np.all(pca.step_capture_ <= 1 + 1e-9)
    # random filter-normalized directions see almost nothing of the path (Li et al., sec. 7)
    assert pca.random_path_capture_ < 0.05 * pca.path_capture_
    assert np.all(pca.random_capture_ < 0.1 * pca.step_capture_)
    assert pca.random_variance_ratio_ < 0.05 * pc12


def test_random_baseline_uses_filter_normalized_directions() -> None:
    path = _random_path(5)
    pca = TrajectoryPCA(seed=3).fit(path)
    rd = random_directions(path[-1], seeds=[3, 4])
    basis = np.stack([_flat(v, pca.tensor_names_) for v in rd.vectors])
    q, _ = np.linalg.qr(basis.T)
    final = _flat(path[-1], pca.tensor_names_)
    steps = np.diff(np.stack([_flat(t, pca.tensor_names_) - final for t in path]), axis=0)
    expected = np.sum((steps @ q) ** 2, axis=1) / np.sum(steps**2, axis=1)
    np.testing.assert_allclose(pca.random_capture_, expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path, real_run: Path) -> None:
    pca = TrajectoryPCA().fit_run(real_run)
    out = tmp_path / "traj.h5"
    pca.save(out)
    t = load_trajectory(out)
    assert isinstance(t, Trajectory)
    np.testing.assert_array_equal(t.coords, pca.coords_)
    np.testing.assert_array_equal(t.explained_variance_ratio, pca.explained_variance_ratio_)
    np.testing.assert_array_equal(t.singular_values, pca.singular_values_)
    np.testing.assert_array_equal(t.step_capture, pca.step_capture_)
    np.testing.assert_array_equal(t.random_capture, pca.random_capture_)
    np.testing.assert_array_equal(t.epochs, [0, 1, 2, 3])
    assert t.n_components == 2 and t.n_components_for_90 == pca.n_components_for_90_
    assert t.summary() == pca.summary()
    assert [c["sha256"] for c in t.checkpoints] == [c["sha256"] for c in pca.checkpoints_]
    assert t.recipe["kind"] == "pca" and t.recipe["random_baseline"]["seeds"] == [0, 1]
    # the file is a direction file for `landscape surface --dir-file`
    d = load_directions(out)
    assert d.recipe == pca.pca_directions_.recipe
    assert d.digest() == pca.pca_directions_.digest()
    assert t.directions is not None and t.directions.digest() == d.digest()
    g = storage.read_group(out, "trajectory")
    assert g.datasets["coords"].shape == (4, 2)
    assert "recipe" in g.attrs and "explained_variance_ratio" in g.attrs


def test_save_keeps_matching_surface_and_refuses_stale_one(
    tmp_path: Path, mlp64: nn.Module, data64: TensorData
) -> None:
    path, _, _ = _plane_path(mlp64, np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]),
                             ignore="biasbn")
    pca = TrajectoryPCA().fit(path)
    out = tmp_path / "both.h5"
    compute_surface(mlp64, pca.pca_directions_, {"train": data64}, x="-1:1:3", y="-1:1:3",
                    base=pca.final_, out=out, progress=False)
    pca.save(out)  # same directions: the surface stays valid and is kept
    assert Surface.load(out).complete and load_trajectory(out).n_checkpoints == 4
    other = TrajectoryPCA(ignore="none").fit(path)
    with pytest.raises(LandscapeError, match="surface computed along other directions"):
        other.save(out)
    other.save(out, overwrite=True)
    assert storage.list_groups(out) == ["directions", "trajectory"]


def test_load_trajectory_errors(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="does not exist"):
        load_trajectory(tmp_path / "missing.h5")
    f = tmp_path / "dirs.h5"
    storage.update_file(f, {"other": storage.Group(attrs={"a": 1})})
    with pytest.raises(LandscapeError, match="no trajectory"):
        load_trajectory(f)


@pytest.mark.parametrize("seed", range(12))
def test_null_singular_value_is_resolved_to_machine_precision(seed: int) -> None:
    """Centring n rows leaves a null direction. sqrt of a Gram eigenvalue puts it anywhere in
    [0, ~1e-7]·σ₁ depending on the rounding of eigh (the sklearn comparison above failed on
    some machines); the projection norm ‖X_cᵀu‖ resolves it like an SVD: ~eps·σ₁."""
    pca = TrajectoryPCA(n_components=2, include_final=False).fit(_random_path(9, seed=seed))
    s = pca.singular_values_
    assert s[-1] <= 1e-13 * s[0], s
    rows = np.stack([np.concatenate([t["l1.weight"].reshape(-1), t["l2.weight"].reshape(-1)])
                     for t in _random_path(9, seed=seed)]).astype(np.float64)
    x = rows[:-1] - rows[-1]
    ref = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(s[:-1], ref[:-1], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# parameter selection and checkpoint order
# --------------------------------------------------------------------------------------------


def _mlp_files(tmp_path: Path, n: int = 4) -> tuple[ModelSpec, list[Path]]:
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    files = []
    for i in range(n):
        torch.manual_seed(i)
        files.append(save_checkpoint(tmp_path / f"c{i}.pt", spec.build(), spec, epoch=i))
    return spec, files


def test_out_of_order_checkpoints_are_sorted_by_recorded_epoch(tmp_path: Path) -> None:
    _, files = _mlp_files(tmp_path)
    ordered = TrajectoryPCA().fit(files)
    shuffled = [files[2], files[0], files[3], files[1]]
    with pytest.warns(UserWarning, match="not in training order"):
        pca = TrajectoryPCA().fit(shuffled)
    assert pca.epochs_.tolist() == [0, 1, 2, 3]
    assert pca.checkpoints_[-1]["path"] == str(files[3])  # the final model: the last epoch
    np.testing.assert_allclose(pca.coords_, ordered.coords_, atol=1e-12)


def test_lightning_run_directory_is_a_run(tmp_path: Path) -> None:
    spec, files = _mlp_files(tmp_path / "src")
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    names = ["last.ckpt", "epoch=0-step=5.ckpt", "b.ckpt", "a.ckpt"]  # shuffled on purpose
    for i, (name, f) in enumerate(zip([names[1], names[3], names[2], names[0]], files,
                                      strict=True)):
        sd = load_checkpoint(f).model.state_dict()
        torch.save({"epoch": i, "global_step": 5 * (i + 1),
                    "state_dict": {"model." + k: v for k, v in sd.items()}}, run / name)
    pca = TrajectoryPCA().fit(tmp_path / "run", model=spec)
    assert pca.epochs_.tolist() == [0, 1, 2, 3]
    assert [Path(r["path"]).name for r in pca.checkpoints_] == [
        "epoch=0-step=5.ckpt", "a.ckpt", "b.ckpt", "last.ckpt"]
    np.testing.assert_allclose(pca.coords_, TrajectoryPCA().fit(files).coords_, atol=1e-12)


def test_trajectory_selection_follows_frozen_and_globs(tmp_path: Path) -> None:
    spec, files = _mlp_files(tmp_path)
    nets = [load_checkpoint(f).model for f in files]
    for m in nets:
        m.requires_grad_(True)
    first = next(iter(named_tensors(nets[0])))
    for m in nets:
        dict(m.named_parameters())[first].requires_grad_(False)
    pca = TrajectoryPCA().fit([load_checkpoint(f, model=m) for f, m in zip(files, nets,
                                                                              strict=True)])
    assert first not in pca.tensor_names_
    assert "include_frozen" not in pca.pca_directions_.recipe
    assert torch.count_nonzero(pca.pca_directions_.vectors[0][first]) == 0
    full = TrajectoryPCA(include_frozen=True).fit(
        [load_checkpoint(f, model=m) for f, m in zip(files, nets, strict=True)])
    assert first in full.tensor_names_ and full.pca_directions_.recipe["include_frozen"]
    last = [k for k in named_tensors(nets[0]) if k.endswith("weight")][-1]
    only = TrajectoryPCA(params=last).fit(files)
    assert only.tensor_names_ == [last]
    assert only.pca_directions_.recipe["params"] == [last]
    with pytest.raises(LandscapeError, match="matches no tensor"):
        TrajectoryPCA(exclude="nothing.*").fit(files)


def test_huggingface_trainer_run_is_a_run(tmp_path: Path) -> None:
    import json

    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=20, n_positions=8)
    dicts = []
    for step in (2, 10, 30):  # "checkpoint-10" sorts before "checkpoint-2" as a string
        torch.manual_seed(step)
        m = transformers.GPT2LMHeadModel(cfg)
        d = tmp_path / f"checkpoint-{step}"
        m.save_pretrained(d)
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step, "epoch": 1.5}))
        dicts.append(named_tensors(m))
    pca = TrajectoryPCA().fit(tmp_path)
    assert [Path(r["path"]).name for r in pca.checkpoints_] == [
        "checkpoint-2", "checkpoint-10", "checkpoint-30"]
    assert "lm_head.weight" not in pca.final_  # tied to the embedding: one tensor
    np.testing.assert_allclose(pca.coords_, TrajectoryPCA().fit(dicts).coords_, atol=1e-10)
