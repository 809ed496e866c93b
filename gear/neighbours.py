"""K-nearest-neighbour search for GEAR's analysis, exact for small n and approximate for large n.

Up to :data:`EXACT_MAX_SOUNDS` sounds the search is scikit-learn's exact one (the path GEAR has
always used, so results there do not change). Above it, a faiss HNSW index (Malkov & Yashunin
2018) is built; embeddings wider than :data:`HNSW_MAX_DIM` are first projected on their
leading principal components (PCA fitted on a random sample of :data:`PCA_SAMPLE` sounds),
which keeps the search fast for 4 096-d models. Both steps are approximate: :func:`recall_at_k`
measures the recall against an exact search on a sample of queries, in the original space.

Memory is O(n K) for the neighbour lists plus the index (n x min(dim, HNSW_MAX_DIM) float32 and
about ``2 * HNSW_M`` links per sound): no n x n matrix is formed.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gear.errors import ParameterError

__all__ = [
    "EXACT_MAX_SOUNDS",
    "ALGORITHMS",
    "KNeighbours",
    "choose_algorithm",
    "search",
    "exact_search",
    "recall_at_k",
    "iter_search",
]

#: Largest n searched exactly by default (GEAR's historical path).
EXACT_MAX_SOUNDS = 5000
#: Neighbour search methods: "auto" picks "exact" up to EXACT_MAX_SOUNDS sounds, else "hnsw".
ALGORITHMS = ("auto", "exact", "hnsw")
#: Embeddings wider than this are PCA-projected to this many dimensions before HNSW.
HNSW_MAX_DIM = 256
#: Sounds used to fit that PCA, and its power iterations (randomized SVD). On the naive
#: embedding (4 096-d) of 10 000 tones, 4 000 sounds and 4 iterations keep recall@40 at 0.9999
#: for a quarter of the CPU time of 10 000 sounds and scikit-learn's 7 iterations.
PCA_SAMPLE = 4000
PCA_ITERATIONS = 4
#: HNSW graph degree, construction and search beam widths (search beam: at least 2 K).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


@dataclasses.dataclass(frozen=True)
class KNeighbours:
    """Each sound's K nearest neighbours, self excluded, sorted by distance.

    Attributes
    ----------
    distances : np.ndarray, shape (n_sounds, K), float64
        Euclidean distances (in the searched space: the PCA projection for wide HNSW inputs).
    indices : np.ndarray, shape (n_sounds, K), int64
    algorithm : str
        ``"exact"`` or ``"hnsw"``.
    """

    distances: np.ndarray
    indices: np.ndarray
    algorithm: str

    @property
    def n_neighbors(self) -> int:
        return int(self.indices.shape[1])

    def first(self, n_neighbors: int) -> "KNeighbours":
        """The ``n_neighbors`` nearest of these (a view)."""
        if n_neighbors > self.n_neighbors:
            raise ParameterError(f"asked for {n_neighbors} neighbours of a {self.n_neighbors}-neighbour search")
        return KNeighbours(self.distances[:, :n_neighbors], self.indices[:, :n_neighbors], self.algorithm)


def choose_algorithm(n_sounds: int, algorithm: str = "auto") -> str:
    """The search method for ``n_sounds`` sounds: ``algorithm`` unless it is ``"auto"``."""
    if algorithm not in ALGORITHMS:
        raise ParameterError(f"neighbour algorithm={algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if algorithm != "auto":
        return algorithm
    return "exact" if n_sounds <= EXACT_MAX_SOUNDS else "hnsw"


def _drop_self(distances: np.ndarray, indices: np.ndarray, own=None):
    """Remove each row's own index (``own``, default the row number) from a (K + 1)-neighbour
    search; rows where self was not returned (ties at distance 0, or an approximate miss) lose
    their farthest instead."""
    n = indices.shape[0]
    own = np.arange(n) if own is None else own
    is_self = indices == own[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    is_self &= np.cumsum(is_self, axis=1) == 1  # self listed twice (approximate search): drop one
    shape = (n, indices.shape[1] - 1)
    return distances[~is_self].reshape(shape), indices[~is_self].reshape(shape)


def exact_search(features: np.ndarray, n_neighbors: int, *, queries=None):
    """scikit-learn's exact search: (distances, indices) of the ``n_neighbors`` nearest
    (self included when ``queries`` is None). Memory is bounded by scikit-learn's chunking."""
    from sklearn.neighbors import NearestNeighbors

    model = NearestNeighbors(n_neighbors=n_neighbors).fit(features)
    return model.kneighbors(features if queries is None else queries)


def _pca_project(features: np.ndarray, n_components: int, random_state: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(random_state)
    n = features.shape[0]
    sample = features[np.sort(rng.choice(n, min(n, PCA_SAMPLE), replace=False))]
    pca = PCA(n_components=n_components, svd_solver="randomized", iterated_power=PCA_ITERATIONS,
              random_state=random_state).fit(sample)
    out = np.empty((n, n_components), np.float32)
    for start in range(0, n, 8192):  # chunks bound the float64 temporaries
        out[start:start + 8192] = pca.transform(features[start:start + 8192])
    return out


def _hnsw_index(features: np.ndarray, n_neighbors: int, random_state: int):
    """A faiss HNSW index of the features (PCA-projected when wide) and the searched data."""
    import faiss

    data = np.ascontiguousarray(features, dtype=np.float32)
    if data.shape[1] > HNSW_MAX_DIM:
        data = _pca_project(data, HNSW_MAX_DIM, random_state)
    index = faiss.IndexHNSWFlat(data.shape[1], HNSW_M)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(data)
    index.hnsw.efSearch = max(HNSW_EF_SEARCH, 2 * n_neighbors)
    return index, data


def _hnsw_query(index, queries: np.ndarray, n_neighbors: int):
    squared, indices = index.search(queries, n_neighbors)
    missing = indices < 0
    if missing.any():  # fewer than K reachable: cannot happen for K < n on a connected HNSW graph
        raise ParameterError(f"the HNSW index returned fewer than {n_neighbors} neighbours for {int(missing.any(axis=1).sum())} sounds; use algorithm='exact'")
    return np.sqrt(np.maximum(squared, 0.0)).astype(np.float64), indices.astype(np.int64)


def _hnsw_search(features: np.ndarray, n_neighbors: int, random_state: int):
    index, data = _hnsw_index(features, n_neighbors, random_state)
    return _hnsw_query(index, data, n_neighbors)


def search(features, n_neighbors: int, *, algorithm: str = "auto", random_state: int = 0) -> KNeighbours:
    """Each sound's ``n_neighbors`` nearest neighbours (self excluded).

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features)
        Finite values (checked by the caller).
    n_neighbors : int
        K, in [1, n_sounds - 1].
    algorithm : {"auto", "exact", "hnsw"}
        ``"auto"``: exact up to :data:`EXACT_MAX_SOUNDS` sounds, HNSW above.
    random_state : int
        Seed of the PCA sample and of faiss.

    Returns
    -------
    KNeighbours
    """
    features = np.asarray(features)
    algorithm = choose_algorithm(features.shape[0], algorithm)
    if algorithm == "exact":
        distances, indices = exact_search(features, n_neighbors + 1)
    else:
        distances, indices = _hnsw_search(features, n_neighbors + 1, random_state)
    distances, indices = _drop_self(distances, indices)
    return KNeighbours(distances, indices, algorithm)


def iter_search(features, n_neighbors: int, *, chunk_size: int = 1000, algorithm: str = "auto",
                random_state: int = 0):
    """:func:`search` in blocks of queries, for K too large to hold n x K at once.

    The index (exact or HNSW, chosen as in :func:`search`) is built once; each block of
    ``chunk_size`` query sounds is searched in turn.

    Yields
    ------
    rows : np.ndarray, shape (m,), int64
        The query sounds of this block (consecutive).
    neighbours : KNeighbours
        Their ``n_neighbors`` nearest neighbours, self excluded; shape (m, n_neighbors).
    """
    features = np.asarray(features)
    n = features.shape[0]
    algorithm = choose_algorithm(n, algorithm)
    if algorithm == "exact":
        from sklearn.neighbors import NearestNeighbors

        model = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(features)
        query, data = (lambda q: model.kneighbors(q)), features
    else:
        index, data = _hnsw_index(features, n_neighbors + 1, random_state)
        query = lambda q: _hnsw_query(index, q, n_neighbors + 1)  # noqa: E731
    for start in range(0, n, chunk_size):
        rows = np.arange(start, min(n, start + chunk_size))
        distances, indices = _drop_self(*query(data[rows]), own=rows)
        yield rows, KNeighbours(distances, indices, algorithm)


def recall_at_k(features, neighbours: KNeighbours, *, n_queries: int = 1000, random_state: int = 0) -> float:
    """Fraction of the true K nearest neighbours (exact search in the original space, self
    excluded) that ``neighbours`` found, averaged over ``n_queries`` random sounds.

    Returns
    -------
    float in [0, 1]
    """
    features = np.asarray(features)
    n = features.shape[0]
    k = neighbours.n_neighbors
    queries = np.sort(np.random.default_rng(random_state).choice(n, min(n, n_queries), replace=False))
    _, truth = _drop_self(*exact_search(features, k + 1, queries=features[queries]), own=queries)
    found = neighbours.indices[queries]
    hits = [np.intersect1d(a, b).size for a, b in zip(truth, found)]
    return float(np.sum(hits) / (len(queries) * k))
