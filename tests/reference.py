"""Dense float64 ground truth for the tests: exact losses, gradients and Hessians.

Everything here is deliberately naive: one forward pass over the whole data set, the model
called through :func:`torch.func.functional_call` in eval mode, derivatives from
:func:`torch.func.hessian` of the loss as a function of the flattened parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    "flat_loss_fn",
    "exact_loss",
    "exact_gradient",
    "exact_hessian",
    "dense_from_operator",
]


def _per_sample_loss(loss: str) -> Callable[[Tensor, Tensor], Tensor]:
    if loss == "cross_entropy":
        return lambda out, y: F.cross_entropy(out, y, reduction="none")
    if loss == "mse":
        return lambda out, y: (out - y.reshape(out.shape)).pow(2).reshape(len(out), -1).mean(1)
    raise ValueError(loss)


def flat_loss_fn(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    names: Sequence[str],
    *,
    params: Mapping[str, Tensor] | None = None,
    loss: str = "cross_entropy",
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """Return ``(f, theta0)``: the float64 mean loss as a function of the flat ``names`` tensors.

    Every other tensor (parameters not in ``names``, buffers) is fixed at its value in
    ``params`` / the model, cast to float64. The model is evaluated in eval mode.
    """
    base = {k: v.detach() for k, v in model.state_dict(keep_vars=True).items()}
    base.update({k: v.detach() for k, v in (params or {}).items()})
    base = {k: (v.double() if v.is_floating_point() else v) for k, v in base.items()}
    shapes = [base[k].shape for k in names]
    sizes = [s.numel() for s in shapes]
    theta0 = torch.cat([base[k].reshape(-1) for k in names])
    xd = x.double() if x.is_floating_point() else x
    yd = y.double() if y.is_floating_point() else y
    per_sample = _per_sample_loss(loss)
    was_training = model.training

    def f(theta: Tensor) -> Tensor:
        tensors = dict(base)
        for name, shape, part in zip(names, shapes, theta.split(sizes), strict=True):
            tensors[name] = part.reshape(shape)
        model.eval()
        try:
            out = functional_call(model, tensors, (xd,))
        finally:
            model.train(was_training)
        return per_sample(out, yd).mean()

    return f, theta0


def exact_loss(model: nn.Module, x: Tensor, y: Tensor, names: Sequence[str], **kw) -> float:
    f, theta0 = flat_loss_fn(model, x, y, names, **kw)
    with torch.no_grad():
        return float(f(theta0))


def exact_gradient(model: nn.Module, x: Tensor, y: Tensor, names: Sequence[str], **kw) -> Tensor:
    f, theta0 = flat_loss_fn(model, x, y, names, **kw)
    return torch.func.grad(f)(theta0)


def exact_hessian(model: nn.Module, x: Tensor, y: Tensor, names: Sequence[str], **kw) -> Tensor:
    """Dense ``(n, n)`` float64 Hessian of the mean loss w.r.t. the flat ``names`` tensors."""
    f, theta0 = flat_loss_fn(model, x, y, names, **kw)
    H = torch.func.hessian(f)(theta0)
    return (H + H.T) / 2


def dense_from_operator(op) -> Tensor:
    """Materialise any ``@``/``.shape`` operator by applying it to the identity (float64)."""
    n = op.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    return torch.as_tensor(op @ eye).double()
