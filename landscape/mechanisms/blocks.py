"""Residual blocks of a network: finding them, splitting them, and rerouting them.

A *block* is a module whose forward is ``post(s(x) + F(x))``: a shortcut ``s`` (the identity,
or a projection where the shape changes), a branch ``F`` and an optional element-wise ``post``
(the ReLU after the addition of a post-activation ResNet). Its plain twin computes
``post(F(x))``. The analyses of :mod:`landscape.mechanisms` change a block's forward while
they run (:func:`rerouted`):

- ``"lesion"``: a residual block keeps only its shortcut, ``post(s(x))``; a plain block
  becomes the identity, which needs the input and output shapes to agree (see
  :attr:`Block.deletable`);
- ``"skip"`` / ``"branch"``: the forward is unchanged, but the backward pass goes only
  through the shortcut (``post(s(x) + F(x).detach())``) or only through the branch
  (``post(s(x).detach() + F(x))``). Summed over all ``2^n`` choices, these backward passes
  give exactly the ordinary gradient (the backward pass is linear in the block Jacobians
  ``D (J_s + J_F)``), which is what the path-length analysis of Veit et al. (2016) samples.

Built-in blocks (found automatically by :func:`find_blocks`):

======================================  ===================================================
:class:`~landscape.models.BasicBlock`   ``F = bn2(conv2(relu(bn1(conv1(x)))))``, ``s = x`` or
                                        ``downsample(x)``, ``post = relu``
:class:`~landscape.models.Bottleneck`   three convolutions, same shortcut and ``post``
:class:`~landscape.models.PreActBlock`  ``F = branch(relu(bn1(x)))``, ``s = x`` or
                                        ``downsample(relu(bn1(x)))``, no ``post``
:class:`~landscape.models.MLPBlock`     ``F = relu([bn](linear(h)))``, ``s = h``, no ``post``
======================================  ===================================================

Every built-in has a plain twin (``shortcut=False``) with the same modules. A user model's
blocks are named by a module-name glob (``blocks="encoder.layers.*"``); such a block must have
a callable attribute ``branch`` with ``forward(x) == x + branch(x)`` (identity shortcut, no
``post``), and may set ``shortcut = False`` for a plain twin whose forward is ``branch(x)``.
:func:`check_blocks` verifies the decomposition numerically on real inputs before any analysis
trusts it, so a block that does not have this form is refused, never silently mis-measured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import LandscapeError, check_option
from ..models import BasicBlock, Bottleneck, MLPBlock, PreActBlock

__all__ = ["Block", "MODES", "find_blocks", "check_blocks", "rerouted", "block_inputs"]

#: Ways :func:`rerouted` can change a block.
MODES = ("normal", "lesion", "skip", "branch")

_KINDS = {BasicBlock: "resnet", Bottleneck: "resnet", PreActBlock: "preresnet", MLPBlock: "mlp"}


def _resnet_branch(m: nn.Module, x: Tensor) -> Tensor:
    out = m.relu(m.bn1(m.conv1(x)))
    if isinstance(m, Bottleneck):
        out = m.relu(m.bn2(m.conv2(out)))
        return m.bn3(m.conv3(out))
    return m.bn2(m.conv2(out))


@dataclass(frozen=True, eq=False)
class Block:
    """One residual (or plain) block of a network.

    Attributes
    ----------
    name : str
        Its qualified module name, e.g. ``"layer2.0"``.
    module : nn.Module
        The module itself.
    kind : {"resnet", "preresnet", "mlp", "user"}
        How it is split into shortcut and branch (see the module docstring).
    residual : bool
        Whether its forward adds the shortcut (``False`` for a plain twin).
    projection : bool
        Whether the shortcut is a projection (the block changes the shape: downsampling).
    """

    name: str
    module: nn.Module
    kind: str
    residual: bool
    projection: bool

    @property
    def deletable(self) -> bool:
        """Whether the block can be lesioned: always for a residual block (it keeps its
        shortcut), for a plain block only where its input and output shapes agree."""
        return self.residual or not self.projection

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(s(x), F(x))``: shortcut and branch outputs (the shortcut is computed even for a
        plain block, whose forward ignores it)."""
        m = self.module
        if self.kind == "resnet":
            s = x if m.downsample is None else m.downsample(x)
            return s, _resnet_branch(m, x)
        if self.kind == "preresnet":
            a = m.relu(m.bn1(x))
            return (x if m.downsample is None else m.downsample(a)), m.branch(a)
        if self.kind == "mlp":
            z = m.linear(x)
            if m.bn is not None:
                z = m.bn(z)
            return x, m.relu(z)
        return x, m.branch(x)

    def post(self, z: Tensor) -> Tensor:
        """The element-wise map after the addition (ReLU for post-activation ResNets)."""
        return self.module.relu(z) if self.kind == "resnet" else z

    def forward(self, x: Tensor, mode: str = "normal") -> Tensor:
        """The block's output under ``mode`` (one of :data:`MODES`)."""
        if mode == "lesion":
            if not self.residual:
                return x
            s, _ = self.parts(x)
            return self.post(s)
        s, f = self.parts(x)
        if not self.residual:
            return self.post(f)
        if mode == "skip":
            return self.post(s + f.detach())
        if mode == "branch":
            return self.post(s.detach() + f)
        return self.post(s + f)

    def branch(self, x: Tensor) -> Tensor:
        """The branch ``F(x)`` alone (before ``post``: a plain post-activation ResNet block is
        ``relu(F(x))``, not ``F(x)``)."""
        return self.parts(x)[1]


def _block_of(name: str, m: nn.Module) -> Block:
    kind = next((k for cls, k in _KINDS.items() if isinstance(m, cls)), "user")
    if kind == "user" and not callable(getattr(m, "branch", None)):
        raise LandscapeError(
            f"module '{name}' ({type(m).__name__}) matches the block pattern but has no callable "
            "'branch' attribute; a user block must compute forward(x) = x + branch(x)"
        )
    residual = getattr(m, "shortcut", True)
    if not isinstance(residual, bool):  # e.g. a module named 'shortcut'
        residual = True
    if kind == "mlp":
        projection = False
    elif kind == "user":
        projection = False
    else:
        projection = m.downsample is not None
    return Block(name, m, kind, residual, projection)


def find_blocks(model: nn.Module, pattern: str | Sequence[Block] | None = None) -> list[Block]:
    """The blocks of ``model`` in forward order (module registration order).

    Parameters
    ----------
    model : nn.Module
        The network.
    pattern : str, list of Block or None, default=None
        ``None``: every built-in block (:class:`~landscape.models.BasicBlock`,
        ``Bottleneck``, ``PreActBlock``, ``PreActBottleneck``, ``MLPBlock``). A string: a
        module-name glob naming the blocks, matched against the whole name: ``*`` matches
        within one dotted component (``"layers.*"`` is ``layers.0``, not ``layers.0.lin``),
        ``**`` across components, ``?`` one character; several globs may be separated by
        commas. A list of blocks is returned as is.

    Returns
    -------
    list of Block

    Raises
    ------
    LandscapeError
        If no block is found, or a matched user module has no ``branch``.
    """
    if pattern is not None and not isinstance(pattern, str):
        blocks = list(pattern)
        if not blocks or not all(isinstance(b, Block) for b in blocks):
            raise LandscapeError("The 'blocks' parameter must be a glob string or a list of Block")
        return blocks
    if pattern is None:
        found = [_block_of(n, m) for n, m in model.named_modules()
                 if any(isinstance(m, cls) for cls in _KINDS)]
        if not found:
            raise LandscapeError(
                f"{type(model).__name__} has no built-in residual blocks; name its blocks with a "
                "module-name glob (blocks='layers.*')"
            )
        return found
    globs = [g.strip() for g in pattern.split(",") if g.strip()]
    regexes = [_glob_regex(g) for g in globs]
    found = [_block_of(n, m) for n, m in model.named_modules()
             if n and any(r.fullmatch(n) for r in regexes)]
    if not found:
        names = [n for n, _ in model.named_modules() if n][:6]
        raise LandscapeError(
            f"no module of {type(model).__name__} matches the block pattern {pattern!r}; "
            f"module names look like {names}"
        )
    return found


def _glob_regex(glob: str) -> re.Pattern:
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = glob[i]
        out.append("[^.]*" if c == "*" else "[^.]" if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out))


@contextmanager
def rerouted(blocks: Sequence[Block], modes: Mapping[str, str]) -> Iterator[None]:
    """Run the named blocks in the given modes (``{block name: mode}``) inside the context.

    The module's ``forward`` is shadowed by an instance attribute and restored afterwards.

    Raises
    ------
    LandscapeError
        For an unknown mode, or a lesion of a block that is not :attr:`Block.deletable`.
    """
    by_name = {b.name: b for b in blocks}
    patched = []
    try:
        for name, mode in modes.items():
            check_option("mode", mode, MODES)
            b = by_name.get(name)
            if b is None:
                raise LandscapeError(f"no block named {name!r}; blocks are {list(by_name)[:6]}")
            if mode == "normal":
                continue
            if mode == "lesion" and not b.deletable:
                raise LandscapeError(
                    f"plain block '{name}' changes the shape; it cannot be replaced by the identity"
                )
            if "forward" in vars(b.module):
                raise LandscapeError(f"block '{name}' is already rerouted (nested rerouted?)")
            b.module.forward = (lambda x, _b=b, _m=mode: _b.forward(x, _m))  # type: ignore
            patched.append(b.module)
        yield
    finally:
        for m in patched:
            del m.forward


def block_inputs(model: nn.Module, blocks: Sequence[Block], x: Tensor,
                 keep_graph: bool = False) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Run ``model(x)`` and capture every block's input and output.

    Returns
    -------
    out, inputs, outputs
        The model output and, per block, its input and output tensors (detached unless
        ``keep_graph``).
    """
    ins: list[Tensor | None] = [None] * len(blocks)
    outs: list[Tensor | None] = [None] * len(blocks)
    handles = []
    for i, b in enumerate(blocks):
        def hook(_m, args, out, _i=i):
            ins[_i] = args[0] if keep_graph else args[0].detach()
            outs[_i] = out if keep_graph else out.detach()
        handles.append(b.module.register_forward_hook(hook))
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [b.name for b, v in zip(blocks, ins, strict=True) if v is None]
    if missing:
        raise LandscapeError(f"blocks {missing[:3]} were not called by the model's forward")
    return out, ins, outs  # type: ignore[return-value]


@torch.no_grad()
def check_blocks(model: nn.Module, blocks: Sequence[Block], x: Tensor) -> None:
    """Check on real inputs that every block's output is ``post(s(x) + F(x))`` (or
    ``post(F(x))`` for a plain one), i.e. that the split used by the analyses is right.

    Raises
    ------
    LandscapeError
        Naming the first block whose forward does not have that form.
    """
    _, ins, outs = block_inputs(model, blocks, x)
    for b, xi, yi in zip(blocks, ins, outs, strict=True):
        if not isinstance(xi, Tensor) or not isinstance(yi, Tensor):
            raise LandscapeError(f"block '{b.name}' must take and return one tensor")
        y2 = b.forward(xi)
        tol = 1e-4 if y2.dtype != torch.float64 else 1e-9
        if y2.shape != yi.shape or not torch.allclose(y2, yi, rtol=tol, atol=tol * (
                1 + float(yi.abs().max()))):
            what = "x + branch(x)" if b.kind == "user" else "its shortcut plus its branch"
            raise LandscapeError(
                f"block '{b.name}' ({type(b.module).__name__}) does not compute {what}; "
                "see landscape.mechanisms.blocks for what a block must look like"
            )
