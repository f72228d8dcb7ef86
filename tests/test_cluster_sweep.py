"""A sweep on a real multi-node Ray cluster (token auth on) with its storage in S3, and the
loss of a worker node in the middle of it."""

import json
import os
import subprocess
import time
import uuid

import pandas as pd
import pytest
import yaml
from servers import RayLocalCluster

from sessrec import storage
from tests.helpers import SESSREC, run_cli, synth_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(s3):
    # The nodes get the S3 settings in their own environment, as a Kubernetes Secret would.
    with RayLocalCluster(num_workers=2, head_cpus=1, worker_cpus=1, env=s3.env()) as running:
        yield running


@pytest.fixture
def user_env(cluster, s3_env, tmp_path):
    root = f"s3://{s3_env.bucket}/{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **cluster.client_env(), "SESSREC_STORAGE": root}
    synth_dataset(tmp_path, env, sessions=3000, items=400, clusters=15)
    return env, root


def _spec(path, max_t: int, vector_size: int = 16) -> str:
    spec = {
        "name": "cl",
        "dataset": "demo",
        "split": {"seed": 0, "n": 200},
        "space": {"vector_size": vector_size, "window": [2, 5], "negative": [5, 10]},
        "scheduler": {"type": "fifo", "max_t": max_t},
        "resources": {"cpus_per_trial": 1, "max_failures": 3},
    }
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_sweep_on_cluster_with_s3_storage(cluster, user_env, tmp_path):
    env, root = user_env
    result = run_cli(
        "tune",
        "run",
        _spec(tmp_path / "spec.yaml", 3),
        "--address",
        cluster.gcs_address,
        "--sweep-id",
        "c1",
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["trials"] == {"total": 4, "completed": 4, "stopped_early": 0, "errored": 0}
    for name in (
        "spec.yaml",
        "manifest.json",
        "trials.parquet",
        "best/config.json",
        "best/metrics.json",
        "best/embeddings.parquet",
    ):
        assert storage.exists(f"{root}/sweeps/c1/{name}"), name
    assert any(path.startswith("tune/") for path in storage.walk_files(f"{root}/sweeps/c1"))
    best = json.loads(run_cli("results", "best", "c1", "--json", cwd=tmp_path, env=env).stdout)
    assert best["test"]["pairs"] == 200


def test_losing_a_worker_node_loses_no_trial(cluster, user_env, tmp_path):
    env, root = user_env
    epochs = 250  # about 40 s a trial: trials start seconds apart, all three must be mid-way at once
    log_path = tmp_path / "driver.log"
    with open(log_path, "w") as log:
        driver = subprocess.Popen(
            [
                *SESSREC,
                "tune",
                "run",
                _spec(tmp_path / "spec.yaml", epochs, vector_size=48),
                "--address",
                cluster.gcs_address,
                "--sweep-id",
                "c2",
                "--json",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        deadline = time.time() + 240
        # Every node is busy once three trials run; when each of them has two checkpoints in S3
        # (so Tune has taken in the first) and none has finished, one node goes away.
        while not (" 3 running" in _latest_progress(log_path) and _trials_mid_way(root, "c2", epochs) >= 3):
            assert driver.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        cluster.kill_worker(0)
        out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, log_path.read_text()[-3000:]
    manifest = json.loads(out)
    assert manifest["trials"] == {"total": 4, "completed": 4, "stopped_early": 0, "errored": 0}
    trials = pd.read_parquet(f"{root}/sweeps/c2/trials.parquet".replace("s3://", ""), filesystem=_fs())
    assert len(trials) == 4 and trials["trial_id"].is_unique and (trials["epochs_run"] == epochs).all()
    # The trial that lost its node went on from a checkpoint instead of starting over.
    assert trials["restored"].any(), (trials[["trial_id", "restored"]], log_path.read_text()[-3000:])
    assert all(len(curve) == epochs for curve in trials["curve"])


def _latest_progress(log_path) -> str:
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("trials ")]
    return lines[-1] if lines else ""


def _trials_mid_way(root: str, sweep_id: str, epochs: int) -> int:
    """Trials with at least two checkpoints stored and not the last one (checkpoint i is epoch i + 1)."""
    newest: dict[str, int] = {}
    for path in storage.walk_files(f"{root}/sweeps/{sweep_id}/tune"):
        trial, found, rest = path.partition("/checkpoint_")
        if found:
            newest[trial] = max(newest.get(trial, -1), int(rest[:6]))
    return sum(1 <= index < epochs - 1 for index in newest.values())


def _fs():
    from pyarrow import fs

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    return fs.S3FileSystem(
        endpoint_override=endpoint.split("://")[1],
        scheme="http",
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ["AWS_DEFAULT_REGION"],
    )


@pytest.fixture
def lost_cluster():
    """A cluster of its own for a test that stops it (and starts a new one)."""
    with RayLocalCluster(num_workers=1, head_cpus=1, worker_cpus=1) as running:
        yield running


@pytest.mark.parametrize("address", ["gcs", "auto"])
def test_losing_the_whole_cluster_stops_the_driver_and_resume_finishes_on_a_new_one(lost_cluster, tmp_path, address):
    address = lost_cluster.gcs_address if address == "gcs" else address  # auto: found through RAY_ADDRESS
    # Storage outlives the cluster: a folder on this machine that the driver and every node share.
    store = tmp_path / "store"
    env = {**os.environ, **lost_cluster.client_env(), "SESSREC_STORAGE": str(store), "SESSREC_CLUSTER_PATIENCE": "3"}
    synth_dataset(tmp_path, env, sessions=4000, items=400, clusters=15)
    spec = _spec(tmp_path / "spec.yaml", 25, vector_size=32)
    log_path = tmp_path / "driver.log"
    with open(log_path, "w") as log:
        driver = subprocess.Popen(
            [*SESSREC, "tune", "run", spec, "--address", address, "--sweep-id", "h1", "--json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        deadline = time.time() + 120
        while not list((store / "sweeps" / "h1" / "tune").glob("run-1/*/checkpoint_000002")):
            assert driver.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        lost_cluster.stop(kill=True)  # every node at once, as when the cluster's machines go
        out, _ = driver.communicate(timeout=60)  # not Ray's minute of reconnecting, and no hang
    text = log_path.read_text()
    assert driver.returncode == 1 and out == "", text[-3000:]
    assert "Traceback" not in text and "GCS" not in text, text[-3000:]  # nor Ray's own log of it
    assert text.strip().splitlines()[-1].startswith("error: ")
    assert [line for line in text.splitlines() if line.startswith("error")] == [
        f"error: sweep h1 stopped: lost the Ray cluster at {address} (unreachable for 3 s); "
        "once a cluster is up, continue it with: sessrec tune resume h1 --address ADDRESS"
    ], text[-3000:]
    assert not (store / "sweeps" / "h1" / "trials.parquet").exists()

    lost_cluster.start()  # a new cluster (same address and token), nothing of the old one in it
    resumed = run_cli("tune", "resume", "h1", "--address", address, "--json", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads(resumed.stdout)
    assert manifest["status"] == "completed" and "resumed" in manifest
    assert manifest["trials"] == {"total": 4, "completed": 4, "stopped_early": 0, "errored": 0}
    trials = pd.read_parquet(store / "sweeps" / "h1" / "trials.parquet")
    assert len(trials) == 4 and trials["trial_id"].is_unique and (trials["epochs_run"] == 25).all()
    assert sorted(zip(trials["config.window"], trials["config.negative"])) == [(2, 5), (2, 10), (5, 5), (5, 10)]
    assert all(len(curve) == 25 for curve in trials["curve"])
    best = run_cli("results", "best", "h1", "--json", cwd=tmp_path, env=env)
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["trial_id"] == manifest["best"]["trial_id"]
