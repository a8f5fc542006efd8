"""Token data for tests/test_hf_cli.py: ``--data tests._hf_data:tokens`` (causal LM) and
``--data tests._hf_data:labelled`` (sequence classification).

Variable-length sequences of a tiny vocabulary, padded per batch by the loader's collate
function (pad id 0, ``attention_mask`` 0 on padding; ``labels`` -100 on padding for the
language model, one class per sequence for the classifier), the way a user's HuggingFace
loader looks.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

VOCAB, N_TRAIN, N_TEST, MAX_LEN = 20, 12, 6, 9


def samples(split: str) -> list[torch.Tensor]:
    """The token sequences of a split (seeded; lengths 3 .. MAX_LEN)."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    n = N_TRAIN if split == "train" else N_TEST
    lengths = torch.randint(3, MAX_LEN + 1, (n,), generator=g)
    return [torch.randint(1, VOCAB, (int(k),), generator=g) for k in lengths]


def pad(batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence of the batch."""
    t = max(len(s) for s in batch)
    ids = torch.zeros(len(batch), t, dtype=torch.int64)
    mask = torch.zeros(len(batch), t, dtype=torch.int64)
    for i, s in enumerate(batch):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def tokens(split: str = "train", batch_size: int = 4) -> DataLoader:
    """A non-shuffling DataLoader of padded batches of ``batch_size`` sequences."""
    return DataLoader(samples(split), batch_size=batch_size, shuffle=False, collate_fn=pad)


# ---------------------------------------------------------------------------- classification
#: Classes of the sequence-classification data (``--data tests._hf_data:labelled``).
N_LABELS = 3


def labelled_samples(split: str) -> list[tuple[torch.Tensor, int]]:
    """``(token sequence, class)`` pairs of a split (seeded; lengths 2 .. MAX_LEN)."""
    g = torch.Generator().manual_seed(10 if split == "train" else 11)
    n = N_TRAIN if split == "train" else N_TEST
    lengths = torch.randint(2, MAX_LEN + 1, (n,), generator=g)
    labels = torch.randint(0, N_LABELS, (n,), generator=g)
    return [(torch.randint(1, VOCAB, (int(k),), generator=g), int(c))
            for k, c in zip(lengths, labels, strict=True)]


def pad_labelled(batch: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """Right-pad the sequences of a batch; ``labels`` are the classes ``(B,)``."""
    out = pad([s for s, _ in batch])
    out["labels"] = torch.tensor([c for _, c in batch], dtype=torch.int64)
    return out


def labelled(split: str = "train", batch_size: int = 4) -> DataLoader:
    """A non-shuffling DataLoader of padded, labelled batches (a BERT classifier's input)."""
    return DataLoader(labelled_samples(split), batch_size=batch_size, shuffle=False,
                      collate_fn=pad_labelled)
