"""The project's one atomic file writer (every module of ``gear`` that writes a file uses it)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_save_array"]


@contextlib.contextmanager
def _atomic(path: os.PathLike) -> Iterator:
    """A binary handle on a temporary file beside ``path``, flushed to disk and renamed over
    ``path`` when the block ends; removed, with ``path`` untouched, when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, flushed to
    disk, then renamed over ``path``. An interruption leaves either the old file or the new
    one, never a partial file."""
    with _atomic(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_array(path: os.PathLike, array) -> Path:
    """``np.save`` of ``array`` (no pickles) to ``path`` atomically, streamed to the temporary file
    (no in-memory copy of a large array)."""
    import numpy as np

    with _atomic(path) as handle:
        np.save(handle, array, allow_pickle=False)
    return Path(path)
