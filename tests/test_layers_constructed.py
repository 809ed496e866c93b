"""Layer-wise probes of the adapters whose weights are built here in the upstream format
(wav2vec2, GURA, BYOL-S, Hybrid BYOL-S, OpenL3) and of Resemblyzer (its wheel's weights): layer
names read from the weights, each tapped layer equal to the same network's output computed another
way, one forward pass, GURA's branches.

References: Hugging Face's own ``output_hidden_states`` and feature encoder for the wav2vec2 /
HuBERT backbones; the encoders' sub-modules run by hand for BYOL-S; OpenL3's embedding (a max-pool
of the last layer) bounds that layer's time mean; one-layer LSTMs loaded with each of Resemblyzer's
layers.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embeddings import registry
from gear.layers import LayerRecorder, layer_depths, layer_modules, select_layers
from gear.pipeline import GearConfig, run

transformers = pytest.importorskip("transformers")

from test_adapter_byols import write_checkpoints  # noqa: E402
from test_adapter_gura import write_gura_folder  # noqa: E402
from test_adapter_wav2vec2 import write_voxpopuli_like  # noqa: E402

SMALL = dict(grid_kwargs=dict(n_alpha=8, n_r=8), isomap_neighbors=12, n_neighbors=8, n_bootstrap=30)


def _audio(n_sounds, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000.0
    tones = rng.uniform(0.1, 0.8, (n_sounds, 1)) * np.sin(2 * np.pi * rng.uniform(100, 3000, (n_sounds, 1)) * t)
    return torch.from_numpy(tones.astype(np.float32))


def _record(module, model, audio, names):
    with LayerRecorder(layer_modules(model, names), max_dim=65536) as recorder:
        embedding = module.get_scene_embeddings(audio, model)
        return embedding, recorder.take(audio.shape[0]), dict(recorder.calls)


def _layer_norm_all(x):
    return F.layer_norm(x, x.shape)


# ----------------------------------------------------------------------------- wav2vec2
@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    backbone, folder = write_voxpopuli_like(models / "wav2vec2")
    return backbone, folder, models


def test_wav2vec2_layers_are_read_from_config_json(wav2vec2_dir):
    _, _, models = wav2vec2_dir
    spec = registry.get_spec("wav2vec2")
    expected = tuple(f"conv{k}" for k in range(1, 8)) + ("transformer1", "transformer2")  # 7 convs, 2 layers
    assert spec.layer_names(models) == expected
    assert select_layers(spec, "transformer2,conv1", models_dir=models) == ("conv1", "transformer2")
    assert registry.get_spec("wav2vec2").layer_branches is False


def test_wav2vec2_layers_equal_hugging_face_hidden_states(wav2vec2_dir):
    from embeddings import wav2vec2

    backbone, folder, _ = wav2vec2_dir
    model = wav2vec2.load_model(str(folder), chunk_sounds=2)  # 5 sounds: three chunks
    audio = _audio(5, 2400)  # 7 frames
    names = wav2vec2.layer_names(folder)
    embedding, layers, calls = _record(wav2vec2, model, audio, names)
    assert calls == dict.fromkeys(names, 3)  # one call per chunk: one forward pass
    with torch.no_grad():
        wav = _layer_norm_all(audio)  # hearbaseline's batch-wide input norm, as the embedding
        out = backbone(wav, output_hidden_states=True)
        conv = wav[:, None]
        for k, layer in enumerate(backbone.feature_extractor.conv_layers, start=1):
            conv = layer(conv)
            np.testing.assert_allclose(layers[f"conv{k}"], conv.mean(dim=2).numpy(), rtol=1e-4, atol=1e-5)
        for k in (1,):  # hidden_states[k] is layer k's output for k < L
            np.testing.assert_allclose(layers[f"transformer{k}"], out.hidden_states[k].mean(dim=1).numpy(),
                                       rtol=1e-4, atol=1e-5)
    # the embedding is unchanged by the taps: hearbaseline's reference
    np.testing.assert_allclose(embedding.numpy(), _layer_norm_all(out.last_hidden_state).mean(dim=1).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_wav2vec2_last_layer_is_the_last_hidden_state_before_the_final_norm(wav2vec2_dir):
    from embeddings import wav2vec2

    backbone, folder, _ = wav2vec2_dir
    model = wav2vec2.load_model(str(folder))
    audio = _audio(4, 400, seed=1)  # one frame: the time mean is the frame
    _, layers, _ = _record(wav2vec2, model, audio, ("transformer2",))
    with torch.no_grad():
        last = backbone(_layer_norm_all(audio)).last_hidden_state[:, 0]
        normed = backbone.encoder.layer_norm(torch.from_numpy(layers["transformer2"]))
    np.testing.assert_allclose(normed.numpy(), last.numpy(), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- GURA
@pytest.fixture(scope="module")
def gura_dir(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    hubert, w2v, folder = write_gura_folder(models)
    return hubert, w2v, folder, models


def test_gura_layers_form_three_branches(gura_dir):
    _, _, _, models = gura_dir
    spec = registry.get_spec("gura-fusion-cat-xwc")
    names = spec.layer_names(models)
    assert names[:2] == ("hubert.conv1", "hubert.conv2") and names[-1] == "crepe.conv5" and len(names) == 10 + 9 + 5
    depths = layer_depths(spec, names)
    assert depths["hubert.transformer3"] == {"branch": "hubert", "depth": 10, "n_layers": 10}  # 7 convs + 3
    assert depths["wav2vec2.conv1"] == {"branch": "wav2vec2", "depth": 1, "n_layers": 9}
    assert depths["crepe.conv2"] == {"branch": "crepe", "depth": 2, "n_layers": 5}


def test_gura_backbone_layers_equal_hugging_face_hidden_states(gura_dir):
    from embeddings import gura

    hubert, w2v, folder, models = gura_dir
    model = gura.load_model(str(folder), chunk_sounds=4)
    audio = _audio(3, 1024, seed=2)
    names = ("hubert.transformer1", "hubert.transformer2", "wav2vec2.transformer1", "wav2vec2.conv7", "crepe.conv5")
    _, layers, calls = _record(gura, model, audio, names)
    assert calls["hubert.transformer1"] == calls["wav2vec2.transformer1"] == 1
    with torch.no_grad():  # GURA feeds the raw waveform
        h = hubert(audio, output_hidden_states=True).hidden_states
        w = w2v(audio, output_hidden_states=True).hidden_states
        features = w2v.feature_extractor(audio)
    for name, expected in (("hubert.transformer1", h[1]), ("hubert.transformer2", h[2]),
                           ("wav2vec2.transformer1", w[1])):
        np.testing.assert_allclose(layers[name], expected.mean(dim=1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layers["wav2vec2.conv7"], features.mean(dim=2).numpy(), rtol=1e-4, atol=1e-5)
    assert layers["crepe.conv5"].shape == (3, 256)  # CREPE full's 256 channels, one 250 ms-hop frame per tone


def test_gear_run_layers_on_gura_stores_and_draws_each_branch(gura_dir, tmp_path):
    from gear.layers import _curves
    from gear.store import ResultsStore

    *_, models = gura_dir
    chosen = "hubert.conv7,hubert.transformer3,wav2vec2.transformer2,crepe.conv1,crepe.conv5"
    results = run(["gura-fusion-cat-xwc"], out_dir=tmp_path / "out", config=GearConfig(**SMALL),
                  cache_dir=tmp_path / "cache", models_dir=models, layers=chosen, report=True)
    names = sorted(r.name for r in results)
    assert names == sorted(["gura-fusion-cat-xwc"] + [f"gura-fusion-cat-xwc/{n}" for n in chosen.split(",")])
    store = ResultsStore(tmp_path / "out")
    curves = _curves(store.load_results(), {n: store.info(n) for n in store.names()})
    assert {k: [(p["layer"], p["depth"]) for p in v] for k, v in curves.items()} == {
        "gura-fusion-cat-xwc (crepe)": [("crepe.conv1", 1), ("crepe.conv5", 5)],
        "gura-fusion-cat-xwc (hubert)": [("hubert.conv7", 7), ("hubert.transformer3", 10)],
        "gura-fusion-cat-xwc (wav2vec2)": [("wav2vec2.transformer2", 9)],
    }
    # CREPE's blocks hear f1 (its job), far better than chance, on these tones
    crepe = next(p for p in curves["gura-fusion-cat-xwc (crepe)"] if p["layer"] == "crepe.conv5")
    assert crepe["normalised"]["f1_hz"] < 0.5
    assert "gura-fusion-cat-xwc (hubert)" in (tmp_path / "out" / "report.html").read_text()


def test_layers_of_a_model_without_its_weights_are_a_clear_error(tmp_path, capsys):
    from gear import cli

    assert cli.main(["models", "--layers", "wav2vec2", "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "model 'wav2vec2': its layers are read from its weights, which are not here" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- BYOL-S
@pytest.fixture(scope="module")
def byols_models(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    (models / "byols").mkdir()
    write_checkpoints(models / "byols")
    return models


@pytest.mark.parametrize("name", ["byols", "hybrid-byols"])
def test_byols_layers_equal_the_encoder_run_by_hand(name, byols_models):
    spec = registry.get_spec(name)
    module, model = spec.load(byols_models)
    assert spec.layer_names() == tuple(model.taps)  # the registry lists what the encoder taps
    audio = _audio(3, 4000, seed=3)
    embedding, layers, calls = _record(module, model, audio, spec.layer_names())
    assert set(calls.values()) == {1}
    lms = module._log_mel(module._pad_to(audio, model.min_n_samples), model)
    lms = (lms - lms.mean(dim=(1, 2)).mean()) / lms.std(dim=(1, 2)).mean()  # the batch statistics
    x = lms[:, None]
    encoder = model.encoder
    with torch.no_grad():
        if name == "byols":
            for k in range(3):
                x = encoder.features[4 * k:4 * k + 4](x)  # (batch, channel, mel, time)
                np.testing.assert_allclose(layers[f"block{k + 1}"], x.mean(dim=3).flatten(1).numpy(), rtol=1e-4,
                                           atol=1e-5)
            frames = encoder.fc(x.permute(0, 3, 2, 1).flatten(2))  # (batch, time, d)
            np.testing.assert_allclose(layers["fc"], frames.mean(dim=1).numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(embedding.numpy(), (frames.mean(dim=1) + frames.amax(dim=1)).numpy(),
                                       rtol=1e-4, atol=1e-5)
        else:
            for k, stage in enumerate(encoder.layers, start=1):
                x = stage(x)
                np.testing.assert_allclose(layers[f"stage{k}"], x.mean(dim=3).flatten(1).numpy(), rtol=1e-4,
                                           atol=1e-5)
    assert [layers[n].shape[1] for n in spec.layer_names()] == (
        [2048, 1024, 512, 2048] if name == "byols" else [1024, 2048, 2048])  # the module doc's sizes


# ----------------------------------------------------------------------------- OpenL3
def test_openl3_layers_are_tapped_in_order_and_bound_by_the_embedding():
    from embeddings import openl3

    torch.manual_seed(0)
    model = openl3.OpenL3Embedding("mel256", 6144).eval()
    for spec_name in ("openl3", "openl3-512", "openl3-env"):
        assert registry.get_spec(spec_name).layer_names() == openl3.LAYERS
    audio = _audio(2, 4800, seed=4)
    embedding, layers, calls = _record(openl3, model, audio, openl3.LAYERS)
    assert set(calls.values()) == {1}
    assert all(layers[n].shape == (2, 16384) for n in openl3.LAYERS)  # channels x mel bins (module doc)
    assert np.all(layers["conv2d_1"] >= 0)  # after ReLU
    # the embedding max-pools audio_embedding_layer by (8 mel, 8 time) windows: (mel block, time block, channel)
    last = layers["audio_embedding_layer"].reshape(2, 512, 4, 8).max(axis=3)  # (sound, channel, mel block)
    pooled = embedding.numpy().reshape(2, 4, 3, 512).max(axis=2).transpose(0, 2, 1)
    assert np.all(pooled >= last - 1e-5)


# ----------------------------------------------------------------------------- Resemblyzer (real weights)
def test_resemblyzer_lstm_layers_equal_single_layer_lstms_run_by_hand():
    pytest.importorskip("resemblyzer")
    from embeddings import resemblyzer

    spec = registry.get_spec("resemblyzer")
    module, model = spec.load()
    assert spec.layer_names() == resemblyzer.LAYERS == tuple(model.taps)
    audio = _audio(3, 30000, seed=5)  # two partials per sound
    embedding, layers, calls = _record(module, model, audio, resemblyzer.LAYERS)
    assert set(calls.values()) == {1}
    timestamps, _ = module.get_timestamp_embeddings(audio, model)  # (3, partials, 256), L2-normalised
    lstm = model.encoder.lstm
    # the partials' mel spectrograms, as the adapter slices them (recorded from the LSTM's input)
    seen = []
    handle = lstm.register_forward_hook(lambda m, inputs, output: seen.append(inputs[0]))
    module.get_scene_embeddings(audio, model)
    handle.remove()
    x = seen[0]
    states = []
    with torch.no_grad():
        for k in range(3):  # each layer alone: a one-layer LSTM with that layer's weights
            single = torch.nn.LSTM(lstm.input_size if k == 0 else lstm.hidden_size, lstm.hidden_size, 1,
                                   batch_first=True)
            single.load_state_dict({f"{name}_l0": getattr(lstm, f"{name}_l{k}")
                                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
            x, (h, _) = single(x)
            states.append(h[0])
    n_partials = timestamps.shape[1]
    for k, state in enumerate(states, start=1):
        expected = state.reshape(3, n_partials, -1).mean(dim=1).numpy()
        np.testing.assert_allclose(layers[f"lstm{k}"], expected, rtol=1e-4, atol=1e-5)
    # the projection, L2-normalised per partial, is the timestamp embedding
    projection = torch.relu(model.encoder.linear(states[-1])).reshape(3, n_partials, -1)
    np.testing.assert_allclose(layers["projection"], projection.mean(dim=1).detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose((projection / projection.norm(dim=2, keepdim=True)).detach().numpy(),
                               timestamps.numpy(), rtol=1e-4, atol=1e-5)
