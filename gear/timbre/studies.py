"""The studies of the timbre module: explained variance (in- and out-of-sample), rank
metrics, published versus corrected values and robustness to noisy ratings.

* :func:`explained_variance_table`: ``P^2`` per study x representation x mode, in-sample
  (``exact``, ``faithful-*``, ``pearson-d``) and out-of-sample (``exact-loso``,
  ``exact-kfold``) side by side (``explained_variance.csv`` + ``.html``).
* :func:`rank_metrics_table`: fixed-distance rank metrics after timbremetrics
  (``rank_metrics.csv``).
* :func:`published_table`: published ``P^2`` against GEAR faithful, exact and
  out-of-sample (``published.csv`` + ``.html``).
* :func:`robustness_study`: after Pascal & Lagrange (EUSIPCO 2024), learn on degraded
  ratings ``y = clip(s + delta * xi, 0, 1)`` (``"absolute"``, the published formula) or
  ``y = clip(s + delta * std(s) * xi, 0, 1)`` (``"relative"``, the authors' notebook),
  ``xi ~ N(0, 1)`` i.i.d., with the exact solver, and report ``P(d_{w_delta}^2, s)^2``
  against the clean ``s`` (``robustness.csv``, ``robustness_auc.csv``,
  ``robustness.html``).

Representations are the folders of ``<data>/features/`` or any model of the zoo
(:func:`zoo_features`, through the HEAR API). Each carries its alignment label
(:func:`gear.timbre.data.representation_alignment`, a column of every CSV); ``unaligned``
ones are left out unless asked for. Every study runs through one loop
(:func:`_run_grid`): features are loaded first (bad input fails before anything is
cached), then each pure computation is cached by content hash with :class:`joblib.Memory`
under ``<out>/cache/``, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from gear.errors import ParameterError
from gear.files import atomic_write_bytes, atomic_write_text
from gear.timbre import pages
from gear.timbre.data import (
    REFERENCE_ALIGNMENT,
    PathLike,
    Study,
    _as_study,
    alignment_labels,
    list_representations,
    list_studies,
    load_audio,
    load_features,
    load_study,
)
from gear.timbre.published import PUBLISHED
from gear.timbre.rankmetrics import DISTANCES, METRICS, rank_metrics
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
from gear.timbre.validation import OUT_OF_SAMPLE_MODES, describe_validation, out_of_sample

__all__ = [
    "DEFAULT_DELTAS",
    "NOISE_CONVENTIONS",
    "TABLE_MODES",
    "TABLE_COLUMNS",
    "RANK_COLUMNS",
    "PUBLISHED_COLUMNS",
    "ROBUSTNESS_COLUMNS",
    "AUC_COLUMNS",
    "degrade_ratings",
    "robustness_auc",
    "zoo_features",
    "representation_features",
    "fit_explained_variance",
    "fit_any",
    "robustness_curves",
    "explained_variance_table",
    "rank_metrics_table",
    "published_table",
    "robustness_study",
]

#: The 9 noise levels of Pascal & Lagrange, log-spaced in [0.1, 10].
DEFAULT_DELTAS = tuple(float(d) for d in np.logspace(-1, 1, 9))

#: ``absolute``: y = clip(s + delta xi, 0, 1) (published); ``relative``: the noise is scaled
#: by the study's rating spread, y = clip(s + delta std(s) xi, 0, 1) (authors' notebook).
NOISE_CONVENTIONS = ("absolute", "relative")

#: Modes of the explained-variance table: in-sample, then out-of-sample.
TABLE_MODES = tuple(MODES) + tuple(OUT_OF_SAMPLE_MODES)

#: Columns of ``explained_variance.csv``.
TABLE_COLUMNS = ("study", "representation", "alignment", "mode", "p2", "validation")
#: Columns of ``rank_metrics.csv``.
RANK_COLUMNS = ("study", "representation", "alignment", "distance", "metric", "value")
#: Columns of ``published.csv``.
PUBLISHED_COLUMNS = ("study", "representation", "alignment", "published", "faithful", "exact", "out_of_sample")
#: Columns of ``robustness.csv``.
ROBUSTNESS_COLUMNS = ("study", "representation", "alignment", "delta", "realisation", "p2", "noise")
#: Columns of ``robustness_auc.csv``.
AUC_COLUMNS = ("study", "representation", "alignment", "auc", "noise", "delta_bar")


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


def _select(studies, representations, data_dir, zoo, include_unaligned=False):
    """Studies, representations and their alignment labels; unaligned sets are left out
    unless ``include_unaligned`` (then they stay, labelled, as a shuffled-pairing control)."""
    all_studies = list_studies(data_dir)
    studies = list(studies) if studies else all_studies
    for s in studies:
        if s not in all_studies:
            raise ParameterError(f"unknown study {s!r}; known: {', '.join(all_studies)}")
    labels = alignment_labels(data_dir)
    explicit = representations is not None
    reps = list(representations) if explicit else list_representations(data_dir)
    reps = reps + [z for z in zoo if z not in reps]
    unaligned = [r for r in reps if r not in zoo and labels.get(r, "aligned") == "unaligned"]
    if unaligned and not include_unaligned:
        if explicit:
            raise ParameterError(
                f"{', '.join(unaligned)}: rows not aligned with the ratings (see the data README, "
                "'Row order'); pass --include-unaligned (include_unaligned=True) to show them, "
                "labelled, as a shuffled-pairing control"
            )
        reps = [r for r in reps if r not in unaligned]
    if not reps:
        raise ParameterError("no representation selected: give --representations or --zoo")
    return studies, reps, {r: ("aligned" if r in zoo else labels.get(r, "aligned")) for r in reps}


def _keyed(func, key, kwargs):
    return key, func(**kwargs)


def _run_grid(
    func: Callable[..., object],
    jobs: Sequence[Tuple[tuple, dict]],
    *,
    cache_dir: Path,
    n_jobs: int,
    noun: str,
    progress: Optional[Callable[[str], None]],
    describe: Callable[[tuple, object], str],
    client=None,
) -> Dict[tuple, object]:
    """The one cache -> parallel loop of the timbre studies.

    ``func(**kwargs)`` must be a pure function of its arguments: its results are cached by
    content hash with :class:`joblib.Memory` under ``cache_dir`` (atomic writes, so an
    interrupted run resumes), and the calls not in the cache run in ``n_jobs`` joblib
    workers, or as one task each on the Dask ``client`` (:func:`gear.distributed.run_tasks`;
    the workers write the same cache, so ``cache_dir`` must be a path they see). Returns
    ``{key: result}`` for every job.
    """
    from joblib import Memory, Parallel, delayed

    cached = Memory(str(cache_dir), verbose=0).cache(func)
    in_cache = [cached.check_call_in_cache(**kw) for _, kw in jobs]
    hits = [job for job, hit in zip(jobs, in_cache) if hit]
    todo = [job for job, hit in zip(jobs, in_cache) if not hit]
    results = {k: cached(**kw) for k, kw in hits}
    if progress and hits:
        progress(f"{len(hits)} {noun} found in the cache, {len(todo)} to run")
    if client is not None:
        from gear.distributed import run_tasks

        def done(key, out):
            if progress:
                progress(describe(key, out))

        results.update(run_tasks(cached, {k: () for k, _ in todo}, client, prefix="gear-timbre",
                                 on_result=done, kwargs={k: kw for k, kw in todo}, match_threads=True))
        return results
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    for key, out in parallel(delayed(_keyed)(cached, k, kw) for k, kw in todo):
        results[key] = out
        if progress:
            progress(describe(key, out))
    return results


def _grid_features(studies, reps, source) -> Tuple[Dict[str, Study], Dict[Tuple[str, str], np.ndarray]]:
    """Load every study and its features first, so that bad input fails before anything
    is computed or cached."""
    objs, feats = {}, {}
    for name in studies:
        objs[name] = load_study(name, data_dir=source.data_dir, check_audio=False)
        for rep in reps:
            feats[(name, rep)] = source(objs[name], rep)
    return objs, feats


@dataclasses.dataclass
class _Grid:
    studies: List[str]
    reps: List[str]
    labels: Dict[str, str]
    objs: Dict[str, Study]
    results: Dict[tuple, object]


def _study_grid(
    func: Callable[..., object],
    make_jobs: Callable[..., list],
    *,
    out_dir: Path,
    studies,
    representations,
    zoo=(),
    data_dir=None,
    models_dir=None,
    include_unaligned: bool = False,
    n_jobs: int = 1,
    noun: str,
    describe: Callable[[tuple, object], str],
    progress=None,
    client=None,
) -> _Grid:
    """The one select -> load -> cache -> parallel loop of every timbre study.

    Selects the studies and representations (:func:`_select`), loads every study's
    features (bad input fails here, before anything is cached), builds the jobs with
    ``make_jobs(studies, reps, objs, feats)`` and runs them through :func:`_run_grid`.
    """
    studies, reps, labels = _select(studies, representations, data_dir, zoo, include_unaligned)
    source = _FeatureSource(data_dir, models_dir, out_dir / "cache", zoo)
    for r in reps:
        source.check(r)
    objs, feats = _grid_features(studies, reps, source)
    jobs = make_jobs(studies, reps, objs, feats)
    results = _run_grid(func, jobs, cache_dir=out_dir / "cache", n_jobs=n_jobs, noun=noun,
                        progress=progress, describe=describe, client=client)
    return _Grid(studies, reps, labels, objs, results)


def _write_csv(out_dir: Path, name: str, columns: Sequence[str], rows: List[dict]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / name, _csv_text(columns, rows))


def _describe_fit(key, out) -> str:
    return f"{key[0]:24s} {key[1]:18s} {key[2]:15s} P2 = {out['p2']:.3f}"


def fit_any(features, ratings, mode: str, random_state=None, n_splits=None, seed=None) -> dict:
    """One in-sample fit (:data:`~gear.timbre.solver.MODES`) or one cross-validated one
    (:data:`~gear.timbre.validation.OUT_OF_SAMPLE_MODES`); the arguments a mode does not use
    are ``None`` (so that they do not enter its cache key)."""
    if mode in OUT_OF_SAMPLE_MODES:
        return out_of_sample(features, ratings, mode=mode, n_splits=n_splits or 5, seed=seed or 0)
    out = fit_explained_variance(features, ratings, mode, random_state=random_state or 0)
    out["validation"] = describe_validation(mode)
    return out


def _table_jobs(studies, reps, modes, objs, feats, random_state, n_splits, seed):
    jobs = []
    for mode in modes:
        extra = {
            "random_state": random_state if mode == "faithful-random" else None,
            "n_splits": n_splits if mode == "exact-kfold" else None,
            "seed": seed if mode == "exact-kfold" else None,
        }
        for s in studies:
            for r in reps:
                kw = {"features": feats[(s, r)], "ratings": objs[s].ratings, "mode": mode, **extra}
                jobs.append(((s, r, mode), kw))
    return jobs


def explained_variance_table(
    *,
    out_dir: PathLike,
    studies: Optional[Sequence[str]] = None,
    representations: Optional[Sequence[str]] = None,
    modes: Sequence[str] = ("exact", "exact-loso"),
    zoo: Sequence[str] = (),
    data_dir: Optional[PathLike] = None,
    models_dir: Optional[PathLike] = None,
    n_jobs: int = 1,
    random_state: int = 0,
    n_splits: int = 5,
    seed: int = 0,
    include_unaligned: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> List[dict]:
    """Explained variance per study x representation x mode, in- and out-of-sample.

    Writes ``<out_dir>/explained_variance.csv`` (:data:`TABLE_COLUMNS`) and
    ``<out_dir>/explained_variance.html`` (per mode a table with medians and interquartile
    ranges, and the ranking of the representations by their median out-of-sample ``P^2``
    when an out-of-sample mode ran), caching each fit under ``<out_dir>/cache/``.

    Parameters
    ----------
    out_dir : path-like
    studies : sequence of str, optional
        Default: every study of ``data_dir``.
    representations : sequence of str, optional
        Default: every folder of ``<data_dir>/features`` except the unaligned ones.
    modes : sequence of str
        In-sample: ``exact``, ``faithful-warm``, ``faithful-random``, ``pearson-d``;
        out-of-sample: ``exact-loso``, ``exact-kfold`` (:mod:`gear.timbre.validation`).
    zoo : sequence of str
        Zoo model names added as representations.
    data_dir, models_dir : path-like, optional
    n_jobs : int
        joblib workers.
    random_state : int
        Seed of ``faithful-random``.
    n_splits, seed : int
        Folds and shuffling seed of ``exact-kfold``.
    include_unaligned : bool
        Keep the ``unaligned`` representations (labelled) as a shuffled-pairing control.
    progress : callable(str), optional
        Called with one line per finished fit (the CLI prints it).

    Returns
    -------
    list of dict
        One row per fit: the CSV columns plus diagnostics.
    """
    for mode in modes:
        if mode not in TABLE_MODES:
            raise ParameterError(f"mode={mode!r}; use one of {', '.join(TABLE_MODES)}")
    out_dir = Path(out_dir)
    g = _study_grid(
        fit_any, lambda s, r, o, f: _table_jobs(s, r, modes, o, f, random_state, n_splits, seed),
        out_dir=out_dir, studies=studies, representations=representations, zoo=zoo, data_dir=data_dir,
        models_dir=models_dir, include_unaligned=include_unaligned, n_jobs=n_jobs, noun="fits",
        describe=_describe_fit, progress=progress,
    )
    rows = [
        {"study": s, "representation": r, "alignment": g.labels[r], "mode": m, **g.results[(s, r, m)]}
        for m in modes for s in g.studies for r in g.reps
    ]
    _write_csv(out_dir, "explained_variance.csv", TABLE_COLUMNS, rows)
    pages.write_table_html(rows, out_dir / "explained_variance.html")
    return rows


def rank_metrics_table(
    *,
    out_dir: PathLike,
    studies: Optional[Sequence[str]] = None,
    representations: Optional[Sequence[str]] = None,
    zoo: Sequence[str] = (),
    distances: Sequence[str] = tuple(DISTANCES),
    metrics: Sequence[str] = tuple(METRICS),
    data_dir: Optional[PathLike] = None,
    models_dir: Optional[PathLike] = None,
    n_jobs: int = 1,
    include_unaligned: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> List[dict]:
    """Fixed-distance rank metrics (:mod:`gear.timbre.rankmetrics`) for every study and
    representation; writes ``<out_dir>/rank_metrics.csv`` (:data:`RANK_COLUMNS`).

    Returns
    -------
    list of dict
        One row per study x representation x distance x metric.
    """
    out_dir = Path(out_dir)

    def make_jobs(studies, reps, objs, feats):
        return [((s, r), {"features": feats[(s, r)], "ratings_matrix": objs[s].ratings_matrix,
                          "distances": tuple(distances), "metrics": tuple(metrics)})
                for s in studies for r in reps]

    g = _study_grid(
        rank_metrics, make_jobs, out_dir=out_dir, studies=studies, representations=representations, zoo=zoo,
        data_dir=data_dir, models_dir=models_dir, include_unaligned=include_unaligned, n_jobs=n_jobs,
        noun="rank-metric sets", describe=lambda k, o: f"{k[0]:24s} {k[1]:18s} rank metrics", progress=progress,
    )
    rows = [
        {"study": s, "representation": r, "alignment": g.labels[r], **m}
        for s in g.studies for r in g.reps for m in g.results[(s, r)]
    ]
    _write_csv(out_dir, "rank_metrics.csv", RANK_COLUMNS, rows)
    return rows


def published_table(
    *,
    out_dir: PathLike,
    studies: Optional[Sequence[str]] = None,
    published: Optional[Dict[Tuple[str, str], float]] = None,
    data_dir: Optional[PathLike] = None,
    n_jobs: int = 1,
    progress: Optional[Callable[[str], None]] = None,
) -> List[dict]:
    """Published ``P^2`` next to GEAR's faithful, exact and out-of-sample (``exact-loso``)
    values, with the alignment label; writes ``<out_dir>/published.csv``
    (:data:`PUBLISHED_COLUMNS`) and ``published.html``.

    The faithful procedure (minutes per fit on STMF and MERT concat) runs only where a
    published value is known.

    Parameters
    ----------
    published : dict, optional
        ``{(study, representation): P^2}``; default :data:`gear.timbre.published.PUBLISHED`.
    """
    published = dict(PUBLISHED if published is None else published)
    out_dir = Path(out_dir)
    known = list(REFERENCE_ALIGNMENT)
    reps = sorted({r for _, r in published}, key=lambda r: (known.index(r) if r in known else len(known), r))
    modes = {"exact": "exact", "exact-loso": "out_of_sample"}

    def make_jobs(studies, reps, objs, feats):
        jobs = _table_jobs(studies, reps, list(modes), objs, feats, None, None, None)
        return jobs + [((s, r, "faithful-warm"), {"features": feats[(s, r)], "ratings": objs[s].ratings,
                                                  "mode": "faithful-warm"})
                       for s in studies for r in reps if (s, r) in published]

    g = _study_grid(
        fit_any, make_jobs, out_dir=out_dir, studies=studies, representations=reps, data_dir=data_dir,
        include_unaligned=True, n_jobs=n_jobs, noun="fits", describe=_describe_fit, progress=progress,
    )
    rows = []
    for r in g.reps:
        for s in g.studies:
            faithful = g.results.get((s, r, "faithful-warm"))
            row = {"study": s, "representation": r, "alignment": g.labels[r],
                   "published": published.get((s, r), ""), "faithful": faithful["p2"] if faithful else ""}
            row.update({col: g.results[(s, r, m)]["p2"] for m, col in modes.items()})
            rows.append(row)
    _write_csv(out_dir, "published.csv", PUBLISHED_COLUMNS, rows)
    pages.write_published_html(rows, out_dir / "published.html")
    return rows


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
    include_unaligned: bool = False,
    progress: Optional[Callable[[str], None]] = None,
    client=None,
) -> Tuple[List[dict], List[dict]]:
    """Robustness of the learned metric to noisy ratings (Pascal & Lagrange 2024).

    For every study, representation, ``delta`` and realisation, learn the exact optimum on
    ``y = clip(s + delta * xi, 0, 1)`` (``noise="absolute"``) or
    ``y = clip(s + delta * std(s) * xi, 0, 1)`` (``noise="relative"``) and report
    ``P(d_{w_delta}^2, s)^2`` against the clean ratings. The noise of a (study, delta,
    realisation) is the same for every representation. Unaligned representations are left
    out unless ``include_unaligned``.

    Writes ``robustness.csv`` (:data:`ROBUSTNESS_COLUMNS`), ``robustness_auc.csv``
    (:data:`AUC_COLUMNS`; AUC of the mean curve over ``log10 delta``, trapezoid),
    ``robustness.json`` (metadata: convention, deltas, seed) and ``robustness.html``
    (interactive Plotly curves, plotly.js embedded, ``delta_bar = 0.1 sqrt(m_subjects)``
    marked), caching each (study, representation) under ``<out_dir>/cache/``.

    ``client`` (a ``distributed.Client``, optional) runs each (study, representation) cell of
    the grid as one Dask task instead of ``n_jobs`` joblib workers; the outputs are the same.

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
    params = {"deltas": deltas, "n_realisations": int(n_realisations), "noise": noise, "seed": int(seed)}

    def make_jobs(studies, reps, objs, feats):
        return [((s, r), {"features": feats[(s, r)], "ratings": objs[s].ratings, "study": s, **params})
                for s in studies for r in reps]

    def auc(curves):
        return robustness_auc(deltas, _p2_matrix(curves, deltas, n_realisations))

    g = _study_grid(
        robustness_curves, make_jobs, out_dir=out_dir, studies=studies, representations=representations,
        zoo=zoo, data_dir=data_dir, models_dir=models_dir, include_unaligned=include_unaligned, n_jobs=n_jobs,
        noun="(study, representation) curves", describe=lambda k, o: f"{k[0]:24s} {k[1]:18s} AUC = {auc(o):.3f}",
        progress=progress, client=client,
    )
    studies, reps, labels, objs = g.studies, g.reps, g.labels, g.objs
    rows = [
        {"study": s, "representation": r, "alignment": labels[r], "noise": noise, **row}
        for s in studies for r in reps for row in g.results[(s, r)]
    ]
    auc_rows = [
        {"study": s, "representation": r, "alignment": labels[r], "auc": auc(g.results[(s, r)]), "noise": noise,
         "delta_bar": objs[s].delta_bar if objs[s].delta_bar is not None else ""}
        for s in studies for r in reps
    ]
    _write_csv(out_dir, "robustness.csv", ROBUSTNESS_COLUMNS, rows)
    _write_csv(out_dir, "robustness_auc.csv", AUC_COLUMNS, auc_rows)
    meta = {
        "noise": noise,
        "noise_formula": NOISE_FORMULA[noise],
        "deltas": deltas,
        "n_realisations": int(n_realisations),
        "seed": int(seed),
        "solver": "exact (certified cone projection)",
        "p2": "max(P, 0)^2 with P = P(d_w^2, s), w learned on the degraded ratings, s the clean ratings",
        "auc": "trapezoid area of the mean curve over log10(delta)",
        "alignment": labels,
        "delta_bar": {s: objs[s].delta_bar for s in studies},
    }
    atomic_write_text(out_dir / "robustness.json", json.dumps(meta, indent=2))
    pages.write_robustness_html(rows, auc_rows, out_dir / "robustness.html", meta=meta)
    return rows, auc_rows


#: The noise formulas, as written in the outputs.
NOISE_FORMULA = {
    "absolute": "y = clip(s + delta * xi, 0, 1), xi ~ N(0, 1) i.i.d. (Pascal & Lagrange 2024, published)",
    "relative": "y = clip(s + delta * std(s) * xi, 0, 1), xi ~ N(0, 1) i.i.d. (authors' notebook)",
}


def _p2_matrix(rows: List[dict], deltas: Sequence[float], n_realisations: int) -> np.ndarray:
    p2 = np.full((len(deltas), int(n_realisations)), np.nan)
    index = {float(d): i for i, d in enumerate(deltas)}
    for r in rows:
        p2[index[float(r["delta"])], int(r["realisation"])] = float(r["p2"])
    return p2
