"""Small transformers with and without a residual stream: a ViT for 8x8 digits and a GPT.

Every transformer block wraps attention and the MLP in a residual: pre-LN
``x = x + attn(ln1(x)); x = x + mlp(ln2(x))`` (GPT-2, ViT) or post-LN
``x = ln1(x + attn(x)); x = ln2(x + mlp(x))`` (the original transformer). ``residual=False``
drops the ``x +`` of both (``x = attn(ln1(x))`` ..., or ``x = ln1(attn(x))`` ...): the network
becomes a plain stack with *exactly* the same modules and ``state_dict`` keys and shapes, the
transformer analogue of the plain ResNet twin.

Attention is written out, ``softmax(q k^T / sqrt(d)) v`` with an explicit causal mask for the
GPT, instead of :func:`torch.nn.functional.scaled_dot_product_attention`: PyTorch's fused
attention kernels have no double backward (pytorch #116350), and every curvature computation
of this package (Hessian-vector products, Lanczos, traces, densities, ratio maps) needs one.

:class:`ViT` treats ``patch_size`` x ``patch_size`` patches as tokens, prepends a class token,
adds learned position embeddings and classifies from the class token. :class:`GPT` reads token
ids ``(B, T)`` (e.g. ``a b =`` of :func:`landscape.data.modadd.modular_addition`) with causal
attention and returns the logits of the *next* token after the last position only, shape
``(B, num_classes)``: the task's answer, so that the ordinary classification loss, accuracy and
every tool that expects ``(B, K)`` logits work unchanged.

References
----------
.. [1] A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (post-LN).
.. [2] A. Radford et al., "Language Models are Unsupervised Multitask Learners", 2019 (pre-LN).
.. [3] A. Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
   Recognition at Scale", ICLR 2021.
.. [4] A. Power, Y. Burda, H. Edwards, I. Babuschkin and V. Misra, "Grokking: Generalization
   Beyond Overfitting on Small Algorithmic Datasets", 2022.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import LandscapeError, check_int, check_option
from ._common import check_bool, check_images

__all__ = ["Attention", "TransformerBlock", "ViT", "GPT", "NORMS"]

#: Where the LayerNorms sit.
NORMS = ("pre", "post")


class Attention(nn.Module):
    """Multi-head self-attention, computed explicitly (twice differentiable).

    Parameters
    ----------
    width : int
        Model width (divisible by ``heads``).
    heads : int
        Number of heads.
    causal : bool, default=False
        Mask attention to later positions.
    """

    def __init__(self, width: int, heads: int, causal: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        d = c // self.heads
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)
        if self.causal:
            future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        y = scores.softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, c))

    def extra_repr(self) -> str:
        return f"heads={self.heads}, causal={self.causal}"


class TransformerBlock(nn.Module):
    """Attention and MLP sublayers, each with a LayerNorm and (optionally) a residual.

    Parameters
    ----------
    width, heads : int
        Model width and attention heads.
    mlp_ratio : int
        Hidden features of the MLP per model feature.
    residual : bool
        Add each sublayer's input to its output (the residual stream).
    norm : {"pre", "post"}
        LayerNorm before each sublayer (inside the branch) or after each addition.
    causal : bool
        Causal attention.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int, residual: bool, norm: str,
                 causal: bool) -> None:
        super().__init__()
        self.residual = residual
        self.norm = norm
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, causal)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width)
        )

    def _add(self, x: Tensor, h: Tensor) -> Tensor:
        return x + h if self.residual else h

    def forward(self, x: Tensor) -> Tensor:
        if self.norm == "pre":
            x = self._add(x, self.attn(self.ln1(x)))
            return self._add(x, self.mlp(self.ln2(x)))
        x = self.ln1(self._add(x, self.attn(x)))
        return self.ln2(self._add(x, self.mlp(x)))

    def extra_repr(self) -> str:
        return f"residual={self.residual}, norm={self.norm!r}"


def _check_width(width: int, heads: int) -> tuple[int, int]:
    width = check_int("width", width, low=1)
    heads = check_int("heads", heads, low=1)
    if width % heads:
        raise LandscapeError(
            f"The 'width' parameter must be divisible by heads={heads}. Got {width!r} instead."
        )
    return width, heads


def _init_transformer(model: nn.Module) -> None:
    """PyTorch's default initialisation of the layers; LayerNorm 1 and 0.

    Not GPT-2's N(0, 0.02): with it, plain SGD (the trainer's optimizer) leaves a ViT on the
    digits at chance for 20 epochs, the signals of the class token being too small to learn
    from. The position embeddings are N(0, 0.02) as in ViT and GPT-2.
    """
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _Transformer(nn.Module):
    """Shared checks and the block stack of :class:`ViT` and :class:`GPT`."""

    def _setup(self, width: int, depth: int, heads: int, mlp_ratio: int, residual: bool,
               norm: str, causal: bool) -> None:
        self.width, self.heads = _check_width(width, heads)
        self.depth = check_int("depth", depth, low=1)
        self.mlp_ratio = check_int("mlp_ratio", mlp_ratio, low=1)
        self.residual = check_bool("residual", residual)
        self.norm = check_option("norm", norm, NORMS)
        self.blocks = nn.ModuleList(
            TransformerBlock(self.width, self.heads, self.mlp_ratio, self.residual, self.norm,
                             causal)
            for _ in range(self.depth)
        )
        # the final LayerNorm of pre-LN transformers; post-LN ones end with a LayerNorm
        # already and leave it unused (kept so that every variant has the same state_dict)
        self.ln_f = nn.LayerNorm(self.width)

    def _stack(self, h: Tensor) -> Tensor:
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h) if self.norm == "pre" else h

    def extra_repr(self) -> str:
        return (f"width={self.width}, depth={self.depth}, heads={self.heads}, "
                f"residual={self.residual}, norm={self.norm!r}")


class ViT(_Transformer):
    """A small Vision Transformer (class token, learned positions), sized for 8x8 digits.

    Parameters
    ----------
    image_size : int, default=8
        Side of the square input images (divisible by ``patch_size``).
    patch_size : int, default=4
        Side of a patch: ``(image_size / patch_size)^2`` tokens plus the class token (4 + 1
        for the digits; with 2x2 patches, 16 + 1 tokens, SGD at the demo's recipe leaves
        even the residual ViT at chance for 20 epochs).
    in_channels : int, default=1
        Channels of the images.
    num_classes : int, default=10
        Outputs of the head (on the class token).
    width : int, default=64
        Token features.
    depth : int, default=6
        Transformer blocks.
    heads : int, default=4
        Attention heads.
    mlp_ratio : int, default=2
        MLP hidden features per token feature.
    residual : bool, default=True
        ``False``: no residual stream (same ``state_dict``).
    norm : {"pre", "post"}, default="pre"
        LayerNorm placement.

    Examples
    --------
    >>> import torch
    >>> net = ViT()
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> ViT(residual=False, norm="post").load_state_dict(net.state_dict())
    <All keys matched successfully>
    """

    def __init__(
        self,
        image_size: int = 8,
        patch_size: int = 4,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 64,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: int = 2,
        residual: bool = True,
        norm: str = "pre",
    ) -> None:
        super().__init__()
        self.image_size = check_int("image_size", image_size, low=1)
        self.patch_size = check_int("patch_size", patch_size, low=1)
        if self.image_size % self.patch_size:
            raise LandscapeError(
                f"The 'patch_size' parameter must divide image_size={self.image_size}. "
                f"Got {patch_size!r} instead."
            )
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        w = _check_width(width, heads)[0]
        n_tokens = (self.image_size // self.patch_size) ** 2 + 1
        self.patch_embed = nn.Conv2d(self.in_channels, w, self.patch_size, self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, w))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, w))
        self._setup(width, depth, heads, mlp_ratio, residual, norm, causal=False)
        self.head = nn.Linear(w, self.num_classes)
        _init_transformer(self)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        check_images("ViT", x, self.in_channels)
        if x.shape[2] != self.image_size or x.shape[3] != self.image_size:
            raise LandscapeError(
                f"ViT expects {self.image_size}x{self.image_size} images. Got shape "
                f"{tuple(x.shape)} instead. Build it with image_size={x.shape[2]} for such data."
            )
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        h = torch.cat([cls, tokens], dim=1) + self.pos_embed
        return self.head(self._stack(h)[:, 0])


class GPT(_Transformer):
    """A small causal transformer that predicts the token after its input sequence.

    Parameters
    ----------
    vocab_size : int, default=98
        Input token ids are ``0 .. vocab_size - 1`` (97 numbers and ``=`` for modular
        addition mod 97).
    seq_len : int, default=3
        Input length (``a b =``); shorter inputs are accepted.
    num_classes : int, default=97
        Output logits: the possible answers.
    width : int, default=128
        Token features.
    depth : int, default=2
        Transformer blocks.
    heads : int, default=4
        Attention heads.
    mlp_ratio : int, default=4
        MLP hidden features per token feature.
    residual : bool, default=True
        ``False``: no residual stream (same ``state_dict``).
    norm : {"pre", "post"}, default="pre"
        LayerNorm placement.

    Notes
    -----
    ``forward`` takes int64 token ids of shape ``(B, T)``; floating-point inputs holding whole
    numbers are accepted too (converted to int64), for tools that cast inputs to the model's
    dtype. It returns logits ``(B, num_classes)`` for the next token after position ``T - 1``
    only -- the answer of the modular-addition task -- so the standard classification loss
    and accuracy apply; it is not trained on the other positions (they are given, not
    predicted, in Power et al.'s task as well).

    Examples
    --------
    >>> import torch
    >>> net = GPT()
    >>> net(torch.tensor([[3, 5, 97]])).shape
    torch.Size([1, 97])
    """

    def __init__(
        self,
        vocab_size: int = 98,
        seq_len: int = 3,
        num_classes: int = 97,
        width: int = 128,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 4,
        residual: bool = True,
        norm: str = "pre",
    ) -> None:
        super().__init__()
        self.vocab_size = check_int("vocab_size", vocab_size, low=1)
        self.seq_len = check_int("seq_len", seq_len, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        w = _check_width(width, heads)[0]
        self.tok_embed = nn.Embedding(self.vocab_size, w)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.seq_len, w))
        self._setup(width, depth, heads, mlp_ratio, residual, norm, causal=True)
        self.head = nn.Linear(w, self.num_classes)
        _init_transformer(self)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or not 1 <= x.shape[1] <= self.seq_len:
            raise LandscapeError(
                f"GPT expects token ids of shape (B, T) with T <= {self.seq_len}. "
                f"Got shape {tuple(x.shape)} instead."
            )
        if x.is_floating_point():
            ids = x.round().long()
            if not torch.equal(ids.to(x.dtype), x):
                raise LandscapeError("GPT expects integer token ids; got non-integer values")
            x = ids
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise LandscapeError(
                f"GPT token ids must be in 0..{self.vocab_size - 1} (vocab_size="
                f"{self.vocab_size}). Got ids from {int(x.min())} to {int(x.max())} instead."
            )
        h = self.tok_embed(x) + self.pos_embed[:, : x.shape[1]]
        return self.head(self._stack(h)[:, -1])
