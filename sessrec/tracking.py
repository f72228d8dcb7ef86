"""MLflow tracking of a sweep (``tune run --mlflow URI``): the one module that talks to MLflow.

Each trial is an MLflow run in the experiment named after the spec: its word2vec parameters,
its validation metrics after every epoch (``val_recall_at_k``, ``val_mrr_at_k``, step = the
epoch) and tags naming the sweep, the trial and its point in the plan. After the sweep, the
best trial's run gets its test metrics, the tag ``sessrec.best`` and the files of the sweep's
``best/`` folder as artifacts.

Tracking never stops a sweep: a tracker that cannot be reached, or fails later, gets one
warning line and the sweep goes on untracked. ``mlflow`` is an optional extra, imported only
here, on first use. Ray's own ``MLflowLoggerCallback`` is not used: it steps metrics by Tune's
iteration (a resumed trial would restart at 1), logs every field of Tune's results, and lets a
tracker's error end the sweep. Imports Ray Tune.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ray import tune

from sessrec import formats, layout, storage
from sessrec.errors import SessrecError
from sessrec.sweep.records import SweepPaths, load_sweep
from sessrec.sweep.trials import POINT, TrialState

INSTALL_HINT = (
    "MLflow tracking (--mlflow) needs the mlflow package: pip install 'sessrec[mlflow]' (or pip install mlflow)"
)
#: Tags on every run (MLflow tag keys); search a sweep's runs with tags.`sessrec.sweep_id` = 'ID'.
TAG_SWEEP, TAG_TRIAL, TAG_POINT, TAG_STATE, TAG_BEST = (
    "sessrec.sweep_id",
    "sessrec.trial_id",
    "sessrec.point",
    "sessrec.state",
    "sessrec.best",
)
#: A trial's result key -> its MLflow metric (validation, stepped by epoch).
EPOCH_METRICS = {"recall_at_k": "val_recall_at_k", "mrr_at_k": "val_mrr_at_k"}
PROBE_TIMEOUT_S = 5.0
# MLflow's HTTP client retries a refused request for minutes by default; a tracker is not worth
# holding a sweep's driver for that long (set only where the user has not).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def check_available() -> None:
    """Refuse ``--mlflow`` at once, with how to install it, where mlflow is not installed."""
    try:
        found = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise SessrecError(INSTALL_HINT)


class Tracker:
    """One sweep's MLflow runs. Every call to MLflow goes through ``_call``: the first failure
    prints one warning line and turns tracking off for the rest of the sweep.

    ``experiment``: the spec's name; None reads it from the stored sweep (a resume). Picklable
    (Tune saves its callbacks): the MLflow client is made again where needed."""

    def __init__(self, uri: str, root: str, sweep_id: str, experiment: str | None = None) -> None:
        self.uri, self.root, self.sweep_id, self.experiment = uri, root, sweep_id, experiment
        self.disabled = False
        self.experiment_id: str | None = None
        self.runs: dict[int, str] = {}  # point -> run id
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    # -- plumbing -------------------------------------------------------------------------------

    def _warn(self, what: str, exc: BaseException | str) -> None:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(
            f"warning: MLflow tracking at {self.uri} is off for this sweep ({what}: {reason}); the sweep goes on\n"
        )
        sys.stderr.flush()
        self.disabled = True

    def _call(self, what: str, fn: Any) -> Any:
        """``fn()``, or None once tracking is off or when it fails (then tracking goes off)."""
        if self.disabled or not self._connect():
            return None
        try:
            return fn()
        except Exception as exc:  # any failure of the tracker must not stop the sweep
            self._warn(what, exc)
            return None

    def _connect(self) -> bool:
        """Reach the tracker once: probe it, find or make the experiment, find the sweep's runs."""
        if self.experiment_id is not None and self._client is not None:
            return True
        if self.disabled:
            return False
        try:
            if self.uri.startswith(("http://", "https://")):
                probe = f"{self.uri.rstrip('/')}/health"
                with urllib.request.urlopen(probe, timeout=PROBE_TIMEOUT_S) as response:
                    response.read(64)
            for name, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            if self.experiment is None:
                self.experiment = load_sweep(self.root, self.sweep_id)[0].name
            if self.experiment_id is None:
                self.experiment_id = _experiment_id(client, self.experiment)
                runs = client.search_runs(
                    [self.experiment_id], f"tags.`{TAG_SWEEP}` = '{self.sweep_id}'", max_results=5000
                )
                self.runs = {
                    int(run.data.tags[TAG_POINT]): run.info.run_id for run in runs if TAG_POINT in run.data.tags
                }
            self._client = client
            return True
        except ImportError:
            self._warn("mlflow not installed", INSTALL_HINT)
        except (urllib.error.URLError, OSError) as exc:
            self._warn("unreachable", getattr(exc, "reason", exc))
        except Exception as exc:  # a refusal by the server, a bad URI...
            self._warn("cannot use it", exc)
        return False

    # -- trials -----------------------------------------------------------------------------------

    def start_trial(self, point: int, trial_id: str, params: dict[str, Any]) -> None:
        """The trial's run, made or (a trial continued by a resume) found again; its parameters."""

        def start() -> None:
            from mlflow.entities import Param

            tags = {
                TAG_SWEEP: self.sweep_id,
                TAG_TRIAL: trial_id,
                TAG_POINT: str(point),
                TAG_STATE: TrialState.RUNNING.value,
            }
            run_id = self.runs.get(point)
            if run_id is None:
                run_id = self._client.create_run(
                    self.experiment_id, run_name=f"{self.sweep_id}-{point}", tags=tags
                ).info.run_id
                self.runs[point] = run_id
            else:
                self._client.update_run(run_id, status="RUNNING")
                for key, value in tags.items():
                    self._client.set_tag(run_id, key, value)
            self._client.log_batch(run_id, params=[Param(name, str(value)) for name, value in sorted(params.items())])

        self._call(f"starting trial {trial_id}", start)

    def log_epoch(self, point: int, epoch: int, result: dict[str, Any]) -> None:
        run_id = self.runs.get(point)
        if run_id is None:
            return

        def log() -> None:
            from mlflow.entities import Metric

            stamp = int(time.time() * 1000)
            metrics = [
                Metric(name, float(result[key]), stamp, epoch) for key, name in EPOCH_METRICS.items() if key in result
            ]
            self._client.log_batch(run_id, metrics=metrics)

        self._call(f"logging epoch {epoch} of point {point}", log)

    def end_trial(self, point: int, state: TrialState, status: str) -> None:
        run_id = self.runs.get(point)
        if run_id is None:
            return

        def end() -> None:
            self._client.set_tag(run_id, TAG_STATE, state.value)
            self._client.set_terminated(run_id, status=status)

        self._call(f"ending point {point}", end)

    # -- the best ---------------------------------------------------------------------------------

    def log_best(self, manifest: dict[str, Any]) -> None:
        """The best trial's run gets its test metrics, a tag and the files of ``best/`` as
        artifacts; a best trial with no run here (tracked by no run of this sweep) gets one."""
        best = (manifest.get("best") or {}).get("trial_id")
        if not best or manifest.get("status") != "completed":
            return
        self._call("logging the best trial", lambda: self._log_best(str(best)))

    def _log_best(self, trial_id: str) -> None:
        from mlflow.entities import Metric

        paths = SweepPaths(self.root, self.sweep_id)
        found = self._client.search_runs(
            [self.experiment_id],
            f"tags.`{TAG_SWEEP}` = '{self.sweep_id}' and tags.`{TAG_TRIAL}` = '{trial_id}'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {TAG_SWEEP: self.sweep_id, TAG_TRIAL: trial_id}
            run_id = self._client.create_run(
                self.experiment_id, run_name=f"{self.sweep_id}-best", tags=tags
            ).info.run_id
        best_dir = paths.file(layout.BEST_DIR)
        metrics_uri = storage.join(best_dir, layout.METRICS_FILE)
        metrics = formats.from_json(storage.read_bytes(metrics_uri), metrics_uri)
        stamp = int(time.time() * 1000)
        test = metrics.get("test") or {}
        self._client.log_batch(
            run_id,
            metrics=[
                Metric(f"test_{name}", float(test[name]), stamp, int(metrics.get("epochs") or 0))
                for name in EPOCH_METRICS
                if test.get(name) is not None
            ],
        )
        self._client.set_tag(run_id, TAG_BEST, "true")
        with tempfile.TemporaryDirectory(prefix="sessrec-mlflow-") as folder:
            for name in storage.walk_files(best_dir):
                target = Path(folder, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(storage.read_bytes(storage.join(best_dir, name)))
            self._client.log_artifacts(run_id, folder, artifact_path=layout.BEST_DIR)

    def callback(self) -> TrackingCallback:
        return TrackingCallback(self)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:
        experiment = client.get_experiment_by_name(name)  # made meanwhile by another sweep
        if experiment is None:
            raise
        return str(experiment.experiment_id)


class TrackingCallback(tune.Callback):
    """Tune's events on the driver -> the tracker's runs. A replayed epoch (a resume reporting
    a checkpoint's last epoch again, untrained) is not logged again."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        config = dict(trial.config)
        point = int(config.pop(POINT))
        self.tracker.start_trial(point, str(trial.trial_id), config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if not result.get("replayed"):
            self.tracker.log_epoch(int(trial.config[POINT]), int(result.get("epoch", 0) or 0), result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        done = int(last.get("epoch", 0) or 0) >= int(trial.config.get("epochs", 0))
        state = TrialState.COMPLETED if done else TrialState.STOPPED_EARLY
        self.tracker.end_trial(int(trial.config[POINT]), state, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.tracker.end_trial(int(trial.config[POINT]), TrialState.ERRORED, "FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Trials Tune stopped on Ctrl-C or SIGTERM: a resume continues their runs.
        for trial in trials:
            if trial.status not in ("TERMINATED", "ERROR") and int(trial.config[POINT]) in self.tracker.runs:
                self.tracker.end_trial(int(trial.config[POINT]), TrialState.INTERRUPTED, "KILLED")
