"""Curvature at one point as a storable result: :class:`CurvatureResult`, :func:`compute_curvature`.

:func:`compute_curvature` runs the estimators of :mod:`landscape.hessian` on one
:class:`~landscape.hessian.HessianOperator` -- top-k eigenpairs, the smallest eigenvalue and
``|lambda_min / lambda_max|``, a trace estimate (Hutch++ or Hutchinson), the SLQ spectral
density -- and returns a frozen :class:`CurvatureResult`, composed of what the solvers
returned (:class:`~landscape.hessian.EigenResult` ``top`` and ``min``,
:class:`~landscape.hessian.TraceResult` ``trace_estimate``, :class:`SmoothedDensity`
``spectrum``), that saves itself as the ``/curvature`` group of a landscape HDF5 file (a
surface file is fine: the other groups are kept); the group's names below are also the
result's read-only attributes::

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

Settings
--------
The keyword arguments of :func:`compute_curvature` besides ``operator``, ``recipe``,
``provenance`` and ``progress``, each with its default in :data:`CURVATURE_SETTINGS`:

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
keep_eigenvectors : bool, default False
    Store the top eigenvectors (``(k, n)`` float32) in the result.
tol : float, default 1e-6
    Relative residual tolerance of the eigenpairs.
seed : int, default 0
    Seed of the start vectors and random probes (each section uses it).
max_hvp : int, optional
    HVP budget of each eigen-solve.
solver_dtype : torch.dtype, optional
    Dtype of the solvers' vectors (Krylov bases, probes, accumulations) on the operator's
    device: float64 (default, whatever ``dtype`` the HVPs use) or float32 (half the basis
    memory; residuals resolved to about ``1e-6 ||H||`` only). Recorded in the recipe when
    it is not float64.
loss, batch_size, what, params, ignore, dtype, exclude, include_frozen
    As for :class:`~landscape.hessian.HessianOperator` (defaults ``"cross_entropy"``, 512,
    ``"weights"``, then ``None`` and ``include_frozen=False``). float64 is advised for
    ``tol < 1e-5``. Glob ``params``, ``exclude`` and ``include_frozen=True`` are recorded
    in the recipe.
hvp : {"autograd", "finite-difference"}, default "autograd"
    Exact products, or central differences of gradients (see
    :class:`~landscape.hessian.HessianOperator`; float64 advised; ``operator="hessian"``
    only). With finite differences the recipe records ``hvp`` and the provenance's
    ``finite_difference`` entry the step ``h`` (and its rule), the error statement and the
    error estimates of :meth:`~landscape.hessian.HessianOperator.fd_error` along a random
    unit vector (``seed``) and along each eigenvector found (``error_estimate`` is their
    maximum, the stated error of every eigenvalue beyond the solver's residual); 3
    products each.
ncv : int, optional
    Largest Krylov basis of the eigen-solves (``2 ncv`` vectors of ``n`` in the solver
    dtype; see :func:`~landscape.hessian.top_eigen`); default the solvers' own (20 for the
    top eigenvalues). A smaller basis fits larger models at the price of more restarts.
    Recorded in the recipe when given.
check_memory : bool, default=True
    Before the solvers run, predict the run's peak memory
    (:func:`landscape.memory.curvature_memory`) and refuse the run when what it still
    allocates exceeds the memory available; ``False`` runs it anyway. Operators on the CPU
    only (a GPU's memory is not modelled).

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
import functools
import inspect
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import storage
from .._atomic import output_lock
from .._functional import loss_name
from .._version import tool_versions
from ..data import sample_count
from ..errors import Int, LandscapeError, Options, Real, check_int, validate_params
from ..memory import curvature_memory
from ._linalg import check_solver_dtype, precision_note
from .density import SpectralDensity, slq
from .ggn import OPERATORS, curvature_operator, operator_label
from .lanczos import MIN_FLOOR, EigenResult, min_eigen, top_eigen
from .operator import FD_ERROR_BOUND, FD_STEP_RULE, HessianOperator
from .progress import HVPProgress
from .trace import TraceResult, hutchinson, hutchpp

__all__ = ["CurvatureResult", "SmoothedDensity", "compute_curvature", "TRACE_METHODS",
           "FLAT_FIELDS", "CURVATURE_SETTINGS"]

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

#: The names of the flat form of a :class:`CurvatureResult` (the stored datasets and attributes
#: by their names): each is a read-only attribute of the result, and
#: :meth:`CurvatureResult.from_flat` builds a result from them.
FLAT_FIELDS = ("top_eigenvalues", "top_residuals", "top_converged", "top_n_hvp", "top_which",
               "eigenvectors", "eigenvector_names", "eigenvector_shapes", "min_eigenvalue",
               "min_residual", "min_threshold", "min_converged", "min_n_hvp", "ratio",
               "ratio_note", "trace", "trace_stderr", "trace_method", "trace_n_hvp",
               "slq_nodes", "slq_weights", "slq_n_hvp", "n_params", "density_grid", "density",
               "density_trace", "recipe", "provenance")

#: Flat name -> (part of the result, attribute of that part).
_IN_PART = {
    "top_eigenvalues": ("top", "eigenvalues"), "top_residuals": ("top", "residuals"),
    "top_converged": ("top", "converged"), "top_n_hvp": ("top", "n_hvp"),
    "top_which": ("top", "which"), "eigenvectors": ("top", "eigenvectors"),
    "min_eigenvalue": ("min", "eigenvalues"), "min_residual": ("min", "residuals"),
    "min_threshold": ("min", "thresholds"), "min_converged": ("min", "converged"),
    "min_n_hvp": ("min", "n_hvp"),
    "trace": ("trace_estimate", "estimate"), "trace_stderr": ("trace_estimate", "stderr"),
    "trace_method": ("trace_estimate", "method"), "trace_n_hvp": ("trace_estimate", "n_hvp"),
    "slq_nodes": ("spectrum", "nodes"), "slq_weights": ("spectrum", "weights"),
    "slq_n_hvp": ("spectrum", "n_hvp"), "density_grid": ("spectrum", "grid"),
    "density": ("spectrum", "values"), "density_trace": ("spectrum", "implied_trace"),
}

#: The scalars of the smallest eigenvalue, held by its part as arrays of one pair.
_MIN_SCALARS = {"min_eigenvalue": float, "min_residual": float, "min_threshold": float,
                "min_converged": bool}

#: Section (as in :attr:`CurvatureResult.sections` and the recipe) -> the part holding it.
_SECTION_PART = {"top": "top", "min": "min", "trace": "trace_estimate", "density": "spectrum"}


def _opt_array(a: Any, dtype: Any) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(np.asarray(a, dtype=dtype))


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(np.asarray(v, dtype=np.float64).reshape(()))


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_pairs(a: Any, dtype: Any) -> np.ndarray | None:
    return None if a is None else np.atleast_1d(np.asarray(a, dtype=dtype))


def _columns(vectors: Any) -> np.ndarray | None:
    """Eigenvectors as float32 columns ``(n, k)``: a view of C-contiguous rows ``(k, n)``."""
    if vectors is None:
        return None
    return np.ascontiguousarray(np.asarray(vectors).T, dtype=np.float32).T


@dataclass(frozen=True, eq=False)
class SmoothedDensity(SpectralDensity):
    """A stochastic Lanczos quadrature with its Gaussian-smoothed eigenvalue density.

    The density part of a :class:`CurvatureResult`: the :class:`SpectralDensity` that
    :func:`~landscape.hessian.slq` returned (``nodes``, ``weights``, ``n_params``, ``n_hvp``;
    :meth:`density` smooths it again at another width) and the density stored with it. Any
    attribute is ``None`` where the result does not hold it.

    Attributes
    ----------
    grid, values : np.ndarray, shape (p,)
        The stored Gaussian-smoothed density (integrates to 1 over the grid).
    implied_trace : float
        The trace implied by the quadrature, ``n * mean_runs sum_k tau_k theta_k``
        (:meth:`trace_estimate` when it was computed).
    """

    grid: np.ndarray | None = None
    values: np.ndarray | None = None
    implied_trace: float | None = None


#: A part with nothing in it, per part: what the flat form fills.
_EMPTY: dict[str, Any] = {
    "top": EigenResult(None, None, None, None, None, None),  # type: ignore[arg-type]
    "min": EigenResult(None, None, None, None, None, None),  # type: ignore[arg-type]
    "trace_estimate": TraceResult(None, None, None, None, None),  # type: ignore[arg-type]
    "spectrum": SmoothedDensity(None, None, None, None),  # type: ignore[arg-type]
}


def _to_part(name: str, value: Any) -> Any:
    """A flat value as its part holds it."""
    if value is None:
        return None
    if name == "eigenvectors":
        return np.asarray(value).T
    return np.atleast_1d(value) if name in _MIN_SCALARS else value


def _from_part(name: str, value: Any) -> Any:
    """The flat value of what a part holds."""
    if value is None:
        return None
    if name == "eigenvectors":
        return value.T
    return _MIN_SCALARS[name](value[0]) if name in _MIN_SCALARS else value


def _flat(name: str) -> property:
    """The read-only flat attribute ``name``, read from its part."""
    part, attr = _IN_PART[name]

    def get(self: CurvatureResult) -> Any:
        held = getattr(self, part)
        return None if held is None else _from_part(name, getattr(held, attr))

    return property(get, doc=f"``{part}.{attr}`` ({'first pair, ' if part == 'min' else ''}"
                             "flat form; read-only).")


def _vacant(part: str, held: Any) -> bool:
    """Whether ``held`` holds none of the flat values of ``part``."""
    return held is None or all(getattr(held, attr, None) is None
                               for p, attr in _IN_PART.values() if p == part)


def _normalised(part: str, held: Any, n_params: int | None) -> Any:
    """A part with the stored dtypes (float64 numbers, bool flags, float32 eigenvectors)."""
    if held is None:
        return None
    if part in ("top", "min"):
        return dataclasses.replace(
            held, eigenvalues=_opt_pairs(held.eigenvalues, np.float64),
            residuals=_opt_pairs(held.residuals, np.float64),
            thresholds=_opt_pairs(held.thresholds, np.float64),
            converged=_opt_pairs(held.converged, bool), n_hvp=_opt_int(held.n_hvp),
            eigenvectors=_columns(held.eigenvectors) if part == "top" else held.eigenvectors)
    if part == "trace_estimate":
        return dataclasses.replace(
            held, estimate=_opt_float(held.estimate), stderr=_opt_float(held.stderr),
            n_hvp=_opt_int(held.n_hvp), samples=_opt_array(held.samples, np.float64))
    if not isinstance(held, SmoothedDensity):  # a bare quadrature: its density comes later
        held = SmoothedDensity(held.nodes, held.weights, held.n_params, held.n_hvp)
    return dataclasses.replace(
        held, nodes=_opt_array(held.nodes, np.float64),
        weights=_opt_array(held.weights, np.float64), n_hvp=_opt_int(held.n_hvp),
        n_params=_opt_int(held.n_params if held.n_params is not None else n_params),
        grid=_opt_array(held.grid, np.float64), values=_opt_array(held.values, np.float64),
        implied_trace=_opt_float(held.implied_trace))


def _layout(names: Any, shapes: Any) -> tuple[tuple[str, tuple[int, ...]], ...] | None:
    if names is None and shapes is None:
        return None
    if names is None or shapes is None:
        raise LandscapeError("CurvatureResult: eigenvector_names and eigenvector_shapes give "
                             "the flat ordering together; pass both")
    return tuple((str(n), tuple(int(s) for s in shape))
                 for n, shape in zip(names, shapes, strict=True))


@dataclass(frozen=True, eq=False, init=False)
class CurvatureResult:
    """Curvature numbers of the loss at one point, with their recipe and provenance.

    Composed of the parts the solvers return; every part is optional (``None`` when that
    result was not computed). The flat names of the stored group (:data:`FLAT_FIELDS`:
    ``top_eigenvalues``, ``min_eigenvalue``, ``trace``, ``density``, ...) are read-only
    attributes read from the parts, and the constructor (or :meth:`from_flat`) also takes
    them as keyword arguments. Results compare by identity (they hold arrays).

    Attributes
    ----------
    top : EigenResult
        The extreme eigenpairs (:func:`~landscape.hessian.top_eigen`): ``eigenvalues`` (order
        of ``which``: default ``"LA"``, decreasing), ``residuals`` (``||H v - lambda v||``),
        ``converged``, ``n_hvp``, ``which``; ``eigenvectors`` are the kept unit eigenvectors
        as float32 columns ``(n, k)`` in the order of ``layout`` (``None`` unless kept), and
        ``thresholds`` are ``None`` once read from a file (they are not stored). Flat:
        ``top_eigenvalues``, ``top_residuals``, ``top_converged``, ``top_n_hvp``,
        ``top_which``, ``eigenvectors`` (rows ``(k, n)``).
    min : EigenResult
        The smallest (algebraic) eigenvalue as one pair (:func:`~landscape.hessian.min_eigen`;
        no eigenvector). ``thresholds[0]`` is the residual bound it had to meet (its own
        criterion), which also bounds its error. Flat: ``min_eigenvalue``, ``min_residual``,
        ``min_threshold``, ``min_converged`` (``min_residual <= min_threshold`` within the HVP
        budget), ``min_n_hvp``.
    trace_estimate : TraceResult
        The trace estimate and its standard error (:func:`~landscape.hessian.hutchpp` or
        :func:`~landscape.hessian.hutchinson`; ``method`` ``"hutch++"`` or
        ``"hutchinson"``); ``samples`` are ``None`` once read from a file. Flat: ``trace``,
        ``trace_stderr``, ``trace_method``, ``trace_n_hvp``.
    spectrum : SmoothedDensity
        The stochastic Lanczos quadrature (``nodes``, ``weights``: ``(runs, m)``; ``n_hvp``)
        with its smoothed density (``grid``, ``values``: ``(p,)``) and the trace it implies.
        Flat: ``slq_nodes``, ``slq_weights``, ``slq_n_hvp``, ``density_grid``, ``density``,
        ``density_trace``.
    layout : tuple of (str, tuple of int)
        Tensor names and shapes of the flat ordering of the eigenvectors (the operator's
        variables). Flat: ``eigenvector_names``, ``eigenvector_shapes``.
    ratio : float
        ``|lambda_min / lambda_max|`` with ``lambda_max = max(top_eigenvalues)`` (Li et al.
        2018: small where the loss looks convex), only where both are resolved (converged);
        otherwise NaN, with the reason in ``ratio_note``.
    ratio_note : str
        Why ``ratio`` is NaN (``None`` when it is a number).
    n_params : int
        Dimension ``n`` of the operator.
    recipe : dict
        Everything that identifies the computation (see the module docstring).
    provenance : dict
        Informational metadata (command line, versions, checkpoint path, timings).
    """

    top: EigenResult | None = None
    min: EigenResult | None = None
    trace_estimate: TraceResult | None = None
    spectrum: SmoothedDensity | None = None
    layout: tuple[tuple[str, tuple[int, ...]], ...] | None = None
    ratio: float | None = None
    ratio_note: str | None = None
    n_params: int | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        *,
        top: EigenResult | None = None,
        min: EigenResult | None = None,
        trace_estimate: TraceResult | None = None,
        spectrum: SpectralDensity | None = None,
        layout: Iterable[tuple[str, Iterable[int]]] | None = None,
        ratio: float | None = None,
        ratio_note: str | None = None,
        n_params: int | None = None,
        recipe: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
        **flat: Any,
    ) -> None:
        unknown = sorted(set(flat) - set(_IN_PART) - {"eigenvector_names", "eigenvector_shapes"})
        if unknown:
            raise TypeError(f"CurvatureResult got an unexpected keyword argument {unknown[0]!r}")
        parts: dict[str, Any] = {"top": top, "min": min, "trace_estimate": trace_estimate,
                                 "spectrum": spectrum}
        for name, value in flat.items():  # the flat form: each value replaces its part's
            if name in _IN_PART and (value is not None or parts[_IN_PART[name][0]] is not None):
                part, attr = _IN_PART[name]
                held = parts[part] if parts[part] is not None else _EMPTY[part]
                parts[part] = dataclasses.replace(held, **{attr: _to_part(name, value)})
        names = shapes = None
        if layout is not None:
            layout = tuple(layout)
            names, shapes = [n for n, _ in layout], [s for _, s in layout]
        names = flat.get("eigenvector_names", names)
        shapes = flat.get("eigenvector_shapes", shapes)
        n_params = _opt_int(n_params)
        put = functools.partial(object.__setattr__, self)
        for part, held in parts.items():
            put(part, None if _vacant(part, held) else _normalised(part, held, n_params))
        put("layout", _layout(names, shapes))
        put("ratio", _opt_float(ratio))
        put("ratio_note", ratio_note)
        put("n_params", n_params)
        put("recipe", json.loads(storage.dumps(dict(recipe or {}))))
        put("provenance", json.loads(storage.dumps(dict(provenance or {}))))
        self._check_eigenvectors()
        if self.ratio is None and self.lambda_max is not None and self.min_eigenvalue is not None:
            ratio, note = self._resolved_ratio()
            put("ratio", ratio)
            put("ratio_note", note)

    def _check_eigenvectors(self) -> None:
        vectors = self.eigenvectors
        if vectors is None:
            return
        if self.layout is None:
            raise LandscapeError(
                "CurvatureResult: eigenvectors need eigenvector_names and "
                "eigenvector_shapes (the flat ordering) to become directions"
            )
        n = sum(math.prod(s) for _, s in self.layout)
        if vectors.ndim != 2 or vectors.shape[1] != n:
            raise LandscapeError(
                f"CurvatureResult: eigenvectors must have shape (k, {n}) for the given "
                f"names and shapes; got {vectors.shape}"
            )

    @classmethod
    def from_flat(cls, **fields: Any) -> CurvatureResult:
        """A result from its flat form: the names of :data:`FLAT_FIELDS` (those of the stored
        group), e.g. ``CurvatureResult.from_flat(top_eigenvalues=..., trace=...)``.

        The constructor takes the same keyword arguments (the form of the results of older
        versions); this names it.
        """
        return cls(**fields)

    def without_eigenvectors(self) -> CurvatureResult:
        """This result without the kept top eigenvectors (and their layout), its recipe saying
        so (``top.eigenvectors`` false); the other parts are shared."""
        if self.top is None or self.top.eigenvectors is None:
            return self
        recipe = dict(self.recipe)
        if isinstance(recipe.get("top"), Mapping):
            recipe["top"] = {**recipe["top"], "eigenvectors": False}
        return dataclasses.replace(self, top=dataclasses.replace(self.top, eigenvectors=None),
                                   layout=None, recipe=recipe)

    # ------------------------------------------------------------------ the flat form
    top_eigenvalues = _flat("top_eigenvalues")
    top_residuals = _flat("top_residuals")
    top_converged = _flat("top_converged")
    top_n_hvp = _flat("top_n_hvp")
    top_which = _flat("top_which")
    eigenvectors = _flat("eigenvectors")
    min_eigenvalue = _flat("min_eigenvalue")
    min_residual = _flat("min_residual")
    min_threshold = _flat("min_threshold")
    min_converged = _flat("min_converged")
    min_n_hvp = _flat("min_n_hvp")
    trace = _flat("trace")
    trace_stderr = _flat("trace_stderr")
    trace_method = _flat("trace_method")
    trace_n_hvp = _flat("trace_n_hvp")
    slq_nodes = _flat("slq_nodes")
    slq_weights = _flat("slq_weights")
    slq_n_hvp = _flat("slq_n_hvp")
    density_grid = _flat("density_grid")
    density = _flat("density")
    density_trace = _flat("density_trace")

    @property
    def eigenvector_names(self) -> tuple[str, ...] | None:
        """Tensor names of the flat ordering of the eigenvectors (flat form of ``layout``)."""
        return None if self.layout is None else tuple(n for n, _ in self.layout)

    @property
    def eigenvector_shapes(self) -> tuple[tuple[int, ...], ...] | None:
        """Their shapes (flat form of ``layout``)."""
        return None if self.layout is None else tuple(s for _, s in self.layout)

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
        mine, theirs = set(self.sections), set(older.sections)
        parts: dict[str, Any] = {p: getattr(self, p) for p in (*_SECTION_PART.values(), "layout")}
        recipe = dict(self.recipe)
        for section, part in _SECTION_PART.items():
            # new eigenvalues come with their own (or no) eigenvectors
            if section in mine or not (section in theirs or (
                    section == "top" and "eigenvectors" in theirs)):
                continue
            parts[part] = getattr(older, part)
            if section == "top":
                parts["layout"] = older.layout
            if section in older.recipe:
                recipe[section] = older.recipe[section]
        return CurvatureResult(
            **parts, recipe=recipe, provenance=self.provenance,
            n_params=self.n_params if self.n_params is not None else older.n_params)

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
            return cls.from_flat(**kw)
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


#: The settings of :func:`compute_curvature` (its keyword arguments besides ``operator``,
#: ``recipe``, ``provenance`` and ``progress``) and their defaults, in the order of its
#: signature: what to compute, the solvers', then the operator's (as for
#: :class:`~landscape.hessian.HessianOperator`). The module docstring says what each does.
CURVATURE_SETTINGS: Mapping[str, Any] = MappingProxyType({
    "top_k": 5, "which": "LA", "min_eig": False, "trace": False, "trace_method": "hutchpp",
    "trace_samples": 99, "density": False, "density_steps": 80, "density_runs": 5,
    "density_points": 500, "density_sigma": None, "tol": 1e-6, "seed": 0,
    "loss": "cross_entropy", "batch_size": 512, "what": "weights", "params": None,
    "ignore": None, "dtype": None, "max_hvp": None, "keep_eigenvectors": False,
    "exclude": None, "include_frozen": False, "solver_dtype": None, "hvp": "autograd",
    "ncv": None, "check_memory": True,
})


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LandscapeError(f"The '{name}' parameter must be a bool. Got {value!r} instead.")
    return value


#: The declared constraints of :func:`compute_curvature`, checked in this order (``trace_samples``
#: needs 3 with Hutch++); the operator's settings are checked by the operator.
_CONSTRAINTS: dict[str, Any] = {
    "top_k": Int(0), "which": Options(("LA", "LM", "SA")), "trace_method": Options(TRACE_METHODS),
    "min_eig": _check_bool, "trace": _check_bool, "density": _check_bool,
    "keep_eigenvectors": _check_bool, "trace_samples": Int(1), "density_steps": Int(1),
    "density_runs": Int(1), "density_points": Int(2),
    "density_sigma": Real(0.0, closed="neither", optional=True),
    "tol": Real(0.0, closed="neither"), "seed": Int(0),
    "solver_dtype": lambda _, v: check_solver_dtype(v), "operator": Options(OPERATORS),
}

#: The constraints checked after the combination of sections (as they always were).
_LATE = ("solver_dtype", "operator")

#: The setting that asks for each section.
_ASKS = {"top": "top_k", "min": "min_eig", "trace": "trace", "density": "density"}


def compute_curvature(
    model: nn.Module,
    data: Any,
    *,
    operator: str = "hessian",
    recipe: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    progress: bool = False,
    **settings: Any,
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
    operator : {"hessian", "ggn", "fisher"}, default "hessian"
        The curvature matrix (:func:`~landscape.hessian.curvature_operator`); recorded in the
        recipe when it is not the Hessian (so files written before it stay mergeable).
    recipe, provenance : dict, optional
        Extra entries (checkpoint SHA-256, model and data specs; command line...).
    progress : bool, default False
        A progress bar per section counting HVPs (with ETA where the count is known: trace
        and density), and after the first HVP one line with the estimated time of the whole
        computation when it is long.
    **settings
        Keyword arguments, each with its default in :data:`CURVATURE_SETTINGS` (another name
        is a TypeError), described in this module's docstring (*Settings*): the sections
        (``top_k`` (default 5), ``which``, ``min_eig``, ``trace``, ``trace_method``,
        ``trace_samples``, ``density``, ``density_steps``, ``density_runs``,
        ``density_points``, ``density_sigma``, ``keep_eigenvectors``), the solvers' (``tol``,
        ``seed``, ``max_hvp``, ``solver_dtype``, ``ncv``, ``check_memory``) and the operator's
        (``loss``, ``batch_size``, ``what``, ``params``, ``ignore``, ``dtype``, ``exclude``,
        ``include_frozen``, ``hvp``).

    Returns
    -------
    CurvatureResult
        Composed of the solvers' parts (``top``, ``min``, ``trace_estimate``, ``spectrum``);
        the references of the estimators are in the module docstring.

    Examples
    --------
    >>> res = compute_curvature(model, train, top_k=5, min_eig=True, trace=True,
    ...                         dtype=torch.float64)                     # doctest: +SKIP
    >>> res.save("curv.h5"); res.lines()                                  # doctest: +SKIP
    """
    s = _curvature_settings(operator, settings)
    op = _curvature_op(model, data, s)
    full_recipe = _curvature_recipe(s, data, op, recipe)
    bars = HVPProgress(op, _expected_hvps(s), enabled=progress)
    solved = {name: _solved(_SOLVERS[name], op, bars, s)
              for name, asks in _ASKS.items() if s[asks]}
    bars.close()
    return _assemble(op, s, solved, full_recipe, provenance)


def _declare_settings(fn: Any, settings: Mapping[str, Any]) -> None:
    """Give ``fn`` (which takes ``**settings``) the signature that names every setting with
    its default, so that ``help``, ``inspect.signature`` and editors list them all."""
    sig = inspect.signature(fn)
    named = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    fixed, keywords = named[:2], named[2:]
    fn.__signature__ = sig.replace(parameters=[
        *fixed, *(inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
                  for k, v in settings.items()), *keywords])


_declare_settings(compute_curvature, CURVATURE_SETTINGS)


def _curvature_settings(operator: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of :func:`compute_curvature`: the defaults updated with ``given``, checked
    against the declared constraints, then the sections asked for, then :data:`_LATE`."""
    unknown = [k for k in given if k not in CURVATURE_SETTINGS]
    if unknown:
        raise TypeError(f"compute_curvature() got an unexpected keyword argument "
                        f"{unknown[0]!r}")
    s = {**CURVATURE_SETTINGS, **given, "operator": operator}
    checks = dict(_CONSTRAINTS)
    if s["trace_method"] == "hutchpp":  # checked before trace_samples is
        checks["trace_samples"] = Int(3)
    s.update(validate_params({k: s[k] for k in checks if k not in _LATE}, checks))
    if not (s["top_k"] or s["min_eig"] or s["trace"] or s["density"]):
        raise LandscapeError(
            "nothing to compute: pass top_k=K (K >= 1), min_eig=True, trace=True or "
            "density=True"
        )
    if s["keep_eigenvectors"] and not s["top_k"]:
        raise LandscapeError("keep_eigenvectors needs top_k >= 1")
    s.update(validate_params({k: s[k] for k in _LATE}, checks))
    return s


def _curvature_op(model: nn.Module, data: Any, s: dict[str, Any]) -> Any:
    """The operator of the settings ``s`` (it checks its own settings), ``top_k`` and ``ncv``
    against its size, and the run's predicted memory against what is available."""
    operator, hvp = s["operator"], s["hvp"]
    if hvp != "autograd" and operator != "hessian":
        raise LandscapeError(f"hvp={hvp!r} applies to operator='hessian' only (the "
                             f"{operator} products are exact Jacobian products)")
    op = curvature_operator(model, data, operator=operator, loss=s["loss"],
                            batch_size=s["batch_size"], what=s["what"], params=s["params"],
                            ignore=s["ignore"], dtype=s["dtype"], exclude=s["exclude"],
                            include_frozen=s["include_frozen"],
                            **({"hvp": hvp} if operator == "hessian" else {}))
    n = op.numel
    if s["top_k"] > n:
        raise LandscapeError(
            f"The 'top_k' parameter must be an int in [0, {n}] (the operator has {n} "
            f"parameters). Got {s['top_k']} instead."
        )
    if s["ncv"] is not None:
        s["ncv"] = check_int("ncv", s["ncv"], s["top_k"] + 2 if s["top_k"] else 3)
    if s["check_memory"] and op.device.type == "cpu":  # host memory; a GPU's is not modelled
        curvature_memory(
            op, model, top_k=s["top_k"], which=s["which"], ncv=s["ncv"], min_eig=s["min_eig"],
            trace=s["trace"], trace_method=s["trace_method"], trace_samples=s["trace_samples"],
            density=s["density"], density_steps=s["density_steps"],
            density_runs=s["density_runs"], solver_dtype=s["solver_dtype"],
        ).check("check_memory", "pass solver_dtype=torch.float32, a smaller ncv=... or "
                "trace_samples=..., or a smaller batch_size=...")
    return op


def _curvature_recipe(s: Mapping[str, Any], data: Any, op: Any,
                      extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """What identifies the operator (each section adds its own entry when it has run); the
    parameter selection, operator, solver dtype and ``hvp`` only where they are not the
    default, so that older files stay mergeable."""
    params, exclude = s["params"], s["exclude"]
    recipe: dict[str, Any] = dict(extra or {})
    recipe.update({
        "n_samples": sample_count(data),
        "loss": loss_name(s["loss"]),
        "batch_size": int(s["batch_size"]),
        "what": s["what"],
        "ignore": _ignore_spec(s["ignore"]),
        "dtype": str(op.dtype).replace("torch.", ""),
        "bn": "eval",
        "n_params": op.numel,
    })
    if isinstance(params, str) or (params is not None and not isinstance(params, Mapping)):
        recipe["params"] = [params] if isinstance(params, str) else list(params)
    if exclude is not None:
        recipe["exclude"] = [exclude] if isinstance(exclude, str) else list(exclude)
    if s["include_frozen"]:
        recipe["include_frozen"] = True
    if s["operator"] != "hessian":
        recipe["operator"] = s["operator"]
    if s["solver_dtype"] != torch.float64:
        recipe["solver_dtype"] = str(s["solver_dtype"]).replace("torch.", "")
    if op.hvp != "autograd":
        recipe["hvp"] = op.hvp
    return recipe


def _expected_hvps(s: Mapping[str, Any]) -> dict[str, int]:
    """The HVPs each section is expected to need (0: it does not run), for the progress bars."""
    top_k = s["top_k"]
    return {"top": 3 * top_k + 15 if top_k else 0, "min": 60 if s["min_eig"] else 0,
            "trace": s["trace_samples"] if s["trace"] else 0,
            "density": s["density_steps"] * s["density_runs"] if s["density"] else 0}


@dataclass(frozen=True)
class _Section:
    """What one solver step returns: the result's parts, its recipe entry, the unit vectors
    along which finite-difference errors are estimated (``None``: none), its seconds."""

    parts: dict[str, Any]
    entry: dict[str, Any]
    along: list[np.ndarray] | None = None
    seconds: float = 0.0


def _solved(step: Any, op: Any, bars: HVPProgress, s: Mapping[str, Any]) -> _Section:
    """Run one solver step and time it."""
    t0 = time.perf_counter()
    section = step(op, bars, s)
    return dataclasses.replace(section, seconds=time.perf_counter() - t0)


def _top_section(op: Any, bars: HVPProgress, s: Mapping[str, Any]) -> _Section:
    """The ``top_k`` extreme eigenpairs (the eigenvectors and their layout when kept)."""
    top_k, which, keep, start = s["top_k"], s["which"], s["keep_eigenvectors"], op.n_hvp
    res = top_eigen(bars.section("top", f"top-{top_k} eigenvalues"), top_k, which=which,
                    tol=s["tol"], max_hvp=s["max_hvp"], seed=s["seed"],
                    solver_dtype=s["solver_dtype"], ncv=s["ncv"])
    parts: dict[str, Any] = {"top": dataclasses.replace(
        res, n_hvp=op.n_hvp - start, which=which,
        eigenvectors=_columns(res.eigenvectors) if keep else None)}
    if keep:
        parts["layout"] = [(name, tuple(t.shape)) for name, t in
                           op.unflatten(torch.zeros(op.numel)).items()]
    entry = {"k": top_k, "which": which, "tol": s["tol"], "seed": s["seed"],
             "max_hvp": s["max_hvp"], "eigenvectors": keep}
    if s["ncv"] is not None:  # only when given (older files match)
        entry["ncv"] = s["ncv"]
    return _Section(parts, entry, list(np.asarray(res.eigenvectors).T))


def _min_section(op: Any, bars: HVPProgress, s: Mapping[str, Any]) -> _Section:
    """The smallest eigenvalue, to its own criterion (relative, with an absolute floor)."""
    start, floor = op.n_hvp, min(s["tol"], MIN_FLOOR)
    res = min_eigen(bars.section("min", "smallest eigenvalue"), 1, tol=s["tol"],
                    scale_atol=floor, max_hvp=s["max_hvp"], seed=s["seed"],
                    solver_dtype=s["solver_dtype"], ncv=s["ncv"])
    part = dataclasses.replace(res, eigenvectors=None, n_hvp=op.n_hvp - start)
    entry = {"tol": s["tol"], "scale_atol": floor, "seed": s["seed"], "max_hvp": s["max_hvp"]}
    if s["ncv"] is not None:
        entry["ncv"] = s["ncv"]
    return _Section({"min": part}, entry, [np.asarray(res.eigenvectors)[:, 0]])


def _trace_section(op: Any, bars: HVPProgress, s: Mapping[str, Any]) -> _Section:
    """The trace estimate (Hutch++ or Hutchinson) and its standard error."""
    start, method, samples = op.n_hvp, s["trace_method"], s["trace_samples"]
    estimator = hutchpp if method == "hutchpp" else hutchinson
    tr = estimator(bars.section("trace", f"trace ({method})"), samples, seed=s["seed"],
                   solver_dtype=s["solver_dtype"])
    part = dataclasses.replace(tr, n_hvp=op.n_hvp - start)
    return _Section({"trace_estimate": part},
                    {"method": method, "samples": samples, "seed": s["seed"]})


def _density_section(op: Any, bars: HVPProgress, s: Mapping[str, Any]) -> _Section:
    """SLQ and its Gaussian-smoothed density (width: ``density_sigma``, or 1% of the range of
    the nodes, recorded in the recipe)."""
    start, sigma, seed = op.n_hvp, s["density_sigma"], s["seed"]
    sd = slq(bars.section("density", "spectral density (SLQ)"), s["density_steps"],
             s["density_runs"], seed=seed, solver_dtype=s["solver_dtype"])
    grid, values = sd.density(sigma=sigma, n_points=s["density_points"])
    lo, hi = sd.bottom(), sd.top()
    if sigma is None:
        sigma = (hi - lo) / 100 if hi > lo else 1.0
    part = SmoothedDensity(sd.nodes, sd.weights, op.numel, op.n_hvp - start, grid=grid,
                           values=values, implied_trace=sd.trace_estimate())
    return _Section({"spectrum": part}, {"steps": s["density_steps"], "runs": s["density_runs"],
                                         "points": s["density_points"], "sigma": sigma,
                                         "seed": seed})


#: The solver step of each section, in the order they run.
_SOLVERS = {"top": _top_section, "min": _min_section, "trace": _trace_section,
            "density": _density_section}


def _assemble(op: Any, s: Mapping[str, Any], solved: Mapping[str, _Section],
              recipe: dict[str, Any], provenance: Mapping[str, Any] | None) -> CurvatureResult:
    """The :class:`CurvatureResult` composed of the sections' parts, the recipe with their
    entries, and the provenance (finite-difference errors along the eigenvectors found)."""
    parts: dict[str, Any] = {"n_params": op.numel}
    along = {}
    for name, section in solved.items():
        parts.update(section.parts)
        recipe[name] = section.entry
        if section.along is not None:
            along[name] = section.along
    fd = _fd_record(op, along, s["seed"]) \
        if getattr(op, "hvp", "autograd") == "finite-difference" else {}
    # the operator only where it is not the Hessian (the files of Hessians stay as they were)
    named = {"operator": s["operator"]} if s["operator"] != "hessian" else {}
    prov = {**tool_versions(), **precision_note(op.dtype), **fd, **named,
            "seconds": {k: round(v.seconds, 3) for k, v in solved.items()},
            **dict(provenance or {})}
    return CurvatureResult(**parts, recipe=recipe, provenance=prov)
