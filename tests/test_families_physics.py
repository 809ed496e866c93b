"""Each built-in family's property, measured in the rendered audio (not read back from the
synthesiser): spectra, Hilbert envelopes, instantaneous frequencies, decay slopes."""
import numpy as np
import pytest
from scipy.signal import find_peaks, hilbert

import synth

SR = 16000


def render(name, rate=SR, **columns):
    table = {k: np.atleast_1d(np.asarray(v)) for k, v in columns.items()}
    return synth.family(name).render(table, sample_rate=rate).astype(np.float64)


def spectrum_peaks(x, rate, *, floor_db=-40.0, n_fft=1 << 19):
    """Frequencies of the spectral peaks within ``floor_db`` of the largest (zero-padded FFT,
    parabolic interpolation)."""
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size), n_fft))
    db = 20 * np.log10(mag / mag.max() + 1e-12)
    peaks, _ = find_peaks(db, height=floor_db, prominence=10)
    a, b, c = db[peaks - 1], db[peaks], db[peaks + 1]
    return (peaks + 0.5 * (a - c) / (a - 2 * b + c)) * rate / n_fft


def instantaneous_frequency(z, rate):
    """IF (Hz) at sample midpoints of an analytic signal; squaring first makes it blind to the
    sign flips of an amplitude modulator."""
    z2 = z * z
    return np.angle(z2[1:] * np.conj(z2[:-1])) * rate / (4 * np.pi)


@pytest.mark.parametrize("carrier,am,gamma", [(500.0, 8.0, 1.0), (700.0, 12.0, -2.0), (300.0, 16.0, 4.0),
                                              (1000.0, 10.0, -0.5)])
def test_chirplet_am_rate_and_fm_slope(carrier, am, gamma):
    x = render("chirplet", carrier_hz=carrier, am_hz=am, fm_oct_per_s=gamma)[0]
    z = hilbert(x)
    envelope = np.abs(z)
    # AM rate: the strongest local maximum of the envelope's spectrum above 1 Hz (the Gaussian
    # window's own line at 0 Hz decreases monotonically, so it has none there).
    n_fft = 1 << 20
    spec = np.abs(np.fft.rfft(envelope, n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    peaks, _ = find_peaks(spec)
    peaks = peaks[(freqs[peaks] > 1) & (freqs[peaks] < 200)]
    am_measured = freqs[peaks[np.argmax(spec[peaks])]]
    assert abs(am_measured / am - 1) < 0.05
    # FM: slope of log2(instantaneous frequency) over time where the tone is loud.
    inst = instantaneous_frequency(z, SR)
    t = (np.arange(x.size - 1) + 0.5) / SR
    loud = (envelope[1:] > 0.3 * envelope.max()) & (envelope[:-1] > 0.3 * envelope.max())
    slope = np.polyfit(t[loud], np.log2(inst[loud]), 1)[0]
    assert abs(slope / gamma - 1) < 0.05
    centre = np.argmin(np.abs(t - x.size / SR / 2))
    assert inst[loud].min() < carrier * 1.05 and inst[loud].max() > carrier * 0.95


def rise_and_decay(x, f1, rate):
    """10-90 % rise time and -60 dB decay time (extrapolated from -5..-25 dB) of the Hilbert
    envelope averaged over one period of f1."""
    period = int(round(rate / f1))
    env = np.convolve(np.abs(hilbert(x)), np.ones(period) / period, mode="same")
    env /= env.max()
    t = np.arange(x.size) / rate

    def first_crossing(level):
        k = np.flatnonzero(env >= level)[0]
        return t[k - 1] + (level - env[k - 1]) / (env[k] - env[k - 1]) / rate

    peak = np.argmax(env)
    tail = (np.arange(x.size) > peak) & (env < 10 ** (-5 / 20)) & (env > 10 ** (-25 / 20)) & (t < t[-1] - 0.012)
    slope = np.polyfit(t[tail], 20 * np.log10(env[tail]), 1)[0]
    return first_crossing(0.9) - first_crossing(0.1), -60 / slope


@pytest.mark.parametrize("f1,attack_ms,decay_ms,rate", [(1000.0, 10.0, 300.0, SR), (1000.0, 50.0, 200.0, SR),
                                                       (880.0, 200.0, 1000.0, SR), (3000.0, 2.0, 100.0, 48000)])
def test_envelope_rise_time_and_decay(f1, attack_ms, decay_ms, rate):
    x = render("envelope", rate, f1_hz=f1, attack_ms=attack_ms, decay_ms=decay_ms)[0]
    rise, t60 = rise_and_decay(x, f1, rate)
    # a linear attack of A ms rises from 10 % to 90 % in 0.8 A
    assert abs(rise / (0.8 * attack_ms / 1e3) - 1) < 0.10
    assert abs(t60 / (decay_ms / 1e3) - 1) < 0.10


@pytest.mark.parametrize("f1,b", [(100.0, 1e-3), (55.0, 1e-2), (220.0, 1e-4), (440.0, 1e-5)])
def test_inharmonic_partials_follow_the_stiff_string(f1, b):
    peaks = spectrum_peaks(render("inharmonic", f1_hz=f1, inharmonicity_b=b)[0], SR)
    p = np.arange(1, 17)
    expected = p * f1 * np.sqrt(1 + b * p**2)
    expected = expected[expected < SR / 2]
    assert peaks.size == expected.size
    np.testing.assert_allclose(peaks, expected, rtol=0.005)
    if b >= 1e-3:  # a harmonic series would fail the same check
        assert np.max(np.abs(peaks / (p[: peaks.size] * f1) - 1)) > 0.05


@pytest.mark.parametrize("hnr_db", [-10.0, 0.0, 10.0, 20.0, 30.0])
def test_noise_hnr(hnr_db):
    f1 = 200.0  # on a DFT bin of the 0.25 s tone: each partial in exactly 3 bins (Hann)
    x = render("noise", f1_hz=f1, hnr_db=hnr_db)[0]
    power = np.abs(np.fft.rfft(x)) ** 2
    k = int(round(f1 * x.size / SR))
    harmonic = np.zeros(power.size, dtype=bool)
    for centre in range(k, power.size - 1, k):
        harmonic[centre - 1 : centre + 2] = True
    noise_density = power[~harmonic].mean()
    e_harmonic = power[harmonic].sum() - noise_density * harmonic.sum()
    e_noise = power.sum() - e_harmonic
    assert abs(10 * np.log10(e_harmonic / e_noise) - hnr_db) < 1.0


@pytest.mark.parametrize("colour,slope_db", [("white", 0.0), ("pink", -3.01), ("brown", -6.02)])
def test_noise_colour_spectral_slope(colour, slope_db):
    """PSD ~ f^-beta: the mean power density per octave band falls by 3.01 beta dB per octave;
    measured on 16 noise realisations (hnr_db = -60: the tone is 60 dB below the noise) over the
    octave bands from 125 Hz to 4 kHz, within 0.4 dB per octave."""
    n = 16
    table = {"f1_hz": np.full(n, 200.0), "hnr_db": np.full(n, -60.0)}
    x = synth.family("noise", colour=colour).render(table, sample_rate=SR).astype(np.float64)
    power = (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(x.shape[1], 1 / SR)
    lows = 125.0 * 2.0 ** np.arange(6)
    density = [power[(freqs >= f) & (freqs < 2 * f)].mean() for f in lows]
    slope = np.polyfit(np.log2(lows), 10 * np.log10(density), 1)[0]
    assert abs(slope - slope_db) < 0.4, slope


@pytest.mark.parametrize("colour", ["pink", "brown"])
@pytest.mark.parametrize("hnr_db", [0.0, 20.0])
def test_coloured_noise_hnr(colour, hnr_db):
    """The HNR holds for coloured noise: the noise under each partial's 3 bins is estimated from
    the bins beside it (the density now varies with frequency)."""
    f1 = 200.0
    x = synth.family("noise", colour=colour).render({"f1_hz": [f1], "hnr_db": [hnr_db]}, sample_rate=SR)[0]
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    k = int(round(f1 * x.size / SR))
    e_harmonic = 0.0
    for centre in range(k, power.size - 5, k):
        local = np.r_[power[centre - 5 : centre - 1], power[centre + 2 : centre + 6]].mean()
        e_harmonic += power[centre - 1 : centre + 2].sum() - 3 * local
    e_noise = power.sum() - e_harmonic
    assert abs(10 * np.log10(e_harmonic / e_noise) - hnr_db) < 1.0


def test_noise_colour_is_checked():
    with pytest.raises(synth.SynthError, match="colour='blue'.*white, pink, brown"):
        synth.family("noise", colour="blue")


@pytest.mark.parametrize("f1,rate_hz,cents", [(220.0, 5.0, 50.0), (330.0, 6.5, 20.0), (150.0, 4.0, 100.0)])
def test_vibrato_rate_and_depth(f1, rate_hz, cents):
    from scipy.optimize import curve_fit

    x = render("vibrato", f1_hz=f1, vibrato_hz=rate_hz, vibrato_cents=cents)[0]
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(x.size, 1 / SR) > 1.5 * f1] = 0  # keep the first partial only
    z = hilbert(np.fft.irfft(spectrum, x.size))
    inst = instantaneous_frequency(z, SR)
    t = (np.arange(x.size - 1) + 0.5) / SR
    keep = (t > 0.08) & (t < t[-1] - 0.08)
    c = 1200 * np.log2(inst[keep] / np.exp(np.mean(np.log(inst[keep]))))
    guess_rate = np.fft.rfftfreq(1 << 16, 1 / SR)[np.argmax(np.abs(np.fft.rfft(c - c.mean(), 1 << 16)))]
    model = lambda t, a, nu, phi, off: a * np.sin(2 * np.pi * nu * t + phi) + off  # noqa: E731
    best = max((curve_fit(model, t[keep], c, p0=[np.ptp(c) / 2, guess_rate, phi, 0])[0] for phi in (0, 1.5, 3, 4.5)),
               key=lambda p: -np.sum((model(t[keep], *p) - c) ** 2))
    assert abs(best[1] / rate_hz - 1) < 0.05
    assert abs(abs(best[0]) / cents - 1) < 0.05


INTERVALS = {"major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6), "augmented": (0, 4, 8),
             "sus2": (0, 2, 7), "sus4": (0, 5, 7)}


@pytest.mark.parametrize("root,quality,inversion", [(0, "major", 0), (9, "minor", 1), (5, "sus4", 2),
                                                    (2, "diminished", 0), (11, "augmented", 1), (7, "sus2", 2)])
def test_chord_partials_are_the_chord_notes(root, quality, inversion):
    notes = sorted(48 + root + i for i in INTERVALS[quality])  # C3 = MIDI 48
    notes = sorted([n + 12 for n in notes[:inversion]] + notes[inversion:])
    notes_hz = 440 * 2 ** ((np.array(notes) - 69) / 12)
    peaks = spectrum_peaks(render("chord", root=root, quality=quality, inversion=inversion)[0], SR, floor_db=-30)
    partials = (notes_hz[:, None] * np.arange(1, 5)[None, :]).ravel()
    # every peak is a partial of a chord note, every note's fundamental is there, the lowest
    # peak is the bass note of the inversion
    assert np.all(np.min(np.abs(peaks[:, None] / partials[None, :] - 1), axis=1) < 0.003)
    assert np.all(np.min(np.abs(notes_hz[:, None] / peaks[None, :] - 1), axis=1) < 0.003)
    assert abs(peaks.min() / notes_hz[0] - 1) < 0.003
    pitch_classes = {int(round(12 * np.log2(f / 440) + 69)) % 12 for f in peaks[peaks < 1.5 * notes_hz.max()]}
    assert pitch_classes == {n % 12 for n in notes}


NEUTRAL = dict(f1_hz=250.0, alpha=1.0, r=0.0, gain_db=0.0, lowpass_hz=48000.0, rt60_s=0.01, bit_depth=24)


def nuisance(**changes):
    columns = {**NEUTRAL, **changes}
    n = max(np.size(v) for v in columns.values())
    table = {k: np.broadcast_to(np.asarray(v), (n,)).copy() for k, v in columns.items()}
    return synth.family("nuisance").render(table, sample_rate=SR).astype(np.float64)


def test_nuisance_gain_survives_normalisation():
    gains = np.array([-24.0, -12.0, -6.0, 0.0, 6.0])
    x = nuisance(gain_db=gains, rt60_s=0.2)
    np.testing.assert_allclose(20 * np.log10(np.abs(x).max(axis=1) / 0.5), gains, atol=0.01)
    rms = np.sqrt(np.mean(x**2, axis=1))
    np.testing.assert_allclose(20 * np.log10(rms / rms[3]), gains, atol=0.01)


@pytest.mark.parametrize("cutoff", [1000.0, 2500.0])
def test_nuisance_lowpass_minus_3_db_point(cutoff):
    f1 = 125.0
    x = nuisance(f1_hz=f1, lowpass_hz=[cutoff, 48000.0])
    n = np.arange(x.shape[1])
    freqs = f1 * np.arange(1, 64)
    basis = np.exp(-2j * np.pi * np.outer(freqs, n) / SR)
    ratio = np.abs(basis @ x[0]) / np.abs(basis @ x[1])
    gain_db = 20 * np.log10(ratio / ratio[0])
    k = np.flatnonzero(gain_db < -3)[0]  # first partial beyond -3 dB: interpolate in log f
    log_f = np.interp(-3, [gain_db[k], gain_db[k - 1]], np.log([freqs[k], freqs[k - 1]]))
    assert abs(np.exp(log_f) / cutoff - 1) < 0.05


@pytest.mark.parametrize("rt60", [0.05, 0.3, 0.6])
def test_nuisance_reverb_decay_time(rt60):
    # Decay of the tail's energy after the 64 ms tone, averaged over 16 noise realisations
    # (seeds) and 5 ms frames: -60 dB per rt60.
    table = {k: np.array([v]) for k, v in {**NEUTRAL, "rt60_s": rt60}.items()}
    x = np.concatenate([synth.family("nuisance").render(table, sample_rate=SR, seed=s) for s in range(16)])
    frame = int(0.005 * SR)
    energy = (x[:, : x.shape[1] // frame * frame].astype(np.float64) ** 2).reshape(16, -1, frame).mean(axis=(0, 2))
    t = (np.arange(energy.size) + 0.5) * frame / SR
    level = 10 * np.log10(energy + 1e-30)
    tail = t > 0.075
    tail &= level > level[tail].max() - 40
    slope = np.polyfit(t[tail], level[tail], 1)[0]
    assert abs(-60 / slope / rt60 - 1) < 0.10


@pytest.mark.parametrize("bits", [4, 8, 12])
def test_nuisance_quantisation_step(bits):
    x = nuisance(bit_depth=bits, rt60_s=0.3)[0]
    levels = np.unique(x)
    step = np.diff(levels).min()
    assert step == 2.0 ** (1 - bits)
    np.testing.assert_array_equal(levels / step, np.round(levels / step))
