"""Item names through the CLI as a user runs it: `data prepare` keeps a description column
(--name-col, default Description), `recommend` shows names beside ids (text, --json, JSONL and
Parquet out), models find them through the dataset they record, and bad input is one line."""

import json
import shutil

import pandas as pd
import pytest

from sessrec import pipeline
from tests.helpers import assert_one_line_error

COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]


def _write_transactions(path, names=True, column="Description"):
    """40 customers over 8 items in the UCI shape. Item 10000 is spelled two ways, 'MUG' most often
    but 'BIG MUG' first; 10001 two ways as often, 'TEACUP' first; 10007's description is blank."""
    spellings = {"10000": ["BIG MUG", "MUG", "MUG ", "MUG"], "10001": ["TEACUP", "CUP"], "10007": [" "]}
    seen: dict[str, int] = {}
    rows = []
    for customer in range(40):
        for i in range(4):
            code = f"{10000 + (customer + i) % 8}"
            options = spellings.get(code, [f"THING {code}"])
            name = options[seen.get(code, 0) % len(options)]
            seen[code] = seen.get(code, 0) + 1
            rows.append(
                [f"{500000 + i}", code, name, 1, f"12/{1 + i}/2010 08:{i:02d}", 1.0, f"{17000 + customer}.0", "UK"]
            )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if column != "Description":
        frame = frame.rename(columns={"Description": column})
    if not names:
        frame = frame.drop(columns=[column])
    frame.to_csv(path, index=False, encoding="ISO-8859-1")
    return frame


def _expected_names(frame, column="Description"):
    """Most frequent name per item, ties: first seen in the file."""
    expected = {}
    for code, group in frame.groupby("StockCode", sort=False):
        names = group[column].str.strip()
        names = names[names != ""]
        if names.empty:
            continue
        counts = names.value_counts(sort=False)
        top = counts.max()
        expected[code] = next(name for name in names if counts[name] == top)
    return expected


@pytest.fixture
def shop(cli, tmp_path):
    frame = _write_transactions(tmp_path / "tx.csv")
    prepared = cli("data", "prepare", "tx.csv", "--name", "shop", "--json")
    assert prepared.returncode == 0, prepared.stderr
    return cli, frame, prepared.json()


def test_prepare_keeps_the_most_frequent_description_of_each_item(shop, tmp_path):
    cli, frame, manifest = shop
    stored = pd.read_parquet(tmp_path / "store" / "datasets" / "shop" / "names.parquet")
    names = dict(zip(stored["item"], stored["name"], strict=True))
    expected = _expected_names(frame)
    # Blanks and surrounding spaces go; the item without any description has no name.
    assert names == expected and "10007" not in names
    assert names["10000"] == "MUG" and names["10001"] == "TEACUP"  # most frequent; a tie: the first seen
    assert manifest["names"]["column"] == "Description" and manifest["names"]["items"] == len(expected)
    assert manifest["source"]["name_col"] == "Description"
    text = cli("data", "stats", "shop").stdout
    assert f"names     {len(expected)} items, from column Description" in text

    # Names never change the sessions: the same table without them gives the same sha256.
    plain = cli("data", "prepare", "tx.csv", "--name", "plain", "--no-names", "--json").json()
    assert plain["sha256"] == manifest["sha256"] and plain["names"] is None
    assert not (tmp_path / "store" / "datasets" / "plain" / "names.parquet").exists()
    assert "names" not in cli("data", "stats", "plain").stdout


def test_recommend_shows_names_beside_ids(shop, tmp_path):
    cli, frame, _ = shop
    names = _expected_names(frame)
    assert cli("fit", "shop", "--model", "sr", "--name", "sr1", "--n", "5").returncode == 0

    one = cli("recommend", "--session", "10003", "10004", "--model", "sr1", "-k", "8", "--json").json()
    recs = one["recommendations"]
    assert recs and all(r["name"] == names.get(r["item"]) for r in recs)
    assert any(r["item"] == "10007" and r["name"] is None for r in recs)  # in the sessions, nameless
    text = cli("recommend", "--session", "10003", "10004", "--model", "sr1", "-k", "8").stdout.splitlines()
    for r, line in zip(recs, text[1:], strict=True):
        assert line.split()[0] == r["item"]
        assert line.rstrip().endswith(r["name"]) if r["name"] else len(line.split()) == 2

    item = cli("recommend", "10003", "--model", "sr1", "-k", "3", "--json").json()
    assert all(r["name"] == names.get(r["item"]) for r in item["recommendations"]["10003"])
    assert cli("recommend", "10003", "--model", "sr1", "-k", "3").stdout.startswith(f"10003 ({names['10003']})")
    # A copy of the model's folder (as `results fetch` leaves one) finds them through the same record.
    copy = shutil.copytree(tmp_path / "store" / "models" / "sr1", tmp_path / "fetched")
    from_copy = cli("recommend", "--session", "10003", "10004", "--model", str(copy), "-k", "8", "--json").json()
    assert from_copy["recommendations"] == recs

    (tmp_path / "in.jsonl").write_text(json.dumps(["10003", "10004"]) + "\n" + json.dumps(["gone"]) + "\n")
    for out in ("out.jsonl", "out.parquet"):
        assert cli("recommend", "--sessions-file", "in.jsonl", "--model", "sr1", "--to", out, "-k", "3").returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[0]["names"] == [names.get(i) for i in rows[0]["items"]] and rows[1]["names"] == []
    table = pd.read_parquet(tmp_path / "out.parquet")
    assert list(table["names"][0]) == rows[0]["names"]

    # A word2vec model finds them the same way, in item and session mode.
    trained = cli("train", "shop", "--name", "w", "--n", "5", "--epochs", "1", "--vector-size", "4", "--json")
    assert trained.returncode == 0, trained.stderr
    by_item = cli("recommend", "10003", "--embeddings", "w", "-k", "3", "--json").json()
    assert all(r["name"] == names.get(r["item"]) for r in by_item["10003"])
    assert cli("recommend", "10003", "--embeddings", "w", "-k", "3").stdout.startswith(f"10003 ({names['10003']}):")
    w2v_session = cli("recommend", "--session", "10003", "--model", "w", "-k", "3", "--json").json()
    assert all(r["name"] == names.get(r["item"]) for r in w2v_session["recommendations"])
    # The embeddings file of a model folder finds them through the folder's record; one on its own
    # records no dataset: no names.
    inside = str(tmp_path / "store" / "models" / "w" / "embeddings.parquet")
    in_folder = cli("recommend", "10003", "--embeddings", inside, "--json").json()["10003"]
    assert all(r["name"] == names.get(r["item"]) for r in in_folder)
    uri = str(shutil.copy(inside, tmp_path / "loose.parquet"))
    assert all(r["name"] is None for r in cli("recommend", "10003", "--embeddings", uri, "--json").json()["10003"])


def test_models_find_names_through_the_dataset_they_record(shop, tmp_path):
    cli, frame, _ = shop
    names = _expected_names(frame)
    assert cli("fit", "shop", "--model", "sr", "--name", "sr1", "--n", "5").returncode == 0

    def shown():
        out = cli("recommend", "--session", "10003", "--model", "sr1", "-k", "3", "--json")
        assert out.returncode == 0, out.stderr
        return {r["item"]: r["name"] for r in out.json()["recommendations"]}

    assert shown() == {item: names.get(item) for item in shown()}
    # The same sessions prepared again without names: the model shows none; with them again, it does.
    assert cli("data", "prepare", "tx.csv", "--name", "shop", "--no-names", "--overwrite").returncode == 0
    assert not (tmp_path / "store" / "datasets" / "shop" / "names.parquet").exists()
    assert set(shown().values()) == {None}
    assert cli("data", "prepare", "tx.csv", "--name", "shop", "--overwrite").returncode == 0
    assert shown() == {item: names.get(item) for item in shown()}

    # A sweep id finds them through the sweep's manifest (here a stand-in for a finished sweep's best).
    best = tmp_path / "store" / "sweeps" / "s1" / "best"
    shutil.copytree(tmp_path / "store" / "models" / "sr1", best)
    meta = json.loads((best / "recommender.json").read_text())
    manifest = {
        "status": "completed",
        "metric": "recall_at_k",
        "dataset": {"ref": "shop", "uri": meta["dataset"], "sha256": meta["dataset_sha256"]},
    }
    (best.parent / "manifest.json").write_text(json.dumps(manifest))
    out = cli("recommend", "--session", "10003", "--model", "s1", "-k", "3", "--json").json()
    assert all(r["name"] == names.get(r["item"]) for r in out["recommendations"])
    assert pipeline.model_item_names(str(tmp_path / "store"), "s1") == pipeline.load_item_names(
        "shop", str(tmp_path / "store")
    )

    # A dataset replaced by other sessions no longer vouches for the model's items: no names.
    frame[frame["CustomerID"] != "17000.0"].to_csv(tmp_path / "fewer.csv", index=False)
    assert cli("data", "prepare", "fewer.csv", "--name", "shop", "--overwrite").returncode == 0
    assert set(shown().values()) == {None}


def test_a_damaged_names_file_is_one_line(shop, tmp_path):
    cli, _, _ = shop
    assert cli("fit", "shop", "--model", "sr", "--name", "sr1", "--n", "5").returncode == 0
    path = tmp_path / "store" / "datasets" / "shop" / "names.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    assert_one_line_error(cli("recommend", "--session", "10003", "--model", "sr1"), "names.parquet", "corrupt")
    path.unlink()
    assert_one_line_error(cli("recommend", "--session", "10003", "--model", "sr1"), "names.parquet", "missing")


def test_name_col_chooses_the_column_and_is_checked(cli, tmp_path):
    frame = _write_transactions(tmp_path / "titled.csv", column="Title")
    # Description absent: silently no names.
    plain = cli("data", "prepare", "titled.csv", "--name", "plain", "--json")
    assert plain.returncode == 0, plain.stderr
    assert plain.json()["names"] is None and not (tmp_path / "store" / "datasets" / "plain" / "names.parquet").exists()
    titled = cli("data", "prepare", "titled.csv", "--name", "titled", "--name-col", "Title", "--json")
    assert titled.returncode == 0, titled.stderr
    assert titled.json()["names"]["column"] == "Title"
    assert pipeline.load_item_names("titled", str(tmp_path / "store")) == _expected_names(frame, "Title")

    assert_one_line_error(
        cli("data", "prepare", "titled.csv", "--name", "bad", "--name-col", "Description"),
        "--name-col 'Description' is not a column",
        "Title",
    )
    assert_one_line_error(
        cli("data", "prepare", "titled.csv", "--name", "bad", "--name-col", "Title", "--no-names"), "contradict"
    )
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(["a", "b", "c"]) for _ in range(5)) + "\n")
    assert_one_line_error(
        cli("data", "prepare", "s.jsonl", "--name", "bad", "--name-col", "Title"), "--name-col", "JSONL"
    )
    assert not (tmp_path / "store" / "datasets" / "bad").exists()
    # A JSONL without --name-col is fine, and has no names.
    assert cli("data", "prepare", "s.jsonl", "--name", "lines", "--json").json()["names"] is None


def test_synthetic_data_has_no_names(cli):
    synth = cli("data", "synth", "--name", "demo", "--sessions", "300", "--items", "60", "--json")
    assert synth.returncode == 0 and synth.json()["names"] is None
    assert cli("fit", "demo", "--model", "sr", "--name", "m", "--n", "20").returncode == 0
    out = cli("recommend", "--session", "I000001", "I000002", "--model", "m", "-k", "3", "--json").json()
    assert [r["name"] for r in out["recommendations"]] == [None, None, None]
    lines = cli("recommend", "--session", "I000001", "I000002", "--model", "m", "-k", "3").stdout.splitlines()[1:]
    assert len(lines) == 3 and all(len(line.split()) == 2 for line in lines)
