"""Cluster quality of the embedding grouped by each discrete factor.

For every factor with 2 to 24 distinct values (f1 bins of the paper grid, a factorial grid's
axes, chord qualities, ...), the sounds are labelled by their value and scikit-learn scores
how well the embedding separates the groups:

- ``davies_bouldin`` (Davies & Bouldin 1979; used by the aiSFX paper): mean over groups of the
  worst ratio (spread_a + spread_b) / distance between centroids; 0 is best, lower is better;
- ``silhouette`` (Rousseeuw 1987): mean over sounds of (b - a) / max(a, b), a the mean distance
  to its own group, b to the nearest other group; in [-1, 1], higher is better.

Both come with their chance level (``davies_bouldin_chance``, ``silhouette_chance``): the same
score with the labels shuffled (the mean of 5 shuffles). Above 5 000 sounds the silhouette is
estimated on a random sample of 2 000 sounds (:data:`SILHOUETTE_SAMPLE`). A factor with one value, or more than
24, gets a note instead of a value.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from gear.neighbours import EXACT_MAX_SOUNDS

from ._common import MAX_CLASSES, Design, row

__all__ = ["cluster_rows"]

#: Above EXACT_MAX_SOUNDS sounds the silhouette (which needs the distances of every pair) is
#: scikit-learn's ``sample_size`` estimate on this many random sounds (the same sample for the
#: score and its shuffled chance level); Davies-Bouldin (centroids only) uses every sound.
SILHOUETTE_SAMPLE = 2000
_SALT_SHUFFLE = 41
_N_SHUFFLES = 5


def _scores(X: np.ndarray, labels: np.ndarray, distances: Optional[np.ndarray], seed: int = 0):
    """(Davies-Bouldin, silhouette); without ``distances`` (above EXACT_MAX_SOUNDS sounds) the
    silhouette is scikit-learn's on a random sample of SILHOUETTE_SAMPLE sounds."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    if distances is None:
        return davies_bouldin_score(X, labels), silhouette_score(X, labels, sample_size=SILHOUETTE_SAMPLE,
                                                                 random_state=seed)
    return davies_bouldin_score(X, labels), silhouette_score(distances, labels, metric="precomputed")


def cluster_rows(design: Design, *, distances: Optional[np.ndarray] = None) -> List[dict]:
    """Davies-Bouldin and silhouette scores per discrete factor, with chance levels.

    Parameters
    ----------
    design : Design
    distances : np.ndarray, shape (n_sounds, n_sounds), optional
        The embedding's Euclidean distance matrix, when already computed (saves the silhouette
        its own).

    Returns
    -------
    list of dict
        Rows of metrics ``davies_bouldin, davies_bouldin_chance, silhouette, silhouette_chance``.
    """
    rows: List[dict] = []
    rng = design.rng(_SALT_SHUFFLE)
    for j, name in enumerate(design.names):
        labels = np.unique(design.theta[:, j], return_inverse=True)[1]
        n_classes = int(labels.max()) + 1
        if not 2 <= n_classes <= MAX_CLASSES or n_classes >= design.n:
            reason = (f"{name} has {n_classes} distinct value(s): cluster scores need 2 to "
                      f"{MAX_CLASSES} classes (and fewer classes than sounds)")
            rows += [row(m, name, note=reason) for m in
                     ("davies_bouldin", "davies_bouldin_chance", "silhouette", "silhouette_chance")]
            continue
        if distances is None and design.n <= EXACT_MAX_SOUNDS:
            from sklearn.metrics import pairwise_distances

            distances = pairwise_distances(design.X)
        seed = design.seed + j
        dbi, sil = _scores(design.X, labels, distances, seed)
        chance = np.mean([_scores(design.X, rng.permutation(labels), distances, seed)
                          for _ in range(_N_SHUFFLES)], axis=0)
        rows += [row("davies_bouldin", name, dbi), row("davies_bouldin_chance", name, chance[0]),
                 row("silhouette", name, sil), row("silhouette_chance", name, chance[1])]
    return rows
