"""The public API in one import, the layering of the packages, the exception tree and the CLI's error lines."""
import ast
from pathlib import Path

import pytest

import gear
import gear.errors
from gear.checks import check_int, check_real

REPO = Path(__file__).resolve().parents[1]


def test_public_api_in_one_import():
    from gear import GearConfig, ResultsStore, analyse_embedding, run, write_report  # noqa: F401
    from gear.pipeline import run as pipeline_run
    from gear.report import write_report as report_write

    assert run is pipeline_run and write_report is report_write
    assert set(gear.__all__) >= {"run", "analyse_embedding", "GearConfig", "write_report", "ResultsStore", "GearError"}
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gear.nope


def _imports(package):
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((path.name, node.module.split(".")[0]))
            elif isinstance(node, ast.Import):
                found.update((path.name, alias.name.split(".")[0]) for alias in node.names)
    return found


def test_data_flows_one_way_and_synth_is_signal_code():
    assert not {m for _, m in _imports("synth")} & {"gear", "embeddings"}
    assert not {m for _, m in _imports("embeddings")} & {"gear"}
    # synth writes no files and owns no base error: the atomic writer and the error tree live in gear
    synth_text = "\n".join(p.read_text() for p in (REPO / "synth").rglob("*.py"))
    assert "atomic_write" not in synth_text and "os.replace" not in synth_text and "soundfile" not in synth_text
    assert "class GearError" not in synth_text and "class ParameterError" not in synth_text


def test_one_exception_tree():
    from embeddings.errors import EmbeddingError
    from synth.errors import SynthError

    for cls in (gear.ParameterError, gear.SubmissionError, gear.StoreError):
        assert issubclass(cls, gear.GearError)
    assert issubclass(gear.ParameterError, ValueError)
    error = gear.SubmissionError("m.f", "x", "y", "z", kind="shape")
    assert error.kind == "shape" and "expected x; got y" in str(error)
    with pytest.raises(ValueError, match="kind='typo'"):
        gear.SubmissionError("m.f", "x", "y", "z", kind="typo")
    # lower-layer errors become ParameterError at gear's entry points
    from gear.pipeline import GearConfig

    with pytest.raises(gear.ParameterError) as info:
        GearConfig(grid_kwargs=dict(n_alpha=0)).tone_set()
    assert isinstance(info.value.__cause__, SynthError)
    with pytest.raises(gear.ParameterError), gear.errors.lower_layer_errors():
        raise EmbeddingError("bad")


@pytest.mark.parametrize("value, message", [(True, "must be a number, got True"), ("3", "must be an instance of"),
                                            (0, "== 0, must be >= 1"), (2.5, "must be an instance of")])
def test_check_int_names_the_value(value, message):
    with pytest.raises(gear.ParameterError, match=message):
        check_int(value, "batch_size", min_val=1)
    assert check_int(4, "batch_size", min_val=1) == 4
    assert check_real(0.5, "tolerance", min_val=0) == 0.5


def test_cli_internal_error_is_one_line(monkeypatch, capsys):
    from gear import cli
    from gear.cli import models

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(models, "_cmd_models", broken)
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["gear models: internal error: RuntimeError: boom. This is a bug in GEAR: please "
                                        "report it with the output of the same command run with -v"]
    assert cli.main(["-v", "models"]) == 1
    assert "Traceback" in capsys.readouterr().err  # only when asked for


def test_cli_exit_codes(tmp_path, capsys):
    from gear import cli

    assert cli.main(["run", "--models", "no-such-model", "--out", str(tmp_path), "-q"]) == 2  # usage
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    (tmp_path / "f").write_text("x")
    assert cli.main(["run", "--models", "mfcc", "--out", str(tmp_path / "f"), "-q"]) == 1  # a failure
    assert "is a file, not a folder" in capsys.readouterr().err
