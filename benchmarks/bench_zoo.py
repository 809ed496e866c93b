"""Time the real-model adapters on GEAR's 2 500 short tones, batched and one tone at a time.

Usage::

    python benchmarks/bench_zoo.py [--models yamnet-tflite aisfx ...] [--n-tones 2500]
                                   [--n-single 50] [--batch-size 250] [--models-dir DIR]

Tones: harmonic tones of 64 ms at each model's own sample rate (``synth.harmonic_tones``), f1
log-spaced over 187-375 Hz, spectral decay alpha and odd/even balance r drawn uniformly. The
"one at a time" column calls the model's HEAR ``get_scene_embeddings`` with one tone per call on
``--n-single`` tones and scales the time to ``--n-tones``. CPU seconds (process time, all
threads) are printed beside wall-clock seconds, since on a shared machine the wall clock
depends on the load: with 2 idle cores, wall ~ CPU / (threads used).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings.registry import get_spec  # noqa: E402
from synth import harmonic_tones  # noqa: E402

MODELS = ["yamnet-tflite", "yamnet-tflite-mobile", "aisfx", "resemblyzer", "basic-pitch", "musicnn-mtt"]
DURATION_S = 0.064


def tones_at(sample_rate: int, n_tones: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    f1_hz = np.geomspace(187.0, 375.0, n_tones)
    alpha = rng.uniform(0.0, 2.0, n_tones)
    r = rng.uniform(-1.0, 1.0, n_tones)
    n_samples = int(round(DURATION_S * sample_rate))
    audio = harmonic_tones(f1_hz, alpha, r, sample_rate=sample_rate, n_samples=n_samples)
    return torch.from_numpy(np.asarray(audio, dtype=np.float32))


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench(name: str, args) -> dict:
    spec = get_spec(name)
    ok, where = spec.can_run(args.models_dir)
    if not ok:
        return {"model": name, "status": f"skipped: {where}"}
    (module, model), load_s, _ = timed(lambda: spec.load(args.models_dir))
    audio = tones_at(model.sample_rate, args.n_tones)
    module.get_scene_embeddings(audio[:2], model)  # warm-up

    def batched():
        out = [module.get_scene_embeddings(audio[i : i + args.batch_size], model)
               for i in range(0, len(audio), args.batch_size)]
        return torch.cat(out)

    embeddings, wall, cpu = timed(batched)
    n_single = min(args.n_single, args.n_tones)

    def single():
        return torch.cat([module.get_scene_embeddings(audio[i : i + 1], model) for i in range(n_single)])

    singles, wall_1, cpu_1 = timed(single)
    scale = args.n_tones / n_single
    agree = float((singles - embeddings[:n_single]).abs().max())
    weights = spec.weights(args.models_dir).where
    return {
        "model": name, "status": "ok", "dim": int(model.scene_embedding_size),
        "sample_rate": int(model.sample_rate), "weights": weights, "load_s": load_s,
        "wall_s": wall, "cpu_s": cpu, "single_wall_s": wall_1 * scale, "single_cpu_s": cpu_1 * scale,
        "max_abs_diff": agree, "finite": bool(torch.isfinite(embeddings).all()),
    }


def shorten(path: str, width: int = 44) -> str:
    marker = "site-packages" + os.sep
    if marker in path:
        path = "wheel: " + path.split(marker, 1)[1]
    return path if len(path) <= width else "..." + path[-(width - 3):]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--n-tones", type=int, default=2500)
    parser.add_argument("--n-single", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    warnings.simplefilter("ignore")
    rows = []
    for name in args.models:
        try:
            rows.append(bench(name, args))
        except Exception as error:  # a benchmark reports every model, failing or not
            rows.append({"model": name, "status": f"error: {type(error).__name__}: {error}"[:200]})
        row = rows[-1]
        print(f"# {name}: {row['status']}" + (f" ({row['wall_s']:.1f} s)" if "wall_s" in row else ""),
              file=sys.stderr, flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.n_tones} tones of {DURATION_S * 1000:.0f} ms, batches of {args.batch_size}; "
          f"one-at-a-time timed on {args.n_single} tones and scaled; {os.cpu_count()} cores, load {load:.1f}\n")
    header = ("model", "dim", "sr_Hz", "weights", "batched_wall_s", "batched_cpu_s",
              "single_wall_s", "single_cpu_s", "max|batch-single|")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['model']} | | | {row['status']} | | | | |")
            continue
        print(" | ".join([
            row["model"], str(row["dim"]), str(row["sample_rate"]), shorten(row["weights"]),
            f"{row['wall_s']:.1f}", f"{row['cpu_s']:.1f}", f"{row['single_wall_s']:.1f}",
            f"{row['single_cpu_s']:.1f}", f"{row['max_abs_diff']:.1e}" + ("" if row["finite"] else " NON-FINITE"),
        ]))


if __name__ == "__main__":
    main()
