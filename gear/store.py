"""The results directory: the one module that reads and writes it.

Layout (stable; users script against the CSV files and ``models/``)::

    OUT/run.json                        tone set and analysis settings shared by every entry
    OUT/scores.csv                      model,parameter,median_abs_log_ratio,iqr,ci_low,ci_high,n
    OUT/leaderboard.csv                 one ranked row per entry
    OUT/report.html                     the interactive report
    OUT/models/<name>/entry.json        provenance and the SHA-256 of every file of the entry
    OUT/models/<name>/result.json       scores, warnings, flags, description
    OUT/models/<name>/result.npz        isomap (n, 3) and log-ratios per parameter
    OUT/models/<name>/embedding.npy     the scene embeddings (n_sounds, dim), float32
    OUT/models/<name>/submission.json   (submissions) module, weights, validation findings
    OUT/models/<name>/tones.csv         (submissions) what the model heard
    OUT/models/<model>%2F<layer>/       a layer of a registry model (``gear run --layers``): the
                                        entry ``<model>/<layer>``, same files as any entry
    OUT/.gear/                          the store's own bookkeeping (journal, staging, trash, lock)

Guarantees
----------
* **One settings rule** (:meth:`ResultsStore.check_settings`): every entry of a directory was made
  with the same tone set and analysis settings (those of ``run.json``; ``batch_size`` may differ).
* **Entries are written whole or not at all.** A new entry is written into
  ``.gear/staging/`` with its manifest (``entry.json``) last, then moved into ``models/`` by a
  rename. Each commit is journaled: ``.gear/journal.json`` lists the renames before any is made,
  and ``.gear/stale`` says that ``scores.csv``, ``leaderboard.csv``, ``run.json`` and the report do
  not yet reflect ``models/``. The next command of any kind (:meth:`ResultsStore.recover`, called
  by every entry point) completes the renames of an interrupted commit, rewrites the outputs and
  removes staging and trash leftovers. A failure that raises (not a kill) rolls the commit back.
* **Checksums on read.** Every file listed in an entry's manifest is verified when it is read; a
  corrupt entry is named (:class:`CorruptEntryError`, or a :class:`CorruptEntryWarning` when it is
  skipped so that the other entries go on), recomputed by ``gear run`` (registry entries) or removed
  by ``gear remove``.
* **Provenance and unique names.** Each entry records whether it came from a registry model
  (``gear run``) or a HEAR submission (``gear add-submission``). A name belongs to one kind: a
  command that would write over an entry of the other kind raises :class:`gear.errors.StoreError`
  with a free name to use instead; nothing is overwritten.

Nothing here unpickles anything (``allow_pickle=False`` everywhere).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from gear.errors import ParameterError, StoreError
from gear.files import atomic_save_array, atomic_write_bytes, atomic_write_text
from gear.results import SCORE_COLUMNS, ModelResult

__all__ = [
    "ResultsStore",
    "StagedEntry",
    "EntryInfo",
    "CorruptEntryError",
    "CorruptEntryWarning",
    "ENTRY_FILE",
    "REGISTRY",
    "SUBMISSION",
    "LEADERBOARD_FILE",
    "LEADERBOARD_COLUMNS",
    "write_scores_csv",
    "leaderboard_rows",
    "parse_name",
    "layer_name",
    "split_layer",
    "entry_folder_name",
    "entry_name",
]

log = logging.getLogger(__name__)

ENTRY_FILE = "entry.json"
ENTRY_FORMAT = "gear-entry/1"
RESULT_JSON = "result.json"
RESULT_NPZ = "result.npz"
EMBEDDING_FILE = "embedding.npy"
SUBMISSION_FILE = "submission.json"
LEADERBOARD_FILE = "leaderboard.csv"
RUN_FILE = "run.json"
SCORES_FILE = "scores.csv"
REPORT_FILE = "report.html"
#: The two kinds of entry (``provenance.kind``).
REGISTRY = "registry"
SUBMISSION = "submission"
#: Columns of ``leaderboard.csv`` before the per-factor ones (``normalised_<factor>``, ``fraction_of_chance``,
#: ``median_abs_log_ratio_<factor>``, then ``flags`` and ``added``).
LEADERBOARD_COLUMNS = ("rank", "model", "kind", "module", "version", "weights_sha256", "embedding_dim", "score")
#: Output files derived from ``models/`` (rewritten together; restored together on a rollback).
OUTPUT_FILES = (RUN_FILE, SCORES_FILE, LEADERBOARD_FILE, REPORT_FILE)
#: Settings of a run that every entry of a directory shares (``batch_size`` may differ).
SHARED_SETTINGS = ("preset", "grid_kwargs", "isomap_neighbors", "isomap_components", "n_neighbors", "scaling",
                   "scales", "n_bootstrap", "random_state", "stimuli")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSIONED = re.compile(r"^(?P<base>[A-Za-z0-9][A-Za-z0-9._-]{0,99})@(?P<version>[1-9][0-9]*)$")
#: Separator of a model and one of its layers in an entry name (``naive/log_mel``).
LAYER_SEPARATOR = "/"
#: How the separator is written in the entry's folder name (percent-encoding, RFC 3986): no
#: valid name holds '%', so the folder of ``naive/log_mel`` (``naive%2Flog_mel``) is never the
#: folder of another name, and decoding gives the name back.
_LAYER_FOLDER_SEPARATOR = "%2F"
_BOOKKEEPING = ".gear"
#: Fault injection for the store's crash tests: ``GEAR_STORE_CRASH_AT=<step>`` ends the process
#: with ``os._exit(137)`` (as ``kill -9`` would: no cleanup runs) when that commit step is reached.
CRASH_ENV = "GEAR_STORE_CRASH_AT"


class CorruptEntryError(StoreError):
    """A stored entry fails its checksum or cannot be parsed.

    Attributes
    ----------
    name : str
        The entry.
    path : pathlib.Path
        The file that failed.
    """

    def __init__(self, name: str, path: Path, reason: str):
        self.name = name
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"stored entry {name!r} is corrupt: {path} {reason}. Recompute it (`gear run --models "
            f"{' --layers '.join(split_layer(name)) if split_layer(name)[1] else name}` for a "
            f"registry model, `gear add-submission` again for a submission) or remove it (`gear remove {name} "
            f"--out {path.parents[2]}`)"
        )

    def __reduce__(self):
        return (type(self), (self.name, self.path, self.reason))


class CorruptEntryWarning(UserWarning):
    """A corrupt entry was skipped so that the other entries could be used."""


# ----------------------------------------------------------------------------- names
def layer_name(model: str, layer: str) -> str:
    """The entry name of one layer of a model: ``layer_name("naive", "log_mel") == "naive/log_mel"``.

    Raises
    ------
    ParameterError
        ``model`` or ``layer`` is not a valid name (1-100 letters, digits, '.', '_' or '-').
    """
    name = f"{model}{LAYER_SEPARATOR}{layer}"
    parse_name(name)
    return name


def split_layer(name: str) -> Tuple[str, Optional[str]]:
    """``"naive/log_mel" -> ("naive", "log_mel")``; ``"naive" -> ("naive", None)``."""
    model, _, layer = name.partition(LAYER_SEPARATOR)
    return model, (layer or None)


def entry_folder_name(name: str) -> str:
    """The folder of entry ``name`` under ``models/`` (``naive/log_mel`` -> ``naive%2Flog_mel``)."""
    return name.replace(LAYER_SEPARATOR, _LAYER_FOLDER_SEPARATOR)


def entry_name(folder_name: str) -> str:
    """The entry whose folder is ``folder_name`` (inverse of :func:`entry_folder_name`)."""
    return folder_name.replace(_LAYER_FOLDER_SEPARATOR, LAYER_SEPARATOR)


def parse_name(name: str) -> Tuple[str, int]:
    """``"foo@2" -> ("foo", 2)``; ``"foo" -> ("foo", 1)``; a layer entry ``"foo/conv1"`` (see
    :func:`layer_name`) -> ``("foo/conv1", 1)``.

    Raises
    ------
    ParameterError
        Not a valid entry name.
    """
    if isinstance(name, str) and name.count(LAYER_SEPARATOR) == 1:
        model, layer = name.split(LAYER_SEPARATOR)
        if _NAME.match(model) and _NAME.match(layer):
            return name, 1
    elif isinstance(name, str):
        match = _VERSIONED.match(name)
        if match:
            return match["base"], int(match["version"])
        if _NAME.match(name):
            return name, 1
    raise ParameterError(
        f"result name {name!r} is not valid: use 1-100 letters, digits, '.', '_' or '-', starting with a "
        f"letter or digit (versions are written NAME@2, NAME@3, ...; a model's layer MODEL/LAYER)"
    )


# ----------------------------------------------------------------------------- helpers
def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


def _json_bytes(payload) -> bytes:
    return json.dumps(payload, indent=2, default=_json_default).encode()


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=_json_default))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os._exit(137)


def _fmt(value) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str):
        return value
    return "" if value is None or not np.isfinite(value) else f"{float(value):.6g}"


def write_scores_csv(path: os.PathLike, results: Sequence[ModelResult]) -> Path:
    """Write ``scores.csv`` (columns :data:`gear.results.SCORE_COLUMNS`) atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    # A ``statistic`` column only when some factor is not scored by the log-ratio (gear.statistics).
    columns = SCORE_COLUMNS + (("statistic",) if any(row.get("statistic", "log_ratio") != "log_ratio"
                                                    for result in results for row in result.scores) else ())
    writer.writerow(columns)
    for result in results:
        for row in result.scores:
            writer.writerow([result.name] + [_fmt(row.get(c, "log_ratio")) for c in columns[1:]])
    return atomic_write_text(path, text.getvalue())


# ----------------------------------------------------------------------------- entries
@dataclasses.dataclass
class EntryInfo:
    """What the store knows about one entry without reading its arrays.

    Attributes
    ----------
    name : str
    kind : str
        :data:`REGISTRY` or :data:`SUBMISSION`.
    source : str
        The registry model name or the submission's module.
    folder : pathlib.Path
    manifest : dict
        The content of ``entry.json`` (empty for an entry written before manifests existed).
    submission : dict
        The content of ``submission.json`` (submissions only).
    """

    name: str
    kind: str
    source: str
    folder: Path
    manifest: dict
    submission: dict


class StagedEntry:
    """A new entry being written in ``.gear/staging/`` (moved into ``models/`` by a commit).

    Write the files with :meth:`write_result` and :meth:`write_file`; the manifest with the
    checksums of all of them is written by :meth:`ResultsStore.commit`.
    """

    def __init__(self, store: "ResultsStore", name: str, provenance: dict):
        self.store = store
        self.name = name
        self.provenance = dict(provenance)
        self.folder = store.bookkeeping / "staging" / uuid.uuid4().hex / entry_folder_name(name)
        self.folder.mkdir(parents=True)

    def write_file(self, filename: str, data: bytes) -> Path:
        """Write one file of the entry (bytes, atomically)."""
        if "/" in filename or filename in ("", ".", "..", ENTRY_FILE):
            raise ParameterError(f"entry file name {filename!r} is not allowed")
        return atomic_write_bytes(self.folder / filename, data)

    def write_json(self, filename: str, payload) -> Path:
        """Write one JSON file of the entry (NumPy scalars and paths converted; NaN as null)."""
        return self.write_file(filename, _json_bytes(payload))

    def write_result(self, result: ModelResult, embedding: Optional[np.ndarray] = None, *,
                     key: Optional[str] = None, flags: Sequence[str] = ()) -> None:
        """``result.npz``, ``result.json`` and (when given) ``embedding.npy``."""
        arrays = {"isomap": result.isomap}
        arrays.update({f"log_ratio__{k}": v for k, v in result.log_ratios.items()})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self.write_file(RESULT_NPZ, buffer.getvalue())
        if embedding is not None:
            atomic_save_array(self.folder / EMBEDDING_FILE, np.asarray(embedding, dtype=np.float32))
        meta = {
            "name": result.name,
            "description": result.description,
            "scores": result.scores,
            "warnings": result.warnings,
            "flags": list(flags),
            "normalised": result.normalised,
            "n_components": result.n_components,
            "embedding_dim": result.embedding_dim,
            "analysis_key": key,
        }
        self.write_json(RESULT_JSON, meta)

    def _write_manifest(self) -> None:
        files = sorted(p.name for p in self.folder.iterdir() if p.is_file() and not p.name.startswith("."))
        manifest = {
            "format": ENTRY_FORMAT,
            "name": self.name,
            "provenance": self.provenance,
            "created": _now(),
            "sha256": {name: _sha256_file(self.folder / name) for name in files},
        }
        atomic_write_bytes(self.folder / ENTRY_FILE, _json_bytes(manifest))


# ----------------------------------------------------------------------------- the store
class ResultsStore:
    """The results directory ``out_dir`` (see the module docstring).

    Parameters
    ----------
    out_dir : path-like
        The directory (created on the first commit).

    Notes
    -----
    Every command opens the store with :meth:`open`, which checks that ``out_dir`` can be
    used (:meth:`check_usable`) and completes an interrupted commit (:meth:`recover`) before any
    other work.
    """

    def __init__(self, out_dir: os.PathLike):
        self.out_dir = Path(out_dir)
        self.models_dir = self.out_dir / "models"
        self.bookkeeping = self.out_dir / _BOOKKEEPING
        self._report_writer: Optional[Callable[["ResultsStore", List[ModelResult]], None]] = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, out_dir: os.PathLike, *, writable: bool = True, report_writer=None) -> "ResultsStore":
        """The store of ``out_dir``, checked and recovered.

        Parameters
        ----------
        writable : bool
            Check that the directory can be written (every command that stores does this before
            any work; ``gear list`` does not).
        report_writer : callable(store, results), optional
            Writes ``report.html`` from the entries (see :meth:`refresh_outputs`).

        Raises
        ------
        StoreError
            ``out_dir`` is a file, or cannot be created or written.
        """
        store = cls(out_dir)
        store._report_writer = report_writer
        store.check_usable(writable=writable)
        if writable:
            store.recover()
        return store

    def check_usable(self, *, writable: bool = True) -> None:
        """Raise :class:`StoreError` unless ``out_dir`` is (or can be made) a writable folder."""
        out = self.out_dir
        if out.exists() and not out.is_dir():
            raise StoreError(f"--out {str(out)!r} is a file, not a folder; pass a folder (it is created if needed)")
        for parent in [out, *out.parents]:
            if parent.exists():
                if not parent.is_dir():
                    raise StoreError(f"--out {str(out)!r} cannot be created: {str(parent)!r} is a file")
                break
        if not writable:
            return
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / f".gear-write-test.{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            hint = "it is read-only" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else reason
            raise StoreError(
                f"--out {str(out)!r} cannot be written ({hint}); pass a folder you can write to"
            ) from None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """An exclusive lock on the directory for the duration of a commit (POSIX ``flock``)."""
        self.bookkeeping.mkdir(parents=True, exist_ok=True)
        with open(self.bookkeeping / "lock", "a+b") as handle:
            try:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - Windows: no cross-process lock
                pass
            yield

    # ------------------------------------------------------------------ reading
    def names(self) -> List[str]:
        """Names of the entries (folders of ``models/`` with a manifest or a result), sorted."""
        if not self.models_dir.is_dir():
            return []
        return sorted(entry_name(p.name) for p in self.models_dir.iterdir()
                      if p.is_dir() and ((p / ENTRY_FILE).exists() or (p / RESULT_JSON).exists()))

    def folder(self, name: str) -> Path:
        """The folder of entry ``name`` (see :func:`entry_folder_name`)."""
        return self.models_dir / entry_folder_name(name)

    def info(self, name: str) -> EntryInfo:
        """Provenance of one entry (no checksum verification).

        Raises
        ------
        StoreError
            No such entry.
        """
        folder = self.folder(name)
        if not (folder / ENTRY_FILE).exists() and not (folder / RESULT_JSON).exists():
            listing = ", ".join(self.names()) or "none"
            raise StoreError(f"no stored result named {name!r} in {str(self.out_dir)!r}; stored results: {listing}")
        manifest = self._read_json(name, folder / ENTRY_FILE) if (folder / ENTRY_FILE).exists() else {}
        submission = self._read_json(name, folder / SUBMISSION_FILE) if (folder / SUBMISSION_FILE).exists() else {}
        provenance = manifest.get("provenance") or {}
        kind = provenance.get("kind") or (SUBMISSION if submission else REGISTRY)
        source = provenance.get("module") if kind == SUBMISSION else provenance.get("model")
        source = source or submission.get("module") or name
        return EntryInfo(name, kind, source, folder, manifest, submission)

    def _read_json(self, name: str, path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise CorruptEntryError(name, path, f"cannot be parsed ({type(error).__name__}: {error})") from None

    def verify(self, name: str, files: Optional[Iterable[str]] = None) -> EntryInfo:
        """Check the SHA-256 of the entry's files (all of them, or ``files``) against its manifest.

        Raises
        ------
        CorruptEntryError
            A file is missing, truncated or changed.
        """
        info = self.info(name)
        expected = info.manifest.get("sha256")
        if expected is None:  # an entry written before manifests: parse what we read instead
            return info
        for filename in (expected if files is None else [f for f in files if f in expected]):
            path = info.folder / filename
            if not path.exists():
                raise CorruptEntryError(name, path, "is missing")
            if _sha256_file(path) != expected[filename]:
                raise CorruptEntryError(name, path, "does not match its checksum (truncated or changed)")
        return info

    def corrupt(self) -> Dict[str, CorruptEntryError]:
        """Every entry that fails :meth:`verify`, with its error."""
        bad = {}
        for name in self.names():
            try:
                self.verify(name)
            except CorruptEntryError as error:
                bad[name] = error
        return bad

    def load_result(self, name: str) -> ModelResult:
        """The :class:`ModelResult` of one entry (verified).

        Raises
        ------
        CorruptEntryError
        """
        info = self.verify(name, [RESULT_JSON, RESULT_NPZ])
        meta = self._read_json(name, info.folder / RESULT_JSON)
        try:
            with np.load(info.folder / RESULT_NPZ, allow_pickle=False) as arrays:
                log_ratios = {k.split("__", 1)[1]: arrays[k] for k in arrays.files if k.startswith("log_ratio__")}
                isomap = arrays["isomap"]
            scores = [{k: (np.nan if v is None else v) for k, v in row.items()} for row in meta["scores"]]
            return ModelResult(
                name=meta["name"], description=meta["description"], isomap=isomap, log_ratios=log_ratios,
                scores=scores, warnings=meta["warnings"], n_components=meta["n_components"],
                embedding_dim=meta["embedding_dim"], flags=list(meta.get("flags", [])),
                normalised={k: (np.nan if v is None else float(v)) for k, v in meta.get("normalised", {}).items()},
            )
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise CorruptEntryError(name, info.folder / RESULT_NPZ,
                                    f"cannot be read ({type(error).__name__}: {error})") from None

    def analysis_key(self, name: str) -> Optional[str]:
        """The ``analysis_key`` stored with an entry, or None (absent, unreadable or corrupt)."""
        try:
            info = self.verify(name)
            return self._read_json(name, info.folder / RESULT_JSON).get("analysis_key")
        except StoreError:
            return None

    def load_embedding(self, name: str) -> np.ndarray:
        """The stored embedding of an entry (verified), ``(n_sounds, dim)`` float32.

        Raises
        ------
        CorruptEntryError
        StoreError
            The entry has no stored embedding.
        """
        info = self.verify(name, [EMBEDDING_FILE])
        path = info.folder / EMBEDDING_FILE
        if not path.exists():
            raise StoreError(f"stored entry {name!r} has no embedding ({path} is absent)")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise CorruptEntryError(name, path, f"cannot be read ({type(error).__name__}: {error})") from None

    def load_results(self, *, names: Optional[Sequence[str]] = None) -> List[ModelResult]:
        """Every readable entry's result; a corrupt entry is skipped with a
        :class:`CorruptEntryWarning` naming it (the others go on)."""
        results = []
        for name in self.names() if names is None else names:
            try:
                results.append(self.load_result(name))
            except CorruptEntryError as error:
                warnings.warn(str(error), CorruptEntryWarning, stacklevel=2)
        return results

    # ------------------------------------------------------------------ settings
    def read_settings(self) -> Optional[dict]:
        """The ``config`` of ``run.json`` (a dict of :class:`gear.pipeline.GearConfig` fields), or None."""
        path = self.out_dir / RUN_FILE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise StoreError(f"{path} cannot be read ({type(error).__name__}: {error}); remove it and rerun "
                             f"`gear run --out {self.out_dir}` (the stored entries are kept)") from None

    def check_settings(self, config: dict, *, replacing: Sequence[str] = ()) -> bool:
        """The one settings rule of a results directory.

        Every entry shares the settings of ``run.json`` (:data:`SHARED_SETTINGS`). A command
        whose settings differ may go on only when every stored entry is a registry entry that
        it recomputes (``replacing``); then the old entries are removed by its first commit.

        Parameters
        ----------
        config : dict
            The command's settings (``dataclasses.asdict(GearConfig)``).
        replacing : sequence of str
            Registry entries the command will write.

        Returns
        -------
        bool
            True when the settings differ from the stored ones (the old entries must go).

        Raises
        ------
        ParameterError
            The settings differ and the directory holds entries the command would not replace.
        """
        stored = self.read_settings()
        names = self.names()
        if stored is None or not names:
            if names and stored is None:
                raise ParameterError(
                    f"{str(self.out_dir)!r} holds results but no run.json, so their tone set is unknown; "
                    f"write to a new --out directory"
                )
            return False
        differ = [f"{key}={_as_json(config.get(key))!r} (stored: {_as_json(stored.get(key))!r})"
                  for key in SHARED_SETTINGS if _as_json(config.get(key)) != _as_json(stored.get(key))]
        if not differ:
            return False
        kept = [n for n in names if n not in replacing or self.info(n).kind != REGISTRY]
        if kept:
            raise ParameterError(
                f"{str(self.out_dir)!r} holds results made with other settings ({', '.join(kept)}): "
                f"{'; '.join(differ)}. Results in one directory share the tone set and analysis settings: drop "
                f"these options, write to another --out, or `gear remove` those results first"
            )
        return True

    # ------------------------------------------------------------------ names and kinds
    def check_name_for(self, name: str, *, kind: str, source: str) -> None:
        """Refuse to write ``name`` over an entry of the other kind (or another submission's module).

        Raises
        ------
        StoreError
            With a free name to use instead.
        """
        if name not in self.names():
            return
        info = self.info(name)
        if info.kind == kind and (kind == REGISTRY or info.source == source):
            return
        what = (f"the result of GEAR's registered model {info.source!r}" if info.kind == REGISTRY
                else f"the submission of module {info.source!r}")
        if kind == REGISTRY:
            raise StoreError(
                f"{name!r} in {str(self.out_dir)!r} holds {what}; `gear run --models {name}` would write over it. "
                f"Remove it first (`gear remove {name} --out {self.out_dir}`) or write the run to another --out"
            )
        raise StoreError(
            f"{name!r} in {str(self.out_dir)!r} holds {what}; choose another --name, e.g. {self.free_name(name)!r}"
        )

    def free_name(self, base: str, *, reserved: Iterable[str] = ()) -> str:
        """The first of ``base-2``, ``base-3``, ... that is neither stored nor ``reserved``."""
        taken = set(self.names()) | set(reserved)
        stem = base.split("@")[0]
        for i in range(2, 10_000):
            candidate = f"{stem}-{i}"
            if candidate not in taken:
                return candidate
        raise StoreError(f"no free name like {stem!r}-N in {str(self.out_dir)!r}")  # pragma: no cover

    # ------------------------------------------------------------------ writing
    def stage(self, name: str, provenance: dict) -> StagedEntry:
        """A new entry written in staging (see :class:`StagedEntry`); :meth:`commit` moves it in."""
        parse_name(name)
        if provenance.get("kind") not in (REGISTRY, SUBMISSION):
            raise ParameterError(f"provenance kind {provenance.get('kind')!r}; use {REGISTRY!r} or {SUBMISSION!r}")
        return StagedEntry(self, name, provenance)

    def commit(self, *, put: Sequence[StagedEntry] = (), remove: Sequence[str] = (), settings: Optional[dict] = None,
               tone_set_config: Optional[dict] = None, refresh: bool = True) -> None:
        """Move staged entries into ``models/`` and take entries out, as one journaled step.

        Parameters
        ----------
        put : sequence of StagedEntry
            New entries; one of the same name is replaced (its old folder goes to the trash).
        remove : sequence of str
            Entries to delete.
        settings, tone_set_config : dict, optional
            What ``run.json`` records (``GearConfig`` fields and the tone set's config); kept
            as stored when not given.
        refresh : bool
            Rewrite the outputs now (else they are marked stale and rewritten by the next
            :meth:`refresh_outputs` or :meth:`recover`).

        Notes
        -----
        Steps (each a crash point of the store's tests): ``staged`` (manifests written),
        ``journal`` (journal written), ``rename:<name>`` (after each rename), ``renamed``,
        ``outputs`` (after the outputs), ``done`` (journal and stale marker removed). A kill
        at any step is completed by the next command; an exception during the outputs rolls the
        models change back and restores the previous outputs.
        """
        for entry in put:
            entry._write_manifest()
        _crash_point("staged")
        with self._lock():
            trash = self.bookkeeping / "trash" / uuid.uuid4().hex
            journal = {
                "id": trash.name,
                "put": [{"name": e.name, "staged": str(e.folder.relative_to(self.out_dir))} for e in put],
                "remove": list(remove),
                "trash": str(trash.relative_to(self.out_dir)),
                "run": None if settings is None else {"config": settings, "tone_set": tone_set_config},
            }
            saved = self._save_outputs()
            self._mark_stale()
            atomic_write_bytes(self.bookkeeping / "journal.json", _json_bytes(journal))
            _crash_point("journal")
            self._apply_journal(journal)
            _crash_point("renamed")
            if not refresh:
                self._finish(journal, keep_stale=True)
                return
            try:
                self._refresh_outputs_locked()
            except BaseException:
                self._roll_back(journal, saved)
                raise
            _crash_point("outputs")
            self._finish(journal)
            _crash_point("done")

    def _apply_journal(self, journal: dict) -> None:
        """Make the journal's renames (idempotent: each is skipped when already made)."""
        trash = self.out_dir / journal["trash"]
        if journal.get("run") is not None:
            self._write_run_json(journal["run"]["config"], journal["run"]["tone_set"])
        for name in journal["remove"]:
            folder = entry_folder_name(name)
            if (self.models_dir / folder).exists():
                trash.mkdir(parents=True, exist_ok=True)
                os.rename(self.models_dir / folder, trash / folder)
            _crash_point(f"rename:{name}")
        for item in journal["put"]:
            staged = self.out_dir / item["staged"]
            target = self.folder(item["name"])
            if not staged.exists():
                continue  # already moved in
            self.models_dir.mkdir(parents=True, exist_ok=True)
            if target.exists():
                trash.mkdir(parents=True, exist_ok=True)
                os.rename(target, trash / target.name)
            os.rename(staged, target)
            _crash_point(f"rename:{item['name']}")

    def _roll_back(self, journal: dict, saved: Dict[str, Optional[Tuple[bytes, int]]]) -> None:
        """Undo an applied journal after an exception: new entries out, old ones back, outputs restored."""
        trash = self.out_dir / journal["trash"]
        for item in journal["put"]:
            target = self.folder(item["name"])
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            if (trash / target.name).exists():
                os.rename(trash / target.name, target)
        for name in journal["remove"]:
            folder = entry_folder_name(name)
            if (trash / folder).exists() and not (self.models_dir / folder).exists():
                os.rename(trash / folder, self.models_dir / folder)
        self._restore_outputs(saved)
        (self.bookkeeping / "journal.json").unlink(missing_ok=True)
        (self.bookkeeping / "stale").unlink(missing_ok=True)
        self._clean_leftovers()

    def _finish(self, journal: dict, *, keep_stale: bool = False) -> None:
        (self.bookkeeping / "journal.json").unlink(missing_ok=True)
        if not keep_stale:
            (self.bookkeeping / "stale").unlink(missing_ok=True)
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        for folder in ("staging", "trash"):
            shutil.rmtree(self.bookkeeping / folder, ignore_errors=True)

    def _mark_stale(self) -> None:
        atomic_write_bytes(self.bookkeeping / "stale", b"outputs do not reflect models/ yet\n")

    def _save_outputs(self) -> Dict[str, Optional[Tuple[bytes, int]]]:
        saved = {}
        for name in OUTPUT_FILES:
            path = self.out_dir / name
            saved[name] = (path.read_bytes(), path.stat().st_mode) if path.exists() else None
        return saved

    def _restore_outputs(self, saved: Dict[str, Optional[Tuple[bytes, int]]]) -> None:
        for name, value in saved.items():
            path = self.out_dir / name
            if value is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_bytes(path, value[0])
                os.chmod(path, value[1] & 0o777)

    def recover(self) -> bool:
        """Complete an interrupted commit and remove leftovers; returns True if anything was done.

        Called by :meth:`open`, so by every command before its own work.
        """
        journal_path = self.bookkeeping / "journal.json"
        stale = (self.bookkeeping / "stale").exists()
        leftovers = any((self.bookkeeping / f).exists() for f in ("staging", "trash"))
        if not (journal_path.exists() or stale or leftovers):
            return False
        with self._lock():
            if journal_path.exists():
                try:
                    journal = json.loads(journal_path.read_text())
                except ValueError:  # a journal is written atomically; an unreadable one was never complete
                    journal = None
                if journal is not None:
                    log.info("completing an interrupted commit in %s", self.out_dir)
                    self._apply_journal(journal)
                journal_path.unlink(missing_ok=True)
            if (self.bookkeeping / "stale").exists():
                self._refresh_outputs_locked()
                (self.bookkeeping / "stale").unlink(missing_ok=True)
            self._clean_leftovers()
        return True

    def recover_if_writable(self) -> bool:
        """:meth:`recover` when the directory exists and can be written (read-only commands call this)."""
        if not self.out_dir.is_dir():
            return False
        try:
            self.check_usable(writable=True)
        except StoreError:
            return False
        return self.recover()

    # ------------------------------------------------------------------ outputs
    def refresh_outputs(self) -> List[ModelResult]:
        """Rewrite ``run.json``, ``scores.csv``, ``leaderboard.csv`` and ``report.html`` from the entries."""
        with self._lock():
            self._mark_stale()
            results = self._refresh_outputs_locked()
            (self.bookkeeping / "stale").unlink(missing_ok=True)
        return results

    def _refresh_outputs_locked(self) -> List[ModelResult]:
        results = self.load_results()
        settings = self.read_settings()
        if settings is not None:
            run = json.loads((self.out_dir / RUN_FILE).read_text())
            self._write_run_json(run["config"], run.get("tone_set"), [r.name for r in results])
        write_scores_csv(self.out_dir / SCORES_FILE, results)
        _crash_point("scores")
        rows = leaderboard_rows(results, {name: self.info(name) for name in self.names()})
        write_leaderboard_csv(self.out_dir / LEADERBOARD_FILE, rows)
        _crash_point("leaderboard")
        if self._report_writer is not None:
            if results:
                self._report_writer(self, results)
            else:
                (self.out_dir / REPORT_FILE).unlink(missing_ok=True)
        _crash_point("report")
        return results

    def _write_run_json(self, config: dict, tone_set_config: Optional[dict], models: Optional[List[str]] = None) -> None:
        if models is None:
            models = self.names()
        payload = {"config": config, "tone_set": tone_set_config, "models": list(models)}
        atomic_write_bytes(self.out_dir / RUN_FILE, _json_bytes(payload))

    def write_output(self, filename: str, data: bytes) -> Path:
        """Write a directory-level file derived from the entries (``gear score``'s CSV files)."""
        if "/" in filename or filename in OUTPUT_FILES or filename.startswith("."):
            raise ParameterError(f"output file name {filename!r} is not allowed")
        return atomic_write_bytes(self.out_dir / filename, data)

    def write_derived(self, name: str, filename: str, data: bytes) -> Path:
        """Write a file derived from an entry (e.g. ``gear score``'s card) into its folder.

        Derived files are not in the manifest: they are recomputed from the verified arrays.
        """
        self.verify(name)
        if "/" in filename or filename in (ENTRY_FILE, RESULT_JSON, RESULT_NPZ, EMBEDDING_FILE, SUBMISSION_FILE):
            raise ParameterError(f"derived file name {filename!r} is not allowed")
        return atomic_write_bytes(self.folder(name) / filename, data)


# ----------------------------------------------------------------------------- leaderboard
#: What the leaderboard ranks by (said on the page and in the README).
RANKING = ("the mean normalised neighbour score over the cause factors (0 = as good as an oracle whose neighbours "
           "are chosen in factor space, 1 = chance: random neighbours; K is 1.6 % of the tones, so the score compares "
           "across designs); lower is better")


def leaderboard_rows(results: Sequence[ModelResult], infos: Optional[Dict[str, EntryInfo]] = None) -> List[dict]:
    """One row per result, ranked by :data:`RANKING`.

    ``score`` is the mean normalised neighbour score over the cause factors
    (:func:`gear.pipeline.normalised_scores`), with ``normalised_<factor>`` beside it;
    ``fraction_of_chance`` is the former ranking (mean over the parameters of the median
    |log-ratio| divided by its chance level), kept for comparison. Rank 1 is the lowest score (ties
    share a rank; results without a score last). ``flags`` lists what the sanity checks found
    (``constant-embedding``, ``batch-dependent``).
    """
    infos = infos or {}
    rows = []
    for result in results:
        info = infos.get(result.name)
        submission = info.submission if info is not None else {}
        ratios, row = [], {}
        for score in result.scores:
            value = float(score.get("median_abs_log_ratio", np.nan))
            chance = float(score.get("chance", np.nan))
            row[f"median_abs_log_ratio_{score['parameter']}"] = value
            if score.get("statistic") == "agreement":  # higher is better: the error is 1 - agreement
                value, chance = 1.0 - value, 1.0 - chance
            if np.isfinite(value) and np.isfinite(chance) and chance > 0:
                ratios.append(value / chance)
        for factor, value in result.normalised.items():
            if factor != "mean":
                row[f"normalised_{factor}"] = float(value)
        row.update(
            model=result.name,
            kind=info.kind if info is not None else "",
            module=(info.source if info is not None and info.kind == SUBMISSION else "(gear run)"),
            version=submission.get("version") or "",
            weights_sha256=(submission.get("weights_sha256") or "")[:12],
            embedding_dim=result.embedding_dim,
            score=float(result.normalised.get("mean", np.nan)),
            fraction_of_chance=float(np.mean(ratios)) if ratios else np.nan,
            flags=" ".join(result.flags),
            added=submission.get("added", ""),
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


def leaderboard_columns(rows: Sequence[dict]) -> List[str]:
    """Columns of ``leaderboard.csv`` for these rows."""
    normalised, medians = [], []
    for row in rows:
        for key in row:
            if key.startswith("normalised_") and key not in normalised:
                normalised.append(key)
            if key.startswith("median_abs_log_ratio_") and key not in medians:
                medians.append(key)
    if not medians:
        medians = ["median_abs_log_ratio_f1_hz", "median_abs_log_ratio_alpha", "median_abs_log_ratio_r"]
    return list(LEADERBOARD_COLUMNS) + normalised + ["fraction_of_chance"] + medians + ["flags", "added"]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if np.isfinite(value) else ""
    return str(value)


def write_leaderboard_csv(path: os.PathLike, rows: Sequence[dict]) -> Path:
    """Write ``leaderboard.csv`` atomically."""
    columns = leaderboard_columns(rows)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c, "")) for c in columns])
    return atomic_write_text(path, text.getvalue())
