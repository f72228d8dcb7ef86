"""Sessions as one flat array of item codes plus offsets (CSR layout), and the reference preprocessing."""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sessrec.errors import SessrecError

DEFAULT_PRODUCT_PATTERN = r"^\d{5}"


@dataclass(frozen=True)
class Sessions:
    """Ordered sessions of items.

    Session ``i`` is ``vocab[codes[offsets[i]:offsets[i + 1]]]``. Keeping codes flat makes
    splits, counts and co-occurrences vectorized operations instead of Python loops.
    """

    vocab: np.ndarray  # object array of item strings, unique
    codes: np.ndarray  # int32, one per event
    offsets: np.ndarray  # int64, len(sessions) + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Each session's number of items (int64)."""
        return np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        """The number of items over all sessions."""
        return int(self.offsets[-1])

    @classmethod
    def from_lists(cls, sessions: Iterable[Sequence[str]]) -> Sessions:
        """Build from lists of item strings; the vocabulary keeps the items in order of first
        appearance. An empty item id is a SessrecError."""
        lists = [list(s) for s in sessions]
        lengths = np.fromiter((len(s) for s in lists), dtype=np.int64, count=len(lists))
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.array([item for s in lists for item in s], dtype=object)
        return cls.from_flat(flat, offsets)

    @classmethod
    def from_flat(cls, items: np.ndarray, offsets: np.ndarray) -> Sessions:
        """Build from a flat array of item strings and session offsets."""
        codes, uniques = pd.factorize(pd.Series(items, dtype=object), sort=False)
        return cls.from_codes(np.asarray(uniques, dtype=object), codes, offsets)

    @classmethod
    def from_codes(cls, values: np.ndarray, codes: np.ndarray, offsets: np.ndarray) -> Sessions:
        """Build from codes into ``values``, distinct item strings. The vocabulary keeps the values
        that occur, in order of first appearance."""
        used_codes, used = pd.factorize(np.asarray(codes), sort=False)
        vocab = np.asarray(values, dtype=object)[used]
        if (vocab == "").any():  # it would be a blank word in a word2vec text export
            raise SessrecError("an item id is empty")
        return cls(vocab=vocab, codes=used_codes.astype(np.int32), offsets=np.asarray(offsets, dtype=np.int64))

    def to_lists(self) -> list[list[str]]:
        """Every session as a list of item strings."""
        items = self.vocab[self.codes].tolist()
        bounds = self.offsets.tolist()
        return [items[bounds[i] : bounds[i + 1]] for i in range(len(self))]

    def drop_last(self) -> Sessions:
        """Every session without its last item (the protocol's training set)."""
        keep = np.ones(self.n_events, dtype=bool)
        keep[self.offsets[1:][self.lengths > 0] - 1] = False
        new_lengths = np.maximum(self.lengths - 1, 0)
        offsets = np.zeros_like(self.offsets)
        np.cumsum(new_lengths, out=offsets[1:])
        return Sessions(vocab=self.vocab, codes=self.codes[keep], offsets=offsets)

    def item_counts(self) -> np.ndarray:
        """How often each vocabulary item occurs, indexed like ``vocab``."""
        return np.bincount(self.codes, minlength=len(self.vocab))

    def content_sha256(self) -> str:
        """Hash of the sessions' content, independent of how they are encoded on disk."""
        digest = hashlib.sha256()
        digest.update(np.asarray(self.offsets, dtype="<i8").tobytes())
        digest.update("\x1f".join(self.vocab[self.codes].tolist()).encode("utf-8"))
        return digest.hexdigest()

    def stats(self) -> dict:
        """Counts (sessions, distinct items, events) and session lengths (min, median, mean, max,
        quantiles p0 to p100) as a JSON-able dict; no sessions is a SessrecError."""
        lengths = self.lengths
        if len(lengths) == 0:
            raise SessrecError("no sessions")
        quantiles = {f"p{q}": float(np.quantile(lengths, q / 100)) for q in (0, 25, 50, 75, 90, 99, 100)}
        return {
            "sessions": len(self),
            "items": int(np.count_nonzero(self.item_counts())),
            "events": self.n_events,
            "length_min": int(lengths.min()),
            "length_median": float(np.median(lengths)),
            "length_mean": float(lengths.mean()),
            "length_max": int(lengths.max()),
            "length_quantiles": quantiles,
        }


def _session_key_order(keys: pd.Series) -> np.ndarray:
    """Sort key for session ids: numeric when every id is numeric (customer numbers), else text.

    Each distinct id is converted once: a session's rows repeat its id, and converting every row
    held several copies of the column."""
    codes, uniques = pd.factorize(keys)
    numeric = pd.to_numeric(pd.Series(uniques), errors="coerce")
    if not numeric.isna().any():
        return pd.factorize(numeric, sort=True)[0][codes]
    return pd.factorize(pd.Series(uniques).astype(str), sort=True)[0][codes]


def _parse_times(times: pd.Series, time_format: str | None) -> np.ndarray:
    """Each distinct time parsed once (the rows of an invoice share its time), as datetime64."""
    codes, uniques = pd.factorize(times)
    try:
        with warnings.catch_warnings():
            # pandas warns when it parses element by element; the result is the same.
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(pd.Series(uniques), format=time_format)
    except (ValueError, TypeError) as exc:
        # pandas' first line can end in "You might want to try:", its list of options on the lines after.
        reason = str(exc).splitlines()[0].removesuffix(" You might want to try:").rstrip(",.")
        hint = "" if time_format else "; pass --time-format (e.g. %m/%d/%Y %H:%M)"
        raise SessrecError(f"cannot parse time column {times.name!r}: {reason}{hint}") from None
    return parsed.to_numpy()[codes]


def sessions_from_transactions(
    table: pd.DataFrame,
    session_col: str = "CustomerID",
    item_col: str = "StockCode",
    time_col: str = "InvoiceDate",
    min_length: int = 3,
    time_format: str | None = None,
    drop_cancellations: bool = False,
    invoice_col: str = "InvoiceNo",
    drop_non_products: bool = False,
    product_pattern: str = DEFAULT_PRODUCT_PATTERN,
) -> Sessions:
    """The protocol's reference preprocessing.

    Rows with any missing value are dropped, sessions shorter than ``min_length`` rows are
    dropped, and each session lists its items in time order (stable for ties). Sessions come
    out ordered by session id, numerically when the ids are numbers.
    """
    if min_length < 2:
        raise SessrecError(f"--min-length must be at least 2, got {min_length}")
    missing = [c for c in (session_col, item_col, time_col) if c not in table.columns]
    if drop_cancellations and invoice_col not in table.columns:
        missing.append(invoice_col)
    if missing:
        # A UTF-8 byte order mark (Excel's "CSV UTF-8") read as Latin-1 sticks to the first column's name.
        bom = (
            "; the file starts with a UTF-8 byte order mark: pass --encoding utf-8-sig"
            if str(table.columns[0]).startswith("ï»¿")
            else ""
        )
        raise SessrecError(
            f"column(s) {', '.join(missing)} not in the table (columns: {', '.join(map(str, table.columns))}){bom}"
        )
    table = table.dropna()
    # Item codes and invoices repeat over many rows: each distinct one is turned into text and
    # tested once (converting every row made a string per row, the largest share of memory).
    item_codes, item_values = pd.factorize(table[item_col])
    # Distinct values may share a text (1 and "1" in a Parquet column): one code per text.
    text_codes, item_text = pd.factorize(pd.Series(item_values, dtype=object).astype(str))
    item_codes, item_text = text_codes[item_codes], pd.Series(item_text, dtype=object)
    rows_kept = (item_text.str.strip() != "").to_numpy()[item_codes]  # a blank item code is missing too
    if drop_cancellations:
        invoice_codes, invoices = pd.factorize(table[invoice_col])
        rows_kept &= ~pd.Series(invoices, dtype=object).astype(str).str.startswith("C").to_numpy()[invoice_codes]
    if drop_non_products:
        try:
            pattern = re.compile(product_pattern)
        except re.error as exc:
            raise SessrecError(f"invalid product pattern {product_pattern!r}: {exc}") from None
        rows_kept &= item_text.str.contains(pattern).to_numpy()[item_codes]
    if not rows_kept.all():
        table, item_codes = table[rows_kept], item_codes[rows_kept]
    if table.empty:
        raise SessrecError("no rows left after dropping rows with missing values and filters")
    times = _parse_times(table[time_col], time_format)
    session_order = _session_key_order(table[session_col])
    # np.lexsort is stable: rows with the same session and time keep their file order.
    order = np.lexsort((times, session_order))
    sorted_sessions = session_order[order]
    boundaries = np.flatnonzero(np.diff(sorted_sessions)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(sorted_sessions)]])
    keep = (ends - starts) >= min_length
    if not keep.any():
        raise SessrecError(f"no session has at least {min_length} rows")
    event_keep = np.repeat(keep, ends - starts)
    lengths = (ends - starts)[keep]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Sessions.from_codes(item_text.to_numpy(dtype=object), item_codes[order][event_keep], offsets)


def filter_min_length(sessions: Sessions, min_length: int) -> Sessions:
    """Keep sessions with at least ``min_length`` items."""
    keep = sessions.lengths >= min_length
    if keep.all():
        return sessions
    if not keep.any():
        raise SessrecError(f"no session has at least {min_length} items")
    event_keep = np.repeat(keep, sessions.lengths)
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(sessions.lengths[keep], out=offsets[1:])
    return Sessions.from_codes(sessions.vocab, sessions.codes[event_keep], offsets)
