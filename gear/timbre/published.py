"""Published explained variances (Pascal & Lagrange, EUSIPCO 2024, Table 1).

Only the values GEAR could check against a source are listed (the faithful reference
procedure reproduces each within 0.02: ``tests/test_timbre_solver.py``); the full table
can be given as a CSV with :func:`read_published` (``study,representation,published``).
The representation names are the folder names of ``shared/timbre/features`` (the paper's
"cochlea" is ``auditory_spectrum``, "STMF" is ``stmf``, "MERT concat" ``mert_concat``).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Tuple

from gear.errors import ParameterError

__all__ = ["PUBLISHED", "read_published"]

#: ``{(study, representation): published P^2}``.
PUBLISHED: Dict[Tuple[str, str], float] = {
    ("Grey1977", "auditory_spectrum"): 0.48,
    ("Barthet2010", "auditory_spectrum"): 0.74,
    ("Patil2012_A3", "auditory_spectrum"): 0.62,
    ("Siedenburg2016_e2set2", "auditory_spectrum"): 0.73,
    ("Patil2012_A3", "stmf"): 0.97,
    ("Siedenburg2016_e2set2", "stmf"): 0.99,
    ("Grey1977", "mert_concat"): 1.00,
    ("Barthet2010", "mert_concat"): 0.65,
}


def read_published(path) -> Dict[Tuple[str, str], float]:
    """Published values from a CSV with columns ``study,representation,published``."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"published-values file {path} does not exist")
    out = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"study", "representation", "published"} <= set(reader.fieldnames or ()):
            raise ParameterError(f"{path} needs the columns study,representation,published")
        for row in reader:
            try:
                value = float(row["published"])
            except ValueError:
                raise ParameterError(f"{path}: published={row['published']!r} is not a number") from None
            if not 0 <= value <= 1:
                raise ParameterError(f"{path}: published={value} for {row['study']} is outside [0, 1]")
            out[(row["study"].strip(), row["representation"].strip())] = value
    return out
