"""sessrec's own ``session`` sweep on the real Online Retail sessions, once per split seed: the
recommender and its settings chosen on that seed's validation pairs, its test figures reported
(session mode, the query excluded), mean ± sample std over the seeds against the targets.

    .venv/bin/python -m benchmarks.session_sweep [--seeds 0 1 2] [--cpus 2] [--spec session]
    # writes benchmarks/out/session_sweep.{md,json} after every seed

Each seed is one ``sessrec tune run`` (a process of its own) on scratch storage; the sessions
file is read in place (``REFERENCE``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import REFERENCE, mean_std, scratch_dir, write_report
from sessrec.spec import read_spec

TARGETS = {"recall_at_k": 0.320, "mrr_at_k": 0.155}


def run_seed(spec_name: str, seed: int, cpus: int, root: str) -> dict[str, Any]:
    """One sweep on split seed ``seed``: its best trial's model, config, validation and test metrics."""
    raw = dict(read_spec(spec_name)[1].raw)
    raw.update(name=f"{raw['name']}-s{seed}", dataset=str(REFERENCE), split={**raw["split"], "seed": seed})
    spec_file = Path(root) / f"spec-{seed}.yaml"
    spec_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {**os.environ, "SESSREC_STORAGE": root, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    sweep_id = f"seed{seed}"
    started = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sessrec",
            "tune",
            "run",
            str(spec_file),
            "--sweep-id",
            sweep_id,
            "--num-cpus",
            str(cpus),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"seed {seed}: the sweep failed: {run.stderr[-2000:]}")
    best = subprocess.run(
        [sys.executable, "-m", "sessrec", "results", "best", sweep_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {"seed": seed, "sweep_seconds": seconds, "manifest": json.loads(run.stdout), "best": json.loads(best.stdout)}


def report(runs: list[dict[str, Any]], spec_name: str, cpus: int) -> None:
    def values(part: str, metric: str) -> list[float]:
        return [float(r["best"][part][metric]) for r in runs]

    lines = [
        f"Built-in spec `{spec_name}`, one sweep per split seed ({', '.join(str(r['seed']) for r in runs)}) "
        f"on {cpus} CPUs; the best trial chosen on that seed's validation pairs; session mode, the query excluded. "
        "Mean ± sample std, %.",
        "",
        "| split seed | best model | val Recall@10 | test Recall@10 | test MRR@10 | trials | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        b, trials = r["best"], r["manifest"].get("trials", {}).get("total")
        val, test = b["validation"], b["test"]
        lines.append(
            f"| {r['seed']} | {b.get('model')} | {100 * val['recall_at_k']:.2f} | {100 * test['recall_at_k']:.2f} | "
            f"{100 * test['mrr_at_k']:.2f} | {trials} | {r['sweep_seconds'] / 60:.1f} |"
        )
    recall, mrr = values("test", "recall_at_k"), values("test", "mrr_at_k")
    lines += [
        "",
        f"test Recall@10 {mean_std(recall)} (target >= {100 * TARGETS['recall_at_k']:.1f}), "
        f"test MRR@10 {mean_std(mrr)} (target >= {100 * TARGETS['mrr_at_k']:.1f})",
        "",
        "Best configs: " + "; ".join(f"seed {r['seed']}: {r['best']['config']}" for r in runs),
    ]
    write_report(
        "session_sweep",
        "sessrec's session sweep on the real sessions",
        lines,
        {"spec": spec_name, "cpus": cpus, "targets": TARGETS, "runs": runs},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="session")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    root = scratch_dir("sessrec-session-sweep-")
    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        runs.append(run_seed(args.spec, seed, args.cpus, root))
        report(runs, args.spec, args.cpus)  # after every seed: a long run shows what it has so far
        print(f"seed {seed} done: {runs[-1]['best']['test']}", flush=True)


if __name__ == "__main__":
    main()
