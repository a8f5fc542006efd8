"""Benchmark: solver overhead of Lanczos, Hutch++ and SLQ over their bare HVPs (issue 17).

For a model and data (default: ResNet-20 on 128 digits, float32, 1 thread), the script times
one bare Hessian-vector product (``op @ v`` on a torch vector, median of several) and then each
solver, and prints ``wall time / (number of HVPs x bare HVP time)``: 1.00 means the solver
costs nothing besides its products; the goal is <= 1.10 on CPU. Interleaved repetitions keep
machine noise out of the ratio as far as possible. A second ratio needs no separate bare HVP:
the operator is wrapped in a timer, and ``wall / (time inside the products)`` is the solver's
own overhead within the same run (the products are what they are; on a loaded machine this
one is the steadier figure). Nothing is asserted.

Usage::

    python benchmarks/bench_solver_overhead.py
    python benchmarks/bench_solver_overhead.py --model mlp --samples 512 --dtype float64
    python benchmarks/bench_solver_overhead.py --device cuda     # on a GPU machine
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from sklearn.datasets import load_digits

from landscape.data import TensorData
from landscape.hessian import HessianOperator, hutchpp, slq, top_eigen
from landscape.models import ModelSpec


def _data(n: int) -> TensorData:
    d = load_digits()
    x = torch.tensor(d.data[:n] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    return TensorData(x, torch.tensor(d.target[:n]), "digits")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ncv", type=int, default=None, help="Lanczos basis (default: the solver's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "num_classes": 10} if args.model != "mlp" else \
        {"in_features": 64, "num_classes": 10}
    model = ModelSpec(args.model, kwargs).build().to(args.device).eval()
    data = _data(args.samples)
    if args.model == "mlp":
        data = TensorData(data.x.reshape(len(data.x), -1), data.y, "digits")
    dtype = getattr(torch, args.dtype)
    op = HessianOperator(model, data, batch_size=args.samples, dtype=dtype)
    n = op.shape[0]
    print(f"{args.model}: {n:,} parameters, {args.samples} samples, {args.dtype}, "
          f"{args.device}, {args.threads} thread(s)")
    g = torch.Generator().manual_seed(0)
    v = torch.randn(n, generator=g, dtype=dtype).to(args.device)

    def bare(k: int = 5) -> float:
        times = []
        for _ in range(k):
            _sync(args.device)
            t0 = time.perf_counter()
            op @ v
            _sync(args.device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    class Timed:
        """``op`` whose products are timed (what the solvers see: ``@``, shape, dtype)."""

        def __init__(self) -> None:
            self.shape, self.dtype, self.device, self.seconds = op.shape, op.dtype, \
                op.device, 0.0

        def __matmul__(self, x):
            _sync(args.device)
            t0 = time.perf_counter()
            out = op @ x
            _sync(args.device)
            self.seconds += time.perf_counter() - t0
            return out

    timed = Timed()
    solvers = {
        "top-5 Lanczos (tol 1e-3)": lambda: top_eigen(timed, 5, which="LA", tol=1e-3, seed=0,
                                                         ncv=args.ncv),
        "Hutch++ (30 HVPs)": lambda: hutchpp(timed, 30, seed=0),
        "SLQ (2 runs x 15 steps)": lambda: slq(timed, 15, 2, seed=0),
    }
    bare()  # warm up
    rows: dict[str, list[float]] = {k: [] for k in solvers}
    inside: dict[str, list[float]] = {k: [] for k in solvers}
    hvps: dict[str, int] = {}
    t_hvp: list[float] = []
    for _ in range(args.repeats):
        for name, run in solvers.items():
            t1 = bare()
            start, timed.seconds = op.n_hvp, 0.0
            _sync(args.device)
            t0 = time.perf_counter()
            run()
            _sync(args.device)
            wall = time.perf_counter() - t0
            used = op.n_hvp - start
            t2 = bare()
            per = (t1 + t2) / 2
            t_hvp.append(per)
            hvps[name] = used
            rows[name].append(wall / (used * per))
            inside[name].append(wall / timed.seconds)
    print(f"bare HVP: {statistics.median(t_hvp) * 1e3:.1f} ms (median)")
    print(f"{'solver':28s} {'HVPs':>5s} {'wall/(HVPs x bare)':>19s} {'wall/in products':>17s}")
    for name, r in rows.items():
        print(f"{name:28s} {hvps[name]:5d} {statistics.median(r):19.3f} "
              f"{statistics.median(inside[name]):17.3f}   "
              "(runs: " + ", ".join(f"{x:.3f}/{y:.3f}"
                                    for x, y in zip(r, inside[name], strict=True)) + ")")


if __name__ == "__main__":
    main()
