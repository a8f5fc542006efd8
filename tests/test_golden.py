"""Files written today equal the golden files written before the architecture change (issue 10).

``tests/golden/generate.py`` runs a fixed sequence of CLI commands (surface, 1D interpolation,
curvature, ratio map, trajectory with its PC-plane surface) on a committed tiny MLP run; this
test runs it again and compares every group, dataset and attribute with the committed files,
except what legitimately differs between two runs: the root ``created`` timestamp and the
``tool_version`` and wall-clock ``seconds`` of the provenance.

Numbers: surfaces come from torch alone and match to the bit on one machine. Curvature and PCA
numbers pass through LAPACK (Lanczos tridiagonal eigenproblems, ``numpy.linalg.eigh``), whose
builds differ between numpy/scipy wheels in the last bits (seen between the pinned-oldest and the
newest set). A result carries a rounding error of a few ulp *of the scale of its problem*, not of
itself: a residual norm ``||H v - lambda v|| = 7.6e-6`` is a difference of numbers of size
``lambda_max = 8`` and differs by 6e-12 between the two sets; the variance of the null PCA
component is ``1e-31`` of rounding noise either way. So a float is equal when
``|a - b| <= 1e-12 * (max(|a|, |b|) + S)``, with ``S`` the largest finite magnitude among the
floats of its group -- about 50 ulp of the problem, many orders below any change of algorithm.
Integers, masks, strings, shapes and dtypes must be equal.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from tests.golden.generate import FILES, HERE, generate

#: Attributes that legitimately differ between two runs of the same recipe.
VOLATILE_ROOT_ATTRS = {"created"}
VOLATILE_JSON_KEYS = {"tool_version", "seconds", "threads"}  # seconds: wall-clock timings;
# threads: the machine's CPU threads when the file was computed
RTOL = 1e-12


def _attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return _strip(json.loads(v))
        except ValueError:
            return v
    return v


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_JSON_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _floats(obj: Any) -> list[float]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _floats(v)]
    if isinstance(obj, list | tuple):
        return [x for v in obj for x in _floats(v)]
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return [float(np.max(np.abs(obj[np.isfinite(obj)]), initial=0.0))]
    if isinstance(obj, float) and math.isfinite(obj):
        return [abs(obj)]
    return []


def _walk(path: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """``{"/group/name": ("dataset", dtype, shape, values), "/group@attrs": {...}}`` and the
    float scale of each object (the largest finite magnitude in its group)."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            key = "/" + name
            if isinstance(obj, h5py.Dataset):
                out[key] = ("dataset", obj.dtype.str, obj.shape, obj[()])
            out[key + "@attrs"] = {k: _attr(v) for k, v in obj.attrs.items()}

        out["/@attrs"] = {k: _attr(v) for k, v in f.attrs.items()
                          if k not in VOLATILE_ROOT_ATTRS}
        f.visititems(visit)
    group_of = {k: k.rsplit("@", 1)[0] if k.endswith("@attrs") else k.rsplit("/", 1)[0] or "/"
                for k in out}
    scale: dict[str, float] = {}
    for k, v in out.items():
        vals = _floats(v[3] if isinstance(v, tuple) else v)
        g = group_of[k]
        scale[g] = max([scale.get(g, 0.0), *vals])
    return out, {k: scale[group_of[k]] for k in out}


def _same(a: Any, b: Any, where: str, scale: float) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _same(a[k], b[k], f"{where}.{k}", scale)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]", scale)
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b or \
            abs(a - b) <= RTOL * (max(abs(a), abs(b)) + scale), f"{where}: {a!r} != {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def _same_dataset(a: tuple, b: tuple, where: str, scale: float) -> None:
    _, dt_a, shape_a, va = a
    _, dt_b, shape_b, vb = b
    assert (dt_a, shape_a) == (dt_b, shape_b), f"{where}: {dt_a}{shape_a} != {dt_b}{shape_b}"
    va, vb = np.asarray(va), np.asarray(vb)
    if va.dtype.kind == "f":
        np.testing.assert_allclose(va, vb, rtol=RTOL, atol=RTOL * scale, equal_nan=True,
                                   err_msg=where)
    else:
        np.testing.assert_array_equal(va, vb, err_msg=where)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    out = tmp_path_factory.mktemp("golden")
    generate(out)
    return out


@pytest.mark.parametrize("name", FILES)
def test_file_equals_golden(fresh: Path, name: str) -> None:
    (want, scale), (got, _) = _walk(HERE / name), _walk(fresh / name)
    assert sorted(got) == sorted(want), (
        f"{name}: objects differ: missing {sorted(set(want) - set(got))}, "
        f"new {sorted(set(got) - set(want))}"
    )
    for key, w in want.items():
        g = got[key]
        if isinstance(w, tuple):
            _same_dataset(g, w, f"{name}:{key}", scale[key])
        else:
            _same(g, w, f"{name}:{key}", scale[key])
