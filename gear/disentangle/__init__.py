"""Global disentanglement, topology and probe metrics of an embedding of parametric sounds.

GEAR's paper judges representations by looking at Isomap plots and by a local K-NN regression.
This package turns "this model is a 1-D strand in f1, that one a dense 3-D volume" into numbers,
computed from arrays only (no model involved):

- ``embedding``: np.ndarray, shape (n_sounds, dim), float;
- ``theta``: np.ndarray, shape (n_sounds, n_params), float, the known causes of each sound
  (``param_names = ("f1_hz", "alpha", "r")`` by default);
- ``grid_index`` (optional): np.ndarray, shape (n_sounds, n_params), int, each sound's position on
  each parameter's grid axis, -1 where that parameter is not on a grid (the paper dataset draws
  f1 at random per (alpha, r) cell: f1 has no grid axis there);
- ``scales``: parameter -> ``"linear"`` | ``"log"`` (default: log for f1, linear otherwise).
  Every metric sees the parameters on these scales;
- ``random_state``: an int makes every metric deterministic.

Metrics (module docstrings of :mod:`.probes`, :mod:`.sensitivity`, :mod:`.manifold` and
:mod:`.topology` give the formulas):

=================================  ==========  ==================================================
metric                             parameter   meaning
=================================  ==========  ==================================================
probe_r2_ridge, probe_r2_mlp       each        grouped-CV R^2 of a ridge / shallow-MLP probe
probe_r2_chance                    each        the same folds' R^2 of predicting the mean
sensitivity                        each        embedding spreads moved per std of the parameter
overlap                            ``a:b``     |cos| between the directions of a and b
orthogonality                      (model)     Hadamard ratio of the direction cosines
sensitivity_balance                (model)     geometric / arithmetic mean of sensitivity^2
disentanglement_score              (model)     orthogonality * sensitivity_balance, in [0, 1]
isomap_residual_variance_1..5      (model)     1 - R^2(geodesic, Isomap k-D distances)
intrinsic_dimension                (model)     elbow of the residual-variance curve
isomap_graph_components            (model)     connected components of the K-graph
trustworthiness, continuity        (model)     neighbourhood faithfulness, parameter space
betti_0, betti_1, betti_2          (model)     long-lived components, loops, voids
max_persistence_0..2               (model)     longest finite bar / cloud diameter
topology_extra_features            (model)     long-lived features a box does not have
=================================  ==========  ==================================================

The metric table of :mod:`gear.metrics` adds normalised neighbour scores, DCI, MIG, SAP,
modularity, explicitness, cluster scores and sweeps (``extended=True``).

``disentanglement.csv`` (:func:`write_disentanglement_csv`) holds these rows for several models in
long format, columns ``model,metric,parameter,value,ci_low,ci_high,note`` (parameter empty for the
whole-model metrics above, ``all`` for those of :mod:`gear.metrics`; an undefined value is empty
with the reason in ``note``).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from gear.errors import ParameterError
from gear.files import atomic_write_bytes

from ._inputs import PARAM_NAMES, check_fraction, check_int, default_scale, prepare
from .manifold import (
    MAX_ISOMAP_COMPONENTS,
    _isomap_rv,
    _trust_cont,
    farthest_point_sample,
    intrinsic_dimension,
    isomap_residual_variance,
    trustworthiness_continuity,
)
from .controls import CONTROL_NAMES, control_embeddings, control_theta
from .probes import _probe, principal_scores, probe_folds, probe_r2
from .sensitivity import SENSITIVITY_METHODS, _sensitivity, distance_per_unit, sensitivity_analysis
from .topology import BOX_BETTI, _persistence, persistence_summary

__all__ = [
    "DISENTANGLEMENT_COLUMNS",
    "distance_per_unit",
    "DisentanglementResult",
    "compute_disentanglement",
    "disentanglement_metrics",
    "write_disentanglement_csv",
    "read_disentanglement_csv",
    "pivot_metrics",
    "disentanglement_card",
    "disentanglement_card_html",
    "probe_r2",
    "probe_folds",
    "sensitivity_analysis",
    "isomap_residual_variance",
    "intrinsic_dimension",
    "trustworthiness_continuity",
    "persistence_summary",
    "farthest_point_sample",
    "principal_scores",
    "control_theta",
    "control_embeddings",
    "CONTROL_NAMES",
    "default_scale",
    "PARAM_NAMES",
    "SENSITIVITY_METHODS",
    "BOX_BETTI",
]

#: Columns of ``disentanglement.csv`` (a stable, documented output). ``ci_low, ci_high``: a
#: 95 % confidence interval where the metric has one; ``note``: why ``value`` is empty.
DISENTANGLEMENT_COLUMNS = ("model", "metric", "parameter", "value", "ci_low", "ci_high", "note")
#: The columns before the confidence intervals and notes (files written by older versions).
_LEGACY_COLUMNS = DISENTANGLEMENT_COLUMNS[:4]


@dataclasses.dataclass
class DisentanglementResult:
    """Everything :func:`compute_disentanglement` measured on one embedding.

    Attributes
    ----------
    rows : list of dict
        ``dict(metric=str, parameter=str, value=float)``, the long format of
        ``disentanglement.csv`` (parameter ``""`` for whole-model metrics).
    param_names : tuple of str
    scales : dict of str -> str
    probes : dict
        See :func:`probe_r2`.
    sensitivity : dict
        See :func:`sensitivity_analysis`.
    isomap : dict
        See :func:`isomap_residual_variance`.
    faithfulness : dict
        See :func:`trustworthiness_continuity`.
    topology : dict
        See :func:`persistence_summary`.
    settings : dict
        The options used.
    timings_s : dict of str -> float
        Wall-clock seconds per metric family.
    metrics : list of dict
        The rows of :func:`gear.metrics.evaluate` (normalised neighbour scores, DCI, MIG, SAP,
        modularity, explicitness, cluster scores, sweeps), with ``ci_low, ci_high, note``;
        also appended to ``rows``.
    """

    rows: List[dict]
    param_names: tuple
    scales: dict
    probes: dict
    sensitivity: dict
    isomap: dict
    faithfulness: dict
    topology: dict
    settings: dict
    timings_s: Dict[str, float]
    metrics: List[dict] = dataclasses.field(default_factory=list)

    def value(self, metric: str, parameter: str = "") -> float:
        """The value of one row (KeyError when absent); ``""`` also finds ``"all"``."""
        for row in self.rows:
            if row["metric"] == metric and (row["parameter"] == parameter
                                            or (parameter == "" and row["parameter"] == "all")):
                return row["value"]
        raise KeyError((metric, parameter))


def compute_disentanglement(
    embedding,
    theta,
    *,
    param_names: Sequence[str] = PARAM_NAMES,
    grid_index=None,
    scales: Optional[Mapping[str, str]] = None,
    random_state=0,
    n_folds: int = 5,
    probe_blocks: int = 4,
    mlp: bool = True,
    jacobian_neighbors: int = 20,
    sensitivity_method: str = "auto",
    overlap_blocks: int = 2,
    isomap_neighbors: int = 100,
    isomap_landmarks: Optional[int] = None,
    id_tolerance: float = 0.05,
    trust_neighbors: int = 10,
    topology_landmarks: int = 300,
    persistence_threshold: float = 0.1,
    extended: bool = True,
) -> DisentanglementResult:
    """All disentanglement metrics of one embedding, with the details the card plots.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
        One row per sound (n_sounds >= 20). Up to 5 000 sounds (``LARGE_SOUNDS``) the metrics
        use the full distance matrix (memory grows as n_sounds^2); above, no n x n matrix is
        formed (memory O(n K)): neighbour searches (exact or HNSW), landmark Isomap (500
        landmarks unless ``isomap_landmarks``), trustworthiness over 2 000 query sounds, the
        MST of the 100-NN graph, a 2 000-sound silhouette sample.
    theta : np.ndarray, shape (n_sounds, n_params), float
        The parameters of every sound, in their natural units (f1 in Hz, ...).
    param_names : sequence of str
        Names of the columns of ``theta`` (default ``("f1_hz", "alpha", "r")``).
    grid_index : np.ndarray, shape (n_sounds, n_params), int, optional
        Grid position of every sound on every parameter's axis; -1 for a parameter that is not on
        a grid. With every parameter on a complete factorial grid the sensitivities use exact
        finite differences; the probes' folds use grid positions for on-grid parameters.
    scales : mapping of str -> {"linear", "log"}, optional
        Scale of each parameter (default: "log" for f1, "linear" otherwise). "log" needs values
        > 0.
    random_state : int, RandomState, Generator or None
        An int makes every metric deterministic.
    n_folds, probe_blocks, mlp
        Probe folds, blocks per axis, and whether to fit the MLP probe (see :func:`probe_r2`).
    jacobian_neighbors, sensitivity_method, overlap_blocks
        See :func:`sensitivity_analysis` (``n_neighbors``, ``method``, ``overlap_blocks``).
    isomap_neighbors, isomap_landmarks, id_tolerance
        K of Isomap's graph (100), landmarks of landmark Isomap (None: exact, all pairs; 500
        is ~5x faster and within ~0.03 of the exact curve on the controls) and the elbow rule's
        tolerance (see :func:`isomap_residual_variance`).
    trust_neighbors : int
        k of trustworthiness and continuity (10).
    topology_landmarks, persistence_threshold
        Sub-sample size for b1/b2 (300) and the long-lived threshold (0.1 of the diameter), see
        :func:`persistence_summary`.
    extended : bool
        Also evaluate the metric table of :mod:`gear.metrics` (normalised neighbour scores,
        DCI, MIG, SAP, modularity, explicitness, cluster scores, sweeps).

    Returns
    -------
    DisentanglementResult

    Raises
    ------
    ParameterError
        On invalid input (the message names the value and the fix).
    """
    t0 = time.perf_counter()
    prep = prepare(embedding, theta, param_names=param_names, grid_index=grid_index,
                   scales=scales, random_state=random_state)
    options = dict(
        n_folds=n_folds, probe_blocks=probe_blocks, mlp=bool(mlp),
        jacobian_neighbors=jacobian_neighbors, sensitivity_method=sensitivity_method,
        overlap_blocks=overlap_blocks, isomap_neighbors=isomap_neighbors,
        isomap_landmarks=isomap_landmarks, id_tolerance=id_tolerance,
        trust_neighbors=trust_neighbors, topology_landmarks=topology_landmarks,
        persistence_threshold=persistence_threshold,
    )
    _check_options(prep, options)  # fail fast: every option before any metric runs
    distances = None if prep.large else prep.distances()  # O(n K) paths above LARGE_SOUNDS
    timings = {"distances": time.perf_counter() - t0}
    measured = _measure(prep, options, timings)
    rows = _global_rows(prep.param_names, **measured)
    metrics: List[dict] = []
    if extended:
        from gear.metrics import evaluate

        metrics = evaluate(embedding, theta, names=prep.param_names, scales=prep.scales,
                           grid_index=grid_index, distances=distances,
                           random_state=prep.seed, timings=timings)
    timings["total"] = time.perf_counter() - t0
    settings = dict(options, sensitivity_method=measured["sens"]["method"],
                    isomap_neighbors=measured["iso"]["n_neighbors"], random_state=prep.seed,
                    extended=bool(extended))
    return DisentanglementResult(
        rows=rows + metrics, param_names=prep.param_names, scales=dict(prep.scales),
        probes=measured["probes"], sensitivity=measured["sens"], isomap=measured["iso"],
        faithfulness=measured["faith"], topology=measured["topo"], settings=settings,
        timings_s=timings, metrics=metrics,
    )


def _check_options(prep, o: dict) -> None:
    """ParameterError naming the first invalid option of :func:`compute_disentanglement`."""
    check_int(o["n_folds"], "n_folds", 2)
    check_int(o["probe_blocks"], "probe_blocks", 2)
    check_int(o["jacobian_neighbors"], "jacobian_neighbors", 2 * prep.p, prep.n - 1)
    if o["sensitivity_method"] not in SENSITIVITY_METHODS:
        raise ParameterError(f"sensitivity_method={o['sensitivity_method']!r}; choose one of "
                             f"{', '.join(SENSITIVITY_METHODS)}")
    check_int(o["overlap_blocks"], "overlap_blocks", 1)
    check_int(o["isomap_neighbors"], "isomap_neighbors", 1)
    if o["isomap_landmarks"] is not None:
        check_int(o["isomap_landmarks"], "isomap_landmarks", MAX_ISOMAP_COMPONENTS + 2)
    check_fraction(o["id_tolerance"], "id_tolerance")
    if not check_int(o["trust_neighbors"], "trust_neighbors", 1) < prep.n / 2:
        raise ParameterError(f"trust_neighbors={o['trust_neighbors']} must be < n_sounds / 2 = "
                             f"{prep.n / 2:g}; lower it")
    check_int(o["topology_landmarks"], "topology_landmarks", 10)
    check_fraction(o["persistence_threshold"], "persistence_threshold")


def _timed(timings: dict, key: str, function, *args, **kwargs):
    t = time.perf_counter()
    out = function(*args, **kwargs)
    timings[key] = time.perf_counter() - t
    return out


def _measure(prep, o: dict, timings: dict) -> dict:
    """Probes, sensitivity, Isomap, faithfulness and topology of a prepared embedding."""
    probes = _timed(timings, "probes", _probe, prep, n_folds=o["n_folds"],
                    n_blocks=o["probe_blocks"], mlp=o["mlp"])
    sens = _timed(timings, "sensitivity", _sensitivity, prep, n_neighbors=o["jacobian_neighbors"],
                  method=o["sensitivity_method"], overlap_blocks=o["overlap_blocks"])
    t = time.perf_counter()
    iso = _isomap_rv(prep, n_neighbors=o["isomap_neighbors"], n_landmarks=o["isomap_landmarks"])
    iso["intrinsic_dimension"] = intrinsic_dimension(iso["residual_variance"],
                                                     tolerance=o["id_tolerance"])
    timings["isomap"] = time.perf_counter() - t
    faith = _timed(timings, "trustworthiness", _trust_cont, prep, n_neighbors=o["trust_neighbors"])
    topo = _timed(timings, "topology", _persistence, prep, n_landmarks=o["topology_landmarks"],
                  threshold=o["persistence_threshold"])
    return dict(probes=probes, sens=sens, iso=iso, faith=faith, topo=topo)


def _global_rows(names, *, probes, sens, iso, faith, topo) -> List[dict]:
    """The rows of the probe, sensitivity, Isomap, faithfulness and topology metrics."""
    rows: List[dict] = []

    def add(metric, parameter, value):
        rows.append({"metric": metric, "parameter": parameter, "value": float(value)})

    for j, name in enumerate(names):
        add("probe_r2_ridge", name, probes["ridge"][j])
        if "mlp" in probes:
            add("probe_r2_mlp", name, probes["mlp"][j])
        add("probe_r2_chance", name, probes["chance"][j])
    for j, name in enumerate(names):
        add("sensitivity", name, sens["sensitivity"][j])
    for j in range(len(names)):
        for l in range(j + 1, len(names)):
            add("overlap", f"{names[j]}:{names[l]}", sens["overlap"][j, l])
    add("orthogonality", "", sens["orthogonality"])
    add("sensitivity_balance", "", sens["balance"])
    add("disentanglement_score", "", sens["score"])
    for k, rv in zip(iso["n_components"], iso["residual_variance"]):
        add(f"isomap_residual_variance_{int(k)}", "", rv)
    add("intrinsic_dimension", "", iso["intrinsic_dimension"])
    add("isomap_graph_components", "", iso["n_graph_components"])
    add("trustworthiness", "", faith["trustworthiness"])
    add("continuity", "", faith["continuity"])
    for k, b in enumerate(topo["betti"]):
        add(f"betti_{k}", "", b)
    for k, p in enumerate(topo["max_persistence"]):
        add(f"max_persistence_{k}", "", p)
    add("topology_extra_features", "", topo["extra_features"])
    return rows


def disentanglement_metrics(embedding, theta, *, param_names: Sequence[str] = PARAM_NAMES,
                            grid_index=None, scales: Optional[Mapping[str, str]] = None,
                            random_state=0, **options) -> List[dict]:
    """All disentanglement metrics of one embedding as rows of ``disentanglement.csv``.

    Parameters
    ----------
    embedding : np.ndarray, shape (n_sounds, dim), float
    theta : np.ndarray, shape (n_sounds, n_params), float
    param_names, grid_index, scales, random_state
        See :func:`compute_disentanglement`.
    **options
        Any other keyword of :func:`compute_disentanglement`.

    Returns
    -------
    list of dict
        ``dict(metric=str, parameter=str, value=float)``; ``parameter`` is a parameter name, a
        pair ``"a:b"`` (overlap) or ``""`` (whole-model metric). The table in this package's
        docstring lists the metrics.
    """
    return compute_disentanglement(embedding, theta, param_names=param_names,
                                   grid_index=grid_index, scales=scales,
                                   random_state=random_state, **options).rows


def _rows_of(value) -> List[dict]:
    if isinstance(value, DisentanglementResult):
        return value.rows
    if isinstance(value, (list, tuple)):
        for row in value:
            if not isinstance(row, Mapping) or not {"metric", "parameter", "value"} <= set(row):
                raise ParameterError(
                    f"a row {row!r} lacks metric/parameter/value; pass the rows returned by "
                    f"disentanglement_metrics or a DisentanglementResult"
                )
        return list(value)
    raise ParameterError(
        f"expected a DisentanglementResult or a list of rows, got {type(value).__name__}"
    )


def _format_value(v) -> str:
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def _csv_cells(row: Mapping) -> List[str]:
    """value, ci_low, ci_high, note of a row; an undefined value with a note is left empty."""
    note = str(row.get("note", "") or "")
    value = "" if note and not math.isfinite(float(row["value"])) else _format_value(row["value"])
    ci = [row.get("ci_low"), row.get("ci_high")]
    ci = ["" if c is None or not math.isfinite(float(c)) else _format_value(c) for c in ci]
    return [value, *ci, note]


def write_disentanglement_csv(path, results: Mapping[str, object]) -> Path:
    """Write ``disentanglement.csv`` for several models, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    results : mapping of str -> DisentanglementResult or list of dict
        Model name -> its result (or the rows of :func:`disentanglement_metrics`), written in
        the mapping's order.

    Returns
    -------
    pathlib.Path
        The path written. Columns :data:`DISENTANGLEMENT_COLUMNS`; values are Python float
        reprs (``nan`` where undefined without a note, empty where a ``note`` says why).
    """
    path = Path(path)
    if not isinstance(results, Mapping) or not results:
        raise ParameterError("results must be a non-empty mapping model name -> result or rows")
    if not path.parent.is_dir():
        raise ParameterError(f"folder {str(path.parent)!r} does not exist; create it first")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(DISENTANGLEMENT_COLUMNS)
    for model, value in results.items():
        if not isinstance(model, str) or not model:
            raise ParameterError(f"model names must be non-empty strings, got {model!r}")
        for row in _rows_of(value):
            writer.writerow([model, row["metric"], row["parameter"], *_csv_cells(row)])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    return path


def _float_cell(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def read_disentanglement_csv(path) -> Dict[str, List[dict]]:
    """Read ``disentanglement.csv`` back: model -> rows (values as floats)."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"no file at {str(path)!r}")
    out: Dict[str, List[dict]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) not in (DISENTANGLEMENT_COLUMNS, _LEGACY_COLUMNS):
            raise ParameterError(
                f"{str(path)!r} has columns {reader.fieldnames}; expected "
                f"{','.join(DISENTANGLEMENT_COLUMNS)}"
            )
        for rec in reader:
            out.setdefault(rec["model"], []).append(
                {"metric": rec["metric"], "parameter": rec["parameter"],
                 "value": _float_cell(rec["value"]), "ci_low": _float_cell(rec.get("ci_low", "")),
                 "ci_high": _float_cell(rec.get("ci_high", "")), "note": rec.get("note", "") or ""}
            )
    return out


def pivot_metrics(results: Mapping[str, object]) -> Dict[str, Dict[str, float]]:
    """One flat record per model, for a sortable leaderboard.

    Parameters
    ----------
    results : mapping of str -> DisentanglementResult or list of dict

    Returns
    -------
    dict of str -> dict of str -> float
        Model -> {column: value}, the column being ``metric`` for whole-model metrics
        (parameter ``""`` or ``"all"``) and ``metric[parameter]`` otherwise (e.g.
        ``probe_r2_ridge[f1_hz]``).
    """
    table = {}
    for model, value in results.items():
        table[model] = {
            (r["metric"] if r["parameter"] in ("", "all") else f"{r['metric']}[{r['parameter']}]"):
                (math.nan if r["value"] is None else float(r["value"]))
            for r in _rows_of(value)
        }
    return table


def disentanglement_card(result: DisentanglementResult, *, model: str = "") -> dict:
    """Plotly figures of one model's disentanglement card.

    See :func:`gear.disentangle.card.disentanglement_card`.
    """
    from .card import disentanglement_card as _card

    return _card(result, model=model)


def disentanglement_card_html(result: DisentanglementResult, *, model: str = "") -> str:
    """The card as an HTML fragment (plotly.js not included: the page must load it once).

    See :func:`gear.disentangle.card.disentanglement_card_html`.
    """
    from .card import disentanglement_card_html as _html

    return _html(result, model=model)
