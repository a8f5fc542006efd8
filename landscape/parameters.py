"""Which tensors of a model are perturbed: one selection for surfaces, Hessians and trajectories.

:func:`named_tensors` lists a model's tensors once each -- tied weights (one tensor registered
under several names, e.g. a language model's input embedding and output layer) appear under
their first name only -- and :func:`select_parameters` decides which of them move:

* **frozen** parameters (``requires_grad=False``) stay fixed unless ``include_frozen=True``;
* ``params`` / ``exclude`` are :func:`fnmatch.fnmatchcase` patterns (several allowed) matched
  against a tensor's full name *and* the names of the modules holding it, so ``"encoder.*.attn"``
  selects every tensor below such a module and ``"*.bias"`` every bias. A tied tensor matches
  when any of its names does;
* integer tensors (``num_batches_tracked``) never move.

It also records, per tensor, the axis of its *output units* (Li et al.'s "filters"): dim 0 for
``nn.Linear`` / ``nn.Conv*`` weights and everything else, dim 1 for the ``(in, out)`` weight of
HuggingFace's ``Conv1D`` (recognised by class name, so transformers stays optional), and
``None`` for the tensors ``ignore="biasbn"`` holds fixed: every bias, every tensor of a
normalisation layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm,
LocalResponseNorm, and any class whose name contains ``"Norm"``, e.g. HuggingFace's), and
every tensor with at most one dimension.

For an ordinary network (no tied, no frozen parameters) the default selection is every floating
tensor of ``model.named_parameters()`` (or ``state_dict()``) in the model's order, so
directions drawn with it are those of Li et al.'s code.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .errors import LandscapeError, check_option

__all__ = [
    "TENSOR_SELECTIONS",
    "NORM_LAYERS",
    "ParameterSelection",
    "named_tensors",
    "is_perturbable",
    "select_parameters",
    "name_matches",
    "tied_aliases",
    "is_norm_layer",
]

TENSOR_SELECTIONS = ("weights", "states")

#: Normalisation layers of torch; classes of other libraries are recognised by name ("Norm").
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm,
)

Patterns = str | Iterable[str] | None


def is_perturbable(t: Tensor) -> bool:
    """Whether a tensor may be moved along a direction (floating point)."""
    return t.is_floating_point() or t.is_complex()


def is_norm_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer (torch's, or a class named ``*Norm*``)."""
    return isinstance(module, NORM_LAYERS) or "Norm" in type(module).__name__


def _entries(model: nn.Module, what: str) -> list[tuple[str, Tensor]]:
    if what == "weights":
        return list(model.named_parameters(remove_duplicate=False))
    return list(model.state_dict(keep_vars=True).items())


def tied_aliases(model: nn.Module, what: str = "states") -> dict[str, str]:
    """Names under which an already listed tensor appears again, mapped to its first name.

    Parameters
    ----------
    model : nn.Module
        The network.
    what : {"weights", "states"}, default="states"
        Look among the parameters or the whole ``state_dict``.

    Returns
    -------
    dict[str, str]
        ``alias -> canonical name``, e.g. ``{"lm_head.weight": "transformer.wte.weight"}``.
    """
    check_option("what", what, TENSOR_SELECTIONS)
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for k, v in _entries(model, what):
        key = id(v)
        if key in first:
            out[k] = first[key]
        else:
            first[key] = k
    return out


def named_tensors(model: nn.Module, what: str = "weights") -> dict[str, Tensor]:
    """Return detached copies-by-reference of the model's tensors, each tensor once.

    Parameters
    ----------
    model : nn.Module
        The network.
    what : {"weights", "states"}
        ``"weights"``: the parameters; ``"states"``: the whole ``state_dict`` (parameters and
        buffers, e.g. BatchNorm running statistics).

    Returns
    -------
    dict[str, Tensor]
        Name to tensor, in the model's own order. Tied tensors appear once, under their first
        name (see :func:`tied_aliases`). The tensors are detached views; do not modify them in
        place.
    """
    check_option("what", what, TENSOR_SELECTIONS)
    aliases = tied_aliases(model, what)
    return {k: v.detach() for k, v in _entries(model, what) if k not in aliases}


def _patterns(name: str, value: Patterns) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    try:
        out = tuple(value)
    except TypeError:
        out = (value,)  # type: ignore[assignment]
    if not out or not all(isinstance(p, str) and p for p in out):
        raise LandscapeError(
            f"The '{name}' parameter must be a glob pattern or a list of them "
            f"(e.g. 'encoder.*.attn.*'). Got {value!r} instead."
        )
    return out


def _scopes(name: str) -> list[str]:
    """The tensor's name and the names of the modules holding it (``a.b.w``: a.b.w, a.b, a)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def name_matches(names: Iterable[str], pattern: str) -> bool:
    """Whether any of a tensor's ``names`` (or a dotted scope of one) matches the glob."""
    return any(fnmatch.fnmatchcase(s, pattern) for n in names for s in _scopes(n))


def _filter_dim(module: nn.Module | None, leaf: str, t: Tensor) -> int | None:
    if t.dim() <= 1 or leaf.startswith("bias") or leaf.endswith("_bias"):
        return None
    if module is not None and is_norm_layer(module):
        return None
    if module is not None and type(module).__name__ == "Conv1D" and leaf == "weight":
        return 1  # HuggingFace Conv1D: weight (in_features, out_features)
    return 0


@dataclass(frozen=True)
class ParameterSelection:
    """The tensors of a model and which of them a direction / Hessian / PCA moves.

    Attributes
    ----------
    what : {"weights", "states"}
        The tensor selection (:func:`named_tensors`) the names come from.
    names : tuple of str
        Every tensor of ``named_tensors(model, what)``, in order.
    perturbed : tuple of str
        The floating tensors selected (in order); the others are held fixed.
    filter_dims : dict[str, int or None]
        Axis of the output units of every tensor; ``None`` for biases, normalisation-layer
        tensors and tensors with at most one dimension (those ``ignore="biasbn"`` holds fixed).
    aliases : dict[str, str]
        Tied names left out of ``names``, mapped to the name they are listed under.
    frozen : tuple of str
        Parameters left out because they do not require gradients.
    recipe : dict
        The non-default options (``params``, ``exclude``, ``include_frozen``), for provenance;
        empty for the default selection.
    """

    what: str
    names: tuple[str, ...]
    perturbed: tuple[str, ...]
    filter_dims: dict[str, int | None] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    frozen: tuple[str, ...] = ()
    recipe: dict[str, Any] = field(default_factory=dict)

    def moves(self, name: str) -> bool:
        """Whether the tensor ``name`` is perturbed."""
        return name in self._perturbed_set

    def is_biasbn(self, name: str) -> bool:
        """Whether ``ignore="biasbn"`` holds the tensor ``name`` fixed."""
        return self.filter_dims.get(name, 0) is None

    def filter_dim(self, name: str) -> int:
        """Axis of the output units of ``name`` (0 when unknown)."""
        d = self.filter_dims.get(name, 0)
        return 0 if d is None else d

    @property
    def _perturbed_set(self) -> frozenset[str]:
        cached = self.__dict__.get("_pset")
        if cached is None:
            cached = frozenset(self.perturbed)
            object.__setattr__(self, "_pset", cached)
        return cached

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, Tensor],
        *,
        what: str = "weights",
        params: Patterns = None,
        exclude: Patterns = None,
    ) -> ParameterSelection:
        """A selection for a bare dict of tensors (no module: layout by dimension only)."""
        check_option("what", what, TENSOR_SELECTIONS)
        dims = {k: _filter_dim(None, k.rsplit(".", 1)[-1], v) for k, v in tensors.items()}
        return _select(what, dict(tensors), {k: [k] for k in tensors}, dims, (), {},
                       params, exclude, False)


def select_parameters(
    model: nn.Module,
    what: str = "weights",
    *,
    params: Patterns = None,
    exclude: Patterns = None,
    include_frozen: bool = False,
) -> ParameterSelection:
    """Decide which tensors of ``model`` are perturbed.

    Parameters
    ----------
    model : nn.Module
        The network.
    what : {"weights", "states"}, default="weights"
        Parameters only, or the whole ``state_dict`` (then buffers such as BatchNorm running
        statistics are perturbed too).
    params : str or list of str, optional
        Glob patterns; only tensors matching one (by their name or a module holding them) are
        perturbed. Default: all.
    exclude : str or list of str, optional
        Glob patterns of tensors held fixed.
    include_frozen : bool, default=False
        Also perturb parameters with ``requires_grad=False``.

    Returns
    -------
    ParameterSelection

    Raises
    ------
    LandscapeError
        If a pattern matches no tensor, or nothing is left to perturb.

    Examples
    --------
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1))
    >>> select_parameters(net, params="0.*").perturbed
    ('0.weight', '0.bias')
    """
    check_option("what", what, TENSOR_SELECTIONS)
    if not isinstance(include_frozen, bool):
        raise LandscapeError(
            f"The 'include_frozen' parameter must be a bool. Got {include_frozen!r} instead."
        )
    modules = dict(model.named_modules(remove_duplicate=False))
    entries = _entries(model, what)
    aliases = tied_aliases(model, what)
    tensors = {k: v for k, v in entries if k not in aliases}
    all_names: dict[str, list[str]] = {k: [k] for k in tensors}
    for a, c in aliases.items():
        all_names[c].append(a)
    dims: dict[str, int | None] = {}
    for k, v in tensors.items():
        owner, _, leaf = k.rpartition(".")
        dims[k] = _filter_dim(modules.get(owner), leaf, v)
    param_ids = {id(p) for p in model.parameters()}
    frozen = tuple(
        k for k, v in tensors.items()
        if id(v) in param_ids and not v.requires_grad and is_perturbable(v)
    )
    return _select(what, tensors, all_names, dims, frozen, aliases, params, exclude,
                   include_frozen)


def _select(
    what: str,
    tensors: dict[str, Tensor],
    all_names: dict[str, list[str]],
    dims: dict[str, int | None],
    frozen: tuple[str, ...],
    aliases: dict[str, str],
    params: Patterns,
    exclude: Patterns,
    include_frozen: bool,
) -> ParameterSelection:
    keep = _patterns("params", params)
    drop = _patterns("exclude", exclude)
    for option, pats in (("params", keep), ("exclude", drop)):
        for p in pats:
            if not any(name_matches(all_names[k], p) for k in tensors):
                raise LandscapeError(
                    f"{option} pattern '{p}' matches no tensor of the model (names look "
                    f"like {list(tensors)[:3]})"
                )
    skip = set() if include_frozen else set(frozen)
    chosen = tuple(
        k for k, v in tensors.items()
        if is_perturbable(v) and k not in skip
        and (not keep or any(name_matches(all_names[k], p) for p in keep))
        and not any(name_matches(all_names[k], p) for p in drop)
    )
    if not chosen:
        raise LandscapeError(
            "no tensor is left to perturb: check the 'params' and 'exclude' parameters"
            + ("; frozen parameters are held fixed unless include_frozen=True"
               if frozen and not include_frozen else "")
        )
    recipe: dict[str, Any] = {}
    if keep:
        recipe["params"] = list(keep)
    if drop:
        recipe["exclude"] = list(drop)
    if include_frozen:
        recipe["include_frozen"] = True
    return ParameterSelection(
        what=what,
        names=tuple(tensors),
        perturbed=chosen,
        filter_dims=dims,
        aliases=dict(aliases),
        frozen=tuple(k for k in frozen if not include_frozen),
        recipe=recipe,
    )
