import json

import numpy as np
import pytest
from gensim.models import KeyedVectors

from sessrec import formats
from sessrec.core.embeddings import Embeddings
from sessrec.errors import SessrecError
from tests.helpers import sessions

ODD_ITEMS = ["plain", "with space", "ünïcödé €", "日本語", "comma,quote\"", "85123A"]


def test_sessions_parquet_round_trip_keeps_odd_item_codes():
    s = sessions(ODD_ITEMS[:3], ODD_ITEMS[2:], ["x", "x", "y"])
    back = formats.sessions_from_parquet(formats.sessions_to_parquet(s))
    assert back.to_lists() == s.to_lists()
    assert back.content_sha256() == s.content_sha256()


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
