"""Jupyter display of a surface: a PNG of its default picture and an HTML summary."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from html import escape as _escape
from typing import TYPE_CHECKING

import numpy as np

from ._style import add_note, default_array, describe_direction, direction_recipe
from .surfaces import plot_1d, plot_contour

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..surface import Surface

__all__ = ["surface_repr_png", "surface_repr_html"]


def _default_figure(surface: Surface, figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    name = default_array(surface)
    if name is None:
        add_note(ax, "surface without arrays")
    elif surface.ndim == 1:
        plot_1d(surface, ax=ax)
    else:
        plot_contour(surface, array=name, kind="contour", ax=ax)
    return fig


def surface_repr_png(surface: Surface, *, figsize: tuple[float, float] = (5.0, 4.0),
                     dpi: int = 80) -> bytes:
    """PNG bytes of the default picture of a surface (contour for 2D, curves for 1D).

    Meant for ``Surface._repr_png_`` so that a surface shows itself in Jupyter.

    Returns
    -------
    bytes
        A PNG image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _default_figure(surface, figsize)
    FigureCanvasAgg(fig)  # attaches itself to the figure: no pyplot, no backend switch
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _fmt_range(a: np.ndarray, done: np.ndarray) -> tuple[str, str, int]:
    vals = np.asarray(a, dtype=np.float64)[done]
    fin = vals[np.isfinite(vals)]
    bad = int(vals.size - fin.size)
    if fin.size == 0:
        return "–", "–", bad
    return f"{fin.min():.6g}", f"{fin.max():.6g}", bad


def _recipe_summary(surface: Surface) -> str:
    r = direction_recipe(surface)
    parts = []
    if r:
        parts.append("; ".join(
            f"{ax}: {d}" for ax, d in zip(("x", "y"), (describe_direction(r, i)
                                                      for i in range(surface.ndim)),
                                          strict=False) if d))
    rec = surface.recipe if isinstance(surface.recipe, Mapping) else {}
    for key in ("loss", "bn", "dtype"):
        if key in rec and rec[key] is not None:
            parts.append(f"{key} {rec[key]}")
    if isinstance(rec.get("model"), Mapping) and rec["model"].get("name"):
        parts.append(f"model {rec['model']['name']}")
    if isinstance(rec.get("data"), Mapping) and rec["data"].get("name"):
        parts.append(f"data {rec['data']['name']}")
    src = surface.provenance.get("source_format") if isinstance(surface.provenance,
                                                                Mapping) else None
    if src:
        parts.append(f"source {src}")
    return "; ".join(p for p in parts if p) or "–"


def surface_repr_html(surface: Surface) -> str:
    """A small HTML summary of a surface with its default picture inline.

    Meant for ``Surface._repr_html_``: grid, completion, value range of every array (over
    finished points), the direction recipe and a PNG (base64).

    Returns
    -------
    str
        An HTML fragment (a ``<div>`` with a ``<table>`` and an ``<img>``).
    """
    e = _escape
    x = np.asarray(surface.x, dtype=np.float64)
    if surface.y is None:
        grid = f"1D, {x.size} points, x ∈ [{x.min():g}, {x.max():g}]"
    else:
        y = np.asarray(surface.y, dtype=np.float64)
        grid = (f"2D, {y.size} × {x.size} (y × x), x ∈ [{x.min():g}, {x.max():g}], "
                f"y ∈ [{y.min():g}, {y.max():g}]")
    pct = 100.0 * surface.n_done / max(surface.n_points, 1)
    rows = [
        ("grid", e(grid)),
        ("completion", e(f"{surface.n_done}/{surface.n_points} points ({pct:.1f}%)")),
        ("recipe", e(_recipe_summary(surface))),
    ]
    arr_rows = []
    for k in sorted(surface.arrays):
        lo, hi, bad = _fmt_range(surface.arrays[k], surface.done_of(k))
        arr_rows.append(f"<tr><td>{e(k)}</td><td>{lo}</td><td>{hi}</td><td>{bad}</td></tr>")
    png = base64.b64encode(surface_repr_png(surface)).decode("ascii")
    head = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>"
                   for k, v in rows)
    arrays = ("<table><tr><th>array</th><th>min</th><th>max</th><th>non-finite</th></tr>"
              + "".join(arr_rows) + "</table>")
    return (
        "<div class='landscape-surface'>"
        f"<table>{head}<tr><th style='text-align:left'>arrays</th><td>{arrays}</td></tr>"
        "</table>"
        f"<img src='data:image/png;base64,{png}' alt='{e(default_array(surface) or '')}'/>"
        "</div>"
    )
