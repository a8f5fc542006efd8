"""Build reference models (or user models) by name, and describe them as JSON.

A model is named either by a key of :data:`MODELS` (``"resnet20"``, ``"mlp"``, ...) or, for a
user's own architecture, as ``"package.module:factory"``: the module is imported and
``factory(**kwargs)`` must return an :class:`torch.nn.Module`. A :class:`ModelSpec` (name plus
keyword arguments) is what results and checkpoints store to rebuild the network.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from .._imports import ImportNameError, import_object
from ..errors import LandscapeError
from .densenet import DenseNet, densenet_bc40, densenet_bc100
from .highway import HighwayConv, HighwayMLP
from .mlp import MLP
from .preresnet import PreResNet, preresnet20, preresnet56, preresnet110, preresnet164
from .resnet import ResNet, resnet20, resnet56, resnet110, resnet164
from .resnext import ResNeXt, resnext29_8x64d, resnext29_16x64d
from .transformer import GPT, ViT
from .unet import UNet
from .vgg import VGG, vgg9, vgg16

if TYPE_CHECKING:
    from ..data import TensorData

__all__ = [
    "MODELS",
    "ModelSpec",
    "adapt_to_data",
    "available_models",
    "build",
    "data_kwargs",
    "parse_model_kwargs",
    "skip_switch",
]

#: Read-only mapping of the built-in model names to their factories.
MODELS: Mapping[str, Callable[..., nn.Module]] = MappingProxyType(
    {
        "mlp": MLP,
        "resnet": ResNet,
        "resnet20": resnet20,
        "resnet56": resnet56,
        "resnet110": resnet110,
        "resnet164": resnet164,
        "preresnet": PreResNet,
        "preresnet20": preresnet20,
        "preresnet56": preresnet56,
        "preresnet110": preresnet110,
        "preresnet164": preresnet164,
        "densenet": DenseNet,
        "densenet_bc40": densenet_bc40,
        "densenet_bc100": densenet_bc100,
        "vgg": VGG,
        "vgg9": vgg9,
        "vgg16": vgg16,
        "vit": ViT,
        "gpt": GPT,
        "unet": UNet,
        "highway": HighwayMLP,
        "highway_conv": HighwayConv,
        "resnext": ResNeXt,
        "resnext29_8x64d": resnext29_8x64d,
        "resnext29_16x64d": resnext29_16x64d,
    }
)


def available_models() -> list[str]:
    """Return the sorted names of the built-in models.

    Any ``"package.module:factory"`` string is accepted by :func:`build` as well.
    """
    return sorted(MODELS)


def _unknown_name(name: str) -> LandscapeError:
    names = available_models()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    opts = ", ".join(repr(n) for n in names)
    return LandscapeError(
        f"Unknown model {name!r}.{hint} Available models: {opts}; "
        "or give your own as 'package.module:factory'."
    )


def _import_factory(name: str) -> Callable[..., Any]:
    try:
        return import_object(name, what="model")
    except ImportNameError as err:  # the wording of the model errors
        m, a = err.module, err.attr
        raise LandscapeError({
            "format": f"The model {name!r} must have the form 'package.module:factory' "
                      "with both parts non-empty.",
            "module": f"Cannot import module {m!r} for model {name!r}: {err.detail}. "
                      "Check that it is installed or on PYTHONPATH.",
            "attribute": f"Module {m!r} has no attribute {a!r} for model {name!r}.",
            "callable": f"The model factory {name!r} is not callable (it is a "
                        f"{err.detail}).",
        }[err.problem]) from err


def _accepted_args(signature: inspect.Signature) -> str:
    names = [
        p.name
        for p in signature.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return f" It accepts: {', '.join(names)}." if names else " It accepts no arguments."


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by name.

    Parameters
    ----------
    name : str
        One of :func:`available_models` (``"resnet20"``, ``"preresnet56"``, ``"densenet"``,
        ``"vgg9"``, ``"vit"``, ``"gpt"``, ``"resnet"`` which needs ``depth``, ...), or
        ``"package.module:factory"`` for a user model: the module is imported and
        ``factory(**kwargs)`` is called.
    **kwargs
        Keyword arguments of the model's constructor, e.g. ``shortcut=False``,
        ``in_channels=1``, ``width=2``.

    Returns
    -------
    nn.Module
        The freshly initialised model (seed with :func:`torch.manual_seed` beforehand for a
        reproducible initialisation).

    Raises
    ------
    LandscapeError
        If the name is unknown, the module cannot be imported, the factory does not return an
        ``nn.Module``, or the arguments are rejected (unknown or missing keyword, bad value).

    Examples
    --------
    >>> net = build("resnet20", in_channels=1, shortcut=False)
    >>> type(net).__name__, net.depth, net.shortcut
    ('ResNet', 20, False)
    """
    if not isinstance(name, str):
        raise LandscapeError(f"The 'name' parameter must be a str. Got {name!r} instead.")
    factory = _factory(name)

    # Bind first so that only argument errors are reported as such: a TypeError raised by a bug
    # inside a user factory keeps its traceback.
    try:
        signature: inspect.Signature | None = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as err:
            raise LandscapeError(
                f"Cannot build model {name!r}: {err}.{_accepted_args(signature)}"
            ) from err
    try:
        model = factory(**kwargs)
    except LandscapeError as err:
        raise LandscapeError(f"Cannot build model {name!r}: {err}") from err
    except TypeError as err:
        if signature is not None:
            raise
        raise LandscapeError(f"Cannot build model {name!r}: {err}.") from err
    if not isinstance(model, nn.Module):
        raise LandscapeError(
            f"The model factory {name!r} returned an object of type {type(model).__name__!r}, "
            "not a torch.nn.Module."
        )
    return model


def _factory(name: str) -> Callable[..., Any]:
    if name in MODELS:
        return MODELS[name]
    if ":" in name:
        return _import_factory(name)
    raise _unknown_name(name)


def data_kwargs(data: TensorData) -> dict[str, Any]:
    """The architecture arguments that a data set determines.

    Images ``(N, C, H, W)`` give ``in_channels=C``, ``in_features=C*H*W`` and, when square,
    ``image_size=H``; other float inputs ``in_features``; integer token ids ``(N, T)`` give
    ``seq_len=T`` and ``vocab_size`` (largest id + 1); class labels give ``num_classes``.

    Streamed data (:class:`~landscape.data.StreamData`) give what their first batch shows
    of ``(x, y)`` pairs: the input arguments of float inputs only (their classes, vocabulary
    and sequence lengths are not known without reading them all).

    Parameters
    ----------
    data : TensorData or StreamData
        The (training) data.

    Returns
    -------
    dict
        Argument names to values; a model uses those its factory accepts.
    """
    out: dict[str, Any] = {}
    if not isinstance(getattr(data, "x", None), Tensor):
        from ..data import first_batch

        batch = first_batch(data)
        x = batch[0] if isinstance(batch, tuple | list) and batch else None
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
            return out
        data = _Shape(x)
    x, shape = data.x, data.input_shape
    if x.is_floating_point():
        if len(shape) == 3:
            out["in_channels"] = shape[0]
            if shape[1] == shape[2]:
                out["image_size"] = shape[1]
        if shape:
            out["in_features"] = math.prod(shape)
    elif len(shape) == 1 and len(data):
        out["seq_len"] = shape[0]
        out["vocab_size"] = int(x.max()) + 1
    if data.num_classes is not None:
        out["num_classes"] = data.num_classes
    return out


@dataclass(frozen=True)
class _Shape:
    """The first batch of streamed data, as far as :func:`data_kwargs` reads it."""

    x: Tensor
    num_classes: None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


def adapt_to_data(spec: ModelSpec, data: TensorData) -> ModelSpec:
    """Fill in the architecture arguments the data determines and the spec leaves open.

    ``landscape train --model resnet20 --data digits`` trains a ResNet-20 with
    ``in_channels=1`` and ``num_classes=10`` this way. Only arguments that the model's factory
    names (``in_channels``, ``in_features``, ``image_size``, ``num_classes``, ``seq_len``,
    ``vocab_size``; see :func:`data_kwargs`) and that ``spec.kwargs`` does not set are added,
    and only where the data's value differs from the factory's default: what the spec gives
    explicitly is kept (overridable), a spec that already fits is returned unchanged (so runs
    that worked before record the same spec), and the returned spec records every value that
    differs, so the model is rebuilt without the data. :func:`landscape.training.train` uses
    its spec as given; ``landscape train`` adapts it first.

    Parameters
    ----------
    spec : ModelSpec
        The architecture as asked for.
    data : TensorData or StreamData
        The training data (streamed data: see :func:`data_kwargs`).

    Returns
    -------
    ModelSpec
        ``spec`` with the added keyword arguments.

    Examples
    --------
    >>> from landscape.data import load_data
    >>> adapt_to_data(ModelSpec("resnet20", {"width": 0.5}), load_data("digits")).kwargs
    {'width': 0.5, 'in_channels': 1}
    """
    try:
        params = inspect.signature(_factory(spec.name)).parameters
    except (TypeError, ValueError):  # no signature: nothing to adapt
        return spec
    named = {
        n: p.default for n, p in params.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    extra = {
        k: v for k, v in data_kwargs(data).items()
        if k in named and k not in spec.kwargs and named[k] != v
    }
    return ModelSpec(spec.name, {**spec.kwargs, **extra}) if extra else spec


def skip_switch(name: str) -> str:
    """The boolean argument that turns a model's skips off: ``"residual"`` or ``"shortcut"``.

    ``"residual"`` when the factory of ``name`` takes that argument (the transformers, whose
    residual stream is switched off), else ``"shortcut"`` (the convolutional networks, the
    MLP and, by convention, user models).
    """
    try:
        params = inspect.signature(_factory(name)).parameters
    except (TypeError, ValueError):
        return "shortcut"
    return "residual" if "residual" in params and "shortcut" not in params else "shortcut"


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """Parse a JSON object of model keyword arguments (the CLI's ``--model-kwargs``).

    Parameters
    ----------
    text : str or None
        E.g. ``'{"shortcut": false, "in_channels": 1}'``. ``None`` or a blank string gives
        ``{}``.

    Returns
    -------
    dict
        The keyword arguments.

    Raises
    ------
    LandscapeError
        If ``text`` is not valid JSON or not a JSON object.

    Examples
    --------
    >>> parse_model_kwargs('{"shortcut": false, "width": 2}')
    {'shortcut': False, 'width': 2}
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return {}
    example = "'{\"shortcut\": false}'"
    if not isinstance(text, str):
        raise LandscapeError(
            f"The 'model_kwargs' parameter must be a JSON object string such as {example}. "
            f"Got {text!r} instead."
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise LandscapeError(
            f"The 'model_kwargs' parameter must be a JSON object such as {example}. "
            f"Got {text!r} instead ({err})."
        ) from err
    if not isinstance(value, dict):
        raise LandscapeError(
            f"The 'model_kwargs' parameter must be a JSON object such as {example}. "
            f"Got {text!r} instead (a JSON {type(value).__name__})."
        )
    return value


@dataclass(frozen=True)
class ModelSpec:
    """A model's name and constructor arguments: enough to rebuild it.

    Parameters
    ----------
    name : str
        A name accepted by :func:`build`.
    kwargs : dict, default={}
        Keyword arguments for :func:`build`. They must be JSON-serialisable for
        :meth:`to_json` (tuples come back as lists). The dict is copied on construction.

    Examples
    --------
    >>> spec = ModelSpec("resnet20", {"shortcut": False, "in_channels": 1})
    >>> spec.to_json()
    '{"kwargs": {"in_channels": 1, "shortcut": false}, "name": "resnet20"}'
    >>> ModelSpec.from_json(spec.to_json()) == spec
    True
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise LandscapeError(
                f"The 'name' parameter of ModelSpec must be a non-empty str. "
                f"Got {self.name!r} instead."
            )
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise LandscapeError(
                "The 'kwargs' parameter of ModelSpec must be a dict with str keys. "
                f"Got {self.kwargs!r} instead."
            )
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"name": ..., "kwargs": ...}`` (a deep copy)."""
        return {"name": self.name, "kwargs": copy.deepcopy(self.kwargs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; ``"kwargs"`` may be omitted."""
        if not isinstance(d, Mapping) or "name" not in d or set(d) - {"name", "kwargs"}:
            raise LandscapeError(
                "A model spec must be a mapping with the key 'name' and optionally 'kwargs'. "
                f"Got {d!r} instead."
            )
        kwargs = d.get("kwargs")
        return cls(d["name"], {} if kwargs is None else copy.deepcopy(kwargs))

    def to_json(self) -> str:
        """Return the spec as JSON with sorted keys (stable for equal specs)."""
        try:
            return json.dumps(self.to_dict(), sort_keys=True)
        except (TypeError, ValueError) as err:
            raise LandscapeError(
                f"The model spec {self.name!r} cannot be written as JSON: {err}. "
                "Use only JSON values (str, int, float, bool, None, lists, dicts) in kwargs."
            ) from err

    @classmethod
    def from_json(cls, s: str) -> ModelSpec:
        """Inverse of :meth:`to_json`."""
        try:
            d = json.loads(s)
        except (TypeError, json.JSONDecodeError) as err:
            raise LandscapeError(
                f"A model spec must be a JSON object. Got {s!r} instead ({err})."
            ) from err
        return cls.from_dict(d)

    def build(self) -> nn.Module:
        """Build the model with :func:`build`."""
        return build(self.name, **self.kwargs)
