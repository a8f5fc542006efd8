"""Direction files of Li et al.'s code (``net_plotter.setup_direction``) as ``--dir-file``.

Their ``h5_util.write_list`` stores each direction as a group (``xdirection``, ``ydirection``) of
datasets ``'0'``..``'N-1'``, one per tensor, in the order of ``net.parameters()``
(``dir_type='weights'``) or of ``net.state_dict().values()`` (``'states'``). Here such files
are written from directions this tool drew itself, so the surfaces computed from them must
equal, bit for bit, the surfaces computed from the same directions given natively.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from landscape.cli.main import main

from landscape import storage
from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.info import summarize
from landscape.models import ModelSpec
from landscape.surface import Surface, li2018_directions, load_directions

from .test_bad_inputs import assert_one_line_error, snapshot

DATA = DataSpec("digits", subset=100).to_dict()
X, Y = "--x=-1:1:3", "--y=-1:1:3"


def write_li_directions(path, vectors, *, drop_integer=False) -> None:
    """What ``h5_util.write_list`` writes: positional float32 datasets per direction."""
    with h5py.File(path, "w") as f:
        for name, vec in zip(("xdirection", "ydirection"), vectors, strict=False):
            g = f.create_group(name)
            tensors = [v for v in vec.values() if not (drop_integer and not
                                                        v.is_floating_point())]
            for i, v in enumerate(tensors):
                # Li's torch.randn(w.size()) is float32 even for num_batches_tracked
                g.create_dataset(str(i), data=v.numpy().astype(np.float32))


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name, kwargs in (("mlp", {"width": 8, "depth": 1}),
                         ("bn", {"width": 8, "depth": 1, "batchnorm": True}),
                         ("wide", {"width": 16, "depth": 1})):
        spec = ModelSpec("mlp", kwargs)
        torch.manual_seed(0)
        net = spec.build()
        if kwargs.get("batchnorm"):  # non-trivial running statistics
            net.train()
            with torch.no_grad():
                net(torch.rand(32, 1, 8, 8))
            net.eval()
        save_checkpoint(tmp_path / f"{name}.pt", net, spec, data=DATA)

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return cli


def _same_surface(a: str, b: str) -> None:
    sa, sb = Surface.load(a), Surface.load(b)
    assert sa.complete and sb.complete
    assert sorted(sa.arrays) == sorted(sb.arrays)
    for k in sa.arrays:
        assert sa[k].tobytes() == sb[k].tobytes(), k


@pytest.mark.parametrize("two_d", [False, True], ids=["1d", "2d"])
def test_li_weights_file_gives_the_native_surface_bit_for_bit(run, two_d):
    grid = [X, Y] if two_d else [X]
    assert run("surface", "mlp.pt", *grid, "--out", "native.h5", "--no-progress")[0] == 0
    write_li_directions("li_dir.h5", load_directions("native.h5").vectors)
    code, out, err = run("surface", "mlp.pt", *grid, "--dir-file", "li_dir.h5", "--out",
                         "li.h5", "--no-progress")
    assert code == 0, err
    _same_surface("native.h5", "li.h5")
    d = Surface.load("li.h5").directions
    assert d.recipe["kind"] == "li2018" and d.what == "weights"
    for a, b in zip(d.vectors, load_directions("native.h5").vectors, strict=True):
        assert list(a) == list(b)
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("drop_integer", [False, True], ids=["torch>=0.4.1", "no-num-batches"])
def test_li_states_file_is_told_by_its_count(run, drop_integer):
    """A states file (BN running statistics too) is recognised without --dir-type states."""
    assert run("surface", "bn.pt", X, Y, "--dir-type", "states", "--out", "native.h5",
               "--no-progress")[0] == 0
    native = load_directions("native.h5")
    assert native.what == "states"
    write_li_directions("li_dir.h5", native.vectors, drop_integer=drop_integer)
    code, _, err = run("surface", "bn.pt", X, Y, "--dir-file", "li_dir.h5", "--out", "li.h5",
                       "--no-progress")
    assert code == 0, err
    _same_surface("native.h5", "li.h5")
    assert Surface.load("li.h5").directions.what == "states"


def test_li_file_when_both_counts_fit_follows_dir_type(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))  # no buffers: weights == states
    write_li_directions(tmp_path / "d.h5", [{k: torch.ones_like(v) for k, v in
                                             net.state_dict().items()}])
    assert li2018_directions(tmp_path / "d.h5", net).what == "weights"
    assert li2018_directions(tmp_path / "d.h5", net, "states").what == "states"
    with pytest.raises(LandscapeError, match="pass the model"):
        load_directions(tmp_path / "d.h5")


def test_info_describes_a_li_direction_file(run):
    assert run("surface", "mlp.pt", X, Y, "--out", "native.h5", "--no-progress")[0] == 0
    write_li_directions("li_dir.h5", load_directions("native.h5").vectors)
    code, out, err = run("info", "li_dir.h5")
    assert code == 0, err
    assert "Li et al. (2018) direction file" in out
    info = summarize("li_dir.h5")
    assert info["kind"] == "li2018_directions"
    assert info["groups"]["xdirection"]["tensors_per_direction"] == 6
    assert info["groups"]["ydirection"]["n_params"] == 8 * 64 + 8 + 8 * 8 + 8 + 10 * 8 + 10
    assert storage.is_li2018_directions("li_dir.h5")


def _bad_files(run) -> None:
    assert run("surface", "mlp.pt", X, Y, "--out", "native.h5", "--no-progress")[0] == 0
    assert run("surface", "wide.pt", X, "--out", "wide.h5", "--no-progress")[0] == 0
    vecs = load_directions("native.h5").vectors
    write_li_directions("wide_dir.h5", load_directions("wide.h5").vectors)
    write_li_directions("short_dir.h5", [dict(list(vecs[0].items())[:5])])
    write_li_directions("long_dir.h5", [{**vecs[0], "extra": torch.ones(3)}])
    write_li_directions("swapped_dir.h5", [dict(reversed(list(vecs[0].items())))])
    write_li_directions("uneven_dir.h5", [vecs[0], dict(list(vecs[1].items())[:5])])
    write_li_directions("zero_dir.h5", [{k: torch.zeros_like(v) for k, v in vecs[0].items()}])
    write_li_directions("named_dir.h5", vecs)
    with h5py.File("named_dir.h5", "r+") as f:
        f["xdirection"].move("3", "weights")
    write_li_directions("text_dir.h5", vecs)
    with h5py.File("text_dir.h5", "r+") as f:
        del f["xdirection/2"]
        f["xdirection/2"] = np.array([b"a"] * 8)


BAD = [
    ("other-model", ["wide_dir.h5"],
     "'wide_dir.h5': tensor 0 of /xdirection has shape (16, 64), but the model's weights "
     "tensor 0 ('stem.weight') has (8, 64) -- the file was made for another model, or with "
     "--dir-type states"),
    ("too-few-tensors", ["short_dir.h5"],
     "'short_dir.h5' is a Li et al. direction file with 5 tensors per direction, but the model "
     "has 6 parameters (--dir-type weights) and 6 state tensors (--dir-type states)"),
    ("too-many-tensors", ["long_dir.h5"], "with 7 tensors per direction"),
    ("other-order", ["swapped_dir.h5"], "tensor 0 of /xdirection has shape (10,)"),
    ("x-and-y-counts-differ", ["uneven_dir.h5", Y],
     "/xdirection has 6 tensors but /ydirection 5"),
    ("zero-direction", ["zero_dir.h5"], "direction x of 'zero_dir.h5' is zero"),
    ("dataset-not-numbered", ["named_dir.h5"], "must hold datasets named '0'..'N-1'"),
    ("dataset-of-text", ["text_dir.h5"], "/xdirection/2 is not a numeric dataset"),
]


@pytest.mark.parametrize("files, fragment", [pytest.param(f, m, id=i) for i, f, m in BAD])
def test_bad_li_direction_files_are_one_line(run, tmp_path, files, fragment):
    _bad_files(run)
    before = snapshot(tmp_path)
    code, out, err = run("surface", "mlp.pt", X, "--dir-file", *files, "--no-progress",
                         "--out", "new.h5")
    assert_one_line_error(code, out, err, fragment, "surface")
    assert snapshot(tmp_path) == before
