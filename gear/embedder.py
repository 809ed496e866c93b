"""The one embedder: every model GEAR stores (registry adapters and HEAR submissions) is
embedded here, batch by batch, through the resumable embedding cache.

A :class:`ModelSource` says how to load a model in any process (it is picklable, so joblib or
Dask workers load it once each). :func:`embed` then

1. reads the batches already in the cache (an interrupted run resumes where it stopped);
2. loads the model only when some batch is missing, and checks before embedding everything
   that its embedding is not larger than ``max_dim`` and that it is deterministic (the same
   batch twice gives the same embeddings: :func:`check_determinism`);
3. embeds the missing batches (in this process, or as joblib jobs with ``n_jobs != 1``),
   each through :func:`gear.validate.call_scene_embeddings` (the HEAR contract: float32
   tensors of the declared shape, no NaN/Inf), storing each batch in the cache as it is done;
4. flags a constant or near-constant embedding (:class:`ConstantEmbeddingWarning`).

This is the batch layer: it takes an optional progress wrapper (the CLI passes tqdm); the
library stays quiet otherwise.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from gear.cache import EmbeddingCache, cache_key, default_cache_dir, fingerprint_path
from gear.checks import check_int
from gear.errors import GearError, ParameterError, SubmissionError, lower_layer_errors

__all__ = [
    "ModelSource",
    "EmbeddingRun",
    "ConstantEmbeddingWarning",
    "DEFAULT_MAX_DIM",
    "batches",
    "embed",
    "embed_model",
    "model_cache",
    "check_size",
    "check_determinism",
    "constant_embedding",
    "DEFAULT_MEMORY_FRACTION",
    "ram_bytes",
    "default_max_memory",
    "tone_bytes",
    "tones_per_call",
]

log = logging.getLogger(__name__)

#: Largest scene embedding stored without ``--max-dim`` (a 65 536-d float32 embedding of the
#: 2 500 paper tones is 655 MB per stored copy).
DEFAULT_MAX_DIM = 65536
#: Relative spread below which an embedding counts as constant (see :func:`constant_embedding`).
CONSTANT_TOLERANCE = 1e-6
#: Relative difference above which two calls on the same batch count as different
#: (see :func:`check_determinism`; float round-off is ~1e-7 of that scale).
DETERMINISM_TOLERANCE = 1e-4


#: Default memory budget of the model calls (``max_memory``): this fraction of the machine's RAM.
DEFAULT_MEMORY_FRACTION = 0.25
#: Model activations per tone in the budget's estimate, as a multiple of the tone's audio bytes
#: (float32 at the model's rate): a conservative estimate, not measured per model.
ACTIVATION_FACTOR = 32


class ConstantEmbeddingWarning(UserWarning):
    """Every sound gets (nearly) the same embedding: the model hears nothing of the tones."""


def batches(n: int, batch_size: int) -> List[Tuple[int, int]]:
    """``[(0, b), (b, 2b), ...]`` covering ``range(n)``."""
    batch_size = check_int(batch_size, "batch_size", min_val=1, fix="pass the number of sounds per model call")
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """How to load one model in any process (picklable).

    Attributes
    ----------
    kind : str
        ``"registry"`` (a GEAR adapter, by registry name) or ``"submission"`` (a HEAR module,
        by import name).
    name : str
        Registry name or import name.
    weights : str, optional
        Submission weights path (passed to its ``load_model``).
    models_dir : str, optional
        Where registry models look for their files.
    """

    kind: str
    name: str
    weights: Optional[str] = None
    models_dir: Optional[str] = None

    def load(self):
        """``(module, model)``."""
        if self.kind == "registry":
            from embeddings import registry

            with lower_layer_errors():
                return registry.get_spec(self.name).load(self.models_dir)
        from gear.validate import load_submission

        return load_submission(self.name, self.weights)


@dataclasses.dataclass
class EmbeddingRun:
    """What :func:`embed` did.

    Attributes
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float32
    n_embedded : int
        Batches computed by this call (the others came from the cache).
    flags : list of str
        ``constant-embedding`` when :func:`constant_embedding` holds.
    notes : list of str
        One sentence per flag, for the result's warnings.
    """

    embedding: np.ndarray
    n_embedded: int
    flags: List[str]
    notes: List[str]


# ----------------------------------------------------------------------------- checks
def check_size(size: int, *, max_dim: int = DEFAULT_MAX_DIM, module_name: str = "model") -> None:
    """Refuse a scene embedding larger than ``max_dim`` before embedding everything.

    Raises
    ------
    SubmissionError
        ``kind="too-large"``.
    """
    size = int(size)
    if size > max_dim:
        raise SubmissionError(
            f"{module_name}.load_model",
            f"model.scene_embedding_size <= {max_dim} (the --max-dim limit)",
            f"{size} ({size * 4 / 1e6:.0f} MB per 1 000 tones, per stored copy)",
            "pool or project the embedding to fewer dimensions in the submission, or raise the limit with "
            f"--max-dim {size}",
            kind="too-large",
        )


def check_determinism(module, model, tone_set, padding, *, module_name: str = "model", n_tones: int = 4,
                      tolerance: float = DETERMINISM_TOLERANCE) -> float:
    """Embed the same ``n_tones`` tones twice, in the same batch, and compare.

    A model whose output changes between two identical calls (dropout or a BatchNorm layer left
    in training mode, an unseeded random projection) cannot be scored: its neighbours change
    from call to call. This is distinct from batch dependence (the same tone in two different
    batches, :func:`gear.validate.check_batch_dependence`).

    Returns
    -------
    float
        The largest distance between the two embeddings of a tone, divided by the median
        distance between the embeddings of different tones.

    Raises
    ------
    SubmissionError
        ``kind="non-deterministic"`` when that ratio exceeds ``tolerance``.
    """
    from gear.validate import call_scene_embeddings, render_tones

    indices = np.unique(np.linspace(0, tone_set.n_sounds - 1, max(2, n_tones)).round().astype(int))
    audio = render_tones(tone_set, padding, indices=indices)
    first = call_scene_embeddings(module, model, audio, module_name=module_name).astype(np.float64)
    second = call_scene_embeddings(module, model, audio, module_name=module_name).astype(np.float64)
    difference = float(np.linalg.norm(first - second, axis=1).max())
    pairs = np.linalg.norm(first[:, None] - first[None, :], axis=-1)[np.triu_indices(len(indices), 1)]
    scale = float(np.median(pairs)) if pairs.size else 0.0
    if not scale > 0:
        scale = float(np.abs(first).max()) or 1.0
    ratio = difference / scale
    if ratio > tolerance:
        raise SubmissionError(
            f"{module_name}.get_scene_embeddings",
            "the same embeddings when called twice on the same batch",
            f"embeddings of tones {indices.tolist()} that differ by {ratio:.3g} x the median distance between "
            f"tones (tolerance {tolerance:g})",
            "put the model in evaluation mode (model.eval(): dropout and BatchNorm in training mode draw or "
            "normalise differently on every call) and seed any random projection",
            kind="non-deterministic",
        )
    return ratio


def constant_embedding(embedding: np.ndarray, *, tolerance: float = CONSTANT_TOLERANCE) -> bool:
    """True when every sound has (nearly) the same embedding: the largest range of a dimension
    over the sounds is at most ``tolerance`` x the largest absolute value (all zeros included)."""
    embedding = np.asarray(embedding)
    if embedding.shape[0] < 2:
        return False
    if not embedding.size:
        return True
    # column extremes in the stored dtype (exact), differences in float64: no float64 copy
    high = embedding.max(axis=0).astype(np.float64)
    low = embedding.min(axis=0).astype(np.float64)
    spread = float((high - low).max())
    scale = float(max(np.abs(high).max(), np.abs(low).max()))
    return spread <= tolerance * scale or scale == 0.0


# ----------------------------------------------------------------------------- memory budget
def ram_bytes() -> int:
    """This machine's RAM, in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_max_memory() -> int:
    """:data:`DEFAULT_MEMORY_FRACTION` of this machine's RAM (:func:`ram_bytes`), in bytes."""
    return int(DEFAULT_MEMORY_FRACTION * ram_bytes())


def tone_bytes(n_samples: int, dim: int) -> int:
    """Estimated memory of one tone in a model call, in bytes: its float32 audio, the model's
    activations (:data:`ACTIVATION_FACTOR` x the audio) and its float32 embedding twice (the
    model's output and its checked copy)."""
    return int(4 * n_samples * (1 + ACTIVATION_FACTOR) + 2 * 4 * dim)


def _size_text(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.3g} MB"


def tones_per_call(padding, dim: int, max_memory: int, *, module_name: str = "model") -> int:
    """The most tones one model call may take within ``max_memory`` bytes (:func:`tone_bytes` each).

    Raises
    ------
    ParameterError
        ``max_memory`` is too small for one tone (the message gives the minimum).
    """
    per_tone = tone_bytes(padding.n_samples, dim)
    if max_memory < per_tone:
        raise ParameterError(
            f"max_memory={_size_text(max_memory)} is too small for one tone of {module_name}: one tone needs about "
            f"{_size_text(per_tone)} ({padding.n_samples} samples at {padding.sample_rate} Hz, activations estimated "
            f"at {ACTIVATION_FACTOR} x the audio, a {dim}-d embedding); give at least --max-memory "
            f"{int(np.ceil(per_tone / 1e6))}MB")
    return int(max_memory // per_tone)


def _check_memory(max_memory: Optional[int]) -> int:
    if max_memory is None:
        return default_max_memory()
    return check_int(max_memory, "max_memory", min_val=1, fix="pass the memory budget in bytes")


# ----------------------------------------------------------------------------- embedding
_WORKER_MODELS: Dict[ModelSource, tuple] = {}


def _worker_model(source: ModelSource, n_threads: int):
    """The model of ``source`` in this worker process, loaded once."""
    if source not in _WORKER_MODELS:
        if n_threads:
            try:
                import torch

                torch.set_num_threads(n_threads)
            except ImportError:  # pragma: no cover
                pass
        _WORKER_MODELS.clear()  # one model per worker process
        _WORKER_MODELS[source] = source.load()
    return _WORKER_MODELS[source]


def _embed_batch(module, model, tone_set, padding, start: int, stop: int, name: str,
                 call_size: Optional[int] = None) -> np.ndarray:
    """The embeddings of tones ``[start, stop)``: one model call, or calls of ``call_size`` tones
    when the shard is larger (the memory budget)."""
    if call_size is not None and call_size < stop - start:
        return np.concatenate([_embed_batch(module, model, tone_set, padding, a, min(a + call_size, stop), name)
                               for a in range(start, stop, call_size)])
    from gear.validate import call_scene_embeddings, render_tones

    audio = render_tones(tone_set, padding, indices=np.arange(start, stop))
    try:
        return call_scene_embeddings(module, model, audio, module_name=name)
    except SubmissionError as error:
        raise SubmissionError(error.function, error.expected, f"{error.got} (tones {start}..{stop - 1})", error.fix,
                              kind=error.kind, user_traceback=error.user_traceback) from error


def _on_worker(error: GearError) -> GearError:
    """``error`` with the Dask worker it happened on named (unchanged outside a Dask worker)."""
    try:
        from distributed import get_worker

        where = get_worker().name
    except (ImportError, ValueError):
        return error
    if isinstance(error, SubmissionError):
        return SubmissionError(f"{error.function} on Dask worker {where!r}", error.expected, error.got, error.fix,
                               kind=error.kind, user_traceback=error.user_traceback)
    return type(error)(f"on Dask worker {where!r}: {error}")


def _worker_job(source: ModelSource, tone_set, padding, start: int, stop: int, n_threads: int,
                call_size: Optional[int] = None):
    """One job (joblib or Dask): embed tones ``[start, stop)`` with the worker's copy of the model."""
    try:
        module, model = _worker_model(source, n_threads)
        return start, stop, _embed_batch(module, model, tone_set, padding, start, stop, source.name, call_size)
    except GearError as error:
        raise _on_worker(error) from error


def _worker_prepare(source: ModelSource, tone_set, padding, max_dim: int, check_deterministic: bool):
    """On a Dask worker, before the shards: load the model, check its size and determinism;
    ``(padding, dim)``."""
    try:
        module, model = _worker_model(source, 1)
        check_size(model.scene_embedding_size, max_dim=max_dim, module_name=source.name)
        padding = padding if padding is not None else _native(tone_set, model)
        if check_deterministic:
            check_determinism(module, model, tone_set, padding, module_name=source.name)
        return padding, int(model.scene_embedding_size)
    except GearError as error:
        raise _on_worker(error) from error


def _dask_stream(client, source, tone_set, padding, todo, call_size):
    """Submit one Dask task per batch; yield ``(start, stop, array)`` as tasks finish. A task whose
    worker dies is rerun on another worker by the scheduler."""
    from distributed import as_completed

    token = os.urandom(4).hex()
    futures = [client.submit(_worker_job, source, tone_set, padding, start, stop, 1, call_size, pure=False, retries=1,
                             key=f"gear-embed-{source.name}-{start}-{stop}-{token}") for start, stop in todo]
    for future in as_completed(futures):
        yield future.result()
    from gear.distributed import report_reruns

    report_reruns(client, futures, what=f"{source.name} embedding")


def _cached(cache: Optional[EmbeddingCache], plan, out: np.ndarray) -> List[Tuple[int, int]]:
    """Fill ``out`` from the cache; the batches still to compute."""
    todo = []
    for start, stop in plan:
        cached = cache.load(start, stop) if cache is not None else None
        if cached is not None and cached.shape == (stop - start, out.shape[1]) and cached.dtype == np.float32:
            out[start:stop] = cached
        else:
            todo.append((start, stop))
    return todo


def _stream(source, tone_set, padding, todo, *, loaded, n_jobs, call_size):
    if n_jobs == 1:
        module, model = loaded
        return ((start, stop, _embed_batch(module, model, tone_set, padding, start, stop, source.name, call_size))
                for start, stop in todo)
    import joblib

    workers = _joblib_workers(n_jobs)
    n_threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    return joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        joblib.delayed(_worker_job)(source, tone_set, padding, start, stop, n_threads, call_size)
        for start, stop in todo
    )


def _joblib_workers(n_jobs: int) -> int:
    import joblib

    return max(1, joblib.effective_n_jobs(n_jobs))


def _native(tone_set, model):
    from gear.validate import Padding

    rate = int(model.sample_rate)
    n = tone_set.n_samples(rate)
    return Padding.to_length(rate, n, n, "the native tone length")


def _cached_dim(cache: Optional[EmbeddingCache], plan) -> Optional[int]:
    """The embedding size recorded by a cached batch, if any batch is readable."""
    if cache is None:
        return None
    for start, stop in cache.completed(plan):
        array = cache.load(start, stop)
        if array is not None and array.ndim == 2:
            return int(array.shape[1])
    return None


def embed(
    source: ModelSource,
    tone_set,
    padding=None,
    *,
    dim: Optional[int] = None,
    cache: Optional[EmbeddingCache] = None,
    batch_size: int = 250,
    n_jobs: int = 1,
    loaded=None,
    max_dim: int = DEFAULT_MAX_DIM,
    check_deterministic: bool = True,
    progress: Optional[Callable[..., Iterable]] = None,
    client=None,
    max_memory: Optional[int] = None,
) -> EmbeddingRun:
    """Scene embeddings of every tone, batch by batch, resumable through ``cache``.

    Parameters
    ----------
    source : ModelSource
    tone_set : synth.ToneSet
    padding : gear.validate.Padding, optional
        Sample rate and length at which the tones are fed (default: the native tone length at
        the model's rate).
    dim : int, optional
        ``scene_embedding_size`` (default: read from the cache, else from the model).
    cache : EmbeddingCache, optional
        Finished batches are read from and written to it (each as soon as it is done).
    batch_size : int
        Tones per shard: the unit of the cache, of the jobs and of the progress bar, and the
        most tones per model call.
    n_jobs : int
        1: in this process. Otherwise joblib jobs (``-1``: all cores), one per batch; each
        worker loads the model once. The active joblib backend takes the jobs.
    loaded : (module, model), optional
        The model, already loaded (else loaded here, only when a batch is missing).
    max_dim : int
        Largest accepted ``dim`` (:func:`check_size`).
    check_deterministic : bool
        Run :func:`check_determinism` before embedding (when a batch is missing).
    progress : callable(iterable, total) -> iterable, optional
        Wraps the stream of finished batches (the CLI passes tqdm).
    client : distributed.Client, optional
        Embed on this Dask cluster: one task per batch (a shard), each worker loading the model
        once; the checks run on a worker too, so the model files need only be where the workers
        run. Finished batches go to the cache here, as they arrive.
    max_memory : int, optional
        Memory budget of the model calls in bytes (default :func:`default_max_memory`, a quarter
        of the RAM), per process that embeds (split between joblib jobs; each Dask worker's
        own): a shard is embedded in calls of at most :func:`tones_per_call` tones, so a budget
        that holds a whole shard (the default run's) leaves the calls and outputs unchanged, and
        the cache, keyed by shard, is shared whatever the budget.

    Returns
    -------
    EmbeddingRun
    """
    max_memory = _check_memory(max_memory)
    if client is not None:
        return _embed_on_cluster(client, source, tone_set, padding, dim=dim, cache=cache, batch_size=batch_size,
                                 max_dim=max_dim, check_deterministic=check_deterministic, progress=progress,
                                 max_memory=max_memory)
    if check_int(n_jobs, "n_jobs", min_val=-1, fix="pass a positive number of jobs, or -1 for all cores") == 0:
        raise ParameterError("n_jobs == 0; pass a positive number of jobs, or -1 for all cores")
    plan = batches(tone_set.n_sounds, batch_size)
    if dim is None and loaded is None:
        dim = _cached_dim(cache, plan)
    if dim is None:
        loaded = loaded if loaded is not None else source.load()
        dim = int(loaded[1].scene_embedding_size)
    check_size(dim, max_dim=max_dim, module_name=source.name)
    out = np.empty((tone_set.n_sounds, dim), dtype=np.float32)
    todo = _cached(cache, plan, out)
    if todo:
        loaded = loaded if loaded is not None else source.load()
        padding = padding if padding is not None else _native(tone_set, loaded[1])
        workers = 1 if n_jobs == 1 else _joblib_workers(n_jobs)
        call_size = tones_per_call(padding, dim, max_memory // workers, module_name=source.name)
        if check_deterministic:
            check_determinism(*loaded, tone_set, padding, module_name=source.name)
        _collect(_stream(source, tone_set, padding, todo, loaded=loaded, n_jobs=n_jobs, call_size=call_size), out,
                 cache, progress=progress, total=len(todo))
    return _finish(source, out, len(todo))


def _collect(stream, out: np.ndarray, cache: Optional[EmbeddingCache], *, progress, total: int) -> None:
    """Put each finished batch ``(start, stop, array)`` of ``stream`` into ``out`` and the cache, as it arrives."""
    if progress is not None:
        stream = progress(stream, total=total)
    for start, stop, array in stream:
        out[start:stop] = array
        if cache is not None:
            cache.store(start, stop, array)


def _embed_on_cluster(client, source, tone_set, padding, *, dim, cache, batch_size, max_dim, check_deterministic,
                      progress, max_memory) -> EmbeddingRun:
    """:func:`embed` on a Dask cluster (see its ``client`` parameter)."""
    plan = batches(tone_set.n_sounds, batch_size)
    dim = dim if dim is not None else _cached_dim(cache, plan)
    todo = None
    if dim is not None:
        out = np.empty((tone_set.n_sounds, dim), dtype=np.float32)
        todo = _cached(cache, plan, out)
    if todo is None or todo:
        padding, dim = client.submit(_worker_prepare, source, tone_set, padding, max_dim, check_deterministic,
                                     pure=False).result()
        if todo is None:
            out = np.empty((tone_set.n_sounds, dim), dtype=np.float32)
            todo = _cached(cache, plan, out)
    call_size = tones_per_call(padding, dim, max_memory, module_name=source.name) if todo else None
    _collect(_dask_stream(client, source, tone_set, padding, todo, call_size), out, cache, progress=progress,
             total=len(todo))
    return _finish(source, out, len(todo))


def _finish(source: ModelSource, out: np.ndarray, n_embedded: int) -> EmbeddingRun:
    """The :class:`EmbeddingRun` of a finished embedding, with the constant-embedding check."""
    flags, notes = [], []
    if constant_embedding(out):
        flags.append("constant-embedding")
        notes.append(f"{source.name}: every tone gets (nearly) the same embedding (largest range of a dimension "
                     f"<= {CONSTANT_TOLERANCE:g} x its largest value): the model hears nothing of these tones, or "
                     f"its output is broken")
        warnings.warn(notes[-1], ConstantEmbeddingWarning, stacklevel=3)
    return EmbeddingRun(out, n_embedded, flags, notes)


def model_cache(spec, tone_set, *, models_dir: Optional[os.PathLike] = None, cache_dir: Optional[os.PathLike] = None,
                **extra) -> EmbeddingCache:
    """The embedding cache of a registered model on a tone set (see :func:`embed_model`);
    ``extra`` parts (e.g. ``layer=...``) make the key of another array of the same run, which
    never mixes with the model's scene embeddings."""
    with lower_layer_errors():
        ok, where = spec.can_run(models_dir)
        if not ok:
            raise ParameterError(f"model {spec.name!r} cannot run on this machine: {where}")
        weights_path = where if Path(where).exists() else None
        key, meta = cache_key(
            model=spec.name,
            module=spec.module,
            load_kwargs=list(spec.load_kwargs),
            weights=fingerprint_path(weights_path),
            tone_set=tone_set.config_hash(),
            tone_set_config=tone_set.config(),
            **extra,
        )
    return EmbeddingCache(cache_dir or default_cache_dir(), key, meta)


def embed_model(
    spec,
    tone_set,
    *,
    models_dir: Optional[os.PathLike] = None,
    cache_dir: Optional[os.PathLike] = None,
    use_cache: bool = True,
    batch_size: int = 250,
    max_dim: int = DEFAULT_MAX_DIM,
    progress: Optional[Callable] = None,
    loaded=None,
    client=None,
    max_memory: Optional[int] = None,
) -> EmbeddingRun:
    """Embed a tone set with a registered model (see :mod:`embeddings.registry`), cached.

    The cache key is a content hash of the model's name and module, its weights file's bytes,
    the tone set's configuration and parameters. Tones are fed at their native length; the
    model is loaded only when a batch is not in the cache.
    """
    cache = model_cache(spec, tone_set, models_dir=models_dir, cache_dir=cache_dir) if use_cache else None
    source = ModelSource("registry", spec.name, models_dir=None if models_dir is None else str(models_dir))
    return embed(source, tone_set, cache=cache, batch_size=batch_size, loaded=loaded, max_dim=max_dim,
                 progress=progress, client=client, max_memory=max_memory)
