"""Checks of the real-server test infrastructure (tests/servers.py, fixtures in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
from servers import RayLocalCluster, SeaweedS3, _is_free, _proc_session

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------
# S3 (SeaweedFS)
# ---------------------------------------------------------------------------


def test_boto3_round_trip_with_env_vars_only(s3_env: SeaweedS3) -> None:
    import boto3

    client = boto3.client("s3")  # endpoint, keys and region come from os.environ only
    key = f"roundtrip/{uuid.uuid4().hex}.txt"
    client.put_object(Bucket=s3_env.bucket, Key=key, Body=b"hello sessrec")
    assert client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read() == b"hello sessrec"
    listed = client.list_objects_v2(Bucket=s3_env.bucket, Prefix="roundtrip/")
    assert key in [o["Key"] for o in listed.get("Contents", [])]
    assert s3_env.bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_wrong_secret_key_is_refused(s3_env: SeaweedS3) -> None:
    import boto3
    from botocore.exceptions import ClientError

    bad = boto3.client("s3", aws_access_key_id=s3_env.access_key, aws_secret_access_key="not-" + s3_env.secret_key)
    with pytest.raises(ClientError) as err:
        bad.put_object(Bucket=s3_env.bucket, Key="forbidden.txt", Body=b"x")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied")
    # An unsigned (anonymous) request is refused too.
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(f"{s3_env.endpoint}/{s3_env.bucket}/forbidden.txt", timeout=5)
    assert http_err.value.code == 403


def test_pyarrow_s3filesystem_write_read(s3_env: SeaweedS3) -> None:
    import pyarrow.fs

    fs = s3_env.pyarrow_fs()
    path = f"{s3_env.bucket}/pyarrow/{uuid.uuid4().hex}.bin"
    payload = os.urandom(6 * 1024 * 1024)  # > 5 MiB: multipart upload
    with fs.open_output_stream(path) as f:
        f.write(payload)
    with fs.open_input_stream(path) as f:
        assert f.read() == payload
    # The s3:// URI form resolves endpoint and keys from the AWS_* variables.
    fs_env, rel = pyarrow.fs.FileSystem.from_uri(f"s3://{path}")
    assert fs_env.get_file_info(rel).size == len(payload)


def test_stop_start_keeps_data_and_ports() -> None:
    # A second server next to the session one: proves free ports for everything.
    with SeaweedS3(bucket="faults") as server:
        client = server.client()
        client.put_object(Bucket="faults", Key="k", Body=b"persisted")
        server.stop()
        assert not server.running
        with pytest.raises(OSError):
            urllib.request.urlopen(server.endpoint, timeout=2)
        server.start()
        assert server.client().get_object(Bucket="faults", Key="k")["Body"].read() == b"persisted"
        root, ports = server.root, list(server.ports.values())
    assert not root.exists()
    assert all(_is_free(p) for p in ports)


# ---------------------------------------------------------------------------
# Ray cluster
# ---------------------------------------------------------------------------


def _driver(cluster: RayLocalCluster, code: str, timeout: float = 60) -> str:
    env = {**os.environ, **cluster.client_env()}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_jobs_api_runs_job_that_sees_both_nodes(ray_cluster: RayLocalCluster) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_cluster.dashboard_url, headers={"Authorization": f"Bearer {ray_cluster.token}"})
    job_id = client.submit_job(entrypoint='python -c "import ray; ray.init(); print(ray.cluster_resources())"')
    deadline = time.monotonic() + 60
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, f"job still {status}"
        time.sleep(0.5)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs
    assert "'CPU': 2.0" in logs, logs  # head (1 CPU) + worker (1 CPU)


def test_driver_with_client_env_sees_both_nodes(ray_cluster: RayLocalCluster) -> None:
    out = _driver(
        ray_cluster,
        "import json, ray; ray.init(); print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Alive']]))",
    )
    alive = json.loads(out.strip().splitlines()[-1])
    assert sorted(alive) == sorted([ray_cluster.head.node_id, ray_cluster.worker_node_id(0)])


def test_requests_without_token_are_refused(ray_cluster: RayLocalCluster) -> None:
    from ray.job_submission import JobSubmissionClient

    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        req = urllib.request.Request(f"{ray_cluster.dashboard_url}/api/jobs/", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code in (401, 403)
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # so the client adds no token itself
    with pytest.raises(Exception, match="(?i)auth|token|401|403"):
        JobSubmissionClient(ray_cluster.dashboard_url).list_jobs()
    # A driver without the token cannot join the cluster's GCS either.
    # (RAY_NUM_REDIS_GET_RETRIES: give up after ~2 s instead of Ray's ~20 s of retries.)
    env = {**os.environ, **ray_cluster.client_env(), "RAY_AUTH_MODE": "disabled", "RAY_NUM_REDIS_GET_RETRIES": "2"}
    env.pop("RAY_AUTH_TOKEN")
    out = subprocess.run(
        [sys.executable, "-c", "import ray; ray.init(); print(ray.nodes())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "AuthenticationError" in out.stderr, out.stderr[-2000:]


def test_kill_worker_marks_node_dead(ray_cluster: RayLocalCluster) -> None:
    worker = ray_cluster.workers[0]
    node_id = ray_cluster.worker_node_id(0)
    assert worker.proc.pids(), "worker node has no processes"
    t0 = time.monotonic()
    assert ray_cluster.kill_worker(0, wait_dead=False) == node_id
    assert worker.proc.pids() == []  # raylet and every child are gone, not just the raylet
    # A driver sees the node dead within a bounded time (GCS health checks every 1 s).
    out = _driver(
        ray_cluster,
        "import time, ray; ray.init()\n"
        "deadline = time.monotonic() + 30\n"
        f"while any(n['NodeID'] == '{node_id}' and n['Alive'] for n in ray.nodes()):\n"
        "    assert time.monotonic() < deadline, 'node still alive'\n"
        "    time.sleep(0.25)\n"
        "print('DEAD')",
    )
    assert "DEAD" in out
    assert time.monotonic() - t0 < 40
    assert ray_cluster.node_states()[node_id] == "DEAD"


def test_add_worker_then_stop_leaves_nothing(ray_cluster: RayLocalCluster) -> None:
    i = ray_cluster.add_worker()
    assert ray_cluster.node_states()[ray_cluster.worker_node_id(i)] == "ALIVE"
    pids = ray_cluster.pids()
    assert pids
    ports = [ray_cluster.gcs_port, ray_cluster.dashboard_port]
    ray_cluster.stop()  # the fixture's close() afterwards is a no-op stop + rmtree
    alive = [p for p in pids if (info := _proc_session(p)) is not None and info[1] != "Z"]
    assert alive == []
    assert all(_is_free(p) for p in ports)


def test_auth_disabled_client_env() -> None:
    cluster = RayLocalCluster(auth=False)
    try:
        env = cluster.client_env()
        assert env["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in env
        assert cluster.token is None and cluster.auth_headers() == {}
        assert len(str(cluster.root)) < 30  # room for Ray's Unix socket paths
    finally:
        cluster.close()
