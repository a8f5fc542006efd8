"""Loss and accuracy of a model at given parameters, over whole datasets.

:class:`Evaluator` is the engine behind every surface: it owns a private copy of the model on
the evaluation device and the data already on that device, so evaluating a point is one copy of
the perturbed tensors into the copy plus forward passes under :func:`torch.inference_mode`; no
file is read and the caller's model is never modified.

Data are anything :mod:`landscape.data` takes: :class:`~landscape.data.TensorData` or
``(x, y)`` tensors (held on the device whole and sliced, the fast path), or a map-style or
iterable ``Dataset`` / ``DataLoader`` (:class:`~landscape.data.StreamData`: kept on the device
after the first pass when it fits ``data_budget`` bytes, streamed batch by batch otherwise).
A DataLoader keeps its own batch size (``batch_size`` does not apply to it: a differing one
is warned about once, and :meth:`Evaluator.choose_batch_size` returns the loaders' batch
size, which surfaces record as ``batch_size_used``); one that shuffles or drops its last
batch is read in order and whole, since every quantity here is a mean over the full data
(see :class:`~landscape.data.StreamData`).
Batches and outputs follow :mod:`landscape.batches` (``model(x)`` or ``model(**batch)``;
tensor, tuple, mapping or ``.logits`` outputs) and losses :mod:`landscape.losses`.

The batch size of ``batch_size="auto"`` surfaces comes from :meth:`Evaluator.choose_batch_size`:
the largest candidate whose largest intermediate tensor fits half the CPU's L2 cache (1/64 of
the device memory on CUDA), from two tiny forward passes -- no timing, so fresh runs on one
machine choose alike.

The dataset loss is the mean over every counted example (sample, or token for sequence
logits), accumulated in float64 over batches of any size (the last batch may be smaller), so
it does not depend on ``batch_size`` beyond float32 rounding inside a batch.

Standard error of the data-set mean (``Metrics.loss_se``), from the same pass: with sample
``i`` contributing loss sum ``t_i`` and weight ``w_i`` (``w_i = 1`` per sample, or its number
of counted tokens for sequence losses; :meth:`~landscape.losses.LossTerms.sample_terms`), the
loss is the ratio ``R = Σ t_i / Σ w_i`` and its standard error the ratio-estimator
(linearisation) one over the ``n`` samples of positive weight::

    SE(R)² = n / (n - 1) · Σ_i (t_i - R w_i)² / (Σ_i w_i)²,

which for equal weights is exactly ``s / √n`` (``s`` the sample standard deviation,
``ddof=1``). It is accumulated batch by batch in float64 without the cancellation of raw
power sums: each batch's centred sums ``Σ (t_i - R_b w_i)^2`` and ``Σ w_i (t_i - R_b w_i)``
about its own ratio ``R_b`` are merged into the running ones by the exact shift of Chan,
Golub and LeVeque (1979), so the result does not depend on the batch size (nor on streamed
or in-memory data) beyond rounding. It treats the samples as independent draws (with
replacement), so for a subset drawn without replacement from ``N`` samples it overstates the
error of the subset's mean as an estimate of the full-data mean by ``1/√(1 - n/N)``. NaN
where it is undefined: fewer than two samples, a non-finite loss, or a user loss that returns
a mean or ``(total, weight)`` instead of per-sample losses.

Points to a stated precision (``rel_precision=R``): every dataset is read in a fixed random
order of its samples (:func:`~landscape.data.permuted`, seeded with ``precision_seed``; the
same order at every point, so that neighbouring points see the same samples and a resumed or
repeated evaluation gives the same bits), and the evaluation of a dataset stops after the
first batch -- from the ``min_batches``-th on, and once ``min_samples`` samples are read -- at
which the standard error above of the samples read so far is at most ``R * |loss|``, or when
the data run out. The order is random
because data sets are often stored sorted (by class, by source): a prefix of a sorted set is a
biased sample, and its standard error says nothing of that bias. ``Metrics.n`` is then the
number of samples read and the loss, accuracy and standard error are theirs. The standard
error is that of independent draws; the stopping itself is not corrected for (the first
standard error under the threshold is used), and a heavy tail not yet seen in the first
batches makes it too small -- the floors guard against the smallest samples: on a 5x5
ResNet-20 surface with heavy-tailed per-sample losses (``benchmarks/bench_rel_precision.py``),
stops after 96-128 samples left 2 of 25 points beyond twice the requested error (2.6 R), and a
floor of 256 samples none (1.7 R at most), hence ``min_samples=256``.

BatchNorm policy (``bn``):

``"eval"`` (default)
    running statistics of the checkpoint (or of the direction, with ``what="states"``).
``"recalibrate"``
    at every point the running statistics are recomputed as the exact (cumulative) average over
    the first ``bn_batches`` training batches, in order, then the model is evaluated in eval
    mode. Only BatchNorm layers enter train mode; dropout stays off.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ._functional import LossSpec, is_perturbable, named_tensors, resolve_loss
from .batches import batch_len, call_model, move_batch
from .data import (
    DeviceData,
    as_data,
    as_splits,
    channels_last_batch,
    first_batch,
    head_batch,
    permuted,
)
from .errors import LandscapeError, check_float, check_int, check_option

__all__ = ["BN_MODES", "Metrics", "Evaluator", "evaluate"]

BN_MODES = ("eval", "recalibrate")


@dataclass(frozen=True)
class Metrics:
    """Loss and accuracy of a model on one dataset.

    Attributes
    ----------
    loss : float
        Mean loss over the counted examples (samples, or non-ignored tokens for sequences);
        NaN or inf when the outputs overflowed (a diverged point).
    accuracy : float or None
        Fraction of correct predictions in [0, 1] (per sample, or per counted token);
        ``None`` where accuracy is undefined (float targets, or outputs that are not class
        logits); NaN where the loss is not finite (diverged outputs have no meaningful argmax).
    n : int
        Number of samples.
    loss_se : float
        Standard error of ``loss`` as a mean over samples (see the module docstring); NaN
        where undefined.
    """

    loss: float
    accuracy: float | None
    n: int
    loss_se: float = math.nan


class _MeanError:
    """Streaming float64 standard error of the ratio ``Σ t / Σ w`` over samples (see the
    module docstring): state ``T = Σ t``, ``W = Σ w``, ``C = Σ w²``, the centred sums
    ``S = Σ (t - R w)²`` and ``D = Σ w (t - R w)`` about the running ratio ``R = T / W``, and
    the count of samples with positive weight. Tensors stay on the device (no sync per batch).
    """

    def __init__(self, device: torch.device) -> None:
        z = torch.zeros((), dtype=torch.float64, device=device)
        self.t, self.w, self.c, self.s, self.d = z, z.clone(), z.clone(), z.clone(), z.clone()
        self.n = torch.zeros((), dtype=torch.int64, device=device)
        self.known = True

    @staticmethod
    def _ratio(t: Tensor, w: Tensor) -> Tensor:
        return torch.where(w > 0, t / torch.where(w > 0, w, torch.ones_like(w)),
                           torch.zeros_like(t))

    def add(self, pair: tuple[Tensor, Tensor] | None) -> None:
        """Merge one batch's per-sample ``(loss sum, weight)``; ``None``: unknown from now."""
        if pair is None:
            self.known = False
            return
        if not self.known:
            return
        t, w = (v.to(self.t.device, torch.float64).reshape(-1) for v in pair)
        tb, wb, cb = t.sum(), w.sum(), (w * w).sum()
        rb = self._ratio(tb, wb)
        e = t - rb * w
        sb, db = (e * e).sum(), (w * e).sum()
        r = self._ratio(self.t, self.w)
        r_new = self._ratio(self.t + tb, self.w + wb)
        da, dbr = r - r_new, rb - r_new
        # Σ (t - R' w)² of the union = each part's centred sum shifted from its ratio to R'.
        self.s = (self.s + 2 * da * self.d + da * da * self.c
                  + sb + 2 * dbr * db + dbr * dbr * cb)
        self.d = self.d + da * self.c + db + dbr * cb
        self.t, self.w, self.c = self.t + tb, self.w + wb, self.c + cb
        self.n = self.n + (w > 0).sum()

    def value(self) -> float:
        """The standard error, NaN where undefined."""
        n, w = int(self.n), float(self.w)
        if not self.known or n < 2 or not w > 0:
            return math.nan
        s = float(self.s)
        if not math.isfinite(s):
            return math.nan
        return math.sqrt(max(s, 0.0) * n / (n - 1)) / w


#: Values of the ``channels_last`` parameter: a bool, or ``"auto"`` (see
#: :func:`resolve_channels_last`).
CHANNELS_LAST = (True, False, "auto")


def resolve_channels_last(model: nn.Module, data: Any, *, device: torch.device | str | None = None,
                          dtype: torch.dtype | None = None, autocast: str | None = None,
                          channels_last: bool | str = "auto") -> bool:
    """The memory format an evaluation uses: ``channels_last`` itself when a bool, else the
    ``"auto"`` rule.

    ``"auto"`` chooses ``torch.channels_last`` for convolutional networks evaluated on the CPU
    in float32 without autocast, when the data have 4-D floating inputs and a forward pass on
    two samples gives the same outputs in both layouts (to 1e-4 relative; a model whose code
    needs contiguous activations, e.g. ``x.view(n, -1)`` on a feature map, keeps the default
    layout). Measured on this project's 2-core AMD EPYC (forward samples/s, batch 128,
    ``torch`` 2.13 with oneDNN): digits ResNet-20 1.61x (1 thread) and 1.43x (2 threads),
    ResNet-56 1.50x / 1.35x, PreResNet-20 1.37x / 1.31x, DenseNet-BC-40 1.72x / 1.66x;
    CIFAR-shaped (3x32x32) ResNet-20 1.17x, VGG-9 1.49x, DenseNet-BC-40 1.41x; outputs differ
    by float32 rounding (2.7e-7 relative). Not chosen on CUDA (not measured here), in float64
    (oneDNN has no float64 convolutions) or under autocast.

    Parameters
    ----------
    model : nn.Module
        The network (not modified: the two-sample check runs on a copy).
    data : data
        A dataset of the evaluation (its first batch is used).
    device, dtype, autocast :
        As for :class:`Evaluator`.
    channels_last : bool or "auto", default "auto"
        The request.

    Returns
    -------
    bool
    """
    if channels_last not in CHANNELS_LAST:
        raise LandscapeError(
            f"The 'channels_last' parameter must be True, False or 'auto'. Got "
            f"{channels_last!r} instead."
        )
    if channels_last != "auto":
        return bool(channels_last)
    ref = next(iter(model.parameters()), None)
    dev = torch.device(device) if device is not None else (
        ref.device if ref is not None else torch.device("cpu"))
    run_dtype = dtype or (ref.dtype if ref is not None else None)
    if dev.type != "cpu" or run_dtype != torch.float32 or autocast is not None:
        return False
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return False
    batch = move_batch(first_batch(as_data(data)), dev, run_dtype)
    if not any(t.dim() == 4 and t.is_floating_point() for t in _tensor_leaves(batch)):
        return False
    replica = copy.deepcopy(model).to(device=dev, dtype=run_dtype).eval()
    try:
        with torch.inference_mode():
            want = _tensor_leaves(call_model(replica, batch))
            replica = replica.to(memory_format=torch.channels_last)
            got = _tensor_leaves(call_model(replica, channels_last_batch(batch)))
    except Exception:  # noqa: BLE001 - any failure in the other layout means "not this one"
        return False
    pairs = [(a, b) for a, b in zip(want, got, strict=False) if a.is_floating_point()]
    if len(want) != len(got) or not pairs:
        return False
    return all(a.shape == b.shape and bool(torch.allclose(
        a.float(), b.float(), rtol=1e-4, atol=1e-4 * float(a.abs().max().clamp_min(1e-30))))
        for a, b in pairs)


def _tensor_leaves(obj: Any) -> list[Tensor]:
    """The tensors of a batch or model output (tensors, mappings, sequences, nested)."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in _tensor_leaves(v)]
    if isinstance(obj, tuple | list):
        return [t for v in obj for t in _tensor_leaves(v)]
    return []


def _bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class Evaluator:
    """Evaluate a model's loss/accuracy at arbitrary parameters.

    Parameters
    ----------
    model : nn.Module
        The network (not modified; a private copy is made).
    datasets : dict[str, data]
        Named datasets (e.g. ``{"train": ..., "test": ...}``): TensorData, ``(x, y)`` tensors,
        Datasets or DataLoaders (see the module docstring).
    loss : str or callable, default="cross_entropy"
        See :mod:`landscape.losses`.
    what : {"weights", "states"}, default="weights"
        Which tensors :meth:`__call__` receives.
    batch_size : int, optional
        Evaluation batch size (default 1024). A DataLoader keeps its own: a ``batch_size``
        given that differs from it is warned about at the first evaluation. A shuffling or
        ``drop_last`` DataLoader is read in order and whole (see
        :class:`~landscape.data.StreamData`).
    bn : {"eval", "recalibrate"}, default="eval"
        BatchNorm policy (see the module docstring).
    bn_data : TensorData, optional
        Data for recalibration (default: ``datasets["train"]``).
    bn_batches : int, default=10
        Number of batches used to recalibrate.
    bn_batch_size : int, default=128
        Size of those batches (fixed apart from ``batch_size``, because per-batch variances
        depend on it).
    device : str or torch.device, optional
        Evaluation device (default: the model's).
    dtype : torch.dtype, optional
        Evaluation dtype (default: the model's).
    channels_last : bool or "auto", default="auto"
        Store the model and 4-D inputs in ``torch.channels_last`` (faster convolutions on many
        CPUs/GPUs; values change by float32 rounding only). ``"auto"``: for conv nets on the
        CPU in float32 where both layouts agree, see :func:`resolve_channels_last`; the choice
        is :attr:`channels_last`.
    autocast : {"bf16", "fp16"}, optional
        Run forward passes under :func:`torch.autocast` in that precision (losses are still
        accumulated in float64). Results then differ from fp32 by about 1e-3 relative; files
        record it in their recipe.
    data_budget : int, optional
        Streamed data (Datasets, DataLoaders) estimated at most this many bytes are kept on
        the device after their first pass; larger ones are streamed at every point. Default
        :data:`landscape.data.DEVICE_BUDGET` (512 MiB). Tensor data are always kept.
    rel_precision : float, optional
        Evaluate each dataset only until the standard error of its mean loss is at most
        ``rel_precision * |loss|`` (see the module docstring); ``None`` (default): every
        sample, in the data's order.
    precision_seed : int, default=0
        Seed of the random sample order of ``rel_precision``.
    min_batches : int, default=2
        Batches read before ``rel_precision`` may stop an evaluation.
    min_samples : int, default=256
        Samples read before ``rel_precision`` may stop an evaluation.

    Examples
    --------
    >>> ev = Evaluator(model, {"train": train})           # doctest: +SKIP
    >>> ev(named_tensors(model))["train"].loss            # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        datasets: Mapping[str, Any],
        *,
        loss: LossSpec = "cross_entropy",
        what: str = "weights",
        batch_size: int | None = None,
        bn: str = "eval",
        bn_data: Any | None = None,
        bn_batches: int = 10,
        bn_batch_size: int = 128,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        autocast: str | None = None,
        channels_last: bool | str = "auto",
        data_budget: int | None = None,
        rel_precision: float | None = None,
        precision_seed: int = 0,
        min_batches: int = 2,
        min_samples: int = 256,
    ) -> None:
        check_option("what", what, ("weights", "states"))
        if rel_precision is not None:
            rel_precision = check_float("rel_precision", rel_precision, 0.0, closed="neither")
        self.rel_precision = rel_precision
        self.precision_seed = check_int("precision_seed", precision_seed, 0)
        self.min_batches = check_int("min_batches", min_batches, 1)
        self.min_samples = check_int("min_samples", min_samples, 1)
        if autocast is not None:
            check_option("autocast", autocast, ("bf16", "fp16"))
        self.autocast = autocast
        check_option("bn", bn, BN_MODES)
        self._batch_size_given = batch_size is not None
        self.batch_size = check_int("batch_size", 1024 if batch_size is None else batch_size, 1)
        self.bn_batches = check_int("bn_batches", bn_batches, 1)
        self.bn_batch_size = check_int("bn_batch_size", bn_batch_size, 1)
        if bn == "recalibrate" and what == "states":
            raise LandscapeError(
                "bn='recalibrate' recomputes the BatchNorm statistics that what='states' "
                "perturbs; use one or the other"
            )
        if isinstance(datasets, Mapping) and not datasets:
            raise LandscapeError("no dataset to evaluate on")
        datasets = as_splits(datasets)
        self.what = what
        self.bn = bn
        self.loss_fn = resolve_loss(loss)
        ref = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (
            ref.device if ref is not None else torch.device("cpu")
        )
        self.dtype = dtype
        replica = copy.deepcopy(model).eval()
        if dtype is not None:
            replica = replica.to(dtype=dtype)
        self._model = replica.to(self.device)
        self.channels_last = resolve_channels_last(
            model, next(iter(datasets.values())), device=self.device, dtype=dtype,
            autocast=autocast, channels_last=channels_last)
        if self.channels_last:
            self._model = self._model.to(memory_format=torch.channels_last)
        for p in self._model.parameters():
            p.requires_grad_(False)
        self._targets = named_tensors(self._model, what)
        self._initial = {k: v.clone() for k, v in self._targets.items()}
        order = datasets if rel_precision is None else {
            name: permuted(d, self.precision_seed, name) for name, d in datasets.items()}
        self._data = {
            name: DeviceData(d, self.device, dtype, data_budget, self.channels_last, name)
            for name, d in order.items()
        }
        self._warned_batch_size = False
        self._check_first_batches()
        self._bn = _bn_modules(self._model)
        if bn == "recalibrate":
            src = bn_data if bn_data is not None else datasets.get("train")
            if src is None:
                raise LandscapeError("bn='recalibrate' needs training data (bn_data)")
            self._bn_src = DeviceData(src, self.device, dtype, data_budget, self.channels_last)
            for m in self._bn:
                m.momentum = None  # cumulative moving average = exact mean over batches

    def _check_first_batches(self) -> None:
        """Run the loss on a first small batch of each dataset: bad targets or shapes are a
        one-line error before any point, and sequence cross-entropy is calibrated against the
        model's own ``.loss`` (see :mod:`landscape.losses`)."""
        for d in self._data.values():
            b = d.move(first_batch(d.data))
            self.loss_fn.check_batch(b)
            if self.loss_fn.takes_model:
                continue
            with torch.inference_mode():
                try:
                    out = call_model(self._model, b)
                except RuntimeError as err:
                    if not self.channels_last:
                        raise
                    raise LandscapeError(
                        f"the model fails on its first batch in channels_last memory format "
                        f"({str(err).splitlines()[0]}); pass channels_last=False") from err
                self.loss_fn.calibrate(out, b)
                self.loss_fn.terms(out, b, accuracy=True)

    def choose_batch_size(self, budget: int | None = None) -> int:
        """Choose the evaluation batch size from model and data sizes (no timing); sets and
        returns :attr:`batch_size`.

        A forward pass on one and on two samples of the largest tensor dataset measures the
        bytes per sample of every intermediate tensor (the output of every torch function the
        forward calls; a fused kernel's internals, e.g. attention scores inside
        ``scaled_dot_product_attention``, are not seen); the choice is the largest candidate
        (powers of two from 16 to 2048 on the CPU, to 8192 on CUDA) whose largest intermediate
        fits ``budget`` bytes, capped at the data size. Default budget on the CPU: half the
        per-core L2 cache, at least 512 KiB, times the number of intra-op threads
        (``torch.get_num_threads()``; L2 read from ``/sys``, 2 MiB if unknown); 1/64 of the
        device memory on CUDA. Measured on this project's 2 MiB-L2 Xeon (1 thread), the
        fastest sizes were those whose largest activation is about 1 MiB: digits ResNet-20/56
        256 (within 5-10% of the best of 64 ... 1797), CIFAR-shaped ResNet-20 16-32 (1024 costs
        1.95x), the digits MLP the whole data;
        on two threads digits ResNet-56 (half width) ran fastest at 512 (7,490 samples/s vs
        5,050 at 256), so each thread counts with its own L2; on an AMD EPYC with 512 KiB of
        L2 per core the same model was fastest at 256 on one thread (about 512 KiB of
        activation), hence the 512 KiB floor. The same model, data, dtype, thread count and
        machine give the same choice; its cost
        is two forward passes on one and two samples. Streamed data keep their loader's batches.
        """
        tensor_data = [d for d in self._data.values() if not d.streamed]
        if not tensor_data:  # streamed data: the loaders' batches decide
            own = self._loader_batch_size()
            if own is not None:
                self.batch_size = own
            return self.batch_size
        x = max((d.x for d in tensor_data), key=len)
        if budget is None:
            budget = _activation_budget(self.device)
        budget = check_int("budget", budget, 0)
        top = 8192 if self.device.type == "cuda" else 2048
        per_sample = self._bytes_per_sample(x)
        best = 16
        while best * 2 <= top and best * 2 * per_sample <= budget:
            best *= 2
        self.batch_size = max(1, min(best, len(x)))
        return self.batch_size

    def _loader_batch_size(self) -> int | None:
        """The batch size of the data when every dataset is a DataLoader batching by one
        ``batch_size`` (then :attr:`batch_size` does not apply), else ``None``."""
        sizes = {getattr(d.data, "loader_batch_size", None) for d in self._data.values()}
        if len(sizes) != 1 or None in sizes:
            return None
        return sizes.pop()

    def _warn_ignored_batch_size(self) -> None:
        """Say once that ``batch_size`` does not apply to DataLoaders with their own."""
        if self._warned_batch_size or not self._batch_size_given:
            return
        self._warned_batch_size = True
        own = {name: d.data.loader_batch_size for name, d in self._data.items()
               if d.streamed and d.data.is_loader}
        differ = {k: v for k, v in own.items() if v != self.batch_size}
        if differ:
            which = ", ".join(f"{k!r} ({v if v is not None else 'its batch_sampler'})"
                              for k, v in differ.items())
            warnings.warn(
                f"batch_size={self.batch_size} does not apply to the DataLoader(s) {which}: "
                "they keep their own batch size (pass the Dataset instead of the DataLoader "
                "for batch_size to apply)", UserWarning, stacklevel=3)

    def probe_batch_size(self, *args: Any, **kwargs: Any) -> int:
        """Former name of :meth:`choose_batch_size` (which no longer times anything: timed
        choices differed between fresh runs, 128 ... 1024, and cost ~30% of a small grid)."""
        return self.choose_batch_size(kwargs.get("budget"))

    def _bytes_per_sample(self, x: Tensor) -> float:
        """Largest per-sample growth of any op's output between forwards on 1 and 2 samples."""
        sizes = [_op_output_bytes(self._model, x[:k]) for k in (1, 2)]
        if len(x) < 2 or len(sizes[0]) != len(sizes[1]):
            return max(sizes[-1], default=0) / min(len(x), 2)
        return max((b - a for a, b in zip(*sizes, strict=True)), default=0)

    @property
    def model(self) -> nn.Module:
        """The private evaluation copy of the model (do not modify)."""
        return self._model

    @property
    def datasets(self) -> dict[str, DeviceData]:
        """The evaluation data on the device, ``name -> DeviceData``."""
        return self._data

    def load(self, tensors: Mapping[str, Tensor]) -> None:
        """Copy ``tensors`` into the private model (missing names keep the model's values)."""
        with torch.no_grad():
            for k, v in tensors.items():
                t = self._targets.get(k)
                if t is None:
                    raise LandscapeError(f"the model has no tensor named '{k}'")
                t.copy_(v)

    @torch.no_grad()
    def _recalibrate(self) -> None:
        for m in self._bn:
            m.reset_running_stats()
            m.train()
        try:
            seen = 0
            limit = self.bn_batch_size * self.bn_batches
            for b in self._bn_src.batches(self.bn_batch_size):
                if seen >= limit:
                    break
                n = batch_len(b)
                if seen + n > limit:  # the first bn_batch_size * bn_batches samples exactly
                    b = head_batch(b, limit - seen)
                call_model(self._model, b)
                seen += n
        finally:
            for m in self._bn:
                m.eval()

    def evaluate_loaded(self) -> dict[str, Metrics]:
        """Metrics of the tensors currently loaded, on every dataset."""
        self._warn_ignored_batch_size()
        if self.bn == "recalibrate":
            self._recalibrate()
        out: dict[str, Metrics] = {}
        ctx = (
            torch.autocast(self.device.type,
                           dtype=torch.bfloat16 if self.autocast == "bf16" else torch.float16)
            if self.autocast else contextlib.nullcontext()
        )
        with torch.inference_mode(), ctx:
            for name, d in self._data.items():
                out[name] = self._evaluate_split(d)
        return out

    def _evaluate_split(self, d: DeviceData) -> Metrics:
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        weight = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        counted = torch.zeros((), dtype=torch.int64, device=self.device)
        has_acc = True
        n = 0
        err = _MeanError(self.device)
        for i, b in enumerate(d.batches(self.batch_size)):
            t = self.loss_fn.model_terms(self._run, b, accuracy=True)
            total += t.total_float64()
            weight += t.weight.to(weight.device)
            err.add(t.sample_terms())
            n += batch_len(b)
            if t.correct is None:
                has_acc = False
            elif has_acc:
                correct += t.correct
                counted += t.counted
            if self.rel_precision is not None and self._precise_enough(
                    total, weight, err, i + 1, n):
                break
        w = float(weight)
        loss = float(total) / w if w > 0 else float("nan")
        c = int(counted)
        acc = float(correct) / c if has_acc and c > 0 else None
        if acc is not None and not math.isfinite(loss):
            acc = float("nan")  # argmax of non-finite outputs means nothing
        se = err.value() if math.isfinite(loss) else math.nan
        return Metrics(loss=loss, accuracy=acc, n=n, loss_se=se)

    def _precise_enough(self, total: Tensor, weight: Tensor, err: _MeanError, batches: int,
                        samples: int) -> bool:
        """Whether the ``samples`` in ``batches`` read so far give the mean loss to
        ``rel_precision`` (never before the floors ``min_batches`` and ``min_samples``)."""
        if not err.known:
            raise LandscapeError(
                "rel_precision needs the loss of every sample, but the loss returns a mean "
                "(or a total and weight) per batch; use a per-sample loss or rel_precision=None"
            )
        if batches < self.min_batches or samples < self.min_samples:
            return False
        w = float(weight)
        loss = float(total) / w if w > 0 else math.nan
        se = err.value()
        return math.isfinite(loss) and math.isfinite(se) and se <= self.rel_precision * abs(loss)

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        out = self._model(*args, **kwargs)
        if isinstance(out, Tensor) and out.dtype in (torch.bfloat16, torch.float16):
            out = out.float()
        return out

    def __call__(self, tensors: Mapping[str, Tensor]) -> dict[str, Metrics]:
        """Load ``tensors`` and return ``{dataset name: Metrics}``."""
        self.load(tensors)
        return self.evaluate_loaded()

    def at(self, base: Mapping[str, Tensor], directions: tuple[Mapping[str, Tensor], ...],
           coords: tuple[float, ...]) -> dict[str, Metrics]:
        """Metrics at ``base + Σ coords[i] · directions[i]`` (computed in the tensors' dtype).

        Every point is computed from ``base`` afresh, so the result does not depend on which
        points were evaluated before (needed for bit-identical resume and sharding).
        """
        with torch.no_grad():
            for k, t in self._targets.items():
                b = base[k]
                if not is_perturbable(t):
                    t.copy_(b)
                    continue
                t.copy_(b)
                for c, d in zip(coords, directions, strict=True):
                    if c != 0.0:
                        t.add_(d[k], alpha=float(c))
        return self.evaluate_loaded()

    def reset(self) -> None:
        """Restore the model's original tensors."""
        self.load(self._initial)


def _activation_budget(device: torch.device) -> int:
    """Default budget of :meth:`Evaluator.choose_batch_size` (bytes of the largest activation)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory // 64)
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            text = f.read().strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        l2 = int(text.rstrip("KMG")) * scale
    except (OSError, ValueError):
        l2 = 2 * 2**20
    # at least 512 KiB per thread: on an AMD EPYC with 512 KiB of L2 per core, half of it
    # picked 128 for digits ResNet-56 (half width, ~2 KiB per sample) where 256 was the fastest
    # on one thread (3,390 samples/s; 128: 2,930; 512: 2,920); intra-op threads split a batch
    # between cores, each with its own L2: 512 was the fastest on two threads (7,490
    # samples/s; 256: 5,050; 1024: 5,130)
    per_thread = max(l2 // 2, 2**19)
    return per_thread * max(torch.get_num_threads(), 1)


def _op_output_bytes(model: nn.Module, x: Tensor) -> list[int]:
    """Bytes of the tensor outputs of every torch function the forward pass of ``model`` on
    ``x`` calls (at the Python level: ``F.conv2d``, ``torch.matmul``, tensor methods, ...)."""
    from torch.overrides import TorchFunctionMode

    sizes: list[int] = []

    class _Sizes(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            ts = out if isinstance(out, tuple | list) else (out,)
            sizes.append(sum(t.numel() * t.element_size() for t in ts if isinstance(t, Tensor)))
            return out

    with torch.inference_mode(), _Sizes():
        call_model(model, x)
    return sizes


def evaluate(
    model: nn.Module,
    data: object,
    tensors: Mapping[str, Tensor] | None = None,
    *,
    loss: LossSpec = "cross_entropy",
    batch_size: int | None = None,
    bn: str = "eval",
    what: str = "weights",
) -> Metrics:
    """Loss and accuracy of ``model`` (optionally at ``tensors``) on ``data``.

    Convenience wrapper around :class:`Evaluator` for a single dataset and point.
    """
    ev = Evaluator(model, {"data": as_data(data)}, loss=loss, batch_size=batch_size, bn=bn,
                   what=what)
    if tensors is not None:
        ev.load(tensors)
    return ev.evaluate_loaded()["data"]
