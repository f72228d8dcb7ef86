"""A sweep's trials as their checkpoints record them (no Ray): the checkpoint format, read back
by a resume (``recorded_trials``) and by ``results`` for a sweep without a trials table
(``checkpointed_trials``).

A checkpoint folder holds the trial's weights (``state.npz``, arrays) and its record
(``trial.json``: point, trial id, config, curve so far, and the size and sha256 of the weights),
never a pickle; ``trial.train_trial`` writes them. Checkpoints written before the checksum was
recorded are checked by their size only.
"""

from __future__ import annotations

import hashlib
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sessrec import formats, layout, storage
from sessrec.errors import SessrecError
from sessrec.sweep.records import SweepPaths, load_sweep
from sessrec.sweep.trials import POINT, STATE, TrialsTable, TrialState, trial_row

__all__ = [
    "CHECKPOINTS_KEPT",
    "STATE_BYTES",
    "STATE_SHA256",
    "RecordedTrial",
    "SweepPaths",
    "checkpointed_trials",
    "kept_row",
    "damaged_checkpoints_warning",
    "recorded_trials",
    "state_damage",
    "state_sha256",
]

#: Checkpoints Tune keeps per trial.
CHECKPOINTS_KEPT = 2
#: The record's note of its weights' size in bytes.
STATE_BYTES = "state_bytes"
#: The record's sha256 (hex) of its weights: bytes flipped in place (a bad disk, a bad copy) keep the size.
STATE_SHA256 = "state_sha256"


def state_sha256(weights: bytes) -> str:
    return hashlib.sha256(weights).hexdigest()


def state_damage(record: dict[str, Any], weights: bytes) -> str | None:
    """Why the weights are not the ones the record was written with, or None when they are (a record
    without a checksum, from an older sessrec, is checked by the size alone)."""
    expected = record.get(STATE_BYTES)
    if expected is not None and len(weights) != int(expected):
        return f"its state.npz has {len(weights)} of {int(expected)} bytes"
    checksum = record.get(STATE_SHA256)
    if checksum is not None and state_sha256(weights) != checksum:
        return "its state.npz does not match the sha256 its trial.json records"
    return None


def damaged_checkpoints_warning(damaged: list[tuple[str, str]], goes_on: str) -> str:
    """One warning line for the checkpoints found damaged ((folder, reason) each), however many."""
    folder, reason = damaged[0]
    if len(damaged) == 1:
        return f"warning: {folder} was not stored whole ({reason}); its trial {goes_on}\n"
    return (
        f"warning: {len(damaged)} checkpoints were not stored whole (the first: {folder}, {reason}); "
        f"their trials go on from the checkpoints before them\n"
    )


@dataclass(frozen=True)
class RecordedTrial:
    """A trial as its newest checkpoint in storage tells it."""

    point: int
    trial_id: str
    config: dict[str, Any]
    history: list[dict[str, Any]]  # one entry per epoch trained, in order
    checkpoint: str  # the folder of that checkpoint
    restored: bool  # went on from a checkpoint at some point

    @property
    def epochs(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    @property
    def finished(self) -> bool:
        """Trained every epoch of its config (a trial ASHA stopped is continued and decided again)."""
        return self.epochs >= int(self.config["epochs"])


def recorded_trials(paths: SweepPaths, warn: bool = True) -> dict[int, RecordedTrial]:
    """Per point, the furthest checkpoint of every run of the sweep (Tune keeps a trial's last
    CHECKPOINTS_KEPT). A checkpoint counts once it was stored whole: its record is JSON and its
    weights have the size the record gives. A run killed while it stored one leaves it part
    written (or one stored whole may be damaged since: its sha256 differs); its trial then goes on
    from the checkpoint before. One warning line names the damaged checkpoint (or the first of them,
    with their count), unless ``warn`` is false (a check that reads them again to run)."""
    sizes: dict[str, dict[str, int]] = {}  # checkpoint folder -> its two files' sizes
    for path, size in storage.walk_file_sizes(paths.file(layout.TUNE_DIR)):
        folder, _, name = path.rpartition("/")
        if "/checkpoint_" in f"/{folder}" and name in (layout.STATE_FILE, layout.TRIAL_FILE):
            sizes.setdefault(folder, {})[name] = size
    checkpoints: dict[str, list[str]] = {}  # trial folder -> its checkpoints with both files, newest first
    for folder in sorted((folder for folder, files in sizes.items() if len(files) == 2), reverse=True):
        checkpoints.setdefault(folder.rpartition("/")[0], []).append(folder)

    damaged: list[tuple[str, str, bool]] = []  # (folder, reason, the trial's last checkpoint)

    def newest_whole(folders: list[str]) -> RecordedTrial | None:
        for folder in folders:
            checkpoint = paths.file(layout.TUNE_DIR, folder)
            uri = paths.file(layout.TUNE_DIR, folder, layout.TRIAL_FILE)
            data = storage.read_bytes(uri)
            try:
                raw = formats.from_json(data, uri)
            except SessrecError:
                reason = "its trial.json is not whole JSON"
            else:
                trial, state_bytes = _trial_record(raw, uri, checkpoint)
                stored = sizes[folder][layout.STATE_FILE]
                if stored != state_bytes:
                    reason = f"its state.npz has {stored} of {state_bytes} bytes"
                elif STATE_SHA256 not in raw:  # written before checksums: its size is all there is to check
                    return trial
                else:
                    found = state_damage(raw, storage.read_bytes(storage.join(checkpoint, layout.STATE_FILE)))
                    if found is None:
                        return trial
                    reason = found
            damaged.append((checkpoint, reason, folder == folders[-1]))
        return None

    with ThreadPoolExecutor(max_workers=16) as pool:  # a record and its weights per trial: in parallel on S3
        trials = [trial for trial in pool.map(newest_whole, [checkpoints[key] for key in sorted(checkpoints)]) if trial]
    if damaged and warn:
        damaged.sort()
        goes_on = (
            "goes on from an earlier run's checkpoint, or starts again"
            if damaged[0][2]
            else "goes on from the checkpoint before it"
        )
        sys.stderr.write(damaged_checkpoints_warning([(folder, reason) for folder, reason, _ in damaged], goes_on))
    furthest: dict[int, RecordedTrial] = {}
    for trial in trials:
        if trial.point not in furthest or trial.epochs > furthest[trial.point].epochs:
            furthest[trial.point] = trial
    return furthest


def _trial_record(raw: Any, uri: str, checkpoint: str) -> tuple[RecordedTrial, int]:
    """The trial a checkpoint's record tells, and the size its weights were written with."""
    try:
        trial = RecordedTrial(
            int(raw[POINT]),
            str(raw["trial_id"]),
            dict(raw["config"]),
            [dict(entry) for entry in raw["history"]],
            checkpoint,
            bool(raw.get("restored")),
        )
        int(trial.config["epochs"])  # what a resume reads of it: fail here, with the file's name
        for entry in trial.history:
            int(entry["epoch"])
        return trial, int(raw[STATE_BYTES])
    except (KeyError, TypeError, ValueError):
        raise SessrecError(
            f"{uri} is not a sessrec trial record; delete its checkpoint folder to resume from the one before"
        ) from None


def kept_row(metric: str, trial: RecordedTrial) -> dict[str, Any]:
    """The trials-table row of a trial an earlier run recorded."""
    return trial_row(
        metric,
        trial_id=trial.trial_id,
        point=trial.point,
        config=trial.config,
        history=trial.history,
        errored=False,
        restored=trial.restored,
        error=None,
        checkpoint=trial.checkpoint,
    )


def checkpointed_trials(root: str, sweep_id: str) -> pd.DataFrame:
    """The trials of a sweep that has no trials table (interrupted, or still running), as their
    newest checkpoints record them. A trial with fewer epochs than its config's is 'unfinished':
    a checkpoint does not tell a trial ASHA stopped from one cut short."""
    spec, _ = load_sweep(root, sweep_id)
    rows = [kept_row(spec.metric, trial) for trial in recorded_trials(SweepPaths(root, sweep_id)).values()]
    for row in rows:
        if row[STATE] == TrialState.STOPPED_EARLY:
            row[STATE] = TrialState.UNFINISHED.value
    return TrialsTable.from_rows(rows).frame
