"""word2vec, session mode: cosine to a recency-weighted mean of the session's last items.

In: training sessions (or trained :class:`Embeddings`), ``last_n`` and ``decay``. The session
vector is ``sum(decay ** age * unit(v_item))`` over the last ``last_n`` items (age 0 = the last
item; dividing by the weights' sum would not change a cosine). Out: each catalogue item's cosine
with that vector. With ``last_n = 1`` it is the item-mode recommender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sessrec.core.recommenders.base import Param, SessionBatch, check_fields
from sessrec.core.recommenders.word2vec_item import PARAMS as WORD2VEC_PARAMS
from sessrec.core.recommenders.word2vec_item import Word2VecItem

OWN_PARAMS = {"last_n": Param("int", 3, 1, 10_000), "decay": Param("float", 0.3, 0.0, 1.0)}
PARAMS = {**WORD2VEC_PARAMS, **OWN_PARAMS}


@dataclass
class Word2VecSession(Word2VecItem):
    """Cosine to the session vector, the ``decay ** age``-weighted sum of the unit vectors of the
    session's last ``last_n`` items (see the module)."""

    name: ClassVar[str] = "w2v_session"
    last_n: int = 3
    decay: float = 0.3

    def __post_init__(self) -> None:
        check_fields(self, OWN_PARAMS)

    @property
    def item_mode(self) -> bool:
        """True when only the last item scores (``last_n == 1``)."""
        return self.last_n == 1

    def scores(self, batch: SessionBatch) -> np.ndarray:
        """Dense (len(batch) x n_items) float64: each catalogue item's cosine with the session
        vector; 0 where that vector is zero."""
        unit = self._unit()
        mean = (batch.history(self.n_items, self.last_n, self.decay) @ unit).astype(np.float32)
        norms = np.linalg.norm(mean, axis=1, keepdims=True)
        mean /= np.where(norms > 0, norms, 1.0)
        return (mean @ unit.T).astype(np.float64)

    def params(self) -> dict[str, Any]:
        """The item mode's parameters plus ``last_n`` and ``decay``."""
        return {**super().params(), "last_n": self.last_n, "decay": self.decay}
