"""Learning weighted distances that agree with human dissimilarity ratings.

The model (Thoret et al. 2021; Pascal & Lagrange 2024) weights each feature of a
time-averaged representation ``Psi``::

    d_w(a_i, a_j)^2 = sum_k (Psi(a_i)_k - Psi(a_j)_k)^2 / w_k^2

and learns ``w`` so that the Pearson correlation ``P(d_w^2, s)`` with the averaged
ratings ``s`` is maximal. With ``v = 1 / w^2 >= 0`` the squared distances are linear in
``v``: ``d_v^2 = X v`` where ``X`` (``n_pairs x n_features``) holds the squared feature
differences of every pair of sounds. The correlation does not change when ``v`` is scaled,
so the problem is the maximisation of a cosine over a convex cone, whose global optimum is
the Euclidean projection of the centred ratings onto the cone spanned by the centred
columns of ``X`` (a nonnegative least-squares problem). :func:`solve_exact` computes it
and returns a Karush-Kuhn-Tucker certificate; :func:`solve_faithful` reproduces the
reference L-BFGS-B procedure on ``w``; :func:`solve_pearson_d` maximises ``P(d_w, s)``
(distances, not squared) by L-BFGS-B started from the exact solution.
:class:`MetricLearner` wraps the three in a scikit-learn estimator.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Optional, Tuple

import numpy as np
import scipy.linalg
import scipy.optimize
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning

from threadpoolctl import ThreadpoolController

from gear.errors import ParameterError

__all__ = [
    "MODES",
    "Certificate",
    "Solution",
    "MetricLearner",
    "pair_differences",
    "ratings_vector",
    "pearson",
    "explained_variance",
    "nnls",
    "solve_exact",
    "solve_faithful",
    "solve_pearson_d",
    "faithful_objective",
    "faithful_start",
    "pearson_d_objective",
    "cone_certificate",
    "ConeProblem",
]

#: Learning modes of :class:`MetricLearner`.
MODES = ("exact", "faithful-warm", "faithful-random", "pearson-d")

#: Machine epsilon added to the NNLS fit in the reference warm start, w = (x + eps)^(-1/2).
WARM_START_EPS = float(np.finfo(float).eps)


# ----------------------------------------------------------------------------- helpers


def pair_differences(features: np.ndarray) -> np.ndarray:
    """Squared feature differences of every pair of sounds.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features), float
        One time-averaged representation per sound.

    Returns
    -------
    np.ndarray, shape (n_sounds * (n_sounds - 1) / 2, n_features), float64
        Row ``p`` is ``(features[i] - features[j]) ** 2`` for the ``p``-th pair ``i < j``
        in the order of ``np.triu_indices(n_sounds, k=1)`` (row-major upper triangle).
    """
    features = _check_features(features)
    i, j = np.triu_indices(features.shape[0], k=1)
    diff = features[i] - features[j]
    np.square(diff, out=diff)
    return diff


def ratings_vector(ratings, n_sounds: Optional[int] = None) -> np.ndarray:
    """Upper-triangle vector of a dissimilarity matrix (or a vector, checked).

    Parameters
    ----------
    ratings : array-like, shape (n_sounds, n_sounds) or (n_pairs,)
        Square matrix (upper-triangular or symmetric; the strict upper triangle is used)
        or its strict upper triangle in row-major order.
    n_sounds : int, optional
        Expected number of sounds.

    Returns
    -------
    np.ndarray, shape (n_pairs,), float64
    """
    arr = np.asarray(ratings, dtype=float)
    if arr.ndim == 2:
        if arr.shape[0] != arr.shape[1]:
            raise ParameterError(
                f"ratings matrix has shape {arr.shape}; it must be square (n_sounds x n_sounds), "
                "one row and one column per sound"
            )
        if n_sounds is not None and arr.shape[0] != n_sounds:
            raise ParameterError(
                f"ratings matrix is {arr.shape[0]} x {arr.shape[0]} but there are {n_sounds} "
                "sounds; give one row per sound"
            )
        vec = arr[np.triu_indices(arr.shape[0], k=1)]
    elif arr.ndim == 1:
        vec = arr
        if n_sounds is not None and vec.size != n_sounds * (n_sounds - 1) // 2:
            raise ParameterError(
                f"ratings vector has {vec.size} entries but {n_sounds} sounds make "
                f"{n_sounds * (n_sounds - 1) // 2} pairs; pass the strict upper triangle "
                "(np.triu_indices(n_sounds, k=1)) or the square matrix"
            )
    else:
        raise ParameterError(
            f"ratings has {arr.ndim} dimensions; pass a square matrix or its upper-triangle vector"
        )
    if not np.all(np.isfinite(vec)):
        raise ParameterError("ratings contain NaN or infinite values; remove or impute them")
    if vec.size < 3:
        raise ParameterError(
            f"ratings have {vec.size} pairs; a correlation needs at least 3 pairs (3 sounds)"
        )
    if np.ptp(vec) == 0:
        raise ParameterError(
            "all ratings are equal; a correlation with constant ratings is undefined"
        )
    return np.ascontiguousarray(vec)


def _check_features(features) -> np.ndarray:
    arr = np.asarray(features, dtype=float)
    if arr.ndim != 2:
        raise ParameterError(
            f"features have shape {arr.shape}; pass a 2-D array (n_sounds, n_features)"
        )
    if arr.shape[0] < 3 or arr.shape[1] < 1:
        raise ParameterError(
            f"features have shape {arr.shape}; need at least 3 sounds and 1 feature"
        )
    if not np.all(np.isfinite(arr)):
        raise ParameterError("features contain NaN or infinite values; fix the representation")
    return np.array(arr, dtype=np.float64, order="C", copy=True)


def explained_variance(r: float) -> float:
    """``P^2`` reported for a correlation ``r``: ``max(r, 0) ** 2``.

    A learned distance that is anti-correlated with the dissimilarities explains none of
    them as a dissimilarity. (The reference code squares the signed correlation, which
    counts an anti-correlation as explained variance; the two agree whenever ``r >= 0``,
    which holds for every fit of the 17 studies.)
    """
    return float(max(float(r), 0.0) ** 2)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two vectors (0.0 when either is constant)."""
    a = np.asarray(a, dtype=float) - np.mean(a)
    b = np.asarray(b, dtype=float) - np.mean(b)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    if den == 0 or not np.isfinite(den):
        return 0.0
    return float(np.clip(a @ b / den, -1.0, 1.0))


# ----------------------------------------------------------------------- certificate


@dataclasses.dataclass(frozen=True)
class Certificate:
    """Optimality certificate of a learned weighting.

    For the squared-distance problem (modes ``exact``, ``faithful-*``) the residuals are
    the Karush-Kuhn-Tucker conditions of the cone projection
    ``min_{u >= 0} || A_hat u - b_hat ||`` where ``A_hat`` holds the centred pair
    columns scaled to unit norm and ``b_hat`` the centred ratings scaled to unit norm,
    evaluated at the learned ``v`` after the best positive rescaling. They are scale-free:
    ``dual_residual`` is the largest cosine between the residual ``r = b_hat - A_hat u``
    and any column (it must be <= 0 at the optimum), ``complementarity`` the largest
    ``|u_k <a_k, r>|`` and ``primal_residual`` the most negative weight. When all three
    vanish the correlation is the global maximum, ``sqrt(1 - ||r||^2)``.

    For ``pearson-d`` (a non-convex problem) ``scope`` is ``"local"``: the same three
    numbers are the first-order conditions of maximising ``P(d_v, s)`` over ``v >= 0``
    with ``v`` scaled to ``max(v) = 1``.
    """

    primal_residual: float
    dual_residual: float
    complementarity: float
    n_support: int
    n_features: int
    n_constant: int
    pearson: float
    p2: float
    scope: str = "global"
    tol: float = 1e-8

    @property
    def optimal(self) -> bool:
        """True when every residual is below :attr:`tol`."""
        return max(self.primal_residual, self.dual_residual, self.complementarity) <= self.tol

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["optimal"] = self.optimal
        return out


class ConeProblem:
    """The centred, column-normalised pair matrix of one representation.

    Preparing it once lets several rating vectors (the robustness study) reuse it.

    Parameters
    ----------
    X : np.ndarray, shape (n_pairs, n_features), float
        Squared pair differences (:func:`pair_differences`).
    constant_rtol : float
        A column whose centred norm is below ``constant_rtol`` times its raw norm is
        constant over pairs (it adds the same amount to every squared distance and so
        cannot change the correlation): it is left out (weight 0).
    """

    def __init__(self, X: np.ndarray, *, constant_rtol: float = 1e-12):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[0] < 3:
            raise ParameterError(
                f"pair matrix has shape {X.shape}; need (n_pairs >= 3, n_features)"
            )
        self.n_pairs, self.n_features = X.shape
        raw = np.sqrt(np.einsum("ij,ij->j", X, X))
        A = X - X.mean(axis=0)
        norms = np.sqrt(np.einsum("ij,ij->j", A, A))
        keep = norms > constant_rtol * np.maximum(raw, np.finfo(float).tiny)
        keep &= norms > 0
        self.keep = np.flatnonzero(keep)
        self.norms = norms[self.keep]
        #: centred unit-norm columns, stored transposed (n_kept, n_pairs), C-contiguous
        self.AT = np.ascontiguousarray((A[:, self.keep] / self.norms).T)
        self.n_constant = int(self.n_features - self.keep.size)

    @classmethod
    def from_transposed(cls, XT: np.ndarray, *, constant_rtol: float = 1e-12) -> "ConeProblem":
        """The same problem from the transposed pair matrix ``XT = X.T``.

        Parameters
        ----------
        XT : np.ndarray, shape (n_features, n_pairs), float64
            C-contiguous (e.g. ``XT_all[:, train_pairs]``); it is centred in place.

        Every step runs along contiguous rows, which is several times faster than
        ``ConeProblem(X)`` for tens of thousands of features (cross-validation folds).
        """
        XT = np.asarray(XT, dtype=float)
        if XT.ndim != 2 or XT.shape[1] < 3:
            raise ParameterError(f"pair matrix has shape {XT.T.shape}; need (n_pairs >= 3, n_features)")
        self = cls.__new__(cls)
        self.n_features, self.n_pairs = XT.shape
        raw = np.sqrt(np.einsum("ij,ij->i", XT, XT))
        XT -= XT.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", XT, XT))
        keep = (norms > constant_rtol * np.maximum(raw, np.finfo(float).tiny)) & (norms > 0)
        self.keep = np.flatnonzero(keep)
        self.norms = norms[self.keep]
        AT = XT[self.keep] if self.keep.size < self.n_features else XT
        AT /= self.norms[:, None]
        self.AT = np.ascontiguousarray(AT)
        self.n_constant = int(self.n_features - self.keep.size)
        return self

    @property
    def A(self) -> np.ndarray:
        """Centred unit-norm pair columns, shape (n_pairs, n_kept) (a view of ``AT``)."""
        return self.AT.T

    def centred_ratings(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        if s.shape != (self.n_pairs,):
            raise ParameterError(
                f"ratings have {s.size} pairs but the features make {self.n_pairs}; "
                "one rating per pair of sounds"
            )
        b = s - s.mean()
        nb = np.linalg.norm(b)
        if nb == 0:
            raise ParameterError("all ratings are equal; the correlation is undefined")
        return b / nb

    def to_v(self, u: np.ndarray) -> np.ndarray:
        """Weights ``v`` (length ``n_features``, ``max = 1``) of cone coordinates ``u``."""
        v = np.zeros(self.n_features)
        v[self.keep] = u / self.norms
        top = v.max()
        return v / top if top > 0 else v

    def to_u(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v, dtype=float)[self.keep] * self.norms


def cone_certificate(
    problem: ConeProblem, s: np.ndarray, v: np.ndarray, *, tol: float = 1e-8
) -> Certificate:
    """KKT residuals of the cone projection at weights ``v`` (any mode, any scale).

    ``v`` is first rescaled by the best positive factor ``t`` (``t A u`` closest to
    ``b_hat``), so that any point of a ray is judged by the best point of that ray.

    Parameters
    ----------
    problem : ConeProblem
    s : np.ndarray, shape (n_pairs,)
        Ratings.
    v : np.ndarray, shape (n_features,)
        Weights ``1 / w^2`` (nonnegative).
    tol : float
        Threshold of :attr:`Certificate.optimal`.
    """
    b = problem.centred_ratings(s)
    v = np.asarray(v, dtype=float)
    primal = float(max(0.0, -np.min(v))) / max(float(np.max(np.abs(v))), np.finfo(float).tiny)
    u = problem.to_u(np.maximum(v, 0.0))
    p = problem.A @ u
    pp = float(p @ p)
    t = max(0.0, float(p @ b) / pp) if pp > 0 else 0.0
    u = t * u
    r = b - t * p
    g = problem.AT @ r
    dual = float(max(0.0, g.max())) if g.size else 0.0
    comp = float(np.max(np.abs(u * g))) if g.size else 0.0
    corr = pearson(t * p, b) if t > 0 else 0.0
    return Certificate(
        primal_residual=primal,
        dual_residual=dual,
        complementarity=comp,
        n_support=int(np.count_nonzero(v > 0)),
        n_features=problem.n_features,
        n_constant=problem.n_constant,
        pearson=corr,
        p2=explained_variance(corr),
        scope="global",
        tol=tol,
    )


# ----------------------------------------------------------------------------- NNLS


class _QR:
    """Thin QR factorisation ``A_P = Q R`` of the passive columns.

    Columns are appended by classical Gram-Schmidt with one reorthogonalisation (CGS2)
    and removed with :func:`scipy.linalg.qr_delete` (Givens rotations), both O(m k).
    ``Q`` is stored transposed in a preallocated buffer (row i = i-th orthonormal vector).
    """

    def __init__(self, m: int, b: np.ndarray):
        self.m = m
        self.QT = np.zeros((m, m))
        self.R = np.zeros((m, m), order="F")
        self.qtb = np.zeros(m)
        self.k = 0
        self.b = b

    def insert(self, a: np.ndarray, *, rtol: float = 1e-10) -> bool:
        """Append column ``a``; False (nothing changed) if it is in the current span."""
        k = self.k
        if k >= self.m:
            return False
        if k:
            QTk = self.QT[:k]
            h = QTk @ a
            q = a - h @ QTk
            h2 = QTk @ q
            q -= h2 @ QTk
            h += h2
        else:
            q = a.copy()
            h = None
        rho = float(np.sqrt(q @ q))
        if rho <= rtol * max(float(np.sqrt(a @ a)), np.finfo(float).tiny):
            return False
        q /= rho
        self.QT[k] = q
        if k:
            self.R[:k, k] = h
        self.R[k, k] = rho
        self.qtb[k] = q @ self.b
        self.k = k + 1
        return True

    def pop(self) -> None:
        """Remove the last column."""
        self.k -= 1
        self.R[: self.k + 1, self.k] = 0.0

    def delete(self, positions) -> None:
        """Remove the columns at ``positions``."""
        positions = sorted(int(p) for p in positions)
        k = self.k
        if len(positions) >= k:
            self.k = 0
            self.R[:] = 0.0
            return
        Q = self.QT[:k].T
        R = np.array(self.R[:k, :k])
        for p in reversed(positions):
            Q, R = scipy.linalg.qr_delete(Q, R, p, which="col", overwrite_qr=False, check_finite=False)
        k2 = R.shape[0]
        self.QT[:k2] = Q.T
        self.R[:k, :k] = 0.0
        self.R[:k2, :k2] = R
        self.qtb[:k2] = self.QT[:k2] @ self.b
        self.k = k2

    def solve(self) -> np.ndarray:
        k = self.k
        z, info = _dtrtrs(self.R[:k, :k], self.qtb[:k])
        if info != 0:
            raise np.linalg.LinAlgError("singular triangular factor")
        return z


_dtrtrs = scipy.linalg.lapack.get_lapack_funcs("trtrs", dtype=np.float64)

_THREADPOOLS = None


def _one_blas_thread():
    """Context manager limiting BLAS to one thread.

    The matrices here are small (at most 190 rows): a multi-threaded BLAS only adds
    synchronisation cost, which becomes severe when the cores are shared.
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


def _warm_passive(AT: np.ndarray, b: np.ndarray, init) -> Tuple[list, Optional[tuple]]:
    """A feasible starting passive set from candidate columns ``init`` (best first).

    Solves least squares on the candidates and drops those with a non-positive coefficient
    until all are positive (any such set is a valid start of the Lawson-Hanson iterations,
    which then run to the same KKT point). Returns ``(passive, (Q, R, z))`` or ``([], None)``.
    """
    m = AT.shape[1]
    passive = [int(j) for j in init][:m]
    while passive:
        Q, R = np.linalg.qr(AT[passive].T)
        d = np.abs(np.diag(R))
        if d.min() <= 1e-10 * max(d.max(), np.finfo(float).tiny):
            return [], None  # (nearly) dependent candidates: start cold
        z = scipy.linalg.solve_triangular(R, Q.T @ b, check_finite=False)
        if np.all(z > 0):
            return passive, (Q, R, z)
        passive = [j for j, zj in zip(passive, z) if zj > 0]
    return [], None


@dataclasses.dataclass
class _ActiveSet:
    """The state of :func:`_active_set`: the iterate ``u``, the passive columns (in QR order)
    with their thin QR factorisation, the columns blocked from entering, the residual."""

    u: np.ndarray
    qr: "_QR"
    passive: list
    in_passive: np.ndarray
    blocked: np.ndarray
    r: np.ndarray
    n_iter: int = 0

    def drop_entering(self, j: int) -> None:
        """Round-off made the entering column useless: take it out and block it."""
        self.passive.pop()
        self.in_passive[j] = False
        self.qr.pop()
        self.blocked[j] = True

    def step_towards(self, z: np.ndarray) -> None:
        """Move from ``u`` towards the unconstrained solution ``z`` until a passive value reaches 0;
        drop the columns that reached it."""
        up = self.u[self.passive]
        neg = z <= 0
        alpha = float(np.min(up[neg] / (up[neg] - z[neg])))
        up = up + alpha * (z - up)
        drop = (up <= 1e-14 * max(1.0, float(up.max()))) | (neg & (up <= 0))
        if not drop.any():
            drop[int(np.argmin(np.where(neg, up, np.inf)))] = True
        self.u[self.passive] = 0.0
        self.in_passive[[jj for jj, d in zip(self.passive, drop) if d]] = False
        self.passive = [jj for jj, d in zip(self.passive, drop) if not d]
        self.u[self.passive] = np.maximum(up[~drop], 0.0)
        self.qr.delete(np.flatnonzero(drop))
        self.blocked[:] = False  # the span changed: every column may enter again


def _enter(state: _ActiveSet, AT: np.ndarray, b: np.ndarray, j: int, max_iter: int) -> None:
    """Column ``j`` enters the passive set; inner loop of Lawson-Hanson until the passive solution
    is positive; then the residual is updated."""
    if not state.qr.insert(AT[j]):
        state.blocked[j] = True  # numerically in the span of the passive columns
        return
    state.passive.append(j)
    state.in_passive[j] = True
    first = True
    while True:
        state.n_iter += 1
        z = state.qr.solve()
        if np.all(z > 0):
            break
        if first and z[-1] <= 0:
            state.drop_entering(j)
            z = None
            break
        first = False
        state.step_towards(z)
        if not state.passive or state.n_iter >= max_iter:
            z = None  # u holds the interpolated (feasible) point
            break
    passive, qr = state.passive, state.qr
    if z is not None and passive:
        state.u[passive] = z
        # u_P solves the least-squares problem on P: r = b - Q Q^T b
        state.r = b - qr.qtb[: qr.k] @ qr.QT[: qr.k]
    else:
        state.r = b - AT[passive].T @ state.u[passive] if passive else b.copy()


def _reprice(state: _ActiveSet, AT: np.ndarray, work: np.ndarray, chunk: int, tol: float):
    """A full pricing pass (one ``AT @ r``): the new working set, or None when no column violates
    the dual feasibility (converged)."""
    n = AT.shape[0]
    g = AT @ state.r
    g[state.passive] = -np.inf
    g[state.blocked] = -np.inf
    viol = np.flatnonzero(g > tol)
    if viol.size == 0 or work.size == n:  # no violator, or only blocked ones left
        return None
    passive = np.asarray(state.passive, dtype=int)
    add = viol[np.argsort(-g[viol])[:chunk]]
    rest = np.setdiff1d(work, passive, assume_unique=True)
    keep_rest = rest[np.argsort(-g[rest])[:chunk]] if rest.size else rest
    return np.unique(np.concatenate([passive, add, keep_rest]))


def _warm_start(state: _ActiveSet, AT: np.ndarray, b: np.ndarray, init, work: np.ndarray) -> np.ndarray:
    """Start from the candidate columns ``init`` (:func:`_warm_passive`); the working set."""
    passive, start = _warm_passive(AT, b, init)
    if not passive:
        return work
    Q, R, z = start
    k = len(passive)
    qr = state.qr
    qr.QT[:k], qr.R[:k, :k], qr.qtb[:k], qr.k = Q.T, R, Q.T @ b, k
    state.passive = passive
    state.u[passive] = z
    state.in_passive[passive] = True
    state.r = b - Q @ qr.qtb[:k]
    return np.union1d(work, passive)


def _active_set(
    AT: np.ndarray, b: np.ndarray, *, tol: float, max_iter: int, chunk: Optional[int] = None, init=None
):
    """Lawson-Hanson active set for ``min_{u >= 0} ||A u - b||`` with unit-norm columns.

    ``AT`` is ``A.T`` (shape (n_columns, n_rows), C-contiguous). The passive columns are
    kept in a thin QR factorisation updated column by column; the entering column is
    priced on a working set of at most about ``3 * chunk`` columns, and the whole matrix is
    priced (one ``AT @ r``) only when the working set has no violator left (column
    generation), which suits ``n_rows << n_columns``.

    ``init`` (optional) lists candidate columns, best first, for a warm start
    (:func:`_warm_passive`), e.g. the support of a solution on nearly the same rows.

    Returns ``(u, n_iter, n_pricing_passes, converged)``.
    """
    n, m = AT.shape
    u = np.zeros(n)
    if n == 0:
        return u, 0, 0, True
    chunk = chunk or max(2 * m, 64)
    g = AT @ b
    passes = 1
    if not g.max() > tol:
        return u, 0, passes, True
    work = np.arange(n) if n <= 3 * chunk else np.argpartition(-g, chunk)[:chunk]
    state = _ActiveSet(u=u, qr=_QR(m, b), passive=[], in_passive=np.zeros(n, dtype=bool),
                       blocked=np.zeros(n, dtype=bool), r=b.copy())
    if init is not None and len(init):
        work = _warm_start(state, AT, b, init, work)
    ATw = np.ascontiguousarray(AT[work])
    converged = False
    while state.n_iter < max_iter:
        gw = ATw @ state.r
        gw[state.in_passive[work] | state.blocked[work]] = -np.inf
        i = int(np.argmax(gw))
        if not gw[i] > tol:
            passes += 1
            work = _reprice(state, AT, work, chunk, tol)
            if work is None:
                converged = True
                break
            ATw = np.ascontiguousarray(AT[work])
            continue
        _enter(state, AT, b, int(work[i]), max_iter)
    return state.u, state.n_iter, passes, converged


def nnls(A: np.ndarray, b: np.ndarray, *, tol: float = 1e-10, max_iter: Optional[int] = None):
    """Nonnegative least squares ``min_{x >= 0} ||A x - b||``, with a KKT report.

    An active-set (Lawson-Hanson) solver with QR updates and column generation, suited to
    ``n_rows << n_columns``. It does not rely on :func:`scipy.optimize.nnls`.

    Parameters
    ----------
    A : np.ndarray, shape (n_rows, n_columns), float
    b : np.ndarray, shape (n_rows,), float
    tol : float
        Dual-feasibility tolerance on unit-norm columns and unit-norm ``b``.
    max_iter : int, optional
        Cap on active-set iterations (default ``30 * n_rows + 100``).

    Returns
    -------
    x : np.ndarray, shape (n_columns,)
    info : dict
        ``dual_residual`` (largest ``<a_k, r> / (||a_k|| ||b||)``), ``complementarity``,
        ``n_iter``, ``converged``.
    """
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    if A.ndim != 2 or b.shape != (A.shape[0],):
        raise ParameterError(f"nnls: A {A.shape} and b {b.shape} do not match")
    norms = np.linalg.norm(A, axis=0)
    keep = np.flatnonzero(norms > 0)
    nb = np.linalg.norm(b)
    x = np.zeros(A.shape[1])
    if nb == 0 or keep.size == 0:
        return x, {"dual_residual": 0.0, "complementarity": 0.0, "n_iter": 0, "converged": True}
    An = np.ascontiguousarray(A[:, keep] / norms[keep])
    bn = b / nb
    max_iter = max_iter or 30 * A.shape[0] + 100
    with _one_blas_thread():
        u, it, _, ok = _active_set(np.ascontiguousarray(An.T), bn, tol=tol, max_iter=max_iter)
    r = bn - An @ u
    g = An.T @ r
    x[keep] = u * nb / norms[keep]
    info = {
        "dual_residual": float(max(0.0, g.max())),
        "complementarity": float(np.max(np.abs(u * g))),
        "n_iter": it,
        "converged": bool(ok),
    }
    return x, info


# ----------------------------------------------------------------------------- solvers


@dataclasses.dataclass
class Solution:
    """Result of one fit.

    Attributes
    ----------
    v : np.ndarray, shape (n_features,)
        Weights ``1 / w^2``, scaled so that ``max(v) = 1`` (i.e. ``min(w) = 1``).
    pearson : float
        Correlation reached on the training ratings (of ``d^2``, or of ``d`` for
        ``pearson-d``).
    certificate : Certificate
    n_iter : int
    converged : bool
    message : str
    """

    v: np.ndarray
    pearson: float
    certificate: Certificate
    n_iter: int
    converged: bool
    message: str = ""

    @property
    def p2(self) -> float:
        """Explained variance, ``max(pearson, 0) ** 2``."""
        return explained_variance(self.pearson)


def solve_exact(
    X: np.ndarray,
    s: np.ndarray,
    *,
    tol: float = 1e-10,
    max_iter: Optional[int] = None,
    problem: Optional[ConeProblem] = None,
    warm_start: Optional[np.ndarray] = None,
) -> Solution:
    """Global maximiser of ``P(X v, s)`` over ``v >= 0``, with its KKT certificate.

    Parameters
    ----------
    X : np.ndarray, shape (n_pairs, n_features), float
        Squared pair differences (:func:`pair_differences`).
    s : np.ndarray, shape (n_pairs,), float
        Ratings, same pair order.
    tol : float
        Dual-feasibility tolerance of the active-set solver (scale-free).
    max_iter : int, optional
        Active-set iteration cap (default ``30 * n_pairs + 100``).
    problem : ConeProblem, optional
        ``ConeProblem(X)`` prepared beforehand (then ``X`` may be ``None``).
    warm_start : np.ndarray, shape (n_features,), optional
        Weights of a nearby problem (e.g. the same features on most of the same pairs):
        their support, largest first, starts the active set. The optimum and its
        certificate are the same; only the number of iterations changes.

    Returns
    -------
    Solution
        ``v`` with ``max(v) = 1``. When no nonnegative weighting correlates positively
        with ``s`` the optimum of the projection is ``v = 0``: ``pearson`` is then 0.0 and
        a warning says so.
    """
    problem = problem if problem is not None else ConeProblem(X)
    b = problem.centred_ratings(s)
    max_iter = max_iter or 30 * problem.n_pairs + 100
    init = None
    if warm_start is not None:
        w = np.asarray(warm_start, dtype=float)[problem.keep]
        init = np.flatnonzero(w > 0)
        init = init[np.argsort(-w[init] * problem.norms[init], kind="stable")]
    with _one_blas_thread():
        u, it, _, ok = _active_set(problem.AT, b, tol=tol, max_iter=max_iter, init=init)
    v = problem.to_v(u)
    if not np.any(v > 0):
        warnings.warn(
            "no nonnegative weighting of these features correlates positively with the "
            "ratings (every centred pair column has a non-positive correlation with them): "
            "the optimum is v = 0 and the correlation is reported as 0. Check that the "
            "ratings are dissimilarities (not similarities) and the feature rows' order.",
            RuntimeWarning,
            stacklevel=2,
        )
    cert = cone_certificate(problem, s, v, tol=max(1e-8, 100 * tol))
    if not ok:
        warnings.warn(
            f"the exact solver stopped at its iteration cap ({max_iter}) before the KKT "
            f"conditions held (dual residual {cert.dual_residual:.2e}); raise max_iter",
            ConvergenceWarning,
            stacklevel=2,
        )
    msg = "KKT conditions hold" if cert.optimal else "KKT residuals above tolerance"
    return Solution(v=v, pearson=cert.pearson, certificate=cert, n_iter=it, converged=ok, message=msg)


def faithful_objective(w: np.ndarray, X: np.ndarray, s: np.ndarray) -> Tuple[float, np.ndarray]:
    """Reference objective ``-P(d_w^2, s)`` and its analytic gradient in ``w``.

    Parameters
    ----------
    w : np.ndarray, shape (n_features,)
        Weights (``d^2 = X w^-2``), positive.
    X : np.ndarray, shape (n_pairs, n_features)
    s : np.ndarray, shape (n_pairs,)

    Returns
    -------
    f : float
    grad : np.ndarray, shape (n_features,)
    """
    m = s.size
    sc = s - s.mean()
    sd = sc / np.sqrt(sc @ sc / m)
    v = w ** -2.0
    d = X @ v
    dc = d - d.mean()
    sig = np.sqrt(dc @ dc / m)
    if sig == 0 or not np.isfinite(sig):
        return 0.0, np.zeros_like(w)
    z = dc / sig
    P = float(z @ sd) / m
    gd = (sd - P * z) / (m * sig)
    gv = X.T @ gd
    return -P, 2.0 * w ** -3.0 * gv


def _lbfgsb_options(max_iter, ftol, gtol, maxls):
    return {"maxiter": int(max_iter), "ftol": ftol, "gtol": gtol, "maxls": int(maxls)}


def faithful_start(
    X: np.ndarray,
    s: np.ndarray,
    *,
    init: str = "warm",
    random_state=None,
    w_bounds: Tuple[float, float] = (1.0, 1e15),
) -> np.ndarray:
    """Starting weights of the reference procedure, clipped into ``w_bounds``.

    ``"warm"``: ``w = (x + eps)^(-1/2)``, ``x`` the nonnegative least-squares fit of
    ``X x ~ s`` (no intercept; solved by :func:`nnls`), ``eps`` = float64 machine epsilon.
    ``"random"``: ``w = |1 + 0.01 xi|``, ``xi ~ N(0, 1)`` i.i.d. from ``random_state``.

    Returns
    -------
    np.ndarray, shape (n_features,)
    """
    if init == "warm":
        x, _ = nnls(X, s)
        w0 = np.sqrt(1.0 / (x + WARM_START_EPS))
    elif init == "random":
        rng = np.random.default_rng(random_state)
        w0 = np.abs(1.0 + 0.01 * rng.standard_normal(X.shape[1]))
    else:
        raise ParameterError(f"init={init!r}; use 'warm' or 'random'")
    return np.clip(w0, *w_bounds)


def solve_faithful(
    X: np.ndarray,
    s: np.ndarray,
    *,
    init: str = "warm",
    random_state=None,
    max_iter: int = 10_000,
    ftol: float = 1e-36,
    gtol: float = 1e-36,
    maxls: int = 50,
    w_bounds: Tuple[float, float] = (1.0, 1e15),
    problem: Optional[ConeProblem] = None,
) -> Solution:
    """The reference procedure: L-BFGS-B on ``w`` maximising ``P(d_w^2, s)``.

    Parameters
    ----------
    X : np.ndarray, shape (n_pairs, n_features)
    s : np.ndarray, shape (n_pairs,)
    init : {"warm", "random"}
        ``"warm"``: ``w = (x + eps)^(-1/2)`` with ``x`` the nonnegative least-squares fit
        of ``X x ~ s`` without intercept and ``eps`` the float64 machine epsilon
        (2.2e-16), as Pascal & Lagrange; ``"random"``: ``w = |1 + 0.01 xi|``, ``xi``
        standard normal (Thoret et al.), drawn from ``random_state``.
    random_state : int, np.random.Generator or None
    max_iter, ftol, gtol, maxls : L-BFGS-B options (reference values by default).
    w_bounds : (float, float)
        Bounds on every ``w_k`` (reference: 1 and 1e15). The start is clipped into them.

    Returns
    -------
    Solution
        Emits :class:`~sklearn.exceptions.ConvergenceWarning` when L-BFGS-B stops at
        its iteration cap.
    """
    X = np.asarray(X, dtype=float)
    s = np.asarray(s, dtype=float)
    n = X.shape[1]
    lo, hi = w_bounds
    w0 = faithful_start(X, s, init=init, random_state=random_state, w_bounds=w_bounds)
    with _one_blas_thread():
        res = scipy.optimize.minimize(
            faithful_objective,
            w0,
            args=(X, s),
            jac=True,
            method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(np.full(n, lo), np.full(n, hi)),
            options=_lbfgsb_options(max_iter, ftol, gtol, maxls),
        )
    w = np.clip(res.x, lo, hi)
    v = w ** -2.0
    v = v / v.max()
    capped = res.status == 1
    if capped:
        warnings.warn(
            f"L-BFGS-B stopped at its iteration cap ({max_iter}) short of the optimum, as the "
            "reference procedure does; use mode='exact' for the certified global optimum or "
            "raise max_iter",
            ConvergenceWarning,
            stacklevel=2,
        )
    problem = problem if problem is not None else ConeProblem(X)
    cert = cone_certificate(problem, s, v)
    return Solution(
        v=v,
        pearson=-float(res.fun),
        certificate=cert,
        n_iter=int(res.nit),
        converged=not capped,
        message=str(res.message),
    )


def pearson_d_objective(
    v: np.ndarray, X: np.ndarray, s: np.ndarray, floor: float = 0.0
) -> Tuple[float, np.ndarray]:
    """``-P(d_v, s)`` with ``d_v = sqrt(X v)`` (distances, not squared) and its gradient.

    Parameters
    ----------
    v : np.ndarray, shape (n_features,), nonnegative
    X : np.ndarray, shape (n_pairs, n_features)
    s : np.ndarray, shape (n_pairs,)
    floor : float
        Added to ``X v`` before the square root (keeps the gradient finite when a pair's
        distance is 0).
    """
    m = s.size
    sc = s - s.mean()
    sd = sc / np.sqrt(sc @ sc / m)
    d2 = X @ v + floor
    d = np.sqrt(np.maximum(d2, 0.0))
    dc = d - d.mean()
    sig = np.sqrt(dc @ dc / m)
    if sig == 0 or not np.isfinite(sig):
        return 0.0, np.zeros_like(v)
    z = dc / sig
    P = float(z @ sd) / m
    gd = (sd - P * z) / (m * sig)
    with np.errstate(divide="ignore", invalid="ignore"):
        gdd = np.where(d > 0, gd / (2.0 * d), 0.0)
    return -P, -(X.T @ gdd)


def solve_pearson_d(
    X: np.ndarray,
    s: np.ndarray,
    *,
    max_iter: int = 10_000,
    ftol: float = 1e-15,
    gtol: float = 1e-12,
    maxls: int = 50,
    tol: float = 1e-10,
    problem: Optional[ConeProblem] = None,
) -> Solution:
    """Maximise ``P(d_v, s)`` (distances, not squared) by L-BFGS-B on ``v >= 0``.

    The problem is not convex; the start is the exact optimum of ``P(d_v^2, s)``
    (:func:`solve_exact`) and the result is never worse than that start.

    Returns
    -------
    Solution
        ``certificate.scope == "local"``: first-order conditions at the result.
    """
    X = np.asarray(X, dtype=float)
    s = np.asarray(s, dtype=float)
    start = solve_exact(X, s, tol=tol, problem=problem)
    v0 = start.v.copy()
    f0, _ = pearson_d_objective(v0, X, s)
    with _one_blas_thread():
        res = scipy.optimize.minimize(
            pearson_d_objective,
            v0,
            args=(X, s),
            jac=True,
            method="L-BFGS-B",
            bounds=scipy.optimize.Bounds(np.zeros(X.shape[1]), np.full(X.shape[1], np.inf)),
            options=_lbfgsb_options(max_iter, ftol, gtol, maxls),
        )
    v = np.maximum(res.x, 0.0)
    f = float(res.fun)
    if not (f <= f0) or not np.any(v > 0):
        v, f = v0, f0
    v = v / v.max()
    capped = res.status == 1
    if capped:
        warnings.warn(
            f"L-BFGS-B (Pearson on d) stopped at its iteration cap ({max_iter}); raise max_iter",
            ConvergenceWarning,
            stacklevel=2,
        )
    _, grad = pearson_d_objective(v, X, s)
    g = -grad  # ascent direction of P
    scale = max(float(np.max(np.abs(g))), np.finfo(float).tiny)
    zero = v <= 0
    dual = float(max(0.0, g[zero].max())) / scale if np.any(zero) else 0.0
    stat = float(np.max(np.abs(g[~zero]))) / scale if np.any(~zero) else 0.0
    cert = Certificate(
        primal_residual=0.0,
        dual_residual=dual,
        complementarity=stat,
        n_support=int(np.count_nonzero(~zero)),
        n_features=X.shape[1],
        n_constant=0,
        pearson=-f,
        p2=explained_variance(-f),
        scope="local",
        tol=1e-4,
    )
    return Solution(
        v=v,
        pearson=-f,
        certificate=cert,
        n_iter=int(res.nit),
        converged=not capped,
        message=str(res.message),
    )


# ----------------------------------------------------------------------------- estimator


class MetricLearner(BaseEstimator):
    """Learn feature weights of a distance that agrees with dissimilarity ratings.

    Parameters
    ----------
    mode : {"exact", "faithful-warm", "faithful-random", "pearson-d"}
        ``"exact"``: certified global maximum of ``P(d_w^2, s)``.
        ``"faithful-warm"`` / ``"faithful-random"``: the reference L-BFGS-B procedure on
        ``w`` (bounds ``1 <= w <= 1e15``, ``ftol = gtol = 1e-36``, ``maxls = 50``,
        ``maxiter = 10 000``) from the NNLS warm start or from ``|1 + 0.01 xi|``.
        ``"pearson-d"``: maximise ``P(d_w, s)`` (distances, not squared) by L-BFGS-B from
        the exact solution.
    tol : float
        Tolerance of the exact solver (scale-free dual feasibility).
    max_iter : int
        L-BFGS-B iteration cap (reference: 10 000).
    random_state : int, np.random.Generator or None
        Seed of the ``faithful-random`` start.
    ftol, gtol : float
        L-BFGS-B stopping tolerances (reference: 1e-36 both).
    maxls : int
        L-BFGS-B line-search steps (reference: 50).

    Attributes
    ----------
    v_ : np.ndarray, shape (n_features,)
        Learned ``1 / w^2``, scaled so that ``max(v_) = 1``.
    weights_ : np.ndarray, shape (n_features,)
        Learned ``w = v_^(-1/2)`` (``>= 1``; ``inf`` for features given zero weight).
    pearson_ : float
        Correlation on the training ratings (``d^2``, or ``d`` for ``pearson-d``).
    p2_ : float
        ``max(pearson_, 0) ** 2``, the explained variance.
    certificate_ : Certificate
        KKT residuals of the fitted weights (see :class:`Certificate`).
    n_iter_ : int
        Active-set or L-BFGS-B iterations.
    converged_ : bool
    n_features_in_ : int
    """

    def __init__(
        self,
        mode: str = "exact",
        *,
        tol: float = 1e-10,
        max_iter: int = 10_000,
        random_state=None,
        ftol: float = 1e-36,
        gtol: float = 1e-36,
        maxls: int = 50,
    ):
        self.mode = mode
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.ftol = ftol
        self.gtol = gtol
        self.maxls = maxls

    def fit(self, features, ratings):
        """Learn the weights.

        Parameters
        ----------
        features : array-like, shape (n_sounds, n_features)
        ratings : array-like, shape (n_sounds, n_sounds) or (n_pairs,)
            Dissimilarities; the strict upper triangle is used.

        Returns
        -------
        self
        """
        if self.mode not in MODES:
            raise ParameterError(f"mode={self.mode!r}; use one of {', '.join(MODES)}")
        F = _check_features(features)
        s = ratings_vector(ratings, n_sounds=F.shape[0])
        X = pair_differences(F)
        problem = ConeProblem(X)
        if self.mode == "exact":
            sol = solve_exact(X, s, tol=self.tol, problem=problem)
        elif self.mode.startswith("faithful"):
            sol = solve_faithful(
                X,
                s,
                init=self.mode.split("-", 1)[1],
                random_state=self.random_state,
                max_iter=self.max_iter,
                ftol=self.ftol,
                gtol=self.gtol,
                maxls=self.maxls,
                problem=problem,
            )
        else:
            sol = solve_pearson_d(X, s, max_iter=self.max_iter, tol=self.tol, problem=problem)
        self.v_ = sol.v
        with np.errstate(divide="ignore"):
            self.weights_ = np.where(sol.v > 0, 1.0 / np.sqrt(sol.v), np.inf)
        self.pearson_ = float(sol.pearson)
        self.p2_ = explained_variance(self.pearson_)
        self.certificate_ = sol.certificate
        self.n_iter_ = sol.n_iter
        self.converged_ = sol.converged
        self.n_features_in_ = F.shape[1]
        return self

    def _check_fitted(self, features):
        if not hasattr(self, "v_"):
            raise ParameterError("this MetricLearner is not fitted yet; call fit(features, ratings) first")
        F = _check_features(features)
        if F.shape[1] != self.n_features_in_:
            raise ParameterError(
                f"features have {F.shape[1]} columns but the learner was fitted on "
                f"{self.n_features_in_}; pass the same representation"
            )
        return F

    def distances(self, features, *, squared: bool = False) -> np.ndarray:
        """Learned distances between sounds.

        Parameters
        ----------
        features : array-like, shape (n_sounds, n_features)
        squared : bool
            Return ``d_w^2`` instead of ``d_w``.

        Returns
        -------
        np.ndarray, shape (n_sounds, n_sounds), float64
            Symmetric, zero diagonal.
        """
        F = self._check_fitted(features)
        Fw = F * np.sqrt(self.v_)
        sq = np.sum(Fw ** 2, axis=1)
        D2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * Fw @ Fw.T, 0.0)
        np.fill_diagonal(D2, 0.0)
        return D2 if squared else np.sqrt(D2)

    def score(self, features, ratings) -> float:
        """Explained variance ``max(P, 0)^2`` with ``P = P(d_w^2, s)`` (``P(d_w, s)`` in
        ``pearson-d`` mode).

        Parameters
        ----------
        features : array-like, shape (n_sounds, n_features)
        ratings : array-like, shape (n_sounds, n_sounds) or (n_pairs,)

        Returns
        -------
        float
        """
        F = self._check_fitted(features)
        s = ratings_vector(ratings, n_sounds=F.shape[0])
        D = self.distances(F, squared=self.mode != "pearson-d")
        d = D[np.triu_indices(F.shape[0], k=1)]
        return explained_variance(pearson(d, s))
