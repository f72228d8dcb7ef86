"""A sweep's driver: one run of Ray Tune over the trials a sweep still needs, and its results
written into the storage layout. Imports Ray Tune.

One path: ``start`` (``tune run``: a new sweep claims its id) and ``resume`` (``tune resume``:
a sweep cut short goes on from its checkpoints) each prepare a run, then ``execute`` it: Tune
runs the trials, ``finish`` writes the trials table, the best trial's config, metrics and
embeddings, and the manifest's end. The manifest is changed through ``records.SweepRecord``
only.

Just over 400 lines: ``finish`` reads every way a run can end (completed, budget or goal reached,
interrupted, out of memory, lost lease) and each needs the run's state at hand.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sessrec import __version__, formats, layout, storage
from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate
from sessrec.core.split import Split
from sessrec.core.word2vec import TrainingState, Word2VecConfig
from sessrec.errors import SessrecError
from sessrec.pipeline import load_dataset, split_dataset
from sessrec.settings import check_patience
from sessrec.spec import SweepSpec
from sessrec.sweep import best_scoring, budget, search
from sessrec.sweep.checkpoints import CHECKPOINTS_KEPT, RecordedTrial, kept_row, recorded_trials
from sessrec.sweep.cluster import Watch, connect, out_of_memory_reason
from sessrec.sweep.progress import SweepProgress
from sessrec.sweep.records import Lease, Status, SweepPaths, SweepRecord, load_sweep, new_sweep_id, sweep_exists
from sessrec.sweep.request import SweepRequest, check_recorded_configs, check_trials_fit, preflight
from sessrec.sweep.trial import trainable
from sessrec.sweep.trials import (
    CHECKPOINT,
    CONFIG_PREFIX,
    ENDED_STATES,
    EPOCHS_RUN,
    ERROR,
    LAST_MRR,
    LAST_RECALL,
    POINT,
    STATE,
    TRIAL_ID,
    TrialsTable,
    TrialState,
    last_column,
    trial_row,
)


def start(spec: SweepSpec, request: SweepRequest) -> dict[str, Any]:
    """Run a new sweep and write its results; returns the sweep manifest. With
    ``request.resume_existing``, a sweep id already in storage with the same spec and dataset
    is continued (or, completed, returned as it is) instead of refused."""
    sweep_id = new_sweep_id(spec) if request.sweep_id is None else request.sweep_id
    request = replace(request, sweep_id=sweep_id)
    dataset_ref = preflight(spec, request)
    paths = SweepPaths(request.root, sweep_id)
    if request.resume_existing and storage.exists(paths.file(layout.SPEC_FILE)):
        # Before this run loads the dataset: the resume loads the sweep's own.
        return _existing(spec, request, dataset_ref)
    dataset = load_dataset(dataset_ref, request.root)
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    manifest = {
        "sweep_id": sweep_id,
        "name": spec.name,
        "status": Status.RUNNING.value,
        "dataset": {"ref": dataset_ref, "uri": dataset.uri, "sha256": dataset.sha256},
        "split": {"seed": spec.split_seed, "n": spec.split_n},
        "k": spec.k,
        "metric": spec.metric,
        "mode": spec.mode,  # every metric of the sweep names how it was scored
        "exclude": spec.exclude,
        "planned_trials": spec.num_trials,
        "versions": _versions(),
        "started": formats.now(),
        "runs": 1,
    }
    _join(spec, request)  # before the claim: an unreachable cluster leaves the id free
    import ray

    warning = spec.order_warning(spec.parallel_trials(int(ray.cluster_resources().get("CPU", 1))))
    if warning:
        sys.stderr.write(f"warning: {warning}\n")
    lease = Lease.acquire(paths, "tune run", wait=request.resume_existing)  # one driver per sweep
    try:
        record = SweepRecord.claim(paths, spec, manifest, lease)
        if record is None:  # claimed since the preflight: by a retry of this very command, maybe
            if request.resume_existing:
                return _existing(spec, request, dataset_ref, lease)
            raise sweep_exists(sweep_id, request.root)
        return execute(spec, split, record, {}, request)
    finally:
        lease.release()


def resume(request: SweepRequest, lease: Lease | None = None) -> dict[str, Any]:
    """Continue an interrupted sweep (``request.sweep_id``) from storage, in a new run of Tune:
    finished trials are kept as their checkpoints record them; unfinished and errored ones go on
    from their last checkpoints; trials never started start. Only the checkpoints' JSON and
    arrays are read. Refused, before Ray starts, while another driver holds the sweep's lease."""
    if lease is not None:
        return _resume(request, lease)
    check_patience()  # before the resume records a new run
    spec, record = load_sweep(request.root, str(request.sweep_id))
    if record.status == Status.COMPLETED:
        raise SessrecError(f"sweep {request.sweep_id!r} has already completed")
    # Damaged or foreign checkpoint records are refused before the lease is taken: a refused
    # resume leaves every stored byte as it was. Read again under the lease below.
    check_recorded_configs(spec, recorded_trials(record.paths, warn=False))
    Lease.check_free(record.paths)  # refused before Ray starts
    # Ray starts before the lease is taken: a start that Ray itself ends (sessrec.sweep.ray_start)
    # leaves no lease for the command's next run to wait out.
    _join(spec, request)
    lease = Lease.acquire(record.paths, "tune resume")
    try:
        return _resume(request, lease)
    finally:
        lease.release()


def _resume(request: SweepRequest, lease: Lease) -> dict[str, Any]:
    """The resume, under the sweep's lease: what it reads, it reads now."""
    root, sweep_id = request.root, str(request.sweep_id)
    spec, record = load_sweep(root, sweep_id)
    record.lease = lease
    if record.status == Status.COMPLETED:
        raise SessrecError(f"sweep {sweep_id!r} has already completed")
    dataset = load_dataset(record.manifest["dataset"]["uri"], root)
    if dataset.sha256 != record.manifest["dataset"]["sha256"]:
        raise SessrecError(f"the dataset of sweep {sweep_id!r} changed since it started (sha256 differs)")
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    recorded = recorded_trials(record.paths)  # before Ray starts: a damaged record is refused at once
    check_recorded_configs(spec, recorded)
    _join(spec, request)
    record.update(Status.RUNNING, resumed=formats.now(), runs=int(record.manifest.get("runs", 1)) + 1)
    return execute(spec, split, record, recorded, request)


def _existing(spec: SweepSpec, request: SweepRequest, dataset_ref: str, lease: Lease | None = None) -> dict[str, Any]:
    """A new sweep's id is taken, with ``resume_existing``: the same sweep (spec and dataset)
    goes on; any other is refused. A live driver of it is waited for (its lease released or expired)."""
    if lease is None:
        lease = Lease.acquire(SweepPaths(request.root, str(request.sweep_id)), "tune run --resume-existing", wait=True)
        try:
            return _existing(spec, request, dataset_ref, lease)
        finally:
            lease.release()
    sweep_id = str(request.sweep_id)
    stored, record = load_sweep(request.root, sweep_id)
    if stored.to_yaml() != spec.to_yaml() or record.manifest.get("dataset", {}).get("ref") != dataset_ref:
        raise SessrecError(
            f"sweep {sweep_id!r} already exists in {request.root} with another spec or dataset; "
            "--resume-existing continues only the same sweep: choose another --sweep-id"
        )
    if record.status == Status.COMPLETED:
        sys.stderr.write(f"sweep {sweep_id} has already completed: nothing to run\n")
        return record.manifest
    sys.stderr.write(f"sweep {sweep_id} exists (status {record.manifest.get('status')}): continuing it\n")
    return resume(request, lease)


def _join(spec: SweepSpec, request: SweepRequest) -> None:
    """Join the cluster, or start the embedded Ray; there, check that a trial fits."""
    connect(request.address, request.num_cpus, request.verbose)
    if request.address is None:
        import ray

        check_trials_fit(spec, int(ray.cluster_resources().get("CPU", 0)))


def execute(
    spec: SweepSpec, split: Split, record: SweepRecord, recorded: dict[int, RecordedTrial], request: SweepRequest
) -> dict[str, Any]:
    """One run of Tune over the trials the sweep still needs (all of them in the first run)."""
    from ray import tune

    with _end_recorded(record):
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

            os.environ.setdefault(
                "TUNE_MAX_PENDING_TRIALS_PG", str(max(200, int(ray.cluster_resources().get("CPU", 1) * 1.1)))
            )
        tuner = None
        if queued or fresh:
            tuner = tune.Tuner(
                trainable(
                    spec,
                    split,
                    {point: recorded[point].checkpoint for point in continued},
                    record.paths.word2vec_cache,
                ),
                param_space=search.param_space(spec) if spec.method == "optuna" else {},
                tune_config=tune.TuneConfig(
                    metric=spec.metric,
                    mode="max",
                    scheduler=search.scheduler(spec, recorded, continued),
                    search_alg=search.searcher(spec, queued, kept, fresh, request.verbose),
                    num_samples=len(queued) + fresh,
                    time_budget_s=request.time_budget_s,  # --time-budget: the run ends, completed (sweep.budget)
                    # One worker process serves trial after trial: no interpreter start and imports per trial.
                    reuse_actors=True,
                    trial_dirname_creator=_trial_dir_name,
                ),
                run_config=tune.RunConfig(
                    name=layout.run_name(int(record.manifest["runs"])),
                    storage_path=storage.tune_path(record.paths.file(layout.TUNE_DIR)),
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
                    verbose=1 if request.verbose else 0,
                    callbacks=[SweepProgress(spec, request.live, kept), *request.callbacks],
                    stop=None if request.stop_at is None else budget.GoalStopper(spec.metric, request.stop_at),
                ),
            )
        return finish(tuner, len(queued) + fresh, spec, split, record, recorded, request.address, request)


@contextmanager
def _end_recorded(record: SweepRecord) -> Iterator[None]:
    """What ends a run unforeseen (a bug, something Ray or Tune refuses) is written to the
    manifest as well: a sweep that claimed its id is never left 'running' by its driver."""
    try:
        yield
    except SessrecError:
        raise  # recorded where it was raised (interrupted, failed), or storage is what failed
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        try:
            if interrupted:
                record.update(Status.INTERRUPTED, interrupted=formats.now())
            else:
                record.update(Status.FAILED, reason=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")
        except SessrecError:
            pass  # the original error says more
        if interrupted:
            raise (record.lost() or _interrupted(record.paths)) from None
        raise


def finish(
    tuner: Any,
    to_run: int,
    spec: SweepSpec,
    split: Split,
    record: SweepRecord,
    recorded: dict[int, RecordedTrial],
    address: str | None,
    request: SweepRequest | None = None,
) -> dict[str, Any]:
    """Run the tuner (None: nothing left to run), then record the run's end: interrupted, or
    the trials table, the best trial's files and the manifest's result."""
    paths = record.paths
    started = time.perf_counter()
    results: Any = []
    if tuner is not None:
        with Watch(paths, address, record) as watch:
            try:
                results = tuner.fit()
            except OSError as exc:  # pyarrow, reading the results back from storage gone away
                if not watch.storage_tripped:
                    raise _storage_stop(
                        paths, f"cannot reach storage {paths.root} ({str(exc).splitlines()[0][:200]})"
                    ) from None
        if watch.storage_tripped:
            raise _storage_stop(
                paths, watch.storage_trouble or f"storage {paths.root} unreachable for {watch.storage_patience_s:.0f} s"
            )
    out_of_memory = out_of_memory_reason(results)
    if out_of_memory is not None:  # the machine failed the trial, not its config: no results, resumable
        record.update(Status.FAILED, reason=out_of_memory)
        raise SessrecError(
            f"sweep {paths.sweep_id} failed: {out_of_memory}; "
            f"then continue it with: sessrec tune resume {paths.sweep_id}"
        )
    # A trial that ended by itself or by the scheduler is marked done; one that Tune stopped
    # on SIGINT/SIGTERM is not, and trials not yet created are missing altogether.
    unfinished = [r for r in results if r.error is None and not (r.metrics or {}).get("done")]
    ended = None
    if (unfinished or len(results) < to_run) and request is not None:
        # --time-budget or --stop-at ended it: the unfinished trials count as stopped early.
        ended = budget.ended_by(
            results, spec.metric, request.stop_at, request.time_budget_s, time.perf_counter() - started
        )
        if ended is not None:
            record.note(ended=ended, budget={"time_budget_s": request.time_budget_s, "stop_at": request.stop_at})
    if (unfinished or len(results) < to_run) and ended is None:
        # Every trial's checkpoints are in storage: record the interruption, write no results.
        record.update(Status.INTERRUPTED, interrupted=formats.now())
        raise _interrupted(paths)
    ran = {int(r.config[POINT]) for r in results}
    rows = _trial_rows(results, spec, recorded) + [
        kept_row(spec.metric, t) for t in recorded.values() if t.finished and t.point not in ran
    ]
    for row in rows:
        row.update(mode=spec.mode, exclude=spec.exclude)
    counts = {state.value: sum(1 for r in rows if r[STATE] == state) for state in ENDED_STATES}
    record.note(
        trials={"total": len(rows), **counts},
        finished=formats.now(),
        wall_seconds=round(time.perf_counter() - started, 3),
    )
    record.write_result(paths.file(layout.TRIALS_FILE), TrialsTable.from_rows(rows).to_parquet())
    key = last_column(spec.metric)
    candidates = [r for r in rows if r[STATE] != TrialState.ERRORED and r[key] is not None and r[CHECKPOINT]]
    if not candidates:
        errors = sorted({r[ERROR] for r in rows if r[ERROR]})
        reason = "every trial errored" + (f": {errors[0]}" if errors else "")
        record.update(Status.FAILED, reason=reason)
        raise SessrecError(f"sweep {paths.sweep_id} failed: {reason}")
    if counts[TrialState.ERRORED]:
        # The sweep still completes: an errored trial is a result (a config that fails), and each
        # one got a warning line with its reason when it failed.
        sys.stderr.write(
            f"warning: {counts[TrialState.ERRORED]} of {len(rows)} trials errored; the best is chosen from the others\n"
        )
    best = max(candidates, key=lambda r: r[key])
    if spec.uses_recommenders:
        best_scoring.write_best(paths, spec, split, best)
        record.update(Status.COMPLETED, best={"trial_id": best[TRIAL_ID], spec.metric: best[key]})
        return record.manifest
    embeddings = _best_embeddings(best[CHECKPOINT])
    test = evaluate(embeddings, split.test.queries, split.test.targets, spec.k)
    searched = {
        name.removeprefix(CONFIG_PREFIX): value for name, value in best.items() if name.startswith(CONFIG_PREFIX)
    }
    # Every word2vec setting the trial trained with, defaults included: what `train` needs to retrain it.
    config = Word2VecConfig.from_dict({**searched, "workers": spec.cpus_per_trial}).to_dict()
    best_metrics = {
        "trial_id": best[TRIAL_ID],
        "epochs": best[EPOCHS_RUN],
        "validation": {
            "recall_at_k": best[LAST_RECALL],
            "mrr_at_k": best[LAST_MRR],
            "k": spec.k,
            "pairs": len(split.validation.queries),
        },
        "test": test,
    }
    record.write_result(paths.file(layout.BEST_DIR, layout.EMBEDDINGS_FILE), formats.embeddings_to_parquet(embeddings))
    record.write_result(paths.file(layout.BEST_DIR, layout.CONFIG_FILE), formats.to_json(config))
    record.write_result(paths.file(layout.BEST_DIR, layout.METRICS_FILE), formats.to_json(best_metrics))
    record.update(Status.COMPLETED, best={"trial_id": best[TRIAL_ID], spec.metric: best[key]})
    return record.manifest


def _trial_rows(results: Any, spec: SweepSpec, recorded: dict[int, RecordedTrial]) -> list[dict[str, Any]]:
    """A row per trial run now (Tune's results); a trial continued from an earlier run starts
    with what that run recorded."""
    rows = []
    for result in results:
        last = result.metrics or {}
        point = int(result.config[POINT])
        earlier = recorded.get(point)
        history = result.metrics_dataframe
        new: list[dict[str, Any]] = []
        if history is not None and spec.metric in history and "replayed" in history:
            new = history[~history["replayed"].astype(bool)].to_dict("records")
        checkpoint = (
            _checkpoint_uri(result.checkpoint) if result.checkpoint else (earlier.checkpoint if earlier else None)
        )
        rows.append(
            trial_row(
                spec.metric,
                # One id per trial across resumes: the one its first run gave it (its records carry it).
                trial_id=earlier.trial_id if earlier else (last.get("trial_id") or Path(result.path).name),
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


def _checkpoint_uri(checkpoint: Any) -> str:
    """A Tune checkpoint's folder as a storage URI (Tune names S3 objects without the scheme)."""
    return f"{storage.S3_SCHEME}{checkpoint.path}" if checkpoint.filesystem.type_name == "s3" else checkpoint.path


def _best_embeddings(checkpoint: str) -> Embeddings:
    state = TrainingState.from_npz(storage.read_bytes(storage.join(checkpoint, layout.STATE_FILE)))
    return Embeddings(np.array(state.vocab, dtype=object), state.vectors)


def _versions() -> dict[str, str]:
    import gensim
    import ray

    return {
        "sessrec": __version__,
        "ray": ray.__version__,
        "gensim": gensim.__version__,
        "python": platform.python_version(),
    }


def _trial_dir_name(trial: Any) -> str:
    return layout.trial_dir_name(int(trial.config[POINT]), trial.trial_id)


def _interrupted(paths: SweepPaths) -> SessrecError:
    return SessrecError(f"sweep {paths.sweep_id} interrupted; continue it with: sessrec tune resume {paths.sweep_id}")


def _storage_stop(paths: SweepPaths, reason: str) -> SessrecError:
    # The manifest cannot be updated either: it keeps its last state, which resume accepts.
    return SessrecError(
        f"sweep {paths.sweep_id} stopped: {reason}; "
        f"once it is back, continue it with: sessrec tune resume {paths.sweep_id}"
    )
