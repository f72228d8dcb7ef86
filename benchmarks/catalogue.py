"""A catalogue 30x the reference: time and peak memory of each stage from 10k to 100k items.

For each size (sessions = 10 x items, mean length 12): `sessrec data synth`, `sessrec data
prepare` from a transactions CSV of the same sessions, then one process that loads the
dataset, splits off 10,000 validation pairs, builds the vocabulary, trains one epoch,
evaluates the 10,000 queries against every item, and trains the epoch again with 8-dimensional
vectors (to tell the weights' cache misses from the rest of the growth). Each larger size's training
sessions are also folded onto the smallest catalogue (the same events over fewer items) and
trained for one epoch: that parts the epoch's growth into what the events cost and what the
catalogue's size costs. Each stage runs in its own process, so its peak RSS is its own.

    .venv/bin/python -m benchmarks.catalogue [--items 10000 30000 100000]
    # writes benchmarks/out/catalogue.{md,json,png}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.common import OUT, write_report
from sessrec.core.sessions import Sessions

if TYPE_CHECKING:  # gensim is imported by the stages alone
    from sessrec.core.word2vec import Word2VecConfig

SESSIONS_PER_ITEM = 10
QUERIES = 10_000
SESSREC = [sys.executable, "-m", "sessrec"]


#: Starts a command, waits for it and writes its peak RSS (KiB) to the file named first. Each stage
#: is started by this small process, not by the benchmark's own: Linux carries the starting
#: process's peak RSS over into the child's ru_maxrss (vfork + exec), so a stage started from a
#: benchmark process that has grown would report at least that process's size.
LAUNCHER = (
    "import os, subprocess, sys\n"
    "process = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(process.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the process, and its stdout."""
    with (
        tempfile.TemporaryDirectory() as scratch,
        tempfile.TemporaryFile("w+") as stdout,
        tempfile.TemporaryFile("w+") as stderr,
    ):
        peak = Path(scratch, "peak_kib")
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(peak), *command],
            stdout=stdout,
            stderr=stderr,
            text=True,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - started
        if process.returncode:
            stderr.seek(0)
            raise SystemExit(f"{' '.join(command)} failed: {stderr.read()[-2000:]}")
        stdout.seek(0)
        return wall, int(peak.read_text()) / 1024, stdout.read()


def write_transactions(root: str, path: Path) -> int:
    """The synthetic dataset as a transactions CSV: one row per event, times increasing within a session."""
    import pyarrow as pa
    import pyarrow.csv

    from sessrec.pipeline import load_dataset

    sessions = load_dataset("synth", root).sessions
    session_ids = np.repeat(np.arange(len(sessions)), sessions.lengths)
    position = np.arange(sessions.n_events) - np.repeat(sessions.offsets[:-1], sessions.lengths)
    times = np.datetime64("2026-01-01T00:00:00") + position.astype("timedelta64[m]")
    table = pa.table(
        {
            "session": pa.array(session_ids),
            "item": pa.DictionaryArray.from_arrays(pa.array(sessions.codes), pa.array(sessions.vocab.tolist())).cast(
                pa.string()
            ),
            "time": pa.array(np.datetime_as_string(times, unit="s")),
        }
    )
    pyarrow.csv.write_csv(table, path)
    return sessions.n_events


def folded(sessions: Sessions, items: int) -> Sessions:
    """The same sessions over at most ``items`` items: item code c becomes c mod ``items``. Every
    session keeps its length and order, so only the catalogue's size changes."""
    names = np.array([f"F{code}" for code in range(items)], dtype=object)
    return Sessions.from_codes(names, sessions.codes % items, sessions.offsets)


def _epoch_config(vector_size: int) -> Word2VecConfig:
    from sessrec.core.word2vec import Word2VecConfig

    return Word2VecConfig(vector_size=vector_size, window=5, negative=5, epochs=1, workers=1)


def _timed_epoch(model: Any, sentences: list[list[str]], config: Word2VecConfig) -> float:
    from sessrec.core.word2vec import train_epoch

    started = time.perf_counter()
    train_epoch(model, sentences, config, 0)
    return time.perf_counter() - started


def fold_stage(root: str, items: int) -> dict[str, float]:
    """Runs in its own process (``--stage fold``): one epoch on the training sessions folded onto ``items`` items."""
    from sessrec.core.word2vec import new_model
    from sessrec.pipeline import load_dataset, split_dataset

    sentences = folded(split_dataset(load_dataset("prepared", root), 0, QUERIES).train, items).to_lists()
    config = _epoch_config(64)
    model = new_model(config, sentences)
    return {"epoch_folded_s": _timed_epoch(model, sentences, config), "folded_items": len(model.wv)}


def train_stage(root: str) -> dict[str, float]:
    """Runs in its own process (``--stage train``): load, split, vocabulary, one epoch, evaluation."""
    from sessrec.core.metrics import evaluate
    from sessrec.core.word2vec import embeddings_of, new_model
    from sessrec.pipeline import load_dataset, split_dataset

    timings: dict[str, float] = {}
    started = time.perf_counter()
    split = split_dataset(load_dataset("prepared", root), 0, QUERIES)
    sentences = split.train.to_lists()
    timings["load_split_s"] = time.perf_counter() - started
    config = _epoch_config(64)
    started = time.perf_counter()
    model = new_model(config, sentences)
    timings["vocabulary_s"] = time.perf_counter() - started
    timings["epoch_s"] = _timed_epoch(model, sentences, config)
    started = time.perf_counter()
    evaluate(embeddings_of(model), split.validation.queries, split.validation.targets, 10)
    timings["evaluation_s"] = time.perf_counter() - started
    # The same epoch with weights 8 times smaller: how the time per event grows then says how much
    # of its growth is the weights outgrowing the CPU's caches.
    del model
    small = _epoch_config(8)
    timings["epoch_8d_s"] = _timed_epoch(new_model(small, sentences), sentences, small)
    return timings


def measure_size(items: int, fold_onto: int | None = None) -> dict[str, Any]:
    n_sessions = items * SESSIONS_PER_ITEM
    with tempfile.TemporaryDirectory(prefix="sessrec-catalogue-") as root:
        env = {**os.environ, "SESSREC_STORAGE": root}
        synth_s, synth_mb, _ = run_measured(
            SESSREC
            + [
                "data",
                "synth",
                "--name",
                "synth",
                "--sessions",
                str(n_sessions),
                "--items",
                str(items),
                "--clusters",
                str(items // 20),
            ],
            env,
        )
        csv = Path(root, "transactions.csv")
        events = write_transactions(root, csv)
        prepare_s, prepare_mb, out = run_measured(
            SESSREC
            + [
                "data",
                "prepare",
                str(csv),
                "--name",
                "prepared",
                "--session-col",
                "session",
                "--item-col",
                "item",
                "--time-col",
                "time",
                "--json",
            ],
            env,
        )
        prepared = json.loads(out)
        train_s, train_mb, out = run_measured(
            [sys.executable, "-m", "benchmarks.catalogue", "--stage", "train", "--root", root]
        )
        fold = {}
        if fold_onto is not None:
            fold = json.loads(
                run_measured(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.catalogue",
                        "--stage",
                        "fold",
                        "--root",
                        root,
                        "--fold-onto",
                        str(fold_onto),
                    ]
                )[2]
                .strip()
                .splitlines()[-1]
            )
        return {
            **fold,
            "items": items,
            "sessions": n_sessions,
            "events": events,
            "csv_mb": csv.stat().st_size / 2**20,
            "prepared_sessions": prepared["sessions"],
            "synth_s": synth_s,
            "synth_peak_mb": synth_mb,
            "prepare_s": prepare_s,
            "prepare_peak_mb": prepare_mb,
            "train_process_s": train_s,
            "train_peak_mb": train_mb,
            **json.loads(out.strip().splitlines()[-1]),
        }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [r["items"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (
        ("synth_s", "data synth"),
        ("prepare_s", "data prepare (CSV)"),
        ("epoch_s", "one epoch"),
        ("evaluation_s", f"evaluation, {QUERIES:,} queries"),
    ):
        left.loglog(items, [r[key] for r in rows], "o-", label=label)
    for key, label in (
        ("synth_peak_mb", "data synth"),
        ("prepare_peak_mb", "data prepare"),
        ("train_peak_mb", "train + evaluate"),
    ):
        right.loglog(items, [r[key] for r in rows], "o-", label=label)
    linear = np.array(items) / items[0]
    left.loglog(items, rows[0]["epoch_s"] * linear, "k:", label="linear")
    right.loglog(items, rows[0]["train_peak_mb"] * linear, "k:", label="linear")
    left.set(xlabel="items (sessions = 10 x items)", ylabel="seconds", title="time")
    right.set(xlabel="items (sessions = 10 x items)", ylabel="peak RSS, MB", title="memory")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    first, last = rows[0], rows[-1]
    grow = last["items"] / first["items"]
    lines = [
        f"Synthetic sessions, {SESSIONS_PER_ITEM} per item, mean length 12; one epoch with vector_size 64, window 5, "
        f"negative 5, 1 worker; evaluation of {QUERIES:,} validation queries against every item (blocks of 128 x 8,192 "
        "scores, never an items x items matrix). Each stage is its own process: peak RSS is that stage's.",
        "",
        "| items | sessions | events | synth | prepare (CSV) | vocabulary | one epoch | evaluation "
        "| peak RSS synth / prepare / train |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['items']:,} | {r['sessions']:,} | {r['events']:,} | {r['synth_s']:.1f} s | {r['prepare_s']:.1f} s "
            f"({r['csv_mb']:.0f} MB) | {r['vocabulary_s']:.1f} s | {r['epoch_s']:.1f} s | {r['evaluation_s']:.2f} s | "
            f"{r['synth_peak_mb']:.0f} / {r['prepare_peak_mb']:.0f} / {r['train_peak_mb']:.0f} MB |"
        )
    ratios = ", ".join(
        f"{label} {last[key] / first[key]:.1f}x"
        for key, label in (
            ("synth_s", "synth"),
            ("prepare_s", "prepare"),
            ("epoch_s", "epoch"),
            ("evaluation_s", "evaluation"),
            ("prepare_peak_mb", "prepare memory"),
            ("train_peak_mb", "train memory"),
        )
    )

    def per_event(key: str) -> str:
        """An epoch's time per event at each size, and its growth from the first to the last."""
        times = ", ".join(f"{1e6 * r[key] / r['events']:.1f} µs" for r in rows)
        return f"{times}; {(last[key] / last['events']) / (first[key] / first['events']):.1f}x"

    def weights(dims: int) -> str:
        return ", ".join(f"{2 * r['items'] * dims * 4 / 2**20:.1f} MB" for r in rows)

    lines += [
        "",
        f"From {first['items']:,} to {last['items']:,} items ({grow:g}x the data): {ratios}.",
        "",
        f"An epoch's time per event ({per_event('epoch_s')}) grows with the catalogue: gensim's inner loop reads "
        f"and writes rows of its two weight matrices ({weights(64)}) at random, and once they outgrow a CPU cache "
        f"each access waits longer. With 8-dimensional vectors (weights {weights(8)}) it grows less "
        f"({per_event('epoch_8d_s')}). Everything sessrec does around training (synth, prepare, evaluation) "
        "grows linearly or less, and memory stays below linear (a fixed share is the interpreter and libraries).",
    ]
    if len(rows) > 1:
        # Folding keeps every event and session and shrinks only the catalogue: the epoch's growth parts into
        # the events' share (the folded epoch against the smallest size's) and the catalogue's (the rest).
        folded_per_event = ", ".join(f"{1e6 * r['epoch_folded_s'] / r['events']:.1f} µs" for r in rows[1:])
        lines += [
            "",
            (
                f"The training sessions of each larger size folded onto {first['items']:,} items (item code modulo "
                f"{first['items']:,}: the same events and sessions over the smallest catalogue) train one epoch in "
                f"{folded_per_event} per event, against {1e6 * first['epoch_s'] / first['events']:.1f} µs at "
                f"{first['items']:,} items. {grow:g}x the events alone take "
                f"{last['epoch_folded_s'] / first['epoch_s']:.1f}x "
                "the time; the catalogue's size takes the rest, "
                f"{last['epoch_s'] / last['epoch_folded_s']:.2f}x on the same "
                "events."
            ),
        ]
    lines += ["", "![time and memory against catalogue size](catalogue.png)"]
    return lines


def measure(sizes: list[int]) -> list[dict[str, Any]]:
    rows = [measure_size(items, fold_onto=sizes[0] if items > sizes[0] else None) for items in sizes]
    OUT.mkdir(exist_ok=True)
    plot(rows, OUT / "catalogue.png")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--stage", choices=("train", "fold"), help="internal: run one stage in this process")
    parser.add_argument("--root")
    parser.add_argument("--fold-onto", type=int, help="internal: the catalogue size the fold stage folds onto")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(train_stage(args.root) if args.stage == "train" else fold_stage(args.root, args.fold_onto)))
        return
    rows = measure(args.items)
    write_report("catalogue", "A catalogue 30x larger", markdown(rows), {"sizes": rows})


if __name__ == "__main__":
    main()
