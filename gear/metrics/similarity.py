"""Model-model similarity on the same sounds: linear CKA, debiased CKA and RSA.

- **Linear CKA** (Kornblith et al. 2019): ``||Y_c' X_c||_F^2 / (||X_c' X_c||_F ||Y_c' Y_c||_F)``
  with column-centred embeddings: 1 for embeddings equal up to an orthogonal map and an
  isotropic scaling, near 0 for unrelated ones (but biased upwards when dim is large against
  the number of sounds).
- **Debiased CKA** (Nguyen et al. 2021; the unbiased HSIC estimator of Song et al. 2012): the same
  ratio with the unbiased HSIC, ``[tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] /
  (n (n-3))``, K~ the linear Gram matrix with a zero diagonal: about 0 for independent
  embeddings at any dimension.
- **RSA**: Spearman correlation between the two models' Euclidean distance matrices (upper
  triangles), on a fixed random subset of ``rsa_sounds`` sounds (300 by default: 44 850
  pairs).

P-values: permutation tests (the sounds of one model shuffled, ``n_permutations`` times,
``p = (1 + #{null >= observed}) / (1 + n_permutations)``). For RSA the null is exact (a
Mantel test). For the two CKAs the statistic is exact, while the null is computed on each
embedding's first 16 principal components (exact for embeddings of at most 16 dimensions):
with the full Gram matrices a permutation costs n^2 per pair, too slow for 45 pairs and 99
permutations within the speed target (benchmarks/bench_metrics.py).

Above 5 000 sounds (``gear.neighbours.EXACT_MAX_SOUNDS``) no n x n Gram matrix is formed: the
CKAs use the D x D feature form (``||X'Y||_F^2``), the null features are principal-component
scores from the D x D covariance, and the permutations are processed in blocks; the values,
the RSA subset and the permutations drawn are those of the exact path.
"""
from __future__ import annotations

import itertools
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from gear.errors import ParameterError
from gear.neighbours import EXACT_MAX_SOUNDS

__all__ = ["linear_cka", "debiased_cka", "rsa", "similarity_rows", "SIMILARITY_COLUMNS",
           "SIMILARITY_METRICS"]

#: Columns of ``similarity.csv``.
SIMILARITY_COLUMNS = ("model_a", "model_b", "metric", "value", "p_value")
SIMILARITY_METRICS = ("linear_cka", "debiased_cka", "rsa")
_NULL_COMPONENTS = 16
#: Permutations of each similarity test.
N_PERMUTATIONS = 99
#: Above EXACT_MAX_SOUNDS sounds, the permuted copies of a model's null features are built in
#: blocks of at most this many values (n x 16 per permutation) instead of all 99 at once.
PERMUTATION_BLOCK = 4_000_000


def _centre(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ParameterError(f"an embedding must be 2-D (n_sounds, dim), got shape {X.shape}")
    return X - X.mean(axis=0)


def _cross(X: np.ndarray, Y: np.ndarray) -> float:
    """tr(K L) = ||X'Y||_F^2 for linear kernels, by the cheaper of the two forms."""
    n = X.shape[0]
    if X.shape[1] * Y.shape[1] <= n * n:
        return float(np.sum((X.T @ Y) ** 2))
    return float(np.sum((X @ X.T) * (Y @ Y.T)))


def linear_cka(X, Y) -> float:
    """Linear CKA of two embeddings of the same sounds, shape (n, d1) and (n, d2)."""
    X, Y = _centre(X), _centre(Y)
    if X.shape[0] != Y.shape[0]:
        raise ParameterError(f"the embeddings have {X.shape[0]} and {Y.shape[0]} sounds; pass the same sounds")
    denom = np.sqrt(_cross(X, X) * _cross(Y, Y))
    return float(_cross(X, Y) / denom) if denom > 0 else np.nan


def _hsic_unbiased(X: np.ndarray, Y: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC of linear kernels, in feature form (no n x n matrix)."""
    n = X.shape[0]
    kx, ky = np.einsum("ij,ij->i", X, X), np.einsum("ij,ij->i", Y, Y)  # Gram diagonals
    rx, ry = X @ X.sum(axis=0) - kx, Y @ Y.sum(axis=0) - ky  # row sums of K~, L~
    trace = _cross(X, Y) - float(kx @ ky)
    return (trace + rx.sum() * ry.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(rx @ ry)) / (n * (n - 3))


def debiased_cka(X, Y) -> float:
    """Debiased linear CKA (unbiased HSIC estimators), shape (n, d1) and (n, d2); n >= 4."""
    X, Y = _centre(X), _centre(Y)
    if X.shape[0] != Y.shape[0] or X.shape[0] < 4:
        raise ParameterError(f"need the same n >= 4 sounds in both embeddings, got {X.shape[0]} and {Y.shape[0]}")
    denom = np.sqrt(max(_hsic_unbiased(X, X), 0.0) * max(_hsic_unbiased(Y, Y), 0.0))
    return float(_hsic_unbiased(X, Y) / denom) if denom > 0 else np.nan


def _ranks_of_distances(d2: np.ndarray) -> np.ndarray:
    """Square matrix of the standardised ranks of the distances whose squares are ``d2``."""
    from scipy.spatial.distance import squareform
    from scipy.stats import rankdata

    ranks = rankdata(squareform(np.maximum(d2, 0.0), checks=False))
    ranks = (ranks - ranks.mean()) / (ranks.std() * np.sqrt(ranks.size))
    return squareform(ranks)


def _distance_ranks(X: np.ndarray) -> np.ndarray:
    G = X @ X.T
    g = np.diag(G)
    d2 = g[:, None] + g[None, :] - 2.0 * G
    np.fill_diagonal(d2, 0.0)
    return _ranks_of_distances(d2)


def rsa(X, Y) -> float:
    """Spearman correlation of the Euclidean distance matrices of two embeddings."""
    A, B = _distance_ranks(_centre(X)), _distance_ranks(_centre(Y))
    return float(np.sum(A * B) / 2.0)


def _null_features(X: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The first principal-component scores of a centred embedding, from its Gram matrix K."""
    if X.shape[1] <= _NULL_COMPONENTS:
        return X
    from scipy.sparse.linalg import eigsh

    values, vectors = eigsh(K, k=_NULL_COMPONENTS, which="LA", v0=np.ones(K.shape[0]))
    return vectors * np.sqrt(np.maximum(values, 0.0))


def _p_value(observed: float, null: np.ndarray) -> float:
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


class _Gram:
    """What CKA needs of one embedding: its centred linear Gram matrix, computed once."""

    def __init__(self, X: np.ndarray):
        self.K = X @ X.T  # X is centred: K is the centred Gram matrix
        n = X.shape[0]
        self.n = n
        self.diag = np.diag(self.K).copy()
        self.rows = self.K.sum(axis=1) - self.diag  # row sums of K~ (zero diagonal)
        self.norm = float(np.sqrt(np.vdot(self.K, self.K)))
        self.hsic_u = self.unbiased(self)

    def unbiased(self, other: "_Gram", product: Optional[float] = None) -> float:
        """Unbiased HSIC; ``product`` = <K, L>_F when already computed."""
        n = self.n
        product = float(np.vdot(self.K, other.K)) if product is None else product
        trace = product - float(self.diag @ other.diag)
        return (trace + self.rows.sum() * other.rows.sum() / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * float(self.rows @ other.rows)) / (n * (n - 3))

    def compare(self, other: "_Gram") -> Tuple[float, float]:
        """(linear CKA, debiased CKA) against another embedding's Gram matrix."""
        product = float(np.vdot(self.K, other.K))
        denom = self.norm * other.norm
        cka = product / denom if denom > 0 else np.nan
        denom = np.sqrt(max(self.hsic_u, 0.0) * max(other.hsic_u, 0.0))
        return cka, (float(self.unbiased(other, product) / denom) if denom > 0 else np.nan)


def _permuted(B: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Every row permutation of B side by side, shape (n, P * k)."""
    return B[perms].transpose(1, 0, 2).reshape(B.shape[0], -1)


def _cka_nulls(A: np.ndarray, B: np.ndarray, Bp: np.ndarray, perms: np.ndarray) -> Dict[str, np.ndarray]:
    """Linear and debiased CKA of A against the rows of B permuted, for every permutation
    (``Bp = _permuted(B, perms)``)."""
    n, P, kb = A.shape[0], len(perms), B.shape[1]
    cross = np.sum((A.T @ Bp).reshape(A.shape[1], P, kb) ** 2, axis=(0, 2))  # one GEMM
    norms = np.sqrt(np.sum((A.T @ A) ** 2) * np.sum((B.T @ B) ** 2))
    ka, kb_ = np.einsum("ij,ij->i", A, A), np.einsum("ij,ij->i", B, B)
    ra, rb = A @ A.sum(axis=0) - ka, B @ B.sum(axis=0) - kb_
    hsic = (cross - kb_[perms] @ ka + ra.sum() * rb.sum() / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (rb[perms] @ ra)) / (n * (n - 3))
    denom = np.sqrt(max(_hsic_unbiased(A, A), 0.0) * max(_hsic_unbiased(B, B), 0.0))
    return {"linear_cka": cross / norms if norms > 0 else np.full(P, np.nan),
            "debiased_cka": hsic / denom if denom > 0 else np.full(P, np.nan)}


def _permuted_ranks(ranks: np.ndarray, perms) -> np.ndarray:
    """The rank matrix under every permutation of the sounds, shape (P, m * m), float32."""
    ranks = ranks.astype(np.float32)
    return np.stack([ranks[np.ix_(p, p)].ravel() for p in perms])


def similarity_rows(embeddings: Mapping[str, np.ndarray], *, n_permutations: int = N_PERMUTATIONS,
                    rsa_sounds: int = 300, random_state: int = 0) -> List[dict]:
    """Linear CKA, debiased CKA and RSA for every pair of models, with permutation p-values.

    Parameters
    ----------
    embeddings : mapping of str -> np.ndarray, shape (n_sounds, dim)
        Every model's embedding of the same sounds, in the same order (n_sounds >= 4).
    n_permutations : int
        Permutations of each test (p-values >= 1 / (n_permutations + 1)).
    rsa_sounds : int
        Sounds in RSA's distance matrices (a fixed random subset when there are more).
    random_state : int

    Returns
    -------
    list of dict
        Rows ``model_a, model_b, metric, value, p_value`` (:data:`SIMILARITY_COLUMNS`), one per
        unordered pair and metric.
    """
    names = list(embeddings)
    if len(names) < 2:
        return []
    centred = {name: _centre(embeddings[name]) for name in names}
    sizes = {X.shape[0] for X in centred.values()}
    if len(sizes) != 1 or min(sizes) < 4:
        raise ParameterError(f"the embeddings have {sorted(sizes)} sounds; embed the same tone set (>= 4 sounds)")
    n = sizes.pop()
    rng = np.random.default_rng([random_state, 31])
    subset = np.sort(rng.choice(n, size=min(rsa_sounds, n), replace=False))
    if n > EXACT_MAX_SOUNDS:
        return _large_similarity_rows(centred, subset, rng, n_permutations)
    grams = {name: _Gram(X) for name, X in centred.items()}
    ranks = {}
    for name, gram in grams.items():
        G = gram.K[np.ix_(subset, subset)]
        g = np.diag(G)
        ranks[name] = _ranks_of_distances(g[:, None] + g[None, :] - 2.0 * G)
    small = {name: _null_features(X, grams[name].K) for name, X in centred.items()}
    perms = np.array([rng.permutation(n) for _ in range(n_permutations)]).reshape(-1, n)
    perms_rsa = [rng.permutation(subset.size) for _ in range(n_permutations)]
    stacks = {name: _permuted(small[name], perms) for name in names[1:]}
    rank_stacks = {name: _permuted_ranks(ranks[name], perms_rsa) for name in names[1:]}
    rows = []
    for a, b in itertools.combinations(names, 2):
        cka, dcka = grams[a].compare(grams[b])
        values = {"linear_cka": cka, "debiased_cka": dcka, "rsa": float(np.vdot(ranks[a], ranks[b]) / 2.0)}
        nulls = _cka_nulls(small[a], small[b], stacks[b], perms)
        nulls["rsa"] = rank_stacks[b] @ ranks[a].astype(np.float32).ravel() / 2.0
        for metric in SIMILARITY_METRICS:
            rows.append({"model_a": a, "model_b": b, "metric": metric, "value": values[metric],
                         "p_value": _p_value(values[metric], nulls[metric])})
    return rows


def _pc_scores(X: np.ndarray) -> np.ndarray:
    """The first principal-component scores of a centred embedding from its D x D covariance
    (the large-n twin of :func:`_null_features`: the same subspace, no n x n Gram matrix)."""
    if X.shape[1] <= _NULL_COMPONENTS:
        return X
    from scipy.sparse.linalg import eigsh

    _, vectors = eigsh(X.T @ X, k=_NULL_COMPONENTS, which="LA", v0=np.ones(X.shape[1]))
    return X @ vectors


def _large_similarity_rows(centred: Dict[str, np.ndarray], subset: np.ndarray, rng,
                           n_permutations: int) -> List[dict]:
    """:func:`similarity_rows` above EXACT_MAX_SOUNDS sounds, in O(n (D + 16 c)) memory: CKA in
    feature form (D x D cross-covariances), the nulls' permutations in blocks of c, RSA on the
    same ``rsa_sounds`` subset. Same statistics and the same random draws as the n x n path."""
    names = list(centred)
    n = next(iter(centred.values())).shape[0]
    perms = np.array([rng.permutation(n) for _ in range(n_permutations)]).reshape(-1, n)
    perms_rsa = [rng.permutation(subset.size) for _ in range(n_permutations)]
    ranks = {name: _distance_ranks(X[subset]) for name, X in centred.items()}
    small = {name: _pc_scores(X) for name, X in centred.items()}
    block = max(1, PERMUTATION_BLOCK // (n * _NULL_COMPONENTS))
    rows = []
    for a, b in itertools.combinations(names, 2):
        values = {"linear_cka": linear_cka(centred[a], centred[b]), "debiased_cka": debiased_cka(centred[a], centred[b]),
                  "rsa": float(np.vdot(ranks[a], ranks[b]) / 2.0)}
        parts = [_cka_nulls(small[a], small[b], _permuted(small[b], perms[lo:lo + block]), perms[lo:lo + block])
                 for lo in range(0, len(perms), block)]
        nulls = {metric: np.concatenate([part[metric] for part in parts]) for metric in ("linear_cka", "debiased_cka")}
        nulls["rsa"] = _permuted_ranks(ranks[b], perms_rsa) @ ranks[a].astype(np.float32).ravel() / 2.0
        rows += [{"model_a": a, "model_b": b, "metric": metric, "value": values[metric],
                  "p_value": _p_value(values[metric], nulls[metric])} for metric in SIMILARITY_METRICS]
    return rows


def similarity_matrix(rows: List[dict], metric: str) -> Dict[str, object]:
    """``{"models": [...], "values": square array}`` of one metric (1 on the diagonal)."""
    models = sorted({r["model_a"] for r in rows} | {r["model_b"] for r in rows})
    index = {m: i for i, m in enumerate(models)}
    M = np.eye(len(models))
    for r in rows:
        if r["metric"] == metric:
            M[index[r["model_a"]], index[r["model_b"]]] = M[index[r["model_b"]], index[r["model_a"]]] = r["value"]
    return {"models": models, "values": M}
