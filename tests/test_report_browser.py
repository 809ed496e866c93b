"""The report in a real headless browser (Debian's chromium driven by playwright).

Checks what only a browser can: the page loads offline with no console error and no
network request, every 3-D trace holds all the sounds, the colour buttons recolour the
plots, the browser decodes the embedded audio to the input samples, and a real mouse click
on a rendered point starts playback of that point's sound.

Chromium is never downloaded by the tests: install Debian's package (``make browser``).
"""
import os
import shutil
import time

import numpy as np
import plotly.graph_objects as go
import pytest

from gear.report import figure_fragment, write_report
from gear.results import ModelResult
from test_report import _eq1_tones, _large_design, _large_results

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SAMPLE_RATE = 16000
N_SAMPLES = 1024

# Records every AudioBufferSourceNode.start() with the buffer it plays.
HOOK_AUDIO = """
window.__gearStarts = [];
(function () {
  var original = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function () {
    var buffer = this.buffer;
    window.__gearStarts.push({
      length: buffer.length,
      sampleRate: buffer.sampleRate,
      samples: Array.prototype.slice.call(buffer.getChannelData(0))
    });
    return original.apply(this, arguments);
  };
})();
"""


def _chromium() -> str:
    path = os.environ.get("GEAR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail(
            f"the report's browser test needs Debian's chromium, not found at {path}: "
            "install it with `make browser` (i.e. `sudo apt-get install -y chromium`) or set GEAR_CHROMIUM "
            "to a Chromium binary"
        )
    return path


def _tones(f1_hz, alpha, r):
    """Hann-windowed harmonic tones, computed independently of the synth package."""
    return _eq1_tones(f1_hz, alpha, r, SAMPLE_RATE, N_SAMPLES).astype(np.float32)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    rng = np.random.default_rng(3)
    n_side = 15
    alpha, r = (g.ravel() for g in np.meshgrid(np.linspace(0, 2, n_side), np.linspace(0, 1, n_side)))
    n = alpha.size
    f1_bins = rng.integers(12, 25, n).astype(float)
    f1_hz = f1_bins * SAMPLE_RATE / N_SAMPLES
    parameters = {"index": np.arange(n) + 1000, "f1_hz": f1_hz, "alpha": alpha, "r": r, "f1_bins": f1_bins}
    audio = _tones(f1_hz, alpha, r)
    theta = np.c_[f1_hz / 100, alpha, r]
    results = []
    for k, name in enumerate(["model-a", "model b <&>"]):
        coordinates = theta + rng.normal(scale=0.05 * (k + 1), size=theta.shape)
        log_ratios = {key: rng.normal(scale=0.1, size=n) for key in ("f1_hz", "alpha", "r")}
        log_ratios["alpha"][alpha == 0] = np.nan
        scores = [
            dict(parameter=key, median_abs_log_ratio=0.08, iqr=0.1, ci_low=0.07, ci_high=0.09, n=n, chance=0.4)
            for key in log_ratios
        ]
        results.append(
            ModelResult(name=name, description=f"test model {k}", isomap=coordinates, log_ratios=log_ratios,
                        scores=scores, warnings=["a warning"] if k else [], n_components=1 + k, embedding_dim=3)
        )
    path = write_report(
        tmp_path_factory.mktemp("report") / "report.html",
        results,
        parameters=parameters,
        audio=audio,
        sample_rate=SAMPLE_RATE,
        extra_sections=[
            ("Extra", "<p id='extra-p'>extra</p>"),
            ("Card", figure_fragment(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])), div_id="card-fig")),
        ],
        per_model_sections={"model-a": [("Per model", "<p id='per-model-p'>per model</p>")]},
    )
    return dict(path=path, parameters=parameters, audio=audio, results=results, n=n)


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module's pages."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.fail("the browser test needs playwright: pip install 'playwright>=1.40' (never `playwright install`)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _browse(browser, path):
    """Open ``path`` in a fresh context (network blocked, AudioBufferSourceNode.start
    recorded); returns (page, log) once the report says it is ready."""
    log = {"console_errors": [], "page_errors": [], "external_requests": []}
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(HOOK_AUDIO)

    def block(route):
        log["external_requests"].append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith(("file:", "data:", "blob:")), block)
    page = context.new_page()
    page.on("console", lambda m: log["console_errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: log["page_errors"].append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_function("window.gearReport && window.gearReport.ready === true", timeout=120_000)
    return page, log


@pytest.fixture(scope="module")
def loaded(browser, report):
    page, log = _browse(browser, report["path"])
    yield page, log
    page.context.close()


def test_page_loads_offline_without_errors(loaded):
    page, log = loaded
    assert log["page_errors"] == []
    assert log["console_errors"] == []
    assert log["external_requests"] == []
    assert page.evaluate("window.gearReport.errors") == []
    assert page.locator("#extra-p").inner_text() == "extra"
    assert page.locator("#per-model-p").inner_text() == "per model"
    assert page.evaluate("document.getElementById('card-fig')._fullData.length") == 1


def test_each_scatter_trace_has_all_points(loaded, report):
    page, _ = loaded
    traces = page.evaluate(
        """() => Array.from(document.querySelectorAll('.scatter-plot')).map(div => div._fullData.map(t => ({
            type: t.type, length: t._length, x: Array.from(t.x), color: Array.from(t.marker.color),
            custom: t.customdata.length})))"""
    )
    assert len(traces) == len(report["results"])
    for trace_list, result in zip(traces, report["results"]):
        assert len(trace_list) == 1
        trace = trace_list[0]
        assert trace["type"] == "scatter3d"
        assert trace["length"] == report["n"] and trace["custom"] == report["n"]
        np.testing.assert_allclose(trace["x"], result.isomap[:, 0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(trace["color"], report["parameters"]["f1_hz"])
    boxes = page.evaluate("document.getElementById('gear-distributions')._fullData.map(t => [t.type, t.name])")
    assert boxes == [["box", result.name] for _ in range(3) for result in report["results"]]


def test_colour_buttons_recolour_every_plot(loaded, report):
    page, _ = loaded
    page.locator(".segmented button[data-key='alpha']").first.click()
    colours = page.evaluate(
        "Array.from(document.querySelectorAll('.scatter-plot')).map(d => Array.from(d._fullData[0].marker.color))"
    )
    for colour in colours:
        np.testing.assert_allclose(colour, report["parameters"]["alpha"])
    pressed = page.evaluate(
        "Array.from(document.querySelectorAll(\".segmented button[aria-pressed='true']\")).map(b => b.dataset.key)"
    )
    assert pressed == ["alpha"] * len(report["results"])
    page.locator(".segmented button[data-key='f1_hz']").first.click()


def test_browser_decodes_the_embedded_audio(loaded, report):
    page, _ = loaded
    for row in (0, 7, report["n"] - 1):
        decoded = np.array(page.evaluate(f"Array.from(window.gearReport.samples({row}))"))
        np.testing.assert_allclose(decoded, report["audio"][row], atol=0.51 / 32767 + 1e-7)


def _find_point(page, div_selector: str):
    """Move the real mouse over the plot until plotly reports a point under it."""
    div = page.locator(div_selector)
    div.scroll_into_view_if_needed()
    page.evaluate(
        f"""() => {{
            const div = document.querySelector("{div_selector}");
            window.__gearHover = null;
            div.on('plotly_hover', e => {{ window.__gearHover = e.points[0].pointNumber; }});
        }}"""
    )
    box = div.bounding_box()
    centre_x, centre_y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5
    offsets = [(0, 0)] + [
        (radius * np.cos(angle), radius * np.sin(angle))
        for radius in range(6, int(min(box["width"], box["height"]) * 0.45), 6)
        for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ]
    for dx, dy in offsets:
        x, y = centre_x + dx, centre_y + dy
        page.mouse.move(x, y)
        page.wait_for_timeout(60)  # gl3d picks points on its next animation frame
        hovered = page.evaluate("window.__gearHover")
        if hovered is not None:
            # confirm the point stays under the cursor once the frame has settled
            page.wait_for_timeout(150)
            return x, y, page.evaluate("window.__gearHover")
    raise AssertionError(f"no point of {div_selector} found under the mouse")


def _click_a_point(page, model_index=0):
    """Click a rendered point of a model's scatter with the real mouse; returns the page row
    plotly reported under the cursor, the play record and the recorded audio start."""
    selector = "#" + page.evaluate(f"window.gearReport.data.models[{model_index}].id") + "-scatter"
    x, y, row = _find_point(page, selector)
    before = page.evaluate("window.__gearStarts.length")
    # plotly's gl3d emits plotly_click when the button is down over a point on a frame
    page.mouse.down()
    page.wait_for_timeout(150)
    page.mouse.up()
    deadline = time.time() + 10
    while page.evaluate("window.__gearStarts.length") == before and time.time() < deadline:
        page.wait_for_timeout(50)
    starts = page.evaluate("window.__gearStarts")
    assert len(starts) > before, "the click on a point started no AudioBufferSourceNode"
    played = page.evaluate("window.gearReport.plays[window.gearReport.plays.length - 1]")
    return row, played, starts[-1]


def test_mouse_click_on_a_point_plays_its_sound(loaded, report):
    page, log = loaded
    row, played, start = _click_a_point(page)
    assert played["model"] == report["results"][0].name
    assert played["row"] == row
    assert played["index"] == report["parameters"]["index"][row]
    assert page.evaluate("document.body.dataset.lastPlayed") == str(row)
    assert start["length"] == N_SAMPLES and start["sampleRate"] == SAMPLE_RATE
    np.testing.assert_allclose(start["samples"], report["audio"][row], atol=0.51 / 32767 + 1e-7)
    assert f"sound #{report['parameters']['index'][row]}" in page.locator("#gear-now").inner_text()
    assert log["console_errors"] == [] and log["page_errors"] == []


# ----------------------------------------------------------------------------- large n
N_LARGE = 30_000


@pytest.fixture(scope="module")
def large(browser, tmp_path_factory):
    """30 000 tones (random Isomap coordinates, no model run): the page draws 20 000 and
    synthesises the audio in the browser."""
    from synth import harmonic_tones

    parameters = _large_design(N_LARGE, seed=5)
    audio = harmonic_tones(parameters["f1_hz"], parameters["alpha"], parameters["r"], sample_rate=SAMPLE_RATE,
                           n_samples=N_SAMPLES)
    results = _large_results(parameters, n_models=1, seed=5)
    path = write_report(tmp_path_factory.mktemp("large") / "report.html", results, parameters=parameters,
                        audio=audio, sample_rate=SAMPLE_RATE)
    assert path.stat().st_size <= 50_000_000
    page, log = _browse(browser, path)
    yield dict(page=page, log=log, parameters=parameters, audio=audio)
    page.context.close()


def test_large_report_draws_a_stated_subsample(large):
    page, log = large["page"], large["log"]
    assert log["page_errors"] == [] and log["console_errors"] == [] and log["external_requests"] == []
    lengths = page.evaluate("Array.from(document.querySelectorAll('.scatter-plot')).map(d => d._fullData[0]._length)")
    assert lengths == [20_000]
    rows = np.array(page.evaluate("Array.from(window.gearReport.data.subsample ? "
                                  "window.gearReport.params.index : [])"))
    assert rows.size == 20_000 and np.unique(rows).size == 20_000
    note = page.locator("#gear-sample-note")
    assert note.is_visible() and "stratified subsample" in note.inner_text()
    assert page.locator("#gear-audio-note").is_visible()
    assert page.evaluate("window.gearReport.data.audio.encoding") == "eq1"  # no PCM in the page


def test_browser_synthesises_the_python_tones(large):
    page = large["page"]
    index = np.array(page.evaluate("Array.from(window.gearReport.params.index)"))
    parameters = large["parameters"]
    for row in (0, 1, 777, 19_999):
        tone = index[row]  # _large_design's index is the position in the tone set
        synthesised = np.array(page.evaluate(f"Array.from(window.gearReport.samples({row}))"))
        np.testing.assert_allclose(synthesised, large["audio"][tone], atol=2e-6)  # synth.harmonic_tones
        expected = _tones(*(parameters[key][tone : tone + 1] for key in ("f1_hz", "alpha", "r")))[0]
        np.testing.assert_allclose(synthesised, expected, atol=2e-6)  # eq. 1 computed in the test


def test_click_on_the_large_report_plays_the_synthesised_tone(large):
    page, log = large["page"], large["log"]
    row, played, start = _click_a_point(page)
    assert played["row"] == row and 0 <= row < 20_000
    tone = played["index"]
    assert start["length"] == N_SAMPLES and start["sampleRate"] == SAMPLE_RATE
    np.testing.assert_allclose(start["samples"], large["audio"][tone], atol=2e-6)
    assert f"sound #{tone}" in page.locator("#gear-now").inner_text()
    assert log["console_errors"] == [] and log["page_errors"] == []


def test_family_report_colours_discrete_factors_and_plays_pcm(browser, tmp_path):
    """A stimulus family's page: no console error, one button per factor, a discrete factor
    recolours with its value codes and names its values on the colour bar and in the hover,
    and a point plays its embedded PCM."""
    import synth

    tones = synth.family("chord").design("random", n=24, seed=1)
    audio = tones.render(SAMPLE_RATE)
    columns = {f.name: tones.codes(f.name) for f in tones.factors}
    rng = np.random.default_rng(0)
    result = ModelResult(name="m", description="", isomap=rng.normal(size=(24, 3)),
                         log_ratios={k: rng.random(24) for k in columns},
                         scores=[dict(parameter=k, median_abs_log_ratio=0.5, iqr=0.1, ci_low=0.4, ci_high=0.6, n=24,
                                      chance=0.2, statistic="agreement") for k in columns])
    path = write_report(tmp_path / "chord.html", [result], parameters={"index": np.arange(24), **columns},
                        audio=audio, sample_rate=SAMPLE_RATE, factors=[f.describe() for f in tones.factors])
    page, log = _browse(browser, path)
    try:
        assert log["page_errors"] == [] and log["console_errors"] == [] and log["external_requests"] == []
        keys = page.evaluate("Array.from(document.querySelectorAll('.segmented button')).map(b => b.dataset.key)")
        assert keys == ["root", "quality", "inversion"]
        page.locator(".segmented button[data-key='quality']").first.click()
        marker = page.evaluate("(() => { var m = document.querySelector('.scatter-plot')._fullData[0].marker;"
                               " return {color: Array.from(m.color), ticks: m.colorbar.ticktext}; })()")
        np.testing.assert_array_equal(marker["color"], columns["quality"])
        assert marker["ticks"] == list(synth.family("chord").factor("quality").values)
        custom = page.evaluate("document.querySelector('.scatter-plot')._fullData[0].customdata[0]")
        # the hover names a discrete value as its label (the factor's values, as text)
        assert custom == [0] + [str(tones.columns[k][0]) for k in ("root", "quality", "inversion")]
        decoded = np.array(page.evaluate("Array.from(window.gearReport.samples(5))"))
        np.testing.assert_allclose(decoded, audio[5], atol=0.51 / 32767 + 1e-7)
    finally:
        page.context.close()
