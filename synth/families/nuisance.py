"""The ``nuisance`` family: deformations a model should ignore, applied to another family's tones.

Follows the nuisance-deformation probes of Deng, Wang, Richard & McFee (ICASSP 2025):
gain, low-pass filtering, reverberation and bit-crushing.
"""
from __future__ import annotations

import math

import numpy as np

from synth.errors import SynthError
from synth.families.base import Family
from synth.families.engine import time_axis, tone_rng
from synth.families.factors import Factor

__all__ = ["Nuisance", "NUISANCE_FACTORS"]

NUISANCE_FACTORS = (
    Factor("gain_db", "dB", range=(-12.0, 0.0), allowed=(-60.0, 6.0), role="nuisance", statistic="difference",
           description="level change after peak normalisation (peak = 0.5 * 10^(gain_db/20))"),
    Factor("lowpass_hz", "Hz", range=(500.0, 8000.0), allowed=(20.0, 48000.0), scale="log", role="nuisance",
           description="-3 dB point of a zero-phase order-4 Butterworth low-pass"),
    Factor("rt60_s", "s", range=(0.05, 1.0), allowed=(0.01, 10.0), scale="log", role="nuisance",
           description="reverberation time (-60 dB) of an exponentially decaying noise impulse response"),
    Factor("bit_depth", "bits", kind="discrete", values=(4, 6, 8, 12, 16, 24), role="nuisance",
           description="quantisation to 2^bit_depth levels over [-1, 1] (step 2^(1 - bit_depth))"),
)
_NAMES = tuple(f.name for f in NUISANCE_FACTORS)


#: Rows quantised at once (their float64 steps stay in cache instead of a whole float64 copy of the batch).
_QUANTISE_ROWS = 64

class Nuisance(Family):
    """Nuisance deformations (Deng, Wang, Richard & McFee, ICASSP 2025) of another family's tones
    (option ``base``, default ``harmonic``: the paper's 64 ms tones; ``base_options`` passes its
    options). Each tone is the base tone followed by ``tail_s`` = 0.25 s of silence, then:

    1. low-pass: zero-phase filter with the magnitude of an order-4 Butterworth,
       |H(f)| = (1 + (f / lowpass_hz)^8)^(-1/2), applied in the frequency domain (exactly -3 dB
       at ``lowpass_hz``, no bilinear warping; at or above Nyquist it barely acts);
    2. reverberation: y = x + h * x with h(t) = n(t) 10^(-3 t / rt60_s), sum h^2 = 1, where the
       white Gaussian n is one realisation per stimulus set (seeded by the set's seed), so that
       two tones differing only in rt60_s share their noise;
    3. peak normalisation to ``peak`` (0.5), THEN the gain: peak = 0.5 * 10^(gain_db / 20). The
       family sets ``normalize = False`` and returns final levels, so the gain survives (gain_db
       <= +6 dB keeps the tone within full scale);
    4. quantisation to ``bit_depth`` bits: round(y 2^(b-1)) / 2^(b-1) (mid-tread, full scale 1).

    Factors: the base family's, then ``gain_db``, ``lowpass_hz``, ``rt60_s``, ``bit_depth``
    (role ``nuisance``).
    """

    name = "nuisance"
    normalize = False
    defaults = {"duration_s": None, "peak": 0.5, "base": "harmonic", "base_options": None, "tail_s": 0.25}

    def __init__(self, **options):
        super().__init__(**options)
        from synth.families.registry import family

        base = self.options["base"]
        if base == self.name:
            raise SynthError("family 'nuisance': base must be another family, not 'nuisance'")
        self.base = family(base, **dict(self.options["base_options"] or {}))
        clash = set(self.base.parameters) & set(_NAMES)
        if clash:
            raise SynthError(f"family 'nuisance': base family {base!r} already has factor {sorted(clash)[0]!r}")
        self.factors = tuple(self.base.factors) + NUISANCE_FACTORS
        tail = self.options["tail_s"]
        if not (isinstance(tail, (int, float)) and 0 <= tail <= 10):
            raise SynthError(f"family 'nuisance': tail_s must be in [0, 10] seconds, got {tail!r}")

    def n_samples(self, sample_rate: int) -> int:
        return self.base.n_samples(sample_rate) + int(round(self.options["tail_s"] * sample_rate))

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        from scipy import fft as sp_fft  # imported on use: keeps `import synth` light

        dry = self.base.render({k: table[k] for k in self.base.parameters}, sample_rate=sample_rate, seed=seed,
                               index=index)
        # Linear convolution by FFT (complex64: relative error ~1e-7, below the 24-bit step). The
        # dry tone fills only the first base samples, so n + 2 base samples keep the circular
        # wrap-around (and the filter's pre-ringing) out of the n output samples.
        n_fft = sp_fft.next_fast_len(n_samples + 2 * self.base.n_samples(sample_rate), real=True)
        spectrum = sp_fft.rfft(dry, n=n_fft, axis=1, workers=-1)
        # H = (1 + R) / sqrt(1 + (f / f_c)^8), R the reverb's spectrum, (f / f_c)^8 = f^8 f_c^-8
        # (float32; in place, one pass per step)
        f8 = (np.arange(spectrum.shape[1]) * (sample_rate / n_fft)) ** 8
        lowpass = np.multiply(f8.astype(np.float32)[None, :], (table["lowpass_hz"][:, None] ** -8.0).astype(np.float32))
        lowpass += 1.0
        np.sqrt(lowpass, out=lowpass)
        response = sp_fft.rfft(self._impulse_responses(table["rt60_s"], sample_rate, n_samples, seed), n=n_fft, axis=1,
                               workers=-1)
        response += 1.0
        response /= lowpass
        spectrum *= response
        wet = sp_fft.irfft(spectrum, n=n_fft, axis=1, workers=-1)[:, :n_samples]
        maxima = np.maximum(wet.max(axis=1), -wet.min(axis=1)).astype(np.float64)
        # peak * gain / max, times 2^(b-1) (a power of two: the product is exact), then rounding
        levels = 2.0 ** (np.asarray(table["bit_depth"], dtype=np.float64) - 1.0)
        scale = (self.options["peak"] * 10.0 ** (table["gain_db"] / 20.0)) / maxima * levels
        out = np.empty(wet.shape, dtype=np.float32)
        for start in range(0, wet.shape[0], _QUANTISE_ROWS):  # float64 steps a block of rows at a time
            rows = slice(start, start + _QUANTISE_ROWS)
            steps = np.multiply(wet[rows], scale[rows, None], dtype=np.float64)
            np.rint(steps, out=steps)
            np.multiply(steps, 1.0 / levels[rows, None], out=out[rows], casting="same_kind")  # k / 2^(b-1): exact
        return np.clip(out, -1.0, 1.0, out=out)

    @staticmethod
    def _impulse_responses(rt60_s, sample_rate, n_samples, seed):
        t = time_axis(n_samples, sample_rate)
        noise = tone_rng(seed, 0, 2).standard_normal(n_samples, dtype=np.float32)
        decay = np.multiply((-3.0 * math.log(10.0) / rt60_s[:, None]).astype(np.float32), t[None, :].astype(np.float32))
        np.exp(decay, out=decay)
        decay *= noise[None, :]
        decay /= np.sqrt(np.einsum("ij,ij->i", decay, decay))[:, None]
        return decay
