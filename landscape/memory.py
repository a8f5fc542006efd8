"""Predicted peak memory of the long runs: surfaces, curvature solvers and trajectories.

A run's peak host memory is the sum of what the engine holds at once, counted from the model
and one batch of data before anything large is allocated:

* **parameter storage**, exactly: bytes per parameter times the parameter count, for every copy
  the engine keeps. A surface (:func:`~landscape.surface.compute_surface`) holds the caller's
  model, the evaluator's private copy of the model (:class:`~landscape.evaluation.Evaluator`),
  that copy's saved origin (``Evaluator.reset``) and the ``K`` directions (1 or 2), each in its
  own dtype: ``(3 s_model + K s_dir) P`` bytes for ``P`` parameters of ``s`` bytes
  (``direction_dtype=torch.bfloat16`` makes ``s_dir = 2``). A curvature run
  (:func:`~landscape.hessian.compute_curvature`) holds the model, the operator's private copy,
  and its solver's vectors: Lanczos ``2 ncv + 1`` vectors of the solver dtype (basis, products
  and the new direction), one product's output and input in the HVP dtype, and the eigenvectors
  it returns (float64); a Hutchinson block of ``b`` probes ``b (3 s_solver + 2 s_hvp)`` bytes per
  parameter; Hutch++ with ``r = m // 3`` sketch and ``g = m - 2r`` probe vectors
  ``(4 r + 4 g) s_solver + 2 max(r, g) s_hvp``.
* **an HVP's working memory**: by autograd (double backward), the saved tensors of the forward
  and of the ``create_graph`` backward, measured by autograd's saved-tensor hooks on the data's
  first batch, times :data:`~landscape.hessian.operator.GRAPH_MEMORY_FACTOR`, plus two
  gradients (:meth:`HessianOperator.graph_bytes`); by finite differences, the saved tensors of
  one gradient pass (no double-backward graph, so about a third of the autograd graph on a
  transformer), plus the two shifted parameter points and the two gradients of the central
  difference (``4 s_hvp P``).
* **activations of one evaluation batch** (surfaces): the largest set of intermediate tensors
  alive at once during an inference forward, measured by a probe forward on one sample of the
  first batch (a :class:`~torch.utils._python_dispatch.TorchDispatchMode` that sees every
  tensor each operator returns and when the last reference to its storage dies) and scaled to
  the batch size. They alternate with the **file image**: every flush of a surface builds its
  whole HDF5 file in memory (:func:`landscape.storage.update_file`), the directions its bulk,
  so the larger of the two counts.

The interpreter, torch and the imported libraries are not in the model (about 0.3-0.6 GiB of
resident memory, measured by ``benchmarks/bench_memory_model.py``); a check before a run
compares what the run will still allocate (the terms not already held, see
:attr:`MemoryEstimate.held`) with the memory the system reports available now.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ._grid import check_fits_in_memory
from .errors import check_int

__all__ = ["MemoryEstimate", "tensor_bytes", "model_bytes", "forward_peak_bytes",
           "surface_memory", "curvature_memory", "lanczos_vector_bytes", "trace_vector_bytes",
           "hvp_memory",
           "trajectory_memory", "check_memory", "format_bytes"]

GIB = 2**30


def format_bytes(n: float) -> str:
    """``n`` bytes as ``"1.23 GiB"`` / ``"45.6 MiB"`` / ``"789 KiB"``."""
    for unit, scale in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:,.3g} {unit}" if n < 1000 * scale else f"{n / scale:,.0f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted peak memory of one run, term by term.

    Attributes
    ----------
    what : str
        The run (``"the surface"``, ``"the curvature run"``), for messages.
    terms : dict[str, int]
        Bytes of each thing held at the peak, by name (``"model"``, ``"directions"``, ...).
    held : tuple of str
        The terms already allocated when the estimate is made (e.g. the caller's model and
        the directions it passed): :meth:`check` counts only the others.
    """

    what: str
    terms: dict[str, int]
    held: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        """Predicted peak bytes (every term; not the interpreter and libraries)."""
        return int(sum(self.terms.values()))

    @property
    def to_allocate(self) -> int:
        """Bytes of the terms not yet held."""
        return int(sum(v for k, v in self.terms.items() if k not in self.held))

    def describe(self) -> str:
        """``"2.9 GiB (model 475 MiB + evaluation copy 475 MiB + ...)"``."""
        parts = " + ".join(f"{k} {format_bytes(v)}" for k, v in self.terms.items() if v)
        return f"{format_bytes(self.total)} ({parts})"

    def check(self, override: str = "check_memory", fix: str | None = None) -> None:
        """Refuse the run when what it still allocates exceeds the available memory.

        Parameters
        ----------
        override : str
            The parameter that turns the check off, named in the message.
        fix : str, optional
            What else to do, named in the message before the override.

        Raises
        ------
        LandscapeError
            One line with the prediction, term by term, and the memory available.
        """
        tail = f"pass {override}=False to run it anyway"
        tail = f"{fix}; or {tail}" if fix else tail
        check_fits_in_memory(
            self.to_allocate, f"{self.what} is predicted to peak at {self.describe()}; the part "
            "not yet allocated would", tail, available=True)


def tensor_bytes(tensors: Mapping[str, Tensor] | Iterable[Tensor],
                 dtype: torch.dtype | None = None) -> int:
    """Bytes of ``tensors``, each storage once (tied and aliased tensors count once).

    Parameters
    ----------
    tensors : dict of Tensor or iterable of Tensor
    dtype : torch.dtype, optional
        Count floating tensors as if held in this dtype (integer tensors keep theirs).
    """
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    seen: dict[tuple[int, int, tuple[int, ...]], int] = {}
    for t in values:
        if not isinstance(t, Tensor):
            continue
        size = (dtype.itemsize if dtype is not None and t.is_floating_point()
                else t.element_size())
        key = (t.data_ptr(), t.element_size(), tuple(t.shape)) if t.numel() else (id(t), 0, ())
        seen[key] = t.numel() * size
    return int(sum(seen.values()))


def model_bytes(model: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of a model's parameters and buffers (its ``state_dict``, each storage once)."""
    return tensor_bytes(model.state_dict(keep_vars=True), dtype)


class _LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """Peak bytes of the tensor storages created under this mode and alive at once."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, tuple[int, list[weakref.ref]]] = {}
        self.now = 0
        self.peak = 0

    def _prune(self) -> None:
        for key in [k for k, (_, refs) in self.refs.items()
                    if all(r() is None for r in refs)]:
            self.now -= self.refs.pop(key)[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        flat = out if isinstance(out, tuple | list) else (out,)
        self._prune()
        for t in flat:
            if not isinstance(t, Tensor) or t.device.type == "meta":
                continue
            with contextlib.suppress(RuntimeError, NotImplementedError):
                st = t.untyped_storage()
                key = st.data_ptr()
                if not key:
                    continue
                if key in self.refs:
                    self.refs[key][1].append(weakref.ref(t))
                else:
                    self.refs[key] = (st.nbytes(), [weakref.ref(t)])
                    self.now += st.nbytes()
        self.peak = max(self.peak, self.now)
        return out


def forward_peak_bytes(model: nn.Module, batch: Any, *, batch_size: int | None = None,
                       dtype: torch.dtype | None = None, probe_samples: int = 1) -> int:
    """Largest total of intermediate tensors alive at once in an inference forward.

    Measured on the first ``probe_samples`` samples of ``batch`` (the outputs of every
    operator, each storage counted until its last reference dies; inputs and parameters are
    not counted) and scaled in proportion to ``batch_size`` samples (default: the batch's own
    length): activations grow with the batch, and one sample keeps the probe cheap. The
    model is not modified (its train/eval flags are restored); the loss is not included (its
    terms are of the size of the logits, which are counted).

    Parameters
    ----------
    model : nn.Module
    batch : tensor, tuple or dict batch
        As :func:`landscape.batches.call_model` takes it.
    batch_size : int, optional
        Samples to extrapolate to.
    dtype : torch.dtype, optional
        Evaluation dtype: the probe runs in the model's own dtype and the bytes are scaled
        by the ratio of the item sizes.
    probe_samples : int, default=1
        Samples of the probe forward.
    """
    from .batches import batch_len, call_model, move_batch
    from .data.stream import head_batch

    n = max(batch_len(batch), 1)
    target = n if batch_size is None else check_int("batch_size", batch_size, 1)
    probe_samples = check_int("probe_samples", probe_samples, 1)
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    own = ref.dtype if ref is not None else torch.float32
    scale = dtype.itemsize / own.itemsize if dtype is not None else 1.0
    modes = {m: m.training for m in model.modules()}
    probe = min(n, probe_samples)
    try:
        model.eval()
        b = move_batch(head_batch(batch, probe), device, own)
        mode = _LiveBytes()
        with torch.inference_mode(), mode:
            out = call_model(model, b)
            del out
    finally:
        for m, training in modes.items():
            m.training = training
    return int(mode.peak / probe * target * scale)


def surface_memory(model: nn.Module, directions: Iterable[Mapping[str, Tensor]], batch: Any,
                   *, batch_size: int | None = None, what: str = "weights",
                   dtype: torch.dtype | None = None,
                   direction_dtype: torch.dtype | None = None,
                   activations: int | None = None) -> MemoryEstimate:
    """Predicted peak memory of :func:`~landscape.surface.compute_surface`.

    Parameters
    ----------
    model : nn.Module
        The model at the origin (the caller's; held).
    directions : sequence of dict[str, Tensor]
        The direction vectors (held, in their dtype unless ``direction_dtype`` converts them).
    batch : batch
        A batch of the evaluation data (the first), for the activation probe.
    batch_size : int, optional
        Samples per evaluation batch (default the batch's length).
    what : {"weights", "states"}
        The perturbed tensors (the evaluator's saved origin holds a copy of them).
    dtype : torch.dtype, optional
        Evaluation dtype (the evaluator's copies are cast to it).
    direction_dtype : torch.dtype, optional
        Dtype the engine holds the directions in.
    activations : int, optional
        Bytes of the activations, when known (else measured by :func:`forward_peak_bytes`).

    Returns
    -------
    MemoryEstimate
        Terms ``model``, ``evaluation copy``, ``saved origin``, ``directions`` and the larger
        of a forward's activations and the in-memory image of the file written at every
        flush (its bulk: the directions); ``model`` and (unless converted) ``directions``
        are held already.
    """
    from .parameters import named_tensors

    dirs = list(directions)
    own = model_bytes(model)
    if activations is None:
        activations = forward_peak_bytes(model, batch, batch_size=batch_size, dtype=dtype)
    d_bytes = sum(tensor_bytes(d, direction_dtype) for d in dirs)
    converted = direction_dtype is not None and any(
        v.dtype != direction_dtype for d in dirs for v in d.values() if v.is_floating_point())
    terms = {
        "model": own,
        "evaluation copy": model_bytes(model, dtype),
        "saved origin": tensor_bytes(named_tensors(model, what), dtype),
        "directions": d_bytes,
        # not at once: a forward's activations, or the image of the file being written
        # (built in memory by landscape.storage.update_file, the directions its bulk)
        "activations or file image": max(int(activations), d_bytes),
    }
    held = ("model",) if converted else ("model", "directions")
    return MemoryEstimate("the surface", terms, held)


def lanczos_vector_bytes(n: int, ncv: int, k: int = 1, *,
                         solver_dtype: torch.dtype = torch.float64,
                         hvp_dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a Lanczos solve's vectors of length ``n``: basis and products ``2 ncv``
    and the new direction in the solver dtype, one product's input cast and output in the
    HVP dtype (when the dtypes differ; the output only otherwise), and the ``k`` float64
    eigenvectors returned."""
    s, o = solver_dtype.itemsize, hvp_dtype.itemsize
    per = (2 * ncv + 1) * s + (2 * o if s != o else o) + 8 * k
    return int(n * per)


def trace_vector_bytes(n: int, samples: int, method: str = "hutchpp", *,
                       solver_dtype: torch.dtype = torch.float64,
                       hvp_dtype: torch.dtype = torch.float32, block_size: int = 10) -> int:
    """Bytes of a trace estimate's vectors of length ``n`` (see the module docstring)."""
    s, o = solver_dtype.itemsize, hvp_dtype.itemsize
    if method == "hutchinson":
        b = min(block_size, samples)
        return int(n * b * (3 * s + 2 * o))
    r = samples // 3
    g = samples - 2 * r
    return int(n * ((4 * r + 4 * g) * s + 2 * max(r, g) * o))


def hvp_memory(op: Any, samples: int | None = None) -> int:
    """Working memory of one product of a :class:`~landscape.hessian.HessianOperator`.

    Autograd: :meth:`~landscape.hessian.HessianOperator.graph_bytes` of one batch (saved
    tensors of the double-backward graph times ``GRAPH_MEMORY_FACTOR``, plus two gradients).
    Finite differences: the same of a single-backward graph plus the two shifted points and
    the two gradients of the central difference. Operators without ``graph_bytes`` (the GGN
    and Fisher operators) count 0: their products are not modelled.
    """
    if not hasattr(op, "graph_bytes"):  # e.g. GGN / Fisher operators: not modelled
        return 0
    if samples is None:
        samples = min(op.batch_size, op.n_samples) if isinstance(op.batch_size, int) \
            else op.n_samples
    graph = op.graph_bytes(samples)
    if not math.isfinite(graph):
        graph = 0.0
    if getattr(op, "hvp", "autograd") == "finite-difference":
        graph += 4 * op.numel * op.dtype.itemsize
    return int(graph)


def curvature_memory(op: Any, model: nn.Module | None = None, *, top_k: int = 5,
                     which: str = "LA", ncv: int | None = None, min_eig: bool = False,
                     trace: bool = False, trace_method: str = "hutchpp",
                     trace_samples: int = 99, density: bool = False,
                     density_steps: int = 80, density_runs: int = 5,
                     solver_dtype: torch.dtype = torch.float64) -> MemoryEstimate:
    """Predicted peak memory of :func:`~landscape.hessian.compute_curvature` on ``op``.

    Terms: the caller's model and the operator's private copy of its tensors (both held when
    the operator exists), one product's working memory (:func:`hvp_memory`), and the largest
    of the solvers' vector sets (Lanczos with ``ncv`` vectors for the top eigenvalues and the
    smallest, the trace's probe block plus the top eigenvectors kept meanwhile, the SLQ
    basis), each counted at its full size (a basis that converges early touches fewer pages).

    Parameters
    ----------
    op : HessianOperator
        The operator (its ``numel``, ``dtype``, ``graph_bytes`` and batches).
    model : nn.Module, optional
        The caller's model (counted as held).
    top_k, which, ncv, min_eig, trace, trace_method, trace_samples : as compute_curvature
    density, density_steps, density_runs, solver_dtype : as compute_curvature
        As :func:`~landscape.hessian.compute_curvature` takes them (``ncv=None``: the
        solvers' defaults).
    """
    from .hessian.lanczos import MIN_NCV, default_ncv

    n, o = op.numel, op.dtype
    s = solver_dtype
    phases = [0]
    if top_k:
        k_ncv = ncv if ncv is not None else default_ncv(top_k, which, n, s.itemsize)
        phases.append(lanczos_vector_bytes(n, min(k_ncv, n), top_k, solver_dtype=s,
                                           hvp_dtype=o))
    if min_eig:
        m_ncv = ncv if ncv is not None else default_ncv(1, "SA", n, s.itemsize)
        phases.append(lanczos_vector_bytes(n, min(m_ncv, n, MIN_NCV if ncv is None else n),
                                           1, solver_dtype=s, hvp_dtype=o) + 8 * n * top_k)
    if trace:
        phases.append(trace_vector_bytes(n, trace_samples, trace_method, solver_dtype=s,
                                         hvp_dtype=o) + 8 * n * top_k)
    if density:
        phases.append(n * (density_runs * min(density_steps, n) + 2) * s.itemsize
                      + 2 * n * o.itemsize + 8 * n * top_k)
    copies = tensor_bytes([*getattr(op, "_primals", {}).values(),
                           *getattr(op, "_fixed", {}).values()])
    terms = {
        "model": model_bytes(model) if model is not None else 0,
        "operator copy": copies,
        "HVP working memory": hvp_memory(op),
        "solver vectors": max(phases),
    }
    return MemoryEstimate("the curvature run", terms, ("model", "operator copy"))


def trajectory_memory(n_selected: int, n_checkpoints: int, state_bytes: int, *,
                      n_components: int = 2) -> MemoryEstimate:
    """Predicted peak memory of :meth:`~landscape.trajectory.TrajectoryPCA.fit`.

    At its peak (the QR of the random-direction baseline, after the PCA): the final model's
    tensors (copied, ``state_bytes``), the float64 matrix of the differences
    (``n_checkpoints x n_selected``) and the float64 vectors of length ``n_selected``: the
    final point, the mean, the ``k`` components, the ``k`` random directions and the ``4k``
    that :func:`numpy.linalg.qr` holds while it orthonormalises them (its working copy, the
    factorisation, ``Q`` and its working copy; measured: peak RSS 4.00 ``k x n`` arrays above
    the input's at n = 2e7, k = 2), ``2 + 6k`` in all.
    """
    terms = {
        "final copy": int(state_bytes),
        "difference matrix": 8 * n_checkpoints * n_selected,
        "float64 vectors": 8 * (2 + 6 * n_components) * n_selected,
    }
    return MemoryEstimate("the trajectory PCA", terms)


def check_memory(estimate: MemoryEstimate, check: bool = True, *,
                 override: str = "check_memory", fix: str | None = None) -> MemoryEstimate:
    """:meth:`MemoryEstimate.check` when ``check`` is true; returns ``estimate``."""
    if check:
        estimate.check(override, fix)
    return estimate

