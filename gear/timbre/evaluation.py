"""Evaluate any embedding on the 17 timbre studies, fast enough to run at every epoch.

:func:`evaluate` takes a callable from audio to embeddings (timbremetrics' main use: a
model under training) and returns the in-sample and out-of-sample explained variance of
the exact learned metric and the fixed-distance rank metrics, per study.
"""
from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from typing import Callable, List, Optional, Sequence

import numpy as np

from gear.errors import ParameterError
from gear.timbre.data import PathLike, _data_dir, list_studies, load_audio, load_study
from gear.timbre.rankmetrics import DISTANCES, METRICS, rank_metrics
from gear.timbre.validation import OUT_OF_SAMPLE_MODES, out_of_sample

__all__ = ["Evaluation", "evaluate", "study_audio"]


@dataclasses.dataclass
class Evaluation:
    """Records of :func:`evaluate` (lists of dicts; :meth:`frames` gives pandas frames).

    Attributes
    ----------
    in_sample : list of dict
        ``study``, ``p2`` (exact, in-sample), ``pearson``.
    out_of_sample : list of dict
        ``study``, ``mode``, ``p2``, ``pearson``, ``validation``.
    rank_metrics : list of dict
        ``study``, ``distance``, ``metric``, ``value``.
    """

    in_sample: List[dict]
    out_of_sample: List[dict]
    rank_metrics: List[dict]

    def medians(self) -> dict:
        """Median over studies: ``in_sample``, ``out_of_sample`` and ``(distance, metric)``."""
        out = {"in_sample": float(np.median([r["p2"] for r in self.in_sample])),
               "out_of_sample": float(np.median([r["p2"] for r in self.out_of_sample]))}
        for key in dict.fromkeys((r["distance"], r["metric"]) for r in self.rank_metrics):
            out[key] = float(np.median([r["value"] for r in self.rank_metrics
                                        if (r["distance"], r["metric"]) == key]))
        return out

    def frames(self):
        """The three tables as :class:`pandas.DataFrame` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.in_sample), pd.DataFrame(self.out_of_sample), pd.DataFrame(self.rank_metrics)


@functools.lru_cache(maxsize=64)
def _audio(root: str, study: str, sample_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    signals = []
    for x, sr in load_audio(study, data_dir=root):
        frac = Fraction(int(sample_rate), int(sr))
        signals.append(x if sr == sample_rate else resample_poly(x, frac.numerator, frac.denominator))
    out = np.zeros((len(signals), max(len(x) for x in signals)), dtype=np.float32)
    for i, x in enumerate(signals):
        out[i, : len(x)] = x
    out.setflags(write=False)
    return out


def study_audio(study: str, sample_rate: int, *, data_dir: Optional[PathLike] = None) -> np.ndarray:
    """A study's sounds at ``sample_rate`` (polyphase resampling), zero-padded at the end to
    the longest one, in sorted file order (read once, then kept in memory).

    Returns
    -------
    np.ndarray, shape (n_sounds, n_samples), float32, read-only
    """
    if int(sample_rate) <= 0:
        raise ParameterError(f"sample_rate={sample_rate}; give the embedding's rate in Hz (> 0)")
    return _audio(str(_data_dir(data_dir)), study, int(sample_rate))


def _embed(embed_fn, audio: np.ndarray, study: str) -> np.ndarray:
    emb = embed_fn(audio)
    if hasattr(emb, "detach"):
        emb = emb.detach().cpu().numpy()
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != audio.shape[0]:
        raise ParameterError(
            f"embed_fn returned shape {emb.shape} for {study} ({audio.shape[0]} sounds); it must map "
            "audio (n, samples) to embeddings (n, d)"
        )
    if not np.all(np.isfinite(emb)):
        raise ParameterError(f"embed_fn returned NaN or infinite values for {study}")
    return emb


def evaluate(
    embed_fn: Callable[[np.ndarray], np.ndarray],
    sample_rate: int,
    *,
    studies: Optional[Sequence[str]] = None,
    data_dir: Optional[PathLike] = None,
    out_of_sample_mode: str = "exact-loso",
    n_splits: int = 5,
    seed: int = 0,
    distances: Sequence[str] = tuple(DISTANCES),
    metrics: Sequence[str] = tuple(METRICS),
) -> Evaluation:
    """In-sample and out-of-sample explained variance and rank metrics of an embedding.

    Parameters
    ----------
    embed_fn : callable
        Maps audio, shape (n_sounds, n_samples), float32 at ``sample_rate`` (a study's
        sounds zero-padded at the end to the longest, sorted file order) to embeddings,
        shape (n_sounds, d) (numpy array or torch tensor).
    sample_rate : int
        Rate of the audio ``embed_fn`` expects, in Hz.
    studies : sequence of str, optional
        Default: all studies of ``data_dir``.
    data_dir : path-like, optional
    out_of_sample_mode : {"exact-loso", "exact-kfold"}
    n_splits, seed : int
        Of ``exact-kfold``.
    distances, metrics : sequence of str
        Of :func:`gear.timbre.rankmetrics.rank_metrics`.

    Returns
    -------
    Evaluation
    """
    if out_of_sample_mode not in OUT_OF_SAMPLE_MODES:
        raise ParameterError(f"out_of_sample_mode={out_of_sample_mode!r}; use one of {', '.join(OUT_OF_SAMPLE_MODES)}")
    names = list(studies) if studies else list_studies(data_dir)
    ins, oos, ranks = [], [], []
    for name in names:
        st = load_study(name, data_dir=data_dir, check_audio=False)
        emb = _embed(embed_fn, study_audio(name, sample_rate, data_dir=data_dir), name)
        cv = out_of_sample(emb, st.ratings, mode=out_of_sample_mode, n_splits=n_splits, seed=seed)
        ins.append({"study": name, "p2": cv.pop("p2_in_sample"), "pearson": cv.pop("pearson_in_sample")})
        oos.append({"study": name, "mode": out_of_sample_mode, **cv})
        ranks += [{"study": name, **r} for r in rank_metrics(emb, st.ratings_matrix, distances=distances,
                                                             metrics=metrics)]
    return Evaluation(in_sample=ins, out_of_sample=oos, rank_metrics=ranks)
