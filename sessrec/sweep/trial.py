"""A trial: the code that runs inside Ray's worker processes, and the trainable Tune is given.

A trial is the same ``fit`` loop as ``sessrec train``: each epoch reports validation metrics and
a small checkpoint (arrays, never pickle; the format is ``checkpoints``'), so ASHA can stop it
and a lost trial restarts where it was on any node. A recommender with a word2vec part takes each
epoch's word2vec from the sweep's epoch cache where a trial with the same word2vec config trained
it (its scoring parameters change nothing trained). Ray is imported inside the functions.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from sessrec import formats, layout, memory, storage
from sessrec.core.session_metrics import SessionPairs, split_session_pairs
from sessrec.core.sessions import Sessions
from sessrec.core.split import Pairs, Split
from sessrec.core.word2vec import (
    PARAMETERS,
    TrainingState,
    Word2VecConfig,
    embeddings_of,
    fit,
    new_model,
    one_blas_thread,
    train_epoch,
)
from sessrec.errors import SessrecError
from sessrec.recommender_space import is_reference
from sessrec.spec import SweepSpec
from sessrec.sweep.checkpoints import (
    STATE_BYTES,
    STATE_SHA256,
    Word2VecCache,
    damaged_checkpoints_warning,
    state_damage,
    state_sha256,
)
from sessrec.sweep.cluster import TRIAL_EXTRA_PATIENCE_S, storage_patience
from sessrec.sweep.scoring import NoWeights, TrialScorer
from sessrec.sweep.trials import POINT

T = TypeVar("T")


def train_trial(
    config: dict[str, Any],
    train: Sessions,
    validation: Pairs,
    k: int,
    workers: int,
    patience_s: float,
    carried: dict[int, str],
    mode: str = "item",
    exclude: str = "query",
    session_validation: SessionPairs | None = None,
    word2vec_cache: str | None = None,
) -> None:
    """One trial: train epoch by epoch, report validation metrics and a checkpoint each epoch.

    It goes on from Tune's checkpoint when Tune restarts it (its node was lost), from the
    checkpoint an earlier run left (``carried``: point -> checkpoint folder) when a resume
    continues it, and starts afresh otherwise. Each checkpoint holds the weights (``state.npz``)
    and the trial's config and curve so far (``trial.json``): all a resume needs. ``word2vec_cache``:
    the sweep's word2vec epoch cache folder, for a recommender with a word2vec part (None: none)."""
    from ray import tune

    point = int(config[POINT])
    params = {name: value for name, value in config.items() if name != POINT}
    w2v = Word2VecConfig.from_dict({**{k: v for k, v in params.items() if k in PARAMETERS}, "workers": workers})
    # Any other recommender (or mode): its count parts fitted once, here; word2vec trained only for a w2v part.
    scorer = None if is_reference(params, mode, exclude) else TrialScorer.start(params, train, k, mode, exclude)
    trains_word2vec = scorer is None or scorer.has_word2vec
    trial_id = tune.get_context().get_trial_id()
    source = tune.get_checkpoint()
    from_earlier_run = source is None and point in carried
    if from_earlier_run:
        source = tune.Checkpoint(storage.tune_path(carried[point]))
        trial_id = _first_trial_id(carried[point], trial_id)
    start: TrainingState | None = None
    history: list[dict[str, Any]] = []
    if source is not None and trains_word2vec:
        start, history = _restore(source, patience_s)
        history = [entry for entry in history if entry["epoch"] <= start.epochs_done]

    def report(epoch: int, metrics: dict[str, float], state: TrainingState) -> None:
        with tempfile.TemporaryDirectory(prefix="sessrec-ckpt-") as folder:
            weights = state.to_npz()
            Path(folder, layout.STATE_FILE).write_bytes(weights)
            # Its size tells a resume whether the weights were stored whole (Tune uploads the two
            # files side by side; a process killed mid-way leaves a short file on a local disk).
            record = {
                POINT: point,
                "trial_id": trial_id,
                "config": params,
                "restored": start is not None,
                "history": history,
                STATE_BYTES: len(weights),
                STATE_SHA256: state_sha256(weights),
            }
            Path(folder, layout.TRIAL_FILE).write_bytes(formats.to_json(record))
            # A failed upload reported nothing (Tune only learns of a checkpoint once it is
            # stored), so the same report can be made again from the same folder.

            def report_once() -> None:
                try:
                    tune.report(
                        {**metrics, "epoch": epoch, POINT: point, "restored": start is not None},
                        checkpoint=tune.Checkpoint.from_directory(folder),
                    )
                except OSError:
                    _remove_failed_checkpoint()
                    raise

            _patiently(report_once, patience_s)

    if from_earlier_run and history and start is not None:
        # Continued from an earlier run: its last epoch is reported again (no training), so that
        # the scheduler decides there as it would have (the run may have stopped before it did).
        report(start.epochs_done, {**history[-1], "replayed": True}, start)

    def on_epoch(epoch: int, metrics: dict[str, float], model: Any) -> None:
        # The worker's peak memory so far, for the trials table.
        peak_rss_mb = memory.peak_rss_mb()
        history.append({**metrics, "epoch": epoch, "peak_rss_mb": peak_rss_mb})
        report(epoch, {**metrics, "peak_rss_mb": peak_rss_mb, "replayed": False}, TrainingState.capture(model, epoch))

    if scorer is None:
        fit(w2v, train.to_lists(), validation, k, on_epoch=on_epoch, start=start)
    elif trains_word2vec:
        # The blend is evaluated after every word2vec epoch (the count parts stay as fitted).
        assert session_validation is not None
        cache = None if word2vec_cache is None else Word2VecCache.of(word2vec_cache, w2v)
        _fit_blend(w2v, train.to_lists(), scorer, session_validation, cache, start, on_epoch)
    else:
        # Nothing trains epoch by epoch: one result, at the epoch budget, so that the trial is
        # finished (ASHA stops a trial at max_t without entering it in a rung, whose cutoffs stay
        # word2vec's epoch by epoch) and its row reads completed.
        assert session_validation is not None
        metrics = {**scorer.evaluate(session_validation), "epoch_train_s": scorer.fit_seconds}
        epochs = int(params.get("epochs", 1))
        peak_rss_mb = memory.peak_rss_mb()
        history.append({**metrics, "epoch": epochs, "peak_rss_mb": peak_rss_mb})
        report(
            epochs, {**metrics, "peak_rss_mb": peak_rss_mb, "replayed": False}, cast(TrainingState, NoWeights(epochs))
        )


def _fit_blend(
    config: Word2VecConfig,
    sentences: list[list[str]],
    scorer: TrialScorer,
    pairs: SessionPairs,
    cache: Word2VecCache | None,
    start: TrainingState | None,
    on_epoch: Callable[[int, dict[str, Any], Any], None],
) -> None:
    """``fit``'s epochs for a recommender with a word2vec part, the blend evaluated after each. An
    epoch the cache holds is read, not trained (``epoch_train_s``: the read; ``cached``: true);
    one it lacks is trained from the state before (the cache's, the checkpoint's or this trial's)
    and stored for the trials after. The same model either way: ``fit`` trains epoch by epoch
    from the same state, and the state holds the random generator too."""
    model = new_model(config, sentences)
    if start is not None:
        start.restore(model)
    with one_blas_thread():  # as in fit: epochs and evaluations take turns
        for epoch in range(1 if start is None else start.epochs_done + 1, config.epochs + 1):
            started = time.perf_counter()
            cached, damaged = (None, False) if cache is None else cache.read(epoch, model)
            if cached is not None:
                cached.restore(model)
            else:
                train_epoch(model, sentences, config, epoch - 1)
            seconds = time.perf_counter() - started
            if cached is None and cache is not None:
                cache.write(epoch, TrainingState.capture(model, epoch), replace=damaged)
            metrics = {"epoch_train_s": seconds, "cached": cached is not None}
            on_epoch(epoch, {**metrics, **scorer.evaluate(pairs, embeddings_of(model))}, model)


def _first_trial_id(checkpoint: str, default: str) -> str:
    """The id the trial's first run gave it, as the earlier run's record carries it: a trial keeps
    one id across resumes (the trials table's). Tune's id of this run where it cannot be read."""
    uri = storage.join(checkpoint, layout.TRIAL_FILE)
    try:
        recorded = formats.from_json(storage.read_bytes(uri), uri)
    except (SessrecError, OSError):
        return default
    return str(recorded.get("trial_id") or default) if isinstance(recorded, dict) else default


def _restore(source: Any, patience_s: float) -> tuple[TrainingState, list[dict[str, Any]]]:
    """The training state and curve a trial's checkpoint holds. One whose weights are not those its
    record was written with (short, or bytes changed: size and sha256) is passed over for the
    trial's checkpoint before it, with one warning line naming it; none whole is an error naming it."""
    damaged: list[tuple[str, str]] = []
    for checkpoint in [source, *_earlier_checkpoints(source)]:

        def read(checkpoint: Any = checkpoint) -> tuple[bytes, bytes] | None:
            with checkpoint.as_directory() as folder:
                try:
                    return Path(folder, layout.TRIAL_FILE).read_bytes(), Path(folder, layout.STATE_FILE).read_bytes()
                except FileNotFoundError:
                    return None

        files = _patiently(read, patience_s)
        if files is None:
            damaged.append((checkpoint.path, "a file of it is missing"))
            continue
        try:
            recorded = formats.from_json(files[0], f"{checkpoint.path}/{layout.TRIAL_FILE}")
            reason = state_damage(recorded, files[1])
            if reason is None:
                state = TrainingState.from_npz(files[1])
        except SessrecError as exc:
            reason = str(exc)
        if reason is None:
            if damaged:
                sys.stderr.write(damaged_checkpoints_warning(damaged, "goes on from the checkpoint before it"))
            return state, recorded["history"]
        damaged.append((checkpoint.path, reason))
    raise SessrecError(
        f"{damaged[0][0]} was not stored whole ({damaged[0][1]}) and its trial has no earlier whole "
        "checkpoint; delete its trial folder to start the trial again"
    )


def _remove_failed_checkpoint() -> None:
    """Remove what a failed checkpoint upload left in storage (a full disk: a folder of empty or
    short files). Tune numbers each report's checkpoint anew, so a retry never reuses it, and a
    resume would find every one. Best effort, through Ray Train's private session (2.60)."""
    try:
        from ray.train._internal.session import get_session

        context = get_session().storage  # type: ignore[union-attr]
        context.storage_filesystem.delete_dir(context.checkpoint_fs_path)
    except Exception:  # nothing was left, or storage refuses this too: the retry goes on
        pass


def _earlier_checkpoints(source: Any) -> list[Any]:
    """The checkpoints of the trial before ``source`` (the ones Tune kept), newest first."""
    from pyarrow import fs
    from ray import tune

    parent, _, name = str(source.path).rstrip("/").rpartition("/")
    try:
        found = source.filesystem.get_file_info(fs.FileSelector(parent))
    except OSError:
        return []
    names = sorted(
        (info.base_name for info in found if info.base_name.startswith("checkpoint_") and info.base_name < name),
        reverse=True,
    )
    return [tune.Checkpoint(f"{parent}/{earlier}", filesystem=source.filesystem) for earlier in names]


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


def trainable(spec: SweepSpec, split: Split, carried: dict[int, str], word2vec_cache: str | None = None) -> Any:
    """``train_trial`` with the sweep's data and settings bound, and its CPUs reserved.
    ``word2vec_cache``: the folder of the sweep's word2vec epoch cache (``SweepPaths.word2vec_cache``)."""
    from ray import tune

    trainable = tune.with_parameters(
        train_trial,
        train=split.train,
        validation=split.validation,
        k=spec.k,
        workers=spec.cpus_per_trial,
        patience_s=storage_patience() + TRIAL_EXTRA_PATIENCE_S,
        carried=carried,
        mode=spec.mode,
        exclude=spec.exclude,
        session_validation=split_session_pairs(split)[1] if spec.uses_recommenders else None,
        word2vec_cache=word2vec_cache,
    )
    return tune.with_resources(trainable, {"cpu": spec.cpus_per_trial})
