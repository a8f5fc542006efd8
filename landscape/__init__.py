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

import importlib
from typing import Any

from ._version import __version__
from .errors import LandscapeError

#: Where each public name lives, imported on first use (PEP 562): ``import landscape`` stays
#: cheap (no torch, scipy, h5py, ...) and a command pays only for the modules it uses.
_LAZY: dict[str, tuple[str, ...]] = {
    "_functional": ("named_tensors",),
    "checkpoints": ("Checkpoint", "file_sha256", "load_checkpoint", "save_checkpoint"),
    "checkpoint_surface": (
        "checkpoint_plane_directions",
        "compute_checkpoint_surface",
        "interpolation_directions",
    ),
    "connect": ("Connectivity", "compute_connectivity", "connect_checkpoints"),
    "data": ("DataSpec", "TensorData", "load_data", "load_splits"),
    "directions": (
        "Directions",
        "interpolation_direction",
        "normalize_direction",
        "orthogonalize",
        "plane_directions",
        "random_direction",
        "random_directions",
    ),
    "evaluation": ("Evaluator", "Metrics", "evaluate"),
    "executors": ("ShardJobs", "run_shards"),
    "hessian": (
        "BlockSpectra",
        "CheckpointCurvature",
        "CurvatureResult",
        "HessianOperator",
        "compute_block_spectra",
        "compute_curvature",
        "compute_hessian_surface",
        "compute_ratio_map",
        "curvature_of_checkpoint",
        "hessian_directions",
    ),
    "info": ("describe", "summarize"),
    "inputs": ("CheckpointInputs", "RunOptions"),
    "mechanisms": ("probe_checkpoint", "run_analyses"),
    "memory": ("MemoryEstimate",),
    "models": ("ModelSpec", "build"),
    "parameters": ("ParameterSelection", "select_parameters"),
    "replicates": ("ArmComparison", "compare_arms"),
    "report": ("Report", "SavedComparison", "compare", "compare_files"),
    "results": ("RESULT_KINDS", "ResultFile", "open"),
    "shards": ("merge_shards",),
    "surface": (
        "Axis",
        "Surface",
        "compute_surface",
        "load_directions",
        "parse_axis",
        "save_directions",
    ),
    "surface_set": ("SurfaceSet", "compute_surface_set"),
    "training": (
        "TrainConfig",
        "TrainRun",
        "TrainedRuns",
        "list_checkpoints",
        "train",
        "train_model",
        "train_seeds",
    ),
    "trajectory": ("Trajectory", "TrajectoryPCA", "compute_trajectory", "load_trajectory"),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    """A public name's object (imported from its module on first use), or a submodule."""
    module = _HOME.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    if not name.startswith("__"):
        try:  # ``landscape.storage`` & co without importing them first, as before
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})


__all__ = [
    "__version__",
    "ArmComparison",
    "Axis",
    "BlockSpectra",
    "Checkpoint",
    "CheckpointCurvature",
    "CheckpointInputs",
    "Connectivity",
    "CurvatureResult",
    "DataSpec",
    "Directions",
    "Evaluator",
    "HessianOperator",
    "LandscapeError",
    "MemoryEstimate",
    "Metrics",
    "ModelSpec",
    "ParameterSelection",
    "RESULT_KINDS",
    "Report",
    "RunOptions",
    "ResultFile",
    "SavedComparison",
    "ShardJobs",
    "Surface",
    "SurfaceSet",
    "TensorData",
    "TrainConfig",
    "TrainRun",
    "TrainedRuns",
    "Trajectory",
    "TrajectoryPCA",
    "build",
    "checkpoint_plane_directions",
    "compare",
    "compare_arms",
    "compare_files",
    "compute_block_spectra",
    "compute_checkpoint_surface",
    "compute_connectivity",
    "compute_curvature",
    "compute_hessian_surface",
    "compute_ratio_map",
    "compute_surface",
    "compute_surface_set",
    "compute_trajectory",
    "connect_checkpoints",
    "curvature_of_checkpoint",
    "describe",
    "evaluate",
    "file_sha256",
    "hessian_directions",
    "interpolation_direction",
    "interpolation_directions",
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
    "probe_checkpoint",
    "random_direction",
    "random_directions",
    "run_analyses",
    "run_shards",
    "save_checkpoint",
    "save_directions",
    "select_parameters",
    "summarize",
    "train",
    "train_model",
    "train_seeds",
]
