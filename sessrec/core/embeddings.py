"""Item embeddings: cosine scoring, recommendations and the word2vec text format."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sessrec.core.metrics import to_indices, top_k
from sessrec.errors import SessrecError


@dataclass
class Embeddings:
    keys: np.ndarray  # object array of item strings
    vectors: np.ndarray  # float32, items x dims
    index: dict[str, int] = field(init=False, repr=False)
    _unit: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.keys) != len(self.vectors):
            raise SessrecError("embeddings need one vector per item")
        self.index = {key: i for i, key in enumerate(self.keys.tolist())}
        if len(self.index) != len(self.keys):
            raise SessrecError("embeddings list an item more than once")
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        # Normalised once, as gensim does; a zero vector stays zero (cosine 0 with everything).
        self._unit = self.vectors / np.where(norms == 0, 1.0, norms).astype(np.float32)

    @property
    def n_items(self) -> int:
        return len(self.keys)

    @property
    def dims(self) -> int:
        return self.vectors.shape[1]

    #: Cosines of float vectors: exact ties between distinct items are left to chance.
    ties_possible = False

    def scores(self, query_idx: np.ndarray, items: slice = slice(None)) -> np.ndarray:
        return self._unit[query_idx] @ self._unit[items].T

    def pair_scores(self, query_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self._unit[query_idx], self._unit[item_idx])

    def recommend(self, items: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        idx = to_indices(self.index, items)
        unknown = [item for item, i in zip(items, idx) if i < 0]
        if unknown:
            raise SessrecError(f"item(s) not in the embeddings' vocabulary: {', '.join(map(repr, unknown))}")
        best, scores = top_k(self, idx, k)
        return [
            [(self.keys[j], float(s)) for j, s in zip(row_idx, row_scores)]
            for row_idx, row_scores in zip(best, scores)
        ]

    def to_word2vec_text(self) -> str:
        """The plain text format that gensim's ``KeyedVectors.load_word2vec_format`` reads.

        That format separates fields by spaces, so item codes containing whitespace cannot be
        written to it; Parquet keeps them intact.
        """
        problem = word2vec_text_problem(self.keys.tolist())
        if problem:
            raise SessrecError(problem)
        lines = [f"{self.n_items} {self.dims}"]
        for key, vector in zip(self.keys.tolist(), self.vectors):
            lines.append(key + " " + " ".join(repr(float(x)) for x in vector))
        return "\n".join(lines) + "\n"

    @classmethod
    def from_word2vec_text(cls, text: str) -> "Embeddings":
        lines = text.splitlines()
        try:
            n, dims = (int(x) for x in lines[0].split())
            keys, rows = [], []
            for line in lines[1 : n + 1]:
                key, *values = line.rstrip().split(" ")
                if len(values) != dims:
                    raise ValueError(f"item {key!r} has {len(values)} values, expected {dims}")
                keys.append(key)
                rows.append([float(v) for v in values])
        except (ValueError, IndexError) as exc:
            raise SessrecError(f"not a word2vec text file: {exc}") from None
        if len(keys) != n:
            raise SessrecError(f"word2vec text file is truncated: header says {n} items, found {len(keys)}")
        vectors = np.array(rows, dtype=np.float32).reshape(n, dims)
        if not np.isfinite(vectors).all():
            raise SessrecError("word2vec text file holds NaN or infinite values")
        return cls(np.array(keys, dtype=object), vectors)


def word2vec_text_problem(keys: list[str]) -> str | None:
    """Why these item ids cannot go into the word2vec text format (space-separated), or None."""
    bad = [key for key in keys if not key or any(ch.isspace() for ch in key)]
    if not bad:
        return None
    return (f"{len(bad)} item id(s) contain whitespace (e.g. {bad[0]!r}), which the word2vec text format "
            "cannot hold; the Parquet embeddings keep them")
