"""Repeat score: customers re-buy, so an item already in the session is a candidate again.

In: training sessions (only for the catalogue) and ``transform``. Out: each item's count in the
session ("count"), or ``log(1 + count)`` ("log"); items not in the session score 0. It needs the
whole session, so it has no item mode (its only item would be the query, which is excluded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sessrec.core.recommenders.base import Fitted, Param, SessionBatch, catalogue, check_fields, keys_array, stored_keys
from sessrec.core.sessions import Sessions

TRANSFORMS = ("log", "count")
PARAMS = {"transform": Param("choice", "log", choices=TRANSFORMS)}


@dataclass
class Repeat(Fitted):
    """Scores the items already in the session by their count there, or ``log(1 + count)`` (see the
    module)."""

    name: ClassVar[str] = "repeat"
    ties_possible: ClassVar[bool] = True
    transform: str = "log"

    def __post_init__(self) -> None:
        check_fields(self, PARAMS)

    @property
    def item_mode(self) -> bool:
        """Always False: the scores need the whole session."""
        return False

    def fit(self, train: Sessions) -> Repeat:
        """Take the catalogue of ``train`` (nothing else is learned); returns the model."""
        self._set_catalogue(catalogue(train))
        return self

    def scores(self, batch: SessionBatch) -> np.ndarray:
        """Dense (len(batch) x n_items) float64: each item's count among all the session's items, or
        ``log(1 + count)``; 0 for items not in it."""
        self._check_fitted()
        counts = batch.history(self.n_items).toarray()
        return np.log1p(counts) if self.transform == "log" else counts

    def params(self) -> dict[str, Any]:
        """``{"model": "repeat", "transform": ...}``."""
        return {"model": self.name, "transform": self.transform}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The catalogue only: ``{"keys": ...}``."""
        self._check_fitted()
        return {"keys": keys_array(self.keys)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Repeat:
        """The fitted model from :meth:`to_arrays` and :meth:`params`; no keys array is a
        SessrecError."""
        model = cls(**{key: value for key, value in params.items() if key != "model"})
        model._set_catalogue(stored_keys(arrays))
        return model
