""":func:`compare_files`: a comparison of result files named as on a command line, saved.

A network is one file (``res.h5``) or several joined with ``+`` (``res.h5+res_traj.h5``: a
surface file and a trajectory file); an *arm* of several seeds is its files joined with ``,``
(``res_s0.h5,res_s1.h5``). Given networks, :func:`compare_files` makes the one report of
:func:`~landscape.report.compare`; given arms, the seed-level comparison of
:func:`~landscape.replicates.compare_arms` beside the per-seed report. Either way it writes
them into one folder (by default ``compare_<A>_vs_<B>`` beside the first file) and returns
what it wrote, with the lines a log shows.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import LandscapeError
from ..replicates import ArmComparison, compare_arms
from .comparison import compare
from .render import Report

__all__ = ["SavedComparison", "compare_files"]

#: Settings of the checkpoint evaluations, which a comparison of arms does not make (yet).
_MODEL_SETTINGS = ("ascent_eps", "ascent_steps", "trust", "batch_size")


@dataclasses.dataclass(frozen=True)
class SavedComparison:
    """What :func:`compare_files` compared and wrote.

    Attributes
    ----------
    report : Report
        The report as saved (one column per network; with arms one per seed, ``ARM/sN``).
    out : Path
        The folder it was written to.
    arms : ArmComparison, optional
        The seed-level comparison, when the files were arms of seeds.
    """

    report: Report
    out: Path
    arms: ArmComparison | None = None

    @property
    def written(self) -> tuple[str, ...]:
        """The text files written into :attr:`out` (the figures are in ``report.figures``)."""
        reports = ("report.md", "report.html", "report.json")
        return reports if self.arms is None else ("arms.md", "arms.json", *reports)

    def lines(self) -> list[str]:
        """The report for a log: the table, its notes and what was written."""
        table = self.report if self.arms is None else self.arms
        out = [table.markdown_table(), *(f"note: {n}" for n in table.notes),
               *(f"wrote {self.out / name}" for name in self.written)]
        if self.arms is None and self.report.figures:
            out.append(f"wrote {len(self.report.figures)} figures in {self.out}: "
                       f"{', '.join(self.report.figures)}")
        return out


def _entries(text: str | None, parameter: str, n: int, *, allow_empty: bool
             ) -> list[str] | None:
    """The ``n`` comma-separated entries of ``text`` (``None`` when not given)."""
    if text is None:
        return None
    items = [s.strip() for s in text.split(",")]
    if len(items) != n:
        raise LandscapeError(
            f"`{parameter}` must give {n} comma-separated entries, one per file; got "
            f"{len(items)} in {text!r}"
        )
    if not allow_empty and any(not s for s in items):
        raise LandscapeError(f"`{parameter}` has an empty entry in {text!r}")
    return items


def _network(f: Any) -> Any:
    """One network as given: ``a+b`` (a str) becomes its files; anything else is kept."""
    return f.split("+") if isinstance(f, str) and "+" in f else f


def _first_file(f: Any) -> str:
    """The first file of a network or an arm as given (the default folder goes beside it)."""
    if isinstance(f, str):
        return f.split(",")[0].split("+")[0]
    if isinstance(f, os.PathLike):
        return os.fspath(f)
    return _first_file(next(iter(f)))


def _default_out(first: str | os.PathLike, names: Sequence[str]) -> Path:
    """``compare_<A>_vs_<B>`` beside ``first``, the names made safe for a file name."""
    slug = "_vs_".join(re.sub(r"[^\w.-]+", "_", n) for n in names)[:120]
    return Path(first).parent / f"compare_{slug}"


def _arms(files: Sequence[Any], names: Any, models: Any, device: Any, level: float,
          settings: dict[str, Any]) -> tuple[ArmComparison, Report, list[str]]:
    """:func:`compare_arms` of the comma-joined arms ``files``."""
    arms = [[_network(f) for f in (a.split(",") if isinstance(a, str) else a)] for a in files]
    if any(not f for a in arms for f in a):
        raise LandscapeError("an arm has an empty entry (two commas, or a trailing comma)")
    if names is None:
        names = [Path(_first_file(a)).stem for a in arms]
    elif isinstance(names, str):
        names = _entries(names, "names", len(arms), allow_empty=False)
    names = list(names)
    if len(names) != len(arms):
        raise LandscapeError(f"The 'names' parameter must give one name per arm ({len(arms)}). "
                             f"Got {len(names)} instead.")
    if len(set(names)) != len(names):
        raise LandscapeError(f"`names` must give distinct arm names; got {names}")
    if models is not None:
        raise LandscapeError("`models` is not supported with arms (comma-joined seeds) yet; "
                             "compare the checkpoints of one seed at a time")
    if device is not None and str(device) != "cpu":
        raise LandscapeError("`device` sets where the `models` are evaluated; drop it")
    kept = {k: v for k, v in settings.items() if k not in _MODEL_SETTINGS}
    comparison, report = compare_arms(dict(zip(names, arms, strict=True)), level=level, **kept)
    return comparison, report, names


def compare_files(
    files: Sequence[Any],
    *,
    names: str | Sequence[str] | None = None,
    models: str | Sequence[Any] | Mapping[str, Any] | None = None,
    device: Any = None,
    level: float = 0.95,
    out: str | os.PathLike | None = None,
    dpi: int = 120,
    **settings: Any,
) -> SavedComparison:
    """Compare result files named as on a command line, and save the report into a folder.

    Parameters
    ----------
    files : sequence
        One entry per network: a path, or several joined with ``+`` in one str (a surface
        file and a trajectory file of one network), or a list of paths (as
        :func:`~landscape.report.compare` takes them). With any str entry holding a ``,``
        every entry is an *arm*: its seeds' files joined with ``,`` (each may again join
        files with ``+``), or a list of them; compared at the seed level by
        :func:`~landscape.replicates.compare_arms`.
    names : str or sequence of str, optional
        Column names (with arms: the arm names), as a sequence or one comma-separated str
        (default: the file stems).
    models : str, sequence or mapping, optional
        The checkpoints of the networks, as :func:`~landscape.report.compare` takes them, or
        one comma-separated str with one entry per network (an empty entry skips one). Not
        with arms.
    device : str or torch.device, optional
        Where the ``models`` are evaluated; ``None`` or ``"cpu"`` without ``models``.
    level : float, default 0.95
        Coverage of the seed-level intervals, with arms.
    out : str or os.PathLike, optional
        The folder to write (default: ``compare_<A>_vs_<B>`` beside the first file, named
        after the networks or arms).
    dpi : int, default 120
        Resolution of the pictures.
    **settings
        Passed to :func:`~landscape.report.compare` (``eps``, ``ascent_eps``,
        ``ascent_steps``, ``basin_threshold``, ``ratio_threshold``, ``array``, ``trust``,
        ``batch_size``, ``progress``, ``command``); with arms, those that do not concern the
        ``models``.

    Returns
    -------
    SavedComparison
        The saved report (and the seed-level comparison), the folder and
        :meth:`~SavedComparison.lines` for a log.

    Raises
    ------
    LandscapeError
        If ``names`` or ``models`` do not give one entry per network, an arm has an empty
        entry, the arms' names repeat, ``models`` come with arms, ``device`` without
        ``models``, or :func:`~landscape.report.compare` refuses the files.

    Examples
    --------
    >>> done = compare_files(["res.h5+res_traj.h5", "plain.h5+plain_traj.h5"],
    ...                      names="residual,plain")                        # doctest: +SKIP
    >>> done.out, done.report.table["residual"]["eps_sharpness"]          # doctest: +SKIP
    """
    if isinstance(files, str | os.PathLike):
        files = [files]
    files = list(files)
    if not files:
        raise LandscapeError("compare needs at least one result file")
    if any(isinstance(f, str) and "," in f for f in files):
        comparison, report, labels = _arms(files, names, models, device, level, settings)
        where = Path(out) if out is not None else _default_out(_first_file(files[0]), labels)
        report = report.save(where, dpi=dpi)
        comparison.save(where)
        return SavedComparison(report, where, comparison)
    n = len(files)
    if isinstance(names, str):
        names = _entries(names, "names", n, allow_empty=False)
    if isinstance(models, str):
        models = [c or None for c in _entries(models, "models", n, allow_empty=True) or ()]
    if models is None and device is not None and str(device) != "cpu":
        raise LandscapeError("`device` sets where the `models` are evaluated; add `models` "
                             "or drop `device`")
    report = compare([_network(f) for f in files], names=names, models=models,
                     device=device if models is not None else None, **settings)
    where = Path(out) if out is not None else _default_out(_first_file(files[0]), report.names)
    return SavedComparison(report.save(where, dpi=dpi), where)
