""":func:`compare`: read one result file per network, check the recipes, gather the numbers."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Int, LandscapeError, Real, validate_params
from ..metrics import eps_sharpness_from_surface
from ..results import ResultFile
from ._utils import plain
from .numbers import (
    hessian_numbers,
    load_model_source,
    model_numbers,
    needs_origin_metrics,
    network_numbers,
    origin_errors,
    section_numbers,
    spread_numbers,
)
from .provenance import environment, network_provenance
from .recipes import check_comparable
from .render import Report
from .results import NetworkResults, load_results

__all__ = ["compare"]


#: The declared constraints of :func:`compare`'s numeric parameters.
_CONSTRAINTS = {
    "eps": Real(0.0, closed="neither"), "ascent_eps": Real(0.0, closed="neither"),
    "ascent_steps": Int(1), "adaptive_rho": Real(0.0, closed="neither"),
    "basin_threshold": Real(0.0, closed="neither"),
    "ratio_threshold": Real(0.0, closed="neither"), "batch_size": Int(1),
}


def _one_network(f: Any) -> Any:
    """A network's results as given: a path (as a str), a ResultFile or NetworkResults as they
    are, or a list of paths/ResultFiles (merged)."""
    if isinstance(f, ResultFile | NetworkResults):
        return f
    if isinstance(f, str | os.PathLike):
        return os.fspath(f)
    return [g if isinstance(g, ResultFile) else os.fspath(g) for g in f]


def _label_of(f: Any) -> str:
    """The path whose stem names a network by default."""
    if isinstance(f, list):
        f = f[0]
    if isinstance(f, ResultFile | NetworkResults):
        return f.name if isinstance(f, NetworkResults) else f.path
    return f


def _names(files: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if names is None:
        out: list[str] = []
        for f in files:
            base = Path(f).stem or "network"
            cand, k = base, 2
            while cand in out:
                cand, k = f"{base}_{k}", k + 1
            out.append(cand)
        return out
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = [str(n).strip() for n in names]
    if len(names) != len(files):
        raise LandscapeError(
            f"The 'names' parameter must give one name per file ({len(files)}). Got "
            f"{len(names)} instead."
        )
    if any(not n for n in names):
        raise LandscapeError("The 'names' parameter must not contain empty names.")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LandscapeError(f"The 'names' parameter must give distinct names; {dup[0]!r} "
                             "is repeated.")
    return names


def _model_sources(models: Any, names: list[str]) -> dict[str, Any]:
    if models is None:
        return {}
    if isinstance(models, Mapping):
        unknown = [k for k in models if k not in names]
        if unknown:
            raise LandscapeError(
                f"The 'models' parameter names {unknown[0]!r}, which is not a network of the "
                f"comparison {names}."
            )
        return {k: v for k, v in models.items() if v is not None and v != ""}
    models = list(models)
    if len(models) != len(names):
        raise LandscapeError(
            f"The 'models' parameter must give one checkpoint per file ({len(names)}). Got "
            f"{len(models)} instead."
        )
    return {n: m for n, m in zip(names, models, strict=True) if m is not None and m != ""}


def compare(
    files: Sequence[str | os.PathLike],
    *,
    names: Sequence[str] | None = None,
    eps: float = 0.1,
    ascent_eps: float = 1e-3,
    ascent_steps: int = 10,
    adaptive_rho: float = 0.01,
    basin_threshold: float = 0.1,
    ratio_threshold: float = 0.1,
    array: str = "train_loss",
    models: Mapping[str, Any] | Sequence[Any] | None = None,
    trust: bool = False,
    batch_size: int = 1024,
    device: Any = None,
    progress: bool = True,
    command: str | None = None,
) -> Report:
    """Compare the landscapes of several networks computed with the same recipe.

    Parameters
    ----------
    files : sequence of path, ResultFile or NetworkResults
        One landscape HDF5 file per network (any of ``/surface``, ``/trajectory``,
        ``/curvature``, ``/ratio_map``), or a list of files per network (merged by
        :func:`~landscape.report.load_results`); or the same opened with
        :func:`landscape.open`, or read with :func:`~landscape.report.load_results` (so a
        notebook need not save first).
    names : sequence of str, optional
        Column names (default: the file stems).
    eps : float, default=0.1
        Radius of the surface-restricted ε-sharpness, in direction units (filter-normalized:
        0.1 is a 10 % perturbation of every filter). It must reach at least one grid step.
    ascent_eps : float, default=1e-3
        Keskar et al.'s relative ε of the full-space ascent estimate (only with ``models``).
    ascent_steps : int, default=10
        Projected sign-gradient steps of that ascent (and of the adaptive worst case).
    adaptive_rho : float, default=0.01
        Radius of the adaptive (scale-invariant) sharpness, relative to every weight
        (:mod:`landscape.sharpness`: the l-inf worst case lets each weight move by
        ``adaptive_rho |w|``; the average case adds Gaussian noise of that relative size).
    basin_threshold : float, default=0.1
        Loss increase that ends a basin (:func:`landscape.metrics.basin_width`).
    ratio_threshold : float, default=0.1
        ``|λmin/λmax|`` below which a ratio-map point counts as convex-looking.
    array : str, default="train_loss"
        Surface array the surface metrics use.
    models : mapping or sequence, optional
        Checkpoints (paths, :class:`~landscape.checkpoints.Checkpoint` or modules) by network
        name, or one per file (``None`` to skip one). They give ``eps_sharpness_ascent`` and,
        when the surface lacks them, the loss and accuracy at θ*; data and loss are those
        recorded in the surface's recipe. A checkpoint whose SHA-256 is not the one the
        surface was computed at is refused. Their metadata gives the training recipe shown in
        the report's provenance.
    trust : bool, default=False
        Allow checkpoints that are full pickles (see :func:`~landscape.load_checkpoint`).
    batch_size : int, default=1024
        Batch size of the model evaluations.
    device : str or torch.device, optional
        Device of the model evaluations.
    progress : bool, default=True
        Show a progress bar with ETA (on stderr) over the model-based steps (loading, ascent
        sharpness, evaluation), the long part of a comparison.
    command : str, optional
        The command line recorded in the provenance (default: this process's ``sys.argv``).

    Returns
    -------
    Report
        Call :meth:`Report.save` to write ``report.md``, ``report.html``, ``report.json`` and
        the figures.

    Raises
    ------
    LandscapeError
        If the files were computed with different recipes (naming the first differing key and
        both values), ``eps`` holds no grid point besides the origin, a file or checkpoint
        cannot be read, or a parameter is invalid.

    Examples
    --------
    >>> rep = compare(["res20.h5", "plain20.h5"], names=["residual", "plain"])  # doctest: +SKIP
    >>> sharp = {n: rep.table[n]["eps_sharpness"] for n in rep.names}        # doctest: +SKIP
    >>> rep = rep.save("report/")   # report.md, report.html, report.json, PNGs  # doctest: +SKIP
    """
    if isinstance(files, str | os.PathLike | ResultFile | NetworkResults):
        files = [files]
    files = [_one_network(f) for f in files]
    if not files:
        raise LandscapeError("compare needs at least one result file")
    v = validate_params({"eps": eps, "ascent_eps": ascent_eps, "ascent_steps": ascent_steps,
                         "adaptive_rho": adaptive_rho, "basin_threshold": basin_threshold,
                         "ratio_threshold": ratio_threshold, "batch_size": batch_size},
                        _CONSTRAINTS)
    labels = _names([_label_of(f) for f in files], names)
    sources = _model_sources(models, labels)
    results = [load_results(f, n) for f, n in zip(files, labels, strict=True)]
    recipe, notes = _check_results(results, v["eps"], array)
    parameters = {k: v[k] for k in ("eps", "ascent_eps", "ascent_steps", "adaptive_rho",
                                    "basin_threshold", "ratio_threshold")}
    parameters["array"] = array
    need = {r.name: needs_origin_metrics(r.surface) for r in results if r.name in sources}
    # load and check every checkpoint and its data before any progress output, so that a bad
    # one is refused with one line
    data_cache: dict[str, Any] = {}  # one recipe, hence one data set for every network
    loaded = {r.name: load_model_source(r, sources[r.name], trust=trust,
                                        need_origin=need[r.name], data_cache=data_cache)
              for r in results if r.name in sources}
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(2 + int(n) for n in need.values()), desc="compare: model steps",
               unit="step", disable=not progress or not need, dynamic_ncols=True)

    def tick(label: str) -> None:
        bar.set_postfix_str(label, refresh=False)
        bar.update(1)

    parts = _Parts()
    try:
        for r in results:
            from_model: dict[str, Any] = {}
            ckpt_info: dict[str, Any] = {}
            if r.name in sources:
                bar.set_postfix_str(f"{r.name}: loading, then ascent sharpness")
                from_model, ckpt_info = model_numbers(
                    r, loaded[r.name], ascent_eps=v["ascent_eps"], steps=v["ascent_steps"],
                    batch_size=v["batch_size"], trust=trust, device=device,
                    need_origin=need[r.name], adaptive_rho=v["adaptive_rho"], tick=tick)
            parts.add(r, from_model, ckpt_info, parameters)
    finally:
        bar.close()
    return Report(names=tuple(labels), table=parts.table, recipe=recipe,
                  files={r.name: r.path for r in results}, parameters=parameters,
                  censored=parts.censored, notes=tuple(dict.fromkeys(notes + parts.notes)),
                  results=tuple(results),
                  provenance={"environment": environment(command), "networks": parts.networks},
                  spread=parts.spread, sections=parts.sections, errors=parts.errors)


def _check_results(results: Sequence[NetworkResults], eps: float,
                   array: str) -> tuple[dict[str, Any], list[str]]:
    """The shared recipe of comparable results and the notes on them; refuse what cannot be
    compared (another recipe, an array a surface lacks, ``eps`` below the grid step)."""
    for r in results:
        if r.surface is not None and array not in r.surface.arrays:
            raise LandscapeError(
                f"The 'array' parameter must name an array of every surface; '{r.path}' has "
                f"{sorted(r.surface.arrays)}. Got {array!r} instead."
            )
    recipe, notes = check_comparable(results)
    for r in results:  # a radius below the grid step is a parameter error: say so up front
        if r.surface is not None:
            grid_only = dataclasses.replace(r.surface, done=np.ones(r.surface.shape, bool))
            eps_sharpness_from_surface(grid_only, eps, array, origin_loss=0.0)
            break
    with_surface = [r.name for r in results if r.surface is not None]
    if with_surface and len(with_surface) < len(results):
        missing = [r.name for r in results if r.surface is None]
        notes.append(f"no surface for {', '.join(missing)}: their surface metrics are empty")
    return recipe, notes


@dataclasses.dataclass
class _Parts:
    """The report's numbers, network by network."""

    table: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    censored: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    networks: dict[str, Any] = dataclasses.field(default_factory=dict)
    spread: dict[str, dict[str, list[float | None]]] = dataclasses.field(default_factory=dict)
    errors: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    sections: dict[str, dict[str, dict[str, float | None]]] = dataclasses.field(
        default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, r: NetworkResults, from_model: dict[str, Any], ckpt_info: dict[str, Any],
            p: Mapping[str, Any]) -> None:
        kw = {"eps": p["eps"], "basin_threshold": p["basin_threshold"], "array": p["array"]}
        row, cens, more = network_numbers(r, ratio_threshold=p["ratio_threshold"],
                                          from_model=from_model, **kw)
        self.table[r.name] = plain(row)
        self.errors[r.name] = origin_errors(r, from_model)
        self.censored[r.name] = tuple(cens)
        self.notes.extend(more)
        values, more = spread_numbers(r, **kw)
        if values:
            self.spread[r.name] = values
            self.notes.extend(more)
        for title, numbers in section_numbers(r).items():
            self.sections.setdefault(title, {})[r.name] = numbers
        numbers, more = hessian_numbers(r, **kw)
        if numbers:
            self.sections.setdefault("hessian", {})[r.name] = numbers
        self.notes.extend(more)
        prov, more = network_provenance(r, ckpt_info)
        self.networks[r.name] = plain(prov)
        self.notes.extend(more)
