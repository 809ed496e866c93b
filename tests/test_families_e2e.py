"""Stimulus families end to end: `gear families`, `gear synth/run --family`, the statistics of
gear.statistics, plug-in families through `gear run`, and the default run unchanged."""
import csv
import dataclasses
import json
import re
import textwrap

import numpy as np
import pytest

import synth
from conftest import make_hear_module
from gear import analysis, cli, pipeline, statistics
from gear.results import SCORE_COLUMNS
from gear.store import SHARED_SETTINGS, ResultsStore

# Tiny designs and a fast DSP model: every family runs through `gear run` in about a second.
FAMILY_DESIGNS = {
    "harmonic": ["--design", "random", "--n", "24"],
    "chirplet": ["--design", "sobol", "--n", "32"],
    "envelope": ["--design", "lhs", "--n", "24"],
    "inharmonic": ["--design", "random", "--n", "24"],
    "noise": ["--design", "random", "--n", "24"],
    "vibrato": ["--design", "random", "--n", "24"],
    "chord": ["--design", "random", "--n", "36"],
    "nuisance": ["--design", "random", "--n", "24"],
}
SMALL = ["--models", "mfcc", "--neighbors", "4", "--isomap-neighbors", "8", "--n-bootstrap", "30", "-q"]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_builtin_family_is_tested_end_to_end():
    assert set(FAMILY_DESIGNS) == {name for name in synth.family_names() if name in FAMILY_DESIGNS} \
        == {entry["name"] for entry in synth.list_families() if entry["source"].startswith("built-in")}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILY_DESIGNS))
def test_gear_run_scores_every_factor_by_its_statistic(name, tmp_path, monkeypatch):
    monkeypatch.setenv("GEAR_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert cli.main(["run", "--family", name, "--seed", "3", "--out", str(out)] + FAMILY_DESIGNS[name] + SMALL) == 0
    family = synth.family(name)
    expected = {f.name: f.statistic for f in family.factors}
    rows = read_csv(out / "scores.csv")
    assert [row["parameter"] for row in rows] == list(expected)
    columns = list(rows[0])
    mixed = set(expected.values()) != {"log_ratio"}
    assert columns == list(SCORE_COLUMNS) + (["statistic"] if mixed else [])
    n = int(FAMILY_DESIGNS[name][-1])
    for row in rows:
        assert int(row["n"]) == n and row["model"] == "mfcc"
        value = float(row["median_abs_log_ratio"])
        assert float(row["ci_low"]) <= value <= float(row["ci_high"])
        if mixed:
            assert row["statistic"] == expected[row["parameter"]]
        if expected[row["parameter"]] == "agreement":
            assert 0 <= value <= 1
    settings = json.loads((out / "run.json").read_text())
    assert settings["config"]["stimuli"]["family"] == name and settings["tone_set"]["family"] == name
    # the report colours by every factor and plays PCM (eq. 1 synthesis is the harmonic preset's alone)
    page = (out / "report.html").read_text()
    for factor in expected:
        assert f"data-key='{factor}'" in page
    data = json.loads(re.search(r"<script id='gear-data' type='application/json'>(.*?)</script>", page, re.S).group(1))
    assert data["audio"]["encoding"] == "pcm_s16le"
    assert [f["name"] for f in data["factors"]] == list(expected)
    for option, factor in zip(data["colour_options"], family.factors):
        if factor.kind == "discrete":  # one categorical colour per value
            assert option["values"] == [str(v) for v in factor.values]
            assert option["cmin"] == -0.5 and option["cmax"] == len(factor.values) - 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name,units", [
    ("chord", {"root": "per step (cause)", "quality": "per step (cause)", "inversion": "per step (cause)"}),
    ("nuisance", {"f1_hz": "per octave (cause)", "alpha": "per 1 (cause)", "gain_db": "per 6 dB (nuisance)",
                  "lowpass_hz": "per octave (nuisance)", "rt60_s": "per octave (nuisance)",
                  "bit_depth": "per step (nuisance)"}),
])
def test_gear_score_after_a_family_run(name, units, tmp_path, monkeypatch):
    """`gear run --family X` then `gear score`: disentanglement.csv has the family's factors (discrete
    ones included), each factor's distance per unit with its unit and role, and the report the
    causes-beside-nuisances table."""
    monkeypatch.setenv("GEAR_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert cli.main(["run", "--family", name, "--design", "sobol", "--n", "64", "--out", str(out)] + SMALL) == 0
    assert cli.main(["score", "--out", str(out), "-q"]) == 0
    rows = read_csv(out / "disentanglement.csv")
    factors = list(synth.family(name).parameters)
    by_metric = {}
    for row in rows:
        assert row["model"] == "mfcc"
        by_metric.setdefault(row["metric"], {})[row["parameter"]] = row
    for metric in ("probe_r2_ridge", "sensitivity", "normalised_score", "sensitivity_per_unit"):
        assert list(by_metric[metric]) == factors, metric
    for factor, row in by_metric["sensitivity_per_unit"].items():
        assert np.isfinite(float(row["value"])) and float(row["value"]) >= 0
        if factor in units:
            assert row["note"].startswith(units[factor])
    for row in by_metric["probe_r2_ridge"].values():
        assert float(row["value"]) <= 1
    if "f1_hz" in factors:  # the nuisances compared with an octave of f1
        assert float(by_metric["sensitivity_vs_f1_octave"]["f1_hz"]["value"]) == pytest.approx(1.0)
        assert list(by_metric["sensitivity_vs_f1_octave"]) == factors
    else:
        assert "sensitivity_vs_f1_octave" not in by_metric
    page = (out / "report.html").read_text()
    assert "Causes beside nuisances" in page and "sensitivity_per_unit" in page
    assert ("of the nuisances" in page) == ("f1_hz" in factors)  # nuisance family: compared with f1's octave


def test_family_run_can_be_reported_again_and_refuses_other_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("GEAR_CACHE_DIR", str(tmp_path / "cache"))
    out = str(tmp_path / "out")
    argv = ["run", "--family", "envelope", "--n", "16", "--factor", "attack_ms=2:100", "--out", out] + SMALL
    assert cli.main(argv) == 0
    config = pipeline.read_run_config(out)
    assert config.stimuli["ranges"] == {"attack_ms": [2.0, 100.0]}
    tones = config.tone_set()
    assert tones.family.name == "envelope" and tones.n_sounds == 16
    assert tones.columns["attack_ms"].min() >= 2 and tones.columns["attack_ms"].max() <= 100
    assert cli.main(["report", out, "-q"]) == 0
    # another family in the same directory: the settings rule refuses to mix it with kept entries
    other = dataclasses.replace(config, stimuli=pipeline.stimuli_spec("noise", n=16))
    with pytest.raises(ValueError, match="stimuli="):
        ResultsStore(out).check_settings(other.settings())
    assert ResultsStore(out).check_settings(config.settings()) is False


# ----------------------------------------------------------------------------- statistics
def test_difference_and_agreement_against_brute_force():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 4))
    values = rng.uniform(-6, 6, 30)
    codes = rng.integers(0, 3, 30)
    neighbours = analysis.neighbour_indices(features, n_neighbors=5)
    distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    brute = np.argsort(distances, axis=1)[:, :5]
    np.testing.assert_array_equal(np.sort(neighbours, axis=1), np.sort(brute, axis=1))
    diff = statistics.difference_scores(values, neighbours, span=12.0)
    agree = statistics.agreement_scores(codes, neighbours)
    for i in range(30):
        assert diff[i] == pytest.approx((values[brute[i]].mean() - values[i]) / 12.0)
        assert agree[i] == pytest.approx(np.mean(codes[brute[i]] == codes[i]))
    counts = np.bincount(codes)
    assert statistics.agreement_chance(codes) == pytest.approx(np.sum(counts * (counts - 1)) / (30 * 29))


def test_agreement_is_one_for_a_perfect_embedding_and_chance_for_a_shuffled_one():
    rng = np.random.default_rng(1)
    codes = np.repeat(np.arange(4), 100)
    perfect = np.eye(4)[codes] + 0.01 * rng.normal(size=(400, 4))
    theta = {"quality": codes.astype(float), "gain_db": rng.uniform(-12, 0, 400)}
    stats = {"quality": "agreement", "gain_db": "difference"}
    _, rows = statistics.score_factors(perfect, theta, statistics=stats, spans={"gain_db": 12.0}, n_neighbors=10,
                                       n_bootstrap=50)
    quality = rows[0]
    assert quality["statistic"] == "agreement" and quality["median_abs_log_ratio"] == pytest.approx(1.0)
    assert quality["chance"] == pytest.approx((4 * 100 * 99) / (400 * 399))
    shuffled = rng.normal(size=(400, 8))
    _, rows = statistics.score_factors(shuffled, theta, statistics=stats, spans={"gain_db": 12.0}, n_neighbors=10,
                                       n_bootstrap=200)
    quality, gain = rows
    assert quality["ci_low"] <= quality["chance"] <= quality["ci_high"]
    # a random embedding's |difference| is at the level of random neighbours
    assert gain["median_abs_log_ratio"] == pytest.approx(gain["chance"], rel=0.25)
    # a gain-sorted embedding: neighbours share the gain, far below chance
    _, rows = statistics.score_factors(theta["gain_db"][:, None], theta, statistics=stats, spans={"gain_db": 12.0},
                                       n_neighbors=10, n_bootstrap=50)
    assert rows[1]["median_abs_log_ratio"] < 0.1 * rows[1]["chance"]


def test_unknown_statistic_is_named():
    with pytest.raises(ValueError, match="statistic 'ranking'"):
        statistics.score_factors(np.eye(8), {"x": np.arange(8.0)}, statistics={"x": "ranking"}, spans={})


# ----------------------------------------------------------------------------- the default run
def test_default_run_is_unchanged():
    config = pipeline.GearConfig(preset="paper", grid_kwargs={"n_alpha": 6, "n_r": 5}, n_neighbors=10,
                                 isomap_neighbors=20, n_bootstrap=100)
    tone_set = config.tone_set()
    assert isinstance(tone_set, synth.ToneSet)
    np.testing.assert_array_equal(tone_set.render(16000), synth.make_grid("paper", n_alpha=6, n_r=5).render(16000))
    embedding = np.random.default_rng(0).normal(size=(tone_set.n_sounds, 12))
    result = pipeline.analyse_embedding("x", embedding, tone_set, config=config)
    ratios, rows = analysis.score_embedding(embedding, dict(zip(("f1_hz", "alpha", "r"), tone_set.theta().T)),
                                            n_neighbors=10, n_bootstrap=100)
    assert result.scores == rows and all("statistic" not in row for row in rows)
    for name in ratios:
        np.testing.assert_array_equal(result.log_ratios[name], ratios[name])
    # run.json and the analysis key of the default run do not see the new field
    assert "stimuli" not in config.settings() and "stimuli" in SHARED_SETTINGS
    assert config.settings() == {k: v for k, v in dataclasses.asdict(config).items() if k != "stimuli"}


def test_directory_written_before_stimuli_existed_still_compares_equal(tmp_path):
    store = ResultsStore.open(tmp_path / "out")
    old = {k: v for k, v in dataclasses.asdict(pipeline.GearConfig()).items() if k != "stimuli"}
    store.commit(settings=old, tone_set_config={}, refresh=False)
    staged = store.stage("naive", {"kind": "registry", "model": "naive"})
    store.commit(put=[staged], settings=old, tone_set_config={}, refresh=False)
    assert store.check_settings(pipeline.GearConfig().settings()) is False
    family = pipeline.GearConfig(stimuli=pipeline.stimuli_spec("noise", n=8))
    assert store.check_settings(family.settings(), replacing=["naive"]) is True


# ----------------------------------------------------------------------------- synth, families, bad input
def test_synth_family_writes_wavs_and_factor_columns(tmp_path):
    import soundfile as sf

    out = tmp_path / "chord"
    assert cli.main(["synth", "--family", "chord", "--design", "random", "--n", "6", "--seed", "2",
                     "--factor", "quality=major,minor", "--out", str(out), "-q"]) == 0
    rows = read_csv(out / "parameters.csv")
    assert list(rows[0]) == ["index", "file", "sample_rate", "n_samples", "root", "quality", "inversion"]
    tones = synth.family("chord").design("random", n=6, seed=2, ranges={"quality": ["major", "minor"]})
    audio = tones.render(16000)
    for i, row in enumerate(rows):
        assert row["quality"] in ("major", "minor") and row["quality"] == tones.columns["quality"][i]
        data, rate = sf.read(out / row["file"], dtype="float32")
        assert rate == 16000 and int(row["n_samples"]) == data.size
        np.testing.assert_array_equal(data, audio[i])


def test_families_command_lists_factors_and_sources(capsys):
    assert cli.main(["families"]) == 0
    text = capsys.readouterr().out
    for entry in synth.list_families():
        assert f"{entry['name']}  [{entry['source']}]" in text
        for factor in entry["factors"]:
            line = next(l for l in text.splitlines() if l.split()[:1] == [factor["name"]] and factor["statistic"] in l)
            assert factor["scale"] in line and factor["kind"] in line and factor["role"] in line
    assert cli.main(["families", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(synth.list_families(), default=str))


@pytest.mark.parametrize("argv, message", [
    (["--family", "nope"], "unknown family 'nope'"),
    (["--family", "envelope", "--design", "spiral"], "unknown design 'spiral'"),
    (["--family", "envelope", "--n", "8", "--factor", "loudness=1:2"], "unknown factor 'loudness'"),
    (["--family", "envelope", "--n", "8", "--factor", "attack_ms=50:5"], "LOW must be below HIGH"),
    (["--family", "envelope", "--n", "8", "--factor", "attack_ms=0.001:5"], "attack_ms"),
    (["--family", "envelope", "--n", "8", "--factor", "attack_ms"], "expected NAME=VALUE"),
    (["--n", "8"], "need --family"),
    (["--family", "envelope", "--n", "8", "--n-alpha", "4"], "--n-alpha is an option of the harmonic presets"),
])
@pytest.mark.parametrize("command", ["run", "synth"])
def test_bad_family_input_is_one_line_exit_2(tmp_path, capsys, command, argv, message):
    assert cli.main([command, "--out", str(tmp_path / "x"), "-q"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith(f"gear {command}: error:")
    assert not (tmp_path / "x" / "run.json").exists()


PLUGIN = '''
import numpy as np
from synth.families import Factor, Family

class Bell(Family):
    """A decaying sine (a plug-in from another package)."""
    factors = (Factor("bell_hz", "Hz", range=(200.0, 800.0), scale="log"),
               Factor("tone", "", kind="discrete", values=("pure", "bright")))

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        t = np.arange(n_samples) / sample_rate
        f = table["bell_hz"][:, None]
        bright = (table["tone"] == "bright")[:, None]
        return np.sin(2 * np.pi * f * t) + bright * 0.8 * np.sin(2 * np.pi * 3 * f * t)
'''


@pytest.mark.slow
def test_plugin_family_runs_end_to_end(tmp_path, monkeypatch, capsys):
    (tmp_path / "gear_bell_e2e").mkdir()
    (tmp_path / "gear_bell_e2e" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "gear_bell_e2e-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gear-bell-e2e\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gear.families]\nbell_e2e = gear_bell_e2e:Bell\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GEAR_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["families"]) == 0
    listing = capsys.readouterr().out
    assert "bell_e2e  [entry point gear.families:bell_e2e" in listing and "gear-bell-e2e 0.1" in listing
    out = tmp_path / "out"
    assert cli.main(["run", "--family", "bell_e2e", "--design", "random", "--n", "24", "--out", str(out)] + SMALL) == 0
    rows = read_csv(out / "scores.csv")
    assert [(r["parameter"], r["statistic"]) for r in rows] == [("bell_hz", "log_ratio"), ("tone", "agreement")]
    # MFCCs tell a pure sine from one with a strong third harmonic: well above chance
    tones = pipeline.read_run_config(out).tone_set()
    chance = statistics.agreement_chance(tones.codes("tone"))
    assert float(rows[1]["median_abs_log_ratio"]) > chance
    assert (out / "report.html").exists()


def test_add_submission_with_a_family_writes_its_factors(tmp_path, monkeypatch, capsys):
    module = make_hear_module("gear_family_submission")
    monkeypatch.setitem(__import__("sys").modules, module.__name__, module)
    out = tmp_path / "out"
    argv = ["add-submission", module.__name__, "--name", "spectral", "--out", str(out), "--family", "chord",
            "--design", "random", "--n", "24", "--seed", "5", "--neighbors", "4", "--isomap-neighbors", "8",
            "--n-bootstrap", "30", "--cache-dir", str(tmp_path / "cache"), "-q"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    rows = read_csv(out / "scores.csv")
    assert [(r["parameter"], r["statistic"]) for r in rows] == [
        ("root", "agreement"), ("quality", "agreement"), ("inversion", "agreement")]
    tones = read_csv(out / "models" / "spectral" / "tones.csv")
    assert list(tones[0]) == ["index", "root", "quality", "inversion", "sample_rate", "native_n_samples",
                              "n_samples", "effective_duration_s"]
    expected = pipeline.read_run_config(out).tone_set()
    assert [t["quality"] for t in tones] == expected.columns["quality"].tolist()
    assert [int(t["root"]) for t in tones] == expected.columns["root"].tolist()
