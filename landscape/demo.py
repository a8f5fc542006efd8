"""The demo: residual vs plain network on bundled (or generated) data, end to end.

:func:`run_demo` trains a residual network and its plain twin (identical parameter shapes, same
recipe), then for each computes a filter-normalized 2D loss surface, Hessian curvature at the
minimum (top eigenvalues, smallest eigenvalue, trace, spectral density), a surface along the
Hessian's eigenvectors of λmax and λmin (the slice that shows a saddle's negative curvature,
Böttcher & Wheeler 2024), a |λmin/λmax| map on a
coarse grid with the same directions, the PCA trajectory of its checkpoints with the loss on
the PCA plane, and finally the comparison report. Every step writes its result file as it goes
and is skipped (or resumed) when the file is already complete, so running the demo again picks
up where it stopped.

The default pair is ResNet-56 (half width) against its plain twin on the digits;
:meth:`DemoConfig.for_pair` gives the same comparison for other architectures
(``landscape demo --pair NAME``), each with a recipe that trains its residual member in 2-core
CPU minutes (:data:`PAIRS`):

``resnet56``
    The default: ResNet-56 at half width vs plain-56; SGD lr 0.01, momentum 0.9, weight decay
    5e-4, batch 64, cosine, 10 epochs (quick: ResNet-20, 8 epochs). Until 2026-12-02 the default
    trained 20 epochs and measured on 500 training samples; the whole run then took about
    45 minutes on 2 cores (the 5 direction pairs alone 325 s per network), so the default now
    trains 10 epochs (residual: 96.4% test accuracy; plain: 26.9%, still improving) and
    measures on 256 samples, coarser ratio and trajectory grids and the direction pairs on the
    surface's central window: 9 min 17 s measured on the project's 2-core VM (2026-12-02;
    10 min 3 s before evaluations chose ``channels_last`` for conv nets).
``preresnet56``
    Pre-activation ResNet-56 (He et al. 2016b) at half width vs its plain twin; the default
    recipe with 20 epochs (quick: PreResNet-20, 8 epochs).
``densenet``
    DenseNet-BC-40, ``k = 12`` (Huang et al. 2017) vs the plain chain with the same tensors;
    the default recipe with 20 epochs (quick: DenseNet-BC-22, ``k = 8``, 8 epochs).
``vit``
    A pre-LN Vision Transformer (4x4 patches, width 64, 6 blocks) vs the same without its
    residual stream; the default recipe with 20 epochs (quick: width 32, 4 blocks, 6 epochs,
    128 evaluation samples, a 9x9 grid and fewer Hessian products, for CI).
``gpt``
    A 2-block causal transformer (width 128) on ``a + b mod 97`` (half of the pairs for
    training; Power et al. 2022) vs the same without residual stream; SGD lr 0.2, 30 epochs,
    otherwise the default recipe: test accuracy 99.4% with, chance without (quick: ``mod 47``,
    which the residual GPT fits in 30 epochs but generalises to only 59% of the test pairs).
``stochastic-depth``
    Not a residual/plain pair: ResNet-56 (half width) trained with stochastic depth (Huang et
    al. 2016; last block dropped with probability 0.5, linear decay) against the same network
    trained without, the default recipe with 20 epochs (quick: ResNet-20, 8 epochs).
    Veit et al. (2016) predict shorter effective paths and flatter lesion curves with it;
    ``runs/stochastic_depth`` and ``runs/residual`` hold the two arms.
``unet``
    A U-Net (2 levels, 16 channels) with and without its long encoder-to-decoder skips on
    ``digits-denoise``, every measurement in mean squared error (no accuracy); the default
    recipe with 20 epochs (quick: 8 channels, 10 epochs, the ViT pair's small measurements).
    Quick, seeds 0-2: train MSE 0.086 with skips vs 0.104 without (lower in 3 of 3 seeds).
``highway``
    A highway MLP (width 64, 20 layers, gate bias -2) vs the same without carry paths; SGD lr
    0.1, 20 epochs (quick: width 32, 10 layers, 6 epochs), the gates probed. Quick, seeds 0-2:
    88% test accuracy with carry paths, chance (9%) without; trained gates close further
    (mean ``T`` 0.087 against 0.119 at the bias).
``resnext``
    ResNeXt-29 (cardinality 8, bottleneck width 4, quarter width) vs its plain twin; the
    default recipe with 20 epochs (quick: ResNeXt-11, cardinality 4, bottleneck width 2,
    eighth width, 6 epochs). Quick, seeds 0-2: train loss 0.30 vs 0.49 and Hessian trace 407
    vs 703 (both lower in 3 of 3 seeds).

Layout of ``out_dir``::

    runs/residual/, runs/plain/      checkpoints (epoch_NNNN.pt) and run.json
    residual.h5, plain.h5            /surface, /directions, /curvature, /ratio_map,
                                     /hessian_surface (along the λmax and λmin eigenvectors)
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
from ._atomic import check_own_directory
from ._functional import named_tensors
from .checkpoints import load_checkpoint
from .data import DataSpec, load_data
from .directions import random_directions
from .errors import LandscapeError
from .hessian.ratio_map import compute_ratio_map
from .hessian.results import CurvatureResult, compute_curvature
from .models import ModelSpec, skip_switch
from .recipes import checkpoint_recipe
from .report import Report, compare
from .surface import compute_surface, load_directions
from .surface_set import compute_surface_set, member_seeds
from .training import TrainConfig, TrainRun, train
from .trajectory import TrajectoryPCA

__all__ = ["DemoConfig", "PAIRS", "run_demo"]

NETWORKS = ("residual", "plain")
#: What the two arms of a pair can differ in (:attr:`DemoConfig.contrast`).
CONTRASTS = ("skip", "stochastic_depth")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains and measures.

    Attributes
    ----------
    model : str
        Registry name of the residual network; the plain twin is the same with
        ``shortcut=False`` (``residual=False`` for the transformers).
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
    data : str
        Built-in data set (``"digits"``, or ``"modadd"`` for the GPT pair).
    data_kwargs : dict
        Its options (``{"p": 97}`` for ``modadd``).
    n_directions : int
        Independent random direction pairs on the surface grid (``/surfaces``), for the
        spread of every surface metric over directions (5; 3 in the quick demo).
    mechanisms : {"default", "quick", "none"}
        Settings of the mechanism analyses (lesion, path lengths, gradient flow, dilution,
        shattering; :data:`landscape.mechanisms.QUICK` in the quick demo).
    sharpening_every : int
        λmax against 2/η at every ``sharpening_every``-th checkpoint (0: not computed, the
        quick demo).
    connect_steps : int
        Training steps of the Bezier curve between the network and a second one trained with
        seed + 1 (0: no second network and no connectivity, the quick demo).
    hessian_grid : str
        Grid (both axes) of the surface along the Hessian's λmax and λmin unit eigenvectors
        (``/hessian_surface``; the report's "Hessian-direction slices"; in units of weight
        distance; the default's step, 0.1, lets the surface ε-sharpness at ε = 0.1 read its
        neighbours);
        ``""``: not computed (the quick demo: it added 68 s to a 282 s quick run).
    contrast : {"skip", "stochastic_depth"}
        What the two arms differ in: ``"skip"``, the residual network and its plain twin
        (arms ``residual`` and ``plain``); ``"stochastic_depth"``, the residual network trained
        with ``train.stochastic_depth`` and without it (arms ``stochastic_depth`` and
        ``residual``).
    loss : {"cross_entropy", "mse"}
        The loss of every measurement (training picks cross-entropy for class targets and
        the mean squared error for float targets by itself): ``"mse"`` for the U-Net pair on
        ``"digits-denoise"``.
    block_spectra : str
        Per-block spectra (:func:`~landscape.hessian.compute_block_spectra`, grouping
        ``"block"`` or ``"layer"``...) of each arm at its minimum, whose heterogeneity (Zhang et
        al. 2024) the report compares; ``""``: not computed (the default; the ViT and GPT
        pairs compute them per transformer block).
    set_grid : str
        Grid (both axes) of the ``n_directions`` direction pairs (``/surfaces``); ``""``: the
        surface's ``grid``. The default, ``-0.5:0.5:11``, is the central window of the 21x21
        surface with its step (0.1, so the surface ε-sharpness at ε = one step reads the same
        neighbours): 5 x 121 points instead of 5 x 441 (measured 325 s of a ResNet-56 demo).

    Notes
    -----
    :meth:`to_dict` (what ``demo_config.json`` holds, and what a resumed run must match)
    leaves ``data``, ``data_kwargs`` and ``n_directions`` out while they are the defaults, so
    that output directories of the default demo written before these fields existed still
    resume (and compute only the missing steps).
    """

    model: str = "resnet56"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"in_channels": 1,
                                                                  "width": 0.5})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=10, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4,
        schedule="cosine", seed=0, save_every=1))
    eval_subset: int = 256
    grid: str = "-1:1:21"
    ratio_grid: str = "-1:1:3"
    trajectory_points: int = 11
    top_k: int = 3
    trace_samples: int = 20
    density_steps: int = 30
    density_runs: int = 1
    ratio_tol: float = 2e-2
    data: str = "digits"
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    n_directions: int = 5
    mechanisms: str = "default"
    sharpening_every: int = 4
    connect_steps: int = 200
    hessian_grid: str = "-0.4:0.4:9"
    set_grid: str = "-0.5:0.5:11"
    contrast: str = "skip"
    loss: str = "cross_entropy"
    block_spectra: str = ""

    def __post_init__(self) -> None:
        from .errors import check_option

        check_option("contrast", self.contrast, CONTRASTS)
        if self.contrast == "stochastic_depth" and not self.train.stochastic_depth:
            raise LandscapeError("contrast 'stochastic_depth' needs train.stochastic_depth > 0 "
                                 "(the drop probability of the first arm)")

    def arms(self) -> list[tuple[str, dict[str, Any], TrainConfig]]:
        """``(name, model keyword arguments, training recipe)`` of the two arms."""
        if self.contrast == "stochastic_depth":
            return [("stochastic_depth", dict(self.model_kwargs), self.train),
                    ("residual", dict(self.model_kwargs),
                     dataclasses.replace(self.train, stochastic_depth=0.0))]
        switch = skip_switch(self.model)  # "shortcut", or "residual" for the transformers
        return [(name, dict(self.model_kwargs, **{switch: name == "residual"}), self.train)
                for name in NETWORKS]

    @classmethod
    def quick(cls) -> DemoConfig:
        """A smaller version that runs in about three minutes on 2 CPU cores."""
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
            n_directions=3,
            mechanisms="quick",
            sharpening_every=0,
            connect_steps=0,
            hessian_grid="",  # measured: +68 s of a 282 s quick demo (two solves, 242 points)
            set_grid="",
        )

    @classmethod
    def for_pair(cls, pair: str = "resnet56", quick: bool = False) -> DemoConfig:
        """The configuration of one pair of :data:`PAIRS` (its quick version with ``quick``).

        ``for_pair("resnet56")`` is ``DemoConfig()`` and ``for_pair("resnet56", quick=True)``
        is ``DemoConfig.quick()``.
        """
        if pair not in PAIRS:
            names = ", ".join(repr(p) for p in PAIRS)
            raise LandscapeError(f"The 'pair' parameter must be one of {names}. Got {pair!r} "
                                 "instead.")
        base = cls.quick() if quick else cls()
        changes = PAIRS[pair]["quick" if quick else "full"]
        if "train" in changes:
            changes = dict(changes, train=dataclasses.replace(base.train, **changes["train"]))
        return dataclasses.replace(base, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        if d["data"] == "digits" and not d["data_kwargs"]:
            del d["data"], d["data_kwargs"]
        for late in ("n_directions", "mechanisms", "sharpening_every", "connect_steps",
                     "hessian_grid", "set_grid", "contrast", "loss", "block_spectra"):
            if d[late] == type(self).__dataclass_fields__[late].default:
                del d[late]  # fields added later: old default directories still resume
        return d


#: The architecture pairs of ``landscape demo --pair NAME``: changes to :class:`DemoConfig`
#: (``"full"``) and to :meth:`DemoConfig.quick` (``"quick"``); ``"train"`` holds changes to the
#: training recipe. Described in the module docstring.
PAIRS: dict[str, dict[str, dict[str, Any]]] = {
    "resnet56": {"full": {}, "quick": {}},
    "preresnet56": {
        "full": {"model": "preresnet56", "train": {"epochs": 20}},
        "quick": {"model": "preresnet20"},
    },
    "densenet": {
        "full": {"model": "densenet", "model_kwargs": {"depth": 40, "growth_rate": 12,
                                                        "in_channels": 1},
                 "train": {"epochs": 20}},
        "quick": {"model": "densenet", "model_kwargs": {"depth": 22, "growth_rate": 8,
                                                         "in_channels": 1}},
    },
    "vit": {
        "full": {"model": "vit", "model_kwargs": {"width": 64, "depth": 6, "heads": 4},
                 "train": {"epochs": 20}, "block_spectra": "block"},
        # transformer HVPs cost more than the quick ResNet-20's: a smaller evaluation set and
        # fewer Hessian products keep it a CI-sized run
        "quick": {"model": "vit", "model_kwargs": {"width": 32, "depth": 4, "heads": 4},
                  "train": {"epochs": 6}, "eval_subset": 128, "grid": "-1:1:9",
                  "trajectory_points": 7, "top_k": 1, "trace_samples": 6, "density_steps": 10,
                  "ratio_tol": 5e-2, "block_spectra": "block"},
    },
    "unet": {
        "full": {"model": "unet", "model_kwargs": {"channels": 16, "levels": 2},
                 "data": "digits-denoise", "loss": "mse", "train": {"epochs": 20}},
        "quick": {"model": "unet", "model_kwargs": {"channels": 8, "levels": 2},
                  "data": "digits-denoise", "loss": "mse", "train": {"epochs": 10},
                  "eval_subset": 128, "grid": "-1:1:9", "trajectory_points": 7, "top_k": 1,
                  "trace_samples": 6, "density_steps": 10, "ratio_tol": 5e-2},
    },
    "highway": {
        "full": {"model": "highway", "model_kwargs": {"width": 64, "depth": 20},
                 "train": {"epochs": 20, "lr": 0.1}},
        "quick": {"model": "highway", "model_kwargs": {"width": 32, "depth": 10},
                  "train": {"epochs": 6, "lr": 0.1}, "eval_subset": 128, "grid": "-1:1:9",
                  "trajectory_points": 7, "top_k": 1, "trace_samples": 6,
                  "density_steps": 10, "ratio_tol": 5e-2},
    },
    "resnext": {
        "full": {"model": "resnext", "model_kwargs": {"depth": 29, "cardinality": 8,
                                                       "bottleneck_width": 4, "width": 0.25,
                                                       "in_channels": 1},
                 "train": {"epochs": 20}},
        "quick": {"model": "resnext", "model_kwargs": {"depth": 11, "cardinality": 4,
                                                        "bottleneck_width": 2, "width": 0.125,
                                                        "in_channels": 1},
                  "train": {"epochs": 6}, "eval_subset": 128, "grid": "-1:1:9",
                  "trajectory_points": 7, "top_k": 1, "trace_samples": 6,
                  "density_steps": 10, "ratio_tol": 5e-2},
    },
    "gpt": {
        "full": {"model": "gpt", "model_kwargs": {"width": 128, "depth": 2, "heads": 4},
                 "data": "modadd", "data_kwargs": {"p": 97, "train_fraction": 0.5},
                 "train": {"epochs": 30, "lr": 0.2}, "block_spectra": "block"},
        "quick": {"model": "gpt", "model_kwargs": {"vocab_size": 48, "num_classes": 47,
                                                   "width": 128, "depth": 2, "heads": 4},
                  "data": "modadd", "data_kwargs": {"p": 47, "train_fraction": 0.5},
                  "train": {"epochs": 30, "lr": 0.2}, "block_spectra": "block"},
    },
    "stochastic-depth": {
        "full": {"contrast": "stochastic_depth",
                 "train": {"epochs": 20, "stochastic_depth": 0.5}},
        "quick": {"contrast": "stochastic_depth", "train": {"stochastic_depth": 0.5}},
    },
}


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
    cfg_file = out / "demo_config.json"
    check_own_directory(out, "demo_config.json", "a demo output")
    out.mkdir(parents=True, exist_ok=True)
    cfg_json = json.dumps(cfg.to_dict(), sort_keys=True, indent=2)
    if cfg_file.exists() and cfg_file.read_text() != cfg_json:
        raise LandscapeError(
            f"'{out}' holds a demo run with another configuration; choose another output "
            "directory (or delete it)"
        )
    cfg_file.write_text(cfg_json)
    data = DataSpec(cfg.data, subset=cfg.eval_subset, kwargs=cfg.data_kwargs)
    train_spec = DataSpec(cfg.data, kwargs=cfg.data_kwargs)
    t_start = time.perf_counter()
    files: list[list[str]] = []
    arms = cfg.arms()
    for name, kwargs, train_cfg in arms:
        spec = ModelSpec(cfg.model, kwargs)
        run_dir = out / "runs" / name
        t0 = time.perf_counter()
        if not _run_complete(run_dir, train_cfg.epochs):
            sd = (f", stochastic depth {train_cfg.stochastic_depth:g}"
                  if train_cfg.stochastic_depth else "")
            _say(log, f"[{name}] training {cfg.model} {json.dumps(kwargs)} for "
                      f"{train_cfg.epochs} epochs (lr {train_cfg.lr:g}, {train_cfg.schedule}"
                      f"{sd})")
            train(spec, train_spec, train_cfg, run_dir, progress=progress)
        run = TrainRun.load(run_dir)
        last = run.history[-1]
        test = (f"test loss {last['test_loss']:.4g}" if last["test_acc"] is None  # regression
                else f"test acc {100 * last['test_acc']:.1f}%")
        _say(log, f"[{name}] trained: train loss {last['train_loss']:.4g}, {test} "
                  f"({time.perf_counter() - t0:.0f} s)")
        ckpt = load_checkpoint(run.final)
        model = ckpt.model
        train_data = load_data(data, "train")
        test_data = load_data(data, "test")
        splits = {"train": train_data, "test": test_data}
        recipe = checkpoint_recipe(ckpt, data)
        main = out / f"{name}.h5"

        # 1. filter-normalized 2D surface (same seeds for both networks)
        t0 = time.perf_counter()
        dirs = random_directions(named_tensors(model), seeds=0)
        s = compute_surface(model, dirs, splits, x=cfg.grid, y=cfg.grid, out=main,
                            loss=cfg.loss, recipe=recipe, provenance={"command": "landscape demo"},
                            progress=progress)
        _say(log, f"[{name}] surface {s.shape[0]}x{s.shape[1]}: {s.n_done}/{s.n_points} "
                  f"points ({time.perf_counter() - t0:.0f} s)")
        if cfg.n_directions > 1:  # 1b. the spread over direction pairs, on the same grid
            t0 = time.perf_counter()
            sg = cfg.set_grid or cfg.grid
            # train split only: every spread row (report.numbers.SPREAD_KEYS) reads train loss
            ss = compute_surface_set(model, {"train": train_data},
                                     seeds=member_seeds(cfg.n_directions),
                                     x=sg, y=sg, batch_size=512, out=main, loss=cfg.loss,
                                     recipe=recipe, provenance={"command": "landscape demo"},
                                     progress=progress)
            _say(log, f"[{name}] {ss.n_members} direction pairs: {ss.n_done}/{ss.n_points} "
                      f"points ({time.perf_counter() - t0:.0f} s)")

        # 2. curvature at the minimum
        t0 = time.perf_counter()
        if not _has(main, "curvature"):
            cur = compute_curvature(
                model, train_data, top_k=cfg.top_k, min_eig=True, trace=True,
                trace_samples=cfg.trace_samples, density=True,
                density_steps=cfg.density_steps, density_runs=cfg.density_runs,
                tol=1e-4, loss=cfg.loss, recipe=recipe, progress=progress,
            )
            cur.save(main)
        cur = CurvatureResult.load(main)
        _say(log, f"[{name}] Hessian: " + "; ".join(cur.lines(unicode=False))
             + f" ({time.perf_counter() - t0:.0f} s)")

        _block_spectra(cfg, name, model, train_data, main, recipe, log, progress)
        _hessian_slice(cfg, name, model, splits, main, recipe, log, progress)

        # 3. |lambda_min/lambda_max| on a coarse grid with the same directions
        t0 = time.perf_counter()
        coarse = out / f"{name}_ratio_grid.h5"
        compute_surface(model, load_directions(main), splits, x=cfg.ratio_grid,
                        y=cfg.ratio_grid, out=coarse, loss=cfg.loss, recipe=recipe,
                        progress=progress)
        rm = compute_ratio_map(model, coarse, train_data, tol=cfg.ratio_tol, out=main,
                               loss=cfg.loss,
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
        ax, ay = pca.plane_axes(cfg.trajectory_points)
        # train split only, like the direction pairs: the PCA-plane figure and rows read train loss
        ts = compute_surface(model, pca.pca_directions_, {"train": train_data}, x=ax, y=ay,
                             out=traj, loss=cfg.loss,
                             recipe=recipe, progress=progress)
        summ = pca.summary()
        _say(log, f"[{name}] trajectory: PC1+PC2 explain {100 * summ['pc1_pc2']:.1f}% "
                  f"(random plane captures {100 * summ['random_path_capture']:.2f}% of the "
                  f"path); PCA-plane surface {ts.n_done}/{ts.n_points} "
                  f"({time.perf_counter() - t0:.0f} s)")
        _mechanisms(cfg, name, model, run_dir, main, train_data, test_data, log)
        _connect(cfg, name, spec, train_spec, model, splits, out, main, recipe, log, progress,
                 train_cfg)
        files.append([str(main), str(traj)])

    from .surface import parse_axis

    g = parse_axis(cfg.grid)
    step = (g.max - g.min) / (g.num - 1)
    names = [name for name, _, _ in arms]
    report = compare(files, names=names, eps=step, models=[str(TrainRun.load(
        out / "runs" / n).final) for n in names], progress=progress)
    report = report.save(out / "report")
    _say(log, f"wrote {out / 'report'}/report.md, report.html, report.json "
              f"({time.perf_counter() - t_start:.0f} s in all)")
    return report


def _hessian_slice(cfg: DemoConfig, name: str, model: Any, splits: dict[str, Any], main: Path,
                   recipe: dict[str, Any], log: Any, progress: bool) -> None:
    """2b. The surface along the eigenvectors of λmax and λmin (resumed, never recomputed)."""
    if not cfg.hessian_grid:
        return
    from .hessian.directions import compute_hessian_surface

    t0 = time.perf_counter()
    # the Hessian is of the train loss, and the slice's rows read train loss: train split only
    h = compute_hessian_surface(model, {"train": splits["train"]}, x=cfg.hessian_grid,
                                y=cfg.hessian_grid,
                                pair="topbottom", tol=1e-4, hessian_dtype=None, out=main,
                                loss=cfg.loss,
                                recipe=recipe, provenance={"command": "landscape demo"},
                                progress=progress)
    lams = h.directions.recipe["eigenvalues"] if h.directions is not None else []
    _say(log, f"[{name}] Hessian-direction slice {h.shape[0]}x{h.shape[1]} (λmax, λmin = "
              f"{', '.join(f'{v:.4g}' for v in lams)}): {h.n_done}/{h.n_points} points "
              f"({time.perf_counter() - t0:.0f} s)")


def _block_spectra(cfg: DemoConfig, name: str, model: Any, train_data: Any, main: Path,
                   recipe: dict[str, Any], log: Any, progress: bool) -> None:
    """Per-block spectra at the minimum (the heterogeneity row of the report)."""
    if not cfg.block_spectra or _has(main, "block_spectra"):
        return
    from .hessian.blocks import compute_block_spectra

    t0 = time.perf_counter()
    bs = compute_block_spectra(model, train_data, blocks=cfg.block_spectra, top_k=1,
                               trace_samples=cfg.trace_samples, density_steps=cfg.density_steps,
                               density_runs=cfg.density_runs, loss=cfg.loss, recipe=recipe)
    bs.save(main)
    _say(log, f"[{name}] per-block spectra ({len(bs.block_names)} blocks): heterogeneity "
              f"{bs.heterogeneity:.4g} ({time.perf_counter() - t0:.0f} s)")


def _mechanisms(cfg: DemoConfig, name: str, model: Any, run_dir: Path, main: Path,
                train_data: Any, test_data: Any, log: Any) -> None:
    """5. Why skips help: the mechanism analyses (each saved once, so a rerun skips it)."""
    if cfg.mechanisms == "none":
        return
    from .mechanisms import QUICK, RESULTS, applicable_analyses, run_analyses, sharpening_of_run

    t0 = time.perf_counter()
    try:  # the block analyses for residual nets, gates for highway nets
        todo = [w for w in applicable_analyses(model) if not _has(main, RESULTS[w].GROUP)]
    except LandscapeError as exc:  # e.g. the transformers: no x + branch(x) blocks
        _say(log, f"[{name}] block analyses skipped: {exc}")
        todo = []
    if todo:
        results, _ = run_analyses(model, train_data, what=todo, test_data=test_data,
                                  settings=QUICK if cfg.mechanisms == "quick" else None)
        for r in results.values():
            r.save(main)
    if cfg.sharpening_every and not _has(main, RESULTS["sharpening"].GROUP):
        sharpening_of_run(run_dir, subset=128, every=cfg.sharpening_every,
                          n_trace=9).save(main)
    _say(log, f"[{name}] mechanisms ({time.perf_counter() - t0:.0f} s)")


def _connect(cfg: DemoConfig, name: str, spec: ModelSpec, train_spec: DataSpec, model: Any,
             splits: dict[str, Any], out: Path, main: Path, recipe: dict[str, Any], log: Any,
             progress: bool, train_cfg: TrainConfig | None = None) -> None:
    """6. Connectivity: a second network (seed + 1), the line and a Bezier curve to it."""
    if not cfg.connect_steps:
        return
    from .connect import compute_connectivity, connectivity_numbers

    t0 = time.perf_counter()
    train_cfg = train_cfg or cfg.train
    run2 = out / "runs" / f"{name}_seed{train_cfg.seed + 1}"
    if not _run_complete(run2, train_cfg.epochs):
        train(spec, train_spec, dataclasses.replace(train_cfg, seed=train_cfg.seed + 1), run2,
              progress=progress)
    other = load_checkpoint(TrainRun.load(run2).final).model
    c = compute_connectivity(model, other, splits, steps=cfg.connect_steps, n_points=21,
                             out=main, loss=cfg.loss, recipe=recipe, progress=progress)
    b = connectivity_numbers(c)
    _say(log, f"[{name}] connectivity: train-loss barrier line {b['line_train_loss_barrier']:.3g},"
              f" curve {b.get('curve_train_loss_barrier', float('nan')):.3g} "
              f"({time.perf_counter() - t0:.0f} s)")

