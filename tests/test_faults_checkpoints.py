"""Issue #21 faults around checkpoints, the embedded Ray and the Jobs API (defects 2, 4c, 5a, 6, 7,
11): each test reproduces its fault with real processes, as a user meets it.

(Written here because tests/test_faults.py did not exist yet when these were needed.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sessrec.sweep.ray_start import private_ray_temp_dir
from tests.helpers import (
    TWO_TRIAL_SWEEP,
    descendants,
    local_sweep_env,
    process_name,
    run_cli,
    start_sweep,
    synth_dataset,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def sweep_env(tmp_path):
    """A folder with a small synthetic dataset and local storage; Ray embedded, auth off."""
    env = local_sweep_env(tmp_path)
    synth_dataset(tmp_path, env, sessions=400, items=120, clusters=8)
    return tmp_path, env


def _spec(folder: Path, **changes) -> str:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**TWO_TRIAL_SWEEP, **changes}))
    return str(path)


def _trials(folder: Path, sweep_id: str) -> pd.DataFrame:
    return pd.read_parquet(folder / "store" / "sweeps" / sweep_id / "trials.parquet")


def _files_holding(folder: Path, marker: bytes) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and marker in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue  # a socket, or a file Ray removed meanwhile
    return found


# ---------------------------------------------------------------------------------------------
# 7. The S3 secret key written in clear to world-readable Ray logs.


def test_no_credential_reaches_the_embedded_rays_logs_and_its_temp_folder_is_private(sweep_env):
    folder, env = sweep_env
    marker = f"sessrecMARKER{uuid.uuid4().hex}"  # new each run: earlier sessions in the folder cannot hold it
    credentials = {
        name: f"{marker}-{name}"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
    }
    result = run_cli(
        "tune",
        "run",
        _spec(folder),
        "--sweep-id",
        "k7",
        "--num-cpus",
        "2",
        "--json",
        cwd=folder,
        env={**env, **credentials},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["status"] == "completed"
    assert len(_trials(folder, "k7")) == 2
    private = Path(private_ray_temp_dir()).parent
    info = private.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    # The sweep ran there: its session's logs name the runtime_env agent.
    assert list(private.glob("ray/session_*/logs/runtime_env_agent.log"))
    assert _files_holding(private, marker.encode()) == []
    assert _files_holding(folder, marker.encode()) == []  # sessrec's own storage, and anything else it wrote
    assert marker not in result.stdout + result.stderr


def test_a_ray_temp_folder_open_to_others_is_refused(tmp_path, monkeypatch):
    from sessrec.errors import SessrecError
    from sessrec.sweep import ray_start

    monkeypatch.setattr(ray_start, "PRIVATE_TEMP_PARENT", str(tmp_path))
    made = Path(ray_start.private_ray_temp_dir()).parent
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    made.chmod(0o755)
    with pytest.raises(SessrecError, match="open to other users"):
        ray_start.private_ray_temp_dir()
    made.rmdir()
    made.symlink_to(tmp_path)
    with pytest.raises(SessrecError, match="not a folder of this user's"):
        ray_start.private_ray_temp_dir()


# ---------------------------------------------------------------------------------------------
# 2. Checksummed checkpoints: bytes flipped in a checkpoint's weights, its size kept.

CUT_SHORT = {"scheduler": {"type": "fifo", "max_t": 3}}


@pytest.fixture
def finished_sweep(sweep_env):
    """An uninterrupted 2-trial x 3-epoch sweep (the reference), and a copy of its storage made to
    look cut short before its results were written (what a killed driver leaves)."""
    folder, env = sweep_env
    result = run_cli(
        "tune", "run", _spec(folder, **CUT_SHORT), "--sweep-id", "c2", "--num-cpus", "2", "--json", cwd=folder, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reference = _trials(folder, "c2")
    copy = folder / "copy"
    shutil.copytree(folder / "store", copy)
    sweep = copy / "sweeps" / "c2"
    (sweep / "trials.parquet").unlink()
    shutil.rmtree(sweep / "best")
    manifest = json.loads((sweep / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (sweep / "manifest.json").write_text(json.dumps(manifest))
    return folder, {**env, "SESSREC_STORAGE": str(copy)}, reference, json.loads(result.stdout)["best"], sweep


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _newest_checkpoint(sweep: Path, point: int) -> Path:
    return sorted(sweep.glob(f"tune/run-1/point-{point:05d}-*/checkpoint_*"))[-1]


def _assert_same_sweep(resumed: subprocess.CompletedProcess, sweep: Path, reference: pd.DataFrame, best: dict) -> None:
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads(resumed.stdout)
    assert manifest["status"] == "completed"
    trials = pd.read_parquet(sweep / "trials.parquet")
    assert len(trials) == len(reference) == 2 and trials["trial_id"].is_unique
    assert (trials["state"] == "completed").all() and (trials["epochs_run"] == 3).all()
    assert manifest["best"].keys() == best.keys()
    metric = next(key for key in best if key != "trial_id")
    assert manifest["best"][metric] == pytest.approx(best[metric], rel=1e-6)


def test_a_checkpoint_with_flipped_bytes_is_passed_over_for_the_one_before(finished_sweep):
    folder, env, reference, best, sweep = finished_sweep
    damaged = _newest_checkpoint(sweep, 1)
    record = json.loads((damaged / "trial.json").read_text())
    assert len(record["state_sha256"]) == 64  # written with every checkpoint
    size = (damaged / "state.npz").stat().st_size
    _flip_bytes(damaged / "state.npz")
    assert (damaged / "state.npz").stat().st_size == size
    resumed = run_cli("tune", "resume", "c2", "--num-cpus", "2", "--json", cwd=folder, env=env)
    lines = [
        line for line in resumed.stderr.splitlines() if line.strip() and not line.startswith("trials ")
    ]  # progress
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(lines) == len(warnings) == 1 and str(damaged) in warnings[0], resumed.stderr
    assert "sha256" in warnings[0] and "goes on from the checkpoint before it" in warnings[0]
    _assert_same_sweep(resumed, sweep, reference, best)
    trials = pd.read_parquet(sweep / "trials.parquet")
    assert trials.loc[trials["point"] == 1, "restored"].all()


def test_an_old_checkpoint_without_a_checksum_stays_readable_and_a_damaged_one_is_passed_over_in_the_trial(
    finished_sweep,
):
    """Checkpoints written before the checksum: the resume checks their size only, so bytes flipped
    in one reach the trial, which goes on from the checkpoint before it instead of erroring."""
    folder, env, reference, best, sweep = finished_sweep
    for record_file in sweep.glob("tune/run-1/point-*/checkpoint_*/trial.json"):
        record = json.loads(record_file.read_text())
        del record["state_sha256"]
        record_file.write_text(json.dumps(record))
    _flip_bytes(_newest_checkpoint(sweep, 0) / "state.npz")
    resumed = run_cli("tune", "resume", "c2", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert "Bad CRC" not in resumed.stderr and "errored" not in resumed.stderr, resumed.stderr
    _assert_same_sweep(resumed, sweep, reference, best)


# ---------------------------------------------------------------------------------------------
# 11. `submit` right after `ray start`: "HTTP 500: No available agent to submit job".


def test_a_submission_right_after_ray_start_waits_for_the_job_agent(capsys, monkeypatch):
    from sessrec.jobs_client import JobsClient
    from tests.servers import RayLocalCluster

    monkeypatch.delenv("SESSREC_JOB_AGENT_WAIT", raising=False)
    with RayLocalCluster(num_workers=0) as cluster:  # start() returns once the Jobs API answers a GET
        client = JobsClient(cluster.dashboard_url, token=cluster.token)
        submitted = client.submit_job("sessrec-a11", ["--version"], {"sweep_id": "a11"}, {})
        assert submitted.job_id == "sessrec-a11"
        job = client.wait("sessrec-a11", timeout=120)
        assert str(job.status) == "SUCCEEDED", client.logs("sessrec-a11")
    err = capsys.readouterr().err
    assert "Traceback" not in err and "HTTP 500" not in err
    assert len([line for line in err.splitlines() if "waiting up to" in line]) <= 1, err


def test_no_job_agent_after_the_wait_is_one_clear_error(monkeypatch, capsys):
    from sessrec.errors import SessrecError
    from sessrec.jobs_client import JobsClient, _HttpError

    client = JobsClient.__new__(JobsClient)
    client.address = "http://127.0.0.1:8265"
    tries = []

    def no_agent():
        tries.append(1)
        raise _HttpError(500, "No available agent to submit job, please try again later.")

    monkeypatch.setenv("SESSREC_JOB_AGENT_WAIT", "2")
    with pytest.raises(SessrecError, match="has no job agent to take the job after 2 s") as refused:
        client._call(lambda: client._when_agent_ready(no_agent))
    assert "SESSREC_JOB_AGENT_WAIT" in str(refused.value) and len(tries) >= 2
    assert capsys.readouterr().err.count("waiting up to 2 s for the job agent") == 1
    monkeypatch.setenv("SESSREC_JOB_AGENT_WAIT", "soon")
    with pytest.raises(SessrecError, match="SESSREC_JOB_AGENT_WAIT must be a number"):
        client._when_agent_ready(no_agent)


# ---------------------------------------------------------------------------------------------
# 4c. SIGKILL of the embedded raylet.

SLOW = {"dataset": "big", "scheduler": {"type": "fifo", "max_t": 5}, "space": {"vector_size": 16, "window": [2, 4, 6]}}


def test_a_killed_embedded_raylet_stops_the_sweep_with_one_line_and_resume_finishes_it(sweep_env):
    folder, env = sweep_env
    synth_dataset(folder, env, "big", sessions=6000, items=600, clusters=20)
    spec = _spec(folder, **SLOW)
    driver, log_path = start_sweep(folder, env, spec, "r4", until="trials 1/3 done")
    raylets = [pid for pid in descendants(driver.pid) if process_name(pid) == "raylet"]
    assert len(raylets) == 1
    killed = time.monotonic()
    os.kill(raylets[0], signal.SIGKILL)
    assert driver.wait(timeout=60) == 1, log_path.read_text()[-2000:]
    assert time.monotonic() - killed < 10
    lines = [line for line in log_path.read_text().splitlines() if line.strip() and not line.startswith("trials ")]
    assert len(lines) == 1, log_path.read_text()[-3000:]  # no Ray dump
    assert lines[0].startswith("error: sweep r4 stopped: the embedded Ray ended") and lines[0].endswith(
        "sessrec tune resume r4"
    )
    manifest = json.loads((folder / "store" / "sweeps" / "r4" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted", manifest
    resumed = run_cli("tune", "resume", "r4", "--num-cpus", "1", "--json", cwd=folder, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = run_cli("tune", "run", spec, "--sweep-id", "u4", "--num-cpus", "1", "--json", cwd=folder, env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    trials, uninterrupted = _trials(folder, "r4"), _trials(folder, "u4")
    assert len(trials) == len(uninterrupted) == 3 and trials["trial_id"].is_unique and (trials["epochs_run"] == 5).all()
    best, expected = json.loads(resumed.stdout)["best"], json.loads(reference.stdout)["best"]
    metric = next(key for key in expected if key != "trial_id")
    assert best[metric] == pytest.approx(expected[metric], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# 5a. Ray's out-of-memory killer.


def test_trials_ended_by_rays_out_of_memory_killer_fail_the_sweep_with_one_line_and_resume_finishes_it(sweep_env):
    """Ray's memory monitor made to fire on this machine: its kill threshold at 1 % of memory."""
    folder, env = sweep_env
    spec = _spec(folder, **CUT_SHORT)
    low = {**env, "RAY_memory_usage_threshold": "0.01", "RAY_memory_monitor_refresh_ms": "100"}
    result = run_cli("tune", "run", spec, "--sweep-id", "m5", "--num-cpus", "2", cwd=folder, env=low)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "out-of-memory killer ended trial" in errors[0] and "GB used of" in errors[0], errors[0]
    assert "resources.max_concurrent_trials" in errors[0] and errors[0].endswith("sessrec tune resume m5"), errors[0]
    manifest = json.loads((folder / "store" / "sweeps" / "m5" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "out-of-memory killer" in manifest["reason"]
    resumed = run_cli("tune", "resume", "m5", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = run_cli("tune", "run", spec, "--sweep-id", "u5", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    trials = _trials(folder, "m5")
    assert len(trials) == len(_trials(folder, "u5")) == 2 and (trials["state"] == "completed").all()
    best, expected = json.loads(resumed.stdout)["best"], json.loads(reference.stdout)["best"]
    metric = next(key for key in expected if key != "trial_id")
    assert best[metric] == pytest.approx(expected[metric], rel=1e-6)


def test_rays_out_of_memory_errors_are_recognised_and_other_errors_are_not():
    """On Ray's own exception objects and the text Tune hands on (as a trial's error)."""
    from types import SimpleNamespace

    from ray.exceptions import OutOfMemoryError, RayActorError

    from sessrec.sweep.cluster import out_of_memory_reason

    message = (
        "1 worker(s) were killed due to the node running low on memory. Memory on the node (IP: 10.0.0.1, ID: ab) "
        "was 7.93GB used / 23.54GB limit (0.336896)\nOOM kill reason: Memory usage 8515072000B exceeded threshold "
        "of 252761824B (1.0% of 25276182528B limit)"
    )
    trial = SimpleNamespace(path="/store/sweeps/s/tune/run-1/point-00001-ab12cd34", error=OutOfMemoryError(message))
    reason = out_of_memory_reason([SimpleNamespace(path="/x/point-00000-aa", error=None), trial])
    assert reason is not None
    assert "trial point-00001-ab12cd34" in reason and "7.93GB used of 23.54GB" in reason and "1.0%" in reason
    wrapped = RayActorError()
    wrapped.__cause__ = OutOfMemoryError("Task was killed due to the node running low on memory.")
    assert out_of_memory_reason([SimpleNamespace(path="p", error=wrapped)]) is not None
    assert (
        out_of_memory_reason([SimpleNamespace(path="p", error=ValueError("you must first build vocabulary"))]) is None
    )
    assert out_of_memory_reason([]) is None


# ---------------------------------------------------------------------------------------------
# 6. A disk that stays full.


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs as the storage root's disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(path: Path) -> None:
    """Write zeros into ``path`` until the disk refuses a single block more."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 65536, 4096, 512):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_disk_that_stays_full_stops_the_sweep_with_one_line_and_leaves_no_part_written_checkpoints(
    small_disk, tmp_path
):
    folder = tmp_path
    env = local_sweep_env(folder, str(small_disk / "store"), SESSREC_STORAGE_PATIENCE="5")
    synth_dataset(folder, env, "big", sessions=6000, items=600, clusters=20)
    spec = _spec(folder, **SLOW)
    driver, log_path = start_sweep(folder, env, spec, "d6", until="trials 1/3 done")
    filler = small_disk / "filler"
    _fill(filler)
    assert driver.wait(timeout=120) == 1, log_path.read_text()[-3000:]
    lines = [line for line in log_path.read_text().splitlines() if line.strip() and not line.startswith("trials ")]
    assert len(lines) == 1 and lines[0].startswith("error: sweep d6 stopped: storage"), log_path.read_text()[-3000:]
    assert "no space left" in lines[0] and lines[0].endswith("sessrec tune resume d6"), lines[0]
    tune_dir = small_disk / "store" / "sweeps" / "d6" / "tune"
    empty = [str(path) for path in tune_dir.glob("run-1/point-*/checkpoint_*/*") if path.stat().st_size == 0]
    assert empty == []  # failed checkpoint copies were removed
    filler.unlink()
    # The stopped driver could not release its lease on the full disk: the resume waits for it to expire.
    for _ in range(10):
        resumed = run_cli("tune", "resume", "d6", "--num-cpus", "1", "--json", cwd=folder, env=env)
        if "is being run by another driver" not in resumed.stderr:
            break
        time.sleep(5)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) <= 1, resumed.stderr
    reference = run_cli("tune", "run", spec, "--sweep-id", "u6", "--num-cpus", "1", "--json", cwd=folder, env=env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    trials = pd.read_parquet(small_disk / "store" / "sweeps" / "d6" / "trials.parquet")
    assert len(trials) == 3 and trials["trial_id"].is_unique and (trials["epochs_run"] == 5).all()
    best, expected = json.loads(resumed.stdout)["best"], json.loads(reference.stdout)["best"]
    metric = next(key for key in expected if key != "trial_id")
    assert best[metric] == pytest.approx(expected[metric], rel=1e-6)


def test_a_resume_sums_up_many_damaged_checkpoints_in_one_warning_line():
    from sessrec.sweep.checkpoints import damaged_checkpoints_warning

    damaged = [
        (f"/s/tune/run-1/point-{i:05d}-x/checkpoint_000003", "its state.npz has 0 of 9000 bytes") for i in range(88)
    ]
    line = damaged_checkpoints_warning(damaged, "goes on from the checkpoint before it")
    assert (
        line.count("\n") == 1
        and line.startswith("warning: 88 checkpoints were not stored whole")
        and damaged[0][0] in line
    )
