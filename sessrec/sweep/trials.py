"""The trials table, ``sweeps/<id>/trials.parquet`` (no Ray): its columns, defined once, the
states a trial can be in, how a row is made from a trial's curve, and its Parquet form.

Whatever reads or writes the table (the driver, ``results``, ``report``, the report's tests)
names its columns through the constants here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sessrec import formats


class TrialState(StrEnum):
    """A trial's state: in the trials table (``TABLE_STATES``), and while Tune runs it."""

    COMPLETED = "completed"  # trained every epoch of its config
    STOPPED_EARLY = "stopped_early"  # stopped by ASHA at a rung
    ERRORED = "errored"
    #: Read from the newest checkpoint of a sweep that has not finished: cut short, or stopped
    #: by ASHA (a checkpoint does not tell which).
    UNFINISHED = "unfinished"
    RUNNING = "running"  # the states below: only while Tune runs the trial
    PENDING = "pending"
    INTERRUPTED = "interrupted"  # Tune stopped it on Ctrl-C or SIGTERM; a resume goes on with it


#: The states a trial has in a trials table (the last one only where read from checkpoints).
TABLE_STATES: tuple[TrialState, ...] = (
    TrialState.COMPLETED,
    TrialState.STOPPED_EARLY,
    TrialState.ERRORED,
    TrialState.UNFINISHED,
)
#: The states of a trial that has ended; the manifest counts each.
ENDED_STATES: tuple[TrialState, ...] = (TrialState.COMPLETED, TrialState.STOPPED_EARLY, TrialState.ERRORED)

#: The config key of a trial's place in the sweep, and its column: its index in the spec's
#: plan, or its number in Optuna's order. Not a word2vec parameter; a resume knows a trial by it.
POINT = "point"

# The columns, in the table's order (``config.<name>`` per parameter after STATE; the metric's
# own last and best columns beside the fixed ones).
TRIAL_ID = "trial_id"
STATE = "state"
EPOCHS_RUN = "epochs_run"
RESTORED = "restored"
LAST_RECALL = "last_recall_at_k"
LAST_MRR = "last_mrr_at_k"
BEST_EPOCH = "best_epoch"
TRAIN_SECONDS = "train_seconds"
EVAL_SECONDS = "eval_seconds"
PEAK_RSS_MB = "peak_rss_mb"
CURVE = "curve"  # the sweep's metric after each epoch trained
ERROR = "error"
#: Not stored: the folder of the trial's newest checkpoint, for the driver (names starting
#: with '_' are dropped from the table).
CHECKPOINT = "_checkpoint"
CONFIG_PREFIX = "config."


def config_column(name: str) -> str:
    return f"{CONFIG_PREFIX}{name}"


def config_columns(columns: Sequence[str]) -> list[str]:
    return [column for column in columns if column.startswith(CONFIG_PREFIX)]


def last_column(metric: str) -> str:
    return f"last_{metric}"


def best_column(metric: str) -> str:
    return f"best_{metric}"


class TrialsTable:
    """One row per trial: config, state, final and best metrics, epochs, times, curve, error."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    @staticmethod
    def row(
        *,
        trial_id: str,
        point: int,
        state: TrialState,
        config: Mapping[str, Any],
        epochs_run: int,
        restored: bool,
        metric: str,
        last: Mapping[str, Any],
        best: float | None,
        best_epoch: int | None,
        train_seconds: float,
        eval_seconds: float,
        peak_rss_mb: float | None,
        curve: list[float],
        error: str | None,
        checkpoint: str | None = None,
    ) -> dict[str, Any]:
        """A row; ``last`` is the trial's final metrics (by metric name)."""
        return {
            TRIAL_ID: trial_id,
            POINT: point,
            STATE: TrialState(state).value,
            **{config_column(name): value for name, value in sorted(config.items()) if name != POINT},
            EPOCHS_RUN: epochs_run,
            RESTORED: restored,
            last_column(metric): last.get(metric),
            LAST_RECALL: last.get("recall_at_k"),
            LAST_MRR: last.get("mrr_at_k"),
            best_column(metric): best,
            BEST_EPOCH: best_epoch,
            TRAIN_SECONDS: train_seconds,
            EVAL_SECONDS: eval_seconds,
            PEAK_RSS_MB: peak_rss_mb,
            CURVE: curve,
            ERROR: error,
            CHECKPOINT: checkpoint,
        }

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> TrialsTable:
        frame = pd.DataFrame([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
        return cls(frame.sort_values(POINT) if len(frame) else frame)

    def to_parquet(self) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(self.frame, preserve_index=False), sink, compression="zstd")
        return sink.getvalue().to_pybytes()

    @classmethod
    def from_parquet(cls, data: bytes, what: str) -> TrialsTable:
        return cls(
            formats.read_parquet(data, what).to_pandas(use_threads=False)
        )  # no Arrow pool threads: see read_parquet


def trial_row(
    metric: str,
    *,
    trial_id: str,
    point: int,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    errored: bool,
    restored: bool,
    error: str | None,
    checkpoint: str | None,
) -> dict[str, Any]:
    """A trial's row from its history (one entry per epoch reported, in order)."""
    # Compute counts every epoch trained; the curve counts each epoch once (a trial that went on
    # from a checkpoint trains, and reports, the epochs after it again).
    curve = sorted({int(entry["epoch"]): entry for entry in history if entry.get(metric) is not None}.items())
    final = curve[-1][1] if curve else {}
    best_epoch, best = max(curve, key=lambda item: item[1][metric]) if curve else (None, None)
    epochs_run = curve[-1][0] if curve else 0
    if errored:
        state = TrialState.ERRORED
    else:
        state = TrialState.STOPPED_EARLY if epochs_run < int(config.get("epochs", 0)) else TrialState.COMPLETED
    return TrialsTable.row(
        trial_id=trial_id,
        point=point,
        state=state,
        config=config,
        epochs_run=epochs_run,
        restored=restored,
        metric=metric,
        last=final,
        best=None if best is None else float(best[metric]),
        best_epoch=best_epoch,
        train_seconds=float(sum(entry.get("epoch_train_s") or 0.0 for entry in history)),
        eval_seconds=float(sum(entry.get("epoch_eval_s") or 0.0 for entry in history)),
        peak_rss_mb=max(
            (float(entry["peak_rss_mb"]) for entry in history if entry.get("peak_rss_mb") is not None), default=None
        ),
        curve=[float(entry[metric]) for _, entry in curve],
        error=error,
        checkpoint=checkpoint,
    )
