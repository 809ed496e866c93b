"""Benchmark of the corrected timbre evaluation: out-of-sample P^2, rank metrics, evaluate().

Prints four tables (wall seconds on this machine, peak resident memory at the end):

1. ``exact-loso`` for all studies x the aligned representations through
   ``explained_variance_table`` (modes exact + exact-loso, ``--n-jobs`` workers, empty cache):
   target <= 60 s on 2 cores; with the in-sample and out-of-sample medians;
2. rank metrics (3 distances x 5 metrics) for one representation over all studies:
   target <= 5 s each; with the medians;
3. ``gear.timbre.evaluate`` for a 512-d embedding over all studies, embedding time
   excluded (audio read once before): target <= 2 s;
4. (``--check-order``) agreement of the row-order file with GEAR's STFT matching.

Usage::

    python benchmarks/bench_timbre_validation.py --n-jobs 2
    python benchmarks/bench_timbre_validation.py --check-order
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gear.timbre import evaluate  # noqa: E402
from gear.timbre.data import (  # noqa: E402
    list_representations, list_studies, load_features, load_study, representation_alignment, row_order_agreement,
)
from gear.timbre.evaluation import study_audio  # noqa: E402
from gear.timbre.rankmetrics import rank_metrics  # noqa: E402
from gear.timbre.studies import explained_variance_table  # noqa: E402


def _aligned(data):
    return [r for r in list_representations(data) if representation_alignment(r, data_dir=data) != "unaligned"]


def loso_time(args):
    reps = _aligned(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = explained_variance_table(out_dir=tmp, data_dir=args.data, representations=reps,
                                        modes=["exact", "exact-loso"], n_jobs=args.n_jobs)
        wall = time.perf_counter() - t0
    load = os.getloadavg()[0]
    cpu = sum(x["seconds"] for x in rows if x["mode"] == "exact-loso")
    print(f"\n## exact + exact-loso, {len(list_studies(args.data))} studies x {len(reps)} aligned "
          f"representations, n_jobs={args.n_jobs}: {wall:.1f} s wall, exact-loso {cpu:.1f} CPU-s "
          f"(target <= 60 s on 2 cores; load average {load:.1f})\n")
    print("| representation | alignment | median P2 in-sample (exact) | median P2 out-of-sample (exact-loso) "
          "| studies with out-of-sample P2 > 0 |")
    print("|---|---|---|---|---|")
    for r in reps:
        ins = [x["p2"] for x in rows if x["representation"] == r and x["mode"] == "exact"]
        oos = [x["p2"] for x in rows if x["representation"] == r and x["mode"] == "exact-loso"]
        print(f"| {r} | {representation_alignment(r, data_dir=args.data)} | {np.median(ins):.3f} "
              f"| {np.median(oos):.3f} | {sum(v > 0 for v in oos)}/{len(oos)} |")


def rank_time(args):
    print("\n## Rank metrics (3 distances x 5 metrics, all studies; target <= 5 s per representation)\n")
    print("| representation | wall s (CPU s) | " + " | ".join(f"median {m} (l2)" for m in
                                                   ("mae", "ndcg", "spearman", "kendall", "triplet")) + " |")
    print("|---|---|---|---|---|---|---|")
    for r in _aligned(args.data):
        items = []
        for s in list_studies(args.data):
            st = load_study(s, data_dir=args.data, check_audio=False)
            items.append((load_features(st, r), st.ratings_matrix))
        t0, c0 = time.perf_counter(), time.process_time()
        out = [m for F, M in items for m in rank_metrics(F, M)]
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        med = [np.median([x["value"] for x in out if x["distance"] == "l2" and x["metric"] == m])
               for m in ("mae", "ndcg", "spearman", "kendall", "triplet")]
        print(f"| {r} | {wall:.2f} ({cpu:.2f}) | " + " | ".join(f"{v:.3f}" for v in med) + " |")


def evaluate_time(args):
    sr = 16000
    projection = np.random.default_rng(0).standard_normal((257, 512)) / 16
    spent = []

    def embed(audio):
        t0 = time.perf_counter()
        spec = np.abs(np.fft.rfft(audio[:, : 8192], n=512, axis=1))
        out = np.log(spec + 1e-6) @ projection
        spent.append(time.perf_counter() - t0)
        return out

    studies = list_studies(args.data)
    for s in studies:  # read and resample the audio once (kept in memory)
        study_audio(s, sr, data_dir=args.data)
    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate(embed, sr, data_dir=args.data)
    wall = time.perf_counter() - t0 - sum(spent)
    cpu = time.process_time() - c0 - sum(spent)
    med = ev.medians()
    print(f"\n## evaluate(), {len(studies)} studies, 512-d embedding: {wall:.2f} s wall, {cpu:.2f} CPU-s "
          f"without the embedding ({sum(spent):.2f} s embedding; target <= 2 s); "
          f"median P2 in-sample {med['in_sample']:.3f}, "
          f"out-of-sample {med['out_of_sample']:.3f}, Spearman (l2) {med[('l2', 'spearman')]:.3f}")


def order_check(args):
    print("\n## Row-order file against GEAR's STFT matching\n")
    print("| study | sounds | rows placed identically | differing files | min match correlation |")
    print("|---|---|---|---|---|")
    for s in list_studies(args.data):
        a = row_order_agreement(s, data_dir=args.data)
        print(f"| {s} | {a['n_sounds']} | {a['n_agree']} | {' '.join(a['disagree']) or '-'} "
              f"| {a['min_correlation']:.4f} |", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="timbre data folder (default: shared/timbre)")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--check-order", action="store_true", help="also compare the row-order file with STFT matching")
    p.add_argument("--skip-loso", action="store_true")
    args = p.parse_args(argv)
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    if not args.skip_loso:
        loso_time(args)
    rank_time(args)
    evaluate_time(args)
    if args.check_order:
        order_check(args)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores shared)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory (this process): {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
