"""``landscape probe`` and ``landscape sharpening`` end to end, mechanism_numbers, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from landscape.cli.main import main

from landscape import storage
from landscape.data import DataSpec, load_data
from landscape.mechanisms import (
    GradFlowResult,
    LesionResult,
    SharpeningResult,
    dilution,
    lesion_study,
    mechanism_numbers,
)
from landscape.mechanisms import plot as mplot
from landscape.models import ModelSpec, build
from landscape.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mech") / "run"
    train(ModelSpec("mlp", {"width": 8, "depth": 3}), DataSpec("digits", subset=80),
          TrainConfig(epochs=1, lr=0.05), d, progress=False)
    return d


def test_probe_and_sharpening_cli(run_dir, capsys):
    out = run_dir.parent / "m.h5"
    assert main(["probe", str(run_dir / "epoch_0001.pt"), "--out", str(out),
                 "--what", "lesion,gradflow,dilution"]) == 0
    assert "wrote dilution,gradflow,gradflow_init,lesion" in capsys.readouterr().out
    assert set(storage.list_groups(out)) == {"dilution", "gradflow", "gradflow_init", "lesion"}
    lesion = LesionResult.load(out)
    assert lesion.n_samples_eval == 80 and len(lesion.blocks) == 3  # test split of the subset
    assert GradFlowResult.load(out, "gradflow_init").blocks == lesion.blocks
    assert main(["sharpening", str(run_dir), "--out", str(out), "--subset", "30",
                 "--trace-samples", "0"]) == 0
    assert "wrote /sharpening (2 checkpoints" in capsys.readouterr().out
    assert "lesion" in storage.list_groups(out)  # kept
    assert list(SharpeningResult.load(out).epochs) == [0, 1]


def test_cli_errors_are_one_line(run_dir, capsys, tmp_path):
    ck = str(run_dir / "epoch_0001.pt")
    assert main(["probe", ck, "--what", "lesion,nope", "--out", str(tmp_path / "a.h5")]) == 2
    assert "--what must be" in capsys.readouterr().err
    assert main(["probe", ck, "--blocks", "nomatch*", "--out", str(tmp_path / "a.h5")]) == 2
    assert "matches the block pattern" in capsys.readouterr().err
    not_ours = tmp_path / "x.h5"
    not_ours.write_bytes(b"precious")
    assert main(["probe", ck, "--what", "lesion", "--out", str(not_ours)]) == 2
    assert not_ours.read_bytes() == b"precious"
    assert main(["sharpening", str(tmp_path), "--out", str(tmp_path / "b.h5")]) == 2
    assert "run.json" in capsys.readouterr().err


def test_mechanism_numbers_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    data = load_data("digits", "train").subset(64)
    nets = {s: build("mlp", width=8, depth=3, shortcut=s) for s in (True, False)}
    nums = {s: mechanism_numbers(m.eval(), data) for s, m in nets.items()}
    for n in nums.values():
        assert {"lesion_single_mean", "path_length_peak", "gradflow_input_ratio",
                "dilution_k_median", "gsc_input", "shatter_corr_output",
                "seconds_lesion"} <= set(n)
    assert nums[False]["path_length_peak"] == 3
    les = {("residual" if s else "plain"): lesion_study(m, data) for s, m in nets.items()}
    dil = {("residual" if s else "plain"): dilution(m, data, n_linear=4) for s, m in nets.items()}
    ax = mplot.plot_lesion(les)
    assert len(ax.get_legend().get_texts()) == 3  # two nets and chance
    ax = mplot.plot_dilution(dil)
    ax.figure.savefig(tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 0


def test_every_plot_draws_two_networks(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from landscape.mechanisms import gradient_flow, path_lengths, sharpening, shattering

    data = load_data("digits", "train").subset(16)
    nets = {name: build("mlp", width=8, depth=2, shortcut=s).eval()
            for name, s in (("residual", True), ("plain", False))}
    ax = mplot.plot_gradflow({k: gradient_flow(m, data, n_iter=2) for k, m in nets.items()})
    assert len(ax.lines) == 2
    ax = mplot.plot_path_lengths({k: path_lengths(m, data, n_paths=2) for k, m in nets.items()})
    assert len(ax.patches) == 3 + 1  # 3 lengths for the residual net, 1 for the plain one
    ax = mplot.plot_shatter({k: shattering(m, data, n_points=8, max_lag=2)
                             for k, m in nets.items()})
    assert len(ax.lines) == 2
    sh = sharpening([nets["residual"]] * 2, data, lrs=[0.1, 0.05], momentum=0.9, n_trace=0)
    ax = sh.plot(label="res")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "res λmax", "res 2/η", "res (2+2β)/η"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [20, 40])
    plt.close("all")


def test_load_results_and_save_figures(run_dir, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from landscape.errors import LandscapeError
    from landscape.mechanisms import load_results, save_figures

    out = tmp_path / "m.h5"
    assert main(["probe", str(run_dir / "epoch_0001.pt"), "--out", str(out),
                 "--what", "lesion,paths"]) == 0
    res = load_results(out)
    assert set(res) == {"lesion", "paths"}
    files = save_figures({"residual": res, "again": res}, tmp_path / "figs")
    assert [f.name for f in files] == ["mechanisms_lesion.png", "mechanisms_paths.png"]
    assert all(f.stat().st_size > 0 for f in files)
    storage.update_file(tmp_path / "empty.h5", {"other": storage.Group()})
    with pytest.raises(LandscapeError, match="no mechanism results"):
        load_results(tmp_path / "empty.h5")


def test_probe_loss_and_dtype(run_dir, tmp_path):
    """--loss mse --dtype float64: the weight gradients of /gradflow are those of the mean
    one-hot squared error (landscape.losses' "mse") in float64, on its first 64 samples."""
    import torch

    from landscape.checkpoints import load_checkpoint

    ck = run_dir / "epoch_0001.pt"
    out = tmp_path / "m.h5"
    assert main(["probe", str(ck), "--what", "gradflow", "--loss", "mse", "--dtype",
                 "float64", "--out", str(out)]) == 0
    g = GradFlowResult.load(out)
    assert storage.read_group(out, "gradflow").attrs["loss"] == "mse"
    model = load_checkpoint(ck).model.double().eval()
    d = load_data(DataSpec("digits", subset=80), "train")
    x, y = d.x[:64].double(), d.y[:64]
    out_ = model(x)
    loss = (out_ - torch.nn.functional.one_hot(y, out_.shape[1]).double()).pow(2).mean(1).mean()
    params = [p for _, p in model.named_parameters() if p.ndim >= 2]
    want = [float(t.norm()) for t in torch.autograd.grad(loss, params)]
    np.testing.assert_allclose(g.weight_grad, want, rtol=1e-10)
    default = tmp_path / "d.h5"
    assert main(["probe", str(ck), "--what", "gradflow", "--out", str(default)]) == 0
    assert not np.allclose(GradFlowResult.load(default).weight_grad, want)  # cross-entropy


def _same_group(a: Path, b: Path, group: str, volatile: tuple[str, ...] = ("seconds",)) -> None:
    ga, gb = storage.read_group(a, group), storage.read_group(b, group)
    assert set(ga.datasets) == set(gb.datasets)
    for k in ga.datasets:
        np.testing.assert_array_equal(np.asarray(ga.datasets[k]), np.asarray(gb.datasets[k]))
    assert set(ga.attrs) == set(gb.attrs)
    assert {k: v for k, v in ga.attrs.items() if k not in volatile} == \
        {k: v for k, v in gb.attrs.items() if k not in volatile}


def test_probe_checkpoint_writes_the_file_of_the_command(run_dir, tmp_path, capsys):
    """The library call of 'landscape probe': the same groups and attributes, saved through
    the results' own classes."""
    from landscape import CheckpointInputs, probe_checkpoint

    ck = run_dir / "epoch_0001.pt"
    assert main(["probe", str(ck), "--what", "lesion,gradflow", "--out",
                 str(tmp_path / "cli.h5")]) == 0
    printed = capsys.readouterr().out.strip()
    import torch

    done = probe_checkpoint(ck, what=["lesion", "gradflow"], out=tmp_path / "lib.h5",
                            inputs=CheckpointInputs(dtype=torch.float32))
    assert set(done.results) == {"lesion", "gradflow", "gradflow_init"}
    assert done.line().split(" (")[0] == printed.split(" (")[0].replace("cli.h5", "lib.h5")
    for group in ("lesion", "gradflow", "gradflow_init"):
        _same_group(tmp_path / "cli.h5", tmp_path / "lib.h5", group)
    attrs = storage.read_group(tmp_path / "lib.h5", "gradflow").attrs
    assert (attrs["checkpoint"], attrs["dtype"], attrs["loss"]) == (str(ck), "float32", "default")
    assert "loss" not in storage.read_group(tmp_path / "lib.h5", "lesion").attrs
    assert "seconds" not in storage.read_group(tmp_path / "lib.h5", "gradflow_init").attrs
    # the output is checked before any computation; a foreign file is never replaced
    foreign = tmp_path / "x.h5"
    foreign.write_bytes(b"precious")
    from landscape.errors import LandscapeError

    with pytest.raises(LandscapeError, match="not a landscape file"):
        probe_checkpoint(ck, what=["lesion"], out=foreign, overwrite=True)
    assert foreign.read_bytes() == b"precious"


def test_sharpening_of_run_saves_what_the_command_saves(run_dir, tmp_path):
    import torch

    from landscape.mechanisms import sharpening_of_run

    assert main(["sharpening", str(run_dir), "--out", str(tmp_path / "cli.h5"), "--subset",
                 "30", "--trace-samples", "0"]) == 0
    res = sharpening_of_run(run_dir, subset=30, n_trace=0, dtype=torch.float32,
                            out=tmp_path / "lib.h5")
    _same_group(tmp_path / "cli.h5", tmp_path / "lib.h5", "sharpening")
    assert storage.read_group(tmp_path / "lib.h5", "sharpening").attrs["run_dir"] == str(run_dir)
    assert list(SharpeningResult.load(tmp_path / "lib.h5").epochs) == list(res.epochs)
    assert sharpening_of_run(run_dir, subset=30, n_trace=0, every=2).epochs.tolist() == [0, 1]
