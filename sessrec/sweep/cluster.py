"""The Ray cluster a sweep's driver runs on: joining it (or starting an embedded one) and
leaving it, and riding out outages of it and of the storage while a run goes on (``Watch``).
The embedded Ray's start, and its retries, are ``sessrec.sweep.ray_start``'s.
Ray is imported inside the functions: importing this module imports no Ray.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import Any, Self

from sessrec import formats, storage
from sessrec.errors import SessrecError
from sessrec.settings import CLUSTER_PATIENCE_VAR, STORAGE_PATIENCE_VAR, patience
from sessrec.sweep.ray_start import private_ray_temp_dir, start_embedded
from sessrec.sweep.records import SweepPaths, SweepRecord

#: A trial waits longer than its driver, so that an outage stops the sweep as a whole (which
#: resume continues) before any trial errors because of it.
TRIAL_EXTRA_PATIENCE_S = 60.0


def storage_patience() -> float:
    """How long a sweep rides out unreachable storage (S3 down, a network cut) before it stops
    resumably, in seconds (``SESSREC_STORAGE_PATIENCE``, checked in ``sessrec.settings``)."""
    return patience(STORAGE_PATIENCE_VAR)


def connect(address: str | None, num_cpus: int | None, verbose: bool) -> None:
    """Join a Ray cluster (``address``: ``auto``, ``host:port``, ``ray://...``), or start an
    embedded local one."""
    import ray

    if ray.is_initialized():
        return
    quiet: dict[str, Any] = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.WARNING}
    # sessrec prints its own progress line; Ray's tables and snapshot warnings only with --verbose.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1" if verbose else "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "5" if verbose else "0")
    # A failed trial gets one line from the progress callback, its traceback with --verbose.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "1" if verbose else "0")
    if not verbose:
        # During a storage outage Ray logs a traceback for every failed state upload and
        # checkpoint deletion; the sweep handles the outage itself (see Watch).
        for name in (
            "ray.train._internal.storage",
            "ray.train._internal.syncer",
            "ray.tune.execution.experiment_state",
            "ray.tune.execution.tune_controller",  # "Error handling checkpoint" when a deletion fails
            # On an interrupt, a line for every trial still pending ("Could not fetch metrics"):
            # sessrec reads no trial's results through Tune's dataframes.
            "ray.tune.analysis.experiment_analysis",
            # On an interrupt, "Resume experiment with: Tuner.restore(...)": sessrec's resume is
            # its own (the CLI names it), and reads none of Tune's pickled state.
            "ray.tune.tune",
            # "The process_trial_save operation took 1.0 s": a checkpoint upload, timed by Tune.
            "ray.tune.utils.util",
            # "Token authentication is enabled for this Ray cluster": an embedded Ray's default.
            "ray._private.authentication.authentication_token_setup",
        ):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    endpoint = _gcs_endpoint(address)
    if endpoint:
        _probe(endpoint, address)
    # A driver refused (say, for a wrong token) retries for a long time by default.
    os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", "5")
    # Ray core installs a fatal-signal handler that kills the driver on SIGTERM; keep the
    # caller's handler (the CLI turns SIGTERM into Tune's graceful Ctrl-C stop).
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    _keep_credentials_out_of_runtime_envs()
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            start_embedded(num_cpus=num_cpus, include_dashboard=False, _temp_dir=private_ray_temp_dir(), **quiet)
    except ConnectionError as exc:
        raise SessrecError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
    if callable(sigterm_handler):
        signal.signal(signal.SIGTERM, sigterm_handler)


#: The credentials Ray Tune copies from the driver's environment into every trial's runtime_env.
TUNE_PROPAGATED_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")


def _keep_credentials_out_of_runtime_envs() -> None:
    """Stop Ray Tune from putting the driver's AWS credentials into its trials' runtime_env.

    Tune (2.60, ``ray.tune.execution.class_cache``, a private API) copies the variables named in
    its ``ENV_VARS_TO_PROPAGATE`` into the runtime_env of every trial actor, and Ray's runtime_env
    agent logs a runtime_env's env_vars in clear (logs/runtime_env_agent.log, readable by anyone
    who can read the Ray temp folder), even when the sweep's storage is local. sessrec needs none
    of it: an embedded Ray's workers inherit the driver's environment, and a cluster's nodes have
    credentials of their own. This is the one place that knows of it; a Ray without the set (its
    private layout changed) is left alone, and tests/test_faults.py then finds the key in its logs."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:
        return
    propagated = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    if isinstance(propagated, set):
        propagated.difference_update(TUNE_PROPAGATED_CREDENTIALS)


def _probe(endpoint: tuple[str, int], address: str | None) -> None:
    """Fail in seconds, with one line, where ray.init would retry for minutes: a GCS that does not
    answer, or a port that answers HTTP/1 (the dashboard's, most likely), where the GCS speaks gRPC."""
    try:
        with socket.create_connection(endpoint, timeout=5) as connection:
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                answer = connection.recv(5)
            except TimeoutError:
                answer = b""
    except OSError as exc:
        raise SessrecError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
    if answer.startswith(b"HTTP/"):
        raise SessrecError(
            f"{address} answers HTTP, so it is not the Ray GCS: --address takes the head's GCS port "
            "(HOST:6379 by default), 'auto' or ray://HOST:10001; "
            "the dashboard's http://HOST:8265 is for 'sessrec submit'"
        )


def disconnect() -> None:
    """Leave the cluster (stopping an embedded one), so nothing Ray prints arrives later."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


class Watch:
    """Stops a sweep when what it runs on stays unreachable, so that resume can continue it.

    A thread probes the storage (S3) and the Ray cluster every second. Storage unreachable
    for ``storage_patience_s``: it interrupts the driver the way Ctrl-C does, so Tune stops its
    trials (they meanwhile retry their uploads for longer, so none errors because of the
    outage). The cluster's GCS unreachable for ``cluster_patience_s`` (a few seconds for an
    embedded Ray, whose processes do not come back: a SIGTERM to the whole process group, from
    `timeout`, systemd or Slurm, ends them with the driver): the trials are gone with it and
    Ray's client would block on it for a minute, then abort the process with its own log; one
    line is printed and the driver exits at once. Either way the trials' stored checkpoints
    are what resume continues from, as after a killed driver.
    """

    PROBE_EVERY_S = 1.0
    EMBEDDED_PATIENCE_S = 3.0

    def __init__(self, paths: SweepPaths, address: str | None, record: SweepRecord | None = None) -> None:
        self.paths, self.address = paths, address
        #: The run's manifest (and its lease): settled and released when the cluster is lost.
        self.record = record
        self.storage_patience_s = storage_patience()
        self.embedded = address is None
        self.cluster_patience_s = self.EMBEDDED_PATIENCE_S if self.embedded else patience(CLUSTER_PATIENCE_VAR)
        if address in (None, "auto"):  # the Ray started here, or the one Ray found: its GCS
            import ray

            address = ray.get_runtime_context().gcs_address
        self.gcs = _gcs_endpoint(address)
        # An embedded Ray's raylet, a child of this process: killed (SIGKILL, the OOM killer) it never comes
        # back, and Ray's client would abort the driver some 12 s later with a page of its logs.
        self.raylet = _embedded_raylet() if self.embedded else None
        self.storage_tripped = False
        #: Why storage stopped the sweep, where it was not unreachable (a full disk), for the error line.
        self.storage_trouble: str | None = None
        self._done = threading.Event()
        self._ending = threading.Lock()  # one thread prints the line and ends the process
        self._thread = threading.Thread(target=self._watch, name="sessrec-watch", daemon=True)

    def __enter__(self) -> Self:
        if storage.is_s3(self.paths.root) or self.gcs:  # a local folder has no outages to ride out
            self._thread.start()
        if self.raylet is not None:
            # Waits on the process itself: its end is seen at once, before Ray's agents tell the driver
            # of it (with the tail of the raylet's log, printed on the user's terminal).
            threading.Thread(target=self._watch_raylet, name="sessrec-watch-raylet", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        storage_down = cluster_down = storage_full = None
        while not self._done.wait(self.PROBE_EVERY_S):
            now_s = time.monotonic()
            if self.raylet is not None and self.raylet.poll() is not None:
                self._cluster_lost()
            if self.gcs and not _answers(*self.gcs):
                cluster_down = cluster_down or now_s
                if now_s - cluster_down >= self.cluster_patience_s:
                    self._cluster_lost()
            else:
                cluster_down = None
            if not storage.is_s3(self.paths.root):
                # A full disk: the trials retry their checkpoints as through an outage, without end.
                if _disk_full(self.paths.root):
                    storage_full = storage_full or now_s
                    if now_s - storage_full >= self.storage_patience_s:
                        self.storage_trouble = (
                            f"storage {self.paths.root} has had no space left for {self.storage_patience_s:.0f} s "
                            f"(under {MIN_FREE_BYTES // 1024**2} MiB free)"
                        )
                        self.storage_tripped = True
                        os.kill(os.getpid(), signal.SIGINT)
                        return
                else:
                    storage_full = None
            if storage.reachable(self.paths.root):
                storage_down = None
                continue
            storage_down = storage_down or now_s
            if now_s - storage_down >= self.storage_patience_s:
                self.storage_tripped = True
                os.kill(os.getpid(), signal.SIGINT)
                return

    def _watch_raylet(self) -> None:
        try:
            self.raylet.wait()  # type: ignore[union-attr]
        except Exception:  # reaped elsewhere: the probes above still see the cluster go
            return
        if not self._done.is_set():  # not the driver's own shutdown of Ray, after the run
            self._cluster_lost()

    def _cluster_lost(self) -> None:
        if not self._ending.acquire(blocking=False):
            return  # the other watching thread is ending the process
        sweep_id = self.paths.sweep_id
        if self.embedded:
            why = (
                "the embedded Ray ended (its processes were stopped or killed); "
                f"continue it with: sessrec tune resume {sweep_id}"
            )
        else:
            why = (
                f"lost the Ray cluster at {self.address} (unreachable for {self.cluster_patience_s:.0f} s); "
                f"once a cluster is up, continue it with: sessrec tune resume {sweep_id} --address ADDRESS"
            )
        sys.stdout.flush()
        sys.stderr.flush()
        # Ray's C++ threads go on logging to fds 1 and 2 until the process ends (lost objects, retries):
        # they are sent to /dev/null first, so that the error is the last line a user or a log sees.
        error_fd = os.dup(2)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        self._settle(f"stopped: {why.partition(';')[0]}")
        os.write(error_fd, f"\nerror: sweep {sweep_id} stopped: {why}\n".encode())
        os._exit(1)

    def _settle(self, reason: str) -> None:
        """The manifest says the run ended (storage still there: `results list` shows it interrupted, not
        running) and its lease is given up, so that `tune resume` can start at once. Best effort: storage
        may be gone too, and the line printed after says what to do either way."""
        from sessrec.sweep.records import Status, SweepRecord

        try:
            if self.record is None:
                SweepRecord.settle(self.paths.root, self.paths.sweep_id, Status.INTERRUPTED, reason)
            else:
                self.record.update(Status.INTERRUPTED, interrupted=formats.now(), reason=reason)
        except Exception:  # storage gone, or the record moved on
            pass
        lease = self.record.lease if self.record is not None else None
        if lease is not None:
            try:
                lease.release()
            except Exception:  # it expires instead
                pass


#: What Ray's memory monitor says when it kills a worker (its OutOfMemoryError's message, which
#: Tune hands on as the trial's error, sometimes wrapped or as text only).
_OOM_MARKS = ("OutOfMemoryError", "killed due to the node running low on memory", "memory monitor")


def out_of_memory_reason(results: Any) -> str | None:
    """Why the sweep failed where Ray's out-of-memory killer ended a trial (its node ran low on
    memory: the machine failed it, not its config), naming the trial, the node's memory and the
    remedy; None where no trial ended so."""
    for result in results:
        error = getattr(result, "error", None)
        if error is None or not _is_out_of_memory(error):
            continue
        text = str(error)
        trial = getattr(result, "path", "") or ""
        trial = trial.rstrip("/").rpartition("/")[2] or "a trial"
        used = re.search(r"was ([\d.]+\s*[KMGT]?B) used / ([\d.]+\s*[KMGT]?B) limit", text)
        threshold = re.search(r"threshold of \d+B \(([\d.]+)% of", text) or re.search(
            r"usage threshold of ([\d.]+)", text
        )
        memory = f"its node's memory: {used[1]} used of {used[2]}" if used else "its node ran low on memory"
        if threshold:
            memory += f", over Ray's kill threshold of {threshold[1]}{'%' if '%' in threshold[0] else ''}"
        return (
            f"Ray's out-of-memory killer ended trial {trial} ({memory}); run fewer trials at once "
            "(resources.max_concurrent_trials in the spec, or more cpus_per_trial) or give the node more memory"
        )
    return None


def _is_out_of_memory(error: BaseException) -> bool:
    from ray.exceptions import OutOfMemoryError

    seen: BaseException | None = error
    for _ in range(5):  # the error and what it wraps
        if seen is None:
            break
        if isinstance(seen, OutOfMemoryError) or any(mark in str(seen) for mark in _OOM_MARKS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


#: Local storage with less free space than this is full: a trial's checkpoint no longer fits.
MIN_FREE_BYTES = 1024**2


def _disk_full(root: str) -> bool:
    try:
        info = os.statvfs(root)
    except OSError:
        return False  # not there (yet): not a full disk
    return info.f_bavail * info.f_frsize < MIN_FREE_BYTES


def _embedded_raylet() -> Any:
    """The embedded Ray's raylet process (a ``subprocess.Popen``), or None where Ray does not say."""
    try:
        from ray._private import worker  # private: the node this driver started

        node = worker._global_node
        return node.all_processes["raylet"][0].process if node is not None else None
    except (AttributeError, ImportError, IndexError, KeyError):
        return None


def _gcs_endpoint(address: str | None) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT address; None for an embedded Ray, 'auto' or ray://."""
    if not address or address == "auto" or address.startswith("ray://"):
        return None
    if address.startswith(("http://", "https://")):
        raise SessrecError(
            f"{address} is the dashboard's address, for 'sessrec submit' and 'sessrec jobs': "
            "a sweep's driver joins the cluster at the head's GCS (HOST:6379), 'auto' or ray://HOST:10001; "
            "or run it on the cluster through that address: "
            "'sessrec submit tune' (a new sweep) or 'sessrec submit resume' (one cut short)"
        )
    host, _, port = address.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise SessrecError(f"not a Ray address: {address!r} (use HOST:PORT of the head's GCS, or 'auto')") from None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False
