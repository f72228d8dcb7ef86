"""Evaluation speed: sessrec's blocked, vectorized Recall@K/MRR@K against gensim's
``most_similar`` for one query at a time (identical numbers required), at the reference size
and at 100k items, and its share of one training epoch.

    .venv/bin/python -m benchmarks.evaluation     # writes benchmarks/out/evaluation.{md,json}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gensim.models import KeyedVectors

from benchmarks.common import best_of, data_label, data_sessions, write_report
from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate
from sessrec.core.split import next_item_split
from sessrec.core.word2vec import Word2VecConfig, embeddings_of, new_model, train_epoch

K = 10


def naive_loop(embeddings: Embeddings, queries, targets, k: int) -> dict[str, float]:
    """The reference evaluation: gensim's most_similar for one query at a time."""
    kv = KeyedVectors(vector_size=embeddings.dims)
    kv.add_vectors(list(embeddings.keys), embeddings.vectors)
    kv.fill_norms()
    hits, reciprocal = 0, 0.0
    for query, target in zip(queries, targets):
        if query not in kv.key_to_index:
            continue
        recommended = [key for key, _ in kv.most_similar(query, topn=k)]
        if target in recommended:
            hits += 1
            reciprocal += 1 / (recommended.index(target) + 1)
    return {"recall_at_k": hits / len(queries), "mrr_at_k": reciprocal / len(queries)}


def speed(embeddings: Embeddings, queries, targets) -> dict[str, Any]:
    vec_s, vectorized = best_of(3, lambda: evaluate(embeddings, queries, targets, K))
    loop_s, loop = best_of(1, lambda: naive_loop(embeddings, queries, targets, K))
    identical = (
        vectorized["recall_at_k"] == loop["recall_at_k"] and abs(vectorized["mrr_at_k"] - loop["mrr_at_k"]) < 1e-12
    )
    return {
        "vectorized_s": vec_s,
        "loop_s": loop_s,
        "speedup": loop_s / vec_s,
        "identical": identical,
        "items": embeddings.n_items,
        "queries": len(queries),
    }


def measure() -> dict[str, Any]:
    split = next_item_split(data_sessions(), 1000, 0)
    sentences = split.train.to_lists()
    config = Word2VecConfig(vector_size=100, window=5, negative=5, epochs=5, workers=1)
    model = new_model(config, sentences)
    # best_of calls the lambda at once, within its own iteration: bind the epoch explicitly.
    epoch_s = min(best_of(1, lambda epoch=epoch: train_epoch(model, sentences, config, epoch))[0] for epoch in range(2))
    reference = speed(embeddings_of(model), split.validation.queries, split.validation.targets)
    reference["epoch_s_one_worker"] = epoch_s
    reference["eval_share_of_epoch"] = reference["vectorized_s"] / epoch_s

    # A catalogue of 100k items: random vectors, 1,000 queries; half the targets among the
    # query's true neighbours, so hits and ranks are exercised.
    rng = np.random.default_rng(0)
    big = Embeddings(
        np.array([f"item-{i}" for i in range(100_000)], dtype=object),
        rng.normal(size=(100_000, 100)).astype(np.float32),
    )
    queries = rng.choice(big.keys, 1000)
    near = [big.recommend([q], 20)[0][int(rng.integers(0, 20))][0] for q in queries[:500]]
    targets = np.concatenate([np.array(near, dtype=object), rng.choice(big.keys, 500)])
    return {"reference": reference, "items_100k": speed(big, queries, targets)}


def markdown(result: dict[str, Any]) -> list[str]:
    reference = result["reference"]
    lines = [
        "| catalogue | queries | vectorized | per-query loop | speed-up | identical |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, s in (
        (f"{reference['items']:,} items ({data_label()})", reference),
        ("100k items (random vectors)", result["items_100k"]),
    ):
        lines.append(
            f"| {label} | {s['queries']:,} | {s['vectorized_s'] * 1000:.1f} ms | {s['loop_s'] * 1000:.0f} ms | "
            f"{s['speedup']:.1f}x | {s['identical']} |"
        )
    lines += [
        "",
        f"Evaluating 1,000 validation pairs takes **{100 * reference['eval_share_of_epoch']:.1f} %** of one training "
        f"epoch ({reference['epoch_s_one_worker']:.2f} s, vector_size 100, window 5, negative 5, 1 worker; "
        "target < 5 %). "
        f"At 100k items: **{result['items_100k']['speedup']:.1f}x** the per-query loop (target >= 8x).",
    ]
    return lines


def main() -> None:
    result = measure()
    write_report("evaluation", "Evaluation speed", markdown(result), result)


if __name__ == "__main__":
    main()
