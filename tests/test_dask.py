"""gear.distributed on a real Dask cluster: a `dask scheduler` and two `dask worker` processes
on 127.0.0.1 (free ports, torn down after), compared with the serial analysis."""
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from gear import distributed as gd  # noqa: E402
from gear import errors as gear_errors  # noqa: E402
from gear.errors import ParameterError  # noqa: E402
from gear.pipeline import GearConfig  # noqa: E402

SHARED = Path(os.environ.get("GEAR_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared"))
CONFIG = GearConfig(grid_kwargs=dict(n_alpha=20, n_r=20), isomap_neighbors=30, n_neighbors=10, n_bootstrap=200)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _embeddings(tone_set, n_models, dim=24):
    """Smooth random maps of the tones' parameters: different, deterministic 'models'."""
    theta = tone_set.theta()
    z = np.column_stack([np.log2(theta[:, 0]), theta[:, 1], theta[:, 2]])
    out = {}
    for m in range(n_models):
        rng = np.random.default_rng(m)
        out[f"model{m}"] = np.tanh(z @ rng.standard_normal((3, dim)) + rng.standard_normal(dim)).astype(np.float32)
    return out


def _assert_same(results, serial):
    assert list(results) == list(serial)
    for name, result in results.items():
        reference = serial[name]
        assert result.scores == reference.scores, name
        for parameter, values in reference.log_ratios.items():
            np.testing.assert_array_equal(result.log_ratios[parameter], values)
        np.testing.assert_allclose(result.isomap, reference.isomap, atol=1e-8)  # BLAS: last bits vary


@contextlib.contextmanager
def _real_cluster(n_workers=2):
    """`dask scheduler` and ``n_workers`` `dask worker` processes on 127.0.0.1 (free port), torn down after."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    dask = [sys.executable, "-m", "dask"]
    processes = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    workers = [subprocess.Popen(dask + ["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                                        "--no-dashboard", "--name", f"w{i}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(n_workers)]
    processes += workers
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = gd.client_for(address, timeout_s=5)
                break
            except ParameterError:
                if time.monotonic() > deadline:
                    raise
        client.wait_for_workers(n_workers, timeout=90)
        yield client, workers, address
        client.close()
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster():
    with _real_cluster() as (client, workers, _):
        yield client, workers


def _kill_a_busy_worker(client, workers, deadline_s=120):
    """Kill one worker while it runs a task; its name."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        busy = [info["name"] for address, info in client.scheduler_info()["workers"].items()
                if client.processing().get(address)]
        victim = next((name for name in busy if name in ("w0", "w1")), None)
        if victim is not None:
            workers[int(victim[1])].kill()
            return victim
        time.sleep(0.02)
    raise AssertionError("no worker ever started a task")


@pytest.mark.slow
def test_cluster_results_equal_serial_and_survive_a_killed_worker(cluster):
    client, workers = cluster
    tone_set = CONFIG.tone_set()
    embeddings = _embeddings(tone_set, 4)
    serial = gd.analyse_many(embeddings, tone_set, CONFIG)
    _assert_same(gd.analyse_many(embeddings, tone_set, CONFIG, client), serial)

    # now kill one worker while it is analysing a model
    many = _embeddings(tone_set, 8)
    serial_many = gd.analyse_many(many, tone_set, CONFIG)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(gd.analyse_many(many, tone_set, CONFIG, client)))
    start = time.monotonic()
    runner.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        busy = [info["name"] for address, info in client.scheduler_info()["workers"].items()
                if client.processing().get(address)]
        victim = next((name for name in busy if name in ("w0", "w1")), None)
        time.sleep(0.05)
    assert victim is not None, "no worker ever started a task"
    workers[int(victim[1])].kill()
    runner.join(timeout=180)
    assert not runner.is_alive()
    print(f"run with a killed worker ({victim}): {time.monotonic() - start:.1f} s")
    assert len(client.scheduler_info()["workers"]) == 1  # the run finished on the survivor
    _assert_same(outcome, serial_many)


@pytest.mark.slow
def test_local_cluster_results_equal_serial():
    tone_set = CONFIG.tone_set()
    embeddings = _embeddings(tone_set, 2)
    with gd.client_for("local:2") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        _assert_same(gd.analyse_many(embeddings, tone_set, CONFIG, client), gd.analyse_many(embeddings, tone_set, CONFIG))
        cluster = client.cluster
    assert cluster.status.name == "closed"


def test_unreachable_scheduler_is_a_clear_error_within_10_s():
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(ParameterError, match=address.replace(".", r"\.")):
        gd.client_for(address)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("bad", ["127.0.0.1:8786", "local:0", "local:two", 8786])
def test_malformed_scheduler_addresses(bad):
    with pytest.raises(ParameterError, match="scheduler"):
        gd.client_for(bad)


def test_serial_analyse_many_is_pipeline_analysis():
    from gear.pipeline import analyse_embedding

    tone_set = CONFIG.tone_set()
    embeddings = _embeddings(tone_set, 2)
    results = gd.analyse_many(embeddings, tone_set, CONFIG, descriptions={"model0": "first"})
    reference = analyse_embedding("model0", embeddings["model0"], tone_set, config=CONFIG, description="first")
    assert results["model0"].scores == reference.scores and results["model0"].description == "first"


RUN = ["--models", "mfcc", "logmel", "--n-alpha", "20", "--n-r", "20", "--isomap-neighbors", "30", "--neighbors", "10",
       "--n-bootstrap", "200", "--batch-size", "8", "-q"]


@pytest.mark.slow
def test_a_task_rerun_after_its_worker_died_is_reported():
    """A worker killed while it runs a task: the scheduler reruns the task on the survivor, the
    results are complete, and the rerun is reported (TaskRerunWarning naming the task); a run with
    no death reports nothing."""
    with _real_cluster() as (client, workers, _):
        jobs = {i: (3.0,) for i in range(2)}  # time.sleep(3): long enough to be killed while running
        with warnings.catch_warnings(record=True) as quiet:
            warnings.simplefilter("always")
            assert gd.run_tasks(time.sleep, {0: (0.1,)}, client, prefix="nap") == {0: None}
        assert not [w for w in quiet if issubclass(w.category, gd.TaskRerunWarning)]
        outcome, caught = {}, []

        def target():
            with warnings.catch_warnings(record=True) as recorded:
                warnings.simplefilter("always")
                outcome.update(gd.run_tasks(time.sleep, jobs, client, prefix="nap"))
            caught.extend(recorded)

        runner = threading.Thread(target=target)
        runner.start()
        victim = _kill_a_busy_worker(client, workers)
        runner.join(timeout=120)
        assert not runner.is_alive() and outcome == {0: None, 1: None}, victim
    reruns = [str(w.message) for w in caught if issubclass(w.category, gd.TaskRerunWarning)]
    assert len(reruns) == 1 and "1 nap task(s) were rerun" in reruns[0] and "(1x)" in reruns[0], reruns


@pytest.mark.slow
def test_gear_run_on_a_cluster_equals_the_serial_run_and_survives_a_killed_worker(tmp_path):
    """`gear run --scheduler tcp://...`: embedding shards and analyses on real worker processes; the
    outputs equal the serial run's (scores.csv identical, embeddings within 1e-6), also when a
    worker is killed mid-run."""
    from gear.cli import main

    assert main(["run", "--out", str(tmp_path / "serial"), "--cache-dir", str(tmp_path / "c0"), *RUN]) == 0
    with _real_cluster() as (client, workers, address):
        assert main(["run", "--out", str(tmp_path / "dask"), "--cache-dir", str(tmp_path / "c1"),
                     "--scheduler", address, *RUN]) == 0
        _assert_same_run(tmp_path / "dask", tmp_path / "serial")
        outcome = {}
        runner = threading.Thread(target=lambda: outcome.update(code=main(
            ["run", "--out", str(tmp_path / "killed"), "--cache-dir", str(tmp_path / "c2"), "--scheduler", address,
             *RUN])))
        runner.start()
        victim = _kill_a_busy_worker(client, workers)
        runner.join(timeout=300)
        assert not runner.is_alive() and outcome["code"] == 0, victim
        assert len(client.scheduler_info()["workers"]) == 1  # finished on the survivor
    _assert_same_run(tmp_path / "killed", tmp_path / "serial")


def _assert_same_run(out, reference):
    assert (out / "scores.csv").read_bytes() == (reference / "scores.csv").read_bytes()
    for model in ("mfcc", "logmel"):
        np.testing.assert_allclose(np.load(out / "models" / model / "embedding.npy"),
                                   np.load(reference / "models" / model / "embedding.npy"), atol=1e-6, rtol=0)


def test_a_worker_without_the_model_files_is_named(tmp_path, monkeypatch):
    """The error of a worker that cannot load a model names the worker (here a LocalCluster worker
    that fails to import the model's module)."""
    from gear.embedder import ModelSource, _worker_prepare

    tone_set = CONFIG.tone_set()
    with gd.client_for("local:1") as client:
        future = client.submit(_worker_prepare, ModelSource("submission", "gear_no_such_module"), tone_set, None,
                               65536, True, pure=False)
        with pytest.raises(gear_errors.SubmissionError, match=r"on Dask worker .*No module named 'gear_no_such_module'"):
            future.result()


@pytest.mark.slow
def test_gear_score_and_timbre_robustness_on_a_cluster_equal_serial(tmp_path):
    """`gear score --scheduler tcp://...` (one task per model) and `gear timbre robustness
    --scheduler tcp://...` (one task per (study, representation) cell) on real worker processes:
    disentanglement.csv, similarity.csv and the robustness outputs byte-identical to serial runs."""
    import shutil

    from gear.cli import main

    serial = tmp_path / "serial"
    assert main(["run", "--out", str(serial), "--cache-dir", str(tmp_path / "c0"), *RUN]) == 0
    shutil.copytree(serial, tmp_path / "dask")
    assert main(["score", "--out", str(serial), "-q"]) == 0
    timbre = ["timbre", "robustness", "--data", str(SHARED / "timbre"), "--studies", "Patil2012_A3", "Patil2012_DX4",
              "--representations", "stft", "stmf", "--deltas", "0.1", "1", "--realisations", "2", "--quiet"]
    assert main([*timbre, "--out", str(tmp_path / "rob_serial")]) == 0
    with _real_cluster() as (client, workers, address):
        assert main(["score", "--out", str(tmp_path / "dask"), "--scheduler", address, "-q"]) == 0
        assert main([*timbre, "--out", str(tmp_path / "rob_dask"), "--scheduler", address]) == 0
        ran = set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))
    assert {"gear-score", "gear-timbre"} <= ran, ran  # the tasks did run on the cluster
    for name in ("disentanglement.csv", "similarity.csv"):
        assert (tmp_path / "dask" / name).read_bytes() == (serial / name).read_bytes(), name
    for name in ("robustness.csv", "robustness_auc.csv"):
        assert (tmp_path / "rob_dask" / name).read_bytes() == (tmp_path / "rob_serial" / name).read_bytes(), name


def test_run_tasks_match_the_clients_thread_counts():
    """A LocalCluster worker runs single-threaded BLAS; with match_threads its tasks run with the
    client's BLAS / OpenMP thread counts (what makes `gear score --scheduler` bit-identical)."""
    import sklearn.utils._openmp_helpers  # noqa: F401  (its OpenMP pool, as in a gear score run)

    here = gd._thread_counts()
    with gd.client_for("local:1") as client:
        plain = gd.run_tasks(gd._thread_counts, {"t": ()}, client)["t"]
        matched = gd.run_tasks(gd._thread_counts, {"t": ()}, client, match_threads=True)["t"]
    assert matched == here
    if here.get("blas", 1) > 1:  # the control: without matching the worker differs
        assert plain != here
    assert gd.run_tasks(divmod, {"a": (7, 2), "b": (9, 4)}) == {"a": (3, 1), "b": (2, 1)}  # serial


def test_gear_run_layers_on_a_cluster_equals_the_serial_run(cluster, tmp_path):
    """`gear run --layers all --scheduler tcp://...`: the layered pass is a task on a worker process
    and each of the 1 + 3 entries is analysed by a task; scores.csv equals the serial layered run's."""
    from gear.cli import main

    client, _ = cluster
    args = ["--models", "naive", "--layers", "all", "--n-alpha", "12", "--n-r", "12", "--isomap-neighbors", "20",
            "--neighbors", "8", "--n-bootstrap", "100", "-q"]
    assert main(["run", "--out", str(tmp_path / "serial"), "--cache-dir", str(tmp_path / "c0"), *args]) == 0
    assert main(["run", "--out", str(tmp_path / "dask"), "--cache-dir", str(tmp_path / "c1"), "--scheduler",
                 client.scheduler.address, *args]) == 0
    ran = set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))
    assert any(p.startswith("gear-layers") for p in ran) and any(p.startswith("gear-analyse") for p in ran), ran
    assert (tmp_path / "dask" / "scores.csv").read_bytes() == (tmp_path / "serial" / "scores.csv").read_bytes()
    assert "naive/log_mel" in (tmp_path / "dask" / "scores.csv").read_text()
    for entry in ("naive", "naive%2Fpower", "naive%2Flog_mel", "naive%2Fprojection"):
        np.testing.assert_allclose(np.load(tmp_path / "dask" / "models" / entry / "embedding.npy"),
                                   np.load(tmp_path / "serial" / "models" / entry / "embedding.npy"), rtol=1e-5,
                                   atol=1e-4)
