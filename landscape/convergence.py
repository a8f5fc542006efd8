"""Is a network at a minimum, and which checkpoint matches another's train loss?

Comparing a converged residual network with a plain one that is still descending compares a
minimum with a point on a slope: λmin, ``|λmin/λmax|``, sharpness, basin widths and barriers
all presuppose a minimum, and curvature falls as the loss falls (residual-56 on the digits:
λmax 980 at train loss 2.1, 43 at 0.01). Two tools make the comparison like for like:

:func:`stationarity`
    tests one network against the progress its training made, ``L_ref - L`` (``L_ref``: the
    loss of a uniform prediction, ``ln C`` for a ``C``-class cross-entropy, else the run's
    first recorded train loss): the full-data gradient against the curvature (a gradient step
    of ``1/λmax`` would lower the loss by ``‖g‖²/(2 λmax)`` on the quadratic model; a minimum
    leaves less than ``tol`` of the progress to gain that way) and, from the run's history,
    the last epochs' train-loss trend (a run whose loss still fell by more than ``trend_tol``
    of its progress over its last ``window`` epochs stopped on a slope). Measured against the
    loss itself instead, no cross-entropy classifier is ever at a minimum (separable data
    have none: ResNet-20 on the digits at train loss 0.039 would still lose 11% of it in one
    step), and a net at a high loss looks stationary once a schedule has annealed its
    learning rate; measured against the progress, a converged ResNet-20 (gain 0.2% of its
    progress) and a plain-56 still on its slope (a 0.05-nat drop in its last 3 epochs, 9% of
    its 0.56-nat progress) are told apart. A net at or above ``L_ref`` has not trained.
:func:`matched_checkpoint`
    finds, in the better-trained run's history, the checkpoint where its train loss reaches
    a target (the other run's final train loss; the nearer of the checkpoints either side),
    so that both are compared at equal train loss as well as at convergence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from .errors import LandscapeError, check_float, check_int, check_option

__all__ = ["Stationarity", "judge", "loss_trend", "matched_checkpoint", "no_progress_loss",
           "stationarity"]


@dataclass(frozen=True)
class Stationarity:
    """Whether a network sits at a minimum, and the numbers that say so.

    Attributes
    ----------
    loss : float
        Full-data loss at θ.
    grad_norm : float
        Euclidean norm of the full-data gradient (over the selected tensors).
    lambda_max : float
        Largest Hessian eigenvalue used for the step (NaN when it was not positive).
    reference_loss : float or None
        ``L_ref``, the loss of no progress (``ln C``, or the run's first train loss).
    gradient_gain : float
        ``‖g‖² / (2 λmax)`` over the progress ``L_ref - L`` (without ``L_ref``: over ``L``):
        the share one gradient step of ``1/λmax`` would add on the local quadratic model
        (NaN when undefined).
    trend : float or None
        The train-loss drop over the last ``window`` epochs of the history, over the same
        denominator (``None`` without a history that long).
    at_minimum : bool
        Both tests passed (the trend test only when a trend is known).
    reason : str or None
        Why not, in words (``None`` when ``at_minimum``).
    """

    loss: float
    grad_norm: float
    lambda_max: float
    reference_loss: float | None
    gradient_gain: float
    trend: float | None
    at_minimum: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN as ``None``)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def judge(loss: float, grad_norm: float, lambda_max: float, *,
          reference_loss: float | None = None,
          history: Sequence[Mapping[str, Any]] | None = None, tol: float = 0.01,
          trend_tol: float = 0.05, window: int = 3) -> Stationarity:
    """The stationarity verdict from measured numbers (see :func:`stationarity`).

    Parameters
    ----------
    loss, grad_norm, lambda_max : float
        Full-data loss, gradient norm and top Hessian eigenvalue at θ.
    reference_loss : float, optional
        ``L_ref``; ``None`` measures against the loss itself.
    history : sequence of dict, optional
        The run's history up to θ (for the trend).
    tol, trend_tol : float
        Largest gradient gain and trend of a minimum, as shares of the progress.
    window : int, default 3

    Returns
    -------
    Stationarity
    """
    tol = check_float("tol", tol, 0.0, closed="neither")
    trend_tol = check_float("trend_tol", trend_tol, 0.0, closed="neither")
    window = check_int("window", window, 1)
    lam = float(lambda_max) if lambda_max is not None else math.nan
    scale = (reference_loss - loss) if reference_loss is not None else loss
    reasons = []
    if reference_loss is not None and scale <= 0:
        reasons.append(f"train loss {loss:.3g} is not below the loss of no progress "
                       f"{reference_loss:.3g}: the network has not trained")
        gain = math.nan
    else:
        gain = grad_norm**2 / (2 * lam * scale) if lam > 0 and scale > 0 else math.nan
    what = "of the progress made" if reference_loss is not None else "of the loss"
    if not reasons:
        if not math.isfinite(gain):
            reasons.append("no positive curvature to judge the gradient by")
        elif gain > tol:
            reasons.append(f"a gradient step of 1/λmax would add {100 * gain:.2g}% {what} "
                           f"(> {100 * tol:g}%)")
    trend = None
    if history and len(history) > window:
        a, b = history[-1 - window].get("train_loss"), history[-1].get("train_loss")
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b) \
                and scale > 0:
            trend = (float(a) - float(b)) / scale
            if trend > trend_tol:
                reasons.append(f"train loss still fell by {100 * trend:.2g}% {what} over the "
                               f"last {window} epochs (> {100 * trend_tol:g}%)")
    return Stationarity(float(loss), float(grad_norm), lam if lam > 0 else math.nan,
                        None if reference_loss is None else float(reference_loss), gain,
                        trend, not reasons, "; ".join(reasons) or None)


def loss_trend(history: Sequence[Mapping[str, Any]], window: int = 3,
               key: str = "train_loss") -> float | None:
    """Relative drop of ``key`` over the last ``window`` entries of a run's history.

    Parameters
    ----------
    history : sequence of dict
        :attr:`landscape.training.TrainRun.history` (one entry per checkpoint, in order).
    window : int, default 3
        Entries back from the last one.
    key : str, default "train_loss"

    Returns
    -------
    float or None
        ``(L[-1-window] - L[-1]) / L[-1]`` (positive: still falling), ``None`` when the history
        is shorter than ``window + 1`` entries or a value is missing or not finite.
    """
    window = check_int("window", window, 1)
    if len(history) < window + 1:
        return None
    a, b = history[-1 - window].get(key), history[-1].get(key)
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return None
    return (float(a) - float(b)) / float(b)


def stationarity(
    model: nn.Module,
    data: Any,
    *,
    loss: Any = "cross_entropy",
    lambda_max: float | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    tol: float = 0.01,
    trend_tol: float = 0.05,
    window: int = 3,
    batch_size: int = 512,
    reference_loss: float | None = None,
) -> Stationarity:
    """Test whether ``model`` sits at a minimum of its full-data loss.

    Parameters
    ----------
    model : nn.Module
        The network at θ (evaluated in eval mode, as the Hessian is).
    data : TensorData or loader
        The data of the loss (the training split).
    loss : str or callable, default "cross_entropy"
    lambda_max : float, optional
        The top Hessian eigenvalue at θ if known; computed (Lanczos, tolerance 1e-3)
        otherwise.
    history : sequence of dict, optional
        The run's history (:attr:`~landscape.training.TrainRun.history`) for the trend test.
    tol : float, default 0.01
        Largest ``gradient_gain`` of a minimum (a share of the progress).
    trend_tol : float, default 0.05
        Largest train-loss drop over the last ``window`` epochs of a minimum (a share of the
        progress).
    window : int, default 3
    batch_size : int, default 512
    reference_loss : float, optional
        ``L_ref`` (default :func:`no_progress_loss`).

    Returns
    -------
    Stationarity
    """
    from .hessian.operator import HessianOperator
    from .hessian.results import compute_curvature

    op = HessianOperator(model, data, loss=loss, batch_size=batch_size)
    value = op.loss()
    gn = float(op.gradient().double().norm())
    if lambda_max is None:
        lambda_max = float(compute_curvature(model, data, top_k=1, tol=1e-3, loss=loss,
                                             batch_size=batch_size).top_eigenvalues[0])
    if reference_loss is None:
        reference_loss = no_progress_loss(data, loss, history)
    return judge(value, gn, float(lambda_max), reference_loss=reference_loss,
                 history=history, tol=tol, trend_tol=trend_tol, window=window)


def no_progress_loss(data: Any, loss: Any = "cross_entropy",
                     history: Sequence[Mapping[str, Any]] | None = None) -> float | None:
    """``L_ref``: ``ln C`` for a cross-entropy over ``C`` classes (a uniform prediction),
    else the first train loss of ``history``, else ``None``."""
    classes = getattr(data, "num_classes", None)
    if loss == "cross_entropy" and isinstance(classes, int) and classes > 1:
        return math.log(classes)
    if history:
        first = history[0].get("train_loss")
        if first is not None and math.isfinite(first):
            return float(first)
    return None


def matched_checkpoint(history: Sequence[Mapping[str, Any]], target: float,
                       key: str = "train_loss", how: str = "closest"
                       ) -> Mapping[str, Any] | None:
    """The history entry whose ``key`` matches ``target``.

    Parameters
    ----------
    history : sequence of dict
        A run's history (:attr:`~landscape.training.TrainRun.history`), in training order.
    target : float
        The loss to match (typically the other arm's final train loss).
    key : str, default "train_loss"
    how : {"closest", "first"}, default "closest"
        ``"first"``: the first entry at or below ``target`` (where the run first reaches
        it); ``"closest"``: of that entry and the one before it, the one nearer ``target``
        in ``|log L - log target|`` (with a checkpoint per epoch, the first entry below can
        be a factor 2 below the target: ResNet-20 on the digits reached 0.418 and then 0.197
        against a target of 0.396).

    Returns
    -------
    dict or None
        The entry (with its ``checkpoint`` file name and ``epoch``), ``None`` when the run
        never reaches ``target``.

    Raises
    ------
    LandscapeError
        If ``target`` is not a finite positive number or ``how`` is unknown.
    """
    check_option("how", how, ("closest", "first"))
    if target is None or not math.isfinite(float(target)) or float(target) <= 0:
        raise LandscapeError(f"The 'target' parameter must be a finite positive loss. Got "
                             f"{target!r} instead.")
    for i, entry in enumerate(history):
        v = entry.get(key)
        if v is not None and math.isfinite(v) and v <= target:
            if how == "first" or i == 0:
                return entry
            prev = history[i - 1].get(key)
            if prev is None or not math.isfinite(prev) or prev <= 0 or v <= 0:
                return entry
            near = abs(math.log(prev / target)) < abs(math.log(v / target))
            return history[i - 1] if near else entry
    return None
