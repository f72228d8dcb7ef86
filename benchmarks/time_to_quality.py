"""Time to quality: minutes until a sweep's best validation Recall@10 first reaches a target
(25 %) on the real data, for the seed's 539-trial grid (built-in spec `seed3d`) with ASHA, on
each of several split seeds: one split's 1,000 validation pairs carry about 1.3 points of
sampling error, so whether and when a sweep reaches a fixed level depends on the split.

The sweep runs in this process; a watcher reads the trials' results as Tune writes them and,
once the target is reached (or the time budget is spent), interrupts the sweep the way Ctrl-C
does, so the time is the sweep's, not a full grid's.

    .venv/bin/python -m benchmarks.time_to_quality [--spec seed3d] [--split-seeds 0 1 2] [--target 0.25] \\
        [--budget-min 60] [--cpus 2]
    # writes benchmarks/out/time_to_quality.{md,json,png} (time_to_quality_SPEC.* for another spec)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import OUT, data_label, data_sessions, scratch_dir, write_report
from sessrec import layout, pipeline
from sessrec.core.split import next_item_split
from sessrec.core.word2vec import Word2VecConfig, fit
from sessrec.errors import SessrecError
from sessrec.spec import SweepSpec, read_spec
from sessrec.sweep.request import SweepRequest
from sessrec.sweep.trials import POINT

POLL_S = 2.0
DEFAULT_SPEC = "seed3d"
#: Lower levels whose times are reported too: how the best climbs, and how far short it stays.
MILESTONES = (0.20, 0.22, 0.23, 0.24)


def results_so_far(tune_dir: Path, metric: str) -> Iterator[dict[str, Any]]:
    """Every result the sweep's trials have reported so far that carries ``metric``."""
    for path in tune_dir.glob("run-*/*/result.json"):
        for line in path.read_text().splitlines():
            try:
                result = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if isinstance(result.get(metric), (int, float)):
                yield result


def best_so_far(tune_dir: Path, metric: str) -> float:
    return max((float(result[metric]) for result in results_so_far(tune_dir, metric)), default=0.0)


def longer_schedule(spec: SweepSpec, config: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The best configuration trained again with its learning rate decaying over ``epochs``, one
    gensim thread as in a trial: whether more epochs would have reached the target."""
    params = {name: value for name, value in config.items() if name != POINT} | {"epochs": epochs}
    split = next_item_split(data_sessions(), spec.split_n, spec.split_seed)
    curve: list[float] = []
    fit(
        Word2VecConfig.from_dict(params),
        split.train.to_lists(),
        split.validation,
        spec.k,
        on_epoch=lambda _epoch, metrics, _model: curve.append(metrics[spec.metric]),
    )
    best = max(curve)
    return {"config": params, "best": best, "best_epoch": curve.index(best) + 1, "curve": curve}


def measure_splits(
    spec_name: str, split_seeds: list[int], target: float, budget_s: float, cpus: int, long_epochs: int = 0
) -> dict[str, Any]:
    """``measure`` on each split seed in turn (each a sweep of its own, ``budget_s`` at most)."""
    return {
        "spec": spec_name,
        "target": target,
        "cpus": cpus,
        "runs": [measure(spec_name, target, budget_s, cpus, long_epochs, split_seed) for split_seed in split_seeds],
    }


def measure(
    spec_name: str, target: float, budget_s: float, cpus: int, long_epochs: int = 0, split_seed: int | None = None
) -> dict[str, Any]:
    """The sweep (on ``split_seed``, else the spec's) until its best reaches ``target`` or
    ``budget_s`` is spent; if it fell short and ``long_epochs`` is set, its best configuration
    is then trained for that many epochs."""
    spec = read_spec(spec_name)[1]
    if split_seed is not None:
        spec = SweepSpec.from_dict(spec.raw | {"split": {"seed": split_seed, "n": spec.split_n}})
    root = scratch_dir("sessrec-ttq-")
    pipeline.save_dataset(data_sessions(), "bench", root, {"benchmark": True}, overwrite=False)
    tune_dir = Path(layout.sweep_dir(root, "ttq"), layout.TUNE_DIR)
    timeline: list[tuple[float, float]] = []
    reached: dict[str, float] = {}
    started = time.perf_counter()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(POLL_S):
            elapsed, best = time.perf_counter() - started, best_so_far(tune_dir, spec.metric)
            if not timeline or best > timeline[-1][1]:
                timeline.append((elapsed, best))
            if best >= target and "seconds" not in reached:
                reached["seconds"] = elapsed
            if "seconds" in reached or elapsed > budget_s:
                os.kill(os.getpid(), signal.SIGINT)  # the sweep stops, as on Ctrl-C
                return

    from sessrec.sweep import cluster, driver  # Ray Tune

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    finished = False
    try:
        driver.start(spec, SweepRequest(root, "ttq", dataset_ref="bench", num_cpus=cpus))
        finished = True
    except (SessrecError, KeyboardInterrupt):
        pass  # interrupted by the watcher
    finally:
        done.set()
        cluster.disconnect()
    trials_started = len(list(tune_dir.glob("run-*/*/result.json")))
    # Read once more after the sweep: the watcher's last poll may have missed its final results.
    best_result = max(results_so_far(tune_dir, spec.metric), key=lambda result: result[spec.metric], default=None)
    longer = None
    if "seconds" not in reached and long_epochs and best_result is not None:
        longer = longer_schedule(spec, best_result["config"], long_epochs)
    return {
        "spec": spec_name,
        "split_seed": spec.split_seed,
        "target": target,
        "cpus": cpus,
        "budget_s": budget_s,
        "seconds_to_target": reached.get("seconds"),
        "best": float(best_result[spec.metric]) if best_result else 0.0,
        "trials_started": trials_started,
        "planned_trials": spec.num_trials,
        "finished": finished,
        "timeline": timeline,
        "longer_schedule": longer,
        "seconds_to_milestones": {
            f"{level:.2f}": first_reached(timeline, level) for level in MILESTONES if level < target
        },
    }


def report_name(spec_name: str) -> str:
    """The seed's grid is the report's own figure; other specs get files of their own beside it."""
    return "time_to_quality" if spec_name == DEFAULT_SPEC else f"time_to_quality_{spec_name}"


def first_reached(timeline: list[tuple[float, float]], level: float) -> float | None:
    """Seconds until the best so far first reached ``level`` (None if it never did)."""
    return next((elapsed for elapsed, best in timeline if best >= level), None)


def longer_lines(longer: dict[str, Any] | None, split_seed: int) -> list[str]:
    if not longer:
        return []
    searched = ", ".join(f"{name} {value}" for name, value in sorted(longer["config"].items()) if name != "epochs")
    return [
        f"Split seed {split_seed}: the sweep's best configuration ({searched}) trained again with a "
        f"{longer['config']['epochs']}-epoch schedule: "
        f"best {100 * longer['best']:.2f} % at epoch {longer['best_epoch']}, "
        f"{100 * longer['curve'][-1]:.2f} % at the end.",
        "",
    ]


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run in result["runs"]:
        minutes = [t / 60 for t, _ in run["timeline"]]
        ax.step(minutes, [100 * b for _, b in run["timeline"]], where="post", label=f"split seed {run['split_seed']}")
    ax.axhline(100 * result["target"], color="k", linestyle=":", label=f"target {100 * result['target']:.0f} %")
    ax.set(
        xlabel="minutes",
        ylabel="best validation Recall@10 so far, %",
        title=f"Time to quality: {result['spec']}, {result['cpus']} CPUs",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_line(run: dict[str, Any]) -> str:
    reached = run["seconds_to_target"]
    verdict = (
        f"**{reached / 60:.1f} min** to a best validation Recall@10 of {100 * run['target']:.0f} %"
        if reached is not None
        else f"**not reached** within {run['budget_s'] / 60:.0f} min (best {100 * run['best']:.2f} %)"
    )
    ended = "the sweep had finished" if run["finished"] else f"{run['trials_started']} trials had started by then"
    climb = ", ".join(
        f"{100 * float(level):.0f} % after {seconds / 60:.1f} min"
        if seconds is not None
        else f"{100 * float(level):.0f} % never"
        for level, seconds in run["seconds_to_milestones"].items()
    )
    return f"- Split seed {run['split_seed']}: {verdict}; {ended}." + (
        f" The best so far reached {climb}." if climb else ""
    )


def markdown(result: dict[str, Any]) -> list[str]:
    first = result["runs"][0]
    intro = (
        f"Spec `{result['spec']}` ({first['planned_trials']} trials, ASHA) on {data_label()}, {result['cpus']} CPUs, "
        "one sweep per split seed (each split's validation pairs carry about 1.3 points of sampling error):"
    )
    return [
        intro,
        "",
        *(run_line(run) for run in result["runs"]),
        "",
        *(line for run in result["runs"] for line in longer_lines(run["longer_schedule"], run["split_seed"])),
        f"![best validation recall against time]({report_name(result['spec'])}.png)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default=DEFAULT_SPEC)
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.25)
    parser.add_argument("--budget-min", type=float, default=60, help="per split seed")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument(
        "--long-epochs",
        type=int,
        default=100,
        help="if the target is not reached, train the best configuration this long (0: no)",
    )
    args = parser.parse_args()
    result = measure_splits(args.spec, args.split_seeds, args.target, args.budget_min * 60, args.cpus, args.long_epochs)
    OUT.mkdir(exist_ok=True)
    name = report_name(args.spec)
    plot(result, OUT / f"{name}.png")
    write_report(name, f"Time to quality: {args.spec}", markdown(result), result)


if __name__ == "__main__":
    main()
