"""Optimizer trajectories: PCA of the path of checkpoints, relative to the final model.

Li et al. (2018, section 7) show that random directions cannot show an optimizer's path: two
random vectors in a space of millions of dimensions are nearly orthogonal to every step, so the
projected path barely moves. They instead take the checkpoints ``θ_0, ..., θ_n`` of one run
(``θ_n`` the final model), form the matrix of differences

.. math:: M = [\\theta_0 - \\theta_n;\\ \\theta_1 - \\theta_n;\\ \\dots]

and use its first principal components as the two directions of a loss surface around
``θ_n``. :class:`TrajectoryPCA` does this:

* **selection** -- the entries are those directions perturb (:mod:`landscape.directions`):
  floating-point tensors of ``what="weights"`` (parameters) or ``"states"`` (the whole
  ``state_dict``), chosen by :func:`~landscape.parameters.select_parameters` on the final
  model (tied weights once, frozen parameters left out unless ``include_frozen=True``,
  ``params`` / ``exclude`` globs); with ``ignore="biasbn"`` (default) biases, normalisation
  layer tensors and tensors with at most one dimension are left out, and their entries of
  the PCA directions are zero. Integer tensors are always left out.
* **order** -- checkpoints whose recorded epochs
  (:func:`~landscape.checkpoints.checkpoint_position`) are out of order are sorted by them,
  with a warning, so the last is the final model.
* **matrix** -- one row ``θ_i - θ_final`` per checkpoint, *including the final one* (a zero
  row), as ``plot_trajectory.py`` of Li et al. does (its checkpoint list runs up to and
  including ``max_epoch``). ``include_final=False`` leaves the zero row out.
* **PCA** -- exactly scikit-learn's :class:`~sklearn.decomposition.PCA` on that matrix (which
  centres the rows): ``explained_variance_ratio_`` equals scikit-learn's, and the components
  carry its sign convention (the largest entry of each component, in absolute value, is
  positive). Since the rows are centred, the PCs are those of the checkpoints themselves.
  The PCA is computed from the ``n x n`` Gram matrix of the centred rows, so memory is
  ``O(n_checkpoints x n_params)`` (the matrix itself, float64), never ``n_params ** 2``.
* **projection** -- coordinates of every checkpoint relative to the *final* model, along the
  unit-norm, orthonormal PCs: ``coords[i, k] = <θ_i - θ_final, d_k>`` (least squares, since
  the ``d_k`` are orthonormal). This is Li et al.'s ``project_trajectory`` (``"cos"``). The
  final model is at ``(0, 0)`` exactly, and the surface
  ``compute_surface(final_model, pca.pca_directions_, data, base=pca.final_, ...)`` at
  ``(a, b)`` evaluates ``θ_final + a d_1 + b d_2``: a checkpoint lying in the plane has the
  loss of the surface at its coordinates.

Beyond the paper, the fit reports how well the plane describes the path: for every step
``Δ_i = θ_{i+1} - θ_i`` the fraction ``||P Δ_i||² / ||Δ_i||²`` of its squared length that lies
in the span of the PCs (``step_capture_``), the same fraction for as many random
filter-normalized directions (orthonormalized; ``random_capture_``), their totals over the
path, and the number of components that explain 90 % of the variance.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018, section 7.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import storage
from ._atomic import output_lock
from ._functional import TENSOR_SELECTIONS, named_tensors
from ._resume import RUN_FIELDS
from ._resume import run_options as run_options_of
from .checkpoints import (
    Checkpoint,
    checkpoint_position,
    list_hf_checkpoints,
    list_lightning_checkpoints,
    load_checkpoint,
)
from .directions import IGNORES, Directions, random_direction
from .errors import LandscapeError, check_int, check_option
from .inputs import CheckpointInputs, RunOptions
from .memory import MemoryEstimate, tensor_bytes, trajectory_memory
from .models import ModelSpec
from .parameters import ParameterSelection, select_parameters
from .surface import Axis, Surface, directions_group, load_directions

__all__ = ["TrajectoryPCA", "Trajectory", "compute_trajectory", "load_trajectory",
           "list_run_checkpoints", "path_axis"]

#: A checkpoint: a dict of tensors, a checkpoint file, or a loaded :class:`Checkpoint`.
CheckpointLike = Mapping[str, Tensor] | str | os.PathLike | Checkpoint

#: Fraction of the variance that :attr:`TrajectoryPCA.n_components_for_90_` must reach.
_VARIANCE_TARGET = 0.9
#: Components whose variance is below this fraction of the first one's span no dimension.
_RANK_RTOL = 1e-12
#: Columns of the difference matrix processed at a time (bounds temporary memory).
_CHUNK = 1 << 16


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise LandscapeError(f"The '{name}' parameter must be a bool. Got {value!r} instead.")
    return value


def _label(record: Mapping[str, Any], index: int) -> str:
    path = record.get("path")
    return f"checkpoint '{path}'" if path else f"checkpoint #{index}"


@dataclass(frozen=True)
class _Selection:
    """Which entries of a tensor dict enter the PCA, and where they sit in the flat vector."""

    names: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    offsets: dict[str, int]
    size: int

    @classmethod
    def of(cls, final: Mapping[str, Tensor], ignore: str,
           selection: ParameterSelection | None = None) -> _Selection:
        names: list[str] = []
        shapes: dict[str, tuple[int, ...]] = {}
        offsets: dict[str, int] = {}
        size = 0
        for k, t in final.items():
            if t.is_complex():
                raise LandscapeError(
                    f"tensor '{k}' is complex; trajectory PCA supports real tensors only"
                )
            if not t.is_floating_point() or (ignore == "biasbn" and t.dim() <= 1):
                continue
            if selection is not None and (
                not selection.moves(k) or (ignore == "biasbn" and selection.is_biasbn(k))
            ):
                continue
            names.append(k)
            shapes[k] = tuple(t.shape)
            offsets[k] = size
            size += t.numel()
        if size == 0:
            raise LandscapeError(
                "no tensor is left to analyse: with ignore='biasbn' only tensors with two or "
                "more dimensions (outside biases and normalisation layers) enter the PCA; pass "
                "ignore='none'" + (" or check params/exclude" if selection is not None else "")
            )
        return cls(tuple(names), shapes, offsets, size)

    def flatten(self, tensors: Mapping[str, Tensor], out: np.ndarray) -> np.ndarray:
        """Write the selected entries of ``tensors`` into ``out`` (float64, shape (size,))."""
        for k in self.names:
            o = self.offsets[k]
            t = tensors[k].detach().to("cpu", torch.float64).reshape(-1)
            out[o : o + t.numel()] = t.numpy()
        return out

    def unflatten(self, vec: np.ndarray, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A direction dict shaped like ``like``: ``vec`` on selected tensors, zeros elsewhere."""
        out: dict[str, Tensor] = {}
        for k, t in like.items():
            if k in self.offsets:
                o = self.offsets[k]
                n = t.numel()
                v = torch.from_numpy(np.array(vec[o : o + n])).reshape(t.shape)
                out[k] = v.to(dtype=t.dtype)
            else:
                out[k] = torch.zeros_like(t)
        return out


def _sign_flip(components: np.ndarray) -> np.ndarray:
    """scikit-learn's ``svd_flip(u_based_decision=False)``: largest |entry| of each row > 0."""
    idx = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(components.shape[0]), idx])
    signs[signs == 0] = 1.0
    return components * signs[:, None]


def _captures(coords: np.ndarray, step_sq: np.ndarray) -> np.ndarray:
    """Per step, ``||P Δ||² / ||Δ||²`` from coordinates along orthonormal directions."""
    proj_sq = np.sum(np.diff(coords, axis=0) ** 2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(step_sq > 0, proj_sq / np.where(step_sq > 0, step_sq, 1.0), np.nan)


def _total_capture(coords: np.ndarray, step_sq: np.ndarray) -> float:
    total = float(step_sq.sum())
    if total == 0:
        return float("nan")
    return float(np.sum(np.diff(coords, axis=0) ** 2) / total)


@dataclass(frozen=True)
class Trajectory:
    """A fitted trajectory PCA as stored in a file's ``/trajectory`` group.

    Attributes
    ----------
    coords : np.ndarray
        ``(n_checkpoints, n_components)`` coordinates of every checkpoint along the PCs,
        relative to the final model (the last row is ``0``).
    explained_variance_ratio : np.ndarray
        Fraction of the path's variance along every PC, all ``min(n_samples, n_params)`` of
        them (``n_samples`` is the number of rows of the PCA matrix).
    explained_variance : np.ndarray
        Variance along every PC (``singular_values ** 2 / (n_samples - 1)``).
    singular_values : np.ndarray
        Singular values of the centred matrix.
    step_capture : np.ndarray
        ``(n_checkpoints - 1,)``: fraction of each step's squared length in the PC subspace
        (NaN for a step of length zero).
    random_capture : np.ndarray
        The same for as many orthonormalized random filter-normalized directions.
    n_components : int
        Number of PCs kept as directions and coordinates.
    n_components_for_90 : int
        Fewest PCs that explain at least 90 % of the variance.
    path_capture : float
        Fraction of the summed squared step lengths in the PC subspace.
    random_path_capture : float
        The same for the random directions.
    random_variance_ratio : float
        Fraction of the path's variance along the random directions (compare with
        ``explained_variance_ratio[:n_components].sum()``).
    checkpoints : tuple of dict
        One record per checkpoint: ``path``, ``sha256`` and ``epoch`` (``None`` when unknown).
    epochs : np.ndarray or None
        Epoch of every checkpoint, when all are known.
    recipe : dict
        How the PCA was made (the recipe of its directions, plus the random baseline).
    directions : Directions or None
        The PCA directions (the first two PCs), when stored.

    References
    ----------
    Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
    Landscape of Neural Nets". NeurIPS 2018, section 7.
    """

    coords: np.ndarray
    explained_variance_ratio: np.ndarray
    explained_variance: np.ndarray
    singular_values: np.ndarray
    step_capture: np.ndarray
    random_capture: np.ndarray
    n_components: int
    n_components_for_90: int
    path_capture: float
    random_path_capture: float
    random_variance_ratio: float
    checkpoints: tuple[dict[str, Any], ...] = ()
    epochs: np.ndarray | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    directions: Directions | None = None

    @property
    def n_checkpoints(self) -> int:
        """Number of checkpoints on the path (the final one included)."""
        return int(self.coords.shape[0])

    def summary(self) -> dict[str, float | int]:
        """Low-dimensionality figures of the path.

        Returns
        -------
        dict
            ``pc1`` and ``pc1_pc2`` (explained variance ratios), ``n_components_for_90``,
            ``path_capture``, ``random_path_capture``, ``random_variance_ratio`` and
            ``n_checkpoints``.
        """
        ratio = self.explained_variance_ratio
        return {
            "n_checkpoints": self.n_checkpoints,
            "pc1": float(ratio[0]),
            "pc1_pc2": float(ratio[:2].sum()),
            "n_components_for_90": int(self.n_components_for_90),
            "path_capture": float(self.path_capture),
            "random_path_capture": float(self.random_path_capture),
            "random_variance_ratio": float(self.random_variance_ratio),
        }

    # ------------------------------------------------------------------ storage
    def plot(self, surface: Surface | None = None, **kwargs: Any) -> Any:
        """The path on the PC1-PC2 plane, over ``surface``'s contours when given (a 2D surface
        on the PCA plane); keyword arguments go to :func:`landscape.plot.plot_trajectory`."""
        from .plot import plot_trajectory

        return plot_trajectory(self.coords[:, :2], surface=surface,
                               explained_variance_ratio=self.explained_variance_ratio,
                               epochs=self.epochs, **kwargs)

    def to_group(self) -> storage.Group:
        """The ``/trajectory`` HDF5 group (see :mod:`landscape.storage`)."""
        g = storage.Group(
            attrs={
                "recipe": storage.dumps(self.recipe),
                "n_components": int(self.n_components),
                "n_components_for_90": int(self.n_components_for_90),
                "explained_variance_ratio": json.dumps(
                    [float(v) for v in self.explained_variance_ratio]
                ),
                "explained_variance": json.dumps([float(v) for v in self.explained_variance]),
                "checkpoints": storage.dumps(list(self.checkpoints)),
                "summary": storage.dumps(
                    {
                        "path_capture": _json_float(self.path_capture),
                        "random_path_capture": _json_float(self.random_path_capture),
                        "random_variance_ratio": _json_float(self.random_variance_ratio),
                    }
                ),
            }
        )
        g.datasets["coords"] = np.asarray(self.coords, dtype=np.float64)
        for name in ("explained_variance_ratio", "explained_variance", "singular_values",
                     "step_capture", "random_capture"):
            g.datasets[name] = np.asarray(getattr(self, name), dtype=np.float64)
        if self.epochs is not None:
            g.datasets["epochs"] = np.asarray(self.epochs, dtype=np.int64)
        return g

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``/trajectory`` and the PCA directions (``/directions``) to ``path``.

        The directions make the file a direction file for ``landscape surface --dir-file``
        and :func:`landscape.surface.load_directions`. Other groups of an existing file are
        kept, except that a file holding a surface computed along *other* directions is
        refused (its ``/surface`` would no longer match ``/directions``).

        Parameters
        ----------
        path : str or os.PathLike
            HDF5 file (written atomically).
        overwrite : bool, default=False
            Replace an existing file entirely.

        Raises
        ------
        LandscapeError
            If ``path`` holds a surface along other directions (and not ``overwrite``), is
            not a landscape file, or cannot be written.
        """
        groups: dict[str, storage.Group | None] = {"trajectory": self.to_group()}
        with output_lock(path, wait=30.0):  # the check and the write are one step
            if self.directions is not None:
                _check_no_stale_surface(path, self.directions, overwrite)
                groups["directions"] = directions_group(self.directions)
            storage.update_file(path, groups, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        """Read a trajectory written by :meth:`save` (see :func:`load_trajectory`)."""
        g = storage.require_group(path, "trajectory", "holds no trajectory (no /trajectory "
                                  "group); write one with "
                                  "TrajectoryPCA(...).fit(checkpoints).save(path)")
        try:
            summary = json.loads(g.attrs["summary"])
            d = g.datasets
            epochs = d.get("epochs")
            out = cls(
                coords=np.asarray(d["coords"], dtype=np.float64),
                explained_variance_ratio=np.asarray(d["explained_variance_ratio"]),
                explained_variance=np.asarray(d["explained_variance"]),
                singular_values=np.asarray(d["singular_values"]),
                step_capture=np.asarray(d["step_capture"]),
                random_capture=np.asarray(d["random_capture"]),
                n_components=int(g.attrs["n_components"]),
                n_components_for_90=int(g.attrs["n_components_for_90"]),
                path_capture=_float_or_nan(summary["path_capture"]),
                random_path_capture=_float_or_nan(summary["random_path_capture"]),
                random_variance_ratio=_float_or_nan(summary["random_variance_ratio"]),
                checkpoints=tuple(json.loads(g.attrs["checkpoints"])),
                epochs=None if epochs is None else np.asarray(epochs, dtype=np.int64),
                recipe=json.loads(g.attrs["recipe"]),
                directions=(
                    load_directions(path) if "directions" in storage.list_groups(path) else None
                ),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise LandscapeError(f"'{path}' has a damaged /trajectory group ({exc})") from exc
        n = len(out.coords)
        if out.coords.ndim != 2 or out.coords.shape[1] != out.n_components \
                or len(out.checkpoints) not in (0, n):
            want = f"({len(out.checkpoints) or 'n'}, {out.n_components})"
            raise LandscapeError(
                f"'{path}' has a damaged /trajectory group: dataset 'coords' has shape "
                f"{out.coords.shape}; expected {want} (checkpoints x components)"
            )
        if out.epochs is not None and out.epochs.shape != (n,):
            raise LandscapeError(
                f"'{path}' has a damaged /trajectory group: dataset 'epochs' has shape "
                f"{out.epochs.shape}; expected ({n},), one epoch per checkpoint"
            )
        return out


def _json_float(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _float_or_nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _check_no_stale_surface(
    path: str | os.PathLike, directions: Directions, overwrite: bool
) -> None:
    p = Path(path)
    if overwrite or not p.is_file() or storage.file_kind(p) != "landscape":
        return
    if "surface" not in storage.list_groups(p):
        return
    old = storage.read_group(p, "directions")
    if (
        old is None
        or old.attrs.get("sha256") != directions.digest()
        or old.attrs.get("recipe") != directions.recipe_json()
    ):
        raise LandscapeError(
            f"'{p}' holds a surface computed along other directions; saving these PCA "
            "directions there would mismatch it -- choose another file or pass overwrite=True"
        )


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read the trajectory (and its PCA directions) saved in an HDF5 file.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :meth:`TrajectoryPCA.save` or :meth:`Trajectory.save`.

    Returns
    -------
    Trajectory

    Raises
    ------
    LandscapeError
        If the file is missing, not a landscape file, or holds no valid ``/trajectory``.
    """
    return Trajectory.load(path)


def list_run_checkpoints(run_dir: str | os.PathLike, *, allow_partial: bool = False) -> list[Path]:
    """Checkpoints of a training run directory, in training order.

    A ``landscape train`` run (``run.json`` or ``epoch_NNNN.pt`` files, see
    :func:`landscape.training.list_checkpoints`), else a PyTorch Lightning run (``.ckpt``
    files, see :func:`~landscape.checkpoints.list_lightning_checkpoints`), else a HuggingFace
    ``Trainer`` output directory (``checkpoint-N`` folders, see
    :func:`~landscape.checkpoints.list_hf_checkpoints`).

    Raises
    ------
    LandscapeError
        If the directory holds neither.
    """
    from .training import list_checkpoints

    root = Path(run_dir)
    if root.is_dir() and not (root / "run.json").is_file() and not any(
        p.name.startswith("epoch_") and p.suffix == ".pt" for p in root.iterdir()
    ):
        if any(p.is_dir() and p.name.startswith("checkpoint-") for p in root.iterdir()):
            return list_hf_checkpoints(root)
        if any(root.rglob("*.ckpt")):
            return list_lightning_checkpoints(root)
    return list_checkpoints(run_dir, allow_partial=allow_partial)


def _position(item: Any) -> tuple[int | None, int | None]:
    if isinstance(item, Checkpoint):
        meta = item.meta if isinstance(item.meta, Mapping) else {}
        e, s = meta.get("epoch"), meta.get("global_step")
        return (e if isinstance(e, int) and not isinstance(e, bool) else None,
                s if isinstance(s, int) and not isinstance(s, bool) else None)
    if isinstance(item, str | os.PathLike):
        return checkpoint_position(item)
    return None, None


def _in_recorded_order(items: list[Any]) -> list[Any]:
    """``items`` sorted by their recorded (epoch, step) when all are known and out of order."""
    pos = [_position(it) for it in items]
    if any(e is None for e, _ in pos):
        return items
    keys = [(e, -1 if s is None else s) for e, s in pos]
    if all(a <= b for a, b in zip(keys, keys[1:], strict=False)):
        return items
    order = sorted(range(len(items)), key=lambda i: keys[i])
    first = next(i for i in range(len(keys) - 1) if keys[i] > keys[i + 1])
    warnings.warn(
        f"the checkpoints are not in training order (#{first} records epoch {keys[first][0]}, "
        f"#{first + 1} epoch {keys[first + 1][0]}); sorted by their recorded epochs, so the "
        f"final model is #{order[-1]}",
        UserWarning,
        stacklevel=3,
    )
    return [items[i] for i in order]


class TrajectoryPCA:
    """PCA of an optimizer's path of checkpoints, with the final model as the origin.

    Parameters
    ----------
    n_components : int, default=2
        Number of principal components kept as directions and coordinates. All
        ``min(n_samples, n_params)`` explained variances are computed regardless. The
        :class:`~landscape.directions.Directions` of :attr:`pca_directions_` hold the first
        two (a surface has at most two directions).
    ignore : {"biasbn", "none"}, default="biasbn"
        ``"biasbn"`` leaves tensors with at most one dimension out of the PCA (their
        direction entries are zero), as the directions of :mod:`landscape.directions` do.
    what : {"weights", "states"}, default="weights"
        Tensors read from checkpoint files and :class:`~landscape.checkpoints.Checkpoint`
        objects: the parameters, or the whole ``state_dict``. Tensor dicts passed directly
        are used as they are.
    include_final : bool, default=True
        Keep the final model's (zero) row in the PCA matrix, as Li et al.'s code does.
        ``False`` uses only the rows of the earlier checkpoints.
    seed : int, default=0
        Seed of the first random direction of the baseline (the ``j``-th uses ``seed + j``).
    params, exclude : str or list of str, optional
        Glob patterns of the tensors analysed / left out (see
        :func:`~landscape.parameters.select_parameters`).
    include_frozen : bool, default=False
        Also analyse parameters with ``requires_grad=False``.

    Attributes
    ----------
    components_ : np.ndarray
        ``(n_components, n_features_)`` float64: the unit-norm, orthonormal PCs over the
        selected entries (in the order of :attr:`tensor_names_`).
    pca_directions_ : Directions
        The first ``min(n_components, 2)`` PCs as direction dicts shaped like the model's
        tensors (zeros outside the selection), recipe ``kind="pca"``, ``norm="none"``. Use
        them with ``compute_surface(final_model, pca.pca_directions_, ..., base=pca.final_)``.
    explained_variance_, explained_variance_ratio_, singular_values_ : np.ndarray
        As in :class:`sklearn.decomposition.PCA`, for all ``min(n_samples_, n_features_)``
        components.
    mean_ : np.ndarray
        Mean row of the PCA matrix (``mean(θ_i) - θ_final`` over the rows).
    coords_ : np.ndarray
        ``(n_checkpoints_, n_components)``: ``<θ_i - θ_final, d_k>``; the last row is 0.
    step_capture_, random_capture_ : np.ndarray
        ``(n_checkpoints_ - 1,)``: fraction ``||P Δ||² / ||Δ||²`` of every step captured by the
        PC subspace, and by ``n_components`` random filter-normalized directions
        (orthonormalized over the selection). NaN for a step of length zero.
    path_capture_, random_path_capture_ : float
        The same over the whole path: ``Σ ||P Δ||² / Σ ||Δ||²``.
    random_variance_ratio_ : float
        Fraction of the path's variance along the random directions (the baseline of
        ``explained_variance_ratio_[:n_components].sum()``).
    n_components_for_90_ : int
        Fewest components explaining at least 90 % of the variance.
    final_ : dict[str, Tensor]
        The final model's tensors (CPU copies): the origin of the coordinates.
    checkpoints_ : list of dict
        ``path``, ``sha256`` and ``epoch`` of every checkpoint (``None`` when unknown).
    epochs_ : np.ndarray or None
        Epoch of every checkpoint when all are known.
    tensor_names_ : list of str
        The selected tensors.
    n_features_, n_samples_, n_checkpoints_ : int
        Selected entries, rows of the PCA matrix, checkpoints.

    References
    ----------
    Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
    Landscape of Neural Nets". NeurIPS 2018, section 7.

    Examples
    --------
    >>> pca = TrajectoryPCA(n_components=2).fit_run("runs/mlp")        # doctest: +SKIP
    >>> pca.explained_variance_ratio_[:2], pca.coords_[-1]              # doctest: +SKIP
    >>> pca.save("runs/mlp/trajectory.h5")                              # doctest: +SKIP
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        ignore: str = "biasbn",
        what: str = "weights",
        include_final: bool = True,
        seed: int = 0,
        params: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        include_frozen: bool = False,
    ) -> None:
        self.n_components = check_int("n_components", n_components, 1)
        self.ignore = check_option("ignore", ignore, IGNORES)
        self.what = check_option("what", what, TENSOR_SELECTIONS)
        self.include_final = _check_bool("include_final", include_final)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)
        self.params = params
        self.exclude = exclude
        self.include_frozen = _check_bool("include_frozen", include_frozen)

    def __repr__(self) -> str:
        return (
            f"TrajectoryPCA(n_components={self.n_components}, ignore={self.ignore!r}, "
            f"what={self.what!r}, include_final={self.include_final}, seed={self.seed})"
        )

    # ------------------------------------------------------------------ loading
    def _load(
        self,
        item: CheckpointLike,
        index: int,
        model: ModelSpec | str | nn.Module | None,
        model_kwargs: Mapping[str, Any] | None,
        trust: bool,
    ) -> tuple[Mapping[str, Tensor], dict[str, Any], nn.Module | None]:
        if isinstance(item, Checkpoint):
            ckpt = item
        elif isinstance(item, str | os.PathLike):
            ckpt = load_checkpoint(item, model=model, model_kwargs=model_kwargs, trust=trust)
        elif isinstance(item, Mapping):
            bad = [k for k, v in item.items() if not isinstance(v, Tensor)][:3]
            if bad or not item:
                raise LandscapeError(
                    f"checkpoint #{index} is not a dict of tensors"
                    + (f" (entries {bad} are not tensors)" if bad else " (it is empty)")
                    + "; pass named_tensors(model) or a state_dict"
                )
            return item, {"path": None, "sha256": None, "epoch": None}, None
        else:
            raise LandscapeError(
                f"checkpoint #{index} is a {type(item).__name__}; expected a dict of tensors, "
                "a checkpoint file or a Checkpoint"
            )
        epoch = ckpt.meta.get("epoch") if isinstance(ckpt.meta, Mapping) else None
        record = {
            "path": str(ckpt.path),
            "sha256": ckpt.sha256,
            "epoch": int(epoch) if isinstance(epoch, int) and not isinstance(epoch, bool)
            else None,
        }
        return named_tensors(ckpt.model, self.what), record, ckpt.model

    @staticmethod
    def _check_matches(
        tensors: Mapping[str, Tensor],
        final: Mapping[str, Tensor],
        label: str,
        final_label: str,
    ) -> None:
        if set(tensors) != set(final):
            missing = [k for k in final if k not in tensors][:3]
            extra = [k for k in tensors if k not in final][:3]
            raise LandscapeError(
                f"{label} has other tensors than the final model ({final_label})"
                + (f": missing {missing}" if missing else "")
                + (f"{',' if missing else ':'} unexpected {extra}" if extra else "")
                + " -- all checkpoints of a trajectory must come from one architecture "
                "(and the same what='weights'/'states')"
            )
        for k, t in final.items():
            if tuple(tensors[k].shape) != tuple(t.shape):
                raise LandscapeError(
                    f"{label}: tensor '{k}' has shape {tuple(tensors[k].shape)} but the final "
                    f"model's ({final_label}) has {tuple(t.shape)} -- all checkpoints of a "
                    "trajectory must come from one architecture"
                )

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        checkpoints: Sequence[CheckpointLike] | str | os.PathLike,
        *,
        model: ModelSpec | str | nn.Module | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        trust: bool = False,
        check_memory: bool = True,
    ) -> TrajectoryPCA:
        """Fit the PCA to a path of checkpoints, the last one being the final model.

        Parameters
        ----------
        checkpoints : sequence of (dict[str, Tensor] or path or Checkpoint), or a directory
            The checkpoints in training order, at least three. Dicts of tensors must all have
            the same keys and shapes. Files are read one at a time with
            :func:`~landscape.checkpoints.load_checkpoint` (only their selected entries stay
            in memory). A directory is read as a training run (see :meth:`fit_run`).
        model, model_kwargs, trust
            Passed to :func:`~landscape.checkpoints.load_checkpoint` for checkpoint files.
        check_memory : bool, default=True
            Once the final model is read, predict the fit's peak memory
            (:func:`landscape.memory.trajectory_memory`) and refuse when what it still
            allocates exceeds the memory available; ``False`` fits anyway.

        Returns
        -------
        TrajectoryPCA
            ``self``, fitted.

        Raises
        ------
        LandscapeError
            With fewer than three checkpoints, checkpoints of different architectures,
            non-finite weights, a path that does not move, or a path spanning fewer
            dimensions than ``n_components``.
        """
        if isinstance(checkpoints, str | os.PathLike):
            if Path(checkpoints).is_dir():
                return self.fit_run(checkpoints, model=model, model_kwargs=model_kwargs,
                                    trust=trust)
            raise LandscapeError(
                f"'{checkpoints}' is not a directory; pass a list of checkpoints (the last "
                "one the final model) or a training run directory"
            )
        if isinstance(checkpoints, Mapping) or not isinstance(checkpoints, Sequence):
            raise LandscapeError(
                f"The 'checkpoints' parameter must be a sequence of checkpoints. Got "
                f"{type(checkpoints).__name__} instead."
            )
        items = list(checkpoints)
        n = len(items)
        if n < 3:
            raise LandscapeError(
                f"a trajectory needs at least 3 checkpoints (the last one is the final "
                f"model); got {n}"
            )
        trust = _check_bool("trust", trust)
        items = _in_recorded_order(items)

        final_t, final_rec, final_model = self._load(items[-1], n - 1, model, model_kwargs,
                                                     trust)
        final = {k: v.detach().to("cpu").clone() for k, v in final_t.items()}
        del final_t
        self.selection_ = self._selection(final, final_model)
        del final_model
        sel = _Selection.of(final, self.ignore, self.selection_)
        final_label = _label(final_rec, n - 1)
        final_vec = sel.flatten(final, np.empty(sel.size))
        if not np.all(np.isfinite(final_vec)):
            raise LandscapeError(f"{final_label} has NaN or infinite weights")

        if check_memory:
            est = trajectory_memory(sel.size, n, tensor_bytes(final),
                                    n_components=self.n_components)
            est = MemoryEstimate(est.what, est.terms, ("final copy",))
            est.check("check_memory", "select fewer tensors (params=..., exclude=...) or pass "
                      "fewer checkpoints")
        # D[i] = θ_i - θ_final over the selection; the final row is exactly zero.
        diffs = np.zeros((n, sel.size), dtype=np.float64)
        records: list[dict[str, Any]] = []
        for i, item in enumerate(items[:-1]):
            tensors, rec, _ = self._load(item, i, model, model_kwargs, trust)
            self._check_matches(tensors, final, _label(rec, i), final_label)
            row = sel.flatten(tensors, diffs[i])
            if not np.all(np.isfinite(row)):
                raise LandscapeError(f"{_label(rec, i)} has NaN or infinite weights")
            row -= final_vec
            records.append(rec)
            del tensors
        records.append(final_rec)

        self._fit_matrix(diffs, sel, final)
        self.checkpoints_ = records
        epochs = [r["epoch"] for r in records]
        self.epochs_ = (
            np.asarray(epochs, dtype=np.int64) if all(e is not None for e in epochs) else None
        )
        self.pca_directions_ = self._make_directions(sel, final)
        return self

    def fit_run(
        self,
        run_dir: str | os.PathLike,
        *,
        model: ModelSpec | str | nn.Module | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        trust: bool = False,
        allow_partial: bool = False,
    ) -> TrajectoryPCA:
        """Fit to every checkpoint of a training run directory, in training order.

        The checkpoints are those of :func:`list_run_checkpoints`: a ``landscape train`` run
        (``run.json``, else the ``epoch_NNNN.pt`` files) or a PyTorch Lightning run (its
        ``.ckpt`` files in the order of their recorded epoch and step); the last one is the
        final model.

        Parameters
        ----------
        run_dir : str or os.PathLike
            Output directory of :func:`landscape.training.train` (``landscape train``).
        model, model_kwargs, trust
            See :meth:`fit`.
        allow_partial : bool, default False
            Accept an unfinished run (still training, killed or diverged), whose last
            checkpoint is not its final model; by default such a run is refused.

        Returns
        -------
        TrajectoryPCA
            ``self``, fitted.
        """
        return self.fit(list_run_checkpoints(run_dir, allow_partial=allow_partial), model=model,
                        model_kwargs=model_kwargs, trust=trust)

    def _selection(self, final: Mapping[str, Tensor],
                   model: nn.Module | None) -> ParameterSelection:
        if model is None:
            return ParameterSelection.from_tensors(final, what=self.what, params=self.params,
                                                   exclude=self.exclude)
        return select_parameters(model, self.what, params=self.params, exclude=self.exclude,
                                 include_frozen=self.include_frozen)

    def _fit_matrix(
        self, diffs: np.ndarray, sel: _Selection, final: dict[str, Tensor]
    ) -> None:
        n, p = diffs.shape
        k = self.n_components
        rows = n if self.include_final else n - 1
        x = diffs[:rows]
        mean = x.mean(axis=0)

        # Gram matrix of the centred rows, a block of columns at a time: O(n² p), O(n p) memory.
        gram = np.zeros((rows, rows))
        for s in range(0, p, _CHUNK):
            b = x[:, s : s + _CHUNK] - mean[s : s + _CHUNK]
            gram += b @ b.T
        eigval, eigvec = np.linalg.eigh(gram)
        order = np.argsort(eigval)[::-1]
        m = min(rows, p)
        eigvec = eigvec[:, order][:, :m]
        # sqrt(eigenvalue of the Gram matrix) squares the condition number: a null direction
        # comes out as sqrt(eps)·σ₁ (≈1e-8 σ₁), not 0. ‖X_cᵀ u_j‖ — one more pass over the
        # columns — resolves every singular value to about eps·σ₁, as an SVD of X_c would.
        sq = np.zeros(m)
        for s in range(0, p, _CHUNK):
            sq += np.sum((eigvec.T @ (x[:, s : s + _CHUNK] - mean[s : s + _CHUNK])) ** 2, axis=1)
        eigval = sq
        total = float(eigval.sum())
        if total <= 0.0 or not np.isfinite(total):
            raise LandscapeError(
                "the checkpoints do not move in the selected tensors (all are identical to "
                "the final model); check the paths, or pass ignore='none' if only biases "
                "and BatchNorm tensors change"
            )
        rank = int(np.sum(eigval > _RANK_RTOL * eigval[0]))
        if k > rank:
            raise LandscapeError(
                f"The 'n_components' parameter must be an int in [1, {rank}]: the "
                f"{n} checkpoints span only {rank} dimension(s) after centring. Got {k} "
                "instead. Pass more checkpoints or fewer components"
            )

        sing = np.sqrt(eigval)
        comps = np.empty((k, p))
        uk = eigvec[:, :k]
        for s in range(0, p, _CHUNK):
            comps[:, s : s + _CHUNK] = uk.T @ (x[:, s : s + _CHUNK] - mean[s : s + _CHUNK])
        comps /= sing[:k, None]
        comps /= np.linalg.norm(comps, axis=1, keepdims=True)
        comps = _sign_flip(comps)

        coords = diffs @ comps.T
        coords[-1] = 0.0
        step_sq = np.array([float(np.sum((diffs[i + 1] - diffs[i]) ** 2)) for i in range(n - 1)])

        # Random baseline: k filter-normalized directions, orthonormalized over the selection.
        raw = np.stack([
            sel.flatten(
                random_direction(final, seed=self.seed + j, norm="filter", ignore=self.ignore,
                                 selection=self.selection_),
                np.empty(p),
            )
            for j in range(k)
        ])
        q, _ = np.linalg.qr(raw.T)
        rand_coords = diffs @ q
        rand_centred = rand_coords[:rows] - mean @ q

        self.n_features_ = p
        self.n_samples_ = rows
        self.n_checkpoints_ = n
        self.tensor_names_ = list(sel.names)
        self.mean_ = mean
        self.components_ = comps
        self.singular_values_ = sing
        self.explained_variance_ = eigval / (rows - 1)
        self.explained_variance_ratio_ = eigval / total
        cum = np.cumsum(self.explained_variance_ratio_)
        self.n_components_for_90_ = int(np.argmax(cum >= _VARIANCE_TARGET - 1e-12) + 1)
        self.coords_ = coords
        self.step_capture_ = _captures(coords, step_sq)
        self.random_capture_ = _captures(rand_coords, step_sq)
        self.path_capture_ = _total_capture(coords, step_sq)
        self.random_path_capture_ = _total_capture(rand_coords, step_sq)
        self.random_variance_ratio_ = float(np.sum(rand_centred**2) / total)
        self.final_ = final

    def _make_directions(self, sel: _Selection, final: dict[str, Tensor]) -> Directions:
        kd = min(self.n_components, 2)
        vecs = tuple(sel.unflatten(self.components_[j], final) for j in range(kd))
        recipe = {
            "kind": "pca",
            "what": self.what,
            "ignore": self.ignore,
            "norm": "none",
            "n_components": self.n_components,
            "explained_variance_ratio": [
                float(v) for v in self.explained_variance_ratio_[: self.n_components]
            ],
            "include_final": self.include_final,
            "centered": True,
            "checkpoints": [dict(r) for r in self.checkpoints_],
        }
        recipe.update(self.selection_.recipe)  # only non-default options add keys
        return Directions(vecs, recipe)

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise LandscapeError(
                "This TrajectoryPCA instance is not fitted yet; call fit(checkpoints) or "
                "fit_run(run_dir) first"
            )

    @property
    def directions_(self) -> Directions:
        """Alias of :attr:`pca_directions_`."""
        self._check_fitted()
        return self.pca_directions_

    def transform(
        self,
        checkpoints: Sequence[CheckpointLike],
        *,
        model: ModelSpec | str | nn.Module | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        trust: bool = False,
    ) -> np.ndarray:
        """Coordinates of (other) checkpoints along the PCs, relative to :attr:`final_`.

        Parameters
        ----------
        checkpoints : sequence of (dict[str, Tensor] or path or Checkpoint)
            Checkpoints of the same architecture.
        model, model_kwargs, trust
            See :meth:`fit`.

        Returns
        -------
        np.ndarray
            ``(len(checkpoints), n_components)``: ``<θ - θ_final, d_k>``.
        """
        self._check_fitted()
        sel = _Selection.of(self.final_, self.ignore, self.selection_)
        final_vec = sel.flatten(self.final_, np.empty(sel.size))
        out = np.empty((len(checkpoints), self.n_components))
        buf = np.empty(sel.size)
        for i, item in enumerate(checkpoints):
            tensors, rec, _ = self._load(item, i, model, model_kwargs, trust)
            self._check_matches(tensors, self.final_, _label(rec, i), "the fitted final model")
            sel.flatten(tensors, buf)
            buf -= final_vec
            out[i] = self.components_ @ buf
        return out

    def to_trajectory(self) -> Trajectory:
        """The fitted results as a :class:`Trajectory` (what :meth:`save` stores)."""
        self._check_fitted()
        return Trajectory(
            coords=self.coords_.copy(),
            explained_variance_ratio=self.explained_variance_ratio_.copy(),
            explained_variance=self.explained_variance_.copy(),
            singular_values=self.singular_values_.copy(),
            step_capture=self.step_capture_.copy(),
            random_capture=self.random_capture_.copy(),
            n_components=self.n_components,
            n_components_for_90=self.n_components_for_90_,
            path_capture=self.path_capture_,
            random_path_capture=self.random_path_capture_,
            random_variance_ratio=self.random_variance_ratio_,
            checkpoints=tuple(dict(r) for r in self.checkpoints_),
            epochs=None if self.epochs_ is None else self.epochs_.copy(),
            recipe={
                **self.pca_directions_.recipe,
                "random_baseline": {
                    "norm": "filter",
                    "ignore": self.ignore,
                    "seeds": [self.seed + j for j in range(self.n_components)],
                    "orthonormalized": True,
                },
            },
            directions=self.pca_directions_,
        )

    def summary(self) -> dict[str, float | int]:
        """Low-dimensionality figures of the path (see :meth:`Trajectory.summary`)."""
        return self.to_trajectory().summary()

    def to_group(self) -> storage.Group:
        """The ``/trajectory`` HDF5 group of the fitted results."""
        return self.to_trajectory().to_group()

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write ``/trajectory`` and the PCA directions as ``/directions`` to ``path``.

        See :meth:`Trajectory.save`.
        """
        self.to_trajectory().save(path, overwrite=overwrite)

    def save_or_resume(self, path: str | os.PathLike, *, overwrite: bool = False) -> bool:
        """Write the PCA to ``path``, or keep a file that already holds this very PCA.

        The resume rule of a trajectory file: an existing file whose ``/directions`` digest
        and ``/trajectory`` recipe equal this fit's is kept as it is (so a surface on its PC
        plane resumes); any other existing file is refused unless ``overwrite``.

        Returns
        -------
        bool
            ``True`` when the file was kept (resumed), ``False`` when it was written.

        Raises
        ------
        LandscapeError
            If ``path`` holds another trajectory or other directions (and not ``overwrite``).
        """
        self._check_fitted()
        p = Path(path)
        if p.exists() and not overwrite:
            groups = storage.outline(p)["groups"]
            old = groups.get("directions", {}).get("attrs", {}).get("sha256")
            old_recipe = groups.get("trajectory", {}).get("attrs", {}).get("recipe")
            if old != self.pca_directions_.digest() or old_recipe != self.to_group().attrs[
                    "recipe"]:
                raise LandscapeError(
                    f"'{p}' holds another trajectory or other directions; pass overwrite=True "
                    "to replace it or choose another out=PATH"
                )
            return True
        self.save(p, overwrite=overwrite)
        return False

    def plane_axes(self, num: int = 21) -> tuple[Axis, Axis]:
        """Grid axes around the projected path on the PC1-PC2 plane.

        Each axis spans the path's coordinates plus a quarter of their span on either side,
        rounded outwards to a tenth of the span's order of magnitude (a tiny span is widened
        to 1e-3 of the coordinates' size), with ``num`` points.
        """
        self._check_fitted()
        num = check_int("num", num, 1)
        if self.coords_.shape[1] < 2:
            raise LandscapeError("the PC plane needs n_components >= 2")
        return path_axis(self.coords_[:, 0], num), path_axis(self.coords_[:, 1], num)


    def plane_surface(
        self,
        *,
        inputs: CheckpointInputs | None = None,
        splits: Sequence[str] = ("train", "test"),
        x: str | Axis | None = None,
        y: str | Axis | None = None,
        points: int = 21,
        command: str | None = None,
        run: RunOptions | None = None,
        **options: Any,
    ) -> Surface:
        """The loss surface on the PC1-PC2 plane around the final checkpoint.

        Parameters
        ----------
        inputs : CheckpointInputs, optional
            How the final checkpoint and its data are loaded (default: its own spec and the
            data it was trained on).
        splits : sequence of str, default ("train", "test")
            The splits evaluated.
        x, y : str or Axis, optional
            The grid (``"min:max:num"``); default :meth:`plane_axes` with ``points`` points.
        points : int, default 21
            Points per axis of the default grid.
        command : str, optional
            The command line recorded in the provenance.
        run : RunOptions, optional
            How the run writes: ``run.out`` is the file holding this PCA (its surface is
            added to it and resumed from it; ``run.overwrite`` is not used here -- the PCA's
            writer decides about replacing the file).
        **options
            :func:`~landscape.surface.compute_surface`'s other options (``loss``,
            ``batch_size``, ``device``, ``dtype``...) and run options one by one.

        Returns
        -------
        Surface
        """
        from .recipes import checkpoint_provenance, checkpoint_recipe
        from .surface import compute_surface, parse_axis

        self._check_fitted()
        inputs = CheckpointInputs() if inputs is None else inputs
        auto_x, auto_y = self.plane_axes(points)
        ax = parse_axis(x, "x") if x is not None else auto_x
        ay = parse_axis(y, "y") if y is not None else auto_y
        dirs = self.pca_directions_
        if dirs.ndim != 2:
            dirs = Directions(dirs.vectors[:2], dirs.recipe)
        final_path = self.checkpoints_[-1]["path"]  # the last in recorded order
        final = inputs.load(final_path)
        datasets = inputs.datasets(final, list(splits))
        opts = run_options_of(run, **{k: options.pop(k) for k in list(options)
                                      if k in RUN_FIELDS})
        # never overwrite here: the file holds this PCA, written (or replaced) by its caller
        return compute_surface(
            final.model, dirs, datasets, x=ax, y=ay, out=opts.out, overwrite=False,
            progress=opts.progress, flush_seconds=opts.flush_seconds,
            max_points=opts.max_points,
            recipe=checkpoint_recipe(final, inputs.data_spec(final)),
            provenance=checkpoint_provenance(None, final_path, command or ""), **options)


def compute_trajectory(
    checkpoints: Sequence[CheckpointLike] | str | os.PathLike,
    pca: TrajectoryPCA | None = None,
    *,
    inputs: CheckpointInputs | None = None,
    allow_partial: bool = False,
    surface: bool = False,
    check_memory: bool = True,
    run: RunOptions | None = None,
    **surface_options: Any,
) -> TrajectoryPCA:
    """Fit a PCA to an optimizer path, write it, and the loss surface on its plane if asked.

    The ``landscape trajectory`` workflow as one call: the checkpoints of a run directory (or
    the files given, in training order) are fitted, the PCA is written to ``run.out`` (a file
    that already holds this very PCA is kept, so that its surface resumes), and with
    ``surface`` the loss on the PC1-PC2 plane is computed into the same file.

    Parameters
    ----------
    checkpoints : run directory, or sequence of checkpoint paths (or tensor dicts)
        The path, final model last (see :meth:`TrajectoryPCA.fit`).
    pca : TrajectoryPCA, optional
        The unfitted estimator with its settings (default ``TrajectoryPCA()``).
    inputs : CheckpointInputs, optional
        How checkpoint files and the data are loaded.
    allow_partial : bool, default False
        Accept an unfinished training run (its last checkpoint then stands for the final
        model; a warning says so).
    surface : bool, default False
        Also compute the surface on the PC plane (:meth:`TrajectoryPCA.plane_surface`).
    check_memory : bool, default True
        Refuse a fit whose predicted peak memory exceeds the memory available (see
        :meth:`TrajectoryPCA.fit`); ``False`` runs it anyway.
    run : RunOptions, optional
        Where the PCA (and surface) are written and how the run writes.
    **surface_options
        :meth:`TrajectoryPCA.plane_surface`'s options (``splits``, ``x``, ``y``, ``points``,
        ``loss``, ``batch_size``, ``device``, ``dtype``, ``command``); only with ``surface``.

    Returns
    -------
    TrajectoryPCA
        Fitted; ``surface_`` holds the surface (``None`` without ``surface``).

    Raises
    ------
    LandscapeError
        Before any work, on surface options without ``surface``, a surface with fewer than
        two components, or an output that may not be written.
    """
    from .errors import on_interrupt
    from .surface import parse_axis

    pca = TrajectoryPCA() if pca is None else pca
    inputs = CheckpointInputs() if inputs is None else inputs
    opts = run_options_of(run, **{k: surface_options.pop(k) for k in list(surface_options)
                                  if k in RUN_FIELDS})
    evaluation = sorted(set(surface_options) - {"command"})
    if not surface and evaluation:
        raise LandscapeError(f"{', '.join(evaluation)} set the evaluation of the surface (the "
                             "PCA needs no loss); pass surface=True or drop them")
    if surface:
        if pca.n_components < 2:
            raise LandscapeError("surface=True needs n_components >= 2 (a plane)")
        for name in ("x", "y"):
            if surface_options.get(name) is not None:
                parse_axis(surface_options[name], name)
    if isinstance(checkpoints, str | os.PathLike) and not Path(checkpoints).is_dir():
        raise LandscapeError(f"'{checkpoints}' is not a run directory; give a run directory "
                             "or at least three checkpoints in training order")
    if opts.out is not None:
        storage.check_writable(opts.out, overwrite=opts.overwrite)
    if isinstance(checkpoints, str | os.PathLike):
        run_dir = checkpoints
        checkpoints = list_run_checkpoints(run_dir, allow_partial=allow_partial)
        _warn_if_unfinished(run_dir)
    spec = inputs.model_spec()
    pca.fit(checkpoints, model=spec, trust=inputs.trust, check_memory=check_memory)
    pca.surface_ = None
    if opts.out is not None:  # from here on the PCA is on disk (and a surface resumes from it)
        pca.save_or_resume(opts.out, overwrite=opts.overwrite)
    if surface:
        saved = f"the PCA is saved in '{opts.out}'" if opts.out is not None else None
        with on_interrupt(saved, resumable=opts.out is not None):
            pca.surface_ = pca.plane_surface(inputs=inputs, run=opts, **surface_options)
    return pca


def _warn_if_unfinished(run_dir: str | os.PathLike) -> None:
    from .training import TrainRun

    if not (Path(run_dir) / "run.json").is_file():
        return
    state = TrainRun.load(run_dir).unfinished()
    if state is not None:
        warnings.warn(f"run '{run_dir}' is {state}; its last checkpoint is used as the final "
                      "model", UserWarning, stacklevel=3)


def path_axis(values: np.ndarray, num: int = 21) -> Axis:
    """A grid axis around path coordinates ``values`` (see :meth:`TrajectoryPCA.plane_axes`)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    span = max(hi - lo, 1e-3 * max(abs(lo), abs(hi), 1.0))
    lo, hi = lo - 0.25 * span, hi + 0.25 * span
    mag = 10 ** np.floor(np.log10(span / 4))
    return Axis(float(np.floor(lo / mag) * mag), float(np.ceil(hi / mag) * mag), num)
