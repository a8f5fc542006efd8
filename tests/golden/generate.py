"""Write the golden result files of ``tests/test_golden.py``.

The files under ``tests/golden/`` were written by this script on the main branch *before* the
architecture change of issue 10 (commit b751dfe); the test runs it again and compares what the
current code writes, dataset by dataset and attribute by attribute. Regenerate them only when a
change of the files is intended, and say so in the commit (``curvature.h5`` and the ratio map
of ``surface.h5`` were regenerated once since, for the smallest eigenvalue's own convergence
criterion of issue 17: see that commit)::

    python tests/golden/generate.py tests/golden

The model is a tiny MLP trained for two epochs on 120 digits (``runs/mlp``, committed, so the
checkpoint hashes are fixed). Every command is given an explicit batch size (the automatic one
is timed) and runs in the output directory with relative paths (paths enter the provenance).
The Hessian commands pass ``--dtype float64`` explicitly (the files were written when it was
the CLI's default; HVPs are float32 by default since issue 17). The surface commands do too,
since 2026-12-02: their float32 files (the model's dtype) could not be compared at 1e-12 across
machines. On an AMD EPYC the float32 test losses differed from the Xeon's golden values by up
to 2.2e-8 relative (float32 kernels of another instruction set round differently; float32's
epsilon is 1.2e-7), while float64 evaluations agree to ~1e-15 on both; the surface files were
regenerated in float64 then (their float32 values had matched to 1e-12 on the Xeon that wrote
them).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The commands, in order; each writes (or adds a group to) the file it names.
COMMANDS: list[list[str]] = [
    ["surface", "runs/mlp/epoch_0002.pt", "--x=-1:1:3", "--y=-1:1:3", "--batch-size", "64",
     "--dtype", "float64", "--out", "surface.h5"],
    ["surface", "runs/mlp/epoch_0002.pt", "--interpolate", "runs/mlp/epoch_0000.pt",
     "--x=-0.5:1.5:5", "--batch-size", "64", "--dtype", "float64", "--out", "line.h5"],
    ["hessian", "runs/mlp/epoch_0002.pt", "--top-k", "2", "--min", "--trace",
     "--trace-samples", "6", "--density", "--density-steps", "12", "--density-runs", "2",
     "--batch-size", "64", "--dtype", "float64", "--out", "curvature.h5"],
    ["hessian", "runs/mlp/epoch_0002.pt", "--grid", "surface.h5", "--batch-size", "64",
     "--dtype", "float64"],
    ["trajectory", "runs/mlp", "--surface", "--points", "3", "--batch-size", "64",
     "--dtype", "float64", "--out", "trajectory.h5"],
]

#: The files the commands write.
FILES = ("surface.h5", "line.h5", "curvature.h5", "trajectory.h5")


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def generate(out_dir: str | os.PathLike) -> list[Path]:
    """Run :data:`COMMANDS` in ``out_dir`` (which gets a copy of ``runs/mlp``)."""
    from landscape.cli.main import main

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs" / "mlp"
    if runs.resolve() != (HERE / "runs" / "mlp").resolve():
        shutil.copytree(HERE / "runs" / "mlp", runs, dirs_exist_ok=True)
    with _cwd(out):
        for argv in COMMANDS:
            rc = main([*argv, "--no-progress"])
            if rc != 0:
                raise RuntimeError(f"'landscape {' '.join(argv)}' exited with {rc}")
    return [out / f for f in FILES]


if __name__ == "__main__":
    generate(sys.argv[1] if len(sys.argv) > 1 else HERE)
