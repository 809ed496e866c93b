"""``gear run`` as a Python API: synthesise -> embed -> Isomap + scores -> results + report.

Results directory layout (stable; users script against it)::

    OUT/report.html                 the interactive report (standalone, opens offline)
    OUT/scores.csv                  model,parameter,median_abs_log_ratio,iqr,ci_low,ci_high,n
    OUT/run.json                    the tone set and analysis settings of the run
    OUT/models/<name>/result.json   scores, warnings, description of one model
    OUT/models/<name>/result.npz    isomap (n,3) and log-ratios per parameter
    OUT/models/<name>/embedding.npy the scene embeddings (n_sounds, dim), float32
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

import synth
from embeddings import registry
from embeddings.base import models_dir as embeddings_models_dir
from gear.embedder import embed_model
from gear.files import atomic_write_bytes
from gear import analysis
from gear.results import SCORE_COLUMNS, ModelResult
from gear.errors import ParameterError

__all__ = ["GearConfig", "analyse_embedding", "run", "write_scores_csv", "load_results", "save_result"]

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

    def validate(self, n_sounds: int) -> None:
        """Check the settings against a tone set of ``n_sounds`` before any model runs."""
        analysis._check_k(self.n_neighbors, n_sounds, "n_neighbors")
        analysis._check_k(self.isomap_neighbors, n_sounds, "isomap_neighbors")
        if self.scaling not in analysis.SCALINGS:
            raise ParameterError(f"scaling={self.scaling!r}; choose one of {', '.join(analysis.SCALINGS)}")
        for name, scale in self.scales.items():
            if name not in PARAMETERS or scale not in analysis.PARAMETER_SCALES:
                raise ParameterError(
                    f"scales[{name!r}]={scale!r}; parameters are {PARAMETERS}, scales 'linear' or 'log'"
                )
        for name in ("n_bootstrap", "batch_size", "isomap_components"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, got {value!r}")

    def tone_set(self) -> synth.ToneSet:
        with warnings.catch_warnings():
            if self.preset == "gear2023-code":
                warnings.simplefilter("default")
            return synth.make_grid(self.preset, **self.grid_kwargs)


def analyse_embedding(
    name: str,
    embedding: np.ndarray,
    tone_set: synth.ToneSet,
    *,
    config: Optional[GearConfig] = None,
    description: str = "",
) -> ModelResult:
    """Isomap + K-NN log-ratio scores of one embedding of ``tone_set``.

    Parameters
    ----------
    name : str
    embedding : np.ndarray, shape (n_sounds, dim)
    tone_set : synth.ToneSet
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
    theta = dict(zip(PARAMETERS, tone_set.theta().T))
    notes: List[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", analysis.DisconnectedGraphWarning)
        coordinates, n_components = analysis.isomap_embedding(
            embedding,
            n_neighbors=config.isomap_neighbors,
            n_components=config.isomap_components,
            scaling=config.scaling,
        )
    for warning in caught:
        if issubclass(warning.category, analysis.DisconnectedGraphWarning):
            notes.append(str(warning.message))
            warnings.warn(f"{name}: {warning.message}", analysis.DisconnectedGraphWarning, stacklevel=2)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    log_ratios, rows = analysis.score_embedding(
        embedding,
        theta,
        parameters=PARAMETERS,
        n_neighbors=config.n_neighbors,
        scaling=config.scaling,
        scales=config.scales,
        n_bootstrap=config.n_bootstrap,
        random_state=config.random_state,
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
    )


def write_scores_csv(path: os.PathLike, results: Sequence[ModelResult]) -> Path:
    """Write ``scores.csv`` (columns :data:`gear.results.SCORE_COLUMNS`) atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    for result in results:
        for row in result.scores:
            writer.writerow([result.name] + [_fmt(row[c]) for c in SCORE_COLUMNS[1:]])
    path = Path(path)
    atomic_write_bytes(path, text.getvalue().encode())
    return path


def _fmt(value):
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, str):
        return value
    return "" if value is None or not np.isfinite(value) else f"{float(value):.6g}"


def analysis_key(embedding: np.ndarray, config: GearConfig, tone_set: synth.ToneSet) -> str:
    """Hash of what an analysis depends on: the embedding's bytes, the settings, the tones."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(embedding, dtype=np.float32).tobytes())
    digest.update(json.dumps(dataclasses.asdict(config), sort_keys=True, default=str).encode())
    digest.update(tone_set.config_hash().encode())
    return digest.hexdigest()


def _load_if_current(folder: Path, key: str) -> Optional[ModelResult]:
    """The stored result in ``folder`` if it was computed from the same inputs (``key``)."""
    meta_path = folder / "result.json"
    if not meta_path.exists() or not (folder / "result.npz").exists():
        return None
    try:
        if json.loads(meta_path.read_text()).get("analysis_key") != key:
            return None
        return _read_result(folder)
    except (ValueError, KeyError, OSError):
        return None  # unreadable: recompute


def save_result(
    out_dir: os.PathLike, result: ModelResult, embedding: Optional[np.ndarray] = None, *, key: Optional[str] = None
) -> Path:
    """Store one model's result under ``out_dir/models/<name>/`` (atomic writes).

    ``key`` (from :func:`analysis_key`) lets a rerun reuse the result."""
    folder = Path(out_dir) / "models" / result.name
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"isomap": result.isomap}
    arrays.update({f"log_ratio__{k}": v for k, v in result.log_ratios.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(folder / "result.npz", buffer.getvalue())
    if embedding is not None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(embedding, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(folder / "embedding.npy", buffer.getvalue())
    meta = {
        "name": result.name,
        "description": result.description,
        "scores": result.scores,
        "warnings": result.warnings,
        "n_components": result.n_components,
        "embedding_dim": result.embedding_dim,
        "analysis_key": key,
    }
    atomic_write_bytes(folder / "result.json", json.dumps(meta, indent=2, default=_json_default).encode())
    return folder


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if not np.isfinite(value) else float(value)
    raise TypeError(type(value))


def load_results(out_dir: os.PathLike) -> List[ModelResult]:
    """Read back the results stored by :func:`run` (no pickles are read)."""
    out_dir = Path(out_dir)
    models = out_dir / "models"
    if not models.is_dir():
        raise ParameterError(f"{str(out_dir)!r} holds no GEAR results (no models/ folder); run `gear run --out {out_dir}`")
    return [_read_result(folder) for folder in sorted(p for p in models.iterdir() if (p / "result.json").exists())]


def _read_result(folder: Path) -> ModelResult:
    meta = json.loads((folder / "result.json").read_text())
    with np.load(folder / "result.npz", allow_pickle=False) as arrays:
        log_ratios = {k.split("__", 1)[1]: arrays[k] for k in arrays.files if k.startswith("log_ratio__")}
        isomap = arrays["isomap"]
    scores = [{k: (np.nan if v is None else v) for k, v in row.items()} for row in meta["scores"]]
    return ModelResult(
        name=meta["name"],
        description=meta["description"],
        isomap=isomap,
        log_ratios=log_ratios,
        scores=scores,
        warnings=meta["warnings"],
        n_components=meta["n_components"],
        embedding_dim=meta["embedding_dim"],
    )


def write_run_json(out_dir: Path, config: GearConfig, tone_set: synth.ToneSet, models: Sequence[str]) -> None:
    payload = {
        "config": dataclasses.asdict(config),
        "tone_set": tone_set.config(),
        "models": list(models),
    }
    atomic_write_bytes(out_dir / "run.json", json.dumps(payload, indent=2, default=_json_default).encode())


def read_run_config(out_dir: os.PathLike) -> GearConfig:
    path = Path(out_dir) / "run.json"
    if not path.exists():
        raise ParameterError(f"{str(path)!r} not found; run `gear run --out {out_dir}` first")
    payload = json.loads(path.read_text())
    return GearConfig(**payload["config"])


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
        f"Tone set: preset '{tone_set.preset}', {tone_set.n_sounds} tones. Isomap: K = "
        f"{config.isomap_neighbors} neighbours, {config.isomap_components} components. Scores: K = "
        f"{config.n_neighbors} neighbours (self excluded), feature scaling '{config.scaling}'"
        + (f", {scales}" if scales else "")
        + f"; 95 % CIs from {config.n_bootstrap} bootstrap resamples."
    ] + list(notes)
    parameters = tone_set.table(REPORT_SAMPLE_RATE)
    parameters = {k: parameters[k] for k in ("index", "f1_bins", "f1_hz", "alpha", "r")}
    return write_report(
        Path(out_dir) / "report.html",
        list(results),
        parameters=parameters,
        audio=tone_set.render(REPORT_SAMPLE_RATE),
        sample_rate=REPORT_SAMPLE_RATE,
        title="GEAR report",
        notes=notes,
        **sections,
    )


def _check_consistent_with_stored(out_dir: Path, config: GearConfig, tone_set, names) -> None:
    """Refuse to mix results of different settings in one results directory."""
    path = out_dir / "run.json"
    if not path.exists():
        return
    stored = json.loads(path.read_text())
    current = json.loads(json.dumps({"config": dataclasses.asdict(config), "tone_set": tone_set.config()}, default=_json_default))
    if stored.get("config") == current["config"] and stored.get("tone_set") == current["tone_set"]:
        return
    models = out_dir / "models"
    others = sorted(p.name for p in models.iterdir() if p.is_dir() and p.name not in names) if models.is_dir() else []
    if others:
        raise ParameterError(
            f"{str(out_dir)!r} holds results made with other settings ({', '.join(others)}); "
            f"write to another --out, or `gear remove` those results first"
        )


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
) -> List[ModelResult]:
    """Run GEAR: embed the tone set with each model, analyse, store, report.

    Parameters
    ----------
    models : sequence of str, optional
        Registry names; default: every default model that can run on this machine.
    out_dir : path-like
        Results directory (see the module docstring for its layout).
    config : GearConfig, optional
        Tone set and analysis settings (default: the paper's).
    models_dir : path-like, optional
        Where model files are looked up (else ``GEAR_MODELS_DIR``).
    cache_dir : path-like, optional
        Embedding cache root (else ``GEAR_CACHE_DIR`` or ``~/.cache/gear``).
    progress : callable(description) -> wrapper, optional
        Factory of progress wrappers for the batch loops (the CLI passes tqdm).

    Returns
    -------
    list of ModelResult
    """
    config = config or GearConfig()
    tone_set = config.tone_set()
    config.validate(tone_set.n_sounds)
    if models_dir is not None:
        models_dir = embeddings_models_dir(models_dir)  # fails early on a missing folder
    if models is None:
        specs = registry.default_models(models_dir)
        if not specs:
            raise ParameterError("no default model can run on this machine; see `gear models`")
    else:
        specs = [registry.get_spec(name) for name in models]
    out_dir = Path(out_dir)
    _check_consistent_with_stored(out_dir, config, tone_set, [spec.name for spec in specs])
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    notes = []
    for spec in specs:
        ok, where = spec.can_run(models_dir)
        if not ok:
            message = f"{spec.name} skipped: {where}"
            warnings.warn(message, stacklevel=2)
            notes.append(message)
            continue
        wrapper = progress(f"embedding {spec.name}") if progress is not None else None
        embedding = embed_model(
            spec,
            tone_set,
            models_dir=models_dir,
            cache_dir=cache_dir,
            use_cache=use_cache,
            batch_size=config.batch_size,
            progress=wrapper,
        )
        status = spec.weights(models_dir)
        description = f"{spec.description} [weights: {status.where}]"
        key = analysis_key(embedding, config, tone_set)
        result = _load_if_current(out_dir / "models" / spec.name, key)
        if result is None:
            result = analyse_embedding(spec.name, embedding, tone_set, config=config, description=description)
            save_result(out_dir, result, embedding, key=key)
        results.append(result)
    if not results:
        raise ParameterError("no model could run; see `gear models` for what is missing")
    write_scores_csv(out_dir / "scores.csv", results)
    write_run_json(out_dir, config, tone_set, [r.name for r in results])
    if report:
        write_run_report(out_dir, results, tone_set, config=config, notes=notes)
    return results
