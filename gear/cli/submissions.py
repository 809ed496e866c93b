"""``gear add-submission``, ``gear list`` and ``gear remove``: the command-line layer of
:mod:`gear.submission` (progress bars and printing live here, not in the library)."""
from __future__ import annotations

from pathlib import Path

from gear.cli.common import DEFAULT_OUT, add_family_arguments, batch_progress, integer, scores_table, stimuli_from_args
from gear.errors import ParameterError

__all__ = ["add_parsers"]


def add_parsers(subparsers) -> None:
    """Register ``add-submission``, ``list`` and ``remove`` on the ``gear`` subparsers."""
    p = subparsers.add_parser(
        "add-submission",
        help="validate a HEAR 2021 submission, embed the GEAR tones, score, store, update the report",
        description="Load a HEAR 2021 submission by import name (e.g. hearbaseline.naive), validate it as the "
        "HEAR validator does, embed the GEAR tones at the model's own sample rate (resumable: an interrupted "
        "run continues where it stopped), score them, store the result in OUT/models/NAME and rewrite "
        "OUT/scores.csv, OUT/leaderboard.csv and OUT/report.html. Adding NAME again with other weights stores "
        "NAME@2, NAME@3, ...; with the same weights it does nothing.",
    )
    p.add_argument("module", metavar="MODULE", help="import name of the submission (e.g. hearbaseline.naive)")
    p.add_argument("--weights", metavar="PATH", default=None,
                   help="weights file or folder, passed to the submission's load_model (relative paths are also "
                   "looked up under --models-dir)")
    p.add_argument("--name", default=None, help="result name (default: MODULE)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"results directory (default: {DEFAULT_OUT})")
    p.add_argument("--n-jobs", type=integer, default=1, metavar="N", help="parallel embedding jobs (joblib; -1: all cores)")
    p.add_argument("--batch-size", type=integer, default=None, metavar="N", help="sounds per model call (default: the run's, 250)")
    p.add_argument("--max-dim", type=integer, default=None, metavar="N",
                   help="largest scene embedding accepted (default 65536), checked before embedding everything")
    p.add_argument("--batch-tolerance", type=float, default=1e-3, metavar="TOL",
                   help="relative difference above which embeddings count as batch-dependent (default 1e-3)")
    p.add_argument("--models-dir", default=None, metavar="DIR", help="folder of model files (default: $GEAR_MODELS_DIR)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="embedding cache (default: $GEAR_CACHE_DIR or ~/.cache/gear)")
    p.add_argument("--no-cache", action="store_true", help="do not cache (no resuming)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    group = p.add_argument_group(
        "tone set and analysis",
        "Only for a new results directory: one that holds a run keeps its settings (run.json). On a small grid "
        "the K values not given are capped (Isomap K <= n_sounds - 1, regression K <= n_sounds // 4).",
    )
    group.add_argument("--preset", default=None, help="'paper' (default), 'gear2023-code' or 'factorial'")
    group.add_argument("--seed", type=int, default=None, metavar="N", help="seed of the random f1 draw")
    group.add_argument("--n-alpha", type=int, default=None, metavar="N", help="values of alpha (50 in the paper)")
    group.add_argument("--n-r", type=int, default=None, metavar="N", help="values of r (50 in the paper)")
    group.add_argument("--isomap-neighbors", type=int, default=None, metavar="N", help="K of Isomap's graph (paper: 100)")
    group.add_argument("--neighbors", type=int, default=None, metavar="N", help="K of the log-ratio regression (paper: 40)")
    group.add_argument("--n-bootstrap", type=int, default=None, metavar="N", help="bootstrap resamples for the CIs (1000)")
    add_family_arguments(p)
    p.set_defaults(func=_cmd_add_submission)

    p = subparsers.add_parser("list", help="list the results stored in a results directory",
                              description="Name, version, module, weights fingerprint, dimension, sample rate and "
                              "date of every stored result.")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"results directory (default: {DEFAULT_OUT})")
    p.set_defaults(func=_cmd_list)

    p = subparsers.add_parser("remove", help="remove one stored result and update the report and leaderboard",
                              description="Remove OUT/models/NAME (exact name, e.g. foo@2; a corrupt entry too) and "
                              "rewrite scores.csv, leaderboard.csv and report.html.")
    p.add_argument("name", metavar="NAME", help="stored result name (see `gear list`)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"results directory (default: {DEFAULT_OUT})")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_remove)


def _config(args):
    """GearConfig from the flags, on top of the directory's stored run when there is one."""
    import dataclasses

    import synth
    from gear.pipeline import GearConfig, read_run_config

    out = Path(args.out)
    stored = (out / "run.json").exists()
    config = read_run_config(out) if stored else GearConfig()
    grid = dict(config.grid_kwargs)
    if args.preset is not None:
        if args.preset not in synth.PRESETS:
            raise ParameterError(f"--preset {args.preset!r}; choose one of {', '.join(synth.PRESETS)}")
        if stored and args.preset != config.preset:
            grid = {}  # let the settings check report the preset conflict
        config = dataclasses.replace(config, preset=args.preset)
    if args.family is not None:
        config = dataclasses.replace(config, stimuli=stimuli_from_args(args))
    else:
        stimuli_from_args(args)  # --design, --n, --factor without --family: an error
        for flag in ("seed", "n_alpha", "n_r"):
            value = getattr(args, flag)
            if value is not None:
                grid[flag] = value
    config = dataclasses.replace(config, grid_kwargs=grid)
    for flag, field in (("isomap_neighbors", "isomap_neighbors"), ("neighbors", "n_neighbors"), ("n_bootstrap", "n_bootstrap")):
        value = getattr(args, flag)
        if value is not None:
            config = dataclasses.replace(config, **{field: value})
    if args.batch_size is not None:
        config = dataclasses.replace(config, batch_size=args.batch_size)
    if not stored:
        n_sounds = config.tone_set().n_sounds
        if args.isomap_neighbors is None and config.isomap_neighbors >= n_sounds:
            config = dataclasses.replace(config, isomap_neighbors=max(1, n_sounds - 1))
        if args.neighbors is None and config.n_neighbors >= n_sounds // 4:
            config = dataclasses.replace(config, n_neighbors=max(1, min(config.n_neighbors, n_sounds // 4)))
    return config


def _cmd_add_submission(args) -> int:
    from gear.embedder import DEFAULT_MAX_DIM
    from gear.submission import add_submission

    progress = None if args.quiet else batch_progress(f"embedding {args.name or args.module}")
    stored = add_submission(
        args.module,
        weights=args.weights,
        name=args.name,
        out_dir=args.out,
        config=_config(args),
        models_dir=args.models_dir,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        n_jobs=args.n_jobs,
        batch_tolerance=args.batch_tolerance,
        max_dim=DEFAULT_MAX_DIM if args.max_dim is None else args.max_dim,
        progress=progress,
    )
    if args.quiet:
        return 0
    if not stored.created:
        print(f"{args.module} with these weights is already stored as {stored.name}; nothing to do")
        return 0
    info = stored.info
    padding = info["padding"]
    print(f"validated {args.module}: {info['sample_rate']} Hz, scene {info['scene_embedding_size']}-d, "
          f"timestamp {info['timestamp_embedding_size']}-d")
    print(f"tones fed at {1000 * padding['duration_s']:.0f} ms ({padding['reason']})")
    if info["compat_shims"]:
        print("compatibility: " + "; ".join(info["compat_shims"]))
    for note in stored.result.warnings:
        print(f"warning: {note}")
    print(f"stored as {stored.name} (version {stored.version}) in {stored.folder}")
    print(scores_table([stored.result]))
    out = Path(args.out)
    print(f"\nreport: {out / 'report.html'}\nleaderboard: {out / 'leaderboard.csv'}")
    return 0


def _cmd_list(args) -> int:
    from gear.submission import list_results

    rows = list_results(args.out)
    if not rows:
        print(f"no stored results in {args.out}")
        return 0
    header = ("name", "kind", "version", "module", "weights", "dim", "rate", "added", "status")
    table = [
        (
            row["name"],
            row["kind"],
            "-" if row["version"] is None else str(row["version"]),
            row["module"] or "-",
            (row["weights_sha256"] or "-")[:12] if row["weights_sha256"] != "none" else "default",
            "-" if row["embedding_dim"] is None else str(row["embedding_dim"]),
            "-" if row["sample_rate"] is None else str(row["sample_rate"]),
            row["added"] or "-",
            row["status"],
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in table + [header]) for i in range(len(header))]
    for row in [header] + table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _cmd_remove(args) -> int:
    from gear.submission import remove_result

    remove_result(args.out, args.name)
    if not args.quiet:
        print(f"removed {args.name} from {args.out}; scores.csv, leaderboard.csv and report.html rewritten")
    return 0
