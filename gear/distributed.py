"""Run GEAR's per-model analysis on a Dask cluster (``pip install 'gear-audio[dask]'``).

- :func:`client_for` connects to an existing scheduler (``tcp://HOST:PORT``, e.g. one started by
  dask-jobqueue on SLURM or by dask-kubernetes) or starts a ``LocalCluster`` of N worker
  processes (``local:N``);
- :func:`analyse_many` runs :func:`gear.pipeline.analyse_embedding` once per model on the
  cluster. Each task is pure (an embedding in, a :class:`gear.results.ModelResult` out), so the
  results equal a serial run's, and a task whose worker dies is rerun on another worker by the
  scheduler (up to ``distributed.scheduler.allowed-failures`` times).

Workers must import the same ``gear`` (the package installed, or the source on a shared path).
Embeddings travel inside their tasks, which the scheduler keeps, so losing a worker loses no
input; an embedding given as a path to a ``.npy`` file is read by the worker itself (a path
every worker sees, e.g. the results directory on shared storage).
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import numpy as np

from gear.errors import ParameterError

__all__ = ["CONNECT_TIMEOUT_S", "client_for", "analyse_many", "submit_analysis"]

#: Seconds to wait for a scheduler before the address is reported unreachable.
CONNECT_TIMEOUT_S = 5.0

_LOCAL = re.compile(r"^local:(\d+)$")
_TCP = re.compile(r"^tcp://[^:/\s]+:\d+$")


def _import_distributed():
    try:
        import distributed
    except ImportError as error:  # pragma: no cover - the [dask] extra is installed in CI
        raise ParameterError(
            "Dask is not installed; install GEAR with its [dask] extra: pip install 'gear-audio[dask]'"
        ) from error
    return distributed


def client_for(scheduler: str, *, timeout_s: float = CONNECT_TIMEOUT_S):
    """A ``distributed.Client`` for ``scheduler``.

    Parameters
    ----------
    scheduler : str
        ``"tcp://HOST:PORT"``: an existing scheduler; ``"local:N"``: a new ``LocalCluster`` of
        N single-threaded worker processes on this machine (closed with the client).
    timeout_s : float
        Seconds to wait for an existing scheduler.

    Returns
    -------
    distributed.Client
        Close it (``client.close()``, or use it as a context manager) when done.

    Raises
    ------
    ParameterError
        A malformed address, or no scheduler answering at it within ``timeout_s``.
    """
    distributed = _import_distributed()
    if not isinstance(scheduler, str):
        raise ParameterError(f"scheduler must be a string 'tcp://HOST:PORT' or 'local:N', got {scheduler!r}")
    local = _LOCAL.match(scheduler)
    if local:
        n_workers = int(local.group(1))
        if n_workers < 1:
            raise ParameterError(f"scheduler {scheduler!r}: local:N needs N >= 1 worker processes")
        # a cluster the client starts itself is closed with the client
        return distributed.Client(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    if not _TCP.match(scheduler):
        raise ParameterError(
            f"scheduler {scheduler!r} is neither 'tcp://HOST:PORT' (an existing Dask scheduler) "
            f"nor 'local:N' (a LocalCluster of N worker processes)"
        )
    try:
        return distributed.Client(scheduler, timeout=f"{float(timeout_s)}s")
    except (OSError, TimeoutError) as error:
        raise ParameterError(
            f"no Dask scheduler answered at {scheduler} within {timeout_s:g} s ({type(error).__name__}); "
            f"start one (`dask scheduler`), check the address and port, or use 'local:N'"
        ) from error


EmbeddingLike = Union[np.ndarray, str, os.PathLike]


def _analyse_task(name, embedding, tone_set, config, description):
    from gear.pipeline import analyse_embedding

    if isinstance(embedding, (str, os.PathLike)):
        embedding = np.load(embedding, mmap_mode="r", allow_pickle=False)
    return analyse_embedding(name, embedding, tone_set, config=config, description=description)


def analyse_many(
    embeddings: Mapping[str, EmbeddingLike],
    tone_set,
    config=None,
    client=None,
    *,
    descriptions: Optional[Mapping[str, str]] = None,
    retries: int = 1,
) -> Dict[str, "object"]:
    """Analyse each model's embedding on a Dask cluster (one task per model).

    Parameters
    ----------
    embeddings : mapping of model name -> np.ndarray (n_sounds, dim) or path of a ``.npy`` file
        Paths are read by the workers, so they must be visible to every worker.
    tone_set : synth.ToneSet
    config : gear.pipeline.GearConfig, optional
    client : distributed.Client, optional
        Default: serial, in this process (the reference the cluster's results equal).
    descriptions : mapping of model name -> str, optional
    retries : int
        Extra attempts of a task that raised (a task whose worker *died* is rerun by the
        scheduler regardless).

    Returns
    -------
    dict of model name -> gear.results.ModelResult, in the order of ``embeddings``
    """
    descriptions = dict(descriptions or {})
    for name, embedding in embeddings.items():
        if isinstance(embedding, (str, os.PathLike)) and not Path(embedding).suffix == ".npy":
            raise ParameterError(f"embedding of {name!r} is a path but not a .npy file: {str(embedding)!r}")
    if client is None:
        return {name: _analyse_task(name, emb, tone_set, config, descriptions.get(name, ""))
                for name, emb in embeddings.items()}
    futures = {name: submit_analysis(client, name, embedding, tone_set, config, descriptions.get(name, ""),
                                     retries=retries) for name, embedding in embeddings.items()}
    results = client.gather(list(futures.values()))
    return dict(zip(futures, results))


def submit_analysis(client, name: str, embedding: EmbeddingLike, tone_set, config=None, description: str = "", *,
                    retries: int = 1):
    """Submit the analysis of one embedding (see :func:`analyse_many`); a Dask future of its
    :class:`gear.results.ModelResult`."""
    with warnings.catch_warnings():
        # Inputs travel inside the tasks (not scattered): the scheduler keeps them, so a task
        # whose worker dies can be rerun anywhere. Dask's notice about large graphs is expected.
        warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
        return client.submit(_analyse_task, name, embedding, tone_set, config, description,
                             key=f"gear-analyse-{name}-{os.urandom(4).hex()}", retries=retries, pure=False)
