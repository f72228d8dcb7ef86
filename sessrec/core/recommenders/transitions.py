"""Multi-step transitions: what followed each of the session's last items exactly that far back.

In: training sessions; ``last_n`` and ``decay``. Fit: one sparse items x items count matrix per
gap g = 1 .. last_n (how often b came exactly g positions after a). Out: for the item of age t
(t = 0 is the last item) its row of the gap t + 1 matrix, weighted ``decay ** t``, summed. With
``last_n = 1`` and the popularity tie-break this is the next-item transitions baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from sessrec.core.recommenders.base import (
    Fitted,
    Param,
    SessionBatch,
    catalogue,
    check_fields,
    keys_array,
    popularity_tiebreak,
    sparse_arrays,
    sparse_from,
    stored_keys,
)
from sessrec.core.recommenders.rules import gap_pairs, pair_matrix
from sessrec.core.sessions import Sessions
from sessrec.errors import SessrecError

PARAMS = {
    "last_n": Param("int", 1, 1, 100),
    "decay": Param("float", 0.5, 0.0, 1.0),
    "tiebreak": Param("bool", True),
}


@dataclass
class Transitions(Fitted):
    """Multi-step transitions (see the module): one count matrix per gap 1 .. ``last_n``."""

    name: ClassVar[str] = "transitions"
    ties_possible: ClassVar[bool] = True
    last_n: int = 1
    decay: float = 0.5
    #: Order items of equal score by popularity, as the transitions baseline does.
    tiebreak: bool = True
    matrices: list[sp.csr_matrix] = field(default_factory=list, repr=False)
    fill: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_fields(self, PARAMS)

    @property
    def item_mode(self) -> bool:
        """True when only the last item scores (``last_n == 1``)."""
        return self.last_n == 1

    def fit(self, train: Sessions) -> Transitions:
        """Count the transitions of each gap up to ``last_n`` in ``train`` (and, with ``tiebreak``,
        the popularity tie-break); returns the model."""
        keys = catalogue(train)
        self._set_catalogue(keys)
        self.matrices = [pair_matrix(iter([(*gap_pairs(train, g), 1.0)]), len(keys)) for g in range(1, self.last_n + 1)]
        self.fill = popularity_tiebreak(train, train.item_counts() > 0) if self.tiebreak else None
        return self

    def scores(self, batch: SessionBatch) -> np.ndarray:
        """Dense (len(batch) x n_items) float64: for each of the last ``last_n`` items, its row of
        its gap's matrix weighted ``decay ** age``, summed, plus the tie-break if any. A model
        fitted with fewer matrices than ``last_n`` is a SessrecError."""
        self._check_fitted()
        out = np.zeros((len(batch), self.n_items), dtype=np.float64)
        if len(self.matrices) < self.last_n:
            raise SessrecError(f"transitions fitted for last_n {len(self.matrices)} cannot score last_n {self.last_n}")
        for age, matrix in enumerate(self.matrices[: self.last_n]):
            history = batch.history(self.n_items, self.last_n, self.decay, age=age)
            if history.nnz:
                out += (history @ matrix).toarray()
        if self.fill is not None:
            out += self.fill
        return out

    def params(self) -> dict[str, Any]:
        """``{"model": "transitions", "last_n": ..., "decay": ..., "tiebreak": ...}``."""
        return {"model": self.name, "last_n": self.last_n, "decay": self.decay, "tiebreak": self.tiebreak}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The catalogue (``keys``), the first ``last_n`` matrices (``gap1.*``, ``gap2.*``, ...)
        and, with the tie-break, ``fill``."""
        self._check_fitted()
        arrays = {"keys": keys_array(self.keys)}
        for gap, matrix in enumerate(self.matrices[: self.last_n], start=1):
            arrays.update(sparse_arrays(f"gap{gap}", matrix))
        if self.fill is not None:
            arrays["fill"] = self.fill
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Transitions:
        """The fitted model from :meth:`to_arrays` and :meth:`params`; missing or corrupt arrays are
        a SessrecError."""
        model = cls(**{key: value for key, value in params.items() if key != "model"})
        model._set_catalogue(stored_keys(arrays))
        model.matrices = [sparse_from(f"gap{g}", arrays, len(model.keys)) for g in range(1, model.last_n + 1)]
        model.fill = np.asarray(arrays["fill"], dtype=np.float64) if "fill" in arrays else None
        return model
