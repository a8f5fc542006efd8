"""Sublevel-set persistence of surfaces (:mod:`landscape.topology`).

Ground truth: hand enumeration in 1-D; closed forms for well-separated Gaussian wells (their
floors are ``-A`` and the plateau between them is 0 to 1e-20); and an independent brute force
for every other grid, from the definition of the elder rule: a local minimum ``m`` dies at the
lowest level at which a path of axis steps joins it to a strictly lower minimum (the minimax
path, found by a Dijkstra search with ``max`` in place of ``+``).
"""

from __future__ import annotations

import heapq
import itertools
import sys

import numpy as np
import pytest

from landscape.errors import LandscapeError
from landscape.surface import Surface


def _gudhi() -> None:
    pytest.importorskip("gudhi")


# --------------------------------------------------------------------------- references
def _neighbours(index: tuple[int, ...], shape: tuple[int, ...]):
    for axis, step in itertools.product(range(len(shape)), (-1, 1)):
        j = list(index)
        j[axis] += step
        if 0 <= j[axis] < shape[axis]:
            yield tuple(j)


def _minimax_from(z: np.ndarray, start: tuple[int, ...]) -> np.ndarray:
    """Lowest possible maximum of ``z`` along an axis path from ``start`` to every point."""
    best = np.full(z.shape, np.inf)
    best[start] = z[start]
    heap = [(z[start], start)]
    while heap:
        level, i = heapq.heappop(heap)
        if level > best[i]:
            continue
        for j in _neighbours(i, z.shape):
            cand = max(level, z[j])
            if cand < best[j]:
                best[j] = cand
                heapq.heappush(heap, (cand, j))
    return best


def _brute_pairs(z: np.ndarray) -> list[tuple[float, float]]:
    """(birth, death) of every local minimum by the definition (generic values: no ties)."""
    minima = [i for i in np.ndindex(z.shape)
              if all(z[i] < z[j] for j in _neighbours(i, z.shape))]
    out = []
    for m in minima:
        lower = [m2 for m2 in minima if z[m2] < z[m]]
        if not lower:
            out.append((float(z[m]), np.inf))
            continue
        reach = _minimax_from(z, m)
        out.append((float(z[m]), float(min(reach[m2] for m2 in lower))))
    return sorted(out)


def _wells(shape_n: int, centres, depths, width: float, ndim: int = 2,
           bowl: float = 0.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """``bowl |p|^2 - sum_k A_k exp(-|p - c_k|^2 / (2 w^2))`` on a ``[-1, 1]^ndim`` grid
    (``c_k`` per array axis)."""
    g = np.linspace(-1.0, 1.0, shape_n)
    mesh = np.meshgrid(*([g] * ndim), indexing="ij")
    f = bowl * sum(m**2 for m in mesh)
    for c, a in zip(centres, depths, strict=True):
        r2 = sum((m - ci) ** 2 for m, ci in zip(mesh, c, strict=True))
        f = f - a * np.exp(-r2 / (2 * width**2))
    return f, [g] * ndim


# --------------------------------------------------------------------------- 1-D by hand
def test_one_dimensional_pairs_barriers_and_smad_by_hand():
    _gudhi()
    from landscape.topology import sublevel_persistence

    #        0    1    2    3    4    5    6    7    8
    z = [5.0, 1.0, 3.0, 2.0, 4.0, 0.0, 6.0, 2.5, 7.0]
    r = sublevel_persistence(z, min_persistence=1.2)
    # minima 0 (i5), 1 (i1), 2 (i3), 2.5 (i7): i3 joins i1 at 3, {i1, i3} joins i5 at 4,
    # i7 joins i5 at 6
    assert [(b.birth, b.death) for b in r.basins] == [(0.0, np.inf), (1.0, 4.0), (2.0, 3.0),
                                                      (2.5, 6.0)]
    assert [b.index for b in r.basins] == [(5,), (1,), (3,), (7,)]
    assert [b.saddle_index for b in r.basins] == [None, (4,), (2,), (6,)]
    # persistence inf, 3, 1, 3.5 against 1.2: the basin at i3 is not persistent
    assert r.persistent == (0, 1, 3) and r.n_basins == 3
    np.testing.assert_array_equal(r.barriers, [[0.0, 4.0, 6.0], [4.0, 1.0, 6.0],
                                               [6.0, 6.0, 2.5]])
    assert [r.basins[i].parent for i in r.persistent] == [None, 0, 0]
    assert r.deepest_barrier == 3.5
    assert r.total_persistence == 6.5
    # first saddles: i5 at 4 (i1 joins), i1 at 4, i7 at 6 -> gaps 4, 3, 3.5
    assert r.smad == pytest.approx(3.5)
    # every minimum counts with a zero threshold; the raw minima count is the same
    assert sublevel_persistence(z, min_persistence=0.0).n_basins == 4


def test_smad_is_landscapers_mean_leaf_gap_on_the_full_tree():
    _gudhi()
    from landscape.topology import sublevel_persistence

    # minima 0 and 1 merge at 2: Landscaper's merge tree has both leaves under the saddle 2
    r = sublevel_persistence([3.0, 1.0, 2.0, 0.0, 4.0], min_persistence=0.0)
    assert r.smad == pytest.approx(((2 - 0) + (2 - 1)) / 2)
    assert sublevel_persistence([2.0, 1.0, 0.0, 1.0, 2.0], min_persistence=0.0).smad == 0.0



#: ``LossLandscape(loss, [x, y]).smad()`` of Landscaper (github.com/Vis4SciML/Landscaper at
#: 7a93bf019bffe4e5001c9a6d390874167c454906, topopy 1.0.4, nglpy 1.1.7) on the examples below,
#: with its merge tree on nglpy's empty-region graph of the grid's points; topopy holds the
#: values in float32, hence the tolerance. Its minima and leaf-to-saddle gaps equal ours too.
#: (The wells there had their centres as (x, y): the transpose of ours, with the same tree.)
LANDSCAPER_SMAD = {"three_wells": (0.5556477798769871, 3), "random": (0.8934472185369073, 22)}


@pytest.mark.parametrize("key", sorted(LANDSCAPER_SMAD))
def test_full_tree_smad_matches_landscaper(key):
    _gudhi()
    from landscape.topology import sublevel_persistence

    if key == "three_wells":
        z, _ = _wells(25, CENTRES, DEPTHS, 0.15, bowl=0.2)
    else:
        z = np.random.default_rng(1).normal(size=(9, 11))
    smad, n_minima = LANDSCAPER_SMAD[key]
    r = sublevel_persistence(z, min_persistence=0.0)
    assert len(r.basins) == n_minima
    assert r.smad == pytest.approx(smad, rel=0, abs=1e-7)

# --------------------------------------------------------------------------- closed forms
CENTRES = [(-0.5, -0.5), (0.5, -0.5), (0.0, 0.5)]
DEPTHS = [1.0, 0.6, 0.3]


def test_separated_gaussian_wells_closed_form():
    _gudhi()
    from landscape.topology import sublevel_persistence

    # width 0.05, centres 0.5+ apart on grid points: another well adds < exp(-50) at a floor
    f, coords = _wells(41, CENTRES, DEPTHS, 0.05)
    r = sublevel_persistence(f, min_persistence=0.01, coords=coords)
    assert r.n_basins == 3
    got = [r.basins[i] for i in r.persistent]
    np.testing.assert_allclose([b.birth for b in got], [-1.0, -0.6, -0.3], rtol=0, atol=1e-15)
    np.testing.assert_allclose([b.death for b in got[1:]], [0.0, 0.0], atol=1e-15)
    assert got[0].death == np.inf
    # centres are per array axis (iy, ix); coords_of gives (x, y)
    assert [r.coords_of(b.index) for b in got] == [pytest.approx(c[::-1]) for c in CENTRES]
    np.testing.assert_allclose(r.barriers, [[-1.0, 0, 0], [0, -0.6, 0], [0, 0, -0.3]],
                               atol=1e-15)
    assert r.deepest_barrier == pytest.approx(0.6, abs=1e-15)
    assert r.total_persistence == pytest.approx(0.9, abs=1e-15)
    # every basin first meets another at the plateau: gaps 1, 0.6, 0.3
    assert r.smad == pytest.approx(1.9 / 3, abs=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_overlapping_wells_and_random_grids_match_the_brute_force(seed):
    _gudhi()
    from landscape.topology import sublevel_persistence

    rng = np.random.default_rng(seed)
    # two wells close enough to share a slope (their saddle is above the plateau), one apart
    f, _ = _wells(25, [(-0.2, 0.0), (0.15, 0.05), (0.6, 0.6)], [1.0, 0.7, 0.5], 0.15,
                  bowl=0.1)
    for z in (f, rng.normal(size=(9, 11)), rng.normal(size=(17,))):
        r = sublevel_persistence(z, min_persistence=0.0)
        ref = _brute_pairs(z)
        assert r.pairs.tolist() == [list(p) for p in ref]
        assert r.n_basins == len(ref)
        assert len(r.basins) == len(ref)


def test_barriers_are_the_minimax_paths_between_persistent_basins():
    _gudhi()
    from landscape.topology import sublevel_persistence

    f, _ = _wells(31, [(-0.2, 0.0), (0.2, 0.05), (0.6, 0.6)], [1.0, 0.7, 0.5], 0.15, bowl=0.1)
    rng = np.random.default_rng(3)
    cases = [(f, sublevel_persistence(f, min_persistence=0.05))]
    for _ in range(3):  # per-basin thresholds from uneven standard errors
        z = rng.normal(size=(12, 13))
        cases.append((z, sublevel_persistence(z, stderr=rng.uniform(0.0, 0.3, z.shape))))
    assert cases[0][1].n_basins == 3
    for z, r in cases:
        mins = [r.basins[i].index for i in r.persistent]
        assert len(mins) >= 2
        for i, m in enumerate(mins):
            reach = _minimax_from(z, m)
            np.testing.assert_array_equal(r.barriers[i], [reach[m2] for m2 in mins])


# --------------------------------------------------------------------------- noise
@pytest.mark.parametrize("bowl", [0.0, 0.2])
def test_count_is_robust_to_noise_at_the_standard_error(bowl):
    _gudhi()
    from landscape.topology import sublevel_persistence

    f, _ = _wells(41, CENTRES, DEPTHS, 0.15, bowl=bowl)
    clean = sublevel_persistence(f, min_persistence=1e-9)
    assert clean.n_basins == 3
    for sigma in (0.003, 0.01, 0.03):
        se = np.full(f.shape, sigma)
        for seed in range(8):
            z = f + np.random.default_rng(seed).normal(0.0, sigma, f.shape)
            assert sublevel_persistence(z, min_persistence=0.0).n_basins > 3  # noise minima
            r = sublevel_persistence(z, stderr=se)  # default: 4 SE of the difference
            assert r.n_basins == 3, (sigma, seed)
            got = [r.basins[i] for i in r.persistent]
            ref = [clean.basins[i] for i in clean.persistent]
            for g, c in zip(got, ref, strict=True):
                assert abs(g.birth - c.birth) < 5 * sigma
            if bowl > 0:  # no plateau: 4σ is enough there
                assert sublevel_persistence(z, min_persistence=4 * sigma).n_basins == 3


# --------------------------------------------------------------------------- N-D, invariances
def test_three_dimensional_grid():
    _gudhi()
    from landscape.topology import sublevel_persistence

    centres = [(-0.5, -0.5, -0.5), (0.5, 0.5, -0.5), (0.0, 0.5, 0.5), (0.5, -0.5, 0.5)]
    f, coords = _wells(17, centres, [1.0, 0.8, 0.6, 0.4], 0.12, ndim=3)
    r = sublevel_persistence(f, min_persistence=0.01, coords=coords)
    assert r.n_basins == 4
    np.testing.assert_allclose([r.basins[i].birth for i in r.persistent],
                               [-1.0, -0.8, -0.6, -0.4], atol=1e-12)
    z = np.random.default_rng(5).normal(size=(5, 6, 4))
    assert sublevel_persistence(z, min_persistence=0.0).pairs.tolist() == \
        [list(p) for p in _brute_pairs(z)]


def test_adding_a_constant_shifts_births_and_deaths_only():
    _gudhi()
    from landscape.topology import sublevel_persistence

    f, _ = _wells(31, CENTRES, DEPTHS, 0.15, bowl=0.1)
    a = sublevel_persistence(f, min_persistence=0.05)
    b = sublevel_persistence(f + 7.25, min_persistence=0.05)
    assert a.n_basins == b.n_basins == 3
    np.testing.assert_allclose(b.pairs, a.pairs + 7.25, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.barriers, a.barriers + 7.25, rtol=0, atol=1e-12)
    assert b.deepest_barrier == pytest.approx(a.deepest_barrier, abs=1e-12)
    assert b.smad == pytest.approx(a.smad, abs=1e-12)


def test_grid_points_are_vertices_axis_steps_connect():
    _gudhi()
    from landscape.topology import sublevel_persistence

    # a checkerboard: the two 0s touch only diagonally, so they are two basins
    r = sublevel_persistence([[0.0, 1.0], [1.0, 0.0]], min_persistence=0.5)
    assert r.n_basins == 2 and r.barriers[0, 1] == 1.0


# --------------------------------------------------------------------------- missing data
def test_missing_and_diverged_points_leave_no_finite_barrier():
    _gudhi()
    from landscape.topology import sublevel_persistence

    z = np.array([0.0, 1.0, np.nan, 0.5, 2.0, np.inf, -1.0])
    r = sublevel_persistence(z, min_persistence=0.1)
    assert r.n_missing == 2
    assert [(b.birth, b.death) for b in r.basins] == [(-1.0, np.inf), (0.0, np.inf),
                                                      (0.5, np.inf)]
    assert r.n_basins == 3 and r.deepest_barrier is None
    done = np.ones(z.shape, bool)
    done[2] = False  # the NaN at i2 is also unfinished: the same
    z2 = np.where(np.isnan(z), 9.0, z)
    assert sublevel_persistence(z2, done=done, min_persistence=0.1).pairs.tolist() == \
        [[-1.0, np.inf], [0.0, np.inf], [0.5, np.inf]]
    with pytest.raises(LandscapeError, match="no computed point"):
        sublevel_persistence([np.nan, np.inf])


def test_without_standard_errors_there_is_no_count():
    _gudhi()
    from landscape.topology import sublevel_persistence

    r = sublevel_persistence([3.0, 1.0, 2.0, 0.0, 4.0])
    assert r.n_basins is None and r.deepest_barrier is None and r.smad is None
    assert "min_persistence" in r.reason
    se = np.array([0.1, 0.1, np.nan, 0.1, 0.1])  # the saddle of the second basin lacks one
    assert "no standard error" in sublevel_persistence([3.0, 1.0, 2.0, 0.0, 4.0],
                                                       stderr=se).reason


def test_per_basin_thresholds_keep_barriers_through_a_noise_basin():
    _gudhi()
    from landscape.topology import sublevel_persistence

    # x = 0 | ridge 10 | y = 9.0 | saddle 9.6 | q = 9.2 | 20: q joins y's component at 9.6 and
    # that component joins x's at 10. Small errors around q, large ones around y and the ridge:
    # q is persistent (0.4 > 4 * 0.01 * sqrt 2), y is not (1.0 < 4 * 0.5 * sqrt 2).
    z = [0.0, 10.0, 9.0, 9.6, 9.2, 20.0]
    se = [0.01, 0.5, 0.5, 0.01, 0.01, 0.01]
    r = sublevel_persistence(z, stderr=se)
    assert [(b.birth, b.death) for b in r.basins] == [(0.0, np.inf), (9.0, 10.0), (9.2, 9.6)]
    assert r.persistent == (0, 2) and r.n_basins == 2
    np.testing.assert_array_equal(r.barriers, [[0.0, 10.0], [10.0, 9.2]])  # the minimax path
    assert r.basins[2].parent is None  # the component it joins holds no persistent basin
    assert r.deepest_barrier == pytest.approx(0.4)
    assert r.smad == pytest.approx(((10 - 0) + (10 - 9.2)) / 2)

def test_surface_persistence_reads_the_stored_standard_errors():
    _gudhi()
    from landscape.topology import surface_persistence

    x = np.linspace(-1, 1, 9)
    z = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.0, 6.0, 2.5, 7.0])
    s = Surface(x=x, y=None, arrays={"train_loss": z}, done=np.ones(9, bool),
                stderrs={"train_loss_se": np.full(9, 0.2)})
    r = surface_persistence(s)
    # threshold 4 * 0.2 * sqrt(2) = 1.13: persistence 3, 1, 3.5 -> two secondary basins
    assert r.n_basins == 3 and r.coords_of(r.basins[0].index) == (x[5],)
    assert surface_persistence(s, min_persistence=3.2).n_basins == 2
    s2 = Surface(x=x, y=None, arrays={"train_loss": z}, done=np.ones(9, bool))
    assert surface_persistence(s2).n_basins is None
    with pytest.raises(LandscapeError, match="'array' parameter"):
        surface_persistence(s2, "test_loss")


@pytest.mark.parametrize("kw", [{"min_persistence": -1.0}, {"se_multiple": 0.0},
                                {"stderr": np.ones(3)}, {"done": np.ones(2, bool)},
                                {"coords": [np.arange(4)]}])
def test_bad_parameters_name_themselves(kw):
    _gudhi()
    from landscape.topology import sublevel_persistence

    name = next(iter(kw))
    with pytest.raises(LandscapeError, match=f"'{name}' parameter"):
        sublevel_persistence([3.0, 1.0, 2.0, 0.0, 4.0], **kw)


def test_missing_gudhi_names_the_extra(monkeypatch):
    from landscape import topology

    monkeypatch.setitem(sys.modules, "gudhi", None)  # import gudhi raises ImportError
    assert not topology.gudhi_available()
    assert "landscape[topology]" in topology.gudhi_missing_reason()
    with pytest.raises(LandscapeError, match=r"pip install 'landscape\[topology\]'"):
        topology.sublevel_persistence([1.0, 0.0, 1.0], min_persistence=0.0)


# --------------------------------------------------------------------------- figure
def test_persistence_diagram_draws_pairs_and_threshold():
    _gudhi()
    pytest.importorskip("matplotlib")
    from landscape.plot import plot_persistence
    from landscape.topology import sublevel_persistence

    z = [5.0, 1.0, 3.0, 2.0, 4.0, 0.0, 6.0, 2.5, 7.0]
    r = sublevel_persistence(z, min_persistence=1.2)
    ax = plot_persistence(r)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("persistent (3)" in t for t in labels)
    assert any("threshold" in t for t in labels)
    assert ax.get_xlabel().startswith("birth") and ax.get_ylabel().startswith("death")
    assert r.plot() is not None
    unknown = sublevel_persistence(z)
    assert "min_persistence" in " ".join(t.get_text() for t in plot_persistence(unknown).texts)


# --------------------------------------------------------------------------- compare's rows
def _two_well_surface(se: float | None) -> Surface:
    f, (g, _) = _wells(21, [(0.0, 0.0), (0.5, 0.5)], [1.0, 0.5], 0.15, bowl=0.2)
    stderrs = {} if se is None else {"train_loss_se": np.full(f.shape, se)}
    return Surface(x=g, y=g.copy(), arrays={"train_loss": f}, done=np.ones(f.shape, bool),
                   stderrs=stderrs)


def test_compare_rows_replace_the_raw_count_as_headline():
    _gudhi()
    from landscape.report.numbers import METRIC_KEYS, SPREAD_KEYS, TOPOLOGY_KEYS, surface_numbers
    from landscape.report.render import metric_info
    from landscape.topology import surface_persistence

    for keys in (METRIC_KEYS, SPREAD_KEYS):  # the new rows come before the raw count
        assert keys.index("local_minima") - keys.index("persistent_basins") == 3
    assert "(raw)" in metric_info({"array": "train_loss"})["local_minima"]["name"]
    s = _two_well_surface(0.01)
    row, _, notes = surface_numbers(s, "net", eps=0.1, basin_threshold=0.1,
                                    array="train_loss")
    r = surface_persistence(s)
    assert row["persistent_basins"] == r.n_basins == 2
    assert row["deepest_barrier"] == r.deepest_barrier > 0.3
    assert row["smad"] == r.smad
    assert not [n for n in notes if "n/a" in n]
    row, _, notes = surface_numbers(_two_well_surface(None), "net", eps=0.1,
                                    basin_threshold=0.1, array="train_loss")
    assert all(row[k] is None for k in TOPOLOGY_KEYS)
    assert any(n.startswith("net: persistent_basins") and "standard errors" in n
               for n in notes)


def test_compare_rows_say_why_without_gudhi(monkeypatch):
    from landscape.report.numbers import TOPOLOGY_KEYS, surface_numbers

    monkeypatch.setitem(sys.modules, "gudhi", None)
    row, _, notes = surface_numbers(_two_well_surface(0.01), "net", eps=0.1,
                                    basin_threshold=0.1, array="train_loss")
    assert all(row[k] is None for k in TOPOLOGY_KEYS)
    assert row["local_minima"] is not None  # the raw count stays
    assert any("n/a" in n and "landscape[topology]" in n for n in notes)


def test_landscape_plot_draws_the_diagram_only_when_asked(tmp_path):
    _gudhi()
    pytest.importorskip("matplotlib")
    from landscape.plot import plot_file

    path = tmp_path / "s.h5"
    _two_well_surface(0.01).save(path)
    default = plot_file(path, out_dir=tmp_path / "a")
    assert not [p for p in default if "persistence" in p.name]
    (written,) = plot_file(path, kinds=["persistence"], out_dir=tmp_path / "b")
    assert written.name == "s_persistence.png" and written.stat().st_size > 1000
