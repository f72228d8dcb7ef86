"""Session recommenders through the CLI as a user runs it: baselines that name their mode,
`sessrec fit` storing a recommender, `sessrec recommend` with a session or a sessions file,
and one-line answers to bad input."""

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_one_line_error, run_cli

N = "60"


@pytest.fixture
def demo(cli):
    assert cli("data", "synth", "--name", "demo", "--sessions", "400", "--items", "120").returncode == 0
    return cli


def test_baselines_name_their_mode_and_exclusion(demo):
    item = demo("baseline", "demo", "--n", N, "--json").json()
    assert [r["method"] for r in item] == ["popular", "assoc", "transitions"]
    assert all(r["mode"] == r["validation"]["mode"] == r["test"]["mode"] == "item" for r in item)
    assert all(r["exclude"] == r["test"]["exclude"] == "query" for r in item)

    every = demo("baseline", "demo", "--n", N, "--mode", "all", "--exclude", "session", "--json").json()
    assert [r["method"] for r in every] == ["popular", "assoc", "transitions", "sr", "session-transitions", "repeat"]
    # Item-mode figures are unchanged by the session options (they are the seed-comparable ones).
    assert [r["test"]["recall_at_k"] for r in every[:3]] == [r["test"]["recall_at_k"] for r in item]
    for r in every[3:]:
        assert r["mode"] == r["test"]["mode"] == "session" and r["test"]["exclude"] == "session"
        assert 0 <= r["test"]["recall_at_k"] <= 1

    text = demo("baseline", "demo", "--n", N, "--method", "sr", "--method", "transitions")
    lines = text.stdout.splitlines()
    assert "mode" in lines[0] and "exclude" in lines[0]
    assert lines[1].split()[:3] == ["sr", "session", "query"] and lines[2].split()[:3] == [
        "transitions",
        "item",
        "query",
    ]
    assert_one_line_error(demo("baseline", "demo", "--n", N, "--mode", "both"), "--mode must be")
    assert_one_line_error(demo("baseline", "demo", "--n", N, "--exclude", "all"), "--exclude must be")


def test_fit_then_recommend_round_trip(demo, tmp_path):
    fitted = demo(
        "fit",
        "demo",
        "--model",
        "sr",
        "--param",
        "last_n=3",
        "--param",
        "decay=0.3",
        "--name",
        "sr3",
        "--n",
        N,
        "--json",
    )
    assert fitted.returncode == 0, fitted.stderr
    meta = fitted.json()
    assert meta["params"] == {
        "model": "sr",
        "steps": 20,
        "weighting": "gap",
        "last_n": 3,
        "decay": 0.3,
        "tiebreak": False,
    }
    assert meta["split"] == {"seed": 0, "n": 60} and meta["test"]["mode"] == meta["validation"]["mode"] == "session"
    folder = tmp_path / "store" / "models" / "sr3"
    assert sorted(p.name for p in folder.iterdir()) == ["recommender.json", "recommender.npz"]
    stored = json.loads((folder / "recommender.json").read_text())
    assert stored["arrays_sha256"] == hashlib.sha256((folder / "recommender.npz").read_bytes()).hexdigest()
    with np.load(folder / "recommender.npz", allow_pickle=False) as npz:
        assert len(npz["keys"]) == stored["n_items"]

    # The same figures as the session baseline with the same settings.
    base = demo("baseline", "demo", "--n", N, "--method", "sr", "--json").json()[0]
    assert base["test"] == meta["test"]

    recs = demo("recommend", "--session", "I000001", "I000002", "--model", "sr3", "-k", "5", "--json")
    assert recs.returncode == 0 and recs.stderr == ""
    out = recs.json()
    assert out["mode"] == "session" and out["unknown"] == [] and len(out["recommendations"]) == 5
    assert "I000002" not in [r["item"] for r in out["recommendations"]]  # the query is excluded
    scores = [r["score"] for r in out["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    again = demo(
        "recommend", "--session", "I000001", "I000002", "--model", "sr3", "-k", "5", "--exclude", "session", "--json"
    ).json()
    assert not {"I000001", "I000002"} & {r["item"] for r in again["recommendations"]}

    # A copy of the model's folder outside the storage (as `results fetch` leaves one) is a model too.
    import shutil

    copy = shutil.copytree(folder, tmp_path / "fetched" / "sr3")
    for ref in (str(copy), str(copy / "recommender.json")):
        from_copy = demo("recommend", "--session", "I000001", "I000002", "--model", ref, "-k", "5", "--json")
        assert from_copy.returncode == 0, from_copy.stderr
        assert from_copy.json()["recommendations"] == out["recommendations"]

    assert_one_line_error(demo("fit", "demo", "--model", "repeat", "--name", "sr3", "--n", N), "already exists")
    assert demo("fit", "demo", "--model", "repeat", "--name", "sr3", "--n", N, "--overwrite").returncode == 0
    assert json.loads((folder / "recommender.json").read_text())["params"] == {"model": "repeat", "transform": "log"}


def test_a_user_runs_fit_and_recommend(tmp_path):
    """The installed command in a subprocess, human output."""
    env_args = ("--storage", str(tmp_path / "store"))
    assert (
        run_cli(
            *env_args, "data", "synth", "--name", "demo", "--sessions", "300", "--items", "80", cwd=tmp_path
        ).returncode
        == 0
    )
    fitted = run_cli(
        *env_args,
        "fit",
        "demo",
        "--model",
        "transitions",
        "--param",
        "last_n=2",
        "--name",
        "t",
        "--n",
        "40",
        cwd=tmp_path,
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "session mode, exclude query" in fitted.stdout and "saved to" in fitted.stdout
    recs = run_cli(
        *env_args, "recommend", "--session", "I000003", "I000004", "nope", "--model", "t", "-k", "3", cwd=tmp_path
    )
    assert recs.returncode == 0, recs.stderr
    assert recs.stdout.startswith("next after 3 item(s) (session mode, exclude query):")
    assert len(recs.stdout.strip().splitlines()) == 4
    assert "note: unknown item(s) left out: 'nope'" in recs.stderr.splitlines()


def test_hybrid_with_word2vec_embeddings_and_item_mode(demo, tmp_path):
    trained = demo("train", "demo", "--name", "w2v", "--n", N, "--epochs", "1", "--vector-size", "8")
    assert trained.returncode == 0, trained.stderr
    hybrid = demo(
        "fit", "demo", "--model", "hybrid", "--embeddings", "w2v", "--name", "hy", "--n", N,
        "--param", "w2v_session.last_n=3", "--param", "w2v_session.decay=0.5",
        "--param", "transitions.last_n=3", "--param", "repeat.weight=0.2", "--param", "repeat.normalise=none", "--json",
    )  # fmt: skip
    assert hybrid.returncode == 0, hybrid.stderr
    meta = hybrid.json()
    components = meta["params"]["components"]
    assert [c["model"] for c in components] == ["w2v_session", "transitions", "repeat"]
    assert components[0]["vector_size"] == 8 and components[0]["decay"] == 0.5  # word2vec's from the stored model
    assert meta["embeddings"] == {"model": "w2v", "same_split_checked": True}
    recs = demo("recommend", "--session", "I000001", "I000007", "--model", "hy", "-k", "4", "--json").json()
    assert len(recs["recommendations"]) == 4

    # Embeddings straight from a word2vec model: item mode as ever, or as w2v_session.
    session = demo(
        "recommend",
        "--session",
        "I000001",
        "I000007",
        "--embeddings",
        "w2v",
        "--param",
        "last_n=1",
        "-k",
        "4",
        "--json",
    ).json()
    item = demo("recommend", "I000007", "--embeddings", "w2v", "-k", "4", "--json").json()
    assert [r["item"] for r in session["recommendations"]] == [r["item"] for r in item["I000007"]]

    # A stored recommender with an item mode answers each item as a query.
    assert demo("fit", "demo", "--model", "transitions", "--name", "t1", "--n", N).returncode == 0
    per_item = demo("recommend", "I000001", "nope", "I000007", "--model", "t1", "-k", "2", "--json")
    assert per_item.returncode == 0
    assert list(per_item.json()["recommendations"]) == ["I000001", "I000007"] and per_item.json()["unknown"] == ["nope"]
    assert "'nope'" in per_item.stderr


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_sessions_file_to_jsonl_and_parquet(demo, tmp_path):
    assert demo("fit", "demo", "--model", "sr", "--param", "last_n=2", "--name", "m", "--n", N).returncode == 0
    _write_lines(
        tmp_path / "in.jsonl",
        [json.dumps(["I000001", "I000002"]), "", json.dumps(["gone"]), json.dumps(["I000003", "gone", "I000009"])],
    )
    summary = demo("recommend", "--sessions-file", "in.jsonl", "--model", "m", "--to", "out.jsonl", "-k", "3", "--json")
    assert summary.returncode == 0, summary.stderr
    assert summary.json()["sessions"] == 3 and summary.json()["lines_without_known_items"] == [3]
    assert "lines without any known item: [3]" in summary.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 3, 4]
    assert len(rows[0]["items"]) == len(rows[0]["scores"]) == 3 and rows[0]["unknown"] == []
    assert rows[1] == {"line": 3, "items": [], "names": [], "scores": [], "unknown": ["gone"]}
    assert rows[0]["names"] == [None, None, None]  # synthetic data: no names
    assert rows[2]["unknown"] == ["gone"] and len(rows[2]["items"]) == 3
    # Each row is what a single --session gives.
    one = demo("recommend", "--session", "I000001", "I000002", "--model", "m", "-k", "3", "--json").json()
    assert [r["item"] for r in one["recommendations"]] == rows[0]["items"]

    assert (
        demo("recommend", "--sessions-file", "in.jsonl", "--model", "m", "--to", "out.parquet", "-k", "3").returncode
        == 0
    )
    table = pd.read_parquet(tmp_path / "out.parquet")
    assert list(table.columns) == ["line", "items", "names", "scores", "unknown"]
    assert table["line"].tolist() == [1, 3, 4] and list(table["items"][0]) == rows[0]["items"]
    assert_one_line_error(
        demo("recommend", "--sessions-file", "in.jsonl", "--model", "m", "--to", "out.parquet"), "already exists"
    )
    assert_one_line_error(
        demo("recommend", "--sessions-file", "in.jsonl", "--model", "m", "--to", "out.csv"), ".jsonl or a .parquet"
    )
    _write_lines(tmp_path / "empty.jsonl", [json.dumps(["I000001"]), "[]"])
    assert_one_line_error(
        demo("recommend", "--sessions-file", "empty.jsonl", "--model", "m", "--to", "e.jsonl"), "line 2", "empty"
    )
    _write_lines(tmp_path / "bad.jsonl", ['{"a": 1}'])
    assert_one_line_error(
        demo("recommend", "--sessions-file", "bad.jsonl", "--model", "m", "--to", "e.jsonl"), "line 1"
    )
    assert not (tmp_path / "e.jsonl").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["recommend", "--session", "--model", "m"], "needs the session's items"),
        (["recommend", "--session", "nope", "zilch", "--model", "m"], "no item is known to the model: 'nope', 'zilch'"),
        (["recommend", "I000001", "--model", "m"], "has no item mode; pass --session"),
        (["recommend", "--session", "I000001", "--model", "w2v-missing"], "no recommender 'w2v-missing'"),
        (["recommend", "--session", "I000001"], "name the model"),
        (["recommend", "--session", "I000001", "--model", "m", "--param", "last_n=2"], "--param is for --embeddings"),
        (
            ["fit", "demo", "--model", "hybrid", "--name", "h", "--n", N, "--param", "sr.weight=-1"],
            "finite number >= 0, got -1",
        ),
        (
            ["fit", "demo", "--model", "hybrid", "--name", "h", "--n", N, "--param", "sr.weight=NaN"],
            "finite number >= 0, got nan",
        ),
        (["fit", "demo", "--model", "hybrid", "--name", "h", "--n", N, "--param", "sr.weight=0"], "weights are all 0"),
        (
            ["fit", "demo", "--model", "sr", "--name", "h", "--n", N, "--param", "colour=red"],
            "unknown sr parameter(s): colour",
        ),
        (["fit", "demo", "--model", "sr", "--name", "h", "--n", N, "--param", "decay=2"], "must lie in [0, 1]"),
        (["fit", "demo", "--model", "sr", "--name", "h", "--n", N, "--param", "last_n"], "expected KEY=VALUE"),
        (["fit", "demo", "--model", "hybrid", "--name", "h", "--n", N, "--param", "last_n=3"], "COMPONENT.KEY=VALUE"),
        (["fit", "demo", "--model", "magic", "--name", "h", "--n", N], "unknown recommender 'magic'"),
        (["fit", "demo", "--model", "w2v_session", "--name", "h", "--n", N], "needs --embeddings"),
        (
            ["fit", "demo", "--model", "sr", "--name", "h", "--n", N, "--embeddings", "x"],
            "--embeddings is for word2vec",
        ),
        (["fit", "demo", "--model", "sr", "--name", "Bad_Name", "--n", N], "invalid model name"),
        (["fit", "demo", "--model", "sr", "--name", "h", "--n", N, "--exclude", "all"], "exclude must be"),
    ],
)
def test_bad_input_is_one_line(demo, tmp_path, args, fragment):
    assert demo("fit", "demo", "--model", "sr", "--param", "last_n=3", "--name", "m", "--n", N).returncode == 0
    before = sorted(p.name for p in (tmp_path / "store" / "models").iterdir())
    assert_one_line_error(demo(*args), fragment)
    assert sorted(p.name for p in (tmp_path / "store" / "models").iterdir()) == before


def test_word2vec_from_another_split_is_refused(demo):
    assert demo("train", "demo", "--name", "w2v", "--n", "50", "--epochs", "1", "--vector-size", "4").returncode == 0
    result = demo("fit", "demo", "--model", "w2v_session", "--embeddings", "w2v", "--name", "ws", "--n", N)
    assert_one_line_error(result, "trained on another dataset or split")
    result = demo(
        "fit",
        "demo",
        "--model",
        "w2v_session",
        "--embeddings",
        "w2v",
        "--name",
        "ws",
        "--n",
        "50",
        "--param",
        "window=3",
    )
    assert_one_line_error(result, "window come(s) from the word2vec model")
    # A word2vec model named with --model scores the session as w2v_session, as `serve` does.
    result = demo("recommend", "--session", "I000001", "--model", "w2v")
    assert result.returncode == 0, result.stderr
    assert "session mode" in result.stdout


def _replace_arrays(folder, data: bytes, keep_sha: bool = False) -> None:
    (folder / "recommender.npz").write_bytes(data)
    if not keep_sha:  # as if written together with its description: only the content is wrong
        meta = json.loads((folder / "recommender.json").read_text())
        meta["arrays_sha256"] = hashlib.sha256(data).hexdigest()
        (folder / "recommender.json").write_text(json.dumps(meta))


def _npz(**arrays) -> bytes:
    sink = io.BytesIO()
    np.savez(sink, **arrays)
    return sink.getvalue()


def test_pickled_or_corrupt_arrays_are_refused(demo, tmp_path):
    assert demo("fit", "demo", "--model", "sr", "--name", "m", "--n", N).returncode == 0
    folder = tmp_path / "store" / "models" / "m"
    good = (folder / "recommender.npz").read_bytes()

    def refused(*fragments):
        assert_one_line_error(demo("recommend", "--session", "I000001", "--model", "m"), *fragments)

    _replace_arrays(folder, good[:-100], keep_sha=True)
    refused("corrupt", "does not match the sha256")
    _replace_arrays(folder, _npz(keys=np.array([{"evil": 1}], dtype=object)))
    refused("not a readable arrays-only .npz", "allow_pickle=False")
    _replace_arrays(folder, b"\x80\x04K\x01.")  # a pickle, not an archive
    refused("not a readable arrays-only .npz")
    _replace_arrays(folder, good[: len(good) // 2])
    refused("not a readable arrays-only .npz")
    _replace_arrays(folder, _npz(keys=np.array(["I000001", "I000002"])))
    refused("incomplete or corrupt (rules)")
    _replace_arrays(folder, good)
    (folder / "recommender.json").write_text("{not json")
    refused("not valid JSON")
