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
streamed throughput is within 10% of in-memory. The streamed child also times one pass that
only reads the loader (no model): the floor of a streamed pass, whatever the library does.

``--dataset tensor`` streams a ``TensorDataset`` of the same size instead (the images held as
tensors, so its RSS check does not apply): the library slices it instead of indexing and
collating item by item. ``--prefetch K`` sets :data:`landscape.data.stream.STREAM_PREFETCH`
(batches read ahead by a background thread; 0 reads in the evaluating thread, as before it
existed).

``--ab ROUNDS`` instead times, in one process and interleaved (fair on a shared machine),
``ROUNDS`` passes each of: in memory, streamed without read-ahead, streamed with it, and
reading the loader alone; it prints the median pass times and ratios (no RSS, no pass/fail).

Usage::

    python benchmarks/bench_streaming.py                       # 50,000 images, resnet20
    python benchmarks/bench_streaming.py --n 5000 --model mlp  # quick
    python benchmarks/bench_streaming.py --model mlp --prefetch 0   # without read-ahead
    python benchmarks/bench_streaming.py --model mlp --n 20000 --ab 5  # read-ahead on/off
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
from torch.utils.data import DataLoader, Dataset, TensorDataset


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


def _tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def child(args: argparse.Namespace) -> dict:
    import landscape.data.stream
    from landscape._functional import named_tensors
    from landscape.data import TensorData
    from landscape.directions import random_directions
    from landscape.evaluation import Evaluator

    if args.prefetch is not None:
        landscape.data.stream.STREAM_PREFETCH = args.prefetch
    torch.set_num_threads(args.threads)
    model = _model(args.model)
    base = named_tensors(model)
    d = random_directions(base, ndim=1, seeds=0).vectors
    ds = SyntheticImages(args.n, args.seed)
    baseline = _rss_mib()
    t0 = time.perf_counter()
    if args.dataset == "tensor":
        x, y = _tensors(args.n, args.seed)
        data = TensorData(x, y, "synthetic", n_classes=10) if args.path == "memory" else \
            DataLoader(TensorDataset(x, y), batch_size=args.batch_size,
                       num_workers=args.workers)
    elif args.path == "memory":
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
    peak = _rss_mib()
    read_s = None
    if args.path == "stream":  # the floor: one pass reading the loader, no model
        t = time.perf_counter()
        for _ in ev.datasets["train"].batches(args.batch_size):
            pass
        read_s = time.perf_counter() - t
    return {"path": args.path, "baseline_mib": baseline, "peak_mib": peak,
            "setup_s": setup, "point_s": times, "values": values, "read_s": read_s,
            "images_per_s": args.n * len(timed) / sum(timed),
            "streamed": bool(ev.datasets["train"].streamed and not ev.datasets["train"].cached)}


def ab(args: argparse.Namespace) -> None:
    """Interleaved pass times in one process: memory, stream (read-ahead off / on), read."""
    import statistics

    import landscape.data.stream
    from landscape._functional import named_tensors
    from landscape.data import TensorData
    from landscape.directions import random_directions
    from landscape.evaluation import Evaluator

    torch.set_num_threads(args.threads)
    on = landscape.data.stream.STREAM_PREFETCH if args.prefetch is None else args.prefetch
    model = _model(args.model)
    base = named_tensors(model)
    d = random_directions(base, ndim=1, seeds=0).vectors
    ds = SyntheticImages(args.n, args.seed)
    if args.dataset == "tensor":
        x, y = _tensors(args.n, args.seed)
        loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size,
                            num_workers=args.workers)
    else:
        x = torch.empty(args.n, 3, 32, 32)
        y = torch.empty(args.n, dtype=torch.int64)
        for i in range(args.n):
            x[i], y[i] = ds[i]
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)
    mem = Evaluator(model, {"t": TensorData(x, y, "m", n_classes=10)},
                    batch_size=args.batch_size)
    st = Evaluator(model, {"t": loader}, batch_size=args.batch_size, data_budget=0)
    times: dict[str, list[float]] = {"memory": [], "stream, read-ahead 0": [],
                                     f"stream, read-ahead {on}": [], "read only": []}
    for r in range(args.ab + 1):  # round 0 warms up
        for name in times:
            t = time.perf_counter()
            if name == "memory":
                v = mem.at(base, d, (0.1,))["t"].loss
            elif name == "read only":
                landscape.data.stream.STREAM_PREFETCH = on
                for _ in st.datasets["t"].batches(args.batch_size):
                    pass
            else:
                landscape.data.stream.STREAM_PREFETCH = 0 if name.endswith(" 0") else on
                assert st.at(base, d, (0.1,))["t"].loss == v  # identical values
            if r:
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.n} images ({args.dataset}), model {args.model}, batch {args.batch_size}, "
          f"{args.threads} threads, {args.workers} workers; median of {args.ab} interleaved "
          f"passes:")
    for k, v in med.items():
        print(f"  {k:>22}: {v:6.2f} s per pass ({args.n / v:8.0f} images/s, "
              f"{100 * med['memory'] / v:5.1f}% of in-memory throughput)")


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
    p.add_argument("--dataset", choices=["synthetic", "tensor"], default="synthetic",
                   help="items generated on the fly, or a TensorDataset of held tensors")
    p.add_argument("--prefetch", type=int, default=None,
                   help="landscape.data.stream.STREAM_PREFETCH (default: the library's)")
    p.add_argument("--ab", type=int, default=0, metavar="ROUNDS",
                   help="interleaved pass times in one process instead (see above)")
    p.add_argument("--path", choices=["stream", "memory"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ab:
        ab(args)
        return
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
    print(f"data: {args.n} images 3x32x32 float32 = {data_mib:.1f} MiB ({args.dataset}); model "
          f"{args.model}; batch {args.batch_size}; {args.points} points; {args.threads} "
          f"threads; {args.workers} loader workers; prefetch "
          f"{'default' if args.prefetch is None else args.prefetch}")
    for r in (s, m):
        print(f"{r['path']:>6}: baseline {r['baseline_mib']:.0f} MiB, peak - baseline "
              f"{r['peak_mib'] - r['baseline_mib']:.1f} MiB, setup {r['setup_s']:.1f} s, "
              f"points {', '.join(f'{t:.1f}' for t in r['point_s'])} s, "
              f"{r['images_per_s']:.0f} images/s")
    print(f"reading the streamed loader alone: {s['read_s']:.1f} s per pass "
          f"({args.n / s['read_s']:.0f} images/s: the ceiling of the streamed throughput)")
    rel = max(abs(a[0] - b[0]) / abs(b[0]) for a, b in zip(s["values"], m["values"],
                                                            strict=True))
    acc_equal = all(a[1] == b[1] for a, b in zip(s["values"], m["values"], strict=True))
    extra = (s["peak_mib"] - s["baseline_mib"]) / data_mib
    speed = s["images_per_s"] / m["images_per_s"]
    print(f"values: max relative loss difference {rel:.2e} (accuracy equal: {acc_equal})")
    print(f"streamed peak RSS - baseline = {100 * extra:.1f}% of the data size "
          f"(in-memory: {100 * (m['peak_mib'] - m['baseline_mib']) / data_mib:.1f}%)")
    print(f"streamed throughput = {100 * speed:.1f}% of in-memory")
    memory_ok = extra < 0.25 or args.dataset == "tensor"  # a TensorDataset holds the data
    ok = s["streamed"] and rel <= 1e-6 and acc_equal and memory_ok and speed >= 0.9
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
