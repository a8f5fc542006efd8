"""Surface sets (K direction pairs on one grid) and their statistics."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from torch import nn

from landscape._functional import named_tensors
from landscape.directions import random_directions
from landscape.errors import LandscapeError
from landscape.metrics import eps_sharpness_from_surface
from landscape.stats import difference, summarize
from landscape.surface import compute_surface
from landscape.surface_set import SurfaceSet, compute_surface_set, member_seeds

try:  # tests/ as a package or as a plain directory on sys.path
    from .conftest import toy_classifier
except ImportError:
    from conftest import toy_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    return toy_classifier(6, nn.ReLU, n=30)


def test_members_equal_single_direction_surfaces_bit_for_bit(toy, tmp_path):
    model, data = toy
    seeds = member_seeds(3)
    assert seeds == [0, 2, 4]
    s = compute_surface_set(model, {"train": data}, seeds=seeds, x="-1:1:3", y="-1:1:3",
                            batch_size=8, out=tmp_path / "set.h5", progress=False)
    assert s.complete and s.n_members == 3
    for k, seed in enumerate(seeds):
        d = random_directions(named_tensors(model), seeds=seed)
        one = compute_surface(model, d, {"train": data}, x="-1:1:3", y="-1:1:3", batch_size=8,
                              progress=False)
        m = s.member(k)
        assert m.directions.digest() == d.digest()
        for name in ("train_loss", "train_acc"):
            np.testing.assert_array_equal(m[name], one[name])
        np.testing.assert_array_equal(m.stderr("train_loss"), one.stderr("train_loss"))
        # a metric per member equals the metric of the separate file, bit for bit
        assert eps_sharpness_from_surface(m, eps=1.0) == eps_sharpness_from_surface(one, eps=1.0)
    back = SurfaceSet.load(tmp_path / "set.h5")
    np.testing.assert_array_equal(back.arrays["train_loss"], s.arrays["train_loss"])
    np.testing.assert_array_equal(back.stderrs["train_loss_se"], s.stderrs["train_loss_se"])
    assert back.stderrs["train_loss_se"].shape == (3, 3, 3)
    assert np.all(back.stderrs["train_loss_se"] > 0)
    assert [d.digest() for d in back.directions] == [d.digest() for d in s.directions]
    with h5py.File(tmp_path / "set.h5") as f:
        assert f.attrs["format_version"] == 2  # a file with /surfaces needs version 2


def test_interrupted_set_resumes_to_the_same_arrays(toy, tmp_path):
    model, data = toy
    kw = {"seeds": [0, 2], "x": "-1:1:3", "y": "-1:1:2", "batch_size": 8, "progress": False}
    full = compute_surface_set(model, {"train": data}, **kw)
    out = tmp_path / "r.h5"
    part = compute_surface_set(model, {"train": data}, out=out, max_points=5, **kw)
    assert part.n_done == 5
    again = compute_surface_set(model, {"train": data}, out=out, **kw)
    assert again.complete
    np.testing.assert_array_equal(again.arrays["train_loss"], full.arrays["train_loss"])
    with pytest.raises(LandscapeError, match="different recipe"):
        compute_surface_set(model, {"train": data}, out=out, **{**kw, "seeds": [0, 4]})


def test_overlapping_seeds_are_refused(toy):
    model, data = toy
    with pytest.raises(LandscapeError, match="overlap"):
        compute_surface_set(model, {"train": data}, seeds=[0, 1], x="-1:1:3", y="-1:1:3")


def test_summary_and_difference():
    v = [1.0, 2.0, 3.0, 4.0, float("nan")]
    s = summarize(v)
    assert s.n == 4 and s.mean == 2.5 and s.sd == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.lo < s.mean < s.hi and summarize(v) == s  # seeded
    one = summarize([5.0])
    assert one.mean == 5.0 and math.isnan(one.sd) and one.text() == "5"
    d = difference([10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    assert d.delta == 9.0 and d.resolved is True and d.lo > 0
    assert difference([1.0, 3.0], [1.5, 2.5]).resolved is False
    assert difference([1.0], [2.0, 3.0]).resolved is None


def test_cli_n_directions_member_k_equals_the_single_surface_with_its_seed(tmp_path):
    import shutil

    from landscape.cli.main import main

    from landscape.surface import Surface

    from .golden.generate import HERE

    ckpt = tmp_path / "m.pt"
    shutil.copy(HERE / "runs" / "mlp" / "epoch_0002.pt", ckpt)
    grid = ["--x=-1:1:3", "--y=-1:1:3", "--batch-size", "64", "--no-progress"]
    assert main(["surface", str(ckpt), *grid, "--n-directions", "2", "--out",
                 str(tmp_path / "set.h5")]) == 0
    s = SurfaceSet.load(tmp_path / "set.h5")
    assert s.seeds == [0, 2]
    for k, seed in enumerate(s.seeds):
        out = tmp_path / f"one{seed}.h5"
        assert main(["surface", str(ckpt), *grid, "--seed", str(seed), "--out", str(out)]) == 0
        one = Surface.load(out)
        assert s.member(k).directions.digest() == one.directions.digest()
        np.testing.assert_array_equal(s.member(k)["test_loss"], one["test_loss"])
    # the default batch size (auto) works too: member 0 is the single auto surface of seed 0
    assert main(["surface", str(ckpt), *grid[:2], *grid[-1:], "--n-directions", "2",
                 "--out", str(tmp_path / "auto.h5")]) == 0
    assert main(["surface", str(ckpt), *grid[:2], *grid[-1:], "--out",
                 str(tmp_path / "auto0.h5")]) == 0
    auto, one = SurfaceSet.load(tmp_path / "auto.h5"), Surface.load(tmp_path / "auto0.h5")
    assert auto.recipe["batch_size"] == "auto"
    assert auto.provenance["batch_size_used"] == one.provenance["batch_size_used"]
    np.testing.assert_array_equal(auto.member(0)["test_loss"], one["test_loss"])


def test_batch_size_auto_is_chosen_once_and_kept_on_resume(toy, tmp_path):
    model, data = toy
    kw = {"seeds": [0, 2], "x": "-1:1:3", "progress": False, "batch_size": "auto"}
    out = tmp_path / "a.h5"
    part = compute_surface_set(model, {"train": data}, out=out, max_points=2, **kw)
    used = part.provenance["batch_size_used"]
    assert isinstance(used, int) and used >= 1
    d = random_directions(named_tensors(model), ndim=1, seeds=0)
    one = compute_surface(model, d, {"train": data}, x="-1:1:3", progress=False)
    assert one.provenance["batch_size_used"] == used
    done = compute_surface_set(model, {"train": data}, out=out, **kw)
    assert done.complete and done.provenance["batch_size_used"] == used
    np.testing.assert_array_equal(done.member(0)["train_loss"], one["train_loss"])
    with pytest.raises(LandscapeError, match="'batch_size' parameter"):
        compute_surface_set(model, {"train": data}, **{**kw, "batch_size": "big"})


def test_a_set_too_big_for_memory_is_refused(toy, monkeypatch):
    """K x points arrays and K direction pairs that no memory holds: refused up front."""
    import landscape._grid

    model, data = toy
    monkeypatch.setattr(landscape._grid, "physical_memory", lambda: 2**20)
    with pytest.raises(LandscapeError, match=r"a set of 1,000 direction pairs on a 9-point "
                                             r"grid has 9,000 points; .* GiB of memory -- "
                                             r"use fewer seeds or grid points"):
        compute_surface_set(model, {"train": data}, seeds=member_seeds(1000), x="-1:1:3",
                            y="-1:1:3", progress=False)
