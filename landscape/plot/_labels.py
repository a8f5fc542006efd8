"""Text placement shared by the picture modules: contour labels that overlap nothing, and the
renderer they are measured with.

Labels are placed after the figure's layout is done (``fig.draw_without_rendering()``), in
display space: for every labelled level, candidate points along its longest lines are tried
and the one farthest from the labels already placed is kept, unless its box leaves the axes or
touches another text, the legend, or a point to keep clear (a path, a marker).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.transforms import Bbox

#: Padding (pixels at the figure's dpi) kept free around a label.
PAD = 2.0


def renderer_of(fig: Any) -> Any:
    """A renderer for ``fig`` after its layout is done (an Agg canvas is attached if the
    figure has none that can measure text); ``None`` if it cannot be had."""
    root = getattr(fig, "figure", fig) or fig
    canvas = root.canvas
    if not hasattr(canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(root)
    try:
        root.draw_without_rendering()
        return canvas.get_renderer()
    except Exception:  # pragma: no cover - a backend without an Agg renderer
        return None


def visible_text_boxes(ax: Axes, renderer: Any) -> list[Bbox]:
    """Boxes of the texts and the legend drawn inside ``ax``."""
    out = []
    for t in ax.texts:
        if t.get_visible() and t.get_text().strip():
            out.append(t.get_window_extent(renderer))
    leg = ax.get_legend()
    if leg is not None and leg.get_visible():
        out.append(leg.get_window_extent(renderer))
    return out


def _overlaps(a: tuple[float, float, float, float], boxes: Sequence[tuple]) -> bool:
    x0, y0, x1, y1 = a
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes)


def _text_size(ax: Axes, text: str, fontsize: float, renderer: Any) -> tuple[float, float]:
    from matplotlib.text import Text

    t = Text(0, 0, text, fontsize=fontsize)
    t.set_figure(ax.figure)
    bb = t.get_window_extent(renderer)
    return float(bb.width), float(bb.height)


def place_contour_labels(
    ax: Axes,
    cs: Any,
    levels: Sequence[float],
    fmt: Callable[[float], str],
    *,
    fontsize: float = 7.0,
    avoid: np.ndarray | None = None,
    renderer: Any = None,
) -> list[Any]:
    """Label the contour lines of ``levels`` where the labels overlap nothing.

    Parameters
    ----------
    ax : Axes
    cs : ContourSet
        Contour lines drawn in ``ax``.
    levels : sequence of float
        Levels of ``cs`` to label (at most one label each; a level without room gets none).
    fmt : callable
        Label text of a level.
    fontsize : float, default=7
    avoid : np.ndarray, shape (m, 2), optional
        Data points that no label may cover (a path, a marker).
    renderer : optional
        From :func:`renderer_of` (one layout pass for several panels); default a new one.

    Returns
    -------
    list of Text
        The labels drawn.
    """
    renderer = renderer if renderer is not None else renderer_of(ax.figure)
    cs_levels = np.asarray(cs.levels, dtype=np.float64)
    wanted = [lv for lv in levels if np.any(np.isclose(cs_levels, lv, rtol=1e-9, atol=0))]
    if not wanted:
        return []
    if renderer is None:  # pragma: no cover - cannot measure: matplotlib's own placement
        return list(ax.clabel(cs, wanted, inline=True, fontsize=fontsize, fmt=fmt))
    bb = ax.get_window_extent(renderer)
    inner = (bb.x0 + PAD, bb.y0 + PAD, bb.x1 - PAD, bb.y1 - PAD)
    taken = [tuple(b.extents) for b in visible_text_boxes(ax, renderer)]
    keep_clear = (ax.transData.transform(np.asarray(avoid, dtype=np.float64))
                  if avoid is not None and len(avoid) else np.zeros((0, 2)))
    placed: list[tuple[float, float]] = []
    positions, chosen = [], []
    paths = cs.get_paths()
    for lv in wanted:
        i = int(np.argmin(np.abs(cs_levels - lv)))
        if i >= len(paths):
            continue
        w, h = _text_size(ax, fmt(float(cs_levels[i])), fontsize, renderer)
        best, best_score = None, -1.0
        for poly in paths[i].to_polygons(closed_only=False):
            if len(poly) < 2:
                continue
            disp = ax.transData.transform(poly)
            seg = np.hypot(*np.diff(disp, axis=0).T)
            arc = np.concatenate([[0.0], np.cumsum(seg)])
            if arc[-1] < 1.5 * w:
                continue
            for s in np.arange(0.75 * w, arc[-1] - 0.75 * w + 1e-9, max(w / 3, 4.0)):
                c = np.array([np.interp(s, arc, disp[:, 0]), np.interp(s, arc, disp[:, 1])])
                a = np.array([np.interp(s - w / 2, arc, disp[:, 0]),
                              np.interp(s - w / 2, arc, disp[:, 1])])
                b = np.array([np.interp(s + w / 2, arc, disp[:, 0]),
                              np.interp(s + w / 2, arc, disp[:, 1])])
                ang = math.atan2(b[1] - a[1], b[0] - a[0])
                cw = abs(w * math.cos(ang)) + abs(h * math.sin(ang))
                ch = abs(w * math.sin(ang)) + abs(h * math.cos(ang))
                box = (c[0] - cw / 2 - PAD, c[1] - ch / 2 - PAD,
                       c[0] + cw / 2 + PAD, c[1] + ch / 2 + PAD)
                if box[0] < inner[0] or box[1] < inner[1] or box[2] > inner[2] \
                        or box[3] > inner[3] or _overlaps(box, taken):
                    continue
                if keep_clear.size and np.any(
                        (keep_clear[:, 0] > box[0]) & (keep_clear[:, 0] < box[2])
                        & (keep_clear[:, 1] > box[1]) & (keep_clear[:, 1] < box[3])):
                    continue
                edge = min(box[0] - inner[0], inner[2] - box[2], box[1] - inner[1],
                           inner[3] - box[3])
                near = min((math.hypot(c[0] - p[0], c[1] - p[1]) for p in placed),
                           default=1e6)
                score = min(near, 4 * edge + 20)
                if score > best_score:
                    best, best_score = (c, box), score
        if best is not None:
            c, box = best
            taken.append(box)
            placed.append((float(c[0]), float(c[1])))
            positions.append(tuple(ax.transData.inverted().transform(c)))
            chosen.append(float(cs_levels[i]))
    if not positions:
        return []
    before = set(map(id, ax.texts))
    obstacles = [tuple(b.extents) for b in visible_text_boxes(ax, renderer)]
    ax.clabel(cs, sorted(set(chosen)), inline=True, fontsize=fontsize, fmt=fmt,
              manual=positions)
    # matplotlib snaps each label to the nearest contour vertex and rotates it its own way:
    # check the boxes it drew and drop a label that touches something after all
    kept = []
    for t in [t for t in ax.texts if id(t) not in before]:
        x0, y0, x1, y1 = t.get_window_extent(renderer).extents
        box = (x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5)
        inside = x0 >= bb.x0 and y0 >= bb.y0 and x1 <= bb.x1 and y1 <= bb.y1
        if inside and not _overlaps(box, obstacles):
            obstacles.append(box)
            kept.append(t)
            continue
        t.remove()
        if isinstance(getattr(cs, "labelTexts", None), list) and t in cs.labelTexts:
            cs.labelTexts.remove(t)
    return kept


def freeze_legend(ax: Axes, renderer: Any) -> None:
    """Pin a ``loc="best"`` legend where the last layout put it, so that labels placed
    afterwards do not make it move onto them."""
    leg = ax.get_legend()
    if leg is None or renderer is None:
        return
    bb = leg.get_window_extent(renderer).transformed(ax.transAxes.inverted())
    leg.set_loc((float(bb.x0), float(bb.y0)))


def thin_texts(ax: Axes, texts: Sequence[Any], renderer: Any,
               avoid: np.ndarray | None = None) -> None:
    """Remove those of ``texts`` that overlap another text of ``ax`` (the others are kept
    first, then ``texts`` in order), cover a point of ``avoid`` or leave the axes."""
    if renderer is None or not texts:
        return
    mine = set(map(id, texts))
    taken = [tuple(t.get_window_extent(renderer).extents) for t in ax.texts
             if id(t) not in mine and t.get_visible() and t.get_text().strip()]
    leg = ax.get_legend()
    if leg is not None:
        taken.append(tuple(leg.get_window_extent(renderer).extents))
    bb = ax.get_window_extent(renderer)
    clear = (ax.transData.transform(np.asarray(avoid, dtype=np.float64))
             if avoid is not None and len(avoid) else np.zeros((0, 2)))
    for t in texts:
        x0, y0, x1, y1 = t.get_window_extent(renderer).extents
        box = (x0 - 1, y0 - 1, x1 + 1, y1 + 1)
        out = x0 < bb.x0 or y0 < bb.y0 or x1 > bb.x1 or y1 > bb.y1
        covers = clear.size and np.any((clear[:, 0] > box[0]) & (clear[:, 0] < box[2])
                                       & (clear[:, 1] > box[1]) & (clear[:, 1] < box[3]))
        if out or covers or _overlaps(box, taken):
            t.remove()
        else:
            taken.append(box)
