"""Recipes and provenance of results computed at a checkpoint, built once for every caller.

A result file stores two dictionaries (see ``docs/architecture.md``):

- the **recipe**: everything that must match for a run to resume into the file, or for two
  files to be compared (checkpoint SHA-256, architecture, data, split, plus what each analysis
  adds: grid, directions, loss, batch size, dtype, ...);
- the **provenance**: informational (the command line, the checkpoint's path and metadata,
  tool versions), never compared.

The CLI, :mod:`landscape.demo` and notebooks call :func:`checkpoint_recipe` and
:func:`checkpoint_provenance` so that the same analysis of the same checkpoint records the same
recipe whoever started it. :func:`check_same_checkpoint` is the rule that a result computed
*over another result* (a ratio map over a surface) uses the checkpoint that result was computed
at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .checkpoints import Checkpoint
from .errors import LandscapeError

__all__ = ["check_same_checkpoint", "checkpoint_provenance", "checkpoint_recipe"]


def checkpoint_recipe(ckpt: Checkpoint, data: Any, *, split: str | None = None,
                      model: bool = True) -> dict[str, Any]:
    """The recipe entries that identify a checkpoint and its data.

    Parameters
    ----------
    ckpt : Checkpoint
        The loaded checkpoint (its SHA-256 and architecture spec are recorded).
    data : DataSpec or dict
        The data the results are computed on (``DataSpec.to_dict()`` is recorded).
    split : str, optional
        The split, for results on one split (curvature, ratio maps).
    model : bool, default=True
        Record the architecture spec (``None`` for a model passed as a module).

    Returns
    -------
    dict
        ``{"checkpoint_sha256", ["model"], "data", ["split"]}``.
    """
    recipe: dict[str, Any] = {"checkpoint_sha256": ckpt.sha256}
    if model:
        recipe["model"] = ckpt.spec.to_dict() if ckpt.spec is not None else None
    recipe["data"] = data.to_dict() if hasattr(data, "to_dict") else dict(data)
    if split is not None:
        recipe["split"] = split
    return recipe


def checkpoint_provenance(ckpt: Checkpoint | None, path: Any, command: str, *,
                          meta: bool = True) -> dict[str, Any]:
    """The informational entries of a result computed at a checkpoint.

    ``{"command", "checkpoint", ["checkpoint_meta"]}``; the metadata keeps the checkpoint's
    scalar entries (epoch, step, learning rate, metrics).
    """
    prov: dict[str, Any] = {"command": command, "checkpoint": str(path)}
    if meta and ckpt is not None:
        prov["checkpoint_meta"] = {k: v for k, v in ckpt.meta.items()
                                   if isinstance(v, int | float | str)}
    return prov


def check_same_checkpoint(recorded: Mapping[str, Any], sha256: str, *, what: str,
                          checkpoint: Any, origin: Any = None) -> None:
    """Refuse to compute over ``what`` (a stored result) at another checkpoint.

    Parameters
    ----------
    recorded : dict
        The stored result's recipe (its ``checkpoint_sha256`` is compared).
    sha256 : str
        SHA-256 of the checkpoint given now.
    what : str
        The stored result, for the message (e.g. ``"surface 's.h5'"``).
    checkpoint : path-like
        The checkpoint given now, for the message.
    origin : path-like, optional
        Where the stored result says its checkpoint was (its provenance), for the hint.

    Raises
    ------
    LandscapeError
        If the stored result records no checkpoint hash, or another one.
    """
    want = recorded.get("checkpoint_sha256")
    if want is None:
        raise LandscapeError(
            f"{what} records no checkpoint SHA-256, so CKPT cannot be checked against it; "
            "compute the ratio map from Python with landscape.hessian.compute_ratio_map"
        )
    if want != sha256:
        hint = f" ('{origin}')" if origin else ""
        raise LandscapeError(
            f"checkpoint '{checkpoint}' is not the one {what} was computed at (SHA-256 "
            f"{sha256[:12]}… vs {str(want)[:12]}…); pass that checkpoint{hint}"
        )
