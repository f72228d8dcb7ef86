"""Sequential rules (SR; Ludewig & Jannach 2018).

In: training sessions; ``steps``, a gap ``weighting`` and how many of the session's last items
score (``last_n``, each weighted ``decay ** age``). Fit: for each pair (a at position i, b at
position i + g) of a training session with 1 <= g <= steps, add ``w(g)`` to rule a -> b, where
``w`` is 1/g ("gap"), (steps - g + 1) / steps ("linear") or 1 ("ones"); the rules are one sparse
items x items matrix. Out: ``sum(decay ** age * rules[item])`` over the session's last items.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from sessrec.core.recommenders.base import (
    Fitted,
    Param,
    SessionBatch,
    catalogue,
    check_fields,
    keys_array,
    popularity_tiebreak,
    sparse_arrays,
    sparse_from,
    stored_keys,
)
from sessrec.core.sessions import Sessions

WEIGHTINGS = ("gap", "linear", "ones")
PARAMS = {
    "steps": Param("int", 20, 1, 1000),
    "weighting": Param("choice", "gap", choices=WEIGHTINGS),
    "last_n": Param("int", 1, 1, 10_000),
    "decay": Param("float", 1.0, 0.0, 1.0),
    "tiebreak": Param("bool", False),
}
#: Pairs turned into a sparse matrix at once while fitting (bounds the fit's temporary memory).
PAIR_CHUNK = 4_000_000


def gap_weight(weighting: str, gap: int, steps: int) -> float:
    """The weight of a rule a -> b with b ``gap`` positions after a, by ``weighting``: 1/gap for
    "gap", (steps - gap + 1)/steps for "linear", else 1."""
    if weighting == "gap":
        return 1.0 / gap
    if weighting == "linear":
        return (steps - gap + 1) / steps
    return 1.0


def catalogue_codes(train: Sessions) -> np.ndarray:
    """Each training event's item as an index into :func:`catalogue` (int32)."""
    seen = train.item_counts() > 0
    remap = np.cumsum(seen) - 1
    return remap[train.codes].astype(np.int32)


def gap_pairs(train: Sessions, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) catalogue indices of every b that follows a exactly ``gap`` positions later in a session."""
    codes = catalogue_codes(train)
    session_of = np.repeat(np.arange(len(train)), train.lengths)
    position = np.arange(train.n_events) - train.offsets[:-1][session_of]
    first = np.flatnonzero(position + gap < train.lengths[session_of])
    return codes[first], codes[first + gap]


def pair_matrix(chunks: Iterator[tuple[np.ndarray, np.ndarray, float]], n_items: int) -> sp.csr_matrix:
    """Sum of weighted (a, b) pair counts as a sparse items x items matrix, built chunk by chunk."""
    total = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    size = 0

    def flush() -> sp.csr_matrix:
        rows = np.concatenate([p[0] for p in pending])
        cols = np.concatenate([p[1] for p in pending])
        weights = np.concatenate([p[2] for p in pending])
        part = sp.csr_matrix((weights, (rows, cols)), shape=(n_items, n_items))
        part.sum_duplicates()
        return total + part

    for a, b, weight in chunks:
        pending.append((a, b, np.full(len(a), weight)))
        size += len(a)
        if size >= PAIR_CHUNK:
            total, pending, size = flush(), [], 0
    if pending:
        total = flush()
    total.sort_indices()
    return total


@dataclass
class SequentialRules(Fitted):
    """Sequential rules (see the module): one sparse items x items rule matrix, scored from the
    session's last ``last_n`` items."""

    name: ClassVar[str] = "sr"
    ties_possible: ClassVar[bool] = True
    steps: int = 20
    weighting: str = "gap"
    last_n: int = 1
    decay: float = 1.0
    #: Order items of equal score by popularity (a fill-in far below any rule's weight).
    tiebreak: bool = False
    rules: sp.csr_matrix | None = field(default=None, repr=False)
    fill: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_fields(self, PARAMS)

    @property
    def item_mode(self) -> bool:
        """True when only the last item scores (``last_n == 1``)."""
        return self.last_n == 1

    def fit(self, train: Sessions) -> SequentialRules:
        """Build the rule matrix from ``train`` (and, with ``tiebreak``, the popularity tie-break);
        returns the model."""
        keys = catalogue(train)
        self._set_catalogue(keys)
        chunks = ((*gap_pairs(train, g), gap_weight(self.weighting, g, self.steps)) for g in range(1, self.steps + 1))
        self.rules = pair_matrix(chunks, len(keys))
        self.fill = popularity_tiebreak(train, train.item_counts() > 0) if self.tiebreak else None
        return self

    def scores(self, batch: SessionBatch) -> np.ndarray:
        """Dense (len(batch) x n_items) float64: ``sum(decay ** age * rules[item])`` over the
        session's last ``last_n`` items, plus the tie-break if any."""
        self._check_fitted()
        assert self.rules is not None
        out = (batch.history(self.n_items, self.last_n, self.decay) @ self.rules).toarray()
        if self.fill is not None:
            out += self.fill
        return out

    def params(self) -> dict[str, Any]:
        """The model's parameters, JSON-able: ``{"model": "sr", "steps": ..., ...}``."""
        return {
            "model": self.name,
            "steps": self.steps,
            "weighting": self.weighting,
            "last_n": self.last_n,
            "decay": self.decay,
            "tiebreak": self.tiebreak,
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The catalogue (``keys``), the rule matrix (``rules.*``) and, with the tie-break,
        ``fill``."""
        self._check_fitted()
        assert self.rules is not None
        arrays = {"keys": keys_array(self.keys), **sparse_arrays("rules", self.rules)}
        if self.fill is not None:
            arrays["fill"] = self.fill
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> SequentialRules:
        """The fitted model from :meth:`to_arrays` and :meth:`params`; missing or corrupt arrays are
        a SessrecError."""
        model = cls(**{key: value for key, value in params.items() if key != "model"})
        model._set_catalogue(stored_keys(arrays))
        model.rules = sparse_from("rules", arrays, len(model.keys))
        model.fill = np.asarray(arrays["fill"], dtype=np.float64) if "fill" in arrays else None
        return model
