"""Benchmark: the time of one Hessian-vector product, ours against PyHessian's (issue 17).

On the same model, data and vector, in one process, 1 thread by default, the methods are timed
interleaved (one product of each in turn, repeated; the median counts):

- ``pyhessian graph``  PyHessian's single-batch mode: ``hessian(model, criterion, data=(x, y))``
                       builds the full-batch gradient graph once, and one product is
                       ``pyhessian.utils.hessian_vector_product`` (one backward through it);
- ``pyhessian loader`` PyHessian's ``dataloader_hv_product`` over a DataLoader of the same data
                       (a forward, a ``create_graph`` backward and a backward per batch, per
                       product), at ``--loader-batch`` samples per batch;
- ``ours auto``        ``HessianOperator(model, data)`` at its defaults (what ``landscape hessian``
                       uses); its line says whether it cached the graph and the batch size;
- ``ours uncached``    ``cache_graph=False`` (the graph is rebuilt for every product, as the
                       defaults did for this size before ``cache_graph="auto"`` counted
                       activation memory);
- ``ours func``        forward-over-reverse (``method="func"``).

Every product is checked against PyHessian's (relative difference printed). Timings are of a
machine that may be shared: read the ratios, measured side by side. PyHessian is not a
dependency: ``pip install pyhessian`` (0.1, 2021) into a benchmark environment; without it the
PyHessian rows are skipped with a note.

Usage::

    python benchmarks/bench_hvp.py                          # ResNet-20 on 256 digits + the MLP
    python benchmarks/bench_hvp.py --models resnet20 --samples 256 --repeats 7
    python benchmarks/bench_hvp.py --device cuda            # on a GPU machine
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from landscape.hessian import HessianOperator
from landscape.models import ModelSpec


def _device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {name}: CUDA is not available here; running on the CPU instead")
        return torch.device("cpu")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def problem(name: str, samples: int, dtype: torch.dtype,
            device: torch.device) -> tuple[nn.Module, Tensor, Tensor]:
    """A seeded model of the zoo (``mlp``: 64-48-48-10 ReLU; others: 1-channel 8x8 inputs)
    and the first ``samples`` digits (x / 16)."""
    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.data[:samples] / 16.0, dtype=dtype)
    y = torch.tensor(d.target[:samples])
    if name == "mlp":
        model = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(),
                              nn.Linear(48, 10))
    else:
        model = ModelSpec(name, {"in_channels": 1, "num_classes": 10}).build()
        x = x.reshape(-1, 1, 8, 8)
    return model.to(device=device, dtype=dtype).eval(), x.to(device), y.to(device)


def pyhessian_methods(model: nn.Module, x: Tensor, y: Tensor, v: Tensor,
                      loader_batch: int) -> dict[str, Callable[[], Tensor]]:
    """PyHessian's two product paths on flat vectors (empty without PyHessian)."""
    try:
        from pyhessian import hessian as pyh
        from pyhessian.utils import hessian_vector_product
    except ImportError:
        print("PyHessian is not installed (pip install pyhessian): its rows are skipped")
        return {}
    from torch.utils.data import DataLoader, TensorDataset

    crit = nn.CrossEntropyLoss()
    cuda = x.device.type == "cuda"
    single = pyh(model, crit, data=(x, y), cuda=cuda)
    shapes = [p.shape for p in single.params]

    def split(flat: Tensor) -> list[Tensor]:
        out, i = [], 0
        for s in shapes:
            out.append(flat[i:i + s.numel()].reshape(s))
            i += s.numel()
        return out

    vs = split(v)

    def graph() -> Tensor:
        return torch.cat([h.reshape(-1) for h in hessian_vector_product(
            single.gradsH, single.params, vs)])

    loader = DataLoader(TensorDataset(x, y), batch_size=loader_batch, shuffle=False)
    full = pyh(model, crit, dataloader=loader, cuda=cuda)

    def through_loader() -> Tensor:
        return torch.cat([h.reshape(-1) for h in full.dataloader_hv_product(vs)[1]])

    return {"pyhessian graph": graph, f"pyhessian loader (bs={loader_batch})": through_loader}


def run(name: str, samples: int, dtype: torch.dtype, device: torch.device, repeats: int,
        loader_batch: int) -> None:
    model, x, y = problem(name, samples, dtype, device)
    auto = HessianOperator(model, (x, y))
    n = auto.numel
    v = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    ours = {
        f"ours auto (cache_graph={auto.cache_graph}, bs={auto.batch_size})": auto,
        "ours uncached": HessianOperator(model, (x, y), cache_graph=False),
        "ours func": HessianOperator(model, (x, y), method="func"),
    }
    methods: dict[str, Callable[[], Tensor]] = {
        k: (lambda op=op: op @ v) for k, op in ours.items()}
    methods.update(pyhessian_methods(model, x, y, v, loader_batch))
    ref_key = "pyhessian graph" if "pyhessian graph" in methods else next(iter(methods))
    values = {k: fn() for k, fn in methods.items()}  # warm-up (builds cached graphs)
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(repeats):
        for k, fn in methods.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t)
    ref = values[ref_key]
    base = statistics.median(times[ref_key])
    print(f"\n{name}: {n:,} parameters, {samples} samples, {str(dtype).replace('torch.', '')}, "
          f"{device}, {torch.get_num_threads()} thread(s), median of {repeats}")
    print(f"{'method':44s} {'s / HVP':>9s} {'vs ' + ref_key:>20s} {'rel diff':>9s}")
    for k in methods:
        t = statistics.median(times[k])
        diff = float((values[k] - ref).norm() / ref.norm())
        print(f"{k:44s} {t:9.4f} {t / base:19.2f}x {diff:9.1e}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet20,mlp",
                    help="comma-separated: mlp or a zoo name (default resnet20,mlp)")
    ap.add_argument("--samples", default="256,1797",
                    help="samples per model, comma-separated (default 256,1797)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loader-batch", type=int, default=128,
                    help="batch size of PyHessian's DataLoader path (default 128)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = _device(args.device)
    models = args.models.split(",")
    samples = [int(s) for s in args.samples.split(",")]
    samples += [samples[-1]] * (len(models) - len(samples))
    for name, n in zip(models, samples, strict=False):
        run(name, n, getattr(torch, args.dtype), device, args.repeats, args.loader_batch)


if __name__ == "__main__":
    main()
