"""A curvature operator seen through a diagonal preconditioner: ``P^{-1/2} A P^{-1/2}``.

The top eigenvalue of ``P^{-1} H`` -- the curvature an adaptive method such as Adam feels,
with ``P`` its diagonal preconditioner (Cohen et al. 2022; :func:`landscape.optim
.adam_preconditioner`) -- is that of the *symmetric* matrix ``P^{-1/2} H P^{-1/2}``, which is
similar to it (``P^{-1} H = P^{-1/2} (P^{-1/2} H P^{-1/2}) P^{1/2}``), so the symmetric
machinery (Lanczos, :func:`~landscape.hessian.top_eigen`) applies unchanged: each product is
one product of the wrapped operator between two element-wise scalings.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..errors import LandscapeError
from .operator import CurvatureOperator

__all__ = ["PreconditionedOperator"]


class PreconditionedOperator(CurvatureOperator):
    """``P^{-1/2} A P^{-1/2}`` for a symmetric operator ``A`` and a positive diagonal ``P``.

    Parameters
    ----------
    op : CurvatureOperator
        The operator ``A`` (e.g. a :class:`~landscape.hessian.HessianOperator`).
    diagonal : dict of str to Tensor
        ``P`` by parameter name, one tensor (of the parameter's number of entries) for every
        name in ``op.names``; every entry finite and > 0.

    Raises
    ------
    LandscapeError
        If a name is missing or an entry is not finite and positive.
    """

    def __init__(self, op: CurvatureOperator, diagonal: Mapping[str, Tensor]) -> None:
        self.op = op
        self._names, self._shapes = list(op._names), list(op._shapes)
        self._dtype, self._device = op.dtype, op.device
        missing = [n for n in self._names if n not in diagonal]
        if missing:
            raise LandscapeError(f"The 'diagonal' parameter lacks the preconditioner of "
                                 f"{missing[:3]}; pass one tensor per name in op.names")
        parts = []
        for name, shape in zip(self._names, self._shapes, strict=True):
            t = torch.as_tensor(diagonal[name]).detach().reshape(-1).to("cpu", torch.float64)
            if t.numel() != shape.numel():
                raise LandscapeError(f"The preconditioner of '{name}' has {t.numel()} entries, "
                                     f"expected {shape.numel()}")
            parts.append(t)
        d = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
        if not (torch.isfinite(d).all() and (d > 0).all()):
            raise LandscapeError("The 'diagonal' parameter must be finite and > 0 everywhere")
        self._scale = d.rsqrt().to(dtype=self._dtype, device=self._device)

    def _matvec(self, v: Tensor) -> Tensor:
        return self._scale * self.op.matvec(self._scale * v)

    def _matmat(self, V: Tensor) -> Tensor:
        s = self._scale[:, None]
        return s * self.op.matmat(s * V)
