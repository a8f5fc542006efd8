"""``landscape hessian``: curvature and ratio maps into HDF5 files, one-line errors (exit 2)."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch
from landscape.cli import hessian
from landscape.cli import main as cli_main

from landscape import storage
from landscape.checkpoints import file_sha256, save_checkpoint
from landscape.data import DataSpec, load_data
from landscape.directions import random_directions
from landscape.hessian import CurvatureResult, RatioMap
from landscape.models import ModelSpec
from landscape.surface import Surface, compute_surface, load_directions

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated"),
    pytest.mark.usefixtures("one_thread"),  # conftest: tiny models, threads only add overhead
]

SPEC = ModelSpec("mlp", {"width": 8, "depth": 1})
DATA = DataSpec("digits", subset=80)



@pytest.fixture
def cli(monkeypatch):
    """``landscape.cli.main.main`` with the hessian subcommand registered (if it is not yet)."""
    parser = cli_main.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "hessian" not in sub.choices:
        hessian.add_parser(sub)
    monkeypatch.setattr(cli_main, "build_parser", lambda commands=None: parser)
    monkeypatch.delenv("LANDSCAPE_DEBUG", raising=False)
    return cli_main.main


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("hess")
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = SPEC.build()
        out.append(save_checkpoint(d / f"m{seed}.pt", model, SPEC, data=DATA.to_dict()))
    return d, out


@pytest.fixture(scope="module")
def surface_file(ckpts):
    d, (a, _) = ckpts
    from landscape.checkpoints import load_checkpoint

    ck = load_checkpoint(a)
    train = load_data(DATA, "train")
    dirs = random_directions({k: v.detach() for k, v in ck.model.named_parameters()}, seeds=0)
    f = d / "surf.h5"
    compute_surface(ck.model, dirs, {"train": train}, x="-1:1:3", y="-1:1:3", out=f,
                    progress=False, recipe={"checkpoint_sha256": file_sha256(a),
                                            "data": DATA.to_dict()},
                    provenance={"checkpoint": str(a)})
    return f


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("landscape hessian: error: ")
    return err


def test_all_results_into_a_file_and_info(cli, ckpts, tmp_path, capsys):
    _, (a, _) = ckpts
    out = tmp_path / "curv.h5"
    assert cli(["hessian", str(a), "--top-k", "3", "--min", "--trace", "--trace-samples", "12",
                "--density", "--density-steps", "10", "--density-runs", "2", "--out", str(out),
                "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("top-3 eigenvalues (LA): ")
    assert "max" in lines[1] and "min/" in lines[1]
    assert lines[2].startswith("trace ") and "hutch++, 12 HVPs" in lines[2]
    assert lines[3].startswith("spectral density: 2 SLQ runs x 10 steps")
    assert lines[-1].startswith(f"wrote {out}")
    res = CurvatureResult.load(out)
    assert res.sections == ["top", "min", "trace", "density"]
    assert res.recipe["checkpoint_sha256"] == file_sha256(a)
    assert res.recipe["data"]["subset"] == 80 and res.recipe["n_samples"] == 80
    assert res.recipe["dtype"] == "float32" and res.top_converged.all()  # the default HVPs
    assert "within 1e-5 relative" in res.provenance["hvp_precision"]
    assert "--top-k" in res.provenance["command"]
    assert cli(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "/curvature" in info and "top_eigenvalues" in info and "density_grid" in info
    # a second run with another section merges into the same group
    assert cli(["hessian", str(a), "--top-k", "0", "--trace", "--trace-method", "hutchinson",
                "--trace-samples", "5", "--out", str(out)]) == 0
    assert "kept its earlier top, min, density" in capsys.readouterr().out
    assert CurvatureResult.load(out).trace_method == "hutchinson"


def test_float32_hvps_by_default_within_the_stated_tolerance(cli, ckpts, tmp_path):
    _, (a, _) = ckpts
    argv = ["hessian", str(a), "--top-k", "1", "--min", "--trace", "--trace-samples", "3",
            "--no-progress"]
    assert cli([*argv, "--out", str(tmp_path / "f32.h5")]) == 0
    assert cli([*argv, "--dtype", "float64", "--out", str(tmp_path / "f64.h5")]) == 0
    f32, f64 = (CurvatureResult.load(tmp_path / f"{d}.h5") for d in ("f32", "f64"))
    assert (f32.recipe["dtype"], f64.recipe["dtype"]) == ("float32", "float64")
    assert "hvp_precision" in f32.provenance and "hvp_precision" not in f64.provenance
    np.testing.assert_allclose(f32.top_eigenvalues, f64.top_eigenvalues, rtol=1e-5)
    assert abs(f32.min_eigenvalue - f64.min_eigenvalue) <= 1e-5 * abs(f64.min_eigenvalue)
    assert f32.trace == pytest.approx(f64.trace, rel=1e-5)  # the same probes


def test_default_out_and_eigvec_directions(cli, ckpts, tmp_path, capsys):
    d, (a, _) = ckpts
    eig = tmp_path / "eig.h5"
    assert cli(["hessian", str(a), "--top-k", "2", "--eigvec-directions", str(eig),
                "--tol", "1e-4"]) == 0
    out = capsys.readouterr().out
    default = d / "m0_hessian.h5"
    assert f"wrote {default}" in out and f"wrote {eig}" in out
    assert CurvatureResult.load(default).eigenvectors is None  # not asked to store them
    dirs = load_directions(eig)
    assert dirs.ndim == 2 and dirs.recipe["kind"] == "hessian"
    assert dirs.recipe["checkpoint_sha256"] == file_sha256(a)


def test_ratio_map_on_a_surface_file(cli, ckpts, surface_file, tmp_path, capsys):
    _, (a, _) = ckpts
    f = tmp_path / "s.h5"
    f.write_bytes(surface_file.read_bytes())
    assert cli(["hessian", str(a), "--grid", str(f), "--max-points", "4",
                "--no-progress"]) == 0
    assert "4/9 points" in capsys.readouterr().out
    assert cli(["hessian", str(a), "--grid", str(f), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ratio map 3x3: 9/9 points" in out and f"wrote {f}" in out
    rm = RatioMap.load(f)
    assert rm.complete and np.all(np.isfinite(rm.ratio)) and rm.recipe["tol"] == 1e-3
    assert rm.recipe["checkpoint_sha256"] == file_sha256(a)
    assert Surface.load(f).complete  # the surface is kept
    assert set(storage.list_groups(f)) == {"surface", "directions", "ratio_map"}
    # another tolerance is another recipe
    assert cli(["hessian", str(a), "--grid", str(f), "--tol", "1e-2", "--no-progress"]) == 2
    assert "different recipe" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--top-k", "-1"], "'top_k' parameter must be an int in [0, inf)"),
        (["--top-k", "5000"], "'top_k' parameter must be an int in [0, 682]"),
        (["--top-k", "0"], "nothing to compute"),
        (["--tol", "0"], "'tol'"),
        (["--trace", "--trace-samples", "2"], "'trace_samples'"),
        (["--max-points", "3"], "add --grid"),
    ],
)
def test_bad_options_are_one_line(cli, ckpts, tmp_path, capsys, extra, message):
    _, (a, _) = ckpts
    assert cli(["hessian", str(a), "--out", str(tmp_path / "x.h5"), *extra]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "x.h5").exists()


def test_grid_errors_are_one_line(cli, ckpts, surface_file, tmp_path, capsys):
    _, (a, b) = ckpts
    assert cli(["hessian", str(b), "--grid", str(surface_file)]) == 2
    assert "is not the one surface" in _one_line_error(capsys)
    curv = tmp_path / "c.h5"
    CurvatureResult(trace=1.0).save(curv)
    assert cli(["hessian", str(a), "--grid", str(curv)]) == 2
    assert "holds no surface" in _one_line_error(capsys)
    assert cli(["hessian", str(a), "--grid", str(surface_file), "--trace"]) == 2
    assert "drop --trace" in _one_line_error(capsys)
    assert cli(["hessian", str(a), "--grid", str(tmp_path / "missing.h5")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    nosha = tmp_path / "nosha.h5"
    s = Surface.load(surface_file)
    Surface(s.x, s.y, s.arrays, s.done, s.directions, recipe={}, provenance={}).save(nosha)
    assert cli(["hessian", str(a), "--grid", str(nosha)]) == 2
    assert "records no checkpoint SHA-256" in _one_line_error(capsys)
    assert "ratio_map" not in storage.list_groups(surface_file)


@pytest.mark.parametrize("exc, code, word", [
    (KeyboardInterrupt, 130, "interrupted"),
    (cli_main._Terminated, 143, "terminated (SIGTERM)"),
])
def test_interrupted_point_curvature_says_nothing_was_saved(cli, ckpts, tmp_path, capsys,
                                                            monkeypatch, exc, code, word):
    """Without --grid nothing is written before the end: Ctrl-C (or SIGTERM) during the trace,
    after the top-k eigenvalues were computed, must not claim saved work."""
    import landscape.hessian.results as results

    def interrupted(*args, **kwargs):
        raise exc()

    monkeypatch.setattr(results, "hutchpp", interrupted)
    _, (a, _) = ckpts
    out = tmp_path / "c.h5"
    argv = ["hessian", str(a), "--top-k", "3", "--min", "--trace", "--density", "--out",
            str(out), "--no-progress", "--tol", "1e-3"]
    assert cli(argv) == code
    captured = capsys.readouterr()
    assert captured.err == f"landscape hessian: {word}; nothing was saved\n"
    assert not out.exists()


def test_interrupted_ratio_map_says_finished_points_are_saved(cli, ckpts, surface_file,
                                                              tmp_path, capsys, monkeypatch):
    import shutil

    import landscape.hessian.ratio_map as ratio_map

    grid = tmp_path / "s.h5"
    shutil.copy(surface_file, grid)
    real, calls = ratio_map.extreme_pairs, {"n": 0}

    def second_point_interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ratio_map, "extreme_pairs", second_point_interrupted)
    _, (a, _) = ckpts
    assert cli(["hessian", str(a), "--grid", str(grid), "--no-progress"]) == 130
    assert capsys.readouterr().err == ("landscape hessian: interrupted; finished work is saved, "
                                       "run the same command again to resume\n")
    assert RatioMap.load(grid).n_done == 1


def test_output_says_which_parameters_the_numbers_are_over(cli, ckpts, tmp_path, capsys):
    """hessian includes biases and BN parameters by default, surfaces do not: the output says
    so, and --ignore biasbn says they are held fixed."""
    _, (a, _) = ckpts
    for extra, want in (([], "biases and normalization layers included"),
                        (["--ignore", "biasbn"], "held fixed")):
        assert cli(["hessian", str(a), "--top-k", "1", "--out",
                    str(tmp_path / f"h{len(extra)}.h5"), "--no-progress", *extra]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[-2].startswith("over ") and want in lines[-2]


# ------------------------------------------------------------ the library call of the command
def _groups_equal(a, b, group: str, volatile=("provenance",)) -> None:
    ga, gb = storage.read_group(a, group), storage.read_group(b, group)
    assert set(ga.datasets) == set(gb.datasets)
    for k in ga.datasets:
        np.testing.assert_array_equal(np.asarray(ga.datasets[k]), np.asarray(gb.datasets[k]))
    assert {k: v for k, v in ga.attrs.items() if k not in volatile} == \
        {k: v for k, v in gb.attrs.items() if k not in volatile}


def test_curvature_of_checkpoint_writes_the_files_of_the_command(cli, ckpts, tmp_path, capsys):
    """One call from a notebook gives the command's /curvature group and directions file."""
    from landscape import CheckpointInputs, RunOptions, curvature_of_checkpoint

    _, (a, _) = ckpts
    argv = ["hessian", str(a), "--top-k", "2", "--min", "--tol", "1e-4", "--eigvec-directions",
            str(tmp_path / "cli_eig.h5"), "--out", str(tmp_path / "cli.h5"), "--no-progress"]
    assert cli(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    done = curvature_of_checkpoint(
        a, top_k=2, min_eig=True, tol=1e-4, dtype=torch.float32,
        eigvec_directions=tmp_path / "eig.h5", inputs=CheckpointInputs(),
        command="landscape hessian (notebook)", run=RunOptions(tmp_path / "lib.h5", progress=False))
    assert isinstance(done.result, CurvatureResult) and done.out == str(tmp_path / "lib.h5")
    assert done.result.eigenvectors is None and done.n_directions == 2
    _groups_equal(tmp_path / "cli.h5", tmp_path / "lib.h5", "curvature")
    _groups_equal(tmp_path / "cli_eig.h5", tmp_path / "eig.h5", "directions")
    lines = done.lines()
    assert len(lines) == len(printed) and lines[0] == printed[0]
    # the library words name parameters and calls; the command prints its options instead
    assert "(ignore='biasbn' to match)" in lines[-3] and "(--ignore biasbn to match)" in printed[-3]
    assert lines[-1].endswith("use with load_directions())")
    assert printed[-1].endswith("use with 'landscape surface CKPT --dir-file FILE.h5')")
    # a second call adds a section and says which earlier ones it kept
    again = curvature_of_checkpoint(a, top_k=0, trace=True, trace_samples=6,
                                    run=RunOptions(tmp_path / "lib.h5", progress=False))
    assert again.kept == ("top", "min") and "kept its earlier top, min" in again.lines()[-1]


def test_curvature_of_checkpoint_ratio_map_and_summary(ckpts, surface_file, tmp_path):
    from landscape import RunOptions, curvature_of_checkpoint

    _, (a, _) = ckpts
    f = tmp_path / "s.h5"
    f.write_bytes(surface_file.read_bytes())
    done = curvature_of_checkpoint(a, grid=f, run=RunOptions(progress=False, max_points=4))
    rm = done.result
    assert isinstance(rm, RatioMap) and done.out == str(f) and rm.n_done == 4
    s = rm.summary()
    ok = rm.done & np.isfinite(rm.ratio)
    assert (s["n_done"], s["n_points"], s["n_resolved"]) == (4, 9, int(ok.sum()))
    assert s["ratio_min"] == rm.ratio[ok].min() and s["ratio_median"] == np.median(rm.ratio[ok])
    assert s["lambda_max_max"] == rm.lambda_max[ok].max() and s["total_hvp"] == rm.total_hvp
    assert done.lines()[0].startswith("ratio map 3x3: 4/9 points, |λmin/λmax| ")
    assert done.lines(unicode=False)[0].startswith("ratio map 3x3: 4/9 points, |lambda_min/")
    assert done.lines()[-1] == f"wrote {f}"
    empty = RatioMap(x=rm.x, y=rm.y, lambda_max=rm.lambda_max, lambda_min=rm.lambda_min,
                     ratio=rm.ratio, n_hvp=rm.n_hvp, done=np.zeros_like(rm.done),
                     converged=rm.converged)
    assert np.isnan(empty.summary()["ratio_min"]) and empty.summary()["n_done"] == 0
    assert empty.lines() == ["ratio map 3x3: 0/9 points, 0 HVPs (0.0/point)"]


def test_curvature_without_eigenvectors(ckpts):
    from landscape.checkpoints import load_checkpoint

    _, (a, _) = ckpts
    model = load_checkpoint(a).model
    res = compute_curvature_of(model)
    bare = res.without_eigenvectors()
    assert res.eigenvectors is not None and res.recipe["top"]["eigenvectors"] is True
    assert bare.eigenvectors is None and bare.eigenvector_names is None
    assert bare.recipe["top"]["eigenvectors"] is False
    np.testing.assert_array_equal(bare.top_eigenvalues, res.top_eigenvalues)
    assert bare.without_eigenvectors() is bare


def compute_curvature_of(model):
    from landscape.hessian import compute_curvature

    return compute_curvature(model, load_data(DATA, "train"), top_k=1, tol=1e-3,
                             keep_eigenvectors=True)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_points": 3, "warm_start": False},
     "only a ratio map takes max_points=... and warm_start=False; add grid=..."),
    ({"warm_start": False}, "only a ratio map takes warm_start=False; add grid=..."),
    ({"top_k": 0}, "nothing to compute: top_k=0 needs min_eig=True, trace=True or density="),
    ({"blocks": "block", "min_eig": True}, "drop min_eig=True"),
    ({"grid": "s.h5", "trace": True}, "drop trace=True or leave out the 'grid' parameter"),
    ({"grid": "s.h5", "operator": "ggn"}, "'operator' and 'blocks' parameters do not apply"),
])
def test_curvature_of_checkpoint_refusals_name_parameters(ckpts, tmp_path, kwargs, message):
    from landscape import curvature_of_checkpoint
    from landscape.errors import LandscapeError

    _, (a, _) = ckpts
    with pytest.raises(LandscapeError, match=re.escape(message)):
        curvature_of_checkpoint(a, out=tmp_path / "x.h5", progress=False, **kwargs)
    assert not (tmp_path / "x.h5").exists()
