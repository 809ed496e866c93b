"""Intrinsic dimension (Isomap residual variance) and faithfulness (trustworthiness, continuity).

Definitions
-----------
**Isomap residual variance** (Tenenbaum, de Silva & Langford 2000). The K-nearest-neighbour graph
of the embedding (Euclidean edge lengths, K = ``n_neighbors`` = 100 as in GEAR's Isomap; a graph
with several connected components is joined, as scikit-learn's Isomap does, by the shortest
edge between every pair of components, with a :class:`DisconnectedGraphWarning`) gives geodesic
distances ``D_G``; classical MDS of ``D_G`` gives coordinates ``Y_k`` in k = 1..5 dimensions, and

    RV(k) = 1 - R^2(D_G, D_Yk),

``R`` the Pearson correlation over pairs of sounds. A 1-D strand has RV(1) ~ 0, a flat 2-D sheet
RV(2) ~ 0, a 3-D volume RV(3) ~ 0. With ``n_landmarks`` set, geodesics are taken from that many
landmarks (farthest-point sampling) only, coordinates by landmark MDS (de Silva & Tenenbaum
2004) and R over (landmark, sound) pairs: the same quantity, estimated at a fraction of the cost.

**Intrinsic dimension** (elbow rule): the smallest k in 1..5 whose residual variance is within
``tolerance`` (0.05) of RV(5), i.e. further components explain less than 5 % more of the
variance of the geodesic distances. RV(5) itself says how well 5 components capture the
geometry (large for a rough or folded embedding Isomap cannot unfold at this K).

**Trustworthiness** ``T(k)`` (Venna & Kaski 2001, as ``sklearn.manifold.trustworthiness``) between
the parameter space (parameters on their chosen scales, standardised) and the embedding:
``T = 1 - 2 / (n k (2n - 3k - 1)) sum_i sum_{j in U_i} (r(i, j) - k)``, with ``U_i`` the k nearest
neighbours of i in the *embedding* that are not among its k nearest in *parameter space* and
``r(i, j)`` the rank of j among i's neighbours in parameter space. It penalises false
neighbours: sounds the embedding puts close together although their parameters differ.
**Continuity** is the same with the two spaces swapped (it penalises neighbours in parameter
space that the embedding tears apart). Both are 1 for a perfect neighbourhood match and ~0.5
for random neighbourhoods. Ranks count the points *strictly* closer (``r = 1 + #{l : d_il <
d_ij}``, distances equal to 1e-9 of the largest counting as ties), so ties (grids have many)
never count as errors; on tie-free data this equals scikit-learn's value.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

from gear.errors import ParameterError

from ._inputs import PARAM_NAMES, Prepared, check_fraction, check_int, prepare

__all__ = [
    "isomap_residual_variance",
    "intrinsic_dimension",
    "trustworthiness_continuity",
    "farthest_point_sample",
    "MAX_ISOMAP_COMPONENTS",
]

#: Residual variance is computed for 1..MAX_ISOMAP_COMPONENTS components.
MAX_ISOMAP_COMPONENTS = 5
#: Landmarks of the residual variance above LARGE_SOUNDS sounds when none are asked for.
LARGE_LANDMARKS = 500
#: Query sounds of trustworthiness and continuity above LARGE_SOUNDS sounds (a seeded random
#: sample; each query's ranks are still over all n sounds).
TRUST_QUERIES = 2000


def _disconnected_warning_class():
    try:  # the core analysis module's warning, so that one filter silences both
        from gear.analysis import DisconnectedGraphWarning
    except ImportError:  # pragma: no cover - the analysis module ships with gear
        DisconnectedGraphWarning = UserWarning
    return DisconnectedGraphWarning


def farthest_point_sample(D: np.ndarray, m: int, start: int):
    """Greedy farthest-point sample of ``m`` points from a distance matrix.

    Parameters
    ----------
    D : np.ndarray, shape (n, n), float
        Distance matrix.
    m : int
        Sample size (<= n).
    start : int
        Index of the first point.

    Returns
    -------
    idx : np.ndarray, shape (<= m,), int64
        Sample, in insertion order; it stops early once every point coincides with a sampled
        one (duplicates are never sampled twice).
    radius : float
        Covering radius: every point lies within this distance of the sample.
    """
    return _farthest_points(lambda i: D[i], D.shape[0], m, start)


def _farthest_points(row, n: int, m: int, start: int):
    """:func:`farthest_point_sample` with the distance rows given by ``row(i)`` (shape (n,)):
    O(n) memory when the rows are computed on demand."""
    m = min(int(m), n)
    idx = np.empty(m, np.int64)
    idx[0] = start
    d = np.array(row(start), dtype=np.float64).ravel()
    tiny = 1e-12 * max(float(d.max()), 1e-300)
    for t in range(1, m):
        nxt = int(np.argmax(d))
        if d[nxt] <= tiny:
            return idx[:t], 0.0
        idx[t] = nxt
        np.minimum(d, np.ravel(row(nxt)), out=d)
    return idx, float(d.max())


def prepared_farthest_points(prep: Prepared, m: int, start: int):
    """:func:`farthest_point_sample` of a prepared embedding: from its distance matrix up to
    LARGE_SOUNDS sounds (the historical path), from distance rows computed on demand above."""
    if prep.large:
        return _farthest_points(lambda i: prep.row_distances(i)[0], prep.n, m, start)
    return farthest_point_sample(prep.distances(), m, start)


def _knn_graph(D: np.ndarray, k: int):
    """Symmetric K-nearest-neighbour graph (CSR, Euclidean edge weights) and its component
    count, joined into one component by the shortest edge between each pair of components."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = D.shape[0]
    Dm = D.copy()
    np.fill_diagonal(Dm, np.inf)
    nbr = np.argpartition(Dm, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = nbr.ravel()
    w = D[rows, cols]
    # zero-length edges (duplicate points) would vanish from a sparse matrix: keep them tiny
    w = np.maximum(w, 1e-12 * max(float(D.max()), 1e-300))
    G = coo_matrix((w, (rows, cols)), shape=(n, n)).tocsr()
    G = G.maximum(G.T)
    n_comp, labels = connected_components(G, directed=False)
    if n_comp > 1:
        extra_r, extra_c, extra_w = [], [], []
        members = [np.flatnonzero(labels == c) for c in range(n_comp)]
        for a in range(n_comp):
            for b in range(a + 1, n_comp):
                sub = D[np.ix_(members[a], members[b])]
                i, j = np.unravel_index(int(np.argmin(sub)), sub.shape)
                extra_r.append(members[a][i])
                extra_c.append(members[b][j])
                extra_w.append(max(float(sub[i, j]), 1e-12 * max(float(D.max()), 1e-300)))
        E = coo_matrix((extra_w + extra_w, (extra_r + extra_c, extra_c + extra_r)),
                       shape=(n, n)).tocsr()
        G = G.maximum(E)
    return G, n_comp


def _top_eigen(B: np.ndarray, k: int, seed: int):
    """Top-k eigenpairs of a symmetric matrix (Lanczos with a seeded start vector)."""
    from scipy.sparse.linalg import eigsh

    n = B.shape[0]
    k = min(k, n - 1)
    if n <= 600:
        w, V = np.linalg.eigh(B)
        return w[::-1][:k], V[:, ::-1][:, :k]
    from threadpoolctl import threadpool_limits

    v0 = np.random.default_rng(seed).standard_normal(n)
    with threadpool_limits(limits=1, user_api="blas"):  # memory-bound mat-vecs
        w, V = eigsh(B, k=k, which="LA", v0=v0)
    order = np.argsort(w)[::-1]
    return w[order], V[:, order]


def _corr2(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b) / den) ** 2 if den > 0 else 0.0


def _isomap_rv(prep: Prepared, *, n_neighbors: int = 100, n_landmarks: Optional[int] = None,
               max_components: int = MAX_ISOMAP_COMPONENTS) -> dict:
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial.distance import cdist, pdist

    n = prep.n
    n_neighbors = check_int(n_neighbors, "isomap_neighbors", 1)
    if n_neighbors > n - 1:
        warnings.warn(
            f"isomap_neighbors={n_neighbors} >= n_sounds={n}; using {n - 1}. Pass a smaller "
            f"isomap_neighbors to silence this warning",
            UserWarning,
            stacklevel=3,
        )
        n_neighbors = n - 1
    if n_landmarks is not None:
        n_landmarks = check_int(n_landmarks, "isomap_landmarks", max_components + 2)
        if n_landmarks >= n:
            n_landmarks = None
    if prep.large:  # O(n K): the sparse graph of a neighbour search, landmark MDS
        G, n_comp = prep.knn_graph(n_neighbors)
        n_landmarks = LARGE_LANDMARKS if n_landmarks is None else n_landmarks
    else:
        G, n_comp = _knn_graph(prep.distances(), n_neighbors)
    if n_comp > 1:
        warnings.warn(
            f"the {n_neighbors}-nearest-neighbour graph of the embedding has {n_comp} connected "
            f"components; they were joined by their shortest edges (as scikit-learn's Isomap "
            f"does), so geodesic distances between components are straight-line jumps. Raise "
            f"isomap_neighbors to connect the graph",
            _disconnected_warning_class(),
            stacklevel=3,
        )
    rng = prep.rng(23)
    if n_landmarks is None:
        DG = dijkstra(G, directed=False)
        sq = DG**2
        # double centring: B = -1/2 H sq H
        B = -0.5 * (sq - sq.mean(axis=0)[None, :] - sq.mean(axis=1)[:, None] + sq.mean())
        w, V = _top_eigen(B, max_components, int(rng.integers(2**31)))
        keep = w > 0
        Y = np.zeros((n, max_components))
        Y[:, : int(keep.sum())] = V[:, keep] * np.sqrt(w[keep])
        iu = np.triu_indices(n, 1)
        target = DG[iu]
        rv = [1.0 - _corr2(target, pdist(Y[:, :k])) for k in range(1, max_components + 1)]
        landmarks = None
    else:
        landmarks, _ = prepared_farthest_points(prep, n_landmarks, int(rng.integers(n)))
        DL = dijkstra(G, directed=False, indices=landmarks)  # (m, n)
        sq = DL**2
        Delta = sq[:, landmarks]
        m = landmarks.size
        B = -0.5 * (Delta - Delta.mean(axis=0)[None, :] - Delta.mean(axis=1)[:, None]
                    + Delta.mean())
        w, V = np.linalg.eigh(B)
        w, V = w[::-1][:max_components], V[:, ::-1][:, :max_components]
        keep = w > 0
        Y = np.zeros((n, max_components))
        pinv = V[:, keep] / np.sqrt(w[keep])  # (m, k)
        Y[:, : int(keep.sum())] = -0.5 * (sq - Delta.mean(axis=1)[:, None]).T @ pinv
        mask = np.ones((m, n), bool)
        mask[np.arange(m), landmarks] = False
        target = DL[mask]
        rv = [1.0 - _corr2(target, cdist(Y[landmarks, :k], Y[:, :k])[mask])
              for k in range(1, max_components + 1)]
    return {
        "residual_variance": np.clip(np.array(rv), 0.0, 1.0),
        "n_components": np.arange(1, max_components + 1),
        "n_graph_components": int(n_comp),
        "n_neighbors": n_neighbors,
        "landmarks": landmarks,
        "coordinates": Y,
    }


def intrinsic_dimension(residual_variance, *, tolerance: float = 0.05) -> int:
    """Elbow of a residual-variance curve: the smallest k with RV(k) <= RV(k_max) + tolerance.

    Parameters
    ----------
    residual_variance : array-like, shape (k_max,), float
        RV(1), ..., RV(k_max).
    tolerance : float
        Residual variance still allowed above the last value (0.05).

    Returns
    -------
    int
        Estimated intrinsic dimension in [1, k_max].
    """
    rv = np.asarray(residual_variance, dtype=float).ravel()
    if rv.size == 0 or not np.all(np.isfinite(rv)):
        raise ParameterError("residual_variance must be a non-empty finite 1-D array")
    tolerance = check_fraction(tolerance, "id_tolerance")
    return int(np.flatnonzero(rv <= rv[-1] + tolerance)[0]) + 1


def isomap_residual_variance(embedding, theta=None, *, n_neighbors: int = 100,
                             n_landmarks: Optional[int] = None, tolerance: float = 0.05,
                             random_state=0) -> dict:
    """Isomap residual variance for 1..5 components and the intrinsic dimension it implies.

    See the module docstring for the definitions.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
    theta : ignored
        Accepted for a uniform call signature; the residual variance uses the embedding only.
    n_neighbors : int
        K of the neighbour graph (100, as GEAR's Isomap).
    n_landmarks : int or None
        Landmark Isomap with this many landmarks (None: exact, all pairs).
    tolerance : float
        Of the elbow rule (:func:`intrinsic_dimension`).
    random_state : int
        Seeds the eigen-solver's start vector and the first landmark.

    Returns
    -------
    dict
        ``residual_variance`` (np.ndarray, shape (5,)), ``n_components`` (1..5),
        ``intrinsic_dimension`` (int), ``n_graph_components`` (connected components of the
        K-graph before joining), ``n_neighbors`` (the K used), ``landmarks`` (indices or None),
        ``coordinates`` (np.ndarray, shape (n_sounds, 5): the Isomap coordinates).
    """
    X = np.asarray(embedding)
    dummy = np.arange(X.shape[0], dtype=float)[:, None] if X.ndim == 2 else None
    prep = prepare(X, dummy if dummy is not None else np.zeros(0), param_names=("index",),
                   random_state=random_state)
    out = _isomap_rv(prep, n_neighbors=n_neighbors, n_landmarks=n_landmarks)
    out["intrinsic_dimension"] = intrinsic_dimension(out["residual_variance"],
                                                     tolerance=tolerance)
    return out


def _row_penalty(sorted_orig: np.ndarray, orig_at_nbrs: np.ndarray, k: int, tol: float) -> float:
    """One sound's trustworthiness penalty: sum over its k embedding neighbours of their rank
    in the original space minus k, where positive (``sorted_orig``: its sorted distances in the
    original space, self as -inf)."""
    r = np.searchsorted(sorted_orig, orig_at_nbrs - tol, side="left")  # 1 + #strictly closer
    excess = r - k
    return float(excess[excess > 0].sum())


def _trust(D_orig: np.ndarray, D_emb: np.ndarray, k: int) -> float:
    """Trustworthiness of ``D_emb``'s k-neighbourhoods w.r.t. ``D_orig`` (min-rank ties)."""
    n = D_orig.shape[0]
    De = D_emb.copy()
    np.fill_diagonal(De, np.inf)
    nbr = np.argpartition(De, k - 1, axis=1)[:, :k]
    Do = D_orig.copy()
    np.fill_diagonal(Do, -np.inf)
    Ds = np.sort(Do, axis=1)
    tol = 1e-9 * float(np.max(D_orig))  # distances equal up to rounding are ties
    penalty = 0.0
    for i in range(n):
        penalty += _row_penalty(Ds[i], Do[i, nbr[i]], k, tol)
    return 1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def _trust_sampled(prep: Prepared, k: int, *, n_queries: int = TRUST_QUERIES, chunk: int = 200) -> dict:
    """Trustworthiness and continuity above LARGE_SOUNDS sounds: the mean penalty over a seeded
    sample of ``n_queries`` query sounds (ranks over all n sounds), scaled to n; memory
    O(chunk n). Also their standard errors from the sample."""
    from sklearn.metrics.pairwise import euclidean_distances

    n = prep.n
    queries = np.sort(prep.rng(29).choice(n, size=min(n_queries, n), replace=False))
    penalties = np.zeros((queries.size, 2))  # trustworthiness, continuity
    # ties: 1e-9 of the largest distance, bounded by the extent of each space
    tol = {s: 1e-9 * float(np.linalg.norm(np.ptp(v, axis=0))) for s, v in (("z", prep.z), ("X", prep.X))}
    for lo in range(0, queries.size, chunk):
        rows = queries[lo:lo + chunk]
        Dz, De = euclidean_distances(prep.z[rows], prep.z), prep.row_distances(rows)
        for D in (Dz, De):
            D[np.arange(rows.size), rows] = np.nan
        for c, (orig, emb, key) in enumerate(((Dz, De, "z"), (De, Dz, "X"))):
            nbr = np.argpartition(np.where(np.isnan(emb), np.inf, emb), k - 1, axis=1)[:, :k]
            ranked = np.sort(np.where(np.isnan(orig), -np.inf, orig), axis=1)
            for i in range(rows.size):
                penalties[lo + i, c] = _row_penalty(ranked[i], orig[i, nbr[i]], k, tol[key])
    scale = 2.0 / (k * (2.0 * n - 3.0 * k - 1.0))  # per-sound penalty -> 1 - T
    values = 1.0 - scale * penalties.mean(axis=0)
    errors = scale * penalties.std(axis=0, ddof=1) / np.sqrt(queries.size)
    return {"trustworthiness": float(values[0]), "continuity": float(values[1]),
            "trustworthiness_se": float(errors[0]), "continuity_se": float(errors[1]),
            "n_queries": int(queries.size)}


def _param_distances(prep: Prepared) -> np.ndarray:
    from scipy.spatial.distance import pdist, squareform

    return squareform(pdist(prep.z))


def _trust_cont(prep: Prepared, *, n_neighbors: int = 10) -> dict:
    k = check_int(n_neighbors, "trust_neighbors", 1)
    if not k < prep.n / 2:
        raise ParameterError(
            f"trust_neighbors={k} must be < n_sounds / 2 = {prep.n / 2:g}; lower it"
        )
    if prep.large:
        return dict(_trust_sampled(prep, k), n_neighbors=k)
    Dz = _param_distances(prep)
    De = prep.distances()
    return {"trustworthiness": _trust(Dz, De, k), "continuity": _trust(De, Dz, k),
            "n_neighbors": k}


def trustworthiness_continuity(embedding, theta, *, param_names: Sequence[str] = PARAM_NAMES,
                               scales=None, n_neighbors: int = 10, random_state=0) -> dict:
    """Trustworthiness and continuity between parameter space and the embedding.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
    theta : np.ndarray, shape (n_sounds, n_params), float
    param_names, scales
        As in :func:`gear.disentangle.disentanglement_metrics`.
    n_neighbors : int
        Neighbourhood size k (10).
    random_state : ignored
        Nothing here is random.

    Returns
    -------
    dict
        ``trustworthiness`` and ``continuity`` (floats, 1 = neighbourhoods preserved, ~0.5 =
        random), ``n_neighbors``.
    """
    prep = prepare(embedding, theta, param_names=param_names, scales=scales,
                   random_state=random_state)
    return _trust_cont(prep, n_neighbors=n_neighbors)
