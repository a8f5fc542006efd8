"""What start-up imports.

``import landscape`` and the command line import their heavy dependencies only when a command
uses them (see ``benchmarks/bench_startup.py`` for the time this saves); every public name
still resolves.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import landscape

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
    """The surface command on digits imports none of the others (the digits themselves come
    through scikit-learn, which imports scipy: those two are left out of the check)."""
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
    imported = _imported_after(code, tuple(n for n in NOT_AT_IMPORT
                                           if n not in ("scipy", "sklearn")))
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
