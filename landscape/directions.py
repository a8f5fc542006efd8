"""Directions in parameter space: random (filter-normalized), interpolation, plane, and containers.

A *direction* is a plain ``dict[str, Tensor]`` with the same keys, shapes and dtypes as the
tensors it perturbs (see :func:`landscape._functional.named_tensors`). A loss surface is

.. math:: f(\\alpha, \\beta) = L(\\theta^* + \\alpha\\,\\delta + \\beta\\,\\eta).

Normalization (Li et al. 2018, section 4) rescales a Gaussian direction ``d`` to the scale of the
weights ``θ`` it perturbs:

``"filter"`` (default)
    every filter ``j`` (slice along dim 0: a conv output channel, a Linear row) gets
    ``d_j <- d_j / ||d_j|| * ||θ_j||``.
``"layer"``
    every tensor gets ``d <- d / ||d|| * ||θ||``.
``"model"``
    the whole direction gets ``d <- d / ||d|| * ||θ||`` over all perturbed entries.
``"none"``
    the raw Gaussian.

Tensors with at most one dimension (biases, BatchNorm weights and running statistics) get a
zero direction with ``ignore="biasbn"`` (default). With ``ignore="none"`` they follow Li et
al.'s code under ``"filter"``/``"layer"`` (``d = θ``, so moving along the direction scales them)
and are ordinary Gaussian entries under ``"model"``/``"none"``. Integer tensors (e.g.
``num_batches_tracked``) never move.

Given a :class:`~landscape.parameters.ParameterSelection` (``selection=``, from
:func:`~landscape.parameters.select_parameters`), the rules follow the model's modules instead
of tensor shapes: ``"biasbn"`` covers every bias and every tensor of a normalisation layer
(also a ``LayerNorm([8, 8])`` weight), filters are slices along the output axis (dim 1 of a
HuggingFace ``Conv1D`` weight), and tensors the selection does not perturb (frozen ones,
those outside ``params`` / inside ``exclude``) get a zero direction. The Gaussian draws are
the same with or without a selection, so for an ordinary network the directions are
bit-identical.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import LandscapeError, check_int, check_option
from .parameters import ParameterSelection, is_perturbable, named_tensors, select_parameters

__all__ = [
    "NORMS",
    "IGNORES",
    "Directions",
    "random_direction",
    "random_directions",
    "normalize_direction",
    "orthogonalize",
    "interpolation_direction",
    "plane_directions",
    "direction_norms",
    "inner",
    "filter_norms",
    "check_spanning",
]

#: Two directions whose cosine exceeds this in absolute value span a line, not a plane (float32
#: rounding of exactly collinear model differences leaves ``1 - |cos|`` near 1e-8).
_COLLINEAR = 1.0 - 1e-6

NORMS = ("filter", "layer", "model", "none")
IGNORES = ("biasbn", "none")
_EPS = 1e-10

Direction = dict[str, Tensor]


def _is_small(t: Tensor, k: str, selection: ParameterSelection | None) -> bool:
    if selection is not None:
        return t.dim() <= 1 or selection.is_biasbn(k)
    return t.dim() <= 1


def _filter_dim(k: str, selection: ParameterSelection | None) -> int:
    return 0 if selection is None else selection.filter_dim(k)


def _check_selection(
    selection: ParameterSelection | None, weights: Mapping[str, Tensor] | None = None
) -> None:
    if selection is None:
        return
    if not isinstance(selection, ParameterSelection):
        raise LandscapeError(
            "The 'selection' parameter must be a ParameterSelection (select_parameters(model)) "
            f"or None. Got {type(selection).__name__} instead."
        )
    if weights is not None:
        known = set(selection.names)
        unknown = [k for k in weights if k not in known]
        if unknown:
            raise LandscapeError(
                f"the selection does not know the tensors {unknown[:3]}; make it from the "
                "same model and what='weights'/'states' as the tensors"
            )


def filter_norms(t: Tensor, dim: int = 0) -> Tensor:
    """Frobenius norm of every filter (slice along ``dim``, the output units) of ``t``.

    Returns a tensor of shape ``(t.shape[dim],)``.
    """
    t = t.detach()
    if dim != 0:
        t = t.movedim(dim, 0)
    return t.reshape(t.shape[0], -1).double().norm(dim=1)


def inner(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Euclidean inner product of two directions over their common floating tensors."""
    total = 0.0
    for k, v in a.items():
        if k in b and is_perturbable(v):
            total += float(torch.sum(v.double() * b[k].double()))
    return total


def direction_norms(d: Mapping[str, Tensor]) -> float:
    """Euclidean norm of a direction over all of its floating entries."""
    return inner(d, d) ** 0.5


def check_spanning(
    vectors: Sequence[Mapping[str, Tensor]], labels: Sequence[str] = ("x", "y")
) -> None:
    """Refuse directions that cannot make a surface: a zero (or non-finite) direction, whose
    surface would be constant, and two collinear directions, which span a line, not a plane.

    Parameters
    ----------
    vectors : sequence of dict[str, Tensor]
        One or two directions.
    labels : sequence of str, default=("x", "y")
        How the messages name the directions.

    Raises
    ------
    LandscapeError
        Naming the first degenerate direction.
    """
    norms = []
    for vec, label in zip(vectors, labels, strict=False):
        n = direction_norms(vec)
        if not np.isfinite(n):
            raise LandscapeError(f"direction {label} has non-finite entries (NaN or inf)")
        if n == 0.0:
            raise LandscapeError(
                f"direction {label} is zero (norm 0): moving along it changes nothing, so the "
                "surface would be constant"
            )
        norms.append(n)
    if len(norms) == 2:
        cos = inner(vectors[0], vectors[1]) / (norms[0] * norms[1])
        if abs(cos) > _COLLINEAR:
            raise LandscapeError(
                f"directions {labels[0]} and {labels[1]} are collinear (cosine {cos:.7f}): they "
                "span a line, not a plane -- use two different directions"
            )


def normalize_direction(
    direction: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    norm: str = "filter",
    ignore: str = "biasbn",
    selection: ParameterSelection | None = None,
) -> Direction:
    """Rescale a raw direction to the scale of ``weights``.

    Parameters
    ----------
    direction : dict[str, Tensor]
        Raw direction (same keys/shapes as ``weights``).
    weights : dict[str, Tensor]
        The tensors the direction perturbs.
    norm : {"filter", "layer", "model", "none"}, default="filter"
        Normalization unit (see the module docstring).
    ignore : {"biasbn", "none"}, default="biasbn"
        ``"biasbn"`` zeroes the direction of every tensor with at most one dimension (with a
        ``selection``: also of every bias and normalisation-layer tensor).
    selection : ParameterSelection, optional
        Which tensors move and their output axes (see the module docstring). Default: every
        floating tensor, filters along dim 0, ``"biasbn"`` by dimension.

    Returns
    -------
    dict[str, Tensor]
        A new direction; the input is not modified.
    """
    check_option("norm", norm, NORMS)
    check_option("ignore", ignore, IGNORES)
    _check_selection(selection, weights)
    _check_same_keys(direction, weights)
    out: Direction = {}
    for k, w in weights.items():
        d = direction[k].detach().to(dtype=w.dtype, device=w.device).clone()
        if not is_perturbable(w) or (selection is not None and not selection.moves(k)):
            out[k] = torch.zeros_like(w)
            continue
        if _is_small(w, k, selection):
            if ignore == "biasbn":
                d.zero_()
            elif norm in ("filter", "layer"):
                d.copy_(w.detach())
            out[k] = d
            continue
        if norm == "filter" and _filter_dim(k, selection) != 0:
            fd = _filter_dim(k, selection)
            dm, wm = d.movedim(fd, 0), w.detach().movedim(fd, 0)
            dn = dm.reshape(dm.shape[0], -1).norm(dim=1)
            wn = wm.reshape(wm.shape[0], -1).norm(dim=1)
            scale = wn / (dn + _EPS)
            dm.mul_(scale.reshape((-1,) + (1,) * (dm.dim() - 1)))  # a view: scales d
        elif norm == "filter":
            dn = d.reshape(d.shape[0], -1).norm(dim=1)
            wn = w.detach().reshape(w.shape[0], -1).norm(dim=1)
            scale = wn / (dn + _EPS)
            d.mul_(scale.reshape((-1,) + (1,) * (d.dim() - 1)))
        elif norm == "layer":
            d.mul_(w.detach().norm() / (d.norm() + _EPS))
        out[k] = d
    if norm == "model":
        wn = _global_norm(weights, out)
        dn = direction_norms(out)
        scale = wn / (dn + _EPS)
        out = {k: v * scale if is_perturbable(v) else v for k, v in out.items()}
    return out


def _global_norm(weights: Mapping[str, Tensor], mask_like: Mapping[str, Tensor]) -> float:
    """Norm of the weights over the entries a direction actually moves (non-zero tensors)."""
    total = 0.0
    for k, w in weights.items():
        d = mask_like[k]
        if is_perturbable(w) and bool(torch.any(d != 0)):
            total += float(torch.sum(w.detach().double() ** 2))
    return total**0.5


def _check_same_keys(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> None:
    if list(a.keys()) != list(b.keys()):
        missing = [k for k in b if k not in a][:3]
        extra = [k for k in a if k not in b][:3]
        raise LandscapeError(
            "direction and weights have different tensors"
            + (f": missing {missing}" if missing else "")
            + (f", unexpected {extra}" if extra else "")
            + " -- the direction was made for another model or another 'what' parameter"
        )
    for k in a:
        if tuple(a[k].shape) != tuple(b[k].shape):
            raise LandscapeError(
                f"direction tensor '{k}' has shape {tuple(a[k].shape)} but the model's has "
                f"{tuple(b[k].shape)} -- the direction was made for another architecture"
            )


def random_direction(
    weights: Mapping[str, Tensor],
    *,
    seed: int,
    norm: str = "filter",
    ignore: str = "biasbn",
    selection: ParameterSelection | None = None,
) -> Direction:
    """A seeded Gaussian direction, normalized to the scale of ``weights``.

    The Gaussian entries are drawn on the CPU from ``torch.Generator().manual_seed(seed)`` for
    every floating tensor in order (also those later zeroed), so a seed gives the same
    direction whatever the device, ``norm``, ``ignore`` or ``selection``.

    Parameters
    ----------
    weights : dict[str, Tensor]
        Tensors to perturb (``named_tensors(model, "weights" | "states")``).
    seed : int
        Seed of this direction.
    norm, ignore : str
        See :func:`normalize_direction`.
    selection : ParameterSelection, optional
        See :func:`normalize_direction`.

    Returns
    -------
    dict[str, Tensor]

    Examples
    --------
    >>> import torch
    >>> w = {"lin.weight": torch.ones(3, 4), "lin.bias": torch.ones(3)}
    >>> d = random_direction(w, seed=0)
    >>> float(d["lin.weight"][0].norm())  # equals the filter norm of w, 2.0
    2.0
    """
    seed = check_int("seed", seed, 0, 2**63 - 1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    raw: Direction = {}
    for k, w in weights.items():
        if is_perturbable(w):
            g = torch.randn(tuple(w.shape), generator=gen, dtype=torch.float32)
            raw[k] = g.to(device=w.device, dtype=w.dtype)
        else:
            raw[k] = torch.zeros_like(w)
    return normalize_direction(raw, weights, norm=norm, ignore=ignore, selection=selection)


def orthogonalize(
    d2: Mapping[str, Tensor],
    d1: Mapping[str, Tensor],
    weights: Mapping[str, Tensor],
    norm: str = "filter",
    selection: ParameterSelection | None = None,
) -> Direction:
    """Make ``d2`` orthogonal to ``d1`` while keeping its normalization.

    Gram-Schmidt is applied inside every normalization unit (every filter for ``"filter"``,
    every tensor for ``"layer"``, the whole vector for ``"model"``/``"none"``) and each unit
    is rescaled back to its previous norm, so the result is exactly orthogonal to ``d1`` *and*
    still has the filter (layer, model) norms of ``weights``. With a ``selection``, filters
    are slices along its output axes and its ``"biasbn"`` tensors are one unit each.
    """
    check_option("norm", norm, NORMS)
    _check_selection(selection, weights)
    _check_same_keys(d2, d1)
    out: Direction = {}
    if norm in ("model", "none"):
        c = inner(d2, d1) / max(inner(d1, d1), _EPS)
        before = direction_norms(d2)
        out = {k: (v - c * d1[k]) if is_perturbable(v) else v.clone() for k, v in d2.items()}
        after = direction_norms(out)
        if after > 0:
            s = before / after
            out = {k: v * s if is_perturbable(v) else v for k, v in out.items()}
        return out
    for k, v in d2.items():
        u = d1[k]
        if not is_perturbable(v) or v.dim() == 0 or not bool(torch.any(v != 0)):
            out[k] = v.clone()
            continue
        by_filter = norm == "filter" and not _is_small(v, k, selection)
        fd = _filter_dim(k, selection) if by_filter else 0
        vm, um = (v.movedim(fd, 0), u.movedim(fd, 0)) if fd else (v, u)
        if by_filter:
            a = vm.reshape(vm.shape[0], -1).double()
            b = um.reshape(um.shape[0], -1).double()
        else:
            a = v.reshape(1, -1).double()
            b = u.reshape(1, -1).double()
        before = a.norm(dim=1, keepdim=True)
        bb = (b * b).sum(dim=1, keepdim=True)
        coef = torch.where(bb > 0, (a * b).sum(dim=1, keepdim=True) / bb.clamp_min(1e-300), 0.0)
        r = a - coef * b
        after = r.norm(dim=1, keepdim=True)
        r = torch.where(after > 0, r * (before / after.clamp_min(1e-300)), r)
        if fd:
            out[k] = r.reshape(vm.shape).movedim(0, fd).to(v.dtype).contiguous()
        else:
            out[k] = r.reshape(v.shape).to(v.dtype)
    return out


def interpolation_direction(
    a: Mapping[str, Tensor], b: Mapping[str, Tensor]
) -> Direction:
    """The direction ``b - a`` (so ``a + 1·(b - a) = b``); integer tensors get zeros."""
    _check_same_keys(b, a)
    return {
        k: (b[k].detach().to(v.dtype) - v.detach()) if is_perturbable(v) else torch.zeros_like(v)
        for k, v in a.items()
    }


def plane_directions(
    a: Mapping[str, Tensor],
    b: Mapping[str, Tensor],
    c: Mapping[str, Tensor],
    *,
    orthogonal: bool = False,
) -> tuple[Direction, Direction, dict[str, tuple[float, float]]]:
    """Directions of the plane through three models, with ``a`` at the origin.

    Parameters
    ----------
    a, b, c : dict[str, Tensor]
        Tensors of the three models.
    orthogonal : bool, default=False
        ``False``: ``dx = b - a``, ``dy = c - a`` (models at (0,0), (1,0), (0,1)).
        ``True``: Gram-Schmidt with ``|dy| = |dx|`` (Garipov et al. 2018 style), ``c`` at
        the coordinates returned.

    Returns
    -------
    dx, dy : dict[str, Tensor]
    coords : dict
        Coordinates of ``"a"``, ``"b"``, ``"c"`` in the plane.

    Raises
    ------
    LandscapeError
        If two of the models are identical or the three lie on one line.
    """
    dx = interpolation_direction(a, b)
    dy = interpolation_direction(a, c)
    nx, ny = direction_norms(dx), direction_norms(dy)
    for n, other in ((nx, "b"), (ny, "c")):
        if n == 0:
            raise LandscapeError(
                f"models a and {other} are identical; the three do not span a plane"
            )
    cos = inner(dx, dy) / (nx * ny)
    if abs(cos) > _COLLINEAR:
        raise LandscapeError(
            f"the three models are collinear (b - a and c - a have cosine {cos:.7f}); they "
            "do not span a plane"
        )
    if not orthogonal:
        return dx, dy, {"a": (0.0, 0.0), "b": (1.0, 0.0), "c": (0.0, 1.0)}
    nx2 = inner(dx, dx)
    cx = inner(dy, dx) / nx2
    r = {k: v - cx * dx[k] if is_perturbable(v) else v for k, v in dy.items()}
    nr = direction_norms(r)
    if nr == 0:
        raise LandscapeError("the three models are collinear; they do not span a plane")
    s = nx2**0.5 / nr
    dy_o = {k: v * s if is_perturbable(v) else v for k, v in r.items()}
    return dx, dy_o, {"a": (0.0, 0.0), "b": (1.0, 0.0), "c": (cx, 1.0 / s)}


@dataclass(frozen=True)
class Directions:
    """One or two directions with the recipe that made them.

    Attributes
    ----------
    vectors : tuple of dict[str, Tensor]
        ``(dx,)`` for a 1D surface, ``(dx, dy)`` for 2D.
    recipe : dict
        JSON-serialisable provenance: ``kind`` (``"random"``, ``"interpolation"``,
        ``"plane"``, ``"pca"``, ``"hessian"``, ...), ``what`` (``"weights"``/``"states"``),
        ``norm``, ``ignore``, ``seeds``, ``orthogonalize`` and kind-specific sources.
    """

    vectors: tuple[Direction, ...]
    recipe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.vectors) not in (1, 2):
            raise LandscapeError(
                f"a surface needs 1 or 2 directions; got {len(self.vectors)}"
            )
        if len(self.vectors) == 2:
            _check_same_keys(self.vectors[1], self.vectors[0])

    @property
    def ndim(self) -> int:
        """Number of directions (1 or 2)."""
        return len(self.vectors)

    @property
    def what(self) -> str:
        """Tensor selection the directions apply to (``"weights"`` or ``"states"``)."""
        return str(self.recipe.get("what", "weights"))

    def digest(self) -> str:
        """SHA-256 of the direction tensors (names, shapes and bytes), for recipe checks."""
        h = hashlib.sha256()
        for vec in self.vectors:
            for k, v in vec.items():
                h.update(k.encode())
                h.update(str(tuple(v.shape)).encode())
                h.update(str(v.dtype).encode())
                h.update(np.ascontiguousarray(tensor_numpy(v)).reshape(-1).data)  # no copy
        return h.hexdigest()

    def recipe_json(self) -> str:
        """The recipe as canonical JSON."""
        return json.dumps(self.recipe, sort_keys=True)

    def to(self, device: torch.device | str) -> Directions:
        """Copy of the directions on ``device``."""
        return Directions(
            tuple({k: v.to(device) for k, v in vec.items()} for vec in self.vectors),
            dict(self.recipe),
        )

    def astype(self, dtype: torch.dtype) -> Directions:
        """The directions with their floating tensors rounded to ``dtype`` (this object where
        they are all in ``dtype`` already); the recipe is kept.

        Rounding to ``torch.bfloat16`` changes every entry by at most ``2**-8`` of itself
        (``torch.float16``: ``2**-11``, within its range), so a surface along the rounded
        directions is the surface along directions within that relative distance.
        """
        dtype = check_direction_dtype(dtype)
        if all(v.dtype == dtype for vec in self.vectors for v in vec.values()
               if v.is_floating_point()):
            return self
        return Directions(
            tuple({k: v.to(dtype) if v.is_floating_point() else v for k, v in vec.items()}
                  for vec in self.vectors),
            dict(self.recipe),
        )


#: Dtypes the directions of a surface may be held in (``direction_dtype``).
DIRECTION_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def check_direction_dtype(dtype: Any) -> torch.dtype:
    """``dtype`` if it is one of :data:`DIRECTION_DTYPES`, else a :class:`LandscapeError`."""
    if dtype not in DIRECTION_DTYPES:
        raise LandscapeError(
            "The 'direction_dtype' parameter must be torch.float64, torch.float32, "
            f"torch.bfloat16 or torch.float16. Got {dtype!r} instead."
        )
    return dtype


def tensor_numpy(t: Tensor) -> np.ndarray:
    """A CPU NumPy view of ``t``; bfloat16, which NumPy lacks, as its raw 16-bit patterns
    (``int16``; :func:`tensor_from_numpy` restores it)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy()
    return t.numpy()


def tensor_from_numpy(a: np.ndarray, dtype: str | None = None) -> Tensor:
    """The tensor of :func:`tensor_numpy` (``dtype="bfloat16"`` for the raw patterns)."""
    t = torch.from_numpy(np.array(a))
    return t.view(torch.bfloat16) if dtype == "bfloat16" else t


def random_directions(
    weights: Mapping[str, Tensor] | nn.Module,
    *,
    ndim: int = 2,
    seeds: Sequence[int] | int = 0,
    norm: str = "filter",
    ignore: str = "biasbn",
    what: str = "weights",
    orthogonal: bool = False,
    selection: ParameterSelection | None = None,
) -> Directions:
    """One or two seeded, normalized Gaussian directions with their recipe.

    Parameters
    ----------
    weights : dict[str, Tensor] or nn.Module
        Tensors to perturb. A module stands for ``named_tensors(module, what)`` with its
        default selection ``select_parameters(module, what)`` (frozen parameters held fixed,
        biases and normalisation layers by module type) unless ``selection`` is given.
    ndim : {1, 2}
        Number of directions.
    seeds : int or sequence of int, default=0
        One seed per direction; an int ``s`` means ``(s, s + 1)``.
    norm, ignore : str
        See :func:`normalize_direction`.
    what : {"weights", "states"}
        Recorded in the recipe (the tensor selection ``weights`` came from).
    orthogonal : bool, default=False
        Make the second direction orthogonal to the first (see :func:`orthogonalize`).
    selection : ParameterSelection, optional
        Which tensors move, by module (see :func:`normalize_direction`); its non-default
        options (``params``, ``exclude``, ``include_frozen``) are added to the recipe.

    Returns
    -------
    Directions
    """
    ndim = check_int("ndim", ndim, 1, 2)
    check_option("what", what, ("weights", "states"))
    if isinstance(weights, nn.Module):
        if selection is None:
            selection = select_parameters(weights, what)
        weights = named_tensors(weights, what)
    _check_selection(selection)
    if selection is not None and selection.what != what:
        raise LandscapeError(
            f"the selection was made for what={selection.what!r}, the directions for "
            f"what={what!r}; pass the same tensor selection"
        )
    if isinstance(seeds, int | np.integer):
        seed_list = [int(seeds) + i for i in range(ndim)]
    else:
        seed_list = [check_int("seeds", s, 0) for s in seeds]
    if len(seed_list) != ndim:
        raise LandscapeError(
            f"The 'seeds' parameter must give one seed per direction ({ndim}). "
            f"Got {seed_list} instead."
        )
    if ndim == 2 and seed_list[0] == seed_list[1]:
        raise LandscapeError(
            f"both directions have seed {seed_list[0]}; they would be identical -- "
            "give two different seeds"
        )
    vecs = [random_direction(weights, seed=s, norm=norm, ignore=ignore, selection=selection)
            for s in seed_list]
    if orthogonal and ndim == 2:
        vecs[1] = orthogonalize(vecs[1], vecs[0], weights, norm=norm, selection=selection)
    recipe = {
        "kind": "random",
        "what": what,
        "norm": norm,
        "ignore": ignore,
        "seeds": seed_list,
        "orthogonal": bool(orthogonal and ndim == 2),
        "generator": "torch.randn(cpu, float32)",
    }
    if selection is not None:
        recipe.update(selection.recipe)
    return Directions(tuple(vecs), recipe)
