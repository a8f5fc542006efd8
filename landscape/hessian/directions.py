"""Surface directions along the Hessian's top eigenvectors.

A surface along the top-2 eigenvectors shows the sharpest directions of the minimum, the
counterpart of Li et al.'s random directions (which see almost none of the top curvature in a
high-dimensional space). :func:`hessian_directions` returns a
:class:`~landscape.directions.Directions` (recipe ``kind="hessian"``) usable by
:func:`~landscape.surface.compute_surface` and savable with
:func:`~landscape.surface.save_directions`.

References
----------
.. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
   Neural Nets", NeurIPS 2018 (filter normalization).
.. [2] Z. Yao, A. Gholami, K. Keutzer, M. Mahoney, "PyHessian: Neural networks through the lens
   of the Hessian", IEEE BigData 2020 (loss along the top eigenvectors).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._functional import LossSpec, loss_name, named_tensors
from ..data import sample_count
from ..directions import IGNORES, Directions, normalize_direction
from ..errors import LandscapeError, check_float, check_int, check_option
from ..parameters import ParameterSelection, select_parameters
from .lanczos import top_eigen
from .operator import HessianOperator

__all__ = ["hessian_directions", "eigenvector_directions", "SCALES"]

#: String values of ``scale``; a positive float is accepted too.
SCALES = ("filter", "none")


def _check_scale(scale: Any) -> str | float:
    if isinstance(scale, str):
        return check_option("scale", scale, SCALES)
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise LandscapeError(
            f"The 'scale' parameter must be 'filter', 'none' or a positive float. "
            f"Got {scale!r} instead."
        )
    return check_float("scale", scale, 0.0, closed="neither")


def _sign_fixed(d: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Flip ``d`` so that its largest-magnitude entry is positive (first one on ties)."""
    best, sign = -1.0, 1.0
    for v in d.values():
        if v.numel() == 0:
            continue
        flat = v.detach().reshape(-1)
        j = int(torch.argmax(flat.abs()))
        if float(flat[j].abs()) > best:
            best, sign = float(flat[j].abs()), (1.0 if float(flat[j]) >= 0 else -1.0)
    return {k: v * sign for k, v in d.items()}


def _unmasked(selection: ParameterSelection | None) -> ParameterSelection | None:
    """The selection's layout with every tensor movable: the eigenvector's own zeros (tensors
    the operator held fixed) already say what moves."""
    if selection is None:
        return None
    return dataclasses.replace(selection, perturbed=selection.names)


def eigenvector_directions(
    vectors: Sequence[Mapping[str, Tensor]],
    weights: Mapping[str, Tensor],
    *,
    scale: str | float = "filter",
    ignore: str = "biasbn",
    recipe: Mapping[str, Any] | None = None,
    selection: ParameterSelection | None = None,
) -> Directions:
    """Turn one or two eigenvectors (``name -> tensor`` dicts) into surface directions.

    Tensors of ``weights`` missing from a vector (held fixed by the operator) get a zero
    direction; every vector's sign is fixed so that its largest-magnitude entry is positive.

    Parameters
    ----------
    vectors : sequence of dict[str, Tensor]
        One or two eigenvectors (e.g. :meth:`~landscape.hessian.EigenResult.as_dicts`).
    weights : dict[str, Tensor]
        The tensors the directions perturb (``named_tensors(model, what)``).
    scale : {"filter", "none"} or float, default "filter"
        ``"filter"``: rescale every filter to the norm of the weights' filter
        (:func:`~landscape.directions.normalize_direction`), so surfaces are comparable with
        filter-normalized random ones -- the result is then *no longer an eigenvector*
        (it still points mostly along the sharp direction). ``"none"``: the unit
        eigenvector itself. A float ``s``: the unit eigenvector times ``s``.
    ignore : {"biasbn", "none"}, default "biasbn"
        Passed to the filter normalization (``"biasbn"`` zeroes <= 1-D tensors; ``"none"``
        sets them to the weights, as Li et al.'s code does).
    recipe : dict, optional
        Recipe entries to record (``kind`` defaults to ``"hessian"``).
    selection : ParameterSelection, optional
        The model's output axes and bias/normalisation tensors for the filter normalization
        (:func:`~landscape.parameters.select_parameters`); default: by tensor dimension.

    Returns
    -------
    Directions
    """
    scale = _check_scale(scale)
    check_option("ignore", ignore, IGNORES)
    if len(vectors) not in (1, 2):
        raise LandscapeError(f"a surface needs 1 or 2 directions; got {len(vectors)} vectors")
    out = []
    for vec in vectors:
        unknown = [k for k in vec if k not in weights]
        if unknown:
            raise LandscapeError(
                f"eigenvector tensor '{unknown[0]}' is not among the model's tensors; the "
                "eigenvectors were computed for another model or tensor selection"
            )
        full: dict[str, Tensor] = {}
        for k, w in weights.items():
            if k in vec:
                v = torch.as_tensor(vec[k]).detach()
                if tuple(v.shape) != tuple(w.shape):
                    raise LandscapeError(
                        f"eigenvector tensor '{k}' has shape {tuple(v.shape)}, the model's "
                        f"{tuple(w.shape)}"
                    )
                full[k] = v.to(dtype=w.dtype, device=w.device).clone()
            else:
                full[k] = torch.zeros_like(w)
        full = _sign_fixed(full)
        if scale == "filter":
            full = normalize_direction(full, weights, norm="filter", ignore=ignore,
                                       selection=_unmasked(selection))
        elif scale != "none":
            full = {k: v * float(scale) if v.is_floating_point() else v
                    for k, v in full.items()}
        out.append(full)
    rec = {"kind": "hessian", "norm": "filter" if scale == "filter" else "none",
           "scale": scale, "ignore": ignore, **dict(recipe or {})}
    rec.setdefault("what", "weights")
    return Directions(tuple(out), rec)


def hessian_directions(
    model: nn.Module,
    data: Any,
    k: int = 2,
    *,
    loss: LossSpec = "cross_entropy",
    batch_size: int = 512,
    what: str = "weights",
    ignore: str = "biasbn",
    tol: float = 1e-6,
    seed: int = 0,
    scale: str | float = "filter",
    which: str = "LA",
    dtype: torch.dtype | None = None,
    max_hvp: int | None = None,
) -> Directions:
    """Directions along the ``k`` (1 or 2) top eigenvectors of the loss Hessian.

    Parameters
    ----------
    model : nn.Module
        The network at the origin of the surface (not modified).
    data : object with ``.x`` and ``.y``, or a pair ``(x, y)``
        Samples of the loss.
    k : {1, 2}, default 2
        Number of directions (1D or 2D surface).
    loss, batch_size, dtype
        As for :class:`~landscape.hessian.HessianOperator`.
    what : {"weights", "states"}, default "weights"
        The tensors the directions perturb (and the Hessian's variables).
    ignore : {"biasbn", "none"}, default "biasbn"
        ``"biasbn"``: biases and BatchNorm parameters (<= 1-D tensors) are held fixed in the
        Hessian and get a zero direction, like random directions by default.
    tol : float, default 1e-6
        Relative residual tolerance of the eigenpairs.
    seed : int, default 0
        Seed of the Lanczos start vector.
    scale : {"filter", "none"} or float, default "filter"
        See :func:`eigenvector_directions`. With ``"filter"`` the directions are filter
        normalized like random ones (comparable surfaces) and are no longer exact
        eigenvectors; ``"none"`` keeps the unit eigenvectors (``H d = lambda d``).
    which : {"LA", "LM"}, default "LA"
        Largest algebraic (sharpest ascent) or largest magnitude eigenvalues.
    max_hvp : int, optional
        HVP budget of the eigen-solve.

    Returns
    -------
    Directions
        ``recipe`` has ``kind="hessian"``, the eigenvalues, residuals, tol, seed, loss,
        sample count and HVPs used; each eigenvector's sign is fixed so that its
        largest-magnitude entry is positive (deterministic).

    References
    ----------
    .. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
       Neural Nets", NeurIPS 2018.

    Examples
    --------
    >>> dirs = hessian_directions(model, train, k=2)                         # doctest: +SKIP
    >>> surf = compute_surface(model, dirs, {"train": train}, x="-1:1:21",
    ...                        y="-1:1:21")                                   # doctest: +SKIP
    """
    k = check_int("k", k, 1, 2)
    check_option("what", what, ("weights", "states"))
    check_option("ignore", ignore, IGNORES)
    check_option("which", which, ("LA", "LM"))
    scale = _check_scale(scale)
    weights = named_tensors(model, what)
    op = HessianOperator(model, data, loss=loss, batch_size=batch_size, what=what,
                         ignore="biasbn" if ignore == "biasbn" else None, dtype=dtype)
    res = top_eigen(op, k, which=which, tol=tol, seed=seed, max_hvp=max_hvp)
    recipe = {
        "kind": "hessian",
        "what": what,
        "k": k,
        "which": which,
        "eigenvalues": [float(v) for v in res.eigenvalues],
        "residuals": [float(v) for v in res.residuals],
        "converged": [bool(c) for c in res.converged],
        "n_hvp": int(res.n_hvp),
        "tol": float(tol),
        "seed": int(seed),
        "loss": loss_name(loss),
        "n_samples": sample_count(data),
        "batch_size": int(batch_size),
        "dtype": str(op.dtype).replace("torch.", ""),
        "sign": "largest-magnitude entry positive",
    }
    if not np.all(res.converged):
        recipe["note"] = "not all eigenpairs converged"
    vectors = [{n: t.detach() for n, t in d.items()} for d in res.as_dicts(op)]
    return eigenvector_directions(vectors, weights, scale=scale, ignore=ignore, recipe=recipe,
                                  selection=select_parameters(model, what))
