"""The synthesiser, checked analytically (spectra), for determinism and for bad input."""
import numpy as np
import pytest

import synth
from synth import SynthError, harmonic_tones, paper_grid
from gear.dataset import read_parameters, write_dataset

RATES = (16000, 22050, 32000, 44100, 48000)


def dtft(x, freqs_hz, sample_rate):
    """|X(f)| of a real signal at arbitrary frequencies (brute-force DTFT)."""
    n = np.arange(x.shape[-1])
    basis = np.exp(-2j * np.pi * np.outer(freqs_hz, n) / sample_rate)
    return np.abs(basis @ x.astype(np.float64))


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("alpha,r", [(0.0, 0.0), (1.0, 0.5), (2.0, -0.7), (0.5, 1.0)])
def test_partial_amplitudes_follow_eq1(sample_rate, alpha, r):
    f1_hz = 15 * synth.HZ_PER_BIN  # 234.375 Hz
    tone = harmonic_tones(f1_hz, alpha, r, sample_rate=sample_rate, duration_s=0.064, peak=None)[0]
    n = tone.size
    p = np.arange(1, 33)
    kept = p * f1_hz < sample_rate / 2
    measured = dtft(tone, p[kept] * f1_hz, sample_rate) / (np.hanning(n + 1)[:-1].sum() / 2)
    expected = np.abs((1 + (-1.0) ** p[kept] * r) / p[kept] ** alpha)
    # Hann side lobes of the other partials leak at most ~1e-3 of the largest amplitude.
    np.testing.assert_allclose(measured, expected, atol=2e-3 * expected.max(), rtol=1e-3)


def test_dft_bins_are_exact_at_reference_rate():
    # f1 on an integer bin of the 1024-sample window: each partial occupies exactly bins
    # p*k-1, p*k, p*k+1 with weights -1/4, 1/2, -1/4 of a_p * N / 2.
    k = 13
    tone = harmonic_tones(k * synth.HZ_PER_BIN, 1.0, 0.3, sample_rate=16000, n_samples=1024, peak=None)[0]
    spectrum = np.fft.rfft(tone.astype(np.float64))
    expected = np.zeros(513, dtype=complex)
    for p in range(1, 33):
        if p * k >= 512:
            break
        a_p = (1 + (-1) ** p * 0.3) / p
        expected[p * k] += a_p * 1024 / 4
        expected[p * k - 1] -= a_p * 1024 / 8
        expected[p * k + 1] -= a_p * 1024 / 8
    np.testing.assert_allclose(spectrum, expected, atol=1e-3)


@pytest.mark.parametrize("sample_rate", RATES)
def test_f1_is_at_the_right_frequency_at_every_rate(sample_rate):
    f1_hz = 20 * synth.HZ_PER_BIN  # 312.5 Hz
    tone = harmonic_tones(f1_hz, 2.0, 0.0, sample_rate=sample_rate, duration_s=0.064)[0]
    n_fft = 1 << 18
    spectrum = np.abs(np.fft.rfft(tone, n_fft))
    peak_hz = np.argmax(spectrum) * sample_rate / n_fft
    assert abs(peak_hz - f1_hz) < 2 * sample_rate / n_fft
    assert tone.shape == (int(round(0.064 * sample_rate)),)


@pytest.mark.parametrize("sample_rate", [16000, 22050])
def test_no_energy_above_nyquist_no_aliasing(sample_rate):
    # f1 = 375 Hz: at 16 kHz partials 22..32 would exceed Nyquist and alias.
    f1_hz = 24 * synth.HZ_PER_BIN
    tone = harmonic_tones(f1_hz, 0.0, 0.0, sample_rate=sample_rate, duration_s=0.064, peak=None)[0]
    p = np.arange(1, 33)
    dropped = p[p * f1_hz >= sample_rate / 2]
    assert dropped.size > 0
    # Brute force: the sum over kept partials only, one cosine at a time.
    t = np.arange(tone.size) / sample_rate
    window = np.hanning(tone.size + 1)[:-1]
    reference = sum(np.cos(2 * np.pi * k * f1_hz * t) for k in p if k * f1_hz < sample_rate / 2) * window
    np.testing.assert_allclose(tone, reference, atol=1e-4)
    # An aliased partial p would appear at sample_rate - p*f1; nothing is there beyond the
    # leakage of the kept partials (same in the reference).
    aliases = sample_rate - dropped * f1_hz
    np.testing.assert_allclose(dtft(tone, aliases, sample_rate), dtft(reference, aliases, sample_rate), atol=1e-3)
    # Parseval: the energy is that of the kept partials only.
    n_kept = int(np.sum(p * f1_hz < sample_rate / 2))
    window = np.hanning(tone.size + 1)[:-1]
    expected_energy = n_kept * np.sum(window**2) / 2
    assert np.sum(tone.astype(np.float64) ** 2) == pytest.approx(expected_energy, rel=2e-3)


def test_batch_shape_dtype_and_peak():
    tones = harmonic_tones([200.0, 300.0, 250.0], [0.0, 1.0, 2.0], 0.5, sample_rate=16000, n_samples=1024)
    assert tones.shape == (3, 1024) and tones.dtype == np.float32
    np.testing.assert_allclose(np.abs(tones).max(axis=1), 0.5, rtol=1e-6)


def test_both_synthesis_paths_agree():
    from synth.tones import _synthesise

    rng = np.random.default_rng(1)
    f1 = np.repeat([200.0, 250.0], 10)
    alpha, r = rng.uniform(0, 2, 20), rng.uniform(-1, 1, 20)
    grouped = _synthesise(f1, alpha, r, 16000, 1024, 32)  # few distinct pitches
    single = np.concatenate([_synthesise(f1[i : i + 1], alpha[i : i + 1], r[i : i + 1], 16000, 1024, 32) for i in range(20)])
    np.testing.assert_allclose(grouped, single, atol=1e-9)


def test_forced_synthesis_paths_agree():
    from synth.tones import _synthesise

    rng = np.random.default_rng(2)
    f1 = rng.uniform(150, 400, 6)
    alpha, r = rng.uniform(0, 2, 6), rng.uniform(-1, 1, 6)
    grouped = _synthesise(f1, alpha, r, 22050, 1411, 32, grouped=True)
    chebyshev = _synthesise(f1, alpha, r, 22050, 1411, 32, grouped=False)
    np.testing.assert_allclose(grouped, chebyshev, atol=1e-9)
    np.testing.assert_array_equal(_synthesise(f1, alpha, r, 22050, 1411, 32), chebyshev)  # 6 pitches: Chebyshev


def test_paper_grid_table_and_determinism():
    grid = paper_grid()
    assert grid.n_sounds == 2500
    table = grid.table(16000)
    assert set(table) >= {"index", "f1_bins", "f1_hz", "alpha", "r", "sample_rate", "n_samples"}
    np.testing.assert_array_equal(table["index"], np.arange(2500))
    assert np.unique(grid.alpha).size == 50 and grid.alpha.min() == 0 and grid.alpha.max() == 2
    assert np.unique(grid.r).size == 50 and grid.r.min() == 0 and grid.r.max() == 1
    assert set(np.unique(grid.f1_bins)) == set(range(12, 25))
    np.testing.assert_allclose(table["f1_hz"], grid.f1_bins * 15.625)
    # alpha-major order, grid indices consistent with the values
    np.testing.assert_array_equal(grid.alpha[grid.grid_index[:, 1] * 0 + np.arange(2500)], grid.alpha)
    assert np.all(grid.alpha[:50] == 0) and np.all(np.diff(grid.r[:50]) > 0)
    # same seed -> bit-identical audio; another seed -> other pitches
    again = paper_grid()
    assert again.config_hash() == grid.config_hash()
    assert grid.render(16000).tobytes() == again.render(16000).tobytes()
    other = paper_grid(seed=1)
    assert other.config_hash() != grid.config_hash()
    assert not np.array_equal(other.f1_bins, grid.f1_bins)


def test_same_tones_in_hz_at_every_rate():
    grid = paper_grid(n_alpha=3, n_r=3)
    for rate in RATES:
        np.testing.assert_allclose(grid.f1_hz(rate), grid.f1_bins * 15.625)
        assert grid.n_samples(rate) == round(0.064 * rate)


def test_render_indices_matches_full_render():
    grid = paper_grid(n_alpha=4, n_r=5)
    full = grid.render(22050)
    np.testing.assert_array_equal(grid.render(22050, indices=[3, 7]), full[[3, 7]])


def test_compat_preset_warns_and_reproduces_code_behaviour():
    with pytest.warns(UserWarning, match="departs from the paper"):
        grid = synth.compat_grid()
    assert grid.alpha.min() == 1 and grid.alpha.max() < 3
    assert grid.r.min() == 1 and grid.r.max() < 2
    assert set(np.unique(grid.f1_bins)) == set(range(12, 24))
    # fixed 1024 samples at every rate: pitch in Hz depends on the rate
    assert grid.n_samples(44100) == 1024
    np.testing.assert_allclose(grid.f1_hz(44100), grid.f1_bins * 44100 / 1024)
    audio = grid.render(16000)
    # MaxAbs over the set cancels the window: every non-zero column peaks at exactly 1
    col_max = np.abs(audio).max(axis=0)
    np.testing.assert_allclose(col_max[1:], 1.0, rtol=1e-6)


def test_factorial_grid_has_every_step():
    grid = synth.factorial_grid(f1_bins=[12, 13], n_alpha=3, n_r=4)
    assert grid.n_sounds == 24 and np.all(grid.grid_index >= 0)
    assert len({tuple(row) for row in grid.grid_index}) == 24


def test_write_dataset_and_read_back(tmp_path):
    import soundfile as sf

    grid = paper_grid(n_alpha=2, n_r=3)
    csv_path = write_dataset(grid, tmp_path, sample_rate=22050)
    table = read_parameters(csv_path)
    assert list(table["index"]) == list(range(6))
    for i, name in enumerate(table["file"]):
        audio, rate = sf.read(tmp_path / name, dtype="float32")
        assert rate == 22050 and table["sample_rate"][i] == 22050
        np.testing.assert_array_equal(audio, grid.render(22050)[i])
    np.testing.assert_allclose(table["f1_hz"], grid.f1_hz())
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(f1_hz=0.0), "f1_hz must be > 0"),
        (dict(f1_hz=-5.0), "f1_hz must be > 0"),
        (dict(f1_hz=9000.0), "Nyquist"),
        (dict(f1_hz=np.nan), "f1_hz must be finite"),
        (dict(alpha=-0.1), "alpha must be >= 0"),
        (dict(r=1.5), r"r must lie in \[-1, 1\]"),
        (dict(r=-1.01), r"r must lie in \[-1, 1\]"),
        (dict(n_samples=8), "tone too short: n_samples=8"),
        (dict(n_samples=40, f1_hz=200.0), "less than one period"),
        (dict(n_samples=1024.5), "n_samples must be an integer"),
        (dict(n_partials=0), "n_partials must be >= 1"),
        (dict(sample_rate=0), "sample_rate must be >= 1"),
        (dict(peak=2.0), "peak must be in"),
        (dict(duration_s=-1.0, n_samples=None), "duration_s must be a positive"),
        (dict(duration_s=0.1), "exactly one of n_samples or duration_s"),
        (dict(f1_hz=5000.0, r=1.0), "silent"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    args = dict(f1_hz=200.0, alpha=1.0, r=0.5, sample_rate=16000, n_samples=1024, n_partials=32, peak=0.5)
    args.update(kwargs)
    f1, alpha, r = args.pop("f1_hz"), args.pop("alpha"), args.pop("r")
    with pytest.raises(SynthError, match=match):
        harmonic_tones(f1, alpha, r, **args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_alpha=0), "n_alpha must be >= 1"),
        (dict(n_r=0), "n_r must be >= 1"),
        (dict(alpha_range=(-1, 2)), "alpha_range must be >= 0"),
        (dict(r_range=(0, 2)), r"r_range must lie within \[-1, 1\]"),
        (dict(alpha_range=(2, 1)), "low <= high"),
        (dict(f1_bins_range=(0, 5)), "f1_bins_range must be > 0"),
        (dict(duration_s=0.0005), "tone too short"),
        (dict(seed=-1), "seed must be >= 0"),
    ],
)
def test_bad_grid_settings_are_named(kwargs, match):
    with pytest.raises(SynthError, match=match):
        paper_grid(**kwargs)


def test_unknown_preset():
    with pytest.raises(SynthError, match="unknown preset 'papr'"):
        synth.make_grid("papr")
