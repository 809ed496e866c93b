"""Command line of the timbre module: ``gear timbre table``, ``gear timbre metrics`` and
``gear timbre robustness``.

:func:`add_subparsers` registers the ``timbre`` command on the ``gear`` parser's
subparsers; :func:`run` executes parsed arguments. :func:`main` runs the two commands on
their own (``python -m gear.timbre.cli table --out OUT``).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Optional, Sequence

from gear.errors import ParameterError

__all__ = ["add_subparsers", "build_parser", "run", "main"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", default=None,
                   help="study folder laid out like shared/timbre (default: $GEAR_SHARED_DIR/timbre "
                        "or ../shared/timbre next to the repository)")
    p.add_argument("--out", metavar="OUT", required=True, help="output folder (created; holds the cache)")
    p.add_argument("--studies", nargs="+", metavar="STUDY", default=None, help="studies (default: all)")
    p.add_argument("--representations", nargs="+", metavar="REP", default=None,
                   help="folders of <data>/features (default: all)")
    p.add_argument("--zoo", nargs="+", metavar="MODEL", default=[],
                   help="zoo models (registry names) added as representations, through their scene embeddings")
    p.add_argument("--models-dir", metavar="DIR", default=None,
                   help="model files folder (default: $GEAR_MODELS_DIR)")
    p.add_argument("--n-jobs", type=int, default=1, metavar="N", help="parallel workers (joblib; -1: all cores)")
    p.add_argument("--include-unaligned", action="store_true",
                   help="also show the representations whose rows are not aligned with the ratings "
                        "(clap, encodec, mert_avg, mert_concat), labelled, as a shuffled-pairing control")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the output paths")


def add_subparsers(subparsers) -> argparse.ArgumentParser:
    """Register ``timbre table``, ``timbre metrics`` and ``timbre robustness`` on an argparse
    subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()`` of the ``gear`` command.

    Returns
    -------
    argparse.ArgumentParser
        The ``timbre`` parser; its parsed namespaces carry ``func=run``.
    """
    from gear.timbre.rankmetrics import DISTANCES, METRICS
    from gear.timbre.studies import DEFAULT_DELTAS, NOISE_CONVENTIONS, TABLE_MODES

    timbre = subparsers.add_parser(
        "timbre",
        help="timbre metric learning on the 17 dissimilarity studies",
        description="Learn weighted distances that agree with human timbre-dissimilarity ratings "
                    "(Thoret et al. 2021; Pascal & Lagrange 2024).",
    )
    sub = timbre.add_subparsers(dest="timbre_command", metavar="{table,metrics,robustness}")
    sub.required = True

    table = sub.add_parser(
        "table", help="explained variance per study x representation x mode, in- and out-of-sample",
        description="Writes OUT/explained_variance.csv (study,representation,alignment,mode,p2,validation) "
                    "and OUT/explained_variance.html; with --published, OUT/published.csv "
                    "(study,representation,alignment,published,faithful,exact,out_of_sample) and "
                    "OUT/published.html instead.",
    )
    _common(table)
    table.add_argument("--modes", nargs="+", default=["exact", "exact-loso"], choices=list(TABLE_MODES),
                       help="learning modes (default: exact exact-loso, in- and out-of-sample)")
    table.add_argument("--seed", type=int, default=0, help="seed of faithful-random and exact-kfold (default 0)")
    table.add_argument("--k", type=int, default=5, help="folds of exact-kfold (default 5)")
    table.add_argument("--published", action="store_true",
                       help="published P2 next to GEAR faithful, exact and out-of-sample (exact-loso)")
    table.add_argument("--published-file", metavar="CSV", default=None,
                       help="published values (study,representation,published) instead of the built-in ones")
    table.set_defaults(func=run, timbre_command="table")

    metrics = sub.add_parser(
        "metrics", help="fixed-distance rank metrics against the ratings (after timbremetrics)",
        description="Writes OUT/rank_metrics.csv (study,representation,alignment,distance,metric,value).",
    )
    _common(metrics)
    metrics.add_argument("--distances", nargs="+", default=list(DISTANCES), choices=list(DISTANCES))
    metrics.add_argument("--metrics", nargs="+", default=list(METRICS), choices=list(METRICS))
    metrics.set_defaults(func=run, timbre_command="metrics")

    rob = sub.add_parser(
        "robustness", help="robustness of the learned metric to noisy ratings",
        description="Writes OUT/robustness.csv (study,representation,delta,realisation,p2,noise), "
                    "OUT/robustness_auc.csv (study,representation,auc,noise,delta_bar), "
                    "OUT/robustness.json and OUT/robustness.html.",
    )
    _common(rob)
    rob.add_argument("--noise", choices=list(NOISE_CONVENTIONS), default="absolute",
                     help="absolute: clip(s + delta xi, 0, 1) (published, default); "
                          "relative: clip(s + delta std(s) xi, 0, 1) (authors' notebook)")
    rob.add_argument("--deltas", nargs="+", type=float, default=list(DEFAULT_DELTAS), metavar="DELTA",
                     help="noise levels (default: 9 log-spaced in [0.1, 10])")
    rob.add_argument("--realisations", type=int, default=5, help="noise draws per delta (default 5)")
    rob.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    rob.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the grid's (study, representation) cells as Dask tasks: tcp://HOST:PORT (an "
                          "existing scheduler) or local:N (N local worker processes); the outputs equal a serial "
                          "run's; OUT must be visible to the workers (they write its cache)")
    rob.set_defaults(func=run, timbre_command="robustness")
    timbre.set_defaults(func=run)
    return timbre


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser for ``timbre table|metrics|robustness ...`` (as under ``gear``)."""
    parser = argparse.ArgumentParser(prog="gear")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    add_subparsers(sub)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``timbre table``, ``timbre metrics`` or ``timbre robustness``; returns the exit status."""
    from gear.timbre import studies as st

    say = (lambda line: None) if getattr(args, "quiet", False) else (lambda line: print(line, flush=True))
    t0 = time.perf_counter()
    common = dict(out_dir=args.out, studies=args.studies, data_dir=args.data, n_jobs=args.n_jobs, progress=say)
    selection = dict(representations=args.representations, zoo=args.zoo, models_dir=args.models_dir,
                     include_unaligned=args.include_unaligned)
    try:
        if args.timbre_command == "table" and args.published:
            from gear.timbre.published import read_published

            values = read_published(args.published_file) if args.published_file else None
            rows = st.published_table(published=values, **common)
            say(f"{len(rows)} rows in {time.perf_counter() - t0:.1f} s")
            outputs = ("published.csv", "published.html")
        elif args.timbre_command == "table":
            rows = st.explained_variance_table(
                modes=args.modes, random_state=args.seed, n_splits=args.k, seed=args.seed, **selection, **common
            )
            say(f"{len(rows)} fits in {time.perf_counter() - t0:.1f} s")
            outputs = ("explained_variance.csv", "explained_variance.html")
        elif args.timbre_command == "metrics":
            rows = st.rank_metrics_table(distances=args.distances, metrics=args.metrics, **selection, **common)
            say(f"{len(rows)} values in {time.perf_counter() - t0:.1f} s")
            outputs = ("rank_metrics.csv",)
        elif args.timbre_command == "robustness":
            with contextlib.ExitStack() as stack:
                client = None
                if args.scheduler:
                    from gear.distributed import client_for

                    client = stack.enter_context(client_for(args.scheduler))
                rows, auc = st.robustness_study(
                    noise=args.noise, deltas=args.deltas, n_realisations=args.realisations, seed=args.seed,
                    client=client, **selection, **common,
                )
            say(f"{len(rows)} exact fits ({args.noise} noise) in {time.perf_counter() - t0:.1f} s")
            outputs = ("robustness.csv", "robustness_auc.csv", "robustness.json", "robustness.html")
        else:  # pragma: no cover - argparse enforces the choice
            raise ParameterError(f"unknown timbre command {args.timbre_command!r}; use table, metrics or robustness")
        for name in outputs:
            print(f"{args.out}/{name}")
    except ParameterError as err:
        print(f"gear timbre: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gear.timbre.cli [timbre] table|metrics|robustness ...`` (as ``gear timbre ...``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "timbre":
        argv = ["timbre"] + argv
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
