"""A sweep by sessrec itself on the real Online Retail sessions, its best config checked on
split seeds 0, 1, 2 against the baselines.

    .venv/bin/python -m benchmarks.real_sweep [--spec retail] [--cpus 2]
    # writes benchmarks/out/real_sweep_<spec name>.{md,json}
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import REFERENCE, mean_std, reference_sessions, scratch_dir, write_report
from sessrec import pipeline, results
from sessrec.core import baselines
from sessrec.core.metrics import evaluate
from sessrec.core.split import next_item_split
from sessrec.core.word2vec import Word2VecConfig, embeddings_of, fit
from sessrec.spec import read_spec
from sessrec.sweep import cluster, driver
from sessrec.sweep.request import SweepRequest

SEEDS = (0, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="retail")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    sessions = reference_sessions()
    spec = read_spec(args.spec)[1]
    root = scratch_dir("sessrec-real-")
    pipeline.save_dataset(sessions, spec.dataset or "retail", root, {"uri": str(REFERENCE)}, overwrite=False)

    started = time.perf_counter()
    manifest = driver.start(spec, SweepRequest(root, "real", num_cpus=args.cpus))
    sweep_seconds = time.perf_counter() - started
    cluster.disconnect()
    best = results.best(root, "real")
    config = dict(best["config"].items())

    rows: dict[str, dict[str, list[float]]] = {}
    for seed in SEEDS:
        split = next_item_split(sessions, spec.split_n, seed)
        model = fit(Word2VecConfig.from_dict({**config, "workers": 2}), split.train.to_lists())
        emb = embeddings_of(model)
        candidates = {
            "word2vec, best of the sweep": emb,
            **{m: baselines.build(m, split.train) for m in baselines.METHODS},
        }
        for name, scorer in candidates.items():
            entry = rows.setdefault(name, {"val_recall": [], "val_mrr": [], "test_recall": [], "test_mrr": []})
            for part, pairs in (("val", split.validation), ("test", split.test)):
                metrics = evaluate(scorer, pairs.queries, pairs.targets, spec.k)
                entry[f"{part}_recall"].append(metrics["recall_at_k"])
                entry[f"{part}_mrr"].append(metrics["mrr_at_k"])

    trials = manifest["trials"]
    lines = [
        f"Sweep `{args.spec}`: {trials['total']} trials ({trials['completed']} completed, {trials['stopped_early']} "
        f"stopped early by ASHA, {trials['errored']} errored) in {sweep_seconds / 60:.1f} min on {args.cpus} CPUs; "
        f"selected on the validation pairs of split seed {spec.split_seed}.",
        "",
        "Best config: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items()),
        "",
        f"Each row retrained/rebuilt on split seeds {', '.join(map(str, SEEDS))} (mean ± sample std, %):",
        "",
        "| method | val Recall@10 | val MRR@10 | test Recall@10 | test MRR@10 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, entry in rows.items():
        lines.append(
            f"| {name} | {mean_std(entry['val_recall'])} | {mean_std(entry['val_mrr'])} | "
            f"{mean_std(entry['test_recall'])} | {mean_std(entry['test_mrr'])} |"
        )
    write_report(
        f"real_sweep_{spec.name}",
        f"A sessrec sweep on the real sessions: {spec.name}",
        lines,
        {"spec": args.spec, "sweep_seconds": sweep_seconds, "manifest": manifest, "best": best, "rows": rows},
    )


if __name__ == "__main__":
    main()
