"""``gear run`` and ``gear report``: embed, score and store; rebuild the outputs."""
from __future__ import annotations

from pathlib import Path

from gear.cli.common import (DEFAULT_OUT, add_grid_arguments, grid_kwargs, memory_size, progress_factory,
                             scores_table, stimuli_from_args)
from gear.errors import ParameterError

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    p = sub.add_parser("run", help="embed the GEAR tones with models, score them, write the report",
                       description="Synthesise the tone set, embed it with each model, compute Isomap and "
                       "K-NN log-ratio scores, and write OUT/report.html and OUT/scores.csv.")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"results directory (default: {DEFAULT_OUT})")
    p.add_argument("--models", nargs="+", metavar="NAME", help="registry names (default: every default model that runs here)")
    p.add_argument("--models-dir", default=None, help="folder of model files (default: $GEAR_MODELS_DIR)")
    p.add_argument("--cache-dir", default=None, help="embedding cache (default: $GEAR_CACHE_DIR or ~/.cache/gear)")
    p.add_argument("--no-cache", action="store_true", help="recompute embeddings, do not store them")
    p.add_argument("--isomap-neighbors", type=int, default=100, help="K of Isomap's graph (paper: 100)")
    p.add_argument("--neighbors", type=int, default=40, help="K of the log-ratio regression (paper: 40)")
    p.add_argument("--scaling", default="none", choices=("none", "standard", "maxabs"),
                   help="scaling of embedding dimensions before distances (default: none)")
    p.add_argument("--log-f1", action="store_true", help="score f1 on a log scale (pitch is heard on a log scale)")
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--batch-size", type=int, default=250,
                   help="sounds per shard: the unit of the cache, of Dask tasks and of the progress bar, and the most "
                        "sounds per model call (default 250)")
    p.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help="memory budget of the model calls, e.g. 4GB, 500MB or 30%% (of the RAM); a shard is embedded "
                        "in calls that fit it (default: 25%% of the RAM, per Dask worker on a cluster)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on Dask: tcp://HOST:PORT (an existing scheduler) or local:N (N local worker processes); "
                        "needs the [dask] extra")
    p.add_argument("--layers", default=None, metavar="all|NAME,NAME",
                   help="also score named layers of each model (time-pooled, from the same forward pass), stored as "
                        "MODEL/LAYER; 'all' or a comma list (see `gear models --layers MODEL`)")
    p.add_argument("--max-dim", type=int, default=None, metavar="N",
                   help="largest embedding or pooled layer stored (default: 65536)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    add_grid_arguments(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="rebuild the report (and scores.csv, leaderboard.csv) from a results directory")
    p.add_argument("results", help="results directory written by `gear run`")
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these models (writes the report alone)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_report)


def _cmd_run(args) -> int:
    from gear.pipeline import GearConfig, run

    config = GearConfig(
        preset=args.preset,
        grid_kwargs=grid_kwargs(args),
        stimuli=stimuli_from_args(args),
        isomap_neighbors=args.isomap_neighbors,
        n_neighbors=args.neighbors,
        scaling=args.scaling,
        scales={"f1_hz": "log"} if args.log_f1 else {},
        n_bootstrap=args.n_bootstrap,
        batch_size=args.batch_size,
    )
    results = run(
        args.models or None,
        out_dir=args.out,
        config=config,
        models_dir=args.models_dir,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        progress=progress_factory(not args.quiet),
        scheduler=args.scheduler,
        max_memory=args.max_memory,
        layers=args.layers,
        max_dim=args.max_dim,
    )
    if not args.quiet:
        print(scores_table(results))
        print(f"\nreport: {Path(args.out) / 'report.html'}\nscores: {Path(args.out) / 'scores.csv'}")
    return 0


def _cmd_report(args) -> int:
    from gear.pipeline import open_store, read_run_config, write_run_report

    if not Path(args.results, "run.json").is_file():
        raise ParameterError(f"{str(Path(args.results) / 'run.json')!r} not found: {args.results!r} holds no GEAR run; "
                             f"run `gear run --out {args.results}` first")
    store = open_store(args.results)
    if args.models:
        unknown = set(args.models) - set(store.names())
        if unknown:
            raise ParameterError(f"no stored results for {sorted(unknown)} in {args.results}; see `gear list --out "
                                 f"{args.results}`")
        config = read_run_config(args.results)
        path = write_run_report(args.results, store.load_results(names=args.models), config.tone_set(), config=config)
    else:
        store.refresh_outputs()
        path = Path(args.results) / "report.html"
    if not args.quiet:
        print(f"report: {path}")
    return 0
