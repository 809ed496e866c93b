"""aiSFX adapter against aisfx's own code path (its Essentia spectrogram, its blocking, its
CrossNet and model_get_embedding), with the weights loaded by our safe loader."""
import numpy as np
import pytest
import torch

pytest.importorskip("aisfx", reason="pip install --no-deps aisfx==0.1.2")

from embeddings import EmbeddingError  # noqa: E402
from embeddings import aisfx  # noqa: E402

SR = aisfx.SAMPLE_RATE


@pytest.fixture(scope="module")
def model():
    return aisfx.load_model()


def test_checkpoint_needs_the_numpy_allowlist_and_loads_weights_only():
    path = aisfx._wheel_checkpoint()
    # the premise: torch's weights-only unpickler refuses the file as it is (the reason
    # aisfx's own loader fails under torch >= 2.6)...
    with pytest.raises(Exception, match="numpy"):
        torch.load(str(path), map_location="cpu", weights_only=True)
    # ...and loads it with exactly the numpy-scalar globals allowed
    state_dict, ds_dict = aisfx.load_checkpoint(path)
    assert all(isinstance(v, torch.Tensor) for v in state_dict.values())
    assert state_dict["embedding_net.conv_block1.conv1.weight"].shape == (64, 1, 3, 3)
    assert all(type(i) is int and type(n) is int for i, n in ds_dict.values())
    assert sorted(i for i, _ in ds_dict.values()) == list(range(len(ds_dict)))


def test_attributes(model):
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (44100, 512, 512)


def test_mel_filterbank_rows_and_centres():
    weights = aisfx.mel_filterbank()
    assert weights.shape == (96, 1025)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    # band centres follow the HTK mel scale: mel(f) = 2595 log10(1 + f / 700)
    freqs = np.arange(1025) * SR / 2048
    centroid = weights @ freqs
    top = 2595 * np.log10(1 + 22050 / 700)
    centres_hz = 700 * (10 ** (np.linspace(0, top, 98)[1:-1] / 2595) - 1)
    np.testing.assert_allclose(centroid[20:], centres_hz[20:], rtol=0.02)


def tone_with_noise(duration_s, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 330 * t) * np.exp(-t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_network_half_equals_aisfx_model_get_embedding(model):
    """Our folded, channels-last network and blocking vs aisfx.inference on the same spectrogram."""
    import aisfx.inference as upstream

    audio = tone_with_noise(5.0)
    spec = model.spectrogram(audio[None])[0].numpy().astype(np.float64)
    state_dict, ds_dict = aisfx.load_checkpoint()
    reference_net = upstream.load_bestModel(state_dict, ds_dict, "cpu")
    expected = upstream.model_get_embedding(spec, 0.5, True, reference_net, "cpu").numpy()
    emb, ts = aisfx.get_timestamp_embeddings(torch.from_numpy(audio[None]), model)
    assert emb.shape == (1, 3, 512) == (1,) + expected.shape and emb.dtype == torch.float32
    np.testing.assert_allclose(emb[0].numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ts[0].numpy(), (np.arange(3) * 50 + 49.5) * 1024 / SR * 1000, rtol=1e-6)


@pytest.mark.slow
def test_full_path_equals_aisfx_essentia_pipeline(model, tmp_path):
    """From a wav file through aisfx's original (Essentia) spectrogram to its embeddings."""
    pytest.importorskip("essentia", reason="the original aisfx front end needs essentia")
    import soundfile as sf
    import aisfx.inference as upstream
    from aisfx.preprocessing import spectrogram_normalize
    from aisfx.spectrogram.spectrogram_essentia import compute_spectrogram

    audio = tone_with_noise(3.3, seed=1)
    path = tmp_path / "tone.wav"
    sf.write(str(path), audio, SR, subtype="FLOAT")
    spec = compute_spectrogram(filename=str(path), sr=upstream.SAMPLE_RATE, block_size=upstream.SPEC_BLOCK_LENGTH,
                               hop_size=upstream.SPEC_HOP_LENGTH, n_mels=upstream.MEL_BINS,
                               f_min=upstream.F_MIN, f_max=upstream.F_MAX)
    spec = spectrogram_normalize(spec)
    ours = model.spectrogram(audio[None])[0].numpy()
    assert ours.shape == spec.shape
    np.testing.assert_allclose(ours, spec, atol=1e-5)
    state_dict, ds_dict = aisfx.load_checkpoint()
    expected = upstream.model_get_embedding(spec, 0.5, True, upstream.load_bestModel(state_dict, ds_dict, "cpu"), "cpu")
    emb = aisfx.get_scene_embeddings(torch.from_numpy(audio[None]), model)
    np.testing.assert_allclose(emb.numpy(), expected.numpy().mean(axis=0, keepdims=True), rtol=1e-4, atol=1e-4)


def test_unfolded_equals_folded(model):
    audio = torch.from_numpy(np.stack([tone_with_noise(2.5), tone_with_noise(2.5, seed=3)]))
    plain = aisfx.load_model(fold_batchnorm=False)
    np.testing.assert_allclose(aisfx.get_scene_embeddings(audio, plain).numpy(),
                               aisfx.get_scene_embeddings(audio, model).numpy(), rtol=1e-4, atol=1e-4)


def test_short_tones_padding_batching(model):
    n = int(0.064 * SR)
    t = np.arange(n) / SR
    tones = np.stack([0.5 * np.sin(2 * np.pi * f * t) * np.hanning(n) for f in (187.0, 250.0, 375.0)]).astype(np.float32)
    emb, ts = aisfx.get_timestamp_embeddings(torch.from_numpy(tones), model)
    assert emb.shape == (3, 1, 512) and torch.isfinite(emb).all()
    np.testing.assert_allclose(ts.numpy(), n / 2 / SR * 1000)
    # centred zero padding = the tone placed by hand in the middle of one 100-frame block
    block = np.zeros((1, aisfx.WINDOW_SAMPLES), np.float32)
    start = (aisfx.WINDOW_SAMPLES - n) // 2
    block[0, start : start + n] = tones[1]
    by_hand = aisfx.get_scene_embeddings(torch.from_numpy(block), model)
    np.testing.assert_allclose(emb[1].numpy(), by_hand.numpy(), rtol=1e-5, atol=1e-5)
    alone = aisfx.get_scene_embeddings(torch.from_numpy(tones[2:]), model)
    np.testing.assert_allclose(emb[2].numpy(), alone.numpy(), rtol=1e-5, atol=1e-5)
    # different pitches give different embeddings
    assert not np.allclose(emb[0].numpy(), emb[2].numpy(), rtol=1e-2)


def test_bad_input(model, tmp_path):
    with pytest.raises(EmbeddingError, match="shape"):
        aisfx.get_scene_embeddings(torch.zeros(100), model)
    with pytest.raises(EmbeddingError, match="pad_mode"):
        aisfx.load_model(pad_mode="edge")
    with pytest.raises(EmbeddingError, match="not a file"):
        aisfx.load_model(str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"a": torch.zeros(1)}, str(bad))
    with pytest.raises(EmbeddingError, match="not an aisfx checkpoint"):
        aisfx.load_checkpoint(bad)


def test_registry_entry():
    from embeddings.registry import get_spec

    spec = get_spec("aisfx")
    assert spec.default
    module, loaded = spec.load()
    assert module is aisfx and loaded.checkpoint == aisfx._wheel_checkpoint()
