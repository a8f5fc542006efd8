"""What start-up imports, and the digits read without scikit-learn.

``import landscape`` and the command line import their heavy dependencies only when a command
uses them (see ``benchmarks/bench_startup.py`` for the time this saves); every public name
still resolves. The digits and their split, read without scikit-learn, equal scikit-learn's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import landscape
from landscape._digits import digits_arrays, stratified_split
from landscape.data import load_data

#: Modules that neither ``import landscape`` nor ``import landscape.cli.main`` may import.
NOT_AT_IMPORT = ("matplotlib", "transformers", "scipy", "sklearn", "pandas", "plotly",
                 "landscape.hessian", "landscape.report", "landscape.replicates",
                 "landscape.mechanisms", "landscape.plot", "landscape.study")


def _imported_after(code: str, names: tuple[str, ...]) -> dict[str, bool]:
    script = f"import json, sys\n{code}\nprint(json.dumps({{n: n in sys.modules for n in " \
             f"{list(names)!r}}}))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", ["import landscape", "import landscape.cli.main"])
def test_import_is_light(code: str) -> None:
    imported = _imported_after(code, NOT_AT_IMPORT)
    assert not [n for n, yes in imported.items() if yes]


def test_import_landscape_leaves_torch_alone() -> None:
    assert _imported_after("import landscape", ("torch", "h5py")) == {"torch": False,
                                                                      "h5py": False}


def test_surface_command_imports_only_what_it_uses(tmp_path) -> None:
    """The surface command on digits imports neither scipy nor scikit-learn nor the others."""
    from landscape import save_checkpoint
    from landscape.data import DataSpec
    from landscape.models import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    ckpt = save_checkpoint(tmp_path / "m.pt", spec.build(), spec,
                           data=DataSpec("digits").to_dict())
    out = tmp_path / "s.h5"
    code = ("from landscape.cli.main import main\n"
            f"assert main(['surface', {str(ckpt)!r}, '--x=0:0:1', '--subset', '32', "
            f"'--no-progress', '--out', {str(out)!r}]) == 0")
    imported = _imported_after(code, NOT_AT_IMPORT)
    assert not [n for n, yes in imported.items() if yes]
    assert out.is_file()


def test_every_public_name_resolves() -> None:
    for name in landscape.__all__:
        assert getattr(landscape, name) is not None, name
    assert set(landscape.__all__) <= set(dir(landscape))
    ns: dict = {}
    exec("from landscape import *", ns)  # noqa: S102 - the star import itself
    assert set(landscape.__all__) <= set(ns)


def test_public_names_are_their_modules_objects() -> None:
    from landscape import compute_surface, storage, surface, train
    from landscape import open as open_result
    from landscape.results import open as results_open
    from landscape.surface import compute_surface as surface_compute
    from landscape.training import train as training_train

    assert compute_surface is surface_compute and surface.compute_surface is surface_compute
    assert open_result is results_open and train is training_train
    assert landscape.storage is storage  # submodules reachable as attributes, as before


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        landscape.no_such_name  # noqa: B018
    assert not hasattr(landscape, "no_such_name")


def test_digits_equal_scikit_learn() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    ours_images, ours_labels = digits_arrays()
    assert np.array_equal(images, ours_images) and images.dtype == ours_images.dtype
    assert np.array_equal(labels, ours_labels) and labels.dtype == ours_labels.dtype
    train, test = train_test_split(np.arange(len(labels)), test_size=360, random_state=0,
                                   stratify=labels)
    for split, idx in (("train", train), ("test", test)):
        d = load_data("digits", split)
        assert torch.equal(d.x, torch.from_numpy((images[idx] / 16.0).astype(np.float32))
                           .reshape(-1, 1, 8, 8))
        assert torch.equal(d.y, torch.from_numpy(labels[idx].astype(np.int64)))


@pytest.mark.parametrize("seed", range(12))
def test_stratified_split_equals_scikit_learn(seed: int) -> None:
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 7))
    labels = np.concatenate([np.arange(n_classes).repeat(2),
                             rng.integers(0, n_classes, size=int(rng.integers(20, 150)))])
    rng.shuffle(labels)
    n_test = int(rng.integers(n_classes, len(labels) - n_classes + 1))
    want = train_test_split(np.arange(len(labels)), test_size=n_test, random_state=seed,
                            stratify=labels)
    got = stratified_split(labels, n_test, seed)
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))


def test_cached_digits_cannot_be_changed() -> None:
    images, labels = digits_arrays()
    with pytest.raises(ValueError):
        images[0, 0] = 1.0
    d = load_data("digits", "train")
    d.x[0] += 1  # a loaded split is the caller's own copy
    assert not torch.equal(d.x, load_data("digits", "train").x)
