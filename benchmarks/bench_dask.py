"""Dask overhead on a gear run: serial vs ``--scheduler local:1`` vs ``local:2``.

Each mode runs in its own child process, from an empty embedding cache and results directory:
``gear.pipeline.run(models, scheduler=...)`` (synthesis, embedding, analysis, stores, report).
Measured per mode:

- ``wall_s``: the run's wall time (for Dask modes: cluster start and shutdown included);
- ``cpu_s``: CPU time of the child and of every process it started (the LocalCluster's nanny
  and worker processes, counted when they end);
- ``peak_rss_gb``: the largest *sum* of resident memory over the child and its descendants,
  sampled every 0.1 s (psutil), i.e. what the run holds on the machine at once;
- ``overhead``: wall and CPU relative to the serial run (wall: negative = faster).

The outputs of every mode are compared with the serial run's: ``scores.csv`` byte for byte and the
stored embeddings (largest difference relative to the largest value). On a shared machine compare ``cpu_s`` and the load column; the
issue's target is wall(local:2) <= 1.2 x wall(serial) on the default run, on an idle machine::

    python benchmarks/bench_dask.py                                   # 7 default models, 2 500 tones
    python benchmarks/bench_dask.py --models naive mfcc --n-alpha 15 --n-r 15   # a quick check
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("serial", "local:1", "local:2")


def _tree_rss_bytes(process) -> int:
    import psutil

    total = 0
    for p in [process] + process.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:  # ended between the listing and the read
            pass
    return total


class _PeakSampler(threading.Thread):
    """Largest summed RSS of this process and its descendants, sampled every ``interval_s``."""

    def __init__(self, interval_s: float = 0.1):
        import psutil

        super().__init__(daemon=True)
        self.process, self.interval_s, self.peak, self.done = psutil.Process(), interval_s, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, _tree_rss_bytes(self.process))
            self.done.wait(self.interval_s)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, _tree_rss_bytes(self.process))


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _child(args) -> dict:
    from gear.pipeline import GearConfig, run

    config = GearConfig(grid_kwargs=dict(n_alpha=args.n_alpha, n_r=args.n_r))
    scheduler = None if args.child == "serial" else args.child
    sampler = _PeakSampler()
    sampler.start()
    start, cpu = time.perf_counter(), _cpu_s()
    run(args.models, out_dir=Path(args.out) / "results", config=config, cache_dir=Path(args.out) / "cache",
        scheduler=scheduler, models_dir=args.models_dir)
    wall = time.perf_counter() - start
    time.sleep(0.5)  # let the cluster's processes be reaped, so that their CPU time is counted
    return dict(wall_s=wall, cpu_s=_cpu_s() - cpu, peak_rss_gb=sampler.stop() / 1e9, load=os.getloadavg()[0])


def _run_child(mode: str, out: str, args) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--out", out, "--n-alpha", str(args.n_alpha),
               "--n-r", str(args.n_r)]
    command += ["--models", *args.models] if args.models else []
    command += ["--models-dir", args.models_dir] if args.models_dir else []
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _same_outputs(out: str, reference: str) -> str:
    """Whether scores.csv is byte-identical, and the largest difference of a stored embedding
    from the serial one relative to its largest value (torch's thread count changes float32
    round-off: Dask workers run one thread each)."""
    import numpy as np

    a, b = Path(out) / "results", Path(reference) / "results"
    same = "scores.csv identical" if (a / "scores.csv").read_bytes() == (b / "scores.csv").read_bytes() else \
        "scores.csv DIFFERS"
    worst = 0.0
    for path in sorted(b.glob("models/*/embedding.npy")):
        mine, theirs = np.load(a / path.relative_to(b)).astype(np.float64), np.load(path).astype(np.float64)
        worst = max(worst, float(np.abs(mine - theirs).max() / max(np.abs(theirs).max(), 1e-300)))
    return f"{same}; embeddings within {worst:.1e} (relative)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="registry names (default: the default models)")
    parser.add_argument("--models-dir", default=os.environ.get("GEAR_MODELS_DIR"), help="model files")
    parser.add_argument("--n-alpha", type=int, default=50)
    parser.add_argument("--n-r", type=int, default=50)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return
    print(f"{'mode':<8} | {'tones':>6} | {'wall_s':>7} | {'cpu_s':>7} | {'peak_rss_gb':>11} | {'load':>5} | "
          f"{'wall vs serial':>14} | {'cpu vs serial':>13} | same outputs", flush=True)
    with tempfile.TemporaryDirectory(prefix="gear-bench-dask-") as root:
        results, reference = {}, None
        for mode in args.modes:
            out = os.path.join(root, mode.replace(":", "-"))
            results[mode] = measured = _run_child(mode, out, args)
            reference = reference or (out if mode == "serial" else None)
            base = results.get("serial")
            wall = f"{100 * (measured['wall_s'] / base['wall_s'] - 1):+13.0f}%" if base else f"{'-':>14}"
            cpu = f"{100 * (measured['cpu_s'] / base['cpu_s'] - 1):+12.0f}%" if base else f"{'-':>13}"
            same = _same_outputs(out, reference) if reference and out != reference else "-"
            print(f"{mode:<8} | {args.n_alpha * args.n_r:>6} | {measured['wall_s']:7.1f} | {measured['cpu_s']:7.1f} | "
                  f"{measured['peak_rss_gb']:11.2f} | {measured['load']:5.1f} | {wall} | {cpu} | {same}", flush=True)


if __name__ == "__main__":
    main()
