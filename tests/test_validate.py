"""gear.validate: HEAR 2021 contract checks, the padding rule, batch dependence, compat shim."""
import gear.errors
import importlib
import sys
import warnings

import numpy as np
import pytest
import torch

import synth
from conftest import make_hear_module
from gear import validate
from gear.errors import GearError
from gear.validate import BatchDependenceWarning, HEARComplianceWarning, SubmissionError


# ----------------------------------------------------------------------------- helpers
def spectral(audio, dim=8):
    """A batch-independent embedding (band means of the magnitude spectrum)."""
    spectrum = torch.abs(torch.fft.rfft(audio, dim=-1))
    return torch.log(torch.stack([c.mean(-1) for c in torch.tensor_split(spectrum, dim, dim=-1)], dim=-1) + 1e-6)


def framed_module(name, *, hop_ms=25.0, window=400, timestamps=None, sample_rate=16000, dim=8):
    """A HEAR module with real framing: frames of ``window`` samples centred at k * hop
    (k * hop <= duration), so that its timestamps are correct by construction; ``timestamps``
    (a function of the correct ones, in ms, and the duration) makes them wrong on purpose."""
    module = make_hear_module(name, sample_rate=sample_rate, dim=dim)

    def get_timestamp_embeddings(audio, model):
        n = audio.shape[1]
        duration_ms = 1000.0 * n / sample_rate
        centres = np.arange(0.0, duration_ms + 1e-9, hop_ms)
        padded = torch.nn.functional.pad(audio, (window // 2, window // 2))
        starts = np.round(centres * sample_rate / 1000.0).astype(int)
        frames = torch.stack([padded[:, s:s + window] for s in starts], dim=1)
        emb = spectral(frames.reshape(-1, window), dim).reshape(audio.shape[0], len(starts), dim).float()
        stamps = centres if timestamps is None else timestamps(centres, duration_ms)
        return emb, torch.tensor(np.tile(stamps, (audio.shape[0], 1)), dtype=torch.float32)

    module.get_timestamp_embeddings = get_timestamp_embeddings
    return module


def load(module):
    return module, module.load_model()


def small_set():
    return synth.paper_grid(n_alpha=4, n_r=4)


# ----------------------------------------------------------------------------- happy path
def test_correct_module_passes_with_its_attributes():
    module = framed_module("gear_ok_module", hop_ms=25.0)
    report = validate.validate_submission(*load(module))
    assert (report.sample_rate, report.scene_embedding_size, report.timestamp_embedding_size) == (16000, 8, 8)
    assert report.timestamp_hop_ms == pytest.approx(25.0, abs=1e-3)
    assert report.framework == "torch" and report.warnings == []


def test_validator_feeds_float32_torch_at_the_model_rate():
    seen = []
    module = make_hear_module("gear_seen_module", sample_rate=22050)
    base = module.get_scene_embeddings

    def get_scene_embeddings(audio, model):
        seen.append((type(audio), audio.dtype, tuple(audio.shape), float(audio.abs().max())))
        return base(audio, model)

    module.get_scene_embeddings = get_scene_embeddings
    validate.validate_submission(*load(module))
    # the HEAR validator's scene check: 4 sounds of 2.74 s of white noise in [-1, 1]
    assert (torch.Tensor, torch.float32, (4, int(2.74 * 22050))) == seen[-1][:3]
    assert 0.9 < seen[-1][3] <= 1.0


# ----------------------------------------------------------------------------- contract failures
def _scene(fn):
    def make(name):
        module = make_hear_module(name)
        base = module.get_scene_embeddings
        module.get_scene_embeddings = lambda audio, model: fn(base(audio, model), audio)
        return module

    return make


def _model_attr(name_, value, *, delete=False):
    def make(name):
        module = make_hear_module(name)
        base = module.load_model

        def load_model(model_file_path=""):
            model = base(model_file_path)
            if delete:
                delattr(model, name_)
            else:
                setattr(model, name_, value)
            return model

        module.load_model = load_model
        return module

    return make


def _raise(exception):
    def fn(out, audio):
        raise exception

    return fn


def _with_nan(out, audio):
    out = out.clone()
    out[0, 3] = float("nan")
    return out


def _with_inf(out, audio):
    out = out.clone()
    out[1, 0] = float("inf")
    return out


CONTRACT_CASES = {
    "float64": (_scene(lambda out, audio: out.double()), ["get_scene_embeddings", "float32", "torch.float64", ".float()"]),
    "numpy-float64": (_scene(lambda out, audio: out.numpy().astype(np.float64)), ["float32 scene embeddings as a torch.Tensor", "NumPy array of dtype float64", "not HEAR-compliant", "torch.from_numpy(array)"]),
    "list": (_scene(lambda out, audio: out.tolist()), ["float32 scene embeddings as a torch.Tensor", "a list"]),
    "wrong-shape": (_scene(lambda out, audio: torch.cat([out, out[:, :1]], 1)), ["(n_sounds, scene_embedding_size) = (4, 8)", "shape (4, 9)", "scene_embedding_size = 9"]),
    "transposed": (_scene(lambda out, audio: out.T.contiguous()), ["shape (8, 4)", "transposed"]),
    "frames-not-pooled": (_scene(lambda out, audio: out[:, None, :].repeat(1, 3, 1)), ["shape (4, 3, 8)", "pool"]),
    "nan": (_scene(_with_nan), ["get_scene_embeddings", "finite", "1 NaN value(s) of 32"]),
    "inf": (_scene(_with_inf), ["finite", "1 Inf value(s)"]),
    "raises": (_scene(_raise(RuntimeError("boom inside"))), ["get_scene_embeddings", "RuntimeError: boom inside", "raised inside the submission"]),
    "missing-attribute": (_model_attr("scene_embedding_size", None, delete=True), ["load_model", "int attribute 'scene_embedding_size'", "without 'scene_embedding_size'"]),
    "float-attribute": (_model_attr("timestamp_embedding_size", 8.0), ["model.timestamp_embedding_size to be an int", "8.0 (float)", "int(8.0)"]),
    "bool-attribute": (_model_attr("scene_embedding_size", True), ["to be an int", "True (bool)"]),
    "bad-sample-rate": (lambda name: make_hear_module(name, sample_rate=8000), ["load_model", "sample_rate in [16000, 22050, 44100, 48000]", "got 8000", "resample"]),
    "string-sample-rate": (_model_attr("sample_rate", "16000"), ["model.sample_rate to be an int", "'16000' (str)"]),
}


@pytest.mark.parametrize("case", sorted(CONTRACT_CASES))
def test_each_contract_breach_has_its_message(case):
    make, fragments = CONTRACT_CASES[case]
    module = make(f"gear_bad_{case.replace('-', '_')}")
    with pytest.raises(SubmissionError) as info:
        validate.validate_submission(*load(module))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Likely fix:" in message and "expected" in message
    assert isinstance(info.value, GearError)


def test_exception_inside_submission_is_chained():
    make, _ = CONTRACT_CASES["raises"]
    with pytest.raises(SubmissionError) as info:
        validate.validate_submission(*load(make("gear_bad_chained")))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.function.endswith("get_scene_embeddings")


def test_submission_error_survives_pickling():
    import pickle

    error = SubmissionError("m.get_scene_embeddings", "float32", "float64", "cast")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.fix == "cast"


# ----------------------------------------------------------------------------- loading
def test_missing_function_named(monkeypatch):
    module = make_hear_module("gear_no_timestamps")
    del module.get_timestamp_embeddings
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(SubmissionError, match=r"gear_no_timestamps\.get_timestamp_embeddings: expected a function"):
        validate.import_submission(module.__name__)


def test_not_callable_function_named(monkeypatch):
    module = make_hear_module("gear_not_callable")
    module.get_scene_embeddings = 3
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(SubmissionError, match="expected a callable; got a int"):
        validate.import_submission(module.__name__)


@pytest.mark.parametrize(
    "name,fragments",
    [
        ("gear_no_such_module_xyz", ["import gear_no_such_module_xyz", "ModuleNotFoundError", "install the submission"]),
        ("path/to/module.py", ["a Python import name", "not a file path"]),
        ("", ["a Python import name"]),
    ],
)
def test_unimportable_module(name, fragments):
    with pytest.raises(SubmissionError) as info:
        validate.load_submission(name)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_import_time_error_and_missing_dependency(tmp_path, monkeypatch):
    (tmp_path / "gear_broken_at_import.py").write_text("raise RuntimeError('bad install')\n")
    (tmp_path / "gear_needs_dependency.py").write_text("import gear_absent_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SubmissionError, match="RuntimeError: bad install"):
        validate.import_submission("gear_broken_at_import")
    with pytest.raises(SubmissionError, match="needs the package 'gear_absent_dependency_xyz'"):
        validate.import_submission("gear_needs_dependency")


def test_load_model_needing_weights_and_weights_reaching_it(monkeypatch, tmp_path):
    received = []
    module = make_hear_module("gear_needs_weights")
    base = module.load_model

    def load_model(model_file_path):
        received.append(model_file_path)
        if not model_file_path.endswith(".good"):
            raise ValueError("not my format")
        return base(model_file_path)

    module.load_model = load_model
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(SubmissionError, match="pass --weights PATH"):
        validate.load_submission(module.__name__)
    bad = tmp_path / "w.bad"
    with pytest.raises(SubmissionError) as info:
        validate.load_submission(module.__name__, bad)
    assert str(bad) in str(info.value) and "ValueError: not my format" in str(info.value)
    good = tmp_path / "w.good"
    validate.load_submission(module.__name__, good)
    assert received[-1] == str(good) and isinstance(received[-1], str)


# ----------------------------------------------------------------------------- timestamps
TIMESTAMP_CASES = {
    "seconds": (lambda c, d: c / 1000.0, ["look like seconds", "multiply by 1000"]),
    "decreasing": (lambda c, d: c[::-1].copy(), ["strictly increasing"]),
    "irregular": (lambda c, d: c + np.where(np.arange(c.size) % 2, 3.0, 0.0), ["regular timestamps", "deviating"]),
    "past-the-end": (lambda c, d: c + 30.0, ["inside the audio", "<= 1070.00 ms"]),
    "negative": (lambda c, d: c - 5.0, ["timestamps >= 0 ms"]),
    "ends-early": (lambda c, d: c * 0.5, ["within two hops", "of the end"]),
}


@pytest.mark.parametrize("case", sorted(TIMESTAMP_CASES))
def test_timestamp_breaches(case):
    change, fragments = TIMESTAMP_CASES[case]
    module = framed_module(f"gear_ts_{case.replace('-', '_')}", timestamps=change)
    with pytest.raises(SubmissionError) as info:
        validate.validate_submission(*load(module))
    for fragment in fragments + ["get_timestamp_embeddings"]:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_timestamp_shape_dtype_and_frames():
    module = framed_module("gear_ts_shapes")
    model = module.load_model()
    audio = np.zeros((2, 16000), np.float32)
    good = module.get_timestamp_embeddings
    cases = [
        (lambda a, m: (good(a, m)[0].double(), good(a, m)[1]), "dtype torch.float64"),
        (lambda a, m: (good(a, m)[0], good(a, m)[1][:, :-1]), "timestamps of shape (n_sounds, n_timestamps)"),
        (lambda a, m: (good(a, m)[0][:, :0], good(a, m)[1][:, :0]), "at least one frame"),
        (lambda a, m: good(a, m)[0], "a tuple (embeddings, timestamps)"),
        (lambda a, m: (good(a, m)[0][0], good(a, m)[1]), "embeddings of shape (n_sounds, n_timestamps, timestamp_embedding_size)"),
    ]
    for function, fragment in cases:
        module.get_timestamp_embeddings = function
        with pytest.raises(SubmissionError) as info:
            validate.call_timestamp_embeddings(module, model, audio)
        assert fragment in str(info.value), (fragment, str(info.value))


def test_soft_hear_checks_warn():
    module = framed_module("gear_ts_long_hop", hop_ms=100.0, window=1600)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = validate.validate_submission(*load(module))
    messages = [str(w.message) for w in caught if issubclass(w.category, HEARComplianceWarning)]
    assert any("mean hop 100.0 ms > 50 ms" in m for m in messages)
    # 1.07 s of audio, frames every 100 ms: the last centre is 1000 ms, 70 ms before the end
    assert any("timestamps end at 1000.0 ms for 1070.0 ms" in m for m in messages)
    assert set(report.warnings) == set(messages)


# ----------------------------------------------------------------------------- padding rule
def windowed_module(name, *, min_samples, failure="raise", calls=None):
    """Fails (raises, or returns NaN as a mean over zero frames) below ``min_samples``."""
    module = make_hear_module(name)

    def get_scene_embeddings(audio, model):
        if calls is not None:
            calls.append(audio.numpy().copy())
        if audio.shape[1] < min_samples:
            if failure == "raise":
                raise ValueError(f"input shorter than the {min_samples}-sample window")
            return torch.full((audio.shape[0], 8), float("nan"))
        return spectral(audio).float()

    module.get_scene_embeddings = get_scene_embeddings
    return module


def test_native_length_is_kept_when_it_works():
    tone_set = small_set()
    padding = validate.find_effective_duration(*load(make_hear_module("gear_pad_native")), tone_set)
    assert not padding.padded and padding.n_samples == 1024 and padding.duration_s == pytest.approx(0.064)


@pytest.mark.parametrize("failure,min_samples", [("raise", 3200), ("nan", 2048)])
def test_padding_to_the_first_ladder_length_that_works(failure, min_samples):
    calls = []
    tone_set = small_set()
    module = windowed_module(f"gear_pad_{failure}", min_samples=min_samples, failure=failure, calls=calls)
    padding = validate.find_effective_duration(*load(module), tone_set)
    expected_s = min(d for d in validate.PAD_LADDER_S if round(d * 16000) >= min_samples)
    assert padding.duration_s == pytest.approx(expected_s)
    assert padding.n_samples == round(expected_s * 16000)
    # symmetric zero padding around the unchanged tone
    left = (padding.n_samples - 1024) // 2
    assert (padding.pad_left, padding.pad_right) == (left, padding.n_samples - 1024 - left)
    audio = calls[-1]
    tones = tone_set.render(16000, indices=[0, tone_set.n_sounds - 1])
    np.testing.assert_array_equal(audio[:, left:left + 1024], tones)
    assert not audio[:, :left].any() and not audio[:, left + 1024:].any()
    assert "64.0 ms tone failed" in padding.reason and f"{1000 * expected_s:.0f} ms" in padding.reason


def test_render_tones_puts_the_odd_sample_at_the_end():
    tone_set = small_set()
    padding = validate.Padding.to_length(16000, 1024, 1031)
    audio = validate.render_tones(tone_set, padding, indices=[1])
    assert (padding.pad_left, padding.pad_right) == (3, 4)
    np.testing.assert_array_equal(audio[:, 3:1027], tone_set.render(16000, indices=[1]))


def test_no_length_works():
    module = windowed_module("gear_pad_never", min_samples=10 ** 7)
    with pytest.raises(SubmissionError) as info:
        validate.find_effective_duration(*load(module), small_set())
    assert "every padded length failed" in str(info.value) and "0.1, 0.25, 0.5, 1, 2 s" in str(info.value)


@pytest.mark.parametrize("convert,message", [
    (lambda out: out.double(), "torch.float64"),
    (lambda out: out.numpy(), "not HEAR-compliant"),  # a NumPy output is a type error, not a length problem
])
def test_wrong_dtype_or_type_is_not_retried_with_padding(convert, message):
    calls = []
    module = make_hear_module("gear_pad_dtype")
    module.get_scene_embeddings = lambda audio, model: calls.append(audio.shape) or convert(spectral(audio))
    with pytest.raises(SubmissionError, match=message):
        validate.find_effective_duration(*load(module), small_set())
    assert len(calls) == 1


# ----------------------------------------------------------------------------- batch dependence
def batch_normalising(audio):
    feats = spectral(audio)
    return (feats - feats.mean(0, keepdim=True)) / (feats.std(0, keepdim=True) + 1e-3)


def test_batch_normalising_submission_warns():
    tone_set = synth.paper_grid(n_alpha=5, n_r=5)
    module = make_hear_module("gear_batchnorm", embed=batch_normalising)
    model = module.load_model()
    padding = validate.Padding.to_length(16000, 1024, 1024)
    with pytest.warns(BatchDependenceWarning, match="normalises over the batch"):
        result = validate.check_batch_dependence(module, model, tone_set, padding)
    assert result.batch_dependent and result.max_difference > 1e-2 and len(result.indices) == 8


def test_batch_independent_submission_is_quiet():
    tone_set = synth.paper_grid(n_alpha=5, n_r=5)
    module = make_hear_module("gear_batch_ok")
    padding = validate.Padding.to_length(16000, 1024, 1024)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BatchDependenceWarning)
        result = validate.check_batch_dependence(*load(module), tone_set, padding)
    assert not result.batch_dependent and result.max_difference < 1e-5


def test_batch_dependence_tolerance_is_checked():
    with pytest.raises(gear.errors.ParameterError, match="tolerance"):
        validate.check_batch_dependence(*load(make_hear_module("gear_tol")), small_set(),
                                        validate.Padding.to_length(16000, 1024, 1024), tolerance=-1)


# ----------------------------------------------------------------------------- librosa shim
@pytest.mark.slow
def test_hearbaseline_shim_is_local_and_exact(monkeypatch):
    librosa = pytest.importorskip("librosa")
    naive = importlib.import_module("hearbaseline.naive")
    monkeypatch.setattr(naive, "librosa", naive.librosa)  # restored after the test
    monkeypatch.setattr(naive, "__gear_compat__", None, raising=False)
    module, model = validate.load_submission("hearbaseline.naive")
    expected = librosa.filters.mel(sr=44100, n_fft=4096, n_mels=256)
    np.testing.assert_array_equal(model.mel_scale.numpy(), expected)
    # librosa itself is untouched: the positional call still fails outside hearbaseline.naive
    if "positional" in " ".join(module.__gear_compat__):
        with pytest.raises(TypeError):
            librosa.filters.mel(44100, n_fft=4096, n_mels=256)
    assert librosa.filters.mel is sys.modules["librosa"].filters.mel


# ----------------------------------------------------------------------------- TensorFlow
@pytest.mark.slow
def test_tensorflow_submission_gets_tf_tensors():
    tf = pytest.importorskip("tensorflow")

    class TFModel(tf.Module):
        sample_rate = 16000
        scene_embedding_size = 4
        timestamp_embedding_size = 4

    module = make_hear_module("gear_tf_module")
    seen = []

    def embed(audio):
        seen.append(type(audio))
        frames = tf.reshape(audio[:, : (audio.shape[1] // 4) * 4], (audio.shape[0], 4, -1))
        return tf.reduce_mean(tf.abs(frames), axis=-1)

    module.load_model = lambda model_file_path="": TFModel()
    module.get_scene_embeddings = lambda audio, model: embed(audio)

    def get_timestamp_embeddings(audio, model):
        emb = embed(audio)[:, None, :]
        return emb, tf.zeros((audio.shape[0], 1))

    module.get_timestamp_embeddings = get_timestamp_embeddings
    module_, model = load(module)
    report = validate.validate_submission(module_, model)
    assert report.framework == "tensorflow" and all(issubclass(t, tf.Tensor) for t in seen)
    tones = small_set().render(16000, indices=[0, 1])
    got = validate.call_scene_embeddings(module_, model, tones)
    expected = np.abs(tones.reshape(2, 4, -1)).mean(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    module.get_scene_embeddings = lambda audio, model: tf.cast(embed(audio), tf.float64)
    with pytest.raises(SubmissionError, match="tf.cast"):
        validate.call_scene_embeddings(module, model, tones)


# ----------------------------------------------------------------------------- HEAR model and output types
def _plain_object_model(name):
    """A module whose load_model returns a plain object with the three attributes."""
    module = make_hear_module(name)

    class PlainModel:
        sample_rate, scene_embedding_size, timestamp_embedding_size = 16000, 8, 8

    module.load_model = lambda model_file_path="": PlainModel()
    return module


def _timestamps(change):
    def make(name):
        module = make_hear_module(name)
        base = module.get_timestamp_embeddings

        def get_timestamp_embeddings(audio, model):
            return change(*base(audio, model))

        module.get_timestamp_embeddings = get_timestamp_embeddings
        return module

    return make


#: What the official hear-validator rejects, and what GEAR says: (make, kind, fragments).
TYPE_CASES = {
    "plain-object-model": (_plain_object_model, "load", [
        "load_model", "a torch.nn.Module or a tf.Module", "PlainModel, which is not HEAR-compliant",
        "derive the model class from torch.nn.Module", "super().__init__()"]),
    "numpy-float32-scene": (_scene(lambda out, audio: out.numpy()), "type", [
        "get_scene_embeddings", "as a torch.Tensor (the model is a torch.nn.Module)",
        "NumPy array of dtype float32", "not HEAR-compliant", "torch.from_numpy(array)"]),
    "numpy-timestamp-embeddings": (_timestamps(lambda emb, ts: (emb.numpy(), ts)), "type", [
        "get_timestamp_embeddings", "float32 timestamp embeddings as a torch.Tensor", "not HEAR-compliant"]),
    "numpy-timestamps": (_timestamps(lambda emb, ts: (emb, ts.numpy())), "type", [
        "get_timestamp_embeddings", "timestamps in ms as a torch.Tensor", "NumPy array", "not HEAR-compliant"]),
    "float64-scene": (_scene(lambda out, audio: out.double()), "dtype", ["dtype torch.float64", ".float()"]),
}


@pytest.mark.parametrize("case", sorted(TYPE_CASES))
def test_model_and_output_types_are_those_of_the_hear_api(case, monkeypatch):
    make, kind, fragments = TYPE_CASES[case]
    module = make(f"gear_type_{case.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(SubmissionError) as info:
        validate.validate_submission(*validate.load_submission(module.__name__))
    assert info.value.kind == kind
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_model_type_is_checked_on_every_call():
    """call_* and the padding rule refuse a model that did not come through load_submission."""
    module = _plain_object_model("gear_type_every_call")
    model = module.load_model()
    with pytest.raises(SubmissionError) as info:
        validate.call_scene_embeddings(module, model, np.zeros((1, 1024), np.float32))
    assert info.value.kind == "load" and info.value.function == "gear_type_every_call.load_model"
    with pytest.raises(SubmissionError, match="not HEAR-compliant"):
        validate.find_effective_duration(module, model, small_set())


@pytest.mark.slow
def test_gear_rejects_what_the_official_hear_validator_rejects(monkeypatch, capsys):
    """The official validator (hearvalidator, installed in the test env) is the reference: on a
    compliant module both pass; on each breach of TYPE_CASES both fail."""
    official = pytest.importorskip("hearvalidator.validate")
    cases = {"compliant": make_hear_module, **{name: make for name, (make, _, _) in TYPE_CASES.items()}}
    verdicts = {}
    for case, make in cases.items():
        module = make(f"gear_official_{case.replace('-', '_')}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        try:
            official.ValidateModel(module.__name__, "", device="cpu")()
            official_passes = True
        except BaseException as error:  # its ModelError derives from BaseException
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            official_passes = False
        try:
            validate.validate_submission(*validate.load_submission(module.__name__))
            gear_passes = True
        except SubmissionError:
            gear_passes = False
        verdicts[case] = (official_passes, gear_passes)
    capsys.readouterr()  # the official validator prints its progress
    assert verdicts == {case: (case == "compliant",) * 2 for case in cases}


@pytest.mark.slow
def test_framework_of_the_outputs_must_be_the_models():
    tf = pytest.importorskip("tensorflow")

    class TFModel(tf.Module):
        sample_rate, scene_embedding_size, timestamp_embedding_size = 16000, 8, 8

    audio = np.zeros((2, 1024), np.float32)
    # a tf.Module returning torch tensors (the official validator compares the dtype with tf.float32)
    module = make_hear_module("gear_tf_model_torch_outputs")
    module.get_scene_embeddings = lambda audio, model: torch.zeros(audio.shape[0], 8)
    with pytest.raises(SubmissionError) as info:
        validate.call_scene_embeddings(module, TFModel(), audio)
    assert info.value.kind == "type" and "as a tf.Tensor (the model is a tf.Module)" in str(info.value)
    assert "torch.Tensor: the module is not HEAR-compliant" in str(info.value)
    # a tf.Module returning NumPy: rejected too (GEAR is stricter than the official validator here)
    module.get_scene_embeddings = lambda audio, model: np.zeros((audio.shape[0], 8), np.float32)
    with pytest.raises(SubmissionError, match=r"tf.convert_to_tensor\(array\)"):
        validate.call_scene_embeddings(module, TFModel(), audio)
    # a torch.nn.Module returning tf tensors
    module = make_hear_module("gear_torch_model_tf_outputs")
    module.get_scene_embeddings = lambda audio, model: tf.zeros((audio.shape[0], 8))
    with pytest.raises(SubmissionError) as info:
        validate.call_scene_embeddings(module, module.load_model(), audio)
    assert info.value.kind == "type" and "as a torch.Tensor (the model is a torch.nn.Module)" in str(info.value)
