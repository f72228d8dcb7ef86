import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from gensim.models import KeyedVectors

from sessrec import formats
from sessrec.core.embeddings import Embeddings
from sessrec.errors import SessrecError
from tests.helpers import TWO_TRIAL_SWEEP, assert_one_line_error, cli_in_process, run_cli, sessions

ODD_ITEMS = ["plain", "with space", "ünïcödé €", "日本語", 'comma,quote"', "85123A"]


def test_sessions_parquet_round_trip_keeps_odd_item_codes():
    s = sessions(ODD_ITEMS[:3], ODD_ITEMS[2:], ["x", "x", "y"])
    back = formats.sessions_from_parquet(formats.sessions_to_parquet(s))
    assert back.to_lists() == s.to_lists()
    assert back.content_sha256() == s.content_sha256()


@pytest.mark.slow
def test_a_process_that_read_a_parquet_table_exits_cleanly(tmp_path: Path):
    # pyarrow's dataset scanner (pq.read_table) left a thread behind that aborted the interpreter
    # as it exited, in about half the runs on a table this wide (exit 134, apache/arrow#34314):
    # a command that read a trials table could fail after doing all its work.
    rng = np.random.default_rng(0)
    table = pa.table(
        {**{f"metric_{i}": rng.random(48) for i in range(30)}, "curve": [rng.random(10).tolist() for _ in range(48)]}
    )
    path = tmp_path / "trials.parquet"
    pq.write_table(table, path)
    read_and_exit = (
        "import sys; from sessrec import formats; formats.read_parquet(open(sys.argv[1], 'rb').read(), sys.argv[1])"
    )
    for _ in range(30):
        result = subprocess.run(
            [sys.executable, "-c", read_and_exit, str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr[-2000:]


def test_reading_parquet_leaves_no_arrow_worker_threads(tmp_path: Path):
    # The exit abort above (1 run in 30 under load, "terminate called without an active
    # exception", exit -6) needs an Arrow CPU-pool thread still busy with the read's last
    # references as the interpreter finalizes: one that then waits for the GIL is ended by
    # pthread_exit, whose unwinding through std::thread's noexcept frame calls std::terminate.
    # Reading on the caller's thread only (use_threads=False, also for to_pandas) starts no pool
    # threads, so nothing of a read can outlive the command. Counted in a fresh process: this
    # one's pool may be running already.
    table = pa.table({**{f"metric_{i}": np.arange(48.0) for i in range(30)}, "item": [str(i) for i in range(48)]})
    path = tmp_path / "trials.parquet"
    pq.write_table(table, path)
    count_threads = (
        "import os, sys; from sessrec import formats\n"
        "threads = lambda: len(os.listdir('/proc/self/task'))\n"
        "data = open(sys.argv[1], 'rb').read(); before = threads()\n"
        "formats.read_parquet(data, 'x'); formats.read_transactions(data, 'parquet')\n"
        "print(before, threads())\n"
    )
    command = [sys.executable, "-c", count_threads, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    before, after = map(int, result.stdout.split())
    assert after == before, f"reading Parquet started {after - before} thread(s)"


def test_sessions_jsonl():
    data = "\n".join(json.dumps(x) for x in (["a", "b", "c"], ODD_ITEMS)).encode() + b"\n\n"
    assert formats.sessions_from_jsonl(data).to_lists() == [["a", "b", "c"], ODD_ITEMS]


@pytest.mark.parametrize(
    "data, message",
    [
        (b'["a", "b"]\n["c", \n', "line 2: malformed JSON"),
        (b'["a", 1]\n', "line 1: expected a JSON array of strings"),
        (b'{"a": 1}\n', "line 1: expected a JSON array of strings"),
        (b"\n\n", "no sessions"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_jsonl(data, message):
    with pytest.raises(SessrecError, match=message):
        formats.sessions_from_jsonl(data)


def test_truncated_or_foreign_parquet_is_refused():
    data = formats.sessions_to_parquet(sessions(["a", "b"], ["c", "d"]))
    with pytest.raises(SessrecError, match="not a readable Parquet"):
        formats.sessions_from_parquet(data[: len(data) // 2])
    embeddings = formats.embeddings_to_parquet(Embeddings(np.array(["a"], dtype=object), np.ones((1, 2))))
    with pytest.raises(SessrecError, match="no 'items' column"):
        formats.sessions_from_parquet(embeddings)


def _embeddings() -> Embeddings:
    rng = np.random.default_rng(0)
    keys = np.array([k for k in ODD_ITEMS if " " not in k], dtype=object)
    return Embeddings(keys, rng.normal(size=(len(keys), 5)).astype(np.float32))


def test_embeddings_parquet_round_trip():
    emb = Embeddings(np.array(ODD_ITEMS, dtype=object), np.arange(18, dtype=np.float32).reshape(6, 3))
    back = formats.embeddings_from_parquet(formats.embeddings_to_parquet(emb))
    assert list(back.keys) == ODD_ITEMS
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    assert back.recommend(["with space"], 2)[0][0][0] in ODD_ITEMS


def test_embeddings_with_non_finite_values_or_missing_ids_are_refused():
    vectors = np.ones((2, 3), dtype=np.float32)
    vectors[1, 2] = np.nan
    with pytest.raises(SessrecError, match="emb.parquet: vectors hold NaN or infinite values"):
        formats.embeddings_from_parquet(
            formats.embeddings_to_parquet(Embeddings(np.array(["a", "b"], dtype=object), vectors)), "emb.parquet"
        )
    with pytest.raises(SessrecError, match="holds NaN or infinite values"):
        Embeddings.from_word2vec_text("2 2\na 1 2\nb inf 1\n")
    table = pa.table(
        {"item": pa.array(["a", None]), "vector": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2))}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    with pytest.raises(SessrecError, match="column 'item' must hold text ids without nulls"):
        formats.embeddings_from_parquet(sink.getvalue().to_pybytes(), "emb.parquet")


def test_fetch_leaves_out_only_the_text_format_when_item_ids_have_spaces(tmp_path):
    """The real catalogue has ids such as 'BANK CHARGES': the best model still comes back."""
    from sessrec import results

    best = tmp_path / "sweeps" / "s1" / "best"
    best.mkdir(parents=True)
    manifest = {
        "status": "completed",
        "metric": "recall_at_k",
        "dataset": {"uri": "x", "sha256": "y"},
        "split": {"seed": 0, "n": 5},
    }
    (best.parent / "manifest.json").write_text(json.dumps(manifest))
    (best / "config.json").write_text(json.dumps({"window": 3}))
    (best / "metrics.json").write_text(json.dumps({"trial_id": "t", "validation": {}, "test": {}}))
    embeddings = Embeddings(np.array(["BANK CHARGES", "85123A"], dtype=object), np.ones((2, 3), dtype=np.float32))
    (best / "embeddings.parquet").write_bytes(formats.embeddings_to_parquet(embeddings))
    written, left_out = results.fetch(str(tmp_path), "s1", str(tmp_path / "got"))
    assert sorted(Path(path).name for path in written) == ["config.json", "embeddings.parquet", "metrics.json"]
    assert left_out.startswith("embeddings.txt left out: 1 item id(s) contain whitespace (e.g. 'BANK CHARGES')")
    assert json.loads((tmp_path / "got" / "metrics.json").read_text())["split"] == {"seed": 0, "n": 5}


def test_word2vec_text_is_read_by_gensim(tmp_path):
    emb = _embeddings()
    path = tmp_path / "emb.txt"
    path.write_text(emb.to_word2vec_text(), encoding="utf-8")
    kv = KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert list(kv.index_to_key) == list(emb.keys)
    np.testing.assert_array_equal(kv.vectors, emb.vectors)
    back = Embeddings.from_word2vec_text(path.read_text(encoding="utf-8"))
    np.testing.assert_array_equal(back.vectors, emb.vectors)


def test_word2vec_text_refuses_whitespace_and_truncation():
    with pytest.raises(SessrecError, match="whitespace"):
        Embeddings(np.array(["a b"], dtype=object), np.ones((1, 2))).to_word2vec_text()
    text = _embeddings().to_word2vec_text()
    with pytest.raises(SessrecError, match="truncated"):
        Embeddings.from_word2vec_text("\n".join(text.splitlines()[:-1]))


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"a,b\n1,2\n3,4,5,6\n", "not a readable CSV"), (b"caf\xe9\n1\n", "not valid utf-8")],
)
def test_bad_transactions(data, message):
    encoding = "utf-8" if b"\xe9" in data else "ISO-8859-1"
    with pytest.raises(SessrecError, match=message):
        formats.read_transactions(data, "csv", encoding)


def test_transactions_keep_codes_as_text():
    table = formats.read_transactions(b"StockCode,CustomerID\n00123,17850.0\n85123A,\n", "csv")
    assert list(table["StockCode"]) == ["00123", "85123A"]
    assert table["CustomerID"].isna().tolist() == [False, True]


def test_unknown_encoding():
    with pytest.raises(SessrecError, match="unknown encoding"):
        formats.read_transactions(b"a\n1\n", "csv", "klingon")


# ---------------------------------------------------------------------------------------------
# Every stored file a command reads back, truncated or replaced with garbage, through the CLI.

# stored file (under the storage root, or the work folder for the settings file) -> a command that reads it
READERS = {
    "datasets/demo/manifest.json": ["data", "stats", "demo"],
    "datasets/demo/sessions.parquet": ["baseline", "demo", "--n", "20", "--method", "popular"],
    "models/m/embeddings.parquet": ["recommend", "I000001", "--embeddings", "m"],
    "models/m/embeddings.txt": ["recommend", "I000001", "--embeddings", "{store}/models/m/embeddings.txt"],
    "sweeps/s1/manifest.json": ["results", "show", "s1"],
    "sweeps/s1/trials.parquet": ["results", "show", "s1"],
    "sweeps/s1/best/config.json": ["results", "best", "s1"],
    "sweeps/s1/best/metrics.json": ["results", "best", "s1"],
    "sweeps/s1/best/embeddings.parquet": ["results", "fetch", "s1", "--to", "got"],
    "../settings.yaml": ["results", "list"],
}


def _cli_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "SESSREC_"))}
    env.update(
        HOME=str(folder),
        SESSREC_STORAGE=str(folder / "store"),
        SESSREC_CONFIG=str(folder / "settings.yaml"),
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
    )
    return env


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A work folder with a settings file and a storage root holding one of each stored file."""
    folder = tmp_path_factory.mktemp("stored")
    (folder / "settings.yaml").write_text(yaml.safe_dump({"storage": str(folder / "store")}))
    (folder / "sweep.yaml").write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    for args in (
        ["data", "synth", "--name", "demo", "--sessions", "400", "--items", "150", "--clusters", "5"],
        ["train", "demo", "--name", "m", "--n", "20", "--epochs", "1", "--vector-size", "8", "--export", "word2vec"],
        ["tune", "run", "sweep.yaml", "--sweep-id", "s1", "--num-cpus", "2"],
    ):
        result = run_cli(*args, cwd=folder, env=_cli_env(folder))
        assert result.returncode == 0, result.stderr[-3000:]
    return folder


def _garbage(data: bytes) -> bytes:
    return np.random.default_rng(len(data)).integers(0, 256, max(len(data), 64), dtype=np.uint8).tobytes()


# Half a settings file is most often still valid YAML (with a shorter value): garbage only.
DAMAGES = [(f, d) for f in READERS for d in ("truncated", "garbage") if (f, d) != ("../settings.yaml", "truncated")]


@pytest.mark.slow
@pytest.mark.parametrize("stored_file, damage", DAMAGES)
def test_commands_refuse_a_damaged_stored_file(
    stored: Path, tmp_path: Path, capsys, monkeypatch, stored_file: str, damage: str
):
    shutil.copytree(stored, tmp_path, dirs_exist_ok=True)
    env = _cli_env(tmp_path)
    args = [arg.format(store=tmp_path / "store") for arg in READERS[stored_file]]
    monkeypatch.chdir(tmp_path)
    for var in ("HOME", "SESSREC_STORAGE", "SESSREC_CONFIG"):
        monkeypatch.setenv(var, env[var])
    intact = cli_in_process(capsys, *args)
    assert intact.returncode == 0, intact.stderr  # the command reads this file when it is whole
    shutil.rmtree(tmp_path / "got", ignore_errors=True)
    path = (tmp_path / "store" / stored_file).resolve()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else _garbage(data))
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert_one_line_error(result, str(path.relative_to(tmp_path)))
    assert not (tmp_path / "got").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_resume_refuses_a_damaged_sweep_spec_naming_it(tmp_path: Path, damage: str):
    from sessrec.spec import builtin_spec_text
    from sessrec.sweep import records

    folder = tmp_path / "sweeps" / "s1"
    folder.mkdir(parents=True)
    text = builtin_spec_text("tiny").encode()
    (folder / "spec.yaml").write_bytes(text[: len(text) // 2] if damage == "truncated" else _garbage(text))
    (folder / "manifest.json").write_text('{"status": "interrupted"}')
    with pytest.raises(SessrecError, match=re.escape(str(folder / "spec.yaml"))):
        records.load_sweep(str(tmp_path), "s1")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "garbage", "mistyped"])
def test_results_list_shows_a_damaged_manifest_instead_of_hiding_it(stored: Path, tmp_path: Path, damage: str):
    shutil.copytree(stored, tmp_path, dirs_exist_ok=True)
    env = _cli_env(tmp_path)
    manifest = tmp_path / "store" / "sweeps" / "s1" / "manifest.json"
    data = manifest.read_bytes()
    if damage == "mistyped":  # valid JSON, but not the types sessrec reads
        manifest.write_text(json.dumps({**json.loads(data), "trials": "many", "metric": 7}))
    else:
        manifest.write_bytes(data[: len(data) // 2] if damage == "truncated" else _garbage(data))
    listed = run_cli("results", "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["sweeps"]
    assert row["sweep_id"] == "s1" and row["status"] == "damaged" and str(manifest) in row["problem"]
    human = run_cli("results", "list", cwd=tmp_path, env=env)
    assert "damaged" in human.stdout and str(manifest) in human.stdout
    assert_one_line_error(run_cli("results", "show", "s1", cwd=tmp_path, env=env), str(manifest))


def _interrupted_copy(stored: Path, tmp_path: Path) -> Path:
    """A copy of the stored sweep as a killed driver would leave it; its folder."""
    shutil.copytree(stored, tmp_path, dirs_exist_ok=True)
    sweep = tmp_path / "store" / "sweeps" / "s1"
    manifest = json.loads((sweep / "manifest.json").read_text())
    (sweep / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    return sweep


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["not a record", "no weights size", "epochs not numbers"])
def test_resume_refuses_a_damaged_trial_record_naming_it(stored: Path, tmp_path: Path, damage: str):
    env = _cli_env(tmp_path)
    sweep = _interrupted_copy(stored, tmp_path)
    record = max(sweep.glob("tune/run-1/point-00000-*/checkpoint_*/trial.json"))
    data = json.loads(record.read_bytes())
    damaged = {
        "not a record": {"history": 3},
        "no weights size": {key: value for key, value in data.items() if key != "state_bytes"},
        "epochs not numbers": {**data, "history": [{"epoch": "last"}]},
    }[damage]
    record.write_bytes(json.dumps(damaged).encode())
    before = {path: path.read_bytes() for path in sweep.rglob("*") if path.is_file()}
    result = run_cli("tune", "resume", "s1", "--num-cpus", "2", cwd=tmp_path, env=env)
    assert_one_line_error(result, str(record))
    assert {path: path.read_bytes() for path in sweep.rglob("*") if path.is_file()} == before  # nothing changed


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["trial.json truncated", "trial.json garbage", "state.npz truncated"])
def test_resume_goes_on_from_the_checkpoint_before_one_a_killed_run_left_part_written(
    stored: Path, tmp_path: Path, damage: str
):
    # A driver killed while its trial stored a checkpoint in a local folder leaves short files.
    env = _cli_env(tmp_path)
    sweep = _interrupted_copy(stored, tmp_path)
    *_, _, newest = sorted(sweep.glob("tune/run-1/point-00000-*/checkpoint_*"))  # and one before it
    damaged = newest / damage.split()[0]
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2] if damage.endswith("truncated") else _garbage(data))
    run_1 = {path: path.read_bytes() for path in (sweep / "tune" / "run-1").rglob("*") if path.is_file()}
    result = run_cli("tune", "resume", "s1", "--num-cpus", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    reason = (
        f"its state.npz has {len(data) // 2} of {len(data)} bytes"
        if damage == "state.npz truncated"
        else "its trial.json is not whole JSON"
    )
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {newest} was not stored whole ({reason}); its trial goes on from the checkpoint before it"
    ]
    trials = pd.read_parquet(sweep / "trials.parquet").set_index("point")
    assert trials.loc[0, "restored"] and not trials.loc[1, "restored"]  # only the damaged point trained again
    assert (trials["state"] == "completed").all() and (trials["epochs_run"] == trials["config.epochs"]).all()
    assert {path: path.read_bytes() for path in (sweep / "tune" / "run-1").rglob("*") if path.is_file()} == run_1
