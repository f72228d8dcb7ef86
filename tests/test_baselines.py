from collections import Counter, defaultdict

import pytest

from sessrec.core import baselines
from sessrec.core.metrics import to_indices
from sessrec.core.synth import synth_sessions


def _dense_scores(scorer, items):
    return scorer.scores(to_indices(scorer.index, items))


@pytest.fixture(scope="module")
def train():
    return synth_sessions(n_sessions=150, n_items=60, n_clusters=6, seed=2)


def test_association_rules_count_all_ordered_position_pairs(train):
    naive: dict[str, Counter] = defaultdict(Counter)
    for session in train.to_lists():
        for i, x in enumerate(session):
            for j, y in enumerate(session):
                if i != j:
                    naive[x][y] += 1
    scorer = baselines.association_rules(train)
    items = list(scorer.index)
    scores = _dense_scores(scorer, items)
    for row, x in enumerate(items):
        for y, col in scorer.index.items():
            if y != x:
                assert scores[row, col] == naive[x][y], (x, y)


def test_transitions_count_direct_successors_with_popularity_fill_in(train):
    naive: dict[str, Counter] = defaultdict(Counter)
    for session in train.to_lists():
        for x, y in zip(session, session[1:]):
            naive[x][y] += 1
    popular = Counter(item for session in train.to_lists() for item in session)
    scorer = baselines.transitions(train)
    items = list(scorer.index)
    scores = _dense_scores(scorer, items)
    for row, x in enumerate(items):
        for y, col in scorer.index.items():
            assert int(scores[row, col]) == naive[x][y]
            assert 0 <= scores[row, col] - naive[x][y] < 1
    # Among items with equal transition counts, the more popular ranks first.
    row = scores[0]
    zero = [col for y, col in scorer.index.items() if naive[items[0]][y] == 0]
    by_score = sorted(zero, key=lambda c: -row[c])
    pops = [popular[train.vocab[c]] for c in by_score]
    assert pops == sorted(pops, reverse=True)


def test_popularity_scores_are_counts(train):
    scorer = baselines.popularity(train)
    counts = Counter(item for session in train.to_lists() for item in session)
    scores = _dense_scores(scorer, ["I000001", "I000002"])
    for item, col in scorer.index.items():
        assert scores[0, col] == scores[1, col] == counts[item]


def test_items_unseen_in_training_are_out_of_vocabulary():
    from tests.helpers import sessions

    train = sessions(["a", "b"], ["b", "c"]).drop_last()  # 'b' and 'c' appear only as last items
    for method in baselines.METHODS:
        scorer = baselines.build(method, train)
        assert set(scorer.index) == {"a", "b"}
