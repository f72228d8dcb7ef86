import numpy as np
import pytest

from sessrec.core.session_metrics import session_pairs, split_session_pairs
from sessrec.core.split import next_item_split
from sessrec.core.synth import synth_sessions
from sessrec.errors import SessrecError
from tests.helpers import sessions


def test_split_uses_the_protocol_rng_call():
    data = synth_sessions(n_sessions=300, seed=1)
    split = next_item_split(data, 50, seed=7)
    chosen = np.random.default_rng(7).choice(len(data), 100, replace=False)
    lists = data.to_lists()
    assert list(split.test.queries) == [lists[i][-2] for i in chosen[:50]]
    assert list(split.test.targets) == [lists[i][-1] for i in chosen[:50]]
    assert list(split.validation.targets) == [lists[i][-1] for i in chosen[50:]]
    assert split.train.to_lists() == [s[:-1] for s in lists]
    assert (split.seed, split.n) == (7, 50)


def test_session_pairs_of_a_split_are_the_sessions_pairs():
    data = synth_sessions(n_sessions=300, seed=2)
    lists = data.to_lists()
    chosen = np.random.default_rng(5).choice(len(data), 80, replace=False)
    from_split = split_session_pairs(next_item_split(data, 40, seed=5))
    for made, (part, rows) in zip(from_split, ((0, chosen[:40]), (1, chosen[40:]))):
        direct = session_pairs(data, 40, 5)[part]
        assert made.sessions.to_lists() == direct.sessions.to_lists() == [lists[i][:-1] for i in rows]
        assert list(made.targets) == list(direct.targets) == [lists[i][-1] for i in rows]


def test_split_is_reproducible_and_seed_dependent():
    data = synth_sessions(n_sessions=300, seed=1)
    a, b, c = (next_item_split(data, 50, s) for s in (0, 0, 1))
    assert list(a.test.queries) == list(b.test.queries)
    assert list(a.validation.targets) != list(c.validation.targets) or list(a.test.targets) != list(c.test.targets)


@pytest.mark.parametrize("n, message", [(0, "at least 1"), (3, "too few sessions")])
def test_split_errors(n, message):
    with pytest.raises(SessrecError, match=message):
        next_item_split(sessions(["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]), n, 0)


def test_split_needs_two_items_per_session():
    with pytest.raises(SessrecError, match="fewer than 2"):
        next_item_split(sessions(["a", "b"], ["c"]), 1, 0)
