"""Monotonic sweeps (after Combes et al.'s synth-proxy model ranking).

A sweep moves one factor in steps while the others stay fixed. A representation that tracks
the factor moves away from the sweep's first sound as the step grows: ``sweep_spearman`` is the
Spearman correlation between the embedding distance to the first sound and the step index,
per sweep; the metric is its median over the sweeps of a factor, with a bootstrap 95 % CI of
the median (sweeps resampled). 1: distances grow monotonically; about 0: no trend.

Where the sweeps come from:

- :func:`grid_sweeps`: on a stored design, every line of a grid axis (the other on-grid factors
  fixed). On the paper grid f1 has no grid axis, so alpha and r sweeps have a random f1 per
  step: they measure monotonicity despite f1 changes, and f1 gets a note. A factorial grid
  gives clean sweeps for every factor;
- :func:`harmonic_sweeps`: clean harmonic-family sweeps (f1, alpha or r stepped from random
  starting tones, the others fixed), rendered by the caller with :func:`synth.harmonic_tones`
  or embedded as a :class:`synth.ToneSet` (until the families issue brings a ``sweep`` design).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from gear.errors import ParameterError

from ._common import Design, row

__all__ = ["sweep_correlations", "grid_sweeps", "harmonic_sweeps", "sweep_tone_set", "explicit_sweeps",
           "sweep_rows"]

_SALT_BOOT = 51
#: Fewest steps a sweep needs.
MIN_STEPS = 3


def sweep_correlations(X: np.ndarray, sweep_id: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Spearman(distance to the first sound, step) of every sweep.

    Parameters
    ----------
    X : np.ndarray, shape (n_sounds, dim)
    sweep_id : np.ndarray, shape (n_sounds,), int
        Which sweep each sound belongs to (-1: none).
    step : np.ndarray, shape (n_sounds,)
        Position along its sweep (the first sound has the smallest step).

    Returns
    -------
    np.ndarray, shape (n_sweeps,)
        One correlation per sweep with >= 3 sounds (NaN when the distances are constant).
    """
    from scipy.stats import spearmanr

    out = []
    for s in np.unique(sweep_id[sweep_id >= 0]):
        members = np.flatnonzero(sweep_id == s)
        if members.size < MIN_STEPS:
            continue
        members = members[np.argsort(step[members], kind="stable")]
        d = np.linalg.norm(X[members] - X[members[0]], axis=1)
        out.append(spearmanr(d, step[members]).statistic if np.ptp(d[1:]) > 0 else np.nan)
    return np.asarray(out, dtype=np.float64)


def grid_sweeps(grid_index: np.ndarray, j: int) -> Tuple[np.ndarray, np.ndarray]:
    """Sweeps along grid axis j: (sweep_id, step) per sound, sweep_id -1 when off-grid."""
    g = np.asarray(grid_index)
    n = g.shape[0]
    if np.any(g[:, j] < 0):
        return np.full(n, -1), np.zeros(n)
    others = [k for k in range(g.shape[1]) if k != j and np.all(g[:, k] >= 0)]
    keys = g[:, others] if others else np.zeros((n, 1), dtype=np.int64)
    sweep_id = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
    return sweep_id.astype(np.int64), g[:, j].astype(np.float64)


def harmonic_sweeps(*, n_sweeps: int = 8, n_steps: int = 12, f1_hz_range=(110.0, 440.0),
                    alpha_range=(0.0, 2.0), r_range=(0.0, 1.0), random_state: int = 0) -> Dict[str, np.ndarray]:
    """Parameters of clean one-factor sweeps of harmonic tones.

    For each factor (f1_hz on a log scale, alpha, r), ``n_sweeps`` starting tones are drawn at
    random and the factor is stepped over its whole range in ``n_steps`` steps, the others fixed.

    Returns
    -------
    dict with ``f1_hz, alpha, r`` (np.ndarray, shape (3 * n_sweeps * n_steps,)), ``factor``
    (index 0, 1, 2 of the swept factor), ``sweep_id`` and ``step`` (ints).
    Render with ``synth.harmonic_tones(out["f1_hz"], out["alpha"], out["r"], ...)``.
    """
    if n_sweeps < 1 or n_steps < MIN_STEPS:
        raise ParameterError(f"need n_sweeps >= 1 and n_steps >= {MIN_STEPS}, got {n_sweeps}, {n_steps}")
    rng = np.random.default_rng(random_state)
    lo = np.array([np.log(f1_hz_range[0]), alpha_range[0], r_range[0]])
    hi = np.array([np.log(f1_hz_range[1]), alpha_range[1], r_range[1]])
    blocks, factor, sweep_id, step = [], [], [], []
    for j in range(3):
        for s in range(n_sweeps):
            start = lo + rng.random(3) * (hi - lo)
            values = np.repeat(start[None, :], n_steps, axis=0)
            values[:, j] = np.linspace(lo[j], hi[j], n_steps)
            blocks.append(values)
            factor += [j] * n_steps
            sweep_id += [j * n_sweeps + s] * n_steps
            step += list(range(n_steps))
    values = np.concatenate(blocks)
    return {"f1_hz": np.exp(values[:, 0]), "alpha": values[:, 1], "r": values[:, 2],
            "factor": np.asarray(factor), "sweep_id": np.asarray(sweep_id), "step": np.asarray(step)}


def sweep_tone_set(sweeps: Dict[str, np.ndarray]):
    """A :class:`synth.ToneSet` (preset ``"custom"``) of the tones of :func:`harmonic_sweeps`,
    ready for :func:`gear.embedder.embed_model`; its ``theta()`` has the sweeps' f1, alpha, r."""
    import synth

    n = sweeps["f1_hz"].size
    return synth.ToneSet(preset="custom", f1_bins=np.asarray(sweeps["f1_hz"], dtype=np.float64) / synth.HZ_PER_BIN,
                         alpha=np.asarray(sweeps["alpha"], dtype=np.float64),
                         r=np.asarray(sweeps["r"], dtype=np.float64), grid_index=np.full((n, 3), -1))


def explicit_sweeps(sweeps: Dict[str, np.ndarray], names=("f1_hz", "alpha", "r")):
    """``{factor name: (sweep_id, step)}`` of :func:`harmonic_sweeps`, for :func:`sweep_rows`."""
    return {name: (np.where(sweeps["factor"] == j, sweeps["sweep_id"], -1), sweeps["step"])
            for j, name in enumerate(names)}


def _median_ci(values: np.ndarray, rng, n_resamples: int = 1000) -> Tuple[float, float]:
    idx = rng.integers(0, values.size, (n_resamples, values.size))
    medians = np.median(values[idx], axis=1)
    return tuple(np.quantile(medians, [0.025, 0.975]))


def sweep_rows(design: Design, *, grid_index: Optional[np.ndarray] = None,
               sweeps: Optional[Dict[str, Tuple[np.ndarray, np.ndarray]]] = None) -> List[dict]:
    """``sweep_spearman`` per factor: median over sweeps with a bootstrap CI.

    Parameters
    ----------
    design : Design
    grid_index : np.ndarray, shape (n_sounds, n_factors), int, optional
        Sweeps along the grid axes (:func:`grid_sweeps`).
    sweeps : dict of factor name -> (sweep_id, step), optional
        Explicit sweeps (overrides ``grid_index`` for the factors it names).
    """
    sweeps = dict(sweeps or {})
    rows = []
    for j, name in enumerate(design.names):
        if name not in sweeps and grid_index is not None:
            sweeps[name] = grid_sweeps(grid_index, j)
        if name not in sweeps:
            rows.append(row("sweep_spearman", name, note="no sweeps on this design"))
            continue
        rho = sweep_correlations(design.X, *sweeps[name])
        rho = rho[np.isfinite(rho)]
        if rho.size == 0:
            rows.append(row("sweep_spearman", name,
                            note=f"{name} has no grid axis (or no sweep of >= {MIN_STEPS} varying sounds) on this design"))
            continue
        ci = _median_ci(rho, design.rng(_SALT_BOOT + j)) if rho.size > 1 else (np.nan, np.nan)
        rows.append(row("sweep_spearman", name, float(np.median(rho)), ci=ci))
    return rows
