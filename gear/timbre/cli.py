"""Command line of the timbre module: ``gear timbre table`` and ``gear timbre robustness``.

:func:`add_subparsers` registers the ``timbre`` command on the ``gear`` parser's
subparsers; :func:`run` executes parsed arguments. :func:`main` runs the two commands on
their own (``python -m gear.timbre.cli table --out OUT``).
"""
from __future__ import annotations

import argparse
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
    p.add_argument("-q", "--quiet", action="store_true", help="print only the output paths")


def add_subparsers(subparsers) -> argparse.ArgumentParser:
    """Register ``timbre table`` and ``timbre robustness`` on an argparse subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()`` of the ``gear`` command.

    Returns
    -------
    argparse.ArgumentParser
        The ``timbre`` parser; its parsed namespaces carry ``func=run``.
    """
    from gear.timbre.solver import MODES
    from gear.timbre.studies import DEFAULT_DELTAS, NOISE_CONVENTIONS

    timbre = subparsers.add_parser(
        "timbre",
        help="timbre metric learning on the 17 dissimilarity studies",
        description="Learn weighted distances that agree with human timbre-dissimilarity ratings "
                    "(Thoret et al. 2021; Pascal & Lagrange 2024).",
    )
    sub = timbre.add_subparsers(dest="timbre_command", metavar="{table,robustness}")
    sub.required = True

    table = sub.add_parser(
        "table", help="explained variance per study x representation x mode",
        description="Writes OUT/explained_variance.csv (study,representation,mode,p2) and "
                    "OUT/explained_variance.html.",
    )
    _common(table)
    table.add_argument("--modes", nargs="+", default=["exact"], choices=list(MODES),
                       help="learning modes (default: exact)")
    table.add_argument("--seed", type=int, default=0, help="seed of faithful-random (default 0)")
    table.set_defaults(func=run, timbre_command="table")

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
    rob.set_defaults(func=run, timbre_command="robustness")
    timbre.set_defaults(func=run)
    return timbre


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser for ``timbre table|robustness ...`` (as under ``gear``)."""
    parser = argparse.ArgumentParser(prog="gear")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    add_subparsers(sub)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``timbre table`` or ``timbre robustness``; returns the exit status."""
    from gear.timbre import studies as st

    say = (lambda line: None) if getattr(args, "quiet", False) else (lambda line: print(line, flush=True))
    t0 = time.perf_counter()
    try:
        if args.timbre_command == "table":
            rows = st.explained_variance_table(
                out_dir=args.out, studies=args.studies, representations=args.representations,
                modes=args.modes, zoo=args.zoo, data_dir=args.data, models_dir=args.models_dir,
                n_jobs=args.n_jobs, random_state=args.seed, progress=say,
            )
            say(f"{len(rows)} fits in {time.perf_counter() - t0:.1f} s")
            print(f"{args.out}/explained_variance.csv")
            print(f"{args.out}/explained_variance.html")
        elif args.timbre_command == "robustness":
            rows, auc = st.robustness_study(
                out_dir=args.out, studies=args.studies, representations=args.representations,
                zoo=args.zoo, noise=args.noise, deltas=args.deltas, n_realisations=args.realisations,
                seed=args.seed, data_dir=args.data, models_dir=args.models_dir, n_jobs=args.n_jobs,
                progress=say,
            )
            say(f"{len(rows)} exact fits ({args.noise} noise) in {time.perf_counter() - t0:.1f} s")
            for name in ("robustness.csv", "robustness_auc.csv", "robustness.json", "robustness.html"):
                print(f"{args.out}/{name}")
        else:  # pragma: no cover - argparse enforces the choice
            raise ParameterError(f"unknown timbre command {args.timbre_command!r}; use table or robustness")
    except ParameterError as err:
        print(f"gear timbre: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gear.timbre.cli [timbre] table|robustness ...`` (as ``gear timbre ...``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "timbre":
        argv = ["timbre"] + argv
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
