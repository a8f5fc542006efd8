"""Which data set to load and how: :class:`DataSpec` (a name, a root, a subset, options)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from landscape.errors import LandscapeError, check_int

__all__ = ["DataSpec"]


@dataclass(frozen=True)
class DataSpec:
    """Which data set to load and how.

    Parameters
    ----------
    name : str, default="digits"
        A built-in name (see :func:`available_datasets`) or ``"package.module:function"``.
    root : str or None, default=None
        Local directory holding the files (``cifar10``, ``mnist``).
    subset : int or None, default=None
        Keep this many samples of each split (see :meth:`TensorData.subset`); of a streamed
        iterable Dataset, which cannot be indexed, its first ``subset`` samples. A stream
        without ``__len__`` (which may never end) is refused without it.
    kwargs : dict, default={}
        Loader options, e.g. ``{"normalize": False}`` for ``cifar10``, or keyword arguments of a
        custom loader.
    """

    name: str = "digits"
    root: str | None = None
    subset: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise LandscapeError(
                f"The 'dataset' parameter must be a non-empty str. Got {self.name!r} instead."
            )
        if self.root is not None:
            if not isinstance(self.root, str | os.PathLike):
                raise LandscapeError(
                    f"The 'root' parameter must be a directory path or None. "
                    f"Got {self.root!r} instead."
                )
            object.__setattr__(self, "root", os.fspath(self.root))
        if self.subset is not None:
            object.__setattr__(self, "subset", check_int("subset", self.subset, low=1))
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise LandscapeError(
                f"The 'kwargs' parameter must be a dict with str keys. Got {self.kwargs!r} instead."
            )
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a plain (JSON-friendly when ``kwargs`` is) dict."""
        return {
            "name": self.name,
            "root": self.root,
            "subset": self.subset,
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataSpec:
        """Build a spec from :meth:`to_dict`'s output; missing keys take their defaults."""
        if not isinstance(d, Mapping):
            raise LandscapeError(f"a data spec must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise LandscapeError(
                f"unknown data spec key(s) {unknown}; the keys are {sorted(known)}"
            )
        values = dict(d)
        if values.get("kwargs") is None:
            values.pop("kwargs", None)
        return cls(**values)
