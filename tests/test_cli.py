"""The `gear` command line, called through main([...])."""
import gear.errors
import shutil
import csv

import numpy as np
import pytest

import synth
from gear import cli
from gear.results import SCORE_COLUMNS


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_help_everywhere(capsys):
    for argv in (["--help"], ["run", "--help"], ["synth", "--help"], ["report", "--help"], ["models", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 0
        assert "usage: gear" in capsys.readouterr().out


def test_synth_writes_wavs_and_parameters(tmp_path):
    assert cli.main(["synth", "--out", str(tmp_path), "--n-alpha", "3", "--n-r", "2", "--sample-rate", "22050", "-q"]) == 0
    rows = read_csv(tmp_path / "parameters.csv")
    assert len(rows) == 6
    assert {"index", "file", "sample_rate", "f1_hz", "alpha", "r"} <= set(rows[0])
    assert all((tmp_path / row["file"]).exists() for row in rows)
    assert {row["sample_rate"] for row in rows} == {"22050"}


def test_run_writes_scores_and_results(tmp_path, fake_model, monkeypatch):
    out = tmp_path / "out"
    argv = ["run", "--models", "fake", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--n-alpha", "10", "--n-r", "10", "--isomap-neighbors", "10", "--neighbors", "5", "-q"]
    assert cli.main(argv) == 0
    rows = read_csv(out / "scores.csv")
    assert tuple(rows[0]) == SCORE_COLUMNS
    assert [(r["model"], r["parameter"]) for r in rows] == [("fake", "f1_hz"), ("fake", "alpha"), ("fake", "r")]
    assert {r["n"] for r in rows} == {"100", "90"}
    assert (out / "models" / "fake" / "embedding.npy").exists()
    page = (out / "report.html").read_text()
    assert "fake spectral model for tests" in page and "K = 5 neighbours" in page
    # the report can be rebuilt from the stored results
    (out / "report.html").unlink()
    assert cli.main(["report", str(out), "-q"]) == 0
    assert "fake spectral model for tests" in (out / "report.html").read_text()
    # rerun: embeddings and analysis reused, same numbers
    import gear.pipeline

    calls_before = len(fake_model)
    monkeypatch.setattr(gear.pipeline, "analyse_embedding", lambda *a, **k: pytest.fail("analysis recomputed"))
    assert cli.main(argv) == 0
    assert len(fake_model) == calls_before
    assert read_csv(out / "scores.csv") == rows


def test_results_round_trip(tmp_path, fake_model):
    from gear import pipeline

    config = pipeline.GearConfig(grid_kwargs=dict(n_alpha=6, n_r=6), isomap_neighbors=8, n_neighbors=4, n_bootstrap=50)
    results = pipeline.run(["fake"], out_dir=tmp_path, config=config, cache_dir=tmp_path / "c", report=False)
    loaded = pipeline.load_results(tmp_path)
    assert [r.name for r in loaded] == ["fake"]
    np.testing.assert_array_equal(loaded[0].isomap, results[0].isomap)
    for key in results[0].log_ratios:
        np.testing.assert_array_equal(loaded[0].log_ratios[key], results[0].log_ratios[key])
    assert pipeline.read_run_config(tmp_path).grid_kwargs == dict(n_alpha=6, n_r=6)


def test_models_lists_registry(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "naive" in out and "crepe-full" in out and "where / why not" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "--models", "nosuchmodel", "--out", "{tmp}"], "unknown model 'nosuchmodel'"),
        (["run", "--models", "fake", "--out", "{tmp}", "--neighbors", "0", "--n-alpha", "3", "--n-r", "3"], "n_neighbors=0"),
        (["run", "--models", "fake", "--out", "{tmp}", "--n-alpha", "0"], "n_alpha must be >= 1"),
        (["run", "--models", "fake", "--out", "{tmp}", "--models-dir", "/no/such/dir"], "is not a directory"),
        (["report", "{tmp}"], "run.json"),
        (["synth", "--out", "{tmp}", "--preset", "factorial", "--seed", "3"], "--seed does not apply"),
    ],
)
def test_errors_are_reported_clearly(tmp_path, fake_model, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path / "x")) for a in argv]
    assert cli.main(argv + (["-q"] if argv[0] in ("run", "report", "synth") else [])) == 2
    assert message in capsys.readouterr().err


def test_run_refuses_to_mix_settings_with_stored_results(tmp_path, fake_model):
    from gear import pipeline

    small = dict(isomap_neighbors=8, n_neighbors=4, n_bootstrap=20)
    pipeline.run(["fake"], out_dir=tmp_path, config=pipeline.GearConfig(grid_kwargs=dict(n_alpha=5, n_r=5), **small), cache_dir=tmp_path / "c", report=False)
    shutil.copytree(tmp_path / "models" / "fake", tmp_path / "models" / "other")  # an entry this run does not make
    other_settings = pipeline.GearConfig(grid_kwargs=dict(n_alpha=6, n_r=5), **small)
    with pytest.raises(gear.errors.ParameterError, match=r"other settings \(other\)"):
        pipeline.run(["fake"], out_dir=tmp_path, config=other_settings, cache_dir=tmp_path / "c", report=False)
    # the same settings rerun fine
    pipeline.run(["fake"], out_dir=tmp_path, config=pipeline.GearConfig(grid_kwargs=dict(n_alpha=5, n_r=5), **small), cache_dir=tmp_path / "c", report=False)


def test_score_writes_disentanglement_csv_and_cards(tmp_path, fake_model):
    from gear import pipeline

    config = pipeline.GearConfig(grid_kwargs=dict(n_alpha=12, n_r=12), isomap_neighbors=10, n_neighbors=5, n_bootstrap=20)
    pipeline.run(["fake"], out_dir=tmp_path, config=config, cache_dir=tmp_path / "c", report=False)
    assert cli.main(["score", "--out", str(tmp_path), "-q"]) == 0
    rows = read_csv(tmp_path / "disentanglement.csv")
    assert tuple(rows[0]) == ("model", "metric", "parameter", "value", "ci_low", "ci_high", "note")
    metrics = {(r["metric"], r["parameter"]) for r in rows}
    assert {("probe_r2_ridge", "f1_hz"), ("disentanglement_score", ""), ("betti_1", "")} <= metrics
    page = (tmp_path / "report.html").read_text()
    assert "Disentanglement card" in page and "Disentanglement leaderboard" in page
    # rerun reuses stored metrics (same numbers)
    assert cli.main(["score", "--out", str(tmp_path), "-q"]) == 0
    assert read_csv(tmp_path / "disentanglement.csv") == rows
