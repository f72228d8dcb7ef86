"""Baselines, gensim's defaults and evaluation speed on the real reference sessions.

    .venv/bin/python benchmarks/reference.py     # writes benchmarks/out/reference.{md,json}
"""

from __future__ import annotations

import time

import numpy as np
from gensim.models import KeyedVectors

from benchmarks.common import best_of, mean_std, reference_sessions, write_report
from sessrec.core import baselines
from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate
from sessrec.core.split import next_item_split
from sessrec.core.word2vec import Word2VecConfig, embeddings_of, fit, new_model, train_epoch

SEEDS = (0, 1, 2)
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


def speed(embeddings: Embeddings, queries, targets) -> dict[str, float]:
    vec_s, vectorized = best_of(3, lambda: evaluate(embeddings, queries, targets, K))
    loop_s, loop = best_of(1, lambda: naive_loop(embeddings, queries, targets, K))
    identical = vectorized["recall_at_k"] == loop["recall_at_k"] and abs(vectorized["mrr_at_k"] - loop["mrr_at_k"]) < 1e-12
    return {"vectorized_s": vec_s, "loop_s": loop_s, "speedup": loop_s / vec_s, "identical": identical,
            "items": embeddings.n_items, "queries": len(queries)}


def main() -> None:
    sessions = reference_sessions()
    data: dict = {"baselines": {}, "word2vec_defaults": {}}
    lines = ["## Test Recall@10 and MRR@10 (%), split seeds 0, 1, 2, mean ± sample std", "",
             "| method | test Recall@10 | test MRR@10 |", "| --- | --- | --- |"]
    for method in baselines.METHODS:
        recalls, mrrs = [], []
        for seed in SEEDS:
            split = next_item_split(sessions, 1000, seed)
            result = evaluate(baselines.build(method, split.train), split.test.queries, split.test.targets, K)
            recalls.append(result["recall_at_k"])
            mrrs.append(result["mrr_at_k"])
        data["baselines"][method] = {"recall": recalls, "mrr": mrrs}
        lines.append(f"| {method} | {mean_std(recalls)} | {mean_std(mrrs)} |")

    defaults = Word2VecConfig(vector_size=100, window=5, negative=5, ns_exponent=0.75, alpha=0.025, epochs=5, workers=2)
    recalls, mrrs, last_model = [], [], None
    for seed in SEEDS:
        split = next_item_split(sessions, 1000, seed)
        model = fit(defaults, split.train.to_lists())
        result = evaluate(embeddings_of(model), split.test.queries, split.test.targets, K)
        recalls.append(result["recall_at_k"])
        mrrs.append(result["mrr_at_k"])
        last_model, last_split = model, split
    data["word2vec_defaults"] = {"recall": recalls, "mrr": mrrs}
    lines.append(f"| word2vec, gensim defaults (5 epochs, 2 workers) | {mean_std(recalls)} | {mean_std(mrrs)} |")

    # Evaluation speed at the reference size, and its share of one training epoch.
    embeddings = embeddings_of(last_model)
    reference_speed = speed(embeddings, last_split.validation.queries, last_split.validation.targets)
    sentences = last_split.train.to_lists()
    one_worker = Word2VecConfig(vector_size=100, window=5, negative=5, epochs=5, workers=1)
    model = new_model(one_worker, sentences)
    started = time.perf_counter()
    train_epoch(model, sentences, one_worker, 0)
    epoch_s = time.perf_counter() - started
    reference_speed["epoch_s_one_worker"] = epoch_s
    reference_speed["eval_share_of_epoch"] = reference_speed["vectorized_s"] / epoch_s

    # A catalogue of 100k items: random unit-scale vectors, 1,000 queries.
    rng = np.random.default_rng(0)
    big = Embeddings(np.array([f"item-{i}" for i in range(100_000)], dtype=object), rng.normal(size=(100_000, 100)).astype(np.float32))
    queries = rng.choice(big.keys, 1000)
    # Targets among the query's true neighbours half the time, so hits and ranks are exercised.
    near = [big.recommend([q], 20)[0][int(rng.integers(0, 20))][0] for q in queries[:500]]
    targets = np.concatenate([np.array(near, dtype=object), rng.choice(big.keys, 500)])
    large_speed = speed(big, queries, targets)
    data["evaluation"] = {"reference": reference_speed, "items_100k": large_speed}

    lines += ["", "## Evaluation: vectorized vs gensim most_similar per query (identical metrics required)", "",
              "| catalogue | queries | vectorized | per-query loop | speed-up | identical |", "| --- | --- | --- | --- | --- | --- |"]
    for label, s in (("reference (3.7k items)", reference_speed), ("100k items", large_speed)):
        lines.append(f"| {label} | {s['queries']} | {s['vectorized_s'] * 1000:.1f} ms | {s['loop_s'] * 1000:.0f} ms | "
                     f"{s['speedup']:.1f}× | {s['identical']} |")
    lines += ["", f"Evaluation of 1,000 validation pairs takes {100 * reference_speed['eval_share_of_epoch']:.1f} % of one "
              f"training epoch ({epoch_s:.2f} s, vector_size 100, window 5, negative 5, 1 worker)."]
    write_report("reference", "Reference data: baselines, gensim defaults, evaluation speed", lines, data)


if __name__ == "__main__":
    main()
