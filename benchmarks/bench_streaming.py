"""Streaming data vs in-memory tensors: same surface values, bounded memory, same speed.

A synthetic CIFAR-shaped data set (``--n`` images of 3x32x32, default 50,000) is generated on
the fly from a seed, item by item (nothing stored), and read through a ``DataLoader``. Each
path runs in its own fresh process so that its peak RSS (``resource.getrusage``) is its own:

stream   ``Evaluator`` on the ``DataLoader`` (data larger than ``--budget``: streamed batch by
         batch at every point, never held whole);
memory   the same images materialised once as a ``TensorData`` (today's fast path) and
         ``Evaluator`` on it.

Both evaluate the same ``--points`` surface points along one seeded filter-normalised
direction. The parent prints, per path, the baseline RSS (after imports and the model, before
any data), the peak RSS minus that baseline, and the evaluation throughput (images/s over the
timed points, the first point excluded as warm-up); it checks that the values agree to 1e-6
relative, that the streamed peak minus baseline is under 25% of the data size and that
streamed throughput is within 10% of in-memory.

Usage::

    python benchmarks/bench_streaming.py                       # 50,000 images, resnet20
    python benchmarks/bench_streaming.py --n 5000 --model mlp  # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class SyntheticImages(Dataset):
    """``n`` CIFAR-shaped images: item ``i`` is drawn from a generator seeded by
    ``(seed, i)``, so the data is identical however it is read, and never stored."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        x = torch.randn(3, 32, 32, generator=g)
        return x, int(torch.randint(0, 10, (), generator=g))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "resnet20":
        from landscape.models.resnet import resnet20

        return resnet20().eval()
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 256), nn.ReLU(), nn.Linear(256, 10))


def child(args: argparse.Namespace) -> dict:
    from landscape._functional import named_tensors
    from landscape.data import TensorData
    from landscape.directions import random_directions
    from landscape.evaluation import Evaluator

    torch.set_num_threads(args.threads)
    model = _model(args.model)
    base = named_tensors(model)
    d = random_directions(base, ndim=1, seeds=0).vectors
    ds = SyntheticImages(args.n, args.seed)
    baseline = _rss_mib()
    t0 = time.perf_counter()
    if args.path == "memory":
        x = torch.empty(args.n, 3, 32, 32)
        y = torch.empty(args.n, dtype=torch.int64)
        for i in range(args.n):
            x[i], y[i] = ds[i]
        data = TensorData(x, y, "synthetic", n_classes=10)
    else:
        data = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)
    ev = Evaluator(model, {"train": data}, batch_size=args.batch_size,
                   data_budget=args.budget)
    setup = time.perf_counter() - t0
    values, times = [], []
    coords = [i / max(args.points - 1, 1) - 0.5 for i in range(args.points)]
    for c in coords:
        t = time.perf_counter()
        m = ev.at(base, d, (c,))["train"]
        times.append(time.perf_counter() - t)
        values.append([m.loss, m.accuracy])
    timed = times[1:] or times
    return {"path": args.path, "baseline_mib": baseline, "peak_mib": _rss_mib(),
            "setup_s": setup, "point_s": times, "values": values,
            "images_per_s": args.n * len(timed) / sum(timed),
            "streamed": bool(ev.datasets["train"].streamed and not ev.datasets["train"].cached)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--model", choices=["resnet20", "mlp"], default="resnet20")
    p.add_argument("--points", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--budget", type=int, default=None, help="Evaluator data_budget (bytes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--path", choices=["stream", "memory"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.path:
        print(json.dumps(child(args)))
        return
    res = {}
    for path in ("stream", "memory"):
        cmd = [sys.executable, __file__, "--path", path] + sys.argv[1:]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        res[path] = json.loads(out.strip().splitlines()[-1])
    data_mib = args.n * (3 * 32 * 32 * 4 + 8) / 2**20
    s, m = res["stream"], res["memory"]
    print(f"data: {args.n} images 3x32x32 float32 = {data_mib:.1f} MiB; model {args.model}; "
          f"batch {args.batch_size}; {args.points} points; {args.threads} threads; "
          f"{args.workers} loader workers")
    for r in (s, m):
        print(f"{r['path']:>6}: baseline {r['baseline_mib']:.0f} MiB, peak - baseline "
              f"{r['peak_mib'] - r['baseline_mib']:.1f} MiB, setup {r['setup_s']:.1f} s, "
              f"points {', '.join(f'{t:.1f}' for t in r['point_s'])} s, "
              f"{r['images_per_s']:.0f} images/s")
    rel = max(abs(a[0] - b[0]) / abs(b[0]) for a, b in zip(s["values"], m["values"],
                                                            strict=True))
    acc_equal = all(a[1] == b[1] for a, b in zip(s["values"], m["values"], strict=True))
    extra = (s["peak_mib"] - s["baseline_mib"]) / data_mib
    speed = s["images_per_s"] / m["images_per_s"]
    print(f"values: max relative loss difference {rel:.2e} (accuracy equal: {acc_equal})")
    print(f"streamed peak RSS - baseline = {100 * extra:.1f}% of the data size "
          f"(in-memory: {100 * (m['peak_mib'] - m['baseline_mib']) / data_mib:.1f}%)")
    print(f"streamed throughput = {100 * speed:.1f}% of in-memory")
    ok = s["streamed"] and rel <= 1e-6 and acc_equal and extra < 0.25 and speed >= 0.9
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
