"""Files of pictures and surfaces: PNG/PDF/SVG figures, ParaView ``.vtp`` and interactive
plotly HTML."""

from __future__ import annotations

import math
import os
from html import escape as _escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import LandscapeError, check_float, check_int
from ._output import atomic_write, figure_of
from ._style import axis_labels, masked_values, pretty, progress_note

if TYPE_CHECKING:  # pragma: no cover
    from ..surface import Surface

__all__ = ["FORMATS", "save_figure", "export_vtp", "export_plotly_html"]

#: File formats written by :func:`save_figure` (by extension).
FORMATS = ("png", "pdf", "svg")


def save_figure(fig_or_ax: Any, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write a Figure (or the Figure of an Axes) as PNG, PDF or SVG, chosen by extension.

    Parameters
    ----------
    fig_or_ax : Figure or Axes
        What to save.
    path : str or os.PathLike
        Output file ending in ``.png``, ``.pdf`` or ``.svg``; written atomically.
    dpi : int, default=150
        Resolution (raster parts).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    LandscapeError
        For another extension, or a missing or unwritable directory.
    """
    p = Path(path)
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise LandscapeError(
            f"cannot save a figure as '{p.name}': use a .png, .pdf or .svg file name"
        )
    dpi = check_int("dpi", dpi, 10, 2400)
    fig = figure_of(fig_or_ax)
    atomic_write(p, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))
    return p


def _grid_values(surface: Surface, array: str, log: bool, zmax: float | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    z = masked_values(surface, array)
    zz = np.ma.filled(z.astype(np.float64), np.nan)
    raw = zz.copy()
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = np.where(zz > 0, np.log10(np.where(zz > 0, zz, 1.0)), np.nan)
    if zmax is not None:
        zmax = check_float("zmax", zmax)
        zz = np.where(zz > zmax, zmax, zz)
    return zz, raw


def export_vtp(
    surface: Surface,
    path: str | os.PathLike,
    *,
    array: str = "train_loss",
    log: bool = False,
    zmax: float | None = None,
) -> Path:
    """Write a 2D surface as a ParaView file (VTK XML PolyData, ASCII).

    Points are the grid points ``(x, y, z)`` that are finished with a finite value (``z`` the
    value, ``log10`` of it with ``log=True``, capped at ``zmax``); polygons are the quads
    between four such neighbours; the point data hold the raw value (named after ``array``)
    and ``z``. No dependency beyond the standard library.

    Parameters
    ----------
    surface : Surface
        A 2D surface.
    path : str or os.PathLike
        Output file (``.vtp``), written atomically.
    array : str, default="train_loss"
        Array to export.
    log : bool, default=False
        Height ``log10(value)`` (non-positive values are left out).
    zmax : float, optional
        Cap on the height.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    LandscapeError
        For a 1D surface, an array with no finite finished value, or an unwritable path.
    """
    if surface.ndim != 2:
        raise LandscapeError("export_vtp needs a 2D surface; this one is 1D")
    p = Path(path)
    z, raw = _grid_values(surface, array, log, zmax)
    x = np.asarray(surface.x, dtype=np.float64)
    y = np.asarray(surface.y, dtype=np.float64)
    ny, nx = z.shape
    ok = np.isfinite(z)
    if not ok.any():
        raise LandscapeError(
            f"array {array!r} has no finished finite value" + (" > 0" if log else "")
            + "; nothing to export"
        )
    index = np.full((ny, nx), -1, dtype=np.int64)
    index[ok] = np.arange(int(ok.sum()))
    iy, ix = np.nonzero(ok)
    pts = np.column_stack([x[ix], y[iy], z[iy, ix]])
    vals = raw[iy, ix]
    quad = ok[:-1, :-1] & ok[:-1, 1:] & ok[1:, 1:] & ok[1:, :-1]
    qy, qx = np.nonzero(quad)
    conn = np.column_stack([index[qy, qx], index[qy, qx + 1], index[qy + 1, qx + 1],
                            index[qy + 1, qx]]) if qy.size else np.zeros((0, 4), np.int64)
    offsets = 4 * np.arange(1, len(conn) + 1)

    def nums(a: np.ndarray, per_line: int, fmt: str = "{:.10g}") -> str:
        flat = [fmt.format(v) for v in np.asarray(a).ravel().tolist()]
        return "\n".join(" ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line))

    name = _escape(array, quote=True)
    text = "\n".join([
        '<?xml version="1.0"?>',
        '<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian">',
        "  <PolyData>",
        f'    <Piece NumberOfPoints="{len(pts)}" NumberOfVerts="0" NumberOfLines="0" '
        f'NumberOfStrips="0" NumberOfPolys="{len(conn)}">',
        f'      <PointData Scalars="{name}">',
        f'        <DataArray type="Float64" Name="{name}" NumberOfComponents="1" '
        'format="ascii">',
        nums(vals, 6),
        "        </DataArray>",
        '        <DataArray type="Float64" Name="z" NumberOfComponents="1" format="ascii">',
        nums(pts[:, 2], 6),
        "        </DataArray>",
        "      </PointData>",
        "      <Points>",
        '        <DataArray type="Float64" NumberOfComponents="3" format="ascii">',
        nums(pts, 3),
        "        </DataArray>",
        "      </Points>",
        "      <Polys>",
        '        <DataArray type="Int64" Name="connectivity" format="ascii">',
        nums(conn, 4, "{:d}"),
        "        </DataArray>",
        '        <DataArray type="Int64" Name="offsets" format="ascii">',
        nums(offsets, 10, "{:d}"),
        "        </DataArray>",
        "      </Polys>",
        "    </Piece>",
        "  </PolyData>",
        "</VTKFile>",
        "",
    ])
    atomic_write(p, lambda fh: fh.write(text.encode("utf-8")))
    return p


def export_plotly_html(
    surface: Surface,
    path: str | os.PathLike,
    *,
    array: str = "train_loss",
) -> Path:
    """Write an interactive 3D surface as a self-contained HTML page (needs plotly).

    Parameters
    ----------
    surface : Surface
        A 2D surface.
    path : str or os.PathLike
        Output ``.html`` file, written atomically; plotly.js is embedded so the page works
        offline.
    array : str, default="train_loss"
        Array to draw (unfinished and non-finite points are gaps).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    LandscapeError
        If plotly is not installed, for a 1D surface or an unwritable path.
    """
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise LandscapeError(
            "plotly is not installed; pip install 'landscape[interactive]'"
        ) from None
    if surface.ndim != 2:
        raise LandscapeError("export_plotly_html needs a 2D surface; this one is 1D")
    p = Path(path)
    z = np.ma.filled(masked_values(surface, array), np.nan)
    zl: list[list[float | None]] = [[v if math.isfinite(v) else None for v in row]
                                    for row in z.tolist()]
    xlabel, ylabel = axis_labels(surface)
    fig = go.Figure(data=[go.Surface(x=np.asarray(surface.x).tolist(),
                                     y=np.asarray(surface.y).tolist(), z=zl,
                                     colorscale="Viridis", colorbar={"title": pretty(array)})])
    fig.update_layout(title=pretty(array) + progress_note(surface),
                      scene={"xaxis_title": xlabel, "yaxis_title": ylabel,
                             "zaxis_title": pretty(array)})
    page = fig.to_html(include_plotlyjs=True, full_html=True)
    atomic_write(p, lambda fh: fh.write(page.encode("utf-8")))
    return p
