"""The disentanglement metrics of representation learning, on (embedding, factors) arrays.

Each follows its paper; where a paper leaves a choice open, the choice is stated here.

- **Codes.** Embeddings have up to thousands of dimensions, while these metrics score every
  code dimension against every factor. The codes are the first ``k`` principal components of
  the embedding (PCA fitted on the design; default ``k = 10``, fewer when the embedding has
  fewer dimensions). Tests check that the conclusions on the controls do not change with k.
- **Factors** are on their scales (log f1). For the information metrics a factor is
  discretised into its distinct values when it has at most ``n_bins`` of them (grid axes,
  f1 bins), else into ``n_bins = 20`` equal-width bins; the codes into 20 equal-width bins
  (the histogram discretisation of Locatello et al.'s disentanglement_lib).
- **DCI** (Eastwood & Williams 2018): importance ``R[i, j]`` of code i for factor j from a
  gradient-boosted regression of the factor on all codes (scikit-learn
  ``GradientBoostingRegressor``, impurity importances), fitted on a random 80 % of the sounds.
  Disentanglement ``D = sum_i rho_i (1 - H_K(P_i.))`` with ``P_ij = R_ij / sum_j R_ij``,
  ``rho_i = sum_j R_ij / sum R`` and entropy in base K (factors); completeness
  ``C = mean_j (1 - H_D(P~_.j))``, ``P~_ij = R_ij / sum_i R_ij``, base D (codes);
  informativeness = mean held-out R^2 of the regressions on the other 20 % (higher is better;
  the paper's version is the error, 1 - R^2 on standardised factors is its NRMSE^2).
- **MIG** (Chen et al. 2018): ``mean_j (I(v_j; c_(1)) - I(v_j; c_(2))) / H(v_j)``, the gap
  between the two codes sharing most information with the factor, mutual information of the
  discretised codes and factors (nats).
- **SAP** (Kumar et al. 2018): ``S_ij`` = R^2 of a linear regression of factor j on code i
  alone (the squared correlation, factors continuous); ``SAP = mean_j`` of the gap between the
  two largest ``S_ij``.
- **Modularity** (Ridgeway & Mozer 2018): from the mutual information ``m_ij`` of code i and
  factor j, ``1 - sum_j (m_ij - t_ij)^2 / (theta_i^2 (K - 1))`` averaged over codes, with
  ``theta_i = max_j m_ij`` and ``t_ij = theta_i`` at the arg max, 0 elsewhere. The paper
  averages codes uniformly; here each code is weighted by ``theta_i / sum theta``, because
  PCA codes that carry no information (noise, for k above the embedding's rank) have a
  near-uniform bias-level m_ij and would pull the mean towards 0 as k grows (axis-aligned
  control: 0.99 at k = 3; at k = 10, 0.40 with uniform weights and 0.86 with these).
- **Explicitness** (Ridgeway & Mozer 2018): mean one-vs-rest ROC AUC of a logistic regression
  of each discretised factor on the codes, on held-out sounds (0.5 = chance, 1 = explicit).

A maintained package that takes plain arrays does not exist on our versions: Google's
``disentanglement_lib`` needs TensorFlow 1 and gin; ``disent`` wraps the same code around
PyTorch Lightning datasets. The formulas are therefore tested on small cases computed by hand
from the papers and on controls with known answers.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from ._common import Design, discretise, row

__all__ = ["dci_from_importance", "mig_from_information", "sap_from_scores",
           "modularity_from_information", "codes", "importance_matrix", "mutual_information",
           "standard_rows"]

_SALT_SPLIT, _SALT_MODEL = 21, 22


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -(p * logs).sum(axis=axis) / np.log(base)


def dci_from_importance(R) -> Tuple[float, float]:
    """DCI disentanglement and completeness of an importance matrix.

    Parameters
    ----------
    R : array, shape (n_codes, n_factors), non-negative

    Returns
    -------
    (disentanglement, completeness) : floats; NaN where undefined (one factor for D, one code
    for C, or no importance at all).
    """
    R = np.abs(np.asarray(R, dtype=np.float64))
    n_codes, n_factors = R.shape
    total = R.sum()
    if total <= 0:
        return np.nan, np.nan
    d = np.nan
    if n_factors > 1:
        code_sum = R.sum(axis=1)
        P = R / np.where(code_sum > 0, code_sum, 1.0)[:, None]
        d = float(np.sum(code_sum / total * (1.0 - _entropy(P, n_factors, axis=1))))
    c = np.nan
    if n_codes > 1:
        factor_sum = R.sum(axis=0)
        P = R / np.where(factor_sum > 0, factor_sum, 1.0)[None, :]
        c = float(np.mean((1.0 - _entropy(P, n_codes, axis=0))[factor_sum > 0]))
    return d, c


def _top_two_gap(S: np.ndarray) -> np.ndarray:
    """Per column of S (codes x factors): largest minus second largest entry."""
    top = np.sort(S, axis=0)[::-1]
    return top[0] - top[1]


def mig_from_information(M, entropies) -> float:
    """MIG from mutual information ``M`` (codes x factors) and factor entropies (nats)."""
    M = np.asarray(M, dtype=np.float64)
    return float(np.mean(_top_two_gap(M) / np.asarray(entropies, dtype=np.float64)))


def sap_from_scores(S) -> float:
    """SAP from the score matrix ``S`` (codes x factors, R^2 of single-code predictions)."""
    return float(np.mean(_top_two_gap(np.asarray(S, dtype=np.float64))))


def modularity_from_information(M, *, weighted: bool = True) -> float:
    """Ridgeway & Mozer's modularity of a mutual-information matrix (codes x factors);
    ``weighted=False`` is the paper's uniform mean over codes."""
    M = np.asarray(M, dtype=np.float64)
    peak = M.max(axis=1)
    template = np.zeros_like(M)
    template[np.arange(M.shape[0]), M.argmax(axis=1)] = peak
    ok = peak > 0
    if not ok.any():
        return np.nan
    deviation = ((M - template) ** 2).sum(axis=1)[ok] / (peak[ok] ** 2 * (M.shape[1] - 1))
    weights = peak[ok] if weighted else np.ones(int(ok.sum()))
    return float(np.sum(weights * (1.0 - deviation)) / np.sum(weights))


def codes(X: np.ndarray, n_components: int = 10, *, random_state: int = 0) -> np.ndarray:
    """The first ``n_components`` principal components of an embedding, shape (n_sounds, k)."""
    from sklearn.decomposition import PCA

    k = int(min(n_components, X.shape[1], X.shape[0] - 1))
    solver = "randomized" if min(X.shape) > 4 * k and X.shape[1] > 500 else "full"
    return PCA(n_components=k, svd_solver=solver, random_state=random_state).fit_transform(X)


def _split(n: int, rng) -> Tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    cut = int(round(0.8 * n))
    return order[:cut], order[cut:]


def importance_matrix(C: np.ndarray, U: np.ndarray, *, random_state: int = 0):
    """Gradient-boosting importances (codes x factors) and held-out R^2 per factor."""
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng([random_state, _SALT_SPLIT])
    train, test = _split(C.shape[0], rng)
    R = np.zeros((C.shape[1], U.shape[1]))
    r2 = np.zeros(U.shape[1])
    for j in range(U.shape[1]):
        model = GradientBoostingRegressor(n_estimators=60, max_depth=3, subsample=0.8,
                                          random_state=random_state + j)
        model.fit(C[train], U[train, j])
        R[:, j] = model.feature_importances_
        r2[j] = model.score(C[test], U[test, j])
    return R, r2


def mutual_information(C: np.ndarray, V: np.ndarray, *, n_bins: int = 20):
    """Mutual information (nats) of discretised codes and factors, and factor entropies."""
    from sklearn.metrics import mutual_info_score

    codes_d = [discretise(C[:, i], n_bins) for i in range(C.shape[1])]
    factors_d = [discretise(V[:, j], n_bins) for j in range(V.shape[1])]
    M = np.array([[mutual_info_score(f, c) for f in factors_d] for c in codes_d])
    H = np.array([mutual_info_score(f, f) for f in factors_d])
    return M, H, factors_d


def _explicitness(C: np.ndarray, labels: List[np.ndarray], rng) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler, label_binarize

    train, test = _split(C.shape[0], rng)
    scaled = StandardScaler().fit(C[train]).transform(C)
    aucs = []
    for y in labels:
        classes = np.unique(y[train])
        keep = np.isin(y[test], classes)
        if classes.size < 2 or np.unique(y[test][keep]).size < 2:
            continue
        model = LogisticRegression(max_iter=300).fit(scaled[train], y[train])
        proba = model.predict_proba(scaled[test][keep])
        truth = label_binarize(y[test][keep], classes=classes)
        if classes.size == 2:
            truth, proba = truth[:, 0], proba[:, 1]
            aucs.append(roc_auc_score(truth, proba))
            continue
        present = truth.sum(axis=0) > 0
        aucs.append(roc_auc_score(truth[:, present], proba[:, present], average="macro"))
    return float(np.mean(aucs)) if aucs else np.nan


def standard_rows(design: Design, *, n_components: int = 10, n_bins: int = 20) -> List[dict]:
    """DCI, MIG, SAP, modularity and explicitness of one embedding (module docstring).

    Parameters
    ----------
    design : Design
    n_components : int
        k, the principal components used as codes.
    n_bins : int
        Bins of the discretisation (codes, and factors with more than ``n_bins`` values).

    Returns
    -------
    list of dict
        Whole-model rows (``parameter = "all"``); undefined metrics have a note.
    """
    varying = design.varying()
    names = [n for n, v in zip(design.names, varying) if v]
    metrics = ("dci_disentanglement", "dci_completeness", "dci_informativeness", "mig", "sap",
               "modularity", "explicitness")
    if not names:
        return [row(m, "all", note="every factor is constant on this design") for m in metrics]
    U = design.z()[:, varying]
    C = codes(design.X, n_components, random_state=design.seed)
    dropped = [n for n, v in zip(design.names, varying) if not v]
    suffix = f" (constant factors left out: {', '.join(dropped)})" if dropped else ""
    R, r2 = importance_matrix(C, U, random_state=design.seed)
    d, c = dci_from_importance(R)
    M, H, labels = mutual_information(C, U, n_bins=n_bins)
    S = np.array([[np.corrcoef(C[:, i], U[:, j])[0, 1] ** 2 if C[:, i].std() > 0 else 0.0
                   for j in range(U.shape[1])] for i in range(C.shape[1])])
    one_code = C.shape[1] < 2
    one_factor = U.shape[1] < 2
    out = [
        row("dci_disentanglement", "all", d,
            note="" if np.isfinite(d) else "needs at least 2 varying factors" + suffix),
        row("dci_completeness", "all", c,
            note="" if np.isfinite(c) else "needs at least 2 code dimensions" + suffix),
        row("dci_informativeness", "all", float(np.mean(r2))),
        row("mig", "all", np.nan if one_code else mig_from_information(M, H),
            note="needs at least 2 code dimensions" if one_code else ""),
        row("sap", "all", np.nan if one_code else sap_from_scores(S),
            note="needs at least 2 code dimensions" if one_code else ""),
        row("modularity", "all", np.nan if one_factor else modularity_from_information(M),
            note="needs at least 2 varying factors" + suffix if one_factor else ""),
    ]
    e = _explicitness(C, labels, design.rng(_SALT_MODEL))
    out.append(row("explicitness", "all", e, note="" if np.isfinite(e) else "no factor has 2 classes"))
    return [dict(r, note=r["note"] or suffix.strip(" ()")) for r in out]
