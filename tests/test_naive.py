"""embeddings.naive against the reference package hearbaseline.naive (HEAR 2021)."""
import pickle
import types

import librosa
import numpy as np
import pytest
import torch

import hearbaseline.naive as hb_naive
from embeddings import EmbeddingError, naive
from synth import harmonic_tones

SR = 44100


def _mel_keywords_only(sr, **kwargs):
    return librosa.filters.mel(sr=sr, **kwargs)


@pytest.fixture
def reference(monkeypatch):
    """hearbaseline.naive, made to run on librosa >= 0.10.

    hearbaseline.naive calls ``librosa.filters.mel(sr, n_fft=..., n_mels=...)`` with ``sr``
    positional, which librosa >= 0.10 rejects (its arguments became keyword-only). We
    replace only the ``librosa`` name inside hearbaseline.naive, for this test only, with an
    object whose ``filters.mel`` forwards ``sr`` as a keyword to the real librosa; the rest of
    the reference (framing, FFT, projection, averaging) runs unchanged.
    """
    shim = types.SimpleNamespace(filters=types.SimpleNamespace(mel=_mel_keywords_only))
    monkeypatch.setattr(hb_naive, "librosa", shim)
    return hb_naive


def _tones(n_sounds, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    tones = harmonic_tones(
        rng.uniform(517.0, 1033.0, n_sounds), rng.uniform(0, 2, n_sounds), rng.uniform(0, 1, n_sounds),
        sample_rate=SR, n_samples=max(n_samples, 4096),
    )
    return torch.from_numpy(np.ascontiguousarray(tones[:, :n_samples]))


def assert_same_embedding(ours, ref):
    # Embeddings are log-mel values (down to log(1e-4) = -9.2) times a 256 x 4096 projection
    # with entries in [0, 1/16): |values| reach ~100, where one float32 ulp is 7.6e-6, so an
    # absolute 1e-5 would sit at float32 resolution. We require agreement to 1e-5 *relative*
    # to the largest reference value (and elementwise rtol 1e-5); in practice both sides run
    # the same float32 operations and agree bit for bit.
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    scale = float(ref.abs().max())
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("n_samples", [2822, 1, 4096, 9000])
def test_scene_embeddings_equal_hearbaseline(reference, n_samples):
    audio = _tones(12, n_samples)
    ours = naive.get_scene_embeddings(audio, naive.load_model())
    ref = reference.get_scene_embeddings(audio, reference.load_model())
    assert ours.shape == (12, 4096)
    assert_same_embedding(ours, ref)


@pytest.mark.parametrize("n_samples", [2822, 9000])
def test_timestamp_embeddings_equal_hearbaseline(reference, n_samples):
    audio = _tones(5, n_samples, seed=1)
    ours, ours_t = naive.get_timestamp_embeddings(audio, naive.load_model())
    ref, ref_t = reference.get_timestamp_embeddings(audio, reference.load_model())
    assert_same_embedding(ours, ref)
    assert ours_t.dtype == torch.float32
    torch.testing.assert_close(ours_t, ref_t, rtol=0, atol=1e-4)
    # frame centres every 50 ms, starting on the first sample
    np.testing.assert_allclose(ours_t[0].numpy(), 50.0 * np.arange(ours_t.shape[1]), atol=1e-4)


def test_framing_matches_hear_rule():
    # 2 822 samples + 4 096 of padding: frames start at 0, 2 205 (end 6 301 <= 6 918), then stop.
    frames, timestamps = naive.frame_audio(
        torch.arange(2822.0)[None] + 1, frame_size=4096, hop_size_ms=50.0, sample_rate=SR
    )
    assert frames.shape == (1, 2, 4096)
    assert frames[0, 0, 2048].item() == 1.0  # first sample of the sound is the centre of frame 0
    assert frames[0, 1, 2048].item() == 2206.0  # frame 1 is centred on sample 2 205 (50 ms)
    assert frames[0, 0, :2048].abs().sum().item() == 0.0
    torch.testing.assert_close(timestamps, torch.tensor([[0.0, 50.0]]))


def test_projection_is_seed0_rand_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    model = naive.load_model()
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # what hearbaseline.naive does, on the global generator
        expected = torch.rand(256, 4096) / 16.0
    torch.testing.assert_close(model.projection.detach(), expected, rtol=0, atol=0)
    assert model.sample_rate == 44100
    assert model.scene_embedding_size == model.timestamp_embedding_size == 4096


def test_numpy_and_tensor_inputs_agree():
    audio = _tones(3, 2822)
    model = naive.load_model()
    torch.testing.assert_close(
        naive.get_scene_embeddings(audio.numpy().astype(np.float64), model),
        naive.get_scene_embeddings(audio, model),
    )


def test_state_dict_file_round_trip(reference, tmp_path):
    # A hearbaseline model with a different projection, saved as a state dict, must give the
    # same embeddings in both implementations.
    ref_model = reference.load_model()
    with torch.no_grad():
        ref_model.projection.copy_(torch.linspace(-1, 1, 256 * 4096).reshape(256, 4096))
    path = tmp_path / "naive.pt"
    torch.save(ref_model.state_dict(), path)
    ours = naive.load_model(str(path))
    audio = _tones(4, 2822, seed=2)
    assert_same_embedding(naive.get_scene_embeddings(audio, ours), reference.get_scene_embeddings(audio, ref_model))
    assert not torch.allclose(ours.projection, naive.load_model().projection)


class _Trap:
    """Unpickling this would call _spring: torch.load(weights_only=True) must refuse it."""

    sprung = False

    def __reduce__(self):
        return (_spring, ())


def _spring():
    _Trap.sprung = True
    return {}


def test_weights_file_with_objects_is_refused_without_running_them(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"projection": _Trap()}, f, protocol=2)
    with pytest.raises(EmbeddingError, match="weights_only"):
        naive.load_model(str(path))
    assert not _Trap.sprung


def test_bad_weights_files(tmp_path):
    with pytest.raises(EmbeddingError, match="is not a file"):
        naive.load_model(str(tmp_path / "missing.pt"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"projection": torch.zeros(3, 3)}, wrong)
    with pytest.raises(EmbeddingError, match="does not match the naive baseline"):
        naive.load_model(str(wrong))
    not_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], not_dict)
    with pytest.raises(EmbeddingError, match="not a state dict"):
        naive.load_model(str(not_dict))


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(2822, dtype=np.float32), "must be 2-D"),
        (np.zeros((2, 0), dtype=np.float32), "0 samples"),
        (np.full((1, 10), np.nan, dtype=np.float32), "NaN or inf"),
        (np.zeros((1, 10), dtype=np.complex64), "floating-point samples"),
        (np.zeros((1, 10), dtype=np.int16), "integer PCM"),
        (torch.zeros((1, 10), dtype=torch.int32), "integer PCM"),
    ],
)
def test_bad_audio(audio, message):
    with pytest.raises(EmbeddingError, match=message):
        naive.get_scene_embeddings(audio, naive.load_model())


def test_bad_model_and_hop():
    with pytest.raises(EmbeddingError, match="RandomProjectionMelEmbedding"):
        naive.get_scene_embeddings(np.zeros((1, 100), np.float32), object())
    with pytest.raises(EmbeddingError, match="hop_size_ms"):
        naive.get_timestamp_embeddings(np.zeros((1, 100), np.float32), naive.load_model(), hop_size_ms=0)
