"""Surface engine speed: our engine vs a faithful per-point baseline and the forward roofline.

In one process, on the same model, data and grid points:

(a) baseline   the per-point procedure of Li et al.'s ``plot_surface.py``: set the weights from
               the directions at every point (``p.data = w + dx*a + dy*b``), iterate a
               ``DataLoader`` with batch 128 in fp32, eval mode, ``CrossEntropyLoss`` mean times
               batch size, accuracy by argmax;
(b) engine     ``landscape.evaluation.Evaluator.at`` at ``compute_surface``'s defaults (data
               on the device, batch size from ``Evaluator.choose_batch_size``, inference mode,
               float64 accumulation);
(c) fastest    the engine with the best settings found here (batch size timed,
               channels_last and bf16 autocast where they help); bf16 values are compared
               with fp32 to 1e-2;
(d) roofline   a bare ``model(x)`` forward over the same data at the best batch size, in
               the memory layout the engine chose (no loss, no weight update): the floor.

Prints points/s, speedup over (a), overhead over (d), achieved GFLOP/s (FLOPs counted with
``torch.utils.flop_counter``) against a dense fp32 matmul measured in the same run, and checks
that (b) equals (a) to 1e-6 relative.

``--end-to-end N`` instead times whole runs *including start-up*, each a fresh process, the two
alternated ``--repeats`` times: ``landscape surface CKPT --x=-1:1:N --y=-1:1:N`` at its defaults
against Li et al.'s procedure as one script (this file with ``--li-loop``: import, load the
checkpoint, two filter-normalized random directions with zero bias/BN entries, write them to
HDF5, ``DataLoader`` batch 128 over train and test, set the weights and evaluate every point,
write the losses and accuracies to HDF5 after each point, as ``plot_surface.py`` does). The
checkpoint is a seeded, untrained model of ``--model`` on digits. Threads: ``--threads`` for both
(``OMP_NUM_THREADS``; default 1, which is what a shared machine can time).

Usage::

    python benchmarks/bench_surface.py --model resnet20 --points 6
    python benchmarks/bench_surface.py --model resnet56 --points 4 --device cuda
    python benchmarks/bench_surface.py --model resnet56 --end-to-end 7 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def li_loop(ckpt_path: str, out: str, n: int, device_name: str) -> None:
    """Li et al.'s ``plot_surface.py`` procedure, start to end, for an ``n x n`` grid."""
    import h5py
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    device = torch.device(device_name)
    ck = torch.load(ckpt_path, weights_only=True)
    model = build(ck["model"]["name"], **ck["model"]["kwargs"])
    model.load_state_dict(ck["state_dict"])
    model = model.to(device).eval()
    w = [p.data.clone() for p in model.parameters()]
    dirs = []
    for seed in (0, 1):  # net_plotter.create_random_direction, filter norm, ignore biasbn
        torch.manual_seed(seed)
        d = [torch.randn_like(p) for p in w]
        for di, wi in zip(d, w, strict=True):
            if wi.dim() <= 1:
                di.fill_(0)
            else:
                for f, g in zip(di, wi, strict=True):
                    f.mul_(g.norm() / (f.norm() + 1e-10))
        dirs.append(d)
    with h5py.File(out + ".dir.h5", "w") as f:
        for k, d in enumerate(dirs):
            for i, t in enumerate(d):
                f[f"{k}/{i}"] = t.cpu().numpy()
    images, labels = load_digits(return_X_y=True)
    tr, te = train_test_split(np.arange(len(labels)), test_size=360, random_state=0,
                              stratify=labels)
    loaders = {}
    for split, idx in (("train", tr), ("test", te)):
        xs = torch.from_numpy((images[idx] / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
        loaders[split] = DataLoader(TensorDataset(xs, torch.from_numpy(labels[idx])),
                                    batch_size=128, shuffle=False)
    coords = np.linspace(-1, 1, n)
    with h5py.File(out, "w") as f:
        arrays = {f"{s}_{m}": -np.ones((n, n)) for s in loaders for m in ("loss", "acc")}
        for k, v in arrays.items():
            f[k] = v
        for iy, b in enumerate(coords):
            for ix, a in enumerate(coords):
                for s, loader in loaders.items():
                    loss, acc = _li_point(model, w, dirs, a, b, loader, device)
                    arrays[f"{s}_loss"][iy, ix], arrays[f"{s}_acc"][iy, ix] = loss, acc
                for k, v in arrays.items():
                    f[k][:] = v
                f.flush()


def li_repo_loop(repo: str, ckpt_path: str, out: str, n: int, device_name: str) -> None:
    """Li et al.'s own code, run as their ``plot_surface.py`` runs it, on our checkpoint and
    digits: ``net_plotter.setup_direction`` / ``load_directions`` and ``plot_surface.crunch``
    (``net_plotter.set_weights`` + ``evaluation.eval_loss`` at every point, the arrays written
    after each point), for the train and then the test split, from a checkout of
    github.com/tomgoldstein/loss-landscape at ``repo``. Their modules import ``torchvision``
    and ``mpi4py`` at module level without using them on this path; where those are not
    installed (and ``seaborn``, which their plotting module imports), empty stand-ins are
    registered; no communicator is passed to ``crunch``, as in their run without ``--mpi``."""
    import importlib.util
    import types

    def stand_in(name: str) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__getattr__ = lambda attr: stand_in(f"{name}.{attr}")  # type: ignore[method-assign]
        return m

    for name in ("torchvision", "mpi4py", "seaborn"):
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = stand_in(name)
    sys.path.insert(0, repo)
    import net_plotter  # their code, from the checkout
    import plot_surface
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    device = torch.device(device_name)
    ck = torch.load(ckpt_path, weights_only=True)
    net = build(ck["model"]["name"], **ck["model"]["kwargs"])
    net.load_state_dict(ck["state_dict"])
    net = net.to(device).eval()
    a = argparse.Namespace(
        dir_type="weights", xignore="biasbn", xnorm="filter", yignore="biasbn",
        ynorm="filter", y=True, same_dir=False, idx=0, model_file=ckpt_path, model_file2="",
        model_file3="", dir_file="", surf_file=out, xmin=-1.0, xmax=1.0, xnum=n, ymin=-1.0,
        ymax=1.0, ynum=n, raw_data=False, data_split=1, split_idx=0, ngpu=1,
        loss_name="crossentropy", cuda=device.type == "cuda")
    w = net_plotter.get_weights(net)
    s = copy.deepcopy(net.state_dict())
    torch.manual_seed(0)
    dir_file = out + ".dir.h5"
    net_plotter.setup_direction(a, dir_file, net)
    surf_file = plot_surface.name_surface_file(a, dir_file)
    plot_surface.setup_surface_file(a, surf_file, dir_file)
    d = net_plotter.load_directions(dir_file)
    images, labels = load_digits(return_X_y=True)
    tr, te = train_test_split(np.arange(len(labels)), test_size=360, random_state=0,
                              stratify=labels)
    for split, idx in (("train", tr), ("test", te)):
        xs = torch.from_numpy((images[idx] / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
        loader = DataLoader(TensorDataset(xs, torch.from_numpy(labels[idx])), batch_size=128,
                            shuffle=False)
        plot_surface.crunch(surf_file, net, w, s, d, loader, f"{split}_loss", f"{split}_acc",
                            None, 0, a)
    os.replace(surf_file, out)


def _li_point(model: nn.Module, w: list, dirs: list, a: float, b: float, loader: DataLoader,
              device: torch.device) -> tuple[float, float]:
    """net_plotter.set_weights + evaluation.eval_loss."""
    for p, wi, dx, dy in zip(model.parameters(), w, dirs[0], dirs[1], strict=True):
        p.data = wi + dx * a + dy * b
    crit = nn.CrossEntropyLoss()
    total_loss, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            total_loss += crit(out, y).item() * x.size(0)
            correct += int((out.argmax(1) == y).sum())
            total += x.size(0)
    return total_loss / total, correct / total


def end_to_end(args: argparse.Namespace) -> None:
    """Whole runs in fresh processes, ours and Li et al.'s alternated."""
    from landscape.checkpoints import save_checkpoint
    from landscape.data import DataSpec
    from landscape.models import ModelSpec

    n = args.end_to_end
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or 1)}
    env.pop("LANDSCAPE_DEBUG", None)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        spec = ModelSpec(args.model, {"in_channels": 1, "num_classes": 10})
        ckpt = save_checkpoint(Path(tmp) / "model.pt", spec.build(), spec,
                               data=DataSpec("digits").to_dict())
        runs = {
            "landscape surface": lambda r: [
                sys.executable, "-m", "landscape.cli", "surface", str(ckpt), f"--x=-1:1:{n}",
                f"--y=-1:1:{n}", "--out", str(Path(tmp) / f"ours{r}.h5"), "--no-progress",
                "--device", str(args.device)],
            "Li et al. loop": lambda r: [
                sys.executable, __file__, "--li-loop", str(ckpt), str(Path(tmp) / f"li{r}.h5"),
                "--end-to-end", str(n), "--device", str(args.device)]
                + (["--li-repo", args.li_repo] if args.li_repo else []),
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(args.repeats):
            for k, cmd in runs.items():
                t = time.perf_counter()
                p = subprocess.run(cmd(r), env=env, capture_output=True, text=True)
                times[k].append(time.perf_counter() - t)
                if p.returncode:
                    raise SystemExit(f"{k} failed:\n{p.stderr}")
                if r == 0 and k == "landscape surface":
                    print(p.stdout.strip())
        import h5py

        same = Path(tmp) / "ours0.h5"
        if args.li_repo:  # their random directions, evaluated by us, for the value check
            same = Path(tmp) / "ours_li_dirs.h5"
            subprocess.run(runs["landscape surface"]("_li_dirs")[:-5] + [
                "--out", str(same), "--dir-file", str(Path(tmp) / "li0.h5.dir.h5"),
                "--no-progress", "--device", str(args.device)], env=env, check=True,
                capture_output=True)
        with h5py.File(same) as f, h5py.File(Path(tmp) / "li0.h5") as g:
            ours, li = f["surface/train_loss"][()], g["train_loss"][()]
            used = f["surface"].attrs.get("provenance", "")
    rel = float(np.max(np.abs(ours - li) / np.abs(li)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{args.model} on digits, {n}x{n} grid, {args.threads or 1} thread(s), "
          f"{args.repeats} alternated runs each, wall time including start-up (s):")
    for k, v in times.items():
        print(f"  {k:20s} median {med[k]:7.2f}   runs: " + ", ".join(f"{t:.2f}" for t in v))
    print(f"speed-up of landscape surface: {med['Li et al. loop'] / med['landscape surface']:.2f}x"
          f" (goal >= 1.2x at 7x7); train loss max relative difference {rel:.1e}")
    if "batch_size_used" in str(used):
        import json

        print(f"batch size used: {json.loads(used).get('batch_size_used')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--points", type=int, default=6, help="grid points timed per method")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--batch-sizes", default="256,512,1024,2048")
    ap.add_argument("--end-to-end", type=int, metavar="N",
                    help="time whole N x N runs, start-up included (see the docstring)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each with --end-to-end")
    ap.add_argument("--li-repo", metavar="PATH",
                    help="with --end-to-end: time Li et al.'s own code (a checkout of "
                         "github.com/tomgoldstein/loss-landscape) instead of this file's "
                         "re-implementation of their loop")
    ap.add_argument("--li-loop", nargs=2, metavar=("CKPT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available here; running on the CPU instead")
        args.device = "cpu"
    if args.li_loop and args.li_repo:
        li_repo_loop(args.li_repo, *args.li_loop, args.end_to_end, args.device)
        return
    if args.li_loop:
        li_loop(*args.li_loop, args.end_to_end, args.device)
        return
    if args.end_to_end:
        end_to_end(args)
        return
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

    # the floor in the layout the engine chose (channels_last="auto")
    fmt = torch.channels_last if ev.channels_last else torch.contiguous_format
    bare, xd = copy.deepcopy(model).to(memory_format=fmt), x.contiguous(memory_format=fmt)
    layout = ", channels_last" if ev.channels_last else ""
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    probe = {bs: min(_timed(fwd_fn(bare, xd, bs), coords[0])[0] for _ in range(3))
             for bs in sizes}
    best_bs = min(probe, key=probe.get)
    methods = {
        "a": lambda a, b: baseline_point(mb, base, dx, dy, a, b, loader, device),
        "b": engine_fn(ev),
        "d": fwd_fn(bare, xd, best_bs),
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
            (f"(b) engine defaults (auto bs={auto_bs}, fp32{layout})", t_b),
            (f"(c) engine fastest ({best_name})", t_c),
            (f"(d) roofline: bare forward, bs={best_bs}{layout}", t_d)]
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
