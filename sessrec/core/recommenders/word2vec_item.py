"""word2vec, item mode: the query item's cosine neighbours (the protocol's reference recommender).

In: training sessions (gensim skip-gram is trained with a :class:`Word2VecConfig`), or ready
:class:`Embeddings`. Out: for each session, the cosine of every catalogue item with the session's
last item, scored by the existing :class:`Embeddings` scorer over the catalogue's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sessrec.core.embeddings import Embeddings
from sessrec.core.recommenders.base import Fitted, Param, SessionBatch, catalogue, keys_array, stored_keys
from sessrec.core.sessions import Sessions
from sessrec.core.word2vec import PARAMETERS, Word2VecConfig
from sessrec.errors import SessrecError

_DEFAULTS = Word2VecConfig()
#: The word2vec training parameters (their bounds are word2vec's own), plus seed and workers.
PARAMS = {
    **{key: Param(kind.__name__, getattr(_DEFAULTS, key), low, high) for key, (kind, low, high) in PARAMETERS.items()},
    "seed": Param("int", _DEFAULTS.seed, 0, 2**32 - 1),
    "workers": Param("int", _DEFAULTS.workers, 1, 1024),
}


def train_embeddings(config: Word2VecConfig, train: Sessions) -> Embeddings:
    """Skip-gram word2vec on the training sessions (``config.epochs`` epochs)."""
    from sessrec.core.word2vec import embeddings_of, fit  # gensim is imported only when training

    return embeddings_of(fit(config, train.to_lists()))


def aligned(embeddings: Embeddings, keys: np.ndarray) -> Embeddings:
    """``embeddings`` reordered onto a catalogue; catalogue items without a vector get a zero vector
    (cosine 0 with everything)."""
    vectors = np.zeros((len(keys), embeddings.dims), dtype=np.float32)
    rows = np.fromiter((embeddings.index.get(key, -1) for key in keys.tolist()), dtype=np.int64, count=len(keys))
    vectors[rows >= 0] = embeddings.vectors[rows[rows >= 0]]
    return Embeddings(np.asarray(keys, dtype=object), vectors)


@dataclass
class Word2VecItem(Fitted):
    """Cosine neighbours of the session's last item."""

    name: ClassVar[str] = "w2v_item"
    ties_possible: ClassVar[bool] = False
    config: Word2VecConfig = field(default_factory=Word2VecConfig)
    embeddings: Embeddings | None = field(default=None, repr=False)

    @property
    def item_mode(self) -> bool:
        """Always True: the scores depend on the last item only."""
        return True

    def fit(self, train: Sessions) -> Word2VecItem:
        """Train word2vec on ``train`` with ``config`` and take the catalogue of ``train``; returns
        the model."""
        return self.use_embeddings(train_embeddings(self.config, train), catalogue(train))

    def use_embeddings(self, embeddings: Embeddings, keys: np.ndarray) -> Word2VecItem:
        """Fit from trained embeddings, over the catalogue ``keys`` (so that it adds up with other models)."""
        self.embeddings = aligned(embeddings, keys)
        self._set_catalogue(self.embeddings.keys)
        return self

    def _unit(self) -> np.ndarray:
        self._check_fitted()
        assert self.embeddings is not None
        return self.embeddings.unit_vectors

    def scores(self, batch: SessionBatch) -> np.ndarray:
        """Dense (len(batch) x n_items) float64: each catalogue item's cosine with the session's
        last item; 0 for a session with no item."""
        self._check_fitted()
        assert self.embeddings is not None
        last = batch.last()
        out = np.zeros((len(batch), self.n_items), dtype=np.float64)
        has = last >= 0
        out[has] = self.embeddings.scores(last[has])
        return out

    def params(self) -> dict[str, Any]:
        """``{"model": name, ...}`` with every field of ``config`` (seed and workers included)."""
        return {"model": self.name, **self.config.to_dict()}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The catalogue (``keys``) and its float32 ``vectors``, one row per catalogue item."""
        self._check_fitted()
        assert self.embeddings is not None
        return {"keys": keys_array(self.keys), "vectors": self.embeddings.vectors}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Word2VecItem:
        """The fitted model from :meth:`to_arrays` and :meth:`params`; missing arrays are a
        SessrecError."""
        model = cls(**model_kwargs(params))
        return model.use_embeddings(stored_embeddings(arrays), stored_keys(arrays))


def stored_embeddings(arrays: Mapping[str, np.ndarray]) -> Embeddings:
    """The :class:`Embeddings` stored as the arrays ``keys`` and ``vectors``; a missing array is a
    SessrecError."""
    if "vectors" not in arrays:
        raise SessrecError("stored word2vec recommender has no 'vectors' array")
    return Embeddings(stored_keys(arrays), np.asarray(arrays["vectors"], dtype=np.float32))


def model_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments from flat parameters (:meth:`params`): the word2vec ones become a config."""
    kwargs = {key: value for key, value in params.items() if key != "model"}
    config = {key: kwargs.pop(key) for key in list(kwargs) if key in PARAMS}
    return {**kwargs, "config": Word2VecConfig.from_dict(config)}
