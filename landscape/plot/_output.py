"""Output helpers shared by :mod:`~landscape.plot.export` and :mod:`~landscape.plot.files`:
the Figure of an Axes, output-directory checks and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_write as _atomic
from ..errors import LandscapeError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def figure_of(fig_or_ax: Any) -> Figure:
    from matplotlib.figure import Figure

    if isinstance(fig_or_ax, Figure):
        return fig_or_ax
    fig = getattr(fig_or_ax, "figure", None)
    if fig is None:
        raise LandscapeError(
            f"save_figure needs a matplotlib Figure or Axes; got {type(fig_or_ax).__name__}"
        )
    root = getattr(fig, "figure", fig)  # a SubFigure's .figure is the root Figure
    return root if isinstance(root, Figure) else fig


def check_out_dir(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise LandscapeError(f"cannot write '{path}': it is a directory")
    if not parent.is_dir():
        raise LandscapeError(f"cannot write '{path}': directory '{parent}' does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LandscapeError(f"cannot write '{path}': directory '{parent}' is not writable")
    return parent


def atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(fh)`` (a binary handle) atomically; see :mod:`landscape._atomic`."""
    check_out_dir(path)
    try:
        _atomic(path, write)
    except OSError as exc:
        raise LandscapeError(f"cannot write '{path}': {exc.strerror or exc}") from exc
