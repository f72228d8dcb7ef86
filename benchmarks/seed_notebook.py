"""The seed notebook's training loop, run top to bottom as its notebook runs: import gensim, read
the sessions (JSONL, one JSON array of items a line), split them as the protocol says, train one
skip-gram model over all epochs in one ``Word2Vec`` call whose callback copies the model and asks
gensim's ``most_similar`` for each validation query after every epoch, and the test pairs so at
the end. Imports neither sessrec nor the benchmarks' helpers: its start-up is the notebook's own.

    .venv/bin/python benchmarks/seed_notebook.py SESSIONS.jsonl CONFIG_JSON
    # prints the test Recall@10
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

import numpy as np
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

K = 10


def split(
    sessions: list[list[str]], n: int, seed: int
) -> tuple[list[list[str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """The protocol's split: train = every session without its last item; test and validation =
    (second-to-last, last) of 2 x n sessions drawn with ``default_rng(seed).choice``."""
    train = [session[:-1] for session in sessions]
    chosen = np.random.default_rng(seed).choice(len(sessions), 2 * n, replace=False)
    pairs = [(sessions[i][-2], sessions[i][-1]) for i in chosen.tolist()]
    return train, pairs[:n], pairs[n:]


def recall(model: Word2Vec, pairs: list[tuple[str, str]]) -> float:
    hits = 0
    for query, target in pairs:
        if query in model.wv.key_to_index:
            hits += target in [item for item, _ in model.wv.most_similar(query, topn=K)]
    return hits / len(pairs)


def loop(
    config: dict[str, Any], train: list[list[str]], validation: list[tuple[str, str]], test: list[tuple[str, str]]
) -> float:
    """The loop itself: validation Recall@K after every epoch, test Recall@K at the end."""

    class ReportRecall(CallbackAny2Vec):
        def on_epoch_end(self, model: Word2Vec) -> None:
            recall(copy.deepcopy(model), validation)

    model = Word2Vec(sentences=train, sg=1, hs=0, callbacks=[ReportRecall()], **config)
    return recall(model, test)


def main() -> None:
    path, config = sys.argv[1], json.loads(sys.argv[2])
    with open(path, encoding="utf-8") as lines:
        sessions = [json.loads(line) for line in lines if line.strip()]
    train, test, validation = split(sessions, 1000, 0)
    print(loop(config, train, validation, test))


if __name__ == "__main__":
    main()
