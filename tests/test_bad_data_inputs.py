"""Bad data inputs of issue 24, through the library and the CLI.

Non-finite inputs and targets, endless streams, training on streamed data, token ids beyond
the model's vocabulary, ``drop_last`` and shuffling DataLoaders, a batch size that a
DataLoader ignores, and ``--model NAME --data NAME`` adapting the model as ``train`` does.
CLI errors follow tests/test_bad_inputs.py: exit 2, one stderr line, files untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from landscape.cli.main import main

from landscape.checkpoints import save_checkpoint
from landscape.data import (
    DataSpec,
    StreamData,
    TensorData,
    as_tensor_data,
    check_compatible,
    load_data,
    model_vocab_size,
)
from landscape.errors import LandscapeError
from landscape.evaluation import Evaluator
from landscape.models import ModelSpec, build
from tests import _datasets
from tests.test_bad_inputs import assert_one_line_error, snapshot

REPO = Path(__file__).resolve().parents[1]
X = "--x=-1:1:3"
NAN = "tests._datasets:nan_input"
NAN_MSG = f"The train split of '{NAN}' has a non-finite input in sample 17 (nan)"


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A working directory with two digits-shaped MLP checkpoints; ``tests`` importable."""
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.chdir(tmp_path)
    spec = ModelSpec("mlp", {"width": 8, "depth": 1})
    for name, seed in (("mlp.pt", 0), ("mlp_b.pt", 1)):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / name, spec.build(), spec)
    return tmp_path


def _fails_cleanly(capsys, work: Path, argv: list[str], fragment: str) -> None:
    before = snapshot(work)
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, fragment, argv[0])
    assert snapshot(work) == before


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))


# ----------------------------------------------------------------------- 1. non-finite data
@pytest.mark.parametrize("argv", [
    ["surface", "mlp.pt", X, "--out", "s.h5", "--no-progress"],
    ["connect", "mlp.pt", "mlp_b.pt", "--out", "ab.h5", "--no-progress"],
    ["hessian", "mlp.pt", "--no-progress"],
    ["train", "--model", "mlp", "--epochs", "1", "--out", "run", "--no-progress"],
], ids=["surface", "connect", "hessian", "train"])
def test_nan_input_is_one_line_before_anything(capsys, work, argv) -> None:
    _fails_cleanly(capsys, work, [*argv, "--data", NAN], NAN_MSG)


def test_nan_input_through_a_subprocess_prints_one_line(work) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LANDSCAPE_DEBUG"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "landscape.cli", "surface", "mlp.pt", X,
                        "--data", NAN, "--no-progress"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert_one_line_error(r.returncode, r.stdout, r.stderr, NAN_MSG, "surface")
    assert sorted(p.name for p in work.iterdir()) == ["mlp.pt", "mlp_b.pt"]


@pytest.mark.usefixtures("work")
def test_non_finite_inputs_and_targets_name_split_sample_and_value() -> None:
    with pytest.raises(LandscapeError, match=r"non-finite input in sample 3 \(-inf\)"):
        # the index is the loader's, even when a subset is asked for
        load_data(DataSpec(NAN, subset=10, kwargs={"where": 3, "value": float("-inf")}))
    with pytest.raises(LandscapeError, match="The train split of 'tests._datasets:inf_target' "
                                             r"has a non-finite target in sample 2 \(inf\)"):
        load_data("tests._datasets:inf_target")
    assert load_data(NAN, "test").x.isfinite().all()  # the clean split loads


def test_evaluator_refuses_non_finite_tensor_inputs() -> None:
    x, y = _datasets._tiny("train")
    x[4, 0, 0, 0] = float("inf")
    with pytest.raises(LandscapeError, match=r"Dataset 'train' has a non-finite input in "
                                             r"sample 4 \(inf\)"):
        Evaluator(_net(), {"train": (x, y)})


def test_additive_float_masks_may_hold_minus_inf() -> None:
    mask = torch.zeros(4, 3)
    mask[:, 2] = float("-inf")
    batch = {"inputs_embeds": torch.rand(4, 3), "attention_mask": mask,
             "labels": torch.arange(4)}
    assert len(list(StreamData(torch.utils.data.DataLoader([batch], batch_size=None))
                    .batches(4))) == 1


@pytest.mark.usefixtures("work")
def test_streamed_non_finite_input_is_named_as_it_is_read() -> None:
    data = load_data("tests._datasets:nan_loader")
    assert isinstance(data, StreamData)
    want = r"The train split of 'tests._datasets:nan_loader' has a non-finite input in sample 37"
    with pytest.raises(LandscapeError, match=want):
        list(data.batches(10))
    ev = Evaluator(_net(), {"train": data}, data_budget=0)  # the first batch is clean
    with pytest.raises(LandscapeError, match=want):
        ev.evaluate_loaded()
    # a subset of a streamed map-style Dataset names the Dataset's own index
    sub = StreamData(_datasets.NanPairs(), "pairs").subset(47)
    with pytest.raises(LandscapeError, match="Dataset 'pairs' has a non-finite input in "
                                             "sample 37"):
        list(sub.batches(8))


# ------------------------------------------------------------------------- 2. endless streams
@pytest.mark.usefixtures("work")
@pytest.mark.parametrize("name", ["endless", "endless_loader"])
def test_stream_of_unknown_length_needs_subset(name) -> None:
    spec = f"tests._datasets:{name}"
    with pytest.raises(LandscapeError, match="no known length.*set the 'subset' parameter"):
        load_data(spec)
    data = load_data(DataSpec(spec, subset=30))
    sizes = [len(b[0]) for b in data.batches(8)]
    assert sum(sizes) == 30 and len(data) == 30
    first = torch.cat([b[0] for b in data.batches(8)])
    again = torch.cat([b[0] for b in load_data(DataSpec(spec, subset=40)).batches(8)])
    assert torch.equal(first, again[:30])  # the first samples of the stream


def test_endless_stream_on_the_cli(capsys, work) -> None:
    argv = ["surface", "mlp.pt", X, "--data", "tests._datasets:endless", "--no-progress"]
    _fails_cleanly(capsys, work, argv, "set the --subset option")  # the flag, in CLI words
    # --no-full-check: the full-data comparison of a subset cannot read an endless stream
    assert main([*argv, "--subset", "40", "--no-full-check", "--splits", "train",
                 "--out", "s.h5"]) == 0
    from landscape.surface import Surface

    s = Surface.load(work / "s.h5")
    assert torch.isfinite(torch.as_tensor(s["train_loss"])).all()


def test_iterable_dataset_with_a_length_is_finite() -> None:
    class Sized(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(torch.rand(5, 2), range(5), strict=True))

        def __len__(self) -> int:
            return 5

    data = StreamData(Sized())
    assert data.length == 5 and len(data.subset(3)) == 3


# ------------------------------------------------------------------ 3. training on streams
def _final_state(run: Path) -> dict[str, torch.Tensor]:
    last = json.loads((run / "run.json").read_text())["checkpoints"][-1]["checkpoint"]
    return torch.load(run / last, weights_only=True)["state_dict"]


def test_train_on_a_streamed_loader_equals_in_memory_training(capsys, work) -> None:
    common = ["train", "--model", "mlp", "--model-kwargs", '{"width": 8, "depth": 1}',
              "--epochs", "2", "--batch-size", "16", "--no-progress"]
    assert main([*common, "--data", "tests._datasets:tiny_arrays", "--out", "mem"]) == 0
    # a shuffling, drop_last training loader: read whole and in order, then seeded shuffling
    kw = json.dumps({"shuffle": True, "drop_last": True})
    assert main([*common, "--data", "tests._datasets:tiny_loader", "--data-kwargs", kw,
                 "--out", "stream"]) == 0
    mem, stream = _final_state(work / "mem"), _final_state(work / "stream")
    assert mem.keys() == stream.keys()
    assert all(torch.equal(mem[k], stream[k]) for k in mem)
    assert main([*common, "--data", "tests._datasets:endless", "--subset", "32",
                 "--out", "endless"]) == 0
    capsys.readouterr()


def test_train_refuses_streams_it_cannot_hold(capsys, work) -> None:
    _fails_cleanly(capsys, work, ["train", "--model", "mlp", "--epochs", "1", "--out", "run",
                                  "--data", "tests._datasets:token_loader", "--no-progress"],
                   "gives batches of mappings; training needs (x, y) pairs")
    with pytest.raises(LandscapeError, match="more than can be held in memory"):
        as_tensor_data(StreamData(_datasets.tiny_loader("train")), budget=1000)


# ------------------------------------------------------------------- 4. token ids vs vocab
@pytest.mark.usefixtures("work")
def test_token_ids_beyond_the_vocabulary_are_one_line() -> None:
    net = _datasets.token_classifier(10)
    assert model_vocab_size(net) == 10
    with pytest.raises(LandscapeError, match=r"The train split of 'tests._datasets:oov_tokens'"
                                             r" has a token id outside the vocabulary of model "
                                             r"TokenClassifier \(10 ids.*in sample 5; the "
                                             "largest id is 12"):
        check_compatible(net, load_data("tests._datasets:oov_tokens"))
    check_compatible(net, load_data("tests._datasets:oov_tokens", "test"))

    class HFLike(torch.nn.Module):  # HuggingFace models say it in their config
        config = type("Config", (), {"vocab_size": 11})()

    assert model_vocab_size(HFLike()) == 11
    stream = load_data("tests._datasets:oov_token_loader")
    check_compatible(net, stream)  # the first batch is fine; later ones are read and checked
    with pytest.raises(LandscapeError, match="in sample 9; the largest id is 30"):
        Evaluator(net, {"train": stream}, data_budget=0).evaluate_loaded()


def test_token_ids_beyond_the_vocabulary_on_the_cli(capsys, work) -> None:
    spec = ModelSpec("tests._datasets:token_classifier", {"vocab": 10})
    save_checkpoint(work / "tok.pt", spec.build(), spec)
    _fails_cleanly(capsys, work, ["surface", "tok.pt", X, "--data",
                                  "tests._datasets:oov_tokens", "--no-progress"],
                   "in sample 5; the largest id is 12")


# ------------------------------------------------------- 5-6. drop_last, shuffle, batch size
@pytest.mark.parametrize("kwargs", [{"drop_last": True}, {"shuffle": True},
                                    {"shuffle": True, "drop_last": True}])
def test_training_loaders_are_read_in_order_and_whole(kwargs) -> None:
    net = _net()
    ref = Evaluator(net, {"t": TensorData(*_datasets._tiny("train"), "t")}, batch_size=10)
    ev = Evaluator(net, {"t": _datasets.tiny_loader("train", **kwargs)}, data_budget=0)
    want = ref.evaluate_loaded()["t"]
    for _ in range(2):  # the same bits at every pass
        got = ev.evaluate_loaded()["t"]
        assert got.n == 48 and got.loss == want.loss and got.accuracy == want.accuracy
    reading = ev.datasets["t"].data.reading
    assert ("shuffle=True is not applied" in reading) == ("shuffle" in kwargs)
    assert ("drop_last=True is not applied" in reading) == ("drop_last" in kwargs)


def test_drop_last_with_a_sampler_reads_the_samplers_samples() -> None:
    loader = torch.utils.data.DataLoader(list(range(20)), batch_size=3,
                                         sampler=list(range(0, 20, 2)), drop_last=True)
    data = StreamData(loader)
    assert torch.cat(list(data.batches(1))).tolist() == list(range(0, 20, 2))
    assert len(data) == 10


def test_a_loaders_batch_size_is_recorded_and_a_given_one_noted() -> None:
    net, loader = _net(), _datasets.tiny_loader("train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = Evaluator(net, {"t": loader})  # no batch size asked for: nothing to say
        ev.evaluate_loaded()
    assert ev.choose_batch_size() == 10 == ev.batch_size
    given = Evaluator(net, {"t": loader}, batch_size=64)
    with pytest.warns(UserWarning, match=r"batch_size=64 does not apply to the DataLoader\(s\) "
                                         r"'t' \(10\)"):
        given.evaluate_loaded()


def test_surface_records_the_loaders_batch_size(capsys, work) -> None:
    assert main(["surface", "mlp.pt", X, "--data", "tests._datasets:tiny_loader",
                 "--out", "s.h5", "--no-progress"]) == 0
    from landscape.surface import Surface

    assert Surface.load(work / "s.h5").provenance["batch_size_used"] == 10
    capsys.readouterr()


# ------------------------------------------------------------ 7. --model NAME --data NAME
def test_model_name_is_adapted_to_the_data_like_train(capsys, work) -> None:
    net = build("resnet20", in_channels=1, width=0.25)
    torch.save(net.state_dict(), work / "plain_sd.pt")
    argv = ["surface", "plain_sd.pt", "--model", "resnet20", "--model-kwargs",
            '{"width": 0.25}', "--data", "digits", "--subset", "16", "--splits", "train",
            "--x=-1:1:2", "--batch-size", "16", "--out", "s.h5", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err


@pytest.mark.usefixtures("work")
def test_huggingface_model_fed_ids_beyond_its_vocabulary() -> None:
    transformers = pytest.importorskip("transformers")
    from tests import _hf_data

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=_hf_data.VOCAB,
                                  n_positions=16)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    assert model_vocab_size(model) == _hf_data.VOCAB
    check_compatible(model, load_data("tests._hf_data:tokens"))  # ids below the vocabulary
    items = _hf_data.samples("train")
    items[6] = items[6].clone()
    items[6][1] = _hf_data.VOCAB + 5
    loader = torch.utils.data.DataLoader(items, batch_size=4, collate_fn=_hf_data.pad)
    stream = StreamData(loader, "tokens", split="train")
    check_compatible(model, stream)  # the first batch (samples 0-3) is fine
    with pytest.raises(LandscapeError, match=r"The train split of 'tokens' has a token id "
                                             r"outside the vocabulary of model GPT2LMHeadModel "
                                             rf"\({_hf_data.VOCAB} ids.*in sample 6; the largest "
                                             rf"id is {_hf_data.VOCAB + 5}"):
        Evaluator(model, {"train": stream}, data_budget=0).evaluate_loaded()
