"""Wall time and peak memory of GEAR at scale: the analysis alone and a full naive run.

For each size (``--sizes A:R ...``, n = A x R tones on the paper grid; default 50:50 = 2 500,
100:100 = 10 000, 316:316 = 99 856) two child processes are measured, each on its own so
that its peak RSS (``ru_maxrss``) is its own:

- ``full run``: ``gear.pipeline.run(["naive"], ...)`` from scratch (fresh embedding cache and
  results directory): synthesis, naive embedding (4 096-d), analysis, stores; the HTML
  report is written up to ``--report-max`` tones (default 10 000; the report at large n is
  a separate issue);
- ``analysis``: :func:`gear.analysis.analyse` (Isomap + scores with one neighbour search) on
  the embedding the full run stored, loaded from ``embedding.npy``; the child then measures
  the neighbour recall against an exact search on ``--recall-queries`` random tones (after
  the timed part) and, with ``--exact-isomap-max N``, the Procrustes correlation between
  landmark Isomap and scikit-learn's exact Isomap for sizes up to N.

``cpu_s`` is the child's CPU time (all threads) over the same span and ``load`` the 1-minute
load average when the child ended: on a shared machine wall times are inflated by other
processes, and cpu_s / cores bounds what the same work takes on idle cores. Usage::

    python benchmarks/bench_scale.py                            # 2 500, 10 000, 99 856 tones
    python benchmarks/bench_scale.py --sizes 100:100 --exact-isomap-max 10000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _child_full_run(args) -> dict:
    from gear.pipeline import GearConfig, run

    config = GearConfig(grid_kwargs=dict(n_alpha=args.n_alpha, n_r=args.n_r))
    n = args.n_alpha * args.n_r
    start, cpu = time.perf_counter(), _cpu_s()
    run(["naive"], out_dir=args.out, config=config, cache_dir=Path(args.out) / "cache", report=n <= args.report_max)
    return dict(wall_s=time.perf_counter() - start, cpu_s=_cpu_s() - cpu, peak_rss_gb=_peak_rss_gb(), report=n <= args.report_max)


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_analysis(args) -> dict:
    import numpy as np

    from gear import analysis, neighbours
    from gear.pipeline import PARAMETERS, GearConfig

    config = GearConfig(grid_kwargs=dict(n_alpha=args.n_alpha, n_r=args.n_r))
    embedding = np.load(Path(args.out) / "models" / "naive" / "embedding.npy")
    theta = dict(zip(PARAMETERS, config.tone_set().theta().T))
    start, cpu = time.perf_counter(), _cpu_s()
    out = analysis.analyse(embedding, theta, parameters=PARAMETERS, isomap_neighbors=config.isomap_neighbors,
                           n_neighbors=config.n_neighbors, n_bootstrap=config.n_bootstrap)
    result = dict(wall_s=time.perf_counter() - start, cpu_s=_cpu_s() - cpu, peak_rss_gb=_peak_rss_gb(), algorithm=out["algorithm"], n_graph_components=out["n_graph_components"],
                  scores={row["parameter"]: [row["median_abs_log_ratio"], row["ci_low"], row["ci_high"]] for row in out["rows"]})
    if out["algorithm"] != "exact" and args.recall_queries:
        found = neighbours.search(embedding, config.n_neighbors, algorithm=out["algorithm"])
        result["recall"] = neighbours.recall_at_k(embedding, found, n_queries=args.recall_queries)
    if embedding.shape[0] <= args.exact_isomap_max and embedding.shape[0] > analysis.EXACT_MAX_SOUNDS:
        from scipy.spatial import procrustes

        exact, _ = analysis.isomap_embedding(embedding, n_neighbors=config.isomap_neighbors, n_landmarks=None)
        result["procrustes_r"] = float(np.sqrt(1 - procrustes(exact, out["coordinates"])[2]))
        _, exact_rows = analysis.score_embedding(embedding, theta, parameters=PARAMETERS, algorithm="exact")
        result["exact_scores"] = {row["parameter"]: [row["median_abs_log_ratio"], row["ci_low"], row["ci_high"]]
                                  for row in exact_rows}
    return result


def _run_child(kind: str, n_alpha: int, n_r: int, out: str, args) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--sizes", f"{n_alpha}:{n_r}", "--out", out,
               "--report-max", str(args.report_max), "--recall-queries", str(args.recall_queries),
               "--exact-isomap-max", str(args.exact_isomap_max)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["50:50", "100:100", "316:316"], help="n_alpha:n_r per size")
    parser.add_argument("--report-max", type=int, default=10000, help="write the HTML report up to this many tones")
    parser.add_argument("--recall-queries", type=int, default=300, help="tones whose neighbours are checked exactly")
    parser.add_argument("--exact-isomap-max", type=int, default=0, help="compare with exact Isomap up to this n")
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("full", "analysis"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.n_alpha, args.n_r = (int(v) for v in args.sizes[0].split(":"))
        result = (_child_full_run if args.child == "full" else _child_analysis)(args)
        result["load"] = os.getloadavg()[0]
        print(json.dumps(result))
        return
    print(f"{'n':>7} | {'what':<30} | {'wall_s':>7} | {'cpu_s':>7} | {'peak_rss_gb':>11} | {'load':>5} | notes", flush=True)
    for size in args.sizes:
        n_alpha, n_r = (int(v) for v in size.split(":"))
        with tempfile.TemporaryDirectory(prefix="gear-bench-scale-") as out:
            full = _run_child("full", n_alpha, n_r, out, args)
            what = "full naive run" + ("" if full["report"] else " (no report)")
            print(f"{n_alpha * n_r:>7} | {what:<30} | {full['wall_s']:7.1f} | {full['cpu_s']:7.1f} | {full['peak_rss_gb']:11.2f} | {full['load']:5.1f} |", flush=True)
            alone = _run_child("analysis", n_alpha, n_r, out, args)
            notes = [f"neighbours: {alone['algorithm']}"]
            notes += [f"recall@40 {alone['recall']:.4f}"] if "recall" in alone else []
            notes += [f"Procrustes r vs exact Isomap {alone['procrustes_r']:.4f}"] if "procrustes_r" in alone else []
            notes += [f"graph components {alone['n_graph_components']}"]
            print(f"{n_alpha * n_r:>7} | {'analysis alone':<30} | {alone['wall_s']:7.1f} | {alone['cpu_s']:7.1f} | {alone['peak_rss_gb']:11.2f} | {alone['load']:5.1f} | {'; '.join(notes)}", flush=True)
            for name, (median, low, high) in alone["scores"].items():
                exact = alone.get("exact_scores", {}).get(name)
                extra = f"; exact: {exact[0]:.4f} [{exact[1]:.4f}, {exact[2]:.4f}]" if exact else ""
                print(f"{'':>7} |   {name:<28} | median |log-ratio| {median:.4f} [{low:.4f}, {high:.4f}]{extra}", flush=True)


if __name__ == "__main__":
    main()
