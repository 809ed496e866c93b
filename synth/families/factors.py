"""Factors: the named, unit-carrying quantities a stimulus family varies.

A :class:`Factor` says what a column of a design's factor table means (name with its unit,
e.g. ``attack_ms``), which values the family accepts (``allowed``), which range a design
spans by default (``range``), on which scale designs place values (``linear`` or ``log``),
whether it is ``continuous`` or ``discrete`` (with its value set), its ``role`` (``cause``:
a property of the sound source; ``nuisance``: a deformation a model should ignore) and how
the analysis layer scores it (``log_ratio`` for strictly positive quantities, ``difference``
for quantities that can be 0 or negative, ``agreement`` for discrete factors).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import numpy as np

from synth.errors import SynthError

__all__ = ["Factor", "SCALES", "KINDS", "ROLES", "STATISTICS"]

SCALES = ("linear", "log")
KINDS = ("continuous", "discrete")
ROLES = ("cause", "nuisance")
STATISTICS = ("log_ratio", "difference", "agreement")


def _choice(what, value, allowed, owner):
    if value not in allowed:
        raise SynthError(f"factor {owner!r}: {what}={value!r}; choose one of {', '.join(allowed)}")


@dataclasses.dataclass(frozen=True)
class Factor:
    """One factor of a stimulus family.

    Attributes
    ----------
    name : str
        Column name, with its unit (``f1_hz``, ``attack_ms``, ``hnr_db``).
    unit : str
        Unit in words (``"Hz"``, ``"ms"``, ``"dB"``, ``""`` for dimensionless).
    range : (float, float) or tuple
        Continuous: the default design range (low < high). Discrete: the values a design uses
        (by default every value of ``values``).
    allowed : (float, float), optional
        Continuous: the closed range the family accepts (default: ``range``).
    scale : {"linear", "log"}
        Designs place values uniformly on this scale (``log``: geometric).
    kind : {"continuous", "discrete"}
    values : tuple
        Discrete: the value set (numbers or strings), in order.
    role : {"cause", "nuisance"}
    statistic : {"log_ratio", "difference", "agreement"}, optional
        Default: ``agreement`` for discrete factors, ``log_ratio`` when every allowed value is
        > 0, else ``difference``.
    step : float, optional
        Lattice of the per-cell draws of the ``grid`` design (harmonic ``f1_hz``: integer
        bins of the 64 ms reference window, as the paper).
    description : str
    """

    name: str
    unit: str
    range: tuple = ()
    allowed: Optional[Tuple[float, float]] = None
    scale: str = "linear"
    kind: str = "continuous"
    values: tuple = ()
    role: str = "cause"
    statistic: Optional[str] = None
    step: Optional[float] = None
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SynthError(f"factor name must be an identifier such as 'attack_ms', got {self.name!r}")
        _choice("scale", self.scale, SCALES, self.name)
        _choice("kind", self.kind, KINDS, self.name)
        _choice("role", self.role, ROLES, self.name)
        if self.kind == "discrete":
            self._init_discrete()
        else:
            self._init_continuous()
        _choice("statistic", self.statistic, STATISTICS, self.name)

    def _init_discrete(self):
        values = tuple(self.values)
        if len(values) < 1 or len(set(values)) != len(values):
            raise SynthError(f"discrete factor {self.name!r} needs a non-empty set of distinct values")
        chosen = tuple(self.range) if len(self.range) else values
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "range", chosen)
        self._check_values(chosen)
        if self.statistic is None:
            object.__setattr__(self, "statistic", "agreement")

    def _init_continuous(self):
        low, high = _pair(self.name, "range", self.range)
        allowed = (low, high) if self.allowed is None else _pair(self.name, "allowed", self.allowed, closed=True)
        object.__setattr__(self, "range", (low, high))
        object.__setattr__(self, "allowed", allowed)
        if self.scale == "log" and allowed[0] <= 0:
            raise SynthError(f"factor {self.name!r} is on a log scale; its allowed range must be > 0, got {allowed}")
        self.check_range((low, high))
        if self.statistic is None:
            object.__setattr__(self, "statistic", "log_ratio" if allowed[0] > 0 else "difference")

    # ------------------------------------------------------------------ checks
    def allowed_text(self) -> str:
        if self.kind == "discrete":
            return "one of " + ", ".join(repr(v) for v in self.values)
        return f"within [{self.allowed[0]:g}, {self.allowed[1]:g}] {self.unit}".rstrip()

    def _check_values(self, chosen, family: str = ""):
        bad = [v for v in chosen if v not in self.values]
        if bad:
            raise SynthError(f"{_where(family)}factor {self.name!r}: value {bad[0]!r} is not allowed; "
                             f"choose {self.allowed_text()}")

    def check_range(self, value, family: str = "") -> tuple:
        """Validate a design range: ``(low, high)`` inside ``allowed`` (continuous) or a
        subset of ``values`` (discrete). Returns the normalised range."""
        if self.kind == "discrete":
            chosen = tuple(np.atleast_1d(np.asarray(value, dtype=object)).tolist())
            if not chosen or len(set(chosen)) != len(chosen):
                raise SynthError(f"{_where(family)}factor {self.name!r}: give a non-empty set of distinct "
                                 f"values, {self.allowed_text()}")
            self._check_values(chosen, family)
            return chosen
        low, high = _pair(self.name, "range", value, family=family)
        if low < self.allowed[0] or high > self.allowed[1]:
            raise SynthError(f"{_where(family)}factor {self.name!r}: range ({low:g}, {high:g}) leaves the "
                             f"allowed range; choose {self.allowed_text()}")
        return (low, high)

    def with_range(self, value, family: str = "") -> "Factor":
        """This factor with another design range (validated)."""
        return dataclasses.replace(self, range=self.check_range(value, family))

    def check_column(self, column, family: str = "") -> np.ndarray:
        """Validate a column of factor values (shape (n,)); returns it as an array."""
        if self.kind == "discrete":
            array = np.asarray(column)
            if array.ndim != 1:
                raise SynthError(f"{_where(family)}factor {self.name!r} must be a 1-D column, got shape {array.shape}")
            self._check_values(list(dict.fromkeys(array.tolist())), family)
            return array
        array = np.asarray(column, dtype=np.float64)
        if array.ndim != 1:
            raise SynthError(f"{_where(family)}factor {self.name!r} must be a 1-D column, got shape {array.shape}")
        bad = ~np.isfinite(array) | (array < self.allowed[0]) | (array > self.allowed[1])
        if np.any(bad):
            raise SynthError(f"{_where(family)}factor {self.name!r}: value {float(array[bad][0])!r} is not allowed; "
                             f"choose {self.allowed_text()}")
        return array

    # ------------------------------------------------------------------ unit cube
    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map points of [0, 1) to factor values on the factor's scale (discrete: equal
        shares of the chosen values)."""
        u = np.asarray(u, dtype=np.float64)
        if self.kind == "discrete":
            index = np.minimum((u * len(self.range)).astype(np.int64), len(self.range) - 1)
            return self.value_array()[index]
        low, high = self.range
        if self.scale == "log":
            return np.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        return low + u * (high - low)

    def axis(self, n_points: int) -> np.ndarray:
        """``n_points`` values evenly spaced on the factor's scale, both ends included
        (discrete: the chosen values)."""
        if self.kind == "discrete":
            return self.value_array()
        low, high = self.range
        if self.scale == "log":
            return np.geomspace(low, high, n_points)
        return np.linspace(low, high, n_points)

    def value_array(self) -> np.ndarray:
        """The chosen discrete values as an array (int64, float64 or str)."""
        return np.asarray(self.range)

    @property
    def numeric(self) -> bool:
        return self.kind == "continuous" or all(isinstance(v, (int, float, np.number)) for v in self.values)

    def describe(self) -> dict:
        """A JSON-serialisable description (for listings and run.json)."""
        out = dict(name=self.name, unit=self.unit, kind=self.kind, scale=self.scale, role=self.role,
                   statistic=self.statistic, description=self.description)
        if self.kind == "discrete":
            out.update(values=list(self.values), range=list(self.range))
        else:
            out.update(range=list(self.range), allowed=list(self.allowed))
        if self.step is not None:
            out["step"] = self.step
        return out


def _where(family: str) -> str:
    return f"family {family!r}: " if family else ""


def _pair(name, what, value, *, closed=False, family=""):
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SynthError(f"{_where(family)}factor {name!r}: {what} must be a pair (low, high), got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high or (low == high and not closed):
        raise SynthError(f"{_where(family)}factor {name!r}: {what} must be finite with low < high, got {value!r}")
    return low, high
