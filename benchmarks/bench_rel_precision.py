"""Benchmark: surfaces evaluated to a stated precision against full-data surfaces (issue 27).

On a generated CIFAR-shaped data set (``--samples`` images 3x32x32 in 10 classes: a seeded
low-frequency template per class times 0.5 plus standard normal noise, so that a network can
learn something), a ResNet-20 (the zoo's, 3 input channels) is taken untrained (seeded) and
briefly trained (``--train-steps`` SGD steps, batch 64, lr 0.05, momentum 0.9, seeded), and for
each the same ``--grid`` x ``--grid`` surface over [-1, 1]^2 along two filter-normalized random
directions (seed 0, biases and BN held fixed) is computed twice with
:func:`landscape.surface.compute_surface` on the train split: over all the data, and with
``rel_precision=R`` (``--rel-precision``, one or several R; ``--min-batches``, default 2,
``--min-samples``, default 256; precision_seed 0).
Printed per net and R: forward passes (batches of ``--batch-size``) and sample evaluations of
both, their ratio, wall times, and the largest relative error ``|L_R - L_full| / |L_full|`` over
every point with the number of points within R and within 2R. Nothing is asserted.

The samples a point needs grow like ``1/R^2`` and do not depend on the data set's size, so on a
small data set a larger R shows what a smaller R does on a larger one (R on N samples needs
the fraction of the data that R/5 needs on 25N), apart from the floors of ``min_batches``
batches and ``min_samples`` samples and the rounding up to whole batches.

The issue's goal (>= 3x fewer forward passes at R = 0.01 with every point within 2R) is stated
for ``--samples 50000 --grid 21``; see docs/benchmarks.md for what has been run.

Usage::

    python benchmarks/bench_rel_precision.py --grid 21 --samples 50000 --threads 16
    python benchmarks/bench_rel_precision.py --grid 5 --samples 1200 --batch-size 32 \
        --rel-precision 0.05,0.02 --train-steps 30
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from landscape._functional import named_tensors
from landscape.data import TensorData
from landscape.directions import random_directions
from landscape.models import build
from landscape.surface import compute_surface


def generated_cifar(n: int, seed: int = 0) -> TensorData:
    """``n`` CIFAR-shaped images: 0.5 x a low-frequency template of the class + N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    templates = F.interpolate(torch.randn(10, 3, 8, 8, generator=g), size=32, mode="bilinear",
                              align_corners=False)
    y = torch.randint(0, 10, (n,), generator=g)
    x = 0.5 * templates[y] + torch.randn(n, 3, 32, 32, generator=g)
    return TensorData(x, y, "generated-cifar", n_classes=10)


def brief_training(model: torch.nn.Module, data: TensorData, steps: int, seed: int = 0) -> float:
    """``steps`` SGD steps (batch 64, lr 0.05, momentum 0.9) in train mode; the last loss."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    loss = math.nan
    for _ in range(steps):
        idx = torch.randint(0, len(data), (64,), generator=g)
        opt.zero_grad()
        out = F.cross_entropy(model(data.x[idx]), data.y[idx])
        out.backward()
        opt.step()
        loss = float(out.detach())
    model.eval()
    return loss


def run_one(label: str, model: torch.nn.Module, data: TensorData, args: argparse.Namespace
            ) -> None:
    d = random_directions(named_tensors(model), seeds=0)
    grid = f"-1:1:{args.grid}"
    kw = dict(x=grid, y=grid, batch_size=args.batch_size, progress=False,
              channels_last=False)
    t0 = time.perf_counter()
    full = compute_surface(model, d, {"train": data}, **kw)
    t_full = time.perf_counter() - t0
    lf = full["train_loss"]
    print(f"{label}: loss {np.nanmin(lf):.4g} .. {np.nanmax(lf):.4g} (origin "
          f"{lf[args.grid // 2, args.grid // 2]:.4g}); full evaluation {t_full:.1f} s")
    for r in (float(v) for v in args.rel_precision.split(",")):
        t0 = time.perf_counter()
        prec = compute_surface(model, d, {"train": data}, rel_precision=r,
                               min_batches=args.min_batches, min_samples=args.min_samples,
                               **kw)
        t_prec = time.perf_counter() - t0
        n = prec.count("train_loss")
        bs, size = args.batch_size, len(data)
        passes_full = full.n_points * math.ceil(size / bs)
        passes_prec = int(np.ceil(n / bs).sum())
        rel = np.abs(prec["train_loss"] - lf) / np.abs(lf)
        worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
        print(f"  R={r:g}: forward passes {passes_prec:,} of {passes_full:,} "
              f"({passes_full / passes_prec:.2f}x fewer); sample evaluations "
              f"{int(n.sum()):,} of {full.n_points * size:,}; samples per point "
              f"{int(n.min()):,} .. {int(n.max()):,} (median {int(np.median(n)):,}, "
              f"{int((n == size).sum())} points on all {size:,}); {t_prec:.1f} s "
              f"({t_full / t_prec:.2f}x)")
        print(f"    largest relative error {rel.max():.4g} = {rel.max() / r:.2f} R at "
              f"(iy, ix) = {tuple(int(i) for i in worst)} (n = {int(n[worst]):,}); "
              f"within R: {int((rel <= r).sum())}/{rel.size}, within 2R: "
              f"{int((rel <= 2 * r).sum())}/{rel.size}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=21, help="points per axis (default 21)")
    ap.add_argument("--samples", type=int, default=50_000, help="data set size (default 50,000)")
    ap.add_argument("--rel-precision", default="0.01",
                    help="R, or several separated by commas (one full surface for all)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--min-batches", type=int, default=2)
    ap.add_argument("--min-samples", type=int, default=256)
    ap.add_argument("--nets", default="untrained,trained")
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = generated_cifar(args.samples)
    print(f"ResNet-20 on {args.samples:,} generated CIFAR-shaped samples, {args.grid}x"
          f"{args.grid} grid, batch {args.batch_size}, R = {args.rel_precision}, min_batches "
          f"{args.min_batches}, min_samples {args.min_samples}, "
          f"{args.threads} thread(s)")
    for label in args.nets.split(","):
        torch.manual_seed(0)
        model = build("resnet20", num_classes=10).eval()
        if label == "trained":
            t0 = time.perf_counter()
            last = brief_training(model, data, args.train_steps)
            label = (f"trained ({args.train_steps} steps, last batch loss {last:.3g}, "
                     f"{time.perf_counter() - t0:.0f} s)")
        run_one(label, model, data, args)


if __name__ == "__main__":
    main()
