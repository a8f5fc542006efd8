"""Seed-level statistics: t-intervals, Welch's difference, exact permutation tests, arms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from landscape.checkpoints import save_checkpoint
from landscape.data import DataSpec, load_data
from landscape.directions import random_directions
from landscape.hessian.results import CurvatureResult, compute_curvature
from landscape.models import ModelSpec
from landscape.replicates import (
    compare_arms,
    seed_difference,
    seed_summary,
    seed_values,
)
from landscape.surface import compute_surface


def test_seed_summary_is_students_t_interval():
    x = [1.0, 2.5, 4.0]
    s = seed_summary(x)
    m, sd = np.mean(x), np.std(x, ddof=1)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert (s.n, s.mean, s.sd) == (3, pytest.approx(m), pytest.approx(sd))
    assert (s.lo, s.hi) == (pytest.approx(m - half), pytest.approx(m + half))
    lo, hi = stats.t.interval(0.95, 2, loc=m, scale=stats.sem(x))
    assert (s.lo, s.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert "(3 seeds)" in s.text()
    one = seed_summary([2.0, None, float("nan")])
    assert one.n == 1 and math.isnan(one.lo) and one.text() == "2 (1 seed)"
    assert seed_summary([]).text() == "n/a"


def test_seed_difference_is_welch_and_exact_permutation():
    a, b = [1.0, 1.4, 0.9, 1.2], [2.0, 2.9, 2.2]
    d = seed_difference(a, b)
    t = stats.ttest_ind(a, b, equal_var=False)
    assert d.p_welch == pytest.approx(t.pvalue)
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    delta = np.mean(a) - np.mean(b)
    assert (d.delta, d.df) == (pytest.approx(delta), pytest.approx(df))
    assert (d.lo, d.hi) == (pytest.approx(delta - half), pytest.approx(delta + half))
    perm = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y),
                                  permutation_type="independent", n_resamples=np.inf,
                                  alternative="two-sided")
    assert d.p_permutation == pytest.approx(perm.pvalue)
    assert d.p_min == pytest.approx(2 / math.comb(7, 4))
    assert d.verdict == "differs"


def test_three_seeds_cannot_reach_p_below_a_tenth_and_overlap_is_within_spread():
    d = seed_difference([1.0, 2.0, 3.0], [10.0, 11.0, 12.0])
    assert d.p_permutation == pytest.approx(0.1) and d.p_min == pytest.approx(0.1)
    assert d.verdict == "differs"  # Welch's interval excludes 0
    close = seed_difference([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert close.verdict == "within the seed spread" and close.lo < 0 < close.hi
    assert seed_difference([1.0], [2.0, 3.0]).verdict == "not testable"
    assert seed_difference([1.0, 1.0], [2.0, 2.0]).verdict == "not testable"


def test_directions_are_nested_within_seeds():
    assert seed_values([1.0, [1.0, 2.0, 6.0], None, [float("nan")]])[:2] == [1.0, 3.0]
    vals = seed_values([[1.0, 3.0], [5.0, 7.0], [2.0]])
    assert vals == [2.0, 6.0, 2.0]
    # K direction pairs of one seed are not K replicates: the summary has n = seeds
    assert seed_summary(vals).n == 3


@pytest.fixture(scope="module")
def arm_files(tmp_path_factory):
    """3 seeds of a residual MLP and 3 of its plain twin, each with a surface and a
    curvature result (the same seeded directions for every run)."""
    d = tmp_path_factory.mktemp("arms")
    data = DataSpec("digits", subset=64)
    train = load_data(data)
    files: dict[str, list[str]] = {"residual": [], "plain": []}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for arm, shortcut in (("residual", True), ("plain", False)):
            spec = ModelSpec("mlp", {"width": 8, "depth": 2, "shortcut": shortcut})
            for seed in range(3):
                torch.manual_seed(seed)
                net = spec.build().eval()
                ck = d / f"{arm}{seed}.pt"
                save_checkpoint(ck, net, spec, data=data.to_dict())
                out = d / f"{arm}{seed}.h5"
                compute_surface(net, random_directions(net, seeds=0), {"train": train},
                                x="-0.5:0.5:5", y="-0.5:0.5:5", out=out, progress=False)
                compute_curvature(net, train, top_k=1, tol=1e-5).save(out)
                files[arm].append(str(out))
    finally:
        torch.set_num_threads(before)
    return files


def test_compare_arms_matches_a_hand_computation(arm_files, tmp_path):
    comp, report = compare_arms(arm_files, eps=0.25, progress=False)
    assert comp.arms == ("residual", "plain")
    assert comp.seeds["plain"] == ("plain/s0", "plain/s1", "plain/s2")
    # λmax of each run read independently from its file
    lam = {arm: [float(CurvatureResult.load(f).top_eigenvalues[0]) for f in fs]
           for arm, fs in arm_files.items()}
    assert comp.values["lambda_max"]["residual"] == pytest.approx(lam["residual"])
    for arm in ("residual", "plain"):
        s = comp.summaries["lambda_max"][arm]
        x = lam[arm]
        lo, hi = stats.t.interval(0.95, 2, loc=np.mean(x), scale=stats.sem(x))
        assert (s.mean, s.sd, s.lo, s.hi) == (pytest.approx(np.mean(x)),
                                              pytest.approx(np.std(x, ddof=1)),
                                              pytest.approx(lo), pytest.approx(hi))
    d = comp.differences["lambda_max"]
    t = stats.ttest_ind(lam["residual"], lam["plain"], equal_var=False)
    assert d.p_welch == pytest.approx(t.pvalue)
    assert d.p_min == pytest.approx(0.1)
    # the per-seed report holds one column per run
    assert list(report.names) == [*comp.seeds["residual"], *comp.seeds["plain"]]
    out = comp.save(tmp_path / "rep")
    doc = json.loads((out / "arms.json").read_text())
    assert doc["summaries"]["lambda_max"]["plain"]["n"] == 3
    md = (out / "arms.md").read_text()
    assert "| lambda_max |" in md and "permutation p" in md


def test_rows_that_assume_a_minimum_are_not_ranked_off_a_minimum(arm_files):
    comp, _ = compare_arms(arm_files, eps=0.25, progress=False,
                           at_minimum={"residual": None, "plain": "gradient norm 0.3"})
    assert comp.verdict("lambda_max") in ("differs", "within the seed spread")
    assert comp.verdict("eps_sharpness").startswith("not at a minimum (plain)")
    assert "not ranked" in comp.markdown_table(["eps_sharpness"])


def test_cli_compare_with_arms(arm_files, tmp_path, capsys):
    from landscape.cli.main import main

    out = tmp_path / "cmp"
    argv = ["compare", ",".join(arm_files["residual"]), ",".join(arm_files["plain"]),
            "--names", "residual,plain", "--eps", "0.25", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| lambda_max |" in printed and "smallest attainable" in printed
    doc = json.loads((out / "arms.json").read_text())
    comp, _ = compare_arms(arm_files, eps=0.25, progress=False)
    assert doc["summaries"]["lambda_max"]["residual"]["mean"] == pytest.approx(
        comp.summaries["lambda_max"]["residual"].mean)
    assert (out / "report.md").exists()
    # one line, exit 2: checkpoints with arms, empty entries, repeated names
    assert main([*argv[:3], "--checkpoints", "a.pt,b.pt", "--out", str(tmp_path / "x")]) == 2
    assert main(["compare", arm_files["residual"][0] + ",", arm_files["plain"][0]]) == 2
    assert main([*argv[:3], "--names", "a,a"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("landscape compare: error:") for e in err)
