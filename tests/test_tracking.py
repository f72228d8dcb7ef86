"""MLflow tracking (``tune run --mlflow URI``, ``sessrec/tracking.py``) against a real ``mlflow server``
on 127.0.0.1: sweeps run through the CLI, then everything is read back with MLflow's own client."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from servers import MlflowServer, free_port

from tests.helpers import TWO_TRIAL_SWEEP, local_sweep_env, run_cli, synth_dataset

SWEEP = {**TWO_TRIAL_SWEEP, "name": "tracked"}


@pytest.fixture(scope="module")
def mlflow_server() -> Iterator[MlflowServer]:
    pytest.importorskip("mlflow")
    with MlflowServer() as server:
        yield server


@pytest.fixture
def sweep_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with a small synthetic dataset, local storage and the spec; Ray embedded, auth off."""
    env = local_sweep_env(tmp_path, SESSREC_CONFIG=str(tmp_path / "no-settings.yaml"))
    env.pop("MLFLOW_TRACKING_URI", None)
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    synth_dataset(tmp_path, env, sessions=400, items=120, clusters=8)
    return tmp_path, env


@pytest.mark.slow
def test_a_sweep_is_logged_run_by_run_with_the_best_model(mlflow_server: MlflowServer, sweep_env, tmp_path: Path):
    folder, env = sweep_env
    result = run_cli(
        "tune",
        "run",
        "sweep.yaml",
        "--sweep-id",
        "s1",
        "--num-cpus",
        "2",
        "--mlflow",
        mlflow_server.uri,
        "--json",
        cwd=folder,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: MLflow" not in result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["status"] == "completed"

    client = mlflow_server.client()
    experiment = client.get_experiment_by_name("tracked")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`sessrec.sweep_id` = 's1'")
    assert len(runs) == 2  # one per trial
    assert sorted(int(run.data.tags["sessrec.point"]) for run in runs) == [0, 1]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["sessrec.state"] == "completed"
        assert run.data.params["vector_size"] == "8"
        assert run.data.params["window"] in ("2", "3")
        for name in ("val_recall_at_k", "val_mrr_at_k"):
            history = client.get_metric_history(run.info.run_id, name)
            assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]  # step = epoch
            assert all(0.0 <= m.value <= 1.0 for m in history)

    best = [run for run in runs if run.data.tags.get("sessrec.best") == "true"]
    assert len(best) == 1
    assert best[0].data.tags["sessrec.trial_id"] == manifest["best"]["trial_id"]
    stored = json.loads((folder / "store" / "sweeps" / "s1" / "best" / "metrics.json").read_text())
    assert best[0].data.metrics["test_recall_at_k"] == pytest.approx(stored["test"]["recall_at_k"])
    assert best[0].data.metrics["test_mrr_at_k"] == pytest.approx(stored["test"]["mrr_at_k"])
    artifacts = {Path(a.path).name for a in client.list_artifacts(best[0].info.run_id, "best")}
    assert {"embeddings.parquet", "config.json", "metrics.json"} <= artifacts
    local = client.download_artifacts(best[0].info.run_id, "best/embeddings.parquet", str(tmp_path))
    assert Path(local).read_bytes() == (folder / "store" / "sweeps" / "s1" / "best" / "embeddings.parquet").read_bytes()


@pytest.mark.slow
def test_an_unreachable_tracker_gets_one_warning_and_the_sweep_goes_on(sweep_env):
    folder, env = sweep_env
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**env, "MLFLOW_TRACKING_URI": closed}  # the environment variable, this time
    result = run_cli("tune", "run", "sweep.yaml", "--sweep-id", "s2", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["status"] == "completed"
    warnings = [line for line in result.stderr.splitlines() if "MLflow" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert warnings[0].startswith("warning: MLflow tracking at " + closed) and "the sweep goes on" in warnings[0]


def test_without_mlflow_installed_the_option_says_how_to_install_it(tmp_path: Path):
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    code = (
        "import sys; sys.modules['mlflow'] = None; from sessrec.cli import run; "
        "sys.argv = ['sessrec', 'tune', 'run', 'sweep.yaml', '--mlflow', 'http://127.0.0.1:9']; sys.exit(run())"
    )
    env = {**os.environ, "SESSREC_STORAGE": str(tmp_path / "store"), "SESSREC_CONFIG": str(tmp_path / "none.yaml")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "pip install 'sessrec[mlflow]'" in lines[0]
    assert not (tmp_path / "store" / "sweeps").exists()


def test_the_tracker_setting_comes_from_the_settings_file_or_the_environment(tmp_path: Path, monkeypatch):
    from sessrec.settings import Settings

    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("mlflow_tracking_uri: http://tracker.example:5000\n")
    monkeypatch.setenv("SESSREC_CONFIG", str(settings_file))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Settings.load(storage=str(tmp_path)).mlflow_tracking_uri == "http://tracker.example:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://other:5000")
    assert Settings.load(storage=str(tmp_path)).mlflow_tracking_uri == "http://other:5000"


def test_the_tune_callback_pickles_without_its_client(tmp_path: Path):
    from sessrec import tracking

    tracker = tracking.Tracker("http://127.0.0.1:9", str(tmp_path), "s1", "tracked")
    tracker._client = object()  # a live client is not picklable; it is made again where needed
    copy = pickle.loads(pickle.dumps(tracker.callback()))
    assert copy.tracker.sweep_id == "s1" and copy.tracker._client is None
