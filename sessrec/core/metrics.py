"""Recall@K and MRR@K for many queries at once.

A scorer gives a dense block of scores for a batch of query items over a range of items. The
ground truth's rank is counted directly (how many items beat it, ties broken by item index):
that needs no sort and gives the same answer as a top K + 1 list with the query removed.
Scores are made and compared block by block (rows x items small enough to stay in the CPU
cache), so memory stays bounded and the compare pass does not go back to main memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from sessrec.errors import SessrecError

#: Queries and items per block: 128 x 8192 float32 scores (4 MiB) fit in cache while compared.
ROW_BLOCK = 128
ITEM_BLOCK = 8192
#: Upper bound on a full score matrix made at once (top_k), in cells (64 MiB of float32).
MAX_BATCH_CELLS = 16 * 1024 * 1024


def metric_label(metric: str, k: int | None) -> str:
    """recall_at_k with K 10 reads Recall@10 (without K, the metric keeps its name)."""
    name = {"recall_at_k": "Recall", "mrr_at_k": "MRR"}.get(metric)
    return f"{name}@{k}" if name and isinstance(k, int) else metric


class Scorer(Protocol):
    """Anything that scores items for a batch of query items."""

    @property
    def index(self) -> Mapping[str, int]:
        """Item string -> index into the scored items; an item missing from it is unknown."""
        ...

    #: False when scores are continuous (cosine): exact ties between items are then left to
    #: chance, as in gensim, and the tie pass is skipped.
    ties_possible: bool

    @property
    def n_items(self) -> int:
        """The number of items scored (the columns of :meth:`scores`)."""
        ...

    def scores(self, query_idx: np.ndarray, items: slice = slice(None)) -> np.ndarray:
        """Dense scores of the items in ``items`` for each query index: (len(query_idx) x items),
        higher is better."""
        ...

    def pair_scores(self, query_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """The score of item ``item_idx[i]`` for query ``query_idx[i]``, one per pair, as
        :meth:`scores` gives it."""
        ...


def batch_size_for(n_items: int) -> int:
    """How many queries :func:`top_k` scores at once over ``n_items`` items (at least 1), so that
    their scores stay within MAX_BATCH_CELLS."""
    return max(1, MAX_BATCH_CELLS // max(n_items, 1))


def to_indices(index: Mapping[str, int], items: Sequence[str] | np.ndarray) -> np.ndarray:
    """Item strings to indices; -1 for items the scorer does not know."""
    return np.fromiter((index.get(item, -1) for item in items), dtype=np.int64, count=len(items))


def target_ranks(
    scorer: Scorer, query_idx: np.ndarray, target_idx: np.ndarray, beyond: int | None = None
) -> np.ndarray:
    """1-based rank of each target among all items but the query; 0 where it cannot be ranked
    (query or target unknown, or target equal to the query, which is never recommended).

    With ``beyond``, a rank past it is only known to be past it and reads ``beyond + 1``: a row
    leaves the count once ``beyond`` items beat its target, so a target far down the list costs
    the first item blocks only (Recall@K and MRR@K need no more than whether the rank is <= K).
    """
    ranks = np.zeros(len(query_idx), dtype=np.int64)
    rankable = np.flatnonzero((query_idx >= 0) & (target_idx >= 0) & (query_idx != target_idx))
    for start in range(0, len(rankable), ROW_BLOCK):
        rows = rankable[start : start + ROW_BLOCK]
        truth = np.asarray(scorer.pair_scores(query_idx[rows], target_idx[rows]))
        better = np.zeros(len(rows), dtype=np.int64)
        counting = np.arange(len(rows))  # the rows whose rank is still open
        for low in range(0, scorer.n_items, ITEM_BLOCK):
            high = min(low + ITEM_BLOCK, scorer.n_items)
            queries, targets = query_idx[rows[counting]], target_idx[rows[counting]]
            block = np.asarray(scorer.scores(queries, slice(low, high)))
            # The query and the target themselves never count as beating the target.
            for own in (queries, targets):
                inside = np.flatnonzero((own >= low) & (own < high))
                block[inside, own[inside] - low] = -np.inf
            row_truth = truth[counting, None]
            better[counting] += np.count_nonzero(block > row_truth, axis=1)
            if scorer.ties_possible:
                earlier = np.arange(low, high) < targets[:, None]
                better[counting] += np.count_nonzero((block == row_truth) & earlier, axis=1)
            if beyond is not None:
                counting = counting[better[counting] < beyond]
                if not len(counting):
                    break
        ranks[rows] = better + 1 if beyond is None else np.minimum(better + 1, beyond + 1)
    return ranks


def evaluate(
    scorer: Scorer, queries: Sequence[str] | np.ndarray, targets: Sequence[str] | np.ndarray, k: int = 10
) -> dict[str, float]:
    """Recall@K and MRR@K over all pairs; unknown queries count as misses."""
    if k < 1:
        raise SessrecError(f"K must be at least 1, got {k}")
    if len(queries) != len(targets) or len(queries) == 0:
        raise SessrecError("evaluation needs the same positive number of queries and targets")
    ranks = target_ranks(scorer, to_indices(scorer.index, queries), to_indices(scorer.index, targets), beyond=k)
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
    if len(query_idx) > batch_size_for(scorer.n_items):
        raise SessrecError(f"too many queries at once for {scorer.n_items} items; ask in batches")
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
