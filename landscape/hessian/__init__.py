"""Curvature of the loss: Hessian operator, extreme eigenpairs, trace and spectral density.

- :class:`HessianOperator` -- matrix-free Hessian of the full-data loss (exact HVPs);
  :class:`GGNOperator` and :class:`FisherOperator` -- its Gauss-Newton and empirical Fisher
  approximations, built by name with :func:`curvature_operator`.
- :func:`top_eigen`, :func:`min_eigen`, :func:`eigen_ratio`, :func:`extreme_pairs` -- Lanczos
  with full re-orthogonalisation (:class:`EigenResult`).
- :func:`hutchinson`, :func:`hutchpp` -- trace estimates (:class:`TraceResult`).
- :func:`slq` -- stochastic Lanczos quadrature (:class:`SpectralDensity`).
- :func:`compute_block_spectra` -- per-block top eigenvalues, traces and densities and their
  heterogeneity (:class:`BlockSpectra`, ``/block_spectra`` group; :func:`parameter_blocks`).
- :func:`compute_curvature` -- all of the above at one point as a storable
  :class:`CurvatureResult` (``/curvature`` group).
- :func:`compute_ratio_map` -- Li et al.'s ``|lambda_min / lambda_max|`` map over a surface's
  grid, warm-started and resumable (:class:`RatioMap`, ``/ratio_map`` group).
- :func:`curvature_of_checkpoint` -- one of the above from a checkpoint *file* into a
  landscape file (what ``landscape hessian`` runs; :class:`CheckpointCurvature`).
- :func:`hessian_directions` -- surface directions along the top (or the largest and the
  smallest) eigenvectors; :func:`compute_hessian_surface` -- a surface along them, in the
  ``/hessian_surface`` group.

The estimators accept anything with ``@`` and ``.shape`` (a dense tensor included), so they
are tested on ``torch.diag(d)`` before any network.

References
----------
.. [1] B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation, 1994.
.. [2] K. Wu, H. Simon, "Thick-restart Lanczos method for large symmetric eigenvalue problems",
   SIAM J. Matrix Anal. Appl., 2000.
.. [3] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
   estimation", SOSA 2021.
.. [4] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
   quadrature", SIAM J. Matrix Anal. Appl., 2017.
.. [5] B. Ghorbani, S. Krishnan, Y. Xiao, "An investigation into neural net optimization via
   Hessian eigenvalue density", ICML 2019.
"""

from __future__ import annotations

from .blocks import (
    BLOCK_GROUPINGS,
    BlockSpectra,
    compute_block_spectra,
    js_distances,
    parameter_blocks,
)
from .checkpoint import CheckpointCurvature, curvature_of_checkpoint
from .density import SpectralDensity, slq
from .directions import (
    HESSIAN_GROUP,
    compute_hessian_surface,
    eigenvector_directions,
    hessian_directions,
)
from .ggn import OPERATORS, FisherOperator, GGNOperator, curvature_operator
from .lanczos import EigenResult, eigen_ratio, extreme_pairs, min_eigen, top_eigen
from .operator import CurvatureOperator, HessianOperator, hvp
from .preconditioned import PreconditionedOperator
from .ratio_map import RatioMap, compute_ratio_map, serpentine_order
from .results import CurvatureResult, compute_curvature
from .trace import TraceResult, hutchinson, hutchpp

__all__ = [
    "BLOCK_GROUPINGS",
    "BlockSpectra",
    "CheckpointCurvature",
    "HESSIAN_GROUP",
    "CurvatureOperator",
    "CurvatureResult",
    "EigenResult",
    "FisherOperator",
    "GGNOperator",
    "HessianOperator",
    "OPERATORS",
    "PreconditionedOperator",
    "RatioMap",
    "SpectralDensity",
    "TraceResult",
    "compute_block_spectra",
    "compute_curvature",
    "compute_hessian_surface",
    "compute_ratio_map",
    "curvature_of_checkpoint",
    "curvature_operator",
    "eigen_ratio",
    "eigenvector_directions",
    "extreme_pairs",
    "hessian_directions",
    "hutchinson",
    "hutchpp",
    "hvp",
    "js_distances",
    "min_eigen",
    "parameter_blocks",
    "serpentine_order",
    "slq",
    "top_eigen",
]
