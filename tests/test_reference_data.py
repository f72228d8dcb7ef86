"""The protocol's reference figures, on the real sessions when ../shared/data holds them."""

import json

import numpy as np
import pandas as pd
import pytest

from sessrec import pipeline
from sessrec.core.sessions import Sessions
from tests.helpers import REFERENCE_SESSIONS

pytestmark = pytest.mark.skipif(not REFERENCE_SESSIONS.exists(), reason="reference sessions not present")


@pytest.fixture(scope="module")
def reference() -> list[list[str]]:
    return [json.loads(line) for line in REFERENCE_SESSIONS.read_text().splitlines()]


def _uci_csv(sessions: list[list[str]], path) -> None:
    """The sessions written back as an Online Retail transactions CSV: several items per invoice
    (equal timestamps, so order must be stable), plus rows the preprocessing must drop."""
    rng = np.random.default_rng(0)
    rows = []
    start = pd.Timestamp("2010-12-01 08:00")
    for number, session in enumerate(sessions):
        customer = f"{12346 + number}.0"
        minute = 0
        for position, item in enumerate(session):
            if position % 4 == 0:
                minute += int(rng.integers(1, 500))
            when = start + pd.Timedelta(minutes=minute)
            rows.append(
                [f"5{number:05d}{minute:06d}", item, "ITEM", 1, _uci_time(when), 1.25, customer, "United Kingdom", when]
            )
        if number % 50 == 0:  # a row with a missing value for a real customer: dropped
            rows.append(["C999999", "99999X", None, -1, "12/1/2010 8:00", 1.0, customer, "United Kingdom", start])
    for extra in range(300):  # rows without a customer, and customers below the minimum length
        rows.append(["599999", "88888Z", "NO CUSTOMER", 1, "12/2/2010 9:00", 1.0, None, "United Kingdom", start])
        if extra < 100:
            rows.append(["599998", "77777Z", "SHORT", 1, "12/2/2010 9:00", 1.0, f"{99000 + extra}.0", "France", start])
    columns = [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
        "when",
    ]
    # Like the real file: rows in time order, customers interleaved, an invoice's items in order.
    table = pd.DataFrame(rows, columns=columns).sort_values("when", kind="stable").drop(columns="when")
    table.to_csv(path, index=False, encoding="ISO-8859-1")


def _uci_time(when: pd.Timestamp) -> str:
    return f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"


def test_prepare_reproduces_the_reference_sessions(reference, tmp_path):
    _uci_csv(reference, tmp_path / "online_retail.csv")
    manifest = pipeline.prepare(str(tmp_path / "online_retail.csv"), "retail", str(tmp_path / "store"))
    assert (manifest["sessions"], manifest["items"], manifest["events"]) == (4234, 3684, 406632)
    assert (manifest["length_min"], manifest["length_median"], manifest["length_max"]) == (3, 44, 7983)
    assert manifest["sha256"] == Sessions.from_lists(reference).content_sha256()
    # The Description column is kept as the items' names, beside the sessions (which it leaves as they are).
    assert manifest["names"]["column"] == "Description" and manifest["names"]["items"] == 3684
    assert set(pipeline.load_item_names("retail", str(tmp_path / "store")).values()) == {"ITEM"}


def test_reference_baselines(reference):
    """Within a rounding step of the protocol's table (ties may be broken differently)."""
    dataset = pipeline.Dataset(Sessions.from_lists(reference), "reference", "")
    expected = {"popular": (4.60, 1.75), "assoc": (12.93, 5.70), "transitions": (26.80, 14.76)}
    from sessrec.core import baselines
    from sessrec.core.metrics import evaluate

    for method, (recall, mrr) in expected.items():
        scores = []
        for seed in (0, 1, 2):
            split = pipeline.split_dataset(dataset, seed, 1000)
            result = evaluate(baselines.build(method, split.train), split.test.queries, split.test.targets, 10)
            scores.append((result["recall_at_k"], result["mrr_at_k"]))
        mean = np.mean(scores, axis=0) * 100
        assert mean[0] == pytest.approx(recall, abs=0.1) and mean[1] == pytest.approx(mrr, abs=0.1), (method, mean)
