"""Layer-wise probes (`gear run --layers`): one forward pass, layer outputs, controls, store names, errors."""
import sys

import numpy as np
import pytest
import torch

import synth
from embeddings import registry
from conftest import make_hear_module
from embeddings.base import ModelSpec
from gear import cli
from gear.errors import ParameterError
from gear.layers import LayerRecorder, embed_layers, layer_modules, pool_output, select_layers
from gear.pipeline import GearConfig, run
from gear.store import (ResultsStore, entry_folder_name, entry_name, layer_name, parse_name, split_layer)

SMALL = dict(grid_kwargs=dict(n_alpha=16, n_r=16), isomap_neighbors=20, n_neighbors=10, n_bootstrap=50)


@pytest.fixture(scope="module")
def tones():
    return synth.make_grid("paper", n_alpha=12, n_r=10)  # 120 tones


def _count_calls(kind, calls):
    """A global forward hook counting the calls of modules of type ``kind``."""
    return torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: calls.append(1) if isinstance(module, kind) else None)


# ----------------------------------------------------------------------------- one forward pass
def test_one_forward_pass_per_batch_with_every_hook(tones, tmp_path):
    from embeddings.crepe import CrepeEmbedding
    from gear.embedder import embed_model

    spec = registry.get_spec("crepe-tiny")
    plain, layered = [], []
    handle = _count_calls(CrepeEmbedding, plain)
    try:
        reference = embed_model(spec, tones, use_cache=False, batch_size=40)
    finally:
        handle.remove()
    handle = _count_calls(CrepeEmbedding, layered)
    try:
        result = embed_layers(spec, tones, select_layers(spec, "all"), use_cache=False, batch_size=40)
    finally:
        handle.remove()
    n_batches = 3  # 120 tones by 40
    assert len(layered) == len(plain) == n_batches + 2  # + the determinism check's two calls, in both runs
    assert result.calls_per_batch == [dict.fromkeys(spec.layers, 1)] * n_batches
    np.testing.assert_array_equal(result.embedding.embedding, reference.embedding)  # hooks only read


# ----------------------------------------------------------------------------- outputs by hand
def _record(module, model, audio, names):
    with LayerRecorder(layer_modules(model, names), max_dim=65536) as recorder:
        embedding = module.get_scene_embeddings(torch.from_numpy(audio), model).numpy()
        return embedding, recorder.take(audio.shape[0])


def test_naive_layers_equal_the_computation_by_hand(tones):
    from embeddings import naive

    model = naive.load_model()
    audio = tones.render(model.sample_rate, indices=np.arange(0, 117, 29))
    embedding, layers = _record(naive, model, audio, ("power", "log_mel", "projection"))
    frames, _ = naive.frame_audio(torch.from_numpy(audio), frame_size=4096, hop_size_ms=250.0, sample_rate=44100)
    power = (torch.abs(torch.fft.rfft(frames * torch.hann_window(4096))) ** 2).double()
    log_mel = torch.log(power @ model.mel_scale.double().T + 1e-4)
    projection = log_mel @ model.projection.double()
    for name, by_hand in (("power", power), ("log_mel", log_mel), ("projection", projection)):
        expected = by_hand.mean(dim=1).numpy()
        np.testing.assert_allclose(layers[name], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(layers["projection"], embedding, rtol=1e-6, atol=1e-6)  # the last layer is the embedding


def test_crepe_layers_equal_torchcrepe_blocks_by_hand(tones):
    from embeddings import crepe

    model = crepe.load_model(capacity="tiny")
    audio = tones.render(crepe.SAMPLE_RATE, indices=np.arange(0, 117, 23))
    embedding, layers = _record(crepe, model, audio, tuple(model.taps))
    net = model.crepe
    x = crepe.normalize_frames(torch.from_numpy(audio))[:, None, :, None]  # a 1 024-sample tone is one frame
    with torch.no_grad():
        for k in range(1, 6):  # torchcrepe's own Crepe.layer, not the adapter's faster path
            x = net.layer(x, getattr(net, f"conv{k}"), getattr(net, f"conv{k}_BN"),
                          *(((0, 0, 254, 254),) if k == 1 else ()))
            np.testing.assert_allclose(layers[f"conv{k}"], x.mean(dim=2).flatten(1).numpy(), rtol=1e-4, atol=1e-5)
    # the embedding is conv5 (32 channels x 8 positions) flattened; the layer is its mean over positions
    np.testing.assert_allclose(layers["conv5"], embedding.reshape(len(audio), 32, 8).mean(axis=2), rtol=1e-5,
                               atol=1e-6)


def test_aisfx_blocks_pool_to_the_documented_sizes(tones):
    from embeddings import aisfx

    spec = registry.get_spec("aisfx")
    module, model = spec.load()
    audio = tones.render(aisfx.SAMPLE_RATE, indices=[0, 60, 119])
    embedding, layers = _record(module, model, audio, spec.layers)
    assert [layers[n].shape for n in spec.layers] == [(3, 3072), (3, 3072), (3, 3072), (3, 6144)]
    # the embedding is the max over time of conv_block4's mean over frequency; the layer its mean over time
    assert np.all(embedding >= layers["net.conv_block4"].reshape(3, 512, 12).mean(axis=2) - 1e-5)


def test_pooling_rule_and_size_limit():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # (rows, C, T, F)
    flat, note = pool_output(x, max_dim=15)
    np.testing.assert_allclose(flat, x.mean(dim=2).reshape(2, 15).numpy())
    assert "flattened" in note
    pooled, note = pool_output(x, max_dim=14)  # 3 x 5 > 14: also averaged over frequency
    np.testing.assert_allclose(pooled, x.mean(dim=(2, 3)).numpy())
    assert "15 > max_dim 14" in note
    with pytest.raises(ParameterError, match="above the limit --max-dim 2"):
        pool_output(x, max_dim=2)


# ----------------------------------------------------------------------------- controls
class _Lookup(torch.nn.Module):
    """Maps each tone to a row of ``table`` by its nearest rendered tone (exact for the design's tones)."""

    def __init__(self, audio, table):
        super().__init__()
        self.audio = torch.from_numpy(audio)
        self.table = torch.from_numpy(table.astype(np.float32))

    def forward(self, audio):
        return self.table[torch.cdist(audio, self.audio).argmin(dim=1)]


@pytest.fixture
def probe_model(monkeypatch):
    """A registered torch HEAR module with two layers: ``factors`` outputs the tones' standardised
    factors (f1 on a log scale), ``noise`` a fixed random vector per tone; the embedding is both."""
    tones = GearConfig(**SMALL).tone_set()
    audio = tones.render(16000)
    theta = tones.theta().copy()
    theta[:, 0] = np.log(theta[:, 0])
    factors = (theta - theta.mean(0)) / theta.std(0)
    noise = np.random.default_rng(0).normal(size=(tones.n_sounds, 8))
    module = make_hear_module("gear_layered_fake")

    class Model(torch.nn.Module):
        sample_rate, scene_embedding_size, timestamp_embedding_size = 16000, 11, 11

        def __init__(self):
            super().__init__()
            self.factors = _Lookup(audio, factors)
            self.noise = _Lookup(audio, noise)

    def get_scene_embeddings(audio, model):
        return torch.cat([model.factors(audio), model.noise(audio)], dim=1)

    module.load_model = lambda model_file_path="": Model()
    module.get_scene_embeddings = get_scene_embeddings
    module.get_timestamp_embeddings = lambda audio, model: (get_scene_embeddings(audio, model)[:, None],
                                                            torch.zeros(len(audio), 1))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(registry.REGISTRY, "probe", ModelSpec(name="probe", module=module.__name__,
                                                              description="layer probe control",
                                                              layers=("factors", "noise")))


def test_depth_curve_shows_the_factor_layer_and_the_noise_layer(probe_model, tmp_path):
    from gear.layers import _curves

    results = run(["probe"], out_dir=tmp_path / "out", config=GearConfig(**SMALL), cache_dir=tmp_path / "cache",
                  layers="all", report=True)
    scores = {r.name: r.normalised for r in results}
    assert sorted(scores) == ["probe", "probe/factors", "probe/noise"]
    for factor in ("f1_hz", "alpha", "r"):
        assert abs(scores["probe/factors"][factor]) < 0.05, scores["probe/factors"]  # the oracle's own space
        assert 0.85 < scores["probe/noise"][factor] < 1.15, scores["probe/noise"]  # chance
    store = ResultsStore(tmp_path / "out")
    curve = _curves(store.load_results(), {n: store.info(n) for n in store.names()})["probe"]
    assert [(p["layer"], p["depth"]) for p in curve] == [("factors", 1), ("noise", 2)]
    assert curve[0]["normalised"]["mean"] < 0.05 < 0.85 < curve[1]["normalised"]["mean"]
    assert "Layer-wise probes" in (tmp_path / "out" / "report.html").read_text()
    rows = (tmp_path / "out" / "leaderboard.csv").read_text()
    assert "probe/factors" in rows and "probe/noise" in rows
    assert "probe/noise" in (tmp_path / "out" / "scores.csv").read_text()


def test_layer_caches_never_mix_with_the_embedding(probe_model, tmp_path):
    from gear.embedder import embed_model

    spec = registry.get_spec("probe")
    tones = GearConfig(**SMALL).tone_set()
    layered = embed_layers(spec, tones, ("factors", "noise"), cache_dir=tmp_path, batch_size=100)
    assert len(list(tmp_path.iterdir())) == 3  # the model's key and one per layer
    plain = embed_model(spec, tones, cache_dir=tmp_path, batch_size=100)
    assert plain.n_embedded == 0  # the embedding pass of --layers filled the model's own cache
    np.testing.assert_array_equal(plain.embedding, layered.embedding.embedding)
    again = embed_layers(spec, tones, ("factors", "noise"), cache_dir=tmp_path, batch_size=100)
    assert again.embedding.n_embedded == 0 and again.calls_per_batch == []
    for name in ("factors", "noise"):
        np.testing.assert_array_equal(again.layers[name].embedding, layered.layers[name].embedding)
        assert again.layers[name].embedding.shape[1] == (3 if name == "factors" else 8)


# ----------------------------------------------------------------------------- store names
@pytest.mark.parametrize("model,layer", [("naive", "log_mel"), ("aisfx", "net.conv_block1"), ("crepe-tiny", "conv5")])
def test_layer_names_round_trip(model, layer, tmp_path):
    from gear.results import ModelResult

    name = layer_name(model, layer)
    assert split_layer(name) == (model, layer) and parse_name(name) == (name, 1)
    assert "/" not in entry_folder_name(name) and entry_name(entry_folder_name(name)) == name
    store = ResultsStore.open(tmp_path)
    result = ModelResult(name=name, description="", isomap=np.zeros((3, 3)), log_ratios={}, scores=[])
    for entry in (name, model):
        staged = store.stage(entry, {"kind": "registry", "model": model})
        staged.write_result(ModelResult(**{**result.__dict__, "name": entry}), np.zeros((3, 2), np.float32))
        store.commit(put=[staged], refresh=False)
    assert store.names() == sorted([model, name])
    assert store.load_result(name).name == name and store.load_embedding(name).shape == (3, 2)
    store.commit(remove=[name], refresh=False)
    assert store.names() == [model]


@pytest.mark.parametrize("bad", ["a/b/c", "a%2Fb", "/b", "a/", "a/b c"])
def test_bad_layer_entry_names_are_refused(bad):
    with pytest.raises(ParameterError, match="is not valid"):
        parse_name(bad)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv,message", [
    (["--models", "logmel", "--layers", "all"],
     "model 'logmel' has no layers GEAR can probe (its network does not run as named torch modules); --layers "
     "works for: naive, crepe-full, crepe-tiny, aisfx"),
    (["--models", "naive", "--layers", "log_mel,conv9"], "model 'naive' has no layer 'conv9'; its layers are power, "
                                                         "log_mel, projection"),
])
def test_bad_layers_give_a_clear_error_without_traceback(argv, message, tmp_path, capsys):
    assert cli.main(["run", "--out", str(tmp_path / "x"), "-q"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x" / "models").exists()  # refused before any work


def test_a_submission_name_cannot_look_like_a_layer(tmp_path, capsys):
    assert cli.main(["add-submission", "gear_no_such_module", "--name", "naive/conv1", "--out", str(tmp_path),
                     "-q"]) == 2
    assert "reserves for a model's layers" in capsys.readouterr().err


def test_models_lists_layers(capsys):
    assert cli.main(["models", "--layers", "crepe-full"]) == 0
    assert capsys.readouterr().out.split() == ["1", "conv1", "2", "conv2", "3", "conv3", "4", "conv4", "5", "conv5"]
    assert cli.main(["models", "--layers", "mfcc"]) == 2
    assert "model 'mfcc' has no layers" in capsys.readouterr().err


def test_a_layer_that_does_not_run_is_named(tones):
    from embeddings import crepe

    model = crepe.load_model(capacity="tiny")
    audio = tones.render(crepe.SAMPLE_RATE, indices=[0, 1])
    with LayerRecorder(layer_modules(model, ["crepe.classifier"]), max_dim=65536) as recorder:
        crepe.get_scene_embeddings(torch.from_numpy(audio), model)
        with pytest.raises(ParameterError, match="layer 'crepe.classifier' did not run during the forward pass"):
            recorder.take(2)
    with pytest.raises(ParameterError, match="has no layer 'nope'"):
        layer_modules(model, ["nope"])
