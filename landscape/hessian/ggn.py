"""Gauss-Newton and empirical Fisher operators beside the Hessian.

Both are matrix-free operators of the form

.. math:: C = \\sum_b J_b^\\top M_b J_b,

where ``J_b`` is the Jacobian of a batch's output ``z_b`` with respect to the selected
parameters and ``M_b`` a symmetric matrix in output space:

- :class:`GGNOperator` (generalised Gauss-Newton, ``operator="ggn"``): ``z_b`` are the model's
  logits and ``M_b`` the Hessian of the batch's share of the loss, ``total_b / W``, with
  respect to them, so that ``G = J^T H_L J`` is the Hessian with the second-order term of the
  network dropped (``H = G + sum_i sum_c (dl_i/dz_ic) d^2 z_ic / dtheta^2``). It equals the
  Hessian when the model is linear in its parameters and it is positive semidefinite whenever
  the loss is convex in the outputs (cross-entropy, mean squared error).
- :class:`FisherOperator` (empirical Fisher, ``operator="fisher"``): ``z_b`` are the batch's
  per-example losses ``l_e`` (samples, or counted tokens for sequence logits, as in
  :mod:`landscape.losses`) and ``M_b = I / W``, so that
  ``F = (1/W) sum_e g_e g_e^T`` with ``g_e = grad l_e``: the mean over the counted examples
  of the outer products of their gradients. Always positive semidefinite.

Products are exact and need no per-sample loop: ``J v`` is a Jacobian-vector product taken by
double backpropagation (``J v = d/du <J^T u, v>`` with a dummy cotangent ``u``; the
"double-vjp trick"), ``M`` is applied in output space (for the GGN one Hessian-vector product
of the loss with respect to the logits) and ``J^T m`` is one vector-Jacobian product. Per-sample
gradients are thus never formed, so the Fisher works for every model and batch type the
Hessian does (HuggingFace mappings, BatchNorm in eval mode, tied weights).

Both are subclasses of :class:`~landscape.hessian.operator.HessianOperator`: the data loop,
batch sizes (uneven last batches weighted by their counts), the parameter selection (tied,
frozen, ``ignore``), the BatchNorm options and the ``torchrun`` distribution are the Hessian
operator's. :func:`curvature_operator` builds one of the three by name.

References
----------
.. [1] N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
   descent", Neural Computation 14(7), 2002 (GGN products).
.. [2] J. Martens, "New insights and perspectives on the natural gradient method", JMLR 21,
   2020 (GGN, Fisher and empirical Fisher).
.. [3] F. Kunstner, L. Balles, P. Hennig, "Limitations of the empirical Fisher approximation
   for natural gradient descent", NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..batches import output_logits, split_batch
from ..errors import LandscapeError, check_option
from .operator import HessianOperator, curvature_mode

__all__ = ["OPERATORS", "FisherOperator", "GGNOperator", "curvature_operator",
           "operator_label"]

#: ``operator`` values of :func:`curvature_operator` (and of the functions built on it).
OPERATORS = ("hessian", "ggn", "fisher")

_LABELS = {"hessian": "Hessian", "ggn": "Gauss-Newton (GGN)", "fisher": "empirical Fisher"}

# one batch: (leaves, output z, dummy cotangent u, J^T u with its graph, output-space product)
_Item = tuple[list[Tensor], Tensor, Tensor, list[Tensor | None], Callable[[Tensor], Tensor]]


def operator_label(operator: str) -> str:
    """Readable name of an ``operator`` value ("Hessian", "Gauss-Newton (GGN)", ...)."""
    return _LABELS.get(operator, operator)


class _OutputSpaceOperator(HessianOperator):
    """``sum_b J_b^T M_b J_b`` over the batches (see the module docstring).

    Subclasses implement :meth:`_output`: the batch's output ``z`` (with its graph to the
    leaves) and the product ``t -> M t`` in output space.
    """

    #: What ``operator`` names this class.
    kind = "hessian"

    def __init__(self, model: nn.Module, data: Any, *, method: str = "auto",
                 **kwargs: Any) -> None:
        check_option("method", method, ("auto", "graph"))
        super().__init__(model, data, method="graph", **kwargs)
        self._out_cache: list[_Item] | None = None

    def _output(self, batch: Any, leaves: dict[str, Tensor]
                ) -> tuple[Tensor, Callable[[Tensor], Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _items(self) -> Iterator[_Item]:
        if self._out_cache is not None:
            yield from self._out_cache
            return
        cache: list[_Item] = []
        with torch.enable_grad(), curvature_mode(self._model):
            for b in self._batches():
                leaves = {k: v.detach().requires_grad_(True) for k, v in self._primals.items()}
                z, m = self._output(b, leaves)
                params = list(leaves.values())
                u = torch.zeros_like(z, requires_grad=True)
                if z.requires_grad:
                    # J^T u, linear in u: its derivative along u in direction v is J v
                    jtu = list(torch.autograd.grad(z, params, grad_outputs=u,
                                                   create_graph=True, allow_unused=True))
                else:
                    jtu = [None] * len(params)
                item = (params, z, u, jtu, m)
                if self.cache_graph:
                    cache.append(item)
                yield item
        if self.cache_graph:
            self._out_cache = cache

    def _graph_matmat(self, V: Tensor) -> Tensor:
        k = V.shape[1]
        out = torch.zeros(k, self.numel, dtype=self._dtype, device=self._device)
        cols = [self._views(V[:, j].contiguous()) for j in range(k)]
        rows = [self._views(out[j]) for j in range(k)]
        for params, z, u, jtu, m in self._items():
            live = [i for i, g in enumerate(jtu) if g is not None and g.requires_grad]
            if not live:
                continue  # the output does not depend on the params: zero curvature
            for j in range(k):
                jv = torch.autograd.grad([jtu[i] for i in live], u,
                                         grad_outputs=[cols[j][i] for i in live],
                                         retain_graph=True, allow_unused=True)[0]
                if jv is None:
                    continue
                mjv = m(jv.detach())
                back = torch.autograd.grad(z, params, grad_outputs=mjv, retain_graph=True,
                                           allow_unused=True)
                for acc, h in zip(rows[j], back, strict=True):
                    if h is not None:
                        acc.add_(h)
        return out.t()

    def _matmat(self, V: Tensor) -> Tensor:
        return self._reduce(self._graph_matmat(V))

    def __repr__(self) -> str:
        ranks = f", ranks={self.world_size}" if self.world_size > 1 else ""
        return (f"{type(self).__name__}(n={self.numel}, N={self.n_samples}, "
                f"dtype={self._dtype}{ranks})")


class GGNOperator(_OutputSpaceOperator):
    """Generalised Gauss-Newton matrix ``G = sum_b J_b^T H_{L_b} J_b`` of the full-data loss.

    ``J_b`` is the Jacobian of the model's logits on batch ``b`` (for HuggingFace-style
    outputs, their ``logits``; see :func:`landscape.batches.output_logits`) and ``H_{L_b}``
    the Hessian, with respect to those logits, of the batch's share of the loss
    ``total_b / W``. Positive semidefinite for cross-entropy and mean squared error; equal to
    the Hessian for a model linear in its parameters.

    Parameters
    ----------
    model, data, batch_size, what, params, ignore, exclude, include_frozen, dtype,
    cache_graph, memory_budget, bn, bn_data, bn_batch_size, distributed
        As for :class:`~landscape.hessian.HessianOperator`.
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        A loss of the model's outputs: a built-in, or a user loss ``f(output, target)``. A
        user loss that takes the model (``f(model, batch)``) has no output space and is
        refused.
    method : {"auto", "graph"}, default "auto"
        Products by double backpropagation (the only method).

    Raises
    ------
    LandscapeError
        If ``loss`` takes the model rather than its outputs.

    References
    ----------
    .. [1] N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
       descent", Neural Computation, 2002.

    Examples
    --------
    >>> G = GGNOperator(model, data, loss="mse", dtype=torch.float64)   # doctest: +SKIP
    >>> top_eigen(G, 2).eigenvalues                                     # doctest: +SKIP
    """

    kind = "ggn"

    def __init__(self, model: nn.Module, data: Any, **kwargs: Any) -> None:
        from ..losses import resolve_loss

        loss_fn = resolve_loss(kwargs.get("loss", "cross_entropy"))
        if loss_fn.takes_model:
            raise LandscapeError(
                f"The 'loss' parameter {loss_fn.name} takes the model, so its Hessian with "
                "respect to the model's outputs cannot be formed; operator='ggn' needs a loss "
                "f(output, target) or a built-in ('cross_entropy', 'mse')"
            )
        super().__init__(model, data, **kwargs)

    def _output(self, batch: Any, leaves: dict[str, Tensor]
                ) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        args, kwargs, _ = split_batch(batch)
        z = output_logits(self._caller({**self._fixed, **leaves})(*args, **kwargs))
        zl = z.detach().requires_grad_(True)
        share = self._loss_fn.terms(zl, batch).total / self.total_weight
        gz = torch.autograd.grad(share, zl, create_graph=True, allow_unused=True)[0] \
            if share.requires_grad else None
        if gz is None or not gz.requires_grad:  # loss linear (or constant) in the outputs
            return z, torch.zeros_like

        def hl(t: Tensor) -> Tensor:
            h = torch.autograd.grad(gz, zl, grad_outputs=t, retain_graph=True,
                                    allow_unused=True)[0]
            return torch.zeros_like(t) if h is None else h

        return z, hl


class FisherOperator(_OutputSpaceOperator):
    """Empirical Fisher ``F = (1/W) sum_e g_e g_e^T`` over the counted examples of the data.

    ``g_e`` is the gradient of example ``e``'s loss (a sample's, or a counted token's for
    sequence cross-entropy) and ``W`` the number of counted examples: for classification,
    ``F`` is the mean over samples of the outer products of the per-sample gradients. The
    products run through the Jacobian of the batch's vector of per-example losses, so no
    per-sample gradient is stored (module docstring).

    Parameters
    ----------
    model, data, batch_size, what, params, ignore, exclude, include_frozen, dtype,
    cache_graph, memory_budget, bn, bn_data, bn_batch_size, distributed
        As for :class:`~landscape.hessian.HessianOperator`.
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        A built-in loss, or a user loss returning per-sample losses ``(B,)``; a user loss that
        returns a mean or a ``(total, weight)`` pair has no per-example gradients and is
        refused when the first product is taken.
    method : {"auto", "graph"}, default "auto"
        Products by double backpropagation (the only method).

    References
    ----------
    .. [1] F. Kunstner, L. Balles, P. Hennig, "Limitations of the empirical Fisher
       approximation for natural gradient descent", NeurIPS 2019.
    """

    kind = "fisher"

    def _output(self, batch: Any, leaves: dict[str, Tensor]
                ) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        terms = self._loss_fn.model_terms(self._caller({**self._fixed, **leaves}), batch)
        if terms.per is None:
            raise LandscapeError(
                f"The 'loss' parameter {self._loss_fn.name} returns no per-example losses (a "
                "mean or a (total, weight) pair), so operator='fisher' has no per-example "
                "gradients; return per-sample losses (B,)"
            )
        w = self.total_weight
        return terms.per.reshape(-1), lambda t: t / w


_CLASSES: dict[str, type[HessianOperator]] = {
    "hessian": HessianOperator, "ggn": GGNOperator, "fisher": FisherOperator}


def curvature_operator(model: nn.Module, data: Any, *, operator: str = "hessian",
                       **kwargs: Any) -> HessianOperator:
    """The Hessian, GGN or empirical Fisher operator of the full-data loss.

    Parameters
    ----------
    model, data
        As for :class:`~landscape.hessian.HessianOperator`.
    operator : {"hessian", "ggn", "fisher"}, default "hessian"
        :class:`~landscape.hessian.HessianOperator`, :class:`GGNOperator` or
        :class:`FisherOperator`.
    **kwargs
        The operator's other parameters (``loss``, ``batch_size``, ``ignore``, ``dtype``...).

    Returns
    -------
    HessianOperator
        An instance of the class named by ``operator``.
    """
    check_option("operator", operator, OPERATORS)
    return _CLASSES[operator](model, data, **kwargs)
