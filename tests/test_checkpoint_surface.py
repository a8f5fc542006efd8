"""``compute_checkpoint_surface``: the ``landscape surface`` workflow as one library call.

The library call and the command write the same file (arrays bit for bit, recipe, directions)
for random, interpolation, plane and surface-set directions; the direction builders of
checkpoints are checked against their definition (the origin plus the direction is the other
checkpoint); the library's messages name parameters, which the CLI shows as its options.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from landscape.cli._common import flag_message
from landscape.cli.main import build_parser, main

import landscape as ls
from landscape import _atomic
from landscape._functional import named_tensors
from landscape.checkpoint_surface import summary_lines
from landscape.checkpoints import load_checkpoint, save_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.inputs import CheckpointInputs, RunOptions
from landscape.models import ModelSpec
from landscape.surface import Surface
from landscape.surface_set import SurfaceSet

X, Y = "-1:1:3", "-1:1:3"
OPTS = {"batch_size": 32, "dtype": torch.float32}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt_surface")
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    for i, name in enumerate(("a", "b", "c")):
        torch.manual_seed(i)
        save_checkpoint(d / f"{name}.pt", spec.build(), spec,
                        data=DataSpec("digits", subset=60).to_dict())
    other = ModelSpec("mlp", {"width": 16, "depth": 1})
    save_checkpoint(d / "wide.pt", other.build(), other,
                    data=DataSpec("digits", subset=60).to_dict())
    return d


def _cli(work: Path, *argv: str) -> None:
    cwd = Path.cwd()
    os.chdir(work)
    try:
        assert main(["surface", *argv, "--batch-size", "32", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)


def _same_file(a: Path, b: Path, cls=Surface) -> None:
    sa, sb = cls.load(a), cls.load(b)
    assert sa.recipe == sb.recipe
    assert sorted(sa.arrays) == sorted(sb.arrays)
    for k in sa.arrays:
        assert sa.arrays[k].tobytes() == sb.arrays[k].tobytes(), k
    if cls is Surface:
        assert sa.directions.digest() == sb.directions.digest()
        assert sa.directions.recipe == sb.directions.recipe
    assert {k: v for k, v in sa.provenance.items() if k not in ("command", "seconds")} == \
        {k: v for k, v in sb.provenance.items() if k not in ("command", "seconds")}


@pytest.mark.parametrize(("argv", "kwargs"), [
    (["--x=-1:1:3", "--y=-1:1:3", "--seed", "3"], {"y": Y, "seed": 3}),
    (["--x=-1:1:3", "--interpolate", "b.pt"], {"interpolate": "b.pt"}),
    (["--x=-1:1:3", "--y=-1:1:3", "--plane", "b.pt", "c.pt", "--orthogonal"],
     {"y": Y, "plane": ("b.pt", "c.pt"), "orthogonal": True}),
    (["--x=-1:1:3", "--subset", "30", "--exclude", "*.bias"],
     {"inputs": CheckpointInputs(subset=30), "exclude": ["*.bias"]}),
], ids=["random", "interpolate", "plane", "subset-check"])
def test_the_library_call_writes_the_commands_file(work, argv, kwargs):
    _cli(work, "a.pt", *argv, "--out", "cli.h5")
    cwd = Path.cwd()
    os.chdir(work)
    try:
        s = ls.compute_checkpoint_surface("a.pt", x=X, run=RunOptions("lib.h5", progress=False),
                                          **OPTS, **kwargs)
    finally:
        os.chdir(cwd)
    assert isinstance(s, Surface) and s.complete
    _same_file(work / "cli.h5", work / "lib.h5")
    for f in ("cli.h5", "lib.h5"):
        (work / f).unlink()


def test_a_set_of_direction_pairs(work, monkeypatch):
    _cli(work, "a.pt", "--x=-1:1:3", "--n-directions", "2", "--out", "set_cli.h5")
    monkeypatch.chdir(work)
    s = ls.compute_checkpoint_surface("a.pt", x=X, n_directions=2, out="set.h5",
                                      progress=False, **OPTS)
    assert isinstance(s, SurfaceSet) and s.seeds == [0, 2]
    _same_file(work / "set_cli.h5", work / "set.h5", SurfaceSet)
    assert summary_lines(s, "set.h5")[0].startswith("wrote set.h5: 2 direction pairs (seeds "
                                                    "[0, 2]), 6/6 points (")


def test_hessian_directions(work, monkeypatch):
    _cli(work, "a.pt", "--x=-1:1:3", "--y=-1:1:3", "--directions", "hessian-topbottom",
         "--hessian-samples", "30", "--out", "h_cli.h5")
    monkeypatch.chdir(work)
    s = ls.compute_checkpoint_surface("a.pt", x=X, y=Y, directions="hessian-topbottom",
                                      hessian_samples=30, out="h.h5", progress=False, **OPTS)
    assert s.group == "hessian_surface" and s.directions.recipe["pair"] == "topbottom"
    a, b = Surface.load("h_cli.h5", s.group), Surface.load("h.h5", s.group)
    assert a.recipe == b.recipe and a.directions.digest() == b.directions.digest()
    for k in a.arrays:
        assert a.arrays[k].tobytes() == b.arrays[k].tobytes(), k
    first = summary_lines(s, "h.h5")[0]
    assert first.startswith("wrote h.h5 (/hessian_surface): 2D 3x3 surface along the "
                            "Hessian's largest and smallest eigenvectors (eigenvalues ")


def test_interpolation_directions_reach_the_other_checkpoint(work):
    a, b = load_checkpoint(work / "a.pt"), load_checkpoint(work / "b.pt")
    d = ls.interpolation_directions(a, b)
    assert d.ndim == 1 and d.recipe["kind"] == "interpolation"
    assert d.recipe["target_sha256"] == b.sha256
    ta, tb = named_tensors(a.model), named_tensors(b.model)
    for k, v in d.vectors[0].items():
        torch.testing.assert_close(ta[k] + v, tb[k], rtol=0, atol=1e-6)
    # a selection holds the others at the origin: their direction is zero
    sel = ls.select_parameters(a.model, exclude="*.bias")
    held = ls.interpolation_directions(a, b, selection=sel).vectors[0]
    assert all(not torch.any(v) for k, v in held.items() if k.endswith("bias"))
    assert any(torch.any(v) for k, v in held.items() if k.endswith("weight"))


def test_plane_directions_put_the_checkpoints_at_their_coordinates(work):
    a, b, c = (load_checkpoint(work / f"{n}.pt") for n in "abc")
    ta, tb, tc = (named_tensors(m.model) for m in (a, b, c))
    for orthogonal in (False, True):
        d = ls.checkpoint_plane_directions(a, (b, c), orthogonal=orthogonal)
        coords = d.recipe["coords"]
        assert d.recipe["models"] == [b.path, c.path]
        for target, name in ((tb, "b"), (tc, "c")):
            u, v = coords[name]
            for k in ta:
                torch.testing.assert_close(ta[k] + u * d.vectors[0][k] + v * d.vectors[1][k],
                                           target[k], rtol=0, atol=1e-5)
    dx, dy = ls.checkpoint_plane_directions(a, (b, c), orthogonal=True).vectors
    assert abs(sum(float((dx[k] * dy[k]).sum()) for k in dx)) < 1e-5


@pytest.mark.parametrize(("kwargs", "library", "cli"), [
    ({"interpolate": "wide.pt"}, "the `interpolate` checkpoint 'wide.pt' is another",
     "the --interpolate checkpoint 'wide.pt' is another"),
    ({"interpolate": "a.pt"}, "the `interpolate` checkpoint 'a.pt' has the same weights",
     "the --interpolate checkpoint 'a.pt' has the same weights"),
    ({"interpolate": "b.pt", "y": Y}, "interpolate=... gives a 1D line; drop y=...",
     "--interpolate CKPT_B gives a 1D line; drop --y MIN:MAX:NUM"),
    ({"plane": ("b.pt", "c.pt")}, "plane=... gives a 2D plane; add y=...",
     "--plane CKPT_B CKPT_C gives a 2D plane; add --y MIN:MAX:NUM"),
    ({"plane": ("b.pt", "wide.pt"), "y": Y}, "a `plane` checkpoint 'wide.pt' is another",
     "a --plane checkpoint 'wide.pt' is another"),
    ({"n_directions": 2, "bn": "recalibrate"}, "drop bn='recalibrate'",
     "drop --bn recalibrate"),
    ({"directions": "hessian", "norm": "layer"}, "got norm='layer'", "got --norm layer"),
    ({"out": "b.pt", "interpolate": "b.pt"}, "`out` 'b.pt' is the `interpolate` checkpoint",
     "--out 'b.pt' is the --interpolate checkpoint"),
    ({"interpolate": "b.pt", "dir_file": "s.h5"}, "not dir_file and interpolate",
     "not dir_file and interpolate"),
])
def test_messages_name_parameters_and_the_cli_shows_options(work, kwargs, library, cli):
    cwd = Path.cwd()
    os.chdir(work)
    try:
        with pytest.raises(LandscapeError) as e:
            ls.compute_checkpoint_surface("a.pt", x=X, progress=False, **kwargs)
    finally:
        os.chdir(cwd)
    assert library in str(e.value)
    assert "--" not in str(e.value).replace(" -- ", " ")
    assert cli in flag_message(str(e.value), build_parser(), "surface")


def test_unknown_options_are_refused(work):
    with pytest.raises(TypeError, match="'bogus'"):
        ls.compute_checkpoint_surface(work / "a.pt", x=X, bogus=1)


def test_the_whole_run_holds_the_output_lock(tmp_path):
    """``out`` given in ``run`` or through ``**kwargs`` is locked for the whole call."""
    held = []

    @_atomic.holds_output("out")
    def job(*, run=None, **options):
        held.append(sorted(p.name for p in tmp_path.glob(".*.lock")))

    job(run=RunOptions(tmp_path / "a.h5"))
    job(out=tmp_path / "b.h5")
    job()
    assert held == [[".a.h5.lock"], [".b.h5.lock"], []]


def test_summary_lines_of_a_surface(work):
    s = ls.compute_checkpoint_surface(work / "a.pt", x=X, progress=False, **OPTS)
    first, *notes = summary_lines(s)
    assert first.startswith("computed: 1D 3 surface, 3/3 points (test_acc, test_loss, ")
    assert notes == []
    assert np.isfinite(s["train_loss"]).all()
