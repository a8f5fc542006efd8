"""The loss of a model on a batch: a sum over counted examples and its weight.

Every computation of the package (surfaces, Hessian operators, ascent, training) asks a
:class:`BatchLoss` for ``(total, weight)`` on each batch and divides the sums over the data set,

.. math:: L = \\frac{\\sum_b \\mathrm{total}_b}{\\sum_b \\mathrm{weight}_b},

so the data-set loss is the mean over every counted example (sample or token) whatever the
batch size or padding.

Built-in losses
---------------
``"cross_entropy"``
    Integer class targets only (float targets are a :class:`~landscape.errors.LandscapeError`).
    Logits ``(B, C)`` with targets ``(B,)``: per-sample cross-entropy. Sequence logits
    ``(B, T, V)`` with targets ``(B, T)`` (or torch's ``(B, C, d1, ...)`` with ``(B, d1, ...)``):
    per-token cross-entropy; targets equal to ``-100`` (``ignore_index``) are not counted. The
    weight is the number of counted targets.

    HuggingFace causal LMs shift their labels inside the model (the logits at position ``t``
    predict label ``t + 1``). The rule: when a mapping batch carries ``labels`` and the model
    returns its own ``.loss``, the first batch decides (:meth:`BatchLoss.calibrate`) whether
    the unshifted or the shifted token cross-entropy equals that ``.loss``, and that one is
    used for every batch; if neither does, it is an error. Since both the model's ``.loss``
    and ours are means over the same counted tokens, summing ``total`` and ``weight`` over
    batches gives exactly the model's ``.loss`` on the whole split as one batch.
``"mse"``
    Per-sample mean squared error (integer class targets of ``(B, C)`` outputs are one-hot
    encoded); weight ``B``. No accuracy.

User losses
-----------
``"package.module:function"`` names (resolved by the CLI) or callables, either

- ``f(output, target)``: ``output`` is the model's logits tensor (see
  :func:`landscape.batches.output_logits`); ``target`` is ``y`` for tuple batches and the
  whole mapping for mapping batches; or
- ``f(model, batch)`` (first parameter named ``model``): ``model`` is called like the network
  (at the perturbed parameters) and ``batch`` is the whole batch.

Either returns per-sample losses ``(B,)`` (weight ``B``), their mean (a scalar, weight ``B``)
or a pair ``(total, weight)``.

Accuracy is defined only for integer targets whose shape fits the logits (class logits: per
sample; sequences: per counted token); regression targets have none (``None``, never 0.0).

Per-sample terms (for standard errors)
--------------------------------------
:meth:`LossTerms.sample_terms` gives each sample's loss sum and weight in float64: the
per-sample losses with weight 1 (class logits, ``mse``, user losses returning ``(B,)``), or,
for sequence (and other per-position) cross-entropy, the sum of a sequence's counted token
losses with the number of its counted tokens as weight. The sample, not the token, is the
unit because tokens of one sequence are not independent draws. User losses that return a
mean or ``(total, weight)`` give no per-sample terms (``None``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._imports import import_object
from .batches import batch_len, split_batch
from .batches import output_logits as _logits_of
from .batches import output_loss as _own_loss_of
from .errors import LandscapeError

__all__ = ["IGNORE_INDEX", "BUILTIN_LOSSES", "BatchLoss", "LossTerms", "resolve_loss",
           "loss_name", "import_loss"]

IGNORE_INDEX = -100
BUILTIN_LOSSES = ("cross_entropy", "mse")
_CUSTOM_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_MODEL_PARAM_NAMES = ("model", "net", "module", "network")


@dataclass(frozen=True)
class LossTerms:
    """One batch's contribution: ``total / weight`` is its mean loss.

    Attributes
    ----------
    total : Tensor
        Sum of the counted examples' losses (a scalar, differentiable).
    weight : Tensor
        Number of counted examples (a float64 scalar, not differentiable).
    correct, counted : Tensor or None
        Correct predictions and predictions counted for accuracy; ``None`` where accuracy is
        undefined.
    per : Tensor or None
        The counted examples' losses one by one (built-in losses), so that evaluations can
        sum them in float64 (``total`` sums them in the model's dtype, as gradients need).
    sample_total, sample_weight : Tensor or None
        Per-position losses grouped by sample (sequence cross-entropy): each sample's sum of
        counted losses and its number of counted positions, ``(B,)`` float64, detached.
        ``None`` where ``per`` holds one loss per sample already.
    """

    total: Tensor
    weight: Tensor
    correct: Tensor | None = None
    counted: Tensor | None = None
    per: Tensor | None = None
    sample_total: Tensor | None = None
    sample_weight: Tensor | None = None

    def total_float64(self) -> Tensor:
        """``total`` summed in float64 from the per-example losses where they are known."""
        return self.per.double().sum() if self.per is not None else self.total.double()

    def sample_terms(self) -> tuple[Tensor, Tensor] | None:
        """Each sample's ``(loss sum, weight)`` in float64 (detached), for the standard error
        of the data-set mean; ``None`` when the loss gave no per-sample values (see the module
        docstring). A sample with weight 0 (every token ignored) has loss sum 0."""
        if self.sample_total is not None and self.sample_weight is not None:
            return self.sample_total, self.sample_weight
        if self.per is None:
            return None
        t = self.per.detach().double().reshape(-1)
        return t, torch.ones_like(t)


def _check_ce_target(y: Tensor | None) -> Tensor:
    if y is None:
        raise LandscapeError(
            "cross_entropy needs targets: batches must be (x, y) or carry 'labels'"
        )
    if not isinstance(y, Tensor):
        y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise LandscapeError(
            f"cross_entropy needs integer class targets, got {y.dtype} targets; use "
            "loss='mse' for regression"
        )
    return y


def _class_dim_last(z: Tensor, y: Tensor) -> bool | None:
    """Layout of logits against targets: True ``(B, ..., C)``, False ``(B, C, ...)``, None:
    a mismatch."""
    if z.ndim != y.ndim + 1 or z.shape[0] != y.shape[0]:
        return None
    if y.ndim == 1:
        return True
    if tuple(z.shape[:-1]) == tuple(y.shape):
        return True  # (B, T, V), HuggingFace's layout (preferred when both fit)
    if tuple(z.shape[2:]) == tuple(y.shape[1:]):
        return False  # (B, C, d1, ...), torch's layout
    return None


class BatchLoss:
    """``(output, batch) -> LossTerms`` for one loss specification (see the module docstring).

    Parameters
    ----------
    spec : str or callable
        ``"cross_entropy"``, ``"mse"``, ``"package.module:function"`` or a callable.
    """

    def __init__(self, spec: Any) -> None:
        if isinstance(spec, BatchLoss):
            spec = spec.spec
        self.spec = spec
        self.shift: bool | None = None  # cross-entropy on HF causal LMs, see calibrate()
        if isinstance(spec, str):
            if spec in BUILTIN_LOSSES:
                self.fn: Callable[..., Any] | None = None
            elif _CUSTOM_NAME.match(spec):
                self.fn = import_loss(spec)
            else:
                raise LandscapeError(
                    f"The 'loss' parameter must be one of {BUILTIN_LOSSES}, "
                    f"'package.module:function' or a callable. Got {spec!r} instead."
                )
        elif callable(spec):
            self.fn = spec
        else:
            raise LandscapeError(
                f"The 'loss' parameter must be one of {BUILTIN_LOSSES} or a callable. "
                f"Got {spec!r} instead."
            )
        self.takes_model = self.fn is not None and _first_param(self.fn) in _MODEL_PARAM_NAMES
        self.name = loss_name(spec)

    @property
    def builtin(self) -> str | None:
        """``"cross_entropy"``, ``"mse"`` or ``None`` for a user loss."""
        return self.spec if self.fn is None else None

    # -- checks before computing --------------------------------------------------------
    def check_batch(self, batch: Any) -> None:
        """Refuse, in one line, targets this loss cannot take (before any computation)."""
        if self.builtin == "cross_entropy":
            _check_ce_target(split_batch(batch)[2])
        elif self.builtin == "mse" and split_batch(batch)[2] is None:
            raise LandscapeError("mse needs targets: batches must be (x, y) or carry 'labels'")

    def calibrate(self, out: Any, batch: Any) -> None:
        """Decide, outside any transform, how sequence cross-entropy lines up with the model's
        own ``.loss`` (shifted or not; see the module docstring). Call it on one real batch
        before computing; later calls do nothing."""
        if self.builtin != "cross_entropy" or self.shift is not None:
            return
        _, kwargs, y = split_batch(batch)
        own = _own_loss_of(out)
        z = _logits_of(out)
        if own is None or not kwargs or y is None or z.ndim != 3 or y.ndim != 2:
            self.shift = False
            return
        y = _check_ce_target(y)
        own_v = float(own.detach().double())
        if not math.isfinite(own_v):
            return  # decide on a later batch
        vals = {}
        for shift in (False, True):
            t = self._ce_terms(z.detach(), y, shift)
            vals[shift] = float(t.total.double()) / max(float(t.weight), 1.0)
        for shift in (False, True):
            if math.isclose(vals[shift], own_v, rel_tol=1e-4, abs_tol=1e-6):
                self.shift = shift
                return
        raise LandscapeError(
            f"the model's own .loss ({own_v:.6g}) is neither the token cross-entropy of its "
            f"logits against 'labels' ({vals[False]:.6g}) nor that with labels shifted by one "
            f"({vals[True]:.6g}); pass your own loss function (loss='package.module:function')"
        )

    # -- values ---------------------------------------------------------------------------
    def weight(self, batch: Any) -> float | None:
        """The batch's weight from its targets alone, or ``None`` when only the loss value
        tells (user losses returning ``(total, weight)``)."""
        if self.builtin == "cross_entropy":
            y = _check_ce_target(split_batch(batch)[2])
            if self.shift:
                y = y[:, 1:]
            return float((y != IGNORE_INDEX).sum())
        if self.fn is not None:
            return None  # a user loss may return (total, weight): only its value tells
        return float(batch_len(batch))

    def terms(self, out: Any, batch: Any, accuracy: bool = False) -> LossTerms:
        """Loss terms of ``out = model(batch)``; with ``accuracy``, also the correct and
        counted predictions where accuracy is defined (integer targets whose shape fits the
        logits, see :meth:`accuracy_terms`)."""
        _, kwargs, y = split_batch(batch)
        z = _logits_of(out)
        if self.builtin == "cross_entropy":
            t = self._ce_terms(z, _check_ce_target(y), bool(self.shift))
        elif self.builtin == "mse":
            if y is None:
                raise LandscapeError("mse needs targets: batches must be (x, y) or carry 'labels'")
            per = _mse(z, y)
            t = LossTerms(per.sum(), _count(per.shape[0], z), per=per)
        else:
            assert self.fn is not None
            t = self._user_terms(self.fn(z, batch if kwargs else y), batch, z)
        if not accuracy:
            return t
        acc = self.accuracy_terms(z, y)
        if acc is None:
            return t
        return dataclasses.replace(t, correct=acc[0], counted=acc[1])

    def accuracy_terms(self, z: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor] | None:
        """``(correct, counted)`` of the argmax of logits ``z`` against integer targets ``y``
        (tokens equal to -100 not counted; the same label shift as the loss), ``None`` where
        accuracy is undefined (no or float targets, or shapes that are not class logits)."""
        if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex():
            return None
        if self.shift and z.ndim == 3 and y.ndim == 2:
            z, y = z[:, :-1], y[:, 1:]
        last = _class_dim_last(z, y)
        if last is None:
            return None
        pred = z.argmax(dim=-1 if last else 1)
        y = y.to(pred.device)
        keep = y != IGNORE_INDEX
        return ((pred == y) & keep).sum(), keep.sum()

    def model_terms(self, model: Callable[..., Any], batch: Any, accuracy: bool = False
                    ) -> LossTerms:
        """Loss terms of ``model`` on ``batch`` (calls the model unless the loss does)."""
        if self.takes_model:
            assert self.fn is not None
            val = self.fn(model, batch)
            ref = val[0] if isinstance(val, tuple | list) else val
            return self._user_terms(val, batch, ref if isinstance(ref, Tensor) else None)
        args, kwargs, _ = split_batch(batch)
        return self.terms(model(*args, **kwargs), batch, accuracy)

    def _user_terms(self, val: Any, batch: Any, ref: Tensor | None) -> LossTerms:
        if isinstance(val, tuple | list) and len(val) == 2:
            total, w = val
            total = torch.as_tensor(total)
            w = torch.as_tensor(w, dtype=torch.float64).detach()
            return LossTerms(total.reshape(()), w.to(total.device).reshape(()))
        if not isinstance(val, Tensor):
            val = torch.as_tensor(val, dtype=ref.dtype if ref is not None else None)
        n = batch_len(batch)
        if val.ndim == 0:
            return LossTerms(val * n, _count(n, val))
        if val.shape[0] != n:
            raise LandscapeError(
                f"loss {self.name} returned shape {tuple(val.shape)} for a batch of {n}; "
                "return per-sample losses (B,), their mean or a pair (total, weight)"
            )
        per = val.reshape(n, -1).mean(dim=1) if val.ndim > 1 else val
        return LossTerms(per.sum(), _count(n, val), per=per)

    @staticmethod
    def _ce_terms(z: Tensor, y: Tensor, shift: bool) -> LossTerms:
        if shift:
            z, y = z[:, :-1], y[:, 1:]
        last = _class_dim_last(z, y)
        if last is None:
            raise LandscapeError(
                f"cross_entropy got logits of shape {tuple(z.shape)} for targets of shape "
                f"{tuple(y.shape)}; expected (B, C) for (B,), or (B, T, C) / (B, C, T) for "
                "(B, T)"
            )
        y = y.to(device=z.device, dtype=torch.int64)
        if last:
            flat_z, flat_y = z.reshape(-1, z.shape[-1]), y.reshape(-1)
        else:
            flat_z = z.movedim(1, -1).reshape(-1, z.shape[1])
            flat_y = y.reshape(-1)
        per = F.cross_entropy(flat_z, flat_y, reduction="none", ignore_index=IGNORE_INDEX)
        keep = flat_y != IGNORE_INDEX
        counted = keep.sum()
        sample_total = sample_weight = None
        if y.ndim > 1:  # several positions per sample: group them by sample (module docstring)
            b = y.shape[0]
            sample_total = per.detach().double().reshape(b, -1).sum(dim=1)
            sample_weight = keep.reshape(b, -1).sum(dim=1).double()
        return LossTerms(per.sum(), counted.to(torch.float64), per=per[keep],
                         sample_total=sample_total, sample_weight=sample_weight)


def _count(n: int, like: Tensor) -> Tensor:
    return torch.tensor(float(n), dtype=torch.float64, device=like.device)


def _mse(out: Tensor, y: Tensor) -> Tensor:
    y = y.to(out.device)
    if not y.is_floating_point() and out.ndim == 2 and y.ndim == 1:
        y = F.one_hot(y.long(), out.shape[1]).to(out.dtype)
    if y.numel() != out.numel():
        raise LandscapeError(
            f"mse got outputs of shape {tuple(out.shape)} for targets of shape "
            f"{tuple(y.shape)}; they must have as many elements"
        )
    y = y.to(out.dtype).reshape(out.shape)
    return (out - y).pow(2).reshape(out.shape[0], -1).mean(dim=1)


def _first_param(fn: Callable[..., Any]) -> str | None:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    return params[0] if params else None


def import_loss(name: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``; a one-line error when it cannot."""
    return import_object(name, what="loss")


def resolve_loss(loss: Any) -> BatchLoss:
    """The :class:`BatchLoss` of a loss specification (a fresh one for every computation)."""
    return BatchLoss(loss)


def loss_name(loss: Any) -> str:
    """A printable, storable name for a loss specification."""
    if isinstance(loss, BatchLoss):
        return loss.name
    if isinstance(loss, str):
        return loss
    mod = getattr(loss, "__module__", None) or "?"
    name = getattr(loss, "__qualname__", None) or type(loss).__qualname__
    return f"{mod}:{name}"
