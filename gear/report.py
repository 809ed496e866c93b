"""The GEAR report: one standalone, offline HTML page per run.

The page shows, for every model, the 3-D Isomap of its embeddings coloured by a synthesis
parameter (f1, alpha or r; red = high, blue = low), with the sound's parameters on hover and
its audio on click; the distributions of the K-NN log-ratios per model and parameter (the
GEAR paper's Figure 4); and the table of scores (median |log-ratio|, IQR, bootstrap 95 % CI,
n, chance level) with each model's warnings.

Everything the page needs is inside the file: plotly.js once, the figures' data as base64
typed arrays, and the audio of all sounds once as 16-bit PCM (little-endian, base64), decoded
in the browser and played with the Web Audio API. It makes no network request.

Embedded data (stable, for scripts that read a report back)
-----------------------------------------------------------
``<script id="gear-data" type="application/json">``
    ``{"format": "gear-report/1", "n_sounds", "n_samples", "sample_rate",
    "parameters": {name: {"dtype", "bdata"}}, "colour_options": [...],
    "models": [{"name", "id", "figure": {"data", "layout"}}], "distributions": {...},
    "audio": {"encoding": "pcm_s16le", "element": "gear-audio", "scale": 32767} or null}``.
    ``{"dtype", "bdata"}`` is plotly.js's typed-array spec: base64 of the little-endian
    array (``f8`` float64, ``f4`` float32, ``i4`` int32).
``<script id="gear-audio" type="application/octet-stream">``
    base64 of int16 PCM, shape (n_sounds, n_samples), row-major; sample = round(x * 32767).
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import pathlib
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gear.errors import ParameterError
from gear.files import atomic_write_bytes

from .results import ModelResult

__all__ = ["write_report", "figure_fragment", "PARAMETER_LABELS", "REPORT_FORMAT"]

#: Version tag of the embedded data (``gear-data`` JSON ``format`` key).
REPORT_FORMAT = "gear-report/1"

#: Human-readable labels (with units) of the synthesis parameters.
PARAMETER_LABELS = {
    "f1_hz": "f1 (Hz)",
    "alpha": "α (spectral decay)",
    "r": "r (odd/even balance)",
    "f1_bins": "f1 (DFT bins)",
}
_SHORT_LABELS = {"f1_hz": "f1", "alpha": "α", "r": "r", "f1_bins": "f1 (bins)"}
_REQUIRED_PARAMETERS = ("index", "f1_hz", "alpha", "r")
_COLOUR_KEYS = ("f1_hz", "alpha", "r")
_SCORE_KEYS = ("parameter", "median_abs_log_ratio", "iqr", "ci_low", "ci_high", "n", "chance")
_PCM_SCALE = 32767
# The Web Audio API plays buffers at 3 kHz .. 768 kHz (AudioContext.createBuffer).
_WEBAUDIO_RATES = (3000, 768000)
# A qualitative palette for models (colour-blind friendly, Okabe & Ito).
_MODEL_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_DIVERGING = "RdBu_r"
_WARNINGS_SHOWN = 8
_ASSETS = pathlib.Path(__file__).with_name("report_assets")
_EXTERNAL = re.compile(
    r"""(?:\b(?:src|srcset|poster|data|background)\s*=\s*["']?\s*(?:https?:)?//)"""
    r"""|(?:<link\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?//)"""
    r"""|(?:url\(\s*["']?\s*(?:https?:)?//)"""
    r"""|(?:@import\b)"""
    r"""|(?:\bimport\s*\(\s*["'](?:https?:)?//)""",
    re.IGNORECASE,
)


# ----------------------------------------------------------------------------- validation
def _label(name: str) -> str:
    return PARAMETER_LABELS.get(name, name)


def _as_1d(name: str, value, n: Optional[int], what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{what} {name!r} must be numeric, got {type(value).__name__}: {error}") from None
    if array.ndim != 1:
        raise ParameterError(f"{what} {name!r} must be 1-D, got shape {array.shape}; pass one value per sound")
    if n is not None and array.shape[0] != n:
        raise ParameterError(
            f"{what} {name!r} has {array.shape[0]} values but there are {n} sounds; "
            "pass one value per sound, in tone-set order"
        )
    return array


def _check_parameters(parameters) -> Dict[str, np.ndarray]:
    if not isinstance(parameters, Mapping):
        raise ParameterError(
            f"parameters must be a dict of 1-D arrays, got {type(parameters).__name__}; "
            "pass ToneSet.table(sample_rate) or {'index', 'f1_hz', 'alpha', 'r'}"
        )
    missing = [key for key in _REQUIRED_PARAMETERS if key not in parameters]
    if missing:
        raise ParameterError(
            f"parameters lack {missing}; required columns are {list(_REQUIRED_PARAMETERS)} "
            "(optional: 'f1_bins')"
        )
    columns = {}
    n = None
    for key in _REQUIRED_PARAMETERS + (("f1_bins",) if "f1_bins" in parameters else ()):
        column = _as_1d(key, parameters[key], n, "parameter")
        if n is None:
            n = column.shape[0]
            if n < 1:
                raise ParameterError("parameters are empty (0 sounds); the report needs at least one sound")
        if not np.all(np.isfinite(column)):
            bad = int(np.flatnonzero(~np.isfinite(column))[0])
            raise ParameterError(f"parameter {key!r} is not finite at sound {bad} ({column[bad]!r})")
        columns[key] = column
    index = columns["index"]
    if np.any(index != np.round(index)) or np.any(np.abs(index) > 2**31 - 1):
        raise ParameterError("parameter 'index' must hold integers (the sounds' indices in the tone set)")
    columns["index"] = index.astype(np.int32)
    return columns


def _check_audio(audio, n_sounds: int) -> Optional[np.ndarray]:
    if audio is None:
        return None
    array = np.asarray(audio)
    if array.ndim != 2:
        raise ParameterError(
            f"audio must be 2-D (n_sounds, n_samples), got shape {array.shape}; stack the tones row by row"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ParameterError(
            f"audio must be floating point in [-1, 1], got dtype {array.dtype}; "
            "convert int16 PCM with audio / 32768"
        )
    if array.shape[0] != n_sounds:
        raise ParameterError(
            f"audio has {array.shape[0]} rows but there are {n_sounds} sounds; pass one row per sound"
        )
    if array.shape[1] < 1:
        raise ParameterError("audio has 0 samples per sound; pass the rendered tones")
    if not np.all(np.isfinite(array)):
        raise ParameterError("audio contains NaN or inf; check the synthesiser output")
    peak = float(np.max(np.abs(array)))
    if peak > 1.0 + 1e-6:
        raise ParameterError(
            f"audio must lie in [-1, 1], got a peak of {peak:.4g}; normalise it (e.g. audio / {peak:.4g})"
        )
    return array


def _check_sample_rate(sample_rate) -> float:
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        raise ParameterError(f"sample_rate must be a number in Hz, got {sample_rate!r}") from None
    if not math.isfinite(rate) or not _WEBAUDIO_RATES[0] <= rate <= _WEBAUDIO_RATES[1]:
        raise ParameterError(
            f"sample_rate={sample_rate!r} Hz; the page plays audio with the Web Audio API, which accepts "
            f"{_WEBAUDIO_RATES[0]} to {_WEBAUDIO_RATES[1]} Hz: resample the tones"
        )
    return rate


def _check_sections(sections, what: str) -> List[Tuple[str, str]]:
    if isinstance(sections, (str, bytes)) or not isinstance(sections, Iterable):
        raise ParameterError(f"{what} must be a list of (title, html) pairs, got {type(sections).__name__}")
    checked = []
    for item in sections:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(s, str) for s in item)):
            raise ParameterError(f"{what} must hold (title, html) pairs of strings, got {item!r:.80}")
        title, fragment = item
        match = _EXTERNAL.search(fragment)
        if match:
            raise ParameterError(
                f"{what} section {title!r} loads an external resource ({match.group(0)!r}); the report "
                "must open offline: embed it (data: URI, inline script/style, figure_fragment())"
            )
        checked.append((title, fragment))
    return checked


def _check_result(result, n_sounds: int) -> ModelResult:
    if not isinstance(result, ModelResult):
        raise ParameterError(f"results must hold gear.results.ModelResult, got {type(result).__name__}")
    name = result.name
    if not isinstance(name, str) or not name.strip():
        raise ParameterError(f"ModelResult.name must be a non-empty string, got {name!r}")
    isomap = np.asarray(result.isomap, dtype=np.float64)
    if isomap.ndim != 2 or isomap.shape[1] != 3:
        raise ParameterError(
            f"model {name!r}: isomap must have shape (n_sounds, 3), got {isomap.shape}; "
            "use Isomap(n_components=3)"
        )
    if isomap.shape[0] != n_sounds:
        raise ParameterError(
            f"model {name!r}: isomap has {isomap.shape[0]} rows but there are {n_sounds} sounds; "
            "embed the same tone set as the parameters"
        )
    if not np.all(np.isfinite(isomap)):
        raise ParameterError(f"model {name!r}: isomap contains NaN or inf")
    if not isinstance(result.log_ratios, Mapping):
        raise ParameterError(f"model {name!r}: log_ratios must be a dict of parameter -> array")
    for key, values in result.log_ratios.items():
        values = _as_1d(key, values, n_sounds, f"model {name!r}: log_ratios")
        if np.any(np.isinf(values)):
            raise ParameterError(f"model {name!r}: log_ratios {key!r} contains inf; use NaN where undefined")
    if not isinstance(result.scores, Sequence):
        raise ParameterError(f"model {name!r}: scores must be a list of dicts (one per parameter)")
    for row in result.scores:
        if not isinstance(row, Mapping):
            raise ParameterError(f"model {name!r}: each score row must be a dict, got {type(row).__name__}")
        missing = [key for key in _SCORE_KEYS if key not in row]
        if missing:
            raise ParameterError(
                f"model {name!r}: score row {row.get('parameter', '?')!r} lacks {missing}; "
                "use gear.analysis.score_embedding"
            )
    if isinstance(result.warnings, str) or not all(isinstance(w, str) for w in result.warnings):
        raise ParameterError(f"model {name!r}: warnings must be a list of strings")
    return result


# ----------------------------------------------------------------------------- encoding
def _typed(array: np.ndarray, dtype: str) -> dict:
    """plotly.js typed-array spec of ``array`` (little-endian)."""
    codes = {"f8": "<f8", "f4": "<f4", "i4": "<i4"}
    data = np.ascontiguousarray(array, dtype=codes[dtype]).tobytes()
    return {"dtype": dtype, "bdata": base64.b64encode(data).decode("ascii")}


def _encode_audio(audio: np.ndarray) -> str:
    pcm = np.round(np.clip(audio.astype(np.float64), -1.0, 1.0) * _PCM_SCALE).astype("<i2")
    return base64.b64encode(pcm.tobytes()).decode("ascii")


def _figure_dict(fig) -> dict:
    import plotly.io as pio

    return json.loads(pio.to_json(fig, validate=False))


def _json_for_script(obj) -> str:
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    # "<" only occurs inside JSON strings, where \u003c is the same character: no "</script>".
    return text.replace("<", "\\u003c")


def _slug(name: str, i: int) -> str:
    return f"model-{i}-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x")


def _fmt(value, digits: int = 3) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(value):
        return "–"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:.{decimals}f}"


def _fmt_int(value) -> str:
    try:
        return f"{int(value):,}".replace(",", "\u2009")
    except (TypeError, ValueError):
        return "–"


# ----------------------------------------------------------------------------- figures
def _scatter_figure(result: ModelResult, parameters: Dict[str, np.ndarray], height: int):
    import plotly.graph_objects as go

    isomap = np.asarray(result.isomap, dtype=np.float32)
    hover = (
        "<b>sound #%{customdata[0]}</b><br>"
        "f1 = %{customdata[1]:.1f} Hz" + (" (bin %{customdata[4]:.4~g})" if "f1_bins" in parameters else "")
        + "<br>α = %{customdata[2]:.3f}<br>r = %{customdata[3]:.3f}"
        "<br><i>click to play</i><extra></extra>"
    )
    first = _COLOUR_KEYS[0]
    values = parameters[first]
    trace = go.Scatter3d(
        x=isomap[:, 0],
        y=isomap[:, 1],
        z=isomap[:, 2],
        mode="markers",
        name=result.name,
        # marker.color and customdata are shared by all models and set in the browser.
        marker=dict(
            size=3,
            opacity=0.9,
            colorscale=_DIVERGING,
            cmin=float(values.min()),
            cmax=float(values.max()),
            colorbar=dict(title=dict(text=_label(first), side="right"), thickness=14, len=0.75),
            line=dict(width=0),
        ),
        hovertemplate=hover,
        showlegend=False,
    )
    # A mid-light grey background keeps the white middle of the diverging scale visible.
    axis = dict(showbackground=True, backgroundcolor="#dde1e6", gridcolor="#f7f8fa", zerolinecolor="#f7f8fa",
                showspikes=False)
    fig = go.Figure(trace)
    fig.update_layout(
        template="none",
        height=height,
        margin=dict(l=0, r=0, t=10, b=0),
        paper_bgcolor="white",
        font=dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
                  size=12, color="#222"),
        scene=dict(
            xaxis=dict(title=dict(text="Isomap 1"), **axis),
            yaxis=dict(title=dict(text="Isomap 2"), **axis),
            zaxis=dict(title=dict(text="Isomap 3"), **axis),
            aspectmode="data",
            camera=dict(eye=dict(x=1.5, y=1.5, z=1.1)),
        ),
        hoverlabel=dict(bgcolor="white", font=dict(size=12)),
        uirevision="keep",
    )
    return fig


def _distribution_figure(results: Sequence[ModelResult], parameter_names: Sequence[str]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_cols = len(parameter_names)
    fig = make_subplots(
        rows=1,
        cols=n_cols,
        subplot_titles=[_label(p) for p in parameter_names],
        horizontal_spacing=0.06 if n_cols > 1 else 0.0,
    )
    for col, parameter in enumerate(parameter_names, start=1):
        chances = []
        for i, result in enumerate(results):
            colour = _MODEL_COLOURS[i % len(_MODEL_COLOURS)]
            values = result.log_ratios.get(parameter)
            if values is None:
                continue
            values = np.asarray(values, dtype=np.float64)
            values = values[np.isfinite(values)].astype(np.float32)
            fig.add_trace(
                go.Box(
                    y=values,
                    name=result.name,
                    legendgroup=result.name,
                    showlegend=False,
                    marker=dict(color=colour, size=2, opacity=0.35),
                    line=dict(width=1.5),
                    boxpoints="outliers",
                    hoverinfo="y+name",
                ),
                row=1,
                col=col,
            )
            for row in result.scores:
                if row.get("parameter") == parameter:
                    chance = _float_or_nan(row.get("chance"))
                    if math.isfinite(chance):
                        chances.append(chance)
        axis_suffix = "" if col == 1 else str(col)
        fig.add_hline(y=0, line=dict(color="#222", width=1.5), row=1, col=col)
        if chances:
            chance = float(np.mean(chances))
            fig.add_shape(
                type="rect",
                xref=f"x{axis_suffix} domain",
                yref=f"y{axis_suffix}",
                x0=0,
                x1=1,
                y0=-chance,
                y1=chance,
                fillcolor="rgba(120,120,120,0.12)",
                line=dict(width=0),
                layer="below",
            )
    fig.update_yaxes(title_text="log(θ̃ / θ)", row=1, col=1)
    fig.update_yaxes(zeroline=False, gridcolor="#e6e8eb", showline=True, linecolor="#888")
    fig.update_xaxes(tickangle=-30 if len(results) > 3 else 0, showline=True, linecolor="#888")
    fig.update_layout(
        template="none",
        height=430,
        margin=dict(l=60, r=20, t=40, b=60),
        paper_bgcolor="white",
        plot_bgcolor="white",
        font=dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
                  size=12, color="#222"),
        boxgap=0.35,
    )
    return fig


def _float_or_nan(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def figure_fragment(fig, *, div_id: Optional[str] = None, height: Optional[int] = None) -> str:
    """HTML fragment of a plotly figure for a report section, without plotly.js.

    The report embeds plotly.js once; fragments made here (for ``extra_sections`` or
    ``per_model_sections`` of :func:`write_report`) reuse it.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    div_id : str, optional
        Id of the figure's ``<div>`` (default: plotly picks a unique one).
    height : int, optional
        Height in pixels (default: the figure's own layout height, else 450).

    Returns
    -------
    str
        A ``<div>`` and the ``<script>`` that draws the figure into it.
    """
    try:
        to_html = fig.to_html
    except AttributeError:
        raise ParameterError(f"figure_fragment needs a plotly Figure, got {type(fig).__name__}") from None
    if height is None:
        height = fig.layout.height or 450
    return to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        default_height=f"{int(height)}px",
        default_width="100%",
        config={"displaylogo": False, "responsive": True},
    )


# ----------------------------------------------------------------------------- html
def _asset(name: str) -> str:
    path = _ASSETS / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:  # an install that left the package data out
        raise RuntimeError(f"GEAR report asset {path} is missing ({error}); reinstall gear") from None


def _score_table(results: Sequence[ModelResult], *, with_model: bool = True) -> str:
    """HTML table of the scores: one row per (model, parameter)."""
    head = (["Model"] if with_model else []) + [
        "Parameter",
        "median |log-ratio|",
        "IQR",
        "95 % CI of the median",
        "n",
        "chance",
        "score / chance",
    ]
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    lines = ["<table class='scores'>", f"<thead><tr>{header}</tr></thead>", "<tbody>"]
    for i, result in enumerate(results):
        rows = list(result.scores) or [None]
        for j, row in enumerate(rows):
            cells = []
            if with_model and j == 0:
                flag = ""
                if result.warnings:
                    tip = f"{len(result.warnings)} warning(s): see the model section"
                    flag = f" <span class='warn-flag' title='{tip}'>⚠</span>"
                cells.append(
                    f"<th scope='rowgroup' rowspan='{len(rows)}' class='model-cell'>"
                    f"<a href='#{_slug(result.name, i)}'>{html.escape(result.name)}</a>{flag}</th>"
                )
            if row is None:
                cells.append(f"<td colspan='{len(head) - 1}' class='param'>no scores</td>")
            else:
                cells += _score_cells(row)
            cls = " class='group-start'" if j == 0 else ""
            lines.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _score_cells(row: Mapping) -> List[str]:
    median = _float_or_nan(row["median_abs_log_ratio"])
    chance = _float_or_nan(row["chance"])
    bar = "–"
    if math.isfinite(median) and math.isfinite(chance) and chance > 0:
        ratio = median / chance
        bar = (
            f"<span class='bar' aria-hidden='true'><span style='width:{min(ratio, 1.0) * 100:.0f}%'></span></span>"
            f"<span class='num'>{ratio * 100:.0f} %</span>"
        )
    return [
        f"<td class='param'>{html.escape(_label(str(row['parameter'])))}</td>",
        f"<td class='num strong'>{_fmt(median)}</td>",
        f"<td class='num'>{_fmt(row['iqr'])}</td>",
        f"<td class='num'>[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]</td>",
        f"<td class='num'>{_fmt_int(row['n'])}</td>",
        f"<td class='num'>{_fmt(chance)}</td>",
        f"<td class='ratio'>{bar}</td>",
    ]


def _count_unique(texts: Sequence[str]) -> List[Tuple[str, int]]:
    """Distinct texts in first-seen order, with how often each occurs."""
    counts: Dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    return list(counts.items())


def _range_text(values: np.ndarray, digits: int = 3) -> str:
    return f"{_fmt(values.min(), digits)} – {_fmt(values.max(), digits)}"


def write_report(
    path,
    results: Sequence[ModelResult],
    *,
    parameters: Mapping[str, np.ndarray],
    audio: Optional[np.ndarray],
    sample_rate: float,
    title: str = "GEAR report",
    notes: Sequence[str] = (),
    extra_sections: Sequence[Tuple[str, str]] = (),
    per_model_sections: Optional[Mapping[str, Sequence[Tuple[str, str]]]] = None,
    scatter_height: int = 560,
) -> pathlib.Path:
    """Write the interactive GEAR report: one standalone HTML file that opens offline.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``.html``); its folder is created if needed. Written atomically
        (temporary file in the same folder, then :func:`os.replace`).
    results : sequence of gear.results.ModelResult
        One per model, all on the same ``n_sounds`` tones (rows in tone-set order); names
        must be unique.
    parameters : dict of str -> np.ndarray, shape (n_sounds,)
        The tone parameters: ``index`` (int), ``f1_hz`` (Hz), ``alpha``, ``r``; optional
        ``f1_bins`` (shown on hover). Other keys (e.g. from ``ToneSet.table``) are ignored.
    audio : np.ndarray, shape (n_sounds, n_samples), float, in [-1, 1]; or None
        The tones at ``sample_rate``; row i is played when point i is clicked. Stored once as
        16-bit PCM (2 bytes per sample, +33 % for base64: 2 500 x 1 024 samples -> 6.8 MB).
        ``None`` leaves the audio out (a smaller page that cannot play sounds).
    sample_rate : float
        Sample rate of ``audio`` in Hz (3 000 to 768 000, the Web Audio API's range).
    title : str
        Page title.
    notes : sequence of str
        Plain-text remarks shown under the header (run settings, K, seeds, ...).
    extra_sections : sequence of (str, str)
        ``(title, html_fragment)`` sections appended after the model sections. Fragments
        may not load external resources (checked); use :func:`figure_fragment` for plotly
        figures.
    per_model_sections : dict of str -> sequence of (str, str), optional
        Extra ``(title, html_fragment)`` subsections inside a model's section, keyed by
        model name.
    scatter_height : int
        Height of each 3-D scatter in pixels.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ParameterError
        Inconsistent sizes (parameters, isomap, log-ratios, audio), isomap not
        (n_sounds, 3), audio not 2-D floating point in [-1, 1], sample rate outside the
        Web Audio range, duplicate model names, sections that load external resources.
    """
    path = pathlib.Path(os.fspath(path))
    if path.is_dir():
        raise ParameterError(
            f"path {str(path)!r} is a folder; give a file name such as {str(path / 'report.html')!r}"
        )
    if isinstance(results, ModelResult) or not isinstance(results, Sequence):
        raise ParameterError("results must be a list of ModelResult (one per model)")
    results = list(results)
    if not results:
        raise ParameterError("results is empty; the report needs at least one ModelResult")
    columns = _check_parameters(parameters)
    n_sounds = columns["index"].shape[0]
    names = []
    for result in results:
        _check_result(result, n_sounds)
        if result.name in names:
            raise ParameterError(f"model name {result.name!r} appears twice in results; names must be unique")
        names.append(result.name)
    audio = _check_audio(audio, n_sounds)
    rate = _check_sample_rate(sample_rate)
    if not isinstance(title, str):
        raise ParameterError(f"title must be a string, got {type(title).__name__}")
    if isinstance(notes, str) or not all(isinstance(note, str) for note in notes):
        raise ParameterError("notes must be a list of strings")
    extra = _check_sections(extra_sections, "extra_sections")
    per_model = {}
    for name, sections in dict(per_model_sections or {}).items():
        if name not in names:
            raise ParameterError(f"per_model_sections names model {name!r}, which is not in results {names}")
        per_model[name] = _check_sections(sections, f"per_model_sections[{name!r}]")
    if int(scatter_height) < 200:
        raise ParameterError(f"scatter_height={scatter_height!r} px is too small; use at least 200")

    document = _render(
        results,
        columns,
        audio,
        rate,
        title=title,
        notes=list(notes),
        extra=extra,
        per_model=per_model,
        scatter_height=int(scatter_height),
    )
    return _write_atomic(path, document)


def _write_atomic(path: pathlib.Path, text: str) -> pathlib.Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _render(results, columns, audio, rate, *, title, notes, extra, per_model, scatter_height) -> str:
    import plotly.offline

    parameter_names: List[str] = []
    for key in _COLOUR_KEYS:
        if any(key in r.log_ratios for r in results):
            parameter_names.append(key)
    for result in results:
        for key in result.log_ratios:
            if key not in parameter_names:
                parameter_names.append(key)

    models = []
    for i, result in enumerate(results):
        models.append(
            {
                "name": result.name,
                "id": _slug(result.name, i),
                "figure": _figure_dict(_scatter_figure(result, columns, scatter_height)),
            }
        )
    payload = {
        "format": REPORT_FORMAT,
        "n_sounds": int(columns["index"].shape[0]),
        "n_samples": int(audio.shape[1]) if audio is not None else None,
        "sample_rate": rate,
        "parameters": {
            key: _typed(values, "i4" if key == "index" else "f8") for key, values in columns.items()
        },
        "colour_options": [
            {
                "key": key,
                "label": _label(key),
                "short": _SHORT_LABELS.get(key, key),
                "cmin": float(columns[key].min()),
                "cmax": float(columns[key].max()),
            }
            for key in _COLOUR_KEYS
        ],
        "models": models,
        "distributions": _figure_dict(_distribution_figure(results, parameter_names)) if parameter_names else None,
        "audio": None
        if audio is None
        else {"encoding": "pcm_s16le", "element": "gear-audio", "scale": _PCM_SCALE},
    }

    n_sounds = payload["n_sounds"]
    esc = html.escape
    summary = [
        f"<b>{_fmt_int(n_sounds)}</b> tones",
        f"f1 {_range_text(columns['f1_hz'], 4)} Hz",
        f"α {_range_text(columns['alpha'])}",
        f"r {_range_text(columns['r'])}",
    ]
    if audio is not None:
        duration = f"{audio.shape[1] / rate * 1000:.4g} ms at {rate / 1000:.4g} kHz"
        summary.insert(1, f"{duration} ({_fmt_int(audio.shape[1])} samples)")
    summary.append(f"<b>{len(results)}</b> model{'s' if len(results) != 1 else ''}")

    body: List[str] = []
    body.append(f"<header class='page-header'><h1>{esc(title)}</h1>")
    body.append(
        "<p class='subtitle'>Generative Evaluation of Audio Representations: how pretrained audio models "
        "arrange synthetic tones with known causes (Lostanlen, Yan &amp; Yang, PMLR 166, 2023).</p>"
    )
    body.append("<p class='facts'>" + " · ".join(summary) + "</p>")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body.append(f"<p class='stamp'>Generated {stamp} by GEAR{_version_text()}.</p>")
    if notes:
        body.append("<ul class='notes'>" + "".join(f"<li>{esc(note)}</li>" for note in notes) + "</ul>")
    body.append("</header>")

    toc = [
        "<nav class='toc'><b>Contents</b>",
        "<a href='#how-to-read'>How to read</a>",
        "<a href='#scores'>Scores</a>",
    ]
    if payload["distributions"] is not None:
        toc.append("<a href='#log-ratios'>Log-ratio distributions</a>")
    for result, model in zip(results, models):
        warn = " ⚠" if result.warnings else ""
        toc.append(f"<a href='#{model['id']}'>{esc(model['name'])}{warn}</a>")
    for k, (section_title, _) in enumerate(extra):
        toc.append(f"<a href='#extra-{k}'>{esc(section_title)}</a>")
    body.append(" ".join(toc) + "</nav>")

    body.append(_HOW_TO_READ)

    body.append("<section id='scores' class='card'><h2>Scores</h2>")
    body.append(
        "<p class='lead'>Median |log-ratio| per model and parameter: <b>lower is better</b> (0 = every sound's "
        "neighbours share its value). IQR is the interquartile range of |log-ratio|; the 95 % CI is a bootstrap "
        "interval of the median; <i>n</i> counts the sounds where the log-ratio is defined; <i>chance</i> is the "
        "score of a shuffled embedding (random neighbours). <i>score / chance</i> near 100 % means the model "
        "keeps no trace of the parameter in its neighbourhoods.</p>"
    )
    body.append(_score_table(results))
    body.append("</section>")

    if payload["distributions"] is not None:
        body.append("<section id='log-ratios' class='card'><h2>Log-ratio distributions</h2>")
        body.append(
            "<p class='lead'>For every sound, log(θ̃/θ): θ̃ is the mean parameter of its K nearest neighbours "
            "in the model's embedding space, θ its own value (natural log; 0.1 ≈ 10 % off). One box per model "
            "(median, quartiles, whiskers at 1.5 IQR, outliers as dots); the black line marks 0, the grey band "
            "± the chance score. A box tight around 0 means the model keeps the parameter locally.</p>"
        )
        body.append("<div id='gear-distributions' class='plot dist-plot'></div></section>")

    for i, (result, model) in enumerate(zip(results, models)):
        body.append(f"<section id='{model['id']}' class='card model' data-model='{esc(result.name)}'>")
        body.append(f"<h2>{esc(result.name)}</h2>")
        meta = []
        if result.description:
            meta.append(esc(result.description))
        if result.embedding_dim:
            meta.append(f"{_fmt_int(result.embedding_dim)}-d embedding")
        meta.append(
            f"{result.n_components} connected component{'s' if result.n_components != 1 else ''} "
            "in the Isomap neighbour graph"
        )
        body.append("<p class='meta'>" + " · ".join(meta) + "</p>")
        if result.warnings:
            items = [
                f"<li>{esc(text)}" + (f" <span class='count'>(×{count})</span>" if count > 1 else "") + "</li>"
                for text, count in _count_unique(result.warnings)
            ]
            shown, hidden = items[:_WARNINGS_SHOWN], items[_WARNINGS_SHOWN:]
            more = ""
            if hidden:
                more = f"<details><summary>{len(hidden)} more</summary><ul>{''.join(hidden)}</ul></details>"
            body.append(
                f"<div class='warnings' role='note'><b>⚠ Warnings</b><ul>{''.join(shown)}</ul>{more}</div>"
            )
        buttons = "".join(
            f"<button type='button' data-key='{option['key']}' aria-pressed='{'true' if k == 0 else 'false'}'>"
            f"{esc(option['short'])}</button>"
            for k, option in enumerate(payload["colour_options"])
        )
        body.append(
            "<div class='plot-toolbar'><span class='colour-by'>Colour by</span>"
            f"<span class='segmented' data-model-index='{i}'>{buttons}</span>"
            "<span class='hint'>drag to rotate · scroll to zoom · click a point to hear it</span></div>"
        )
        body.append(f"<div id='{model['id']}-scatter' class='plot scatter-plot' data-model-index='{i}'></div>")
        body.append("<details class='model-scores'><summary>Scores of this model</summary>")
        body.append(_score_table([result], with_model=False))
        body.append("</details>")
        for section_title, fragment in per_model.get(result.name, []):
            body.append(f"<div class='subsection'><h3>{esc(section_title)}</h3>{fragment}</div>")
        body.append("</section>")

    for k, (section_title, fragment) in enumerate(extra):
        body.append(
            f"<section id='extra-{k}' class='card extra'><h2>{esc(section_title)}</h2>{fragment}</section>"
        )

    body.append(
        "<footer>GEAR report · standalone page: plotly.js"
        f" {esc(_plotly_js_version())} and the audio are embedded, nothing is loaded from the network.</footer>"
    )
    player = (
        "<div id='gear-player' class='player' aria-live='polite'>"
        "<span class='player-icon'>♪</span><span id='gear-now'>"
        + ("Click a point in a 3-D plot to hear its sound." if audio is not None else
           "Audio is not embedded in this report.")
        + "</span><button type='button' id='gear-replay' disabled>Replay</button>"
        "<label class='volume'>Volume "
        "<input type='range' id='gear-volume' min='0' max='1' step='0.05' value='0.5'></label>"
        "</div>"
    )

    plotly_js = plotly.offline.get_plotlyjs()
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<meta name='generator' content='GEAR{esc(_version_text())}'>",
        f"<title>{esc(title)}</title>",
        "<style>" + _asset("report.css") + "</style>",
        "<script>" + plotly_js.replace("</script", "<\\/script") + "</script>",
        "</head><body>",
        "<main>",
        "\n".join(body),
        "</main>",
        player,
        "<script id='gear-data' type='application/json'>" + _json_for_script(payload) + "</script>",
    ]
    if audio is not None:
        parts.append("<script id='gear-audio' type='application/octet-stream'>" + _encode_audio(audio) + "</script>")
    parts += ["<script>" + _asset("report.js") + "</script>", "</body></html>", ""]
    return "\n".join(parts)


def _version_text() -> str:
    try:
        from importlib.metadata import version

        return " " + version("gear-audio")
    except Exception:  # not installed as a distribution (e.g. a source checkout)
        return ""


def _plotly_js_version() -> str:
    try:
        from plotly.offline import get_plotlyjs_version

        return get_plotlyjs_version()
    except Exception:
        return ""


_HOW_TO_READ = """
<section id='how-to-read' class='card how'>
<h2>How to read this page</h2>
<div class='how-grid'>
<div><h3>The tones</h3>
<p>Every sound is a harmonic tone y(t) = Σ<sub>p</sub> (1 + (−1)<sup>p</sup> r) / p<sup>α</sup> · cos(2π p f1 t),
shaped by a Hann window. Three causes vary: <b>f1</b>, the fundamental frequency in Hz (pitch);
<b>α</b>, the spectral decay (larger α = duller: partial p is weighted 1/p<sup>α</sup>); <b>r</b>, the
odd/even balance (odd partials weighted 1 − r, even ones 1 + r; r = 0 gives all harmonics).</p></div>
<div><h3>The 3-D plots</h3>
<p>One point per tone. Its position is the 3-D <b>Isomap</b> of the model's embeddings (geodesic distances
along the nearest-neighbour graph; the axes have no unit). The colour is one parameter, from
<span class='blue'>blue (low)</span> through white to <span class='red'>red (high)</span>: use the
<i>Colour by</i> buttons. A model that keeps a parameter shows a smooth colour gradient; a speckled
cloud means neighbours in the model disagree on that parameter. Hover for a tone's parameters,
click to hear it.</p></div>
<div><h3>The scores</h3>
<p>For each tone, the mean parameter of its K nearest neighbours in embedding space (itself
excluded), θ̃, is compared with its own value θ by the log-ratio log(θ̃/θ). A model scores well
(low median |log-ratio|) on a parameter when tones that it places close together share that
parameter. Where θ = 0 (α = 0, r = 0) the log-ratio is undefined and the tone is left out
(<i>n</i> counts the tones kept).</p></div>
</div>
</section>
"""
