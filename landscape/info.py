"""Human-readable (or JSON) description of a result file: schema, provenance, completion."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from . import storage
from .results import open as open_results

__all__ = ["summarize", "describe"]


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def summarize(path: str | os.PathLike) -> dict[str, Any]:
    """Everything :func:`describe` prints, as a JSON-serialisable dict.

    Keys: ``file``, ``kind`` (``"landscape"``, ``"li2018"`` or ``"li2018_directions"``),
    ``attrs`` (root), ``groups``
    (per top-level group: ``attrs`` with JSON attributes decoded, ``datasets`` shapes/dtypes),
    and for a surface ``surface_completion`` (``done``: points where every array is computed,
    ``total``, ``shape``, ``nonfinite_loss``, and ``per_array``: computed points of each array,
    where the arrays finished at different points, as in files of Li et al.),
    ``surface_range`` (min and max of the computed finite values of each array),
    ``surface_stderr`` (median and largest standard error of each loss array, where the file
    stores them), ``surface_precision`` (for a surface evaluated to a precision: its recipe
    entry and, per split, the ``samples`` evaluated against the ``full`` evaluation's, see
    :meth:`~landscape.surface.Surface.precision_summary`) and, for a surface on data
    subsets, ``subset_check`` and its text
    ``subset_check_lines`` (:meth:`~landscape.surface.Surface.subset_lines`); for a surface
    along Hessian eigenvectors ``hessian_surface`` (completion, ``pair``, ``eigenvalues``);
    for a surface set ``surface_set_completion`` (``members``, ``seeds``, points ``done`` of
    ``total`` over all members, the grid ``shape``, ``nonfinite_loss``). Every surface group
    is validated as it is read: a damaged one raises.
    """
    storage.check_no_links(path)  # before outline(), which would follow (or trip on) them
    if storage.is_li2018_directions(path):
        return _summarize_li2018_directions(path)
    o = storage.outline(path)
    out: dict[str, Any] = {"file": str(path), "kind": o["kind"], "attrs": o["attrs"]}
    groups: dict[str, Any] = {}

    def flat(g: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        ds = {f"{prefix}{k}": f"{'x'.join(map(str, s)) or 'scalar'} {t}"
              for k, (s, t) in g["datasets"].items()}
        for k, sub in g["groups"].items():
            ds.update(flat(sub, f"{prefix}{k}/"))
        return ds

    for name, g in o["groups"].items():
        entry = {"attrs": {k: _maybe_json(v) for k, v in g["attrs"].items()}}
        ds = flat(g)
        if name == "directions":
            n = {ax: len(sub["datasets"]) for ax, sub in g["groups"].items()}
            entry["tensors_per_direction"] = n
            entry["n_params"] = {
                ax: int(sum(int(np.prod(s)) for s, _ in sub["datasets"].values()))
                for ax, sub in g["groups"].items()
            }
        else:
            entry["datasets"] = ds
        groups[name] = entry
    if o["kind"] == "li2018":
        groups["(root datasets)"] = {"datasets": flat(o)}
    out["groups"] = groups
    results = open_results(path)
    if "surface" in results:
        s = results["surface"]
        nonfinite = int(sum(int(np.sum(~np.isfinite(a[s.done_of(k)])))
                            for k, a in s.arrays.items() if k.endswith("_loss")))
        out["surface_completion"] = {"done": s.n_done, "total": s.n_points,
                                     "shape": list(s.shape), "nonfinite_loss": nonfinite}
        per_array = {k: s.n_done_of(k) for k in sorted(s.arrays)}
        if s.done_per_array is not None and set(per_array.values()) != {s.n_done}:
            out["surface_completion"]["per_array"] = per_array
        ranges = {}
        for k, a in s.arrays.items():
            fin = a[s.done_of(k)]
            fin = fin[np.isfinite(fin)]
            if s.n_done_of(k):
                ranges[k] = [float(fin.min()), float(fin.max())] if fin.size else [None, None]
        if ranges:
            out["surface_range"] = ranges
        errors = {}
        for k in sorted(s.arrays):
            se = s.stderr(k)
            if se is None:
                continue
            fin = se[s.done_of(k)]
            fin = fin[np.isfinite(fin)]
            errors[k] = {"median": float(np.median(fin)), "max": float(fin.max())} \
                if fin.size else None
        if errors:
            out["surface_stderr"] = errors
        if s.counts is not None:
            out["surface_precision"] = {**s.recipe.get("precision", {}),
                                        "samples": s.precision_summary()}
        if s.subset_check is not None:
            out["subset_check"] = s.subset_check
            out["subset_check_lines"] = s.subset_lines()
    if "surface_set" in results:  # loading validates it: a damaged set is an error
        ss = results["surface_set"]
        out["surface_set_completion"] = {
            "members": ss.n_members, "seeds": list(ss.seeds), "done": ss.n_done,
            "total": ss.n_points, "shape": list(ss.shape[1:]),
            "nonfinite_loss": int(sum(int(np.sum(~np.isfinite(a[ss.done])))
                                      for k, a in ss.arrays.items() if k.endswith("_loss")))}
    if "hessian_surface" in results:
        h = results["hessian_surface"]
        r = h.directions.recipe if h.directions is not None else {}
        out["hessian_surface"] = {"done": h.n_done, "total": h.n_points, "shape": list(h.shape),
                                  "pair": r.get("pair"), "eigenvalues": r.get("eigenvalues"),
                                  "converged": r.get("converged")}
    return out


def _summarize_li2018_directions(path: str | os.PathLike) -> dict[str, Any]:
    """A direction file of Li et al.: positional tensors per direction."""
    raw = storage.read_li2018_directions(path, data=False)
    groups = {
        g: {"tensors_per_direction": len(items),
            "n_params": int(sum(int(np.prod(s)) for s, _ in items)),
            "shapes": [f"{'x'.join(map(str, s)) or 'scalar'} {t}" for s, t in items]}
        for g, items in raw.items()
    }
    return {"file": str(path), "kind": "li2018_directions", "attrs": {}, "groups": groups}


def _fmt(v: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(v, dict):
        lines = []
        for k, x in v.items():
            if isinstance(x, dict) and x:
                lines.append(f"{pad}{k}:")
                lines.extend(_fmt(x, indent + 2))
            else:
                lines.append(f"{pad}{k}: {json.dumps(x) if not isinstance(x, str) else x}")
        return lines
    return [f"{pad}{v}"]


def describe(path: str | os.PathLike, *, as_json: bool = False) -> str:
    """Describe a landscape or Li et al. HDF5 file (see :func:`summarize`)."""
    info = summarize(path)
    if as_json:
        return json.dumps(info, indent=2, sort_keys=True, default=str)
    a = info["attrs"]
    lines = [f"{info['file']}"]
    if info["kind"] == "li2018":
        lines.append("  format: Li et al. (2018) surface file (read-only; accuracies in %)")
    elif info["kind"] == "li2018_directions":
        lines.append("  format: Li et al. (2018) direction file (read-only; tensors by position "
                     "in the order of the model's parameters or state_dict: use it with "
                     "load_directions(path, model))")
    else:
        lines.append(f"  format: {a.get('format')} v{a.get('format_version')}, written by "
                     f"landscape {a.get('tool_version')}, created {a.get('created')}")
    c = info.get("surface_completion")
    if c:
        pct = 100.0 * c["done"] / max(c["total"], 1)
        shape = "x".join(str(n) for n in c["shape"])
        every = " in every array" if "per_array" in c else ""
        lines.append(f"  surface: {shape} grid, {c['done']}/{c['total']} points done{every} "
                     f"({pct:.1f}%)" + (f", {c['nonfinite_loss']} non-finite losses"
                                        if c["nonfinite_loss"] else ""))
        if "per_array" in c:
            lines.append("    per array: " + ", ".join(
                f"{k} {n}/{c['total']}" for k, n in c["per_array"].items()))
        errors = info.get("surface_stderr", {})
        for k, (lo, hi) in info.get("surface_range", {}).items():
            se = errors.get(k)
            err = (f"; standard error median {se['median']:.3g}, max {se['max']:.3g}"
                   if se else "")
            lines.append(f"    {k}: min {lo:.6g}, max {hi:.6g}{err}" if lo is not None
                         else f"    {k}: no finite values")
        lines.extend(f"    {line}" for line in info.get("subset_check_lines", ()))
        prec = info.get("surface_precision")
        if prec:
            for split, u in prec.get("samples", {}).items():
                lines.append(f"    {split}: to a relative standard error of "
                             f"{prec.get('rel_precision')}: {u['samples']:,} of {u['full']:,} "
                             "sample evaluations")
    c = info.get("surface_set_completion")
    if c:
        pct = 100.0 * c["done"] / max(c["total"], 1)
        shape = "x".join(str(n) for n in c["shape"])
        lines.append(f"  surface set: {c['members']} direction pairs (seeds {c['seeds']}) on a "
                     f"{shape} grid, {c['done']}/{c['total']} points done ({pct:.1f}%)"
                     + (f", {c['nonfinite_loss']} non-finite losses"
                        if c["nonfinite_loss"] else ""))
    h = info.get("hessian_surface")
    if h:
        shape = "x".join(str(n) for n in h["shape"])
        which = "largest and smallest" if h.get("pair") == "topbottom" else "top"
        lams = ", ".join(f"{v:.6g}" for v in h.get("eigenvalues") or [])
        lines.append(f"  hessian surface: {shape} grid along the Hessian's {which} "
                     f"eigenvectors (eigenvalues {lams}), {h['done']}/{h['total']} points done")
    for name, g in info["groups"].items():
        lines.append(f"  /{name}")
        lines.extend(_fmt(g, 4))
    return "\n".join(lines)
