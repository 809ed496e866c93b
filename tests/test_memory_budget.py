"""The embedding's memory budget (``max_memory``, ``gear run --max-memory``): calls sized from it,
outputs and cache independent of it, a clear error below one tone (issue 11)."""
import numpy as np
import pytest

import synth
from embeddings import registry
from gear import embedder
from gear.cli import main
from gear.cli.common import memory_size
from gear.embedder import embed_model, tone_bytes, tones_per_call
from gear.errors import ParameterError
from gear.validate import Padding


def _one_tone(grid, spec):
    """Bytes of one tone of ``spec`` on ``grid`` in the budget's estimate, and its padding."""
    module, model = spec.load()
    rate = int(model.sample_rate)
    padding = Padding.to_length(rate, grid.n_samples(rate), grid.n_samples(rate))
    return tone_bytes(padding.n_samples, int(model.scene_embedding_size)), padding


def test_tones_per_call_is_the_budget_over_the_tone_estimate():
    padding = Padding.to_length(16000, 16000, 16000)
    per_tone = tone_bytes(16000, 512)
    assert per_tone == 4 * 16000 * (1 + embedder.ACTIVATION_FACTOR) + 8 * 512
    assert tones_per_call(padding, 512, 10 * per_tone) == 10
    assert tones_per_call(padding, 512, 10 * per_tone + per_tone - 1) == 10
    assert tones_per_call(padding, 512, per_tone) == 1
    with pytest.raises(ParameterError, match=f"at least --max-memory {int(np.ceil(per_tone / 1e6))}MB"):
        tones_per_call(padding, 512, per_tone - 1)


def test_a_budget_below_a_shard_splits_the_calls_not_the_outputs_or_the_cache(tmp_path, fake_model):
    grid = synth.paper_grid(n_alpha=5, n_r=6)
    spec = registry.get_spec("fake")
    per_tone, _ = _one_tone(grid, spec)
    reference = embed_model(spec, grid, use_cache=False, batch_size=10, max_memory=100 * per_tone)
    assert fake_model == [4, 4, 10, 10, 10]  # the determinism check, then one call per shard
    fake_model.clear()
    split = embed_model(spec, grid, cache_dir=tmp_path, batch_size=10, max_memory=3 * per_tone + per_tone // 2)
    assert fake_model == [4, 4] + [3, 3, 3, 1] * 3  # 3 tones fit: each shard of 10 in calls of 3, 3, 3, 1
    np.testing.assert_array_equal(split.embedding, reference.embedding)
    assert sorted(p.name for p in tmp_path.rglob("batch_*.npy")) == [
        "batch_000000_000010.npy", "batch_000010_000020.npy", "batch_000020_000030.npy"]  # shards, whatever the budget
    fake_model.clear()
    again = embed_model(spec, grid, cache_dir=tmp_path, batch_size=10, max_memory=100 * per_tone)
    assert fake_model == [] and again.n_embedded == 0  # another budget: every shard from the cache
    np.testing.assert_array_equal(again.embedding, reference.embedding)


def test_a_budget_below_one_tone_is_refused_with_the_minimum(tmp_path, fake_model):
    grid = synth.paper_grid(n_alpha=3, n_r=3)
    spec = registry.get_spec("fake")
    per_tone, _ = _one_tone(grid, spec)
    with pytest.raises(ParameterError, match="too small for one tone of fake") as error:
        embed_model(spec, grid, cache_dir=tmp_path, batch_size=4, max_memory=per_tone - 1)
    minimum = int(str(error.value).rsplit("--max-memory ", 1)[1].rstrip("MB"))
    run = embed_model(spec, grid, cache_dir=tmp_path, batch_size=4, max_memory=minimum * 10**6)
    assert run.n_embedded == 3  # the stated minimum is enough
    with pytest.raises(ParameterError, match="max_memory"):
        embed_model(spec, grid, use_cache=False, max_memory=0)


def test_memory_sizes_parse_and_gear_run_refuses_a_budget_below_one_tone(tmp_path, capsys):
    assert memory_size("4GB") == 4 * 10**9 and memory_size("500MB") == 5 * 10**8
    assert memory_size("1.5G") == 1.5e9 and memory_size("2e9") == 2 * 10**9 and memory_size("1024") == 1024
    ram = embedder.default_max_memory() / embedder.DEFAULT_MEMORY_FRACTION
    assert abs(memory_size("50%") - ram / 2) <= 1
    with pytest.raises(Exception, match="memory size"):
        memory_size("lots")
    code = main(["run", "--models", "naive", "--n-alpha", "3", "--n-r", "3", "--neighbors", "3", "--isomap-neighbors", "4", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache"), "--max-memory", "1KB", "-q"])
    assert code != 0
    assert "too small for one tone of naive" in capsys.readouterr().err
