"""Every long step shows progress on stderr, and a long run says how long it will take."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import landscape._grid as grid
from landscape._functional import named_tensors
from landscape.directions import random_directions
from landscape.hessian import compute_curvature, compute_ratio_map
from landscape.hessian import progress as hessian_progress
from landscape.surface import compute_surface

try:  # tests/ as a package or as a plain directory on sys.path
    from .conftest import toy_classifier
except ImportError:
    from conftest import toy_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    model, data = toy_classifier(3, nn.Tanh, n=24)
    return model, data, random_directions(named_tensors(model), seeds=0)


def test_surface_and_ratio_map_show_progress(toy, tmp_path, capsys):
    model, data, dirs = toy
    out = tmp_path / "s.h5"
    compute_surface(model, dirs, {"train": data}, x="-1:1:3", y="-1:1:3", batch_size=8,
                    out=out)
    err = capsys.readouterr().err
    assert "surface" in err and "9/9" in err and ("pt/s" in err or "s/pt" in err)
    compute_ratio_map(model, out, data, batch_size=8)
    err = capsys.readouterr().err
    assert "ratio map" in err and "9/9" in err and "HVP/pt" in err


def test_nothing_on_stderr_without_progress(toy, tmp_path, capsys):
    model, data, dirs = toy
    compute_surface(model, dirs, {"train": data}, x="-1:1:3", y="-1:1:3", batch_size=8,
                    out=tmp_path / "s.h5", progress=False)
    compute_curvature(model, data, top_k=2, trace=True, trace_samples=3, dtype=torch.float64)
    assert capsys.readouterr().err == ""


def test_every_curvature_section_shows_progress(toy, capsys):
    model, data, _ = toy
    compute_curvature(model, data, top_k=2, min_eig=True, trace=True, trace_samples=6,
                      density=True, density_steps=4, density_runs=2, dtype=torch.float64,
                      progress=True)
    err = capsys.readouterr().err
    for desc in ("top-2 eigenvalues", "smallest eigenvalue", "trace (hutchpp)",
                 "spectral density (SLQ)"):
        assert desc in err, desc
    assert "6/6" in err and "8/8" in err  # known totals: trace probes, density runs x steps


def test_long_runs_print_an_estimate_first(toy, tmp_path, capsys, monkeypatch):
    model, data, dirs = toy
    monkeypatch.setattr(grid, "LONG_RUN_SECONDS", 0.0)
    monkeypatch.setattr(hessian_progress, "LONG_RUN_SECONDS", 0.0)
    compute_surface(model, dirs, {"train": data}, x="-1:1:3", y="-1:1:3", batch_size=8,
                    out=tmp_path / "s.h5")
    err = capsys.readouterr().err
    assert "surface: about" in err and "for 8 more points" in err
    assert "coarser grid or a data subset" in err
    compute_curvature(model, data, top_k=2, trace=True, trace_samples=3,
                      dtype=torch.float64, progress=True)
    err = capsys.readouterr().err
    assert err.count("curvature: about") == 1 and "data subset or float32" in err
