"""sessrec's epoch-by-epoch training loop against plain gensim training of the same epochs, and
evaluation's share of an epoch.

sessrec calls ``train`` once per epoch (with that epoch's slice of the learning-rate schedule) so
that a trial can report, checkpoint and be stopped between epochs; plain gensim trains all
epochs in one call. Both build the vocabulary and train with 1 worker; the runs alternate and
the fastest of each is kept.

Also ``sessrec train`` as a whole command (a process of its own: start-up and imports, reading
the stored dataset, splitting, training with validation after every epoch, test, writing the
model) against the seed notebook on the same configuration and data (``benchmarks/seed_notebook.py``:
one ``Word2Vec`` call over all epochs whose callback copies the model and asks gensim's
``most_similar`` for each validation query after every epoch), run top to bottom in a process of
its own, and its loop alone, in this process (as a notebook cell runs it: gensim imported, the
split in memory). Wall and CPU times (user + system) alternate and the fastest of each is kept; on
a shared machine the CPU time is the steadier figure.

    .venv/bin/python -m benchmarks.training [--epochs 10] [--repeats 3] [--command-epochs 5]
    # writes benchmarks/out/training.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

from gensim.models import Word2Vec

from benchmarks.common import data_label, data_sessions, scratch_dir, write_report
from sessrec.core.split import next_item_split
from sessrec.core.word2vec import Word2VecConfig, fit

#: ``sessrec train``'s defaults (vector_size 100, window 5, negative 5, 1 worker, model seed 1).
COMMAND_CONFIG = Word2VecConfig()


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


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(call: Any) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of ``call()``: of this process and its children."""
    started, cpu = time.perf_counter(), _own_cpu_s() + _children_cpu_s()
    call()
    return time.perf_counter() - started, _own_cpu_s() + _children_cpu_s() - cpu


def measure_command(epochs: int, repeats: int) -> dict[str, Any]:
    """``sessrec train`` (a process of its own, start to end) against the seed notebook run top to
    bottom (``benchmarks/seed_notebook.py``, a process of its own too) and against its loop alone."""
    from benchmarks import seed_notebook
    from sessrec import pipeline

    config = Word2VecConfig(**{**COMMAND_CONFIG.to_dict(), "epochs": epochs})
    gensim_config = {
        "vector_size": config.vector_size,
        "window": config.window,
        "negative": config.negative,
        "ns_exponent": config.ns_exponent,
        "alpha": config.alpha,
        "min_alpha": config.min_alpha,
        "epochs": config.epochs,
        "min_count": config.min_count,
        "sample": config.sample,
        "seed": config.seed,
        "workers": config.workers,
    }
    sessions = data_sessions()
    root = scratch_dir("sessrec-train-bench-")
    jsonl = os.path.join(root, "sessions.jsonl")
    with open(jsonl, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(session) + "\n" for session in sessions.to_lists())
    pipeline.save_dataset(sessions, "retail", root, {"benchmark": "training"}, overwrite=True)  # as `data prepare`
    command = [sys.executable, "-m", "sessrec", "train", "retail", "--name", "bench", "--epochs", str(epochs)]
    command += ["--overwrite", "--json"]
    env = {**os.environ, "SESSREC_STORAGE": root, "SESSREC_CONFIG": os.path.join(root, "no-settings.yaml")}
    notebook = [sys.executable, seed_notebook.__file__, jsonl, json.dumps(gensim_config)]
    train, test, validation = seed_notebook.split(sessions.to_lists(), 1000, 0)
    times: dict[str, list[tuple[float, float]]] = {"command": [], "notebook": [], "loop": []}
    for _ in range(repeats):
        times["loop"].append(_timed(lambda: seed_notebook.loop(gensim_config, train, validation, test)))
        times["notebook"].append(_timed(lambda: subprocess.run(notebook, check=True, capture_output=True)))
        times["command"].append(_timed(lambda: subprocess.run(command, env=env, check=True, capture_output=True)))
    best = {name: (min(w for w, _ in runs), min(c for _, c in runs)) for name, runs in times.items()}
    return {
        "epochs": epochs,
        "repeats": repeats,
        "runs_wall_cpu_s": times,
        "best_wall_cpu_s": best,
        # Above 1: `sessrec train` is faster.
        "speed_vs_notebook_wall": best["notebook"][0] / best["command"][0],
        "speed_vs_notebook_cpu": best["notebook"][1] / best["command"][1],
        "speed_vs_loop_wall": best["loop"][0] / best["command"][0],
        "speed_vs_loop_cpu": best["loop"][1] / best["command"][1],
    }


def command_markdown(result: dict[str, Any]) -> list[str]:
    best = result["best_wall_cpu_s"]
    return [
        f"`sessrec train` with its defaults ({result['epochs']} epochs, vector_size 100, window 5, negative 5, "
        f"1 worker) on {data_label()}, a whole command (start-up, reading the stored dataset, split, training "
        "with validation after every epoch, test, writing the model), against the seed notebook on the same "
        "configuration and split, run top to bottom (gensim's import, reading the sessions, its loop) and its "
        f"loop alone (gensim imported, the split in memory); fastest of {result['repeats']} alternating runs.",
        "",
        "| run | wall | CPU (user + system) |",
        "| --- | --- | --- |",
        f"| the seed notebook, top to bottom | {best['notebook'][0]:.2f} s | {best['notebook'][1]:.2f} s |",
        f"| the seed notebook's loop alone | {best['loop'][0]:.2f} s | {best['loop'][1]:.2f} s |",
        f"| `sessrec train`, whole command | {best['command'][0]:.2f} s | {best['command'][1]:.2f} s |",
        "",
        f"`sessrec train` against the seed notebook: **{result['speed_vs_notebook_wall']:.2f}×** its speed by wall "
        f"time, {result['speed_vs_notebook_cpu']:.2f}× by CPU time (target >= 1); against its loop alone "
        f"{result['speed_vs_loop_wall']:.2f}× and {result['speed_vs_loop_cpu']:.2f}×.",
    ]


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
    parser.add_argument("--command-epochs", type=int, default=COMMAND_CONFIG.epochs)
    parser.add_argument("--only-command", action="store_true", help="only sessrec train against the seed's loop")
    args = parser.parse_args()
    command = measure_command(args.command_epochs, args.repeats)
    if args.only_command:
        write_report(
            "training_command", "Training: sessrec train against the seed's loop", command_markdown(command), command
        )
        return
    result = measure(args.epochs, args.repeats)
    lines = [*markdown(result), "", *command_markdown(command)]
    write_report("training", "Training: the per-epoch loop against plain gensim", lines, {**result, "command": command})


if __name__ == "__main__":
    main()
