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


def _write_li_half_crunched(p, nx=9, ny=5):
    """A 2D file the way Li et al.'s ``plot_surface.py`` leaves it when the train pass finished
    and the test pass was killed: every array allocated ``-np.ones((nx, ny))``, filled in
    raster order of ``meshgrid(x, y)`` (flat index ``iy * nx + ix``), accuracies in percent."""
    x = np.linspace(-1, 1, nx)
    y = np.linspace(-0.5, 0.5, ny)
    xx, yy = np.meshgrid(x, y)  # (ny, nx)
    arrays = {k: -np.ones((nx, ny)) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    true = {"train_loss": 1 + xx**2 + yy**2, "train_acc": 90 - xx**2,
            "test_loss": 2 + xx**2 + yy**2, "test_acc": 80 - yy**2}
    for ind in range(nx * ny):
        for k in ("train_loss", "train_acc"):
            arrays[k].ravel()[ind] = true[k].ravel()[ind]
        if ind < nx * ny - 4:  # the test pass stopped 4 points short
            for k in ("test_loss", "test_acc"):
                arrays[k].ravel()[ind] = true[k].ravel()[ind]
    with h5py.File(p, "w") as f:
        f["dir_file"] = "dirs.h5"
        f["xcoordinates"], f["ycoordinates"] = x, y
        for k, v in arrays.items():
            f[k] = v
    return true


def test_li2018_every_array_has_its_own_done_mask(tmp_path, capsys):
    """The 4 unfinished test points do not hide the 45 finished train values."""
    from landscape.cli.main import main

    from landscape.info import summarize
    from landscape.metrics import _values, surface_minimum
    from landscape.plot import masked_values
    from landscape.report import load_results
    from landscape.report.numbers import _at_origin

    p = tmp_path / "li.h5"
    true = _write_li_half_crunched(p)
    d = storage.read_li2018(p)
    assert {k: int(m.sum()) for k, m in d["done_per_array"].items()} == {
        "train_loss": 45, "train_acc": 45, "test_loss": 41, "test_acc": 41}
    assert int(d["done"].sum()) == 41  # points where every array is done
    s = Surface.load(p)
    assert s.shape == (5, 9) and s.n_done == 41
    assert s.n_done_of("train_loss") == 45 and s.done_of("train_loss").all()
    np.testing.assert_array_equal(s["train_loss"], true["train_loss"])
    np.testing.assert_allclose(s["train_acc"], true["train_acc"] / 100)
    assert np.isnan(s["test_loss"][-1, -4:]).all() and not s.done_of("test_loss")[-1, -4:].any()
    # plot: every train point is drawn, the test points that were not computed are masked
    assert int(masked_values(s, "train_loss").count()) == 45
    assert int(masked_values(s, "test_loss").count()) == 41
    # metrics count all 45 train points, and 41 test points
    assert int(_values(s, "train_loss")[1].sum()) == 45
    assert int(_values(s, "test_acc")[1].sum()) == 41
    assert surface_minimum(s, "train_loss")[0] == pytest.approx(1.0)
    # info: per-array completion and ranges over each array's own points
    info = summarize(p)
    c = info["surface_completion"]
    assert c["done"] == 41 and c["total"] == 45
    assert c["per_array"] == {"test_acc": 41, "test_loss": 41, "train_acc": 45,
                              "train_loss": 45}
    assert info["surface_range"]["train_loss"] == [1.0, float(true["train_loss"].max())]
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "41/45 points done in every array" in out
    assert "train_loss 45/45" in out and "test_loss 41/45" in out
    # compare: the train loss at the origin is read although the test pass missed that point
    with h5py.File(p, "r+") as f:
        f["test_loss"][4, 2] = -1  # flat index 22 = iy 2, ix 4: the origin
    res = load_results(p)
    assert not res.surface.done[2, 4] and _at_origin(res.surface, "test_loss") is None
    assert _at_origin(res.surface, "train_loss") == 1.0


def test_li2018_refuses_arrays_that_do_not_fit_the_grid(tmp_path):
    p = tmp_path / "li.h5"
    _write_li_half_crunched(p)
    with h5py.File(p, "r+") as f:
        del f["test_loss"]
        f["test_loss"] = np.ones(7)
    with pytest.raises(LandscapeError, match=r"dataset 'test_loss' has 7 float64 value\(s\)"):
        storage.read_li2018(p)
    with h5py.File(p, "r+") as f:
        del f["test_loss"]
        f["test_loss"] = np.array([b"a"] * 45)
    with pytest.raises(LandscapeError, match="dataset 'test_loss'"):
        Surface.load(p)
    with h5py.File(p, "r+") as f:
        del f["test_loss"]
        del f["xcoordinates"]
        f["xcoordinates"] = np.ones((3, 3))
    with pytest.raises(LandscapeError, match="'xcoordinates' is float64 of shape"):
        Surface.load(p)
