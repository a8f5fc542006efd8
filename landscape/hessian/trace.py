"""Randomised trace estimators: Hutchinson and Hutch++.

Both take any square operator with ``@`` (a vector ``(n,)`` or a block ``(n, k)``) and
``.shape`` -- a :class:`~landscape.hessian.HessianOperator`, a dense tensor such as
``torch.diag(d)``, a NumPy array -- and apply it to blocks of random sign vectors. The blocks,
the sketch ``Q`` and the accumulations are torch tensors on the operator's device (float64 by
default, ``solver_dtype``); the signs are drawn on the host from a seeded NumPy generator
(the same probes on every device) and moved once per block.

Hutchinson's estimator ``(1/m) sum_i z_i^T H z_i`` has variance
``(2/m) sum_{i != j} H_ij^2`` for Rademacher ``z`` (exact on diagonal matrices); its relative
error falls as ``1/sqrt(m)``. Hutch++ spends a third of its products on a sketch ``Q`` of the
dominant range of ``H``, computes ``tr(Q^T H Q)`` exactly, and runs Hutchinson on the deflated
rest, whose Frobenius norm is small when the spectrum decays -- error ``O(1/m)``. Hessian
spectra of trained networks (a few large outliers over a bulk near zero) are the favourable
case. Measured on the 5,962-parameter digits MLP of ``benchmarks/bench_hessian.py`` at 99
products over 10 seeds: Hutch++ 0.77% mean (1.3% max) relative error, Hutchinson 4.3% (7.6%),
PyHessian's Hutchinson loop at its defaults 5.2% (15%) with 33 products on average.

References
----------
.. [1] M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for
   Laplacian smoothing splines", Comm. Statist. Simulation Comput. 18(3), 1989.
.. [2] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
   estimation", SOSA 2021.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import check_float, check_int
from ._linalg import SolverMatmul

__all__ = ["TraceResult", "hutchinson", "hutchpp"]


@dataclass(frozen=True)
class TraceResult:
    """A stochastic trace estimate.

    Attributes
    ----------
    estimate : float
        The trace estimate (the mean of ``samples``).
    stderr : float
        Standard error of the estimate, ``std(samples, ddof=1) / sqrt(len(samples))``
        (``nan`` with fewer than two samples).
    n_hvp : int
        Operator-vector products used.
    samples : np.ndarray
        The independent per-vector estimates whose mean is ``estimate``. For Hutch++ each is
        ``tr(Q^T H Q) + g_i^T (I - QQ^T) H (I - QQ^T) g_i``.
    method : str
        ``"hutchinson"`` or ``"hutch++"``.
    """

    estimate: float
    stderr: float
    n_hvp: int
    samples: np.ndarray
    method: str = "hutchinson"

    @property
    def relative_stderr(self) -> float:
        """``stderr / |estimate|`` (``inf`` for a zero estimate)."""
        return self.stderr / abs(self.estimate) if self.estimate != 0 else math.inf


def _stderr(samples: np.ndarray) -> float:
    if len(samples) < 2:
        return math.nan
    return float(np.std(samples, ddof=1) / math.sqrt(len(samples)))


def hutchinson(
    op: Any,
    n_samples: int = 100,
    *,
    tol: float | None = None,
    seed: int | None = 0,
    block_size: int = 10,
    solver_dtype: torch.dtype | None = None,
) -> TraceResult:
    """Hutchinson's trace estimate with Rademacher vectors.

    Parameters
    ----------
    op : object with ``@`` and ``.shape``
        Square operator (``HessianOperator``, dense tensor or array, ...).
    n_samples : int, default 100
        Largest number of random vectors (= products).
    tol : float, optional
        Stop early once ``stderr / |estimate| < tol``, checked after each block once at least
        10 samples are in. Default: use all ``n_samples``.
    seed : int or None, default 0
        Seed of the random signs.
    block_size : int, default 10
        Vectors applied per ``op @ block`` call (and the early-stopping granularity).
    solver_dtype : torch.dtype, optional
        Dtype of the probe blocks and the accumulation, on the operator's device (float64 by
        default; see :data:`~landscape.hessian._linalg.SOLVER_DTYPES`).

    Returns
    -------
    TraceResult

    References
    ----------
    .. [1] M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for
       Laplacian smoothing splines", 1989.

    Examples
    --------
    >>> hutchinson(torch.diag(torch.arange(1.0, 11.0)), 20).estimate   # exact on diagonals
    55.0
    """
    apply = SolverMatmul(op, solver_dtype)
    n_samples = check_int("n_samples", n_samples, 1)
    block_size = check_int("block_size", block_size, 1)
    if tol is not None:
        tol = check_float("tol", tol, 0.0, closed="neither")
    if seed is not None:
        seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    samples: list[float] = []
    while len(samples) < n_samples:
        k = min(block_size, n_samples - len(samples))
        Z = apply.rademacher(rng, apply.n, k)
        samples.extend(apply.to_host((Z * apply(Z)).sum(dim=0)).tolist())
        if tol is not None and len(samples) >= min(10, n_samples) and len(samples) >= 2:
            arr = np.asarray(samples)
            est = float(arr.mean())
            if est != 0 and _stderr(arr) / abs(est) < tol:
                break
    arr = np.asarray(samples, dtype=np.float64)
    return TraceResult(float(arr.mean()), _stderr(arr), apply.n_matvecs, arr, "hutchinson")


def hutchpp(op: Any, n_matvecs: int = 99, *, seed: int | None = 0,
            solver_dtype: torch.dtype | None = None) -> TraceResult:
    """Hutch++ trace estimate (low-rank deflation plus Hutchinson on the rest).

    With ``m = n_matvecs``: ``S`` has ``r = m // 3`` random-sign columns, ``Q = orth(H S)``;
    the estimate is ``tr(Q^T H Q) + (1/g) sum_i g_i^T (I - QQ^T) H (I - QQ^T) g_i`` with
    ``g = m - 2r`` random-sign vectors ``g_i``. Uses exactly ``m`` products (``r`` is capped
    at ``n``).

    Parameters
    ----------
    op : object with ``@`` and ``.shape``
        Square symmetric operator.
    n_matvecs : int, default 99
        Total products, at least 3.
    seed : int or None, default 0
        Seed of the random signs.
    solver_dtype : torch.dtype, optional
        Dtype of the sketch, the probes and the accumulation, on the operator's device
        (float64 by default).

    Returns
    -------
    TraceResult
        ``stderr`` is the standard error of the Hutchinson part on the deflated residual
        (the exact part ``tr(Q^T H Q)`` has none); ``nan`` when ``g < 2``.

    References
    ----------
    .. [1] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
       estimation", SOSA 2021.
    """
    apply = SolverMatmul(op, solver_dtype)
    m = check_int("n_matvecs", n_matvecs, 3)
    if seed is not None:
        seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    n = apply.n
    r = min(m // 3, n)
    g = m - 2 * r
    S = apply.rademacher(rng, n, r)
    Q = torch.linalg.qr(apply(S)).Q
    exact = float((Q * apply(Q)).sum())
    G = apply.rademacher(rng, n, g)
    G = G - Q @ (Q.T @ G)
    G = G - Q @ (Q.T @ G)
    samples = exact + apply.to_host((G * apply(G)).sum(dim=0))
    return TraceResult(float(samples.mean()), _stderr(samples), apply.n_matvecs, samples, "hutch++")
