"""The Hessian of the full-data loss as a matrix-free linear operator.

:class:`CurvatureOperator` owns the plumbing every curvature operator shares (``@``, ``.shape``,
flat <-> dict conversion, the HVP counter, :meth:`~CurvatureOperator.to_scipy`); a subclass
implements only ``_matvec`` (and, optionally, a batched ``_matmat``). :class:`HessianOperator`
is the Hessian of

.. math:: L(\\theta) = \\frac{1}{W} \\sum_{i=1}^{W} \\ell_i(\\theta)

over a data set, evaluated batch by batch: the losses of each batch's counted examples
(samples, or non-ignored tokens for sequence logits; see :mod:`landscape.losses`) are summed
and divided by the total count ``W`` of the whole data set, so uneven last batches and padding
are weighted correctly. Batches are any of :mod:`landscape.batches` (``(x, y)`` tensors, HF
style mappings) from any data of :mod:`landscape.data` (tensors, Datasets, DataLoaders).

Attention: every forward and backward pass of the operator runs under
:func:`torch.nn.attention.sdpa_kernel` with ``SDPBackend.MATH``, because the fused
scaled-dot-product-attention kernels (flash, memory-efficient, the CPU flash kernel) have no
double-backward; the math kernel is differentiable twice, so models using
:func:`~torch.nn.functional.scaled_dot_product_attention`, :class:`~torch.nn.MultiheadAttention`
or :class:`~torch.nn.TransformerEncoder` work on CPU and CUDA without any option.
Finite-difference products (``hvp="finite-difference"``, below) need one backward only and
leave the kernels at their defaults.

Cost and scale: with ``batch_size="auto"`` the whole data go through in one pass when the
estimated memory of its double-backward graph (autograd's saved tensors on a probe batch,
activations included; :meth:`HessianOperator.graph_bytes`) fits the memory budget, and with
``cache_graph="auto"`` that graph is kept, so a product is one backward pass -- the cost of
PyHessian's single-batch product (``benchmarks/bench_hvp.py``). Under ``torchrun`` each rank
holds a shard of the data and products, gradients and the loss are all-reduced
(``distributed="auto"``; :func:`shard_plan` says how the data are split).

Hessian-vector products are exact by default (``hvp="autograd"``: double backpropagation,
``Hv = \\nabla(\\nabla L \\cdot v)``). ``hvp="finite-difference"`` takes central differences of
full-data gradients instead, for models whose kernels have no double backward (fused attention
left at its default) and as the lighter path (one backward graph per batch, never cached):

.. math:: D_h v = \\frac{\\nabla L(\\theta + \\epsilon v)
   - \\nabla L(\\theta - \\epsilon v)}{2\\epsilon},
   \\qquad \\epsilon = h / \\lVert v\\rVert,
   \\qquad h = u^{1/3}\\,(1 + \\lVert\\theta\\rVert),

with ``u`` the machine epsilon of the operator's dtype and ``theta`` the selected parameters
(the standard step of central differences [3]_: it balances the truncation error
``h^2/6 * ||D^3 g[v/|v|]^3||`` -- the third derivative of the gradient ``g`` along the step,
``O(h^2)`` -- against the rounding error ``O(u * ||g|| / h)`` of the two gradients; each
coordinate is moved by about ``u^(1/3)`` of its own size; float32 gradients are rounded far
more coarsely than ``u ||g||``, so float32 products can be off by several percent -- prefer
float64). The loss must be smooth over the step: a ReLU's kink within ``h`` of the point
makes the difference meaningless (products through a ReLU transformer were off by 10 on
Lanczos vectors; the estimate below reports it). The error of a product is estimated
a posteriori by :meth:`HessianOperator.fd_error` (``||D_{2h} v - D_h v|| + ||D_{h/2} v - D_h v||``
over ``||v||``: about three times the truncation term by Richardson, at least the rounding term),
and :func:`~landscape.hessian.compute_curvature` records it along its eigenvectors. The
perturbed points are private tensors: the model's parameters are never written to.

The model is always called through :func:`torch.func.functional_call` in eval mode on private
copies of its buffers, so BatchNorm uses (and never updates) its running statistics and dropout
is off.

BatchNorm at a checkpoint whose running statistics do not describe its weights (a freshly
initialised net: running mean 0 and variance 1, whatever its weights do to the data; or weights
moved away from the statistics) makes that eval-mode loss, and so its Hessian, meaningless: a
residual net at initialisation measured 336 nats with unset statistics. ``bn="recalibrate"``
recomputes the statistics first, on the operator's data (or ``bn_data``), as the exact
cumulative average over batches in train mode, at the operator's point (the running
statistics of a copy; the model is not touched) -- :class:`~landscape.evaluation.Evaluator`'s
``bn="recalibrate"``, the same recalibration as the surfaces and the connectivity paths. The
statistics are then fixed: the Hessian is that of the eval-mode loss with recalibrated
statistics (their own dependence on the weights is not differentiated). :attr:`HessianOperator.bn`
records what was done.

References
----------
.. [1] B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6(1),
   1994.
.. [2] F. Dangel, R. Eschenhagen, et al., "curvlinops: PyTorch linear operators for curvature
   matrices", https://github.com/f-dangel/curvlinops (design of the operator base class).
.. [3] J. Nocedal, S. J. Wright, "Numerical Optimization", 2nd ed., Springer 2006, Sec. 8.1
   (central differences; step ``u^(1/3)`` scaled by ``1 + ||x||``) and Sec. 7.1 (Hessian-vector
   products by differences of gradients).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor, nn

from .._functional import (
    LossSpec,
    is_perturbable,
    named_tensors,
    resolve_loss,
)
from .._grid import all_reduce_sum, available_memory, dist_info, points_sharded, shard_bounds
from ..batches import batch_len, functional_call_batch, move_batch
from ..data import DeviceData, StreamData, TensorData, as_data, first_batch
from ..errors import LandscapeError, check_int, check_option
from ..parameters import select_parameters, tied_aliases

__all__ = ["BN_OPTIONS", "HVPS", "CurvatureOperator", "HessianOperator", "hvp",
           "recalibrated_bn", "shard_plan"]

#: ``method`` values of :class:`HessianOperator`.
METHODS = ("auto", "graph", "func")

#: ``hvp`` values of :class:`HessianOperator`: exact products by double backpropagation, or
#: central differences of gradients.
HVPS = ("autograd", "finite-difference")

#: The step rule of ``hvp="finite-difference"``, as recorded with the results.
FD_STEP_RULE = "h = cbrt(eps_mach) * (1 + ||theta||), epsilon = h / ||v||"

#: The error statement of ``hvp="finite-difference"``, as recorded with the results.
FD_ERROR_BOUND = ("||D_h v - H v|| / ||v|| <= h^2/6 * max ||D^3 g[v/||v||]^3|| (truncation) + "
                  "O(eps_mach * ||g|| / h) (rounding); estimated as (||D_2h v - D_h v|| + "
                  "||D_h/2 v - D_h v||) / ||v||")

#: ``bn`` values of :class:`HessianOperator`: the checkpoint's own running statistics, or
#: statistics recomputed on the data first.
BN_OPTIONS = ("eval", "recalibrate")

#: Samples per forward pass of the BatchNorm recalibration (``bn="recalibrate"``): the running
#: variance is the mean of the per-batch (unbiased) variances, so it depends on this size; data
#: of at most this many samples are one batch, whose statistics are the data's own.
BN_BATCH_SIZE = 512

#: Memory of a double-backward graph per byte that autograd's saved-tensor hooks see while it is
#: built (the allocator's slack, the gradients with their graph, the backward's workspace):
#: the process' resident memory grew by 1.9-3.7x the saved bytes when a graph was cached
#: (ResNet-20 on 256 digits float32 / float64, ResNet-56 on 512 float32; 5x for the digits
#: MLP, whose 1.6 MiB graph is all fixed costs).
GRAPH_MEMORY_FACTOR = 4.0

#: Memory budget of the graphs (bytes) on the CPU: at most this, and at most half the memory
#: the system reports available. On CUDA: a quarter of the device's memory, at most half the
#: free memory.
GRAPH_MEMORY_CPU = 4 * 2**30

#: Samples per forward pass with ``batch_size="auto"`` when the data's length is unknown
#: (iterable Datasets).
DEFAULT_BATCH = 512


class CurvatureOperator:
    """Base class of square, symmetric, matrix-free operators over a flat parameter vector.

    Subclasses set ``self._names``, ``self._shapes``, ``self._dtype``, ``self._device`` and
    implement :meth:`_matvec`; they may override :meth:`_matmat` with a batched version. The
    flat ordering is the concatenation of the named tensors in ``names`` order.

    Attributes
    ----------
    shape : tuple of int
        ``(n, n)``.
    n_hvp : int
        Number of operator-vector products computed so far (a ``matmat`` with ``k`` columns
        counts ``k``).
    """

    _names: list[str]
    _shapes: list[torch.Size]
    _dtype: torch.dtype
    _device: torch.device
    _n_hvp: int = 0

    # -- to implement ---------------------------------------------------------------------
    def _matvec(self, v: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _matmat(self, V: Tensor) -> Tensor:
        return torch.stack([self._matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    # -- plumbing -------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the tensors the operator acts on, in flat order."""
        return list(self._names)

    @property
    def numel(self) -> int:
        """Number of scalar parameters ``n``."""
        return int(sum(s.numel() for s in self._shapes))

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, n)``."""
        n = self.numel
        return (n, n)

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point type of the vectors the operator takes and returns."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device of the vectors the operator takes and returns."""
        return self._device

    @property
    def n_hvp(self) -> int:
        """Number of single operator-vector products computed so far."""
        return self._n_hvp

    def _as_input(self, v: Tensor | np.ndarray, ndim: int) -> Tensor:
        v = torch.as_tensor(v)
        n = self.numel
        if v.ndim != ndim or v.shape[0] != n:
            want = f"({n},)" if ndim == 1 else f"({n}, k)"
            raise LandscapeError(
                f"The operator acts on vectors of {n} parameters: expected shape {want}, "
                f"got {tuple(v.shape)}."
            )
        return v.to(dtype=self._dtype, device=self._device)

    def matvec(self, v: Tensor | np.ndarray) -> Tensor:
        """Return ``H v`` for a flat vector ``v`` of shape ``(n,)``."""
        v = self._as_input(v, 1)
        out = self._matvec(v)
        self._n_hvp += 1
        return out

    def matmat(self, V: Tensor | np.ndarray) -> Tensor:
        """Return ``H V`` for a block ``V`` of shape ``(n, k)``; counts ``k`` products."""
        V = self._as_input(V, 2)
        if V.shape[1] == 0:
            return V.clone()
        out = self._matmat(V)
        self._n_hvp += int(V.shape[1])
        return out

    def __matmul__(self, other: Tensor | np.ndarray) -> Tensor:
        other_t = torch.as_tensor(other)
        if other_t.ndim == 1:
            return self.matvec(other_t)
        if other_t.ndim == 2:
            return self.matmat(other_t)
        raise LandscapeError(
            f"The operator multiplies a vector (n,) or a matrix (n, k); got {other_t.ndim} dims."
        )

    def to_scipy(self) -> LinearOperator:
        """Return a :class:`scipy.sparse.linalg.LinearOperator` view (float64 in and out).

        Inputs are converted to the operator's dtype and device, outputs back to float64
        NumPy arrays. Products made through the view count in :attr:`n_hvp`.
        """

        def mv(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64).reshape(-1)
            return self.matvec(torch.from_numpy(x)).detach().to("cpu", torch.float64).numpy()

        def mm(X: np.ndarray) -> np.ndarray:
            X = np.ascontiguousarray(X, dtype=np.float64)
            return self.matmat(torch.from_numpy(X)).detach().to("cpu", torch.float64).numpy()

        return LinearOperator(
            self.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np.float64
        )

    def unflatten(self, v: Tensor | np.ndarray) -> dict[str, Tensor]:
        """Split a flat vector ``(n,)`` into a ``name -> tensor`` dict shaped like the params."""
        v = torch.as_tensor(v)
        if v.ndim != 1 or v.shape[0] != self.numel:
            raise LandscapeError(
                f"Expected a flat vector of {self.numel} entries, got shape {tuple(v.shape)}."
            )
        out: dict[str, Tensor] = {}
        offset = 0
        for name, shape in zip(self._names, self._shapes, strict=True):
            size = shape.numel()
            out[name] = v[offset : offset + size].reshape(shape)
            offset += size
        return out

    def flatten(self, d: Mapping[str, Tensor]) -> Tensor:
        """Concatenate a ``name -> tensor`` dict into the operator's flat ordering."""
        missing = [name for name in self._names if name not in d]
        if missing:
            raise LandscapeError(
                f"The dict lacks tensors the operator acts on: {missing[:3]}"
                f"{' ...' if len(missing) > 3 else ''}; pass one tensor per name in op.names."
            )
        parts = []
        for name, shape in zip(self._names, self._shapes, strict=True):
            t = torch.as_tensor(d[name])
            if t.numel() != shape.numel():
                raise LandscapeError(
                    f"Tensor '{name}' has {t.numel()} entries, expected {shape.numel()} "
                    f"(shape {tuple(shape)})."
                )
            parts.append(t.reshape(-1).to(dtype=self._dtype, device=self._device))
        if not parts:
            return torch.zeros(0, dtype=self._dtype, device=self._device)
        return torch.cat(parts)

    def _split_block(self, V: Tensor) -> dict[str, Tensor]:
        """``(n, k)`` block -> dict of ``(k, *shape)`` tensors."""
        k = V.shape[1]
        out: dict[str, Tensor] = {}
        offset = 0
        Vt = V.t()
        for name, shape in zip(self._names, self._shapes, strict=True):
            size = shape.numel()
            out[name] = Vt[:, offset : offset + size].reshape(k, *shape)
            offset += size
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.numel}, dtype={self._dtype})"


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and restore each one's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def differentiable_attention() -> Iterator[None]:
    """Restrict scaled-dot-product attention to the math kernel (twice differentiable)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


@contextlib.contextmanager
def curvature_mode(model: nn.Module) -> Iterator[None]:
    """The model as curvature products see it: eval mode and attention kernels that have a
    double backward (restored on exit)."""
    with _eval_mode(model), differentiable_attention():
        yield


def _bn_with_statistics(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named BatchNorm modules that keep running statistics."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recalibrated_bn(
    model: nn.Module,
    data: Any,
    *,
    point: Mapping[str, Tensor] | None = None,
    loss: LossSpec = "cross_entropy",
    batch_size: int = BN_BATCH_SIZE,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """BatchNorm running statistics recomputed on ``data``, at the model's weights or ``point``.

    The statistics are reset and recomputed in train mode with ``momentum=None`` (the exact
    cumulative average over batches), under ``no_grad``, on a private copy of the model: this
    is :class:`~landscape.evaluation.Evaluator` with ``bn="recalibrate"`` over every batch of
    ``data`` (the recalibration of surfaces and connectivity paths, Garipov et al.'s
    ``update_bn``). Data of at most ``batch_size`` samples are one batch, so the running mean
    is the mean of the layer's input over the data (per channel) and the running variance its
    unbiased variance.

    Parameters
    ----------
    model : nn.Module
        The network (not modified).
    data : TensorData, ``(x, y)``, Dataset or DataLoader
        Samples of the recalibration.
    point : dict[str, Tensor], optional
        Weights to recalibrate at (default: the model's own).
    loss : str or callable, default "cross_entropy"
        The loss whose targets ``data`` hold (only checked on a first batch).
    batch_size : int, default :data:`BN_BATCH_SIZE`
        Samples per forward pass.
    dtype : torch.dtype, optional
        Floating type of the recalibration (default: the model's).
    device : torch.device or str, optional
        Where to compute (default: the model's device).

    Returns
    -------
    dict[str, Tensor]
        ``running_mean``, ``running_var`` and ``num_batches_tracked`` of every BatchNorm layer
        that keeps statistics, by state-dict name; empty when there is none.

    References
    ----------
    .. [1] T. Garipov, P. Izmailov, D. Podoprikhin, D. Vetrov, A. G. Wilson, "Loss surfaces,
       mode connectivity, and fast ensembling of DNNs", NeurIPS 2018 (``update_bn``).
    """
    from ..evaluation import Evaluator

    bns = _bn_with_statistics(model)
    if not bns:
        return {}
    batch_size = check_int("batch_size", batch_size, 1)
    src = as_data(data) if isinstance(data, StreamData) or not _is_tensor_data(data) \
        else as_data(_data_tensors(data))
    n = _known_length(src)
    n_batches = max(1, math.ceil(n / batch_size)) if n is not None else 2**31 - 1
    ev = Evaluator(model, {"bn": src}, loss=loss, bn="recalibrate", bn_data=src,
                   bn_batches=n_batches, bn_batch_size=batch_size, batch_size=batch_size,
                   dtype=dtype, device=device, channels_last=False)
    if point:
        own = named_tensors(ev.model, "weights")
        ev.load({k: v for k, v in point.items() if k in own})
    ev._recalibrate()  # the recalibration of every evaluated point, without the evaluation
    keys = ("running_mean", "running_var", "num_batches_tracked")
    mods = dict(ev.model.named_modules())
    return {f"{name}.{k}" if name else k: getattr(mods[name], k).detach().clone()
            for name, _ in bns for k in keys if getattr(mods[name], k, None) is not None}


def _data_tensors(data: Any) -> tuple[Tensor, Tensor]:
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
    elif hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    else:
        raise LandscapeError(
            f"The 'data' parameter must have tensor attributes .x and .y (e.g. "
            f"landscape.data.TensorData) or be a pair (x, y). Got {type(data).__name__}."
        )
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise LandscapeError(
            f"The data's x and y must have the same number of samples; got x of shape "
            f"{tuple(x.shape)} and y of shape {tuple(y.shape)}."
        )
    if x.shape[0] == 0:
        raise LandscapeError("The data set is empty; pass at least one sample.")
    return x, y


def _is_tensor_data(data: Any) -> bool:
    if isinstance(data, tuple | list) and len(data) == 2:
        return True
    return hasattr(data, "x") and hasattr(data, "y")


def _aliases(model: nn.Module, selected: list[str]) -> list[str]:
    """State-dict names to leave out of ``functional_call`` because they share storage with
    another name (tied weights): of each group one name stays, the selected one if any."""
    groups: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    for k, v in model.state_dict(keep_vars=True).items():
        if v.numel():
            groups.setdefault((v.data_ptr(), tuple(v.shape)), []).append(k)
    sel = set(selected)
    drop: list[str] = []
    for names in groups.values():
        if len(names) > 1:
            keep = next((k for k in names if k in sel), names[0])
            drop += [k for k in names if k != keep]
    return drop


def _memory_budget(device: torch.device) -> int:
    """Default ``memory_budget`` of :class:`HessianOperator` on ``device`` (bytes)."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(min(total / 4, free / 2))
    available = available_memory()
    return int(GRAPH_MEMORY_CPU if available is None else min(GRAPH_MEMORY_CPU, available / 2))


def _known_length(source: Any) -> int | None:
    """Samples of tensor data or a map-style Dataset; ``None`` for loaders and iterables."""
    if isinstance(source, StreamData):
        return len(source) if source.map_style and not source.is_loader else None
    return len(source)


def _ranks(distributed: bool | str) -> tuple[int, int]:
    """``(rank, world)`` the operator averages over, from its ``distributed`` parameter."""
    if not (isinstance(distributed, bool) or distributed == "auto"):
        raise LandscapeError(
            f"The 'distributed' parameter must be True, False or 'auto'. Got {distributed!r} "
            "instead."
        )
    rank, world = dist_info()
    if distributed is True and world == 1:
        import torch.distributed as tdist

        if not (tdist.is_available() and tdist.is_initialized()):
            raise LandscapeError(
                "distributed=True needs an initialised torch.distributed process group (run "
                "under torchrun and call torch.distributed.init_process_group)."
            )
    if distributed is False or (distributed == "auto" and points_sharded()):
        return 0, 1
    return rank, world


class _EveryKth(torch.utils.data.IterableDataset):
    """Batches ``rank, rank + world, ...`` of an iterable of batches (one rank's share)."""

    def __init__(self, batches: Callable[[], Iterator[Any]], rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self) -> Iterator[Any]:
        for i, b in enumerate(self.batches()):
            if i % self.world == self.rank:
                yield b


def shard_plan(data: Any, world: int) -> dict[str, Any]:
    """How :class:`HessianOperator` splits ``data`` over ``world`` ranks (for the record).

    Tensor data and map-style Datasets are cut into contiguous, balanced sample ranges
    (``"split": "samples"``, ``"shards": [[start, stop], ...]`` per rank, see
    :func:`landscape._grid.shard_bounds`); DataLoaders and iterable Datasets keep their batches
    and deal them out in turn (``"split": "batches"``: batch ``i`` on rank ``i % world``).

    Raises
    ------
    LandscapeError
        When there are fewer samples than ranks.
    """
    source = as_data(data) if isinstance(data, StreamData) or not _is_tensor_data(data) \
        else as_data(_data_tensors(data))
    plan: dict[str, Any] = {"world_size": int(world)}
    if isinstance(source, StreamData) and (source.is_loader or not source.map_style):
        plan["split"] = "batches"
        plan["rule"] = "batch i on rank i % world_size"
        return plan
    n = len(source)
    if n < world:
        raise LandscapeError(
            f"The data has {n} samples, fewer than the {world} processes to share them; use at "
            f"most {n} processes (torchrun's nproc-per-node)."
        )
    plan["split"] = "samples"
    plan["shards"] = [list(b) for b in shard_bounds(n, world)]
    return plan


def _shard(source: Any, rank: int, world: int, batch_size: int) -> Any:
    """Rank ``rank``'s share of ``source`` as :func:`shard_plan` describes it."""
    plan = shard_plan(source, world)
    if plan["split"] == "samples":
        lo, hi = plan["shards"][rank]
        if isinstance(source, StreamData):
            return StreamData(torch.utils.data.Subset(source.source, range(lo, hi)), source.name,
                              collate_fn=source.collate_fn, num_workers=source.num_workers)
        return TensorData(source.x[lo:hi], source.y[lo:hi], source.name,
                          n_classes=source.num_classes)
    from torch.utils.data import DataLoader

    src = source.source
    if source.is_loader and source.map_style and src.batch_sampler is not None:
        # the loader's own batches, of which this rank reads only its own samples
        mine = [list(b) for i, b in enumerate(src.batch_sampler) if i % world == rank]
        flat = [j for b in mine for j in b]
        starts = np.cumsum([0] + [len(b) for b in mine])
        local = [list(range(starts[i], starts[i + 1])) for i in range(len(mine))]
        loader = DataLoader(torch.utils.data.Subset(src.dataset, flat), batch_sampler=local,
                            collate_fn=src.collate_fn, num_workers=src.num_workers,
                            pin_memory=src.pin_memory)
        return StreamData(loader, source.name)
    every = _EveryKth(lambda: source.batches(batch_size), rank, world)
    return StreamData(DataLoader(every, batch_size=None), source.name)


def _check_operator_settings(model: Any, bn: str, bn_batch_size: int, what: str, method: str,
                             cache_graph: bool | str, hvp: str, dtype: Any) -> int:
    """The checks of :class:`HessianOperator`'s settings (in the order its messages come);
    ``bn_batch_size`` as an int."""
    check_option("bn", bn, BN_OPTIONS)
    bn_batch_size = check_int("bn_batch_size", bn_batch_size, 1)
    if bn == "recalibrate" and what == "states":
        raise LandscapeError(
            "bn='recalibrate' recomputes the BatchNorm statistics that what='states' makes "
            "variables; use one or the other"
        )
    if not isinstance(model, nn.Module):
        raise LandscapeError(
            f"The 'model' parameter must be a torch.nn.Module. Got {type(model).__name__}."
        )
    check_option("method", method, METHODS)
    if not (isinstance(cache_graph, bool) or cache_graph == "auto"):
        raise LandscapeError(
            f"The 'cache_graph' parameter must be True, False or 'auto'. "
            f"Got {cache_graph!r} instead."
        )
    check_option("hvp", hvp, HVPS)
    if hvp == "finite-difference" and cache_graph is True:
        raise LandscapeError(
            "cache_graph=True applies to hvp='autograd'; finite-difference products keep "
            "no graph (leave cache_graph at 'auto')"
        )
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise LandscapeError(
            f"The 'dtype' parameter must be a floating torch.dtype or None. Got {dtype!r}."
        )
    return bn_batch_size


def _selected_tensors(model: nn.Module, what: str, params: Any, ignore: Any, exclude: Any,
                      include_frozen: bool) -> tuple[dict, dict, list[str]]:
    """The point (the tensors of ``what``, or the given ``params`` dict; tied weights under
    their first name), every state and buffer of the model, and the names of the variables:
    the point's floating tensors that the selection moves and ``ignore`` leaves."""
    globs = params if isinstance(params, str) or (
        params is not None and not isinstance(params, Mapping)) else None
    sel = select_parameters(model, what, params=globs, exclude=exclude,
                            include_frozen=include_frozen)
    # Every buffer (also non-persistent ones, absent from the state dict) is a private,
    # cast copy, so a float64 operator never meets a float32 buffer.
    states = {**named_tensors(model, "states"),
              **{k: v.detach() for k, v in model.named_buffers()}}
    point = dict(named_tensors(model, what) if globs is not None or params is None
                 else params)  # type: ignore[arg-type]
    aliases = tied_aliases(model)
    for k in [k for k in point if k in aliases]:  # tied: one variable, its first name
        v = point.pop(k)
        point.setdefault(aliases[k], v)
    unknown = [k for k in point if k not in states]
    if unknown:
        raise LandscapeError(
            f"The 'params' dict has names the model does not have: {unknown[:3]}; "
            f"use the keys of model.named_parameters() or model.state_dict()."
        )
    skip = {k for k in sel.names if not sel.moves(k)}  # frozen, outside the globs, ints
    if isinstance(ignore, str):
        if ignore != "biasbn":
            raise LandscapeError(
                f"The 'ignore' parameter must be 'biasbn' or an iterable of tensor names. "
                f"Got {ignore!r} instead."
            )
        skip |= {k for k, v in point.items()
                 if torch.as_tensor(v).ndim <= 1 or sel.is_biasbn(k)}
    else:
        ignored = {aliases.get(k, k) for k in (ignore or ())}
        bad = sorted(ignored - set(point))
        if bad:
            raise LandscapeError(
                f"The 'ignore' parameter names tensors that are not among the params: "
                f"{bad[:3]}; valid names are e.g. {list(point)[:3]}."
            )
        skip |= ignored
    selected = [
        k for k, v in point.items() if k not in skip and is_perturbable(torch.as_tensor(v))
    ]
    if not selected:
        raise LandscapeError(
            "No floating-point parameters are left to differentiate; check 'ignore' and "
            "'params'" + (" (frozen parameters are held fixed: pass include_frozen=True)"
                          if sel.frozen and not include_frozen else "") + "."
        )
    return point, states, selected


class HessianOperator(CurvatureOperator):
    """Hessian of the full-data (or subset) loss with respect to selected parameters.

    Parameters
    ----------
    model : nn.Module
        The network. It is called functionally in eval mode; its parameters, buffers and
        training flags are left exactly as they were.
    data : TensorData, pair ``(x, y)``, Dataset or DataLoader
        The samples defining the loss (the whole training set, or a subset of it); Datasets
        and DataLoaders are streamed (kept on the device when they fit
        :data:`landscape.data.DEVICE_BUDGET`).
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        See :mod:`landscape.losses` (per-sample or per-token, weighted by the counts).
    batch_size : int or "auto", default "auto"
        Samples per forward pass (a DataLoader's own batches are kept). The result does not
        depend on it (up to float rounding of the sum over batches). ``"auto"``: the whole
        (local) data in one pass when the estimated memory of its double-backward graph
        (:meth:`graph_bytes`) fits ``memory_budget``, else the largest power of two that
        fits; a choice from model and data sizes only, no timing.
    what : {"weights", "states"}, default "weights"
        Which of the model's tensors are the default ``params``: its parameters, or its whole
        ``state_dict`` (then e.g. BatchNorm running statistics become variables too).
    params : dict[str, Tensor], or str / list of str, optional
        A dict: the point at which to evaluate curvature (default: the model's own tensors).
        Entries may be perturbed copies, e.g. ``theta + a * d``. Tensors of the model missing
        here are taken from the model. A glob pattern or a list of them: the model's own
        tensors, of which only those matching are variables (see
        :func:`~landscape.parameters.select_parameters`).
    ignore : iterable of str or "biasbn", optional
        Names of tensors to hold fixed (excluded from the operator). ``"biasbn"`` excludes every
        bias and every tensor of a normalisation layer (BatchNorm, LayerNorm, GroupNorm, ...)
        or with at most one dimension, as in Li et al. (2018). Default: every floating-point
        tensor of ``params`` is a variable.
    exclude : str or list of str, optional
        Glob patterns of tensors held fixed.
    include_frozen : bool, default False
        Also differentiate parameters with ``requires_grad=False`` (held fixed by default).
        Tied parameters are one variable, under their first name.
    method : {"auto", "graph", "func"}, default "auto"
        ``"graph"``: double backpropagation with :func:`torch.autograd.grad`
        (``create_graph=True``); ``"func"``: forward-over-reverse with :func:`torch.func.jvp`
        of :func:`torch.func.grad`, vectorised over the columns of a block with
        :func:`torch.func.vmap`. ``"auto"`` picks ``"graph"``: on CPU it was as fast or faster
        for every block size measured (digits MLP, 5,962 parameters: 5 ms per product cached,
        6-10 ms uncached, against 22 ms for one ``"func"`` product and 5-9 ms per column of
        a 5-30 column block), it needs no vmap support from the model's ops, and an uncached
        block recomputes each batch's graph once for all its columns. ``"func"`` can pay off
        on accelerators, where vmap runs the columns in parallel.
    hvp : {"autograd", "finite-difference"}, default "autograd"
        Exact products (``method``), or central differences of full-data gradients (see the
        module docstring for the step ``h`` and the error): for kernels without a double
        backward (fused attention runs at its default here) and where the double-backward
        graph does not fit; each product costs two gradients. Its error is ideally about
        ``u^(2/3)`` relative (``u`` the dtype's machine epsilon): measured 1e-10 in float64
        on a small transformer, but 4-8% in float32, whose gradients are rounded coarsely --
        use float64; :meth:`fd_error` estimates it. ``method`` and ``cache_graph`` apply to
        ``"autograd"`` only.
    dtype : torch.dtype, optional
        Compute in this floating-point type (e.g. ``torch.float64`` for tight eigenvalue
        tolerances); parameters, floating buffers and inputs are cast. Default: the dtype of
        the parameters.
    cache_graph : bool or "auto", default "auto"
        ``"graph"`` method only: keep every batch's gradient graph in memory so that a product
        costs one backward pass instead of a forward, a ``create_graph`` backward and a
        backward (ResNet-20 on 256 digits, float32, 1 thread: 0.48 s against 0.73-0.88 s,
        ``benchmarks/bench_hvp.py``). ``"auto"`` caches when the estimated memory of all
        batches' graphs (activations included, :meth:`graph_bytes`) fits ``memory_budget``.
    memory_budget : int, optional
        Bytes the graphs may take (``cache_graph="auto"``, ``batch_size="auto"``). Default:
        :data:`GRAPH_MEMORY_CPU` and at most half the available memory on the CPU; a quarter
        of the device memory and at most half the free memory on CUDA.
    bn : {"eval", "recalibrate"}, default "eval"
        BatchNorm running statistics of the loss: the model's own (``"eval"``), or recomputed
        at the operator's point on ``bn_data`` before any product (``"recalibrate"``; see the
        module docstring). Use ``"recalibrate"`` at a checkpoint whose statistics are unset
        (epoch 0) or stale. Refused with ``what="states"`` (the statistics are variables
        there). A model without BatchNorm statistics is unaffected (:attr:`bn` says so).
    bn_data : data, optional
        Samples of the recalibration (default: ``data``, all of it).
    bn_batch_size : int, default :data:`BN_BATCH_SIZE`
        Samples per forward pass of the recalibration.
    distributed : bool or "auto", default "auto"
        Average over the ranks of the default :mod:`torch.distributed` process group
        (``torchrun``): each rank holds a shard of the data (:func:`shard_plan`: contiguous
        sample ranges, or every ``world``-th batch of a DataLoader), and products, gradients
        and the loss are each rank's share (already divided by the global count ``W``) summed
        by an all-reduce, so every rank gets the same bits and its solver makes the same
        calls; results equal the single-process ones up to float rounding. Every rank must
        then make the same sequence of calls. ``"auto"``: when a process group of more than
        one rank is initialised, except inside a grid runner's loop (ratio maps shard grid
        points, each rank with its own operators over the whole data; see
        :func:`landscape._grid.points_sharded`). ``False``: this process' data only.

    Attributes
    ----------
    shape, numel, names, dtype, device, n_hvp
        See :class:`CurvatureOperator`.
    method : str
        The resolved method, ``"graph"`` or ``"func"``.
    n_samples : int
        ``N``, the number of samples in the loss.
    total_weight : float
        ``W``, the number of counted examples (``N``, or the non-ignored tokens).
    rank, world_size : int
        This process' rank and the number of ranks averaged over (``0, 1`` when local).
    shard : dict or None
        :func:`shard_plan` of the data when ``world_size > 1``.
    hvp : str
        ``"autograd"`` or ``"finite-difference"``.
    fd_step : float
        ``h`` of ``hvp="finite-difference"`` (the length of each difference step; NaN for
        ``"autograd"``).
    bn : str
        ``"eval"`` (the model's running statistics), ``"recalibrated"`` (recomputed on the
        data) or ``"no batchnorm"`` (``bn="recalibrate"`` on a model without BatchNorm running
        statistics: nothing to recompute).

    References
    ----------
    .. [1] B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation,
       1994.
    .. [2] H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of
       Neural Nets", NeurIPS 2018.

    Examples
    --------
    >>> op = HessianOperator(model, data, loss="cross_entropy", dtype=torch.float64)
    >>> hv = op @ torch.randn(op.numel, dtype=torch.float64)
    >>> H_scipy = op.to_scipy()   # for scipy.sparse.linalg
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        *,
        loss: LossSpec = "cross_entropy",
        batch_size: int | str = "auto",
        what: str = "weights",
        params: Mapping[str, Tensor] | None = None,
        ignore: Iterable[str] | str | None = None,
        method: str = "auto",
        dtype: torch.dtype | None = None,
        cache_graph: bool | str = "auto",
        exclude: str | Iterable[str] | None = None,
        hvp: str = "autograd",
        include_frozen: bool = False,
        distributed: bool | str = "auto",
        memory_budget: int | None = None,
        bn: str = "eval",
        bn_data: Any | None = None,
        bn_batch_size: int = BN_BATCH_SIZE,
    ) -> None:
        bn_batch_size = _check_operator_settings(model, bn, bn_batch_size, what, method,
                                                 cache_graph, hvp, dtype)
        self._model = model
        self._loss_fn = resolve_loss(loss)
        if batch_size != "auto":
            batch_size = check_int("batch_size", batch_size, 1)
        self.hvp = hvp
        self.rank, self.world_size = _ranks(distributed)
        point, states, selected = _selected_tensors(model, what, params, ignore, exclude,
                                                    include_frozen)
        first = torch.as_tensor(point[selected[0]])
        self._dtype = dtype or first.dtype
        self._device = first.device
        self.bn = "eval"
        if bn == "recalibrate":
            fresh = recalibrated_bn(model, data if bn_data is None else bn_data, point=point,
                                    loss=loss, batch_size=bn_batch_size, dtype=self._dtype,
                                    device=self._device)
            self.bn = "recalibrated" if fresh else "no batchnorm"
            states.update(fresh)
        self._copy_tensors(model, states, point, selected)
        self._set_data(data, batch_size, memory_budget)
        if self.hvp == "finite-difference":
            cache_graph = False
        elif cache_graph == "auto":
            cache_graph = self.graph_bytes(self._local_samples) <= self.memory_budget
        self.cache_graph = bool(cache_graph)
        self.method = "graph" if method == "auto" else method
        self._graph_cache: list[tuple[list[Tensor], list[Tensor | None]]] | None = None
        self._n_hvp = 0
        self.fd_step = math.nan
        if self.hvp == "finite-difference":
            theta = math.sqrt(sum(float(t.double().pow(2).sum()) for t in self._primals.values()))
            self.fd_step = torch.finfo(self._dtype).eps ** (1 / 3) * (1 + theta)

    def _copy_tensors(self, model: nn.Module, states: dict[str, Tensor],
                      point: dict[str, Tensor], selected: list[str]) -> None:
        """Private copies, cast to the operator's dtype and device, of everything the forward
        pass reads (the model's own buffers can never be touched, whatever the mode): the
        variables ``selected`` in ``_primals``, the rest in ``_fixed``."""

        def cast(t: Tensor) -> Tensor:
            t = torch.as_tensor(t).detach()
            if t.is_floating_point():
                return t.to(device=self._device, dtype=self._dtype)
            return t.to(device=self._device)

        self._fixed: dict[str, Tensor] = {k: cast(v).clone() for k, v in states.items()}
        for k, v in point.items():
            self._fixed[k] = cast(v).clone()
        self._primals: dict[str, Tensor] = {k: self._fixed.pop(k) for k in selected}
        for k in _aliases(model, selected):
            self._fixed.pop(k, None)  # tied weights: functional_call fills the alias itself
        self._names = list(selected)
        self._shapes = [self._primals[k].shape for k in selected]

    def _set_data(self, data: Any, batch_size: int | str, memory_budget: int | None) -> None:
        """The data source (this rank's shard under torch.distributed), the memory budget, the
        batch size and the loss's normalisation."""
        if isinstance(data, StreamData) or not _is_tensor_data(data):
            source = as_data(data)
        else:
            source = as_data(_data_tensors(data))
        self._whole = source  # the first batch calibrates the loss alike on every rank
        self.shard = shard_plan(source, self.world_size) if self.world_size > 1 else None
        self.memory_budget = _memory_budget(self._device) if memory_budget is None \
            else check_int("memory_budget", memory_budget, 0)
        self._per_sample: float | None = None
        self.batch_size = self._choose_batch_size() if batch_size == "auto" else batch_size
        if self.world_size > 1:
            source = _shard(source, self.rank, self.world_size, self.batch_size)
        self._source = source
        # Streamed data may be kept on the device (within the budget); tensor data stay where
        # they are and each batch is moved and cast when used (no second, cast copy).
        self._data = DeviceData(source, self._device, self._dtype) \
            if isinstance(source, StreamData) else None
        self._prepare_loss()

    # -- memory -----------------------------------------------------------------------------
    def graph_bytes(self, samples: int) -> float:
        """Estimated memory of the double-backward graph of ``samples`` samples (bytes).

        Autograd's saved tensors (activations and what the ``create_graph`` backward keeps,
        not the parameters) are counted once, on the data's first small batch, per sample;
        times :data:`GRAPH_MEMORY_FACTOR`, plus the gradients themselves. A deterministic
        function of model, data shapes and dtype; ``inf`` where the probe graph cannot be
        built (the products will then say why).
        """
        if self._per_sample is None:
            try:
                self._per_sample = self._saved_bytes_per_sample()
            except RuntimeError:  # e.g. BatchNorm running statistics as variables
                self._per_sample = math.inf
        grads = 2 * self.numel * self._dtype.itemsize
        return GRAPH_MEMORY_FACTOR * self._per_sample * samples + grads

    def _saved_bytes_per_sample(self) -> float:
        probe = move_batch(first_batch(self._whole), self._device, self._dtype)
        own = {t.untyped_storage().data_ptr() for t in (*self._fixed.values(),
                                                        *self._primals.values())}
        seen: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            with contextlib.suppress(RuntimeError, NotImplementedError):
                st = t.untyped_storage()
                if st.data_ptr() not in own:
                    seen[st.data_ptr()] = st.nbytes()
            return t

        loss_fn, fixed = self._loss_fn, self._fixed
        with torch.enable_grad(), curvature_mode(self._model), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            leaves = {k: v.detach().requires_grad_(True) for k, v in self._primals.items()}
            total = loss_fn.model_terms(self._caller({**fixed, **leaves}), probe).total
            if total.requires_grad and self.hvp == "autograd":  # finite differences: no 2nd
                torch.autograd.grad(total, list(leaves.values()), create_graph=True,
                                    allow_unused=True)
        return sum(seen.values()) / max(batch_len(probe), 1)

    def _choose_batch_size(self) -> int:
        """``batch_size="auto"``: the whole local data if its graph fits the budget, else the
        largest power of two that fits (at least 1)."""
        n = _known_length(self._whole)
        if n is None:
            return DEFAULT_BATCH
        if self.shard is not None and self.shard["split"] == "samples":
            lo, hi = self.shard["shards"][self.rank]
            n = hi - lo
        if self.graph_bytes(n) <= self.memory_budget:
            return max(n, 1)
        if not math.isfinite(self.graph_bytes(1)):
            return min(n, DEFAULT_BATCH)
        bs = 1
        while bs * 2 < n and self.graph_bytes(bs * 2) <= self.memory_budget:
            bs *= 2
        return bs

    # -- data -----------------------------------------------------------------------------
    def _prepare_loss(self) -> None:
        """Check the targets, calibrate the loss on a first batch and count ``N`` and ``W``."""
        loss_fn = self._loss_fn
        probe = move_batch(first_batch(self._whole), self._device, self._dtype)
        loss_fn.check_batch(probe)
        params = {**self._fixed, **self._primals}
        with torch.no_grad(), curvature_mode(self._model):
            if not loss_fn.takes_model:
                loss_fn.calibrate(functional_call_batch(self._model, params, probe), probe)
            n, w = 0, 0.0
            for b in self._batches():
                n += batch_len(b)
                bw = loss_fn.weight(b)
                if bw is None:  # only the loss value tells (a user loss)
                    bw = float(loss_fn.model_terms(self._caller(params), b).weight)
                w += bw
        self._local_samples = n
        if self.world_size > 1:
            counts = all_reduce_sum(torch.tensor([float(n), float(w)], dtype=torch.float64,
                                                 device=self._device))
            n, w = int(counts[0]), float(counts[1])
        if n == 0:
            raise LandscapeError("The data set is empty; pass at least one sample.")
        if w <= 0:
            raise LandscapeError(
                "The data counts no example for the loss (every target is ignore_index -100)."
            )
        self.n_samples = n
        self.total_weight = w

    def _batches(self) -> Iterator[Any]:
        if self._data is not None:
            yield from self._data.batches(self.batch_size)
            return
        for b in self._source.batches(self.batch_size):
            yield move_batch(b, self._device, self._dtype)

    def _caller(self, tensors: Mapping[str, Tensor]) -> Callable[..., Any]:
        model = self._model

        def run(*args: Any, **kwargs: Any) -> Any:
            return torch.func.functional_call(model, dict(tensors), args, kwargs, strict=False)

        return run

    def _batch_loss(self, batch: Any) -> Callable[[dict[str, Tensor]], Tensor]:
        """``f(selected params) -> sum of the batch's counted losses / W``."""
        fixed, loss_fn, w = self._fixed, self._loss_fn, self.total_weight

        def f(sel: dict[str, Tensor]) -> Tensor:
            return loss_fn.model_terms(self._caller({**fixed, **sel}), batch).total / w

        return f

    # -- loss and gradient ----------------------------------------------------------------
    def loss(self) -> float:
        """Full-data loss ``L(theta)`` at the operator's point."""
        total = torch.zeros((), dtype=self._dtype, device=self._device)
        with torch.no_grad(), curvature_mode(self._model):
            for b in self._batches():
                total = total + self._batch_loss(b)(self._primals)
        return float(self._reduce(total))

    def gradient(self) -> Tensor:
        """Flat full-data gradient ``dL/dtheta`` (zeros for tensors that do not reach the loss)."""
        return self._reduce(self._local_gradient(self._primals))

    def _local_gradient(self, point: Mapping[str, Tensor]) -> Tensor:
        """Flat gradient of this rank's share of the loss at ``point`` (the selected tensors, in
        ``names`` order). Finite differences leave the attention kernels at their defaults."""
        mode = _eval_mode(self._model) if self.hvp == "finite-difference" \
            else curvature_mode(self._model)
        grads = [torch.zeros_like(point[k]) for k in self._names]
        with torch.enable_grad(), mode:
            for b in self._batches():
                leaves = {k: point[k].detach().requires_grad_(True) for k in self._names}
                value = self._batch_loss(b)(leaves)
                gs = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
                for acc, g in zip(grads, gs, strict=True):
                    if g is not None:
                        acc.add_(g)
        return torch.cat([g.reshape(-1) for g in grads])

    # -- finite differences ---------------------------------------------------------------
    def _fd_product(self, v: Tensor, h: float) -> Tensor:
        """This rank's share of ``D_h v``: central difference of gradients at ``theta +- eps v``,
        ``eps = h / ||v||``, at private copies of the point (the model is never written to)."""
        norm = float(torch.linalg.vector_norm(v.double()))
        if norm == 0.0 or not math.isfinite(norm):
            return torch.zeros_like(v) if norm == 0.0 else torch.full_like(v, math.nan)
        eps = h / norm
        step = self.unflatten(v)
        plus = {k: self._primals[k] + eps * step[k] for k in self._names}
        minus = {k: self._primals[k] - eps * step[k] for k in self._names}
        return (self._local_gradient(plus) - self._local_gradient(minus)) / (2 * eps)

    def _fd_matmat(self, V: Tensor) -> Tensor:
        out = torch.empty_like(V)
        for j in range(V.shape[1]):
            out[:, j] = self._fd_product(V[:, j].contiguous(), self.fd_step)
        return out

    def fd_error(self, v: Tensor | np.ndarray | None = None, *, seed: int = 0) -> float:
        """Estimated error of a finite-difference product along ``v``, per unit of ``||v||``.

        ``(||D_{2h} v - D_h v|| + ||D_{h/2} v - D_h v||) / ||v||``. With ``D_h = Hv + T + R``
        (truncation ``T = c h^2 + O(h^4)``, rounding ``R`` growing like ``1/h``), the first
        difference is about ``3 ||T||`` where truncation dominates (Richardson), the second at
        least about ``||R||`` where rounding dominates (``R_{h/2}`` is ``2R`` where the rounding
        is systematic, independent of ``R`` and twice as large where it is not), so the sum is
        at least about ``||T|| + ||R||``; measured on a small transformer it was 2-4x the
        actual error in float64 and float32 (``tests/test_hessian_fd.py``).
        The error of a Rayleigh quotient ``v^T D_h v`` at a unit ``v`` (an eigenvalue found
        along ``v``) is at most this. Costs three products (counted in :attr:`n_hvp`).

        Parameters
        ----------
        v : Tensor or ndarray of shape (n,), optional
            The direction (default: a standard normal vector drawn with ``seed``).
        seed : int, default 0
            Seed of the default direction.

        Returns
        -------
        float
            The estimate (``0.0`` for a zero vector).

        Raises
        ------
        LandscapeError
            When the operator's ``hvp`` is ``"autograd"`` (exact products).
        """
        if self.hvp != "finite-difference":
            raise LandscapeError("fd_error applies to hvp='finite-difference' (this operator's "
                                 "products are exact)")
        if v is None:
            gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
            v = torch.randn(self.numel, generator=gen, dtype=torch.float64)
        v = self._as_input(v, 1)
        norm = float(torch.linalg.vector_norm(v.double()))
        if norm == 0.0:
            return 0.0
        d1, d2, d05 = (self._reduce(self._fd_product(v, f * self.fd_step))
                       for f in (1.0, 2.0, 0.5))
        self._n_hvp += 3
        return (float(torch.linalg.vector_norm((d2 - d1).double()))
                + float(torch.linalg.vector_norm((d05 - d1).double()))) / norm

    # -- products -------------------------------------------------------------------------
    def _graphs(self) -> Iterator[tuple[list[Tensor], list[Tensor | None]]]:
        """Per batch: (leaf params, their gradients with ``create_graph=True``)."""
        if self._graph_cache is not None:
            yield from self._graph_cache
            return
        cache: list[tuple[list[Tensor], list[Tensor | None]]] = []
        with torch.enable_grad(), curvature_mode(self._model):
            for b in self._batches():
                leaves = {k: v.detach().requires_grad_(True) for k, v in self._primals.items()}
                value = self._batch_loss(b)(leaves)
                gs = torch.autograd.grad(
                    value, list(leaves.values()), create_graph=True, allow_unused=True
                )
                item = (list(leaves.values()), list(gs))
                if self.cache_graph:
                    cache.append(item)
                yield item
        if self.cache_graph:
            self._graph_cache = cache

    def _views(self, v: Tensor) -> list[Tensor]:
        """A contiguous flat vector as per-tensor views, in ``names`` order."""
        sizes = [s.numel() for s in self._shapes]
        return [t.view(s) for t, s in zip(v.split(sizes), self._shapes, strict=True)]

    def _graph_matmat(self, V: Tensor) -> Tensor:
        k = V.shape[1]
        # contiguous per-tensor views of each column (strided views slow the backward down)
        out = torch.zeros(k, self.numel, dtype=self._dtype, device=self._device)
        cols = [self._views(V[:, j].contiguous()) for j in range(k)]
        rows = [self._views(out[j]) for j in range(k)]
        # Building a graph needs eval mode and the math attention kernel (_graphs sets them);
        # a backward through a built one needs neither, nor grad mode.
        for leaves, gs in self._graphs():
            live = [i for i, g in enumerate(gs) if g is not None and g.requires_grad]
            if not live:
                continue  # the gradient does not depend on the params: zero curvature
            outputs = [gs[i] for i in live]
            for j in range(k):
                # H v = d(g . v)/dtheta: one backward with v as the gradient's cotangent
                hv = torch.autograd.grad(
                    outputs, leaves, grad_outputs=[cols[j][i] for i in live],
                    retain_graph=self.cache_graph or j < k - 1, allow_unused=True,
                )
                for acc, h in zip(rows[j], hv, strict=True):
                    if h is not None:
                        acc.add_(h)
        return out.t()

    def _func_matmat(self, V: Tensor) -> Tensor:
        tangents = self._split_block(V)
        primals = self._primals
        out = torch.zeros(V.shape[1], self.numel, dtype=self._dtype, device=self._device)
        with torch.enable_grad(), curvature_mode(self._model):
            for b in self._batches():
                grad_f = torch.func.grad(self._batch_loss(b))

                def one(t: dict[str, Tensor], grad_f: Callable = grad_f) -> dict[str, Tensor]:
                    return torch.func.jvp(grad_f, (primals,), (t,))[1]

                if V.shape[1] == 1:  # no vmap needed for a single vector
                    single = one({name: t[0] for name, t in tangents.items()})
                    hv = {name: t.unsqueeze(0) for name, t in single.items()}
                else:
                    hv = torch.func.vmap(one)(tangents)
                out += torch.cat([hv[name].reshape(V.shape[1], -1) for name in self._names], 1)
        return out.t()

    def _matvec(self, v: Tensor) -> Tensor:
        return self._matmat(v.reshape(-1, 1)).reshape(-1)

    def _matmat(self, V: Tensor) -> Tensor:
        if self.hvp == "finite-difference":
            return self._reduce(self._fd_matmat(V))
        if self.method == "graph":
            return self._reduce(self._graph_matmat(V))
        return self._reduce(self._func_matmat(V))

    def _reduce(self, t: Tensor) -> Tensor:
        """This rank's share summed over the ranks (identity when local)."""
        if self.world_size == 1:
            return t
        if points_sharded():
            raise LandscapeError(
                "This HessianOperator averages over the torch.distributed ranks but is used "
                "inside a grid loop where each rank computes its own points; build it there "
                "or pass distributed=False."
            )
        return all_reduce_sum(t.contiguous())

    def __repr__(self) -> str:
        ranks = f", ranks={self.world_size}" if self.world_size > 1 else ""
        how = f"method={self.method!r}" if self.hvp == "autograd" else f"hvp={self.hvp!r}"
        return (
            f"HessianOperator(n={self.numel}, N={self.n_samples}, {how}, "
            f"dtype={self._dtype}{ranks})"
        )


def hvp(
    model: nn.Module,
    data: Any,
    vector: Mapping[str, Tensor],
    *,
    params: Mapping[str, Tensor] | None = None,
    loss: LossSpec = "cross_entropy",
    batch_size: int | str = "auto",
    method: str = "auto",
    dtype: torch.dtype | None = None,
) -> dict[str, Tensor]:
    """Hessian-vector product of the full-data loss, dict in and dict out.

    The Hessian is taken with respect to the tensors named in ``vector`` (the others are held
    at their values in ``params`` / the model).

    Parameters
    ----------
    model, data, params, loss, batch_size, method, dtype
        As for :class:`HessianOperator`.
    vector : dict[str, Tensor]
        The direction ``v``; its keys select the variables.

    Returns
    -------
    dict[str, Tensor]
        ``H v`` with the same keys and shapes as ``vector``.

    References
    ----------
    .. [1] B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation,
       1994.
    """
    point = dict(named_tensors(model, "weights") if params is None else params)
    missing = [k for k in vector if k not in point]
    if missing:
        states = named_tensors(model, "states")
        for k in missing:
            if k not in states:
                raise LandscapeError(
                    f"The 'vector' dict names '{k}', which the model does not have."
                )
            point[k] = states[k]
    ignore = [k for k in point if k not in vector]
    op = HessianOperator(
        model,
        data,
        loss=loss,
        batch_size=batch_size,
        params=point,
        ignore=ignore,
        method=method,
        dtype=dtype,
        cache_graph=False,
        include_frozen=True,  # the vector's keys select the variables
    )
    return op.unflatten(op @ op.flatten(vector))
