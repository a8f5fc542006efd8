"""Benchmark: the smallest Hessian eigenvalue, ours against hessian-eigenthings 1.0 (issue 17).

The digits MLP of the package (``ModelSpec("mlp")``, 6,634 parameters) is trained with
:func:`landscape.training.train` (seeded, ``--epochs``, default 20) into a temporary
directory. At the final checkpoint lambda_min is small and sits at the edge of a dense cluster
of near-zero eigenvalues (the hard case: -0.0056 next to -0.0053, -0.0051, ... at 20 epochs).
The exact spectrum comes from the dense float64 Hessian (``n`` HVPs on identity columns).

Then, on the *same* :class:`~landscape.hessian.HessianOperator` (same HVPs, counted by the
operator), for several start seeds:

- ours: :func:`landscape.hessian.min_eigen` at ``tol`` 1e-3 and 1e-6, at the default basis
  size (``MIN_NCV`` = 60) and at ``ncv=20`` (the default before issue 17);
- hessian-eigenthings 1.0 (``hessian_eigenthings.lanczos(which="SA", k=1)``, the operator
  wrapped in its ``LambdaOperator``) at ``max_iter`` 20 ... 150 with its default
  re-orthogonalisation (on only for ``max_iter <= 50``) and with ``reorthogonalize=True``.
  Its ``max_iter`` is its HVP count (one Lanczos run, no restarts).

It prints HVPs, the largest relative error over the seeds against the dense eigenvalue, and,
for each of our rows, the fewest eigenthings iterations that reach the same accuracy. Without
hessian-eigenthings installed (it is never a dependency: ``pip install hessian-eigenthings``
in a benchmark venv only) the peer rows are skipped and said so. Nothing is asserted.

Usage::

    python benchmarks/bench_min_eigen.py
    python benchmarks/bench_min_eigen.py --epochs 3 --seeds 2 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from landscape.checkpoints import load_checkpoint
from landscape.data import DataSpec, load_data
from landscape.hessian import HessianOperator, min_eigen
from landscape.hessian.lanczos import MIN_NCV
from landscape.models import ModelSpec
from landscape.training import TrainConfig, train


def dense_hessian(op: HessianOperator, block: int = 256) -> np.ndarray:
    """The dense float64 Hessian from HVPs on blocks of identity columns."""
    n = op.numel
    H = np.empty((n, n))
    for s in range(0, n, block):
        cols = torch.arange(s, min(s + block, n))
        E = torch.zeros(n, len(cols), dtype=op.dtype)
        E[cols, cols - s] = 1.0
        H[:, s : s + len(cols)] = (op @ E).numpy()
    return (H + H.T) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3, help="start seeds per method")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
        import hessian_eigenthings as he
    except ImportError:
        he = None

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = train(ModelSpec("mlp"), DataSpec("digits"), TrainConfig(epochs=args.epochs, seed=0),
                    Path(tmp) / "run", progress=False)
        model = load_checkpoint(run.final).model
    data = load_data("digits", "train")
    op = HessianOperator(model, data, dtype=torch.float64)
    n = op.numel
    t1 = time.perf_counter()
    ev = scipy.linalg.eigvalsh(dense_hessian(op))
    lmin, lmax = float(ev[0]), float(ev[-1])
    print(f"digits MLP, {n:,} parameters, {len(data)} samples, {args.epochs} epochs (trained "
          f"in {t1 - t0:.0f} s), float64, {args.threads} thread(s)")
    print(f"dense Hessian ({n} HVPs, {time.perf_counter() - t1:.0f} s): lambda_min = {lmin:.6g}"
          f" (next {', '.join(f'{v:.4g}' for v in ev[1:4])}), lambda_max = {lmax:.6g}\n")

    def measure(fn: Callable[[int], float]) -> tuple[list[int], float, float]:
        hvps, errs, t = [], [], time.perf_counter()
        for s in range(args.seeds):
            before = op.n_hvp
            errs.append(abs(fn(s) - lmin) / abs(lmin))
            hvps.append(op.n_hvp - before)
        return hvps, max(errs), (time.perf_counter() - t) / args.seeds

    rows: list[tuple[str, list[int], float, float]] = []
    ours: list[tuple[str, list[int], float, float]] = []
    for tol in (1e-3, 1e-6):
        for ncv, label in ((None, f"ncv {MIN_NCV} (default)"), (20, "ncv 20 (old default)")):
            row = (f"ours min_eigen tol {tol:g}, {label}",
                   *measure(lambda s, tol=tol, ncv=ncv: float(
                       min_eigen(op, tol=tol, ncv=ncv, seed=s).eigenvalues[0])))
            rows.append(row)
            ours.append(row)
    peer: dict[tuple[str, int], float] = {}
    if he is None:
        print("hessian-eigenthings is not installed: its rows are skipped "
              "(pip install hessian-eigenthings into a benchmark venv)\n")
    else:
        wrapped = he.LambdaOperator(lambda v: op @ v, n, dtype=torch.float64)
        for reorth, name in ((None, "default reorth"), (True, "reorthogonalize=True")):
            for m in (20, 40, 60, 80, 100, 150):
                row = (f"eigenthings {he.__version__} lanczos SA, {m} it, {name}",
                       *measure(lambda s, m=m, reorth=reorth: float(he.lanczos(
                           wrapped, k=1, max_iter=m, which="SA", seed=s,
                           reorthogonalize=reorth).eigenvalues[0])))
                rows.append(row)
                peer[(name, m)] = row[2]
    print(f"{'method':58s} {'HVPs (mean, range)':>20s} {'max rel err':>12s} {'s/run':>7s}")
    for label, hvps, err, sec in rows:
        rng = f"{np.mean(hvps):.1f} ({min(hvps)}-{max(hvps)})"
        print(f"{label:58s} {rng:>20s} {err:12.2e} {sec:7.2f}")
    if peer:
        print("\nequal accuracy: the fewest eigenthings iterations (HVPs) reaching our error")
        for label, hvps, err, _ in ours:
            need = []
            for name in ("default reorth", "reorthogonalize=True"):
                ms = [m for (nm, m), e in sorted(peer.items()) if nm == name and e <= err]
                need.append(f"{name}: {min(ms) if ms else '>150'}")
            print(f"  {label}: {np.mean(hvps):.1f} HVPs at {err:.1e}; eigenthings "
                  + ", ".join(need))


if __name__ == "__main__":
    main()
