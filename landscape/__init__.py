"""landscape: loss-landscape analysis for PyTorch.

Filter-normalized loss surfaces, optimizer trajectories and Hessian curvature of trained
checkpoints, stored in a documented HDF5 schema (see :mod:`landscape.storage`).

Examples
--------
>>> import landscape as ls                                                # doctest: +SKIP
>>> ckpt = ls.load_checkpoint("runs/mlp/epoch_0020.pt")                   # doctest: +SKIP
>>> train, test = ls.load_splits(ckpt.meta["data"]["name"])               # doctest: +SKIP
>>> dirs = ls.random_directions(ls.named_tensors(ckpt.model), seeds=0)    # doctest: +SKIP
>>> surf = ls.compute_surface(ckpt.model, dirs, {"train": train, "test": test},
...                           x="-1:1:51", y="-1:1:51", out="surface.h5")  # doctest: +SKIP
"""

from __future__ import annotations

from ._functional import named_tensors
from ._version import __version__
from .checkpoints import Checkpoint, file_sha256, load_checkpoint, save_checkpoint
from .connect import Connectivity, compute_connectivity, connect_checkpoints
from .data import DataSpec, TensorData, load_data, load_splits
from .directions import (
    Directions,
    interpolation_direction,
    normalize_direction,
    orthogonalize,
    plane_directions,
    random_direction,
    random_directions,
)
from .errors import LandscapeError
from .evaluation import Evaluator, Metrics, evaluate
from .hessian import (
    BlockSpectra,
    CurvatureResult,
    HessianOperator,
    compute_block_spectra,
    compute_curvature,
    compute_hessian_surface,
    compute_ratio_map,
    hessian_directions,
)
from .info import describe, summarize
from .inputs import CheckpointInputs, RunOptions
from .mechanisms import run_analyses
from .models import ModelSpec, build
from .parameters import ParameterSelection, select_parameters
from .replicates import ArmComparison, compare_arms
from .report import Report, compare
from .results import RESULT_KINDS, ResultFile, open
from .shards import merge_shards
from .surface import (
    Axis,
    Surface,
    compute_surface,
    load_directions,
    parse_axis,
    save_directions,
)
from .surface_set import SurfaceSet, compute_surface_set
from .training import TrainConfig, TrainRun, list_checkpoints, train, train_seeds
from .trajectory import Trajectory, TrajectoryPCA, compute_trajectory, load_trajectory

__all__ = [
    "__version__",
    "ArmComparison",
    "Axis",
    "BlockSpectra",
    "Checkpoint",
    "CheckpointInputs",
    "Connectivity",
    "CurvatureResult",
    "DataSpec",
    "Directions",
    "Evaluator",
    "HessianOperator",
    "LandscapeError",
    "Metrics",
    "ModelSpec",
    "ParameterSelection",
    "RESULT_KINDS",
    "Report",
    "RunOptions",
    "ResultFile",
    "Surface",
    "SurfaceSet",
    "TensorData",
    "TrainConfig",
    "TrainRun",
    "Trajectory",
    "TrajectoryPCA",
    "build",
    "compare",
    "compare_arms",
    "compute_block_spectra",
    "compute_connectivity",
    "compute_curvature",
    "compute_hessian_surface",
    "compute_ratio_map",
    "compute_surface",
    "compute_surface_set",
    "compute_trajectory",
    "connect_checkpoints",
    "describe",
    "evaluate",
    "file_sha256",
    "hessian_directions",
    "interpolation_direction",
    "list_checkpoints",
    "load_checkpoint",
    "load_data",
    "load_directions",
    "load_splits",
    "load_trajectory",
    "merge_shards",
    "named_tensors",
    "normalize_direction",
    "open",
    "orthogonalize",
    "parse_axis",
    "plane_directions",
    "random_direction",
    "random_directions",
    "run_analyses",
    "save_checkpoint",
    "save_directions",
    "select_parameters",
    "summarize",
    "train",
    "train_seeds",
]
