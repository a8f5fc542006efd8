"""Compare the landscapes of several networks (e.g. a ResNet and its plain twin) -> Report.

:func:`compare` reads one landscape HDF5 file per network -- each may hold a ``/surface``, a
``/trajectory``, a ``/curvature`` group and a ``/ratio_map`` -- checks that they were computed
with the same recipe, and gathers the numbers of :mod:`landscape.metrics` into a
:class:`Report`: a table with the networks as columns, saved as Markdown, HTML and JSON with
side-by-side pictures on shared scales.

Comparable means: same grid, same kind of directions (for random directions also the same
normalization, ignore rule, tensor selection, seeds and orthogonalization; PCA directions of
two runs necessarily differ, so only their kind, selection, normalization and ignore rule are
compared), same loss, same data (spec and sizes) and same BatchNorm mode. The first key that
differs is named in the error, with both values.

Units of ε. A surface is in *direction units*: with filter-normalized directions one unit
moves every filter by its own norm. Keskar et al.'s ``ε = 1e-3`` box is therefore far below
one grid step (0.04 on a ``-1:1:51`` grid) and a surface cannot resolve it. The report gives
two numbers instead of one:

* ``eps_sharpness`` -- the surface-restricted estimate at radius ``eps`` in direction units
  (default 0.1, i.e. a 10 % relative perturbation of every filter, which spans +-2 grid steps of
  a ``-1:1:51`` or ``-1:1:41`` grid); the maximum is taken over the grid points in the box only,
  so it is a 2-D lower bound of a full-space value at that radius;
* ``eps_sharpness_ascent`` -- when checkpoints are given, Keskar et al.'s own definition in
  the full parameter space at ``ascent_eps`` (default 1e-3), maximised by projected
  sign-gradient ascent (:func:`landscape.metrics.eps_sharpness_ascent`).

References
----------
.. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of
   neural nets", NeurIPS 2018.
.. [2] N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang, "On large-batch
   training for deep learning: generalization gap and sharp minima", ICLR 2017.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from ._atomic import atomic_write
from .errors import LandscapeError, check_float, check_int
from .metrics import (
    basin_width,
    convex_area_fraction,
    eps_sharpness_ascent,
    eps_sharpness_from_surface,
    low_dimensionality,
    origin_index,
    roughness,
    surface_minimum,
)
from .surface import Surface
from .trajectory import Trajectory, load_trajectory

__all__ = ["METRIC_KEYS", "NetworkResults", "Report", "compare", "load_results",
           "check_comparable"]

#: Rows of the comparison table, in order.
METRIC_KEYS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "train_loss_min",
    "eps_sharpness",
    "eps_sharpness_ascent",
    "basin_width_x",
    "basin_width_y",
    "local_minima",
    "total_variation",
    "nonfinite_fraction",
    "lambda_max",
    "lambda_min",
    "ratio_at_minimum",
    "convex_area_fraction",
    "trace",
    "trace_stderr",
    "pc1",
    "pc1_pc2",
    "n_components_for_90",
    "path_capture",
    "random_path_capture",
)

_INT_KEYS = ("local_minima", "n_components_for_90")
_DIRECTION_KEYS = ("kind", "what", "norm", "ignore")
_RANDOM_KEYS = ("seeds", "orthogonal")
_RECIPE_KEYS = ("loss", "data", "datasets", "bn", "bn_batches")
_BUILTIN_LOSSES = ("cross_entropy", "mse")
_JSON_FORMAT = "landscape-compare"
_JSON_VERSION = 1


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class NetworkResults:
    """What one network's file holds (each part ``None`` when absent).

    Attributes
    ----------
    name : str
        Column name in the report.
    path : str
        The file, as given.
    surface : Surface or None
        ``/surface`` (or a surface file of Li et al.).
    trajectory : Trajectory or None
        ``/trajectory``.
    curvature : storage.Group or None
        ``/curvature`` as read (``top_eigenvalues``, ``min_eigenvalue``, ``ratio``, ``trace``,
        ``density_grid``, ``density``, ...).
    ratio_map : dict or None
        ``x``, ``y``, ``ratio`` (or ``lambda_min``/``lambda_max``), ``done`` of ``/ratio_map``.
    """

    name: str
    path: str
    surface: Surface | None = None
    trajectory: Trajectory | None = None
    curvature: storage.Group | None = None
    ratio_map: dict[str, np.ndarray] | None = None
    pca_surface: Surface | None = None


def _ratio_map_of(path: str | os.PathLike, groups: Sequence[str],
                  curvature: storage.Group | None) -> dict[str, np.ndarray] | None:
    if "ratio_map" in groups:
        g = storage.read_group(path, "ratio_map")
        if g is not None:
            d = {k: np.asarray(v) for k, v in g.datasets.items()}
            if "ratio" in d or ("lambda_min" in d and "lambda_max" in d):
                return d
    if curvature is not None:  # older layout: a ratio map inside /curvature
        for name in ("ratio_map", "ratio"):
            v = curvature.datasets.get(name)
            if v is not None and np.ndim(v) >= 1 and "x" in curvature.datasets:
                d = {"ratio": np.asarray(v, dtype=np.float64),
                     "x": np.asarray(curvature.datasets["x"])}
                if "y" in curvature.datasets:
                    d["y"] = np.asarray(curvature.datasets["y"])
                return d
    return None


def _is_pca(s: Surface) -> bool:
    return isinstance(s.recipe, Mapping) and (s.recipe.get("directions") or {}).get("kind") == "pca"


def load_results(path: str | os.PathLike | Sequence[str | os.PathLike],
                 name: str | None = None) -> NetworkResults:
    """Read everything :func:`compare` uses from one network's landscape file(s).

    Parameters
    ----------
    path : str or os.PathLike, or a sequence of them
        A landscape HDF5 file (or a surface file of Li et al.), or several files of the same
        network that are merged: the first file holding a group wins, except that a surface
        along PCA directions (from ``landscape trajectory --surface``) is kept apart as
        ``pca_surface`` (drawn under the optimizer path) and never used as ``surface``.
    name : str, optional
        Column name; default the file's stem.

    Returns
    -------
    NetworkResults

    Raises
    ------
    LandscapeError
        If the file cannot be read or holds none of ``/surface``, ``/trajectory``,
        ``/curvature``, ``/ratio_map``.
    """
    if not isinstance(path, str | os.PathLike):
        parts = [load_results(q, name) for q in path]
        if not parts:
            raise LandscapeError("no file given for a network")
        found: dict[str, Any] = {}
        for r in parts:
            for surf in (r.surface, r.pca_surface):
                if surf is not None:
                    found.setdefault("pca_surface" if _is_pca(surf) else "surface", surf)
            for key in ("trajectory", "curvature", "ratio_map"):
                if getattr(r, key) is not None:
                    found.setdefault(key, getattr(r, key))
        return NetworkResults(parts[0].name, " + ".join(r.path for r in parts), **found)
    p = str(path)
    name = Path(p).stem if name is None else name
    kind = storage.file_kind(p)
    if kind == "li2018":
        return NetworkResults(name, p, surface=Surface.load(p))
    groups = storage.list_groups(p)
    surface = Surface.load(p) if "surface" in groups else None
    trajectory = load_trajectory(p) if "trajectory" in groups else None
    curvature = storage.read_group(p, "curvature") if "curvature" in groups else None
    ratio_map = _ratio_map_of(p, groups, curvature)
    if surface is None and trajectory is None and curvature is None and ratio_map is None:
        raise LandscapeError(
            f"'{p}' holds nothing to compare: no /surface, /trajectory, /curvature or "
            "/ratio_map group"
        )
    return NetworkResults(name, p, surface, trajectory, curvature, ratio_map)


# --------------------------------------------------------------------------- recipes
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
    if res.ratio_map is not None:
        rm = res.ratio_map
        shape = np.shape(rm.get("ratio", rm.get("lambda_max")))
        spec = [_axis_spec(rm["x"]) if "x" in rm else f"shape {shape}"]
        if "y" in rm:
            spec.append(_axis_spec(rm["y"]))
        out["ratio_map.grid"] = " x ".join(spec)
    if res.curvature is not None:
        raw = res.curvature.attrs.get("recipe")
        try:
            cr = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            cr = None
        if isinstance(cr, Mapping):
            for k in ("loss", "data", "bn"):
                if k in cr:
                    out[f"curvature.{k}"] = cr[k]
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


# --------------------------------------------------------------------------- numbers
def _scalar(g: storage.Group, *names: str) -> float | None:
    for n in names:
        v = g.datasets.get(n, g.attrs.get(n))
        if v is None:
            continue
        try:
            a = np.asarray(v, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            continue
        if a.size == 1:
            return float(a[0])
    return None


def _curvature_numbers(g: storage.Group) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    top = g.datasets.get("top_eigenvalues")
    lmax = None
    if top is not None:
        t = np.asarray(top, dtype=np.float64).ravel()
        t = t[np.isfinite(t)]
        lmax = float(t.max()) if t.size else None
    if lmax is None:
        lmax = _scalar(g, "lambda_max", "max_eig")
    out["lambda_max"] = lmax
    out["lambda_min"] = _scalar(g, "min_eigenvalue", "lambda_min", "min_eig")
    ratio = _scalar(g, "ratio")
    if ratio is None and out["lambda_min"] is not None and lmax not in (None, 0.0):
        ratio = out["lambda_min"] / lmax  # type: ignore[operator]
    out["ratio_at_minimum"] = None if ratio is None else abs(ratio)
    out["trace"] = _scalar(g, "trace")
    out["trace_stderr"] = _scalar(g, "trace_stderr")
    return out


def _at_origin(s: Surface, array: str) -> float | None:
    if array not in s.arrays:
        return None
    o = origin_index(s)
    if o is None or not bool(s.done_of(array)[o]):
        return None
    return float(np.asarray(s.arrays[array], dtype=np.float64)[o])


def _resolve_loss(name: Any) -> Any:
    if not isinstance(name, str) or name in _BUILTIN_LOSSES:
        return name if isinstance(name, str) else "cross_entropy"
    import importlib

    mod, _, qual = name.partition(":")
    try:
        obj: Any = importlib.import_module(mod)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise LandscapeError(
            f"cannot import the loss {name!r} recorded in the file ({exc}); make its module "
            "importable"
        ) from exc
    return obj


def _model_numbers(res: NetworkResults, source: Any, *, ascent_eps: float, steps: int,
                   batch_size: int, trust: bool, device: Any, need_origin: bool
                   ) -> dict[str, float | None]:
    """Ascent sharpness (and, when the surface lacks them, metrics at θ*) from a model."""
    from torch import nn

    from .checkpoints import Checkpoint, load_checkpoint
    from .data import DataSpec, load_data
    from .evaluation import Evaluator
    from .models import ModelSpec

    recipe = dict(res.surface.recipe) if res.surface is not None and \
        isinstance(res.surface.recipe, Mapping) else {}
    ckpt = None
    if isinstance(source, nn.Module):
        model = source
    else:
        if isinstance(source, Checkpoint):
            ckpt = source
        else:
            spec = recipe.get("model")
            ckpt = load_checkpoint(source, model=ModelSpec.from_dict(spec)
                                   if isinstance(spec, Mapping) else None, trust=trust)
        model = ckpt.model
        sha = recipe.get("checkpoint_sha256")
        if sha and ckpt.sha256 != sha:
            raise LandscapeError(
                f"checkpoint '{ckpt.path}' given for {res.name!r} is not the one '{res.path}' "
                "was computed at (its SHA-256 differs); pass that checkpoint"
            )
    data_d = recipe.get("data")
    if not isinstance(data_d, Mapping) and ckpt is not None:
        data_d = ckpt.meta.get("data")
    if not isinstance(data_d, Mapping):
        raise LandscapeError(
            f"cannot tell which data {res.name!r} was evaluated on: '{res.path}' records no "
            "data spec and the checkpoint none either"
        )
    spec = DataSpec.from_dict(data_d)
    loss = _resolve_loss(recipe.get("loss", "cross_entropy"))
    train = load_data(spec, "train")
    out: dict[str, float | None] = {
        "eps_sharpness_ascent": eps_sharpness_ascent(
            model, train, ascent_eps, steps=steps, loss=loss, batch_size=batch_size,
            device=device),
    }
    if need_origin:
        ev = Evaluator(model, {"train": train, "test": load_data(spec, "test")}, loss=loss,
                       batch_size=batch_size, device=device)
        for split, m in ev.evaluate_loaded().items():
            out[f"{split}_loss"] = m.loss
            out[f"{split}_acc"] = m.accuracy
    return out


def _network_numbers(res: NetworkResults, *, eps: float, basin_threshold: float,
                     ratio_threshold: float, array: str, from_model: Mapping[str, Any]
                     ) -> tuple[dict[str, Any], list[str], list[str]]:
    """One column of the table, the keys that are lower bounds, and notes."""
    row: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
    censored: list[str] = []
    notes: list[str] = []
    s = res.surface
    if s is not None:
        split = array.rpartition("_")[0] or "train"
        for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
            row[k] = _at_origin(s, k)
        row["train_loss_min"] = surface_minimum(s, array)[0]
        origin_loss = _at_origin(s, array)
        if origin_loss is None and from_model.get(f"{split}_loss") is not None:
            origin_loss = from_model[f"{split}_loss"]
        if not s.complete:
            notes.append(f"{res.name}: the surface has {s.n_done}/{s.n_points} points done; "
                         "its metrics use the finished points only")
        if origin_loss is None:
            notes.append(f"{res.name}: the grid has no computed point at the origin, so "
                         "eps_sharpness is unknown (give its checkpoint)")
        else:
            try:
                row["eps_sharpness"] = eps_sharpness_from_surface(s, eps, array,
                                                                  origin_loss=origin_loss)
            except LandscapeError as exc:  # points in the box not computed yet
                notes.append(f"{res.name}: eps_sharpness unknown: {exc}")
            if row["eps_sharpness"] == math.inf:
                notes.append(f"{res.name}: eps_sharpness is infinite (a point within "
                             f"eps={eps:g} diverged); the JSON holds null")
        bw = basin_width(s, basin_threshold, array)
        for axis in ("x", "y"):
            b = bw[axis]
            if b is None:
                continue
            row[f"basin_width_{axis}"] = b["width"]
            if b["censored"]:
                censored.append(f"basin_width_{axis}")
        rough = roughness(s, array)
        for k in ("local_minima", "total_variation", "nonfinite_fraction"):
            row[k] = rough[k]
    for k, v in from_model.items():
        if k in row and (row[k] is None or k == "eps_sharpness_ascent"):
            row[k] = v
    if res.curvature is not None:
        for k, v in _curvature_numbers(res.curvature).items():
            row[k] = v
    if res.ratio_map is not None:
        c = convex_area_fraction(res.ratio_map, ratio_threshold)
        row["convex_area_fraction"] = c["convex_area_fraction"]
        if row["ratio_at_minimum"] is None:
            row["ratio_at_minimum"] = c["ratio_at_minimum"]
    if res.trajectory is not None:
        row.update(low_dimensionality(res.trajectory))
    return row, censored, notes


def _plain(v: Any) -> Any:
    """JSON-safe value: numpy scalars to Python, NaN/inf to None, containers recursively."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


# --------------------------------------------------------------------------- report
def definitions(parameters: Mapping[str, Any]) -> dict[str, str]:
    """Units and definitions of the table's rows (the legend), for the given parameters."""
    eps = parameters.get("eps")
    aeps = parameters.get("ascent_eps")
    steps = parameters.get("ascent_steps")
    bt = parameters.get("basin_threshold")
    rt = parameters.get("ratio_threshold")
    arr = parameters.get("array", "train_loss")
    return {
        "train_loss": "mean train loss at θ* (the origin of the surface)",
        "train_acc": "train accuracy at θ* (fraction in [0, 1])",
        "test_loss": "mean test loss at θ*",
        "test_acc": "test accuracy at θ* (fraction in [0, 1])",
        "train_loss_min": f"lowest {arr} over the surface grid",
        "eps_sharpness": (
            f"ε-sharpness (Keskar et al. 2017) restricted to the surface: 100·(max {arr} over "
            f"the grid points with |x|, |y| ≤ {eps} − L(θ*)) / (1 + L(θ*)), in %; ε in "
            "direction units (filter-normalized: relative to each filter's norm)"),
        "eps_sharpness_ascent": (
            f"ε-sharpness (Keskar et al. 2017) in the full parameter box |z_i| ≤ "
            f"{aeps}·(|θ_i| + 1), maximised by {steps} projected sign-gradient steps on the "
            "full training loss, in % (needs the checkpoints)"),
        "basin_width_x": (
            f"width of the basin along x through the grid minimum, until {arr} exceeds the "
            f"minimum + {bt} (linear interpolation), direction units; ≥ marks a width cut "
            "by the grid edge"),
        "basin_width_y": "the same along y",
        "local_minima": (f"strict local minima of {arr} on the grid (8-neighbourhood, "
                         "interior points; 1 for a single basin)"),
        "total_variation": (
            "Σ|Δ| between grid neighbours / (value range × number of grid lines): full-range "
            "swings per line (1 monotone, 2 a bowl, more is chaotic)"),
        "nonfinite_fraction": "fraction of computed points whose loss is NaN/inf (diverged)",
        "lambda_max": "largest Hessian eigenvalue at θ*",
        "lambda_min": "smallest Hessian eigenvalue at θ* (negative: non-convex directions)",
        "ratio_at_minimum": "|λmin / λmax| at θ* (small: convex-looking, Li et al. 2018)",
        "convex_area_fraction": (
            f"fraction of the ratio map's points with |λmin / λmax| < {rt} "
            "(convex-looking area, Li et al. 2018)"),
        "trace": "trace of the Hessian at θ* (stochastic estimate)",
        "trace_stderr": "standard error of the trace estimate",
        "pc1": "fraction of the optimizer path's variance along PC1",
        "pc1_pc2": "fraction of the path's variance along PC1 + PC2 (Li et al.: 40–90 %)",
        "n_components_for_90": "fewest principal components explaining 90 % of the variance",
        "path_capture": "fraction of the squared step lengths lying in the PC1–PC2 plane",
        "random_path_capture": "the same for two random filter-normalized directions",
    }


def _fmt_number(v: Any, lower_bound: bool = False) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        text = str(v)
    else:
        f = float(v)
        if math.isnan(f):
            return "—"
        text = "inf" if math.isinf(f) else f"{f:.4g}"
    return f"≥ {text}" if lower_bound else text


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _atomic_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


@dataclass(frozen=True)
class Report:
    """A comparison of networks computed with the same recipe.

    Attributes
    ----------
    names : tuple of str
        The networks (table columns), in order.
    table : dict[str, dict[str, float | int | None]]
        ``table[name][metric]`` for every key of :data:`METRIC_KEYS`; ``None`` when the file
        (or the checkpoint) does not give it.
    recipe : dict
        The common recipe (``grid.x``, ``directions.norm``, ``loss``, ``data``, ...).
    figures : tuple of str
        File names of the pictures, relative to the report's directory, once :meth:`save`
        has written them.
    files : dict[str, str]
        The result file of each network.
    parameters : dict
        ``eps``, ``ascent_eps``, ``ascent_steps``, ``basin_threshold``, ``ratio_threshold``,
        ``array``.
    censored : dict[str, tuple of str]
        Per network, the metrics that are lower bounds (basin widths cut by the grid edge).
    notes : tuple of str
        What could not be checked or computed.
    """

    names: tuple[str, ...]
    table: dict[str, dict[str, Any]]
    recipe: dict[str, Any]
    figures: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    censored: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    results: tuple[NetworkResults, ...] = field(default=(), repr=False, compare=False)

    # ---------------------------------------------------------------- text forms
    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON values (NaN and inf become ``None``)."""
        return _plain({
            "format": _JSON_FORMAT,
            "format_version": _JSON_VERSION,
            "names": list(self.names),
            "files": dict(self.files),
            "parameters": dict(self.parameters),
            "recipe": dict(self.recipe),
            "metrics": {n: {k: self.table[n].get(k) for k in METRIC_KEYS} for n in self.names},
            "censored": {n: list(self.censored.get(n, ())) for n in self.names},
            "definitions": definitions(self.parameters),
            "notes": list(self.notes),
            "figures": list(self.figures),
        })

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (strict: no NaN)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)

    def _cell(self, name: str, key: str) -> str:
        return _fmt_number(self.table[name].get(key), key in self.censored.get(name, ()))

    def markdown_table(self) -> str:
        """The table alone: one row per metric, one column per network."""
        head = "| metric | " + " | ".join(_md_escape(n) for n in self.names) + " |"
        rule = "|---|" + "---:|" * len(self.names)
        rows = [f"| {key} | " + " | ".join(self._cell(n, key) for n in self.names) + " |"
                for key in METRIC_KEYS]
        return "\n".join([head, rule, *rows])

    def to_markdown(self) -> str:
        """The report as Markdown: table, legend, notes, recipe and figures."""
        lines = [f"# Loss-landscape comparison: {' vs '.join(self.names)}", ""]
        lines += [f"- **{_md_escape(n)}**: `{self.files.get(n, '')}`" for n in self.names]
        lines += ["", self.markdown_table(), "", "## Definitions", ""]
        lines += [f"- `{k}`: {v}" for k, v in definitions(self.parameters).items()]
        lines += ["", "A dash means the files (or checkpoints) do not give the number."]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        lines += ["", "## Common recipe", "", "```json",
                  json.dumps(_plain(self.recipe), indent=2, sort_keys=True,
                             ensure_ascii=False), "```"]
        if self.figures:
            lines += ["", "## Figures", ""]
            lines += [f"![{Path(f).stem}]({f})" for f in self.figures]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """A self-contained HTML page: the table, legend, notes and the figures (relative)."""
        e = escape
        head = "".join(f"<th>{e(n)}</th>" for n in self.names)
        body = "".join(
            f"<tr><td><code>{e(k)}</code></td>"
            + "".join(f"<td>{e(self._cell(n, k))}</td>" for n in self.names) + "</tr>"
            for k in METRIC_KEYS
        )
        legend = "".join(f"<dt><code>{e(k)}</code></dt><dd>{e(v)}</dd>"
                         for k, v in definitions(self.parameters).items())
        files = "".join(f"<li><b>{e(n)}</b>: <code>{e(self.files.get(n, ''))}</code></li>"
                        for n in self.names)
        notes = ("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in self.notes)
                 + "</ul>") if self.notes else ""
        figs = "".join(
            f'<figure><img src="{e(f)}" alt="{e(Path(f).stem)}">'
            f"<figcaption>{e(Path(f).stem)}</figcaption></figure>" for f in self.figures)
        recipe = e(json.dumps(_plain(self.recipe), indent=2, sort_keys=True,
                              ensure_ascii=False))
        title = e(f"Loss-landscape comparison: {' vs '.join(self.names)}")
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
                 "td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}"
                 "img{max-width:100%}dd{margin:0 0 .4em 1.5em;color:#333}")
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{style}</style></head><body>"
            f"<h1>{title}</h1><ul>{files}</ul>"
            f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{body}</tbody></table>"
            "<p>A dash means the files (or checkpoints) do not give the number; ≥ marks a "
            "lower bound.</p>"
            f"<h2>Definitions</h2><dl>{legend}</dl>{notes}"
            f"<h2>Common recipe</h2><pre>{recipe}</pre>"
            + (f"<h2>Figures</h2>{figs}" if figs else "")
            + "</body></html>\n"
        )

    # ---------------------------------------------------------------- files
    def save(self, out_dir: str | os.PathLike, *, dpi: int = 120) -> Report:
        """Write the figures (PNG), ``report.md``, ``report.html`` and ``report.json``.

        Parameters
        ----------
        out_dir : str or os.PathLike
            Directory (created if missing).
        dpi : int, default=120
            Resolution of the pictures.

        Returns
        -------
        Report
            This report with :attr:`figures` set (the files are named relative to
            ``out_dir``).
        """
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise LandscapeError(f"--out '{out}' is a file, not a directory")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LandscapeError(
                f"cannot create output directory '{out}': {exc.strerror}") from exc
        if not os.access(out, os.W_OK | os.X_OK):
            raise LandscapeError(f"cannot write into '{out}': the directory is not writable")
        figures = tuple(_draw_figures(self, out, dpi=check_int("dpi", dpi, 10, 2400)))
        rep = dataclasses.replace(self, figures=figures)
        _atomic_text(out / "report.md", rep.to_markdown())
        _atomic_text(out / "report.html", rep.to_html())
        _atomic_text(out / "report.json", rep.to_json() + "\n")
        return rep


# --------------------------------------------------------------------------- figures
def _recolor(lines: list, color: str, name: str) -> None:
    for ln in lines:
        label = str(ln.get_label())
        if label.startswith("diverged"):
            continue
        ln.set_color(color)
        if label.startswith("test"):
            ln.set_linestyle("--")
        ln.set_label(f"{name}: {label}")


def _draw_figures(report: Report, out: Path, *, dpi: int) -> list[str]:
    """Side-by-side / overlaid pictures of every network; returns the file names written."""
    from matplotlib.collections import QuadMesh
    from matplotlib.figure import Figure

    from . import plot

    res = list(report.results)
    array = report.parameters.get("array", "train_loss")
    written: list[str] = []

    def save(fig: Any, name: str) -> None:
        plot.save_figure(fig, out / name, dpi=dpi)
        written.append(name)

    colors = [f"C{i}" for i in range(10)]
    surf = [r for r in res if r.surface is not None and array in r.surface.arrays]
    two = [r for r in surf if r.surface.ndim == 2]  # type: ignore[union-attr]
    if two:
        for kind in ("contour", "contourf"):
            fig = plot.compare_panels([r.surface for r in two], titles=[r.name for r in two],
                                      array=array, kind=kind)
            save(fig, f"surface_{kind}.png")
    one = [r for r in surf if r.surface.ndim == 1]  # type: ignore[union-attr]
    if one:
        fig = Figure(figsize=(7.0, 4.8), layout="constrained")
        ax = fig.add_subplot()
        for i, r in enumerate(one):
            before = len(ax.lines)
            plot.plot_1d(r.surface, metric="loss", ax=ax, twin=False)  # type: ignore[arg-type]
            _recolor(ax.lines[before:], colors[i % 10], r.name)
        ax.legend(loc="best", fontsize=8, framealpha=0.7)
        ax.set_title("1D surfaces (shared axes)", fontsize=10)
        save(fig, "surface_1d.png")
    traj = [r for r in res if r.trajectory is not None]
    if traj:
        fig = Figure(figsize=(5.0 * len(traj), 4.6), layout="constrained")
        axes = fig.subplots(1, len(traj), squeeze=False)[0]
        for a, r in zip(axes, traj, strict=True):
            t = r.trajectory
            under = r.pca_surface or (r.surface if (
                r.surface is not None and r.surface.ndim == 2 and array in r.surface.arrays
                and isinstance(r.surface.recipe, Mapping)
                and (r.surface.recipe.get("directions") or {}).get("kind") == "pca") else None)
            plot.plot_trajectory(t.coords, surface=under, array=array,  # type: ignore[union-attr]
                                 explained_variance_ratio=t.explained_variance_ratio,  # type: ignore[union-attr]
                                 epochs=t.epochs, ax=a)  # type: ignore[union-attr]
            a.set_title(f"{r.name}: optimizer path", fontsize=10)
        save(fig, "trajectory.png")
    maps = [r for r in res if r.ratio_map is not None]
    if maps:
        ratios = []
        for r in maps:
            rm = r.ratio_map
            if "ratio" in rm:  # type: ignore[operator]
                v = np.abs(np.asarray(rm["ratio"], dtype=np.float64))  # type: ignore[index]
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.abs(np.asarray(rm["lambda_min"], dtype=np.float64)  # type: ignore[index]
                               / np.asarray(rm["lambda_max"], dtype=np.float64))  # type: ignore[index]
            if "done" in rm:  # type: ignore[operator]
                v = np.where(np.asarray(rm["done"]).astype(bool), v, np.nan)  # type: ignore[index]
            ratios.append(v)
        finite = np.concatenate([v[np.isfinite(v)].ravel() for v in ratios])
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        fig = Figure(figsize=(4.6 * len(maps) + 1.0, 4.2), layout="constrained")
        axes = fig.subplots(1, len(maps), squeeze=False)[0]
        for a, r, v in zip(axes, maps, ratios, strict=True):
            rm = r.ratio_map
            x = rm.get("x")  # type: ignore[union-attr]
            y = rm.get("y") if v.ndim == 2 else None  # type: ignore[union-attr]
            if x is None:
                x = np.arange(v.shape[-1], dtype=np.float64)
            if v.ndim == 2 and y is None:
                y = np.arange(v.shape[0], dtype=np.float64)
            plot.plot_ratio_map(x, y, v, ax=a,
                                threshold=report.parameters.get("ratio_threshold"))
            for m in a.collections:
                if isinstance(m, QuadMesh):
                    m.set_clim(0.0, top)
            if v.ndim == 1:
                a.set_ylim(0.0, top * 1.05)
            a.set_title(f"{r.name}: |λmin/λmax|", fontsize=10)
        save(fig, "ratio_map.png")
    dens = [r for r in res if r.curvature is not None
            and "density" in r.curvature.datasets and "density_grid" in r.curvature.datasets]
    if dens:
        fig = Figure(figsize=(7.0, 4.8), layout="constrained")
        ax = fig.add_subplot()
        floors = []
        for i, r in enumerate(dens):
            g = r.curvature.datasets  # type: ignore[union-attr]
            before = len(ax.lines)
            plot.plot_density(g["density_grid"], g["density"], ax=ax)
            _recolor(ax.lines[before:], colors[i % 10], r.name)
            floors.append(ax.get_ylim()[0])
        ax.set_ylim(bottom=min(floors))
        ax.legend(loc="best", fontsize=8)
        ax.set_title("Hessian eigenvalue densities", fontsize=10)
        save(fig, "density.png")
    return written


# --------------------------------------------------------------------------- compare
def _names(files: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if names is None:
        out: list[str] = []
        for f in files:
            base = Path(f).stem or "network"
            cand, k = base, 2
            while cand in out:
                cand, k = f"{base}_{k}", k + 1
            out.append(cand)
        return out
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = [str(n).strip() for n in names]
    if len(names) != len(files):
        raise LandscapeError(
            f"The 'names' parameter must give one name per file ({len(files)}). Got "
            f"{len(names)} instead."
        )
    if any(not n for n in names):
        raise LandscapeError("The 'names' parameter must not contain empty names.")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LandscapeError(f"The 'names' parameter must give distinct names; {dup[0]!r} "
                             "is repeated.")
    return names


def _model_sources(models: Any, names: list[str]) -> dict[str, Any]:
    if models is None:
        return {}
    if isinstance(models, Mapping):
        unknown = [k for k in models if k not in names]
        if unknown:
            raise LandscapeError(
                f"The 'models' parameter names {unknown[0]!r}, which is not a network of the "
                f"comparison {names}."
            )
        return {k: v for k, v in models.items() if v is not None and v != ""}
    models = list(models)
    if len(models) != len(names):
        raise LandscapeError(
            f"The 'models' parameter must give one checkpoint per file ({len(names)}). Got "
            f"{len(models)} instead."
        )
    return {n: m for n, m in zip(names, models, strict=True) if m is not None and m != ""}


def compare(
    files: Sequence[str | os.PathLike],
    *,
    names: Sequence[str] | None = None,
    eps: float = 0.1,
    ascent_eps: float = 1e-3,
    ascent_steps: int = 10,
    basin_threshold: float = 0.1,
    ratio_threshold: float = 0.1,
    array: str = "train_loss",
    models: Mapping[str, Any] | Sequence[Any] | None = None,
    trust: bool = False,
    batch_size: int = 1024,
    device: Any = None,
) -> Report:
    """Compare the landscapes of several networks computed with the same recipe.

    Parameters
    ----------
    files : sequence of path
        One landscape HDF5 file per network (any of ``/surface``, ``/trajectory``,
        ``/curvature``, ``/ratio_map``).
    names : sequence of str, optional
        Column names (default: the file stems).
    eps : float, default=0.1
        Radius of the surface-restricted ε-sharpness, in direction units (filter-normalized:
        0.1 is a 10 % perturbation of every filter). It must reach at least one grid step.
    ascent_eps : float, default=1e-3
        Keskar et al.'s relative ε of the full-space ascent estimate (only with ``models``).
    ascent_steps : int, default=10
        Projected sign-gradient steps of that ascent.
    basin_threshold : float, default=0.1
        Loss increase that ends a basin (:func:`landscape.metrics.basin_width`).
    ratio_threshold : float, default=0.1
        ``|λmin/λmax|`` below which a ratio-map point counts as convex-looking.
    array : str, default="train_loss"
        Surface array the surface metrics use.
    models : mapping or sequence, optional
        Checkpoints (paths, :class:`~landscape.checkpoints.Checkpoint` or modules) by network
        name, or one per file (``None`` to skip one). They give ``eps_sharpness_ascent`` and,
        when the surface lacks them, the loss and accuracy at θ*; data and loss are those
        recorded in the surface's recipe. A checkpoint whose SHA-256 is not the one the
        surface was computed at is refused.
    trust : bool, default=False
        Allow checkpoints that are full pickles (see :func:`~landscape.load_checkpoint`).
    batch_size : int, default=1024
        Batch size of the model evaluations.
    device : str or torch.device, optional
        Device of the model evaluations.

    Returns
    -------
    Report
        Call :meth:`Report.save` to write ``report.md``, ``report.html``, ``report.json`` and
        the figures.

    Raises
    ------
    LandscapeError
        If the files were computed with different recipes (naming the first differing key and
        both values), ``eps`` holds no grid point besides the origin, a file or checkpoint
        cannot be read, or a parameter is invalid.

    Examples
    --------
    >>> rep = compare(["res20.h5", "plain20.h5"], names=["residual", "plain"])  # doctest: +SKIP
    >>> sharp = {n: rep.table[n]["eps_sharpness"] for n in rep.names}        # doctest: +SKIP
    >>> rep = rep.save("report/")   # report.md, report.html, report.json, PNGs  # doctest: +SKIP
    """
    if isinstance(files, str | os.PathLike):
        files = [files]
    files = [os.fspath(f) if isinstance(f, str | os.PathLike) else [os.fspath(g) for g in f]
             for f in files]
    if not files:
        raise LandscapeError("compare needs at least one result file")
    eps = check_float("eps", eps, 0.0, closed="neither")
    ascent_eps = check_float("ascent_eps", ascent_eps, 0.0, closed="neither")
    ascent_steps = check_int("ascent_steps", ascent_steps, 1)
    basin_threshold = check_float("basin_threshold", basin_threshold, 0.0, closed="neither")
    ratio_threshold = check_float("ratio_threshold", ratio_threshold, 0.0, closed="neither")
    batch_size = check_int("batch_size", batch_size, 1)
    labels = _names([f if isinstance(f, str) else f[0] for f in files], names)
    sources = _model_sources(models, labels)
    results = [load_results(f, n) for f, n in zip(files, labels, strict=True)]
    for r in results:
        if r.surface is not None and array not in r.surface.arrays:
            raise LandscapeError(
                f"The 'array' parameter must name an array of every surface; '{r.path}' has "
                f"{sorted(r.surface.arrays)}. Got {array!r} instead."
            )
    recipe, notes = check_comparable(results)
    for r in results:  # a radius below the grid step is a parameter error: say so up front
        if r.surface is not None:
            grid_only = dataclasses.replace(r.surface, done=np.ones(r.surface.shape, bool))
            eps_sharpness_from_surface(grid_only, eps, array, origin_loss=0.0)
            break
    with_surface = [r.name for r in results if r.surface is not None]
    if with_surface and len(with_surface) < len(results):
        missing = [r.name for r in results if r.surface is None]
        notes.append(f"no surface for {', '.join(missing)}: their surface metrics are empty")
    parameters = {"eps": eps, "ascent_eps": ascent_eps, "ascent_steps": ascent_steps,
                  "basin_threshold": basin_threshold, "ratio_threshold": ratio_threshold,
                  "array": array}
    table: dict[str, dict[str, Any]] = {}
    censored: dict[str, tuple[str, ...]] = {}
    for r in results:
        from_model: dict[str, Any] = {}
        if r.name in sources:
            need = r.surface is None or any(
                _at_origin(r.surface, k) is None
                for k in ("train_loss", "train_acc", "test_loss", "test_acc"))
            from_model = _model_numbers(r, sources[r.name], ascent_eps=ascent_eps,
                                        steps=ascent_steps, batch_size=batch_size,
                                        trust=trust, device=device, need_origin=need)
        row, cens, more = _network_numbers(r, eps=eps, basin_threshold=basin_threshold,
                                           ratio_threshold=ratio_threshold, array=array,
                                           from_model=from_model)
        table[r.name] = _plain(row)
        censored[r.name] = tuple(cens)
        notes.extend(more)
    return Report(names=tuple(labels), table=table, recipe=recipe,
                  files={r.name: r.path for r in results}, parameters=parameters,
                  censored=censored, notes=tuple(notes), results=tuple(results))
