"""Spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

From a random unit vector ``v``, ``m`` Lanczos steps give a tridiagonal ``T = U Theta U^T``;
the Ritz values ``theta_k`` with weights ``tau_k = U_{0k}^2`` form an ``m``-node Gauss
quadrature of the spectral measure ``sum_i (v^T u_i)^2 delta(t - lambda_i)``, whose
expectation over ``v`` is the eigenvalue density ``(1/n) sum_i delta(t - lambda_i)``. Averaging
over runs and smoothing each node with a Gaussian gives the density plot of Ghorbani et al.;
``n * sum_k tau_k theta_k = n v^T H v`` is a Hutchinson trace sample.

The Lanczos runs here re-orthogonalise fully (so no ghost eigenvalues), run in lockstep so
each step applies the operator to one block of ``n_runs`` vectors, and stop a run early when
its Krylov space becomes invariant (``beta ~ 0``): its quadrature is then exact and shorter.

References
----------
.. [1] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
   quadrature", SIAM J. Matrix Anal. Appl. 38(4), 2017.
.. [2] B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
   Hessian eigenvalue density", ICML 2019.
.. [3] G. H. Golub, G. Meurant, "Matrices, Moments and Quadrature with Applications",
   Princeton University Press, 2010.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch

from ..errors import LandscapeError, check_float, check_int
from ._linalg import SolverMatmul

__all__ = ["SpectralDensity", "slq"]


@dataclass(frozen=True)
class SpectralDensity:
    """Quadrature nodes and weights of a stochastic Lanczos quadrature.

    Attributes
    ----------
    nodes : np.ndarray, shape (runs, m)
        Ritz values of each run, ascending. A run that stopped early (invariant Krylov space)
        is padded by repeating its largest node with weight 0.
    weights : np.ndarray, shape (runs, m)
        Quadrature weights ``tau_k``; each row sums to 1.
    n_params : int
        Dimension ``n`` of the operator.
    n_hvp : int
        Operator-vector products used.
    """

    nodes: np.ndarray
    weights: np.ndarray
    n_params: int
    n_hvp: int

    @property
    def n_runs(self) -> int:
        """Number of independent runs."""
        return int(self.nodes.shape[0])

    def top(self) -> float:
        """Largest Ritz value over all runs (converges to ``lambda_max`` quickly)."""
        return float(np.max(self.nodes[self.weights > 0]))

    def bottom(self) -> float:
        """Smallest Ritz value over all runs."""
        return float(np.min(self.nodes[self.weights > 0]))

    def trace_estimate(self) -> float:
        """``n * mean over runs of sum_k tau_k theta_k`` (a Hutchinson estimate of ``tr H``)."""
        return float(self.n_params * np.mean(np.sum(self.weights * self.nodes, axis=1)))

    def trace_stderr(self) -> float:
        """Standard error of :meth:`trace_estimate` over runs (``nan`` for one run)."""
        per_run = self.n_params * np.sum(self.weights * self.nodes, axis=1)
        if len(per_run) < 2:
            return math.nan
        return float(np.std(per_run, ddof=1) / math.sqrt(len(per_run)))

    def density(
        self,
        grid: np.ndarray | None = None,
        sigma: float | None = None,
        n_points: int = 500,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian-smoothed eigenvalue density on a grid.

        Parameters
        ----------
        grid : np.ndarray, optional
            Increasing points at which to evaluate; default ``n_points`` points from
            ``bottom() - 5 sigma`` to ``top() + 5 sigma``.
        sigma : float, optional
            Kernel width; default 1% of ``top() - bottom()`` (1 if that range is 0).
        n_points : int, default 500
            Size of the default grid.

        Returns
        -------
        grid, values : np.ndarray
            ``values`` is ``mean over runs of sum_k tau_k N(t; theta_k, sigma^2)``, rescaled so
            that its trapezoidal integral over ``grid`` is 1.

        References
        ----------
        .. [1] B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net
           optimization via Hessian eigenvalue density", ICML 2019.
        """
        lo, hi = self.bottom(), self.top()
        if sigma is None:
            sigma = (hi - lo) / 100 if hi > lo else 1.0
        sigma = check_float("sigma", sigma, 0.0, closed="neither")
        if grid is None:
            n_points = check_int("n_points", n_points, 2)
            grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_points)
        grid = np.asarray(grid, dtype=np.float64)
        if grid.ndim != 1 or len(grid) < 2 or np.any(np.diff(grid) <= 0):
            raise LandscapeError(
                "The 'grid' parameter must be a 1-D increasing array of at least 2 points."
            )
        nodes = self.nodes.reshape(-1)
        weights = self.weights.reshape(-1) / self.n_runs
        keep = weights > 0
        z = (grid[:, None] - nodes[None, keep]) / sigma
        values = np.exp(-0.5 * z**2) @ weights[keep] / (sigma * math.sqrt(2 * math.pi))
        area = float(np.sum((values[1:] + values[:-1]) * np.diff(grid)) / 2)
        if area <= 0:
            raise LandscapeError(
                "The density is zero on the whole grid; widen the grid or increase sigma."
            )
        return grid, values / area


def slq(op: Any, n_steps: int = 80, n_runs: int = 5, *, seed: int | None = 0,
        solver_dtype: torch.dtype | None = None) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the spectrum of a symmetric operator.

    Parameters
    ----------
    op : object with ``@`` and ``.shape``
        Square symmetric operator (``HessianOperator``, dense tensor or array, ...).
    n_steps : int, default 80
        Lanczos steps per run ``m`` (capped at ``n``).
    n_runs : int, default 5
        Independent runs, each from a random-sign unit vector. Runs advance in lockstep, so
        each step is one ``op @ block`` with ``n_runs`` columns.
    seed : int or None, default 0
        Seed of the start vectors.
    solver_dtype : torch.dtype, optional
        Dtype of the Lanczos vectors, on the operator's device (default float64).

    Returns
    -------
    SpectralDensity

    Notes
    -----
    Memory: ``n_runs * n_steps`` vectors of length ``n`` (in the solver dtype, on the
    operator's device) are kept for full re-orthogonalisation; per step and run two scalars
    (``alpha``, ``beta``) go to the host, where the tridiagonal matrices are diagonalised.

    References
    ----------
    .. [1] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
       quadrature", SIAM J. Matrix Anal. Appl., 2017.
    .. [2] B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization
       via Hessian eigenvalue density", ICML 2019.

    Examples
    --------
    >>> sd = slq(HessianOperator(model, data, dtype=torch.float64), n_steps=80, n_runs=5)
    >>> grid, values = sd.density()
    """
    apply = SolverMatmul(op, solver_dtype)
    n_steps = check_int("n_steps", n_steps, 1)
    n_runs = check_int("n_runs", n_runs, 1)
    if seed is not None:
        seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    n = apply.n
    m = min(n_steps, n)

    # (runs, m, n): each run's basis vectors are contiguous rows on the operator's device
    Q = torch.zeros((n_runs, m, n), dtype=apply.dtype, device=apply.device)
    alpha = np.zeros((n_runs, m))
    beta = np.zeros((n_runs, m))
    length = np.full(n_runs, m)
    Q[:, 0] = apply.tensor((rng.integers(0, 2, size=(n_runs, n)) * 2.0 - 1.0) / math.sqrt(n))
    active = list(range(n_runs))
    for j in range(m):
        if not active:
            break
        W = apply(torch.stack([Q[r, j] for r in active], dim=1))
        still: list[int] = []
        for col, r in enumerate(active):
            w = W[:, col]
            a_t = Q[r, j] @ w
            w = w - a_t * Q[r, j]
            if j > 0:
                w = w - beta[r, j - 1] * Q[r, j - 1]
            basis = Q[r, : j + 1]
            for _ in range(2):  # full re-orthogonalisation
                w = w - basis.T @ (basis @ w)
            a, b = apply.to_host(torch.stack([a_t, torch.linalg.vector_norm(w)]))
            alpha[r, j] = a
            scale = max(np.max(np.abs(alpha[r, : j + 1])), np.max(beta[r, :j], initial=0.0))
            if j == m - 1:
                continue
            if b <= 1e-10 * max(scale, np.finfo(float).tiny):
                length[r] = j + 1  # invariant subspace: the quadrature is exact
                continue
            beta[r, j] = b
            Q[r, j + 1] = w / b
            still.append(r)
        active = still

    nodes = np.zeros((n_runs, m))
    weights = np.zeros((n_runs, m))
    for r in range(n_runs):
        L = int(length[r])
        if L == 1:
            theta, U = alpha[r, :1], np.ones((1, 1))
        else:
            theta, U = scipy.linalg.eigh_tridiagonal(alpha[r, :L], beta[r, : L - 1])
        nodes[r, :L] = theta
        nodes[r, L:] = theta[-1]
        weights[r, :L] = U[0, :] ** 2
    weights /= weights.sum(axis=1, keepdims=True)
    return SpectralDensity(nodes=nodes, weights=weights, n_params=n, n_hvp=apply.n_matvecs)
