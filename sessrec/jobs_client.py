"""The Ray Jobs API edge: submit a sweep to a remote Ray cluster, follow it, list, stop.

The only module of sessrec that talks to the Jobs API (the Ray dashboard's HTTP server). A
submitted sweep runs the same code path as on a laptop, ``sessrec tune run`` (or ``tune
resume``), as the job's entrypoint; its spec travels as ``spec.yaml`` in the job's
``working_dir`` and its results land in the (S3) storage root, where ``sessrec results`` reads
them back.

Credentials: the cluster reads S3 credentials from its own environment. Nothing secret goes
into the entrypoint, the job metadata or a message; only ``forward_env`` (``--forward-s3-env``)
puts the caller's AWS_* variables into the job's ``runtime_env``, which the dashboard shows.
The Ray token travels as an ``Authorization: Bearer`` header only.

Over 400 lines: the one place sessrec speaks the Jobs API (submit, follow, list, stop, the
agent wait and the token's errors); each call's refusals read best next to the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sessrec
from sessrec import formats, layout, storage
from sessrec.core.split import check_split_size
from sessrec.errors import NotFoundError, SessrecError
from sessrec.settings import seconds_setting
from sessrec.spec import SweepSpec
from sessrec.sweep.records import Status, SweepRecord, load_sweep, new_sweep_id

#: Submission ids of sweeps: ``sessrec-<sweep id>``; the metadata key that marks sessrec's jobs.
JOB_PREFIX = "sessrec-"
MARK = "sessrec"
#: (connect, read) seconds of one HTTP request to the dashboard: a dead address fails fast, never hangs.
REQUEST_TIMEOUT_S = (5.0, 60.0)
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
#: Seconds a stopped job's driver gets between SIGTERM (the trials stop, the manifest says
#: 'interrupted') and SIGKILL; Ray's default is 3.
STOP_GRACE_S = 30
AUTH_ERROR = "Ray refused the request: missing or wrong auth token (set RAY_AUTH_TOKEN)"
#: AWS_* variables that name local files or profiles: meaningless on a cluster, never forwarded.
LOCAL_ONLY_AWS_VARS = {
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CA_BUNDLE",
}
_ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
#: Seconds a submission waits for the cluster's job agent, which registers a few seconds after
#: `ray start` (the Jobs API meanwhile answers "HTTP 500: No available agent to submit job");
#: the environment variable overrides the default.
AGENT_WAIT_VAR, AGENT_WAIT_S = "SESSREC_JOB_AGENT_WAIT", 60.0
NO_AGENT = "No available agent to submit job"


def agent_wait_s() -> float:
    """How long a submission waits for the cluster's job agent (``SESSREC_JOB_AGENT_WAIT``)."""
    return seconds_setting(AGENT_WAIT_VAR, AGENT_WAIT_S, 0, 3600)


class JobNotFound(SessrecError):
    """No job of that id on the cluster."""


def job_id_for(sweep_id: str) -> str:
    """The submission id of a sweep's first job: ``sessrec-<sweep id>``."""
    return JOB_PREFIX + sweep_id


def check_address(address: str | None) -> str:
    """The dashboard's HTTP address, the only kind the Jobs API answers on."""
    if not address:
        raise SessrecError(
            "no Ray address: pass --address http://HOST:8265 or set RAY_ADDRESS (the Ray dashboard's address)"
        )
    address = address.strip().rstrip("/")
    if not address.startswith(("http://", "https://")):
        raise SessrecError(
            f"the Ray Jobs API needs the dashboard's HTTP address (http://HOST:8265), not {address!r}: "
            "pass --address or set RAY_ADDRESS"
        )
    return address


@contextlib.contextmanager
def _quiet_ray_client() -> Iterator[None]:
    """Ray's client would replace our address by RAY_ADDRESS (and then look a GCS address up,
    with 20 retries) and logs package uploads and token warnings: none of that here."""
    saved = {name: os.environ.pop(name) for name in _ADDRESS_VARS if name in os.environ}
    loggers = [
        "ray.dashboard.modules.dashboard_sdk",
        "ray.dashboard.modules.job.sdk",
        "ray._private.authentication.http_token_authentication",
        "ray._private.runtime_env.packaging",
    ]
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        os.environ.update(saved)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


class _HttpError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status, self.text = status, text


def _client_class() -> Any:
    from ray.job_submission import JobSubmissionClient

    class Client(JobSubmissionClient):
        """Every request with a timeout; HTTP errors keep their status code."""

        def _do_request(self: Any, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
            return super()._do_request(method, endpoint, **kwargs)

        def _raise_error(self: Any, r: Any) -> None:
            raise _HttpError(r.status_code, r.text)

    return Client


def _refusal(where: str, status: int, body: str) -> SessrecError:
    """Ray's token check names the token in its answer; anything else that refuses (a proxy or an
    ingress in front of the dashboard) is reported as what it said."""
    if "authentication token" in body:
        return SessrecError(AUTH_ERROR)
    return SessrecError(
        f"{where} answered HTTP {status} ({_first_line(body)[:200] or 'no reason given'}): "
        "not Ray's token check; is a proxy in front of the dashboard?"
    )


def _first_line(text: str | None) -> str:
    return (str(text or "").strip().splitlines() or [""])[0].strip()


def _status_message(job: Any) -> str:
    """Ray's message without the log tail it appends to failures (sessrec shows logs apart)."""
    return _first_line(job.message).split(", last available logs")[0].rstrip(":. ")


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Submitted:
    """A submitted job: its id, its sweep's id and the names of the variables forwarded to it."""

    job_id: str
    sweep_id: str
    forwarded_env: tuple[str, ...]


class JobsClient:
    """A Jobs API client that fails fast and turns every failure into one SessrecError line."""

    def __init__(self, address: str | None, token: str | None = None):
        self.address = check_address(address)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._client = self._call(lambda: _client_class()(self.address, headers=headers))

    # -- errors ----------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any], job_id: str | None = None) -> Any:
        import requests
        from ray.exceptions import AuthenticationError

        where = f"the Ray Jobs API at {self.address}"
        try:
            with _quiet_ray_client():
                return fn()
        except AuthenticationError as exc:
            # Ray's client raises this for any 401/403, quoting the answer's body ("Authentication
            # required|failed: BODY\n\nadvice"), and for a token it cannot find itself.
            kind, _, rest = exc.message.partition(": ")
            if kind not in ("Authentication required", "Authentication failed"):
                raise SessrecError(AUTH_ERROR) from None
            raise _refusal(where, 401 if kind.endswith("required") else 403, rest.split("\n\n")[0]) from None
        except _HttpError as exc:
            if exc.status in (401, 403):
                raise _refusal(where, exc.status, exc.text) from None
            if exc.status == 404 and job_id is not None:
                raise JobNotFound(f"no job {job_id!r} on the Ray cluster at {self.address}") from None
            raise SessrecError(f"{where} answered HTTP {exc.status}: {_first_line(exc.text)[:300]}") from None
        except (ConnectionError, requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            raise SessrecError(
                f"cannot reach {where}: is the cluster up and is this its dashboard address (http://HOST:8265)?"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SessrecError(f"request to {where} failed: {type(exc).__name__}") from None
        except (ValueError, TypeError, KeyError) as exc:  # JSON that is not the Jobs API's (a proxy, another server)
            raise SessrecError(
                f"{where} answered with something other than the Jobs API's JSON ({type(exc).__name__}); "
                "is it a Ray dashboard?"
            ) from None
        except RuntimeError as exc:  # Ray's own checks, e.g. a server that is no Ray dashboard
            if "Version check returned 404" in str(exc):
                raise SessrecError(
                    f"{self.address} does not answer as a Ray dashboard (GET /api/version: 404): "
                    "the Jobs API needs the dashboard's address, http://HOST:8265"
                ) from None
            raise SessrecError(f"{where}: {_first_line(str(exc))[:300]}") from None

    # -- jobs ------------------------------------------------------------------------------

    def info(self, job_id: str) -> Any:
        """Ray's details of job ``job_id`` (status, message, metadata, times); an unknown id is a
        :class:`JobNotFound`."""
        return self._call(lambda: self._client.get_job_info(job_id), job_id)

    def resolve(self, ref: str) -> Any:
        """A job by its id, or the newest job of the sweep of that id (its first run, or a resume)."""
        try:
            return self.info(ref)
        except JobNotFound:
            pass
        runs = self.sweep_jobs(ref) if layout.NAME_PATTERN.match(ref) else []
        if runs:
            return runs[-1]
        raise JobNotFound(f"no job {ref!r} on the Ray cluster at {self.address} (give a job id or a sweep id)")

    def sweep_jobs(self, sweep_id: str) -> list:
        """The jobs that ran or run a sweep, oldest first."""
        jobs = self._call(self._client.list_jobs)
        mine = [
            job
            for job in jobs
            if (job.metadata or {}).get(MARK) == "1" and (job.metadata or {}).get("sweep_id") == sweep_id
        ]
        return sorted(mine, key=lambda job: job.start_time or 0)

    def exists(self, job_id: str) -> bool:
        """Whether the cluster has a job ``job_id``."""
        try:
            self.info(job_id)
            return True
        except JobNotFound:
            return False

    def list(self) -> list[dict[str, Any]]:
        """sessrec's jobs on the cluster (those its metadata marks), as :func:`describe` rows,
        newest first."""
        jobs = self._call(self._client.list_jobs)
        rows = [describe(job) for job in jobs if (job.metadata or {}).get(MARK) == "1"]
        return sorted(rows, key=lambda r: r["started"] or "", reverse=True)

    def logs(self, job_id: str) -> str:
        """The job's log so far, as one text; an unknown id is a :class:`JobNotFound`."""
        return self._call(lambda: self._client.get_job_logs(job_id), job_id)

    def stop(self, job_id: str) -> bool:
        """Ask Ray to stop the job; True if it was still running, else False. An unknown id is a
        :class:`JobNotFound`."""
        return bool(self._call(lambda: self._client.stop_job(job_id), job_id))

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 0.5) -> Any:
        """Poll until the job is in a terminal state; returns its details."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.info(job_id)
            if str(job.status) in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(interval)

    def follow(self, job_id: str, write: Callable[[str], None]) -> Any:
        """Write the job's log as it grows until the job ends; returns its final details.

        Streams over the Jobs API's websocket; if that breaks, goes on by polling the log."""
        written = 0

        def sink(chunk: str) -> None:
            nonlocal written
            write(chunk)
            written += len(chunk)

        try:
            self._tail(job_id, sink)
        except (SessrecError, KeyboardInterrupt):
            raise
        except Exception:  # the websocket broke (aiohttp, a proxy, a head restart): polling goes on below
            pass  # from what was written; a failing `write` fails there again, as itself
        while True:
            job = self.info(job_id)
            text = self.logs(job_id)
            if len(text) > written:
                sink(text[written:])
            if str(job.status) in TERMINAL:
                return job
            time.sleep(1.0)

    def _tail(self, job_id: str, sink: Callable[[str], None]) -> None:
        self.info(job_id)  # an unknown id or a refused token: one clear error, not a websocket one

        async def run() -> None:
            with _quiet_ray_client():
                async for chunk in self._client.tail_job_logs(job_id):
                    sink(chunk)

        asyncio.run(run())

    # -- submitting a sweep ----------------------------------------------------------------

    def submit_job(
        self,
        job_id: str,
        command: Sequence[str],  # not list[str]: the class's own `list` method shadows it here
        metadata: dict[str, str],
        files: dict[str, str],
        ship_code: bool = False,
        forward_env: dict[str, str] | None = None,
    ) -> Submitted:
        """Submit ``command`` (a ``sessrec`` command line) as job ``job_id``; ``files`` ride along
        in its working_dir."""
        with tempfile.TemporaryDirectory(prefix="sessrec-job-") as folder:
            for name, text in files.items():
                Path(folder, name).write_text(text, encoding="utf-8")
            # The job's supervisor reads RAY_JOB_STOP_WAIT_TIME_S from these variables too: time
            # for the sweep to stop and mark itself interrupted on `jobs stop` (SIGTERM) before Ray sends SIGKILL.
            env_vars = {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S), **(forward_env or {})}
            runtime_env: dict[str, Any] = {"working_dir": folder, "env_vars": env_vars}
            if ship_code:
                runtime_env["py_modules"] = [str(Path(sessrec.__file__).resolve().parent)]
            try:
                self._call(
                    lambda: self._when_agent_ready(
                        lambda: self._client.submit_job(
                            entrypoint=shlex.join(["python", "-m", "sessrec", *command]),
                            submission_id=job_id,
                            runtime_env=runtime_env,
                            metadata={MARK: "1", **metadata},
                        )
                    )
                )
            except SessrecError as exc:  # a server's message may quote the runtime_env back
                message = str(exc)
                for value in (forward_env or {}).values():
                    message = message.replace(value, "***") if len(value) >= 4 else message
                raise SessrecError(message) from None
        return Submitted(job_id, metadata["sweep_id"], tuple(sorted(forward_env or {})))

    def _when_agent_ready(self, submit: Callable[[], Any]) -> Any:
        """Submit, waiting (with one progress line, as `kubectl wait` does) while the cluster has no
        job agent yet: a cluster just started registers its agent a few seconds after the Jobs API
        answers. The agent missing after the wait is one error line."""
        wait_s = agent_wait_s()
        deadline: float | None = None
        while True:
            try:
                return submit()
            except _HttpError as exc:
                if exc.status != 500 or NO_AGENT not in exc.text:
                    raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait_s
                if wait_s > 0:
                    sys.stderr.write(
                        f"waiting up to {wait_s:.0f} s for the job agent of the Ray cluster at "
                        f"{self.address} (a cluster just started registers it within seconds)\n"
                    )
                    sys.stderr.flush()
            if now >= deadline:
                raise SessrecError(
                    f"the Ray cluster at {self.address} has no job agent to take the job after {wait_s:.0f} s: is its "
                    f"dashboard agent running (another cluster on its port 52365?); "
                    f"{AGENT_WAIT_VAR} sets how long to wait"
                )
            time.sleep(min(1.0, max(0.0, deadline - now)))


def describe(job: Any) -> dict[str, Any]:
    """What sessrec shows of a job: never its runtime_env (it may hold forwarded variables)."""
    metadata = job.metadata or {}
    return {
        "job_id": job.submission_id or job.job_id,
        "status": str(job.status),
        "sweep_id": metadata.get("sweep_id"),
        "spec": metadata.get("spec"),
        "storage": metadata.get("storage"),
        "started": _iso(job.start_time),
        "ended": _iso(job.end_time),
        "message": _status_message(job) or None,
    }


def failure_reason(job: Any, logs: str) -> str:
    """One line: the job's status message and sessrec's own error line from its log, if any."""
    message = _status_message(job)
    errors = [line.strip() for line in logs.splitlines() if line.strip().startswith("error: ")]
    reason = f"job {job.submission_id} {str(job.status).lower()}"
    if message:
        reason += f" ({message})"
    if errors:
        reason += f": {errors[-1].removeprefix('error: ')}"
    return reason


# ---------------------------------------------------------------------------------------------
# Storage-side checks around a submission


def require_s3_root(root: str) -> str:
    """``root`` without a trailing '/' if it is an s3:// URI; a local root, which a remote cluster
    cannot read, is a SessrecError."""
    if not storage.is_s3(root):
        raise SessrecError(
            f"a remote cluster cannot read the local storage {root!r}: set --storage or SESSREC_STORAGE to s3://bucket/prefix"
        )
    return root.rstrip("/")


def check_dataset(ref: str, root: str, split_n: int) -> None:
    """The dataset must be in storage the cluster can read (a name under the root or an s3://
    URI), and large enough for the spec's split (known from a named dataset's manifest)."""
    if storage.is_s3(ref):
        if not storage.exists(ref):
            raise NotFoundError(f"no sessions file {ref}")
        return
    if layout.is_file_ref(ref):
        raise SessrecError(f"the cluster cannot read the local file {ref!r}: upload it with --upload {ref}")
    uri = storage.join(layout.dataset_dir(root, ref), layout.MANIFEST_FILE)
    try:
        manifest = formats.from_json(storage.read_bytes(uri), uri)
    except NotFoundError:
        raise NotFoundError(f"no dataset {ref!r} in {root}: upload a sessions file with --upload FILE") from None
    if isinstance(manifest, dict) and isinstance(manifest.get("sessions"), int):
        check_split_size(manifest["sessions"], split_n)


def upload_dataset(local_file: str, name: str, root: str) -> dict[str, Any]:
    """Put a local sessions file (Parquet or JSONL) into storage as dataset ``name``; the same
    content already there is kept, different content under that name is refused."""
    from sessrec.pipeline import save_dataset, sessions_from_bytes

    if storage.is_s3(name) or "/" in name:
        raise SessrecError("--upload needs a dataset name (in the spec or --dataset), not a URI")
    layout.check_name(name, "dataset name")
    path = Path(local_file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SessrecError(f"cannot read {local_file}: {exc.strerror or exc}") from None
    sessions = sessions_from_bytes(data, str(path))
    manifest_uri = storage.join(layout.dataset_dir(root, name), layout.MANIFEST_FILE)
    if storage.exists(manifest_uri):
        existing = formats.from_json(storage.read_bytes(manifest_uri), f"dataset {name} manifest")
        if existing.get("sha256") == sessions.content_sha256():
            return {**existing, "uploaded": False}
        raise SessrecError(f"dataset {name!r} in {root} holds other sessions; upload under another name (--dataset)")
    manifest = save_dataset(sessions, name, root, {"uploaded_from": path.name}, overwrite=False)
    return {**manifest, "uploaded": True}


def check_sweep_free(root: str, sweep_id: str) -> None:
    """Raise a SessrecError if ``root`` already holds a sweep ``sweep_id`` (its spec.yaml)."""
    if storage.exists(storage.join(layout.sweep_dir(root, sweep_id), layout.SPEC_FILE)):
        raise SessrecError(f"sweep {sweep_id!r} already exists in {root}; choose another --sweep-id")


def settle_manifest(root: str, sweep_id: str, status: str, reason: str) -> bool:
    """After a job ended without finishing its sweep (``status``: the job's, lower-case), mark a
    manifest still saying 'running' (the driver was stopped or died before it could); ``tune
    resume`` still takes it up."""
    return SweepRecord.settle(root, sweep_id, Status(status), reason)


def forwardable_aws_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The non-empty AWS_* variables of ``environ`` (default: this process's) but the local-only
    ones (:data:`LOCAL_ONLY_AWS_VARS`); none is a SessrecError."""
    environ = dict(os.environ if environ is None else environ)
    found = {k: v for k, v in environ.items() if k.startswith("AWS_") and k not in LOCAL_ONLY_AWS_VARS and v}
    if not found:
        raise SessrecError("--forward-s3-env: no AWS_* variables are set to forward")
    return found


def submit_tune(
    client: JobsClient,
    spec: SweepSpec,
    root: str,
    sweep_id: str | None = None,
    dataset: str | None = None,
    upload: str | None = None,
    ship_code: bool = False,
    forward_env: dict[str, str] | None = None,
    mlflow: str | None = None,
) -> dict[str, Any]:
    """Check storage, upload the dataset if asked, submit the sweep; returns what was submitted.
    ``mlflow``: the job's driver logs the sweep to this MLflow tracker (``tune run --mlflow``)."""
    root = require_s3_root(root)
    sweep_id = layout.check_name(sweep_id or new_sweep_id(spec), "sweep id")
    dataset_ref = dataset or spec.dataset
    if not dataset_ref:
        raise SessrecError("no dataset: set 'dataset' in the spec or pass --dataset")
    check_sweep_free(root, sweep_id)
    if client.exists(job_id_for(sweep_id)):
        raise SessrecError(f"the Ray cluster already has a job {job_id_for(sweep_id)!r}; choose another --sweep-id")
    uploaded = upload_dataset(upload, dataset_ref, root) if upload else None
    check_dataset(dataset_ref, root, spec.split_n)
    # The laptop's `tune run`, joining the cluster it runs on; the spec rides in the working_dir.
    command = [
        "--storage",
        root,
        "tune",
        "run",
        layout.SPEC_FILE,
        "--address",
        "auto",
        "--sweep-id",
        sweep_id,
        "--dataset",
        dataset_ref,
    ]
    if mlflow:
        command += ["--mlflow", mlflow]
    metadata = {"sweep_id": sweep_id, "spec": spec.name, "storage": root}
    submitted = client.submit_job(
        job_id_for(sweep_id), command, metadata, {layout.SPEC_FILE: spec.to_yaml()}, ship_code, forward_env
    )
    return {
        "job_id": submitted.job_id,
        "sweep_id": sweep_id,
        "address": client.address,
        "storage": root,
        "dataset": dataset_ref,
        "uploaded": None
        if uploaded is None
        else {"name": dataset_ref, "sha256": uploaded["sha256"], "new": uploaded["uploaded"]},
        "forwarded_env": list(submitted.forwarded_env),
    }


def submit_resume(
    client: JobsClient,
    root: str,
    sweep_id: str,
    ship_code: bool = False,
    forward_env: dict[str, str] | None = None,
    mlflow: str | None = None,
) -> dict[str, Any]:
    """Submit ``sessrec tune resume`` of a stored sweep as a job (its next run), so that a sweep
    stopped on a cluster goes on there: the laptop need not reach the cluster's GCS. ``mlflow``:
    the job's driver goes on logging the sweep to this MLflow tracker (its trials' runs, found again)."""
    root = require_s3_root(root)
    layout.check_name(sweep_id, "sweep id")
    spec, record = load_sweep(root, sweep_id)
    manifest = record.manifest
    if manifest["status"] == Status.COMPLETED:
        raise SessrecError(f"sweep {sweep_id!r} has already completed")
    jobs = client.sweep_jobs(sweep_id)
    active = [job for job in jobs if str(job.status) not in TERMINAL]
    if active:
        job_id = active[-1].submission_id
        raise SessrecError(
            f"job {job_id} still runs sweep {sweep_id!r}: let it end, or 'sessrec jobs stop {job_id}' first"
        )
    run = int(manifest.get("runs", 1)) + 1
    job_id = f"{job_id_for(sweep_id)}-run-{run}"
    if any(job.submission_id == job_id for job in jobs):  # an earlier resume ended before it began its run
        job_id += f"-{len(jobs)}"
    command = ["--storage", root, "tune", "resume", sweep_id, "--address", "auto"]
    if mlflow:
        command += ["--mlflow", mlflow]
    metadata = {"sweep_id": sweep_id, "spec": spec.name, "storage": root, "run": str(run)}
    submitted = client.submit_job(job_id, command, metadata, {}, ship_code, forward_env)
    return {
        "job_id": submitted.job_id,
        "sweep_id": sweep_id,
        "address": client.address,
        "storage": root,
        "run": run,
        "forwarded_env": list(submitted.forwarded_env),
    }
