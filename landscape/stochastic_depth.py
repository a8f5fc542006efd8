"""Stochastic depth (Huang et al. 2016): residual branches dropped at random during training.

A *unit* is one residual addition ``post(s(x) + F(x))`` of the network: a built-in residual
block of :func:`landscape.mechanisms.find_blocks` (``BasicBlock``, ``Bottleneck``,
``PreActBlock``, ``MLPBlock``), or one of the two sublayers (attention, MLP) of a
:class:`~landscape.models.transformer.TransformerBlock` with its residual stream. Units are
numbered ``l = 1 .. L`` in forward order and unit ``l`` is dropped with probability

    p_l = l / L * P            (the linear decay rule; ``P`` is the last unit's probability)

independently for every mini-batch (the whole unit for the whole batch, as in the paper). A
dropped unit computes its shortcut only, ``post(s(x))`` (the branch is not run, so its
BatchNorm statistics are not updated either); a kept unit computes ``post(s(x) + F(x) / (1 -
p_l))``.

Scaling. The paper trains with ``s(x) + F(x)`` and scales the branch by its survival
probability ``1 - p_l`` at test time. Here the scaling is *inverted*: the kept branch is
divided by ``1 - p_l`` during training, and at evaluation the network is the architecture as
built -- the same expected output, and a saved checkpoint is an ordinary model that every
analysis (surfaces, Hessians, lesions, paths) uses without any hook. The two choices differ
only by a rescaling of each branch's output, which its last BatchNorm (or linear) layer
absorbs. The inverted form needs ``p_l < 1``: a unit dropped always would never be trained,
and its output at evaluation would be that of its initialisation, so training refuses
``P = 1`` (:func:`drop_probabilities` and :func:`draw_drops` accept it).

A plain twin (``shortcut=False`` / ``residual=False``) has no shortcut to fall back on:
dropping a unit would cut the network in two, so models without residual units are refused.

References
----------
.. [1] G. Huang, Y. Sun, Z. Liu, D. Sedra and K. Q. Weinberger, "Deep Networks with
   Stochastic Depth", ECCV 2016.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .errors import LandscapeError, check_float, check_int

__all__ = ["ResidualUnit", "StochasticDepth", "draw_drops", "drop_probabilities",
           "residual_units"]


def drop_probabilities(n_units: int, p_last: float) -> list[float]:
    """The linear decay rule: ``p_l = l / L * p_last`` for ``l = 1 .. L``.

    Parameters
    ----------
    n_units : int
        ``L``, the number of residual units.
    p_last : float
        Drop probability of the last unit, in ``[0, 1]``.

    Returns
    -------
    list of float
        The drop probability of each unit, in forward order.
    """
    n = check_int("n_units", n_units, 1)
    p = check_float("p_last", p_last, 0.0, 1.0)
    return [p * (i + 1) / n for i in range(n)]


def draw_drops(probs: Tensor, generator: torch.Generator) -> Tensor:
    """Which units one mini-batch drops: ``u_l < p_l`` with ``u = torch.rand(L, generator)``.

    One ``torch.rand`` call of ``L`` float32 uniforms from ``generator`` per mini-batch (its
    state, saved with a run's resume state, fixes the masks of the rest of the run).

    Parameters
    ----------
    probs : Tensor, shape (L,)
        Drop probabilities (float32; see :func:`drop_probabilities`).
    generator : torch.Generator
        The seeded generator the draws come from.

    Returns
    -------
    Tensor of bool, shape (L,)
        ``True`` where the unit is dropped.
    """
    return torch.rand(probs.shape, generator=generator, dtype=torch.float32) < probs


@dataclass(frozen=True, eq=False)
class ResidualUnit:
    """One residual addition of a network.

    Attributes
    ----------
    name : str
        Module name, with ``:attn`` or ``:mlp`` for the sublayers of a transformer block.
    module : nn.Module
        The block that holds it.
    kind : {"block", "attn", "mlp"}
        A whole residual block (split by :class:`landscape.mechanisms.Block`), or a
        transformer sublayer.
    block : Any
        The :class:`~landscape.mechanisms.Block` of a ``"block"`` unit, else ``None``.
    """

    name: str
    module: nn.Module
    kind: str
    block: Any = None


def residual_units(model: nn.Module) -> list[ResidualUnit]:
    """The residual units of ``model`` in forward order (see the module docstring).

    Raises
    ------
    LandscapeError
        If the model has none, or has plain (no-shortcut) blocks.
    """
    from .mechanisms.blocks import find_blocks
    from .models.transformer import TransformerBlock

    units: list[ResidualUnit] = []
    plain: list[str] = []
    blocks = {}
    try:
        blocks = {b.module: b for b in find_blocks(model)}
    except LandscapeError:
        pass  # no built-in residual blocks (e.g. a transformer): looked for below
    for name, m in model.named_modules():
        if m in blocks:
            b = blocks[m]
            if not b.residual:
                plain.append(name)
            units.append(ResidualUnit(name, m, "block", b))
        elif isinstance(m, TransformerBlock):
            if not m.residual:
                plain.append(name)
            units += [ResidualUnit(f"{name}:attn", m, "attn"),
                      ResidualUnit(f"{name}:mlp", m, "mlp")]
    if plain:
        raise LandscapeError(
            f"stochastic depth needs residual blocks, and {type(model).__name__} has plain "
            f"ones (e.g. '{plain[0]}'): a dropped block keeps only its shortcut, and a plain "
            "twin has none, so dropping it would cut the network; set 'stochastic_depth' to 0 "
            "for plain twins")
    if not units:
        raise LandscapeError(
            f"stochastic depth needs residual blocks, and {type(model).__name__} has none "
            "(built-in ResNet, PreResNet, MLP and transformer blocks are recognised): there is "
            "no shortcut for a dropped block to fall back on; set 'stochastic_depth' to 0")
    return units


class StochasticDepth:
    """Stochastic depth installed on a model while it trains.

    Parameters
    ----------
    model : nn.Module
        A network with residual units (see :func:`residual_units`).
    p_last : float
        Drop probability of the last unit, in ``[0, 1)``.

    Attributes
    ----------
    units : list of ResidualUnit
        The units, in forward order.
    p : list of float
        Their drop probabilities (:func:`drop_probabilities`).
    probs : Tensor, shape (L,)
        The same in float32, as compared with the uniforms.
    dropped : Tensor of bool, shape (L,)
        The mask of the current mini-batch (set by :meth:`draw`).

    Examples
    --------
    >>> sd = StochasticDepth(model, 0.5)                                  # doctest: +SKIP
    >>> with sd.installed():                                               # doctest: +SKIP
    ...     sd.draw(generator); loss = loss_fn(model(x), y)
    """

    def __init__(self, model: nn.Module, p_last: float) -> None:
        p = check_float("stochastic_depth", p_last, 0.0, 1.0, closed="left")
        self.units = residual_units(model)
        self.p = drop_probabilities(len(self.units), p)
        self.probs = torch.tensor(self.p, dtype=torch.float32)
        # the kept branch's factor 1 / (1 - p_l)
        self._scale = [1.0 / (1.0 - q) for q in self.p]
        self.dropped = torch.zeros(len(self.units), dtype=torch.bool)

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records: the rule, ``P`` and each unit's name and probability."""
        return {"rule": "linear", "scaling": "inverted",
                "units": [{"name": u.name, "p": q}
                          for u, q in zip(self.units, self.p, strict=True)]}

    def draw(self, generator: torch.Generator) -> Tensor:
        """Draw the next mini-batch's mask (see :func:`draw_drops`) and return it."""
        self.dropped = draw_drops(self.probs, generator)
        return self.dropped

    @contextmanager
    def installed(self) -> Iterator[StochasticDepth]:
        """Inside the context, every unit's module runs with the current mask
        (:attr:`dropped`); the modules' own ``forward`` is restored afterwards."""
        modules: dict[nn.Module, list[int]] = {}
        for i, u in enumerate(self.units):
            modules.setdefault(u.module, []).append(i)
        patched = []
        try:
            for m, idx in modules.items():
                if "forward" in vars(m):
                    raise LandscapeError(f"block '{self.units[idx[0]].name}' is already "
                                         "rerouted; stochastic depth cannot be installed")
                m.forward = self._forward_of(idx)  # type: ignore[method-assign]
                patched.append(m)
            yield self
        finally:
            for m in patched:
                del m.forward

    def _forward_of(self, idx: list[int]) -> Any:
        units = [self.units[i] for i in idx]
        if units[0].kind == "block":
            i, b = idx[0], units[0].block

            def block_forward(x: Tensor) -> Tensor:
                if bool(self.dropped[i]):
                    return b.post(_shortcut(b, x))
                s, f = b.parts(x)
                return b.post(s + f * self._scale[i])
            return block_forward
        m = units[0].module
        ia, im = idx  # attention, then MLP

        def add(x: Tensor, i: int, branch: Any) -> Tensor:
            return x if bool(self.dropped[i]) else x + branch(x) * self._scale[i]

        def transformer_forward(x: Tensor) -> Tensor:
            if m.norm == "pre":
                x = add(x, ia, lambda h: m.attn(m.ln1(h)))
                return add(x, im, lambda h: m.mlp(m.ln2(h)))
            x = m.ln1(add(x, ia, m.attn))
            return m.ln2(add(x, im, m.mlp))
        return transformer_forward


def _shortcut(b: Any, x: Tensor) -> Tensor:
    """``s(x)`` of a built-in block, without running its branch."""
    m = b.module
    if b.kind == "resnet":
        return x if m.downsample is None else m.downsample(x)
    if b.kind == "preresnet":
        return x if m.downsample is None else m.downsample(m.relu(m.bn1(x)))
    return x  # mlp: identity
