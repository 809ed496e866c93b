"""Add any HEAR 2021 submission to a GEAR results directory: validate, embed, score, store.

:func:`add_submission` is ``gear add-submission MODULE`` as a Python API:

1. resolve the run settings: a results directory that already holds a run keeps its tone set
   and analysis settings (``run.json``); a new one takes ``config``;
2. import the module by name and load the model, passing ``weights`` as a path to the
   submission's own ``load_model`` (GEAR never unpickles a file itself);
3. validate it as the HEAR validator does, choose the tone length
   (:func:`gear.validate.find_effective_duration`) and check for batch dependence
   (:func:`gear.validate.check_batch_dependence`), all before anything is stored;
4. embed the GEAR tones in batches, synthesised at the model's own rate; each finished batch
   goes to the embedding cache at once, so an interrupted run resumes where it stopped;
   with ``n_jobs != 1`` the batches are independent joblib jobs (each worker loads the
   model once; a cluster backend can take them through ``joblib.parallel_config``);
5. score (:func:`gear.pipeline.analyse_embedding`), write the new result into a staging
   folder and move it into place with one rename, then rewrite ``scores.csv``,
   ``run.json``, ``leaderboard.csv`` and ``report.html`` (each atomically).

A failure in steps 1-5 before the rename leaves every stored file as it was.

Results directory layout (that of :mod:`gear.pipeline`, plus)::

    OUT/leaderboard.csv                 rank,model,module,version,weights_sha256,embedding_dim,
                                        score,median_abs_log_ratio_<parameter>...,added
    OUT/models/<name>/submission.json   module, version, weights path and SHA-256, sample rate,
                                        dims, padding (effective duration), validation findings
    OUT/models/<name>/tones.csv         index,f1_hz,alpha,r,sample_rate,native_n_samples,
                                        n_samples,effective_duration_s (what the model heard)

Versions. A result is named ``NAME`` (default: the module's import name). Adding ``NAME``
again with other weights (or another module, or edited module code, or another tone set)
stores ``NAME@2``, then ``NAME@3``...; the first free number after the highest stored one.
Adding it again with the same module, code and weights is a no-op that returns the stored
version. Names are letters, digits, ``.``, ``_`` and ``-`` (``@`` marks versions).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from gear.embedder import batches
from gear.cache import EmbeddingCache, cache_key, default_cache_dir, fingerprint_path
from gear.files import atomic_write_bytes
from embeddings.base import models_dir as resolve_models_dir
from gear import pipeline
from gear.results import ModelResult
from gear.validate import (
    Padding,
    SubmissionError,
    call_scene_embeddings,
    check_batch_dependence,
    find_effective_duration,
    load_submission,
    render_tones,
    validate_submission,
)
from gear.errors import ParameterError

__all__ = [
    "SubmissionSpec",
    "StoredSubmission",
    "LEADERBOARD_COLUMNS",
    "add_submission",
    "embed_submission",
    "list_results",
    "remove_result",
    "refresh_outputs",
    "leaderboard",
    "parse_name",
    "weights_sha256",
]

log = logging.getLogger(__name__)

SUBMISSION_FILE = "submission.json"
TONES_FILE = "tones.csv"
LEADERBOARD_FILE = "leaderboard.csv"
SUBMISSION_FORMAT = "gear-submission/1"
#: Columns of ``leaderboard.csv`` before the per-parameter ones (and ``added`` after them).
LEADERBOARD_COLUMNS = ("rank", "model", "module", "version", "weights_sha256", "embedding_dim", "score")
TONES_COLUMNS = ("index", "f1_hz", "alpha", "r", "sample_rate", "native_n_samples", "n_samples", "effective_duration_s")
_STAGING = ".gear-staging"
_TRASH = ".gear-trash"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSIONED = re.compile(r"^(?P<base>[A-Za-z0-9][A-Za-z0-9._-]{0,99})@(?P<version>[1-9][0-9]*)$")
#: Settings of a run that must match for results to share a directory (batch_size may differ).
_SHARED_SETTINGS = ("preset", "grid_kwargs", "isomap_neighbors", "isomap_components", "n_neighbors", "scaling",
                    "scales", "n_bootstrap", "random_state")


# ----------------------------------------------------------------------------- names
def parse_name(name: str) -> Tuple[str, int]:
    """``"foo@2" -> ("foo", 2)``; ``"foo" -> ("foo", 1)``.

    Raises
    ------
    ParameterError
        Not a valid result name.
    """
    if isinstance(name, str):
        match = _VERSIONED.match(name)
        if match:
            return match["base"], int(match["version"])
        if _NAME.match(name):
            return name, 1
    raise ParameterError(
        f"result name {name!r} is not valid: use 1-100 letters, digits, '.', '_' or '-', starting with a "
        f"letter or digit (versions are written NAME@2, NAME@3, ...)"
    )


def _check_base_name(name: str) -> str:
    base, _ = parse_name(name)
    if base != name:
        raise ParameterError(
            f"--name {name!r} contains '@', which GEAR reserves for versions; pass the base name "
            f"{base!r}: GEAR numbers versions itself"
        )
    return name


# ----------------------------------------------------------------------------- spec
@dataclasses.dataclass(frozen=True)
class SubmissionSpec:
    """What a joblib worker needs to load a submission (picklable).

    Attributes
    ----------
    module : str
        Import name.
    weights : str or None
        Absolute path passed to the submission's ``load_model``.
    """

    module: str
    weights: Optional[str] = None

    def load(self):
        """``(module, model)`` (see :func:`gear.validate.load_submission`)."""
        return load_submission(self.module, self.weights)


@dataclasses.dataclass
class StoredSubmission:
    """What :func:`add_submission` did.

    Attributes
    ----------
    name : str
        Stored name (``NAME`` or ``NAME@k``).
    version : int
    folder : pathlib.Path
        ``OUT/models/<name>``.
    created : bool
        False when the same module and weights were already stored (nothing was done).
    result : ModelResult
    info : dict
        The content of ``submission.json``.
    n_batches_embedded : int
        Batches computed by this call (the others came from the cache).
    """

    name: str
    version: int
    folder: Path
    created: bool
    result: ModelResult
    info: dict
    n_batches_embedded: int = 0


# ----------------------------------------------------------------------------- identity
def _code_identity(module: ModuleType) -> dict:
    """Distribution name/version and SHA-256 of the module's own source file."""
    path = getattr(module, "__file__", None)
    code = fingerprint_path(path) if path and os.path.isfile(path) else "none"
    distribution = ""
    top = module.__name__.split(".")[0]
    try:  # the usual case: the distribution is named after the top-level package
        from importlib import metadata

        distribution = f"{top}=={metadata.version(top)}"
    except Exception:
        distribution = ""
    return {"code_sha256": code, "distribution": distribution}


def weights_sha256(path: Optional[os.PathLike]) -> str:
    """``sha256sum`` of a weights file (users can check it); for a folder, the digest of
    :func:`gear.cache.fingerprint_path` (relative names and bytes); ``"none"`` without."""
    if path is None:
        return "none"
    path = Path(path)
    if not path.is_file():
        return fingerprint_path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolve_weights(weights, models_dir) -> Optional[Path]:
    if weights is None or str(weights) == "":
        return None
    path = Path(weights).expanduser()
    if path.exists():
        return path.resolve()
    root = resolve_models_dir(models_dir)
    if root is not None and (root / path).exists():
        return (root / path).resolve()
    where = f" (nor under the models directory {root})" if root is not None else ""
    raise ParameterError(f"weights path {str(weights)!r} does not exist{where}; pass the submission's weights file or folder")


# ----------------------------------------------------------------------------- stored results
def _models_root(out_dir: Path) -> Path:
    return Path(out_dir) / "models"


def _read_info(folder: Path) -> dict:
    path = folder / SUBMISSION_FILE
    if path.exists():
        return json.loads(path.read_text())
    # A result stored by `gear run` (a registry model): no submission record.
    meta = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else {}
    return {"name": folder.name, "module": "(gear run)", "version": None, "weights_sha256": "",
            "added": "", "scene_embedding_size": meta.get("embedding_dim"), "sample_rate": None}


def list_results(out_dir: os.PathLike = "gear-results") -> List[dict]:
    """Every stored result of a results directory, in name order.

    Returns
    -------
    list of dict
        Keys ``name, base_name, version, module, weights_sha256, weights_path, added,
        embedding_dim, sample_rate, effective_duration_s`` (``version`` is None and
        ``module`` ``"(gear run)"`` for results of ``gear run``).
    """
    root = _models_root(Path(out_dir))
    if not root.is_dir():
        return []
    rows = []
    for folder in sorted(p for p in root.iterdir() if (p / "result.json").exists()):
        info = _read_info(folder)
        meta = json.loads((folder / "result.json").read_text())
        try:
            base, _ = parse_name(folder.name)
        except ParameterError:
            base = folder.name
        padding = info.get("padding") or {}
        rows.append(
            {
                "name": folder.name,
                "base_name": info.get("base_name", base),
                "version": info.get("version"),
                "module": info.get("module", ""),
                "weights_sha256": info.get("weights_sha256", ""),
                "weights_path": info.get("weights_path"),
                "added": info.get("added", ""),
                "embedding_dim": meta.get("embedding_dim"),
                "sample_rate": info.get("sample_rate"),
                "effective_duration_s": padding.get("duration_s"),
            }
        )
    return rows


def _plan_name(out_dir: Path, base: str, identity: dict) -> Tuple[str, int, Optional[str]]:
    """``(name, version, existing)``: ``existing`` is the stored name with the same identity."""
    root = _models_root(out_dir)
    versions = {}
    if root.is_dir():
        for folder in root.iterdir():
            if not (folder / "result.json").exists() and not (folder / SUBMISSION_FILE).exists():
                continue
            try:
                folder_base, version = parse_name(folder.name)
            except ParameterError:
                continue
            if folder_base != base:
                continue
            versions[version] = folder.name
            info = _read_info(folder)
            if all(info.get(key) == value for key, value in identity.items()) and (folder / "result.json").exists():
                return folder.name, version, folder.name
    version = max(versions, default=0) + 1
    return (base if version == 1 else f"{base}@{version}"), version, None


# ----------------------------------------------------------------------------- settings
def _resolve_config(out_dir: Path, config: Optional[pipeline.GearConfig]) -> pipeline.GearConfig:
    stored = pipeline.read_run_config(out_dir) if (out_dir / "run.json").exists() else None
    if stored is None:
        if _models_root(out_dir).is_dir() and any((p / "result.json").exists() for p in _models_root(out_dir).iterdir()):
            raise ParameterError(
                f"{str(out_dir)!r} holds results but no run.json, so its tone set is unknown; "
                f"add the submission to a new --out directory"
            )
        return config or pipeline.GearConfig()
    if config is None:
        return stored
    def same(a, b):  # run.json turns tuples into lists: compare as JSON
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

    differ = [
        f"{key}={getattr(config, key)!r} (stored: {getattr(stored, key)!r})"
        for key in _SHARED_SETTINGS
        if not same(getattr(config, key), getattr(stored, key))
    ]
    if differ:
        raise ParameterError(
            f"{str(out_dir)!r} holds a run made with other settings: {'; '.join(differ)}. Results in one "
            f"directory share the tone set and analysis settings: drop these options, or use another --out"
        )
    return config


# ----------------------------------------------------------------------------- embedding
_WORKER_MODELS: Dict[Tuple[str, Optional[str]], tuple] = {}


def _embed_batch(module, model, tone_set, padding: Padding, start: int, stop: int, name: str) -> np.ndarray:
    audio = render_tones(tone_set, padding, indices=np.arange(start, stop))
    try:
        return call_scene_embeddings(module, model, audio, module_name=name)
    except SubmissionError as error:
        raise SubmissionError(error.function, error.expected, f"{error.got} (tones {start}..{stop - 1})", error.fix) from error


def _worker_job(spec: SubmissionSpec, tone_set, padding: Padding, start: int, stop: int, n_threads: int):
    """One joblib job: embed tones ``[start, stop)``; the model is loaded once per worker."""
    key = (spec.module, spec.weights)
    if key not in _WORKER_MODELS:
        if n_threads:
            try:
                import torch

                torch.set_num_threads(n_threads)
            except ImportError:  # pragma: no cover
                pass
        _WORKER_MODELS.clear()  # one model per worker process
        _WORKER_MODELS[key] = spec.load()
    module, model = _WORKER_MODELS[key]
    return start, stop, _embed_batch(module, model, tone_set, padding, start, stop, spec.module)


def embed_submission(
    spec: SubmissionSpec,
    tone_set,
    padding: Padding,
    *,
    dim: int,
    cache: Optional[EmbeddingCache] = None,
    batch_size: int = 250,
    n_jobs: int = 1,
    loaded=None,
    progress: Optional[Callable[..., Iterable]] = None,
) -> Tuple[np.ndarray, int]:
    """Scene embeddings of every tone, batch by batch, resumable through ``cache``.

    Parameters
    ----------
    spec : SubmissionSpec
    tone_set : synth.ToneSet
    padding : gear.validate.Padding
        Sample rate and length at which the tones are fed (see
        :func:`gear.validate.find_effective_duration`).
    dim : int
        ``scene_embedding_size``.
    cache : EmbeddingCache, optional
        Finished batches are read from and written to it (each as soon as it is done).
    batch_size : int
        Tones per call.
    n_jobs : int
        1: in this process, with ``loaded``. Otherwise joblib jobs (``-1``: all cores), one
        per batch; each worker loads the model once. The joblib backend is the one active
        (``joblib.parallel_config``), so a cluster backend can take the jobs.
    loaded : (module, model), optional
        The loaded submission, used when ``n_jobs == 1``.
    progress : callable(iterable, total) -> iterable, optional
        Wraps the stream of finished batches (the CLI passes tqdm).

    Returns
    -------
    embedding : np.ndarray, shape (n_sounds, dim), float32
    n_embedded : int
        Batches computed by this call.
    """
    plan = batches(tone_set.n_sounds, batch_size)
    out = np.empty((tone_set.n_sounds, dim), dtype=np.float32)
    todo = []
    for start, stop in plan:
        cached = cache.load(start, stop) if cache is not None else None
        if cached is not None and cached.shape == (stop - start, dim) and cached.dtype == np.float32:
            out[start:stop] = cached
        else:
            todo.append((start, stop))
    if not todo:
        return out, 0
    if n_jobs == 1:
        module, model = loaded if loaded is not None else spec.load()
        stream = (
            (start, stop, _embed_batch(module, model, tone_set, padding, start, stop, spec.module))
            for start, stop in todo
        )
    else:
        import joblib

        workers = joblib.effective_n_jobs(n_jobs)
        n_threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        stream = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            joblib.delayed(_worker_job)(spec, tone_set, padding, start, stop, n_threads) for start, stop in todo
        )
    if progress is not None:
        stream = progress(stream, total=len(todo))
    for start, stop, array in stream:
        out[start:stop] = array
        if cache is not None:
            cache.store(start, stop, array)
    return out, len(todo)


# ----------------------------------------------------------------------------- outputs
def leaderboard(results: Sequence[ModelResult], infos: Optional[Dict[str, dict]] = None) -> List[dict]:
    """One row per result, ranked.

    ``score`` is the mean, over the parameters, of the median |log-ratio| divided by its
    chance level (the same statistic with random neighbours): 0 when every sound's
    neighbours share its parameters, about 1 when they are no better than random. Lower is
    better; rank 1 is the lowest score (ties share a rank; results without a score last).

    Returns
    -------
    list of dict
        Keys :data:`LEADERBOARD_COLUMNS`, ``median_abs_log_ratio_<parameter>`` per parameter,
        and ``added``.
    """
    infos = infos or {}
    rows = []
    for result in results:
        info = infos.get(result.name, {})
        ratios, row = [], {}
        for score in result.scores:
            value = float(score.get("median_abs_log_ratio", np.nan))
            chance = float(score.get("chance", np.nan))
            row[f"median_abs_log_ratio_{score['parameter']}"] = value
            if np.isfinite(value) and np.isfinite(chance) and chance > 0:
                ratios.append(value / chance)
        row.update(
            model=result.name,
            module=info.get("module", ""),
            version=info.get("version") or "",
            weights_sha256=(info.get("weights_sha256") or "")[:12],
            embedding_dim=result.embedding_dim,
            score=float(np.mean(ratios)) if ratios else np.nan,
            added=info.get("added", ""),
        )
        rows.append(row)
    rows.sort(key=lambda r: (not np.isfinite(r["score"]), r["score"] if np.isfinite(r["score"]) else 0.0, r["model"]))
    previous, rank = None, 0
    for position, row in enumerate(rows, start=1):
        if not np.isfinite(row["score"]):
            row["rank"] = ""
            continue
        if row["score"] != previous:
            rank, previous = position, row["score"]
        row["rank"] = rank
    return rows


def _leaderboard_columns(rows: Sequence[dict]) -> List[str]:
    extra = []
    for row in rows:
        for key in row:
            if key.startswith("median_abs_log_ratio_") and key not in extra:
                extra.append(key)
    if not extra:
        extra = [f"median_abs_log_ratio_{p}" for p in pipeline.PARAMETERS]
    return list(LEADERBOARD_COLUMNS) + extra + ["added"]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if np.isfinite(value) else ""
    return str(value)


def write_leaderboard_csv(path: os.PathLike, rows: Sequence[dict]) -> Path:
    """Write ``leaderboard.csv`` atomically."""
    columns = _leaderboard_columns(rows)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c, "")) for c in columns])
    path = Path(path)
    atomic_write_bytes(path, text.getvalue().encode())
    return path


def _leaderboard_html(rows: Sequence[dict]) -> str:
    columns = _leaderboard_columns(rows)
    labels = {c: c.replace("median_abs_log_ratio_", "median |log-ratio| ") for c in columns}
    head = "".join(f"<th>{html.escape(labels[c])}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c, '')))}</td>" for c in columns) + "</tr>" for row in rows)
    return (
        "<p>Score: mean over the parameters of median |log-ratio| divided by its chance level "
        "(0 = neighbours share the parameters, 1 = random neighbours); lower is better. "
        "Also in <code>leaderboard.csv</code>.</p>"
        f'<table class="gear-leaderboard"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def refresh_outputs(out_dir: os.PathLike, *, report: bool = True) -> List[ModelResult]:
    """Rewrite ``scores.csv``, ``run.json``, ``leaderboard.csv`` and ``report.html`` from
    the stored results (each file atomically). With no result left, the CSV files keep
    their header and the report is deleted.

    Returns
    -------
    list of ModelResult
    """
    out_dir = Path(out_dir)
    config = pipeline.read_run_config(out_dir)
    tone_set = config.tone_set()
    results = pipeline.load_results(out_dir) if _models_root(out_dir).is_dir() else []
    infos = {p.name: _read_info(p) for p in _models_root(out_dir).iterdir()} if _models_root(out_dir).is_dir() else {}
    pipeline.write_scores_csv(out_dir / "scores.csv", results)
    pipeline.write_run_json(out_dir, config, tone_set, [r.name for r in results])
    rows = leaderboard(results, infos)
    write_leaderboard_csv(out_dir / LEADERBOARD_FILE, rows)
    if report:
        if results:
            from gear.scoring import disentanglement_sections

            per_model, extra = disentanglement_sections(out_dir)
            names = {r.name for r in results}
            pipeline.write_run_report(
                out_dir,
                results,
                tone_set,
                config=config,
                extra_sections=[("Leaderboard", _leaderboard_html(rows))] + extra,
                per_model_sections={k: v for k, v in per_model.items() if k in names},
            )
        elif (out_dir / "report.html").exists():
            os.remove(out_dir / "report.html")
    return results


#: Files :func:`refresh_outputs` rewrites (restored together when a change fails).
_OUTPUT_FILES = ("scores.csv", "run.json", LEADERBOARD_FILE, "report.html")


def _refresh_or_undo(out_dir: Path, undo: Callable[[], None], *, report: bool) -> None:
    """:func:`refresh_outputs`; if it fails, ``undo()`` the change of ``models/`` and put
    every output file back as it was, then re-raise."""
    saved = {}
    for name in _OUTPUT_FILES:
        path = out_dir / name
        if path.exists():
            saved[name] = (path.read_bytes(), path.stat().st_mode)
    try:
        refresh_outputs(out_dir, report=report)
    except BaseException:
        undo()
        for name in _OUTPUT_FILES:
            path = out_dir / name
            if name in saved:
                atomic_write_bytes(path, saved[name][0])
                os.chmod(path, saved[name][1] & 0o777)
            elif path.exists():
                os.remove(path)
        raise


def _write_tones_csv(path: Path, tone_set, padding: Padding) -> None:
    f1_hz = tone_set.f1_hz(padding.sample_rate)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(TONES_COLUMNS)
    for i in range(tone_set.n_sounds):
        writer.writerow([i, f"{f1_hz[i]:.9g}", f"{tone_set.alpha[i]:.9g}", f"{tone_set.r[i]:.9g}", padding.sample_rate,
                         padding.native_n_samples, padding.n_samples, f"{padding.duration_s:.9g}"])
    atomic_write_bytes(path, text.getvalue().encode())


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


# ----------------------------------------------------------------------------- add / remove
def add_submission(
    module_name: str,
    *,
    weights: Optional[os.PathLike] = None,
    name: Optional[str] = None,
    out_dir: os.PathLike = "gear-results",
    config: Optional[pipeline.GearConfig] = None,
    models_dir: Optional[os.PathLike] = None,
    cache_dir: Optional[os.PathLike] = None,
    use_cache: bool = True,
    batch_size: Optional[int] = None,
    n_jobs: int = 1,
    batch_tolerance: float = 1e-3,
    report: bool = True,
    progress: Optional[Callable[..., Iterable]] = None,
) -> StoredSubmission:
    """Validate a HEAR 2021 submission, embed the GEAR tones, score and store the result.

    Parameters
    ----------
    module_name : str
        Import name of the submission (``hearbaseline.naive``).
    weights : path-like, optional
        Weights file or folder, passed as a path to the submission's ``load_model``. A
        relative path not found from the working directory is looked up under
        ``models_dir``.
    name : str, optional
        Result name (default: ``module_name``); versions ``NAME@2``... are added as needed.
    out_dir : path-like
        Results directory (layout of :mod:`gear.pipeline`, plus ``leaderboard.csv`` and
        per-result ``submission.json`` and ``tones.csv``).
    config : GearConfig, optional
        Tone set and analysis settings. A directory that already holds a run keeps its own
        (from ``run.json``); a ``config`` that differs from it raises.
    models_dir : path-like, optional
        Where relative weights paths are looked up (else ``GEAR_MODELS_DIR``).
    cache_dir : path-like, optional
        Embedding cache root (else ``GEAR_CACHE_DIR`` or ``~/.cache/gear``).
    use_cache : bool
        False: no resuming, nothing cached.
    batch_size : int, optional
        Tones per call (default: ``config.batch_size``).
    n_jobs : int
        Parallel embedding jobs (see :func:`embed_submission`).
    batch_tolerance : float
        Tolerance of the batch-dependence check (see
        :func:`gear.validate.check_batch_dependence`).
    report : bool
        Regenerate ``report.html``.
    progress : callable(iterable, total) -> iterable, optional
        Progress wrapper of the embedding batches (the CLI passes tqdm).

    Returns
    -------
    StoredSubmission

    Raises
    ------
    SubmissionError
        The submission breaks the HEAR API (nothing is stored).
    ParameterError
        Bad arguments, or settings that conflict with the directory's run.

    Warns
    -----
    BatchDependenceWarning
        The submission's embeddings depend on the batch (the result is stored, with the
        warning in its record and in the report).
    """
    out_dir = Path(out_dir)
    base = _check_base_name(module_name if name is None else name)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ParameterError(f"n_jobs must be a positive integer or -1 (all cores), got {n_jobs!r}")
    config = _resolve_config(out_dir, config)
    tone_set = config.tone_set()
    config.validate(tone_set.n_sounds)
    batch_size = config.batch_size if batch_size is None else batch_size
    batches(tone_set.n_sounds, batch_size)  # validates batch_size
    weights_path = _resolve_weights(weights, models_dir)

    module, model = load_submission(module_name, weights_path)
    identity = {
        "module": module_name,
        "weights_sha256": weights_sha256(weights_path),
        "tone_set_sha256": tone_set.config_hash(),
        **_code_identity(module),
    }
    stored_name, version, existing = _plan_name(out_dir, base, identity)
    if existing is not None:
        folder = _models_root(out_dir) / existing
        result = next(r for r in pipeline.load_results(out_dir) if r.name == existing)
        log.info("%s is already stored as %s (same module, code and weights); nothing to do", module_name, existing)
        return StoredSubmission(existing, version, folder, False, result, _read_info(folder))

    validation = validate_submission(module, model, module_name=module_name)
    padding = find_effective_duration(module, model, tone_set, module_name=module_name)
    dependence = check_batch_dependence(module, model, tone_set, padding, module_name=module_name,
                                        tolerance=batch_tolerance)

    cache = None
    if use_cache:
        key, meta = cache_key(kind="hear-submission", padding=padding.as_dict(), **identity)
        meta.update(effective_duration_s=padding.duration_s, f1_hz_range=[float(tone_set.f1_hz(padding.sample_rate).min()),
                                                                           float(tone_set.f1_hz(padding.sample_rate).max())])
        cache = EmbeddingCache(cache_dir or default_cache_dir(), key, meta)
    spec = SubmissionSpec(module_name, None if weights_path is None else str(weights_path))
    embedding, n_embedded = embed_submission(
        spec, tone_set, padding, dim=validation.scene_embedding_size, cache=cache, batch_size=batch_size,
        n_jobs=n_jobs, loaded=(module, model), progress=progress,
    )

    notes = list(validation.warnings)
    if padding.padded:
        notes.append(f"tones fed at {1000 * padding.duration_s:.0f} ms: {padding.reason}")
    if dependence is not None and dependence.batch_dependent:
        notes.append(dependence.message(stored_name))
    shims = list(getattr(module, "__gear_compat__", ()))
    weights_text = "default weights" if weights_path is None else f"weights {weights_path.name} (sha256 {identity['weights_sha256'][:12]})"
    description = (
        f"HEAR submission {module_name}, {weights_text}; {validation.sample_rate} Hz, "
        f"{validation.scene_embedding_size}-d; tones of {1000 * padding.duration_s:.0f} ms"
    )
    result = pipeline.analyse_embedding(stored_name, embedding, tone_set, config=config, description=description)
    result.warnings = list(result.warnings) + notes
    info = {
        "format": SUBMISSION_FORMAT,
        "name": stored_name,
        "base_name": base,
        "version": version,
        **identity,
        "weights_path": None if weights_path is None else str(weights_path),
        "added": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "sample_rate": validation.sample_rate,
        "scene_embedding_size": validation.scene_embedding_size,
        "timestamp_embedding_size": validation.timestamp_embedding_size,
        "timestamp_hop_ms": validation.timestamp_hop_ms,
        "framework": validation.framework,
        "compat_shims": shims,
        "padding": padding.as_dict(),
        "batch_dependence": None if dependence is None else dataclasses.asdict(dependence),
        "validation_warnings": validation.warnings,
        "batch_size": batch_size,
        "cache_key": None if cache is None else cache.key,
    }

    # Stage everything, then move it into place with one rename.
    staging = out_dir / _STAGING / uuid.uuid4().hex
    try:
        folder = pipeline.save_result(staging, result, embedding)
        atomic_write_bytes(folder / SUBMISSION_FILE, json.dumps(info, indent=2, default=_json_default).encode())
        _write_tones_csv(folder / TONES_FILE, tone_set, padding)
        target = _models_root(out_dir) / stored_name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise ParameterError(f"{target} appeared while embedding (another add-submission?); run again")
        if not (out_dir / "run.json").exists():
            pipeline.write_run_json(out_dir, config, tone_set, [])
        os.rename(folder, target)
        # The outputs name every stored result: if rewriting them fails, take the new one out again.
        _refresh_or_undo(out_dir, lambda: os.rename(target, staging / "withdrawn"), report=report)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(out_dir / _STAGING)
    return StoredSubmission(stored_name, version, target, True, result, info, n_embedded)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def remove_result(out_dir: os.PathLike, name: str, *, report: bool = True) -> None:
    """Remove one stored result (exact name, e.g. ``foo@2``) and rewrite the outputs.

    The folder is first renamed into ``OUT/.gear-trash/`` (atomic), the outputs are
    rewritten, then it is deleted; if rewriting fails, the folder and the outputs are put
    back as they were.

    Raises
    ------
    ParameterError
        No result of that name.
    """
    out_dir = Path(out_dir)
    folder = _models_root(out_dir) / str(name)
    if not isinstance(name, str) or "/" in name or name in ("", ".", "..") or not (folder / "result.json").exists():
        stored = [row["name"] for row in list_results(out_dir)]
        listing = ", ".join(stored) if stored else "none"
        raise ParameterError(f"no stored result named {name!r} in {str(out_dir)!r}; stored results: {listing}")
    trash = out_dir / _TRASH / f"{name}.{uuid.uuid4().hex}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.rename(folder, trash)
    try:
        _refresh_or_undo(out_dir, lambda: os.rename(trash, folder), report=report)
    finally:
        _remove_if_empty(trash.parent)
    shutil.rmtree(trash, ignore_errors=True)
    _remove_if_empty(trash.parent)
