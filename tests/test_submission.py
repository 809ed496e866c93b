"""gear add-submission / list / remove: storing, versions, resuming, failures that store nothing."""
import gear.errors
import gear.store
import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import synth
from conftest import checksums, make_hear_module, read_csv
from gear import pipeline, submission
from gear.cli import submissions as submission_cli
from gear.store import leaderboard_rows
from gear.validate import BatchDependenceWarning, Padding, SubmissionError, render_tones

CONFIG = dict(grid_kwargs=dict(n_alpha=6, n_r=6), isomap_neighbors=10, n_neighbors=5, n_bootstrap=50, batch_size=8)
N_SOUNDS = 36


def config(**changes):
    return pipeline.GearConfig(**{**CONFIG, **changes})




def weighted_module(name, loads=None):
    """A HEAR module whose load_model reads a scale factor from its weights file (text)."""
    module = make_hear_module(name)
    base_load, base_scene = module.load_model, module.get_scene_embeddings

    def load_model(model_file_path=""):
        if loads is not None:
            loads.append(model_file_path)
        model = base_load(model_file_path)
        model.scale = float(Path(model_file_path).read_text()) if model_file_path else 1.0
        return model

    module.load_model = load_model
    module.get_scene_embeddings = lambda audio, model: base_scene(audio, model) * model.scale
    return module


@pytest.fixture
def install(monkeypatch):
    """Make an in-memory module importable by its name."""

    def install_(module):
        monkeypatch.setitem(sys.modules, module.__name__, module)
        return module.__name__

    return install_


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A results directory holding one good submission (with report and leaderboard)."""
    root = tmp_path_factory.mktemp("populated")
    module = make_hear_module("gear_good_submission")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, module.__name__, module)
        submission.add_submission(module.__name__, name="good", out_dir=root / "out", config=config(),
                                  cache_dir=root / "cache")
    return root / "out"


@pytest.fixture
def results_dir(populated, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(populated, out)
    return out


# ----------------------------------------------------------------------------- storing
def test_add_stores_in_pipeline_layout(results_dir):
    results = pipeline.load_results(results_dir)
    assert [r.name for r in results] == ["good"]
    assert [(r["model"], r["parameter"]) for r in read_csv(results_dir / "scores.csv")] == [
        ("good", "f1_hz"), ("good", "alpha"), ("good", "r")]
    assert pipeline.read_run_config(results_dir).grid_kwargs == CONFIG["grid_kwargs"]
    folder = results_dir / "models" / "good"
    info = json.loads((folder / "submission.json").read_text())
    assert info["module"] == "gear_good_submission" and info["version"] == 1 and info["weights_sha256"] == "none"
    assert info["padding"]["duration_s"] == pytest.approx(0.064) and info["sample_rate"] == 16000
    # what the model heard, with the embeddings: f1 in Hz and effective duration per tone
    tone_set = config().tone_set()
    tones = read_csv(folder / "tones.csv")
    assert len(tones) == N_SOUNDS
    np.testing.assert_allclose([float(t["f1_hz"]) for t in tones], tone_set.f1_hz(16000))
    assert {t["effective_duration_s"] for t in tones} == {"0.064"}
    # the stored embedding is the module's output on the tones at its rate
    module = make_hear_module("gear_reference")
    expected = module.get_scene_embeddings(torch.from_numpy(tone_set.render(16000)), module.load_model()).numpy()
    np.testing.assert_allclose(np.load(folder / "embedding.npy"), expected, rtol=1e-6)
    # the report and the leaderboard include it
    assert "good" in (results_dir / "report.html").read_text()
    assert "Leaderboard" in (results_dir / "report.html").read_text()
    rows = read_csv(results_dir / "leaderboard.csv")
    assert [(r["rank"], r["model"]) for r in rows] == [("1", "good")]


def test_leaderboard_ranks_by_the_mean_normalised_score(results_dir):
    result = pipeline.load_results(results_dir)[0]
    row = read_csv(results_dir / "leaderboard.csv")[0]
    # the ranking: the mean normalised neighbour score over the cause factors (gear.metrics), recomputed here
    from gear.metrics import evaluate, mean_normalised_score

    tone_set = config().tone_set()
    embedding = np.load(results_dir / "models" / "good" / "embedding.npy")
    rows = evaluate(embedding, tone_set.theta(), names=("f1_hz", "alpha", "r"), families=("neighbours",),
                    n_resamples=200)
    assert float(row["score"]) == pytest.approx(mean_normalised_score(rows), rel=1e-5)
    for factor in ("f1_hz", "alpha", "r"):
        assert float(row[f"normalised_{factor}"]) == pytest.approx(result.normalised[factor], rel=1e-5)
    # the former ranking stays beside it
    expected = np.mean([r["median_abs_log_ratio"] / r["chance"] for r in result.scores])
    assert float(row["fraction_of_chance"]) == pytest.approx(expected, rel=1e-5)
    assert float(row["median_abs_log_ratio_alpha"]) == pytest.approx(
        next(r["median_abs_log_ratio"] for r in result.scores if r["parameter"] == "alpha"), rel=1e-5)
    assert "mean normalised neighbour score" in (results_dir / "report.html").read_text()


def test_leaderboard_ranks_lowest_score_first():
    from gear.results import ModelResult

    def fake(name, mean):
        return ModelResult(name=name, description="", isomap=np.zeros((2, 3)), log_ratios={}, scores=[],
                           normalised={"mean": mean})

    rows = leaderboard_rows([fake("x", 0.9), fake("y", 0.2), fake("z", np.nan), fake("w", 0.2)])
    assert [(r["model"], r["rank"]) for r in rows] == [("w", 1), ("y", 1), ("x", 3), ("z", "")]


def _bad_scene(transform):
    def make(name):
        module = make_hear_module(name)
        base = module.get_scene_embeddings
        module.get_scene_embeddings = lambda audio, model: transform(base(audio, model))
        return module

    return make


def _raises(out):
    raise RuntimeError("kaboom in the submission")


def _nan(out):
    out = out.clone()
    out[:, 2] = float("nan")
    return out


def _no_attribute(name):
    module = make_hear_module(name)
    base = module.load_model

    def load_model(model_file_path=""):
        model = base(model_file_path)
        del model.timestamp_embedding_size
        return model

    module.load_model = load_model
    return module


FAILING = {
    "float64": (_bad_scene(lambda out: out.double()), ["get_scene_embeddings: expected scene embeddings of dtype float32", "torch.float64"]),
    "wrong-shape": (_bad_scene(lambda out: out[:, :5]), ["expected shape (n_sounds, scene_embedding_size) = (4, 8)", "got shape (4, 5)"]),
    "nan": (_bad_scene(_nan), ["expected finite scene embeddings", "NaN value(s)"]),
    "missing-attribute": (_no_attribute, ["load_model: expected the returned model to have an int attribute 'timestamp_embedding_size'"]),
    "bad-sample-rate": (lambda name: make_hear_module(name, sample_rate=12000), ["model.sample_rate in [16000, 22050, 44100, 48000]", "got 12000"]),
    "raises": (_bad_scene(_raises), ["get_scene_embeddings: expected embeddings of 4 sound(s)", "RuntimeError: kaboom in the submission"]),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_failing_submission_leaves_results_intact(case, results_dir, install, tmp_path):
    make, fragments = FAILING[case]
    name = install(make(f"gear_failing_{case.replace('-', '_')}"))
    before = checksums(results_dir)
    with pytest.raises(SubmissionError) as info:
        submission.add_submission(name, out_dir=results_dir, cache_dir=tmp_path / "cache")
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert checksums(results_dir) == before


def test_failure_during_embedding_leaves_results_intact(results_dir, install, tmp_path):
    """A submission that passes validation but breaks on one batch of GEAR tones."""
    module = make_hear_module("gear_breaks_late")
    base = module.get_scene_embeddings
    tone_set = config().tone_set()
    poisoned = tone_set.render(16000, indices=np.arange(16, 24))

    def get_scene_embeddings(audio, model):
        out = base(audio, model)
        if audio.shape == poisoned.shape and np.array_equal(audio.numpy(), poisoned):
            out = out.double()
        return out

    module.get_scene_embeddings = get_scene_embeddings
    before = checksums(results_dir)
    with pytest.raises(SubmissionError, match=r"torch.float64 \(tones 16..23\)"):
        submission.add_submission(install(module), out_dir=results_dir, cache_dir=tmp_path / "cache")
    assert checksums(results_dir) == before


def test_cli_failure_message_and_exit_code(results_dir, install, capsys, gear_main):
    make, fragments = FAILING["float64"]
    name = install(make("gear_failing_cli"))
    before = checksums(results_dir)
    assert gear_main(["add-submission", name, "--out", str(results_dir), "--no-cache", "-q"]) == 1  # a failure, not usage
    err = capsys.readouterr().err
    assert err.startswith("gear add-submission: error (dtype): gear_failing_cli.get_scene_embeddings") and fragments[1] in err
    assert checksums(results_dir) == before


# ----------------------------------------------------------------------------- resuming
class Interrupt(KeyboardInterrupt):
    pass


def recording_module(name, calls, *, interrupt_on=None):
    """Records a digest of every audio batch; raises KeyboardInterrupt on ``interrupt_on``."""
    module = make_hear_module(name)
    base = module.get_scene_embeddings

    def get_scene_embeddings(audio, model):
        digest = hashlib.sha256(audio.numpy().tobytes()).hexdigest()
        calls.append(digest)
        if interrupt_on is not None and digest == interrupt_on[0]:
            raise Interrupt()
        return base(audio, model)

    module.get_scene_embeddings = get_scene_embeddings
    return module


def test_interrupted_run_resumes_without_recomputing(tmp_path, install):
    tone_set = config().tone_set()
    plan = [(s, min(s + 8, N_SOUNDS)) for s in range(0, N_SOUNDS, 8)]
    padding = Padding.to_length(16000, 1024, 1024)
    batch_digest = [hashlib.sha256(render_tones(tone_set, padding, indices=np.arange(*b)).tobytes()).hexdigest() for b in plan]
    out, cache = tmp_path / "out", tmp_path / "cache"

    calls = []
    name = install(recording_module("gear_interrupted", calls, interrupt_on=[batch_digest[2]]))
    with pytest.raises(Interrupt):
        submission.add_submission(name, out_dir=out, config=config(), cache_dir=cache, report=False)
    assert [batch_digest.index(c) for c in calls if c in batch_digest] == [0, 1, 2]
    assert not (out / "models").exists() or not any((out / "models").iterdir())
    assert not (out / ".gear-staging").exists()

    calls.clear()
    install(recording_module("gear_interrupted", calls))
    stored = submission.add_submission(name, out_dir=out, config=config(), cache_dir=cache, report=False)
    embedded = [batch_digest.index(c) for c in calls if c in batch_digest]
    assert embedded == [2, 3, 4] and stored.n_batches_embedded == 3
    # same numbers as an uninterrupted run without cache
    fresh = submission.add_submission(name, out_dir=tmp_path / "fresh", config=config(), use_cache=False, report=False)
    np.testing.assert_array_equal(np.load(stored.folder / "embedding.npy"), np.load(fresh.folder / "embedding.npy"))
    # a third run with the same weights is a no-op: nothing embedded, nothing new stored
    calls.clear()
    again = submission.add_submission(name, out_dir=out, config=config(), cache_dir=cache, report=False)
    assert not again.created and again.name == stored.name and not [c for c in calls if c in batch_digest]


# ----------------------------------------------------------------------------- versions
def test_versions_by_weights(tmp_path, install):
    loads = []
    name = install(weighted_module("gear_weighted", loads))
    weights_a, weights_b = tmp_path / "a.txt", tmp_path / "b.txt"
    weights_a.write_text("1.0")
    weights_b.write_text("2.0")
    out = tmp_path / "out"
    kwargs = dict(name="toy", out_dir=out, config=config(), cache_dir=tmp_path / "cache", report=False)
    first = submission.add_submission(name, weights=weights_a, **kwargs)
    second = submission.add_submission(name, weights=weights_b, **kwargs)
    third = submission.add_submission(name, weights=weights_a, **kwargs)
    assert (first.name, first.version, first.created) == ("toy", 1, True)
    assert (second.name, second.version, second.created) == ("toy@2", 2, True)
    assert (third.name, third.created) == ("toy", False)
    assert str(weights_a.resolve()) in loads and str(weights_b.resolve()) in loads
    listed = {row["name"]: row for row in submission.list_results(out)}
    assert set(listed) == {"toy", "toy@2"}
    assert listed["toy"]["weights_sha256"] == hashlib.sha256(b"1.0").hexdigest()
    assert listed["toy@2"]["weights_sha256"] == hashlib.sha256(b"2.0").hexdigest()
    # the weights reached the model: version 2's embedding is twice version 1's
    np.testing.assert_allclose(np.load(second.folder / "embedding.npy"), 2 * np.load(first.folder / "embedding.npy"), rtol=1e-6)
    assert {r["model"] for r in read_csv(out / "scores.csv")} == {"toy", "toy@2"}


def test_name_rules(tmp_path, install):
    name = install(make_hear_module("gear_named"))
    with pytest.raises(gear.errors.ParameterError, match="reserves for versions"):
        submission.add_submission(name, name="toy@3", out_dir=tmp_path, config=config())
    with pytest.raises(gear.errors.ParameterError, match="is not valid"):
        submission.add_submission(name, name="../escape", out_dir=tmp_path, config=config())
    with pytest.raises(gear.errors.ParameterError, match="does not exist"):
        submission.add_submission(name, weights=tmp_path / "missing.pt", out_dir=tmp_path, config=config())
    assert submission.parse_name("a.b-c@12") == ("a.b-c", 12)


def test_settings_must_match_the_stored_run(results_dir, install):
    name = install(make_hear_module("gear_other_grid"))
    with pytest.raises(gear.errors.ParameterError, match=r"grid_kwargs=.*n_alpha.: 5.*another --out"):
        submission.add_submission(name, out_dir=results_dir, config=config(grid_kwargs=dict(n_alpha=5, n_r=6)))


# ----------------------------------------------------------------------------- list / remove
def test_remove_regenerates_outputs(results_dir, install, tmp_path):
    name = install(weighted_module("gear_good_submission"))  # the module stored as 'good', other weights
    (tmp_path / "w.txt").write_text("3.0")
    submission.add_submission(name, name="good", weights=tmp_path / "w.txt", out_dir=results_dir,
                              cache_dir=tmp_path / "cache", report=False)
    assert {r["name"] for r in submission.list_results(results_dir)} == {"good", "good@2"}
    report_before = (results_dir / "report.html").read_bytes()

    submission.remove_result(results_dir, "good")
    assert not (results_dir / "models" / "good").exists() and not (results_dir / ".gear" / "trash").exists()
    assert [r.name for r in pipeline.load_results(results_dir)] == ["good@2"]
    assert {r["model"] for r in read_csv(results_dir / "scores.csv")} == {"good@2"}
    assert [r["model"] for r in read_csv(results_dir / "leaderboard.csv")] == ["good@2"]
    report = (results_dir / "report.html").read_text()
    assert report.encode() != report_before and "good@2" in report
    assert json.loads((results_dir / "run.json").read_text())["models"] == ["good@2"]

    with pytest.raises(gear.errors.StoreError, match=r"no stored result named 'nope'.*stored results: good@2"):
        submission.remove_result(results_dir, "nope")
    submission.remove_result(results_dir, "good@2")
    assert not (results_dir / "report.html").exists()
    assert read_csv(results_dir / "scores.csv") == [] and read_csv(results_dir / "leaderboard.csv") == []
    # numbering restarts once every version is gone
    again = submission.add_submission(name, name="good", out_dir=results_dir, cache_dir=tmp_path / "cache", report=False)
    assert again.name == "good"


def test_remove_rolls_back_when_rewriting_fails(results_dir, monkeypatch):
    before = checksums(results_dir)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(gear.store, "write_leaderboard_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        submission.remove_result(results_dir, "good")
    assert (results_dir / "models" / "good" / "result.json").exists()
    assert checksums(results_dir) == before


def test_add_rolls_back_when_the_report_fails(results_dir, install, tmp_path, monkeypatch):
    name = install(make_hear_module("gear_report_fails"))
    before = checksums(results_dir)

    def broken(*args, **kwargs):
        raise gear.errors.ParameterError("report writer refused")

    monkeypatch.setattr(submission.pipeline, "write_run_report", broken)
    with pytest.raises(gear.errors.ParameterError, match="report writer refused"):
        submission.add_submission(name, out_dir=results_dir, cache_dir=tmp_path / "cache")
    assert checksums(results_dir) == before


def test_results_of_gear_run_are_listed_and_versioned(tmp_path, fake_model, install):
    out = tmp_path / "out"
    pipeline.run(["fake"], out_dir=out, config=config(), cache_dir=tmp_path / "cache", report=False)
    rows = submission.list_results(out)
    assert [(r["name"], r["module"], r["version"]) for r in rows] == [("fake", "(gear run)", None)]
    name = install(make_hear_module("gear_clash"))
    before = checksums(out)
    # a registered model's name is refused (it would read as that model), with a free name to use
    with pytest.raises(gear.errors.StoreError, match=r"'fake' is the name of GEAR's registered model.*'fake-2'"):
        submission.add_submission(name, name="fake", out_dir=out, cache_dir=tmp_path / "cache", report=False)
    assert checksums(out) == before
    stored = submission.add_submission(name, name="fake-2", out_dir=out, cache_dir=tmp_path / "cache", report=False)
    assert stored.name == "fake-2"
    kinds = {r["name"]: (r["kind"], r["module"]) for r in submission.list_results(out)}
    assert kinds == {"fake": ("registry", "(gear run)"), "fake-2": ("submission", "gear_clash")}


# ----------------------------------------------------------------------------- batch dependence
def test_batch_dependent_submission_is_flagged(tmp_path, install):
    def normalise(audio):
        spectrum = torch.log(torch.abs(torch.fft.rfft(audio, dim=-1))[:, :64] + 1e-6)
        return (spectrum - spectrum.mean(0)) / (spectrum.std(0) + 1e-3)

    name = install(make_hear_module("gear_batchnorm_sub", dim=64, embed=normalise))
    with pytest.warns(BatchDependenceWarning, match="depends on the other sounds"):
        stored = submission.add_submission(name, out_dir=tmp_path, config=config(), use_cache=False, report=False)
    assert stored.info["batch_dependence"]["batch_dependent"]
    assert any("--batch-size" in w for w in stored.result.warnings)
    assert any("--batch-size" in w for w in pipeline.load_results(tmp_path)[0].warnings)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture
def gear_main(monkeypatch):
    """gear.cli.main with the submission commands (wired here until gear/cli.py registers them)."""
    from gear import cli

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli.build_parser().parse_args(["list"])
        wired = True
    except SystemExit:
        wired = False
    if not wired:
        import gear.timbre.cli as timbre_cli

        original = getattr(timbre_cli, "add_subparsers", None)

        def add_both(subparsers):
            if original is not None:
                original(subparsers)
            submission_cli.add_parsers(subparsers)

        monkeypatch.setattr(timbre_cli, "add_subparsers", add_both, raising=False)
    return cli.main


def test_cli_add_list_remove(tmp_path, install, capsys, gear_main):
    name = install(make_hear_module("gear_cli_module"))
    out = str(tmp_path / "out")
    common = ["--out", out, "--cache-dir", str(tmp_path / "cache")]
    assert gear_main(["add-submission", name, "--n-alpha", "6", "--n-r", "6", "--batch-size", "10", "--n-bootstrap", "50", *common]) == 0
    text = capsys.readouterr().out
    assert "stored as gear_cli_module (version 1)" in text and "report:" in text
    run = pipeline.read_run_config(out)
    assert (run.isomap_neighbors, run.n_neighbors) == (35, 9)  # capped for the 36-tone grid
    assert gear_main(["add-submission", name, "--name", "again", "-q", *common]) == 0
    assert gear_main(["list", "--out", out]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["name", "kind", "version", "module", "weights", "dim", "rate", "added", "status"]
    assert [line.split()[:4] for line in listing[1:]] == [["again", "submission", "1", "gear_cli_module"],
                                                         ["gear_cli_module", "submission", "1", "gear_cli_module"]]
    assert [line.split()[-1] for line in listing[1:]] == ["ok", "ok"]
    assert gear_main(["add-submission", name, "--n-alpha", "5", *common]) == 2
    assert "another --out" in capsys.readouterr().err
    assert gear_main(["remove", "again", "--out", out]) == 0
    assert [r.name for r in pipeline.load_results(out)] == ["gear_cli_module"]
    assert gear_main(["remove", "again", "--out", out]) == 1
    assert "no stored result named 'again'" in capsys.readouterr().err


def test_cli_help(capsys, gear_main):
    for command in ("add-submission", "list", "remove"):
        with pytest.raises(SystemExit) as info:
            gear_main([command, "--help"])
        assert info.value.code == 0
        assert f"usage: gear {command}" in capsys.readouterr().out


# ----------------------------------------------------------------------------- joblib
JOBLIB_MODULE = '''
import torch

class Model(torch.nn.Module):  # the HEAR validator accepts only torch.nn.Module / tf.Module
    sample_rate = 16000
    scene_embedding_size = 8
    timestamp_embedding_size = 8

def load_model(model_file_path=""):
    return Model()

def get_scene_embeddings(audio, model):
    spectrum = torch.abs(torch.fft.rfft(audio, dim=-1))
    return torch.log(torch.stack([c.mean(-1) for c in torch.tensor_split(spectrum, 8, dim=-1)], -1) + 1e-6).float()

def get_timestamp_embeddings(audio, model):
    return get_scene_embeddings(audio, model)[:, None, :], torch.zeros(audio.shape[0], 1)
'''


@pytest.mark.slow
def test_parallel_jobs_match_sequential(tmp_path, monkeypatch):
    (tmp_path / "gear_joblib_submission.py").write_text(JOBLIB_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    kwargs = dict(config=config(), report=False)
    serial = submission.add_submission("gear_joblib_submission", out_dir=tmp_path / "a", use_cache=False, **kwargs)
    parallel = submission.add_submission("gear_joblib_submission", out_dir=tmp_path / "b", n_jobs=2,
                                         cache_dir=tmp_path / "cache", **kwargs)
    assert parallel.n_batches_embedded == 5
    np.testing.assert_array_equal(np.load(serial.folder / "embedding.npy"), np.load(parallel.folder / "embedding.npy"))
    cached = list((tmp_path / "cache").rglob("batch_*.npy"))
    assert len(cached) == 5


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_end_to_end_hearbaseline_naive(tmp_path, monkeypatch, capsys, gear_main):
    """The real hearbaseline.naive package (installed --no-deps), through the CLI."""
    naive = pytest.importorskip("hearbaseline.naive")
    monkeypatch.setattr(naive, "librosa", naive.librosa)  # undo the compat shim after the test
    monkeypatch.setattr(naive, "__gear_compat__", None, raising=False)
    out = tmp_path / "out"
    argv = ["add-submission", "hearbaseline.naive", "--n-alpha", "6", "--n-r", "6", "--out", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--n-bootstrap", "100", "-q"]
    assert gear_main(argv) == 0
    results = pipeline.load_results(out)
    assert [r.name for r in results] == ["hearbaseline.naive"]
    assert results[0].embedding_dim == 4096
    report = (out / "report.html").read_text()
    assert "hearbaseline.naive" in report and "Leaderboard" in report
    assert [r["model"] for r in read_csv(out / "leaderboard.csv")] == ["hearbaseline.naive"]
    info = json.loads((out / "models" / "hearbaseline.naive" / "submission.json").read_text())
    assert info["sample_rate"] == 44100 and info["distribution"].startswith("hearbaseline==")
    # independent answer: GEAR's own reimplementation of the naive baseline on the same tones
    from embeddings import naive as ours

    tones = config().tone_set().render(44100)
    expected = ours.get_scene_embeddings(torch.from_numpy(tones), ours.load_model()).numpy()
    stored = np.load(out / "models" / "hearbaseline.naive" / "embedding.npy")
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert gear_main(["list", "--out", str(out)]) == 0
    assert "hearbaseline.naive" in capsys.readouterr().out
