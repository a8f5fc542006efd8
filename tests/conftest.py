"""Shared seeded fixtures: tiny models and data that make every test fast."""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import torch
from torch import nn


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process and per subprocess a test starts (unless
    ``OMP_NUM_THREADS`` is set): the suite runs one worker per core (pytest-xdist), and more
    threads than free cores make OpenMP's spinning workers many times slower on a busy
    machine (see ``landscape.threads``). The CLI's ``--threads auto`` follows the variable."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))


@dataclass(frozen=True)
class Data:
    """Minimal stand-in for landscape.data.TensorData (x, y, len)."""

    x: torch.Tensor
    y: torch.Tensor
    name: str = "synthetic"

    def __len__(self) -> int:
        return len(self.x)


def toy_classifier(seed: int, activation: type[nn.Module] = nn.ReLU, n: int = 60):
    """A float64 Linear(4, 6)-activation-Linear(6, 3) net (51 parameters) in eval mode and
    ``n`` seeded random samples of 3 classes, as ``(model, TensorData)``: the ground-truth
    problem of the curvature tests (dense Hessians are 51 x 51)."""
    from landscape.data import TensorData

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), activation(), nn.Linear(6, 3))
    model = model.to(torch.float64).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, TensorData(x, y, "toy")


class TinyConvBN(nn.Module):
    """conv(1->4) + BN + ReLU + linear head, with an unused module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 4 * 4, 10)
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        h = nn.functional.max_pool2d(h, 2)
        return self.head(h.flatten(1))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-model tests (intra-op threads only add overhead
    and contention on shared CI machines); used with ``pytest.mark.usefixtures``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()


@pytest.fixture
def tiny_conv() -> nn.Module:
    torch.manual_seed(0)
    m = TinyConvBN()
    # non-trivial running statistics
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.rand(32, 1, 8, 8))
    return m.eval()


@pytest.fixture
def image_data() -> dict[str, Data]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (300,), generator=g)
    return {"train": Data(x[:230], y[:230], "train"), "test": Data(x[230:], y[230:], "test")}


def assert_h5_equal(a: str, b: str, ignore_root_attrs: tuple[str, ...] = ("created",)) -> None:
    """Every dataset bit-identical and every attribute equal (except the given root attrs)."""

    def walk(ga: h5py.Group, gb: h5py.Group, path: str) -> None:
        assert sorted(ga.keys()) == sorted(gb.keys()), path
        ka = {k for k in ga.attrs if not (path == "/" and k in ignore_root_attrs)}
        kb = {k for k in gb.attrs if not (path == "/" and k in ignore_root_attrs)}
        assert ka == kb, path
        for k in ka:
            assert np.array_equal(np.asarray(ga.attrs[k]), np.asarray(gb.attrs[k])), (path, k)
        for k in ga:
            if isinstance(ga[k], h5py.Dataset):
                va, vb = ga[k][()], gb[k][()]
                assert va.dtype == vb.dtype, path + k
                assert np.asarray(va).tobytes() == np.asarray(vb).tobytes(), path + k
            else:
                walk(ga[k], gb[k], f"{path}{k}/")

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        walk(fa, fb, "/")
