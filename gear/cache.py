"""On-disk embedding cache, keyed by a content hash of (model, weights, tone set).

Layout: ``<root>/<key>/`` holds ``meta.json`` (what the key was made of) and one
``batch_<start>_<stop>.npy`` per embedded batch, each with a ``.sha256`` sidecar. Every file is
written atomically (temporary file, then rename), so an interrupted run leaves only complete
batches, and the next run embeds just the missing ones. A batch whose bytes do not match
its digest (a corrupt or truncated file) is detected, deleted, and recomputed.

Arrays are stored as ``.npy`` and read with ``allow_pickle=False``: the cache never unpickles.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Iterable, Optional, Tuple

import numpy as np

from embeddings.errors import EmbeddingError
from gear.files import atomic_write_bytes

__all__ = ["EmbeddingCache", "default_cache_dir", "fingerprint_path", "cache_key", "CorruptCacheWarning"]

log = logging.getLogger(__name__)

CACHE_ENV = "GEAR_CACHE_DIR"
#: Bump when the cache layout or an adapter's output convention changes.
CACHE_VERSION = 1


class CorruptCacheWarning(UserWarning):
    """A cached batch failed its checksum and is being recomputed."""


def default_cache_dir() -> Path:
    """``$GEAR_CACHE_DIR``, else ``~/.cache/gear``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gear"


def fingerprint_path(path: Optional[os.PathLike]) -> str:
    """SHA-256 of a weights file's bytes (for a folder: of every file's relative name and
    bytes, in sorted order).

    Returns ``"none"`` for no path.
    """
    if path is None or str(path) == "":
        return "none"
    path = Path(path)
    if not path.exists():
        raise EmbeddingError(f"weights path {str(path)!r} does not exist")
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(**parts) -> Tuple[str, dict]:
    """A stable key (hex SHA-256) for JSON-serialisable ``parts``; returns (key, parts)."""
    parts = dict(parts, cache_version=CACHE_VERSION)
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32], parts


class EmbeddingCache:
    """Batches of embeddings on disk, for one key.

    Parameters
    ----------
    root : path-like
        Cache root directory (see :func:`default_cache_dir`).
    key : str
        From :func:`cache_key`.
    meta : dict
        What the key was made of; written to ``meta.json`` for people to read.
    """

    def __init__(self, root: os.PathLike, key: str, meta: Optional[dict] = None):
        self.root = Path(root)
        self.key = key
        self.dir = self.root / key
        self.meta = meta or {}

    def _paths(self, start: int, stop: int) -> Tuple[Path, Path]:
        base = self.dir / f"batch_{start:06d}_{stop:06d}"
        return base.with_suffix(".npy"), base.with_suffix(".sha256")

    def load(self, start: int, stop: int) -> Optional[np.ndarray]:
        """The cached batch ``[start, stop)``, or None if absent or corrupt (then removed)."""
        data_path, digest_path = self._paths(start, stop)
        if not data_path.exists() or not digest_path.exists():
            return None
        data = data_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest_path.read_text().strip():
            warnings.warn(
                f"cached embeddings {data_path} are corrupt (checksum mismatch); recomputing them",
                CorruptCacheWarning,
                stacklevel=2,
            )
            data_path.unlink(missing_ok=True)
            digest_path.unlink(missing_ok=True)
            return None
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError:
            data_path.unlink(missing_ok=True)
            digest_path.unlink(missing_ok=True)
            return None
        if array.shape[0] != stop - start:
            data_path.unlink(missing_ok=True)
            digest_path.unlink(missing_ok=True)
            return None
        return array

    def store(self, start: int, stop: int, array: np.ndarray) -> None:
        """Write batch ``[start, stop)`` atomically (data first, digest last)."""
        if not self.dir.exists() or not (self.dir / "meta.json").exists():
            atomic_write_bytes(self.dir / "meta.json", json.dumps(self.meta, indent=2, sort_keys=True, default=str).encode())
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        data = buffer.getvalue()
        data_path, digest_path = self._paths(start, stop)
        atomic_write_bytes(data_path, data)
        atomic_write_bytes(digest_path, hashlib.sha256(data).hexdigest().encode())

    def completed(self, batches: Iterable[Tuple[int, int]]) -> list:
        """Which of ``batches`` are stored (files present; checksums are verified on load)."""
        return [b for b in batches if all(p.exists() for p in self._paths(*b))]

    def clear(self) -> None:
        if self.dir.exists():
            for path in self.dir.iterdir():
                path.unlink()
            self.dir.rmdir()
