"""``gear synth``: export a tone set as WAV files with its parameter table (``parameters.csv``)."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Optional

import numpy as np

from gear.errors import ParameterError
from gear.files import atomic_write_bytes
from synth.grid import ToneSet

__all__ = ["write_dataset", "read_parameters", "PARAMETER_COLUMNS"]

#: Columns of ``parameters.csv`` (a stable, documented output) for the harmonic presets; a
#: stimulus family's file has the first four, then one column per factor.
PARAMETER_COLUMNS = ("index", "file", "sample_rate", "n_samples", "f1_bins", "f1_hz", "alpha", "r")
_FIXED_COLUMNS = PARAMETER_COLUMNS[:4]


def _factor_names(tone_set) -> tuple:
    """The factor columns of ``parameters.csv``: today's for a ToneSet, else the family's factors."""
    return PARAMETER_COLUMNS[4:] if isinstance(tone_set, ToneSet) else tuple(tone_set.parameters)


def _cell(value) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def write_dataset(
    tone_set,
    out_dir: os.PathLike,
    *,
    sample_rate: int = 16000,
    subtype: str = "FLOAT",
    prefix: str = "tone",
    progress: Optional[callable] = None,
) -> Path:
    """Write every tone as a WAV file and the parameter table as ``parameters.csv``.

    Parameters
    ----------
    tone_set : synth.ToneSet or synth.families.StimulusSet
    out_dir : path-like
        Created if needed. Files: ``<prefix>_<index:05d>.wav`` and ``parameters.csv`` with
        columns :data:`PARAMETER_COLUMNS` (a stimulus set: ``index, file, sample_rate,
        n_samples`` then one column per factor, named as the family names them).
    sample_rate : int
        Rate of the WAV files in Hz.
    subtype : str
        soundfile subtype (``"FLOAT"``: lossless 32-bit float; ``"PCM_16"``, ...).
    progress : callable, optional
        Wraps the iteration over sounds (e.g. ``tqdm.tqdm``); library code stays quiet.

    Returns
    -------
    Path
        The path of ``parameters.csv`` (written last, so its presence means complete).
    """
    import soundfile as sf

    if subtype not in sf.available_subtypes("WAV"):
        raise ParameterError(
            f"subtype={subtype!r} is not a WAV subtype; choose one of {sorted(sf.available_subtypes('WAV'))}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = tone_set.render(sample_rate)
    table = tone_set.table(sample_rate)
    factors = _factor_names(tone_set)
    rows = []
    iterator = range(tone_set.n_sounds)
    if progress is not None:
        iterator = progress(iterator)
    for i in iterator:
        name = f"{prefix}_{i:05d}.wav"
        buffer = io.BytesIO()
        sf.write(buffer, audio[i], sample_rate, format="WAV", subtype=subtype)
        atomic_write_bytes(out_dir / name, buffer.getvalue())
        rows.append(
            [i, name, sample_rate, audio.shape[1]]
            + [_cell(table[key][i]) for key in factors]
        )
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(_FIXED_COLUMNS + factors)
    writer.writerows(rows)
    return atomic_write_bytes(out_dir / "parameters.csv", text.getvalue().encode())


def read_parameters(path: os.PathLike) -> dict:
    """Read a ``parameters.csv`` back into a dict of numpy columns (``file`` as str)."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{str(path)!r} does not exist; run `gear synth --out DIR` first")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = tuple(reader.fieldnames or ())
        missing = set(_FIXED_COLUMNS) - set(fields)
        if missing:
            raise ParameterError(f"{path} lacks the columns {sorted(missing)}")
        records = list(reader)
    columns = {}
    for key in fields:
        values = [row[key] for row in records]
        if key == "file":
            columns[key] = np.array(values, dtype=str)
        elif key in ("index", "sample_rate", "n_samples"):
            columns[key] = np.array(values, dtype=np.int64)
        else:
            try:
                columns[key] = np.array(values, dtype=np.float64)
            except ValueError:  # a discrete factor with names (chord quality)
                columns[key] = np.array(values, dtype=str)
    return columns
