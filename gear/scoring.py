"""``gear score``: disentanglement, topology and probe metrics for every stored model.

Reads ``OUT/models/<name>/embedding.npy`` and the run's tone set, computes
:func:`gear.disentangle.compute_disentanglement`, and stores per model
``disentanglement.json`` (the rows) and ``disentanglement_card.html`` (the card, an HTML
fragment the report embeds), then ``OUT/disentanglement.csv`` over all models with columns
``model,metric,parameter,value,ci_low,ci_high,note`` and, with two models or more,
``OUT/similarity.csv`` (``model_a,model_b,metric,value,p_value``: linear CKA, debiased CKA and
RSA of every pair). Results are keyed by a hash of the embeddings and settings, so a rerun
recomputes only what changed. Above 5 000 tones every metric runs in O(n K) memory (no n x n
matrix; see :func:`gear.disentangle.compute_disentanglement`); with a Dask ``client`` each
model is scored as one task (:func:`gear.distributed.run_tasks`), with the same outputs.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from gear import pipeline
from gear.errors import ParameterError

__all__ = ["score_results", "disentanglement_sections", "unit_sensitivity_section", "stored_unit_sensitivity", "stored_similarity", "CARD_FILE",
           "ROWS_FILE", "SIMILARITY_FILE"]

CARD_FILE = "disentanglement_card.html"
ROWS_FILE = "disentanglement.json"
CSV_FILE = "disentanglement.csv"
SIMILARITY_FILE = "similarity.csv"
_SIMILARITY_JSON = "similarity.json"
#: Version of the metric set: stored results of another version are recomputed.
METRICS_VERSION = 2
_FLOAT_FIELDS = ("value", "ci_low", "ci_high")

#: Leaderboard columns: (pivoted metric name, label, higher is better)
LEADERBOARD_COLUMNS = (
    ("mean_normalised_score", "normalised score (0 oracle, 1 chance)", False),
    ("normalised_score[f1_hz]", "norm. f1", False),
    ("normalised_score[alpha]", "norm. α", False),
    ("normalised_score[r]", "norm. r", False),
    ("dci_disentanglement", "DCI D", True),
    ("mig", "MIG", True),
    ("sap", "SAP", True),
    ("disentanglement_score", "disentanglement", True),
    ("orthogonality", "orthogonality", True),
    ("probe_r2_ridge[f1_hz]", "ridge R² f1", True),
    ("probe_r2_ridge[alpha]", "ridge R² α", True),
    ("probe_r2_ridge[r]", "ridge R² r", True),
    ("probe_r2_mlp[f1_hz]", "MLP R² f1", True),
    ("probe_r2_mlp[alpha]", "MLP R² α", True),
    ("probe_r2_mlp[r]", "MLP R² r", True),
    ("sensitivity[f1_hz]", "sensitivity f1", True),
    ("sensitivity[alpha]", "sensitivity α", True),
    ("sensitivity[r]", "sensitivity r", True),
    ("intrinsic_dimension", "intrinsic dim.", False),
    ("trustworthiness", "trustworthiness", True),
    ("continuity", "continuity", True),
    ("betti_0", "b0", False),
    ("betti_1", "b1", False),
    ("betti_2", "b2", False),
    ("topology_extra_features", "extra topology", False),
)


def _key(embedding: np.ndarray, settings: dict) -> str:
    digest = hashlib.sha256(memoryview(np.ascontiguousarray(embedding)).cast("B"))  # the bytes, without a copy
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def score_results(
    out_dir: os.PathLike,
    *,
    models: Optional[Sequence[str]] = None,
    scales: Optional[dict] = None,
    random_state: int = 0,
    progress: Optional[Callable] = None,
    client=None,
) -> Dict[str, List[dict]]:
    """Compute (or reuse) the disentanglement metrics of stored models; write the CSV.

    Parameters
    ----------
    out_dir : path-like
        A results directory written by ``gear run`` / ``gear add-submission``.
    models : sequence of str, optional
        Only these stored models (default: all with an embedding).
    scales : dict, optional
        Parameter scales (default: log f1, linear alpha and r).
    progress : callable, optional
        ``progress(total=n)`` gives a bar with ``update(1)`` and ``close()`` (the CLI passes
        tqdm): one step per model scored.
    client : distributed.Client, optional
        Score each model as one task on this Dask cluster (:mod:`gear.distributed`); the
        outputs equal a serial run's. Default: serially, here.

    Returns
    -------
    dict of model -> rows (``metric, parameter, value``)
    """
    from gear.disentangle import write_disentanglement_csv

    import warnings

    from gear.store import CorruptEntryError, CorruptEntryWarning, ResultsStore

    out_dir = Path(out_dir)
    store = ResultsStore(out_dir)
    config = pipeline.read_run_config(out_dir)
    tone_set = config.tone_set()
    names = [n for n in store.names() if (store.folder(n) / "embedding.npy").exists()]
    if models:
        unknown = set(models) - set(names)
        if unknown:
            raise ParameterError(f"no stored embeddings for {sorted(unknown)} in {out_dir}; see `gear list --out {out_dir}`")
        names = [n for n in names if n in models]
    if not names:
        raise ParameterError(f"{str(out_dir)!r} holds no stored embeddings; run `gear run --out {out_dir}` first")
    settings = {"scales": scales or {}, "random_state": random_state, "tone_set": tone_set.config_hash(),
                "metrics_version": METRICS_VERSION}
    jobs, keys = {}, {}
    for name in names:
        try:
            embedding = store.load_embedding(name)
        except CorruptEntryError as error:  # named, skipped: the other models go on
            warnings.warn(str(error), CorruptEntryWarning, stacklevel=2)
            continue
        folder = store.folder(name)
        if embedding.shape[0] != tone_set.n_sounds:
            raise ParameterError(f"{folder / 'embedding.npy'} has {embedding.shape[0]} rows for {tone_set.n_sounds} tones")
        keys[name] = _key(embedding, settings)
        rows_path = folder / ROWS_FILE
        if rows_path.exists() and (folder / CARD_FILE).exists():
            stored = json.loads(rows_path.read_text())
            if stored.get("key") == keys[name]:
                continue
        jobs[name] = (name, embedding, tone_set.theta(), tone_set.grid_index, _factor_arguments(tone_set, scales),
                      random_state)
    bar = progress(total=len(jobs)) if progress is not None and jobs else None

    def store_result(name, result):  # as each model finishes: a killed run keeps the finished ones
        card, rows = result
        store.write_derived(name, CARD_FILE, card.encode())
        rows = rows + stored_unit_sensitivity(store, name, tone_set, embedding=jobs[name][1], random_state=random_state)
        store.write_derived(name, ROWS_FILE, json.dumps({"key": keys[name], "rows": rows}, indent=1).encode())
        if bar is not None:
            bar.update(1)

    from gear.distributed import run_tasks

    run_tasks(_score_model, jobs, client, prefix="gear-score", on_result=store_result, match_threads=True)
    if bar is not None:
        bar.close()
    all_rows = stored_rows(out_dir)
    write_disentanglement_csv(out_dir / CSV_FILE, {name: rows for name, rows in all_rows.items()})
    _score_similarity(store, settings)
    return all_rows


def _factor_arguments(tone_set, scales: Optional[dict]) -> dict:
    """``param_names`` and ``scales`` of a stimulus set's factors (log where the family puts a
    factor on a log scale; discrete factors as value codes, linear), the user's ``scales``
    applied on top; nothing for a :class:`synth.ToneSet` (today's f1, alpha, r)."""
    if not hasattr(tone_set, "factors"):
        return {"scales": scales}
    family_scales, _, _, _ = pipeline.factor_units(tone_set)
    names = pipeline.tone_parameters(tone_set)
    return {"param_names": names, "scales": {**family_scales, **{k: v for k, v in (scales or {}).items() if k in names}}}


#: Derived file caching :func:`gear.pipeline.unit_sensitivity` of an entry.
UNIT_SENSITIVITY_FILE = "unit_sensitivity.json"


def stored_unit_sensitivity(store, name: str, tone_set, *, embedding=None, random_state: int = 0) -> List[dict]:
    """:func:`gear.pipeline.unit_sensitivity` rows of a stored model, reused while its embedding
    and the tone set are unchanged (empty, with a warning, when it cannot be computed)."""
    import warnings

    if embedding is None:
        embedding = store.load_embedding(name)
    key = _key(embedding, {"tone_set": tone_set.config_hash(), "random_state": random_state, "what": "unit-sensitivity/2"})
    path = store.folder(name) / UNIT_SENSITIVITY_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["rows"]
    try:
        rows = pipeline.unit_sensitivity(embedding, tone_set, random_state=random_state)
    except ParameterError as error:  # e.g. a constant embedding: named, the others go on
        warnings.warn(f"{name}: no distance per unit of the factors: {error}", stacklevel=2)
        return []
    store.write_derived(name, UNIT_SENSITIVITY_FILE, json.dumps({"key": key, "rows": rows}, indent=1).encode())
    return rows


def unit_sensitivity_section(store, tone_set) -> Optional[str]:
    """The report's "causes beside nuisances" table of every stored model (None without models)."""
    from gear.report import unit_sensitivity_section as render_section

    rows = {name: stored_unit_sensitivity(store, name, tone_set, embedding=embedding)
            for name, embedding in _iter_verified_embeddings(store)}  # one embedding in memory at a time
    if not any(rows.values()):
        return None
    _, _, labels, roles = pipeline.factor_units(tone_set)
    return render_section(rows, labels=labels, roles=roles)


def _score_model(name, embedding, theta, grid_index, factor_arguments, random_state):
    """One model's metrics: (card HTML, rows with NaN as None); a pure task for Dask.
    ``factor_arguments``: ``param_names`` and ``scales`` (:func:`_factor_arguments`)."""
    from gear.disentangle import compute_disentanglement, disentanglement_card_html

    result = compute_disentanglement(embedding, theta, grid_index=grid_index, random_state=random_state,
                                     **factor_arguments)
    rows = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()} for row in result.rows]
    return disentanglement_card_html(result, model=name), rows


def _verified_embeddings(store) -> Dict[str, np.ndarray]:
    """Every stored embedding that passes its checksum (a corrupt one is left out, with a warning)."""
    return dict(_iter_verified_embeddings(store))


def _iter_verified_embeddings(store):
    """``(name, embedding)`` of each stored embedding that passes its checksum, loaded one at a
    time (a corrupt one is left out, with a warning)."""
    import warnings

    from gear.store import CorruptEntryError, CorruptEntryWarning

    for name in store.names():
        if not (store.folder(name) / "embedding.npy").exists():
            continue
        try:
            embedding = store.load_embedding(name)
        except CorruptEntryError as error:
            warnings.warn(str(error), CorruptEntryWarning, stacklevel=4)
            continue
        yield name, embedding


def _score_similarity(store, settings: dict) -> None:
    """Write OUT/similarity.csv for every pair of stored models (reused when unchanged)."""
    from gear.metrics import SIMILARITY_COLUMNS, similarity_rows

    out_dir = store.out_dir
    embeddings = _verified_embeddings(store)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, embedding in embeddings.items():
        digest.update(name.encode() + b"\0" + np.ascontiguousarray(embedding).tobytes())
    key = digest.hexdigest()
    stored = out_dir / _SIMILARITY_JSON
    if stored.exists() and json.loads(stored.read_text()).get("key") == key and (out_dir / SIMILARITY_FILE).exists():
        return
    rows = similarity_rows(embeddings, random_state=settings["random_state"])
    lines = [",".join(SIMILARITY_COLUMNS)]
    lines += [",".join([_csv_text(r["model_a"]), _csv_text(r["model_b"]), r["metric"],
                        repr(float(r["value"])), repr(float(r["p_value"]))]) for r in rows]
    store.write_output(SIMILARITY_FILE, ("\n".join(lines) + "\n").encode())
    clean = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in rows]
    store.write_output(_SIMILARITY_JSON, json.dumps({"key": key, "rows": clean}, indent=1).encode())


def _csv_text(text: str) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()


def stored_similarity(out_dir: os.PathLike) -> List[dict]:
    """The rows of OUT/similarity.csv as last computed (empty when fewer than two models)."""
    path = Path(out_dir) / _SIMILARITY_JSON
    if not path.exists():
        return []
    return [dict(r, value=(np.nan if r["value"] is None else r["value"])) for r in json.loads(path.read_text())["rows"]]


def stored_rows(out_dir: os.PathLike) -> Dict[str, List[dict]]:
    """Rows of every stored model that has been scored."""
    from gear.store import entry_name

    root = Path(out_dir) / "models"
    result = {}
    if not root.is_dir():
        return result
    for folder in sorted(root.iterdir()):
        path = folder / ROWS_FILE
        if path.exists():
            rows = json.loads(path.read_text())["rows"]
            result[entry_name(folder.name)] = [dict(r, **{k: np.nan for k in _FLOAT_FIELDS if k in r and r[k] is None})
                                   for r in rows]
    return result


def disentanglement_sections(out_dir: os.PathLike):
    """``(per_model_sections, extra_sections)`` for the report: each scored model's card; a
    sortable leaderboard of the metrics, the model-similarity heatmaps and a plain-words
    explanation of every metric."""
    from gear.disentangle import pivot_metrics

    from gear.store import entry_folder_name

    out_dir = Path(out_dir)
    rows = stored_rows(out_dir)
    per_model = {}
    for name in rows:
        card = out_dir / "models" / entry_folder_name(name) / CARD_FILE
        if card.exists():
            per_model[name] = [("Disentanglement card", card.read_text())]
    if not rows:
        return per_model, []
    from gear.metrics import mean_normalised_score

    table = pivot_metrics(rows)
    for name, model_rows in rows.items():
        table[name]["mean_normalised_score"] = mean_normalised_score(model_rows)
    extra = [("Disentanglement leaderboard", _leaderboard_html(table))]
    similarity = stored_similarity(out_dir)
    if similarity:
        extra.append(("Model similarity", _similarity_html(similarity)))
    extra.append(("What the scores mean", _explanations_html()))
    return per_model, extra


def _similarity_html(rows: List[dict]) -> str:
    import plotly.graph_objects as go

    from gear import html as gear_html
    from gear.metrics.similarity import N_PERMUTATIONS, SIMILARITY_METRICS, similarity_matrix

    figures = []
    for metric in SIMILARITY_METRICS:
        matrix = similarity_matrix(rows, metric)
        fig = go.Figure(go.Heatmap(z=matrix["values"], x=matrix["models"], y=matrix["models"],
                                   zmin=0.0, zmax=1.0, colorscale="Viridis",
                                   texttemplate="%{z:.2f}", colorbar=dict(title=metric)))
        fig.update_layout(title=metric.replace("_", " "), height=420, yaxis=dict(autorange="reversed"),
                          margin=dict(l=120, r=20, t=50, b=100))
        figures.append(gear_html.Markup(fig.to_html(full_html=False, include_plotlyjs=False,
                                                    div_id=f"gear-similarity-{metric}")))
    table = gear_html.Markup(gear_html.table(("model_a", "model_b", "metric", "value", "p_value"), rows))
    return gear_html.render("similarity.html", figures=figures, table=table, n_permutations=N_PERMUTATIONS)


def _explanations_html() -> str:
    from gear import html as gear_html
    from gear.metrics import EXPLANATIONS

    return gear_html.render("metrics.html", explanations=list(EXPLANATIONS.items()))


def _leaderboard_html(table: Dict[str, Dict[str, float]]) -> str:
    from gear import html as gear_html

    rows = []
    for model, values in table.items():
        cells = []
        for column, _, _ in LEADERBOARD_COLUMNS:
            value = values.get(column, np.nan)
            text = "–" if not np.isfinite(value) else (f"{value:.0f}" if column.startswith(("betti", "intrinsic", "topology")) else f"{value:.3f}")
            cells.append((text, "" if not np.isfinite(value) else repr(float(value))))
        rows.append((model, cells))
    return gear_html.render("metrics_leaderboard.html", rows=rows,
                            columns=[(label, better) for _, label, better in LEADERBOARD_COLUMNS])
