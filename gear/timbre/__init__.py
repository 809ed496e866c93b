"""Timbre metric learning: learned distances that agree with human dissimilarity ratings
(Thoret et al. 2021, Nature Human Behaviour; Pascal & Lagrange 2024, EUSIPCO).

* :mod:`gear.timbre.data` — load and validate a study folder (``shared/timbre`` layout);
* :mod:`gear.timbre.solver` — the exact certified solver, the faithful reference
  procedure, the Pearson-on-d variant, and the :class:`MetricLearner` estimator;
* :mod:`gear.timbre.validation` — out-of-sample explained variance (``exact-loso``,
  ``exact-kfold``);
* :mod:`gear.timbre.rankmetrics` — fixed-distance rank metrics after timbremetrics;
* :mod:`gear.timbre.studies` — the explained-variance, rank-metric and published tables, the
  robustness study and the zoo-model hook (HTML pages: :mod:`gear.timbre.pages`);
* :func:`gear.timbre.evaluate` (:mod:`gear.timbre.evaluation`) — all of it for any
  embedding function, fast enough for every epoch;
* :mod:`gear.timbre.cli` — ``gear timbre table|metrics|robustness``.
"""
from gear.timbre.data import (
    ALIGNMENT_LABELS,
    Study,
    representation_alignment,
    default_data_dir,
    list_representations,
    list_studies,
    load_audio,
    load_features,
    load_study,
)
from gear.timbre.solver import (
    MODES,
    Certificate,
    MetricLearner,
    Solution,
    pair_differences,
    solve_exact,
    solve_faithful,
    solve_pearson_d,
)

from gear.timbre.evaluation import Evaluation, evaluate
from gear.timbre.rankmetrics import rank_metrics
from gear.timbre.validation import OUT_OF_SAMPLE_MODES, out_of_sample

__all__ = [
    "ALIGNMENT_LABELS",
    "representation_alignment",
    "Evaluation",
    "evaluate",
    "rank_metrics",
    "OUT_OF_SAMPLE_MODES",
    "out_of_sample",
    "Study",
    "default_data_dir",
    "list_representations",
    "list_studies",
    "load_audio",
    "load_features",
    "load_study",
    "MODES",
    "Certificate",
    "MetricLearner",
    "Solution",
    "pair_differences",
    "solve_exact",
    "solve_faithful",
    "solve_pearson_d",
]
