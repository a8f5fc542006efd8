"""How long computations write: the run options in one object, and the resume sequence once.

Every grid computation (a surface, a surface set, a ratio map, a connectivity result) writes
its result to a file as it goes and resumes a killed run from that file. Before computing it
must: check the output may be written (an existing file is replaced only with ``overwrite``),
and, when the file already holds its result, load it and check it was computed with the same
recipe -- then adopt its finished points. :func:`stored_result` is that sequence;
:class:`RunOptions` groups the parameters that say how a run writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from . import storage
from ._grid import resume_or_refuse
from .errors import LandscapeError, check_float, check_int

__all__ = ["RUN_FIELDS", "RunOptions", "run_options", "stored_result"]

R = TypeVar("R")


@dataclass(frozen=True)
class RunOptions:
    """How a long computation writes its result and shows its progress.

    Parameters
    ----------
    out : str or os.PathLike, optional
        The HDF5 file the result is written to as it goes (``None``: kept in memory only).
        An unfinished result in it is resumed when the recipe is the same.
    overwrite : bool, default False
        Replace a result (or a file) that is already there instead of resuming or refusing.
    progress : bool, default True
        A progress bar with an ETA on stderr.
    flush_seconds : float, default 10
        Write at most this often (and always at the end).
    max_points : int, optional
        Stop after this many new points; the file stays resumable.
    """

    out: str | os.PathLike | None = None
    overwrite: bool = False
    progress: bool = True
    flush_seconds: float = 10.0
    max_points: int | None = None

    def __post_init__(self) -> None:
        check_float("flush_seconds", self.flush_seconds, 0.0)
        if self.max_points is not None:
            object.__setattr__(self, "max_points", check_int("max_points", self.max_points, 0))
        object.__setattr__(self, "overwrite", bool(self.overwrite))
        object.__setattr__(self, "progress", bool(self.progress))

    @property
    def path(self) -> Path | None:
        """``out`` as a :class:`~pathlib.Path` (``None`` when nothing is written)."""
        return None if self.out is None else Path(self.out)


#: The names of :class:`RunOptions`' fields.
RUN_FIELDS = tuple(f.name for f in fields(RunOptions))


def run_options(run: RunOptions | None = None, **given: Any) -> RunOptions:
    """A :class:`RunOptions` from ``run`` or from its fields given one by one (not both)."""
    unknown = sorted(set(given) - set(RUN_FIELDS))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
    if run is None:
        return RunOptions(**given)
    if not isinstance(run, RunOptions):
        raise LandscapeError(f"The 'run' parameter must be a RunOptions. Got "
                             f"{type(run).__name__}.")
    if given:
        raise LandscapeError(f"give the run options in 'run' or one by one, not both (got run "
                             f"and {', '.join(sorted(given))})")
    return run


def stored_result(out: str | os.PathLike | None, *, overwrite: bool, recipe: Mapping[str, Any],
                  group: str, load: Callable[[Path], R], subject: str,
                  reconcile: Callable[[R], None] | None = None) -> R | None:
    """The result already in ``out`` to resume, after the checks every resume makes.

    Parameters
    ----------
    out : path or None
        The output file (``None``: nothing to resume, nothing checked).
    overwrite : bool
        Replace what is there: nothing is resumed.
    recipe : mapping
        The new computation's recipe; the stored one must equal it.
    group : str
        The top-level group that holds this kind of result.
    load : callable
        Loads the stored result (anything with a ``recipe``).
    subject : str
        How the refusal names the result, e.g. ``"holds a ratio map"``.
    reconcile : callable, optional
        Called with the stored result before the recipes are compared (e.g. to adopt a
        recipe entry chosen automatically on the first run).

    Returns
    -------
    The stored result, or ``None`` when there is none to resume.

    Raises
    ------
    LandscapeError
        If ``out`` may not be written, or holds this result computed with another recipe.
    """
    if out is None:
        return None
    p = Path(out)
    storage.check_writable(p, overwrite=overwrite)
    # check_writable let only a landscape file through (Li et al.'s and others are refused)
    if overwrite or not p.exists() or group not in storage.list_groups(p):
        return None
    old = load(p)
    if reconcile is not None:
        reconcile(old)
    resume_or_refuse(p, old.recipe, recipe, subject=subject)  # type: ignore[attr-defined]
    return old
