"""Comparison reports: recipe checks, the table's numbers, the files written, the CLI."""

from __future__ import annotations

import argparse
import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from landscape.cli import compare as cli_compare

from landscape import storage
from landscape.errors import LandscapeError
from landscape.hessian.ratio_map import RatioMap
from landscape.report import METRIC_KEYS, Report, check_comparable, compare, load_results
from landscape.surface import Surface
from landscape.trajectory import Trajectory

DIRS = {"kind": "random", "what": "weights", "norm": "filter", "ignore": "biasbn",
        "seeds": [0, 1], "orthogonal": False, "generator": "torch.randn(cpu, float32)"}


def _recipe(**over) -> dict:
    r = {
        "checkpoint_sha256": "0" * 64,
        "model": {"name": "resnet20", "kwargs": {"in_channels": 1}},
        "data": {"name": "digits", "root": None, "subset": None, "kwargs": {}},
        "datasets": {"train": 1437, "test": 360},
        "directions": dict(DIRS),
        "directions_sha256": "a" * 64,
        "grid": {"x": "-1:1:41", "y": "-1:1:41"},
        "loss": "cross_entropy",
        "bn": "eval",
        "bn_batches": None,
        "batch_size": "auto",
        "dtype": "float32",
    }
    r.update(over)
    return r


def _surface(a: float, n: int = 41, ndim: int = 2, **recipe) -> Surface:
    x = np.linspace(-1, 1, n)
    if ndim == 1:
        z = a * x**2 + 0.01
        y = None
        grid = {"x": f"-1:1:{n}", "y": None}
    else:
        xx, yy = np.meshgrid(x, x)
        z = a * (xx**2 + yy**2) + 0.01
        y = x.copy()
        grid = {"x": f"-1:1:{n}", "y": f"-1:1:{n}"}
    acc = np.clip(1 - z, 0, 1)
    arrays = {"train_loss": z, "train_acc": acc, "test_loss": z + 0.1, "test_acc": acc * 0.9}
    rec = _recipe(grid=grid, checkpoint_sha256=f"{int(a * 100):064d}")
    rec.update(recipe)
    return Surface(x=x, y=y, arrays=arrays, done=np.ones(z.shape, bool), recipe=rec,
                   provenance={})


def _curvature(lmax: float, lmin: float, trace: float) -> storage.Group:
    grid = np.linspace(-1, lmax * 1.1, 64)
    dens = np.exp(-0.5 * (grid / (0.1 * lmax)) ** 2)
    return storage.Group(
        attrs={"trace_stderr": 0.25},
        datasets={"top_eigenvalues": np.array([lmax, lmax / 2, lmax / 4]),
                  "min_eigenvalue": np.array(lmin), "ratio": np.array(abs(lmin / lmax)),
                  "trace": np.array(trace), "density_grid": grid, "density": dens},
    )


def _ratio_map(values: np.ndarray) -> storage.Group:
    """A complete /ratio_map group, written by the result class the report reads it with."""
    ny, nx = values.shape
    lmax = np.full(values.shape, 10.0)
    done = np.ones(values.shape, bool)
    return RatioMap(
        x=np.linspace(-1, 1, nx), y=np.linspace(-1, 1, ny), lambda_max=lmax,
        lambda_min=-values * lmax, ratio=values, n_hvp=np.full(values.shape, 20),
        done=done, converged=done, recipe={}, provenance={}).to_group()


def _trajectory(pc1: float) -> Trajectory:
    evr = np.array([pc1, 0.9 - pc1, 0.1])
    coords = np.stack([np.linspace(3, 0, 6), np.sin(np.linspace(0, 3, 6))], axis=1)
    coords[-1] = 0
    return Trajectory(
        coords=coords, explained_variance_ratio=evr, explained_variance=evr * 10,
        singular_values=np.sqrt(evr * 50), step_capture=np.full(5, 0.9),
        random_capture=np.full(5, 0.01), n_components=2, n_components_for_90=2,
        path_capture=0.9, random_path_capture=0.01, random_variance_ratio=0.02,
        epochs=np.arange(6),
    )


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """A flat residual net and a sharp plain net, each with everything a file can hold."""
    res, plain = tmp_path / "res.h5", tmp_path / "plain.h5"
    _surface(1.0).save(res)
    _surface(10.0).save(plain)
    ratio_res = np.full((5, 5), 0.01)
    ratio_plain = np.full((5, 5), 0.5)
    ratio_plain[2, 2] = 0.05  # convex only at the centre
    storage.update_file(res, {"curvature": _curvature(5.0, -0.05, 40.0),
                              "ratio_map": _ratio_map(ratio_res)})
    storage.update_file(plain, {"curvature": _curvature(50.0, -20.0, 400.0),
                                "ratio_map": _ratio_map(ratio_plain)})
    _trajectory(0.8).save(res)
    _trajectory(0.5).save(plain)
    return res, plain


def _img_sources(html: str) -> list[str]:
    from html.parser import HTMLParser

    found: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                found.append(dict(attrs)["src"])

    P().feed(html)
    return found


# --------------------------------------------------------------------------- numbers
def test_compare_table_orders_sharp_and_flat(pair):
    res, plain = pair
    rep = compare([res, plain], names=["residual", "plain"], eps=0.1)
    assert rep.names == ("residual", "plain")
    t = rep.table
    for name in rep.names:
        assert set(t[name]) == set(METRIC_KEYS)
    r, p = t["residual"], t["plain"]
    # a (x^2 + y^2) + 0.01 on -1:1:41 (step 0.05): max in the 0.1-box is a * 0.02 + 0.01
    assert r["eps_sharpness"] == pytest.approx(100 * 0.02 / 1.01)
    assert p["eps_sharpness"] == pytest.approx(100 * 0.2 / 1.01)
    assert r["basin_width_x"] == pytest.approx(2 * math.sqrt(0.1), abs=0.01)
    assert p["basin_width_x"] == pytest.approx(2 * math.sqrt(0.01), abs=0.01)
    assert p["basin_width_y"] < r["basin_width_y"]
    assert r["train_loss"] == pytest.approx(0.01) and r["train_loss_min"] == pytest.approx(0.01)
    assert r["train_acc"] == pytest.approx(0.99) and r["test_acc"] == pytest.approx(0.891)
    assert r["local_minima"] == p["local_minima"] == 1
    assert (r["lambda_max"], r["lambda_min"], r["trace"]) == (5.0, -0.05, 40.0)
    assert r["trace_stderr"] == 0.25
    assert p["ratio_at_minimum"] == pytest.approx(0.4)  # /curvature/ratio is preferred
    assert r["convex_area_fraction"] == 1.0
    assert p["convex_area_fraction"] == pytest.approx(1 / 25)
    assert r["pc1"] == pytest.approx(0.8) and p["pc1_pc2"] == pytest.approx(0.9)
    assert r["n_components_for_90"] == 2 and r["path_capture"] == pytest.approx(0.9)
    assert r["eps_sharpness_ascent"] is None  # no checkpoints given
    assert rep.recipe["grid.x"] == "-1:1:41" and rep.recipe["directions.norm"] == "filter"
    assert rep.censored == {"residual": (), "plain": ()}


def test_ratio_at_minimum_falls_back_to_the_map_and_missing_parts_are_none(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _surface(1.0).save(a)
    _surface(2.0).save(b)
    values = np.full((5, 5), 0.3)
    values[2, 2] = 0.02
    storage.update_file(a, {"ratio_map": _ratio_map(values)})
    rep = compare([a, b])
    assert rep.names == ("a", "b")
    assert rep.table["a"]["ratio_at_minimum"] == pytest.approx(0.02)
    for k in ("lambda_max", "trace", "convex_area_fraction", "pc1", "eps_sharpness_ascent"):
        assert rep.table["b"][k] is None
    wide = compare([a, b], basin_threshold=10.0)  # wider than the grid: censored lower bound
    assert wide.censored["a"] == ("basin_width_x", "basin_width_y")
    assert wide.table["a"]["basin_width_x"] == pytest.approx(2.0)
    assert "≥ 2" in wide.markdown_table()


def test_partial_and_diverged_surfaces_give_notes_not_errors(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    part = _surface(1.0)
    part.done[18:23, 18:23] = False  # the 0.1-box around the origin (index 20)
    part.done[20, 20] = True
    for k in part.arrays:
        part.arrays[k][~part.done] = np.nan
    part.save(a)
    div = _surface(2.0)
    div.arrays["train_loss"][21, 21] = np.inf
    div.save(b)
    rep = compare([a, b], eps=0.1)
    assert rep.table["a"]["eps_sharpness"] is None
    assert rep.table["b"]["eps_sharpness"] is None  # inf: null in JSON, said in a note
    text = " ".join(rep.notes)
    assert "1657/1681 points done" in text and "not computed yet" in text
    assert "infinite" in text
    assert rep.table["b"]["nonfinite_fraction"] == pytest.approx(1 / 1681)


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("change, key, va, vb", [
    ({"n": 31}, "grid.x", "-1:1:41", "-1:1:31"),
    ({"directions": {**DIRS, "norm": "layer"}}, "directions.norm", "filter", "layer"),
    ({"directions": {**DIRS, "seeds": [3, 4]}}, "directions.seeds", "[0, 1]", "[3, 4]"),
    ({"loss": "mse"}, "loss", "cross_entropy", "mse"),
    ({"bn": "recalibrate"}, "bn", "eval", "recalibrate"),
    ({"data": {"name": "mnist", "root": None, "subset": None, "kwargs": {}}}, "data",
     "digits", "mnist"),
])
def test_compare_refuses_other_recipes_naming_the_key(tmp_path, change, key, va, vb):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _surface(1.0).save(a)
    n = change.pop("n", 41)
    _surface(2.0, n=n, **change).save(b)
    with pytest.raises(LandscapeError) as info:
        compare([a, b])
    msg = str(info.value)
    assert msg.startswith(f"cannot compare: {key} differs (")
    assert f"{a}: " in msg and f"{b}: " in msg and va in msg and vb in msg
    assert "same recipe" in msg and "\n" not in msg


def test_compare_refuses_1d_vs_2d_and_other_ratio_grids(tmp_path):
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    _surface(1.0).save(a)
    _surface(1.0, ndim=1).save(b)
    with pytest.raises(LandscapeError, match=r"grid\.y differs .*-1:1:41 vs .*none"):
        compare([a, b])
    _surface(2.0).save(c)
    storage.update_file(a, {"ratio_map": _ratio_map(np.zeros((5, 5)))})
    storage.update_file(c, {"ratio_map": _ratio_map(np.zeros((3, 5)))})
    with pytest.raises(LandscapeError, match=r"ratio_map\.grid differs"):
        compare([a, c])


def test_pca_directions_compare_kind_and_norm_only(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    pca = {"kind": "pca", "what": "weights", "norm": "none", "ignore": "biasbn"}
    _surface(1.0, directions={**pca, "checkpoints": ["x1", "x2"]}).save(a)
    _surface(3.0, directions={**pca, "checkpoints": ["y1"], "seed": 9}).save(b)
    rep = compare([a, b])
    assert rep.recipe["directions.kind"] == "pca"
    _surface(3.0, directions={**pca, "kind": "random", "norm": "filter", "seeds": [0, 1],
                              "orthogonal": False}).save(b)
    with pytest.raises(LandscapeError, match=r"directions\.kind differs"):
        compare([a, b])


def test_parameter_and_file_errors(pair, tmp_path):
    res, plain = pair
    with pytest.raises(LandscapeError, match=r"grid step 0\.05"):
        compare([res, plain], eps=0.01)
    with pytest.raises(LandscapeError, match="one name per file"):
        compare([res, plain], names=["a"])
    with pytest.raises(LandscapeError, match="distinct"):
        compare([res, plain], names=["a", "a"])
    with pytest.raises(LandscapeError, match="'basin_threshold' parameter"):
        compare([res, plain], basin_threshold=-1)
    with pytest.raises(LandscapeError, match="does not exist"):
        compare([res, tmp_path / "missing.h5"])
    empty = tmp_path / "empty.h5"
    storage.update_file(empty, {})
    with pytest.raises(LandscapeError, match="nothing to compare"):
        load_results(empty)
    with pytest.raises(LandscapeError, match="'array' parameter"):
        compare([res, plain], array="val_loss")


def test_li2018_files_are_compared_on_their_grid(tmp_path):
    import h5py

    a = tmp_path / "li.h5"
    x = np.linspace(-1, 1, 41)
    xx, yy = np.meshgrid(x, x)
    with h5py.File(a, "w") as f:
        f["xcoordinates"] = x
        f["ycoordinates"] = x
        f["train_loss"] = xx**2 + yy**2
        f["train_acc"] = np.full(xx.shape, 90.0)
    b = tmp_path / "b.h5"
    _surface(2.0).save(b)
    rep = compare([a, b])
    assert rep.table["li"]["train_acc"] == pytest.approx(0.9)
    assert any("does not record directions.kind" in n for n in rep.notes)
    results = [load_results(a), load_results(b)]
    assert check_comparable(results)[0]["grid.x"] == "-1:1:41"


# --------------------------------------------------------------------------- files
def test_report_files_json_markdown_html(pair, tmp_path):
    res, plain = pair
    rep = compare([res, plain], names=["residual", "plain"])
    out = tmp_path / "report"
    saved = rep.save(out)
    assert isinstance(saved, Report) and rep.figures == ()
    for name in ("report.md", "report.html", "report.json"):
        assert (out / name).stat().st_size > 0
    assert set(saved.figures) == {"surface_contour.png", "surface_contourf.png",
                                  "trajectory.png", "ratio_map.png", "density.png"}
    for f in saved.figures:
        data = (out / f).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

    def no_constants(c):  # NaN / Infinity are not JSON
        raise AssertionError(f"non-JSON constant {c}")

    doc = json.loads((out / "report.json").read_text(), parse_constant=no_constants)
    assert doc["names"] == ["residual", "plain"]
    for name in ("residual", "plain"):
        assert list(doc["metrics"][name]) == list(METRIC_KEYS)
        for v in doc["metrics"][name].values():
            assert v is None or type(v) in (int, float)
    assert doc["metrics"]["plain"]["eps_sharpness_ascent"] is None
    assert set(doc["definitions"]) == set(METRIC_KEYS)
    assert doc["parameters"]["eps"] == 0.1 and doc["figures"] == list(saved.figures)

    md = (out / "report.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert table[0] == "| metric | residual | plain |"
    assert all(ln.count("|") == 4 for ln in table)  # one column per network
    assert len(table) == 2 + len(METRIC_KEYS)
    assert "## Definitions" in md and "![surface_contour](surface_contour.png)" in md

    html = (out / "report.html").read_text()
    # issue 13: the figures are embedded (was: '<img src="ratio_map.png"', a relative link);
    # the embedded image is the very PNG written beside the report
    assert html.count("<th>") == 3 and '<img src="data:image/png;base64,' in html
    srcs = _img_sources(html)
    assert len(srcs) == len(saved.figures)
    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in srcs]
    assert (out / "ratio_map.png").read_bytes() in embedded
    assert "http" not in html.split("<body>")[1]  # self-contained: nothing fetched


def test_report_of_1d_surfaces_overlays_the_curves(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _surface(1.0, ndim=1).save(a)
    z = _surface(5.0, ndim=1)
    z.arrays["train_loss"][3] = np.nan  # a diverged point is drawn as a marker
    z.save(b)
    rep = compare([a, b]).save(tmp_path / "out")
    assert rep.figures == ("surface_1d.png",)
    assert rep.table["a"]["basin_width_y"] is None
    assert rep.table["b"]["nonfinite_fraction"] == pytest.approx(1 / 41)
    json.loads((tmp_path / "out" / "report.json").read_text())


def test_save_refuses_a_file_as_directory(pair, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(LandscapeError, match="The 'out_dir' parameter must be a directory"):
        compare(list(pair)).save(f)


# --------------------------------------------------------------------------- checkpoints
def test_models_give_ascent_sharpness_and_missing_accuracies(tmp_path):
    from landscape.checkpoints import file_sha256, save_checkpoint
    from landscape.models import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    nets = {n: spec.build() for n in ("a", "b")}
    ckpt = save_checkpoint(tmp_path / "a.pt", nets["a"], spec)
    data = {"name": "digits", "root": None, "subset": 200, "kwargs": {}}
    files = []
    for n in nets:
        sha = file_sha256(ckpt) if n == "a" else "f" * 64
        s = _surface(1.0, data=data, model=spec.to_dict(), checkpoint_sha256=sha)
        del s.arrays["test_acc"], s.arrays["test_loss"]  # the model supplies these
        f = tmp_path / f"{n}.h5"
        s.save(f)
        files.append(f)
    # a: the checkpoint file (its SHA-256 matches the recipe); b: a module
    rep = compare(files, models={"a": ckpt, "b": nets["b"]}, ascent_eps=1e-3, ascent_steps=3)
    for n in nets:
        row = rep.table[n]
        assert row["eps_sharpness_ascent"] is not None and row["eps_sharpness_ascent"] > 0
        assert 0 <= row["test_acc"] <= 1 and row["test_loss"] > 0
        assert row["train_acc"] == pytest.approx(0.99)  # the surface's own value is kept
        # the average-case adaptive sharpness carries its Monte-Carlo standard error, the
        # one adaptive_sharpness itself reports (same seeds, same samples)
        from landscape.data import DataSpec, load_data
        from landscape.sharpness import adaptive_sharpness

        avg = adaptive_sharpness(nets[n], load_data(DataSpec.from_dict(data), "train"),
                                 rho=rep.parameters.get("adaptive_rho", 0.01), kind="average",
                                 samples=20)  # model_numbers' adaptive_samples
        assert row["adaptive_sharpness_avg"] == pytest.approx(avg.value, rel=1e-9)
        assert rep.errors[n]["adaptive_sharpness_avg"] == pytest.approx(avg.stderr, rel=1e-9)
        assert " ± " in rep._cell(n, "adaptive_sharpness_avg")
    # a checkpoint file that is not the one the surface was computed at is refused
    with pytest.raises(LandscapeError, match="SHA-256 differs"):
        compare(files, models=[None, ckpt])
    with pytest.raises(LandscapeError, match="not a network"):
        compare(files, models={"zzz": ckpt})


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="landscape")
    sub = p.add_subparsers(dest="command")
    cli_compare.add_parser(sub)
    return p


def test_cli_writes_the_report_and_prints_the_table(pair, tmp_path, capsys):
    res, plain = pair
    out = tmp_path / "rep"
    args = _parser().parse_args(["compare", str(res), str(plain), "--names", "residual,plain",
                                 "--out", str(out), "--eps", "0.1"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "| metric | residual | plain |" in text
    assert f"wrote {out / 'report.html'}" in text and f"wrote {out / 'report.json'}" in text
    assert (out / "report.md").exists() and (out / "surface_contour.png").exists()
    # default output directory beside the first file
    args = _parser().parse_args(["compare", str(res), str(plain)])
    assert args.func(args) == 0
    assert (res.parent / "compare_res_vs_plain" / "report.html").exists()


def test_cli_errors_are_one_line(pair, tmp_path):
    res, plain = pair
    other = tmp_path / "other.h5"
    _surface(2.0, n=31).save(other)
    for argv, pattern in (
        (["compare", str(res), str(other)], "cannot compare: grid.x differs"),
        (["compare", str(res), str(plain), "--names", "a"], "--names must give 2"),
        (["compare", str(res), str(plain), "--checkpoints", "a.pt"], "--checkpoints must"),
        (["compare", str(res), str(plain), "--eps", "0.001"], "grid step"),
    ):
        args = _parser().parse_args(argv)
        with pytest.raises(LandscapeError) as info:
            args.func(args)
        assert pattern in str(info.value) and "\n" not in str(info.value)


def test_cli_main_prints_one_line_errors(pair, tmp_path, capsys):
    from landscape.cli import main as cli_main

    if getattr(cli_main, "compare", None) is not cli_compare:
        pytest.skip("'landscape compare' is not registered in cli/main.py yet")
    res, _ = pair
    other = tmp_path / "other.h5"
    _surface(2.0, n=31).save(other)
    rc = cli_main.main(["compare", str(res), str(other)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "grid.x differs" in err


# --------------------------------------------------------------------------- issue 13: the report
def _tags(html: str) -> list[tuple[str, dict]]:
    from html.parser import HTMLParser

    found: list[tuple[str, dict]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    P().feed(html)
    return found


def test_html_is_self_contained_with_names_definitions_and_provenance(pair, tmp_path):
    import html as html_mod

    from landscape import __version__
    from landscape.report import definitions, metric_info

    res, plain = pair
    rep = compare([res, plain], names=["residual", "plain"], command="landscape compare x y")
    out = tmp_path / "r"
    saved = rep.save(out, dpi=30)  # small pictures: fast
    page = (out / "report.html").read_text(encoding="utf-8")
    tags = _tags(page)
    imgs = [a["src"] for t, a in tags if t == "img"]
    assert len(imgs) == len(saved.figures) == 5
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    decoded = {base64.b64decode(src.split(",", 1)[1]) for src in imgs}
    assert decoded == {(out / f).read_bytes() for f in saved.figures}
    assert not [t for t, _ in tags if t in ("link", "script", "iframe", "object", "embed")]
    for t, a in tags:  # nothing refers outside the page
        for name in ("href", "src", "data", "action"):
            v = a.get(name, "")
            assert not v or v.startswith("data:"), (t, name, v[:60])
    assert "http" not in page.lower() and "url(" not in page
    text = html_mod.unescape(page)
    info = metric_info(rep.parameters, "cross_entropy")
    for key, d in definitions(rep.parameters).items():  # definition in the metric's own row
        row = next(r for r in text.split("<tr>") if f"<code>{key}</code>" in r)
        assert info[key]["name"] in row and d in row and info[key]["better"] in row
        assert f"[{info[key]['unit']}]" in row
    assert "λmax (top Hessian eigenvalue)" in text and "↓ flatter" in text
    assert "99.0%" in text and "89.1%" in text  # accuracies as percentages, not 0.99
    assert "0.99<" not in text
    for cap in saved.captions.values():  # one real sentence per figure, not the file stem
        assert cap.endswith(".") and len(cap.split()) > 8 and f"{cap}</figcaption>" in text
    env = saved.provenance["environment"]
    assert env["landscape"] == __version__ and env["torch"] == torch.__version__
    assert env["numpy"] == np.__version__ and env["command"] == "landscape compare x y"
    for field_ in ("landscape version", "torch version", "numpy version", "date",
                   "command line", "checkpoint SHA-256", "training recipe", "model", "data"):
        assert f"<dt>{field_}</dt>" in text, field_
    for v in (__version__, torch.__version__, env["date"], "landscape compare x y",
              f"{100:064d}", f"{1000:064d}"):  # both surfaces' checkpoint hashes
        assert v in text, v
    # the Markdown holds the same, figures as relative links with their caption below
    md = (out / "report.md").read_text(encoding="utf-8")
    for key, d in definitions(rep.parameters).items():
        assert d.replace("|", "∣") in md and info[key]["name"].replace("|", "∣") in md
    assert f"*Figure 4. {saved.captions['ratio_map.png']}*" in md
    assert f"{100:064d}" in md and "- torch version: " + torch.__version__ in md
    # the JSON holds them too, and reads back into the same report
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["provenance"]["networks"]["plain"]["checkpoint_sha256"] == {
        "surface": f"{1000:064d}"}
    assert set(doc["metric_info"]) == set(METRIC_KEYS)
    again = Report.load(out / "report.json")
    assert again.to_markdown() == md
    assert again.readme_table() == saved.readme_table()


def test_parts_at_different_checkpoints_are_noted(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _surface(1.0).save(a)
    _surface(2.0).save(b)
    g = _curvature(5.0, -0.05, 40.0)
    g.attrs["recipe"] = json.dumps({"checkpoint_sha256": "e" * 64})
    storage.update_file(a, {"curvature": g})
    rep = compare([a, b])
    assert any("different checkpoints" in n for n in rep.notes)
    assert rep.provenance["networks"]["a"]["checkpoint_sha256"]["curvature"] == "e" * 64


def test_progress_bar_and_training_recipe_from_the_checkpoint(tmp_path, capsys):
    from landscape.checkpoints import file_sha256, save_checkpoint
    from landscape.models import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec("mlp", {"width": 4, "depth": 1})
    config = {"lr": 0.05, "epochs": 2, "optimizer": "sgd"}
    ckpt = save_checkpoint(tmp_path / "runs" / "a" / "epoch_0002.pt", spec.build(), spec,
                           config=config, seed=7, epoch=2)
    data = {"name": "digits", "root": None, "subset": 64, "kwargs": {}}
    f = tmp_path / "a.h5"
    _surface(1.0, data=data, model=spec.to_dict(), checkpoint_sha256=file_sha256(ckpt)).save(f)
    capsys.readouterr()
    rep = compare([f], models=[ckpt], ascent_steps=1, progress=True)
    err = capsys.readouterr().err
    assert "compare: model steps" in err and "2/2" in err and "ascent sharpness" in err
    assert "<" in err or "?" in err  # tqdm's elapsed<remaining (ETA)
    p = rep.provenance["networks"]["a"]
    assert p["training"] == {**config, "seed": 7} and p["epoch"] == 2
    assert p["training_source"] == "checkpoint metadata"
    assert p["checkpoint"] == str(ckpt) and p["checkpoint_sha256"]["checkpoint given"] == \
        file_sha256(ckpt)
    md = rep.to_markdown()
    assert '"lr": 0.05' not in md and "lr=0.05" in md and "seed=7" in md
    capsys.readouterr()
    compare([f], models=[ckpt], ascent_steps=1, progress=False)
    assert "model steps" not in capsys.readouterr().err


def test_update_readme_refuses_missing_markers(pair, tmp_path):
    from landscape.report import update_readme

    rep = compare(list(pair))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")
    with pytest.raises(LandscapeError, match="markers"):
        update_readme(readme, rep)
    assert readme.read_text() == "# x\n"
    from landscape.report.render import README_BEGIN, README_END

    readme.write_text(f"# x\n{README_BEGIN}\nold\n{README_END}\ntail\n")
    assert not update_readme(readme, rep, check=True)
    assert "old" in readme.read_text()
    assert not update_readme(readme, rep)
    assert update_readme(readme, rep, check=True)
    text = readme.read_text()
    assert text.startswith("# x\n") and text.endswith(f"{README_END}\ntail\n")
    assert rep.markdown_table() in text


def test_curvature_numbers_read_the_result_class():
    from landscape.hessian.results import CurvatureResult
    from landscape.report.numbers import curvature_numbers

    top = np.array([4.0, 2.0, -1.0])
    got, notes = curvature_numbers(CurvatureResult(top_eigenvalues=top, top_which="LA",
                                                   min_eigenvalue=-2.0, trace=9.0))
    assert got == {"lambda_max": 4.0, "lambda_min": -2.0, "ratio_at_minimum": 0.5,
                   "trace": 9.0, "trace_stderr": None} and notes == []
    # largest magnitude with a positive maximum: no larger eigenvalue can be missing
    got, _ = curvature_numbers(CurvatureResult(top_eigenvalues=np.array([-9.0, 3.0]),
                                               top_which="LM"))
    assert got["lambda_max"] == 3.0
    for which, vals in (("SA", [-3.0, -1.0]), ("LM", [-9.0, -5.0])):  # λmax not among them
        got, notes = curvature_numbers(CurvatureResult(top_eigenvalues=np.array(vals),
                                                       top_which=which))
        assert got["lambda_max"] is None and "does not give λmax" in notes[0]


def test_spread_over_direction_pairs_equals_separate_files(tmp_path):
    """Mean ± sd over K direction pairs: per pair, the value of a single-direction file."""
    from torch import nn

    from landscape._functional import named_tensors
    from landscape.directions import random_directions
    from landscape.metrics import eps_sharpness_from_surface
    from landscape.stats import summarize
    from landscape.surface import compute_surface
    from landscape.surface_set import compute_surface_set

    from .conftest import toy_classifier

    files, singles = [], {}
    for name, seed in (("a", 7), ("b", 8)):
        model, data = toy_classifier(seed, nn.ReLU, n=30)
        out = tmp_path / f"{name}.h5"
        compute_surface_set(model, {"train": data}, seeds=[0, 2, 4], x="-1:1:5", y="-1:1:5",
                            batch_size=10, out=out, progress=False)
        files.append(str(out))
        singles[name] = [compute_surface(model, random_directions(named_tensors(model),
                                                                  seeds=s),
                                         {"train": data}, x="-1:1:5", y="-1:1:5",
                                         batch_size=10, progress=False) for s in (0, 2, 4)]
    rep = compare(files, names=["a", "b"], eps=0.5, progress=False)
    for name in ("a", "b"):
        got = rep.spread[name]["eps_sharpness"]
        want = [eps_sharpness_from_surface(s, 0.5) for s in singles[name]]
        assert got == want  # bit for bit per direction pair
        summ = rep.spread_summary()["networks"][name]["eps_sharpness"]
        assert summ["mean"] == summarize(want).mean and summ["n"] == 3
        # the main table uses pair 0 (seed 0, the default single surface)
        assert rep.table[name]["eps_sharpness"] == want[0]
    md = rep.to_markdown()
    assert "## Over many direction pairs" in md and "a − b" in md
    assert any(v in md for v in ("exceeds the spread", "within the spread"))
    assert "Over many direction pairs" in rep.to_html()
    again = Report.from_dict(json.loads(rep.to_json()))
    assert again.spread_markdown() == rep.spread_markdown()


def test_mechanism_and_connectivity_sections(tmp_path):
    """Files holding mechanism results and /connect give report sections and figures."""
    from landscape.connect import compute_connectivity, connectivity_numbers
    from landscape.mechanisms import QUICK, run_analyses
    from landscape.models import ModelSpec

    torch.manual_seed(0)
    x = torch.randn(40, 64)
    y = torch.randint(0, 10, (40,))
    from landscape.data import TensorData

    data = TensorData(x, y, "toy")
    files = []
    for name, shortcut in (("res", True), ("plain", False)):
        kw = {"in_features": 64, "num_classes": 10, "width": 16, "depth": 2,
              "shortcut": shortcut}
        a, b = (ModelSpec("mlp", kw).build().eval() for _ in range(2))
        out = tmp_path / f"{name}.h5"
        results, _ = run_analyses(a, data, what=("lesion", "dilution"), test_data=data,
                                  settings=QUICK)
        for r in results.values():
            r.save(out)
        conn = compute_connectivity(a, b, {"train": data}, steps=5, n_points=3, progress=False,
                                    out=out)
        files.append(str(out))
        want = connectivity_numbers(conn)
    rep = compare(files, names=["res", "plain"], progress=False)
    assert set(rep.sections) == {"mechanisms", "connectivity"}
    assert rep.sections["connectivity"]["plain"] == pytest.approx(want, nan_ok=True)
    assert "lesion_single_mean" in rep.sections["mechanisms"]["res"]
    md = rep.to_markdown()
    assert "## Why skips help: mechanisms" in md and "## Connectivity of minima" in md
    assert "Frankle et al. 2020" in md
    saved = rep.save(tmp_path / "report")
    assert {"mechanisms_lesion.png", "mechanisms_dilution.png",
            "connectivity.png"} <= set(saved.figures)
    assert Report.from_dict(json.loads(saved.to_json())).sections_markdown() == \
        saved.sections_markdown()


def test_losses_carry_their_standard_errors_and_subsets_their_distance(tmp_path):
    """Cells 'value ± se' where the file stores standard errors (old files: the value alone),
    and a data-subset section only for surfaces on subsets."""
    new, old = tmp_path / "new.h5", tmp_path / "old.h5"
    s = _surface(1.0)
    s.stderrs = {"train_loss_se": np.full(s.shape, 0.0123), "test_loss_se": np.full(s.shape, 0.02)}
    s.subset_check = {"train": {"subset_loss": 0.0112, "subset_loss_se": 0.001,
                                "subset_n": 300, "subset_acc": 1.0, "full_loss": 0.0102,
                                "full_n": 1437, "full_acc": 1.0}}
    s.save(new)
    _surface(10.0).save(old)  # as written before standard errors were stored
    rep = compare([new, old], names=["new", "old"], progress=False)
    assert rep.errors == {"new": {"train_loss": 0.0123, "test_loss": 0.02}, "old": {}}
    md = rep.markdown_table()
    row = [ln for ln in md.splitlines() if ln.startswith("| Train loss at θ*")][0]
    assert "| 0.01 ± 0.012 |" in row and row.endswith("| 0.01 |")
    assert set(rep.sections) == {"subset"} and "old" not in rep.sections["subset"]
    sub = rep.sections["subset"]["new"]
    assert sub["train_loss_subset_minus_full_in_se"] == pytest.approx(1.0)
    assert sub["train_n_full"] == 1437
    text = rep.to_markdown()
    assert "## Data subsets: how far from the full data" in text and "± 0.012" in text
    back = Report.from_dict(json.loads(rep.to_json()))
    assert back.errors == rep.errors and back.markdown_table() == md
    assert "± 0.012" in rep.to_html()
    only_old = compare([old], progress=False)
    assert "subset" not in only_old.sections and "±" not in only_old.markdown_table()


def _hessian_surface(a: float, lam_y: float, pair: str = "top", n: int = 11) -> Surface:
    """A /hessian_surface: the quadratic a·x² + lam_y·y²/2 (lam_y < 0: a saddle) along two
    'eigenvectors' with the eigenvalues 2a and lam_y in the directions' recipe."""
    import dataclasses as dc

    from landscape.directions import Directions

    s = _surface(a, n=n)
    xx, yy = np.meshgrid(s.x, s.y)
    z = a * xx**2 + 0.5 * lam_y * yy**2 + 0.01
    arrays = {"train_loss": z, "train_acc": np.clip(1 - z, 0, 1), "test_loss": z + 0.1,
              "test_acc": np.clip(0.9 - z, 0, 1)}
    recipe = {"kind": "hessian", "pair": pair, "k": 2, "norm": "filter", "scale": "filter",
              "ignore": "biasbn", "n_samples": 300, "eigenvalues": [2 * a, lam_y]}
    d = Directions(({"w": torch.ones(2, 2)}, {"w": torch.eye(2)}), recipe)
    rec = _recipe(grid={"x": f"-1:1:{n}", "y": f"-1:1:{n}"}, directions=recipe)
    return dc.replace(s, arrays=arrays, directions=d, recipe=rec, group="hessian_surface")


def test_hessian_direction_slices_section(tmp_path):
    from landscape.report.numbers import surface_numbers

    files = []
    for name, a, lam in (("res", 1.0, 0.5), ("plain", 10.0, -3.0)):
        f = tmp_path / f"{name}.h5"
        _surface(a).save(f)
        _hessian_surface(a, lam).save(f)
        files.append(f)
    back = Surface.load(files[1], "hessian_surface")
    assert back.group == "hessian_surface" and back.directions.recipe["eigenvalues"][1] == -3.0
    assert Surface.load(files[1]).directions is None  # /surface keeps its own (none here)
    rep = compare(files, names=["res", "plain"], eps=0.2, progress=False)
    sec = rep.sections["hessian"]
    assert sec["plain"]["hessian_lambda_x"] == 20.0 and sec["plain"]["hessian_lambda_y"] == -3.0
    want, _, _ = surface_numbers(back, "plain", eps=0.2, basin_threshold=0.1,
                                 array="train_loss")
    assert sec["plain"]["hessian_eps_sharpness"] == pytest.approx(want["eps_sharpness"])
    assert sec["plain"]["hessian_basin_width_y"] == pytest.approx(want["basin_width_y"])
    # the main table is the random surface's, never the Hessian one's
    rand, _, _ = surface_numbers(Surface.load(files[1]), "plain", eps=0.2, basin_threshold=0.1,
                                 array="train_loss")
    assert rep.table["plain"]["eps_sharpness"] == pytest.approx(rand["eps_sharpness"])
    assert rand["eps_sharpness"] != pytest.approx(want["eps_sharpness"])
    md = rep.to_markdown()
    assert "## Hessian-direction slices" in md and "λmin for a top/bottom slice" in md
    assert "Hessian-direction slices" in rep.to_html()
    assert Report.from_dict(json.loads(rep.to_json())).sections_markdown() == \
        rep.sections_markdown()
    plain_only = tmp_path / "p.h5"
    _surface(1.0).save(plain_only)
    other = compare([plain_only], progress=False)
    assert "hessian" not in other.sections and "Hessian-direction" not in other.to_markdown()
    _hessian_surface(1.0, -1.0, pair="topbottom").save(plain_only)
    with pytest.raises(LandscapeError, match="hessian.directions.pair differs"):
        compare([files[0], plain_only], progress=False)


def test_report_artefacts_of_issue_25(tmp_path):
    """Each fails on 7e54c82: the grid minimum (the same origin value for every direction
    pair, sd 0) is not in the spread table; intervals are Student-t, not a percentile
    bootstrap; the absolute rise within ε sits beside Keskar's value; Hessian-slice rows are
    in weight distance, not filter-normalized units."""
    import math

    from scipy import stats
    from torch import nn

    from landscape.stats import summarize
    from landscape.surface_set import compute_surface_set

    from .conftest import toy_classifier

    files = []
    for name, seed in (("a", 7), ("b", 8)):
        model, data = toy_classifier(seed, nn.ReLU, n=30)
        out = tmp_path / f"{name}.h5"
        compute_surface_set(model, {"train": data}, seeds=[0, 2, 4], x="-1:1:5", y="-1:1:5",
                            batch_size=10, out=out, progress=False)
        files.append(str(out))
    import dataclasses

    rep = compare(files, names=["a", "b"], eps=0.5, progress=False)
    labels = [r[0] for r in rep._spread_rows()[1]]
    assert any("rise within ε" in lab for lab in labels)
    # at a minimum the grid minimum is the origin for every pair: one value, sd 0
    flat = dataclasses.replace(rep, spread={n: {**d, "train_loss_min": [0.25] * 3}
                                            for n, d in rep.spread.items()})
    labels = [r[0] for r in flat._spread_rows()[1]]
    assert not any(lab.startswith("Lowest") for lab in labels)  # degenerate: left out
    assert len(labels) == len(rep._spread_rows()[1]) - 1
    for name in ("a", "b"):
        rise = rep.spread[name]["eps_rise"]
        keskar = rep.spread[name]["eps_sharpness"]
        base = rep.table[name]["train_loss"]
        assert rise == pytest.approx([k / 100 * (1 + base) for k in keskar])
    x = [1.0, 2.0, 4.0]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(x), scale=stats.sem(x))
    s = summarize(x)
    assert (s.lo, s.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert "bootstrap" not in rep.to_markdown()
    hdef = rep._section_definition("hessian_eps_sharpness")
    assert "filter-normalized" not in hdef and "weight distance" in hdef
    assert "weight-distance units" in rep._section_definition("hessian_basin_width_x")
    assert math.isfinite(rep.table["a"]["eps_rise"])


def test_compare_takes_opened_files_and_read_results_as_well_as_paths(tmp_path):
    """A notebook compares what it holds: ls.open(...) or load_results(...), no saving first."""
    import landscape as ls
    from landscape.report import load_results
    from landscape.surface import Surface

    x = np.linspace(-1, 1, 5)
    z = np.add.outer(x**2, x**2)
    for name, k in (("a", 1.0), ("b", 2.0)):
        Surface(x=x, y=x, arrays={"train_loss": k * z},
                done=np.ones(z.shape, bool)).save(tmp_path / f"{name}.h5")
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    by_path = ls.compare(paths, eps=0.5, progress=False)
    opened = ls.compare([ls.open(p) for p in paths], eps=0.5, progress=False)
    read = ls.compare([load_results(p) for p in paths], names=["A", "B"], eps=0.5,
                      progress=False)
    assert by_path.names == opened.names == ("a", "b") and read.names == ("A", "B")
    assert by_path.table["a"] == opened.table["a"] == read.table["A"]
    assert by_path.table["b"]["eps_sharpness"] == 2 * by_path.table["a"]["eps_sharpness"]
