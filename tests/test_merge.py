"""Shard files of a surface, a surface set, a ratio map and a connectivity result
(``shard=(i, n)``, ``--shard I/N``) merged into the single-process file (``merge_shards``,
``landscape merge``), bit for bit."""

from __future__ import annotations

import copy

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
from landscape.connect import Connectivity, compute_connectivity
from landscape.data import DataSpec, TensorData
from landscape.directions import random_directions
from landscape.errors import LandscapeError
from landscape.hessian import RatioMap, compute_ratio_map
from landscape.models import ModelSpec
from landscape.surface import Surface, compute_surface
from landscape.surface_set import SurfaceSet, compute_surface_set

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


# ---------------------------------------------------------------- surface sets, ratio maps,
# connectivity: the same shard semantics and the one merge


SET_KW = dict(seeds=[0, 2], x="-1:1:3", y="-1:1:3", batch_size=32, progress=False,
              provenance={"command": "same"})


def test_surface_set_shards_merge_bit_for_bit_and_resume(tmp_path, problem):
    model, data, _ = problem
    single = tmp_path / "single.h5"
    compute_surface_set(model, data, out=single, **SET_KW)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    s = compute_surface_set(model, data, out=a, shard=(0, 2), max_points=4, **SET_KW)
    assert s.n_done == 4 and s.recipe["shard"] == [0, 2]  # "killed" after four points
    s = compute_surface_set(model, data, out=a, shard=(0, 2), **SET_KW)
    assert np.flatnonzero(s.done.reshape(-1)).tolist() == shard_points(range(18), 0, 2)
    compute_surface_set(model, data, out=b, shard=(1, 2), **SET_KW)
    merged = tmp_path / "merged.h5"
    m = merge_shards(merged, [b, a])
    assert isinstance(m, SurfaceSet) and m.complete and "shard" not in m.recipe
    assert_h5_equal(single, merged)


@pytest.fixture(scope="module")
def surface_file(problem, tmp_path_factory):
    model, data, d = problem
    path = tmp_path_factory.mktemp("rm") / "s.h5"
    compute_surface(model, d, data, out=path, **{**KW, "x": "-1:1:3", "y": "-1:1:3"})
    return path


RM_KW = dict(warm_start=False, progress=False, batch_size=64, provenance={"command": "same"})


def test_ratio_map_shards_merge_bit_for_bit_and_resume(tmp_path, problem, surface_file):
    model, data, _ = problem
    train = data["train"]
    single = tmp_path / "single.h5"
    compute_ratio_map(model, surface_file, train, out=single, **RM_KW)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    rm = compute_ratio_map(model, surface_file, train, out=a, shard=(1, 2), max_points=2,
                           **RM_KW)
    assert rm.n_done == 2 and rm.recipe["shard"] == [1, 2]
    # the shard's points are every other point in raster order, visited in the serpentine
    # order 0 1 2 5 4 3 6 7 8: 1 and 5 first, then 3 and 7
    assert np.flatnonzero(rm.done.reshape(-1)).tolist() == [1, 5]
    rm = compute_ratio_map(model, surface_file, train, out=a, shard=(1, 2), **RM_KW)
    assert np.flatnonzero(rm.done.reshape(-1)).tolist() == [1, 3, 5, 7]
    compute_ratio_map(model, surface_file, train, out=b, shard=(0, 2), **RM_KW)
    merged = tmp_path / "merged.h5"
    m = merge_shards(merged, [a, b])
    assert isinstance(m, RatioMap) and m.complete and "shard" not in m.recipe
    assert_h5_equal(single, merged)
    # a merge of one shard is a partial map that a run without shard completes
    part = tmp_path / "part.h5"
    assert merge_shards(part, [b]).n_done == 5
    assert compute_ratio_map(model, surface_file, train, out=part, **RM_KW).complete
    assert_h5_equal(single, part)
    with pytest.raises(LandscapeError, match="needs warm_start=False"):
        compute_ratio_map(model, surface_file, train, out=tmp_path / "w.h5", shard=(0, 2),
                          **{**RM_KW, "warm_start": True})


def _ends(seed_b=1):
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    b = copy.deepcopy(a)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed_b)
        for p in b.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return a, b


CONNECT_KW = dict(n_points=4, steps=12, train_batch_size=16, lr=0.05, batch_size=32,
                  progress=False, provenance={"command": "same"})


def test_connect_shards_train_the_same_bends_and_merge_bit_for_bit(tmp_path, problem):
    _, data, _ = problem
    ma, mb = _ends()
    single = tmp_path / "single.h5"
    compute_connectivity(ma, mb, data, out=single, **CONNECT_KW)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    r = compute_connectivity(ma, mb, data, out=a, shard=(0, 2), max_points=1, **CONNECT_KW)
    assert r.n_done == 1 and r.curve_trained and r.recipe["shard"] == [0, 2]
    r = compute_connectivity(ma, mb, data, out=a, shard=(0, 2), **CONNECT_KW)
    assert np.flatnonzero(r.done.reshape(-1)).tolist() == [0, 2, 4, 6]
    compute_connectivity(ma, mb, data, out=b, shard=(1, 2), **CONNECT_KW)
    merged = tmp_path / "merged.h5"
    m = merge_shards(merged, [a, b])
    assert isinstance(m, Connectivity) and m.complete and "shard" not in m.recipe
    assert_h5_equal(single, merged)


def test_refusals_of_the_other_kinds(tmp_path, problem, surface_file):
    model, data, _ = problem
    out = tmp_path / "m.h5"
    rm0 = tmp_path / "rm0.h5"
    compute_ratio_map(model, surface_file, data["train"], out=rm0, shard=(0, 2), **RM_KW)
    set1 = tmp_path / "set1.h5"
    compute_surface_set(model, data, out=set1, shard=(1, 2), **SET_KW)
    with pytest.raises(LandscapeError, match="holds a surface set shard but .* a ratio map "
                                             "shard") as e:
        merge_shards(out, [rm0, set1])
    assert "\n" not in str(e.value)
    with pytest.raises(LandscapeError, match="are both shard 0"):
        merge_shards(out, [rm0, rm0])
    # overlapping shards: a ratio-map shard file edited to hold another shard's point
    rm1 = tmp_path / "rm1.h5"
    compute_ratio_map(model, surface_file, data["train"], out=rm1, shard=(1, 2), **RM_KW)
    m = RatioMap.load(rm1)
    m.done.reshape(-1)[0] = True
    m.save(rm1)
    with pytest.raises(LandscapeError, match="holds point 0, which is not one of its shard"):
        merge_shards(out, [rm0, rm1])
    # connectivity: every shard must hold the same trained bends, and a finished training
    ma, mb = _ends()
    c0, c1, c2 = tmp_path / "c0.h5", tmp_path / "c1.h5", tmp_path / "c2.h5"
    compute_connectivity(ma, mb, data, out=c0, shard=(0, 2), **CONNECT_KW)
    compute_connectivity(ma, mb, data, out=c1, shard=(1, 2), **CONNECT_KW)
    c = Connectivity.load(c1)
    c.bends = c.bends + 1e-7
    c.save(c1)
    with pytest.raises(LandscapeError, match="hold different bends: each shard trains them"):
        merge_shards(out, [c0, c1])
    compute_connectivity(ma, mb, data, out=c2, shard=(1, 2), **{**CONNECT_KW, "steps": 13},
                         max_points=0)
    with pytest.raises(LandscapeError, match="different recipes"):
        merge_shards(out, [c0, c2])
    c = Connectivity.load(c2)
    assert c.curve_trained and c.n_done == 0
    c.trained_steps, c.fit_history = 5, c.fit_history[:5]
    c.save(c2)
    with pytest.raises(LandscapeError, match="has not finished training its curve"):
        merge_shards(out, [c2])
    assert not out.exists()
    with pytest.raises(LandscapeError, match="'shard' parameter"):
        compute_connectivity(ma, mb, data, shard=(0, 0), **CONNECT_KW)
    with pytest.raises(LandscapeError, match="'shard' parameter"):
        compute_surface_set(model, data, shard=(3, 2), **SET_KW)


def _same_datasets(a, b) -> None:
    """Every dataset bit for bit; the attributes may differ in the recorded command line."""
    with h5py.File(a) as f, h5py.File(b) as g:
        names: list[str] = []
        f.visit(lambda k: names.append(k) if isinstance(f[k], h5py.Dataset) else None)
        other: list[str] = []
        g.visit(lambda k: other.append(k) if isinstance(g[k], h5py.Dataset) else None)
        assert sorted(names) == sorted(other)
        for k in names:
            assert np.array_equal(f[k][()], g[k][()], equal_nan=f[k].dtype.kind == "f"), k
        for k in f:
            assert f[k].attrs["recipe"] == g[k].attrs["recipe"], k


def test_cli_set_ratio_map_and_connect_shards(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    spec, data = ModelSpec("mlp", {"width": 8, "depth": 1}), DataSpec("digits", subset=90)
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "m.pt", spec.build(), spec, data=data.to_dict())
    torch.manual_seed(1)
    ck_b = save_checkpoint(tmp_path / "b.pt", spec.build(), spec, data=data.to_dict())
    grid = ["--x", "-1:1:3", "--y", "-1:1:3", "--batch-size", "32", "--no-progress"]
    # a surface set: --n-directions K with --shard
    single = tmp_path / "set.h5"
    sets = ["surface", str(ck), *grid, "--n-directions", "2"]
    assert cli_main.main([*sets, "--out", str(single)]) == 0
    for i in range(2):
        assert cli_main.main([*sets, "--shard", f"{i}/2"]) == 0
    merged = tmp_path / "set_merged.h5"
    assert cli_main.main(["merge", str(merged), *(str(tmp_path / f"m_surface_shard{i}of2.h5")
                                                  for i in range(2))]) == 0
    assert "SurfaceSet(" in capsys.readouterr().out
    _same_datasets(single, merged)
    # a ratio map over the first surface file: shards need --no-warm-start
    surf = tmp_path / "s.h5"
    assert cli_main.main(["surface", str(ck), *grid, "--out", str(surf)]) == 0
    hess = ["hessian", str(ck), "--grid", str(surf), "--no-progress", "--batch-size", "64"]
    assert cli_main.main([*hess, "--shard", "0/2"]) == 2
    err = capsys.readouterr().err
    assert "--shard option needs --no-warm-start" in err, err
    assert len(err.strip().splitlines()) == 1
    single = tmp_path / "rm.h5"
    assert cli_main.main([*hess, "--no-warm-start", "--out", str(single)]) == 0
    for i in range(2):
        assert cli_main.main([*hess, "--no-warm-start", "--shard", f"{i}/2"]) == 0
    shards = [tmp_path / f"s_ratio_map_shard{i}of2.h5" for i in range(2)]
    merged = tmp_path / "rm_merged.h5"
    assert cli_main.main(["merge", str(merged), *map(str, shards)]) == 0
    assert "RatioMap(" in capsys.readouterr().out
    _same_datasets(single, merged)
    # connect
    conn = ["connect", str(ck), str(ck_b), "--steps", "6", "--points", "3", "--batch-size",
            "32", "--train-batch-size", "16", "--no-progress"]
    single = tmp_path / "ab.h5"
    assert cli_main.main([*conn, "--out", str(single)]) == 0
    for i in range(2):
        assert cli_main.main([*conn, "--shard", f"{i}/2"]) == 0
    shards = [tmp_path / f"m_connect_shard{i}of2.h5" for i in range(2)]
    merged = tmp_path / "ab_merged.h5"
    assert cli_main.main(["merge", str(merged), *map(str, shards)]) == 0
    assert "6/6 points" in capsys.readouterr().out
    _same_datasets(single, merged)
    # mixed kinds: one line, exit 2
    assert cli_main.main(["merge", str(tmp_path / "x.h5"), str(shards[0]),
                          str(tmp_path / "m_surface_shard1of2.h5")]) == 2
    err = capsys.readouterr().err
    assert "shard but" in err and len(err.strip().splitlines()) == 1
