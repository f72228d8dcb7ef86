"""Real sweeps on an embedded local Ray with local storage, run as a user runs them."""

import contextlib
import io
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from sessrec import formats
from sessrec.cli.tune import _duration
from tests.helpers import (
    SESSREC,
    TWO_TRIAL_SWEEP,
    assert_one_line_error,
    descendants,
    kill_with_descendants,
    local_sweep_env,
    run_cli,
    start_sweep,
    synth_dataset,
)

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
    # A short lease: a killed driver's sweep may be resumed 3 s after its last renewal.
    env = local_sweep_env(tmp_path, SESSREC_LEASE_EXPIRY="3")
    synth_dataset(tmp_path, env, sessions=800, items=200, clusters=10)
    return tmp_path, env


def _write_spec(folder, **changes) -> str:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return str(path)


@pytest.fixture(scope="module")
def asha_sweep(tmp_path_factory):
    """One real 8-trial ASHA sweep, run once for the tests below as a user runs it. They write only
    to folders of their own, so each sees the sweep's storage as the sweep left it."""
    from types import SimpleNamespace

    folder = tmp_path_factory.mktemp("asha")
    env = local_sweep_env(folder)
    synth_dataset(folder, env, sessions=800, items=200, clusters=10)
    spec = _write_spec(folder)
    # Ray's own default (token auth switched on for an embedded Ray, announced with a warning).
    default_auth = {name: value for name, value in env.items() if name != "RAY_AUTH_MODE"}
    result = run_cli("tune", "run", spec, "--sweep-id", "s1", "--num-cpus", "2", "--json", cwd=folder, env=default_auth)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = folder / "store" / "sweeps" / "s1"
    return SimpleNamespace(
        folder=folder,
        env=env,
        spec=spec,
        result=result,
        manifest=json.loads(result.stdout),
        sweep=sweep,
        trials=pd.read_parquet(sweep / "trials.parquet"),
    )


@pytest.fixture(scope="module")
def asha_best(asha_sweep) -> dict:
    """What `sessrec results best s1 --json` says."""
    best = run_cli("results", "best", "s1", "--json", cwd=asha_sweep.folder, env=asha_sweep.env)
    assert best.returncode == 0, best.stderr
    return json.loads(best.stdout)


def test_the_sweep_completes_and_its_manifest_counts_every_trial_and_records_the_split(asha_sweep):
    assert asha_sweep.result.returncode == 0, asha_sweep.result.stderr[-3000:]
    manifest = asha_sweep.manifest
    assert manifest["status"] == "completed"
    assert manifest["trials"]["total"] == 8 and manifest["split"] == {"seed": 0, "n": 150}


def test_the_sweep_prints_only_its_progress_line_and_the_asha_order_warning(asha_sweep):
    stderr = asha_sweep.result.stderr
    assert "trials 8/8 done" in stderr  # the progress line
    # One trial at a time over a grid in grid order: ASHA's first rungs would see one corner.
    warning = "warning: ASHA will judge the first trials of this 8-point grid against its first corner only"
    assert warning in stderr
    # Nothing else: Ray's and Tune's lines are for --verbose.
    assert all(line.startswith(("trials ", warning)) for line in stderr.splitlines()), stderr


def test_the_trials_table_has_one_row_per_trial_and_a_curve_point_per_epoch_run(asha_sweep):
    trials = asha_sweep.trials
    assert len(trials) == 8 and trials["trial_id"].is_unique
    assert set(trials["state"]) <= {"completed", "stopped_early"}
    assert all(len(curve) == epochs for curve, epochs in zip(trials["curve"], trials["epochs_run"], strict=True))


def test_asha_stops_weak_trials(asha_sweep):
    trials = asha_sweep.trials
    stopped = trials[trials["state"] == "stopped_early"]
    assert len(stopped) >= 1 and (stopped["epochs_run"] < 4).all()
    assert (trials.loc[trials["state"] == "completed", "epochs_run"] == 4).all()
    assert asha_sweep.manifest["trials"]["stopped_early"] == len(stopped)
    weak = trials[trials["config.alpha"] < 1e-3]
    strong = trials[trials["config.alpha"] > 1e-3]
    assert weak["epochs_run"].mean() < strong["epochs_run"].mean()


def test_the_best_trial_is_the_strongest_and_carries_what_a_retrain_needs(asha_sweep, asha_best):
    best = asha_best
    assert best["config"]["alpha"] == 0.05 and best["config"]["epochs"] == 4
    # What a script needs to retrain and compare it: every word2vec setting, the split, the metric.
    assert {"seed", "workers", "min_count", "sample", "min_alpha"} <= set(best["config"])
    assert (best["split"], best["metric"], best["validation"]["pairs"]) == ({"seed": 0, "n": 150}, "recall_at_k", 150)
    assert best["dataset"]["sha256"] == asha_sweep.manifest["dataset"]["sha256"]
    assert best["validation"]["recall_at_k"] == asha_sweep.trials["last_recall_at_k"].max()


def test_the_best_trial_is_evaluated_on_test(asha_best):
    assert asha_best["test"]["pairs"] == 150 and 0 < asha_best["test"]["recall_at_k"] <= 1


def test_the_sweep_stores_the_best_embeddings_and_its_spec(asha_sweep):
    embeddings = formats.embeddings_from_parquet((asha_sweep.sweep / "best" / "embeddings.parquet").read_bytes())
    assert embeddings.dims == 16 and embeddings.n_items > 100
    assert yaml.safe_load((asha_sweep.sweep / "spec.yaml").read_text())["space"] == SPEC["space"]


def test_results_list_shows_the_sweep(asha_sweep):
    listed = json.loads(run_cli("results", "list", "--json", cwd=asha_sweep.folder, env=asha_sweep.env).stdout)
    assert [row["sweep_id"] for row in listed["sweeps"]] == ["s1"]


def test_fetched_best_embeddings_serve_recommendations(asha_sweep, tmp_path):
    folder, env = asha_sweep.folder, asha_sweep.env
    fetched = run_cli("results", "fetch", "s1", "--to", str(tmp_path / "got"), cwd=folder, env=env)
    assert fetched.returncode == 0, fetched.stderr
    recs = run_cli(
        "recommend", "I000001", "--embeddings", str(tmp_path / "got" / "embeddings.txt"), "--json", cwd=folder, env=env
    )
    assert len(json.loads(recs.stdout)["I000001"]) == 10


def test_results_fetch_replaces_files_in_its_folder_only_with_overwrite(asha_sweep, tmp_path):
    folder, env, got = asha_sweep.folder, asha_sweep.env, tmp_path / "got"
    fetched = run_cli("results", "fetch", "s1", "--to", str(got), cwd=folder, env=env)
    assert fetched.returncode == 0, fetched.stderr
    # A second copy into the same folder replaces nothing there unless told to.
    (got / "config.json").write_text("mine")
    assert_one_line_error(
        run_cli("results", "fetch", "s1", "--to", str(got), cwd=folder, env=env),
        "already has embeddings.parquet, embeddings.txt, config.json and 1 more; pass --overwrite",
    )
    assert (got / "config.json").read_text() == "mine"
    assert run_cli("results", "fetch", "s1", "--to", str(got), "--overwrite", cwd=folder, env=env).returncode == 0
    assert json.loads((got / "config.json").read_text())["alpha"] == 0.05


def test_results_fetch_needs_a_folder(asha_sweep):
    fetched = run_cli("results", "fetch", "s1", "--to", "", cwd=asha_sweep.folder, env=asha_sweep.env)
    assert_one_line_error(fetched, "--to needs a folder")


def test_report_refuses_a_file_as_its_folder(asha_sweep):
    report = run_cli("report", "s1", "--to", str(asha_sweep.spec), cwd=asha_sweep.folder, env=asha_sweep.env)
    assert_one_line_error(report, "a file, not a folder")


@pytest.mark.parametrize("command", [["results", "fetch", "s1"], ["report", "s1"]], ids=["results-fetch", "report"])
def test_a_folder_where_a_file_goes_is_refused_before_any_copy(asha_sweep, tmp_path, command):
    odd = tmp_path / "odd"
    (odd / "embeddings.txt").mkdir(parents=True)  # where results fetch writes a file
    (odd / "index.html").mkdir()  # where report writes a file
    refused = run_cli(*command, "--to", str(odd), "--overwrite", cwd=asha_sweep.folder, env=asha_sweep.env)
    assert_one_line_error(refused, "is a folder")
    assert sorted(p.name for p in odd.iterdir()) == ["embeddings.txt", "index.html"]


def test_report_writes_its_pages_into_the_sweep_and_the_folder(asha_sweep, tmp_path):
    report = run_cli(
        "report", "s1", "--to", str(tmp_path / "report"), "--json", cwd=asha_sweep.folder, env=asha_sweep.env
    )
    assert report.returncode == 0, report.stderr
    assert (asha_sweep.sweep / "report" / "index.html").exists() and (tmp_path / "report" / "epochs_run.png").exists()
    assert "s1" in (tmp_path / "report" / "index.html").read_text()


def test_report_replaces_files_in_its_folder_only_with_overwrite(asha_sweep, tmp_path):
    folder, env, to = asha_sweep.folder, asha_sweep.env, str(tmp_path / "report")
    first = run_cli("report", "s1", "--to", to, cwd=folder, env=env)
    assert first.returncode == 0, first.stderr
    assert_one_line_error(run_cli("report", "s1", "--to", to, cwd=folder, env=env), "pass --overwrite")
    assert run_cli("report", "s1", "--to", to, "--overwrite", cwd=folder, env=env).returncode == 0


def test_a_sweep_id_in_use_is_refused_and_its_results_stay(asha_sweep):
    """Last here: after every command above, the trials table is still the one the sweep wrote."""
    folder, env, spec = asha_sweep.folder, asha_sweep.env, asha_sweep.spec
    again = run_cli("tune", "run", spec, "--sweep-id", "s1", cwd=folder, env=env)
    assert_one_line_error(again, "already exists")
    dry_run = run_cli("tune", "run", spec, "--sweep-id", "s1", "--dry-run", cwd=folder, env=env)
    assert_one_line_error(dry_run, "already exists")
    assert pd.read_parquet(asha_sweep.sweep / "trials.parquet").equals(asha_sweep.trials)


def test_dry_run_counts(workdir):
    folder, env = workdir
    result = run_cli("tune", "run", _write_spec(folder), "--dry-run", "--json", cwd=folder, env=env)
    estimate = json.loads(result.stdout)
    assert estimate["trials"] == 8 and estimate["epochs_worst_case"] == 32
    assert estimate["epochs_expected_with_asha"] == 8 * (1 + 1 / 2 + 2 / 4)
    assert estimate["measured_epoch_seconds"] > 0
    # One trial at a time over a grid in grid order: the same warning as the sweep itself gives.
    assert estimate["warning"].startswith("ASHA will judge the first trials of this 8-point grid")
    assert f"warning: {estimate['warning']}" in result.stderr
    text = run_cli("tune", "run", _write_spec(folder), "--dry-run", cwd=folder, env=env).stdout
    # What the estimate counts is said: training and evaluation, then a range with Ray's start-up,
    # called an estimate, not a bound.
    assert re.search(
        r"estimated wall time +(under 1|\d+) s of training and evaluation \(all epochs: (under 1|\d+) s\)", text
    ), text
    assert re.search(r"likely range +.* in all, Ray's start-up and Tune's overheads included", text), text
    assert "not a bound" in text
    assert (_duration(0.4), _duration(7.2), _duration(90)) == ("under 1 s", "7 s", "1.5 min")  # not "0 s"
    assert not (folder / "store" / "sweeps").exists()


def test_dry_run_counts_no_epochs_for_trials_without_word2vec(workdir):
    folder, env = workdir
    spec = _write_spec(
        folder,
        mode="session",
        space={"model": ["sr", "repeat", "w2v_session+repeat"], "vector_size": 8, "window": [2, 3]},
        scheduler={"type": "fifo", "max_t": 4},
    )
    estimate = json.loads(run_cli("tune", "run", spec, "--dry-run", "--json", cwd=folder, env=env).stdout)
    # 6 grid points; only the 2 with word2vec train epochs, 4 each.
    assert (estimate["trials"], estimate["trials_without_word2vec"]) == (6, 4)
    assert estimate["epochs_worst_case"] == estimate["epochs_expected_with_asha"] == 8
    text = run_cli("tune", "run", spec, "--dry-run", cwd=folder, env=env).stdout
    assert re.search(r"without word2vec +4 \(count parts fitted once, no epochs\)", text), text


def _start_slow_sweep(folder, env, sweep_id: str) -> tuple[subprocess.Popen, "os.PathLike"]:
    """A sweep of 6 trials x 5 epochs on 1 CPU, long enough to be interrupted half-way; its grid
    shuffled, so a resume must also finish the points of a shuffled grid, each once."""
    synth_dataset(folder, env, "big", sessions=6000, items=600, clusters=20)
    spec = _write_spec(
        folder,
        dataset="big",
        scheduler={"type": "fifo", "max_t": 5},
        search={"method": "grid", "shuffle": True},
        space={"vector_size": 16, "window": [2, 4, 6], "negative": [5, 10]},
    )
    return start_sweep(folder, env, spec, sweep_id, until="trials 2/6 done")


def test_sigterm_to_every_process_of_the_command_stops_the_sweep_resumably(workdir):
    """systemd (a unit's control group) and Slurm signal every process of a job: the embedded
    Ray's own processes end too, the command's child gets the signal twice (directly and passed
    on by the ``sessrec`` process), and the driver must not wait on any of them. (`timeout` and a
    shell's job control signal the process group, which holds the ``sessrec`` process alone: see
    test_sigterm_stops_the_sweep_resumably.)"""
    folder, env = workdir
    driver, log_path = _start_slow_sweep(folder, env, "r3")
    signalled = time.monotonic()
    for pid in [driver.pid, *descendants(driver.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    assert driver.wait(timeout=60) == 1, log_path.read_text()[-2000:]
    assert time.monotonic() - signalled < 20
    last = log_path.read_text().strip().splitlines()[-1]
    # Which comes first, the driver's own stop or its Ray's end, is a race: either is one line.
    assert last.startswith(("error: sweep r3 stopped: the embedded Ray ended", "error: sweep r3 interrupted")), last
    assert last.endswith("sessrec tune resume r3"), last
    _resume_to_the_end(folder, env, "r3")


def _resume_to_the_end(folder, env, sweep_id: str) -> subprocess.CompletedProcess:
    assert not (folder / "store" / "sweeps" / sweep_id / "trials.parquet").exists()
    lease = json.loads((folder / "store" / "sweeps" / sweep_id / "lease.json").read_text())
    if not lease["released"]:  # a killed driver's lease: a resume is refused until it expires
        time.sleep(max(0.0, lease["renewed_s"] + lease["expiry_s"] + 0.5 - time.time()))
    resumed = run_cli("tune", "resume", sweep_id, "--num-cpus", "1", "--json", cwd=folder, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads(resumed.stdout)
    assert manifest["status"] == "completed" and "resumed" in manifest
    trials = pd.read_parquet(folder / "store" / "sweeps" / sweep_id / "trials.parquet")
    assert len(trials) == 6 and trials["trial_id"].is_unique
    assert (trials["state"] == "completed").all() and (trials["epochs_run"] == 5).all()
    assert sorted(zip(trials["config.window"], trials["config.negative"])) == sorted(
        (w, n) for w in (2, 4, 6) for n in (5, 10)
    )
    assert (
        sorted(trials["point"]) == list(range(6)) and "config.point" not in trials
    )  # a place in the plan, not a parameter
    assert_one_line_error(run_cli("tune", "resume", sweep_id, cwd=folder, env=env), "already completed")
    return resumed


class _Unpickled:
    """A pickle that makes a folder when it is loaded: proof that something unpickled it."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_resume_after_the_driver_is_killed_reads_no_pickle(workdir):
    folder, env = workdir
    driver, log_path = _start_slow_sweep(folder, env, "r1")
    # Killed while a trial is mid-way, so one has to go on: past its first checkpoint (whole once
    # the second is begun; the kill may cut off the one being stored), before its last.
    trials_dir = folder / "store" / "sweeps" / "r1" / "tune" / "run-1"
    # At least two epochs from its end, so that it cannot finish while the kill is under way (CI
    # once saw every started trial finished: one killed at its fourth checkpoint of five).
    mid_way, late = ("checkpoint_000001", "checkpoint_000002"), ("checkpoint_000003", "checkpoint_000004")
    deadline = time.time() + 60
    while not any(
        any((trial / name).exists() for name in mid_way) and not any((trial / name).exists() for name in late)
        for trial in trials_dir.glob("point-*")
    ):
        assert driver.poll() is None and time.time() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.02)
    kill_with_descendants(driver.pid)  # the driver, its embedded Ray and the trials' workers at once
    driver.wait()
    left = sorted(str(path.relative_to(trials_dir)) for path in trials_dir.glob("point-*/checkpoint_*"))
    # Whoever can write the sweep's storage replaces every file Tune wrote for itself (its
    # pickled tuner, searcher and trial state, its JSON logs) with a pickle that runs code.
    marker = folder / "code-ran"
    tune_dir = folder / "store" / "sweeps" / "r1" / "tune"
    planted = [path for path in tune_dir.rglob("*") if path.is_file() and path.name not in ("trial.json", "state.npz")]
    assert any(path.name == "tuner.pkl" for path in planted) and any(
        "experiment_state" in path.name for path in planted
    )
    for path in planted:
        path.write_bytes(pickle.dumps(_Unpickled(marker)))
    resumed = _resume_to_the_end(folder, env, "r1")
    assert not marker.exists()
    trials = pd.read_parquet(folder / "store" / "sweeps" / "r1" / "trials.parquet")
    assert trials["restored"].any(), (left, resumed.stderr[-2000:])  # trials went on from the killed run's checkpoints


def test_sigterm_stops_the_sweep_resumably(workdir):
    folder, env = workdir
    driver, log_path = _start_slow_sweep(folder, env, "r2")
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=120) != 0
    *progress, last = log_path.read_text().strip().splitlines()
    assert last == "error: sweep r2 interrupted; continue it with: sessrec tune resume r2"
    # Progress lines only: none of Tune's own (a line for each trial not started, "Resume with
    # Tuner.restore"), and the trials Tune stopped are not counted as done or stopped early.
    assert all(line.startswith("trials ") for line in progress), progress
    assert "trials 6/6 done" not in progress[-1] and " 0 stopped early" in progress[-1], progress[-1]
    manifest = json.loads((folder / "store" / "sweeps" / "r2" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert not (folder / "store" / "sweeps" / "r2" / "best").exists()
    # What it did so far can be read before it is resumed: the trials its checkpoints record.
    shown = json.loads(run_cli("results", "show", "r2", "--json", cwd=folder, env=env).stdout)
    assert shown["trials_from"] == "checkpoints"
    states = [trial["status"] for trial in shown["top_trials"]]
    assert states.count("completed") >= 2 and set(states) <= {"completed", "unfinished"}, shown["top_trials"]
    text = run_cli("results", "show", "r2", cwd=folder, env=env).stdout
    assert "as their checkpoints record them" in text and " completed " in text
    assert run_cli("report", "r2", "--to", str(folder / "r2-report"), cwd=folder, env=env).returncode == 0
    assert "interrupted: not finished" in (folder / "r2-report" / "index.html").read_text()
    listed = json.loads(run_cli("results", "list", "--json", cwd=folder, env=env).stdout)
    assert [(row["sweep_id"], row["trials"]) for row in listed["sweeps"] if row["sweep_id"] == "r2"] == [
        ("r2", None)
    ]  # not "0 trials"
    _resume_to_the_end(folder, env, "r2")


def test_resume_of_a_sweep_whose_trials_all_finished_writes_its_results_without_training(workdir):
    # As when the driver dies (or storage goes) after the last trial, while the results are written.
    folder, env = workdir
    spec = folder / "two.yaml"
    spec.write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    assert run_cli("tune", "run", str(spec), "--sweep-id", "w1", "--num-cpus", "2", cwd=folder, env=env).returncode == 0
    sweep = folder / "store" / "sweeps" / "w1"
    before = pd.read_parquet(sweep / "trials.parquet")
    best_before = json.loads((sweep / "best" / "metrics.json").read_text())
    manifest = json.loads((sweep / "manifest.json").read_text())
    (sweep / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    (sweep / "trials.parquet").unlink()
    for path in (sweep / "best").iterdir():
        path.unlink()
    resumed = run_cli("tune", "resume", "w1", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["status"] == "completed"
    assert sorted(path.name for path in (sweep / "tune").iterdir()) == ["run-1"]  # nothing ran again
    after = pd.read_parquet(sweep / "trials.parquet")
    columns = ["trial_id", "point", "state", "epochs_run", "last_recall_at_k", "train_seconds"]
    assert after[columns].to_dict("records") == before[columns].to_dict("records")
    assert [list(curve) for curve in after["curve"]] == [list(curve) for curve in before["curve"]]
    assert json.loads((sweep / "best" / "metrics.json").read_text()) == best_before


def test_a_retried_run_with_resume_existing_continues_its_own_sweep_and_no_other(workdir):
    # A RayJob's retry runs the same entrypoint again, fixed sweep id included.
    folder, env = workdir
    spec = folder / "two.yaml"
    spec.write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    retry = ["tune", "run", str(spec), "--sweep-id", "w1", "--num-cpus", "2", "--resume-existing", "--json"]
    first = run_cli(*retry, cwd=folder, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads(first.stdout)["runs"] == 1
    sweep = folder / "store" / "sweeps" / "w1"
    trials = pd.read_parquet(sweep / "trials.parquet")

    done = run_cli(*retry, cwd=folder, env=env)
    assert done.returncode == 0 and "sweep w1 has already completed: nothing to run" in done.stderr
    assert json.loads(done.stdout)["runs"] == 1 and pd.read_parquet(sweep / "trials.parquet").equals(trials)

    # The attempt before was cut short (its cluster went away): the retry continues it.
    manifest = json.loads((sweep / "manifest.json").read_text())
    (sweep / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    continued = run_cli(*retry, cwd=folder, env=env)
    assert continued.returncode == 0, continued.stderr[-3000:]
    assert "sweep w1 exists (status running): continuing it" in continued.stderr
    assert (json.loads(continued.stdout)["status"], json.loads(continued.stdout)["runs"]) == ("completed", 2)
    assert sorted(path.name for path in (sweep / "tune").iterdir()) == [
        "run-1"
    ]  # its finished trials did not run again

    other = folder / "other.yaml"
    other.write_text(yaml.safe_dump({**TWO_TRIAL_SWEEP, "k": 5}))
    assert_one_line_error(
        run_cli("tune", "run", str(other), "--sweep-id", "w1", "--resume-existing", cwd=folder, env=env),
        "already exists in",
    )
    assert_one_line_error(
        run_cli("tune", "run", str(spec), "--resume-existing", cwd=folder, env=env),
        "--resume-existing needs --sweep-id",
    )
    assert json.loads((sweep / "manifest.json").read_text())["runs"] == 2


def test_time_left_counts_the_epochs_asha_is_expected_to_train_not_trials():
    from sessrec.spec import read_spec
    from sessrec.sweep.estimate import time_left

    spec = read_spec("seed3d")[1]  # 539 trials, ASHA: grace 5, eta 3, 40 epochs
    expected = spec.expected_epochs()[1]
    assert expected < 539 * 40 / 3
    # The first two trials ran all 40 epochs (no rung had anyone to compare with) in 240 s: by
    # trials, 537 more such trials; by epochs, the expected rest at the pace of 3 s an epoch.
    assert time_left(240.0, 80, 80, expected, unstarted=535, first_rung=5) == pytest.approx(3.0 * (expected - 80))
    assert time_left(240.0, 80, 80, expected, 535, 5) < 240.0 / 2 * 537 / 3
    # More trained than expected (ASHA promoted more): each unstarted trial still has its first rung.
    assert time_left(600.0, 200, expected + 50, expected, unstarted=10, first_rung=5) == pytest.approx(3.0 * 10 * 5)
    # A resume's pace counts only what this run trained, not the epochs its trials carried over.
    assert time_left(30.0, 10, 510, 600, unstarted=0, first_rung=5) == pytest.approx(3.0 * 90)
    assert math.isnan(time_left(5.0, 0, 0, expected, 539, 5))


def test_a_sweep_that_cannot_run_is_refused_before_its_claim_and_one_that_breaks_is_marked_failed(
    tmp_path, monkeypatch
):
    from sessrec import pipeline
    from sessrec.core.synth import synth_sessions
    from sessrec.errors import SessrecError
    from sessrec.spec import SweepSpec
    from sessrec.sweep import cluster, driver, search
    from sessrec.sweep.request import SweepRequest

    root = str(tmp_path / "store")
    pipeline.save_dataset(synth_sessions(300, 60, 5), "demo", root, {}, overwrite=False)
    sweeps = tmp_path / "store" / "sweeps"
    try:
        # More CPUs per trial than an embedded Ray has: no trial could ever start (it waited forever).
        greedy = SweepSpec.from_dict({**SPEC, "resources": {"cpus_per_trial": 4}})
        with pytest.raises(SessrecError, match="cpus_per_trial is 4, but the embedded Ray has 1 CPUs"):
            driver.start(greedy, SweepRequest(root, "greedy", num_cpus=1))
        assert not (sweeps / "greedy").exists()  # the id stays free

        def broken_scheduler(*args):
            raise AssertionError("Reduction Factor not valid!")

        monkeypatch.setattr(search, "scheduler", broken_scheduler)
        with pytest.raises(AssertionError):
            driver.start(SweepSpec.from_dict(SPEC), SweepRequest(root, "broken", num_cpus=1))
        manifest = json.loads((sweeps / "broken" / "manifest.json").read_text())
        assert (manifest["status"], manifest["reason"]) == ("failed", "AssertionError: Reduction Factor not valid!")
    finally:
        cluster.disconnect()


def test_asha_after_a_resume_starts_from_the_recorded_rungs():
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from sessrec.spec import SweepSpec
    from sessrec.sweep.checkpoints import RecordedTrial
    from sessrec.sweep.search import scheduler as _scheduler
    from sessrec.sweep.trials import POINT

    spec = SweepSpec.from_dict(
        {**SPEC, "scheduler": {"type": "asha", "max_t": 8, "grace_period": 1, "reduction_factor": 2}}
    )

    def recorded(point: int, values: list[float]) -> RecordedTrial:
        history = [{"epoch": epoch, "recall_at_k": value} for epoch, value in enumerate(values, 1)]
        return RecordedTrial(point, f"old-{point}", {"epochs": 8}, history, f"/ckpt/{point}", False)

    # Four trials finished before the interruption, every epoch at 0.5 + point / 10; two were cut
    # short: point 8 after epoch 4 (a rung: it may have been stopped there, it is decided again),
    # point 9 after epoch 3 (no rung).
    earlier = {p: recorded(p, [0.5 + p / 10] * 8) for p in range(4)} | {
        8: recorded(8, [0.9] * 3 + [0.1]),
        9: recorded(9, [0.9] * 3),
    }
    scheduler = _scheduler(spec, earlier, continued={8, 9})
    scheduler.set_search_properties("recall_at_k", "max")
    trials = {p: SimpleNamespace(trial_id=f"new-{p}", config={POINT: p}) for p in (8, 9, 10)}
    for trial in trials.values():
        scheduler.on_trial_add(None, trial)

    def decide(point: int, epoch: int, value: float) -> str:
        return scheduler.on_trial_result(None, trials[point], {"epoch": epoch, "recall_at_k": value})

    # Point 8's replayed epoch 4 meets the rung of 4 as the finished trials left it (cut-off 0.65).
    assert decide(8, 4, 0.1) == TrialScheduler.STOP
    # Point 9 passed rungs 1 and 2 before: its replayed epoch 3 is not decided again.
    assert decide(9, 3, 0.0) == TrialScheduler.CONTINUE
    assert decide(9, 4, 0.55) == TrialScheduler.STOP and decide(10, 1, 0.95) == TrialScheduler.CONTINUE
    assert decide(10, 2, 0.6) == TrialScheduler.STOP  # a new trial meets the recorded rungs too


def test_resume_of_unknown_sweep(workdir):
    folder, env = workdir
    assert_one_line_error(run_cli("tune", "resume", "nothing-here", cwd=folder, env=env), "no sweep")


def test_optuna_search_and_its_resume(workdir):
    pytest.importorskip("optuna")
    folder, env = workdir
    spec = _write_spec(
        folder,
        search={"method": "optuna", "num_samples": 4, "seed": 1},
        space={
            "vector_size": 16,
            "window": {"randint": [1, 8]},
            "alpha": {"loguniform": [0.01, 0.1]},
            "negative": [5, 10],
        },
        scheduler={"type": "fifo", "max_t": 3},
    )
    result = run_cli("tune", "run", spec, "--sweep-id", "o1", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(line.startswith("trials ") for line in result.stderr.splitlines()), result.stderr  # no Optuna logs
    sweep = folder / "store" / "sweeps" / "o1"
    trials = pd.read_parquet(sweep / "trials.parquet")
    assert len(trials) == 4 and (trials["state"] == "completed").all() and sorted(trials["point"]) == [0, 1, 2, 3]
    assert trials["config.window"].between(1, 7).all() and trials["config.alpha"].between(0.01, 0.1).all()
    assert set(trials["config.negative"]) <= {5, 10}

    # Made unfinished by hand: point 0 loses its last checkpoint (epoch 3; epoch 2's is kept),
    # point 3 every trace, and the results are gone, as if the driver had died before the end.
    manifest = json.loads((sweep / "manifest.json").read_text())
    (sweep / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    (sweep / "trials.parquet").unlink()
    shutil.rmtree(sweep / "best")
    (trial_0,) = (sweep / "tune" / "run-1").glob("point-00000-*")
    shutil.rmtree(max(trial_0.glob("checkpoint_*")))
    (trial_3,) = (sweep / "tune" / "run-1").glob("point-00003-*")
    shutil.rmtree(trial_3)
    resumed = run_cli("tune", "resume", "o1", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = pd.read_parquet(sweep / "trials.parquet").set_index("point")
    assert (
        sorted(after.index) == [0, 1, 2, 3]
        and (after["state"] == "completed").all()
        and (after["epochs_run"] == 3).all()
    )
    # Point 0 went on from epoch 2 and trained epoch 3 again to the same model (exact resume).
    assert after.loc[0, "restored"] and list(after.loc[0, "curve"]) == list(trials.set_index("point").loc[0, "curve"])
    assert after.loc[[1, 2], "trial_id"].tolist() == trials.set_index("point").loc[[1, 2], "trial_id"].tolist()  # kept
    assert not after.loc[3, "restored"] and 1 <= after.loc[3, "config.window"] <= 7  # a new suggestion
    assert sorted(path.name for path in (sweep / "tune" / "run-2").glob("point-*"))[0].startswith("point-00000-")


# ---------------------------------------------------------------------------------------------
# Storage outages: the S3 server stopped in the middle of a sweep


@pytest.fixture
def s3_sweep(tmp_path, monkeypatch):
    """A private S3 server (a test stops it), a dataset in it, and the CLI's environment."""
    from servers import AWS_CONFLICTING_VARS, SeaweedS3

    from sessrec import storage

    with SeaweedS3() as s3:
        for var in AWS_CONFLICTING_VARS:
            monkeypatch.delenv(var, raising=False)
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        storage._s3_client.cache_clear()
        root = f"s3://{s3.bucket}/outage"
        env = local_sweep_env(tmp_path, root)
        synth_dataset(tmp_path, env, sessions=1500, items=300, clusters=10)
        # No retries of a failed trial: a trial that errors because of the outage fails the test.
        spec = _write_spec(
            tmp_path,
            split={"seed": 0, "n": 100},
            space={"vector_size": 8, "window": [2, 3, 4, 5], "negative": 5},
            scheduler={"type": "fifo", "max_t": 8},
            resources={"cpus_per_trial": 1, "max_concurrent_trials": 2, "max_failures": 0},
        )
        yield s3, root, env, spec
        storage._s3_client.cache_clear()


def _start_sweep(folder, env, spec: str, sweep_id: str) -> tuple[subprocess.Popen, "os.PathLike"]:
    log_path = folder / f"{sweep_id}.log"
    driver = subprocess.Popen(
        [*SESSREC, "tune", "run", spec, "--sweep-id", sweep_id, "--num-cpus", "2", "--json"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "w"),
    )
    return driver, log_path


def _wait_for_checkpoints(driver: subprocess.Popen, log_path, root: str, sweep_id: str, count: int) -> None:
    """Until some trial has stored ``count`` checkpoints in S3."""
    from sessrec import storage

    deadline = time.time() + 120
    while True:
        assert driver.poll() is None and time.time() < deadline, log_path.read_text()[-3000:]
        if storage.exists(f"{root}/sweeps/{sweep_id}/spec.yaml"):
            files = storage.walk_files(f"{root}/sweeps/{sweep_id}/tune")
            if any(f"/checkpoint_{count - 1:06d}/" in path for path in files):
                return
        time.sleep(0.2)


def _assert_s3_sweep_complete(folder, env, sweep_id: str) -> None:
    """Complete for good: every planned trial once, each trained to the end, a readable best."""
    from sessrec import storage

    shown = run_cli("results", "show", sweep_id, "--json", cwd=folder, env=env)
    assert shown.returncode == 0, shown.stderr
    manifest = json.loads(shown.stdout)["manifest"]
    assert manifest["status"] == "completed"
    assert manifest["trials"] == {"total": 4, "completed": 4, "stopped_early": 0, "errored": 0}
    trials = pd.read_parquet(
        io.BytesIO(storage.read_bytes(f"{env['SESSREC_STORAGE']}/sweeps/{sweep_id}/trials.parquet"))
    )
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert sorted(trials["config.window"]) == [2, 3, 4, 5]
    assert (trials["state"] == "completed").all() and (trials["epochs_run"] == 8).all()
    assert all(len(curve) == 8 for curve in trials["curve"])
    best = run_cli("results", "best", sweep_id, "--json", cwd=folder, env=env)
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout)["config"]["window"] in (2, 3, 4, 5)
    assert_one_line_error(run_cli("tune", "resume", sweep_id, cwd=folder, env=env), "already completed")


def _assert_rode_out(folder, env, sweep_id: str, returncode: int, log: str) -> None:
    """The driver that started the sweep finished it: it did not stop (exit 1, an 'error:' line,
    the manifest marked interrupted) and no resume ran (each resume adds a run of Tune: the
    manifest's runs and resumed, a tune/run-N folder, trials restored from an earlier run)."""
    from sessrec import storage

    assert returncode == 0 and "error:" not in log, log[-3000:]
    shown = run_cli("results", "show", sweep_id, "--json", cwd=folder, env=env)
    assert shown.returncode == 0, shown.stderr
    manifest = json.loads(shown.stdout)["manifest"]
    assert manifest["runs"] == 1 and "resumed" not in manifest and "interrupted" not in manifest, manifest
    sweep = f"{env['SESSREC_STORAGE']}/sweeps/{sweep_id}"
    # Tune's run folders (pyarrow also leaves a folder marker, the object "tune/" itself).
    assert {path.split("/")[0] for path in storage.walk_files(f"{sweep}/tune") if "/" in path} == {"run-1"}
    trials = pd.read_parquet(io.BytesIO(storage.read_bytes(f"{sweep}/trials.parquet")))
    assert not trials["restored"].any(), trials[["point", "restored"]]


def test_sweep_rides_out_a_short_s3_outage(s3_sweep, tmp_path):
    s3, root, env, spec = s3_sweep
    driver, log_path = _start_sweep(tmp_path, env, spec, "o1")
    _wait_for_checkpoints(driver, log_path, root, "o1", 2)
    s3.stop()  # longer than pyarrow's own retries of connection errors (6 s)
    time.sleep(8)
    s3.start()  # same data, ports and credentials
    driver.wait(timeout=240)
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    # Ridden out, not stopped and resumed: the driver that started the sweep finished it.
    _assert_rode_out(tmp_path, env, "o1", driver.returncode, log)
    _assert_s3_sweep_complete(tmp_path, env, "o1")


def test_long_s3_outage_stops_the_sweep_resumably(s3_sweep, tmp_path):
    s3, root, env, spec = s3_sweep
    # The sweep waits 4 s for its storage (default 120 s), then stops as a whole.
    driver, log_path = _start_sweep(tmp_path, {**env, "SESSREC_STORAGE_PATIENCE": "4"}, spec, "o2")
    _wait_for_checkpoints(driver, log_path, root, "o2", 2)
    s3.stop()
    try:
        assert driver.wait(timeout=90) == 1
    finally:
        s3.start()
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert errors == [log.strip().splitlines()[-1]], log[-3000:]
    assert (
        errors[0] == f"error: sweep o2 stopped: storage {root} unreachable for 4 s; "
        "once it is back, continue it with: sessrec tune resume o2"
    )
    resumed = run_cli("tune", "resume", "o2", "--num-cpus", "2", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_s3_sweep_complete(tmp_path, env, "o2")


# ---------------------------------------------------------------------------------------------
# A trial that raises

# Loaded by every Python process of the sweep (the driver and the embedded Ray's workers inherit
# PYTHONPATH): gensim's training raises for window 3, as a config gensim rejects would.
FAULTY_GENSIM = """
import importlib.abc, sys

class _Patch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "gensim.models.word2vec":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            train = module.Word2Vec.train

            def failing_train(model, *args, **kwargs):
                if model.window == 3:
                    raise ValueError("injected: window 3 is refused")
                return train(model, *args, **kwargs)

            module.Word2Vec.train = failing_train

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Patch())
"""


@pytest.fixture
def faulty_env(workdir):
    folder, env = workdir
    (folder / "fault").mkdir()
    (folder / "fault" / "sitecustomize.py").write_text(FAULTY_GENSIM)
    return folder, {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder / "fault"), env.get("PYTHONPATH")]))}


def _fault_spec(folder, windows: list[int]) -> str:
    # max_failures 1: a failing trial runs twice, each time failing in its first epoch.
    return _write_spec(
        folder,
        space={"vector_size": 8, "window": windows, "negative": 5},
        scheduler={"type": "fifo", "max_t": 2},
        resources={"cpus_per_trial": 1, "max_concurrent_trials": 2, "max_failures": 1},
    )


def test_a_trial_that_raises_is_errored_and_the_sweep_goes_on(faulty_env):
    folder, env = faulty_env
    result = run_cli(
        "tune",
        "run",
        _fault_spec(folder, [2, 3, 4]),
        "--sweep-id",
        "f1",
        "--num-cpus",
        "2",
        "--json",
        cwd=folder,
        env=env,
    )
    # Exit 0: the sweep completed, an errored trial is one of its results; a warning says so.
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "error:" not in result.stderr, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, result.stderr[-3000:]
    assert warnings[0].startswith("warning: trial ") and warnings[0].endswith(
        "errored: ValueError: injected: window 3 is refused"
    )
    assert warnings[1] == "warning: 1 of 3 trials errored; the best is chosen from the others"
    manifest = json.loads(result.stdout)
    assert manifest["status"] == "completed"
    assert manifest["trials"] == {"total": 3, "completed": 2, "stopped_early": 0, "errored": 1}

    trials = pd.read_parquet(folder / "store" / "sweeps" / "f1" / "trials.parquet").set_index("config.window")
    assert trials.loc[3, "state"] == "errored" and trials.loc[3, "error"] == "ValueError: injected: window 3 is refused"
    assert trials.loc[3, "epochs_run"] == 0
    assert (trials.loc[[2, 4], "state"] == "completed").all() and (trials.loc[[2, 4], "epochs_run"] == 2).all()
    assert trials.loc[[2, 4], "error"].isna().all()
    best = json.loads(run_cli("results", "best", "f1", "--json", cwd=folder, env=env).stdout)
    assert best["config"]["window"] in (2, 4)
    assert best["trial_id"] == manifest["best"]["trial_id"] != trials.loc[3, "trial_id"]


def test_a_sweep_whose_trials_all_raise_fails_with_one_line(faulty_env):
    folder, env = faulty_env
    result = run_cli(
        "tune", "run", _fault_spec(folder, [3]), "--sweep-id", "f2", "--num-cpus", "2", "--json", cwd=folder, env=env
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: sweep f2 failed: every trial errored: ValueError: injected: window 3 is refused"], (
        result.stderr[-3000:]
    )
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    sweep = folder / "store" / "sweeps" / "f2"
    assert json.loads((sweep / "manifest.json").read_text())["status"] == "failed"
    assert not (sweep / "best").exists()
    assert_one_line_error(run_cli("results", "best", "f2", cwd=folder, env=env))


def test_the_progress_line_shows_the_best_latest_result_the_sweep_picks_its_best_by(capsys):
    """A trial's peak that its later epochs lost is not the sweep's best (the best trial is chosen
    by its final result), and an errored trial's results do not count."""
    from types import SimpleNamespace

    from sessrec.spec import SweepSpec
    from sessrec.sweep.checkpoints import RecordedTrial
    from sessrec.sweep.progress import SweepProgress as _progress_callback

    spec = SweepSpec.from_dict({**SPEC, "space": {"window": [2, 3, 4]}, "scheduler": {"type": "fifo", "max_t": 3}})
    kept = [
        RecordedTrial(
            0, "k", {"epochs": 2}, [{"epoch": 1, "recall_at_k": 0.2}, {"epoch": 2, "recall_at_k": 0.3}], "ck", False
        )
    ]
    a, b = (
        SimpleNamespace(
            trial_id=name,
            status="RUNNING",
            last_result={},
            config={"epochs": 3},
            error_file=None,
            get_error=lambda: "ValueError: injected",
        )
        for name in "ab"
    )
    progress = _progress_callback(spec, live=False, kept=kept)

    def line() -> str:
        return capsys.readouterr().err.strip().splitlines()[-1]

    progress.on_trial_start(0, [a, b], a)
    assert "best Recall@10 0.3000" in line()  # the finished trial of an earlier run
    progress.on_trial_result(0, [a, b], a, {"recall_at_k": 0.6})
    progress.on_trial_result(0, [a, b], a, {"recall_at_k": 0.5})
    progress.on_trial_result(0, [a, b], b, {"recall_at_k": 0.55})
    a.status = "TERMINATED"
    a.last_result = {"epoch": 3, "done": True}
    progress.on_trial_complete(0, [a, b], a)
    assert "trials 2/3 done" in (text := line()) and "best Recall@10 0.5500" in text  # not a's 0.6 at epoch 1
    b.status = "ERROR"
    progress.on_trial_error(0, [a, b], b)
    assert "best Recall@10 0.5000" in line()


def test_the_live_progress_line_fits_the_terminal(capsys, monkeypatch):
    """Redrawn in place with a carriage return, a line wider than the terminal would wrap and
    leave a stale row behind at every update."""
    from sessrec.spec import SweepSpec
    from sessrec.sweep.progress import SweepProgress as _progress_callback

    spec = SweepSpec.from_dict({**SPEC, "scheduler": {"type": "fifo", "max_t": 3}})
    for columns, short in ((200, False), (60, True), (20, True)):
        monkeypatch.setenv("COLUMNS", str(columns))
        progress = _progress_callback(spec, live=True, kept=[])
        progress.on_experiment_end([])
        (line,) = capsys.readouterr().err.strip("\n").split("\r\033[K")[1:]
        assert len(line) < columns and line.startswith("0/8 done" if short else "trials 0/8 done"), line
