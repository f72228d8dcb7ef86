"""A sweep's trials as their checkpoints record them (no Ray): the checkpoint format, read back
by a resume (``recorded_trials``) and by ``results`` for a sweep without a trials table
(``checkpointed_trials``).

A checkpoint folder holds the trial's weights (``state.npz``, arrays) and its record
(``trial.json``: point, trial id, config, curve so far, and the size and sha256 of the weights),
never a pickle; ``trial.train_trial`` writes them. Checkpoints written before the checksum was
recorded are checked by their size only.

A sweep's word2vec epoch cache (``Word2VecCache``) holds the same weights once per word2vec config
and epoch, for every trial of that config: trials that differ only in how they score train it once.
"""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from sessrec import formats, layout, storage
from sessrec.errors import NotFoundError, SessrecError
from sessrec.sweep.records import SweepPaths, load_sweep
from sessrec.sweep.trials import POINT, STATE, TrialsTable, TrialState, trial_row

if TYPE_CHECKING:  # gensim and the word2vec core load where a trial trains, not where results are read
    from gensim.models import Word2Vec

    from sessrec.core.word2vec import TrainingState, Word2VecConfig

__all__ = [
    "CHECKPOINTS_KEPT",
    "STATE_BYTES",
    "STATE_SHA256",
    "RecordedTrial",
    "Word2VecCache",
    "SweepPaths",
    "checkpointed_trials",
    "kept_row",
    "damaged_checkpoints_warning",
    "recorded_trials",
    "state_damage",
    "state_sha256",
    "word2vec_key",
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


#: Part of every word2vec cache key: a new training-state format (or a trainer that no longer makes
#: the same weights) takes a new number, so that no sweep reads entries of the old.
WORD2VEC_CACHE_VERSION = 1


def word2vec_key(config: Word2VecConfig) -> str:
    """The sha256 (hex) of what decides the word2vec a trial trains, given the sweep's data: every
    field of its config. ``epochs`` too: each epoch's learning rate falls linearly over the total
    (``Word2VecConfig.alpha_bounds``), so epoch 3 of a 4-epoch run is not that of a 12-epoch one;
    ``workers`` too: with more than one, gensim's threads train in no fixed order."""
    identity = {"version": WORD2VEC_CACHE_VERSION, **config.to_dict()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass
class Word2VecCache:
    """A sweep's word2vec after each epoch, for one word2vec config (``folder``:
    ``sweeps/<id>/word2vec/<key>``): the training state (``TrainingState.to_npz``) per epoch, so
    that a trial with that config reads the epochs another trial trained instead of training them.

    Each entry is written once, whole (``storage.create_exclusive``: the first writer wins, a later
    one skips), and never trusted unread: an entry that is not whole (its zip's CRC-32 per array),
    names another epoch, or does not fit the trial's model (vocabulary, shapes) is passed over with
    one warning line, retrained and replaced. Trouble with storage never fails a trial: it trains
    the epoch itself, and a write that fails is left out. Regenerable: ``results prune`` removes it."""

    folder: str
    #: Whether a warning line was written: one per trial is enough.
    warned: bool = field(default=False, compare=False)

    @classmethod
    def of(cls, cache_root: str, config: Word2VecConfig) -> Word2VecCache:
        return cls(storage.join(cache_root, word2vec_key(config)))

    def uri(self, epoch: int) -> str:
        return storage.join(self.folder, layout.word2vec_epoch_file(epoch))

    def read(self, epoch: int, model: Word2Vec) -> tuple[TrainingState | None, bool]:
        """The training state after ``epoch`` epochs, if stored whole and fit for ``model``; and
        whether an entry is there that is not (damaged: retrain it and ``write(replace=True)``)."""
        from sessrec.core.word2vec import TrainingState

        uri = self.uri(epoch)
        try:
            data = storage.read_bytes(uri)
        except NotFoundError:
            return None, False
        except (SessrecError, OSError) as exc:
            self._warn(f"cannot read {uri} ({exc}); the trial trains the epoch itself")
            return None, False
        try:
            state = TrainingState.from_npz(data)
            reason = _misfit(state, epoch, model)
        except SessrecError as exc:
            reason = str(exc)
        except (TypeError, ValueError) as exc:  # a meta of the wrong kinds, arrays of another layout
            reason = f"unreadable ({exc})"
        if reason is not None:
            self._warn(f"word2vec cache entry {uri} is damaged ({reason}); retrained and replaced")
            return None, True
        return state, False

    def write(self, epoch: int, state: TrainingState, replace: bool = False) -> bool:
        """Store the state after ``epoch`` epochs unless an entry is there (``replace``: one found
        damaged, written over). Whether this call wrote it."""
        uri = self.uri(epoch)
        try:
            if replace:
                storage.write_bytes(uri, state.to_npz())
                return True
            if storage.exists(uri):
                return False
            return storage.create_exclusive(uri, state.to_npz())
        except (SessrecError, OSError) as exc:
            self._warn(f"cannot write {uri} ({exc}); the trials after train the epoch themselves")
            return False

    def _warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            sys.stderr.write(f"warning: {message}\n")


def _misfit(state: TrainingState, epoch: int, model: Word2Vec) -> str | None:
    """Why a cached state is not the one a trial's model needs after ``epoch`` epochs (None: it is)."""
    if state.epochs_done != epoch:
        return f"it holds epoch {state.epochs_done}"
    if state.vectors.shape != model.wv.vectors.shape or state.syn1neg.shape != model.syn1neg.shape:
        return "its weights have other shapes"
    if state.random_keys.shape != (624,):  # MT19937's state: what restoring it would refuse half-way
        return "its random state is not MT19937's"
    if state.vocab != list(model.wv.index_to_key):
        return "its vocabulary differs"
    return None
