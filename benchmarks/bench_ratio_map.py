"""Benchmark: ratio maps (Li et al.'s |lambda_min/lambda_max|) warm-started vs cold-started.

The digits MLP of the package (``ModelSpec("mlp")``: 64-32-4x32-10 with residual blocks, 6,634
parameters) is trained for a few epochs with :func:`landscape.training.train` (seeded) into a
temporary directory; a filter-normalized 2D surface is computed around the final checkpoint on
an ``n x n`` grid for each span; then the ratio map over that grid is computed, at the same
``tol``, by

- ``warm``: :func:`landscape.hessian.compute_ratio_map` (serpentine order, each point's Lanczos
  run starts from the neighbour's two extreme eigenvectors plus a random part);
- ``cold``: the same with ``warm_start=False`` (every point from a seeded random vector);
- ``separate``: the loop a user of the eigen-solvers would write -- at every point
  :func:`~landscape.hessian.top_eigen` (``k=1, which="LA"``) then
  :func:`~landscape.hessian.min_eigen` with ``atol = tol * lambda_max``, both from random
  vectors.

A reference map (cold, ``tol=1e-7``) gives the error of each against the true extremes, in
units of ``lambda_max``, and counts "misses" (a Ritz value that passed the residual test at an
eigenvalue other than the extreme one, error above ``2 tol``). HVPs are the machine-independent
cost; wall times (best of ``--repeats`` alternating runs) are printed too -- on a shared
machine they are noisy. Nothing is asserted.

Usage::

    python benchmarks/bench_ratio_map.py
    python benchmarks/bench_ratio_map.py --grid 9 --spans 1,0.25,0.05 --threads 2

References
----------
.. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
   Neural Nets", NeurIPS 2018.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from landscape import named_tensors, random_directions
from landscape.checkpoints import load_checkpoint
from landscape.data import DataSpec, load_data
from landscape.hessian import HessianOperator, RatioMap, compute_ratio_map, min_eigen, top_eigen
from landscape.models import ModelSpec
from landscape.surface import Surface, compute_surface
from landscape.training import TrainConfig, train


def separate_map(model, surface: Surface, data, tol: float, dtype) -> tuple[RatioMap, float]:
    """Per point: top_eigen(LA, k=1) then min_eigen(atol=tol*lmax), both cold."""
    base = named_tensors(model)
    dx, dy = surface.directions.vectors
    shape = surface.shape
    lmax, lmin = np.full(shape, np.nan), np.full(shape, np.nan)
    nh = np.zeros(shape, dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(surface.n_points):
        a, b = surface.coords(i)
        p = {k: v.to(dtype) + a * dx[k].to(dtype) + b * dy[k].to(dtype) for k, v in base.items()}
        op = HessianOperator(model, data, params=p, dtype=dtype)
        hi = top_eigen(op, 1, which="LA", tol=tol)
        lo = min_eigen(op, 1, tol=tol, atol=tol * abs(float(hi.eigenvalues[0])))
        iy, ix = divmod(i, shape[1])
        lmax[iy, ix], lmin[iy, ix], nh[iy, ix] = hi.eigenvalues[0], lo.eigenvalues[0], op.n_hvp
    dt = time.perf_counter() - t0
    ones = np.ones(shape, dtype=bool)
    rm = RatioMap(surface.x, surface.y, lmax, lmin, np.abs(lmin / lmax), nh, ones, ones)
    return rm, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--grid", type=int, default=7, help="points per axis")
    ap.add_argument("--spans", default="1,0.1",
                    help="comma list of half-widths s: grid -s:s:n on both axes")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of cold and warm, alternating; the best wall time is kept")
    ap.add_argument("--no-separate", action="store_true", help="skip the 'separate' baseline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    dtype = torch.float64
    spans = [float(s) for s in args.spans.split(",")]
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        spec = ModelSpec("mlp")
        t0 = time.perf_counter()
        run = train(spec, DataSpec("digits"), TrainConfig(epochs=args.epochs, seed=0),
                    tmp / "run", progress=False)
        ckpt = load_checkpoint(run.final)
        data = load_data("digits", "train")
        n_params = sum(p.numel() for p in ckpt.model.parameters())
        print(f"digits MLP {n_params} parameters, {len(data)} training samples, trained "
              f"{args.epochs} epochs in {time.perf_counter() - t0:.1f} s "
              f"(train loss {run.history[-1]['train_loss']:.3f}); "
              f"torch threads {args.threads}, float64, tol {args.tol:g}")
        dirs = random_directions(named_tensors(ckpt.model), seeds=0)
        for span in spans:
            n = args.grid
            sfile = tmp / f"surface_{span:g}.h5"
            axis = f"{-span:g}:{span:g}:{n}"
            surf = compute_surface(ckpt.model, dirs, {"train": data}, x=axis, y=axis,
                                   out=sfile, progress=False)
            step = 2 * span / (n - 1)
            print(f"\n{n}x{n} grid on [-{span:g}, {span:g}]^2 (step {step:.3g} in "
                  f"filter-normalized units; train loss {np.nanmin(surf['train_loss']):.3f} to "
                  f"{np.nanmax(surf['train_loss']):.3f})")
            ref = compute_ratio_map(ckpt.model, sfile, data, tol=1e-7, warm_start=False,
                                    dtype=dtype, out=tmp / f"ref_{span:g}.h5", progress=False)
            best: dict[str, tuple[RatioMap, float]] = {}
            for _rep in range(args.repeats):  # alternate, keep the best time of each
                for name, warm in (("cold", False), ("warm", True)):
                    t1 = time.perf_counter()
                    rm = compute_ratio_map(ckpt.model, sfile, data, tol=args.tol,
                                           warm_start=warm, dtype=dtype, overwrite=True,
                                           out=tmp / f"{name}_{span:g}.h5", progress=False)
                    dt = time.perf_counter() - t1
                    if name not in best or dt < best[name][1]:
                        best[name] = (rm, dt)
            rows = [(name, *best[name]) for name in ("cold", "warm")]
            if not args.no_separate:
                rm, dt = separate_map(ckpt.model, surf, data, args.tol, dtype)
                rows.append(("separate", rm, dt))
            cold_hvp, cold_t = rows[0][1].total_hvp, rows[0][2]
            scale = np.abs(ref.lambda_max)
            print(f"  {'start':<9}{'HVPs':>7}{'HVP/pt':>8}{'wall s':>8}{'cold/x HVP':>11}"
                  f"{'cold/x time':>12}{'max err λmin':>14}{'max err λmax':>14}{'misses':>8}")
            for name, rm, dt in rows:
                emin = np.abs(rm.lambda_min - ref.lambda_min) / scale
                emax = np.abs(rm.lambda_max - ref.lambda_max) / scale
                print(f"  {name:<9}{rm.total_hvp:>7}{rm.total_hvp / rm.n_points:>8.1f}"
                      f"{dt:>8.2f}{cold_hvp / rm.total_hvp:>11.2f}{cold_t / dt:>12.2f}"
                      f"{emin.max():>14.1e}{emax.max():>14.1e}"
                      f"{int(np.sum(emin > 2 * args.tol)):>8}")
            r = ref.ratio
            print(f"  reference (tol 1e-7): |λmin/λmax| {r.min():.3g} to {r.max():.3g}, "
                  f"{ref.total_hvp / ref.n_points:.1f} HVP/pt")
            w = rows[1][1]
            first = w.n_hvp.ravel()[0]
            print(f"  warm per point: first (cold) {first}, then median "
                  f"{np.median(w.n_hvp.ravel()[1:]):.0f} (min {w.n_hvp.ravel()[1:].min()}); "
                  f"cold median {np.median(rows[0][1].n_hvp):.0f}")


if __name__ == "__main__":
    main()
