"""Benchmark: time-averaged DSP features of the 17 timbre studies (257 sounds).

Computes each representation for every study with :func:`embeddings.timefeatures.study_features`
and prints one table row per representation: sounds, seconds in total, seconds per sound.
The target (issue 4) is auditory spectrum + STMF for all 17 studies in <= 5 min on 2 cores.

With ``--compare`` it also prints, per study, the minimum over sounds of the Pearson
correlation between our features and the reference features in
``<data>/features/<representation>/<Study>.npz``. The reference ``stft``/``scattering`` rows
are not in sorted order; their rows are first matched with
:func:`embeddings.timefeatures.reference_row_order` (the correlation is then that of the
matched rows). Representations whose size differs from the reference are reported as such.

Usage::

    python benchmarks/bench_timbre_features.py [--data DIR] [--reps auditory_spectrum stmf]
        [--filterbank gear|nsl-table] [--studies Grey1977 ...] [--n-jobs 1] [--compare]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embeddings import auditory, timefeatures  # noqa: E402


def default_data() -> Path:
    env = os.environ.get("GEAR_SHARED_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return root / "timbre"


def rowcorr(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def filterbank_closeness(table_path):
    """dB difference between the gear design and the NSL table, -3..+1 octave around each CF
    (both responses on one dense grid, then read off at each filter's own octave grid)."""
    grid = np.linspace(0, 8000, 16385)
    resp = [20 * np.log10(np.abs(auditory.filterbank_response(fb, grid, table_path=table_path)) + 1e-12)
            for fb in ("gear", "nsl-table")]
    octaves = np.linspace(-3, 1, 401)
    d = np.array([np.interp(np.clip(f0 * 2.0 ** octaves, 0, 8000), grid, resp[0][k] - resp[1][k])
                  for k, f0 in enumerate(auditory.center_frequencies())])
    low = d[:80]
    return (float(np.sqrt(np.mean(low ** 2))), float(np.abs(low).max()),
            float(np.sqrt(np.mean(d ** 2))), float(np.abs(d).max()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--reps", nargs="+", default=["auditory_spectrum", "stmf"],
                    choices=list(timefeatures.REPRESENTATIONS))
    ap.add_argument("--filterbank", default="gear", choices=["gear", "nsl-table"])
    ap.add_argument("--studies", nargs="*", default=None)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args(argv)

    table = args.data / auditory.NSL_TABLE_FILE
    studies = args.studies or sorted(p.name for p in (args.data / "sounds").iterdir() if p.is_dir())
    files = {s: sorted(str(p) for p in (args.data / "sounds" / s).iterdir()
                       if p.suffix.lower() in (".aiff", ".aif", ".wav", ".flac")) for s in studies}
    n_sounds = sum(len(v) for v in files.values())
    print(f"{len(studies)} studies, {n_sounds} sounds, filterbank={args.filterbank}, n_jobs={args.n_jobs}, "
          f"cpus={os.cpu_count()} (affinity {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})")
    t0 = time.perf_counter()
    auditory.cochlear_filterbank(args.filterbank, table_path=table)
    print(f"filterbank design/load: {time.perf_counter() - t0:.2f} s")
    if table.is_file():
        rms_lo, max_lo, rms_all, max_all = filterbank_closeness(table)
        print(f"gear vs NSL table magnitude, -3..+1 oct around CF: channels 0-79 rms {rms_lo:.2f} dB "
              f"max {max_lo:.2f} dB; all 129 rms {rms_all:.2f} dB max {max_all:.2f} dB")

    timings, cpu, corr = {}, {}, {}
    for rep in args.reps:
        total = total_cpu = 0.0
        for study in studies:
            t, c = time.perf_counter(), time.process_time()
            feats = timefeatures.study_features(files[study], rep, filterbank=args.filterbank,
                                                table_path=table, n_jobs=args.n_jobs)
            total += time.perf_counter() - t
            total_cpu += time.process_time() - c
            ref_path = args.data / "features" / rep / f"{study}.npz"
            if args.compare and ref_path.is_file():
                ref = np.load(ref_path)["features"]
                if ref.shape != feats.shape:
                    corr[(rep, study)] = f"n/a: ours {feats.shape[1]}, reference {ref.shape[1]}"
                elif rep in ("stft", "scattering"):
                    _, c = timefeatures.reference_row_order(feats, ref)
                    corr[(rep, study)] = float(c.min())
                else:
                    corr[(rep, study)] = float(rowcorr(feats, ref).min())
        timings[rep] = total
        cpu[rep] = total_cpu
        print(f"  done {rep}: {total:.1f} s wall, {total_cpu:.1f} s cpu", flush=True)

    print()
    print("seconds = wall clock; cpu s = CPU time of this process (excludes joblib workers)")
    print(f"{'representation':<20}{'sounds':>8}{'seconds':>10}{'s/sound':>10}{'cpu s':>10}")
    for rep, total in timings.items():
        print(f"{rep:<20}{n_sounds:>8}{total:>10.1f}{total / n_sounds:>10.3f}{cpu[rep]:>10.1f}")
    both = sum(timings.get(r, 0.0) for r in ("auditory_spectrum", "stmf"))
    both_cpu = sum(cpu.get(r, 0.0) for r in ("auditory_spectrum", "stmf"))
    print(f"{'aud.spectrum + STMF':<20}{n_sounds:>8}{both:>10.1f}{both / n_sounds:>10.3f}{both_cpu:>10.1f}"
          "   (target <= 300 s on 2 cores)")
    if corr:
        print()
        print("minimum per-sound Pearson correlation with the reference features")
        print(f"{'study':<24}" + "".join(f"{r:>20}" for r in args.reps))
        for study in studies:
            cells = []
            for rep in args.reps:
                v = corr.get((rep, study), "-")
                cells.append(f"{v:>20.5f}" if isinstance(v, float) else f"{str(v)[:19]:>20}")
            print(f"{study:<24}" + "".join(cells))
        mins = {r: [v for (rr, _), v in corr.items() if rr == r and isinstance(v, float)] for r in args.reps}
        print(f"{'min over studies':<24}" + "".join(
            f"{min(m):>20.5f}" if m else f"{'-':>20}" for m in mins.values()))


if __name__ == "__main__":
    main()
