"""Peak memory of a GPT-2-small-shaped model through the CLI against the memory model.

The model (12 layers, width 768, vocabulary 50,257, 1,024 positions: 124,439,808 parameters,
built from a config; nothing is downloaded) and a run of three checkpoints are written by
``benchmarks/_gpt2_fixture.py``; the data are 4 random sequences of 128 tokens in one batch
(``--data benchmarks._gpt2_fixture:tokens``). Each command runs in a fresh child process,
niced (``nice -n 10``); its peak RSS is the child's own ``ru_maxrss`` (``os.wait4``) and its
time the wall clock. The prediction comes from :mod:`landscape.memory`, made in another child
process the way the command makes it, plus the resident memory of a child that only imports
python, torch, transformers and the CLI (the "baseline", which the memory model does not
contain). Commands:

* ``surface``: ``landscape surface`` on a 5x5 grid (two filter-normalised directions).
* ``surface-bf16``: the same with ``--direction-dtype bfloat16``.
* ``hessian``: ``landscape hessian --top-k 1 --trace`` with ``--trace-method hutchinson
  --trace-samples 2``, ``--solver-dtype float32 --ncv 4 --tol 1e-3 --max-hvp 12`` (the
  default 20-vector float64 basis alone would take 2 x 20 x 124M x 8 bytes = 37 GiB; the
  memory check refuses it).
* ``hessian-fd``: ``landscape hessian --top-k 1 --hvp finite-difference`` with
  ``--solver-dtype float32 --ncv 3 --tol 1e-3 --max-hvp 3`` (a memory measurement: float32
  differences are off by percents, see docs/benchmarks.md).
* ``trajectory``: ``landscape trajectory`` of the three checkpoints (PCA only).

Usage (from the repository root)::

    python benchmarks/bench_memory_model.py --root /tmp/gpt2mem              # all four
    python benchmarks/bench_memory_model.py --root /tmp/gpt2mem --only surface,trajectory

Prints one row per command: wall time, measured peak RSS, predicted peak (baseline +
model), their ratio, and the model's terms. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30
DATA = "benchmarks._gpt2_fixture:tokens"
HESSIAN_OPTS = ["--top-k", "1", "--trace", "--trace-method", "hutchinson", "--trace-samples",
                "2", "--solver-dtype", "float32", "--ncv", "4", "--tol", "1e-3", "--max-hvp",
                "12", "--batch-size", "4"]

HESSIAN_FD_OPTS = ["--top-k", "1", "--hvp", "finite-difference", "--solver-dtype", "float32",
                   "--ncv", "3", "--tol", "1e-3", "--max-hvp", "3", "--batch-size", "4"]


def commands(root: Path) -> dict[str, list[str]]:
    out = root / "out"
    model = str(root / "gpt2")
    surface = ["surface", model, "--data", DATA, "--splits", "train", "--x=-1:1:5",
               "--y=-1:1:5", "--overwrite", "--no-progress"]
    return {
        "surface": [*surface, "--out", str(out / "surface.h5")],
        "surface-bf16": [*surface, "--direction-dtype", "bfloat16", "--out",
                         str(out / "surface_bf16.h5")],
        "hessian": ["hessian", model, "--data", DATA, "--split", "train", *HESSIAN_OPTS,
                    "--out", str(out / "hessian.h5"), "--overwrite", "--no-progress"],
        "hessian-fd": ["hessian", model, "--data", DATA, "--split", "train", *HESSIAN_FD_OPTS,
                       "--out", str(out / "hessian_fd.h5"), "--overwrite", "--no-progress"],
        "trajectory": ["trajectory", str(root / "run"), "--out", str(out / "trajectory.h5"),
                       "--overwrite", "--no-progress"],
    }


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _child(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GiB, output) of a niced child process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10))
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({p.returncode}):\n{out[-2000:]}")
    return wall, usage.ru_maxrss * 1024 / GIB, out


def predict(name: str, root: Path) -> dict:
    """The memory model's terms for command ``name`` (run in a child process)."""
    import torch

    from landscape.checkpoints import load_checkpoint
    from landscape.data import as_data
    from landscape.directions import random_directions
    from landscape.hessian.ggn import curvature_operator
    from landscape.memory import curvature_memory, model_bytes, trajectory_memory
    from landscape.surface import surface_memory_estimate

    sys.path.insert(0, str(REPO))
    from benchmarks._gpt2_fixture import tokens

    if name == "trajectory":
        ck = load_checkpoint(root / "run" / "checkpoint-3")
        m = ck.model
        selected = sum(p.numel() for p in m.parameters() if p.ndim > 1)  # ignore="biasbn"
        est = trajectory_memory(selected, 3, model_bytes(m), n_components=2)
        return est.terms
    ck = load_checkpoint(root / "gpt2")
    data = as_data(tokens("train"))
    if name.startswith("surface"):
        d = random_directions(ck.model, seeds=0)
        est = surface_memory_estimate(
            ck.model, d, {"train": data},
            direction_dtype=torch.bfloat16 if name == "surface-bf16" else None)
        return est.terms
    if name == "hessian-fd":
        op = curvature_operator(ck.model, data, batch_size=4, dtype=torch.float32,
                                hvp="finite-difference")
        return curvature_memory(op, ck.model, top_k=1, ncv=3,
                                solver_dtype=torch.float32).terms
    op = curvature_operator(ck.model, data, batch_size=4, dtype=torch.float32)
    est = curvature_memory(op, ck.model, top_k=1, ncv=4, trace=True,
                           trace_method="hutchinson", trace_samples=2,
                           solver_dtype=torch.float32)
    return est.terms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/gpt2mem", help="fixtures and outputs")
    ap.add_argument("--only", help="comma list of " + ",".join(commands(Path("."))))
    ap.add_argument("--predict", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.root)
    if args.predict:
        print(json.dumps(predict(args.predict, root)))
        return
    if not (root / "run" / "checkpoint-3").is_dir():
        subprocess.run([sys.executable, "-m", "benchmarks._gpt2_fixture", str(root)],
                       cwd=REPO, env=_env(), check=True)
    (root / "out").mkdir(parents=True, exist_ok=True)
    base_wall, base, _ = _child([sys.executable, "-c",
                                 "import torch, transformers, landscape.cli.main"])
    print(f"baseline (python + torch + transformers + landscape.cli imports): {base:.2f} GiB "
          f"peak RSS, {base_wall:.1f} s")
    todo = commands(root)
    names = args.only.split(",") if args.only else list(todo)
    cli = [sys.executable, "-m", "landscape.cli"]
    print("| command | wall s | measured peak RSS GiB | predicted GiB (baseline + model) | "
          "predicted / measured | terms (GiB) |")
    print("|---|---:|---:|---:|---:|---|")
    for name in names:
        _, _, out = _child([sys.executable, __file__, "--root", str(root), "--predict", name])
        terms = json.loads(out.strip().splitlines()[-1])
        model = sum(terms.values()) / GIB
        wall, peak, _ = _child([*cli, *todo[name]])
        pred = base + model
        detail = ", ".join(f"{k} {v / GIB:.2f}" for k, v in terms.items())
        print(f"| {name} | {wall:.0f} | {peak:.2f} | {pred:.2f} ({base:.2f} + {model:.2f}) | "
              f"{pred / peak:.2f} | {detail} |", flush=True)


if __name__ == "__main__":
    main()
