"""What ``gear run --layers all`` costs next to a plain run, and a table of it.

For each model, four child processes (each alone, so that its peak RSS is its own), with no
embedding cache:

* ``embed``: the embedding stage alone, :func:`gear.embedder.embed_model` (plain) against
  :func:`gear.layers.embed_layers` with every layer hooked (layers);
* ``gear run``: the whole command, ``gear run --models MODEL --no-cache -q [--layers all]``
  (embedding, then the analysis of every stored result: Isomap, bootstrap CIs, normalised scores;
  a layered run analyses 1 + n_layers results).

``forward_calls`` counts the calls of the model's network (a global forward hook on its class) over
the run, ``batches`` the batches of 250 tones; both runs also make the two calls of the
determinism check. ``peak_rss_mb`` is the child's ``ru_maxrss``.

Usage::

    python benchmarks/bench_layers.py                       # naive, paper grid (2 500 tones)
    python benchmarks/bench_layers.py --models crepe-tiny naive --n-alpha 20 --n-r 20
    python benchmarks/bench_layers.py --models byols hybrid-byols openl3 --random-weights

``--random-weights`` writes checkpoints of the published architectures with random values in the
upstream formats (serab-byols ``.pth``, torchopenl3 ``.pth.tar``) to a temporary models folder: the
published weights cannot be obtained here, and the cost of a forward pass does not depend on the
values. Otherwise ``--models-dir`` (or ``$GEAR_MODELS_DIR``) must hold the weights.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The class whose forward calls are counted (the network the layers belong to).
NETWORKS = {"naive": "embeddings.naive:RandomProjectionMelEmbedding", "crepe-full": "embeddings.crepe:CrepeEmbedding",
            "crepe-tiny": "embeddings.crepe:CrepeEmbedding", "aisfx": "aisfx.models.cnn2d:EmbeddingNet",
            "byols": "embeddings.byols:BYOLSEmbedding", "hybrid-byols": "embeddings.byols:BYOLSEmbedding",
            "openl3": "embeddings.openl3:OpenL3Embedding", "openl3-512": "embeddings.openl3:OpenL3Embedding",
            "resemblyzer": "resemblyzer.voice_encoder:VoiceEncoder",
            "wav2vec2": "embeddings.wav2vec2:Wav2Vec2Embedding", "gura-fusion-cat-xwc": "embeddings.gura:GURAFusion"}

_CHILD = r"""
import importlib, json, math, resource, sys, time
import torch
args = json.loads(sys.argv[1])
module, cls = args["network"].split(":")
if module.startswith("embeddings.crepe"):
    importlib.import_module("embeddings.crepe").import_torchcrepe()
kind = getattr(importlib.import_module(module), cls)
calls = []
torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: calls.append(1) if isinstance(m, kind) else None)
start = time.perf_counter()
if args["stage"] == "embed":
    from embeddings import registry
    from gear.pipeline import GearConfig
    spec = registry.get_spec(args["model"])
    tones = GearConfig(grid_kwargs=args["grid"]).tone_set()
    if args["layers"]:
        from gear.layers import embed_layers
        embed_layers(spec, tones, spec.layer_names(args["models_dir"]), models_dir=args["models_dir"], use_cache=False)
    else:
        from gear.embedder import embed_model
        embed_model(spec, tones, models_dir=args["models_dir"], use_cache=False)
    n = tones.n_sounds
else:
    from gear.cli import main
    argv = ["run", "--models", args["model"], "--out", args["out"], "--no-cache", "-q"]
    argv += ["--models-dir", args["models_dir"]] if args["models_dir"] else []
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in args["grid"].items()]
    assert main(argv + (["--layers", "all"] if args["layers"] else [])) == 0
    from gear.pipeline import GearConfig
    n = GearConfig(grid_kwargs=args["grid"]).tone_set().n_sounds
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "forward_calls": len(calls), "batches": math.ceil(n / 250), "n_tones": n,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_random_weights(folder: Path) -> None:
    """Random-valued checkpoints of the published BYOL-S, Hybrid BYOL-S and OpenL3 mel256
    architectures, in the upstream formats and file names the registry looks for."""
    import torch

    from embeddings import byols, openl3

    cvt = byols.CvT([dict(emb_dim=64, depth=1, heads=1, mlp_mult=4), dict(emb_dim=256, depth=1, heads=3, mlp_mult=4),
                     dict(emb_dim=512, depth=1, heads=6, mlp_mult=4)])
    files = {"byols/cvt_s1-d1-e64_s2-d1-e256_s3-d1-e512_BYOLAs64x96-osandbyolaloss6373-e100-bs256-lr0003-rs42.pth": cvt,
             "byols/default2048_BYOLAs64x96-2105311814-e100-bs256-lr0003-rs42.pth": byols.AudioNTT2020(d=2048),
             "openl3/torchopenl3_mel256_music_6144.pth.tar": openl3.OpenL3Embedding("mel256", 6144)}
    for relative, module in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save(module.state_dict(), folder / relative)


def measure(model: str, stage: str, layers: bool, grid: dict, models_dir: str = "") -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = dict(model=model, stage=stage, layers=layers, grid=grid, out=out, network=NETWORKS[model],
                    models_dir=models_dir or None)
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True,
                              env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{model} {stage} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["naive"], choices=sorted(NETWORKS))
    parser.add_argument("--n-alpha", type=int, default=None, help="grid size (default: the paper's 50)")
    parser.add_argument("--n-r", type=int, default=None)
    parser.add_argument("--stages", nargs="+", default=["embed", "gear run"], choices=["embed", "gear run"])
    parser.add_argument("--models-dir", default=os.environ.get("GEAR_MODELS_DIR", ""))
    parser.add_argument("--random-weights", action="store_true",
                        help="random-valued BYOL-S / Hybrid BYOL-S / OpenL3 checkpoints (module doc)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        if args.random_weights:
            write_random_weights(Path(scratch))
            args.models_dir = scratch
        return _table(args)


def _table(args) -> int:
    grid = {k: v for k, v in (("n_alpha", args.n_alpha), ("n_r", args.n_r)) if v is not None}
    header = ("model", "stage", "mode", "n_tones", "wall_s", "forward_calls", "batches", "calls_per_batch",
              "peak_rss_mb")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for model in args.models:
        for stage in args.stages:
            for layers in (False, True):
                row = measure(model, "embed" if stage == "embed" else "run", layers, grid, args.models_dir)
                per_batch = (row["forward_calls"] - 2) / row["batches"]  # less the determinism check's two calls
                print(" | ".join([model, stage, "--layers all" if layers else "plain", str(row["n_tones"]),
                                  f"{row['wall_s']:.1f}", str(row["forward_calls"]), str(row["batches"]),
                                  f"{per_batch:g}", f"{row['peak_rss_mb']:.0f}"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
