"""Time-averaged DSP representations of sounds, as used by the timbre studies.

The timbre metric-learning studies (Thoret et al. 2021; Pascal & Lagrange 2024) describe each
sound by one vector: a representation averaged over time. This module computes four of them
from audio, with the reference preprocessing, and applies the study-wide normalisation:

``"auditory_spectrum"`` (128)
    :func:`embeddings.auditory.auditory_spectrum`.
``"stmf"`` (30 976)
    :func:`embeddings.auditory.stmf` (128 frequencies x 11 scales x 22 rates).
``"stft"`` (513)
    Mean over frames of the STFT magnitude: 1024-point periodic Hann window, hop 256,
    frames centred with zero padding (the defaults of ``librosa.stft`` >= 0.10).
``"scattering"`` (801 by default)
    Time-averaged wavelet scattering (kymatio ``Scattering1D``, J = 12, Q = (12, 1),
    orders 0-2). See :func:`scattering_average` for how this differs from the 2 204-value
    reference features.

Preprocessing differs by representation, as in the reference features:

* ``auditory_spectrum`` and ``stmf`` (Thoret et al.'s code, :func:`preprocess`): append
  16 000 zeros at 44.1 kHz (0.363 s of silence; ``round(sample_rate * 16000 / 44100)`` zeros
  at other rates), divide by ``1.01 * max(x)`` (the signed maximum, as the reference code
  does, not ``max|x|``: only the former reproduces the reference features' study-wide
  scaling), and resample to 16 kHz with FFT resampling (:func:`scipy.signal.resample`) to
  ``int(n / sample_rate * 16000)`` samples.
* ``stft`` and ``scattering`` (Pascal & Lagrange's code, :func:`resample_like_librosa`):
  the sound as ``librosa.load(path, sr=16000)`` returns it: float32, resampled with soxr
  ("soxr_hq"), no padding, no normalisation. With it our STFT features equal the reference
  ones to float32 precision; with the Thoret preprocessing the correlation drops to 0.996.

Study-wide normalisation (:func:`study_features`): the features of all sounds of a study are
divided by one scalar, the mean over sounds of each sound's maximum absolute feature value
(:func:`study_scale`).

.. note::
   The reference ``stft`` and ``scattering`` features shipped in ``shared/timbre/features``
   (computed by Pascal & Lagrange) are **not** in sorted-file-name row order, unlike the
   ``auditory_spectrum`` and ``stmf`` ones: their rows follow another (directory-listing)
   order. :func:`reference_row_order` recovers the permutation by matching rows.
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import fft as sfft
from scipy import signal

from embeddings.errors import EmbeddingError
from embeddings import auditory

__all__ = [
    "REPRESENTATIONS",
    "TARGET_SAMPLE_RATE",
    "read_audio",
    "preprocess",
    "resample_like_librosa",
    "stft_average",
    "scattering_average",
    "time_averaged",
    "study_scale",
    "study_features",
    "reference_row_order",
]

#: Representations computed by :func:`time_averaged`.
REPRESENTATIONS = ("auditory_spectrum", "stmf", "stft", "scattering")
#: All representations are computed at 16 kHz.
TARGET_SAMPLE_RATE = 16000

_PAD_SAMPLES_AT_44K = 16000
_REFERENCE_RATE = 44100

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------- audio

def read_audio(path: PathLike) -> Tuple[np.ndarray, int]:
    """Read a sound file as mono float64.

    Parameters
    ----------
    path : path-like
        Any format :mod:`soundfile` reads (AIFF, WAV, FLAC, ...).

    Returns
    -------
    audio : ndarray, shape (n_samples,), float64
        Channels averaged, full scale = 1.
    sample_rate : int
        In Hz.

    Raises
    ------
    EmbeddingError
        Missing or unreadable file.
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise EmbeddingError(f"sound file {str(p)!r} does not exist; check the path")
    try:
        data, sr = sf.read(str(p), dtype="float64", always_2d=True)
    except Exception as exc:
        raise EmbeddingError(f"cannot read sound file {str(p)!r} ({exc}); give an AIFF/WAV/FLAC file") from None
    return data.mean(axis=1), int(sr)


def _check_signal(audio, sample_rate, *, name="audio") -> np.ndarray:
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise EmbeddingError(f"sample_rate={sample_rate!r}; give a positive integer in Hz")
    return auditory._as_signal(audio, name)


def preprocess(audio, sample_rate: int) -> np.ndarray:
    """The reference preprocessing: pad with silence, normalise, resample to 16 kHz.

    Parameters
    ----------
    audio : array_like, shape (n_samples,)
        Mono signal.
    sample_rate : int
        Its sample rate in Hz.

    Returns
    -------
    ndarray, shape (int((n_samples + n_pad) / sample_rate * 16000),), float64
        ``n_pad = round(sample_rate * 16000 / 44100)`` zeros are appended (16 000 at
        44.1 kHz), the signal is divided by ``1.01 * (max(x) + eps)`` and resampled with
        :func:`scipy.signal.resample` (no resampling at 16 kHz).

    Raises
    ------
    EmbeddingError
        Bad audio, or ``max(x) <= 0`` (silent or all-negative signal: the reference scaling
        is undefined).
    """
    x = _check_signal(audio, sample_rate)
    n_pad = int(round(sample_rate * _PAD_SAMPLES_AT_44K / _REFERENCE_RATE))
    x = np.concatenate([x, np.zeros(n_pad)])
    peak = float(np.max(x))
    if peak <= 0:
        raise EmbeddingError(
            "audio has no positive sample (silent or all-negative); the reference scaling "
            "x / 1.01 / max(x) is undefined. Give a non-silent signal."
        )
    x = x / 1.01 / (peak + np.finfo(float).eps)
    if sample_rate != TARGET_SAMPLE_RATE:
        n_out = int(x.shape[0] / sample_rate * TARGET_SAMPLE_RATE)
        if n_out < 1:
            raise EmbeddingError(f"audio is too short to resample to {TARGET_SAMPLE_RATE} Hz")
        x = signal.resample(x, n_out)
    return x


def resample_like_librosa(audio, sample_rate: int) -> np.ndarray:
    """The sound as ``librosa.load(path, sr=16000)`` returns it (preprocessing of the
    reference ``stft`` and ``scattering`` features).

    Parameters
    ----------
    audio : array_like, shape (n_samples,)
        Mono signal.
    sample_rate : int
        Its sample rate in Hz.

    Returns
    -------
    ndarray, float64
        The signal cast to float32 and resampled to 16 kHz with ``librosa.resample(...,
        res_type="soxr_hq")`` (unchanged at 16 kHz); no padding, no normalisation.
    """
    x = _check_signal(audio, sample_rate).astype(np.float32)
    if sample_rate != TARGET_SAMPLE_RATE:
        import librosa

        x = librosa.resample(x, orig_sr=sample_rate, target_sr=TARGET_SAMPLE_RATE, res_type="soxr_hq")
        if x.size == 0:
            raise EmbeddingError(f"audio is too short to resample to {TARGET_SAMPLE_RATE} Hz")
    return x.astype(np.float64)


# ----------------------------------------------------------------------------- STFT

def stft_average(audio, *, sample_rate: int = TARGET_SAMPLE_RATE, n_fft: int = 1024,
                 hop_length: int = 256) -> np.ndarray:
    """Mean over frames of the STFT magnitude.

    Periodic Hann window of ``n_fft`` samples, frames centred (``n_fft // 2`` zeros on both
    sides), as ``numpy.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop_length)).mean(axis=1)``.

    Parameters
    ----------
    audio : array_like, shape (n_samples,)
        Mono signal at 16 kHz.
    sample_rate : int
        Must be 16000.
    n_fft : int
        Window and FFT length (even, >= 2).
    hop_length : int
        Frame hop (>= 1).

    Returns
    -------
    ndarray, shape (n_fft // 2 + 1,), float64
        Frequencies ``k * 16000 / n_fft`` Hz.
    """
    if sample_rate != TARGET_SAMPLE_RATE:
        raise EmbeddingError(
            f"sample_rate={sample_rate!r}; the time-averaged STFT is defined at "
            f"{TARGET_SAMPLE_RATE} Hz: resample first (see preprocess)"
        )
    x = _check_signal(audio, sample_rate)
    for name, v, lo in (("n_fft", n_fft, 2), ("hop_length", hop_length, 1)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise EmbeddingError(f"{name}={v!r}; give an integer >= {lo}")
    if n_fft % 2:
        raise EmbeddingError(f"n_fft={n_fft}; give an even FFT length (1024 is the reference)")
    half = n_fft // 2
    x = np.concatenate([np.zeros(half), x, np.zeros(half)])
    if x.shape[0] < n_fft:
        x = np.concatenate([x, np.zeros(n_fft - x.shape[0])])
    n_frames = 1 + (x.shape[0] - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length][:n_frames]
    window = signal.get_window("hann", n_fft, fftbins=True)
    return np.abs(sfft.rfft(frames * window, axis=1)).mean(axis=0)


# ----------------------------------------------------------------------------- scattering

@functools.lru_cache(maxsize=8)
def _scattering_operator(J: int, shape: int, Q: tuple, max_order: int):
    # kymatio 0.3.0's top-level ``kymatio.numpy`` also imports its 3-D frontend, which
    # imports ``scipy.special.sph_harm``, removed in SciPy 1.17 (ImportError). We use only
    # the 1-D NumPy frontend, imported from its own module, which does not touch that code.
    try:
        from kymatio.scattering1d.frontend.numpy_frontend import ScatteringNumPy1D
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"representation 'scattering' needs kymatio: pip install kymatio==0.3.0 ({exc})"
        ) from None
    return ScatteringNumPy1D(J=J, shape=shape, Q=Q, max_order=max_order)


def scattering_average(audio, *, sample_rate: int = TARGET_SAMPLE_RATE, J: int = 12,
                       Q: Tuple[int, int] = (12, 1), max_order: int = 2) -> np.ndarray:
    """Time-averaged wavelet scattering coefficients (kymatio ``Scattering1D``).

    The signal is zero-padded to the next power of two (at least ``2**(J+1)`` samples) so
    that few scattering operators need building (they are cached), and the scattering
    coefficients (low-pass ``2**J`` samples, hop ``2**J``) are averaged over the frames that
    cover the original signal.

    The reference "scattering" features of Pascal & Lagrange (2 204 values per sound) could
    not be reproduced: no ``Scattering1D`` configuration of kymatio 0.2.1 or 0.3.0 gives 2 204
    coefficients (J = 3..16, Q1 = 1..32, Q2 = 1..4, order 1 or 2), and their layout (pairs of
    identical blocks of 14, 21, ..., 77 values) suggests joint time-frequency scattering from
    kymatio's unreleased development branch. This function is the released-kymatio analogue.

    Parameters
    ----------
    audio : array_like, shape (n_samples,)
        Mono signal at 16 kHz.
    sample_rate : int
        Must be 16000.
    J : int
        Averaging scale ``2**J`` samples (12: 256 ms; second-order modulations down to ~4 Hz).
    Q : (int, int)
        Wavelets per octave at the first and second order.
    max_order : {1, 2}
        Highest scattering order.

    Returns
    -------
    ndarray, shape (n_paths,), float64
        Zeroth, first and second order coefficients in kymatio's order (801 for the
        defaults).
    """
    if sample_rate != TARGET_SAMPLE_RATE:
        raise EmbeddingError(
            f"sample_rate={sample_rate!r}; the scattering features are defined at "
            f"{TARGET_SAMPLE_RATE} Hz: resample first (see preprocess)"
        )
    x = _check_signal(audio, sample_rate)
    if not isinstance(J, (int, np.integer)) or not 1 <= J <= 20:
        raise EmbeddingError(f"J={J!r}; give an integer in 1..20 (12 is the default)")
    try:
        q = tuple(int(v) for v in (Q if np.ndim(Q) else (Q, 1)))
    except (TypeError, ValueError):
        raise EmbeddingError(f"Q={Q!r}; give an int or a pair of ints, e.g. (12, 1)") from None
    if len(q) != 2 or min(q) < 1:
        raise EmbeddingError(f"Q={Q!r}; give an int or a pair of positive ints, e.g. (12, 1)")
    if max_order not in (1, 2):
        raise EmbeddingError(f"max_order={max_order!r}; give 1 or 2")
    n = x.shape[0]
    size = 1 << max(J + 1, int(math.ceil(math.log2(n))))
    op = _scattering_operator(int(J), size, q, int(max_order))
    padded = np.zeros(size)
    padded[:n] = x
    coeffs = op(padded)  # (n_paths, size / 2**J)
    n_frames = -(-n // (1 << J))
    return np.asarray(coeffs[:, :n_frames].mean(axis=1), dtype=np.float64)


# ----------------------------------------------------------------------------- dispatch

def _check_representation(representation):
    if representation not in REPRESENTATIONS:
        raise EmbeddingError(
            f"representation={representation!r} is unknown; choose one of {', '.join(REPRESENTATIONS)}"
        )


def time_averaged(audio, sample_rate: int, representation: str, *,
                  filterbank: auditory.FilterbankLike = "gear", table_path=None) -> np.ndarray:
    """One sound's time-averaged representation, with the reference preprocessing.

    ``auditory_spectrum`` and ``stmf`` use :func:`preprocess`; ``stft`` and ``scattering``
    use :func:`resample_like_librosa` (see the module docstring).

    Parameters
    ----------
    audio : array_like, shape (n_samples,)
        Mono signal, any sample rate.
    sample_rate : int
        Its sample rate in Hz.
    representation : {"auditory_spectrum", "stmf", "stft", "scattering"}
    filterbank : {"gear", "nsl-table"} or CochlearFilterbank
        Cochlear filterbank for ``auditory_spectrum`` and ``stmf`` (see
        :func:`embeddings.auditory.cochlear_filterbank`).
    table_path : path-like, optional
        NSL table location for ``filterbank="nsl-table"``.

    Returns
    -------
    ndarray, shape (n_features,), float64
        128, 30 976, 513 or 801 values; not normalised (see :func:`study_features`).
    """
    _check_representation(representation)
    if representation in ("stft", "scattering"):
        x = resample_like_librosa(audio, sample_rate)
        return stft_average(x) if representation == "stft" else scattering_average(x)
    x = preprocess(audio, sample_rate)
    if representation == "auditory_spectrum":
        return auditory.auditory_spectrum(x, filterbank=filterbank, table_path=table_path)
    return auditory.stmf(x, filterbank=filterbank, table_path=table_path)


def study_scale(features) -> float:
    """The study-wide scalar: mean over sounds of each sound's maximum absolute feature.

    Parameters
    ----------
    features : array_like, shape (n_sounds, n_features)

    Returns
    -------
    float
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise EmbeddingError(f"features has shape {f.shape}; give (n_sounds, n_features), both >= 1")
    if not np.all(np.isfinite(f)):
        raise EmbeddingError("features contain NaN or infinite values")
    scale = float(np.mean(np.max(np.abs(f), axis=1)))
    if scale <= 0:
        raise EmbeddingError("all features are zero; the study-wide scale is undefined")
    return scale


SoundLike = Union[PathLike, np.ndarray, Sequence[float]]


def study_features(sounds: Iterable[SoundLike], representation: str, *,
                   sample_rate: Optional[int] = None, filterbank: auditory.FilterbankLike = "gear",
                   table_path=None, n_jobs: int = 1) -> np.ndarray:
    """Time-averaged features of a study's sounds, divided by the study-wide scalar.

    Parameters
    ----------
    sounds : iterable of path-like or array_like
        Sound files (read with :func:`read_audio`) or mono signals at ``sample_rate``, in
        the row order wanted (for the timbre studies: sorted file names).
    representation : {"auditory_spectrum", "stmf", "stft", "scattering"}
    sample_rate : int, optional
        Sample rate of the signals given as arrays (required then; ignored for files).
    filterbank, table_path
        See :func:`time_averaged`.
    n_jobs : int
        Sounds computed in parallel with joblib (1: in this process).

    Returns
    -------
    ndarray, shape (n_sounds, n_features), float64
        ``F / study_scale(F)``: the mean over sounds of the per-sound maximum absolute value
        is 1.

    Raises
    ------
    EmbeddingError
        Unknown representation, no sounds, unreadable file, array without ``sample_rate``.
    """
    _check_representation(representation)
    if isinstance(sounds, (str, os.PathLike)) or (
            isinstance(sounds, np.ndarray) and sounds.ndim != 2):
        raise EmbeddingError(
            "sounds must be a list of files or signals (or a 2-D array, one signal per row); "
            "wrap a single sound in a list"
        )
    items = list(sounds)
    if not items:
        raise EmbeddingError("sounds is empty; give at least one sound file or signal")
    if not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise EmbeddingError(f"n_jobs={n_jobs!r}; give a non-zero integer (1, 2, ..., or -1 for all cores)")
    # resolve the filterbank once (clear errors, shared cache) before any work
    auditory.cochlear_filterbank(filterbank, table_path=table_path)

    def one(item):
        if isinstance(item, (str, os.PathLike)):
            audio, sr = read_audio(item)
        else:
            if sample_rate is None:
                raise EmbeddingError(
                    "a sound was given as an array but sample_rate is None; pass sample_rate=..."
                )
            audio, sr = item, sample_rate
        return time_averaged(audio, sr, representation, filterbank=filterbank, table_path=table_path)

    if n_jobs == 1:
        rows = [one(item) for item in items]
    else:
        from joblib import Parallel, delayed

        rows = Parallel(n_jobs=n_jobs)(delayed(one)(item) for item in items)
    features = np.vstack(rows)
    return features / study_scale(features)


def reference_row_order(computed, reference) -> Tuple[np.ndarray, np.ndarray]:
    """Match the rows of reference features to computed ones.

    Finds the one-to-one assignment maximising the summed per-row Pearson correlation
    (Hungarian algorithm).

    Parameters
    ----------
    computed : array_like, shape (n_sounds, n_features)
        Features in the wanted row order (e.g. sorted file names).
    reference : array_like, shape (n_sounds, n_features)
        Same features in an unknown row order.

    Returns
    -------
    order : ndarray of int, shape (n_sounds,)
        ``reference[order]`` lines up with ``computed``.
    correlations : ndarray, shape (n_sounds,)
        Pearson correlation of each computed row with its matched reference row.
    """
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(computed, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise EmbeddingError(
            f"computed {a.shape} and reference {b.shape} must be 2-D arrays of the same shape"
        )
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    if np.any(na == 0) or np.any(nb == 0):
        raise EmbeddingError("a row is constant; its correlation is undefined")
    corr = (a / na) @ (b / nb).T
    rows, cols = linear_sum_assignment(-corr)
    order = cols[np.argsort(rows)]
    return order, corr[np.arange(a.shape[0]), order]
