"""Fast, exact additive synthesis shared by the built-in families (float64 inside).

:func:`sum_of_cosines` renders sums of constant-frequency sinusoids by a block factorisation
of the time axis, t = t_b + tau (t_b = b L / sr, tau = l / sr, l < L ~ sqrt(n_samples)):

    sum_k a_k cos(w_k t + phi_k)
        = sum_k Re(a_k e^{i(w_k t_b + phi_k)}) cos(w_k tau) - Im(a_k e^{i(w_k t_b + phi_k)}) sin(w_k tau)

so each tone is one (n_blocks x 2K) @ (2K x L) matrix product and only K (n_blocks + L)
complex exponentials instead of K n_samples cosines. Exact up to float64 rounding (no table
look-up, no interpolation), at any sample rate.

:func:`chebyshev_partials` renders sum_p a_p cos(p Phi(t)) for a time-varying phase Phi (the
partials of a frequency-modulated harmonic tone) by Clenshaw's recurrence for Chebyshev series
(cos(p x) = T_p(cos x), T_{p+1} = 2 x T_p - T_{p-1}).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["sum_of_cosines", "chebyshev_partials", "hann", "tone_rng", "time_axis"]


def time_axis(n_samples: int, sample_rate: int) -> np.ndarray:
    """Sample times in seconds, float64, shape (n_samples,)."""
    return np.arange(n_samples, dtype=np.float64) / sample_rate


def hann(n_samples: int) -> np.ndarray:
    """Periodic Hann window (the window of GEAR eq. 1), float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_samples) / n_samples)


def tone_rng(seed: int, index: int, salt: int) -> np.random.Generator:
    """The random generator of tone ``index`` of a set drawn with ``seed`` (``salt`` tells
    apart the uses within a family), so that a tone's noise does not depend on which other
    tones are rendered with it."""
    return np.random.default_rng([int(seed), int(index), int(salt)])


def sum_of_cosines(freqs_hz, amplitudes, *, sample_rate: int, n_samples: int, phases=None,
                   dtype=np.float64) -> np.ndarray:
    """Sum of sinusoids ``sum_k a_k cos(2 pi f_k t + phi_k)`` per row; components at or above
    the Nyquist frequency are dropped (never aliased).

    Parameters
    ----------
    freqs_hz, amplitudes : np.ndarray, shape (n_sounds, n_components)
    sample_rate, n_samples : int
    phases : np.ndarray, shape (n_sounds, n_components), optional
        Phase at t = 0 in radians (default 0: cosine phase).
    dtype : np.float64 or np.float32
        Precision of the matrix product (the exponentials are always float64; float32 gives
        a relative error ~1e-7, below 24-bit audio, twice as fast).

    Returns
    -------
    np.ndarray, shape (n_sounds, n_samples), ``dtype``
    """
    freqs = np.asarray(freqs_hz, dtype=np.float64)
    amps = np.where(freqs < sample_rate / 2.0, np.asarray(amplitudes, dtype=np.float64), 0.0)
    omega = 2.0 * np.pi * freqs / sample_rate  # radians per sample
    block = max(1, int(math.ceil(math.sqrt(n_samples))))
    n_blocks = -(-n_samples // block)
    start = amps.astype(np.complex128)
    if phases is not None:
        start *= np.exp(1j * np.asarray(phases, dtype=np.float64))
    # Powers of one complex exponential per component (running products, error ~ n eps).
    coarse = _powers(start, np.exp(1j * omega * block), n_blocks, axis=1)
    fine = _powers(np.ones_like(start), np.exp(1j * omega), block, axis=2)
    left = np.concatenate([coarse.real, -coarse.imag], axis=2).astype(dtype, copy=False)
    right = np.concatenate([fine.real, fine.imag], axis=1).astype(dtype, copy=False)
    out = np.matmul(left, right).reshape(freqs.shape[0], n_blocks * block)
    return out[:, :n_samples]


def _powers(first, step, count, *, axis):
    """``first * step**j`` for j = 0..count-1 stacked on ``axis`` (1 or 2), complex128."""
    shape = (first.shape[0], count, first.shape[1]) if axis == 1 else (first.shape[0], first.shape[1], count)
    out = np.empty(shape, dtype=np.complex128)
    if axis == 1:
        out[:, 0, :], out[:, 1:, :] = first, step[:, None, :]
    else:
        out[:, :, 0], out[:, :, 1:] = first, step[:, :, None]
    return np.cumprod(out, axis=axis, out=out)


def chebyshev_partials(cos_phase: np.ndarray, amplitudes: np.ndarray, *, window=None) -> np.ndarray:
    """``sum_p a_p cos(p Phi)`` from ``cos Phi``, by Clenshaw's recurrence on the Chebyshev
    series sum_p a_p T_p(cos Phi) (three passes per partial, in place; float32 in, float32
    out: error ~ p^2 eps, about 1e-5 of full scale for 16 partials), or by Horner's rule on the
    equivalent polynomial in cos Phi for at most :data:`HORNER_MAX_PARTIALS` partials.

    Parameters
    ----------
    cos_phase : np.ndarray, shape (n_sounds, n_samples)
    amplitudes : np.ndarray, shape (n_sounds, n_partials)
        Amplitude of partial p = 1..n_partials.
    window : np.ndarray, shape (n_samples,), optional
        Multiplies the result (applied tile by tile, while it is in cache).

    Returns
    -------
    np.ndarray, shape (n_sounds, n_samples), dtype of ``cos_phase`` (float32 or float64)
    """
    x = np.asarray(cos_phase)
    x = x if x.dtype == np.float32 else x.astype(np.float64)
    amps = np.asarray(amplitudes, dtype=np.float64)
    if amps.shape[1] <= HORNER_MAX_PARTIALS:  # monomial coefficients, per row, from float64
        evaluate, coefficients = _horner, _chebyshev_to_monomial(amps).astype(x.dtype)
    else:
        evaluate, coefficients = _clenshaw, amps.astype(x.dtype)
    out = np.empty_like(x)
    width = max(256, TILE_ELEMENTS // max(x.shape[0], 1))
    for start in range(0, x.shape[1], width):  # column tiles that stay in cache
        tile = evaluate(x[:, start : start + width], coefficients)
        if window is not None:
            tile *= window[start : start + width]
        out[:, start : start + width] = tile
    return out


#: Elements per tile of :func:`chebyshev_partials` (four float32 tiles fit in a 1 MiB cache).
TILE_ELEMENTS = 1 << 16
#: Up to this many partials :func:`chebyshev_partials` evaluates the series as a polynomial in
#: cos Phi by Horner's rule (two passes per degree instead of three; its float32 error grows
#: with the monomial coefficients, ~(1 + sqrt 2)^P / 2: about 1e-6 of full scale at P = 8).
HORNER_MAX_PARTIALS = 8


def _chebyshev_to_monomial(amps):
    """Monomial coefficients c_0..c_P (columns) of sum_{p>=1} a_p T_p(x), per row, float64."""
    n_partials = amps.shape[1]
    basis = np.zeros((n_partials + 1, n_partials + 1))  # row k: coefficients of T_k
    basis[0, 0] = 1.0
    if n_partials:
        basis[1, 1] = 1.0
    for k in range(1, n_partials):  # T_{k+1} = 2 x T_k - T_{k-1}
        basis[k + 1, 1:] = 2.0 * basis[k, :-1]
        basis[k + 1] -= basis[k - 1]
    return amps @ basis[1:]


def _horner(x, coefficients):
    y = np.empty_like(x)
    y[...] = coefficients[:, -1:]
    for k in range(coefficients.shape[1] - 2, -1, -1):  # y = y x + c_k
        y *= x
        y += coefficients[:, k : k + 1]
    return y


def _clenshaw(x, amps):
    twice = 2 * x
    b1, b2, scratch = np.zeros_like(x), np.zeros_like(x), np.empty_like(x)  # b_{k+1}, b_{k+2}
    for k in range(amps.shape[1] - 1, -1, -1):  # b_k = a_k + 2x b_{k+1} - b_{k+2}
        np.multiply(twice, b1, out=scratch)
        scratch -= b2
        scratch += amps[:, k : k + 1]
        b2, b1, scratch = b1, scratch, b2
    np.multiply(x, b1, out=scratch)  # sum_{p>=1} a_p T_p(x) = x b_1 - b_2
    scratch -= b2
    return scratch
