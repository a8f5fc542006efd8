"""Worker of ``tests/test_distributed.py``'s Hessian test, run by ``torchrun`` (2 gloo ranks).

``python -m torch.distributed.run ... tests/_dist_hessian.py OUTDIR CLI-ARGS...`` runs
``landscape hessian CLI-ARGS`` through :func:`landscape.cli.main.main` (exactly what
``torchrun -m landscape.cli hessian ...`` runs), then joins a second process group (through a
file store in OUTDIR: re-joining through torchrun's agent store meets the first group's keys,
and under torchrun a ``tcp://`` init also expects the agent's store) and writes this rank's
:func:`library_numbers` to ``OUTDIR/rank<r>.npz``. The test calls
:func:`library_numbers` in its own process for the single-process reference.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

F64 = torch.float64


def problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A seeded float64 4-6-3 tanh MLP (51 parameters) and 61 samples (an odd count, so the
    shards differ in size)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(F64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(61, 4, generator=g, dtype=F64)
    y = torch.randint(0, 3, (61,), generator=g)
    return model, x, y


class _Samples(IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y, strict=True))


def library_numbers() -> dict[str, np.ndarray]:
    """Loss, gradient, one HVP, one GGN and one Fisher product, top-5 eigenvalues, a Hutch++
    trace and SLQ nodes of :func:`problem` through the library, for tensor data, a map-style
    DataLoader and an iterable Dataset."""
    from landscape.hessian import HessianOperator, curvature_operator, hutchpp, slq, top_eigen

    model, x, y = problem()
    v = torch.randn(51, generator=torch.Generator().manual_seed(1), dtype=F64)
    out: dict[str, np.ndarray] = {}
    sources = {"tensors": (x, y),
               "loader": DataLoader(TensorDataset(x, y), batch_size=7),
               "iterable": _Samples(x, y)}
    for name, data in sources.items():
        op = HessianOperator(model, data, batch_size=16)
        out[f"{name}_loss"] = np.array(op.loss())
        out[f"{name}_grad"] = op.gradient().numpy()
        out[f"{name}_hv"] = (op @ v).numpy()
        out[f"{name}_n"] = np.array([op.n_samples, op.total_weight, op.world_size])
        for kind in ("ggn", "fisher"):  # the same data loop and all-reduce
            out[f"{name}_{kind}_v"] = (curvature_operator(model, data, operator=kind,
                                                          batch_size=16) @ v).numpy()
    op = HessianOperator(model, (x, y), batch_size=16)
    out["top"] = np.asarray(top_eigen(op, 5, tol=1e-10).eigenvalues)
    out["trace"] = np.array(hutchpp(op, 30, seed=3).estimate)
    out["slq_nodes"] = np.asarray(slq(op, n_steps=12, n_runs=2, seed=4).nodes)
    return out


def main(argv: list[str]) -> int:
    import torch.distributed as dist
    from landscape.cli.main import main as cli

    from landscape._grid import _sharding_points
    from landscape.errors import LandscapeError
    from landscape.hessian import HessianOperator

    outdir, cli_args = Path(argv[0]), argv[1:]
    torch.set_num_threads(1)
    code = cli(cli_args)
    if code:
        return code
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", init_method=f"file://{outdir / 'store'}", rank=rank,
                            world_size=world)
    try:
        numbers = library_numbers()
        model, x, y = problem()
        op = HessianOperator(model, (x, y))
        with _sharding_points():  # in a grid loop: operators are local, averaged ones refuse
            numbers["local_n"] = np.array([HessianOperator(model, (x, y)).world_size])
            try:
                op @ torch.zeros(op.numel, dtype=F64)
                numbers["refused"] = np.array(False)
            except LandscapeError:
                numbers["refused"] = np.array(True)
        np.savez(outdir / f"rank{dist.get_rank()}.npz", **numbers)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
