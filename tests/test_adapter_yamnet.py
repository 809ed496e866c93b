"""YAMNet adapter: real TFLite weights from shared/models/yamnet/, and a TF-Hub SavedModel built here.

Reference answers come from shared/models/yamnet/README.md (checks made on these files when they
were converted) and from numpy re-computations of the framing/padding rules.
"""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from embeddings import EmbeddingError
from embeddings import yamnet

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEAR_SHARED_DIR", REPO.parent / "shared"))
YAMNET_DIR = SHARED / "models" / "yamnet"
OFFICIAL = YAMNET_DIR / "yamnet_official_dynamic_int8.tflite"
MOBILE = YAMNET_DIR / "yamnet_mobile_int8_with_metadata.tflite"

pytest.importorskip("ai_edge_litert", reason="the TFLite path needs ai-edge-litert")
if not OFFICIAL.is_file():
    pytest.skip(f"YAMNet TFLite files not found in {YAMNET_DIR}", allow_module_level=True)

SR = yamnet.SAMPLE_RATE


def sine(f_hz, n_samples=yamnet.PATCH_SAMPLES, amplitude=0.5):
    t = np.arange(n_samples) / SR
    return (amplitude * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


def batch(*sounds):
    return torch.from_numpy(np.stack(sounds))


def cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def official():
    return yamnet.load_model(str(OFFICIAL))


@pytest.fixture(scope="module")
def mobile():
    return yamnet.load_model(str(MOBILE))


def top_classes(model, audio, k=3):
    scores = yamnet.get_class_scores(audio, model).numpy()
    return [[model.class_names[i] for i in np.argsort(-row)[:k]] for row in scores]


def test_models_dir_lookup_and_attributes(monkeypatch):
    monkeypatch.setenv("GEAR_MODELS_DIR", str(SHARED / "models"))
    model = yamnet.load_model()
    assert model.model_file == OFFICIAL
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 1024, 1024)
    assert all(isinstance(v, int) for v in (model.sample_rate, model.scene_embedding_size))
    assert yamnet.load_model(variant="mobile").model_file == MOBILE
    monkeypatch.delenv("GEAR_MODELS_DIR")
    with pytest.raises(EmbeddingError, match="GEAR_MODELS_DIR"):
        yamnet.load_model()


def test_embedding_tensor_is_found_by_name(official, mobile):
    assert yamnet.OFFICIAL_EMBEDDING_TENSOR in official.embedding_tensor_name.split(";")
    assert official._dequantise is None
    assert mobile.embedding_tensor_name.endswith("reduce_mean")
    scale, zero_point = mobile._dequantise
    assert scale > 0


def test_sine_and_silence_classes_match_readme(official, mobile):
    audio = batch(sine(440.0), np.zeros(yamnet.PATCH_SAMPLES, np.float32))
    tone_official, silence_official = top_classes(official, audio)
    tone_mobile, silence_mobile = top_classes(mobile, audio)
    # README: 440 Hz -> "Dial tone/Telephone" (official), "Sine wave" (mobile); zeros -> "Silence"
    assert tone_official[0] in {"Telephone", "Dial tone"} and "Dial tone" in tone_official
    assert tone_mobile[0] == "Sine wave"
    assert silence_official[0] == "Silence" and silence_mobile[0] == "Silence"


def test_white_noise_class(official, mobile):
    noise = np.random.default_rng(0).normal(0.0, 0.03, yamnet.PATCH_SAMPLES).astype(np.float32)
    for model in (official, mobile):
        assert "White noise" in top_classes(model, batch(noise))[0]


@pytest.mark.parametrize("amplitude", [0.1, 0.5])
def test_pitch_similarity_matches_readme(official, amplitude):
    # README: cos(220, 233) ~ 0.97 and cos(220, 880) ~ 0.57. Measured here over amplitudes
    # 0.1-1.0: 0.93-0.96 and 0.50-0.60 (int8 weights, level-dependent), hence the bands.
    emb = yamnet.get_scene_embeddings(batch(sine(220, amplitude=amplitude), sine(233, amplitude=amplitude),
                                            sine(880, amplitude=amplitude)), official).numpy()
    near, far = cosine(emb[0], emb[1]), cosine(emb[0], emb[2])
    assert 0.90 <= near <= 0.995
    assert 0.45 <= far <= 0.70
    assert near - far > 0.25


def test_mobile_dequantised_pitch_similarity(mobile):
    emb = yamnet.get_scene_embeddings(batch(sine(220), sine(233), sine(880)), mobile).numpy()
    assert cosine(emb[0], emb[1]) > 0.9
    assert 0.45 <= cosine(emb[0], emb[2]) <= 0.70


def test_shapes_timestamps_and_scene_mean(official):
    n = 2 * SR
    audio = batch(sine(300, n), sine(500, n, 0.2), np.zeros(n, np.float32))
    emb, ts = yamnet.get_timestamp_embeddings(audio, official)
    n_patches = 1 + int(np.ceil((n - 15600) / 7680))
    assert emb.shape == (3, n_patches, 1024) and emb.dtype == torch.float32
    assert ts.shape == (3, n_patches) and ts.dtype == torch.float32
    expected = (np.arange(n_patches) * 7680 + 15600 / 2) / SR * 1000
    np.testing.assert_allclose(ts[0].numpy(), expected)
    assert np.all(ts.numpy() < n / SR * 1000) and np.all(np.diff(ts.numpy(), axis=1) > 0)
    scene = yamnet.get_scene_embeddings(audio, official)
    assert scene.shape == (3, 1024) and scene.dtype == torch.float32
    np.testing.assert_allclose(scene.numpy(), emb.numpy().mean(axis=1), rtol=1e-5, atol=1e-6)
    # the last patch is zero-padded at the end, as YAMNet's own pad_waveform
    last = np.zeros(15600, np.float32)
    last[: n - 7680 * (n_patches - 1)] = audio[0, 7680 * (n_patches - 1):].numpy()
    alone = yamnet.get_scene_embeddings(batch(last), official)
    np.testing.assert_allclose(emb[0, -1].numpy(), alone[0].numpy(), rtol=1e-5, atol=1e-6)


def test_short_tone_padding_rules(official):
    n = 1024  # 64 ms
    tone = sine(250, n)
    emb, ts = yamnet.get_timestamp_embeddings(batch(tone), official)
    assert emb.shape == (1, 1, 1024)
    assert ts[0, 0].item() == pytest.approx(n / 2 / SR * 1000)
    centred = np.zeros(15600, np.float32)
    start = (15600 - n) // 2
    centred[start : start + n] = tone
    np.testing.assert_array_equal(emb[0, 0].numpy(), yamnet.get_scene_embeddings(batch(centred), official)[0].numpy())

    repeat = yamnet.load_model(str(OFFICIAL), pad_mode="repeat")
    tiled = np.tile(tone, 16)[:15600]
    np.testing.assert_array_equal(
        yamnet.get_scene_embeddings(batch(tone), repeat).numpy(),
        yamnet.get_scene_embeddings(batch(tiled), official).numpy(),
    )
    with pytest.raises(EmbeddingError, match="pad_mode"):
        yamnet.load_model(str(OFFICIAL), pad_mode="reflect")


def test_batch_equals_one_at_a_time(official):
    rng = np.random.default_rng(1)
    tones = np.stack([sine(f, 1024, a) for f, a in zip(rng.uniform(187, 375, 5), rng.uniform(0.1, 0.9, 5))])
    together = yamnet.get_scene_embeddings(torch.from_numpy(tones), official).numpy()
    alone = np.concatenate([yamnet.get_scene_embeddings(torch.from_numpy(t[None]), official).numpy() for t in tones])
    np.testing.assert_array_equal(together, alone)


def test_renamed_tensor_gives_clear_error(tmp_path):
    data = OFFICIAL.read_bytes()
    old = b"global_average_pooling2d/Mean"
    assert old in data
    renamed = tmp_path / "renamed.tflite"
    renamed.write_bytes(data.replace(old, b"global_average_pooling2d/Mxxn"))  # same length: valid file
    with pytest.raises(EmbeddingError, match="never by index"):
        yamnet.load_model(str(renamed))
    # the classifier still works, so the failure is the name lookup, not a broken file
    with pytest.raises(EmbeddingError, match="no tensor named 'not/a/tensor'"):
        yamnet.load_model(str(OFFICIAL), embedding_tensor="not/a/tensor")
    fixed = yamnet.load_model(str(renamed), embedding_tensor="yamnet_frames/global_average_pooling2d/Mxxn")
    original = yamnet.load_model(str(OFFICIAL))
    audio = batch(sine(330))
    np.testing.assert_array_equal(yamnet.get_scene_embeddings(audio, fixed).numpy(),
                                  yamnet.get_scene_embeddings(audio, original).numpy())


def test_find_tensor_by_name_rules():
    details = [
        {"name": "a/b/Mean/reduction_indices;x/a/b/Mean/reduction_indices", "index": 1},
        {"name": "a/b/Mean;StatefulPartitionedCall/a/b/Mean", "index": 2},
        {"name": "tower/layer28/reduce_mean", "index": 3},
        {"name": "tower/layer29/reduce_mean", "index": 4},
    ]
    assert yamnet.find_tensor_by_name(details, "a/b/Mean")["index"] == 2
    assert yamnet.find_tensor_by_name(details, "layer28/reduce_mean")["index"] == 3
    with pytest.raises(EmbeddingError, match="2 tensors match"):
        yamnet.find_tensor_by_name(details, "reduce_mean")


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((1, 100), np.int16), "floating-point"),
        (torch.zeros(100), "2-D"),
        (torch.zeros((1, 100), dtype=torch.int16), "floating-point"),
        (torch.full((1, 100), float("nan")), "NaN"),
        (torch.zeros((1, 0)), "0 samples"),
    ],
)
def test_bad_audio(official, bad, match):
    with pytest.raises(EmbeddingError, match=match):
        yamnet.get_scene_embeddings(bad, official)


def test_bad_paths(tmp_path):
    with pytest.raises(EmbeddingError, match="does not exist"):
        yamnet.load_model(str(tmp_path / "missing.tflite"))
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(EmbeddingError, match="not a .tflite"):
        yamnet.load_model(str(tmp_path / "x.txt"))
    with pytest.raises(EmbeddingError, match="saved_model.pb"):
        yamnet.load_model(str(tmp_path))


def test_registry_entries(monkeypatch):
    from embeddings.registry import default_models, get_spec

    monkeypatch.setenv("GEAR_MODELS_DIR", str(SHARED / "models"))
    names = [spec.name for spec in default_models()]
    assert "yamnet-tflite" in names and "yamnet-tflite-mobile" not in names
    module, model = get_spec("yamnet-tflite-mobile").load()
    assert model.model_file == MOBILE and module is yamnet
    ok, why = get_spec("yamnet-hub").can_run()
    assert not ok or "yamnet_savedmodel" in why


def write_tiny_yamnet_savedmodel(folder):
    """A tiny TensorFlow SavedModel with YAMNet's call signature (waveform -> scores, 1024-d
    embeddings, log-mel) and YAMNet's framing, saved in ``folder``. Returns ``(w_embed, w_class)``."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w_embed = rng.normal(size=(64, 1024)).astype(np.float32)
    w_class = rng.normal(size=(1024, 521)).astype(np.float32) / 32

    class TinyYamnet(tf.Module):
        def __init__(self):
            super().__init__()
            self.w_embed = tf.Variable(w_embed)
            self.w_class = tf.Variable(w_class)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, waveform):
            # YAMNet's framing: 15 600-sample patches, 7 680 hop, zero-padded at the end
            n = tf.shape(waveform)[0]
            n_patches = 1 + tf.cast(tf.math.ceil(tf.maximum(0, n - 15600) / 7680), tf.int32)
            total = (n_patches - 1) * 7680 + 15600
            padded = tf.pad(waveform, [[0, total - n]])
            patches = tf.signal.frame(padded, 15600, 7680)
            spectrum = tf.abs(tf.signal.rfft(patches))[:, :64]
            embeddings = tf.nn.relu(spectrum @ self.w_embed)
            scores = tf.sigmoid(embeddings @ self.w_class)
            return scores, embeddings, tf.zeros([n_patches * 96, 64])

    tf.saved_model.save(TinyYamnet(), str(folder))
    return w_embed, w_class


@pytest.mark.slow
def test_hub_path_with_constructed_savedmodel(tmp_path):
    """The TF-Hub path end to end on a tiny SavedModel with YAMNet's call signature."""
    pytest.importorskip("tensorflow")
    folder = tmp_path / "yamnet_savedmodel"
    w_embed, _ = write_tiny_yamnet_savedmodel(folder)
    model = yamnet.load_model(str(folder))
    assert isinstance(model, yamnet.YamnetHub)
    n = 20000
    tones = np.stack([sine(300, n), sine(600, n, 0.2)])
    emb, ts = yamnet.get_timestamp_embeddings(torch.from_numpy(tones), model)
    assert emb.shape == (2, 2, 1024) and emb.dtype == torch.float32
    # independent numpy computation of the same function
    padded = np.concatenate([tones, np.zeros((2, 15600 + 7680 - n), np.float32)], axis=1)
    for k, start in enumerate((0, 7680)):
        spectrum = np.abs(np.fft.rfft(padded[:, start : start + 15600].astype(np.float64)))[:, :64]
        expected = np.maximum(spectrum @ w_embed, 0)
        np.testing.assert_allclose(emb[:, k].numpy(), expected, rtol=2e-4, atol=1e-2)
    np.testing.assert_allclose(ts[0].numpy(), [487.5, 967.5])

    # the registry finds it under <models-dir>/yamnet/yamnet_savedmodel
    from embeddings.registry import get_spec

    models = tmp_path / "models"
    (models / "yamnet").mkdir(parents=True)
    shutil.move(str(folder), str(models / "yamnet" / "yamnet_savedmodel"))
    module, hub_model = get_spec("yamnet-hub").load(models)
    assert isinstance(hub_model, yamnet.YamnetHub)
