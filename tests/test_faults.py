"""The fault matrix: one test per fault a sweep's run can meet, each on a small real sweep (the
``sessrec`` command in a subprocess, an embedded Ray, real processes killed by their pid), its
outcome compared with an uninterrupted run of the same spec and seeds (``assert_like_uninterrupted``).

Sections: concurrent drivers and the sweep's lease; stale or foreign records on resume. Each test
names its fault in its name; docs/reliability.md points at them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.helpers import (
    SESSREC,
    assert_one_line_error,
    descendants,
    kill_with_descendants,
    local_sweep_env,
    run_cli,
    synth_dataset,
)

pytestmark = pytest.mark.slow

#: 4 trials x 2 epochs on 1 CPU, one clear winner (alpha 0.05), long enough (some 15 s on a
#: loaded machine) for a second command to meet the first.
SPEC: dict[str, Any] = {
    "name": "f",
    "dataset": "demo",
    "split": {"seed": 0, "n": 100},
    "space": {"vector_size": 16, "window": 3, "alpha": [0.05, 0.002, 0.0005, 0.0002]},
    "scheduler": {"type": "fifo", "max_t": 2},
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 1, "max_failures": 0},
}
TRIALS, EPOCHS = 4, 2
#: The lease's expiry in these tests (seconds); renewed every sixth of it.
EXPIRY_S = 6
#: The killed driver's: long enough for a refused `tune resume` to start while it still holds.
KILLED_EXPIRY_S = 20
#: A paused driver's (``_paused``): its lease, not renewed while it is stopped, outlives the pause.
PAUSED_EXPIRY_S = 60


@dataclass
class Sweep:
    """A folder with a dataset and the spec, the CLI's environment, and the store."""

    folder: Path
    env: dict[str, str]
    spec: str
    root: str  # the storage root: a local folder or s3://...

    def sweep_uri(self, sweep_id: str, *parts: str) -> str:
        from sessrec import storage

        return storage.join(self.root, "sweeps", sweep_id, *parts)

    def exists(self, sweep_id: str, *parts: str) -> bool:
        from sessrec import storage

        return storage.exists(self.sweep_uri(sweep_id, *parts))

    def read(self, sweep_id: str, *parts: str) -> bytes:
        from sessrec import storage

        return storage.read_bytes(self.sweep_uri(sweep_id, *parts))

    def manifest(self, sweep_id: str) -> dict[str, Any]:
        return json.loads(self.read(sweep_id, "manifest.json"))

    def trials(self, sweep_id: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read(sweep_id, "trials.parquet")))

    def results(self, sweep_id: str) -> dict[str, bytes]:
        """The bytes of the trials table and every best file: what must never be rewritten."""
        files = ["trials.parquet", *(f"best/{name}" for name in ("config.json", "metrics.json", "embeddings.parquet"))]
        return {name: self.read(sweep_id, *name.split("/")) for name in files}

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return run_cli(*args, cwd=self.folder, env={**self.env, **env})

    def start(self, sweep_id: str, *args: str, log: str | None = None, **env: str) -> tuple[subprocess.Popen, Path]:
        """``tune ARGS`` in the background, its stderr to a log file."""
        log_path = self.folder / (log or f"{sweep_id}.log")
        process = subprocess.Popen(
            [*SESSREC, "tune", *args],
            cwd=self.folder,
            env={**self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "w"),
            start_new_session=True,
        )
        return process, log_path

    def start_run(self, sweep_id: str, *extra: str, **env: str) -> tuple[subprocess.Popen, Path]:
        return self.start(sweep_id, "run", self.spec, "--sweep-id", sweep_id, "--num-cpus", "1", *extra, **env)


def _make_sweep(folder: Path, root: str, **env: str) -> Sweep:
    environment = local_sweep_env(folder, root, PYTHONHASHSEED="0", SESSREC_LEASE_EXPIRY=str(EXPIRY_S), **env)
    synth_dataset(folder, environment, sessions=3000, items=300, clusters=10)
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    return Sweep(folder, environment, str(spec), root)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Sweep:
    """The same spec run once without a fault: what every faulted run must end like."""
    sweep = _make_sweep(tmp_path := tmp_path_factory.mktemp("clean"), str(tmp_path / "store"))
    result = sweep.run("tune", "run", sweep.spec, "--sweep-id", "clean", "--num-cpus", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


@pytest.fixture
def small_sweep(tmp_path) -> Sweep:
    """The shared small sweep's dataset and spec, on local storage."""
    return _make_sweep(tmp_path, str(tmp_path / "store"))


@pytest.fixture
def s3_small_sweep(tmp_path, monkeypatch) -> Iterator[Sweep]:
    """The same on a private SeaweedFS server (which honours If-None-Match and If-Match)."""
    from servers import AWS_CONFLICTING_VARS, SeaweedS3

    from sessrec import storage

    with SeaweedS3() as s3:
        for var in AWS_CONFLICTING_VARS:
            monkeypatch.delenv(var, raising=False)
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        storage._s3_client.cache_clear()
        yield _make_sweep(tmp_path, f"s3://{s3.bucket}/faults")
        storage._s3_client.cache_clear()


def assert_like_uninterrupted(sweep: Sweep, sweep_id: str, baseline: Sweep, runs: int) -> None:
    """Completed, every planned trial once and trained to the end, the same best config as the
    uninterrupted run (its metric within what a continued trial may differ by), ``runs`` runs."""
    manifest = sweep.manifest(sweep_id)
    assert manifest["status"] == "completed" and manifest["runs"] == runs, manifest
    assert manifest["trials"] == {"total": TRIALS, "completed": TRIALS, "stopped_early": 0, "errored": 0}
    assert "reason" not in manifest
    trials, expected = sweep.trials(sweep_id), baseline.trials("clean")
    assert len(trials) == TRIALS and trials["trial_id"].is_unique
    assert sorted(trials["point"]) == sorted(expected["point"]) == list(range(TRIALS))
    assert (trials["epochs_run"] == EPOCHS).all() and all(len(curve) == EPOCHS for curve in trials["curve"])
    best = json.loads(sweep.read(sweep_id, "best", "config.json"))
    assert best == json.loads(baseline.read("clean", "best", "config.json"))
    recall = json.loads(sweep.read(sweep_id, "best", "metrics.json"))["validation"]["recall_at_k"]
    recall_expected = json.loads(baseline.read("clean", "best", "metrics.json"))["validation"]["recall_at_k"]
    assert abs(recall - recall_expected) <= 0.03, (recall, recall_expected)


def _wait_for(condition, process: subprocess.Popen, log: Path, timeout: float = 120, what: str = "") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"{what}: the driver ended first:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"{what}: timed out:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)


def _running(sweep: Sweep, sweep_id: str) -> bool:
    """The driver holds the lease and has written its manifest."""
    return sweep.exists(sweep_id, "lease.json") and sweep.exists(sweep_id, "manifest.json")


def _checkpointed(sweep: Sweep, sweep_id: str) -> bool:
    """Some trial has stored its first checkpoint."""
    from sessrec import storage

    return sweep.exists(sweep_id, "manifest.json") and any(
        "/checkpoint_000000/trial.json" in path for path in storage.walk_files(sweep.sweep_uri(sweep_id, "tune"))
    )


def _error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("error:")]


@contextlib.contextmanager
def _paused(driver: subprocess.Popen) -> Iterator[int]:
    """The driver's command (the child its ``sessrec`` process runs it in) stopped (SIGSTOP) until
    the block ends, so that its sweep cannot finish while a second command meets it: however
    slowly that command starts on a loaded machine, it finds the sweep running and its lease held
    (start the driver with SESSREC_LEASE_EXPIRY=PAUSED_EXPIRY_S). Yields the command's pid."""
    command = descendants(driver.pid)[0]
    os.kill(command, signal.SIGSTOP)
    try:
        yield command
    finally:
        os.kill(command, signal.SIGCONT)


# Concurrent drivers and the sweep's lease ------------------------------------------------------


def test_two_resume_existing_runs_at_once_one_runs_the_other_waits_and_rewrites_nothing(small_sweep, uninterrupted):
    """A RayJob retry while the first attempt still runs: the retry waits for the first driver's
    lease, then returns the completed sweep as it is."""
    sweep = small_sweep
    first, first_log = sweep.start_run("a1", "--resume-existing", SESSREC_LEASE_EXPIRY=str(PAUSED_EXPIRY_S))
    _wait_for(lambda: _running(sweep, "a1"), first, first_log, what="first driver")
    waiting = "waiting for the driver of sweep a1 to finish or its lease to expire"
    with _paused(first):
        second, second_log = sweep.start(
            "a1",
            "run",
            sweep.spec,
            "--sweep-id",
            "a1",
            "--num-cpus",
            "1",
            "--resume-existing",
            "--json",
            log="a1-second.log",
            SESSREC_LEASE_EXPIRY=str(PAUSED_EXPIRY_S),  # it waits up to 1.5 x expiry + 10 s
        )
        _wait_for(lambda: waiting in second_log.read_text(), second, second_log, what="second driver waits")
    assert first.wait(timeout=180) == 0, first_log.read_text()[-3000:]
    written = sweep.results("a1")
    assert second.wait(timeout=120) == 0, second_log.read_text()[-3000:]
    log = second_log.read_text()
    assert "sweep a1 has already completed: nothing to run" in log and "continuing it" not in log, log
    assert sweep.results("a1") == written  # the completed results were not rewritten
    assert sorted(path.name for path in (Path(sweep.root) / "sweeps" / "a1" / "tune").iterdir()) == ["run-1"]
    assert_like_uninterrupted(sweep, "a1", uninterrupted, runs=1)


@pytest.mark.parametrize("store", ["local", "s3"])
def test_resume_while_the_original_driver_runs_is_refused_in_one_line(store, request, uninterrupted):
    sweep = request.getfixturevalue("small_sweep" if store == "local" else "s3_small_sweep")
    driver, log = sweep.start_run("b1", SESSREC_LEASE_EXPIRY=str(PAUSED_EXPIRY_S))
    _wait_for(lambda: _running(sweep, "b1"), driver, log, what="driver")
    manifest = sweep.read("b1", "manifest.json")
    with _paused(driver) as running:
        started = time.monotonic()
        refused = sweep.run("tune", "resume", "b1", "--num-cpus", "1")
        took = time.monotonic() - started
        assert sweep.read("b1", "manifest.json") == manifest  # nothing written by the refused resume
    assert_one_line_error(refused, "sweep b1 is being run by another driver", f"pid {running}", "started ")
    assert took < 20  # no Ray was started
    assert driver.wait(timeout=180) == 0, log.read_text()[-3000:]
    assert_like_uninterrupted(sweep, "b1", uninterrupted, runs=1)


@pytest.fixture
def killed_sweep(small_sweep) -> Sweep:
    """A sweep whose driver was SIGKILLed (with its Ray) after its first checkpoint: its lease
    is left behind, live until it expires (KILLED_EXPIRY_S after its last renewal)."""
    sweep = small_sweep
    driver, log = sweep.start_run("k1", SESSREC_LEASE_EXPIRY=str(KILLED_EXPIRY_S))
    _wait_for(lambda: _checkpointed(sweep, "k1"), driver, log, what="first checkpoint")
    kill_with_descendants(driver.pid)
    driver.wait()
    assert sweep.manifest("k1")["status"] == "running"
    assert not sweep.exists("k1", "trials.parquet")
    return sweep


def test_a_killed_driver_s_sweep_resumes_once_its_lease_expired(killed_sweep, uninterrupted):
    sweep = killed_sweep
    lease = json.loads(sweep.read("k1", "lease.json"))
    # Still live (the driver renewed it a moment before its kill): refused, naming the dead driver.
    assert_one_line_error(sweep.run("tune", "resume", "k1"), "being run by another driver", f"pid {lease['pid']}")
    time.sleep(max(0.0, lease["renewed_s"] + KILLED_EXPIRY_S + 0.5 - time.time()))
    resumed = sweep.run("tune", "resume", "k1", "--num-cpus", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_like_uninterrupted(sweep, "k1", uninterrupted, runs=2)
    assert json.loads(sweep.read("k1", "lease.json"))["released"] is True


def test_two_resumes_at_once_one_is_refused_and_the_runs_are_counted_right(killed_sweep, uninterrupted):
    sweep = killed_sweep
    lease = json.loads(sweep.read("k1", "lease.json"))
    time.sleep(max(0.0, lease["renewed_s"] + KILLED_EXPIRY_S + 0.5 - time.time()))
    resumes = [sweep.start("k1", "resume", "k1", "--num-cpus", "1", log=f"resume-{n}.log") for n in (1, 2)]
    codes = [process.wait(timeout=240) for process, _ in resumes]
    logs = [log.read_text() for _, log in resumes]
    assert sorted(codes) == [0, 1], logs
    refused = logs[codes.index(1)]
    assert [line for line in refused.splitlines() if line.strip()] == _error_lines(refused), refused
    # Both start their Ray before the lease: the one whose Ray came up last finds the lease held or,
    # where the first had finished by then, the sweep completed.
    assert len(_error_lines(refused)) == 1, refused
    assert "being run by another driver" in refused or "sweep 'k1' has already completed" in refused, refused
    assert_like_uninterrupted(sweep, "k1", uninterrupted, runs=2)
    assert sorted(path.name for path in (Path(sweep.root) / "sweeps" / "k1" / "tune").iterdir()) == ["run-1", "run-2"]


def test_a_driver_that_lost_its_lease_writes_nothing_more_and_ends_with_one_line(small_sweep):
    sweep = small_sweep
    driver, log = sweep.start_run("l1")
    _wait_for(lambda: _checkpointed(sweep, "l1"), driver, log, what="first checkpoint")
    lease_path = Path(sweep.sweep_uri("l1", "lease.json"))
    lease = json.loads(lease_path.read_text())
    # Another driver took the sweep over (as if this one's renewals had stopped reaching storage).
    lease_path.write_text(
        json.dumps(
            {**lease, "owner": "another-driver", "host": "elsewhere", "pid": 4242, "renewed_s": time.time() + 3600}
        )
    )
    manifest = sweep.read("l1", "manifest.json")
    assert driver.wait(timeout=120) != 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text and _error_lines(text) == [text.strip().splitlines()[-1]], text[-3000:]
    assert "lost its lease to" in text and "host elsewhere, pid 4242" in text, text[-3000:]
    assert sweep.read("l1", "manifest.json") == manifest  # nothing more written: not even 'interrupted'
    assert not sweep.exists("l1", "trials.parquet") and not sweep.exists("l1", "best", "config.json")
    assert json.loads(lease_path.read_text())["owner"] == "another-driver"  # not released by the loser


# Stale or foreign records on resume -------------------------------------------------------------


def _copy_finished(baseline: Sweep, sweep: Sweep, status: str, **fields: Any) -> Path:
    """The uninterrupted sweep copied into ``sweep``'s store as if its driver had ended before
    writing the results (status ``status``): a resume trains nothing and writes them."""
    target = Path(sweep.root) / "sweeps" / "clean"
    shutil.copytree(Path(baseline.root) / "sweeps" / "clean", target)
    manifest = json.loads((target / "manifest.json").read_text())
    (target / "manifest.json").write_text(json.dumps({**manifest, "status": status, **fields}))
    (target / "trials.parquet").unlink()
    shutil.rmtree(target / "best")
    return target


def test_a_trial_record_with_a_parameter_not_in_the_spec_is_refused_before_ray(small_sweep, uninterrupted):
    target = _copy_finished(uninterrupted, small_sweep, "interrupted")
    record = sorted(target.glob("tune/run-1/point-*/checkpoint_*/trial.json"))[-1]
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "config": {**data["config"], "hidden_layers": 3}}))

    def stored() -> dict[Path, bytes]:  # all but the lease, which the refused resume took and released
        return {
            path: path.read_bytes() for path in target.rglob("*") if path.is_file() and "lease.json" not in path.name
        }

    before = stored()
    started = time.monotonic()
    refused = small_sweep.run("tune", "resume", "clean")
    assert_one_line_error(refused, str(record), "hidden_layers", "not in the spec")
    assert time.monotonic() - started < 20  # refused before Ray
    assert stored() == before


def test_a_resumed_sweep_that_completes_keeps_no_stale_failure_reason(small_sweep, uninterrupted):
    reason = "OutOfMemoryError: a trial's worker was killed"
    target = _copy_finished(uninterrupted, small_sweep, "failed", reason=reason)
    resumed = small_sweep.run("tune", "resume", "clean", "--num-cpus", "1", "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["status"] == "completed" and "reason" not in manifest
    assert manifest["history"] == [{"status": "failed", "reason": reason}]
    assert_like_uninterrupted(small_sweep, "clean", uninterrupted, runs=2)
