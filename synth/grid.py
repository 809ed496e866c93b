"""Tone sets: the paper grid, the compatibility preset of the paper's code, factorial grids.

Units. The GEAR paper gives f1 in *bins*: cycles per T = 1 024-sample window, with no sample
rate, so in its code every model heard a different pitch in Hz. GEAR fixes a reference rate,
:data:`REFERENCE_SAMPLE_RATE` = 16 000 Hz (the rate of most of the paper's models: CREPE,
YAMNet, wav2vec2, BYOL-S, GURA), at which f1 in bins converts to Hz and T to seconds:

    f1_hz = f1_bins * 16000 / 1024 = 15.625 Hz per bin   (bins 12..24 -> 187.5..375 Hz)
    duration_s = 1024 / 16000 = 0.064 s

Every model then hears the same tones in Hz and seconds: :meth:`ToneSet.render` synthesises
analytically at the model's own sample rate (no resampling).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from synth.errors import SynthError
from synth.tones import _check_int, _synthesise, harmonic_tones

__all__ = [
    "REFERENCE_SAMPLE_RATE",
    "REFERENCE_N_SAMPLES",
    "PRESETS",
    "ToneSet",
    "paper_grid",
    "compat_grid",
    "factorial_grid",
    "make_grid",
]

REFERENCE_SAMPLE_RATE = 16000
REFERENCE_N_SAMPLES = 1024
HZ_PER_BIN = REFERENCE_SAMPLE_RATE / REFERENCE_N_SAMPLES
PARAMETERS = ("f1_hz", "alpha", "r")


@dataclasses.dataclass(frozen=True, eq=False)
class ToneSet:
    """A set of tones with known parameters (the parameter table travels with the audio).

    Attributes
    ----------
    preset : str
        ``"paper"``, ``"gear2023-code"``, ``"factorial"`` or ``"custom"``.
    f1_bins, alpha, r : np.ndarray, shape (n_sounds,), float64
        f1 in cycles per reference window (1 024 samples at 16 kHz), spectral decay and
        odd/even balance.
    grid_index : np.ndarray, shape (n_sounds, 3), int
        Position of each sound on the grid axis of (f1, alpha, r); -1 where a parameter is
        not on a grid axis (the paper draws f1 at random per (alpha, r) cell).
    duration_s : float
        Tone duration T in seconds.
    n_partials : int
        Partials before the Nyquist cut.
    peak : float
        Per-tone peak amplitude (``"peak"`` normalisation).
    normalization : str
        ``"peak"`` (each tone to ``peak``) or ``"maxabs-columns"`` (the paper code's
        column-wise MaxAbs scaling over the set, which cancels the Hann window).
    fixed_n_samples : int or None
        If set, every rendering has this many samples whatever the sample rate and f1 is
        fixed in bins of it (the paper code's behaviour: pitch in Hz then depends on the
        model's rate).
    seed : int or None
        Seed of the random f1 draw.
    """

    preset: str
    f1_bins: np.ndarray
    alpha: np.ndarray
    r: np.ndarray
    grid_index: np.ndarray
    duration_s: float = REFERENCE_N_SAMPLES / REFERENCE_SAMPLE_RATE
    n_partials: int = 32
    peak: float = 0.5
    normalization: str = "peak"
    fixed_n_samples: Optional[int] = None
    seed: Optional[int] = None

    # ----------------------------------------------------------------- basic views
    @property
    def n_sounds(self) -> int:
        return int(self.f1_bins.shape[0])

    def __len__(self) -> int:
        return self.n_sounds

    @property
    def index(self) -> np.ndarray:
        return np.arange(self.n_sounds)

    def f1_hz(self, sample_rate: Optional[int] = None) -> np.ndarray:
        """f1 in Hz as heard at ``sample_rate`` (the same at every rate unless the preset
        fixes the number of samples, as the paper's code did)."""
        if self.fixed_n_samples is not None:
            if sample_rate is None:
                sample_rate = REFERENCE_SAMPLE_RATE
            return self.f1_bins * sample_rate / self.fixed_n_samples
        return self.f1_bins * HZ_PER_BIN

    def n_samples(self, sample_rate: int) -> int:
        """Number of samples of each tone at ``sample_rate``."""
        sample_rate = _check_int("sample_rate", sample_rate, 1)
        if self.fixed_n_samples is not None:
            return self.fixed_n_samples
        return int(round(self.duration_s * sample_rate))

    def theta(self, sample_rate: Optional[int] = None) -> np.ndarray:
        """Parameters as an array of shape (n_sounds, 3): columns f1_hz, alpha, r."""
        return np.stack([self.f1_hz(sample_rate), self.alpha, self.r], axis=1)

    def table(self, sample_rate: Optional[int] = None) -> Dict[str, np.ndarray]:
        """The parameter table: ``index, f1_bins, f1_hz, alpha, r`` (+ ``sample_rate,
        n_samples`` when a rate is given)."""
        columns = {
            "index": self.index,
            "f1_bins": self.f1_bins.copy(),
            "f1_hz": self.f1_hz(sample_rate),
            "alpha": self.alpha.copy(),
            "r": self.r.copy(),
        }
        if sample_rate is not None:
            columns["sample_rate"] = np.full(self.n_sounds, sample_rate)
            columns["n_samples"] = np.full(self.n_sounds, self.n_samples(sample_rate))
        return columns

    # ----------------------------------------------------------------- identity
    def config(self) -> dict:
        """A JSON-serialisable description; with the arrays' digest, it identifies the set."""
        digest = hashlib.sha256()
        for array in (self.f1_bins, self.alpha, self.r, self.grid_index):
            digest.update(np.ascontiguousarray(array).tobytes())
        return {
            "preset": self.preset,
            "n_sounds": self.n_sounds,
            "duration_s": self.duration_s,
            "n_partials": self.n_partials,
            "peak": self.peak,
            "normalization": self.normalization,
            "fixed_n_samples": self.fixed_n_samples,
            "seed": self.seed,
            "reference_sample_rate": REFERENCE_SAMPLE_RATE,
            "parameters_sha256": digest.hexdigest(),
        }

    def config_hash(self) -> str:
        """SHA-256 of :meth:`config` (hex): the tone set's identity in caches."""
        text = json.dumps(self.config(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def subset(self, indices) -> "ToneSet":
        """A tone set made of the sounds at ``indices`` (same preset settings)."""
        indices = np.asarray(indices)
        if indices.ndim != 1:
            raise SynthError(f"indices must be 1-D, got shape {indices.shape}")
        if indices.size and (indices.min() < -self.n_sounds or indices.max() >= self.n_sounds):
            raise SynthError(f"indices out of range for a set of {self.n_sounds} sounds")
        return dataclasses.replace(
            self,
            f1_bins=self.f1_bins[indices],
            alpha=self.alpha[indices],
            r=self.r[indices],
            grid_index=self.grid_index[indices],
        )

    # ----------------------------------------------------------------- audio
    def render(self, sample_rate: int, *, indices: Optional[Sequence[int]] = None) -> np.ndarray:
        """Synthesise the tones at ``sample_rate``.

        Parameters
        ----------
        sample_rate : int
            Sample rate in Hz (the model's own rate).
        indices : sequence of int, optional
            Render only these sounds (e.g. one batch). With ``"maxabs-columns"``
            normalisation the scaling is still computed over the whole set.

        Returns
        -------
        np.ndarray, shape (n, n_samples), float32
        """
        sample_rate = _check_int("sample_rate", sample_rate, 1)
        n_samples = self.n_samples(sample_rate)
        f1_hz = self.f1_hz(sample_rate)
        if self.normalization == "peak":
            chosen = np.arange(self.n_sounds) if indices is None else np.asarray(indices)
            return harmonic_tones(
                f1_hz[chosen],
                self.alpha[chosen],
                self.r[chosen],
                sample_rate=sample_rate,
                n_samples=n_samples,
                n_partials=self.n_partials,
                peak=self.peak,
            )
        if self.normalization == "maxabs-columns":
            # The paper code's scaling: each time sample (column) divided by its maximum
            # |value| over the whole set. Column t of every tone carries the factor hann(t),
            # so the window cancels exactly (columns that are zero everywhere stay zero).
            tones = _synthesise(f1_hz, self.alpha, self.r, sample_rate, n_samples, self.n_partials)
            scale = np.max(np.abs(tones), axis=0)
            scale[scale == 0] = 1.0
            tones = tones / scale[None, :]
            if indices is not None:
                tones = tones[np.asarray(indices)]
            return tones.astype(np.float32)
        raise SynthError(
            f"normalization={self.normalization!r}; expected 'peak' or 'maxabs-columns'"
        )


# --------------------------------------------------------------------- presets
def _check_range(name, value):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SynthError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise SynthError(f"{name} must be a finite pair with low <= high, got {value!r}")
    return low, high


def paper_grid(
    *,
    n_alpha: int = 50,
    n_r: int = 50,
    alpha_range: Tuple[float, float] = (0.0, 2.0),
    r_range: Tuple[float, float] = (0.0, 1.0),
    f1_bins_range: Tuple[int, int] = (12, 24),
    seed: int = 0,
    duration_s: float = REFERENCE_N_SAMPLES / REFERENCE_SAMPLE_RATE,
    n_partials: int = 32,
    peak: float = 0.5,
) -> ToneSet:
    """The GEAR paper's dataset (the default): ``n_alpha x n_r`` tones.

    alpha takes ``n_alpha`` evenly spaced values over ``alpha_range`` (both ends included),
    r ``n_r`` values over ``r_range``; each (alpha, r) cell gets an integer f1 in bins drawn
    uniformly in ``f1_bins_range`` (both ends included: 12..24 by default, i.e.
    187.5..375 Hz). Sounds are ordered alpha-major: ``index = i_alpha * n_r + i_r``.

    Parameters
    ----------
    n_alpha, n_r : int
        Grid sizes (>= 1).
    alpha_range, r_range : (float, float)
        Closed ranges; alpha >= 0, r within [-1, 1].
    f1_bins_range : (int, int)
        Closed range of f1 in bins of the 1 024-sample reference window at 16 kHz.
    seed : int
        Seed of the f1 draw (same seed -> bit-identical set and audio).
    duration_s : float
        T in seconds (default 64 ms = 1 024 samples at 16 kHz).
    n_partials : int
        P (default 32; partials above Nyquist are dropped at render time).
    peak : float
        Per-tone peak amplitude.

    Returns
    -------
    ToneSet
    """
    n_alpha = _check_int("n_alpha", n_alpha, 1)
    n_r = _check_int("n_r", n_r, 1)
    alpha_low, alpha_high = _check_range("alpha_range", alpha_range)
    r_low, r_high = _check_range("r_range", r_range)
    if alpha_low < 0:
        raise SynthError(f"alpha_range must be >= 0, got {alpha_range!r}")
    if r_low < -1 or r_high > 1:
        raise SynthError(f"r_range must lie within [-1, 1], got {r_range!r}")
    f1_low, f1_high = _check_range("f1_bins_range", f1_bins_range)
    if f1_low <= 0:
        raise SynthError(f"f1_bins_range must be > 0, got {f1_bins_range!r}")
    seed = _check_int("seed", seed, 0)
    alphas = np.linspace(alpha_low, alpha_high, n_alpha)
    rs = np.linspace(r_low, r_high, n_r)
    i_alpha, i_r = np.meshgrid(np.arange(n_alpha), np.arange(n_r), indexing="ij")
    i_alpha, i_r = i_alpha.ravel(), i_r.ravel()
    rng = np.random.default_rng(seed)
    f1_bins = rng.integers(int(np.ceil(f1_low)), int(np.floor(f1_high)), size=i_alpha.size, endpoint=True)
    tone_set = ToneSet(
        preset="paper",
        f1_bins=f1_bins.astype(np.float64),
        alpha=alphas[i_alpha],
        r=rs[i_r],
        grid_index=np.stack([np.full(i_alpha.size, -1), i_alpha, i_r], axis=1),
        duration_s=float(duration_s),
        n_partials=_check_int("n_partials", n_partials, 1),
        peak=float(peak),
        seed=seed,
    )
    _validate_renderable(tone_set)
    return tone_set


def compat_grid(*, seed: int = 0, n_alpha: int = 50, n_r: int = 50, warn: bool = True) -> ToneSet:
    """``"gear2023-code"``: the parameters of the GEAR paper's published code, not its text.

    Departs from the paper in four ways, reproduced on purpose so that published figures
    can be re-derived: alpha in [1, 3) and r in [1, 2) (``1 + 2k/n_alpha``, ``1 + k/n_r``,
    k = 0..n-1), f1 in {12, ..., 23} bins; every rendering has 1 024 samples whatever the
    sample rate, so f1 in Hz and T in seconds depend on the model's rate (187.5..359 Hz at
    16 kHz, 517..990 Hz at 44.1 kHz); partials at or above Nyquist dropped; and a
    column-wise MaxAbs scaling over the whole set that exactly cancels the Hann window.
    With r >= 1, the odd partials get amplitude 1 - r <= 0.
    """
    if warn:
        warnings.warn(
            "preset 'gear2023-code' reproduces the GEAR paper's code, which departs from the "
            "paper (alpha in [1,3), r in [1,2), f1 in bins of a fixed 1024-sample window at "
            "every sample rate, Hann window cancelled by MaxAbs scaling); use the default "
            "'paper' preset for new results",
            UserWarning,
            stacklevel=2,
        )
    n_alpha = _check_int("n_alpha", n_alpha, 1)
    n_r = _check_int("n_r", n_r, 1)
    seed = _check_int("seed", seed, 0)
    i_alpha, i_r = np.meshgrid(np.arange(n_alpha), np.arange(n_r), indexing="ij")
    i_alpha, i_r = i_alpha.ravel(), i_r.ravel()
    rng = np.random.default_rng(seed)
    f1_bins = rng.integers(12, 24, size=i_alpha.size)  # 12..23, as the code drew them
    return ToneSet(
        preset="gear2023-code",
        f1_bins=f1_bins.astype(np.float64),
        alpha=1.0 + 2.0 * i_alpha / n_alpha,
        r=1.0 + i_r / n_r,
        grid_index=np.stack([np.full(i_alpha.size, -1), i_alpha, i_r], axis=1),
        duration_s=REFERENCE_N_SAMPLES / REFERENCE_SAMPLE_RATE,
        n_partials=32,
        peak=1.0,
        normalization="maxabs-columns",
        fixed_n_samples=REFERENCE_N_SAMPLES,
        seed=seed,
    )


def factorial_grid(
    *,
    f1_bins: Sequence[float] = tuple(range(12, 25)),
    n_alpha: int = 14,
    n_r: int = 14,
    alpha_range: Tuple[float, float] = (0.0, 2.0),
    r_range: Tuple[float, float] = (0.0, 1.0),
    duration_s: float = REFERENCE_N_SAMPLES / REFERENCE_SAMPLE_RATE,
    n_partials: int = 32,
    peak: float = 0.5,
) -> ToneSet:
    """A full f1 x alpha x r grid (default 13 x 14 x 14 = 2 548 tones), ordered f1-major.

    Every parameter is on a grid axis, so exact one-parameter steps exist (used by the
    sensitivity metrics). No randomness.
    """
    f1_values = np.asarray(f1_bins, dtype=np.float64)
    if f1_values.ndim != 1 or f1_values.size < 1:
        raise SynthError(f"f1_bins must be a non-empty 1-D sequence, got {f1_bins!r}")
    if np.any(f1_values <= 0):
        raise SynthError(f"f1_bins must be > 0, got {f1_values[f1_values <= 0][0]!r}")
    n_alpha = _check_int("n_alpha", n_alpha, 1)
    n_r = _check_int("n_r", n_r, 1)
    alpha_low, alpha_high = _check_range("alpha_range", alpha_range)
    r_low, r_high = _check_range("r_range", r_range)
    if alpha_low < 0:
        raise SynthError(f"alpha_range must be >= 0, got {alpha_range!r}")
    if r_low < -1 or r_high > 1:
        raise SynthError(f"r_range must lie within [-1, 1], got {r_range!r}")
    grids = np.meshgrid(np.arange(f1_values.size), np.arange(n_alpha), np.arange(n_r), indexing="ij")
    i_f1, i_alpha, i_r = (g.ravel() for g in grids)
    tone_set = ToneSet(
        preset="factorial",
        f1_bins=f1_values[i_f1],
        alpha=np.linspace(alpha_low, alpha_high, n_alpha)[i_alpha],
        r=np.linspace(r_low, r_high, n_r)[i_r],
        grid_index=np.stack([i_f1, i_alpha, i_r], axis=1),
        duration_s=float(duration_s),
        n_partials=_check_int("n_partials", n_partials, 1),
        peak=float(peak),
    )
    _validate_renderable(tone_set)
    return tone_set


def _validate_renderable(tone_set: ToneSet) -> None:
    """Fail early (at the reference rate) on settings the synthesiser would reject."""
    if tone_set.n_sounds == 0:
        raise SynthError("the tone set is empty")
    # Check the extreme f1 values once, cheaply, through the public synthesiser.
    for f1 in (tone_set.f1_hz().min(), tone_set.f1_hz().max()):
        harmonic_tones(
            f1,
            0.0,
            0.0,
            sample_rate=REFERENCE_SAMPLE_RATE,
            n_samples=tone_set.n_samples(REFERENCE_SAMPLE_RATE),
            n_partials=tone_set.n_partials,
            peak=tone_set.peak,
        )


#: Preset names accepted by :func:`make_grid` and the CLI.
PRESETS = ("paper", "gear2023-code", "factorial")


def make_grid(preset: str = "paper", **kwargs) -> ToneSet:
    """Build a tone set by preset name (``"paper"``, ``"gear2023-code"``, ``"factorial"``)."""
    if preset == "paper":
        return paper_grid(**kwargs)
    if preset == "gear2023-code":
        return compat_grid(**kwargs)
    if preset == "factorial":
        return factorial_grid(**kwargs)
    raise SynthError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
