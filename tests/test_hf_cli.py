"""Issue 11 end to end: HuggingFace model directories and token loaders through the CLI.

A tiny GPT-2 (tied embeddings, default attention) is saved with ``save_pretrained``; the
data are variable-length sequences padded per batch by a user loader
(``tests._hf_data:tokens``). ``landscape surface`` on the directory gives a centre value equal
to the model's own ``.loss`` on the whole split as one batch (for every loader batch size), and
``landscape hessian`` gives top-2 eigenvalues equal to a dense float64 Hessian of that loss
(over the trainable tensors, the tied embedding counted once).

The dense reference is reverse-over-reverse autograd (``torch.autograd.functional.hessian``):
``torch.func.hessian`` (and ``jacrev(jacrev(.))``) returns a matrix that is *not symmetric*
on this GPT-2 (max |H - H'| = 0.049, eigenvalue 2 off by 1.2e-5 relative; torch 2.13, SDPA math
kernel), a vmap batching problem inside the attention; reverse-over-reverse is symmetric to
1e-15 and equals our graph and func HVPs to 4e-16 (measured on random vectors).

A tiny BERT classifier (``BertForSequenceClassification``, padded batches with attention
masks, one class per sequence, ``tests._hf_data:labelled``) goes through all three commands: a
few full-batch SGD steps are saved as a HuggingFace ``Trainer`` run (``checkpoint-N``
directories with ``trainer_state.json``); ``landscape surface`` on the last one gives the
model's own ``.loss`` and accuracy at the centre, ``landscape hessian`` on a parameter
selection (``--params``) gives the top eigenvalue of a dense float64 Hessian of that
selection, and ``landscape trajectory RUN --surface`` gives sklearn's PCA of the flattened
checkpoints (in step order, not name order) and the final model's own loss at the centre of
the PC plane.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from landscape.cli.main import main  # noqa: E402

from landscape.hessian import CurvatureResult  # noqa: E402
from landscape.surface import Surface  # noqa: E402

from . import _hf_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=_hf_data.VOCAB,
                                  n_positions=16, resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    d = tmp_path_factory.mktemp("hf") / "gpt2"
    model.save_pretrained(d)
    return d


@pytest.fixture
def importable(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))


def _whole_split_loss(model, split: str) -> float:
    batch = _hf_data.pad(_hf_data.samples(split))
    with torch.no_grad():
        return float(model(**batch).loss)


@pytest.mark.usefixtures("importable")
@pytest.mark.parametrize("loader_batch", [1, 5, 12])
def test_surface_centre_is_the_models_own_loss(hf_dir, tmp_path, loader_batch):
    out = tmp_path / "s.h5"
    rc = main(["surface", str(hf_dir), "--data", "tests._hf_data:tokens", "--data-kwargs",
               json.dumps({"batch_size": loader_batch}), "--splits", "train",
               "--x=-0.5:0.5:3", "--y=-0.5:0.5:3", "--batch-size", "64", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    s = Surface.load(out)
    model = transformers.GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    want = _whole_split_loss(model, "train")
    assert s["train_loss"][1, 1] == pytest.approx(want, rel=1e-6)
    assert "train_acc" in s.arrays  # token accuracy is defined for sequences
    # one direction for the tied embedding: the file's directions name it once
    names = set(s.directions.vectors[0])
    assert not {"lm_head.weight", "transformer.wte.weight"} <= names


@pytest.mark.usefixtures("importable")
def test_hessian_top2_equals_a_dense_float64_reference(hf_dir, tmp_path):
    from torch.autograd.functional import hessian
    from torch.func import functional_call
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out = tmp_path / "c.h5"
    rc = main(["hessian", str(hf_dir), "--data", "tests._hf_data:tokens", "--data-kwargs",
               '{"batch_size": 5}', "--top-k", "2", "--dtype", "float64", "--tol", "1e-10",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    got = CurvatureResult.load(out).top_eigenvalues

    model = transformers.GPT2LMHeadModel.from_pretrained(hf_dir).to(torch.float64).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}  # tied: once
    names = list(params)
    shapes = [params[k].shape for k in names]
    sizes = [params[k].numel() for k in names]
    batch = _hf_data.pad(_hf_data.samples("train"))

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, sizes)
        p = {k: t.reshape(s) for k, t, s in zip(names, parts, shapes, strict=True)}
        logits = functional_call(model, p, (), {"input_ids": batch["input_ids"],
                                                "attention_mask": batch["attention_mask"]})
        logits = logits.logits if hasattr(logits, "logits") else logits[0]
        z, y = logits[:, :-1], batch["labels"][:, 1:]
        return torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1),
                                                 ignore_index=-100)

    flat = torch.cat([params[k].reshape(-1) for k in names])
    with sdpa_kernel(SDPBackend.MATH):
        H = hessian(loss, flat)
        # HF's own .loss casts the logits to float32: equal to float32 accuracy
        assert float(loss(flat)) == pytest.approx(_whole_split_loss(model, "train"),
                                                  rel=1e-6)
    assert float((H - H.T).abs().max()) < 1e-12  # a trustworthy reference is symmetric
    H = (H + H.T) / 2
    want = np.sort(np.linalg.eigvalsh(H.numpy()))[::-1][:2]
    np.testing.assert_allclose(np.sort(got)[::-1], want, rtol=1e-6)


# ---------------------------------------------------------------------------- BERT classifier
BERT_STEPS = (2, 4, 8, 10)  # "checkpoint-10" sorts before "checkpoint-2" by name


def _bert_config():
    return transformers.BertConfig(
        vocab_size=_hf_data.VOCAB, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=_hf_data.N_LABELS,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory) -> Path:
    """A HuggingFace Trainer-style run directory: ``checkpoint-N`` after N full-batch SGD
    steps (``save_pretrained`` + ``trainer_state.json`` with the global step)."""
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(_bert_config())
    run = tmp_path_factory.mktemp("bert") / "run"
    batch = _hf_data.pad_labelled(_hf_data.labelled_samples("train"))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(1, BERT_STEPS[-1] + 1):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in BERT_STEPS:
            d = run / f"checkpoint-{step}"
            model.save_pretrained(d)
            (d / "trainer_state.json").write_text(
                json.dumps({"global_step": step, "epoch": step / 4}))
    return run


def _bert(path: Path):
    return transformers.BertForSequenceClassification.from_pretrained(path).eval()


def _bert_whole_split(model, split: str = "train") -> tuple[float, float]:
    """The model's own ``.loss`` and accuracy on the whole split as one padded batch."""
    batch = _hf_data.pad_labelled(_hf_data.labelled_samples(split))
    with torch.no_grad():
        out = model(**batch)
    return float(out.loss), float((out.logits.argmax(-1) == batch["labels"]).double().mean())


@pytest.mark.usefixtures("importable")
@pytest.mark.parametrize("loader_batch", [1, 5])
def test_bert_surface_centre_is_the_models_own_loss(bert_run, tmp_path, loader_batch):
    final = bert_run / f"checkpoint-{BERT_STEPS[-1]}"
    out = tmp_path / "s.h5"
    rc = main(["surface", str(final), "--data", "tests._hf_data:labelled", "--data-kwargs",
               json.dumps({"batch_size": loader_batch}), "--x=-0.5:0.5:3", "--y=-0.5:0.5:3",
               "--batch-size", "64", "--out", str(out), "--no-progress"])
    assert rc == 0
    s = Surface.load(out)
    model = _bert(final)
    for split in ("train", "test"):
        loss, acc = _bert_whole_split(model, split)
        assert s[f"{split}_loss"][1, 1] == pytest.approx(loss, rel=1e-6)
        assert s[f"{split}_acc"][1, 1] == pytest.approx(acc, abs=1e-12)
    z = s["train_loss"]
    assert np.isfinite(z).all() and np.ptp(z) > 1e-3 * z[1, 1]  # the directions move the loss


@pytest.mark.usefixtures("importable")
def test_bert_hessian_of_a_selection_equals_a_dense_float64_reference(bert_run, tmp_path):
    from torch.autograd.functional import hessian
    from torch.func import functional_call
    from torch.nn.attention import SDPBackend, sdpa_kernel

    final = bert_run / f"checkpoint-{BERT_STEPS[-1]}"
    out = tmp_path / "c.h5"
    rc = main(["hessian", str(final), "--data", "tests._hf_data:labelled", "--data-kwargs",
               '{"batch_size": 5}', "--params", "*.attention.self.query", "--params",
               "classifier", "--top-k", "1", "--dtype", "float64", "--tol", "1e-10",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    res = CurvatureResult.load(out)

    model = _bert(final).to(torch.float64)
    params = {k: v.detach() for k, v in model.named_parameters()}
    names = [k for k in params if ".attention.self.query." in k or k.startswith("classifier.")]
    assert len(names) == 4 and res.n_params == sum(params[k].numel() for k in names)
    sizes = [params[k].numel() for k in names]
    batch = _hf_data.pad_labelled(_hf_data.labelled_samples("train"))
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def loss(flat: torch.Tensor) -> torch.Tensor:
        p = dict(params)
        for k, t in zip(names, torch.split(flat, sizes), strict=True):
            p[k] = t.reshape(params[k].shape)
        logits = functional_call(model, p, (), inputs).logits  # float64 (HF's .loss is not)
        return torch.nn.functional.cross_entropy(logits, batch["labels"])

    flat = torch.cat([params[k].reshape(-1) for k in names])
    with sdpa_kernel(SDPBackend.MATH):
        H = hessian(loss, flat)
    assert float((H - H.T).abs().max()) < 1e-12
    want = float(np.linalg.eigvalsh(((H + H.T) / 2).numpy())[-1])
    assert res.top_eigenvalues[0] == pytest.approx(want, rel=1e-6)


@pytest.mark.usefixtures("importable")
def test_bert_trajectory_is_sklearns_pca_of_the_checkpoints(bert_run, tmp_path):
    from sklearn.decomposition import PCA

    from landscape.trajectory import load_trajectory

    out = tmp_path / "t.h5"
    rc = main(["trajectory", str(bert_run), "--ignore", "none", "--surface",
               "--x=-1:1:3", "--y=-1:1:3", "--splits", "train", "--data",
               "tests._hf_data:labelled", "--data-kwargs", '{"batch_size": 5}',
               "--out", str(out), "--no-progress"])
    assert rc == 0
    t = load_trajectory(out)
    assert [Path(c["path"]).name for c in t.checkpoints] == [
        f"checkpoint-{s}" for s in BERT_STEPS]  # by recorded step, not by name

    def flat(path: Path) -> np.ndarray:
        return torch.cat([v.detach().reshape(-1).double()
                          for _, v in _bert(path).named_parameters()]).numpy()

    rows = np.stack([flat(bert_run / f"checkpoint-{s}") for s in BERT_STEPS])
    rows -= rows[-1]  # theta_i - theta_final, the final (zero) row included
    ref = PCA(svd_solver="full").fit(rows)
    n = len(BERT_STEPS)
    np.testing.assert_allclose(t.explained_variance_ratio[:n - 1],
                               ref.explained_variance_ratio_[:n - 1], rtol=1e-6)
    names = [k for k, _ in _bert(bert_run / "checkpoint-2").named_parameters()]
    for k, d in enumerate(t.directions.vectors):
        mine = torch.cat([d[name].reshape(-1).double() for name in names]).numpy()
        sign = math.copysign(1.0, float(mine @ ref.components_[k]))
        np.testing.assert_allclose(mine, sign * ref.components_[k], atol=1e-6)
        np.testing.assert_allclose(t.coords[:, k], sign * rows @ ref.components_[k],
                                   rtol=1e-6, atol=1e-9)
    s = Surface.load(out)
    loss, _ = _bert_whole_split(_bert(bert_run / f"checkpoint-{BERT_STEPS[-1]}"))
    assert s["train_loss"][1, 1] == pytest.approx(loss, rel=1e-6)


def test_hf_loading_prints_nothing_of_its_own(hf_dir, tmp_path):
    """transformers' "Loading weights" bar and its mismatch table stay out of our output: a
    config whose shapes do not fit the weights is one line and exit 2, a good directory under
    --no-progress prints no bar."""
    import os
    import shutil
    import subprocess
    import sys

    bad = tmp_path / "bad"
    shutil.copytree(hf_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["n_embd"] = 16
    (bad / "config.json").write_text(json.dumps(cfg))
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("LANDSCAPE_DEBUG", None)
    common = ["--data", "tests._hf_data:tokens", "--data-kwargs", '{"batch_size": 5}',
              "--top-k", "1", "--no-progress"]
    r = subprocess.run([sys.executable, "-m", "landscape.cli", "hessian", str(bad), *common,
                        "--out", str(tmp_path / "b.h5")], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=900)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([sys.executable, "-m", "landscape.cli", "hessian", str(hf_dir), *common,
                        "--out", str(tmp_path / "g.h5")], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "Loading" not in r.stderr and "%|" not in r.stderr, r.stderr
