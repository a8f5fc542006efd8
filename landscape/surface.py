"""1D and 2D loss/accuracy surfaces along directions, resumable and stored in HDF5.

A surface evaluates ``L(θ* + α δ + β η)`` on a grid of ``(α, β)`` for every dataset given
(train, test, ...), recording mean loss and accuracy. Arrays are laid out ``Z[iy, ix]`` so that
``plt.contour(surface.x, surface.y, surface["train_loss"])`` is right.

Resume: :func:`compute_surface` with ``out=`` writes the file as it goes (atomically, every
``flush_seconds``) and, when the file already exists with the same *recipe* (checkpoint hash,
model, data, directions, grid, loss, BN mode, batch size, dtype), computes only the points whose
``done`` flag is not set. Each point is computed from the base weights afresh, so a resumed run
produces exactly the arrays of an uninterrupted one.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _schema, storage
from ._atomic import holds_output
from ._functional import LossSpec, loss_name, named_tensors
from ._grid import (
    GridProgress,
    MetricsRunner,
    agree,
    check_shard,
    count_name,
    metric_array_names,
    new_counts,
    new_stderrs,
    pending,
    recipe_differences,
    shard_points,
    stderr_name,
)
from ._resume import RunOptions, stored_result
from ._resume import run_options as run_options_of
from ._version import tool_versions
from .batches import batch_len
from .data import StreamData, as_splits, first_batch
from .directions import (
    Directions,
    check_direction_dtype,
    check_spanning,
    tensor_from_numpy,
    tensor_numpy,
)
from .errors import Int, LandscapeError, Real, check_float, check_int, validate_params
from .evaluation import Evaluator, resolve_channels_last
from .memory import MemoryEstimate, forward_peak_bytes, surface_memory

__all__ = ["Axis", "SURFACE_GROUP", "parse_axis", "Surface", "check_group_name",
           "compute_surface", "evaluate_subset_check", "recipe_differences",
           "subset_check_lines"]

#: The group of a file's (first) surface.
SURFACE_GROUP = "surface"

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_AXIS_RE = re.compile(rf"^\s*({_NUM})\s*:\s*({_NUM})\s*:\s*(\S+)\s*$")


@dataclass(frozen=True)
class Axis:
    """A grid axis ``min:max:num`` (``num`` equally spaced points, both ends included).

    Examples
    --------
    >>> Axis(-1, 1, 5).values.tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """

    min: float
    max: float
    num: int

    def __post_init__(self) -> None:
        check_float("min", self.min)
        check_float("max", self.max)
        check_int("num", self.num, 1)
        if self.num > 1 and not self.min < self.max:
            raise LandscapeError(
                f"grid axis '{self.spec}' has min >= max; write it as min:max:num with min < max"
            )
        if self.num == 1 and self.min != self.max:
            raise LandscapeError(
                f"grid axis '{self.spec}' has one point but min != max; use num >= 2 "
                "or min == max"
            )
        if not math.isfinite(float(self.max) - float(self.min)):
            raise LandscapeError(
                f"grid axis '{self.spec}' spans more than the largest float64; use a "
                "smaller range"
            )

    def check_dtype(self, name: str, dtype: torch.dtype) -> Axis:
        """Refuse coordinates that ``dtype`` cannot hold (they would overflow in every
        perturbation ``θ + α δ``, not only diverge); return ``self``."""
        if not dtype.is_floating_point:
            return self
        top = float(torch.finfo(dtype).max)
        big = max(abs(float(self.min)), abs(float(self.max)))
        if big > top:
            raise LandscapeError(
                f"grid {name}={self.spec} reaches {big:g}, beyond the largest "
                f"{str(dtype).replace('torch.', '')} ({top:.3g}); use a smaller range"
            )
        return self

    @property
    def spec(self) -> str:
        """The axis as ``min:max:num``."""
        return f"{self.min:g}:{self.max:g}:{self.num}"

    @property
    def values(self) -> np.ndarray:
        """Coordinates (float64). Values within 1e-12 of the span from 0 are exactly 0."""
        if self.num == 1:
            return np.array([float(self.min)])
        i = np.arange(self.num, dtype=np.float64)
        v = self.min + (self.max - self.min) * i / (self.num - 1)
        v[-1] = self.max
        v[np.abs(v) < 1e-12 * (self.max - self.min)] = 0.0
        return v


def parse_axis(spec: str | Axis | tuple[float, float, int], name: str = "x") -> Axis:
    """Parse ``"min:max:num"`` (e.g. ``"-1:1:51"``) into an :class:`Axis`.

    Raises
    ------
    LandscapeError
        For anything else (``"1:-1:5"``, ``"a:b:c"``, ``"0:1:0"``, ``"-1:1:1.5"``).
    """
    if isinstance(spec, Axis):
        return spec
    if isinstance(spec, tuple | list) and len(spec) == 3:
        spec = ":".join(str(s) for s in spec)
    if not isinstance(spec, str):
        raise LandscapeError(
            f"The {name!r} parameter must be a grid string 'min:max:num'. Got {spec!r} instead.")
    m = _AXIS_RE.match(spec)
    if not m:
        raise LandscapeError(
            f"bad grid {name}={spec!r}: expected min:max:num with numbers, e.g. -1:1:51"
        )
    lo, hi, num_s = float(m.group(1)), float(m.group(2)), m.group(3)
    if not re.fullmatch(r"\d+", num_s):
        raise LandscapeError(
            f"bad grid {name}={spec!r}: the number of points must be a positive integer, "
            f"got {num_s!r}"
        )
    num = int(num_s)
    if num < 1:
        raise LandscapeError(f"bad grid {name}={spec!r}: the number of points must be >= 1")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise LandscapeError(f"bad grid {name}={spec!r}: bounds must be finite")
    if num > 1 and not lo < hi:
        raise LandscapeError(
            f"bad grid {name}={spec!r}: min must be smaller than max (write it as "
            f"{min(lo, hi):g}:{max(lo, hi):g}:{num})"
        )
    if num == 1 and lo != hi:
        raise LandscapeError(
            f"bad grid {name}={spec!r}: one point needs min == max (or use num >= 2)"
        )
    return Axis(lo, hi, num)


@dataclass
class Surface(GridProgress):
    """A loss/accuracy surface with its coordinates, completion mask and provenance.

    Attributes
    ----------
    x : np.ndarray
        Coordinates along the first direction, shape ``(nx,)``.
    y : np.ndarray or None
        Coordinates along the second direction, shape ``(ny,)``; ``None`` for 1D.
    arrays : dict[str, np.ndarray]
        ``"train_loss"``, ``"train_acc"``, ``"test_loss"``, ... shaped ``(ny, nx)`` (2D) or
        ``(nx,)`` (1D). Unfinished points are NaN.
    done : np.ndarray of bool
        Completion mask, same shape: the points where every array is computed.
    done_per_array : dict[str, np.ndarray] or None
        Completion mask of each array where the arrays were computed separately (files of Li
        et al., whose train and test passes finish at different points); ``None`` when
        ``done`` holds for every array. Use :meth:`done_of` to read the mask of an array.
    directions : Directions or None
        The directions (``None`` for files of Li et al. without them).
    recipe : dict
        Everything that must match for a run to resume into this surface.
    provenance : dict
        Informational metadata (command line, checkpoint path, tool version, source format).
    stderrs : dict[str, np.ndarray]
        Standard error of every loss array's values as data-set means,
        ``"train_loss_se"`` beside ``"train_loss"`` (same shape; see
        :mod:`landscape.evaluation`). Empty for files written before they were stored (and
        files of Li et al.); NaN at points computed by such a version. Read them with
        :meth:`stderr`.
    counts : dict[str, np.ndarray] or None
        For a surface evaluated to a stated precision (:func:`compute_surface`'s
        ``rel_precision``): the number of samples behind every loss value,
        ``"train_loss_n"`` beside ``"train_loss"`` (int64, 0 at unfinished points); ``None``
        for surfaces evaluated on all their data. Read them with :meth:`count`.
    subset_check : dict or None
        For a surface evaluated on data subsets: per split, the loss at the origin on the
        subset (``subset_loss``, its standard error ``subset_loss_se``, ``subset_n``) and on
        the full data (``full_loss``, ``full_n``), and the accuracies where defined
        (:func:`compute_surface`'s ``full_data``); ``None`` otherwise.
    group : str
        The file's group it lives in: ``"surface"`` (its directions in the top-level
        ``/directions``), or another name such as ``"hessian_surface"`` (a surface along
        Hessian eigenvectors, :func:`landscape.hessian.compute_hessian_surface`), whose
        directions are its subgroup ``directions``, so one file holds both apart.
    """

    x: np.ndarray
    y: np.ndarray | None
    arrays: dict[str, np.ndarray]
    done: np.ndarray
    directions: Directions | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    done_per_array: dict[str, np.ndarray] | None = None
    stderrs: dict[str, np.ndarray] = field(default_factory=dict)
    subset_check: dict[str, dict[str, Any]] | None = None
    group: str = SURFACE_GROUP
    counts: dict[str, np.ndarray] | None = None

    @property
    def ndim(self) -> int:
        """1 or 2."""
        return 1 if self.y is None else 2

    def done_of(self, name: str) -> np.ndarray:
        """Completion mask of the array ``name`` (its own mask if it has one, else ``done``)."""
        if self.done_per_array is not None and name in self.done_per_array:
            return np.asarray(self.done_per_array[name], dtype=bool)
        return np.asarray(self.done, dtype=bool)

    def n_done_of(self, name: str) -> int:
        """Number of computed points of the array ``name``."""
        return int(self.done_of(name).sum())

    def stderr(self, name: str) -> np.ndarray | None:
        """The standard errors of the loss array ``name`` (e.g. ``"train_loss"``), or ``None``
        when the file holds none (written before they were stored, or not a loss array)."""
        return self.stderrs.get(stderr_name(name))

    def count(self, name: str) -> np.ndarray | None:
        """The number of samples behind each value of the loss array ``name`` (surfaces
        evaluated to a precision), or ``None`` (every value is over all the data)."""
        return None if self.counts is None else self.counts.get(count_name(name))

    def precision_summary(self) -> dict[str, dict[str, int]]:
        """Per split of a surface evaluated to a precision: ``samples``, the samples evaluated
        over its finished points, and ``full``, those a full evaluation would have taken
        (the data's size times the finished points); empty without :attr:`counts`."""
        sizes = self.recipe.get("datasets") or {}
        out: dict[str, dict[str, int]] = {}
        for split, size in sorted(sizes.items()):
            counts = self.count(f"{split}_loss")
            if counts is not None:
                done = self.done_of(f"{split}_loss")
                out[split] = {"samples": int(np.asarray(counts)[done].sum()),
                              "full": int(size) * int(done.sum())}
        return out

    def subset_lines(self) -> list[str]:
        """One line per split of :attr:`subset_check` (empty without it): the subset's loss
        at the origin ± its standard error against the full data's, and the difference in
        standard errors."""
        return subset_check_lines(self.subset_check)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise KeyError(
                f"surface has no array {name!r}; it has {sorted(self.arrays)}"
            ) from None

    def coords(self, index: int) -> tuple[float, ...]:
        """Coordinates of the flat (raster-order) point ``index``."""
        if self.y is None:
            return (float(self.x[index]),)
        iy, ix = divmod(index, len(self.x))
        return (float(self.x[ix]), float(self.y[iy]))

    def __repr__(self) -> str:
        grid = f"{len(self.x)}" if self.y is None else f"{len(self.y)}x{len(self.x)}"
        return (
            f"Surface({self.ndim}D {grid}, arrays={sorted(self.arrays)}, "
            f"done={self.n_done}/{self.n_points})"
        )

    def _repr_png_(self) -> bytes:
        from .plot import surface_repr_png

        return surface_repr_png(self)

    def _repr_html_(self) -> str:
        from .plot import surface_repr_html

        return surface_repr_html(self)

    def plot(self, kind: str | None = None, **kwargs: Any) -> Any:
        """Plot the surface: ``"contour"`` (2D default), ``"contourf"``, ``"heatmap"``,
        ``"3d"`` or ``"1d"`` (1D default); keyword arguments go to :mod:`landscape.plot`."""
        from . import plot as lplot

        kind = kind or ("1d" if self.ndim == 1 else "contour")
        if kind == "1d":
            return lplot.plot_1d(self, **kwargs)
        if kind == "3d":
            return lplot.plot_3d(self, **kwargs)
        return lplot.plot_contour(self, kind=kind, **kwargs)

    # ------------------------------------------------------------------ storage
    def _groups(self) -> dict[str, storage.Group]:
        sg = storage.Group(
            attrs={
                "recipe": storage.dumps(self.recipe),
                "provenance": storage.dumps(self.provenance),
                "ndim": self.ndim,
                "arrays": json.dumps(sorted(self.arrays)),
            }
        )
        sg.datasets["x"] = np.asarray(self.x, dtype=np.float64)
        if self.y is not None:
            sg.datasets["y"] = np.asarray(self.y, dtype=np.float64)
        # The mask decides, and it is read first: a Ctrl-C that lands inside the recording of
        # a point (values written, mask not yet) must not leave a value at an unfinished point.
        done = self.done.astype(np.uint8)
        for k in sorted(self.arrays):
            a = np.asarray(self.arrays[k], dtype=np.float64)
            sg.datasets[k] = np.where(self.done_of(k) if self.done_per_array else done, a, np.nan)
        sg.datasets.update(_schema.stderr_datasets(self.stderrs, done))
        sg.datasets.update(_schema.count_datasets(self.counts, done))
        sg.datasets["done"] = done
        if self.subset_check is not None:
            sg.attrs["subset_check"] = storage.dumps(self.subset_check)
        if self.group != SURFACE_GROUP:  # its directions travel inside its own group
            if self.directions is not None:
                sg.groups["directions"] = directions_group(self.directions)
            return {self.group: sg}
        groups: dict[str, storage.Group | None] = {SURFACE_GROUP: sg}
        if self.directions is not None:
            groups["directions"] = directions_group(self.directions)
        return groups

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write group :attr:`group` of ``path`` atomically (other groups are kept)."""
        storage.update_file(path, self._groups(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, group: str = SURFACE_GROUP) -> Surface:
        """Read a surface from a landscape file (its group ``group``) or a file of Li et al.
        (2018)."""
        check_group_name(group)
        kind = storage.file_kind(path)
        if group != SURFACE_GROUP:
            storage.check_no_links(path, group)
            g = storage.read_group(path, group)
            if g is None:
                raise LandscapeError(f"'{path}' holds no /{group} group")
            where = f"'{path}' has a damaged /{group} group"
            dirs = (load_directions_group(g.groups["directions"], f"'{path}' (/{group})")
                    if "directions" in g.groups else None)
            return dataclasses.replace(cls._from_group(g, where, dirs), group=group)
        if kind == "li2018":
            d = storage.read_li2018(path)
            return cls(
                x=d["x"], y=d["y"], arrays=d["arrays"], done=d["done"], directions=None,
                recipe={}, provenance={"source_format": "li2018", "dir_file": d["dir_file"]},
                done_per_array=d["done_per_array"],
            )
        storage.check_no_links(path, "surface")
        g = storage.read_group(path, "surface")
        if g is None:
            raise LandscapeError(f"'{path}' holds no surface (no /surface group)")
        dirs = load_directions(path) if "directions" in storage.list_groups(path) else None
        return cls._from_group(g, f"'{path}' has a damaged /surface group", dirs)

    @classmethod
    def _from_group(cls, g: storage.Group, where: str,
                    directions: Directions | None = None) -> Surface:
        """Validate the schema of a ``/surface`` group (see :mod:`landscape.storage`) and build
        the surface; every error names the dataset or attribute and what was expected."""
        names = _schema.json_attr(g.attrs, "arrays", where, list)
        if not all(isinstance(k, str) and k not in ("x", "y", "done") for k in names):
            raise LandscapeError(f"{where}: attribute 'arrays' must list array names")
        recipe = _schema.json_attr(g.attrs, "recipe", where, dict)
        prov = _schema.json_attr(g.attrs, "provenance", where, dict, default={})
        x = _schema.coordinates(g.datasets, "x", where)
        y = _schema.coordinates(g.datasets, "y", where) if "y" in g.datasets else None
        ndim = g.attrs.get("ndim", 1 if y is None else 2)
        if ndim != (1 if y is None else 2):
            raise LandscapeError(
                f"{where}: attribute 'ndim' is {ndim!r} but the group "
                + ("has no" if y is None else "has a") + " dataset 'y'"
            )
        shape = _schema.grid_shape(x, y)
        _schema.check_coordinates_fit(g.datasets, [*names, "done"], shape, where)
        arrays = {k: _schema.grid_array(g.datasets, k, shape, where) for k in names}
        done = _schema.grid_array(g.datasets, "done", shape, where, mask=True)
        stderrs = _schema.stderr_arrays(g.datasets, names, shape, where)
        counts = _schema.count_arrays(g.datasets, names, shape, where)
        check = (_schema.json_attr(g.attrs, "subset_check", where, dict)
                 if "subset_check" in g.attrs else None)
        return cls(x=x, y=y, arrays=arrays, done=done, directions=directions, recipe=recipe,
                   provenance=prov, stderrs=stderrs, subset_check=check, counts=counts)


def directions_group(d: Directions) -> storage.Group:
    """HDF5 group holding directions and their recipe."""
    g = storage.Group(
        attrs={"recipe": d.recipe_json(), "sha256": d.digest(), "ndim": d.ndim}
    )
    for axis, vec in zip(("x", "y"), d.vectors, strict=False):
        sub = storage.Group()
        for k, v in vec.items():
            sub.datasets[k] = tensor_numpy(v)
        sub.attrs["order"] = json.dumps(list(vec))
        raw = [k for k, v in vec.items() if v.dtype == torch.bfloat16]
        if raw:  # only where present: other files keep their attributes
            sub.attrs["bfloat16"] = json.dumps(raw)
        g.groups[axis] = sub
    return g


def save_directions(path: str | os.PathLike, d: Directions, *, overwrite: bool = False) -> None:
    """Write directions (with their recipe) to an HDF5 file, atomically."""
    storage.update_file(path, {"directions": directions_group(d)}, overwrite=overwrite)


def load_directions(path: str | os.PathLike, model: nn.Module | None = None,
                    what: str = "weights") -> Directions:
    """Read directions from a directions, surface or trajectory file, or from a direction file
    of Li et al. (2018).

    Parameters
    ----------
    path : path
        The file.
    model : nn.Module, optional
        Needed for a file of Li et al., whose tensors are positional (see
        :func:`li2018_directions`); ignored for landscape files, which name their tensors.
    what : {"weights", "states"}, default="weights"
        For a file of Li et al. whose tensor count fits both selections of ``model``.

    Raises
    ------
    LandscapeError
        If the file holds no directions, is damaged, or (Li et al.) does not fit ``model``.
    """
    if storage.is_li2018_directions(path):
        if model is None:
            raise LandscapeError(
                f"'{path}' is a direction file of Li et al., whose tensors have no names; "
                "pass the model to map them onto its tensors"
            )
        return li2018_directions(path, model, what)
    g = storage.read_group(path, "directions")
    if g is None:
        raise LandscapeError(f"'{path}' holds no directions (no /directions group)")
    return load_directions_group(g, f"'{path}'")


def load_directions_group(g: storage.Group, where: str) -> Directions:
    """Directions from a group written by :func:`directions_group` (checksum verified)."""
    try:
        vecs = []
        for axis in ("x", "y"):
            if axis not in g.groups:
                continue
            sub = g.groups[axis]
            order = json.loads(sub.attrs["order"])
            raw = set(json.loads(sub.attrs.get("bfloat16", "[]")))
            vecs.append({k: tensor_from_numpy(sub.datasets[k],
                                              "bfloat16" if k in raw else None)
                         for k in order})
        d = Directions(tuple(vecs), json.loads(g.attrs["recipe"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise LandscapeError(f"{where} has a damaged /directions group ({exc})") from exc
    if "sha256" in g.attrs and d.digest() != g.attrs["sha256"]:
        raise LandscapeError(f"directions in {where} do not match their recorded checksum")
    return d


def li2018_directions(path: str | os.PathLike, model: nn.Module,
                      what: str = "weights") -> Directions:
    """Map the positional tensors of a Li et al. direction file onto ``model``'s tensor names.

    Their ``net_plotter.setup_direction`` writes groups ``xdirection`` (and ``ydirection``)
    holding datasets ``'0'``..``'N-1'``: one per tensor, in the order of ``net.parameters()``
    (``dir_type='weights'``) or of ``net.state_dict().values()`` (``'states'``). The selection
    is told by the count: ``N`` equal to the number of parameters means weights, equal to the
    number of state tensors means states (also without the integer ``num_batches_tracked``
    buffers, which older PyTorch did not have); ``what`` decides when both counts fit (a model
    without buffers). Every shape is checked. Integer tensors get a zero direction (this tool
    never moves them; Li et al.'s ``ignore='biasbn'`` zeroes them too).

    Raises
    ------
    LandscapeError
        If the count fits no selection of the model, or a shape differs (naming the first
        mismatch: index, expected shape, found shape).
    """
    from ._functional import TENSOR_SELECTIONS, is_perturbable, named_tensors
    from .errors import check_option

    check_option("what", what, TENSOR_SELECTIONS)
    raw = storage.read_li2018_directions(path)
    n = len(raw["xdirection"])
    weights = named_tensors(model, "weights")
    states = named_tensors(model, "states")
    float_states = {k: v for k, v in states.items() if is_perturbable(v)}
    by_name = {"weights": weights, "states": states}
    candidates = [(w, by_name[w]) for w in (what, *(w for w in by_name if w != what))]
    candidates.append(("states", float_states))
    fit = [(w, t) for w, t in candidates if len(t) == n]
    if not fit:
        raise LandscapeError(
            f"'{path}' is a Li et al. direction file with {n} tensors per direction, but the "
            f"model has {len(weights)} parameters (what='weights') and {len(states)} state "
            f"tensors (what='states') -- it was made for another model"
        )
    sel, tensors = fit[0]
    other = "states" if sel == "weights" else "weights"
    vecs = []
    for gname, arrays in raw.items():
        vec: dict[str, Tensor] = {}
        for i, ((name, t), a) in enumerate(zip(tensors.items(), arrays, strict=True)):
            if tuple(a.shape) != tuple(t.shape):
                raise LandscapeError(
                    f"'{path}': tensor {i} of /{gname} has shape {tuple(a.shape)}, but the "
                    f"model's {sel} tensor {i} ('{name}') has {tuple(t.shape)} -- the file was "
                    f"made for another model, or with what={other!r}"
                )
            if is_perturbable(t):
                vec[name] = torch.from_numpy(np.array(a, dtype=a.dtype if a.dtype.kind == "f"
                                                      else np.float32))
            else:
                vec[name] = torch.zeros_like(t.detach().cpu())
        if sel == "states":  # integer buffers missing from a file of older PyTorch
            vec = {k: vec.get(k, torch.zeros_like(v.detach().cpu())) for k, v in states.items()}
        vecs.append(vec)
    recipe = {"kind": "li2018", "what": sel, "source": str(path), "n_tensors": n}
    return Directions(tuple(vecs), recipe)


def check_group_name(group: str) -> str:
    """A top-level group name a surface may live in: ``"surface"`` or a name ending in
    ``"_surface"`` (``"hessian_surface"``), so no other result's group can be taken."""
    if not isinstance(group, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", group) or not (
            group == SURFACE_GROUP or group.endswith("_" + SURFACE_GROUP)):
        raise LandscapeError(
            f"The 'group' parameter must be 'surface' or a lower-case name ending in "
            f"'_surface'. Got {group!r} instead."
        )
    return group


@holds_output("out")
def compute_surface(
    model: nn.Module,
    directions: Directions,
    data: Mapping[str, Any],
    *,
    x: str | Axis,
    y: str | Axis | None = None,
    base: Mapping[str, Tensor] | None = None,
    loss: LossSpec = "cross_entropy",
    bn: str = "eval",
    bn_batches: int = 10,
    batch_size: int | str = "auto",
    bn_batch_size: int = 128,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    autocast: str | None = None,
    channels_last: bool | str = "auto",
    recipe: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    full_data: Mapping[str, Any] | None = None,
    group: str = SURFACE_GROUP,
    rel_precision: float | None = None,
    precision_seed: int = 0,
    min_batches: int = 2,
    min_samples: int = 256,
    shard: tuple[int, int] | None = None,
    direction_dtype: torch.dtype | None = None,
    check_memory: bool = True,
    run: RunOptions | None = None,
    **run_options: Any,
) -> Surface:
    """Evaluate loss and accuracy on a 1D or 2D grid along ``directions``.

    Parameters
    ----------
    model : nn.Module
        The network at θ* (not modified).
    directions : Directions
        One direction (1D) or two (2D); ``directions.what`` selects weights or states.
    data : dict[str, data]
        Datasets by name, e.g. ``{"train": train, "test": test}``: TensorData, ``(x, y)``
        tensors, Datasets or DataLoaders (see :mod:`landscape.evaluation`); arrays are named
        ``<name>_loss`` and, for class targets only, ``<name>_acc``. Streamed data are
        identified in the recipe by ``data_sha256`` (their length and first batch).
    x, y : str or Axis
        Grids as ``"min:max:num"``. ``y`` is required for two directions and forbidden for one.
    base : dict[str, Tensor], optional
        The origin θ* (default: the model's own tensors).
    loss : str or callable, default="cross_entropy"
        Loss (see :func:`landscape._functional.resolve_loss`).
    bn : {"eval", "recalibrate"}, default="eval"
        BatchNorm policy (see :mod:`landscape.evaluation`).
    bn_batches : int, default=10
        Batches used by ``bn="recalibrate"``.
    batch_size : int or "auto", default="auto"
        Evaluation batch size. ``"auto"`` times a few sizes on the data before the first point
        (:meth:`Evaluator.probe_batch_size`) and records the choice in the file's provenance
        (``batch_size_used``); a resumed run reuses it, so resumed arrays stay bit-identical.
    bn_batch_size : int, default=128
        Batch size of BatchNorm recalibration (``bn="recalibrate"``).
    device, dtype : optional
        Evaluation device and dtype.
    autocast : {"bf16", "fp16"}, optional
        Mixed-precision forward passes (recorded in the recipe; values within ~1e-3).
    channels_last : bool or "auto", default="auto"
        Channels-last memory format; ``"auto"`` chooses it for conv nets on the CPU in float32
        (:func:`~landscape.evaluation.resolve_channels_last`). The choice is recorded in the
        recipe; resuming a file with ``"auto"`` keeps the file's.
    recipe : dict, optional
        Extra recipe entries (checkpoint hash, model and data specs) that must match on resume.
    provenance : dict, optional
        Informational metadata stored with the file.
    full_data : dict[str, data], optional
        The full datasets of which ``data`` are subsets (by the same names, e.g. without
        ``--subset``): the origin is evaluated once on them (one extra evaluation, at the
        origin only) and on the subsets, and both are stored in
        :attr:`Surface.subset_check` with the subset's standard error, so the file says how
        far the subset's values are from the full data's. A resumed file keeps the check it
        has.
    group : str, default="surface"
        The file's group to write and resume (:attr:`Surface.group`): another name (ending in
        ``"_surface"``) keeps a second surface, with its own directions, beside ``/surface``.
    rel_precision : float, optional
        Evaluate each point batch by batch until the standard error of its mean loss is at
        most ``rel_precision * |loss|`` (at least ``min_batches`` batches and ``min_samples``
        samples), or the data run out; the samples are read in a random order fixed by
        ``precision_seed`` (the same at every point; see :mod:`landscape.evaluation`). The
        number of samples behind every value is stored (:attr:`Surface.counts`), and
        ``rel_precision``, ``precision_seed``, ``min_batches`` and ``min_samples`` join the
        recipe (so a resumed run stops where a fresh one would; the batch size decides where it
        may stop, and ``"auto"`` reuses the file's). Needs tensor data or map-style Datasets
        and a per-sample loss. ``None`` (default): every point over all the data, in order.
    precision_seed : int, default=0
        Seed of the sample order of ``rel_precision``.
    min_batches : int, default=2
        Batches read at every point before ``rel_precision`` may stop.
    min_samples : int, default=256
        Samples read at every point before ``rel_precision`` may stop.
    shard : (int, int), optional
        ``(i, n)``: compute only shard ``i`` of ``n`` of the grid's points (every ``n``-th
        point in raster order from the ``i``-th, the assignment of torchrun ranks; see
        :func:`landscape._grid.shard_points`) into ``out``, a file of its own that resumes like
        any other; ``shard`` joins the recipe. :func:`landscape.shards.merge_shards` joins the
        ``n`` files into the file one process would have written.
    direction_dtype : torch.dtype, optional
        Hold the directions in this dtype (``torch.bfloat16`` or ``torch.float16`` halve
        their memory against float32, where memory binds): they are rounded to it once
        (:meth:`Directions.astype`), stored so, and added to the origin in the evaluation
        dtype. Default: the directions' own dtype (the model's). Joins the recipe when given
        and not the evaluation dtype.
    check_memory : bool, default=True
        Before evaluating, predict the run's peak memory
        (:func:`landscape.memory.surface_memory`: the model, the evaluator's copy and saved
        origin, the directions and one batch's activations) and refuse the run when what it
        still allocates exceeds the memory available; ``False`` runs it anyway. Evaluations
        on the CPU only (a GPU's memory is not modelled).

    run : RunOptions, optional
        How the run writes (:class:`~landscape.inputs.RunOptions`): ``out``, the HDF5 file
        written as points finish and resumed from; ``overwrite``, replace an existing ``out``
        whose recipe differs (otherwise that is an error; with another ``group`` than
        ``"surface"`` only that group is replaced, the file's other groups are kept);
        ``progress``, a bar with ETA; ``flush_seconds``, write at most this often (and always
        at the end); ``max_points``, stop after this many new points (the file stays
        resumable).
    **run_options
        The fields of ``run`` given one by one instead (``out=..., overwrite=...``).

    Returns
    -------
    Surface
        Every loss array comes with its standard error (:meth:`Surface.stderr`), and with
        ``rel_precision`` its sample counts (:meth:`Surface.count`).
    """
    ax, ay = _surface_axes(directions, x, y)
    if not data:
        raise LandscapeError("no dataset given to evaluate the surface on")
    data = as_splits(data)
    check_spanning(directions.vectors)
    opts = run_options_of(run, **run_options)
    p = validate_params({"rel_precision": rel_precision, "precision_seed": precision_seed,
                         "min_batches": min_batches, "min_samples": min_samples,
                         "shard": shard}, _CONSTRAINTS)
    base_t = dict(base) if base is not None else named_tensors(model, directions.what)
    if direction_dtype is not None:  # the rounded directions replace the given ones
        directions = directions.astype(check_direction_dtype(direction_dtype))
    eval_dtype = dtype or next(iter(base_t.values())).dtype
    full_recipe = _surface_recipe(
        model, directions, data, ax, ay, recipe, p, eval_dtype, direction_dtype, loss=loss,
        bn=bn, bn_batches=bn_batches, batch_size=batch_size, bn_batch_size=bn_batch_size,
        autocast=autocast, channels_last=channels_last, device=device, dtype=dtype)
    for name, a in (("x", ax), ("y", ay)):
        if a is not None:
            a.check_dtype(name, eval_dtype)
    surf = _new_surface(ax, ay, data, directions, full_recipe, dict(provenance or {}))
    if p["rel_precision"] is not None:
        surf.counts = new_counts(surf.arrays)
    check_group_name(group)
    surf.group = group
    _resume_into(surf, opts, directions, data, channels_last)
    mine = None if p["shard"] is None else shard_points(range(surf.done.size), *p["shard"])
    if not pending(surf.done, opts.max_points, mine):
        return surf
    _check_directions_fit(directions, base_t)
    if batch_size != "auto":
        check_int("batch_size", batch_size, 1)
    on_cpu = torch.device(device if device is not None else
                          next(iter(base_t.values())).device).type == "cpu"
    if check_memory and on_cpu:  # host memory; a GPU's own is not modelled
        surface_memory_estimate(model, directions, data, batch_size=batch_size,
                                what=directions.what, dtype=dtype).check(
            "check_memory", "pass direction_dtype=torch.bfloat16 or a smaller batch_size=...")
    evaluation = {"loss": loss, "what": directions.what, "bn": bn, "bn_batches": bn_batches,
                  "bn_batch_size": bn_batch_size, "dtype": dtype, "autocast": autocast}
    ev = Evaluator(model, data, batch_size=1024 if batch_size == "auto" else batch_size,
                   device=device, channels_last=surf.recipe["channels_last"],
                   rel_precision=p["rel_precision"], precision_seed=p["precision_seed"],
                   min_batches=p["min_batches"], min_samples=p["min_samples"], **evaluation)
    if batch_size == "auto":  # a resumed file keeps the batch size it was computed with
        used = surf.provenance.get("batch_size_used")
        ev.batch_size = used if isinstance(used, int) else agree(ev.probe_batch_size())
        surf.provenance["batch_size_used"] = ev.batch_size
    base_dev, dirs_dev = on_device(base_t, directions.vectors, ev.device, dtype,
                                   direction_dtype)
    if full_data and surf.subset_check is None:
        surf.subset_check = evaluate_subset_check(
            ev, model, full_data, base_dev, bn_data=data.get("train"),
            channels_last=ev.channels_last, **evaluation)
    # overwrite replaces the file of a /surface, and only its own group for any other
    _SurfaceRun(surf, ev, base_dev, dirs_dev, out=opts.out,
                overwrite=opts.overwrite and group == SURFACE_GROUP, progress=opts.progress,
                flush_seconds=opts.flush_seconds, max_points=opts.max_points,
                shard=p["shard"]).run()
    return surf


#: The declared constraints of :func:`compute_surface`'s precision and shard settings.
_CONSTRAINTS: dict[str, Any] = {
    "rel_precision": Real(0.0, closed="neither", optional=True), "precision_seed": Int(0),
    "min_batches": Int(1), "min_samples": Int(1),
    "shard": lambda _n, v: None if v is None else check_shard(v),
}


def _surface_axes(directions: Directions, x: str | Axis, y: str | Axis | None
                  ) -> tuple[Axis, Axis | None]:
    """The grid's axes, checked against the number of directions."""
    ax = parse_axis(x, "x")
    ay = parse_axis(y, "y") if y is not None else None
    if directions.ndim == 2 and ay is None:
        raise LandscapeError(
            "two directions need a grid y='min:max:num' (or use one direction for 1D)")
    if directions.ndim == 1 and ay is not None:
        raise LandscapeError("a grid y=... needs two directions; these directions are 1D")
    return ax, ay


def _surface_recipe(model: nn.Module, directions: Directions, data: Mapping[str, Any],
                    ax: Axis, ay: Axis | None, extra: Mapping[str, Any] | None,
                    p: Mapping[str, Any], eval_dtype: torch.dtype,
                    direction_dtype: torch.dtype | None, **settings: Any) -> dict[str, Any]:
    """The surface's recipe: the caller's entries, the grid, the directions and their digest,
    the data sizes and the evaluation settings; the precision, shard, direction dtype and
    streamed data's fingerprints only where set (files without them keep their recipes)."""
    s = settings
    recalibrate = s["bn"] == "recalibrate"
    recipe: dict[str, Any] = dict(extra or {})
    recipe.update({
        "grid": {"x": ax.spec, "y": ay.spec if ay else None},
        "directions": directions.recipe,
        "directions_sha256": directions.digest(),
        "datasets": {k: len(v) for k, v in data.items()},
        "loss": loss_name(s["loss"]),
        "bn": s["bn"],
        "bn_batches": s["bn_batches"] if recalibrate else None,
        "batch_size": s["batch_size"],
        "bn_batch_size": s["bn_batch_size"] if recalibrate else None,
        "autocast": s["autocast"],
        "channels_last": resolve_channels_last(
            model, next(iter(data.values())), device=s["device"], dtype=s["dtype"],
            autocast=s["autocast"], channels_last=s["channels_last"]),
        "dtype": str(eval_dtype).replace("torch.", ""),
    })
    if p["rel_precision"] is not None:
        recipe["precision"] = {"rel_precision": p["rel_precision"], "seed": p["precision_seed"],
                               "min_batches": p["min_batches"],
                               "min_samples": p["min_samples"]}
    if p["shard"] is not None:  # the merged file's recipe is the plain one
        recipe["shard"] = list(p["shard"])
    if direction_dtype is not None and direction_dtype != eval_dtype:  # goldens keep theirs
        recipe["direction_dtype"] = str(direction_dtype).replace("torch.", "")
    streamed = {k: v.fingerprint() for k, v in data.items() if isinstance(v, StreamData)}
    if streamed:  # Datasets/DataLoaders: their identity (tensor data keep the entries above)
        recipe["data_sha256"] = streamed
    return json.loads(storage.dumps(recipe))


def _resume_into(surf: Surface, opts: RunOptions, directions: Directions,
                 data: Mapping[str, Any], channels_last: bool | str) -> None:
    """Adopt into ``surf`` the points, errors, counts, subset check and provenance of the
    surface ``opts.out`` already holds with the same recipe (nothing where there is none)."""
    out, group, recipe = opts.out, surf.group, surf.recipe

    def adopt_layout(old: Surface) -> None:
        if channels_last == "auto" and isinstance(old.recipe.get("channels_last"), bool):
            recipe["channels_last"] = old.recipe["channels_last"]  # the file's layout

    old = stored_result(out, overwrite=opts.overwrite, recipe=recipe, group=group,
                        load=partial(Surface.load, group=group), subject="was",
                        reconcile=adopt_layout)
    if old is None and out is not None and Path(out).exists() and not opts.overwrite \
            and group == SURFACE_GROUP:
        _check_file_directions(out, directions)
    if old is None:
        return
    for name, new_c, old_c in (("x", surf.x, old.x), ("y", surf.y, old.y)):
        if new_c is not None and not np.array_equal(new_c, old_c):
            raise LandscapeError(
                f"'{out}' has a damaged /{group} group: its '{name}' coordinates are not "
                f"those of its recipe's grid {recipe['grid'][name]}; pass overwrite=True "
                "to recompute it or choose another out=PATH"
            )
    surf.arrays, surf.done = old.arrays, old.done
    surf.stderrs = new_stderrs(old.arrays, old.stderrs)
    if surf.counts is not None:
        surf.counts = new_counts(old.arrays, old.counts)
    surf.subset_check = old.subset_check
    surf.provenance = old.provenance  # the file keeps the provenance of its first run
    if set(surf.arrays) != set(metric_array_names(data)):
        raise LandscapeError(f"'{out}' has arrays {sorted(surf.arrays)}; expected others")


def _check_directions_fit(directions: Directions, base: Mapping[str, Tensor]) -> None:
    """Refuse directions whose tensors are not the model's (names, shapes)."""
    for k, v in directions.vectors[0].items():
        if k not in base:
            raise LandscapeError(
                f"direction tensor '{k}' is not a {directions.what} tensor of the model -- the "
                "directions were made for another architecture or another 'what' parameter"
            )
        if tuple(v.shape) != tuple(base[k].shape):
            raise LandscapeError(
                f"direction tensor '{k}' has shape {tuple(v.shape)}, the model's has "
                f"{tuple(base[k].shape)} -- the directions were made for another architecture"
            )


def evaluate_subset_check(ev: Evaluator, model: nn.Module, full_data: Mapping[str, Any],
                          base: Mapping[str, Tensor], **evaluator: Any
                          ) -> dict[str, dict[str, Any]]:
    """Loss (± standard error) and accuracy at ``base`` on ``ev``'s (subset) data and on
    ``full_data``, per split: the :attr:`Surface.subset_check` of a surface on subsets.

    Parameters
    ----------
    ev : Evaluator
        The surface's evaluator (its datasets are the subsets).
    model : nn.Module
        The network (a second evaluator is built on ``full_data`` with ``ev``'s device and
        batch size and the settings ``evaluator``).
    full_data : dict[str, data]
        Full datasets, by the names of ``ev``'s datasets (a subset of them).
    base : dict[str, Tensor]
        The origin.

    Raises
    ------
    LandscapeError
        If ``full_data`` names a dataset the surface does not evaluate.
    """
    unknown = sorted(set(full_data) - set(ev.datasets))
    if unknown:
        raise LandscapeError(
            f"full_data names {unknown}, which the surface does not evaluate (it evaluates "
            f"{sorted(ev.datasets)})"
        )
    full = Evaluator(model, as_splits(full_data),
                     batch_size=ev.batch_size, device=ev.device, **evaluator)
    sub, whole = ev(base), full(base)
    out: dict[str, dict[str, Any]] = {}
    for k in sorted(full_data):
        a, b = sub[k], whole[k]
        out[k] = {"subset_loss": a.loss, "subset_loss_se": a.loss_se, "subset_n": a.n,
                  "subset_acc": a.accuracy, "full_loss": b.loss, "full_n": b.n,
                  "full_acc": b.accuracy}
    return json.loads(storage.dumps(out))


def subset_check_lines(check: Mapping[str, Any] | None) -> list[str]:
    """Text of a :attr:`Surface.subset_check`: per split, ``"train loss at the origin: subset
    0.4123 ± 0.015 (n = 300), full data 0.4011 (n = 1,797); difference +0.0112 = +0.75 SE"``
    (the difference in standard errors is left out where the error is unknown)."""
    lines = []
    for split, c in sorted((check or {}).items()):
        if not isinstance(c, Mapping):
            continue
        sl, se, fl = c.get("subset_loss"), c.get("subset_loss_se"), c.get("full_loss")
        if not isinstance(sl, int | float) or not isinstance(fl, int | float):
            continue
        err = f" ± {se:.3g}" if isinstance(se, int | float) and math.isfinite(se) else ""
        diff = sl - fl
        z = (f" = {diff / se:+.2f} SE" if err and se > 0 and math.isfinite(diff) else "")
        lines.append(
            f"{split} loss at the origin: subset {sl:.6g}{err} (n = {c.get('subset_n', 0):,}),"
            f" full data {fl:.6g} (n = {c.get('full_n', 0):,}); difference {diff:+.4g}{z}"
        )
    return lines


def _has_surface(path: str | os.PathLike, group: str = SURFACE_GROUP) -> bool:
    if storage.file_kind(path) == "li2018":
        return group == SURFACE_GROUP
    return group in storage.list_groups(path)


def _check_file_directions(path: str | os.PathLike, directions: Directions) -> None:
    """A file without a surface may hold directions (e.g. a trajectory's PCA directions): a
    surface written into it must use those very directions."""
    g = storage.outline(path)["groups"].get("directions")
    if g is not None and g["attrs"].get("sha256") != directions.digest():
        raise LandscapeError(
            f"'{path}' holds other directions than the ones this surface uses; use them "
            "(load_directions(PATH)), choose another out=PATH, or pass overwrite=True"
        )


def on_device(base: Mapping[str, Tensor], vectors: Any, device: torch.device,
              dtype: torch.dtype | None, direction_dtype: torch.dtype | None = None
              ) -> tuple[dict[str, Tensor], tuple[dict[str, Tensor], ...]]:
    """The origin and direction tensors on the evaluation ``device``; floating tensors in
    ``dtype`` when given (directions follow the dtype of their origin tensor, or stay in
    ``direction_dtype`` when given)."""
    base_dev = {k: v.to(device, dtype=dtype) if (dtype and v.is_floating_point())
                else v.to(device) for k, v in base.items()}
    dirs_dev = tuple({k: v.to(device, dtype=direction_dtype if direction_dtype is not None
                                  and v.is_floating_point() else base_dev[k].dtype)
                      for k, v in vec.items()}
                     for vec in vectors)
    return base_dev, dirs_dev


def surface_memory_estimate(model: nn.Module, directions: Directions,
                            data: Mapping[str, Any], *, batch_size: int | str = "auto",
                            what: str = "weights", dtype: torch.dtype | None = None,
                            direction_dtype: torch.dtype | None = None) -> MemoryEstimate:
    """:func:`landscape.memory.surface_memory` of a surface on ``data`` (splits): the
    activations of the largest split's evaluation batch (``batch_size``; ``"auto"`` counts
    its largest candidate, 1,024 samples, capped at the data; DataLoaders their own batch),
    with the directions held in ``direction_dtype`` when given."""
    acts = 0
    for d in data.values():
        b = first_batch(d)
        if isinstance(batch_size, int):
            n = batch_size
        elif isinstance(d, StreamData) and d.is_loader:
            n = batch_len(b)
        else:
            n = min(len(d), 1024) if not isinstance(d, StreamData) or d.map_style else 1024
        try:
            acts = max(acts, forward_peak_bytes(model, b, batch_size=n, dtype=dtype))
        except Exception:  # noqa: BLE001 - the evaluator's own first-batch check says why
            pass
    return surface_memory(model, directions.vectors, None, what=what, dtype=dtype,
                          direction_dtype=direction_dtype, activations=acts)


def _new_surface(ax: Axis, ay: Axis | None, data: Mapping[str, Any], directions: Directions,
                 recipe: dict[str, Any], provenance: dict[str, Any]) -> Surface:
    shape = (ay.num, ax.num) if ay is not None else (ax.num,)
    arrays = {k: np.full(shape, np.nan) for k in metric_array_names(data)}
    prov = {**tool_versions(), **provenance}
    return Surface(
        x=ax.values, y=ay.values if ay is not None else None, arrays=arrays,
        done=np.zeros(shape, dtype=bool), directions=directions, recipe=recipe,
        provenance=prov, stderrs=new_stderrs(arrays),
    )


class _SurfaceRun(MetricsRunner):
    """Loss and accuracy of every dataset at each point of a surface's grid."""

    def __init__(self, surf: Surface, ev: Evaluator, base: dict[str, Tensor],
                 dirs: tuple[dict[str, Tensor], ...], **loop: Any) -> None:
        # Under torch.distributed, rank r of w evaluates todo[r::w] in rounds of 4 points.
        super().__init__(surf, desc="surface", sharding="strided", points_per_round=4, **loop)
        self.surf, self.ev, self.base, self.dirs = surf, ev, base, dirs

    def evaluate(self, index: int) -> Mapping[str, Any]:
        return self.ev.at(self.base, self.dirs, self.surf.coords(index))
