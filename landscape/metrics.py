"""Numbers that summarise a loss landscape: sharpness, basin width, roughness, curvature maps.

Every function here is a pure function of results that are already computed (a
:class:`~landscape.surface.Surface`, a ratio map, a :class:`~landscape.trajectory.Trajectory`)
-- arrays in, plain Python numbers out -- except :func:`eps_sharpness_ascent`, which
maximises the loss of a model in a box around its weights.

Units. Surface coordinates are in *direction units*: with filter-normalized directions (the
default of :func:`~landscape.directions.random_directions`) one unit moves every filter by its
own norm, so ``|α| = 0.1`` is a 10 % relative perturbation of each filter. PCA directions of a
trajectory are unit vectors instead (one unit = one unit of Euclidean weight distance). Radii,
basin widths and thresholds of the surface functions below are in those units.

Which points count. Only *finished* points (``surface.done_of(array)``) enter any metric. Finished
points whose value is NaN or inf are *diverged*: they count as "very high loss" (an ε-box
that contains one has infinite sharpness; a basin ends before one), never as missing data.
Unfinished points are missing data (a basin that reaches one is censored).

References
----------
.. [1] N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang, "On large-batch
   training for deep learning: generalization gap and sharp minima", ICLR 2017.
.. [2] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of
   neural nets", NeurIPS 2018.
.. [3] P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-aware minimization for
   efficiently improving generalization", ICLR 2021.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ._functional import LossSpec, resolve_loss
from .batches import call_model
from .data import DeviceData, StreamData, as_data, first_batch
from .errors import LandscapeError, check_float, check_int
from .surface import Surface

__all__ = [
    "surface_minimum",
    "origin_index",
    "eps_sharpness_from_surface",
    "eps_sharpness_ascent",
    "basin_width",
    "roughness",
    "convex_area_fraction",
    "low_dimensionality",
]

#: Coordinates within this fraction of the axis span from 0 are "the origin" (Li et al.'s
#: files store ``np.linspace`` coordinates, whose middle value may be 1e-17 instead of 0).
_ORIGIN_RTOL = 1e-9


# --------------------------------------------------------------------------- helpers
def _values(surface: Surface, array: str) -> tuple[np.ndarray, np.ndarray]:
    """``(z, done)``: the array as float64 and the completion mask, shapes checked."""
    if array not in surface.arrays:
        raise LandscapeError(
            f"The 'array' parameter must be one of {sorted(surface.arrays)}. Got {array!r} "
            "instead."
        )
    z = np.asarray(surface.arrays[array], dtype=np.float64)
    done = surface.done_of(array)
    if z.shape != done.shape:
        raise LandscapeError(
            f"array {array!r} has shape {z.shape} but the done mask has {done.shape}; the "
            "surface is damaged"
        )
    return z, done


def _axes(surface: Surface) -> list[np.ndarray]:
    """Coordinates per array axis, in array order: ``[y, x]`` (2D) or ``[x]`` (1D)."""
    x = np.asarray(surface.x, dtype=np.float64).ravel()
    if surface.y is None:
        return [x]
    return [np.asarray(surface.y, dtype=np.float64).ravel(), x]


def _zero_index(c: np.ndarray) -> int | None:
    span = float(c.max() - c.min()) if c.size > 1 else 1.0
    i = int(np.argmin(np.abs(c)))
    return i if abs(c[i]) <= _ORIGIN_RTOL * max(span, 1.0) else None


def origin_index(surface: Surface) -> tuple[int, ...] | None:
    """Array index of the grid point at the origin (``(iy, ix)`` or ``(ix,)``), if any.

    The origin is the model the surface was computed around (θ*). ``None`` when the grid has
    no point with all coordinates 0 (e.g. an even number of points on ``-1:1``).
    """
    idx = [_zero_index(c) for c in _axes(surface)]
    if any(i is None for i in idx):
        return None
    return tuple(int(i) for i in idx)  # type: ignore[arg-type]


def _coords_of(surface: Surface, index: tuple[int, ...]) -> tuple[float, ...]:
    """``(x,)`` or ``(x, y)`` of an array index."""
    if surface.y is None:
        return (float(surface.x[index[0]]),)
    return (float(surface.x[index[1]]), float(surface.y[index[0]]))


# --------------------------------------------------------------------------- minimum
def surface_minimum(surface: Surface, array: str = "train_loss"
                    ) -> tuple[float, tuple[float, ...]]:
    """Lowest finished, finite value of a surface array and where it lies.

    Parameters
    ----------
    surface : Surface
        A 1D or 2D surface.
    array : str, default="train_loss"
        The array to search.

    Returns
    -------
    value : float
        The minimum.
    coords : tuple of float
        Its coordinates ``(x, y)`` (2D) or ``(x,)`` (1D), in direction units. Ties go to the
        first point in raster order (``Z[iy, ix]``, ``ix`` fastest).

    Raises
    ------
    LandscapeError
        If no point is finished with a finite value.

    Examples
    --------
    >>> s = Surface(x=np.array([-1.0, 0.0, 1.0]), y=None,
    ...             arrays={"train_loss": np.array([2.0, 0.5, 1.0])},
    ...             done=np.ones(3, bool))
    >>> surface_minimum(s)
    (0.5, (0.0,))
    """
    z, done = _values(surface, array)
    ok = done & np.isfinite(z)
    if not ok.any():
        raise LandscapeError(
            f"surface array {array!r} has no finished finite point (done: {int(done.sum())}"
            f"/{done.size}); compute the surface first"
        )
    flat = np.where(ok, z, np.inf).ravel()
    i = int(np.argmin(flat))
    index = tuple(int(v) for v in np.unravel_index(i, z.shape))
    return float(flat[i]), _coords_of(surface, index)


# --------------------------------------------------------------------------- sharpness
def _phi(max_loss: float, origin_loss: float) -> float:
    """Keskar et al.'s ``100 (max L - L(θ)) / (1 + L(θ))``."""
    if math.isnan(max_loss) or math.isnan(origin_loss):
        return float("nan")
    if math.isinf(max_loss):
        return float("inf")
    return 100.0 * (max_loss - origin_loss) / (1.0 + origin_loss)


def _rise(max_loss: float, origin_loss: float) -> float:
    """The absolute rise ``max L - L(θ)`` in nats (``inf`` if diverged, NaN if unknown)."""
    if math.isnan(max_loss) or math.isnan(origin_loss):
        return float("nan")
    if math.isinf(max_loss):
        return float("inf")
    return max_loss - origin_loss


def _sharpness_details(max_loss: float, origin_loss: float, **more: Any) -> dict[str, Any]:
    return {"eps_sharpness": _phi(max_loss, origin_loss),
            "rise": _rise(max_loss, origin_loss), "max_loss": float(max_loss),
            "origin_loss": float(origin_loss), **more}


def eps_sharpness_from_surface(
    surface: Surface,
    eps: float,
    array: str = "train_loss",
    origin_loss: float | None = None,
    *,
    details: bool = False,
) -> float | dict[str, Any]:
    """ε-sharpness of Keskar et al. (2017) restricted to the plane (or line) of a surface.

    .. math:: \\phi = 100 \\cdot \\frac{\\max_{|\\alpha|, |\\beta| \\le \\varepsilon}
       L(\\theta + \\alpha \\delta + \\beta \\eta) - L(\\theta)}{1 + L(\\theta)}

    where the maximum runs over the finished grid points inside the box ``|x| <= eps``
    (and ``|y| <= eps`` in 2D), origin included (so ``φ >= 0``).

    This is the *surface-restricted* estimate: Keskar et al. maximise over the full parameter
    box ``|z_i| <= ε (|θ_i| + 1)`` (see :func:`eps_sharpness_ascent`); here the maximum is
    taken only over the 2-D (or 1-D) subspace spanned by the surface's directions, and only at
    grid points, so it is a lower bound of the full-space value at the same relative radius.
    With filter-normalized directions one unit is the weights' own scale (each filter moves by
    ``ε`` times its norm), so ``eps`` is comparable across networks -- but it must be at least
    one grid step: Keskar's ``ε = 1e-3`` is far below the step of a typical ``-1:1:51`` grid.

    Keskar's value divides the rise by ``1 + L(θ)``: of two networks at different losses, the
    one at the higher loss looks flatter for the same rise (measured: surface ε-sharpness 32.8
    against 30.8 where the rises were 0.33 and 0.93 nats). ``details=True`` returns the
    absolute rise ``max L(θ + z) - L(θ)`` (nats) beside it; compare networks by both.

    Parameters
    ----------
    surface : Surface
        A 1D or 2D surface.
    eps : float
        Half-width of the box in direction units, > 0.
    array : str, default="train_loss"
        The loss array.
    origin_loss : float, optional
        ``L(θ)``; default the value at the grid point at the origin (required when the grid
        has no such point).
    details : bool, default=False
        Return a dict with the absolute rise beside Keskar's value.

    Returns
    -------
    float or dict
        φ in percent; ``inf`` if a finished point in the box diverged (NaN/inf loss). With
        ``details=True`` a dict: ``eps_sharpness`` (φ, %), ``rise`` (``max L - L(θ)``, nats;
        ``inf`` if diverged), ``max_loss`` and ``origin_loss`` (nats), ``n_points`` (finished
        grid points in the box besides the origin).

    Raises
    ------
    LandscapeError
        If no finished grid point other than the origin lies in the box (``eps`` below the
        grid step, or the points there not computed yet), or ``L(θ)`` is unknown.

    References
    ----------
    N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang, "On large-batch
    training for deep learning: generalization gap and sharp minima", ICLR 2017.
    """
    eps = check_float("eps", eps, 0.0, closed="neither")
    z, done = _values(surface, array)
    axes = _axes(surface)
    tol = eps * 1e-9 + 1e-12
    inside = [np.abs(c) <= eps + tol for c in axes]
    box = inside[0] if len(axes) == 1 else np.outer(inside[0], inside[1])
    o = origin_index(surface)
    if o is not None:
        box = box.copy()
        box[o] = False
    if not box.any():
        steps = [float(np.min(np.diff(np.sort(c)))) for c in axes if c.size > 1]
        step = min(steps) if steps else float("nan")
        raise LandscapeError(
            f"eps={eps:g} reaches no grid point other than the origin (grid step "
            f"{step:.4g}); use eps >= {step:.4g}"
        )
    others = box & done
    if not others.any():
        raise LandscapeError(
            f"the grid points within eps={eps:g} of the origin are not computed yet; finish "
            "the surface first"
        )
    if origin_loss is None:
        if o is None or not done[o]:
            raise LandscapeError(
                "the loss at the origin is unknown: the grid has no finished point at (0, 0); "
                "pass origin_loss (the model's own loss)"
            )
        origin_loss = float(z[o])
    else:
        origin_loss = float(origin_loss)
    vals = z[others]
    top = float("inf") if np.any(np.isnan(vals) | (vals == np.inf)) \
        else max(float(vals.max()), origin_loss)
    if details:
        return _sharpness_details(top, origin_loss, n_points=int(others.sum()))
    if math.isinf(top):
        return float("inf")
    return _phi(top, origin_loss)


def _caller(net: nn.Module, tensors: dict[str, torch.Tensor]) -> Any:
    from torch.func import functional_call

    return lambda *a, **k: functional_call(net, tensors, a, k, strict=False)


def _total_weight(net: nn.Module, params: dict[str, torch.Tensor], batches: Any,
                  loss_fn: Any) -> float:
    """Number of counted examples of the data set (from the targets; a user loss: one pass)."""
    w = 0.0
    for b in batches.batches(batches.batch_size):
        bw = loss_fn.weight(b)
        if bw is None:
            with torch.no_grad():
                bw = float(loss_fn.model_terms(_caller(net, params), b).weight)
        w += bw
    if w <= 0:
        raise LandscapeError("the data counts no example for the loss (all targets ignored)")
    return w


def _full_loss_and_grad(net: nn.Module, params: dict[str, torch.Tensor], batches: Any,
                        loss_fn: Any, weight: float, want_grad: bool
                        ) -> tuple[float, dict[str, torch.Tensor] | None]:
    """Data-set loss (float64 sum of every batch's counted losses over the data set's total
    ``weight``, :mod:`landscape.losses`) and, optionally, its gradient."""
    total = 0.0
    grads: dict[str, torch.Tensor] | None = (
        {k: torch.zeros_like(v) for k, v in params.items()} if want_grad else None
    )
    names = list(params)
    for b in batches.batches(batches.batch_size):
        if want_grad:
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            part = loss_fn.model_terms(_caller(net, leaves), b).total
            g = torch.autograd.grad(part / weight, [leaves[k] for k in names],
                                    allow_unused=True)
            for k, gk in zip(names, g, strict=True):
                if gk is not None:
                    grads[k] += gk  # type: ignore[index]
        else:
            with torch.no_grad():
                part = loss_fn.model_terms(_caller(net, params), b).total
        total += float(part.detach().double())
    return total / weight, grads


def eps_sharpness_ascent(
    model: nn.Module,
    data: Any,
    eps: float = 1e-3,
    *,
    steps: int = 10,
    lr: float | None = None,
    loss: LossSpec = "cross_entropy",
    batch_size: int = 1024,
    seed: int = 0,
    device: torch.device | str | None = None,
    details: bool = False,
) -> float | dict[str, Any]:
    """ε-sharpness of Keskar et al. (2017) in the full parameter space, by projected ascent.

    The box is :math:`C_\\varepsilon = \\{z : |z_i| \\le \\varepsilon (|\\theta_i| + 1)\\}`
    over every floating-point parameter (biases and BatchNorm scales included). Starting at
    ``z = 0``, each of ``steps`` iterations takes a sign-gradient step of the full-data loss,
    ``z += lr · ε (|θ| + 1) · sign(∇L(θ + z))``, and clips ``z`` back into the box (an
    ℓ∞-projected gradient ascent, the maximiser of the linearised loss over the box being its
    vertex ``ε (|θ| + 1) sign(∇L)``). The largest loss met on the way (origin included) gives

    .. math:: \\phi = 100 \\cdot \\frac{\\max L(\\theta + z) - L(\\theta)}{1 + L(\\theta)}.

    Keskar et al. use L-BFGS-B; a few sign steps reach a vertex of the box, which is where the
    maximum of a locally convex loss lies, and are cheaper. The result is a lower bound of the
    true maximum (a local ascent). The model is called through
    :func:`torch.func.functional_call` on a private copy in ``eval()`` mode (BatchNorm uses its
    running statistics, dropout is off); the caller's model is not modified.

    Parameters
    ----------
    model : nn.Module
        The network at θ.
    data : TensorData, ``(x, y)``, Dataset or DataLoader
        The full data set (typically the training set); batches and losses follow
        :mod:`landscape.batches` and :mod:`landscape.losses`.
    eps : float, default=1e-3
        Relative box size ε (Keskar et al. use 1e-3 and 5e-4).
    steps : int, default=10
        Ascent iterations (>= 1).
    lr : float, optional
        Step as a fraction of the box half-width ``ε (|θ_i| + 1)``; default ``2 / steps`` (so
        the box can be crossed from side to side).
    loss : str or callable, default="cross_entropy"
        See :func:`landscape._functional.resolve_loss`.
    batch_size : int, default=1024
        Samples per forward pass (the loss is the mean over all counted examples).
    seed : int, default=0
        Seeds the random sign given to coordinates whose gradient is exactly zero (e.g. at an
        exact minimum), so the ascent leaves a stationary point deterministically.
    device : str or torch.device, optional
        Where to compute (default: the model's device).
    details : bool, default=False
        Return a dict with the absolute rise beside Keskar's value (its ``1 + L(θ)``
        denominator hides or reverses the rise between networks at different losses).

    Returns
    -------
    float or dict
        φ in percent (``inf`` if the loss diverged inside the box, NaN if ``L(θ)`` is NaN).
        With ``details=True`` a dict: ``eps_sharpness`` (φ, %), ``rise`` (``max L(θ + z) -
        L(θ)`` over the iterates, nats), ``max_loss`` and ``origin_loss`` (nats), ``steps``.

    References
    ----------
    N. S. Keskar, D. Mudigere, J. Nocedal, M. Smelyanskiy, P. T. P. Tang, "On large-batch
    training for deep learning: generalization gap and sharp minima", ICLR 2017.
    """
    eps = check_float("eps", eps, 0.0, closed="neither")
    steps = check_int("steps", steps, 1)
    lr = 2.0 / steps if lr is None else check_float("lr", lr, 0.0, closed="neither")
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0)
    loss_fn = resolve_loss(loss)
    try:
        source = as_data(data)
    except LandscapeError:
        raise LandscapeError(
            "The 'data' parameter must have non-empty tensors 'x' and 'y' (a TensorData), or "
            f"be (x, y) tensors, a Dataset or a DataLoader. Got {type(data).__name__} instead."
        ) from None
    if not isinstance(source, StreamData) and len(source.x) == 0:
        raise LandscapeError("The 'data' parameter must have non-empty tensors 'x' and 'y'.")
    net = copy.deepcopy(model).eval()
    ref = next(iter(net.parameters()), None)
    if ref is None:
        raise LandscapeError("the model has no parameters; its ε-sharpness is undefined")
    dev = torch.device(device) if device is not None else ref.device
    net = net.to(dev)
    for p in net.parameters():
        p.requires_grad_(False)
    theta = {k: v.detach().clone() for k, v in net.named_parameters() if v.is_floating_point()}
    if not theta:
        raise LandscapeError("the model has no floating-point parameters to perturb")
    batches = DeviceData(source, dev, ref.dtype)
    batches.batch_size = batch_size  # type: ignore[attr-defined]
    probe = batches.move(first_batch(source))
    loss_fn.check_batch(probe)
    if not loss_fn.takes_model:
        with torch.no_grad():
            loss_fn.calibrate(call_model(net, probe), probe)
    weight = _total_weight(net, theta, batches, loss_fn)
    half = {k: eps * (v.abs() + 1.0) for k, v in theta.items()}
    z = {k: torch.zeros_like(v) for k, v in theta.items()}
    gen = torch.Generator().manual_seed(seed)
    l0, grad = _full_loss_and_grad(net, theta, batches, loss_fn, weight, True)
    best = l0
    for it in range(steps):
        for k in z:
            s = torch.sign(grad[k])  # type: ignore[index]
            zero = s == 0
            if bool(zero.any()):
                rnd = torch.randint(0, 2, s.shape, generator=gen).to(s) * 2 - 1
                s = torch.where(zero, rnd, s)
            z[k] = torch.clamp(z[k] + lr * half[k] * s, -half[k], half[k])
        point = {k: theta[k] + z[k] for k in theta}
        last = it == steps - 1
        lz, grad = _full_loss_and_grad(net, point, batches, loss_fn, weight, not last)
        if not math.isfinite(lz):  # diverged inside the box
            best = float("inf")
            break
        best = max(best, lz)
    if details:
        return _sharpness_details(best, l0, steps=steps)
    return _phi(best, l0)


# --------------------------------------------------------------------------- basin width
def _walk(c: np.ndarray, v: np.ndarray, done: np.ndarray, i0: int, step: int,
          level: float) -> tuple[float, bool]:
    """Distance from ``c[i0]`` until ``v`` first exceeds ``level`` going ``step`` (+1/-1)."""
    i = i0
    while True:
        j = i + step
        if j < 0 or j >= c.size or not done[j]:
            return abs(float(c[i] - c[i0])), True  # grid edge or unknown point: censored
        vj = float(v[j])
        if math.isnan(vj) or vj == math.inf:
            return abs(float(c[i] - c[i0])), False  # diverged: the basin ends before it
        if vj > level:
            vi = float(v[i])
            t = (level - vi) / (vj - vi)
            xc = float(c[i]) + t * float(c[j] - c[i])
            return abs(xc - float(c[i0])), False
        i = j


def basin_width(
    surface: Surface,
    threshold: float = 0.1,
    array: str = "train_loss",
    relative: bool = False,
) -> dict[str, Any]:
    """Width of the basin around the surface's minimum along each axis.

    From the lowest finished finite point, walk along the grid line through it (the row for
    ``x``, the column for ``y``) in both directions until the loss first exceeds the *level*
    ``min + threshold`` (or ``min · (1 + threshold)`` with ``relative=True``); the crossing is
    placed by linear interpolation between the last point at or below the level and the first
    above it. Distances are in direction units (filter-normalized: relative weight scale).

    Censoring: when the walk reaches the edge of the grid or an unfinished point without
    exceeding the level, the distance *up to that last point* is returned and flagged
    ``censored`` (the true width is at least that; never ``inf``). A finished point whose value
    is NaN or inf (diverged) ends the basin at the last point before it (not censored).

    Parameters
    ----------
    surface : Surface
        A 1D or 2D surface.
    threshold : float, default=0.1
        Loss increase (absolute, or relative with ``relative=True``), > 0.
    array : str, default="train_loss"
        The loss array.
    relative : bool, default=False
        Level ``min · (1 + threshold)`` instead of ``min + threshold`` (needs ``min >= 0``).

    Returns
    -------
    dict
        ``minimum`` (float), ``argmin`` (coordinates), ``level`` (float), and for ``"x"`` and
        ``"y"`` (``None`` for 1D) a dict with ``left``, ``right``, ``width`` (= left + right),
        ``censored_left``, ``censored_right`` and ``censored`` (either side).

    Raises
    ------
    LandscapeError
        If no point is finished with a finite value, or ``relative`` with a negative minimum.

    Examples
    --------
    >>> x = np.linspace(-1, 1, 201)
    >>> s = Surface(x=x, y=None, arrays={"train_loss": 4 * x**2}, done=np.ones(201, bool))
    >>> round(basin_width(s, threshold=1.0)["x"]["width"], 3)  # 2 sqrt(1/4)
    1.0

    References
    ----------
    N. S. Keskar et al., ICLR 2017 (sharpness along directions); H. Li et al., NeurIPS 2018
    (filter-normalized 1D plots whose basin widths are comparable across networks).
    """
    threshold = check_float("threshold", threshold, 0.0, closed="neither")
    if not isinstance(relative, bool):
        raise LandscapeError(f"The 'relative' parameter must be a bool. Got {relative!r} instead.")
    z, done = _values(surface, array)
    vmin, _ = surface_minimum(surface, array)
    if relative and vmin < 0:
        raise LandscapeError(
            f"relative=True needs a non-negative minimum; {array!r} has minimum {vmin:g} "
            "(use an absolute threshold)"
        )
    level = vmin * (1.0 + threshold) if relative else vmin + threshold
    ok = done & np.isfinite(z)
    flat = np.where(ok, z, np.inf).ravel()
    index = tuple(int(v) for v in np.unravel_index(int(np.argmin(flat)), z.shape))

    def along(c: np.ndarray, v: np.ndarray, d: np.ndarray, i0: int) -> dict[str, Any]:
        left, cl = _walk(c, v, d, i0, -1, level)
        right, cr = _walk(c, v, d, i0, +1, level)
        return {"left": left, "right": right, "width": left + right,
                "censored_left": cl, "censored_right": cr, "censored": cl or cr}

    x = np.asarray(surface.x, dtype=np.float64)
    if surface.y is None:
        res_x = along(x, z, done, index[0])
        res_y = None
    else:
        y = np.asarray(surface.y, dtype=np.float64)
        iy, ix = index
        res_x = along(x, z[iy, :], done[iy, :], ix)
        res_y = along(y, z[:, ix], done[:, ix], iy)
    return {"minimum": vmin, "argmin": _coords_of(surface, index), "level": float(level),
            "x": res_x, "y": res_y}


# --------------------------------------------------------------------------- roughness
#: Default ``tv_rise`` of :func:`roughness` (nats above the centre): the window of the total
#: variation. About ``ln 10`` (chance level of 10 classes) above a trained network's loss.
TV_RISE = 2.0


def roughness(surface: Surface, array: str = "train_loss", *,
              include_edges: bool = False, tv_rise: float = TV_RISE,
              min_window_points: int | None = None) -> dict[str, Any]:
    """How chaotic a surface is: local minima, normalised total variation, diverged points.

    * ``local_minima`` -- finished finite points strictly lower than each of their neighbours
      (8-neighbourhood in 2D, the 2 neighbours in 1D). Diverged neighbours (finished, NaN/inf)
      count as higher; a point with an unfinished neighbour is not counted. Points on the
      edge of the grid are left out unless ``include_edges`` (a loss falling towards the edge
      is not a minimum of the landscape, only of the window).
    * ``total_variation`` -- the total variation of the loss *within a window of loss values*
      ``[min, level]``, ``level = L(centre) + tv_rise``: every value above the level (diverged
      points included) counts as the level, so the sum of ``|Δ|`` between neighbours along
      every grid row and column is divided by the range of those clipped values and by the
      number of grid lines that enter the window. It counts traversals of the window per
      line: a monotone 1D curve gives 1, a convex bowl with equal rims 2, a chaotic surface
      many, whatever the loss does above the level; it does not grow with grid resolution for
      smooth surfaces. 0 for a constant surface. Without the window the range, and so the
      number, is set by the grid's edges, where the loss of a trained net reaches 10^6-10^9
      nats and any structure near the centre vanishes; that number is kept as
      ``total_variation_full_range``. ``L(centre)`` is the value at the grid point at the
      origin, or the surface's minimum where the origin is not a finished finite point
      (``total_variation_base`` says which). NaN, with ``total_variation_reason``, when fewer
      than ``min_window_points`` finite points lie at or below the level.
    * ``nonfinite_fraction`` -- fraction of finished points whose value is NaN or inf.

    Parameters
    ----------
    surface : Surface
        A 1D or 2D surface.
    array : str, default="train_loss"
        The array.
    include_edges : bool, default=False
        Count minima on the grid's edge too.
    tv_rise : float, default=:data:`TV_RISE`
        Height of the total variation's window above ``L(centre)``, in the array's units
        (nats for a loss), > 0.
    min_window_points : int, optional
        Fewest finite points at or below the level for a total variation (default 5 in 1D,
        9 in 2D).

    Returns
    -------
    dict
        ``local_minima`` (int), ``total_variation`` (float, traversals per line of the
        window), ``total_variation_full_range`` (the same over the whole range of values),
        ``total_variation_level`` (the level, in the array's units), ``total_variation_rise``
        (``tv_rise``), ``total_variation_base`` (``"centre"`` or ``"minimum"``),
        ``total_variation_points`` (finite points at or below the level),
        ``total_variation_window`` (the window in words), ``total_variation_reason`` (why the
        value is NaN, else ``None``), ``nonfinite_fraction`` (float), ``n_finished`` (int).

    Raises
    ------
    LandscapeError
        If no point is finished.

    References
    ----------
    H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of
    neural nets", NeurIPS 2018 (chaotic vs convex-looking landscapes).
    """
    tv_rise = check_float("tv_rise", tv_rise, 0.0, closed="neither")
    z, done = _values(surface, array)
    if min_window_points is None:
        min_window_points = 5 if z.ndim == 1 else 9
    min_window_points = check_int("min_window_points", min_window_points, 1)
    n_done = int(done.sum())
    if n_done == 0:
        raise LandscapeError(f"surface array {array!r} has no finished point; compute it first")
    finite = done & np.isfinite(z)
    z2 = z.reshape(1, -1) if z.ndim == 1 else z
    d2 = done.reshape(1, -1) if z.ndim == 1 else done
    f2 = finite.reshape(1, -1) if z.ndim == 1 else finite
    # ---- local minima
    high = np.where(f2, z2, np.inf)  # diverged -> +inf
    ny, nx = z2.shape
    pad_v = np.pad(high, 1, constant_values=np.inf)
    pad_d = np.pad(d2, 1, constant_values=True)  # outside the grid: no unknown neighbour
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    if z.ndim == 1:
        offsets = [(0, -1), (0, 1)]
    is_min = f2.copy()
    for dy, dx in offsets:
        nv = pad_v[1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx]
        nd = pad_d[1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx]
        is_min &= nd & (high < nv)
    if not include_edges:
        edge = np.zeros_like(is_min)
        edge[:, [0, -1]] = True
        if z.ndim == 2:
            edge[[0, -1], :] = True
        is_min &= ~edge
    # ---- total variation: over the whole range (kept for reference), and in the window
    full = _total_variation(z2, f2, f2)
    o = origin_index(surface)
    if o is not None and finite[o]:
        base, base_name = float(z[o]), "centre"
    elif finite.any():
        base, base_name = float(z[finite].min()), "minimum"
    else:
        base, base_name = float("nan"), "none"
    level = base + tv_rise
    inside = f2 & (z2 <= level)
    n_in = int(inside.sum())
    window = (f"loss clipped at L({base_name}) + {tv_rise:g} = {level:.6g} "
              f"({n_in} of {int(f2.sum())} finite points below)")
    reason = None
    if n_in < min_window_points:
        tv = float("nan")
        reason = (f"only {n_in} finite point(s) at or below L({base_name}) + {tv_rise:g} = "
                  f"{level:.6g}; at least {min_window_points} are needed (a finer grid near "
                  "the centre, or a larger tv_rise)")
    else:
        clipped = np.where(f2, np.minimum(z2, level), level)  # diverged: above the level
        tv = _total_variation(clipped, d2, inside)
    return {
        "local_minima": int(is_min.sum()),
        "total_variation": tv,
        "total_variation_full_range": full,
        "total_variation_level": level,
        "total_variation_rise": tv_rise,
        "total_variation_base": base_name,
        "total_variation_points": n_in,
        "total_variation_window": window,
        "total_variation_reason": reason,
        "nonfinite_fraction": float((done & ~np.isfinite(z)).sum() / n_done),
        "n_finished": n_done,
    }


def _total_variation(v: np.ndarray, usable: np.ndarray, inside: np.ndarray) -> float:
    """Sum of ``|Δ|`` between usable neighbours along rows and columns of ``v`` (2-D),
    divided by the range of the usable values and by the number of lines with a usable pair
    that touches ``inside``; 0 for a constant surface."""
    vals = v[usable]
    rng = float(vals.max() - vals.min()) if vals.size else 0.0
    total, lines = 0.0, 0
    pairs = ((v, usable, inside), (v.T, usable.T, inside.T)) if v.shape[0] > 1 \
        else ((v, usable, inside),)
    for arr, ok, ins in pairs:
        pair = ok[:, 1:] & ok[:, :-1]
        with np.errstate(invalid="ignore"):  # inf - inf between unusable points
            diffs = np.abs(np.diff(arr, axis=1))
        total += float(np.sum(diffs[pair]))
        touch = pair & (ins[:, 1:] | ins[:, :-1])
        lines += int(np.sum(touch.any(axis=1)))
    return total / (rng * lines) if rng > 0 and lines > 0 else 0.0


# --------------------------------------------------------------------------- ratio maps
def _get(m: Any, name: str) -> Any:
    """An array of a ratio map given as a :class:`~landscape.hessian.RatioMap` or a mapping."""
    return m.get(name) if isinstance(m, Mapping) else getattr(m, name, None)


#: Fewest grid points per axis of a ratio map for a convex-area fraction (:func:`
#: convex_area_fraction`): a 3x3 map (Li et al.'s figures use 51x51) allows only multiples of
#: 1/9, 8 of them on the rim.
MIN_RATIO_GRID = 5

#: Loss above ``L(centre)`` (nats) beyond which a ratio-map point is "far above the centre"
#: for :func:`convex_area_fraction` (about four times the chance level of 10 classes, ln 10).
FAR_RISE = 10.0


def convex_area_fraction(ratio_map: Any, threshold: float = 0.1, *,
                         loss: Any = None, centre_loss: float | None = None,
                         min_points: int = MIN_RATIO_GRID,
                         far_rise: float = FAR_RISE) -> dict[str, Any]:
    """Share of a ratio map where the landscape looks convex, and the ratio at the minimum.

    Li et al. (2018, section 6) map ``|λmin / λmax|`` of the Hessian over a surface's grid:
    small values (the negative curvature is negligible) mark convex-looking regions, large
    ones chaotic regions.

    The fraction is only reported from a map fine enough to mean something; otherwise it is
    NaN and ``reason`` says why. The rule:

    1. every axis of the map has at least ``min_points`` grid points (default 5: a 3x3 map
       allows only multiples of 1/9, and 8 of its 9 points are on the rim);
    2. when the loss on the map's grid is given (``loss``), at most half of the points that
       enter the fraction lie *far above the centre*, i.e. at a loss more than ``far_rise``
       nats (default 10) above ``L(centre)``: there the network computes nothing the trained
       one does (the demo's 3x3 map had 8 of 9 points at 10^3-10^12 nats), and a fraction
       dominated by such points describes the blow-up, not the minimum's neighbourhood.

    Parameters
    ----------
    ratio_map : RatioMap or mapping
        A :class:`~landscape.hessian.RatioMap` (``RatioMap.load(path)``), or a mapping with
        arrays ``ratio`` (or ``lambda_min`` and ``lambda_max``), optionally ``done``, ``x``
        and ``y``.
    threshold : float, default=0.1
        ``|λmin / λmax| < threshold`` counts as convex-looking.
    loss : Surface or array, optional
        The loss on the map's grid: the :class:`~landscape.surface.Surface` the map was
        computed on (its ``train_loss``; unfinished points are unknown, not far) or an array
        of the map's shape. A NaN or infinite loss (diverged) is far above the centre.
    centre_loss : float, optional
        ``L(centre)``; default the loss at the grid point nearest the origin (needs ``x``
        and, in 2D, ``y`` in the map, or a Surface).
    min_points : int, default=:data:`MIN_RATIO_GRID`
        Fewest grid points per axis.
    far_rise : float, default=:data:`FAR_RISE`
        How far above ``L(centre)`` (nats) a point is far above the centre, > 0.

    Returns
    -------
    dict
        ``convex_area_fraction``: fraction of finished finite points below the threshold (NaN
        when there is none, or by the rule above); ``reason``: why it is NaN (``None`` when
        it is a number); ``ratio_at_minimum``: ``|λmin/λmax|`` at the grid point nearest the
        origin (the trained model; NaN if that point is unfinished or ``x`` is missing);
        ``n_points``: finished finite points; ``grid_shape``: the map's shape; ``n_far``:
        of the ``n_points``, those far above the centre (``None`` without ``loss``);
        ``rule``: the rule in words.

    Raises
    ------
    LandscapeError
        If the map holds neither ``ratio`` nor ``lambda_min`` and ``lambda_max``, or ``loss``
        does not match its grid, or ``L(centre)`` cannot be found.

    References
    ----------
    H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of
    neural nets", NeurIPS 2018, section 6.
    """
    threshold = check_float("threshold", threshold, 0.0, closed="neither")
    min_points = check_int("min_points", min_points, 1)
    far_rise = check_float("far_rise", far_rise, 0.0, closed="neither")
    r = _get(ratio_map, "ratio")
    if r is None:
        lmin, lmax = _get(ratio_map, "lambda_min"), _get(ratio_map, "lambda_max")
        if lmin is None or lmax is None:
            raise LandscapeError(
                "the ratio map has no 'ratio' array and no 'lambda_min'/'lambda_max' arrays"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.asarray(lmin, dtype=np.float64) / np.asarray(lmax, dtype=np.float64)
    r = np.abs(np.asarray(r, dtype=np.float64))
    d = _get(ratio_map, "done")
    done = np.ones(r.shape, bool) if d is None else np.asarray(d).astype(bool)
    if done.shape != r.shape:
        raise LandscapeError(
            f"the ratio map's done mask has shape {done.shape}, its ratio {r.shape}"
        )
    ok = done & np.isfinite(r)
    n = int(ok.sum())
    frac = float(np.sum(r[ok] < threshold) / n) if n else float("nan")
    # the grid point nearest the origin
    centre: tuple[int, ...] | None = None
    x, y = _get(ratio_map, "x"), _get(ratio_map, "y")
    if isinstance(loss, Surface):
        x, y = loss.x, loss.y
    if x is not None and r.ndim in (1, 2):
        coords = [np.asarray(x, dtype=np.float64).ravel()]
        if r.ndim == 2 and y is not None:
            coords = [np.asarray(y, dtype=np.float64).ravel(), coords[0]]
        if len(coords) == r.ndim and all(c.size == s for c, s in zip(coords, r.shape,
                                                                       strict=True)):
            centre = tuple(int(np.argmin(np.abs(c))) for c in coords)
    at_min = float(r[centre]) if centre is not None and ok[centre] else float("nan")
    rule = (f"NaN unless every axis has at least {min_points} points and, with the loss "
            f"given, at most half of the points lie more than {far_rise:g} nats above "
            "L(centre)")
    reason = None
    if n == 0:
        reason = "no finished point with a finite ratio"
    elif min(r.shape) < min_points:
        reason = (f"the map's grid {'x'.join(str(v) for v in r.shape[::-1])} is too coarse "
                  f"for an area fraction (at least {min_points} points per axis; only "
                  f"multiples of 1/{r.size} are possible)")
    n_far = None
    if loss is not None:
        if isinstance(loss, Surface):
            lz, known = _values(loss, "train_loss")
        else:
            lz = np.asarray(loss, dtype=np.float64)
            known = np.ones(lz.shape, bool)
        if lz.shape != r.shape:
            raise LandscapeError(
                f"the loss has shape {lz.shape}, the ratio map {r.shape}; pass the loss on "
                "the map's own grid"
            )
        if centre_loss is None:
            if centre is None or not known[centre] or not np.isfinite(lz[centre]):
                raise LandscapeError(
                    "L(centre) is unknown (no finished grid point at the origin); pass "
                    "centre_loss"
                )
            centre_loss = float(lz[centre])
        with np.errstate(invalid="ignore"):  # a diverged (NaN/inf) loss is far
            far = known & ~(lz <= float(centre_loss) + far_rise)
        n_far = int(np.sum(far & ok))
        if reason is None and n_far > n / 2:
            reason = (f"{n_far} of the map's {n} points lie more than {far_rise:g} nats above "
                      f"L(centre) = {float(centre_loss):.6g}: the fraction would describe the "
                      "blow-up far from the minimum (use a smaller grid span)")
    if reason is not None:
        frac = float("nan")
    return {"convex_area_fraction": frac, "reason": reason, "ratio_at_minimum": at_min,
            "n_points": n, "grid_shape": tuple(int(v) for v in r.shape), "n_far": n_far,
            "rule": rule}


# --------------------------------------------------------------------------- trajectories
def low_dimensionality(trajectory: Any) -> dict[str, float | int]:
    """How low-dimensional an optimizer's path is (Li et al. 2018, section 7).

    Parameters
    ----------
    trajectory : Trajectory
        A fitted trajectory (:func:`landscape.trajectory.load_trajectory`).

    Returns
    -------
    dict
        ``pc1`` and ``pc1_pc2`` (fractions of the path's variance along PC1 and PC1+PC2),
        ``n_components_for_90``, ``path_capture`` (fraction of the squared step lengths in
        the PC plane) and ``random_path_capture`` (the same for random directions).

    References
    ----------
    H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the loss landscape of
    neural nets", NeurIPS 2018, section 7 (40-90 % of the variation in two components).
    """
    s = trajectory.summary()
    return {k: s[k] for k in ("pc1", "pc1_pc2", "n_components_for_90", "path_capture",
                              "random_path_capture")}
