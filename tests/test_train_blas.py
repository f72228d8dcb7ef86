"""Issue #23: training evaluates every epoch with numpy's BLAS on one thread (``word2vec.fit``), so
that OpenBLAS's spinning helper threads do not slow gensim's training; the model and the metrics
stay those of plain gensim and of an evaluation on all threads."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import Word2Vec

from sessrec.core.metrics import evaluate
from sessrec.core.split import next_item_split
from sessrec.core.synth import synth_sessions
from sessrec.core.word2vec import Word2VecConfig, embeddings_of, fit

threadpoolctl = pytest.importorskip("threadpoolctl")

CONFIG = Word2VecConfig(vector_size=16, window=3, negative=4, epochs=3, seed=3, workers=1)


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_epochs_evaluate_on_one_blas_thread_with_the_same_model_and_metrics():
    split = next_item_split(synth_sessions(n_sessions=600, n_items=150, n_clusters=8, mean_length=12), 100, 0)
    sentences = split.train.to_lists()
    before = _blas_threads()
    seen: list[tuple[list[int], dict[str, float]]] = []
    model = fit(
        CONFIG, sentences, split.validation, 10, on_epoch=lambda _e, m, _model: seen.append((_blas_threads(), m))
    )
    assert all(threads and set(threads) == {1} for threads, _ in seen)
    assert _blas_threads() == before  # given back after training

    plain = Word2Vec(
        sentences=sentences,
        sg=1,
        hs=0,
        vector_size=CONFIG.vector_size,
        window=CONFIG.window,
        negative=CONFIG.negative,
        ns_exponent=CONFIG.ns_exponent,
        alpha=CONFIG.alpha,
        min_alpha=CONFIG.min_alpha,
        epochs=CONFIG.epochs,
        min_count=CONFIG.min_count,
        sample=CONFIG.sample,
        seed=CONFIG.seed,
        workers=1,
    )
    assert np.array_equal(model.wv.vectors, plain.wv.vectors)
    last = seen[-1][1]
    on_all_threads = evaluate(embeddings_of(model), split.validation.queries, split.validation.targets, 10)
    assert {name: last[name] for name in on_all_threads} == on_all_threads
