"""`gear score` metrics above gear.neighbours.EXACT_MAX_SOUNDS (5 000) sounds: no n x n matrix
(O(n K) memory), and the large-n path agrees with the exact n x n path on a design where both run."""
import tracemalloc
import warnings

import numpy as np
import pytest

from gear import metrics
from gear import neighbours as gear_neighbours
from gear.disentangle import _inputs, manifold, topology
from gear.metrics import clusters, similarity
from gear.metrics import neighbours as metric_neighbours
from gear.metrics.similarity import similarity_rows


def _design(n_alpha, n_r, *, dim=8, seed=0):
    """A grid in (alpha, r) with random f1 rounded to 6 bins (a discrete factor: purity and
    clusters run), and three smooth 'models' of it."""
    rng = np.random.default_rng(seed)
    alpha, r = (g.ravel() for g in np.meshgrid(np.linspace(0, 1, n_alpha), np.linspace(0, 1, n_r), indexing="ij"))
    f1 = 100.0 * 2.0 ** rng.integers(0, 6, alpha.size) * 1.0
    theta = np.column_stack([f1, alpha, r])
    z = np.column_stack([np.log2(f1) / 3, alpha, r])
    models = {f"m{m}": np.tanh(z @ np.random.default_rng(m).standard_normal((3, dim + 4 * m)))
              + 0.05 * rng.standard_normal((alpha.size, dim + 4 * m)) for m in range(3)}
    return theta, models


def _guard(monkeypatch, n):
    """Fail on any pairwise-distance matrix of n x n / 4 entries or more."""
    import scipy.spatial.distance as ssd
    import sklearn.metrics as skm
    import sklearn.metrics.pairwise as skp

    def guarded(function, size):
        def call(*args, **kwargs):
            assert size(*args) < n * n / 4, f"{function.__name__} of {size(*args)} entries at n = {n}"
            return function(*args, **kwargs)
        return call

    for module, name, size in [(ssd, "pdist", lambda X, *a: len(X) ** 2 / 2), (ssd, "cdist", lambda A, B, *a: len(A) * len(B)),
                               (skm, "pairwise_distances", lambda X, Y=None, *a: len(X) * len(X if Y is None else Y)),
                               (skp, "pairwise_distances", lambda X, Y=None, *a: len(X) * len(X if Y is None else Y)),
                               (skp, "euclidean_distances", lambda X, Y=None, *a: len(X) * len(X if Y is None else Y))]:
        monkeypatch.setattr(module, name, guarded(getattr(module, name), size))


def test_no_n_by_n_matrix_above_the_threshold(monkeypatch):
    theta, models = _design(72, 70)  # 5 040 sounds, just above 5 000
    n = theta.shape[0]
    assert n > gear_neighbours.EXACT_MAX_SOUNDS
    _guard(monkeypatch, n)
    X = models["m0"]
    prep = _inputs.prepare(X, theta)
    assert prep.large
    with pytest.raises(Exception, match="no n x n"):
        prep.distances()
    n_by_n = n * n * 8  # bytes of one n x n float64 matrix
    peaks = {}
    steps = {
        "isomap": lambda: manifold._isomap_rv(prep, n_neighbors=30, n_landmarks=100),
        "trustworthiness": lambda: manifold._trust_cont(prep, n_neighbors=10),
        "topology": lambda: topology._persistence(prep, n_landmarks=100),
        "neighbours": lambda: metrics.evaluate(X, theta, families=["neighbours"], n_resamples=100),
        "clusters": lambda: metrics.evaluate(X, theta, families=["clusters"]),
        "similarity": lambda: similarity_rows(models, n_permutations=9, rsa_sounds=100),
    }
    for name, step in steps.items():
        tracemalloc.start()
        out = step()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert out
    assert max(peaks.values()) < n_by_n / 4, {k: f"{v / 1e6:.0f} MB" for k, v in peaks.items()}


@pytest.fixture
def lowered(monkeypatch):
    """The large-n paths switched on above 1 000 sounds (samples shrunk to match)."""
    def lower():
        for module, name in [(gear_neighbours, "EXACT_MAX_SOUNDS"), (_inputs, "LARGE_SOUNDS"),
                             (metric_neighbours, "EXACT_MAX_SOUNDS"), (clusters, "EXACT_MAX_SOUNDS"),
                             (similarity, "EXACT_MAX_SOUNDS")]:
            monkeypatch.setattr(module, name, 1000)
        monkeypatch.setattr(clusters, "SILHOUETTE_SAMPLE", 1000)
        monkeypatch.setattr(manifold, "TRUST_QUERIES", 800)
        monkeypatch.setattr(metric_neighbours, "LARGE_BLOCK", 20_000)  # several blocks of queries
    return lower


def _by_key(rows):
    return {(r["metric"], r["parameter"]): r for r in rows}


def test_large_path_agrees_with_the_exact_path(lowered):
    theta, models = _design(40, 40, seed=3)  # 1 600 sounds: both paths run
    X = models["m1"]
    exact_prep = _inputs.prepare(X, theta)
    exact = {"iso": manifold._isomap_rv(exact_prep, n_neighbors=30, n_landmarks=300),
             "trust": manifold._trust_cont(exact_prep, n_neighbors=10),
             "topo": topology._persistence(exact_prep, n_landmarks=150),
             "rows": _by_key(metrics.evaluate(X, theta, families=["neighbours", "clusters"], n_resamples=300)),
             "sim": _by_key([dict(r, parameter=r["model_a"] + r["model_b"]) for r in similarity_rows(models, n_permutations=19)])}
    lowered()
    prep = _inputs.prepare(X, theta)
    assert prep.large
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        large = {"iso": manifold._isomap_rv(prep, n_neighbors=30, n_landmarks=300),
                 "trust": manifold._trust_cont(prep, n_neighbors=10),
                 "topo": topology._persistence(prep, n_landmarks=150),
                 "rows": _by_key(metrics.evaluate(X, theta, families=["neighbours", "clusters"], n_resamples=300)),
                 "sim": _by_key([dict(r, parameter=r["model_a"] + r["model_b"]) for r in similarity_rows(models, n_permutations=19)])}
    # landmark Isomap on the HNSW graph: the same residual-variance curve, same elbow
    np.testing.assert_allclose(large["iso"]["residual_variance"], exact["iso"]["residual_variance"], atol=0.02)
    # trustworthiness / continuity from 800 query sounds: within 4 standard errors
    for key in ("trustworthiness", "continuity"):
        assert abs(large["trust"][key] - exact["trust"][key]) < 4 * large["trust"][f"{key}_se"] + 1e-6, key
        assert large["trust"][f"{key}_se"] < 0.01
    # topology: the same Betti numbers (same landmarks: farthest points from distance rows)
    np.testing.assert_array_equal(large["topo"]["landmarks"], exact["topo"]["landmarks"])
    np.testing.assert_array_equal(large["topo"]["betti"], exact["topo"]["betti"])
    np.testing.assert_allclose(np.sort(large["topo"]["mst_edges"]), np.sort(exact["topo"]["mst_edges"]), rtol=1e-6)
    # neighbour scores: each large-path value inside the exact path's 95 % CI (and vice versa)
    checked = 0
    for key, row in exact["rows"].items():
        if key[0] in ("mean_abs_log_ratio", "normalised_score", "purity", "oracle", "chance"):
            other = large["rows"][key]
            assert row["ci_low"] <= other["value"] <= row["ci_high"], (key, row, other)
            assert other["ci_low"] <= row["value"] <= other["ci_high"], (key, row, other)
            checked += 1
        elif key[0] == "silhouette" and np.isfinite(row["value"]):  # 1 000-sound sample of 1 600
            assert abs(large["rows"][key]["value"] - row["value"]) < 0.02, key
            checked += 1
        elif key[0] == "davies_bouldin" and np.isfinite(row["value"]):  # every sound, both paths
            assert large["rows"][key]["value"] == pytest.approx(row["value"], rel=1e-9)
    assert checked >= 13
    # similarity: the same statistics (feature form = Gram form) and nulls of the same permutations
    for key, row in exact["sim"].items():
        other = large["sim"][key]
        assert other["value"] == pytest.approx(row["value"], rel=1e-8, abs=1e-10), key
        assert other["p_value"] == pytest.approx(row["p_value"], abs=0.051), key
