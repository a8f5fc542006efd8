"""What an analysis takes from its caller besides the model: where the checkpoint and data
come from (:class:`CheckpointInputs`) and how a long run writes (:class:`RunOptions`).

Every analysis of a checkpoint *file* (``connect_checkpoints``, the CLI's commands) loads the
same way: the checkpoint (with an architecture when the file has no spec, only with ``trust``
for a full pickle, with ``state_key``/``prefix`` for an ambiguous file), in a dtype, and the
data it was trained on unless other data are named. :class:`CheckpointInputs` holds those
choices once; a notebook and the CLI build the same object.

Examples
--------
>>> from landscape.inputs import CheckpointInputs                     # doctest: +SKIP
>>> inputs = CheckpointInputs(data="digits", subset=512)              # doctest: +SKIP
>>> ckpt = inputs.load("runs/resnet20/epoch_0010.pt")                 # doctest: +SKIP
>>> splits = inputs.datasets(ckpt, ["train", "test"])                 # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ._resume import RunOptions
from .checkpoints import Checkpoint, load_checkpoint
from .data import DataSpec, TensorData, check_compatible, load_data
from .errors import LandscapeError
from .models import ModelSpec, adapt_to_data

__all__ = ["CheckpointInputs", "RunOptions"]


@dataclass(frozen=True)
class CheckpointInputs:
    """How to load a checkpoint file and its data.

    Parameters
    ----------
    model : str, optional
        Architecture (registry name or ``package.module:factory``) for a checkpoint without a
        stored spec; default: the spec stored in a landscape checkpoint.
    model_kwargs : mapping, optional
        Keyword arguments of ``model``.
    trust : bool, default False
        Allow checkpoints that are full pickles (they can run code when loaded).
    state_key, prefix : str, optional
        The entry holding the state dict and the key prefix to strip, for checkpoints that
        hold several (see :func:`~landscape.checkpoints.load_checkpoint`).
    data : str, optional
        Data name (see :mod:`landscape.data`); default: what the checkpoint was trained on,
        else ``"digits"``.
    root : str, optional
        Directory of the data files.
    kwargs : mapping, optional
        Options of the data.
    subset : int, optional
        Use the first ``subset`` samples of each split.
    dtype : torch.dtype, optional
        The dtype the model is used in (default: as stored).
    """

    model: str | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    trust: bool = False
    state_key: str | None = None
    prefix: str | None = None
    data: str | None = None
    root: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    subset: int | None = None
    dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.model is None and self.model_kwargs:
            raise LandscapeError("model_kwargs needs model (the architecture they are for)")

    def model_spec(self) -> ModelSpec | None:
        """The architecture named, or ``None`` (use the checkpoint's own spec)."""
        return None if self.model is None else ModelSpec(self.model, dict(self.model_kwargs))

    def data_spec(self, ckpt: Checkpoint | None = None) -> DataSpec:
        """The data named, falling back to what ``ckpt`` was trained on (then ``digits``)."""
        if self.data is None and ckpt is not None and isinstance(ckpt.meta.get("data"), dict):
            base = DataSpec.from_dict(ckpt.meta["data"])
            return DataSpec(name=base.name,
                            root=self.root if self.root is not None else base.root,
                            subset=self.subset if self.subset is not None else base.subset,
                            kwargs=dict(self.kwargs) or dict(base.kwargs))
        return DataSpec(name=self.data or "digits", root=self.root, subset=self.subset,
                        kwargs=dict(self.kwargs))

    def load(self, path: str | os.PathLike) -> Checkpoint:
        """Load the checkpoint at ``path`` (its model in :attr:`dtype`).

        With both ``model`` and ``data`` named, the architecture is adapted to the data (input
        channels, classes, ...) as :func:`~landscape.training.train` builds it
        (:func:`~landscape.models.adapt_to_data`).
        """
        spec = self.model_spec()
        if spec is not None and self.data is not None:
            spec = adapt_to_data(spec, load_data(self.data_spec(), "train"))
        ckpt = load_checkpoint(path, model=spec, trust=self.trust, state_key=self.state_key,
                               prefix=self.prefix)
        if self.dtype is not None:
            ckpt.model.to(self.dtype)
        return ckpt

    def datasets(self, ckpt: Checkpoint, splits: Sequence[str]) -> dict[str, TensorData]:
        """The splits of the data for ``ckpt``, checked against its model's inputs."""
        spec = self.data_spec(ckpt)
        out = {s: load_data(spec, s) for s in splits}
        for d in out.values():  # every split: token ids are checked against each
            check_compatible(ckpt.model, d)
        return out
