"""gear.distributed on a real Dask cluster: a `dask scheduler` and two `dask worker` processes
on 127.0.0.1 (free ports, torn down after), compared with the serial analysis."""
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from gear import distributed as gd  # noqa: E402
from gear.errors import ParameterError  # noqa: E402
from gear.pipeline import GearConfig  # noqa: E402

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


@pytest.fixture(scope="module")
def cluster():
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    dask = [sys.executable, "-m", "dask"]
    processes = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    workers = [subprocess.Popen(dask + ["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
                                        "--no-dashboard", "--name", f"w{i}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
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
        client.wait_for_workers(2, timeout=90)
        yield client, workers
        client.close()
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=30)


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
