"""The progress line a sweep prints while Tune runs it (``SweepProgress``, a Tune callback),
and a trial's state as Tune's trial list tells it. Imports Ray Tune."""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ray import tune

from sessrec.core.metrics import metric_label
from sessrec.spec import SweepSpec
from sessrec.sweep.checkpoints import RecordedTrial
from sessrec.sweep.estimate import first_rung, time_left
from sessrec.sweep.trials import ENDED_STATES, TrialState


class SweepProgress(tune.Callback):
    """One line of progress: trials finished/running/stopped early, best metric, time.

    Counts are read from Tune's trial list on every event, plus the trials that earlier runs
    of the sweep finished (``kept``: a resume does not run them again). The best is taken
    over each trial's latest result, as the sweep picks its best trial by the final one: a
    peak that a trial's later epochs lost is not shown as the sweep's best. ``live``: the line
    is redrawn in place (a terminal), else printed every 30 s."""

    def __init__(self, spec: SweepSpec, live: bool, kept: list[RecordedTrial]) -> None:
        self.metric, self.total, self.live, self.kept = spec.metric, spec.num_trials, live, len(kept)
        self.label = metric_label(spec.metric, spec.k)
        self.epochs_expected = spec.expected_epochs()[1]
        self.first_rung = first_rung(spec)
        self.started = time.time()
        self.kept_best = max((float(t.history[-1].get(spec.metric, -math.inf)) for t in kept), default=-math.inf)
        self.latest: dict[str, float] = {}
        self.epoch_reached: dict[str, int] = {}  # a trial's epoch, counted from its first (a resume's too)
        self.trained_here = 0  # epochs trained by this run: one result each
        self.kept_epochs = sum(t.epochs for t in kept)
        self.last_print = 0.0

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.latest[trial.trial_id] = float(result.get(self.metric, -math.inf))
        self.epoch_reached[trial.trial_id] = int(result.get("epoch", 0) or 0)
        self.trained_here += 1
        self._print(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trials, force=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trials, force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune's own traceback is shown with --verbose only: one line names the trial here.
        sys.stderr.write(
            ("\r\033[K" if self.live else "") + f"warning: trial {trial.trial_id} errored: {_error_line(trial)}\n"
        )
        self.latest.pop(trial.trial_id, None)  # the sweep's best is chosen from the others
        self._print(trials, force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._print(trials, force=True)
        if self.live:
            sys.stderr.write("\n")

    def _print(self, trials: list, force: bool = False) -> None:
        live = self.live
        now_s = time.time()
        if not force and now_s - self.last_print < (0.5 if live else 30):
            return
        self.last_print = now_s
        states = [tune_state(t.status, t.last_result or {}, t.config) for t in trials] + [
            TrialState.COMPLETED
        ] * self.kept
        finished = sum(s in ENDED_STATES for s in states)
        running = states.count(TrialState.RUNNING)
        elapsed = now_s - self.started
        # Trials are created lazily under a concurrency limit: the plan gives the total.
        planned = max(self.total, len(trials))
        epochs_done = self.kept_epochs + sum(self.epoch_reached.values())
        unstarted = planned - finished - running
        left = time_left(elapsed, self.trained_here, epochs_done, self.epochs_expected, unstarted, self.first_rung)
        best_value = max([self.kept_best, *self.latest.values()])
        best = f"{best_value:.4f}" if best_value > -math.inf else "-"
        line = (
            f"trials {finished}/{planned} done, {running} running, "
            f"{states.count(TrialState.STOPPED_EARLY)} stopped early, {states.count(TrialState.ERRORED)} errored | "
            f"best {self.label} {best} | {_clock(elapsed)} elapsed, ~{_clock(left)} left"
        )
        if live:
            # A line that wraps is not redrawn in place: each update would leave a row behind.
            width = shutil.get_terminal_size().columns - 1
            if len(line) > width:
                line = f"{finished}/{planned} done, {running} running | best {best} | ~{_clock(left)} left"[:width]
        sys.stderr.write(("\r\033[K" + line) if live else line + "\n")
        sys.stderr.flush()


def _error_line(trial: Any) -> str:
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


def tune_state(status: str, last: dict[str, Any], config: dict[str, Any]) -> TrialState:
    """A trial's state from Tune's trial status; Tune marks the last result of a trial that
    ended by itself or by the scheduler done, not that of one it stopped on Ctrl-C or SIGTERM
    (a resume goes on with it)."""
    if status == "ERROR":
        return TrialState.ERRORED
    if status == "TERMINATED" and not last.get("done"):
        return TrialState.INTERRUPTED
    if status == "TERMINATED":
        planned = int(config.get("epochs", 0))
        return TrialState.STOPPED_EARLY if int(last.get("epoch", 0) or 0) < planned else TrialState.COMPLETED
    return TrialState.RUNNING if status == "RUNNING" else TrialState.PENDING


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
