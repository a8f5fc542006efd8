"""Benchmark: Lanczos vs PyHessian-style power iteration, Hutch++ vs Hutchinson.

A 64-48-48-10 ReLU MLP (5,962 parameters) is trained briefly on scikit-learn's digits
(x / 16, 1,797 samples) with a fixed seed, so that the Hessian is not the one at
initialisation. The exact Hessian of the full-data cross-entropy is built once from HVPs on
identity columns (float64) and diagonalised densely. Then, counting Hessian-vector products
(HVPs) and wall time:

- top-5 eigenvalues: :func:`landscape.hessian.top_eigen` against power iteration with
  deflation as PyHessian implements it (for each eigenvalue: random unit v; repeat
  orthonormalise against the found eigenvectors, Hv, lambda = v.Hv, v = Hv/|Hv|, until
  ``|lambda - lambda_prev| / (|lambda_prev| + 1e-6) < tol``, at most ``maxIter = 100``), at
  PyHessian's default ``tol=1e-3`` and tighter ones, to see what reaching 1e-3 relative
  accuracy on all five costs;
- trace: Hutch++ against Hutchinson at the same number of products (99), over several
  seeds, plus PyHessian's Hutchinson loop at its defaults.

Nothing is asserted; the script prints tables. Runs in about a minute on 2 CPU cores.

Usage::

    python benchmarks/bench_hessian.py
    python benchmarks/bench_hessian.py --seeds 5 --trace-seeds 20 --threads 2
    python benchmarks/bench_hessian.py --device cuda

References
----------
.. [1] Z. Yao, A. Gholami, K. Keutzer, M. Mahoney, "PyHessian: Neural networks through the lens
   of the Hessian", IEEE BigData 2020.
.. [2] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
   estimation", SOSA 2021.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from landscape.hessian import HessianOperator, hutchinson, hutchpp, top_eigen

K = 5


def train_digits_mlp(seed: int, steps: int) -> tuple[nn.Module, Tensor, Tensor]:
    """The 5,962-parameter MLP after ``steps`` Adam steps (batch 128, lr 1e-2) on digits."""
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    model = nn.Sequential(
        nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 10)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, x, y


def dense_hessian(op: HessianOperator, block: int = 512) -> np.ndarray:
    n = op.numel
    H = np.empty((n, n))
    for s in range(0, n, block):
        cols = torch.arange(s, min(s + block, n))
        E = torch.zeros(n, len(cols), dtype=op.dtype)
        E[cols, cols - s] = 1.0
        H[:, s : s + len(cols)] = (op @ E.to(op.device)).cpu().numpy()
    return (H + H.T) / 2


def pyhessian_power_iteration(
    hv: Callable[[Tensor], Tensor], n: int, top_n: int, tol: float, max_iter: int, seed: int,
    device: str = "cpu",
) -> list[float]:
    """PyHessian's ``hessian.eigenvalues`` loop, on flat float64 vectors."""
    gen = torch.Generator().manual_seed(seed)
    eigenvalues: list[float] = []
    eigenvectors: list[Tensor] = []
    while len(eigenvalues) < top_n:
        eigenvalue = None
        v = torch.randn(n, dtype=torch.float64, generator=gen).to(device)
        v = v / v.norm()
        for _ in range(max_iter):
            for u in eigenvectors:  # orthnormal(v, eigenvectors)
                v = v - (v @ u) * u
            v = v / v.norm()
            Hv = hv(v)
            tmp = float(Hv @ v)
            v = Hv / Hv.norm()
            if eigenvalue is None:
                eigenvalue = tmp
            elif abs(eigenvalue - tmp) / (abs(eigenvalue) + 1e-6) < tol:
                break
            else:
                eigenvalue = tmp
        eigenvalues.append(float(eigenvalue))
        eigenvectors.append(v)
    return eigenvalues


def pyhessian_trace(hv: Callable[[Tensor], Tensor], n: int, max_iter: int, tol: float, seed: int,
                    device: str = "cpu"):
    """PyHessian's ``hessian.trace`` loop (Rademacher Hutchinson with its stopping rule)."""
    gen = torch.Generator().manual_seed(seed)
    vhv: list[float] = []
    trace = 0.0
    for _ in range(max_iter):
        v = (torch.randint(0, 2, (n,), generator=gen).to(torch.float64) * 2 - 1).to(device)
        vhv.append(float(hv(v) @ v))
        if abs(np.mean(vhv) - trace) / (abs(trace) + 1e-6) < tol:
            break
        trace = float(np.mean(vhv))
    return float(np.mean(vhv)), len(vhv)


def rel_err(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(found) - exact) / np.abs(exact)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--train-steps", type=int, default=300, help="Adam steps (default 300)")
    parser.add_argument("--seeds", type=int, default=3, help="solver start seeds (default 3)")
    parser.add_argument("--trace-seeds", type=int, default=10, help="trace seeds (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", DeprecationWarning)

    t0 = time.perf_counter()
    model, x, y = train_digits_mlp(args.seed, args.train_steps)
    dev = args.device
    model, x, y = model.to(dev), x.to(dev), y.to(dev)
    op = HessianOperator(model, (x, y), dtype=torch.float64)
    n = op.numel
    print(
        f"digits MLP 64-48-48-10: n = {n} parameters, N = {len(x)} samples, "
        f"loss = {op.loss():.4f}, method = {op.method!r}, float64"
    )
    t = time.perf_counter()
    op @ torch.zeros(n, dtype=torch.float64, device=dev)  # builds the cached graph
    H = dense_hessian(op)
    ev = scipy.linalg.eigvalsh(H)
    t_exact = time.perf_counter() - t
    exact_top = ev[np.argsort(-np.abs(ev))][:K]
    exact_trace = float(np.trace(H))
    print(
        f"exact Hessian ({n} HVPs + eigvalsh, {t_exact:.1f} s): top-{K} = "
        + ", ".join(f"{v:.6g}" for v in exact_top)
        + f"; lambda_min = {ev[0]:.4g}; trace = {exact_trace:.6g}"
    )

    def hv(v: Tensor) -> Tensor:
        return op @ v

    # time per HVP, for context
    t = time.perf_counter()
    for _ in range(20):
        hv(torch.ones(n, dtype=torch.float64, device=dev))
    t_hvp = (time.perf_counter() - t) / 20
    print(f"one HVP: {1e3 * t_hvp:.2f} ms\n")

    rows: list[tuple[str, list[int], list[float], list[float]]] = []
    for label, fn in [
        *[
            (
                f"top_eigen (Lanczos) tol={tol:g}",
                lambda s, tol=tol: top_eigen(op, K, tol=tol, seed=s).eigenvalues,
            )
            for tol in (1e-3, 1e-6)
        ],
        (
            "top_eigen (ARPACK eigsh) tol=1e-6",
            lambda s: top_eigen(op, K, tol=1e-6, seed=s, solver="arpack").eigenvalues,
        ),
        *[
            (
                f"PyHessian power iter tol={tol:g}",
                lambda s, tol=tol: np.asarray(
                    pyhessian_power_iteration(hv, n, K, tol, 100, s, dev)),
            )
            for tol in (1e-3, 1e-4, 1e-5, 1e-6)
        ],
    ]:
        hvps, times, errs = [], [], []
        for s in range(args.seeds):
            before = op.n_hvp
            t = time.perf_counter()
            vals = fn(s)
            times.append(time.perf_counter() - t)
            hvps.append(op.n_hvp - before)
            errs.append(rel_err(vals, exact_top))
        rows.append((label, hvps, times, errs))

    print(f"Top-{K} eigenvalues ({args.seeds} start seeds; error = max relative over the 5)")
    print(f"{'method':36s} {'HVPs (mean, range)':>20s} {'time s':>8s} {'max rel err':>12s}")
    for label, hvps, times, errs in rows:
        rng = f"{np.mean(hvps):.1f} ({min(hvps)}-{max(hvps)})"
        print(f"{label:36s} {rng:>20s} {np.mean(times):8.3f} {max(errs):12.2e}")

    ours = rows[0]
    reached = [r for r in rows[3:] if max(r[3]) <= 1e-3]
    if reached:
        power = reached[0]
        print(
            f"\nto reach <= 1e-3 on all top-{K}: power iteration needs {power[0].split()[-1]}; "
            f"HVP ratio power/Lanczos = {np.mean(power[1]) / np.mean(ours[1]):.1f}x, "
            f"time ratio = {np.mean(power[2]) / np.mean(ours[2]):.1f}x"
        )
    else:
        print(f"\npower iteration did not reach 1e-3 on all top-{K} at any tol tried")
    default = rows[3]
    print(
        f"at PyHessian's default tol=1e-3: HVP ratio = "
        f"{np.mean(default[1]) / np.mean(ours[1]):.1f}x, time ratio = "
        f"{np.mean(default[2]) / np.mean(ours[2]):.1f}x, its max rel err = {max(default[3]):.2e}"
    )

    print(f"\nTrace (exact {exact_trace:.6g}; {args.trace_seeds} seeds; relative error)")
    print(f"{'method':36s} {'HVPs':>8s} {'mean err':>10s} {'max err':>10s} {'time s':>8s}")
    for label, fn in [
        ("Hutchinson, 99 HVPs", lambda s: (hutchinson(op, 99, seed=s).estimate, 99)),
        ("Hutch++, 99 HVPs", lambda s: (hutchpp(op, 99, seed=s).estimate, 99)),
        ("PyHessian trace (maxIter=100, tol=1e-3)",
         lambda s: pyhessian_trace(hv, n, 100, 1e-3, s, dev)),
    ]:
        errs, counts, times = [], [], []
        for s in range(args.trace_seeds):
            t = time.perf_counter()
            est, count = fn(s)
            times.append(time.perf_counter() - t)
            errs.append(abs(est - exact_trace) / abs(exact_trace))
            counts.append(count)
        print(
            f"{label:36s} {np.mean(counts):8.1f} {np.mean(errs):10.4f} {max(errs):10.4f} "
            f"{np.mean(times):8.3f}"
        )
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
