"""Baselines and gensim's defaults on the real reference sessions (evaluation speed: benchmarks.evaluation).

.venv/bin/python benchmarks/reference.py     # writes benchmarks/out/reference.{md,json}
"""

from __future__ import annotations

from benchmarks.common import mean_std, reference_sessions, write_report
from sessrec.core import baselines
from sessrec.core.metrics import evaluate
from sessrec.core.split import next_item_split
from sessrec.core.word2vec import Word2VecConfig, embeddings_of, fit

SEEDS = (0, 1, 2)
K = 10


def main() -> None:
    sessions = reference_sessions()
    data: dict = {"baselines": {}, "word2vec_defaults": {}}
    lines = [
        "## Test Recall@10 and MRR@10 (%), split seeds 0, 1, 2, mean ± sample std",
        "",
        "| method | test Recall@10 | test MRR@10 |",
        "| --- | --- | --- |",
    ]
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
    recalls, mrrs = [], []
    for seed in SEEDS:
        split = next_item_split(sessions, 1000, seed)
        model = fit(defaults, split.train.to_lists())
        result = evaluate(embeddings_of(model), split.test.queries, split.test.targets, K)
        recalls.append(result["recall_at_k"])
        mrrs.append(result["mrr_at_k"])
    data["word2vec_defaults"] = {"recall": recalls, "mrr": mrrs}
    lines.append(f"| word2vec, gensim defaults (5 epochs, 2 workers) | {mean_std(recalls)} | {mean_std(mrrs)} |")

    write_report("reference", "Reference data: baselines and gensim defaults", lines, data)


if __name__ == "__main__":
    main()
