"""Session mode: Recall@K, MRR@K and top-K for recommenders that score whole sessions.

For each protocol pair the session is the customer's session without its last item (its training
sequence, whose last item is the query); the target is that last item. Scores come a block of
sessions at a time (sessions x catalogue, bounded by ``rows_per_block``), and the target's rank is
counted as in :mod:`sessrec.core.metrics`: how many items beat it, ties broken by item index, item
block by item block, a row leaving the count once K items beat its target. No sort.

Exclusion: ``exclude="query"`` (default) never recommends the query, as item mode does;
``exclude="session"`` never recommends any item of the session. A target that is excluded, unknown
to the model, or whose session has no known item, is a miss. ``mode="item"`` keeps only each
session's query, so the same recommender gives the item-mode figure (if it has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sessrec.core.metrics import ITEM_BLOCK, to_indices
from sessrec.core.recommenders.base import SessionBatch, SessionScorer, encode, rows_per_block
from sessrec.core.sessions import Sessions
from sessrec.core.split import Split, check_split_size
from sessrec.errors import SessrecError

MODES = ("session", "item")
EXCLUDES = ("query", "session")


@dataclass(frozen=True)
class SessionPairs:
    """Sessions so far (oldest item first; the last is the query) and the items that followed them."""

    sessions: Sessions
    targets: np.ndarray  # object array of item strings

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def queries(self) -> np.ndarray:
        """Each session's last item (its query), as an object array of item strings."""
        return self.sessions.vocab[self.sessions.codes[self.sessions.offsets[1:] - 1]]


def _subset(sessions: Sessions, chosen: np.ndarray, drop: int = 1) -> Sessions:
    """The chosen sessions without their last ``drop`` items, sharing the vocabulary."""
    lengths = sessions.lengths[chosen] - drop
    offsets = np.zeros(len(chosen) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    positions = np.repeat(sessions.offsets[:-1][chosen], lengths) + within
    return Sessions(vocab=sessions.vocab, codes=sessions.codes[positions], offsets=offsets)


def session_pairs(sessions: Sessions, n: int, seed: int) -> tuple[SessionPairs, SessionPairs]:
    """(test, validation) session pairs of the protocol's split: the same sessions, in the same order,
    as :func:`sessrec.core.split.next_item_split` (its train set is ``sessions.drop_last()``)."""
    check_split_size(len(sessions), n)
    if not 0 <= seed < 2**63:
        raise SessrecError(f"split seed must be a whole number from 0 to 2**63 - 1, got {seed}")
    if (sessions.lengths < 2).any():
        raise SessrecError("every session needs a query and an answer (at least 2 items)")
    chosen = np.random.default_rng(seed).choice(len(sessions), 2 * n, replace=False)
    targets = sessions.vocab[sessions.codes[sessions.offsets[1:][chosen] - 1]]
    return (
        SessionPairs(_subset(sessions, chosen[:n]), targets[:n]),
        SessionPairs(_subset(sessions, chosen[n:]), targets[n:]),
    )


def split_session_pairs(split: Split) -> tuple[SessionPairs, SessionPairs]:
    """:func:`session_pairs` of a split already made (``split.train`` holds every session without its
    last item, in file order, so nothing more is dropped)."""
    chosen = np.random.default_rng(split.seed).choice(len(split.train), 2 * split.n, replace=False)
    n = split.n
    return (
        SessionPairs(_subset(split.train, chosen[:n], drop=0), split.test.targets),
        SessionPairs(_subset(split.train, chosen[n:], drop=0), split.validation.targets),
    )


def check_model(model: Any, mode: str) -> None:
    """A one-line error for a model of the wrong kind for ``mode``."""
    if mode not in MODES:
        raise SessrecError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not hasattr(model, "item_mode") or not hasattr(model, "keys"):
        raise SessrecError(
            f"{type(model).__name__} scores query items, not sessions; wrap it as a session "
            "recommender (e.g. Word2VecItem().use_embeddings(...)) or use sessrec.core.metrics.evaluate"
        )
    if mode == "item" and not model.item_mode:
        raise SessrecError(
            f"recommender {model.name} scores whole sessions and has no item mode "
            "(it needs last_n = 1, or is a repeat score)"
        )


def query_only(sessions: Sessions | Sequence[Sequence[str]]) -> Sessions | list[list[str]]:
    """Item mode: each session reduced to its query (last item)."""
    if isinstance(sessions, Sessions):
        ends = sessions.offsets[1:]
        if (sessions.lengths == 0).any():
            raise SessrecError(
                f"session {int(np.flatnonzero(sessions.lengths == 0)[0])} is empty; "
                "a session needs at least one item to score from"
            )
        return Sessions(vocab=sessions.vocab, codes=sessions.codes[ends - 1], offsets=np.arange(len(ends) + 1))
    lists = [list(s) for s in sessions]
    for i, s in enumerate(lists):
        if not s:
            raise SessrecError(f"session {i} is empty; a session needs at least one item to score from")
    return [s[-1:] for s in lists]


def _excluded(scores: np.ndarray, batch: SessionBatch, exclude: str) -> None:
    """Set the excluded items' scores to -inf in place."""
    if exclude == "query":
        query = batch.queries()
        rows = np.flatnonzero(query >= 0)
        scores[rows, query[rows]] = -np.inf
    else:
        rows, items, _ = batch.recent(0)
        scores[rows, items] = -np.inf


def session_ranks(
    model: SessionScorer, batch: SessionBatch, target_idx: np.ndarray, exclude: str = "query", beyond: int | None = None
) -> np.ndarray:
    """1-based rank of each target among the items not excluded, ties broken by item index; 0 where it
    cannot be ranked. With ``beyond``, ranks past it read ``beyond + 1`` (counting stops there)."""
    if exclude not in EXCLUDES:
        raise SessrecError(f"exclude must be one of {', '.join(EXCLUDES)}, got {exclude!r}")
    ranks = np.zeros(len(batch), dtype=np.int64)
    block = rows_per_block(model.n_items)
    for start in range(0, len(batch), block):
        stop = min(start + block, len(batch))
        part = batch.rows(start, stop)
        targets = np.asarray(target_idx[start:stop], dtype=np.int64)
        scores = model.scores(part)
        _excluded(scores, part, exclude)
        rankable = np.flatnonzero((targets >= 0) & (part.lengths > 0))
        truth = scores[rankable, targets[rankable]]
        rankable, truth = rankable[np.isfinite(truth)], truth[np.isfinite(truth)]
        better = np.zeros(len(rankable), dtype=np.int64)
        counting = np.arange(len(rankable))
        for low in range(0, model.n_items, ITEM_BLOCK):
            high = min(low + ITEM_BLOCK, model.n_items)
            chunk = scores[rankable[counting], low:high]
            row_truth = truth[counting, None]
            earlier = np.arange(low, high) < targets[rankable[counting], None]
            better[counting] += np.count_nonzero((chunk > row_truth) | ((chunk == row_truth) & earlier), axis=1)
            if beyond is not None:
                counting = counting[better[counting] < beyond]
                if not len(counting):
                    break
        found = better + 1 if beyond is None else np.minimum(better + 1, beyond + 1)
        ranks[start + rankable] = found
    return ranks


def evaluate_sessions(
    model: SessionScorer,
    sessions: Sessions | Sequence[Sequence[str]],
    targets: Sequence[str] | np.ndarray,
    k: int = 10,
    mode: str = "session",
    exclude: str = "query",
) -> dict[str, Any]:
    """Recall@K and MRR@K of ``model`` over (session, target) pairs; every figure names its mode."""
    check_model(model, mode)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SessrecError(f"K must be at least 1, got {k}")
    if len(sessions) != len(targets) or len(targets) == 0:
        raise SessrecError("evaluation needs the same positive number of sessions and targets")
    batch = encode(model.index, query_only(sessions) if mode == "item" else sessions)
    ranks = session_ranks(model, batch, to_indices(model.index, list(targets)), exclude, beyond=k)
    hit = (ranks >= 1) & (ranks <= k)
    reciprocal = np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)
    return {
        "recall_at_k": float(hit.mean()),
        "mrr_at_k": float(reciprocal.mean()),
        "k": int(k),
        "pairs": len(targets),
        "mode": mode,
        "exclude": exclude,
        "unknown_items": len(batch.unknown),
        "sessions_without_known_items": int(np.count_nonzero(batch.lengths == 0)),
    }


def top_k_sessions(
    model: SessionScorer, batch: SessionBatch, k: int, exclude: str = "query"
) -> tuple[np.ndarray, np.ndarray]:
    """The K best items of each session, best first, ties by item index; (indices, scores), each
    (sessions x K). Fewer than K items left after exclusion: the rest read -1 and -inf."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SessrecError(f"K must be at least 1, got {k}")
    if exclude not in EXCLUDES:
        raise SessrecError(f"exclude must be one of {', '.join(EXCLUDES)}, got {exclude!r}")
    k = min(int(k), model.n_items)
    out_idx = np.full((len(batch), k), -1, dtype=np.int64)
    out_scores = np.full((len(batch), k), -np.inf)
    block = rows_per_block(model.n_items)
    for start in range(0, len(batch), block):
        part = batch.rows(start, min(start + block, len(batch)))
        scores = model.scores(part)
        _excluded(scores, part, exclude)
        # Partition first so that only a few candidates are sorted; every item scoring at least the
        # K-th best stays a candidate (argpartition may cut through a tie).
        kth_best = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
        for row in range(len(part)):
            candidates = np.flatnonzero((scores[row] >= kth_best[row]) & np.isfinite(scores[row]))
            order = np.lexsort((candidates, -scores[row, candidates]))[:k]
            out_idx[start + row, : len(order)] = candidates[order]
            out_scores[start + row, : len(order)] = scores[row, candidates[order]]
    return out_idx, out_scores


@dataclass(frozen=True)
class Recommendations:
    """What :func:`recommend` returns: for each session, its (item, score) list, best first."""

    items: list[list[tuple[str, float]]]
    #: Input items the model did not know; the sessions were scored from their known items.
    unknown: tuple[str, ...]


def recommend(
    model: SessionScorer, sessions: Sequence[Sequence[str]], k: int = 10, mode: str = "session", exclude: str = "query"
) -> Recommendations:
    """The K best items for each session (item strings and scores), naming the unknown input items."""
    check_model(model, mode)
    batch = encode(model.index, query_only(sessions) if mode == "item" else sessions)
    empty = np.flatnonzero(batch.lengths == 0)
    if len(empty):
        raise SessrecError(
            f"session {int(empty[0])} has no item the model knows (unknown: {', '.join(map(repr, batch.unknown[:5]))})"
        )
    best, scores = top_k_sessions(model, batch, k, exclude)
    keys = model.keys
    items = [
        [(keys[j], float(s)) for j, s in zip(row_idx, row_scores, strict=True) if j >= 0]
        for row_idx, row_scores in zip(best, scores, strict=True)
    ]
    return Recommendations(items, batch.unknown)
