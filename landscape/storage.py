"""HDF5 storage: the one module that imports :mod:`h5py`. Schema versions 1 and 2.

Layout of a ``landscape`` file (every group optional except the root attributes)::

    /                              attrs: format="landscape", format_version (1, or 2 with
                                          /surfaces; see GROUP_VERSIONS),
                                          tool_version, created (UTC ISO time of first write)
    /surface                       attrs: recipe (JSON: everything that must match to resume),
                                          provenance (JSON: command line, checkpoint path, ...),
                                          ndim (1 or 2), arrays (JSON list of array names)
    /surface/x                     (nx,) float64   grid coordinates along direction x
    /surface/y                     (ny,) float64   [2D only]
    /surface/<split>_loss          (ny, nx) float64 [(nx,) in 1D]  Z[iy, ix]: plt.contour(x, y, Z)
    /surface/<split>_acc           same shape, fraction in [0, 1]  [classification only]
    /surface/<split>_loss_se       same shape, standard error of each loss as a data-set mean
                                   (not listed in 'arrays': older readers skip it; absent in
                                   older files); attr subset_check (JSON) for --subset surfaces
    /surface/<split>_loss_n        same shape, int64: samples behind each loss (0: not computed)
                                   [only surfaces evaluated to a precision, rel_precision]
    /surface/done                  same shape, uint8: 1 where the point has been computed
    /directions                    attrs: recipe (JSON: kind, what, norm, ignore, seeds, ...),
                                          sha256 (digest of the tensors), ndim
    /directions/x/<tensor name>    float32/64 array with the tensor's shape (one per tensor)
    /directions/y/<tensor name>    [2D only]
    /surfaces                      [version 2] K surfaces on one grid along K independent
                                   direction pairs (landscape.surface_set): attrs as /surface
                                   plus n_members, seeds; x, y as /surface; <array> and done
                                   (K, ny, nx); /surfaces/directions/<k> a /directions group each
    /curvature, /trajectory, ...   results of other commands, each with its own attrs

Values of points not yet computed are NaN *and* ``done == 0``; the mask, not the value, says what
is finished (a loss may legitimately be 0 or NaN).

Writes are atomic: the whole file is built in memory, written to a temporary file beside the
target, fsync'ed and renamed over the target with :func:`os.replace` (:mod:`landscape._atomic`).
A process killed at any moment leaves either the previous complete file or the new complete
file, never a torn one; a full disk or a file-size limit ends in one error with the previous
file intact (HDF5 never writes to the disk itself). Groups of the old file that the writer does
not replace (e.g. ``/curvature`` when a surface is updated) are copied across, under an
exclusive lock (``.<name>.lock`` beside the file while a writer holds it), so two processes
adding different groups never lose one; long runs hold the lock from start to end, and a second
run on the same file fails at once with a clear message. Only regular files are opened (a FIFO
would hang), symbolic links are followed (the target is replaced, the link stays), and only
landscape files are ever replaced, even with ``overwrite``. Files are written
deterministically (no timestamps in HDF5 objects), so the same content gives the same bytes. A
writer killed during a write leaves its temporary file (``.<name>.<pid>-<machine>.<random>.tmp``)
behind; readers ignore it, and the next successful write of the same file deletes the temporary
files of writers that are no longer running.

Files written by the code of Li et al. (2018) (root datasets ``xcoordinates``,
``ycoordinates``, ``train_loss``, ``train_acc``, ...; unfinished points hold -1; accuracies in
percent) are read by :func:`read_li2018`.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._atomic import check_regular, output_lock, resolve_target, write_bytes
from ._version import __version__
from .errors import LandscapeError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Group",
    "file_kind",
    "read_group",
    "outline",
    "list_groups",
    "update_file",
    "check_writable",
    "output_lock",
    "read_li2018",
    "root_attrs",
]

FORMAT = "landscape"
FORMAT_VERSION = 2

#: The format version each top-level group needs (groups not listed: 1). A file is stamped
#: with the largest version among its groups -- the oldest format that can read it -- so files
#: of version-1 groups stay readable by version-1 tools, and a file holding a newer group is
#: refused by them with "upgrade landscape" instead of being misread. To bump the schema: add
#: the new group (or the new layout of an old one under a new name) here with the new
#: version, raise FORMAT_VERSION, and keep the readers of every older layout (see
#: docs/architecture.md, "Schema versions").
GROUP_VERSIONS: dict[str, int] = {"surfaces": 2}


def format_version_of(groups: Iterable[str]) -> int:
    """The format version of a file holding top-level ``groups``."""
    return max([1, *(GROUP_VERSIONS.get(g, 1) for g in groups)])


@dataclass
class Group:
    """An in-memory HDF5 group: attributes, datasets and subgroups."""

    attrs: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)


def _open_read(path: str | os.PathLike) -> h5py.File:
    p = Path(path)
    if not check_regular(p, what="HDF5 file"):  # a FIFO would hang the open
        raise LandscapeError(f"file '{p}' does not exist")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise LandscapeError(
            f"cannot read '{p}': not a valid HDF5 file (truncated or corrupted?)"
        ) from exc


def file_kind(path: str | os.PathLike) -> str:
    """Return ``"landscape"`` or ``"li2018"``; raise :class:`LandscapeError` for anything else."""
    with _open_read(path) as f:
        return _kind(f, path)


def _kind(f: h5py.File, path: str | os.PathLike) -> str:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt == FORMAT:
        ver = int(f.attrs.get("format_version", 0))
        if ver > FORMAT_VERSION:
            raise LandscapeError(
                f"'{path}' has landscape format version {ver}, newer than this tool's "
                f"({FORMAT_VERSION}); upgrade landscape to read it"
            )
        return "landscape"
    if "xcoordinates" in f and fmt is None:
        return "li2018"
    raise LandscapeError(
        f"'{path}' is an HDF5 file but not a landscape file (no format='landscape' attribute "
        "and no Li et al. 'xcoordinates' dataset)"
    )


def root_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes of a landscape file."""
    with _open_read(path) as f:
        _kind(f, path)
        return {k: _decode(v) for k, v in f.attrs.items()}


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _read(g: h5py.Group) -> Group:
    out = Group(attrs={k: _decode(v) for k, v in g.attrs.items()})
    for k, v in g.items():
        if isinstance(v, h5py.Dataset):
            out.datasets[k] = v[()]
        else:
            out.groups[k] = _read(v)
    return out


def read_group(path: str | os.PathLike, name: str) -> Group | None:
    """Read a top-level group of a landscape file into memory (``None`` if absent)."""
    with _open_read(path) as f:
        if _kind(f, path) != "landscape":
            raise LandscapeError(f"'{path}' is a Li et al. file; it has no group '{name}'")
        if name not in f:
            return None
        try:
            return _read(f[name])
        except (OSError, KeyError) as exc:
            raise LandscapeError(
                f"cannot read group '{name}' of '{path}': the file is damaged"
            ) from exc


def require_group(path: str | os.PathLike, name: str, missing: str) -> Group:
    """Read the top-level group ``name`` of a landscape file, refusing links in it (see
    :func:`check_no_links`): the ``load`` of a result class. Where the group is absent, a
    :class:`LandscapeError` ``'<path>' <missing>`` (``missing`` says what the file lacks and
    how to write it)."""
    check_no_links(path, name)
    g = read_group(path, name)
    if g is None:
        raise LandscapeError(f"'{path}' {missing}")
    return g


def _outline(g: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {"attrs": {k: _decode(v) for k, v in g.attrs.items()},
                           "datasets": {}, "groups": {}}
    for k, v in g.items():
        if isinstance(v, h5py.Dataset):
            out["datasets"][k] = (tuple(v.shape), str(v.dtype))
        else:
            out["groups"][k] = _outline(v)
    return out


def outline(path: str | os.PathLike) -> dict[str, Any]:
    """Attributes and dataset shapes/dtypes of every group, without reading array data."""
    with _open_read(path) as f:
        kind = _kind(f, path)
        try:
            return {"kind": kind, **_outline(f)}
        except (OSError, KeyError) as exc:
            raise LandscapeError(f"cannot read '{path}': the file is damaged") from exc


def list_groups(path: str | os.PathLike) -> list[str]:
    """Top-level group names of a landscape file."""
    with _open_read(path) as f:
        _kind(f, path)
        return [k for k, v in f.items() if isinstance(v, h5py.Group)]


def _write(g: h5py.Group, data: Group) -> None:
    for k, v in data.attrs.items():
        g.attrs[k] = v
    for k, arr in data.datasets.items():
        g.create_dataset(k, data=arr)
    for k, sub in data.groups.items():
        _write(g.create_group(k), sub)


def update_file(
    path: str | os.PathLike,
    groups: Mapping[str, Group | None],
    *,
    overwrite: bool = False,
) -> None:
    """Atomically write top-level ``groups`` into the landscape file at ``path``.

    Groups of an existing landscape file that are not named in ``groups`` are kept; a group
    mapped to ``None`` is removed. With ``overwrite=True`` an existing *landscape* file is
    replaced and nothing of it is kept; files of any other kind are never replaced. The root
    attribute ``created`` of an existing file is kept so that rewriting the same content gives
    the same bytes. A symbolic link is followed (its target is replaced, the link stays).

    The read-modify-write runs under :func:`~landscape._atomic.output_lock` (waiting up to
    30 s for another writer), so two processes adding different groups never lose one.
    The file is built in memory and written with :func:`~landscape._atomic.write_bytes`: a full
    disk ends in a :class:`LandscapeError` with the previous file intact.

    Raises
    ------
    LandscapeError
        If ``path`` exists but is not a landscape file, or if the directory is not writable
        or the disk is full.
    """
    with output_lock(path, wait=30.0) as p:
        keep: dict[str, Group] = {}
        created = None
        if check_regular(p, what="HDF5 file"):
            _check_replaceable(p, overwrite)
            if not overwrite:
                with _open_read(p) as f:
                    created = _decode(f.attrs.get("created"))
                    for k, v in f.items():
                        if k not in groups and isinstance(v, h5py.Group):
                            keep[k] = _read(v)
        if created is None:
            created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise LandscapeError(f"cannot write '{p}': directory '{parent}' does not exist")
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            f.attrs["format"] = FORMAT
            order = sorted(set(keep) | {k for k, v in groups.items() if v is not None})
            f.attrs["format_version"] = format_version_of(order)
            f.attrs["tool_version"] = __version__
            f.attrs["created"] = created
            for k in order:
                data = groups.get(k) if k in groups else keep[k]
                if data is not None:
                    _write(f.create_group(k), data)
        write_bytes(p, buf.getbuffer())


def _check_replaceable(p: Path, overwrite: bool) -> None:
    """An existing file may be updated only if it is a landscape file, and replaced
    (``overwrite``) only then too: a checkpoint, a Li et al. file or anything else is the
    user's data."""
    try:
        kind = file_kind(p)
    except LandscapeError as exc:
        raise LandscapeError(
            f"'{p}' exists and is not a landscape file ({exc}); refusing to replace it"
            + (" even with overwrite" if overwrite else "")
            + ": choose another output file or move it away yourself"
        ) from None
    if kind != "landscape":
        raise LandscapeError(
            f"'{p}' is a Li et al. file; refusing to modify it"
            + (" even with overwrite" if overwrite else "")
            + " (choose another output file)"
        )


def check_writable(path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Fail early (before any computation) if ``path`` cannot be written as a landscape file.

    Raises
    ------
    LandscapeError
        If the directory is missing or not writable, ``path`` is a directory or another
        non-regular file (FIFO, device), or an existing file is not a landscape file (with or
        without ``overwrite``: only landscape files are ever replaced).
    """
    p = resolve_target(path)
    parent = p.parent if str(p.parent) else Path(".")
    exists = check_regular(p, what="HDF5 file")
    if not parent.is_dir():
        raise LandscapeError(f"cannot write '{p}': directory '{parent}' does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LandscapeError(f"cannot write '{p}': directory '{parent}' is not writable")
    if exists:
        _check_replaceable(p, overwrite)


def read_li2018(path: str | os.PathLike) -> dict[str, Any]:
    """Read a surface file written by Li et al.'s ``plot_surface.py``.

    Their code fills every array with -1 and writes each finished point into it; the train and
    test arrays are computed in separate passes, so one may be finished where the other is not.
    Every array therefore has its own completion mask.

    Returns
    -------
    dict
        ``x``, ``y`` (or None), ``arrays`` (name -> array shaped ``(ny, nx)`` or ``(nx,)``,
        accuracies converted from percent to fractions, unfinished points NaN),
        ``done_per_array`` (name -> mask, value != -1), ``done`` (the points where every
        ``*_loss``/``*_acc`` array is finished), ``dir_file`` (str or None). ``max_eig`` and
        ``min_eig`` arrays are read like the others.

    Raises
    ------
    LandscapeError
        If the coordinates are not 1-D numbers, or a ``*_loss``/``*_acc`` dataset is not
        numeric or does not hold one value per grid point (naming the file and dataset).
    """
    with _open_read(path) as f:
        if _kind(f, path) != "li2018":
            raise LandscapeError(f"'{path}' is not a Li et al. surface file")
        x = _li_coordinates(f, "xcoordinates", path)
        y = _li_coordinates(f, "ycoordinates", path) if "ycoordinates" in f else None
        shape = (len(y), len(x)) if y is not None else (len(x),)
        n = int(np.prod(shape))
        arrays: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        for k, v in f.items():
            if not isinstance(v, h5py.Dataset) or k in ("xcoordinates", "ycoordinates"):
                continue
            grid_array = k.endswith("_loss") or k.endswith("_acc")
            if k == "dir_file" or (v.dtype.kind not in "fiub" and not grid_array):
                continue
            if v.dtype.kind not in "fiub" or v.size != n:
                if not grid_array:
                    continue
                grid = f"{len(x)}x{len(y)}" if y is not None else f"{len(x)}-point"
                raise LandscapeError(
                    f"'{path}': dataset '{k}' has {v.size} {v.dtype} value(s) of shape "
                    f"{v.shape}; expected {n} numbers, one per point of the {grid} grid"
                )
            # their arrays have shape (nx, ny) but are filled in raster order of
            # meshgrid(x, y), i.e. flat index iy * nx + ix: reshaped, they are Z[iy, ix]
            a = np.asarray(v[()], dtype=np.float64).reshape(shape)
            unfinished = a == -1
            a = np.where(unfinished, np.nan, a)
            if k.endswith("_acc"):
                a = a / 100.0
            arrays[k] = a
            masks[k] = ~unfinished
        done = np.ones(shape, dtype=bool)
        for k, m in masks.items():
            if k.endswith("_loss") or k.endswith("_acc"):
                done &= m
        dir_file = None
        if "dir_file" in f:
            dir_file = _decode(f["dir_file"][()])
        elif "dir_file" in f.attrs:
            dir_file = _decode(f.attrs["dir_file"])
    return {"x": x, "y": y, "arrays": arrays, "done": done, "done_per_array": masks,
            "dir_file": dir_file}


def dumps(obj: Any) -> str:
    """Canonical JSON used for recipe/provenance attributes."""
    return json.dumps(obj, sort_keys=True, default=str)


def _li_coordinates(f: h5py.File, name: str, path: str | os.PathLike) -> np.ndarray:
    """A coordinate dataset of a Li et al. file as a 1-D float64 array (checked)."""
    v = f[name]
    if not isinstance(v, h5py.Dataset) or v.dtype.kind not in "fiu" or v.ndim != 1 \
            or v.size == 0:
        what = f"{v.dtype} of shape {v.shape}" if isinstance(v, h5py.Dataset) else "a group"
        raise LandscapeError(
            f"'{path}': '{name}' is {what}; expected a 1-D array of coordinates"
        )
    return np.asarray(v[()], dtype=np.float64)


def check_no_links(path: str | os.PathLike, name: str | None = None) -> None:
    """Refuse soft and external HDF5 links in the group ``name`` (or anywhere in the file).

    This tool never writes links. An external link makes a file read another file (which may
    be missing, or change underneath it); a soft link may loop. Both are refused with one
    message naming the link and its target.

    Raises
    ------
    LandscapeError
        If ``path`` cannot be read or holds a link.
    """
    with _open_read(path) as f:
        if not _is_li2018_directions(f):
            _kind(f, path)
        if name is not None and name not in f and f.get(name, getlink=True) is None:
            return
        todo = [name] if name is not None else list(f.keys())
        while todo:
            key = todo.pop()
            link = f.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise LandscapeError(
                    f"'{path}': /{key} is an external link to '{link.filename}:{link.path}'; "
                    "a landscape file must hold its data itself -- read that file instead"
                )
            if isinstance(link, h5py.SoftLink):
                raise LandscapeError(
                    f"'{path}': /{key} is a soft link to '{link.path}'; a landscape file "
                    "must hold its data itself"
                )
            obj = f.get(key)
            if isinstance(obj, h5py.Group):
                todo.extend(f"{key}/{k}" for k in obj.keys())


#: Groups of a direction file written by Li et al.'s ``net_plotter.setup_direction``.
LI2018_DIRECTION_GROUPS = ("xdirection", "ydirection")


def _is_li2018_directions(f: h5py.File) -> bool:
    return ("format" not in f.attrs and "xcoordinates" not in f
            and isinstance(f.get("xdirection", getlink=True), h5py.HardLink)
            and isinstance(f["xdirection"], h5py.Group))


def is_li2018_directions(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a direction file of Li et al. (``xdirection``/``ydirection`` groups
    of datasets ``'0'``..``'N-1'``, written by their ``h5_util.write_list``)."""
    with _open_read(path) as f:
        return _is_li2018_directions(f)


def read_li2018_directions(path: str | os.PathLike, *, data: bool = True
                           ) -> dict[str, list[Any]]:
    """The positional tensors of a Li et al. direction file, per group.

    Parameters
    ----------
    path : path
        The file.
    data : bool, default=True
        Read the arrays; ``False`` gives ``(shape, dtype)`` pairs instead (for ``info``).

    Returns
    -------
    dict
        ``"xdirection"`` (and ``"ydirection"`` if present) -> list of arrays in dataset order
        ``'0'``, ``'1'``, ... (the order of ``net.parameters()`` or of ``state_dict()``).

    Raises
    ------
    LandscapeError
        If it is not such a file, a name is not ``'0'``..``'N-1'``, a dataset is not numeric,
        or the two directions have different numbers of tensors.
    """
    out: dict[str, list[Any]] = {}
    with _open_read(path) as f:
        if not _is_li2018_directions(f):
            raise LandscapeError(f"'{path}' is not a Li et al. direction file (no /xdirection)")
        for gname in LI2018_DIRECTION_GROUPS:
            if gname not in f:
                continue
            g = f[gname]
            keys = sorted(g.keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0))
            if keys != [str(i) for i in range(len(keys))] or not keys:
                raise LandscapeError(
                    f"'{path}': /{gname} must hold datasets named '0'..'N-1' (one per tensor); "
                    f"it holds {keys[:5]}"
                )
            items = []
            for k in keys:
                v = g.get(k, getlink=True)
                if not isinstance(v, h5py.HardLink) or not isinstance(g[k], h5py.Dataset) \
                        or g[k].dtype.kind not in "fiu":
                    raise LandscapeError(
                        f"'{path}': /{gname}/{k} is not a numeric dataset; expected one "
                        "direction tensor"
                    )
                d = g[k]
                items.append(np.asarray(d[()]) if data else (tuple(d.shape), str(d.dtype)))
            out[gname] = items
    if len(out) == 2 and len(out["xdirection"]) != len(out["ydirection"]):
        raise LandscapeError(
            f"'{path}': /xdirection has {len(out['xdirection'])} tensors but /ydirection "
            f"{len(out['ydirection'])}"
        )
    return out
