"""What a sweep costs beyond training: wall time x CPUs / the trials' own training and
evaluation time, and the peak memory of the driver and of one trial.

    .venv/bin/python -m benchmarks.sweep_overhead [--cpus 2] [--trials 8] [--epochs 5]
    # writes benchmarks/out/sweep_overhead.{md,json}; real sessions when present, else synthetic
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from benchmarks.common import REFERENCE, write_report
from sessrec import pipeline, results, tuning
from sessrec.core.synth import synth_sessions
from sessrec.formats import sessions_from_jsonl
from sessrec.spec import SweepSpec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if REFERENCE.exists():
        sessions, data = sessions_from_jsonl(REFERENCE.read_bytes()), "the real sessions (4,234 sessions, 406,632 events)"
    else:
        sessions, data = synth_sessions(n_sessions=20_000, n_items=3_000, n_clusters=60), "synthetic sessions"
    root = tempfile.mkdtemp(prefix="sessrec-overhead-")
    pipeline.save_dataset(sessions, "bench", root, {"benchmark": True}, overwrite=False)
    spec = SweepSpec.from_dict({
        "name": "overhead",
        "dataset": "bench",
        "split": {"seed": 0, "n": 1000},
        # FIFO: every trial runs all its epochs, so the trials' compute is the same in every run.
        "search": {"method": "grid"},
        "space": {"vector_size": 64, "window": 5, "negative": 5, "alpha": 0.05, "ns_exponent": [i / args.trials for i in range(args.trials)]},
        "scheduler": {"type": "fifo", "max_t": args.epochs},
        "resources": {"cpus_per_trial": 1},
    })
    started = time.perf_counter()
    manifest = tuning.run_sweep(spec, root, "bench", num_cpus=args.cpus)
    wall = time.perf_counter() - started
    tune_wall = manifest["wall_seconds"]  # Tuner.fit alone, as on a cluster that is already up
    tuning.disconnect()
    driver_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trials = results.trials(root, "bench")
    compute = float((trials["train_seconds"] + trials["eval_seconds"]).sum())
    overhead = wall * args.cpus / compute
    tune_overhead = tune_wall * args.cpus / compute
    trial_peak_mb = float(trials["peak_rss_mb"].max())
    lines = [
        f"{args.trials} trials x {args.epochs} epochs (vector_size 64, window 5, negative 5) on {data}, {args.cpus} CPUs, "
        "embedded Ray, local storage, a checkpoint every epoch.",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| whole command: load data, start Ray, sweep, write results | {wall:.1f} s | |",
        f"| the sweep itself (Tuner.fit) | {tune_wall:.1f} s | |",
        f"| sum of the trials' training + evaluation time | {compute:.1f} s | |",
        f"| overhead of the sweep: Tuner.fit wall x CPUs / trial compute | {tune_overhead:.2f} | <= 1.15 |",
        f"| overhead of the whole command | {overhead:.2f} | |",
        f"| peak RSS of one trial (worker process) | {trial_peak_mb:.0f} MB | <= 400 MB |",
        f"| peak RSS of the driver | {driver_peak_mb:.0f} MB | |",
    ]
    write_report("sweep_overhead", "Sweep overhead and memory", lines, {
        "cpus": args.cpus, "trials": args.trials, "epochs": args.epochs, "wall_s": wall, "tune_wall_s": tune_wall,
        "compute_s": compute, "overhead": overhead, "tune_overhead": tune_overhead, "trial_peak_rss_mb": trial_peak_mb, "driver_peak_rss_mb": driver_peak_mb,
    })


if __name__ == "__main__":
    main()
