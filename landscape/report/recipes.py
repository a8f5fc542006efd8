"""Whether several networks' results were computed with the same recipe.

Comparable means: same grid, same kind of directions (for random directions also the same
normalization, ignore rule, tensor selection, seeds and orthogonalization; PCA directions of
two runs necessarily differ, so only their kind, selection, normalization and ignore rule are
compared), same loss, same data (spec and sizes) and same BatchNorm mode. Surfaces along
Hessian eigenvectors (``/hessian_surface``) must agree in their grid, which eigenvectors
(``pair``), their scaling, ignore rule and Hessian samples, loss and data (their eigenvalues
are results and differ). The first key that differs is named in the error, with both values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import LandscapeError
from .results import NetworkResults

__all__ = ["check_comparable"]

_DIRECTION_KEYS = ("kind", "what", "norm", "ignore")
_RANDOM_KEYS = ("seeds", "orthogonal")
_RECIPE_KEYS = ("loss", "data", "datasets", "bn", "bn_batches")
_HESSIAN_KEYS = ("pair", "k", "norm", "scale", "ignore", "n_samples")
_UNKNOWN = object()


def _axis_spec(c: Any) -> str:
    v = np.asarray(c, dtype=np.float64).ravel()
    if v.size == 0:
        return "empty"
    return f"{v[0]:g}:{v[-1]:g}:{v.size}"


def _comparable_items(res: NetworkResults) -> dict[str, Any]:
    """The recipe entries that must agree, by dotted key (``_UNKNOWN`` when not recorded)."""
    out: dict[str, Any] = {}
    s = res.surface
    if s is not None:
        out["grid.x"] = _axis_spec(s.x)
        out["grid.y"] = None if s.y is None else _axis_spec(s.y)
        recipe = s.recipe if isinstance(s.recipe, Mapping) else {}
        d = recipe.get("directions")
        if not isinstance(d, Mapping) and s.directions is not None:
            d = s.directions.recipe
        if isinstance(d, Mapping):
            keys = _DIRECTION_KEYS + (_RANDOM_KEYS if d.get("kind") == "random" else ())
            for k in keys:
                out[f"directions.{k}"] = d.get(k)
        else:
            out["directions.kind"] = _UNKNOWN
        for k in _RECIPE_KEYS:
            out[k] = recipe.get(k) if k in recipe else _UNKNOWN
    h = res.hessian_surface
    if h is not None:
        out["hessian.grid.x"] = _axis_spec(h.x)
        out["hessian.grid.y"] = None if h.y is None else _axis_spec(h.y)
        d = h.directions.recipe if h.directions is not None else {}
        for k in _HESSIAN_KEYS:
            out[f"hessian.directions.{k}"] = d.get(k, _UNKNOWN)
        recipe = h.recipe if isinstance(h.recipe, Mapping) else {}
        for k in _RECIPE_KEYS:
            out[f"hessian.{k}"] = recipe.get(k) if k in recipe else _UNKNOWN
    rm = res.ratio_map
    if rm is not None:
        spec = [_axis_spec(rm.x)]
        if rm.y is not None:
            spec.append(_axis_spec(rm.y))
        out["ratio_map.grid"] = " x ".join(spec)
    if res.curvature is not None:
        cr = res.curvature.recipe
        for k in ("loss", "data", "bn"):
            if k in cr:
                out[f"curvature.{k}"] = cr[k]
        out["curvature.operator"] = res.curvature.operator
    if res.block_spectra is not None:
        br = res.block_spectra.recipe
        for k in ("operator", "blocks", "loss", "data"):
            if k in br:
                out[f"block_spectra.{k}"] = br[k]
    return out


def _fmt_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def _order(keys: set[str]) -> list[str]:
    fixed = ["grid.x", "grid.y", *(f"directions.{k}" for k in _DIRECTION_KEYS + _RANDOM_KEYS),
             *_RECIPE_KEYS, "ratio_map.grid", "curvature.loss", "curvature.data",
             "curvature.bn"]
    return [k for k in fixed if k in keys] + sorted(keys - set(fixed))


def check_comparable(results: Sequence[NetworkResults]) -> tuple[dict[str, Any], list[str]]:
    """Check that results were computed with the same recipe.

    Every network is checked against the first one that records each key; keys that a file
    does not record (e.g. files of Li et al. carry no recipe) are skipped with a note.

    Parameters
    ----------
    results : sequence of NetworkResults

    Returns
    -------
    recipe : dict
        The common recipe (dotted keys: ``grid.x``, ``directions.norm``, ``loss``, ...).
    notes : list of str
        What could not be checked.

    Raises
    ------
    LandscapeError
        Naming the first differing key and both values, e.g. ``cannot compare: grid.x differs
        (a.h5: -1:1:51 vs b.h5: -1:1:41); compute both with the same recipe``.
    """
    items = [_comparable_items(r) for r in results]
    keys = set().union(*items) if items else set()
    common: dict[str, Any] = {}
    notes: list[str] = []
    for key in _order(keys):
        ref_i = next((i for i, it in enumerate(items)
                      if key in it and it[key] is not _UNKNOWN), None)
        if ref_i is None:
            continue
        ref = items[ref_i][key]
        for i, it in enumerate(items):
            if key not in it:
                continue
            v = it[key]
            if v is _UNKNOWN:
                notes.append(f"'{results[i].path}' does not record {key}; it was not checked")
                continue
            if v != ref:
                a, b = results[ref_i], results[i]
                raise LandscapeError(
                    f"cannot compare: {key} differs ({a.path}: {_fmt_value(ref)} vs "
                    f"{b.path}: {_fmt_value(v)}); compute both with the same recipe"
                )
        common[key] = ref
    return common, notes
