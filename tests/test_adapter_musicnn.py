"""musicnn adapter (TensorFlow): upstream extractor as reference, restore check, float16 overflow."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

for _name in ("tensorflow", "tf_keras", "musicnn"):
    pytest.importorskip(_name, reason="musicnn needs tensorflow-cpu, tf-keras and musicnn (--no-deps)")

from embeddings import EmbeddingError  # noqa: E402
from embeddings import musicnn as adapter  # noqa: E402

pytestmark = pytest.mark.slow
SR = adapter.SAMPLE_RATE


@pytest.fixture(scope="module")
def model():
    return adapter.load_model()


def harmonic(f_hz, n_samples, amplitude):
    t = np.arange(n_samples) / SR
    return (amplitude * (np.sin(2 * np.pi * f_hz * t) + 0.3 * np.sin(2 * np.pi * 3 * f_hz * t))).astype(np.float32)


def run_upstream(tmp_path, **sounds):
    """musicnn's own extractor on each sound (written to a wav), in one subprocess: importing
    musicnn.extractor disables eager execution for the whole process."""
    import soundfile as sf

    for name, wav in sounds.items():
        sf.write(str(tmp_path / f"{name}.wav"), wav, SR, subtype="FLOAT")
    code = textwrap.dedent(f"""
        import numpy as np
        from musicnn.extractor import extractor, batch_data
        for name in {list(sounds)!r}:
            path = {str(tmp_path)!r} + '/' + name
            taggram, tags, features = extractor(path + '.wav', model='MTT_musicnn', extract_features=True)
            batch, _ = batch_data(path + '.wav', 187, 187)
            np.savez(path + '.npz', penultimate=features['penultimate'], max_pool=features['max_pool'],
                     batch=batch.astype(np.float32))
    """)
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, timeout=600)
    return {name: np.load(tmp_path / f"{name}.npz") for name in sounds}


def test_equals_upstream_extractor_and_upstream_overflows(model, tmp_path):
    quiet = harmonic(220.0, int(6.5 * SR), 0.01)  # mel values stay below float16 overflow
    loud = harmonic(220.0, int(3.5 * SR), 0.5)
    results = run_upstream(tmp_path, quiet=quiet, loud=loud)
    upstream, upstream_loud = results["quiet"], results["loud"]
    spec = adapter.log_mel(quiet[None])[0]
    np.testing.assert_array_equal(spec[: 2 * 187], upstream["batch"].reshape(-1, 96))
    max_pool = adapter.get_timestamp_embeddings(torch.from_numpy(quiet[None]), adapter.load_model(layer="max_pool"))[0]
    np.testing.assert_allclose(max_pool[0].numpy(), upstream["max_pool"], rtol=1e-4, atol=1e-4)
    emb, ts = adapter.get_timestamp_embeddings(torch.from_numpy(quiet[None]), model)
    assert emb.shape == (1, 2, 200)
    np.testing.assert_allclose(ts[0].numpy(), (np.arange(2) * 187 + 93) * 256 / SR * 1000)
    # upstream's loop re-appends the first batch's 'penultimate' for every later patch (it
    # unpacks the new value into another name): only its first patch can be compared
    np.testing.assert_allclose(emb[0, 0].numpy(), upstream["penultimate"][0], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(upstream["penultimate"][1], upstream["penultimate"][0])

    assert not np.isfinite(upstream_loud["batch"]).all()  # the float16 trap
    assert not np.isfinite(upstream_loud["max_pool"]).all()
    ours = adapter.get_scene_embeddings(torch.from_numpy(loud[None]), model)
    assert torch.isfinite(ours).all()
    finite = np.isfinite(upstream_loud["batch"][0])
    np.testing.assert_array_equal(adapter.log_mel(loud[None])[0][:187][finite], upstream_loud["batch"][0][finite])


def test_unrestored_weights_are_detected(model):
    import tensorflow as tf

    with model._graph.as_default():
        variables = tf.compat.v1.global_variables()
        adapter.verify_restored(model._session, variables, model.prefix)  # restored: passes
        model._session.run(tf.compat.v1.variables_initializer(variables))  # what a failed restore leaves
        with pytest.raises(EmbeddingError, match="not restored"):
            adapter.verify_restored(model._session, variables, model.prefix)


def test_wrong_checkpoint_folder(tmp_path):
    with pytest.raises(EmbeddingError, match="no musicnn checkpoint"):
        adapter.load_model(str(tmp_path))


def test_short_tones(model):
    n = 1024
    tones = np.stack([harmonic(f, n, 0.5) * np.hanning(n).astype(np.float32) for f in (190.0, 370.0)])
    emb, ts = adapter.get_timestamp_embeddings(torch.from_numpy(tones), model)
    assert emb.shape == (2, 1, 200) and emb.dtype == torch.float32 and torch.isfinite(emb).all()
    np.testing.assert_allclose(ts.numpy(), n / 2 / SR * 1000)
    padded = np.zeros((1, adapter.WINDOW_SAMPLES), np.float32)
    start = (adapter.WINDOW_SAMPLES - n) // 2
    padded[0, start : start + n] = tones[1]
    np.testing.assert_allclose(adapter.get_scene_embeddings(torch.from_numpy(padded), model)[0].numpy(),
                               emb[1, 0].numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(emb[0].numpy(), emb[1].numpy(), rtol=1e-3)
