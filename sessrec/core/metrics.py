"""Recall@K and MRR@K for many queries at once.

A scorer maps a batch of query item indices to a dense (batch x items) score matrix. The
ground truth's rank is counted directly (how many items beat it, ties broken by item index),
which is one vectorized pass over the scores and gives the same answer as sorting a top K + 1
list with the query removed. Queries run in batches so memory stays bounded for large catalogues.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import numpy as np

from sessrec.errors import SessrecError

#: Upper bound on one batch's score matrix, in float32 cells (64 MiB).
MAX_BATCH_CELLS = 16 * 1024 * 1024


class Scorer(Protocol):
    """Anything that scores every item for a batch of query items."""

    index: Mapping[str, int]

    @property
    def n_items(self) -> int: ...

    def scores(self, query_idx: np.ndarray) -> np.ndarray: ...


def batch_size_for(n_items: int) -> int:
    return max(1, MAX_BATCH_CELLS // max(n_items, 1))


def to_indices(index: Mapping[str, int], items: Sequence[str]) -> np.ndarray:
    """Item strings to indices; -1 for items the scorer does not know."""
    return np.fromiter((index.get(item, -1) for item in items), dtype=np.int64, count=len(items))


def target_ranks(scorer: Scorer, query_idx: np.ndarray, target_idx: np.ndarray) -> np.ndarray:
    """1-based rank of each target among all items but the query; 0 where it cannot be ranked
    (query or target unknown, or target equal to the query, which is never recommended)."""
    ranks = np.zeros(len(query_idx), dtype=np.int64)
    rankable = np.flatnonzero((query_idx >= 0) & (target_idx >= 0) & (query_idx != target_idx))
    step = batch_size_for(scorer.n_items)
    item_ids = np.arange(scorer.n_items)
    for start in range(0, len(rankable), step):
        rows = rankable[start : start + step]
        scores = np.asarray(scorer.scores(query_idx[rows]))
        local = np.arange(len(rows))
        scores[local, query_idx[rows]] = -np.inf
        truth = scores[local, target_idx[rows]][:, None]
        better = np.count_nonzero(scores > truth, axis=1)
        tied_before = np.count_nonzero((scores == truth) & (item_ids < target_idx[rows][:, None]), axis=1)
        ranks[rows] = better + tied_before + 1
    return ranks


def evaluate(scorer: Scorer, queries: Sequence[str], targets: Sequence[str], k: int = 10) -> dict[str, float]:
    """Recall@K and MRR@K over all pairs; unknown queries count as misses."""
    if k < 1:
        raise SessrecError(f"K must be at least 1, got {k}")
    if len(queries) != len(targets) or len(queries) == 0:
        raise SessrecError("evaluation needs the same positive number of queries and targets")
    ranks = target_ranks(scorer, to_indices(scorer.index, queries), to_indices(scorer.index, targets))
    hit = (ranks >= 1) & (ranks <= k)
    reciprocal = np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)
    return {"recall_at_k": float(hit.mean()), "mrr_at_k": float(reciprocal.mean()), "k": k, "pairs": len(queries)}


def top_k(scorer: Scorer, query_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The K best items for each query (query excluded), best first, ties by item index.

    Returns (indices, scores), each (queries x min(K, items - 1)).
    """
    if k < 1:
        raise SessrecError(f"K must be at least 1, got {k}")
    k = min(k, scorer.n_items - 1)
    if k < 1:
        raise SessrecError("need at least two items to recommend anything")
    scores = np.asarray(scorer.scores(query_idx), dtype=np.float64)
    scores[np.arange(len(query_idx)), query_idx] = -np.inf
    # Partition first so only a few candidates are sorted; argpartition may cut through a tie,
    # so every item scoring at least the K-th best score stays a candidate.
    kth_best = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    out_idx = np.empty((len(query_idx), k), dtype=np.int64)
    out_scores = np.empty((len(query_idx), k), dtype=np.float64)
    for row in range(len(query_idx)):
        candidates = np.flatnonzero(scores[row] >= kth_best[row])
        order = np.lexsort((candidates, -scores[row, candidates]))[:k]
        out_idx[row] = candidates[order]
        out_scores[row] = scores[row, candidates[order]]
    return out_idx, out_scores
