"""How many CPU threads torch uses: chosen from the CPUs actually free, recorded, overridable.

Why this matters. torch runs its CPU kernels on OpenMP worker threads that meet at a barrier
after every parallel region and *spin* there while they wait. On a machine shared with other
jobs a worker is often descheduled, and its partners then spin (and the region waits) for a
whole scheduler time slice. Measured on 2 cores beside four busy-looping processes
(``benchmarks/bench_contention.py``): a fixed workload of training, a surface and a Lanczos
solve ran 6.9x slower with torch's default 2 threads (the fair share of the CPU predicts 3x;
the Hessian part alone 11x), 71x slower with ``OMP_WAIT_POLICY=PASSIVE`` (every barrier then
waits for the sleeping partner to be scheduled again), and 2.6x slower with one thread (its
fair share: 2.5x). One thread per *free* core avoids the collapse, so ``threads="auto"``
counts the free cores when a command starts.

Results do not depend on the thread count for forward evaluations (surfaces, losses:
identical bits measured at 1 and 2 threads); Hessian-vector products can differ in the last
float32 bits (backward reductions split differently); SGD training can differ visibly (one
epoch of ResNet-20 at 1 vs 2 threads: train loss 1.98 vs 1.92), which is why
:class:`~landscape.training.TrainConfig` fixes its own thread count and records it.

The policy, a ``threads`` value:

``"auto"`` (the CLI's default)
    ``OMP_NUM_THREADS`` when the environment sets it (the user chose); otherwise the CPUs this
    process may run on (its affinity mask) that were idle over a short sample of
    ``/proc/stat`` (0.1 s), rounded, at least 1 and at most the usable CPUs. On a system
    without ``/proc/stat`` the usable CPUs.
an int ``n >= 1``
    Exactly ``n`` threads.

:func:`configure_threads` applies a policy (``torch.set_num_threads``) and returns a
:class:`ThreadPolicy` that results record in their provenance (``threads``);
:func:`torch_threads` sets a count for a block and restores the previous one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from .errors import LandscapeError

__all__ = ["ThreadPolicy", "choose_threads", "configure_threads", "free_cpus",
           "torch_threads", "usable_cpus"]

_SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class ThreadPolicy:
    """A thread count and why it was chosen.

    Attributes
    ----------
    requested : str or int
        The policy asked for: ``"auto"`` or a count.
    threads : int
        Intra-op threads torch uses.
    usable_cpus : int
        CPUs this process may run on (affinity mask).
    free_cpus : float or None
        Idle CPUs measured over a short sample when ``"auto"`` measured them, else ``None``.
    reason : str
        One phrase: how ``threads`` follows from the rest.
    """

    requested: str | int
    threads: int
    usable_cpus: int
    free_cpus: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what provenance records)."""
        return asdict(self)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times(cpus: set[int] | None) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cpus`` (all when ``None``) from ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    seen = False
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            index = int(name[3:])
        except ValueError:
            continue
        if cpus is not None and index not in cpus:
            continue
        values = [float(v) for v in rest.split()]
        if len(values) < 4:
            continue
        idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
        # guest time is already counted in user time
        counted = sum(values[:8]) if len(values) >= 8 else sum(values)
        busy += counted - idle
        total += counted
        seen = True
    return (busy, total) if seen else None


def free_cpus(seconds: float = _SAMPLE_SECONDS) -> float | None:
    """Idle CPUs among those this process may use, over ``seconds`` of ``/proc/stat``.

    Steal time (a virtual machine's host giving the CPU to others) counts as busy. Returns
    ``None`` where ``/proc/stat`` cannot be read or the sample saw no time pass.
    """
    try:
        cpus: set[int] | None = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    first = _cpu_times(cpus)
    if first is None:
        return None
    time.sleep(seconds)
    second = _cpu_times(cpus)
    if second is None:
        return None
    busy, total = second[0] - first[0], second[1] - first[1]
    if total <= 0:
        return None
    n = len(cpus) if cpus is not None else usable_cpus()
    return max(0.0, n * (1.0 - busy / total))


def _check_threads(threads: Any) -> str | int:
    if isinstance(threads, str) and threads == "auto":
        return threads
    if isinstance(threads, str) and threads.strip().isdigit():
        threads = int(threads)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LandscapeError(
            f"The 'threads' parameter must be 'auto' or an int in [1, inf). Got {threads!r} "
            "instead."
        )
    return threads


def choose_threads(threads: str | int = "auto") -> ThreadPolicy:
    """The thread count a policy gives now, without applying it (see the module docstring).

    Parameters
    ----------
    threads : "auto" or int, default "auto"
        The policy.

    Returns
    -------
    ThreadPolicy
    """
    threads = _check_threads(threads)
    n = usable_cpus()
    if isinstance(threads, int):
        return ThreadPolicy(threads, threads, n, None, "requested")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return ThreadPolicy("auto", int(env), n, None, "OMP_NUM_THREADS")
    free = free_cpus()
    if free is None:
        return ThreadPolicy("auto", n, n, None, "usable CPUs (load unknown)")
    chosen = max(1, min(n, int(free + 0.5)))
    return ThreadPolicy("auto", chosen, n, round(free, 2), "free CPUs")


def configure_threads(threads: str | int = "auto") -> ThreadPolicy:
    """Apply a thread policy to torch (``torch.set_num_threads``) and return it.

    This changes a process-wide setting; the command line calls it once per command (and the
    demo before each of its steps). Library functions never call it: a notebook keeps the
    threads its user set, and :func:`torch_threads` scopes a count to a block.

    Parameters
    ----------
    threads : "auto" or int, default "auto"
        The policy (see the module docstring).

    Returns
    -------
    ThreadPolicy
        What was chosen and why.
    """
    import torch

    policy = choose_threads(threads)
    if torch.get_num_threads() != policy.threads:
        torch.set_num_threads(policy.threads)
    return policy


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch threads and restore the previous count (``None``: as is)."""
    import torch

    if n is None:
        yield
        return
    n = _check_threads(n)
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
