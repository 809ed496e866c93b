"""Benchmark of the timbre metric learning: fit times and the full robustness study.

Prints two tables:

1. per representation (one study, default Grey1977, 120 pairs; and the largest study,
   Lakatos2000_Comb, 190 pairs, for the exact solver): seconds per fit of the exact solver
   (median of 5, pair matrix included) and of the faithful reference procedure
   (L-BFGS-B on w from the warm start, one run), with the P^2 each reaches;
2. the full robustness study: 17 studies x 8 representations x 9 deltas x 5 realisations
   = 6 120 exact fits, with ``--n-jobs`` workers (target: <= 10 min on 2 cores).

Targets: exact <= 0.1 s per fit for n_features <= 1 024 and <= 1 s for STMF (30 976).

Usage::

    python benchmarks/bench_timbre.py                  # both parts, faithful up to 2 204 features
    python benchmarks/bench_timbre.py --faithful-all   # faithful on STMF/MERT-concat too (minutes each)
    python benchmarks/bench_timbre.py --skip-robustness --n-jobs 2
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gear.timbre.data import list_representations, list_studies, load_features, load_study  # noqa: E402
from gear.timbre.solver import ConeProblem, pair_differences, solve_exact, solve_faithful  # noqa: E402
from gear.timbre.studies import robustness_study  # noqa: E402


def _time_exact(F, s, repeats=5):
    wall, cpu, sol = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        X = pair_differences(F)
        sol = solve_exact(X, s, problem=ConeProblem(X))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu)), sol


def fit_times(args):
    reps = list_representations(args.data)
    print("\n## Seconds per fit (wall; CPU in brackets)\n")
    header = ("representation", "n_features", "exact Grey1977", "exact Lakatos2000_Comb",
              "faithful-warm Grey1977", "L-BFGS-B iters", "P2 exact", "P2 faithful")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for rep in sorted(reps, key=lambda r: load_features(args.study, r, data_dir=args.data).shape[1]):
        st = load_study(args.study, data_dir=args.data, check_audio=False)
        F = load_features(st, rep)
        w1, c1, ex = _time_exact(F, st.ratings)
        big = load_study("Lakatos2000_Comb", data_dir=args.data, check_audio=False)
        w2, c2, _ = _time_exact(load_features(big, rep), big.ratings)
        if F.shape[1] <= args.faithful_max_features or args.faithful_all:
            t0, c0 = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fa = solve_faithful(pair_differences(F), st.ratings, init="warm")
            fw, fc = time.perf_counter() - t0, time.process_time() - c0
            faithful = f"{fw:.1f} ({fc:.1f})"
            nit, p2f = str(fa.n_iter), f"{fa.p2:.4f}"
        else:
            faithful, nit, p2f = "skipped (--faithful-all)", "", ""
        print(f"| {rep} | {F.shape[1]} | {w1:.3f} ({c1:.3f}) | {w2:.3f} ({c2:.3f}) | {faithful} | {nit} "
              f"| {ex.p2:.4f} | {p2f} |", flush=True)


def robustness_time(args):
    studies = list_studies(args.data)
    reps = list_representations(args.data)
    n_fits = len(studies) * len(reps) * 9 * 5
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.robustness_out) if args.robustness_out else Path(tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        rows, auc = robustness_study(out_dir=out, data_dir=args.data, n_jobs=args.n_jobs, noise=args.noise,
                                     include_unaligned=True)  # all 8 sets: the same work as before
        wall = time.perf_counter() - t0
    print("\n## Full robustness study\n")
    print("| studies | representations | fits | n_jobs | noise | wall (s) | fits per second |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(studies)} | {len(reps)} | {len(rows)} (expected {n_fits}) | {args.n_jobs} | {args.noise} "
          f"| {wall:.1f} | {len(rows) / wall:.1f} |")
    if args.robustness_out:
        print(f"\noutputs in {args.robustness_out} (a second run reads the cache)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="timbre data folder (default: shared/timbre)")
    p.add_argument("--study", default="Grey1977")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--noise", default="absolute", choices=["absolute", "relative"])
    p.add_argument("--faithful-max-features", type=int, default=2204)
    p.add_argument("--faithful-all", action="store_true", help="also run the faithful mode on STMF and MERT-concat")
    p.add_argument("--skip-fits", action="store_true")
    p.add_argument("--skip-robustness", action="store_true")
    p.add_argument("--robustness-out", default=None, help="keep the robustness outputs here (else a temp dir)")
    args = p.parse_args(argv)
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    if not args.skip_fits:
        fit_times(args)
    if not args.skip_robustness:
        robustness_time(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
