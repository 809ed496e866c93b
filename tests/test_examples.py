"""The examples run on a small grid, so they never rot."""
import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    tested = {"run_gear_on_a_model", "compare_two_models", "analyse_your_own_embedding", "does_yamnet_hear_attack"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.slow
def test_run_gear_on_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("GEAR_CACHE_DIR", str(tmp_path / "cache"))
    result = load("run_gear_on_a_model").main(
        ["--model", "naive", "--out", str(tmp_path / "out"), "--n-alpha", "12", "--n-r", "12", "--no-open"]
    )
    assert result.name == "naive" and result.embedding_dim == 4096
    assert (tmp_path / "out" / "report.html").exists()


@pytest.mark.slow
def test_compare_two_models(tmp_path, monkeypatch):
    monkeypatch.setenv("GEAR_CACHE_DIR", str(tmp_path / "cache"))
    verdicts = load("compare_two_models").main(
        ["mfcc", "timbre-descriptors", "--out", str(tmp_path / "out"), "--n-alpha", "12", "--n-r", "12"]
    )
    assert set(verdicts) == {"f1_hz", "alpha", "r"}


def test_analyse_your_own_embedding():
    result = load("analyse_your_own_embedding").main(["--n-alpha", "15", "--n-r", "15"])
    rows = {row["parameter"]: row for row in result.scores}
    # a log spectrum separates pitch far better than chance
    assert rows["f1_hz"]["median_abs_log_ratio"] < 0.5 * rows["f1_hz"]["chance"]


@pytest.mark.slow
def test_does_yamnet_hear_attack(tmp_path, monkeypatch):
    monkeypatch.setenv("GEAR_CACHE_DIR", str(tmp_path / "cache"))
    results, hears = load("does_yamnet_hear_attack").main(["--n", "32", "--out", str(tmp_path / "out")])
    assert [r.name for r in results] == ["yamnet-tflite", "crepe-tiny", "logmel"]
    for result in results:
        assert [row["parameter"] for row in result.scores] == ["f1_hz", "attack_ms", "decay_ms"]
    # CREPE, a pitch tracker, keeps f1 far better than chance
    crepe = {row["parameter"]: row for row in results[1].scores}
    assert crepe["f1_hz"]["median_abs_log_ratio"] < 0.5 * crepe["f1_hz"]["chance"]
    assert set(hears) == {(r.name, p) for r in results for p in ("f1_hz", "attack_ms", "decay_ms")}
    assert (tmp_path / "out" / "report.html").exists()
