"""Fixed-distance rank metrics against the ratings, after timbremetrics (Tian et al. 2025).

Nothing is learned: a representation's sounds are compared with a fixed distance
(:data:`DISTANCES`: L1, L2, cosine) and the distances are scored against the averaged
ratings with the metrics of :data:`METRICS`. The definitions follow the timbremetrics
package of Tian et al. (2025), where they are not the obvious ones:

* **Normalisation.** Both dissimilarity sets are min-max normalised over the study's
  ``n x n`` matrix whose diagonal and lower triangle are 0 (as timbremetrics masks them),
  which for nonnegative dissimilarities is a division by the largest one.
* **Per-anchor scores.** NDCG, Spearman, Kendall and triplet agreement are computed for
  each sound (the anchor) over its ``n - 1`` dissimilarities to the other sounds (the row
  of the symmetrised matrix without the diagonal), then averaged over anchors.
* **MAE**: mean absolute difference of the two normalised sets over the ``n (n - 1) / 2``
  pairs.
* **NDCG** retrieves similar sounds: the relevance of sound ``j`` for anchor ``i`` is
  ``1 - s_ij`` (normalised rating), the score ``1 - d_ij``; linear gains, ``log2`` rank
  discount, all ``n - 1`` items, tied scores averaged (as :func:`sklearn.metrics.ndcg_score`).
* **Kendall** is tau-b (ties in either ranking); an anchor whose row is constant in either
  set has an undefined tau and counts 0 (timbremetrics sums with ``nansum``); Spearman is
  the Pearson correlation of average ranks (0 for a constant row likewise).
* **Triplet agreement**: for anchor ``i`` and every pair ``j < k`` of the other sounds with
  ``|s_ij - s_ik| > margin`` (normalised ratings, margin 0.1), the fraction of pairs whose
  distances are ordered like the ratings (``(d_ij - d_ik)(s_ij - s_ik) > 0``); an anchor
  without such a pair scores 0, as in timbremetrics.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np

from gear.errors import ParameterError

__all__ = [
    "DISTANCES",
    "METRICS",
    "TRIPLET_MARGIN",
    "distance_matrix",
    "normalise",
    "anchor_rows",
    "mae",
    "ndcg",
    "spearman",
    "kendall_tau_b",
    "triplet_agreement",
    "rank_metrics",
]

#: Fixed distances: name -> :func:`scipy.spatial.distance.pdist` metric.
DISTANCES = {"l1": "cityblock", "l2": "euclidean", "cosine": "cosine"}

#: Margin of the triplet agreement on the normalised ratings (timbremetrics' default).
TRIPLET_MARGIN = 0.1


def distance_matrix(features: np.ndarray, distance: str) -> np.ndarray:
    """Symmetric matrix of fixed distances between the rows of ``features``.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features)
    distance : {"l1", "l2", "cosine"}

    Returns
    -------
    np.ndarray, shape (n_sounds, n_sounds), zero diagonal
    """
    from scipy.spatial.distance import pdist, squareform

    if distance not in DISTANCES:
        raise ParameterError(f"distance={distance!r}; use one of {', '.join(DISTANCES)}")
    F = np.asarray(features, dtype=float)
    if F.ndim != 2 or F.shape[0] < 3 or not np.all(np.isfinite(F)):
        raise ParameterError(f"features of shape {F.shape}: need finite (n_sounds >= 3, n_features)")
    if distance == "cosine" and np.any(np.linalg.norm(F, axis=1) == 0):
        raise ParameterError("a sound has an all-zero feature vector: its cosine distance is undefined")
    return squareform(pdist(F, DISTANCES[distance]), checks=False)


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Min-max normalisation of the strict upper triangle together with the zeros of the
    masked diagonal and lower triangle (timbremetrics); returned symmetric."""
    m = np.triu(np.asarray(matrix, dtype=float), k=1)
    lo, hi = min(0.0, float(m.min())), float(m.max())
    if hi <= lo:
        raise ParameterError("all dissimilarities are equal: nothing to compare")
    out = np.triu((m - lo) / (hi - lo), k=1)
    return out + out.T


def anchor_rows(symmetric: np.ndarray) -> np.ndarray:
    """Rows of a symmetric matrix without the diagonal, shape (n, n - 1)."""
    n = symmetric.shape[0]
    return symmetric[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute difference over pairs of two normalised symmetric matrices."""
    iu = np.triu_indices(pred.shape[0], k=1)
    return float(np.mean(np.abs(pred[iu] - true[iu])))


def ndcg(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over anchors of the NDCG of retrieving similar sounds (relevance ``1 - s``,
    score ``1 - d``), with tied scores sharing their average discount as
    :func:`sklearn.metrics.ndcg_score` does (vectorised here: sklearn's input checks cost
    more than the computation for 20 x 19 values)."""
    from scipy.stats import rankdata

    rel, score = 1.0 - anchor_rows(true), 1.0 - anchor_rows(pred)
    n = rel.shape[1]
    cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(n) + 2.0))])
    first, last = rankdata(-score, method="min", axis=1), rankdata(-score, method="max", axis=1)
    first, last = first.astype(int), last.astype(int)
    discount = (cum[last] - cum[first - 1]) / (last - first + 1)  # average over the tied ranks
    dcg = np.sum(rel * discount, axis=1)
    ideal = np.sort(rel, axis=1)[:, ::-1] @ np.diff(cum)
    return float(np.mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)))


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    num = np.einsum("ij,ij->i", a, b)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over anchors of Spearman's rho (average ranks for ties)."""
    from scipy.stats import rankdata

    return float(np.mean(_row_pearson(rankdata(anchor_rows(pred), axis=1), rankdata(anchor_rows(true), axis=1))))


def _pair_signs(rows: np.ndarray) -> np.ndarray:
    """``sign(x_j - x_k)`` for every anchor and pair ``j < k``: shape (n, n_pairs)."""
    j, k = np.triu_indices(rows.shape[1], k=1)
    return np.sign(rows[:, j] - rows[:, k])


def kendall_tau_b(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over anchors of Kendall's tau-b (a constant row counts 0)."""
    sp, st = _pair_signs(anchor_rows(pred)), _pair_signs(anchor_rows(true))
    num = np.sum(sp * st, axis=1)
    den = np.sqrt(np.count_nonzero(sp, axis=1).astype(float) * np.count_nonzero(st, axis=1))
    return float(np.mean(np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)))


def triplet_agreement(pred: np.ndarray, true: np.ndarray, *, margin: float = TRIPLET_MARGIN) -> float:
    """Mean over anchors of the fraction of rating-separated pairs ordered alike."""
    rp, rt = anchor_rows(pred), anchor_rows(true)
    j, k = np.triu_indices(rp.shape[1], k=1)
    dt, dp = rt[:, j] - rt[:, k], rp[:, j] - rp[:, k]
    valid = np.abs(dt) > margin
    agree = np.sum(valid & (dp * dt > 0), axis=1)
    n_valid = np.sum(valid, axis=1)
    return float(np.mean(np.divide(agree, n_valid, out=np.zeros(len(agree)), where=n_valid > 0)))


#: The metric table: name -> function of (normalised predicted, normalised rated) matrices.
METRICS: Dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mae": mae,
    "ndcg": ndcg,
    "spearman": spearman,
    "kendall": kendall_tau_b,
    "triplet": triplet_agreement,
}


def rank_metrics(
    features: np.ndarray,
    ratings_matrix: np.ndarray,
    *,
    distances: Sequence[str] = tuple(DISTANCES),
    metrics: Sequence[str] = tuple(METRICS),
) -> List[dict]:
    """Every metric for every distance, for one study.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features)
        Rows in the ratings' order.
    ratings_matrix : np.ndarray, shape (n_sounds, n_sounds)
        Averaged ratings (strict upper triangle used).
    distances, metrics : sequence of str
        Keys of :data:`DISTANCES` and :data:`METRICS`.

    Returns
    -------
    list of dict
        ``distance``, ``metric``, ``value`` (MAE: lower is better; the others: higher).
    """
    for m in metrics:
        if m not in METRICS:
            raise ParameterError(f"metric={m!r}; use one of {', '.join(METRICS)}")
    R = np.asarray(ratings_matrix, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] != np.shape(features)[0]:
        raise ParameterError(
            f"ratings matrix {R.shape} does not match {np.shape(features)[0]} feature rows"
        )
    true = normalise(R)
    out = []
    for dist in distances:
        pred = normalise(distance_matrix(features, dist))
        out += [{"distance": dist, "metric": m, "value": METRICS[m](pred, true)} for m in metrics]
    return out
