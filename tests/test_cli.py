"""The laptop workflow through the real entry point, and its answers to bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_one_line_error, cli_in_process, run_cli


@pytest.fixture
def cli(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSREC_STORAGE", str(tmp_path / "store"))
    monkeypatch.setenv("SESSREC_CONFIG", str(tmp_path / "no-settings.yaml"))
    return lambda *args: cli_in_process(capsys, *args)


def _write_transactions(path, n_customers=60, seed=0):
    """A small table in the UCI Online Retail shape, with cancellations and missing customers."""
    rng = np.random.default_rng(seed)
    rows = []
    for customer in range(n_customers):
        for i in range(int(rng.integers(2, 9))):
            code = f"{10000 + int(rng.integers(0, 40))}"
            invoice = f"C{500000 + i}" if i == 3 else f"{500000 + i}"
            rows.append([invoice, code, "THING", 1, f"12/{1 + i}/2010 08:{i:02d}", 1.0, f"{17000 + customer}.0", "UK"])
    rows.append(["600000", "99999", "NO CUSTOMER", 1, "12/1/2010 08:00", 1.0, "", "UK"])
    pd.DataFrame(
        rows, columns=["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
    ).to_csv(path, index=False, encoding="ISO-8859-1")


def test_laptop_workflow(cli, tmp_path):
    _write_transactions(tmp_path / "tx.csv")
    prepared = cli("data", "prepare", "tx.csv", "--name", "shop", "--json")
    assert prepared.returncode == 0, prepared.stderr
    manifest = prepared.json()
    assert manifest["length_min"] >= 3 and "99999" not in json.dumps(manifest.get("top_items", []))
    assert cli("data", "stats", "shop", "--json").json()["sha256"] == manifest["sha256"]

    assert cli("data", "synth", "--name", "demo", "--json").returncode == 0
    base = cli("baseline", "demo", "--n", "200", "--json").json()
    assert [r["method"] for r in base] == ["popular", "assoc", "transitions"]
    trained = cli("train", "demo", "--name", "m1", "--n", "200", "--epochs", "4", "--vector-size", "16", "--export", "word2vec", "--json")
    assert trained.returncode == 0, trained.stderr
    result = trained.json()
    assert result["split"] == {"seed": 0, "n": 200} and 0 <= result["test"]["recall_at_k"] <= 1
    assert (tmp_path / "store" / "models" / "m1" / "embeddings.txt").exists()
    curve = json.loads((tmp_path / "store" / "models" / "m1" / "curve.json").read_text())
    assert [c["epoch"] for c in curve] == [1, 2, 3, 4]

    recs = cli("recommend", "I000001", "I000002", "--embeddings", "m1", "-k", "3", "--json").json()
    assert list(recs) == ["I000001", "I000002"] and len(recs["I000001"]) == 3
    text = cli("recommend", "I000001", "--embeddings", "store/models/m1/embeddings.txt", "-k", "3", "--json").json()
    assert [r["item"] for r in text["I000001"]] == [r["item"] for r in recs["I000001"]]


def test_existing_outputs_are_not_replaced_without_overwrite(cli, tmp_path):
    assert cli("data", "synth", "--name", "demo", "--sessions", "300").returncode == 0
    before = (tmp_path / "store" / "datasets" / "demo" / "sessions.parquet").read_bytes()
    again = cli("data", "synth", "--name", "demo", "--sessions", "400", "--seed", "9")
    assert_one_line_error(again, "already exists")
    assert (tmp_path / "store" / "datasets" / "demo" / "sessions.parquet").read_bytes() == before
    assert cli("data", "synth", "--name", "demo", "--sessions", "400", "--overwrite").returncode == 0


def test_corrupt_dataset_is_refused(cli, tmp_path):
    assert cli("data", "synth", "--name", "demo", "--sessions", "300").returncode == 0
    other = tmp_path / "other"
    assert cli("--storage", str(other), "data", "synth", "--name", "demo", "--sessions", "300", "--seed", "5").returncode == 0
    # Sessions replaced behind the manifest's back: the hash no longer matches.
    (tmp_path / "store" / "datasets" / "demo" / "sessions.parquet").write_bytes(
        (other / "datasets" / "demo" / "sessions.parquet").read_bytes()
    )
    assert_one_line_error(cli("baseline", "demo"), "corrupt")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["data", "prepare", "missing.csv", "--name", "x"], "not found: missing.csv"),
        (["data", "prepare", "tx.csv", "--name", "x", "--item-col", "Sku"], "Sku"),
        (["data", "prepare", "empty.csv", "--name", "x"], "empty"),
        (["data", "prepare", "bad.jsonl", "--name", "x"], "line 2"),
        (["data", "prepare", "tx.csv", "--name", "Bad/Name"], "invalid dataset name"),
        (["data", "prepare", "tx.txt", "--name", "x"], "cannot tell the format"),
        (["data", "prepare", "tx.csv", "--name", "x", "--encoding", "nope"], "unknown encoding"),
        (["data", "stats", "nothing"], "no dataset 'nothing'"),
        (["baseline", "small", "--n", "1000"], "too few sessions"),
        (["baseline", "small", "--n", "0"], "at least 1"),
        (["baseline", "small", "--n", "10", "-k", "0"], "K must be at least 1"),
        (["baseline", "small", "--n", "10", "--method", "magic"], "unknown baseline"),
        (["train", "small", "--name", "m", "--n", "10", "--vector-size", "0"], "vector_size"),
        (["recommend", "nope", "--embeddings", "missing-model"], "not found"),
        (["tune", "run", "nope.yaml"], "no spec file"),
        (["results", "best", "../x"], "invalid sweep id"),
        (["results", "best", "no-such-sweep"], "no sweep"),
        (["data", "prepare", "tx.csv"], "--name"),
        (["train", "small", "--name", "m", "--epochs", "many"], "valid integer"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_gets_one_line(cli, tmp_path, args, fragment):
    _write_transactions(tmp_path / "tx.csv")
    (tmp_path / "tx.txt").write_text("x")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.jsonl").write_text('["a","b","c"]\n["a",\n')
    cli("data", "synth", "--name", "small", "--sessions", "100", "--items", "50", "--clusters", "5")
    assert_one_line_error(cli(*args), fragment)


def test_unknown_item_is_named(cli):
    cli("data", "synth", "--name", "demo", "--sessions", "300")
    cli("train", "demo", "--name", "m", "--n", "50", "--epochs", "1", "--vector-size", "8")
    assert_one_line_error(cli("recommend", "I000001", "no such item", "--embeddings", "m"), "'no such item'")


def test_subprocess_entry_point_and_help(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("data", "baseline", "train", "recommend", "tune", "results"):
        assert command in result.stdout
    bad = run_cli("--storage", str(tmp_path), "data", "stats", "nothing", cwd=tmp_path)
    assert_one_line_error(bad, "no dataset")
