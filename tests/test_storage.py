import h5py
import numpy as np
import pytest

from landscape import storage
from landscape.errors import LandscapeError
from landscape.surface import Surface


def test_group_round_trip_and_other_groups_kept(tmp_path):
    p = tmp_path / "f.h5"
    g = storage.Group(attrs={"a": 1, "s": "x"}, datasets={"d": np.arange(5.0)},
                      groups={"sub": storage.Group(datasets={"e": np.ones((2, 3))})})
    storage.update_file(p, {"one": g})
    storage.update_file(p, {"two": storage.Group(attrs={"b": 2})})
    assert storage.list_groups(p) == ["one", "two"]
    back = storage.read_group(p, "one")
    assert back.attrs == {"a": 1, "s": "x"}
    np.testing.assert_array_equal(back.datasets["d"], np.arange(5.0))
    np.testing.assert_array_equal(back.groups["sub"].datasets["e"], np.ones((2, 3)))
    storage.update_file(p, {"one": None})
    assert storage.list_groups(p) == ["two"]
    assert storage.root_attrs(p)["format"] == "landscape"


def test_same_content_same_bytes(tmp_path):
    p = tmp_path / "f.h5"
    storage.update_file(p, {"g": storage.Group(datasets={"d": np.arange(3.0)})})
    a = p.read_bytes()
    storage.update_file(p, {"g": storage.Group(datasets={"d": np.arange(3.0)})})
    assert p.read_bytes() == a


def test_no_temp_files_left_and_failure_keeps_old(tmp_path, monkeypatch):
    p = tmp_path / "f.h5"
    storage.update_file(p, {"g": storage.Group(datasets={"d": np.arange(3.0)})})
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(storage, "_write", boom)
    with pytest.raises(RuntimeError):
        storage.update_file(p, {"g": storage.Group(datasets={"d": np.arange(4.0)})})
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["f.h5"]


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all", b"\x89HDF\r\n\x1a\n" + b"\0" * 20])
def test_garbage_files_raise(tmp_path, content):
    p = tmp_path / "bad.h5"
    p.write_bytes(content)
    with pytest.raises(LandscapeError, match="not a valid HDF5"):
        storage.file_kind(p)


def test_foreign_and_missing_files(tmp_path):
    p = tmp_path / "foreign.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(LandscapeError, match="not a landscape file"):
        Surface.load(p)
    before = p.read_bytes()
    with pytest.raises(LandscapeError, match="not a landscape file"):
        storage.update_file(p, {"g": storage.Group()})
    assert p.read_bytes() == before
    with pytest.raises(LandscapeError, match="does not exist"):
        Surface.load(tmp_path / "nope.h5")
    with pytest.raises(LandscapeError, match="directory"):
        storage.update_file(tmp_path / "no" / "dir.h5", {"g": storage.Group()})


def test_truncated_file(tmp_path):
    p = tmp_path / "f.h5"
    storage.update_file(p, {"g": storage.Group(datasets={"d": np.arange(10000.0)})})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(LandscapeError):
        storage.read_group(p, "g")


def test_newer_version_refused(tmp_path):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "landscape"
        f.attrs["format_version"] = 99
    with pytest.raises(LandscapeError, match="newer"):
        storage.file_kind(p)


def _write_li(p, nx, ny, fill_missing=True):
    x = np.linspace(-1, 1, nx)
    y = np.linspace(-1, 1, ny) if ny else None
    shape = (len(x), len(y)) if ny else (len(x),)  # their (buggy) allocation
    n = int(np.prod(shape))
    loss = np.arange(n, dtype=float)
    acc = np.full(n, 50.0)
    if fill_missing:
        loss[-2:] = -1
        acc[-2:] = -1
    with h5py.File(p, "w") as f:
        f["xcoordinates"] = x
        if ny:
            f["ycoordinates"] = y
        f["train_loss"] = loss.reshape(shape)
        f["train_acc"] = acc.reshape(shape)
        f["dir_file"] = "dirs.h5"


def test_read_li2018_2d(tmp_path):
    p = tmp_path / "li.h5"
    _write_li(p, 5, 5)
    s = Surface.load(p)
    assert s.ndim == 2 and s.shape == (5, 5)
    assert s.n_done == 23
    # ravel index = iy * nx + ix (their meshgrid order)
    assert s["train_loss"][1, 2] == 7.0
    assert s["train_acc"][0, 0] == 0.5  # percent -> fraction
    assert np.isnan(s["train_loss"][4, 4]) and not s.done[4, 4]
    assert s.provenance["dir_file"] == "dirs.h5"


def test_read_li2018_1d(tmp_path):
    p = tmp_path / "li1.h5"
    _write_li(p, 7, 0, fill_missing=False)
    s = Surface.load(p)
    assert s.ndim == 1 and s.complete and s["train_loss"].tolist() == list(range(7))
