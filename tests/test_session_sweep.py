"""One sweep tunes it all (issue 20): the recommender and its parameters in the spec's space,
session-mode trials, the best stored as a recommender and fetched back."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from sessrec.errors import SessrecError
from sessrec.recommender_space import recommender
from sessrec.spec import SweepSpec, read_spec
from tests.helpers import local_sweep_env, run_cli, synth_dataset

SPEC: dict[str, Any] = {
    "name": "s",
    "dataset": "demo",
    "mode": "session",
    "split": {"seed": 0, "n": 150},
    "search": {"method": "grid"},
    "space": {
        "model": ["sr", "sr+repeat", "w2v_session+transitions+repeat"],
        "last_n": 3,
        "decay": 0.3,
        "repeat_weight": 0.2,
        "vector_size": 16,
        "alpha": 0.05,
    },
    "scheduler": {"type": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 2},
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2, "max_failures": 0},
}


@pytest.fixture(scope="module")
def session_sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("session-sweep")
    env = local_sweep_env(folder)
    synth_dataset(folder, env, sessions=800, items=200, clusters=10)
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    result = run_cli("tune", "run", str(spec), "--sweep-id", "s1", "--num-cpus", "2", "--json", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = folder / "store" / "sweeps" / "s1"
    trials = pd.read_parquet(sweep / "trials.parquet").set_index("config.model")
    return SimpleNamespace(folder=folder, env=env, manifest=json.loads(result.stdout), sweep=sweep, trials=trials)


@pytest.mark.slow
def test_count_only_trials_fit_once_report_once_and_train_no_word2vec(session_sweep: SimpleNamespace) -> None:
    for model in ("sr", "sr+repeat"):
        row = session_sweep.trials.loc[model]
        assert len(row["curve"]) == 1 and row["state"] == "completed" and row["epochs_run"] == 3, row
    # Their checkpoints hold no word2vec weights.
    for state in session_sweep.sweep.glob("tune/**/state.npz"):
        record = json.loads((state.parent / "trial.json").read_text())
        if record["config"]["model"] != "w2v_session+transitions+repeat":
            with np.load(io.BytesIO(state.read_bytes())) as npz:
                assert npz.files == []


@pytest.mark.slow
def test_a_hybrid_with_word2vec_reports_every_epoch(session_sweep: SimpleNamespace) -> None:
    row = session_sweep.trials.loc["w2v_session+transitions+repeat"]
    assert len(row["curve"]) == 3 and row["epochs_run"] == 3
    assert all(0 < value <= 1 for value in row["curve"])


@pytest.mark.slow
def test_the_manifest_trials_and_best_name_the_mode(session_sweep: SimpleNamespace) -> None:
    assert session_sweep.manifest["mode"] == "session" and session_sweep.manifest["exclude"] == "query"
    assert set(session_sweep.trials["mode"]) == {"session"} and set(session_sweep.trials["exclude"]) == {"query"}
    best = run_cli("results", "best", "s1", "--json", cwd=session_sweep.folder, env=session_sweep.env)
    assert best.returncode == 0, best.stderr
    found = json.loads(best.stdout)
    assert found["model"] in SPEC["space"]["model"] and found["config"]["model"] == found["model"]
    assert found["test"]["mode"] == "session" and found["validation"]["mode"] == "session"
    assert found["recommender"]["model"] in ("sr", "hybrid")
    text = run_cli("results", "best", "s1", cwd=session_sweep.folder, env=session_sweep.env).stdout
    assert "model" in text and found["model"] in text


@pytest.mark.slow
def test_the_best_is_a_stored_recommender_fetch_brings_it_back_and_it_recommends(
    session_sweep: SimpleNamespace,
) -> None:
    folder, env = session_sweep.folder, session_sweep.env
    assert (session_sweep.sweep / "best" / "recommender.json").is_file()
    got = folder / "got"
    fetched = run_cli("results", "fetch", "s1", "--to", str(got), cwd=folder, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert {"recommender.npz", "recommender.json", "config.json", "metrics.json"} <= {p.name for p in got.iterdir()}
    model_dir = folder / "store" / "models" / "best-s1"
    model_dir.mkdir(parents=True)
    for name in ("recommender.npz", "recommender.json"):
        shutil.copy(got / name, model_dir / name)
    recs = run_cli("recommend", "--model", "best-s1", "--session", "I000001", "I000002", "--json", cwd=folder, env=env)
    assert recs.returncode == 0, recs.stderr
    assert len(json.loads(recs.stdout)["recommendations"]) == 10


def _error(space: dict[str, Any], **top: Any) -> str:
    with pytest.raises(SessrecError) as caught:
        SweepSpec.from_dict({"mode": "session", **top, "space": space})
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("space", "top", "fragments"),
    [
        ({"model": "sr", "vector_size": 16}, {}, ("space.vector_size", "no model", "sr")),
        ({"model": "sr", "repeat_weight": 0.2}, {}, ("space.repeat_weight", "no model")),
        ({"model": "sr+repeat", "repeat_weight": -0.2}, {}, ("space.repeat_weight", "-0.2")),
        ({"model": "sr+repeat", "repeat_weight": math.nan}, {}, ("space.repeat_weight", "nan")),
        ({"model": "knn"}, {}, ("space.model", "unknown recommender 'knn'")),
        ({"model": 3}, {}, ("space.model", "name")),
        ({"model": "sr", "weighting": "cubic"}, {}, ("space.weighting", "gap, linear, ones", "cubic")),
        ({"model": "transitions", "last_n": 200}, {}, ("space.last_n", "[1, 100]")),
        ({"model": "sr+repeat", "sr_weight": 0, "repeat_weight": 0}, {}, ("space.model", "weights are all 0")),
        ({"model": "sr+repeat"}, {"mode": "item"}, ("space.model", "mode session")),
        ({"vector_size": 16}, {"mode": "item", "exclude": "session"}, ("exclude session", "mode session")),
    ],
)
def test_bad_recommender_spaces_are_one_line_errors(
    space: dict[str, Any], top: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    message = _error(space, **top)
    for fragment in fragments:
        assert fragment in message, message


def test_flat_names_resolve_to_the_registry_parameters() -> None:
    spec = SweepSpec.from_dict(
        {
            "mode": "session",
            "space": {
                "model": "w2v_session+transitions+repeat",
                "last_n": 3,
                "transitions_last_n": 2,
                "decay": 0.5,
                "repeat_weight": 0.2,
                "vector_size": 16,
            },
        }
    )
    name, params = recommender(spec.plan()[0])
    assert name == "hybrid"
    w2v, transitions, repeat = params["components"]
    assert (w2v["model"], w2v["last_n"], w2v["decay"], w2v["vector_size"], w2v["weight"]) == (
        "w2v_session",
        3,
        0.5,
        16,
        1.0,
    )
    assert (transitions["last_n"], transitions["decay"]) == (2, 0.5)
    assert repeat == {"model": "repeat", "weight": 0.2, "normalise": "none"}  # log counts are added raw
    assert (w2v["normalise"], transitions["normalise"]) == ("max", "max")
    bare = SweepSpec.from_dict({"mode": "session", "space": {"model": "hybrid", "sr_weight": 1, "repeat_weight": 0.3}})
    assert [c["model"] for c in recommender(bare.plan()[0])[1]["components"]] == ["sr", "repeat"]


def test_item_specs_are_unchanged_and_the_builtin_session_spec_parses() -> None:
    for name in ("tiny", "seed3d", "reference", "retail"):
        spec = read_spec(name)[1]
        assert (spec.mode, spec.exclude, spec.uses_recommenders) == ("item", "query", False)
        assert "mode" not in spec.raw and "model" not in spec.space
    session = read_spec("session")[1]
    assert session.mode == "session" and session.space["model"].values == ("sr+repeat+w2v_session",)


def test_the_spec_schema_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    assert read_spec(str(path))[1].space["model"].values == tuple(SPEC["space"]["model"])
