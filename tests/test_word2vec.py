import numpy as np
import pytest
from gensim.models import Word2Vec

from sessrec.core import baselines
from sessrec.core.metrics import evaluate
from sessrec.core.split import next_item_split
from sessrec.core.synth import synth_sessions
from sessrec.core.word2vec import TrainingState, Word2VecConfig, embeddings_of, fit, new_model
from sessrec.errors import SessrecError


@pytest.fixture(scope="module")
def split():
    return next_item_split(synth_sessions(n_sessions=600, n_items=150, n_clusters=10, seed=5), 100, 0)


CONFIG = Word2VecConfig(vector_size=16, window=3, negative=5, ns_exponent=0.0, alpha=0.05, epochs=4, seed=3, workers=1)


def test_epoch_by_epoch_equals_one_call(split):
    sentences = split.train.to_lists()
    stepped = fit(CONFIG, sentences)
    whole = new_model(CONFIG, sentences)
    whole.train(sentences, total_examples=whole.corpus_count, epochs=CONFIG.epochs)
    np.testing.assert_array_equal(stepped.wv.vectors, whole.wv.vectors)


def test_plain_one_epoch_calls_train_a_different_model(split):
    sentences = split.train.to_lists()
    naive = new_model(CONFIG, sentences)
    for _ in range(CONFIG.epochs):
        naive.train(sentences, total_examples=naive.corpus_count, epochs=1)
    assert not np.array_equal(naive.wv.vectors, fit(CONFIG, sentences).wv.vectors)


def test_resume_from_state_is_exact(split):
    sentences = split.train.to_lists()
    saved: list[bytes] = []

    def keep_state(epoch, metrics, model):
        if epoch == 2:
            saved.append(TrainingState.capture(model, epoch).to_npz())

    full = fit(CONFIG, sentences, on_epoch=keep_state)
    state = TrainingState.from_npz(saved[0])
    resumed_epochs = []
    resumed = fit(CONFIG, sentences, split.validation, on_epoch=lambda e, m, _: resumed_epochs.append(e), start=state)
    assert resumed_epochs == [3, 4]
    np.testing.assert_array_equal(resumed.wv.vectors, full.wv.vectors)
    np.testing.assert_array_equal(resumed.syn1neg, full.syn1neg)


def test_state_refuses_other_data_and_corrupt_bytes(split):
    model = new_model(CONFIG, split.train.to_lists())
    state = TrainingState.capture(model, 0)
    other = new_model(CONFIG, [["x", "y", "z"], ["y", "z"]])
    with pytest.raises(SessrecError, match="vocabulary differs"):
        state.restore(other)
    with pytest.raises(SessrecError, match="corrupt"):
        TrainingState.from_npz(state.to_npz()[:100])


def test_state_file_holds_no_pickled_objects(split):
    import io
    import zipfile

    data = TrainingState.capture(new_model(CONFIG, split.train.to_lists()), 0).to_npz()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert b"'O'" not in header and b"|O" not in header, name  # no object arrays


def test_metrics_every_epoch_and_word2vec_beats_popularity(split):
    curve = []
    model = fit(
        Word2VecConfig(vector_size=32, window=3, negative=10, ns_exponent=0.0, alpha=0.05, epochs=8, workers=1),
        split.train.to_lists(),
        split.validation,
        10,
        on_epoch=lambda e, m, _: curve.append(m),
    )
    assert len(curve) == 8 and all(
        {"recall_at_k", "mrr_at_k", "epoch_train_s", "epoch_eval_s"} <= set(m) for m in curve
    )
    assert curve[-1] == {
        **evaluate(embeddings_of(model), split.validation.queries, split.validation.targets, 10),
        **{k: curve[-1][k] for k in ("epoch_train_s", "epoch_eval_s")},
    }
    popular = evaluate(baselines.popularity(split.train), split.validation.queries, split.validation.targets, 10)
    assert curve[-1]["recall_at_k"] > popular["recall_at_k"] + 0.2


@pytest.mark.parametrize(
    "values, message",
    [
        ({"vector_size": 0}, "vector_size"),
        ({"window": 2.5}, "integer"),
        ({"alpha": 0}, "alpha"),
        ({"negative": "5"}, "number"),
        ({"colour": 1}, "unknown"),
    ],
)
def test_config_validation(values, message):
    with pytest.raises(SessrecError, match=message):
        Word2VecConfig.from_dict(values)


def test_alpha_schedule_matches_one_long_run():
    config = Word2VecConfig(alpha=0.1, min_alpha=0.0, epochs=4)
    expected = [(0.1, 0.075), (0.075, 0.05), (0.05, 0.025), (0.025, 0.0)]
    assert [config.alpha_bounds(e) for e in range(4)] == [pytest.approx(pair) for pair in expected]


def test_gensim_uses_skip_gram(split):
    assert isinstance(new_model(CONFIG, split.train.to_lists()), Word2Vec)
    assert new_model(CONFIG, split.train.to_lists()).sg == 1
