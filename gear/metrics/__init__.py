"""Scores that compare across grids, families and models (issue 10).

Every metric family is a function ``(design, **context) -> rows``, and one table,
:data:`METRICS`, drives :func:`evaluate` (mir_eval style): add a family by adding a row.
Rows are those of ``disentanglement.csv``: ``metric, parameter, value, ci_low, ci_high, note``;
``parameter`` is a factor name, or ``"all"`` for whole-model metrics; a metric undefined on a
design (MIG with one code, Davies-Bouldin with one class, a constant factor) has an empty value
and a ``note`` saying why: never an exception.

=======================  =======================================================  =============
family                   metrics                                                  module
=======================  =======================================================  =============
neighbours               normalised_score, oracle, chance, mean_abs_log_ratio,    .neighbours
                         purity, purity_oracle, purity_chance
standard                 dci_disentanglement, dci_completeness,                   .standard
                         dci_informativeness, mig, sap, modularity, explicitness
clusters                 davies_bouldin, silhouette (+ _chance)                   .clusters
sweeps                   sweep_spearman                                           .sweeps
=======================  =======================================================  =============

Model-model similarity (linear CKA, debiased CKA, RSA) compares pairs of models, so it is not
in the per-model table: :func:`gear.metrics.similarity.similarity_rows`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._common import Design, make_design, row
from .clusters import cluster_rows
from .neighbours import neighbour_rows
from .similarity import SIMILARITY_COLUMNS, similarity_rows
from .standard import standard_rows
from .sweeps import harmonic_sweeps, sweep_rows

__all__ = ["METRICS", "MetricFamily", "EXPLANATIONS", "CAUSE_FACTORS", "evaluate",
           "mean_normalised_score", "make_design", "similarity_rows", "SIMILARITY_COLUMNS",
           "harmonic_sweeps"]

#: The cause factors of GEAR's tones (the leaderboard averages the normalised score over them).
CAUSE_FACTORS = ("f1_hz", "alpha", "r")


@dataclasses.dataclass(frozen=True)
class MetricFamily:
    """One row of the metric table: a name, the function, and the metrics it writes."""

    name: str
    function: Callable[..., List[dict]]
    metrics: Tuple[str, ...]
    whole_model: bool = False


def _neighbours(design: Design, *, n_neighbors=None, n_resamples: int = 1000, **_):
    return neighbour_rows(design, n_neighbors=n_neighbors, n_resamples=n_resamples)


def _standard(design: Design, *, n_components: int = 10, **_):
    return standard_rows(design, n_components=n_components)


def _clusters(design: Design, *, distances=None, **_):
    return cluster_rows(design, distances=distances)


def _sweeps(design: Design, *, grid_index=None, sweeps=None, **_):
    return sweep_rows(design, grid_index=grid_index, sweeps=sweeps)


#: The metric table: evaluated in this order by :func:`evaluate`.
METRICS: Tuple[MetricFamily, ...] = (
    MetricFamily("neighbours", _neighbours, ("mean_abs_log_ratio", "oracle", "chance",
                                             "normalised_score", "purity", "purity_oracle",
                                             "purity_chance")),
    MetricFamily("standard", _standard, ("dci_disentanglement", "dci_completeness",
                                         "dci_informativeness", "mig", "sap", "modularity",
                                         "explicitness"), whole_model=True),
    MetricFamily("clusters", _clusters, ("davies_bouldin", "davies_bouldin_chance", "silhouette",
                                         "silhouette_chance")),
    MetricFamily("sweeps", _sweeps, ("sweep_spearman",)),
)

#: Plain-words explanation of each metric, with its chance level (shown on the report page).
EXPLANATIONS: Dict[str, str] = {
    "normalised_score": "Where the K-nearest-neighbour error of a factor sits between the best "
                        "possible on this design (0: neighbours chosen knowing the factors) and "
                        "random neighbours (1). Comparable across grids and models; lower is better.",
    "mean_abs_log_ratio": "The paper's K-NN error |log(predicted / true)| averaged over sounds "
                          "(the median saturates at 0 for well-encoded factors; the mean does not).",
    "oracle": "The same mean error with neighbours found in factor space: what knowing the factors "
              "achieves on this design and K.",
    "chance": "The same mean error with random neighbours: what a shuffled embedding scores.",
    "purity": "For a discrete factor (f1 bins, classes): the fraction of a sound's neighbours that "
              "share its value. Chance: the probability that two random sounds share it.",
    "dci_disentanglement": "DCI (Eastwood & Williams 2018): does each code dimension (principal "
                           "component) serve a single factor? 1 = each one factor, 0 = all equally.",
    "dci_completeness": "DCI: is each factor captured by a single code dimension? 1 = one, 0 = spread.",
    "dci_informativeness": "DCI: how well all codes together predict the factors (held-out R², "
                           "0 = chance, 1 = perfect).",
    "mig": "Mutual information gap (Chen et al. 2018): how much more one code tells about a factor "
           "than the second best, relative to the factor's entropy. 0 = chance or entangled.",
    "sap": "Separated attribute predictability (Kumar et al. 2018): gap between the two code "
           "dimensions that best predict a factor alone (R²). 0 = chance or entangled.",
    "modularity": "Ridgeway & Mozer 2018: does each code dimension depend on one factor only? "
                  "1 = yes; shuffled embeddings score about 0.1.",
    "explicitness": "Ridgeway & Mozer 2018: how well a linear classifier on the codes recovers "
                    "each (binned) factor, ROC AUC: 0.5 = chance, 1 = explicit.",
    "davies_bouldin": "Davies-Bouldin index of the sounds grouped by a discrete factor: spread "
                      "within groups over distance between them. Lower is better; chance: "
                      "shuffled labels.",
    "silhouette": "Silhouette of the same groups: +1 = tight separate groups, 0 = overlapping "
                  "(chance), negative = mixed.",
    "sweep_spearman": "Along sweeps of one factor, the rank correlation between the distance "
                      "from the first sound and the step: 1 = the embedding moves steadily "
                      "away, 0 = no trend (chance).",
}


def _failed(family: MetricFamily, design: Design, reason: str) -> List[dict]:
    parameters = ["all"] if family.whole_model else list(design.names)
    return [row(m, p, note=reason) for m in family.metrics for p in parameters
            if not m.startswith("purity")]


def evaluate(embedding, theta, *, names: Sequence[str] = CAUSE_FACTORS,
             scales: Optional[Mapping[str, str]] = None, grid_index=None, distances=None,
             sweeps=None, families: Optional[Sequence[str]] = None, random_state: int = 0,
             timings: Optional[dict] = None, **options) -> List[dict]:
    """Every metric of the table on one embedding.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim)
    theta : np.ndarray, shape (n_sounds, n_factors)
        Factors in natural units (f1 in Hz).
    names : sequence of str
        Factor names (default f1_hz, alpha, r).
    scales : mapping, optional
        Factor -> "linear" | "log" (default log for names starting with f1).
    grid_index : np.ndarray, shape (n_sounds, n_factors), int, optional
        Grid positions (-1: off-grid); gives the sweeps.
    distances : np.ndarray, shape (n_sounds, n_sounds), optional
        The embedding's distance matrix if already computed.
    sweeps : dict, optional
        Explicit sweeps, see :func:`gear.metrics.sweeps.sweep_rows`.
    families : sequence of str, optional
        Only these families of :data:`METRICS`.
    random_state : int
    timings : dict, optional
        Filled with wall-clock seconds per family.
    **options
        ``n_neighbors`` (default 1.6 % of the sounds: 40 on 2 500), ``n_resamples`` (1000),
        ``n_components`` (10).

    Returns
    -------
    list of dict
        Rows ``metric, parameter, value, ci_low, ci_high, note``.
    """
    design = make_design(embedding, theta, names=names, scales=scales, random_state=random_state)
    context = dict(options, grid_index=grid_index, distances=distances, sweeps=sweeps)
    rows: List[dict] = []
    for family in METRICS:
        if families is not None and family.name not in families:
            continue
        t = time.perf_counter()
        try:
            rows += family.function(design, **context)
        except ValueError as error:  # a design the family cannot handle: say so, go on
            rows += _failed(family, design, f"{family.name} metrics undefined on this design: {error}")
        if timings is not None:
            timings[family.name] = time.perf_counter() - t
    return rows


def mean_normalised_score(rows: Sequence[Mapping], factors: Sequence[str] = CAUSE_FACTORS) -> float:
    """The mean normalised neighbour score over the cause factors (the leaderboard's ranking).

    Parameters
    ----------
    rows : sequence of dict
        One model's rows (``metric, parameter, value``), e.g. from :func:`evaluate` or
        ``disentanglement.csv``.
    factors : sequence of str
        The cause factors averaged (default f1_hz, alpha, r); a factor without a finite
        normalised score makes the result NaN, so models are ranked on the same factors.

    Returns
    -------
    float
        0 = as good as the oracle on every factor, 1 = chance; lower is better.
    """
    values = {r["parameter"]: float(r["value"]) for r in rows
              if r["metric"] == "normalised_score" and r["value"] is not None}
    picked = [values.get(f, np.nan) for f in factors]
    return float(np.mean(picked)) if picked and np.all(np.isfinite(picked)) else float("nan")
