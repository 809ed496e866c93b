"""Timbre metric learning: learned distances that agree with human dissimilarity ratings
(Thoret et al. 2021, Nature Human Behaviour; Pascal & Lagrange 2024, EUSIPCO).

* :mod:`gear.timbre.data` — load and validate a study folder (``shared/timbre`` layout);
* :mod:`gear.timbre.solver` — the exact certified solver, the faithful reference
  procedure, the Pearson-on-d variant, and the :class:`MetricLearner` estimator;
* :mod:`gear.timbre.studies` — the explained-variance table, the robustness study and the
  zoo-model hook;
* :mod:`gear.timbre.cli` — ``gear timbre table|robustness``.
"""
from gear.timbre.data import (
    Study,
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

__all__ = [
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
