"""The Ray Tune edge: a sweep over word2vec configurations with ASHA, per-epoch checkpoints,
results written into the storage layout, and resume from storage.

Nothing else in sessrec imports Ray Tune. A trial is the same ``fit`` loop as ``sessrec train``:
each epoch reports validation metrics and a small checkpoint (arrays, never pickle), so ASHA
can stop it and a lost trial restarts where it was on any node.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sessrec import __version__, formats, layout, memory, storage
from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate, metric_label
from sessrec.core.sessions import Sessions
from sessrec.core.split import Pairs, Split
from sessrec.core.word2vec import TrainingState, Word2VecConfig, embeddings_of, fit, new_model, train_epoch
from sessrec.errors import SessrecError
from sessrec.pipeline import Dataset, load_dataset, now, split_dataset
from sessrec.spec import SweepSpec, parse_spec

CHECKPOINTS_KEPT = 2
#: How long a sweep rides out unreachable storage (S3 down, a network cut) before it stops
#: resumably, in seconds; the environment variable overrides the default.
STORAGE_PATIENCE_VAR, STORAGE_PATIENCE_S = "SESSREC_STORAGE_PATIENCE", 120.0
#: How long the driver waits for a lost Ray cluster (its GCS unreachable) before it gives up.
CLUSTER_PATIENCE_VAR, CLUSTER_PATIENCE_S = "SESSREC_CLUSTER_PATIENCE", 30.0
#: A trial waits longer than its driver, so that an outage stops the sweep as a whole (which
#: resume continues) before any trial errors because of it.
TRIAL_EXTRA_PATIENCE_S = 60.0

T = TypeVar("T")


def new_sweep_id(spec: SweepSpec) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{spec.name}-{stamp}-{secrets.token_hex(2)}"


# ---------------------------------------------------------------------------------------------
# The trial


#: The config key of a trial's place in the sweep: its index in the spec's plan, or its number in
#: Optuna's order. Not a word2vec parameter; a resume knows a trial by it.
POINT = "point"
#: The record's note of its weights' size in bytes.
STATE_BYTES = "state_bytes"


def train_trial(
    config: dict[str, Any], train: Sessions, validation: Pairs, k: int, workers: int, patience_s: float, carried: dict[int, str]
) -> None:
    """One trial: train epoch by epoch, report validation metrics and a checkpoint each epoch.

    It goes on from Tune's checkpoint when Tune restarts it (its node was lost), from the
    checkpoint an earlier run left (``carried``: point -> checkpoint folder) when a resume
    continues it, and starts afresh otherwise. Each checkpoint holds the weights (``state.npz``)
    and the trial's config and curve so far (``trial.json``): all a resume needs."""
    from ray import tune

    point = int(config[POINT])
    params = {name: value for name, value in config.items() if name != POINT}
    w2v = Word2VecConfig.from_dict({**params, "workers": workers})
    trial_id = tune.get_context().get_trial_id()
    source = tune.get_checkpoint()
    from_earlier_run = source is None and point in carried
    if from_earlier_run:
        source = tune.Checkpoint(storage.tune_path(carried[point]))
    start, history = None, []
    if source is not None:

        def restore() -> tuple[TrainingState, list[dict[str, Any]]]:
            with source.as_directory() as folder:
                recorded = formats.from_json(Path(folder, layout.TRIAL_FILE).read_bytes(), f"{source.path}/{layout.TRIAL_FILE}")
                return TrainingState.from_npz(Path(folder, layout.STATE_FILE).read_bytes()), recorded["history"]

        start, history = _patiently(restore, patience_s)
        history = [entry for entry in history if entry["epoch"] <= start.epochs_done]

    def report(epoch: int, metrics: dict[str, float], state: TrainingState) -> None:
        with tempfile.TemporaryDirectory(prefix="sessrec-ckpt-") as folder:
            weights = state.to_npz()
            Path(folder, layout.STATE_FILE).write_bytes(weights)
            # Its size tells a resume whether the weights were stored whole (Tune uploads the two
            # files side by side; a process killed mid-way leaves a short file on a local disk).
            record = {
                POINT: point, "trial_id": trial_id, "config": params, "restored": start is not None, "history": history,
                STATE_BYTES: len(weights),
            }
            Path(folder, layout.TRIAL_FILE).write_bytes(formats.to_json(record))
            # A failed upload reported nothing (Tune only learns of a checkpoint once it is
            # stored), so the same report can be made again from the same folder.
            _patiently(
                lambda: tune.report(
                    {**metrics, "epoch": epoch, POINT: point, "restored": start is not None},
                    checkpoint=tune.Checkpoint.from_directory(folder),
                ),
                patience_s,
            )

    if from_earlier_run and history:
        # Continued from an earlier run: its last epoch is reported again (no training), so that
        # the scheduler decides there as it would have (the run may have stopped before it did).
        report(start.epochs_done, {**history[-1], "replayed": True}, start)

    def on_epoch(epoch: int, metrics: dict[str, float], model) -> None:
        # The worker's peak memory so far, for the trials table.
        peak_rss_mb = memory.peak_rss_mb()
        history.append({**metrics, "epoch": epoch, "peak_rss_mb": peak_rss_mb})
        report(epoch, {**metrics, "peak_rss_mb": peak_rss_mb, "replayed": False}, TrainingState.capture(model, epoch))

    fit(w2v, train.to_lists(), validation, k, on_epoch=on_epoch, start=start)


def _patiently(call: Callable[[], T], patience_s: float) -> T:
    """Run a call that reads or writes storage, retrying with backoff while storage is
    unreachable (pyarrow raises OSError once its own retries of a few seconds are spent)."""
    deadline = time.monotonic() + patience_s
    delay = 0.5
    while True:
        try:
            return call()
        except OSError:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 8.0)


def storage_patience() -> float:
    return _patience(STORAGE_PATIENCE_VAR, STORAGE_PATIENCE_S)


def _patience(variable: str, default: float) -> float:
    raw = os.environ.get(variable)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise SessrecError(f"{variable} must be a number of seconds above 0, not {raw!r}")
    return value


def _trainable(spec: SweepSpec, split: Split, carried: dict[int, str]):
    from ray import tune

    trainable = tune.with_parameters(
        train_trial,
        train=split.train,
        validation=split.validation,
        k=spec.k,
        workers=spec.cpus_per_trial,
        patience_s=storage_patience() + TRIAL_EXTRA_PATIENCE_S,
        carried=carried,
    )
    return tune.with_resources(trainable, {"cpu": spec.cpus_per_trial})


# ---------------------------------------------------------------------------------------------
# What a sweep has recorded: read back from its checkpoints (JSON and arrays) by a resume


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


def recorded_trials(paths: "SweepPaths") -> dict[int, RecordedTrial]:
    """Per point, the furthest checkpoint of every run of the sweep (Tune keeps a trial's last
    CHECKPOINTS_KEPT). A checkpoint counts once it was stored whole: its record is JSON and its
    weights have the size the record gives. A run killed while it stored one leaves it part
    written; its trial then goes on from the checkpoint before, with a warning naming it."""
    sizes: dict[str, dict[str, int]] = {}  # checkpoint folder -> its two files' sizes
    for path, size in storage.walk_file_sizes(paths.file(layout.TUNE_DIR)):
        folder, _, name = path.rpartition("/")
        if "/checkpoint_" in f"/{folder}" and name in (layout.STATE_FILE, layout.TRIAL_FILE):
            sizes.setdefault(folder, {})[name] = size
    checkpoints: dict[str, list[str]] = {}  # trial folder -> its checkpoints with both files, newest first
    for folder in sorted((folder for folder, files in sizes.items() if len(files) == 2), reverse=True):
        checkpoints.setdefault(folder.rpartition("/")[0], []).append(folder)

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
                if stored == state_bytes:
                    return trial
                reason = f"its state.npz has {stored} of {state_bytes} bytes"
            goes_on = "goes on from the checkpoint before it" if folder != folders[-1] else "goes on from an earlier run's checkpoint, or starts again"
            sys.stderr.write(f"warning: {checkpoint} was not stored whole ({reason}); its trial {goes_on}\n")
        return None

    with ThreadPoolExecutor(max_workers=16) as pool:  # one small read per trial: in parallel on S3
        trials = [trial for trial in pool.map(newest_whole, [checkpoints[key] for key in sorted(checkpoints)]) if trial]
    furthest: dict[int, RecordedTrial] = {}
    for trial in trials:
        if trial.point not in furthest or trial.epochs > furthest[trial.point].epochs:
            furthest[trial.point] = trial
    return furthest


def _trial_record(raw: Any, uri: str, checkpoint: str) -> tuple[RecordedTrial, int]:
    """The trial a checkpoint's record tells, and the size its weights were written with."""
    try:
        trial = RecordedTrial(
            int(raw[POINT]), str(raw["trial_id"]), dict(raw["config"]), [dict(entry) for entry in raw["history"]],
            checkpoint, bool(raw.get("restored")),
        )
        int(trial.config["epochs"])  # what a resume reads of it: fail here, with the file's name
        for entry in trial.history:
            int(entry["epoch"])
        return trial, int(raw[STATE_BYTES])
    except (KeyError, TypeError, ValueError):
        raise SessrecError(f"{uri} is not a sessrec trial record; delete its checkpoint folder to resume from the one before") from None


# ---------------------------------------------------------------------------------------------
# Search and scheduler


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """Optuna's search space as Tune domains (grid and random sweeps hand Tune their plan instead)."""
    from ray import tune

    space: dict[str, Any] = {}
    for name, domain in spec.space.items():
        if domain.kind == "fixed":
            space[name] = domain.values[0]
        elif domain.values:
            space[name] = tune.choice(list(domain.values))
        elif domain.kind == "randint":
            space[name] = tune.randint(int(domain.low), int(domain.high))
        else:
            space[name] = (tune.loguniform if domain.kind == "loguniform" else tune.uniform)(domain.low, domain.high)
    space.setdefault("epochs", spec.max_t)
    return space


def _searcher(
    spec: SweepSpec, queued: list[tuple[int, dict[str, Any]]], kept: list[RecordedTrial], fresh: int, verbose: bool
):
    """The trials Tune runs, in order: ``queued`` (point, config) first; then, for Optuna,
    ``fresh`` new points it suggests, learning from ``kept`` (trials an earlier run finished) and
    from each trial as it completes."""
    from ray.tune.search import ConcurrencyLimiter, Searcher

    optuna = None
    if spec.method == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch
            import optuna as _optuna  # (the extra must be installed)
        except ImportError:
            raise SessrecError("search.method optuna needs the optuna extra: pip install 'sessrec[optuna]'") from None
        if not verbose:  # "A new study created in memory ..."
            _optuna.logging.set_verbosity(_optuna.logging.WARNING)
        optuna = OptunaSearch(seed=spec.search_seed)
    searched = [name for name, domain in spec.space.items() if domain.kind != "fixed"]
    first_new_point = max([point for point, _ in queued] + [trial.point for trial in kept], default=-1) + 1

    def searched_part(config: dict[str, Any]) -> dict[str, Any]:
        return {name: config[name] for name in searched}

    class SweepSearcher(Searcher):
        def __init__(self) -> None:
            super().__init__(metric=spec.metric, mode="max")
            self.queue, self.fresh, self.next_point = list(queued), fresh, first_new_point
            self.suggested_by_optuna: set[str] = set()
            self.continued: dict[str, dict[str, Any]] = {}  # trial id -> config (Optuna learns it when done)

        def set_search_properties(self, metric, mode, config, **tune_spec) -> bool:
            if optuna is not None:
                optuna.set_search_properties(metric, mode, config, **tune_spec)
                for trial in kept:
                    optuna.add_evaluated_point(searched_part(trial.config), float(trial.history[-1][spec.metric]))
            return True

        def suggest(self, trial_id: str):
            if self.queue:
                point, config = self.queue.pop(0)
                self.continued[trial_id] = config
                return {POINT: point, **config}
            if self.fresh <= 0:
                return Searcher.FINISHED
            config = optuna.suggest(trial_id)
            if not isinstance(config, dict):  # None (wait) or FINISHED
                return config
            self.fresh -= 1
            self.suggested_by_optuna.add(trial_id)
            self.next_point += 1
            return {POINT: self.next_point - 1, **config}

        def save(self, checkpoint_path: str) -> None:
            """Nothing to save: a resume rebuilds the searcher from the spec and the checkpoints."""

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if trial_id in self.suggested_by_optuna:
                optuna.on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id in self.suggested_by_optuna:
                optuna.on_trial_complete(trial_id, result, error)
            elif optuna is not None and trial_id in self.continued and result and spec.metric in result and not error:
                optuna.add_evaluated_point(searched_part(self.continued[trial_id]), float(result[spec.metric]))

    searcher = SweepSearcher()
    return ConcurrencyLimiter(searcher, spec.max_concurrent_trials) if spec.max_concurrent_trials else searcher


def _scheduler(spec: SweepSpec, recorded: dict[int, RecordedTrial], continued: set[int]):
    """FIFO, or ASHA on the epoch count whose rungs start with what earlier runs recorded: a
    finished trial's value at every rung it reached, a continued one's at the rungs before its
    last epoch (it reports that epoch again, and is decided there)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler == "fifo":
        return FIFOScheduler()

    class ResumableASHA(ASHAScheduler):
        def __init__(self) -> None:
            super().__init__(time_attr="epoch", max_t=spec.max_t, grace_period=spec.grace_period, reduction_factor=spec.reduction_factor)
            (bracket,) = self._brackets  # one bracket (Tune's default)
            for trial in recorded.values():
                last = trial.epochs - 1 if trial.point in continued else trial.epochs
                values = {int(entry["epoch"]): entry.get(spec.metric) for entry in trial.history}
                for milestone, rung in bracket._rungs:
                    epoch = math.ceil(milestone)  # ASHA records the first result at or past a milestone
                    if epoch <= last and values.get(epoch) is not None:
                        rung[_point_key(trial.point)] = float(values[epoch])

        def on_trial_add(self, tune_controller, trial) -> None:
            super().on_trial_add(tune_controller, trial)
            # A continued trial's earlier values become its own (ASHA keys them by trial id).
            key = _point_key(int(trial.config[POINT]))
            for _, rung in self._brackets[0]._rungs:
                if key in rung:
                    rung[trial.trial_id] = rung.pop(key)

    return ResumableASHA()


def _point_key(point: int) -> str:
    return f"recorded-point-{point}"


# ---------------------------------------------------------------------------------------------
# Progress


def time_left(elapsed: float, trained_here: int, epochs_done: float, epochs_expected: float, unstarted: int, first_rung: int) -> float:
    """Seconds a sweep has left, from the epochs it has trained in this run so far (the pace)
    and the epochs it is expected to train in all (``SweepSpec.expected_epochs``: with ASHA most
    trials stop at an early rung, so counting trials would put the first, unstopped ones' time
    on every trial). A sweep that trained more than expected still has each unstarted trial's
    first rung to go."""
    if not trained_here:
        return math.nan
    to_train = max(epochs_expected - epochs_done, unstarted * first_rung)
    return elapsed / trained_here * to_train


def _progress_callback(spec: SweepSpec, live: bool, kept: list[RecordedTrial]):
    from ray import tune

    metric, total = spec.metric, spec.num_trials
    label = metric_label(metric, spec.k)
    epochs_expected = spec.expected_epochs()[1]
    first_rung = min(spec.grace_period, spec.max_t) if spec.scheduler == "asha" else round(spec.planned_epochs())

    class SweepProgress(tune.Callback):
        """One line of progress: trials finished/running/stopped early, best metric, time.

        Counts are read from Tune's trial list on every event, plus the trials that earlier runs
        of the sweep finished (``kept``: a resume does not run them again). The best is taken
        over each trial's latest result, as the sweep picks its best trial by the final one: a
        peak that a trial's later epochs lost is not shown as the sweep's best."""

        def __init__(self) -> None:
            self.started = time.time()
            self.kept_best = max((float(t.history[-1].get(metric, -math.inf)) for t in kept), default=-math.inf)
            self.latest: dict[str, float] = {}
            self.epoch_reached: dict[str, int] = {}  # a trial's epoch, counted from its first (a resume's too)
            self.trained_here = 0  # epochs trained by this run: one result each
            self.kept_epochs = sum(t.epochs for t in kept)
            self.last_print = 0.0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.latest[trial.trial_id] = float(result.get(metric, -math.inf))
            self.epoch_reached[trial.trial_id] = int(result.get("epoch", 0) or 0)
            self.trained_here += 1
            self._print(trials)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._print(trials, force=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._print(trials, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            # Tune's own traceback is shown with --verbose only: one line names the trial here.
            sys.stderr.write(("\r\033[K" if live else "") + f"warning: trial {trial.trial_id} errored: {_error_line(trial)}\n")
            self.latest.pop(trial.trial_id, None)  # the sweep's best is chosen from the others
            self._print(trials, force=True)

        def on_experiment_end(self, trials, **info):
            self._print(trials, force=True)
            if live:
                sys.stderr.write("\n")

        def _print(self, trials, force: bool = False) -> None:
            now_s = time.time()
            if not force and now_s - self.last_print < (0.5 if live else 30):
                return
            self.last_print = now_s
            states = [_trial_state(t.status, t.last_result or {}, t.config) for t in trials] + ["completed"] * len(kept)
            finished = sum(s in ("completed", "stopped_early", "errored") for s in states)
            elapsed = now_s - self.started
            # Trials are created lazily under a concurrency limit: the plan gives the total.
            planned = max(total, len(trials))
            epochs_done = self.kept_epochs + sum(self.epoch_reached.values())
            unstarted = planned - finished - states.count("running")
            left = time_left(elapsed, self.trained_here, epochs_done, epochs_expected, unstarted, first_rung)
            best_value = max([self.kept_best, *self.latest.values()])
            best = f"{best_value:.4f}" if best_value > -math.inf else "-"
            line = (
                f"trials {finished}/{planned} done, {states.count('running')} running, "
                f"{states.count('stopped_early')} stopped early, {states.count('errored')} errored | "
                f"best {label} {best} | {_clock(elapsed)} elapsed, ~{_clock(left)} left"
            )
            if live:
                # A line that wraps is not redrawn in place: each update would leave a row behind.
                width = shutil.get_terminal_size().columns - 1
                if len(line) > width:
                    line = f"{finished}/{planned} done, {states.count('running')} running | best {best} | ~{_clock(left)} left"[:width]
            sys.stderr.write(("\r\033[K" + line) if live else line + "\n")
            sys.stderr.flush()

    return SweepProgress()


def _error_line(trial) -> str:
    """The last line of a failed trial's traceback (the exception), as Tune wrote it."""
    try:
        # Tune writes the error file on the driver before this callback and copies it to
        # storage later: the local copy is there now, the stored one may not be yet.
        local = trial.error_file
        text = Path(local).read_text() if local and Path(local).exists() else (trial.get_error() or "")
    except OSError:  # the stored error file is in storage, which may be what failed
        text = ""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no reason recorded)"


def _trial_state(status: str, last: dict[str, Any], config: dict[str, Any]) -> str:
    """completed | stopped_early | errored | running | pending | interrupted, from Tune's trial
    status; Tune marks the last result of a trial that ended by itself or by the scheduler done,
    not that of one it stopped on Ctrl-C or SIGTERM (a resume goes on with it)."""
    if status == "ERROR":
        return "errored"
    if status == "TERMINATED" and not last.get("done"):
        return "interrupted"
    if status == "TERMINATED":
        planned = int(config.get("epochs", 0))
        return "stopped_early" if int(last.get("epoch", 0) or 0) < planned else "completed"
    return "running" if status == "RUNNING" else "pending"


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


# ---------------------------------------------------------------------------------------------
# Running, resuming, finishing


def connect(address: str | None, num_cpus: int | None, verbose: bool) -> None:
    """Join a Ray cluster (``address``: ``auto``, ``host:port``, ``ray://...``), or start an
    embedded local one."""
    import ray

    if ray.is_initialized():
        return
    quiet = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.WARNING)
    # sessrec prints its own progress line; Ray's tables and snapshot warnings only with --verbose.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1" if verbose else "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "5" if verbose else "0")
    # A failed trial gets one line from the progress callback, its traceback with --verbose.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "1" if verbose else "0")
    if not verbose:
        # During a storage outage Ray logs a traceback for every failed state upload and
        # checkpoint deletion; the sweep handles the outage itself (see _Watch).
        for name in (
            "ray.train._internal.storage",
            "ray.train._internal.syncer",
            "ray.tune.execution.experiment_state",
            "ray.tune.execution.tune_controller",  # "Error handling checkpoint" when a deletion fails
            # On an interrupt, a line for every trial still pending ("Could not fetch metrics"):
            # sessrec reads no trial's results through Tune's dataframes.
            "ray.tune.analysis.experiment_analysis",
            # On an interrupt, "Resume experiment with: Tuner.restore(...)": sessrec's resume is
            # its own (the CLI names it), and reads none of Tune's pickled state.
            "ray.tune.tune",
            # "The process_trial_save operation took 1.0 s": a checkpoint upload, timed by Tune.
            "ray.tune.utils.util",
            # "Token authentication is enabled for this Ray cluster": an embedded Ray's default.
            "ray._private.authentication.authentication_token_setup",
        ):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    endpoint = _gcs_endpoint(address)
    if endpoint:
        _probe(endpoint, address)
    # A driver refused (say, for a wrong token) retries for a long time by default.
    os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", "5")
    # Ray core installs a fatal-signal handler that kills the driver on SIGTERM; keep the
    # caller's handler (the CLI turns SIGTERM into Tune's graceful Ctrl-C stop).
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
    except ConnectionError as exc:
        raise SessrecError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
    if callable(sigterm_handler):
        signal.signal(signal.SIGTERM, sigterm_handler)


def _probe(endpoint: tuple[str, int], address: str) -> None:
    """Fail in seconds, with one line, where ray.init would retry for minutes: a GCS that does not
    answer, or a port that answers HTTP/1 (the dashboard's, most likely), where the GCS speaks gRPC."""
    try:
        with socket.create_connection(endpoint, timeout=5) as connection:
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                answer = connection.recv(5)
            except TimeoutError:
                answer = b""
    except OSError as exc:
        raise SessrecError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
    if answer.startswith(b"HTTP/"):
        raise SessrecError(
            f"{address} answers HTTP, so it is not the Ray GCS: --address takes the head's GCS port "
            "(HOST:6379 by default), 'auto' or ray://HOST:10001; the dashboard's http://HOST:8265 is for 'sessrec submit'"
        )


def disconnect() -> None:
    """Leave the cluster (stopping an embedded one), so nothing Ray prints arrives later."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@dataclass(frozen=True)
class SweepPaths:
    root: str
    sweep_id: str

    @property
    def folder(self) -> str:
        return layout.sweep_dir(self.root, self.sweep_id)

    def file(self, *parts: str) -> str:
        return storage.join(self.folder, *parts)


def _versions() -> dict[str, str]:
    import gensim
    import ray

    return {"sessrec": __version__, "ray": ray.__version__, "gensim": gensim.__version__, "python": platform.python_version()}


def _trial_dir_name(trial) -> str:
    return layout.trial_dir_name(int(trial.config[POINT]), trial.trial_id)


def run_sweep(
    spec: SweepSpec,
    root: str,
    sweep_id: str | None = None,
    dataset_ref: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: bool = False,
    live: bool = False,
    resume_existing: bool = False,
) -> dict[str, Any]:
    """Run a whole sweep and write its results; returns the sweep manifest. With
    ``resume_existing``, a sweep id already in storage with the same spec and dataset is
    continued (or, completed, returned as it is) instead of refused: a RayJob's retry re-runs
    the same command with the same id."""
    sweep_id = new_sweep_id(spec) if sweep_id is None else sweep_id
    check_sweep_id(root, sweep_id, resume_existing)
    dataset_ref = dataset_ref or spec.dataset
    if not dataset_ref:
        raise SessrecError("no dataset: set 'dataset' in the spec or pass --dataset")
    paths = SweepPaths(root, sweep_id)
    if resume_existing and storage.exists(paths.file(layout.SPEC_FILE)):
        # Before this run loads the dataset: the resume loads the sweep's own.
        return _continue_existing(spec, root, sweep_id, dataset_ref, address, num_cpus, verbose, live)
    dataset = load_dataset(dataset_ref, root)
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    manifest = {
        "sweep_id": sweep_id,
        "name": spec.name,
        "status": "running",
        "dataset": {"ref": dataset_ref, "uri": dataset.uri, "sha256": dataset.sha256},
        "split": {"seed": spec.split_seed, "n": spec.split_n},
        "k": spec.k,
        "metric": spec.metric,
        "planned_trials": spec.num_trials,
        "versions": _versions(),
        "started": now(),
        "runs": 1,
    }
    connect(address, num_cpus, verbose)  # before the claim: an unreachable cluster leaves the id free
    import ray

    _check_trials_fit(spec, address)
    warning = spec.order_warning(spec.parallel_trials(int(ray.cluster_resources().get("CPU", 1))))
    if warning:
        sys.stderr.write(f"warning: {warning}\n")
    # The spec claims the sweep id: a second sweep with the same id is refused, never merged.
    if not storage.create_exclusive(paths.file(layout.SPEC_FILE), spec.to_yaml().encode()):
        if resume_existing:
            return _continue_existing(spec, root, sweep_id, dataset_ref, address, num_cpus, verbose, live)
        raise _sweep_exists(sweep_id, root)
    storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
    with _end_recorded(paths, manifest):
        return _run(spec, split, paths, manifest, {}, address, verbose, live)


def _check_trials_fit(spec: SweepSpec, address: str | None) -> None:
    """An embedded Ray never grows: a trial that needs more CPUs than it has would wait forever
    (a cluster's autoscaler may add nodes, so there Tune waits and says why)."""
    import ray

    if address is None:
        check_trials_fit(spec, int(ray.cluster_resources().get("CPU", 0)))


def check_trials_fit(spec: SweepSpec, embedded_cpus: int) -> None:
    if spec.cpus_per_trial > embedded_cpus:
        raise SessrecError(
            f"resources.cpus_per_trial is {spec.cpus_per_trial}, but the embedded Ray has {embedded_cpus} CPUs "
            "(--num-cpus): no trial could start"
        )


def check_sweep_id(root: str, sweep_id: str | None, resume_existing: bool = False) -> None:
    """What ``run_sweep`` refuses about an id before it trains: a bad name, or one in use."""
    if sweep_id is not None:
        layout.check_name(sweep_id, "sweep id")
        if not resume_existing and storage.exists(SweepPaths(root, sweep_id).file(layout.SPEC_FILE)):
            raise _sweep_exists(sweep_id, root)


def _continue_existing(
    spec: SweepSpec, root: str, sweep_id: str, dataset_ref: str, address: str | None, num_cpus: int | None, verbose: bool, live: bool
) -> dict[str, Any]:
    """``run_sweep``'s id is taken: the same sweep (spec and dataset) goes on; any other is refused."""
    stored, manifest = load_sweep(root, sweep_id)
    if stored.to_yaml() != spec.to_yaml() or manifest.get("dataset", {}).get("ref") != dataset_ref:
        raise SessrecError(f"sweep {sweep_id!r} already exists in {root} with another spec or dataset; "
                           "--resume-existing continues only the same sweep: choose another --sweep-id")
    if manifest.get("status") == "completed":
        sys.stderr.write(f"sweep {sweep_id} has already completed: nothing to run\n")
        return manifest
    sys.stderr.write(f"sweep {sweep_id} exists (status {manifest.get('status')}): continuing it\n")
    return resume_sweep(root, sweep_id, address, num_cpus, verbose, live)


def _sweep_exists(sweep_id: str, root: str) -> SessrecError:
    return SessrecError(f"sweep {sweep_id!r} already exists in {root}; choose another --sweep-id or 'tune resume' it")


def load_sweep(root: str, sweep_id: str) -> tuple[SweepSpec, dict[str, Any]]:
    paths = SweepPaths(root, sweep_id)
    if not storage.exists(paths.file(layout.SPEC_FILE)):
        raise SessrecError(f"no sweep {sweep_id!r} in {root}")
    spec = parse_spec(storage.read_text(paths.file(layout.SPEC_FILE)), paths.file(layout.SPEC_FILE))
    manifest = formats.sweep_manifest_from_json(storage.read_bytes(paths.file(layout.MANIFEST_FILE)), paths.file(layout.MANIFEST_FILE))
    return spec, manifest


def resume_sweep(
    root: str, sweep_id: str, address: str | None = None, num_cpus: int | None = None, verbose: bool = False, live: bool = False
) -> dict[str, Any]:
    """Continue an interrupted sweep from storage, in a new run of Tune: finished trials are kept
    as their checkpoints record them; unfinished and errored ones go on from their last
    checkpoints; trials never started start. Only the checkpoints' JSON and arrays are read."""
    spec, manifest = load_sweep(root, sweep_id)
    if manifest.get("status") == "completed":
        raise SessrecError(f"sweep {sweep_id!r} has already completed")
    dataset = load_dataset(manifest["dataset"]["uri"], root)
    if dataset.sha256 != manifest["dataset"]["sha256"]:
        raise SessrecError(f"the dataset of sweep {sweep_id!r} changed since it started (sha256 differs)")
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    paths = SweepPaths(root, sweep_id)
    recorded = recorded_trials(paths)  # before Ray starts: a damaged record is refused at once
    connect(address, num_cpus, verbose)
    _check_trials_fit(spec, address)
    manifest.update(status="running", resumed=now(), runs=int(manifest.get("runs", 1)) + 1)
    storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
    with _end_recorded(paths, manifest):
        return _run(spec, split, paths, manifest, recorded, address, verbose, live)


def _interrupted(paths: SweepPaths) -> SessrecError:
    return SessrecError(f"sweep {paths.sweep_id} interrupted; continue it with: sessrec tune resume {paths.sweep_id}")


@contextmanager
def _end_recorded(paths: SweepPaths, manifest: dict[str, Any]) -> Iterator[None]:
    """What ends a run unforeseen (a bug, something Ray or Tune refuses) is written to the
    manifest as well: a sweep that claimed its id is never left 'running' by its driver."""
    try:
        yield
    except SessrecError:
        raise  # recorded where it was raised (interrupted, failed), or storage is what failed
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        if interrupted:
            manifest.update(status="interrupted", interrupted=now())
        else:
            manifest.update(status="failed", reason=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")
        try:
            storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
        except SessrecError:
            pass  # the original error says more
        if interrupted:
            raise _interrupted(paths) from None
        raise


def _run(
    spec: SweepSpec,
    split: Split,
    paths: SweepPaths,
    manifest: dict[str, Any],
    recorded: dict[int, RecordedTrial],
    address: str | None,
    verbose: bool,
    live: bool,
) -> dict[str, Any]:
    """One run of Tune over the trials the sweep still needs (all of them in the first run)."""
    from ray import tune

    kept = [trial for trial in recorded.values() if trial.finished]
    if spec.method == "optuna":
        queued = [(trial.point, trial.config) for trial in recorded.values() if not trial.finished]
        fresh = max(0, spec.num_samples - len(kept) - len(queued))
    else:
        done = {trial.point for trial in kept}
        queued = [(point, config) for point, config in enumerate(spec.plan()) if point not in done]
        fresh = 0
    continued = {point for point, _ in queued if point in recorded}
    if spec.method != "optuna":
        # Tune keeps one trial pending for a searcher of its own kind, which could learn from each
        # result; a plan cannot, and many pending trials let a freed worker take the next at once
        # (Tune's own rule for its grid and random search).
        import ray

        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(200, int(ray.cluster_resources().get("CPU", 1) * 1.1))))
    tuner = None
    if queued or fresh:
        tuner = tune.Tuner(
            _trainable(spec, split, {point: recorded[point].checkpoint for point in continued}),
            param_space=param_space(spec) if spec.method == "optuna" else {},
            tune_config=tune.TuneConfig(
                metric=spec.metric,
                mode="max",
                scheduler=_scheduler(spec, recorded, continued),
                search_alg=_searcher(spec, queued, kept, fresh, verbose),
                num_samples=len(queued) + fresh,
                # One worker process serves trial after trial: no interpreter start and imports per trial.
                reuse_actors=True,
                trial_dirname_creator=_trial_dir_name,
            ),
            run_config=tune.RunConfig(
                name=layout.run_name(int(manifest["runs"])),
                storage_path=storage.tune_path(paths.file(layout.TUNE_DIR)),
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
                verbose=1 if verbose else 0,
                callbacks=[_progress_callback(spec, live, kept)],
            ),
        )
    return _finish(tuner, len(queued) + fresh, spec, split, paths, manifest, recorded, address)


def _trial_rows(results, spec: SweepSpec, recorded: dict[int, RecordedTrial]) -> list[dict[str, Any]]:
    """A row per trial run now; a trial continued from an earlier run starts with what that run
    recorded."""
    rows = []
    for result in results:
        last = result.metrics or {}
        point = int(result.config[POINT])
        earlier = recorded.get(point)
        history = result.metrics_dataframe
        new: list[dict[str, Any]] = []
        if history is not None and spec.metric in history and "replayed" in history:
            new = history[~history["replayed"].astype(bool)].to_dict("records")
        checkpoint = _checkpoint_uri(result.checkpoint) if result.checkpoint else (earlier.checkpoint if earlier else None)
        rows.append(
            _trial_row(
                spec,
                trial_id=last.get("trial_id") or Path(result.path).name,
                point=point,
                config=result.config,
                history=(earlier.history if earlier else []) + new,
                errored=result.error is not None,
                restored=earlier is not None or bool(last.get("restored")),
                error=None if result.error is None else (str(result.error).strip().splitlines() or [""])[-1][:500],
                checkpoint=checkpoint,
            )
        )
    return rows


def _trial_row(
    spec: SweepSpec,
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
    # Compute counts every epoch trained; the curve counts each epoch once (a trial that went on
    # from a checkpoint trains, and reports, the epochs after it again).
    curve = sorted({int(entry["epoch"]): entry for entry in history if entry.get(spec.metric) is not None}.items())
    final = curve[-1][1] if curve else {}
    best_epoch, best = max(curve, key=lambda item: item[1][spec.metric]) if curve else (None, None)
    epochs_run = curve[-1][0] if curve else 0
    state = "errored" if errored else ("stopped_early" if epochs_run < int(config.get("epochs", 0)) else "completed")
    return {
        "trial_id": trial_id,
        "point": point,
        "state": state,
        **{f"config.{name}": value for name, value in sorted(config.items()) if name != POINT},
        "epochs_run": epochs_run,
        "restored": restored,
        f"last_{spec.metric}": final.get(spec.metric),
        "last_recall_at_k": final.get("recall_at_k"),
        "last_mrr_at_k": final.get("mrr_at_k"),
        f"best_{spec.metric}": None if best is None else float(best[spec.metric]),
        "best_epoch": best_epoch,
        "train_seconds": float(sum(entry.get("epoch_train_s") or 0.0 for entry in history)),
        "eval_seconds": float(sum(entry.get("epoch_eval_s") or 0.0 for entry in history)),
        "peak_rss_mb": max((float(entry["peak_rss_mb"]) for entry in history if entry.get("peak_rss_mb") is not None), default=None),
        "curve": [float(entry[spec.metric]) for _, entry in curve],
        "error": error,
        "_checkpoint": checkpoint,
    }


def _kept_row(spec: SweepSpec, trial: RecordedTrial) -> dict[str, Any]:
    return _trial_row(
        spec, trial_id=trial.trial_id, point=trial.point, config=trial.config, history=trial.history,
        errored=False, restored=trial.restored, error=None, checkpoint=trial.checkpoint,
    )


def _checkpoint_uri(checkpoint) -> str:
    """A Tune checkpoint's folder as a storage URI (Tune names S3 objects without the scheme)."""
    return f"{storage.S3_SCHEME}{checkpoint.path}" if checkpoint.filesystem.type_name == "s3" else checkpoint.path


def checkpointed_trials(root: str, sweep_id: str) -> pd.DataFrame:
    """The trials of a sweep that has no trials table (interrupted, or still running), as their
    newest checkpoints record them. A trial with fewer epochs than its config's is 'unfinished':
    a checkpoint does not tell a trial ASHA stopped from one cut short."""
    spec, _ = load_sweep(root, sweep_id)
    rows = [_kept_row(spec, trial) for trial in recorded_trials(SweepPaths(root, sweep_id)).values()]
    for row in rows:
        if row["state"] == "stopped_early":
            row["state"] = "unfinished"
    return _trials_frame(rows)


def _trials_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
    return frame.sort_values("point") if len(frame) else frame


def _trials_table(rows: list[dict[str, Any]]) -> bytes:
    frame = _trials_frame(rows)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _best_embeddings(checkpoint: str) -> Embeddings:
    state = TrainingState.from_npz(storage.read_bytes(storage.join(checkpoint, layout.STATE_FILE)))
    return Embeddings(np.array(state.vocab, dtype=object), state.vectors)


class _Watch:
    """Stops a sweep when what it runs on stays unreachable, so that resume can continue it.

    A thread probes the storage (S3) and the Ray cluster every second. Storage unreachable
    for ``storage_patience_s``: it interrupts the driver the way Ctrl-C does, so Tune stops its
    trials (they meanwhile retry their uploads for longer, so none errors because of the
    outage). The cluster's GCS unreachable for ``cluster_patience_s`` (a few seconds for an
    embedded Ray, whose processes do not come back: a SIGTERM to the whole process group, from
    `timeout`, systemd or Slurm, ends them with the driver): the trials are gone with it and
    Ray's client would block on it for a minute, then abort the process with its own log; one
    line is printed and the driver exits at once. Either way the trials' stored checkpoints
    are what resume continues from, as after a killed driver.
    """

    PROBE_EVERY_S = 1.0
    EMBEDDED_PATIENCE_S = 3.0

    def __init__(self, paths: SweepPaths, address: str | None) -> None:
        self.paths, self.address = paths, address
        self.storage_patience_s = storage_patience()
        self.embedded = address is None
        self.cluster_patience_s = self.EMBEDDED_PATIENCE_S if self.embedded else _patience(CLUSTER_PATIENCE_VAR, CLUSTER_PATIENCE_S)
        if address in (None, "auto"):  # the Ray started here, or the one Ray found: its GCS
            import ray

            address = ray.get_runtime_context().gcs_address
        self.gcs = _gcs_endpoint(address)
        self.storage_tripped = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sessrec-watch", daemon=True)

    def __enter__(self) -> Self:
        if storage.is_s3(self.paths.root) or self.gcs:  # a local folder has no outages to ride out
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        storage_down = cluster_down = None
        while not self._done.wait(self.PROBE_EVERY_S):
            now_s = time.monotonic()
            if self.gcs and not _answers(*self.gcs):
                cluster_down = cluster_down or now_s
                if now_s - cluster_down >= self.cluster_patience_s:
                    self._cluster_lost()
            else:
                cluster_down = None
            if storage.reachable(self.paths.root):
                storage_down = None
                continue
            storage_down = storage_down or now_s
            if now_s - storage_down >= self.storage_patience_s:
                self.storage_tripped = True
                os.kill(os.getpid(), signal.SIGINT)
                return

    def _cluster_lost(self) -> None:
        sweep_id = self.paths.sweep_id
        if self.embedded:
            why = f"the embedded Ray ended (its processes were stopped or killed); continue it with: sessrec tune resume {sweep_id}"
        else:
            why = (f"lost the Ray cluster at {self.address} (unreachable for {self.cluster_patience_s:.0f} s); "
                   f"once a cluster is up, continue it with: sessrec tune resume {sweep_id} --address ADDRESS")
        sys.stdout.flush()
        sys.stderr.flush()
        # Ray's C++ threads go on logging to fds 1 and 2 until the process ends (lost objects, retries):
        # they are sent to /dev/null first, so that the error is the last line a user or a log sees.
        error_fd = os.dup(2)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        os.write(error_fd, f"\nerror: sweep {sweep_id} stopped: {why}\n".encode())
        os._exit(1)


def _gcs_endpoint(address: str | None) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT address; None for an embedded Ray, 'auto' or ray://."""
    if not address or address == "auto" or address.startswith("ray://"):
        return None
    if address.startswith(("http://", "https://")):
        raise SessrecError(
            f"{address} is the dashboard's address, for 'sessrec submit' and 'sessrec jobs': a sweep's driver joins the "
            "cluster at the head's GCS (HOST:6379), 'auto' or ray://HOST:10001; or run it on the cluster through that address: "
            "'sessrec submit tune' (a new sweep) or 'sessrec submit resume' (one cut short)"
        )
    host, _, port = address.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise SessrecError(f"not a Ray address: {address!r} (use HOST:PORT of the head's GCS, or 'auto')") from None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _storage_stop(paths: SweepPaths, reason: str) -> SessrecError:
    # The manifest cannot be updated either: it keeps its last state, which resume accepts.
    return SessrecError(f"sweep {paths.sweep_id} stopped: {reason}; once it is back, continue it with: sessrec tune resume {paths.sweep_id}")


def _finish(
    tuner,
    to_run: int,
    spec: SweepSpec,
    split: Split,
    paths: SweepPaths,
    manifest: dict[str, Any],
    recorded: dict[int, RecordedTrial],
    address: str | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    results = []
    if tuner is not None:
        with _Watch(paths, address) as watch:
            try:
                results = tuner.fit()
            except OSError as exc:  # pyarrow, reading the results back from storage gone away
                if not watch.storage_tripped:
                    raise _storage_stop(paths, f"cannot reach storage {paths.root} ({str(exc).splitlines()[0][:200]})") from None
        if watch.storage_tripped:
            raise _storage_stop(paths, f"storage {paths.root} unreachable for {watch.storage_patience_s:.0f} s")
    # A trial that ended by itself or by the scheduler is marked done; one that Tune stopped
    # on SIGINT/SIGTERM is not, and trials not yet created are missing altogether.
    unfinished = [r for r in results if r.error is None and not (r.metrics or {}).get("done")]
    if unfinished or len(results) < to_run:
        # Every trial's checkpoints are in storage: record the interruption, write no results.
        manifest.update(status="interrupted", interrupted=now())
        storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
        raise _interrupted(paths)
    ran = {int(r.config[POINT]) for r in results}
    rows = _trial_rows(results, spec, recorded) + [_kept_row(spec, t) for t in recorded.values() if t.finished and t.point not in ran]
    counts = {state: sum(1 for r in rows if r["state"] == state) for state in ("completed", "stopped_early", "errored")}
    manifest.update(trials={"total": len(rows), **counts}, finished=now(), wall_seconds=round(time.perf_counter() - started, 3))
    storage.write_bytes(paths.file(layout.TRIALS_FILE), _trials_table(rows))
    key = f"last_{spec.metric}"
    candidates = [r for r in rows if r["state"] != "errored" and r[key] is not None and r["_checkpoint"]]
    if not candidates:
        errors = sorted({r["error"] for r in rows if r["error"]})
        manifest.update(status="failed", reason="every trial errored" + (f": {errors[0]}" if errors else ""))
        storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
        raise SessrecError(f"sweep {paths.sweep_id} failed: {manifest['reason']}")
    if counts["errored"]:
        # The sweep still completes: an errored trial is a result (a config that fails), and each
        # one got a warning line with its reason when it failed.
        sys.stderr.write(f"warning: {counts['errored']} of {len(rows)} trials errored; the best is chosen from the others\n")
    best = max(candidates, key=lambda r: r[key])
    embeddings = _best_embeddings(best["_checkpoint"])
    test = evaluate(embeddings, split.test.queries, split.test.targets, spec.k)
    searched = {name.removeprefix("config."): value for name, value in best.items() if name.startswith("config.")}
    # Every word2vec setting the trial trained with, defaults included: what `train` needs to retrain it.
    config = Word2VecConfig.from_dict({**searched, "workers": spec.cpus_per_trial}).to_dict()
    best_metrics = {
        "trial_id": best["trial_id"],
        "epochs": best["epochs_run"],
        "validation": {"recall_at_k": best["last_recall_at_k"], "mrr_at_k": best["last_mrr_at_k"], "k": spec.k,
                       "pairs": len(split.validation.queries)},
        "test": test,
    }
    storage.write_bytes(paths.file(layout.BEST_DIR, layout.EMBEDDINGS_FILE), formats.embeddings_to_parquet(embeddings))
    storage.write_bytes(paths.file(layout.BEST_DIR, layout.CONFIG_FILE), formats.to_json(config))
    storage.write_bytes(paths.file(layout.BEST_DIR, layout.METRICS_FILE), formats.to_json(best_metrics))
    manifest.update(status="completed", best={"trial_id": best["trial_id"], spec.metric: best[key]})
    storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
    return manifest


# ---------------------------------------------------------------------------------------------
# Dry run


def dry_run(spec: SweepSpec, dataset: Dataset, cpus: int) -> dict[str, Any]:
    """Trial and epoch counts, and a wall-time estimate from one epoch measured on this data."""
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    sentences = split.train.to_lists()
    config = Word2VecConfig.from_dict({**_middle_config(spec), "workers": spec.cpus_per_trial})
    model = new_model(config, sentences)
    started = time.perf_counter()
    train_epoch(model, sentences, config, 0)
    evaluate(embeddings_of(model), split.validation.queries, split.validation.targets, spec.k)
    epoch_seconds = time.perf_counter() - started
    worst, expected = spec.expected_epochs()
    parallel = spec.parallel_trials(cpus)
    return {
        "trials": spec.num_trials,
        "epochs_worst_case": worst,
        "epochs_expected_with_asha": round(expected, 1),
        "measured_epoch_seconds": round(epoch_seconds, 4),
        "parallel_trials": parallel,
        "estimated_wall_seconds": round(expected * epoch_seconds / parallel, 1),
        "estimated_wall_seconds_worst_case": round(worst * epoch_seconds / parallel, 1),
        "warning": spec.order_warning(parallel),
    }


def _middle_config(spec: SweepSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"epochs": spec.max_t}
    for name, domain in spec.space.items():
        if domain.values:
            config[name] = sorted(domain.values)[len(domain.values) // 2]
        else:
            low, high = domain.bounds()
            config[name] = math.sqrt(low * high) if domain.kind == "loguniform" else (low + high) / 2
            if domain.kind == "randint":
                config[name] = int(config[name])
    return config
