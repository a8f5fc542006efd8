"""Pictures of surfaces, trajectories and curvature: the one package that imports matplotlib.

matplotlib is imported lazily, inside the functions, so ``import landscape`` stays light and
works without a display. Every ``plot_*`` function draws into the Axes it is given or, when
``ax`` is ``None``, into a new :class:`matplotlib.figure.Figure` that is *not* registered with
pyplot (nothing leaks into ``plt.gcf()``, nothing needs ``plt.close``); it returns the Axes
(or the Figure for several panels).

One module per concept:

- :mod:`~landscape.plot.surfaces`: :func:`plot_1d`, :func:`plot_contour`, :func:`plot_3d`,
  :func:`compare_panels`;
- :mod:`~landscape.plot.curvature`: :func:`plot_ratio_map`, :func:`plot_density`,
  :func:`compare_densities`, :func:`plot_block_spectra`;
- :mod:`~landscape.plot.topology`: :func:`plot_persistence` (persistence diagram of a
  surface);
- :mod:`~landscape.plot.trajectory`: :func:`plot_trajectory`, :func:`compare_trajectories`,
  :func:`path_values`;
- :mod:`~landscape.plot.export`: :func:`save_figure` (PNG, PDF, SVG), :func:`export_vtp`
  (ParaView), :func:`export_plotly_html` (optional plotly);
- :mod:`~landscape.plot.notebook`: :func:`surface_repr_png`, :func:`surface_repr_html`
  (Jupyter);
- :mod:`~landscape.plot.files`: :func:`plot_file`, everything a result file holds
  (``landscape plot``).

Data that are not finite are expected, not exceptional: points not yet computed (``done ==
0``) and diverged points (NaN or inf loss) are masked and leave gaps; diverged points are
marked with a red ``x``. An array with no finite value gives an empty panel with a note instead
of an error.

References
----------
Hao Li, Zheng Xu, Gavin Taylor, Christoph Studer, Tom Goldstein. "Visualizing the Loss
Landscape of Neural Nets". NeurIPS 2018.
"""

from __future__ import annotations

from ._style import KINDS_2D, auto_levels, masked_values
from .curvature import compare_densities, plot_block_spectra, plot_density, plot_ratio_map
from .export import FORMATS, export_plotly_html, export_vtp, save_figure
from .files import FIGURE_KINDS, FILE_KINDS, FigureKind, plot_file
from .notebook import surface_repr_html, surface_repr_png
from .surfaces import compare_panels, plot_1d, plot_3d, plot_contour
from .topology import plot_persistence
from .trajectory import compare_trajectories, path_values, plot_trajectory

__all__ = [
    "KINDS_2D",
    "FORMATS",
    "auto_levels",
    "masked_values",
    "plot_1d",
    "plot_contour",
    "plot_3d",
    "plot_trajectory",
    "plot_ratio_map",
    "plot_density",
    "plot_persistence",
    "compare_panels",
    "compare_trajectories",
    "compare_densities",
    "plot_block_spectra",
    "path_values",
    "save_figure",
    "export_vtp",
    "export_plotly_html",
    "surface_repr_png",
    "surface_repr_html",
    "plot_file",
    "FILE_KINDS",
    "FIGURE_KINDS",
    "FigureKind",
]
