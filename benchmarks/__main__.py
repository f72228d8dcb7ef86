"""All of sessrec's performance figures in one run: a Markdown and a JSON report (plus plots).

    .venv/bin/python -m benchmarks                       # every section, about an hour on 2 CPUs
    .venv/bin/python -m benchmarks --only training evaluation
    # writes benchmarks/out/report.{md,json} and the sections' own files and PNGs

Sections run one after another (never two at once: they time themselves); each figure is a
ratio of two things measured in the same run. The real sessions are used when
../shared/data/online_retail_sessions.jsonl is present, else synthetic ones of a similar size.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from benchmarks import catalogue, evaluation, scaling, seed_sweep, sweep_overhead, time_to_quality, training
from benchmarks.common import OUT, data_label, machine

SECTIONS = ("seed", "evaluation", "training", "overhead", "scaling", "time_to_quality", "catalogue")


def run_sections(args: argparse.Namespace) -> dict[str, Any]:
    runners: dict[str, Callable[[], Any]] = {
        "seed": lambda: seed_sweep.measure(args.cpus, args.seed_grid, args.seed_orders),
        "evaluation": evaluation.measure,
        "training": lambda: training.measure(epochs=10, repeats=3),
        "overhead": lambda: sweep_overhead.measure(args.cpus, trials=8, epochs=5),
        "scaling": lambda: scaling.measure([n for n in (1, 2, 4, 8, 16, 32, 64) if n <= args.cpus], trials=8, epochs=4),
        "time_to_quality": lambda: time_to_quality.measure_splits(
            time_to_quality.DEFAULT_SPEC,
            args.ttq_split_seeds,
            0.25,
            args.ttq_budget_min * 60,
            args.cpus,
            long_epochs=100,
        ),
        "catalogue": lambda: catalogue.measure(args.catalogue_items),
    }
    results = {}
    for name in args.only or SECTIONS:
        started = time.perf_counter()
        print(f"[benchmarks] {name} ...", flush=True)
        results[name] = runners[name]()
        print(f"[benchmarks] {name} done in {time.perf_counter() - started:.0f} s", flush=True)
    if "time_to_quality" in results:
        time_to_quality.plot(results["time_to_quality"], OUT / "time_to_quality.png")
    return results


def summary(results: dict[str, Any]) -> list[str]:
    """One row per figure with a target: measured value, target, met or not."""
    rows: list[tuple[str, str, str, bool | None]] = []
    if "seed" in results:
        r = results["seed"]
        orders = len(r["sessrec"])
        rows.append(
            (
                f"sessrec vs the seed's sweep, same grid: speed-up (median of {orders} grid orders)",
                f"{r['speedup']:.2f}x ({min(r['speedups']):.2f}-{max(r['speedups']):.2f}x)",
                ">= 1.5x",
                r["speedup"] >= 1.5,
            )
        )
        rows.append(
            (
                f"... best validation Recall@10, sessrec - seed (worst of {orders} grid orders)",
                f"{100 * r['recall_difference']:+.2f} points",
                ">= 0",
                r["recall_difference"] >= 0,
            )
        )
        worst = min(r["retrained_differences"], key=lambda d: d["validation"])
        seeds = len(r["held_out"][0]["validation_recall"])
        rows.append(
            (
                f"... the chosen configurations trained again over {seeds} word2vec seeds: "
                "ASHA's - the seed's, mean (worst order)",
                f"validation {100 * worst['validation']:+.2f}, test {100 * worst['test']:+.2f} points",
                "",
                None,
            )
        )
    if "evaluation" in results:
        r = results["evaluation"]
        rows.append(
            (
                "evaluation / one epoch, reference size",
                f"{100 * r['reference']['eval_share_of_epoch']:.1f} %",
                "< 5 %",
                r["reference"]["eval_share_of_epoch"] < 0.05,
            )
        )
        big = r["items_100k"]
        rows.append(
            (
                "evaluation vs per-query loop, 100k items",
                f"{big['speedup']:.1f}x, identical: {big['identical']}",
                ">= 8x, identical",
                big["speedup"] >= 8 and big["identical"],
            )
        )
    if "training" in results:
        r = results["training"]
        rows.append(
            (
                "per-epoch training loop vs plain gensim",
                f"{100 * r['overhead']:+.1f} %",
                "<= 5 %",
                r["overhead"] <= 0.05,
            )
        )
    if "overhead" in results:
        r = results["overhead"]
        rows.append(
            (
                "sweep wall x CPUs / trial compute (Tuner.fit)",
                f"{r['tune_overhead']:.2f}",
                "<= 1.15",
                r["tune_overhead"] <= 1.15,
            )
        )
        rows.append(
            ("peak RSS of one trial", f"{r['trial_peak_rss_mb']:.0f} MB", "<= 400 MB", r["trial_peak_rss_mb"] <= 400)
        )
        rows.append(("peak RSS of the driver", f"{r['driver_peak_rss_mb']:.0f} MB", "", None))
    if "scaling" in results:
        r = results["scaling"]
        for run in r["runs"][1:]:
            rows.append(
                (f"scaling efficiency, {run['cpus']} CPUs (measured)", f"{100 * run['efficiency']:.0f} %", "", None)
            )
        for p in r["projections"]:
            met = p["efficiency_vs_1_cpu"] >= 0.85 if p["cpus"] == 16 else None
            rows.append(
                (
                    f"scaling efficiency, {p['cpus']} CPUs, {p['workload']} (projected)",
                    f"{100 * p['efficiency_vs_1_cpu']:.0f} %",
                    ">= 85 % at 16" if p["cpus"] == 16 else "",
                    met,
                )
            )
    if "time_to_quality" in results:
        for r in results["time_to_quality"]["runs"]:
            value = (
                f"{r['seconds_to_target'] / 60:.1f} min"
                if r["seconds_to_target"] is not None
                else f"not within {r['budget_s'] / 60:.0f} min"
            )
            if r["seconds_to_target"] is None:
                value += f" (best {100 * r['best']:.1f} %"
                longer = r["longer_schedule"]
                value += (
                    f"; its configuration over {longer['config']['epochs']} epochs: {100 * longer['best']:.1f} %)"
                    if longer
                    else ")"
                )
            rows.append(
                (
                    f"time to validation Recall@10 >= 25 %, seed3d grid, split seed {r['split_seed']}, "
                    f"{r['cpus']} CPUs",
                    value,
                    "",
                    None,
                )
            )
    if "catalogue" in results:
        first, last = results["catalogue"][0], results["catalogue"][-1]
        grow = last["items"] / first["items"]
        for key, label in (
            ("epoch_s", "one epoch"),
            ("evaluation_s", "evaluation of 10k queries"),
            ("prepare_s", "prepare"),
            ("train_peak_mb", "training memory"),
        ):
            ratio = last[key] / first[key]
            rows.append(
                (
                    f"{label}: {last['items']:,} / {first['items']:,} items",
                    f"{ratio:.1f}x",
                    f"about {grow:g}x (linear)",
                    ratio <= 1.5 * grow,
                )
            )
        if "epoch_folded_s" in last:
            ratio = last["epoch_folded_s"] / first["epoch_s"]
            label = (
                f"one epoch, events alone: {last['items']:,} items' sessions folded onto {first['items']:,} items / "
                f"{first['items']:,} items"
            )
            rows.append((label, f"{ratio:.1f}x", f"about {grow:g}x (linear)", ratio <= 1.5 * grow))
    lines = ["| figure | measured | target | met |", "| --- | --- | --- | --- |"]
    for label, value, target, met in rows:
        lines.append(f"| {label} | {value} | {target} | {'' if met is None else ('yes' if met else '**no**')} |")
    return lines


def report(results: dict[str, Any], elapsed: float) -> str:
    sections = {
        "seed": ("The seed's sweep against sessrec's", lambda r: seed_sweep.markdown(r)),
        "evaluation": ("Evaluation speed", evaluation.markdown),
        "training": ("Training: per-epoch loop against plain gensim", training.markdown),
        "overhead": ("Sweep overhead and memory", sweep_overhead.markdown),
        "scaling": ("Scaling with CPUs", scaling.markdown),
        "time_to_quality": ("Time to quality", time_to_quality.markdown),
        "catalogue": ("A catalogue 30x larger", catalogue.markdown),
    }
    parts = [
        f"# sessrec benchmarks\n\nMachine: {machine()}. Data: {data_label()}. "
        f"Measured by `python -m benchmarks` (this run: {elapsed / 60:.0f} min; "
        "sections not rerun come from the previous report).\n",
        "## Summary\n",
        *summary(results),
        "",
    ]
    for name, result in results.items():
        title, render = sections[name]
        parts += [f"## {title}\n", *render(result), ""]
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for the sweeps (scaling runs 1..N)")
    parser.add_argument("--seed-grid", choices=sorted(seed_sweep.GRIDS), default="small")
    parser.add_argument(
        "--seed-orders", type=int, default=3, help="grid orders sessrec's ASHA sweep runs in, against the seed"
    )
    parser.add_argument(
        "--ttq-budget-min", type=float, default=45, help="time to quality: the budget of each split seed's sweep"
    )
    parser.add_argument(
        "--ttq-split-seeds", type=int, nargs="+", default=[0, 1, 2], help="time to quality: one sweep per split seed"
    )
    parser.add_argument("--catalogue-items", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    args = parser.parse_args()
    started = time.perf_counter()
    fresh = run_sections(args)
    OUT.mkdir(exist_ok=True)
    saved = OUT / "report.json"
    # A partial run (--only) replaces its sections in the last report and keeps the others.
    previous = json.loads(saved.read_text()) if args.only and saved.exists() else {}
    results = {name: fresh.get(name, previous.get(name)) for name in SECTIONS if name in fresh or name in previous}
    saved.write_text(
        json.dumps({"machine": machine(), "data": data_label(), **results}, indent=2, default=float) + "\n"
    )
    text = report(results, time.perf_counter() - started)
    (OUT / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
