"""Peak memory of a top-5 Lanczos run on the largest built-in model (issue 17).

Each configuration runs in a fresh process, so that its peak is its own: the model (default
VGG-16, 14,991,946 parameters, CIFAR-shaped), a few random images, a float32 HVP operator
without a cached graph; the baseline is taken after the operator's first product (model,
data, autograd's workspace), then ``top_eigen(op, 5, which="LA", max_hvp=N)`` runs and the
peak over the baseline is printed: host RSS from ``getrusage`` on the CPU, and
``torch.cuda.max_memory_allocated`` on CUDA (``--device cuda``). The float64 basis of ncv = 20
takes ``2 x 20 x n x 8`` bytes (4.47 GiB for VGG-16) once full; ``--solver-dtype float32``
halves it. Nothing is asserted.

Usage::

    python benchmarks/bench_lanczos_memory.py                       # 4 and 21 HVPs, both dtypes
    python benchmarks/bench_lanczos_memory.py --max-hvp 21 --solver-dtype float64
    python benchmarks/bench_lanczos_memory.py --device cuda         # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

GIB = 2**30


def _host_peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def one(args: argparse.Namespace) -> dict:
    """One configuration in this process."""
    from landscape.data import TensorData
    from landscape.hessian import HessianOperator, top_eigen
    from landscape.models import build

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(args.model, in_channels=3, num_classes=10).to(device).eval()
    x = torch.randn(args.samples, 3, 32, 32)
    y = torch.randint(0, 10, (args.samples,))
    op = HessianOperator(model, TensorData(x, y, "random"), batch_size=args.samples,
                         dtype=torch.float32, cache_graph=False)
    op @ torch.randn(op.shape[0], device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    base_host = _host_peak()
    t0 = time.perf_counter()
    res = top_eigen(op, 5, which="LA", max_hvp=args.max_hvp, tol=1e-12,
                    solver_dtype=getattr(torch, args.solver_dtype))
    out = {"n": op.shape[0], "hvps": res.n_hvp, "seconds": time.perf_counter() - t0,
           "host_peak_over_baseline_gib": (_host_peak() - base_host) / GIB}
    if device.type == "cuda":
        out["device_peak_over_baseline_gib"] = (torch.cuda.max_memory_allocated(device)
                                                - base) / GIB
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-hvp", type=int, action="append", help="default: 4 and 21")
    ap.add_argument("--solver-dtype", action="append", choices=("float64", "float32"),
                    help="default: both")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        args.max_hvp, args.solver_dtype = args.max_hvp[0], args.solver_dtype[0]
        print(json.dumps(one(args)))
        return
    print(f"{args.model}, {args.samples} random CIFAR-shaped images, float32 HVPs, "
          f"uncached graph, {args.device}, {args.threads} thread(s); peak over the RSS after "
          "the first HVP")
    print(f"{'HVPs':>5s} {'solver vectors':>15s} {'host peak':>10s} {'device peak':>12s} "
          f"{'time':>7s}")
    for hvps in args.max_hvp or [4, 21]:
        for sd in args.solver_dtype or ["float64", "float32"]:
            cmd = [sys.executable, __file__, "--one", "--model", args.model, "--samples",
                   str(args.samples), "--device", args.device, "--threads", str(args.threads),
                   "--max-hvp", str(hvps), "--solver-dtype", sd]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                raise SystemExit(p.stderr)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            dev = r.get("device_peak_over_baseline_gib")
            print(f"{r['hvps']:5d} {sd:>15s} {r['host_peak_over_baseline_gib']:+9.2f}G "
                  f"{'-' if dev is None else f'{dev:+.2f}G':>12s} {r['seconds']:6.1f}s",
                  flush=True)


if __name__ == "__main__":
    main()
