"""What a sweep costs beyond training: wall time x CPUs / the trials' own training and
evaluation time, and the peak memory of the driver and of one trial.

    .venv/bin/python -m benchmarks.sweep_overhead [--cpus 2] [--trials 8] [--epochs 5]
    # writes benchmarks/out/sweep_overhead.{md,json}; real sessions when present, else synthetic
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks.common import data_label, data_sessions, run_module, scratch_dir, write_report


def run_one(cpus: int, trials: int, epochs: int) -> dict[str, Any]:
    from sessrec import memory, pipeline, results
    from sessrec.spec import SweepSpec
    from sessrec.sweep import cluster, driver
    from sessrec.sweep.request import SweepRequest

    root = scratch_dir("sessrec-overhead-")
    pipeline.save_dataset(data_sessions(), "bench", root, {"benchmark": True}, overwrite=False)
    spec = SweepSpec.from_dict(
        {
            "name": "overhead",
            "dataset": "bench",
            "split": {"seed": 0, "n": 1000},
            # FIFO: every trial runs all its epochs, so the trials' compute is the same in every run.
            "search": {"method": "grid"},
            "space": {
                "vector_size": 64,
                "window": 5,
                "negative": 5,
                "alpha": 0.05,
                "ns_exponent": [i / trials for i in range(trials)],
            },
            "scheduler": {"type": "fifo", "max_t": epochs},
            "resources": {"cpus_per_trial": 1},
        }
    )
    started = time.perf_counter()
    manifest = driver.start(spec, SweepRequest(root, "bench", num_cpus=cpus))
    wall = time.perf_counter() - started
    cluster.disconnect()
    table = results.trials(root, "bench")
    compute = float((table["train_seconds"] + table["eval_seconds"]).sum())
    return {
        "cpus": cpus,
        "trials": trials,
        "epochs": epochs,
        "wall_s": wall,
        "tune_wall_s": manifest["wall_seconds"],  # Tuner.fit alone, as on a cluster that is already up
        "compute_s": compute,
        "overhead": wall * cpus / compute,
        "tune_overhead": manifest["wall_seconds"] * cpus / compute,
        "trial_peak_rss_mb": float(table["peak_rss_mb"].max()),
        "driver_peak_rss_mb": memory.peak_rss_mb(),
    }


def measure(cpus: int, trials: int, epochs: int) -> dict[str, Any]:
    """In its own process, so the driver's peak memory is this sweep's alone."""
    return run_module(
        "benchmarks.sweep_overhead", "--impl", "--cpus", str(cpus), "--trials", str(trials), "--epochs", str(epochs)
    )


def markdown(result: dict[str, Any]) -> list[str]:
    return [
        f"{result['trials']} trials x {result['epochs']} epochs (FIFO; vector_size 64, window 5, negative 5) "
        f"on {data_label()}, "
        f"{result['cpus']} CPUs, embedded Ray, local storage, a checkpoint every epoch.",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| whole command: load data, start Ray, sweep, write results | {result['wall_s']:.1f} s | |",
        f"| the sweep itself (Tuner.fit) | {result['tune_wall_s']:.1f} s | |",
        f"| sum of the trials' training + evaluation time | {result['compute_s']:.1f} s | |",
        f"| overhead of the sweep: Tuner.fit wall x CPUs / trial compute | {result['tune_overhead']:.2f} | <= 1.15 |",
        f"| overhead of the whole command | {result['overhead']:.2f} | |",
        f"| peak RSS of one trial (worker process) | {result['trial_peak_rss_mb']:.0f} MB | <= 400 MB |",
        f"| peak RSS of the driver | {result['driver_peak_rss_mb']:.0f} MB | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--impl", action="store_true", help="internal: run the sweep in this process, print its JSON")
    args = parser.parse_args()
    if args.impl:
        print(json.dumps(run_one(args.cpus, args.trials, args.epochs)))
        return
    result = measure(args.cpus, args.trials, args.epochs)
    write_report("sweep_overhead", "Sweep overhead and memory", markdown(result), result)


if __name__ == "__main__":
    main()
