"""Embed a tone set with a HEAR module, batch by batch, through the cache.

This is the batch layer: it takes an optional progress wrapper (the CLI passes tqdm);
the library stays quiet otherwise.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Callable, List, Optional, Tuple

import numpy as np

from gear.cache import EmbeddingCache, cache_key, default_cache_dir, fingerprint_path
from embeddings.errors import EmbeddingError

__all__ = ["batches", "embed_tone_set", "embed_model", "EmbeddingError"]

log = logging.getLogger(__name__)


def batches(n: int, batch_size: int) -> List[Tuple[int, int]]:
    """``[(0, b), (b, 2b), ...]`` covering ``range(n)``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise EmbeddingError(f"batch_size must be a positive integer, got {batch_size!r}")
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def _check_scene_output(output, n_expected: int, size: int, where: str) -> np.ndarray:
    import torch

    if isinstance(output, torch.Tensor):
        if output.dtype != torch.float32:
            raise EmbeddingError(
                f"{where}.get_scene_embeddings returned dtype {output.dtype}; the HEAR API expects "
                f"torch.float32 (cast with .float() in the submission)"
            )
        array = output.detach().cpu().numpy()
    elif isinstance(output, np.ndarray):
        if output.dtype != np.float32:
            raise EmbeddingError(
                f"{where}.get_scene_embeddings returned dtype {output.dtype}; expected float32"
            )
        array = output
    else:
        raise EmbeddingError(
            f"{where}.get_scene_embeddings returned {type(output).__name__}; expected a float32 tensor"
        )
    if array.shape != (n_expected, size):
        raise EmbeddingError(
            f"{where}.get_scene_embeddings returned shape {tuple(array.shape)}; expected "
            f"(n_sounds, scene_embedding_size) = ({n_expected}, {size})"
        )
    if not np.all(np.isfinite(array)):
        raise EmbeddingError(f"{where}.get_scene_embeddings returned NaN or Inf values")
    return array


def embed_tone_set(
    module: ModuleType,
    model,
    tone_set,
    *,
    batch_size: int = 250,
    cache: Optional[EmbeddingCache] = None,
    progress: Optional[Callable] = None,
) -> np.ndarray:
    """Scene embeddings of every tone, synthesised at ``model.sample_rate``.

    Parameters
    ----------
    module : module
        A HEAR module (``get_scene_embeddings``).
    model : object
        Returned by ``module.load_model``; has ``sample_rate`` and ``scene_embedding_size``.
    tone_set : synth.ToneSet
    batch_size : int
        Sounds per call to ``get_scene_embeddings``.
    cache : EmbeddingCache, optional
        Finished batches are stored there and reused (resumable).
    progress : callable, optional
        Wraps the batch iterator (e.g. ``functools.partial(tqdm, desc=name)``).

    Returns
    -------
    np.ndarray, shape (n_sounds, scene_embedding_size), float32
    """
    import torch

    sample_rate = int(model.sample_rate)
    size = int(model.scene_embedding_size)
    where = getattr(module, "__name__", str(module))
    plan = batches(tone_set.n_sounds, batch_size)
    out = np.empty((tone_set.n_sounds, size), dtype=np.float32)
    todo = []
    for start, stop in plan:
        cached = cache.load(start, stop) if cache is not None else None
        if cached is not None and cached.shape == (stop - start, size):
            out[start:stop] = cached
        else:
            todo.append((start, stop))
    iterator = progress(todo) if progress is not None and todo else todo
    for start, stop in iterator:
        audio = torch.from_numpy(tone_set.render(sample_rate, indices=np.arange(start, stop)))
        with torch.inference_mode():
            output = module.get_scene_embeddings(audio, model)
        array = _check_scene_output(output, stop - start, size, where)
        out[start:stop] = array
        if cache is not None:
            cache.store(start, stop, array)
    return out


def embed_model(
    spec,
    tone_set,
    *,
    models_dir: Optional[os.PathLike] = None,
    cache_dir: Optional[os.PathLike] = None,
    use_cache: bool = True,
    batch_size: int = 250,
    progress: Optional[Callable] = None,
    loaded=None,
) -> np.ndarray:
    """Embed a tone set with a registered model (see :mod:`embeddings.registry`), cached.

    The cache key is a content hash of the model's name and module, its weights file's bytes,
    the tone set's configuration and parameters, and the model's sample rate.

    Parameters
    ----------
    loaded : (module, model), optional
        An already loaded model (saves the load when the cache is complete it is not used).
    """
    ok, where = spec.can_run(models_dir)
    if not ok:
        raise EmbeddingError(f"model {spec.name!r} cannot run on this machine: {where}")
    weights_path = where if Path(where).exists() else None
    key, meta = cache_key(
        model=spec.name,
        module=spec.module,
        load_kwargs=list(spec.load_kwargs),
        weights=fingerprint_path(weights_path),
        tone_set=tone_set.config_hash(),
        tone_set_config=tone_set.config(),
    )
    cache = EmbeddingCache(cache_dir or default_cache_dir(), key, meta) if use_cache else None
    if cache is not None:
        plan = batches(tone_set.n_sounds, batch_size)
        if len(cache.completed(plan)) == len(plan):
            parts = [cache.load(*b) for b in plan]
            if all(p is not None for p in parts):
                return np.concatenate(parts).astype(np.float32, copy=False)
    module, model = loaded if loaded is not None else spec.load(models_dir)
    return embed_tone_set(module, model, tone_set, batch_size=batch_size, cache=cache, progress=progress)
