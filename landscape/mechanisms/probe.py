"""The mechanism analyses of a checkpoint *file* into a landscape file: what ``landscape
probe`` runs, one call from a notebook (:func:`probe_checkpoint`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import storage
from ..checkpoints import load_checkpoint
from ..inputs import CheckpointInputs
from ..losses import loss_name
from ._common import Result, save_results
from .analyses import USES_LOSS, applicable_analyses, run_analyses

__all__ = ["ProbeResults", "probe_checkpoint"]


@dataclass(frozen=True)
class ProbeResults:
    """What :func:`probe_checkpoint` computed and wrote.

    Attributes
    ----------
    results : dict
        ``{group name: result}``, with ``"gradflow_init"`` for the run's initialisation.
    seconds : dict
        Wall-clock seconds per analysis (by analysis name).
    out : str
        The landscape file written.
    """

    results: dict[str, Result]
    seconds: dict[str, float]
    out: str

    def line(self) -> str:
        """What was written, in one line."""
        took = ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        return f"wrote {','.join(sorted(self.results))} to {self.out} ({took})"


def init_checkpoint(path: str | os.PathLike) -> Path | None:
    """The run's initialisation ``epoch_0000.pt`` beside the checkpoint ``path`` (``None``
    when there is none, or ``path`` is it)."""
    init = Path(path).with_name("epoch_0000.pt")
    if init.is_file() and init.resolve() != Path(path).resolve():
        return init
    return None


def probe_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    inputs: CheckpointInputs | None = None,
    what: Sequence[str] | None = None,
    blocks: str | None = None,
    seed: int = 0,
    loss: Any = None,
    device: str | torch.device = "cpu",
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> ProbeResults:
    """Mechanism analyses of a checkpoint file, one group each in a landscape file.

    Lesions use the test split, the other analyses the training split; ``gradflow`` also runs
    at the run's initialisation (``epoch_0000.pt`` beside the checkpoint, ``/gradflow_init``)
    when there is one. Each group records the checkpoint, its SHA-256, the dtype, the loss
    (analyses that differentiate one) and the seconds it took.

    Parameters
    ----------
    checkpoint : path
        The checkpoint file.
    inputs : CheckpointInputs, optional
        How to load it (``dtype``: the model's and inputs' dtype) and which data.
    what : sequence of str, optional
        Analyses (keys of :data:`~landscape.mechanisms.ANALYSES`; default: those that apply,
        :func:`~landscape.mechanisms.applicable_analyses`).
    blocks : str, optional
        Module-name glob of the residual blocks (see :func:`~landscape.mechanisms.find_blocks`).
    seed : int, default 0
        Seed of every random choice.
    loss : loss spec, optional
        Loss of the analyses that differentiate one (default: cross-entropy for class
        targets, squared error for float targets).
    device : str or torch.device, default "cpu"
        Where the analyses run.
    out : path, optional
        The landscape file (default ``<checkpoint stem>_mechanisms.h5`` beside the checkpoint;
        its other groups are kept); checked before any computation.
    overwrite : bool, default False
        Replace an existing landscape file instead of adding to it.

    Returns
    -------
    ProbeResults
    """
    inputs = CheckpointInputs() if inputs is None else inputs
    out = str(out) if out is not None else str(
        Path(checkpoint).with_name(f"{Path(checkpoint).stem}_mechanisms.h5"))
    storage.check_writable(out, overwrite=overwrite)
    ckpt = inputs.load(checkpoint)
    model = ckpt.model.to(device)
    what = applicable_analyses(model, blocks) if what is None else list(what)
    sets = inputs.datasets(ckpt, ["train", "test"])
    torch.manual_seed(seed)
    done, seconds = run_analyses(model, sets["train"], what, blocks=blocks, seed=seed,
                                 test_data=sets["test"], loss=loss)
    results: dict[str, Result] = {r.GROUP: r for r in done.values()}
    with_loss = {r.GROUP for w, r in done.items() if w in USES_LOSS} | {"gradflow_init"}
    init = init_checkpoint(checkpoint) if "gradflow" in what else None
    if init is not None:  # its weights replace the model's (the analyses above are done)
        model0 = load_checkpoint(init, model=model, trust=inputs.trust,
                                 state_key=inputs.state_key, prefix=inputs.prefix).model
        model0 = model0.to(device=device, dtype=inputs.dtype)
        res0, _ = run_analyses(model0, sets["train"], ["gradflow"], blocks=blocks, seed=seed,
                               loss=loss)
        results["gradflow_init"] = res0["gradflow"]
    dtype = str(inputs.dtype or next(model.parameters()).dtype).replace("torch.", "")
    attrs: dict[str, dict[str, Any]] = {}
    for name in results:
        attrs[name] = {"checkpoint": str(checkpoint), "sha256": ckpt.sha256, "dtype": dtype}
        if name in with_loss:
            attrs[name]["loss"] = loss_name(loss) if loss is not None else "default"
        if name in seconds:  # by analysis name: groups named otherwise record none
            attrs[name]["seconds"] = seconds[name]
    save_results(out, results, attrs=attrs, overwrite=overwrite)
    return ProbeResults(results, seconds, out)
