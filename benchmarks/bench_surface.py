"""Surface engine speed: our engine vs a faithful per-point baseline and the forward roofline.

In one process, on the same model, data and grid points:

(a) baseline   the per-point procedure of Li et al.'s ``plot_surface.py``: set the weights from
               the directions at every point (``p.data = w + dx*a + dy*b``), iterate a
               ``DataLoader`` with batch 128 in fp32, eval mode, ``CrossEntropyLoss`` mean times
               batch size, accuracy by argmax;
(b) engine     ``landscape.evaluation.Evaluator.at`` at ``compute_surface``'s defaults (data
               on the device, batch size probed, inference mode, float64 accumulation);
(c) fastest    the engine with the best settings found here (batch size probed,
               channels_last and bf16 autocast where they help); bf16 values are compared
               with fp32 to 1e-2;
(d) roofline   a bare ``model(x)`` forward over the same data at the best batch size
               (no loss, no weight update): the floor for this machine.

Prints points/s, speedup over (a), overhead over (d), achieved GFLOP/s (FLOPs counted with
``torch.utils.flop_counter``) against a dense fp32 matmul measured in the same run, and checks
that (b) equals (a) to 1e-6 relative.

Usage::

    python benchmarks/bench_surface.py --model resnet20 --points 6
    python benchmarks/bench_surface.py --model resnet56 --points 4 --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape._functional import named_tensors
from landscape.data import load_splits
from landscape.directions import random_directions
from landscape.evaluation import Evaluator
from landscape.models import build


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def baseline_point(model: nn.Module, base: dict, dx: dict, dy: dict, a: float, b: float,
                   loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Li et al.'s per-point procedure (net_plotter.set_weights + evaluation.eval_loss)."""
    with torch.no_grad():
        for (name, p) in model.named_parameters():
            p.data = base[name] + dx[name] * a + dy[name] * b
    crit = nn.CrossEntropyLoss()
    total_loss, correct, total = 0.0, 0, 0
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = crit(out, y)
            total_loss += loss.item() * x.size(0)
            correct += int((out.argmax(1) == y).sum())
            total += x.size(0)
    return total_loss / total, correct / total


def matmul_gflops(device: torch.device, n: int = 1024, reps: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return int(fc.get_total_flops())


def _timed(fn, point: tuple[float, float]) -> tuple[float, object]:
    t = time.perf_counter()
    v = fn(*point)
    return time.perf_counter() - t, v


def _interleaved(methods: dict, coords: list[tuple[float, float]]) -> tuple[dict, dict]:
    """Time every method on every point, methods interleaved point by point (so that clock
    and thermal drift hit all of them alike); one untimed warm-up call each."""
    for fn in methods.values():
        fn(*coords[0])
    times: dict = {k: [] for k in methods}
    values: dict = {k: [] for k in methods}
    for pt in coords:
        for k, fn in methods.items():
            t, v = _timed(fn, pt)
            times[k].append(t)
            values[k].append(v)
    return times, values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--points", type=int, default=6, help="grid points timed per method")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--batch-sizes", default="256,512,1024,2048")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build(args.model, in_channels=1).eval().to(device)
    train, test = load_splits("digits")
    x = torch.cat([train.x, test.x]).to(device)
    y = torch.cat([train.y, test.y]).to(device)
    n = len(x)
    data = {"all": type(train)(x, y, "digits-all")}
    base = named_tensors(model)
    base = {k: v.clone() for k, v in base.items()}
    dirs = random_directions(base, seeds=0)
    dx, dy = (dict(v) for v in dirs.vectors)
    rng = np.random.default_rng(0)
    coords = [tuple(map(float, rng.uniform(-0.5, 0.5, 2))) for _ in range(args.points)]
    n_params = sum(v.numel() for v in model.parameters())
    print(f"{args.model} ({n_params:,} params) on digits train+test ({n} images 1x8x8), "
          f"{args.points} points, device {device}, {torch.get_num_threads()} threads")

    # every method as a function of one grid point
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=128, shuffle=False)
    mb = build(args.model, in_channels=1).eval().to(device)
    mb.load_state_dict(model.state_dict())

    def engine_fn(e: Evaluator):
        def f(a: float, b: float) -> tuple[float, float]:
            m = e.at(base, (dx, dy), (a, b))["all"]
            return m.loss, m.accuracy
        return f

    ev = Evaluator(model, data, device=device)
    auto_bs = ev.probe_batch_size()  # compute_surface's default batch_size="auto"

    def fwd_fn(m: nn.Module, xx: torch.Tensor, bs: int):
        def f(a: float, b: float) -> None:
            with torch.inference_mode():
                for i in range(0, n, bs):
                    m(xx[i:i + bs])
            _sync(device)
        return f

    sizes = [int(s) for s in args.batch_sizes.split(",")]
    probe = {bs: min(_timed(fwd_fn(model, x, bs), coords[0])[0] for _ in range(3))
             for bs in sizes}
    best_bs = min(probe, key=probe.get)
    methods = {
        "a": lambda a, b: baseline_point(mb, base, dx, dy, a, b, loader, device),
        "b": engine_fn(ev),
        "d": fwd_fn(model, x, best_bs),
    }
    variant_names = {}
    for cl in (False, True):
        for bf16 in (False, True):
            name = f"bs={best_bs}" + (", channels_last" if cl else "") + (", bf16" if bf16 else "")
            m2 = build(args.model, in_channels=1).eval().to(device)
            m2.load_state_dict(model.state_dict())
            e2 = Evaluator(m2, data, device=device, batch_size=best_bs,
                           autocast="bf16" if bf16 else None, channels_last=cl)
            key = f"c{len(variant_names)}"
            variant_names[key] = (name, "bf16" if bf16 else "fp32")
            methods[key] = engine_fn(e2)
    times, values = _interleaved(methods, coords)
    t_a, t_b, t_d = (sum(times[k]) for k in ("a", "b", "d"))
    v_a, v_b = values["a"], values["b"]
    rel = max(abs(p[0] - q[0]) / abs(q[0]) for p, q in zip(v_b, v_a, strict=True))
    variants = {variant_names[k][0]: (sum(times[k]), values[k], variant_names[k][1])
                for k in variant_names}
    best_name = min(variants, key=lambda k: variants[k][0])
    t_c, v_c, prec_c = variants[best_name]
    rel_c = max(abs(p[0] - q[0]) / abs(q[0]) for p, q in zip(v_c, v_a, strict=True))

    flops = forward_flops(model, x[:best_bs]) * (n / best_bs)
    peak = matmul_gflops(device)
    pts = args.points
    print(f"\nbatch-size probe (forward over {n} images, best of 3, s): "
          + ", ".join(f"{bs}: {t:.4f}" for bs, t in probe.items()) + f" -> {best_bs}")
    print(f"forward FLOPs per point: {flops / 1e9:.3f} GFLOP; dense fp32 matmul "
          f"(1024^3) in this run: {peak:.1f} GFLOP/s\n")
    header = f"{'method':54s} {'points/s':>9s} {'vs (a)':>7s} {'vs (d)':>7s} {'GFLOP/s':>8s}"
    print(header)
    print("-" * len(header))
    rows = [("(a) baseline: per-point set_weights, DataLoader bs=128", t_a),
            (f"(b) engine defaults (auto bs={auto_bs}, fp32)", t_b),
            (f"(c) engine fastest ({best_name})", t_c),
            (f"(d) roofline: bare forward, bs={best_bs}", t_d)]
    for name, t in rows:
        print(f"{name:54s} {pts / t:9.2f} {t_a / t:6.2f}x {t / t_d:6.2f}x "
              f"{flops * pts / t / 1e9:8.1f}")
    print("\nall (c) variants: " + "; ".join(f"{k}: {pts / v[0]:.2f} pt/s"
                                             for k, v in variants.items()))
    print(f"(b) vs (a) max relative loss difference: {rel:.2e} (goal <= 1e-6)")
    print(f"(c) [{prec_c}] vs (a) max relative loss difference: {rel_c:.2e} "
          f"(goal <= {'1e-2' if prec_c == 'bf16' else '1e-6'})")


if __name__ == "__main__":
    main()
