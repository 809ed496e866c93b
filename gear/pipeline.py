"""``gear run`` as a Python API: synthesise -> embed -> Isomap + scores -> results + report.

The results directory (its layout and guarantees) belongs to :mod:`gear.store`; embedding to
:mod:`gear.embedder`. This module holds the run settings (:class:`GearConfig`), the analysis of
one embedding (:func:`analyse_embedding`) and the report of a results directory
(:func:`write_store_report`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import synth
from embeddings import registry
from embeddings.base import models_dir as embeddings_models_dir
from gear import analysis
from gear.results import ModelResult
from gear.checks import check_int
from gear.errors import ParameterError, lower_layer_errors
from gear.statistics import score_factors

__all__ = ["GearConfig", "analyse_embedding", "run", "open_store", "load_results", "read_run_config", "write_run_report",
           "write_store_report", "analysis_key"]

log = logging.getLogger(__name__)

PARAMETERS = ("f1_hz", "alpha", "r")
REPORT_SAMPLE_RATE = synth.REFERENCE_SAMPLE_RATE


@dataclasses.dataclass
class GearConfig:
    """Analysis settings of a run (defaults: the GEAR paper's)."""

    preset: str = "paper"
    grid_kwargs: dict = dataclasses.field(default_factory=dict)
    isomap_neighbors: int = 100
    isomap_components: int = 3
    n_neighbors: int = 40
    scaling: str = "none"
    scales: dict = dataclasses.field(default_factory=dict)
    n_bootstrap: int = 1000
    random_state: int = 0
    batch_size: int = 250
    #: The stimulus family and design (:func:`stimuli_spec`): keys ``family``, ``design``, ``n``,
    #: ``seed``, ``ranges`` ({factor: [low, high] or [values]}), ``options`` (family options)
    #: and ``design_options``. Empty: the harmonic tones of ``preset`` (today's default).
    stimuli: dict = dataclasses.field(default_factory=dict)

    def settings(self) -> dict:
        """The settings as stored in ``run.json`` and hashed in :func:`analysis_key`.

        ``stimuli`` is left out while empty, so that results written before the field existed
        (and the default run's ``run.json``) compare equal."""
        out = dataclasses.asdict(self)
        if not out["stimuli"]:
            del out["stimuli"]
        return out

    def validate(self, n_sounds: int) -> None:
        """Check the settings against a tone set of ``n_sounds`` before any model runs."""
        analysis._check_k(self.n_neighbors, n_sounds, "n_neighbors")
        analysis._check_k(self.isomap_neighbors, n_sounds, "isomap_neighbors")
        if self.scaling not in analysis.SCALINGS:
            raise ParameterError(f"scaling={self.scaling!r}; choose one of {', '.join(analysis.SCALINGS)}")
        parameters = PARAMETERS if not self.stimuli else self.tone_set().parameters
        for name, scale in self.scales.items():
            if name not in parameters or scale not in analysis.PARAMETER_SCALES:
                raise ParameterError(
                    f"scales[{name!r}]={scale!r}; parameters are {tuple(parameters)}, scales 'linear' or 'log'"
                )
        for name in ("n_bootstrap", "batch_size", "isomap_components"):
            check_int(getattr(self, name), name, min_val=1)

    def tone_set(self):
        """The sounds: ``synth.family(...).design(...)`` when :attr:`stimuli` is set, else
        ``synth.make_grid(preset)`` (a :class:`synth.ToneSet`)."""
        if self.stimuli:
            return stimulus_set(self.stimuli)
        with warnings.catch_warnings(), lower_layer_errors():
            if self.preset == "gear2023-code":
                warnings.simplefilter("default")
            return synth.make_grid(self.preset, **self.grid_kwargs)


_STIMULI_KEYS = ("family", "design", "n", "seed", "ranges", "options", "design_options")


def stimuli_spec(family: str, *, design: str = "random", n: Optional[int] = None, seed: int = 0, ranges=None,
                 options=None, design_options=None) -> dict:
    """The :attr:`GearConfig.stimuli` of a family on a design (JSON-serialisable; checked by
    building the stimulus set)."""
    spec = {"family": family, "design": design, "n": n, "seed": seed,
            "ranges": {k: list(v) for k, v in dict(ranges or {}).items()}, "options": dict(options or {}),
            "design_options": dict(design_options or {})}
    stimulus_set(spec)
    return spec


def stimulus_set(spec: dict):
    """The :class:`synth.families.StimulusSet` described by ``spec`` (see :func:`stimuli_spec`)."""
    unknown = set(spec) - set(_STIMULI_KEYS)
    if unknown or "family" not in spec:
        raise ParameterError(f"stimuli={spec!r}: give 'family' and any of {', '.join(_STIMULI_KEYS[1:])}")
    with lower_layer_errors():
        family = synth.family(spec["family"], **dict(spec.get("options") or {}))
        ranges = {k: tuple(v) if family.factor(k).kind == "continuous" else list(v)
                  for k, v in dict(spec.get("ranges") or {}).items()}
        return family.design(spec.get("design", "random"), n=spec.get("n"), seed=int(spec.get("seed") or 0),
                             ranges=ranges, **dict(spec.get("design_options") or {}))


def analyse_embedding(
    name: str,
    embedding: np.ndarray,
    tone_set: synth.ToneSet,
    *,
    config: Optional[GearConfig] = None,
    description: str = "",
) -> ModelResult:
    """Isomap + K-NN scores of one embedding of ``tone_set``, each factor by its statistic
    (:mod:`gear.statistics`: ``log_ratio`` as the paper, ``difference``, ``agreement``).

    Parameters
    ----------
    name : str
    embedding : np.ndarray, shape (n_sounds, dim)
    tone_set : synth.ToneSet or synth.families.StimulusSet
    config : GearConfig, optional
    description : str

    Notes
    -----
    f1 is taken in Hz at the reference rate. For the ``gear2023-code`` preset, f1 in Hz
    depends on the model's rate by a constant factor, which log-ratios do not see.
    """
    config = config or GearConfig()
    embedding = np.asarray(embedding)
    if embedding.ndim != 2 or embedding.shape[0] != tone_set.n_sounds:
        raise ParameterError(
            f"embedding of {name!r} has shape {embedding.shape}; expected ({tone_set.n_sounds}, dim)"
        )
    theta = dict(zip(tone_parameters(tone_set), tone_set.theta().T))
    notes: List[str] = []
    features, neighbours = _shared_search(embedding, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", analysis.DisconnectedGraphWarning)
        coordinates, n_components = analysis.isomap_embedding(
            features,
            n_neighbors=config.isomap_neighbors,
            n_components=config.isomap_components,
            scaling=config.scaling if neighbours is None else "none",
            neighbours=neighbours,
        )
    for warning in caught:
        if issubclass(warning.category, analysis.DisconnectedGraphWarning):
            notes.append(str(warning.message))
            warnings.warn(f"{name}: {warning.message}", analysis.DisconnectedGraphWarning, stacklevel=2)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    statistics, spans = factor_statistics(tone_set)
    log_ratios, rows = score_factors(
        features,
        theta,
        statistics=statistics,
        spans=spans,
        n_neighbors=config.n_neighbors,
        scaling=config.scaling if neighbours is None else "none",
        scales=config.scales,
        n_bootstrap=config.n_bootstrap,
        random_state=config.random_state,
        neighbours=neighbours,
    )
    return ModelResult(
        name=name,
        description=description,
        isomap=coordinates,
        log_ratios=log_ratios,
        scores=rows,
        warnings=notes,
        n_components=n_components,
        embedding_dim=int(embedding.shape[1]),
        normalised=normalised_scores(embedding, tone_set, random_state=config.random_state),
    )


def _shared_search(embedding: np.ndarray, config: GearConfig):
    """``(features, neighbours)``: up to :data:`gear.analysis.EXACT_MAX_SOUNDS` sounds, the embedding
    and None (Isomap and the scores each take GEAR's exact path, as in the paper's code); above, the
    scaled features and one approximate search with max(Isomap K, score K) neighbours that feeds both
    (:func:`gear.analysis.analyse`)."""
    n = embedding.shape[0]
    if n <= analysis.EXACT_MAX_SOUNDS:
        return embedding, None
    from gear.neighbours import search

    features = analysis.scale_features(embedding, scaling=config.scaling)
    k = max(analysis._check_k(config.isomap_neighbors, n, "isomap_neighbors"), analysis._check_k(config.n_neighbors, n))
    return features, search(features, k, random_state=config.random_state)


def tone_parameters(tone_set) -> tuple:
    """The factors of a tone set, in column order (``f1_hz, alpha, r`` for a :class:`synth.ToneSet`)."""
    return tuple(getattr(tone_set, "parameters", PARAMETERS))


def factor_statistics(tone_set):
    """How each factor of ``tone_set`` is scored, and the design range (high - low) of each
    ``difference`` factor (a :class:`synth.ToneSet`: every factor by ``log_ratio``)."""
    parameters = tone_parameters(tone_set)
    statistics = dict(getattr(tone_set, "statistics", {}) or dict.fromkeys(parameters, "log_ratio"))
    spans = {f.name: float(f.range[1]) - float(f.range[0]) for f in getattr(tone_set, "factors", ())
             if statistics.get(f.name) == "difference"}
    return statistics, spans


def normalised_scores(embedding: np.ndarray, tone_set, *, random_state: int = 0, n_resamples: int = 200) -> dict:
    """The normalised neighbour score of every cause factor and their ``mean`` (the leaderboard's
    ranking): 0 = as good as an oracle whose neighbours are chosen in factor space, 1 = chance
    (random neighbours), with K a fixed fraction of the design (:mod:`gear.metrics.neighbours`),
    so that scores compare across designs and grid densities. Above
    :data:`NORMALISED_MAX_SOUNDS` sounds they are those of a random subsample
    (:func:`normalised_sample`)."""
    from gear.metrics import CAUSE_FACTORS, make_design, mean_normalised_score
    from gear.metrics.neighbours import neighbour_rows

    parameters = tone_parameters(tone_set)
    statistics, _ = factor_statistics(tone_set)
    roles = dict(getattr(tone_set, "roles", {}) or {})
    # the causes scored by log-ratio (a difference or agreement factor has no log-ratio oracle)
    causes = [p for p in parameters if roles.get(p, "cause") == "cause" and statistics.get(p) == "log_ratio"]
    if not causes:
        return {"mean": float("nan")}
    columns = [parameters.index(p) for p in causes]
    scales = {p: s for p, s in (getattr(tone_set, "scales", {}) or {}).items() if p in causes and p != "f1_hz"}
    theta = tone_set.theta()[:, columns]
    rows_kept = normalised_sample(embedding.shape[0], random_state=random_state)
    if rows_kept is not None:  # above the limit: a random subsample (K follows its size)
        embedding, theta = embedding[rows_kept], theta[rows_kept]
    design = make_design(embedding, theta, names=causes, scales=scales, random_state=random_state)
    rows = neighbour_rows(design, n_resamples=n_resamples)
    scores = {r["parameter"]: float(r["value"]) for r in rows
              if r["metric"] == "normalised_score" and r["value"] is not None}
    scores["mean"] = mean_normalised_score(rows, causes if parameters != PARAMETERS else CAUSE_FACTORS)
    return scores


#: Largest number of sounds whose normalised scores use every sound (see :func:`normalised_sample`).
NORMALISED_MAX_SOUNDS = 5000


def normalised_sample(n_sounds: int, *, random_state: int = 0) -> Optional[np.ndarray]:
    """The sounds of the normalised scores: None (all of them) up to :data:`NORMALISED_MAX_SOUNDS`,
    else a seeded random subsample of that many, sorted.

    Their K is a fixed fraction of the sounds scored (1.6 %: 40 of 2 500), i.e. a fixed share of
    the design, so a random subsample estimates the same score as the full design (at 10 000
    tones the full design would need K = 160, at 10^6 K = 16 000 neighbours per sound: O(n^2)
    work). The bootstrap CIs are those of the subsample.
    """
    if n_sounds <= NORMALISED_MAX_SOUNDS:
        return None
    rng = np.random.default_rng([random_state, n_sounds])
    return np.sort(rng.choice(n_sounds, NORMALISED_MAX_SOUNDS, replace=False))


def factor_units(tone_set) -> Tuple[Dict[str, str], Dict[str, float], Dict[str, str], Dict[str, str]]:
    """Scale, unit step (on that scale), unit label and role of every factor of ``tone_set``, for
    :func:`gear.disentangle.distance_per_unit`: an octave for log-scale factors and frequencies
    (unit Hz, read on a log scale), 6 dB for factors in
    dB, one step of a discrete factor's values, else one unit of the factor (a
    :class:`synth.ToneSet`: f1 per octave, alpha and r per unit; every factor a cause)."""
    import math

    described = {f.name: f for f in getattr(tone_set, "factors", ())}
    scales, units, labels, roles = {}, {}, {}, {}
    for name in tone_parameters(tone_set):
        factor = described.get(name)
        kind = factor.kind if factor is not None else "continuous"
        unit = factor.unit if factor is not None else ("Hz" if name == "f1_hz" else "")
        scale = factor.scale if factor is not None else ("log" if name == "f1_hz" else "linear")
        scales[name] = "linear" if kind == "discrete" else ("log" if unit == "Hz" else scale)
        roles[name] = factor.role if factor is not None else "cause"
        if kind == "discrete":
            units[name], labels[name] = 1.0, "per step"
        elif scale == "log" or unit == "Hz":  # frequencies are heard on a log scale, whatever the design's
            units[name], labels[name] = math.log(2.0), "per octave"
        elif unit == "dB":
            units[name], labels[name] = 6.0, "per 6 dB"
        else:
            units[name], labels[name] = 1.0, f"per 1 {unit}".rstrip()
    return scales, units, labels, roles


def unit_sensitivity(embedding: np.ndarray, tone_set, *, random_state: int = 0, max_sounds: int = 2000) -> List[dict]:
    """Rows ``metric='sensitivity_per_unit', parameter, value, note``: the embedding distance per
    unit of each factor (:func:`factor_units`) over the median inter-tone distance
    (:func:`gear.disentangle.distance_per_unit`), the unit and role in ``note``; with ``f1_hz``
    among the factors, also ``metric='sensitivity_vs_f1_octave'``: the same distance over f1's
    per octave ("a 6 dB gain change moves it x times as far as an octave")."""
    from gear.disentangle import distance_per_unit

    scales, units, labels, roles = factor_units(tone_set)
    names = list(units)
    out = distance_per_unit(embedding, tone_set.theta(), param_names=names, scales=scales, units=units,
                            max_sounds=max_sounds, random_state=random_state)
    rows = [{"metric": "sensitivity_per_unit", "parameter": name, "value": float(value),
             "note": f"{labels[name]} ({roles[name]}), / median inter-tone distance"}
            for name, value in zip(names, out["relative"])]
    if "f1_hz" in names and out["per_unit"][names.index("f1_hz")] > 0:
        octave = out["per_unit"][names.index("f1_hz")]
        rows += [{"metric": "sensitivity_vs_f1_octave", "parameter": name, "value": float(value / octave),
                  "note": f"{labels[name]} ({roles[name]}), / distance per octave of f1_hz"}
                 for name, value in zip(names, out["per_unit"])]
    return rows


#: Version of what :func:`analyse_embedding` stores: stored analyses of another version are recomputed.
ANALYSIS_VERSION = 2
#: Version of the analysis above :data:`gear.analysis.EXACT_MAX_SOUNDS` sounds (hashed only there).
LARGE_ANALYSIS_VERSION = 2


def analysis_key(embedding: np.ndarray, config: GearConfig, tone_set: synth.ToneSet) -> str:
    """Hash of what an analysis depends on: the embedding's bytes, the settings, the tones."""
    import hashlib

    digest = hashlib.sha256(f"gear-analysis/{ANALYSIS_VERSION}".encode())
    if embedding.shape[0] > analysis.EXACT_MAX_SOUNDS:  # the large-n path changed (up to 5 000: as before)
        digest.update(f"large/{LARGE_ANALYSIS_VERSION}".encode())
    digest.update(memoryview(np.ascontiguousarray(embedding, dtype=np.float32)).cast("B"))  # no copy
    digest.update(json.dumps(config.settings(), sort_keys=True, default=str).encode())
    digest.update(tone_set.config_hash().encode())
    return digest.hexdigest()


def config_from_settings(settings: dict) -> GearConfig:
    """A :class:`GearConfig` from the ``config`` of ``run.json``."""
    fields = {f.name for f in dataclasses.fields(GearConfig)}
    return GearConfig(**{k: v for k, v in settings.items() if k in fields})


def read_run_config(out_dir: os.PathLike) -> GearConfig:
    """The settings of a results directory (``run.json``)."""
    from gear.store import ResultsStore

    settings = ResultsStore(out_dir).read_settings()
    if settings is None:
        raise ParameterError(f"{str(Path(out_dir) / 'run.json')!r} not found; run `gear run --out {out_dir}` first")
    return config_from_settings(settings)


def load_results(out_dir: os.PathLike) -> List[ModelResult]:
    """Read back the stored results (verified; a corrupt entry is skipped with a warning)."""
    from gear.store import ResultsStore

    store = ResultsStore(out_dir)
    if not store.models_dir.is_dir():
        raise ParameterError(f"{str(out_dir)!r} holds no GEAR results (no models/ folder); run `gear run --out {out_dir}`")
    return store.load_results()


def report_factors(tone_set):
    """The report's factor table and factor descriptions: today's ``index, f1_bins, f1_hz,
    alpha, r`` (and None) for a :class:`synth.ToneSet`; for a stimulus set, one numeric column
    per factor (discrete ones as value codes) and ``Factor.describe()`` of each."""
    if not hasattr(tone_set, "factors"):
        parameters = tone_set.table(REPORT_SAMPLE_RATE)
        return {k: parameters[k] for k in ("index", "f1_bins", "f1_hz", "alpha", "r")}, None
    columns = {f.name: tone_set.codes(f.name) if f.kind == "discrete" else tone_set.columns[f.name]
               for f in tone_set.factors}
    return {"index": tone_set.index, **columns}, [f.describe() for f in tone_set.factors]


def write_run_report(
    out_dir: os.PathLike,
    results: Sequence[ModelResult],
    tone_set: synth.ToneSet,
    *,
    config: Optional[GearConfig] = None,
    notes=(),
    **sections,
) -> Path:
    """Write ``out_dir/report.html`` for ``results`` of ``tone_set``.

    ``sections`` are passed on to :func:`gear.report.write_report` (``extra_sections``,
    ``per_model_sections``).
    """
    from gear.report import write_report

    config = config or GearConfig()
    scales = ", ".join(f"{k} on a {v} scale" for k, v in config.scales.items())
    notes = [
        f"Tone set: {_tone_set_text(tone_set)}, {tone_set.n_sounds} tones. Isomap: K = "
        f"{config.isomap_neighbors} neighbours, {config.isomap_components} components. Scores: K = "
        f"{config.n_neighbors} neighbours (self excluded), feature scaling '{config.scaling}'"
        + (f", {scales}" if scales else "")
        + f"; 95 % CIs from {config.n_bootstrap} bootstrap resamples."
    ] + list(notes)
    parameters, factors = report_factors(tone_set)
    return write_report(
        Path(out_dir) / "report.html",
        list(results),
        parameters=parameters,
        audio=lambda rows: tone_set.render(REPORT_SAMPLE_RATE, indices=rows),
        sample_rate=REPORT_SAMPLE_RATE,
        title="GEAR report",
        notes=notes,
        factors=factors,
        **sections,
    )


def _tone_set_text(tone_set) -> str:
    if not hasattr(tone_set, "factors"):
        return f"preset '{tone_set.preset}'"
    statistics = ", ".join(f"{f.name} by {f.statistic}" + (" (nuisance)" if f.role == "nuisance" else "")
                           for f in tone_set.factors)
    return f"family '{tone_set.family.name}' on design '{tone_set.design}' (seed {tone_set.seed}; {statistics})"


def write_store_report(store, results: Sequence[ModelResult]) -> Path:
    """``report.html`` of a results directory: every entry, the leaderboard and the ``gear score`` cards.

    The report writer of :func:`open_store` (the store calls it whenever the entries change).
    """
    from gear.layers import layers_section
    from gear.report import leaderboard_section
    from gear.scoring import disentanglement_sections, unit_sensitivity_section
    from gear.store import RANKING, leaderboard_columns, leaderboard_rows

    config = config_from_settings(store.read_settings())
    infos = {name: store.info(name) for name in store.names()}
    rows = leaderboard_rows(results, infos)
    leaderboard = leaderboard_section(rows, leaderboard_columns(rows), ranked_by=(
        RANKING + ". 'kind' says where an entry came from (registry: gear run; submission: gear add-submission); "
        "'flags' what the checks before storing found (constant-embedding: every tone gets the same embedding; "
        "batch-dependent: an embedding depends on the other sounds of the call); 'fraction_of_chance' is the former "
        "ranking (median |log-ratio| over its chance level, averaged over the parameters)"))
    per_model, extra = disentanglement_sections(store.out_dir)
    names = {r.name for r in results}
    tone_set = config.tone_set()
    sensitivity = unit_sensitivity_section(store, tone_set)
    if sensitivity:
        extra = [("Causes beside nuisances", sensitivity)] + extra
    return write_run_report(
        store.out_dir, results, tone_set, config=config,
        extra_sections=[("Leaderboard", leaderboard)] + layers_section(results, infos) + extra,
        per_model_sections={k: v for k, v in per_model.items() if k in names},
    )


def open_store(out_dir: os.PathLike, *, report: bool = True, writable: bool = True):
    """The :class:`gear.store.ResultsStore` of ``out_dir``, checked and recovered, whose
    outputs include the report (:func:`write_store_report`) unless ``report`` is False."""
    from gear.store import ResultsStore

    return ResultsStore.open(out_dir, writable=writable, report_writer=write_store_report if report else None)


@contextlib.contextmanager
def _client(scheduler: Optional[str]):
    """A Dask client for ``scheduler`` (None: no cluster), closed at the end."""
    if scheduler is None:
        yield None
        return
    from gear.distributed import client_for

    client = client_for(scheduler)
    try:
        yield client
    finally:
        client.close()


def _registry_entry(store, spec, config: GearConfig, tone_set, *, models_dir, cache_dir, use_cache, progress,
                    client=None, max_memory=None, max_dim=None):
    """Embed one registry model and analyse it: a callable that stages its entry (None when the
    stored one is current). On Dask the analysis is a task already submitted when this returns,
    so that it runs while the next model's shards are embedded."""
    from gear.embedder import DEFAULT_MAX_DIM, embed_model

    wrapper = progress(f"embedding {spec.name}") if progress is not None else None
    run = embed_model(spec, tone_set, models_dir=models_dir, cache_dir=cache_dir, use_cache=use_cache,
                      batch_size=config.batch_size, progress=wrapper, client=client, max_memory=max_memory,
                      max_dim=DEFAULT_MAX_DIM if max_dim is None else max_dim)
    return stage_embedding(store, spec, spec.name, run, config, tone_set, models_dir=models_dir, client=client)


def stage_embedding(store, spec, name: str, run, config: GearConfig, tone_set, *, models_dir=None, client=None,
                    layer: Optional[dict] = None):
    """Analyse one embedding of a registry model (an :class:`gear.embedder.EmbeddingRun`): a callable
    that stages it as entry ``name``, or None when the stored entry is current. On Dask the analysis
    is a task already submitted when this returns. ``layer`` (``gear run --layers``: layer, depth,
    n_layers, pooling) goes into the entry's provenance and description."""
    from gear.store import REGISTRY

    key = analysis_key(run.embedding, config, tone_set)
    if name in store.names() and store.analysis_key(name) == key:
        return None  # stored, verified and computed from the same inputs: reuse it
    with lower_layer_errors():
        status = spec.weights(models_dir)
    where = (f"; layer {layer['layer']} (depth {layer['depth']} of {layer['n_layers']}): {layer['pooling']}"
             if layer else "")
    description = f"{spec.description}{where} [weights: {status.where}]"
    if client is None:
        analysed = analyse_embedding(name, run.embedding, tone_set, config=config, description=description)
    else:
        from gear.distributed import submit_analysis

        analysed = submit_analysis(client, name, run.embedding, tone_set, config, description)

    def stage():
        if client is None:
            result = analysed
        else:
            from gear.distributed import report_reruns

            result = analysed.result()
            report_reruns(client, [analysed], what=f"{name} analysis")
        result.warnings = list(result.warnings) + run.notes
        result.flags = list(run.flags)
        provenance = {"kind": REGISTRY, "model": spec.name, "weights": str(status.where)}
        staged = store.stage(name, {**provenance, **({"layer": layer} if layer else {})})
        staged.write_result(result, run.embedding, key=key, flags=run.flags)
        return staged

    return stage


def run(
    models: Optional[Sequence[str]] = None,
    *,
    out_dir: os.PathLike = "gear-results",
    config: Optional[GearConfig] = None,
    models_dir: Optional[os.PathLike] = None,
    cache_dir: Optional[os.PathLike] = None,
    use_cache: bool = True,
    report: bool = True,
    progress: Optional[Callable[..., Callable]] = None,
    scheduler: Optional[str] = None,
    max_memory: Optional[int] = None,
    layers=None,
    max_dim: Optional[int] = None,
) -> List[ModelResult]:
    """Run GEAR: embed the tone set with each model, analyse, store, report.

    Parameters
    ----------
    models : sequence of str, optional
        Registry names; default: every default model that can run on this machine.
    out_dir : path-like
        Results directory (see :mod:`gear.store`). Checked before any work.
    config : GearConfig, optional
        Tone set and analysis settings (default: the paper's).
    models_dir : path-like, optional
        Where model files are looked up (else ``GEAR_MODELS_DIR``).
    cache_dir : path-like, optional
        Embedding cache root (else ``GEAR_CACHE_DIR`` or ``~/.cache/gear``).
    report : bool
        Write ``report.html``.
    progress : callable(description) -> wrapper, optional
        Factory of progress wrappers for the batch loops (the CLI passes tqdm).
    scheduler : str, optional
        Run on Dask (:func:`gear.distributed.client_for`): ``"tcp://HOST:PORT"`` (an existing
        cluster) or ``"local:N"`` (N local worker processes). Embedding shards (model x batch)
        and the analysis of each model are tasks on the cluster; results go through the same
        cache and store as a serial run, so a killed worker or client loses no finished shard.
    max_memory : int, optional
        Memory budget of the model calls in bytes (default: a quarter of the RAM; see
        :func:`gear.embedder.embed`): shards of ``config.batch_size`` tones are embedded in calls
        that fit it. Not a setting of the results (the outputs do not depend on it).
    layers : str or sequence of str, optional
        ``"all"`` or layer names: also store each named layer's time-pooled output as a result
        ``MODEL/LAYER``, read by forward hooks during the one embedding pass (:mod:`gear.layers`;
        with ``scheduler``, that pass is one task on a worker and every entry's analysis a task of
        its own). Named ``models`` must all have probed layers; of the default
        models, those without run plainly.
    max_dim : int, optional
        Largest embedding (and pooled layer) stored (default
        :data:`gear.embedder.DEFAULT_MAX_DIM`).

    Returns
    -------
    list of ModelResult
        The results of the models of this run (the directory's outputs list every entry).
    """
    from gear.store import REGISTRY, split_layer

    config = config or GearConfig()
    tone_set = config.tone_set()
    config.validate(tone_set.n_sounds)
    with lower_layer_errors():
        if models_dir is not None:
            models_dir = embeddings_models_dir(models_dir)  # fails early on a missing folder
        if models is None:
            specs = registry.default_models(models_dir)
            if not specs:
                raise ParameterError("no default model can run on this machine; see `gear models`")
        else:
            specs = [registry.get_spec(name) for name in models]
    store = open_store(out_dir, report=report)
    runnable = []
    for spec in specs:
        with lower_layer_errors():
            ok, where = spec.can_run(models_dir)
        if ok:
            store.check_name_for(spec.name, kind=REGISTRY, source=spec.name)
            runnable.append(spec)
        else:
            warnings.warn(f"{spec.name} skipped: {where}", stacklevel=2)
    if not runnable:
        raise ParameterError("no model could run; see `gear models` for what is missing")
    probed = _probed_layers(store, runnable, layers, explicit=models is not None, models_dir=models_dir)
    names = [spec.name for spec in runnable] + [n for spec in runnable for n in probed.get(spec.name, ())]
    settings = config.settings()
    replacing = names + [n for n in store.names() if split_layer(n)[0] in names]  # stale layers of these models
    if store.check_settings(settings, replacing=replacing):
        store.commit(remove=store.names(), settings=settings, tone_set_config=tone_set.config(), refresh=False)
    with _client(scheduler) as client:
        pending = []  # on Dask: analyses in flight while the next models are embedded
        for spec in runnable:
            if spec.name in probed:
                from gear.layers import layer_entries

                pending.extend(layer_entries(store, spec, config, tone_set,
                                             [split_layer(n)[1] for n in probed[spec.name]], models_dir=models_dir,
                                             cache_dir=cache_dir, use_cache=use_cache, progress=progress,
                                             max_dim=max_dim, client=client))
            else:
                stage = _registry_entry(store, spec, config, tone_set, models_dir=models_dir, cache_dir=cache_dir,
                                        use_cache=use_cache, progress=progress, client=client,
                                        max_memory=max_memory, max_dim=max_dim)
                if stage is not None:
                    pending.append(stage)
            if client is None:
                for stage in pending:
                    store.commit(put=[stage()], settings=settings, tone_set_config=tone_set.config(), refresh=False)
                pending = []
        for stage in pending:
            store.commit(put=[stage()], settings=settings, tone_set_config=tone_set.config(), refresh=False)
    if store.read_settings() is None:  # every entry reused but run.json lost: record the settings
        store.commit(settings=settings, tone_set_config=tone_set.config(), refresh=False)
    store.refresh_outputs()
    return store.load_results(names=names)


def _probed_layers(store, specs, layers, *, explicit: bool = True, models_dir=None) -> dict:
    """``{model: [entry names MODEL/LAYER]}`` of ``gear run --layers`` (checked before any work). Without
    ``explicit`` models (the default models), those without probed layers run plainly."""
    if layers is None:
        return {}
    from gear.layers import select_layers
    from gear.store import REGISTRY, layer_name

    out = {}
    for spec in specs:
        if not spec.layers and not explicit:
            log.info("%s has no probed layers: run without --layers", spec.name)
            continue
        with lower_layer_errors():
            chosen = select_layers(spec, layers, models_dir=models_dir)
        out[spec.name] = [layer_name(spec.name, layer) for layer in chosen]
        for name in out[spec.name]:
            store.check_name_for(name, kind=REGISTRY, source=spec.name)
    return out
