"""Memory-bounded analysis: HNSW neighbours, landmark Isomap, one shared search (issue 11).

References are independent: brute-force neighbours from a full distance matrix (small n),
scikit-learn's exact Isomap, the analytic unrolling of a swiss roll (an isometric embedding of a
flat box, so its Isomap coordinates are known), and tracemalloc for the memory bound.
"""
import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.spatial import procrustes

from gear import analysis, landmark, neighbours
from gear.errors import ParameterError


def _swiss_roll(n, seed=0):
    """Features (n, 6) of a swiss roll x height x depth, and its unrolled coordinates (n, 3)."""
    u = np.random.default_rng(seed).random((n, 3))
    t = 1.5 * np.pi * (1 + 1.5 * u[:, 0])
    features = np.column_stack([t * np.cos(t), 10 * u[:, 1], t * np.sin(t), 5 * u[:, 2], np.zeros((n, 2))])
    arc = 0.5 * (t * np.sqrt(1 + t**2) + np.arcsinh(t))  # arc length of the spiral (t cos t, t sin t)
    return features, np.column_stack([arc, 10 * u[:, 1], 5 * u[:, 2]])


def _procrustes_r(a, b):
    return float(np.sqrt(1 - procrustes(a, b)[2]))


def test_exact_search_equals_brute_force_neighbours():
    features, _ = _swiss_roll(300, seed=1)
    found = neighbours.search(features, 7)
    distances = np.linalg.norm(features[:, None] - features[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    truth = np.argsort(distances, axis=1, kind="stable")[:, :7]
    assert found.algorithm == "exact"
    np.testing.assert_array_equal(np.sort(found.indices, axis=1), np.sort(truth, axis=1))
    np.testing.assert_allclose(found.distances, np.take_along_axis(distances, truth, axis=1), rtol=1e-12)
    assert neighbours.recall_at_k(features, found) == 1.0


def test_hnsw_recall_against_exact():
    features, _ = _swiss_roll(3000, seed=2)
    found = neighbours.search(features, 40, algorithm="hnsw")
    assert found.algorithm == "hnsw" and found.indices.shape == (3000, 40)
    assert not np.any(found.indices == np.arange(3000)[:, None])  # self excluded
    assert np.all(np.diff(found.distances, axis=1) >= 0)
    assert neighbours.recall_at_k(features, found, n_queries=500) >= 0.99


def test_hnsw_on_wide_embeddings_projects_by_pca():
    rng = np.random.default_rng(3)
    latent = rng.standard_normal((1000, 12))
    features = (latent @ rng.standard_normal((12, neighbours.HNSW_MAX_DIM + 300))).astype(np.float32)
    found = neighbours.search(features, 20, algorithm="hnsw")
    assert neighbours.recall_at_k(features, found, n_queries=300) >= 0.95


def test_algorithm_is_chosen_by_n_and_checked():
    assert neighbours.choose_algorithm(neighbours.EXACT_MAX_SOUNDS) == "exact"
    assert neighbours.choose_algorithm(neighbours.EXACT_MAX_SOUNDS + 1) == "hnsw"
    with pytest.raises(ParameterError, match="kdtree"):
        neighbours.choose_algorithm(10, "kdtree")
    with pytest.raises(ParameterError, match="n_landmarks"):
        analysis.isomap_embedding(_swiss_roll(50)[0], n_neighbors=5, n_landmarks=1)


def test_landmark_mds_with_every_sound_a_landmark_is_classical_isomap():
    """With L = n, landmark MDS is classical MDS of all geodesics: scikit-learn's Isomap."""
    features, _ = _swiss_roll(400, seed=4)
    exact, _ = analysis.isomap_embedding(features, n_neighbors=8, n_landmarks=None)
    full = landmark.LandmarkIsomap(n_neighbors=8, n_landmarks=400, neighbors_algorithm="exact").fit(features)
    assert set(full.landmarks_) == set(range(400))
    assert procrustes(exact, full.embedding_)[2] < 1e-8


def test_landmark_isomap_matches_exact_isomap():
    features, _ = _swiss_roll(2000, seed=5)
    exact, _ = analysis.isomap_embedding(features, n_neighbors=10, n_landmarks=None)
    approx, n_components = analysis.isomap_embedding(features, n_neighbors=10, n_landmarks=100, neighbors_algorithm="hnsw")
    assert n_components == 1
    assert _procrustes_r(exact, approx) >= 0.999


def test_cell_weights_correct_the_edge_bias_of_farthest_point_landmarks():
    """A strip sampled densely at one end: farthest-point landmarks crowd the sparse end, and landmark
    MDS with equal weights tilts towards it; weighting each landmark by its Voronoi cell brings
    landmark Isomap to within a third of that misfit of scikit-learn's exact Isomap."""
    rng = np.random.default_rng(4)
    a, b = 4 * rng.beta(0.6, 4.0, 2000), rng.uniform(0, 1, 2000)
    features = np.column_stack([a * np.cos(a), 2 * b, a * np.sin(a)])
    exact, _ = analysis.isomap_embedding(features, n_neighbors=12, n_landmarks=None)
    model = landmark.LandmarkIsomap(n_neighbors=12, n_landmarks=40, neighbors_algorithm="exact").fit(features)
    assert model.weights_.sum() == 2000 and np.all(model.weights_ >= 1)
    equal, _ = landmark.landmark_mds(model.geodesics_, model.landmarks_, 3)
    weighted_misfit, equal_misfit = 1 - _procrustes_r(exact, model.embedding_), 1 - _procrustes_r(exact, equal)
    assert weighted_misfit < 0.002 and weighted_misfit < equal_misfit / 3, (weighted_misfit, equal_misfit)


def test_disconnected_graph_is_joined_and_warned():
    features, _ = _swiss_roll(600, seed=6)
    features[300:, 0] += 1000.0  # two far-apart copies
    with pytest.warns(analysis.DisconnectedGraphWarning, match="2 connected components"):
        coordinates, n_components = analysis.isomap_embedding(features, n_neighbors=10, n_landmarks=50)
    assert n_components == 2 and np.all(np.isfinite(coordinates))
    # the two halves are placed apart along the first axis
    assert abs(coordinates[:300, 0].mean() - coordinates[300:, 0].mean()) > 500


def test_analyse_up_to_5000_is_the_historical_path():
    features, latent = _swiss_roll(800, seed=7)
    theta = {"a": latent[:, 0], "b": latent[:, 1] + 1.0}
    out = analysis.analyse(features, theta, isomap_neighbors=10, n_neighbors=8, n_bootstrap=200)
    coordinates, n_components = analysis.isomap_embedding(features, n_neighbors=10)
    log_ratios, rows = analysis.score_embedding(features, theta, n_neighbors=8, n_bootstrap=200)
    assert out["algorithm"] == "exact" and out["n_graph_components"] == n_components
    np.testing.assert_allclose(out["coordinates"], coordinates, atol=1e-9)  # BLAS threads: last bits vary
    assert out["rows"] == rows
    for name in theta:
        np.testing.assert_array_equal(out["log_ratios"][name], log_ratios[name])


def test_large_n_analysis_holds_no_n_by_n_matrix():
    n = 8000
    features, latent = _swiss_roll(n, seed=8)
    theta = {"a": latent[:, 0], "b": latent[:, 1] + 1.0}
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", analysis.DisconnectedGraphWarning)
            out = analysis.analyse(features, theta, isomap_neighbors=20, n_neighbors=10, n_bootstrap=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out["algorithm"] == "hnsw" and out["coordinates"].shape == (n, 3)
    assert peak < n * n * 8 / 4, f"peak {peak / 1e6:.0f} MB: an n x n float64 matrix is {n * n * 8 / 1e6:.0f} MB"


@pytest.mark.slow
def test_10000_sounds_landmark_isomap_and_scores():
    """10 000 sounds: landmark Isomap recovers the isometric (unrolled) coordinates, and HNSW
    scores fall within the exact scores' bootstrap CIs."""
    n = 10000
    features, latent = _swiss_roll(n, seed=9)
    theta = {"a": latent[:, 0], "b": latent[:, 1] + 1.0, "c": latent[:, 2] + 1.0}
    out = analysis.analyse(features, theta, isomap_neighbors=10, n_neighbors=40, n_bootstrap=300)
    assert out["algorithm"] == "hnsw" and out["n_graph_components"] == 1
    assert _procrustes_r(latent, out["coordinates"]) >= 0.99
    _, exact_rows = analysis.score_embedding(features, theta, n_neighbors=40, n_bootstrap=300, algorithm="exact")
    for approx, exact in zip(out["rows"], exact_rows):
        assert approx["parameter"] == exact["parameter"]
        assert exact["ci_low"] <= approx["median_abs_log_ratio"] <= exact["ci_high"], (approx, exact)
        assert approx["median_abs_log_ratio"] < 0.5 * approx["chance"]


@pytest.mark.slow
def test_pipeline_above_the_exact_limit_shares_one_search_and_equals_analyse():
    """Above EXACT_MAX_SOUNDS, gear run's analysis is gear.analysis.analyse (one neighbour search for
    Isomap and the scores); at or below it, the exact path (covered by the default-run tests)."""
    from gear import analysis
    from gear.pipeline import GearConfig, analyse_embedding

    config = GearConfig(grid_kwargs=dict(n_alpha=80, n_r=80), n_bootstrap=100)
    tone_set = config.tone_set()
    assert tone_set.n_sounds > analysis.EXACT_MAX_SOUNDS
    theta = tone_set.theta()
    z = np.column_stack([np.log2(theta[:, 0]), theta[:, 1], theta[:, 2]])
    embedding = np.tanh(z @ np.random.default_rng(0).standard_normal((3, 32))).astype(np.float32)
    result = analyse_embedding("m", embedding, tone_set, config=config)
    reference = analysis.analyse(embedding, dict(zip(("f1_hz", "alpha", "r"), theta.T)), parameters=("f1_hz", "alpha", "r"),
                                 isomap_neighbors=config.isomap_neighbors, n_neighbors=config.n_neighbors,
                                 n_bootstrap=config.n_bootstrap)
    assert reference["algorithm"] == "hnsw"
    assert result.scores == reference["rows"]
    np.testing.assert_allclose(result.isomap, reference["coordinates"], atol=1e-6)
