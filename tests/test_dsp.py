"""embeddings.dsp: analytic answers (sines, silence, white noise) and per-sound librosa references."""
import librosa
import numpy as np
import pytest
import torch

from embeddings import EmbeddingError, dsp
from synth import harmonic_tones

SR = 16000
BIN_HZ = SR / 512  # 31.25 Hz, the FFT resolution
NAMES = dsp.DSPRepresentation("descriptors").frame_feature_names


def _sines(f_hz, n_samples=8000, phase=0.3):
    t = np.arange(n_samples) / SR
    return np.stack([0.5 * np.sin(2 * np.pi * f * t + phase) for f in f_hz]).astype(np.float32)


def _interior(timestamps_ms, n_samples):
    """Frames lying wholly inside the sound (no zero padding)."""
    centres = timestamps_ms * SR / 1000.0
    return (centres - 256 >= 0) & (centres + 256 <= n_samples)


def _descriptor_frames(audio):
    emb, ts = dsp.get_timestamp_embeddings(audio, dsp.load_model(representation="descriptors"))
    keep = _interior(ts[0].numpy(), audio.shape[-1])
    return emb[:, keep, :].numpy().astype(np.float64)


def _column(name):
    return NAMES.index(name)


FREQS = np.array([437.5, 1000.0, 1234.0, 2000.0, 3100.0])


def test_centroid_rolloff_bandwidth_of_a_sine():
    frames = _descriptor_frames(_sines(FREQS))
    centroid = frames[..., _column("spectral_centroid_hz")].mean(axis=1)
    rolloff = frames[..., _column("spectral_rolloff_hz")]
    bandwidth = frames[..., _column("spectral_bandwidth_hz")]
    # the centroid of a pure sine is its frequency, within one FFT bin
    np.testing.assert_allclose(centroid, FREQS, atol=BIN_HZ)
    # 85 % of the energy of a Hann-windowed sine lies within two bins of its frequency
    assert np.all(np.abs(rolloff - FREQS[:, None]) <= 2 * BIN_HZ)
    # spread of a Hann main lobe: well under 3 bins (white noise: thousands of Hz)
    assert bandwidth.max() < 3 * BIN_HZ


def test_zero_crossing_rate_of_a_sine_is_2f_over_sr():
    frames = _descriptor_frames(_sines(FREQS))
    zcr = frames[..., _column("zero_crossing_rate")]
    # +- one crossing in a 512-sample frame
    assert np.all(np.abs(zcr - 2 * FREQS[:, None] / SR) <= 1.5 / 512)


def test_flatness_white_noise_and_sine():
    # The power spectrum of Gaussian white noise is exponentially distributed in each bin;
    # for an exponential variable E[log X] = log E[X] - Euler's gamma, so the flatness
    # (geometric / arithmetic mean) tends to exp(-gamma) = 0.5615.
    noise = np.random.default_rng(0).standard_normal((4, 32000)).astype(np.float32) * 0.1
    flatness_noise = _descriptor_frames(noise)[..., _column("spectral_flatness")]
    assert abs(flatness_noise.mean() - np.exp(-np.euler_gamma)) < 0.02
    flatness_sine = _descriptor_frames(_sines(FREQS))[..., _column("spectral_flatness")]
    assert flatness_sine.max() < 1e-2


def test_contrast_of_a_sine_exceeds_white_noise():
    # Contrast band 3 spans 800-1600 Hz: a 1 234 Hz sine has a peak there far above the valley.
    sine = _descriptor_frames(_sines([1234.0]))[..., _column("spectral_contrast_band3_db")]
    noise = np.random.default_rng(1).standard_normal((1, 8000)).astype(np.float32) * 0.1
    noise_contrast = _descriptor_frames(noise)[..., _column("spectral_contrast_band3_db")]
    assert sine.min() > noise_contrast.mean() + 20.0


def test_logmel_peak_band_of_a_sine():
    model = dsp.load_model(representation="logmel")
    scene = dsp.get_scene_embeddings(_sines(FREQS), model).numpy()
    centres = librosa.mel_frequencies(n_mels=model.n_mels + 2, fmin=0.0, fmax=8000.0)[1:-1]
    peak_band = scene[:, : model.n_mels].argmax(axis=1)
    spacing = np.diff(librosa.mel_frequencies(n_mels=model.n_mels + 2, fmin=0.0, fmax=8000.0))
    assert np.all(np.abs(centres[peak_band] - FREQS) <= spacing[peak_band + 1])


def test_silence_is_constant():
    silence = np.zeros((3, 1024), dtype=np.float32)
    logmel = dsp.get_scene_embeddings(silence, dsp.load_model(representation="logmel")).numpy()
    np.testing.assert_array_equal(logmel[:, :64], -100.0)  # floor of 10 log10(max(S, 1e-10))
    np.testing.assert_array_equal(logmel[:, 64:], 0.0)
    # MFCC = orthonormal DCT-II of a constant -100 dB vector of 64 bands: c0 = -100 sqrt(64), rest 0
    mfcc = dsp.get_scene_embeddings(silence, dsp.load_model(representation="mfcc")).numpy()
    np.testing.assert_allclose(mfcc[:, 0], -800.0, rtol=1e-6)
    np.testing.assert_allclose(mfcc[:, 1:], 0.0, atol=1e-3)
    descriptors = dsp.get_scene_embeddings(silence, dsp.load_model(representation="descriptors")).numpy()
    assert np.all(np.isfinite(descriptors))


def _reference_frames(y, representation):
    """Per-frame features of one sound from librosa's own y= entry points."""
    common = dict(sr=SR, n_fft=512, hop_length=128, center=True, pad_mode="constant")
    if representation in ("logmel", "mfcc"):
        mel = librosa.feature.melspectrogram(y=y, n_mels=64, fmin=0.0, fmax=8000.0, power=2.0, **common)
        db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        return db if representation == "logmel" else librosa.feature.mfcc(S=db, n_mfcc=20)
    return np.concatenate(
        [
            librosa.feature.spectral_centroid(y=y, **common),
            librosa.feature.spectral_bandwidth(y=y, **common),
            librosa.feature.spectral_contrast(y=y, fmin=200.0, n_bands=5, **common),
            librosa.feature.spectral_flatness(y=y, n_fft=512, hop_length=128, center=True, pad_mode="constant"),
            librosa.feature.spectral_rolloff(y=y, roll_percent=0.85, **common),
            librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=128, center=True),
        ]
    )


@pytest.mark.parametrize("representation", dsp.REPRESENTATIONS)
def test_batched_equals_per_sound_librosa(representation):
    rng = np.random.default_rng(3)
    n = 6
    audio = harmonic_tones(rng.uniform(187.5, 375.0, n), rng.uniform(0, 2, n), rng.uniform(0, 1, n),
                           sample_rate=SR, n_samples=1024)
    model = dsp.load_model(representation=representation)
    scene = dsp.get_scene_embeddings(torch.from_numpy(audio), model).numpy()
    frames, timestamps = dsp.get_timestamp_embeddings(audio, model)
    for i in range(n):
        ref = _reference_frames(audio[i].astype(np.float64), representation).T  # (n_frames, n_features)
        scale = np.abs(ref).max(axis=0) + 1e-3
        np.testing.assert_allclose(frames[i].numpy() / scale, ref / scale, atol=1e-5)
        ref_scene = np.concatenate([ref.mean(axis=0), ref.std(axis=0)])
        np.testing.assert_allclose(scene[i] / np.tile(scale, 2), ref_scene / np.tile(scale, 2), atol=1e-5)
    assert scene.dtype == np.float32 and scene.shape == (n, model.scene_embedding_size)
    assert frames.dtype == torch.float32 and frames.shape == (n, 9, model.timestamp_embedding_size)
    np.testing.assert_allclose(timestamps.numpy(), np.tile(8.0 * np.arange(9), (n, 1)))


@pytest.mark.parametrize(
    "representation, scene_dim, frame_dim", [("logmel", 128, 64), ("mfcc", 40, 20), ("descriptors", 22, 11)]
)
def test_model_attributes(representation, scene_dim, frame_dim):
    model = dsp.load_model("", representation=representation)
    assert model.sample_rate == 16000
    assert (model.scene_embedding_size, model.timestamp_embedding_size) == (scene_dim, frame_dim)
    assert len(model.feature_names) == scene_dim and len(model.frame_feature_names) == frame_dim
    emb, ts = dsp.get_timestamp_embeddings(np.zeros((2, 1000), np.float32), model)
    assert emb.shape == (2, 1 + 1000 // 128, frame_dim) and ts.shape == (2, 1 + 1000 // 128)


def test_empty_batch():
    model = dsp.load_model(representation="mfcc")
    assert dsp.get_scene_embeddings(np.zeros((0, 1024), np.float32), model).shape == (0, 40)


def test_bad_arguments():
    with pytest.raises(EmbeddingError, match="representation='chroma'"):
        dsp.load_model(representation="chroma")
    with pytest.raises(EmbeddingError, match="have no weights"):
        dsp.load_model("/some/file.pt")
    model = dsp.load_model()
    with pytest.raises(EmbeddingError, match="must be 2-D"):
        dsp.get_scene_embeddings(np.zeros(1024, np.float32), model)
    with pytest.raises(EmbeddingError, match="NaN or inf"):
        dsp.get_scene_embeddings(np.array([[0.0, np.inf]]), model)
    with pytest.raises(EmbeddingError, match="0 samples"):
        dsp.get_scene_embeddings(np.zeros((1, 0)), model)
    with pytest.raises(EmbeddingError, match="floating-point samples"):
        dsp.get_scene_embeddings(np.array([["a", "b"]]), model)
    with pytest.raises(EmbeddingError, match="DSPRepresentation"):
        dsp.get_scene_embeddings(np.zeros((1, 1024)), "logmel")
