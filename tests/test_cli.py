"""The laptop workflow through the real entry point, and its answers to bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_one_line_error, run_cli


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
        rows,
        columns=[
            "InvoiceNo",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "UnitPrice",
            "CustomerID",
            "Country",
        ],
    ).to_csv(path, index=False, encoding="ISO-8859-1")


def test_laptop_workflow(cli, tmp_path):
    _write_transactions(tmp_path / "tx.csv")
    prepared = cli("data", "prepare", "tx.csv", "--name", "shop", "--json")
    assert prepared.returncode == 0, prepared.stderr
    manifest = prepared.json()
    assert manifest["length_min"] >= 3 and "99999" not in json.dumps(manifest.get("top_items", []))
    assert manifest["source"]["uri"] == str(tmp_path / "tx.csv")  # absolute: readable from anywhere later
    assert cli("data", "stats", "shop", "--json").json()["sha256"] == manifest["sha256"]

    assert cli("data", "synth", "--name", "demo", "--json").returncode == 0
    base = cli("baseline", "demo", "--n", "200", "--json").json()
    assert [r["method"] for r in base] == ["popular", "assoc", "transitions"]
    trained = cli(
        "train",
        "demo",
        "--name",
        "m1",
        "--n",
        "200",
        "--epochs",
        "4",
        "--vector-size",
        "16",
        "--export",
        "word2vec",
        "--json",
    )
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


def test_train_off_a_terminal_prints_plain_progress_lines(cli):
    """In a log file or a job's log a progress bar shows nothing: a line at the first and the last
    epoch (and every 30 s between) says it runs."""
    cli("data", "synth", "--name", "demo", "--sessions", "300")
    result = cli("train", "demo", "--name", "m", "--n", "20", "--epochs", "4", "--vector-size", "8")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == ["training 1/4", "training 4/4"], lines
    assert all(" | val R@10 " in line for line in lines)


def test_existing_outputs_are_not_replaced_without_overwrite(cli, tmp_path):
    assert cli("data", "synth", "--name", "demo", "--sessions", "300").returncode == 0
    before = (tmp_path / "store" / "datasets" / "demo" / "sessions.parquet").read_bytes()
    again = cli("data", "synth", "--name", "demo", "--sessions", "400", "--seed", "9")
    assert_one_line_error(again, "already exists")
    assert (tmp_path / "store" / "datasets" / "demo" / "sessions.parquet").read_bytes() == before
    assert cli("data", "synth", "--name", "demo", "--sessions", "400", "--overwrite").returncode == 0
    # A model replaced by one trained without --export loses the old export with it.
    model = tmp_path / "store" / "models" / "m"
    assert (
        cli(
            "train", "demo", "--name", "m", "--n", "20", "--epochs", "1", "--vector-size", "8", "--export", "word2vec"
        ).returncode
        == 0
    )
    assert (model / "embeddings.txt").exists()
    assert (
        cli(
            "train", "demo", "--name", "m", "--n", "20", "--epochs", "1", "--vector-size", "4", "--overwrite"
        ).returncode
        == 0
    )
    assert sorted(path.name for path in model.iterdir()) == [
        "config.json",
        "curve.json",
        "embeddings.parquet",
        "metrics.json",
    ]


def test_corrupt_dataset_is_refused(cli, tmp_path):
    assert cli("data", "synth", "--name", "demo", "--sessions", "300").returncode == 0
    other = tmp_path / "other"
    assert (
        cli("--storage", str(other), "data", "synth", "--name", "demo", "--sessions", "300", "--seed", "5").returncode
        == 0
    )
    # Sessions replaced behind the manifest's back: the hash no longer matches.
    (tmp_path / "store" / "datasets" / "demo" / "sessions.parquet").write_bytes(
        (other / "datasets" / "demo" / "sessions.parquet").read_bytes()
    )
    assert_one_line_error(cli("baseline", "demo"), "corrupt")


def _snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


BAD_SPECS = {
    "unknown-param.yaml": {"space": {"colour": [1, 2]}},
    "out-of-range.yaml": {"space": {"window": [0, 3]}},
    "empty-grid.yaml": {"space": {"window": []}},
    "asha-budget.yaml": {"space": {"window": 3}, "scheduler": {"max_t": 5, "grace_period": 10}},
    "epochs-budget.yaml": {"space": {"epochs": [5, 50]}, "scheduler": {"max_t": 20, "grace_period": 1}},
    "bad-k.yaml": {"space": {"window": 3}, "k": 0},
}


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["data", "prepare", "missing.csv", "--name", "x"], "not found: missing.csv"),
        (["data", "prepare", "tx.csv", "--name", "x", "--item-col", "Sku"], "Sku"),
        (
            ["data", "prepare", "tx.csv", "--name", "x", "--format", "xml"],
            "use csv or parquet (transactions) or jsonl (sessions)",
        ),
        (["data", "prepare", "empty.csv", "--name", "x"], "empty"),
        (["data", "prepare", "header-only.csv", "--name", "x"], "no rows left"),
        (["data", "prepare", "utf16.csv", "--name", "x"], "not in the table"),
        (["data", "prepare", "utf16.csv", "--name", "x", "--encoding", "utf-8"], "not valid utf-8"),
        (
            ["data", "prepare", "bom.csv", "--name", "x", "--drop-cancellations"],
            "the file starts with a UTF-8 byte order mark: pass --encoding utf-8-sig",
        ),
        (
            ["data", "prepare", "tx.csv", "--name", "x", "--encoding", "utf-16"],
            "not valid utf-16 text (UTF-16 stream does not start with BOM)",
        ),
        (["data", "prepare", "tx.csv", "--name", "x", "--time-col", "Country"], "cannot parse time"),
        (["data", "prepare", "bad.jsonl", "--name", "x"], "line 2"),
        (["data", "prepare", "numbers.jsonl", "--name", "x"], "array of strings"),
        (["data", "prepare", "tx.csv", "--name", "Bad/Name"], "invalid dataset name"),
        (["data", "prepare", "tx.csv", "--name", "small"], "already exists"),
        (["data", "prepare", "tx.txt", "--name", "x"], "cannot tell the format"),
        (["data", "prepare", "tx.csv", "--name", "x", "--encoding", "nope"], "unknown encoding"),
        (["data", "prepare", "tx.csv", "--name", "x", "--min-length", "500"], "no session has at least 500"),
        (["data", "synth", "--name", "y", "--clusters", "0"], "synth needs"),
        (["data", "synth", "--name", "y", "--mean-length", "nan"], "synth needs 2 <= min_length <= mean_length"),
        (
            ["data", "synth", "--name", "y", "--sessions", "99999999999999999999999"],
            "synth makes at most 1,000,000,000 events",
        ),
        (["data", "synth", "--name", "y", "--seed", "-1"], "synth seed must be"),
        (["baseline", "small", "--n", "10", "--seed", "-1"], "split seed must be"),
        (["train", "small", "--name", "m", "--n", "10", "--sample", "nan"], "sample must be a finite number"),
        (["train", "small", "--name", "m", "--n", "10", "--model-seed", "-1"], "word2vec seed must be"),
        (["data", "stats", "nothing"], "no dataset 'nothing'"),
        (["data", "stats", "truncated.parquet"], "not a readable Parquet"),
        (["data", "prepare", "blank-item.jsonl", "--name", "x"], "an item id is empty"),
        (["data", "prepare", "deep.jsonl", "--name", "x"], "line 1: nested too deeply"),
        (
            ["data", "stats", "tx.csv"],
            "tx.csv: a sessions file is Parquet or JSONL (.parquet, .jsonl); "
            "make a dataset from a transactions table with 'sessrec data prepare'",
        ),
        (["baseline", "small", "--n", "1000"], "too few sessions"),
        (["baseline", "small", "--n", "0"], "at least 1"),
        (["baseline", "small", "--n", "10", "-k", "0"], "K must be at least 1"),
        (["baseline", "small", "--n", "10", "-k", "99999999999999999999"], "less than or equal to 1000"),
        (["baseline", "small", "--n", "10", "--method", "magic"], "unknown baseline"),
        (["train", "small", "--name", "m", "--n", "10", "--vector-size", "0"], "vector_size"),
        (
            ["train", "small", "--name", "m", "--n", "10", "--vector-size", "100000000"],
            "vector_size must lie in [1, 1024]",
        ),
        (
            ["train", "small", "--name", "m", "--n", "10", "--epochs", "99999999999999999999"],
            "epochs must lie in [1, 1000]",
        ),
        (["tune", "run", "tiny", "--dataset", "small", "--num-cpus", "99999999999999"], "less than or equal to 1024"),
        (["train", "small", "--name", "m", "--n", "10", "--alpha", "2"], "alpha"),
        (["train", "small", "--name", "m", "--n", "10", "--export", "glove"], "only 'word2vec'"),
        (["recommend", "nope", "--embeddings", "missing-model"], "not found"),
        (["recommend", "nope", "--embeddings", "bad-vectors.txt"], "not a word2vec text file"),
        (
            ["tune", "run", "nope.yaml"],
            "no spec file 'nope.yaml' (built-in specs: tiny, seed3d, reference, retail, session)",
        ),
        (
            ["tune", "run", "not-yaml.yaml"],
            "not-yaml.yaml is not valid YAML: expected ',' or ']', but got '<stream end>' at line 2, column 1",
        ),
        *[
            (["tune", "run", name, "--dataset", "small"], f"{name}: {fragment}")
            for name, fragment in zip(
                BAD_SPECS,
                [
                    "invalid sweep spec at space: Additional properties are not allowed ('colour' was unexpected)",
                    "space.window: values must lie in [1, 200], got [0, 3]",
                    "invalid sweep spec at space.window: [] should be non-empty",
                    "scheduler.grace_period (10) exceeds the epoch budget scheduler.max_t (5)",
                    "space.epochs reaches 50, beyond scheduler.max_t (20)",
                    "invalid sweep spec at k: 0 is less than the minimum of 1",
                ],
                strict=True,
            )
        ],
        (["tune", "run", "tiny", "--dataset", "nothing"], "no dataset 'nothing'"),
        (["tune", "run", "tiny", "--dataset", "small", "--sweep-id", "a/b"], "invalid sweep id"),
        (["tune", "run", "tiny", "--dataset", "small", "--sweep-id", ".."], "invalid sweep id"),
        (["tune", "run", "tiny", "--dataset", "small", "--sweep-id", ""], "invalid sweep id ''"),
        # A dry run refuses what the run would refuse before training.
        (["tune", "run", "ok.yaml", "--sweep-id", "a/b", "--dry-run"], "invalid sweep id"),
        (
            ["tune", "run", "two-cpus.yaml", "--num-cpus", "1", "--dry-run"],
            "cpus_per_trial is 2, but the embedded Ray has 1 CPUs",
        ),
        (["tune", "run", "ok.yaml", "--address", "127.0.0.1:1"], "cannot reach the Ray cluster"),
        (["tune", "run", "ok.yaml", "--address", "ray-head"], "not a Ray address"),
        (["tune", "run", "ok.yaml", "--address", "http://127.0.0.1:8265"], "is the dashboard's address"),
        (["tune", "resume", "no-such-sweep"], "no sweep"),
        (["tune", "run", "tiny", "--dataset", "small", "--num-cpus", "0"], "--num-cpus"),
        (["results", "best", "../x"], "invalid sweep id"),
        (["results", "best", "no-such-sweep"], "no sweep"),
        (["results", "fetch", "no-such-sweep", "--to", "out"], "no sweep"),
        (["report", "no-such-sweep"], "no sweep"),
        (["data", "prepare", "tx.csv"], "--name"),
        (["train", "small", "--name", "m", "--epochs", "many"], "valid integer"),
        (["frobnicate"], "No such command"),
        (["--storage", "gs://bucket/x", "results", "list"], "only local folders and s3://bucket/prefix are supported"),
        (["--storage", "s3://", "results", "list"], "names no bucket"),
        (["--storage", "", "results", "list"], "the storage root is empty"),
        (["--storage", "tx.csv", "results", "list"], "storage root 'tx.csv' is a file, not a folder"),
        (["results", "list", "--storage", "x"], "--storage ... results list ...')"),
    ],
)
def test_bad_input_gets_one_line_and_changes_nothing(cli, tmp_path, args, fragment):
    _write_transactions(tmp_path / "tx.csv")
    (tmp_path / "tx.txt").write_text("x")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header-only.csv").write_text("InvoiceNo,StockCode,InvoiceDate,CustomerID\n")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "tx.csv").read_bytes())
    (tmp_path / "utf16.csv").write_bytes((tmp_path / "tx.csv").read_text(encoding="ISO-8859-1").encode("utf-16"))
    (tmp_path / "bad.jsonl").write_text('["a","b","c"]\n["a",\n')
    (tmp_path / "numbers.jsonl").write_text('["a","b","c"]\n[1, 2, 3]\n')
    (tmp_path / "blank-item.jsonl").write_text('["a","b","c"]\n["a","","c"]\n')
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "\n")
    (tmp_path / "not-yaml.yaml").write_text("space: [1, 2\n")
    (tmp_path / "bad-vectors.txt").write_text("2 3\na 1 2\n")
    ok = {"split": {"n": 10}, "space": {"window": 3}, "scheduler": {"max_t": 2, "grace_period": 1}}
    two_cpus = {**ok, "resources": {"cpus_per_trial": 2}}
    for name, changes in {**BAD_SPECS, "ok.yaml": ok, "two-cpus.yaml": two_cpus}.items():
        (tmp_path / name).write_text(json.dumps({"dataset": "small", **changes}))
    cli("data", "synth", "--name", "small", "--sessions", "100", "--items", "50", "--clusters", "5")
    parquet = (tmp_path / "store" / "datasets" / "small" / "sessions.parquet").read_bytes()
    (tmp_path / "truncated.parquet").write_bytes(parquet[: len(parquet) // 2])
    before = _snapshot(tmp_path / "store")
    assert_one_line_error(cli(*args), fragment)
    assert _snapshot(tmp_path / "store") == before


def test_odd_item_codes_round_trip(cli, tmp_path):
    odd = ["CODE WITH SPACE", "ünïcödé-€", "日本語", "85123A", "comma,inside"]
    rows = [
        [f"{i}", odd[(i + j) % len(odd)], f"2010-12-01 08:{j:02d}", f"{17000 + i}"] for i in range(60) for j in range(5)
    ]
    pd.DataFrame(rows, columns=["InvoiceNo", "StockCode", "InvoiceDate", "CustomerID"]).to_csv(
        tmp_path / "odd.csv", index=False, encoding="utf-8"
    )
    assert cli("data", "prepare", "odd.csv", "--name", "odd", "--encoding", "utf-8").returncode == 0
    assert cli("train", "odd", "--name", "m", "--n", "10", "--epochs", "2", "--vector-size", "4").returncode == 0
    recs = cli("recommend", *odd, "--embeddings", "m", "-k", "4", "--json").json()
    assert list(recs) == odd
    assert {r["item"] for r in recs["CODE WITH SPACE"]} == set(odd) - {"CODE WITH SPACE"}
    # The word2vec text format cannot hold codes with spaces: refused before training, nothing written.
    result = cli(
        "train", "odd", "--name", "m2", "--n", "10", "--epochs", "1", "--vector-size", "4", "--export", "word2vec"
    )
    assert_one_line_error(result, "--export word2vec: 1 item id(s) contain whitespace (e.g. 'CODE WITH SPACE')")
    assert not (tmp_path / "store" / "models" / "m2").exists()


def test_unknown_item_is_named(cli):
    cli("data", "synth", "--name", "demo", "--sessions", "300")
    cli("train", "demo", "--name", "m", "--n", "50", "--epochs", "1", "--vector-size", "8")
    assert_one_line_error(cli("recommend", "I000001", "no such item", "--embeddings", "m"), "'no such item'")


def test_a_ray_address_that_answers_http_is_named_as_not_the_gcs(cli, tmp_path):
    """The dashboard's port given where the GCS's belongs: ray.init would retry it for minutes."""
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the server shares the command's stderr here
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (tmp_path / "ok.yaml").write_text(json.dumps({"dataset": "small", "split": {"n": 10}, "space": {"window": 3}}))
        cli("data", "synth", "--name", "small", "--sessions", "100", "--items", "50", "--clusters", "5")
        address = f"127.0.0.1:{server.server_address[1]}"
        assert_one_line_error(
            cli("tune", "run", "ok.yaml", "--address", address), f"{address} answers HTTP, so it is not the Ray GCS"
        )
        assert not (tmp_path / "store" / "sweeps").exists()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_settings_file_of_the_wrong_types_is_refused(cli, tmp_path, monkeypatch):
    (tmp_path / "typed.yaml").write_text("storage: 5\nray_address: [x]\nray_auth_token: null\n")
    monkeypatch.setenv("SESSREC_CONFIG", str(tmp_path / "typed.yaml"))
    monkeypatch.delenv("SESSREC_STORAGE")
    assert_one_line_error(cli("results", "list"), "typed.yaml: ray_address, storage must be text")


def test_subprocess_entry_point_and_help(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("data", "baseline", "train", "recommend", "tune", "results"):
        assert command in result.stdout
    bare = run_cli("data", cwd=tmp_path)  # no command: its help, and no empty "error:" line
    assert (bare.returncode, bare.stderr) == (2, "") and "synth" in bare.stdout
    bad = run_cli("--storage", str(tmp_path), "data", "stats", "nothing", cwd=tmp_path)
    assert_one_line_error(bad, "no dataset")


def test_a_sampled_float_is_shown_to_four_significant_digits():
    from sessrec.cli.common import best_text

    metrics = {"k": 10, "recall_at_k": 0.2434, "mrr_at_k": 0.1}
    text = best_text(
        {
            "sweep_id": "s1",
            "status": "finished",
            "trial_id": "t1",
            "epochs": 5,
            "validation": metrics,
            "test": metrics,
            "config": {"alpha": 0.031274412, "ns_exponent": -0.5, "window": 7},
        }
    )
    assert "alpha        0.03127\n" in text and "ns_exponent  -0.5\n" in text and "window       7\n" in text


def test_a_sweep_s_summary_names_its_metric_with_k():
    from sessrec.cli.tune import _summary

    manifest = {
        "sweep_id": "s1",
        "status": "completed",
        "k": 20,
        "metric": "mrr_at_k",
        "trials": {"total": 2, "completed": 2},
        "best": {"trial_id": "t1", "mrr_at_k": 0.12345},
    }
    assert "best trial t1: validation MRR@20 12.35 %\n" in _summary(manifest)
