"""The GPT-2-small-shaped model and token data of ``benchmarks/bench_memory_model.py``.

``tokens`` is the ``--data benchmarks._gpt2_fixture:tokens`` function of the commands (run from
the repository root): 4 sequences of 128 random token ids (seeded) in one batch, with
``labels`` equal to the ids (the model's own shifted causal-LM loss). ``make`` writes the
model (built from a config: 12 layers, width 768, vocabulary 50,257, 1,024 positions, no
dropout; nothing is downloaded) with ``save_pretrained`` and a HuggingFace-Trainer-style run of
three checkpoints (``checkpoint-1 .. 3``: one full-batch SGD step each) for ``trajectory``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

VOCAB, N_SEQ, SEQ_LEN = 50257, 4, 128


def config():  # noqa: ANN201 - transformers is optional
    from transformers import GPT2Config

    return GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=VOCAB, n_positions=1024,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def samples(split: str = "train") -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    ids = torch.randint(0, VOCAB, (N_SEQ, SEQ_LEN), generator=g)
    return [{"input_ids": s, "labels": s.clone()} for s in ids]


def tokens(split: str = "train", batch_size: int = N_SEQ) -> DataLoader:
    """A non-shuffling DataLoader of the split's sequences."""
    return DataLoader(samples(split), batch_size=batch_size, shuffle=False)


def make(root: str | Path, steps: int = 3, lr: float = 0.05) -> None:
    """Write ``root/gpt2`` and the run ``root/run/checkpoint-1 .. steps``."""
    from transformers import GPT2LMHeadModel

    root = Path(root)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config())
    model.save_pretrained(root / "gpt2")
    batch = next(iter(tokens("train")))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(1, steps + 1):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        d = root / "run" / f"checkpoint-{step}"
        model.save_pretrained(d)
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step, "epoch": step}))


if __name__ == "__main__":
    import sys

    make(sys.argv[1])
