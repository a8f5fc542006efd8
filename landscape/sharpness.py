"""Adaptive (scale-invariant) sharpness: worst and average case, l2 and l-infinity, m-sharpness.

The sharpness of Keskar et al. (``metrics.eps_sharpness_ascent``) perturbs inside a box of
side ``eps (|theta| + 1)``; the ``+ 1`` makes it depend on how a ReLU network is parametrised:
rescaling one layer by ``a`` and the next by ``1/a`` leaves the function unchanged but changes the
number. Adaptive sharpness (Kwon et al. 2021; Andriushchenko et al. 2023) measures the
perturbation relative to each weight, ``delta = c * u`` with ``c = |w| + xi``:

- worst case  ``S_max = max_{||u||_p <= rho} L(w + c u) - L(w)``,
- average case ``S_avg = E_{u ~ N(0, rho^2 I)} L(w + c u) - L(w)``,

and for ``xi = 0`` both are invariant to the rescaling above (the perturbed networks compute the
same functions). *m-sharpness* takes the worst case per batch of ``m`` samples and averages over
batches (SAM's quantity; ``m = None`` is the whole data set at once).

Worst case, the ascent (documented schedule): ``u_0`` is the first-order solution
(``rho g/||g||`` for ``p = 2``, ``rho sign(g)`` for ``p = inf``, with ``g = c * grad L(w)``; a
seeded random point of the sphere / a random corner where ``g = 0``), then ``steps`` projected
steps ``u <- P(u + rho g/||g||_2)`` (``p = 2``) or ``u <- clip(u + rho sign(g), -rho, rho)``
(``p = inf``), with ``g`` the gradient at ``u``. Every iterate is feasible, so the reported
value, the largest loss increase over the iterates, is a lower bound of the true maximum,
approached as ``steps`` grows; for ``p = 2`` the iteration is a shifted power iteration on a
quadratic's ``D H D``, which converges at rate ``(1 + lambda_2/lambda_1) / 2``.

For an exactly quadratic loss ``L(w + d) = L(w) + g.d + d.H.d / 2``:
``S_avg = (rho^2 / 2) tr(D H D)`` with ``D = diag(c)``, and at a stationary point
``S_max = (rho^2 / 2) lambda_max(D H D)`` for ``p = 2`` (tested).

References
----------
.. [1] M. Andriushchenko, F. Croce, M. Mueller, M. Hein, N. Flammarion, "A Modern Look at the
   Relationship between Sharpness and Generalization", ICML 2023.
.. [2] J. Kwon, J. Kim, H. Park, I. K. Choi, "ASAM: Adaptive Sharpness-Aware Minimization for
   Scale-Invariant Learning of Deep Neural Networks", ICML 2021.
.. [3] P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for
   Efficiently Improving Generalization", ICLR 2021 (m-sharpness).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._functional import LossSpec, functional_forward, loss_name, resolve_loss
from .errors import LandscapeError, check_float, check_int, check_option

__all__ = ["KINDS", "NORMS", "SharpnessResult", "adaptive_sharpness", "adaptive_sharpness_of"]

KINDS = ("worst", "average")
NORMS = (2, math.inf)

#: A loss over a parameter dict, differentiable in the tensors (the full-data or a batch loss).
LossOfParams = Callable[[Mapping[str, Tensor]], Tensor]


@dataclass(frozen=True)
class SharpnessResult:
    """An adaptive sharpness value with its spread and settings.

    Attributes
    ----------
    value : float
        The sharpness (mean over batches for m-sharpness; the Monte-Carlo mean for ``average``):
        an absolute loss rise ``L(w + delta) - L(w)`` in the loss's units (nats), not divided
        by ``1 + L(w)`` as Keskar's ε-sharpness is (for that one's absolute rise see
        ``metrics.eps_sharpness_ascent(..., details=True)["rise"]``).
    stderr : float
        Standard error of ``value``: over batches (m-sharpness), over Gaussian samples
        (``average``); ``nan`` for one full-data worst case.
    base_loss : float
        ``L(w)`` (mean over batches for m-sharpness).
    kind : {"worst", "average"}
    p : float
        2 or inf.
    rho, xi : float
        Radius and offset of ``c = |w| + xi``.
    n_evals : int
        Loss (or loss-and-gradient) evaluations used.
    recipe : dict
        The settings, JSON-ready.
    """

    value: float
    stderr: float
    base_loss: float
    kind: str
    p: float
    rho: float
    xi: float
    n_evals: int
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def log_value(self) -> float:
        """``log(value)`` (``nan`` where the value is not positive), as the papers plot it."""
        return math.log(self.value) if self.value > 0 else math.nan


def _check(kind: str, p: float, rho: float, xi: float, steps: int, samples: int
           ) -> tuple[str, float, float, float, int, int]:
    check_option("kind", kind, KINDS)
    if p not in NORMS:
        raise LandscapeError(f"The 'p' parameter must be 2 or inf. Got {p!r} instead.")
    rho = check_float("rho", rho, 0.0, closed="neither")
    xi = check_float("xi", xi, 0.0)
    steps = check_int("steps", steps, 0)
    samples = check_int("samples", samples, 1)
    return kind, float(p), rho, xi, steps, samples


def _flat_norm(t: Mapping[str, Tensor], p: float) -> float:
    vals = [v.abs().max() if p == math.inf else v.pow(2).sum() for v in t.values()]
    if not vals:
        return 0.0
    total = torch.stack(vals).max() if p == math.inf else torch.stack(vals).sum().sqrt()
    return float(total)


def _project(u: dict[str, Tensor], p: float, rho: float) -> dict[str, Tensor]:
    if p == math.inf:
        return {k: v.clamp(-rho, rho) for k, v in u.items()}
    norm = _flat_norm(u, 2)
    return u if norm <= rho else {k: v * (rho / norm) for k, v in u.items()}


def _step(g: dict[str, Tensor], p: float, rho: float, gen: torch.Generator
          ) -> dict[str, Tensor]:
    """``rho g/||g||_2`` or ``rho sign(g)``; a seeded random one where ``g == 0``."""
    norm = _flat_norm(g, 2)
    if norm == 0.0:
        g = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype).to(v.device)
             for k, v in g.items()}
        norm = _flat_norm(g, 2)
    if p == math.inf:
        return {k: rho * torch.sign(v) for k, v in g.items()}
    return {k: v * (rho / norm) for k, v in g.items()}


def _worst(loss_of: LossOfParams, w: dict[str, Tensor], c: dict[str, Tensor], p: float,
           rho: float, steps: int, gen: torch.Generator) -> tuple[float, float, int]:
    """``(max increase over the iterates, L(w), evaluations)`` of the projected ascent."""
    names = list(w)

    def value_and_grad(u: dict[str, Tensor] | None) -> tuple[float, dict[str, Tensor]]:
        leaves = {k: (w[k] + c[k] * u[k] if u is not None else w[k]).detach()
                  .requires_grad_(True) for k in names}
        val = loss_of(leaves)
        grads = torch.autograd.grad(val, [leaves[k] for k in names], allow_unused=True)
        g = {k: (gk if gk is not None else torch.zeros_like(w[k])) * c[k]
             for k, gk in zip(names, grads, strict=True)}
        return float(val.detach().double()), g

    base, g = value_and_grad(None)
    u = _project(_step(g, p, rho, gen), p, rho)
    best = -math.inf
    n = 1
    for t in range(steps + 1):
        val, g = value_and_grad(u)
        n += 1
        best = max(best, val - base)
        if t == steps:
            break
        u = _project({k: u[k] + s for k, s in _step(g, p, rho, gen).items()}, p, rho)
    return best, base, n


def _average(loss_of: LossOfParams, w: dict[str, Tensor], c: dict[str, Tensor], rho: float,
             samples: int, gen: torch.Generator) -> tuple[np.ndarray, float, int]:
    with torch.no_grad():
        base = float(loss_of(w).double())
        incs = []
        for _ in range(samples):
            pert = {k: w[k] + c[k] * rho * torch.randn(w[k].shape, generator=gen,
                                                       dtype=w[k].dtype).to(w[k].device)
                    for k in w}
            incs.append(float(loss_of(pert).double()) - base)
    return np.asarray(incs), base, samples + 1


def adaptive_sharpness_of(
    loss_of: LossOfParams | list[LossOfParams],
    params: Mapping[str, Tensor],
    *,
    rho: float,
    p: float = 2,
    kind: str = "worst",
    xi: float = 0.0,
    steps: int = 20,
    samples: int = 100,
    seed: int = 0,
) -> SharpnessResult:
    """Adaptive sharpness of a loss given as a function of a parameter dict (pure core).

    Parameters
    ----------
    loss_of : callable or list of callables
        ``loss_of(params) -> scalar tensor``, differentiable in the tensors; a list holds one
        loss per batch (m-sharpness: the sharpness of each, averaged).
    params : dict[str, Tensor]
        The point ``w`` (not modified).
    rho : float
        Radius of the ball in the scaled coordinates ``u = delta / c``.
    p : {2, inf}, default 2
        The ball's norm (the average case always draws Gaussian ``u``).
    kind : {"worst", "average"}, default "worst"
    xi : float, default 0
        Offset of ``c = |w| + xi`` (0 keeps the invariance).
    steps : int, default 20
        Ascent steps of the worst case (see the module docstring).
    samples : int, default 100
        Gaussian samples of the average case.
    seed : int, default 0
        Seed of the random draws.

    Returns
    -------
    SharpnessResult
    """
    kind, p, rho, xi, steps, samples = _check(kind, p, rho, xi, steps, samples)
    fns = loss_of if isinstance(loss_of, list) else [loss_of]
    if not fns:
        raise LandscapeError("adaptive sharpness needs at least one loss (batch)")
    w = {k: v.detach() for k, v in params.items() if v.is_floating_point()}
    if not w:
        raise LandscapeError("adaptive sharpness needs floating-point parameters")
    c = {k: v.abs() + xi for k, v in w.items()}
    gen = torch.Generator().manual_seed(seed)
    values, bases, n_evals = [], [], 0
    mc: np.ndarray | None = None
    for fn in fns:
        if kind == "worst":
            v, b, n = _worst(fn, w, c, p, rho, steps, gen)
        else:
            incs, b, n = _average(fn, w, c, rho, samples, gen)
            v = float(incs.mean())
            mc = incs if mc is None else np.concatenate([mc, incs])
        values.append(v)
        bases.append(b)
        n_evals += n
    arr = np.asarray(values)
    if len(arr) > 1:
        stderr = float(arr.std(ddof=1) / math.sqrt(len(arr)))
    elif kind == "average" and mc is not None and len(mc) > 1:
        stderr = float(mc.std(ddof=1) / math.sqrt(len(mc)))
    else:
        stderr = math.nan
    recipe = {"kind": kind, "p": "inf" if p == math.inf else 2, "rho": rho, "xi": xi,
              "steps": steps if kind == "worst" else None,
              "samples": samples if kind == "average" else None, "seed": seed,
              "n_batches": len(fns), "schedule": "first-order start, projected steps of rho"}
    return SharpnessResult(value=float(arr.mean()), stderr=stderr,
                           base_loss=float(np.mean(bases)), kind=kind, p=p, rho=rho, xi=xi,
                           n_evals=n_evals, recipe=recipe)


def _xy(data: Any) -> tuple[Tensor, Tensor]:
    if hasattr(data, "x") and hasattr(data, "y"):
        return data.x, data.y
    if isinstance(data, tuple | list) and len(data) == 2:
        return data[0], data[1]
    raise LandscapeError(
        f"The 'data' parameter must have .x and .y or be a pair (x, y). Got "
        f"{type(data).__name__}."
    )


def adaptive_sharpness(
    model: nn.Module,
    data: Any,
    *,
    rho: float,
    p: float = 2,
    kind: str = "worst",
    xi: float = 0.0,
    steps: int = 20,
    samples: int = 100,
    m: int | None = None,
    batch_size: int = 1024,
    loss: LossSpec = "cross_entropy",
    seed: int = 0,
) -> SharpnessResult:
    """Adaptive sharpness of a model's data-set loss (see the module docstring).

    Every floating-point parameter is perturbed (``c = |w| + xi`` element-wise); the model is
    evaluated in eval mode (BatchNorm uses its running statistics) and not modified.

    Parameters
    ----------
    model : nn.Module
    data : object with ``.x`` and ``.y``, or a pair ``(x, y)``
    rho, p, kind, xi, steps, samples, seed
        As for :func:`adaptive_sharpness_of`.
    m : int, optional
        m-sharpness: the samples are split (seeded permutation) into batches of ``m`` and the
        sharpness of each batch's loss is averaged; ``None``: the whole data set at once.
    batch_size : int, default 1024
        Samples per forward pass of a loss evaluation (results do not depend on it).
    loss : str or callable, default "cross_entropy"

    Returns
    -------
    SharpnessResult
        Its recipe adds ``m``, ``loss`` and ``n_samples``.
    """
    x, y = _xy(data)
    n = int(x.shape[0])
    if n == 0:
        raise LandscapeError("adaptive sharpness needs at least one sample")
    batch_size = check_int("batch_size", batch_size, 1)
    if m is not None:
        m = check_int("m", m, 1, n)
    batch_loss = resolve_loss(loss)
    was_training = model.training
    model.eval()

    def loss_over(idx: Tensor) -> LossOfParams:
        def fn(params: Mapping[str, Tensor]) -> Tensor:
            total, weight = None, 0.0
            for s in range(0, len(idx), batch_size):
                j = idx[s:s + batch_size]
                out = functional_forward(model, params, x[j])
                t = batch_loss.terms(out, (x[j], y[j]))
                total = t.total if total is None else total + t.total
                weight += float(t.weight)
            return total / weight  # type: ignore[operator]
        return fn

    if m is None:
        fns: list[LossOfParams] = [loss_over(torch.arange(n))]
    else:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        fns = [loss_over(perm[s:s + m]) for s in range(0, n - m + 1, m)]
    params = dict(model.named_parameters())
    try:
        res = adaptive_sharpness_of(fns, params, rho=rho, p=p, kind=kind, xi=xi, steps=steps,
                                    samples=samples, seed=seed)
    finally:
        model.train(was_training)
    recipe = {**res.recipe, "m": m, "loss": loss_name(loss), "n_samples": n}
    return SharpnessResult(**{**res.__dict__, "recipe": recipe})
