"""The seed project's sweep as it was written, ported to Ray 2.60, against sessrec's sweep on the
same grid, data and machine: wall time and best validation Recall@10.

The port keeps what made the seed slow: the training sessions captured in the trainable's
closure (pickled into every trial), ``workers=6`` gensim threads on 1 reserved CPU, 10 epochs
in one ``train`` call (``iter=10``) so that ASHA (grace period 10) never acts, a ``deepcopy`` of
the model and gensim's ``most_similar`` for one query at a time after every epoch, and no
checkpoints. sessrec runs the same grid as its built-in grid specs do (one gensim worker per
CPU, a checkpoint every epoch, the grid in a seeded random order), once training every trial
fully and once with ASHA stopping weak trials after a few epochs.

    .venv/bin/python -m benchmarks.seed_sweep [--cpus 2] [--grid small|seed]
    # writes benchmarks/out/seed_sweep.{md,json}
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from typing import Any

from benchmarks.common import data_sessions, run_module, write_report

#: The seed's full 3-D grid (539 trials) and a sub-grid of it that runs in minutes on 2 CPUs.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "seed": {
        "window": list(range(1, 22, 3)),
        "negative": list(range(1, 22, 3)),
        "ns_exponent": [round(-1.0 + 0.2 * i, 1) for i in range(11)],
    },
    "small": {"window": [1, 4, 7, 10], "negative": [1, 4, 7, 10], "ns_exponent": [-0.4, 0.0, 0.4]},
}
FIXED = {"vector_size": 100, "alpha": 0.1}
EPOCHS = 10
K = 10
SPLIT = {"seed": 0, "n": 1000}


def run_seed(grid: dict[str, list[Any]], cpus: int) -> dict[str, Any]:
    """The seed's sweep, its structure kept, its API calls moved to Ray 2.60 and gensim 4."""
    import ray
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from sessrec.core.split import next_item_split

    started = time.perf_counter()
    split = next_item_split(data_sessions(), SPLIT["n"], SPLIT["seed"])
    sentences = split.train.to_lists()
    val_queries, val_targets = list(split.validation.queries), list(split.validation.targets)

    class ReportRecall(CallbackAny2Vec):
        def on_epoch_end(self, model: Word2Vec) -> None:
            snapshot = copy.deepcopy(model)
            hits = 0
            for query, target in zip(val_queries, val_targets):
                if query in snapshot.wv.key_to_index:
                    hits += target in [item for item, _ in snapshot.wv.most_similar(query, topn=K)]
            tune.report({"recall_at_k": hits / len(val_queries)})

    def trainable(config: dict[str, Any]) -> None:
        # `sentences` comes from the closure: Ray pickles it with the function for every trial.
        Word2Vec(sentences=sentences, sg=1, min_count=1, epochs=EPOCHS, workers=6, callbacks=[ReportRecall()], **config)

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={**FIXED, **{name: tune.grid_search(values) for name, values in grid.items()}},
        tune_config=tune.TuneConfig(
            scheduler=ASHAScheduler(metric="recall_at_k", mode="max", max_t=100, grace_period=10),
        ),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="seed-sweep-"), verbose=0),
    )
    results = tuner.fit()
    wall = time.perf_counter() - started
    best = results.get_best_result(metric="recall_at_k", mode="max")
    epochs = sum(int(r.metrics.get("training_iteration", 0)) for r in results)
    ray.shutdown()
    return {"wall_s": wall, "best_recall": best.metrics["recall_at_k"], "best_config": best.config,
            "trials": len(results), "epochs_trained": epochs}


#: sessrec's schedulers on the same grid: ASHA judging trials at 3 and 6 epochs, keeping half
#: (early epochs of a 10-epoch schedule rank configurations loosely, so it keeps many), and FIFO,
#: which trains every trial fully, as the seed did.
SCHEDULERS = {
    "sessrec": {"type": "asha", "max_t": EPOCHS, "grace_period": 3, "reduction_factor": 2},
    "sessrec-fifo": {"type": "fifo", "max_t": EPOCHS},
}


def sessrec_spec(grid: dict[str, list[Any]], scheduler: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "seedgrid",
        "dataset": "bench",
        "split": SPLIT,
        "k": K,
        # In a seeded random order, as the built-in grid specs run: ASHA compares each trial with
        # those before it at its rung, and a grid walked in order shows it one corner first.
        "search": {"method": "grid", "shuffle": True},
        "space": {**FIXED, "epochs": EPOCHS, **grid},
        "scheduler": scheduler,
        "resources": {"cpus_per_trial": 1},
    }


def run_sessrec(grid: dict[str, list[Any]], cpus: int, scheduler: dict[str, Any]) -> dict[str, Any]:
    from sessrec import pipeline, results, tuning
    from sessrec.spec import SweepSpec

    started = time.perf_counter()
    root = tempfile.mkdtemp(prefix="sessrec-seedgrid-")
    pipeline.save_dataset(data_sessions(), "bench", root, {"benchmark": True}, overwrite=False)
    manifest = tuning.run_sweep(SweepSpec.from_dict(sessrec_spec(grid, scheduler)), root, "bench", num_cpus=cpus)
    wall = time.perf_counter() - started
    tuning.disconnect()
    best = results.best(root, "bench")
    table = results.trials(root, "bench")
    return {"wall_s": wall, "best_recall": best["validation"]["recall_at_k"], "best_config": best["config"],
            "trials": manifest["trials"]["total"], "stopped_early": manifest["trials"]["stopped_early"],
            "epochs_trained": int(table["epochs_run"].sum())}


def measure(cpus: int, grid_name: str) -> dict[str, Any]:
    """Each sweep in its own process, so neither inherits the other's Ray or warm caches."""
    runs = {impl: run_module("benchmarks.seed_sweep", "--cpus", str(cpus), "--grid", grid_name, "--impl", impl)
            for impl in ("seed", *SCHEDULERS)}
    seed, ours, fifo = runs["seed"], runs["sessrec"], runs["sessrec-fifo"]
    return {"cpus": cpus, "grid": grid_name, "trials": seed["trials"], **runs,
            "speedup": seed["wall_s"] / ours["wall_s"], "recall_difference": ours["best_recall"] - seed["best_recall"],
            "fifo_speedup": seed["wall_s"] / fifo["wall_s"], "fifo_recall_difference": fifo["best_recall"] - seed["best_recall"]}


def markdown(result: dict[str, Any]) -> list[str]:
    seed, ours, fifo = result["seed"], result["sessrec"], result["sessrec-fifo"]
    grid, asha = GRIDS[result["grid"]], SCHEDULERS["sessrec"]
    return [
        f"Grid: {' x '.join(f'{name} {values}' for name, values in grid.items())} ({result['trials']} trials), "
        f"vector_size 100, alpha 0.1, 10 epochs, validation Recall@10 on split seed 0, {result['cpus']} CPUs.",
        "",
        "| sweep | wall time | epochs trained | best validation Recall@10 |",
        "| --- | --- | --- | --- |",
        f"| the seed's, ported to Ray 2.60 | {seed['wall_s']:.0f} s | {seed['epochs_trained']} | {100 * seed['best_recall']:.2f} % |",
        f"| sessrec, every trial trained fully (FIFO) | {fifo['wall_s']:.0f} s | {fifo['epochs_trained']} | {100 * fifo['best_recall']:.2f} % |",
        f"| sessrec, ASHA (grace {asha['grace_period']}, reduction {asha['reduction_factor']}; stopped {ours['stopped_early']}) | "
        f"{ours['wall_s']:.0f} s | {ours['epochs_trained']} | {100 * ours['best_recall']:.2f} % |",
        "",
        f"sessrec with ASHA is **{result['speedup']:.2f}x** faster than the seed (target >= 1.5x), best recall "
        f"{100 * result['recall_difference']:+.2f} points; training every trial as the seed did, "
        f"{result['fifo_speedup']:.2f}x faster, best recall {100 * result['fifo_recall_difference']:+.2f} points "
        "(target: the same or better; the seed's 6 gensim threads make its runs differ by about ±0.5 point).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="small")
    parser.add_argument("--impl", choices=("seed", *SCHEDULERS), help="run one side and print its JSON (internal)")
    args = parser.parse_args()
    if args.impl:
        grid = GRIDS[args.grid]
        run = run_seed(grid, args.cpus) if args.impl == "seed" else run_sessrec(grid, args.cpus, SCHEDULERS[args.impl])
        print(json.dumps(run, default=float))
        return
    result = measure(args.cpus, args.grid)
    write_report("seed_sweep", "The seed's sweep against sessrec's", markdown(result), result)


if __name__ == "__main__":
    main()
