"""Time the metric table of gear.metrics and the model similarity; print tables with peak memory.

1. Every family of :data:`gear.metrics.METRICS` on one 2 500 x 4 096 embedding (a smooth
   random-feature map of the paper-like design, as in bench_disentangle.py). Target: <= 30 s.
2. Linear CKA, debiased CKA and RSA (with permutation p-values) for 10 models of 2 500 sounds
   and dimensions 22 ... 4 096. Target: <= 20 s.

``peak_MiB`` is the peak traced by tracemalloc (numpy allocations included) during that step.
On a shared machine wall_s is inflated by other processes; ``--blas-threads 1`` gives the
single-core figure.

Usage::

    python benchmarks/bench_metrics.py [--blas-threads N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_ONE_MODEL_S = 30.0
TARGET_SIMILARITY_S = 20.0
DIMS = (4096, 2048, 1024, 512, 128, 40, 22, 1024, 256, 64)


def _theta():
    from gear.disentangle import control_theta

    theta, grid = control_theta("paper", n_alpha=50, n_r=50, random_state=0)
    # f1 on 13 semitone-spaced values, as the paper grid's integer f1 bins: a discrete factor
    octaves = np.log2(theta[:, 0] / theta[:, 0].min())
    theta[:, 0] = theta[:, 0].min() * 2.0 ** (np.round(octaves * 6) / 6)
    return theta, grid


def _embedding(theta, dim, seed):
    rng = np.random.default_rng(seed)
    u = theta.copy()
    u[:, 0] = np.log(u[:, 0])
    z = (u - u.mean(0)) / u.std(0)
    W = rng.standard_normal((3, dim)) * 0.7
    return (np.tanh(z @ W + rng.standard_normal(dim)) + 0.05 * rng.standard_normal((len(z), dim))).astype(np.float32)


def _measure(function):
    tracemalloc.start()
    t, c = time.perf_counter(), time.process_time()
    out = function()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, wall, cpu, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blas-threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads)
    from gear.metrics import METRICS, evaluate
    from gear.metrics.similarity import similarity_rows

    theta, grid = _theta()
    X = _embedding(theta, 4096, 0)
    print(f"one model: {X.shape[0]} sounds x {X.shape[1]} dims, {os.cpu_count()} CPUs visible")
    print(f"{'family':<12}{'wall_s':>9}{'cpu_s':>9}{'peak_MiB':>10}")
    total = 0.0
    for family in METRICS:
        _, wall, cpu, peak = _measure(lambda: evaluate(X, theta, grid_index=grid, families=[family.name]))
        total += wall
        print(f"{family.name:<12}{wall:>9.1f}{cpu:>9.1f}{peak:>10.0f}")
    print(f"{'total':<12}{total:>9.1f}   target <= {TARGET_ONE_MODEL_S:.0f} s: {'ok' if total <= TARGET_ONE_MODEL_S else 'MISSED'}")
    models = {f"m{i}_{d}": _embedding(theta, d, i + 1) for i, d in enumerate(DIMS)}
    rows, wall, cpu, peak = _measure(lambda: similarity_rows(models))
    print(f"\nsimilarity: {len(models)} models ({len(rows) // 3} pairs), dims {DIMS}")
    print(f"{'step':<12}{'wall_s':>9}{'cpu_s':>9}{'peak_MiB':>10}")
    print(f"{'CKA+RSA':<12}{wall:>9.1f}{cpu:>9.1f}{peak:>10.0f}   target <= {TARGET_SIMILARITY_S:.0f} s: "
          f"{'ok' if wall <= TARGET_SIMILARITY_S else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
