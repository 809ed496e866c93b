"""The studies of the timbre module: explained variance and robustness to noisy ratings.

* :func:`explained_variance_table`: ``P^2`` per study x representation x mode
  (``explained_variance.csv`` + ``explained_variance.html``).
* :func:`robustness_study`: after Pascal & Lagrange (EUSIPCO 2024), learn on degraded
  ratings ``y = clip(s + delta * xi, 0, 1)`` (``"absolute"``, the published formula) or
  ``y = clip(s + delta * std(s) * xi, 0, 1)`` (``"relative"``, the authors' notebook),
  ``xi ~ N(0, 1)`` i.i.d., with the exact solver, and report ``P(d_{w_delta}^2, s)^2``
  against the clean ``s`` (``robustness.csv``, ``robustness_auc.csv``,
  ``robustness.html``).

Representations are the folders of ``<data>/features/`` or any model of the zoo
(:func:`zoo_features`, through the HEAR API). Results are cached per (study,
representation, mode or noise convention) under ``<out>/cache/`` with atomic writes, so
an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from gear.errors import ParameterError
from gear.files import atomic_write_bytes, atomic_write_text
from gear.timbre.data import (
    PathLike,
    Study,
    _as_study,
    list_representations,
    list_studies,
    load_audio,
    load_features,
    load_study,
)
from gear.timbre.solver import (
    MODES,
    ConeProblem,
    explained_variance,
    pair_differences,
    pearson,
    solve_exact,
    solve_faithful,
    solve_pearson_d,
)

__all__ = [
    "DEFAULT_DELTAS",
    "NOISE_CONVENTIONS",
    "TABLE_COLUMNS",
    "ROBUSTNESS_COLUMNS",
    "AUC_COLUMNS",
    "degrade_ratings",
    "robustness_auc",
    "zoo_features",
    "representation_features",
    "fit_explained_variance",
    "robustness_curves",
    "explained_variance_table",
    "robustness_study",
    "write_table_html",
    "write_robustness_html",
]

#: The 9 noise levels of Pascal & Lagrange, log-spaced in [0.1, 10].
DEFAULT_DELTAS = tuple(float(d) for d in np.logspace(-1, 1, 9))

#: ``absolute``: y = clip(s + delta xi, 0, 1) (published); ``relative``: the noise is scaled
#: by the study's rating spread, y = clip(s + delta std(s) xi, 0, 1) (authors' notebook).
NOISE_CONVENTIONS = ("absolute", "relative")

#: Columns of ``explained_variance.csv`` (stable output).
TABLE_COLUMNS = ("study", "representation", "mode", "p2")
#: Columns of ``robustness.csv``: the stable five, then the noise convention.
ROBUSTNESS_COLUMNS = ("study", "representation", "delta", "realisation", "p2", "noise")
#: Columns of ``robustness_auc.csv``: the stable three, then the convention and delta_bar.
AUC_COLUMNS = ("study", "representation", "auc", "noise", "delta_bar")

_CACHE_VERSION = 1


# ------------------------------------------------------------------------------ files


def _atomic_save_npz(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _csv_text(columns: Sequence[str], rows: Iterable[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    return buf.getvalue()


def _fmt(value):
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}" if abs(value) >= 1e-3 or value == 0 else f"{float(value):.6e}"
    return value


def _fingerprint(*arrays: np.ndarray, params: dict) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _read_cache(path: Path, key: str) -> Optional[list]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if data.get("version") != _CACHE_VERSION or data.get("key") != key:
        return None
    return data.get("rows")


def _write_cache(path: Path, key: str, rows: list, meta: dict) -> None:
    atomic_write_text(
        path,
        json.dumps({"version": _CACHE_VERSION, "key": key, "meta": meta, "rows": rows}, default=float),
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ------------------------------------------------------------------------ noise, AUC


def degrade_ratings(
    s: np.ndarray, delta: float, *, noise: str = "absolute", rng=None
) -> np.ndarray:
    """Synthetic noisy ratings of the robustness study.

    Parameters
    ----------
    s : np.ndarray, shape (n_pairs,)
        Clean ratings in [0, 1].
    delta : float
        Noise level (>= 0).
    noise : {"absolute", "relative"}
        ``absolute``: ``clip(s + delta * xi, 0, 1)`` (Pascal & Lagrange, published);
        ``relative``: ``clip(s + delta * std(s) * xi, 0, 1)`` (their notebook).
    rng : np.random.Generator, int or None

    Returns
    -------
    np.ndarray, shape (n_pairs,)
    """
    if noise not in NOISE_CONVENTIONS:
        raise ParameterError(f"noise={noise!r}; use one of {', '.join(NOISE_CONVENTIONS)}")
    if not np.isfinite(delta) or delta < 0:
        raise ParameterError(f"delta={delta}; the noise level must be finite and >= 0")
    s = np.asarray(s, dtype=float)
    rng = np.random.default_rng(rng)
    scale = delta if noise == "absolute" else delta * float(np.std(s))
    return np.clip(s + scale * rng.standard_normal(s.shape), 0.0, 1.0)


def robustness_auc(deltas: Sequence[float], p2) -> float:
    """Area under the robustness curve over ``log10(delta)`` (trapezoid rule).

    Parameters
    ----------
    deltas : sequence of float, shape (n_deltas,)
        Increasing noise levels.
    p2 : array-like, shape (n_deltas,) or (n_deltas, n_realisations)
        Explained variance against the clean ratings; averaged over realisations first.

    Returns
    -------
    float
        In units of ``P^2 x decades``; with the default deltas (two decades) it lies in
        [0, 2].
    """
    x = np.log10(np.asarray(deltas, dtype=float))
    y = np.asarray(p2, dtype=float)
    if y.ndim == 2:
        y = y.mean(axis=1)
    if y.shape != x.shape or x.size < 2:
        raise ParameterError(f"robustness_auc: {x.size} deltas but p2 has shape {np.shape(p2)}")
    if np.any(np.diff(x) <= 0):
        raise ParameterError("robustness_auc: deltas must be strictly increasing")
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def _noise_rng(seed: int, study: str, delta_index: int, realisation: int) -> np.random.Generator:
    # Same noise for every representation of a study (common random numbers).
    return np.random.default_rng([int(seed), zlib.crc32(study.encode()), int(delta_index), int(realisation)])


# ---------------------------------------------------------------------- zoo features


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    import scipy.signal

    frac = Fraction(int(sr_out), int(sr_in))
    return scipy.signal.resample_poly(x, frac.numerator, frac.denominator)


def _normalise_study(features: np.ndarray) -> np.ndarray:
    """Divide by one study-wide scalar: the mean over sounds of each sound's max |feature|
    (as done for the shared reference features)."""
    scale = float(np.mean(np.max(np.abs(features), axis=1)))
    return features / scale if scale > 0 else features


def zoo_features(
    study: Union[str, Study],
    model_name: str,
    *,
    data_dir: Optional[PathLike] = None,
    models_dir: Optional[PathLike] = None,
    loaded=None,
    normalise: bool = True,
) -> np.ndarray:
    """Scene embeddings of a study's sounds by a model of the zoo (HEAR 2021 API).

    Each sound is resampled to ``model.sample_rate`` (polyphase, :func:`scipy.signal.resample_poly`)
    and embedded alone (the sounds differ in length) by
    ``module.get_scene_embeddings(audio[None], model)``.

    Parameters
    ----------
    study : str or Study
    model_name : str
        Registry name (:func:`embeddings.registry.get_spec`).
    data_dir, models_dir : path-like, optional
    loaded : (module, model), optional
        An already loaded model (skips ``get_spec(model_name).load(models_dir)``).
    normalise : bool
        Divide by the study-wide scalar used for the shared features (mean over sounds of
        the per-sound maximum absolute value). The exact solver does not depend on it;
        the faithful procedure (bounded ``w``) does.

    Returns
    -------
    np.ndarray, shape (n_sounds, scene_embedding_size), float64
    """
    import torch

    st = _as_study(study, data_dir)
    if loaded is None:
        from embeddings.registry import get_spec

        md = Path(models_dir).expanduser() if models_dir is not None else None
        loaded = get_spec(model_name).load(md)
    module, model = loaded
    sr_model = int(getattr(model, "sample_rate"))
    rows = []
    for (x, sr), path in zip(load_audio(st), st.sound_paths):
        y = _resample(x, sr, sr_model).astype(np.float32)
        with torch.no_grad():
            emb = module.get_scene_embeddings(torch.from_numpy(np.ascontiguousarray(y))[None], model)
        emb = np.asarray(emb.detach().cpu().numpy() if hasattr(emb, "detach") else emb, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != 1:
            raise ParameterError(
                f"model {model_name!r} returned scene embeddings of shape {emb.shape} for {path.name}; "
                "a HEAR module must return (n_sounds, scene_embedding_size)"
            )
        if not np.all(np.isfinite(emb)):
            raise ParameterError(
                f"model {model_name!r} returned NaN/inf embeddings for {path}; check the model "
                "(the sound may be shorter than its analysis window)"
            )
        rows.append(emb[0])
    feats = np.stack(rows)
    return _normalise_study(feats) if normalise else feats


class _FeatureSource:
    """Resolves (study, representation) to features: shared folders or zoo models (cached)."""

    def __init__(self, data_dir, models_dir, cache_dir: Optional[Path], zoo: Sequence[str]):
        self.data_dir = data_dir
        self.models_dir = models_dir
        self.cache_dir = cache_dir
        self.shared = set(list_representations(data_dir))
        self.zoo = list(zoo)
        self._loaded: Dict[str, tuple] = {}

    def check(self, representation: str) -> None:
        if representation in self.shared or representation in self.zoo:
            return
        raise ParameterError(
            f"unknown representation {representation!r}: neither a folder of features/ "
            f"({', '.join(sorted(self.shared)) or 'none'}) nor a zoo model given with --zoo"
        )

    def __call__(self, study: Study, representation: str) -> np.ndarray:
        if representation in self.shared and representation not in self.zoo:
            return load_features(study, representation)
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / "features" / _safe(representation) / f"{_safe(study.name)}.npz"
            if path.is_file():
                try:
                    with np.load(path) as npz:
                        feats = npz["features"]
                    if feats.shape[0] == study.n_sounds:
                        return feats
                except Exception:
                    pass
        if representation not in self._loaded:
            from embeddings.registry import get_spec

            md = Path(self.models_dir).expanduser() if self.models_dir is not None else None
            self._loaded[representation] = get_spec(representation).load(md)
        feats = zoo_features(study, representation, loaded=self._loaded[representation])
        if path is not None:
            _atomic_save_npz(path, features=feats)
        return feats


def representation_features(
    study: Union[str, Study],
    representation: str,
    *,
    data_dir: Optional[PathLike] = None,
    models_dir: Optional[PathLike] = None,
) -> np.ndarray:
    """Features of a study: a folder of ``features/`` or else a zoo model name.

    Returns
    -------
    np.ndarray, shape (n_sounds, n_features), float64
    """
    st = _as_study(study, data_dir)
    if representation in list_representations(st.data_dir):
        return load_features(st, representation)
    return zoo_features(st, representation, models_dir=models_dir)


# ---------------------------------------------------------------------------- fitting


def fit_explained_variance(
    features: np.ndarray, ratings: np.ndarray, mode: str, *, random_state=0
) -> dict:
    """One fit; returns ``p2`` and diagnostics (``pearson``, certificate residuals,
    ``n_iter``, ``converged``, ``seconds``)."""
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    if mode not in MODES:
        raise ParameterError(f"mode={mode!r}; use one of {', '.join(MODES)}")
    X = pair_differences(features)
    problem = ConeProblem(X)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # recorded in the row instead: "converged", and p2 = 0 for an anti-correlated optimum
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="no nonnegative weighting", category=RuntimeWarning)
        if mode == "exact":
            sol = solve_exact(X, ratings, problem=problem)
        elif mode == "pearson-d":
            sol = solve_pearson_d(X, ratings, problem=problem)
        else:
            sol = solve_faithful(
                X, ratings, init=mode.split("-", 1)[1], random_state=random_state, problem=problem
            )
    cert = sol.certificate
    return {
        "p2": explained_variance(sol.pearson),
        "pearson": float(sol.pearson),
        "dual_residual": cert.dual_residual,
        "complementarity": cert.complementarity,
        "certified": bool(cert.optimal) if cert.scope == "global" else False,
        "n_support": cert.n_support,
        "n_features": int(X.shape[1]),
        "n_iter": int(sol.n_iter),
        "converged": bool(sol.converged),
        "seconds": time.perf_counter() - t0,
    }


def robustness_curves(
    features: np.ndarray,
    ratings: np.ndarray,
    *,
    study: str,
    deltas: Sequence[float] = DEFAULT_DELTAS,
    n_realisations: int = 5,
    noise: str = "absolute",
    seed: int = 0,
) -> List[dict]:
    """Exact fits on degraded ratings; ``p2`` of each against the clean ratings.

    Parameters
    ----------
    features : np.ndarray, shape (n_sounds, n_features)
    ratings : np.ndarray, shape (n_pairs,)
        Clean ratings ``s``.
    study : str
        Study name (seeds the noise: the same noise for every representation).
    deltas, n_realisations, noise, seed : see :func:`robustness_study`.

    Returns
    -------
    list of dict
        One per (delta, realisation): ``delta``, ``realisation``, ``p2``, ``pearson``,
        ``dual_residual``.
    """
    import warnings

    X = pair_differences(features)
    problem = ConeProblem(X)
    s = np.asarray(ratings, dtype=float)
    rows = []
    for di, delta in enumerate(deltas):
        for k in range(int(n_realisations)):
            y = degrade_ratings(s, delta, noise=noise, rng=_noise_rng(seed, study, di, k))
            if np.ptp(y) == 0:  # everything clipped to one value: nothing can be learned
                rows.append({"delta": float(delta), "realisation": k, "p2": 0.0, "pearson": 0.0,
                             "dual_residual": 0.0})
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                sol = solve_exact(X, y, problem=problem)
            corr = pearson(X @ sol.v, s) if np.any(sol.v > 0) else 0.0
            rows.append(
                {
                    "delta": float(delta),
                    "realisation": k,
                    "p2": explained_variance(corr),
                    "pearson": corr,
                    "dual_residual": sol.certificate.dual_residual,
                }
            )
    return rows


# ----------------------------------------------------------------------- the studies


def _select(studies, representations, data_dir, zoo):
    all_studies = list_studies(data_dir)
    studies = list(studies) if studies else all_studies
    for s in studies:
        if s not in all_studies:
            raise ParameterError(f"unknown study {s!r}; known: {', '.join(all_studies)}")
    reps = list(representations) if representations is not None else list_representations(data_dir)
    reps = reps + [z for z in zoo if z not in reps]
    if not reps:
        raise ParameterError("no representation selected: give --representations or --zoo")
    return studies, reps


def _parallel(n_jobs: int):
    from joblib import Parallel

    return Parallel(n_jobs=n_jobs, return_as="generator_unordered")


def _table_task(study, representation, mode, features, ratings, random_state):
    out = fit_explained_variance(features, ratings, mode, random_state=random_state)
    return study, representation, mode, out


def explained_variance_table(
    *,
    out_dir: PathLike,
    studies: Optional[Sequence[str]] = None,
    representations: Optional[Sequence[str]] = None,
    modes: Sequence[str] = ("exact",),
    zoo: Sequence[str] = (),
    data_dir: Optional[PathLike] = None,
    models_dir: Optional[PathLike] = None,
    n_jobs: int = 1,
    random_state: int = 0,
    progress: Optional[Callable[[str], None]] = None,
) -> List[dict]:
    """Explained variance per study x representation x mode.

    Writes ``<out_dir>/explained_variance.csv`` (columns ``study,representation,mode,p2``)
    and ``<out_dir>/explained_variance.html`` (per mode a table with medians and
    interquartile ranges), caching each fit under ``<out_dir>/cache/table/``.

    Parameters
    ----------
    out_dir : path-like
    studies : sequence of str, optional
        Default: every study of ``data_dir``.
    representations : sequence of str, optional
        Default: every folder of ``<data_dir>/features``.
    modes : sequence of str
        Among ``exact``, ``faithful-warm``, ``faithful-random``, ``pearson-d``.
    zoo : sequence of str
        Zoo model names added as representations.
    data_dir, models_dir : path-like, optional
    n_jobs : int
        joblib workers.
    random_state : int
        Seed of ``faithful-random``.
    progress : callable(str), optional
        Called with one line per finished fit (the CLI prints it).

    Returns
    -------
    list of dict
        One row per fit: the CSV columns plus diagnostics.
    """
    for mode in modes:
        if mode not in MODES:
            raise ParameterError(f"mode={mode!r}; use one of {', '.join(MODES)}")
    out_dir = Path(out_dir)
    cache = out_dir / "cache"
    studies, reps = _select(studies, representations, data_dir, zoo)
    source = _FeatureSource(data_dir, models_dir, cache, zoo)
    for r in reps:
        source.check(r)
    results: Dict[Tuple[str, str, str], dict] = {}
    tasks = []
    keys = {}
    for st_name in studies:
        st = load_study(st_name, data_dir=data_dir, check_audio=False)
        for rep in reps:
            feats = source(st, rep)
            for mode in modes:
                params = {"mode": mode, "random_state": random_state if mode == "faithful-random" else None}
                key = _fingerprint(feats, st.ratings, params=params)
                path = cache / "table" / _safe(mode) / _safe(st_name) / f"{_safe(rep)}.json"
                rows = _read_cache(path, key)
                if rows:
                    results[(st_name, rep, mode)] = rows[0]
                    continue
                keys[(st_name, rep, mode)] = (path, key)
                tasks.append((st_name, rep, mode, feats, st.ratings))
    if progress and results:
        progress(f"{len(results)} fits found in the cache, {len(tasks)} to run")
    if tasks:
        from joblib import delayed

        for st_name, rep, mode, out in _parallel(n_jobs)(
            delayed(_table_task)(a, b, c, f, s, random_state) for a, b, c, f, s in tasks
        ):
            row = {"study": st_name, "representation": rep, "mode": mode, **out}
            path, key = keys[(st_name, rep, mode)]
            _write_cache(path, key, [row], {"study": st_name, "representation": rep, "mode": mode})
            results[(st_name, rep, mode)] = row
            if progress:
                progress(f"{st_name:24s} {rep:18s} {mode:15s} P2 = {row['p2']:.3f}  ({row['seconds']:.2f} s)")
    rows = [results[(s, r, m)] for m in modes for s in studies for r in reps]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "explained_variance.csv", _csv_text(TABLE_COLUMNS, rows))
    write_table_html(rows, out_dir / "explained_variance.html")
    return rows


def _robustness_task(study, representation, features, ratings, deltas, n_realisations, noise, seed):
    return study, representation, robustness_curves(
        features, ratings, study=study, deltas=deltas, n_realisations=n_realisations, noise=noise, seed=seed
    )


def robustness_study(
    *,
    out_dir: PathLike,
    studies: Optional[Sequence[str]] = None,
    representations: Optional[Sequence[str]] = None,
    zoo: Sequence[str] = (),
    noise: str = "absolute",
    deltas: Sequence[float] = DEFAULT_DELTAS,
    n_realisations: int = 5,
    seed: int = 0,
    data_dir: Optional[PathLike] = None,
    models_dir: Optional[PathLike] = None,
    n_jobs: int = 1,
    progress: Optional[Callable[[str], None]] = None,
) -> Tuple[List[dict], List[dict]]:
    """Robustness of the learned metric to noisy ratings (Pascal & Lagrange 2024).

    For every study, representation, ``delta`` and realisation, learn the exact optimum on
    ``y = clip(s + delta * xi, 0, 1)`` (``noise="absolute"``) or
    ``y = clip(s + delta * std(s) * xi, 0, 1)`` (``noise="relative"``) and report
    ``P(d_{w_delta}^2, s)^2`` against the clean ratings. The noise of a (study, delta,
    realisation) is the same for every representation.

    Writes ``robustness.csv`` (``study,representation,delta,realisation,p2,noise``),
    ``robustness_auc.csv`` (``study,representation,auc,noise,delta_bar``; AUC of the mean
    curve over ``log10 delta``, trapezoid), ``robustness.json`` (metadata: convention,
    deltas, seed) and ``robustness.html`` (interactive Plotly curves, plotly.js embedded,
    ``delta_bar = 0.1 sqrt(m_subjects)`` marked), caching each (study, representation)
    under ``<out_dir>/cache/robustness/<noise>/``.

    Returns
    -------
    rows, auc_rows : list of dict
    """
    if noise not in NOISE_CONVENTIONS:
        raise ParameterError(f"noise={noise!r}; use one of {', '.join(NOISE_CONVENTIONS)}")
    deltas = [float(d) for d in deltas]
    if len(deltas) < 2 or any(d <= 0 for d in deltas) or np.any(np.diff(deltas) <= 0):
        raise ParameterError(f"deltas={deltas}; give at least two increasing positive noise levels")
    if int(n_realisations) < 1:
        raise ParameterError(f"n_realisations={n_realisations}; it must be >= 1")
    out_dir = Path(out_dir)
    cache = out_dir / "cache"
    studies, reps = _select(studies, representations, data_dir, zoo)
    source = _FeatureSource(data_dir, models_dir, cache, zoo)
    for r in reps:
        source.check(r)
    params = {"deltas": deltas, "n_realisations": int(n_realisations), "noise": noise, "seed": int(seed),
              "mode": "exact"}
    study_objs = {}
    results: Dict[Tuple[str, str], list] = {}
    tasks, keys = [], {}
    for st_name in studies:
        st = load_study(st_name, data_dir=data_dir, check_audio=False)
        study_objs[st_name] = st
        for rep in reps:
            feats = source(st, rep)
            key = _fingerprint(feats, st.ratings, params=params)
            path = cache / "robustness" / noise / _safe(st_name) / f"{_safe(rep)}.json"
            rows = _read_cache(path, key)
            if rows:
                results[(st_name, rep)] = rows
                continue
            keys[(st_name, rep)] = (path, key)
            tasks.append((st_name, rep, feats, st.ratings))
    if progress and results:
        progress(f"{len(results)} (study, representation) curves found in the cache, {len(tasks)} to run")
    if tasks:
        from joblib import delayed

        for st_name, rep, rows in _parallel(n_jobs)(
            delayed(_robustness_task)(a, b, f, s, deltas, n_realisations, noise, seed) for a, b, f, s in tasks
        ):
            rows = [{"study": st_name, "representation": rep, "noise": noise, **r} for r in rows]
            path, key = keys[(st_name, rep)]
            _write_cache(path, key, rows, {"study": st_name, "representation": rep, "noise": noise, **params})
            results[(st_name, rep)] = rows
            if progress:
                auc = robustness_auc(deltas, _p2_matrix(rows, deltas, n_realisations))
                progress(f"{st_name:24s} {rep:18s} AUC = {auc:.3f}")
    rows = [r for s in studies for rep in reps for r in results[(s, rep)]]
    auc_rows = []
    for s in studies:
        for rep in reps:
            p2 = _p2_matrix(results[(s, rep)], deltas, n_realisations)
            auc_rows.append(
                {
                    "study": s,
                    "representation": rep,
                    "auc": robustness_auc(deltas, p2),
                    "noise": noise,
                    "delta_bar": study_objs[s].delta_bar if study_objs[s].delta_bar is not None else "",
                }
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "robustness.csv", _csv_text(ROBUSTNESS_COLUMNS, rows))
    atomic_write_text(out_dir / "robustness_auc.csv", _csv_text(AUC_COLUMNS, auc_rows))
    meta = {
        "noise": noise,
        "noise_formula": _NOISE_FORMULA[noise],
        "deltas": deltas,
        "n_realisations": int(n_realisations),
        "seed": int(seed),
        "solver": "exact (certified cone projection)",
        "p2": "max(P, 0)^2 with P = P(d_w^2, s), w learned on the degraded ratings, s the clean ratings",
        "auc": "trapezoid area of the mean curve over log10(delta)",
        "delta_bar": {s: study_objs[s].delta_bar for s in studies},
    }
    atomic_write_text(out_dir / "robustness.json", json.dumps(meta, indent=2))
    write_robustness_html(rows, auc_rows, out_dir / "robustness.html", meta=meta)
    return rows, auc_rows


_NOISE_FORMULA = {
    "absolute": "y = clip(s + delta * xi, 0, 1), xi ~ N(0, 1) i.i.d. (Pascal & Lagrange 2024, published)",
    "relative": "y = clip(s + delta * std(s) * xi, 0, 1), xi ~ N(0, 1) i.i.d. (authors' notebook)",
}


def _p2_matrix(rows: List[dict], deltas: Sequence[float], n_realisations: int) -> np.ndarray:
    p2 = np.full((len(deltas), int(n_realisations)), np.nan)
    index = {float(d): i for i, d in enumerate(deltas)}
    for r in rows:
        p2[index[float(r["delta"])], int(r["realisation"])] = float(r["p2"])
    return p2


# ------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0 2em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td.name,th.name{text-align:left}
tr.summary td{font-weight:600;background:#fafafa}
p.note{color:#555;max-width:60em}
"""


def _cell_colour(p2: float) -> str:
    if not np.isfinite(p2):
        return "#ffffff"
    g = int(255 - 120 * max(0.0, min(1.0, p2)))
    return f"rgb({g},{255},{g})"


def _quartiles(vals: List[float]) -> Tuple[float, float]:
    v = np.asarray([x for x in vals if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(med), float(q3 - q1)


def write_table_html(rows: List[dict], path: PathLike) -> Path:
    """Standalone HTML of the explained-variance table: one table per mode, studies x
    representations, with the median and interquartile range of each column."""
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    studies = list(dict.fromkeys(r["study"] for r in rows))
    reps = list(dict.fromkeys(r["representation"] for r in rows))
    by = {(r["study"], r["representation"], r["mode"]): r for r in rows}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Timbre metric learning: explained variance</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Explained variance of the averaged dissimilarity ratings</h1>",
        "<p class='note'>P<sup>2</sup>: squared Pearson correlation between the learned squared distances "
        "d<sub>w</sub><sup>2</sup> = &Sigma;<sub>k</sub> (&Psi;<sub>k</sub>(a<sub>i</sub>) &minus; "
        "&Psi;<sub>k</sub>(a<sub>j</sub>))<sup>2</sup> / w<sub>k</sub><sup>2</sup> and the ratings "
        "(of d<sub>w</sub> in mode pearson-d), reported as max(P, 0)<sup>2</sup>. <b>exact</b>: certified global optimum (cone projection, KKT "
        "residuals checked); <b>faithful-warm/-random</b>: the reference L-BFGS-B procedure on w. "
        "Median and IQR (interquartile range) over studies.</p>",
    ]
    for mode in modes:
        parts.append(f"<h2>mode: {html.escape(mode)}</h2><table><tr><th class='name'>study</th>")
        parts += [f"<th>{html.escape(r)}</th>" for r in reps]
        parts.append("</tr>")
        for s in studies:
            parts.append(f"<tr><td class='name'>{html.escape(s)}</td>")
            for r in reps:
                row = by.get((s, r, mode))
                p2 = float(row["p2"]) if row else float("nan")
                flag = "" if not row or row.get("certified", True) or mode != "exact" else " *"
                parts.append(
                    f"<td style='background:{_cell_colour(p2)}'>{'' if not np.isfinite(p2) else f'{p2:.2f}'}{flag}</td>"
                )
            parts.append("</tr>")
        for label, idx in (("median", 0), ("IQR", 1)):
            parts.append(f"<tr class='summary'><td class='name'>{label}</td>")
            for r in reps:
                vals = [float(by[(s, r, mode)]["p2"]) for s in studies if (s, r, mode) in by]
                q = _quartiles(vals)[idx]
                parts.append(f"<td>{'' if not np.isfinite(q) else f'{q:.2f}'}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return atomic_write_text(path, "".join(parts))


def write_robustness_html(
    rows: List[dict], auc_rows: List[dict], path: PathLike, *, meta: Optional[dict] = None
) -> Path:
    """Standalone interactive HTML (plotly.js embedded) of the robustness curves: one panel
    per study, mean P^2 over realisations (band: min-max) against delta (log axis), a
    dashed line at delta_bar, and the AUC table."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    meta = meta or {}
    noise = meta.get("noise") or (rows[0]["noise"] if rows else "")
    studies = list(dict.fromkeys(r["study"] for r in rows))
    reps = list(dict.fromkeys(r["representation"] for r in rows))
    ncol = 4
    nrow = max(1, int(np.ceil(len(studies) / ncol)))
    fig = make_subplots(rows=nrow, cols=ncol, subplot_titles=studies, shared_yaxes=True,
                        horizontal_spacing=0.03, vertical_spacing=0.25 / max(nrow, 1) + 0.02)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    delta_bar = meta.get("delta_bar", {})
    for si, s in enumerate(studies):
        rr, cc = si // ncol + 1, si % ncol + 1
        for ri, rep in enumerate(reps):
            sel = [r for r in rows if r["study"] == s and r["representation"] == rep]
            ds = sorted({float(r["delta"]) for r in sel})
            vals = [[float(r["p2"]) for r in sel if float(r["delta"]) == d] for d in ds]
            mean = [float(np.mean(v)) for v in vals]
            lo = [float(np.min(v)) for v in vals]
            hi = [float(np.max(v)) for v in vals]
            colour = palette[ri % len(palette)]
            fig.add_trace(
                go.Scatter(x=ds + ds[::-1], y=hi + lo[::-1], fill="toself", fillcolor=colour, opacity=0.15,
                           line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=rep),
                row=rr, col=cc,
            )
            fig.add_trace(
                go.Scatter(x=ds, y=mean, mode="lines+markers", name=rep, legendgroup=rep,
                           showlegend=si == 0, line={"color": colour}, marker={"size": 4},
                           hovertemplate=f"{s}<br>{rep}<br>delta=%{{x:.3g}}<br>P2=%{{y:.3f}}<extra></extra>"),
                row=rr, col=cc,
            )
        db = delta_bar.get(s)
        if db:
            fig.add_vline(x=db, line_dash="dash", line_color="#444", row=rr, col=cc)
    fig.update_xaxes(type="log", title_text="delta")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(
        height=280 * nrow + 120, width=1300,
        title=f"Robustness of the learned metric to noisy ratings — noise convention: {noise}",
        legend={"orientation": "h", "y": -0.05},
    )
    plot = pio.to_html(fig, include_plotlyjs=True, full_html=False)
    auc_by = {(a["study"], a["representation"]): a for a in auc_rows}
    table = ["<table><tr><th class='name'>study</th>"] + [f"<th>{html.escape(r)}</th>" for r in reps] + ["</tr>"]
    for s in studies:
        table.append(f"<tr><td class='name'>{html.escape(s)}</td>")
        for r in reps:
            a = auc_by.get((s, r))
            table.append(f"<td>{'' if a is None else format(float(a['auc']), '.3f')}</td>")
        table.append("</tr>")
    for label, idx in (("median", 0), ("IQR", 1)):
        table.append(f"<tr class='summary'><td class='name'>{label}</td>")
        for r in reps:
            q = _quartiles([float(auc_by[(s, r)]["auc"]) for s in studies if (s, r) in auc_by])[idx]
            table.append(f"<td>{'' if not np.isfinite(q) else f'{q:.3f}'}</td>")
        table.append("</tr>")
    table.append("</table>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<meta name='noise-convention' content='{html.escape(noise)}'>"
        "<title>Timbre metric learning: robustness</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Robustness to noisy ratings (noise convention: {html.escape(noise)})</h1>"
        f"<p class='note'>Degraded ratings: {html.escape(_NOISE_FORMULA.get(noise, noise))}. "
        "Weights learned on them with the exact solver; P<sup>2</sup> = P(d<sub>w</sub><sup>2</sup>, s)<sup>2</sup> "
        "against the clean ratings s. Curves: mean over realisations, band: min-max. Dashed line: "
        "&delta;&#772; = 0.1 &radic;m<sub>subjects</sub>, the typical spread of human ratings.</p>"
        f"{plot}<h2>Area under the mean curve over log<sub>10</sub> &delta; (trapezoid)</h2>"
        f"{''.join(table)}</body></html>"
    )
    return atomic_write_text(path, page)
