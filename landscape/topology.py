"""Topology of a loss surface: sublevel-set persistence of a grid, its basins and barriers.

The sublevel sets ``{L <= t}`` of a surface grow with ``t``: a connected component is born at
a local minimum (its *birth*, the basin's floor) and dies when it merges into a component
with a lower minimum (its *death*, the height of the lowest barrier out of the basin). Its
*persistence* ``death - birth`` is how deep the basin is below that barrier; the deepest basin
never dies (``death = inf``). This is 0-dimensional persistent homology (Edelsbrunner,
Letscher & Zomorodian 2002); the component that merges is always the younger one (the
*elder rule*), so each local minimum is paired with exactly one barrier.

Grid noise makes shallow minima: a surface evaluated on a data subset has a standard error
per point, and a "basin" whose persistence is a few standard errors is noise. This module
counts the *persistent* basins, those whose persistence exceeds ``min_persistence``: by default
``se_multiple`` standard errors of the difference ``L(saddle) - L(minimum)`` of the two values
that set it, ``se_multiple * sqrt(SE(minimum)^2 + SE(saddle)^2)``, from the standard errors the
surface file stores (:meth:`Surface.stderr <landscape.surface.Surface.stderr>`). A file without
them gives no count (``None``, and the reason) unless ``min_persistence`` is given: a count of
noise is never reported. The threshold is conservative for a surface evaluated on one fixed
subset: every grid point then averages the same samples, so the error of a difference between
neighbouring points is smaller than the two errors combined as if independent.

The complex. The grid values are the *vertices* of a cubical complex
(``gudhi.CubicalComplex(vertices=...)``): each grid point is a sample of the loss at a point of
weight space, an edge between two axis neighbours enters at the larger of its two values (the
lower-star filtration of the piecewise-linear interpolation), and two points are connected in
``{L <= t}`` when a path of axis steps stays at or below ``t``. The alternative,
``top_dimensional_cells``, would make every grid point a square (a cube in N-D) whose corners
touch its diagonal neighbours, so a basin would leak through a ridge across a diagonal step: a
checkerboard ``[[0, 1], [1, 0]]`` has two basins here and one there. In 2-D the persistent
basins are thus 4-connected (26-connected would count fewer); :func:`landscape.metrics.roughness`'s
raw "strict local minima" use 8 neighbours and no threshold.

Missing points. Points not computed yet and diverged points (NaN or inf loss) are not part of
any sublevel set below the grid's highest finite value: two basins separated only by them have
no finite barrier on the grid (``death = inf``), and the result says how many such points there
are.

The persistence pairs come from gudhi (an optional dependency: ``pip install
'landscape[topology]'``); the barriers between persistent basins (the merge tree) are the
levels at which :func:`scipy.ndimage.label` first puts their minima in one component.

References
----------
.. [1] H. Edelsbrunner, D. Letscher, A. Zomorodian, "Topological persistence and
   simplification", Discrete Comput. Geom. 28, 2002.
.. [2] The GUDHI Project, "Cubical complex", GUDHI User and Reference Manual,
   https://gudhi.inria.fr/python/latest/cubical_complex_user.html.
.. [3] J. Chen, N. Hadler, T. Xie, R. Hnatyshyn, C. Geniesse, T. Perciano, M. W. Mahoney,
   J. F. Hartwig, R. Maciejewski, G. H. Weber, "Understanding 3D GNN loss landscapes through
   topological analysis: insights from olefin hydroformylation", 2025 (Landscaper; its
   ``LossLandscape.smad``: the mean over the merge tree's minima of ``L(saddle) - L(minimum)``,
   github.com/Vis4SciML/Landscaper, ``src/landscaper/landscape.py``).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LandscapeError, check_float, check_mask, check_option

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .surface import Surface

__all__ = ["Basin", "SublevelPersistence", "sublevel_persistence", "surface_persistence",
           "TOPOLOGY_EXTRA", "SE_MULTIPLE", "gudhi_available", "gudhi_missing_reason"]

#: The optional dependency group that installs gudhi.
TOPOLOGY_EXTRA = "topology"

#: Default number of standard errors of ``L(saddle) - L(minimum)`` a basin must be deeper than
#: to count. Measured: on a flat plateau of about 1,000 points of a 41 x 41 grid with independent
#: noise of standard error σ at each point, the deepest noise basin over 20 seeds reached 4.2σ,
#: 3.0 standard errors of the difference (σ√2); 4 of them (5.7σ) leave a margin.
SE_MULTIPLE = 4.0

_MISSING = (f"gudhi is not installed; pip install 'landscape[{TOPOLOGY_EXTRA}]' for the "
            "persistence of surfaces")


def _gudhi() -> Any:
    """The gudhi module, or a :class:`LandscapeError` naming the extra that installs it."""
    try:
        return importlib.import_module("gudhi")
    except ImportError as exc:
        raise LandscapeError(_MISSING) from exc


def gudhi_available() -> bool:
    """Whether gudhi can be imported (the ``topology`` extra is installed)."""
    try:
        _gudhi()
    except LandscapeError:
        return False
    return True


def gudhi_missing_reason() -> str | None:
    """Why persistence cannot be computed here (``None`` when gudhi is installed)."""
    return None if gudhi_available() else _MISSING


@dataclass(frozen=True)
class Basin:
    """One basin of a surface: a local minimum and the barrier at which it merges.

    Attributes
    ----------
    index : tuple of int
        Array index of the basin's minimum (``(iy, ix)`` for a 2-D surface).
    birth : float
        The loss at the minimum (the basin's floor).
    death : float
        The loss at which the basin merges into one with a lower minimum (the lowest barrier
        out of it); ``inf`` for the deepest basin, and for a basin that is separated from
        every deeper one only by diverged or uncomputed points.
    saddle_index : tuple of int or None
        Array index of the grid point whose value is ``death`` (one of them, where several
        tie); ``None`` when ``death`` is ``inf``.
    threshold : float
        The persistence this basin must exceed to count (NaN when unknown).
    parent : int or None
        For a persistent basin with a finite death: the position in
        :attr:`SublevelPersistence.basins` of the basin it merges into (the deepest one in the
        component it joins); ``None`` otherwise.
    on_edge : bool
        The minimum lies on the grid's edge (the true minimum may lie outside the grid).
    """

    index: tuple[int, ...]
    birth: float
    death: float
    saddle_index: tuple[int, ...] | None
    threshold: float
    parent: int | None = None
    on_edge: bool = False

    @property
    def persistence(self) -> float:
        """``death - birth``: the basin's depth below its lowest barrier (``inf`` for the
        deepest basin)."""
        return self.death - self.birth

    @property
    def significant(self) -> bool:
        """Whether the basin is persistent (``persistence > threshold``); ``False`` when the
        threshold is unknown."""
        return bool(self.persistence > self.threshold)


@dataclass(frozen=True)
class SublevelPersistence:
    """The 0-dimensional sublevel-set persistence of a grid and what it says about basins.

    Attributes
    ----------
    basins : tuple of Basin
        Every local minimum with positive persistence (noise included), deepest first
        (ascending birth); the first is the grid's global minimum (``death = inf``).
    persistent : tuple of int
        Positions in :attr:`basins` of the persistent ones (persistence above the threshold),
        deepest first; empty when the threshold is unknown.
    n_basins : int or None
        ``len(persistent)``: the number of persistent basins; ``None`` when the threshold is
        unknown (``reason`` says why).
    barriers : np.ndarray
        ``(K, K)`` minimax barrier levels between the persistent basins (in the order of
        :attr:`persistent`): ``barriers[i, j]`` is the lowest ``t`` at which the two minima lie
        in one component of ``{L <= t}``, the height of the lowest path between them; the
        diagonal holds the births; ``inf`` where no path through computed finite points exists.
    deepest_barrier : float or None
        The largest finite persistence among the persistent basins other than the deepest
        one: how far the loss must rise to leave the deepest secondary basin. ``None`` with
        fewer than two persistent basins (no barrier between basins) or an unknown threshold.
    total_persistence : float or None
        Sum of the finite persistence of the persistent basins (0 for one basin).
    smad : float or None
        Saddle-minimum average distance on the merge tree of the persistent basins (after
        Landscaper's ``LossLandscape.smad``, Chen et al. 2025): the mean over those basins of
        ``L(first saddle) - L(minimum)``, where the first saddle is the lowest barrier to
        another persistent basin (the row minimum of :attr:`barriers`); 0 for one basin. With
        ``min_persistence=0`` the tree is the full one, noise minima included, as Landscaper
        computes it.
    min_persistence : float or None
        The threshold as given (``None``: ``se_multiple`` standard errors per basin).
    se_multiple : float
        The number of standard errors of the default threshold.
    rule : str
        The threshold in words.
    reason : str or None
        Why the count is unknown (``None`` when it is a number).
    n_missing : int
        Grid points not computed or diverged (outside every finite sublevel set).
    shape : tuple of int
        The grid's shape.
    coords : list of np.ndarray or None
        Coordinates per array axis (``[y, x]`` for a 2-D surface), when known.
    """

    basins: tuple[Basin, ...]
    persistent: tuple[int, ...]
    n_basins: int | None
    barriers: np.ndarray
    deepest_barrier: float | None
    total_persistence: float | None
    smad: float | None
    min_persistence: float | None
    se_multiple: float
    rule: str
    reason: str | None
    n_missing: int
    shape: tuple[int, ...]
    coords: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def pairs(self) -> np.ndarray:
        """``(n, 2)`` births and deaths of every basin (``inf`` death for the deepest)."""
        return np.array([[b.birth, b.death] for b in self.basins], dtype=np.float64
                        ).reshape(-1, 2)

    @property
    def thresholds(self) -> np.ndarray:
        """Each basin's threshold (NaN when unknown)."""
        return np.array([b.threshold for b in self.basins], dtype=np.float64)

    def coords_of(self, index: tuple[int, ...]) -> tuple[float, ...] | None:
        """Coordinates ``(x, y)`` (2-D surface), ``(x,)`` (1-D) or per axis (N-D arrays) of an
        array index; ``None`` without coordinates."""
        if self.coords is None:
            return None
        c = tuple(float(self.coords[a][i]) for a, i in enumerate(index))
        return c[::-1] if len(c) == 2 else c

    def numbers(self) -> dict[str, float | int | None]:
        """The scalar summary: ``persistent_basins``, ``deepest_barrier``, ``smad``,
        ``total_persistence``, ``minima`` (every local minimum, noise included)."""
        return {"persistent_basins": self.n_basins, "deepest_barrier": self.deepest_barrier,
                "smad": self.smad, "total_persistence": self.total_persistence,
                "minima": len(self.basins)}

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes:
        """The persistence diagram (:func:`landscape.plot.plot_persistence`)."""
        from .plot.topology import plot_persistence

        return plot_persistence(self, ax=ax, **kwargs)


# --------------------------------------------------------------------------- computation
def _check_values(values: Any, done: Any) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(values, dtype=np.float64)
    if z.ndim < 1 or z.size == 0:
        raise LandscapeError(
            f"The 'values' parameter must be a non-empty array of at least 1 dimension. Got "
            f"shape {z.shape} instead."
        )
    ok = np.isfinite(z)
    if done is not None:
        ok &= check_mask("done", done, "values", z.shape)
    if not ok.any():
        raise LandscapeError("the grid has no computed point with a finite value")
    return z, ok


def _pairs(filled: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """gudhi's 0-dimensional pairs ``(birth vertex, death vertex)`` with positive persistence
    (flat C-order indices) and the vertex of the essential class."""
    gd = _gudhi()
    try:
        cc = gd.CubicalComplex(vertices=filled)
    except TypeError as exc:  # a gudhi without vertex filtrations
        raise LandscapeError(
            f"gudhi {getattr(gd, '__version__', '?')} has no CubicalComplex(vertices=...); "
            f"pip install 'landscape[{TOPOLOGY_EXTRA}]' (gudhi >= 3.8)"
        ) from exc
    cc.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    regular, essential = cc.vertices_of_persistence_pairs()
    # gudhi numbers the vertices of a numpy array in Fortran (column-major) order
    to_c = np.ravel_multi_index(np.unravel_index(np.arange(filled.size), filled.shape,
                                                 order="F"), filled.shape)
    reg = np.asarray(regular[0], dtype=np.int64).reshape(-1, 2) if len(regular) else \
        np.empty((0, 2), np.int64)
    ess = np.asarray(essential[0], dtype=np.int64).ravel() if len(essential) else \
        np.empty(0, np.int64)
    if ess.size != 1:  # a grid is connected: exactly one essential component
        raise LandscapeError(f"gudhi returned {ess.size} essential components for a grid")
    return [(int(to_c[b]), int(to_c[d])) for b, d in reg], int(to_c[ess[0]])


def _thresholds(births: list[int], deaths: list[int | None], stderr: np.ndarray | None,
                min_persistence: float | None, se_multiple: float
                ) -> tuple[np.ndarray, str, str | None]:
    """Per-basin thresholds, the rule in words, and why they are unknown."""
    n = len(births)
    if min_persistence is not None:
        return (np.full(n, min_persistence),
                f"persistence > min_persistence = {min_persistence:.6g}", None)
    rule = (f"persistence > {se_multiple:g} × sqrt(SE(minimum)² + SE(saddle)²), the standard "
            "error of L(saddle) − L(minimum)")
    if stderr is None:
        return (np.full(n, np.nan), rule,
                "the surface stores no standard errors of its values; pass min_persistence "
                "(in loss units) to count basins")
    se = stderr.ravel()
    out = np.empty(n)
    for i, (b, d) in enumerate(zip(births, deaths, strict=True)):
        sb = se[b]
        sd = se[d] if d is not None else 0.0
        out[i] = se_multiple * math.hypot(sb, sd) if np.isfinite(sb) and np.isfinite(sd) \
            else np.nan
    unknown = int(np.sum(np.isnan(out)))
    reason = None
    if unknown:
        reason = (f"{unknown} of {n} minima or their saddles have no standard error (points "
                  "computed before standard errors were stored); pass min_persistence")
    return out, rule, reason


def _components(filled: np.ndarray, level: float) -> np.ndarray:
    """Labels of the axis-connected components of ``{filled <= level}`` (0: above)."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(filled.ndim, 1)
    labels, _ = ndimage.label(filled <= level, structure=structure)
    return labels


def _merge_tree(filled: np.ndarray, births: np.ndarray, deaths: np.ndarray,
                minima: list[int], keep: list[int]) -> tuple[np.ndarray, list[int | None]]:
    """Minimax barriers between the basins ``keep`` (positions in ``births``, which ascend)
    and the parent of each of them.

    Every basin's death is a level at which two components of ``{L <= t}`` merge: the
    components are labelled at each such level (noise basins' included: with per-basin
    thresholds a merge of two persistent basins' components may happen at a noise basin's
    death), and each pair of kept basins first joined at a level gets that level. A kept
    basin's parent is the deepest other kept basin in the component it joins at its death
    (``None`` if that component holds none).
    """
    n, k = len(minima), len(keep)
    slot = np.full(n, -1)
    slot[keep] = np.arange(k)
    barriers = np.full((k, k), np.inf)
    np.fill_diagonal(barriers, births[keep])
    parents: list[int | None] = [None] * k
    group = np.arange(n)  # which basins are joined so far (a label per basin)
    for level in np.unique(deaths[np.isfinite(deaths)]):
        lab = _components(filled, float(level)).ravel()[minima]
        for j in np.flatnonzero(deaths == level):
            joined = np.flatnonzero((lab == lab[j]) & (np.arange(n) != j))
            if slot[j] >= 0:
                kept = joined[slot[joined] >= 0]
                if kept.size:  # births ascend: the first is the deepest
                    parents[slot[j]] = int(slot[kept[0]])
            for g in np.unique(group[joined]):
                if g == group[j]:
                    continue
                a = np.flatnonzero(group == group[j])
                b = np.flatnonzero(group == g)
                sa, sb = slot[a][slot[a] >= 0], slot[b][slot[b] >= 0]
                barriers[np.ix_(sa, sb)] = float(level)
                barriers[np.ix_(sb, sa)] = float(level)
                group[b] = group[j]
    return barriers, parents


def _smad(barriers: np.ndarray) -> float:
    """Mean over the basins of (first merge level - birth); 0 for one basin.

    A basin's first saddle is the lowest barrier to any other basin (the row minimum of the
    minimax barriers off the diagonal, whose diagonal holds the births).
    """
    k = len(barriers)
    if k < 2:
        return 0.0
    off = barriers + np.diag(np.full(k, np.inf))
    first = off.min(axis=1)
    gaps = (first - np.diag(barriers))[np.isfinite(first)]
    return float(gaps.mean()) if gaps.size else 0.0


def sublevel_persistence(
    values: Any,
    *,
    done: Any = None,
    stderr: Any = None,
    min_persistence: float | None = None,
    se_multiple: float = SE_MULTIPLE,
    coords: list[Any] | None = None,
) -> SublevelPersistence:
    """Sublevel-set persistence of a grid of values: its persistent basins and barriers.

    Parameters
    ----------
    values : array_like, any number of dimensions
        The loss on a regular grid (``Z[iy, ix]`` for a 2-D surface).
    done : array_like of bool, optional
        Which points are computed (default: all); uncomputed and non-finite points are
        outside every finite sublevel set.
    stderr : array_like, optional
        Standard error of each value (same shape), for the default threshold.
    min_persistence : float, optional
        Persistence (loss units) a basin must exceed to count, >= 0; default
        ``se_multiple`` standard errors of ``L(saddle) - L(minimum)`` per basin (needs
        ``stderr``; without it the count is ``None`` and ``reason`` says why).
    se_multiple : float, default=:data:`SE_MULTIPLE`
        Standard errors of the default threshold, > 0.
    coords : list of array_like, optional
        Coordinates per array axis (for :meth:`SublevelPersistence.coords_of` and plots).

    Returns
    -------
    SublevelPersistence

    Raises
    ------
    LandscapeError
        If gudhi is not installed (naming the ``topology`` extra), the grid has no computed
        finite point, or a parameter is out of range.

    Examples
    --------
    >>> r = sublevel_persistence([3.0, 1.0, 2.0, 0.0, 4.0], min_persistence=0.5)
    >>> [(b.birth, b.death) for b in r.basins], r.n_basins
    ([(0.0, inf), (1.0, 2.0)], 2)
    """
    z, ok = _check_values(values, done)
    if min_persistence is not None:
        min_persistence = check_float("min_persistence", min_persistence, 0.0)
    se_multiple = check_float("se_multiple", se_multiple, 0.0, closed="neither")
    se = None
    if stderr is not None:
        se = np.asarray(stderr, dtype=np.float64)
        if se.shape != z.shape:
            raise LandscapeError(
                f"The 'stderr' parameter must have the shape of values {z.shape}. Got "
                f"{se.shape} instead."
            )
    if coords is not None:
        coords = [np.asarray(c, dtype=np.float64).ravel() for c in coords]
        if [c.size for c in coords] != list(z.shape):
            raise LandscapeError(
                f"The 'coords' parameter must give one coordinate per grid point along each "
                f"axis {z.shape}. Got {[c.size for c in coords]} instead."
            )
    finite = z[ok]
    top = float(finite.max())
    span = float(top - finite.min())
    ceiling = top + max(span, abs(top), 1.0)  # above every finite value: missing points
    filled = np.where(ok, z, ceiling)
    raw, ess = _pairs(filled)
    flat = filled.ravel()
    # drop what the missing points make: components born at the ceiling
    pairs = [(b, d) for b, d in raw if flat[b] < ceiling]
    births_v = [ess] + [b for b, _ in pairs]
    deaths_v: list[int | None] = [None] + [None if flat[d] >= ceiling else d for _, d in pairs]
    order = sorted(range(len(births_v)), key=lambda i: (flat[births_v[i]], i))
    births_v = [births_v[i] for i in order]
    deaths_v = [deaths_v[i] for i in order]
    births = np.array([flat[b] for b in births_v])
    deaths = np.array([np.inf if d is None else flat[d] for d in deaths_v])
    thr, rule, reason = _thresholds(births_v, deaths_v, se, min_persistence, se_multiple)
    pers = deaths - births
    keep = [int(i) for i in np.flatnonzero(pers > thr)] if reason is None else []
    parents_all: list[int | None] = [None] * len(births_v)
    barriers = np.empty((0, 0))
    smad = total = deepest = None
    if reason is None:
        barriers, parents = _merge_tree(filled, births, deaths, births_v, keep)
        for j, p in zip(keep, parents, strict=True):
            parents_all[j] = None if p is None else keep[p]
        smad = _smad(barriers)
        fin = pers[keep][np.isfinite(pers[keep])]
        total = float(fin.sum())
        deepest = float(fin.max()) if fin.size else None
    shape = z.shape
    edge = [any(i in (0, n - 1) for i, n in zip(np.unravel_index(b, shape), shape,
                                                    strict=True)) for b in births_v]
    basins = tuple(
        Basin(index=tuple(int(v) for v in np.unravel_index(b, shape)), birth=float(births[i]),
              death=float(deaths[i]),
              saddle_index=None if d is None else tuple(int(v) for v in np.unravel_index(d,
                                                                                     shape)),
              threshold=float(thr[i]), parent=parents_all[i], on_edge=bool(edge[i]))
        for i, (b, d) in enumerate(zip(births_v, deaths_v, strict=True)))
    return SublevelPersistence(
        basins=basins, persistent=tuple(keep), n_basins=None if reason else len(keep),
        barriers=barriers, deepest_barrier=deepest, total_persistence=total, smad=smad,
        min_persistence=min_persistence, se_multiple=se_multiple, rule=rule, reason=reason,
        n_missing=int((~ok).sum()), shape=tuple(int(v) for v in shape), coords=coords)


def surface_persistence(
    surface: Surface,
    array: str = "train_loss",
    *,
    min_persistence: float | None = None,
    se_multiple: float = SE_MULTIPLE,
) -> SublevelPersistence:
    """:func:`sublevel_persistence` of a surface array, with the standard errors it stores.

    Parameters
    ----------
    surface : Surface
        A 1-D or 2-D surface (:meth:`Surface.load <landscape.surface.Surface.load>`).
    array : str, default="train_loss"
        The array.
    min_persistence : float, optional
        Threshold in the array's units; default ``se_multiple`` standard errors per basin
        from :meth:`Surface.stderr <landscape.surface.Surface.stderr>` (``None`` count, with the
        reason, for files that store none).
    se_multiple : float, default=:data:`SE_MULTIPLE`
        Standard errors of the default threshold.

    Returns
    -------
    SublevelPersistence
    """
    check_option("array", array, sorted(surface.arrays))
    coords = [surface.x] if surface.y is None else [surface.y, surface.x]  # array axes
    return sublevel_persistence(surface.arrays[array], done=surface.done_of(array),
                                stderr=surface.stderr(array), min_persistence=min_persistence,
                                se_multiple=se_multiple, coords=coords)
