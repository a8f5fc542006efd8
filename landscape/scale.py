"""Scale-aware numbers: weight norms, and curvature along filter-normalized directions.

Raw curvature -- Hessian eigenvalues, the trace, Keskar's ε-sharpness -- is not a property of
the function a network computes: Dinh et al. (2017) show that rescalings which leave the
function unchanged change it at will. A convolution followed by BatchNorm that normalises by
the statistics of its input (batch statistics in training, or running statistics recomputed
at the weights) computes the same function at weights ``W`` and ``α W`` for any ``α > 0``,
while its Hessian block scales by ``1/α²`` (and the blocks it shares with other tensors by
``1/α``). Two numbers make comparisons across networks honest:

* :func:`weight_norms` -- the global L2 norm and the per-tensor norms of the tensors a direction
  perturbs, to be shown beside every raw-scale curvature (a larger weight norm alone lowers
  it);
* :func:`filter_normalized_curvature` -- ``dᵀ H d`` along ``K`` seeded filter-normalized random
  directions ``d`` (Li et al. 2018: each filter of ``d`` has the norm of the same filter of
  the weights; biases and normalisation layers are not moved), one Hessian-vector product each,
  with its mean and standard deviation over the directions. Under the rescaling above
  filter normalization scales ``d`` on that block by ``α`` (the same Gaussian draw, filters
  ``α`` times longer), so ``dᵀ H d`` is unchanged: ``α² · 1/α²`` on the block, ``α · 1/α`` on
  its cross terms. This holds exactly where the normalisation really divides out the scale
  (BatchNorm with batch statistics, or with statistics recalibrated at the weights:
  ``HessianOperator(bn="recalibrate")``; ``eps = 0``, else up to ``eps / var``); it does not
  hold for BatchNorm in eval mode with fixed running statistics (an affine map of its input),
  nor for the ``α``, ``1/α`` rescaling of consecutive layers of a bias-free ReLU network
  (filter normalization scales ``d`` by ``α`` on one layer and ``1/α`` on the next while the
  Hessian blocks scale by ``1/α²`` and ``α²``, so ``dᵀ H d`` is unchanged only block by block
  on the diagonal, not in general).

Units: ``dᵀ H d`` is in nats per squared direction unit -- the second derivative of the loss
along the surface axes of a filter-normalized plot, ``L(θ + t d) ≈ L(θ) + t g·d + t² dᵀHd / 2``
(1-D surfaces of the same directions show it). It equals ``‖d‖² = ‖θ_perturbed‖²`` times the
Rayleigh quotient of ``H`` along ``d``.

References
----------
.. [1] L. Dinh, R. Pascanu, S. Bengio, Y. Bengio, "Sharp Minima Can Generalize For Deep
   Nets", ICML 2017.
.. [2] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
   Neural Nets", NeurIPS 2018.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._functional import LossSpec, is_perturbable, loss_name
from .directions import Directions, random_direction
from .errors import LandscapeError, check_int, check_option
from .parameters import ParameterSelection, named_tensors, select_parameters

__all__ = ["DirectionalCurvature", "filter_normalized_curvature", "weight_norms"]


def _perturbed(weights: Mapping[str, Tensor], directions: Any, ignore: str,
               selection: ParameterSelection | None) -> list[str]:
    """Names of the tensors the directions move (by default: filter-normalized ones)."""
    if directions is not None:
        if isinstance(directions, Directions):
            vecs = list(directions.vectors)
        elif isinstance(directions, Mapping):
            vecs = [directions]
        else:
            vecs = list(directions)
        return [k for k in weights
                if any(k in v and is_perturbable(v[k]) and bool(torch.any(v[k] != 0))
                       for v in vecs)]
    out = []
    for k, w in weights.items():
        if not is_perturbable(w) or (selection is not None and not selection.moves(k)):
            continue
        small = w.dim() <= 1 or (selection is not None and selection.is_biasbn(k))
        if small and ignore == "biasbn":
            continue
        out.append(k)
    return out


def weight_norms(
    model: nn.Module | Mapping[str, Tensor],
    directions: Directions | Mapping[str, Tensor] | Sequence[Mapping[str, Tensor]] | None
    = None,
    *,
    ignore: str = "biasbn",
    selection: ParameterSelection | None = None,
) -> dict[str, Any]:
    """L2 norms of the weights that a direction perturbs: global and per tensor (layer).

    Parameters
    ----------
    model : nn.Module or dict[str, Tensor]
        The network (its parameters) or the tensors themselves.
    directions : Directions, dict or sequence of dicts, optional
        The directions whose tensors count: every tensor on which one of them is not zero.
        Default: those a filter-normalized random direction of
        :func:`~landscape.directions.random_directions` moves with this ``ignore`` (with
        ``"biasbn"``: every trainable tensor of two or more dimensions outside normalisation
        layers).
    ignore : {"biasbn", "none"}, default="biasbn"
        As for :func:`~landscape.directions.normalize_direction` (without ``directions``).
    selection : ParameterSelection, optional
        Which tensors move (default for a module: :func:`~landscape.parameters.select_parameters`).

    Returns
    -------
    dict
        ``global`` (float, ``sqrt(Σ ‖W_l‖²)`` over the perturbed tensors), ``per_layer``
        (dict name -> float, ``‖W_l‖`` of each perturbed tensor, Frobenius), ``n_params``
        (int, entries of the perturbed tensors). Units: those of the weights.

    References
    ----------
    .. [1] L. Dinh, R. Pascanu, S. Bengio, Y. Bengio, "Sharp Minima Can Generalize For Deep
       Nets", ICML 2017.
    .. [2] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape
       of Neural Nets", NeurIPS 2018.
    """
    check_option("ignore", ignore, ("biasbn", "none"))
    if isinstance(model, nn.Module):
        if selection is None:
            selection = select_parameters(model, "weights")
        weights = named_tensors(model, "weights")
    else:
        weights = dict(model)
    names = _perturbed(weights, directions, ignore, selection)
    per = {k: float(weights[k].detach().double().norm()) for k in names}
    return {"global": math.sqrt(sum(v * v for v in per.values())), "per_layer": per,
            "n_params": int(sum(weights[k].numel() for k in names))}


@dataclass(frozen=True)
class DirectionalCurvature:
    """``dᵀ H d`` along ``K`` filter-normalized random directions.

    Attributes
    ----------
    values : np.ndarray, shape (K,)
        ``dᵀ H d`` per direction (nats per squared direction unit).
    mean : float
        Mean over the directions.
    sd : float
        Sample standard deviation over the directions (``ddof=1``; NaN for ``K = 1``).
    seeds : list of int
        Seed of each direction (:func:`~landscape.directions.random_direction`).
    weight_norm : float
        Global L2 norm of the perturbed tensors (``= ‖d‖`` of every direction).
    per_layer_norms : dict
        ``‖W_l‖`` of each perturbed tensor.
    n_hvp : int
        Hessian-vector products used.
    recipe : dict
        The settings, JSON-ready (``norm``, ``ignore``, ``bn``, ``loss``, ``dtype``, ...).
    """

    values: np.ndarray
    mean: float
    sd: float
    seeds: list[int]
    weight_norm: float
    per_layer_norms: dict[str, float] = field(default_factory=dict)
    n_hvp: int = 0
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of directions."""
        return int(len(self.values))

    def numbers(self) -> dict[str, float]:
        """``filter_curvature_mean``, ``filter_curvature_sd`` (nats per squared direction
        unit), ``filter_curvature_k`` and ``weight_norm``."""
        return {"filter_curvature_mean": self.mean, "filter_curvature_sd": self.sd,
                "filter_curvature_k": float(self.k), "weight_norm": self.weight_norm}


def filter_normalized_curvature(
    model: nn.Module,
    data: Any,
    *,
    k: int = 10,
    seed: int = 0,
    loss: LossSpec = "cross_entropy",
    ignore: str = "biasbn",
    bn: str = "eval",
    batch_size: int | str = "auto",
    dtype: torch.dtype | None = None,
    params: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    include_frozen: bool = False,
) -> DirectionalCurvature:
    """Curvature ``dᵀ H d`` along ``k`` filter-normalized random directions, mean ± sd.

    Direction ``i`` is :func:`~landscape.directions.random_direction` with seed ``seed + i``,
    ``norm="filter"`` and ``ignore`` -- the directions of a filter-normalized surface with the
    same seeds -- and ``dᵀ H d`` is one Hessian-vector product of
    :class:`~landscape.hessian.HessianOperator` (exact, double backpropagation). See the
    module docstring for what it is invariant to, and what not.

    Parameters
    ----------
    model : nn.Module
        The network (not modified).
    data : TensorData, ``(x, y)``, Dataset or DataLoader
        Samples of the loss.
    k : int, default=10
        Number of directions, >= 1.
    seed : int, default=0
        Seed of the first direction.
    loss : str or callable, default="cross_entropy"
        See :class:`~landscape.hessian.HessianOperator`.
    ignore : {"biasbn", "none"}, default="biasbn"
        See :func:`~landscape.directions.normalize_direction`.
    bn : {"eval", "recalibrate"}, default="eval"
        BatchNorm statistics of the loss (see :class:`~landscape.hessian.HessianOperator`);
        ``"recalibrate"`` at checkpoints whose running statistics are unset or stale.
    batch_size : int or "auto", default="auto"
        Samples per forward pass of the products.
    dtype : torch.dtype, optional
        Dtype of the products (default: the model's).
    params, exclude, include_frozen
        The tensors that move (see :func:`~landscape.parameters.select_parameters`).

    Returns
    -------
    DirectionalCurvature

    Raises
    ------
    LandscapeError
        If the directions move no tensor.

    References
    ----------
    .. [1] L. Dinh, R. Pascanu, S. Bengio, Y. Bengio, "Sharp Minima Can Generalize For Deep
       Nets", ICML 2017.
    .. [2] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape
       of Neural Nets", NeurIPS 2018.

    Examples
    --------
    >>> c = filter_normalized_curvature(model, (x, y), k=10)     # doctest: +SKIP
    >>> c.mean, c.sd, c.weight_norm                               # doctest: +SKIP
    """
    from .hessian import HessianOperator

    k = check_int("k", k, 1)
    seed = check_int("seed", seed, 0)
    check_option("ignore", ignore, ("biasbn", "none"))
    sel = select_parameters(model, "weights", params=params, exclude=exclude,
                            include_frozen=include_frozen)
    weights = named_tensors(model, "weights")
    op = HessianOperator(model, data, loss=loss, batch_size=batch_size, dtype=dtype,
                         params=params, exclude=exclude, include_frozen=include_frozen, bn=bn)
    seeds = [seed + i for i in range(k)]
    zeros = op.unflatten(torch.zeros(op.numel, dtype=op.dtype, device=op.device))
    cols = []
    for s in seeds:
        d = random_direction(weights, seed=s, norm="filter", ignore=ignore, selection=sel)
        outside = [n for n, v in d.items() if n not in op.names and is_perturbable(v)
                   and bool(torch.any(v != 0))]
        if outside:
            raise LandscapeError(
                f"the directions move tensors the Hessian does not cover: {outside[:3]}"
            )
        cols.append(op.flatten({n: d.get(n, zeros[n]) for n in op.names}))
    V = torch.stack(cols, dim=1)
    if not bool(torch.any(V != 0)):
        raise LandscapeError(
            "the filter-normalized directions move no tensor (every selected tensor is a bias "
            "or a normalisation layer with ignore='biasbn'); pass ignore='none' or other params"
        )
    HV = op.matmat(V)
    values = (V.double() * HV.double()).sum(dim=0).cpu().numpy()
    norms = weight_norms(weights, d)
    return DirectionalCurvature(
        values=values, mean=float(values.mean()),
        sd=float(values.std(ddof=1)) if k > 1 else float("nan"), seeds=seeds,
        weight_norm=norms["global"], per_layer_norms=norms["per_layer"], n_hvp=k,
        recipe={"norm": "filter", "ignore": ignore, "bn": op.bn, "loss": loss_name(loss),
                "dtype": str(op.dtype).removeprefix("torch."), "k": k, "seed": seed,
                "n_samples": int(op.n_samples), "units": "nats per squared direction unit"},
    )
