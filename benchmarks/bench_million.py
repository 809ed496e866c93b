"""10^6 tones: measured per-shard and analysis costs, and the projected wall time against workers.

A real 10^6-tone run of naive and mfcc does not fit a 2-core, 23 GB machine in 30 min (see the
projection this prints), so this measures its parts and projects:

1. **One embedding shard** (``--shard`` tones, default 10 000, of the 1 000 x 1 000 paper grid,
   its last rows): synthesis at the model's rate, then the model's embedding, in a child process
   with one thread (as a Dask worker of ``local:N`` runs: ``threads_per_worker=1``). CPU seconds
   per tone x 10^6 = the embedding work of the run.
2. **The analysis at ``--analysis-n``** (default 99 856 = 316 x 316) of each model, on its real
   embedding (computed here, or read from ``--cache-dir``), in a child process: CPU seconds of
   the neighbour search (PCA + HNSW build and search), landmark Isomap, the log-ratio scores
   with their bootstrap, the normalised scores, and the child's peak RSS. Each part is scaled to
   10^6 by its complexity (HNSW and landmark geodesics n log n, the PCA (fitted on a fixed sample,
   applied to every tone) and the scores n, normalised scores: a fixed subsample), the memory
   linearly in n from the child's peak RSS (less the imports).
3. **Projection**: with W workers the shards spread over W workers and each model's analysis is
   one task (both models' analyses run at once when W >= 2), so
   ``wall(W) = embedding CPU / W + longest analysis`` (+ one model load per worker), and the
   client holds every model's embedding while the analyses run.

Usage::

    python benchmarks/bench_million.py                          # naive + mfcc, shard 10 000, analysis at 99 856
    python benchmarks/bench_million.py --shard 2000 --analysis-n 10000   # quick
"""
from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_TARGET = 10**6
WORKERS = (1, 2, 4, 8, 16)
#: Analysis parts: (label, profiled function, how its cost grows with n).
PARTS = (
    ("PCA of wide embeddings", "neighbours.py:_pca_project", "n"),
    ("HNSW build + search", "neighbours.py:_hnsw_search", "nlogn"),
    ("landmark Isomap", "landmark.py:_maxmin_landmarks", "nlogn"),
    ("log-ratio scores + bootstrap", "statistics.py:score_factors", "n"),
    ("normalised scores", "pipeline.py:normalised_scores", "const"),
)
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_shard(args) -> dict:
    import numpy as np
    import torch

    import synth
    from embeddings import registry
    from gear.embedder import _native
    from gear.validate import call_scene_embeddings, render_tones

    torch.set_num_threads(1)
    grid = synth.make_grid("paper", n_alpha=1000, n_r=1000)
    module, model = registry.get_spec(args.model).load()
    padding = _native(grid, model)
    indices = np.arange(grid.n_sounds - args.shard, grid.n_sounds)
    out = dict(model=args.model, dim=int(model.scene_embedding_size), synth_cpu_s=0.0, embed_cpu_s=0.0)
    for start in range(0, args.shard, 250):  # gear run's shards of 250 tones
        cpu = _cpu_s()
        audio = render_tones(grid, padding, indices=indices[start:start + 250])
        middle = _cpu_s()
        call_scene_embeddings(module, model, audio, module_name=args.model)
        out["synth_cpu_s"] += middle - cpu
        out["embed_cpu_s"] += _cpu_s() - middle
    return out


def _child_analysis(args) -> dict:
    import numpy as np

    from embeddings import registry
    from gear.embedder import embed_model
    from gear.pipeline import GearConfig, analyse_embedding

    side = int(round(math.sqrt(args.analysis_n)))
    config = GearConfig(grid_kwargs=dict(n_alpha=side, n_r=side))
    tone_set = config.tone_set()
    embedding = embed_model(registry.get_spec(args.model), tone_set, cache_dir=args.cache_dir).embedding
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    profile = cProfile.Profile(timer=time.process_time)
    cpu = _cpu_s()
    profile.enable()
    analyse_embedding(args.model, embedding, tone_set, config=config)
    profile.disable()
    total = _cpu_s() - cpu
    stats = pstats.Stats(profile).stats
    parts = {}
    for label, where, _ in PARTS:
        file, function = where.split(":")
        parts[label] = sum(v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] == function)
    parts["HNSW build + search"] -= parts["PCA of wide embeddings"]  # cumulative times: the PCA is inside
    return dict(model=args.model, n=int(tone_set.n_sounds), dim=int(embedding.shape[1]), analysis_cpu_s=total,
                parts=parts, peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                embedding_gb=embedding.nbytes / 1e9, rss_before_gb=rss_before)


def _run_child(kind: str, model: str, args, *, one_thread: bool) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--models", model, "--shard", str(args.shard),
               "--analysis-n", str(args.analysis_n), "--cache-dir", args.cache_dir]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(ONE_THREAD if one_thread else {})
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} child ({model}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _scale(cost: float, n: int, growth: str) -> float:
    if growth == "const":
        return cost
    ratio = N_TARGET / n
    return cost * ratio * (math.log(N_TARGET) / math.log(n) if growth == "nlogn" else 1.0)


def _client_memory_gb(analysis: dict) -> float:
    """The analysis child's memory beyond the embedding, scaled linearly to 10^6, plus the
    10^6-tone embedding itself."""
    other = max(analysis["peak_rss_gb"] - analysis["embedding_gb"] - 0.6, 0.0)  # 0.6 GB: the imports
    return 0.6 + analysis["embedding_gb"] * N_TARGET / analysis["n"] + other * N_TARGET / analysis["n"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["naive", "mfcc"])
    parser.add_argument("--shard", type=int, default=10000, help="tones of the measured embedding shard")
    parser.add_argument("--analysis-n", type=int, default=99856, help="tones of the measured analysis (a square grid)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: a temporary folder)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.model = args.models[0]
        print(json.dumps(_child_shard(args) if args.child == "shard" else _child_analysis(args)))
        return
    with tempfile.TemporaryDirectory(prefix="gear-bench-million-") as scratch:
        args.cache_dir = args.cache_dir or scratch
        _report(args)


def _report(args) -> None:
    embed_cpu, analyses, memory = {}, {}, 0.0
    print(f"load at start {os.getloadavg()[0]:.1f}; CPU seconds (compare these on a shared machine)\n")
    print(f"{'model':<7} | {'dim':>5} | {'shard':>6} | {'synth cpu_s':>11} | {'embed cpu_s':>11} | "
          f"{'10^6 tones: cpu_s':>17}", flush=True)
    for model in args.models:
        shard = _run_child("shard", model, args, one_thread=True)
        per_tone = (shard["synth_cpu_s"] + shard["embed_cpu_s"]) / args.shard
        embed_cpu[model] = per_tone * N_TARGET
        print(f"{model:<7} | {shard['dim']:>5} | {args.shard:>6} | {shard['synth_cpu_s']:11.1f} | "
              f"{shard['embed_cpu_s']:11.1f} | {embed_cpu[model]:17.0f}", flush=True)
    print(f"\n{'model':<7} | {'part of the analysis':<28} | {'cpu_s at n':>10} | {'growth':>6} | {'at 10^6':>8}")
    for model in args.models:
        analysis = _run_child("analysis", model, args, one_thread=False)
        total = 0.0
        for label, _, growth in PARTS:
            scaled = _scale(analysis["parts"][label], analysis["n"], growth)
            total += scaled
            print(f"{model:<7} | {label:<28} | {analysis['parts'][label]:10.1f} | {growth:>6} | {scaled:8.0f}")
        rest = analysis["analysis_cpu_s"] - sum(analysis["parts"].values())
        total += _scale(rest, analysis["n"], "n")
        print(f"{model:<7} | {'rest (linear)':<28} | {rest:10.1f} | {'n':>6} | {_scale(rest, analysis['n'], 'n'):8.0f}")
        print(f"{model:<7} | {'analysis, n = ' + str(analysis['n']):<28} | {analysis['analysis_cpu_s']:10.1f} | "
              f"{'':>6} | {total:8.0f}   peak RSS {analysis['peak_rss_gb']:.2f} GB at n "
              f"(embedding {analysis['embedding_gb']:.2f} GB)", flush=True)
        analyses[model] = total
        memory += _client_memory_gb(analysis)
    embedding = sum(embed_cpu.values())
    print(f"\nprojected wall time of a 10^6-tone run of {' + '.join(args.models)} "
          f"(embedding {embedding:.0f} CPU-s over W workers, one thread each; analyses one task per model)")
    print(f"{'workers':>7} | {'embedding_s':>11} | {'analysis_s':>10} | {'wall_min':>8} | limited by")
    for workers in WORKERS:
        embed_wall = embedding / workers
        analysis_wall = max(analyses.values()) if workers >= len(analyses) else sum(analyses.values())
        wall = embed_wall + analysis_wall
        limit = "embedding (synthesis + models)" if embed_wall > analysis_wall else "the analysis (one task per model)"
        print(f"{workers:>7} | {embed_wall:11.0f} | {analysis_wall:10.0f} | {wall / 60:8.1f} | {limit}")
    print(f"\nclient memory: every model's 10^6-tone embedding and its analysis arrays, about {memory:.1f} GB "
          f"(this machine: {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9:.0f} GB)")


if __name__ == "__main__":
    main()
