"""Shared linear-algebra helpers of the curvature solvers (Lanczos, Hutch++, SLQ).

The solvers keep their vectors (Krylov bases, products, probe blocks) as torch tensors on the
operator's device, in a *solver dtype* that may differ from the operator's (float64 by
default: float32 HVPs with float64 bases, orthogonalisation and accumulations). Only small
``ncv x ncv`` matrices (tridiagonal, Gram) and per-vector scalars go to the host, where SciPy
diagonalises them; no vector of length ``n`` crosses between host and device per product.
Random numbers are drawn on the host with NumPy's seeded generator and moved once per start
vector or probe block, so a seed gives the same probes on every device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from .operator import CurvatureOperator

__all__ = ["SOLVER_DTYPES", "SolverMatmul", "check_solver_dtype", "precision_note"]

#: Dtypes of the solvers' vectors. float64 (the default) keeps orthogonality and residuals
#: resolved to ~1e-15 of ``||H||``; float32 halves the memory of the basis (useful for large
#: models on a GPU) at the price of ~1e-7 relative rounding in every inner product: residuals
#: below about ``1e-6 ||H||`` and eigenvalues closer than that to the float64 answer are not
#: reachable (ask for ``tol >= 1e-5``).
SOLVER_DTYPES = (torch.float64, torch.float32)


#: What float32 HVPs cost in accuracy, recorded in the provenance of every curvature result and
#: ratio map computed with them (``hvp_precision``). Measured by
#: ``benchmarks/bench_precision.py`` (float32 against float64 HVPs, float64 solver vectors,
#: same seeds, tol 1e-6): digits MLP (6,634 parameters, 20 epochs) top-5 eigenvalues within
#: 1.5e-6 relative, lambda_min 3e-7 of itself (1.4e-9 of lambda_max), trace 1.2e-6, SLQ nodes
#: 7e-7 of lambda_max; ResNet-20 on 128 digits (3 epochs): top-5 3.9e-7, lambda_min 2e-7 of
#: itself (1.2e-8 of lambda_max), trace 2.3e-7, SLQ nodes 2.8e-7 of lambda_max, the same HVP
#: counts, 4.3x faster. The note states 1e-5: about 6x the largest difference seen.
FLOAT32_NOTE = (
    "float32 HVPs with float64 solver vectors and accumulations: stored eigenvalues, trace "
    "and density within 1e-5 relative (lambda_min: 1e-5 of itself or 1e-7 of lambda_max) of "
    "the float64 answer, measured on the digits MLP and ResNet-20 "
    "(benchmarks/bench_precision.py); pass dtype=torch.float64 for more"
)


def precision_note(hvp_dtype: torch.dtype) -> dict[str, str]:
    """``{"hvp_precision": note}`` for float32 (and lower) HVPs, else ``{}``."""
    if hvp_dtype in (torch.float32, torch.float16, torch.bfloat16):
        note = FLOAT32_NOTE if hvp_dtype == torch.float32 else \
            f"{str(hvp_dtype).replace('torch.', '')} HVPs: accuracy not measured"
        return {"hvp_precision": note}
    return {}


def check_solver_dtype(dtype: Any) -> torch.dtype:
    """``dtype`` if it is a solver dtype (``None``: float64), else a :class:`LandscapeError`."""
    if dtype is None:
        return torch.float64
    if dtype not in SOLVER_DTYPES:
        raise LandscapeError(
            f"The 'solver_dtype' parameter must be torch.float64 or torch.float32. Got "
            f"{dtype!r} instead."
        )
    return dtype


class SolverMatmul:
    """Apply any square operator to torch blocks in the solver dtype, on the operator's device.

    Accepts a :class:`CurvatureOperator`, a dense :class:`torch.Tensor`, anything with ``@``,
    ``.shape`` and a torch ``.dtype`` (such as a progress wrapper), a NumPy array, a SciPy sparse
    matrix or :class:`~scipy.sparse.linalg.LinearOperator`, or any object with ``@`` and
    ``.shape``. Torch operators get torch tensors on their device in their dtype; the others
    (host operators) get float64 NumPy arrays. Counts every vector applied in
    :attr:`n_matvecs`.

    Parameters
    ----------
    A : operator
        Square operator.
    dtype : torch.dtype, optional
        Solver dtype (:data:`SOLVER_DTYPES`, default float64).
    """

    def __init__(self, A: Any, dtype: torch.dtype | None = None) -> None:
        shape = getattr(A, "shape", None)
        if shape is None or len(shape) != 2 or int(shape[0]) != int(shape[1]):
            raise LandscapeError(
                f"The operator must be square with a .shape of (n, n) and support '@'. "
                f"Got {type(A).__name__} with shape {shape!r}."
            )
        if not hasattr(A, "__matmul__"):
            raise LandscapeError(
                f"The operator must support '@' (matrix multiplication). Got {type(A).__name__}."
            )
        self.A = A
        self.n = int(shape[0])
        self.n_matvecs = 0
        self.dtype = check_solver_dtype(dtype)
        self.on_host = False
        if isinstance(A, CurvatureOperator):
            self.op_dtype, self.device = A.dtype, A.device
        elif isinstance(A, Tensor):
            self.op_dtype = A.dtype if A.is_floating_point() else torch.float64
            self.device = A.device
        elif isinstance(getattr(A, "dtype", None), torch.dtype):
            self.op_dtype = A.dtype
            self.device = torch.device(getattr(A, "device", None) or "cpu")
        else:
            self.on_host = True
            self.op_dtype, self.device = torch.float64, torch.device("cpu")

    def __call__(self, V: Tensor, out: Tensor | None = None) -> Tensor:
        """``A @ V`` for ``V`` of shape ``(n,)`` or ``(n, k)`` on :attr:`device`, in the solver
        dtype (written into ``out`` when given: no intermediate copy)."""
        k = 1 if V.ndim == 1 else int(V.shape[1])
        if self.on_host:
            X = np.ascontiguousarray(V.detach().cpu().numpy(), dtype=np.float64)
            R = torch.from_numpy(np.asarray(self.A @ X, dtype=np.float64).reshape(X.shape))
        else:
            R = self.A @ V.to(self.op_dtype)
            if not isinstance(R, Tensor):
                R = torch.as_tensor(np.asarray(R))
            R = R.detach().reshape(V.shape)
        self.n_matvecs += k
        if out is not None:
            return out.copy_(R)
        return R.to(device=self.device, dtype=self.dtype)

    def tensor(self, x: np.ndarray) -> Tensor:
        """A host array as a tensor on :attr:`device` in the solver dtype (one transfer)."""
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(
            device=self.device, dtype=self.dtype)

    def rademacher(self, rng: np.random.Generator, n: int, k: int) -> Tensor:
        """``(n, k)`` random signs from ``rng`` (drawn on the host), on the device."""
        return self.tensor(rng.integers(0, 2, size=(n, k)).astype(np.float64) * 2.0 - 1.0)

    @staticmethod
    def to_host(t: Tensor) -> np.ndarray:
        """A (small) tensor as a float64 NumPy array on the host."""
        return t.detach().to("cpu", torch.float64).numpy()
