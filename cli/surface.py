"""``landscape surface``: a 1D or 2D loss/accuracy surface of a checkpoint, in HDF5."""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from landscape._functional import named_tensors
from landscape._grid import check_grid_fits
from landscape.data import load_data
from landscape.directions import (
    IGNORES,
    NORMS,
    Directions,
    check_spanning,
    direction_norms,
    interpolation_direction,
    plane_directions,
    random_directions,
)
from landscape.errors import LandscapeError
from landscape.evaluation import BN_MODES
from landscape.parameters import select_parameters
from landscape.recipes import checkpoint_provenance, checkpoint_recipe
from landscape.surface import compute_surface, load_directions, parse_axis
from landscape.surface_set import compute_surface_set, member_seeds

from ._common import (
    DIRECTION_DTYPES,
    add_checkpoint_args,
    add_compute_args,
    add_data_args,
    add_memory_check_arg,
    add_progress_arg,
    batch_size_arg,
    check_device,
    command_line,
    data_spec,
    default_out,
    distributed,
    dtype_arg,
    examples,
    float_arg,
    int_arg,
    load_ckpt,
    load_datasets,
    loss_arg,
    parse_splits,
    selection_kwargs,
    shard_arg,
)

#: ``--directions`` choices: random directions, or the Hessian's eigenvectors (pair ``top`` or
#: ``topbottom`` of :func:`landscape.hessian.compute_hessian_surface`).
DIRECTION_KINDS = ("random", "hessian", "hessian-topbottom")
_PAIRS = {"hessian": "top", "hessian-topbottom": "topbottom"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "surface",
        help="loss/accuracy surface around a checkpoint along 1 or 2 directions",
        description="Evaluate train/test loss and accuracy on a grid along filter-normalized "
                    "random directions (default), directions from a file, the line to a "
                    "second checkpoint, the plane through three, or the Hessian's "
                    "eigenvectors (--directions hessian: the top two; hessian-topbottom: the "
                    "largest and the smallest eigenvalue's, written to the file's "
                    "/hessian_surface group beside the random /surface). Re-running the same "
                    "command resumes an unfinished file.",
        epilog=examples(
            "landscape surface runs/mlp/epoch_0020.pt --x=-1:1:51 --y=-1:1:51",
            "landscape surface a.pt --interpolate b.pt --x=-0.5:1.5:41 --out ab.h5",
            "landscape surface final.pt --dir-file traj.h5 --x=-5:25:31 --y=-10:10:21",
            "landscape surface final.pt --directions hessian-topbottom --x=-1:1:21 "
            "--y=-1:1:21 --hessian-samples 500",
            "for i in 0 1 2 3; do landscape surface final.pt --x=-1:1:51 --y=-1:1:51 "
            "--shard $i/4 & done; wait; landscape merge s.h5 final_surface_shard*of4.h5",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint at the origin")
    add_checkpoint_args(p)
    add_data_args(p)
    p.add_argument("--splits", default="train,test", help="data splits to evaluate")
    g = p.add_argument_group("grid")
    g.add_argument("--x", required=True, metavar="MIN:MAX:NUM", help="grid along direction x")
    g.add_argument("--y", metavar="MIN:MAX:NUM", help="grid along direction y (2D)")
    d = p.add_argument_group("directions")
    d.add_argument("--dir-type", choices=["weights", "states"], default="weights",
                   help="perturb parameters only, or the state_dict incl. BN running stats")
    d.add_argument("--norm", choices=NORMS,
                   help="normalization (default filter; for --directions hessian*: none, "
                        "the unit eigenvectors)")
    d.add_argument("--ignore", choices=IGNORES, default="biasbn",
                   help="'biasbn': zero direction for biases and BN parameters")
    d.add_argument("--seed", type=int_arg("seed", 0), default=0,
                   help="seed of direction x (y uses seed+1)")
    d.add_argument("--orthogonal", action="store_true",
                   help="make direction y orthogonal to x (filter norms kept)")
    d.add_argument("--directions", choices=DIRECTION_KINDS, default="random",
                   help="random (default); hessian: the Hessian's top eigenvectors (top two "
                        "in 2D); hessian-topbottom: those of its largest and smallest "
                        "eigenvalue (2D). Hessian surfaces go to /hessian_surface, with the "
                        "eigenvalues in their directions' recipe; unit eigenvectors unless "
                        "--norm filter (then no longer eigenvectors); --seed seeds the "
                        "Lanczos start vector")
    d.add_argument("--hessian-samples", type=int_arg("hessian_samples", 1), metavar="N",
                   help="Hessian directions: the loss of the first N training samples (of "
                        "a fixed permutation; default all the surface's training data)")
    d.add_argument("--hessian-tol", type=float_arg("hessian_tol", 0.0, closed="neither"),
                   default=1e-6, metavar="TOL",
                   help="Hessian directions: relative residual of the eigenpairs (float64 "
                        "HVPs; default 1e-6)")
    d.add_argument("--n-directions", type=int_arg("n_directions", 1), default=1, metavar="K",
                   help="K independent random direction pairs on the same grid (seeds --seed, "
                        "--seed+2, ...) in one /surfaces group: every surface metric of "
                        "'landscape compare' then gets mean ± sd and a bootstrap interval")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--dir-file", metavar="FILE.h5",
                     help="directions saved in a surface/trajectory/directions file, or a "
                          "direction file of Li et al.'s code (weights or states, told by "
                          "the number of tensors)")
    src.add_argument("--interpolate", metavar="CKPT_B", help="1D line from CKPT to CKPT_B")
    src.add_argument("--plane", nargs=2, metavar=("CKPT_B", "CKPT_C"),
                     help="2D plane through CKPT, CKPT_B, CKPT_C")
    e = p.add_argument_group("evaluation")
    e.add_argument("--bn", choices=BN_MODES, default="eval",
                   help="BatchNorm: checkpoint statistics, or recalibrated at every point")
    e.add_argument("--bn-batches", type=int_arg("bn_batches", 1), default=10)
    e.add_argument("--batch-size", type=batch_size_arg, default="auto",
                   help="evaluation batch size, or 'auto' to choose it from model and data "
                        "sizes (recorded in the file)")
    e.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="forward passes under autocast in bf16/fp16 (recorded in the file)")
    e.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default="auto",
                   help="channels_last memory format (default: chosen for conv nets on the CPU "
                        "in float32, where it measured 1.2-1.9x faster; recorded in the file)")
    e.add_argument("--rel-precision", type=float_arg("rel_precision", 0.0, closed="neither"),
                   metavar="R",
                   help="evaluate each point batch by batch, samples in a seeded random order, "
                        "until the standard error of its mean loss is <= R x |loss| (at least "
                        "2 batches and 256 samples) or the data run out; the samples used "
                        "per point are stored (e.g. 0.01)")
    add_compute_args(p, group=e, device_help="evaluation device (cpu, cuda, cuda:N, mps)",
                     dtype_help="evaluation dtype (default float32)")
    e.add_argument("--direction-dtype", choices=sorted(DIRECTION_DTYPES),
                   help="hold the directions in this dtype (bfloat16/float16 halve their "
                        "memory where it binds; default: the model's dtype)")
    add_memory_check_arg(e)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="FILE.h5",
                   help="output file (default: <checkpoint>_surface.h5 beside it)")
    o.add_argument("--overwrite", action="store_true",
                   help="replace an existing output computed with another recipe")
    o.add_argument("--shard", type=shard_arg, metavar="I/N",
                   help="compute only shard I of N of the grid's points (every N-th point "
                        "from the I-th) into a file of its own (default "
                        "<checkpoint>_surface_shardIofN.h5), resumable; join the N files with "
                        "'landscape merge OUT SHARD...'")
    o.add_argument("--flush-seconds", type=float_arg("flush_seconds", 0.0), default=10.0,
                   help="write finished points to disk at least this often")
    o.add_argument("--no-full-check", action="store_true",
                   help="with --subset, skip the one evaluation of the origin on the full "
                        "data that says how far the subset's values are from it")
    add_progress_arg(p)
    p.set_defaults(func=run)


def _architecture_difference(
    base: dict, other: dict, *, both_ways: bool = True
) -> str | None:
    """How ``other``'s tensors differ from ``base``'s (names, shapes), or ``None``."""
    for k, v in other.items():
        if k not in base:
            return f"it has a tensor '{k}' that this model lacks"
        if tuple(v.shape) != tuple(base[k].shape):
            return (f"its tensor '{k}' has shape {tuple(v.shape)}, this model's "
                    f"{tuple(base[k].shape)}")
    missing = [k for k in base if k not in other] if both_ways else []
    if missing:
        return f"it lacks this model's tensor '{missing[0]}'"
    return None


def _same_architecture(args: argparse.Namespace, base: dict, path: str, option: str) -> dict:
    """Load the checkpoint ``path`` given to ``option``; its tensors, checked against ``base``."""
    other = load_ckpt(args, path)
    tensors = named_tensors(other.model, args.dir_type)
    diff = _architecture_difference(base, tensors)
    if diff:
        raise LandscapeError(
            f"{option} checkpoint '{path}' is another architecture than '{args.checkpoint}': "
            f"{diff}; give checkpoints of one network"
        )
    return {"ckpt": other, "tensors": tensors}


def _held(tensors: dict, base: dict, selection) -> dict:
    """``tensors`` with the entries the selection holds fixed taken from ``base``."""
    return {k: v if selection.moves(k) else base[k] for k, v in tensors.items()}


def _directions(args: argparse.Namespace, ckpt, ndim: int) -> Directions:
    what = args.dir_type
    if args.dir_file and (args.params or args.exclude or args.include_frozen):
        raise LandscapeError(
            "--params/--exclude/--include-frozen choose the tensors of new directions; a "
            "--dir-file brings its own -- drop one of them"
        )
    if args.dir_file:
        d = load_directions(args.dir_file, ckpt.model, what)
        if d.recipe.get("kind") != "li2018" and d.what != what:  # Li's: told by the count
            raise LandscapeError(
                f"directions in '{args.dir_file}' are for --dir-type {d.what}, not {what}"
            )
        if d.ndim < ndim:
            raise LandscapeError(f"'{args.dir_file}' has {d.ndim} direction(s); --y needs 2")
        if d.ndim > ndim:
            d = Directions(d.vectors[:ndim], {**d.recipe, "used": ndim})
        check_spanning(d.vectors, [f"{ax} of '{args.dir_file}'" for ax in ("x", "y")])
        base = named_tensors(ckpt.model, d.what)
        for vec in d.vectors:
            diff = _architecture_difference(base, vec, both_ways=False)
            if diff:
                raise LandscapeError(
                    f"directions in '{args.dir_file}' were made for another architecture than "
                    f"'{args.checkpoint}' ({diff}); drop --dir-file to draw new directions"
                )
        return d
    base = named_tensors(ckpt.model, what)
    selection = select_parameters(ckpt.model, what, **selection_kwargs(args))
    if args.interpolate:
        if ndim != 1:
            raise LandscapeError("--interpolate gives a 1D line; drop --y")
        other = _same_architecture(args, base, args.interpolate, "--interpolate")
        recipe = {"kind": "interpolation", "what": what, "target": args.interpolate,
                  "target_sha256": other["ckpt"].sha256, **selection.recipe}
        d = interpolation_direction(base, _held(other["tensors"], base, selection))
        if direction_norms(d) == 0:
            raise LandscapeError(
                f"--interpolate checkpoint '{args.interpolate}' has the same {what} as "
                f"'{args.checkpoint}': the direction between them is zero and the line one point"
            )
        return Directions((d,), recipe)
    if args.plane:
        if ndim != 2:
            raise LandscapeError("--plane gives a 2D plane; add --y")
        b, c = (_same_architecture(args, base, f, "--plane")["ckpt"] for f in args.plane)
        try:
            dx, dy, coords = plane_directions(
                base, _held(named_tensors(b.model, what), base, selection),
                _held(named_tensors(c.model, what), base, selection),
                orthogonal=args.orthogonal,
            )
        except LandscapeError as exc:
            names = f"a = '{args.checkpoint}', b = '{args.plane[0]}', c = '{args.plane[1]}'"
            raise LandscapeError(f"--plane: {exc} ({names})") from None
        recipe = {"kind": "plane", "what": what, "models": list(args.plane),
                  "sha256": [b.sha256, c.sha256], "orthogonal": args.orthogonal,
                  "coords": coords, **selection.recipe}
        return Directions((dx, dy), recipe)
    return random_directions(base, ndim=ndim, seeds=args.seed, norm=args.norm,
                             ignore=args.ignore, what=what, orthogonal=args.orthogonal,
                             selection=selection)


def _check_out_is_not_an_input(args: argparse.Namespace, out: str) -> None:
    """Refuse an --out that names an input checkpoint (--overwrite would replace it)."""
    inputs = [("the checkpoint", args.checkpoint)]
    if args.interpolate:
        inputs.append(("the --interpolate checkpoint", args.interpolate))
    for f in args.plane or ():
        inputs.append(("a --plane checkpoint", f))
    for what, path in inputs:
        try:
            same = os.path.samefile(out, path)
        except OSError:  # out does not exist yet
            same = False
        if same:
            raise LandscapeError(
                f"--out '{out}' is {what} '{path}'; writing the surface there would destroy "
                "it -- choose another --out"
            )


def _check_grid_fits(n_points: int, n_splits: int, n_directions: int = 1) -> None:
    """Refuse a grid (of ``n_directions`` direction pairs) whose arrays alone would not fit in
    this machine's memory."""
    # float64 loss, accuracy, standard error per split
    if n_directions == 1:
        check_grid_fits(n_points, 3 * n_splits)
    else:
        check_grid_fits(n_directions * n_points, 3 * n_splits,
                        what=f"a set of {n_directions:,} direction pairs on a "
                             f"{n_points:,}-point grid",
                        fix="use fewer points or direction pairs (n_directions)")


def _full_data(args: argparse.Namespace, ckpt, splits: list[str], datasets: dict) -> dict | None:
    """With --subset: the splits the checkpoint's data spec names without it (its run's own
    data, or the whole data set), where they are larger than the subsets; else ``None``."""
    if args.subset is None or args.no_full_check:
        return None
    spec = data_spec(argparse.Namespace(**{**vars(args), "subset": None}), ckpt)
    full = {s: load_data(spec, s) for s in splits}
    return full if any(len(full[s]) > len(datasets[s]) for s in splits) else None


def _run_set(args: argparse.Namespace, ckpt, datasets, loss, out: str, recipe: dict,
             provenance: dict, full: dict | None) -> int:
    """--n-directions K: K random direction pairs in one /surfaces group."""
    other = [f for f, on in (("--dir-file", args.dir_file), ("--interpolate", args.interpolate),
                             ("--plane", args.plane), ("--orthogonal", args.orthogonal),
                             ("--dir-type states", args.dir_type != "weights"),
                             ("--precision", args.precision != "fp32"),
                             ("--rel-precision", args.rel_precision is not None),
                             ("--shard", args.shard is not None),
                             ("--bn recalibrate", args.bn != "eval")) if on]
    if other:
        raise LandscapeError(
            f"--n-directions draws K random direction pairs of the weights, evaluated in fp32 "
            f"with the checkpoint's BatchNorm statistics; drop {', '.join(other)}"
        )
    t0 = time.perf_counter()
    seeds = member_seeds(args.n_directions, args.seed)
    with distributed(args.device) as (rank, _world, device):
        s = compute_surface_set(
            ckpt.model, datasets, seeds=seeds, x=args.x, y=args.y, norm=args.norm,
            ignore=args.ignore, selection=select_parameters(ckpt.model, "weights",
                                                            **selection_kwargs(args)),
            loss=loss, batch_size=args.batch_size, device=device, dtype=dtype_arg(args),
            out=out, overwrite=args.overwrite, recipe=recipe, provenance=provenance,
            progress=not args.no_progress, flush_seconds=args.flush_seconds, full_data=full,
        )
    if rank != 0:
        return 0
    print(f"wrote {out}: {s.n_members} direction pairs (seeds {seeds}), {s.n_done}/"
          f"{s.n_points} points ({', '.join(sorted(s.arrays))}) in "
          f"{time.perf_counter() - t0:.1f} s")
    _print_subset_check(s.member(0))
    return 0


def _run_hessian(args: argparse.Namespace, ckpt, datasets, loss, out: str, recipe: dict,
                 provenance: dict, full: dict | None) -> int:
    """--directions hessian / hessian-topbottom: a surface along eigenvectors, in
    /hessian_surface."""
    other = [f for f, on in (("--dir-file", args.dir_file), ("--interpolate", args.interpolate),
                             ("--plane", args.plane), ("--orthogonal", args.orthogonal),
                             ("--n-directions", args.n_directions > 1),
                             ("--rel-precision", args.rel_precision is not None),
                             ("--shard", args.shard is not None),
                             ("--dir-type states", args.dir_type != "weights"),
                             ("--params/--exclude/--include-frozen",
                              args.params or args.exclude or args.include_frozen)) if on]
    if other:
        raise LandscapeError(f"--directions {args.directions} draws the directions from the "
                             f"Hessian's eigenvectors; drop {', '.join(other)}")
    if args.norm not in ("filter", "none"):
        raise LandscapeError(f"--directions {args.directions} takes --norm filter (filter-"
                             "normalized like random directions) or none (unit eigenvectors); "
                             f"got --norm {args.norm}")
    if "train" not in datasets:
        raise LandscapeError(f"--directions {args.directions} needs the train split (the "
                             "Hessian is that of the training loss): add it to --splits")
    train = datasets["train"]
    hdata = train.subset(args.hessian_samples) if args.hessian_samples else train
    from landscape.hessian import compute_hessian_surface  # scipy: only for these surfaces

    t0 = time.perf_counter()
    with distributed(args.device) as (rank, _world, device):
        s = compute_hessian_surface(
            ckpt.model, datasets, x=args.x, y=args.y, pair=_PAIRS[args.directions],
            hessian_data=hdata, loss=loss, scale=args.norm, ignore=args.ignore,
            tol=args.hessian_tol, seed=args.seed,
            hessian_batch_size=512 if args.batch_size == "auto" else args.batch_size,
            bn=args.bn, bn_batches=args.bn_batches, batch_size=args.batch_size,
            device=device, dtype=dtype_arg(args),
            autocast=None if args.precision == "fp32" else args.precision,
            channels_last=args.channels_last, out=out, overwrite=args.overwrite,
            recipe=recipe, provenance=provenance, progress=not args.no_progress,
            flush_seconds=args.flush_seconds, full_data=full,
        )
    if rank != 0:
        return 0
    r = s.directions.recipe if s.directions is not None else {}
    lams = ", ".join(f"{v:.4g}" for v in r.get("eigenvalues", []))
    grid = f"{len(s.x)}" if s.y is None else f"{len(s.y)}x{len(s.x)}"
    print(f"wrote {out} (/{s.group}): {s.ndim}D {grid} surface along the Hessian's "
          f"{'largest and smallest' if r.get('pair') == 'topbottom' else 'top'} "
          f"eigenvector{'s' if s.ndim == 2 else ''} (eigenvalues {lams}), {s.n_done}/"
          f"{s.n_points} points in {time.perf_counter() - t0:.1f} s")
    if r.get("note"):
        print(f"note: {r['note']}; raise --hessian-tol or give more HVPs")
    _print_subset_check(s)
    return 0


def _print_subset_check(s) -> None:
    for line in s.subset_lines():
        print(f"subset check: {line}")


def run(args: argparse.Namespace) -> int:
    if args.norm is None:
        args.norm = "filter" if args.directions == "random" else "none"
    # fail fast on bad grids before loading anything
    ax = parse_axis(args.x, "x").check_dtype("x", dtype_arg(args))
    ay = parse_axis(args.y, "y").check_dtype("y", dtype_arg(args)) \
        if args.y is not None else None
    splits = parse_splits(args.splits)
    _check_grid_fits(ax.num * (ay.num if ay is not None else 1), len(splits),
                     args.n_directions if args.directions == "random" else 1)
    loss = loss_arg(args.loss)
    check_device(args.device)
    ckpt = load_ckpt(args, args.checkpoint)
    spec = data_spec(args, ckpt)
    datasets = load_datasets(spec, splits, ckpt.model)
    ndim = 2 if args.y is not None else 1
    out = args.out or default_out(args.checkpoint, "surface" if args.shard is None else
                                  "surface_shard{}of{}".format(*args.shard))
    _check_out_is_not_an_input(args, out)
    recipe = checkpoint_recipe(ckpt, spec)
    provenance = checkpoint_provenance(ckpt, args.checkpoint, command_line(args))
    full = _full_data(args, ckpt, splits, datasets)
    if args.direction_dtype is not None and (args.directions != "random"
                                             or args.n_directions > 1):
        raise LandscapeError("--direction-dtype applies to one pair of random or given "
                             "directions (not --directions hessian* or --n-directions)")
    if args.directions != "random":
        return _run_hessian(args, ckpt, datasets, loss, out, recipe, provenance, full)
    if args.n_directions > 1:
        return _run_set(args, ckpt, datasets, loss, out, recipe, provenance, full)
    dirs = _directions(args, ckpt, ndim)
    if args.direction_dtype is not None:  # rounded here, so that no full-precision copy stays
        dirs = dirs.astype(DIRECTION_DTYPES[args.direction_dtype])
    t0 = time.perf_counter()
    with distributed(args.device) as (rank, world, device):
        s = compute_surface(
            ckpt.model, dirs, datasets, x=args.x, y=args.y, loss=loss, bn=args.bn,
            bn_batches=args.bn_batches, batch_size=args.batch_size, device=device,
            dtype=dtype_arg(args),
            autocast=None if args.precision == "fp32" else args.precision,
            channels_last=args.channels_last, out=out, overwrite=args.overwrite, recipe=recipe,
            provenance=provenance, progress=not args.no_progress,
            flush_seconds=args.flush_seconds, full_data=full, rel_precision=args.rel_precision,
            shard=args.shard, direction_dtype=DIRECTION_DTYPES.get(args.direction_dtype),
            check_memory=not args.no_check_memory,
        )
    dt = time.perf_counter() - t0
    if rank != 0:
        return 0
    grid = f"{len(s.x)}" if s.y is None else f"{len(s.y)}x{len(s.x)}"
    shard = "" if args.shard is None else " (shard {} of {})".format(*args.shard)
    print(f"wrote {out}: {s.ndim}D {grid} surface{shard}, {s.n_done}/{s.n_points} points "
          f"({', '.join(sorted(s.arrays))}) in {dt:.1f} s")
    bad = sum(int(np.sum(~np.isfinite(a[s.done]))) for k, a in s.arrays.items()
              if k.endswith("_loss"))
    if bad:
        print(f"note: {bad} loss values are NaN/inf (diverged points); plots mask them")
    _print_subset_check(s)
    for split, used in sorted(s.precision_summary().items()):
        print(f"{split}: {used['samples']:,} of {used['full']:,} sample evaluations "
              f"({used['full'] / max(used['samples'], 1):.2f}x fewer) to reach the "
              f"standard error <= {args.rel_precision:g} x |loss|")
    return 0
