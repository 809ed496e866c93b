"""Topology: persistent homology of the embedding's point cloud against a box's.

Definitions
-----------
Distances are Euclidean in the full embedding (no PCA, no per-dimension standardisation, which
would inflate directions that carry almost no variance), divided by the sub-sample's diameter
``L`` so that persistence is a fraction of the cloud's size.

- **b0** (components) is computed exactly on *all* sounds: the finite 0-dimensional bars of a
  Vietoris-Rips filtration are the edges of the Euclidean minimum spanning tree (MST), so
  ``b0 = 1 + #{MST edges longer than threshold * L and than 5 x the median non-zero MST
  edge}``. The second condition adapts to the sampling density: a sparse but connected sample
  (900 sounds spread over a 3-D volume, or a coarse grid) has MST edges up to ~3x its median
  spacing, while a real gap between clusters is many times the spacing within them. (Sounds the
  embedding maps to one point do not count as spacing: an embedding that collapses all but one
  parameter onto, say, 9 points of a curve has b0 = 1, a coarsely sampled strand.)
- **b1** (loops) and **b2** (voids) come from ``ripser`` (Vietoris-Rips, up to dimension 2) on a
  farthest-point sub-sample of ``n_landmarks`` (300) sounds (seeded first point; every sound
  lies within the covering radius ``eps`` of the sample). The filtration is cut at
  ``3 * threshold * L`` to keep it fast; a bar still alive there is reported with death at the cut,
  which never changes whether a bar born before ``2 * threshold * L`` counts as long-lived.
- A bar is **long-lived** when its persistence (death - birth) exceeds ``threshold * L``
  (threshold = 0.1), and, for b1 and b2, also exceeds the covering radius ``eps`` (smaller bars
  can be artefacts of the sub-sample). b_k counts the long-lived bars (plus the one
  infinite bar for b0).
- The parameter space is a box (product of intervals): b0 = 1, b1 = b2 = 0. ``extra_features =
  (b0 - 1) + b1 + b2`` counts the long-lived features the parameter space does not have (a
  0 is what a faithful embedding of the box gets; an octave-like loop in f1 adds a b1).
- ``max_persistence_k``: the longest finite bar of dimension k as a fraction of ``L`` (for b0 from
  the MST of all sounds).
"""
from __future__ import annotations

import numpy as np

from gear.errors import ParameterError

from ._inputs import Prepared, check_fraction, check_int, prepare
from .manifold import prepared_farthest_points

__all__ = ["persistence_summary", "BOX_BETTI"]

#: Betti numbers of the parameter space (a box).
BOX_BETTI = (1, 0, 0)
#: A long-lived H0 bar (a gap between components) is also this many times the median MST edge.
_GAP_FACTOR = 5.0


def _mst_edges(D: np.ndarray) -> np.ndarray:
    """Edge lengths of the Euclidean minimum spanning tree (Prim's algorithm, O(n^2))."""
    n = D.shape[0]
    in_tree = np.zeros(n, bool)
    in_tree[0] = True
    best = D[0].copy()
    best[0] = np.inf
    edges = np.empty(n - 1)
    for t in range(n - 1):
        cand = np.where(in_tree, np.inf, best)
        j = int(np.argmin(cand))
        edges[t] = cand[j]
        in_tree[j] = True
        np.minimum(best, D[j], out=best)
    return edges


#: Neighbours per sound of the graph whose spanning tree stands for the Euclidean MST above
#: LARGE_SOUNDS sounds (the K-graph of the Isomap residual variance: one search serves both).
MST_NEIGHBORS = 100


def _graph_mst_edges(prep: Prepared) -> np.ndarray:
    """Edge lengths of the minimum spanning tree of the embedding's K-NN graph (K =
    MST_NEIGHBORS, components joined by their shortest links): O(n K) memory. It equals the
    Euclidean MST whenever the K-graph holds every MST edge inside each component (an MST edge
    joins near neighbours; a 100-NN graph misses one only on very uneven samples)."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    graph, _ = prep.knn_graph(min(MST_NEIGHBORS, prep.n - 1))
    return np.sort(minimum_spanning_tree(graph).data)


def _persistence(prep: Prepared, *, n_landmarks: int = 300, threshold: float = 0.1,
                 max_dim: int = 2) -> dict:
    try:
        from ripser import ripser
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "persistent homology needs the 'ripser' package: pip install --no-deps "
            "ripser==0.6.15 (its only runtime needs are numpy, scipy and scikit-learn)"
        ) from exc
    n_landmarks = check_int(n_landmarks, "topology_landmarks", 10)
    threshold = check_fraction(threshold, "persistence_threshold")
    max_dim = check_int(max_dim, "max_dim", 1, 2)
    rng = prep.rng(37)
    idx, eps = prepared_farthest_points(prep, n_landmarks, int(rng.integers(prep.n)))
    Ds = prep.distances()[np.ix_(idx, idx)] if not prep.large else prep.row_distances(idx)[:, idx]
    L = float(Ds.max())
    if not L > 0:
        raise ParameterError("the embedding's sub-sample has zero diameter; nothing to measure")
    cut = min(3.0 * threshold, 1.0) * L
    res = ripser(Ds, distance_matrix=True, maxdim=max_dim, thresh=cut)
    diagrams = []
    for k, dg in enumerate(res["dgms"]):
        dg = np.asarray(dg, dtype=float).reshape(-1, 2) / L
        if k == 0:
            diagrams.append(dg)
            continue
        dg = dg.copy()
        dg[~np.isfinite(dg[:, 1]), 1] = cut / L
        diagrams.append(dg)
    mst = (_graph_mst_edges(prep) if prep.large else _mst_edges(prep.distances())) / L
    spacing = mst[mst > 1e-12]  # coincident sounds (zero edges) say nothing of the spacing
    gap = max(threshold, _GAP_FACTOR * float(np.median(spacing))) if spacing.size else threshold
    betti = [1 + int(np.sum(mst > gap))]
    cutoffs = [gap]
    max_pers = [float(mst.max()) if mst.size else 0.0]
    for k in range(1, max_dim + 1):
        pers = diagrams[k][:, 1] - diagrams[k][:, 0]
        cutoffs.append(max(threshold, eps / L))
        betti.append(int(np.sum(pers > cutoffs[-1])))
        max_pers.append(float(pers.max()) if pers.size else 0.0)
    extra = max(betti[0] - BOX_BETTI[0], 0) + sum(betti[1:])
    return {
        "betti": np.array(betti),
        "max_persistence": np.array(max_pers),
        "extra_features": int(extra),
        "diagrams": diagrams,
        "mst_edges": mst,
        "threshold": threshold,
        "long_lived_cutoffs": np.array(cutoffs),
        "covering_radius": eps / L,
        "scale": L,
        "landmarks": idx,
        "cut": cut / L,
    }


def persistence_summary(embedding, theta=None, *, n_landmarks: int = 300,
                        threshold: float = 0.1, max_dim: int = 2, random_state=0) -> dict:
    """Betti numbers of the embedding's point cloud with their persistence.

    See the module docstring for the definitions.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
    theta : ignored
        Accepted for a uniform call signature.
    n_landmarks : int
        Farthest-point sub-sample size for b1 and b2 (300).
    threshold : float
        Long-lived bars persist longer than this fraction of the sub-sample's diameter (0.1).
    max_dim : int
        Highest homology dimension (2).
    random_state : int
        Seeds the first landmark.

    Returns
    -------
    dict
        ``betti`` (np.ndarray, shape (max_dim + 1,), int: long-lived b0, b1, b2),
        ``max_persistence`` (np.ndarray, shape (max_dim + 1,): longest finite bar per
        dimension / L), ``extra_features`` (int), ``diagrams`` (list of np.ndarray, shape
        (n_bars, 2): (birth, death) / L per dimension, from the sub-sample; H0's infinite bar
        has death inf), ``mst_edges`` (np.ndarray: MST edge lengths / L over all sounds),
        ``threshold``, ``long_lived_cutoffs`` (np.ndarray, shape (max_dim + 1,): the
        persistence / L above which a bar of each dimension counts), ``covering_radius``
        (eps / L), ``scale`` (L, embedding units),
        ``landmarks`` (indices), ``cut`` (filtration cut / L).
    """
    X = np.asarray(embedding)
    dummy = np.arange(X.shape[0], dtype=float)[:, None] if X.ndim == 2 else np.zeros(0)
    prep = prepare(X, dummy, param_names=("index",), random_state=random_state)
    return _persistence(prep, n_landmarks=n_landmarks, threshold=threshold, max_dim=max_dim)
