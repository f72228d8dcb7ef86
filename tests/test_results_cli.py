"""`sessrec results promote | delete | prune | show | list | best` on one real tiny sweep, run as a user runs them."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.helpers import SESSREC, TWO_TRIAL_SWEEP, assert_one_line_error, run_cli

pytestmark = pytest.mark.slow


def _env(folder: Path, root: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SESSREC_STORAGE": root,
        "RAY_AUTH_MODE": "disabled",
        "HOME": str(folder),
        "SESSREC_CONFIG": str(folder / "no-settings.yaml"),
    }
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One finished two-trial sweep ``s1`` on dataset ``demo``; tests copy it before changing it."""
    folder = tmp_path_factory.mktemp("results")
    root = folder / "store"
    env = _env(folder, str(root))
    synth = run_cli(
        "data", "synth", "--name", "demo", "--sessions", "600", "--items", "150", "--clusters", "8", cwd=folder, env=env
    )
    assert synth.returncode == 0, synth.stderr
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    ran = run_cli("tune", "run", str(spec), "--sweep-id", "s1", "--num-cpus", "2", cwd=folder, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return SimpleNamespace(folder=folder, root=root, env=env, summary=ran.stdout)


def cli(sweep: SimpleNamespace, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=sweep.folder, env=env or sweep.env)


def ok_json(result: subprocess.CompletedProcess) -> Any:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _copy(sweep: SimpleNamespace, sweep_id: str) -> Path:
    target = sweep.root / "sweeps" / sweep_id
    shutil.copytree(sweep.root / "sweeps" / "s1", target)
    return target


# -- the end of a sweep, list, show, best -------------------------------------------------------


def test_the_end_of_sweep_summary_says_validation_and_prints_test(sweep):
    best_line = next(line for line in sweep.summary.splitlines() if line.startswith("best trial"))
    assert ": validation Recall@10 " in best_line and ", test Recall@10 " in best_line and best_line.endswith(" %")


def test_list_names_the_storage_root_it_read(sweep):
    listed = ok_json(cli(sweep, "results", "list", "--json"))
    assert listed["storage"] == str(sweep.root) and "s1" in [row["sweep_id"] for row in listed["sweeps"]]
    assert 0 <= listed["sweeps"][0]["best"] <= 1  # a fraction in JSON
    text = cli(sweep, "results", "list").stdout
    assert text.splitlines()[0] == f"sweeps in {sweep.root}" and " %" in text


def test_a_trial_has_one_shape_in_show_and_best(sweep):
    shown = ok_json(cli(sweep, "results", "show", "s1", "--all", "--json"))
    best = ok_json(cli(sweep, "results", "best", "s1", "--json"))
    assert len(shown["top_trials"]) == 2
    first = shown["top_trials"][0]
    assert set(first) == {"trial_id", "point", "status", "epochs", "validation", "config"}
    assert first["status"] == "completed" and first["config"]["window"] in (2, 3)
    assert best["trial"] == first  # the best is the first of show's, in the same shape
    assert 0 <= first["validation"]["recall_at_k"] <= 1 and 0 <= best["test"]["recall_at_k"] <= 1
    text = cli(sweep, "results", "show", "s1").stdout
    assert "trials, best first by validation recall_at_k:" in text and text.count(" %") >= 3


def test_show_as_csv_has_a_row_per_trial(sweep):
    result = cli(sweep, "results", "show", "s1", "--all", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 2 and {row["window"] for row in rows} == {"2", "3"}
    assert all(0 <= float(row["val_recall_at_k"]) <= 1 and row["status"] == "completed" for row in rows)
    assert_one_line_error(cli(sweep, "results", "show", "s1", "--format", "xml"), "--format must be text or csv")


# -- promote -----------------------------------------------------------------------------------


def _train(sweep: SimpleNamespace, name: str, *args: str) -> None:
    trained = cli(
        sweep,
        "train",
        "demo",
        "--name",
        name,
        "--n",
        "50",
        "--epochs",
        "1",
        "--alpha",
        "0.0001",
        "--vector-size",
        "8",
        *args,
    )
    assert trained.returncode == 0, trained.stderr


def test_promote_then_recommend_and_serve_the_model(sweep):
    promoted = ok_json(cli(sweep, "results", "promote", "s1", "--name", "fresh", "--json"))
    assert promoted["decision"] == "promoted" and promoted["current"] is None
    metrics = json.loads((sweep.root / "models" / "fresh" / "metrics.json").read_text())
    provenance = metrics["promotion"]
    assert provenance["sweep_id"] == "s1" and provenance["metric"] == "recall_at_k" and provenance["mode"] == "item"
    assert provenance["promoted_at"] and provenance["previous"] is None
    manifest = json.loads((sweep.root / "sweeps" / "s1" / "manifest.json").read_text())
    assert metrics["dataset_sha256"] == manifest["dataset"]["sha256"] and metrics["split"] == {"seed": 0, "n": 50}
    assert metrics["validation"]["recall_at_k"] == manifest["best"]["recall_at_k"] and "recall_at_k" in metrics["test"]
    item = pd.read_parquet(sweep.root / "models" / "fresh" / "embeddings.parquet").iloc[0, 0]
    for how in (
        ["--embeddings", "fresh"],
        ["--model", "fresh"],
        ["--embeddings", "s1"],
        ["--model", "fresh", "--session"],
    ):
        recs = cli(sweep, "recommend", str(item), *how, "-k", "3", "--json")
        assert recs.returncode == 0, (how, recs.stderr)
    # `sessrec serve fresh` loads the promoted model, its provenance from the completion file.
    from sessrec import serving

    served = serving.load(serving.resolve("fresh", str(sweep.root)), str(sweep.root))
    assert served.info["provenance"]["dataset_sha256"] == metrics["dataset_sha256"]
    assert served.info["provenance"]["sweep"] == "s1"
    # A second promotion writes a new completion file: a new version for serve's hot reload.
    ok_json(cli(sweep, "results", "promote", "s1", "--name", "fresh", "--json"))
    assert serving.version_of(serving.read_marker(str(sweep.root / "models" / "fresh"))[1]) != served.version


def test_promote_if_better_both_ways_with_figures_recorded(sweep):
    _train(sweep, "prod")  # one epoch on the sweep's dataset and split
    stored = sweep.root / "models" / "prod" / "metrics.json"
    trained = json.loads(stored.read_text())["validation"]["recall_at_k"]
    first = ok_json(cli(sweep, "results", "promote", "s1", "--name", "prod", "--if-better", "--json"))
    assert first["current"]["validation"] == trained
    assert first["decision"] == ("promoted" if first["new"]["validation"] > trained else "kept")
    # A current model with a lower figure (a weaker one's, written as `train` writes it):
    weak = 0.0
    _train(sweep, "prod", "--overwrite")
    stored.write_text(
        json.dumps({**json.loads(stored.read_text()), "validation": {"recall_at_k": weak, "mrr_at_k": 0.0}})
    )
    better = cli(sweep, "results", "promote", "s1", "--name", "prod", "--if-better")
    assert better.returncode == 0, better.stderr
    assert better.stdout.startswith("promoted sweep s1's best") and " > " in better.stdout, better.stdout
    kept = cli(sweep, "results", "promote", "s1", "--name", "prod", "--if-better", "--json")
    decision = ok_json(kept)
    assert decision["decision"] == "kept" and decision["current"]["validation"] == decision["new"]["validation"]
    text = cli(sweep, "results", "promote", "s1", "--name", "prod", "--if-better")
    assert text.returncode == 0 and text.stdout.startswith("kept the current model prod: validation recall_at_k ")
    assert " ≥ " in text.stdout and " %" in text.stdout
    history = json.loads((sweep.root / "models" / "prod" / "promotions.json").read_text())
    assert [h["decision"] for h in history][1:] == ["promoted", "kept", "kept"]  # train --overwrite kept the file
    assert history[1]["current"]["validation"] == weak and history[1]["new"]["validation"] > weak
    metrics = json.loads((sweep.root / "models" / "prod" / "metrics.json").read_text())
    assert metrics["promotion"]["previous"]["validation"] == weak  # the previous version's figures


def test_promote_over_a_model_of_another_split_needs_force(sweep):
    _train(sweep, "other", "--seed", "1")
    refused = cli(sweep, "results", "promote", "s1", "--name", "other", "--if-better")
    assert_one_line_error(refused, "model 'other'", "another split", "--force")
    forced = ok_json(cli(sweep, "results", "promote", "s1", "--name", "other", "--if-better", "--force", "--json"))
    assert forced["decision"] == "promoted" and forced["forced"] and "split" in forced["not_comparable"]


# -- delete and prune ------------------------------------------------------------------------------


def test_delete_needs_yes_and_removes_the_whole_sweep(sweep):
    folder = _copy(sweep, "gone")
    assert_one_line_error(cli(sweep, "results", "delete", "gone"), "pass --yes")
    assert folder.exists()
    deleted = ok_json(cli(sweep, "results", "delete", "gone", "--yes", "--json"))
    assert deleted["action"] == "deleted" and deleted["bytes_freed"] > 0 and not folder.exists()
    assert "gone" not in [r["sweep_id"] for r in ok_json(cli(sweep, "results", "list", "--json"))["sweeps"]]
    assert_one_line_error(cli(sweep, "results", "delete", "gone", "--yes"), "no sweep 'gone'")


def test_a_running_sweep_is_not_deleted_or_pruned_without_force(sweep):
    from sessrec.sweep.records import Status, SweepPaths, SweepRecord

    folder = _copy(sweep, "busy")
    paths = SweepPaths(str(sweep.root), "busy")
    record = SweepRecord.read(paths)
    SweepRecord(paths, {**record.manifest, "status": Status.INTERRUPTED.value}).update(Status.RUNNING)
    assert_one_line_error(cli(sweep, "results", "delete", "busy", "--yes"), "is running")
    assert_one_line_error(cli(sweep, "results", "prune", "busy", "--yes"), "is running")
    assert (folder / "manifest.json").exists()
    ok_json(cli(sweep, "results", "delete", "busy", "--yes", "--force", "--json"))
    assert not folder.exists()


def test_a_fresh_lease_counts_as_running(sweep):
    folder = _copy(sweep, "leased")  # its manifest says completed
    lease = {
        "command": "sessrec tune resume leased",
        "host": "elsewhere",
        "pid": 7,
        "started": "now",
        "started_s": time.time(),
        "renewed_s": time.time(),
        "expiry_s": 600,
    }
    (folder / "lease.json").write_text(json.dumps(lease))
    assert_one_line_error(cli(sweep, "results", "delete", "leased", "--yes"), "is running", "lease is held by")
    (folder / "lease.json").write_text(json.dumps({**lease, "renewed_s": time.time() - 3600}))  # expired
    ok_json(cli(sweep, "results", "delete", "leased", "--yes", "--json"))
    assert not folder.exists()


def test_prune_keeps_the_results_and_frees_the_checkpoints(sweep):
    folder = _copy(sweep, "lean")
    before = sum(p.stat().st_size for p in (folder / "tune").rglob("*") if p.is_file())
    assert_one_line_error(cli(sweep, "results", "prune", "lean"), "pass --yes")
    pruned = cli(sweep, "results", "delete", "lean", "--prune-checkpoints", "--yes")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned checkpoints of sweep lean") and f"{before:,} bytes" in pruned.stdout
    assert not (folder / "tune").exists()
    for kept in ("manifest.json", "spec.yaml", "trials.parquet", "best/metrics.json", "best/embeddings.parquet"):
        assert (folder / kept).exists(), kept
    assert ok_json(cli(sweep, "results", "best", "lean", "--json"))["trial"]["status"] == "completed"
    assert cli(sweep, "report", "lean").returncode == 0


def test_delete_and_prune_on_s3(sweep, tmp_path, monkeypatch):
    from servers import AWS_CONFLICTING_VARS, SeaweedS3

    from sessrec import storage

    with SeaweedS3() as s3:
        for var in AWS_CONFLICTING_VARS:
            monkeypatch.delenv(var, raising=False)
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        storage._s3_client.cache_clear()
        root = f"s3://{s3.bucket}/results"
        local = sweep.root / "sweeps" / "s1"
        for sweep_id in ("s3-del", "s3-prune"):
            for path in local.rglob("*"):
                if path.is_file():
                    storage.write_bytes(f"{root}/sweeps/{sweep_id}/{path.relative_to(local)}", path.read_bytes())
        env = _env(tmp_path, root)
        tune_files = list(storage.walk_files(f"{root}/sweeps/s3-prune/tune"))
        assert tune_files
        pruned = ok_json(run_cli("results", "prune", "s3-prune", "--yes", "--json", cwd=tmp_path, env=env))
        assert pruned["files"] == len(tune_files) and pruned["bytes_freed"] > 0
        assert not list(storage.walk_files(f"{root}/sweeps/s3-prune/tune"))
        assert ok_json(run_cli("results", "best", "s3-prune", "--json", cwd=tmp_path, env=env))["config"]
        assert_one_line_error(run_cli("results", "delete", "s3-del", cwd=tmp_path, env=env), "pass --yes")
        ok_json(run_cli("results", "delete", "s3-del", "--yes", "--json", cwd=tmp_path, env=env))
        assert not list(storage.walk_files(f"{root}/sweeps/s3-del"))
        listed = ok_json(run_cli("results", "list", "--json", cwd=tmp_path, env=env))
        assert listed["storage"] == root and [r["sweep_id"] for r in listed["sweeps"]] == ["s3-prune"]
        storage._s3_client.cache_clear()


# -- trial ids across a resume --------------------------------------------------------------------


def test_a_trial_keeps_its_id_across_a_resume(sweep):
    synth = cli(sweep, "data", "synth", "--name", "big", "--sessions", "5000", "--items", "500", "--clusters", "20")
    assert synth.returncode == 0, synth.stderr
    spec = sweep.folder / "slow.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                **TWO_TRIAL_SWEEP,
                "name": "slow",
                "dataset": "big",
                "split": {"seed": 0, "n": 100},
                "space": {"vector_size": 16, "window": [2, 3, 4, 5]},
                "scheduler": {"type": "fifo", "max_t": 5},
            }
        )
    )
    log_path = sweep.folder / "slow.log"
    driver = subprocess.Popen(
        [*SESSREC, "tune", "run", str(spec), "--sweep-id", "slow", "--num-cpus", "1"],
        cwd=sweep.folder,
        env=sweep.env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 180
    checkpoints = sweep.root / "sweeps" / "slow" / "tune"
    while not any(checkpoints.rglob("checkpoint_000001/trial.json")) or "trials 1/4 done" not in log_path.read_text():
        assert driver.poll() is None and time.time() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=120) != 0, log_path.read_text()[-2000:]
    before = {
        t["point"]: t["trial_id"]
        for t in ok_json(cli(sweep, "results", "show", "slow", "--all", "--json"))["top_trials"]
    }
    assert before
    resumed = cli(sweep, "tune", "resume", "slow", "--num-cpus", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = {
        t["point"]: t["trial_id"]
        for t in ok_json(cli(sweep, "results", "show", "slow", "--all", "--json"))["top_trials"]
    }
    assert len(after) == 4 and len(set(after.values())) == 4
    assert {point: after[point] for point in before} == before
