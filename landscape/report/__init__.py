"""Comparison reports: the landscapes of several networks side by side (e.g. a ResNet and its
plain twin), checked to come from the same recipe.

:func:`compare` reads one landscape HDF5 file per network -- each may hold a ``/surface``, a
``/trajectory``, a ``/curvature`` group and a ``/ratio_map``, read through their result
classes -- checks that they were computed with the same recipe
(:func:`check_comparable`), and gathers the numbers of :mod:`landscape.metrics` into a
:class:`Report`: a table with the networks as columns, every row with its human name, unit,
better direction and definition, saved as Markdown, a self-contained HTML page and JSON with
side-by-side pictures on shared scales and the provenance of every number.

Modules: :mod:`~landscape.report.results` (reading a network's files),
:mod:`~landscape.report.recipes` (the recipe check), :mod:`~landscape.report.numbers` (the
metrics of a network), :mod:`~landscape.report.provenance`,
:mod:`~landscape.report.render` (:class:`Report` and its text forms),
:mod:`~landscape.report.figures`, :mod:`~landscape.report.comparison` (:func:`compare`) and
:mod:`~landscape.report.files` (:func:`compare_files`: files named as on a command line, the
networks or arms of seeds, saved into a folder).
"""

from __future__ import annotations

from .comparison import compare
from .files import SavedComparison, compare_files
from .numbers import METRIC_KEYS
from .recipes import check_comparable
from .render import Report, definitions, metric_info, update_readme
from .results import NetworkResults, load_results

__all__ = ["METRIC_KEYS", "NetworkResults", "Report", "SavedComparison", "check_comparable",
           "compare", "compare_files", "definitions", "load_results", "metric_info",
           "update_readme"]
