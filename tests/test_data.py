"""Tests for landscape.data: built-in loaders, file formats, custom loaders, shape checks."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landscape.data import (
    DataSpec,
    TensorData,
    available_datasets,
    check_compatible,
    load_data,
    load_splits,
)
from landscape.errors import LandscapeError

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def digits() -> tuple[TensorData, TensorData]:
    return load_splits("digits")


@pytest.fixture
def tests_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``tests._datasets`` importable whatever pytest's import mode put on sys.path."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def test_available_datasets() -> None:
    assert available_datasets() == ["cifar10", "digits", "digits-denoise", "mnist", "modadd"]


def test_digits_shapes_and_ranges(digits: tuple[TensorData, TensorData]) -> None:
    train, test = digits
    assert (len(train), len(test)) == (1437, 360)
    assert train.x.shape == (1437, 1, 8, 8) and test.x.shape == (360, 1, 8, 8)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert train.input_shape == (1, 8, 8)
    assert train.num_classes == 10 and test.num_classes == 10
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert train.name == "digits"


def test_digits_split_is_deterministic_and_stratified(
    digits: tuple[TensorData, TensorData],
) -> None:
    from sklearn.datasets import load_digits

    train, test = digits
    again_train, again_test = load_splits(DataSpec("digits"))
    assert torch.equal(train.x, again_train.x) and torch.equal(train.y, again_train.y)
    assert torch.equal(test.x, again_test.x) and torch.equal(test.y, again_test.y)
    assert torch.equal(load_data("digits", "test").y, test.y)

    all_labels = torch.from_numpy(load_digits().target)
    full = torch.bincount(all_labels, minlength=10)
    assert torch.equal(torch.bincount(train.y) + torch.bincount(test.y), full)
    # stratified: each class's share of the test split is within one sample of 360/1797
    expected = full.double() * 360 / 1797
    assert (torch.bincount(test.y).double() - expected).abs().max() <= 1.0


def test_digits_cache_equals_scikit_learn_and_survives_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The on-disk copy of the digits split is scikit-learn's split bit for bit, whether it is
    written, read back, damaged (recomputed), unwritable (skipped) or switched off."""
    from landscape.data import sources

    fresh = sources._digits_split()
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    first = sources._digits_arrays()  # computed and written
    files = list((tmp_path / "cache").glob("digits-split-*.npz"))
    assert len(files) == 1
    second = sources._digits_arrays()  # read back
    for arrays in (first, second):
        assert sorted(arrays) == sorted(fresh)
        for k in fresh:
            assert arrays[k].dtype == fresh[k].dtype and np.array_equal(arrays[k], fresh[k])
    train, test = load_splits("digits")
    assert np.array_equal(train.x.numpy(), fresh["train_x"])
    assert np.array_equal(test.y.numpy(), fresh["test_y"])

    files[0].write_bytes(b"not a zip file")  # damaged: recomputed and rewritten
    assert np.array_equal(sources._digits_arrays()["train_y"], fresh["train_y"])
    assert np.array_equal(np.load(files[0])["train_y"], fresh["train_y"])
    np.savez(files[0], train_x=fresh["train_x"][:5])  # wrong content: not used
    assert np.array_equal(sources._digits_arrays()["train_x"], fresh["train_x"])

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would go")
    monkeypatch.setenv("LANDSCAPE_CACHE", str(blocked / "cache"))
    assert np.array_equal(sources._digits_arrays()["test_x"], fresh["test_x"])
    monkeypatch.setenv("LANDSCAPE_CACHE", "")
    assert sources.cache_dir() is None
    assert np.array_equal(sources._digits_arrays()["test_y"], fresh["test_y"])


def test_digits_rejects_options() -> None:
    with pytest.raises(LandscapeError, match="takes no options"):
        load_data(DataSpec("digits", kwargs={"normalize": False}))


def test_bad_split_and_unknown_name() -> None:
    with pytest.raises(LandscapeError, match="'split'"):
        load_data("digits", "val")
    with pytest.raises(LandscapeError) as info:
        load_data("imagenet")
    msg = str(info.value)
    assert "'digits'" in msg and "'cifar10'" in msg and "'mnist'" in msg
    assert "package.module:function" in msg and "'imagenet'" in msg
    assert "\n" not in msg
    with pytest.raises(LandscapeError):
        load_data(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# TensorData
# --------------------------------------------------------------------------------------------


def _ramp(n: int = 50) -> TensorData:
    return TensorData(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n) % 4, "r")


def test_subset_is_deterministic_sorted_and_bounded() -> None:
    data = _ramp(50)
    a, b = data.subset(20), data.subset(20)
    assert len(a) == 20 and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    idx = a.x[:, 0].long()
    assert torch.all(idx[1:] > idx[:-1])  # back in the original order
    assert torch.equal(a.y, idx % 4)  # rows stay paired
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(idx, torch.randperm(50, generator=gen)[:20].sort().values)
    assert data.subset(None) is data and data.subset(50) is data and data.subset(99) is data
    for bad in (0, -3, 2.5, "10", True):
        with pytest.raises(LandscapeError, match="'subset'"):
            data.subset(bad)  # type: ignore[arg-type]


def test_subset_keeps_num_classes(digits: tuple[TensorData, TensorData]) -> None:
    train, _ = digits
    tiny = train.subset(3)
    assert len(tiny) == 3 and tiny.num_classes == 10
    spec = DataSpec("digits", subset=100)
    assert len(load_data(spec)) == 100 and len(load_data(spec, "test")) == 100
    assert torch.equal(load_data(spec).x, train.subset(100).x)


def test_batches_cover_everything_once_in_order() -> None:
    data = _ramp(23)
    batches = list(data.batches(5))
    assert [len(xb) for xb, _ in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([xb for xb, _ in batches]), data.x)
    assert torch.equal(torch.cat([yb for _, yb in batches]), data.y)
    assert len(list(data.batches(100))) == 1
    with pytest.raises(LandscapeError, match="'batch_size'"):
        data.batches(0)  # raised at the call, before iterating


def test_tensordata_to_num_classes_and_validation() -> None:
    data = _ramp(10)
    d64 = data.to("cpu", dtype=torch.float64)
    assert d64.x.dtype == torch.float64 and d64.y.dtype == torch.int64 and d64.name == "r"
    assert data.x.dtype == torch.float32  # original untouched
    assert data.num_classes == 4
    reg = TensorData(torch.zeros(4, 2), torch.zeros(4), "reg")
    assert reg.num_classes is None
    assert "n=10" in repr(data)
    with pytest.raises(LandscapeError, match="same length"):
        TensorData(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), "bad")
    with pytest.raises(LandscapeError, match="torch tensors"):
        TensorData(np.zeros((3, 2)), torch.zeros(3), "bad")  # type: ignore[arg-type]


def test_dataspec_roundtrip_and_validation(tmp_path: Path) -> None:
    spec = DataSpec("cifar10", root=str(tmp_path), subset=64, kwargs={"normalize": False})
    d = spec.to_dict()
    assert d == {
        "name": "cifar10",
        "root": str(tmp_path),
        "subset": 64,
        "kwargs": {"normalize": False},
    }
    assert DataSpec.from_dict(d) == spec
    assert DataSpec.from_dict({}) == DataSpec()
    assert DataSpec(root=tmp_path).root == str(tmp_path)  # type: ignore[arg-type]
    with pytest.raises(LandscapeError, match="unknown data spec key"):
        DataSpec.from_dict({"name": "digits", "batch": 3})
    with pytest.raises(LandscapeError, match="'subset'"):
        DataSpec("digits", subset=0)
    with pytest.raises(LandscapeError, match="'dataset'"):
        DataSpec("")


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------

_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


class _Py2StylePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes ``bytes`` as Python 2 ``str`` opcodes, like the original CIFAR-10 files."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_str8(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_str8


def _write_cifar(folder: Path, n: int = 20, protocol: int | str = 4) -> dict[str, tuple]:
    """Write the six batches with ``n`` random images each; return their (data, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for k, name in enumerate(_CIFAR_FILES):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [(i + k) % 10 for i in range(n)]
        obj = {b"batch_label": name.encode(), b"data": data, b"labels": labels}
        if protocol == "py2":
            import io

            buf = io.BytesIO()
            _Py2StylePickler(buf, protocol=2).dump(obj)
            raw = buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        else:
            raw = pickle.dumps(obj, protocol=protocol)
        (folder / name).write_bytes(raw)
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("protocol", ["py2", 3, 4, 5])
def test_cifar10_shapes_labels_and_normalization(tmp_path: Path, protocol: int | str) -> None:
    written = _write_cifar(tmp_path, protocol=protocol)
    spec = DataSpec("cifar10", root=str(tmp_path), kwargs={"normalize": False})
    train, test = load_splits(spec)
    assert train.x.shape == (100, 3, 32, 32) and test.x.shape == (20, 3, 32, 32)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert train.num_classes == 10 and train.name == "cifar10"
    raw = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    expected = torch.from_numpy(raw).reshape(-1, 3, 32, 32).float() / 255
    assert torch.allclose(train.x, expected)
    labels = sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.y.tolist() == labels and test.y.tolist() == written["test_batch"][1]

    normed = load_data(DataSpec("cifar10", root=str(tmp_path)), "test")
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    assert torch.allclose(normed.x, (test.x - mean) / std, atol=1e-6)


def test_cifar10_subdirectory_and_options(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-py", n=4)
    data = load_data(DataSpec("cifar10", root=str(tmp_path), subset=7))
    assert data.x.shape == (7, 3, 32, 32)
    with pytest.raises(LandscapeError, match="'normalize'.*bool"):
        load_data(DataSpec("cifar10", root=str(tmp_path), kwargs={"normalize": "no"}))
    with pytest.raises(LandscapeError, match="unknown option"):
        load_data(DataSpec("cifar10", root=str(tmp_path), kwargs={"augment": True}))


def test_cifar10_missing_root_and_files(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="needs a root directory"):
        load_data("cifar10")
    with pytest.raises(LandscapeError, match="not a directory"):
        load_data(DataSpec("cifar10", root=str(tmp_path / "nope")))
    _write_cifar(tmp_path, n=2)
    (tmp_path / "data_batch_3").unlink()
    assert len(load_data(DataSpec("cifar10", root=str(tmp_path)), "test")) == 2
    with pytest.raises(LandscapeError) as info:
        load_data(DataSpec("cifar10", root=str(tmp_path)))
    msg = str(info.value)
    assert str(tmp_path) in msg and "data_batch_3" in msg and "test_batch" in msg


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class _RunsEval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))


class _NumpyLoad:
    def __reduce__(self) -> tuple:
        return (np.load, ("/etc/passwd",))


@pytest.mark.parametrize("payload", ["shell", "eval", "numpy_load"])
def test_cifar10_refuses_malicious_pickle(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    evil = {"shell": _RunsShell(marker), "eval": _RunsEval(marker), "numpy_load": _NumpyLoad()}
    # sanity: the payload really would run under a plain pickle.loads
    if payload != "numpy_load":
        pickle.loads(pickle.dumps(evil[payload]))
        assert marker.exists()
        marker.unlink()
    _write_cifar(tmp_path, n=2)
    obj = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": evil[payload]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(obj))
    with pytest.raises(LandscapeError, match="refusing to load"):
        load_data(DataSpec("cifar10", root=str(tmp_path)), "test")
    assert not marker.exists()


def test_cifar10_malformed_batches(tmp_path: Path) -> None:
    _write_cifar(tmp_path, n=2)
    (tmp_path / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(LandscapeError, match="could not read CIFAR-10 batch"):
        load_data(DataSpec("cifar10", root=str(tmp_path)), "test")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8)}))
    with pytest.raises(LandscapeError, match="b'labels'"):
        load_data(DataSpec("cifar10", root=str(tmp_path)), "test")
    obj = {b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(obj))
    with pytest.raises(LandscapeError, match=r"\(N, 3072\)"):
        load_data(DataSpec("cifar10", root=str(tmp_path)), "test")


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------

_MNIST_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _write_mnist(folder: Path, gz: bool = False, n: dict | None = None) -> dict[str, tuple]:
    n = n or {"train": 6, "test": 4}
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    written = {}
    for split, (img_stem, lab_stem) in _MNIST_STEMS.items():
        images = rng.integers(0, 256, size=(n[split], 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n[split], dtype=np.uint8)
        img_raw = struct.pack(">IIII", 2051, n[split], 28, 28) + images.tobytes()
        lab_raw = struct.pack(">II", 2049, n[split]) + labels.tobytes()
        for stem, raw in ((img_stem, img_raw), (lab_stem, lab_raw)):
            if gz:
                with gzip.open(folder / f"{stem}.gz", "wb") as f:
                    f.write(raw)
            else:
                (folder / stem).write_bytes(raw)
        written[split] = (images, labels)
    return written


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path: Path, gz: bool) -> None:
    written = _write_mnist(tmp_path, gz=gz)
    train, test = load_splits(DataSpec("mnist", root=str(tmp_path)))
    assert train.x.shape == (6, 1, 28, 28) and test.x.shape == (4, 1, 28, 28)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert train.num_classes == 10 and train.name == "mnist"
    images, labels = written["train"]
    assert torch.allclose(train.x[:, 0], torch.from_numpy(images).float() / 255)
    assert train.y.tolist() == labels.tolist()
    assert test.y.tolist() == written["test"][1].tolist()
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0


def test_mnist_torchvision_layout(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "MNIST" / "raw", gz=True)
    assert len(load_data(DataSpec("mnist", root=str(tmp_path)), "test")) == 4


def test_mnist_truncated_bad_magic_and_mismatch(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    spec = DataSpec("mnist", root=str(tmp_path))
    path = tmp_path / "t10k-images-idx3-ubyte"
    good = path.read_bytes()

    path.write_bytes(good[:-5])
    with pytest.raises(LandscapeError, match="truncated"):
        load_data(spec, "test")
    path.write_bytes(good[:10])
    with pytest.raises(LandscapeError, match="truncated"):
        load_data(spec, "test")
    path.write_bytes(struct.pack(">I", 2049) + good[4:])
    with pytest.raises(LandscapeError, match="magic number 2049, expected 2051"):
        load_data(spec, "test")
    path.write_bytes(struct.pack(">IIII", 2051, 3, 28, 28) + good[16 : 16 + 3 * 784])
    with pytest.raises(LandscapeError, match="3 images.*4 labels"):
        load_data(spec, "test")
    path.write_bytes(good)
    assert len(load_data(spec, "test")) == 4

    gz_path = tmp_path / "gz"
    _write_mnist(gz_path, gz=True)
    raw = gzip.decompress((gz_path / "train-images-idx3-ubyte.gz").read_bytes())
    with gzip.open(gz_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(LandscapeError, match="truncated"):
        load_data(DataSpec("mnist", root=str(gz_path)))


def test_mnist_missing_root_and_files(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="needs a root directory"):
        load_data("mnist")
    with pytest.raises(LandscapeError) as info:
        load_data(DataSpec("mnist", root=str(tmp_path)))
    msg = str(info.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte" in msg and ".gz" in msg


# --------------------------------------------------------------------------------------------
# custom loaders
# --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("tests_importable")
def test_custom_tuple_loader_with_kwargs() -> None:
    spec = DataSpec("tests._datasets:xy_arrays", kwargs={"n": 9, "offset": 0.5})
    train, test = load_splits(spec)
    assert train.x.shape == (9, 3) and train.x.dtype == torch.float32
    assert train.y.dtype == torch.int64 and train.num_classes == 3
    assert float(train.x[0, 0]) == 0.5 and float(test.x[0, 0]) == 1000.5
    assert train.name == "tests._datasets:xy_arrays"
    assert len(load_data(DataSpec("tests._datasets:xy_arrays", subset=4))) == 4


@pytest.mark.usefixtures("tests_importable")
def test_custom_dataset_and_regression_loaders() -> None:
    data = load_data(DataSpec("tests._datasets:pair_dataset", kwargs={"n": 5}))
    assert data.x.shape == (5, 1, 2, 2) and data.y.tolist() == [0, 1, 0, 1, 0]
    assert torch.equal(data.x[:, 0, 0, 0], torch.arange(5.0))
    reg = load_data("tests._datasets:regression")
    assert reg.y.dtype == torch.float32 and reg.num_classes is None


@pytest.mark.usefixtures("tests_importable")
@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("tests._no_such_module:f", {}, "cannot import module"),
        ("tests._datasets:missing", {}, "no attribute"),
        ("tests._datasets:NOT_CALLABLE", {}, "not a function"),
        ("tests._datasets:bad_return", {}, "must return"),
        ("tests._datasets:no_split", {}, "cannot be called as"),
        ("tests._datasets:xy_arrays", {"colour": 1}, "cannot be called as"),
    ],
)
def test_custom_loader_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(LandscapeError, match=match):
        load_data(DataSpec(name, kwargs=kwargs))


# --------------------------------------------------------------------------------------------
# check_compatible
# --------------------------------------------------------------------------------------------


def _mnist_shaped(n: int = 3) -> TensorData:
    return TensorData(torch.rand(n, 1, 28, 28), torch.arange(n), "mnist", n_classes=10)


def test_check_compatible_passes_and_restores_modes(
    digits: tuple[TensorData, TensorData],
) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Dropout(0.5))
    model.train()
    model[2].eval()
    check_compatible(model, digits[0])
    assert model.training and model[1].training and not model[2].training
    check_compatible(model.double(), digits[0])  # x is cast to the model's dtype


def test_check_compatible_wrong_input_shape(digits: tuple[TensorData, TensorData]) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model.train()
    with pytest.raises(LandscapeError) as info:
        check_compatible(model, _mnist_shaped())
    msg = str(info.value)
    assert "cannot take inputs of shape (1, 28, 28) from dataset 'mnist'" in msg
    assert "1x784" in msg and "\n" not in msg
    assert model.training

    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    with pytest.raises(LandscapeError, match=r"inputs of shape \(1, 8, 8\) from dataset 'digits'"):
        check_compatible(conv, digits[0])


def test_check_compatible_output_size(digits: tuple[TensorData, TensorData]) -> None:
    with pytest.raises(LandscapeError, match="outputs 5 values per sample.*10 classes"):
        check_compatible(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), digits[0])
    with pytest.raises(LandscapeError, match="logits of shape"):
        check_compatible(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Flatten(0)), digits[0])
    reg = TensorData(torch.rand(4, 2), torch.rand(4), "reg")
    check_compatible(nn.Linear(2, 1), reg)  # no class check for regression targets


def test_check_compatible_reraises_unrelated_errors() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        check_compatible(Broken(), _mnist_shaped())


# --------------------------------------------------------------------------------------------
# Datasets, DataLoaders and streaming
# --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("tests_importable")
def test_custom_loader_integer_inputs_keep_their_dtype() -> None:
    data = load_data("tests._datasets:int_inputs")
    assert data.x.dtype == torch.int64 and data.y.dtype == torch.int64


@pytest.mark.usefixtures("tests_importable")
def test_subset_indexes_only_the_chosen_items() -> None:
    from tests._datasets import Counting

    data = load_data(DataSpec("tests._datasets:counting", subset=5, kwargs={"n": 20}))
    assert len(data) == 5 and sorted(set(Counting.reads)) == data.x[:, 0].long().tolist()
    ref = TensorData(torch.arange(20.0).unsqueeze(1).repeat(1, 2), torch.arange(20) % 3, "r")
    assert torch.equal(data.x, ref.subset(5).x)  # the same samples as the tensor path


@pytest.mark.usefixtures("tests_importable")
def test_dataloader_loader_streams_mapping_batches() -> None:
    from landscape.data import StreamData

    data = load_data("tests._datasets:token_loader")
    assert isinstance(data, StreamData) and len(data) == 6
    b = next(data.batches(100))  # the loader's own batch size
    assert b["input_ids"].dtype == torch.int64 and b["input_ids"].shape == (4, 4)
    # a shuffling (training) loader is read in order, the same at every pass (issue 24)
    shuffled = StreamData(torch.utils.data.DataLoader(list(range(4)), shuffle=True))
    for _ in range(2):
        assert [int(v) for b in shuffled.batches(1) for v in b] == [0, 1, 2, 3]
    assert "shuffle=True is not applied" in shuffled.reading


def test_streamed_evaluation_equals_in_memory() -> None:
    """Tiny version of benchmarks/bench_streaming.py: a Dataset through a DataLoader, streamed
    (budget 0) or kept on the device after its first pass, gives the in-memory values."""
    from torch.utils.data import DataLoader, TensorDataset

    from landscape.evaluation import Evaluator

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    x, y = torch.randn(50, 3, 2, 2), torch.randint(0, 5, (50,))
    base = {k: v.detach() for k, v in model.named_parameters()}
    d = ({k: torch.randn_like(v) for k, v in base.items()},)
    ref = Evaluator(model, {"t": TensorData(x, y, "t")}, batch_size=16)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    streamed = Evaluator(model, {"t": loader}, batch_size=16, data_budget=0)
    cached = Evaluator(model, {"t": TensorDataset(x, y)}, batch_size=16)
    assert streamed.datasets["t"].streamed and not streamed.datasets["t"].cached
    assert cached.datasets["t"].cached
    for c in (0.0, 0.5, 0.5):
        want = ref.at(base, d, (c,))["t"]
        for ev in (streamed, cached):
            got = ev.at(base, d, (c,))["t"]
            assert got.loss == pytest.approx(want.loss, rel=1e-6)
            assert got.accuracy == want.accuracy and got.n == 50


# --------------------------------------------------------------------------------------------
# streaming speed-ups: slicing tensor-backed Datasets, read-ahead thread, persistent workers
# --------------------------------------------------------------------------------------------


def _assert_same_batches(got: list, want: list) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert type(a) is type(b) and len(a) == len(b)
        for s, t in zip(a, b, strict=True):
            assert s.dtype == t.dtype and torch.equal(s, t)


def test_tensor_backed_datasets_are_sliced_like_their_collated_items(monkeypatch) -> None:
    from torch.utils.data import DataLoader, Subset, TensorDataset

    from landscape.data import StreamData

    x, y = torch.randn(23, 3, 2), torch.arange(23) % 4
    ds = TensorDataset(x, y)
    sub = Subset(Subset(ds, list(range(2, 21))), [0, 3, 4, 9, 10, 11, 18])
    cases = [  # (what is streamed, the DataLoader whose collated batches it must equal)
        (ds, DataLoader(ds, batch_size=5)),
        (sub, DataLoader(sub, batch_size=5)),
        (DataLoader(ds, batch_size=4), DataLoader(ds, batch_size=4)),
        # a drop_last loader is read whole (issue 24): the last, smaller batch too
        (DataLoader(ds, batch_size=4, drop_last=True), DataLoader(ds, batch_size=4)),
    ]
    refs = [list(ref) for _, ref in cases]
    # sliced, never indexed item by item
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: 1 / 0)
    for (src, _), want in zip(cases, refs, strict=True):
        _assert_same_batches(list(StreamData(src).batches(5)), want)
    # a loader with its own collation is iterated as it is
    own = DataLoader(ds, batch_size=5, collate_fn=lambda items: items)
    with pytest.raises(ZeroDivisionError):
        next(StreamData(own).batches(5))


class _Reads(torch.utils.data.Dataset):
    """Items 0..n-1 (as float tensors), counting the reads; item ``fail`` raises."""

    def __init__(self, n: int, fail: int | None = None) -> None:
        self.n, self.fail, self.reads = n, fail, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        self.reads += 1
        if i == self.fail:
            raise ValueError(f"bad item {i}")
        return torch.full((2,), float(i)), i % 3


def _prefetch_threads() -> int:
    import threading

    return sum(t.name == "landscape-prefetch" for t in threading.enumerate())


@pytest.mark.parametrize("prefetch", [0, 2])
def test_streamed_batches_in_order_with_and_without_read_ahead(monkeypatch, prefetch) -> None:
    import landscape.data.stream
    from landscape.data import DeviceData

    monkeypatch.setattr(landscape.data.stream, "STREAM_PREFETCH", prefetch)
    d = DeviceData(_Reads(17), torch.device("cpu"), torch.float64, budget=0)
    assert d.streamed and not d.cached
    for _ in range(2):  # every pass reads the data again, in order
        got = list(d.batches(4))
        assert [len(b[0]) for b in got] == [4, 4, 4, 4, 1]
        assert torch.equal(torch.cat([b[0][:, 0] for b in got]), torch.arange(17.0).double())
        assert all(b[0].dtype == torch.float64 and b[1].dtype == torch.int64 for b in got)
    assert _prefetch_threads() == 0


def test_read_ahead_stops_with_its_consumer_and_passes_errors_on() -> None:
    from landscape.data import STREAM_PREFETCH, DeviceData

    ds = _Reads(400)
    d = DeviceData(ds, torch.device("cpu"), budget=0)
    before = ds.reads
    it = d.batches(2)
    next(it)
    it.close()  # e.g. BatchNorm recalibration that needs only its first batches
    assert _prefetch_threads() == 0
    assert ds.reads - before <= 2 * (STREAM_PREFETCH + 2)  # read ahead, not to the end
    bad = DeviceData(_Reads(20, fail=9), torch.device("cpu"), budget=0)
    with pytest.raises(ValueError, match="bad item 9"):
        list(bad.batches(4))
    assert _prefetch_threads() == 0


def test_loaders_built_with_workers_keep_them_between_passes() -> None:
    from landscape.data import StreamData

    s = StreamData(_Reads(6), num_workers=1)
    first = [b[0] for b in s.batches(4)]
    loader = s._loaders[(4, False)]
    assert loader.persistent_workers
    again = [b[0] for b in s.batches(4)]
    assert s._loaders[(4, False)] is loader  # the same workers serve the second pass
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_as_splits_names_a_single_dataset_and_keeps_a_mapping():
    from landscape.data import TensorData, as_splits

    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    one = as_splits((x, y))
    assert list(one) == ["train"] and isinstance(one["train"], TensorData)
    assert list(as_splits((x, y), default="test")) == ["test"]
    both = as_splits({"train": (x, y), "test": TensorData(x, y, "test")})
    assert list(both) == ["train", "test"]
    assert as_splits({}) == {}
