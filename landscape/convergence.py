"""Is a network at a minimum, and which checkpoint matches another's train loss?

Comparing a converged residual network with a plain one that is still descending compares a
minimum with a point on a slope: λmin, ``|λmin/λmax|``, sharpness, basin widths and barriers
all presuppose a minimum, and curvature falls as the loss falls (residual-56 on the digits:
λmax 980 at train loss 2.1, 43 at 0.01). Two tools make the comparison like for like:

:func:`stationarity`
    tests one network: the full-data gradient against the curvature (a gradient step of
    ``1/λmax`` would lower the loss by ``‖g‖²/(2 λmax)`` on the quadratic model: a minimum
    leaves less than ``tol`` of the loss to gain that way) and, from the run's history, the
    last epochs' train-loss trend (a run whose loss still fell by more than ``trend_tol`` over
    its last ``window`` epochs stopped on a slope, even if its learning rate had annealed to
    nearly zero and its gradient step looks small).
:func:`matched_checkpoint`
    finds, in the better-trained run's history, the first checkpoint whose train loss
    reaches a target (the other run's final train loss), so that both are compared at equal
    train loss as well as at convergence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from .errors import LandscapeError, check_float, check_int

__all__ = ["Stationarity", "matched_checkpoint", "stationarity", "loss_trend"]


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
    gradient_gain : float
        ``‖g‖² / (2 λmax L)``: the share of the loss one gradient step of ``1/λmax`` would
        remove on the local quadratic model (NaN when undefined).
    trend : float or None
        Relative train-loss drop over the last ``window`` epochs of the history,
        ``(L[-1-window] - L[-1]) / L[-1]`` (``None`` without a history that long).
    at_minimum : bool
        Both tests passed (the trend test only when a trend is known).
    reason : str or None
        Why not, in words (``None`` when ``at_minimum``).
    """

    loss: float
    grad_norm: float
    lambda_max: float
    gradient_gain: float
    trend: float | None
    at_minimum: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN as ``None``)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


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
        Largest ``gradient_gain`` of a minimum.
    trend_tol : float, default 0.05
        Largest relative train-loss drop over the last ``window`` epochs of a minimum.
    window : int, default 3
    batch_size : int, default 512

    Returns
    -------
    Stationarity
    """
    from .hessian.operator import HessianOperator
    from .hessian.results import compute_curvature

    tol = check_float("tol", tol, 0.0, closed="neither")
    trend_tol = check_float("trend_tol", trend_tol, 0.0, closed="neither")
    op = HessianOperator(model, data, loss=loss, batch_size=batch_size)
    value = op.loss()
    g = op.gradient()
    gn = float(g.double().norm())
    if lambda_max is None:
        lambda_max = float(compute_curvature(model, data, top_k=1, tol=1e-3, loss=loss,
                                             batch_size=batch_size).top_eigenvalues[0])
    lam = float(lambda_max)
    gain = gn**2 / (2 * lam * value) if lam > 0 and value > 0 else math.nan
    trend = loss_trend(history, window) if history else None
    reasons = []
    if not math.isfinite(gain):
        reasons.append("no positive curvature or loss to judge the gradient by")
    elif gain > tol:
        reasons.append(f"a gradient step of 1/λmax would remove {100 * gain:.2g}% of the "
                       f"loss (> {100 * tol:g}%)")
    if trend is not None and trend > trend_tol:
        reasons.append(f"train loss still fell {100 * trend:.2g}% over the last {window} "
                       f"epochs (> {100 * trend_tol:g}%)")
    return Stationarity(value, gn, lam if lam > 0 else math.nan, gain, trend, not reasons,
                        "; ".join(reasons) or None)


def matched_checkpoint(history: Sequence[Mapping[str, Any]], target: float,
                       key: str = "train_loss") -> Mapping[str, Any] | None:
    """The first history entry whose ``key`` is at or below ``target``.

    Parameters
    ----------
    history : sequence of dict
        A run's history (:attr:`~landscape.training.TrainRun.history`), in training order.
    target : float
        The loss to match (typically the other arm's final train loss).
    key : str, default "train_loss"

    Returns
    -------
    dict or None
        The entry (with its ``checkpoint`` file name and ``epoch``), ``None`` when the run
        never reaches ``target``.

    Raises
    ------
    LandscapeError
        If ``target`` is not a finite number.
    """
    if target is None or not math.isfinite(float(target)):
        raise LandscapeError(f"The 'target' parameter must be a finite loss. Got {target!r} "
                             "instead.")
    for entry in history:
        v = entry.get(key)
        if v is not None and math.isfinite(v) and v <= target:
            return entry
    return None
