"""The best trial of a sweep scored by session recommenders, written to ``best/`` (no Ray).

The recommender is rebuilt from the trial's config: its count parts fitted again on the training
split (deterministic, and quick: they never train epoch by epoch), its word2vec part (if any) from
the trial's newest checkpoint. ``best/`` then holds it as a stored recommender
(``recommender.npz`` + ``recommender.json``, see ``recommenders_store``), its word2vec embeddings
(``embeddings.parquet``) when it has a word2vec part, and ``config.json`` (the trial's flat space
parameters, its model, mode and exclusion) and ``metrics.json`` (validation and test, each naming
its mode).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sessrec import formats, layout, recommenders_store, storage
from sessrec.core.embeddings import Embeddings
from sessrec.core.session_metrics import evaluate_sessions, split_session_pairs
from sessrec.core.split import Split
from sessrec.core.word2vec import TrainingState
from sessrec.recommender_space import DEFAULT_MODEL, MODEL, has_word2vec, takes
from sessrec.spec import SweepSpec
from sessrec.sweep.records import SweepPaths
from sessrec.sweep.scoring import TrialScorer
from sessrec.sweep.trials import CHECKPOINT, CONFIG_PREFIX, EPOCHS_RUN, LAST_MRR, LAST_RECALL, TRIAL_ID


def write_best(paths: SweepPaths, spec: SweepSpec, split: Split, best: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the best trial's recommender, evaluate it on test, write ``best/``; returns its metrics."""
    config = {name.removeprefix(CONFIG_PREFIX): value for name, value in best.items() if name.startswith(CONFIG_PREFIX)}
    config = {
        name: value for name, value in config.items() if value is not None and value == value
    }  # NaN: not its parameter
    model_name = config.get(MODEL, DEFAULT_MODEL)
    config = {name: value for name, value in config.items() if name == "epochs" or takes(model_name, name, config)}
    word2vec = _has_word2vec(config)
    if word2vec:
        config["epochs"] = int(best[EPOCHS_RUN])  # what the stored word2vec part trained
    else:
        config.pop("epochs", None)
    scorer = TrialScorer.start(config, split.train, spec.k, spec.mode, spec.exclude)
    embeddings = _embeddings(best[CHECKPOINT]) if scorer.has_word2vec else None
    model = scorer.model(embeddings)
    test_pairs, validation_pairs = split_session_pairs(split)
    test = evaluate_sessions(model, test_pairs.sessions, test_pairs.targets.tolist(), spec.k, spec.mode, spec.exclude)
    name = str(config.get(MODEL, DEFAULT_MODEL))
    how = {"mode": spec.mode, "exclude": spec.exclude}
    metrics = {
        "trial_id": best[TRIAL_ID],
        "epochs": int(best[EPOCHS_RUN]) if word2vec else 0,
        "model": name,
        "recommender": model.params(),
        **how,
        "validation": {
            "recall_at_k": best[LAST_RECALL],
            "mrr_at_k": best[LAST_MRR],
            "k": spec.k,
            "pairs": len(validation_pairs),
            **how,
        },
        "test": test,
    }
    data = recommenders_store.arrays_to_npz(model.to_arrays())
    description = {
        "name": f"{paths.sweep_id}-best",
        "model": name,
        "sweep_id": paths.sweep_id,
        "trial_id": best[TRIAL_ID],
        "split": {"seed": spec.split_seed, "n": spec.split_n},
        "validation": metrics["validation"],
        "test": test,
        "kind": recommenders_store.KIND,
        "params": model.params(),
        "n_items": int(model.n_items),
        "arrays_sha256": recommenders_store.sha256(data),
    }
    folder = paths.file(layout.BEST_DIR)
    if embeddings is not None:
        storage.write_bytes(storage.join(folder, layout.EMBEDDINGS_FILE), formats.embeddings_to_parquet(embeddings))
    storage.write_bytes(storage.join(folder, layout.RECOMMENDER_ARRAYS_FILE), data)
    storage.write_bytes(storage.join(folder, layout.RECOMMENDER_FILE), formats.to_json(description))  # after its arrays
    storage.write_bytes(storage.join(folder, layout.CONFIG_FILE), formats.to_json({MODEL: name, **how, **config}))
    storage.write_bytes(storage.join(folder, layout.METRICS_FILE), formats.to_json(metrics))
    return metrics


def _has_word2vec(config: dict[str, Any]) -> bool:
    return has_word2vec(config.get(MODEL, DEFAULT_MODEL), config)


def _embeddings(checkpoint: str) -> Embeddings:
    state = TrainingState.from_npz(storage.read_bytes(storage.join(checkpoint, layout.STATE_FILE)))
    return Embeddings(np.array(state.vocab, dtype=object), state.vectors)
