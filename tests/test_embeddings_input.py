"""Embeddings from other tools and odd files: pandas-written Parquet, extreme values, empty text files."""

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gensim.models import KeyedVectors

from sessrec import formats
from sessrec.core.embeddings import Embeddings
from sessrec.errors import SessrecError
from tests.helpers import assert_one_line_error, run_cli


def _parquet(items: pa.Array | list, vectors: pa.Array | list, row_group_size: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"item": items, "vector": vectors}), sink, row_group_size=row_group_size)
    return sink.getvalue().to_pybytes()


def test_pandas_list_vectors_are_accepted(cli, tmp_path):
    frame = pd.DataFrame({"item": ["a", "b", "c"], "vector": [[1.0, 2.0], [2.0, 1.0], [1.0, 1.0]]})
    frame.to_parquet(tmp_path / "e.parquet")
    emb = formats.embeddings_from_parquet((tmp_path / "e.parquet").read_bytes(), "e.parquet")
    assert emb.vectors.dtype == np.float32
    np.testing.assert_array_equal(emb.vectors, [[1, 2], [2, 1], [1, 1]])
    recs = cli("recommend", "a", "--embeddings", "e.parquet", "-k", "2", "--json").json()
    assert [rec["item"] for rec in recs["a"]] == ["c", "b"]


@pytest.mark.parametrize(
    "list_type",
    [pa.list_(pa.int16()), pa.large_list(pa.float16()), pa.large_list(pa.uint8()), pa.list_(pa.float64(), 2)],
)
def test_list_vectors_of_any_int_or_float_type_in_several_row_groups(list_type):
    data = _parquet(["a", "b", "c"], pa.array([[1, 2], [3, 4], [5, 6]], list_type), row_group_size=1)
    emb = formats.embeddings_from_parquet(data)
    assert list(emb.keys) == ["a", "b", "c"]
    np.testing.assert_array_equal(emb.vectors, np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32))


@pytest.mark.filterwarnings("error")  # an overflow warning would be a block of text before the error line
@pytest.mark.parametrize(
    "items, vectors, message",
    [
        # The item column is checked first: its problem is not reported as one of 'vector'.
        (pa.array([1, 2]), pa.array([["x"], ["y"]]), "column 'item' must hold text ids, got int64"),
        (pa.array(["a", None]), pa.array([[1.0], [2.0]]), "column 'item' must hold text ids without nulls"),
        (["a", "b"], pa.array([1.0, 2.0]), "column 'vector' must hold lists of numbers, got double"),
        (["a", "b"], pa.array([["x"], ["y"]]), "column 'vector' must hold numbers, got lists of string"),
        (["a", "b"], pa.array([[True], [False]]), "column 'vector' must hold numbers, got lists of bool"),
        (["a", "b", "c"], pa.array([[1.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0]]), "rows have 2 to 3 values"),
        (["a", "b", "c"], pa.array([[1.0], [], [1.0, 2.0, 3.0, 4.0]]), "rows have 0 to 4 values"),
        (["a", "b"], pa.array([[1.0, 2.0], None]), "column 'vector' holds 1 null vector(s)"),
        (["a", "b"], pa.array([[1.0, 2.0], [None, 2.0]]), "vectors hold 1 null value(s)"),
        (["a", "b"], pa.array([[1.0, None], [None, 2.0]], pa.list_(pa.float32(), 2)), "vectors hold 2 null value(s)"),
        (["a", "b"], pa.array([[], []], pa.list_(pa.float64())), "vectors are empty"),
        (pa.array([], pa.string()), pa.array([], pa.list_(pa.float64())), "holds no vectors"),
        (["a", "b"], pa.array([[1.0, float("nan")], [1.0, 2.0]]), "vectors hold NaN or infinite values"),
        (
            ["a", "b"],
            pa.array([[1.0, float("-inf")], [1.0, 2.0]], pa.large_list(pa.float64())),
            "NaN or infinite values",
        ),
        (["a", "b"], pa.array([[1e39, 0.0], [1.0, 2.0]]), "NaN or infinite values (or values beyond float32's range"),
    ],
)
def test_bad_vector_columns_get_precise_messages(items, vectors, message):
    with pytest.raises(SessrecError) as raised:
        formats.embeddings_from_parquet(_parquet(items, vectors), "emb.parquet")
    assert str(raised.value).startswith("emb.parquet")
    assert message in str(raised.value)


@pytest.mark.parametrize("value", ["1e38", "3e38", "1e-30", "1e-45"])
def test_extreme_finite_values_keep_their_cosines(value):
    dims = 100  # 3e38 in 100 dimensions: a norm beyond float32's range even without squaring
    ones = " ".join([value] * dims)
    text = f"3 {dims}\na {ones}\nb {ones}\nc 1 {' '.join(['0'] * (dims - 1))}\n"
    emb = Embeddings.from_word2vec_text(text)
    (first, same), (second, other) = emb.recommend(["a"], 2)[0]
    assert (first, second) == ("b", "c")
    assert same == pytest.approx(1.0, abs=1e-6)
    assert other == pytest.approx(dims**-0.5, abs=1e-6)
    queries = np.array([0, 0])
    np.testing.assert_allclose(emb.pair_scores(queries, np.array([1, 2])), [1.0, dims**-0.5], atol=1e-6)


def test_normal_vectors_are_normalised_exactly_as_gensim_does():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(400, 24)).astype(np.float32) * np.float32(10.0) ** rng.integers(-8, 9, size=(400, 1))
    keys = np.array([f"i{j}" for j in range(len(vectors))], dtype=object)
    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(list(keys), vectors)
    unit = kv.get_normed_vectors()
    rows = np.arange(len(vectors))
    np.testing.assert_array_equal(
        Embeddings(keys, vectors).scores(rows), unit[rows] @ unit.T
    )  # the same product, bit for bit


def test_a_zero_vector_scores_zero():
    emb = Embeddings(np.array(["a", "b"], dtype=object), np.array([[0.0, 0.0], [1.0, 2.0]]))
    np.testing.assert_array_equal(emb.scores(np.array([0])), [[0, 0]])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "text, message",
    [
        ("", "word2vec text file is empty (it needs a header line 'COUNT DIMENSIONS'"),
        ("\n  \n", "word2vec text file is empty"),
        ("a 1 2\nb 2 1\n", "the first line must be 'COUNT DIMENSIONS'"),
        ("2 0\na\nb\n", "DIMENSIONS at least 1), got '2 0'"),
        ("3 2\na 1e39 0\nb 1 0\nc 1 0\n", "word2vec text file holds NaN or infinite values"),
        ("2 2\na 1 x\nb 1 0\n", "not a word2vec text file: could not convert string to float: 'x'"),
    ],
)
def test_bad_word2vec_text_gets_one_clear_message(text, message):
    with pytest.raises(SessrecError) as raised:
        Embeddings.from_word2vec_text(text)
    assert message in str(raised.value)


def test_overflowing_text_file_gives_one_line_and_no_warning(tmp_path):
    """A real process, so any numpy warning would show on stderr."""
    (tmp_path / "inf.txt").write_text("3 2\na 1e39 0\nb 1 0\nc 1 0\n")
    env = {
        **os.environ,
        "SESSREC_STORAGE": str(tmp_path / "store"),
        "SESSREC_CONFIG": str(tmp_path / "no-settings.yaml"),
    }
    result = run_cli("recommend", "a", "--embeddings", "inf.txt", cwd=tmp_path, env=env)
    assert_one_line_error(result, "inf.txt: word2vec text file holds NaN or infinite values")


def test_empty_text_file_on_the_command_line(cli, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert_one_line_error(cli("recommend", "a", "--embeddings", "empty.txt"), "empty.txt: word2vec text file is empty")


def test_a_repeated_baseline_method_counts_once_in_the_order_given(cli):
    assert cli("data", "synth", "--name", "demo", "--sessions", "300").returncode == 0
    twice = cli("baseline", "demo", "--n", "20", "--method", "popular", "--method", "popular", "--json").json()
    assert [row["method"] for row in twice] == ["popular"]
    mixed = cli(
        "baseline",
        "demo",
        "--n",
        "20",
        "--method",
        "transitions",
        "--method",
        "popular",
        "--method",
        "transitions",
        "--json",
    )
    assert [row["method"] for row in mixed.json()] == ["transitions", "popular"]
