"""Auditory model representations: cochlear filterbank, auditory spectrogram, STMF.

This is the early auditory model of Chi, Ru & Shamma (2005, JASA 118(2), "Multiresolution
spectrotemporal analysis of complex sounds"), as implemented by the NSL toolbox function
``wav2aud`` and used by Thoret et al. (2021) and Pascal & Lagrange (2024) for their
"auditory spectrum" (cochlea) and "STMF" (spectrotemporal modulation) representations:

1. a bank of 129 asymmetric constant-Q band-pass filters, 24 per octave, characteristic
   frequencies ``CF_k = 440 * 2 ** ((k - 31) / 24)`` Hz (k = 0..128, 180 Hz ... 7.2 kHz) at
   16 kHz;
2. lateral inhibition: the difference of adjacent channels (``k`` minus ``k + 1``), which
   leaves 128 channels;
3. half-wave rectification;
4. leaky integration (time constant ``tau_ms``, 8 ms) sampled at the end of each frame
   (``frame_ms``, 4 ms: 250 frames per second). The hair-cell stage is linear (NSL
   ``fac = -2``), so it is the identity and is left out.

:func:`auditory_spectrogram` returns the ``(n_frames, 128)`` output, :func:`auditory_spectrum`
its mean over frames, and :func:`stmf` the time-averaged magnitude of the 2-D (scale x rate)
Fourier-domain filtering of the spectrogram: 128 frequencies x 11 scales x 22 rates = 30 976
values.

Two cochlear filterbanks are available (``filterbank=`` argument):

``"gear"`` (default)
    GEAR's own design from the published description: one constant-Q prototype magnitude
    response on the log-frequency axis (:func:`cochlear_prototype_magnitude`), shifted to the
    129 characteristic frequencies, made minimum-phase (real cepstrum) and applied by FFT
    convolution. The prototype's 7 shape constants (low-frequency tail, low-side slope, peak
    position, cut-off position and width, high-side shoulder and slope) were calibrated once
    against the mean magnitude response of the NSL table's constant-Q channels; the table is
    not needed to run it. Closeness to the table, -3...+1 octave around each CF: 0.65 dB rms,
    3.1 dB max for channels 0-79; 2.2 dB rms, 13.6 dB max over all 129 (the table's top
    channels depart from constant Q near the Nyquist frequency, ours do not). Against
    the reference features of the 17 timbre studies (257 sounds, computed with the NSL
    table) it gives a per-sound Pearson correlation >= 0.997 for the auditory spectrum and
    >= 0.995 for STMF, and study-normalised rows within 7 % (auditory spectrum) and 9 %
    (STMF) relative L2 error (see ``benchmarks/bench_timbre_features.py``).
``"nsl-table"``
    The NSL toolbox IIR coefficient table ``nsl_cochba_aud24.npz`` (array ``cochba``), read
    from ``table_path`` or ``$GEAR_SHARED_DIR/timbre/`` (default ``<repo>/../shared/timbre``).
    It is never shipped with GEAR: it comes from the NSL toolbox (University of Maryland)
    by way of code that carries no licence. With it the features reproduce the reference
    features to ~1e-9 (relative).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from scipy import fft as sfft
from scipy import signal

from embeddings.errors import EmbeddingError

__all__ = [
    "SAMPLE_RATE",
    "N_CHANNELS",
    "CHANNELS_PER_OCTAVE",
    "STMF_SCALES",
    "STMF_RATES_HZ",
    "NSL_TABLE_FILE",
    "CochlearFilterbank",
    "center_frequencies",
    "cochlear_prototype_magnitude",
    "cochlear_filterbank",
    "filterbank_response",
    "auditory_spectrogram",
    "auditory_spectrum",
    "stmf",
    "stmf_from_spectrogram",
]

#: The auditory model runs at 16 kHz (NSL octave shift 0).
SAMPLE_RATE = 16000
#: Output channels (129 filters minus one after lateral inhibition).
N_CHANNELS = 128
#: Filter spacing.
CHANNELS_PER_OCTAVE = 24
#: STMF scales (cycles per octave), as in Thoret et al. (2021).
STMF_SCALES = (0.25, 0.35, 0.50, 0.71, 1.0, 1.41, 2.00, 2.83, 4.00, 5.66, 8.00)
#: STMF rates (Hz); negative rates are downward sweeps.
STMF_RATES_HZ = (-128, -90.5, -64, -45.3, -32, -22.6, -16, -11.3, -8, -5.70, -4,
                 4, 5.70, 8, 11.3, 16, 22.6, 32, 45.3, 64, 90.5, 128)
#: File name of the NSL coefficient table under ``$GEAR_SHARED_DIR/timbre/``.
NSL_TABLE_FILE = "nsl_cochba_aud24.npz"

_SHARED_DIR_ENV = "GEAR_SHARED_DIR"
_STMF_NFFT_SCALE = 256

# Shape constants of GEAR's prototype (see cochlear_prototype_magnitude). Octaves are
# log2(f / CF); gains are linear re the pass-band peak.
_PROTO = dict(
    tail=0.077,        # low-frequency tail gain (-22.3 dB)
    low_slope=2.58,    # e-folding rate of the low side, per octave (~22 dB/oct near CF)
    peak_oct=0.0226,   # where the low side reaches the pass band
    cutoff_oct=0.0663,  # centre of the steep high-frequency cut-off
    cutoff_width_oct=0.0246,
    shoulder=0.125,    # gain just above the cut-off (-18.1 dB)
    high_slope=2.68,   # decay of the shoulder, in octaves of gain per octave (-16 dB/oct)
    knee_oct=0.02,     # smoothing of the two corners (keeps the response smooth)
)
_GEAR_N_TAPS = 8192           # impulse responses are truncated here (tail energy < 1e-3)
_GEAR_DESIGN_NFFT = 2 ** 16   # grid of the cepstral minimum-phase design


# ----------------------------------------------------------------------------- filterbank

def center_frequencies(n_filters: int = N_CHANNELS + 1) -> np.ndarray:
    """Characteristic frequencies of the cochlear filters, ``440 * 2 ** ((k - 31) / 24)`` Hz.

    Parameters
    ----------
    n_filters : int
        Number of filters (129: the 128 channels plus one for lateral inhibition).

    Returns
    -------
    ndarray, shape (n_filters,), float64
        Frequencies in Hz, increasing (179.7 Hz ... 7246 Hz for 129 filters).
    """
    return 440.0 * 2.0 ** ((np.arange(n_filters) - 31) / CHANNELS_PER_OCTAVE)


def cochlear_prototype_magnitude(octaves) -> np.ndarray:
    """Magnitude response of GEAR's cochlear filter prototype.

    Every filter of the ``"gear"`` bank is this one function of ``octaves = log2(f / CF)``
    (constant Q): a gentle low-frequency side rising exponentially (in octaves) from a
    -22 dB tail to the pass band just above CF, a steep cut-off (tanh, width 0.025 octave)
    centred 0.066 octave above CF, then a shoulder at -18 dB decaying by 16 dB per octave.
    The corners are rounded (softplus, 0.02 octave) so that the response is smooth and the
    minimum-phase impulse response decays fast.

    Parameters
    ----------
    octaves : array_like, float
        Distance to the characteristic frequency in octaves.

    Returns
    -------
    ndarray, float64, same shape as ``octaves``
        Linear gain (peak ~1).
    """
    x = np.asarray(octaves, dtype=np.float64)
    p = _PROTO
    eps = p["knee_oct"]
    below = eps * np.logaddexp(0.0, (p["peak_oct"] - x) / eps)   # ~max(peak - x, 0)
    low = p["tail"] + (1.0 - p["tail"]) * np.exp(-p["low_slope"] * below)
    above = eps * np.logaddexp(0.0, (x - p["cutoff_oct"]) / eps)  # ~max(x - cutoff, 0)
    high = p["shoulder"] * 2.0 ** (-p["high_slope"] * above)
    switch = 0.5 * (1.0 - np.tanh((x - p["cutoff_oct"]) / p["cutoff_width_oct"]))
    return low * switch + high * (1.0 - switch)


@dataclasses.dataclass(frozen=True, eq=False)
class CochlearFilterbank:
    """A cochlear filterbank of ``n_filters`` (129) filters at 16 kHz.

    Attributes
    ----------
    name : str
        ``"gear"`` or ``"nsl-table"``.
    center_frequencies_hz : ndarray, shape (n_filters,)
        Characteristic frequencies, increasing.
    impulse_responses : ndarray or None, shape (n_filters, n_taps), float64
        FIR form (the ``"gear"`` design): applied by FFT convolution.
    iir : tuple of (b, a) or None
        IIR form (the ``"nsl-table"`` bank): one ``(b, a)`` pair per filter, applied with
        :func:`scipy.signal.lfilter` exactly as NSL ``wav2aud`` does.
    source : str
        Where the coefficients came from.
    """

    name: str
    center_frequencies_hz: np.ndarray
    impulse_responses: Optional[np.ndarray] = None
    iir: Optional[tuple] = None
    source: str = ""

    @property
    def n_filters(self) -> int:
        return int(self.center_frequencies_hz.shape[0])


def _minimum_phase_from_magnitude(magnitude_half: np.ndarray) -> np.ndarray:
    """Minimum-phase impulse responses from magnitudes on ``[0, fs/2]`` (rfft grid), by the
    real cepstrum. ``magnitude_half``: (n_filters, nfft // 2 + 1). Returns (n_filters, nfft)."""
    n_half = magnitude_half.shape[-1]
    nfft = 2 * (n_half - 1)
    log_mag = np.log(np.maximum(magnitude_half, 1e-12))
    cepstrum = sfft.irfft(log_mag, nfft, axis=-1)
    fold = np.zeros(nfft)
    fold[0] = 1.0
    fold[1:nfft // 2] = 2.0
    fold[nfft // 2] = 1.0
    spectrum = np.exp(sfft.rfft(cepstrum * fold, axis=-1))
    return sfft.irfft(spectrum, nfft, axis=-1)


@functools.lru_cache(maxsize=2)
def _gear_filterbank() -> CochlearFilterbank:
    cf = center_frequencies()
    freqs = np.arange(_GEAR_DESIGN_NFFT // 2 + 1) * (SAMPLE_RATE / _GEAR_DESIGN_NFFT)
    freqs[0] = freqs[1] * 1e-3  # log2(0) guard; the response there is the -22 dB tail
    octaves = np.log2(freqs[None, :] / cf[:, None])
    irs = _minimum_phase_from_magnitude(cochlear_prototype_magnitude(octaves))
    irs = np.ascontiguousarray(irs[:, :_GEAR_N_TAPS])
    irs.setflags(write=False)
    return CochlearFilterbank(
        name="gear", center_frequencies_hz=cf, impulse_responses=irs,
        source="GEAR constant-Q minimum-phase design (cochlear_prototype_magnitude)",
    )


def _default_table_path() -> Path:
    env = os.environ.get(_SHARED_DIR_ENV)
    root = Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / ".." / "shared"
    return (root / "timbre" / NSL_TABLE_FILE).resolve()


@functools.lru_cache(maxsize=4)
def _table_filterbank(path: str) -> CochlearFilterbank:
    p = Path(path)
    if not p.is_file():
        raise EmbeddingError(
            f"table_path={str(p)!r}: no such file. filterbank='nsl-table' needs the NSL "
            f"coefficient table {NSL_TABLE_FILE} (array 'cochba', 26 x 129 complex): pass its "
            f"path as table_path, or set {_SHARED_DIR_ENV} to the folder holding "
            f"timbre/{NSL_TABLE_FILE}; or use filterbank='gear', which needs no table."
        )
    try:
        with np.load(p) as data:
            table = np.asarray(data["cochba"])
    except Exception as exc:  # unreadable file, no 'cochba' array
        raise EmbeddingError(
            f"table_path={str(p)!r} could not be read as an .npz with array 'cochba' ({exc}); "
            "give the NSL table nsl_cochba_aud24.npz"
        ) from None
    if table.ndim != 2 or table.shape[1] != N_CHANNELS + 1 or not np.iscomplexobj(table):
        raise EmbeddingError(
            f"{p}: 'cochba' has shape {table.shape} and dtype {table.dtype}; the NSL table is "
            f"complex with {N_CHANNELS + 1} columns (one per filter)"
        )
    iir = []
    for m in range(table.shape[1]):
        order = int(round(table[0, m].real))
        if not 1 <= order <= table.shape[0] - 2:
            raise EmbeddingError(f"{p}: filter {m} has order {order}; the table is damaged")
        b = table[1:order + 2, m].real.copy()
        a = table[1:order + 2, m].imag.copy()
        iir.append((b, a))
    return CochlearFilterbank(
        name="nsl-table", center_frequencies_hz=center_frequencies(), iir=tuple(iir),
        source=f"NSL toolbox table {p}",
    )


FilterbankLike = Union[str, CochlearFilterbank]


def cochlear_filterbank(filterbank: FilterbankLike = "gear", *,
                        table_path: Optional[Union[str, os.PathLike]] = None) -> CochlearFilterbank:
    """The cochlear filterbank of the auditory model.

    Parameters
    ----------
    filterbank : {"gear", "nsl-table"} or CochlearFilterbank
        ``"gear"`` (default): GEAR's own constant-Q minimum-phase design, no data needed.
        ``"nsl-table"``: the NSL toolbox IIR table (see the module docstring). A
        :class:`CochlearFilterbank` is returned unchanged.
    table_path : path-like, optional
        The table file for ``"nsl-table"``; default ``$GEAR_SHARED_DIR/timbre/
        nsl_cochba_aud24.npz`` (``<repo>/../shared/timbre/...`` when the variable is unset).

    Returns
    -------
    CochlearFilterbank
        Cached: the same object is returned for the same arguments.

    Raises
    ------
    EmbeddingError
        Unknown name, missing or malformed table.
    """
    if isinstance(filterbank, CochlearFilterbank):
        return filterbank
    if filterbank == "gear":
        return _gear_filterbank()
    if filterbank == "nsl-table":
        path = Path(table_path).expanduser().resolve() if table_path is not None else _default_table_path()
        return _table_filterbank(str(path))
    raise EmbeddingError(
        f"filterbank={filterbank!r} is unknown; use 'gear' (GEAR's own design) or 'nsl-table' "
        "(the NSL toolbox table, read from table_path or $GEAR_SHARED_DIR/timbre)"
    )


def filterbank_response(filterbank: FilterbankLike = "gear", freqs_hz=None, *,
                        table_path=None) -> np.ndarray:
    """Complex frequency responses of the cochlear filters.

    Parameters
    ----------
    filterbank : {"gear", "nsl-table"} or CochlearFilterbank
    freqs_hz : array_like, shape (n_freqs,), optional
        Frequencies in Hz in [0, 8000]; default 4097 points from 0 to 8 kHz.
    table_path : path-like, optional
        See :func:`cochlear_filterbank`.

    Returns
    -------
    ndarray, shape (n_filters, n_freqs), complex128
    """
    fb = cochlear_filterbank(filterbank, table_path=table_path)
    f = np.linspace(0, SAMPLE_RATE / 2, 4097) if freqs_hz is None else np.asarray(freqs_hz, float)
    if f.ndim != 1 or np.any(~np.isfinite(f)) or np.any(f < 0) or np.any(f > SAMPLE_RATE / 2):
        raise EmbeddingError("freqs_hz must be a 1-D array of frequencies in [0, 8000] Hz")
    if fb.impulse_responses is not None:
        # FIR: dense rfft grid (0.24 Hz spacing), linearly interpolated
        nfft = max(2 ** 16, 4 * fb.impulse_responses.shape[1])
        dense = sfft.rfft(fb.impulse_responses, nfft, axis=1)
        grid = np.arange(nfft // 2 + 1) * (SAMPLE_RATE / nfft)
        return np.array([np.interp(f, grid, d.real) + 1j * np.interp(f, grid, d.imag) for d in dense])
    return np.array([signal.freqz(b, a, worN=f, fs=SAMPLE_RATE)[1] for b, a in fb.iir])


# ----------------------------------------------------------------------------- validation

def _as_signal(audio, name: str = "audio") -> np.ndarray:
    """``audio`` as a finite, non-empty, 1-D float64 array, else EmbeddingError."""
    x = np.asarray(audio)
    if x.dtype.kind not in "fiu":
        raise EmbeddingError(f"{name} has dtype {x.dtype}; give real-valued samples")
    x = x.astype(np.float64, copy=False)
    if x.ndim != 1:
        raise EmbeddingError(f"{name} has shape {x.shape}; give one mono signal, shape (n_samples,)")
    if x.size == 0:
        raise EmbeddingError(f"{name} is empty; give at least one sample")
    if not np.all(np.isfinite(x)):
        raise EmbeddingError(f"{name} contains NaN or infinite samples; clean or replace them")
    return x


def _check_audio(audio, sample_rate) -> np.ndarray:
    if sample_rate != SAMPLE_RATE:
        raise EmbeddingError(
            f"sample_rate={sample_rate!r}: the auditory model runs at {SAMPLE_RATE} Hz; "
            "resample first (embeddings.timefeatures.preprocess does it as in the reference)"
        )
    return _as_signal(audio)


def _frame_params(frame_ms, tau_ms):
    for name, v in (("frame_ms", frame_ms), ("tau_ms", tau_ms)):
        if not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v <= 0:
            raise EmbeddingError(f"{name}={v!r}; it must be a positive number of milliseconds")
    frame_len = frame_ms * SAMPLE_RATE / 1000.0
    if abs(frame_len - round(frame_len)) > 1e-9:
        raise EmbeddingError(
            f"frame_ms={frame_ms!r} is not a whole number of samples at {SAMPLE_RATE} Hz; "
            "use a multiple of 1/16 ms (4 ms is the reference)"
        )
    decay = math.exp(-1.0 / (tau_ms * SAMPLE_RATE / 1000.0))
    return int(round(frame_len)), decay


# ----------------------------------------------------------------------------- spectrogram

def _integrate_frames(rectified: np.ndarray, frame_len: int, decay: float) -> np.ndarray:
    """Per-frame weighted sums of the rectified signal (n_channels, n_frames*frame_len) for a
    leaky integrator ``y[n] = decay * y[n-1] + u[n]`` read at each frame's last sample."""
    n_ch, n = rectified.shape
    weights = decay ** np.arange(frame_len - 1, -1, -1, dtype=np.float64)
    return rectified.reshape(n_ch, n // frame_len, frame_len) @ weights.astype(rectified.dtype)


@functools.lru_cache(maxsize=8)
def _difference_spectra(fb: CochlearFilterbank, nfft: int) -> np.ndarray:
    h = fb.impulse_responses
    diff = h[:-1] - h[1:]  # lateral inhibition: channel k minus channel k + 1
    return sfft.rfft(diff, nfft, axis=1).astype(np.complex64)


def _frame_sums_fir(x: np.ndarray, fb: CochlearFilterbank, frame_len: int, decay: float) -> np.ndarray:
    n_taps = fb.impulse_responses.shape[1]
    n = x.shape[0]
    # overlap-save: each FFT block yields `step` new samples (a whole number of frames)
    block_len = max(min(n, 3 * n_taps), frame_len)
    nfft = 1 << max(14, int(math.ceil(math.log2(block_len + n_taps - 1))))
    step = ((nfft - n_taps + 1) // frame_len) * frame_len
    spectra = _difference_spectra(fb, nfft)
    padded = np.concatenate([np.zeros(n_taps - 1, np.float32), x.astype(np.float32),
                             np.zeros(nfft, np.float32)])
    out = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = sfft.rfft(padded[start:start + nfft], nfft)
        y = sfft.irfft(spectra * block, nfft, axis=1)[:, n_taps - 1:n_taps - 1 + stop - start]
        np.maximum(y, 0, out=y)
        out.append(_integrate_frames(y, frame_len, decay))
    return np.concatenate(out, axis=1)


def _frame_sums_iir(x: np.ndarray, fb: CochlearFilterbank, frame_len: int, decay: float) -> np.ndarray:
    sums = np.empty((fb.n_filters - 1, x.shape[0] // frame_len))
    upper = signal.lfilter(*fb.iir[-1], x)
    for ch in range(fb.n_filters - 2, -1, -1):
        y = signal.lfilter(*fb.iir[ch], x)
        sums[ch] = _integrate_frames(np.maximum(y - upper, 0)[None, :], frame_len, decay)[0]
        upper = y
    return sums


def auditory_spectrogram(audio, *, sample_rate: int = SAMPLE_RATE, frame_ms: float = 4,
                         tau_ms: float = 8, filterbank: FilterbankLike = "gear",
                         table_path=None) -> np.ndarray:
    """Auditory spectrogram (NSL ``wav2aud``, linear hair cell).

    Parameters
    ----------
    audio : array_like, shape (n_samples,)
        Mono signal at 16 kHz, any scale (the model is positively homogeneous: scaling the
        input by ``c > 0`` scales the output by ``c``).
    sample_rate : int
        Must be 16000.
    frame_ms : float
        Frame length in ms (4: 64 samples, 250 frames/s). The signal is zero-padded to a
        whole number of frames.
    tau_ms : float
        Time constant of the leaky integrator in ms (8).
    filterbank : {"gear", "nsl-table"} or CochlearFilterbank
        See :func:`cochlear_filterbank`.
    table_path : path-like, optional
        NSL table location for ``filterbank="nsl-table"``.

    Returns
    -------
    ndarray, shape (n_frames, 128), float64
        ``n_frames = ceil(n_samples / frame_len)``; column ``k`` is the channel between
        filters ``k`` and ``k + 1`` (low to high frequency). Non-negative.

    Raises
    ------
    EmbeddingError
        Wrong sample rate, empty / non-finite / multi-channel audio, bad frame or time constant.
    """
    x = _check_audio(audio, sample_rate)
    frame_len, decay = _frame_params(frame_ms, tau_ms)
    fb = cochlear_filterbank(filterbank, table_path=table_path)
    n_frames = -(-x.shape[0] // frame_len)
    x = np.concatenate([x, np.zeros(n_frames * frame_len - x.shape[0])])
    if fb.impulse_responses is not None:
        sums = _frame_sums_fir(x, fb, frame_len, decay)
    else:
        sums = _frame_sums_iir(x, fb, frame_len, decay)
    # leaky integration carried from frame to frame: y_m = decay**L * y_{m-1} + sum_m
    frames = signal.lfilter([1.0], [1.0, -decay ** frame_len], sums.astype(np.float64), axis=1)
    return np.ascontiguousarray(frames.T)


def auditory_spectrum(audio, *, sample_rate: int = SAMPLE_RATE, frame_ms: float = 4,
                      tau_ms: float = 8, filterbank: FilterbankLike = "gear",
                      table_path=None) -> np.ndarray:
    """Auditory spectrum ("cochlea"): the auditory spectrogram averaged over frames.

    Parameters are those of :func:`auditory_spectrogram`.

    Returns
    -------
    ndarray, shape (128,), float64
        Channels from low (~180 Hz) to high (~7.2 kHz) frequency.
    """
    return auditory_spectrogram(audio, sample_rate=sample_rate, frame_ms=frame_ms, tau_ms=tau_ms,
                                filterbank=filterbank, table_path=table_path).mean(axis=0)


# ----------------------------------------------------------------------------- STMF

@functools.lru_cache(maxsize=32)
def _rate_filters(nfft_rate: int, frame_rate_hz: float, rates: tuple) -> np.ndarray:
    """Rate filters on the rate-FFT grid, (n_rates, nfft_rate) complex64."""
    half = nfft_rate // 2
    out = np.zeros((len(rates), nfft_rate), np.complex128)
    for j, rate in enumerate(rates):
        t = np.arange(half) / frame_rate_hz * abs(rate)
        h = np.sin(2 * np.pi * t) * t ** 2 * np.exp(-3.5 * t) * abs(rate)
        h = h - h.mean()
        spec = sfft.fft(h, nfft_rate)[:half]
        mag = np.abs(spec)
        phase = np.angle(spec)
        phase[0] = 0.0
        one_sided = np.zeros(nfft_rate, np.complex128)
        one_sided[:half] = mag / mag.max() * np.exp(1j * phase)
        if rate < 0:  # downward: mirror to negative rate frequencies
            one_sided[1:] = np.conj(one_sided[1:][::-1])
        out[j] = one_sided
    return out.astype(np.complex64)


@functools.lru_cache(maxsize=4)
def _scale_filters(nfft_scale: int, channels_per_octave: int, scales: tuple) -> np.ndarray:
    """Scale filters on the first half of the scale-FFT grid, (n_scales, nfft_scale//2)."""
    half = nfft_scale // 2
    out = np.empty((len(scales), half))
    for i, scale in enumerate(scales):
        r2 = (np.arange(half) / half * channels_per_octave / 2 / abs(scale)) ** 2
        out[i] = r2 * np.exp(1 - r2)
    return out.astype(np.complex64)


def _check_modulations(values, name):
    try:
        v = tuple(float(s) for s in values)
    except TypeError:
        raise EmbeddingError(f"{name} must be a sequence of numbers") from None
    if not v or any((not math.isfinite(s)) or s == 0 for s in v):
        raise EmbeddingError(f"{name}={values!r}; give a non-empty sequence of finite non-zero values")
    return v


def stmf_from_spectrogram(spectrogram, *, frame_rate_hz: float = 250.0,
                          scales: Sequence[float] = STMF_SCALES,
                          rates_hz: Sequence[float] = STMF_RATES_HZ) -> np.ndarray:
    """Spectrotemporal modulation features of an auditory spectrogram.

    The spectrogram is 2-D Fourier transformed (scale axis: 256 points, rate axis:
    ``2 * 2**ceil(log2(n_frames))`` points), multiplied by one-sided scale filters
    ``R**2 exp(1 - R**2)`` (``R = k / 128 * 12 / |scale|``) and one-sided rate filters (the
    spectrum of ``h(t) = sin(2 pi t) t**2 exp(-3.5 t) |rate|``, mean removed, normalised to
    unit peak magnitude, mirrored for negative rates), inverse transformed, cropped to the
    input size, and the magnitude is averaged over time (Chi et al. 2005; Thoret et al. 2021).

    Parameters
    ----------
    spectrogram : array_like, shape (n_frames, n_channels), n_frames >= 2, n_channels <= 128
        Auditory spectrogram (:func:`auditory_spectrogram`), 24 channels per octave.
    frame_rate_hz : float
        Frames per second (250 for 4 ms frames).
    scales : sequence of float
        Scales in cycles per octave.
    rates_hz : sequence of float
        Rates in Hz (sign = sweep direction).

    Returns
    -------
    ndarray, shape (n_channels, n_scales, n_rates), float64
        Mean over time of the magnitude of the cortical representation.
    """
    v = np.asarray(spectrogram, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 2 or not 1 <= v.shape[1] <= _STMF_NFFT_SCALE // 2:
        raise EmbeddingError(
            f"spectrogram has shape {v.shape}; give (n_frames >= 2, n_channels <= 128), e.g. "
            "the output of auditory_spectrogram for audio of at least 2 frames"
        )
    if not np.all(np.isfinite(v)):
        raise EmbeddingError("spectrogram contains NaN or infinite values")
    if not (isinstance(frame_rate_hz, (int, float, np.number)) and math.isfinite(frame_rate_hz)
            and frame_rate_hz > 0):
        raise EmbeddingError(f"frame_rate_hz={frame_rate_hz!r}; it must be a positive number")
    scales = _check_modulations(scales, "scales")
    rates = _check_modulations(rates_hz, "rates_hz")
    n_frames, n_ch = v.shape
    nfft_scale = _STMF_NFFT_SCALE
    half_scale = nfft_scale // 2
    nfft_rate = 2 * 2 ** int(math.ceil(math.log2(n_frames)))
    # 2-D spectrum; only the non-negative scale frequencies 0..127 are ever used
    spec = sfft.rfft(v, nfft_scale, axis=1)[:, :half_scale]
    spec = sfft.fft(spec, nfft_rate, axis=0).astype(np.complex64)
    hr = _rate_filters(nfft_rate, float(frame_rate_hz), rates)
    hs = _scale_filters(nfft_scale, CHANNELS_PER_OCTAVE, scales)
    out = np.empty((n_ch, len(scales), len(rates)))
    buf = np.zeros((len(scales), n_frames, nfft_scale), np.complex64)
    for j in range(len(rates)):
        z1 = sfft.ifft(hr[j][:, None] * spec, axis=0, overwrite_x=True)[:n_frames]
        np.multiply(hs[:, None, :], z1[None, :, :], out=buf[:, :, :half_scale])
        z = sfft.ifft(buf, axis=2)[:, :, :n_ch]
        out[:, :, j] = np.abs(z).mean(axis=1, dtype=np.float64).T
    return out


def stmf(audio, *, sample_rate: int = SAMPLE_RATE, frame_ms: float = 4, tau_ms: float = 8,
         filterbank: FilterbankLike = "gear", table_path=None,
         scales: Sequence[float] = STMF_SCALES,
         rates_hz: Sequence[float] = STMF_RATES_HZ) -> np.ndarray:
    """Spectrotemporal modulation features (STMF), time-averaged and flattened.

    :func:`auditory_spectrogram` followed by :func:`stmf_from_spectrogram`.

    Parameters
    ----------
    audio : array_like, shape (n_samples,)
        Mono signal at 16 kHz, at least 2 frames long.
    sample_rate, frame_ms, tau_ms, filterbank, table_path
        See :func:`auditory_spectrogram`.
    scales : sequence of float
        Scales in cycles/octave (default the 11 of Thoret et al.).
    rates_hz : sequence of float
        Rates in Hz (default the 22 of Thoret et al., +-4 ... +-128 Hz).

    Returns
    -------
    ndarray, shape (128 * n_scales * n_rates,), float64
        30 976 values by default, C order: index ``f * 242 + s * 22 + r`` for frequency
        channel ``f``, scale ``s`` and rate ``r`` (in the order of ``scales`` / ``rates_hz``).
    """
    spec = auditory_spectrogram(audio, sample_rate=sample_rate, frame_ms=frame_ms, tau_ms=tau_ms,
                                filterbank=filterbank, table_path=table_path)
    if spec.shape[0] < 2:
        raise EmbeddingError(
            f"audio of {np.asarray(audio).shape[0]} samples gives {spec.shape[0]} frame; STMF "
            f"needs at least 2 frames ({2 * frame_ms} ms)"
        )
    return stmf_from_spectrogram(spec, frame_rate_hz=1000.0 / frame_ms, scales=scales,
                                 rates_hz=rates_hz).reshape(-1)
