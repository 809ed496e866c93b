"""embeddings.crepe against torchcrepe's own embed(), and a pitch check that proves real weights."""
import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from embeddings import EmbeddingError, crepe
from synth import harmonic_tones

SR = 16000
TORCHAUDIO_INSTALLED = importlib.util.find_spec("torchaudio") is not None


@pytest.fixture(scope="module")
def torchcrepe():
    return crepe.import_torchcrepe()


@pytest.fixture(scope="module", params=["tiny", pytest.param("full", marks=pytest.mark.slow)])
def model(request):
    return crepe.load_model(capacity=request.param)


def _tones(n, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(harmonic_tones(rng.uniform(187.5, 375.0, n), rng.uniform(0, 2, n), rng.uniform(0, 1, n),
                                           sample_rate=SR, n_samples=n_samples))


def _torchcrepe_frames(torchcrepe, audio, model, **kwargs):
    """torchcrepe.embed, one sound at a time, flattened to (n_sounds, n_frames, dim)."""
    with torch.inference_mode():
        return torch.stack([
            torchcrepe.embed(audio[i:i + 1], SR, model=model.capacity, **kwargs).reshape(-1, model.scene_embedding_size)
            for i in range(audio.shape[0])
        ])


def assert_close_to_torchcrepe(ours, ref):
    # Both run the same float32 network; batching differently lets oneDNN choose other
    # blockings, so results differ by float32 rounding (~1e-6 of the largest activation).
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_scene_of_1024_samples_is_the_single_unpadded_frame(torchcrepe, model):
    audio = _tones(6, 1024)
    ours = crepe.get_scene_embeddings(audio, model)
    ref = _torchcrepe_frames(torchcrepe, audio, model, hop_length=160, pad=False)
    assert ref.shape[1] == 1  # pad=False on 1 024 samples: exactly one frame
    assert ours.shape == (6, model.scene_embedding_size)
    assert_close_to_torchcrepe(ours, ref[:, 0])


def test_timestamps_and_long_scene_match_padded_framing(torchcrepe, model):
    audio = _tones(3, 1500, seed=1)
    ours, timestamps = crepe.get_timestamp_embeddings(audio, model)
    ref = _torchcrepe_frames(torchcrepe, audio, model, hop_length=160, pad=True)
    assert ours.shape == (3, 1 + 1500 // 160, model.timestamp_embedding_size)
    assert_close_to_torchcrepe(ours, ref)
    assert timestamps.dtype == torch.float32
    torch.testing.assert_close(timestamps, (10.0 * torch.arange(10.0)).expand(3, -1))
    assert_close_to_torchcrepe(crepe.get_scene_embeddings(audio, model), ref.mean(dim=1))


def test_short_sound_is_centred_in_one_frame(torchcrepe):
    model = crepe.load_model(capacity="tiny")
    audio = _tones(2, 700, seed=2)
    padded = torch.nn.functional.pad(audio, ((1024 - 700) // 2, 1024 - 700 - (1024 - 700) // 2))
    ref = _torchcrepe_frames(torchcrepe, padded, model, hop_length=160, pad=False)[:, 0]
    assert_close_to_torchcrepe(crepe.get_scene_embeddings(audio.numpy(), model), ref)


def test_frame_normalisation_as_torchcrepe():
    frames = torch.randn(5, 1024) * 3 + 2
    out = crepe.normalize_frames(frames)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=1), torch.ones(5), atol=1e-5, rtol=0)
    assert torch.all(crepe.normalize_frames(torch.zeros(2, 1024)) == 0)  # silence stays finite


def _cents(f_hz, reference_hz):
    return 1200.0 * np.log2(np.asarray(f_hz) / reference_hz)


@pytest.mark.parametrize("f1_hz", [220.0, 330.0])
def test_pitch_head_finds_f1_with_the_loaded_weights(torchcrepe, model, f1_hz):
    # Our model object's own weights, through CREPE's classifier head and torchcrepe's decoder:
    # only trained weights put the activation peak at the tone's fundamental.
    tone = torch.from_numpy(harmonic_tones(f1_hz, 1.0, 0.0, sample_rate=SR, n_samples=1024))
    with torch.inference_mode():
        activations = model.crepe(crepe.normalize_frames(tone))  # (1, 360)
    f0 = torchcrepe.postprocess(activations[:, :, None].clone(), fmin=50.0, fmax=2006.0,
                                decoder=torchcrepe.decode.weighted_argmax)
    assert abs(float(_cents(float(f0), f1_hz))) < 50.0


@pytest.mark.slow
def test_torchcrepe_import_leaves_no_fake_torchaudio():
    # A fresh interpreter: the stand-in must exist only during `import torchcrepe`.
    script = textwrap.dedent(
        """
        import importlib.util, sys
        from embeddings.crepe import import_torchcrepe
        tc = import_torchcrepe()
        if importlib.util.find_spec("torchaudio") is None:
            assert "torchaudio" not in sys.modules, "stand-in left in sys.modules"
            try:
                tc.load.audio("x.wav")
            except ModuleNotFoundError as exc:
                assert "torchaudio is not installed" in str(exc), exc
            else:
                raise AssertionError("torchcrepe.load.audio did not raise")
        assert tc.Crepe is not None and callable(tc.embed)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.skipif(TORCHAUDIO_INSTALLED, reason="checks the stand-in, used only without torchaudio")
def test_stand_in_absent_in_this_process(torchcrepe):
    assert "torchaudio" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="no build matches torch"):
        torchcrepe.load.audio("tone.wav")


def test_model_attributes(model):
    expected = {"full": 2048, "tiny": 256}[model.capacity]
    assert model.sample_rate == 16000
    assert model.scene_embedding_size == model.timestamp_embedding_size == expected
    assert not model.training


def test_bad_arguments(tmp_path):
    with pytest.raises(EmbeddingError, match="capacity='large'"):
        crepe.load_model(capacity="large")
    with pytest.raises(EmbeddingError, match="does not hold CREPE 'full' weights"):
        crepe.load_model(str(crepe.weights_path("tiny")), capacity="full")
    with pytest.raises(EmbeddingError, match="not found"):
        crepe.load_model(str(tmp_path / "missing.pth"))
    with pytest.raises(EmbeddingError, match="chunk_frames"):
        crepe.load_model(capacity="tiny", chunk_frames=0)
    tiny = crepe.load_model(capacity="tiny")
    with pytest.raises(EmbeddingError, match="hop_length"):
        crepe.get_timestamp_embeddings(np.zeros((1, 1024), np.float32), tiny, hop_length=0)
    with pytest.raises(EmbeddingError, match="must be 2-D"):
        crepe.get_scene_embeddings(np.zeros(1024, np.float32), tiny)
    with pytest.raises(EmbeddingError, match="CrepeEmbedding"):
        crepe.get_scene_embeddings(np.zeros((1, 1024), np.float32), object())
