"""The seed project's sweep as it was written, ported to Ray 2.60, against sessrec's sweep on the
same grid, data and machine: wall time and best validation Recall@10.

The port keeps what made the seed slow: the training sessions captured in the trainable's
closure (pickled into every trial), ``workers=6`` gensim threads on 1 reserved CPU, 10 epochs
in one ``train`` call (``iter=10``) so that ASHA (grace period 10) never acts, a ``deepcopy`` of
the model and gensim's ``most_similar`` for one query at a time after every epoch, and no
checkpoints. sessrec runs the same grid as its built-in grid specs do (one gensim worker per
CPU, a checkpoint every epoch, the grid in a seeded random order), once training every trial
fully and, with ASHA stopping weak trials after a few epochs, once per grid order: which
trials ASHA has seen when it judges one depends on the order, so one run is one sample of it.

    .venv/bin/python -m benchmarks.seed_sweep [--cpus 2] [--grid small|seed] [--orders 3]
    # writes benchmarks/out/seed_sweep.{md,json}
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.common import data_sessions, mean_std, run_module, scratch_dir, write_report
from sessrec.sweep.estimate import asha_rungs

#: The seed's full 3-D grid (539 trials) and a sub-grid of it that runs in minutes on 2 CPUs.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "seed": {
        "window": list(range(1, 22, 3)),
        "negative": list(range(1, 22, 3)),
        "ns_exponent": [round(-1.0 + 0.2 * i, 1) for i in range(11)],
    },
    "small": {"window": [1, 4, 7, 10], "negative": [1, 4, 7, 10], "ns_exponent": [-0.4, 0.0, 0.4]},
}
PARAMETERS = ("window", "negative", "ns_exponent")  # what the grids vary
FIXED = {"vector_size": 100, "alpha": 0.1}
EPOCHS = 10
K = 10
SPLIT = {"seed": 0, "n": 1000}
#: Word2vec seeds each chosen configuration is trained with again, on one thread.
MODEL_SEEDS = 5


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
        run_config=tune.RunConfig(storage_path=scratch_dir("seed-sweep-"), verbose=0),
    )
    results = tuner.fit()
    wall = time.perf_counter() - started
    best = results.get_best_result(metric="recall_at_k", mode="max")
    epochs = sum(int(r.metrics.get("training_iteration", 0)) for r in results)
    ray.shutdown()
    return {
        "wall_s": wall,
        "best_recall": best.metrics["recall_at_k"],
        "best_config": best.config,
        "trials": len(results),
        "epochs_trained": epochs,
    }


#: sessrec's schedulers on the same grid: ASHA judging trials once, at half the epoch budget,
#: keeping a third, and FIFO, which trains every trial fully, as the seed did. Early epochs of a
#: 10-epoch linear-decay schedule rank configurations loosely (curves cross late). Replayed on
#: the FIFO curves of split seeds 0, 1 and 2 (``replay``), rungs at 3 and 6 epochs kept the best
#: of full training in 19-92 % of random grid orders; of the settings that kept it in at least
#: 85 % on every split, one rung at 5 keeping a third costs the least (76 % of FIFO's compute).
SCHEDULERS = {
    "sessrec": {"type": "asha", "max_t": EPOCHS, "grace_period": 5, "reduction_factor": 3},
    "sessrec-fifo": {"type": "fifo", "max_t": EPOCHS},
}


#: ASHA settings replayed on the FIFO run's curves (grace period, reduction factor).
REPLAYED = ((1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (2, 3), (3, 3), (4, 3), (5, 3))
#: Random grid orders each replayed setting is run in.
REPLAY_ORDERS = 200


def replay_asha(curves: list[list[float]], order: list[int], grace: int, reduction: float, max_t: int) -> list[int]:
    """ASHA's decisions on known curves, the trials arriving one at a time in ``order``: the epochs
    each trial (by index) would train. sessrec's trials train on one thread from a fixed seed, so
    a trial's curve is the same under any scheduler; and as in Ray, a trial reaching a rung is
    stopped when below the (1 - 1/reduction) quantile of the results recorded there before it."""
    rungs = asha_rungs(grace, reduction, max_t)
    recorded: dict[int, list[float]] = {rung: [] for rung in rungs}
    trained = [max_t] * len(curves)
    for trial in order:
        for rung in rungs:
            value = curves[trial][rung - 1]
            seen = recorded[rung]
            stopped = bool(seen) and value < np.nanpercentile(seen, (1 - 1 / reduction) * 100)
            seen.append(value)
            if stopped:
                trained[trial] = rung
                break
    return trained


def replay(curves: list[list[float]], epoch_seconds: list[float], orders: int = REPLAY_ORDERS) -> list[dict[str, Any]]:
    """Each replayed ASHA setting over random grid orders: how often it keeps the best recall that
    training every trial fully finds, the epochs it trains, and its share of full training's
    compute (a trial's epochs cost what they cost it under FIFO: ASHA mostly stops the cheap
    configurations, so epochs saved overstate time saved)."""
    full_best = max(max(curve) for curve in curves)
    full_compute = EPOCHS * sum(epoch_seconds)
    rows = []
    for grace, reduction in REPLAYED:
        runs = [
            replay_asha(curves, list(np.random.default_rng(seed).permutation(len(curves))), grace, reduction, EPOCHS)
            for seed in range(orders)
        ]
        bests = [max(max(curve[:epochs]) for curve, epochs in zip(curves, trained)) for trained in runs]
        rows.append(
            {
                "grace_period": grace,
                "reduction_factor": reduction,
                "rungs": asha_rungs(grace, reduction, EPOCHS),
                "keeps_best": float(np.mean([best >= full_best for best in bests])),
                "mean_best": float(np.mean(bests)),
                "mean_epochs": float(np.mean([sum(trained) for trained in runs])),
                "compute_share": float(np.mean([np.dot(trained, epoch_seconds) for trained in runs]) / full_compute),
            }
        )
    return rows


def sessrec_spec(grid: dict[str, list[Any]], scheduler: dict[str, Any], order: int) -> dict[str, Any]:
    return {
        "name": "seedgrid",
        "dataset": "bench",
        "split": SPLIT,
        "k": K,
        # In a seeded random order, as the built-in grid specs run: ASHA compares each trial with
        # those before it at its rung, and a grid walked in order shows it one corner first.
        "search": {"method": "grid", "shuffle": True, "seed": order},
        "space": {**FIXED, "epochs": EPOCHS, **grid},
        "scheduler": scheduler,
        "resources": {"cpus_per_trial": 1},
    }


def run_sessrec(grid: dict[str, list[Any]], cpus: int, scheduler: dict[str, Any], order: int) -> dict[str, Any]:
    from sessrec import pipeline, results
    from sessrec.spec import SweepSpec
    from sessrec.sweep import cluster, driver
    from sessrec.sweep.request import SweepRequest

    started = time.perf_counter()
    root = scratch_dir("sessrec-seedgrid-")
    pipeline.save_dataset(data_sessions(), "bench", root, {"benchmark": True}, overwrite=False)
    manifest = driver.start(
        SweepSpec.from_dict(sessrec_spec(grid, scheduler, order)), SweepRequest(root, "bench", num_cpus=cpus)
    )
    wall = time.perf_counter() - started
    cluster.disconnect()
    best = results.best(root, "bench")
    table = results.trials(root, "bench")
    return {
        "wall_s": wall,
        "best_recall": best["validation"]["recall_at_k"],
        "best_config": best["config"],
        "trials": manifest["trials"]["total"],
        "stopped_early": manifest["trials"]["stopped_early"],
        "epochs_trained": int(table["epochs_run"].sum()),
        "curves": [list(map(float, curve)) for curve in table["curve"]],
        "epoch_seconds": ((table["train_seconds"] + table["eval_seconds"]) / table["epochs_run"])
        .astype(float)
        .tolist(),
    }


def measure(cpus: int, grid_name: str, orders: int = 3) -> dict[str, Any]:
    """Each sweep in its own process, so none inherits another's Ray or warm caches. The seed and
    FIFO run once (every trial trains fully: the order changes nothing they report); ASHA runs
    once per grid order, and the speed-up is taken at its median wall time, the recall at its worst."""

    def run(impl: str, order: int = 0) -> dict[str, Any]:
        return run_module(
            "benchmarks.seed_sweep", "--cpus", str(cpus), "--grid", grid_name, "--impl", impl, "--order", str(order)
        )

    seed, fifo = run("seed"), run("sessrec-fifo")
    asha = [{"order": order, **run("sessrec", order)} for order in range(orders)]
    differences = [run["best_recall"] - seed["best_recall"] for run in asha]
    chosen = {
        "the seed": seed["best_config"],
        "sessrec FIFO": fifo["best_config"],
        **{f"sessrec ASHA, order {run['order']}": run["best_config"] for run in asha},
    }
    retrained = held_out(chosen)
    by_point = {row["configuration"]: row for row in retrained}

    def retrained_mean(config: dict[str, Any], pairs: str) -> float:
        """A choice's mean recall over the word2vec seeds it was trained again with."""
        return statistics.mean(by_point[_grid_point(config)][pairs])

    return {
        "cpus": cpus,
        "grid": grid_name,
        "trials": seed["trials"],
        "seed": seed,
        "sessrec-fifo": fifo,
        "sessrec": asha,
        "held_out": retrained,
        # ASHA's choice against the seed's, each trained again over word2vec seeds.
        "retrained_differences": [
            {
                "order": run["order"],
                "validation": retrained_mean(run["best_config"], "validation_recall")
                - retrained_mean(seed["best_config"], "validation_recall"),
                "test": retrained_mean(run["best_config"], "test_recall")
                - retrained_mean(seed["best_config"], "test_recall"),
            }
            for run in asha
        ],
        "asha_replay": replay(fifo["curves"], fifo["epoch_seconds"]),
        "speedup": seed["wall_s"] / statistics.median(run["wall_s"] for run in asha),
        "speedups": [seed["wall_s"] / run["wall_s"] for run in asha],
        "recall_difference": min(differences),
        "recall_differences": differences,
        "fifo_speedup": seed["wall_s"] / fifo["wall_s"],
        "fifo_recall_difference": fifo["best_recall"] - seed["best_recall"],
    }


def held_out(chosen: dict[str, dict[str, Any]], model_seeds: int = MODEL_SEEDS) -> list[dict[str, Any]]:
    """Each configuration a sweep chose, trained again as a sessrec trial trains it (one thread)
    with word2vec seeds 1 to ``model_seeds`` (seed 1 is the trials' own) and scored on the
    validation and the test pairs. A sweep's best validation recall is one draw of a noisy
    measurement; the spread over word2vec seeds says how far apart two choices must be to differ,
    and the test pairs, which no sweep saw, whether one choice is better than another."""
    from sessrec.core.metrics import evaluate
    from sessrec.core.split import next_item_split
    from sessrec.core.word2vec import Word2VecConfig, embeddings_of, fit

    split = next_item_split(data_sessions(), SPLIT["n"], SPLIT["seed"])
    sentences = split.train.to_lists()
    rows: dict[str, dict[str, Any]] = {}
    for chooser, config in chosen.items():
        point = _grid_point(config)
        if point not in rows:
            row = rows[point] = {"configuration": point, "chosen_by": [], "validation_recall": [], "test_recall": []}
            for model_seed in range(1, model_seeds + 1):
                w2v = Word2VecConfig.from_dict(
                    {**FIXED, "epochs": EPOCHS, "seed": model_seed, **{n: config[n] for n in PARAMETERS}}
                )
                embeddings = embeddings_of(fit(w2v, sentences))
                row["validation_recall"].append(
                    evaluate(embeddings, split.validation.queries, split.validation.targets, K)["recall_at_k"]
                )
                row["test_recall"].append(
                    evaluate(embeddings, split.test.queries, split.test.targets, K)["recall_at_k"]
                )
        rows[point]["chosen_by"].append(chooser)
    return list(rows.values())


def markdown(result: dict[str, Any]) -> list[str]:
    seed, asha_runs, fifo = result["seed"], result["sessrec"], result["sessrec-fifo"]
    grid, asha = GRIDS[result["grid"]], SCHEDULERS["sessrec"]
    speedups, differences = result["speedups"], result["recall_differences"]
    lines = [
        f"Grid: {' x '.join(f'{name} {values}' for name, values in grid.items())} ({result['trials']} trials), "
        f"vector_size 100, alpha 0.1, 10 epochs, validation Recall@10 on split seed 0, {result['cpus']} CPUs.",
        "",
        "| sweep | wall time | epochs trained | best validation Recall@10 | best configuration |",
        "| --- | --- | --- | --- | --- |",
        f"| the seed's, ported to Ray 2.60 | {seed['wall_s']:.0f} s | {seed['epochs_trained']} | "
        f"{100 * seed['best_recall']:.2f} % | {_grid_point(seed['best_config'])} |",
        f"| sessrec, every trial trained fully (FIFO) | {fifo['wall_s']:.0f} s | {fifo['epochs_trained']} | "
        f"{100 * fifo['best_recall']:.2f} % | {_grid_point(fifo['best_config'])} |",
    ]
    for run in asha_runs:
        lines.append(
            f"| sessrec, ASHA (grace {asha['grace_period']}, reduction {asha['reduction_factor']}), "
            f"grid order {run['order']}; "
            f"stopped {run['stopped_early']} | {run['wall_s']:.0f} s | {run['epochs_trained']} | "
            f"{100 * run['best_recall']:.2f} % | "
            f"{_grid_point(run['best_config'])} |"
        )
    lines += [
        "",
        f"sessrec with ASHA is **{result['speedup']:.2f}x** faster than the seed at its median over "
        f"{len(asha_runs)} grid orders "
        f"({min(speedups):.2f}-{max(speedups):.2f}x; target >= 1.5x); its best recall differs from the seed's by "
        f"{', '.join(f'{100 * d:+.1f}' for d in differences)} points "
        "(target: the same or better; 0.1 point is one of the "
        f"{SPLIT['n']:,} validation pairs). Training every trial as the seed did, "
        f"{result['fifo_speedup']:.2f}x faster, best recall "
        f"{100 * result['fifo_recall_difference']:+.2f} points.",
        "",
        f"Each chosen configuration trained again as a sessrec trial trains it (one thread) with word2vec seeds "
        f"1-{len(result['held_out'][0]['validation_recall'])} (seed 1 is the trials' own) "
        "and scored on the validation pairs "
        "and on the test pairs, which no sweep saw; mean ± sample std over the seeds, in %:",
        "",
        "| configuration | chosen by | validation Recall@10 | ... with seed 1 | test Recall@10 |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {row['configuration']} | {', '.join(row['chosen_by'])} | {mean_std(row['validation_recall'])} | "
            f"{100 * row['validation_recall'][0]:.1f} | {mean_std(row['test_recall'])} |"
            for row in result["held_out"]
        ),
        "",
        "ASHA's choice less the seed's, in mean recall over those word2vec seeds: "
        + "; ".join(
            f"order {d['order']}: validation {100 * d['validation']:+.2f}, test {100 * d['test']:+.2f} points"
            for d in result["retrained_differences"]
        )
        + ".",
        "",
        f"ASHA settings replayed on the FIFO run's curves ({REPLAY_ORDERS} random grid orders, "
        "trials one at a time; a "
        "sessrec trial's curve does not depend on the scheduler): "
        "how often ASHA keeps the best recall of training every "
        f"trial fully ({100 * max(max(curve) for curve in fifo['curves']):.1f} %), "
        "the epochs it trains and their compute "
        "(each trial's epochs at what they cost under FIFO).",
        "",
        "| grace period | reduction factor | rungs (epochs) | keeps the best | mean best recall "
        "| mean epochs trained | compute, share of FIFO's |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {row['grace_period']} | {row['reduction_factor']:g} | {', '.join(map(str, row['rungs']))} | "
            f"{100 * row['keeps_best']:.0f} % | "
            f"{100 * row['mean_best']:.2f} % | {row['mean_epochs']:.0f} of {len(fifo['curves']) * EPOCHS} | "
            f"{100 * row['compute_share']:.0f} % |"
            for row in result["asha_replay"]
        ),
    ]
    return lines


def _grid_point(config: dict[str, Any]) -> str:
    return ", ".join(f"{name} {config[name]}" for name in PARAMETERS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="small")
    parser.add_argument("--orders", type=int, default=3, help="grid orders (search seeds) sessrec's ASHA sweep runs in")
    parser.add_argument("--impl", choices=("seed", *SCHEDULERS), help="run one side and print its JSON (internal)")
    parser.add_argument("--order", type=int, default=0, help="the grid order of that side (internal)")
    args = parser.parse_args()
    if args.impl:
        grid = GRIDS[args.grid]
        run = (
            run_seed(grid, args.cpus)
            if args.impl == "seed"
            else run_sessrec(grid, args.cpus, SCHEDULERS[args.impl], args.order)
        )
        print(json.dumps(run, default=float))
        return
    result = measure(args.cpus, args.grid, args.orders)
    write_report("seed_sweep", "The seed's sweep against sessrec's", markdown(result), result)


if __name__ == "__main__":
    main()
