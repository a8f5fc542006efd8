"""Benchmark: several grid points in one batched forward (torch.func.vmap) vs one at a time.

Issue 17 asks whether evaluating ``P`` grid points at once -- ``torch.func.functional_call``
over ``P`` stacked parameter sets, vectorised with ``torch.func.vmap`` (convolutions become
grouped convolutions) -- is faster than ``P`` ordinary forwards for models too small to fill the
device. This script measures it on the digits (train + test, 1,797 images) for a model of the
zoo: seconds per grid point, one point at a time (batch ``--batch-size``, inference mode) against
``P`` points per forward, interleaved, plus the largest relative difference of the losses
(goal: <= 1e-6). Nothing in the library uses multi-point evaluation yet: on the CPU it was
slower for every ``P`` measured (see docs/benchmarks.md); run this on a GPU before wiring it in.

Usage::

    python benchmarks/bench_multipoint.py --model resnet56
    python benchmarks/bench_multipoint.py --model resnet20 --points 2,4,8,16 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.func import functional_call, vmap

from landscape.data import load_splits
from landscape.models import build


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--points", default="2,4,8", help="P values, comma-separated")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here; running on the CPU instead")
        args.device = "cpu"
    device = torch.device(args.device)
    tr, te = load_splits("digits")
    x, y = torch.cat([tr.x, te.x]).to(device), torch.cat([tr.y, te.y]).to(device)
    torch.manual_seed(0)
    model = build(args.model, in_channels=1).eval().to(device)
    params = {k: v.detach() for k, v in model.named_parameters()}
    bufs = dict(model.named_buffers())
    g = torch.Generator().manual_seed(1)
    dirs = {k: (0.1 * torch.randn(v.shape, generator=g)).to(device) for k, v in params.items()}
    sizes = [int(p) for p in args.points.split(",")]
    bs = args.batch_size

    def losses_single(coords: list[float]) -> list[float]:
        out = []
        for c in coords:
            p = {k: v + c * dirs[k] for k, v in params.items()}
            total = 0.0
            for i in range(0, len(x), bs):
                z = functional_call(model, {**p, **bufs}, (x[i:i + bs],))
                total += float(nn.functional.cross_entropy(z, y[i:i + bs], reduction="sum"))
            out.append(total / len(x))
        return out

    def one(p: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**p, **bufs}, (xb,))

    batched = vmap(one, in_dims=(0, None))

    def losses_multi(coords: list[float]) -> list[float]:
        c = torch.tensor(coords, device=device)
        p = {k: v + c.view(-1, *([1] * v.ndim)) * dirs[k] for k, v in params.items()}
        totals = torch.zeros(len(coords), dtype=torch.float64, device=device)
        for i in range(0, len(x), bs):
            z = batched(p, x[i:i + bs])  # (P, B, classes)
            yy = y[i:i + bs].expand(len(coords), -1)
            totals += nn.functional.cross_entropy(z.flatten(0, 1), yy.flatten(),
                                                  reduction="none").view(len(coords), -1) \
                .double().sum(1)
        return (totals / len(x)).tolist()

    times: dict[str, list[float]] = {"one point at a time": []}
    times.update({f"{p} points per forward": [] for p in sizes})
    worst = 0.0
    with torch.inference_mode():
        for p in sizes:  # warm-up and the value check
            coords = [0.05 * k for k in range(p)]
            ref, got = losses_single(coords), losses_multi(coords)
            worst = max(worst, max(abs(a - b) / abs(a) for a, b in zip(ref, got, strict=True)))
        for _ in range(args.repeats):
            for key in times:
                p = 1 if key.startswith("one") else int(key.split()[0])
                coords = [0.05 * k for k in range(max(p, 1))]
                fn = losses_single if p == 1 else losses_multi
                _sync(device)
                t = time.perf_counter()
                fn(coords)
                _sync(device)
                times[key].append((time.perf_counter() - t) / len(coords))
    base = statistics.median(times["one point at a time"])
    print(f"{args.model} on digits ({len(x)} images), batch {bs}, {device}, "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats}")
    for key, ts in times.items():
        t = statistics.median(ts)
        print(f"  {key:24s} {t:8.3f} s/point   {base / t:5.2f}x")
    print(f"largest relative loss difference, multi vs one point: {worst:.1e} (goal <= 1e-6)")


if __name__ == "__main__":
    main()
