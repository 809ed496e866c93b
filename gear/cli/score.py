"""``gear score``: disentanglement, topology and probe metrics of every stored model."""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from gear.cli.common import DEFAULT_OUT

__all__ = ["add_parsers"]


def add_parsers(sub) -> None:
    p = sub.add_parser("score", help="disentanglement, topology and probe metrics of every stored model",
                       description="Compute global metrics (probes, sensitivity/overlap, intrinsic dimension, "
                       "trustworthiness, persistent homology) for each model stored in OUT, write "
                       "OUT/disentanglement.csv (model,metric,parameter,value,ci_low,ci_high,note), OUT/similarity.csv and add a card per model to the report.")
    p.add_argument("--out", default=DEFAULT_OUT, help="results directory written by `gear run`")
    p.add_argument("--models", nargs="+", metavar="NAME", help="only these stored models")
    p.add_argument("--linear-f1", action="store_true", help="f1 on a linear scale (default: log f1)")
    p.add_argument("--seed", type=int, default=0, help="random state of probes and subsampling")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="score on Dask, one task per model: tcp://HOST:PORT (an existing scheduler) or local:N "
                        "(N local worker processes); the outputs equal a serial run's")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_score)



def _cmd_score(args) -> int:
    from gear.pipeline import open_store
    from gear.scoring import CSV_FILE, score_results

    scales = {"f1_hz": "linear"} if args.linear_f1 else None
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        progress = functools.partial(tqdm, desc="disentanglement metrics", unit="model", leave=False)
    store = open_store(args.out)
    with contextlib.ExitStack() as stack:
        client = None
        if args.scheduler:
            from gear.distributed import client_for

            client = stack.enter_context(client_for(args.scheduler))
        rows = score_results(args.out, models=args.models, scales=scales, random_state=args.seed,
                             progress=progress, client=client)
    store.refresh_outputs()
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
