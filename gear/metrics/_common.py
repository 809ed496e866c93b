"""Inputs shared by the metric modules of :mod:`gear.metrics` (private to the package)."""
from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from gear.errors import ParameterError

#: Most distinct values a factor may take to count as discrete (purity, clusters).
MAX_CLASSES = 24


@dataclasses.dataclass
class Design:
    """An embedding and the factors of its sounds, validated once for every metric.

    Attributes
    ----------
    X : np.ndarray, shape (n_sounds, dim), float64
        The embedding.
    theta : np.ndarray, shape (n_sounds, n_factors), float64
        The factors in their natural units.
    names : tuple of str
    scales : dict of str -> {"linear", "log"}
    u : np.ndarray, shape (n_sounds, n_factors), float64
        The factors on their scales (log where the scale is log).
    seed : int
    """

    X: np.ndarray
    theta: np.ndarray
    names: Tuple[str, ...]
    scales: Dict[str, str]
    u: np.ndarray
    seed: int

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def varying(self) -> np.ndarray:
        """Which factors take more than one value, shape (n_factors,), bool."""
        return np.ptp(self.u, axis=0) > 0

    def discrete(self, max_classes: int = MAX_CLASSES) -> np.ndarray:
        """Which factors take between 2 and ``max_classes`` distinct values."""
        counts = np.array([np.unique(self.theta[:, j]).size for j in range(self.theta.shape[1])])
        return (counts >= 2) & (counts <= max_classes)

    def z(self) -> np.ndarray:
        """Factors on their scales, standardised (constant factors set to 0)."""
        sd = self.u.std(axis=0)
        return np.where(sd > 0, (self.u - self.u.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0)

    def rng(self, salt: int) -> np.random.Generator:
        """A generator seeded by (seed, salt): each metric has its own stream."""
        return np.random.default_rng([self.seed, salt])


def make_design(embedding, theta, *, names: Optional[Sequence[str]] = None,
                scales: Optional[Mapping[str, str]] = None, random_state: int = 0) -> Design:
    """Validate an embedding and its factors (constant factors are allowed: metrics that need
    variation return a note for them)."""
    X = np.asarray(embedding)
    if X.ndim != 2 or X.shape[0] < 3:
        raise ParameterError(f"embedding must be 2-D (n_sounds >= 3, dim), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or X.dtype == bool or np.iscomplexobj(X):
        raise ParameterError(f"embedding must be a real float array, got dtype {X.dtype}")
    X = X.astype(np.float64, copy=False)
    if not np.all(np.isfinite(X)):
        raise ParameterError("embedding has NaN or Inf values; check the model's output")
    T = np.asarray(theta, dtype=np.float64)
    T = T[:, None] if T.ndim == 1 else T
    if T.ndim != 2 or T.shape[0] != X.shape[0]:
        raise ParameterError(
            f"theta must be (n_sounds, n_factors) with n_sounds = {X.shape[0]}, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise ParameterError("theta has NaN or Inf values; every sound needs its factors")
    names = tuple(names) if names is not None else tuple(f"theta{j}" for j in range(T.shape[1]))
    if len(names) != T.shape[1] or len(set(names)) != len(names):
        raise ParameterError(f"names={names!r} must name the {T.shape[1]} columns of theta, once each")
    scl = {name: ("log" if name.lower().startswith("f1") else "linear") for name in names}
    for name, scale in dict(scales or {}).items():
        if name not in scl or scale not in ("linear", "log"):
            raise ParameterError(f"scales[{name!r}]={scale!r}: name a factor of {names} and "
                                 f"choose 'linear' or 'log'")
        scl[name] = scale
    u = T.copy()
    for j, name in enumerate(names):
        if scl[name] == "log":
            if np.any(T[:, j] <= 0):
                raise ParameterError(f"scale 'log' for {name!r} needs values > 0; use 'linear'")
            u[:, j] = np.log(T[:, j])
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) or random_state < 0:
        raise ParameterError(f"random_state must be an int >= 0, got {random_state!r}")
    return Design(X, T, names, scl, u, int(random_state))


def row(metric: str, parameter: str, value=np.nan, *, ci=(np.nan, np.nan), note: str = "") -> dict:
    """One row of ``disentanglement.csv``: value (NaN with a ``note`` when undefined) and CI."""
    value = float(value)
    if not np.isfinite(value) and not note:
        raise AssertionError(f"{metric}[{parameter}] is undefined without a stated reason")
    return {"metric": metric, "parameter": parameter, "value": value,
            "ci_low": float(ci[0]), "ci_high": float(ci[1]), "note": note}


def discretise(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Integer codes of ``values``: its distinct values when there are at most ``n_bins``,
    else ``n_bins`` equal-width bins over its range (the histogram of disentanglement_lib)."""
    uniq, codes = np.unique(values, return_inverse=True)
    if uniq.size <= n_bins:
        return codes.astype(np.int64)
    edges = np.linspace(values.min(), values.max(), n_bins + 1)[1:-1]
    return np.digitize(values, edges).astype(np.int64)
