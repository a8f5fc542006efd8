"""The mechanism analyses of one network by name: which apply (:func:`applicable_analyses`)
and running several (:func:`run_analyses`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from torch import nn

from .blocks import Block, find_blocks
from .dilution import dilution
from .gates import find_gates, gate_openness
from .gradflow import gradient_flow
from .lesion import lesion_study
from .paths import path_lengths
from .shatter import shattering

__all__ = ["ANALYSES", "BLOCKLESS", "QUICK", "USES_LOSS", "applicable_analyses", "run_analyses"]

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
