"""Validation and shared preparation of the inputs of every disentanglement metric."""
from __future__ import annotations

import numbers
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from gear.errors import ParameterError
from gear.neighbours import EXACT_MAX_SOUNDS

#: Default parameter names (columns of ``theta``).
PARAM_NAMES = ("f1_hz", "alpha", "r")
#: Allowed parameter scales.
SCALES = ("linear", "log")
#: Fewest sounds the metrics accept.
MIN_SOUNDS = 20
#: Above this many sounds (gear.neighbours.EXACT_MAX_SOUNDS, the threshold of ``gear run``'s
#: approximate search and landmark Isomap) no metric forms an n x n matrix: memory is O(n K).
#: Up to it, the metrics hold a few n x n float64 matrices (~0.25 GB at n = 2 500, 0.6 GB at 5 000).
LARGE_SOUNDS = EXACT_MAX_SOUNDS


def default_scale(name: str) -> str:
    """Default scale of a parameter: ``"log"`` for the fundamental (names starting with
    ``f1``: pitch is heard on a log scale), ``"linear"`` for every other parameter."""
    return "log" if str(name).lower().startswith("f1") else "linear"


def check_seed(random_state) -> int:
    """An integer seed from ``random_state`` (int, None, RandomState or Generator)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, bool):
        raise ParameterError(f"random_state must be an int, got {random_state!r}")
    if isinstance(random_state, numbers.Integral):
        if random_state < 0:
            raise ParameterError(f"random_state={random_state} must be >= 0")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    raise ParameterError(
        f"random_state={random_state!r}; pass an int (deterministic), None, a "
        f"numpy RandomState or a numpy Generator"
    )


def check_int(value, name: str, low: int, high: Optional[int] = None) -> int:
    """``value`` as an int in [low, high], or ParameterError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ParameterError(f"{name}={value} must be {bound}")
    return int(value)


def check_fraction(value, name: str, *, open_low: bool = True) -> float:
    """``value`` as a float in (0, 1) (or [0, 1) when ``open_low`` is False)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number in (0, 1), got {value!r}")
    value = float(value)
    ok = (0.0 < value < 1.0) if open_low else (0.0 <= value < 1.0)
    if not ok:
        raise ParameterError(f"{name}={value} must be in {'(' if open_low else '['}0, 1)")
    return value


class Prepared:
    """Validated inputs, with the quantities every metric shares.

    Attributes
    ----------
    X : np.ndarray, shape (n_sounds, dim), float64
        The embedding minus its mean.
    spread : float
        ``sqrt(mean_i ||x_i - mean||^2)``: the embedding's overall spread (RMS distance to
        the centroid), in embedding units.
    u : np.ndarray, shape (n_sounds, n_params), float64
        The parameters on their chosen scales (log of the value where the scale is log).
    z : np.ndarray, shape (n_sounds, n_params), float64
        ``u`` standardised per column (zero mean, unit variance).
    param_names : tuple of str
    scales : dict of str -> str
    grid_index : np.ndarray, shape (n_sounds, n_params), int64, or None
    on_grid : np.ndarray, shape (n_params,), bool
        Which parameters have a grid axis.
    seed : int
    """

    def __init__(self, X, spread, u, z, param_names, scales, grid_index, seed):
        self.X = X
        self.spread = spread
        self.u = u
        self.z = z
        self.param_names = param_names
        self.scales = scales
        self.grid_index = grid_index
        self.on_grid = (
            np.zeros(len(param_names), bool)
            if grid_index is None
            else np.all(grid_index >= 0, axis=0)
        )
        self.seed = seed
        self._dist = None
        self._graphs = {}

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def p(self) -> int:
        return self.z.shape[1]

    @property
    def large(self) -> bool:
        """More than :data:`LARGE_SOUNDS` sounds: the metrics take their O(n K) paths."""
        return self.n > LARGE_SOUNDS

    def row_distances(self, rows) -> np.ndarray:
        """Euclidean distances from the sounds ``rows`` to every sound, shape (len(rows), n)."""
        from sklearn.metrics.pairwise import euclidean_distances

        rows = np.atleast_1d(rows)
        return euclidean_distances(self.X[rows], self.X)

    def knn_graph(self, n_neighbors: int):
        """The embedding's symmetric ``n_neighbors``-NN graph (CSR, Euclidean edge lengths),
        joined into one component by the shortest edge between every pair of components
        (:mod:`gear.landmark`), and the component count before joining; cached. Used above
        :data:`LARGE_SOUNDS` (exact search up to 5 000 sounds, HNSW above)."""
        if n_neighbors not in self._graphs:
            from gear.landmark import join_components, knn_graph
            from gear.neighbours import search

            found = search(self.X, n_neighbors, random_state=self.seed)
            self._graphs[n_neighbors] = join_components(knn_graph(found), self.X)
        return self._graphs[n_neighbors]

    def distances(self) -> np.ndarray:
        """Euclidean distance matrix of the embedding, shape (n, n), float64 (cached)."""
        if self.large:
            raise ParameterError(f"{self.n} sounds > {LARGE_SOUNDS}: no n x n distance matrix is formed "
                                 f"above that (use row_distances or knn_graph)")
        if self._dist is None:
            X = self.X
            sq = np.einsum("ij,ij->i", X, X)
            d2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
            np.maximum(d2, 0.0, out=d2)
            np.fill_diagonal(d2, 0.0)
            self._dist = np.sqrt(d2, out=d2)
        return self._dist

    def rng(self, salt: int) -> np.random.Generator:
        """A generator seeded by (seed, salt): each metric draws from its own stream."""
        return np.random.default_rng([self.seed, salt])


def _check_param_names(param_names, n_params: int) -> Tuple[str, ...]:
    if isinstance(param_names, str) or not isinstance(param_names, Sequence):
        raise ParameterError(
            f"param_names must be a sequence of {n_params} strings, got {param_names!r}"
        )
    names = tuple(param_names)
    if len(names) != n_params or not all(isinstance(s, str) and s for s in names):
        raise ParameterError(
            f"param_names={names!r} must name the {n_params} columns of theta "
            f"(one non-empty string per column)"
        )
    if len(set(names)) != len(names):
        raise ParameterError(f"param_names={names!r} has duplicates; give each column its own name")
    for s in names:
        if any(c in s for c in ",:\n\r\""):
            raise ParameterError(
                f"parameter name {s!r} contains one of , : \" or a line break; rename it "
                f"(names go into CSV cells and pair labels 'a:b')"
            )
    return names


def check_scales(scales, param_names) -> dict:
    """Complete ``scales`` with the defaults and check every entry."""
    out = {name: default_scale(name) for name in param_names}
    if scales is None:
        return out
    if not isinstance(scales, Mapping):
        raise ParameterError(
            f"scales must be a mapping parameter -> 'linear' | 'log', got {scales!r}"
        )
    for name, scale in scales.items():
        if name not in out:
            raise ParameterError(
                f"scales names an unknown parameter {name!r}; parameters are {list(param_names)}"
            )
        if scale not in SCALES:
            raise ParameterError(
                f"scales[{name!r}]={scale!r}; choose 'linear' or 'log'"
            )
        out[name] = scale
    return out


def check_embedding(embedding) -> np.ndarray:
    """The embedding as a finite float64 array of shape (n_sounds, dim)."""
    X = np.asarray(embedding)
    if X.ndim != 2:
        raise ParameterError(
            f"embedding must be 2-D (n_sounds, dim), got shape {X.shape}"
        )
    if not (np.issubdtype(X.dtype, np.number) and not np.iscomplexobj(X)) or X.dtype == bool:
        raise ParameterError(f"embedding must be a real float array, got dtype {X.dtype}")
    X = X.astype(np.float64, copy=False)
    if not np.all(np.isfinite(X)):
        bad = int(np.sum(~np.all(np.isfinite(X), axis=1)))
        raise ParameterError(
            f"embedding has NaN or Inf values in {bad} sounds; check the model's output"
        )
    return X


def check_grid_index(grid_index, n: int, names) -> Optional[np.ndarray]:
    """Validate ``grid_index`` (None, or ints >= -1 of shape (n_sounds, n_params))."""
    if grid_index is None:
        return None
    g = np.asarray(grid_index)
    if g.shape != (n, len(names)):
        raise ParameterError(
            f"grid_index has shape {g.shape}; expected (n_sounds, n_params) = {(n, len(names))}"
        )
    if g.dtype == bool or not np.issubdtype(g.dtype, np.number):
        raise ParameterError(f"grid_index must hold integers, got dtype {g.dtype}")
    if not np.issubdtype(g.dtype, np.integer):
        if not np.all(np.isfinite(g)) or not np.all(g == np.round(g)):
            raise ParameterError("grid_index must hold integers (-1 where a parameter is off-grid)")
    g = g.astype(np.int64)
    if np.any(g < -1):
        raise ParameterError(
            f"grid_index has values < -1 (min {int(g.min())}); use -1 for 'not on a grid'"
        )
    for j, name in enumerate(names):
        col = g[:, j]
        if np.any(col == -1) and np.any(col >= 0):
            raise ParameterError(
                f"grid_index column {name!r} mixes -1 and grid positions; a parameter is on a "
                f"grid for every sound (positions >= 0) or for none (all -1)"
            )
    return g


def prepare(embedding, theta, *, param_names=PARAM_NAMES, grid_index=None, scales=None,
            random_state=0) -> Prepared:
    """Validate the common inputs of every metric and compute what they share.

    Raises
    ------
    ParameterError
        On any invalid input; the message names the value and the fix.
    """
    X = check_embedding(embedding)
    T = np.asarray(theta)
    if T.ndim == 1:
        T = T[:, None]
    if T.ndim != 2:
        raise ParameterError(f"theta must be 2-D (n_sounds, n_params), got shape {T.shape}")
    if T.dtype == bool or not np.issubdtype(T.dtype, np.number) or np.iscomplexobj(T):
        raise ParameterError(f"theta must be a real float array, got dtype {T.dtype}")
    T = T.astype(np.float64)
    if T.shape[0] != X.shape[0]:
        raise ParameterError(
            f"embedding has {X.shape[0]} sounds but theta has {T.shape[0]}; "
            f"pass one row of parameters per embedded sound"
        )
    n = X.shape[0]
    if n < MIN_SOUNDS:
        raise ParameterError(f"need at least {MIN_SOUNDS} sounds, got {n}")
    if not np.all(np.isfinite(T)):
        raise ParameterError("theta has NaN or Inf values; every sound needs its parameters")
    names = _check_param_names(param_names, T.shape[1])
    scl = check_scales(scales, names)
    g = check_grid_index(grid_index, n, names)
    seed = check_seed(random_state)

    u = T.copy()
    for j, name in enumerate(names):
        if scl[name] == "log":
            if np.any(T[:, j] <= 0):
                raise ParameterError(
                    f"scales[{name!r}]='log' needs {name} > 0, but its minimum is "
                    f"{T[:, j].min():g}; use 'linear' for this parameter"
                )
            u[:, j] = np.log(T[:, j])
    sd = u.std(axis=0)
    for j, name in enumerate(names):
        if not sd[j] > 1e-12 * max(1.0, float(np.abs(u[:, j]).max())):
            raise ParameterError(
                f"parameter {name!r} is constant ({T[0, j]:g}) over the {n} sounds; the "
                f"metrics need every parameter to vary: drop that column from theta"
            )
    z = (u - u.mean(axis=0)) / sd
    Xc = X - X.mean(axis=0)
    spread = float(np.sqrt(np.mean(np.einsum("ij,ij->i", Xc, Xc))))
    if not spread > 1e-12 * max(1e-300, float(np.abs(X).max())):
        raise ParameterError(
            "the embedding is the same vector for every sound (zero spread): nothing "
            "can be measured; check the model's output"
        )
    return Prepared(Xc, spread, u, z, names, scl, g, seed)
