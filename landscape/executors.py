"""Shards of a grid analysis submitted as jobs through ``submitit``, waited for and merged.

:func:`run_shards` runs shard ``i`` of ``jobs`` of a computation that takes ``shard=(i, n)``
and ``out=`` (:func:`landscape.surface.compute_surface`, or any function that writes a
resumable shard file, such as one that loads its model from a checkpoint path) as job ``i``
of a SLURM job array (``executor="slurm"``) or as a process on this machine
(``executor="local"``, submitit's ``LocalExecutor``). Each job writes its own shard file
beside ``out``; with ``wait=True`` the call waits for every job, reports the first failed
job's error and log in one :class:`~landscape.errors.LandscapeError`, and joins the shard
files with :func:`landscape.shards.merge_shards` into ``out`` -- the file a single process
would have written. With ``wait=False`` it returns the job ids and shard paths at once; the
files are merged later with ``merge_shards`` (``landscape merge``).

Requeue-safe: a shard file resumes, so a job that is preempted, times out, is killed or is
simply run again continues from the points its file holds. Each job is submitted as a
callable with a ``checkpoint`` method (submitit's ``Checkpointable`` protocol) that resubmits
it unchanged: on SLURM, submitit then requeues a job that reaches its time limit or is
preempted (up to three time-outs) instead of ending it, and ``#SBATCH --requeue`` lets SLURM
requeue it after a node failure. Running the same call again after a failure resumes too:
finished shard files are not recomputed.

``submitit`` is an optional dependency: ``pip install 'landscape[slurm]'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import storage
from .errors import Int, LandscapeError, Options, Real, on_interrupt, validate_params

__all__ = ["EXECUTORS", "ShardJobs", "local_gpus", "run_shards", "shard_paths"]

#: The ``executor`` choices of :func:`run_shards`.
EXECUTORS = ("local", "slurm")

#: What a missing submitit says.
MISSING = ("submitit is not installed; pip install 'landscape[slurm]' to submit shard jobs (or "
           "run each shard=(i, n) yourself and join the files with merge_shards)")

_CONSTRAINTS = {
    "executor": Options(EXECUTORS),
    "jobs": Int(1),
    "time_min": Int(1),
    "gpus_per_node": Int(0, optional=True),
    "cpus_per_task": Int(1, optional=True),
    "mem_gb": Real(0.0, closed="right", optional=True),
}


@dataclass(frozen=True)
class ShardJobs:
    """The jobs of one :func:`run_shards` call.

    Attributes
    ----------
    executor : str
        ``"local"`` or ``"slurm"``.
    job_ids : tuple of str
        The job id of each shard (SLURM: ``<array id>_<i>``; local: the process id).
    shards : tuple of Path
        The shard file each job writes, shard ``i`` at position ``i``.
    logs : tuple of Path
        Each job's error log (its standard error).
    out : Path
        The merged file (written only when the call waited).
    folder : Path
        submitit's folder: the jobs' pickles, scripts and logs.
    result : object or None
        What :func:`~landscape.shards.merge_shards` returned (the merged result) when the call
        waited; ``None`` otherwise.
    """

    executor: str
    job_ids: tuple[str, ...]
    shards: tuple[Path, ...]
    logs: tuple[Path, ...]
    out: Path
    folder: Path
    result: Any = None


class _ShardJob:
    """Job ``shard[0]`` of ``shard[1]``: ``compute(**kwargs, shard=shard, out=out)``.

    Its ``checkpoint`` method (submitit's ``Checkpointable`` protocol, duck-typed so that this
    module imports without submitit) resubmits the job unchanged when it is preempted or times
    out: the shard file it writes resumes.
    """

    def __init__(self, compute: Callable[..., Any], kwargs: Mapping[str, Any],
                 shard: tuple[int, int], out: str) -> None:
        self.compute = compute
        self.kwargs = dict(kwargs)
        self.shard = shard
        self.out = out

    def __call__(self) -> str:
        self.compute(**self.kwargs, shard=self.shard, out=self.out)
        return self.out  # not the result: it may hold model-sized directions

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.core.utils import DelayedSubmission

        return DelayedSubmission(self)


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise LandscapeError(MISSING) from None
    return submitit


def shard_paths(out: str | os.PathLike, jobs: int) -> list[Path]:
    """The shard files of ``out`` for ``jobs`` shards: ``<out stem>_shard<i>of<n>.h5`` beside
    it (for ``s.h5``: ``s_shard0of4.h5``, ...)."""
    p = Path(out)
    return [p.with_name(f"{p.stem}_shard{i}of{jobs}{p.suffix or '.h5'}") for i in range(jobs)]


def _mem(gb: float) -> str:
    return f"{int(gb)}GB" if gb == int(gb) else f"{int(gb * 1024)}MB"


def _executor(executor: str, folder: Path, *, time_min: int, gpus_per_node: int | None,
              cpus_per_task: int | None, mem_gb: float | None, partition: str | None,
              account: str | None, slurm_extra: Mapping[str, Any] | None) -> Any:
    """The submitit executor with the job parameters set."""
    submitit = _submitit()
    if executor == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=time_min)
        return ex
    try:
        ex = submitit.SlurmExecutor(folder=folder)
    except RuntimeError:  # no srun on this machine
        raise LandscapeError(
            "executor='slurm' needs SLURM, but 'srun' is not on this machine's PATH; submit "
            "from a cluster's login node, or use executor='local' to run the shards here"
        ) from None
    params: dict[str, Any] = {"job_name": "landscape", "time": time_min,
                              "additional_parameters": {"requeue": True, **(slurm_extra or {})}}
    for key, value in (("partition", partition), ("account", account),
                       ("gpus_per_node", gpus_per_node), ("cpus_per_task", cpus_per_task),
                       ("mem", None if mem_gb is None else _mem(mem_gb))):
        if value is not None:
            params[key] = value
    ex.update_parameters(**params)
    return ex


def local_gpus(i: int, gpus_per_node: int | None, count: int) -> list[int]:
    """The GPUs local job ``i`` sees, of the ``count`` of this machine: ``gpus_per_node`` of
    them (default one where there are any) dealt out in turn, job ``i`` from GPU
    ``i * gpus_per_node``."""
    per_job = (1 if count else 0) if gpus_per_node is None else gpus_per_node
    if per_job > count:
        raise LandscapeError(
            f"The 'gpus_per_node' parameter asks for {per_job} GPUs per job; this machine has "
            f"{count}"
        )
    return [(i * per_job + j) % count for j in range(per_job)]


def _submit(ex: Any, executor: str, jobs: list[_ShardJob], gpus_per_node: int | None) -> list:
    if executor == "slurm":
        with ex.batch():  # one job array
            return [ex.submit(job) for job in jobs]
    import torch

    count = torch.cuda.device_count()
    submitted = []
    for i, job in enumerate(jobs):  # each local job its own GPUs (submitit hides the others)
        gpus = local_gpus(i, gpus_per_node, count)
        ex.update_parameters(gpus_per_node=len(gpus), visible_gpus=gpus)
        submitted.append(ex.submit(job))
    return submitted


def _failure(exc: BaseException) -> str:
    """One line of a failed job's exception: the last line of its traceback."""
    text = str(exc)
    parts = text.split("-" * 22 + "\n")
    if isinstance(exc, _submitit().core.utils.FailedJobError) and len(parts) >= 3:
        lines = [ln for ln in parts[1].splitlines() if ln.strip()]
        last = lines[-1] if lines else "the job raised an exception"
        return re.sub(r"^landscape\.[\w.]*Error: ", "", last).strip()
    state = re.search(r"\(state: ([^)]*)\)", text)
    return ("it ended without a result (killed, out of memory or out of time"
            f"{'; state ' + state[1] if state else ''})")


def _wait(jobs: list[Any], n: int) -> None:
    failed = [(i, job, exc) for i, job in enumerate(jobs)
              if (exc := job.exception()) is not None]
    if not failed:
        return
    i, job, exc = failed[0]
    more = f"; {len(failed) - 1} other shard job(s) failed too" if len(failed) > 1 else ""
    raise LandscapeError(
        f"shard {i} of {n} (job {job.job_id}) failed: {_failure(exc)} (log: {job.paths.stderr})"
        f"{more}; the shard files keep their finished points: run again to resume"
    )


def run_shards(
    compute: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    jobs: int,
    out: str | os.PathLike,
    executor: str = "local",
    folder: str | os.PathLike | None = None,
    wait: bool = True,
    overwrite: bool = False,
    time_min: int = 240,
    gpus_per_node: int | None = None,
    cpus_per_task: int | None = None,
    mem_gb: float | None = None,
    partition: str | None = None,
    account: str | None = None,
    slurm_extra: Mapping[str, Any] | None = None,
) -> ShardJobs:
    """Run the ``jobs`` shards of a computation as jobs, then (``wait``) merge their files.

    Job ``i`` calls ``compute(**kwargs, shard=(i, jobs), out=<shard file i>)`` (see the module
    docstring); the call and its arguments are pickled (cloudpickle) into ``folder`` once per
    job, so ``compute`` may be any function, a lambda of a notebook included. For large models
    give a function that loads the model from a checkpoint path inside the job rather than
    the model itself.

    Parameters
    ----------
    compute : callable
        Takes ``shard=(i, n)`` and ``out=path`` and writes a resumable shard file there, e.g.
        :func:`~landscape.surface.compute_surface`.
    kwargs : mapping
        Its other arguments (the same for every job); not ``shard`` or ``out``.
    jobs : int
        Number of shards, one job each.
    out : path
        The merged file; shard ``i`` goes to ``<out stem>_shard<i>of<jobs>.h5`` beside it
        (:func:`shard_paths`), where an existing shard file resumes. An existing ``out`` is
        refused unless ``overwrite``.
    executor : {"local", "slurm"}, default="local"
        ``"slurm"``: a SLURM job array (``sbatch``, from a machine with ``srun``);
        ``"local"``: the jobs run at once as processes of this machine.
    folder : path, optional
        submitit's folder for the jobs' pickles, scripts and logs (default
        ``<out stem>_jobs`` beside ``out``; on SLURM on a file system the nodes share).
    wait : bool, default=True
        Wait for the jobs and merge; ``False``: return after submitting.
    overwrite : bool, default=False
        Replace an existing ``out`` (only landscape files are replaced). Shard files follow
        ``compute``'s own ``overwrite`` argument in ``kwargs``.
    time_min : int, default=240
        Each job's time limit in minutes (SLURM ``--time``; a local job is stopped after
        it). A job that reaches it is requeued and resumes (up to three times).
    gpus_per_node : int, optional
        GPUs per job (SLURM ``--gpus-per-node``). Local jobs see only their own GPUs
        (``CUDA_VISIBLE_DEVICES``), dealt out in turn (:func:`local_gpus`): by default one
        each where this machine has any, so ``jobs`` above the GPU count share them.
    cpus_per_task : int, optional
        SLURM ``--cpus-per-task``.
    mem_gb : float, optional
        SLURM ``--mem`` in GB.
    partition : str, optional
        SLURM ``--partition``.
    account : str, optional
        SLURM ``--account``.
    slurm_extra : mapping, optional
        Further ``#SBATCH`` options, e.g. ``{"qos": "high", "constraint": "a100"}``.

    Returns
    -------
    ShardJobs
        The job ids, shard files and logs; ``result`` holds the merged result when waited.

    Raises
    ------
    LandscapeError
        On bad parameters, a missing submitit, ``executor="slurm"`` without SLURM, an
        existing ``out`` without ``overwrite``, or (waiting) a job that failed: its error's
        last line and its log path, in one line.

    Examples
    --------
    >>> jobs = run_shards(compute_surface, dict(model=model, directions=dirs, data=data,
    ...                   x="-1:1:21", y="-1:1:21"), jobs=4, out="s.h5")  # doctest: +SKIP
    >>> jobs.result                                     # the merged Surface  # doctest: +SKIP
    """
    s = validate_params(
        {"executor": executor, "jobs": jobs, "time_min": time_min,
         "gpus_per_node": gpus_per_node, "cpus_per_task": cpus_per_task, "mem_gb": mem_gb},
        _CONSTRAINTS)
    if s["executor"] == "local":
        slurm_only = [k for k, v in (("partition", partition), ("account", account),
                                     ("cpus_per_task", cpus_per_task), ("mem_gb", mem_gb),
                                     ("slurm_extra", slurm_extra)) if v is not None]
        if slurm_only:
            raise LandscapeError(
                f"The '{slurm_only[0]}' parameter applies to executor='slurm' only; drop it "
                "for the local executor"
            )
    if not callable(compute):
        raise LandscapeError(f"The 'compute' parameter must be callable. Got {compute!r}.")
    clash = sorted({"shard", "out"} & set(kwargs))
    if clash:
        raise LandscapeError(
            f"The 'kwargs' parameter must not hold {' or '.join(map(repr, clash))}: each job "
            "gets its own shard and shard file"
        )
    out = Path(out).absolute()
    storage.check_writable(out, overwrite=overwrite)
    if out.exists() and not overwrite:
        raise LandscapeError(
            f"'{out}' exists; pass overwrite=True to replace it or choose another output file"
        )
    n = s["jobs"]
    shards = shard_paths(out, n)
    folder = Path(folder).absolute() if folder is not None else out.with_name(f"{out.stem}_jobs")
    ex = _executor(s["executor"], folder, time_min=s["time_min"],
                   gpus_per_node=s["gpus_per_node"], cpus_per_task=s["cpus_per_task"],
                   mem_gb=s["mem_gb"], partition=partition, account=account,
                   slurm_extra=slurm_extra)
    submitted = _submit(ex, s["executor"],
                        [_ShardJob(compute, kwargs, (i, n), str(shards[i])) for i in range(n)],
                        s["gpus_per_node"])
    info = dict(executor=s["executor"], job_ids=tuple(str(j.job_id) for j in submitted),
                shards=tuple(shards), logs=tuple(Path(j.paths.stderr) for j in submitted),
                out=out, folder=folder)
    if not wait:
        return ShardJobs(**info)
    running = "SLURM keeps running the jobs and " if s["executor"] == "slurm" else ""
    with on_interrupt(f"{running}the shard files keep their finished points", resumable=True):
        _wait(submitted, n)
    from .shards import merge_shards

    return ShardJobs(**info, result=merge_shards(out, shards, overwrite=overwrite))
