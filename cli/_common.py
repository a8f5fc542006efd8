"""Options and loaders shared by several subcommands (checkpoint, data, computation,
parameters, progress, output).

Every computing subcommand takes ``--loss``, ``--device``, ``--dtype`` and ``--params`` /
``--exclude`` / ``--include-frozen`` through :func:`add_compute_args`; where one of them
means nothing for a command, the command still lists it, its help says why, and giving it is
a one-line usage error (never silently ignored).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from landscape.checkpoints import Checkpoint
from landscape.data import DataSpec
from landscape.errors import LandscapeError
from landscape.inputs import CheckpointInputs
from landscape.models import ModelSpec, parse_model_kwargs

# The option types live in ._types; the commands that import them from here keep working.
from ._types import batch_size_arg, float_arg, int_arg, loss_arg, shard_arg  # noqa: F401


def examples(*lines: str) -> str:
    """Help epilog with example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_checkpoint_args(p: argparse.ArgumentParser, *, selection_unused: str | None = None
                        ) -> None:
    """--model, --model-kwargs, --trust-checkpoint, and --state-key / --prefix (which entry
    and key prefix of an ambiguous checkpoint hold the model); ``selection_unused``: the reason
    why a command cannot take the last two (listed with it, refused when given)."""
    g = p.add_argument_group("model and checkpoint")
    g.add_argument("--model", metavar="NAME",
                   help="architecture (registry name or package.module:factory); default: the "
                        "spec stored in a landscape checkpoint")
    g.add_argument("--model-kwargs", metavar="JSON",
                   help='keyword arguments of the architecture, e.g. \'{"shortcut": false}\'')
    g.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that are full pickles (they can run code when "
                        "loaded); only for files you trust")
    if selection_unused is not None:
        _not_applicable(g, "--state-key", selection_unused)
        _not_applicable(g, "--prefix", f"as for --state-key: {selection_unused}")
        return
    g.add_argument("--state-key", metavar="KEY",
                   help="the entry of the checkpoint holding the state dict, e.g. state_dict "
                        "or ema (dotted path for nested dicts); needed when it holds several")
    g.add_argument("--prefix", metavar="PREFIX",
                   help="the key prefix to strip, e.g. model. or ema.module.; needed when "
                        "several prefixes each hold the model (a Lightning EMA copy)")


def checkpoint_selection(args: argparse.Namespace) -> dict[str, str | None]:
    """The --state-key / --prefix options as keyword arguments of ``load_checkpoint``."""
    return {"state_key": getattr(args, "state_key", None),
            "prefix": getattr(args, "prefix", None)}


def add_data_args(p: argparse.ArgumentParser, *, default_from_checkpoint: bool = True) -> None:
    g = p.add_argument_group("data")
    default = "the data the checkpoint was trained on, else digits" if \
        default_from_checkpoint else "digits"
    g.add_argument("--data", metavar="NAME",
                   help=f"digits | digits-denoise | modadd | cifar10 | mnist | "
                        f"package.module:function (default: {default})")
    g.add_argument("--data-root", metavar="DIR", help="directory holding cifar10/mnist files")
    g.add_argument("--data-kwargs", metavar="JSON", help="options of the data set, as JSON")
    g.add_argument("--subset", type=int_arg("subset", 1), metavar="N",
                   help="evaluate on a deterministic subset of N samples per split (of a "
                        "streamed Dataset without a length, its first N: such data need it)")


#: ``--dtype`` choices.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
#: The options of :func:`add_compute_args`, by the keys its ``unused`` argument takes.
COMPUTE_OPTIONS = {"loss": ("--loss",), "device": ("--device",), "dtype": ("--dtype",),
                   "params": ("--params", "--exclude", "--include-frozen")}


class _NotApplicable(argparse.Action):
    """An option a command lists only to say why it does not apply: giving it is a usage
    error naming the reason."""

    def __init__(self, option_strings: list[str], dest: str, *, reason: str,
                 nargs: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=nargs, default=None, **kwargs)
        self.reason = reason

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error(f"{option_string} does not apply to '{parser.prog}': {self.reason}")


def _not_applicable(g: argparse._ArgumentGroup, flag: str, reason: str) -> None:
    flag_only = flag == "--include-frozen"
    g.add_argument(flag, action=_NotApplicable, reason=reason, nargs=0 if flag_only else None,
                   metavar=None if flag_only else flag.lstrip("-").upper(),
                   help=f"not used here ({reason.split(': ', 1)[0]})"
                   if reason.startswith("as for ") else f"not used here: {reason}")


def add_compute_args(
    p: argparse.ArgumentParser,
    *,
    group: argparse._ArgumentGroup | None = None,
    loss_help: str = "cross_entropy | mse | package.module:function (see landscape.losses)",
    loss_default: str | None = "cross_entropy",
    device_help: str = "compute device (cpu, cuda, cuda:N, mps)",
    dtype_default: str = "float32",
    dtype_help: str | None = None,
    unused: Mapping[str, str] | None = None,
) -> None:
    """``--loss``, ``--device``, ``--dtype`` (into ``group``, default a new "computation"
    group) and the parameter selection (:func:`add_selection_args`).

    ``unused`` maps keys of :data:`COMPUTE_OPTIONS` to the reason why those options mean
    nothing for this command: they are listed with that reason and refused when given.
    """
    unused = dict(unused or {})
    bad = sorted(set(unused) - set(COMPUTE_OPTIONS))
    if bad:
        raise ValueError(f"unknown compute options {bad}")
    g = group if group is not None else p.add_argument_group("computation")
    if "loss" in unused:
        _not_applicable(g, "--loss", unused["loss"])
    else:
        g.add_argument("--loss", default=loss_default, metavar="LOSS", help=loss_help)
    if "device" in unused:
        _not_applicable(g, "--device", unused["device"])
    else:
        g.add_argument("--device", default="cpu", help=device_help)
    if "dtype" in unused:
        _not_applicable(g, "--dtype", unused["dtype"])
    else:
        g.add_argument("--dtype", choices=sorted(DTYPES), default=dtype_default,
                       help=dtype_help or f"compute in this dtype (default {dtype_default})")
    if "params" in unused:
        s = p.add_argument_group("parameters")
        first, *rest = COMPUTE_OPTIONS["params"]
        _not_applicable(s, first, unused["params"])
        for flag in rest:
            _not_applicable(s, flag, f"as for {first}: {unused['params']}")
    else:
        add_selection_args(p)


def dtype_arg(args: argparse.Namespace) -> torch.dtype:
    """The torch dtype of ``--dtype``."""
    return DTYPES[args.dtype]


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """--params / --exclude / --include-frozen: which tensors are perturbed or differentiated."""
    g = p.add_argument_group("parameters")
    g.add_argument("--params", metavar="GLOB", action="append",
                   help="perturb only tensors whose name or module matches this glob, e.g. "
                        "'encoder.*.attn.*' (repeatable; default: all)")
    g.add_argument("--exclude", metavar="GLOB", action="append",
                   help="hold tensors matching this glob fixed, e.g. '*.bias' (repeatable)")
    g.add_argument("--include-frozen", action="store_true",
                   help="also perturb parameters with requires_grad=False (fixed by default)")


def selection_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The --params / --exclude / --include-frozen options as keyword arguments."""
    return {"params": args.params, "exclude": args.exclude,
            "include_frozen": bool(args.include_frozen)}


#: ``--direction-dtype`` choices (the dtype surfaces hold their directions in).
DIRECTION_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
    "float16": torch.float16}


def add_memory_check_arg(g: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-memory-check``: run even when the predicted peak memory exceeds what is
    available (:mod:`landscape.memory`; by default such a run is refused before it starts)."""
    g.add_argument("--no-memory-check", dest="no_check_memory", action="store_true",
                   help="run even when the predicted peak memory (printed when a run is "
                        "refused) exceeds the memory available now")


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def model_arg(args: argparse.Namespace) -> ModelSpec | None:
    kwargs = parse_model_kwargs(args.model_kwargs)
    if args.model is None:
        if kwargs:
            raise LandscapeError("--model-kwargs needs --model")
        return None
    return ModelSpec(args.model, kwargs)


def inputs_of(args: argparse.Namespace, *, dtype: bool = True) -> CheckpointInputs:
    """The checkpoint and data options as the library's :class:`CheckpointInputs`."""
    spec = model_arg(args)
    return CheckpointInputs(
        model=None if spec is None else spec.name,
        model_kwargs={} if spec is None else dict(spec.kwargs),
        trust=getattr(args, "trust_checkpoint", False), **checkpoint_selection(args),
        data=getattr(args, "data", None), root=getattr(args, "data_root", None),
        kwargs=parse_model_kwargs(getattr(args, "data_kwargs", None)),
        subset=getattr(args, "subset", None),
        dtype=dtype_arg(args) if dtype and hasattr(args, "dtype") else None)


def load_ckpt(args: argparse.Namespace, path: str) -> Checkpoint:
    """Load a checkpoint with the --model / --model-kwargs / --trust-checkpoint options (in
    its stored dtype; see :meth:`CheckpointInputs.load`)."""
    return inputs_of(args, dtype=False).load(path)


def data_spec(args: argparse.Namespace, ckpt: Checkpoint | None = None) -> DataSpec:
    """Data spec from the options, falling back to what the checkpoint was trained on."""
    return inputs_of(args, dtype=False).data_spec(ckpt)


def parse_splits(text: str) -> list[str]:
    splits = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("train", "test")]
    if not splits or bad:
        raise LandscapeError(f"--splits must be a comma list of train,test; got {text!r}")
    return list(dict.fromkeys(splits))


def check_device(text: str) -> str:
    """Fail early, as a usage error, on a --device that this torch cannot use."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LandscapeError(
            f"unknown --device {text!r} ({first}); use cpu, cuda, cuda:N or mps"
        ) from exc
    if dev.type == "meta":
        raise LandscapeError("--device meta holds no data and cannot evaluate a loss; use cpu")
    if dev.type == "cpu":
        return text
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LandscapeError(
            f"--device {text!r} is not available here ({first}); use --device cpu"
        ) from exc
    return text


def unicode_output() -> bool:
    """Whether stdout can print the symbols of result lines (λ, ±)."""
    import sys

    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "λ±".encode(enc)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def command_line(args: argparse.Namespace) -> str:
    return shlex.join(getattr(args, "argv", ["landscape"]))


def default_out(ckpt_path: str, suffix: str) -> str:
    p = Path(ckpt_path)
    return str(p.with_name(f"{p.stem}_{suffix}.h5"))


@contextmanager
def distributed(device: str) -> Iterator[tuple[int, int, str]]:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Yields ``(rank, world_size, device)``: gloo on CPU, NCCL on CUDA with one GPU per local rank.
    Outside torchrun yields ``(0, 1, device)`` and does nothing.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        yield 0, 1, device
        return
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend)
    try:
        yield dist.get_rank(), dist.get_world_size(), device
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------- shards as jobs (landscape.executors)

def job_time_arg(text: str) -> int:
    """argparse type of ``--job-time``: minutes, or ``[D-]HH:MM[:SS]`` as SLURM writes it
    (rounded up to whole minutes)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d)(?::(\d\d))?", text.strip())
    if m:
        days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
        value = (days * 24 + hours) * 60 + minutes + (seconds > 0)
    else:
        try:
            value = int(text)
        except ValueError:
            value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected minutes or [D-]HH:MM[:SS] of at least one minute, got {text!r}")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (an sbatch option), got {text!r}")
    return key.strip().lstrip("-"), value


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor local|slurm --jobs N`` and the job options (:func:`submit_jobs`): the
    command's ``--shard`` runs as N jobs through submitit, whose files are then merged. A grid
    command that takes ``--shard`` and ``--out`` gets them with this call and one line at the
    top of its handler: ``if args.executor: return submit_jobs(args, default_out)``."""
    g = p.add_argument_group(
        "jobs", "run the N shards (--shard I/N) as jobs through submitit (pip install "
                "'landscape[slurm]'), wait and merge them into --out")
    g.add_argument("--executor", choices=("local", "slurm"),
                   help="slurm: a SLURM job array (sbatch); local: N processes on this machine")
    g.add_argument("--jobs", type=int_arg("jobs", 1), metavar="N",
                   help="number of shards, one job each (with --executor)")
    g.add_argument("--no-wait", action="store_true",
                   help="return after submitting (job ids and shard files printed); join the "
                        "files later with 'landscape merge'")
    g.add_argument("--job-time", dest="time_min", type=job_time_arg, default=240,
                   metavar="MIN",
                   help="time limit of each job, minutes or [D-]HH:MM[:SS] (default 240); a "
                        "job that reaches it is requeued and resumes its shard file")
    g.add_argument("--job-gpus", dest="gpus_per_node", type=int_arg("gpus_per_node", 0),
                   metavar="N",
                   help="GPUs per job (SLURM --gpus-per-node; local jobs see only theirs, one "
                        "each by default, dealt out in turn)")
    g.add_argument("--job-folder", dest="folder", metavar="DIR",
                   help="submitit's folder of job pickles, scripts and logs (default "
                        "<out>_jobs beside --out)")
    g.add_argument("--slurm-partition", dest="partition", metavar="NAME",
                   help="SLURM partition")
    g.add_argument("--slurm-account", dest="account", metavar="NAME", help="SLURM account")
    g.add_argument("--slurm-cpus", dest="cpus_per_task", type=int_arg("cpus_per_task", 1),
                   metavar="N", help="SLURM --cpus-per-task")
    g.add_argument("--slurm-mem-gb", dest="mem_gb",
                   type=float_arg("mem_gb", 0.0, closed="right"), metavar="GB",
                   help="SLURM --mem, in GB")
    g.add_argument("--slurm-option", dest="slurm_extra", type=_key_value, action="append",
                   metavar="KEY=VALUE",
                   help="a further #SBATCH option, e.g. qos=high or constraint=a100 "
                        "(repeatable)")


def _job_argv(argv: list[str]) -> list[str]:
    """``argv`` without the options of :func:`add_executor_args` and ``--out`` (each job gets
    its own; abbreviations and ``=`` forms included: argparse itself removes them)."""
    own = _job_parser()
    own.add_argument("--out")
    _, rest = own.parse_known_args(argv)
    return rest


def command_job(argv: list[str], shard: tuple[int, int], out: str) -> None:
    """One shard job of a command: ``landscape <argv> --shard I/N --out <out>`` in this
    process; a failure raises :class:`LandscapeError` with the command's one-line error."""
    import contextlib
    import io
    import sys

    from .main import main

    class _Tee(io.TextIOBase):
        def __init__(self, stream: Any) -> None:
            self.stream, self.seen = stream, io.StringIO()

        def write(self, text: str) -> int:
            self.seen.write(text)
            return self.stream.write(text)

        def flush(self) -> None:
            self.stream.flush()

    tee = _Tee(sys.stderr)
    with contextlib.redirect_stderr(tee):
        code = main([*argv, "--shard", f"{shard[0]}/{shard[1]}", "--out", out])
    if code:
        lines = [ln for ln in tee.seen.getvalue().splitlines() if ln.strip()]
        last = re.sub(r"^landscape \w+: error: ", "", lines[-1]) if lines else ""
        raise LandscapeError(last or f"the command exited with status {code}")


def _job_parser() -> argparse.ArgumentParser:
    own = argparse.ArgumentParser(add_help=False)
    add_executor_args(own)
    return own


def uses_jobs(args: argparse.Namespace) -> bool:
    """Whether any option of :func:`add_executor_args` was given (then the command runs
    through :func:`submit_jobs`, which refuses them without ``--executor``)."""
    return any(getattr(args, a.dest, a.default) != a.default for a in _job_parser()._actions)


def submit_jobs(args: argparse.Namespace, default: str) -> int:
    """Run the command's shards as ``--jobs`` jobs (:func:`landscape.executors.run_shards`,
    each job running this command line with ``--shard I/N``), wait and merge them into
    ``--out`` (default ``default``), or with ``--no-wait`` print the jobs and the merge
    command."""
    if args.executor is None:
        given = [a.option_strings[0] for a in _job_parser()._actions
                 if getattr(args, a.dest, a.default) != a.default]
        raise LandscapeError(f"{', '.join(given)} need(s) --executor local|slurm")
    if args.jobs is None:
        raise LandscapeError("--executor needs --jobs N, the number of shards")
    if getattr(args, "shard", None) is not None:
        raise LandscapeError("--executor runs every shard of --jobs N itself; drop --shard")
    from landscape.executors import run_shards

    argv = _job_argv(list(getattr(args, "argv", ["landscape"])[1:]))
    if getattr(args, "no_progress", True) is False:
        argv.append("--no-progress")  # no bars in the job logs
    out = args.out or default
    r = run_shards(command_job, {"argv": argv}, jobs=args.jobs, out=out,
                   executor=args.executor, folder=args.folder, wait=not args.no_wait,
                   overwrite=bool(getattr(args, "overwrite", False)), time_min=args.time_min,
                   gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task,
                   mem_gb=args.mem_gb, partition=args.partition, account=args.account,
                   slurm_extra=dict(args.slurm_extra) if args.slurm_extra else None)
    ids = r.job_ids[0] if len(r.job_ids) == 1 else f"{r.job_ids[0]} ... {r.job_ids[-1]}"
    print(f"submitted {len(r.job_ids)} {r.executor} job(s) ({ids}); logs in {r.folder}")
    if r.result is None:
        print("shard files: " + " ".join(str(p) for p in r.shards))
        print("when the jobs have finished: " + shlex.join(
            ["landscape", "merge", str(r.out), *map(str, r.shards)]))
        return 0
    done = getattr(r.result, "n_done", None)
    points = f", {done}/{r.result.n_points} points" if done is not None else ""
    print(f"wrote {out}: merged from {len(r.shards)} shard files{points}")
    return 0

# ------------------------------------------------------------- library messages in CLI words

#: Library parameters whose option has another name. :func:`flag_message` uses an entry only
#: where the running command has that option; a parameter that is a destination of the command
#: comes first (``what`` is ``--what`` in probe, ``--dir-type`` in surface and trajectory).
PARAMETER_OPTIONS: dict[str, str] = {
    "trust": "--trust-checkpoint",
    "out_dir": "--out",
    "what": "--dir-type",
    "min_eig": "--min",
    "n_components": "--components",
    "keep_eigenvectors": "--save-eigenvectors",
    "root": "--data-root",
    "n_bends": "--bends",
    "models": "--checkpoints",
    "autocast": "--precision",
    "kinds": "--kind",
    "fmt": "--format",
}

#: Library calls that a message names as the way to make something, and what a CLI user types
#: instead: ``landscape <command ...>`` followed by the options of the call's arguments;
#: ``None``: only those options (``DataSpec(root=DIR)`` is ``--data-root DIR``).
CALL_COMMANDS: dict[str, str | None] = {
    "compute_surface": "surface CKPT",
    "compute_surface_set": "surface CKPT --n-directions K",
    "compute_checkpoint_surface": "surface CKPT",
    "interpolation_directions": "surface A.pt --interpolate B.pt",
    "checkpoint_plane_directions": "surface A.pt --plane B.pt C.pt",
    "compute_hessian_surface": "surface CKPT --directions hessian",
    "compute_curvature": "hessian CKPT",
    "compute_ratio_map": "hessian CKPT --grid SURFACE.h5",
    "compute_block_spectra": "hessian CKPT --blocks block",
    "curvature_of_checkpoint": "hessian CKPT",
    "compute_trajectory": "trajectory CHECKPOINTS --out FILE.h5",
    "connect_checkpoints": "connect A.pt B.pt",
    "compute_connectivity": "connect A.pt B.pt",
    "plane_directions": "surface A.pt --plane B.pt BEND.pt",
    "load_directions": "surface CKPT --dir-file FILE.h5",
    "TrajectoryPCA": "trajectory CHECKPOINTS --out FILE.h5",
    "run_analyses": "probe CKPT",
    "probe_checkpoint": "probe CKPT",
    "sharpening_of_run": "sharpening RUN",
    "train": "train",
    "run_study": "demo",
    "DataSpec": None,
    "ModelSpec": None,
}

_SKLEARN_FORM = re.compile(r"^The '(\w+)' parameter")
_PARAMETER = re.compile(r"\b[Tt]he '(\w+)' parameter\b|'(\w+)' parameter\b")
_PARAMETERS = re.compile(r"'(\w+)' and '(\w+)' parameters\b")
_NAMED = re.compile(r"`(\w+)`")  # a parameter standing for what it was given: `interpolate`
_CALL = re.compile(  # a call, with the method calls chained to it: TrajectoryPCA(...).fit(..)
    r"(?<![\w.])(?:landscape\.)?([A-Za-z_]\w*)\(([^()]*)\)(?:\.\w+\([^()]*\))*")
_ASSIGNMENT = re.compile(
    r"(?<![\w.'\"-])([a-z_][a-z0-9_]*)=(True|False|\.\.\.|'[^']*'|\"[^\"]*\"|torch\.\w+|"
    r"[\w:/.\-]*[\w/])"
)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def _subparser(root: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser | None:
    for a in root._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a.choices.get(command)
    return None


def _command_parser(root: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``landscape <command>``: from ``root``, else built (``main`` parses a
    command line with the parser of its own command only)."""
    found = _subparser(root, command)
    if found is None:
        from .main import build_parser

        found = _subparser(build_parser([command]), command)
    return found


@contextmanager
def flag_errors(args: argparse.Namespace, command: str) -> Iterator[None]:
    """Library errors raised inside, in the words of ``landscape <command>``
    (:func:`flag_message`), also for a handler called without :func:`main`."""
    try:
        yield
    except LandscapeError as exc:
        root = getattr(args, "root_parser", None)
        if root is None:
            from .main import build_parser

            root = build_parser([command])
        exc.args = (flag_message(str(exc), root, command), *exc.args[1:])
        raise


def _option(options: dict[str, argparse.Action], name: str) -> argparse.Action | None:
    """The option of the library parameter ``name`` (``None``: not an option here)."""
    if name in options:
        return options[name]
    flag = PARAMETER_OPTIONS.get(name)
    return next((a for a in options.values() if flag in a.option_strings), None)


def _long(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def _assignment(options: dict[str, argparse.Action], name: str, value: str) -> str | None:
    """``name=value`` as the command line says it, or ``None`` where it has no option."""
    action = _option(options, name)
    if action is None:
        negated = options.get(f"no_{name}")
        if value == "False" and negated is not None and negated.nargs == 0:
            return _long(negated)  # warm_start=False: --no-warm-start
        return None
    if isinstance(action, argparse.BooleanOptionalAction) and value in ("True", "False"):
        return action.option_strings[value == "False"]
    if action.nargs == 0:
        return _long(action) if value == "True" else None
    if value in ("True", "False"):
        return None
    if value == "...":
        meta = action.metavar or action.dest.upper()
        value = " ".join(meta) if isinstance(meta, tuple) else str(meta)
    elif value[:1] in "'\"":
        value = value[1:-1]
    elif value.startswith("torch."):
        value = value[len("torch."):]
    return f"{_long(action)} {value}"


def _translate(message: str, options: dict[str, argparse.Action]) -> str:
    def assignment(m: re.Match) -> str:
        return _assignment(options, m[1], m[2]) or m[0]

    return _ASSIGNMENT.sub(assignment, message)


def flag_message(message: str, root: argparse.ArgumentParser, command: str) -> str:
    """A library message in the words of ``landscape <command>``: parameters become options.

    The library names parameters in three forms only (:mod:`landscape.errors`): the
    scikit-learn form ``The 'name' parameter ...`` / ``the 'name' parameter``, the call form
    ``name=VALUE`` and the name form `` `name` ``; and it names a library call
    (``compute_ratio_map()``) where a command makes what is missing. Only names that are
    options of the command (or :data:`PARAMETER_OPTIONS`) and calls in :data:`CALL_COMMANDS`
    are rewritten; every other word is kept:

    - ``The 'top_k' parameter must ...`` gets the option in front, as argparse writes its own
      errors (``--top-k: The 'top_k' parameter must ...``); ``the 'top_k' parameter`` elsewhere
      becomes ``the --top-k option``;
    - ``overwrite=True`` becomes ``--overwrite`` (a flag), ``warm_start=False``
      ``--no-warm-start``, ``out=PATH`` ``--out PATH``, ``state_key=...`` ``--state-key KEY``
      (its metavar), ``loss='mse'`` ``--loss mse``, ``dtype=torch.float64`` ``--dtype float64``;
    - `` `interpolate` `` (a parameter in backquotes, standing for what was given to it: ``the
      `interpolate` checkpoint``, ```y` needs 2``) becomes ``--interpolate`` (``--y``);
    - ``compute_ratio_map()`` becomes ``'landscape hessian CKPT --grid SURFACE.h5'``, with the
      call's ``name=VALUE`` arguments as options of that command.
    """
    parser = _subparser(root, command)
    if parser is None:
        return message
    options = _options(parser)

    def call(m: re.Match) -> str:
        if m[1] not in CALL_COMMANDS:
            return m[0]
        target = CALL_COMMANDS[m[1]]
        sub = options if target is None else _options(_command_parser(root, target.split()[0]))
        words = [_assignment(sub, *a.split("=", 1)) for a in
                 (s.strip() for s in m[2].split(",")) if _ASSIGNMENT.fullmatch(a)]
        flags = " ".join(w for w in words if w)
        if target is None:
            return flags or m[0]
        return f"'landscape {target}{' ' + flags if flags else ''}'"

    def parameter(m: re.Match) -> str:
        action = _option(options, m[1] or m[2])
        if action is None:
            return m[0]
        return f"{'the ' if m[1] else ''}{_long(action)} option"

    first = _SKLEARN_FORM.match(message)
    head = ""
    if first and _option(options, first[1]) is not None:
        head = f"{_long(_option(options, first[1]))}: "
        message = message[first.end():]
        head += first[0]
    def parameters(m: re.Match) -> str:
        both = [_option(options, name) for name in (m[1], m[2])]
        if None in both:
            return m[0]
        return f"{_long(both[0])} and {_long(both[1])} options"

    def named(m: re.Match) -> str:
        action = _option(options, m[1])
        return m[0] if action is None else _long(action)

    message = _translate(_CALL.sub(call, message), options)
    message = _PARAMETER.sub(parameter, _PARAMETERS.sub(parameters, message))
    return head + _NAMED.sub(named, message)
