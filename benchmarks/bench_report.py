"""The report at large n (issue 11, item 2): page size, write time and peak memory.

Writes the report of 7 models (random 3-D Isomap coordinates and log-ratios: no model run)
on n synthetic eq. 1 tones (13 pitches, alpha and r uniform), the audio given as a callable
that renders only the rows asked for (``lambda rows: harmonic_tones(...)``, as the pipeline
can pass ``tone_set.render``). Each configuration runs in its own process so that its peak
RSS is its own. Targets: <= 20 000 points per plot, page <= 50 MB.

    python benchmarks/bench_report.py                       # n = 2 500, 30 000, 100 000, 1 000 000
    python benchmarks/bench_report.py --n 30000 --models 2

``audio_mode`` auto: PCM when every plotted tone fits in 30 MB, else the browser synthesises
the clicked tone (eq. 1); pcm: the PCM of as many plotted tones as fit in 30 MB.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SAMPLE_RATE = 16000
N_SAMPLES = 1024


def _one(n: int, n_models: int, mode: str) -> dict:
    """Write one report in this process; returns its measurements."""
    from gear.report import write_report
    from gear.results import ModelResult
    from synth import harmonic_tones

    rng = np.random.default_rng(0)
    f1_bins = rng.integers(12, 25, n).astype(float)
    f1_hz, alpha, r = f1_bins * SAMPLE_RATE / N_SAMPLES, rng.uniform(0, 2, n), rng.uniform(0, 1, n)
    parameters = {"index": np.arange(n), "f1_hz": f1_hz, "alpha": alpha, "r": r, "f1_bins": f1_bins}

    def render(rows):
        return harmonic_tones(f1_hz[rows], alpha[rows], r[rows], sample_rate=SAMPLE_RATE, n_samples=N_SAMPLES)

    results = []
    for k in range(n_models):
        log_ratios = {key: rng.normal(size=n) for key in ("f1_hz", "alpha", "r")}
        scores = [dict(parameter=key, median_abs_log_ratio=0.1, iqr=0.1, ci_low=0.1, ci_high=0.1, n=n, chance=0.5)
                  for key in log_ratios]
        results.append(ModelResult(name=f"model-{k}", description="", isomap=rng.normal(size=(n, 3)),
                                   log_ratios=log_ratios, scores=scores))
    inputs_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = write_report(Path(folder) / "report.html", results, parameters=parameters, audio=render,
                            sample_rate=SAMPLE_RATE, audio_mode=mode)
        seconds = time.perf_counter() - start
        text = path.read_text(encoding="utf-8")
    payload = json.loads(text.split("<script id='gear-data' type='application/json'>")[1].split("</script>")[0])
    traces = [len(model["figure"]["data"][0]["x"]["bdata"]) * 3 // 4 // 4 for model in payload["models"]]
    return {
        "n": n, "models": n_models, "audio_mode": mode, "audio": payload["audio"]["encoding"]
        + (f" ({payload['audio']['n_rows']} rows)" if "n_rows" in payload["audio"] else ""),
        "points_per_plot": max(traces), "write_s": seconds, "size_mb": len(text.encode()) / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, "inputs_mb": inputs_mb,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[2_500, 30_000, 100_000, 1_000_000])
    parser.add_argument("--models", type=int, default=7)
    parser.add_argument("--modes", nargs="+", default=["auto", "pcm"], choices=["auto", "pcm"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.n[0], args.models, args.modes[0])))
        return
    print(f"{'n':>9} {'models':>6} {'audio_mode':>10} {'audio':>22} {'points/plot':>11} {'write s':>8} "
          f"{'size MB':>8} {'peak RSS MB':>11} {'inputs MB':>9}")
    for n in args.n:
        for mode in args.modes:
            out = subprocess.run([sys.executable, __file__, "--one", "--n", str(n), "--models", str(args.models),
                                  "--modes", mode], check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(f"{row['n']:>9} {row['models']:>6} {row['audio_mode']:>10} {row['audio']:>22} "
                  f"{row['points_per_plot']:>11} {row['write_s']:>8.1f} {row['size_mb']:>8.1f} "
                  f"{row['peak_rss_mb']:>11.0f} {row['inputs_mb']:>9.0f}")


if __name__ == "__main__":
    main()
