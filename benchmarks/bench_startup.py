"""Fixed costs of the command line: imports, loading, probes and writing around one point.

Prints

(a) the top offenders of ``python -X importtime -c "import landscape.cli.main"`` (cumulative
    milliseconds of each module's import, the largest first; ``torch`` as one line, its total,
    for scale);
(b) wall times of whole processes, each command alternated with the others ``--repeats``
    times (A B C D A B C D ...), medians with min and max:

    - ``python -c "import torch"`` (the floor every run pays),
    - ``landscape --help``,
    - ``landscape surface CKPT --x=0:0:1 --subset 64 --out ...`` (one point) for a tiny MLP
      and for a ResNet-56, both seeded and untrained, on digits, written by this script into
      a temporary directory;

    and each one's median beyond ``import torch``. A one-point surface is almost all fixed
    cost (loading, the probes, writing), so its figure beyond ``import torch`` is what a grid
    pays once on top of its points. With ``--subset`` the command also evaluates the origin
    on the full data (the subset check, printed and stored); the ResNet-56 run is timed once
    more with ``--no-full-check`` to show that pass (1,797 digits through ResNet-56) apart.

The machine's load average (``os.getloadavg()``) is printed before and after: a loaded machine
slows every figure, so quote them together; the CPU seconds of each process (user + system,
from ``resource.getrusage``) are printed too, since they move less than wall time on a busy
machine. One thread (``OMP_NUM_THREADS=1``) by default.

Usage::

    python benchmarks/bench_startup.py
    python benchmarks/bench_startup.py --repeats 7 --top 25
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def load() -> str:
    """The load average as text (1, 5, 15 minutes)."""
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # not available on this platform
        return "load average unavailable"


def children_cpu() -> float:
    """User + system seconds of the finished child processes so far (0 where unknown)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return 0.0
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def import_offenders(top: int, env: dict[str, str]) -> list[tuple[int, int, str]]:
    """``(cumulative us, self us, module)`` of the slowest imports of ``landscape.cli.main``."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", "import landscape.cli.main"],
                       env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), m.group(3) + m.group(4)))
    rows.sort(reverse=True)
    # torch's own modules are one line (its total): the rest is what the project chose to import
    return [r for r in rows if not r[2].strip().startswith("torch.")][:top]


def make_checkpoints(tmp: Path) -> dict[str, Path]:
    """A tiny MLP and a ResNet-56 on digits, seeded and untrained."""
    import torch

    from landscape import save_checkpoint
    from landscape.data import DataSpec
    from landscape.models import ModelSpec

    data = DataSpec("digits").to_dict()
    out = {}
    for label, spec in (("mlp", ModelSpec("mlp", {})),
                        ("resnet56", ModelSpec("resnet56", {"in_channels": 1,
                                                            "num_classes": 10}))):
        torch.manual_seed(0)
        out[label] = save_checkpoint(tmp / f"{label}.pt", spec.build(), spec, data=data)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="alternated runs of each command")
    ap.add_argument("--top", type=int, default=20, help="import offenders shown")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every run")
    args = ap.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.pop("LANDSCAPE_DEBUG", None)
    print(f"python {sys.version.split()[0]}, {args.threads} thread(s); before: {load()}")

    print("\n(a) python -X importtime -c 'import landscape.cli.main', largest cumulative (ms):")
    for cum, own, name in import_offenders(args.top, env):
        print(f"  {cum / 1e3:8.1f}  (self {own / 1e3:6.1f})  {name}")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpts = make_checkpoints(tmp)
        cli = [sys.executable, "-m", "landscape.cli"]

        def surface(label: str, r: int, *extra: str) -> list[str]:
            return [*cli, "surface", str(ckpts[label]), "--x=0:0:1", "--subset", "64",
                    "--no-progress", *extra, "--out", str(tmp / f"{label}_{r}{len(extra)}.h5")]

        commands = {
            "import torch": lambda r: [sys.executable, "-c", "import torch"],
            "landscape --help": lambda r: [*cli, "--help"],
            "surface, tiny MLP, 1 point": lambda r: surface("mlp", r),
            "surface, ResNet-56, 1 point": lambda r: surface("resnet56", r),
            "  the same, --no-full-check": lambda r: surface("resnet56", r, "--no-full-check"),
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        cpus: dict[str, list[float]] = {k: [] for k in commands}
        for r in range(-1, args.repeats):  # r = -1: one warm-up round (file cache), not counted
            for k, cmd in commands.items():
                c = children_cpu()
                t = time.perf_counter()
                p = subprocess.run(cmd(r), env=env, capture_output=True, text=True)
                dt = time.perf_counter() - t
                if p.returncode:
                    raise SystemExit(f"{k} failed ({p.returncode}):\n{p.stderr}")
                if r >= 0:
                    times[k].append(dt)
                    cpus[k].append(children_cpu() - c)

    for what, table in (("wall", times), ("CPU (user + system)", cpus)):
        if what != "wall" and not any(v for vs in table.values() for v in vs):
            continue  # no CPU accounting here
        floor = statistics.median(table["import torch"])
        print(f"\n(b) {what} time of whole processes, {args.repeats} alternated runs each (s):")
        print(f"  {'command':30s} {'median':>7s} {'min':>7s} {'max':>7s} {'beyond torch':>13s}")
        for k, v in table.items():
            med = statistics.median(v)
            print(f"  {k:30s} {med:7.2f} {min(v):7.2f} {max(v):7.2f} {med - floor:13.2f}")
    print(f"after: {load()}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
