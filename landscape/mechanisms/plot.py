"""Figures of the mechanism analyses (matplotlib, imported lazily).

Every function takes ``{label: result}`` so that several networks (e.g. residual and plain)
share one axis, draws on ``ax`` (a new figure when ``None``) and returns the axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["FIGURES", "plot_lesion", "plot_gradflow", "plot_dilution", "plot_path_lengths",
           "plot_shatter", "plot_sharpening", "plot_gates"]


def _axis(ax: Any) -> Any:
    if ax is None:  # a pyplot-free figure: nothing stays open in a long-lived process
        from matplotlib.figure import Figure

        ax = Figure(figsize=(5, 3.5)).add_subplot()
    return ax


def _finish(ax: Any, xlabel: str, ylabel: str, ylim: tuple[float, float] | None = None,
            fontsize: int = 8) -> Any:
    """Axis labels, limits and legend shared by every figure; returns the axis."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=fontsize)
    return ax


def plot_lesion(results: Mapping[str, Any], ax: Any = None) -> Any:
    """Error vs number of deleted blocks (mean and spread over draws), one curve per network;
    the chance level dashed."""
    ax = _axis(ax)
    chance = None
    for label, r in results.items():
        line = ax.errorbar(r.k, r.k_mean, yerr=r.k_std, marker="o", ms=3, capsize=2,
                           label=label)
        del line
        chance = r.chance_error
    if chance is not None and np.isfinite(chance):
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    return _finish(ax, "blocks deleted at random", "test error", ylim=(0, 1))


def plot_gradflow(results: Mapping[str, Any], ax: Any = None) -> Any:
    """Mean per-sample input-gradient norm at each block's input (log scale)."""
    ax = _axis(ax)
    for label, r in results.items():
        ax.semilogy(np.arange(len(r.input_grad)), r.input_grad, marker="o", ms=3, label=label)
    return _finish(ax, "block (input side 0)", "gradient norm at block input")


def plot_dilution(results: Mapping[str, Any], ax: Any = None) -> Any:
    """k-dilution per block (log scale; a linear block, ``k = inf``, is drawn at the top)."""
    ax = _axis(ax)
    for label, r in results.items():
        k = np.where(np.isinf(r.k), np.nan, r.k)
        ax.semilogy(np.arange(len(k)), k, marker="o", ms=3, label=label)
    return _finish(ax, "block", "k-dilution")


def plot_path_lengths(results: Mapping[str, Any], ax: Any = None) -> Any:
    """Share of the total gradient magnitude per path length (bars)."""
    ax = _axis(ax)
    width = 0.8 / max(1, len(results))
    for i, (label, r) in enumerate(results.items()):
        ax.bar(r.k + (i - (len(results) - 1) / 2) * width, r.fraction, width=width, label=label)
    return _finish(ax, "path length (branches on the path)", "share of gradient magnitude")


def plot_shatter(results: Mapping[str, Any], ax: Any = None) -> Any:
    """Lag-1 autocorrelation of the input gradient by depth."""
    ax = _axis(ax)
    for label, r in results.items():
        ax.plot(np.arange(len(r.corr)), r.corr[:, 1], marker="o", ms=3, label=label)
    return _finish(ax, "depth (block output; last: logits)", "gradient autocorrelation, lag 1")


def plot_sharpening(results: Mapping[str, Any], ax: Any = None) -> Any:
    """``lambda_max`` over epochs against ``2/eta`` (dotted) and ``(2 + 2 beta)/eta`` (dashed);
    for an Adam run also ``lambda_max(P^-1 H)`` (squares) against ``(2 + 2 beta1) / ((1 -
    beta1) eta)`` (dash-dotted; ``38/eta`` at ``beta1 = 0.9``)."""
    ax = _axis(ax)
    for label, r in results.items():
        (line,) = ax.semilogy(r.epochs, r.lambda_max, marker="o", ms=3, label=f"{label} λmax")
        ax.semilogy(r.epochs, r.threshold, ls=":", color=line.get_color(), label=f"{label} 2/η")
        if r.momentum > 0:
            ax.semilogy(r.epochs, r.threshold_momentum, ls="--", color=line.get_color(),
                        label=f"{label} (2+2β)/η")
        pre = getattr(r, "precond_lambda_max", None)
        if pre is not None:
            ax.semilogy(r.epochs, pre, marker="s", ms=3, ls="-", lw=1.5, color=line.get_color(),
                        alpha=0.7, label=f"{label} λmax(P⁻¹H)")
            b1 = r.beta1
            name = "38/η" if abs(b1 - 0.9) < 1e-12 else f"(2+2·{b1:g})/((1−{b1:g})η)"
            ax.semilogy(r.epochs, r.threshold_adam, ls="-.", color=line.get_color(),
                        label=f"{label} {name}")
    return _finish(ax, "epoch", "top Hessian eigenvalue", fontsize=7)


def plot_gates(results: Mapping[str, Any], ax: Any = None) -> Any:
    """Mean transform-gate openness ``T`` per highway layer (1 - T: the carried share)."""
    ax = _axis(ax)
    for label, r in results.items():
        ax.plot(np.arange(len(r.mean_gate)), r.mean_gate, marker="o", ms=3, label=label)
    return _finish(ax, "highway layer", "mean transform gate T", ylim=(0, 1))


#: The figure function of each result, by the result's HDF5 group (``Result.GROUP``).
FIGURES = {
    "lesion": plot_lesion,
    "path_lengths": plot_path_lengths,
    "gradflow": plot_gradflow,
    "dilution": plot_dilution,
    "shattering": plot_shatter,
    "sharpening": plot_sharpening,
    "gates": plot_gates,
}
