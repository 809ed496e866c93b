"""The additive harmonic-tone synthesiser of GEAR (Lostanlen, Yan & Yang 2023, eq. 1).

    y(t) = sum_{p=1..P} (1 + (-1)^p r) / p^alpha * cos(2 pi p f1 t) * phi_T(t)

with phi_T a Hann window of duration T. Partials at or above the Nyquist frequency are
dropped (never aliased). With eq. 1 as printed, r = 1 cancels the odd partials
(p = 1, 3, ...: the sound is then heard an octave up) and r = -1 cancels the even ones
(the odd-harmonic, clarinet-like spectrum); r = 0 gives all harmonics with equal weight
pattern 1/p^alpha.
"""
from __future__ import annotations

import functools
import numbers
from typing import Optional

import numpy as np

from synth.errors import SynthError

__all__ = ["harmonic_tones", "partial_amplitudes", "hann_window"]

#: Shortest tone, in samples, that the synthesiser accepts.
MIN_SAMPLES = 16


def hann_window(n_samples: int) -> np.ndarray:
    """Periodic Hann window ``0.5 - 0.5 cos(2 pi n / N)``, float64, shape (n_samples,).

    Periodic (not symmetric) so that a tone whose f1 falls on a DFT bin of the window
    has an exact three-bin spectrum per partial (the property the analytic tests use).
    """
    n = np.arange(n_samples)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_samples)


def _as_1d(name: str, value) -> np.ndarray:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if array.ndim != 1:
        raise SynthError(f"{name} must be a scalar or a 1-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)][0]
        raise SynthError(f"{name} must be finite, got {bad!r}")
    return array


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SynthError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise SynthError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def partial_amplitudes(alpha, r, *, n_partials: int = 32) -> np.ndarray:
    """Amplitudes ``(1 + (-1)^p r) / p^alpha`` of partials p = 1..n_partials.

    Parameters
    ----------
    alpha, r : float or np.ndarray, shape (n_sounds,)
    n_partials : int

    Returns
    -------
    np.ndarray, shape (n_sounds, n_partials), float64
    """
    alpha = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    p = np.arange(1, n_partials + 1, dtype=np.float64)
    sign = np.where(p % 2 == 0, 1.0, -1.0)
    return (1.0 + sign[None, :] * r[:, None]) / p[None, :] ** alpha[:, None]


#: Largest cosine basis (partials x samples) kept between calls by :func:`_cosine_basis`.
_BASIS_CACHE_MAX = 1 << 20


@functools.lru_cache(maxsize=16)
def _cached_basis(f1: float, sample_rate: int, n_samples: int, n_partials: int) -> np.ndarray:
    p = np.arange(1, n_partials + 1, dtype=np.float64)
    t = np.arange(n_samples, dtype=np.float64) / sample_rate
    basis = np.cos(2.0 * np.pi * f1 * p[:, None] * t[None, :])
    basis.flags.writeable = False
    return basis


def _cosine_basis(f1, sample_rate, n_samples: int, n_partials: int) -> np.ndarray:
    """``cos(2 pi f1 p t)``, shape (n_partials, n_samples): kept between calls when small (a grid
    rendered batch by batch reuses the bases of its few pitches), the same values either way."""
    if n_partials * n_samples > _BASIS_CACHE_MAX:
        return _cached_basis.__wrapped__(f1, sample_rate, n_samples, n_partials)
    return _cached_basis(f1, sample_rate, n_samples, n_partials)


def _synthesise(f1_hz, alpha, r, sample_rate, n_samples, n_partials, window=True, grouped=None):
    """Unnormalised tones, float64 (n, n_samples); no validation (callers validate).

    ``grouped`` forces the one-basis-per-pitch path (True) or the Chebyshev path (False);
    by default the grouped path is taken when there are at most a quarter as many distinct
    pitches as tones."""
    amplitudes = partial_amplitudes(alpha, r, n_partials=n_partials)
    p = np.arange(1, n_partials + 1, dtype=np.float64)
    # Partials at or above Nyquist are dropped, never aliased.
    amplitudes = amplitudes * (p[None, :] * f1_hz[:, None] < sample_rate / 2.0)
    t = np.arange(n_samples, dtype=np.float64) / sample_rate
    values, inverse = np.unique(f1_hz, return_inverse=True)
    out = np.empty((f1_hz.size, n_samples))
    if grouped is None:
        grouped = values.size * 4 <= f1_hz.size
    if grouped:
        # Few distinct pitches (the paper grid has 13): one cosine basis per pitch and a
        # matrix product per group.
        for k, f1 in enumerate(values):
            rows = np.flatnonzero(inverse == k)
            out[rows] = amplitudes[rows] @ _cosine_basis(f1, sample_rate, n_samples, n_partials)
    else:
        # Many distinct pitches: cos(p x) by the Chebyshev recurrence
        # cos((p+1)x) = 2 cos x cos(px) - cos((p-1)x), one cosine per tone instead of one per
        # partial (float64: error ~ p^2 eps).
        c1 = np.cos(2.0 * np.pi * f1_hz[:, None] * t[None, :])
        previous, current = np.ones_like(c1), c1
        out[:] = 0.0
        for k in range(n_partials):
            out += amplitudes[:, k : k + 1] * current
            previous, current = current, 2.0 * c1 * current - previous
    if window:
        out *= hann_window(n_samples)[None, :]
    return out


def harmonic_tones(
    f1_hz,
    alpha,
    r,
    *,
    sample_rate: int,
    n_samples: Optional[int] = None,
    duration_s: Optional[float] = None,
    n_partials: int = 32,
    peak: Optional[float] = 0.5,
) -> np.ndarray:
    """Synthesise Hann-windowed harmonic tones (GEAR eq. 1), one per row.

    Parameters
    ----------
    f1_hz : float or np.ndarray, shape (n_sounds,)
        Fundamental frequency in Hz, > 0. Broadcast against ``alpha`` and ``r``.
    alpha : float or np.ndarray, shape (n_sounds,)
        Spectral decay exponent, >= 0 (0: flat spectrum, larger: darker).
    r : float or np.ndarray, shape (n_sounds,)
        Odd/even balance in [-1, 1].
    sample_rate : int
        Sample rate in Hz.
    n_samples : int, optional
        Tone length in samples (the window duration T). Give this or ``duration_s``.
    duration_s : float, optional
        Tone length in seconds; ``n_samples = round(duration_s * sample_rate)``.
    n_partials : int
        Number of partials P before the Nyquist cut (partials with p f1 >= sample_rate/2
        are dropped).
    peak : float or None
        Each tone is scaled to this peak absolute value (default 0.5, i.e. -6 dBFS,
        headroom for the models' resamplers). ``None`` keeps eq. 1's raw amplitudes,
        which exceed 1 for bright tones.

    Returns
    -------
    np.ndarray, shape (n_sounds, n_samples), float32
        Time on the last axis.

    Raises
    ------
    SynthError
        f1 <= 0, alpha < 0, |r| > 1, non-finite values, tone shorter than 16 samples or
        than one period of f1, n_partials < 1, bad sample rate or peak.
    """
    sample_rate = _check_int("sample_rate", sample_rate, 1)
    n_partials = _check_int("n_partials", n_partials, 1)
    if (n_samples is None) == (duration_s is None):
        raise SynthError("give exactly one of n_samples or duration_s")
    if n_samples is None:
        if not np.isfinite(duration_s) or duration_s <= 0:
            raise SynthError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
        n_samples = int(round(duration_s * sample_rate))
    n_samples = _check_int("n_samples", n_samples, 1)
    if n_samples < MIN_SAMPLES:
        raise SynthError(
            f"tone too short: n_samples={n_samples} (T = {n_samples / sample_rate * 1e3:.3g} ms); "
            f"use at least {MIN_SAMPLES} samples"
        )
    f1_hz, alpha, r = np.broadcast_arrays(
        _as_1d("f1_hz", f1_hz), _as_1d("alpha", alpha), _as_1d("r", r)
    )
    if np.any(f1_hz <= 0):
        raise SynthError(f"f1_hz must be > 0 Hz, got {f1_hz[f1_hz <= 0][0]!r}")
    if np.any(f1_hz >= sample_rate / 2):
        bad = f1_hz[f1_hz >= sample_rate / 2][0]
        raise SynthError(
            f"f1_hz={bad!r} is at or above the Nyquist frequency {sample_rate / 2} Hz: "
            f"the tone would be silent; lower f1_hz or raise sample_rate"
        )
    if np.any(alpha < 0):
        raise SynthError(f"alpha must be >= 0, got {alpha[alpha < 0][0]!r}")
    if np.any(np.abs(r) > 1):
        raise SynthError(
            f"r must lie in [-1, 1], got {r[np.abs(r) > 1][0]!r} "
            f"(the gear2023-code preset's r in [1, 2) is reachable only through that preset)"
        )
    periods = n_samples * f1_hz / sample_rate
    if np.any(periods < 1):
        bad = f1_hz[periods < 1][0]
        raise SynthError(
            f"tone too short: T = {n_samples} samples at {sample_rate} Hz holds less than one "
            f"period of f1_hz={bad!r}; lengthen the tone or raise f1_hz"
        )
    if peak is not None and not (np.isfinite(peak) and 0 < peak <= 1):
        raise SynthError(f"peak must be in (0, 1] or None, got {peak!r}")
    tones = _synthesise(f1_hz, alpha, r, sample_rate, n_samples, n_partials)
    if peak is not None:
        tones = _scale_to_peak(tones, peak)
    return tones.astype(np.float32)


def _scale_to_peak(tones: np.ndarray, peak: float) -> np.ndarray:
    maxima = np.max(np.abs(tones), axis=-1, keepdims=True)
    silent = maxima[:, 0] == 0
    if np.any(silent):
        raise SynthError(
            f"tone {int(np.flatnonzero(silent)[0])} is silent (every partial cancelled or above "
            f"Nyquist, e.g. r = 1 with f1 above sample_rate/4); change r or f1_hz"
        )
    return tones * (peak / maxima)
