"""Extreme eigenpairs of a symmetric operator: Lanczos with full re-orthogonalisation.

:func:`top_eigen` runs thick-restart Lanczos (Wu & Simon 2000) with full re-orthogonalisation
(classical Gram-Schmidt, with the DGKS second pass where cancellation asks for it, as in ARPACK) on
any symmetric operator with ``@`` and ``.shape``. It keeps the operator's outputs ``W = H V`` next
to the orthonormal basis ``V``, so the residual of every Ritz pair, ``||H y - theta y|| = ||W s -
theta V s||``, is computed from products that were really made -- no extra products, no reliance on
the Lanczos recurrence's own estimate -- and it stops when every wanted pair has ``||H y - theta y||
<= max(tol * |theta|, atol)``.

The smallest eigenvalue (:func:`min_eigen`, :func:`extreme_pairs`) has its own criterion,
relative to *itself* with an absolute floor for eigenvalues at zero:
``||H y - theta y|| <= max(tol * |theta|, min(tol, MIN_FLOOR) * ||H||)`` (:data:`MIN_FLOOR`
= 1e-6). A tolerance relative to ``lambda_max`` lets a Ritz value inside the cluster of
near-zero eigenvalues of a trained network pass for ``lambda_min``. Its default basis is
larger (:data:`MIN_NCV`), because restarts are what make it expensive.

Where the numbers live: the basis ``V`` and the products ``W`` are ``(ncv, n)`` torch tensors
on the operator's device in the solver dtype (float64 by default, whatever the dtype of the
HVPs; ``solver_dtype=torch.float32`` halves their memory). Per Lanczos step only ``j``
inner products and two norms come to the host, where SciPy diagonalises the ``j x j``
projected matrix; Ritz vectors and residuals are formed on the device. ARPACK
(``solver="arpack"``) works on the host in float64 (one round trip per product).

Why not ARPACK? ``solver="arpack"`` runs :func:`scipy.sparse.linalg.eigsh` (implicitly
restarted Lanczos) instead. Measured on a 5,962-parameter MLP trained on digits
(``benchmarks/bench_hessian.py``, 4 seeds), top-5 eigenpairs: own Lanczos 13-14 products at
``tol=1e-3``, 16 at ``1e-6``, 19-20 at ``1e-10``; ``eigsh`` 26 at every tol (its first
Lanczos factorisation alone takes ``ncv = 20`` steps; 5 of the 26 verify its residuals) and
18-29 with ``ncv=12``. Own Lanczos is the default.

Without re-orthogonalisation Lanczos returns "ghost" copies of converged eigenvalues that look
converged; with it (and the residuals from real products) that cannot happen.

References
----------
.. [1] C. Lanczos, "An iteration method for the solution of the eigenvalue problem of linear
   differential and integral operators", J. Res. Nat. Bur. Standards 45, 1950.
.. [2] K. Wu, H. Simon, "Thick-restart Lanczos method for large symmetric eigenvalue
   problems", SIAM J. Matrix Anal. Appl. 22(2), 2000.
.. [3] R. B. Lehoucq, D. C. Sorensen, C. Yang, "ARPACK Users' Guide", SIAM, 1998.
.. [4] Z. Yao, A. Gholami, K. Keutzer, M. Mahoney, "PyHessian: Neural networks through the lens
   of the Hessian", IEEE BigData 2020 (power iteration with deflation, the baseline).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor

from ..errors import LandscapeError, check_float, check_int, check_option
from ._linalg import SolverMatmul

__all__ = ["EigenResult", "top_eigen", "min_eigen", "eigen_ratio", "extreme_pairs", "default_ncv"]

#: Public orders of :func:`top_eigen`; :func:`extreme_pairs` uses the internal order "BE" (both
#: ends, alternating from the largest), which only makes sense for k = 2.
WHICH = ("LM", "LA", "SA")
SOLVERS = ("lanczos", "arpack")

#: Largest default Krylov basis of the smallest-eigenvalue solves (``which="SA"``,
#: :func:`min_eigen`, and :func:`extreme_pairs`). lambda_min of a trained network sits at the
#: edge of a dense cluster of near-zero eigenvalues, where restarts are expensive: measured on
#: the digits MLP of ``benchmarks/bench_min_eigen.py`` (6,634 parameters, lambda_min = -0.0056
#: next to -0.0053, -0.0051, ...; 3 seeds, tol 1e-3): 201-244 HVPs at ncv 20, 94-114 at 40,
#: 64-75 at 60, 64-68 at 100; hessian-eigenthings 1.0 needs 100 Lanczos iterations for the
#: same accuracy (5e-7 to 8e-5 relative) on the same matrix.
MIN_NCV = 60

#: Memory (bytes) the default basis of a smallest-eigenvalue solve may take: ``ncv`` is
#: lowered (to no less than 20, today's top-k default) so that the ``2 ncv`` stored vectors
#: (basis and products) fit; 60 vectors pairs fit up to n = 4.4M parameters in float64.
BASIS_BUDGET = 4 * 2**30


def default_ncv(k: int, which: str, n: int, itemsize: int = 8) -> int:
    """Default basis size: ``max(2k + 1, 20)``; for the smallest end up to :data:`MIN_NCV`."""
    base = max(2 * k + 1, 20)
    if which in ("SA", "BE"):
        fit = BASIS_BUDGET // (2 * max(n, 1) * itemsize)
        return max(base, min(MIN_NCV, fit))
    return base


def _keep(ncv: int, k: int, which: str) -> int:
    """Ritz vectors kept at a thick restart.

    Top-k: ``k + (ncv - k) / 2``. Smallest end: ``ncv / 4`` -- a restart that keeps fewer
    vectors leaves more room for new Krylov directions, which the slowly separating smallest
    eigenvalue needs (measured as for :data:`MIN_NCV`, ncv 20: 166-191 HVPs keeping 5 against
    201-244 keeping 10; 15: 254-307).
    """
    if which in ("SA", "BE"):
        return min(ncv - 1, max(k + 1, ncv // 4))
    return min(ncv - 1, k + max(1, (ncv - k) // 2))

#: Absolute floor of the residual criterion of the smallest eigenvalue (:func:`min_eigen`,
#: :func:`extreme_pairs`), in units of ``||H||``: a pair is resolved when ``||H v - lambda v||
#: <= max(tol |lambda|, min(tol, MIN_FLOOR) ||H||)``. The floor only matters for eigenvalues
#: within ``MIN_FLOOR / tol`` of zero relative to ``||H||``; it lies well above the rounding of
#: float32 HVPs (measured ``||H_32 v - H_64 v|| / lambda_max`` = 7e-9 on the digits MLP, 2e-9
#: on ResNet-20), so it is reachable in both precisions.
MIN_FLOOR = 1e-6


@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs of a symmetric operator.

    Attributes
    ----------
    eigenvalues : np.ndarray, shape (k,)
        In ``which`` order: decreasing ``|lambda|`` for ``"LM"``, decreasing for ``"LA"``,
        increasing for ``"SA"``.
    eigenvectors : np.ndarray, shape (n, k), float64
        Unit eigenvectors, column ``i`` for ``eigenvalues[i]``.
    residuals : np.ndarray, shape (k,)
        ``||H v_i - lambda_i v_i||`` computed from operator products.
    n_hvp : int
        Operator-vector products used.
    converged : np.ndarray of bool, shape (k,)
        Whether each pair met the tolerance: ``residuals <= thresholds``.
    which : str
        The ``which`` the pairs were computed for.
    thresholds : np.ndarray, shape (k,), optional
        The residual bound each pair had to meet (``max(tol |lambda|, atol,
        scale_atol ||H||)`` at the last check); also a bound on the error of its eigenvalue.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    n_hvp: int
    converged: np.ndarray
    which: str = "LM"
    thresholds: np.ndarray | None = None

    @property
    def all_converged(self) -> bool:
        """Whether every pair met the tolerance."""
        return bool(np.all(self.converged))

    def as_dicts(self, op: Any) -> list[dict[str, Tensor]]:
        """Eigenvectors as ``name -> tensor`` dicts (usable as surface directions).

        Parameters
        ----------
        op : CurvatureOperator
            The operator the eigenvectors came from (it knows the names, shapes, dtype).
        """
        if not hasattr(op, "unflatten"):
            raise LandscapeError(
                "as_dicts needs the HessianOperator the eigenvectors came from (it has "
                f".unflatten); got {type(op).__name__}."
            )
        out = []
        for col in np.asarray(self.eigenvectors).T:
            flat = torch.as_tensor(np.ascontiguousarray(col)).to(dtype=op.dtype, device=op.device)
            out.append({k: t.clone() for k, t in op.unflatten(flat).items()})
        return out


def _order(theta: np.ndarray, which: str) -> np.ndarray:
    """Indices of ``theta`` from most to least wanted."""
    if which == "LM":
        return np.argsort(-np.abs(theta), kind="stable")
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "SA":
        return np.argsort(theta, kind="stable")
    # "BE": alternate between the two ends, largest first
    asc = np.argsort(theta, kind="stable")
    out: list[int] = []
    lo, hi = 0, len(theta) - 1
    while lo <= hi:
        out.append(int(asc[hi]))
        hi -= 1
        if lo <= hi:
            out.append(int(asc[lo]))
            lo += 1
    return np.asarray(out, dtype=int)


def _sort_result(theta: np.ndarray, which: str) -> np.ndarray:
    if which == "BE":
        return np.argsort(-theta, kind="stable")
    return _order(theta, which)


#: Kahan-Parlett / DGKS test of the Gram-Schmidt step (Daniel, Gragg, Kaufman & Stewart 1976;
#: ARPACK's 0.717): after one classical pass, ``r = w - V V'w`` is orthogonal to ``V`` to
#: working precision unless cancellation shrank it, ``||r|| < DGKS * ||w||``; only then is a
#: second pass made ("twice is enough"). Measured on ResNet-20 (top-5, digits): about half
#: of the steps need none.
DGKS = 1 / np.sqrt(2)


def _orthonormalise(v: Tensor, V: Tensor, passes: int = 2) -> tuple[Tensor, float]:
    """Remove the span of the rows of ``V`` from ``v`` (``passes`` times, in place when ``v``
    is a work buffer); ``(v, ||v||)``."""
    for _ in range(passes):
        if V.shape[0]:
            v = v.addmv_(V.T, V @ v, alpha=-1)
    return v, float(torch.linalg.vector_norm(v))


def _residual_norms(St: Tensor, theta: Tensor, V: Tensor, W: Tensor,
                    block: int = 8192) -> Tensor:
    """``||W' s_i - theta_i V' s_i||`` for the rows ``s_i`` of ``St``, column block by column
    block (no ``(k, n)`` temporary besides one block's)."""
    sq = torch.zeros(St.shape[0], dtype=St.dtype, device=St.device)
    for lo in range(0, V.shape[1], block):
        R = St @ W[:, lo:lo + block]
        R.addcmul_(St @ V[:, lo:lo + block], theta[:, None], value=-1)
        sq += R.square().sum(dim=1)
    return sq.sqrt()


def _combine(S: Tensor, X: Tensor, block: int = 8192) -> None:
    """``X[:m] = S @ X[:j]`` in place for ``S`` of shape ``(m, j)``, ``m <= j``, column block
    by column block (no ``(m, n)`` temporary: a block's result is small and reused)."""
    m, j = S.shape
    for lo in range(0, X.shape[1], block):
        blk = X[:, lo:lo + block]
        blk[:m] = S @ blk[:j]


def _start_vector(v0: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    if v0 is None:
        return rng.standard_normal(n)
    v = np.asarray(v0.detach().cpu() if isinstance(v0, Tensor) else v0, dtype=np.float64)
    if v.ndim == 2 and v.shape[0] == n:
        # A block of previous eigenvectors: start from their (normalised) sum, so that the
        # first len(block) Krylov vectors already contain the whole block's span.
        norms = np.linalg.norm(v, axis=0)
        v = (v / np.where(norms > 0, norms, 1.0)).sum(axis=1)
    if v.ndim != 1 or v.shape[0] != n:
        raise LandscapeError(
            f"The 'v0' parameter must be a vector ({n},) or a block ({n}, m). Got shape {v.shape}."
        )
    if not np.all(np.isfinite(v)) or np.linalg.norm(v) == 0:
        raise LandscapeError("The 'v0' parameter must be finite and nonzero.")
    return v


def _lanczos(
    apply: SolverMatmul,
    k: int,
    which: str,
    tol: float,
    atol: float,
    max_hvp: int,
    ncv: int,
    v0: Tensor,
    rng: np.random.Generator,
    scale_atol: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Thick-restart Lanczos; returns (theta, Y, residuals, converged, thresholds) in wanted
    order.

    A pair converges when ``||W s - theta V s|| <= max(tol * |theta|, atol,
    scale_atol * max |Ritz value|)``: relative to its own eigenvalue, with an absolute floor
    given directly (``atol``) or in units of the spectral scale (``scale_atol``; the largest
    Ritz value bounds ``||H||`` from below).

    The basis ``V`` and the products ``W = H V`` are ``(ncv, n)`` tensors on the operator's
    device in the solver dtype (rows contiguous, so every pass over the first ``j`` vectors
    reads ``j n`` numbers). Per step the new column of ``T = V'W`` (``j`` numbers) and two norms
    come to the host; the Ritz values come from the ``j x j`` matrix there. Orthogonalisation is
    classical Gram-Schmidt (the projection that gives ``T``'s column), followed by a second pass
    where the DGKS test (:data:`DGKS`) finds cancellation; restarts combine the rows in place.
    """
    n = apply.n
    # Rows are written before they are read (row j at step j; after a restart rows >= keep
    # again), so the buffers need no zeroing: pages are touched as the basis grows.
    V = torch.empty((ncv, n), dtype=apply.dtype, device=apply.device)
    W = torch.empty_like(V)
    work = torch.empty(n, dtype=apply.dtype, device=apply.device)  # the new direction
    T = np.zeros((ncv, ncv))  # V' W: its column j comes with product j
    keep = _keep(ncv, k, which)
    v = v0 / torch.linalg.vector_norm(v0)
    j = 0
    start = apply.n_matvecs
    snapshot: np.ndarray | None = None
    Yt: Tensor | None = None
    while True:
        if v.data_ptr() != V[j].data_ptr():
            V[j] = v
        v = V[j]
        w = apply(v, out=W[j])  # the product goes straight into its row
        h_t = V[: j + 1] @ w
        h = apply.to_host(h_t)
        T[: j + 1, j] = h
        T[j, : j + 1] = h
        j += 1
        # Classical Gram-Schmidt into the work vector, a second pass only where the DGKS test
        # asks for it.
        r = torch.addmv(w, V[:j].T, h_t, alpha=-1, out=work)
        w_norm = float(torch.linalg.vector_norm(w))
        beta = float(torch.linalg.vector_norm(r))
        if beta < DGKS * w_norm:
            r, beta = _orthonormalise(r, V[:j], passes=1)

        theta, S = scipy.linalg.eigh(T[:j, :j])
        idx = _order(theta, which)[:k]
        Sk = S[:, idx]
        thr = _thresholds(theta, idx, tol, atol, scale_atol)
        # Screen: W s - theta V s = V (V'W - T) s + r s_j (the products lie in the span of V
        # and r by construction), and r is orthogonal to V, so beta |s_j| is a lower bound of
        # the real residual (equal to it for exact symmetric products). Only pairs that pass
        # it can have converged; they are verified with the residuals ||W s - theta V s|| of
        # the real products. So every decision rests on real residuals and is the one that
        # checking them at every step would give; the screen saves the passes.
        est = beta * np.abs(S[-1, idx])
        maybe = bool(np.all(est <= 1.01 * thr))
        used = apply.n_matvecs - start
        last = used >= max_hvp or j == n
        if maybe or last:
            St = apply.tensor(Sk.T)
            res = apply.to_host(_residual_norms(St, apply.tensor(theta[idx]), V[:j], W[:j]))
            conv = res <= thr
        else:
            conv = np.zeros(len(idx), dtype=bool)
        if last or (conv.all() and j >= k):
            Yt = St @ V[:j]  # the Ritz vectors as rows, once: (k, j) @ (j, n)
        if last:
            break
        if beta > 1e-12 * max(w_norm, np.finfo(float).tiny):
            if j >= k and conv.all():
                break
        else:
            # Invariant subspace: its Ritz pairs are exact, but a single Krylov sequence holds
            # one copy of each repeated eigenvalue. Continue from a fresh random direction
            # orthogonal to the basis, and stop only once a whole fresh sequence has left the
            # wanted eigenvalues unchanged.
            if j >= k and conv.all() and snapshot is not None and len(snapshot) == k:
                if np.all(np.abs(theta[idx] - snapshot) <= thr + 1e-14):
                    break
            snapshot = theta[idx].copy()
            r, beta = _orthonormalise(apply.tensor(rng.standard_normal(n)), V[:j])
        if j == ncv:
            # Thick restart: keep the most wanted Ritz pairs, continue with the residual
            # direction r (orthogonal to the old basis, hence to the kept Ritz vectors).
            order = _order(theta, which)[:keep]
            Sr = apply.tensor(S[:, order].T)
            _combine(Sr, V[:j])
            _combine(Sr, W[:j])
            T[:, :] = 0.0
            T[:keep, :keep] = np.diag(theta[order])
            j = keep
            r, beta = _orthonormalise(r, V[:j])
        v = torch.div(r, beta, out=V[j])
    assert Yt is not None
    return theta[idx], apply.to_host(Yt).T, res, conv, thr


def _thresholds(theta: np.ndarray, idx: np.ndarray, tol: float, atol: float,
                scale_atol: float) -> np.ndarray:
    """Residual bound of each wanted Ritz pair: ``max(tol |theta|, atol, scale_atol ||H||)``."""
    floor = atol
    if scale_atol > 0 and theta.size:
        floor = max(floor, scale_atol * float(np.max(np.abs(theta))))
    return np.maximum(tol * np.abs(theta[idx]), floor)


def _arpack(
    apply: SolverMatmul,
    k: int,
    which: str,
    tol: float,
    max_hvp: int,
    ncv: int,
    v0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    n = apply.n

    def mv(x: np.ndarray) -> np.ndarray:  # ARPACK works on the host: one round trip per call
        return apply.to_host(apply(apply.tensor(x)))

    lin = LinearOperator((n, n), matvec=mv, matmat=mv, dtype=np.float64)
    maxiter = max(1, max_hvp // max(1, ncv - k))
    try:
        vals, vecs = eigsh(lin, k=k, which=which, tol=tol, maxiter=maxiter, ncv=ncv, v0=v0)
    except ArpackNoConvergence as err:
        vals, vecs = err.eigenvalues, err.eigenvectors
    return np.asarray(vals, dtype=np.float64), np.asarray(vecs, dtype=np.float64)


def _dense(apply: SolverMatmul) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the operator to the identity (n products); return (theta, U, H)."""
    H = apply.to_host(apply(torch.eye(apply.n, dtype=apply.dtype, device=apply.device)))
    H = (H + H.T) / 2
    theta, U = scipy.linalg.eigh(H)
    return theta, U, H


def _solve(
    op: Any,
    k: int,
    which: str,
    tol: float,
    atol: float,
    max_hvp: int | None,
    v0: Any,
    seed: int | None,
    ncv: int | None,
    solver: str,
    scale_atol: float = 0.0,
    solver_dtype: torch.dtype | None = None,
) -> EigenResult:
    apply = SolverMatmul(op, solver_dtype)
    n = apply.n
    k = check_int("k", k, 1, max(n, 1))
    tol = check_float("tol", tol, 0.0, closed="neither")
    atol = check_float("atol", atol, 0.0)
    scale_atol = check_float("scale_atol", scale_atol, 0.0)
    check_option("solver", solver, SOLVERS)
    if max_hvp is None:
        max_hvp = min(10 * n, max(1000, 100 * k))
    max_hvp = check_int("max_hvp", max_hvp, 1)
    if ncv is None:
        ncv = default_ncv(k, which, n, apply.dtype.itemsize)
    ncv = min(check_int("ncv", ncv, k + 2), n)
    if seed is not None:
        seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    start = _start_vector(v0, n, rng)

    if k >= n - 1:
        # Tiny problem: n products give the exact answer.
        theta, U, H = _dense(apply)
        idx = _order(theta, which)[:k]
        theta, Y = theta[idx], U[:, idx]
        res = np.linalg.norm(H @ Y - Y * theta, axis=0)
        conv = np.ones(k, dtype=bool)
        thr = _thresholds(theta, np.arange(k), tol, atol, scale_atol)
    elif solver == "arpack":
        theta, Y = _arpack(apply, k, which, tol, max_hvp, ncv, start)
        # Verify honestly: one block of k products.
        res = np.linalg.norm(apply.to_host(apply(apply.tensor(Y))) - Y * theta, axis=0) \
            if len(theta) else np.zeros(0)
        thr = _thresholds(theta, np.arange(len(theta)), tol, atol, scale_atol)
        conv = res <= thr
    else:
        theta, Y, res, conv, thr = _lanczos(
            apply, k, which, tol, atol, max_hvp, ncv, apply.tensor(start), rng, scale_atol
        )

    order = _sort_result(theta, which)
    theta, Y, res, conv, thr = theta[order], Y[:, order], res[order], conv[order], thr[order]
    # Deterministic sign: the largest-magnitude entry of each eigenvector is positive.
    if Y.size:
        signs = np.sign(Y[np.argmax(np.abs(Y), axis=0), np.arange(Y.shape[1])])
        Y = Y * np.where(signs == 0, 1.0, signs)
    n_hvp = apply.n_matvecs
    if not conv.all():
        warnings.warn(
            f"{int((~conv).sum())} of {len(conv)} eigenpairs did not reach tol={tol:g} within "
            f"{n_hvp} products (max residual {float(np.max(res)):.3g}); raise max_hvp, loosen "
            "tol, or compute in float64.",
            RuntimeWarning,
            stacklevel=3,
        )
    return EigenResult(
        eigenvalues=np.asarray(theta, dtype=np.float64),
        eigenvectors=np.ascontiguousarray(Y, dtype=np.float64),
        residuals=np.asarray(res, dtype=np.float64),
        n_hvp=int(n_hvp),
        converged=np.asarray(conv, dtype=bool),
        which=which,
        thresholds=np.asarray(thr, dtype=np.float64),
    )


def top_eigen(
    op: Any,
    k: int = 5,
    *,
    which: str = "LM",
    tol: float = 1e-6,
    atol: float = 0.0,
    max_hvp: int | None = None,
    v0: Any = None,
    seed: int | None = 0,
    ncv: int | None = None,
    solver: str = "lanczos",
    solver_dtype: torch.dtype | None = None,
) -> EigenResult:
    """The ``k`` extreme eigenpairs of a symmetric operator.

    Parameters
    ----------
    op : object with ``@`` and ``.shape``
        A :class:`~landscape.hessian.HessianOperator`, a dense symmetric tensor/array, or any
        symmetric operator (SciPy ``LinearOperator`` included).
    k : int, default 5
        Number of eigenpairs, ``1 <= k <= n``.
    which : {"LM", "LA", "SA"}, default "LM"
        Largest magnitude, largest algebraic, or smallest algebraic eigenvalues.
    tol : float, default 1e-6
        Relative residual: stop when ``||H v - lambda v|| <= tol * |lambda|`` for all ``k``
        pairs. The residual norm also bounds the eigenvalue error (``|lambda - lambda_true|
        <= ||r||``, and ``<= ||r||^2 / gap`` once separated). With a float32 operator, tols
        below about ``1e-6`` may be unreachable; use ``dtype=torch.float64``.
    atol : float, default 0.0
        Absolute residual floor: a pair also counts as converged when its residual is at most
        ``atol`` (useful for eigenvalues near zero).
    max_hvp : int, optional
        Budget of operator products (default ``min(10 n, max(1000, 100 k))``). When it runs
        out, the best pairs so far are returned with ``converged=False`` and a warning.
        With ``solver="arpack"`` it is approximate (ARPACK counts restarts, not products).
    v0 : array or tensor, optional
        Start vector ``(n,)``, or a block ``(n, m)`` of previous eigenvectors for a warm start
        (their normalised sum is used). Default: a seeded Gaussian vector.
    seed : int or None, default 0
        Seed of the start vector (and of restarts after an exact invariant subspace).
    ncv : int, optional
        Largest Krylov basis kept in memory (``2 ncv`` vectors of length ``n`` are stored);
        default ``max(2k + 1, 20)``, and for ``which="SA"`` up to :data:`MIN_NCV` (60) within
        :data:`BASIS_BUDGET`. Larger means fewer restarts and products.
    solver : {"lanczos", "arpack"}, default "lanczos"
        Own thick-restart Lanczos (fewer products, see the module docstring) or SciPy's
        ``eigsh`` (ARPACK), whose result is verified with ``k`` extra products.
    solver_dtype : torch.dtype, optional
        Dtype of the Krylov basis and the products kept, on the operator's device: float64
        (default; the operator's own dtype may be float32) or float32, which halves the basis
        memory (large models on a GPU) but resolves residuals only to about ``1e-6 ||H||``:
        ask for ``tol >= 1e-5`` then. ARPACK always works in float64 on the host.

    Returns
    -------
    EigenResult

    Notes
    -----
    When ``k >= n - 1`` the operator is applied to the identity (``n`` products) and the
    dense matrix is diagonalised exactly.

    References
    ----------
    .. [1] K. Wu, H. Simon, "Thick-restart Lanczos method for large symmetric eigenvalue
       problems", SIAM J. Matrix Anal. Appl., 2000.
    .. [2] R. B. Lehoucq, D. C. Sorensen, C. Yang, "ARPACK Users' Guide", SIAM, 1998.

    Examples
    --------
    >>> res = top_eigen(HessianOperator(model, data, dtype=torch.float64), k=5)
    >>> res.eigenvalues, res.n_hvp, res.converged
    """
    check_option("which", which, WHICH)
    return _solve(op, k, which, tol, atol, max_hvp, v0, seed, ncv, solver,
                  solver_dtype=solver_dtype)


def _floor(tol: float, scale_atol: float | None) -> float:
    """The smallest eigenvalue's absolute floor in units of ``||H||`` (see :data:`MIN_FLOOR`)."""
    if scale_atol is None:
        return min(tol, MIN_FLOOR)
    return check_float("scale_atol", scale_atol, 0.0)


def min_eigen(
    op: Any,
    k: int = 1,
    *,
    tol: float = 1e-6,
    atol: float = 0.0,
    scale_atol: float | None = None,
    max_hvp: int | None = None,
    v0: Any = None,
    seed: int | None = 0,
    ncv: int | None = None,
    solver: str = "lanczos",
    solver_dtype: torch.dtype | None = None,
) -> EigenResult:
    """The ``k`` smallest (most negative) eigenpairs, ascending.

    This is ``top_eigen(op, k, which="SA")`` with its own convergence criterion: a pair is
    resolved when ``||H v - lambda v|| <= max(tol * |lambda|, atol, scale_atol * ||H||)``,
    i.e. relative to *its own* eigenvalue, with an absolute floor for eigenvalues at (or
    numerically at) zero, which no relative criterion can resolve. ``||H||`` is estimated by
    the largest Ritz value in magnitude (a lower bound that converges within a few steps).
    The default floor is ``min(tol, MIN_FLOOR) * ||H||`` (:data:`MIN_FLOOR` = 1e-6): at
    ``tol=1e-3`` a smallest eigenvalue of ``-0.004`` is found to ``4e-6``, not to
    ``1e-3 * lambda_max`` (a tolerance relative to ``lambda_max`` lets a Ritz value inside a
    cluster of near-zero eigenvalues pass for ``lambda_min``: on the digits MLP of
    ``benchmarks/bench_min_eigen.py``, lambda_min = -0.00558, it returned -0.00515 to
    -0.00540 after 41-48 products for 3 seeds; the own criterion gives -0.0055804 after 65-70).
    The residual also bounds the error of the eigenvalue: ``|lambda - lambda_true| <= ||r||``.

    The spectral shift used by power-iteration codes
    (largest-magnitude eigenpairs of ``H - sigma I`` with ``sigma = lambda_max``, then add
    ``sigma`` back, as in Li et al. 2018) is not used: a Krylov space is shift invariant,
    ``K_m(H - sigma I, v) = K_m(H, v)``, so Lanczos sees the same Ritz values either way and
    the shift only adds the products spent on ``lambda_max``. Measured on the digits MLP of
    ``benchmarks/bench_hessian.py`` (3 seeds) at equal absolute accuracy on ``lambda_min``:
    ``"SA"`` 46-52 products (tol 1e-3) and 106-108 (tol 1e-6) against 53-59 and 111-116 with
    the shift. (The shifted run is cheaper only when its tol is taken relative to
    ``|lambda_min - sigma|``, i.e. a looser criterion: 29-30 products, but 4-5e-3 relative
    error on ``lambda_min`` instead of 7e-7.)

    Parameters
    ----------
    op, tol, atol, max_hvp, v0, seed, ncv, solver, solver_dtype
        As for :func:`top_eigen`; ``tol`` is relative to each pair's own ``|lambda|``.
    k : int, default 1
        Number of eigenpairs.
    scale_atol : float, optional
        Absolute residual floor in units of ``||H||``; default ``min(tol, MIN_FLOOR)``.
        ``0`` makes the criterion purely relative (an eigenvalue at zero then never
        converges).

    Returns
    -------
    EigenResult
        With eigenvalues in increasing order; ``thresholds`` holds the residual bound each
        pair had to meet.

    References
    ----------
    .. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
       Neural Nets", NeurIPS 2018.
    """
    return _solve(op, k, "SA", tol, atol, max_hvp, v0, seed, ncv, solver,
                  scale_atol=_floor(tol, scale_atol), solver_dtype=solver_dtype)


def eigen_ratio(
    op: Any,
    *,
    tol: float = 1e-6,
    scale_atol: float | None = None,
    max_hvp: int | None = None,
    seed: int | None = 0,
    ncv: int | None = None,
    solver_dtype: torch.dtype | None = None,
) -> tuple[float, float, float]:
    """``(lambda_min, lambda_max, |lambda_min / lambda_max|)`` from one Lanczos run.

    Both ends of the spectrum converge in the same Krylov space, so a single run that waits
    for both is cheaper than two. Each pair converges relative to its own eigenvalue, with
    the absolute floor of :func:`min_eigen` (``min(tol, MIN_FLOOR) * ||H||`` by default).

    Parameters
    ----------
    op : object with ``@`` and ``.shape``
        Symmetric operator, e.g. a :class:`~landscape.hessian.HessianOperator`.
    tol, scale_atol, max_hvp, seed, ncv, solver_dtype
        As for :func:`min_eigen`.

    Returns
    -------
    tuple of float
        ``(lambda_min, lambda_max, ratio)``; ``lambda_max`` is the largest algebraic
        eigenvalue. The ratio is ``inf`` when ``lambda_max == 0``, and ``nan`` when either
        pair did not converge within ``max_hvp`` (a warning says so): an unresolved
        ``lambda_min`` gives no ratio.

    References
    ----------
    .. [1] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
       Neural Nets", NeurIPS 2018 (|lambda_min / lambda_max| as a measure of non-convexity).
    """
    res = extreme_pairs(op, tol=tol, scale_atol=scale_atol, max_hvp=max_hvp, seed=seed,
                        ncv=ncv, solver_dtype=solver_dtype)
    lmin, lmax = float(res.eigenvalues.min()), float(res.eigenvalues.max())
    if not res.all_converged:
        return lmin, lmax, float("nan")
    ratio = abs(lmin / lmax) if lmax != 0 else float("inf")
    return lmin, lmax, ratio


def extreme_pairs(
    op: Any,
    *,
    tol: float = 1e-6,
    scale_atol: float | None = None,
    max_hvp: int | None = None,
    v0: Any = None,
    seed: int | None = 0,
    ncv: int | None = None,
    solver_dtype: torch.dtype | None = None,
) -> EigenResult:
    """The largest and the smallest algebraic eigenpairs from one Lanczos run.

    Both ends converge in one Krylov space, each relative to its own eigenvalue with the
    absolute floor of :func:`min_eigen`: ``||H v - lambda v|| <= max(tol * |lambda|,
    scale_atol * ||H||)``. This is the solver of the ratio map, whose warm starts come in
    through ``v0``.

    Parameters
    ----------
    op : object with ``@`` and ``.shape``
        Symmetric operator.
    tol, scale_atol, max_hvp, seed, ncv, solver_dtype
        As for :func:`min_eigen`.
    v0 : array-like of shape (n,), optional
        Start vector (default: seeded random).

    Returns
    -------
    EigenResult
        Two pairs (one for a 1-dimensional operator), eigenvalues in decreasing order.
    """
    k = min(2, SolverMatmul(op).n)
    return _solve(op, k, "BE", tol, 0.0, max_hvp, v0, seed, ncv, "lanczos",
                  scale_atol=_floor(tol, scale_atol), solver_dtype=solver_dtype)
