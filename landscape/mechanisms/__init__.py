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
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

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

#: Analyses of one network, by the names the CLI's ``--what`` takes.
ANALYSES = {
    "lesion": lesion_study,
    "paths": path_lengths,
    "gradflow": gradient_flow,
    "dilution": dilution,
    "shatter": shattering,
    "gates": gate_openness,
}

#: Analyses that need no residual blocks (``gates`` reads the highway layers).
BLOCKLESS = ("gates",)

#: Cheaper settings per analysis, for quick reports (``mechanism_numbers(..., settings=QUICK)``).
QUICK = {
    "lesion": {"n_samples": 3},
    "paths": {"n_paths": 4, "batch_size": 32},
    "gradflow": {"n_iter": 4, "batch_size": 32},
    "dilution": {"n_linear": 8, "batch_size": 32},
    "shatter": {"n_points": 64},
    "gates": {"n_samples": 256},
}

#: Analyses that differentiate a loss (the others use errors, block maps or input gradients of
#: the output).
USES_LOSS = ("paths", "gradflow")

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


def applicable_analyses(model: nn.Module, blocks: str | list[Block] | None = None) -> list[str]:
    """The analyses of :data:`ANALYSES` that apply to ``model``: those of residual blocks when
    it has blocks (built-in, or named by ``blocks``), ``gates`` when it has highway layers.

    Raises
    ------
    LandscapeError
        If none applies, or ``blocks`` names none (the message of :func:`find_blocks`).
    """
    from ..errors import LandscapeError

    out: list[str] = []
    try:
        find_blocks(model, blocks)
    except LandscapeError as exc:
        if blocks is not None:  # blocks named but not found: say so, whatever else applies
            raise
        err: LandscapeError | None = exc
    else:
        err = None
        out += [w for w in ANALYSES if w not in BLOCKLESS]
    try:
        find_gates(model)
    except LandscapeError:
        pass
    else:
        out.append("gates")
    if not out and err is not None:
        raise err
    return out


def run_analyses(model: nn.Module, data: Any,
                 what: list[str] | tuple[str, ...] | None = None,
                 *, blocks: str | list[Block] | None = None, seed: int = 0,
                 test_data: Any = None,
                 settings: Mapping[str, Mapping[str, Any]] | None = None,
                 loss: Any = None,
                 ) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the named analyses of one network.

    ``what`` defaults to :func:`applicable_analyses`. ``lesion`` uses ``test_data`` when given
    (the others use ``data``); ``settings`` maps an
    analysis name to keyword arguments of its function (e.g. :data:`QUICK`); ``loss`` (a
    :mod:`landscape.losses` loss) is the loss of the analyses that differentiate one
    (:data:`USES_LOSS`; default: cross-entropy for class targets, squared error for float
    targets).

    Returns
    -------
    results, seconds
        ``{name: result}`` and the wall-clock seconds each took.
    """
    from ..errors import LandscapeError

    if what is None:
        what = applicable_analyses(model, blocks)
    bad = [w for w in what if w not in ANALYSES]
    if bad or not what:
        raise LandscapeError(
            f"analyses must be among {','.join(ANALYSES)}; got {','.join(what) or 'nothing'}"
        )
    bl = find_blocks(model, blocks) if any(w not in BLOCKLESS for w in what) else None
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for w in what:
        t0 = time.perf_counter()
        d = test_data if (w == "lesion" and test_data is not None) else data
        kw = dict((settings or {}).get(w, {}))
        if loss is not None and w in USES_LOSS:
            kw["loss"] = loss
        if w in BLOCKLESS:
            results[w] = ANALYSES[w](model, d, **kw)
        else:
            results[w] = ANALYSES[w](model, d, blocks=bl, seed=seed, **kw)
        seconds[w] = time.perf_counter() - t0
    return results, seconds


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
