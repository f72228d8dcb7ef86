import numpy as np
import pandas as pd
import pytest

from sessrec.core.sessions import Sessions, filter_min_length, sessions_from_transactions
from sessrec.core.synth import synth_sessions
from sessrec.errors import SessrecError
from tests.helpers import sessions


def test_lists_round_trip_and_counts():
    s = sessions(["a", "b", "a"], ["c"], ["b", "c", "d", "e"])
    assert s.to_lists() == [["a", "b", "a"], ["c"], ["b", "c", "d", "e"]]
    assert list(s.lengths) == [3, 1, 4]
    assert dict(zip(s.vocab, s.item_counts())) == {"a": 2, "b": 2, "c": 2, "d": 1, "e": 1}


def test_drop_last_removes_exactly_the_last_item():
    s = sessions(["a", "b", "c"], ["d", "e"], ["f", "g", "h", "i"])
    assert s.drop_last().to_lists() == [["a", "b"], ["d"], ["f", "g", "h"]]


def test_content_hash_ignores_encoding_but_not_order():
    one = sessions(["a", "b"], ["c", "d"])
    same = Sessions.from_flat(np.array(["a", "b", "c", "d"], dtype=object), np.array([0, 2, 4]))
    swapped = sessions(["b", "a"], ["c", "d"])
    moved = sessions(["a"], ["b", "c", "d"])
    assert one.content_sha256() == same.content_sha256()
    assert one.content_sha256() != swapped.content_sha256()
    assert one.content_sha256() != moved.content_sha256()


def _transactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InvoiceNo": ["1", "1", "2", "C3", "4", "5", "5", "6", "7", "8"],
            "StockCode": ["10002", "POST", "10003", "10002", "10004", "10005", "10006", "10007", "10008", "10009"],
            "InvoiceDate": [
                "2010-12-02 10:00",
                "2010-12-01 09:00",
                "2010-12-02 10:00",
                "2010-12-03 08:00",
                "2010-12-01 08:00",
                "2010-12-01 08:00",
                "2010-12-01 08:00",
                "2010-12-05 08:00",
                "2010-12-06 08:00",
                "2010-12-07 08:00",
            ],
            "CustomerID": ["200", "200", "200", "200", "99", "99", "99", None, "1000", "1000"],
            "Country": ["UK"] * 10,
        }
    )


def test_reference_preprocessing():
    s = sessions_from_transactions(_transactions())
    # customer 99 sorts before 200 numerically; 1000 has only 2 rows and the None row is dropped.
    assert s.to_lists() == [["10004", "10005", "10006"], ["POST", "10002", "10003", "10002"]]


def test_a_blank_item_code_counts_as_missing():
    table = _transactions()
    table.loc[5, "StockCode"] = " "  # customer 99 keeps 2 rows: under the minimum length of 3
    assert sessions_from_transactions(table).to_lists() == [["POST", "10002", "10003", "10002"]]
    with pytest.raises(SessrecError, match="an item id is empty"):
        sessions(["a", ""], ["b", "c"])


def test_ties_keep_file_order():
    table = _transactions()
    s = sessions_from_transactions(table)
    # customer 200: rows 0 and 2 share a timestamp and stay in file order (10002 before 10003).
    assert s.to_lists()[1][1:3] == ["10002", "10003"]


def test_values_of_other_types_are_read_as_their_text():
    """A Parquet column may mix 10002 and "10002", and customer numbers may be floats: the same
    text is the same item, and sessions still sort by customer number."""
    table = _transactions().dropna()
    table["StockCode"] = pd.Series(
        [10002, "POST", "10003", "10002", 10004, 10005, 10006, 10008, 10009], index=table.index, dtype=object
    )
    table["CustomerID"] = table["CustomerID"].astype(float)
    s = sessions_from_transactions(table)
    assert s.to_lists() == [["10004", "10005", "10006"], ["POST", "10002", "10003", "10002"]]
    assert sorted(s.vocab) == ["10002", "10003", "10004", "10005", "10006", "POST"]


def test_from_codes_keeps_the_values_that_occur_in_order_of_first_appearance():
    s = Sessions.from_codes(np.array(["a", "b", "c", "d"], dtype=object), np.array([2, 0, 2, 3]), np.array([0, 2, 4]))
    assert list(s.vocab) == ["c", "a", "d"]
    assert s.to_lists() == [["c", "a"], ["c", "d"]]
    assert s.content_sha256() == sessions(["c", "a"], ["c", "d"]).content_sha256()


def test_optional_filters():
    s = sessions_from_transactions(_transactions(), drop_cancellations=True, drop_non_products=True, min_length=2)
    assert s.to_lists() == [["10004", "10005", "10006"], ["10002", "10003"], ["10008", "10009"]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"session_col": "Customer"}, "Customer"),
        ({"min_length": 1}, "min-length"),
        ({"min_length": 50}, "no session"),
        ({"time_col": "Country"}, "cannot parse time"),
        ({"drop_non_products": True, "product_pattern": "("}, "invalid product pattern"),
    ],
)
def test_preprocessing_errors(kwargs, message):
    with pytest.raises(SessrecError, match=message):
        sessions_from_transactions(_transactions(), **kwargs)


def test_filter_min_length():
    s = sessions(["a", "b"], ["c", "d", "e"], ["f"])
    assert filter_min_length(s, 2).to_lists() == [["a", "b"], ["c", "d", "e"]]
    with pytest.raises(SessrecError):
        filter_min_length(s, 4)


def test_synth_is_seeded_and_respects_min_length():
    a, b, c = synth_sessions(seed=3), synth_sessions(seed=3), synth_sessions(seed=4)
    assert a.content_sha256() == b.content_sha256() != c.content_sha256()
    assert a.lengths.min() >= 3
    stats = a.stats()
    assert stats["sessions"] == 2000 and stats["items"] <= 500


def test_synth_rejects_bad_parameters():
    with pytest.raises(SessrecError):
        synth_sessions(n_clusters=0)
    with pytest.raises(SessrecError):
        synth_sessions(p_next=0.8, p_noise=0.5)


def test_a_time_that_does_not_parse_is_named_in_one_sentence():
    table = pd.DataFrame(
        {
            "CustomerID": ["1", "1", "1"],
            "StockCode": ["a", "b", "c"],
            "InvoiceNo": ["1", "2", "3"],
            "InvoiceDate": ["12/9/2010 16:41", "12/9/2010 16:42", "12/9/2010 16:43"],
        }
    )
    with pytest.raises(SessrecError) as raised:
        sessions_from_transactions(table, time_format="%Y-%m-%d %H:%M")
    assert (
        str(raised.value) == "cannot parse time column 'InvoiceDate': time data \"12/9/2010 16:41\" "
        'doesn\'t match format "%Y-%m-%d %H:%M"'
    )
