"""The ``gear`` command line. Every subcommand has ``--help``; tests call :func:`main`."""
from __future__ import annotations

import argparse
import functools
import logging
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from gear.errors import LOWER_LAYER_ERRORS, GearError, ParameterError

__all__ = ["main", "build_parser"]


def _progress_factory(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda description: functools.partial(tqdm, desc=description, unit="batch", leave=False)


def _add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    import synth

    group = parser.add_argument_group("tone set")
    group.add_argument("--preset", default="paper", choices=synth.PRESETS,
                       help="'paper' (default: the paper's text), 'gear2023-code' (the paper's code; warns), 'factorial'")
    group.add_argument("--seed", type=int, default=None, help="seed of the random f1 draw (paper/gear2023-code)")
    group.add_argument("--n-alpha", type=int, default=None, help="values of alpha (50 in the paper)")
    group.add_argument("--n-r", type=int, default=None, help="values of r (50 in the paper)")


def _grid_kwargs(args) -> dict:
    kwargs = {}
    for name in ("seed", "n_alpha", "n_r"):
        value = getattr(args, name)
        if value is not None:
            if args.preset == "factorial" and name == "seed":
                raise ParameterError("--seed does not apply to the factorial preset (no random draw)")
            kwargs[name] = value
    return kwargs


def _cmd_run(args) -> int:
    from gear.pipeline import GearConfig, run

    scales = {"f1_hz": "log"} if args.log_f1 else {}
    config = GearConfig(
        preset=args.preset,
        grid_kwargs=_grid_kwargs(args),
        isomap_neighbors=args.isomap_neighbors,
        n_neighbors=args.neighbors,
        scaling=args.scaling,
        scales=scales,
        n_bootstrap=args.n_bootstrap,
        batch_size=args.batch_size,
    )
    from gear.submission import refresh_outputs

    results = run(
        args.models or None,
        out_dir=args.out,
        config=config,
        models_dir=args.models_dir,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        progress=_progress_factory(not args.quiet),
        report=False,
    )
    # scores.csv, leaderboard and report over every result stored in OUT (added submissions too)
    refresh_outputs(args.out)
    if not args.quiet:
        print(_scores_table(results))
        print(f"\nreport: {Path(args.out) / 'report.html'}\nscores: {Path(args.out) / 'scores.csv'}")
    return 0


def _scores_table(results) -> str:
    lines = [f"{'model':<22}{'parameter':<10}{'median|log|':>12}{'95% CI':>20}{'chance':>9}{'n':>6}"]
    for result in results:
        for row in result.scores:
            ci = f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
            lines.append(
                f"{result.name:<22}{row['parameter']:<10}{row['median_abs_log_ratio']:>12.4f}{ci:>20}"
                f"{row['chance']:>9.3f}{row['n']:>6d}"
            )
    return "\n".join(lines)


def _cmd_synth(args) -> int:
    import synth
    from gear.dataset import write_dataset

    tone_set = synth.make_grid(args.preset, **_grid_kwargs(args))
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        progress = functools.partial(tqdm, desc="writing WAV files", unit="file", leave=False)
    path = write_dataset(tone_set, args.out, sample_rate=args.sample_rate, subtype=args.subtype, progress=progress)
    if not args.quiet:
        print(f"{tone_set.n_sounds} tones at {args.sample_rate} Hz; parameters: {path}")
    return 0


def _cmd_report(args) -> int:
    from gear.pipeline import load_results, read_run_config, write_run_report
    from gear.submission import refresh_outputs

    config = read_run_config(args.results)
    if args.models:
        results = load_results(args.results)
        unknown = set(args.models) - {r.name for r in results}
        if unknown:
            raise ParameterError(f"no stored results for {sorted(unknown)} in {args.results}")
        results = [r for r in results if r.name in args.models]
        path = write_run_report(args.results, results, config.tone_set(), config=config)
    else:
        refresh_outputs(args.results)
        path = Path(args.results) / "report.html"
    if not args.quiet:
        print(f"report: {path}")
    return 0


def _cmd_score(args) -> int:
    from gear.scoring import CSV_FILE, score_results
    from gear.submission import refresh_outputs

    scales = {"f1_hz": "linear"} if args.linear_f1 else None
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        progress = functools.partial(tqdm, desc="disentanglement metrics", unit="model", leave=False)
    rows = score_results(args.out, models=args.models, scales=scales, random_state=args.seed, progress=progress)
    refresh_outputs(args.out)
    if not args.quiet:
        print(_disentanglement_table(rows))
        print(f"\nmetrics: {Path(args.out) / CSV_FILE}\nreport: {Path(args.out) / 'report.html'}")
    return 0


def _disentanglement_table(rows) -> str:
    from gear.disentangle import pivot_metrics

    table = pivot_metrics(rows)
    columns = [
        ("probe_r2_ridge[f1_hz]", "R2 f1"), ("probe_r2_ridge[alpha]", "R2 a"), ("probe_r2_ridge[r]", "R2 r"),
        ("sensitivity[f1_hz]", "sens f1"), ("sensitivity[alpha]", "sens a"), ("sensitivity[r]", "sens r"),
        ("disentanglement_score", "disent."), ("intrinsic_dimension", "dim"), ("trustworthiness", "trust"),
        ("betti_0", "b0"), ("betti_1", "b1"), ("betti_2", "b2"),
    ]
    lines = [f"{'model':<22}" + "".join(f"{label:>9}" for _, label in columns)]
    for model, values in table.items():
        lines.append(f"{model:<22}" + "".join(f"{values.get(key, float('nan')):>9.3f}" for key, _ in columns))
    return "\n".join(lines)


def _cmd_models(args) -> int:
    from embeddings import registry

    rows = []
    for spec in registry.list_models():
        ok, where = spec.can_run(args.models_dir)
        status = spec.weights(args.models_dir) if not spec.missing_requirements() else None
        if ok and spec.find_weights is None:
            weights = "none (DSP)"
        elif ok and status is not None and not status.real:
            weights = "random by design"
        elif ok:
            weights = "real weights"
        else:
            weights = "-"
        rows.append((spec.name, "yes" if ok else "no", "yes" if spec.default else "", weights, where))
    widths = [max(len(str(r[i])) for r in rows + [("model", "runs", "default", "weights", "where")]) for i in range(4)]
    header = ("model", "runs", "default", "weights", "where / why not")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[4])
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gear",
        description="GEAR: what do audio models hear? Synthesise tones with known causes, embed them "
        "with pretrained models (HEAR 2021 API), and measure how the embeddings arrange the causes.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="embed the GEAR tones with models, score them, write the report",
                       description="Synthesise the tone set, embed it with each model, compute Isomap and "
                       "K-NN log-ratio scores, and write OUT/report.html and OUT/scores.csv.")
    p.add_argument("--out", default="gear-results", help="results directory (default: gear-results)")
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
    p.add_argument("--batch-size", type=int, default=250, help="sounds per model call")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    _add_grid_arguments(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("synth", help="write the tone set as WAV files with parameters.csv",
                       description="Write OUT/tone_NNNNN.wav and OUT/parameters.csv "
                       "(index,file,sample_rate,n_samples,f1_bins,f1_hz,alpha,r).")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--sample-rate", type=int, default=16000, help="sample rate of the files in Hz")
    p.add_argument("--subtype", default="FLOAT", help="WAV subtype (FLOAT, PCM_16, PCM_24)")
    p.add_argument("-q", "--quiet", action="store_true")
    _add_grid_arguments(p)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("report", help="rebuild the report from a results directory")
    p.add_argument("results", help="results directory written by `gear run`")
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these models")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("score", help="disentanglement, topology and probe metrics of every stored model",
                       description="Compute global metrics (probes, sensitivity/overlap, intrinsic dimension, "
                       "trustworthiness, persistent homology) for each model stored in OUT, write "
                       "OUT/disentanglement.csv (model,metric,parameter,value) and add a card per model to the report.")
    p.add_argument("--out", default="gear-results", help="results directory written by `gear run`")
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these stored models")
    p.add_argument("--linear-f1", action="store_true", help="f1 on a linear scale (default: log f1)")
    p.add_argument("--seed", type=int, default=0, help="random state of probes and subsampling")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("models", help="list registered models and whether they can run here")
    p.add_argument("--models-dir", default=None, help="folder of model files (default: $GEAR_MODELS_DIR)")
    p.set_defaults(func=_cmd_models)

    try:
        from gear.timbre import cli as timbre_cli
    except ImportError:  # the timbre module is optional at import time
        timbre_cli = None
    if timbre_cli is not None and hasattr(timbre_cli, "add_subparsers"):
        timbre_cli.add_subparsers(sub)
    from gear import submission_cli

    submission_cli.add_subparsers(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings on the command line: one readable line, no source excerpt."""
    print(f"gear: {category.__name__}: {message}", file=file or sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return int(args.func(args) or 0)
    except (GearError,) + LOWER_LAYER_ERRORS as error:
        print(f"gear {args.command}: error: {error}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
