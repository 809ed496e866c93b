"""Neighbour statistics of factors that the log-ratio cannot score.

Every stimulus factor says how it is scored (:attr:`synth.families.Factor.statistic`):

- ``log_ratio``: strictly positive quantities, :func:`gear.analysis.score_embedding` (the
  GEAR paper's statistic, unchanged).
- ``difference``: quantities that can be 0 or negative (gain in dB, HNR in dB, FM rate with
  its sign): the mean of the K nearest neighbours' values minus the sound's value, divided by
  the factor's design range (so 1 = a whole range away). Summary: median |difference|, as
  for the log-ratio; chance: the same with K random neighbours.
- ``agreement``: discrete factors (chord root, quality): the fraction of the K nearest
  neighbours that share the sound's value. Summary: the mean fraction (higher is better);
  chance: the fraction that K neighbours drawn at random (self excluded) share on average,
  ``sum_v n_v (n_v - 1) / (n (n - 1))`` for value counts ``n_v`` (-> ``sum_v p_v**2``).

:func:`score_factors` scores any mix of the three, one row per factor, with the keys of
:data:`gear.results.SCORE_COLUMNS` (the summary in ``median_abs_log_ratio``), ``chance`` and
``statistic``.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

import numpy as np

from gear import analysis
from gear.errors import ParameterError

__all__ = ["STATISTICS", "difference_scores", "agreement_scores", "agreement_chance", "summarise_agreement",
           "score_factors"]

STATISTICS = ("log_ratio", "difference", "agreement")


def difference_scores(values: np.ndarray, neighbours: np.ndarray, *, span: float) -> np.ndarray:
    """(mean of the neighbours' values - the value) / ``span``, per sound.

    Parameters
    ----------
    values : np.ndarray, shape (n_sounds,), float
    neighbours : np.ndarray, shape (n_sounds, K), int
        Each sound's neighbours (self excluded).
    span : float
        The factor's design range (high - low), > 0.

    Returns
    -------
    np.ndarray, shape (n_sounds,), float64
    """
    if not (np.isfinite(span) and span > 0):
        raise ParameterError(f"span={span!r}: the factor's range must be > 0")
    values = np.asarray(values, dtype=np.float64)
    return (values[neighbours].mean(axis=1) - values) / float(span)


def agreement_scores(codes: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Fraction of each sound's neighbours that share its value, shape (n_sounds,), float64."""
    codes = np.asarray(codes)
    return (codes[neighbours] == codes[:, None]).mean(axis=1)


def agreement_chance(codes: np.ndarray) -> float:
    """Expected agreement of K random other sounds: ``sum_v n_v (n_v - 1) / (n (n - 1))``."""
    _, counts = np.unique(np.asarray(codes), return_counts=True)
    n = counts.sum()
    return float(np.sum(counts * (counts - 1.0)) / (n * (n - 1.0))) if n > 1 else float("nan")


def summarise_agreement(values: np.ndarray, *, n_bootstrap: int = 1000, confidence: float = 0.95,
                        random_state: int = 0) -> dict:
    """Mean agreement, its IQR and a bootstrap (percentile) confidence interval of the mean."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=np.float64)
    q1, q3 = np.percentile(values, [25, 75])
    if np.ptp(values) == 0:
        low = high = float(values[0])
    else:
        ci = bootstrap((values,), np.mean, n_resamples=n_bootstrap, confidence_level=confidence,
                       method="percentile", random_state=random_state).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return {"median_abs_log_ratio": float(values.mean()), "iqr": float(q3 - q1), "ci_low": low, "ci_high": high,
            "n": int(values.size)}


def _random_neighbours(n: int, k: int, random_state: int) -> np.ndarray:
    """K distinct other sounds per sound, drawn at random (what a shuffled embedding gives)."""
    rng = np.random.default_rng(random_state)
    picks = np.argsort(rng.random((n, n - 1)), axis=1)[:, :k]
    return picks + (picks >= np.arange(n)[:, None])


def _score_one(statistic, values, neighbours, chance_neighbours, span, n_bootstrap, random_state) -> Tuple:
    if statistic == "difference":
        per_sound = difference_scores(values, neighbours, span=span)
        row = analysis.summarise_log_ratios(per_sound, n_bootstrap=n_bootstrap, random_state=random_state)
        chance = float(np.median(np.abs(difference_scores(values, chance_neighbours, span=span))))
    elif statistic == "agreement":
        per_sound = agreement_scores(values, neighbours)
        row = summarise_agreement(per_sound, n_bootstrap=n_bootstrap, random_state=random_state)
        chance = agreement_chance(values)
    else:
        raise ParameterError(f"statistic={statistic!r}; choose one of {', '.join(STATISTICS)}")
    return per_sound, {**row, "chance": chance}


def score_factors(
    features,
    theta: Mapping[str, np.ndarray],
    *,
    statistics: Mapping[str, str],
    spans: Mapping[str, float],
    n_neighbors: int = 40,
    scaling: str = "none",
    scales: Mapping[str, str] = None,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    neighbours=None,
) -> Tuple[Dict[str, np.ndarray], List[dict]]:
    """Per-sound scores and one summary row per factor, each factor by its statistic.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, dim)
    theta : dict of str -> np.ndarray, shape (n_sounds,)
        Factor values in factor order (discrete factors as value codes).
    statistics : dict of str -> {"log_ratio", "difference", "agreement"}
        Every factor of ``theta``.
    spans : dict of str -> float
        Design range (high - low) of each ``difference`` factor.
    n_neighbors, scaling, scales, n_bootstrap, random_state
        As :func:`gear.analysis.score_embedding` (``scales`` for log-ratio factors).
    neighbours : gear.neighbours.KNeighbours, optional
        A search of the (scaled) features with at least ``n_neighbors`` neighbours, shared with
        Isomap (:func:`gear.analysis.analyse`); default: searched here.

    Returns
    -------
    per_sound : dict of str -> np.ndarray, shape (n_sounds,)
    rows : list of dict
        Keys ``parameter, median_abs_log_ratio, iqr, ci_low, ci_high, n, chance, statistic``
        (``statistic`` only when some factor is not scored by ``log_ratio``).
    """
    unknown = [name for name in theta if statistics.get(name) not in STATISTICS]
    if unknown:
        raise ParameterError(f"factor {unknown[0]!r} has statistic {statistics.get(unknown[0])!r}; "
                             f"choose one of {', '.join(STATISTICS)}")
    logged = [name for name in theta if statistics[name] == "log_ratio"]
    per_sound, rows = {}, {}
    if logged:
        ratios, summary = analysis.score_embedding(
            features, {name: theta[name] for name in logged}, parameters=logged, n_neighbors=n_neighbors,
            scaling=scaling, scales=scales, n_bootstrap=n_bootstrap, random_state=random_state,
            neighbours=neighbours)
        per_sound.update(ratios)
        rows.update({row["parameter"]: row for row in summary})
    others = [name for name in theta if name not in logged]
    if others:
        indices = (analysis.neighbour_indices(features, n_neighbors=n_neighbors, scaling=scaling) if neighbours is None
                   else neighbours.indices[:, :n_neighbors])
        chance_neighbours = _random_neighbours(indices.shape[0], indices.shape[1], random_state)
        for name in others:
            per_sound[name], row = _score_one(statistics[name], np.asarray(theta[name]), indices,
                                              chance_neighbours, spans.get(name, np.nan), n_bootstrap, random_state)
            rows[name] = {"parameter": name, **row}
    ordered = [rows[name] for name in theta]
    if others:
        for row in ordered:
            row["statistic"] = statistics[row["parameter"]]
    return {name: per_sound[name] for name in theta}, ordered
