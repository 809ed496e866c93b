"""The results store (issue 8): each finding reproduced, and a crash at every commit step.

Findings: (1) a run overwrote a submission of the same name; (2) one corrupt file broke every
command; (3) a kill during a commit left the outputs wrong for good; (4) a submission's errors
could not be debugged; (5) broken models were stored and ranked; (6) an unusable --out was found
only after embedding everything. (7, HEAR compliance, is tests/test_hear_validator.py.)
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import gear.errors
from gear import pipeline, submission
from gear.cli import main as gear_main
from gear.embedder import ConstantEmbeddingWarning
from gear.store import CRASH_ENV, CorruptEntryWarning, ResultsStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _store_child  # noqa: E402
from conftest import checksums, make_hear_module, read_csv  # noqa: E402

CHILD = Path(__file__).resolve().parent / "_store_child.py"
SMALL = ["--n-alpha", "6", "--n-r", "6", "--isomap-neighbors", "10", "--neighbors", "5", "--n-bootstrap", "50",
         "--batch-size", "8"]
CONFIG = pipeline.GearConfig(grid_kwargs=dict(n_alpha=6, n_r=6), isomap_neighbors=10, n_neighbors=5, n_bootstrap=50,
                             batch_size=8)




def report_models(out):
    text = (out / "report.html").read_text()
    start = text.index("<script id='gear-data' type='application/json'>") + len("<script id='gear-data' type='application/json'>")
    return sorted(m["name"] for m in json.loads(text[start:text.index("</script>", start)])["models"])


def assert_consistent(out):
    """scores.csv, leaderboard.csv, run.json, the report and models/ name the same entries; every entry
    verifies; no journal, stale marker, staging or trash is left."""
    store = ResultsStore(out)
    names = store.names()
    assert sorted({r["model"] for r in read_csv(out / "scores.csv")}) == names
    assert sorted(r["model"] for r in read_csv(out / "leaderboard.csv")) == names
    assert sorted(json.loads((out / "run.json").read_text())["models"]) == names
    if names:
        assert report_models(out) == names
    for name in names:
        store.verify(name)
    for leftover in ("journal.json", "stale", "staging", "trash"):
        assert not (out / ".gear" / leftover).exists(), leftover
    assert not list(out.rglob("*.tmp"))
    return names


@pytest.fixture
def installed(monkeypatch):
    """The child's models (registry 'fake', submissions gear_store_sub*) in this process too."""
    from embeddings import registry

    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    for name in ("gear_store_fake", "gear_store_sub", "gear_store_sub2"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    _store_child.install()
    yield
    for name in ("gear_store_fake", "gear_store_sub", "gear_store_sub2"):
        sys.modules.pop(name, None)


@pytest.fixture
def base(tmp_path, installed):
    """A results directory with a registry entry 'fake' and a submission 'sub'."""
    out = tmp_path / "base"
    cache = tmp_path / "cache"
    pipeline.run(["fake"], out_dir=out, config=CONFIG, cache_dir=cache)
    submission.add_submission("gear_store_sub", name="sub", out_dir=out, cache_dir=cache)
    assert assert_consistent(out) == ["fake", "sub"]
    return out


# ----------------------------------------------------------------------------- finding 1
def test_a_run_never_writes_over_a_submission(base, tmp_path):
    # the finding: a submission stored under a model's name was overwritten by `gear run --models NAME`
    os.rename(base / "models" / "sub", base / "models" / "fake2")
    manifest = json.loads((base / "models" / "fake2" / "entry.json").read_text())
    assert manifest["provenance"] == {"kind": "submission", "module": "gear_store_sub",
                                      "weights_sha256": "none"}
    from embeddings import registry

    registry.REGISTRY["fake2"] = registry.REGISTRY["fake"].__class__(name="fake2", module="gear_store_fake",
                                                                      description="second fake")
    before = checksums(base / "models")
    with pytest.raises(gear.errors.StoreError, match=r"'fake2' .* holds the submission of module 'gear_store_sub'"):
        pipeline.run(["fake2"], out_dir=base, config=CONFIG, cache_dir=tmp_path / "cache")
    assert checksums(base / "models") == before
    # and a submission cannot take a registered model's name (it would read as that model)
    with pytest.raises(gear.errors.StoreError, match=r"'naive' is the name of GEAR's registered model.*'naive-2'"):
        submission.add_submission("gear_store_sub2", name="naive", out_dir=base, cache_dir=tmp_path / "cache")
    # nor another module's name
    del registry.REGISTRY["fake2"]
    with pytest.raises(gear.errors.StoreError, match=r"'fake2' .* holds the submission of module 'gear_store_sub'.*--name"):
        submission.add_submission("gear_store_sub2", name="fake2", out_dir=base, cache_dir=tmp_path / "cache")
    assert checksums(base / "models") == before


# ----------------------------------------------------------------------------- finding 2
def test_a_corrupt_result_is_named_and_the_other_entries_go_on(base, tmp_path, capsys):
    npz = base / "models" / "sub" / "result.npz"
    npz.write_bytes(npz.read_bytes()[:100])  # truncated
    # gear report: works for the other entry and names the corrupt file
    assert gear_main(["report", str(base), "-q"]) == 0
    err = capsys.readouterr().err
    assert "CorruptEntryWarning" in err and str(npz) in err and "gear remove sub" in err
    assert {r["model"] for r in read_csv(base / "scores.csv")} == {"fake"}
    # gear list shows it; gear run and add-submission work beside it
    rows = {r["name"]: r["status"] for r in submission.list_results(base)}
    assert rows["fake"] == "ok" and rows["sub"].startswith("corrupt: result.npz")
    with pytest.warns(CorruptEntryWarning):
        pipeline.run(["fake"], out_dir=base, config=CONFIG, cache_dir=tmp_path / "cache")
    with pytest.warns(CorruptEntryWarning):
        submission.add_submission("gear_store_sub2", name="sub2", out_dir=base, cache_dir=tmp_path / "cache")
    # re-adding the same submission recomputes the corrupt entry in place
    again = submission.add_submission("gear_store_sub", name="sub", out_dir=base, cache_dir=tmp_path / "cache")
    assert again.created and again.name == "sub"
    assert assert_consistent(base) == ["fake", "sub", "sub2"]


def test_a_corrupt_embedding_is_named_by_score_and_recomputed_by_run(base, tmp_path):
    embedding = base / "models" / "fake" / "embedding.npy"
    embedding.write_bytes(embedding.read_bytes()[:-7])
    from gear.scoring import score_results

    with pytest.warns(CorruptEntryWarning, match=r"fake.*embedding.npy does not match its checksum"):
        rows = score_results(base)
    assert set(rows) == {"sub"}  # scored the other entry, no crash
    with pytest.raises(gear.errors.StoreError, match="embedding.npy"):
        ResultsStore(base).verify("fake")
    pipeline.run(["fake"], out_dir=base, config=CONFIG, cache_dir=tmp_path / "cache")  # recomputes it
    ResultsStore(base).verify("fake")
    assert assert_consistent(base) == ["fake", "sub"]
    # a corrupt entry can always be removed
    (base / "models" / "sub" / "result.json").write_text("{not json")
    assert gear_main(["remove", "sub", "--out", str(base), "-q"]) == 0
    assert assert_consistent(base) == ["fake"]


# ----------------------------------------------------------------------------- finding 3: crashes
def _child(argv, *, crash_at=None, cwd=None):
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.run([sys.executable, str(CHILD), *argv], env=env, capture_output=True, text=True, timeout=600)


#: command -> (argv, the entry it adds (+) or removes (-), commit steps it goes through)
COMMANDS = {
    "run": (["run", "--models", "fake", *SMALL], "+fake",
            ["staged", "journal", "rename:fake", "renamed", "scores", "leaderboard", "report"]),
    "add-submission": (["add-submission", "gear_store_sub2", "--name", "sub2"], "+sub2",
                       ["staged", "journal", "rename:sub2", "renamed", "scores", "leaderboard", "report", "outputs", "done"]),
    "remove": (["remove", "sub"], "-sub",
               ["journal", "rename:sub", "renamed", "scores", "leaderboard", "report", "outputs", "done"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_kill_at_any_commit_step_is_completed_by_the_next_command(command, base, tmp_path):
    argv, change, steps = COMMANDS[command]
    start = tmp_path / "start"
    shutil.copytree(base, start)
    if command == "run":  # the run must write its entry: start without it
        shutil.rmtree(start / "models" / "fake")
        submission.refresh_outputs(start)
    before = assert_consistent(start)
    name = change[1:]
    for step in steps:
        out = tmp_path / f"out-{step.replace(':', '-')}"
        shutil.copytree(start, out)
        common = ["--out", str(out)] + (["--cache-dir", str(tmp_path / "cache"), "-q"] if command != "remove" else ["-q"])
        done = _child(argv + common, crash_at=step)
        assert done.returncode == 137, (step, done.returncode, done.stderr[-2000:])  # the step was reached
        # the next command of any kind (here `gear list`) completes or rolls back the commit
        listed = [row["name"] for row in submission.list_results(out)]
        names = assert_consistent(out)
        assert listed == names
        if step == "staged":  # killed before the journal: nothing changed
            assert names == before, step
        elif change.startswith("+"):
            assert names == sorted(set(before) | {name}), step
        else:
            assert names == sorted(set(before) - {name}), step
        if step not in ("journal", steps[2]):
            continue
        # and rerunning the same command says so or finishes the work, leaving it consistent
        again = _child(argv + common)
        assert again.returncode in (0, 1), again.stderr[-2000:]
        final = assert_consistent(out)
        assert final == (sorted(set(before) | {name}) if change.startswith("+") else sorted(set(before) - {name}))


# ----------------------------------------------------------------------------- finding 4: errors
def _module_file(tmp_path, monkeypatch, name, source):
    folder = tmp_path / "modules"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return folder / f"{name}.py"


HEADER = """
import torch

class Model(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 8
    timestamp_embedding_size = 8

def load_model(model_file_path=""):
    return Model()

def get_timestamp_embeddings(audio, model):
    emb = get_scene_embeddings(audio, model)[:, None, :]
    return emb, torch.zeros(audio.shape[0], 1)
"""


def test_the_submissions_traceback_is_shown(tmp_path, monkeypatch, capsys):
    path = _module_file(tmp_path, monkeypatch, "gear_raising_sub", HEADER + """
def _features(audio):
    scale = 0
    return audio[:, :8] / (1 // scale)

def get_scene_embeddings(audio, model):
    return _features(audio).float()
""")
    assert gear_main(["add-submission", "gear_raising_sub", "--out", str(tmp_path / "out"), "-q", *SMALL]) == 1
    err = capsys.readouterr().err
    assert "Traceback of the submission's code" in err
    assert f'File "{path}", line' in err and "return audio[:, :8] / (1 // scale)" in err and "ZeroDivisionError" in err
    assert "gear/" not in err.split("gear add-submission: error")[0]  # none of GEAR's own frames
    assert "error (raised): gear_raising_sub.get_timestamp_embeddings" in err  # the validator's first call
    assert not (tmp_path / "out" / "models").exists()


def test_a_syntax_error_is_located_not_blamed_on_dependencies(tmp_path, monkeypatch, capsys):
    path = _module_file(tmp_path, monkeypatch, "gear_syntax_sub", "def load_model(:\n    pass\n")
    assert gear_main(["add-submission", "gear_syntax_sub", "--out", str(tmp_path / "out"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"fix the syntax error at {path}, line 1" in err and "def load_model(:" in err and "^" in err
    assert "dependency" not in err


def test_a_garbage_weights_file_is_named(tmp_path, monkeypatch, capsys):
    _module_file(tmp_path, monkeypatch, "gear_weights_sub", HEADER.replace('''def load_model(model_file_path=""):
    return Model()''', '''def load_model(model_file_path=""):
    header = open(model_file_path, "rb").read().split(b"\\n")
    model = Model()
    model.scale = float(header[3])
    return model''') + """
def get_scene_embeddings(audio, model):
    return audio[:, :8].float() * model.scale
""")
    garbage = tmp_path / "weights.bin"
    garbage.write_bytes(os.urandom(64).replace(b"\n", b"x"))
    assert gear_main(["add-submission", "gear_weights_sub", "--weights", str(garbage), "--out", str(tmp_path / "o"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "error (weights)" in err and str(garbage) in err and "IndexError" in err
    assert "model.scale = float(header[3])" in err  # the submission's line, in its traceback


# ----------------------------------------------------------------------------- finding 5: broken models
def test_a_random_model_is_refused_as_non_deterministic(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    dropout = torch.nn.Dropout(0.5)  # left in training mode: a new mask on every call
    module = make_hear_module("gear_dropout_sub", embed=lambda audio: dropout(torch.log1p(audio[:, :8].abs() + 1)))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    assert gear_main(["add-submission", module.__name__, "--out", str(tmp_path / "out"), "-q", *SMALL]) == 1
    err = capsys.readouterr().err
    assert "error (non-deterministic)" in err and "model.eval()" in err
    assert not (tmp_path / "out" / "models").exists()


def test_a_constant_embedding_is_stored_flagged(tmp_path, monkeypatch):
    module = make_hear_module("gear_zero_sub", embed=lambda audio: torch.zeros(audio.shape[0], 8))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.warns(ConstantEmbeddingWarning, match="same embedding"):
        stored = submission.add_submission(module.__name__, out_dir=tmp_path / "out", config=CONFIG, use_cache=False)
    assert stored.result.flags == ["constant-embedding"]
    row = read_csv(tmp_path / "out" / "leaderboard.csv")[0]
    assert row["flags"] == "constant-embedding"
    assert "constant-embedding" in (tmp_path / "out" / "report.html").read_text()


def test_a_huge_embedding_is_refused_before_any_audio(tmp_path, monkeypatch, capsys):
    calls = []
    module = make_hear_module("gear_huge_sub", dim=1_000_000, calls=calls)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    assert gear_main(["add-submission", module.__name__, "--out", str(tmp_path / "out"), "-q", *SMALL]) == 1
    err = capsys.readouterr().err
    assert "error (too-large)" in err and "--max-dim 1000000" in err
    assert calls == []  # refused before any call on audio
    assert gear_main(["add-submission", module.__name__, "--out", str(tmp_path / "out"), "-q", "--max-dim", "10",
                      *SMALL]) == 1


# ----------------------------------------------------------------------------- finding 6: --out
def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    loads = []
    module = make_hear_module("gear_out_sub")
    original = module.load_model
    module.load_model = lambda *a: loads.append(a) or original(*a)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    target = tmp_path / "file.txt"
    target.write_text("not a folder")
    assert gear_main(["add-submission", module.__name__, "--out", str(target), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"gear add-submission: error: --out {str(target)!r} is a file, not a folder; "
                                        f"pass a folder (it is created if needed)"]
    assert loads == [] and target.read_text() == "not a folder"
    assert gear_main(["add-submission", module.__name__, "--out", str(target / "below"), "-q"]) == 1
    assert "is a file" in capsys.readouterr().err
    assert gear_main(["add-submission", module.__name__, "--out", "/sys/gear-cannot-write", "-q"]) == 1
    assert "cannot be written" in capsys.readouterr().err and loads == []


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only folder: a read-only tmpfs mount as root (root ignores permission bits),
    else permission bits."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:  # pragma: no cover - CI runs as root
        os.chmod(folder, 0o555)
        yield folder
        os.chmod(folder, 0o755)


def test_a_read_only_out_is_refused_before_any_work(read_only_folder, monkeypatch, capsys):
    loads = []
    module = make_hear_module("gear_ro_sub")
    original = module.load_model
    module.load_model = lambda *a: loads.append(a) or original(*a)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for out in (read_only_folder, read_only_folder / "results"):
        assert gear_main(["add-submission", module.__name__, "--out", str(out), "-q"]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            f"gear add-submission: error: --out {str(out)!r} cannot be written (it is read-only); pass a folder "
            f"you can write to"]
        assert gear_main(["run", "--models", "mfcc", "--out", str(out), "-q"]) == 1
        assert "cannot be written (it is read-only)" in capsys.readouterr().err
    assert loads == [] and list(read_only_folder.iterdir()) == []
