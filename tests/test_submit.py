"""`sessrec submit tune` and `sessrec jobs` against a real token-auth Ray cluster and a real
signing S3 server (SeaweedFS), both on 127.0.0.1; the CLI runs in subprocesses as a user runs it.

The module's cluster has its own S3 credentials in its nodes' environment (as a real cluster
would); one test starts a second cluster without credentials to show --forward-s3-env.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from servers import AWS_CONFLICTING_VARS, MlflowServer, RayLocalCluster, SeaweedS3

from tests.helpers import TWO_TRIAL_SWEEP, assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

# Half the grid learns (alpha 0.05), half barely moves: ASHA stops some trials early.
TINY = {
    "name": "t",
    "dataset": "demo",
    "split": {"seed": 0, "n": 150},
    "space": {"vector_size": 16, "window": [2, 5], "negative": 5, "alpha": [0.05, 0.0002]},
    "scheduler": {"type": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 2},
    "resources": {"cpus_per_trial": 1, "max_failures": 1},
}
# Two trials of two epochs each, none stopped early: every trial logs every epoch.
TRACKED = {**TWO_TRIAL_SWEEP, "name": "tracked-on-cluster", "split": {"seed": 0, "n": 150}}
# Long enough to be stopped half-way (each trial alone would run for minutes).
LONG = {
    "name": "long",
    "dataset": "big",
    "split": {"seed": 0, "n": 150},
    "space": {"vector_size": 16, "window": [2, 3, 4, 5]},
    "scheduler": {"type": "fifo", "max_t": 300},
    "resources": {"cpus_per_trial": 1, "max_failures": 1},
}


@pytest.fixture(scope="module")
def cluster(s3: SeaweedS3):
    """Head + 1 worker, token auth, S3 variables in the nodes' own environment."""
    with RayLocalCluster(num_workers=1, env=s3.env()) as ray_cluster:
        yield ray_cluster


@pytest.fixture(scope="module")
def local_data(tmp_path_factory) -> Path:
    """Sessions made on the 'laptop', in local storage: demo (small) and big."""
    folder = tmp_path_factory.mktemp("laptop")
    env = {**_base_env(folder), "SESSREC_STORAGE": str(folder / "store")}
    for name, sessions, items in (("demo", "800", "200"), ("big", "6000", "600")):
        result = run_cli(
            "data",
            "synth",
            "--name",
            name,
            "--sessions",
            sessions,
            "--items",
            items,
            "--clusters",
            "10",
            cwd=folder,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    return folder / "store" / "datasets"


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "SESSREC_"))}
    env.update(HOME=str(home), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


class User:
    """A user's shell: S3 variables, an S3 storage root of its own, the cluster's address and
    token; every CLI call is recorded so a test can check that no secret was ever printed."""

    def __init__(self, folder: Path, s3: SeaweedS3, cluster: RayLocalCluster):
        self.folder, self.s3, self.cluster = folder, s3, cluster
        self.prefix = f"submit-{uuid.uuid4().hex[:8]}"
        self.root = f"s3://{s3.bucket}/{self.prefix}"
        self.env = {
            **_base_env(folder),
            **s3.env(),
            "SESSREC_STORAGE": self.root,
            "RAY_ADDRESS": cluster.dashboard_url,
            "RAY_AUTH_TOKEN": cluster.token,
        }
        self.outputs: list[str] = []

    def __call__(self, *args: str, env: dict | None = None, timeout: float = 300):
        t0 = time.monotonic()
        result = run_cli(*args, cwd=self.folder, env={**self.env, **(env or {})}, timeout=timeout)
        print(f"{time.monotonic() - t0:6.1f}s  {' '.join(args)[:100]}")
        self.outputs.append(result.stdout + result.stderr)
        return result

    def spec(self, name: str, spec: dict) -> str:
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return str(path)

    def keys(self, under: str) -> list[str]:
        prefix = f"{self.prefix}/{under}/"
        pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.s3.bucket, Prefix=prefix)
        return [obj["Key"][len(prefix) :] for page in pages for obj in page.get("Contents", [])]

    def assert_no_secret(self, *extra: str) -> None:
        for text in [*self.outputs, *extra]:
            assert self.s3.secret_key not in text
            assert self.cluster.token not in text


@pytest.fixture
def user(tmp_path, s3, cluster) -> User:
    return User(tmp_path, s3, cluster)


def _job_texts(cluster: RayLocalCluster, job_id: str) -> list[str]:
    """What the Jobs API keeps of a job besides its runtime_env: metadata, entrypoint, logs."""
    client = cluster.job_client()
    info = client.get_job_info(job_id)
    return [json.dumps(info.metadata), info.entrypoint, client.get_job_logs(job_id)]


def test_submit_wait_then_results_from_s3_and_jobs_commands(user: User, local_data: Path, cluster: RayLocalCluster):
    spec = user.spec("tiny", TINY)
    sessions = str(local_data / "demo" / "sessions.parquet")
    jobs_before = len(cluster.job_client().list_jobs())
    started = time.monotonic()
    done = user("submit", "tune", spec, "--upload", sessions, "--sweep-id", "w1", "--wait", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 120
    out = json.loads(done.stdout)
    assert out["job_id"] == "sessrec-w1" and out["sweep_id"] == "w1" and out["status"] == "SUCCEEDED"
    assert out["uploaded"]["new"] is True and out["forwarded_env"] == []
    assert out["best"]["status"] == "completed" and out["best"]["config"]["alpha"] == 0.05
    assert "trials 4/4 done" in done.stderr  # the job's log, followed on stderr

    # Results come from storage, with the laptop's commands, unchanged.
    assert user.keys("datasets/demo") == ["manifest.json", "sessions.parquet"]
    best = user("results", "best", "w1", "--json")
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout) == out["best"]
    fetched = user("results", "fetch", "w1", "--to", str(user.folder / "got"))
    assert fetched.returncode == 0, fetched.stderr
    recs = user(
        "recommend", "I000001", "--embeddings", str(user.folder / "got" / "embeddings.txt"), "-k", "5", "--json"
    )
    assert recs.returncode == 0, recs.stderr
    assert len(json.loads(recs.stdout)["I000001"]) == 5

    # The jobs commands show it, by job id or by sweep id.
    listed = user("jobs", "list", "--json")
    rows = {row["job_id"]: row for row in json.loads(listed.stdout)}
    assert rows["sessrec-w1"]["status"] == "SUCCEEDED" and rows["sessrec-w1"]["sweep_id"] == "w1"
    assert rows["sessrec-w1"]["started"] and rows["sessrec-w1"]["storage"] == user.root
    status = user("jobs", "status", "w1", "--json")  # a sweep id: its job is sessrec-w1
    assert json.loads(status.stdout)["job_id"] == "sessrec-w1", status.stderr
    assert json.loads(status.stdout)["status"] == "SUCCEEDED"
    logs = user("jobs", "logs", "w1")
    assert logs.returncode == 0 and "trials 4/4 done" in logs.stdout
    assert "--address auto --sweep-id w1" in logs.stdout  # the laptop's `tune run`, on the cluster
    human = user("jobs", "list")
    assert "sessrec-w1" in human.stdout and "SUCCEEDED" in human.stdout

    # Same sweep id again, or other sessions under the dataset's name: refused, nothing submitted.
    assert_one_line_error(user("submit", "tune", spec, "--upload", sessions, "--sweep-id", "w1"), "already exists")
    other = user.folder / "other.jsonl"
    other.write_text('["A", "B", "C"]\n["B", "C", "D"]\n')
    clash = user("submit", "tune", spec, "--upload", str(other), "--sweep-id", "w2")
    assert_one_line_error(clash, "dataset 'demo'", "holds other sessions")
    assert not user.keys("sweeps/w2") and len(cluster.job_client().list_jobs()) == jobs_before + 1

    metadata = cluster.job_client().get_job_info("sessrec-w1").metadata
    assert metadata == {"sessrec": "1", "sweep_id": "w1", "spec": "t", "storage": user.root}
    user.assert_no_secret(*_job_texts(cluster, "sessrec-w1"))


def test_refusals_are_one_clear_line(user: User, tmp_path: Path, local_data: Path):
    spec = user.spec("tiny", TINY)
    wide = user.spec("wide", {**TINY, "split": {"seed": 0, "n": 500}})  # 1,000 pairs from 800 sessions
    token_file = tmp_path / "token"
    token_file.write_text(user.cluster.token + "\n")
    no_token = {"RAY_AUTH_TOKEN": ""}
    cases = [  # (arguments, environment changes, fragments of the one error line)
        (["jobs", "list"], {"RAY_AUTH_TOKEN": "not-the-token"}, ["Ray refused the request", "RAY_AUTH_TOKEN"]),
        (["jobs", "list"], no_token, ["missing or wrong auth token"]),
        (
            ["jobs", "list"],
            {**no_token, "RAY_AUTH_MODE": "token"},
            ["missing or wrong auth token"],
        ),  # Ray's own client: no token either
        (["jobs", "list", "--address", "http://127.0.0.1:9"], {}, ["cannot reach the Ray Jobs API"]),
        (["jobs", "list"], {"RAY_ADDRESS": "127.0.0.1:6379"}, ["dashboard's HTTP address"]),
        (["jobs", "status", "no-such-job"], {}, ["no job 'no-such-job'"]),
        (["jobs", "stop", "raysubmit_none"], {}, ["no job 'raysubmit_none'"]),
        (
            ["submit", "tune", spec],
            {"SESSREC_STORAGE": str(tmp_path / "store")},
            ["cannot read the local storage", "s3://"],
        ),
        (["submit", "tune", spec, "--sweep-id", "r2"], {}, ["no dataset 'demo'", "--upload"]),
        (["submit", "tune", spec, "--dataset", "sessions.parquet"], {}, ["cannot read the local file", "--upload"]),
        (
            ["submit", "tune", spec, "--dataset", "sessions.v2"],
            {},
            ["cannot read the local file", "--upload"],
        ),  # what 'tune run' reads as a file
        (["submit", "tune", spec, "--dataset", f"{user.root}/none.parquet"], {}, ["no sessions file"]),
        (["results", "best", "never-ran"], {}, ["no sweep 'never-ran'"]),
        (
            [
                "submit",
                "tune",
                wide,
                "--dataset",
                "small",
                "--upload",
                str(local_data / "demo" / "sessions.parquet"),
                "--sweep-id",
                "r3",
            ],
            {},
            ["too few sessions for the split: 800 sessions, need at least 2 x N = 1000"],
        ),
    ]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda case: user(*case[0], env=case[1]), cases))
    for (_args, _env, fragments), result in zip(cases, results):
        assert_one_line_error(result, *fragments)
    by_file = user("jobs", "list", "--json", env={**no_token, "RAY_AUTH_TOKEN_PATH": str(token_file)})
    assert by_file.returncode == 0, by_file.stderr
    assert not user.keys("sweeps/r2") and not user.keys("sweeps/r3")
    user.assert_no_secret()


def test_unreachable_address_fails_fast(monkeypatch):
    """No retry loops: Ray's client would swap the address for RAY_ADDRESS and then ask a GCS
    there for the dashboard 20 times; a dead address must fail within seconds."""
    from sessrec.errors import SessrecError
    from sessrec.jobs_client import JobsClient

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(SessrecError, match="cannot reach the Ray Jobs API at http://127.0.0.1:9"):
        JobsClient("http://127.0.0.1:9", token="t")
    assert time.monotonic() - started < 5
    assert os.environ["RAY_ADDRESS"] == "127.0.0.1:9"


def test_a_server_that_answers_other_json_is_named(monkeypatch):
    """A proxy or another service on the dashboard's address: its JSON is not the Jobs API's."""
    import http.server

    import ray

    from sessrec.errors import SessrecError
    from sessrec.jobs_client import JobsClient

    class NotRay(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {"ray_version": ray.__version__, "version": "4"} if self.path == "/api/version" else [{"bogus": 1}]
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    with (
        _serving(NotRay) as address,
        pytest.raises(SessrecError, match="answered with something other than the Jobs API's JSON"),
    ):
        JobsClient(address).list()


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            403,
            "Forbidden by the ingress",
            "answered HTTP 403 (Forbidden by the ingress): not Ray's token check; is a proxy",
        ),
        (401, "", "answered HTTP 401 (no reason given)"),
        (401, "Unauthorized: Missing authentication token", "missing or wrong auth token (set RAY_AUTH_TOKEN)"),
        (403, "Forbidden: Invalid authentication token", "missing or wrong auth token (set RAY_AUTH_TOKEN)"),
    ],
)
def test_a_refusal_that_is_not_ray_s_token_check_says_what_refused(status: int, body: str, message: str):
    import http.server

    from sessrec.errors import SessrecError
    from sessrec.jobs_client import JobsClient

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    with _serving(Refusing) as address, pytest.raises(SessrecError) as refused:
        JobsClient(address, token="t").list()
    assert message in str(refused.value) and "\n" not in str(refused.value)


@contextlib.contextmanager
def _serving(handler: type) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 for the block; its address."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_stop_keeps_partial_results_in_storage(user: User, local_data: Path, cluster: RayLocalCluster):
    spec = user.spec("long", LONG)
    submitted = user(
        "submit", "tune", spec, "--upload", str(local_data / "big" / "sessions.parquet"), "--sweep-id", "s1"
    )
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted job sessrec-s1 (sweep s1)" in submitted.stdout
    deadline = time.monotonic() + 90
    while not any("/checkpoint_" in key for key in user.keys("sweeps/s1/tune")):  # trials report epochs
        assert time.monotonic() < deadline, user("jobs", "logs", "s1").stdout[-2000:]
        time.sleep(1)
    running = json.loads(user("jobs", "status", "sessrec-s1", "--json").stdout)
    assert running["status"] == "RUNNING"
    assert_one_line_error(user("results", "best", "s1"), "no best result yet", "running")

    stopped = user("jobs", "stop", "s1")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped job sessrec-s1 (STOPPED)" in stopped.stdout and "sessrec results show s1" in stopped.stdout
    assert json.loads(user("jobs", "status", "s1", "--json").stdout)["status"] == "STOPPED"
    shown = user("results", "show", "s1", "--json")
    assert shown.returncode == 0, shown.stderr
    manifest = json.loads(shown.stdout)["manifest"]
    assert manifest["status"] == "interrupted"  # the driver had time to stop Tune gracefully
    assert "sweep s1 interrupted; continue it with: sessrec tune resume s1" in user("jobs", "logs", "s1").stdout
    assert_one_line_error(user("results", "best", "s1"), "no best result yet", "interrupted")
    # What a resume reads: each checkpoint's weights and its trial record.
    stored = user.keys("sweeps/s1/tune")
    assert any(key.startswith("run-1/point-") and key.endswith("/state.npz") for key in stored)
    assert any(key.startswith("run-1/point-") and key.endswith("/trial.json") for key in stored)
    again = user("jobs", "stop", "s1", "--json")
    assert json.loads(again.stdout)["was_running"] is False
    user.assert_no_secret(*_job_texts(cluster, "sessrec-s1"))


def test_stopping_a_job_says_whether_its_sweep_had_begun(user: User, local_data: Path):
    spec = user.spec("tiny", TINY)
    submitted = user(
        "submit", "tune", spec, "--upload", str(local_data / "demo" / "sessions.parquet"), "--sweep-id", "s4"
    )
    assert submitted.returncode == 0, submitted.stderr
    stopped = user("jobs", "stop", "s4", "--json")  # at once: the driver may not have claimed its sweep yet
    assert stopped.returncode == 0, stopped.stderr
    report = json.loads(stopped.stdout)
    assert report["was_running"] and report["sweep_stored"] == ("spec.yaml" in user.keys("sweeps/s4"))


def test_a_stopped_sweep_goes_on_on_the_cluster_with_submit_resume(
    user: User, local_data: Path, cluster: RayLocalCluster
):
    """The laptop need not reach the cluster's GCS: `submit resume` runs `tune resume` as a job."""
    spec = user.spec(
        "medium",
        {
            **LONG,
            "name": "medium",
            "scheduler": {"type": "fifo", "max_t": 25},
            "space": {"vector_size": 16, "window": [2, 3]},
        },
    )
    submitted = user(
        "submit", "tune", spec, "--upload", str(local_data / "big" / "sessions.parquet"), "--sweep-id", "s2"
    )
    assert submitted.returncode == 0, submitted.stderr
    deadline = time.monotonic() + 90
    while not any("/checkpoint_" in key for key in user.keys("sweeps/s2/tune")):
        assert time.monotonic() < deadline, user("jobs", "logs", "s2").stdout[-2000:]
        time.sleep(0.5)
    stopped = user("jobs", "stop", "s2")
    assert stopped.returncode == 0 and "continue it: sessrec submit resume s2" in stopped.stdout, (
        stopped.stdout + stopped.stderr
    )

    resumed = user("submit", "resume", "s2")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("submitted job sessrec-s2-run-2 (sweep s2, run 2)"), resumed.stdout
    assert_one_line_error(user("submit", "resume", "s2"), "job sessrec-s2-run-2 still runs sweep 's2'")
    followed = user("jobs", "logs", "s2", "--follow")  # the sweep's newest job
    assert followed.returncode == 0 and "tune resume s2 --address auto" in followed.stdout, (
        followed.stdout[-2000:] + followed.stderr
    )
    assert json.loads(user("jobs", "status", "s2", "--json").stdout)["job_id"] == "sessrec-s2-run-2"
    best = user("results", "best", "s2", "--json")
    assert best.returncode == 0, best.stderr
    shown = json.loads(user("results", "show", "s2", "--json").stdout)["manifest"]
    assert (shown["status"], shown["runs"], shown["trials"]["total"]) == ("completed", 2, 2)
    assert_one_line_error(user("submit", "resume", "s2"), "has already completed")
    user.assert_no_secret(*_job_texts(cluster, "sessrec-s2-run-2"))


def test_forward_s3_env_to_a_cluster_without_credentials(tmp_path, s3: SeaweedS3, local_data: Path, monkeypatch):
    """The cluster knows the S3 endpoint but has no keys: the job fails without
    --forward-s3-env (a failed job: its reason in one line after its log) and succeeds with it
    (and with --ship-code); the keys never show in the job's metadata, entrypoint or log, nor
    in any output."""
    for var in [*AWS_CONFLICTING_VARS, *(k for k in os.environ if k.startswith("AWS_"))]:
        monkeypatch.delenv(var, raising=False)
    no_keys = {k: v for k, v in s3.env().items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    with RayLocalCluster(num_workers=0, head_cpus=2, env=no_keys) as bare:
        user = User(tmp_path, s3, bare)
        spec = user.spec("tiny", dict(TINY, space=dict(TINY["space"], window=2)))
        sessions = str(local_data / "demo" / "sessions.parquet")
        failed = user("submit", "tune", spec, "--upload", sessions, "--sweep-id", "n1", "--wait")
        assert failed.returncode == 1, failed.stderr[-3000:]
        lines = failed.stderr.strip().splitlines()  # the job's log was followed on stderr
        assert lines[-1].startswith("error: job sessrec-n1 failed (Job entrypoint command failed with exit code 1): ")
        assert "no S3 credentials" in lines[-1] and "Traceback" not in failed.stderr
        assert any("Running entrypoint for job sessrec-n1" in line for line in lines[-20:-1])
        status = json.loads(user("jobs", "status", "n1", "--json").stdout)
        assert status["status"] == "FAILED" and status["message"] == "Job entrypoint command failed with exit code 1"
        follow = user("jobs", "logs", "n1", "--follow")
        assert follow.returncode == 1 and "no S3 credentials" in follow.stdout
        assert_one_line_error(follow, "job sessrec-n1 failed")

        done = user("submit", "tune", spec, "--sweep-id", "n2", "--forward-s3-env", "--ship-code", "--wait", "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        warning = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
        assert len(warning) == 1 and "AWS_SECRET_ACCESS_KEY" in warning[0] and "dashboard" in warning[0]
        out = json.loads(done.stdout)
        assert out["best"]["status"] == "completed" and "AWS_SECRET_ACCESS_KEY" in out["forwarded_env"]
        info = bare.job_client().get_job_info("sessrec-n2")
        assert info.runtime_env["env_vars"]["AWS_SECRET_ACCESS_KEY"] == s3.secret_key  # where it was asked to go
        assert info.runtime_env["py_modules"]  # the local package, uploaded
        user("jobs", "list", "--json")
        user("jobs", "status", "n2", "--json")
        user.assert_no_secret(*_job_texts(bare, "sessrec-n2"), *_job_texts(bare, "sessrec-n1"))


@pytest.fixture(scope="module")
def mlflow_server() -> Iterator[MlflowServer]:
    pytest.importorskip("mlflow")
    with MlflowServer() as server:
        yield server


def test_submit_with_mlflow_logs_the_sweep_from_the_cluster_job(
    user: User, local_data: Path, cluster: RayLocalCluster, mlflow_server: MlflowServer
):
    """Issue #23: `submit tune --mlflow URI` hands the tracker to the job; the job's driver, on the
    cluster, logs every trial and epoch and the best trial's test metrics."""
    spec = user.spec("tracked", TRACKED)
    sessions = str(local_data / "demo" / "sessions.parquet")
    started = time.monotonic()
    done = user(
        "submit",
        "tune",
        spec,
        "--upload",
        sessions,
        "--sweep-id",
        "m1",
        "--mlflow",
        mlflow_server.uri,
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 90
    assert "warning: MLflow" not in done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "SUCCEEDED" and out["best"]["status"] == "completed"
    assert f"--mlflow {mlflow_server.uri}" in cluster.job_client().get_job_info("sessrec-m1").entrypoint

    client = mlflow_server.client()
    experiment = client.get_experiment_by_name("tracked-on-cluster")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`sessrec.sweep_id` = 'm1'")
    assert sorted(int(run.data.tags["sessrec.point"]) for run in runs) == [0, 1]  # one run per trial
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["sessrec.state"] == "completed"
        assert run.data.params["vector_size"] == "8"
        for name in ("val_recall_at_k", "val_mrr_at_k"):
            history = client.get_metric_history(run.info.run_id, name)
            assert sorted(m.step for m in history) == [1, 2]  # step = epoch
            assert all(0.0 <= m.value <= 1.0 for m in history)
    best = [run for run in runs if run.data.tags.get("sessrec.best") == "true"]
    assert len(best) == 1 and best[0].data.tags["sessrec.trial_id"] == out["best"]["trial_id"]
    assert best[0].data.metrics["test_recall_at_k"] == pytest.approx(out["best"]["test"]["recall_at_k"])
    user.assert_no_secret(*_job_texts(cluster, "sessrec-m1"))
