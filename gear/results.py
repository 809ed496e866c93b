"""Containers passed between analysis, storage and the report."""
from __future__ import annotations

import dataclasses
from typing import Dict, List

import numpy as np

#: Columns of ``scores.csv`` (a stable, documented output).
SCORE_COLUMNS = ("model", "parameter", "median_abs_log_ratio", "iqr", "ci_low", "ci_high", "n")


@dataclasses.dataclass
class ModelResult:
    """Everything GEAR computed for one model on one tone set.

    Attributes
    ----------
    name : str
        Registry name of the model (``naive``, ``crepe-full``, ...).
    description : str
        One line describing the model and its weights.
    isomap : np.ndarray, shape (n_sounds, 3), float
        Isomap coordinates of the sounds (rows in tone-set order).
    log_ratios : dict of str -> np.ndarray, shape (n_sounds,), float
        Per parameter (``f1_hz``, ``alpha``, ``r``), the K-NN log-ratio of every sound;
        NaN where it is undefined (theta_i = 0 on a linear scale).
    scores : list of dict
        One row per parameter with the keys of :data:`SCORE_COLUMNS` (minus ``model``) and
        ``chance``: the median |log-ratio| a shuffled embedding would get.
    warnings : list of str
        Things the reader must know (disconnected K-graph, quantised weights, ...).
    n_components : int
        Connected components of the Isomap K-nearest-neighbour graph.
    embedding_dim : int
        Dimension of the embedding.
    flags : list of str
        What the sanity checks found before storing (``constant-embedding``,
        ``batch-dependent``); shown in the leaderboard.
    normalised : dict of str -> float
        Per cause factor, the normalised neighbour score (0 = as good as an oracle that knows
        the factors, 1 = chance; :mod:`gear.metrics.neighbours`), and ``mean`` over them: what
        the leaderboard ranks by.
    """

    name: str
    description: str
    isomap: np.ndarray
    log_ratios: Dict[str, np.ndarray]
    scores: List[dict]
    warnings: List[str] = dataclasses.field(default_factory=list)
    n_components: int = 1
    embedding_dim: int = 0
    flags: List[str] = dataclasses.field(default_factory=list)
    normalised: Dict[str, float] = dataclasses.field(default_factory=dict)
