"""The trainer's optimizers (SGD, AdamW) and Adam's preconditioner read back from a checkpoint.

:func:`build_optimizer` makes the optimizer of a :class:`~landscape.training.TrainConfig`.
For an AdamW run, every epoch checkpoint also stores the optimizer's second moments by
parameter name (:func:`adam_state`), and :func:`adam_preconditioner` turns them into the
diagonal preconditioner of Cohen et al. (2022),

    P = diag(sqrt(v_hat) + eps),        v_hat = v / (1 - beta2^t),

the bias-corrected second moment after ``t`` steps. Adam's update is ``theta -= eta *
P^{-1} m_hat``; on a quadratic its iteration is stable while the top eigenvalue of the
preconditioned Hessian ``P^{-1} H`` stays below ``(2 + 2 beta1) / ((1 - beta1) eta)``
(:func:`adam_threshold`; ``38 / eta`` for ``beta1 = 0.9``), the threshold near which Cohen et
al. find it settles. Cohen et al.'s ``P`` also carries the first moment's bias correction
``1 - beta1^t`` (the factor of ``m`` in ``m_hat``); it is 1 to within ``beta1^t`` (below 1e-4
after 90 steps at ``beta1 = 0.9``) and is left out here, as in the definition above.

References
----------
.. [1] I. Loshchilov and F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
.. [2] J. Cohen, B. Ghorbani, S. Krishnan, N. Agarwal, S. Medapati, M. Badura, D. Suo,
   D. Cardoze, Z. Nado, G. E. Dahl and J. Gilmer, "Adaptive Gradient Methods at the Edge of
   Stability", 2022.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .errors import LandscapeError, check_float

__all__ = ["OPTIMIZERS", "adam_preconditioner", "adam_state", "adam_threshold",
           "build_optimizer"]

#: The optimizers of :class:`~landscape.training.TrainConfig`.
OPTIMIZERS = ("sgd", "adamw")


def build_optimizer(model: nn.Module, config: Any) -> torch.optim.Optimizer:
    """The optimizer of ``config`` (a :class:`~landscape.training.TrainConfig`) over every
    parameter of ``model``: SGD with momentum, or AdamW (decoupled weight decay)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=tuple(config.betas),
                                 eps=config.eps, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                           nesterov=config.nesterov, weight_decay=config.weight_decay)


def adam_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """What an AdamW run's checkpoint stores for :func:`adam_preconditioner`.

    Returns
    -------
    dict or None
        ``{"optimizer": "adamw", "step": {name: t}, "betas": [b1, b2], "eps": eps,
        "exp_avg_sq": {name: v}}`` with the raw (not bias-corrected) second moments ``v`` on
        the CPU and the steps each parameter took (they differ under stochastic depth, where
        the parameters of a dropped block get no gradient and are not stepped); ``None`` for
        another optimizer. Before the first step both dicts are empty.
    """
    if not isinstance(optimizer, torch.optim.AdamW):
        return None
    group = optimizer.param_groups[0]
    moments, steps = {}, {}
    for name, p in model.named_parameters():
        st = optimizer.state.get(p)
        if st and "exp_avg_sq" in st:
            moments[name] = st["exp_avg_sq"].detach().cpu().clone()
            steps[name] = int(st["step"])
    return {"optimizer": "adamw", "step": steps,
            "betas": [float(b) for b in group["betas"]], "eps": float(group["eps"]),
            "exp_avg_sq": moments}


def adam_preconditioner(state: Mapping[str, Any], names: list[str]) -> dict[str, Tensor]:
    """``P = sqrt(v / (1 - beta2^t)) + eps`` per parameter (float64), from :func:`adam_state`
    (``t``: the parameter's own step count).

    Parameters
    ----------
    state : dict
        The stored state.
    names : list of str
        The parameters wanted (e.g. an operator's ``names``).

    Raises
    ------
    LandscapeError
        Before the first step (no second moment yet: ``P`` is undefined), or when a named
        parameter has no second moment.
    """
    beta2, eps = float(state["betas"][1]), float(state["eps"])
    moments, steps = state["exp_avg_sq"], state["step"]
    if not moments:
        raise LandscapeError("Adam's preconditioner is undefined before the first step (no "
                             "second moment yet)")
    missing = [n for n in names if n not in moments]
    if missing:
        raise LandscapeError(f"the stored Adam state has no second moment of {missing[:3]} "
                             "(never stepped)")
    return {n: (moments[n].double() / (1.0 - beta2 ** int(steps[n]))).sqrt() + eps
            for n in names}


def adam_threshold(beta1: float, lr: Any) -> Any:
    """``(2 + 2 beta1) / ((1 - beta1) lr)``: the stability threshold of ``lambda_max(P^-1
    H)`` under Adam with momentum ``beta1`` (``38 / lr`` at ``beta1 = 0.9``)."""
    beta1 = check_float("beta1", beta1, 0.0, 1.0, closed="left")
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)
