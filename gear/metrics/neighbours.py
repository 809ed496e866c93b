"""Normalised neighbour scores: GEAR's K-NN log-ratio placed between an oracle and chance.

For a factor theta and K neighbours per sound, the per-sound error is the paper's
|log(theta_tilde_i / theta_i)| with ``theta_tilde_i`` the mean of theta over the neighbours
(on a log scale: the mean of log theta minus log theta_i). Its mean over sounds is computed
three times on the same design:

- ``mean_abs_log_ratio`` (raw): neighbours found in the embedding;
- ``oracle``: neighbours found in factor space (every factor on its scale, standardised),
  i.e. the best a representation that knows theta can do on this design and this K;
- ``chance``: K random neighbours per sound (what a shuffled embedding scores).

``normalised_score = (raw - oracle) / (chance - oracle)``: 0 = as good as the oracle, 1 = chance
(negative: better than the oracle for this factor, which happens when an embedding ignores the
other factors). Confidence intervals: percentile bootstrap over sounds, paired (the same
resampled sounds for raw, oracle and chance).

**K follows the design.** With a fixed K, a denser grid puts K neighbours in a smaller part of
factor space, and every score drops with the density (at K = 40, logmel's normalised alpha score
is 0.20 on the 50 x 50 paper grid and 0.07 on 100 x 100; naive's 0.72 and 0.38). The scores here
use a fixed *fraction* of the sounds instead, ``K = round(neighbour_fraction * n_sounds)``, by
default 1.6 %, which is the paper's K = 40 on its 2 500 tones: the neighbourhood then covers the
same share of the design, and the normalised scores agree across densities (logmel alpha: 0.199
at 50 x 50, K = 40 and 0.201 at 100 x 100, K = 160). ``n_neighbors`` overrides it.

``purity`` (discrete factors only): the mean fraction of a sound's K neighbours that share its
value, beside ``purity_oracle`` and ``purity_chance`` (the expected purity of random
neighbours, sum_c n_c (n_c - 1) / (n (n - 1))).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from gear import analysis
from gear.neighbours import EXACT_MAX_SOUNDS

from ._common import Design, row

__all__ = ["neighbour_rows", "neighbour_count", "abs_log_ratios", "paired_bootstrap",
           "NEIGHBOUR_FRACTION"]

#: Above EXACT_MAX_SOUNDS sounds the neighbours are searched in blocks of about this many
#: (query, neighbour) pairs (memory O(LARGE_BLOCK), not O(n K): K = 1 600 at 100 000 sounds
#: would be 1.3 GB per n x K int64 list, and three are needed).
LARGE_BLOCK = 1_000_000
#: Salt of the random streams (chance neighbours, bootstrap).
_SALT_CHANCE, _SALT_BOOT = 11, 12


def abs_log_ratios(values: np.ndarray, neighbours: np.ndarray, scale: str, *, rows=None) -> np.ndarray:
    """|log-ratio| of every sound for one factor, given its neighbours' indices.

    Parameters
    ----------
    values : np.ndarray, shape (n_sounds,)
    neighbours : np.ndarray, shape (n_queries, K), int
        The neighbours of the sounds ``rows``.
    scale : {"linear", "log"}
    rows : np.ndarray of int, shape (n_queries,), optional
        The query sounds (default: every sound, n_queries = n_sounds).

    Returns
    -------
    np.ndarray, shape (n_queries,)
        NaN where undefined (theta_i = 0 on the linear scale, as in :mod:`gear.analysis`).
    """
    rows = slice(None) if rows is None else rows
    if scale == "log":
        logs = np.log(values)
        return np.abs(logs[neighbours].mean(axis=1) - logs[rows])
    estimate = values[neighbours].mean(axis=1)
    values = values[rows]
    out = np.full(values.shape, np.nan)
    ok = (values != 0) & (estimate / np.where(values != 0, values, 1.0) > 0)
    out[ok] = np.abs(np.log(estimate[ok] / values[ok]))
    return out


def paired_bootstrap(columns: np.ndarray, statistic, *, n_resamples: int = 1000,
                     confidence: float = 0.95, rng=None, chunk: int = 100) -> np.ndarray:
    """Percentile bootstrap interval of ``statistic(means)`` with sounds resampled jointly.

    Parameters
    ----------
    columns : np.ndarray, shape (n_sounds, n_columns)
        Per-sound values (rows with a NaN must be removed first).
    statistic : callable
        Maps the column means, shape (n_resamples, n_columns), to shape (n_resamples, n_out).

    Returns
    -------
    np.ndarray, shape (2, n_out)
        Lower and upper bounds.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    n = columns.shape[0]
    stats = []
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, (min(chunk, n_resamples - start), n))
        stats.append(statistic(columns[idx].mean(axis=1)))
    stats = np.concatenate(stats)
    tail = (1.0 - confidence) / 2.0
    return np.nanquantile(stats, [tail, 1.0 - tail], axis=0)


def _chance_neighbours(n: int, k: int, rng) -> np.ndarray:
    draws = rng.integers(0, n - 1, (n, k))
    return draws + (draws >= np.arange(n)[:, None])  # never self


def _normalised(means: np.ndarray) -> np.ndarray:
    """(raw, oracle, chance) means -> (raw, oracle, chance, normalised)."""
    raw, oracle, chance = means[:, 0], means[:, 1], means[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = (raw - oracle) / (chance - oracle)
    return np.column_stack([raw, oracle, chance, norm])


def _factor_columns(design: Design, nbrs: dict, rows=None) -> Dict[str, np.ndarray]:
    """Per-sound columns of the query sounds ``rows`` (default all) given their neighbours
    ``nbrs`` (embedding, oracle, chance): ``("errors", j)``: |log-ratio| (m, 3) of each varying
    factor; ``("same", j)``: fraction of neighbours sharing the value (m, 2), discrete factors."""
    where = slice(None) if rows is None else rows
    varying, discrete = design.varying(), design.discrete()
    columns = {}
    for j, name in enumerate(design.names):
        values = design.theta[:, j]
        if varying[j]:
            columns[("errors", j)] = np.column_stack([
                abs_log_ratios(values, nbrs[key], design.scales[name], rows=rows)
                for key in ("embedding", "oracle", "chance")])
        if discrete[j]:
            columns[("same", j)] = np.column_stack([(values[nbrs[key]] == values[where, None]).mean(axis=1)
                                                    for key in ("embedding", "oracle")])
    return columns


def _chunked_columns(design: Design, n_neighbors: int, oracle_space: np.ndarray) -> Dict[str, np.ndarray]:
    """:func:`_factor_columns` of every sound, searched in blocks of queries (above
    EXACT_MAX_SOUNDS sounds): no n x K neighbour list is held, memory O(LARGE_BLOCK)."""
    from gear.neighbours import iter_search

    chunk = max(64, LARGE_BLOCK // n_neighbors)
    rng, n = design.rng(_SALT_CHANCE), design.n
    searches = zip(iter_search(design.X, n_neighbors, chunk_size=chunk, random_state=design.seed),
                   iter_search(oracle_space, n_neighbors, chunk_size=chunk, random_state=design.seed))
    parts = []
    for (rows, embedding), (_, oracle) in searches:
        draws = rng.integers(0, n - 1, (rows.size, n_neighbors))
        nbrs = {"embedding": embedding.indices, "oracle": oracle.indices,
                "chance": draws + (draws >= rows[:, None])}  # never self
        parts.append(_factor_columns(design, nbrs, rows))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _log_ratio_rows(design: Design, j: int, columns: dict, n_resamples: int) -> List[dict]:
    name = design.names[j]
    if ("errors", j) not in columns:
        note = f"{name} is constant on this design: no neighbour can be wrong"
        return [row(m, name, note=note) for m in ("mean_abs_log_ratio", "oracle", "chance", "normalised_score")]
    errors = columns[("errors", j)]
    kept = errors[~np.isnan(errors).any(axis=1)]
    if kept.shape[0] < 3:
        note = f"{name}: fewer than 3 sounds with a defined log-ratio"
        return [row(m, name, note=note) for m in ("mean_abs_log_ratio", "oracle", "chance", "normalised_score")]
    point = _normalised(kept.mean(axis=0)[None, :])[0]
    ci = paired_bootstrap(kept, _normalised, n_resamples=n_resamples, rng=design.rng(_SALT_BOOT + j))
    rows = [row(m, name, point[c], ci=ci[:, c])
            for c, m in enumerate(("mean_abs_log_ratio", "oracle", "chance"))]
    if not point[2] - point[1] > 1e-12 * max(point[2], 1e-300):
        rows.append(row("normalised_score", name,
                        note=f"{name}: the oracle is no better than chance on this design"))
    else:
        rows.append(row("normalised_score", name, point[3], ci=ci[:, 3]))
    return rows


def _purity_rows(design: Design, j: int, columns: dict, n_resamples: int) -> List[dict]:
    name = design.names[j]
    values = design.theta[:, j]
    same = columns[("same", j)]
    point = same.mean(axis=0)
    ci = paired_bootstrap(same, lambda m: m, n_resamples=n_resamples, rng=design.rng(_SALT_BOOT + 100 + j))
    counts = np.unique(values, return_counts=True)[1].astype(np.float64)
    n = values.size
    chance = float(np.sum(counts * (counts - 1)) / (n * (n - 1)))
    return [row("purity", name, point[0], ci=ci[:, 0]),
            row("purity_oracle", name, point[1], ci=ci[:, 1]),
            row("purity_chance", name, chance)]


#: Default neighbourhood: 1.6 % of the sounds (K = 40 on the paper's 2 500 tones).
NEIGHBOUR_FRACTION = 0.016


def neighbour_count(n_sounds: int, neighbour_fraction: float = NEIGHBOUR_FRACTION) -> int:
    """K for a design of ``n_sounds``: ``round(neighbour_fraction * n_sounds)`` in [1, n - 1]."""
    return int(min(max(round(neighbour_fraction * n_sounds), 1), n_sounds - 1))


def neighbour_rows(design: Design, *, n_neighbors: Optional[int] = None,
                   neighbour_fraction: float = NEIGHBOUR_FRACTION,
                   n_resamples: int = 1000) -> List[dict]:
    """Normalised neighbour scores and purity of every factor (module docstring).

    Parameters
    ----------
    design : Design
    n_neighbors : int, optional
        K; default :func:`neighbour_count` (40 on 2 500 sounds). Self excluded.
    neighbour_fraction : float
        K as a fraction of the sounds when ``n_neighbors`` is None.
    n_resamples : int
        Bootstrap resamples of the sounds.

    Returns
    -------
    list of dict
        Rows ``metric, parameter, value, ci_low, ci_high, note`` with metrics
        ``mean_abs_log_ratio, oracle, chance, normalised_score`` for every factor and
        ``purity, purity_oracle, purity_chance`` for discrete ones.
    """
    if n_neighbors is None:
        n_neighbors = neighbour_count(design.n, neighbour_fraction)
    varying = design.varying()
    oracle_space = design.z()[:, varying] if varying.any() else design.z()
    if design.n > EXACT_MAX_SOUNDS:
        columns = _chunked_columns(design, n_neighbors, oracle_space)
    else:
        columns = _factor_columns(design, {
            "embedding": analysis.neighbour_indices(design.X, n_neighbors=n_neighbors),
            "oracle": analysis.neighbour_indices(oracle_space, n_neighbors=n_neighbors),
            "chance": _chance_neighbours(design.n, n_neighbors, design.rng(_SALT_CHANCE)),
        })
    rows: List[dict] = []
    discrete = design.discrete()
    for j in range(len(design.names)):
        rows += _log_ratio_rows(design, j, columns, n_resamples)
        if discrete[j]:
            rows += _purity_rows(design, j, columns, n_resamples)
    return rows
