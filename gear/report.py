"""The GEAR report: one standalone, offline HTML page per run.

The page shows, for every model, the 3-D Isomap of its embeddings coloured by a synthesis
parameter (f1, alpha or r; red = high, blue = low), with the sound's parameters on hover and
its audio on click; the distributions of the K-NN log-ratios per model and parameter (the
GEAR paper's Figure 4); and the table of scores (median |log-ratio|, IQR, bootstrap 95 % CI,
n, chance level) with each model's warnings.

Everything the page needs is inside the file: plotly.js once, the figures' data as base64
typed arrays, and the audio of all sounds once as 16-bit PCM (little-endian, base64; for large
sets, see below), decoded in the browser and played with the Web Audio API. It makes no
network request.

The page is rendered by Jinja2 templates (``gear/templates/report.html`` and its
``_report_*.html`` partials, autoescaped) through :mod:`gear.html`; the browser code is
``gear/report_assets/report.js`` and the styles ``report.css``.

Large tone sets
---------------
Above ``max_points`` tones (default 20 000) the plots draw a stratified subsample: the tones
are grouped by the values (at most 16 distinct) or quintiles of each colour factor (f1,
alpha, r), jointly, and every group gives the same fraction of its tones (largest-remainder
rounding, seeded). The page says so; the score table and the scores use every tone.
The audio of every plotted tone is embedded as PCM when it fits in ``max_audio_mb``.
Otherwise, when the tones are eq. 1 tones (checked against the given audio on 64 of them),
the page holds only their parameters and ``report.js`` synthesises a clicked tone in the
browser, sample for sample as :func:`synth.harmonic_tones` does; else the PCM of as many
plotted tones as fit is embedded and the page says which play.

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

Only when the page draws a subsample, ``"subsample": {"rows": {"dtype": "i4", "bdata"},
"n_plotted", "max_points", "seed", "strata": [parameter names]}`` is present: the rows of the
parameters, of every trace and of the audio are then the tones ``rows`` (positions in the
tone set), in that order; ``n_sounds`` stays the size of the whole set. When the PCM of the
page's rows would exceed ``max_audio_mb``, ``audio`` carries ``"n_rows": k`` (PCM of the
first k rows only), or is
``{"encoding": "eq1", "n_partials", "peak", "window": "hann-periodic"}``: no ``gear-audio``
element; tone k is ``y(t) = sum_p (1 + (-1)^p r) / p^alpha cos(2 pi p f1 t)`` over the
partials below Nyquist, times a periodic Hann window of ``n_samples``, scaled to ``peak``.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import math
import os
import pathlib
import re
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gear import html as gear_html
from gear.errors import ParameterError
from gear.files import atomic_write_bytes

from .results import ModelResult

__all__ = [
    "write_report",
    "figure_fragment",
    "leaderboard_section",
    "stratified_subsample",
    "PARAMETER_LABELS",
    "REPORT_FORMAT",
]

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
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_WARNINGS_SHOWN = 8
_AUDIO_MODES = ("auto", "pcm", "synthesis")
# Strata of the plotted subsample: a colour factor with at most this many distinct values is
# stratified by value, any other by quintiles.
_STRATA_MAX_VALUES = 16
_STRATA_QUANTILES = 5
# Eq. 1 as the browser synthesises it; checked against the given audio on this many tones.
_EQ1_PARTIALS = 32
_EQ1_CHECKED = 64
_EQ1_TOLERANCE = 1e-5  # below the 16-bit PCM step (1 / 32767 = 3e-5) that it replaces
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


def _check_factors(factors, parameters) -> Optional[List[dict]]:
    """The factor descriptions of a stimulus family (None: the harmonic tones' f1, alpha, r)."""
    if factors is None:
        return None
    out = []
    for factor in factors:
        if not isinstance(factor, Mapping) or "name" not in factor:
            raise ParameterError("factors must be a list of dicts with at least 'name' (Factor.describe())")
        if factor["name"] not in parameters:
            raise ParameterError(f"factor {factor['name']!r} has no column in parameters; pass one value (discrete: "
                                 f"the value's position in 'values') per sound")
        out.append({"name": str(factor["name"]), "unit": str(factor.get("unit") or ""),
                    "kind": str(factor.get("kind", "continuous")), "role": str(factor.get("role", "cause")),
                    "statistic": str(factor.get("statistic", "log_ratio")),
                    "values": [str(v) for v in factor.get("values", ())] if factor.get("kind") == "discrete" else None})
    if not out:
        raise ParameterError("factors is empty; give at least one factor or None for the harmonic tones")
    return out


def _colour_keys(factors: Optional[List[dict]]) -> Tuple[str, ...]:
    return _COLOUR_KEYS if factors is None else tuple(f["name"] for f in factors)


def _check_parameters(parameters, factors: Optional[List[dict]] = None) -> Dict[str, np.ndarray]:
    if not isinstance(parameters, Mapping):
        raise ParameterError(
            f"parameters must be a dict of 1-D arrays, got {type(parameters).__name__}; "
            "pass ToneSet.table(sample_rate) or {'index', 'f1_hz', 'alpha', 'r'}"
        )
    required = _REQUIRED_PARAMETERS if factors is None else ("index",) + _colour_keys(factors)
    missing = [key for key in required if key not in parameters]
    if missing:
        raise ParameterError(
            f"parameters lack {missing}; required columns are {list(required)} "
            "(optional: 'f1_bins')"
        )
    columns = {}
    n = None
    for key in required + (("f1_bins",) if "f1_bins" in parameters and factors is None else ()):
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


class _Tones:
    """The audio of the tone set: a checked array, or a callable that renders the rows it is
    asked for (each answer checked) so that a large set is never rendered whole."""

    def __init__(self, render: Callable[[np.ndarray], np.ndarray], n_samples: int, array=None):
        self._render = render
        self.n_samples = n_samples
        self._array = array

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The tones ``indices`` (positions in the tone set), float, shape (len(indices), n_samples)."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return np.zeros((0, self.n_samples), dtype=np.float32)
        if self._array is not None:
            whole = indices.size == self._array.shape[0] and np.array_equal(indices, np.arange(indices.size))
            return self._array if whole else self._array[indices]
        return _check_audio_array(self._render(indices), indices.size, "audio(rows)", self.n_samples)


def _check_audio(audio, n_sounds: int) -> Optional[_Tones]:
    if audio is None:
        return None
    if callable(audio) and not isinstance(audio, np.ndarray):
        probe = _check_audio_array(audio(np.arange(1)), 1, "audio(rows)")
        return _Tones(audio, probe.shape[1])
    array = _check_audio_array(audio, n_sounds, "audio")
    return _Tones(None, array.shape[1], array)


def _check_audio_array(audio, n_rows: int, what: str, n_samples: Optional[int] = None) -> np.ndarray:
    """``audio`` as a 2-D floating-point array of ``n_rows`` tones in [-1, 1]."""
    array = np.asarray(audio)
    if array.ndim != 2:
        raise ParameterError(
            f"{what} must be 2-D (n_sounds, n_samples), got shape {array.shape}; stack the tones row by row"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ParameterError(
            f"{what} must be floating point in [-1, 1], got dtype {array.dtype}; "
            "convert int16 PCM with audio / 32768"
        )
    if array.shape[0] != n_rows:
        raise ParameterError(
            f"{what} has {array.shape[0]} rows but there are {n_rows} sounds; pass one row per sound"
        )
    if array.shape[1] < 1 or (n_samples is not None and array.shape[1] != n_samples):
        raise ParameterError(f"{what} has {array.shape[1]} samples per sound; pass the rendered tones, all of "
                             "one length")
    if not np.all(np.isfinite(array)):
        raise ParameterError(f"{what} contains NaN or inf; check the synthesiser output")
    peak = float(np.max(np.abs(array)))
    if peak > 1.0 + 1e-6:
        raise ParameterError(
            f"{what} must lie in [-1, 1], got a peak of {peak:.4g}; normalise it (e.g. audio / {peak:.4g})"
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



# ----------------------------------------------------------------------------- subsample
@dataclasses.dataclass(frozen=True)
class _Subsample:
    """The tones the plots draw when there are more than ``max_points``."""

    rows: np.ndarray  # positions in the tone set, int64, in page order
    n_sounds: int
    max_points: int
    seed: int
    strata: Tuple[str, ...]


def _strata_codes(values: np.ndarray) -> np.ndarray:
    """Stratum of each value: its rank among the distinct values when there are at most
    ``_STRATA_MAX_VALUES`` of them (a grid factor), else its quintile."""
    distinct = np.unique(values)
    if distinct.size <= _STRATA_MAX_VALUES:
        return np.searchsorted(distinct, values)
    edges = np.quantile(values, np.arange(1, _STRATA_QUANTILES) / _STRATA_QUANTILES)
    return np.searchsorted(edges, values, side="right")


def _largest_remainder(quota: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integers summing to ``total``, each the floor or the ceiling of its ``quota``
    (Hamilton's method; ties broken at random)."""
    take = np.floor(quota).astype(np.int64)
    short = total - int(take.sum())
    order = np.lexsort((rng.random(quota.size), -(quota - take)))
    take[order[:short]] += 1
    return take


def stratified_subsample(
    parameters: Mapping[str, np.ndarray],
    max_points: int,
    *,
    seed: int = 0,
    keys: Sequence[str] = _COLOUR_KEYS,
) -> np.ndarray:
    """Rows of a stratified random subsample of at most ``max_points`` tones.

    The tones are grouped jointly by each key's stratum (its value when the key takes at most
    16 distinct values, else its quintile); every group keeps the same fraction of its tones,
    rounded by largest remainder, so each group's count is the floor or the ceiling of its
    share. scikit-learn's stratified splitters refuse groups of one tone, which joint strata
    of an irregular design have, hence this small function.

    Parameters
    ----------
    parameters : dict of str -> np.ndarray, shape (n_sounds,)
    max_points : int
    seed : int
        Seed of the draw within each group (and of the returned order).
    keys : sequence of str
        The columns to stratify over (default: the report's colour factors).

    Returns
    -------
    np.ndarray, shape (min(n_sounds, max_points),), int64
        Positions in the tone set, in random order (so any prefix is a random subset);
        ``arange(n_sounds)`` when ``n_sounds <= max_points``.
    """
    n = len(parameters[keys[0]])
    if n <= max_points:
        return np.arange(n)
    labels = np.zeros(n, dtype=np.int64)
    for key in keys:
        codes = _strata_codes(np.asarray(parameters[key], dtype=np.float64))
        labels = labels * (int(codes.max()) + 1) + codes
    _, strata = np.unique(labels, return_inverse=True)
    strata = strata.ravel()
    counts = np.bincount(strata)
    rng = np.random.default_rng(seed)
    take = _largest_remainder(counts * (max_points / n), max_points, rng)
    order = rng.permutation(n)
    order = order[np.argsort(strata[order], kind="stable")]  # grouped by stratum, random inside
    position = np.arange(n) - (np.cumsum(counts) - counts)[strata[order]]
    chosen = order[position < take[strata[order]]]
    return rng.permutation(chosen)


def _subsample(columns: Dict[str, np.ndarray], max_points: int, seed: int,
               keys: Sequence[str] = _COLOUR_KEYS) -> Optional[_Subsample]:
    n_sounds = columns["index"].shape[0]
    if n_sounds <= max_points:
        return None
    rows = stratified_subsample(columns, max_points, seed=seed, keys=keys)
    return _Subsample(rows=rows, n_sounds=n_sounds, max_points=max_points, seed=seed, strata=tuple(keys))


def _page_result(result: ModelResult, rows: np.ndarray) -> ModelResult:
    """``result`` restricted to the plotted ``rows`` (the scores stay those of every tone)."""
    return dataclasses.replace(
        result,
        isomap=np.asarray(result.isomap, dtype=np.float64)[rows],
        log_ratios={k: np.asarray(v, dtype=np.float64)[rows] for k, v in result.log_ratios.items()},
    )


# ----------------------------------------------------------------------------- audio
@dataclasses.dataclass
class _AudioPlan:
    """How the page plays sounds: ``mode`` None (no audio), ``"pcm"`` or ``"synthesis"``."""

    mode: Optional[str] = None
    spec: Optional[dict] = None  # the payload's "audio"
    base64: str = ""  # text of the gear-audio element
    n_rows: int = 0  # page rows that play
    n_page_rows: int = 0
    pcm_mb: float = 0.0  # size the PCM of every page row would take
    budget_mb: float = 0.0
    peak: float = 0.0
    checked: int = 0


def _plan_audio(audio: Optional[_Tones], page: Dict[str, np.ndarray], rows: np.ndarray, rate: float, *,
                mode: str, max_audio_mb: float, seed: int, eq1: bool = True) -> _AudioPlan:
    """PCM of every page row when it fits in ``max_audio_mb`` (or ``mode == "pcm"``); else
    eq. 1 synthesis in the browser when the audio is eq. 1 tones; else PCM of the first rows
    that fit. ``eq1`` False (a stimulus family): never eq. 1 synthesis."""
    if audio is None:
        return _AudioPlan()
    if not eq1:
        if mode == "synthesis":
            raise ParameterError("audio_mode='synthesis' is for the harmonic (eq. 1) tones only; use 'pcm' or 'auto'")
        mode = "pcm"
    row_mb = 8 * audio.n_samples / 3 / 1e6  # base64 of 2 bytes per sample
    fit = min(rows.size, int(max_audio_mb // row_mb))
    sizes = dict(n_page_rows=int(rows.size), pcm_mb=rows.size * row_mb, budget_mb=float(max_audio_mb))
    if mode == "pcm" or (mode == "auto" and fit == rows.size):
        return _pcm_plan(audio, rows, fit, sizes)
    checked = np.arange(rows.size)
    if rows.size > _EQ1_CHECKED:
        checked = np.sort(np.random.default_rng(seed + 1).choice(rows.size, _EQ1_CHECKED, replace=False))
    spec = _eq1_spec(audio.rows(rows[checked]), {k: page[k][checked] for k in _COLOUR_KEYS}, rate)
    if spec is not None:
        return _AudioPlan(mode="synthesis", spec=spec, n_rows=int(rows.size), peak=spec["peak"],
                          checked=int(checked.size), **sizes)
    if mode == "synthesis":
        raise ParameterError(
            "audio_mode='synthesis', but the audio is not eq. 1 tones of the parameters "
            f"({_EQ1_PARTIALS} partials, periodic Hann window, one peak): use audio_mode='pcm' or 'auto'"
        )
    return _pcm_plan(audio, rows, fit, sizes)


def _pcm_plan(audio: _Tones, rows: np.ndarray, n_rows: int, sizes: dict) -> _AudioPlan:
    spec = {"encoding": "pcm_s16le", "element": "gear-audio", "scale": _PCM_SCALE}
    if n_rows < rows.size:
        spec["n_rows"] = int(n_rows)
    return _AudioPlan(mode="pcm", spec=spec, base64=_encode_audio(audio.rows(rows[:n_rows])), n_rows=int(n_rows),
                      **sizes)


def _eq1_spec(audio_rows: np.ndarray, params: Dict[str, np.ndarray], rate: float) -> Optional[dict]:
    """The eq. 1 recipe that reproduces ``audio_rows`` within ``_EQ1_TOLERANCE``, or None."""
    from synth import harmonic_tones
    from synth.errors import SynthError

    if not float(rate).is_integer():
        return None
    peaks = np.max(np.abs(audio_rows), axis=1).astype(np.float64)
    peak = float(np.median(peaks))
    if not 0 < peak <= 1 or np.max(np.abs(peaks - peak)) > _EQ1_TOLERANCE:
        return None
    try:
        expected = harmonic_tones(params["f1_hz"], params["alpha"], params["r"], sample_rate=int(rate),
                                  n_samples=audio_rows.shape[1], n_partials=_EQ1_PARTIALS, peak=peak)
    except SynthError:
        return None
    if np.max(np.abs(expected - audio_rows)) > _EQ1_TOLERANCE:
        return None
    return {"encoding": "eq1", "n_partials": _EQ1_PARTIALS, "peak": peak, "window": "hann-periodic"}


# ----------------------------------------------------------------------------- figures
def _hover_template(has_bins: bool, factors: Optional[List[dict]]) -> str:
    if factors is None:
        return gear_html.render("_report_hover.html", has_bins=has_bins).strip()
    lines = [f"{f['name']} = %{{customdata[{k}]}}" for k, f in enumerate(factors, start=1)]
    return "<b>sound #%{customdata[0]}</b><br>" + "<br>".join(lines) + "<br><i>click to play</i><extra></extra>"


def _scatter_figure(result: ModelResult, colour: Mapping, *, has_bins: bool, height: int, factors=None):
    """The 3-D Isomap of one model; ``colour`` is the first colour option (key, cmin, cmax).
    marker.color and customdata are shared by all models and set in the browser."""
    import plotly.graph_objects as go

    isomap = np.asarray(result.isomap, dtype=np.float32)
    trace = go.Scatter3d(
        x=isomap[:, 0],
        y=isomap[:, 1],
        z=isomap[:, 2],
        mode="markers",
        name=result.name,
        marker=dict(
            size=3,
            opacity=0.9,
            colorscale=colour.get("colorscale", _DIVERGING),
            cmin=colour["cmin"],
            cmax=colour["cmax"],
            colorbar=dict(title=dict(text=colour["label"], side="right"), thickness=14, len=0.75,
                          **({k: colour[k] for k in ("tickvals", "ticktext")} if "tickvals" in colour else {})),
            line=dict(width=0),
        ),
        hovertemplate=_hover_template(has_bins, factors),
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
        font=dict(family=_FONT, size=12, color="#222"),
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
    """Box plots of the finite log-ratios: one subplot per parameter, one box per model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_cols = len(parameter_names)
    fig = make_subplots(
        rows=1,
        cols=n_cols,
        subplot_titles=[_label(p) + _statistic_suffix(results, p) for p in parameter_names],
        horizontal_spacing=0.06 if n_cols > 1 else 0.0,
    )
    for col, parameter in enumerate(parameter_names, start=1):
        chances = []
        for i, result in enumerate(results):
            values = result.log_ratios.get(parameter)
            if values is None:
                continue
            values = np.asarray(values, dtype=np.float64)
            fig.add_trace(
                go.Box(
                    y=values[np.isfinite(values)].astype(np.float32),
                    name=result.name,
                    legendgroup=result.name,
                    showlegend=False,
                    marker=dict(color=_MODEL_COLOURS[i % len(_MODEL_COLOURS)], size=2, opacity=0.35),
                    line=dict(width=1.5),
                    boxpoints="outliers",
                    hoverinfo="y+name",
                ),
                row=1,
                col=col,
            )
            chances += [_float_or_nan(row.get("chance")) for row in result.scores if row.get("parameter") == parameter]
        _add_zero_and_chance(fig, col, [c for c in chances if math.isfinite(c)])
    _style_distribution_figure(fig, n_models=len(results))
    return fig


def _statistic_suffix(results: Sequence[ModelResult], parameter: str) -> str:
    """`` (difference)`` or `` (agreement)`` for a factor not scored by the log-ratio."""
    for result in results:
        for row in result.scores:
            if row.get("parameter") == parameter and row.get("statistic", "log_ratio") != "log_ratio":
                return f" ({row['statistic']})"
    return ""


def _add_zero_and_chance(fig, col: int, chances: Sequence[float]) -> None:
    """The line at 0 and the grey band of ± the mean chance score in subplot ``col``."""
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


def _style_distribution_figure(fig, *, n_models: int) -> None:
    fig.update_yaxes(title_text="log(θ̃ / θ)", row=1, col=1)
    fig.update_yaxes(zeroline=False, gridcolor="#e6e8eb", showline=True, linecolor="#888")
    fig.update_xaxes(tickangle=-30 if n_models > 3 else 0, showline=True, linecolor="#888")
    fig.update_layout(
        template="none",
        height=430,
        margin=dict(l=60, r=20, t=40, b=60),
        paper_bgcolor="white",
        plot_bgcolor="white",
        font=dict(family=_FONT, size=12, color="#222"),
        boxgap=0.35,
    )


def _float_or_nan(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# ----------------------------------------------------------------------------- page context
def _parameter_names(results: Sequence[ModelResult]) -> List[str]:
    """The parameters with log-ratios: the colour factors first, then any other, in order."""
    names = [key for key in _COLOUR_KEYS if any(key in r.log_ratios for r in results)]
    for result in results:
        names += [key for key in result.log_ratios if key not in names]
    return names


def _colour_options(columns: Dict[str, np.ndarray], factors: Optional[List[dict]] = None) -> List[dict]:
    if factors is not None:
        return [_factor_colour_option(columns[f["name"]], f) for f in factors]
    return [
        {
            "key": key,
            "label": _label(key),
            "short": _SHORT_LABELS.get(key, key),
            "cmin": float(columns[key].min()),
            "cmax": float(columns[key].max()),
        }
        for key in _COLOUR_KEYS
    ]


def _factor_colour_option(values: np.ndarray, factor: dict) -> dict:
    """A colour option of a family's factor: the diverging scale for a continuous one, one
    categorical colour per value (Okabe & Ito) for a discrete one (the column holds codes)."""
    import plotly.colors

    unit = f" ({factor['unit']})" if factor["unit"] else ""
    option = {"key": factor["name"], "label": factor["name"] + unit, "short": factor["name"],
              "cmin": float(values.min()), "cmax": float(values.max()),
              "colorscale": plotly.colors.get_colorscale(_DIVERGING)}
    if factor["values"] is not None:
        m = len(factor["values"])
        colours = [_MODEL_COLOURS[k % len(_MODEL_COLOURS)] for k in range(m)]
        edges = np.linspace(0, 1, m + 1)
        option.update(cmin=-0.5, cmax=m - 0.5, values=factor["values"], tickvals=list(range(m)),
                      ticktext=factor["values"], colorscale=[
            stop for k, colour in enumerate(colours) for stop in ([float(edges[k]), colour], [float(edges[k + 1]), colour])])
    return option


def _payload(page_results, columns, page_columns, *, ids, plan, sample, n_samples, rate, scatter_height,
             factors=None) -> dict:
    """The ``gear-data`` JSON (see the module docstring)."""
    options = _colour_options(columns, factors)
    parameter_names = _parameter_names(page_results)
    has_bins = "f1_bins" in columns
    payload = {
        "format": REPORT_FORMAT,
        "n_sounds": int(columns["index"].shape[0]),
        "n_samples": n_samples,
        "sample_rate": rate,
        "parameters": {key: _typed(values, "i4" if key == "index" else "f8") for key, values in page_columns.items()},
        "colour_options": options,
        "models": [
            {
                "name": result.name,
                "id": model_id,
                "figure": _figure_dict(_scatter_figure(result, options[0], has_bins=has_bins, height=scatter_height,
                                                       factors=factors)),
            }
            for result, model_id in zip(page_results, ids)
        ],
        "distributions": _figure_dict(_distribution_figure(page_results, parameter_names)) if parameter_names else None,
        "audio": plan.spec,
    }
    if factors is not None:
        payload["factors"] = factors
    if sample is not None:
        payload["subsample"] = {
            "rows": _typed(sample.rows, "i4"),
            "n_plotted": int(sample.rows.size),
            "max_points": sample.max_points,
            "seed": sample.seed,
            "strata": list(sample.strata),
        }
    return payload


def _score_row(row: Optional[Mapping]) -> Optional[dict]:
    """The formatted cells of one score-table row (None: a model without scores)."""
    if row is None:
        return None
    median = _float_or_nan(row["median_abs_log_ratio"])
    chance = _float_or_nan(row["chance"])
    ratio = median / chance if math.isfinite(median) and math.isfinite(chance) and chance > 0 else None
    return {
        "parameter": _label(str(row["parameter"])),
        "median": _fmt(median),
        "iqr": _fmt(row["iqr"]),
        "ci_low": _fmt(row["ci_low"]),
        "ci_high": _fmt(row["ci_high"]),
        "n": _fmt_int(row["n"]),
        "chance": _fmt(chance),
        "ratio_percent": None if ratio is None else f"{ratio * 100:.0f}",
        "bar_percent": None if ratio is None else f"{min(ratio, 1.0) * 100:.0f}",
    }


def _model_context(index: int, result: ModelResult, sections: Sequence[Tuple[str, str]]) -> dict:
    """What ``_report_model.html`` and the score table show of one model."""
    return {
        "index": index,
        "id": _slug(result.name, index),
        "name": result.name,
        "description": result.description,
        "embedding_dim": _fmt_int(result.embedding_dim) if result.embedding_dim else "",
        "n_components": result.n_components,
        "warnings": [{"text": text, "count": count} for text, count in _count_unique(result.warnings)],
        "n_warnings": len(result.warnings),
        "score_rows": [_score_row(row) for row in (list(result.scores) or [None])],
        "sections": [{"title": title, "html": gear_html.Markup(fragment)} for title, fragment in sections],
    }


def _facts(columns: Dict[str, np.ndarray], n_models: int, audio: Optional[_Tones], rate: float,
           factors: Optional[List[dict]] = None) -> dict:
    duration = ""
    if audio is not None:
        n_samples = audio.n_samples
        duration = f"{n_samples / rate * 1000:.4g} ms at {rate / 1000:.4g} kHz ({_fmt_int(n_samples)} samples)"
    return {
        "n_tones": _fmt_int(columns["index"].shape[0]),
        "duration": duration,
        "n_models": n_models,
        "factors_text": "" if factors is None else _factors_text(columns, factors),
        **(_harmonic_ranges(columns) if factors is None else {}),
    }


def _harmonic_ranges(columns: Dict[str, np.ndarray]) -> dict:
    return {"f1_range": _range_text(columns["f1_hz"], 4), "alpha_range": _range_text(columns["alpha"]),
            "r_range": _range_text(columns["r"])}


def _factors_text(columns: Dict[str, np.ndarray], factors: List[dict]) -> str:
    parts = []
    for f in factors:
        if f["values"] is not None:
            used = sorted(set(columns[f["name"]].astype(int).tolist()))
            parts.append(f"{f['name']} {{{', '.join(f['values'][k] for k in used)}}}")
        else:
            parts.append(f"{f['name']} {_range_text(columns[f['name']], 4)}{(' ' + f['unit']) if f['unit'] else ''}")
        if f["role"] == "nuisance":
            parts[-1] += " (nuisance)"
    return " · ".join(parts)


def _sample_context(sample: Optional[_Subsample]) -> Optional[dict]:
    if sample is None:
        return None
    return {
        "n_plotted_text": _fmt_int(sample.rows.size),
        "max_points_text": _fmt_int(sample.max_points),
        "seed": sample.seed,
        "strata_text": ", ".join(_SHORT_LABELS.get(key, key) for key in sample.strata),
    }


def _audio_context(plan: _AudioPlan) -> dict:
    return {
        "mode": plan.mode,
        "base64": gear_html.Markup(plan.base64),
        "partial": plan.mode == "pcm" and plan.n_rows < plan.n_page_rows,
        "n_rows_text": _fmt_int(plan.n_rows),
        "n_page_rows_text": _fmt_int(plan.n_page_rows),
        "pcm_mb": f"{plan.pcm_mb:.0f}",
        "budget_mb": f"{plan.budget_mb:g}",
        "peak": f"{plan.peak:g}",
        "checked": plan.checked,
        "n_partials": _EQ1_PARTIALS,
    }


def _count_unique(texts: Sequence[str]) -> List[Tuple[str, int]]:
    """Distinct texts in first-seen order, with how often each occurs."""
    counts: Dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    return list(counts.items())


def _range_text(values: np.ndarray, digits: int = 3) -> str:
    return f"{_fmt(values.min(), digits)} – {_fmt(values.max(), digits)}"


# ----------------------------------------------------------------------------- the page
def write_report(
    path,
    results: Sequence[ModelResult],
    *,
    parameters: Mapping[str, np.ndarray],
    audio,
    sample_rate: float,
    title: str = "GEAR report",
    notes: Sequence[str] = (),
    extra_sections: Sequence[Tuple[str, str]] = (),
    per_model_sections: Optional[Mapping[str, Sequence[Tuple[str, str]]]] = None,
    scatter_height: int = 560,
    max_points: int = 20_000,
    subsample_seed: int = 0,
    audio_mode: str = "auto",
    max_audio_mb: float = 30.0,
    factors: Optional[Sequence[Mapping]] = None,
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
    audio : np.ndarray, shape (n_sounds, n_samples), float, in [-1, 1]; callable; or None
        The tones at ``sample_rate``; row i is played when point i is clicked. Stored once as
        16-bit PCM (2 bytes per sample, +33 % for base64: 2 500 x 1 024 samples -> 6.8 MB)
        when that fits in ``max_audio_mb``; see ``audio_mode`` for larger sets. A callable
        ``audio(rows)`` returns the tones ``rows`` (int array of positions in the tone set),
        shape (len(rows), n_samples): the report then renders only the tones it embeds or
        checks (at most ``max_points`` + 65), e.g.
        ``lambda rows: tone_set.render(sample_rate, indices=rows)``. ``None`` leaves the
        audio out (a smaller page that cannot play sounds).
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
    max_points : int
        Most tones a plot draws. Above it, every plot draws the same stratified subsample
        (:func:`stratified_subsample`), and the page says so; the scores use every tone.
    subsample_seed : int
        Seed of that subsample.
    audio_mode : {"auto", "pcm", "synthesis"}
        ``"pcm"``: the PCM of the plotted tones, as many as fit in ``max_audio_mb``.
        ``"synthesis"``: only the parameters; the browser synthesises a clicked tone from
        eq. 1 (a ParameterError unless that reproduces ``audio``, checked on 64 tones).
        ``"auto"``: PCM when every plotted tone fits, else synthesis when the audio is eq. 1
        tones, else PCM of as many plotted tones as fit (the page says which play).
    max_audio_mb : float
        Budget of the embedded PCM (base64) in MB; with plotly.js (4.8 MB) and the data of
        20 000 points per plot, the default keeps the page under 50 MB.
    factors : list of dict, optional
        A stimulus family's factors (``Factor.describe()``: ``name``, ``unit``, ``kind``,
        ``values``, ``role``, ``statistic``): the page colours by each of them (discrete ones
        with one categorical colour per value; their ``parameters`` column holds the value's
        position in ``values``) and plays the embedded PCM (never eq. 1 synthesis). None (the
        default): the harmonic tones' ``f1_hz``, ``alpha``, ``r``.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ParameterError
        Inconsistent sizes (parameters, isomap, log-ratios, audio), isomap not
        (n_sounds, 3), audio not 2-D floating point in [-1, 1], sample rate outside the
        Web Audio range, duplicate model names, sections that load external resources, bad
        ``max_points``, ``audio_mode`` or ``max_audio_mb``.
    """
    path = pathlib.Path(os.fspath(path))
    if path.is_dir():
        raise ParameterError(
            f"path {str(path)!r} is a folder; give a file name such as {str(path / 'report.html')!r}"
        )
    checked = _check_inputs(results, parameters, audio, sample_rate, title, notes, extra_sections,
                            per_model_sections, scatter_height, factors)
    options = _check_large_n_options(max_points, subsample_seed, audio_mode, max_audio_mb)
    document = _render(**checked, title=title, notes=list(notes), **options)
    return atomic_write_bytes(path, document.encode("utf-8"))


def _check_inputs(results, parameters, audio, sample_rate, title, notes, extra_sections, per_model_sections,
                  scatter_height, factors=None) -> dict:
    """The validated arguments of :func:`write_report`, as :func:`_render` takes them."""
    if isinstance(results, ModelResult) or not isinstance(results, Sequence):
        raise ParameterError("results must be a list of ModelResult (one per model)")
    results = list(results)
    if not results:
        raise ParameterError("results is empty; the report needs at least one ModelResult")
    factors = _check_factors(factors, parameters if isinstance(parameters, Mapping) else {})
    columns = _check_parameters(parameters, factors)
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
    return dict(results=results, columns=columns, audio=audio, rate=rate, extra=extra, per_model=per_model,
                scatter_height=int(scatter_height), factors=factors)


def _check_large_n_options(max_points, subsample_seed, audio_mode, max_audio_mb) -> dict:
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 1:
        raise ParameterError(f"max_points must be a positive integer (points per plot), got {max_points!r}")
    if isinstance(subsample_seed, bool) or not isinstance(subsample_seed, (int, np.integer)) or subsample_seed < 0:
        raise ParameterError(f"subsample_seed must be a non-negative integer, got {subsample_seed!r}")
    if audio_mode not in _AUDIO_MODES:
        raise ParameterError(f"audio_mode={audio_mode!r}; expected one of {list(_AUDIO_MODES)}")
    try:
        budget = float(max_audio_mb)
    except (TypeError, ValueError):
        budget = float("nan")
    if not (math.isfinite(budget) and budget >= 0):
        raise ParameterError(f"max_audio_mb must be a number of MB >= 0, got {max_audio_mb!r}")
    return dict(max_points=int(max_points), seed=int(subsample_seed), audio_mode=audio_mode, max_audio_mb=budget)


def _render(results, columns, audio, rate, *, title, notes, extra, per_model, scatter_height, max_points, seed,
            audio_mode, max_audio_mb, factors=None) -> str:
    """The page: choose the plotted rows and the audio plan, build the data and the
    template context, render ``report.html``."""
    import plotly.offline

    sample = _subsample(columns, max_points, seed, keys=_colour_keys(factors))
    rows = np.arange(columns["index"].shape[0]) if sample is None else sample.rows
    page_columns = columns if sample is None else {key: values[rows] for key, values in columns.items()}
    page_results = results if sample is None else [_page_result(result, rows) for result in results]
    plan = _plan_audio(audio, page_columns, rows, rate, mode=audio_mode, max_audio_mb=max_audio_mb, seed=seed,
                       eq1=factors is None)
    models = [_model_context(i, result, per_model.get(result.name, [])) for i, result in enumerate(results)]
    payload = _payload(
        page_results, columns, page_columns, ids=[model["id"] for model in models], plan=plan, sample=sample,
        n_samples=audio.n_samples if audio is not None else None, rate=rate, scatter_height=scatter_height,
        factors=factors,
    )
    plotly_js = plotly.offline.get_plotlyjs().replace("</script", "<\\/script")
    return gear_html.render(
        "report.html",
        title=title,
        version=_version_text(),
        stamp=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        notes=notes,
        facts=_facts(columns, len(results), audio, rate, factors),
        sample=_sample_context(sample),
        audio=_audio_context(plan),
        models=models,
        colour_options=payload["colour_options"],
        distributions=payload["distributions"] is not None,
        extra=[{"title": t, "html": gear_html.Markup(fragment)} for t, fragment in extra],
        warnings_shown=_WARNINGS_SHOWN,
        plotly_js=gear_html.Markup(plotly_js),
        plotly_version=_plotly_js_version(),
        data_json=gear_html.Markup(_json_for_script(payload)),
    )


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


# ----------------------------------------------------------------------------- fragments
def leaderboard_section(rows: Sequence[Mapping], columns: Sequence[str], *, ranked_by: str) -> str:
    """HTML fragment of a leaderboard, for ``extra_sections`` of :func:`write_report`.

    Parameters
    ----------
    rows : sequence of dict
        One per model, best first (e.g. ``gear.submission.leaderboard``); missing cells are
        shown as ``–``, numbers with 3 significant digits.
    columns : sequence of str
        The columns shown, in order; ``median_abs_log_ratio_<parameter>`` is labelled
        ``median |log-ratio| <parameter>``.
    ranked_by : str
        Plain text naming what orders the rows (shown as "Ranked by ...").

    Returns
    -------
    str
        A ``<div>`` with the sentence and one table (``gear/templates/leaderboard.html``,
        autoescaped: HTML in a model name is shown as text).
    """
    if isinstance(rows, Mapping) or isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
        raise ParameterError(f"rows must be a list of dicts (one per model), got {type(rows).__name__}")
    rows = list(rows)
    if not all(isinstance(row, Mapping) for row in rows):
        raise ParameterError("rows must hold dicts (column -> value), one per model")
    if isinstance(columns, (str, bytes)) or not all(isinstance(c, str) for c in columns):
        raise ParameterError(f"columns must be a list of column names, got {columns!r:.80}")
    if not isinstance(ranked_by, str) or not ranked_by.strip():
        raise ParameterError(f"ranked_by must be a non-empty description of the ranking, got {ranked_by!r}")
    labels = {c: _leaderboard_label(c) for c in columns}
    table = gear_html.table(list(columns), rows, labels=labels, css_class="gear-leaderboard")
    return gear_html.render("leaderboard.html", ranked_by=ranked_by, table=gear_html.Markup(table))


def _leaderboard_label(column: str) -> str:
    prefix = "median_abs_log_ratio_"
    if column.startswith(prefix):
        parameter = column[len(prefix):]
        return f"median |log-ratio| {_SHORT_LABELS.get(parameter, parameter)}"
    return column


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



def unit_sensitivity_section(rows: Mapping[str, Sequence[Mapping]], *, labels: Mapping[str, str],
                             roles: Mapping[str, str]) -> str:
    """HTML fragment "causes beside nuisances", for ``extra_sections`` of :func:`write_report`.

    Parameters
    ----------
    rows : dict of model -> rows
        :func:`gear.pipeline.unit_sensitivity` rows of each model (``sensitivity_per_unit`` and,
        with f1 among the factors, ``sensitivity_vs_f1_octave``).
    labels, roles : dict of factor -> str
        Each factor's unit label (``per octave``...) and role (``cause`` or ``nuisance``).

    Returns
    -------
    str
        A ``<div>`` with one table (models x factors, causes then nuisances), a second table
        relative to an octave of f1 where available, and one sentence per model for the
        largest nuisance (``gear/templates/unit_sensitivity.html``).
    """
    factors = sorted(labels, key=lambda name: roles.get(name, "cause") != "cause")  # stable: causes first
    header = {name: f"{name} {labels[name]} ({roles.get(name, 'cause')})" for name in factors}

    def pivot(metric):
        return [{"model": model, **{r["parameter"]: r["value"] for r in model_rows if r["metric"] == metric}}
                for model, model_rows in rows.items() if model_rows]

    per_unit, vs_f1 = pivot("sensitivity_per_unit"), pivot("sensitivity_vs_f1_octave")
    columns = ["model", *factors]
    table = gear_html.table(columns, per_unit, labels=header, css_class="gear-table")
    has_f1 = any(len(row) > 1 for row in vs_f1)
    f1_table = gear_html.table(columns, vs_f1, labels=header, css_class="gear-table") if has_f1 else ""
    nuisances = [name for name in factors if roles.get(name) == "nuisance"]
    sentences = []
    for row in (vs_f1 if has_f1 else []):
        values = {name: row[name] for name in nuisances if name in row and math.isfinite(row[name])}
        if values:
            top = max(values, key=values.get)
            sentences.append(f"{row['model']}: of the nuisances, {top} moves the embedding most: {labels[top]}, "
                             f"{_fmt(values[top])} times as far as an octave of f1_hz.")
    return gear_html.render("unit_sensitivity.html", table=gear_html.Markup(table),
                            f1_table=gear_html.Markup(f1_table) if f1_table else "", sentences=sentences)
