"""The built-in stimulus families (factor names are fixed so that users can script them).

Each family's docstring cites what it follows and states its duration and fixed timbre.
"""
from __future__ import annotations

import math

import numpy as np

from synth.errors import SynthError
from synth.families.base import Family
from synth.families.engine import chebyshev_partials, hann, sum_of_cosines, time_axis, tone_rng
from synth.families.factors import Factor
from synth.grid import HZ_PER_BIN, REFERENCE_N_SAMPLES, REFERENCE_SAMPLE_RATE
from synth.tones import _synthesise, partial_amplitudes

__all__ = ["Harmonic", "Chirplet", "Envelope", "Inharmonic", "Noise", "Vibrato", "Chord"]

LN_1000 = math.log(1000.0)


def _f1_factor(low=110.0, high=440.0, **kwargs):
    return Factor("f1_hz", "Hz", range=(low, high), allowed=kwargs.pop("allowed", (20.0, 4000.0)), scale="log",
                  description="fundamental frequency", **kwargs)


def _check_below_nyquist(family, name, highest, sample_rate, block):
    """Raise if a tone's lowest component (``highest`` = its top frequency that must be heard)
    is at or above Nyquist."""
    bad = np.asarray(highest) >= sample_rate / 2.0
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise SynthError(f"family {family!r}: factor {name!r}={np.asarray(block[name])[i].item()!r} puts the tone at "
                         f"{float(np.asarray(highest)[i]):.6g} Hz, at or above the Nyquist frequency "
                         f"{sample_rate / 2:g} Hz; lower {name!r} or raise the sample rate")


def _harmonic_freqs(f1_hz, n_partials):
    p = np.arange(1, n_partials + 1, dtype=np.float64)
    return f1_hz[:, None] * p[None, :], np.broadcast_to(1.0 / p, (f1_hz.size, n_partials))


class Harmonic(Family):
    """GEAR's additive harmonic tones: Lostanlen, Yan & Yang (2023), "From HEAR to GEAR", eq. 1.

    y(t) = sum_p (1 + (-1)^p r) / p^alpha cos(2 pi p f1 t) phi_T(t), Hann window phi_T, T = 64 ms
    (1 024 samples at 16 kHz), P = 32 partials, partials at or above Nyquist dropped. On the
    ``grid`` design (alpha x r grid of 50 x 50, f1 drawn per cell on integer bins of the 64 ms
    window, 187.5..375 Hz) it is the paper's tone set, bit for bit :func:`synth.paper_grid`.
    """

    name = "harmonic"
    factors = (
        Factor("f1_hz", "Hz", range=(12 * HZ_PER_BIN, 24 * HZ_PER_BIN), allowed=(20.0, 10000.0), step=HZ_PER_BIN,
               statistic="log_ratio", description="fundamental frequency (grid design: integer bins of 15.625 Hz)"),
        Factor("alpha", "", range=(0.0, 2.0), allowed=(0.0, 8.0), statistic="log_ratio",
               description="spectral decay exponent: partial p has amplitude 1/p^alpha"),
        Factor("r", "", range=(0.0, 1.0), allowed=(-1.0, 1.0), statistic="log_ratio",
               description="odd/even balance: partial p is weighted 1 + (-1)^p r"),
    )
    defaults = {"duration_s": REFERENCE_N_SAMPLES / REFERENCE_SAMPLE_RATE, "peak": 0.5, "n_partials": 32}
    default_grid = {"alpha": 50, "r": 50}

    def blocks(self, table, n_samples):
        f1 = table["f1_hz"]
        values, inverse = np.unique(f1, return_inverse=True)
        if values.size * 4 > f1.size:
            return super().blocks(table, n_samples)
        # Few distinct pitches: one block per pitch, as synth.harmonic_tones groups them, so
        # that the paper grid's audio is bit-identical to ToneSet.render.
        return (np.flatnonzero(inverse == k) for k in range(values.size))

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        f1, alpha, r = table["f1_hz"], table["alpha"], table["r"]
        n_partials = int(self.options["n_partials"])
        _check_below_nyquist(self.name, "f1_hz", f1, sample_rate, table)
        short = f1 * n_samples / sample_rate < 1
        if np.any(short):
            raise SynthError(f"family 'harmonic': f1_hz={float(f1[short][0])!r} gives less than one period in "
                             f"{n_samples} samples; raise f1_hz or duration_s")
        if np.unique(f1).size == 1:
            return _synthesise(f1, alpha, r, sample_rate, n_samples, n_partials, grouped=True)
        freqs, _ = _harmonic_freqs(f1, n_partials)
        amps = partial_amplitudes(alpha, r, n_partials=n_partials)
        return sum_of_cosines(freqs, amps, sample_rate=sample_rate, n_samples=n_samples) * hann(n_samples)


class Chirplet(Family):
    """Amplitude- and frequency-modulated chirplets of the kymatio ISMIR 2023 tutorial's GEAR
    chapter (Lostanlen, Vahidi et al., after Andén, Lostanlen & Mallat 2019, "Joint
    time-frequency scattering").

    x(t) = sin(2 pi f_c (2^(gamma t) - 1) / (gamma ln 2)) * sin(pi f_m t) * g(t),  t in [-T/2, T/2)

    with instantaneous frequency f_c 2^(gamma t) (``carrier_hz``, ``fm_oct_per_s`` = gamma,
    sign = direction), an envelope |sin(pi f_m t)| that repeats ``am_hz`` = f_m times per second
    (the chapter's sinusoidal modulator at half the AM rate), and a Gaussian window g of standard
    deviation sigma0 bw / |gamma| (sigma0 = 0.1, bw = 2 octaves: every chirplet spans the same
    bandwidth), capped at T/6 so that it fits in the tone (so slow chirps, |gamma| < 2.4 oct/s at
    T = 0.5 s, cover less than bw). T = 0.5 s (the chapter uses 4 s at 8 192 Hz).
    """

    name = "chirplet"
    factors = (
        Factor("carrier_hz", "Hz", range=(256.0, 1024.0), allowed=(20.0, 10000.0), scale="log",
               description="carrier (instantaneous) frequency at the centre of the tone"),
        Factor("am_hz", "Hz", range=(4.0, 16.0), allowed=(0.5, 200.0), scale="log",
               description="amplitude-modulation rate (envelope repetitions per second)"),
        Factor("fm_oct_per_s", "oct/s", range=(-4.0, 4.0), allowed=(-16.0, 16.0), statistic="difference",
               description="frequency-modulation rate in octaves per second (sign = direction)"),
    )
    defaults = {"duration_s": 0.5, "peak": 0.5, "bw_octaves": 2.0, "sigma0": 0.1}

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        fc, am, gamma = table["carrier_hz"][:, None], table["am_hz"][:, None], table["fm_oct_per_s"][:, None]
        duration = n_samples / sample_rate
        top = fc[:, 0] * 2.0 ** (np.abs(gamma[:, 0]) * duration / 2) + am[:, 0] / 2
        _check_below_nyquist(self.name, "carrier_hz", top, sample_rate, table)
        t = time_axis(n_samples, sample_rate) - duration / 2
        rate = np.where(np.abs(gamma) < 1e-9, 1e-9, gamma) * math.log(2.0)
        cycles = (fc / rate) * np.expm1(rate * t[None, :])
        cycles -= np.floor(cycles)
        carrier = np.sin((2.0 * np.pi) * cycles.astype(np.float32))
        sigma = np.minimum(self.options["sigma0"] * self.options["bw_octaves"] / np.maximum(np.abs(gamma), 1e-9),
                           duration / 6.0)
        t32 = t.astype(np.float32)[None, :]
        envelope = np.exp((-0.5 / sigma**2).astype(np.float32) * (t32 * t32))
        envelope *= np.sin((np.pi * am).astype(np.float32) * t32)
        carrier *= envelope
        return carrier


class Envelope(Family):
    """A harmonic tone with an attack-decay envelope (the ADSR family of synthesisers, e.g.
    torchsynth, reduced to attack and decay; cf. the attack-time dimension of timbre spaces,
    McAdams et al. 1995).

    Partials p = 1..16 with amplitude 1/p (sawtooth-like). Envelope: linear rise from 0 at
    t = 0 to 1 at ``attack_ms`` (so the 10-90 % rise time is 0.8 attack_ms), then exponential
    decay reaching -60 dB ``decay_ms`` after the peak; a 10 ms raised-cosine fade-out ends the
    tone. T = 0.5 s: the slowest allowed attack (250 ms) leaves 250 ms of decay.
    """

    name = "envelope"
    factors = (
        _f1_factor(),
        Factor("attack_ms", "ms", range=(1.0, 200.0), allowed=(0.5, 250.0), scale="log",
               description="attack time: linear rise from silence to the peak"),
        Factor("decay_ms", "ms", range=(50.0, 1000.0), allowed=(5.0, 10000.0), scale="log",
               description="decay time: -60 dB after the peak (T60)"),
    )
    defaults = {"duration_s": 0.5, "peak": 0.5, "n_partials": 16, "fade_ms": 10.0}

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        f1 = table["f1_hz"]
        _check_below_nyquist(self.name, "f1_hz", f1, sample_rate, table)
        freqs, amps = _harmonic_freqs(f1, int(self.options["n_partials"]))
        tones = sum_of_cosines(freqs, amps, sample_rate=sample_rate, n_samples=n_samples, dtype=np.float32)
        t = time_axis(n_samples, sample_rate)
        attack = table["attack_ms"][:, None] / 1e3
        rate = (LN_1000 / (table["decay_ms"][:, None] / 1e3)).astype(np.float32)
        t32 = t.astype(np.float32)[None, :]
        # min(linear rise t/A, exponential decay from 1 at A): the rise below A, the decay after
        envelope = np.exp(rate * (attack.astype(np.float32) - t32))
        np.minimum(envelope, t32 / attack.astype(np.float32), out=envelope)
        tones *= envelope
        fade_s = self.options["fade_ms"] / 1e3
        end = n_samples / sample_rate
        fading = t > end - fade_s  # raised cosine in time (the same curve at every rate)
        tones[:, fading] *= (0.5 + 0.5 * np.cos(np.pi * (t[fading] - (end - fade_s)) / fade_s)).astype(np.float32)
        return tones


class Inharmonic(Family):
    """Stiff-string tones: partial p at f_p = p f1 sqrt(1 + B p^2) (Fletcher 1964, "Normal vibration
    frequencies of a stiff piano string", JASA 36), amplitude 1/p, p = 1..16, Hann window,
    T = 0.25 s; partials at or above Nyquist dropped."""

    name = "inharmonic"
    factors = (
        _f1_factor(55.0, 440.0),
        Factor("inharmonicity_b", "", range=(1e-5, 1e-2), allowed=(1e-7, 0.1), scale="log",
               description="inharmonicity coefficient B"),
    )
    defaults = {"duration_s": 0.25, "peak": 0.5, "n_partials": 16}

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        f1, b = table["f1_hz"], table["inharmonicity_b"]
        _check_below_nyquist(self.name, "f1_hz", f1 * np.sqrt(1 + b), sample_rate, table)
        freqs, amps = _harmonic_freqs(f1, int(self.options["n_partials"]))
        p = np.arange(1, freqs.shape[1] + 1, dtype=np.float64)
        freqs = freqs * np.sqrt(1.0 + b[:, None] * p[None, :] ** 2)
        tones = sum_of_cosines(freqs, amps, sample_rate=sample_rate, n_samples=n_samples, dtype=np.float32)
        return tones * hann(n_samples).astype(np.float32)


#: Noise colours of the ``noise`` family: the exponent beta of the power spectral density
#: PSD(f) ~ f^-beta, i.e. a slope of -10 log10(2) beta = -3.01 beta dB per octave.
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


class Noise(Family):
    """A harmonic tone plus Gaussian noise at a given harmonic-to-noise ratio (the HNR of voice
    analysis, Yumoto, Gould & Baer 1982; Boersma 1993), 10 log10(E_harmonic / E_noise) exact over
    each rendered tone. Partials p = 1..16 with amplitude 1/p; both parts under one Hann window;
    T = 0.25 s. The noise is seeded by (set seed, tone index) and drawn at the render rate
    (another rate gives another realisation with the same HNR).

    Option ``colour``: the noise's power spectral density PSD(f) ~ f^-beta, shaped from the white
    draw by multiplying its DFT by f^(-beta/2) (DC removed) before the window:

    - ``white`` (default): beta = 0, flat, 0 dB per octave;
    - ``pink``: beta = 1, -3.01 dB per octave (equal energy per octave);
    - ``brown`` (Brownian, red): beta = 2, -6.02 dB per octave (integrated white noise).
    """

    name = "noise"
    factors = (
        _f1_factor(),
        Factor("hnr_db", "dB", range=(-10.0, 30.0), allowed=(-60.0, 80.0), statistic="difference",
               description="harmonic-to-noise energy ratio"),
    )
    defaults = {"duration_s": 0.25, "peak": 0.5, "n_partials": 16, "colour": "white"}

    def __init__(self, **options):
        super().__init__(**options)
        if self.options["colour"] not in NOISE_COLOURS:
            raise SynthError(f"family 'noise': colour={self.options['colour']!r} is not a noise colour; choose one "
                             f"of {', '.join(NOISE_COLOURS)}")

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        f1 = table["f1_hz"]
        _check_below_nyquist(self.name, "f1_hz", f1, sample_rate, table)
        window = hann(n_samples).astype(np.float32)
        freqs, amps = _harmonic_freqs(f1, int(self.options["n_partials"]))
        tones = sum_of_cosines(freqs, amps, sample_rate=sample_rate, n_samples=n_samples, dtype=np.float32)
        tones *= window
        noise = np.stack([tone_rng(seed, i, 1).standard_normal(n_samples, dtype=np.float32) for i in index])
        noise = _colour(noise, NOISE_COLOURS[self.options["colour"]])
        noise *= window
        energy = np.einsum("ij,ij->i", tones, tones, dtype=np.float64) / np.einsum("ij,ij->i", noise, noise,
                                                                                    dtype=np.float64)
        noise *= np.sqrt(energy / 10.0 ** (table["hnr_db"] / 10.0)).astype(np.float32)[:, None]
        tones += noise
        return tones


def _colour(noise, beta):
    """White noise rows (float32) shaped to PSD ~ f^-beta (DFT times f^(-beta/2), DC removed)."""
    if beta == 0:
        return noise
    from scipy import fft as sp_fft

    spectrum = sp_fft.rfft(noise, axis=1, workers=-1)
    gain = np.zeros(spectrum.shape[1], dtype=np.float32)
    gain[1:] = np.arange(1, spectrum.shape[1], dtype=np.float64) ** (-beta / 2.0)
    spectrum *= gain
    return sp_fft.irfft(spectrum, n=noise.shape[1], axis=1, workers=-1).astype(np.float32, copy=False)


class Vibrato(Family):
    """A harmonic tone with sinusoidal vibrato in cents, f(t) = f1 2^((c/1200) sin(2 pi nu t))
    (the vibrato model of Seashore 1938 and of singing-voice synthesis, e.g. Sundberg 1987).
    The phase is the running integral of f(t) at the render rate (trapezoid rule, no
    resampling). Partials p = 1..8 with amplitude 1/p (a partial is dropped when its highest
    frequency reaches Nyquist); Hann window; T = 0.5 s (two cycles at the slowest default rate)."""

    name = "vibrato"
    factors = (
        _f1_factor(),
        Factor("vibrato_hz", "Hz", range=(4.0, 8.0), allowed=(0.5, 20.0), scale="log", description="vibrato rate"),
        Factor("vibrato_cents", "cents", range=(10.0, 100.0), allowed=(1.0, 600.0), scale="log",
               description="vibrato depth (peak deviation from f1)"),
    )
    defaults = {"duration_s": 0.5, "peak": 0.5, "n_partials": 8}

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        f1, rate, cents = table["f1_hz"][:, None], table["vibrato_hz"][:, None], table["vibrato_cents"][:, None]
        top = f1[:, 0] * 2.0 ** (cents[:, 0] / 1200)
        _check_below_nyquist(self.name, "f1_hz", top, sample_rate, table)
        t = time_axis(n_samples, sample_rate).astype(np.float32)
        # float32 for the vibrato curve (relative error ~1e-7 in frequency), float64 for the phase;
        # in place, one buffer reused, so that each step is one pass over the block.
        ratio = np.multiply((2.0 * np.pi * rate).astype(np.float32), t[None, :])
        np.sin(ratio, out=ratio)
        ratio *= (cents / 1200.0).astype(np.float32)
        np.exp2(ratio, out=ratio)  # f(t) / f1
        # trapezoid rule in cycles: (f1 / sr) (sum_{k<=n} s_k - (s_0 + s_n) / 2)
        cycles = np.cumsum(ratio, axis=1, dtype=np.float64)
        ratio += ratio[:, :1].copy()
        ratio *= 0.5
        cycles -= ratio
        cycles *= f1 / sample_rate
        np.subtract(cycles, np.floor(cycles), out=ratio)  # phase in cycles, [0, 1), float32
        ratio *= np.float32(2.0 * np.pi)
        cos_phase = np.cos(ratio, out=ratio)
        p = np.arange(1, int(self.options["n_partials"]) + 1, dtype=np.float64)
        amps = (1.0 / p)[None, :] * (p[None, :] * top[:, None] < sample_rate / 2.0)
        return chebyshev_partials(cos_phase, amps, window=hann(n_samples).astype(np.float32))


CHORD_QUALITIES = {"major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6), "augmented": (0, 4, 8),
                   "sus2": (0, 2, 7), "sus4": (0, 5, 7)}
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def chord_midi(root, quality, inversion, *, base_midi=48):
    """MIDI note numbers of a triad: root pitch class (0 = C) in the octave from ``base_midi``
    (C3), the quality's intervals, the lowest ``inversion`` notes raised an octave."""
    notes = sorted(base_midi + int(root) + i for i in CHORD_QUALITIES[str(quality)])
    for k in range(int(inversion)):
        notes[k] += 12
    return sorted(notes)


class Chord(Family):
    """Triads as in SynTheory (Wei, Freeman, Donahue & Sun, ISMIR 2024): ``root`` (12 pitch
    classes, 0 = C), ``quality`` (major, minor, diminished, augmented, sus2, sus4) and
    ``inversion`` (0-2, the lowest notes raised an octave). Fixed timbre and register: root in
    the octave from C3 (MIDI 48), equal temperament (A4 = 440 Hz), each note with partials
    p = 1..4 of amplitude 1/p, equal note levels, Hann window, T = 0.5 s."""

    name = "chord"
    factors = (
        Factor("root", "pitch class", kind="discrete", values=tuple(range(12)),
               description="root pitch class, 0 = C ... 11 = B"),
        Factor("quality", "", kind="discrete", values=tuple(CHORD_QUALITIES), description="triad quality"),
        Factor("inversion", "", kind="discrete", values=(0, 1, 2), description="inversion"),
    )
    defaults = {"duration_s": 0.5, "peak": 0.5, "n_partials": 4, "base_midi": 48}

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        n_partials = int(self.options["n_partials"])
        midi = np.array([chord_midi(r, q, i, base_midi=int(self.options["base_midi"]))
                         for r, q, i in zip(table["root"], table["quality"], table["inversion"])], dtype=np.float64)
        notes_hz = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
        p = np.arange(1, n_partials + 1, dtype=np.float64)
        freqs = (notes_hz[:, :, None] * p[None, None, :]).reshape(len(midi), -1)
        amps = np.broadcast_to(np.tile(1.0 / p, 3), freqs.shape)
        tones = sum_of_cosines(freqs, amps, sample_rate=sample_rate, n_samples=n_samples, dtype=np.float32)
        return tones * hann(n_samples).astype(np.float32)
