"""The Ray Tune edge: a sweep over word2vec configurations with ASHA, per-epoch checkpoints,
results written into the storage layout, and resume from storage.

Nothing else in sessrec imports Ray Tune. A trial is the same ``fit`` loop as ``sessrec train``:
each epoch reports validation metrics and a small checkpoint (arrays, never pickle), so ASHA
can stop it and a lost trial restarts where it was on any node.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import platform
import random
import resource
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sessrec import __version__, formats, layout, storage
from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate
from sessrec.core.sessions import Sessions
from sessrec.core.split import Pairs, Split
from sessrec.core.word2vec import TrainingState, Word2VecConfig, embeddings_of, fit, new_model, train_epoch
from sessrec.errors import SessrecError
from sessrec.pipeline import Dataset, load_dataset, now, split_dataset
from sessrec.spec import Domain, SweepSpec, parse_spec

STATE_FILE = "state.npz"
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


def train_trial(
    config: dict[str, Any], train: Sessions, validation: Pairs, k: int, workers: int, patience_s: float
) -> None:
    """One trial: train epoch by epoch, report validation metrics and a checkpoint each epoch."""
    from ray import tune

    w2v = Word2VecConfig.from_dict({**{name: value for name, value in config.items() if name != GRID_POINT}, "workers": workers})
    start = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:

        def restore() -> TrainingState:
            with checkpoint.as_directory() as folder:
                return TrainingState.from_npz(Path(folder, STATE_FILE).read_bytes())

        start = _patiently(restore, patience_s)

    def report(epoch: int, metrics: dict[str, float], model) -> None:
        # The worker's peak memory so far (Linux reports KiB), for the trials table.
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with tempfile.TemporaryDirectory(prefix="sessrec-ckpt-") as folder:
            Path(folder, STATE_FILE).write_bytes(TrainingState.capture(model, epoch).to_npz())
            # A failed upload reported nothing (Tune only learns of a checkpoint once it is
            # stored), so the same report can be made again from the same folder.
            _patiently(
                lambda: tune.report({**metrics, "epoch": epoch, "peak_rss_mb": peak_rss_mb}, checkpoint=tune.Checkpoint.from_directory(folder)),
                patience_s,
            )

    fit(w2v, train.to_lists(), validation, k, on_epoch=report, start=start)


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


def _trainable(spec: SweepSpec, split: Split):
    from ray import tune

    trainable = tune.with_parameters(
        train_trial,
        train=split.train,
        validation=split.validation,
        k=spec.k,
        workers=spec.cpus_per_trial,
        patience_s=storage_patience() + TRIAL_EXTRA_PATIENCE_S,
    )
    return tune.with_resources(trainable, {"cpu": spec.cpus_per_trial})


# ---------------------------------------------------------------------------------------------
# Search space, search algorithm, scheduler


def _tune_domain(domain: Domain, method: str):
    from ray import tune

    if domain.kind == "fixed":
        return domain.values[0]
    if domain.kind == "grid":
        return tune.grid_search(list(domain.values)) if method == "grid" else tune.choice(list(domain.values))
    if domain.kind == "choice":
        return tune.choice(list(domain.values))
    if domain.kind == "uniform":
        return tune.uniform(domain.low, domain.high)
    if domain.kind == "loguniform":
        return tune.loguniform(domain.low, domain.high)
    return tune.randint(int(domain.low), int(domain.high))


#: The config key of a shuffled grid's point number; not a word2vec parameter.
GRID_POINT = "grid_point"


def param_space(spec: SweepSpec) -> dict[str, Any]:
    space = {name: _tune_domain(domain, spec.method) for name, domain in spec.space.items()}
    space.setdefault("epochs", spec.max_t)
    if spec.method == "grid" and spec.shuffle:
        space.update(_shuffled_grid(spec))
    return space


def _shuffled_grid(spec: SweepSpec) -> dict[str, Any]:
    """The grid's points in a seeded random order: Tune walks a grid in a fixed order (one
    parameter slowest), so an ordered grid shows ASHA's first rungs only its first corner."""
    from ray import tune

    names = [name for name, domain in spec.space.items() if domain.kind == "grid"]
    points = list(itertools.product(*(spec.space[name].values for name in names)))
    random.Random(spec.search_seed).shuffle(points)
    space: dict[str, Any] = {GRID_POINT: tune.grid_search(list(range(len(points))))}
    for column, name in enumerate(names):
        space[name] = tune.sample_from(lambda config, column=column: points[config[GRID_POINT]][column])
    return space


def _search_alg(spec: SweepSpec):
    from ray.tune.search import BasicVariantGenerator

    if spec.method == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch
            import optuna  # noqa: F401  (the extra must be installed)
        except ImportError:
            raise SessrecError("search.method optuna needs the optuna extra: pip install 'sessrec[optuna]'") from None
        return OptunaSearch(seed=spec.search_seed)
    # A search generator takes the concurrency limit itself (TuneConfig's applies to searchers).
    return BasicVariantGenerator(random_state=spec.search_seed, max_concurrent=spec.max_concurrent_trials)


def _scheduler(spec: SweepSpec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=spec.max_t,
        grace_period=spec.grace_period,
        reduction_factor=spec.reduction_factor,
    )


# ---------------------------------------------------------------------------------------------
# Progress


def _progress_callback(metric: str, total: int, live: bool):
    from ray import tune

    class SweepProgress(tune.Callback):
        """One line of progress: trials finished/running/stopped early, best metric, time.

        Counts are read from Tune's trial list on every event, so they are right after a resume
        too; Tune pickles callbacks with the experiment state, so this holds plain data only."""

        def __init__(self) -> None:
            self.started = time.time()
            self.best = -math.inf
            self.last_print = 0.0
            self.finished_before: int | None = None  # trials already done when this run began

        def setup(self, **info):
            self.started, self.last_print, self.finished_before = time.time(), 0.0, None

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.best = max(self.best, float(result.get(metric, -math.inf)))
            self._print(trials)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._print(trials, force=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._print(trials, force=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            # Tune's own traceback is shown with --verbose only: one line names the trial here.
            sys.stderr.write(("\r\033[K" if live else "") + f"warning: trial {trial.trial_id} errored: {_error_line(trial)}\n")
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
            states = [_trial_state(t.status, t.last_result or {}, t.config) for t in trials]
            finished = sum(s in ("completed", "stopped_early", "errored") for s in states)
            if self.finished_before is None:
                self.finished_before = finished
            elapsed = now_s - self.started
            done_here = finished - self.finished_before
            # Trials are created lazily under a concurrency limit: the plan gives the total.
            planned = max(total, len(trials))
            left = elapsed / done_here * (planned - finished) if done_here else math.nan
            best = f"{self.best:.4f}" if self.best > -math.inf else "-"
            line = (
                f"trials {finished}/{planned} done, {states.count('running')} running, "
                f"{states.count('stopped_early')} stopped early, {states.count('errored')} errored | "
                f"best {metric} {best} | {_clock(elapsed)} elapsed, ~{_clock(left)} left"
            )
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
    """completed | stopped_early | errored | running | pending, from Tune's trial status."""
    if status == "ERROR":
        return "errored"
    if status == "TERMINATED":
        planned = int(config.get("epochs", 0))
        return "stopped_early" if int(last.get("training_iteration", 0) or 0) < planned else "completed"
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
    """Fail in seconds, with one line, where ray.init would retry an unreachable GCS for minutes."""
    try:
        with socket.create_connection(endpoint, timeout=5):
            pass
    except OSError as exc:
        raise SessrecError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


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

    @property
    def tune(self) -> str:
        return storage.tune_path(self.file(layout.TUNE_DIR))


def _versions() -> dict[str, str]:
    import gensim
    import ray

    return {"sessrec": __version__, "ray": ray.__version__, "gensim": gensim.__version__, "python": platform.python_version()}


def _run_config(spec: SweepSpec, paths: SweepPaths, verbose: bool, live: bool):
    from ray import tune

    return tune.RunConfig(
        name=layout.TUNE_DIR,
        storage_path=storage.tune_path(paths.folder),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        verbose=1 if verbose else 0,
        callbacks=[_progress_callback(spec.metric, spec.num_trials, live)],
    )


def run_sweep(
    spec: SweepSpec,
    root: str,
    sweep_id: str | None = None,
    dataset_ref: str | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: bool = False,
    live: bool = False,
) -> dict[str, Any]:
    """Run a whole sweep and write its results; returns the sweep manifest."""
    from ray import tune

    sweep_id = layout.check_name(sweep_id or new_sweep_id(spec), "sweep id")
    dataset_ref = dataset_ref or spec.dataset
    if not dataset_ref:
        raise SessrecError("no dataset: set 'dataset' in the spec or pass --dataset")
    dataset = load_dataset(dataset_ref, root)
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    paths = SweepPaths(root, sweep_id)
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
    }
    if storage.exists(paths.file(layout.SPEC_FILE)):
        raise _sweep_exists(sweep_id, root)
    connect(address, num_cpus, verbose)  # before the claim: an unreachable cluster leaves the id free
    # The spec claims the sweep id: a second sweep with the same id is refused, never merged.
    if not storage.create_exclusive(paths.file(layout.SPEC_FILE), spec.to_yaml().encode()):
        raise _sweep_exists(sweep_id, root)
    storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
    tuner = tune.Tuner(
        _trainable(spec, split),
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode="max",
            scheduler=_scheduler(spec),
            search_alg=_search_alg(spec),
            num_samples=spec.num_samples,
            max_concurrent_trials=(spec.max_concurrent_trials or None) if spec.method == "optuna" else None,
            # One worker process serves trial after trial: no interpreter start and imports per trial.
            reuse_actors=True,
        ),
        run_config=_run_config(spec, paths, verbose, live),
    )
    return _finish(tuner, spec, split, paths, manifest, address)


def _sweep_exists(sweep_id: str, root: str) -> SessrecError:
    return SessrecError(f"sweep {sweep_id!r} already exists in {root}; choose another --sweep-id or 'tune resume' it")


def load_sweep(root: str, sweep_id: str) -> tuple[SweepSpec, dict[str, Any]]:
    paths = SweepPaths(root, sweep_id)
    if not storage.exists(paths.file(layout.SPEC_FILE)):
        raise SessrecError(f"no sweep {sweep_id!r} in {root}")
    spec = parse_spec(storage.read_text(paths.file(layout.SPEC_FILE)), paths.file(layout.SPEC_FILE))
    manifest = formats.from_json(storage.read_bytes(paths.file(layout.MANIFEST_FILE)), paths.file(layout.MANIFEST_FILE))
    return spec, manifest


def resume_sweep(
    root: str, sweep_id: str, address: str | None = None, num_cpus: int | None = None, verbose: bool = False, live: bool = False
) -> dict[str, Any]:
    """Continue an interrupted sweep from storage: unfinished and errored trials go on from their
    last checkpoints; finished trials are kept as they are."""
    from ray import tune

    spec, manifest = load_sweep(root, sweep_id)
    if manifest.get("status") == "completed":
        raise SessrecError(f"sweep {sweep_id!r} has already completed")
    dataset = load_dataset(manifest["dataset"]["uri"], root)
    if dataset.sha256 != manifest["dataset"]["sha256"]:
        raise SessrecError(f"the dataset of sweep {sweep_id!r} changed since it started (sha256 differs)")
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    paths = SweepPaths(root, sweep_id)
    connect(address, num_cpus, verbose)
    if not tune.Tuner.can_restore(paths.tune):
        raise SessrecError(f"sweep {sweep_id!r} has no Tune state to resume from (it stopped before its first trial)")
    # param_space again: a shuffled grid's sample_from functions are not in the saved state.
    tuner = tune.Tuner.restore(
        paths.tune, trainable=_trainable(spec, split), resume_unfinished=True, resume_errored=True, param_space=param_space(spec)
    )
    manifest.update(status="running", resumed=now())
    storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
    return _finish(tuner, spec, split, paths, manifest, address)


def _trial_rows(results, spec: SweepSpec) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        history = result.metrics_dataframe
        last = result.metrics or {}
        epochs_run = int(last.get("training_iteration", 0) or 0)
        state = _trial_state("ERROR" if result.error is not None else "TERMINATED", last, result.config)
        has_metric = history is not None and spec.metric in history
        # Compute counts every epoch trained; the curve counts each epoch once (a trial that went
        # on from a checkpoint trains, and reports, the epochs after it again).
        spent = history if has_metric else None
        if has_metric:
            history = history.drop_duplicates("training_iteration", keep="last").sort_values("training_iteration")
        best_row = history.loc[history[spec.metric].idxmax()] if has_metric and len(history) else None
        rows.append(
            {
                "trial_id": last.get("trial_id") or Path(result.path).name,
                "state": state,
                **{f"config.{name}": value for name, value in sorted(result.config.items()) if name != GRID_POINT},
                "epochs_run": epochs_run,
                # Fewer epochs since the last restore than in all: it went on from a checkpoint.
                "restored": int(last.get("iterations_since_restore", epochs_run) or 0) < epochs_run,
                f"last_{spec.metric}": last.get(spec.metric),
                "last_recall_at_k": last.get("recall_at_k"),
                "last_mrr_at_k": last.get("mrr_at_k"),
                f"best_{spec.metric}": None if best_row is None else float(best_row[spec.metric]),
                "best_epoch": None if best_row is None else int(best_row["training_iteration"]),
                "train_seconds": float(spent["epoch_train_s"].sum()) if has_metric else 0.0,
                "eval_seconds": float(spent["epoch_eval_s"].sum()) if has_metric else 0.0,
                "peak_rss_mb": float(history["peak_rss_mb"].max()) if has_metric else None,
                "curve": [] if not has_metric else [float(v) for v in history[spec.metric]],
                "error": None if result.error is None else (str(result.error).strip().splitlines() or [""])[-1][:500],
                "_result": result,
            }
        )
    return rows


def _trials_table(rows: list[dict[str, Any]]) -> bytes:
    frame = pd.DataFrame([{k: v for k, v in row.items() if k != "_result"} for row in rows])
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _best_embeddings(result) -> Embeddings:
    with result.checkpoint.as_directory() as folder:
        state = TrainingState.from_npz(Path(folder, STATE_FILE).read_bytes())
    return Embeddings(np.array(state.vocab, dtype=object), state.vectors)


class _Watch:
    """Stops a sweep when what it runs on stays unreachable, so that resume can continue it.

    A thread probes the storage (S3) and the Ray cluster (a HOST:PORT address) every few
    seconds. Storage unreachable for ``storage_patience_s``: it interrupts the driver the way
    Ctrl-C does, so Tune stops its trials and keeps their states (trials meanwhile retry their
    uploads for longer, so none errors because of the outage). The cluster's GCS unreachable for
    ``cluster_patience_s``: the trials are gone with it and Ray's client would block on it for a
    minute, then abort the process with its own log; one line is printed and the driver exits
    at once. Tune's last saved state (saved every few seconds, and every CHECKPOINTS_KEPT
    checkpoints of a trial) is what resume continues from, as after a killed driver.
    """

    PROBE_EVERY_S = 1.0

    def __init__(self, paths: SweepPaths, address: str | None) -> None:
        self.paths, self.address = paths, address
        self.storage_patience_s = storage_patience()
        self.cluster_patience_s = _patience(CLUSTER_PATIENCE_VAR, CLUSTER_PATIENCE_S)
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
        sys.stderr.write(
            f"\nerror: sweep {sweep_id} stopped: lost the Ray cluster at {self.address} (unreachable for "
            f"{self.cluster_patience_s:.0f} s); once a cluster is up, continue it with: sessrec tune resume {sweep_id} --address ADDRESS\n"
        )
        sys.stderr.flush()
        os._exit(1)


def _gcs_endpoint(address: str | None) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT address; None for an embedded Ray, 'auto' or ray://."""
    if not address or address == "auto" or address.startswith("ray://"):
        return None
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
    tuner, spec: SweepSpec, split: Split, paths: SweepPaths, manifest: dict[str, Any], address: str | None
) -> dict[str, Any]:
    started = time.perf_counter()
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
    if unfinished or len(results) < spec.num_trials:
        # Tune saved its state before stopping: record the interruption, write no results.
        manifest.update(status="interrupted", interrupted=now())
        storage.write_bytes(paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))
        raise SessrecError(f"sweep {paths.sweep_id} interrupted; continue it with: sessrec tune resume {paths.sweep_id}")
    rows = _trial_rows(results, spec)
    counts = {state: sum(1 for r in rows if r["state"] == state) for state in ("completed", "stopped_early", "errored")}
    manifest.update(trials={"total": len(rows), **counts}, finished=now(), wall_seconds=round(time.perf_counter() - started, 3))
    storage.write_bytes(paths.file(layout.TRIALS_FILE), _trials_table(rows))
    key = f"last_{spec.metric}"
    candidates = [r for r in rows if r["state"] != "errored" and r[key] is not None and r["_result"].checkpoint]
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
    embeddings = _best_embeddings(best["_result"])
    test = evaluate(embeddings, split.test.queries, split.test.targets, spec.k)
    config = {name.removeprefix("config."): value for name, value in best.items() if name.startswith("config.")}
    best_metrics = {
        "trial_id": best["trial_id"],
        "epochs": best["epochs_run"],
        "validation": {"recall_at_k": best["last_recall_at_k"], "mrr_at_k": best["last_mrr_at_k"], "k": spec.k},
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
    parallel = max(1, min(cpus // spec.cpus_per_trial, spec.max_concurrent_trials or cpus))
    return {
        "trials": spec.num_trials,
        "epochs_worst_case": worst,
        "epochs_expected_with_asha": round(expected, 1),
        "measured_epoch_seconds": round(epoch_seconds, 4),
        "parallel_trials": parallel,
        "estimated_wall_seconds": round(expected * epoch_seconds / parallel, 1),
        "estimated_wall_seconds_worst_case": round(worst * epoch_seconds / parallel, 1),
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
