"""Shard files of a surface (``shard=(i, n)``, ``--shard I/N``) merged into the single-process
file (``merge_shards``, ``landscape merge``), bit for bit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from landscape.cli import main as cli_main
from torch import nn

from landscape import merge_shards
from landscape._functional import named_tensors
from landscape._grid import shard_points
from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec, TensorData
from landscape.directions import random_directions
from landscape.errors import LandscapeError
from landscape.models import ModelSpec
from landscape.surface import Surface, compute_surface

from .conftest import assert_h5_equal

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    g = torch.Generator().manual_seed(0)
    data = {"train": TensorData(torch.randn(120, 5, generator=g),
                                torch.randint(0, 3, (120,), generator=g), "train"),
            "test": TensorData(torch.randn(50, 5, generator=g),
                               torch.randint(0, 3, (50,), generator=g), "test")}
    return model, data, random_directions(named_tensors(model), seeds=0)


KW = dict(x="-1:1:5", y="-1:1:4", progress=False, batch_size=32,
          provenance={"command": "same"})


def _single(tmp_path, problem, name="single.h5", **kw):
    model, data, d = problem
    out = tmp_path / name
    compute_surface(model, d, data, out=out, **{**KW, **kw})
    return out


def test_shard_points_are_torchruns_strided_assignment():
    assert shard_points(range(10), 0, 3) == [0, 3, 6, 9]
    assert shard_points(range(10), 2, 3) == [2, 5, 8]
    parts = [shard_points(range(20), i, 4) for i in range(4)]
    assert sorted(p for part in parts for p in part) == list(range(20))


@pytest.mark.parametrize("n", [2, 3])
def test_shards_merge_bit_for_bit(tmp_path, problem, n):
    model, data, d = problem
    single = _single(tmp_path, problem)
    shards = []
    for i in range(n):
        out = tmp_path / f"s{i}.h5"
        s = compute_surface(model, d, data, out=out, shard=(i, n), **KW)
        assert s.recipe["shard"] == [i, n]
        assert np.flatnonzero(s.done.reshape(-1)).tolist() == shard_points(range(20), i, n)
        shards.append(out)
    merged = tmp_path / "merged.h5"
    m = merge_shards(merged, list(reversed(shards)))  # any order
    assert m.complete and "shard" not in m.recipe
    assert_h5_equal(single, merged)


def test_killed_shard_resumes_and_precision_counts_merge(tmp_path, problem):
    model, data, d = problem
    kw = dict(KW, rel_precision=0.05)
    single = _single(tmp_path, problem, **{"rel_precision": 0.05})
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    s = compute_surface(model, d, data, out=a, shard=(0, 2), max_points=3, **kw)
    assert s.n_done == 3  # "killed" after three points
    assert compute_surface(model, d, data, out=a, shard=(0, 2), **kw).n_done == 10
    compute_surface(model, d, data, out=b, shard=(1, 2), **kw)
    merged = tmp_path / "m.h5"
    merge_shards(merged, [a, b])
    with h5py.File(merged) as f:
        assert "train_loss_n" in f["surface"]
    assert_h5_equal(single, merged)


def test_partial_merge_is_resumed_by_a_plain_run(tmp_path, problem):
    model, data, d = problem
    single = _single(tmp_path, problem)
    a = tmp_path / "a.h5"
    compute_surface(model, d, data, out=a, shard=(1, 3), **KW)
    merged = tmp_path / "m.h5"
    assert merge_shards(merged, [a]).n_done == 7
    assert compute_surface(model, d, data, out=merged, **KW).complete
    assert_h5_equal(single, merged)


def test_refusals(tmp_path, problem):
    model, data, d = problem
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    compute_surface(model, d, data, out=a, shard=(0, 2), **KW)
    compute_surface(model, d, data, out=b, shard=(0, 3), **KW)
    plain = _single(tmp_path, problem)
    out = tmp_path / "m.h5"
    with pytest.raises(LandscapeError, match="is not a shard file"):
        merge_shards(out, [a, plain])
    with pytest.raises(LandscapeError, match="shard 0 of 3 but"):
        merge_shards(out, [a, b])
    with pytest.raises(LandscapeError, match="are both shard 0"):
        merge_shards(out, [a, a])
    d2 = random_directions(named_tensors(model), seeds=1)
    compute_surface(model, d2, data, out=c, shard=(1, 2), **KW)
    with pytest.raises(LandscapeError, match="different recipes"):
        merge_shards(out, [a, c])
    with pytest.raises(LandscapeError, match="is one of the shards"):
        merge_shards(a, [a])
    with pytest.raises(LandscapeError, match="'shard' parameter"):
        compute_surface(model, d, data, shard=(2, 2), **KW)
    # a shard's file resumes only as that shard
    with pytest.raises(LandscapeError, match="differs in: shard"):
        compute_surface(model, d, data, out=a, shard=(1, 2), **KW)
    # overlapping masks (a file edited to hold another shard's point)
    e = tmp_path / "e.h5"
    compute_surface(model, d, data, out=e, shard=(1, 2), **KW)
    s = Surface.load(e)
    s.done.reshape(-1)[0] = True
    s.save(e, overwrite=True)
    with pytest.raises(LandscapeError, match="not one of its shard's points"):
        merge_shards(out, [a, e])
    merge_shards(out, [a])
    with pytest.raises(LandscapeError, match="exists"):
        merge_shards(out, [a])
    merge_shards(out, [a], overwrite=True)


def test_cli_shards_and_merge(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    spec, data = ModelSpec("mlp", {"width": 8, "depth": 1}), DataSpec("digits", subset=90)
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "m.pt", spec.build(), spec, data=data.to_dict())
    grid = ["--x", "-1:1:3", "--y", "-1:1:3", "--batch-size", "32", "--no-progress"]
    single = tmp_path / "single.h5"
    assert cli_main.main(["surface", str(ck), *grid, "--out", str(single)]) == 0
    for i in range(2):
        assert cli_main.main(["surface", str(ck), *grid, "--shard", f"{i}/2"]) == 0
    assert "(shard 1 of 2)" in capsys.readouterr().out
    shards = [tmp_path / f"m_surface_shard{i}of2.h5" for i in range(2)]
    merged = tmp_path / "merged.h5"
    assert cli_main.main(["merge", str(merged), *map(str, shards)]) == 0
    assert "9/9 points" in capsys.readouterr().out
    # every dataset bit for bit; the attributes differ only in the recorded command line
    with h5py.File(single) as f, h5py.File(merged) as g:
        names: list[str] = []
        f.visit(lambda k: names.append(k) if isinstance(f[k], h5py.Dataset) else None)
        for k in names:
            assert np.array_equal(f[k][()], g[k][()], equal_nan=f[k].dtype.kind == "f"), k
        assert f["surface"].attrs["recipe"] == g["surface"].attrs["recipe"]
    assert cli_main.main(["merge", str(merged), *map(str, shards)]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli_main.main(["surface", str(ck), *grid, "--shard", "2/2"]) == 2
