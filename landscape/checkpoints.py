"""Saving and loading model checkpoints, safely and from the formats found in the wild.

:func:`save_checkpoint` writes landscape's own format atomically (temporary file in the same
directory, ``fsync``, :func:`os.replace`), so a killed process never leaves half a file behind::

    {"format": "landscape.checkpoint", "format_version": 1,
     "model": ModelSpec.to_dict() | None, "state_dict": {...}, "meta": {...}}

(and, for a checkpoint written with ``optimizer_state``, ``"optimizer_state": {...}``, read
back by :func:`load_optimizer_state`).

:func:`load_checkpoint` reads it back with ``torch.load(..., weights_only=True)`` -- which never
executes code from the file -- and also accepts what other code bases write:

* a raw ``state_dict`` (a mapping of names to tensors);
* a dict with a ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` entry holding one
  (PyTorch Lightning, most training scripts);
* keys carrying a wrapper prefix: ``"module."`` (DataParallel / DDP, possibly repeated),
  ``"_orig_mod."`` (``torch.compile``), ``"model."`` / ``"net."`` (Lightning modules). Only the
  leading components needed to match the target model's own keys are stripped;
* with ``trust=True`` only: a fully pickled :class:`~torch.nn.Module` (or dicts holding one),
  loaded with ``weights_only=False`` -- which can execute arbitrary code from the file;
* a ``.safetensors`` file (read with the ``safetensors`` library, never unpickled), with
  ``model`` given or a HuggingFace ``config.json`` next to it;
* a HuggingFace ``save_pretrained`` directory (``config.json`` and ``model.safetensors`` or
  ``pytorch_model.bin``), loaded with transformers' ``AutoConfig`` and the class its config
  names (``AutoModel`` otherwise), from the local directory only (``local_files_only=True``).

A file holding more than one candidate state dict with different weights -- several of
those entries (``{"state_dict": A, "model_state_dict": B}``), or several key prefixes each of
which fits the model (a Lightning module's ``model.*`` and its EMA copy's ``ema.*`` or
``ema.module.*``) -- is ambiguous: it is refused with one line listing the candidates, and the
``state_key`` / ``prefix`` arguments of :func:`load_checkpoint` (``--state-key`` /
``--prefix``) choose one. Nothing is guessed.

Tied weights (one tensor under two names, e.g. ``lm_head.weight`` and
``transformer.wte.weight``) are stored once by safetensors and ``save_pretrained``: a key
missing from a file because it is tied to a key that is present is accepted.

:func:`list_lightning_checkpoints` finds the ``epoch=N-step=M.ckpt`` / ``last.ckpt`` files of a
PyTorch Lightning run and orders them by the epoch and step recorded inside them
(:func:`checkpoint_position`), falling back to the file names.

Every problem (missing file, corrupted or truncated file, keys of a different architecture,
NaN/inf weights) is reported as a one-line :class:`~landscape.errors.LandscapeError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._atomic import atomic_write as _atomic_write
from .errors import LandscapeError
from .models import ModelSpec
from .parameters import tied_aliases

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "file_sha256",
    "save_checkpoint",
    "load_optimizer_state",
    "load_checkpoint",
    "checkpoint_position",
    "list_lightning_checkpoints",
    "list_hf_checkpoints",
]

CHECKPOINT_FORMAT = "landscape.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

#: Dict entries that may hold the state dict in third-party checkpoints, in order of preference.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
#: Wrapper prefixes stripped (only for readable error messages) when no prefix matches the model.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: How many offending keys an error message names.
_N_NAMED = 3

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def file_sha256(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    chunk_size : int, default 1 MiB
        Bytes read at a time (the file is never held in memory at once).

    Returns
    -------
    str
        64 lowercase hexadecimal characters.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------


def _plain(value: Any, where: str) -> Any:
    """Convert ``value`` to plain Python data that ``weights_only`` loading accepts."""
    if value is None:
        return None
    for kind in (bool, int, float, str):  # also numpy scalars that subclass them (np.float64)
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise LandscapeError(
                    f"checkpoint meta '{where}' has a non-string key {k!r}; use string keys"
                )
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    item = getattr(value, "item", None)  # numpy scalars, 0-d tensors
    if callable(item) and getattr(value, "ndim", None) == 0:
        return _plain(item(), where)
    raise LandscapeError(
        f"checkpoint meta '{where}' is a {type(value).__name__}; "
        "pass plain Python numbers, strings, lists or dicts"
    )


def save_checkpoint(
    path: PathLike, model: nn.Module, spec: ModelSpec | None = None, *,
    optimizer_state: Mapping[str, Any] | None = None, **meta: Any
) -> Path:
    """Save a model's ``state_dict`` with its architecture and metadata, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file (conventionally ``*.pt``); parent directories are created.
    model : nn.Module
        The model whose ``state_dict()`` is saved (tensors are moved to the CPU).
    spec : ModelSpec or None
        The architecture, so :func:`load_checkpoint` can rebuild the model without being told.
    **meta
        Plain Python data (numbers, strings, lists, dicts) stored under ``"meta"``; numpy
        scalars and paths are converted. Anything else raises :class:`LandscapeError`, so the
        file stays loadable with ``weights_only=True``.
    optimizer_state : dict, optional
        Plain data and tensors of the optimizer that analyses read back
        (:func:`load_optimizer_state`; e.g. Adam's second moments,
        :func:`landscape.optim.adam_state`); not written when ``None``.

    Returns
    -------
    Path
        ``path``.
    """
    if not isinstance(model, nn.Module):
        raise LandscapeError(
            f"save_checkpoint needs an nn.Module; got {type(model).__name__} instead"
        )
    if spec is not None and not isinstance(spec, ModelSpec):
        raise LandscapeError(
            f"The 'spec' parameter must be a ModelSpec or None. Got {type(spec).__name__} instead."
        )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model": None if spec is None else spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": _plain(dict(meta), "meta"),
    }
    if optimizer_state is not None:
        payload["optimizer_state"] = dict(optimizer_state)
    return _atomic_write(path, lambda f: torch.save(payload, f))


def load_optimizer_state(path: PathLike) -> dict[str, Any] | None:
    """The ``optimizer_state`` saved with a landscape checkpoint (``None`` when it has none).

    Raises
    ------
    LandscapeError
        If the file is missing or not a readable landscape checkpoint.
    """
    p = Path(path)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file: one line
        raise LandscapeError(f"cannot read the checkpoint '{p}' ({type(e).__name__}); check "
                             "the path") from e
    if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
        raise LandscapeError(f"'{p}' is not a landscape checkpoint (written by train()); it "
                             "holds no optimizer state")
    state = obj.get("optimizer_state")
    return dict(state) if isinstance(state, Mapping) else None


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    model : nn.Module
        The network with the checkpoint's weights, in ``eval()`` mode, on the CPU.
    spec : ModelSpec or None
        The architecture it was built from (``None`` when a ready module was passed to
        :func:`load_checkpoint`, or a trusted pickled module was loaded as is).
    path : str
        The file it was read from.
    sha256 : str
        SHA-256 of the file (identifies the exact weights in stored results).
    meta : dict
        The metadata saved with it (epoch, metrics, ...); for third-party checkpoints, the
        top-level scalar entries (e.g. ``epoch``, ``global_step``).
    """

    model: nn.Module = field(repr=False)
    spec: ModelSpec | None
    path: str
    sha256: str
    meta: dict = field(default_factory=dict)


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _quote(keys: list[str]) -> str:
    named = ", ".join(f"'{k}'" for k in keys[:_N_NAMED])
    return named + (", ..." if len(keys) > _N_NAMED else "")


#: Phrases of torch's weights-only unpickler that mean "the file pickles Python objects" (it
#: would load with ``weights_only=False``); its other complaints ("Unsupported operand 95",
#: "String is too long", ...) mean that the bytes are not a valid pickle at all.
_PICKLED_OBJECT_MARKERS = (
    "Unsupported global",
    "unsupported GLOBAL",
    "Trying to call reduce",
    "Can only create new object",
    "Can only build",
    "must be imported to load",
)


def _unsupported_global(message: str) -> str | None:
    marker = "Unsupported global: GLOBAL "
    if marker not in message:
        return None
    return message.split(marker, 1)[1].split()[0]


def _unpickler_reason(message: str) -> str:
    """The unpickler's own complaint, without torch's advice to pass ``weights_only=False``."""
    if "WeightsUnpickler error:" in message:
        message = message.split("WeightsUnpickler error:", 1)[1]
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _torch_load(path: Path, trust: bool) -> Any:
    """``torch.load`` on the CPU, turning every failure into a one-line LandscapeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4"
            return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if (
            not trust
            and "Weights only load failed" in msg
            and any(m in msg for m in _PICKLED_OBJECT_MARKERS)
        ):
            what = _unsupported_global(msg)
            detail = f" ({what})" if what else ""
            raise LandscapeError(
                f"checkpoint '{path}' contains pickled Python objects{detail} that can execute "
                "code when loaded; pass trust=True only if you trust its "
                "source, or re-save it as a state_dict"
            ) from e
        raise LandscapeError(
            f"checkpoint '{path}' is corrupted or not a PyTorch checkpoint (cannot unpickle it: "
            f"{_unpickler_reason(msg) or type(e).__name__}); re-save or re-download it"
        ) from e
    except (ImportError, AttributeError) as e:  # trust=True: a pickled class that is not found
        raise LandscapeError(
            f"checkpoint '{path}' pickles an object whose class cannot be imported "
            f"({str(e).splitlines()[0]}); import the module that defines it first, or re-save "
            "the checkpoint as a state_dict"
        ) from e
    except (EOFError, RuntimeError, KeyError, ValueError, TypeError, IndexError, OSError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise LandscapeError(
            f"checkpoint '{path}' is corrupted, truncated or not a PyTorch checkpoint "
            f"({type(e).__name__}); re-save or re-download it"
        ) from e


def _scalar_meta(obj: Mapping[str, Any], skip: str | None) -> dict:
    return {
        k: v
        for k, v in obj.items()
        if isinstance(k, str) and k != skip and isinstance(v, bool | int | float | str)
    }


def _n_tensors(value: Any) -> int:
    return len(value.state_dict()) if isinstance(value, nn.Module) else len(value)


def _same_tensors(a: Any, b: Any) -> bool:
    """Whether two candidate state dicts hold the same names and exactly equal tensors."""
    if a is b:
        return True
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)) or set(a) != set(b):
        return False
    return all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and torch.equal(a[k], b[k])
        for k in a
    )


def _distinct(candidates: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The candidates, less those equal tensor by tensor to an earlier one."""
    out: list[tuple[str, Any]] = []
    for name, value in candidates:
        if not any(_same_tensors(value, kept) for _, kept in out):
            out.append((name, value))
    return out


_MISSING = object()


def _entry(obj: Mapping[str, Any], key: str) -> Any:
    """``obj[key]``, where a dotted ``key`` may also walk nested dicts (``"ema.module"``)."""
    if key in obj:
        return obj[key]
    parts = key.split(".")
    for i in range(1, len(parts)):
        value = obj.get(".".join(parts[:i]))
        if isinstance(value, Mapping):
            found = _entry(value, ".".join(parts[i:]))
            if found is not _MISSING:
                return found
    return _MISSING


def _chosen_entry(obj: Mapping[str, Any], key: str, path: Path, trust: bool) -> Any:
    """The state dict under ``state_key``, or a one-line error saying what is there."""
    value = _entry(obj, key)
    if value is _MISSING:
        keys = [str(k) for k in obj]
        raise LandscapeError(
            f"checkpoint '{path}' has no entry {key!r} (top-level keys: "
            f"{_quote(keys) or 'none'}); pass one of them with state_key=..., "
            "or a key prefix inside the state dict with prefix=..."
        )
    if _is_state_dict(value) or (trust and isinstance(value, nn.Module)):
        return value
    if isinstance(value, Mapping):
        keys = [str(k) for k in value]
        raise LandscapeError(
            f"entry {key!r} of checkpoint '{path}' is not a state dict (its keys: "
            f"{_quote(keys) or 'none'}); give the dotted path to one with "
            f"state_key=..., e.g. '{key}.{keys[0] if keys else 'state_dict'}'"
        )
    raise LandscapeError(
        f"entry {key!r} of checkpoint '{path}' is a {type(value).__name__}, not a state dict; "
        "pass the key of a state dict with state_key=..."
    )


def _extract(
    obj: Any, path: Path, trust: bool, state_key: str | None = None
) -> tuple[Any, dict | None, dict]:
    """Split a loaded object into (state dict or nn.Module, our spec dict or None, meta).

    ``state_key`` names the entry holding the state dict; without it, a dict holding several
    different state dicts under the usual keys (:data:`_STATE_DICT_KEYS`) is refused.
    """
    if isinstance(obj, nn.Module):  # only reachable with trust=True
        if state_key is not None:
            raise LandscapeError(
                f"checkpoint '{path}' is a pickled module, not a dict of entries; drop "
                "the 'state_key' parameter"
            )
        return obj, None, {}
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        version = obj.get("format_version")
        if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
            raise LandscapeError(
                f"checkpoint '{path}' has format version {version!r}, newer than this version "
                f"of landscape reads ({CHECKPOINT_FORMAT_VERSION}); upgrade landscape"
            )
        state, spec, meta = obj.get("state_dict"), obj.get("model"), obj.get("meta") or {}
        if not _is_state_dict(state) or not (spec is None or isinstance(spec, Mapping)):
            raise LandscapeError(
                f"checkpoint '{path}' is a damaged landscape checkpoint (bad 'state_dict' or "
                "'model' entry); re-save it"
            )
        if state_key not in (None, "state_dict"):
            raise LandscapeError(
                f"checkpoint '{path}' is a landscape checkpoint, with one state dict under "
                f"'state_dict' (not {state_key!r}); drop the 'state_key' parameter"
            )
        return state, None if spec is None else dict(spec), dict(meta)
    if _is_state_dict(obj):
        if state_key is not None:
            raise LandscapeError(
                f"checkpoint '{path}' is a plain state dict (names to tensors, no nested "
                f"entries such as {state_key!r}); drop the 'state_key' parameter, or "
                "choose a key prefix with prefix=..."
            )
        return obj, None, {}
    if isinstance(obj, Mapping):
        if state_key is not None:
            return _chosen_entry(obj, state_key, path, trust), None, _scalar_meta(obj, None)
        found = [
            (key, value)
            for key in _STATE_DICT_KEYS
            if _is_state_dict(value := obj.get(key)) or (trust and isinstance(value, nn.Module))
        ]
        if len(_distinct(found)) > 1:
            listed = ", ".join(f"'{k}' ({_n_tensors(v)} tensors)" for k, v in found)
            raise LandscapeError(
                f"checkpoint '{path}' holds several state dicts: {listed}; choose one with "
                "state_key=..."
            )
        if found:
            key, value = found[0]
            return value, None, _scalar_meta(obj, key)
        keys = [str(k) for k in obj]
        raise LandscapeError(
            f"checkpoint '{path}' holds no state dict (top-level keys: {_quote(keys) or 'none'});"
            " expected a state_dict or a dict with a 'state_dict', 'model_state_dict' or "
            "'model' entry"
        )
    raise LandscapeError(
        f"checkpoint '{path}' holds a {type(obj).__name__}, not model weights; expected a "
        "state_dict or a dict with a 'state_dict', 'model_state_dict' or 'model' entry"
    )


def _under(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries whose keys start with ``prefix``, with the prefix stripped."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _fits(
    state: Mapping[str, Tensor], target: Mapping[str, Any], twins: Mapping[str, str]
) -> bool:
    """Whether ``state`` holds every tensor of ``target`` (tied twins and BatchNorm step
    counters may be absent) with the target's shape."""
    if not target:
        return False
    for k, t in target.items():
        v = state.get(k)
        if v is None and k in twins:
            v = state.get(twins[k])
        if v is None:
            if k.endswith("num_batches_tracked"):
                continue
            return False
        if tuple(v.shape) != tuple(t.shape):
            return False
    return True


def _show_prefix(prefix: str, n: int) -> str:
    return f"'{prefix}' ({n} tensors)" if prefix else f"'' (no prefix, {n} tensors)"


def _take(state: Mapping[str, Tensor], prefix: str, fitting: list[str]) -> dict[str, Tensor]:
    """The entries under ``prefix``, stripped, less those under a longer fitting prefix."""
    inner = [q for q in fitting if q != prefix and q.startswith(prefix)]
    return {
        k[len(prefix):]: v
        for k, v in state.items()
        if k.startswith(prefix) and not any(k.startswith(q) for q in inner)
    }


def _align_keys(
    state: Mapping[str, Tensor],
    target: Mapping[str, Any],
    *,
    path: Path | None = None,
    prefix: str | None = None,
    twins: Mapping[str, str] | None = None,
    outer: str = "",
) -> dict[str, Tensor]:
    """Strip the leading key components that make ``state`` match the ``target`` keys.

    Each candidate prefix (whole dot-separated components, e.g. ``"module."``,
    ``"module.module."``, ``"model."``) is scored by how many of its keys then name a target
    key; the best-scoring one wins (ties: the shorter prefix, so nothing is stripped when the
    keys already match). Keys outside the chosen prefix belong to other sub-modules (a
    Lightning module's loss, an EMA copy, ...) and are dropped, but a prefix must hold at least
    half of the checkpoint's keys: one sub-module of a different network (``"module.fc."``) is
    never silently taken for the model. When no prefix gives a single match, pure wrapper
    prefixes (``module.``, ``_orig_mod.``) are stripped so that error messages show the model's
    own key names.

    Where several prefixes each hold a full copy of the model (every target key, with its
    shape: ``"model."`` and ``"ema."`` of a Lightning module with an EMA copy, ``"model."`` and
    ``"ema.module."`` with an ``AveragedModel``) with different tensors, and together more
    than half of the keys, the file is ambiguous: without ``prefix`` that is an error listing
    them. ``prefix`` chooses one: its keys are taken (less those of longer fitting prefixes
    inside it), or, if it is not itself a full copy, the keys under it are aligned as above
    (``"ema."`` of an ``AveragedModel``: ``"module."`` is stripped, ``n_averaged`` dropped).
    Copies equal tensor by tensor are not ambiguous: the first is taken. ``twins`` maps tied
    names to each other both ways; ``outer`` is a prefix already stripped (named in messages).
    """
    twins = dict(twins or {})
    scores: dict[str, int] = {"": sum(k in target for k in state)}
    for key in state:
        parts = key.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in target:
                p = ".".join(parts[:i]) + "."
                scores[p] = scores.get(p, 0) + 1
    fitting = [p for p in scores if scores[p] and _fits(_under(state, p), target, twins)]
    if prefix is not None:
        if prefix in fitting:
            return _take(state, prefix, fitting)
        inner = _under(state, prefix)
        if not inner:
            heads = list(dict.fromkeys(k.split(".", 1)[0] + "." for k in state))
            raise LandscapeError(
                f"no key of checkpoint '{path}' starts with the prefix {prefix!r} (its keys "
                f"start with {_quote(heads)}); pass one of those with prefix=..."
            )
        return _align_keys(inner, target, path=path, twins=twins, outer=prefix)
    if len(fitting) > 1 and 2 * sum(any(k.startswith(p) for p in fitting) for k in state) > len(
        state
    ):
        taken = [(p, _take(state, p, fitting)) for p in fitting]
        if len(_distinct([(p, {k: v[k] for k in target if k in v}) for p, v in taken])) > 1:
            listed = ", ".join(_show_prefix(outer + p, len(v)) for p, v in taken)
            raise LandscapeError(
                f"checkpoint '{path}' holds several state dicts that fit the model, under the "
                f"key prefixes {listed}; choose one with prefix=..."
            )
        # identical copies: any one of them is the model
        return min(taken, key=lambda pv: (-scores[pv[0]], len(pv[0])))[1]
    for p in [p for p in scores if p]:
        if 2 * sum(k.startswith(p) for k in state) < len(state):
            del scores[p]
    best = max(scores, key=lambda p: (scores[p], -len(p)))
    if scores[best] == 0:
        out = dict(state)
        while out and (
            wrapper := next((w for w in _WRAPPER_PREFIXES if all(k.startswith(w) for k in out)),
                            None)
        ):
            out = {k[len(wrapper):]: v for k, v in out.items()}
        return out
    if not best:
        return dict(state)
    return {k[len(best):]: v for k, v in state.items() if k.startswith(best)}


def _fill_tied(state: dict[str, Tensor], net: nn.Module) -> dict[str, Tensor]:
    """Give a tied name missing from ``state`` the tensor of its present twin."""
    for alias, canonical in tied_aliases(net, "states").items():
        if alias not in state and canonical in state:
            state[alias] = state[canonical]
        elif canonical not in state and alias in state:
            state[canonical] = state[alias]
    return state


def _check_fit(state: Mapping[str, Tensor], target: Mapping[str, Tensor], path: Path) -> None:
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    mismatched = [
        k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) {_quote(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) {_quote(unexpected)}")
    if mismatched:
        shapes = ", ".join(
            f"'{k}' {tuple(state[k].shape)} vs {tuple(target[k].shape)}"
            for k in mismatched[:_N_NAMED]
        )
        more = ", ..." if len(mismatched) > _N_NAMED else ""
        parts.append(
            f"{len(mismatched)} shape mismatch(es) (checkpoint vs model) {shapes}{more}"
        )
    raise LandscapeError(
        f"checkpoint '{path}' does not fit the model: {'; '.join(parts)}; pass model=NAME (and "
        "model_kwargs=JSON) with the architecture it was trained with"
    )


def _check_finite(state: Mapping[str, Tensor], path: Path) -> None:
    for name, t in state.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise LandscapeError(
                f"checkpoint '{path}' has non-finite values (NaN/inf) in '{name}' "
                f"({bad} of {t.numel()}); the run probably diverged -- use an earlier "
                "checkpoint or retrain with a lower learning rate"
            )


def _resolve_model(
    model: ModelSpec | str | nn.Module | None,
    model_kwargs: Mapping[str, Any] | None,
    saved_spec: dict | None,
    loaded: Any,
    path: Path,
) -> tuple[nn.Module, ModelSpec | None]:
    """Build (or take) the module the weights are loaded into, and its spec."""
    if model_kwargs is not None and not isinstance(model_kwargs, Mapping):
        raise LandscapeError(
            "The 'model_kwargs' parameter must be a dict. "
            f"Got {type(model_kwargs).__name__} instead."
        )
    if model_kwargs and not isinstance(model, str):
        raise LandscapeError(
            "The 'model_kwargs' parameter is only used together with a model name; pass "
            "model=NAME with it"
        )
    if isinstance(model, nn.Module):
        return model, None
    if isinstance(model, ModelSpec):
        return model.build(), model
    if isinstance(model, str):
        spec = ModelSpec(model, dict(model_kwargs or {}))
        return spec.build(), spec
    if model is not None:
        raise LandscapeError(
            "The 'model' parameter must be a ModelSpec, a model name, an nn.Module or None. "
            f"Got {type(model).__name__} instead."
        )
    if saved_spec is not None:
        try:
            spec = ModelSpec.from_dict(saved_spec)
        except LandscapeError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise LandscapeError(
                f"checkpoint '{path}' carries a damaged model spec ({e}); pass model=NAME "
                "(and model_kwargs=JSON) with the architecture it was trained with"
            ) from e
        return spec.build(), spec
    if isinstance(loaded, nn.Module):  # trusted full pickle: the object is the model
        return loaded, None
    raise LandscapeError(
        f"checkpoint '{path}' carries no model spec; pass model=NAME (and model_kwargs=JSON) "
        "with the architecture it was trained with"
    )


def load_checkpoint(
    path: PathLike,
    *,
    model: ModelSpec | str | nn.Module | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    trust: bool = False,
    state_key: str | None = None,
    prefix: str | None = None,
) -> Checkpoint:
    """Load a checkpoint into a model, safely.

    Parameters
    ----------
    path : str or os.PathLike
        A landscape checkpoint, a raw ``state_dict``, or a dict holding one under
        ``"state_dict"``, ``"model_state_dict"`` or ``"model"`` (wrapper prefixes such as
        ``"module."``, ``"_orig_mod."``, ``"model."`` are stripped as needed to match the
        model's keys).
    model : ModelSpec, str, nn.Module or None
        The architecture: a :class:`~landscape.models.ModelSpec`, a registry name (with
        ``model_kwargs``), or a ready module whose weights are replaced in place. ``None``
        uses the spec saved in a landscape checkpoint.
    model_kwargs : dict, optional
        Keyword arguments for the registry name given as ``model``.
    trust : bool, default False
        Allow full pickles (``weights_only=False``), e.g. a saved ``nn.Module``. Unpickling
        can execute arbitrary code: only for files from a source you trust.
    state_key : str, optional
        The entry of the file that holds the state dict, e.g. ``"state_dict"`` or ``"ema"``;
        a dotted path walks nested dicts (``"ema.module"``). Needed when the file holds
        several different state dicts under ``"state_dict"``, ``"model_state_dict"`` and
        ``"model"``; other entries (``"ema"``, ``"state_dict_ema"``, ...) are only read when
        named here. CLI: ``--state-key KEY``.
    prefix : str, optional
        The key prefix to strip, e.g. ``"model."`` or ``"ema.module."`` (a missing final
        ``"."`` is added; ``""`` strips nothing); keys outside it are dropped. Needed when
        several prefixes each hold a full copy of the model with different weights: a
        Lightning module with ``model.*`` and ``ema.*`` halves, or ``model.*`` with
        ``ema.module.*`` and ``ema.n_averaged`` (``torch.optim.swa_utils.AveragedModel``).
        A prefix that is not itself a full copy is stripped and the rest aligned as usual:
        ``"ema."`` of an ``AveragedModel`` strips ``module.`` and drops its ``n_averaged``
        counter, which is not a model tensor. CLI: ``--prefix PREFIX``.

    Returns
    -------
    Checkpoint
        The model (float32 weights as saved, ``eval()`` mode, CPU), its spec, the file's path
        and SHA-256, and the saved metadata.

    Raises
    ------
    LandscapeError
        If the file is missing, corrupted or truncated; holds pickled objects and ``trust`` is
        false; carries no architecture and ``model`` is not given; has keys or shapes of a
        different architecture (the first offending keys are named); has NaN/inf weights; or
        is ambiguous and ``state_key`` / ``prefix`` does not choose.

    Notes
    -----
    A file is ambiguous when it holds more than one candidate state dict with different
    weights: several of the usual entries (``{"state_dict": A, "model_state_dict": B}``), or
    several key prefixes each of which fits the model (``model.*`` and ``ema.*``). Nothing is
    guessed; the error is one line that lists the candidates::

        checkpoint 'x.pt' holds several state dicts: 'state_dict' (120 tensors),
        'model_state_dict' (120 tensors); choose one with state_key=...

        checkpoint 'ema.ckpt' holds several state dicts that fit the model, under the key
        prefixes 'model.' (8 tensors), 'ema.module.' (8 tensors); choose one with prefix=...

    and ``state_key="state_dict"`` or ``prefix="ema.module."`` chooses. Files with one
    candidate load as before, with or without the options.

    Examples
    --------
    >>> ckpt = load_checkpoint("runs/mlp/epoch_0030.pt")                 # doctest: +SKIP
    >>> ckpt = load_checkpoint("resnet20.th", model="resnet20")          # doctest: +SKIP
    >>> ckpt = load_checkpoint("x.pt", model="mlp", state_key="state_dict")  # doctest: +SKIP
    >>> ckpt = load_checkpoint("ema.ckpt", model="mlp", prefix="ema.module.")  # doctest: +SKIP
    >>> ckpt.model(x), ckpt.meta["test_acc"]                             # doctest: +SKIP
    """
    path = Path(path)
    for name, value in (("state_key", state_key), ("prefix", prefix)):
        if value is not None and not isinstance(value, str):
            raise LandscapeError(
                f"The '{name}' parameter must be a str or None. Got {type(value).__name__} "
                "instead."
            )
    if state_key == "":
        raise LandscapeError(
            "The 'state_key' parameter must name an entry of the checkpoint. Got '' instead."
        )
    if prefix and not prefix.endswith("."):
        prefix += "."
    if not path.exists():
        raise LandscapeError(f"checkpoint '{path}' does not exist; check the path")
    if path.is_dir() and (path / "config.json").is_file():
        if state_key is not None or prefix is not None:
            raise LandscapeError(
                f"'{path}' is a HuggingFace model directory, loaded as saved; drop the "
                "'state_key' and 'prefix' parameters"
            )
        return _load_hf_dir(path, model, model_kwargs)
    if not path.is_file():
        raise LandscapeError(
            f"checkpoint '{path}' is not a file (nor a HuggingFace directory with a "
            "config.json); pass the path of a .pt or .safetensors file"
        )
    if path.stat().st_size == 0:
        raise LandscapeError(f"checkpoint '{path}' is empty; re-save or re-download it")
    sha = file_sha256(path)
    if path.suffix == ".safetensors":
        if state_key is not None:
            raise LandscapeError(
                f"checkpoint '{path}' is a safetensors file, one flat state dict; drop "
                "the 'state_key' parameter, or choose a key prefix with prefix=..."
            )
        loaded, saved_spec, meta = _safetensors_load(path), None, {}
        if model is None and (path.parent / "config.json").is_file():
            model = _hf_model(path.parent, build=True)
    else:
        loaded, saved_spec, meta = _extract(_torch_load(path, trust), path, trust, state_key)

    net, spec = _resolve_model(model, model_kwargs, saved_spec, loaded, path)
    if not isinstance(net, nn.Module):
        raise LandscapeError(f"building the model for '{path}' did not give an nn.Module")
    source = loaded.state_dict() if isinstance(loaded, nn.Module) else loaded
    target = net.state_dict()
    tied = tied_aliases(net, "states")
    twins = {**tied, **{canonical: alias for alias, canonical in tied.items()}}
    state = _fill_tied(
        _align_keys(source, target, path=path, prefix=prefix, twins=twins), net
    )
    for k in target:  # old BatchNorm checkpoints lack the (unused) step counter
        if k not in state and k.endswith("num_batches_tracked"):
            state[k] = target[k]
    _check_fit(state, target, path)
    _check_finite(state, path)
    if net is not loaded:
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise LandscapeError(
                f"checkpoint '{path}' does not fit the model ({str(e).splitlines()[0]}); pass "
                "model=NAME (and model_kwargs=JSON) with the architecture it was trained with"
            ) from e
    net.eval()
    return Checkpoint(model=net, spec=spec, path=str(path), sha256=sha, meta=meta)


# --------------------------------------------------------------------------------------------
# safetensors and HuggingFace directories
# --------------------------------------------------------------------------------------------

#: Weight files of a ``save_pretrained`` directory, in order of preference.
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")


def _safetensors_load(path: Path) -> dict[str, Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as e:  # pragma: no cover - safetensors is a dependency
        raise LandscapeError(
            f"reading '{path}' needs the safetensors package; pip install safetensors"
        ) from e
    try:
        state = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError, OSError, ...
        raise LandscapeError(
            f"checkpoint '{path}' is corrupted or not a safetensors file "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); re-save it"
        ) from e
    if not state:
        raise LandscapeError(f"checkpoint '{path}' holds no tensors")
    return state


def _transformers(path: Path) -> Any:
    try:
        import transformers
    except ImportError as e:
        raise LandscapeError(
            f"'{path}' is a HuggingFace model directory; loading it needs the transformers "
            "package (pip install transformers)"
        ) from e
    return transformers


@contextlib.contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """transformers' own output off while it loads (its "Loading weights" bar, and the
    mismatch table it logs before raising): a failure is our one line, a success prints
    nothing; its settings are restored afterwards."""
    log = transformers.utils.logging
    level, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()
    log.disable_progress_bar()
    try:
        yield
    finally:
        log.set_verbosity(level)
        if bars:
            log.enable_progress_bar()


def _hf_model(path: Path, *, build: bool) -> nn.Module:
    """The model of a HuggingFace directory: built from its config, or with its weights."""
    transformers = _transformers(path)
    with _quiet_transformers(transformers):
        return _hf_model_loaded(transformers, path, build=build)


def _hf_model_loaded(transformers: Any, path: Path, *, build: bool) -> nn.Module:
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        names = list(getattr(config, "architectures", None) or [])
        cls = getattr(transformers, names[0], None) if names else None
        if cls is None:
            cls = transformers.AutoModel
        if build:
            if cls is transformers.AutoModel:
                return cls.from_config(config)
            return cls(config)
        return cls.from_pretrained(str(path), config=config, local_files_only=True)
    except LandscapeError:
        raise
    except Exception as e:  # transformers raises OSError, ValueError, KeyError, ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise LandscapeError(
            f"cannot load the HuggingFace model in '{path}' ({type(e).__name__}: {first}); "
            "check its config.json and weight files"
        ) from e


def _hf_sha256(path: Path) -> str:
    """SHA-256 over the config and the weight files (name and digest of each)."""
    h = hashlib.sha256()
    files = ["config.json"] + [f.name for f in sorted(path.iterdir())
                               if f.is_file() and (f.suffix in (".safetensors", ".bin")
                                                   or f.name in _HF_WEIGHTS)]
    for name in files:
        h.update(name.encode())
        h.update(file_sha256(path / name).encode())
    return h.hexdigest()


def _hf_meta(path: Path) -> dict:
    """Training position of a HuggingFace Trainer checkpoint (``trainer_state.json``)."""
    meta: dict[str, Any] = {"format": "huggingface"}
    state = path / "trainer_state.json"
    if state.is_file():
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            return meta
        step = data.get("global_step")
        epoch = data.get("epoch")
        if isinstance(step, int):
            meta["global_step"] = step
        if isinstance(epoch, int | float) and float(epoch).is_integer():
            meta["epoch"] = int(epoch)
    return meta


def _load_hf_dir(
    path: Path, model: ModelSpec | str | nn.Module | None, model_kwargs: Mapping[str, Any] | None
) -> Checkpoint:
    if model_kwargs or isinstance(model, str | ModelSpec):
        raise LandscapeError(
            f"'{path}' is a HuggingFace model directory: its config.json gives the "
            "architecture; drop the 'model' and 'model_kwargs' parameters"
        )
    if not any((path / f).is_file() for f in _HF_WEIGHTS):
        raise LandscapeError(
            f"HuggingFace directory '{path}' has a config.json but no weights "
            f"(none of {', '.join(_HF_WEIGHTS)}); save it with save_pretrained"
        )
    sha = _hf_sha256(path)
    if isinstance(model, nn.Module):
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise LandscapeError(
                f"loading '{path}' into a given module needs its model.safetensors; pass "
                "no model to load it with transformers"
            )
        ckpt = load_checkpoint(weights, model=model)
        return Checkpoint(model=ckpt.model, spec=None, path=str(path), sha256=sha,
                          meta=_hf_meta(path))
    net = _hf_model(path, build=False)
    _check_finite(net.state_dict(), path)
    net.eval()
    return Checkpoint(model=net, spec=None, path=str(path), sha256=sha, meta=_hf_meta(path))


# --------------------------------------------------------------------------------------------
# training position and Lightning runs
# --------------------------------------------------------------------------------------------

_EPOCH_RE = re.compile(r"(?:^|[-_])epoch=(\d+)")
_STEP_RE = re.compile(r"(?:^|[-_])step=(\d+)")


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value.item())
    return None


def checkpoint_position(path: PathLike) -> tuple[int | None, int | None]:
    """The ``(epoch, step)`` a checkpoint was saved at, ``None`` where unknown.

    Read from the file (``weights_only=True``, memory-mapped, nothing executed): a landscape
    checkpoint's ``meta["epoch"]``, a Lightning checkpoint's ``epoch`` / ``global_step``, a
    HuggingFace Trainer directory's ``trainer_state.json``. Where the file records nothing (or
    cannot be read that way), from its name: ``epoch=3-step=120.ckpt``, ``epoch_0003.pt``.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file or HuggingFace directory.

    Returns
    -------
    tuple of (int or None, int or None)
    """
    path = Path(path)
    epoch: int | None = None
    step: int | None = None
    if path.is_dir():
        meta = _hf_meta(path)
        epoch, step = meta.get("epoch"), meta.get("global_step")
    elif path.is_file() and path.suffix != ".safetensors":
        obj: Any = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # unreadable this way: fall back to the name
            obj = None
        if isinstance(obj, Mapping):
            meta = obj.get("meta") if obj.get("format") == CHECKPOINT_FORMAT else obj
            if isinstance(meta, Mapping):
                epoch = _int_or_none(meta.get("epoch"))
                step = _int_or_none(meta.get("global_step", meta.get("step")))
        del obj
    name = path.name
    if epoch is None:
        m = _EPOCH_RE.search(name) or re.match(r"^epoch_(\d+)\.pt$", name)
        epoch = int(m.group(1)) if m else None
    if step is None:
        m = _STEP_RE.search(name)
        step = int(m.group(1)) if m else None
    return epoch, step


def list_lightning_checkpoints(run_dir: PathLike) -> list[Path]:
    """The ``.ckpt`` files of a PyTorch Lightning run, in training order.

    The files are looked for in ``run_dir`` itself, else anywhere below it (e.g.
    ``lightning_logs/version_0/checkpoints``; they must then all sit in one directory). They
    are ordered by the ``(epoch, global_step)`` recorded in each file
    (:func:`checkpoint_position`), the file name breaking ties; ``last.ckpt`` is dropped when
    it duplicates the position of another file, and files whose position is unknown come
    last.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run's directory (or its ``checkpoints`` folder).

    Returns
    -------
    list of Path

    Raises
    ------
    LandscapeError
        If the directory holds no ``.ckpt`` file, or they lie in several directories.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise LandscapeError(f"'{root}' is not a directory; pass a Lightning run directory")
    files = sorted(p for p in root.glob("*.ckpt") if p.is_file())
    if not files:
        files = sorted(p for p in root.rglob("*.ckpt") if p.is_file())
        parents = sorted({str(p.parent) for p in files})
        if len(parents) > 1:
            raise LandscapeError(
                f"'{root}' holds .ckpt files in {len(parents)} directories ({parents[0]}, "
                f"{parents[1]}, ...); pass the one directory of the run to analyse"
            )
    if not files:
        raise LandscapeError(f"'{root}' holds no Lightning checkpoints (*.ckpt)")
    big = float("inf")
    keyed = []
    for p in files:
        epoch, step = checkpoint_position(p)
        keyed.append(((big if epoch is None else epoch, big if step is None else step), p))
    seen = {k for k, p in keyed if p.name != "last.ckpt" and big not in k}
    keyed = [(k, p) for k, p in keyed if not (p.name == "last.ckpt" and k in seen)]
    keyed.sort(key=lambda kp: (kp[0], kp[1].name == "last.ckpt", kp[1].name))
    return [p for _, p in keyed]


_HF_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def list_hf_checkpoints(run_dir: PathLike) -> list[Path]:
    """The ``checkpoint-N`` directories of a HuggingFace ``Trainer`` run, in training order.

    Ordered by the ``global_step`` of each directory's ``trainer_state.json`` (``N`` where it
    has none); only directories with a ``config.json`` count.

    Raises
    ------
    LandscapeError
        If ``run_dir`` holds no such directory.
    """
    root = Path(run_dir)
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = _HF_CKPT_RE.match(p.name)
            if m and p.is_dir() and (p / "config.json").is_file():
                step = _hf_meta(p).get("global_step")
                found.append((step if isinstance(step, int) else int(m.group(1)),
                              int(m.group(1)), p))
    if not found:
        raise LandscapeError(
            f"'{root}' holds no HuggingFace Trainer checkpoints (checkpoint-N directories with "
            "a config.json)"
        )
    return [p for *_, p in sorted(found)]
