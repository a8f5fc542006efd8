"""Streamed data: Datasets and DataLoaders read batch by batch (:class:`StreamData`), data on the
evaluation device (:class:`DeviceData`), and any supported data as one of them
(:func:`as_data`, :func:`as_splits`, :func:`as_tensor_data`).

See :mod:`landscape.data` for the data sets, how they are named, and what streaming costs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from landscape.batches import batch_len, batch_nbytes, batch_targets, move_batch
from landscape.errors import LandscapeError, check_int

from ._common import as_inputs, as_targets, describe, finish_tensors
from .spec import DataSpec
from .tensors import SUBSET_SEED, TensorData, check_finite
from .tokens import check_token_ids, token_ids

__all__ = [
    "DEVICE_BUDGET",
    "STREAM_PREFETCH",
    "StreamData",
    "DeviceData",
    "as_data",
    "as_splits",
    "permuted",
    "as_tensor_data",
    "sample_count",
    "first_batch",
    "has_class_targets",
    "head_batch",
    "channels_last_batch",
]


#: Data that is not already tensors is copied onto the evaluation device once and kept there
#: when its size is at most this many bytes; larger data is streamed batch by batch.
DEVICE_BUDGET = 512 * 2**20
#: Batches a background thread reads ahead while streamed data is consumed (0: read in the
#: consuming thread). The thread yields the batches in their order, so values do not change;
#: Datasets must not draw from torch's global random generator (they would give other data
#: at every point anyway).
STREAM_PREFETCH = 2


def _tensor_backed(ds: Any) -> tuple[tuple[Tensor, ...], Tensor | None] | None:
    """The tensors of a ``TensorDataset`` (or of nested ``Subset`` s of one) and the indices
    selected from them (``None``: all), else ``None``."""
    from torch.utils.data import Subset, TensorDataset

    idx: Tensor | None = None
    while isinstance(ds, Subset):
        sub = torch.as_tensor(list(ds.indices), dtype=torch.int64)
        idx = sub if idx is None else sub[idx]
        ds = ds.dataset
    if type(ds) is not TensorDataset or not ds.tensors:
        return None
    return tuple(ds.tensors), idx


def _slices(tensors: tuple[Tensor, ...], idx: Tensor | None, batch_size: int,
            drop_last: bool, pin_memory: bool) -> Iterator[list[Tensor]]:
    """The batches ``default_collate`` would give for a tensor-backed Dataset (a list per
    batch, as it gives for tuple items), by slicing."""
    n = len(tensors[0]) if idx is None else len(idx)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        if idx is None:
            b = [t[i:i + batch_size] for t in tensors]
        else:
            j = idx[i:i + batch_size]
            b = [t[j] for t in tensors]
        yield [t.pin_memory() for t in b] if pin_memory else b


def _plain_loader(loader: Any) -> bool:
    """Whether a DataLoader batches its Dataset in order with the default collation (so its
    batches are slices of a tensor-backed Dataset)."""
    from torch.utils.data import BatchSampler, SequentialSampler
    from torch.utils.data._utils.collate import default_collate

    return (loader.batch_size is not None and loader.collate_fn is default_collate
            and isinstance(loader.sampler, SequentialSampler)
            and type(loader.batch_sampler) is BatchSampler)


def _in_order(loader: Any, where: str) -> tuple[Any, str | None]:
    """A DataLoader that reads the same data in order and whole: ``loader`` itself, or, for
    a shuffling or ``drop_last`` one, the same loader over its Dataset with a sequential
    sampler and ``drop_last=False``; with a note saying which."""
    from torch.utils.data import DataLoader, IterableDataset, RandomSampler

    shuffles = isinstance(loader.sampler, RandomSampler)
    drops = bool(loader.drop_last) and loader.batch_size is not None
    if not shuffles and not drops:
        return loader, None
    if loader.batch_size is None:  # batched by a custom batch_sampler: cannot be rebuilt
        raise LandscapeError(
            f"{where} is a shuffling DataLoader with a custom batch_sampler; a loss landscape "
            "needs the same data in the same order at every point: pass shuffle=False"
        )
    workers = loader.num_workers
    # drop_last alone: the loader's own (non-random) sampler keeps choosing the samples
    keep = not shuffles and not isinstance(loader.dataset, IterableDataset)
    rebuilt = DataLoader(
        loader.dataset, batch_size=loader.batch_size, shuffle=False,
        sampler=loader.sampler if keep else None, collate_fn=loader.collate_fn,
        num_workers=workers, pin_memory=loader.pin_memory,
        drop_last=False, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if workers else None,
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=loader.persistent_workers if workers else False,
    )
    notes = [note for note, on in (
        ("the DataLoader's shuffle=True is not applied: its Dataset is read in order", shuffles),
        ("the DataLoader's drop_last=True is not applied: its last, smaller batch is read too",
         drops)) if on]
    return rebuilt, "; ".join(notes) + " (a mean over the full data, which does not depend " \
        "on the order)"


def _loader_samples(loader: Any, n_dataset: int) -> int | None:
    """The number of samples a DataLoader over a map-style Dataset reads per pass (its
    sampler's length, or its custom batch_sampler's total; ``None`` for a loader of
    ready-made batches), ``n_dataset`` if unknown."""
    if loader.batch_size is None and loader.batch_sampler is None:
        return None  # each item is a batch already: counted by a pass when asked
    try:
        if loader.batch_size is not None:
            return len(loader.sampler)
        return sum(len(b) for b in loader.batch_sampler)
    except TypeError:  # a sampler without __len__ or of unsized batches
        return n_dataset


def head_batch(batch: Any, n: int) -> Any:
    """The first ``n`` samples of a batch (tensors, mappings and sequences of them)."""
    if isinstance(batch, Tensor):
        return batch[:n]
    if isinstance(batch, Mapping):
        return {k: head_batch(v, n) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(head_batch(v, n) for v in batch)
    return batch


def _limited(batches: Iterator[Any], limit: int) -> Iterator[Any]:
    """The batches up to ``limit`` samples (the last one cut); stops reading there."""
    seen = 0
    try:
        for b in batches:
            n = batch_len(b)
            if seen + n >= limit:
                yield b if seen + n == limit else head_batch(b, limit - seen)
                return
            seen += n
            yield b
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


_TARGET_KEYS = ("labels", "label", "targets", "target", "y")


def _batch_parts(b: Any) -> tuple[Any, Any]:
    """Inputs and targets of a batch for the finiteness check: ``(x, y)`` of a pair; of a
    mapping, its float input tensors stacked by role (targets under ``labels`` & co)."""
    if isinstance(b, Tensor):
        return b, None
    if isinstance(b, tuple | list):
        x = b[0] if b else None
        y = b[1] if len(b) > 1 else None
        return (x if isinstance(x, Tensor) else None), (y if isinstance(y, Tensor) else None)
    if isinstance(b, Mapping):
        # float masks may hold -inf on purpose (additive attention masks): not inputs here
        xs = [v for k, v in b.items() if k not in _TARGET_KEYS and "mask" not in str(k)
              and isinstance(v, Tensor) and v.ndim > 0 and v.is_floating_point()]
        ys = [v for k, v in b.items() if k in _TARGET_KEYS and isinstance(v, Tensor)]
        x = torch.cat([v.reshape(v.shape[0], -1) for v in xs], 1) if xs else None
        return x, (ys[0] if ys else None)
    return None, None


_END = object()


def _prefetched(batches: Iterator[Any], depth: int,
                convert: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Iterate ``batches`` in a background thread, at most ``depth`` items ahead, in order.

    ``convert`` runs in that thread too. An exception of the producer is raised in the
    consumer; when the consumer stops early (``break``, an error, a closed generator) the
    producer stops after its current item and is joined.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in batches:
                if not put((True, convert(b) if convert is not None else b)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((False, exc))
            return
        put((True, _END))

    worker = threading.Thread(target=produce, name="landscape-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()


class StreamData:
    """A data set read batch by batch: a map-style or iterable Dataset, or a DataLoader.

    Nothing is materialised: each pass builds (or reuses) a :class:`~torch.utils.data.DataLoader`
    and yields its batches in order. Batches follow :mod:`landscape.batches`: ``(x, y)``
    pairs, tuples, or mappings such as ``{"input_ids", "attention_mask", "labels"}``. Every
    batch is checked as it is read: a NaN or inf input (or float target) raises a
    :class:`~landscape.errors.LandscapeError` naming the sample's index in the stream, and so
    does a token id (integer ``x`` or ``input_ids``) outside ``0 .. vocab_size - 1`` once
    :attr:`vocab_size` is set (by :func:`check_compatible`).

    Parameters
    ----------
    source : Dataset or DataLoader
        A map-style Dataset (``__len__`` and ``__getitem__``), an iterable Dataset, or a
        DataLoader. A DataLoader's own batch size and ``collate_fn`` are kept (the requested
        ``batch_size`` of :meth:`batches` is then ignored). A DataLoader that shuffles
        (``shuffle=True``) or drops its last incomplete batch (``drop_last=True``), as
        training loaders do, is read in order and whole instead (an equivalent loader over
        its Dataset with a sequential sampler and ``drop_last=False``): losses and Hessians
        are means over the full data, which do not depend on the order, and a landscape needs
        the same batches at every point. :attr:`reading` says so.
    name : str, default="data"
        Used in messages and stored with results.
    collate_fn : callable, optional
        Batch collation for a Dataset (e.g. padding variable-length sequences); default
        :func:`torch.utils.data.default_collate`.
    num_workers : int, default=0
        Loader worker processes for a Dataset.
    limit : int, optional
        Read at most this many samples per pass (the first ones; :meth:`subset` of a stream
        that cannot be indexed). A stream without ``__len__`` may be endless: bound it so.
    split : str, optional
        The split it was loaded as, named in messages.

    Attributes
    ----------
    reading : str or None
        How a shuffling or ``drop_last`` DataLoader is read (``None``: as it is).
    vocab_size : int or None
        Token ids of the inputs must be below it (set by :func:`check_compatible`).
    """

    def __init__(self, source: Any, name: str = "data", *, collate_fn: Callable | None = None,
                 num_workers: int = 0, limit: int | None = None,
                 split: str | None = None) -> None:
        from torch.utils.data import DataLoader, Dataset, IterableDataset

        self.reading: str | None = None
        if isinstance(source, DataLoader):
            source, self.reading = _in_order(source, describe(name, split))
        elif not isinstance(source, Dataset):
            raise LandscapeError(
                f"dataset {name!r} must be a torch Dataset or DataLoader, got "
                f"{type(source).__name__}"
            )
        self.source = source
        self.name = name
        self.split = split
        self.collate_fn = collate_fn
        self.num_workers = check_int("num_workers", num_workers, low=0)
        self.limit = None if limit is None else check_int("limit", limit, low=1)
        self.vocab_size: int | None = None
        self.vocab_owner = "the model"  # named with vocab_size in messages
        self.rows: list[int] | None = None  # the source's index of each sample (a subset)
        ds = source.dataset if isinstance(source, DataLoader) else source
        self.map_style = not isinstance(ds, IterableDataset) and hasattr(ds, "__len__")
        self._len: int | None = len(ds) if hasattr(ds, "__len__") else None
        #: whether a pass ends: the Dataset has a length, or a limit bounds the stream
        self.finite = self._len is not None or self.limit is not None
        if self._len is not None and isinstance(source, DataLoader) and self.map_style:
            self._len = _loader_samples(source, self._len)  # a sampler may choose fewer
        if self._len is not None and self.limit is not None:
            self._len = min(self._len, self.limit)
        self._first: Any = None
        self._tensors = _tensor_backed(ds) if collate_fn is None else None
        self._loaders: dict[tuple[int, bool], Any] = {}

    def __repr__(self) -> str:
        return f"StreamData(name={self.name!r}, n={self._len}, source={type(self.source).__name__})"

    def __len__(self) -> int:
        if self._len is None:  # counted by one pass (load_data refuses unbounded streams)
            self._len = sum(batch_len(b) for b in self.batches(256))
        return self._len

    @property
    def length(self) -> int | None:
        """The number of samples when known without reading the data, else ``None``."""
        return self._len

    @property
    def is_loader(self) -> bool:
        """Whether the source is a DataLoader (its own batch size is used)."""
        from torch.utils.data import DataLoader

        return isinstance(self.source, DataLoader)

    @property
    def loader_batch_size(self) -> int | None:
        """A DataLoader's own batch size (``None``: not a DataLoader, or batched by a custom
        ``batch_sampler``)."""
        return self.source.batch_size if self.is_loader else None

    def batches(self, batch_size: int, pin_memory: bool = False) -> Iterator[Any]:
        """Iterate over the batches in order (``batch_size`` ignored for a DataLoader).

        Tensor-backed Datasets (and plain sequential DataLoaders over one) are sliced, with
        the same batches as collating their items; loaders built here with workers keep them
        between passes (``persistent_workers``). Each batch is checked as it is read (see
        the class docstring); at most :attr:`limit` samples are read.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        it = self._raw_batches(batch_size, pin_memory)
        if self.limit is not None:
            it = _limited(it, self.limit)
        return self._checked(it)

    def _raw_batches(self, batch_size: int, pin_memory: bool) -> Iterator[Any]:
        from torch.utils.data import DataLoader

        if self.is_loader:
            src = self.source
            if self._tensors is not None and _plain_loader(src):
                return _slices(*self._tensors, src.batch_size, src.drop_last, pin_memory)
            return iter(src)
        if self._tensors is not None:
            return _slices(*self._tensors, batch_size, False, pin_memory)
        key = (batch_size, pin_memory)
        loader = self._loaders.get(key)
        if loader is None:
            loader = DataLoader(self.source, batch_size=batch_size, shuffle=False,
                                collate_fn=self.collate_fn, num_workers=self.num_workers,
                                pin_memory=pin_memory,
                                persistent_workers=self.num_workers > 0)
            if self.num_workers > 0:  # keep the workers for the next pass
                self._loaders[key] = loader
        return iter(loader)

    def _checked(self, batches: Iterator[Any]) -> Iterator[Any]:
        where = describe(self.name, self.split)
        seen = 0
        for b in batches:
            x, y = _batch_parts(b)
            check_finite(x, y, where, rows=self.rows, offset=seen)
            if self.vocab_size is not None:
                check_token_ids(token_ids(b), self.vocab_size, where, self.vocab_owner,
                                rows=self.rows, offset=seen)
            seen += batch_len(b)
            yield b

    def first_batch(self) -> Any:
        """The first batch (of at most 2 samples for a Dataset), kept for checks."""
        if self._first is None:
            it = self.batches(2)
            try:
                self._first = next(it)
            except StopIteration:
                raise LandscapeError(f"dataset {self.name!r} is empty") from None
            finally:
                it.close()
        return self._first

    def nbytes(self) -> int | None:
        """Estimated size of the whole data set (``None`` when its length is unknown and
        unbounded)."""
        n = self._len if self._len is not None else self.limit
        if n is None:
            return None
        first = self.first_batch()
        return int(batch_nbytes(first) / max(batch_len(first), 1) * n)

    def subset(self, n: int | None) -> StreamData:
        """The same ``n`` samples as :meth:`TensorData.subset` picks, indexing only those
        items of a map-style Dataset (nothing else is read); for an iterable Dataset, which
        cannot be indexed, its first ``n`` samples (read lazily, pass by pass)."""
        from torch.utils.data import DataLoader, Subset

        if n is None:
            return self
        n = check_int("subset", n, low=1)
        if not self.map_style:
            limit = n if self.limit is None else min(n, self.limit)
            out = StreamData(self.source, self.name, collate_fn=self.collate_fn,
                             num_workers=self.num_workers, limit=limit, split=self.split)
            out.reading = self.reading
            return out
        if n >= len(self):
            return self
        gen = torch.Generator().manual_seed(SUBSET_SEED)
        idx = torch.randperm(len(self), generator=gen)[:n].sort().values.tolist()
        if self.is_loader:
            src = self.source
            sub = DataLoader(Subset(src.dataset, idx), batch_size=src.batch_size, shuffle=False,
                             collate_fn=src.collate_fn, num_workers=src.num_workers,
                             pin_memory=src.pin_memory, drop_last=src.drop_last)
            out = StreamData(sub, self.name, split=self.split)
            out.reading = self.reading
        else:
            out = StreamData(Subset(self.source, idx), self.name, collate_fn=self.collate_fn,
                             num_workers=self.num_workers, split=self.split)
        out.rows = idx if self.rows is None else [self.rows[i] for i in idx]
        return out

    def fingerprint(self) -> str:
        """SHA-256 of the first batch's bytes and the length: the data's identity in recipes."""
        import hashlib

        h = hashlib.sha256(f"{self._len}".encode())
        _hash_batch(h, self.first_batch())
        return h.hexdigest()


def _hash_batch(h: Any, batch: Any) -> None:
    if isinstance(batch, Tensor):
        t = batch.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(batch, Mapping):
        for k in sorted(batch):
            h.update(str(k).encode())
            _hash_batch(h, batch[k])
    elif isinstance(batch, tuple | list):
        for v in batch:
            _hash_batch(h, v)
    else:
        h.update(repr(batch).encode())


def as_data(obj: Any, name: str = "data") -> Any:
    """Any supported data (see :mod:`landscape.data`) as a :class:`TensorData` or
    :class:`StreamData`; objects with tensors ``.x`` and ``.y`` are returned as they are."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(obj, TensorData | StreamData):
        return obj
    if isinstance(obj, Dataset | DataLoader):
        return StreamData(obj, name)
    if isinstance(obj, tuple | list) and len(obj) == 2:
        return TensorData(torch.as_tensor(obj[0]), torch.as_tensor(obj[1]), name)
    if isinstance(getattr(obj, "x", None), Tensor) and isinstance(getattr(obj, "y", None), Tensor):
        return obj
    raise LandscapeError(
        f"data {name!r} must have tensors .x and .y (a TensorData), or be an (x, y) pair of "
        f"tensors, a torch Dataset or a DataLoader; got {type(obj).__name__}"
    )


def as_splits(data: Any, default: str = "train") -> dict[str, Any]:
    """Named datasets from a mapping ``{"train": ..., "test": ...}`` or from one dataset.

    Parameters
    ----------
    data : mapping of str to data, or data
        A mapping of split names to anything :func:`as_data` takes; or one such object (a
        :class:`TensorData`, an ``(x, y)`` pair of tensors, a torch ``Dataset`` or
        ``DataLoader``), which becomes the split ``default``.
    default : str, default "train"
        The split name of a single dataset.

    Returns
    -------
    dict of str to TensorData or StreamData
    """
    if isinstance(data, Mapping):
        return {str(k): as_data(v, str(k)) for k, v in data.items()}
    return {default: as_data(data, default)}


def permuted(data: Any, seed: int, name: str = "data") -> TensorData | StreamData:
    """The samples of ``data`` in a fixed random order (a ``torch.Generator`` seeded with
    ``seed``; the same order every time).

    Tensor data are copied in that order; a map-style Dataset is indexed through it
    (:class:`~torch.utils.data.Subset`), nothing is read. A DataLoader (whose batches are its
    own) and an iterable Dataset (which cannot be indexed) cannot be reordered.

    Raises
    ------
    LandscapeError
        For a DataLoader or an iterable Dataset.
    """
    from torch.utils.data import Subset

    seed = check_int("seed", seed, low=0)
    d = as_data(data, name)
    gen = torch.Generator().manual_seed(seed)
    if isinstance(d, StreamData):
        if d.is_loader or not d.map_style or d.limit is not None:
            raise LandscapeError(
                f"dataset {d.name!r} is a DataLoader or an iterable Dataset, whose samples "
                "cannot be put in a random order; pass the Dataset itself or tensors"
            )
        idx = torch.randperm(len(d), generator=gen).tolist()
        out = StreamData(Subset(d.source, idx), d.name, collate_fn=d.collate_fn,
                         num_workers=d.num_workers, split=d.split)
        out.rows = idx if d.rows is None else [d.rows[i] for i in idx]
        out.vocab_size, out.vocab_owner = d.vocab_size, d.vocab_owner
        return out
    idx = torch.randperm(len(d), generator=gen)
    return TensorData(d.x[idx.to(d.x.device)], d.y[idx.to(d.y.device)],
                      getattr(d, "name", name), n_classes=getattr(d, "n_classes", None),
                      split=getattr(d, "split", None))



def as_tensor_data(data: Any, budget: int | None = None) -> TensorData:
    """Any supported data held as one :class:`TensorData` (for training, which shuffles).

    Tensor data are returned as they are. Streamed data (:class:`StreamData`) are read once,
    in order, and concatenated when their batches are ``(x, y)`` pairs of tensors with one
    sample shape and their size is at most ``budget`` bytes: a finite stream (one with a
    length, or bounded by ``subset``) that is small.

    Parameters
    ----------
    data : TensorData, StreamData or anything :func:`as_data` takes
    budget : int, optional
        Bytes; default :data:`DEVICE_BUDGET`.

    Returns
    -------
    TensorData
        Floating inputs as float32, integer inputs int64, integer targets int64 labels and
        float targets float32, as a custom loader's arrays become.

    Raises
    ------
    LandscapeError
        For batches that are not fixed-shape ``(x, y)`` pairs (mappings, padded sequences),
        data larger than ``budget``, or non-finite values.
    """
    data = as_data(data)
    if not isinstance(data, StreamData):
        return data
    budget = DEVICE_BUDGET if budget is None else check_int("budget", budget, low=0)
    where = describe(data.name, data.split)
    size = data.nbytes()
    if size is not None and size > budget:
        raise _too_big(where, f"about {_bytes(size)}", budget)
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    total = 0
    for b in data.batches(256):
        if not (isinstance(b, tuple | list) and len(b) == 2
                and all(isinstance(t, Tensor) for t in b)):
            kind = "mappings" if isinstance(b, Mapping) else f"{type(b).__name__}s"
            raise LandscapeError(
                f"{where} gives batches of {kind}; training needs (x, y) pairs of tensors "
                "(train other data with your own loop and analyse the checkpoints)"
            )
        x, y = as_inputs(b[0], data.name), as_targets(b[1], data.name)
        if xs and (x.shape[1:] != xs[0].shape[1:] or y.shape[1:] != ys[0].shape[1:]):
            raise LandscapeError(
                f"{where} gives batches of different sample shapes ({tuple(xs[0].shape[1:])} "
                f"and {tuple(x.shape[1:])}); training needs one input shape"
            )
        total += x.numel() * x.element_size() + y.numel() * y.element_size()
        if total > budget:
            raise _too_big(where, f"more than {_bytes(budget)}", budget)
        xs.append(x)
        ys.append(y)
    if not xs:
        raise LandscapeError(f"{where} is empty")
    return finish_tensors(torch.cat(xs), torch.cat(ys), DataSpec(data.name),
                          split=data.split)


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _too_big(where: str, size: str, budget: int) -> LandscapeError:
    return LandscapeError(
        f"{where} is a stream of {size}, more than can be held in memory for training "
        f"({_bytes(budget)}); set the 'subset' parameter to train on fewer samples"
    )


def sample_count(data: Any) -> int:
    """Number of samples of any supported data (TensorData, an ``(x, y)`` pair, a Dataset, a
    DataLoader, :class:`StreamData`).

    Raises
    ------
    LandscapeError
        For unsupported data or an empty data set.
    """
    n = len(as_data(data))
    if n == 0:
        raise LandscapeError("The data set is empty; pass at least one sample.")
    return n


def first_batch(data: Any) -> Any:
    """A small first batch of any data (for checks before computing)."""
    if isinstance(data, StreamData):
        return data.first_batch()
    return (data.x[:2], data.y[:2])


def has_class_targets(data: Any) -> bool:
    """Whether the data's targets are integer class labels (then accuracy is defined)."""
    if isinstance(data, StreamData):
        y = batch_targets(data.first_batch())
        return isinstance(y, Tensor) and not (y.is_floating_point() or y.is_complex())
    return not (data.y.is_floating_point() or data.y.is_complex())


class DeviceData:
    """Batches of one data set on the evaluation device.

    Tensor data are checked for NaN and inf inputs (and float targets) and moved to the
    device whole once and sliced (the fast path). Streamed data
    whose estimated size is at most ``budget`` bytes are copied to the device during their
    first pass and then replayed from there; larger data are streamed every pass, batch by
    batch (from pinned memory with non-blocking copies on CUDA), never held whole.

    Parameters
    ----------
    data : TensorData, StreamData or anything :func:`as_data` takes
    device : torch.device
    dtype : torch.dtype, optional
        Cast floating tensors (integer inputs keep their dtype).
    budget : int, optional
        Bytes (default :data:`DEVICE_BUDGET`).
    channels_last : bool, default=False
        4-D floating inputs in ``torch.channels_last``.
    """

    def __init__(self, data: Any, device: torch.device, dtype: torch.dtype | None = None,
                 budget: int | None = None, channels_last: bool = False,
                 name: str = "data") -> None:
        self.data = as_data(data, name)
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = channels_last
        self.budget = DEVICE_BUDGET if budget is None else check_int("budget", budget, low=0)
        self._cache: list[Any] | None = None
        self._cache_bs: int | None = None
        self.streamed = isinstance(self.data, StreamData)
        if self.streamed:
            size = self.data.nbytes()
            self.cached = size is not None and size <= self.budget
        else:
            self.cached = True
            where = describe(getattr(self.data, "name", name), getattr(self.data, "split", None))
            check_finite(self.data.x, self.data.y, where)
            self.x = self.move(self.data.x)
            self.y = self.data.y.to(self.device)

    def move(self, t: Any, non_blocking: bool = False) -> Any:
        """A batch on this data's device and dtype (integer tensors keep theirs)."""
        t = move_batch(t, self.device, self.dtype, non_blocking)
        if self.channels_last:
            t = channels_last_batch(t)
        return t

    def __len__(self) -> int:
        return len(self.x) if not self.streamed else len(self.data)

    def batches(self, batch_size: int) -> Iterator[Any]:
        """Device batches in order (the last may be smaller)."""
        if not self.streamed:
            return ((self.x[i:i + batch_size], self.y[i:i + batch_size])
                    for i in range(0, len(self.x), batch_size))
        if self._cache is not None and (self._cache_bs == batch_size or self.data.is_loader):
            return iter(self._cache)
        return self._stream(batch_size)

    def _stream(self, batch_size: int) -> Iterator[Any]:
        cuda = self.device.type == "cuda"
        cache: list[Any] | None = [] if self.cached else None
        source = self.data.batches(batch_size, pin_memory=cuda)
        if STREAM_PREFETCH > 0:  # read ahead (and, off CUDA, cast) in a background thread
            source = _prefetched(source, STREAM_PREFETCH, None if cuda else self.move)
        try:
            for b in source:
                if cuda or STREAM_PREFETCH <= 0:
                    b = self.move(b, non_blocking=cuda)
                if cache is not None:
                    cache.append(b)
                yield b
        finally:  # a consumer that stops early stops the reader too
            close = getattr(source, "close", None)
            if close is not None:
                close()
        if cache is not None:
            self._cache, self._cache_bs = cache, batch_size


def channels_last_batch(b: Any) -> Any:
    """A batch with its 4-D floating tensors in ``torch.channels_last`` (others unchanged)."""
    if isinstance(b, Tensor):
        if b.dim() == 4 and b.is_floating_point():
            return b.contiguous(memory_format=torch.channels_last)
        return b
    if isinstance(b, Mapping):
        return {k: channels_last_batch(v) for k, v in b.items()}
    if isinstance(b, tuple | list):
        return type(b)(channels_last_batch(v) for v in b)
    return b
