"""Analysis with known answers: identity, dropped parameter, shuffled, brute force."""
import numpy as np
import pytest

import synth
from gear import analysis
from gear.analysis import DisconnectedGraphWarning
from gear.errors import ParameterError


@pytest.fixture(scope="module")
def grid():
    return synth.paper_grid()


@pytest.fixture(scope="module")
def theta(grid):
    return dict(zip(("f1_hz", "alpha", "r"), grid.theta().T))


def standardise(columns):
    x = np.stack(columns, axis=1)
    return (x - x.mean(0)) / x.std(0)


def rows_by_parameter(rows):
    return {row["parameter"]: row for row in rows}


def test_identity_embedding_scores_near_zero(theta):
    embedding = standardise([theta["f1_hz"], theta["alpha"], theta["r"]])
    _, rows = analysis.score_embedding(embedding, theta)
    rows = rows_by_parameter(rows)
    for name in ("f1_hz", "alpha", "r"):
        assert rows[name]["median_abs_log_ratio"] < 0.1 * rows[name]["chance"], rows[name]
        assert rows[name]["ci_low"] <= rows[name]["median_abs_log_ratio"] <= rows[name]["ci_high"]
    # alpha = 0 and r = 0 are left out (50 sounds each in the paper grid)
    assert rows["f1_hz"]["n"] == 2500 and rows["alpha"]["n"] == 2450 and rows["r"]["n"] == 2450


def test_dropping_r_scores_badly_on_r_only(theta):
    embedding = standardise([theta["f1_hz"], theta["alpha"]])
    _, rows = analysis.score_embedding(embedding, theta)
    rows = rows_by_parameter(rows)
    assert rows["r"]["median_abs_log_ratio"] > 0.8 * rows["r"]["chance"]
    assert rows["f1_hz"]["median_abs_log_ratio"] < 0.2 * rows["f1_hz"]["chance"]
    assert rows["alpha"]["median_abs_log_ratio"] < 0.2 * rows["alpha"]["chance"]


def test_shuffled_embedding_scores_at_chance(theta):
    embedding = standardise([theta["f1_hz"], theta["alpha"], theta["r"]])
    shuffled = embedding[np.random.default_rng(3).permutation(len(embedding))]
    _, rows = analysis.score_embedding(shuffled, theta)
    for row in rows:
        assert row["median_abs_log_ratio"] == pytest.approx(row["chance"], rel=0.1), row


def test_log_ratio_matches_brute_force():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    values = rng.uniform(0.5, 2.0, 60)
    got = analysis.knn_log_ratios(features, {"x": values}, n_neighbors=5)["x"]
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    expected = np.array([np.log(values[np.argsort(d)[:5]].mean() / values[i]) for i, d in enumerate(distances)])
    np.testing.assert_allclose(got, expected)
    got_log = analysis.knn_log_ratios(features, {"x": values}, n_neighbors=5, scales={"x": "log"})["x"]
    expected_log = np.array([np.log(values[np.argsort(d)[:5]]).mean() - np.log(values[i]) for i, d in enumerate(distances)])
    np.testing.assert_allclose(got_log, expected_log)


def test_self_is_excluded_even_with_duplicates():
    features = np.array([[0.0], [0.0], [0.0], [5.0], [6.0]])
    neighbours = analysis.neighbour_indices(features, n_neighbors=2)
    for i, row in enumerate(neighbours):
        assert i not in row


def test_zero_theta_gives_nan_and_is_excluded():
    features = np.arange(10.0)[:, None]
    values = np.linspace(0, 1, 10)
    ratios = analysis.knn_log_ratios(features, {"a": values}, n_neighbors=2)["a"]
    assert np.isnan(ratios[0]) and np.all(np.isfinite(ratios[1:]))
    assert analysis.summarise_log_ratios(ratios)["n"] == 9


def test_disconnected_graph_warns_with_component_count():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) + 1000, rng.normal(size=(50, 3)) - 1000])
    with pytest.warns(DisconnectedGraphWarning, match="has 3 connected components"):
        coords, n = analysis.isomap_embedding(blobs, n_neighbors=10)
    assert n == 3 and coords.shape == (150, 3)


def test_isomap_recovers_a_line():
    t = np.linspace(0, 1, 200)
    curve = np.stack([np.cos(3 * t), np.sin(3 * t), t], axis=1)  # a helix arc: 1-D
    coords, n = analysis.isomap_embedding(curve, n_neighbors=10, n_components=1)
    assert n == 1
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.999


def test_scaling_options():
    x = np.array([[1.0, 100.0], [2.0, 300.0], [3.0, 200.0]])
    np.testing.assert_allclose(analysis.scale_features(x, scaling="standard").std(0), 1)
    np.testing.assert_allclose(np.abs(analysis.scale_features(x, scaling="maxabs")).max(0), 1)
    with pytest.raises(ParameterError, match="scaling='zscore'"):
        analysis.scale_features(x, scaling="zscore")


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: analysis.knn_log_ratios(np.zeros((5, 2, 2)), {"a": np.ones(5)}), "must be 2-D"),
        (lambda: analysis.knn_log_ratios(np.zeros((5, 2)), {"a": np.ones(4)}), "has 4 values for 5 embedded"),
        (lambda: analysis.knn_log_ratios(np.zeros((5, 2)), {"a": np.ones(5)}, n_neighbors=5), r"n_neighbors=5 must be in \[1, n_sounds - 1\]"),
        (lambda: analysis.knn_log_ratios(np.full((5, 2), np.nan), {"a": np.ones(5)}), "NaN or Inf"),
        (lambda: analysis.knn_log_ratios(np.zeros((5, 2)), {"a": np.arange(5.0)}, n_neighbors=2, scales={"a": "log"}), "needs theta > 0"),
        (lambda: analysis.knn_log_ratios(np.zeros((5, 2)), {"a": np.ones(5)}, n_neighbors=2, scales={"b": "log"}), "not a scored parameter"),
        (lambda: analysis.isomap_embedding(np.zeros((5, 2)), n_neighbors=2, n_components=0), "n_components"),
    ],
)
def test_bad_input_messages(call, match):
    with pytest.raises(ParameterError, match=match):
        call()
