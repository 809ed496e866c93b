"""Tests of the timbre metric-learning solvers (gear.timbre.solver).

Independent answers: brute-force enumeration of the faces of the cone, random search,
finite differences (scipy.optimize.check_grad), analytic cases, and the values published
by Pascal & Lagrange (EUSIPCO 2024) for the reference procedure.
"""
import itertools
import warnings

import numpy as np
import pytest
import scipy.optimize
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from gear.errors import ParameterError
from gear.timbre import solver as S
from gear.timbre.data import default_data_dir, load_features, load_study

DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "features").is_dir(), reason=f"shared timbre data not found at {DATA}"
)


def _random_problem(seed, n_sounds=6, n_features=5):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n_sounds, n_features)) * rng.uniform(0.1, 3, n_features)
    X = S.pair_differences(F)
    s = rng.uniform(0, 1, X.shape[0])
    return F, X, s


def _brute_force_max_corr(X, s):
    """Max of corr(X v, s) over v >= 0 by enumerating every face of the cone.

    For each subset of columns, fit the centred ratings by unconstrained least squares on
    the centred columns; a subset whose coefficients are all positive gives a feasible
    point; the projection onto the cone is the best feasible one.
    """
    A = X - X.mean(0)
    b = s - s.mean()
    best = 0.0
    n = X.shape[1]
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            coef, *_ = np.linalg.lstsq(A[:, cols], b, rcond=None)
            if np.all(coef > 0):
                v = np.zeros(n)
                v[list(cols)] = coef
                best = max(best, np.corrcoef(X @ v, s)[0, 1])
    return best


# ------------------------------------------------------------------- exact solver


@pytest.mark.parametrize("seed", range(12))
def test_exact_matches_brute_force_on_small_problems(seed):
    n_features = 1 + seed % 6
    F, X, s = _random_problem(seed, n_sounds=5 + seed % 3, n_features=n_features)
    brute = _brute_force_max_corr(X, s)
    if brute <= 0:  # every column anti-correlated: the optimum is v = 0
        with pytest.warns(RuntimeWarning, match="v = 0"):
            sol = S.solve_exact(X, s)
        assert np.all(sol.v == 0) and sol.pearson == 0.0
        return
    sol = S.solve_exact(X, s)
    assert sol.pearson == pytest.approx(brute, abs=1e-10)
    # the reported correlation is the one of the returned weights
    assert np.corrcoef(X @ sol.v, s)[0, 1] == pytest.approx(sol.pearson, abs=1e-12)
    assert sol.certificate.optimal
    assert sol.v.max() == pytest.approx(1.0) and np.all(sol.v >= 0)


@pytest.mark.parametrize("seed", range(8))
def test_warm_start_reaches_the_same_optimum_and_brute_force(seed):
    n_features = 2 + seed % 5
    F, X, s = _random_problem(seed, n_sounds=6 + seed % 2, n_features=n_features)
    brute = _brute_force_max_corr(X, s)
    if brute <= 0:
        return
    rows = np.random.default_rng(seed).permutation(X.shape[0])[: X.shape[0] - 3]
    nearby = S.solve_exact(X[rows], s[rows]).v  # a solution on most of the same pairs
    for warm in (nearby, np.ones(n_features), np.zeros(n_features)):
        sol = S.solve_exact(X, s, warm_start=warm)
        assert sol.pearson == pytest.approx(brute, abs=1e-10) and sol.certificate.optimal


def test_cone_problem_from_transposed_equals_the_plain_one():
    F, X, s = _random_problem(3, n_sounds=8, n_features=6)
    X[:, 2] = 1.0  # a constant column is left out by both
    a, b = S.ConeProblem(X), S.ConeProblem.from_transposed(np.ascontiguousarray(X.T))
    np.testing.assert_array_equal(a.keep, b.keep)
    np.testing.assert_allclose(a.AT, b.AT, atol=1e-14)
    np.testing.assert_allclose(a.norms, b.norms, rtol=1e-13)
    assert (a.n_pairs, a.n_features, a.n_constant) == (b.n_pairs, b.n_features, b.n_constant)


@pytest.mark.parametrize("seed", range(4))
def test_exact_beats_random_search(seed):
    F, X, s = _random_problem(100 + seed, n_sounds=8, n_features=12)
    sol = S.solve_exact(X, s)
    rng = np.random.default_rng(seed)
    V = rng.exponential(size=(4000, X.shape[1])) * (rng.uniform(size=(4000, X.shape[1])) < 0.4)
    V[V.sum(1) == 0, 0] = 1.0
    D = V @ X.T
    Dc = D - D.mean(1, keepdims=True)
    sc = s - s.mean()
    corr = Dc @ sc / (np.linalg.norm(Dc, axis=1) * np.linalg.norm(sc))
    assert corr.max() <= sol.pearson + 1e-12
    # and random search gets close from below (the problem is not degenerate)
    assert corr.max() > sol.pearson - 0.2


def test_exact_perfect_fit_recovers_distances():
    rng = np.random.default_rng(3)
    F = rng.standard_normal((9, 7))
    X = S.pair_differences(F)
    v0 = np.array([0.0, 2.0, 0.0, 0.5, 1.0, 0.0, 0.0])
    s = X @ v0
    s = s / s.max()
    sol = S.solve_exact(X, s)
    assert sol.p2 == pytest.approx(1.0, abs=1e-12)
    d = X @ sol.v
    assert np.corrcoef(d, s)[0, 1] == pytest.approx(1.0, abs=1e-12)


def test_exact_anticorrelated_gives_zero_weights():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((8, 1))
    F = np.hstack([f, 2 * f, f])  # every column is the same pattern
    X = S.pair_differences(F)
    s = 1.0 - X[:, 0] / X[:, 0].max()  # perfectly anti-correlated with every column
    with pytest.warns(RuntimeWarning, match="v = 0"):
        sol = S.solve_exact(X, s)
    assert np.all(sol.v == 0)
    assert sol.pearson == 0.0
    assert sol.certificate.dual_residual == 0.0  # A^T b <= 0 certifies v = 0


def test_constant_and_duplicate_features_do_not_change_the_optimum():
    F, X, _ = _random_problem(7, n_sounds=7, n_features=4)
    rng = np.random.default_rng(7)
    s = X @ rng.uniform(0, 1, 4) + rng.normal(0, 0.5, X.shape[0])
    base = S.solve_exact(X, s)
    F2 = np.hstack([F, np.full((F.shape[0], 1), 3.0), F[:, :2], 10 * F[:, [3]]])
    X2 = S.pair_differences(F2)
    sol = S.solve_exact(X2, s)
    assert 0 < base.pearson < 1
    assert sol.pearson == pytest.approx(base.pearson, abs=1e-12)
    assert sol.v[4] == 0.0  # the constant feature
    assert sol.certificate.n_constant == 1
    assert sol.certificate.optimal


def test_scale_invariance():
    F, X, s = _random_problem(11, n_sounds=7, n_features=6)
    a = S.solve_exact(X, s)
    b = S.solve_exact(S.pair_differences(F * 1e-4), 0.3 * s + 0.2)
    assert a.pearson == pytest.approx(b.pearson, abs=1e-12)


def test_nnls_matches_brute_force_and_kkt():
    rng = np.random.default_rng(5)
    for _ in range(10):
        A = rng.standard_normal((12, 5))
        b = rng.standard_normal(12)
        x, info = S.nnls(A, b)
        best = np.inf
        for k in range(0, 6):
            for cols in itertools.combinations(range(5), k):
                if k == 0:
                    best = min(best, b @ b)
                    continue
                c, *_ = np.linalg.lstsq(A[:, cols], b, rcond=None)
                if np.all(c >= 0):
                    r = b - A[:, cols] @ c
                    best = min(best, r @ r)
        r = b - A @ x
        assert r @ r == pytest.approx(best, rel=1e-10, abs=1e-12)
        assert info["converged"] and info["dual_residual"] < 1e-10 and np.all(x >= 0)


@needs_data
@pytest.mark.parametrize(
    "study,rep",
    [("Grey1977", "auditory_spectrum"), ("Patil2012_A3", "stft"), ("Lakatos2000_Comb", "clap"),
     ("Barthet2010", "scattering")],
)
def test_certificate_on_real_data_and_agreement_with_scipy_nnls(study, rep):
    st = load_study(study, check_audio=False)
    X = S.pair_differences(load_features(st, rep))
    sol = S.solve_exact(X, st.ratings)
    cert = sol.certificate
    assert cert.optimal
    assert cert.dual_residual < 1e-10 and cert.complementarity < 1e-10 and cert.primal_residual == 0
    # scipy's NNLS on the same centred problem can only do as well (it has returned
    # non-optimal answers since 1.12: the certificate is what we trust)
    A = X - X.mean(0)
    b = st.ratings - st.ratings.mean()
    x, _ = scipy.optimize.nnls(A, b, maxiter=50 * A.shape[1])
    p_scipy = np.corrcoef(X @ x, st.ratings)[0, 1] if np.any(x > 0) else 0.0
    assert sol.pearson >= p_scipy - 1e-10
    # P^2 equals 1 - ||r||^2 / ||b||^2 at the projection
    v = sol.v
    t = (A @ v) @ b / ((A @ v) @ (A @ v))
    r = b - t * (A @ v)
    assert sol.p2 == pytest.approx(1 - (r @ r) / (b @ b), abs=1e-10)


# ------------------------------------------------------------ gradients, faithful


@pytest.mark.parametrize("seed", range(3))
def test_faithful_gradient_matches_finite_differences(seed):
    F, X, s = _random_problem(200 + seed, n_sounds=7, n_features=6)
    w0 = np.random.default_rng(seed).uniform(1.0, 3.0, X.shape[1])
    f = lambda w: S.faithful_objective(w, X, s)[0]
    g = lambda w: S.faithful_objective(w, X, s)[1]
    err = scipy.optimize.check_grad(f, g, w0, epsilon=1e-7)
    assert err < 1e-6 * max(1.0, np.linalg.norm(g(w0)))
    # and the objective is minus the Pearson correlation of d^2
    assert f(w0) == pytest.approx(-np.corrcoef(X @ w0 ** -2.0, s)[0, 1], abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_pearson_d_gradient_matches_finite_differences(seed):
    F, X, s = _random_problem(300 + seed, n_sounds=7, n_features=6)
    v0 = np.random.default_rng(seed).uniform(0.2, 1.0, X.shape[1])
    f = lambda v: S.pearson_d_objective(v, X, s)[0]
    g = lambda v: S.pearson_d_objective(v, X, s)[1]
    err = scipy.optimize.check_grad(f, g, v0, epsilon=1e-7)
    assert err < 1e-6 * max(1.0, np.linalg.norm(g(v0)))
    assert f(v0) == pytest.approx(-np.corrcoef(np.sqrt(X @ v0), s)[0, 1], abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_exact_is_at_least_faithful_and_pearson_d_at_least_its_start(seed):
    F, X, s = _random_problem(400 + seed, n_sounds=8, n_features=10)
    ex = S.solve_exact(X, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for init in ("warm", "random"):
            fa = S.solve_faithful(X, s, init=init, random_state=seed, max_iter=2000)
            assert fa.pearson <= ex.pearson + 1e-9
            # the faithful answer is judged by the same certificate
            assert fa.certificate.pearson <= ex.pearson + 1e-12
        pdv = S.solve_pearson_d(X, s)
    start = np.corrcoef(np.sqrt(X @ ex.v), s)[0, 1]
    assert pdv.pearson >= start - 1e-12
    assert pdv.certificate.scope == "local"


def test_faithful_warns_at_iteration_cap():
    F, X, s = _random_problem(9, n_sounds=8, n_features=10)
    with pytest.warns(ConvergenceWarning, match="iteration cap"):
        sol = S.solve_faithful(X, s, init="random", random_state=0, max_iter=3)
    assert sol.n_iter == 3 and not sol.converged


def test_faithful_warm_start_is_the_reference_formula():
    # w0 = (x + eps)^(-1/2) with x = NNLS(X, s) without intercept, clipped to [1, 1e15]
    for seed in range(5):
        F, X, s = _random_problem(13 + seed, n_sounds=7, n_features=5)
        x, _ = scipy.optimize.nnls(X, s)
        w0 = np.clip(np.sqrt(1.0 / (x + np.finfo(float).eps)), 1.0, 1e15)
        assert np.allclose(S.faithful_start(X, s, init="warm"), w0, rtol=1e-8)
    w = S.faithful_start(X, s, init="random", random_state=1)
    xi = np.random.default_rng(1).standard_normal(X.shape[1])
    assert np.allclose(w, np.clip(np.abs(1 + 0.01 * xi), 1, 1e15))


# ------------------------------------------------------------------- estimator


def test_metric_learner_api():
    F, X, s = _random_problem(21, n_sounds=8, n_features=6)
    n = F.shape[0]
    M = np.zeros((n, n))
    M[np.triu_indices(n, 1)] = s
    est = S.MetricLearner()
    assert est.fit(F, M) is est
    assert est.weights_.min() == pytest.approx(1.0)
    assert np.all(est.weights_ >= 1.0)
    assert est.score(F, s) == pytest.approx(est.p2_, abs=1e-12)
    D = est.distances(F)
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0)
    iu = np.triu_indices(n, 1)
    d2 = np.sum((F[iu[0]] - F[iu[1]]) ** 2 / est.weights_ ** 2, axis=1)
    assert np.allclose(D[iu] ** 2, d2)
    assert clone(est).get_params() == est.get_params()
    assert est.certificate_.optimal and est.n_features_in_ == 6
    pd_est = S.MetricLearner(mode="pearson-d").fit(F, s)
    assert pd_est.score(F, s) == pytest.approx(pd_est.p2_, abs=1e-10)
    with pytest.raises(ParameterError, match="mode"):
        S.MetricLearner(mode="sgd").fit(F, s)
    with pytest.raises(ParameterError, match="pairs"):
        est.fit(F, s[:-1])
    with pytest.raises(ParameterError, match="columns"):
        est.score(F[:, :3], s)
    with pytest.raises(ParameterError, match="NaN"):
        est.fit(np.where(F > 1, np.nan, F), s)


# ------------------------------------------------------------- published values

PUBLISHED = [
    ("auditory_spectrum", "Grey1977", 0.48),
    ("auditory_spectrum", "Barthet2010", 0.74),
    ("auditory_spectrum", "Patil2012_A3", 0.62),
    ("auditory_spectrum", "Siedenburg2016_e2set2", 0.73),
]
PUBLISHED_SLOW = [
    ("mert_concat", "Grey1977", 1.00),
    ("mert_concat", "Barthet2010", 0.65),
    ("stmf", "Patil2012_A3", 0.97),
    ("stmf", "Siedenburg2016_e2set2", 0.99),
]


def _check_published(rep, study, value):
    st = load_study(study, check_audio=False)
    F = load_features(st, rep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        faithful = S.MetricLearner(mode="faithful-warm").fit(F, st.ratings_matrix)
    exact = S.MetricLearner(mode="exact").fit(F, st.ratings_matrix)
    assert faithful.p2_ == pytest.approx(value, abs=0.02)
    assert exact.p2_ >= faithful.p2_ - 1e-12
    assert exact.certificate_.optimal


@needs_data
@pytest.mark.parametrize("rep,study,value", PUBLISHED)
def test_faithful_reproduces_published_values(rep, study, value):
    _check_published(rep, study, value)


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("rep,study,value", PUBLISHED_SLOW)
def test_faithful_reproduces_published_values_large(rep, study, value):
    _check_published(rep, study, value)
