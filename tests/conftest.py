"""Shared pytest fixtures: real servers (see tests/servers.py) and Ray isolation.

Tests that use `s3`, `s3_env` or `ray_cluster` start real processes and must be
marked `@pytest.mark.slow` (marker declared in pyproject.toml), so that
`pytest -m "not slow"` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import cli_in_process
from servers import AWS_CONFLICTING_VARS, RayLocalCluster, SeaweedS3


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    """The `sessrec` command run in-process in an empty folder, with its own storage and no settings file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSREC_STORAGE", str(tmp_path / "store"))
    monkeypatch.setenv("SESSREC_CONFIG", str(tmp_path / "no-settings.yaml"))
    return lambda *args: cli_in_process(capsys, *args)


@pytest.fixture(scope="session", autouse=True)
def _isolated_ray_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep in-process Ray from leaking state between tests.

    Ray 2.60's local `ray.init()` turns token auth on when RAY_AUTH_MODE is unset
    (it sets os.environ["RAY_AUTH_MODE"]="token" and writes ~/.ray/auth_token);
    afterwards every later `ray start` / JobSubmissionClient of other tests would need
    that token. An explicit RAY_AUTH_MODE=disabled is respected; tests that want auth
    override it with monkeypatch. HOME points to a temp dir so ~/.ray (token,
    usage-stats config) and ~/ray_results of the developer are never touched.
    """
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("home")
    mp.setenv("HOME", str(home))
    mp.setenv("RAY_AUTH_MODE", "disabled")
    mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
    for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        mp.delenv(var, raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def s3() -> Iterator[SeaweedS3]:
    """A real signing S3 server (SeaweedFS) with bucket `s3.bucket` ("sessrec-test")."""
    with SeaweedS3() as server:
        yield server


@pytest.fixture
def s3_env(s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """Puts s3.env() (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION, AWS_REGION, AWS_EC2_METADATA_DISABLED) into os.environ and
    removes variables that would override them (AWS_PROFILE, AWS_SESSION_TOKEN, ...)."""
    for var in AWS_CONFLICTING_VARS:
        monkeypatch.delenv(var, raising=False)
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    if not s3.running:  # a fault test in the same session may have stopped it
        s3.start()
    return s3


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayLocalCluster]:
    """Real Ray cluster: head (1 CPU) + 1 worker node (1 CPU), token auth on.

    Drivers: run subprocesses with env={**os.environ, **ray_cluster.client_env()};
    Jobs API: ray_cluster.job_client() (sends the bearer token).
    """
    with RayLocalCluster(num_workers=1) as cluster:
        yield cluster
