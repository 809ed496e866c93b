"""Control embeddings with known answers, for testing the metrics (and any new metric).

``control_theta`` builds a parameter set without synthesising sound; ``control_embeddings``
builds embeddings of it whose geometry is known:

==============  ===========================================================================
name            known answer
==============  ===========================================================================
theta           the standardised parameters themselves: perfect on every metric
linear512       a random linear map of ``theta`` into 512-d: perfect up to a linear map
drop_r          ``theta`` without the last parameter (r): invariant to r
curve_f1        a helix segment that depends on f1 only: intrinsic dimension 1
octave_loop     (cos 2 pi log2 f1, sin 2 pi log2 f1, alpha, r): f1 folded onto a circle, one
                turn per octave: a long-lived loop (b1 = 1); f1 not recoverable over 2 octaves
shuffled        ``theta`` with its rows permuted: chance level
==============  ===========================================================================
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from gear.errors import ParameterError

from ._inputs import check_int, check_seed

__all__ = ["control_theta", "control_embeddings", "CONTROL_NAMES"]

CONTROL_NAMES = ("theta", "linear512", "drop_r", "curve_f1", "octave_loop", "shuffled")


def control_theta(kind: str = "paper", *, n_f1: int = 13, n_alpha: int = 50, n_r: int = 50,
                  f1_min_hz: float = 110.0, n_octaves: float = 2.0,
                  random_state=0) -> Tuple[np.ndarray, np.ndarray]:
    """A parameter set (f1_hz, alpha, r) shaped like GEAR's datasets, without sound.

    Parameters
    ----------
    kind : {"paper", "factorial"}
        ``"paper"``: ``n_alpha`` x ``n_r`` grid of alpha in [0, 2] and r in [0, 1], f1 drawn
        log-uniformly at random per cell (no f1 grid axis); ``"factorial"``: ``n_f1`` x
        ``n_alpha`` x ``n_r`` grid, f1 log-spaced.
    n_f1, n_alpha, n_r : int
        Grid sizes (``n_f1`` only for "factorial").
    f1_min_hz : float
        Lowest fundamental, Hz.
    n_octaves : float
        f1 spans ``[f1_min_hz, f1_min_hz * 2 ** n_octaves]``.
    random_state : int
        Seeds the random f1 of "paper".

    Returns
    -------
    theta : np.ndarray, shape (n_sounds, 3), float64
        Columns f1_hz, alpha, r.
    grid_index : np.ndarray, shape (n_sounds, 3), int64
        Grid positions, -1 for f1 in "paper".
    """
    if kind not in ("paper", "factorial"):
        raise ParameterError(f"kind={kind!r}; choose 'paper' or 'factorial'")
    n_alpha = check_int(n_alpha, "n_alpha", 2)
    n_r = check_int(n_r, "n_r", 2)
    if not (np.isfinite(f1_min_hz) and f1_min_hz > 0):
        raise ParameterError(f"f1_min_hz={f1_min_hz} must be > 0")
    if not (np.isfinite(n_octaves) and n_octaves > 0):
        raise ParameterError(f"n_octaves={n_octaves} must be > 0")
    alpha = np.linspace(0.0, 2.0, n_alpha)
    r = np.linspace(0.0, 1.0, n_r)
    if kind == "paper":
        ia, ir = np.meshgrid(np.arange(n_alpha), np.arange(n_r), indexing="ij")
        ia, ir = ia.ravel(), ir.ravel()
        rng = np.random.default_rng(check_seed(random_state))
        f1 = f1_min_hz * 2.0 ** rng.uniform(0.0, n_octaves, ia.size)
        grid = np.stack([np.full(ia.size, -1), ia, ir], axis=1)
        return np.stack([f1, alpha[ia], r[ir]], axis=1), grid.astype(np.int64)
    n_f1 = check_int(n_f1, "n_f1", 2)
    f1 = f1_min_hz * 2.0 ** np.linspace(0.0, n_octaves, n_f1)
    grid = np.stack(np.meshgrid(np.arange(n_f1), np.arange(n_alpha), np.arange(n_r),
                                indexing="ij"), axis=-1).reshape(-1, 3)
    theta = np.stack([f1[grid[:, 0]], alpha[grid[:, 1]], r[grid[:, 2]]], axis=1)
    return theta, grid.astype(np.int64)


def control_embeddings(theta, *, random_state=0) -> Dict[str, np.ndarray]:
    """Control embeddings of a (f1_hz, alpha, r) parameter set (see the module docstring).

    Parameters
    ----------
    theta : np.ndarray, shape (n_sounds, 3), float
        Columns f1_hz (> 0), alpha, r.
    random_state : int
        Seeds the linear map and the permutation.

    Returns
    -------
    dict of str -> np.ndarray, shape (n_sounds, dim), float64
        Keys :data:`CONTROL_NAMES`. ``theta`` is standardised on the default scales (log f1,
        linear alpha and r).
    """
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 2 or theta.shape[1] != 3 or np.any(theta[:, 0] <= 0):
        raise ParameterError(
            f"theta must have shape (n_sounds, 3) with f1_hz > 0 in column 0, got shape "
            f"{theta.shape}"
        )
    rng = np.random.default_rng(check_seed(random_state))
    u = theta.copy()
    u[:, 0] = np.log(u[:, 0])
    sd = u.std(axis=0)
    if np.any(sd == 0):
        raise ParameterError("every column of theta must vary")
    z = (u - u.mean(axis=0)) / sd
    turns = np.log2(theta[:, 0])
    t = z[:, 0]
    return {
        "theta": z,
        "linear512": z @ rng.standard_normal((3, 512)),
        "drop_r": z[:, :2].copy(),
        "curve_f1": np.stack([np.cos(t), np.sin(t), t], axis=1),
        "octave_loop": np.stack([np.cos(2 * np.pi * turns), np.sin(2 * np.pi * turns),
                                 z[:, 1], z[:, 2]], axis=1),
        "shuffled": z[rng.permutation(z.shape[0])],
    }
