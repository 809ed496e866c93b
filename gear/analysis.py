"""GEAR's analysis: Isomap pictures and the K-nearest-neighbour log-ratio scores.

For each sound i and parameter theta, the K nearest neighbours of i in embedding space
(excluding i itself) predict ``theta_tilde_i = mean_j theta_j``; the score is the log-ratio
``log(theta_tilde_i / theta_i)``: 0 for a representation whose neighbourhoods preserve the
parameter. Differences with the paper's code (deliberate):

- the paper's code counted each point as its own neighbour; we exclude it;
- the paper reported the raw ratios; we summarise per (model, parameter) by the median of
  |log-ratio|, its interquartile range, and a bootstrap 95 % confidence interval of that
  median, next to the *chance level* (the same statistic with random neighbours, i.e. what a
  shuffled embedding scores);
- alpha = 0 and r = 0 occur in the paper grid, where log(theta_tilde / theta) is undefined:
  on the linear scale those sounds get NaN and are left out of the summaries (``n`` counts
  the sounds kept: 2 450 of 2 500 for alpha and for r in the paper grid). A ``"log"`` scale
  (for f1: pitch is heard on a log scale) averages log theta_j instead, i.e.
  ``mean_j log theta_j - log theta_i``, and requires theta > 0.

Memory and scale: up to :data:`EXACT_MAX_SOUNDS` (5 000) sounds, by default, Isomap is
scikit-learn's exact one (n x n geodesics) and neighbours come from scikit-learn's exact
search: GEAR's historical path, whose numbers do not change. Above, neighbours come from a faiss
HNSW index (:mod:`gear.neighbours`, recall measured by :func:`gear.neighbours.recall_at_k`) and
Isomap is landmark Isomap (:mod:`gear.landmark`); :func:`analyse` shares one search between
them. Scores, chance and bootstrap hold O(n K) memory above 4 000 sounds (the chance level
draws K distinct random neighbours from an n x (n - 1) matrix up to 4 000 sounds, with
replacement above; bootstrap resamples are drawn 100 at a time), so no n x n matrix is formed
above 5 000 sounds.
"""
from __future__ import annotations

import warnings
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from gear.errors import ParameterError
from gear.neighbours import EXACT_MAX_SOUNDS, KNeighbours, choose_algorithm, search

__all__ = [
    "DisconnectedGraphWarning",
    "scale_features",
    "isomap_embedding",
    "neighbour_indices",
    "knn_log_ratios",
    "summarise_log_ratios",
    "chance_log_ratios",
    "score_embedding",
    "SCALINGS",
    "EXACT_MAX_SOUNDS",
    "analyse",
]

SCALINGS = ("none", "standard", "maxabs")
PARAMETER_SCALES = ("linear", "log")


class DisconnectedGraphWarning(UserWarning):
    """The K-nearest-neighbour graph of an embedding has several connected components."""


def _check_features(features) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2:
        raise ParameterError(
            f"embedding must be 2-D (n_sounds, n_features), got shape {features.shape}"
        )
    if features.shape[0] < 3:
        raise ParameterError(f"need at least 3 sounds, got {features.shape[0]}")
    if features.shape[0] > EXACT_MAX_SOUNDS:
        return _check_large_features(features)
    if not np.all(np.isfinite(features)):
        n_bad = int(np.sum(~np.isfinite(features).all(axis=1)))
        raise ParameterError(
            f"embedding has NaN or Inf values in {n_bad} sounds; check the model's output"
        )
    return features.astype(np.float64, copy=False)


def _check_large_features(features: np.ndarray) -> np.ndarray:
    """Above EXACT_MAX_SOUNDS: finiteness checked in chunks, float32 kept (no float64 copy)."""
    n_bad = 0
    for start in range(0, features.shape[0], 8192):
        n_bad += int(np.sum(~np.isfinite(features[start:start + 8192]).all(axis=1)))
    if n_bad:
        raise ParameterError(f"embedding has NaN or Inf values in {n_bad} sounds; check the model's output")
    return features if features.dtype in (np.float32, np.float64) else features.astype(np.float64)


def scale_features(features, *, scaling: str = "none") -> np.ndarray:
    """Scale embedding dimensions before distances are taken.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features)
    scaling : {"none", "standard", "maxabs"}
        ``"standard"``: zero mean, unit variance per dimension (constant dimensions are
        left at zero); ``"maxabs"``: each dimension divided by its max |value|.

    Returns
    -------
    np.ndarray, shape (n_sounds, n_features), float64
    """
    features = _check_features(features)
    if scaling == "none":
        return features
    if scaling == "standard":
        from sklearn.preprocessing import StandardScaler

        return StandardScaler().fit_transform(features)
    if scaling == "maxabs":
        from sklearn.preprocessing import MaxAbsScaler

        return MaxAbsScaler().fit_transform(features)
    raise ParameterError(f"scaling={scaling!r}; choose one of {', '.join(SCALINGS)}")


def _check_k(n_neighbors, n_sounds, name="n_neighbors") -> int:
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {n_neighbors!r}")
    if not 1 <= n_neighbors < n_sounds:
        raise ParameterError(
            f"{name}={n_neighbors} must be in [1, n_sounds - 1] = [1, {n_sounds - 1}]; "
            f"lower it or embed more sounds"
        )
    return int(n_neighbors)


def isomap_embedding(
    features,
    *,
    n_neighbors: int = 100,
    n_components: int = 3,
    scaling: str = "none",
    n_landmarks="auto",
    neighbors_algorithm: str = "auto",
    random_state: int = 0,
    neighbours: Optional[KNeighbours] = None,
) -> Tuple[np.ndarray, int]:
    """Isomap coordinates of an embedding, and the K-graph's component count.

    Up to :data:`EXACT_MAX_SOUNDS` sounds (by default) this is scikit-learn's exact Isomap,
    which holds n x n geodesics; above, landmark Isomap (:class:`gear.landmark.LandmarkIsomap`,
    O(n (K + L)) memory) on a K-graph from :func:`gear.neighbours.search`.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features)
    n_neighbors : int
        K of the neighbour graph (100 in the GEAR paper).
    n_components : int
        Output dimensions (3 in the paper).
    scaling : {"none", "standard", "maxabs"}
        See :func:`scale_features`.
    n_landmarks : "auto", None or int
        ``"auto"``: exact up to EXACT_MAX_SOUNDS sounds, else
        :data:`gear.landmark.DEFAULT_LANDMARKS` landmarks; ``None``: always exact (n x n
        memory); an int: landmark Isomap with that many landmarks.
    neighbors_algorithm : {"auto", "exact", "hnsw"}
        Neighbour search of landmark Isomap (see :func:`gear.neighbours.search`).
    random_state : int
        Seed of the first landmark and of an approximate search.
    neighbours : KNeighbours, optional
        A search of the *scaled* features with at least ``n_neighbors`` neighbours, reused by
        landmark Isomap instead of searching again.

    Returns
    -------
    coordinates : np.ndarray, shape (n_sounds, n_components), float64
    n_graph_components : int
        Connected components of the K-nearest-neighbour graph. When > 1, a
        :class:`DisconnectedGraphWarning` is issued: the components are then linked by their
        closest points (as scikit-learn does), so distances between components are not
        geodesic and the picture can place them arbitrarily.
    """
    features = scale_features(features, scaling=scaling)
    n_neighbors = _check_k(n_neighbors, features.shape[0])
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or not 1 <= n_components < features.shape[0]:
        raise ParameterError(f"n_components must be an integer in [1, n_sounds - 1], got {n_components!r}")
    n_landmarks = _resolve_landmarks(n_landmarks, features.shape[0])
    if n_landmarks is None:
        coordinates, n_graph_components = _exact_isomap(features, n_neighbors, n_components)
    else:
        from gear.landmark import LandmarkIsomap

        model = LandmarkIsomap(
            n_neighbors=n_neighbors, n_components=n_components, n_landmarks=n_landmarks,
            neighbors_algorithm=neighbors_algorithm, random_state=random_state, neighbours=neighbours,
        )
        coordinates, n_graph_components = model.fit_transform(features), model.n_connected_components_
    if n_graph_components > 1:
        warnings.warn(
            f"the {n_neighbors}-nearest-neighbour graph of this embedding has "
            f"{n_graph_components} connected components: Isomap distances between them are "
            f"not geodesic; raise n_neighbors or read the picture per component",
            DisconnectedGraphWarning,
            stacklevel=2,
        )
    return coordinates, int(n_graph_components)


def _resolve_landmarks(n_landmarks, n_sounds: int) -> Optional[int]:
    from gear.landmark import DEFAULT_LANDMARKS

    if isinstance(n_landmarks, str) and n_landmarks == "auto":
        return None if n_sounds <= EXACT_MAX_SOUNDS else DEFAULT_LANDMARKS
    if n_landmarks is None:
        return None
    if isinstance(n_landmarks, bool) or not isinstance(n_landmarks, (int, np.integer)) or n_landmarks < 2:
        raise ParameterError(f"n_landmarks must be 'auto', None or an integer >= 2, got {n_landmarks!r}")
    return int(n_landmarks)


def _exact_isomap(features: np.ndarray, n_neighbors: int, n_components: int):
    """scikit-learn's Isomap (n x n geodesics): GEAR's path up to EXACT_MAX_SOUNDS sounds."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.manifold import Isomap
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(features, n_neighbors, mode="connectivity")
    n_graph_components, _ = connected_components(graph, directed=False)
    with warnings.catch_warnings():
        # scikit-learn's own warning about disconnected graphs is replaced by ours.
        warnings.filterwarnings("ignore", message=".*connected components.*")
        # ... and so is the sparse-efficiency notice it raises while linking the components.
        warnings.filterwarnings("ignore", message=".*sparsity structure.*")
        coordinates = Isomap(n_neighbors=n_neighbors, n_components=n_components).fit_transform(features)
    return coordinates, n_graph_components


def neighbour_indices(
    features, *, n_neighbors: int = 40, scaling: str = "none", algorithm: str = "auto", random_state: int = 0
) -> np.ndarray:
    """Indices of each sound's K nearest neighbours in embedding space, self excluded.

    ``algorithm``: see :func:`gear.neighbours.search` (``"auto"``: exact up to
    :data:`EXACT_MAX_SOUNDS` sounds, HNSW above).

    Returns
    -------
    np.ndarray, shape (n_sounds, n_neighbors), int
        Sorted by distance. When duplicates make another sound tie with the query at
        distance 0, the query itself is still the one removed.
    """
    features = scale_features(features, scaling=scaling)
    n_neighbors = _check_k(n_neighbors, features.shape[0])
    return search(features, n_neighbors, algorithm=algorithm, random_state=random_state).indices


def _theta_columns(theta, parameters: Optional[Sequence[str]]) -> Dict[str, np.ndarray]:
    if isinstance(theta, Mapping):
        names = list(parameters) if parameters is not None else list(theta)
        columns = {}
        for name in names:
            if name not in theta:
                raise ParameterError(f"parameter {name!r} not in theta; available: {sorted(theta)}")
            columns[name] = np.asarray(theta[name], dtype=np.float64)
    else:
        array = np.asarray(theta, dtype=np.float64)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ParameterError(f"theta must be (n_sounds, n_parameters), got shape {array.shape}")
        names = list(parameters) if parameters is not None else [f"theta{k}" for k in range(array.shape[1])]
        if len(names) != array.shape[1]:
            raise ParameterError(f"{len(names)} parameter names for {array.shape[1]} theta columns")
        columns = {name: array[:, k] for k, name in enumerate(names)}
    for name, column in columns.items():
        if column.ndim != 1 or not np.all(np.isfinite(column)):
            raise ParameterError(f"parameter {name!r} must be a finite 1-D array")
    return columns


def _log_ratio_from_neighbours(values: np.ndarray, neighbours: np.ndarray, scale: str) -> np.ndarray:
    if scale == "linear":
        estimate = values[neighbours].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = estimate / values
            out = np.log(ratio)
        out[~(ratio > 0) | (values == 0)] = np.nan
        return out
    if scale == "log":
        logs = np.log(values)
        return logs[neighbours].mean(axis=1) - logs
    raise ParameterError(f"scale={scale!r}; choose 'linear' or 'log'")


def knn_log_ratios(
    features,
    theta,
    *,
    parameters: Optional[Sequence[str]] = None,
    n_neighbors: int = 40,
    scaling: str = "none",
    scales: Optional[Mapping[str, str]] = None,
    algorithm: str = "auto",
    random_state: int = 0,
    neighbours: Optional[KNeighbours] = None,
) -> Dict[str, np.ndarray]:
    """The K-NN regression log-ratio of every sound, per parameter.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features)
        The embedding.
    theta : mapping of name -> (n_sounds,) array, or array (n_sounds, n_parameters)
        Known parameters of the sounds.
    parameters : sequence of str, optional
        Names (and order) of the parameters to score.
    n_neighbors : int
        K (40 in the GEAR paper). Self is excluded.
    scaling : {"none", "standard", "maxabs"}
        Scaling of the embedding's dimensions before distances.
    scales : mapping of name -> {"linear", "log"}, optional
        Scale of each parameter (default linear, as in the paper; ``{"f1_hz": "log"}`` for
        pitch on a log scale).
    algorithm : {"auto", "exact", "hnsw"}
        Neighbour search (see :func:`gear.neighbours.search`).
    random_state : int
        Seed of an approximate search.
    neighbours : KNeighbours, optional
        A search of the *scaled* features with at least ``n_neighbors`` neighbours (its first
        ``n_neighbors`` are used) instead of a new search.

    Returns
    -------
    dict of str -> np.ndarray, shape (n_sounds,), float64
        NaN where undefined (theta_i = 0, or a non-positive ratio, on the linear scale).
    """
    features = _check_features(features)
    columns = _theta_columns(theta, parameters)
    scales = dict(scales or {})
    for name in scales:
        if name not in columns:
            raise ParameterError(f"scales names {name!r}, which is not a scored parameter ({sorted(columns)})")
    for name, column in columns.items():
        if column.shape[0] != features.shape[0]:
            raise ParameterError(
                f"parameter {name!r} has {column.shape[0]} values for {features.shape[0]} embedded sounds"
            )
        if scales.get(name, "linear") == "log" and np.any(column <= 0):
            raise ParameterError(
                f"scale 'log' for {name!r} needs theta > 0, got {column.min()!r}; use 'linear'"
            )
    if neighbours is None:
        indices = neighbour_indices(
            features, n_neighbors=n_neighbors, scaling=scaling, algorithm=algorithm, random_state=random_state
        )
    else:
        indices = neighbours.first(_check_k(n_neighbors, features.shape[0])).indices
    return {
        name: _log_ratio_from_neighbours(column, indices, scales.get(name, "linear"))
        for name, column in columns.items()
    }


def chance_log_ratios(
    theta,
    *,
    parameters: Optional[Sequence[str]] = None,
    n_neighbors: int = 40,
    scales: Optional[Mapping[str, str]] = None,
    random_state: int = 0,
) -> Dict[str, np.ndarray]:
    """Log-ratios with K random neighbours per sound (self excluded): what a shuffled
    embedding scores. Same conventions as :func:`knn_log_ratios`."""
    columns = _theta_columns(theta, parameters)
    n = next(iter(columns.values())).shape[0]
    n_neighbors = _check_k(n_neighbors, n)
    rng = np.random.default_rng(random_state)
    # K distinct others per sound: draw from n - 1 and skip self.
    draws = np.argsort(rng.random((n, n - 1)), axis=1)[:, :n_neighbors] if n <= 4000 else rng.integers(0, n - 1, (n, n_neighbors))
    neighbours = draws + (draws >= np.arange(n)[:, None])
    scales = dict(scales or {})
    return {
        name: _log_ratio_from_neighbours(column, neighbours, scales.get(name, "linear"))
        for name, column in columns.items()
    }


def summarise_log_ratios(
    log_ratios, *, n_bootstrap: int = 1000, confidence: float = 0.95, random_state: int = 0
) -> dict:
    """Median |log-ratio|, its IQR and a bootstrap confidence interval of the median.

    Parameters
    ----------
    log_ratios : np.ndarray, shape (n_sounds,)
        NaN entries (undefined log-ratios) are left out.
    n_bootstrap : int
        Bootstrap resamples of the sounds (percentile interval).

    Returns
    -------
    dict with keys ``median_abs_log_ratio``, ``iqr`` (interquartile range of |log-ratio|),
    ``ci_low``, ``ci_high``, ``n`` (sounds kept).
    """
    values = np.abs(np.asarray(log_ratios, dtype=np.float64))
    values = values[~np.isnan(values)]
    n = int(values.size)
    if n == 0:
        return dict(median_abs_log_ratio=np.nan, iqr=np.nan, ci_low=np.nan, ci_high=np.nan, n=0)
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence must be in (0, 1), got {confidence!r}")
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    rng = np.random.default_rng(random_state)
    medians = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, 100):  # chunks bound the memory to 100 x n
        stop = min(start + 100, n_bootstrap)
        medians[start:stop] = np.median(values[rng.integers(0, n, (stop - start, n))], axis=1)
    tail = (1 - confidence) / 2
    ci_low, ci_high = np.quantile(medians, [tail, 1 - tail])
    return dict(
        median_abs_log_ratio=float(median),
        iqr=float(q3 - q1),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        n=n,
    )


def score_embedding(
    features,
    theta,
    *,
    parameters: Optional[Sequence[str]] = None,
    n_neighbors: int = 40,
    scaling: str = "none",
    scales: Optional[Mapping[str, str]] = None,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    algorithm: str = "auto",
    neighbours: Optional[KNeighbours] = None,
):
    """Log-ratios and one summary row per parameter (with the chance level).

    ``algorithm`` and ``neighbours``: see :func:`knn_log_ratios`. Memory is O(n K) above
    4 000 sounds (chance neighbours are drawn with replacement there; bootstrap resamples
    are taken 100 at a time).

    Returns
    -------
    log_ratios : dict of str -> np.ndarray, shape (n_sounds,)
    rows : list of dict
        Keys ``parameter, median_abs_log_ratio, iqr, ci_low, ci_high, n, chance``.
    """
    log_ratios = knn_log_ratios(
        features, theta, parameters=parameters, n_neighbors=n_neighbors, scaling=scaling, scales=scales,
        algorithm=algorithm, random_state=random_state, neighbours=neighbours,
    )
    chance = chance_log_ratios(
        theta, parameters=list(log_ratios), n_neighbors=n_neighbors, scales=scales, random_state=random_state
    )
    rows = []
    for name, values in log_ratios.items():
        row = {"parameter": name}
        row.update(summarise_log_ratios(values, n_bootstrap=n_bootstrap, random_state=random_state))
        chance_values = np.abs(chance[name])
        row["chance"] = float(np.nanmedian(chance_values)) if np.any(~np.isnan(chance_values)) else np.nan
        rows.append(row)
    return log_ratios, rows


def analyse(
    features,
    theta,
    *,
    parameters: Optional[Sequence[str]] = None,
    isomap_neighbors: int = 100,
    isomap_components: int = 3,
    n_neighbors: int = 40,
    scaling: str = "none",
    scales: Optional[Mapping[str, str]] = None,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    algorithm: str = "auto",
    n_landmarks="auto",
) -> dict:
    """Isomap and scores of one embedding with a single neighbour search.

    Up to :data:`EXACT_MAX_SOUNDS` sounds with the default ``algorithm`` and ``n_landmarks``
    this is exactly :func:`isomap_embedding` followed by :func:`score_embedding` (GEAR's
    historical path, same numbers). Above, the features are scaled once, searched once with
    ``max(isomap_neighbors, n_neighbors)`` neighbours, and that search feeds landmark Isomap
    and the scores: O(n K) memory, no n x n matrix.

    Returns
    -------
    dict with keys ``coordinates`` (n_sounds, isomap_components), ``n_graph_components``,
    ``log_ratios`` (dict of parameter -> (n_sounds,)), ``rows`` (see :func:`score_embedding`),
    ``algorithm`` (the neighbour search used, "exact" or "hnsw").
    """
    n = np.shape(features)[0]
    settings = dict(parameters=parameters, n_neighbors=n_neighbors, scales=scales, n_bootstrap=n_bootstrap,
                    random_state=random_state)
    isomap_settings = dict(n_neighbors=isomap_neighbors, n_components=isomap_components, random_state=random_state)
    if choose_algorithm(n, algorithm) == "exact" and _resolve_landmarks(n_landmarks, n) is None:
        coordinates, n_graph_components = isomap_embedding(features, scaling=scaling, n_landmarks=None, **isomap_settings)
        log_ratios, rows = score_embedding(features, theta, scaling=scaling, algorithm="exact", **settings)
        return dict(coordinates=coordinates, n_graph_components=n_graph_components, log_ratios=log_ratios,
                    rows=rows, algorithm="exact")
    scaled = scale_features(features, scaling=scaling)
    k = max(_check_k(isomap_neighbors, n, "isomap_neighbors"), _check_k(n_neighbors, n))
    neighbours = search(scaled, k, algorithm=algorithm, random_state=random_state)
    coordinates, n_graph_components = isomap_embedding(
        scaled, n_landmarks=n_landmarks, neighbours=neighbours, **isomap_settings
    )
    log_ratios, rows = score_embedding(scaled, theta, neighbours=neighbours, **settings)
    return dict(coordinates=coordinates, n_graph_components=n_graph_components, log_ratios=log_ratios,
                rows=rows, algorithm=neighbours.algorithm)
