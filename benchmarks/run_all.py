"""Run every device benchmark once, in sizes that fit about 10 minutes on one GPU, and print
one table.

Each benchmark runs as its own process (a crash or a timeout of one does not stop the others)
with ``--device`` passed through; its whole output is written to ``OUT/<name>.txt`` and the
table shows its status, wall time and headline lines (the lines that hold its ratios). On a
lent GPU machine::

    python benchmarks/run_all.py --device cuda --out bench-gpu

and copy the table into ``docs/benchmarks.md`` with the device's name. On the CPU the same
command (``--device cpu``, the default) takes far longer than 10 minutes at these sizes; use
``--quick`` to check that every script runs (smallest sizes, a minute or two).

What runs (sizes in brackets are ``--quick``):

``surface``        ``bench_surface.py``: Li et al.'s per-point loop vs our engine vs the
                   forward roofline, fp32, bf16 autocast, channels_last; ResNet-56 on digits,
                   8 [2] points.
``end_to_end``     ``bench_surface.py --end-to-end``: whole ``landscape surface`` runs
                   including start-up vs Li et al.'s loop as one script, 7x7 [3x3], 3 [1]
                   repetitions.
``multipoint``     ``bench_multipoint.py``: several grid points in one vmapped forward.
``hvp``            ``bench_hvp.py``: one HVP, ours vs PyHessian's procedure, ResNet-20 and
                   the digits MLP.
``solver``         ``bench_solver_overhead.py``: Lanczos, Hutch++ and SLQ wall time over
                   their bare HVPs.
``topk``           ``bench_hessian.py``: Lanczos vs PyHessian-style power iteration and
                   Hutch++ vs Hutchinson against the dense Hessian of a digits MLP.
``memory``         ``bench_lanczos_memory.py``: peak memory of top-5 Lanczos (host RSS; device
                   memory on CUDA), VGG-16 [ResNet-20], 21 [4] HVPs, float64 and float32
                   solver vectors [float64].

Nothing is asserted; the exit status is 1 when a benchmark failed or timed out.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (script, full-size arguments, --quick arguments, seconds allowed, headline regex)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], int, str]] = {
    "surface": ("bench_surface.py", ["--model", "resnet56", "--points", "8"],
                ["--model", "resnet20", "--points", "2", "--batch-sizes", "256"], 150,
                r"^\(|difference"),
    "end_to_end": ("bench_surface.py", ["--model", "resnet56", "--end-to-end", "7",
                                        "--repeats", "3"],
                   ["--model", "resnet20", "--end-to-end", "3", "--repeats", "1"], 150,
                   r"median|speed-up"),
    "multipoint": ("bench_multipoint.py", ["--model", "resnet56", "--points", "2,4,8"],
                   ["--model", "resnet20", "--points", "2", "--repeats", "1"], 90,
                   r"s/point|difference"),
    "hvp": ("bench_hvp.py", ["--models", "resnet20,mlp", "--samples", "256,1797"],
            ["--models", "mlp", "--samples", "256", "--repeats", "2"], 90,
            r"^ours|PyHessian"),
    "solver": ("bench_solver_overhead.py", ["--model", "resnet20", "--samples", "512",
                                            "--repeats", "3"],
               ["--model", "mlp", "--samples", "256", "--repeats", "1"], 90,
               r"Lanczos|Hutch|SLQ"),
    "topk": ("bench_hessian.py", ["--seeds", "3", "--trace-seeds", "10"],
             ["--seeds", "1", "--trace-seeds", "2", "--train-steps", "50"], 120,
             r"ratio|reach|Hutch"),
    "memory": ("bench_lanczos_memory.py", ["--max-hvp", "21"],
               ["--model", "resnet20", "--max-hvp", "4", "--solver-dtype", "float64"], 150,
               r"float64|float32"),
}


def run_one(name: str, device: str, quick: bool, out: Path, scale: float) -> dict:
    script, full, small, seconds, pattern = BENCHMARKS[name]
    argv = [sys.executable, str(HERE / script), *(small if quick else full), "--device", device]
    if name == "topk" and device == "cpu":
        argv = argv[:-2]  # its default device
    limit = max(30, int(seconds * scale))
    t = time.perf_counter()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
        status = "ok" if r.returncode == 0 else f"exit {r.returncode}"
        text = r.stdout + ("\n--- stderr ---\n" + r.stderr if r.stderr.strip() else "")
    except subprocess.TimeoutExpired as exc:
        status = f"timeout ({limit} s)"
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    wall = time.perf_counter() - t
    (out / f"{name}.txt").write_text(" ".join(argv) + "\n\n" + text)
    rx = re.compile(pattern, re.IGNORECASE)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and rx.search(ln.strip())
             and "stderr" not in ln]
    if status != "ok":
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:]
        lines = tail + lines
    return {"name": name, "status": status, "seconds": wall, "lines": lines[:6]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    ap.add_argument("--only", default=",".join(BENCHMARKS),
                    help=f"comma list of {', '.join(BENCHMARKS)} (default: all)")
    ap.add_argument("--quick", action="store_true", help="smallest sizes: check that all run")
    ap.add_argument("--out", default="bench-results", help="directory of the full outputs")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiply every benchmark's time limit (default 1)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}; choose from "
              f"{', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for name in names:
        print(f"[{time.perf_counter() - t0:6.0f} s] {name} ...", flush=True)
        rows.append(run_one(name, args.device, args.quick, out, args.time_scale))
    print(f"\nBenchmarks on {args.device}{' (quick sizes)' if args.quick else ''}: "
          f"{time.perf_counter() - t0:.0f} s in all; full outputs in {out}/\n")
    print("| benchmark | status | seconds | headline |")
    print("|---|---|---:|---|")
    for r in rows:
        head = "<br>".join(r["lines"]).replace("|", "/") or "(see the output file)"
        print(f"| {r['name']} | {r['status']} | {r['seconds']:.0f} | {head} |")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
