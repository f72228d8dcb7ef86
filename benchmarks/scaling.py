"""Scaling of a sweep with the CPUs it gets, the per-trial fixed costs that limit it, and the
efficiency those costs predict on CPUs this machine does not have.

1. The same fixed-work sweep (FIFO, every trial runs every epoch) on 1, 2, ... CPUs, each in its
   own process with an embedded Ray: wall time and efficiency = wall(1 CPU) / (N x wall(N)).
2. Fixed costs per trial, measured: start-up (first report minus its epoch: actor start, data
   from the object store, sessions to token lists, vocabulary), the checkpoint and report after
   every epoch (time and bytes), evaluation, the data object shipped to workers, and the
   driver's CPU time per reported result and per trial (Tune's loop is one thread: a ceiling on
   results and trials per second), from a second run of the same trials with 3x the epochs.
3. Projection to 16 and 64 CPUs: trials list-scheduled on N slots with those costs, and the
   driver's load checked against its ceiling. A model, not a measurement.

    .venv/bin/python -m benchmarks.scaling [--cpus 1 2] [--trials 8] [--epochs 4]
    # writes benchmarks/out/scaling.{md,json}
"""

from __future__ import annotations

import argparse
import heapq
import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import data_label, data_sessions, run_module, scratch_dir, write_report
from sessrec.sweep.estimate import asha_rungs

PROJECTED_CPUS = (16, 64)
CONFIG = {"vector_size": 64, "window": 5, "negative": 5, "alpha": 0.05}


def fixed_work_spec(trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": "scaling",
        "dataset": "bench",
        "split": {"seed": 0, "n": 1000},
        "search": {"method": "grid"},
        "space": {**CONFIG, "ns_exponent": [round(-0.5 + i / trials, 4) for i in range(trials)]},
        "scheduler": {"type": "fifo", "max_t": epochs},
        "resources": {"cpus_per_trial": 1},
    }


def tune_results(root: str, sweep_id: str) -> list[list[dict[str, Any]]]:
    """Every trial's reported results, read from Tune's own result files."""
    from sessrec import layout

    folder = Path(layout.sweep_dir(root, sweep_id), layout.TUNE_DIR)
    return [
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for path in sorted(folder.glob("run-*/*/result.json"))
    ]


def run_one(cpus: int, trials: int, epochs: int) -> dict[str, Any]:
    """One sweep in this process (``--impl``): its wall times and the per-trial costs Tune recorded."""
    from sessrec import pipeline
    from sessrec.spec import SweepSpec
    from sessrec.sweep import cluster, driver
    from sessrec.sweep.request import SweepRequest

    root = scratch_dir("sessrec-scaling-")
    pipeline.save_dataset(data_sessions(), "bench", root, {"benchmark": True}, overwrite=False)
    # Tune's control loop runs on the driver's main thread: its CPU time during Tuner.fit (the
    # sweep's driver.finish) is what caps the results per second a driver can take.
    loop_cpu: dict[str, float] = {}
    finish = driver.finish

    def timed_finish(*args: Any, **kwargs: Any) -> Any:
        started_cpu = time.thread_time()
        try:
            return finish(*args, **kwargs)
        finally:
            loop_cpu["seconds"] = time.thread_time() - started_cpu

    driver.finish = timed_finish
    started = time.perf_counter()
    manifest = driver.start(
        SweepSpec.from_dict(fixed_work_spec(trials, epochs)), SweepRequest(root, "bench", num_cpus=cpus)
    )
    wall = time.perf_counter() - started
    cluster.disconnect()
    per_trial = tune_results(root, "bench")
    compute = sum(r["epoch_train_s"] + r["epoch_eval_s"] for rows in per_trial for r in rows)
    # time_this_iter_s spans report to report: beyond the epoch it holds the checkpoint and the
    # report; the first one also holds the trial's start-up.
    startup = [rows[0]["time_this_iter_s"] - rows[0]["epoch_train_s"] - rows[0]["epoch_eval_s"] for rows in per_trial]
    between = [r["time_this_iter_s"] - r["epoch_train_s"] - r["epoch_eval_s"] for rows in per_trial for r in rows[1:]]
    checkpoints = list(Path(root).rglob("state.npz"))
    return {
        "cpus": cpus,
        "wall_s": wall,
        "tune_wall_s": manifest["wall_seconds"],
        "compute_s": compute,
        "trials": len(per_trial),
        "results": sum(len(rows) for rows in per_trial),
        "driver_loop_cpu_s": loop_cpu["seconds"],
        "epoch_s": float(np.mean([r["epoch_train_s"] for rows in per_trial for r in rows])),
        "eval_s": float(np.mean([r["epoch_eval_s"] for rows in per_trial for r in rows])),
        "startup_s": float(np.median(startup)),
        "per_epoch_overhead_s": float(np.median(between)),
        "checkpoint_bytes": int(np.median([p.stat().st_size for p in checkpoints])) if checkpoints else 0,
    }


def shipping() -> dict[str, float]:
    """The data every trial receives (tune.with_parameters: one object in the object store) and
    what a trial does with it before its first epoch."""
    from sessrec.core.split import next_item_split
    from sessrec.core.word2vec import TrainingState, Word2VecConfig, new_model

    split = next_item_split(data_sessions(), 1000, 0)
    train = split.train
    started = time.perf_counter()
    sentences = train.to_lists()
    to_lists_s = time.perf_counter() - started
    config = Word2VecConfig(**CONFIG, epochs=1)
    started = time.perf_counter()
    model = new_model(config, sentences)
    vocabulary_s = time.perf_counter() - started
    started = time.perf_counter()
    state = TrainingState.capture(model, 1).to_npz()
    capture_s = time.perf_counter() - started
    # Serialized as Ray puts it in the object store (pickle protocol 5); only its size is used.
    return {
        "data_mb": len(pickle.dumps(train, protocol=5)) / 2**20,
        "to_lists_s": to_lists_s,
        "vocabulary_s": vocabulary_s,
        "checkpoint_capture_s": capture_s,
        "checkpoint_mb": len(state) / 2**20,
    }


def makespan(durations: list[float], slots: int) -> float:
    """Greedy list scheduling in trial order, as Tune places trials on free CPUs."""
    free = [0.0] * slots
    for duration in durations:
        heapq.heapreplace(free, free[0] + duration)
    return max(free)


def asha_epochs(trials: int, grace: int, reduction: int, max_t: int, seed: int = 0) -> list[int]:
    """Epochs each trial runs when ASHA keeps 1/reduction at every rung, in a shuffled order
    (the survivors of a grid are scattered through it)."""
    epochs, survivors = [], trials
    for stop in asha_rungs(grace, reduction, max_t):
        stopped = survivors - survivors // reduction
        epochs += [stop] * stopped
        survivors -= stopped
    epochs += [max_t] * survivors
    return [int(e) for e in np.random.default_rng(seed).permutation(epochs)]


#: Workloads projected: equal trials (4 per CPU, 10 epochs) and the seed's 539-trial grid with ASHA.
WORKLOADS = {
    "equal": lambda cpus: [10] * (4 * cpus),
    "seed grid, ASHA": lambda cpus: asha_epochs(539, grace=5, reduction=3, max_t=40),
}


def project(costs: dict[str, Any], epochs_per_trial: list[int], cpus: int) -> dict[str, float]:
    """Wall time of trials that run ``epochs_per_trial`` on ``cpus`` CPUs, from the measured costs,
    and the efficiency against the same trials on 1 CPU."""
    epoch_period = costs["epoch_s"] + costs["eval_s"] + costs["per_epoch_overhead_s"]
    durations = [costs["startup_s"] + epochs * epoch_period for epochs in epochs_per_trial]
    # Tune's driver handles every trial and every result on one thread: when that work exceeds
    # the trials' own time it paces the sweep.
    driver_s = (
        len(durations) * costs["driver_cpu_per_trial_s"] + sum(epochs_per_trial) * costs["driver_cpu_per_result_s"]
    )
    trials_s = makespan(durations, cpus)
    driver_load = driver_s / trials_s
    wall = max(trials_s, driver_s)
    compute = sum(epochs_per_trial) * (costs["epoch_s"] + costs["eval_s"])
    return {
        "cpus": cpus,
        "trials": len(durations),
        "wall_s": wall,
        "efficiency_vs_1_cpu": sum(durations) / (cpus * wall),
        "compute_share": compute / (cpus * wall),
        "driver_load": driver_load,
    }


def driver_costs(short: dict[str, Any], long: dict[str, Any]) -> dict[str, float]:
    """The driver loop's CPU split into a cost per reported result and one per trial (creating,
    starting, ending it), from two runs of the same trials that differ only in their epochs."""
    per_result = max(
        0.0, (long["driver_loop_cpu_s"] - short["driver_loop_cpu_s"]) / (long["results"] - short["results"])
    )
    per_trial = max(0.0, short["driver_loop_cpu_s"] - per_result * short["results"]) / short["trials"]
    return {"driver_cpu_per_result_s": per_result, "driver_cpu_per_trial_s": per_trial}


def run_in_process(cpus: int, trials: int, epochs: int) -> dict[str, Any]:
    return run_module(
        "benchmarks.scaling", "--impl", "--cpus", str(cpus), "--trials", str(trials), "--epochs", str(epochs)
    )


def measure(cpu_counts: list[int], trials: int, epochs: int) -> dict[str, Any]:
    runs = [run_in_process(cpus, trials, epochs) for cpus in cpu_counts]
    longer = run_in_process(cpu_counts[-1], trials, 3 * epochs)
    base = runs[0]
    for run in runs:
        run["efficiency"] = base["tune_wall_s"] * base["cpus"] / (run["cpus"] * run["tune_wall_s"])
        run["overhead"] = run["tune_wall_s"] * run["cpus"] / run["compute_s"]
    largest = runs[-1]
    costs = {
        key: largest[key] for key in ("epoch_s", "eval_s", "startup_s", "per_epoch_overhead_s", "checkpoint_bytes")
    }
    costs.update(driver_costs(largest, longer))
    projections = [
        {"workload": name, **project(costs, epochs_of(cpus), cpus)}
        for name, epochs_of in WORKLOADS.items()
        for cpus in PROJECTED_CPUS
    ]
    return {
        "trials": trials,
        "epochs": epochs,
        "runs": runs,
        "longer_run": longer,
        "costs": costs,
        "shipping": shipping(),
        "projections": projections,
    }


def markdown(result: dict[str, Any]) -> list[str]:
    costs, ship = result["costs"], result["shipping"]
    lines = [
        f"Fixed work: {result['trials']} trials x {result['epochs']} epochs "
        "(FIFO; vector_size 64, window 5, negative 5, "
        f"1 CPU per trial) on {data_label()}, embedded Ray, local storage, a checkpoint every epoch.",
        "",
        "| CPUs | sweep wall (Tuner.fit) | whole command | trial compute | efficiency vs 1 CPU "
        "| wall x CPUs / compute |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['cpus']} | {run['tune_wall_s']:.1f} s | {run['wall_s']:.1f} s | {run['compute_s']:.1f} s | "
            f"{100 * run['efficiency']:.0f} % | {run['overhead']:.2f} |"
        )
    lines += [
        "",
        "Fixed costs per trial (measured in the largest run):",
        "",
        "| cost | value |",
        "| --- | --- |",
        f"| one epoch of training (for scale) | {costs['epoch_s']:.3f} s |",
        f"| evaluation after each epoch (1,000 pairs) | {1000 * costs['eval_s']:.1f} ms |",
        "| start-up: actor, data from the object store, token lists, vocabulary, first checkpoint "
        f"| {costs['startup_s']:.3f} s |",
        "| of which sessions to token lists / vocabulary (measured alone) "
        f"| {ship['to_lists_s']:.3f} s / {ship['vocabulary_s']:.3f} s |",
        f"| checkpoint + report after each epoch | {1000 * costs['per_epoch_overhead_s']:.1f} ms |",
        f"| checkpoint size | {costs['checkpoint_bytes'] / 2**20:.2f} MB |",
        "| data shipped to workers (one object-store object, shared by all trials of a node) "
        f"| {ship['data_mb']:.1f} MB |",
        f"| driver main-thread CPU during Tuner.fit (Tune's loop), per reported result / per trial "
        f"(from a second run with {3 * result['epochs']} epochs per trial; "
        "per trial is an upper bound: it holds the sweep's own "
        f"set-up and results too) | "
        f"{1000 * costs['driver_cpu_per_result_s']:.1f} ms / {1000 * costs['driver_cpu_per_trial_s']:.0f} ms |",
        "",
        "Projection (a model from the costs above, not a measurement): trials list-scheduled on the CPUs in order, "
        "each costing its start-up plus its epochs x (epoch + evaluation + checkpoint); the driver's CPU per trial and "
        "per result, on one thread, paces the sweep once it exceeds the trials' own time (driver load > 100 %). "
        "Workloads: equal trials (4 per CPU, 10 epochs each) and the seed's 539-trial grid "
        "with ASHA (grace 5, reduction 3, max_t 40: 2/3 stop at 5 epochs, 2/9 at 15, 1/9 run 40), in shuffled order.",
        "",
        "| workload | CPUs | trials | efficiency vs 1 CPU | trial compute / (CPUs x wall) | driver load |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in result["projections"]:
        lines.append(
            f"| {p['workload']} | {p['cpus']} (projected) | {p['trials']} | {100 * p['efficiency_vs_1_cpu']:.0f} % | "
            f"{100 * p['compute_share']:.0f} % | {100 * p['driver_load']:.0f} % |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--impl", action="store_true", help="internal: run one sweep in this process, print its JSON")
    args = parser.parse_args()
    if args.impl:
        print(json.dumps(run_one(args.cpus[0], args.trials, args.epochs)))
        return
    result = measure(args.cpus, args.trials, args.epochs)
    write_report("scaling", "Scaling with CPUs", markdown(result), result)


if __name__ == "__main__":
    main()
