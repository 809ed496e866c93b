"""Fixed-distance rank metrics (gear.timbre.rankmetrics) against references: scipy.stats
(spearmanr, kendalltau), sklearn.metrics.ndcg_score, scipy.spatial.distance, and brute force
on tiny cases written loop by loop from the definitions of timbremetrics."""
import itertools
import math

import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import cdist
from sklearn.metrics import ndcg_score

from gear.errors import ParameterError
from gear.timbre import rankmetrics as R


def _case(seed, n=7, ties=False):
    rng = np.random.default_rng(seed)
    F = rng.integers(0, 3, (n, 2)).astype(float) if ties else rng.standard_normal((n, 5))
    M = np.triu(rng.uniform(0, 1, (n, n)), 1)
    if ties:
        M = np.triu(np.round(M * 3) / 3, 1)
    return F, M


def _rows(M):
    S = M + M.T
    return [np.delete(S[i], i) for i in range(S.shape[0])]


@pytest.mark.parametrize("distance,metric", [("l1", "cityblock"), ("l2", "euclidean"), ("cosine", "cosine")])
def test_distances_match_scipy(distance, metric):
    F, _ = _case(0)
    np.testing.assert_allclose(R.distance_matrix(F, distance), cdist(F, F, metric), atol=1e-12)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.parametrize("seed,ties", [(0, False), (1, False), (2, True), (3, True)])
def test_spearman_and_kendall_match_scipy_per_anchor(seed, ties):
    F, M = _case(seed, ties=ties)
    pred, true = R.normalise(R.distance_matrix(F, "l1")), R.normalise(M)
    rho = [scipy.stats.spearmanr(p, t).statistic for p, t in zip(_rows(np.triu(pred, 1)), _rows(np.triu(true, 1)))]
    tau = [scipy.stats.kendalltau(p, t, variant="b").statistic
           for p, t in zip(_rows(np.triu(pred, 1)), _rows(np.triu(true, 1)))]
    assert R.spearman(pred, true) == pytest.approx(np.mean(np.nan_to_num(rho)), abs=1e-12)
    assert R.kendall_tau_b(pred, true) == pytest.approx(np.mean(np.nan_to_num(tau)), abs=1e-12)


def _dcg(relevance_in_score_order):
    return sum(g / math.log2(k + 2) for k, g in enumerate(relevance_in_score_order))


@pytest.mark.parametrize("seed", range(3))
def test_ndcg_brute_force_and_sklearn(seed):
    F, M = _case(seed)
    pred, true = R.normalise(R.distance_matrix(F, "l2")), R.normalise(M)
    brute = []
    for p, t in zip(_rows(np.triu(pred, 1)), _rows(np.triu(true, 1))):
        rel = 1 - t  # relevance of retrieving similar sounds
        ranked = rel[np.argsort(-(1 - p), kind="stable")]
        brute.append(_dcg(ranked) / _dcg(np.sort(rel)[::-1]))
    assert R.ndcg(pred, true) == pytest.approx(np.mean(brute), abs=1e-12)
    rows_p, rows_t = np.array(_rows(np.triu(pred, 1))), np.array(_rows(np.triu(true, 1)))
    assert R.ndcg(pred, true) == pytest.approx(ndcg_score(1 - rows_t, 1 - rows_p), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_ndcg_with_tied_scores_matches_sklearn(seed):
    F, M = _case(seed, ties=True)
    pred, true = R.normalise(R.distance_matrix(F, "l1")), R.normalise(M)
    rows_p, rows_t = np.array(_rows(np.triu(pred, 1))), np.array(_rows(np.triu(true, 1)))
    assert np.any([len(set(r)) < len(r) for r in rows_p])  # ties present
    assert R.ndcg(pred, true) == pytest.approx(ndcg_score(1 - rows_t, 1 - rows_p), abs=1e-12)


@pytest.mark.parametrize("seed,ties", [(0, False), (4, True)])
def test_triplet_agreement_and_mae_brute_force(seed, ties):
    F, M = _case(seed, ties=ties)
    pred, true = R.normalise(R.distance_matrix(F, "cosine")), R.normalise(M)
    n = F.shape[0]
    scores = []
    for a in range(n):
        others = [x for x in range(n) if x != a]
        agree = valid = 0
        for j, k in itertools.combinations(others, 2):
            dt = true[a, j] - true[a, k]
            if abs(dt) > 0.1:
                valid += 1
                agree += (pred[a, j] - pred[a, k]) * dt > 0
        scores.append(agree / valid if valid else 0.0)
    assert R.triplet_agreement(pred, true) == pytest.approx(np.mean(scores), abs=1e-12)
    mae = np.mean([abs(pred[i, j] - true[i, j]) for i in range(n) for j in range(i + 1, n)])
    assert R.mae(pred, true) == pytest.approx(mae, abs=1e-12)


def test_normalisation_is_timbremetrics_min_max_of_the_masked_matrix():
    M = np.triu(np.array([[0, 0.2, 0.4], [0, 0, 0.8], [0, 0, 0]]), 1)
    N = R.normalise(M)
    np.testing.assert_allclose(N[np.triu_indices(3, 1)], [0.25, 0.5, 1.0])  # min of the masked matrix is 0
    np.testing.assert_allclose(N, N.T)


def test_perfect_and_shuffled_controls():
    rng = np.random.default_rng(5)
    F = rng.standard_normal((10, 3))
    D = np.triu(R.distance_matrix(F, "l2"), 1)
    perfect = {(r["distance"], r["metric"]): r["value"] for r in R.rank_metrics(F, D / D.max())}
    assert perfect[("l2", "mae")] == pytest.approx(0, abs=1e-12)
    for m in ("ndcg", "spearman", "kendall", "triplet"):
        assert perfect[("l2", m)] == pytest.approx(1.0)
    # a shuffled pairing scores at chance: rank correlations ~ 0, triplets ~ 1/2
    vals = {m: [] for m in ("spearman", "kendall", "triplet")}
    for seed in range(40):
        perm = np.random.default_rng(seed).permutation(10)
        for r in R.rank_metrics(F[perm], D / D.max(), distances=["l2"], metrics=list(vals)):
            vals[r["metric"]].append(r["value"])
    assert abs(np.mean(vals["spearman"])) < 0.05 and abs(np.mean(vals["kendall"])) < 0.05
    assert np.mean(vals["triplet"]) == pytest.approx(0.5, abs=0.05)


def test_bad_input():
    F, M = _case(0)
    with pytest.raises(ParameterError, match="distance"):
        R.distance_matrix(F, "chebyshev")
    with pytest.raises(ParameterError, match="metric"):
        R.rank_metrics(F, M, metrics=["auc"])
    with pytest.raises(ParameterError, match="does not match"):
        R.rank_metrics(F[:5], M)
    with pytest.raises(ParameterError, match="cosine"):
        R.distance_matrix(np.vstack([F, np.zeros(5)]), "cosine")
