"""Skip-gram word2vec (prod2vec) trained one epoch at a time with the schedule of one long run.

Each epoch is its own ``train`` call given the slice of the linear learning-rate decay that one
call over all epochs would use, so a run can report, checkpoint and resume between epochs and
still train the same model. Resume state is plain arrays and numbers (never pickle).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import time
import zipfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from gensim.models import Word2Vec

from sessrec.core.embeddings import Embeddings
from sessrec.core.metrics import evaluate
from sessrec.core.split import Pairs
from sessrec.errors import SessrecError

#: Parameters a model is trained with, and a sweep may search or fix: (type, lowest, highest).
PARAMETERS: dict[str, tuple[type, float, float]] = {
    "vector_size": (int, 1, 1024),
    "window": (int, 1, 200),
    "negative": (int, 1, 100),
    "ns_exponent": (float, -5.0, 5.0),
    "alpha": (float, 1e-6, 1.0),
    "min_alpha": (float, 0.0, 1.0),
    "epochs": (int, 1, 1000),
    "min_count": (int, 1, 1000),
    "sample": (float, 0.0, 1.0),
}


@dataclass(frozen=True)
class Word2VecConfig:
    """gensim skip-gram training parameters (negative sampling), plus the random seed and the worker
    threads."""

    vector_size: int = 100
    window: int = 5
    negative: int = 5
    ns_exponent: float = 0.75
    alpha: float = 0.025
    min_alpha: float = 0.0001
    epochs: int = 5
    min_count: int = 1
    sample: float = 0.001
    seed: int = 1
    workers: int = 1

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Word2VecConfig:
        """A config from parameter names and numbers (missing ones keep their defaults), checked by
        :meth:`validate`; an unknown name, a non-number or a fraction for an integer parameter is a
        SessrecError."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise SessrecError(f"unknown word2vec parameter(s): {', '.join(unknown)}")
        typed: dict[str, Any] = {}
        for name, value in values.items():
            kind = int if fields[name] == "int" else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SessrecError(f"word2vec parameter {name} must be a number, got {value!r}")
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise SessrecError(f"word2vec parameter {name} must be an integer, got {value!r}")
            typed[name] = kind(value)
        config = cls(**typed)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise a one-line SessrecError unless every value is finite and in range
        (:data:`PARAMETERS`, a seed below 2**32, 1 to 1024 workers) and ``min_alpha <= alpha``."""
        for name, value in self.to_dict().items():
            if not math.isfinite(value):  # NaN would pass every comparison below
                raise SessrecError(f"word2vec parameter {name} must be a finite number, got {value}")
        if not 0 <= self.seed < 2**32:
            raise SessrecError(f"word2vec seed must be from 0 to 2**32 - 1, got {self.seed}")
        for name, (_, low, high) in PARAMETERS.items():
            if not low <= getattr(self, name) <= high:
                raise SessrecError(
                    f"word2vec parameter {name} must lie in [{low:g}, {high:g}], got {getattr(self, name)}"
                )
        if not 1 <= self.workers <= 1024:
            raise SessrecError(f"word2vec parameter workers must lie in [1, 1024], got {self.workers}")
        if self.min_alpha > self.alpha:
            raise SessrecError(f"word2vec needs min_alpha <= alpha, got {self.min_alpha} > {self.alpha}")

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, as a plain dict."""
        return dataclasses.asdict(self)

    def alpha_bounds(self, epoch: int) -> tuple[float, float]:
        """Learning rate at the start and end of ``epoch`` (0-based) of one uninterrupted run."""
        span = self.alpha - self.min_alpha
        return self.alpha - span * epoch / self.epochs, self.alpha - span * (epoch + 1) / self.epochs


def new_model(config: Word2VecConfig, sentences: list[list[str]]) -> Word2Vec:
    """An untrained gensim skip-gram model (negative sampling) with its vocabulary built from
    ``sentences``; fewer than two items in that vocabulary is a SessrecError."""
    model = Word2Vec(
        vector_size=config.vector_size,
        window=config.window,
        negative=config.negative,
        ns_exponent=config.ns_exponent,
        alpha=config.alpha,
        min_alpha=config.min_alpha,
        epochs=config.epochs,
        min_count=config.min_count,
        sample=config.sample,
        seed=config.seed,
        workers=config.workers,
        sg=1,
        hs=0,
    )
    model.build_vocab(sentences)
    if len(model.wv) < 2:
        raise SessrecError("the training sessions hold fewer than two distinct items")
    return model


def train_epoch(model: Word2Vec, sentences: list[list[str]], config: Word2VecConfig, epoch: int) -> None:
    """Train ``model`` for one epoch, ``epoch`` (0-based), over that epoch's slice of the
    learning-rate decay."""
    start_alpha, end_alpha = config.alpha_bounds(epoch)
    model.train(
        sentences,
        total_examples=model.corpus_count,
        epochs=1,
        start_alpha=start_alpha,
        end_alpha=end_alpha,
    )


def embeddings_of(model: Word2Vec) -> Embeddings:
    """The model's item vectors as :class:`Embeddings`, in gensim's vocabulary order."""
    return Embeddings(np.array(model.wv.index_to_key, dtype=object), model.wv.vectors)


EpochCallback = Callable[[int, dict[str, float], Word2Vec], None]


def fit(
    config: Word2VecConfig,
    sentences: list[list[str]],
    validation: Pairs | None = None,
    k: int = 10,
    on_epoch: EpochCallback | None = None,
    start: TrainingState | None = None,
) -> Word2Vec:
    """Train ``config.epochs`` epochs; after each, evaluate on ``validation`` (if given) and call
    ``on_epoch(epochs_done, metrics, model)``. ``start`` resumes from a saved state. The metrics
    carry the epoch's training and evaluation seconds, which overhead measurements add up."""
    model = new_model(config, sentences)
    first_epoch = 0
    if start is not None:
        start.restore(model)
        first_epoch = start.epochs_done
    with one_blas_thread():
        for epoch in range(first_epoch, config.epochs):
            started = time.perf_counter()
            train_epoch(model, sentences, config, epoch)
            trained = time.perf_counter()
            metrics: dict[str, float] = {}
            if validation is not None:
                metrics = evaluate(embeddings_of(model), validation.queries, validation.targets, k)
            metrics.update(epoch_train_s=trained - started, epoch_eval_s=time.perf_counter() - trained)
            if on_epoch is not None:
                on_epoch(epoch + 1, metrics, model)
    return model


def one_blas_thread() -> AbstractContextManager[Any]:
    """numpy's BLAS on one thread while epochs and evaluations take turns. A multi-threaded
    OpenBLAS keeps its helper threads spinning for a while after each evaluation's matrix product,
    on the cores gensim's training thread needs: on the reference data that cost 1.1-1.4 CPU-s per
    10 epochs (the evaluations themselves: 0.3). Each score is one thread's dot product either way,
    so the metrics are the same. Needs threadpoolctl; without it, nothing changes but the speed."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class TrainingState:
    """What a run needs to continue exactly where it stopped: weights, vocabulary order and the
    random generator's state, as arrays and JSON-able numbers."""

    epochs_done: int
    vectors: np.ndarray
    syn1neg: np.ndarray
    vocab: list[str]
    random_keys: np.ndarray
    random_pos: int
    random_has_gauss: int
    random_cached_gaussian: float

    @classmethod
    def capture(cls, model: Word2Vec, epochs_done: int) -> TrainingState:
        """The state of ``model`` after ``epochs_done`` epochs (its arrays copied)."""
        _, keys, pos, has_gauss, cached = model.random.get_state()
        return cls(
            epochs_done=epochs_done,
            vectors=model.wv.vectors.copy(),
            syn1neg=model.syn1neg.copy(),
            vocab=list(model.wv.index_to_key),
            random_keys=np.asarray(keys, dtype=np.uint32),
            random_pos=int(pos),
            random_has_gauss=int(has_gauss),
            random_cached_gaussian=float(cached),
        )

    def restore(self, model: Word2Vec) -> None:
        """Put this state's weights and random generator state into ``model``; a model of another
        vocabulary or vector shape is a SessrecError."""
        if list(model.wv.index_to_key) != self.vocab:
            raise SessrecError("checkpoint does not match the training data: the vocabulary differs")
        if model.wv.vectors.shape != self.vectors.shape:
            raise SessrecError("checkpoint does not match the configuration: vector shapes differ")
        model.wv.vectors[:] = self.vectors
        model.syn1neg[:] = self.syn1neg
        model.random.set_state(
            ("MT19937", self.random_keys, self.random_pos, self.random_has_gauss, self.random_cached_gaussian)
        )

    def to_npz(self) -> bytes:
        """The state as ``.npz`` bytes: its arrays and a JSON ``meta`` of its numbers (no
        pickle)."""
        meta = {
            "epochs_done": self.epochs_done,
            "random_pos": self.random_pos,
            "random_has_gauss": self.random_has_gauss,
            "random_cached_gaussian": self.random_cached_gaussian,
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            vectors=self.vectors,
            syn1neg=self.syn1neg,
            vocab=np.array(self.vocab, dtype=np.str_),
            random_keys=self.random_keys,
            meta=np.array(json.dumps(meta)),
        )
        return buffer.getvalue()

    @classmethod
    def from_npz(cls, data: bytes) -> TrainingState:
        """A state from :meth:`to_npz` bytes, read without pickle; anything unreadable is a
        SessrecError."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                meta = json.loads(str(arrays["meta"]))
                return cls(
                    epochs_done=int(meta["epochs_done"]),
                    vectors=arrays["vectors"],
                    syn1neg=arrays["syn1neg"],
                    vocab=arrays["vocab"].tolist(),
                    random_keys=arrays["random_keys"],
                    random_pos=int(meta["random_pos"]),
                    random_has_gauss=int(meta["random_has_gauss"]),
                    random_cached_gaussian=float(meta["random_cached_gaussian"]),
                )
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise SessrecError(f"corrupt training checkpoint: {exc}") from None
