"""Bad-input corpus through the CLI: every case exits 2 with one clear line and touches nothing.

Each case runs ``landscape.cli.main.main(argv)`` in a fresh copy of a small corpus (good and
broken checkpoints, landscape / foreign / truncated HDF5 files, a finished surface) and checks:

* exit code 2, nothing on stdout, exactly ONE line on stderr in the CLI's error format, which
  names the problem (an expected fragment), with no traceback and no progress-bar residue
  (so the input was validated before any computation started);
* every file of the working directory is byte-identical afterwards (SHA-256 of each file) and
  nothing was created or removed.

A few cases also run through a real ``python -m landscape.cli`` subprocess, so that nothing
printed outside ``main`` (warnings, tracebacks) reaches stderr. Behaviours that are *not*
errors are tested at the end: diverged (NaN/inf) points are data, and a pickled model loads
with ``--trust-checkpoint``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from landscape.cli.main import main

from landscape import storage
from landscape._functional import named_tensors
from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec
from landscape.directions import Directions, random_direction
from landscape.models import ModelSpec
from landscape.surface import Surface, save_directions

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k != "LANDSCAPE_DEBUG"}
ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
ENV["OMP_NUM_THREADS"] = "1"

X = "--x=-1:1:3"
DATA = DataSpec("digits", subset=100).to_dict()


def _model(width: int = 8, seed: int = 0) -> tuple[torch.nn.Module, ModelSpec]:
    spec = ModelSpec("mlp", {"width": width, "depth": 1})
    torch.manual_seed(seed)
    return spec.build(), spec


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Directory of good and broken inputs, copied afresh into each test's working dir."""
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    net, spec = _model()
    save_checkpoint(d / "mlp.pt", net, spec, data=DATA)
    save_checkpoint(d / "mlp16.pt", *_model(width=16), data=DATA)
    save_checkpoint(d / "mlp_b.pt", *_model(seed=1), data=DATA)
    raw = (d / "mlp.pt").read_bytes()
    (d / "empty.pt").write_bytes(b"")
    (d / "garbage.pt").write_bytes(rng.bytes(4096))
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    for name, value in (("nan.pt", float("nan")), ("inf.pt", float("inf"))):
        bad, _ = _model()
        with torch.no_grad():
            bad.head.weight[0, 0] = value
        save_checkpoint(d / name, bad, spec, data=DATA)
    shutil.copy(d / "mlp.pt", d / "mlp_copy.pt")
    torch.save(_model()[0], d / "pickled.pt")
    torch.save(_model()[0].state_dict(), d / "state_only.pt")
    torch.save([1, 2, 3], d / "list.pt")

    cwd = Path.cwd()
    os.chdir(d)
    try:
        assert main(["surface", "mlp.pt", X, "--out", "s.h5", "--no-progress"]) == 0
        assert main(["surface", "mlp16.pt", X, "--out", "other.h5", "--no-progress"]) == 0
        assert main(["surface", "mlp.pt", X, "--y=-1:1:3", "--n-directions", "2", "--out",
                     "set.h5", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    w = named_tensors(net)
    dx = random_direction(w, seed=0)
    save_directions(d / "zero_dirs.h5", Directions(({k: torch.zeros_like(v) for k, v in
                                                     w.items()},), {"kind": "random"}))
    save_directions(d / "collinear_dirs.h5", Directions(
        (dx, {k: -2 * v for k, v in dx.items()}), {"kind": "random"}))
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = np.arange(3.0)
    with h5py.File(d / "li.h5", "w") as f:
        f["xcoordinates"] = np.linspace(-1, 1, 3)
        f["train_loss"] = np.array([1.0, 0.5, -1.0])
    with h5py.File(d / "li_str_loss.h5", "w") as f:
        f["xcoordinates"] = np.linspace(-1, 1, 3)
        f["train_loss"] = np.array([b"1.0", b"0.5", b"-1"])
    with h5py.File(d / "li_short_loss.h5", "w") as f:
        f["xcoordinates"] = np.linspace(-1, 1, 3)
        f["train_loss"] = np.array([1.0, 0.5])
    storage.update_file(d / "nodirs.h5", {"curvature": storage.Group(attrs={"top": 1.0})})
    storage.update_file(d / "damaged.h5", {"surface": storage.Group(  # no 'done' mask
        attrs={"recipe": "{}", "provenance": "{}", "ndim": 1, "arrays": '["train_loss"]'},
        datasets={"x": np.linspace(-1, 1, 3), "train_loss": np.ones(3)})})
    with h5py.File(d / "future.h5", "w") as f:
        f.attrs["format"] = "landscape"
        f.attrs["format_version"] = 99
    _damaged_copies(d)
    h5 = (d / "s.h5").read_bytes()
    (d / "truncated.h5").write_bytes(h5[: len(h5) // 2])
    (d / "garbage.h5").write_bytes(rng.bytes(4096))
    (d / "empty.h5").write_bytes(b"")
    (d / "afile").write_text("not a directory\n")
    (d / "adir").mkdir()
    (d / "oldrun").mkdir()
    (d / "hfmodel").mkdir()  # a HuggingFace model directory
    (d / "hfmodel" / "config.json").write_text('{"model_type": "gpt2"}\n')
    (d / "hfmodel" / "model.safetensors").write_bytes(rng.bytes(64))
    shutil.copy(d / "mlp.pt", d / "oldrun" / "epoch_0000.pt")
    # runs of `landscape train` that the train cases' settings must not resume
    from landscape.training import TrainConfig

    for name, status, config in (("otherrun", "running", {"epochs": 2, "lr": 0.05}),
                                 ("divergedrun", "diverged", {"epochs": 1})):
        (d / name).mkdir()
        shutil.copy(d / "mlp.pt", d / name / "epoch_0000.pt")
        (d / name / "run.json").write_text(json.dumps({
            "format": "landscape.run", "format_version": 1, "status": status,
            "model": {"name": "mlp", "kwargs": {}},
            "data": DataSpec("digits", subset=50).to_dict(),
            "config": TrainConfig(**config).to_dict(),
            "checkpoints": [{"epoch": 0, "checkpoint": "epoch_0000.pt"}],
        }))
    return d


def _replace(f: h5py.File, name: str, data) -> None:
    del f[name]
    f[name] = data


#: Copies of the valid 3-point surface 's.h5', each damaged in one way (name -> damage).
DAMAGES = {
    "bad_str_loss.h5": lambda f: _replace(f, "surface/train_loss", np.array([b"a", b"b", b"c"])),
    "bad_loss_shape.h5": lambda f: _replace(f, "surface/train_loss", np.ones(5)),
    "bad_loss_2d.h5": lambda f: _replace(f, "surface/test_loss", np.ones((3, 3))),
    "bad_done_shape.h5": lambda f: _replace(f, "surface/done", np.ones(25, dtype=np.uint8)),
    "bad_done_values.h5": lambda f: _replace(f, "surface/done", np.array([1, 7, 1], np.uint8)),
    "bad_x_length.h5": lambda f: _replace(f, "surface/x", np.linspace(-1, 1, 4)),
    "bad_x_2d.h5": lambda f: _replace(f, "surface/x", np.linspace(-1, 1, 3)[None, :]),
    "bad_x_values.h5": lambda f: _replace(f, "surface/x", np.array([-1.0, 0.5, 1.0])),
    "bad_x_nan.h5": lambda f: _replace(f, "surface/x", np.array([-1.0, np.nan, 1.0])),
    "bad_y_without_ndim.h5": lambda f: f.__setitem__("surface/y", np.linspace(-1, 1, 3)),
    "bad_arrays_attr.h5": lambda f: f["surface"].attrs.__setitem__("arrays", "not json"),
    "bad_missing_array.h5": lambda f: f.__delitem__("surface/test_acc"),
    "bad_external_link.h5": lambda f: (f.__delitem__("surface"), f.__setitem__(
        "surface", h5py.ExternalLink("s.h5", "/surface"))),
    "bad_dangling_link.h5": lambda f: (f.__delitem__("surface"), f.__setitem__(
        "surface", h5py.ExternalLink("missing.h5", "/surface"))),
    "bad_soft_link.h5": lambda f: (f.move("surface", "elsewhere"), f.__setitem__(
        "surface", h5py.SoftLink("/elsewhere"))),
    "bad_string_direction.h5": lambda f: _replace(
        f, "directions/x/head.bias", np.array([b"z"] * 10)),
}


def _damaged_copies(d: Path) -> None:
    for name, damage in DAMAGES.items():
        shutil.copy(d / "s.h5", d / name)
        with h5py.File(d / name, "r+") as f:
            damage(f)
    shutil.copy(d / "set.h5", d / "bad_set_done_shape.h5")  # a surface set's mask
    with h5py.File(d / "bad_set_done_shape.h5", "r+") as f:
        _replace(f, "surfaces/done", np.ones(25, dtype=np.uint8))
    # a ratio map whose |λmin/λmax| is text
    shutil.copy(d / "s.h5", d / "bad_ratio_map.h5")
    x = np.linspace(-1, 1, 3)
    storage.update_file(d / "bad_ratio_map.h5", {"ratio_map": storage.Group(
        attrs={"recipe": "{}", "ndim": 1},
        datasets={"x": x, "ratio": np.array([b"r"] * 3), "lambda_max": x, "lambda_min": x,
                  "n_hvp": np.ones(3, np.int64), "done": np.ones(3, np.uint8),
                  "converged": np.ones(3, np.uint8)})})


@pytest.fixture
def work(corpus, tmp_path, monkeypatch) -> Path:
    w = tmp_path / "w"
    shutil.copytree(corpus, w)
    monkeypatch.chdir(w)
    return w


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file and a marker for every directory under ``root`` (hidden included)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), root) + "/"] = "dir"
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def assert_one_line_error(code: int, out: str, err: str, fragment: str, command: str) -> None:
    assert code == 2, f"exit {code}; stderr: {err!r}"
    assert out == "", f"stdout should be empty on error: {out!r}"
    assert "Traceback" not in err, err
    assert "\r" not in err and "%|" not in err, f"progress bar residue: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"not one line: {err!r}"
    prefix = f"landscape {command}: error: " if command else "landscape: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


S = ["surface", "mlp.pt"]
K = ["connect", "mlp.pt", "mlp_b.pt", "--out", "ab.h5"]
C = ["compare", "s.h5", "s.h5", "--names", "a,b", "--eps", "1"]
T = ["train", "--model", "mlp", "--epochs", "1", "--subset", "50", "--no-progress"]

# (id, argv, a fragment the message must contain)
CASES = [
    # checkpoints
    ("ckpt-missing", ["surface", "missing.pt", X], "does not exist"),
    ("ckpt-empty", ["surface", "empty.pt", X], "is empty"),
    ("ckpt-random-bytes", ["surface", "garbage.pt", X], "corrupted"),
    ("ckpt-truncated", ["surface", "truncated.pt", X], "truncated"),
    ("ckpt-is-a-directory", ["surface", "adir", X], "not a file"),
    ("ckpt-holds-no-weights", ["surface", "list.pt", X], "not model weights"),
    ("ckpt-without-spec-no-model", ["surface", "state_only.pt", X], "--model"),
    ("ckpt-other-arch-resnet20", [*S, X, "--model", "resnet20"], "does not fit the model"),
    ("ckpt-other-mlp-width", [*S, X, "--model", "mlp", "--model-kwargs",
                              '{"width": 16, "depth": 1}'], "shape mismatch"),
    ("ckpt-nan-weights", ["surface", "nan.pt", X], "non-finite"),
    ("ckpt-inf-weights", ["surface", "inf.pt", X], "non-finite"),
    ("ckpt-pickled-untrusted", ["surface", "pickled.pt", X], "--trust-checkpoint"),
    # HDF5 files
    ("foreign-h5-as-out", [*S, X, "--out", "foreign.h5"], "not a landscape file"),
    ("foreign-h5-as-dir-file", [*S, X, "--dir-file", "foreign.h5"], "not a landscape file"),
    ("foreign-h5-to-info", ["info", "foreign.h5"], "not a landscape file"),
    ("li2018-h5-as-out", [*S, X, "--out", "li.h5"], "Li et al."),
    ("li2018-h5-as-dir-file", [*S, X, "--dir-file", "li.h5"], "Li et al."),
    ("truncated-h5-to-info", ["info", "truncated.h5"], "not a valid HDF5"),
    ("truncated-h5-as-out", [*S, X, "--out", "truncated.h5"], "not a valid HDF5"),
    ("truncated-h5-as-dir-file", [*S, X, "--dir-file", "truncated.h5"], "not a valid HDF5"),
    ("random-bytes-h5-to-info", ["info", "garbage.h5"], "not a valid HDF5"),
    ("empty-h5-to-info", ["info", "empty.h5"], "not a valid HDF5"),
    ("damaged-surface-to-info", ["info", "damaged.h5"], "damaged /surface group"),
    ("damaged-surface-as-out", [*S, X, "--out", "damaged.h5"], "damaged /surface group"),
    ("future-format-to-info", ["info", "future.h5"], "upgrade landscape"),
    ("future-format-as-out", [*S, X, "--out", "future.h5"], "upgrade landscape"),
    ("info-on-a-directory", ["info", "adir"], "is a directory"),
    ("info-missing-file", ["info", "missing.h5"], "does not exist"),
    # malformed landscape files: one line naming the file, the dataset and what was expected
    ("str-loss-to-info", ["info", "bad_str_loss.h5"],
     "'bad_str_loss.h5' has a damaged /surface group: dataset 'train_loss' is a string array"),
    ("str-loss-to-plot", ["plot", "bad_str_loss.h5"], "dataset 'train_loss' is a string array"),
    ("str-loss-as-out", [*S, X, "--out", "bad_str_loss.h5"], "dataset 'train_loss'"),
    ("loss-shape-to-info", ["info", "bad_loss_shape.h5"],
     "dataset 'train_loss' is a float64 array of shape (5,); expected numbers of shape (3,)"),
    ("loss-shape-as-out", [*S, X, "--out", "bad_loss_shape.h5"], "dataset 'train_loss'"),
    ("loss-2d-to-info", ["info", "bad_loss_2d.h5"], "dataset 'test_loss'"),
    ("done-shape-to-info", ["info", "bad_done_shape.h5"],
     "dataset 'done' is a uint8 array of shape (25,); expected a 0/1 mask of shape (3,)"),
    ("done-shape-as-out", [*S, X, "--out", "bad_done_shape.h5"], "dataset 'done'"),
    ("done-values-to-info", ["info", "bad_done_values.h5"], "values other than 0 and 1"),
    ("x-length-to-plot", ["plot", "bad_x_length.h5"],
     "dataset 'x' has 4 coordinates but the arrays have 3 points"),
    ("x-length-as-out", [*S, X, "--out", "bad_x_length.h5"], "dataset 'x' has 4 coordinates"),
    ("x-2d-as-out", [*S, X, "--out", "bad_x_2d.h5"],
     "dataset 'x' is a float64 array of shape (1, 3); expected the grid coordinates"),
    ("x-2d-to-plot", ["plot", "bad_x_2d.h5"], "dataset 'x'"),
    ("x-values-differ-from-recipe-as-out", [*S, X, "--out", "bad_x_values.h5"],
     "its 'x' coordinates are not those of its recipe's grid -1:1:3"),
    ("x-nan-to-info", ["info", "bad_x_nan.h5"], "dataset 'x' holds non-finite coordinates"),
    ("y-without-ndim-to-info", ["info", "bad_y_without_ndim.h5"], "attribute 'ndim' is 1"),
    ("arrays-attr-not-json-to-info", ["info", "bad_arrays_attr.h5"],
     "attribute 'arrays' is not a JSON list"),
    ("missing-array-to-plot", ["plot", "bad_missing_array.h5"],
     "dataset 'test_acc' is missing"),
    ("external-link-to-info", ["info", "bad_external_link.h5"],
     "/surface is an external link to 's.h5:/surface'"),
    ("external-link-to-plot", ["plot", "bad_external_link.h5"], "external link"),
    ("external-link-as-out", [*S, X, "--out", "bad_external_link.h5"], "external link"),
    ("dangling-link-to-info", ["info", "bad_dangling_link.h5"],
     "external link to 'missing.h5:/surface'"),
    ("soft-link-to-info", ["info", "bad_soft_link.h5"], "/surface is a soft link"),
    ("string-direction-as-dir-file", [*S, X, "--dir-file", "bad_string_direction.h5"],
     "damaged /directions group"),
    ("li2018-str-loss-to-info", ["info", "li_str_loss.h5"],
     "'li_str_loss.h5': dataset 'train_loss' has 3 |S3 value(s)"),
    ("li2018-str-loss-to-plot", ["plot", "li_str_loss.h5"], "dataset 'train_loss'"),
    ("li2018-short-loss-to-info", ["info", "li_short_loss.h5"],
     "expected 3 numbers, one per point of the 3-point grid"),
    ("str-ratio-map-to-plot", ["plot", "bad_ratio_map.h5", "--kind", "ratio"],
     "'bad_ratio_map.h5' has a damaged /ratio_map group: dataset 'ratio' is a string array"),
    ("set-done-shape-to-info", ["info", "bad_set_done_shape.h5"],
     "'bad_set_done_shape.h5' has a damaged /surfaces group: dataset 'done' is a uint8 array "
     "of shape (25,); expected a 0/1 mask of shape (2, 3, 3)"),
    ("set-done-shape-to-plot", ["plot", "bad_set_done_shape.h5"],
     "has a damaged /surfaces group: dataset 'done'"),
    ("plot-members-of-a-surface", ["plot", "s.h5", "--members"],
     "'s.h5' has no /surfaces group: members are those of a surface set"),
    # an existing surface computed with another recipe is never touched without --overwrite
    ("recipe-differs-grid", [*S, "--x=-1:1:5", "--out", "s.h5"], "differs in: grid"),
    ("recipe-differs-seed", [*S, X, "--out", "s.h5", "--seed", "1"], "different recipe"),
    ("recipe-differs-norm", [*S, X, "--out", "s.h5", "--norm", "layer"], "different recipe"),
    ("recipe-differs-subset", [*S, X, "--out", "s.h5", "--subset", "50"], "different recipe"),
    ("recipe-differs-data", [*S, X, "--out", "s.h5", "--data", "tests._bad_data:tiny"],
     "different recipe"),
    ("recipe-differs-splits", [*S, X, "--out", "s.h5", "--splits", "train"],
     "different recipe"),
    # grids
    ("grid-reversed", [*S, "--x=1:-1:5"], "min must be smaller"),
    ("grid-letters", [*S, "--x=a:b:c"], "bad grid"),
    ("grid-zero-points", [*S, "--x=0:1:0"], "number of points"),
    ("grid-fractional-count", [*S, "--x=-1:1:1.5"], "positive integer"),
    ("grid-two-fields", [*S, "--x=0:1"], "bad grid"),
    ("grid-empty-range", [*S, "--x=1:1:3"], "min must be smaller"),
    ("grid-infinite-bound", [*S, "--x=-1e400:1:3"], "finite"),
    ("grid-bad-y", [*S, X, "--y=0:1"], "bad grid --y"),
    ("grid-missing-x", ["surface", "mlp.pt"], "--x"),
    ("grid-too-big-for-memory", [*S, "--x=-1:1:1000000000", "--y=-1:1:1000000000"],
     "GiB of memory"),
    # counts that no memory holds: refused before anything is allocated
    ("n-directions-too-big-for-memory", [*S, X, "--n-directions", "1000000000000"],
     "a set of 1,000,000,000,000 direction pairs on a 3-point grid has 3,000,000,000,000 "
     "points; its arrays need"),
    ("connect-points-too-big-for-memory", [*K, "--curve", "none", "--points", "1" + "0" * 12],
     "use fewer n_points"),
    ("connect-steps-too-big-for-memory", [*K, "--steps", "1" + "0" * 14], "use fewer steps"),
    ("connect-bends-too-big-for-memory", [*K, "--bends", "1" + "0" * 12], "use fewer n_bends"),
    # names and JSON options
    ("model-unknown", [*S, X, "--model", "nonet"], "nonet"),
    ("model-unknown-module", [*S, X, "--model", "no_such_mod:factory"], "no_such_mod"),
    ("model-kwargs-bad-json", [*S, X, "--model", "mlp", "--model-kwargs", "{width: 8"], "JSON"),
    ("model-kwargs-not-an-object", [*S, X, "--model", "mlp", "--model-kwargs", "[8, 1]"],
     "object"),
    ("model-kwargs-unknown-key", [*S, X, "--model", "mlp", "--model-kwargs", '{"bogus": 1}'],
     "bogus"),
    ("model-kwargs-without-model", [*S, X, "--model-kwargs", '{"width": 8}'], "--model"),
    ("data-unknown", [*S, X, "--data", "nodata"], "nodata"),
    ("data-unknown-function", [*S, X, "--data", "tests._bad_data:nothere"], "nothere"),
    ("data-kwargs-bad-json", [*S, X, "--data-kwargs", "{"], "JSON"),
    ("data-wrong-input-shape", [*S, X, "--data", "tests._bad_data:cifar_like"],
     "expects inputs with 64 features"),
    ("data-missing-files", [*S, X, "--data", "mnist", "--data-root", "adir"], "MNIST"),
    ("data-more-classes-than-outputs", [*S, X, "--data", "tests._bad_data:many_classes"],
     "16 classes"),
    ("data-empty", [*S, X, "--data", "tests._bad_data:empty"], "no samples"),
    ("data-loader-raises", [*S, X, "--data", "tests._bad_data:broken"],
     "dataset loader 'tests._bad_data:broken' failed on split 'train': RuntimeError"),
    ("loss-unknown", [*S, X, "--loss", "hinge"], "--loss"),
    ("loss-unknown-module", [*S, X, "--loss", "no_such_mod:fn"], "no_such_mod"),
    ("splits-unknown", [*S, X, "--splits", "val"], "--splits"),
    # directions
    ("dir-file-missing", [*S, X, "--dir-file", "missing.h5"], "does not exist"),
    ("dir-file-without-directions", [*S, X, "--dir-file", "nodirs.h5"], "no directions"),
    ("dir-file-other-arch", [*S, X, "--dir-file", "other.h5"],
     "directions in 'other.h5' were made for another architecture"),
    ("dir-file-other-dir-type", [*S, X, "--dir-file", "s.h5", "--dir-type", "states"],
     "--dir-type weights, not states"),
    ("dir-file-1d-for-2d-grid", [*S, X, "--y=-1:1:3", "--dir-file", "s.h5"], "--y needs 2"),
    ("interpolate-other-arch", [*S, X, "--interpolate", "mlp16.pt"],
     "--interpolate checkpoint 'mlp16.pt' is another architecture"),
    ("interpolate-missing", [*S, X, "--interpolate", "missing.pt"], "missing.pt"),
    ("interpolate-with-y", [*S, X, "--y=-1:1:3", "--interpolate", "mlp.pt"], "drop --y"),
    ("plane-missing-file", [*S, X, "--y=-1:1:3", "--plane", "mlp.pt", "missing.pt"],
     "missing.pt"),
    ("plane-other-arch", [*S, X, "--y=-1:1:3", "--plane", "mlp.pt", "mlp16.pt"],
     "--plane checkpoint 'mlp16.pt' is another architecture"),
    ("plane-without-y", [*S, X, "--plane", "mlp.pt", "mlp.pt"], "add --y"),
    # degenerate directions: nothing would move, or the plane is a line
    ("interpolate-to-itself", [*S, X, "--interpolate", "mlp.pt"],
     "--interpolate checkpoint 'mlp.pt' has the same weights as 'mlp.pt'"),
    ("interpolate-to-a-copy", [*S, X, "--interpolate", "mlp_copy.pt"],
     "direction between them is zero"),
    ("plane-through-itself", [*S, X, "--y=-1:1:3", "--plane", "mlp.pt", "mlp.pt"],
     "models a and b are identical"),
    ("plane-through-itself-orthogonal", [*S, X, "--y=-1:1:3", "--plane", "mlp.pt", "mlp.pt",
                                         "--orthogonal"], "models a and b are identical"),
    ("plane-c-is-the-origin", [*S, X, "--y=-1:1:3", "--plane", "mlp_b.pt", "mlp.pt"],
     "models a and c are identical"),
    ("plane-b-equals-c", [*S, X, "--y=-1:1:3", "--plane", "mlp_b.pt", "mlp_b.pt"],
     "the three models are collinear"),
    ("dir-file-zero-direction", [*S, X, "--dir-file", "zero_dirs.h5"],
     "direction x of 'zero_dirs.h5' is zero"),
    ("dir-file-collinear", [*S, X, "--y=-1:1:3", "--dir-file", "collinear_dirs.h5"],
     "are collinear"),
    # evaluation options
    ("subset-zero", [*S, X, "--subset", "0"], "subset"),
    ("subset-negative", [*S, X, "--subset", "-5"], "subset"),
    ("batch-size-zero", [*S, X, "--batch-size", "0"], "--batch-size"),
    ("batch-size-word", [*S, X, "--batch-size", "big"], "--batch-size"),
    ("bn-batches-zero", [*S, X, "--bn", "recalibrate", "--bn-batches", "0"], "bn_batches"),
    ("flush-seconds-negative", [*S, X, "--flush-seconds", "-1"], "flush_seconds"),
    ("flush-seconds-nan", [*S, X, "--flush-seconds", "nan"], "flush_seconds"),
    ("device-unknown", [*S, X, "--device", "tpu9"], "unknown --device 'tpu9'"),
    ("device-meta", [*S, X, "--device", "meta"], "--device meta"),
    ("seed-not-an-int", [*S, X, "--seed", "1.5"],
     "argument --seed: The 'seed' parameter must be an int"),
    # numbers that overflow or are not finite: refused where they are given
    ("seed-beyond-int64", [*S, X, "--seed", "99999999999999999999"], "Got 99999999999999999999"),
    ("flush-seconds-inf", [*S, X, "--flush-seconds", "inf"], "argument --flush-seconds"),
    ("bn-batches-beyond-int64", [*S, X, "--bn", "recalibrate", "--bn-batches", "1e30"],
     "argument --bn-batches"),
    ("grid-beyond-float32", [*S, "--x=1e308:1.7e308:3"], "beyond the largest float32"),
    ("grid-beyond-float32-y", [*S, X, "--y=-1e39:1e39:3"], "grid --y"),
    ("grid-span-overflows", [*S, "--x=-1.7e308:1.7e308:3", "--dtype", "float64"],
     "spans more than the largest float64"),
    ("hessian-trace-samples-beyond-int64", ["hessian", "mlp.pt", "--trace", "--trace-samples",
                                            "99999999999999999999"], "trace_samples"),
    ("hessian-tol-nan", ["hessian", "mlp.pt", "--tol", "nan"], "argument --tol"),
    ("hessian-flush-seconds-nan", ["hessian", "mlp.pt", "--grid", "s.h5", "--flush-seconds",
                                   "nan"], "argument --flush-seconds"),
    ("hessian-max-hvp-huge", ["hessian", "mlp.pt", "--max-hvp", "1" + "0" * 30], "max_hvp"),
    ("trajectory-flush-seconds-nan", ["trajectory", "oldrun", "--flush-seconds", "nan"],
     "argument --flush-seconds"),
    ("plot-dpi-huge", ["plot", "s.h5", "--dpi", "99999999999999999999"], "dpi"),
    ("compare-eps-inf", ["compare", "s.h5", "s.h5", "--eps", "inf"], "argument --eps"),
    # output paths
    ("out-is-a-directory", [*S, X, "--out", "adir"], "is a directory"),
    ("out-under-a-regular-file", [*S, X, "--out", "afile/s.h5"], "does not exist"),
    ("out-in-missing-directory", [*S, X, "--out", "nodir/s.h5"], "does not exist"),
    ("out-is-the-checkpoint", [*S, X, "--out", "mlp.pt"], "is the checkpoint 'mlp.pt'"),
    ("out-is-the-checkpoint-overwrite", [*S, X, "--out", "mlp.pt", "--overwrite"],
     "is the checkpoint 'mlp.pt'"),
    ("out-is-the-interpolate-target", [*S, X, "--interpolate", "mlp_b.pt", "--out", "mlp_b.pt",
                                       "--overwrite"], "is the --interpolate checkpoint"),
    # train
    ("train-epochs-zero", [*T, "--epochs", "0", "--out", "newrun"], "epochs"),
    ("train-lr-nan", [*T, "--lr", "nan", "--out", "newrun"], "lr"),
    ("train-lr-negative", [*T, "--lr", "-0.1", "--out", "newrun"], "lr"),
    ("train-lr-inf", [*T, "--lr", "inf", "--out", "newrun"], "argument --lr"),
    ("train-lr-beyond-float32", [*T, "--lr", "1e308", "--out", "newrun"],
     "The 'lr' parameter must be a float in (0.0, 3.4"),
    ("train-weight-decay-beyond-float32", [*T, "--weight-decay", "1e300", "--out", "newrun"],
     "weight_decay"),
    ("train-epochs-beyond-int64", [*T, "--epochs", "99999999999999999999", "--out", "newrun"],
     "epochs"),
    ("train-batch-size-zero", [*T, "--batch-size", "0", "--out", "newrun"], "batch_size"),
    ("train-subset-zero", [*T, "--subset", "0", "--out", "newrun"], "subset"),
    ("train-out-is-a-file", [*T, "--out", "afile"], "is a file"),
    ("train-out-holds-a-run", [*T, "--out", "oldrun"], "already holds a training run"),
    ("train-out-holds-a-run-with-other-settings", [*T, "--out", "otherrun"],
     "differs in: epochs (run 2, now 1), lr (run 0.05, now 0.1)"),
    ("train-out-holds-a-diverged-run", [*T, "--out", "divergedrun"], "diverged"),
    ("train-data-missing-files", [*T, "--data", "mnist", "--data-root", "adir", "--out",
                                  "newrun"], "MNIST"),
    ("train-unknown-model", ["train", "--model", "nonet", "--out", "newrun"], "nonet"),
    ("train-model-kwargs-not-an-object", ["train", "--model", "mlp", "--model-kwargs", '"w"',
                                          "--out", "newrun"], "object"),
    ("train-data-wrong-input-shape", [*T, "--data", "tests._bad_data:cifar_like",
                                      "--model-kwargs", '{"in_features": 64}', "--out",
                                      "newrun"], "expects inputs with 64 features"),
    # compare --checkpoints: checked before any progress output
    ("compare-checkpoint-missing", [*C, "--checkpoints", "mlp.pt,missing.pt"], "missing.pt"),
    ("compare-checkpoint-not-the-surfaces", [*C, "--checkpoints", "mlp.pt,mlp_b.pt"],
     "checkpoint 'mlp_b.pt' given for 'b' is not the one 's.h5' was computed at"),
    ("compare-checkpoint-garbage", [*C, "--checkpoints", ",garbage.pt"], "corrupted"),
    # demo: an existing directory that is neither empty nor a demo output is never written
    ("demo-out-is-a-training-run", ["demo", "--quick", "--out", "oldrun", "--no-progress"],
     "The 'out_dir' parameter must be an empty directory or a study (demo) output (with "
     "study_config.json). Got 'oldrun', which holds 1 other entry (e.g. 'epoch_0000.pt')"),
    ("demo-out-is-a-model-directory", ["demo", "--quick", "--out", "hfmodel"],
     "holds 2 other entries (e.g. 'config.json')"),
    ("demo-out-is-the-working-directory", ["demo", "--quick", "--out", "."],
     "Got '.', which holds"),
    ("demo-out-is-a-file", ["demo", "--quick", "--out", "afile"],
     "The 'out_dir' parameter must be a directory. Got 'afile', which is a file"),
    # the command line itself
    ("unknown-option", [*S, X, "--bogus"], "unrecognized arguments"),
    ("unknown-command", ["bogus"], "invalid choice"),
]


PARAMS = [pytest.param(argv, fragment, id=name) for name, argv, fragment in CASES] + [
    pytest.param([*S, X, "--device", "cuda"], "--device 'cuda' is not available",
                 id="device-cuda-unavailable",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")),
]


_COMMANDS = ("surface", "train", "info", "hessian", "plot", "compare", "trajectory", "demo",
             "connect")


def _command(argv: list[str]) -> str:
    """The prefix of the error line: argparse reports unknown options at the top level."""
    if argv[0] not in _COMMANDS or "--bogus" in argv:
        return ""
    return argv[0]


@pytest.mark.parametrize("argv, fragment", PARAMS)
def test_bad_input(work, capsys, argv, fragment):
    before = snapshot(work)
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, fragment, _command(argv))
    assert snapshot(work) == before


def test_corpus_has_at_least_30_cases():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_unwritable_output_directory(work, capsys):
    ro = work / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        before = snapshot(work)
        code = main([*S, X, "--out", "ro/s.h5"])
        out, err = capsys.readouterr()
        assert_one_line_error(code, out, err, "not writable", "surface")
        assert snapshot(work) == before
    finally:
        ro.chmod(0o700)


def test_unwritable_output_directory_simulated(work, capsys, monkeypatch):
    """The same check where tests run as root: os.access reports the directory read-only."""
    import landscape.storage

    ro = work / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(landscape.storage.os, "access",
                        lambda p, mode, **kw: Path(p).name != "ro" and real_access(p, mode))
    before = snapshot(work)
    code = main([*S, X, "--out", "ro/s.h5"])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, "directory 'ro' is not writable", "surface")
    assert snapshot(work) == before


SUBPROCESS_CASES = ["ckpt-random-bytes", "ckpt-pickled-untrusted", "truncated-h5-to-info",
                    "data-wrong-input-shape", "data-loader-raises", "unknown-option"]


def test_bad_inputs_in_a_subprocess(corpus, tmp_path):
    """A real process: nothing outside main() (warnings, tracebacks) reaches stderr."""
    w = tmp_path / "w"
    shutil.copytree(corpus, w)
    cases = {c[0]: c for c in CASES}
    for name in SUBPROCESS_CASES:
        _, argv, fragment = cases[name]
        before = snapshot(w)
        r = subprocess.run([sys.executable, "-m", "landscape.cli", *argv], cwd=w, env=ENV,
                           capture_output=True, text=True, timeout=120)
        assert_one_line_error(r.returncode, r.stdout, r.stderr, fragment, _command(argv))
        assert snapshot(w) == before, name


def test_counts_of_the_issue_on_a_64_gib_machine(work, capsys, monkeypatch):
    """``--points 1000000000`` and ``--n-directions 1000000000`` as reported (a 64 GiB
    machine): one line each, nothing written."""
    import landscape._grid

    monkeypatch.setattr(landscape._grid, "physical_memory", lambda: 64 * 2**30)
    for argv, fragment in (([*K, "--curve", "none", "--points", "1000000000"],
                            "GiB, more than this machine's 64.0 GiB of memory -- use fewer "
                            "n_points"),
                           ([*S, X, "--n-directions", "1000000000"],
                            "use fewer points or direction pairs (n_directions)")):
        before = snapshot(work)
        code = main(argv)
        out, err = capsys.readouterr()
        assert_one_line_error(code, out, err, fragment, argv[0])
        assert snapshot(work) == before


# ------------------------------------------------------------------ not errors


def test_plot_and_info_of_a_surface_set(work, capsys):
    """plot draws a set's mean surface (and its members with --members); info describes it."""
    assert main(["plot", "set.h5", "--kind", "contour", "--members", "--out", "figs"]) == 0
    out = capsys.readouterr().out
    assert out.split() == ["wrote", "figs/set_contour.png", "wrote", "figs/set_m0_contour.png",
                           "wrote", "figs/set_m1_contour.png"]
    assert main(["info", "set.h5"]) == 0
    assert "surface set: 2 direction pairs (seeds [0, 2]) on a 3x3 grid, 18/18 points done" \
        in capsys.readouterr().out


def test_n_directions_with_the_default_batch_size(work, capsys):
    """--n-directions without --batch-size (default auto): member 0 is the single surface of
    the same seed (s.h5, also batch size auto), bit for bit."""
    code = main([*S, X, "--n-directions", "2", "--out", "set1d.h5", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote set1d.h5: 2 direction pairs" in out
    from landscape.surface_set import SurfaceSet

    s = SurfaceSet.load("set1d.h5")
    assert s.complete and s.recipe["batch_size"] == "auto"
    single = Surface.load("s.h5")
    assert s.provenance["batch_size_used"] == single.provenance["batch_size_used"]
    for k, a in single.arrays.items():
        assert s.arrays[k][0].tobytes() == a.tobytes(), k
    # resuming the finished set finds nothing to do
    before = Path("set1d.h5").read_bytes()
    assert main([*S, X, "--n-directions", "2", "--out", "set1d.h5", "--no-progress"]) == 0
    assert Path("set1d.h5").read_bytes() == before


def test_diverged_points_are_data_not_errors(work, capsys):
    """Directions so large that the loss overflows: the surface completes and records it."""
    code = main([*S, "--x=0:1e30:3", "--out", "big.h5", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = Surface.load("big.h5")
    assert s.complete
    for split in ("train", "test"):
        loss = s[f"{split}_loss"]
        assert np.isfinite(loss[0]) and not np.isfinite(loss[1:]).any(), loss
    n_bad = int(sum(int((~np.isfinite(s[k])).sum()) for k in s.arrays if k.endswith("_loss")))
    assert n_bad == 4
    assert f"note: {n_bad} loss values are NaN/inf" in out
    assert main(["info", "big.h5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["surface_completion"] == {"done": 3, "total": 3, "shape": [3],
                                          "nonfinite_loss": n_bad}
    assert main(["info", "big.h5"]) == 0
    assert f"3/3 points done (100.0%), {n_bad} non-finite losses" in capsys.readouterr().out
    # and re-running the same command finds nothing to do (diverged points count as done)
    before = Path("big.h5").read_bytes()
    assert main([*S, "--x=0:1e30:3", "--out", "big.h5", "--no-progress"]) == 0
    assert Path("big.h5").read_bytes() == before


def test_pickled_model_loads_with_trust(work, capsys):
    code = main(["surface", "pickled.pt", "--trust-checkpoint", X, "--subset", "100", "--out",
                 "p.h5", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote p.h5" in out
    s = Surface.load("p.h5")
    assert s.complete and np.isfinite(s["train_loss"]).all()


def test_out_of_memory_is_a_one_line_error(work, capsys, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.28 TiB for an array")

    monkeypatch.setattr("landscape.cli.info.describe", exhausted)
    code = main(["info", "s.h5"])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, "out of memory (Unable to allocate 7.28 TiB", "info")


# ------------------------------------------------------------------ demo output directory


class _Started(Exception):
    """Raised where run_demo starts its work: the output directory was accepted."""


@pytest.mark.parametrize("kind", ["missing", "empty", "demo-output"])
def test_demo_accepts_an_empty_or_its_own_output_directory(tmp_path, monkeypatch, kind):
    """A new or empty directory, or a demo output (its demo_config.json: the demo resumes)."""
    import landscape.demo
    from landscape.demo import DemoConfig, run_demo

    def started(*args, **kwargs):
        raise _Started

    monkeypatch.setattr(landscape.demo, "DataSpec", started)
    cfg = DemoConfig.quick()
    out = tmp_path / "demo"
    if kind != "missing":
        out.mkdir()
    if kind == "demo-output":
        (out / "demo_config.json").write_text(
            json.dumps(cfg.to_dict(), sort_keys=True, indent=2))
        (out / "runs").mkdir()
    with pytest.raises(_Started):
        run_demo(out, cfg, progress=False, log=None)
    assert (out / "demo_config.json").exists()
