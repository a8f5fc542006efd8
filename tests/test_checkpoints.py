"""Tests for landscape.checkpoints: atomic saving, safe loading, foreign formats, errors."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from landscape.checkpoints import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from landscape.errors import LandscapeError
from landscape.models import ModelSpec

KWARGS = {"width": 8, "depth": 2}
SPEC = ModelSpec("mlp", KWARGS)


@pytest.fixture
def net() -> nn.Module:
    torch.manual_seed(0)
    return SPEC.build()


@pytest.fixture
def x() -> Tensor:
    return torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def _out(model: nn.Module, x: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def _sd(net: nn.Module) -> OrderedDict[str, Tensor]:
    return OrderedDict((k, v.clone()) for k, v in net.state_dict().items())


def _prefixed(sd: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {prefix + k: v for k, v in sd.items()}


# ---------------------------------------------------------------------------------- round trip


def test_round_trip_identical_outputs(tmp_path: Path, net: nn.Module, x: Tensor) -> None:
    path = save_checkpoint(
        tmp_path / "sub" / "a.pt", net, SPEC, epoch=3, acc=np.float64(0.5), tag="t",
        nested={"lr": [0.1, 0.01], "where": tmp_path},
    )
    assert path == tmp_path / "sub" / "a.pt"
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint)
    assert ckpt.spec == SPEC
    assert ckpt.path == str(path)
    assert ckpt.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ckpt.meta == {
        "epoch": 3, "acc": 0.5, "tag": "t", "nested": {"lr": [0.1, 0.01], "where": str(tmp_path)}
    }
    assert type(ckpt.meta["acc"]) is float
    assert not ckpt.model.training
    assert all(p.dtype == torch.float32 for p in ckpt.model.parameters())
    assert torch.equal(_out(ckpt.model, x), _out(net, x))


def test_saved_file_is_weights_only_and_leaves_no_temp(tmp_path: Path, net: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "a.pt", net, None, epoch=1)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["format_version"] == 1
    assert raw["model"] is None and raw["meta"] == {"epoch": 1}
    assert set(raw["state_dict"]) == set(net.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_save_is_atomic_when_writing_fails(
    tmp_path: Path, net: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "a.pt", net, SPEC, epoch=1)
    before = path.read_bytes()

    def broken_save(obj: object, f: object) -> None:
        f.write(b"half a file")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, net, SPEC, epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_meta_must_be_plain(tmp_path: Path, net: nn.Module) -> None:
    with pytest.raises(LandscapeError, match="meta 'meta.bad'"):
        save_checkpoint(tmp_path / "a.pt", net, SPEC, bad=object())
    assert list(tmp_path.iterdir()) == []


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    (tmp_path / "f.bin").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert file_sha256(tmp_path / "f.bin") == expected
    assert file_sha256(tmp_path / "f.bin", chunk_size=1000) == expected


# ---------------------------------------------------------------------------- foreign formats


FORMATS = {
    "raw": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 7},
    "model_state_dict": lambda sd: {
        "model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []}
    },
    "model": lambda sd: {"model": sd, "args": {"lr": 0.1}},
    "lightning": lambda sd: {
        "epoch": 2, "global_step": 40, "pytorch-lightning_version": "2.0",
        "state_dict": {**_prefixed(sd, "model."), "criterion.weight": torch.ones(10)},
    },
    "net": lambda sd: {"state_dict": _prefixed(sd, "net.")},
    "module": lambda sd: _prefixed(sd, "module."),
    "module.module": lambda sd: _prefixed(sd, "module.module."),
    "orig_mod": lambda sd: _prefixed(sd, "_orig_mod."),
    "ddp+compile": lambda sd: {"model": _prefixed(sd, "module._orig_mod.")},
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_accepted_formats(fmt: str, tmp_path: Path, net: nn.Module, x: Tensor) -> None:
    path = tmp_path / "c.pt"
    torch.save(FORMATS[fmt](_sd(net)), path)
    ckpt = load_checkpoint(path, model="mlp", model_kwargs=KWARGS)
    assert ckpt.spec == SPEC
    assert torch.equal(_out(ckpt.model, x), _out(net, x))


def test_foreign_meta_keeps_top_level_scalars(tmp_path: Path, net: nn.Module) -> None:
    torch.save(FORMATS["lightning"](_sd(net)), tmp_path / "c.pt")
    ckpt = load_checkpoint(tmp_path / "c.pt", model=SPEC)
    assert ckpt.meta == {"epoch": 2, "global_step": 40, "pytorch-lightning_version": "2.0"}


def test_model_given_as_module_is_filled_in_place(
    tmp_path: Path, net: nn.Module, x: Tensor
) -> None:
    save_checkpoint(tmp_path / "a.pt", net, SPEC)
    torch.manual_seed(123)
    other = SPEC.build().train()
    ckpt = load_checkpoint(tmp_path / "a.pt", model=other)
    assert ckpt.model is other and not other.training
    assert ckpt.spec is None
    assert torch.equal(_out(other, x), _out(net, x))


def test_explicit_model_overrides_saved_spec(tmp_path: Path, net: nn.Module) -> None:
    save_checkpoint(tmp_path / "a.pt", net, SPEC)
    plain = ModelSpec("mlp", {**KWARGS, "shortcut": False})  # same keys, other forward
    assert load_checkpoint(tmp_path / "a.pt", model=plain).spec == plain


def test_prefix_is_not_stripped_blindly(tmp_path: Path) -> None:
    # A model whose own keys start with "model." must load an unprefixed-looking file as is.
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Linear(3, 2)

    torch.manual_seed(0)
    src = Wrapper()
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = Wrapper()
    load_checkpoint(tmp_path / "w.pt", model=dst)
    assert torch.equal(dst.model.weight, src.model.weight)


# ------------------------------------------------------------------------------ architecture


def test_no_spec_asks_for_model(tmp_path: Path, net: nn.Module) -> None:
    torch.save(net.state_dict(), tmp_path / "x.pt")
    with pytest.raises(LandscapeError, match=r"carries no model spec; pass model=NAME"):
        load_checkpoint(tmp_path / "x.pt")


def test_missing_keys_are_named(tmp_path: Path, net: nn.Module) -> None:
    sd = _sd(net)
    dropped = list(sd)[:4]
    for k in dropped:
        del sd[k]
    torch.save(sd, tmp_path / "m.pt")
    with pytest.raises(LandscapeError) as err:
        load_checkpoint(tmp_path / "m.pt", model=SPEC)
    msg = str(err.value)
    assert "4 missing key(s)" in msg and "model=NAME" in msg and "\n" not in msg
    assert all(f"'{k}'" in msg for k in dropped[:3]) and f"'{dropped[3]}'" not in msg


def test_unexpected_keys_are_named(tmp_path: Path, net: nn.Module) -> None:
    sd = {**_sd(net), "extra.weight": torch.zeros(2), "extra.bias": torch.zeros(2)}
    torch.save(sd, tmp_path / "u.pt")
    with pytest.raises(LandscapeError, match=r"2 unexpected key\(s\) 'extra.weight', 'extra.bias'"):
        load_checkpoint(tmp_path / "u.pt", model=SPEC)


def test_other_architecture_reports_missing_and_unexpected(tmp_path: Path, net: nn.Module) -> None:
    save_checkpoint(tmp_path / "a.pt", net, SPEC)
    with pytest.raises(LandscapeError, match=r"missing key\(s\) 'blocks.2.*model=NAME"):
        load_checkpoint(tmp_path / "a.pt", model="mlp", model_kwargs={"width": 8, "depth": 4})


def test_shape_mismatch_is_named(tmp_path: Path, net: nn.Module) -> None:
    save_checkpoint(tmp_path / "a.pt", net, SPEC)
    with pytest.raises(LandscapeError) as err:
        load_checkpoint(tmp_path / "a.pt", model="mlp", model_kwargs={"width": 16, "depth": 2})
    msg = str(err.value)
    assert "shape mismatch" in msg and "'stem.weight' (8, 64) vs (16, 64)" in msg
    assert "missing" not in msg and "model=NAME" in msg


def test_wrapped_keys_of_other_model_are_reported_unwrapped(
    tmp_path: Path, net: nn.Module
) -> None:
    torch.save(_prefixed(_sd(net), "module."), tmp_path / "d.pt")
    with pytest.raises(LandscapeError) as err:
        load_checkpoint(tmp_path / "d.pt", model=nn.Linear(2, 2))
    msg = str(err.value)
    assert "2 missing key(s) 'weight', 'bias'" in msg
    assert "8 unexpected key(s) 'stem.weight', 'stem.bias'" in msg and "module." not in msg


def test_one_submodule_of_another_network_is_not_taken_silently(
    tmp_path: Path, net: nn.Module
) -> None:
    # "module.stem.weight" / "module.stem.bias" would fit a Linear(64, 8) once
    # "module.stem." is stripped -- but that is 2 of 8 keys, not this model's checkpoint.
    torch.save(_prefixed(_sd(net), "module."), tmp_path / "d.pt")
    with pytest.raises(LandscapeError, match="does not fit the model"):
        load_checkpoint(tmp_path / "d.pt", model=nn.Linear(64, 8))


def test_model_kwargs_without_name(tmp_path: Path, net: nn.Module) -> None:
    save_checkpoint(tmp_path / "a.pt", net, SPEC)
    with pytest.raises(LandscapeError, match="model_kwargs"):
        load_checkpoint(tmp_path / "a.pt", model_kwargs={"width": 8})


# ------------------------------------------------------------------------------------ pickles


def test_full_pickle_refused_without_trust(tmp_path: Path, net: nn.Module) -> None:
    torch.save(net, tmp_path / "full.pt")
    with pytest.raises(LandscapeError) as err:
        load_checkpoint(tmp_path / "full.pt")
    msg = str(err.value)
    assert "pickled Python objects" in msg and "execute code" in msg
    assert "trust=True" in msg and "\n" not in msg


def test_full_pickle_accepted_with_trust(tmp_path: Path, net: nn.Module, x: Tensor) -> None:
    torch.save(net.train(), tmp_path / "full.pt")
    ckpt = load_checkpoint(tmp_path / "full.pt", trust=True)
    assert ckpt.spec is None and not ckpt.model.training
    assert torch.equal(_out(ckpt.model, x), _out(net, x))
    ckpt = load_checkpoint(tmp_path / "full.pt", trust=True, model=SPEC)
    assert ckpt.spec == SPEC
    assert torch.equal(_out(ckpt.model, x), _out(net, x))


def test_pickled_module_inside_dict_with_trust(tmp_path: Path, net: nn.Module, x: Tensor) -> None:
    torch.save({"model": net, "epoch": 3}, tmp_path / "d.pt")
    with pytest.raises(LandscapeError, match="trust=True"):
        load_checkpoint(tmp_path / "d.pt", model=SPEC)
    ckpt = load_checkpoint(tmp_path / "d.pt", model=SPEC, trust=True)
    assert ckpt.meta == {"epoch": 3}
    assert torch.equal(_out(ckpt.model, x), _out(net, x))


# ------------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="'.*nope.pt' does not exist"):
        load_checkpoint(tmp_path / "nope.pt", model=SPEC)


def test_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="is not a file"):
        load_checkpoint(tmp_path, model=SPEC)


@pytest.mark.parametrize(
    "content", [b"", b"hello, I am not a checkpoint" * 20, b"PK\x03\x04" + b"\x00" * 100]
)
def test_garbage_files(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "g.pt").write_bytes(content)
    with pytest.raises(LandscapeError, match="g.pt") as err:
        load_checkpoint(tmp_path / "g.pt", model=SPEC)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_file(tmp_path: Path, net: nn.Module, legacy: bool) -> None:
    path = tmp_path / "t.pt"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LandscapeError, match="corrupted|truncated"):
        load_checkpoint(path, model=SPEC)


def test_not_a_state_dict(tmp_path: Path) -> None:
    torch.save({"hello": 1, "world": [1, 2]}, tmp_path / "h.pt")
    with pytest.raises(LandscapeError, match="holds no state dict .*'hello', 'world'"):
        load_checkpoint(tmp_path / "h.pt", model=SPEC)
    torch.save([1, 2, 3], tmp_path / "l.pt")
    with pytest.raises(LandscapeError, match="holds a list"):
        load_checkpoint(tmp_path / "l.pt", model=SPEC)


def test_newer_format_version_refused(tmp_path: Path, net: nn.Module) -> None:
    path = save_checkpoint(tmp_path / "a.pt", net, SPEC)
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = 99
    torch.save(raw, path)
    with pytest.raises(LandscapeError, match="upgrade landscape"):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_refused(tmp_path: Path, net: nn.Module, bad: float) -> None:
    sd = _sd(net)
    sd["blocks.1.linear.weight"][0, 0] = bad
    save_checkpoint(tmp_path / "n.pt", net, SPEC)
    torch.save(sd, tmp_path / "n.pt")
    with pytest.raises(LandscapeError, match="non-finite .* in 'blocks.1.linear.weight' \\(1 of"):
        load_checkpoint(tmp_path / "n.pt", model=SPEC)


def test_batchnorm_buffers_round_trip(tmp_path: Path, x: Tensor) -> None:
    spec = ModelSpec("mlp", {"width": 8, "depth": 1, "batchnorm": True})
    torch.manual_seed(0)
    bn_net = spec.build().train()
    bn_net(torch.randn(16, 1, 8, 8))  # move the running statistics away from their init
    save_checkpoint(tmp_path / "bn.pt", bn_net, spec)
    ckpt = load_checkpoint(tmp_path / "bn.pt")
    assert torch.equal(_out(ckpt.model, x), _out(bn_net, x))
    # old-style state dicts without the BatchNorm step counter still load
    sd = {k: v for k, v in _sd(bn_net).items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pt")
    assert torch.equal(_out(load_checkpoint(tmp_path / "old.pt", model=spec).model, x),
                       _out(bn_net, x))


# ---------------------------------------------------------------------- HF, safetensors, Lightning


def _tiny_gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_hf_save_pretrained_directory_loads(tmp_path: Path) -> None:
    m = _tiny_gpt2()
    m.save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    ckpt = load_checkpoint(tmp_path / "hf")
    assert type(ckpt.model).__name__ == "GPT2LMHeadModel" and not ckpt.model.training
    assert ckpt.spec is None and ckpt.meta["format"] == "huggingface"
    _same_state(ckpt.model, m)
    assert ckpt.model.lm_head.weight is ckpt.model.transformer.wte.weight  # still tied
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(ids).logits, m(ids).logits, rtol=0, atol=0)
    assert load_checkpoint(tmp_path / "hf").sha256 == ckpt.sha256
    with pytest.raises(LandscapeError, match="drop the 'model' and 'model_kwargs' parameters"):
        load_checkpoint(tmp_path / "hf", model="mlp")


def test_safetensors_file_with_missing_tied_key_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    m = _tiny_gpt2()
    state = {k: v.contiguous().clone() for k, v in m.state_dict().items()
             if k != "lm_head.weight"}  # tied to transformer.wte.weight: stored once
    save_file(state, tmp_path / "w.safetensors")
    fresh = type(m)(m.config)
    ckpt = load_checkpoint(tmp_path / "w.safetensors", model=fresh)
    _same_state(ckpt.model, m)
    assert ckpt.sha256 == file_sha256(tmp_path / "w.safetensors")
    # a plain module from a .safetensors file (our own MLP)
    torch.manual_seed(3)
    net = SPEC.build()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "m.safetensors")
    _same_state(load_checkpoint(tmp_path / "m.safetensors", model=SPEC).model, net)
    # a missing key that is not tied is still an error
    state.pop("transformer.h.0.ln_1.weight")
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(LandscapeError, match="missing key"):
        load_checkpoint(tmp_path / "bad.safetensors", model=type(m)(m.config))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(LandscapeError, match="corrupted"):
        load_checkpoint(tmp_path / "junk.safetensors", model=SPEC)


def test_safetensors_next_to_a_config_needs_no_model(tmp_path: Path) -> None:
    m = _tiny_gpt2()
    m.save_pretrained(tmp_path)
    _same_state(load_checkpoint(tmp_path / "model.safetensors").model, m)


def test_lightning_run_is_ordered_by_recorded_epoch_and_step(tmp_path: Path, net) -> None:
    from landscape.checkpoints import checkpoint_position, list_lightning_checkpoints

    run = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    run.mkdir(parents=True)
    sd = {"model." + k: v for k, v in net.state_dict().items()}
    # (epoch, step) recorded in the files; the names are shuffled / misleading on purpose
    written = [("epoch=9-step=1.ckpt", 0, 10), ("a.ckpt", 2, 30), ("epoch=0-step=99.ckpt", 1, 20),
               ("zz.ckpt", 3, 40), ("last.ckpt", 3, 40)]
    for name, epoch, step in written:
        torch.save({"epoch": epoch, "global_step": step, "state_dict": sd}, run / name)
    torch.save(sd, run / "epoch=7-step=70.ckpt")  # nothing recorded: from the name
    got = [p.name for p in list_lightning_checkpoints(tmp_path)]
    assert got == ["epoch=9-step=1.ckpt", "epoch=0-step=99.ckpt", "a.ckpt", "zz.ckpt",
                   "epoch=7-step=70.ckpt"]
    assert checkpoint_position(run / "epoch=7-step=70.ckpt") == (7, 70)
    assert checkpoint_position(run / "a.ckpt") == (2, 30)
    ckpt = load_checkpoint(run / "a.ckpt", model=SPEC)
    assert ckpt.meta["epoch"] == 2 and ckpt.meta["global_step"] == 30
    # a later last.ckpt (saved mid-epoch) is kept, at its place
    torch.save({"epoch": 8, "global_step": 85, "state_dict": sd}, run / "last.ckpt")
    assert [p.name for p in list_lightning_checkpoints(run)][-1] == "last.ckpt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(LandscapeError, match="no Lightning checkpoints"):
        list_lightning_checkpoints(tmp_path / "empty")
    torch.save(sd, tmp_path / "lightning_logs" / "version_0" / "x.ckpt")
    with pytest.raises(LandscapeError, match="2 directories"):
        list_lightning_checkpoints(tmp_path / "lightning_logs")


# ------------------------------------------------------- ambiguous files: state_key and prefix


def _nets() -> tuple[nn.Module, nn.Module]:
    """Two models of SPEC with different weights (A: the model, B: e.g. its EMA copy)."""
    torch.manual_seed(10)
    a = SPEC.build()
    torch.manual_seed(11)
    b = SPEC.build()
    return a, b


def _exactly(model: nn.Module, expected: nn.Module) -> bool:
    got, want = model.state_dict(), expected.state_dict()
    assert list(got) == list(want)
    return all(torch.equal(got[k], want[k]) for k in want)


def _ema_layouts(a: nn.Module, b: nn.Module) -> dict[str, dict[str, Tensor]]:
    """Lightning state dicts holding model A under ``model.`` and an EMA copy B."""
    from torch.optim.swa_utils import AveragedModel

    averaged = AveragedModel(b)  # keys "n_averaged" and "module.*"
    return {
        "ema.": {**_prefixed(_sd(a), "model."), **_prefixed(_sd(b), "ema.")},
        "ema.module.": {**_prefixed(_sd(a), "model."), **_prefixed(averaged.state_dict(), "ema.")},
    }


def test_several_state_dict_entries_are_refused_and_chosen(tmp_path: Path) -> None:
    a, b = _nets()
    path = tmp_path / "x.pt"
    torch.save({"state_dict": _sd(a), "model_state_dict": _sd(b), "epoch": 4}, path)
    with pytest.raises(LandscapeError) as err:
        load_checkpoint(path, model=SPEC)
    msg = str(err.value)
    assert "\n" not in msg
    assert (f"checkpoint '{path}' holds several state dicts: 'state_dict' (8 tensors), "
            "'model_state_dict' (8 tensors); choose one with state_key=..."
            == msg)
    ckpt = load_checkpoint(path, model=SPEC, state_key="state_dict")
    assert _exactly(ckpt.model, a) and ckpt.meta == {"epoch": 4}
    assert _exactly(load_checkpoint(path, model=SPEC, state_key="model_state_dict").model, b)
    # the same tensors under two keys are not ambiguous
    torch.save({"state_dict": _sd(a), "model": _sd(a)}, path)
    assert _exactly(load_checkpoint(path, model=SPEC).model, a)


def test_state_key_walks_nested_dicts_and_other_entries(tmp_path: Path) -> None:
    a, b = _nets()
    path = tmp_path / "n.pt"
    torch.save({"model": _sd(a), "ema": {"module": _sd(b)}, "state_dict_ema": _sd(b)}, path)
    assert _exactly(load_checkpoint(path, model=SPEC).model, a)  # as before: "model"
    assert _exactly(load_checkpoint(path, model=SPEC, state_key="ema.module").model, b)
    assert _exactly(load_checkpoint(path, model=SPEC, state_key="state_dict_ema").model, b)
    with pytest.raises(LandscapeError, match=r"entry 'ema' .* is not a state dict \(its keys: "
                                             r"'module'\).*e\.g\. 'ema\.module'"):
        load_checkpoint(path, model=SPEC, state_key="ema")
    with pytest.raises(LandscapeError, match=r"has no entry 'nope' \(top-level keys: 'model', "
                                             r"'ema', 'state_dict_ema'\)"):
        load_checkpoint(path, model=SPEC, state_key="nope")
    torch.save({"state_dict": _sd(a), "epoch": 3}, path)
    with pytest.raises(LandscapeError, match="entry 'epoch' .* is a int, not a state dict"):
        load_checkpoint(path, model=SPEC, state_key="epoch")


def test_state_key_on_files_with_one_state_dict(tmp_path: Path) -> None:
    a, _ = _nets()
    save_checkpoint(tmp_path / "own.pt", a, SPEC)
    assert _exactly(load_checkpoint(tmp_path / "own.pt", state_key="state_dict").model, a)
    with pytest.raises(LandscapeError,
                       match="landscape checkpoint.*drop the 'state_key' parameter"):
        load_checkpoint(tmp_path / "own.pt", state_key="ema")
    torch.save(_sd(a), tmp_path / "raw.pt")
    with pytest.raises(LandscapeError,
                       match=r"plain state dict.*drop the 'state_key' parameter.*prefix=\.\.\."):
        load_checkpoint(tmp_path / "raw.pt", model=SPEC, state_key="state_dict")
    from safetensors.torch import save_file

    save_file(_sd(a), tmp_path / "w.safetensors")
    with pytest.raises(LandscapeError, match="safetensors file.*drop the 'state_key' parameter"):
        load_checkpoint(tmp_path / "w.safetensors", model=SPEC, state_key="state_dict")
    save_file(_prefixed(_sd(a), "model."), tmp_path / "p.safetensors")  # a prefix applies
    assert _exactly(load_checkpoint(tmp_path / "p.safetensors", model=SPEC,
                                    prefix="model.").model, a)
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(LandscapeError, match="HuggingFace model directory.*drop the "
                                             "'state_key' and 'prefix' parameters"):
        load_checkpoint(tmp_path / "hf", prefix="model.")
    for bad in ({"state_key": 3}, {"prefix": ["model."]}, {"state_key": ""}):
        with pytest.raises(LandscapeError, match="parameter must"):
            load_checkpoint(tmp_path / "raw.pt", model=SPEC, **bad)


@pytest.mark.parametrize("ema", ["ema.", "ema.module."])
def test_model_and_ema_prefixes_are_refused_and_chosen(tmp_path: Path, ema: str) -> None:
    a, b = _nets()
    path = tmp_path / "ema.ckpt"
    torch.save({"epoch": 5, "global_step": 50, "state_dict": _ema_layouts(a, b)[ema]}, path)
    with pytest.raises(LandscapeError) as err:
        load_checkpoint(path, model=SPEC)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (f"checkpoint '{path}' holds several state dicts that fit the model, under "
                   f"the key prefixes 'model.' (8 tensors), '{ema}' (8 tensors); choose one "
                   "with prefix=...")
    ckpt = load_checkpoint(path, model=SPEC, prefix="model.")
    assert _exactly(ckpt.model, a) and ckpt.meta == {"epoch": 5, "global_step": 50}
    assert _exactly(load_checkpoint(path, model=SPEC, prefix="model").model, a)  # "." added
    assert _exactly(load_checkpoint(path, model=SPEC, prefix=ema).model, b)
    # AveragedModel: "ema." strips its "module." and drops its n_averaged counter
    assert _exactly(load_checkpoint(path, model=SPEC, prefix="ema.").model, b)
    assert _exactly(load_checkpoint(path, model=SPEC, prefix="ema",
                                    state_key="state_dict").model, b)
    with pytest.raises(LandscapeError, match=r"no key .* starts with the prefix 'emma\.' \(its "
                                             r"keys start with 'model\.', 'ema\.'\)"):
        load_checkpoint(path, model=SPEC, prefix="emma.")
    with pytest.raises(LandscapeError, match=r"has no entry 'ema' .*prefix=\.\.\."):
        load_checkpoint(path, model=SPEC, state_key="ema")


def test_unprefixed_model_with_a_prefixed_copy(tmp_path: Path) -> None:
    a, b = _nets()
    path = tmp_path / "c.pt"
    torch.save({**_sd(a), **_prefixed(_sd(b), "ema.")}, path)
    with pytest.raises(LandscapeError, match=r"prefixes '' \(no prefix, 8 tensors\), 'ema\.' "
                                             r"\(8 tensors\); choose one with prefix=\.\.\."):
        load_checkpoint(path, model=SPEC)
    assert _exactly(load_checkpoint(path, model=SPEC, prefix="").model, a)
    assert _exactly(load_checkpoint(path, model=SPEC, prefix="ema.").model, b)


def test_identical_copies_and_lone_averaged_model_load_as_before(tmp_path: Path) -> None:
    from torch.optim.swa_utils import AveragedModel

    a, b = _nets()
    path = tmp_path / "c.pt"
    # an EMA copy equal to the model (e.g. saved at step 0) is not ambiguous
    torch.save({"state_dict": {**_prefixed(_sd(a), "model."), **_prefixed(_sd(a), "ema.")}},
               path)
    assert _exactly(load_checkpoint(path, model=SPEC).model, a)
    torch.save({**_sd(a), **_prefixed(_sd(a), "ema.")}, path)
    assert _exactly(load_checkpoint(path, model=SPEC).model, a)
    # an AveragedModel saved on its own: "module." stripped, n_averaged dropped (as before)
    torch.save(AveragedModel(b).state_dict(), path)
    assert _exactly(load_checkpoint(path, model=SPEC).model, b)


def test_two_fitting_submodules_of_another_network_still_do_not_fit(tmp_path: Path) -> None:
    # blocks.0.linear and blocks.1.linear each fit a Linear(8, 8): 4 of the 8 keys, not the
    # file's model -- refused as before, not offered as a choice; an explicit prefix takes one.
    a, _ = _nets()
    torch.save(_sd(a), tmp_path / "m.pt")
    with pytest.raises(LandscapeError, match="does not fit the model"):
        load_checkpoint(tmp_path / "m.pt", model=nn.Linear(8, 8))
    lin = load_checkpoint(tmp_path / "m.pt", model=nn.Linear(8, 8), prefix="blocks.1.linear.")
    assert torch.equal(lin.model.weight, a.state_dict()["blocks.1.linear.weight"])


def test_cli_refuses_an_ambiguous_file_then_loads_the_chosen_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from landscape.cli.main import main

    import landscape.inputs as inputs

    a, b = _nets()
    torch.save({"state_dict": _sd(a), "model_state_dict": _sd(b)}, tmp_path / "two.pt")
    torch.save({"state_dict": _ema_layouts(a, b)["ema.module."]}, tmp_path / "ema.ckpt")
    monkeypatch.chdir(tmp_path)
    loaded: list[Checkpoint] = []

    def spy(*args, **kwargs) -> Checkpoint:
        loaded.append(load_checkpoint(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(inputs, "load_checkpoint", spy)  # where every command loads it
    base = ["--model", "mlp", "--model-kwargs", '{"width": 8, "depth": 2}', "--top-k", "1",
            "--subset", "20", "--no-progress"]
    for name, flag, value, expected in [("two.pt", "--state-key", "state_dict", a),
                                        ("ema.ckpt", "--prefix", "ema.module.", b)]:
        capsys.readouterr()
        assert main(["hessian", name, *base, "--out", "h.h5", "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("landscape hessian: error: ") and f"choose one with {flag}" in err
        listed = ("'state_dict' (8 tensors), 'model_state_dict' (8 tensors)" if name == "two.pt"
                  else "'model.' (8 tensors), 'ema.module.' (8 tensors)")
        assert listed in err
        loaded.clear()
        assert main(["hessian", name, *base, flag, value, "--out", "h.h5", "--overwrite"]) == 0
        assert len(loaded) == 1 and _exactly(loaded[0].model, expected)
    # a command that cannot take the options lists them and refuses them
    assert main(["trajectory", "run", "--prefix", "ema."]) == 2
    assert "--prefix does not apply to 'landscape trajectory'" in capsys.readouterr().err
