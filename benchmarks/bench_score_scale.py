"""Wall time, CPU time and peak memory of ``gear score`` at scale (issue 11).

For each size (n = A x R tones on the paper grid; default 50:50 = 2 500 and 100:100 = 10 000;
``--large`` adds 316:316 = 99 856) two child processes run, each on its own so that its peak
RSS (``ru_maxrss``) is its own:

- ``setup`` (not timed): ``gear.pipeline.run`` of the models (default naive, 4 096-d) into a
  fresh results directory, without the report;
- ``gear score``: :func:`gear.scoring.score_results` on that directory: every metric of
  ``disentanglement.csv`` (probes, sensitivity, Isomap residual variance, trustworthiness,
  topology, the metric table) and, with two models or more, ``similarity.csv``.

Up to 5 000 tones the metrics hold n x n matrices; above, their O(n K) paths run
(``gear.disentangle._inputs.LARGE_SOUNDS``). ``cpu_s`` is the child's CPU time (all threads)
and ``load`` the 1-minute load average when it ended: on a shared machine wall times are
inflated by other processes, and cpu_s / cores bounds what the same work takes on idle cores.
The per-family seconds of the first model are printed under each row. Usage::

    python benchmarks/bench_score_scale.py                    # 2 500 and 10 000 tones
    python benchmarks/bench_score_scale.py --large            # and 99 856
    python benchmarks/bench_score_scale.py --sizes 60:60 --models naive mfcc
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


def _usage():
    """(CPU seconds of this process, all threads; its peak RSS in GB)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1e6  # KB on Linux


def _child_setup(args) -> dict:
    from gear.pipeline import GearConfig, run

    config = GearConfig(grid_kwargs=dict(n_alpha=args.n_alpha, n_r=args.n_r))
    run(args.models, out_dir=args.out, config=config, cache_dir=Path(args.out) / "cache", report=False)
    return {}


def _child_score(args) -> dict:
    import json as json_

    from gear.scoring import score_results

    start, (cpu, _) = time.perf_counter(), _usage()
    rows = score_results(args.out)
    wall, (cpu_end, peak) = time.perf_counter() - start, _usage()
    result = dict(wall_s=wall, cpu_s=cpu_end - cpu, peak_rss_gb=peak, n_rows=sum(len(r) for r in rows.values()))
    first = Path(args.out) / "models" / args.models[0] / "disentanglement.json"
    result["values"] = {f"{r['metric']}[{r['parameter']}]": r["value"] for r in json_.loads(first.read_text())["rows"]
                        if r["metric"] in ("normalised_score", "trustworthiness", "intrinsic_dimension", "silhouette",
                                           "betti_0")}
    return result


def _child(kind: str, size: str, out: str, models) -> dict:
    """Run this script as a child process (its own peak RSS); its JSON result."""
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--sizes", size, "--out", out, "--models", *models],
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])),
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["50:50", "100:100"], help="n_alpha:n_r per size")
    parser.add_argument("--large", action="store_true", help="also 316:316 = 99 856 tones")
    parser.add_argument("--models", nargs="+", default=["naive"], help="registry names (default naive)")
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("setup", "score"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one step in this (child) process, its result as JSON on the last line
        args.n_alpha, args.n_r = map(int, args.sizes[0].split(":"))
        step = {"setup": _child_setup, "score": _child_score}[args.child]
        print(json.dumps(dict(step(args), load=os.getloadavg()[0])))
        return
    sizes = args.sizes + (["316:316"] if args.large else [])
    print(f"{'n':>7} | {'models':<16} | {'wall_s':>7} | {'cpu_s':>7} | {'peak_rss_gb':>11} | {'load':>5} | rows", flush=True)
    for size in sizes:
        n_alpha, n_r = (int(v) for v in size.split(":"))
        with tempfile.TemporaryDirectory(prefix="gear-bench-score-") as out:
            _child("setup", size, out, args.models)
            got = _child("score", size, out, args.models)
            print(f"{n_alpha * n_r:>7} | {' '.join(args.models):<16} | {got['wall_s']:7.1f} | {got['cpu_s']:7.1f} | "
                  f"{got['peak_rss_gb']:11.2f} | {got['load']:5.1f} | {got['n_rows']}", flush=True)
            values = ", ".join(f"{k} {v:.3f}" for k, v in got["values"].items() if v is not None)
            print(f"{'':>7} |   {args.models[0]}: {values}", flush=True)


if __name__ == "__main__":
    main()
