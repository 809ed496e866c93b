"""Tests of embeddings.timefeatures: reference preprocessing, STFT and scattering averages,
study-wide normalisation, row matching.

Independent answers: librosa's STFT and resampling-free identities, kymatio called directly,
analytic tone positions, and the reference STFT features of the 17 timbre studies.
"""
import numpy as np
import pytest
from scipy import signal

from conftest import SHARED
from embeddings import EmbeddingError
from embeddings import timefeatures as tf

TIMBRE = SHARED / "timbre"
needs_studies = pytest.mark.skipif(not (TIMBRE / "features" / "stft").is_dir(),
                                   reason=f"timbre study data not found under {TIMBRE}")


def tone(f_hz, n, fs=16000, amp=0.5):
    return amp * np.sin(2 * np.pi * f_hz * np.arange(n) / fs)


# ------------------------------------------------------------------ preprocessing

def test_preprocess_follows_reference_recipe():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(44100) * 0.3 - 0.2
    y = tf.preprocess(x, 44100)
    padded = np.concatenate([x, np.zeros(16000)])
    want = signal.resample(padded / 1.01 / padded.max(), int(len(padded) / 44100 * 16000))
    assert y.shape == (int(60100 / 44100 * 16000),)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_preprocess_uses_signed_maximum_and_pads_in_seconds():
    x = np.array([0.1, -0.9, 0.5, 0.0] * 1000)
    y = tf.preprocess(x, 16000)               # no resampling at 16 kHz
    n_pad = round(16000 * 16000 / 44100)      # 0.363 s of silence
    assert y.shape == (4000 + n_pad,)
    assert y.max() == pytest.approx(1 / 1.01)  # max(x) = 0.5, not max|x| = 0.9
    assert np.all(y[4000:] == 0)


@pytest.mark.parametrize("audio, sr, match", [
    (np.zeros(0), 16000, "empty"),
    (np.array([0.1, np.inf]), 16000, "NaN"),
    (np.zeros((10, 2)), 16000, "mono"),
    (np.zeros(100), 16000, "no positive"),
    (-np.ones(100), 16000, "no positive"),
    (np.ones(100), 0, "sample_rate"),
    (np.ones(100), 44100.0, "sample_rate"),
])
def test_preprocess_validation(audio, sr, match):
    with pytest.raises(EmbeddingError, match=match):
        tf.preprocess(audio, sr)


# ------------------------------------------------------------------ STFT

@pytest.mark.filterwarnings("ignore:n_fft=1024 is too large")
def test_stft_average_equals_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    for n in (700, 5000, 16384):
        x = rng.standard_normal(n)
        want = np.abs(librosa.stft(x, n_fft=1024, hop_length=256)).mean(axis=1)
        np.testing.assert_allclose(tf.stft_average(x), want, rtol=1e-9, atol=1e-9)


def test_stft_average_peaks_at_tone_bin():
    f0 = 40 * 16000 / 1024                      # exactly bin 40
    s = tf.stft_average(tone(f0, 16000))
    assert s.shape == (513,) and np.argmax(s) == 40
    # a full-band periodic Hann window: the tone leaks into bins 39 and 41 at half amplitude
    assert s[39] / s[40] == pytest.approx(0.5, rel=0.05)


def test_stft_validation():
    with pytest.raises(EmbeddingError, match="16000"):
        tf.stft_average(np.ones(100), sample_rate=44100)
    with pytest.raises(EmbeddingError, match="even"):
        tf.stft_average(np.ones(100), n_fft=1023)


# ------------------------------------------------------------------ scattering

def test_scattering_average_equals_direct_kymatio():
    pytest.importorskip("kymatio")
    from kymatio.scattering1d.frontend.numpy_frontend import ScatteringNumPy1D

    rng = np.random.default_rng(2)
    x = rng.standard_normal(2 ** 12)
    got = tf.scattering_average(x, J=6, Q=(8, 1))
    direct = ScatteringNumPy1D(J=6, shape=2 ** 12, Q=(8, 1))(x).mean(axis=1)
    assert got.shape == direct.shape == (126,)
    np.testing.assert_allclose(got, direct, rtol=1e-10, atol=1e-12)


def test_scattering_first_order_peaks_at_tone_frequency():
    pytest.importorskip("kymatio")
    f0 = 1500.0
    got = tf.scattering_average(tone(f0, 8000), J=6, Q=(8, 1))
    op = tf._scattering_operator(6, 2 ** 13, (8, 1), 2)
    meta = op.meta()
    first = np.flatnonzero(meta["order"] == 1)
    xi = meta["xi"][first, 0] * 16000          # centre frequencies in Hz
    peak = xi[np.argmax(got[first])]
    assert abs(np.log2(peak / f0)) < 1 / 8      # within one wavelet spacing (Q = 8)


def test_scattering_default_size_and_validation():
    pytest.importorskip("kymatio")
    assert tf.scattering_average(tone(440, 3000)).shape == (801,)
    with pytest.raises(EmbeddingError, match="max_order"):
        tf.scattering_average(np.ones(100), max_order=3)
    with pytest.raises(EmbeddingError, match="Q="):
        tf.scattering_average(np.ones(100), Q=(0, 1))


# ------------------------------------------------------------------ dispatch and studies

@pytest.mark.parametrize("rep, size", [("auditory_spectrum", 128), ("stmf", 30976), ("stft", 513)])
def test_time_averaged_sizes(rep, size):
    x = tone(523.25, 44100 // 4, fs=44100)
    out = tf.time_averaged(x, 44100, rep)
    assert out.shape == (size,) and out.dtype == np.float64 and np.all(np.isfinite(out))


def test_time_averaged_unknown_representation():
    with pytest.raises(EmbeddingError, match="unknown"):
        tf.time_averaged(np.ones(100), 16000, "mfcc")


def test_study_features_normalisation_and_files(tmp_path):
    sf = pytest.importorskip("soundfile")
    sounds = [tone(f, 11025, fs=22050, amp=a) for f, a in ((300, 0.2), (600, 0.9), (1200, 0.5))]
    paths = []
    for i, s in enumerate(sounds):
        p = tmp_path / f"s{i}.wav"
        sf.write(p, s, 22050, subtype="DOUBLE")
        paths.append(p)
    from_arrays = tf.study_features(sounds, "stft", sample_rate=22050)
    from_files = tf.study_features(paths, "stft")
    assert from_arrays.shape == (3, 513)
    assert np.mean(np.abs(from_arrays).max(axis=1)) == pytest.approx(1.0)
    np.testing.assert_allclose(from_files, from_arrays, rtol=1e-6, atol=1e-9)
    raw = np.array([tf.time_averaged(s, 22050, "stft") for s in sounds])
    np.testing.assert_allclose(from_arrays, raw / np.mean(raw.max(axis=1)), rtol=1e-7, atol=1e-10)


@pytest.mark.slow
def test_study_features_parallel_equals_serial():
    sounds = [tone(f, 8000) for f in (250, 500, 1000, 2000)]
    serial = tf.study_features(sounds, "auditory_spectrum", sample_rate=16000)
    parallel = tf.study_features(sounds, "auditory_spectrum", sample_rate=16000, n_jobs=2)
    np.testing.assert_allclose(parallel, serial, rtol=1e-12)


def test_study_features_errors(tmp_path):
    with pytest.raises(EmbeddingError, match="sample_rate"):
        tf.study_features([np.ones(100)], "stft")
    with pytest.raises(EmbeddingError, match="empty"):
        tf.study_features([], "stft")
    with pytest.raises(EmbeddingError, match="does not exist"):
        tf.study_features([tmp_path / "nope.aiff"], "stft")
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(EmbeddingError, match="cannot read"):
        tf.study_features([tmp_path / "junk.wav"], "stft")
    with pytest.raises(EmbeddingError, match="list"):
        tf.study_features(np.ones(100), "stft", sample_rate=16000)
    with pytest.raises(EmbeddingError, match="unknown"):
        tf.study_features([np.ones(100)], "cqt", sample_rate=16000)
    with pytest.raises(EmbeddingError, match="zero"):
        tf.study_scale(np.zeros((2, 3)))


def test_reference_row_order_recovers_a_permutation():
    rng = np.random.default_rng(3)
    feats = np.abs(rng.standard_normal((12, 50)))
    perm = rng.permutation(12)
    shuffled = feats[perm] * 1.7 + 0.01 * rng.standard_normal((12, 50))
    order, corr = tf.reference_row_order(feats, shuffled)
    np.testing.assert_array_equal(perm[order], np.arange(12))
    assert corr.min() > 0.99
    with pytest.raises(EmbeddingError, match="same shape"):
        tf.reference_row_order(feats, feats[:3])


def test_resample_like_librosa_equals_librosa_load(tmp_path):
    librosa = pytest.importorskip("librosa")
    sf = pytest.importorskip("soundfile")
    rng = np.random.default_rng(5)
    x = np.round(rng.uniform(-0.5, 0.5, 22050) * 32767) / 32768      # 16-bit PCM values
    path = tmp_path / "a.aiff"
    sf.write(path, x, 44100, subtype="PCM_16")
    want, _ = librosa.load(path, sr=16000)
    got = tf.resample_like_librosa(*tf.read_audio(path))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)


@needs_studies
def test_stft_matches_reference_features_on_all_studies():
    """Our STFT features equal the reference (Pascal & Lagrange) to float32 precision, once
    its rows, which are in another order than sorted file names, are matched."""
    studies = sorted(p.name for p in (TIMBRE / "sounds").iterdir() if p.is_dir())
    assert len(studies) == 17
    for study in studies:
        files = sorted(p for p in (TIMBRE / "sounds" / study).iterdir() if p.suffix.lower() == ".aiff")
        ours = tf.study_features(files, "stft")
        ref = np.load(TIMBRE / "features" / "stft" / f"{study}.npz")["features"]
        order, corr = tf.reference_row_order(ours, ref)
        assert corr.min() > 0.99999, (study, corr.min())
        assert len(set(order)) == len(order)
        np.testing.assert_allclose(ours, ref[order], rtol=0, atol=1e-4 * ref.max())
