"""Helpers shared by the modules of :mod:`landscape.report` (JSON values, PCA surfaces)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..surface import Surface

__all__ = ["plain", "is_pca"]


def plain(v: Any) -> Any:
    """JSON-safe value: numpy scalars to Python, NaN/inf to None, containers recursively."""
    if isinstance(v, Mapping):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def is_pca(s: Surface) -> bool:
    """Whether a surface was computed along PCA directions (``landscape trajectory --surface``)."""
    return isinstance(s.recipe, Mapping) and (s.recipe.get("directions") or {}).get("kind") == "pca"
