"""The one interface of session recommenders, and the batch of sessions they score.

A recommender is fitted on training sessions (:class:`~sessrec.core.sessions.Sessions`) and then
scores a :class:`SessionBatch`: item indices into its catalogue, one row per session, oldest item
first (the last item is the query). ``scores`` returns a dense (sessions x catalogue) float64
block; callers keep batches small (:func:`rows_per_block`), so no items x items matrix and no
sessions x items matrix beyond one block is ever made. Ranking, exclusion and top-K live in
:mod:`sessrec.core.session_metrics`.

The catalogue of a model fitted on ``train`` is :func:`catalogue` (the items seen in training, in
the order of ``train.vocab``): every recommender fitted on the same sessions shares it, so their
scores add column by column (the hybrid relies on it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp

from sessrec.core.sessions import Sessions
from sessrec.errors import SessrecError

#: Cells of one dense score block (sessions x items): 4 Mi float64 = 32 MiB, so a 100k-item
#: catalogue is scored 40 sessions at a time and memory stays bounded whatever the batch.
MAX_BLOCK_CELLS = 4 * 1024 * 1024


def rows_per_block(n_items: int) -> int:
    """Sessions per dense score block over ``n_items`` items, so that a block stays within
    MAX_BLOCK_CELLS (at least 1)."""
    return max(1, MAX_BLOCK_CELLS // max(n_items, 1))


def catalogue(train: Sessions) -> np.ndarray:
    """The items seen in ``train``, in vocabulary order (object array of strings)."""
    return train.vocab[train.item_counts() > 0]


@dataclass(frozen=True)
class SessionBatch:
    """Sessions as item indices into a catalogue, CSR layout: session ``i`` is
    ``items[offsets[i]:offsets[i + 1]]``, oldest first. ``unknown`` names the input items the
    catalogue did not hold; they were dropped, and the sessions are scored from the known ones."""

    items: np.ndarray  # int64
    offsets: np.ndarray  # int64, len + 1
    unknown: tuple[str, ...] = ()
    #: Each session's query (its last input item) as an index, -1 where unknown; None: the last known item.
    query: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Each session's number of (known) items."""
        return np.diff(self.offsets)

    def rows(self, start: int, stop: int) -> SessionBatch:
        """Sessions ``start`` to ``stop`` (exclusive) as a batch of their own."""
        low, high = self.offsets[start], self.offsets[stop]
        query = None if self.query is None else self.query[start:stop]
        return SessionBatch(self.items[low:high], self.offsets[start : stop + 1] - low, query=query)

    def queries(self) -> np.ndarray:
        """Each session's query item (its last input item), -1 where the catalogue does not hold it."""
        return self.last() if self.query is None else self.query

    def last(self) -> np.ndarray:
        """Each session's last item (the query); -1 for an empty session."""
        lengths = self.lengths
        out = np.full(len(self), -1, dtype=np.int64)
        has = lengths > 0
        out[has] = self.items[self.offsets[1:][has] - 1]
        return out

    def recent(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last ``n`` items of every session (all of them for n = 0) as flat (row, item, age)
        arrays; age 0 is the last item."""
        lengths = self.lengths
        take = lengths if n <= 0 else np.minimum(lengths, n)
        rows = np.repeat(np.arange(len(self)), take)
        starts = np.cumsum(take) - take
        ages = np.arange(int(take.sum())) - np.repeat(starts, take)
        positions = self.offsets[1:][rows] - 1 - ages
        return rows, self.items[positions], ages

    def history(self, n_items: int, n: int = 0, decay: float = 1.0, age: int | None = None) -> sp.csr_matrix:
        """(sessions x items) sparse weights of the last ``n`` items (0: all), each ``decay ** age``;
        an item seen twice adds up. With ``age``, only the items of exactly that age."""
        rows, items, ages = self.recent(n)
        if age is not None:
            keep = ages == age
            rows, items, ages = rows[keep], items[keep], ages[keep]
        weights = np.power(float(decay), ages.astype(np.float64))
        matrix = sp.csr_matrix((weights, (rows, items)), shape=(len(self), n_items))
        matrix.sum_duplicates()
        return matrix


def encode(index: Mapping[str, int], sessions: Sessions | Sequence[Sequence[str]]) -> SessionBatch:
    """Sessions of item strings as a batch over a catalogue's ``index``; unknown items are dropped
    and named in ``unknown``. An empty input session is refused (it has nothing to score from)."""
    if isinstance(sessions, Sessions):
        lookup = np.fromiter(
            (index.get(item, -1) for item in sessions.vocab.tolist()), dtype=np.int64, count=len(sessions.vocab)
        )
        codes, offsets = sessions.codes, sessions.offsets
        raw = lookup[codes]
        names = sessions.vocab
    else:
        lists = [list(s) for s in sessions]
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in lists], out=offsets[1:])
        flat = [item for s in lists for item in s]
        raw = np.fromiter((index.get(item, -1) for item in flat), dtype=np.int64, count=len(flat))
        codes, names = np.arange(len(flat)), np.array(flat, dtype=object)
    offsets = np.asarray(offsets, dtype=np.int64)
    empty = np.flatnonzero(np.diff(offsets) == 0)
    if len(empty):
        raise SessrecError(f"session {int(empty[0])} is empty; a session needs at least one item to score from")
    known = raw >= 0
    query = raw[offsets[1:] - 1]
    if known.all():
        return SessionBatch(raw, offsets, (), query)
    unknown = tuple(dict.fromkeys(names[codes[~known]].tolist()))
    session_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    new_offsets = np.zeros_like(offsets)
    np.cumsum(np.bincount(session_of[known], minlength=len(offsets) - 1), out=new_offsets[1:])
    return SessionBatch(raw[known], new_offsets, unknown, query)


class SessionScorer(Protocol):
    """What every session recommender offers (fit, then score batches of sessions)."""

    #: Registry name ("sr", "w2v_session", ...).
    name: ClassVar[str]
    #: False when scores are continuous (cosines); ranking still breaks exact ties by item index.
    ties_possible: ClassVar[bool]

    keys: np.ndarray  # the catalogue, object array of item strings
    index: dict[str, int]

    @property
    def n_items(self) -> int:
        """The catalogue's size (the columns of :meth:`scores`)."""
        ...

    @property
    def item_mode(self) -> bool:
        """True when the scores depend on the last item only, so the model also runs in item mode."""
        ...

    def fit(self, train: Sessions) -> SessionScorer:
        """Fit on the training sessions; returns the fitted model."""
        ...

    def scores(self, batch: SessionBatch) -> np.ndarray:
        """Dense (len(batch) x n_items) float64 scores; higher is better."""
        ...

    def params(self) -> dict[str, Any]:
        """JSON-able parameters, ``{"model": name, ...}``: with :meth:`to_arrays`, all it takes to rebuild."""
        ...

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as plain numeric or unicode arrays (``np.savez`` without pickle)."""
        ...


@dataclass
class Fitted:
    """Catalogue bookkeeping shared by the recommenders."""

    keys: np.ndarray = field(init=False, repr=False)
    index: dict[str, int] = field(init=False, repr=False)

    def _set_catalogue(self, keys: np.ndarray) -> None:
        self.keys = np.asarray(keys, dtype=object)
        self.index = {key: i for i, key in enumerate(self.keys.tolist())}

    @property
    def n_items(self) -> int:
        """The catalogue's size; an unfitted model is a SessrecError."""
        self._check_fitted()
        return len(self.keys)

    def variant(self, **params: Any) -> Any:
        """A copy sharing this fitted state with other scoring parameters (``last_n``, ``decay``,
        a hybrid's ``components``...), checked as at construction: a grid over how sessions are scored
        needs one fit. Parameters the fit depends on (``steps``, ``weighting``, word2vec's) need a new fit;
        a transitions variant may lower ``last_n`` only."""
        self._check_fitted()
        copy = dataclasses.replace(self, **params)
        copy._set_catalogue(self.keys)
        return copy

    def _check_fitted(self) -> None:
        if not hasattr(self, "keys"):
            raise SessrecError(f"the {type(self).__name__} recommender is not fitted; call fit(train) first")


# -- parameters ------------------------------------------------------------------------------


def check_number(what: str, value: Any, kind: type, low: float, high: float) -> Any:
    """``value`` as ``kind`` (int or float) within [low, high], or a one-line SessrecError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SessrecError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise SessrecError(f"{what} must be a finite number, got {value}")
    if kind is int:
        if float(value) != int(value):
            raise SessrecError(f"{what} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if not low <= value <= high:
        raise SessrecError(f"{what} must lie in [{low:g}, {high:g}], got {value}")
    return value


def check_choice(what: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``, else a one-line SessrecError naming
    ``what``."""
    if not isinstance(value, str) or value not in choices:
        raise SessrecError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Param:
    """One parameter of a recommender: its kind ("int", "float", "choice" or "bool"), bounds or
    choices, and default. Each model module defines its ``PARAMS`` once; the model checks its
    fields against them and the registry hands them to whatever validates a sweep or a command line."""

    kind: str
    default: Any
    low: float = -math.inf
    high: float = math.inf
    choices: tuple[str, ...] = ()

    def check(self, what: str, value: Any) -> Any:
        """``value`` checked against this parameter and normalised (an int, float, bool or choice),
        or a one-line SessrecError naming ``what``."""
        if self.kind == "choice":
            return check_choice(what, value, self.choices)
        if self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise SessrecError(f"{what} must be true or false, got {value!r}")
            return bool(value)
        return check_number(what, value, int if self.kind == "int" else float, self.low, self.high)


def check_fields(model: Any, params: Mapping[str, Param]) -> None:
    """Check and normalise a model's parameter fields in place (one-line SessrecError if bad)."""
    for key, param in params.items():
        setattr(model, key, param.check(f"{model.name} parameter {key}", getattr(model, key)))


# -- arrays ----------------------------------------------------------------------------------


def keys_array(keys: np.ndarray) -> np.ndarray:
    """Item strings as a fixed-width unicode array (stored without pickle)."""
    return np.asarray(keys.tolist(), dtype=np.str_) if len(keys) else np.zeros(0, dtype="<U1")


def sparse_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as the plain arrays ``PREFIX.data``, ``PREFIX.indices`` and
    ``PREFIX.indptr``."""
    return {f"{prefix}.data": matrix.data, f"{prefix}.indices": matrix.indices, f"{prefix}.indptr": matrix.indptr}


def sparse_from(prefix: str, arrays: Mapping[str, np.ndarray], n_items: int) -> sp.csr_matrix:
    """The (n_items x n_items) CSR matrix that :func:`sparse_arrays` stored under ``prefix``;
    missing or inconsistent arrays are a SessrecError."""
    try:
        parts = (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"])
        return sp.csr_matrix(parts, shape=(n_items, n_items))
    except (KeyError, ValueError) as exc:
        raise SessrecError(f"stored recommender is incomplete or corrupt ({prefix}): {exc}") from None


def stored_keys(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The catalogue stored as ``arrays["keys"]``, as an object array of strings; no keys array is a
    SessrecError."""
    if "keys" not in arrays:
        raise SessrecError("stored recommender has no 'keys' array (its catalogue)")
    return np.asarray(arrays["keys"].tolist(), dtype=object)


#: Popularity tie-breaks stay below this: far below any weight a count model adds (decay ** age of 1e-9
#: and less are not meaningful), so they only order items of equal score.
TIEBREAK_SCALE = 1e-9


def popularity_tiebreak(train: Sessions, keys_mask: np.ndarray, scale: float = TIEBREAK_SCALE) -> np.ndarray:
    """Popularity scaled into [0, scale): added to count scores, it orders items of equal score by
    popularity (as the transitions baseline does) without reordering any others whose scores differ
    by more than ``scale``. It does not depend on the scoring parameters, so variants share it."""
    counts = train.item_counts()[keys_mask].astype(np.float64)
    return counts / (counts.max() + 1.0) * scale if len(counts) else counts
