"""Resemblyzer adapter against upstream's VoiceEncoder.embed_utterance (VAD bypassed)."""
import numpy as np
import pytest
import torch

pytest.importorskip("resemblyzer", reason="pip install --no-deps resemblyzer==0.1.4 webrtcvad-wheels")

from embeddings import EmbeddingError  # noqa: E402
from embeddings import resemblyzer as adapter  # noqa: E402

SR = adapter.SAMPLE_RATE


@pytest.fixture(scope="module")
def model():
    return adapter.load_model()


def harmonic(f_hz, n_samples, amplitude=0.3):
    t = np.arange(n_samples) / SR
    return (amplitude * (np.sin(2 * np.pi * f_hz * t) + 0.3 * np.sin(2 * np.pi * 3 * f_hz * t))).astype(np.float32)


def test_attributes(model):
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 256, 256)


@pytest.mark.slow
def test_equals_upstream_embed_utterance(model):
    wav = harmonic(220.0, int(3.7 * SR))
    expected, partials, wav_slices = model.encoder.embed_utterance(wav, return_partials=True)
    scene = adapter.get_scene_embeddings(torch.from_numpy(wav[None]), model)
    emb, ts = adapter.get_timestamp_embeddings(torch.from_numpy(wav[None]), model)
    np.testing.assert_allclose(scene[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(emb[0].numpy(), partials, atol=1e-6)
    centres = [(s.start + s.stop) / 2 / SR * 1000 for s in wav_slices]
    np.testing.assert_allclose(ts[0].numpy(), centres)
    assert np.all(ts.numpy() < len(wav) / SR * 1000)
    np.testing.assert_allclose(torch.linalg.norm(scene, dim=1).numpy(), 1.0, rtol=1e-6)


def test_upstream_vad_trims_a_tone_to_nothing_but_we_do_not(model):
    from resemblyzer import preprocess_wav

    wav = harmonic(220.0, 2 * SR, amplitude=0.5)
    assert len(preprocess_wav(wav)) == 0  # the trap: upstream's preprocessing leaves no audio
    scene = adapter.get_scene_embeddings(torch.from_numpy(wav[None]), model)
    assert torch.isfinite(scene).all()


def test_short_tones_padding_and_batching(model):
    n = 1024
    tones = np.stack([harmonic(f, n) * np.hanning(n).astype(np.float32) for f in (190.0, 260.0, 370.0)])
    emb, ts = adapter.get_timestamp_embeddings(torch.from_numpy(tones), model)
    assert emb.shape == (3, 1, 256) and emb.dtype == torch.float32
    np.testing.assert_allclose(ts.numpy(), n / 2 / SR * 1000)
    padded = np.zeros(adapter.WINDOW_SAMPLES, np.float32)
    start = (adapter.WINDOW_SAMPLES - n) // 2
    padded[start : start + n] = tones[0]
    expected = model.encoder.embed_utterance(padded)
    np.testing.assert_allclose(emb[0, 0].numpy(), expected, atol=1e-6)
    alone = adapter.get_scene_embeddings(torch.from_numpy(tones[2:]), model)
    np.testing.assert_allclose(alone[0].numpy(), emb[2, 0].numpy(), atol=1e-6)


def test_bad_input(model, tmp_path):
    with pytest.raises(EmbeddingError, match="floating-point"):
        adapter.get_scene_embeddings(torch.zeros((1, 100), dtype=torch.int32), model)
    with pytest.raises(EmbeddingError, match="not a file"):
        adapter.load_model(str(tmp_path / "nope.pt"))
    with pytest.raises(EmbeddingError, match="batch_size"):
        adapter.load_model(batch_size=0)
