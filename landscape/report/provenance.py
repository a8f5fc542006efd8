"""Where a report's numbers come from: versions, date, command line, checkpoints, recipes.

Everything is read from what the results already record (their ``recipe`` and ``provenance``
dicts) or from the checkpoints given to :func:`~landscape.report.compare`; the training recipe
of a network comes from its checkpoint's metadata or, failing that, from the ``run.json`` of
the run directory holding the checkpoint a result file names. Entries nothing records are
``None`` (shown as "not recorded"), never guessed.
"""

from __future__ import annotations

import datetime
import platform
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import LandscapeError
from .results import NetworkResults

__all__ = ["environment", "network_provenance", "default_command"]


def default_command() -> str:
    """This process's command line, as typed (``landscape compare ...`` from the CLI)."""
    argv = list(sys.argv) or ["python"]
    argv[0] = Path(argv[0]).name or argv[0]
    return shlex.join(argv)


def environment(command: str | None = None) -> dict[str, Any]:
    """Tool, torch, numpy and Python versions, the date (UTC) and the command line."""
    import numpy
    import torch

    from .._version import __version__

    return {
        "landscape": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": default_command() if command is None else command,
    }


def _training_of_run(checkpoint: Any) -> dict[str, Any] | None:
    """The training config in the ``run.json`` beside a checkpoint path, if there is one."""
    if not isinstance(checkpoint, str) or not checkpoint:
        return None
    from ..training import TrainRun

    try:
        return TrainRun.load(Path(checkpoint).parent).config.to_dict()
    except (LandscapeError, OSError, ValueError, TypeError):
        return None


def network_provenance(res: NetworkResults, checkpoint: Mapping[str, Any] | None = None
                       ) -> tuple[dict[str, Any], list[str]]:
    """Checkpoint, SHA-256, model, data, training recipe and commands of one network.

    Parameters
    ----------
    res : NetworkResults
    checkpoint : mapping, optional
        What the checkpoint given to :func:`~landscape.report.compare` says about itself
        (``path``, ``sha256``, ``training``, ``seed``, ``epoch``).

    Returns
    -------
    provenance : dict
        ``checkpoint``, ``checkpoint_sha256`` (``{part: sha}`` for every part that records
        one), ``model``, ``data``, ``training``, ``training_source``, ``commands``
        (``{part: command}``).
    notes : list of str
        E.g. parts computed at different checkpoints.
    """
    ck = dict(checkpoint or {})
    parts: dict[str, Any] = {"surface": res.surface, "curvature": res.curvature,
                             "ratio_map": res.ratio_map, "pca_surface": res.pca_surface}
    shas: dict[str, str] = {}
    commands: dict[str, str] = {}
    paths: list[str] = []
    model = data = None
    for part, r in parts.items():
        if r is None:
            continue
        recipe = r.recipe if isinstance(r.recipe, Mapping) else {}
        prov = r.provenance if isinstance(r.provenance, Mapping) else {}
        if isinstance(recipe.get("checkpoint_sha256"), str):
            shas[part] = recipe["checkpoint_sha256"]
        if isinstance(prov.get("command"), str):
            commands[part] = prov["command"]
        if isinstance(prov.get("checkpoint"), str):
            paths.append(prov["checkpoint"])
        model = model if model is not None else recipe.get("model")
        data = data if data is not None else recipe.get("data")
    if res.trajectory is not None and res.trajectory.checkpoints:
        last = res.trajectory.checkpoints[-1]  # the trajectory ends at the trained network
        if isinstance(last, Mapping) and isinstance(last.get("path"), str):
            paths.append(last["path"])
    if "sha256" in ck:
        shas["checkpoint given"] = ck["sha256"]
    notes = []
    if len(set(shas.values())) > 1:
        notes.append(f"{res.name}: the parts were computed at different checkpoints "
                     f"(SHA-256 {', '.join(f'{k}: {v[:12]}' for k, v in shas.items())})")
    path = ck.get("path") or (paths[0] if paths else None)
    training, source = ck.get("training"), "checkpoint metadata" if "training" in ck else None
    if training is None:
        for p in ([ck["path"]] if "path" in ck else []) + paths:
            training = _training_of_run(p)
            if training is not None:
                source = f"{Path(p).parent / 'run.json'}"
                break
    if training is not None and "seed" in ck and "seed" not in training:
        training = {**training, "seed": ck["seed"]}
    return {
        "checkpoint": path,
        "checkpoint_sha256": shas,
        "epoch": ck.get("epoch"),
        "model": model,
        "data": data,
        "training": training,
        "training_source": source,
        "commands": commands,
    }, notes
