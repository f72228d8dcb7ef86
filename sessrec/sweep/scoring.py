"""How a trial scores a recommender other than today's (word2vec's query neighbours in item mode),
and how the driver rebuilds the best one (no Ray).

The count components (sr, transitions, repeat) are fitted once, when the trial starts: their
parameters change only the fit or the scoring, never anything trained epoch by epoch. A word2vec
part takes each epoch's embeddings; the blend is evaluated after every epoch. Metrics are
``evaluate_sessions``' under the sweep's metric names (recall_at_k, mrr_at_k), in the spec's mode
and exclusion.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sessrec.core.embeddings import Embeddings
from sessrec.core.recommenders.base import SessionScorer, catalogue
from sessrec.core.recommenders.hybrid import Component, Hybrid
from sessrec.core.recommenders.registry import WORD2VEC_MODELS, build, check_params
from sessrec.core.session_metrics import SessionPairs, evaluate_sessions
from sessrec.core.sessions import Sessions
from sessrec.recommender_space import recommender


@dataclass(frozen=True)
class NoWeights:
    """The weights of a trial without word2vec, for its checkpoint: none (an .npz without arrays)."""

    epochs_done: int

    def to_npz(self) -> bytes:
        sink = io.BytesIO()
        np.savez(sink)
        return sink.getvalue()


@dataclass
class TrialScorer:
    """A trial's recommender: its count parts fitted, its word2vec part (if any) set per epoch."""

    name: str
    params: dict[str, Any]
    train: Sessions
    k: int
    mode: str
    exclude: str
    fitted: dict[int, SessionScorer] = field(default_factory=dict)
    fit_seconds: float = 0.0

    @classmethod
    def start(cls, config: Mapping[str, Any], train: Sessions, k: int, mode: str, exclude: str) -> TrialScorer:
        """Check the config's recommender and fit its count parts."""
        name, params = recommender(config)
        scorer = cls(name, check_params(name, params), train, k, mode, exclude)
        started = time.perf_counter()
        for i, (part, own) in enumerate(scorer.parts()):
            if part not in WORD2VEC_MODELS:
                scorer.fitted[i] = build(part, own).fit(train)
        scorer.fit_seconds = time.perf_counter() - started
        return scorer

    def parts(self) -> list[tuple[str, dict[str, Any]]]:
        if self.name != "hybrid":
            return [(self.name, self.params)]
        drop = ("model", "weight", "normalise")
        return [(c["model"], {k: v for k, v in c.items() if k not in drop}) for c in self.params["components"]]

    @property
    def has_word2vec(self) -> bool:
        return any(part in WORD2VEC_MODELS for part, _ in self.parts())

    def model(self, embeddings: Embeddings | None = None) -> SessionScorer:
        """The fitted recommender, its word2vec part from ``embeddings``."""
        models: list[SessionScorer] = []
        for i, (part, own) in enumerate(self.parts()):
            if i in self.fitted:
                models.append(self.fitted[i])
            else:
                assert embeddings is not None, "a word2vec part needs embeddings"
                models.append(build(part, own).use_embeddings(embeddings, catalogue(self.train)))  # type: ignore[attr-defined]
        if self.name != "hybrid":
            return models[0]
        components = self.params["components"]
        return Hybrid([Component(m, c["weight"], c["normalise"]) for m, c in zip(models, components, strict=True)])

    def evaluate(self, pairs: SessionPairs, embeddings: Embeddings | None = None) -> dict[str, Any]:
        """Recall@K and MRR@K (in the sweep's mode) and the seconds they took."""
        started = time.perf_counter()
        found = evaluate_sessions(
            self.model(embeddings), pairs.sessions, pairs.targets.tolist(), self.k, self.mode, self.exclude
        )
        return {
            "recall_at_k": found["recall_at_k"],
            "mrr_at_k": found["mrr_at_k"],
            "epoch_eval_s": time.perf_counter() - started,
        }
