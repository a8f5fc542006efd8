"""Li et al.'s convexity map: ``|lambda_min / lambda_max|`` of the Hessian over a surface's grid.

At every point ``(alpha, beta)`` of an existing surface file (same directions, same grid),
:func:`compute_ratio_map` computes the largest and smallest eigenvalues of the Hessian of the
loss at ``theta* + alpha delta + beta eta`` and their ratio. Li et al. (2018, section 7) show
that the ratio is small where the surface looks convex and large where it is chaotic: a
surface plot can hide directions of negative curvature, the map shows where they are.

Per point, one Lanczos run (full re-orthogonalisation, residuals from real products) converges
both ends of the spectrum, each relative to its own eigenvalue: ``||H v - lambda v|| <=
max(tol * |lambda|, min(tol, 1e-6) * ||H||)`` (:func:`~landscape.hessian.extreme_pairs`; the
absolute floor resolves eigenvalues at zero). A tolerance relative to ``lambda_max`` would let
a Ritz value inside the cluster of near-zero eigenvalues pass for ``lambda_min`` -- exactly
where the ratio is small and Li et al. read "convex". The ratio is stored only where both
pairs converged within the HVP budget; elsewhere it is NaN and ``ratio_status`` says why.

**Warm start.** Points are visited in serpentine order (row 0 left to right, row 1 right to
left, ...), so consecutive points are grid neighbours, and each run starts from the previous
point's two extreme eigenvectors (their normalised sum, whose Krylov space holds both at once,
plus a seeded random part so that an eigenvalue that crossed below them is not missed).
Measured on the 6,634-parameter digits MLP (``benchmarks/bench_ratio_map.py``, 7x7 grids,
``tol=1e-3``), this needs 1.3x fewer Hessian-vector products (HVPs) than starting every point
from a random vector when the grid step is 1/3 of the filter norms (17.8 against 23.4 per
point), and 2.4x fewer when it is 1/30 (12.0 against 28.4). What remains is the convergence of
``lambda_min``, which sits at the edge of a dense bulk of small eigenvalues, so even a good
start needs about 10 Lanczos steps to separate it from its neighbours.

**Resume and sharding.** Like surfaces: results go into the top-level group ``/ratio_map`` of
the output file (by default the surface file itself; its other groups are kept), written
atomically at most every ``flush_seconds``; re-running computes only points with
``done == 0``, and a file whose ratio-map recipe differs is refused unless ``overwrite``. The
last eigenvectors of every unfinished chain are stored too (``warm_index``, ``warm_vectors``,
float32; dropped once the map is complete), and every warm start is rounded to float32, so a
resumed single-process run gives exactly the arrays of an uninterrupted one. Under ``torchrun``
each rank takes one contiguous block of the serpentine order (so its warm starts stay between
neighbours) and rank 0 writes; a block whose predecessor was not computed before starts cold,
so results depend on the number of ranks within the tolerance.

**Shard files.** With ``shard=(i, n)`` only shard ``i`` of ``n`` of the points (every
``n``-th point in raster order from the ``i``-th, :func:`landscape._grid.shard_points`) is
computed, into a file of its own; ``shard`` joins the recipe. A shard needs
``warm_start=False``: a warm start chains each point to its predecessor in the serpentine
order, which another shard computes, so sharded warm starts could not give the
single-process numbers. Cold, every point starts from the same seeded vector and its numbers
depend on nothing else, so :func:`landscape.shards.merge_shards` joins the ``n`` files into
the file one process writes with ``warm_start=False``, bit for bit.

Layout::

    /ratio_map             attrs: recipe (JSON), provenance (JSON), ndim, n_params
    /ratio_map/x, y        float64 grid coordinates (y only for 2D surfaces)
    /ratio_map/lambda_max  (ny, nx) float64, laid out Z[iy, ix] like the surface; NaN if not done
    /ratio_map/lambda_min  same
    /ratio_map/ratio       same, |lambda_min / lambda_max|; NaN where not resolved
    /ratio_map/n_hvp       same, int64: HVPs spent at each point
    /ratio_map/done        same, uint8
    /ratio_map/converged   same, uint8: both eigenpairs met tol
    /ratio_map/ratio_status  same, uint8: 0 resolved, 1 lambda_min not resolved, 2 lambda_max
                           not resolved, 3 neither, 4 curvature not finite, 255 not computed
                           (the legend is the group attribute ratio_status_codes, JSON)
    /ratio_map/warm_index, warm_vectors   [unfinished maps only] (m,) int64, (m, n, 2) float32

References
----------
.. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
   Neural Nets", NeurIPS 2018 (section 7, Figure 7).
.. [2] K. Wu, H. Simon, "Thick-restart Lanczos method for large symmetric eigenvalue problems",
   SIAM J. Matrix Anal. Appl., 2000.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import _schema, storage
from .._atomic import holds_output
from .._functional import LossSpec, is_perturbable, loss_name, named_tensors
from .._grid import GridProgress, GridRunner, check_shard, pending, shard_points
from .._resume import RunOptions, stored_result
from .._resume import run_options as run_options_of
from .._version import tool_versions
from ..data import sample_count
from ..errors import Int, LandscapeError, Real, validate_params
from ..parameters import ParameterSelection, select_parameters
from ..recipes import check_same_checkpoint
from ..surface import Surface
from ._linalg import check_solver_dtype, precision_note
from .lanczos import MIN_FLOOR, extreme_pairs
from .operator import HessianOperator

__all__ = ["RatioMap", "compute_ratio_map", "serpentine_order"]

GROUP = "ratio_map"

#: Codes of ``ratio_status``: why a point has no ratio (0: it has one).
RATIO_STATUS = {
    0: "resolved",
    1: "lambda_min not resolved within the HVP budget",
    2: "lambda_max not resolved within the HVP budget",
    3: "neither lambda_min nor lambda_max resolved within the HVP budget",
    4: "curvature not finite (diverged loss)",
    255: "not computed",
}
NOT_COMPUTED = 255


def ratio_status(lmin_ok: bool, lmax_ok: bool, finite: bool) -> int:
    """The ``ratio_status`` code of one point (see :data:`RATIO_STATUS`)."""
    if not finite:
        return 4
    return int(not lmin_ok) + 2 * int(not lmax_ok)


@dataclass(eq=False)
class RatioMap(GridProgress):
    """``lambda_max``, ``lambda_min`` and ``|lambda_min / lambda_max|`` on a surface's grid.

    Attributes
    ----------
    x : np.ndarray, shape (nx,)
        Coordinates along the first direction.
    y : np.ndarray, shape (ny,), or None
        Along the second (``None`` for a 1D surface).
    lambda_max, lambda_min, ratio : np.ndarray
        Shaped ``(ny, nx)`` (``Z[iy, ix]``, like :class:`~landscape.surface.Surface`) or
        ``(nx,)``; NaN where not computed (or where the loss is not finite).
    n_hvp : np.ndarray of int64
        Hessian-vector products spent per point.
    done : np.ndarray of bool
        Completion mask.
    converged : np.ndarray of bool
        Whether both eigenpairs met the tolerance.
    status : np.ndarray of uint8
        Why a point has no ratio (:data:`RATIO_STATUS`: 0 resolved, 1 ``lambda_min`` not
        resolved, 2 ``lambda_max`` not resolved, 3 neither, 4 not finite, 255 not computed).
        Derived from ``done`` and ``converged`` for files written before it existed.
    recipe : dict
        What must match to resume (surface recipe digest, directions digest, grid, tol, loss,
        batch size, data size, ...).
    provenance : dict
        Informational (surface file, tool/torch versions, command line).
    """

    x: np.ndarray
    y: np.ndarray | None
    lambda_max: np.ndarray
    lambda_min: np.ndarray
    ratio: np.ndarray
    n_hvp: np.ndarray
    done: np.ndarray
    converged: np.ndarray
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    status: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.status is None:  # files from before ratio_status: what done/converged tell
            done = np.asarray(self.done, dtype=bool)
            finite = np.isfinite(np.asarray(self.lambda_max, dtype=np.float64))
            st = np.where(np.asarray(self.converged, dtype=bool), 0, 3)
            st = np.where(finite, st, 4)
            self.status = np.where(done, st, NOT_COMPUTED).astype(np.uint8)

    @property
    def ndim(self) -> int:
        """1 or 2."""
        return 1 if self.y is None else 2

    @property
    def total_hvp(self) -> int:
        """HVPs spent on all computed points."""
        return int(self.n_hvp[self.done].sum())

    def __repr__(self) -> str:
        return f"RatioMap({self.ndim}D {self._grid()}, done={self.n_done}/{self.n_points})"

    def _grid(self) -> str:
        return f"{len(self.x)}" if self.y is None else f"{len(self.y)}x{len(self.x)}"

    def summary(self) -> dict[str, Any]:
        """The map in numbers: points done, the range and median of the resolved ratios and
        of their ``lambda_max`` (NaN when none is resolved), HVPs, and the counts of computed
        points whose curvature is not finite or whose ratio is not resolved."""
        ok = self.done & np.isfinite(self.ratio)
        r, lam = self.ratio[ok], self.lambda_max[ok]

        def stat(f: Any, a: np.ndarray) -> float:
            return float(f(a)) if a.size else math.nan

        return {
            "n_done": self.n_done, "n_points": self.n_points, "n_resolved": int(ok.sum()),
            "ratio_min": stat(np.min, r), "ratio_max": stat(np.max, r),
            "ratio_median": stat(np.median, r),
            "lambda_max_min": stat(np.min, lam), "lambda_max_max": stat(np.max, lam),
            "total_hvp": self.total_hvp,
            "n_not_finite": int(np.sum(self.done & ~np.isfinite(self.lambda_max))),
            "n_unresolved": int(np.sum(self.done & np.isin(self.status, (1, 2, 3)))),
        }

    def lines(self, *, unicode: bool = True, seconds: float | None = None) -> list[str]:
        """The :meth:`summary` in words (``seconds``: the time it took, when known)."""
        s, lam = self.summary(), "λ" if unicode else "lambda_"
        line = f"ratio map {self._grid()}: {s['n_done']}/{s['n_points']} points"
        if s["n_resolved"]:
            line += (f", |{lam}min/{lam}max| {s['ratio_min']:.3g} to {s['ratio_max']:.3g} "
                     f"(median {s['ratio_median']:.3g}), {lam}max {s['lambda_max_min']:.4g} "
                     f"to {s['lambda_max_max']:.4g}")
        line += f", {s['total_hvp']} HVPs ({s['total_hvp'] / max(s['n_done'], 1):.1f}/point)"
        out = [line + ("" if seconds is None else f" in {seconds:.1f} s")]
        if s["n_not_finite"]:
            out.append(f"note: {s['n_not_finite']} points have non-finite curvature (diverged "
                       "loss); they are NaN")
        if s["n_unresolved"]:
            out.append(f"note: {s['n_unresolved']} points have no ratio ({lam}min or {lam}max "
                       "not resolved within the HVP budget: NaN, see /ratio_map/ratio_status); "
                       "raise the 'max_hvp' parameter")
        return out

    # ------------------------------------------------------------------ storage
    def plot(self, surface: Surface | None = None, **kwargs: Any) -> Any:
        """The ratio on its grid (unfinished points blank), axes labelled like ``surface``'s
        when given (the surface the map was computed on); keyword arguments go to
        :func:`landscape.plot.plot_ratio_map`."""
        from ..plot import plot_ratio_map
        from ..plot._style import axis_labels

        labels: dict[str, Any] = {}
        if surface is not None and surface.ndim == self.ndim:  # the map is on its grid
            labels = dict(zip(("xlabel", "ylabel"), axis_labels(surface), strict=True))
        return plot_ratio_map(self.x, self.y, np.where(self.done, self.ratio, np.nan),
                              done=self.done, **{**labels, **kwargs})

    def to_group(self, warm: Mapping[int, np.ndarray] | None = None) -> storage.Group:
        """The ``/ratio_map`` group; ``warm`` adds the chain-end eigenvectors for resuming."""
        g = storage.Group(attrs={
            "recipe": storage.dumps(self.recipe),
            "provenance": storage.dumps(self.provenance),
            "ndim": self.ndim,
        })
        if "n_params" in self.recipe:
            g.attrs["n_params"] = int(self.recipe["n_params"])
        g.datasets["x"] = np.asarray(self.x, dtype=np.float64)
        if self.y is not None:
            g.datasets["y"] = np.asarray(self.y, dtype=np.float64)
        done = np.asarray(self.done, dtype=bool).copy()  # read first: see Surface._groups
        for name in ("lambda_max", "lambda_min", "ratio"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            g.datasets[name] = np.where(done, a, np.nan)
        g.datasets["n_hvp"] = np.where(done, np.asarray(self.n_hvp, dtype=np.int64), 0)
        g.datasets["done"] = done.astype(np.uint8)
        g.datasets["converged"] = (done & np.asarray(self.converged, dtype=bool)).astype(np.uint8)
        g.datasets["ratio_status"] = np.where(done, np.asarray(self.status, dtype=np.uint8),
                                              NOT_COMPUTED).astype(np.uint8)
        g.attrs["ratio_status_codes"] = json.dumps({str(k): v for k, v in RATIO_STATUS.items()})
        if warm:
            keys = sorted(warm)
            g.datasets["warm_index"] = np.asarray(keys, dtype=np.int64)
            g.datasets["warm_vectors"] = np.stack([warm[k] for k in keys]).astype(np.float32)
        return g

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the ``/ratio_map`` group of ``path`` atomically (other groups are kept;
        ``overwrite`` replaces a landscape file whole)."""
        storage.update_file(path, {GROUP: self.to_group()}, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RatioMap:
        """Read the ``/ratio_map`` group of a landscape file."""
        return _read(path)[0]


def _read(path: str | os.PathLike) -> tuple[RatioMap, dict[int, np.ndarray]]:
    g = storage.require_group(path, GROUP, "holds no ratio map (no /ratio_map group); "
                              "compute one with compute_ratio_map()")
    where = f"'{path}' has a damaged /ratio_map group"
    d = g.datasets
    x = _schema.coordinates(d, "x", where)
    y = _schema.coordinates(d, "y", where) if "y" in d else None
    shape = _schema.grid_shape(x, y)
    names = ["lambda_max", "lambda_min", "ratio", "n_hvp", "done", "converged"]
    _schema.check_coordinates_fit(d, names, shape, where)
    rm = RatioMap(
        x=x, y=y,
        lambda_max=_schema.grid_array(d, "lambda_max", shape, where),
        lambda_min=_schema.grid_array(d, "lambda_min", shape, where),
        ratio=_schema.grid_array(d, "ratio", shape, where),
        n_hvp=_schema.grid_array(d, "n_hvp", shape, where, dtype=np.int64),
        done=_schema.grid_array(d, "done", shape, where, mask=True),
        converged=_schema.grid_array(d, "converged", shape, where, mask=True),
        recipe=_schema.json_attr(g.attrs, "recipe", where, dict),
        provenance=_schema.json_attr(g.attrs, "provenance", where, dict, default={}),
        status=_schema.grid_array(d, "ratio_status", shape, where, dtype=np.uint8)
        if "ratio_status" in d else None,
    )
    warm: dict[int, np.ndarray] = {}
    if "warm_index" in d:
        try:
            idx = np.asarray(d["warm_index"], dtype=np.int64)
            vecs = np.asarray(d["warm_vectors"], dtype=np.float32)
            if idx.ndim != 1 or vecs.ndim < 2 or len(idx) != len(vecs) or \
                    not ((idx >= 0) & (idx < rm.n_points)).all():
                raise ValueError("shapes or indices do not fit the grid")
        except (KeyError, ValueError, TypeError) as exc:
            raise LandscapeError(f"{where}: datasets 'warm_index'/'warm_vectors' are "
                                 f"damaged ({exc})") from exc
        warm = {int(i): v for i, v in zip(idx, vecs, strict=True)}
    return rm, warm


def serpentine_order(shape: tuple[int, ...]) -> np.ndarray:
    """Flat (raster) indices of a ``(ny, nx)`` or ``(nx,)`` grid in serpentine order.

    Row 0 left to right, row 1 right to left, ...: consecutive entries are grid neighbours.

    Examples
    --------
    >>> serpentine_order((2, 3)).tolist()
    [0, 1, 2, 5, 4, 3]
    """
    if len(shape) == 1:
        return np.arange(shape[0], dtype=np.int64)
    ny, nx = shape
    idx = np.arange(ny * nx, dtype=np.int64).reshape(ny, nx)
    idx[1::2] = idx[1::2, ::-1]
    return idx.reshape(-1)


#: Norm of the random part of a warm start vector (each eigenvector has norm 1). Without it,
#: a start made of the neighbour's eigenvectors can miss an eigenvalue that crossed below
#: them (seen on a 51-parameter net: lambda_min off by 1.6% while the residual test passed);
#: with it, a warm start is as safe as a cold one and, measured on the digits MLP, costs
#: 0-8% more products than without.
WARM_NOISE = 1.0


def _warm_vector(vecs: np.ndarray, seed: int, index: int) -> np.ndarray:
    """Start vector from the neighbour's eigenvectors plus a seeded random part."""
    v = np.asarray(vecs, dtype=np.float64)
    v = v.reshape(v.shape[0], -1)
    v = (v / np.maximum(np.linalg.norm(v, axis=0), 1e-300)).sum(axis=1)
    if WARM_NOISE > 0:
        r = np.random.default_rng([seed, index]).standard_normal(v.shape[0])
        v = v + WARM_NOISE * r / np.linalg.norm(r)
    return np.ascontiguousarray(v)


def _is_landscape(path: Path) -> bool:
    try:
        return storage.file_kind(path) == "landscape"
    except LandscapeError:
        return False


def _grid_spec(v: np.ndarray) -> str:
    return f"{v[0]:.17g}:{v[-1]:.17g}:{len(v)}"


def _ignored(params: Mapping[str, Tensor], param_names: set[str],
             ignore: Iterable[str] | str | None,
             selection: ParameterSelection | None = None) -> list[str]:
    """Names held fixed: buffers (for ``what="states"``), tensors the directions' selection
    does not move (frozen, outside ``params`` / inside ``exclude``) plus what ``ignore`` asks
    for (``"biasbn"``: biases and normalisation-layer tensors, by module type)."""
    out = {k for k in params if k not in param_names}
    if selection is not None:
        out |= {k for k in params if k in selection.names and not selection.moves(k)}
    if ignore is None or ignore == "none":
        pass
    elif isinstance(ignore, str):
        if ignore != "biasbn":
            raise LandscapeError(
                f"The 'ignore' parameter must be 'biasbn', 'none' or an iterable of tensor "
                f"names. Got {ignore!r} instead."
            )
        out |= {k for k, v in params.items()
                if v.ndim <= 1 or (selection is not None and selection.is_biasbn(k))}
    else:
        names = set(ignore)
        bad = sorted(names - set(params))
        if bad:
            raise LandscapeError(
                f"The 'ignore' parameter names tensors the model does not have: {bad[:3]}"
            )
        out |= names
    return [k for k in params if k in out]


class _RatioMapRun(GridRunner):
    """Both extreme eigenpairs at each point, visited in serpentine order with warm starts.

    Under ``torchrun`` each rank takes one contiguous block of the order (so that its warm
    starts stay between neighbours), one point per round.
    """

    def __init__(self, rm: RatioMap, model: nn.Module, data: Any, surf: Surface,
                 base: Mapping[str, Tensor], dirs: tuple[Mapping[str, Tensor], ...],
                 warm: dict[int, np.ndarray], *, dev: torch.device, op_dtype: torch.dtype,
                 loss: LossSpec, batch_size: int, fixed: list[str], tol: float,
                 max_hvp: int | None, seed: int, warm_start: bool, out: Path,
                 first_write: bool, solver_dtype: torch.dtype = torch.float64,
                 **loop: Any) -> None:
        super().__init__(rm.done, out=out, desc="ratio map", sharding="contiguous",
                         points_per_round=1, **loop)
        self.rm, self.model, self.data, self.surf = rm, model, data, surf
        self.loss, self.batch_size, self.fixed = loss, batch_size, fixed
        self.tol, self.max_hvp, self.seed, self.warm_start = tol, max_hvp, seed, warm_start
        self.op_dtype, self.solver_dtype = op_dtype, solver_dtype
        self.warm = warm
        self.first_write = first_write
        self.base = {k: v.detach().to(dev) for k, v in base.items()}
        self.dirs = tuple({k: v.detach().to(dev) for k, v in vec.items()} for vec in dirs)
        self._order = serpentine_order(rm.shape)
        self.pos = np.empty(len(self._order), dtype=np.int64)
        self.pos[self._order] = np.arange(len(self._order))
        self.flat = {name: getattr(rm, name).reshape(-1) for name in
                     ("lambda_max", "lambda_min", "ratio", "n_hvp", "done", "converged",
                      "status")}
        self.prev: tuple[int, np.ndarray] | None = None  # this rank's last point and vectors
        self.spent = [0, 0]  # HVPs and points of this run, for the bar

    def order(self) -> np.ndarray:
        return self._order

    def neighbour(self, i: int, step: int) -> int | None:
        p = int(self.pos[i]) + step
        return int(self._order[p]) if 0 <= p < len(self._order) else None

    def point_params(self, i: int) -> dict[str, Tensor]:
        coords = self.surf.coords(i)
        params: dict[str, Tensor] = {}
        for k, b in self.base.items():
            if not is_perturbable(b):
                params[k] = b
                continue
            t = b.to(self.op_dtype)
            for c, d in zip(coords, self.dirs, strict=True):
                if c != 0.0:
                    t = t + c * d[k].to(self.op_dtype)
            params[k] = t
        return params

    def compute(self, i: int) -> tuple[tuple, np.ndarray | None]:
        v0 = None
        p = self.neighbour(i, -1)
        if self.warm_start and p is not None:
            if self.prev is not None and self.prev[0] == p:
                v0 = self.prev[1]
            elif p in self.warm:
                v0 = self.warm[p]
        numbers, vecs = self._solve(i, v0)
        self.prev = (i, vecs) if vecs is not None else None
        return numbers, vecs

    def _solve(self, i: int, v0: np.ndarray | None) -> tuple[tuple, np.ndarray | None]:
        op = HessianOperator(self.model, self.data, loss=self.loss, batch_size=self.batch_size,
                             params=self.point_params(i), ignore=self.fixed,
                             dtype=self.op_dtype)
        if v0 is not None and v0.shape[0] != op.numel:
            v0 = None
        if v0 is not None:
            v0 = _warm_vector(v0, self.seed, i)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = extreme_pairs(op, tol=self.tol, max_hvp=self.max_hvp, v0=v0,
                                    seed=self.seed, solver_dtype=self.solver_dtype)
        except LandscapeError:
            raise
        except (ValueError, np.linalg.LinAlgError):  # NaN/inf products: a diverged point
            return (i, np.nan, np.nan, op.n_hvp, ratio_status(False, False, False)), None
        vals = res.eigenvalues
        if not np.all(np.isfinite(vals)):
            return (i, np.nan, np.nan, op.n_hvp, ratio_status(False, False, False)), None
        hi, lo = int(np.argmax(vals)), int(np.argmin(vals))
        lmax, lmin = float(vals[hi]), float(vals[lo])
        status = ratio_status(bool(res.converged[lo]), bool(res.converged[hi]), True)
        vecs = res.eigenvectors[:, [hi, lo]]
        # Rounded to float32 (C order) here *and* in the file, so a resumed run starts alike.
        return ((i, lmax, lmin, op.n_hvp, status),
                np.ascontiguousarray(vecs, dtype=np.float32))

    def record(self, index: int, payload: tuple[tuple, np.ndarray | None]) -> None:
        (i, lmax, lmin, nh, status), vecs = payload
        flat = self.flat
        flat["lambda_max"][i] = lmax
        flat["lambda_min"][i] = lmin
        if status != 0:  # only a resolved lambda_min (and lambda_max) gives a ratio
            flat["ratio"][i] = np.nan
        else:
            flat["ratio"][i] = abs(lmin / lmax) if lmax != 0 else \
                (np.inf if lmin != 0 else np.nan)
        flat["n_hvp"][i] = nh
        flat["converged"][i] = status == 0
        flat["status"][i] = status
        flat["done"][i] = True
        p = self.neighbour(i, -1)
        if p is not None:
            self.warm.pop(p, None)
        if self.warm_start and vecs is not None:
            self.warm[i] = vecs
        self.spent[0] += nh
        self.spent[1] += 1

    def postfix(self) -> str | None:
        return f"{self.spent[0] / self.spent[1]:.1f} HVP/pt" if self.spent[1] else None

    def live_warm(self) -> dict[int, np.ndarray]:
        """Chain-end eigenvectors whose successor is not done yet (what a resume needs)."""
        out_w = {}
        for i, v in self.warm.items():
            s = self.neighbour(i, 1)
            if s is not None and not self.flat["done"][s]:
                out_w[i] = v
        return out_w

    def save(self) -> None:
        storage.update_file(self.out, {GROUP: self.rm.to_group(self.live_warm())},
                            overwrite=self.first_write)
        self.first_write = False


@holds_output("out", "surface_path")
def compute_ratio_map(
    model: nn.Module,
    surface_path: str | os.PathLike,
    data: Any,
    *,
    loss: LossSpec = "cross_entropy",
    batch_size: int = 512,
    tol: float = 1e-3,
    warm_start: bool = True,
    ignore: Iterable[str] | str | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    max_hvp: int | None = None,
    seed: int = 0,
    recipe: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    solver_dtype: torch.dtype | None = None,
    shard: tuple[int, int] | None = None,
    run: RunOptions | None = None,
    **run_options: Any,
) -> RatioMap:
    """``lambda_max``, ``lambda_min`` and ``|lambda_min/lambda_max|`` on a surface's grid.

    Parameters
    ----------
    model : nn.Module
        The network at the surface's origin ``theta*`` (not modified). It must be the model
        the surface was computed for; the CLI checks the checkpoint's SHA-256.
    surface_path : path
        A landscape file with ``/surface`` and ``/directions`` (from
        :func:`~landscape.surface.compute_surface`); its grid and directions are used.
    data : object with ``.x`` and ``.y``, or a pair ``(x, y)``
        The samples of the loss (usually the training data the surface's ``train_loss`` used).
    loss : str or callable, default "cross_entropy"
        Per-sample loss.
    batch_size : int, default 512
        Samples per forward pass (part of the recipe; results do not depend on it).
    tol : float, default 1e-3
        Each eigenpair converges to ``||H v - lambda v|| <= max(tol * |lambda|,
        min(tol, 1e-6) * ||H||)`` (relative to itself; the floor resolves eigenvalues at
        zero), which also bounds the error of each eigenvalue. Where a pair does not
        converge within ``max_hvp`` the ratio is NaN (``status`` says which).
    warm_start : bool, default True
        Start each point's Lanczos run from the previous (neighbouring) point's eigenvectors.
        ``False`` starts every point from the same seeded random vector.
    ignore : "biasbn", "none", iterable of str, optional
        Tensors held fixed (default: the Hessian is taken over every parameter, as Li et al.).
        Buffers (BatchNorm statistics, for ``states`` directions) are always held fixed at
        their perturbed values.
    dtype : torch.dtype, optional
        Compute in this dtype (default: the model's).
    device : torch.device or str, optional
        Where to compute (default: where the model's tensors are).
    max_hvp : int, optional
        HVP budget per point (see :func:`~landscape.hessian.top_eigen`).
    seed : int, default 0
        Seed of the random start vectors (cold starts).
    recipe, provenance : dict, optional
        Extra entries (checkpoint SHA-256, data spec; command line). A
        ``recipe["checkpoint_sha256"]`` must equal the surface's (the map is computed at the
        surface's checkpoint); ``provenance["checkpoint"]`` names it in the error.
    solver_dtype : torch.dtype, optional
        Dtype of the Lanczos basis on the compute device (default float64; float32 halves
        its memory, see :func:`~landscape.hessian.top_eigen`). Recorded in the recipe when
        it is not float64.
    shard : (int, int), optional
        ``(i, n)``: compute only shard ``i`` of ``n`` of the points (every ``n``-th in raster
        order from the ``i``-th) into ``out``, a file of its own that resumes like any other;
        ``shard`` joins the recipe. Needs ``warm_start=False`` (see the module docstring).
        :func:`landscape.shards.merge_shards` joins the ``n`` files into the map one process
        computes with ``warm_start=False``, bit for bit.

    run : RunOptions, optional
        How the map is written (:class:`~landscape.inputs.RunOptions`), or its fields one by
        one as keyword arguments:
        out : path, optional
            File to write the ``/ratio_map`` group into (default: ``surface_path``; other groups
            of the file are kept).
        overwrite : bool, default False
            Replace a ratio map computed with another recipe (or start afresh).
        progress : bool, default True
            Progress bar with ETA.
        flush_seconds : float, default 10
            Write finished points at most this often (and always at the end).
        max_points : int, optional
            Stop after this many new points (the file stays resumable).

    Returns
    -------
    RatioMap

    Notes
    -----
    ``lambda_max`` and ``lambda_min`` are the largest and smallest *algebraic* eigenvalues;
    where ``lambda_max <= 0`` (concave in every direction) the ratio is still
    ``|lambda_min / lambda_max|`` (``>= 1``). Points where the loss or its derivatives are
    not finite get NaN and the next point starts cold.

    References
    ----------
    .. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
       Neural Nets", NeurIPS 2018.

    Examples
    --------
    >>> surf = compute_surface(model, dirs, {"train": train}, x="-1:1:21", y="-1:1:21",
    ...                        out="s.h5")                                   # doctest: +SKIP
    >>> rm = compute_ratio_map(model, "s.h5", train)                          # doctest: +SKIP
    >>> plt.contourf(rm.x, rm.y, rm.ratio)                                    # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise LandscapeError(
            f"The 'model' parameter must be a torch.nn.Module. Got {type(model).__name__}."
        )
    opts = run_options_of(run, **run_options)
    p = validate_params({"tol": tol, "batch_size": batch_size, "seed": seed,
                         "max_hvp": max_hvp, "solver_dtype": solver_dtype,
                         "warm_start": warm_start, "shard": shard, "dtype": dtype}, _CONSTRAINTS)
    if p["shard"] is not None and p["warm_start"]:
        raise LandscapeError(
            "the 'shard' parameter needs warm_start=False: a warm start chains each point "
            "to its neighbour in the serpentine order, which another shard computes (the "
            "merged shards equal a single-process map computed with warm_start=False)")
    surf, base, fixed, op_dtype, dev = _map_inputs(model, surface_path, ignore, p["dtype"],
                                                   device, recipe, provenance)
    full_recipe = _map_recipe(surf, data, loss, ignore, op_dtype, p, recipe)
    prov = {**tool_versions(), **precision_note(op_dtype),
            "surface_file": str(surface_path), **dict(provenance or {})}
    out_p = opts.path if opts.out is not None else Path(surface_path)
    rm, warm, replace_file = _start_or_resume(surf, full_recipe, prov, out_p, opts.overwrite)
    mine = None if p["shard"] is None else shard_points(range(rm.done.size), *p["shard"])
    if not pending(rm.done, opts.max_points, mine):
        return rm
    _RatioMapRun(
        rm, model, data, surf, base, surf.directions.vectors, warm if p["warm_start"] else {},
        dev=dev, op_dtype=op_dtype, loss=loss, batch_size=p["batch_size"], fixed=fixed,
        tol=p["tol"], max_hvp=p["max_hvp"], seed=p["seed"], warm_start=p["warm_start"],
        out=out_p, first_write=replace_file, solver_dtype=p["solver_dtype"],
        progress=opts.progress, flush_seconds=opts.flush_seconds, max_points=opts.max_points,
        shard=p["shard"],
    ).run()
    bad = int(np.sum(rm.done & ~rm.converged & np.isfinite(rm.lambda_max)))
    if bad:
        warnings.warn(
            f"{bad} of {rm.n_done} ratio-map points did not reach tol={p['tol']:g} within the "
            "HVP budget: their ratio is NaN (the reason per point is /ratio_map/ratio_status); "
            "raise max_hvp or loosen tol",
            RuntimeWarning,
            stacklevel=2,
        )
    return rm


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LandscapeError(f"The {name!r} parameter must be a bool. Got {value!r}.")
    return value


def _check_dtype(name: str, value: Any) -> torch.dtype | None:
    if value is not None and not (isinstance(value, torch.dtype) and value.is_floating_point):
        raise LandscapeError(
            f"The {name!r} parameter must be a floating torch.dtype or None. Got {value!r}."
        )
    return value


#: The declared constraints of :func:`compute_ratio_map`'s settings (checked in this order).
_CONSTRAINTS: dict[str, Any] = {
    "tol": Real(0.0, closed="neither"), "batch_size": Int(1), "seed": Int(0),
    "max_hvp": Int(1, optional=True), "solver_dtype": lambda _n, v: check_solver_dtype(v),
    "warm_start": _check_bool, "shard": lambda _n, v: None if v is None else check_shard(v),
    "dtype": _check_dtype,
}


def _map_inputs(model: nn.Module, surface_path: str | os.PathLike, ignore: Any,
                dtype: torch.dtype | None, device: Any, recipe: Mapping[str, Any] | None,
                provenance: Mapping[str, Any] | None) -> tuple:
    """The surface, the model's tensors, the fixed ones, the compute dtype and device; a
    :class:`LandscapeError` where the surface does not belong to this model."""
    surf = Surface.load(surface_path)
    if surf.directions is None:
        raise LandscapeError(
            f"'{surface_path}' has no /directions group (a Li et al. file?); a ratio map needs "
            "the surface's directions"
        )
    if recipe is not None and "checkpoint_sha256" in recipe:
        check_same_checkpoint(surf.recipe, recipe["checkpoint_sha256"],
                              what=f"surface '{surface_path}'",
                              checkpoint=(provenance or {}).get("checkpoint", "given"),
                              origin=surf.provenance.get("checkpoint"))
    dirs = surf.directions
    base = named_tensors(model, dirs.what)
    for vec in dirs.vectors:
        for k, v in vec.items():
            if k not in base or tuple(v.shape) != tuple(base[k].shape):
                raise LandscapeError(
                    f"the directions of '{surface_path}' do not fit this model (tensor '{k}'"
                    f"{' is missing' if k not in base else ' has another shape'}); pass the "
                    "model the surface was computed for"
                )
    param_names = {k for k, _ in model.named_parameters()}
    rec = dirs.recipe
    sel = select_parameters(model, dirs.what, params=rec.get("params"),
                            exclude=rec.get("exclude"),
                            include_frozen=bool(rec.get("include_frozen", False)))
    fixed = _ignored(base, param_names, ignore, sel)
    first = next((v for k, v in base.items() if k not in fixed and is_perturbable(v)), None)
    if first is None:
        raise LandscapeError("no parameters are left to differentiate; check 'ignore'")
    dev = torch.device(device) if device is not None else first.device
    return surf, base, fixed, dtype or first.dtype, dev


def _map_recipe(surf: Surface, data: Any, loss: LossSpec, ignore: Any, op_dtype: torch.dtype,
                p: Mapping[str, Any], recipe: Mapping[str, Any] | None) -> dict[str, Any]:
    """The map's recipe: the caller's entries, the surface's and directions' digests, the
    grid and the settings (``solver_dtype`` and ``shard`` only where not the default)."""
    dirs = surf.directions
    full: dict[str, Any] = dict(recipe or {})
    full.update({
        "surface_recipe_sha256": hashlib.sha256(storage.dumps(surf.recipe).encode()).hexdigest(),
        "directions_sha256": dirs.digest(),
        "grid": {"x": _grid_spec(surf.x), "y": None if surf.y is None else _grid_spec(surf.y)},
        "tol": p["tol"],
        "scale_atol": min(p["tol"], MIN_FLOOR),  # lambda_min's own criterion (older maps lack it)
        "k": 2,
        "which": "both ends",
        "warm_start": p["warm_start"],
        "loss": loss_name(loss),
        "batch_size": p["batch_size"],
        "n_samples": sample_count(data),
        "what": dirs.what,
        "ignore": ignore if ignore is None or isinstance(ignore, str) else sorted(ignore),
        "dtype": str(op_dtype).replace("torch.", ""),
        "seed": p["seed"],
        "max_hvp": p["max_hvp"],
        "bn": "eval",
    })
    if p["solver_dtype"] != torch.float64:  # only where not the default (older maps match)
        full["solver_dtype"] = str(p["solver_dtype"]).replace("torch.", "")
    if p["shard"] is not None:  # only when set: the merged file's recipe is the plain one
        full["shard"] = list(p["shard"])
    return json.loads(storage.dumps(full))


def _start_or_resume(surf: Surface, recipe: dict[str, Any], prov: dict[str, Any], out: Path,
                     overwrite: bool) -> tuple[RatioMap, dict[int, np.ndarray], bool]:
    """An empty map on the surface's grid, or the one ``out`` holds with this recipe; the
    stored warm-start vectors of its unfinished chains; whether ``out`` is a foreign file to
    replace whole (only reachable with ``overwrite``; a landscape file keeps its other
    groups)."""
    shape = surf.shape
    rm = RatioMap(
        x=np.asarray(surf.x, dtype=np.float64),
        y=None if surf.y is None else np.asarray(surf.y, dtype=np.float64),
        lambda_max=np.full(shape, np.nan), lambda_min=np.full(shape, np.nan),
        ratio=np.full(shape, np.nan), n_hvp=np.zeros(shape, dtype=np.int64),
        done=np.zeros(shape, dtype=bool), converged=np.zeros(shape, dtype=bool),
        recipe=recipe, provenance=prov,
        status=np.full(shape, NOT_COMPUTED, dtype=np.uint8),
    )
    warm: dict[int, np.ndarray] = {}

    def load(path: Path) -> RatioMap:  # the map and the chain ends of its unfinished chains
        stored, chain_ends = _read(path)
        warm.update(chain_ends)
        return stored

    old = stored_result(out, overwrite=overwrite, recipe=recipe, group=GROUP, load=load,
                        subject="holds a ratio map")
    replace_file = out.exists() and not _is_landscape(out)
    if old is not None:
        if old.shape != shape:
            raise LandscapeError(f"'{out}' holds a ratio map of another grid shape")
        rm = RatioMap(x=rm.x, y=rm.y, lambda_max=old.lambda_max, lambda_min=old.lambda_min,
                      ratio=old.ratio, n_hvp=old.n_hvp, done=old.done,
                      converged=old.converged, recipe=recipe, provenance=old.provenance,
                      status=old.status)
    return rm, warm, replace_file
