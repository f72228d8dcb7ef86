"""Parameters that only change scoring do not retrain word2vec (issue 20): a sweep's trials with the
same word2vec config share one word2vec, trained once, epoch by epoch, in the sweep's word2vec
cache; an entry that is not whole, or not the epoch it is named for, is retrained, never trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from sessrec import layout
from sessrec.core.session_metrics import split_session_pairs
from sessrec.core.split import next_item_split
from sessrec.core.synth import synth_sessions
from sessrec.core.word2vec import PARAMETERS, TrainingState, Word2VecConfig, embeddings_of, fit, new_model
from sessrec.pipeline import load_dataset, split_dataset
from sessrec.sweep.checkpoints import Word2VecCache, recorded_trials, word2vec_key
from sessrec.sweep.records import SweepPaths
from sessrec.sweep.scoring import TrialScorer
from sessrec.sweep.trial import _fit_blend
from tests.helpers import local_sweep_env, run_cli, synth_dataset

EPOCHS = 3
WEIGHTS = [0.2, 0.5, 1.0]
#: A hybrid with a word2vec part; its trials differ only in the word2vec part's blend weight.
SPEC: dict[str, Any] = {
    "name": "c",
    "dataset": "demo",
    "mode": "session",
    "split": {"seed": 0, "n": 150},
    "search": {"method": "grid"},
    "space": {
        "model": "sr+w2v_session",
        "last_n": 3,
        "decay": 0.3,
        "w2v_weight": WEIGHTS,
        "vector_size": 16,
        "alpha": 0.05,
        "epochs": EPOCHS,
    },
    "scheduler": {"type": "fifo", "max_t": EPOCHS},
    # One trial at a time: the first trains every epoch, the others read them all.
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 1, "max_failures": 0},
}
W2V = Word2VecConfig.from_dict({"vector_size": 16, "alpha": 0.05, "epochs": EPOCHS, "workers": 1})


def _fresh_fit_metrics(root: str, config: dict[str, Any]) -> list[dict[str, float]]:
    """The blend's validation metrics after each epoch of a word2vec trained here with ``fit``, no cache."""
    split = split_dataset(load_dataset("demo", root), SPEC["split"]["seed"], SPEC["split"]["n"])
    pairs = split_session_pairs(split)[1]
    scorer = TrialScorer.start(config, split.train, 10, "session", "query")
    w2v = Word2VecConfig.from_dict({**{k: v for k, v in config.items() if k in PARAMETERS}, "workers": 1})
    found: list[dict[str, float]] = []
    fit(
        w2v,
        split.train.to_lists(),
        on_epoch=lambda epoch, _, model: found.append(scorer.evaluate(pairs, embeddings_of(model))),
    )
    return found


@pytest.fixture(scope="module")
def cached_sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("w2v-cache")
    env = local_sweep_env(folder)
    synth_dataset(folder, env, sessions=3000, items=300, clusters=10)  # an epoch: tens of ms
    root = env["SESSREC_STORAGE"]
    cache = Path(SweepPaths(root, "c1").word2vec_cache, word2vec_key(W2V))
    # Left there before the sweep: epoch 2 not a zip at all, epoch 3 a whole state of another epoch.
    cache.mkdir(parents=True)
    (cache / layout.word2vec_epoch_file(2)).write_bytes(b"not an npz")
    split = split_dataset(load_dataset("demo", root), SPEC["split"]["seed"], SPEC["split"]["n"])
    model = new_model(W2V, split.train.to_lists())
    (cache / layout.word2vec_epoch_file(3)).write_bytes(TrainingState.capture(model, 0).to_npz())
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    result = run_cli("tune", "run", str(spec), "--sweep-id", "c1", "--num-cpus", "1", "--json", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = Path(root, "sweeps", "c1")
    trials = pd.read_parquet(sweep / "trials.parquet").set_index("point")
    recorded = recorded_trials(SweepPaths(root, "c1"))
    return SimpleNamespace(folder=folder, env=env, root=root, sweep=sweep, trials=trials, recorded=recorded)


@pytest.mark.slow
def test_the_sweep_keeps_one_word2vec_per_config_with_every_epoch(cached_sweep: SimpleNamespace) -> None:
    cache = cached_sweep.sweep / layout.WORD2VEC_CACHE_DIR
    assert [entry.name for entry in cache.iterdir()] == [word2vec_key(W2V)]
    stored = sorted(entry.name for entry in (cache / word2vec_key(W2V)).iterdir())
    assert stored == [layout.word2vec_epoch_file(epoch) for epoch in range(1, EPOCHS + 1)]
    # The entries found damaged were replaced by the epochs they are named for.
    for epoch in range(1, EPOCHS + 1):
        state = TrainingState.from_npz((cache / word2vec_key(W2V) / layout.word2vec_epoch_file(epoch)).read_bytes())
        assert state.epochs_done == epoch


@pytest.mark.slow
def test_every_trial_reports_the_metrics_of_a_freshly_trained_word2vec(cached_sweep: SimpleNamespace) -> None:
    assert sorted(cached_sweep.recorded) == [0, 1, 2]
    for trial in cached_sweep.recorded.values():
        history = sorted(trial.history, key=lambda entry: entry["epoch"])
        assert [entry["epoch"] for entry in history] == list(range(1, EPOCHS + 1))
        expected = _fresh_fit_metrics(cached_sweep.root, trial.config)
        for entry, fresh in zip(history, expected, strict=True):
            assert (entry["recall_at_k"], entry["mrr_at_k"]) == (fresh["recall_at_k"], fresh["mrr_at_k"])
    # The weight changes the scores: the trials are not one trial reported three times.
    assert len({trial.config["w2v_weight"] for trial in cached_sweep.recorded.values()}) == len(WEIGHTS)
    assert len({tuple(cached_sweep.trials.loc[point, "curve"]) for point in cached_sweep.recorded}) > 1


@pytest.mark.slow
def test_only_the_first_trial_trains_word2vec(cached_sweep: SimpleNamespace) -> None:
    cached = {point: [entry["cached"] for entry in trial.history] for point, trial in cached_sweep.recorded.items()}
    trained = [point for point, flags in cached.items() if not any(flags)]
    assert len(trained) == 1, cached  # it trained epoch 2 and 3 too: their entries were damaged
    assert all(all(flags) for point, flags in cached.items() if point != trained[0]), cached
    slowest_read = max(
        entry["epoch_train_s"]
        for point, trial in cached_sweep.recorded.items()
        if point != trained[0]
        for entry in trial.history
    )
    fastest_epoch = min(entry["epoch_train_s"] for entry in cached_sweep.recorded[trained[0]].history)
    assert slowest_read < fastest_epoch, (slowest_read, fastest_epoch)
    seconds = cached_sweep.trials["train_seconds"]
    assert seconds.idxmax() == trained[0], seconds


@pytest.mark.slow
def test_prune_removes_the_cache_and_delete_everything(cached_sweep: SimpleNamespace) -> None:
    for sweep_id in ("c2", "c3"):
        shutil.copytree(cached_sweep.sweep, cached_sweep.sweep.parent / sweep_id)
    cache_files = len(list((cached_sweep.sweep / layout.WORD2VEC_CACHE_DIR).rglob("*.npz")))
    tune_files = len([path for path in (cached_sweep.sweep / layout.TUNE_DIR).rglob("*") if path.is_file()])
    pruned = run_cli("results", "prune", "c2", "--yes", "--json", cwd=cached_sweep.folder, env=cached_sweep.env)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["files"] == tune_files + cache_files
    kept = cached_sweep.sweep.parent / "c2"
    assert not (kept / layout.WORD2VEC_CACHE_DIR).exists() and not (kept / layout.TUNE_DIR).exists()
    assert (kept / layout.TRIALS_FILE).exists()
    deleted = run_cli("results", "delete", "c3", "--yes", cwd=cached_sweep.folder, env=cached_sweep.env)
    assert deleted.returncode == 0, deleted.stderr
    assert not (cached_sweep.sweep.parent / "c3").exists()


# -- the cache's entries, without a sweep --------------------------------------------------------


@pytest.fixture()
def trained(tmp_path: Path) -> SimpleNamespace:
    sentences = [[f"i{(s * 7 + j) % 40}" for j in range(6)] for s in range(200)]
    config = Word2VecConfig(vector_size=8, epochs=2)
    states: list[TrainingState] = []
    fit(config, sentences, on_epoch=lambda epoch, _, model: states.append(TrainingState.capture(model, epoch)))
    cache = Word2VecCache.of(str(tmp_path / "word2vec"), config)
    return SimpleNamespace(model=new_model(config, sentences), states=states, cache=cache, config=config)


def test_an_entry_is_written_once_and_read_back_whole(trained: SimpleNamespace) -> None:
    assert trained.cache.read(1, trained.model) == (None, False)
    assert trained.cache.write(1, trained.states[0])
    assert not trained.cache.write(1, trained.states[1])  # the first write wins
    state, damaged = trained.cache.read(1, trained.model)
    assert not damaged and state is not None and state.epochs_done == 1
    assert np.array_equal(state.vectors, trained.states[0].vectors)


@pytest.mark.parametrize("damage", ["flipped", "short", "other-epoch", "other-shape"])
def test_a_damaged_entry_is_not_trusted_and_is_replaced(
    trained: SimpleNamespace, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = trained.states[1].to_npz()
    data = {
        "flipped": whole[: len(whole) // 2] + bytes([whole[len(whole) // 2] ^ 1]) + whole[len(whole) // 2 + 1 :],
        "short": whole[:-100],
        "other-epoch": trained.states[0].to_npz(),
        "other-shape": TrainingState(
            **{**vars(trained.states[1]), "vectors": trained.states[1].vectors[:, :4]}
        ).to_npz(),
    }[damage]
    Path(trained.cache.uri(2)).parent.mkdir(parents=True)
    Path(trained.cache.uri(2)).write_bytes(data)
    assert trained.cache.read(2, trained.model) == (None, True)
    assert "is damaged" in capsys.readouterr().err
    assert not trained.cache.write(2, trained.states[1])  # taken for there: only a replace writes over it
    assert trained.cache.write(2, trained.states[1], replace=True)
    state, damaged = trained.cache.read(2, trained.model)
    assert not damaged and state is not None and np.array_equal(state.vectors, trained.states[1].vectors)


def test_the_key_is_the_whole_word2vec_config() -> None:
    base = Word2VecConfig(vector_size=16, epochs=12)
    assert word2vec_key(base) == word2vec_key(Word2VecConfig(vector_size=16, epochs=12))
    # epochs: the learning rate decays over all of them, so epoch n differs with the total.
    assert base.alpha_bounds(1) != Word2VecConfig(vector_size=16, epochs=4).alpha_bounds(1)
    for other in ({"epochs": 4}, {"workers": 2}, {"seed": 2}, {"window": 7}, {"alpha": 0.05}):
        assert word2vec_key(Word2VecConfig(**{**base.to_dict(), **other})) != word2vec_key(base), other


def test_a_trial_going_on_from_a_checkpoint_reports_what_an_uninterrupted_one_does(tmp_path: Path) -> None:
    """A restored trial (Tune's checkpoint, or an earlier run's) goes on from its checkpoint's state,
    the cache serving the epochs after it: the same metrics as a trial that ran through uncached."""
    split = next_item_split(synth_sessions(n_sessions=600, n_items=120, n_clusters=8), 100, 0)
    pairs = split_session_pairs(split)[1]
    config = {"model": "sr+w2v_session", "w2v_weight": 0.5, "vector_size": 8, "epochs": 4}
    w2v = Word2VecConfig.from_dict({"vector_size": 8, "epochs": 4, "workers": 1})
    sentences = split.train.to_lists()

    def run(cache: Word2VecCache | None, start: TrainingState | None) -> dict[int, tuple[Any, ...]]:
        scorer = TrialScorer.start(config, split.train, 10, "session", "query")
        found: dict[int, tuple[Any, ...]] = {}

        def on_epoch(epoch: int, metrics: dict[str, Any], model: Any) -> None:
            found[epoch] = (metrics["recall_at_k"], metrics["mrr_at_k"], metrics["cached"])
            states.append(TrainingState.capture(model, epoch))

        _fit_blend(w2v, sentences, scorer, pairs, cache, start, on_epoch)
        return found

    states: list[TrainingState] = []
    through = run(None, None)
    assert [cached for *_, cached in through.values()] == [False] * 4
    cache = Word2VecCache.of(str(tmp_path / "word2vec"), w2v)
    # The checkpoint after epoch 2; another trial left epoch 4 in the cache, not epoch 3.
    assert cache.write(4, states[3])
    restored = run(cache, states[1])
    assert sorted(restored) == [3, 4]
    assert restored[3] == (*through[3][:2], False) and restored[4] == (*through[4][:2], True)
    assert cache.read(3, new_model(w2v, sentences))[0] is not None  # stored for the trials after
