"""Item names from a transactions table: each item id's description, for people to read beside it.

An item with several descriptions (the UCI file spells some products a few ways) gets its most
frequent one, ties going to the one seen first. Names never change the sessions: they are read
from the table as given, beside the preprocessing, and only for the items the sessions hold.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from sessrec.errors import SessrecError

#: The UCI Online Retail layout's description column: used when a table has it.
DEFAULT_NAME_COLUMN = "Description"


def item_names(table: pd.DataFrame, item_col: str, name_col: str, items: Collection[str]) -> dict[str, str]:
    """``item -> name`` for the ``items`` that have a non-blank name in ``name_col`` of some row.

    Item ids are turned into text as the preprocessing does (``sessions_from_transactions``), so
    they match the sessions' ids; names are stripped of surrounding spaces.
    """
    missing = [c for c in (item_col, name_col) if c not in table.columns]
    if missing:
        raise SessrecError(
            f"column(s) {', '.join(missing)} not in the table (columns: {', '.join(map(str, table.columns))})"
        )
    rows = table[[item_col, name_col]].dropna()
    if rows.empty:
        return {}
    # Each distinct id and name is turned into text once, as the preprocessing does; distinct
    # values that share a text (1 and "1") share a code.
    item_codes, item_text = _text_codes(rows[item_col], strip=False)
    name_codes, name_text = _text_codes(rows[name_col], strip=True)
    keep = pd.Index(item_text).isin(list(items))[item_codes] & (name_text != "")[name_codes]
    positions = np.flatnonzero(keep)  # file order
    if not len(positions):
        return {}
    pairs = item_codes[positions].astype(np.int64) * len(name_text) + name_codes[positions]
    unique, first, counts = np.unique(pairs, return_index=True, return_counts=True)
    item, name = unique // len(name_text), unique % len(name_text)
    # By item, then most rows, then the name seen first: each item's first pair is its name.
    order = np.lexsort((positions[first], -counts, item))
    chosen = order[np.r_[True, item[order][1:] != item[order][:-1]]]
    return dict(zip(item_text[item[chosen]].tolist(), name_text[name[chosen]].tolist(), strict=True))


def _text_codes(column: pd.Series, strip: bool) -> tuple[np.ndarray, np.ndarray]:
    """(a code per row, the distinct texts) of a column whose values are read as text."""
    codes, values = pd.factorize(column)
    text = pd.Series(values, dtype=object).astype(str)
    if strip:
        text = text.str.strip()
    text_codes, distinct = pd.factorize(text)
    return text_codes[codes], np.asarray(distinct, dtype=object)
