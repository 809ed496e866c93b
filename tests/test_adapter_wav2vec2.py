"""wav2vec2 adapter: a local Hugging Face folder -> embeddings, end to end.

The real checkpoint (facebook/wav2vec2-large-100k-voxpopuli) cannot be obtained here, so tiny
models of the same architecture family (layer-norm feature encoder, stable layer norm, as the
large models) are written with ``save_pretrained`` / ``torch.save`` into a temporary folder and
loaded back through the adapter. The reference is the in-memory model that was saved, run
directly, with hearbaseline's two batch-wide layer norms computed here in numpy.
"""
import json
import shutil

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from embeddings import wav2vec2  # noqa: E402
from embeddings.base import EmbeddingError  # noqa: E402


def tiny_config(**overrides):
    settings = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
        codevector_dim=16, proj_codevector_dim=16, num_codevectors_per_group=8, num_codevector_groups=2,
    )
    settings.update(overrides)
    return transformers.Wav2Vec2Config(**settings)


def write_voxpopuli_like(parent):
    """A Wav2Vec2ForPreTraining checkpoint (as the voxpopuli one) with a preprocessor config, in
    ``parent/wav2vec2-large-100k-voxpopuli``. Returns ``(backbone, folder)``."""
    torch.manual_seed(0)
    pretraining = transformers.Wav2Vec2ForPreTraining(tiny_config()).eval()
    folder = parent / "wav2vec2-large-100k-voxpopuli"
    pretraining.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": 16000,
    }))
    return pretraining.wav2vec2, folder


@pytest.fixture(scope="module")
def voxpopuli_like(tmp_path_factory):
    return write_voxpopuli_like(tmp_path_factory.mktemp("w2v"))


def _audio(n_sounds, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000.0
    tones = rng.uniform(0.1, 0.8, (n_sounds, 1)) * np.sin(2 * np.pi * rng.uniform(100, 3000, (n_sounds, 1)) * t)
    return torch.from_numpy(tones.astype(np.float32))


def _layer_norm_all(x):
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-5)


def _hearbaseline_reference(backbone, audio):
    """speechbrain HuggingFaceWav2Vec2 (hearbaseline.wav2vec2): layer norm over the whole batch
    before and after the model."""
    wav = torch.from_numpy(_layer_norm_all(audio.numpy()).astype(np.float32))
    with torch.no_grad():
        out = backbone(wav).last_hidden_state.numpy()
    return _layer_norm_all(out)


def test_checkpoint_folder_to_embeddings_matches_hearbaseline(voxpopuli_like):
    backbone, folder = voxpopuli_like
    model = wav2vec2.load_model(str(folder))
    assert model.normalize_wav and model.output_norm and model.weights_dir == str(folder)
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 32, 32)
    assert (model.receptive_field, model.stride) == (400, 320)
    for key, value in backbone.state_dict().items():  # every backbone tensor is the file's
        assert torch.equal(model.backbone.state_dict()[key], value), key
    audio = _audio(3, 1024, seed=1)  # GEAR's 64 ms tones
    embeddings, timestamps = wav2vec2.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (3, 2, 32) and embeddings.dtype == torch.float32
    assert timestamps.shape == (3, 2) and timestamps.dtype == torch.float32
    np.testing.assert_allclose(timestamps.numpy(), [[12.5, 32.5]] * 3)
    expected = _hearbaseline_reference(backbone, audio)
    np.testing.assert_allclose(embeddings.numpy(), expected, rtol=0, atol=1e-4)
    scene = wav2vec2.get_scene_embeddings(audio, model)
    np.testing.assert_allclose(scene.numpy(), expected.mean(axis=1), rtol=0, atol=1e-4)
    again = wav2vec2.get_scene_embeddings(audio, model)
    assert torch.equal(again, scene)


def test_chunking_does_not_change_batch_normalised_embeddings(voxpopuli_like):
    _, folder = voxpopuli_like
    audio = _audio(5, 1600, seed=2)
    whole = wav2vec2.get_scene_embeddings(audio, wav2vec2.load_model(str(folder), chunk_sounds=64))
    chunked = wav2vec2.get_scene_embeddings(audio, wav2vec2.load_model(str(folder), chunk_sounds=2))
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)


def test_batch_normalisation_is_batch_dependent_and_sound_mode_is_not(voxpopuli_like):
    backbone, folder = voxpopuli_like
    tone, loud = _audio(1, 1024, seed=3), _audio(1, 1024, seed=4) * 3
    batch = wav2vec2.load_model(str(folder))
    alone = wav2vec2.get_scene_embeddings(tone, batch)
    paired = wav2vec2.get_scene_embeddings(torch.cat([tone, loud]), batch)[:1]
    assert float((alone - paired).abs().max()) > 1e-2
    sound = wav2vec2.load_model(str(folder), normalization="sound")
    alone = wav2vec2.get_scene_embeddings(tone, sound)
    paired = wav2vec2.get_scene_embeddings(torch.cat([tone, loud]), sound)[:1]
    torch.testing.assert_close(paired, alone, rtol=0, atol=1e-5)
    torch.testing.assert_close(alone, torch.from_numpy(_hearbaseline_reference(backbone, tone).mean(1)).float(),
                               rtol=0, atol=1e-4)


def test_old_hub_checkpoints_load_prefix_and_weight_norm_names(tmp_path):
    """2021 Hub files: pytorch_model.bin, keys under 'wav2vec2.', weight-norm as weight_g/weight_v."""
    torch.manual_seed(3)
    reference = transformers.Wav2Vec2Model(tiny_config()).eval()
    state = {}
    for key, value in reference.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        state["wav2vec2." + key] = value
    state["quantizer.codevectors"] = torch.zeros(1, 16, 8)  # pre-training heads are ignored
    torch.save(state, tmp_path / "pytorch_model.bin")
    reference.config.save_pretrained(str(tmp_path))
    model = wav2vec2.load_model(str(tmp_path / "config.json"))  # a file in the folder works too
    audio = _audio(2, 2000, seed=5)
    with torch.no_grad():
        expected = reference(audio).last_hidden_state
    torch.testing.assert_close(model.backbone(audio).last_hidden_state.detach(), expected, rtol=0, atol=1e-6)


def test_do_normalize_comes_from_the_preprocessor_or_the_config(voxpopuli_like, tmp_path):
    _, folder = voxpopuli_like
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False}))
    assert not wav2vec2.load_model(str(copy)).normalize_wav
    (copy / "preprocessor_config.json").unlink()
    assert wav2vec2.load_model(str(copy)).normalize_wav  # feat_extract_norm == "layer"
    assert not wav2vec2.load_model(str(copy), normalize_wav=False).normalize_wav
    group = tmp_path / "group"
    torch.manual_seed(4)
    transformers.Wav2Vec2Model(tiny_config(feat_extract_norm="group", do_stable_layer_norm=False)).save_pretrained(str(group))
    assert not wav2vec2.load_model(str(group)).normalize_wav


def test_hubert_folders_load_and_short_sounds_are_padded(tmp_path):
    torch.manual_seed(5)
    config = transformers.HubertConfig(
        hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
    )
    transformers.HubertModel(config).save_pretrained(str(tmp_path))
    model = wav2vec2.load_model(str(tmp_path), normalization="sound")
    assert model.scene_embedding_size == 24
    short = _audio(2, 300, seed=6)  # shorter than the 400-sample receptive field
    embeddings, timestamps = wav2vec2.get_timestamp_embeddings(short, model)
    assert embeddings.shape == (2, 1, 24)
    np.testing.assert_allclose(timestamps.numpy(), [[12.5], [12.5]])
    padded = torch.nn.functional.pad(short, (50, 50))
    torch.testing.assert_close(embeddings, wav2vec2.get_timestamp_embeddings(padded, model)[0], rtol=0, atol=0)


def test_bad_folders_raise_parameter_errors(voxpopuli_like, tmp_path):
    _, folder = voxpopuli_like
    with pytest.raises(EmbeddingError, match="local Hugging Face model folder"):
        wav2vec2.load_model("")
    with pytest.raises(EmbeddingError, match="config.json is missing"):
        wav2vec2.load_model(str(tmp_path))
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(EmbeddingError, match="no model.safetensors"):
        wav2vec2.load_model(str(tmp_path))
    bigger = tmp_path / "bigger"
    shutil.copytree(folder, bigger)
    tiny_config(num_hidden_layers=3).save_pretrained(str(bigger))
    with pytest.raises(EmbeddingError, match="would\\s+be random"):
        wav2vec2.load_model(str(bigger))
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "bert"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(EmbeddingError, match="expected wav2vec2 or hubert"):
        wav2vec2.load_model(str(other))
    model = wav2vec2.load_model(str(folder))
    with pytest.raises(EmbeddingError, match="2-D"):
        wav2vec2.get_scene_embeddings(torch.zeros(1024), model)
    with pytest.raises(EmbeddingError, match="normalization"):
        wav2vec2.load_model(str(folder), normalization="layer")


def test_registry_entry_finds_the_folder(voxpopuli_like, tmp_path, monkeypatch):
    from embeddings.registry import get_spec

    monkeypatch.delenv("GEAR_MODELS_DIR", raising=False)
    _, folder = voxpopuli_like
    spec = get_spec("wav2vec2")
    assert not spec.can_run(tmp_path)[0]
    shutil.copytree(folder, tmp_path / "wav2vec2" / "wav2vec2-large-100k-voxpopuli")
    ok, where = spec.can_run(tmp_path)
    assert ok and where.endswith("wav2vec2-large-100k-voxpopuli/config.json")
    module, model = spec.load(tmp_path)
    assert module is wav2vec2 and model.weights_dir.endswith("wav2vec2-large-100k-voxpopuli")
