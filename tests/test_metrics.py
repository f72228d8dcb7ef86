import numpy as np
import pytest
from gensim.models import KeyedVectors

from benchmarks.evaluation import naive_loop  # the reference loop: gensim's most_similar per query
from sessrec.core import metrics
from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate, target_ranks, to_indices, top_k
from sessrec.errors import SessrecError


def _random_embeddings(n_items=300, dims=16, seed=0) -> Embeddings:
    rng = np.random.default_rng(seed)
    keys = np.array([f"item-{i}" for i in range(n_items)], dtype=object)
    return Embeddings(keys, rng.normal(size=(n_items, dims)).astype(np.float32))


@pytest.mark.parametrize("k", [1, 5, 10, 50])
def test_vectorized_equals_gensim_most_similar(k, monkeypatch):
    emb = _random_embeddings()
    rng = np.random.default_rng(1)
    queries = list(rng.choice(emb.keys, 400)) + ["unknown-item"]
    targets = list(rng.choice(emb.keys, 400)) + ["item-1"]
    targets[:20] = queries[:20]  # repeats: the query itself is never recommended
    # Small batches, so batch boundaries are exercised too.
    monkeypatch.setattr(metrics, "ROW_BLOCK", 7)
    monkeypatch.setattr(metrics, "ITEM_BLOCK", 64)
    result = evaluate(emb, queries, targets, k)
    loop = naive_loop(emb, queries, targets, k)
    assert result["recall_at_k"] == pytest.approx(loop["recall_at_k"], abs=1e-12)
    assert result["mrr_at_k"] == pytest.approx(loop["mrr_at_k"], abs=1e-12)
    assert result["pairs"] == len(queries)


def test_top_k_matches_gensim_and_ranks_agree():
    emb = _random_embeddings(n_items=120)
    kv = KeyedVectors(vector_size=emb.dims)
    kv.add_vectors(list(emb.keys), emb.vectors)
    queries = to_indices(emb.index, ["item-3", "item-77"])
    best, scores = top_k(emb, queries, 10)
    for row, q in enumerate(["item-3", "item-77"]):
        expected = kv.most_similar(q, topn=10)
        assert [emb.keys[i] for i in best[row]] == [key for key, _ in expected]
        assert scores[row] == pytest.approx([s for _, s in expected], abs=1e-6)
        ranks = target_ranks(emb, np.repeat(queries[row], 10), best[row])
        assert list(ranks) == list(range(1, 11))


class _FixedScores:
    """A scorer with hand-written scores, to check ties and edge cases."""

    def __init__(self, rows: dict[int, list[float]]):
        self.rows = rows
        self.index = {f"i{j}": j for j in range(len(next(iter(rows.values()))))}

    @property
    def n_items(self):
        return len(self.index)

    ties_possible = True

    def scores(self, query_idx, items=slice(None)):
        return np.array([self.rows[int(q)] for q in query_idx], dtype=np.float64)[:, items]

    def pair_scores(self, query_idx, item_idx):
        return np.array([self.rows[int(q)][int(i)] for q, i in zip(query_idx, item_idx)])


def test_ties_break_by_item_index_and_query_is_excluded(monkeypatch):
    monkeypatch.setattr(metrics, "ITEM_BLOCK", 4)  # ties that straddle a block boundary
    scorer = _FixedScores({0: [9.0, 1.0, 5.0, 5.0, 5.0, 0.0]})
    best, _ = top_k(scorer, np.array([0]), 3)
    assert list(best[0]) == [2, 3, 4]
    ranks = target_ranks(scorer, np.array([0, 0, 0, 0]), np.array([4, 2, 5, 0]))
    assert list(ranks) == [3, 1, 5, 0]


class _CountingScorer:
    """Embeddings that count the query rows they score."""

    def __init__(self, embeddings: Embeddings):
        self.embeddings, self.index, self.ties_possible = embeddings, embeddings.index, embeddings.ties_possible
        self.rows_scored = 0

    @property
    def n_items(self):
        return self.embeddings.n_items

    def scores(self, query_idx, items=slice(None)):
        self.rows_scored += len(query_idx)
        return self.embeddings.scores(query_idx, items)

    def pair_scores(self, query_idx, item_idx):
        return self.embeddings.pair_scores(query_idx, item_idx)


def test_a_rank_past_beyond_stops_being_counted(monkeypatch):
    monkeypatch.setattr(metrics, "ITEM_BLOCK", 32)  # 20 item blocks
    emb = _random_embeddings(n_items=640)
    rng = np.random.default_rng(2)
    queries, targets = (
        to_indices(emb.index, rng.choice(emb.keys, 300)),
        to_indices(emb.index, rng.choice(emb.keys, 300)),
    )
    best, _ = top_k(emb, queries[:100], 5)
    targets[:100] = best[:, 4]  # a third ranked 5th: hits that are counted through every block
    full = target_ranks(emb, queries, targets)
    counting = _CountingScorer(emb)
    capped = target_ranks(counting, queries, targets, beyond=10)
    assert np.array_equal(capped, np.where(full > 10, 11, full)) and (capped[:100] == 5).all()
    rankable = int((full > 0).sum())
    # The hits are scored over all 20 blocks; the far-off targets leave after a few.
    assert 100 * 20 <= counting.rows_scored < 100 * 20 + (rankable - 100) * 20 / 4


def test_recall_and_mrr_by_hand():
    scorer = _FixedScores({0: [0.0, 3.0, 2.0, 1.0], 1: [3.0, 0.0, 1.0, 2.0]})
    result = evaluate(scorer, ["i0", "i1", "i0", "nope"], ["i2", "i2", "i0", "i1"], k=2)
    # ranks: i2 after i0 -> 2 (hit, 1/2); i2 after i1 -> 3 (miss); repeat -> miss; unknown -> miss
    assert result["recall_at_k"] == pytest.approx(1 / 4)
    assert result["mrr_at_k"] == pytest.approx(0.5 / 4)


@pytest.mark.parametrize("k", [0, -1])
def test_k_must_be_positive(k):
    emb = _random_embeddings(10)
    with pytest.raises(SessrecError, match="K must be at least 1"):
        evaluate(emb, ["item-1"], ["item-2"], k)
    with pytest.raises(SessrecError):
        emb.recommend(["item-1"], k)


def test_batches_stay_bounded():
    assert metrics.batch_size_for(100_000) * 100_000 <= metrics.MAX_BATCH_CELLS
    assert metrics.batch_size_for(10) >= 1
