"""Count-based baselines, each a scorer over the items of the training sessions.

- popularity: how often each item was bought.
- association rules: how often y shares a session with x, over all ordered pairs of positions.
- transitions: how often y directly follows x, with popularity filling in the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from sessrec.core.sessions import Sessions

if TYPE_CHECKING:
    from sessrec.core.metrics import Scorer

METHODS = ("popular", "assoc", "transitions")


def _index(sessions: Sessions) -> dict[str, int]:
    """Items seen in training; others are out of vocabulary, as they are for word2vec."""
    seen = sessions.item_counts() > 0
    return {item: i for i, item in enumerate(sessions.vocab.tolist()) if seen[i]}


def _session_of_event(sessions: Sessions) -> np.ndarray:
    return np.repeat(np.arange(len(sessions)), sessions.lengths)


@dataclass
class PopularityScorer:
    """Scores each item by its count in the training sessions, the same for every query; ``index``
    holds the items seen in training."""

    counts: np.ndarray
    index: dict[str, int] = field(repr=False)
    ties_possible = True

    @property
    def n_items(self) -> int:
        """The number of items scored: one per vocabulary item (``len(counts)``)."""
        return len(self.counts)

    def scores(self, query_idx: np.ndarray, items: slice = slice(None)) -> np.ndarray:
        """Each item's count as float64, one identical row per query: (len(query_idx) x items in
        ``items``)."""
        counts = self.counts[items].astype(np.float64)
        return np.broadcast_to(counts, (len(query_idx), len(counts))).copy()

    def pair_scores(self, query_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """The count of each item of ``item_idx`` as float64 (the queries play no part)."""
        return self.counts[item_idx].astype(np.float64)


@dataclass
class SparseRowScorer:
    """Scores are rows of a sparse item x item count matrix, plus an optional fill-in that only
    orders items with equal counts (it stays below 1, the smallest count step)."""

    matrix: sp.csr_matrix
    index: dict[str, int] = field(repr=False)
    fill_in: np.ndarray | None = None
    ties_possible = True

    @property
    def n_items(self) -> int:
        """The number of items scored (the matrix's columns)."""
        return self.matrix.shape[1]

    def scores(self, query_idx: np.ndarray, items: slice = slice(None)) -> np.ndarray:
        """The matrix's rows ``query_idx`` over the ``items`` columns, plus the fill-in, as dense
        float64 (queries x items)."""
        scores = self.matrix[query_idx][:, items].toarray().astype(np.float64)
        if self.fill_in is not None:
            scores += self.fill_in[items]
        return scores

    def pair_scores(self, query_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``matrix[query, item]`` of each (query, item) pair, plus the item's fill-in, as
        float64."""
        scores = np.asarray(self.matrix[query_idx, item_idx], dtype=np.float64).ravel()
        return scores + self.fill_in[item_idx] if self.fill_in is not None else scores


@dataclass
class CooccurrenceScorer:
    """Association rules without materialising the item x item matrix: the counts for a batch of
    queries are (session x query) counts transposed times (session x item) counts."""

    by_session: sp.csc_matrix  # sessions x items, event counts
    index: dict[str, int] = field(repr=False)
    ties_possible = True

    @property
    def n_items(self) -> int:
        """The number of items scored (the columns of ``by_session``)."""
        return self.by_session.shape[1]

    def scores(self, query_idx: np.ndarray, items: slice = slice(None)) -> np.ndarray:
        """For each query x and item y of ``items``, the sum over training sessions of
        count(x)*count(y), as dense float64 (queries x items)."""
        queries = self.by_session[:, query_idx]
        # Pairs of distinct positions: for y != x that is count(x) * count(y) per session; the
        # diagonal (x with itself) is never recommended, so it needs no correction.
        return (queries.T @ self.by_session[:, items]).toarray().astype(np.float64)

    def pair_scores(self, query_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """The same sum for each (query, item) pair alone, as float64."""
        queries = self.by_session[:, query_idx]
        targets = self.by_session[:, item_idx]
        return np.asarray(queries.multiply(targets).sum(axis=0), dtype=np.float64).ravel()


def popularity(train: Sessions) -> PopularityScorer:
    """The popularity baseline of ``train``: each item scored by its count there."""
    return PopularityScorer(counts=train.item_counts(), index=_index(train))


def association_rules(train: Sessions) -> CooccurrenceScorer:
    """The association-rules baseline of ``train``: y scored by how often it shares a session with x
    (count(x) * count(y) per session)."""
    n_items = len(train.vocab)
    counts = sp.csc_matrix(
        (np.ones(train.n_events, dtype=np.float64), (_session_of_event(train), train.codes)),
        shape=(len(train), n_items),
    )
    counts.sum_duplicates()
    return CooccurrenceScorer(by_session=counts, index=_index(train))


def transitions(train: Sessions) -> SparseRowScorer:
    """The transitions baseline of ``train``: y scored by how often it directly follows x, items of
    equal count ordered by popularity (a fill-in below 1)."""
    n_items = len(train.vocab)
    follows = np.ones(train.n_events, dtype=bool)
    follows[train.offsets[:-1][train.lengths > 0]] = False  # the first item of a session follows nothing
    current = train.codes[follows]
    previous = train.codes[np.flatnonzero(follows) - 1]
    matrix = sp.csr_matrix((np.ones(len(current), dtype=np.float64), (previous, current)), shape=(n_items, n_items))
    matrix.sum_duplicates()
    popular = train.item_counts().astype(np.float64)
    return SparseRowScorer(matrix=matrix, index=_index(train), fill_in=popular / (popular.max() + 1.0))


def build(method: str, train: Sessions) -> Scorer:
    """The baseline ``method`` (one of :data:`METHODS`) fitted on ``train``; an unknown method is a
    ``KeyError``."""
    builders: dict[str, Callable[[Sessions], Scorer]] = {
        "popular": popularity,
        "assoc": association_rules,
        "transitions": transitions,
    }
    return builders[method](train)
