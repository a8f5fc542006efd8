"""CPU contention: a fixed workload quiet and beside N busy processes, against the fair share.

A machine shared with other jobs (a laptop, a workstation, a cluster node) gives this process
only part of its cores. If the work degraded in proportion to that part it would be fine; with
OpenMP worker threads that spin at barriers while their partner thread is descheduled it
degrades far worse (measured before the fix: ``landscape demo --quick`` 12x slower beside four
busy-looping processes on 2 cores, where the fair share predicts 3x).

Each measurement is a fresh process running the same fixed workload -- a short training
(ResNet-20 at half width on the digits, one epoch), a 5x5 filter-normalized surface and a top-2
Lanczos solve with the Hessian's trace (12 Hutch++ products) -- under one thread policy
(``before``: torch's defaults everywhere, training included, as 7e54c82 ran; ``auto``: the
CLI's default now, :func:`landscape.threads.configure_threads` for the surface and the Hessian
and training's own fixed count, 1; ``passive``: ``before`` with ``OMP_WAIT_POLICY=PASSIVE``; an
int: that many threads everywhere), first on a quiet machine and then beside ``--busy``
processes that loop forever in pure Python (one core's worth of load each). ``auto`` measures
the free CPUs in the child process, so in the busy phase it sees the busy processes.

Prints, per policy and phase: the time quiet and busy, the slowdown busy/quiet, and the
fair-share prediction for the slowdown, ``(busy + threads) / cores`` where ``threads`` is what the
policy used (each runnable thread gets an equal slice of the cores; capped below at 1). A ratio
of slowdown to fair share near 1 means the work degrades only as much as the CPU it lost.

Usage::

    python benchmarks/bench_contention.py                  # before vs auto, 4 busy, 2 repeats
    python benchmarks/bench_contention.py --busy 4 --policies before auto passive 1 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

BUSY_LOOP = "while True:\n    pass\n"


def _workload(policy: str) -> dict[str, float]:
    """Run the fixed workload in this process; return seconds per phase."""
    if policy == "passive":  # read by OpenMP when torch loads it: before the import
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch

    from landscape.threads import configure_threads

    if policy in ("before", "passive"):  # torch's defaults, as 7e54c82 ran everything
        eval_threads = train_threads = torch.get_num_threads()
    elif policy == "auto":  # what the CLI does now: auto for evaluations, training's own 1
        eval_threads, train_threads = configure_threads("auto").threads, 1
    else:
        eval_threads = train_threads = configure_threads(int(policy)).threads

    from landscape.checkpoints import load_checkpoint
    from landscape.data import DataSpec, load_data
    from landscape.directions import random_directions
    from landscape.hessian import compute_curvature
    from landscape.models import ModelSpec
    from landscape.surface import compute_surface
    from landscape.training import TrainConfig, train

    times: dict[str, float] = {}
    spec = ModelSpec("resnet20", {"in_channels": 1, "width": 0.5})
    data = DataSpec("digits")
    config = TrainConfig(epochs=1, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4,
                         schedule="cosine", seed=0, save_every=1, threads=train_threads)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run = train(spec, data, config, os.path.join(tmp, "run"), progress=False)
        times["train"] = time.perf_counter() - t
        model = load_checkpoint(run.checkpoints[-1]).model.eval()
        train_data = load_data(DataSpec("digits", subset=256))
        dirs = random_directions(model, seeds=0)
        t = time.perf_counter()
        compute_surface(model, dirs, {"train": train_data}, x="-1:1:5", y="-1:1:5",
                        progress=False)
        times["surface"] = time.perf_counter() - t
        t = time.perf_counter()
        compute_curvature(model, train_data, top_k=2, trace=True, trace_samples=12,
                          batch_size=256)
        times["hessian"] = time.perf_counter() - t
    times["total"] = sum(times.values())
    times["threads"] = float(eval_threads)
    times["train_threads"] = float(train_threads)
    return times


def _measure(policy: str, busy: int, timeout: float) -> dict[str, float]:
    """One fresh process running the workload; a run past ``timeout`` seconds is stopped and
    reported as taking at least that long (every phase NaN, ``total`` the timeout)."""
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0)
        try:
            out = subprocess.run([sys.executable, __file__, "--child", policy], check=True,
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"train": math.nan, "surface": math.nan, "hessian": math.nan,
                    "total": timeout, "timed_out": 1.0}
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {policy:>8} {'busy' if busy else 'quiet'}: {res['total']:.1f} s "
          f"(train {res['train']:.1f}, surface {res['surface']:.1f}, hessian "
          f"{res['hessian']:.1f}; {int(res['threads'])} evaluation threads)", flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, default=4, help="busy-looping processes (default 4)")
    p.add_argument("--policies", nargs="+", default=["before", "auto"],
                   help="thread policies to compare: before (torch's defaults everywhere, as "
                        "7e54c82 ran), auto (the CLI's default now), passive (torch's defaults "
                        "with OMP_WAIT_POLICY=PASSIVE), or a thread count N")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600.0,
                   help="stop a measurement after this many seconds and report it as at least "
                        "that long (default 600)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_workload(args.child)))
        return
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    print(f"{cores} cores usable, load average {load:.2f} before the run; "
          f"{args.busy} busy processes in the busy phase; median of {args.repeats}")
    rows = []
    for policy in args.policies:
        quiet, busy = [], []
        for _ in range(args.repeats):  # alternate quiet and busy so drift hits both
            quiet.append(_measure(policy, 0, args.timeout))
            busy.append(_measure(policy, args.busy, args.timeout))
        # the fair share of a process that keeps its quiet thread count: (busy + T) / cores
        threads = int(quiet[0]["threads"])
        stopped = any(r.get("timed_out") for r in busy)
        fair = max(1.0, (args.busy + threads) / cores)
        for phase in ("train", "surface", "hessian", "total"):
            q = statistics.median(r[phase] for r in quiet)
            b = statistics.median(r[phase] for r in busy)
            shown = "?" if math.isnan(busy[0].get("threads", math.nan)) else \
                int(busy[0]["threads"])
            rows.append((policy + ("*" if stopped and phase == "total" else ""),
                         f"{threads}/{shown}", phase, q, b, b / q, fair))
    print("thr: evaluation threads quiet/busy (training: 1 under auto, else the same)")
    print(f"{'policy':>8} {'thr':>4} {'phase':>8} {'quiet s':>8} {'busy s':>8} "
          f"{'slowdown':>8} {'fair':>5} {'ratio':>5}")
    for policy, threads, phase, q, b, s, fair in rows:
        print(f"{policy:>8} {threads:>4} {phase:>8} {q:8.2f} {b:8.2f} {s:7.2f}x {fair:4.1f}x "
              f"{s / fair:5.2f}")
    if any(r[0].endswith("*") for r in rows):
        print("*: a busy run was stopped at --timeout; its slowdown is at least the one shown")


if __name__ == "__main__":
    main()
