"""The demo: residual vs plain network on the bundled digits data, end to end.

:func:`run_demo` trains a residual network and its plain twin (identical parameter shapes, same
recipe), then for each computes a filter-normalized 2D loss surface, Hessian curvature at the
minimum (top eigenvalues, smallest eigenvalue, trace, spectral density), a |λmin/λmax| map on a
coarse grid with the same directions, the PCA trajectory of its checkpoints with the loss on
the PCA plane, and finally the comparison report. Every step writes its result file as it goes
and is skipped (or resumed) when the file is already complete, so running the demo again picks
up where it stopped.

Layout of ``out_dir``::

    runs/residual/, runs/plain/      checkpoints (epoch_NNNN.pt) and run.json
    residual.h5, plain.h5            /surface, /directions, /curvature, /ratio_map
    residual_ratio_grid.h5, ...      the coarse surface that the ratio map is computed on
    residual_trajectory.h5, ...      /trajectory, PCA /directions, /surface on the PCA plane
    report/                          report.md, report.html, report.json and the figures

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import storage
from ._functional import named_tensors
from .checkpoints import load_checkpoint
from .compare import Report, compare
from .data import DataSpec, load_data
from .directions import random_directions
from .errors import LandscapeError
from .hessian.ratio_map import compute_ratio_map
from .hessian.results import CurvatureResult, compute_curvature
from .models import ModelSpec
from .surface import compute_surface, load_directions
from .training import TrainConfig, TrainRun, train
from .trajectory import TrajectoryPCA

__all__ = ["DemoConfig", "run_demo"]

NETWORKS = ("residual", "plain")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains and measures.

    Attributes
    ----------
    model : str
        Registry name of the residual network; the plain twin is the same with
        ``shortcut=False``.
    model_kwargs : dict
        Architecture keyword arguments (``in_channels=1`` for 8x8 digits).
    train : TrainConfig
        The one training recipe used for both networks.
    eval_subset : int
        Training samples used by surfaces and Hessians (a deterministic subset; the whole
        360-sample test split is used for test loss/accuracy).
    grid : str
        Surface grid along both filter-normalized directions.
    ratio_grid : str
        Coarse grid of the |λmin/λmax| map (same directions).
    trajectory_points : int
        Grid points per axis of the surface on the PCA plane.
    top_k, trace_samples, density_steps, density_runs : int
        Hessian settings at the minimum.
    ratio_tol : float
        Relative tolerance of the eigenvalues in the ratio map.
    """

    model: str = "resnet56"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"in_channels": 1,
                                                                  "width": 0.5})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=20, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4,
        schedule="cosine", seed=0, save_every=1))
    eval_subset: int = 500
    grid: str = "-1:1:21"
    ratio_grid: str = "-1:1:5"
    trajectory_points: int = 15
    top_k: int = 3
    trace_samples: int = 30
    density_steps: int = 30
    density_runs: int = 2
    ratio_tol: float = 1e-2

    @classmethod
    def quick(cls) -> DemoConfig:
        """A smaller version that runs in about two minutes on 2 CPU cores."""
        return cls(
            model="resnet20",
            model_kwargs={"in_channels": 1, "width": 0.5},
            train=TrainConfig(epochs=8, batch_size=64, lr=0.01, momentum=0.9,
                              weight_decay=5e-4, schedule="cosine", seed=0, save_every=1),
            eval_subset=300,
            grid="-1:1:11",
            ratio_grid="-1:1:3",
            trajectory_points=9,
            top_k=2,
            trace_samples=12,
            density_steps=16,
            density_runs=1,
            ratio_tol=2e-2,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        return d


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log is not None:
        log(msg)


def _run_complete(run_dir: Path, epochs: int) -> bool:
    try:
        run = TrainRun.load(run_dir)
    except LandscapeError:
        return False
    return run.status == "complete" and run.history[-1].get("epoch") == epochs


def _has(path: Path, group: str) -> bool:
    return path.exists() and group in storage.list_groups(path)


def run_demo(
    out_dir: str | os.PathLike = "data/demo",
    config: DemoConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> Report:
    """Train residual and plain networks and write the full comparison under ``out_dir``.

    Parameters
    ----------
    out_dir : path, default="data/demo"
        Output directory (created). Re-running resumes: finished steps are skipped and
        unfinished result files are completed.
    config : DemoConfig, optional
        Default :class:`DemoConfig` (``DemoConfig.quick()`` for the small version).
    progress : bool, default=True
        Progress bars with ETA.
    log : callable or None, default=print
        Receives one line per step.

    Returns
    -------
    Report
        The comparison (also saved under ``out_dir/report``).
    """
    cfg = config or DemoConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out / "demo_config.json"
    cfg_json = json.dumps(cfg.to_dict(), sort_keys=True, indent=2)
    if cfg_file.exists() and cfg_file.read_text() != cfg_json:
        raise LandscapeError(
            f"'{out}' holds a demo run with another configuration; choose another output "
            "directory (or delete it)"
        )
    cfg_file.write_text(cfg_json)
    data = DataSpec("digits", subset=cfg.eval_subset)
    t_start = time.perf_counter()
    files: list[list[str]] = []
    for name in NETWORKS:
        kwargs = dict(cfg.model_kwargs, shortcut=(name == "residual"))
        spec = ModelSpec(cfg.model, kwargs)
        run_dir = out / "runs" / name
        t0 = time.perf_counter()
        if not _run_complete(run_dir, cfg.train.epochs):
            _say(log, f"[{name}] training {cfg.model} {json.dumps(kwargs)} for "
                      f"{cfg.train.epochs} epochs (lr {cfg.train.lr:g}, {cfg.train.schedule})")
            train(spec, DataSpec("digits"), cfg.train, run_dir, progress=progress)
        run = TrainRun.load(run_dir)
        last = run.history[-1]
        _say(log, f"[{name}] trained: train loss {last['train_loss']:.4g}, test acc "
                  f"{100 * last['test_acc']:.1f}% ({time.perf_counter() - t0:.0f} s)")
        ckpt = load_checkpoint(run.final)
        model = ckpt.model
        train_data = load_data(data, "train")
        test_data = load_data(data, "test")
        splits = {"train": train_data, "test": test_data}
        recipe = {"checkpoint_sha256": ckpt.sha256, "model": spec.to_dict(),
                  "data": data.to_dict()}
        main = out / f"{name}.h5"

        # 1. filter-normalized 2D surface (same seeds for both networks)
        t0 = time.perf_counter()
        dirs = random_directions(named_tensors(model), seeds=0)
        s = compute_surface(model, dirs, splits, x=cfg.grid, y=cfg.grid, out=main,
                            recipe=recipe, provenance={"command": "landscape demo"},
                            progress=progress)
        _say(log, f"[{name}] surface {s.shape[0]}x{s.shape[1]}: {s.n_done}/{s.n_points} "
                  f"points ({time.perf_counter() - t0:.0f} s)")

        # 2. curvature at the minimum
        t0 = time.perf_counter()
        if not _has(main, "curvature"):
            cur = compute_curvature(
                model, train_data, top_k=cfg.top_k, min_eig=True, trace=True,
                trace_samples=cfg.trace_samples, density=True,
                density_steps=cfg.density_steps, density_runs=cfg.density_runs,
                tol=1e-4, recipe=recipe,
            )
            cur.save(main)
        cur = CurvatureResult.load(main)
        _say(log, f"[{name}] Hessian: " + "; ".join(cur.lines(unicode=False))
             + f" ({time.perf_counter() - t0:.0f} s)")

        # 3. |lambda_min/lambda_max| on a coarse grid with the same directions
        t0 = time.perf_counter()
        coarse = out / f"{name}_ratio_grid.h5"
        compute_surface(model, load_directions(main), splits, x=cfg.ratio_grid,
                        y=cfg.ratio_grid, out=coarse, recipe=recipe, progress=progress)
        rm = compute_ratio_map(model, coarse, train_data, tol=cfg.ratio_tol, out=main,
                               progress=progress)
        _say(log, f"[{name}] ratio map {rm.shape[0]}x{rm.shape[1]}: {rm.n_done}/"
                  f"{rm.n_points} points, {rm.total_hvp} HVPs "
                  f"({time.perf_counter() - t0:.0f} s)")

        # 4. PCA trajectory and the surface on the PCA plane
        t0 = time.perf_counter()
        traj = out / f"{name}_trajectory.h5"
        pca = TrajectoryPCA(2).fit_run(run_dir)
        if not _has(traj, "trajectory"):
            pca.save(traj, overwrite=True)
        coords = pca.coords_
        ax = _pca_axis(coords[:, 0], cfg.trajectory_points)
        ay = _pca_axis(coords[:, 1], cfg.trajectory_points)
        ts = compute_surface(model, pca.pca_directions_, splits, x=ax, y=ay, out=traj,
                             recipe=recipe, progress=progress)
        summ = pca.summary()
        _say(log, f"[{name}] trajectory: PC1+PC2 explain {100 * summ['pc1_pc2']:.1f}% "
                  f"(random plane captures {100 * summ['random_path_capture']:.2f}% of the "
                  f"path); PCA-plane surface {ts.n_done}/{ts.n_points} "
                  f"({time.perf_counter() - t0:.0f} s)")
        files.append([str(main), str(traj)])

    from .surface import parse_axis

    g = parse_axis(cfg.grid)
    step = (g.max - g.min) / (g.num - 1)
    report = compare(files, names=list(NETWORKS), eps=step, models=[str(TrainRun.load(
        out / "runs" / n).final) for n in NETWORKS])
    report = report.save(out / "report")
    _say(log, f"wrote {out / 'report'}/report.md, report.html, report.json "
              f"({time.perf_counter() - t_start:.0f} s in all)")
    return report


def _pca_axis(values: Any, num: int) -> str:
    lo, hi = float(min(values)), float(max(values))
    span = max(hi - lo, 1e-6)
    return f"{lo - 0.25 * span:.4g}:{hi + 0.25 * span:.4g}:{num}"
