"""Curvature at one point as a storable result: :class:`CurvatureResult`, :func:`compute_curvature`.

:func:`compute_curvature` runs the estimators of :mod:`landscape.hessian` on one
:class:`~landscape.hessian.HessianOperator` -- top-k eigenpairs, the smallest eigenvalue and
``|lambda_min / lambda_max|``, a trace estimate (Hutch++ or Hutchinson), the SLQ spectral
density -- and returns a frozen :class:`CurvatureResult` that saves itself as the ``/curvature``
group of a landscape HDF5 file (a surface file is fine: the other groups are kept)::

    /curvature                 attrs: recipe (JSON), provenance (JSON), results (JSON list),
                                      n_params, top_n_hvp, top_which, min_residual,
                                      min_threshold, min_converged, min_n_hvp, ratio_note,
                                      trace_stderr, trace_method, trace_n_hvp, slq_n_hvp,
                                      density_trace,
                                      eigenvector_names / eigenvector_shapes (JSON)
    /curvature/top_eigenvalues (k,) float64    in the order of ``top_which`` (default "LA":
                                               decreasing)
    /curvature/top_residuals   (k,) float64    ||H v - lambda v|| from real products
    /curvature/top_converged   (k,) uint8
    /curvature/eigenvectors    (k, n) float32  [optional] unit eigenvectors, flat in the
                                               order of eigenvector_names/_shapes
    /curvature/min_eigenvalue  scalar float64
    /curvature/ratio           scalar float64  |lambda_min / lambda_max|; NaN unless both are
                                               resolved (then the attr ratio_note says why)
    /curvature/trace           scalar float64  (its standard error is the attr trace_stderr)
    /curvature/slq_nodes       (runs, m) float64  Ritz values of each SLQ run
    /curvature/slq_weights     (runs, m) float64  quadrature weights (rows sum to 1)
    /curvature/density_grid    (p,) float64    where the smoothed density is evaluated
    /curvature/density         (p,) float64    Gaussian-smoothed eigenvalue density

Every item is optional; ``results`` lists the sections present (``top``, ``min``, ``trace``,
``density``, ``eigenvectors``). The recipe holds what identifies the operator (checkpoint
SHA-256, model and data specs, sample count, loss, batch size, ``what``, ``ignore``, dtype)
plus one entry per section with its own settings (k, tol, seed, ...). Saving into a file whose
``/curvature`` has the same operator recipe *merges*: sections computed now replace theirs,
the others are kept (so ``--trace`` after ``--top-k 5`` adds the trace).

References
----------
.. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
   Neural Nets", NeurIPS 2018 (|lambda_min / lambda_max| as a measure of non-convexity).
.. [2] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
   estimation", SOSA 2021.
.. [3] B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
   Hessian eigenvalue density", ICML 2019.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import storage
from .._atomic import output_lock
from .._functional import LossSpec, loss_name
from .._version import tool_versions
from ..data import sample_count
from ..errors import LandscapeError, check_float, check_int, check_option
from ..memory import curvature_memory
from ._linalg import check_solver_dtype, precision_note
from .density import slq
from .ggn import OPERATORS, curvature_operator, operator_label
from .lanczos import MIN_FLOOR, min_eigen, top_eigen
from .operator import FD_ERROR_BOUND, FD_STEP_RULE, HessianOperator
from .progress import HVPProgress
from .trace import hutchinson, hutchpp

__all__ = ["CurvatureResult", "compute_curvature", "TRACE_METHODS"]

#: ``trace_method`` values of :func:`compute_curvature`.
TRACE_METHODS = ("hutchpp", "hutchinson")

#: Recipe entries holding the settings of one section; every other entry identifies the
#: operator and must match for results to be merged into one ``/curvature`` group.
SECTIONS = ("top", "min", "trace", "density")

GROUP = "curvature"

_ARRAYS = ("top_eigenvalues", "top_residuals", "slq_nodes", "slq_weights", "density_grid",
           "density")
_SCALAR_DATASETS = ("min_eigenvalue", "ratio", "trace")
_INT_ATTRS = ("n_params", "top_n_hvp", "min_n_hvp", "trace_n_hvp", "slq_n_hvp")
_FLOAT_ATTRS = ("min_residual", "min_threshold", "trace_stderr", "density_trace")
_STR_ATTRS = ("top_which", "trace_method", "ratio_note")


def _opt_array(a: Any, dtype: Any) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(np.asarray(a, dtype=dtype))


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(np.asarray(v, dtype=np.float64).reshape(()))


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


@dataclass(frozen=True, eq=False)
class CurvatureResult:
    """Curvature numbers of the loss at one point, with their recipe and provenance.

    Every field except ``recipe`` and ``provenance`` is optional (``None`` when that result
    was not computed).

    Attributes
    ----------
    top_eigenvalues, top_residuals : np.ndarray, shape (k,)
        Extreme eigenvalues (order of ``top_which``) and ``||H v - lambda v||`` of each.
    top_converged : np.ndarray of bool, shape (k,)
        Whether each pair met the tolerance.
    top_n_hvp : int
        Hessian-vector products (HVPs) used for the top-k pairs.
    top_which : str
        ``"LA"`` (largest algebraic, the default), ``"LM"`` or ``"SA"``.
    eigenvectors : np.ndarray, shape (k, n), float32
        Unit eigenvectors as rows, flat in the order of ``eigenvector_names``.
    eigenvector_names : tuple of str
        Tensor names of the flat ordering (the operator's variables).
    eigenvector_shapes : tuple of tuple of int
        Their shapes.
    min_eigenvalue, min_residual : float
        Smallest (algebraic) eigenvalue and its residual norm.
    min_threshold : float
        The residual bound ``lambda_min`` had to meet (its own criterion, see
        :func:`~landscape.hessian.min_eigen`); it also bounds the error of ``lambda_min``.
    min_converged : bool
        Whether ``min_residual <= min_threshold`` within the HVP budget.
    min_n_hvp : int
    ratio : float
        ``|lambda_min / lambda_max|`` with ``lambda_max = max(top_eigenvalues)`` (Li et al.
        2018: small where the loss looks convex), only where both are resolved (converged);
        otherwise NaN, with the reason in ``ratio_note``. Results compare by identity (they
        hold arrays).
    ratio_note : str
        Why ``ratio`` is NaN (``None`` when it is a number).
    trace, trace_stderr : float
        Trace estimate and its standard error.
    trace_method : str
        ``"hutch++"`` or ``"hutchinson"``.
    trace_n_hvp : int
    slq_nodes, slq_weights : np.ndarray, shape (runs, m)
        Stochastic Lanczos quadrature nodes (Ritz values) and weights.
    slq_n_hvp : int
    n_params : int
        Dimension ``n`` of the operator.
    density_grid, density : np.ndarray, shape (p,)
        The Gaussian-smoothed density (integrates to 1 over the grid).
    density_trace : float
        The trace implied by the quadrature, ``n * mean_runs sum_k tau_k theta_k``.
    recipe : dict
        Everything that identifies the computation (see the module docstring).
    provenance : dict
        Informational metadata (command line, versions, checkpoint path, timings).
    """

    top_eigenvalues: np.ndarray | None = None
    top_residuals: np.ndarray | None = None
    top_converged: np.ndarray | None = None
    top_n_hvp: int | None = None
    top_which: str | None = None
    eigenvectors: np.ndarray | None = None
    eigenvector_names: tuple[str, ...] | None = None
    eigenvector_shapes: tuple[tuple[int, ...], ...] | None = None
    min_eigenvalue: float | None = None
    min_residual: float | None = None
    min_threshold: float | None = None
    min_converged: bool | None = None
    min_n_hvp: int | None = None
    ratio: float | None = None
    ratio_note: str | None = None
    trace: float | None = None
    trace_stderr: float | None = None
    trace_method: str | None = None
    trace_n_hvp: int | None = None
    slq_nodes: np.ndarray | None = None
    slq_weights: np.ndarray | None = None
    slq_n_hvp: int | None = None
    n_params: int | None = None
    density_grid: np.ndarray | None = None
    density: np.ndarray | None = None
    density_trace: float | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in _ARRAYS:
            put(name, _opt_array(getattr(self, name), np.float64))
        put("top_converged", _opt_array(self.top_converged, bool))
        put("eigenvectors", _opt_array(self.eigenvectors, np.float32))
        for name in ("min_eigenvalue", "ratio", "trace", *_FLOAT_ATTRS):
            put(name, _opt_float(getattr(self, name)))
        for name in _INT_ATTRS:
            put(name, _opt_int(getattr(self, name)))
        if self.min_converged is not None:
            put("min_converged", bool(self.min_converged))
        if self.eigenvector_names is not None:
            put("eigenvector_names", tuple(str(n) for n in self.eigenvector_names))
        if self.eigenvector_shapes is not None:
            put("eigenvector_shapes",
                tuple(tuple(int(s) for s in shape) for shape in self.eigenvector_shapes))
        if self.eigenvectors is not None:
            if self.eigenvector_names is None or self.eigenvector_shapes is None:
                raise LandscapeError(
                    "CurvatureResult: eigenvectors need eigenvector_names and "
                    "eigenvector_shapes (the flat ordering) to become directions"
                )
            n = sum(math.prod(s) for s in self.eigenvector_shapes)
            if self.eigenvectors.ndim != 2 or self.eigenvectors.shape[1] != n:
                raise LandscapeError(
                    f"CurvatureResult: eigenvectors must have shape (k, {n}) for the given "
                    f"names and shapes; got {self.eigenvectors.shape}"
                )
        if self.ratio is None and self.lambda_max is not None and self.min_eigenvalue is not None:
            ratio, note = self._resolved_ratio()
            put("ratio", ratio)
            put("ratio_note", note)
        put("recipe", json.loads(storage.dumps(dict(self.recipe))))
        put("provenance", json.loads(storage.dumps(dict(self.provenance))))

    # ------------------------------------------------------------------ views
    @property
    def sections(self) -> list[str]:
        """Sections present: among ``"top"``, ``"min"``, ``"trace"``, ``"density"``,
        ``"eigenvectors"``."""
        out = []
        if self.top_eigenvalues is not None:
            out.append("top")
        if self.min_eigenvalue is not None:
            out.append("min")
        if self.trace is not None:
            out.append("trace")
        if self.density is not None or self.slq_nodes is not None:
            out.append("density")
        if self.eigenvectors is not None:
            out.append("eigenvectors")
        return out

    @property
    def lambda_max(self) -> float | None:
        """Largest eigenvalue found (``max(top_eigenvalues)``), or ``None`` (also when the
        top pairs are the smallest ones, ``top_which="SA"``)."""
        if self.top_eigenvalues is None or self.top_eigenvalues.size == 0 \
                or self.top_which == "SA":
            return None
        return float(np.max(self.top_eigenvalues))

    def _resolved_ratio(self) -> tuple[float, str | None]:
        """``|lambda_min / lambda_max|`` where both are resolved, else NaN and the reason."""
        assert self.lambda_max is not None and self.min_eigenvalue is not None
        why = []
        if self.min_converged is False:
            bound = "" if self.min_threshold is None else f" > {self.min_threshold:.3g}"
            why.append(f"lambda_min is not resolved (residual {self.min_residual:.3g}{bound} "
                       f"after {self.min_n_hvp} HVPs; raise max_hvp)")
        if self.top_converged is not None and self.top_eigenvalues is not None:
            if not bool(self.top_converged[int(np.argmax(self.top_eigenvalues))]):
                why.append("lambda_max is not resolved (raise max_hvp)")
        if not (math.isfinite(self.min_eigenvalue) and math.isfinite(self.lambda_max)):
            why.append("the curvature is not finite")
        if why:
            return math.nan, "; ".join(why)
        return _ratio(self.min_eigenvalue, self.lambda_max), None

    @property
    def operator(self) -> str:
        """The curvature matrix: ``"hessian"`` (recipes without an ``operator`` entry),
        ``"ggn"`` or ``"fisher"`` (see :func:`~landscape.hessian.curvature_operator`)."""
        return str(self.recipe.get("operator", "hessian"))

    @property
    def n_hvp(self) -> int:
        """HVPs used by all the sections together."""
        return int(sum(v or 0 for v in (self.top_n_hvp, self.min_n_hvp, self.trace_n_hvp,
                                       self.slq_n_hvp)))

    def eigenvector_dicts(self) -> list[dict[str, Tensor]]:
        """The stored eigenvectors as ``name -> tensor`` dicts (float32), one per row.

        Raises
        ------
        LandscapeError
            If no eigenvectors were stored (compute with ``keep_eigenvectors=True``).
        """
        if self.eigenvectors is None:
            raise LandscapeError(
                "this curvature result holds no eigenvectors; compute it with "
                "keep_eigenvectors=True"
            )
        assert self.eigenvector_names is not None and self.eigenvector_shapes is not None
        out = []
        for row in self.eigenvectors:
            d: dict[str, Tensor] = {}
            offset = 0
            for name, shape in zip(self.eigenvector_names, self.eigenvector_shapes, strict=True):
                size = math.prod(shape)
                d[name] = torch.from_numpy(np.array(row[offset:offset + size])).reshape(shape)
                offset += size
            out.append(d)
        return out

    def plot(self, **kwargs: Any) -> Any:
        """The eigenvalue density, the top eigenvalues marked; keyword arguments go to
        :func:`landscape.plot.plot_density`.

        Raises
        ------
        LandscapeError
            If no density was computed (``density=True``).
        """
        from ..plot import plot_density

        if self.density is None or self.density_grid is None:
            raise LandscapeError("this curvature result holds no eigenvalue density; compute "
                                 "it with density=True")
        return plot_density(self.density_grid, self.density, eigenvalues=self.top_eigenvalues,
                            **kwargs)

    def summary(self) -> dict[str, Any]:
        """The numbers, as a JSON-ready dict (only the sections present)."""
        out: dict[str, Any] = {"operator": self.operator}
        if self.n_params is not None:
            out["n_params"] = self.n_params
        if self.top_eigenvalues is not None:
            out["top_eigenvalues"] = [float(v) for v in self.top_eigenvalues]
            out["lambda_max"] = self.lambda_max
            out["top_converged"] = bool(np.all(self.top_converged)) \
                if self.top_converged is not None else None
            out["top_n_hvp"] = self.top_n_hvp
        if self.min_eigenvalue is not None:
            out["lambda_min"] = self.min_eigenvalue
            out["min_converged"] = self.min_converged
            out["min_n_hvp"] = self.min_n_hvp
        if self.ratio is not None:
            out["ratio"] = self.ratio if math.isfinite(self.ratio) or self.ratio_note is None \
                else None
            if self.ratio_note is not None:
                out["ratio_note"] = self.ratio_note
        if self.trace is not None:
            out["trace"] = self.trace
            out["trace_stderr"] = self.trace_stderr
            out["trace_method"] = self.trace_method
            out["trace_n_hvp"] = self.trace_n_hvp
        if self.density is not None or self.slq_nodes is not None:
            out["density_trace"] = self.density_trace
            out["slq_n_hvp"] = self.slq_n_hvp
            if self.slq_nodes is not None:
                out["slq_runs"], out["slq_steps"] = (int(s) for s in self.slq_nodes.shape)
        out["n_hvp"] = self.n_hvp
        return out

    def lines(self, *, unicode: bool = True) -> list[str]:
        """One human-readable line per result (what the CLI prints)."""
        lam = "λ" if unicode else "lambda_"
        pm = "±" if unicode else "+/-"
        out = []
        if self.operator != "hessian":
            out.append(f"operator: {operator_label(self.operator)}")
        if self.top_eigenvalues is not None:
            vals = ", ".join(f"{v:.4g}" for v in self.top_eigenvalues)
            conv = self.top_converged
            state = "converged" if conv is None or conv.all() else \
                f"{int((~conv).sum())} not converged"
            out.append(f"top-{len(self.top_eigenvalues)} eigenvalues ({self.top_which}): {vals} "
                       f"({state}, {self.top_n_hvp} HVPs)")
        if self.min_eigenvalue is not None:
            parts = []
            if self.lambda_max is not None:
                parts.append(f"{lam}max {self.lambda_max:.4g}")
            parts.append(f"{lam}min {self.min_eigenvalue:.4g}")
            if self.ratio is not None and self.ratio_note is None:
                parts.append(f"|{lam}min/{lam}max| {self.ratio:.3g}")
            elif self.ratio is not None:
                parts.append(f"|{lam}min/{lam}max| unresolved: {self.ratio_note}")
            state = "" if self.min_converged in (None, True) else "not converged, "
            out.append(", ".join(parts) + f" ({state}{self.min_n_hvp} HVPs for {lam}min)")
        if self.trace is not None:
            err = "" if self.trace_stderr is None or not math.isfinite(self.trace_stderr) \
                else f" {pm} {self.trace_stderr:.2g}"
            out.append(f"trace {self.trace:.4g}{err} ({self.trace_method}, "
                       f"{self.trace_n_hvp} HVPs)")
        if self.slq_nodes is not None:
            runs, steps = self.slq_nodes.shape
            grid = "" if self.density_grid is None else \
                f" on {len(self.density_grid)} points in [{self.density_grid[0]:.3g}, " \
                f"{self.density_grid[-1]:.3g}]"
            implied = "" if self.density_trace is None else \
                f", implied trace {self.density_trace:.4g}"
            out.append(f"spectral density: {runs} SLQ runs x {steps} steps{grid}{implied} "
                       f"({self.slq_n_hvp} HVPs)")
        return out

    # ------------------------------------------------------------------ merging
    def operator_recipe(self) -> dict[str, Any]:
        """The recipe without its per-section settings (what identifies the operator)."""
        return {k: v for k, v in self.recipe.items() if k not in SECTIONS}

    def merged_with(self, older: CurvatureResult) -> CurvatureResult:
        """This result plus the sections of ``older`` that this one lacks.

        Raises
        ------
        LandscapeError
            If the two were computed on different operators (see :meth:`operator_recipe`).
        """
        diff = _differences(older.operator_recipe(), self.operator_recipe())
        if diff:
            raise LandscapeError(
                f"cannot merge curvature results of different operators (differs in: "
                f"{', '.join(diff)})"
            )
        mine = set(self.sections)
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        take = {
            "top": ("top_eigenvalues", "top_residuals", "top_converged", "top_n_hvp",
                    "top_which"),
            "min": ("min_eigenvalue", "min_residual", "min_threshold", "min_converged",
                    "min_n_hvp"),
            "trace": ("trace", "trace_stderr", "trace_method", "trace_n_hvp"),
            "density": ("slq_nodes", "slq_weights", "slq_n_hvp", "density_grid", "density",
                        "density_trace"),
            "eigenvectors": ("eigenvectors", "eigenvector_names", "eigenvector_shapes"),
        }
        recipe = dict(self.recipe)
        for section in older.sections:
            if section in mine or (section == "eigenvectors" and "top" in mine):
                continue  # new eigenvalues come with their own (or no) eigenvectors
            for name in take[section]:
                values[name] = getattr(older, name)
            if section in older.recipe:
                recipe[section] = older.recipe[section]
        values["recipe"] = recipe
        values["n_params"] = self.n_params if self.n_params is not None else older.n_params
        values["ratio"] = None  # recomputed from the merged top and min
        values["ratio_note"] = None
        return CurvatureResult(**values)

    # ------------------------------------------------------------------ storage
    def to_group(self) -> storage.Group:
        """The ``/curvature`` group (see the module docstring for the layout)."""
        g = storage.Group(attrs={
            "recipe": storage.dumps(self.recipe),
            "provenance": storage.dumps(self.provenance),
            "results": json.dumps(self.sections),
        })
        for name in _INT_ATTRS + _FLOAT_ATTRS + _STR_ATTRS:
            v = getattr(self, name)
            if v is not None:
                g.attrs[name] = v
        if self.min_converged is not None:
            g.attrs["min_converged"] = int(self.min_converged)
        for name in _ARRAYS:
            v = getattr(self, name)
            if v is not None:
                g.datasets[name] = v
        if self.top_converged is not None:
            g.datasets["top_converged"] = self.top_converged.astype(np.uint8)
        for name in _SCALAR_DATASETS:
            v = getattr(self, name)
            if v is not None:
                g.datasets[name] = np.float64(v)
        if self.eigenvectors is not None:
            g.datasets["eigenvectors"] = self.eigenvectors
            g.attrs["eigenvector_names"] = json.dumps(list(self.eigenvector_names or ()))
            g.attrs["eigenvector_shapes"] = json.dumps(
                [list(s) for s in self.eigenvector_shapes or ()])
        return g

    @classmethod
    def from_group(cls, g: storage.Group, where: str = "file") -> CurvatureResult:
        """Inverse of :meth:`to_group`."""
        try:
            kw: dict[str, Any] = {
                "recipe": json.loads(g.attrs.get("recipe", "{}")),
                "provenance": json.loads(g.attrs.get("provenance", "{}")),
            }
            for name in _ARRAYS + _SCALAR_DATASETS:
                if name in g.datasets:
                    kw[name] = g.datasets[name]
            if "top_converged" in g.datasets:
                kw["top_converged"] = np.asarray(g.datasets["top_converged"]).astype(bool)
            for name in _INT_ATTRS + _FLOAT_ATTRS + _STR_ATTRS:
                if name in g.attrs:
                    kw[name] = g.attrs[name]
            if "min_converged" in g.attrs:
                kw["min_converged"] = bool(g.attrs["min_converged"])
            if "eigenvectors" in g.datasets:
                kw["eigenvectors"] = g.datasets["eigenvectors"]
                kw["eigenvector_names"] = json.loads(g.attrs["eigenvector_names"])
                kw["eigenvector_shapes"] = json.loads(g.attrs["eigenvector_shapes"])
            return cls(**kw)
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, LandscapeError):
                raise
            raise LandscapeError(f"{where} has a damaged /curvature group ({exc})") from exc

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> CurvatureResult:
        """Write the ``/curvature`` group of ``path`` atomically; other groups are kept.

        If the file already holds curvature of the same operator (same
        :meth:`operator_recipe`), the two are merged: the sections of this result replace
        theirs and the others are kept.

        Parameters
        ----------
        path : str or os.PathLike
            Landscape HDF5 file (created if missing; a surface file is fine).
        overwrite : bool, default False
            Replace a ``/curvature`` group computed on another operator (the file's other
            groups are still kept), or a file that is not a landscape file. Without it both
            are errors.

        Returns
        -------
        CurvatureResult
            What was written (this result, merged with the file's where applicable).
        """
        with output_lock(path, wait=30.0) as p:  # the read-merge-write is one step
            storage.check_writable(p, overwrite=overwrite)
            result, replace_file = self, False
            if p.exists():
                if not _is_landscape(p):
                    replace_file = True  # only reachable with overwrite (check_writable)
                elif GROUP in storage.list_groups(p):
                    try:
                        old: CurvatureResult | None = CurvatureResult.load(p)
                    except LandscapeError:
                        if not overwrite:
                            raise
                        old = None
                    if old is not None:
                        diff = _differences(old.operator_recipe(), self.operator_recipe())
                        if diff and not overwrite:
                            raise LandscapeError(
                                f"'{p}' holds curvature computed with a different recipe (differs "
                                f"in: {', '.join(diff)}); pass overwrite=True to replace its "
                                "/curvature group or choose another output file"
                            )
                        if not diff:
                            result = self.merged_with(old)
            storage.update_file(p, {GROUP: result.to_group()}, overwrite=replace_file)
            return result

    @classmethod
    def load(cls, path: str | os.PathLike) -> CurvatureResult:
        """Read the ``/curvature`` group of a landscape file."""
        g = storage.require_group(path, GROUP, "holds no curvature (no /curvature group); "
                                  "compute it with compute_curvature(out=PATH)")
        return cls.from_group(g, f"'{path}'")


def _ratio(lam_min: float, lam_max: float) -> float:
    if lam_max == 0:
        return math.inf if lam_min != 0 else math.nan
    return abs(lam_min / lam_max)


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _is_landscape(path: Path) -> bool:
    try:
        return storage.file_kind(path) == "landscape"
    except LandscapeError:
        return False


def _ignore_spec(ignore: Iterable[str] | str | None) -> Any:
    if ignore is None or ignore == "none":
        return None
    if isinstance(ignore, str):
        return ignore
    return sorted(ignore)


def _fd_record(op: HessianOperator, along: Mapping[str, list[np.ndarray]],
               seed: int) -> dict[str, Any]:
    """The provenance entry of finite-difference HVPs: step, rule, error statement, estimates."""
    t0 = time.perf_counter()
    estimates: dict[str, Any] = {"random": op.fd_error(seed=seed)}
    for key, vectors in along.items():
        estimates[key] = [op.fd_error(torch.from_numpy(np.ascontiguousarray(v)))
                          for v in vectors]
    flat = [estimates["random"], *(e for key in along for e in estimates[key])]
    return {"finite_difference": {
        "step": op.fd_step, "rule": FD_STEP_RULE,
        "eps_mach": float(torch.finfo(op.dtype).eps),
        "error_bound": FD_ERROR_BOUND, "error_estimate": max(flat),
        "error_estimates": estimates, "seconds": round(time.perf_counter() - t0, 3),
    }}


def compute_curvature(
    model: nn.Module,
    data: Any,
    *,
    top_k: int = 5,
    which: str = "LA",
    min_eig: bool = False,
    trace: bool = False,
    trace_method: str = "hutchpp",
    trace_samples: int = 99,
    density: bool = False,
    density_steps: int = 80,
    density_runs: int = 5,
    density_points: int = 500,
    density_sigma: float | None = None,
    tol: float = 1e-6,
    seed: int = 0,
    loss: LossSpec = "cross_entropy",
    batch_size: int = 512,
    what: str = "weights",
    params: Mapping[str, Tensor] | None = None,
    ignore: Iterable[str] | str | None = None,
    dtype: torch.dtype | None = None,
    max_hvp: int | None = None,
    keep_eigenvectors: bool = False,
    recipe: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    exclude: str | Iterable[str] | None = None,
    include_frozen: bool = False,
    progress: bool = False,
    solver_dtype: torch.dtype | None = None,
    hvp: str = "autograd",
    operator: str = "hessian",
    ncv: int | None = None,
    check_memory: bool = True,
) -> CurvatureResult:
    """Top eigenvalues, smallest eigenvalue, trace and spectral density of the loss Hessian
    (or of its Gauss-Newton or empirical Fisher approximation: ``operator``).

    All results come from one :class:`~landscape.hessian.HessianOperator` (exact HVPs of the
    full-data mean loss by default, or finite differences with ``hvp``; model in eval mode),
    or one :class:`~landscape.hessian.GGNOperator` / :class:`~landscape.hessian.FisherOperator`.

    Parameters
    ----------
    model : nn.Module
        The network (not modified).
    data : object with ``.x`` and ``.y``, or a pair ``(x, y)``
        The samples of the loss.
    top_k : int, default 5
        Number of extreme eigenpairs (:func:`~landscape.hessian.top_eigen`); 0 skips them.
    which : {"LA", "LM", "SA"}, default "LA"
        Which end: largest algebraic (the default: ``lambda_max`` is the first), largest
        magnitude (PyHessian/hessian-eigenthings), smallest algebraic.
    min_eig : bool, default False
        Also compute the smallest eigenvalue (:func:`~landscape.hessian.min_eigen`) and, with
        the top pairs, ``ratio = |lambda_min / lambda_max|``. The smallest eigenvalue has its
        own criterion: residual ``<= max(tol * |lambda_min|, min(tol, 1e-6) * ||H||)``
        (relative to itself, with an absolute floor for eigenvalues at zero; the bound is
        stored as ``min_threshold``). The ratio is stored only where both ``lambda_min`` and
        ``lambda_max`` converged; otherwise it is NaN and ``ratio_note`` says why.
    trace : bool, default False
        Also estimate the trace.
    trace_method : {"hutchpp", "hutchinson"}, default "hutchpp"
        Hutch++ (variance ~ 1/m^2 for decaying spectra) or Hutchinson.
    trace_samples : int, default 99
        HVPs of the trace estimate (Hutch++ needs at least 3).
    density : bool, default False
        Also run stochastic Lanczos quadrature (:func:`~landscape.hessian.slq`) and smooth it.
    density_steps, density_runs : int, default 80, 5
        Lanczos steps per SLQ run and number of runs (``steps * runs`` HVPs at most).
    density_points : int, default 500
        Points of the density grid.
    density_sigma : float, optional
        Gaussian kernel width (default 1% of the spectral range found).
    tol : float, default 1e-6
        Relative residual tolerance of the eigenpairs.
    seed : int, default 0
        Seed of the start vectors and random probes (each section uses it).
    loss, batch_size, what, params, ignore, dtype, exclude, include_frozen
        As for :class:`~landscape.hessian.HessianOperator` (``ignore`` also accepts
        ``"none"``). float64 is advised for ``tol < 1e-5``. Glob ``params``, ``exclude`` and
        ``include_frozen=True`` are recorded in the recipe.
    max_hvp : int, optional
        HVP budget of each eigen-solve.
    keep_eigenvectors : bool, default False
        Store the top eigenvectors (``(k, n)`` float32) in the result.
    recipe, provenance : dict, optional
        Extra entries (checkpoint SHA-256, model and data specs; command line...).
    progress : bool, default False
        A progress bar per section counting HVPs (with ETA where the count is known: trace
        and density), and after the first HVP one line with the estimated time of the whole
        computation when it is long.
    solver_dtype : torch.dtype, optional
        Dtype of the solvers' vectors (Krylov bases, probes, accumulations) on the operator's
        device: float64 (default, whatever ``dtype`` the HVPs use) or float32 (half the basis
        memory; residuals resolved to about ``1e-6 ||H||`` only). Recorded in the recipe
        when it is not float64.
    hvp : {"autograd", "finite-difference"}, default "autograd"
        Exact products, or central differences of gradients (see
        :class:`~landscape.hessian.HessianOperator`; float64 advised). With finite differences
        the recipe records ``hvp`` and the provenance's ``finite_difference`` entry the step
        ``h`` (and its rule), the error statement and the error estimates of
        :meth:`~landscape.hessian.HessianOperator.fd_error` along a random unit vector
        (``seed``) and along each eigenvector found (``error_estimate`` is their maximum, the
        stated error of every eigenvalue beyond the solver's residual); 3 products each.
    operator : {"hessian", "ggn", "fisher"}, default "hessian"
        The curvature matrix (:func:`~landscape.hessian.curvature_operator`); recorded in the
        recipe when it is not the Hessian (so files written before it stay mergeable).
    ncv : int, optional
        Largest Krylov basis of the eigen-solves (``2 ncv`` vectors of ``n`` in the solver
        dtype; see :func:`~landscape.hessian.top_eigen`); default the solvers' own (20 for the
        top eigenvalues). A smaller basis fits larger models at the price of more restarts.
        Recorded in the recipe when given.
    check_memory : bool, default=True
        Before the solvers run, predict the run's peak memory
        (:func:`landscape.memory.curvature_memory`) and refuse the run when what it still
        allocates exceeds the memory available; ``False`` runs it anyway. Operators on the
        CPU only (a GPU's memory is not modelled).

    Returns
    -------
    CurvatureResult

    References
    ----------
    .. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
       Neural Nets", NeurIPS 2018.
    .. [2] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic
       trace estimation", SOSA 2021.
    .. [3] B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization
       via Hessian eigenvalue density", ICML 2019.

    Examples
    --------
    >>> res = compute_curvature(model, train, top_k=5, min_eig=True, trace=True,
    ...                         dtype=torch.float64)                     # doctest: +SKIP
    >>> res.save("curv.h5"); res.lines()                                  # doctest: +SKIP
    """
    top_k = check_int("top_k", top_k, 0)
    check_option("which", which, ("LA", "LM", "SA"))
    check_option("trace_method", trace_method, TRACE_METHODS)
    for name, flag in (("min_eig", min_eig), ("trace", trace), ("density", density),
                       ("keep_eigenvectors", keep_eigenvectors)):
        if not isinstance(flag, bool):
            raise LandscapeError(f"The '{name}' parameter must be a bool. Got {flag!r} instead.")
    trace_samples = check_int("trace_samples", trace_samples,
                              3 if trace_method == "hutchpp" else 1)
    density_steps = check_int("density_steps", density_steps, 1)
    density_runs = check_int("density_runs", density_runs, 1)
    density_points = check_int("density_points", density_points, 2)
    if density_sigma is not None:
        density_sigma = check_float("density_sigma", density_sigma, 0.0, closed="neither")
    tol = check_float("tol", tol, 0.0, closed="neither")
    seed = check_int("seed", seed, 0)
    if not (top_k or min_eig or trace or density):
        raise LandscapeError(
            "nothing to compute: pass top_k=K (K >= 1), min_eig=True, trace=True or "
            "density=True"
        )
    if keep_eigenvectors and not top_k:
        raise LandscapeError("keep_eigenvectors needs top_k >= 1")
    solver_dtype = check_solver_dtype(solver_dtype)
    check_option("operator", operator, OPERATORS)

    if hvp != "autograd" and operator != "hessian":
        raise LandscapeError(f"hvp={hvp!r} applies to operator='hessian' only (the "
                             f"{operator} products are exact Jacobian products)")
    op = curvature_operator(model, data, operator=operator, loss=loss, batch_size=batch_size,
                            what=what, params=params, ignore=ignore, dtype=dtype,
                            exclude=exclude, include_frozen=include_frozen,
                            **({"hvp": hvp} if operator == "hessian" else {}))
    n = op.numel
    if top_k > n:
        raise LandscapeError(
            f"The 'top_k' parameter must be an int in [0, {n}] (the operator has {n} "
            f"parameters). Got {top_k} instead."
        )
    if ncv is not None:
        ncv = check_int("ncv", ncv, top_k + 2 if top_k else 3)
    if check_memory and op.device.type == "cpu":  # host memory; a GPU's own is not modelled
        curvature_memory(
            op, model, top_k=top_k, which=which, ncv=ncv, min_eig=min_eig, trace=trace,
            trace_method=trace_method, trace_samples=trace_samples, density=density,
            density_steps=density_steps, density_runs=density_runs, solver_dtype=solver_dtype,
        ).check("check_memory", "pass solver_dtype=torch.float32, a smaller ncv=... or "
                "trace_samples=..., or a smaller batch_size=...")
    full_recipe: dict[str, Any] = dict(recipe or {})
    full_recipe.update({
        "n_samples": sample_count(data),
        "loss": loss_name(loss),
        "batch_size": int(batch_size),
        "what": what,
        "ignore": _ignore_spec(ignore),
        "dtype": str(op.dtype).replace("torch.", ""),
        "bn": "eval",
        "n_params": n,
    })
    # the parameter selection, only where it is not the default (older files stay resumable)
    if isinstance(params, str) or (params is not None and not isinstance(params, Mapping)):
        full_recipe["params"] = [params] if isinstance(params, str) else list(params)
    if exclude is not None:
        full_recipe["exclude"] = [exclude] if isinstance(exclude, str) else list(exclude)
    if include_frozen:
        full_recipe["include_frozen"] = True
    if operator != "hessian":  # only where it is not the default (older files match)
        full_recipe["operator"] = operator
    if solver_dtype != torch.float64:  # only where it is not the default (older files match)
        full_recipe["solver_dtype"] = str(solver_dtype).replace("torch.", "")
    if op.hvp != "autograd":  # only where it is not the default (older files match)
        full_recipe["hvp"] = op.hvp
    along: dict[str, Any] = {}  # unit vectors along which to estimate finite-difference errors
    values: dict[str, Any] = {"n_params": n}
    timings: dict[str, float] = {}
    expected = {"top": 3 * top_k + 15 if top_k else 0, "min": 60 if min_eig else 0,
                "trace": trace_samples if trace else 0,
                "density": density_steps * density_runs if density else 0}
    bars = HVPProgress(op, expected, enabled=progress)

    if top_k:
        t0, start = time.perf_counter(), op.n_hvp
        res = top_eigen(bars.section("top", f"top-{top_k} eigenvalues"), top_k, which=which,
                        tol=tol, max_hvp=max_hvp, seed=seed, solver_dtype=solver_dtype,
                        ncv=ncv)
        values.update(top_eigenvalues=res.eigenvalues, top_residuals=res.residuals,
                      top_converged=res.converged, top_n_hvp=op.n_hvp - start, top_which=which)
        if keep_eigenvectors:
            values.update(eigenvectors=res.eigenvectors.T.astype(np.float32),
                          eigenvector_names=op.names,
                          eigenvector_shapes=[tuple(t.shape) for t in
                                              op.unflatten(torch.zeros(n)).values()])
        along["top"] = list(np.asarray(res.eigenvectors).T)
        full_recipe["top"] = {"k": top_k, "which": which, "tol": tol, "seed": seed,
                              "max_hvp": max_hvp, "eigenvectors": keep_eigenvectors}
        if ncv is not None:  # only when given (older files match)
            full_recipe["top"]["ncv"] = ncv
        timings["top"] = time.perf_counter() - t0
    if min_eig:
        t0, start = time.perf_counter(), op.n_hvp
        floor = min(tol, MIN_FLOOR)
        res = min_eigen(bars.section("min", "smallest eigenvalue"), 1, tol=tol,
                        scale_atol=floor, max_hvp=max_hvp, seed=seed,
                        solver_dtype=solver_dtype, ncv=ncv)
        values.update(min_eigenvalue=float(res.eigenvalues[0]),
                      min_residual=float(res.residuals[0]),
                      min_threshold=float(res.thresholds[0]),
                      min_converged=bool(res.converged[0]), min_n_hvp=op.n_hvp - start)
        along["min"] = [np.asarray(res.eigenvectors)[:, 0]]
        full_recipe["min"] = {"tol": tol, "scale_atol": floor, "seed": seed,
                              "max_hvp": max_hvp}
        if ncv is not None:
            full_recipe["min"]["ncv"] = ncv
        timings["min"] = time.perf_counter() - t0
    if trace:
        t0, start = time.perf_counter(), op.n_hvp
        probe_op = bars.section("trace", f"trace ({trace_method})")
        if trace_method == "hutchpp":
            tr = hutchpp(probe_op, trace_samples, seed=seed, solver_dtype=solver_dtype)
        else:
            tr = hutchinson(probe_op, trace_samples, seed=seed, solver_dtype=solver_dtype)
        values.update(trace=tr.estimate, trace_stderr=tr.stderr, trace_method=tr.method,
                      trace_n_hvp=op.n_hvp - start)
        full_recipe["trace"] = {"method": trace_method, "samples": trace_samples, "seed": seed}
        timings["trace"] = time.perf_counter() - t0
    if density:
        t0, start = time.perf_counter(), op.n_hvp
        sd = slq(bars.section("density", "spectral density (SLQ)"), density_steps,
                 density_runs, seed=seed, solver_dtype=solver_dtype)
        grid, values_d = sd.density(sigma=density_sigma, n_points=density_points)
        lo, hi = sd.bottom(), sd.top()
        sigma = density_sigma if density_sigma is not None else \
            ((hi - lo) / 100 if hi > lo else 1.0)
        values.update(slq_nodes=sd.nodes, slq_weights=sd.weights, slq_n_hvp=op.n_hvp - start,
                      density_grid=grid, density=values_d, density_trace=sd.trace_estimate())
        full_recipe["density"] = {"steps": density_steps, "runs": density_runs,
                                  "points": density_points, "sigma": sigma, "seed": seed}
        timings["density"] = time.perf_counter() - t0

    bars.close()
    fd = _fd_record(op, along, seed) if getattr(op, "hvp", "autograd") == "finite-difference" \
        else {}
    # the operator only where it is not the Hessian (the files of Hessians stay as they were)
    named = {"operator": operator} if operator != "hessian" else {}
    prov = {**tool_versions(), **precision_note(op.dtype), **fd, **named,
            "seconds": {k: round(v, 3) for k, v in timings.items()}, **dict(provenance or {})}
    return CurvatureResult(**values, recipe=full_recipe, provenance=prov)
