"""Time the default models of ``gear run`` on GEAR-sized batches and print a table.

For each model: load time, then the time of one ``get_scene_embeddings`` call on N 64 ms
harmonic tones (default N = 2 500, f1 uniform in 187.5-375 Hz, alpha in [0, 2], r in [0, 1])
synthesised at the model's own sample rate (1 024 samples at 16 kHz, 2 822 at 44.1 kHz).
``wall_s`` is elapsed time, ``cpu_s`` the process CPU time over all threads (on a shared
machine wall_s is inflated by other processes; cpu_s / n_threads is the wall time the same
work would take on idle cores, if it scaled perfectly).

For CREPE it also times the HEAR 2021 wrapper ``hearbaseline.torchcrepe`` (one
``torchcrepe.embed`` call per tone) on a few tones and extrapolates to N.

Usage::

    python benchmarks/bench_models.py                      # all default models, 2 500 tones
    python benchmarks/bench_models.py --models crepe-full --threads 2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from embeddings.registry import get_spec  # noqa: E402
from synth import harmonic_tones  # noqa: E402

DEFAULT_MODELS = ("naive", "logmel", "mfcc", "timbre-descriptors", "crepe-full", "crepe-tiny")
DURATION_S = 0.064


def make_tones(n_tones: int, sample_rate: int, *, seed: int = 0) -> torch.Tensor:
    """(n_tones, round(0.064 sample_rate)) float32 harmonic tones, same parameters at every rate."""
    rng = np.random.default_rng(seed)
    f1_hz = rng.uniform(187.5, 375.0, n_tones)
    alpha = rng.uniform(0.0, 2.0, n_tones)
    r = rng.uniform(0.0, 1.0, n_tones)
    tones = harmonic_tones(f1_hz, alpha, r, sample_rate=sample_rate, n_samples=round(DURATION_S * sample_rate))
    return torch.from_numpy(tones)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_model(name: str, n_tones: int) -> dict:
    spec = get_spec(name)
    (module, model), load_s, _ = timed(lambda: spec.load())
    audio = make_tones(n_tones, model.sample_rate)
    embeddings, wall_s, cpu_s = timed(lambda: module.get_scene_embeddings(audio, model))
    assert embeddings.shape == (n_tones, model.scene_embedding_size)
    return dict(model=name, dim=model.scene_embedding_size, sample_rate=model.sample_rate,
                n_tones=n_tones, load_s=load_s, wall_s=wall_s, cpu_s=cpu_s)


def bench_hearbaseline_crepe(n_tones: int, n_measured: int) -> list:
    """hearbaseline.torchcrepe on ``n_measured`` tones, times extrapolated to ``n_tones``."""
    from embeddings.crepe import import_torchcrepe

    import_torchcrepe()  # torchcrepe needs the torchaudio stand-in; hearbaseline then finds it imported
    import hearbaseline.torchcrepe as hb_crepe

    model = hb_crepe.load_model()
    audio = make_tones(n_measured, hb_crepe.SAMPLE_RATE)
    rows = []
    for label, fn in [
        ("hearbaseline.torchcrepe scene (per tone)", hb_crepe.get_scene_embeddings),
        ("hearbaseline.torchcrepe timestamps (per tone)", lambda a, m: hb_crepe.get_timestamp_embeddings(a, m)[0]),
    ]:
        out, wall_s, cpu_s = timed(lambda: fn(audio, model))
        scale = n_tones / n_measured
        rows.append(dict(model=label, dim=out.shape[-1], sample_rate=hb_crepe.SAMPLE_RATE,
                         n_tones=f"{n_tones} (from {n_measured})", load_s=float("nan"),
                         wall_s=wall_s * scale, cpu_s=cpu_s * scale))
    return rows


def print_table(rows) -> None:
    columns = ("model", "dim", "sample_rate", "n_tones", "load_s", "wall_s", "cpu_s")
    cells = [[str(c) for c in columns]]
    for row in rows:
        cells.append([f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for k, r in enumerate(cells):
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="registry names")
    parser.add_argument("--n-tones", type=int, default=2500)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--hearbaseline-tones", type=int, default=50,
                        help="tones timed through hearbaseline.torchcrepe (0 to skip)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for name in args.models:
        rows.append(bench_model(name, args.n_tones))
        print(f"  done {name}: {rows[-1]['wall_s']:.1f} s", flush=True)
    if args.hearbaseline_tones and any(name.startswith("crepe") for name in args.models):
        rows.extend(bench_hearbaseline_crepe(args.n_tones, args.hearbaseline_tones))
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
