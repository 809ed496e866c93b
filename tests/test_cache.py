"""Embedding cache: reuse, resumption, corruption detection, keys."""
import numpy as np
import pytest

import synth
from embeddings import registry
from gear.embedder import ModelSource, embed, embed_model
from gear.cache import CorruptCacheWarning, EmbeddingCache, cache_key, fingerprint_path


def test_reused_on_rerun(tmp_path, fake_model):
    grid = synth.paper_grid(n_alpha=5, n_r=6)
    spec = registry.get_spec("fake")
    first = embed_model(spec, grid, cache_dir=tmp_path, batch_size=7)
    assert first.n_embedded == 5
    assert fake_model == [4, 4, 7, 7, 7, 7, 2]  # the determinism check (4 tones twice), then 5 batches
    fake_model.clear()
    second = embed_model(spec, grid, cache_dir=tmp_path, batch_size=7)
    assert fake_model == [] and second.n_embedded == 0  # nothing recomputed, the model not even loaded
    np.testing.assert_array_equal(first.embedding, second.embedding)


def test_interrupted_run_resumes_missing_batches_only(tmp_path, fake_model):
    grid = synth.paper_grid(n_alpha=5, n_r=6)
    spec = registry.get_spec("fake")
    module, model = spec.load()
    key, meta = cache_key(test="resume")
    cache = EmbeddingCache(tmp_path, key, meta)

    class Interrupt(Exception):
        pass

    def stop_after_two(iterable):
        for k, item in enumerate(iterable):
            if k == 2:
                raise Interrupt
            yield item

    source = ModelSource("registry", "fake")

    def run(**kwargs):
        return embed(source, grid, loaded=(module, model), check_deterministic=False, **kwargs)

    with pytest.raises(Interrupt):
        run(batch_size=7, cache=cache, progress=lambda stream, total: stop_after_two(stream))
    assert fake_model == [7, 7, 7]  # the third batch was computed when the interrupt came, not stored
    fake_model.clear()
    full = run(batch_size=7, cache=cache)
    assert fake_model == [7, 7, 2] and full.n_embedded == 3  # only the three missing batches
    fake_model.clear()
    reference = run(batch_size=30)
    np.testing.assert_allclose(full.embedding, reference.embedding, rtol=1e-6)


def test_corrupt_entry_detected_and_recomputed(tmp_path, fake_model):
    grid = synth.paper_grid(n_alpha=3, n_r=4)
    spec = registry.get_spec("fake")
    first = embed_model(spec, grid, cache_dir=tmp_path, batch_size=4)
    batch_file = sorted(tmp_path.rglob("batch_000004_000008.npy"))[0]
    data = bytearray(batch_file.read_bytes())
    data[-3] ^= 0xFF
    batch_file.write_bytes(bytes(data))
    fake_model.clear()
    with pytest.warns(CorruptCacheWarning, match="checksum mismatch"):
        again = embed_model(spec, grid, cache_dir=tmp_path, batch_size=4)
    assert fake_model == [4, 4, 4]  # determinism check, then the one corrupt batch
    np.testing.assert_array_equal(first.embedding, again.embedding)


def test_truncated_entry_recomputed(tmp_path, fake_model):
    grid = synth.paper_grid(n_alpha=3, n_r=4)
    spec = registry.get_spec("fake")
    embed_model(spec, grid, cache_dir=tmp_path, batch_size=4)
    batch_file = sorted(tmp_path.rglob("batch_000000_000004.npy"))[0]
    batch_file.write_bytes(batch_file.read_bytes()[:20])
    fake_model.clear()
    with pytest.warns(CorruptCacheWarning):
        embed_model(spec, grid, cache_dir=tmp_path, batch_size=4)
    assert fake_model == [4, 4, 4]  # determinism check, then the one truncated batch


def test_key_changes_with_tone_set_and_weights(tmp_path):
    a = synth.paper_grid(n_alpha=3, n_r=3)
    b = synth.paper_grid(n_alpha=3, n_r=3, seed=1)
    assert cache_key(model="m", tone_set=a.config_hash())[0] != cache_key(model="m", tone_set=b.config_hash())[0]
    w1, w2 = tmp_path / "w1.bin", tmp_path / "w2.bin"
    w1.write_bytes(b"abc")
    w2.write_bytes(b"abd")
    assert fingerprint_path(w1) != fingerprint_path(w2)
    assert fingerprint_path(None) == "none"


def test_no_temporary_files_left(tmp_path, fake_model):
    grid = synth.paper_grid(n_alpha=3, n_r=3)
    embed_model(registry.get_spec("fake"), grid, cache_dir=tmp_path, batch_size=4)
    assert not list(tmp_path.rglob("*.tmp"))
    assert list(tmp_path.rglob("meta.json"))
