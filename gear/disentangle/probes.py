"""Probes: cross-validated R^2 of regressing each parameter on the embedding.

Definitions
-----------
Targets are the parameters on their chosen scales (``u_j = log theta_j`` for a log scale,
``theta_j`` otherwise). Folds keep whole *blocks* of neighbouring grid cells out: every
parameter axis is cut into ``n_blocks`` contiguous blocks of (about) equal counts, by grid
position where the parameter has a grid axis and by value otherwise (equal values always share
a block); a block of theta space is one combination of per-axis blocks (up to
``n_blocks ** n_params`` of them), and blocks are dealt to ``n_folds`` folds (seeded shuffle,
then each block, largest first, to the fold with fewest sounds). A test sound's nearest
neighbours in theta space are then mostly in the same held-out block, so a probe cannot score
by interpolating between immediate neighbours.

The score is the pooled out-of-fold coefficient of determination

    R^2_j = 1 - sum_i (u_ij - uhat_ij)^2 / sum_i (u_ij - mean(u_j))^2,

where ``uhat_ij`` is predicted by a model that never saw sound i's block. 1 is perfect; 0 is
predicting the mean; a probe with nothing to go on scores slightly below 0 (each fold's
training mean differs from the held-out mean). That level is reported as the *chance* R^2: the
same folds, predicting every held-out sound by its training folds' mean.

Probes
------
Both probes read the same features: the embedding's dimensions standardised (zero mean, unit
variance; constant dimensions left at 0), then projected on their top principal components
(from the smaller Gram matrix, see :func:`principal_scores`; fitted once on all sounds, which
uses no parameter value: a linear model cannot gain from directions only held-out sounds vary
along).

- **ridge**: the first ``ridge_components`` (256) components, then ``RidgeCV`` (one penalty per
  parameter chosen by efficient leave-one-out on the training folds among ``ridge_alphas``).
- **mlp**: the first ``mlp_components`` (128) components, divided by the first one's standard
  deviation, then one multi-output ``MLPRegressor`` (all parameters at once) with one hidden
  layer of 64 ReLU units, Adam (learning rate 3e-3, batches of 200, L2 penalty 1e-3) on
  standardised targets, early stopping when the loss on a random 10 % of the training folds has
  not improved for 10 epochs, at most ``mlp_max_iter`` epochs. Early stopping bounds how far
  below 0 an unpredictable parameter falls (about -0.3 for the drop-r control, whose ridge R^2
  sits at the chance level).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from gear.errors import ParameterError

from ._inputs import PARAM_NAMES, Prepared, check_int, prepare

__all__ = ["probe_r2", "probe_folds", "RIDGE_ALPHAS"]

#: Ridge penalties tried by RidgeCV (features are standardised).
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 6, 9))


def _axis_blocks(values: np.ndarray, n_blocks: int) -> np.ndarray:
    """Contiguous blocks of about equal counts along one axis; ties share a block."""
    levels, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    before = np.concatenate([[0], np.cumsum(counts)[:-1]])  # sounds on lower levels
    centre = (before + 0.5 * counts) / values.size  # quantile of each level's middle
    level_block = np.minimum((centre * n_blocks).astype(np.int64), n_blocks - 1)
    return level_block[inverse.ravel()]


def _block_ids(prep: Prepared, n_blocks: int) -> np.ndarray:
    ids = np.zeros(prep.n, np.int64)
    for j in range(prep.p):
        axis = prep.grid_index[:, j] if prep.on_grid[j] else prep.u[:, j]
        ids = ids * n_blocks + _axis_blocks(axis, n_blocks)
    return np.unique(ids, return_inverse=True)[1].ravel()


def _deal_folds(block: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    n_groups = int(block.max()) + 1
    if n_groups < n_folds:
        raise ParameterError(
            f"only {n_groups} blocks of theta space for n_folds={n_folds}; raise n_blocks "
            f"or lower n_folds"
        )
    sizes = np.bincount(block, minlength=n_groups)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(n_groups, np.int64)
    load = np.zeros(n_folds, np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[block]


def _folds(prep: Prepared, n_folds: int, n_blocks: int) -> np.ndarray:
    return _deal_folds(_block_ids(prep, n_blocks), n_folds, prep.rng(11))


def probe_folds(theta, *, param_names: Sequence[str] = PARAM_NAMES, grid_index=None,
                scales=None, n_folds: int = 5, n_blocks: int = 4, random_state=0) -> np.ndarray:
    """Fold of every sound in the grouped cross-validation of :func:`probe_r2`.

    Parameters
    ----------
    theta : np.ndarray, shape (n_sounds, n_params), float
    param_names, grid_index, scales, random_state
        As in :func:`gear.disentangle.disentanglement_metrics`.
    n_folds : int
    n_blocks : int
        Blocks per parameter axis.

    Returns
    -------
    np.ndarray, shape (n_sounds,), int64
        Fold index in [0, n_folds).
    """
    theta = np.asarray(theta, dtype=float)
    # the embedding is irrelevant to the folds; theta itself stands in for it
    prep = prepare(theta, theta, param_names=param_names, grid_index=grid_index,
                   scales=scales, random_state=random_state)
    return _folds(prep, check_int(n_folds, "n_folds", 2), check_int(n_blocks, "n_blocks", 2))


def _r2(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    ss_res = np.sum((y - yhat) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    return 1.0 - ss_res / ss_tot


def _standardise(X: np.ndarray) -> np.ndarray:
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd < 1e-12 * max(1.0, float(sd.max(initial=0.0)))] = 1.0  # constant features stay 0
    return (X - mu) / sd


def principal_scores(X: np.ndarray, k: int, *, random_state: int = 0) -> np.ndarray:
    """Scores on the top ``k`` principal components of the rows of ``X``.

    The decomposition is taken of the smaller of the two Gram matrices (n x n when dim > n,
    dim x dim otherwise): exactly (symmetric eigen-decomposition) when it is at most 512 x 512,
    otherwise by a seeded randomized range finder with 4 power iterations on the Gram matrix
    (Halko et al. 2011), accurate for the leading components and a fraction of the cost of a
    full eigen-decomposition (a 2 500 x 4 096 embedding costs one 2 500 x 2 500 product).

    Parameters
    ----------
    X : np.ndarray, shape (n, dim), float64
    k : int
    random_state : int

    Returns
    -------
    np.ndarray, shape (n, <= k), float64
        Columns in decreasing variance (components with zero variance dropped); signs fixed
        so each column's largest-|value| entry is positive (deterministic).
    """
    from scipy.linalg import eigh
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits

    Xc = X - X.mean(axis=0)
    n, d = Xc.shape
    k = max(1, min(k, n - 1, d))
    dual = d > n
    C = Xc @ Xc.T if dual else Xc.T @ Xc
    m = C.shape[0]
    if m <= 512:
        w, V = eigh(C)
        w, V = w[::-1][:k], V[:, ::-1][:, :k]
    else:
        # LU/QR of tall thin blocks: extra BLAS threads only spin (and oversubscribe)
        with threadpool_limits(limits=1, user_api="blas"):
            V, w, _ = randomized_svd(C, k, n_oversamples=max(10, k // 4), n_iter=4,
                                     random_state=random_state)
    keep = w > 1e-12 * max(float(w[0]), 1e-300)
    w, V = w[keep], V[:, keep]
    S = V * np.sqrt(w) if dual else Xc @ V
    big = np.argmax(np.abs(S), axis=0)
    S *= np.sign(S[big, np.arange(S.shape[1])])
    return S


def _fit_probes(prep: Prepared, *, n_folds: int, n_blocks: int, ridge_components: int,
                mlp_components: int, mlp_hidden: Sequence[int], mlp_max_iter: int,
                ridge_alphas, do_mlp: bool):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import RidgeCV
    from sklearn.neural_network import MLPRegressor
    from threadpoolctl import threadpool_limits

    folds = _folds(prep, n_folds, n_blocks)
    y = prep.z
    P = principal_scores(_standardise(prep.X), max(ridge_components, mlp_components),
                         random_state=prep.seed)
    P_ridge = P[:, :ridge_components]
    P_mlp = P[:, :mlp_components]
    P_mlp = P_mlp / max(float(P_mlp[:, 0].std()), 1e-300)
    pred_ridge = np.empty_like(y)
    pred_chance = np.empty_like(y)
    pred_mlp = np.empty_like(y)
    not_converged = 0
    n_fits = 0
    for f in range(n_folds):
        test = folds == f
        train = ~test
        with threadpool_limits(limits=1, user_api="blas"):
            ridge = RidgeCV(alphas=ridge_alphas, alpha_per_target=True).fit(P_ridge[train],
                                                                             y[train])
            pred_ridge[test] = ridge.predict(P_ridge[test])
        pred_chance[test] = y[train].mean(axis=0)
        if not do_mlp:
            continue
        mlp = MLPRegressor(hidden_layer_sizes=tuple(mlp_hidden), solver="adam", alpha=1e-3,
                           learning_rate_init=3e-3, batch_size=min(200, int(train.sum())),
                           max_iter=mlp_max_iter, early_stopping=True, validation_fraction=0.1,
                           n_iter_no_change=10, random_state=prep.seed + f)
        # small matrices: BLAS threads only add overhead (and oversubscribe)
        with threadpool_limits(limits=1, user_api="blas"), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            mlp.fit(P_mlp[train], y[train])
            pred_mlp[test] = mlp.predict(P_mlp[test]).reshape(-1, prep.p)
        n_fits += 1
        not_converged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
    if not_converged:
        warnings.warn(
            f"the MLP probe stopped at mlp_max_iter={mlp_max_iter} epochs before its "
            f"early-stopping criterion in {not_converged} of {n_fits} fits; its R^2 may be a "
            f"little low: raise mlp_max_iter",
            ConvergenceWarning,
            stacklevel=4,
        )
    out = {"ridge": _r2(y, pred_ridge), "chance": _r2(y, pred_chance), "folds": folds}
    if do_mlp:
        out["mlp"] = _r2(y, pred_mlp)
    return out


def probe_r2(embedding, theta, *, param_names: Sequence[str] = PARAM_NAMES, grid_index=None,
             scales=None, n_folds: int = 5, n_blocks: int = 4, ridge_components: int = 256,
             mlp_components: int = 128,
             mlp_hidden: Sequence[int] = (64,), mlp_max_iter: int = 300,
             ridge_alphas=RIDGE_ALPHAS, mlp: bool = True, random_state=0) -> dict:
    """Cross-validated R^2 of ridge and MLP probes of each parameter (see module docstring).

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
    theta : np.ndarray, shape (n_sounds, n_params), float
    param_names, grid_index, scales, random_state
        As in :func:`gear.disentangle.disentanglement_metrics`.
    n_folds : int
        Cross-validation folds (5).
    n_blocks : int
        Contiguous blocks per parameter axis (4): a fold holds out whole blocks.
    ridge_components : int
        Principal components fed to the ridge probe (256).
    mlp_components : int
        Principal components fed to the MLP (128).
    mlp_hidden : sequence of int
        Hidden layer sizes of the MLP ((64,)).
    mlp_max_iter : int
        Adam epochs of the MLP (300); a ConvergenceWarning says when it stopped early.
    ridge_alphas : sequence of float
        Ridge penalties searched by RidgeCV.
    mlp : bool
        Fit the MLP probe (True); False skips it (ridge only, faster).

    Returns
    -------
    dict
        ``"ridge"``, ``"chance"`` and (when ``mlp``) ``"mlp"``: np.ndarray, shape
        (n_params,), float64, the R^2 per parameter in ``param_names`` order; ``"folds"``: np.ndarray, shape
        (n_sounds,), int64, the fold of every sound.
    """
    prep = prepare(embedding, theta, param_names=param_names, grid_index=grid_index,
                   scales=scales, random_state=random_state)
    return _probe(prep, n_folds=n_folds, n_blocks=n_blocks, ridge_components=ridge_components,
                  mlp_components=mlp_components, mlp_hidden=mlp_hidden, mlp_max_iter=mlp_max_iter,
                  ridge_alphas=ridge_alphas, mlp=mlp)


def _probe(prep: Prepared, *, n_folds=5, n_blocks=4, ridge_components=256, mlp_components=128,
           mlp_hidden=(64,), mlp_max_iter=300, ridge_alphas=RIDGE_ALPHAS, mlp=True) -> dict:
    n_folds = check_int(n_folds, "n_folds", 2)
    n_blocks = check_int(n_blocks, "n_blocks", 2)
    ridge_components = check_int(ridge_components, "ridge_components", 1)
    mlp_components = check_int(mlp_components, "mlp_components", 1)
    mlp_max_iter = check_int(mlp_max_iter, "mlp_max_iter", 1)
    hidden = tuple(mlp_hidden) if not isinstance(mlp_hidden, (int, np.integer)) else (mlp_hidden,)
    if not hidden:
        raise ParameterError("mlp_hidden must name at least one hidden layer size, e.g. (64,)")
    for h in hidden:
        check_int(h, "mlp_hidden size", 1)
    alphas = np.asarray(ridge_alphas, dtype=float).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise ParameterError(f"ridge_alphas={ridge_alphas!r} must be positive finite numbers")
    return _fit_probes(prep, n_folds=n_folds, n_blocks=n_blocks,
                       ridge_components=ridge_components, mlp_components=mlp_components,
                       mlp_hidden=hidden, mlp_max_iter=mlp_max_iter, ridge_alphas=alphas,
                       do_mlp=bool(mlp))
