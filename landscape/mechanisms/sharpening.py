"""Sharpening along training and the edge of stability (Cohen et al., 2021).

For every checkpoint of a run: the top Hessian eigenvalues ``lambda_max`` (Lanczos,
:func:`~landscape.hessian.top_eigen`) and the trace (Hutch++,
:func:`~landscape.hessian.hutchpp`) of the training loss on a fixed subset, beside the stability
threshold ``2 / eta`` of gradient descent with step ``eta`` and ``(2 + 2 beta) / eta`` with
heavy-ball momentum ``beta``. ``eta`` at checkpoint ``e`` is the learning rate of the step
that follows it (:func:`~landscape.training.lr_at_step` in epoch ``e + 1``, warmup included;
the last epoch's rate for the final checkpoint).

Also, for each step between consecutive checkpoints ``d = theta_{e+1} - theta_e`` (an epoch
of SGD steps, the finest resolution a run on disk has), the fraction of ``||d||^2`` inside
the top-``k`` Hessian eigenspace at ``theta_e`` and inside the PCA plane of the whole
trajectory (the top two principal directions of ``theta_e - theta_final``): the
"low-dimensional descent path" question, asked step by step.

Adam (Cohen et al., 2022). For a run trained with AdamW, the curvature Adam feels is that of
the preconditioned Hessian ``P^{-1} H``, ``P = diag(sqrt(v_hat) + eps)`` from the bias-corrected
second moments stored in each checkpoint (:func:`~landscape.optim.adam_preconditioner`); its top
eigenvalues are those of the symmetric ``P^{-1/2} H P^{-1/2}``
(:class:`~landscape.hessian.PreconditionedOperator`, same Lanczos), stored beside the raw
Hessian's and compared with ``(2 + 2 beta1) / ((1 - beta1) eta)`` (``38 / eta`` for ``beta1 =
0.9``), near which Cohen et al. find them settle. The initialisation (epoch 0) has no second
moment yet: its preconditioned eigenvalues are NaN. The raw ``lambda_max`` of an Adam run is
still stored and drawn against ``2 / eta`` (``momentum`` is 0 there: Adam's ``beta1`` is no
heavy-ball momentum).

BatchNorm. By default (``bn="recalibrate"``) the running statistics of every checkpoint are
recomputed on the same training subset before its Hessian
(:func:`~landscape.hessian.operator.recalibrated_bn`): at epoch 0 they are unset (mean 0,
variance 1), and the eval-mode loss with them is not the loss SGD saw -- a residual-56 at
initialisation measured 336 nats there, and a lambda_max of 85,178 against 0.18 for its plain
twin, an order that reverses (1,301 against 2.2e6) once the statistics are recalibrated.
:attr:`SharpeningResult.bn` records what was done.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .. import storage
from ..checkpoints import load_checkpoint
from ..data import load_data
from ..errors import LandscapeError, check_float, check_int, check_option
from ..hessian import HessianOperator, PreconditionedOperator, hutchpp, top_eigen
from ..hessian.operator import BN_OPTIONS
from ..losses import loss_name
from ..training import TrainRun, lr_at_step
from ._common import Result, as_xy

__all__ = ["SharpeningResult", "sharpening", "sharpening_of_run"]


@dataclass(frozen=True)
class SharpeningResult(Result):
    """Curvature at every checkpoint of a run.

    Attributes
    ----------
    epochs : np.ndarray of int
        Epoch of each checkpoint.
    lr : np.ndarray
        Step size ``eta`` at each checkpoint.
    momentum : float
        Heavy-ball momentum ``beta`` of the run.
    eigenvalues : np.ndarray, shape (n, k)
        Top ``k`` Hessian eigenvalues (largest algebraic) per checkpoint.
    converged : np.ndarray of bool, shape (n, k)
        Whether each eigenpair met the tolerance (NaN is never stored for a bad pair: look
        here).
    trace : np.ndarray, shape (n,)
        Hutch++ estimate of the trace.
    step_in_topk : np.ndarray, shape (n - 1,)
        Fraction of each step inside the top-``k`` eigenspace at its start (NaN for a zero
        step).
    step_in_pca : np.ndarray, shape (n - 1,)
        Fraction of each step inside the trajectory's PCA plane (NaN with fewer than three
        checkpoints).
    n_samples : int
        Samples of the training loss.
    bn : str
        BatchNorm statistics of the Hessians: ``"recalibrated"`` (recomputed on the samples
        at every checkpoint), ``"eval"`` (each checkpoint's own running statistics) or ``"no
        batchnorm"`` (the model keeps none). Files written before this field read as
        ``"eval"``.
    optimizer : {"sgd", "adamw"}
        The run's optimizer (files written before this field read as ``"sgd"``).
    beta1 : float or None
        Adam's ``beta1`` (``None`` for SGD).
    precond_eigenvalues : np.ndarray, shape (n, k), or None
        Top ``k`` eigenvalues of ``P^{-1} H`` per checkpoint (NaN where ``P`` is undefined: the
        initialisation); ``None`` without a preconditioner (SGD).
    precond_converged : np.ndarray of bool, shape (n, k), or None
        Whether each of them met the tolerance.
    """

    GROUP: ClassVar[str] = "sharpening"
    LABEL: ClassVar[str] = "run"

    epochs: np.ndarray
    lr: np.ndarray
    momentum: float
    eigenvalues: np.ndarray
    converged: np.ndarray
    trace: np.ndarray
    step_in_topk: np.ndarray
    step_in_pca: np.ndarray
    n_samples: int
    bn: str = "eval"
    optimizer: str = "sgd"
    beta1: float | None = None
    precond_eigenvalues: np.ndarray | None = None
    precond_converged: np.ndarray | None = None

    @property
    def lambda_max(self) -> np.ndarray:
        """The top eigenvalue per checkpoint."""
        return self.eigenvalues[:, 0]

    @property
    def threshold(self) -> np.ndarray:
        """``2 / eta`` per checkpoint."""
        return 2.0 / self.lr

    @property
    def threshold_momentum(self) -> np.ndarray:
        """``(2 + 2 beta) / eta`` per checkpoint."""
        return (2.0 + 2.0 * self.momentum) / self.lr

    @property
    def precond_lambda_max(self) -> np.ndarray | None:
        """The top eigenvalue of ``P^{-1} H`` per checkpoint (``None`` for SGD)."""
        return None if self.precond_eigenvalues is None else self.precond_eigenvalues[:, 0]

    @property
    def threshold_adam(self) -> np.ndarray | None:
        """``(2 + 2 beta1) / ((1 - beta1) eta)`` per checkpoint (``None`` for SGD)."""
        if self.beta1 is None:
            return None
        from ..optim import adam_threshold

        return adam_threshold(self.beta1, self.lr)

    def numbers(self) -> dict[str, float]:
        """Headline numbers: final and peak ``lambda_max`` relative to the threshold, the rise
        from the first checkpoint, and the mean step fractions; for an Adam run also the
        final ``lambda_max(P^-1 H)`` and its final and peak ratios to the Adam threshold."""
        thr = self.threshold_momentum
        extra = {}
        pre = self.precond_lambda_max
        if pre is not None:
            ratio = pre / self.threshold_adam
            extra = {
                "sharpening_precond_lambda_max_final": float(pre[-1]),
                "sharpening_precond_final_over_threshold": float(ratio[-1]),
                "sharpening_precond_peak_over_threshold": float(np.nanmax(ratio))
                if np.isfinite(ratio).any() else float("nan"),
            }
        return {
            "sharpening_lambda_max_first": float(self.lambda_max[0]),
            "sharpening_lambda_max_final": float(self.lambda_max[-1]),
            "sharpening_peak_over_threshold": float(np.max(self.lambda_max / thr)),
            "sharpening_step_in_topk_mean": float(np.nanmean(self.step_in_topk))
            if np.isfinite(self.step_in_topk).any() else float("nan"),
            "sharpening_step_in_pca_mean": float(np.nanmean(self.step_in_pca))
            if np.isfinite(self.step_in_pca).any() else float("nan"),
            **extra,
        }


def _fraction(v: np.ndarray, basis: np.ndarray) -> float:
    """Share of ``||v||^2`` in the span of the orthonormal columns of ``basis``."""
    n2 = float(v @ v)
    if n2 == 0.0:
        return float("nan")
    return float(np.sum((basis.T @ v) ** 2) / n2)


def sharpening(
    models: Sequence[nn.Module],
    data: Any,
    *,
    lrs: Sequence[float],
    momentum: float = 0.0,
    epochs: Sequence[int] | None = None,
    k: int = 1,
    n_trace: int = 30,
    loss: Any = "cross_entropy",
    tol: float = 1e-3,
    max_hvp: int = 300,
    batch_size: int = 512,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    params: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    include_frozen: bool = False,
    bn: str = "recalibrate",
    preconditioners: Sequence[Any] | None = None,
    beta1: float | None = None,
) -> SharpeningResult:
    """Top eigenvalues, trace and step fractions at a sequence of checkpoints.

    Parameters
    ----------
    models : sequence of nn.Module
        The checkpoints in training order (same architecture).
    data : TensorData or (x, y)
        Samples of the training loss.
    lrs : sequence of float
        Step size at each checkpoint.
    momentum : float, default=0.0
        Heavy-ball momentum ``beta``.
    epochs : sequence of int, optional
        Epoch of each checkpoint (default ``0, 1, ...``).
    k : int, default=1
        Top eigenpairs per checkpoint (also the eigenspace of ``step_in_topk``).
    n_trace : int, default=30
        Hutch++ products per checkpoint (0: no trace, stored as NaN).
    loss : str or callable, default="cross_entropy"
        See :class:`~landscape.hessian.HessianOperator`.
    tol, max_hvp : float, int
        Lanczos tolerance and budget, see :func:`~landscape.hessian.top_eigen`.
    batch_size : int, default=512
        Samples per forward pass.
    dtype : torch.dtype, optional
        Dtype of the Hessian-vector products (default: the models').
    device : torch.device or str, optional
        Where to compute (the models are moved there; default: where they are).
    params, exclude, include_frozen
        The tensors of the Hessian and of the steps (see
        :func:`~landscape.parameters.select_parameters`; default: every trainable parameter).
    bn : {"recalibrate", "eval"}, default="recalibrate"
        BatchNorm running statistics of each checkpoint's loss: recomputed on ``data`` first
        (see the module docstring), or the checkpoint's own (``"eval"``, meaningless where they
        are unset, e.g. at epoch 0).
    preconditioners : sequence of (dict of str to Tensor or None), optional
        Adam's diagonal preconditioner ``P`` at each checkpoint, by parameter name (see
        :func:`~landscape.optim.adam_preconditioner`; ``None`` where undefined): the top ``k``
        eigenvalues of ``P^{-1} H`` are computed too. Needs ``beta1``.
    beta1 : float, optional
        Adam's ``beta1`` of the threshold ``(2 + 2 beta1) / ((1 - beta1) eta)``; only with
        ``preconditioners``.

    Returns
    -------
    SharpeningResult

    References
    ----------
    .. [1] J. Cohen, S. Kaur, Y. Li, J. Z. Kolter and A. Talwalkar, "Gradient Descent on Neural
       Networks Typically Occurs at the Edge of Stability", ICLR 2021.
    .. [2] J. Cohen et al., "Adaptive Gradient Methods at the Edge of Stability", 2022.
    """
    models = list(models)
    if not models:
        raise LandscapeError("The 'models' parameter must hold at least one checkpoint")
    lr = np.array([check_float("lr", v, 0.0, closed="neither") for v in lrs], dtype=float)
    if len(lr) != len(models):
        raise LandscapeError(f"got {len(lr)} learning rates for {len(models)} checkpoints")
    momentum = check_float("momentum", momentum, 0.0, 1.0, closed="left")
    k = check_int("k", k, 1)
    n_trace = check_int("n_trace", n_trace, 0)
    if n_trace and n_trace < 3:
        raise LandscapeError(f"n_trace must be 0 or at least 3; got {n_trace}")
    check_option("bn", bn, BN_OPTIONS)
    if (preconditioners is None) != (beta1 is None):
        raise LandscapeError("The 'preconditioners' and 'beta1' parameters go together: pass "
                             "both (an Adam run) or neither")
    if preconditioners is not None:
        preconditioners = list(preconditioners)
        if len(preconditioners) != len(models):
            raise LandscapeError(f"got {len(preconditioners)} preconditioners for "
                                 f"{len(models)} checkpoints")
        beta1 = check_float("beta1", beta1, 0.0, 1.0, closed="left")
    xy = as_xy(data)
    eig, conv, tr, thetas, bases, bn_done = [], [], [], [], [], []
    pre_eig, pre_conv = [], []
    for i, m in enumerate(models):
        if device is not None:
            m = m.to(device)
        op = HessianOperator(m, xy, loss=loss, batch_size=batch_size, dtype=dtype,
                             params=params, exclude=exclude, include_frozen=include_frozen,
                             bn=bn, bn_batch_size=batch_size)
        bn_done.append(op.bn)
        r = top_eigen(op, k, which="LA", tol=tol, max_hvp=max_hvp)
        eig.append(r.eigenvalues)
        conv.append(r.converged)
        bases.append(r.eigenvectors)
        tr.append(hutchpp(op, n_trace).estimate if n_trace else np.nan)
        if preconditioners is not None:
            if preconditioners[i] is None:  # e.g. the initialisation: no second moment yet
                pre_eig.append(np.full(k, np.nan))
                pre_conv.append(np.zeros(k, dtype=bool))
            else:
                rp = top_eigen(PreconditionedOperator(op, preconditioners[i]), k, which="LA",
                               tol=tol, max_hvp=max_hvp)
                pre_eig.append(rp.eigenvalues)
                pre_conv.append(rp.converged)
        named = dict(m.named_parameters())
        thetas.append(op.flatten({n: named[n].detach() for n in op.names}).double().cpu()
                      .numpy())
    theta = np.stack(thetas)
    steps = np.diff(theta, axis=0)
    in_topk = np.array([_fraction(d, bases[i]) for i, d in enumerate(steps)])
    if len(theta) >= 3:
        _, _, vt = np.linalg.svd(theta - theta[-1], full_matrices=False)
        plane = vt[:2].T
        in_pca = np.array([_fraction(d, plane) for d in steps])
    else:
        in_pca = np.full(len(steps), np.nan)
    return SharpeningResult(
        epochs=np.arange(len(models)) if epochs is None else np.asarray(epochs, dtype=int),
        lr=lr, momentum=momentum, eigenvalues=np.array(eig, dtype=float),
        converged=np.array(conv, dtype=bool), trace=np.array(tr, dtype=float),
        step_in_topk=in_topk, step_in_pca=in_pca, n_samples=int(len(xy[0])),
        bn="recalibrated" if "recalibrated" in bn_done else bn_done[0],
        optimizer="sgd" if preconditioners is None else "adamw", beta1=beta1,
        precond_eigenvalues=None if preconditioners is None else np.array(pre_eig, dtype=float),
        precond_converged=None if preconditioners is None else np.array(pre_conv, dtype=bool),
    )


def sharpening_of_run(run_dir: str | os.PathLike, *, subset: int | None = 256, every: int = 1,
                      out: str | os.PathLike | None = None, overwrite: bool = False,
                      **kwargs: Any) -> SharpeningResult:
    """:func:`sharpening` over the checkpoints of a training run (``landscape train`` output).

    For an AdamW run, also the top eigenvalues of ``P^{-1} H`` with Adam's preconditioner from
    the second moments stored in each checkpoint, against ``(2 + 2 beta1) / ((1 - beta1)
    eta)`` (see the module docstring).

    Parameters
    ----------
    run_dir : path
        The run directory (its ``run.json`` gives the data, the schedule, the warmup, the
        optimizer and its momentum or betas). ``eta`` at a checkpoint is the rate of the step
        that follows it (:func:`~landscape.training.lr_at_step`).
    subset : int or None, default=256
        Training samples of the loss (``None``: the run's whole training split).
    every : int, default=1
        Use every ``every``-th checkpoint (the last one always).
    out : path, optional
        Also write the result to this landscape file's ``/sharpening`` group, with the run
        directory and the recipe (loss, dtype, parameter selection) as attributes; checked
        before any computation. Other groups of the file are kept.
    overwrite : bool, default False
        Replace an existing landscape file ``out`` instead of adding to it.
    **kwargs
        Passed to :func:`sharpening` (``k``, ``n_trace``, ``tol``, ...).
    """
    if out is not None:
        storage.check_writable(out, overwrite=overwrite)
    res = _sharpening_of_run(run_dir, subset, every, kwargs)
    if out is not None:
        dtype = kwargs.get("dtype")  # None: each checkpoint's own
        recipe = {"loss": loss_name(kwargs.get("loss", "cross_entropy")),
                  "dtype": "checkpoint" if dtype is None else str(dtype).replace("torch.", ""),
                  **{k: kwargs[k] for k in ("params", "exclude", "include_frozen")
                     if kwargs.get(k)}}
        res.save(out, attrs={"run_dir": str(run_dir), "recipe": storage.dumps(recipe)},
                 overwrite=overwrite)
    return res


def _sharpening_of_run(run_dir: str | os.PathLike, subset: int | None, every: int,
                       kwargs: dict[str, Any]) -> SharpeningResult:
    run = TrainRun.load(run_dir)
    every = check_int("every", every, 1)
    idx = list(range(0, len(run.checkpoints), every))
    if not idx:
        raise LandscapeError(f"training run '{run_dir}' has no checkpoints")
    if idx[-1] != len(run.checkpoints) - 1:
        idx.append(len(run.checkpoints) - 1)
    data = load_data(run.data, "train").subset(subset)
    epochs = [int(run.history[i]["epoch"]) for i in idx]
    n_ep = run.config.epochs
    steps = [int(run.history[i]["step"]) for i in idx]
    lrs = [lr_at_step(run.config, min(e + 1, n_ep), s) for e, s in zip(epochs, steps,
                                                                        strict=True)]
    with torch.no_grad():
        models = [load_checkpoint(run.checkpoints[i]).model for i in idx]
    if run.config.optimizer != "adamw":
        return sharpening(models, data, lrs=lrs, momentum=run.config.momentum, epochs=epochs,
                          **kwargs)
    from ..checkpoints import load_optimizer_state
    from ..optim import adam_preconditioner

    pre = []
    for i, m in zip(idx, models, strict=True):
        state = load_optimizer_state(run.checkpoints[i])
        if state is None:
            raise LandscapeError(f"checkpoint '{run.checkpoints[i]}' of the AdamW run holds no "
                                 "optimizer state; retrain it with this version of landscape")
        names = [n for n, _ in m.named_parameters()]
        pre.append(adam_preconditioner(state, names) if state["exp_avg_sq"] else None)
    return sharpening(models, data, lrs=lrs, momentum=0.0, epochs=epochs, preconditioners=pre,
                      beta1=run.config.betas[0], **kwargs)
