"""One vocabulary: every CLI option is a parameter of the library call its command makes.

For each subcommand, every argparse destination must be

* a parameter (or dataclass field) of one of the library functions/classes the handler calls,
  or of the shared front end every command uses (``load_checkpoint``, ``DataSpec``,
  ``select_parameters``), under the same name; or
* in :data:`RENAMED`, which names the library parameter it becomes (checked to exist): the
  remaining places where the CLI and the library still spell one concept differently; or
* in :data:`CLI_ONLY`, with the reason it has no library parameter.

A new option that fits none of these fails here: give it the library's name, or say why not.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from landscape.cli.main import build_parser

import landscape as ls
from landscape._resume import RunOptions
from landscape.demo import DemoConfig, run_demo
from landscape.mechanisms import sharpening_of_run
from landscape.plot import plot_file
from landscape.study import StudyConfig, run_study

#: The shared front end: loading a checkpoint, naming data, choosing parameters, and how a
#: long run writes (RunOptions: out, overwrite, progress, flush_seconds, max_points).
COMMON: tuple[Callable[..., Any], ...] = (ls.load_checkpoint, ls.DataSpec, ls.select_parameters,
                                          RunOptions)

#: The library calls each command's handler makes.
CALLS: dict[str, tuple[Any, ...]] = {
    "demo": (run_study, StudyConfig, run_demo, DemoConfig),
    "train": (ls.train_model, ls.train, ls.TrainConfig, ls.train_seeds),
    "surface": (ls.compute_checkpoint_surface, ls.compute_surface, ls.compute_surface_set,
                ls.compute_hessian_surface, ls.random_directions, ls.hessian_directions,
                ls.run_shards),
    "trajectory": (ls.compute_trajectory, ls.TrajectoryPCA, ls.TrajectoryPCA.plane_surface,
                   ls.compute_surface),
    "hessian": (ls.curvature_of_checkpoint, ls.compute_curvature, ls.compute_ratio_map,
                ls.compute_block_spectra, ls.run_shards),
    "info": (ls.describe,),
    "plot": (plot_file,),
    "compare": (ls.compare_files, ls.compare, ls.compare_arms),
    "connect": (ls.connect_checkpoints, ls.compute_connectivity, ls.run_shards),
    "probe": (ls.probe_checkpoint, ls.run_analyses),
    "sharpening": (sharpening_of_run,),
    "merge": (ls.merge_shards,),
}

#: dest -> the library parameter it becomes, ``"callable.parameter"`` (per command where the
#: same dest maps differently). The remaining two-name concepts.
RENAMED: dict[str, dict[str, str]] = {
    "*": {
        "trust_checkpoint": "load_checkpoint.trust",
        "data_root": "DataSpec.root",
        "data_kwargs": "DataSpec.kwargs",
        "checkpoint": "load_checkpoint.path",
        "dir_type": "TrajectoryPCA.what",
        "no_wait": "run_shards.wait",
    },
    "demo": {"out": "run_study.out_dir"},
    "train": {"out": "train.out_dir"},
    "surface": {"precision": "compute_surface.autocast",
                "hessian_samples": "hessian_directions.data",
                "hessian_tol": "hessian_directions.tol",
                "no_full_check": "compute_checkpoint_surface.full_check",
                "no_check_memory": "compute_surface.check_memory"},
    "trajectory": {"run": "compute_trajectory.checkpoints",
                   "components": "TrajectoryPCA.n_components",
                   "exclude_final": "TrajectoryPCA.include_final",
                   "no_check_memory": "compute_trajectory.check_memory"},
    "hessian": {"min": "compute_curvature.min_eig",
                "save_eigenvectors": "compute_curvature.keep_eigenvectors",
                "no_warm_start": "compute_ratio_map.warm_start",
                "no_check_memory": "compute_curvature.check_memory"},
    "info": {"file": "describe.path", "json": "describe.as_json"},
    "plot": {"file": "plot_file.path", "kind": "plot_file.kinds", "out": "plot_file.out_dir",
             "format": "plot_file.fmt"},
    "compare": {"checkpoints": "compare.models"},
    "connect": {"checkpoint_a": "compute_connectivity.model_a",
                "checkpoint_b": "compute_connectivity.model_b",
                "splits": "compute_connectivity.data", "bends": "compute_connectivity.n_bends",
                "points": "compute_connectivity.n_points"},
    "probe": {"checkpoint": "load_checkpoint.path"},
    "sharpening": {"k": "sharpening_of_run.kwargs", "trace_samples": "sharpening_of_run.kwargs"},
}

#: Options with no library parameter, and why.
CLI_ONLY: dict[str, str] = {
    "threads": "the process's thread policy, applied by main() before any library call",
    "no_progress": "the CLI's progress bar switch (library: progress=)",
    "quick": "chooses a preset configuration (StudyConfig.quick / DemoConfig.for_pair)",
    "pair": "chooses a preset configuration (DemoConfig.for_pair)",
    "dtype": "the dtype the checkpoint is loaded in (model.to(dtype)) before the call",
    "loss": "parsed into a loss spec for the call's loss=",
    "device": "where the model is moved before the call",
    "out": "the file results are saved to (result.save(out))",
    "overwrite": "whether result.save may replace the file",
    "dpi": "figure resolution of the written pictures",
    "allow_partial": "accepts an unfinished training run's checkpoints",
}


def _params(obj: Any) -> set[str]:
    if dataclasses.is_dataclass(obj):
        return {f.name for f in dataclasses.fields(obj)}
    return set(inspect.signature(obj).parameters)


def _resolve(target: str) -> set[str]:
    owner, _, param = target.rpartition(".")
    public = {n: getattr(ls, n) for n in ls.__all__}  # imported on first use: not in vars(ls)
    namespace = {**public, "DemoConfig": DemoConfig, "StudyConfig": StudyConfig,
                 "sharpening_of_run": sharpening_of_run, "plot_file": plot_file,
                 "run_study": run_study}
    obj: Any = None
    for part in owner.split("."):
        obj = namespace[part] if obj is None else getattr(obj, part)
    assert param in _params(obj), f"{target}: {owner} has no parameter {param!r}"
    return {param}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_has_its_calls_listed():
    assert set(_commands()) == set(CALLS)


@pytest.mark.parametrize("command", sorted(CALLS))
def test_every_option_is_a_library_parameter(command):
    known = set().union(*(_params(f) for f in (*CALLS[command], *COMMON)))
    renamed = {**RENAMED["*"], **RENAMED.get(command, {})}
    unexplained = []
    for action in _commands()[command]._actions:
        dest = action.dest
        if dest == "help" or dest in known:
            continue
        if dest in renamed:
            _resolve(renamed[dest])
            continue
        if dest in CLI_ONLY:
            continue
        unexplained.append(dest)
    assert not unexplained, (f"'landscape {command}' options that are no parameter of "
                             f"{[getattr(f, '__name__', f) for f in CALLS[command]]}: "
                             f"{unexplained}")


def test_counts_of_the_vocabulary():
    """How many destinations the parity check covers, and how many still go by two names."""
    dests = sum(len([a for a in p._actions if a.dest != "help"]) for p in _commands().values())
    renamed = sum(len(v) for v in RENAMED.values())
    print(f"CLI destinations checked: {dests}; renamed: {renamed}; CLI-only: {len(CLI_ONLY)}")
    assert dests > 200
