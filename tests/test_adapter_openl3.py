"""OpenL3 adapter: weight files in both upstream formats -> embeddings, end to end.

No real OpenL3 weights can be obtained here, so the files are built locally with random
values in the exact upstream layouts: a torchopenl3 state dict written from the
``torchopenl3`` package's own model (the reference for the whole forward pass), and legacy
Keras HDF5 files (written by tf_keras from the openl3 architecture, and written directly
with h5py in the Keras-2 layout, kapre front-end layer included).
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from embeddings import openl3
from embeddings.base import EmbeddingError


def _randomise_batch_norms(module, generator):
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            n = layer.num_features
            layer.running_mean.copy_(torch.rand(n, generator=generator) * 2 - 1)
            layer.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    # the first batch norm sees dB values in [-80, 0]: give it statistics of that range
    first = module.batch_normalization_1
    first.running_mean.fill_(-40.0)
    first.running_var.fill_(400.0)


def write_torchopenl3_checkpoint(folder, *, input_repr="mel128", content_type="music", embedding_size=6144):
    """torchopenl3's PytorchOpenl3 with random weights, saved as its .pth.tar (torchopenl3's file
    name) in ``folder``. Returns ``(reference model, path)``."""
    import torchopenl3

    torch.manual_seed(1)
    reference = torchopenl3.models.PytorchOpenl3(content_type, input_repr, embedding_size)
    with torch.no_grad():
        _randomise_batch_norms(reference, torch.Generator().manual_seed(2))
    reference.eval()
    path = Path(folder) / f"torchopenl3_{input_repr}_{content_type}_{embedding_size}.pth.tar"
    torch.save(reference.state_dict(), path)
    return reference, path


@pytest.fixture(scope="module")
def torchopenl3_reference(tmp_path_factory):
    """torchopenl3's PytorchOpenl3 (mel128, 6144-d) with random weights, saved as its .pth.tar."""
    pytest.importorskip("torchopenl3")
    return write_torchopenl3_checkpoint(tmp_path_factory.mktemp("openl3"))


@pytest.fixture(scope="module")
def model(torchopenl3_reference):
    _, path = torchopenl3_reference
    return openl3.load_model(str(path))


def _rng_audio(n_sounds, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(-0.5, 0.5, size=(n_sounds, n_samples)).astype(np.float32))


# ----------------------------------------------------------------------------- front end
def _numpy_kapre_front_end(frame, *, n_dft, n_mels):
    """kapre 0.1.4 log spectrogram by its formula, with numpy's FFT (float64)."""
    frame = np.asarray(frame, dtype=np.float64)
    hop = 242
    if n_mels is not None:  # Keras 'same' padding for a 48000-sample input, stride 242
        total = n_dft - 48000 % hop
        frame = np.pad(frame, (total // 2, total - total // 2))
    n_frames = (len(frame) - n_dft) // hop + 1
    window = np.hanning(n_dft + 1)[:-1]  # periodic Hann
    spec = np.stack([np.fft.rfft(frame[t * hop:t * hop + n_dft] * window) for t in range(n_frames)], axis=1)
    power = np.abs(spec) ** 2
    if n_mels is not None:
        import librosa

        mel = librosa.filters.mel(sr=48000, n_fft=n_dft, n_mels=n_mels, htk=True, norm="slaney")
        power = mel @ power
    db = 10 * np.log10(np.maximum(np.sqrt(power), 1e-10))
    return np.maximum(db - db.max(), -80.0)


@pytest.mark.slow
@pytest.mark.parametrize("input_repr", ["mel128", "linear"])
def test_front_end_matches_the_kapre_formula(input_repr):
    frame = _rng_audio(1, 48000, seed=3)[0] * torch.hann_window(48000, periodic=False)
    layer = openl3.KapreSpectrogram(input_repr)
    ours = layer(frame[None])[0, 0].numpy()
    n_dft, n_mels = openl3.INPUT_REPRS[input_repr]
    expected = _numpy_kapre_front_end(frame.numpy(), n_dft=n_dft, n_mels=n_mels)
    assert ours.shape == expected.shape == ((n_mels or 257), 199 if n_mels else 197)
    assert ours.max() == 0.0 and ours.min() >= -80.0
    # float32 DFT-by-convolution against float64 FFT: compare where the level is meaningful
    loud = expected > -60
    assert loud.mean() > 0.3
    np.testing.assert_allclose(ours[loud], expected[loud], atol=0.05)


# ----------------------------------------------------------------------------- torchopenl3 format
@pytest.mark.slow
def test_torchopenl3_file_matches_torchopenl3_forward(torchopenl3_reference, model):
    reference, path = torchopenl3_reference
    assert model.input_repr == "mel128" and model.content_type == "music"
    assert model.weights_file == str(path) and model.scene_embedding_size == 6144
    audio = _rng_audio(2, 48000, seed=4)  # exactly one 1 s window: no padding in the scene rule
    ours = openl3.get_scene_embeddings(audio, model)
    with torch.no_grad():
        expected = reference(audio[:, None, :])
    assert ours.dtype == torch.float32 and ours.shape == (2, 6144)
    scale = float(expected.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5 * scale)
    # the loaded tensors are the file's, the front end included
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.slow
def test_a_perturbed_tensor_changes_the_embedding(torchopenl3_reference, model, tmp_path):
    reference, _ = torchopenl3_reference
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    state["conv2d_5.weight"] *= 1.5
    path = tmp_path / "torchopenl3_mel128_music_6144.pth.tar"
    torch.save(state, path)
    perturbed = openl3.load_model(str(path))
    audio = _rng_audio(1, 48000, seed=5)
    assert not torch.allclose(openl3.get_scene_embeddings(audio, perturbed), openl3.get_scene_embeddings(audio, model))


# ----------------------------------------------------------------------------- Keras format
def _keras_layer_order():
    """Layer names of openl3's Keras audio model (Keras 2 auto-names), in topological order."""
    names = ["input_1", "melspectrogram_1", "batch_normalization_1"]
    act = pool = 0
    for index in range(1, 9):
        conv = "audio_embedding_layer" if index == 8 else f"conv2d_{index}"
        names.append(conv)
        if index == 8:
            break
        names.append(f"batch_normalization_{index + 1}")
        act += 1
        names.append(f"activation_{act}")
        if index in (2, 4, 6):
            pool += 1
            names.append(f"max_pooling2d_{pool}")
    return names


def _write_keras_h5(path, torch_model, *, front_end=None, under_model_weights=False):
    """Write ``torch_model``'s weights in the legacy Keras-2 HDF5 layout of openl3's files."""
    import h5py

    state = {k: v.numpy() for k, v in torch_model.state_dict().items()}
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if under_model_weights else handle
        names = _keras_layer_order()
        if front_end is None:
            names.remove("melspectrogram_1")
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.1.6"
        for name in names:
            group = root.create_group(name)
            weights = {}
            if name.startswith("batch_normalization_"):
                p = name
                weights = dict(gamma=state[f"{p}.weight"], beta=state[f"{p}.bias"],
                               moving_mean=state[f"{p}.running_mean"], moving_variance=state[f"{p}.running_var"])
            elif name.startswith("conv2d_") or name == "audio_embedding_layer":
                weights = dict(kernel=state[f"{name}.weight"].transpose(2, 3, 1, 0), bias=state[f"{name}.bias"])
            elif name == "melspectrogram_1":
                weights = front_end
            group.attrs["weight_names"] = np.array([f"{name}/{w}:0".encode() for w in weights])
            for w, value in weights.items():
                group.create_dataset(f"{name}/{w}:0", data=value)


@pytest.fixture(scope="module")
def random_torch_model():
    torch.manual_seed(7)
    model = openl3.OpenL3Embedding("mel128", 6144)
    with torch.no_grad():
        _randomise_batch_norms(model, torch.Generator().manual_seed(8))
    return model.eval()


@pytest.mark.slow
def test_keras_h5_written_in_the_keras2_layout_loads_exactly(random_torch_model, tmp_path):
    pytest.importorskip("h5py")
    path = tmp_path / "openl3_audio_mel128_env.h5"
    _write_keras_h5(path, random_torch_model, under_model_weights=True)
    loaded = openl3.load_model(str(path))
    assert loaded.input_repr == "mel128" and loaded.content_type == "env"
    for key, value in random_torch_model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.state_dict()[key], value), key
    audio = _rng_audio(1, 48000, seed=9)
    with torch.no_grad():
        expected = random_torch_model(audio)
    torch.testing.assert_close(openl3.get_scene_embeddings(audio, loaded), expected, rtol=0, atol=1e-6)


def test_kapre_front_end_weights_in_the_h5_file_are_used(random_torch_model, tmp_path):
    pytest.importorskip("h5py")
    rng = np.random.default_rng(10)
    n_bins, n_mels = 1025, 128
    freq2mel = rng.uniform(0, 1e-3, size=(n_bins, n_mels)).astype(np.float32)
    layer = openl3.KapreSpectrogram("mel128")
    # kapre 0.1.4 stores the DFT kernels as (n_dft, 1, 1, n_bins)
    real = layer.dft_real_kernels.numpy()[:, 0, :].T[:, None, None, :]
    imag = layer.dft_imag_kernels.numpy()[:, 0, :].T[:, None, None, :]
    path = tmp_path / "weights.h5"  # no repr in the name: it comes from the stored front end
    _write_keras_h5(path, random_torch_model,
                    front_end={"real_kernels": real, "imag_kernels": imag, "freq2mel": freq2mel})
    loaded = openl3.load_model(str(path))
    assert loaded.input_repr == "mel128"
    np.testing.assert_array_equal(loaded.speclayer.mel_basis.numpy(), freq2mel.T)
    np.testing.assert_array_equal(loaded.speclayer.dft_real_kernels.numpy(), layer.dft_real_kernels.numpy())
    with pytest.raises(EmbeddingError, match="mel128 front end"):
        openl3.load_model(str(path), input_repr="mel256")


@pytest.mark.slow
def test_keras_file_saved_by_keras_matches_keras_predictions(tmp_path):
    """The openl3 network built with tf_keras (include_frontend=False), saved with
    save_weights(.h5), loaded here: same outputs as Keras on the same spectrograms."""
    keras = pytest.importorskip("tf_keras")
    layers = keras.layers
    rng = np.random.default_rng(11)
    inputs = layers.Input(shape=(128, 199, 1))
    y = layers.BatchNormalization()(inputs)
    for index, n_filters in enumerate((64, 64, 128, 128, 256, 256, 512), start=1):
        y = layers.Conv2D(n_filters, (3, 3), padding="same")(y)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        if index in (2, 4, 6):
            y = layers.MaxPooling2D(pool_size=(2, 2), strides=2)(y)
    y = layers.Conv2D(512, (3, 3), padding="same", name="audio_embedding_layer")(y)
    body = keras.Model(inputs, y)
    for layer in body.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.uniform(-0.5, 0.5, n),
                               rng.uniform(-1, 1, n), rng.uniform(0.5, 1.5, n)])
    first = body.layers[1]
    gamma, beta, _, _ = first.get_weights()
    first.set_weights([gamma, beta, np.full(1, -40.0), np.full(1, 400.0)])
    path = tmp_path / "openl3_audio_mel128_music.h5"
    body.save_weights(str(path))
    # openl3 adds the pooling and flattening after loading the weights
    pooled = layers.Flatten()(layers.MaxPooling2D(pool_size=(4, 8), padding="same")(body.output))
    full = keras.Model(body.input, pooled)

    loaded = openl3.load_model(str(path), embedding_size=6144)
    spectrogram = loaded.speclayer(_rng_audio(2, 48000, seed=12))  # (2, 1, 128, 199)
    expected = full.predict(spectrogram.permute(0, 2, 3, 1).numpy(), verbose=0)
    with torch.no_grad():
        ours = loaded.embed_spectrogram(spectrogram).numpy()
    assert ours.shape == expected.shape == (2, 6144)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


# ----------------------------------------------------------------------------- HEAR contract
@pytest.mark.slow
def test_timestamp_embeddings_follow_the_hear_contract(model):
    audio = _rng_audio(2, 12000, seed=13)  # 250 ms
    embeddings, timestamps = openl3.get_timestamp_embeddings(audio, model, hop_ms=100.0)
    n_frames = 1 + 12000 // 4800
    assert embeddings.shape == (2, n_frames, 6144) and embeddings.dtype == torch.float32
    assert timestamps.shape == (2, n_frames) and timestamps.dtype == torch.float32
    np.testing.assert_allclose(timestamps[0].numpy(), [0.0, 100.0, 200.0])
    assert bool(torch.isfinite(embeddings).all())
    # window k is centred on sample 4800 k: compare with the forward pass of that window
    padded = torch.nn.functional.pad(audio[1], (24000, 24000))
    with torch.no_grad():
        window = model(padded[4800 * 2:4800 * 2 + 48000][None])
    torch.testing.assert_close(embeddings[1, 2:3], window, rtol=0, atol=1e-5 * float(window.abs().max()))
    again, _ = openl3.get_timestamp_embeddings(audio, model, hop_ms=100.0)
    assert torch.equal(again, embeddings)


@pytest.mark.slow
def test_scene_embedding_of_a_short_tone_is_its_centred_window_and_batch_independent(model):
    tone = torch.sin(2 * math.pi * 440.0 * torch.arange(3072) / 48000.0)[None] * 0.5  # 64 ms
    other = _rng_audio(1, 3072, seed=14)
    both = openl3.get_scene_embeddings(torch.cat([tone, other]), model)
    alone = openl3.get_scene_embeddings(tone, model)
    assert both.shape == (2, 6144)
    torch.testing.assert_close(both[:1], alone, rtol=0, atol=1e-5 * float(alone.abs().max()))
    centred = torch.nn.functional.pad(tone, ((48000 - 3072) // 2, 48000 - 3072 - (48000 - 3072) // 2))
    with torch.no_grad():
        expected = model(centred)
    torch.testing.assert_close(alone, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))


def test_bad_inputs_raise_parameter_errors(tmp_path):
    with pytest.raises(EmbeddingError, match="local weights file"):
        openl3.load_model("")
    with pytest.raises(EmbeddingError, match="not found"):
        openl3.load_model(str(tmp_path / "missing.h5"))
    (tmp_path / "junk.pth.tar").write_bytes(b"not a pickle")
    with pytest.raises(EmbeddingError, match="weights_only"):
        openl3.load_model(str(tmp_path / "junk.pth.tar"))
    torch.save({"conv2d_1.weight": torch.zeros(3)}, tmp_path / "torchopenl3_mel256_music_6144.pth.tar")
    with pytest.raises(EmbeddingError, match="does not hold OpenL3"):
        openl3.load_model(str(tmp_path / "torchopenl3_mel256_music_6144.pth.tar"))
    with pytest.raises(EmbeddingError, match="embedding_size"):
        openl3.OpenL3Embedding("mel256", 1024)
    with pytest.raises(EmbeddingError, match="input_repr"):
        openl3.KapreSpectrogram("mel64")
    model = openl3.OpenL3Embedding("mel128", 512)
    with pytest.raises(EmbeddingError, match="2-D"):
        openl3.get_scene_embeddings(torch.zeros(48000), model)
    with pytest.raises(EmbeddingError, match="hop_ms"):
        openl3.get_timestamp_embeddings(torch.zeros(1, 4800), model, hop_ms=0)
    with pytest.raises(EmbeddingError, match="OpenL3Embedding"):
        openl3.get_scene_embeddings(torch.zeros(1, 4800), object())


def test_registry_finds_weights_in_the_models_dir(tmp_path, monkeypatch, random_torch_model):
    from embeddings.registry import get_spec

    monkeypatch.delenv("GEAR_MODELS_DIR", raising=False)
    spec = get_spec("openl3")
    assert not spec.can_run(tmp_path)[0]
    (tmp_path / "openl3").mkdir()
    model_256 = openl3.OpenL3Embedding("mel256", 6144)
    target = tmp_path / "openl3" / "torchopenl3_mel256_music_6144.pth.tar"
    torch.save(model_256.state_dict(), target)
    ok, where = spec.can_run(tmp_path)
    assert ok and where == str(target)
    module, loaded = spec.load(tmp_path)
    assert module is openl3 and loaded.weights_file == str(target)
    assert (loaded.input_repr, loaded.content_type, loaded.scene_embedding_size) == ("mel256", "music", 6144)
    _, loaded_512 = get_spec("openl3-512").load(tmp_path)
    assert loaded_512.scene_embedding_size == 512
