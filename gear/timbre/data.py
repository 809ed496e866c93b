"""Loading and validating timbre-dissimilarity studies.

A study directory is laid out like ``shared/timbre/``::

    sounds/<Study>/*.aiff                       the stimuli (sorted file names = row order)
    ratings/<Study>_dissimilarity_matrix.txt    averaged ratings, square, strictly upper
                                                triangular, values in [0, 1]
    features/<representation>/<Study>.npz       optional precomputed features, array
                                                ``features`` (n_sounds, n_features)
    studies.csv                                 optional, columns ``study`` and
                                                ``m_subjects`` (number of listeners)
    stft_scattering_row_order.csv               row order of the ``realigned`` sets
                                                (``study,stored_row,sorted_index,file``)
    alignment.csv                               optional, ``representation,alignment``

Every representation is labelled ``aligned``, ``realigned`` or ``unaligned``
(:func:`representation_alignment`); :func:`load_features` puts realigned rows back in
sorted file order from the explicit row-order file (:func:`read_row_order`), and
:func:`row_order_agreement` checks that file against GEAR's own STFT of every sound.

Every problem found raises :class:`~synth.errors.ParameterError` naming the file and the
value at fault and saying how to fix it.
"""
from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from gear.errors import ParameterError

__all__ = [
    "ALIGNMENT_LABELS",
    "REFERENCE_ALIGNMENT",
    "ROW_ORDER_FILE",
    "alignment_labels",
    "representation_alignment",
    "read_row_order",
    "row_order_agreement",
    "stft_row_order",
    "Study",
    "AUDIO_EXTENSIONS",
    "default_data_dir",
    "list_studies",
    "list_representations",
    "load_study",
    "load_features",
    "load_audio",
    "read_ratings",
    "read_study_table",
]

#: Environment variable naming the shared data folder (its ``timbre/`` sub-folder is used).
SHARED_DIR_ENV = "GEAR_SHARED_DIR"

#: File extensions read as sounds (case-insensitive).
AUDIO_EXTENSIONS = (".aiff", ".aif", ".wav", ".flac")

RATINGS_SUFFIX = "_dissimilarity_matrix.txt"

PathLike = Union[str, os.PathLike]


def default_data_dir() -> Path:
    """The timbre data folder: ``$GEAR_SHARED_DIR/timbre``, else ``<repo>/../shared/timbre``.

    Returns
    -------
    Path
        The folder (it may not exist; :func:`load_study` says so when it is used).
    """
    env = os.environ.get(SHARED_DIR_ENV)
    if env:
        return Path(env).expanduser() / "timbre"
    repo = Path(__file__).resolve().parents[2]
    return (repo / ".." / "shared" / "timbre").resolve()


def _data_dir(data_dir: Optional[PathLike]) -> Path:
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if not root.is_dir():
        raise ParameterError(
            f"data_dir={str(root)!r} is not a directory. Point --data (data_dir) at a folder "
            f"laid out like shared/timbre/ (sounds/, ratings/, features/), or set "
            f"{SHARED_DIR_ENV} to the folder that contains timbre/."
        )
    if not (root / "ratings").is_dir():
        raise ParameterError(
            f"{root} has no ratings/ folder; a timbre data folder holds "
            "ratings/<Study>_dissimilarity_matrix.txt and sounds/<Study>/"
        )
    return root


def read_study_table(data_dir: Optional[PathLike] = None) -> Dict[str, dict]:
    """Rows of ``studies.csv`` keyed by study name (empty when the file is absent).

    ``m_subjects`` is converted to ``int``.
    """
    root = _data_dir(data_dir)
    path = root / "studies.csv"
    if not path.is_file():
        return {}
    out: Dict[str, dict] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "study" not in reader.fieldnames:
            raise ParameterError(f"{path} has no 'study' column; add a header row 'study,...,m_subjects'")
        for row in reader:
            name = row["study"].strip()
            if "m_subjects" in row and row["m_subjects"] not in (None, ""):
                try:
                    row["m_subjects"] = int(row["m_subjects"])
                except ValueError:
                    raise ParameterError(
                        f"{path}: m_subjects={row['m_subjects']!r} for {name} is not an "
                        "integer; give the number of listeners"
                    ) from None
                if row["m_subjects"] < 1:
                    raise ParameterError(
                        f"{path}: m_subjects={row['m_subjects']} for {name}; it must be >= 1"
                    )
            out[name] = row
    return out


def list_studies(data_dir: Optional[PathLike] = None) -> List[str]:
    """Names of the studies in ``data_dir`` (those with a ratings file).

    In the order of ``studies.csv`` when it exists (then any others, sorted), else sorted.
    """
    root = _data_dir(data_dir)
    names = sorted(
        p.name[: -len(RATINGS_SUFFIX)]
        for p in (root / "ratings").glob("*" + RATINGS_SUFFIX)
        if p.is_file()
    )
    table = read_study_table(root)
    ordered = [n for n in table if n in names]
    return ordered + [n for n in names if n not in table]


def list_representations(data_dir: Optional[PathLike] = None) -> List[str]:
    """Names of the precomputed representations (folders of ``features/``), sorted."""
    root = _data_dir(data_dir)
    feat = root / "features"
    if not feat.is_dir():
        return []
    return sorted(p.name for p in feat.iterdir() if p.is_dir())


def read_ratings(path: PathLike) -> np.ndarray:
    """Read and validate one dissimilarity matrix.

    Parameters
    ----------
    path : path-like
        Whitespace-separated square matrix, upper-triangular (diagonal and lower triangle
        zero) or symmetric, values in [0, 1].

    Returns
    -------
    np.ndarray, shape (n_sounds, n_sounds), float64
        Strictly upper-triangular (the lower triangle and the diagonal set to 0).
    """
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"ratings file {path} does not exist")
    with open(path) as fh:
        rows = [line.split() for line in fh if line.strip()]
    if not rows:
        raise ParameterError(f"{path} is empty; write the square ratings matrix, one row per sound")
    lengths = sorted({len(r) for r in rows})
    if len(lengths) > 1:
        raise ParameterError(
            f"{path}: rows have different lengths ({lengths}); the ratings must form a square "
            "matrix, one row and one column per sound"
        )
    try:
        mat = np.array([[float(x) for x in row] for row in rows], dtype=float)
    except ValueError as err:
        raise ParameterError(
            f"{path} is not a whitespace-separated numeric matrix ({err}); write one row per "
            "sound, numbers only"
        ) from None
    n, k = mat.shape
    if n != k:
        raise ParameterError(
            f"{path}: the ratings matrix is {n} x {k}; it must be square (n_sounds x n_sounds), "
            "row and column i being the i-th sound file in sorted order"
        )
    if n < 3:
        raise ParameterError(f"{path}: {n} sounds; metric learning needs at least 3")
    if not np.all(np.isfinite(mat)):
        i, j = np.argwhere(~np.isfinite(mat))[0]
        raise ParameterError(
            f"{path}: entry ({i}, {j}) is {mat[i, j]}; the ratings must be finite (no NaN): "
            "fill in missing pairs or remove the sound"
        )
    upper = np.triu(mat, k=1)
    lower = np.tril(mat, k=-1)
    if np.any(np.diag(mat) != 0):
        i = int(np.flatnonzero(np.diag(mat) != 0)[0])
        raise ParameterError(
            f"{path}: diagonal entry ({i}, {i}) is {mat[i, i]}; a sound's dissimilarity to "
            "itself must be 0"
        )
    if np.any(lower != 0) and not np.allclose(lower, upper.T, rtol=0, atol=1e-12):
        i, j = np.argwhere((lower != 0) & ~np.isclose(lower, upper.T, rtol=0, atol=1e-12))[0]
        raise ParameterError(
            f"{path}: entry ({i}, {j}) = {mat[i, j]} below the diagonal differs from ({j}, {i}) = "
            f"{mat[j, i]}; give a strictly upper-triangular (lower triangle 0) or symmetric matrix"
        )
    vals = upper[np.triu_indices(n, k=1)]
    bad = (vals < 0) | (vals > 1)
    if np.any(bad):
        iu = np.triu_indices(n, k=1)
        p = int(np.flatnonzero(bad)[0])
        raise ParameterError(
            f"{path}: rating ({iu[0][p]}, {iu[1][p]}) = {vals[p]} is outside [0, 1]; rescale the "
            "ratings to [0, 1] (e.g. divide by the scale maximum)"
        )
    if np.ptp(vals) == 0:
        raise ParameterError(f"{path}: all ratings are equal ({vals[0]}); nothing to learn")
    return upper


def _sound_files(folder: Path) -> List[Path]:
    if not folder.is_dir():
        raise ParameterError(
            f"sound folder {folder} does not exist; put the study's sounds in sounds/<Study>/"
        )
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS),
        key=lambda p: p.name,
    )


def _check_audio_file(path: Path) -> None:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as err:  # soundfile raises RuntimeError / LibsndfileError
        raise ParameterError(
            f"cannot read audio file {path} ({err}); replace it with a readable AIFF/WAV file, "
            "or remove it together with its row and column of the ratings matrix"
        ) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise ParameterError(
            f"audio file {path} is empty ({info.frames} frames at {info.samplerate} Hz); "
            "replace it with the study's stimulus"
        )


@dataclasses.dataclass(frozen=True)
class Study:
    """One timbre-dissimilarity study.

    Attributes
    ----------
    name : str
    data_dir : Path
    sound_paths : tuple of Path
        Sorted by file name; row ``i`` of the ratings is ``sound_paths[i]``.
    ratings_matrix : np.ndarray, shape (n_sounds, n_sounds), float64
        Strictly upper-triangular averaged dissimilarities in [0, 1].
    m_subjects : int or None
        Number of listeners (``studies.csv``), used for the typical rating spread
        ``delta_bar = 0.1 * sqrt(m_subjects)``.
    """

    name: str
    data_dir: Path
    sound_paths: Tuple[Path, ...]
    ratings_matrix: np.ndarray
    m_subjects: Optional[int] = None

    @property
    def n_sounds(self) -> int:
        return len(self.sound_paths)

    @property
    def n_pairs(self) -> int:
        return self.n_sounds * (self.n_sounds - 1) // 2

    @property
    def ratings(self) -> np.ndarray:
        """Upper-triangle vector, shape (n_pairs,), order of ``np.triu_indices(n, 1)``."""
        return self.ratings_matrix[np.triu_indices(self.n_sounds, k=1)]

    @property
    def delta_bar(self) -> Optional[float]:
        """Typical spread of human ratings, ``0.1 * sqrt(m_subjects)`` (None if unknown)."""
        return None if self.m_subjects is None else 0.1 * float(np.sqrt(self.m_subjects))


def load_study(
    name: str, *, data_dir: Optional[PathLike] = None, check_audio: bool = True
) -> Study:
    """Load and validate one study.

    Parameters
    ----------
    name : str
        Study name, e.g. ``"Grey1977"``.
    data_dir : path-like, optional
        Study folder (default :func:`default_data_dir`).
    check_audio : bool
        Open every sound file's header (catches unreadable files early).

    Returns
    -------
    Study

    Raises
    ------
    ParameterError
        Missing files, a non-square matrix, ratings outside [0, 1] or NaN, a number of
        sound files different from the matrix size, an unreadable sound file.
    """
    root = _data_dir(data_dir)
    path = root / "ratings" / f"{name}{RATINGS_SUFFIX}"
    if not path.is_file():
        known = ", ".join(list_studies(root)) or "none"
        raise ParameterError(f"unknown study {name!r}: {path} does not exist; known studies: {known}")
    mat = read_ratings(path)
    sounds = _sound_files(root / "sounds" / name)
    if len(sounds) != mat.shape[0]:
        raise ParameterError(
            f"{path} is {mat.shape[0]} x {mat.shape[0]} but {root / 'sounds' / name} holds "
            f"{len(sounds)} sound files ({', '.join(AUDIO_EXTENSIONS)}); there must be one "
            "row per sound file, in sorted file-name order"
        )
    if check_audio:
        for p in sounds:
            _check_audio_file(p)
    m_subjects = read_study_table(root).get(name, {}).get("m_subjects")
    return Study(
        name=name,
        data_dir=root,
        sound_paths=tuple(sounds),
        ratings_matrix=mat,
        m_subjects=m_subjects if isinstance(m_subjects, int) else None,
    )


def _as_study(study: Union[str, Study], data_dir: Optional[PathLike]) -> Study:
    if isinstance(study, Study):
        return study
    return load_study(study, data_dir=data_dir, check_audio=False)


#: The three alignment labels of a representation's rows with the ratings:
#: ``aligned`` (rows in sorted file order), ``realigned`` (stored in another order, put back
#: in sorted order with an explicit row-order file) and ``unaligned`` (rows in an order that
#: cannot be recovered: any result on them measures a shuffled pairing).
ALIGNMENT_LABELS = ("aligned", "realigned", "unaligned")

#: Labels of the reference sets of ``shared/timbre`` (see its README, "Row order"):
#: ``auditory_spectrum`` and ``stmf`` follow the sorted file order; ``stft`` and
#: ``scattering`` one fixed other order per study, given in :data:`ROW_ORDER_FILE`; the rows
#: of ``clap``, ``encodec``, ``mert_avg`` and ``mert_concat`` follow a third order that
#: cannot be recovered without the models (byte-identical sounds shared between studies
#: land on inconsistent rows). Any other folder of ``features/`` and every zoo model
#: (computed by GEAR from the sorted files) is ``aligned``, unless ``alignment.csv`` in the
#: data folder (columns ``representation,alignment``) says otherwise.
REFERENCE_ALIGNMENT = {
    "auditory_spectrum": "aligned",
    "stmf": "aligned",
    "stft": "realigned",
    "scattering": "realigned",
    "clap": "unaligned",
    "encodec": "unaligned",
    "mert_avg": "unaligned",
    "mert_concat": "unaligned",
}

#: Row order of the ``realigned`` sets: ``study,stored_row,sorted_index,file,match_corr``;
#: ``X_sorted[sorted_index] = X_stored[stored_row]``.
ROW_ORDER_FILE = "stft_scattering_row_order.csv"
#: Optional per-folder override of :data:`REFERENCE_ALIGNMENT`.
ALIGNMENT_FILE = "alignment.csv"


def _check_label(label: str, where: str) -> str:
    if label not in ALIGNMENT_LABELS:
        raise ParameterError(
            f"{where}: unknown alignment label {label!r}; use one of {', '.join(ALIGNMENT_LABELS)}"
        )
    return label


def alignment_labels(data_dir: Optional[PathLike] = None) -> Dict[str, str]:
    """Alignment label of every named representation: :data:`REFERENCE_ALIGNMENT`
    updated by ``<data_dir>/alignment.csv`` (``representation,alignment``) when present.

    Raises
    ------
    ParameterError
        An unknown label or a malformed ``alignment.csv`` (naming the file).
    """
    labels = dict(REFERENCE_ALIGNMENT)
    path = _data_dir(data_dir) / ALIGNMENT_FILE
    if not path.is_file():
        return labels
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"representation", "alignment"} <= set(reader.fieldnames or ()):
            raise ParameterError(f"{path} needs the columns 'representation,alignment'")
        for row in reader:
            rep = (row["representation"] or "").strip()
            labels[rep] = _check_label((row["alignment"] or "").strip(), f"{path}, {rep}")
    return labels


def representation_alignment(representation: str, *, data_dir: Optional[PathLike] = None) -> str:
    """``aligned``, ``realigned`` or ``unaligned`` (see :data:`REFERENCE_ALIGNMENT`)."""
    return alignment_labels(data_dir).get(representation, "aligned")


def read_row_order(study: Union[str, "Study"], *, data_dir: Optional[PathLike] = None) -> np.ndarray:
    """Row order of a ``realigned`` representation, read from :data:`ROW_ORDER_FILE`.

    Returns
    -------
    np.ndarray of int, shape (n_sounds,)
        ``order`` such that ``X_stored[order]`` is in sorted file order
        (``order[sorted_index] = stored_row``).

    Raises
    ------
    ParameterError
        Naming the study and the file: the file or its columns are missing; its rows for
        the study miss, add or repeat sound files; ``stored_row`` is not a permutation of
        ``0..n_sounds-1``; ``sorted_index`` disagrees with the sorted file names.
    """
    st = _as_study(study, data_dir)
    path = st.data_dir / ROW_ORDER_FILE
    if not path.is_file():
        raise ParameterError(
            f"{st.name}: the row-order file {path} does not exist; a realigned representation "
            "needs it (columns study,stored_row,sorted_index,file)"
        )
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"study", "stored_row", "sorted_index", "file"}
        if not need <= set(reader.fieldnames or ()):
            raise ParameterError(f"{st.name}: {path} needs the columns {','.join(sorted(need))}")
        rows = [r for r in reader if (r["study"] or "").strip() == st.name]
    names = [p.name for p in st.sound_paths]
    files = [(r["file"] or "").strip() for r in rows]
    where = f"study {st.name}, row-order file {path}"
    dup = sorted({f for f in files if files.count(f) > 1})
    missing, extra = sorted(set(names) - set(files)), sorted(set(files) - set(names))
    if dup or missing or extra or len(rows) != st.n_sounds:
        raise ParameterError(
            f"{where}: {len(rows)} rows for {st.n_sounds} sound files (duplicated: {dup or 'none'}; "
            f"missing: {missing or 'none'}; not in sounds/{st.name}: {extra or 'none'}); give one row "
            "per sound file"
        )
    try:
        stored = np.array([int(r["stored_row"]) for r in rows])
        index = np.array([int(r["sorted_index"]) for r in rows])
    except ValueError:
        raise ParameterError(f"{where}: stored_row and sorted_index must be integers") from None
    if sorted(stored.tolist()) != list(range(st.n_sounds)):
        raise ParameterError(f"{where}: stored_row is not a permutation of 0..{st.n_sounds - 1}")
    expected = np.array([names.index(f) for f in files])
    if not np.array_equal(index, expected):
        k = int(np.flatnonzero(index != expected)[0])
        raise ParameterError(
            f"{where}: {files[k]} has sorted_index {index[k]} but is file {expected[k]} in sorted order"
        )
    order = np.empty(st.n_sounds, dtype=int)
    order[index] = stored
    return order


def stft_row_order(study: Union[str, "Study"], *, data_dir: Optional[PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Row order of the stored ``stft`` found from the sounds (the check of the file).

    Matches the stored ``stft`` rows to GEAR's own time-averaged STFT of each sound file
    (Hungarian assignment on per-row correlation).

    Returns
    -------
    order : np.ndarray of int, shape (n_sounds,)
        ``stored_stft[order]`` is in sorted file order.
    correlations : np.ndarray, shape (n_sounds,)
        Correlation of each matched pair of rows.
    """
    from embeddings.timefeatures import reference_row_order, study_features

    st = _as_study(study, data_dir)
    stored = load_features(st, "stft", realign=False)
    ours = study_features(st.sound_paths, "stft")
    return reference_row_order(ours, stored)


def row_order_agreement(study: Union[str, "Study"], *, data_dir: Optional[PathLike] = None) -> dict:
    """Agreement of :data:`ROW_ORDER_FILE` with the order found by STFT matching.

    Returns
    -------
    dict
        ``study``, ``n_sounds``, ``n_agree`` (rows placed identically), ``disagree`` (file
        names placed differently; in Grey1978 ``S2t`` and ``C2t`` have identical spectra),
        ``min_correlation`` of the matching.
    """
    st = _as_study(study, data_dir)
    found, corr = stft_row_order(st)
    given = read_row_order(st)
    diff = np.flatnonzero(found != given)
    return {
        "study": st.name,
        "n_sounds": st.n_sounds,
        "n_agree": int(st.n_sounds - diff.size),
        "disagree": [st.sound_paths[k].name for k in diff],
        "min_correlation": float(np.min(corr)),
    }


def load_features(
    study: Union[str, Study],
    representation: str,
    *,
    data_dir: Optional[PathLike] = None,
    realign: bool = True,
) -> np.ndarray:
    """Precomputed features of one study, one row per sound file in sorted order.

    Parameters
    ----------
    study : str or Study
    representation : str
        Folder name under ``features/`` (``auditory_spectrum``, ``stmf``, ...).
    data_dir : path-like, optional
    realign : bool
        Put the rows of ``realigned`` representations back in sorted file order with the
        explicit row order of :data:`ROW_ORDER_FILE` (:func:`read_row_order`).

    Returns
    -------
    np.ndarray, shape (n_sounds, n_features), float64
    """
    st = _as_study(study, data_dir)
    path = st.data_dir / "features" / representation / f"{st.name}.npz"
    if not path.is_file():
        known = ", ".join(list_representations(st.data_dir)) or "none"
        raise ParameterError(
            f"no features {path}; representations available in {st.data_dir / 'features'}: {known}"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "features" not in npz.files:
                raise ParameterError(
                    f"{path} has arrays {npz.files} but no 'features'; save the matrix as "
                    "np.savez(path, features=...)"
                )
            feats = np.asarray(npz["features"], dtype=np.float64)
    except ParameterError:
        raise
    except Exception as err:
        raise ParameterError(f"cannot read {path} ({err}); rewrite it with np.savez") from None
    if feats.ndim != 2:
        raise ParameterError(
            f"{path}: features have shape {feats.shape}; expected (n_sounds, n_features)"
        )
    if feats.shape[0] != st.n_sounds:
        raise ParameterError(
            f"study {st.name}: feature file {path} has {feats.shape[0]} rows but the study has "
            f"{st.n_sounds} sounds; one row per sound file"
        )
    if not np.all(np.isfinite(feats)):
        raise ParameterError(f"{path}: features contain NaN or infinite values; recompute them")
    if realign and representation_alignment(representation, data_dir=st.data_dir) == "realigned":
        feats = feats[read_row_order(st)]
    return feats


def load_audio(
    study: Union[str, Study], *, data_dir: Optional[PathLike] = None
) -> List[Tuple[np.ndarray, int]]:
    """Read every sound of a study (mono, float64 in [-1, 1]).

    Returns
    -------
    list of (np.ndarray shape (n_samples,), int sample_rate)
        In row order. Multichannel files are averaged to mono.
    """
    import soundfile

    st = _as_study(study, data_dir)
    out = []
    for p in st.sound_paths:
        try:
            x, sr = soundfile.read(str(p), dtype="float64", always_2d=True)
        except Exception as err:
            raise ParameterError(
                f"cannot read audio file {p} ({err}); replace it with a readable AIFF/WAV file, "
                "or remove it together with its row and column of the ratings matrix"
            ) from None
        if x.shape[0] == 0:
            raise ParameterError(f"audio file {p} is empty; replace it with the study's stimulus")
        out.append((x.mean(axis=1), int(sr)))
    return out
