"""Real sweeps on an embedded local Ray with local storage, run as a user runs them."""

import json
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from sessrec import formats
from tests.helpers import SESSREC, assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

# Half the grid learns (alpha 0.05), half barely moves (alpha 2e-4): ASHA must stop the latter.
SPEC = {
    "name": "t",
    "dataset": "demo",
    "split": {"seed": 0, "n": 150},
    "space": {"vector_size": 16, "window": [2, 5], "negative": [5, 10], "alpha": [0.05, 0.0002]},
    "scheduler": {"type": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 1, "max_failures": 1},
}


@pytest.fixture
def workdir(tmp_path):
    env = {**os.environ, "SESSREC_STORAGE": str(tmp_path / "store"), "RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    result = run_cli("data", "synth", "--name", "demo", "--sessions", "800", "--items", "200", "--clusters", "10", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return tmp_path, env


def _write_spec(folder, **changes) -> str:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return str(path)


def test_sweep_writes_results_and_asha_stops_weak_trials(workdir):
    folder, env = workdir
    spec = _write_spec(folder)
    result = run_cli("tune", "run", spec, "--sweep-id", "s1", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads(result.stdout)
    assert manifest["status"] == "completed"
    assert manifest["trials"]["total"] == 8 and manifest["split"] == {"seed": 0, "n": 150}
    assert "trials 8/8 done" in result.stderr  # the progress line

    sweep = folder / "store" / "sweeps" / "s1"
    trials = pd.read_parquet(sweep / "trials.parquet")
    assert len(trials) == 8 and trials["trial_id"].is_unique
    assert set(trials["state"]) <= {"completed", "stopped_early"}
    stopped = trials[trials["state"] == "stopped_early"]
    assert len(stopped) >= 1 and (stopped["epochs_run"] < 4).all()
    assert (trials.loc[trials["state"] == "completed", "epochs_run"] == 4).all()
    assert manifest["trials"]["stopped_early"] == len(stopped)
    assert all(len(curve) == epochs for curve, epochs in zip(trials["curve"], trials["epochs_run"]))
    weak = trials[trials["config.alpha"] < 1e-3]
    strong = trials[trials["config.alpha"] > 1e-3]
    assert weak["epochs_run"].mean() < strong["epochs_run"].mean()

    best = json.loads(run_cli("results", "best", "s1", "--json", cwd=folder, env=env).stdout)
    assert best["config"]["alpha"] == 0.05 and best["config"]["epochs"] == 4
    assert best["validation"]["recall_at_k"] == trials["last_recall_at_k"].max()
    assert best["test"]["pairs"] == 150 and 0 < best["test"]["recall_at_k"] <= 1
    embeddings = formats.embeddings_from_parquet((sweep / "best" / "embeddings.parquet").read_bytes())
    assert embeddings.dims == 16 and embeddings.n_items > 100
    assert yaml.safe_load((sweep / "spec.yaml").read_text())["space"] == SPEC["space"]

    listed = json.loads(run_cli("results", "list", "--json", cwd=folder, env=env).stdout)
    assert [row["sweep_id"] for row in listed] == ["s1"]
    fetched = run_cli("results", "fetch", "s1", "--to", str(folder / "got"), cwd=folder, env=env)
    assert fetched.returncode == 0, fetched.stderr
    recs = run_cli("recommend", "I000001", "--embeddings", str(folder / "got" / "embeddings.txt"), "--json", cwd=folder, env=env)
    assert len(json.loads(recs.stdout)["I000001"]) == 10

    report = run_cli("report", "s1", "--to", str(folder / "report"), "--json", cwd=folder, env=env)
    assert report.returncode == 0, report.stderr
    assert (sweep / "report" / "index.html").exists() and (folder / "report" / "epochs_run.png").exists()
    assert "s1" in (folder / "report" / "index.html").read_text()

    again = run_cli("tune", "run", spec, "--sweep-id", "s1", cwd=folder, env=env)
    assert_one_line_error(again, "already exists")
    assert pd.read_parquet(sweep / "trials.parquet").equals(trials)


def test_dry_run_counts(workdir):
    folder, env = workdir
    result = run_cli("tune", "run", _write_spec(folder), "--dry-run", "--json", cwd=folder, env=env)
    estimate = json.loads(result.stdout)
    assert estimate["trials"] == 8 and estimate["epochs_worst_case"] == 32
    assert estimate["epochs_expected_with_asha"] == 8 * (1 + 1 / 2 + 2 / 4)
    assert estimate["measured_epoch_seconds"] > 0
    assert not (folder / "store" / "sweeps").exists()


def _start_slow_sweep(folder, env, sweep_id: str) -> tuple[subprocess.Popen, "os.PathLike"]:
    """A sweep of 6 trials x 5 epochs on 1 CPU, long enough to be interrupted half-way."""
    run_cli("data", "synth", "--name", "big", "--sessions", "6000", "--items", "600", "--clusters", "20", cwd=folder, env=env)
    spec = _write_spec(folder, dataset="big", scheduler={"type": "fifo", "max_t": 5}, space={"vector_size": 16, "window": [2, 4, 6], "negative": [5, 10]})
    log_path = folder / f"{sweep_id}.log"
    driver = subprocess.Popen(
        [*SESSREC, "tune", "run", spec, "--sweep-id", sweep_id, "--num-cpus", "1"],
        cwd=folder, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 180
    while "trials 2/6 done" not in log_path.read_text():
        assert driver.poll() is None and time.time() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.5)
    return driver, log_path


def _resume_to_the_end(folder, env, sweep_id: str) -> None:
    assert not (folder / "store" / "sweeps" / sweep_id / "trials.parquet").exists()
    resumed = run_cli("tune", "resume", sweep_id, "--num-cpus", "1", "--json", cwd=folder, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads(resumed.stdout)
    assert manifest["status"] == "completed" and "resumed" in manifest
    trials = pd.read_parquet(folder / "store" / "sweeps" / sweep_id / "trials.parquet")
    assert len(trials) == 6 and trials["trial_id"].is_unique
    assert (trials["state"] == "completed").all() and (trials["epochs_run"] == 5).all()
    assert sorted(zip(trials["config.window"], trials["config.negative"])) == sorted((w, n) for w in (2, 4, 6) for n in (5, 10))
    assert_one_line_error(run_cli("tune", "resume", sweep_id, cwd=folder, env=env), "already completed")


def test_resume_after_the_driver_is_killed(workdir):
    folder, env = workdir
    driver, _ = _start_slow_sweep(folder, env, "r1")
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its embedded Ray die at once
    driver.wait()
    _resume_to_the_end(folder, env, "r1")


def test_sigterm_stops_the_sweep_resumably(workdir):
    folder, env = workdir
    driver, log_path = _start_slow_sweep(folder, env, "r2")
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=120) != 0
    assert log_path.read_text().strip().splitlines()[-1] == "error: sweep r2 interrupted; continue it with: sessrec tune resume r2"
    manifest = json.loads((folder / "store" / "sweeps" / "r2" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert not (folder / "store" / "sweeps" / "r2" / "best").exists()
    _resume_to_the_end(folder, env, "r2")


def test_resume_of_unknown_sweep(workdir):
    folder, env = workdir
    assert_one_line_error(run_cli("tune", "resume", "nothing-here", cwd=folder, env=env), "no sweep")


def test_random_search_with_optuna(workdir):
    pytest.importorskip("optuna")
    folder, env = workdir
    spec = _write_spec(
        folder,
        search={"method": "optuna", "num_samples": 4, "seed": 1},
        space={"vector_size": 16, "window": {"randint": [1, 8]}, "alpha": {"loguniform": [0.01, 0.1]}, "negative": [5, 10]},
        scheduler={"type": "fifo", "max_t": 2},
    )
    result = run_cli("tune", "run", spec, "--sweep-id", "o1", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = pd.read_parquet(folder / "store" / "sweeps" / "o1" / "trials.parquet")
    assert len(trials) == 4 and (trials["state"] == "completed").all()
    assert trials["config.window"].between(1, 7).all() and trials["config.alpha"].between(0.01, 0.1).all()
    assert set(trials["config.negative"]) <= {5, 10}
