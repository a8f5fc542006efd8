"""Shared linear-algebra helpers of the curvature solvers (Lanczos, Hutch++, SLQ)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import LandscapeError
from .operator import CurvatureOperator

__all__ = ["Float64Matmul"]


class Float64Matmul:
    """Apply any square operator with ``@`` and ``.shape`` to float64 NumPy blocks.

    Accepts a :class:`CurvatureOperator`, a dense :class:`torch.Tensor`, a NumPy array, a SciPy
    sparse matrix or :class:`~scipy.sparse.linalg.LinearOperator`, or any object with ``@`` and
    ``.shape``. Counts every vector it applies in :attr:`n_matvecs`.
    """

    def __init__(self, A: Any) -> None:
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
        self._torch: tuple[torch.dtype, torch.device] | None = None
        if isinstance(A, CurvatureOperator):
            self._torch = (A.dtype, A.device)
        elif isinstance(A, Tensor):
            dt = A.dtype if A.is_floating_point() else torch.float64
            self._torch = (dt, A.device)
        elif isinstance(getattr(A, "dtype", None), torch.dtype):
            self._torch = (A.dtype, getattr(A, "device", torch.device("cpu")))

    def __call__(self, V: np.ndarray) -> np.ndarray:
        V = np.ascontiguousarray(V, dtype=np.float64)
        k = 1 if V.ndim == 1 else V.shape[1]
        if self._torch is not None:
            dt, dev = self._torch
            R = self.A @ torch.from_numpy(V).to(dtype=dt, device=dev)
            R = R.detach().to("cpu", torch.float64).numpy()
        else:
            R = np.asarray(self.A @ V, dtype=np.float64)
        self.n_matvecs += k
        return np.asarray(R, dtype=np.float64).reshape(V.shape)
