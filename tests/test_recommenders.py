"""Session recommenders (sessrec.core.recommenders) and session-mode metrics (sessrec.core.session_metrics).

Planted data: sessions whose next items follow known rules, so each recommender is checked on
what it was built for; every recommender's metrics are checked against a plain per-session loop.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter

import numpy as np
import pytest

from sessrec.core import baselines, session_metrics
from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate
from sessrec.core.recommenders import (
    Component,
    Hybrid,
    Repeat,
    SequentialRules,
    Transitions,
    Word2VecItem,
    Word2VecSession,
    base,
    build,
    check_params,
    encode,
    from_arrays,
)
from sessrec.core.session_metrics import evaluate_sessions, recommend, session_pairs, top_k_sessions
from sessrec.core.sessions import Sessions
from sessrec.core.split import next_item_split
from sessrec.core.synth import synth_sessions
from sessrec.core.word2vec import Word2VecConfig
from sessrec.errors import SessrecError

NOISE = [f"n{j:02d}" for j in range(30)]
RULE_FROM, RULE_TO, REPEATED = "r_from", "r_to", "again"


def planted(n_sessions: int = 300, seed: int = 0) -> Sessions:
    """Noise sessions with two planted patterns: ``r_from, <noise>, r_to`` (r_to follows r_from two
    steps later, never directly) and an item bought again a few steps later."""
    rng = np.random.default_rng(seed)
    lists = []
    for i in range(n_sessions):
        session = list(rng.choice(NOISE, size=int(rng.integers(2, 6))))
        if i % 3 == 0:
            session += [RULE_FROM, str(rng.choice(NOISE)), RULE_TO]
        elif i % 3 == 1:
            session += [REPEATED, *rng.choice(NOISE, size=2), REPEATED]
        lists.append(session + list(rng.choice(NOISE, size=int(rng.integers(1, 3)))))
    return Sessions.from_lists(lists)


@pytest.fixture(scope="module")
def train() -> Sessions:
    return planted()


def planted_embeddings(keys: np.ndarray, seed: int = 0) -> Embeddings:
    """Random vectors, except: 'n00' and 'n01' are orthogonal, 'n02' lies exactly between them, and
    'n03' is n01's nearest neighbour (closer to n01 than n02 is)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(keys), 16)) * 0.05
    index = {key: i for i, key in enumerate(keys.tolist())}
    e0, e1 = np.eye(16)[0], np.eye(16)[1]
    vectors[index["n00"]], vectors[index["n01"]] = e0, e1
    vectors[index["n02"]] = (e0 + e1) / math.sqrt(2)
    vectors[index["n03"]] = e1 + 0.2 * e0
    for j in range(4, 16):  # the others point elsewhere
        vectors[index[f"n{j:02d}"]] += np.eye(16)[j]
    return Embeddings(keys, vectors.astype(np.float32))


def all_models(train: Sessions) -> dict[str, object]:
    keys = base.catalogue(train)
    embeddings = planted_embeddings(keys)
    sr = SequentialRules(steps=3, last_n=3, decay=0.5).fit(train)
    return {
        "w2v_item": Word2VecItem().use_embeddings(embeddings, keys),
        "w2v_session": Word2VecSession(last_n=3, decay=0.5).use_embeddings(embeddings, keys),
        "sr": sr,
        "sr_ties": SequentialRules(steps=1, weighting="ones").fit(train),  # integer counts: many ties
        "transitions": Transitions(last_n=2, decay=0.5).fit(train),
        "repeat": Repeat(transform="count").fit(train),
        "hybrid": Hybrid([Component(sr, 1.0), Component(Repeat().fit(train), 0.3, "none")]),
    }


def top_items(model, sessions, k=1, exclude="query"):
    return [[item for item, _ in row] for row in recommend(model, sessions, k, exclude=exclude).items]


# -- each recommender finds what it was built for ------------------------------------------------


def test_sequential_rules_find_the_rule_two_steps_later(train):
    session = [["n05", RULE_FROM]]
    assert top_items(SequentialRules(steps=2).fit(train), session) == [[RULE_TO]]
    # r_to never directly follows r_from: one-step transitions rank it low, two-step ones find it
    # from the item before the query.
    assert RULE_TO not in top_items(Transitions(last_n=1).fit(train), session, k=5)[0]
    assert top_items(Transitions(last_n=2, decay=1.0).fit(train), [["n05", RULE_FROM, "n07"]]) == [[RULE_TO]]


def test_sr_decay_scores_from_the_items_before_the_query(train):
    session = [[RULE_FROM, "n04", "n09"]]
    last_only = SequentialRules(steps=3, last_n=1).fit(train)
    last_three = SequentialRules(steps=3, last_n=3, decay=0.9).fit(train)
    assert top_items(last_only, session) != [[RULE_TO]]
    assert top_items(last_three, session) == [[RULE_TO]]


def test_repeat_recommends_what_the_session_already_holds(train):
    session = [["n10", REPEATED, "n11", REPEATED, "n12", "n13"]]
    assert top_items(Repeat().fit(train), session) == [[REPEATED]]
    # Excluding every session item leaves nothing a repeat score can offer.
    assert top_items(Repeat().fit(train), session, k=1, exclude="session")[0][0] not in session[0]


def test_word2vec_session_finds_the_neighbour_of_the_mean(train):
    keys = base.catalogue(train)
    embeddings = planted_embeddings(keys)
    session = [["n00", "n01"]]
    assert top_items(Word2VecItem().use_embeddings(embeddings, keys), session) == [["n03"]]
    assert top_items(Word2VecSession(last_n=2, decay=1.0).use_embeddings(embeddings, keys), session) == [["n02"]]


def test_hybrid_weights_move_the_top_item(train):
    sr, rep = SequentialRules(steps=2).fit(train), Repeat().fit(train)
    session = [["n10", "n11", "n12", "n11", RULE_FROM]]
    assert top_items(Hybrid([Component(sr, 1.0), Component(rep, 0.1)]), session) == [[RULE_TO]]
    assert top_items(Hybrid([Component(sr, 0.1), Component(rep, 1.0)]), session) == [["n11"]]
    assert top_items(Hybrid([Component(sr, 0.0), Component(rep, 1.0)]), session) == [["n11"]]


def test_word2vec_fits_from_sessions():
    data = synth_sessions(n_sessions=400, n_items=60, n_clusters=6, seed=3)
    split = next_item_split(data, 50, 0)
    model = Word2VecSession(config=Word2VecConfig(vector_size=16, window=3, epochs=3, seed=1), last_n=2)
    model.fit(split.train)
    assert model.n_items == len(base.catalogue(split.train))
    test, _ = session_pairs(data, 50, 0)
    assert evaluate_sessions(model, test.sessions, test.targets)["recall_at_k"] > 0.2  # random: about 0.17


# -- the scores are the definitions ---------------------------------------------------------------


def naive_pairs(train: Sessions, max_gap: int) -> dict[int, Counter]:
    by_gap: dict[int, Counter] = {g: Counter() for g in range(1, max_gap + 1)}
    for session in train.to_lists():
        for i, a in enumerate(session):
            for g in range(1, max_gap + 1):
                if i + g < len(session):
                    by_gap[g][a, session[i + g]] += 1
    return by_gap


@pytest.mark.parametrize("weighting", ["gap", "linear", "ones"])
def test_sequential_rules_scores_by_hand(train, weighting):
    steps, decay = 3, 0.4
    model = SequentialRules(steps=steps, weighting=weighting, last_n=2, decay=decay).fit(train)
    weight = {"gap": lambda g: 1 / g, "linear": lambda g: (steps - g + 1) / steps, "ones": lambda g: 1.0}[weighting]
    pairs = naive_pairs(train, steps)
    session = ["n01", RULE_FROM, "n02", "n03"]
    row = model.scores(encode(model.index, [session]))[0]
    for item, col in model.index.items():
        expected = sum(
            decay**age * weight(g) * pairs[g][a, item] for age, a in enumerate(["n03", "n02"]) for g in pairs
        )
        assert row[col] == pytest.approx(expected, abs=1e-12), item


def test_transitions_scores_by_hand(train):
    model = Transitions(last_n=3, decay=0.5, tiebreak=False).fit(train)
    pairs = naive_pairs(train, 3)
    session = ["n04", REPEATED, "n01", "n02"]
    row = model.scores(encode(model.index, [session]))[0]
    for item, col in model.index.items():
        expected = sum(0.5**age * pairs[age + 1][a, item] for age, a in enumerate(["n02", "n01", REPEATED]))
        assert row[col] == pytest.approx(expected, abs=1e-12), item


def test_repeat_and_word2vec_session_scores_by_hand(train):
    session = ["n04", "n05", "n04", "n06", "n04"]
    counts = Counter(session)
    for transform, f in (("count", float), ("log", math.log1p)):
        model = Repeat(transform=transform).fit(train)
        row = model.scores(encode(model.index, [session]))[0]
        assert all(row[col] == pytest.approx(f(counts[item])) for item, col in model.index.items())
    keys = base.catalogue(train)
    embeddings = planted_embeddings(keys)
    model = Word2VecSession(last_n=3, decay=0.3).use_embeddings(embeddings, keys)
    unit = embeddings.vectors / np.linalg.norm(embeddings.vectors, axis=1, keepdims=True)
    index = {k: i for i, k in enumerate(keys.tolist())}
    mean = sum(0.3**age * unit[index[item]] for age, item in enumerate(["n04", "n06", "n04"]))
    expected = unit @ (mean / np.linalg.norm(mean))
    assert np.allclose(model.scores(encode(model.index, [session]))[0], expected, atol=1e-5)


def test_hybrid_is_the_weighted_sum_of_normalised_scores(train):
    sr, rep = SequentialRules(steps=3).fit(train), Repeat().fit(train)
    batch = encode(sr.index, [["n01", "n02", "n01"], [RULE_FROM]])
    hybrid = Hybrid([Component(sr, 0.7, "max"), Component(rep, 0.2, "none")])
    sr_rows = sr.scores(batch)
    expected = 0.7 * sr_rows / sr_rows.max(axis=1, keepdims=True) + 0.2 * rep.scores(batch)
    assert np.allclose(hybrid.scores(batch), expected)


def test_item_mode_transitions_equal_the_baseline():
    data = synth_sessions(n_sessions=600, n_items=80, n_clusters=8, seed=5)
    split = next_item_split(data, 100, 1)
    test, validation = session_pairs(data, 100, 1)
    assert list(test.queries) == list(split.test.queries) and list(validation.targets) == list(split.validation.targets)
    baseline = evaluate(baselines.transitions(split.train), split.test.queries, split.test.targets)
    ours = evaluate_sessions(Transitions().fit(split.train), test.sessions, test.targets, mode="item")
    assert (ours["recall_at_k"], ours["mrr_at_k"]) == (baseline["recall_at_k"], baseline["mrr_at_k"])
    embeddings = Embeddings(base.catalogue(split.train), np.random.default_rng(0).normal(size=(80, 8)))
    w2v = Word2VecItem().use_embeddings(embeddings, base.catalogue(split.train))
    reference = evaluate(embeddings, split.test.queries, split.test.targets)
    ours = evaluate_sessions(w2v, test.sessions, test.targets, mode="item")
    assert ours["recall_at_k"] == pytest.approx(reference["recall_at_k"])
    assert ours["mrr_at_k"] == pytest.approx(reference["mrr_at_k"])


# -- metrics equal a plain per-session loop -------------------------------------------------------


def loop_metrics(model, sessions: list[list[str]], targets: list[str], k: int, exclude: str) -> tuple[float, float]:
    """One session at a time: score it, drop the excluded items, sort by (score desc, item index)."""
    hits, reciprocal = 0, 0.0
    for session, target in zip(sessions, targets, strict=True):
        known = [item for item in session if item in model.index]
        if target not in model.index or not known:
            continue
        row = model.scores(encode(model.index, [session]))[0]
        banned = {session[-1]} if exclude == "query" else set(session)
        if target in banned:
            continue
        order = sorted((i for i in range(model.n_items) if model.keys[i] not in banned), key=lambda i: (-row[i], i))
        rank = order.index(model.index[target]) + 1
        if rank <= k:
            hits += 1
            reciprocal += 1 / rank
    return hits / len(targets), reciprocal / len(targets)


@pytest.mark.parametrize("exclude", ["query", "session"])
def test_every_recommender_matches_a_per_session_loop(train, exclude, monkeypatch):
    # Small blocks: sessions and items straddle block boundaries.
    monkeypatch.setattr(base, "MAX_BLOCK_CELLS", 7 * 40)
    monkeypatch.setattr(session_metrics, "ITEM_BLOCK", 9)
    test, _ = session_pairs(planted(n_sessions=200, seed=1), 80, 0)
    lists, targets = test.sessions.to_lists(), list(test.targets)
    lists[0] = [*lists[0][:-1], "never-seen", lists[0][-1]]  # an unknown item in a session
    lists[1] = ["never-seen"]  # a session with no known item: a miss
    targets[2] = "never-seen"  # an unknown target: a miss
    targets[3] = lists[3][-1]  # the target is the query: never recommended
    for name, model in all_models(train).items():
        for k in (1, 3, 10):
            result = evaluate_sessions(model, lists, targets, k=k, exclude=exclude)
            recall, mrr = loop_metrics(model, lists, targets, k, exclude)
            assert result["recall_at_k"] == pytest.approx(recall, abs=1e-12), (name, k)
            assert result["mrr_at_k"] == pytest.approx(mrr, abs=1e-12), (name, k)
        assert result["unknown_items"] == 1 and result["sessions_without_known_items"] == 1


def test_top_k_agrees_with_ranks_and_respects_exclusion(train):
    model = SequentialRules(steps=1, weighting="ones").fit(train)  # integer scores: ties by item index
    sessions = [["n01", "n02", "n01"], [RULE_FROM], ["n03", "n03"]]
    batch = encode(model.index, sessions)
    best, scores = top_k_sessions(model, batch, 8, exclude="session")
    for row, session in enumerate(sessions):
        full = model.scores(batch.rows(row, row + 1))[0]
        allowed = [i for i in range(model.n_items) if model.keys[i] not in set(session)]
        assert list(best[row]) == sorted(allowed, key=lambda i: (-full[i], i))[:8]
        assert np.array_equal(scores[row], full[best[row]])
    few = top_k_sessions(Repeat().fit(train), encode(model.index, [["n01"]]), model.n_items, "query")[0]
    assert few[0, -1] == -1  # every item but the query: one slot left empty


class _CountingRows:
    def __init__(self, model):
        self.model, self.largest = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def scores(self, batch):
        self.largest = max(self.largest, len(batch))
        return self.model.scores(batch)


def test_scoring_blocks_stay_bounded(train, monkeypatch):
    monkeypatch.setattr(base, "MAX_BLOCK_CELLS", 10 * 40)
    counting = _CountingRows(Repeat().fit(train))
    sessions = [["n01", "n02"]] * 95
    evaluate_sessions(counting, sessions, ["n03"] * 95)
    assert 0 < counting.largest <= base.rows_per_block(counting.n_items) == 400 // counting.n_items


# -- storage ------------------------------------------------------------------------------------


def test_every_recommender_round_trips_through_arrays_and_json(train):
    batch_lists = [["n01", RULE_FROM, "n02"], [REPEATED, "n05", REPEATED]]
    for name, model in all_models(train).items():
        buffer = io.BytesIO()
        np.savez(buffer, **model.to_arrays())
        with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        params = json.loads(json.dumps(model.params()))
        again = from_arrays(arrays, params)
        assert again.params() == model.params(), name
        batch = encode(model.index, batch_lists)
        assert np.array_equal(again.scores(batch), model.scores(batch)), name


def test_registry_builds_every_model_from_checked_params(train):
    assert check_params("sr", {"last_n": 3}) == {
        "steps": 20,
        "weighting": "gap",
        "last_n": 3,
        "decay": 1.0,
        "tiebreak": False,
    }
    hybrid = build("hybrid", {"components": [{"model": "sr", "steps": 2}, {"model": "repeat", "weight": 0.2}]})
    hybrid.fit(train)
    assert top_items(hybrid, [["n01", RULE_FROM]]) == [[RULE_TO]]
    w2v = build("w2v_session", {"vector_size": 8, "epochs": 1, "last_n": 2})
    assert (w2v.config.vector_size, w2v.config.epochs, w2v.last_n) == (8, 1, 2)
    assert {
        m: build(m, {} if m != "hybrid" else {"components": [{"model": "repeat"}]}).name
        for m in ("w2v_item", "w2v_session", "sr", "transitions", "repeat", "hybrid")
    }


# -- bad input ----------------------------------------------------------------------------------


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize(
    "name, params, fragment",
    [
        ("sr", {"steps": 0}, "sr parameter steps must lie in [1, 1000], got 0"),
        ("sr", {"decay": float("nan")}, "sr parameter decay must be a finite number"),
        ("sr", {"weighting": "cubic"}, "sr parameter weighting must be one of gap, linear, ones"),
        ("sr", {"window": 3}, "unknown sr parameter(s): window"),
        ("transitions", {"last_n": 1.5}, "must be a whole number"),
        ("repeat", {"transform": "sqrt"}, "must be one of log, count"),
        ("w2v_session", {"decay": 2}, "w2v_session parameter decay must lie in [0, 1]"),
        ("knn", {}, "unknown recommender 'knn'"),
        (
            "hybrid",
            {"components": [{"model": "sr", "weight": -1}]},
            "weight of component 0 (sr) must be a finite",
        ),
        ("hybrid", {"components": [{"model": "sr", "weight": float("nan")}]}, "must be a finite number >= 0, got nan"),
        ("hybrid", {"components": [{"model": "sr", "weight": 0}]}, "hybrid weights are all 0"),
        ("hybrid", {"components": [{"model": "hybrid"}]}, "is itself a hybrid"),
        ("hybrid", {"components": "sr"}, "components must be a list"),
    ],
)
def test_bad_parameters_are_one_line_errors(name, params, fragment):
    with pytest.raises(SessrecError) as exc:
        build(name, params)
    assert fragment in one_line(exc)


def test_bad_hybrids_and_wrong_modes(train):
    sr, rep = SequentialRules().fit(train), Repeat().fit(train)
    with pytest.raises(SessrecError, match="finite number >= 0, got -0.5") as exc:
        Hybrid([Component(sr, 1.0), Component(rep, -0.5)])
    one_line(exc)
    with pytest.raises(SessrecError, match="got nan"):
        Hybrid([Component(sr, float("nan"))])
    other = Repeat().fit(planted(n_sessions=30, seed=9).drop_last())
    with pytest.raises(SessrecError, match="different catalogues"):
        Hybrid([Component(sr, 1.0), Component(other, 1.0)])
    with pytest.raises(SessrecError, match="repeat scores whole sessions and has no item mode") as exc:
        evaluate_sessions(rep, [["n01"]], ["n02"], mode="item")
    one_line(exc)
    with pytest.raises(SessrecError, match="has no item mode"):
        evaluate_sessions(Hybrid([Component(sr, 1.0), Component(rep, 0.2)]), [["n01"]], ["n02"], mode="item")
    assert evaluate_sessions(Hybrid([Component(sr, 1.0), Component(rep, 0.0)]), [["n01"]], ["n02"], mode="item")
    embeddings = planted_embeddings(base.catalogue(train))
    with pytest.raises(SessrecError, match="Embeddings scores query items, not sessions") as exc:
        evaluate_sessions(embeddings, [["n01"]], ["n02"])
    one_line(exc)
    with pytest.raises(SessrecError, match="not fitted"):
        Repeat().scores(encode({}, [["x"]]))


def test_empty_and_unknown_sessions(train):
    model = SequentialRules(steps=2).fit(train)
    with pytest.raises(SessrecError, match="session 1 is empty") as exc:
        recommend(model, [["n01"], []])
    one_line(exc)
    with pytest.raises(SessrecError, match="session 0 is empty"):
        evaluate_sessions(model, [[]], ["n01"])
    result = recommend(model, [["n05", RULE_FROM, "mystery"], ["n01", "mystery", "other"]], k=1)
    assert result.unknown == ("mystery", "other")
    assert result.items[0][0][0] == RULE_TO  # scored from the known items
    with pytest.raises(SessrecError, match="session 0 has no item the model knows") as exc:
        recommend(model, [["mystery"]])
    one_line(exc)
    for bad in ({"k": 0}, {"exclude": "everything"}, {"mode": "user"}):
        with pytest.raises(SessrecError):
            evaluate_sessions(model, [["n01"]], ["n02"], **bad)


def test_variants_share_the_fit_and_equal_a_fresh_fit(train):
    index = {key: i for i, key in enumerate(base.catalogue(train).tolist())}
    batch = encode(index, [["n01", RULE_FROM, "n02", "n03"]])
    sr = SequentialRules(steps=3).fit(train)
    assert np.array_equal(
        sr.variant(last_n=3, decay=0.5).scores(batch),
        SequentialRules(steps=3, last_n=3, decay=0.5).fit(train).scores(batch),
    )
    trans = Transitions(last_n=3, decay=0.5).fit(train)
    assert np.array_equal(
        trans.variant(last_n=2).scores(batch), Transitions(last_n=2, decay=0.5).fit(train).scores(batch)
    )
    with pytest.raises(SessrecError, match="fitted for last_n 3 cannot score last_n 4"):
        trans.variant(last_n=4).scores(batch)
    with pytest.raises(SessrecError, match="sr parameter decay must lie in"):
        sr.variant(decay=-1)
