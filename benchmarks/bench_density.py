"""Do normalised neighbour scores compare across designs? The paper grid (50 x 50 = 2 500 tones)
against a grid twice as dense in alpha and r (100 x 100 = 10 000 tones), per model.

Issue 10 asks that the normalised alpha and r scores of naive, logmel and crepe-full differ by less
than 0.05 between the two. CI checks logmel (``tests/test_metrics.py``); naive's 4 096-d and
CREPE's 10 000-tone embeddings take minutes, so their check is this script. Each whole design is
scored as that test does (:func:`gear.metrics.neighbours.neighbour_rows`; K = 1.6 % of the tones,
so 40 and 160; above 5 000 tones the neighbours come from blocked HNSW searches, recall@40 >=
0.9999). ``gear run`` itself scores a 5 000-tone random subsample above 5 000 tones
(:func:`gear.pipeline.normalised_sample`), which is not the design asked about here. Embeddings go
through the default embedding cache.

Usage::

    python benchmarks/bench_density.py [--models naive logmel crepe-full]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOLERANCE = 0.05
DESIGNS = {"paper (50 x 50)": dict(n_alpha=50, n_r=50), "dense (100 x 100)": dict(n_alpha=100, n_r=100)}


def normalised_scores(models, grid: dict) -> dict:
    """``{model: {factor: normalised score}}`` of every tone of the paper grid of size ``grid``."""
    import synth
    from embeddings import registry
    from gear.embedder import embed_model
    from gear.metrics import CAUSE_FACTORS, make_design
    from gear.metrics.neighbours import neighbour_rows

    tone_set = synth.make_grid("paper", **grid)
    out = {}
    for model in models:
        X = embed_model(registry.get_spec(model), tone_set).embedding
        rows = neighbour_rows(make_design(X, tone_set.theta(), names=CAUSE_FACTORS), n_resamples=100)
        out[model] = {r["parameter"]: r["value"] for r in rows if r["metric"] == "normalised_score"}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["naive", "logmel", "crepe-full"])
    args = parser.parse_args(argv)
    scores, walls = {}, {}
    for label, grid in DESIGNS.items():
        start = time.perf_counter()
        scores[label] = normalised_scores(args.models, grid)
        walls[label] = time.perf_counter() - start
    paper, dense = DESIGNS
    print("model | factor | " + f"{paper} | {dense} | |difference| | < {TOLERANCE}")
    print("--- | --- | --- | --- | --- | ---")
    failed = 0
    for model in args.models:
        for factor in ("alpha", "r"):
            a, b = scores[paper][model][factor], scores[dense][model][factor]
            ok = abs(a - b) < TOLERANCE
            failed += not ok
            print(f"{model} | {factor} | {a:.3f} | {b:.3f} | {abs(a - b):.3f} | {'yes' if ok else 'NO'}")
    print("\n" + ", ".join(f"{label}: {wall:.0f} s" for label, wall in walls.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
