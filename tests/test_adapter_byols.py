"""(Hybrid) BYOL-S adapter: serab-byols checkpoints -> embeddings, end to end.

The published checkpoints cannot be obtained here, so checkpoints are written locally in
serab-byols' format (a ``torch.save``d state dict with its parameter names) with random
values, for the exact published architectures (Hybrid BYOL-S CvT 64/256/512, BYOL-S
AudioNTT2020 2048-d). References are independent: the front end against torchaudio's
formulas in numpy, the encoders against a functional forward pass written here from the
state dict (attention through ``scaled_dot_product_attention``), the normalisation against
serab-byols' statistics computed in numpy.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embeddings import byols
from embeddings.base import EmbeddingError

HYBRID_STAGES = [
    dict(emb_dim=64, depth=1, heads=1, mlp_mult=4),
    dict(emb_dim=256, depth=1, heads=3, mlp_mult=4),
    dict(emb_dim=512, depth=1, heads=6, mlp_mult=4),
]
HYBRID_NAME = "cvt_s1-d1-e64_s2-d1-e256_s3-d1-e512_BYOLAs64x96-osandbyolaloss6373-e100-bs256-lr0003-rs42.pth"
BYOLS_NAME = "default2048_BYOLAs64x96-2105311814-e100-bs256-lr0003-rs42.pth"


def _randomise(module, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("running_mean", ".b", ".bias")):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.2 - 0.1)
            elif name.endswith(".g"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                fan_in = max(1, int(np.prod(tensor.shape[1:])))
                tensor.copy_((torch.rand(tensor.shape, generator=generator) * 2 - 1) * (3.0 / fan_in) ** 0.5)
    return module.eval()


def write_checkpoints(folder):
    """Hybrid BYOL-S (CvT) and BYOL-S (AudioNTT2020) checkpoints with random values, under their
    published file names in ``folder``. Returns ``{model_name: (state dict, path)}``."""
    cvt = _randomise(byols.CvT(HYBRID_STAGES), 1)
    ntt = _randomise(byols.AudioNTT2020(d=2048), 2)
    torch.save(cvt.state_dict(), folder / HYBRID_NAME)
    torch.save(ntt.state_dict(), folder / BYOLS_NAME)
    return {"cvt": ({k: v.clone() for k, v in cvt.state_dict().items()}, folder / HYBRID_NAME),
            "default": ({k: v.clone() for k, v in ntt.state_dict().items()}, folder / BYOLS_NAME)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_checkpoints(tmp_path_factory.mktemp("byols"))


def _audio(n_sounds, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16000.0
    f = rng.uniform(100, 2000, size=(n_sounds, 1))
    tones = 0.5 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal((n_sounds, n_samples))
    return torch.from_numpy(tones.astype(np.float32))


# ----------------------------------------------------------------------------- front end
def _torchaudio_log_mel(audio):
    """torchaudio MelSpectrogram(16000, n_fft=1024, win_length=400, hop_length=160, n_mels=64,
    f_min=60, f_max=7800) + log(. + eps), by its formulas in numpy (float64)."""
    n_fft, win, hop = 1024, 400, 160
    padded = np.pad(np.asarray(audio, dtype=np.float64), (n_fft // 2, n_fft // 2), mode="reflect")
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left:left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    n_frames = 1 + len(audio) // hop
    power = np.stack([np.abs(np.fft.rfft(padded[t * hop:t * hop + n_fft] * window)) ** 2 for t in range(n_frames)], 1)
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    mel_to_hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    all_freqs = np.linspace(0, 8000, n_fft // 2 + 1)
    f_pts = mel_to_hz(np.linspace(hz_to_mel(60.0), hz_to_mel(7800.0), 66))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]
    fb = np.maximum(0.0, np.minimum(-slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]))  # (513, 64)
    return np.log(fb.T @ power + np.finfo(np.float32).eps)


def test_front_end_matches_torchaudio_formulas():
    audio = _audio(2, 4000, seed=1)
    ours = byols.LogMelSpectrogram()(audio).numpy()
    for i in range(2):
        expected = _torchaudio_log_mel(audio[i].numpy())
        assert ours[i].shape == expected.shape == (64, 26)
        np.testing.assert_allclose(ours[i], expected, rtol=0, atol=2e-3)


# ----------------------------------------------------------------------------- reference encoders
def _channel_ln(x, g, b):
    mean = x.mean(dim=1, keepdim=True)
    std = ((x - mean) ** 2).mean(dim=1, keepdim=True).sqrt()
    return (x - mean) / (std + 1e-5) * g + b


def _depthwise(x, s, prefix, stride):
    c = x.shape[1]
    x = F.conv2d(x, s[prefix + "net.0.weight"], None, stride=stride, padding=1, groups=c)
    x = F.batch_norm(x, s[prefix + "net.1.running_mean"], s[prefix + "net.1.running_var"],
                     s[prefix + "net.1.weight"], s[prefix + "net.1.bias"], training=False, eps=1e-5)
    return F.conv2d(x, s[prefix + "net.2.weight"])


def _reference_cvt(s, x):
    strides = (4, 2, 2)
    for stage in range(3):
        p = f"layers.{stage}."
        kernel = s[p + "0.weight"].shape[-1]
        x = F.conv2d(x, s[p + "0.weight"], s[p + "0.bias"], stride=strides[stage], padding=kernel // 2)
        x = _channel_ln(x, s[p + "1.g"], s[p + "1.b"])
        q_prefix = p + "2.layers.0."
        heads = s[q_prefix + "0.fn.to_q.net.2.weight"].shape[0] // 64
        y = _channel_ln(x, s[q_prefix + "0.norm.g"], s[q_prefix + "0.norm.b"])
        q = _depthwise(y, s, q_prefix + "0.fn.to_q.", 1)
        k, v = _depthwise(y, s, q_prefix + "0.fn.to_kv.", 2).chunk(2, dim=1)
        b, _, h, w = q.shape
        split = lambda t: t.reshape(b, heads, 64, -1).transpose(-1, -2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(q), split(k), split(v))  # (b, heads, hw, 64)
        out = out.transpose(-1, -2).reshape(b, heads * 64, h, w)
        x = F.conv2d(out, s[q_prefix + "0.fn.to_out.0.weight"], s[q_prefix + "0.fn.to_out.0.bias"]) + x
        y = _channel_ln(x, s[q_prefix + "1.norm.g"], s[q_prefix + "1.norm.b"])
        y = F.gelu(F.conv2d(y, s[q_prefix + "1.fn.net.0.weight"], s[q_prefix + "1.fn.net.0.bias"]))
        x = F.conv2d(y, s[q_prefix + "1.fn.net.3.weight"], s[q_prefix + "1.fn.net.3.bias"]) + x
    frames = x.permute(0, 3, 2, 1).reshape(x.shape[0], x.shape[3], -1)  # (b, time, mel*channel)
    return frames.mean(1) + frames.amax(1)


def _reference_ntt(s, x):
    for i in (0, 4, 8):
        x = F.conv2d(x, s[f"features.{i}.weight"], s[f"features.{i}.bias"], padding=1)
        x = F.batch_norm(x, s[f"features.{i + 1}.running_mean"], s[f"features.{i + 1}.running_var"],
                         s[f"features.{i + 1}.weight"], s[f"features.{i + 1}.bias"], training=False, eps=1e-5)
        x = F.max_pool2d(F.relu(x), 2, 2)
    x = x.permute(0, 3, 2, 1).reshape(x.shape[0], x.shape[3], -1)
    x = F.relu(F.linear(x, s["fc.0.weight"], s["fc.0.bias"]))
    x = F.relu(F.linear(x, s["fc.3.weight"], s["fc.3.bias"]))
    return x.mean(1) + x.amax(1)


def _serab_scene_reference(state, audio, encoder):
    """serab-byols get_scene_embeddings: batch statistics (mean of per-sound means and stds)."""
    lms = [_torchaudio_log_mel(a) for a in audio.numpy()]
    mean = np.mean([m.mean() for m in lms])
    std = np.mean([m.std(ddof=1) for m in lms])
    x = torch.from_numpy(((np.stack(lms) - mean) / std).astype(np.float32))[:, None]
    with torch.no_grad():
        return encoder(state, x)


@pytest.mark.parametrize("name, reference", [("cvt", _reference_cvt), ("default", _reference_ntt)])
def test_checkpoint_to_scene_embedding_matches_the_reference(checkpoints, name, reference):
    state, path = checkpoints[name]
    model = byols.load_model(str(path))
    assert model.model_name == name and model.weights_file == str(path)
    assert model.sample_rate == 16000 and model.scene_embedding_size == 2048
    for key, value in state.items():  # the loaded tensors are the file's
        assert torch.equal(model.encoder.state_dict()[key], value), key
    audio = _audio(3, 2400, seed=2)  # 150 ms: no padding for either encoder
    ours = byols.get_scene_embeddings(audio, model)
    expected = _serab_scene_reference(state, audio, reference)
    assert ours.shape == (3, 2048) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-4 * float(expected.abs().max()))
    torch.testing.assert_close(byols.get_scene_embeddings(audio, model), ours, rtol=0, atol=0)


def test_a_perturbed_checkpoint_changes_the_embedding(checkpoints, tmp_path):
    state, _ = checkpoints["cvt"]
    perturbed = {k: v.clone() for k, v in state.items()}
    perturbed["layers.1.2.layers.0.0.fn.to_kv.net.2.weight"] *= 2.0
    torch.save(perturbed, tmp_path / HYBRID_NAME)
    audio = _audio(2, 1024, seed=3)
    a = byols.get_scene_embeddings(audio, byols.load_model(str(checkpoints["cvt"][1])))
    b = byols.get_scene_embeddings(audio, byols.load_model(str(tmp_path / HYBRID_NAME)))
    assert not torch.allclose(a, b)


def test_cvt_config_is_read_from_the_checkpoint(checkpoints):
    stages = byols.cvt_config_from_state_dict(checkpoints["cvt"][0])
    assert [(s["emb_dim"], s["depth"], s["heads"], s["mlp_mult"], s["emb_kernel"]) for s in stages] == [
        (64, 1, 1, 4, 7), (256, 1, 3, 4, 3), (512, 1, 6, 4, 3)]


# ----------------------------------------------------------------------------- normalisation and padding
def test_batch_normalisation_depends_on_the_batch_and_the_alternatives_do_not(checkpoints):
    path = str(checkpoints["cvt"][1])
    tone = _audio(1, 1024, seed=4)
    loud = _audio(1, 1024, seed=5) * 2.0
    for normalization, norm_stats, depends in (("batch", None, True), ("sound", None, False), ("batch", (-5.0, 4.0), False)):
        model = byols.load_model(path, normalization=normalization, norm_stats=norm_stats)
        alone = byols.get_scene_embeddings(tone, model)
        paired = byols.get_scene_embeddings(torch.cat([tone, loud]), model)[:1]
        change = float((alone - paired).abs().max() / alone.abs().max())
        assert (change > 1e-3) if depends else (change < 1e-5), (normalization, norm_stats, change)
    model = byols.load_model(path, norm_stats=(-5.0, 4.0))
    lms = (_torchaudio_log_mel(tone[0].numpy()) + 5.0) / 4.0
    with torch.no_grad():
        expected = _reference_cvt(checkpoints["cvt"][0], torch.from_numpy(lms.astype(np.float32))[None, None])
    torch.testing.assert_close(byols.get_scene_embeddings(tone, model), expected, rtol=0,
                               atol=2e-4 * float(expected.abs().max()))


def test_short_tones_are_padded_symmetrically_for_audiontt(checkpoints):
    model = byols.load_model(str(checkpoints["default"][1]))
    assert model.min_n_samples == 1120 and byols.load_model(str(checkpoints["cvt"][1])).min_n_samples == 513
    tones = _audio(2, 1024, seed=6)  # 64 ms: 7 frames, AudioNTT2020 needs 8
    padded = F.pad(tones, (48, 48))
    ours = byols.get_scene_embeddings(tones, model)
    assert bool(torch.isfinite(ours).all())
    torch.testing.assert_close(ours, byols.get_scene_embeddings(padded, model), rtol=0, atol=0)


# ----------------------------------------------------------------------------- timestamps
def test_timestamp_embeddings_follow_serab_byols(checkpoints):
    state, path = checkpoints["cvt"]
    model = byols.load_model(str(path))
    audio = _audio(2, 2000, seed=7)  # 125 ms
    embeddings, timestamps = byols.get_timestamp_embeddings(audio, model)
    n_frames = 1 + 2000 // 800
    assert embeddings.shape == (2, n_frames, 2048) and embeddings.dtype == torch.float32
    assert timestamps.shape == (2, n_frames) and timestamps.dtype == torch.float32
    np.testing.assert_allclose(timestamps[1].numpy(), [0.0, 50.0, 100.0])
    # serab-byols: 1 s frames (8 000 zeros each side), stats over all frames divided by their count
    padded = np.pad(audio.numpy(), ((0, 0), (8000, 8000)))
    lms = np.stack([_torchaudio_log_mel(padded[i, k * 800:k * 800 + 16000]) for i in range(2) for k in range(n_frames)])
    mean, std = lms.mean() / len(lms), lms.std(ddof=1) / len(lms)
    x = torch.from_numpy(((lms - mean) / std).astype(np.float32))[:, None]
    with torch.no_grad():
        expected = _reference_cvt(state, x).reshape(2, n_frames, -1)
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=5e-4 * float(expected.abs().max()))


# ----------------------------------------------------------------------------- errors and registry
def test_bad_inputs_raise_parameter_errors(checkpoints, tmp_path):
    with pytest.raises(EmbeddingError, match="local serab-byols checkpoint"):
        byols.load_model("")
    with pytest.raises(EmbeddingError, match="not found"):
        byols.load_model(str(tmp_path / "missing.pth"))
    torch.save({"something.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(EmbeddingError, match="neither a serab-byols CvT"):
        byols.load_model(str(tmp_path / "other.pth"))
    with pytest.raises(EmbeddingError, match="holds a 'cvt' encoder"):
        byols.load_model(str(checkpoints["cvt"][1]), model_name="default")
    broken = dict(checkpoints["default"][0])
    broken["fc.3.weight"] = torch.zeros(2048, 100)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(EmbeddingError, match="does not fit"):
        byols.load_model(str(tmp_path / "broken.pth"))
    with pytest.raises(EmbeddingError, match="normalization"):
        byols.load_model(str(checkpoints["cvt"][1]), normalization="global")
    with pytest.raises(EmbeddingError, match="norm_stats"):
        byols.load_model(str(checkpoints["cvt"][1]), norm_stats=(0.0, -1.0))
    model = byols.load_model(str(checkpoints["cvt"][1]))
    with pytest.raises(EmbeddingError, match="NaN"):
        byols.get_scene_embeddings(torch.full((1, 2000), float("nan")), model)
    with pytest.raises(EmbeddingError, match="hop_ms"):
        byols.get_timestamp_embeddings(torch.zeros(1, 2000), model, hop_ms=-1)


def test_registry_entries_find_the_checkpoints(checkpoints, monkeypatch):
    from embeddings.registry import get_spec

    monkeypatch.delenv("GEAR_MODELS_DIR", raising=False)
    folder = checkpoints["cvt"][1].parent
    models_dir = folder.parent / "models"
    (models_dir / "byols").mkdir(parents=True, exist_ok=True)
    for name in (HYBRID_NAME, BYOLS_NAME):
        target = models_dir / "byols" / name
        if not target.exists():
            target.write_bytes((folder / name).read_bytes())
    for spec_name, encoder in (("hybrid-byols", "cvt"), ("byols", "default")):
        spec = get_spec(spec_name)
        ok, where = spec.can_run(models_dir)
        assert ok and where.endswith(HYBRID_NAME if encoder == "cvt" else BYOLS_NAME)
        module, model = spec.load(models_dir)
        assert module is byols and model.model_name == encoder
