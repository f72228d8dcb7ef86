"""sessrec's epoch-by-epoch training loop against plain gensim training of the same epochs, and
evaluation's share of an epoch.

sessrec calls ``train`` once per epoch (with that epoch's slice of the learning-rate schedule) so
that a trial can report, checkpoint and be stopped between epochs; plain gensim trains all
epochs in one call. Both build the vocabulary and train with 1 worker; the runs alternate and
the fastest of each is kept.

    .venv/bin/python -m benchmarks.training [--epochs 10] [--repeats 3]
    # writes benchmarks/out/training.{md,json}
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from gensim.models import Word2Vec

from benchmarks.common import data_label, data_sessions, write_report
from sessrec.core.split import next_item_split
from sessrec.core.word2vec import Word2VecConfig, fit


def measure(epochs: int, repeats: int) -> dict[str, Any]:
    split = next_item_split(data_sessions(), 1000, 0)
    sentences = split.train.to_lists()
    config = Word2VecConfig(
        vector_size=100, window=5, negative=5, ns_exponent=0.75, alpha=0.025, epochs=epochs, workers=1
    )
    plain, loop, evaluated, eval_per_epoch = [], [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        Word2Vec(
            sentences=sentences,
            sg=1,
            hs=0,
            vector_size=config.vector_size,
            window=config.window,
            negative=config.negative,
            ns_exponent=config.ns_exponent,
            alpha=config.alpha,
            min_alpha=config.min_alpha,
            epochs=epochs,
            min_count=config.min_count,
            sample=config.sample,
            seed=config.seed,
            workers=1,
        )
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        fit(config, sentences)
        loop.append(time.perf_counter() - started)
        epoch_metrics: list[dict[str, float]] = []
        started = time.perf_counter()
        fit(
            config,
            sentences,
            split.validation,
            10,
            # fit calls on_epoch within this iteration: bind this iteration's list explicitly.
            on_epoch=lambda _epoch, metrics, _model, epoch_metrics=epoch_metrics: epoch_metrics.append(metrics),
        )
        evaluated.append(time.perf_counter() - started)
        eval_per_epoch.append(
            sum(m["epoch_eval_s"] for m in epoch_metrics) / sum(m["epoch_train_s"] for m in epoch_metrics)
        )
    return {
        "epochs": epochs,
        "repeats": repeats,
        "plain_gensim_s": min(plain),
        "per_epoch_loop_s": min(loop),
        "loop_with_evaluation_s": min(evaluated),
        "overhead": min(loop) / min(plain) - 1,
        "evaluation_share_of_epoch": min(eval_per_epoch),
    }


def markdown(result: dict[str, Any]) -> list[str]:
    return [
        f"{result['epochs']} epochs, vector_size 100, window 5, negative 5, 1 worker, on {data_label()}; fastest of "
        f"{result['repeats']} alternating runs, vocabulary building included.",
        "",
        "| training | time |",
        "| --- | --- |",
        f"| plain gensim, one `train` call | {result['plain_gensim_s']:.2f} s |",
        f"| sessrec, one `train` call per epoch | {result['per_epoch_loop_s']:.2f} s |",
        "| sessrec, plus Recall@10/MRR@10 on 1,000 validation pairs after every epoch "
        f"| {result['loop_with_evaluation_s']:.2f} s |",
        "",
        f"Per-epoch loop overhead: **{100 * result['overhead']:+.1f} %** (target <= 5 %). Evaluation after an epoch "
        f"costs **{100 * result['evaluation_share_of_epoch']:.1f} %** of the epoch's training (target < 5 %).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = measure(args.epochs, args.repeats)
    write_report("training", "Training: the per-epoch loop against plain gensim", markdown(result), result)


if __name__ == "__main__":
    main()
