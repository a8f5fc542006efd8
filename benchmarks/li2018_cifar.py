"""Li et al.'s CIFAR-10 protocol at paper scale: ResNet-20/56/110 with and without shortcuts.

One command trains, measures and compares every network of Li, Xu, Taylor, Studer and
Goldstein, "Visualizing the Loss Landscape of Neural Nets" (NeurIPS 2018), section 5 (CIFAR-10),
from a local copy of the python version of CIFAR-10 (``data_batch_1`` ... ``data_batch_5``,
``test_batch``, in ``--cifar-root`` or its ``cifar-10-batches-py`` subdirectory; nothing is
downloaded)::

    python benchmarks/li2018_cifar.py --cifar-root ~/data/cifar10 --out li2018 --device cuda
    python benchmarks/li2018_cifar.py --cifar-root ~/data/cifar10 --out li2018 --dry-run
    python benchmarks/li2018_cifar.py --cifar-root ~/data/cifar10 --out li2018 --quick-check

For every depth (20, 56, 110), arm (``residual``: the registry's ``resnetD``; ``plain``: the same
with ``shortcut=False``) and seed (``0 .. S-1``, 3 by default) it

1. trains the network with :func:`landscape.training.train` (checkpoints every
   ``--save-every`` epochs; a killed run resumes after its last checkpoint);
2. at the final checkpoint computes the filter-normalized 2-D surface of the training loss on
   ``--grid`` (51 x 51 on ``[-1, 1]^2``, Li et al.'s figures; directions seeded, biases and
   BatchNorm held fixed, as their ``--xignore biasbn --xnorm filter``), on the whole training
   split by default (``--eval-subset``);
3. computes the Hessian curvature there (:func:`landscape.hessian.compute_curvature`: λmax,
   λmin, ``|λmin/λmax|``, Hutch++ trace) and the stationarity test
   (:func:`landscape.convergence.stationarity`), on ``--hessian-subset`` training images;
4. computes the ``|λmin/λmax|`` map (:func:`landscape.hessian.compute_ratio_map`) on the coarser
   ``--ratio-grid`` (13 x 13 by default) along the same directions, on the same images;

then, per depth, compares residual with plain at the seed level
(:func:`landscape.replicates.compare_arms`: mean ± sd over seeds, Student-t intervals, Welch's
interval of the difference, an exact permutation test; rows that assume a minimum are not
ranked for an arm that is not at one) and writes ``summary.md`` with the test errors beside
Li et al.'s published ones. Every step writes its file as it goes and is skipped (or resumed)
when it is already there, so re-running the same command continues where it stopped.

The recipe, as Li et al. state it and as implemented here
------------------------------------------------------------
Li et al. (paper and their ``cifar10/main.py``): 300 epochs of SGD with Nesterov momentum 0.9,
batch 128, weight decay 5e-4, learning rate 0.1 divided by 10 after epochs 150, 225 and 275;
the deep networks without shortcuts were trained at lr 0.01. Their test errors (%), with /
without shortcuts: ResNet-20 7.37 / 8.18, ResNet-56 5.89 / 13.31, ResNet-110 5.79 / 16.44.

Implemented: the same optimizer (``TrainConfig(nesterov=True, momentum=0.9, batch_size=128,
weight_decay=5e-4)``), ``--epochs 300``, lr 0.1, and lr ``--plain-deep-lr`` (0.01) for the plain
networks of depth 56 and more. The differences, none hidden:

* **Schedule.** ``TrainConfig``'s ``"step"`` schedule (:func:`landscape.training.lr_at_epoch`)
  divides the lr by 10 from 50 % and again from 75 % of the epochs: at 300 epochs, lr 0.1 for
  epochs 1-150, 0.01 for 151-225 and 0.001 for 226-300, exactly Li et al.'s first two drops
  (their code multiplies after finishing epoch 150 and 225). Their third drop (after epoch
  275, to 1e-4 for the last 25 epochs) does not exist in the library: the last 25 epochs run at
  1e-3. (``--epochs`` other than 300 scale the drops to 50 % / 75 %.)
* **No data augmentation.** Li et al. train on random 32x32 crops of the 4-pixel zero-padded
  images with random horizontal flips; :func:`landscape.training.train` trains on the images
  as they are (the trainer has no augmentation hook). Expect higher test errors than
  theirs (several points), and minima of a sharper, more over-fitted training loss.
* **Initialization.** The registry's ResNets use Kaiming-normal ``fan_out`` convolutions and
  PyTorch's default linear head; Li et al. use Kaiming-normal ``fan_in`` and a head of std 1e-3.
* **Normalization.** Per-channel mean/std of :mod:`landscape.data` (0.4914, 0.4822, 0.4465 /
  0.2470, 0.2435, 0.2616); Li et al. use std (0.247, 0.244, 0.262) and the same means, i.e. the
  same within rounding.
* **Plain-net lr.** Li et al.'s text and ``docs`` use lr 0.01 for the deep plain nets; the
  plain ResNet-56 checkpoint their repository ships is in a folder named ``lr=0.1``. This
  script follows the text (``--plain-deep-lr 0.1`` gives the other reading).

Output layout (``--out``)::

    plan.json                     the configuration (a resumed run must match it)
    runs/d{D}/{arm}/seed_{s}/     checkpoints and run.json of each training run
    nets/d{D}_{arm}_s{s}.h5       /surface (--grid) and /curvature at the final checkpoint
    nets/d{D}_{arm}_s{s}_ratio.h5 /surface (--ratio-grid, same directions) and /ratio_map
    nets/d{D}_{arm}_s{s}.json     stationarity test, final train/test numbers, lr used
    compare/d{D}/arms.md, .json   seed-level comparison residual vs plain at depth D
    summary.md, summary.json      test errors beside Li et al.'s, the verdicts, the recipe

Cost
----
``--dry-run`` prints the plan and an estimate of GPU hours from the per-unit costs in
:data:`COSTS`: *assumed* for one H100-class GPU in float32 (this script has not been run at
paper scale; the numbers are order-of-magnitude guesses from the networks' FLOPs and the
trainer's Python loop), stated in the output. ``--quick-check`` runs every network for one
epoch on the whole training split with tiny grids into ``OUT/quick_check`` (a smoke test of
the pipeline on your files and GPU), measures the seconds of that epoch (the median over the
networks of a depth, so that the first run's warm-up does not count twice), and prints the
estimate rescaled by the measured/assumed ratio (every cost of a depth scaled alike).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from landscape import storage
from landscape._atomic import write_bytes
from landscape.checkpoints import load_checkpoint
from landscape.convergence import stationarity
from landscape.data import DataSpec, load_data
from landscape.directions import random_directions
from landscape.errors import LandscapeError
from landscape.hessian import compute_ratio_map
from landscape.hessian.results import CurvatureResult, compute_curvature
from landscape.models import ModelSpec
from landscape.recipes import checkpoint_recipe
from landscape.replicates import ArmComparison, compare_arms, seed_summary
from landscape.surface import compute_surface, parse_axis
from landscape.training import TrainConfig, lr_at_epoch, train

ARMS = ("residual", "plain")
#: Li et al. 2018, table 1 (CIFAR-10 test error, %): depth -> (with, without shortcuts).
PAPER_TEST_ERROR = {20: (7.37, 8.18), 56: (5.89, 13.31), 110: (5.79, 16.44)}
#: Assumed per-unit GPU costs in seconds (one H100-class GPU, float32; not measured):
#: ``epoch``: one training epoch on the 50,000 images at batch 128 plus the trainer's
#: evaluation of both splits; ``point``: one surface point (a forward pass over 50,000 images
#: in eval mode); ``hvp``: one Hessian-vector product over 10,000 images.
COSTS = {
    20: {"epoch": 6.0, "point": 0.3, "hvp": 0.25},
    56: {"epoch": 14.0, "point": 0.7, "hvp": 0.6},
    110: {"epoch": 28.0, "point": 1.4, "hvp": 1.2},
}
#: Assumed Hessian-vector products per ratio-map point (top and bottom Lanczos runs, warm
#: started) and for the curvature of one network (λmax, λmin, trace, stationarity).
HVP_PER_RATIO_POINT = 120
HVP_PER_CURVATURE = 500
CIFAR_TRAIN = 50_000


# ------------------------------------------------------------------ configuration
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="li2018_cifar.py",
        description="Li et al. (2018)'s CIFAR-10 protocol: ResNet-20/56/110 with and without "
                    "shortcuts, several seeds, 51x51 surfaces, curvature and ratio maps, "
                    "seed-level comparison.")
    p.add_argument("--cifar-root", required=True,
                   help="folder with the python CIFAR-10 batches (or its cifar-10-batches-py)")
    p.add_argument("--out", required=True, help="output folder (re-run to resume)")
    p.add_argument("--device", default=None,
                   help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56, 110])
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (0 .. S-1)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--grid", default="-1:1:51", help="surface grid, both axes")
    p.add_argument("--ratio-grid", default="-1:1:13", help="|λmin/λmax| map grid, both axes")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--plain-deep-lr", type=float, default=0.01,
                   help="lr of the plain nets of depth >= 56 (Li et al.: 0.01)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--save-every", type=int, default=10,
                   help="checkpoint every N epochs (Li et al.: 10); bounds what a kill costs")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of training")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on this many images of each split (default: all)")
    p.add_argument("--eval-subset", type=int, default=None,
                   help="training images of the surfaces (default: all, as Li et al.)")
    p.add_argument("--hessian-subset", type=int, default=10_000,
                   help="training images of the curvature and ratio maps")
    p.add_argument("--width", type=float, default=1.0,
                   help="channel multiplier (1: the paper's networks; smaller for tests)")
    p.add_argument("--trace-samples", type=int, default=30)
    p.add_argument("--tol", type=float, default=1e-3, help="eigenvalue tolerance")
    p.add_argument("--max-hvp", type=int, default=None,
                   help="HVP budget per eigenvalue run (default: the solvers' own)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan, files and a GPU-hour estimate; compute nothing")
    p.add_argument("--quick-check", action="store_true",
                   help="1 epoch, 2 seeds, 5x5 and 3x3 grids into OUT/quick_check; "
                        "measures the epoch cost and rescales the estimate")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything one invocation trains and measures (what a resumed run must match)."""

    cifar_root: str
    depths: tuple[int, ...]
    seeds: int
    epochs: int
    grid: str
    ratio_grid: str
    lr: float
    plain_deep_lr: float
    batch_size: int
    weight_decay: float
    save_every: int
    threads: int
    train_subset: int | None
    eval_subset: int | None
    hessian_subset: int | None
    width: float
    trace_samples: int
    tol: float
    max_hvp: int | None

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> Plan:
        """The plan of parsed arguments (``--quick-check`` shrinks seeds, epochs and grids)."""
        seeds, epochs, grid, ratio_grid = a.seeds, a.epochs, a.grid, a.ratio_grid
        eval_subset, hessian_subset = a.eval_subset, a.hessian_subset
        if a.quick_check:
            seeds, epochs, grid, ratio_grid = 2, 1, "-1:1:5", "-1:1:3"
            eval_subset = min(eval_subset or 1000, 1000)
            hessian_subset = min(hessian_subset or 500, 500)
        if seeds < 1 or epochs < 1 or not a.depths:
            raise LandscapeError("--seeds and --epochs must be at least 1, --depths non-empty")
        for d in a.depths:
            if d not in PAPER_TEST_ERROR:
                raise LandscapeError(f"--depths takes {sorted(PAPER_TEST_ERROR)}; got {d}")
        for g in (grid, ratio_grid):
            parse_axis(g, "grid")
        return cls(os.path.abspath(os.path.expanduser(a.cifar_root)),
                   tuple(dict.fromkeys(a.depths)), seeds, epochs, grid, ratio_grid, a.lr,
                   a.plain_deep_lr, a.batch_size, a.weight_decay, min(a.save_every, epochs),
                   a.threads, a.train_subset, eval_subset, hessian_subset, a.width,
                   a.trace_samples, a.tol, a.max_hvp)

    def lr_of(self, depth: int, arm: str) -> float:
        """Li et al.'s lr: 0.1, and 0.01 for the plain nets of depth 56 and more."""
        return self.plain_deep_lr if arm == "plain" and depth >= 56 else self.lr

    def spec(self, depth: int, arm: str) -> ModelSpec:
        """The registry's CIFAR ResNet of ``depth``, without shortcuts for ``"plain"``."""
        kw: dict[str, Any] = {"shortcut": arm == "residual"}
        if self.width != 1:
            kw["width"] = self.width
        return ModelSpec(f"resnet{depth}", kw)

    def config(self, depth: int, arm: str) -> TrainConfig:
        """The training recipe of one arm (its seed set per run)."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size,
                           lr=self.lr_of(depth, arm), momentum=0.9, nesterov=True,
                           weight_decay=self.weight_decay, schedule="step", seed=0,
                           save_every=self.save_every, threads=self.threads)

    def data(self, subset: int | None) -> DataSpec:
        """CIFAR-10 from the local folder, ``subset`` images of each split."""
        return DataSpec("cifar10", root=self.cifar_root, subset=subset)

    def networks(self) -> list[tuple[int, str, int]]:
        """``(depth, arm, seed)`` of every run, in the order they are done."""
        return [(d, a, s) for d in self.depths for a in ARMS for s in range(self.seeds)]


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _n(subset: int | None) -> int:
    return CIFAR_TRAIN if subset is None else min(subset, CIFAR_TRAIN)


def _points(grid: str) -> int:
    return int(parse_axis(grid, "grid").num) ** 2


def estimate(plan: Plan, scale: dict[int, float] | None = None) -> dict[str, Any]:
    """GPU hours of the plan from :data:`COSTS` (times ``scale[depth]`` where given).

    Returns
    -------
    dict
        ``per_network`` (depth -> seconds of training, surface, ratio map, curvature) and
        ``total_hours``.
    """
    per: dict[int, dict[str, float]] = {}
    total = 0.0
    for d in plan.depths:
        c, k = COSTS[d], (scale or {}).get(d, 1.0)
        frac_train = _n(plan.train_subset) / CIFAR_TRAIN
        frac_eval = _n(plan.eval_subset) / CIFAR_TRAIN
        frac_hess = _n(plan.hessian_subset) / 10_000
        row = {
            "train": k * plan.epochs * c["epoch"] * frac_train,
            "surface": k * _points(plan.grid) * c["point"] * frac_eval,
            "ratio_map": k * _points(plan.ratio_grid) * (HVP_PER_RATIO_POINT * c["hvp"] * frac_hess
                                                        + c["point"] * frac_hess / 5),
            "curvature": k * HVP_PER_CURVATURE * c["hvp"] * frac_hess,
        }
        per[d] = row
        total += 2 * plan.seeds * sum(row.values())
    return {"per_network_seconds": per, "total_hours": total / 3600.0,
            "assumed_costs": COSTS, "scale": scale or {}}


# ------------------------------------------------------------------ layout
def _stem(out: Path, depth: int, arm: str, seed: int) -> Path:
    return out / "nets" / f"d{depth}_{arm}_s{seed}"


def _run_dir(out: Path, depth: int, arm: str, seed: int) -> Path:
    return out / "runs" / f"d{depth}" / arm / f"seed_{seed}"


def _files(out: Path, depth: int, arm: str, seed: int) -> list[Path]:
    stem = _stem(out, depth, arm, seed)
    return [stem.with_suffix(".h5"), Path(f"{stem}_ratio.h5"), stem.with_suffix(".json")]


def _has(path: Path, group: str) -> bool:
    return path.exists() and group in storage.list_groups(path)


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, json.dumps(doc, indent=2, sort_keys=True, default=_plain).encode())


def _plain(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    raise TypeError(type(x).__name__)


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


# ------------------------------------------------------------------ dry run
def describe(plan: Plan, out: Path, scale: dict[int, float] | None = None) -> str:
    """The plan in words: runs, recipe, files, and the GPU-hour estimate."""
    lines = [f"Li et al. (2018) CIFAR-10 protocol -> {out}",
             f"CIFAR-10 from {plan.cifar_root}"]
    try:
        from landscape.data.sources import cifar_dir  # the loader's own file check

        cifar_dir(Path(plan.cifar_root), [f"data_batch_{i}" for i in range(1, 6)]
                   + ["test_batch"])
        lines.append("  (the six python batches are there)")
    except LandscapeError as e:
        lines.append(f"  WARNING: {e}")
    ep = plan.epochs
    drops = [e for e in range(2, ep + 1)
             if lr_at_epoch(plan.config(20, "residual"), e)
             < lr_at_epoch(plan.config(20, "residual"), e - 1)]
    lines += [
        f"recipe: SGD Nesterov momentum 0.9, batch {plan.batch_size}, weight decay "
        f"{plan.weight_decay:g}, {_epochs(ep)}, lr x0.1 from epochs {drops} (Li et al.: after "
        "150/225/275 of 300; the library's step schedule has no third drop), no data "
        "augmentation (Li et al.: random crop + flip)",
        f"lr {plan.lr:g}; plain nets at depth >= 56: lr {plan.plain_deep_lr:g} (as Li et al.)",
        f"measurements: surface {plan.grid} on {_n(plan.eval_subset)} training images; "
        f"curvature and ratio map {plan.ratio_grid} on {_n(plan.hessian_subset)} training "
        f"images; training on {_n(plan.train_subset)} images",
        f"runs ({len(plan.networks())}):",
    ]
    for d, a, s in plan.networks():
        files = ", ".join(str(f.relative_to(out)) for f in _files(out, d, a, s))
        lines.append(f"  resnet{d} {a:8s} seed {s}  lr {plan.lr_of(d, a):g}  "
                     f"{_run_dir(out, d, a, s).relative_to(out)}/  {files}")
    lines.append("tables: " + ", ".join(f"compare/d{d}/arms.md" for d in plan.depths)
                 + ", summary.md, summary.json")
    est = estimate(plan, scale)
    lines.append("GPU-hour estimate (" + ("rescaled by the measured epoch cost" if scale else
                 "assumed per-unit costs on one H100-class GPU, float32, not measured: "
                 + "; ".join(f"resnet{d}: {c['epoch']:g} s/epoch, {c['point']:g} s/surface "
                             f"point, {c['hvp']:g} s/HVP on 10k images"
                             for d, c in COSTS.items() if d in plan.depths)) + "):")
    for d, row in est["per_network_seconds"].items():
        parts = ", ".join(f"{k} {v / 3600:.2f} h" for k, v in row.items())
        lines.append(f"  resnet{d}, per network: {parts}; x{2 * plan.seeds} networks")
    lines.append(f"  total: {est['total_hours']:.1f} GPU hours")
    return "\n".join(lines)


# ------------------------------------------------------------------ one network
def _say(msg: str) -> None:
    print(msg, flush=True)


def _network(plan: Plan, out: Path, depth: int, arm: str, seed: int, device: str,
             data: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Train (or resume) one run and measure it at its final checkpoint."""
    run_dir = _run_dir(out, depth, arm, seed)
    config = dataclasses.replace(plan.config(depth, arm), seed=seed)
    t0 = time.perf_counter()
    run = train(plan.spec(depth, arm), plan.data(plan.train_subset), config, run_dir,
                progress=progress, device=device)
    train_seconds = time.perf_counter() - t0 if run.start_epoch is not None else None
    if run.status != "complete":
        raise LandscapeError(f"{run_dir}: {run.unfinished()}")
    main, ratio, doc_path = _files(out, depth, arm, seed)
    ckpt = load_checkpoint(run.final)
    model = ckpt.model.to(device).eval()
    dirs = random_directions(model, seeds=(0, 1))  # filter-normalized, biases/BN fixed
    prov = {"command": "benchmarks/li2018_cifar.py", "checkpoint": str(run.final)}
    surf_data, hess_data = data["surface"], data["hessian"]
    compute_surface(model, dirs, {"train": surf_data}, x=plan.grid, y=plan.grid, out=main,
                    recipe=checkpoint_recipe(ckpt, plan.data(plan.eval_subset)),
                    provenance=prov, progress=progress, device=device)
    hess_recipe = checkpoint_recipe(ckpt, plan.data(plan.hessian_subset), split="train")
    if not _has(main, "curvature"):
        compute_curvature(model, hess_data, top_k=1, min_eig=True, trace=True,
                          trace_samples=plan.trace_samples, tol=plan.tol,
                          max_hvp=plan.max_hvp, recipe=hess_recipe, provenance=prov,
                          progress=progress).save(main)
    cur = CurvatureResult.load(main)
    compute_surface(model, dirs, {"train": hess_data}, x=plan.ratio_grid, y=plan.ratio_grid,
                    out=ratio, recipe=checkpoint_recipe(ckpt, plan.data(plan.hessian_subset)),
                    provenance=prov, progress=progress, device=device)
    rmap = compute_ratio_map(model, ratio, hess_data, tol=plan.tol, max_hvp=plan.max_hvp,
                             recipe=hess_recipe, provenance=prov, progress=progress)
    last = run.history[-1]
    if doc_path.exists():
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    else:
        st = stationarity(model, hess_data, lambda_max=float(cur.top_eigenvalues[0]),
                          history=run.history)
        doc = {"depth": depth, "arm": arm, "seed": seed, "lr": config.lr,
               "stationarity": st.to_dict(), "at_minimum": bool(st.at_minimum),
               "not_at_minimum_reason": st.reason,
               "final_train_loss": last["train_loss"], "final_train_acc": last["train_acc"],
               "final_test_loss": last["test_loss"], "final_test_acc": last["test_acc"],
               "test_error_pct": 100.0 * (1.0 - last["test_acc"]),
               "train_seconds": train_seconds,
               "history": [{k: h.get(k) for k in ("epoch", "lr", "train_loss", "test_acc")}
                           for h in run.history]}
        _write_json(doc_path, _clean(doc))
    done = int(rmap.done.sum()) if rmap.done is not None else 0
    _say(f"[resnet{depth} {arm} seed {seed}] train loss {last['train_loss']:.4g}, test error "
         f"{doc['test_error_pct']:.2f}%, λmax {float(cur.top_eigenvalues[0]):.4g}, ratio map "
         f"{done} points, {'at' if doc['at_minimum'] else 'not at'} a minimum")
    return {"files": [str(main), str(ratio)], "doc": doc, "train_seconds": train_seconds}


# ------------------------------------------------------------------ comparison and summary
def _extra(doc: dict[str, Any]) -> dict[str, Any]:
    st = doc.get("stationarity") or {}
    rows = {"final_train_loss": doc.get("final_train_loss"),
            "test_error_pct": doc.get("test_error_pct"),
            "gradient_gain": st.get("gradient_gain"), "loss_trend": st.get("trend"),
            "at_minimum": float(bool(doc.get("at_minimum")))}
    return {k: v for k, v in rows.items() if v is not None}


def _off_minimum(docs: Sequence[dict[str, Any]]) -> str | None:
    off = [d for d in docs if not d.get("at_minimum")]
    if not off:
        return None
    return f"{len(off)} of {len(docs)} seeds: {off[0].get('not_at_minimum_reason')}"


def compare_depth(out: Path, depth: int, nets: dict[str, list[dict[str, Any]]],
                  grid: str = "-1:1:51") -> ArmComparison:
    """Residual vs plain at one depth, at the seed level; writes ``compare/d{depth}``.

    The surface ε-sharpness uses ε = 0.1 (a 10 % move of every filter), or one grid step
    where the grid is coarser.
    """
    ax = parse_axis(grid, "grid")
    step = (ax.max - ax.min) / (ax.num - 1) if ax.num > 1 else 0.1
    comp, _ = compare_arms(
        {a: [n["files"] for n in nets[a]] for a in ARMS},
        at_minimum={a: _off_minimum([n["doc"] for n in nets[a]]) for a in ARMS},
        extra={a: [_extra(n["doc"]) for n in nets[a]] for a in ARMS},
        eps=max(0.1, step), progress=False)
    comp.save(out / "compare" / f"d{depth}")
    return comp


_HEADLINE = ("test_error_pct", "final_train_loss", "lambda_max", "lambda_min",
             "ratio_at_minimum", "trace", "convex_area_fraction")


def summarize(plan: Plan, out: Path, nets: dict[int, dict[str, list[dict[str, Any]]]],
              comps: dict[int, ArmComparison]) -> str:
    """Write ``summary.md`` and ``summary.json``; returns the markdown."""
    md = ["# Li et al. (2018), CIFAR-10 protocol: residual vs plain ResNets", "",
          f"{plan.seeds} seeds per arm, {_epochs(plan.epochs)}, SGD Nesterov 0.9, batch "
          f"{plan.batch_size}, weight decay {plan.weight_decay:g}, step schedule (x0.1 at 50% "
          f"and 75% of the epochs; Li et al. also at 275/300), no data augmentation (Li et "
          f"al. used random crops and flips: expect higher test errors). lr {plan.lr:g}; the "
          f"plain nets of depth >= 56 at lr {plan.plain_deep_lr:g}, as Li et al. did.",
          f"Surfaces {plan.grid} on {_n(plan.eval_subset)} training images; curvature and "
          f"|λmin/λmax| maps ({plan.ratio_grid}) on {_n(plan.hessian_subset)}.", "",
          "## Test error (%) beside Li et al.'s", "",
          "| network | arm | lr | this run: mean ± sd [95% CI] | Li et al. 2018 |",
          "|---|---|---|---|---|"]
    doc: dict[str, Any] = {"plan": dataclasses.asdict(plan), "depths": {}}
    for d in plan.depths:
        per: dict[str, Any] = {}
        for i, a in enumerate(ARMS):
            errs = [n["doc"]["test_error_pct"] for n in nets[d][a]]
            s = seed_summary(errs)
            md.append(f"| resnet{d} | {a} | {plan.lr_of(d, a):g} | {s.text('{:.2f}')} | "
                      f"{PAPER_TEST_ERROR[d][i]:.2f} |")
            per[a] = {"lr": plan.lr_of(d, a), "test_error_pct": errs,
                      "summary": dataclasses.asdict(s), "paper_test_error_pct":
                      PAPER_TEST_ERROR[d][i]}
        doc["depths"][str(d)] = per
    for d in plan.depths:
        c = comps[d]
        md += ["", f"## ResNet-{d}: residual vs plain (seed level; full table in "
               f"compare/d{d}/arms.md)", ""]
        md += [f"- {n}" for n in c.notes]
        for a in ARMS:
            if c.at_minimum.get(a):
                md.append(f"- {a}: not at a minimum ({c.at_minimum[a]})")
        md += ["", c.markdown_table([m for m in _HEADLINE if m in c.summaries])]
        doc["depths"][str(d)]["verdicts"] = {m: c.verdict(m) for m in c.summaries}
    text = "\n".join(md) + "\n"
    write_bytes(out / "summary.md", text.encode())
    _write_json(out / "summary.json", _clean(doc))
    return text


# ------------------------------------------------------------------ main
def _check_plan(out: Path, plan: Plan) -> None:
    path = out / "plan.json"
    want = _clean(dataclasses.asdict(plan))
    if path.exists():
        have = json.loads(path.read_text(encoding="utf-8"))
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if diff:
            raise LandscapeError(f"'{out}' holds a run with other settings ({', '.join(diff)}); "
                                 "use another --out or the same options")
        return
    _write_json(path, want)


def run(plan: Plan, out: Path, device: str, progress: bool = True,
        log: Callable[[str], None] = _say) -> dict[str, Any]:
    """Train, measure and compare every network of ``plan`` into ``out`` (resumes).

    Returns
    -------
    dict
        ``nets`` (depth -> arm -> list of per-seed records), ``comparisons`` (depth ->
        ArmComparison) and ``summary`` (the markdown).
    """
    (out / "nets").mkdir(parents=True, exist_ok=True)
    _check_plan(out, plan)
    data = {"surface": load_data(plan.data(plan.eval_subset), "train"),
            "hessian": load_data(plan.data(plan.hessian_subset), "train")}
    nets: dict[int, dict[str, list[dict[str, Any]]]] = {}
    todo = plan.networks()
    for i, (d, a, s) in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] resnet{d} {a} seed {s} (lr {plan.lr_of(d, a):g})")
        rec = _network(plan, out, d, a, s, device, data, progress)
        nets.setdefault(d, {}).setdefault(a, []).append(rec)
    comps = {d: compare_depth(out, d, nets[d], plan.grid) for d in plan.depths}
    text = summarize(plan, out, nets, comps)
    return {"nets": nets, "comparisons": comps, "summary": text}


def _grid_args(argv: Sequence[str]) -> list[str]:
    """``--grid -1:1:51`` as ``--grid=-1:1:51`` (argparse takes ``-1:1:51`` for an option)."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a in ("--grid", "--ratio-grid"):
            nxt = next(it, None)
            out.append(a if nxt is None else f"{a}={nxt}")
        else:
            out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    argv = _grid_args(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        plan = Plan.from_args(args)
        out = Path(args.out)
        if args.quick_check:
            out = out / "quick_check"
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if args.dry_run:
            print(describe(plan, out))
            return 0
        print(describe(plan, out), flush=True)
        result = run(plan, out, device, progress=not args.no_progress)
        if args.quick_check:
            secs = {d: [r["train_seconds"] for a in ARMS for r in result["nets"][d][a]
                        if r["train_seconds"]] for d in plan.depths}
            scale = {d: statistics.median(v) * CIFAR_TRAIN / _n(plan.train_subset)
                     / COSTS[d]["epoch"] for d, v in secs.items() if v}
            _write_json(out / "quick_check.json",
                        _clean({"epoch_seconds_measured": {d: v for d, v in secs.items()},
                                "scale_vs_assumed": scale}))
            full = Plan.from_args(_parser().parse_args(
                [a for a in argv if a != "--quick-check"]))
            print("measured seconds of one epoch (initial evaluation included): "
                  + ", ".join(f"resnet{d} {statistics.median(v):.1f} s (median of {len(v)})"
                              for d, v in secs.items() if v))
            est = estimate(full, scale or None)
            print(f"estimate for the full run, rescaled by the measured epoch cost: "
                  f"{est['total_hours']:.1f} GPU hours")
        else:
            print(f"done: {out / 'summary.md'}")
        return 0
    except LandscapeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
