"""Shared drawing helpers of :mod:`landscape.plot`: levels, norms, colour bars, labels, masks.

Every picture module imports from here (never from a sibling's private names). matplotlib is
imported lazily inside the functions.

Automatic contour levels come from the finite values only: evenly spaced from the minimum to a
robust maximum (the 95th percentile, so a few huge values at the corners of the grid do not
squash the basin into one level), or log-spaced when asked or when the values span more than
two decades.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LandscapeError, check_float, check_int

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.colors import Normalize

    from ..surface import Surface

#: Kinds of 2D pictures drawn by :func:`~landscape.plot.plot_contour` and
#: :func:`~landscape.plot.compare_panels`.
KINDS_2D = ("contour", "contourf", "heatmap")

CMAP = "viridis"
ROBUST_PERCENTILE = 95.0
LOG_DECADES = 2.0
DEFAULT_LEVELS = {"contour": 20, "contourf": 30, "heatmap": 30}
#: About this many round levels by default (contour labels and colour-bar ticks are a subset).
DEFAULT_LEVELS_NICE = {"contour": 12, "contourf": 20, "heatmap": 20}
#: At most this many colour-bar ticks / labelled contour levels.
MAX_TICKS = 7
FIGSIZE = (6.0, 4.8)
#: Values are drawn within +-this (matplotlib's filled contours extend to 1e250 at most).
BIG = 1e200
NORMS = {
    "filter": "filter-normalized",
    "layer": "layer-normalized",
    "model": "model-normalized",
    "none": "unnormalized",
}


# --------------------------------------------------------------------------- helpers
def new_axes(ax: Axes | None, *, projection: str | None = None,
              figsize: tuple[float, float] = FIGSIZE) -> Axes:
    """``ax`` itself, or the Axes of a new pyplot-free Figure."""
    if ax is not None:
        if projection == "3d" and getattr(ax, "name", "") != "3d":
            raise LandscapeError(
                "plot_3d needs a 3D Axes; create it with fig.add_subplot(projection='3d') "
                "or pass ax=None"
            )
        return ax

    fig = new_figure(figsize)
    return fig.add_subplot(projection=projection)


def new_figure(figsize: tuple[float, float]) -> Any:
    """A pyplot-free Figure with constrained layout that keeps equal-aspect panels and their
    labels inside it (``compress=True``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    fig.set_layout_engine("constrained", compress=True)
    return fig


def equal_aspect(ax: Axes) -> None:
    """Draw both axes to the same scale (they share units). A constrained layout is switched
    to ``compress=True``, without which matplotlib pushes the labels of fixed-aspect panels
    out of the figure."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    ax.set_aspect("equal", adjustable="box")
    fig = ax.figure
    root = getattr(fig, "figure", fig) or fig
    engine = root.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine) and not getattr(engine, "_compress", True):
        root.set_layout_engine("constrained", compress=True, **engine.get())


def pretty(name: str) -> str:
    """``"train_loss"`` -> ``"train loss"``, ``"test_acc"`` -> ``"test accuracy"``."""
    split, _, what = name.rpartition("_")
    if what == "acc":
        what = "accuracy"
    return f"{split} {what}" if split else name


def array_values(surface: Surface, name: str) -> np.ndarray:
    if name not in surface.arrays:
        raise LandscapeError(
            f"The 'array' parameter must be one of {sorted(surface.arrays)}. Got {name!r} "
            "instead."
        )
    return np.asarray(surface.arrays[name], dtype=np.float64)


def masked_values(surface: Surface, name: str) -> np.ma.MaskedArray:
    """The values the pictures draw: array ``name`` with unfinished and non-finite points masked.

    Parameters
    ----------
    surface : Surface
        Any surface.
    name : str
        One of its arrays.

    Returns
    -------
    np.ma.MaskedArray
        float64, masked where the array's own ``done`` mask is false or the value is NaN/inf.
    """
    z = array_values(surface, name)
    done = surface.done_of(name)
    if done.shape != z.shape:
        raise LandscapeError(
            f"array {name!r} has shape {z.shape} but the done mask has {done.shape}; the "
            "surface is damaged"
        )
    return np.ma.masked_array(z, mask=~done | ~np.isfinite(z))


def diverged_mask(surface: Surface, name: str) -> np.ndarray:
    """Mask of finished points whose value is NaN or inf."""
    z = array_values(surface, name)
    return surface.done_of(name) & ~np.isfinite(z)


def finite_values(values: Any) -> np.ndarray:
    a = np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan).ravel()
    return a[np.isfinite(a)]


def add_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=10, color="0.3", wrap=True)


def levels_for(values: Any, n: int, log: bool | None, vmin: float | None, vmax: float | None
          ) -> tuple[np.ndarray | None, bool]:
    """Automatic levels and whether they are log-spaced (see :func:`auto_levels`)."""
    n = check_int("levels", n, 2)
    a = finite_values(values)
    if vmin is not None:
        vmin = check_float("vmin", vmin)
    if vmax is not None:
        vmax = check_float("vmax", vmax)
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise LandscapeError(f"vmin must be smaller than vmax; got vmin={vmin!r}, vmax={vmax!r}")
    if a.size == 0 and (vmin is None or vmax is None):
        return None, False
    lo = float(a.min()) if vmin is None else vmin
    if vmax is not None:
        hi = vmax
    else:
        hi = float(np.percentile(a, ROBUST_PERCENTILE)) if a.size else lo
        if hi <= lo and a.size:
            hi = float(a.max())
    lo, hi = max(lo, -BIG), min(hi, BIG)
    if hi <= lo:  # constant values (or vmin above all of them): widen around the value
        half = 1e-3 * max(abs(lo), abs(hi), 1.0)
        lo, hi = min(lo, hi) - half, max(lo, hi) + half
    if log is None:  # automatic: positive values spanning more than two decades
        log = lo > 0 and math.log10(hi / lo) > LOG_DECADES
    if log:
        if lo <= 0:
            if vmin is not None:
                raise LandscapeError(f"log-spaced levels need vmin > 0; got vmin={vmin!r}")
            pos = a[(a > 0) & (a < hi)]
            if pos.size == 0:  # nothing positive below the top: linear levels after all
                return np.linspace(lo, hi, n), False
            lo = float(pos.min())
        return np.geomspace(lo, hi, n), True
    return np.linspace(lo, hi, n), False


def auto_levels(
    values: Any,
    n: int = 20,
    *,
    log: bool | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray | None:
    """Contour levels from the finite entries of ``values``.

    Parameters
    ----------
    values : array_like
        Any array (masked entries, NaN and inf are ignored).
    n : int, default=20
        Number of levels.
    log : bool or None, default=None
        Log-spaced levels. ``None`` chooses them when all values are positive and span more
        than two decades between the minimum and the robust maximum. With ``True`` and
        non-positive values the levels start at the smallest positive value.
    vmin, vmax : float, optional
        Range of the levels; default the minimum and the 95th percentile of the finite values
        (the maximum when that percentile equals the minimum). A constant array gets a narrow
        range around its value.

    Returns
    -------
    np.ndarray or None
        ``n`` increasing levels, or ``None`` when there is no finite value (and no range).

    Examples
    --------
    >>> auto_levels([0.0, 1.0, np.nan, np.inf], n=3).tolist()
    [0.0, 0.475, 0.95]
    >>> auto_levels([0.01, 0.1, 10.0, 100.0], n=3, vmax=100.0).tolist()  # 4 decades: log
    [0.01, 1.0, 100.0]
    """
    return levels_for(values, n, log, vmin, vmax)[0]


def nice_levels(lo: float, hi: float, log: bool, n: int) -> np.ndarray:
    """About ``n`` round levels covering ``[lo, hi]``: steps 1, 2, 2.5 or 5 times a power of
    ten, or for a log scale 1-2-5 (1-1.5-2-3-5-7 over few decades, decades over many).

    Examples
    --------
    >>> nice_levels(0.03, 0.96, False, 10).tolist()
    [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    >>> nice_levels(0.04, 2400.0, True, 20).tolist()[:4]
    [0.02, 0.05, 0.1, 0.2]
    """
    from matplotlib.ticker import MaxNLocator

    if log and lo > 0:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        decades = max(b - a, 1)
        for subs in ((1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3), (1,)):
            if decades * len(subs) <= 1.5 * n:
                break
        step = max(1, math.ceil(decades / n)) if subs == (1,) else 1
        vals = np.array([m * 10.0 ** e for e in range(a, b + 1, step) for m in subs])
        vals = np.array([float(f"{v:.6g}") for v in vals])
        first = max(int(np.searchsorted(vals, lo, side="right")) - 1, 0)
        last = min(int(np.searchsorted(vals, hi, side="left")), len(vals) - 1)
        return vals[first:last + 1]
    ticks = MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    step = float(ticks[1] - ticks[0])
    ticks = np.round(ticks / step) * step  # exact multiples of the step
    ticks = np.array([float(f"{v:.12g}") + 0.0 for v in ticks])
    first = max(int(np.searchsorted(ticks, lo, side="right")) - 1, 0)
    last = min(int(np.searchsorted(ticks, hi, side="left")), len(ticks) - 1)
    return ticks[first:last + 1]


def default_levels(values: Any, kind: str, log: bool | None, vmin: float | None,
                   vmax: float | None) -> tuple[np.ndarray | None, bool]:
    """Round levels over the range :func:`auto_levels` would choose."""
    n = DEFAULT_LEVELS_NICE[kind]
    lv, log = levels_for(values, 2, log, vmin, vmax)
    if lv is None:
        return None, False
    nice = nice_levels(float(lv[0]), float(lv[-1]), log, n)
    return (nice, log) if nice.size >= 2 else (lv, log)


def resolve_levels(values: Any, kind: str, levels: int | Sequence[float] | None,
                   log_levels: bool, vmin: float | None, vmax: float | None
                   ) -> tuple[np.ndarray | None, bool]:
    """Levels and log flag from the ``levels`` argument of the plot functions: round levels
    by default, ``n`` evenly (or log-) spaced ones for an int, or the levels given."""
    if levels is None:
        return default_levels(values, kind, True if log_levels else None, vmin, vmax)
    if isinstance(levels, int | np.integer):
        return levels_for(values, int(levels), True if log_levels else None, vmin, vmax)
    lv = np.asarray(levels, dtype=np.float64).ravel()
    if lv.size < 2 or not np.all(np.isfinite(lv)) or np.any(np.diff(lv) <= 0):
        raise LandscapeError(
            "The 'levels' parameter must be an int >= 2 or an increasing sequence of at least "
            f"2 finite numbers. Got {levels!r} instead."
        )
    if log_levels and lv[0] <= 0:
        raise LandscapeError("log_levels=True needs positive levels; the first is <= 0")
    return lv, bool(log_levels)


def norm_for(levels: np.ndarray, log: bool) -> Normalize:
    from matplotlib.colors import LogNorm, Normalize

    if log:
        return LogNorm(vmin=float(levels[0]), vmax=float(levels[-1]))
    return Normalize(vmin=float(levels[0]), vmax=float(levels[-1]))


def _is_multiple(v: float, step: float) -> bool:
    q = v / step
    return abs(q - round(q)) < 1e-6


def tick_levels(levels: np.ndarray, log: bool, max_ticks: int = MAX_TICKS) -> np.ndarray:
    """The levels that get a colour-bar tick and a contour label (the same ones).

    Decades (then 1-2-5 values) of a log scale; on a linear scale the multiples of the
    roundest step that gives at most ``max_ticks``; otherwise every k-th level.
    """
    lv = np.asarray(levels, dtype=np.float64)
    if lv.size <= 2:
        return lv
    if log and lv[0] > 0:
        mant = lv / 10.0 ** np.floor(np.log10(lv) + 1e-9)
        for keep in ((1.0,), (1.0, 2.0, 5.0)):
            sel = lv[np.isin(np.round(mant, 6), keep)]
            if sel.size >= 3 or (keep != (1.0,) and sel.size >= 2):
                break
        else:
            sel = lv
        if 2 <= sel.size:
            k = math.ceil(sel.size / max_ticks)
            return sel[::k]
    steps = np.diff(lv)
    if not log and np.allclose(steps, steps[0], rtol=1e-6):
        base = float(steps[0])
        for mult in (1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000):
            sel = np.array([v for v in lv if _is_multiple(v, base * mult)])
            if 2 <= sel.size <= max_ticks:
                return sel
    k = math.ceil(lv.size / max_ticks)
    return lv[::k]


class LevelFormat:
    """One formatter for the colour-bar ticks and the contour labels of a picture.

    The fewest significant digits (3 at least) that tell ``values`` apart; ``2000`` stays
    ``2000`` (no ``2e+03``), and numbers from ``1e4`` up or below ``1e-3`` are written
    ``2×10⁴`` in mathtext.
    """

    def __init__(self, values: Any) -> None:
        v = np.unique(np.asarray(values, dtype=np.float64))
        self.digits = 3
        for d in range(3, 13):
            self.digits = d
            if len({self._text(float(x), d) for x in v}) == v.size:
                break

    @staticmethod
    def _text(v: float, digits: int) -> str:
        if v == 0 or not math.isfinite(v):
            return "0" if v == 0 else f"{v}"
        if 1e-3 <= abs(v) < 1e4:
            e = math.floor(math.log10(abs(v)))
            decimals = max(0, digits - 1 - e)
            s = f"{v:.{decimals}f}"
            return s.rstrip("0").rstrip(".") if "." in s else s
        e = math.floor(math.log10(abs(v)))
        m = v / 10.0 ** e
        ms = f"{m:.{max(digits - 1, 0)}f}".rstrip("0").rstrip(".")
        sign = "-" if ms.startswith("-") else ""
        ms = ms.lstrip("-")
        return f"${sign}10^{{{e}}}$" if ms == "1" else f"${sign}{ms}\\times10^{{{e}}}$"

    def __call__(self, v: float, pos: Any = None) -> str:
        return self._text(float(v), self.digits)


def add_colorbar(fig: Any, m: Any, ax: Any, label: str, log: bool,
                 levels: np.ndarray | None = None, location: str = "right") -> Any:
    """A colour bar whose ticks are :func:`tick_levels` of ``levels`` (the contour labels),
    written by :class:`LevelFormat`; without levels, about 6 round ticks of the norm's range."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    cb = fig.colorbar(m, ax=ax, location=location,
                      **({"shrink": 0.8, "aspect": 40} if location == "bottom" else {}))
    lo, hi = m.norm.vmin, m.norm.vmax
    if levels is None and lo is not None and hi is not None and hi > lo:
        levels = nice_levels(float(lo), float(hi), log, 6)
        levels = levels[(levels >= lo - 1e-9 * abs(lo)) & (levels <= hi + 1e-9 * abs(hi))]
    if levels is not None and len(levels) >= 2:
        ticks = tick_levels(np.asarray(levels), log)
        fmt = LevelFormat(ticks)
        cb.locator = FixedLocator(ticks)
        cb.formatter = FuncFormatter(fmt)
        cb.update_ticks()
    cb.ax.minorticks_off()
    cb.set_label(label)
    return cb


def cell_edges(v: np.ndarray) -> np.ndarray:
    """Cell edges around the (increasing or not) coordinates ``v`` for pcolormesh."""
    v = np.asarray(v, dtype=np.float64)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def direction_recipe(surface: Surface) -> dict[str, Any] | None:
    r = surface.recipe.get("directions") if isinstance(surface.recipe, Mapping) else None
    if not isinstance(r, Mapping) and surface.directions is not None:
        r = surface.directions.recipe
    return dict(r) if isinstance(r, Mapping) else None


def describe_direction(recipe: Mapping[str, Any] | None, axis: int) -> str | None:
    """``"filter-normalized random, seed 0"`` and the like, or ``None``."""
    if not recipe:
        return None
    kind = recipe.get("kind")
    if kind == "random":
        norm = NORMS.get(str(recipe.get("norm")), str(recipe.get("norm", "")))
        seeds = recipe.get("seeds")
        text = f"{norm} random".strip()
        if isinstance(seeds, Sequence) and not isinstance(seeds, str) and len(seeds) > axis:
            text += f", seed {seeds[axis]}"
        if axis == 1 and recipe.get("orthogonal"):
            text += ", orthogonalized"
        return text
    if kind == "interpolation":
        target = recipe.get("target")
        return f"interpolation (0: origin, 1: {Path(str(target)).name})" if target \
            else "interpolation"
    if kind == "plane":
        models = recipe.get("models")
        if isinstance(models, Sequence) and len(models) > axis:
            return f"plane, towards {Path(str(models[axis])).name}"
        return "plane"
    if kind == "pca":
        return f"PC{axis + 1} of the trajectory"
    if kind == "hessian":
        lams = recipe.get("eigenvalues")
        which = ("λmax" if axis == 0 else
                 "λmin" if recipe.get("pair") == "topbottom" else "λ2")
        lam = (f" = {lams[axis]:.4g}" if isinstance(lams, Sequence)
               and len(lams) > axis and isinstance(lams[axis], int | float) else "")
        return f"Hessian eigenvector of {which}{lam}"
    return str(kind) if kind else None


def axis_labels(surface: Surface) -> tuple[str, str]:
    recipe = direction_recipe(surface)
    names = ("x", "y")
    out = []
    for i, n in enumerate(names):
        d = describe_direction(recipe, i)
        out.append(f"{n}: {d}" if d else n)
    return out[0], out[1]


def progress_note(surface: Surface) -> str:
    if surface.complete:
        return ""
    return f" ({surface.n_done}/{surface.n_points} points done)"


def mark_diverged(ax: Axes, xs: np.ndarray, ys: np.ndarray) -> None:
    if xs.size:
        ax.plot(xs, ys, linestyle="none", marker="x", color="red", markersize=4,
                label=f"diverged ({xs.size})", zorder=5)


def default_array(surface: Surface) -> str | None:
    for name in ("train_loss", "test_loss"):
        if name in surface.arrays:
            return name
    losses = sorted(k for k in surface.arrays if k.endswith("_loss"))
    return losses[0] if losses else (sorted(surface.arrays)[0] if surface.arrays else None)
