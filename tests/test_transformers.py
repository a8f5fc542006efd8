"""HuggingFace and torch attention models through the batch/loss protocol (tiny configs built
in the test, nothing downloaded): losses equal the models' own ``.loss`` on the whole split as
one batch, and Hessians equal dense float64 ``torch.func`` references."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader, Dataset

from landscape.data import StreamData
from landscape.evaluation import Evaluator
from landscape.hessian import HessianOperator, top_eigen

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")
transformers.logging.set_verbosity_error()

LENGTHS = [5, 9, 3, 12, 7, 4]


class _Sequences(Dataset):
    """Variable-length token sequences (items are 1-D LongTensors)."""

    def __init__(self, vocab: int, lengths: list[int], seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.seqs = [torch.randint(0, vocab, (n,), generator=gen) for n in lengths]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.seqs[i]


def pad(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-pad a batch: attention_mask 0 and labels -100 on padding."""
    t = max(len(s) for s in items)
    ids = torch.zeros(len(items), t, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, s in enumerate(items):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
        labels[i, : len(s)] = s
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _gpt2(**kw):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = dict(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32)
    cfg.update(kw)
    model = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    assert model.lm_head.weight is model.transformer.wte.weight  # tied embeddings
    return model


def _own_loss(model, batch, params=None):
    params = dict(model.named_parameters()) if params is None else params
    with sdpa_kernel(SDPBackend.MATH):
        return torch.func.functional_call(model, params, (), batch).loss


@pytest.mark.parametrize("batch_size", [1, 3, len(LENGTHS)])
def test_gpt2_padded_loss_equals_own_loss_at_any_batch_size(batch_size):
    model = _gpt2()
    ds = _Sequences(50, LENGTHS)
    with torch.no_grad():
        ref = float(_own_loss(model, pad(ds.seqs)))
    loaders = {"loader": DataLoader(ds, batch_size=batch_size, collate_fn=pad),
               "dataset": StreamData(ds, collate_fn=pad)}
    ev = Evaluator(model, loaders, batch_size=batch_size)
    res = ev(dict(model.named_parameters()))
    for name, m in res.items():
        assert math.isclose(m.loss, ref, rel_tol=1e-6), (name, m.loss, ref)
        assert m.n == len(LENGTHS) and m.accuracy is not None and 0 <= m.accuracy <= 1
    assert ev.loss_fn.shift is True  # decided against the model's own shifted .loss


def _shifted_token_ce(model, batch, params):
    """The model's own causal-LM loss in float64: HF's loss upcasts the logits to float32, so
    the reference computes the same shifted token cross-entropy itself."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with sdpa_kernel(SDPBackend.MATH):
        logits = torch.func.functional_call(model, params, (), inputs).logits
    z, y = logits[:, :-1], batch["labels"][:, 1:]
    return nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))


def _dense_hessian(model, batch) -> np.ndarray:
    """Dense float64 Hessian of the whole split's causal-LM loss over named_parameters (ties
    deduplicated), by torch.func."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    names = list(params)
    sizes = [params[k].numel() for k in names]
    flat = torch.cat([params[k].reshape(-1) for k in names])

    def f(v):
        d = {k: t.reshape(params[k].shape) for k, t in zip(names, v.split(sizes), strict=True)}
        return _shifted_token_ce(model, batch, d)

    with sdpa_kernel(SDPBackend.MATH):
        h = torch.func.jacrev(torch.func.grad(f))(flat)
    return h.numpy()


def _check_top2(model, ds, batch_size):
    model = model.double()
    full = pad(ds.seqs)
    with torch.no_grad():  # the reference loss is the model's own .loss (float32 inside HF)
        own = float(_own_loss(model, full))
        assert math.isclose(float(_shifted_token_ce(model, full, dict(model.named_parameters()))),
                            own, rel_tol=1e-6)
    h = _dense_hessian(model, full)
    assert np.abs(h - h.T).max() < 1e-12
    ref = sla.eigsh(h, k=2, which="LM", tol=0)[0]
    ref = ref[np.argsort(-np.abs(ref))]
    op = HessianOperator(model, DataLoader(ds, batch_size=batch_size, collate_fn=pad))
    assert op.names == list(dict(model.named_parameters()))  # one entry for the tied weight
    assert op.numel == h.shape[0]
    got = top_eigen(op, k=2, tol=1e-12).eigenvalues
    got = got[np.argsort(-np.abs(got))]
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_gpt2_hessian_top2_equals_dense_reference_small():
    """A smaller GPT-2 (364 parameters) than the issue's, so the dense reference takes
    seconds in CI; the issue's config (7,904) runs in the LANDSCAPE_SLOW test below."""
    model = _gpt2(n_layer=1, n_embd=4, n_head=2, vocab_size=12, n_positions=16)
    _check_top2(model, _Sequences(12, LENGTHS[:4]), batch_size=3)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("LANDSCAPE_SLOW") != "1",
                    reason="dense 7,904x7,904 reference takes minutes; set LANDSCAPE_SLOW=1")
def test_gpt2_hessian_top2_equals_dense_reference_issue_config():
    _check_top2(_gpt2(), _Sequences(50, LENGTHS), batch_size=4)


class _Dicts(Dataset):
    def __init__(self, ids, mask, labels) -> None:
        self.ids, self.mask, self.labels = ids, mask, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i],
                "labels": self.labels[i]}


def _bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=16, num_labels=3)
    model = BertForSequenceClassification(cfg).eval()
    n, t = 6, 7
    lens = torch.tensor([3, 7, 5, 2, 6, 4])
    mask = (torch.arange(t)[None] < lens[:, None]).long()
    ids = torch.randint(1, 30, (n, t)) * mask
    labels = torch.randint(0, 3, (n,))
    return model, {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_bert_classifier_evaluator_and_hessian():
    model, full = _bert()
    ds = _Dicts(full["input_ids"], full["attention_mask"], full["labels"])
    with torch.no_grad():
        out = model(**full)
    ref_loss = float(out.loss)
    ref_acc = float((out.logits.argmax(1) == full["labels"]).double().mean())
    for bs in (1, 4, 6):
        m = Evaluator(model, {"train": DataLoader(ds, batch_size=bs)})(
            dict(model.named_parameters()))["train"]
        assert math.isclose(m.loss, ref_loss, rel_tol=1e-6)
        assert m.accuracy == pytest.approx(ref_acc)
    model = model.double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    v = {k: torch.randn(p.shape, generator=gen, dtype=torch.float64) for k, p in params.items()}
    ref = torch.func.jvp(torch.func.grad(lambda p: _own_loss(model, full, p)), (params,), (v,))[1]
    for method in ("graph", "func"):
        op = HessianOperator(model, DataLoader(ds, batch_size=4), method=method)
        hv = op.unflatten(op @ op.flatten(v))
        for k in params:
            torch.testing.assert_close(hv[k], ref[k], rtol=1e-7, atol=1e-10)


class _EncoderClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 8, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(x)).mean(1))


@pytest.mark.parametrize("method", ["graph", "func"])
def test_transformer_encoder_hessian_with_default_kernels(method):
    """Default SDPA kernels: outside the operator, double backward through this model fails on
    CPU (no derivative of the flash kernel's backward); the operator switches to the math
    kernel itself. Reference: exact HVPs by double backward on the whole split as one batch."""
    torch.manual_seed(0)
    model = _EncoderClassifier().eval().double()
    x, y = torch.randint(0, 12, (8, 5)), torch.randint(0, 3, (8,))
    op = HessianOperator(model, (x, y), method=method, batch_size=5)
    params = {k: v.detach() for k, v in model.named_parameters()}
    names, sizes = list(params), [v.numel() for v in params.values()]
    flat = torch.cat([v.reshape(-1) for v in params.values()])

    def f(vec):
        d = {k: t.reshape(params[k].shape) for k, t in zip(names, vec.split(sizes), strict=True)}
        out = torch.func.functional_call(model, d, (x,))
        return nn.functional.cross_entropy(out, y)

    V = torch.randn(len(flat), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with sdpa_kernel(SDPBackend.MATH):
        ref = torch.stack([torch.autograd.functional.hvp(f, flat, V[:, j])[1] for j in range(2)],
                          dim=1)
    torch.testing.assert_close(op @ V, ref, rtol=1e-8, atol=1e-12)
    res = top_eigen(op, k=1, tol=1e-6)
    assert res.converged.all() and res.eigenvalues[0] > 0
