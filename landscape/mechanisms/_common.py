"""Helpers shared by the mechanism analyses: data, modes, losses and result storage."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from .. import storage
from ..errors import LandscapeError

__all__ = ["Linearization", "Result", "as_xy", "error_rate", "eval_mode", "loss_sum_mean",
           "model_dtype", "per_sample_loss", "qm", "save_results", "to_model"]


def as_xy(data: Any, n: int | None = None) -> tuple[Tensor, Tensor]:
    """``(x, y)`` tensors of a data set (anything with ``.x`` and ``.y``, or a pair), the first
    ``n`` samples when ``n`` is given."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    elif hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    else:
        raise LandscapeError(
            f"The 'data' parameter must have .x and .y tensors or be an (x, y) pair. "
            f"Got {type(data).__name__} instead."
        )
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or len(x) != len(y) or len(x) == 0:
        raise LandscapeError("The 'data' parameter must hold equally long, non-empty x and y")
    if n is not None:
        x, y = x[:n], y[:n]
    return x, y


def model_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first floating parameter."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def to_model(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs cast to the model's device and dtype (integer inputs keep theirs)."""
    device, dtype = model_dtype(model)
    x = x.to(device=device, dtype=dtype if x.is_floating_point() else None)
    return x, y.to(device)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put the model in eval mode (BatchNorm uses its running statistics: no sample sees
    another) and restore every module's training flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, t in flags:
            m.training = t


def per_sample_loss(out: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy per sample for class targets, squared error per sample for float ones."""
    if y.is_floating_point():
        return (out - y.reshape(out.shape)).pow(2).reshape(out.shape[0], -1).sum(1)
    return nn.functional.cross_entropy(out, y, reduction="none")


def loss_sum_mean(out: Tensor, x: Tensor, y: Tensor, loss: Any = None) -> tuple[Tensor, Tensor]:
    """Sum and mean of the per-sample losses of a batch: :func:`per_sample_loss` by default,
    else the ``total`` and ``total / weight`` of a :mod:`landscape.losses` loss (a built-in
    name, a callable or a :class:`~landscape.losses.BatchLoss`)."""
    if loss is None:
        per = per_sample_loss(out, y)
        return per.sum(), per.mean()
    from ..losses import resolve_loss

    t = resolve_loss(loss).terms(out, (x, y))
    return t.total, t.total / t.weight


@torch.no_grad()
def error_rate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Top-1 classification error of ``model`` on ``(x, y)`` (model already in eval mode)."""
    wrong = 0
    for s in range(0, len(x), batch_size):
        out = model(x[s : s + batch_size])
        wrong += int((out.argmax(1) != y[s : s + batch_size]).sum())
    return wrong / len(x)


def qm(x: Tensor) -> float:
    """Quadratic mean ``sqrt(E[x^2])`` of a tensor of per-sample norms."""
    return math.sqrt(float(x.double().pow(2).mean()))


class Linearization:
    """Forward- and reverse-mode products of a map ``f`` at ``x`` from one forward pass.

    The JVP is the double-backward trick (the VJP ``u -> J^T u`` is linear in ``u``;
    differentiating ``<J^T u, v>`` with respect to ``u`` gives ``J v``), which on CPU is a few
    times faster than :func:`torch.func.jvp` and needs no functorch support from the model.
    """

    def __init__(self, f: Any, x: Tensor) -> None:
        self.x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            self.y = f(self.x)
            self._u = torch.zeros_like(self.y, requires_grad=True)
            (self._g,) = torch.autograd.grad(self.y, self.x, self._u, create_graph=True,
                                             allow_unused=False)

    def jvp(self, v: Tensor) -> Tensor:
        """``J v``."""
        (jv,) = torch.autograd.grad(self._g, self._u, v, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.y) if jv is None else jv.detach()

    def vjp(self, u: Tensor) -> Tensor:
        """``J^T u``."""
        (g,) = torch.autograd.grad(self.y, self.x, u, retain_graph=True, allow_unused=True)
        return torch.zeros_like(self.x) if g is None else g.detach()


def _to_attr(v: Any) -> Any:
    return json.dumps(v, default=str)


@dataclasses.dataclass(frozen=True)
class Result:
    """Base of the small result dataclasses: each field is stored in one HDF5 group, arrays as
    datasets and everything else as JSON attributes; :attr:`GROUP` names the group."""

    GROUP: ClassVar[str] = ""
    #: Legend label of :meth:`plot` when none is given.
    LABEL: ClassVar[str] = "network"

    def plot(self, ax: Any = None, label: str | None = None) -> Any:
        """Draw this result alone with the figure function of its group
        (:data:`landscape.mechanisms.plot.FIGURES`) on ``ax`` (a new figure when ``None``);
        returns the axis."""
        from .plot import FIGURES

        return FIGURES[self.GROUP]({label or self.LABEL: self}, ax=ax)

    def to_group(self) -> storage.Group:
        g = storage.Group(attrs={"kind": type(self).__name__})
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                g.datasets[f.name] = v
            else:
                g.attrs[f.name] = _to_attr(v)
        return g

    @classmethod
    def from_group(cls, g: storage.Group) -> Result:
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in g.datasets:
                kw[f.name] = np.asarray(g.datasets[f.name])
            elif f.name in g.attrs:
                kw[f.name] = json.loads(g.attrs[f.name])
            elif f.default is not dataclasses.MISSING:  # a field added later: its default
                kw[f.name] = f.default
            else:
                raise LandscapeError(
                    f"group '{cls.GROUP}' lacks '{f.name}'; it was not written by this version "
                    f"of landscape's {cls.__name__}"
                )
        return cls(**kw)

    def save(self, path: str | os.PathLike, name: str | None = None, *,
             attrs: Mapping[str, Any] | None = None, overwrite: bool = False) -> None:
        """Write (or replace) the group ``name`` (default :attr:`GROUP`) of a landscape file;
        other groups of the file are kept (see :func:`save_results`)."""
        save_results(path, {name or self.GROUP: self},
                     attrs=None if attrs is None else {name or self.GROUP: attrs},
                     overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, name: str | None = None) -> Result:
        """Read the group ``name`` (default :attr:`GROUP`) of a landscape file."""
        name = name or cls.GROUP
        return cls.from_group(storage.require_group(
            path, name, f"has no /{name} group; write it with run_analyses() first"))


def save_results(path: str | os.PathLike, results: Mapping[str, Result], *,
                 attrs: Mapping[str, Mapping[str, Any]] | None = None,
                 overwrite: bool = False) -> None:
    """Write several results into one landscape file at once, each into its group.

    Parameters
    ----------
    path : path
        The landscape file (created if missing; its other groups are kept).
    results : dict
        ``{group name: result}``.
    attrs : dict, optional
        ``{group name: {attribute: value}}``: what the results were computed from (checkpoint,
        SHA-256, dtype, loss, seconds, recipe...), stored as they are beside the fields.
    overwrite : bool, default False
        Replace an existing landscape file instead of adding to it (never a file of another
        kind).
    """
    groups = {}
    for name, res in results.items():
        g = res.to_group()
        g.attrs.update((attrs or {}).get(name, {}))
        groups[name] = g
    storage.update_file(path, groups, overwrite=overwrite)
