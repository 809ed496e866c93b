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
5. check, before embedding everything, that the embedding is not larger than ``max_dim`` and
   that the model is deterministic; flag a constant embedding (:mod:`gear.embedder`);
6. score (:func:`gear.pipeline.analyse_embedding`) and commit the new entry through the
   results store (:mod:`gear.store`: staged, journaled, moved in by one rename, outputs
   rewritten).

The results directory is checked before any work; a failure before the commit leaves every
stored file as it was, and a killed commit is completed by the next command.

Results directory layout (that of :mod:`gear.pipeline`, plus)::

    OUT/leaderboard.csv                 rank,model,module,version,weights_sha256,embedding_dim,
                                        score,median_abs_log_ratio_<parameter>...,added
    OUT/models/<name>/submission.json   module, version, weights path and SHA-256, sample rate,
                                        dims, padding (effective duration), validation findings
    OUT/models/<name>/tones.csv         index,f1_hz,alpha,r,sample_rate,native_n_samples,
                                        n_samples,effective_duration_s (what the model heard; a
                                        stimulus family: its factors in place of f1_hz,alpha,r)

Names and versions. A result is named ``NAME`` (default: the module's import name). A name
belongs to one module: adding ``NAME`` again from the same module with other weights (or edited
module code) stores ``NAME@2``, then ``NAME@3``...; with the same module, code and weights it is
a no-op that returns the stored version (a corrupt stored version is recomputed). A ``NAME`` that
is a registered model's name (``naive``, ``mfcc``, ...) or that holds another module's entry is
refused with a free name to use instead. Names are letters, digits, ``.``, ``_`` and ``-``
(``@`` marks versions).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

import numpy as np

from gear import pipeline
from gear.cache import EmbeddingCache, cache_key, default_cache_dir, fingerprint_path
from gear.embedder import DEFAULT_MAX_DIM, ModelSource, batches, check_determinism, check_size, embed
from gear.errors import ParameterError, StoreError, lower_layer_errors
from gear.results import ModelResult
from gear.store import SUBMISSION, SUBMISSION_FILE, CorruptEntryError, parse_name
from gear.validate import (
    Padding,
    check_batch_dependence,
    find_effective_duration,
    load_submission,
    validate_submission,
)

__all__ = [
    "StoredSubmission",
    "add_submission",
    "list_results",
    "remove_result",
    "refresh_outputs",
    "weights_sha256",
    "TONES_COLUMNS",
]

log = logging.getLogger(__name__)

TONES_FILE = "tones.csv"
SUBMISSION_FORMAT = "gear-submission/1"
TONES_COLUMNS = ("index", "f1_hz", "alpha", "r", "sample_rate", "native_n_samples", "n_samples", "effective_duration_s")


def _check_base_name(name: str) -> str:
    base, _ = parse_name(name)
    if "/" in name:
        raise ParameterError(f"--name {name!r} contains '/', which GEAR reserves for a model's layers (MODEL/LAYER, "
                             f"gear run --layers); pass a name without it")
    if base != name:
        raise ParameterError(
            f"--name {name!r} contains '@', which GEAR reserves for versions; pass the base name "
            f"{base!r}: GEAR numbers versions itself"
        )
    return name


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
def _code_identity(module) -> dict:
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
        with lower_layer_errors():
            return fingerprint_path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolve_weights(weights, models_dir) -> Optional[Path]:
    from embeddings.base import models_dir as resolve_models_dir

    if weights is None or str(weights) == "":
        return None
    path = Path(weights).expanduser()
    if path.exists():
        return path.resolve()
    with lower_layer_errors():
        root = resolve_models_dir(models_dir)
    if root is not None and (root / path).exists():
        return (root / path).resolve()
    where = f" (nor under the models directory {root})" if root is not None else ""
    raise ParameterError(f"weights path {str(weights)!r} does not exist{where}; pass the submission's weights file or folder")


# ----------------------------------------------------------------------------- names
def _check_not_registry_name(store, base: str) -> None:
    from embeddings import registry

    if base in registry.REGISTRY:
        raise StoreError(
            f"--name {base!r} is the name of GEAR's registered model {base!r} (results of `gear run`); a "
            f"submission stored under it would read as that model. Choose another --name, e.g. "
            f"{store.free_name(base, reserved=registry.REGISTRY)!r}"
        )


def _plan_name(store, base: str, identity: dict) -> Tuple[str, int, Optional[str]]:
    """``(name, version, existing)``: ``existing`` is the stored name with the same identity."""
    versions = {}
    for name in store.names():
        try:
            folder_base, version = parse_name(name)
        except ParameterError:
            continue
        if folder_base != base:
            continue
        store.check_name_for(name, kind=SUBMISSION, source=identity["module"])
        versions[version] = name
        info = store.info(name).submission
        if all(info.get(key) == value for key, value in identity.items()):
            try:
                store.verify(name)
            except CorruptEntryError as error:
                log.warning("%s; recomputing it", error)
                return name, version, None  # same identity, corrupt: recompute it in place
            return name, version, name
    version = max(versions, default=0) + 1
    return (base if version == 1 else f"{base}@{version}"), version, None


# ----------------------------------------------------------------------------- settings
def _resolve_config(store, config: Optional[pipeline.GearConfig]) -> pipeline.GearConfig:
    """The directory's settings when it holds entries (a ``config`` that differs raises), else ``config``."""
    settings = store.read_settings()
    if config is None:
        return pipeline.config_from_settings(settings) if settings is not None and store.names() else pipeline.GearConfig()
    store.check_settings(config.settings())
    return config


# ----------------------------------------------------------------------------- outputs
def refresh_outputs(out_dir: os.PathLike, *, report: bool = True) -> List[ModelResult]:
    """Rewrite ``scores.csv``, ``run.json``, ``leaderboard.csv`` and ``report.html`` from the
    stored entries (see :meth:`gear.store.ResultsStore.refresh_outputs`)."""
    return pipeline.open_store(out_dir, report=report).refresh_outputs()


def _tones_csv(tone_set, padding: Padding) -> bytes:
    """``tones.csv``: index, the factors (f1 in Hz at the model's rate for the harmonic preset),
    then the model's rate and lengths."""
    if hasattr(tone_set, "f1_hz"):  # synth.ToneSet: today's columns
        columns = {"f1_hz": tone_set.f1_hz(padding.sample_rate), "alpha": tone_set.alpha, "r": tone_set.r}
    else:  # a stimulus family: one column per factor, named as the family names them
        columns = {name: np.asarray(values) for name, values in tone_set.columns.items()}
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("index",) + tuple(columns) + TONES_COLUMNS[4:])
    for i in range(tone_set.n_sounds):
        writer.writerow([i] + [_cell(values[i]) for values in columns.values()]
                        + [padding.sample_rate, padding.native_n_samples, padding.n_samples,
                           f"{padding.duration_s:.9g}"])
    return text.getvalue().encode()


def _cell(value) -> str:
    return f"{value:.9g}" if isinstance(value, (float, np.floating)) else str(value.item() if hasattr(value, "item") else value)


# ----------------------------------------------------------------------------- add
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
    max_dim: int = DEFAULT_MAX_DIM,
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
        Results directory (see :mod:`gear.store`); checked before any work.
    config : GearConfig, optional
        Tone set and analysis settings. A directory that already holds entries keeps its own
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
        Parallel embedding jobs (see :func:`gear.embedder.embed`).
    batch_tolerance : float
        Tolerance of the batch-dependence check (see
        :func:`gear.validate.check_batch_dependence`).
    max_dim : int
        Largest scene embedding accepted (checked before embedding everything).
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
        The submission breaks the HEAR API, is non-deterministic or too large (nothing is stored).
    ParameterError
        Bad arguments, or settings that conflict with the directory's.
    StoreError
        ``out_dir`` cannot be used, or the name clashes with another entry.

    Warns
    -----
    BatchDependenceWarning
        The submission's embeddings depend on the batch (stored, flagged).
    ConstantEmbeddingWarning
        Every tone gets (nearly) the same embedding (stored, flagged).
    """
    store = pipeline.open_store(out_dir, report=report)
    base = _check_base_name(module_name if name is None else name)
    _check_not_registry_name(store, base)
    config = _resolve_config(store, config)
    tone_set = config.tone_set()
    config.validate(tone_set.n_sounds)
    batch_size = config.batch_size if batch_size is None else batch_size
    batches(tone_set.n_sounds, batch_size)  # validates batch_size
    weights_path = _resolve_weights(weights, models_dir)

    module, model = load_submission(module_name, weights_path)
    check_size(model.scene_embedding_size, max_dim=max_dim, module_name=module_name)  # before any call on audio
    identity = {"module": module_name, "weights_sha256": weights_sha256(weights_path),
                "tone_set_sha256": tone_set.config_hash(), **_code_identity(module)}
    stored_name, version, existing = _plan_name(store, base, identity)
    if existing is not None:
        log.info("%s is already stored as %s (same module, code and weights); nothing to do", module_name, existing)
        return StoredSubmission(existing, version, store.models_dir / existing, False, store.load_result(existing),
                                store.info(existing).submission)

    validation = validate_submission(module, model, module_name=module_name)
    padding = find_effective_duration(module, model, tone_set, module_name=module_name)
    check_determinism(module, model, tone_set, padding, module_name=module_name)
    dependence = check_batch_dependence(module, model, tone_set, padding, module_name=module_name,
                                        tolerance=batch_tolerance)
    cache = None
    if use_cache:
        key, meta = cache_key(kind="hear-submission", padding=padding.as_dict(), **identity)
        meta.update(effective_duration_s=padding.duration_s)
        cache = EmbeddingCache(cache_dir or default_cache_dir(), key, meta)
    source = ModelSource(SUBMISSION, module_name, weights=None if weights_path is None else str(weights_path))
    run = embed(source, tone_set, padding, dim=validation.scene_embedding_size, cache=cache, batch_size=batch_size,
                n_jobs=n_jobs, loaded=(module, model), max_dim=max_dim, check_deterministic=False, progress=progress)

    flags, notes = list(run.flags), list(validation.warnings) + list(run.notes)
    if padding.padded:
        notes.append(f"tones fed at {1000 * padding.duration_s:.0f} ms: {padding.reason}")
    if dependence is not None and dependence.batch_dependent:
        notes.append(dependence.message(stored_name))
        flags.append("batch-dependent")
    weights_text = ("default weights" if weights_path is None
                    else f"weights {weights_path.name} (sha256 {identity['weights_sha256'][:12]})")
    description = (f"HEAR submission {module_name}, {weights_text}; {validation.sample_rate} Hz, "
                   f"{validation.scene_embedding_size}-d; tones of {1000 * padding.duration_s:.0f} ms")
    result = pipeline.analyse_embedding(stored_name, run.embedding, tone_set, config=config, description=description)
    result.warnings = list(result.warnings) + notes
    result.flags = flags
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
        "compat_shims": list(getattr(module, "__gear_compat__", ())),
        "padding": padding.as_dict(),
        "batch_dependence": None if dependence is None else dataclasses.asdict(dependence),
        "validation_warnings": validation.warnings,
        "flags": flags,
        "batch_size": batch_size,
        "cache_key": None if cache is None else cache.key,
    }
    staged = store.stage(stored_name, {"kind": SUBMISSION, "module": module_name,
                                       "weights_sha256": identity["weights_sha256"]})
    staged.write_result(result, run.embedding, flags=flags)
    staged.write_json(SUBMISSION_FILE, info)
    staged.write_file(TONES_FILE, _tones_csv(tone_set, padding))
    store.commit(put=[staged], settings=config.settings(), tone_set_config=tone_set.config())
    return StoredSubmission(stored_name, version, store.models_dir / stored_name, True, result, info, run.n_embedded)


# ----------------------------------------------------------------------------- list / remove
def list_results(out_dir: os.PathLike = "gear-results") -> List[dict]:
    """Every stored entry of a results directory, in name order.

    Returns
    -------
    list of dict
        Keys ``name, base_name, version, kind, module, weights_sha256, weights_path, added,
        embedding_dim, sample_rate, effective_duration_s, status`` (``status`` is ``ok`` or
        ``corrupt: <reason>``; ``version`` is None and ``module`` ``"(gear run)"`` for registry
        entries).
    """
    store = pipeline.open_store(out_dir, writable=False)
    store.recover_if_writable()
    rows = []
    for name in store.names():
        status = "ok"
        try:
            info = store.verify(name)
            dim = json.loads((info.folder / "result.json").read_text()).get("embedding_dim")
        except CorruptEntryError as error:
            info, dim, status = store.info(name), None, f"corrupt: {error.path.name} {error.reason}"
        submission = info.submission
        try:
            base, _ = parse_name(name)
        except ParameterError:
            base = name
        rows.append({
            "name": name,
            "base_name": submission.get("base_name", base),
            "version": submission.get("version"),
            "kind": info.kind,
            "module": info.source if info.kind == SUBMISSION else "(gear run)",
            "weights_sha256": submission.get("weights_sha256", ""),
            "weights_path": submission.get("weights_path"),
            "added": submission.get("added", ""),
            "embedding_dim": dim,
            "sample_rate": submission.get("sample_rate"),
            "effective_duration_s": (submission.get("padding") or {}).get("duration_s"),
            "status": status,
        })
    return rows


def remove_result(out_dir: os.PathLike, name: str, *, report: bool = True) -> None:
    """Remove one stored entry (exact name, e.g. ``foo@2``; a corrupt one too) and rewrite the
    outputs, as one journaled commit (see :mod:`gear.store`).

    Raises
    ------
    StoreError
        No entry of that name.
    """
    store = pipeline.open_store(out_dir, report=report)
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        raise ParameterError(f"result name {name!r} is not valid; see `gear list --out {out_dir}`")
    store.info(name)  # raises with the list of stored names
    store.commit(remove=[name])
