"""Benchmark of the stimulus families: rendering N tones (default 10 000) of each family.

Prints one Markdown table row per (family, sample rate): seconds to render (wall, and the
process's CPU time summed over its threads: on a loaded machine the CPU time is the better
estimate of the wall time on two idle cores), the audio
array's size, and the peak memory of the rendering, measured two ways in a fresh process per
case: ``tracemalloc`` (every NumPy/Python allocation, so the float32 output included) and the
growth of the process's maximum resident set size (also counts FFT/BLAS buffers).

Targets (issue 9): <= 2 s at 16 kHz, <= 5 s at 48 kHz on 2 cores; peak memory <= the audio
array + 20 % (ratio <= 1.2).

Usage::

    python benchmarks/bench_families.py                       # every family, 16 and 48 kHz
    python benchmarks/bench_families.py --families chirplet --n 2000 --rates 16000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_S = {16000: 2.0, 48000: 5.0}


def _child(name: str, rate: int, n: int, design: str) -> dict:
    """Render in this (fresh) process; time first, then memory on a second rendering."""
    import resource
    import time
    import tracemalloc

    import synth

    tones = synth.family(name).design(design, n=n, seed=0)
    tones.subset([0]).render(rate)  # warm-up (imports, FFT plans)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu_start = time.perf_counter(), time.process_time()
    audio = tones.render(rate)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nbytes = audio.nbytes
    del audio
    tracemalloc.start()
    audio = tones.render(rate)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"family": name, "rate": rate, "n_samples": audio.shape[1], "seconds": seconds, "cpu_seconds": cpu, "audio_mb": nbytes / 2**20,
            "traced_ratio": traced / nbytes, "rss_ratio": (rss_peak - rss_before) * 1024 / nbytes}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", default=None, help="default: every registered family")
    parser.add_argument("--rates", nargs="*", type=int, default=[16000, 48000])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--design", default="random")
    parser.add_argument("--child", nargs=2, metavar=("FAMILY", "RATE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], int(args.child[1]), args.n, args.design)))
        return 0
    import synth

    names = args.families or list(synth.family_names())
    print(f"\n## Rendering {args.n} tones ({args.design} design), {os.cpu_count()} CPUs visible\n")
    header = ("family", "rate (Hz)", "samples/tone", "audio (MiB)", "wall s", "CPU s (all threads)", "target (s)", "peak/audio (tracemalloc)",
              "peak/audio (RSS growth)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    for name in names:
        for rate in args.rates:
            out = subprocess.run([sys.executable, __file__, "--child", name, str(rate), "--n", str(args.n),
                                  "--design", args.design], capture_output=True, text=True, env=env, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            target = TARGET_S.get(rate)
            print(f"| {name} | {rate} | {row['n_samples']} | {row['audio_mb']:.0f} | {row['seconds']:.2f} | {row['cpu_seconds']:.2f} | "
                  f"{target if target else ''} | {row['traced_ratio']:.3f} | {row['rss_ratio']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
