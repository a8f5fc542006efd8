"""Surface directions along the Hessian's eigenvectors, and surfaces along them.

A surface along the top-2 eigenvectors shows the sharpest directions of the minimum, the
counterpart of Li et al.'s random directions (which see almost none of the top curvature in a
high-dimensional space); the pair of the largest and the smallest eigenvalue (``pair=
"topbottom"``) shows the negative curvature of a saddle that random 2-D slices hide (Böttcher
and Wheeler 2024). :func:`hessian_directions` returns a
:class:`~landscape.directions.Directions` (recipe ``kind="hessian"``, with the eigenvalues
used) usable by :func:`~landscape.surface.compute_surface` and savable with
:func:`~landscape.surface.save_directions`. :func:`compute_hessian_surface` computes such a
surface into the file's ``/hessian_surface`` group (:data:`HESSIAN_GROUP`, its directions
inside it), beside the random-direction ``/surface``, so that a report never takes one for the
other; a resumed run reuses the stored eigenvectors and refuses another choice of them.

Layout (format version 1: older readers skip the group)::

    /hessian_surface              attrs and datasets as /surface (recipe, provenance, ndim,
                                  arrays, x, y, <split>_loss, _acc, _loss_se, done)
    /hessian_surface/directions   a /directions group; its recipe holds pair, eigenvalues,
                                  residuals, converged, tol, seed, n_hvp, ...

References
----------
.. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
   Neural Nets", NeurIPS 2018 (filter normalization).
.. [2] Z. Yao, A. Gholami, K. Keutzer, M. Mahoney, "PyHessian: Neural networks through the lens
   of the Hessian", IEEE BigData 2020 (loss along the top eigenvectors).
.. [3] L. Böttcher, G. Wheeler, "Visualizing high-dimensional loss landscapes with Hessian
   directions", J. Stat. Mech. 2024 (random 2-D slices hide saddles; slices along the extreme
   eigenvectors show them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._functional import LossSpec, loss_name, named_tensors
from ..data import sample_count
from ..directions import IGNORES, Directions, normalize_direction
from ..errors import LandscapeError, check_float, check_int, check_option
from ..parameters import ParameterSelection, select_parameters
from .lanczos import min_eigen, top_eigen
from .operator import HessianOperator

__all__ = ["HESSIAN_GROUP", "PAIRS", "SCALES", "compute_hessian_surface",
           "eigenvector_directions", "hessian_directions"]

#: String values of ``scale``; a positive float is accepted too.
SCALES = ("filter", "none")

#: Which eigenvectors: ``"top"`` (the ``k`` largest eigenvalues) or ``"topbottom"`` (the
#: largest and the smallest, for 2-D surfaces).
PAIRS = ("top", "topbottom")

#: The file group of a surface along Hessian directions.
HESSIAN_GROUP = "hessian_surface"

#: Directions-recipe entries that a resumed Hessian surface must have been computed with (the
#: eigenvalues, residuals and HVP counts are results, not choices).
_CHOICE_KEYS = ("kind", "pair", "what", "k", "which", "tol", "seed", "loss", "n_samples",
                "batch_size", "dtype", "max_hvp", "norm", "scale", "ignore")


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
    pair: str = "top",
) -> Directions:
    """Directions along the ``k`` (1 or 2) top eigenvectors of the loss Hessian, or along the
    eigenvectors of its largest and smallest eigenvalues.

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
        HVP budget of the eigen-solve (of each of the two with ``pair="topbottom"``).
    pair : {"top", "topbottom"}, default "top"
        ``"top"``: the ``k`` eigenvectors of ``which``. ``"topbottom"`` (``k=2`` only): x
        along the largest algebraic eigenvalue, y along the smallest
        (:func:`~landscape.hessian.min_eigen`), which is negative at a saddle; the smallest
        is converged to a residual of at most ``tol · max(|λmin|, |λmax|)`` (``atol``
        ``tol · |λmax|``, recorded as ``min_atol``), since a near-zero λmin would make a
        purely relative tolerance very costly.

    Returns
    -------
    Directions
        ``recipe`` has ``kind="hessian"``, ``pair``, the eigenvalues (in the order of the
        directions), residuals, tol, seed, loss, sample count and HVPs used; each
        eigenvector's sign is fixed so that its largest-magnitude entry is positive
        (deterministic).

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
    check_option("pair", pair, PAIRS)
    if pair == "topbottom":
        if k != 2:
            raise LandscapeError("pair='topbottom' gives two directions (the largest and the "
                                 "smallest eigenvalue's): use k=2, a 2D surface")
        which = "LA"
    scale = _check_scale(scale)
    weights = named_tensors(model, what)
    op = HessianOperator(model, data, loss=loss, batch_size=batch_size, what=what,
                         ignore="biasbn" if ignore == "biasbn" else None, dtype=dtype)
    res = top_eigen(op, 1 if pair == "topbottom" else k, which=which, tol=tol, seed=seed,
                    max_hvp=max_hvp)
    parts = [res]
    min_atol = None
    if pair == "topbottom":  # λmin to tol relative to the spectral scale |λmax| (near-zero λmin)
        min_atol = float(tol) * abs(float(res.eigenvalues[0]))
        parts.append(min_eigen(op, 1, tol=tol, atol=min_atol, seed=seed, max_hvp=max_hvp))
    recipe = {
        "kind": "hessian",
        "pair": pair,
        "what": what,
        "k": k,
        "which": which,
        "eigenvalues": [float(v) for r in parts for v in r.eigenvalues],
        "residuals": [float(v) for r in parts for v in r.residuals],
        "converged": [bool(c) for r in parts for c in r.converged],
        "n_hvp": int(sum(r.n_hvp for r in parts)),
        "max_hvp": max_hvp,
        "tol": float(tol),
        "min_atol": min_atol,
        "seed": int(seed),
        "loss": loss_name(loss),
        "n_samples": sample_count(data),
        "batch_size": int(batch_size),
        "dtype": str(op.dtype).replace("torch.", ""),
        "sign": "largest-magnitude entry positive",
    }
    if not all(recipe["converged"]):
        recipe["note"] = "not all eigenpairs converged"
    vectors = [{n: t.detach() for n, t in d.items()} for r in parts for d in r.as_dicts(op)]
    return eigenvector_directions(vectors, weights, scale=scale, ignore=ignore, recipe=recipe,
                                  selection=select_parameters(model, what))


def _choices(recipe: Mapping[str, Any]) -> dict[str, Any]:
    return {k: recipe.get(k) for k in _CHOICE_KEYS}


def _rank0_directions(model: nn.Module, data: Any, device: Any, **kw: Any) -> Directions:
    """:func:`hessian_directions` on the evaluation ``device`` (a copy of the model), on CPU;
    under ``torch.distributed`` computed by rank 0 alone and sent to the other ranks, so that
    every rank evaluates the same directions."""
    import copy

    from .._grid import dist_info

    rank, world = dist_info()
    dirs = None
    if rank == 0:
        m = model if device is None else copy.deepcopy(model).to(device)
        d = hessian_directions(m, data, **kw)
        dirs = Directions(tuple({n: t.detach().cpu() for n, t in v.items()}
                                for v in d.vectors), d.recipe)
    if world > 1:
        import torch.distributed as tdist

        box = [dirs]
        tdist.broadcast_object_list(box, src=0)
        dirs = box[0]
    assert dirs is not None
    return dirs


def compute_hessian_surface(
    model: nn.Module,
    data: Mapping[str, Any],
    *,
    x: str,
    y: str | None = None,
    pair: str = "top",
    hessian_data: Any = None,
    loss: LossSpec = "cross_entropy",
    scale: str | float = "none",
    ignore: str = "biasbn",
    tol: float = 1e-6,
    seed: int = 0,
    hessian_batch_size: int = 512,
    hessian_dtype: torch.dtype | None = torch.float64,
    max_hvp: int | None = None,
    out: Any = None,
    overwrite: bool = False,
    group: str = HESSIAN_GROUP,
    **surface: Any,
) -> Any:
    """A loss surface along Hessian eigenvectors, in the file's ``/hessian_surface`` group.

    The eigenvectors of the training loss at the model's weights (:func:`hessian_directions`)
    span the surface: the top two (``pair="top"``; the top one for a 1D surface) or those of
    the largest and the smallest eigenvalue (``pair="topbottom"``, 2D only). The group sits
    beside a random-direction ``/surface`` of the same file. When ``out`` already holds the
    group, its stored directions are reused (no eigen-solve, so a resumed run is bit-identical)
    provided they were computed with the same choices (pair, tol, seed, loss, samples, scale,
    ...); another choice is refused.

    Parameters
    ----------
    model : nn.Module
        The network at the origin (not modified).
    data : dict[str, data]
        Datasets the surface evaluates (as :func:`~landscape.surface.compute_surface`).
    x, y : str
        The grid (``y`` for 2D).
    pair : {"top", "topbottom"}, default "top"
        Which eigenvectors (see :func:`hessian_directions`).
    hessian_data : data, optional
        Samples of the Hessian's loss (default ``data["train"]``).
    loss, scale, ignore, tol, seed, max_hvp
        As for :func:`hessian_directions`, but ``scale`` defaults to ``"none"``: unit
        eigenvectors, along which the surface of a quadratic is ``L* + λ a² / 2`` and a
        negative eigenvalue shows as a descent (grid units: Euclidean distance in the
        weights). ``"filter"`` rescales every filter to the weights' filter norm as for
        random directions; the vectors are then no longer eigenvectors (measured on the
        quick demo's ResNet-20s: the λmin direction then rises steeply instead of
        descending), so the slice no longer shows the curvature it was chosen for.
    hessian_batch_size : int, default 512
        Batch size of the Hessian-vector products.
    hessian_dtype : torch.dtype or None, default torch.float64
        Dtype of the Hessian-vector products (``None``: the model's).
    out, overwrite, group
        Output file and the group it writes (``"hessian_surface"``).
    **surface
        Further arguments of :func:`~landscape.surface.compute_surface` (``batch_size``,
        ``device``, ``dtype``, ``recipe``, ``provenance``, ``progress``, ...).

    Returns
    -------
    Surface
        With :attr:`~landscape.surface.Surface.group` ``group``; its directions' recipe holds
        the eigenvalues used (``eigenvalues``, in the order x, y).

    Raises
    ------
    LandscapeError
        If ``out`` holds the group computed with other choices (naming them), for
        ``pair="topbottom"`` without ``y``, or for invalid parameters.
    """
    from pathlib import Path

    from .. import storage
    from ..surface import Surface, check_group_name, compute_surface

    check_group_name(group)
    check_option("pair", pair, PAIRS)
    k = 1 if y is None else 2
    if pair == "topbottom" and k == 1:
        raise LandscapeError("the largest and smallest eigenvalue's directions make a 2D "
                             "surface: pass a grid y='min:max:num' (or use the top "
                             "eigenvector in 1D)")
    if hessian_data is None:
        if "train" not in data:
            raise LandscapeError("the Hessian needs training data: pass hessian_data or a "
                                 "'train' dataset")
        hessian_data = data["train"]
    wanted = _choices({
        "kind": "hessian", "pair": pair, "what": "weights", "k": k, "which": "LA",
        "tol": float(tol), "seed": int(seed), "loss": loss_name(loss),
        "n_samples": sample_count(hessian_data), "batch_size": int(hessian_batch_size),
        "dtype": str(hessian_dtype or next(iter(named_tensors(model).values())).dtype
                     ).replace("torch.", ""),
        "max_hvp": max_hvp, "norm": "filter" if _check_scale(scale) == "filter" else "none",
        "scale": _check_scale(scale), "ignore": ignore,
    })
    dirs = None
    if out is not None and not overwrite and Path(out).exists() \
            and group in storage.list_groups(out):
        old = Surface.load(out, group)
        have = _choices(old.directions.recipe) if old.directions is not None else {}
        diff = sorted(key for key in wanted if have.get(key) != wanted[key])
        if diff:
            raise LandscapeError(
                f"'{out}' holds a /{group} computed with other Hessian directions (differs "
                f"in: {', '.join(diff)}); pass overwrite=True to replace it or choose "
                "another out=PATH"
            )
        dirs = old.directions
    if dirs is None:
        dirs = _rank0_directions(model, hessian_data, surface.get("device"), k=k, loss=loss,
                                 batch_size=hessian_batch_size, ignore=ignore, tol=tol,
                                 seed=seed, scale=scale, dtype=hessian_dtype,
                                 max_hvp=max_hvp, pair=pair)
    return compute_surface(model, dirs, data, x=x, y=y, loss=loss, out=out,
                           overwrite=overwrite, group=group, **surface)
