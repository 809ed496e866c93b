"""The stimulus-family API: designs, identity, listing, plug-ins and bad input."""
import json
import textwrap
import warnings

import numpy as np
import pytest

import synth
from synth import SynthError
from synth.families import Factor, Family

ISSUE_FACTORS = {
    "harmonic": ["f1_hz", "alpha", "r"],
    "chirplet": ["carrier_hz", "am_hz", "fm_oct_per_s"],
    "envelope": ["f1_hz", "attack_ms", "decay_ms"],
    "inharmonic": ["f1_hz", "inharmonicity_b"],
    "noise": ["f1_hz", "hnr_db"],
    "vibrato": ["f1_hz", "vibrato_hz", "vibrato_cents"],
    "chord": ["root", "quality", "inversion"],
    "nuisance": ["f1_hz", "alpha", "r", "gain_db", "lowpass_hz", "rt60_s", "bit_depth"],
}


def test_listing_has_every_builtin_with_its_factors():
    listing = {entry["name"]: entry for entry in synth.list_families()}
    assert set(ISSUE_FACTORS) <= set(listing)
    for name, factors in ISSUE_FACTORS.items():
        entry = listing[name]
        assert [f["name"] for f in entry["factors"]] == factors
        assert entry["source"].startswith("built-in")
        for f in entry["factors"]:
            assert {"unit", "range", "scale", "kind", "role", "statistic"} <= set(f)
    roles = {f["name"]: f["role"] for f in listing["nuisance"]["factors"]}
    assert roles["gain_db"] == roles["rt60_s"] == "nuisance" and roles["f1_hz"] == "cause"
    stats = {f["name"]: f["statistic"] for e in listing.values() for f in e["factors"]}
    assert stats["gain_db"] == stats["fm_oct_per_s"] == stats["hnr_db"] == "difference"
    assert stats["quality"] == stats["bit_depth"] == "agreement" and stats["attack_ms"] == "log_ratio"
    json.dumps(synth.list_families())


@pytest.mark.parametrize("name", sorted(ISSUE_FACTORS))
def test_every_family_renders_float32_peak_normalised_and_deterministic(name):
    tones = synth.family(name).design("random", n=6, seed=3)
    for rate in (16000, 22050):
        audio = tones.render(rate)
        assert audio.dtype == np.float32 and audio.shape == (6, tones.n_samples(rate))
        assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 0.5 + 1e-6
        assert audio.tobytes() == tones.render(rate).tobytes()
    if name != "nuisance":  # nuisance: gain after normalisation (see its own test)
        np.testing.assert_allclose(np.abs(audio).max(axis=1), 0.5, rtol=1e-6)
    # a subset renders the same tones (noise is seeded per tone, not per batch)
    np.testing.assert_array_equal(tones.subset([4, 1]).render(16000), tones.render(16000)[[4, 1]])
    np.testing.assert_array_equal(tones.render(16000, indices=[2]), tones.render(16000)[[2]])


def test_harmonic_grid_is_the_paper_grid():
    tones = synth.family("harmonic").design("grid", seed=0)
    paper = synth.paper_grid(seed=0)
    np.testing.assert_array_equal(tones.theta(), paper.theta())
    for rate in (16000, 44100):
        assert tones.render(rate).tobytes() == paper.render(rate).tobytes()
    np.testing.assert_array_equal(tones.grid_index[:, 1:], paper.grid_index[:, 1:])


@pytest.mark.parametrize("name,ranges", [("harmonic", {"f1_hz": (100, 240)}), ("chirplet", {}), ("envelope", {}),
                                         ("inharmonic", {"f1_hz": (55, 200), "inharmonicity_b": (1e-5, 1e-3)}),
                                         ("vibrato", {}), ("chord", {})])
def test_synthesised_analytically_at_each_rate(name, ranges):
    # The same continuous signal sampled at 48 kHz and 16 kHz (ranges keep every partial
    # below 8 kHz): every third 48 kHz sample is the 16 kHz sample, up to the per-rendering
    # peak normalisation. No resampling anywhere.
    tones = synth.family(name).design("random", n=4, seed=5, ranges=ranges)
    low, high = tones.render(16000).astype(np.float64), tones.render(48000).astype(np.float64)[:, ::3]
    assert low.shape == high.shape
    scale = np.sum(low * high, axis=1) / np.sum(high * high, axis=1)
    assert np.all((scale > 0.8) & (scale < 1.25))  # sampled peaks differ between rates
    np.testing.assert_allclose(high * scale[:, None], low, atol=2e-4)


def test_identity_config_and_hash():
    family = synth.family("envelope")
    a = family.design("sobol", n=16, seed=1, ranges={"attack_ms": (5, 50)})
    b = synth.family("envelope").design("sobol", n=16, seed=1, ranges={"attack_ms": (5, 50)})
    assert a.config_hash() == b.config_hash()
    for other in (family.design("sobol", n=16, seed=2, ranges={"attack_ms": (5, 50)}),
                  family.design("sobol", n=16, seed=1), family.design("lhs", n=16, seed=1),
                  synth.family("envelope", duration_s=0.6).design("sobol", n=16, seed=1, ranges={"attack_ms": (5, 50)})):
        assert other.config_hash() != a.config_hash()
    config = json.loads(json.dumps(a.config()))
    assert config["family"] == "envelope" and config["design"] == "sobol" and config["seed"] == 1
    assert config["n_sounds"] == 16 and config["ranges"]["attack_ms"] == [5.0, 50.0]
    table = a.table(16000)
    assert list(table)[:4] == ["index", "f1_hz", "attack_ms", "decay_ms"]
    assert np.all(table["n_samples"] == 8000) and a.theta().shape == (16, 3)


def test_qmc_designs_fill_each_factor_on_its_scale():
    tones = synth.family("inharmonic").design("lhs", n=64, seed=0)
    # Latin hypercube on a log scale: one point in each of 64 equal log-strata.
    b = tones.columns["inharmonicity_b"]
    counts, _ = np.histogram(np.log(b), bins=np.linspace(np.log(1e-5), np.log(1e-2), 65))
    assert np.all(counts == 1)
    sob = synth.family("chirplet").design("sobol", n=256, seed=0)
    gamma = sob.columns["fm_oct_per_s"]  # linear scale: uniform over (-4, 4)
    counts, _ = np.histogram(gamma, bins=np.linspace(-4, 4, 9))
    assert np.all(counts == 32)
    with pytest.warns(UserWarning, match="power of 2"):
        synth.family("chirplet").design("sobol", n=100, seed=0)


def test_factorial_grid_and_sweep_structure():
    chord = synth.family("chord").design("factorial")
    assert chord.n_sounds == 12 * 6 * 3
    assert len({tuple(row) for row in chord.grid_index}) == chord.n_sounds
    np.testing.assert_array_equal(chord.codes("quality"), chord.grid_index[:, 1])
    grid = synth.family("vibrato").design("grid", grid={"vibrato_hz": 3, "vibrato_cents": 4}, seed=0)
    assert grid.n_sounds == 12 and np.all(grid.grid_index[:, 0] == -1)
    np.testing.assert_allclose(np.unique(grid.columns["vibrato_cents"]), np.geomspace(10, 100, 4))
    sweep = synth.family("nuisance").design("sweep", factor="gain_db", steps=5, n=15, seed=0)
    for block in range(3):
        rows = sweep.block == block
        np.testing.assert_allclose(sweep.columns["gain_db"][rows], np.linspace(-12, 0, 5))
        for name in ("f1_hz", "rt60_s", "bit_depth"):
            assert np.unique(sweep.columns[name][rows]).size == 1
    assert sweep.roles["gain_db"] == "nuisance" and sweep.roles["alpha"] == "cause"
    assert sweep.statistics["bit_depth"] == "agreement" and sweep.scales["lowpass_hz"] == "log"
    major = synth.family("chord").design("random", n=5, seed=0, fixed={"quality": "major"})
    assert set(major.columns["quality"]) == {"major"}
    assert major.config_hash() == synth.family("chord").design("random", n=5, seed=0, fixed={"quality": "major"}).config_hash()
    one = synth.family("noise").design("random", n=5, seed=0, fixed={"f1_hz": 220.0})
    assert np.all(one.columns["f1_hz"] == 220.0) and "f1_hz" not in one.config()["ranges"]


class _One(Family):
    """A one-factor test family: a sine at f_hz."""

    name = "one"
    factors = (Factor("f_hz", "Hz", range=(100.0, 1000.0), scale="log"),)
    behaviour = "ok"

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        t = np.arange(n_samples) / sample_rate
        audio = np.sin(2 * np.pi * table["f_hz"][:, None] * t)
        if self.behaviour == "shape":
            return audio[:, :-1]
        if self.behaviour == "dtype":
            return (audio * 1000).astype(np.int16)
        if self.behaviour == "nan":
            audio[-1, 3] = np.nan
        if self.behaviour == "loud":
            self.normalize = False
            return 2 * audio
        return audio


@pytest.mark.parametrize("design,kwargs", [("grid", dict(grid={"f_hz": 4})), ("factorial", dict(n=4)),
                                           ("sobol", dict(n=4)), ("lhs", dict(n=4)), ("random", dict(n=4)),
                                           ("sweep", dict(factor="f_hz", steps=4, n=4))])
def test_one_factor_family_on_every_design(design, kwargs):
    tones = _One().design(design, seed=0, **kwargs)
    assert tones.n_sounds == 4 and tones.render(8000).shape == (4, 2000)
    assert np.all((tones.columns["f_hz"] >= 100) & (tones.columns["f_hz"] <= 1000))


@pytest.mark.parametrize("behaviour,match", [("shape", r"family 'one' returned audio of shape \(2, 1999\)"),
                                             ("dtype", "family 'one' returned dtype int16"),
                                             ("nan", r"family 'one' returned NaN or inf for the tone with f_hz="),
                                             ("loud", "family 'one' returned audio above full scale")])
def test_broken_family_output_is_named(behaviour, match):
    family = _One()
    family.behaviour = behaviour
    with pytest.raises(SynthError, match=match):
        family.render({"f_hz": [200.0, 300.0]}, sample_rate=8000)


@pytest.mark.parametrize("call,match", [
    (lambda: synth.family("chirplett"), "unknown family 'chirplett'; choose one of harmonic"),
    (lambda: synth.family("chirplet").design("halton", n=4), "family 'chirplet': unknown design 'halton'"),
    (lambda: synth.family("chirplet").design("random", n=4, ranges={"attack_ms": (1, 2)}),
     "family 'chirplet': unknown factor 'attack_ms'; factors are carrier_hz, am_hz, fm_oct_per_s"),
    (lambda: synth.family("envelope").design("random", n=4, ranges={"attack_ms": (0.1, 50)}),
     r"family 'envelope': factor 'attack_ms': range \(0.1, 50\) leaves the allowed range; choose within \[0.5, 250\] ms"),
    (lambda: synth.family("envelope").design("random", n=4, ranges={"attack_ms": (50, 5)}), "low < high"),
    (lambda: synth.family("chord").design("random", n=4, ranges={"quality": ["major", "dom7"]}),
     "factor 'quality': value 'dom7' is not allowed; choose one of 'major'"),
    (lambda: synth.family("noise").render({"f1_hz": [200.0], "hnr_db": [np.nan]}, sample_rate=16000),
     "family 'noise': factor 'hnr_db': value nan is not allowed"),
    (lambda: synth.family("noise").render({"f1_hz": [200.0]}, sample_rate=16000), "lacks factor 'hnr_db'"),
    (lambda: synth.family("chirplet").render({"carrier_hz": [7000.0], "am_hz": [8.0], "fm_oct_per_s": [2.0]},
                                             sample_rate=16000), "'carrier_hz'=7000.0 puts the tone at .* Nyquist"),
    (lambda: synth.family("chirplet", duration=1), "unknown option 'duration'"),
    (lambda: synth.family("nuisance").design("sweep", factor="gain_db", steps=4, n=10), "multiple of the 4 steps"),
    (lambda: synth.family("harmonic").design("grid", grid={"alpha": 0}), "needs an integer number of grid points"),
    (lambda: synth.family("harmonic").design("random", n=4, seed=-1), "seed must be an integer >= 0"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(SynthError, match=match):
        call()


PLUGIN = '''
import numpy as np
from synth.families import Factor, Family

class Bell(Family):
    """A decaying sine (a plug-in from another package)."""
    factors = (Factor("bell_hz", "Hz", range=(200.0, 800.0), scale="log"),
               Factor("ring_ms", "ms", range=(20.0, 200.0), scale="log"))

    def synthesise(self, table, *, sample_rate, n_samples, seed, index):
        t = np.arange(n_samples) / sample_rate
        return np.sin(2 * np.pi * table["bell_hz"][:, None] * t) * np.exp(-t / (table["ring_ms"][:, None] / 1e3))

def not_a_family():
    return 42
'''


def test_plugin_family_through_entry_point_metadata(tmp_path, monkeypatch):
    (tmp_path / "gear_bell_plugin").mkdir()
    (tmp_path / "gear_bell_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "gear_bell_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gear-bell-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[gear.families]\nbell = gear_bell_plugin:Bell\nbroken = gear_bell_plugin:not_a_family\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {"bell", "broken"} <= set(synth.family_names())
    listing = {entry["name"]: entry for entry in synth.list_families()}
    assert [f["name"] for f in listing["bell"]["factors"]] == ["bell_hz", "ring_ms"]
    assert "gave int" in listing["broken"]["error"] and not listing["broken"]["factors"]
    bell = synth.family("bell")
    entry = bell.describe()
    assert entry["name"] == "bell" and "gear-bell-plugin 0.1" in entry["source"]
    assert [f["name"] for f in entry["factors"]] == ["bell_hz", "ring_ms"]
    tones = bell.design("sobol", n=8, seed=0)
    audio = tones.render(16000)
    assert audio.shape == (8, 4000) and audio.dtype == np.float32
    np.testing.assert_allclose(np.abs(audio).max(axis=1), 0.5, rtol=1e-6)
    assert tones.config()["source"].startswith("entry point gear.families:bell")
    with pytest.raises(SynthError, match="family 'broken': plug-in 'gear_bell_plugin:not_a_family' gave int"):
        synth.family("broken")


@pytest.mark.parametrize("n_partials", [1, 4, 8, 12])  # Horner's rule up to 8 partials, Clenshaw above
def test_chebyshev_partials_match_the_cosines(n_partials):
    from synth.families.engine import HORNER_MAX_PARTIALS, chebyshev_partials

    rng = np.random.default_rng(n_partials)
    phase = rng.uniform(0, 2 * np.pi, size=(3, 4000))
    amps = rng.uniform(0.1, 1.0, size=(3, n_partials)) / np.arange(1, n_partials + 1)
    amps[1, n_partials // 2:] = 0.0  # a row whose upper partials are dropped
    p = np.arange(1, n_partials + 1)
    truth = np.einsum("nkp,np->nk", np.cos(phase[:, :, None] * p), amps)
    window = np.hanning(4000)
    got = chebyshev_partials(np.cos(phase).astype(np.float32), amps, window=window.astype(np.float32))
    assert got.dtype == np.float32 and (n_partials <= HORNER_MAX_PARTIALS) == (n_partials < 12)
    error = np.abs(got - truth * window).max() / amps.sum(axis=1).max()
    assert error < 3e-6, error
