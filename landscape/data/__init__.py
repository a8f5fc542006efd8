"""Data sets: in-memory tensors, streamed Datasets and DataLoaders, built-in and user loaders.

Loss landscapes are evaluated many times over the same data set, in the same order (no
shuffling). A data set that fits is held in memory as one :class:`TensorData` (inputs ``x`` and
targets ``y``) and sliced into contiguous batches; Datasets and DataLoaders are wrapped in a
:class:`StreamData` and read batch by batch, and :class:`DeviceData` puts either on the
evaluation device (kept there when it fits a memory budget, else streamed at every pass).

Streaming is made as cheap as the data allows: batches are read by a background thread
:data:`STREAM_PREFETCH` batches ahead of the computation (so loading overlaps the forward and
backward passes; items still arrive in order, so values are identical), tensor-backed Datasets
(``TensorDataset`` and ``Subset`` s of one, also inside a plain sequential ``DataLoader``) are
sliced instead of indexed item by item and collated, and the loaders built for a Dataset with
``num_workers > 0`` are kept with persistent workers, so workers start once, not at every point.
What remains is the Dataset's own ``__getitem__``: a Dataset that builds each item in Python
(decoding, augmenting, generating) costs that at every pass, which the in-memory path pays once
(see ``docs/benchmarks.md``).

Data sets are named by a :class:`DataSpec` (or just its name):

``"digits"``
    scikit-learn's 8x8 handwritten digits (shipped with scikit-learn, no download), pixels scaled
    to ``[0, 1]``, shape ``(N, 1, 8, 8)``, a fixed stratified split of 1437 train / 360 test.
``"cifar10"``
    The CIFAR-10 python batches (``data_batch_1`` ... ``data_batch_5``, ``test_batch``) read from
    the local directory ``root`` (or its ``cifar-10-batches-py`` subdirectory), shape
    ``(N, 3, 32, 32)``, normalised per channel unless ``kwargs={"normalize": False}``.
``"mnist"``
    The four MNIST idx files (optionally gzipped) read from ``root`` (or its ``MNIST/raw``
    subdirectory, torchvision's layout), shape ``(N, 1, 28, 28)``, scaled to ``[0, 1]``.
``"modadd"``
    Modular addition ``a + b mod p`` (Power et al. 2022), generated deterministically
    (:func:`landscape.data.modadd.modular_addition`; options ``p``, ``train_fraction``, ``seed``):
    int64 token ids ``[a, b, p]`` of shape ``(N, 3)`` and ``p`` classes.
``"digits-denoise"``
    An image-to-image task (:mod:`landscape.data.denoise`; options ``noise``, ``seed``): the
    digits plus seeded Gaussian noise as inputs, the clean digits as float targets, both
    ``(N, 1, 8, 8)``; no classes, trained and measured with the mean squared error.
``"package.module:function"``
    Your own loader, called as ``function(split=split, **kwargs)``; it returns ``(x, y)``
    (tensors or arrays), a map-style or iterable :class:`torch.utils.data.Dataset` or a
    :class:`torch.utils.data.DataLoader` (items and batches as in :mod:`landscape.batches`:
    ``(x, y)`` pairs or mappings such as ``{"input_ids", "attention_mask", "labels"}``).
    Integer inputs (token ids) keep their dtype. A map-style Dataset of fixed-shape
    ``(x, y)`` pairs whose size is at most :data:`DEVICE_BUDGET` is read once into a
    :class:`TensorData` (preallocated, each item copied in once); anything else becomes a
    :class:`StreamData`, read batch by batch. ``subset`` picks its indices before anything
    is read, so only the chosen items are loaded. An iterable Dataset (or a DataLoader over
    one) without ``__len__`` may never end: it needs ``subset`` (CLI ``--subset``), which
    then keeps its first ``subset`` samples. A DataLoader that shuffles or drops its last
    batch (a training loader) is read in order and whole: the landscape quantities are means
    over the full data, which do not depend on the order. Inputs (and float targets) must be
    finite: a NaN or inf is refused naming the split and the sample (streams as they are read).

Nothing is ever downloaded.

Examples
--------
>>> train, test = load_splits("digits")
>>> len(train), len(test), train.input_shape, train.num_classes
(1437, 360, (1, 8, 8), 10)
>>> small = load_data(DataSpec("digits", subset=256))
>>> [xb.shape[0] for xb, _ in small.batches(100)]
[100, 100, 56]
"""

from __future__ import annotations

from .compat import check_compatible
from .loading import available_datasets, load_data, load_splits
from .spec import DataSpec
from .stream import (
    DEVICE_BUDGET,
    STREAM_PREFETCH,
    DeviceData,
    StreamData,
    as_data,
    as_splits,
    as_tensor_data,
    channels_last_batch,
    has_class_targets,
    permuted,
    sample_count,
)
from .stream import first_batch as first_batch
from .stream import head_batch as head_batch
from .tensors import TensorData, check_finite
from .tokens import check_token_ids as check_token_ids
from .tokens import model_vocab_size

# check_token_ids, first_batch and head_batch are re-exported (``as``) for the library's
# own modules; they are not in the public list
__all__ = [
    "channels_last_batch",
    "TensorData",
    "StreamData",
    "DeviceData",
    "DEVICE_BUDGET",
    "STREAM_PREFETCH",
    "as_data",
    "as_splits",
    "permuted",
    "sample_count",
    "has_class_targets",
    "check_finite",
    "as_tensor_data",
    "model_vocab_size",
    "DataSpec",
    "load_data",
    "load_splits",
    "available_datasets",
    "check_compatible",
]
