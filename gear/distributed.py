"""Run GEAR's per-model analysis on a Dask cluster (``pip install 'gear-audio[dask]'``).

- :func:`client_for` connects to an existing scheduler (``tcp://HOST:PORT``, e.g. one started by
  dask-jobqueue on SLURM or by dask-kubernetes) or starts a ``LocalCluster`` of N worker
  processes (``local:N``);
- :func:`run_tasks` runs one pure function per job on the cluster (or serially without one):
  ``gear score`` (one task per model's metrics) and ``gear timbre robustness`` (one task per
  (study, representation) cell of the grid) use it;
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

import functools
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Dict, Hashable, Mapping, Optional, Union

import numpy as np

from gear.errors import ParameterError

__all__ = ["CONNECT_TIMEOUT_S", "TaskRerunWarning", "client_for", "analyse_many", "submit_analysis",
           "embed_layers_on", "run_tasks", "report_reruns"]

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
    jobs = {name: (name, embedding, tone_set, config, descriptions.get(name, ""))
            for name, embedding in embeddings.items()}
    return run_tasks(_analyse_task, jobs, client, prefix="gear-analyse", retries=retries)


def _thread_counts() -> Dict[str, int]:
    """This process's thread count per threadpoolctl user API (``blas``, ``openmp``)."""
    from threadpoolctl import threadpool_info

    counts: Dict[str, int] = {}
    for pool in threadpool_info():
        counts[pool["user_api"]] = max(counts.get(pool["user_api"], 1), int(pool["num_threads"]))
    return counts


def _with_threads(function, threads, *args, **kwargs):
    import scipy.linalg  # noqa: F401  (load the BLAS and OpenMP pools before limiting them:
    import sklearn.utils._openmp_helpers  # noqa: F401  a pool loaded later keeps its default)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return function(*args, **kwargs)


def run_tasks(function: Callable, jobs: Mapping[Hashable, tuple], client=None, *, prefix: str = "gear",
              retries: int = 1, on_result: Optional[Callable[[Hashable, object], None]] = None,
              kwargs: Optional[Mapping[Hashable, dict]] = None, match_threads: bool = False) -> Dict[Hashable, object]:
    """``{key: function(*args)}`` for every job: one Dask task each on ``client``, or serially.

    Parameters
    ----------
    function : callable
        Pure (the same arguments give the same result), importable by the workers.
    jobs : mapping of key -> tuple of arguments
    client : distributed.Client, optional
        Default: serial, in this process, in the order of ``jobs``.
    prefix : str
        Start of the tasks' names on the cluster (shown by the dashboard).
    retries : int
        Extra attempts of a task that raised (a task whose worker *died* is rerun by the
        scheduler regardless).
    on_result : callable, optional
        Called as ``on_result(key, result)`` as each task finishes (for progress).
    kwargs : mapping of key -> dict, optional
        Keyword arguments of each job (default none).
    match_threads : bool
        Run each task with this process's BLAS and OpenMP thread counts (``threadpoolctl``).
        A Dask worker runs single-threaded BLAS by default, and another thread count changes
        the last bits of some reductions (eigen-solvers, matrix products): matched, the tasks'
        results equal the serial run's bit for bit (on the same CPU type and libraries), at the
        price of more threads than cores when several workers share a machine.

    Returns
    -------
    dict of key -> result, in the order of ``jobs``
    """
    results = {}
    kwargs = kwargs or {}
    if client is None:
        for key, args in jobs.items():
            results[key] = function(*args, **kwargs.get(key, {}))
            if on_result is not None:
                on_result(key, results[key])
        return results
    distributed = _import_distributed()
    if match_threads:
        function = functools.partial(_with_threads, function, _thread_counts())
    keys = {}
    with warnings.catch_warnings():
        # Inputs travel inside the tasks (not scattered): the scheduler keeps them, so a task
        # whose worker dies can be rerun anywhere. Dask's notice about large graphs is expected.
        warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
        for i, (key, args) in enumerate(jobs.items()):
            future = client.submit(function, *args, **kwargs.get(key, {}), key=f"{prefix}-{i}-{os.urandom(4).hex()}",
                                   retries=retries, pure=False)
            keys[future.key] = (key, future)
    for future, result in distributed.as_completed([f for _, f in keys.values()], with_results=True):
        results[keys[future.key][0]] = result
        if on_result is not None:
            on_result(keys[future.key][0], result)
    report_reruns(client, [f for _, f in keys.values()], what=prefix)
    return {key: results[key] for key in jobs}


class TaskRerunWarning(UserWarning):
    """Some Dask tasks were rerun because the worker running them died (their results are the
    reruns'; nothing is lost)."""


def _suspicious(keys, dask_scheduler=None):
    """On the scheduler: ``{key: times its worker died while running it}`` for ``keys``."""
    tasks = dask_scheduler.tasks
    return {key: tasks[key].suspicious for key in keys if key in tasks and tasks[key].suspicious}


def report_reruns(client, futures, *, what: str) -> Dict[str, int]:
    """Warn (:class:`TaskRerunWarning`) about the tasks of ``futures`` (still held, so still known
    to the scheduler) that the scheduler reran after their worker died; ``{key: deaths}``."""
    try:
        reruns = client.run_on_scheduler(_suspicious, [f.key for f in futures])
    except Exception as error:  # a report only: a scheduler that cannot answer does not fail the run
        warnings.warn(f"could not ask the Dask scheduler which {what} tasks were rerun: {error}", TaskRerunWarning,
                      stacklevel=2)
        return {}
    if reruns:
        listed = ", ".join(f"{key} ({count}x)" for key, count in sorted(reruns.items()))
        warnings.warn(f"{len(reruns)} {what} task(s) were rerun on another worker after their worker died: {listed}",
                      TaskRerunWarning, stacklevel=2)
    return reruns


def embed_layers_on(client, spec, tone_set, layers, *, retries: int = 1, **options):
    """``gear run --layers`` on Dask: :func:`gear.layers.embed_layers` (every batch through the model
    once, with the forward hooks of every layer) as one task on a worker, rerun elsewhere if that
    worker dies. The worker loads the model itself (``models_dir`` must be a path it sees) and
    writes the layer caches under ``cache_dir`` when it sees that path too.

    Returns
    -------
    gear.layers.LayeredRun
    """
    from gear.layers import embed_layers

    return run_tasks(embed_layers, {spec.name: (spec, tone_set, tuple(layers))}, client,
                     prefix=f"gear-layers-{spec.name}", retries=retries, kwargs={spec.name: options})[spec.name]


def submit_analysis(client, name: str, embedding: EmbeddingLike, tone_set, config=None, description: str = "", *,
                    retries: int = 1):
    """Submit the analysis of one embedding (see :func:`analyse_many`) without waiting: a Dask
    future of its :class:`gear.results.ModelResult` (``gear run`` analyses one model while the
    next one's shards are embedded)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")  # inputs travel inside the task
        return client.submit(_analyse_task, name, embedding, tone_set, config, description,
                             key=f"gear-analyse-{name}-{os.urandom(4).hex()}", retries=retries, pure=False)
