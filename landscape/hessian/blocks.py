"""Per-block curvature spectra and their heterogeneity (Zhang et al. 2024).

The parameters are split into blocks (:func:`parameter_blocks`): per module that holds
parameters (``"layer"``), per residual or transformer block (``"block"``), attention against
MLP parameters (``"attn-mlp"``), or by user globs over parameter names. For each block ``B``,
:func:`compute_block_spectra` takes the *block-diagonal restriction* of the curvature operator,
``C_BB`` (the Hessian, GGN or empirical Fisher with respect to that block's parameters, every
other parameter held fixed at its value), and computes its top eigenvalues (Lanczos), trace
(Hutch++) and eigenvalue density (stochastic Lanczos quadrature). The densities are smoothed on
one common grid (one Gaussian width for all blocks) and compared by the Jensen-Shannon
distance,

.. math:: \\mathrm{JS}(p, q) = \\sqrt{\\tfrac12 \\mathrm{KL}(p \\| m) + \\tfrac12
          \\mathrm{KL}(q \\| m)}, \\quad m = \\tfrac12 (p + q)

(natural logarithm, :func:`scipy.spatial.distance.jensenshannon`); the *heterogeneity* is the
mean of the distances over all pairs of blocks, Zhang et al.'s ``JS^0`` summary of block
heterogeneity (there at initialisation; here at any checkpoint). Identical block spectra give
0; the maximum is ``sqrt(ln 2) ~ 0.833``. Zhang et al. report that transformers' blocks are
heterogeneous where CNNs' are not.

The heterogeneity depends on the Gaussian width of the densities: SLQ densities are a tall bulk
near zero plus a few outliers, and a width of 1% of the common range (the default) merges most
of each block's mass into the same bulk. For a ViT (width 32, 4 blocks) and a ResNet-20 (width
0.5) trained briefly on the digits, Hessian per ``"block"`` on 256 samples, the mean JS
distance was 0.02-0.06 at 1%, 0.1-0.4 at 0.1% and 0.1-0.8 at the fixed ``sigma = sqrt(1e-5)``
of Zhang et al.'s code; compare numbers only at one width (``density_sigma``, recorded in the
recipe), one grouping and one operator.

Results are a :class:`BlockSpectra` stored as the ``/block_spectra`` group of a landscape HDF5
file::

    /block_spectra             attrs: recipe, provenance (JSON), block_names (JSON list),
                                      block_params (JSON list of lists), heterogeneity,
                                      heterogeneity_note, n_hvp
    /block_spectra/n_params        (B,) int64
    /block_spectra/top_eigenvalues (B, k) float64   decreasing; NaN where a block has < k
    /block_spectra/top_converged   (B, k) uint8
    /block_spectra/trace           (B,) float64     Hutch++ estimate
    /block_spectra/trace_stderr    (B,) float64
    /block_spectra/slq_nodes       (B, runs, m) float64
    /block_spectra/slq_weights     (B, runs, m) float64  (rows sum to 1; padding has weight 0)
    /block_spectra/density_grid    (p,) float64     common grid of the densities
    /block_spectra/densities       (B, p) float64   each integrates to 1 over the grid
    /block_spectra/js_distance     (B, B) float64   pairwise Jensen-Shannon distances

References
----------
.. [1] Y. Zhang, C. Chen, T. Ding, Z. Li, R. Sun, Z.-Q. Luo, "Why transformers need Adam: a
   Hessian perspective", NeurIPS 2024.
.. [2] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
   quadrature", SIAM J. Matrix Anal. Appl., 2017.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon
from torch import nn

from .. import storage
from .._atomic import output_lock
from .._functional import loss_name
from .._version import tool_versions
from ..data import sample_count
from ..errors import Int, LandscapeError, Options, Real, validate_params
from ..parameters import name_matches, named_tensors
from ._linalg import check_solver_dtype, precision_note
from .density import SpectralDensity, slq
from .ggn import OPERATORS, curvature_operator, operator_label
from .lanczos import top_eigen
from .trace import hutchpp

__all__ = ["BLOCK_GROUPINGS", "BLOCK_SETTINGS", "BlockSpectra", "compute_block_spectra",
           "js_distances", "parameter_blocks"]

#: Built-in ``blocks`` values of :func:`parameter_blocks`.
BLOCK_GROUPINGS = ("layer", "block", "attn-mlp")

GROUP = "block_spectra"

_NEGLIGIBLE = 1e-300

_ATTN = re.compile(r"(attn|attention)", re.IGNORECASE)
_MLP = re.compile(r"(mlp|ffn|feed_?forward|intermediate)", re.IGNORECASE)


def _block_modules(model: nn.Module) -> list[str]:
    """Names of the outermost residual blocks (:func:`landscape.mechanisms.find_blocks`) and
    transformer blocks of ``model``, in registration order."""
    from ..mechanisms.blocks import find_blocks
    from ..models.transformer import TransformerBlock

    try:
        residual = {b.name for b in find_blocks(model)}
    except LandscapeError:  # no built-in residual block
        residual = set()
    found: list[str] = []
    for name, m in model.named_modules():
        if not name or any(name.startswith(f + ".") for f in found):
            continue
        if name in residual or isinstance(m, TransformerBlock):
            found.append(name)
    return found


def parameter_blocks(model: nn.Module, blocks: str | Sequence[str] = "block",
                     names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Group parameter names into blocks.

    Parameters
    ----------
    model : nn.Module
        The network.
    blocks : {"layer", "block", "attn-mlp"}, or glob(s), default "block"
        ``"layer"``: one block per module holding parameters itself (a Linear, a Conv2d, a
        LayerNorm; a model's own parameters such as a class token form the block
        ``"(root)"``). ``"block"``: one block per residual block (the built-ins of
        :func:`landscape.mechanisms.find_blocks`) or transformer block
        (:class:`~landscape.models.transformer.TransformerBlock`); parameters outside every
        block (stem, embeddings, head) are in none. ``"attn-mlp"``: two blocks, the parameters
        under attention modules (a module-name component containing ``attn`` or
        ``attention``) and those under MLPs (``mlp``, ``ffn``, ``feed_forward``,
        ``intermediate``); the rest in none. Otherwise a list of glob patterns (or one string
        of comma-separated globs), each a block named by its pattern, matched against the
        parameter names and their modules' names (as ``params`` of
        :class:`~landscape.hessian.HessianOperator`); a parameter matching several goes to
        the first.
    names : iterable of str, optional
        The parameters to group (e.g. an operator's ``names``); default: every parameter of
        the model (tied ones under their first name).

    Returns
    -------
    dict[str, list[str]]
        Block name -> parameter names, in model order; blocks without any of ``names`` are
        left out.

    Raises
    ------
    LandscapeError
        If no block is found, or a glob matches none of ``names``.
    """
    all_names = list(named_tensors(model, "weights")) if names is None else list(names)
    wanted = set(all_names)
    if isinstance(blocks, str) and blocks in BLOCK_GROUPINGS:
        groups: dict[str, list[str]] = {}
        if blocks == "layer":
            for mod_name, m in model.named_modules():
                own = [f"{mod_name}.{p}" if mod_name else p
                       for p, _ in m.named_parameters(recurse=False)]
                own = [p for p in own if p in wanted]
                if own:
                    groups[mod_name or "(root)"] = own
        elif blocks == "block":
            for b in _block_modules(model):
                own = [p for p in all_names if p.startswith(b + ".")]
                if own:
                    groups[b] = own
        else:
            for p in all_names:
                comps = p.split(".")[:-1]
                if any(_ATTN.search(c) for c in comps):
                    groups.setdefault("attn", []).append(p)
                elif any(_MLP.search(c) for c in comps):
                    groups.setdefault("mlp", []).append(p)
        if not groups or (blocks == "attn-mlp" and len(groups) < 2):
            what = {"layer": "module holding parameters",
                    "block": "residual or transformer block",
                    "attn-mlp": "attention and MLP modules"}[blocks]
            raise LandscapeError(
                f"The 'blocks' parameter is {blocks!r} but {type(model).__name__} has no "
                f"{what} among the parameters; pass 'layer' or a list of parameter-name globs"
            )
        return groups
    if isinstance(blocks, str):
        globs = [g.strip() for g in blocks.split(",") if g.strip()]
    else:
        globs = list(blocks)
    if not globs or not all(isinstance(g, str) and g for g in globs):
        raise LandscapeError(
            f"The 'blocks' parameter must be one of {BLOCK_GROUPINGS} or a list of glob "
            f"patterns over parameter names. Got {blocks!r} instead."
        )
    groups = {}
    taken: set[str] = set()
    for g in globs:
        own = [p for p in all_names if p not in taken and name_matches([p], g)]
        if not own:
            raise LandscapeError(
                f"The 'blocks' pattern {g!r} matches no parameter (left); names look like "
                f"{all_names[:4]}"
            )
        groups[g] = own
        taken.update(own)
    return groups


def js_distances(grid: np.ndarray, densities: np.ndarray) -> np.ndarray:
    """Pairwise Jensen-Shannon distances ``(B, B)`` of densities on a common uniform grid.

    Each row of ``densities`` (values on ``grid``) is normalised to a probability vector
    (entries below ``1e-300`` set to 0: subnormal ones can make scipy's terms infinite); the
    distance uses the natural logarithm (:func:`scipy.spatial.distance.jensenshannon`).
    """
    grid = np.asarray(grid, dtype=np.float64)
    d = np.asarray(densities, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != len(grid):
        raise LandscapeError(
            f"The 'densities' parameter must have shape (blocks, {len(grid)}); got {d.shape}."
        )
    if np.any(d < 0) or np.any(d.sum(axis=1) <= 0):
        raise LandscapeError("The 'densities' must be non-negative with a positive sum.")
    d = d / d.sum(axis=1, keepdims=True)
    # below this, scipy's mixture (p + q) / 2 can underflow to 0 beside a non-zero p and make
    # a term p log(p / m) infinite; the mass dropped is below 1e-297
    d = np.where(d < _NEGLIGIBLE, 0.0, d)
    b = d.shape[0]
    out = np.zeros((b, b))
    for i in range(b):
        for j in range(i + 1, b):
            out[i, j] = out[j, i] = float(jensenshannon(d[i], d[j]))
    return out


@dataclass(frozen=True, eq=False)
class BlockSpectra:
    """Per-block spectra of a curvature operator and their heterogeneity.

    Attributes
    ----------
    block_names : list of str
        The blocks, in model order.
    block_params : list of list of str
        Each block's parameter names.
    n_params : np.ndarray, shape (B,)
        Scalars per block.
    top_eigenvalues, top_converged : np.ndarray, shape (B, k)
        Largest eigenvalues of each block's restriction, decreasing (NaN padding where a block
        has fewer than ``k`` parameters), and whether each converged.
    trace, trace_stderr : np.ndarray, shape (B,)
        Hutch++ trace estimates of each block's restriction and their standard errors.
    slq_nodes, slq_weights : np.ndarray, shape (B, runs, m)
        The SLQ quadratures (padding: weight 0).
    density_grid : np.ndarray, shape (p,)
        The common grid.
    densities : np.ndarray, shape (B, p)
        Gaussian-smoothed densities on the grid (one width for all), each integrating to 1.
    js_distance : np.ndarray, shape (B, B)
        Pairwise Jensen-Shannon distances of the densities.
    heterogeneity : float
        Mean of ``js_distance`` over the pairs of blocks; NaN for fewer than two blocks
        (``heterogeneity_note`` says why).
    heterogeneity_note : str or None
        Why the heterogeneity is NaN.
    n_hvp : int
        Operator-vector products of all blocks together.
    recipe, provenance : dict
        What identifies the computation (``operator``, ``blocks``, loss, data...) and how it
        ran.
    """

    block_names: list[str]
    block_params: list[list[str]]
    n_params: np.ndarray
    top_eigenvalues: np.ndarray
    top_converged: np.ndarray
    trace: np.ndarray
    trace_stderr: np.ndarray
    slq_nodes: np.ndarray
    slq_weights: np.ndarray
    density_grid: np.ndarray
    densities: np.ndarray
    js_distance: np.ndarray
    heterogeneity: float
    heterogeneity_note: str | None = None
    n_hvp: int = 0
    recipe: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def operator(self) -> str:
        """``"hessian"``, ``"ggn"`` or ``"fisher"``."""
        return str(self.recipe.get("operator", "hessian"))

    def summary(self) -> dict[str, Any]:
        """The numbers per block and the heterogeneity, as a JSON-ready dict."""
        h = self.heterogeneity
        return {
            "operator": self.operator,
            "blocks": self.recipe.get("blocks"),
            "heterogeneity": h if math.isfinite(h) else None,
            "per_block": {
                name: {"n_params": int(n),
                       "top_eigenvalues": [float(v) for v in top if math.isfinite(v)],
                       "trace": float(tr)}
                for name, n, top, tr in zip(self.block_names, self.n_params,
                                            self.top_eigenvalues, self.trace, strict=True)},
        }

    def lines(self, *, unicode: bool = True) -> list[str]:
        """Human-readable lines: one per block, then the heterogeneity."""
        lam = "λ" if unicode else "lambda_"
        width = max(len(n) for n in self.block_names)
        out = [f"per-block spectra of the {operator_label(self.operator)} "
               f"({len(self.block_names)} blocks, {self.recipe.get('blocks')!s}):"]
        for name, n, top, tr in zip(self.block_names, self.n_params, self.top_eigenvalues,
                                    self.trace, strict=True):
            tops = ", ".join(f"{v:.4g}" for v in top if math.isfinite(v))
            out.append(f"  {name:<{width}}  {int(n):>9,} params  {lam}max {tops}  "
                       f"trace {tr:.4g}")
        if math.isfinite(self.heterogeneity):
            out.append(f"heterogeneity (mean pairwise Jensen-Shannon distance of the block "
                       f"densities): {self.heterogeneity:.4f}")
        else:
            out.append(f"heterogeneity: undefined ({self.heterogeneity_note})")
        return out

    # ------------------------------------------------------------------ storage
    def to_group(self) -> storage.Group:
        """The ``/block_spectra`` group (module docstring)."""
        g = storage.Group(attrs={
            "recipe": storage.dumps(self.recipe),
            "provenance": storage.dumps(self.provenance),
            "block_names": json.dumps(self.block_names),
            "block_params": json.dumps(self.block_params),
            "heterogeneity": float(self.heterogeneity),
            "n_hvp": int(self.n_hvp),
        })
        if self.heterogeneity_note is not None:
            g.attrs["heterogeneity_note"] = self.heterogeneity_note
        g.datasets.update({
            "n_params": np.asarray(self.n_params, dtype=np.int64),
            "top_eigenvalues": np.asarray(self.top_eigenvalues, dtype=np.float64),
            "top_converged": np.asarray(self.top_converged).astype(np.uint8),
            "trace": np.asarray(self.trace, dtype=np.float64),
            "trace_stderr": np.asarray(self.trace_stderr, dtype=np.float64),
            "slq_nodes": np.asarray(self.slq_nodes, dtype=np.float64),
            "slq_weights": np.asarray(self.slq_weights, dtype=np.float64),
            "density_grid": np.asarray(self.density_grid, dtype=np.float64),
            "densities": np.asarray(self.densities, dtype=np.float64),
            "js_distance": np.asarray(self.js_distance, dtype=np.float64),
        })
        return g

    @classmethod
    def from_group(cls, g: storage.Group, where: str = "file") -> BlockSpectra:
        """Inverse of :meth:`to_group`."""
        try:
            d = g.datasets
            return cls(
                block_names=json.loads(g.attrs["block_names"]),
                block_params=json.loads(g.attrs["block_params"]),
                n_params=np.asarray(d["n_params"]),
                top_eigenvalues=np.asarray(d["top_eigenvalues"]),
                top_converged=np.asarray(d["top_converged"]).astype(bool),
                trace=np.asarray(d["trace"]), trace_stderr=np.asarray(d["trace_stderr"]),
                slq_nodes=np.asarray(d["slq_nodes"]), slq_weights=np.asarray(d["slq_weights"]),
                density_grid=np.asarray(d["density_grid"]),
                densities=np.asarray(d["densities"]),
                js_distance=np.asarray(d["js_distance"]),
                heterogeneity=float(g.attrs["heterogeneity"]),
                heterogeneity_note=g.attrs.get("heterogeneity_note"),
                n_hvp=int(g.attrs.get("n_hvp", 0)),
                recipe=json.loads(g.attrs.get("recipe", "{}")),
                provenance=json.loads(g.attrs.get("provenance", "{}")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise LandscapeError(f"{where} has a damaged /{GROUP} group ({exc})") from exc

    def plot(self, **kwargs: Any) -> Any:
        """The blocks' densities as small multiples; keyword arguments go to
        :func:`landscape.plot.plot_block_spectra`."""
        from ..plot import plot_block_spectra

        return plot_block_spectra(self, **kwargs)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the ``/block_spectra`` group of ``path``; the file's other groups are kept.

        Parameters
        ----------
        path : str or os.PathLike
            Landscape HDF5 file (created if missing).
        overwrite : bool, default False
            Replace a ``/block_spectra`` group the file already holds (without it, an error).
        """
        with output_lock(path, wait=30.0) as p:
            self.check_output(p, overwrite=overwrite)
            storage.update_file(p, {GROUP: self.to_group()})

    @staticmethod
    def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Fail before any computation if :meth:`save` would refuse ``path``."""
        storage.check_writable(path, overwrite=overwrite)
        if Path(path).exists() and GROUP in storage.list_groups(path) and not overwrite:
            raise LandscapeError(
                f"'{path}' already holds per-block spectra (/{GROUP}); pass overwrite=True "
                "to replace them or choose another output file"
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> BlockSpectra:
        """Read the ``/block_spectra`` group of a landscape file."""
        g = storage.require_group(path, GROUP, f"holds no per-block spectra (no /{GROUP} "
                                  "group); compute them with compute_block_spectra()")
        return cls.from_group(g, f"'{path}'")


def _unused(op: Any) -> set[str]:
    """Variables of ``op`` that do not reach the loss on its first batch (e.g. the shortcut
    projections of a plain twin): their restriction is the zero matrix."""
    from .operator import curvature_mode

    with torch.enable_grad(), curvature_mode(op._model):
        batch = next(iter(op._batches()))
        leaves = {k: v.detach().requires_grad_(True) for k, v in op._primals.items()}
        value = op._batch_loss(batch)(leaves)
        if not value.requires_grad:
            return set(leaves)
        grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    return {k for k, g in zip(leaves, grads, strict=True) if g is None}


def _pad(a: np.ndarray, m: int, fill_last: bool) -> np.ndarray:
    """Pad the last axis of ``(runs, m0)`` to ``m``: repeat the last node, or zero weights."""
    if a.shape[1] == m:
        return a
    pad = np.repeat(a[:, -1:], m - a.shape[1], axis=1) if fill_last else \
        np.zeros((a.shape[0], m - a.shape[1]))
    return np.concatenate([a, pad], axis=1)


#: The settings of :func:`compute_block_spectra` (its keyword arguments besides ``blocks``,
#: ``operator``, ``recipe`` and ``provenance``) and their defaults: the solvers', then the
#: operator's (as for :class:`~landscape.hessian.HessianOperator`).
BLOCK_SETTINGS: Mapping[str, Any] = MappingProxyType({
    "top_k": 2, "trace_samples": 30, "density_steps": 30, "density_runs": 2,
    "density_points": 400, "density_sigma": None, "tol": 1e-4, "seed": 0,
    "solver_dtype": None, "max_hvp": None,
    "loss": "cross_entropy", "batch_size": 512, "ignore": None, "params": None,
    "exclude": None, "include_frozen": False, "dtype": None, "bn": "eval",
})

#: The settings that go to :func:`~landscape.hessian.curvature_operator` as they are.
_OPERATOR_SETTINGS = ("loss", "batch_size", "dtype", "params", "exclude", "include_frozen", "bn")


def _globs(name: str, value: Any) -> Any:
    """Constraint: ``None``, a glob pattern or a list of them."""
    if value is not None and not (isinstance(value, str) or (
            isinstance(value, Sequence) and all(isinstance(p, str) for p in value))):
        raise LandscapeError(
            f"The '{name}' parameter must be a glob pattern or a list of them. Got {value!r}."
        )
    return value


#: The declared constraints of :func:`compute_block_spectra`.
_CONSTRAINTS: dict[str, Any] = {
    "operator": Options(OPERATORS), "top_k": Int(0), "trace_samples": Int(3),
    "density_steps": Int(1), "density_runs": Int(1), "density_points": Int(2),
    "density_sigma": Real(0.0, closed="neither", optional=True),
    "tol": Real(0.0, closed="neither"), "seed": Int(0),
    "solver_dtype": lambda _, v: check_solver_dtype(v),
    "ignore": lambda _, v: None if v == "none" else v,
    "params": _globs, "bn": Options(("eval", "recalibrate")),
}


def compute_block_spectra(
    model: nn.Module,
    data: Any,
    *,
    blocks: str | Sequence[str] = "block",
    operator: str = "hessian",
    recipe: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    **settings: Any,
) -> BlockSpectra:
    """Top eigenvalues, trace and density of each block's restriction, and their
    heterogeneity (the mean pairwise Jensen-Shannon distance of the block densities).

    Parameters
    ----------
    model, data
        As for :class:`~landscape.hessian.HessianOperator`.
    blocks : {"block", "layer", "attn-mlp"} or glob(s), default "block"
        The grouping (:func:`parameter_blocks`).
    operator : {"hessian", "ggn", "fisher"}, default "hessian"
        The curvature matrix (:func:`~landscape.hessian.curvature_operator`).
    recipe, provenance : dict, optional
        Extra entries (checkpoint SHA-256, model and data specs, command line).
    **settings
        Keyword arguments, each with its default in :data:`BLOCK_SETTINGS` (another name is a
        TypeError):

        top_k : int, default 2
            Largest eigenvalues per block (capped at the block's size; 0 for none).
        trace_samples : int, default 30
            Products of each block's Hutch++ trace (at least 3).
        density_steps, density_runs : int, default 30, 2
            Lanczos steps per SLQ run and runs, per block.
        density_points : int, default 400
            Points of the common grid.
        density_sigma : float, optional
            Gaussian width of every density (default 1% of the range of all blocks' nodes).
        tol : float, default 1e-4
            Relative residual of the top eigenpairs.
        seed : int, default 0
            Seed of start vectors and probes (the same for every block).
        solver_dtype, max_hvp : torch.dtype, int, optional
            Dtype of the solvers' vectors (default float64); products per eigen-solve.
        loss, batch_size, ignore, params, exclude, include_frozen, dtype, bn
            As for :class:`~landscape.hessian.HessianOperator` (``ignore`` also ``"none"``);
            the blocks are groups of the parameters these select (``params``: glob patterns
            only).

    Returns
    -------
    BlockSpectra
        Parameters that do not reach the loss (the unused shortcut projections of a plain
        twin) are in no block: their restriction is zero; the recipe lists them (``unused``).

    Notes
    -----
    The heterogeneity depends on the Gaussian width of the densities (the module docstring
    has the measured ranges and Zhang et al.'s reference): compare numbers only at one width
    (``density_sigma``, recorded in the recipe), one grouping and one operator.

    Examples
    --------
    >>> bs = compute_block_spectra(vit, train, blocks="block")      # doctest: +SKIP
    >>> bs.heterogeneity, bs.save("vit_hessian.h5")                  # doctest: +SKIP
    """
    s = _block_settings(operator, settings)
    common = {k: s[k] for k in _OPERATOR_SETTINGS}
    full = curvature_operator(model, data, operator=operator, ignore=s["ignore"], **common)
    unused = _unused(full)
    groups = parameter_blocks(model, blocks, [k for k in full.names if k not in unused])
    full_recipe = _block_recipe(s, blocks, data, full, unused, recipe)
    t0 = time.perf_counter()
    point = list(named_tensors(model, "weights"))
    rows = []
    for names in groups.values():  # each block's restriction: the other parameters held
        keep = set(names)
        op = curvature_operator(model, data, operator=operator,
                                ignore=[k for k in point if k not in keep], **common)
        rows.append(_block_row(op, s))
    prov = {**tool_versions(), **precision_note(full.dtype), "operator": operator,
            "seconds": round(time.perf_counter() - t0, 3), **dict(provenance or {})}
    return _block_spectra(groups, rows, s, full_recipe, prov)


def _block_settings(operator: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of :func:`compute_block_spectra`: the defaults updated with ``given``,
    checked against the declared constraints (``operator`` first)."""
    unknown = sorted(set(given) - set(BLOCK_SETTINGS))
    if unknown:
        raise TypeError(f"compute_block_spectra() got an unexpected keyword argument "
                        f"{unknown[0]!r}")
    return validate_params({"operator": operator, **BLOCK_SETTINGS, **given}, _CONSTRAINTS)


def _block_recipe(s: Mapping[str, Any], blocks: str | Sequence[str], data: Any, full: Any,
                  unused: set[str], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The recipe of a per-block computation (the density's width is the one given, ``None``
    for the default, until the run has found the range of the nodes)."""
    ignore = s["ignore"]
    recipe = dict(extra or {})
    recipe.update({
        "operator": s["operator"],
        "blocks": blocks if isinstance(blocks, str) else list(blocks),
        "n_samples": sample_count(data),
        "loss": loss_name(s["loss"]),
        "batch_size": s["batch_size"] if isinstance(s["batch_size"], str) else
        int(s["batch_size"]),
        "ignore": ignore if ignore is None or isinstance(ignore, str) else sorted(ignore),
        "dtype": str(full.dtype).replace("torch.", ""),
        "bn": full.bn,
        "top": {"k": s["top_k"], "which": "LA", "tol": s["tol"], "max_hvp": s["max_hvp"]},
        "trace": {"method": "hutchpp", "samples": s["trace_samples"]},
        "density": {"steps": s["density_steps"], "runs": s["density_runs"],
                    "points": s["density_points"], "sigma": s["density_sigma"]},
        "seed": s["seed"],
        "unused": sorted(unused),
        "heterogeneity": "mean pairwise Jensen-Shannon distance (natural log) of the "
                         "smoothed block densities on a common grid (Zhang et al. 2024)",
    })
    for key in ("params", "exclude"):
        if s[key] is not None:
            recipe[key] = [s[key]] if isinstance(s[key], str) else list(s[key])
    if s["include_frozen"]:
        recipe["include_frozen"] = True
    if s["solver_dtype"] != torch.float64:
        recipe["solver_dtype"] = str(s["solver_dtype"]).replace("torch.", "")
    return recipe


def _block_row(op: Any, s: Mapping[str, Any]) -> dict[str, Any]:
    """Top eigenvalues (NaN-padded to ``top_k``), Hutch++ trace and SLQ of one block."""
    top_k, seed, solver_dtype = s["top_k"], s["seed"], s["solver_dtype"]
    k = min(top_k, op.numel)
    top = np.full(top_k, np.nan)
    conv = np.zeros(top_k, dtype=bool)
    if k:
        res = top_eigen(op, k, which="LA", tol=s["tol"], max_hvp=s["max_hvp"], seed=seed,
                        solver_dtype=solver_dtype)
        top[:k], conv[:k] = res.eigenvalues, res.converged
    tr = hutchpp(op, s["trace_samples"], seed=seed, solver_dtype=solver_dtype)
    sd = slq(op, s["density_steps"], s["density_runs"], seed=seed, solver_dtype=solver_dtype)
    return {"n": op.numel, "top": top, "conv": conv, "trace": tr.estimate,
            "trace_stderr": tr.stderr, "sd": sd, "n_hvp": op.n_hvp}


def _block_spectra(groups: Mapping[str, list[str]], rows: list[dict[str, Any]],
                   s: Mapping[str, Any], recipe: dict[str, Any],
                   provenance: dict[str, Any]) -> BlockSpectra:
    """The blocks' densities on one common grid at one width, their distances and the
    heterogeneity, as a :class:`BlockSpectra` (the width recorded in ``recipe``)."""
    m = max(r["sd"].nodes.shape[1] for r in rows)
    nodes = np.stack([_pad(r["sd"].nodes, m, True) for r in rows])
    weights = np.stack([_pad(r["sd"].weights, m, False) for r in rows])
    live = nodes[weights > 0]
    lo, hi = float(live.min()), float(live.max())
    sigma = s["density_sigma"] if s["density_sigma"] is not None else \
        ((hi - lo) / 100 if hi > lo else 1.0)
    recipe["density"]["sigma"] = sigma
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, s["density_points"])
    dens = np.stack([SpectralDensity(nodes[i], weights[i], r["n"], 0).density(
        grid=grid, sigma=sigma)[1] for i, r in enumerate(rows)])
    js = js_distances(grid, dens)
    b = len(rows)
    if b >= 2:
        het, note = float(js[np.triu_indices(b, 1)].mean()), None
        if not math.isfinite(het):
            het, note = math.nan, "a Jensen-Shannon distance is not finite"
    else:
        het, note = math.nan, "one block only: no pair to compare"
    top_k = s["top_k"]
    return BlockSpectra(
        block_names=list(groups), block_params=[list(v) for v in groups.values()],
        n_params=np.array([r["n"] for r in rows], dtype=np.int64),
        top_eigenvalues=np.stack([r["top"] for r in rows]) if top_k else np.zeros((b, 0)),
        top_converged=np.stack([r["conv"] for r in rows]) if top_k else
        np.zeros((b, 0), dtype=bool),
        trace=np.array([r["trace"] for r in rows]),
        trace_stderr=np.array([r["trace_stderr"] for r in rows]),
        slq_nodes=nodes, slq_weights=weights, density_grid=grid, densities=dens,
        js_distance=js, heterogeneity=het, heterogeneity_note=note,
        n_hvp=int(sum(r["n_hvp"] for r in rows)), recipe=recipe, provenance=provenance,
    )
