"""Basic Pitch adapter: upstream's run_inference as reference, and the pitch it reads."""
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="pip install onnxruntime")
if __import__("importlib").util.find_spec("basic_pitch") is None:
    pytest.skip("pip install --no-deps basic-pitch==0.4.0", allow_module_level=True)

from embeddings import EmbeddingError  # noqa: E402
from embeddings import basic_pitch as adapter  # noqa: E402

SR = adapter.SAMPLE_RATE


@pytest.fixture(scope="module")
def model():
    return adapter.load_model()


def harmonic(f_hz, n_samples, amplitude=0.3):
    t = np.arange(n_samples) / SR
    return (amplitude * sum(np.sin(2 * np.pi * k * f_hz * t) / k for k in (1, 2, 3))).astype(np.float32)


def test_attributes(model):
    assert model.sample_rate == 22050
    assert model.scene_embedding_size == model.timestamp_embedding_size == 264 + 88 + 88
    assert adapter.load_model(outputs=("note",)).scene_embedding_size == 88


@pytest.mark.parametrize("f_hz, midi", [(220.0, 57), (440.0, 69)])
def test_note_posteriorgram_peaks_at_the_tone_pitch(model, f_hz, midi):
    # independent answer: MIDI = 69 + 12 log2(f / 440); note bin 0 is MIDI 21 (A0, 27.5 Hz)
    emb = adapter.get_scene_embeddings(torch.from_numpy(harmonic(f_hz, SR)[None]), model).numpy()[0]
    contour, note = emb[:264], emb[264:352]
    assert int(np.argmax(note)) == midi - 21
    assert abs(int(np.argmax(contour)) - 3 * (midi - 21)) <= 1


@pytest.mark.slow
def test_equals_upstream_run_inference(model, tmp_path):
    pytest.importorskip("pretty_midi", reason="basic_pitch.inference imports pretty_midi")
    pytest.importorskip("mir_eval", reason="basic_pitch.inference imports mir_eval")
    import soundfile as sf
    from basic_pitch.inference import Model, run_inference

    wav = harmonic(220.0, int(4.3 * SR))
    path = tmp_path / "tone.wav"
    sf.write(str(path), wav, SR, subtype="FLOAT")
    reference = run_inference(str(path), Model(str(adapter._wheel_model())))
    expected = np.concatenate([reference["contour"], reference["note"], reference["onset"]], axis=1)
    emb, ts = adapter.get_timestamp_embeddings(torch.from_numpy(wav[None]), model)
    assert emb.shape == (1,) + expected.shape
    np.testing.assert_allclose(emb[0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(ts[0].numpy(), np.arange(expected.shape[0]) * 256 / SR * 1000, rtol=1e-6)


def test_short_tones_batching_and_timestamps(model):
    n = int(0.064 * SR)
    tones = np.stack([harmonic(f, n) * np.hanning(n).astype(np.float32) for f in (190.0, 260.0, 370.0)])
    emb, ts = adapter.get_timestamp_embeddings(torch.from_numpy(tones), model)
    n_frames = int(np.floor(n * 86 / SR))
    assert emb.shape == (3, n_frames, 440) and emb.dtype == torch.float32 and ts.dtype == torch.float32
    assert np.all(ts.numpy() < n / SR * 1000) and np.all(np.diff(ts.numpy(), axis=1) > 0)
    alone = adapter.get_timestamp_embeddings(torch.from_numpy(tones[1:2]), model)[0]
    np.testing.assert_allclose(alone[0].numpy(), emb[1].numpy(), atol=1e-6)
    # a sound shorter than one hop is centred in MIN_SAMPLES and still gets one frame
    tiny, tiny_ts = adapter.get_timestamp_embeddings(torch.from_numpy(tones[:, :100].copy()), model)
    assert tiny.shape == (3, 1, 440) and 0 <= tiny_ts[0, 0] < 100 / SR * 1000


def test_bad_arguments(model):
    with pytest.raises(EmbeddingError, match="outputs"):
        adapter.load_model(outputs=("pitch",))
    with pytest.raises(EmbeddingError, match="shape"):
        adapter.get_scene_embeddings(torch.zeros((2, 3, 4)), model)
