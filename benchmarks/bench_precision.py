"""Benchmark: float32 against float64 Hessian-vector products, solvers in float64 (issue 17).

For the benchmark models on digits -- the package's MLP (6,634 parameters) and ResNet-20
(272,186), trained with :func:`landscape.training.train` (seeded) into a temporary directory --
:func:`landscape.hessian.compute_curvature` runs every section (top-5 eigenvalues, lambda_min and
the ratio, Hutch++ trace, SLQ density) twice at the final checkpoint, with float64 and with
float32 HVPs (the solvers' vectors and accumulations are float64 both times; same seeds, so the
same probes), and prints the differences of every stored number relative to the float64 run,
the HVP counts and the wall times. The CLI's default HVP dtype (float32) and the precision note
it records come from these figures. Nothing is asserted.

Usage::

    python benchmarks/bench_precision.py
    python benchmarks/bench_precision.py --models mlp --mlp-epochs 20 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from landscape.checkpoints import load_checkpoint
from landscape.data import DataSpec, load_data
from landscape.hessian import compute_curvature
from landscape.models import ModelSpec
from landscape.training import TrainConfig, train


def _rel(a: float, b: float, scale: float) -> float:
    return abs(a - b) / scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mlp,resnet20")
    ap.add_argument("--mlp-epochs", type=int, default=20)
    ap.add_argument("--resnet-epochs", type=int, default=3)
    ap.add_argument("--resnet-samples", type=int, default=128,
                    help="training images of ResNet-20's loss (a float64 HVP costs ~6x)")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    for name in args.models.split(","):
        epochs = args.mlp_epochs if name == "mlp" else args.resnet_epochs
        with tempfile.TemporaryDirectory() as tmp:
            spec = ModelSpec(name, {} if name == "mlp" else {"in_channels": 1})
            run = train(spec, DataSpec("digits"), TrainConfig(epochs=epochs, seed=0),
                        Path(tmp) / "run", progress=False)
            model = load_checkpoint(run.final).model
        data = load_data("digits", "train") if name == "mlp" else \
            load_data(DataSpec("digits", subset=args.resnet_samples), "train")
        res, secs = {}, {}
        for dt in (torch.float64, torch.float32):
            t0 = time.perf_counter()
            res[dt] = compute_curvature(model, data, top_k=5, min_eig=True, trace=True,
                                        trace_samples=30, density=True, density_steps=20,
                                        density_runs=2, tol=args.tol, dtype=dt)
            secs[dt] = time.perf_counter() - t0
        a, b = res[torch.float64], res[torch.float32]
        lmax = float(a.lambda_max)
        n_params = a.n_params
        print(f"{name} on {len(data)} digits ({epochs} epochs, {n_params:,} parameters), "
              f"tol {args.tol:g}, {args.threads} thread(s)")
        print(f"  float64 HVPs: {a.n_hvp} in {secs[torch.float64]:.1f} s; float32: {b.n_hvp} in "
              f"{secs[torch.float32]:.1f} s ({secs[torch.float64] / secs[torch.float32]:.1f}x)")
        top_rel = np.abs(b.top_eigenvalues - a.top_eigenvalues) / np.abs(a.top_eigenvalues)
        print(f"  top-5 (float64) {', '.join(f'{v:.6g}' for v in a.top_eigenvalues)}; "
              f"max rel diff {top_rel.max():.2e}; converged f64 {bool(a.top_converged.all())} "
              f"f32 {bool(b.top_converged.all())}; HVPs {a.top_n_hvp} / {b.top_n_hvp}")
        print(f"  lambda_min {a.min_eigenvalue:.6g} / {b.min_eigenvalue:.6g}: diff "
              f"{_rel(a.min_eigenvalue, b.min_eigenvalue, abs(a.min_eigenvalue)):.2e} of itself"
              f", {_rel(a.min_eigenvalue, b.min_eigenvalue, lmax):.2e} of lambda_max; "
              f"converged {a.min_converged} / {b.min_converged}; HVPs {a.min_n_hvp} / "
              f"{b.min_n_hvp}")
        print(f"  ratio {a.ratio:.6g} / {b.ratio:.6g}: abs diff {abs(a.ratio - b.ratio):.2e}")
        print(f"  trace {a.trace:.6g} / {b.trace:.6g}: rel diff "
              f"{_rel(a.trace, b.trace, abs(a.trace)):.2e} (stderr {a.trace_stderr:.2g})")
        node = np.abs(b.slq_nodes - a.slq_nodes).max() / lmax
        print(f"  SLQ nodes max diff {node:.2e} of lambda_max; implied trace rel diff "
              f"{_rel(a.density_trace, b.density_trace, abs(a.density_trace)):.2e}")


if __name__ == "__main__":
    main()
