"""The HTML report: standalone, offline, complete data, atomic write, clear errors.

The page is read back here with the standard library's HTML parser and numpy alone
(independently of gear.report's own encoders); tests/test_report_browser.py runs it in
a real browser.
"""
import base64
import html.parser
import json
import os
import re

import numpy as np
import plotly.graph_objects as go
import plotly.offline
import pytest

from gear import ParameterError
from gear.report import figure_fragment, leaderboard_section, stratified_subsample, write_report
from gear.results import ModelResult

PARAMS = ("f1_hz", "alpha", "r")
DTYPES = {"f8": "<f8", "f4": "<f4", "i4": "<i4", "i2": "<i2", "i1": "i1", "u1": "u1", "u2": "<u2", "u4": "<u4"}


class _Page(html.parser.HTMLParser):
    """Collects tags, their attributes and the text of <script>/<style> elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.scripts = []  # (attrs, text)
        self.styles = []
        self._open = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in ("script", "style"):
            self._open = (tag, attrs, [])

    def handle_data(self, data):
        if self._open is not None:
            self._open[2].append(data)

    def handle_endtag(self, tag):
        if self._open is not None and tag == self._open[0]:
            kind, attrs, parts = self._open
            (self.scripts if kind == "script" else self.styles).append((attrs, "".join(parts)))
            self._open = None


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _script(page, element_id):
    found = [text for attrs, text in page.scripts if attrs.get("id") == element_id]
    assert len(found) == 1, f"expected one <script id={element_id}>, found {len(found)}"
    return found[0]


def _payload(page):
    return json.loads(_script(page, "gear-data"))


def _decode(spec):
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=DTYPES[spec["dtype"]])


def _data(n=30, n_models=2, seed=0, n_samples=64):
    rng = np.random.default_rng(seed)
    parameters = {
        "index": np.arange(n) * 3 + 5,
        "f1_hz": rng.uniform(180, 380, n),
        "alpha": rng.uniform(0, 2, n),
        "r": rng.uniform(0, 1, n),
        "f1_bins": rng.integers(12, 25, n).astype(float),
        "sample_rate": np.full(n, 16000),  # extra columns (as in ToneSet.table) are ignored
    }
    parameters["alpha"][0] = 0.0
    audio = rng.uniform(-1, 1, (n, n_samples)).astype(np.float32)
    audio[0, :4] = [1.0, -1.0, 0.0, 0.5 / 32767]
    results = []
    for k in range(n_models):
        log_ratios = {key: rng.normal(size=n) for key in PARAMS}
        log_ratios["alpha"][0] = np.nan
        scores = []
        for key in PARAMS:
            values = np.abs(log_ratios[key][np.isfinite(log_ratios[key])])
            scores.append(
                dict(parameter=key, median_abs_log_ratio=float(np.median(values)), iqr=0.5, ci_low=0.1,
                     ci_high=0.9, n=int(values.size), chance=0.7)
            )
        results.append(
            ModelResult(
                name=f"model-{k}",
                description=f"model number {k}",
                isomap=rng.normal(size=(n, 3)),
                log_ratios=log_ratios,
                scores=scores,
                warnings=[f"warning of model {k}"] if k % 2 else [],
                n_components=1,
                embedding_dim=10 + k,
            )
        )
    return results, parameters, audio


@pytest.fixture
def written(tmp_path):
    results, parameters, audio = _data()
    path = write_report(tmp_path / "report.html", results, parameters=parameters, audio=audio, sample_rate=16000)
    return path, results, parameters, audio


def test_writes_one_standalone_file(written):
    path, results, _, _ = written
    assert path.is_file() and path.name == "report.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    plotly_js = plotly.offline.get_plotlyjs()
    # plotly.js embedded exactly once, whatever the number of figures
    assert text.count(plotly_js[:300]) == 1 and text.count(plotly_js[-300:]) == 1
    assert len(results) == 2
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_no_network_references(written):
    path = written[0]
    page = _parse(path)
    remote = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
    for tag, attrs in page.tags:
        for key in ("src", "href", "srcset", "poster", "data"):
            value = attrs.get(key)
            if value is None:
                continue
            if tag == "a" and key == "href":
                assert value.startswith("#"), f"link {value!r} leaves the page"
            else:
                assert not remote.match(value), f"<{tag} {key}={value!r}> loads from the network"
        assert not (tag == "script" and "src" in attrs), "scripts must be inline"
        assert not (tag == "link" and "stylesheet" in attrs.get("rel", "")), "styles must be inline"
    for _, css in page.styles:
        assert "@import" not in css and not re.search(r"url\(\s*['\"]?\s*(https?:)?//", css)
        assert "@font-face" not in css
    # outside plotly.js itself (which names URLs it would only use for map traces), no URL at all
    text = path.read_text(encoding="utf-8").replace(plotly.offline.get_plotlyjs(), "")
    assert len(text) < path.stat().st_size - 4_000_000
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), re.search(
        r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE)


def test_one_trace_per_model_with_all_points(written):
    path, results, _, _ = written
    payload = _payload(_parse(path))
    assert [m["name"] for m in payload["models"]] == [r.name for r in results]
    assert payload["n_sounds"] == 30
    for model, result in zip(payload["models"], results):
        traces = model["figure"]["data"]
        assert len(traces) == 1 and traces[0]["type"] == "scatter3d"
        coordinates = np.stack([_decode(traces[0][axis]) for axis in "xyz"], axis=1)
        assert coordinates.shape == (30, 3)
        np.testing.assert_allclose(coordinates, result.isomap, rtol=1e-6, atol=1e-6)
        assert traces[0]["marker"]["colorscale"][0][1].lower() in ("rgb(5,48,97)", "#053061")  # RdBu_r: blue low
        assert "customdata" in traces[0]["hovertemplate"]
        # every div the script draws into exists in the page
        assert f"id='{model['id']}-scatter'" in path.read_text(encoding="utf-8")


def test_distributions_hold_the_finite_log_ratios(written):
    path, results, _, _ = written
    boxes = _payload(_parse(path))["distributions"]["data"]
    assert len(boxes) == len(PARAMS) * len(results)
    for k, box in enumerate(boxes):
        parameter, result = PARAMS[k // len(results)], results[k % len(results)]
        assert box["type"] == "box" and box["name"] == result.name
        expected = result.log_ratios[parameter]
        expected = expected[np.isfinite(expected)]
        np.testing.assert_allclose(_decode(box["y"]), expected, rtol=1e-6, atol=1e-6)


def test_parameters_round_trip(written):
    path, _, parameters, _ = written
    stored = _payload(_parse(path))["parameters"]
    assert set(stored) == {"index", "f1_hz", "alpha", "r", "f1_bins"}
    for key, spec in stored.items():
        np.testing.assert_array_equal(_decode(spec), parameters[key])
    assert stored["index"]["dtype"] == "i4"


def test_audio_round_trip(written):
    path, _, _, audio = written
    page = _parse(path)
    payload = _payload(page)
    assert payload["audio"]["encoding"] == "pcm_s16le" and payload["sample_rate"] == 16000
    pcm = np.frombuffer(base64.b64decode(_script(page, payload["audio"]["element"])), dtype="<i2")
    decoded = pcm.reshape(payload["n_sounds"], payload["n_samples"]) / payload["audio"]["scale"]
    assert decoded.shape == audio.shape
    np.testing.assert_allclose(decoded, audio, rtol=0, atol=0.5 / 32767 + 1e-7)
    assert pcm[0] == 32767 and pcm[1] == -32767 and pcm[2] == 0 and pcm[3] in (0, 1)


def test_audio_can_be_left_out(tmp_path):
    results, parameters, _ = _data()
    path = write_report(tmp_path / "r.html", results, parameters=parameters, audio=None, sample_rate=16000)
    page = _parse(path)
    assert _payload(page)["audio"] is None
    assert not [attrs for attrs, _ in page.scripts if attrs.get("id") == "gear-audio"]


def test_page_size_is_dominated_by_plotly_and_audio(tmp_path):
    results, parameters, audio = _data(n=200, n_samples=1024, n_models=3)
    path = write_report(tmp_path / "r.html", results, parameters=parameters, audio=audio, sample_rate=16000)
    audio_bytes = 4 * -(-audio.size * 2 // 3)  # base64 of int16
    overhead = path.stat().st_size - len(plotly.offline.get_plotlyjs()) - audio_bytes
    assert 0 < overhead < 300_000, overhead


def test_scores_warnings_and_sections_are_shown(tmp_path):
    results, parameters, audio = _data(n_models=3)
    results[1].warnings = ["<b>graph</b> is disconnected"] * 3
    results[0].name = "naive & <co>"
    fig = go.Figure(go.Bar(x=[1, 2], y=[3, 4]))
    path = write_report(
        tmp_path / "r.html",
        results,
        parameters=parameters,
        audio=audio,
        sample_rate=16000,
        title="My <GEAR> run",
        notes=["K = 40"],
        extra_sections=[("Cards", figure_fragment(fig, div_id="card-fig"))],
        per_model_sections={"model-1": [("Disentanglement", "<p id='per-model-p'>card</p>")]},
    )
    text = path.read_text(encoding="utf-8")
    page = _parse(path)
    assert "<title>My &lt;GEAR&gt; run</title>" in text
    assert "naive &amp; &lt;co&gt;" in text and "naive & <co>" not in text.split("<script id='gear-data'")[0]
    # the warning is escaped, shown once with its count, and flagged in the score table
    assert text.count("&lt;b&gt;graph&lt;/b&gt; is disconnected") == 1 and "(×3)" in text
    assert "<b>graph</b>" not in text
    assert "class='warn-flag'" in text
    # one table row per (model, parameter) in the summary table
    summary = text.split("<table class='scores'>")[1].split("</table>")[0]
    assert summary.count("<tr") == 1 + len(results) * len(PARAMS)
    for result in results:
        for row in result.scores:
            assert f"{row['median_abs_log_ratio']:.3g}"[:4] in summary
    assert "K = 40" in text
    assert 'id="card-fig"' in text and "Plotly.newPlot" in text
    # the per-model fragment sits inside model-1's section, before the next model's
    section = text.split("data-model='model-1'")[1].split("data-model='model-2'")[0]
    assert "id='per-model-p'" in section
    assert any(tag == "p" and attrs.get("id") == "per-model-p" for tag, attrs in page.tags)


def test_write_is_atomic(tmp_path, monkeypatch):
    results, parameters, audio = _data()
    path = tmp_path / "report.html"
    path.write_text("previous report")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(path, results, parameters=parameters, audio=audio, sample_rate=16000)
    assert path.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    monkeypatch.undo()
    write_report(path, results, parameters=parameters, audio=audio, sample_rate=16000)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_creates_missing_folders(tmp_path):
    results, parameters, audio = _data()
    path = write_report(tmp_path / "a" / "b" / "r.html", results, parameters=parameters, audio=audio,
                        sample_rate=16000)
    assert path.is_file()


def _bad_cases():
    def case(match, **change):
        return pytest.param(change, match, id=match.split()[0] + "-" + "-".join(change))

    return [
        case("has 29 values", parameters=lambda p: {**p, "alpha": p["alpha"][:-1]}),
        case("lack", parameters=lambda p: {k: v for k, v in p.items() if k != "r"}),
        case("must be 1-D", parameters=lambda p: {**p, "r": p["r"][:, None]}),
        case("not finite", parameters=lambda p: {**p, "f1_hz": np.where(np.arange(30) == 4, np.nan, p["f1_hz"])}),
        case("integers", parameters=lambda p: {**p, "index": p["index"] + 0.5}),
        case("dict of 1-D arrays", parameters=lambda p: list(p.values())),
        case("shape \\(n_sounds, 3\\)", results=lambda r: _with(r, 0, isomap=r[0].isomap[:, :2])),
        case("isomap has 29 rows", results=lambda r: _with(r, 1, isomap=r[1].isomap[:-1])),
        case("isomap contains NaN", results=lambda r: _with(r, 0, isomap=np.full((30, 3), np.nan))),
        case("log_ratios 'r' has 31", results=lambda r: _with(r, 0, log_ratios={**r[0].log_ratios, "r": np.zeros(31)})),
        case("lacks \\['chance'\\]", results=lambda r: _with(r, 0, scores=[{k: v for k, v in r[0].scores[0].items() if k != "chance"}])),
        case("appears twice", results=lambda r: [r[0], r[0]]),
        case("results is empty", results=lambda r: []),
        case("ModelResult", results=lambda r: [{"name": "x"}]),
        case("must be 2-D", audio=lambda a: a[0]),
        case("audio has 29 rows", audio=lambda a: a[:-1]),
        case("floating point", audio=lambda a: (a * 32767).astype(np.int16)),
        case("peak of 2", audio=lambda a: a * 2),
        case("NaN or inf", audio=lambda a: np.where(a > 0.9, np.nan, a)),
        case("sample_rate=0", sample_rate=lambda s: 0),
        case("sample_rate must be a number", sample_rate=lambda s: "fast"),
        case("loads an external resource", extra_sections=lambda e: [("CDN", "<script src='https://cdn.x/y.js'></script>")]),
        case("loads an external resource", extra_sections=lambda e: [("font", "<style>@import url(//fonts.x/css);</style>")]),
        case("\\(title, html\\) pairs", extra_sections=lambda e: ["just a string"]),
        case("not in results", per_model_sections=lambda e: {"nope": [("t", "<p></p>")]}),
    ]


def _with(results, k, **change):
    results = list(results)
    fields = dict(vars(results[k]))
    fields.update(change)
    results[k] = ModelResult(**fields)
    return results


@pytest.mark.parametrize("change, match", _bad_cases())
def test_bad_input_raises_parameter_error(tmp_path, change, match):
    results, parameters, audio = _data()
    kwargs = dict(parameters=parameters, audio=audio, sample_rate=16000, extra_sections=(), per_model_sections=None)
    for key, make in change.items():
        if key == "results":
            results = make(results)
        else:
            kwargs[key] = make(kwargs[key])
    path = tmp_path / "r.html"
    with pytest.raises(ParameterError, match=match):
        write_report(path, results, **kwargs)
    assert not path.exists()


def test_path_that_is_a_folder_raises(tmp_path):
    results, parameters, audio = _data()
    with pytest.raises(ParameterError, match="is a folder"):
        write_report(tmp_path, results, parameters=parameters, audio=audio, sample_rate=16000)


def test_figure_fragment_has_no_plotly_js():
    fragment = figure_fragment(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), div_id="frag", height=300)
    assert "id=\"frag\"" in fragment and "Plotly.newPlot" in fragment
    assert len(fragment) < 100_000  # plotly.js (~4.8 MB) is not in it
    with pytest.raises(ParameterError, match="plotly Figure"):
        figure_fragment("not a figure")


def test_model_without_scores_or_log_ratios_still_listed(tmp_path):
    results, parameters, audio = _data(n_models=2)
    results = _with(results, 1, scores=[], log_ratios={})
    path = write_report(tmp_path / "r.html", results, parameters=parameters, audio=audio, sample_rate=16000)
    text = path.read_text(encoding="utf-8")
    summary = text.split("<table class='scores'>")[1].split("</table>")[0]
    assert "model-1" in summary and "no scores" in summary
    boxes = _payload(_parse(path))["distributions"]["data"]
    assert [box["name"] for box in boxes] == ["model-0"] * len(PARAMS)


# ----------------------------------------------------------------------------- large n
def _eq1_tones(f1_hz, alpha, r, sample_rate, n_samples, peak=0.5):
    """Eq. 1 computed here directly (one cosine per partial), independently of synth/ and gear/."""
    t = np.arange(n_samples) / sample_rate
    p = np.arange(1, 33)[:, None]
    out = np.zeros((len(f1_hz), n_samples))
    for i, (f1, a, rr) in enumerate(zip(f1_hz, alpha, r)):
        amp = (1 + (-1.0) ** p * rr) / p ** a
        amp[p * f1 >= sample_rate / 2] = 0
        out[i] = np.sum(amp * np.cos(2 * np.pi * p * f1 * t), axis=0)
    out *= 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_samples) / n_samples)
    return out * (peak / np.abs(out).max(axis=1, keepdims=True))


def _large_design(n, seed=0):
    """n tones on 13 pitches (DFT bins) with continuous alpha and r."""
    rng = np.random.default_rng(seed)
    f1_bins = rng.integers(12, 25, n).astype(float)
    return {
        "index": np.arange(n),
        "f1_hz": f1_bins * 16000 / 1024,
        "alpha": rng.uniform(0, 2, n),
        "r": rng.uniform(0, 1, n),
        "f1_bins": f1_bins,
    }


def _large_results(parameters, n_models=2, seed=0):
    rng = np.random.default_rng(seed)
    n = len(parameters["index"])
    results = []
    for k in range(n_models):
        log_ratios = {key: rng.normal(size=n) for key in PARAMS}
        scores = [dict(parameter=key, median_abs_log_ratio=0.2 + k, iqr=0.1, ci_low=0.1, ci_high=0.3, n=n, chance=0.7)
                  for key in PARAMS]
        results.append(ModelResult(name=f"big-{k}", description="", isomap=rng.normal(size=(n, 3)),
                                   log_ratios=log_ratios, scores=scores))
    return results


def _strata(parameters):
    """Joint strata as the report documents them: a factor's value when it takes at most 16
    values, else its quintile."""
    codes = []
    for key in PARAMS:
        values = parameters[key]
        distinct = np.unique(values)
        if distinct.size <= 16:
            codes.append(np.searchsorted(distinct, values))
        else:
            codes.append(np.searchsorted(np.quantile(values, [0.2, 0.4, 0.6, 0.8]), values, side="right"))
    return np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)[1].ravel()


@pytest.fixture(scope="module")
def large_report(tmp_path_factory):
    from synth import harmonic_tones

    parameters = _large_design(30_000)
    audio = harmonic_tones(parameters["f1_hz"], parameters["alpha"], parameters["r"], sample_rate=16000,
                           n_samples=1024)
    results = _large_results(parameters)
    path = write_report(tmp_path_factory.mktemp("large") / "report.html", results, parameters=parameters,
                        audio=audio, sample_rate=16000)
    return path, results, parameters, audio


def test_large_report_draws_a_stated_stratified_subsample(large_report):
    path, results, parameters, _ = large_report
    assert path.stat().st_size <= 50_000_000, path.stat().st_size
    page = _parse(path)
    payload = _payload(page)
    assert payload["n_sounds"] == 30_000
    sample = payload["subsample"]
    rows = _decode(sample["rows"])
    assert sample["n_plotted"] == rows.size == 20_000 and sample["max_points"] == 20_000
    assert np.unique(rows).size == rows.size and rows.min() >= 0 and rows.max() < 30_000
    # every trace draws the subsample's rows, and the parameters are theirs
    for model, result in zip(payload["models"], results):
        trace = model["figure"]["data"][0]
        coordinates = np.stack([_decode(trace[axis]) for axis in "xyz"], axis=1)
        np.testing.assert_allclose(coordinates, result.isomap[rows], rtol=1e-6, atol=1e-6)
    for key, spec in payload["parameters"].items():
        np.testing.assert_array_equal(_decode(spec), parameters[key][rows])
    for box in payload["distributions"]["data"]:
        assert _decode(box["y"]).size <= 20_000
    # stratified: each joint stratum keeps the floor or the ceiling of its share (a simple
    # random draw of 20 000 misses this by ~ its standard deviation in most strata)
    strata = _strata(parameters)
    full, kept = np.bincount(strata), np.bincount(strata[rows], minlength=strata.max() + 1)
    share = full * 20_000 / 30_000
    assert np.all((kept == np.floor(share)) | (kept == np.ceil(share)))
    # the page says so; the score table still shows the scores of every tone
    text = path.read_text(encoding="utf-8")
    note = text.split("id='gear-sample-note'>")[1].split("</p>")[0]
    assert "stratified subsample" in note and "20\u2009000" in note and "30\u2009000" in note
    assert "use every tone" in note
    assert "30\u2009000</td>" in text.split("<table class='scores'>")[1].split("</table>")[0]


def test_large_report_synthesises_audio_from_eq1(large_report):
    path, _, parameters, audio = large_report
    page = _parse(path)
    payload = _payload(page)
    spec = payload["audio"]
    assert spec == {"encoding": "eq1", "n_partials": 32, "peak": 0.5, "window": "hann-periodic"}
    assert not [attrs for attrs, _ in page.scripts if attrs.get("id") == "gear-audio"]
    assert "id='gear-audio-note'" in path.read_text(encoding="utf-8")
    # the recipe, applied here to the page's own parameters, gives the tones that were passed
    rows = _decode(payload["subsample"]["rows"])
    page_parameters = {key: _decode(payload["parameters"][key]) for key in PARAMS}
    for k in (0, 1, 9_999, 19_999):
        tone = _eq1_tones(*(page_parameters[key][k : k + 1] for key in PARAMS), payload["sample_rate"],
                          payload["n_samples"], spec["peak"])
        np.testing.assert_allclose(tone[0], audio[rows[k]], atol=2e-6)


def test_large_report_without_eq1_audio_embeds_pcm_within_budget(tmp_path):
    parameters = _large_design(30_000, seed=1)
    rng = np.random.default_rng(1)
    audio = rng.uniform(-1, 1, (30_000, 64)).astype(np.float32)  # not eq. 1 tones
    path = write_report(tmp_path / "r.html", _large_results(parameters, n_models=1), parameters=parameters,
                        audio=audio, sample_rate=16000, max_audio_mb=1.0)
    page = _parse(path)
    payload = _payload(page)
    spec, rows = payload["audio"], _decode(payload["subsample"]["rows"])
    fit = int(1e6 // (64 * 2 * 4 / 3))
    assert spec["encoding"] == "pcm_s16le" and spec["n_rows"] == fit < rows.size
    pcm = np.frombuffer(base64.b64decode(_script(page, "gear-audio")), dtype="<i2").reshape(-1, 64)
    assert len(_script(page, "gear-audio")) <= 1_000_000
    np.testing.assert_allclose(pcm / 32767, audio[rows[:fit]], atol=0.5 / 32767 + 1e-7)
    note = path.read_text(encoding="utf-8").split("id='gear-audio-note'>")[1].split("</p>")[0]
    assert "play no sound" in note
    with pytest.raises(ParameterError, match="not eq. 1 tones"):
        write_report(tmp_path / "s.html", _large_results(parameters, n_models=1), parameters=parameters,
                     audio=audio, sample_rate=16000, audio_mode="synthesis")


def test_small_report_has_no_subsample(written):
    path = written[0]
    payload = _payload(_parse(path))
    assert "subsample" not in payload and "n_rows" not in payload["audio"]
    assert "gear-sample-note" not in path.read_text(encoding="utf-8")


def test_stratified_subsample_keeps_rare_strata_and_is_seeded():
    parameters = _large_design(5_000, seed=2)
    # a rare stratum (0.5 % of the tones): a pitch of their own, one alpha, one r
    parameters["f1_hz"][:25], parameters["alpha"][:25], parameters["r"][:25] = 1000.0, 1.0, 0.5
    rows = stratified_subsample(parameters, 1_000, seed=3)
    assert rows.size == 1_000 and np.unique(rows).size == 1_000
    assert np.sum(rows < 25) == 5  # exactly its share
    np.testing.assert_array_equal(rows, stratified_subsample(parameters, 1_000, seed=3))
    assert not np.array_equal(np.sort(rows), np.sort(stratified_subsample(parameters, 1_000, seed=4)))
    np.testing.assert_array_equal(stratified_subsample(parameters, 5_000), np.arange(5_000))


@pytest.mark.parametrize("option, match", [
    (dict(max_points=0), "max_points"),
    (dict(audio_mode="mp3"), "audio_mode"),
    (dict(max_audio_mb=-1), "max_audio_mb"),
    (dict(subsample_seed=-2), "subsample_seed"),
])
def test_bad_large_n_options_raise(tmp_path, option, match):
    results, parameters, audio = _data()
    with pytest.raises(ParameterError, match=match):
        write_report(tmp_path / "r.html", results, parameters=parameters, audio=audio, sample_rate=16000, **option)


# ----------------------------------------------------------------------------- leaderboard
def test_leaderboard_section_escapes_and_formats():
    rows = [
        {"rank": 1, "model": "<b>evil</b> & co", "score": 0.123456, "median_abs_log_ratio_alpha": float("nan")},
        {"rank": "", "model": "plain", "score": float("nan")},
    ]
    columns = ["rank", "model", "score", "median_abs_log_ratio_alpha"]
    fragment = leaderboard_section(rows, columns, ranked_by="score <lower is better>")
    page = _Page()
    page.feed(fragment)
    assert "&lt;b&gt;evil&lt;/b&gt; &amp; co" in fragment and "<b>evil</b>" not in fragment
    assert "Ranked by score &lt;lower is better&gt;" in fragment
    assert [attrs.get("class") for tag, attrs in page.tags if tag == "table"] == ["gear-leaderboard"]
    body = fragment.split("<tbody>")[1]
    assert body.count("<tr>") == 2
    cells = re.findall(r"<td>(.*?)</td>", body)
    assert cells == ["1", "&lt;b&gt;evil&lt;/b&gt; &amp; co", "0.123", "–", "–", "plain", "–", "–"]
    header = re.findall(r"<th>(.*?)</th>", fragment)
    assert header == ["rank", "model", "score", "median |log-ratio| α"]
    with pytest.raises(ParameterError, match="ranked_by"):
        leaderboard_section(rows, columns, ranked_by="")
    with pytest.raises(ParameterError, match="rows"):
        leaderboard_section({"model": "x"}, columns, ranked_by="score")


def test_audio_rendered_on_demand_gives_the_same_page(tmp_path, large_report):
    """A callable audio(rows) is asked only for the tones the page embeds or checks."""
    path, results, parameters, audio = large_report
    asked = []

    def render(rows):
        asked.append(np.asarray(rows).copy())
        return audio[rows]

    again = write_report(tmp_path / "r.html", results, parameters=parameters, audio=render, sample_rate=16000)
    first, second = _payload(_parse(path)), _payload(_parse(again))
    assert first == second
    assert sum(rows.size for rows in asked) <= 20_000 + 65  # the probe of one tone and the 64 checked
    # PCM of a cut budget: only the embedded rows are rendered, and they are the array's
    asked.clear()
    cut = write_report(tmp_path / "p.html", results, parameters=parameters, audio=render, sample_rate=16000,
                       audio_mode="pcm", max_audio_mb=2.0)
    page = _parse(cut)
    payload = _payload(page)
    rows = _decode(payload["subsample"]["rows"])[: payload["audio"]["n_rows"]]
    pcm = np.frombuffer(base64.b64decode(_script(page, "gear-audio")), dtype="<i2").reshape(rows.size, 1024)
    np.testing.assert_allclose(pcm / 32767, audio[rows], atol=0.5 / 32767 + 1e-7)
    assert sum(r.size for r in asked) == 1 + rows.size


@pytest.mark.parametrize("render, match", [
    (lambda rows: np.zeros((len(rows), 8), dtype=np.int16), "floating point"),
    (lambda rows: np.zeros((len(rows) + 1, 8)), "has 2 rows"),
    (lambda rows: np.full((len(rows), 8), 3.0), "peak of 3"),
])
def test_bad_audio_callable_raises(tmp_path, render, match):
    results, parameters, _ = _data()
    with pytest.raises(ParameterError, match=match):
        write_report(tmp_path / "r.html", results, parameters=parameters, audio=render, sample_rate=16000)


def test_family_factors_colour_by_each_with_categorical_discrete_and_pcm(tmp_path):
    """A stimulus family's factors: one colour option per factor (a discrete one with one
    categorical colour per value), the hover and header name them, the page embeds PCM (eq. 1
    synthesis is the harmonic preset's alone, even when the columns are called f1_hz, alpha, r)."""
    import synth

    tones = synth.family("harmonic").design("random", n=20, seed=0)
    audio = tones.render(16000)
    quality = np.arange(20) % 3
    parameters = {"index": np.arange(20), **tones.columns, "quality": quality}
    factors = [f.describe() for f in tones.factors] + [
        {"name": "quality", "unit": "", "kind": "discrete", "values": ["major", "minor", "sus2"], "role": "nuisance"}]
    rng = np.random.default_rng(0)
    result = ModelResult(name="m", description="", isomap=rng.normal(size=(20, 3)),
                         log_ratios={"f1_hz": rng.normal(size=20), "quality": rng.random(20)},
                         scores=[{"parameter": "quality", "median_abs_log_ratio": 0.5, "iqr": 0.1, "ci_low": 0.4,
                                  "ci_high": 0.6, "n": 20, "chance": 0.3, "statistic": "agreement"}])
    path = write_report(tmp_path / "r.html", [result], parameters=parameters, audio=audio, sample_rate=16000,
                        factors=factors)
    page = _parse(path)
    data = _payload(page)
    assert [o["key"] for o in data["colour_options"]] == ["f1_hz", "alpha", "r", "quality"]
    discrete = data["colour_options"][3]
    assert discrete["values"] == ["major", "minor", "sus2"] and (discrete["cmin"], discrete["cmax"]) == (-0.5, 2.5)
    assert len({stop[1] for stop in discrete["colorscale"]}) == 3
    assert discrete["ticktext"] == ["major", "minor", "sus2"] and discrete["tickvals"] == [0, 1, 2]
    assert data["audio"]["encoding"] == "pcm_s16le" and [f["name"] for f in data["factors"]][-1] == "quality"
    np.testing.assert_array_equal(_decode(data["parameters"]["quality"]), quality)
    text = path.read_text()
    assert "quality {major, minor, sus2} (nuisance)" in text and "quality (agreement)" in text
    assert "customdata[4]" in data["models"][0]["figure"]["data"][0]["hovertemplate"]
    with pytest.raises(ParameterError, match="harmonic"):
        write_report(tmp_path / "s.html", [result], parameters=parameters, audio=audio, sample_rate=16000,
                     factors=factors, audio_mode="synthesis")
    with pytest.raises(ParameterError, match="factor 'missing' has no column"):
        write_report(tmp_path / "t.html", [result], parameters=parameters, audio=audio, sample_rate=16000,
                     factors=[{"name": "missing"}])
