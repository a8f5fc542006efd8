"""Why skip connections help, measured: mechanism analyses of residual and plain networks.

- :mod:`~landscape.mechanisms.blocks` -- finding residual blocks, splitting them into shortcut
  and branch, rerouting them (:func:`find_blocks`, :class:`Block`).
- :func:`lesion_study` -- error after deleting blocks (Veit et al., 2016).
- :func:`path_lengths` -- gradient magnitude per path length (Veit et al., 2016, Sec. 4.2).
- :func:`gradient_flow` -- gradient norms and block Jacobian spectral norms by depth.
- :func:`dilution` -- k-dilution per block and the gradient scale coefficient (Philipp et
  al., 2018).
- :func:`shattering` -- autocorrelation of input gradients along a line (Balduzzi et al., 2017).
- :func:`gate_openness` -- mean transform-gate openness per highway layer (Srivastava et al.,
  2015); it needs highway layers, not residual blocks.
- :func:`sharpening` / :func:`sharpening_of_run` -- lambda_max against 2/eta along training
  (Cohen et al., 2021).
- :func:`probe_checkpoint` -- the analyses of a checkpoint file into a landscape file (what
  ``landscape probe`` runs; :class:`ProbeResults`).
- :func:`mechanism_numbers` -- the headline numbers of all of the above for one network.
- :func:`load_results` / :func:`save_figures` -- every result of a file; the comparison
  figures of several networks (one axis per analysis).

Each analysis is a function of a model and data returning a small frozen dataclass that saves
to and loads from one HDF5 group (``save(path)``, ``load(path)``), has ``numbers()`` and
``plot(ax=None)``. See ``docs/mechanisms.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from .analyses import (
    ANALYSES,
    BLOCKLESS,
    QUICK,
    USES_LOSS,
    applicable_analyses,
    run_analyses,
)
from .blocks import Block, check_blocks, find_blocks, rerouted
from .dilution import DilutionResult, dilution, gradient_scale, k_dilution
from .gates import GateResult, find_gates, gate_openness
from .gradflow import GradFlowResult, gradient_flow, jacobian_spectral_norm
from .lesion import LesionResult, lesion_study
from .paths import PathLengthResult, path_gradient, path_lengths
from .probe import ProbeResults, probe_checkpoint
from .sharpening import SharpeningResult, sharpening, sharpening_of_run
from .shatter import ShatterResult, autocorrelation, shattering

__all__ = [
    "ANALYSES",
    "BLOCKLESS",
    "QUICK",
    "RESULTS",
    "Block",
    "DilutionResult",
    "GateResult",
    "GradFlowResult",
    "LesionResult",
    "PathLengthResult",
    "ProbeResults",
    "SharpeningResult",
    "ShatterResult",
    "USES_LOSS",
    "applicable_analyses",
    "autocorrelation",
    "check_blocks",
    "dilution",
    "find_blocks",
    "find_gates",
    "gate_openness",
    "gradient_flow",
    "gradient_scale",
    "jacobian_spectral_norm",
    "k_dilution",
    "lesion_study",
    "load_results",
    "mechanism_numbers",
    "path_gradient",
    "path_lengths",
    "probe_checkpoint",
    "rerouted",
    "run_analyses",
    "save_figures",
    "sharpening",
    "sharpening_of_run",
    "shattering",
]

#: Result class of each analysis.
RESULTS = {
    "lesion": LesionResult,
    "paths": PathLengthResult,
    "gradflow": GradFlowResult,
    "dilution": DilutionResult,
    "shatter": ShatterResult,
    "sharpening": SharpeningResult,
    "gates": GateResult,
}


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Every mechanism result stored in a landscape file, by analysis name (``"lesion"``,
    ``"paths"``, ..., ``"sharpening"``, and ``"gradflow_init"`` when present).

    Raises
    ------
    LandscapeError
        If the file is not a landscape file or holds none of these groups.
    """
    from ..errors import LandscapeError
    from ..results import open as open_results

    out = open_results(path).mechanisms()
    if not out:
        raise LandscapeError(
            f"'{path}' holds no mechanism results; write them with run_analyses() "
            "or sharpening_of_run()"
        )
    return out


#: Plot function of each analysis (in :mod:`landscape.mechanisms.plot`).
_FIGURES = {
    "lesion": "plot_lesion",
    "paths": "plot_path_lengths",
    "gradflow": "plot_gradflow",
    "dilution": "plot_dilution",
    "shatter": "plot_shatter",
    "sharpening": "plot_sharpening",
    "gates": "plot_gates",
}


def save_figures(results: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike,
                 fmt: str = "png", prefix: str = "mechanisms") -> list[Path]:
    """One figure per analysis with every network on the same axis.

    Parameters
    ----------
    results : dict
        ``{network label: {analysis name: result}}``, e.g. ``{"residual":
        load_results("res.h5"), "plain": load_results("plain.h5")}``; an analysis missing for
        some networks is drawn for the others.
    out_dir : path
        Directory (created if missing); files are ``<prefix>_<analysis>.<fmt>``.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib.pyplot as plt

    from . import plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in _FIGURES.items():
        per_net = {label: r[name] for label, r in results.items() if name in r}
        if not per_net:
            continue
        ax = getattr(plot, fn)(per_net)
        path = out / f"{prefix}_{name}.{fmt}"
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=120)
        plt.close(ax.figure)
        written.append(path)
    return written


def mechanism_numbers(model: nn.Module, data: Any, *, test_data: Any = None,
                      blocks: str | list[Block] | None = None,
                      what: list[str] | tuple[str, ...] | None = None,
                      seed: int = 0,
                      settings: Mapping[str, Mapping[str, Any]] | None = None,
                      ) -> dict[str, float]:
    """Headline scalar numbers of every mechanism analysis for one network.

    Keys (see each result's ``numbers()``): ``lesion_*`` (base error, single-deletion error
    mean/max, error at ``k = n/2``), ``path_length_*`` (length with the most gradient, 90 %
    range), ``gradflow_*`` (input-gradient ratio first/last block, mean Jacobian norms),
    ``dilution_k_median``, ``gsc_input``, ``shatter_*`` (lag-1 gradient autocorrelation,
    decay per block), ``gate_*`` (mean gate openness of highway networks), and
    ``seconds_<analysis>``.

    Parameters
    ----------
    model : nn.Module
        The network.
    data : TensorData or (x, y)
        Samples for the gradient analyses (e.g. the training split).
    test_data : TensorData or (x, y), optional
        Samples for the lesion errors (default: ``data``).
    blocks : str, list of Block or None
        See :func:`find_blocks`.
    what : list of str, optional
        Analyses to run (keys of :data:`ANALYSES`; default: :func:`applicable_analyses`).
    seed : int, default=0
        Seed of every random choice.
    settings : dict, optional
        Keyword arguments per analysis, e.g. :data:`QUICK` (default: each function's own).
    """
    results, seconds = run_analyses(model, data, what, blocks=blocks, seed=seed,
                                    test_data=test_data, settings=settings)
    out: dict[str, float] = {}
    for name, r in results.items():
        out.update(r.numbers())
        out[f"seconds_{name}"] = seconds[name]
    return out
