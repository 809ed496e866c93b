"""Core GEAR timings (issue: synthesis <= 1 s, Isomap + scores <= 15 s per model,
default `gear run` <= 5 min cold and <= 30 s cached, on 2 cores).

    python benchmarks/run_benchmarks.py            # everything (a cold run takes minutes)
    python benchmarks/run_benchmarks.py --quick    # synthesis and analysis only

Prints a table. Times are wall-clock seconds on this machine; compare ratios within a run.
"""
import argparse
import os
import tempfile
import time
import warnings

import numpy as np


def timed(function, repeat=1):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the end-to-end runs")
    parser.add_argument("--models-dir", default=os.environ.get("GEAR_MODELS_DIR"))
    args = parser.parse_args(argv)

    import synth
    from gear import analysis
    from gear.pipeline import GearConfig, analyse_embedding, run

    rows = []
    grid = synth.paper_grid()
    for rate in (16000, 44100):
        seconds, audio = timed(lambda: grid.render(rate), repeat=3)
        rows.append((f"synthesis, 2 500 tones at {rate} Hz", seconds, "<= 1 s"))

    rng = np.random.default_rng(0)
    theta = grid.theta()
    # a smooth nonlinear function of theta plus noise, 4 096-d like the naive baseline
    embedding = np.tanh(((theta - theta.mean(0)) / theta.std(0)) @ rng.normal(size=(3, 4096))) + 0.1 * rng.normal(size=(2500, 4096))
    seconds, _ = timed(lambda: analysis.isomap_embedding(embedding))
    rows.append(("Isomap (K=100, 3-D), 2 500 x 4 096", seconds, ""))
    seconds, _ = timed(lambda: analysis.score_embedding(embedding, dict(zip(("f1_hz", "alpha", "r"), theta.T))))
    rows.append(("K-NN log-ratio scores + bootstrap CIs", seconds, ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, _ = timed(lambda: analyse_embedding("bench", embedding, grid))
    rows.append(("Isomap + scores, one model", seconds, "<= 15 s"))

    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, results = timed(lambda: run(out_dir=os.path.join(tmp, "out"), cache_dir=os.path.join(tmp, "cache"), models_dir=args.models_dir))
            names = ", ".join(r.name for r in results)
            rows.append((f"gear run, cold ({names})", seconds, "<= 300 s"))
            seconds, _ = timed(lambda: run(out_dir=os.path.join(tmp, "out"), cache_dir=os.path.join(tmp, "cache"), models_dir=args.models_dir))
            rows.append(("gear run, everything cached", seconds, "<= 30 s"))

    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'seconds':>8}  target")
    for name, seconds, target in rows:
        print(f"{name:<{width}}  {seconds:>8.2f}  {target}")


if __name__ == "__main__":
    main()
