"""Item embeddings: cosine scoring, recommendations and the word2vec text format."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sessrec.core.metrics import to_indices, top_k
from sessrec.errors import SessrecError


@dataclass
class Embeddings:
    """Item vectors: ``keys`` (an object array of item ids) and ``vectors`` (float32, one row per
    key), with each row's unit vector kept for cosine scores and an id -> row ``index``."""

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
        self._unit = _unit_rows(self.vectors)

    @property
    def unit_vectors(self) -> np.ndarray:
        """The rows of ``vectors`` scaled to length 1 (a zero vector stays zero); read-only use."""
        return self._unit

    @property
    def n_items(self) -> int:
        """The number of items (rows of ``vectors``)."""
        return len(self.keys)

    @property
    def dims(self) -> int:
        """The number of dimensions of each vector."""
        return self.vectors.shape[1]

    #: Cosines of float vectors: exact ties between distinct items are left to chance.
    ties_possible = False

    def scores(self, query_idx: np.ndarray, items: slice = slice(None)) -> np.ndarray:
        """Cosines of the query rows with the rows in ``items``: (len(query_idx) x items)
        float32."""
        return self._unit[query_idx] @ self._unit[items].T

    def pair_scores(self, query_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """The cosine of each (query, item) pair of row indices, float32."""
        return np.einsum("ij,ij->i", self._unit[query_idx], self._unit[item_idx])

    def recommend(self, items: list[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """The ``k`` items of highest cosine for each of ``items`` (itself excluded), as (item,
        score) lists, best first; an item not in the vocabulary, or ``k`` < 1, is a SessrecError."""
        idx = to_indices(self.index, items)
        unknown = [item for item, i in zip(items, idx) if i < 0]
        if unknown:
            raise SessrecError(f"item(s) not in the embeddings' vocabulary: {', '.join(map(repr, unknown))}")
        best, scores = top_k(self, idx, k)
        return [
            [(self.keys[j], float(s)) for j, s in zip(row_idx, row_scores)] for row_idx, row_scores in zip(best, scores)
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
    def from_word2vec_text(cls, text: str) -> Embeddings:
        """Embeddings from gensim's word2vec text format (a 'COUNT DIMENSIONS' line, then one 'ITEM
        V1 V2 ...' line per item); an empty, malformed or truncated text, or a NaN or infinite
        value, is a SessrecError."""
        if not text.strip():
            raise SessrecError(
                "word2vec text file is empty (it needs a header line 'COUNT DIMENSIONS', then one line per item)"
            )
        lines = text.splitlines()
        header = lines[0].split()
        if len(header) != 2 or not all(x.isdecimal() for x in header) or int(header[1]) == 0:
            raise SessrecError(
                f"not a word2vec text file: the first line must be 'COUNT DIMENSIONS' (whole numbers, "
                f"DIMENSIONS at least 1), got {lines[0][:40]!r}"
            )
        n, dims = int(header[0]), int(header[1])
        try:
            keys, rows = [], []
            for line in lines[1 : n + 1]:
                key, *values = line.rstrip().split(" ")
                if len(values) != dims:
                    raise ValueError(f"item {key!r} has {len(values)} values, expected {dims}")
                keys.append(key)
                rows.append([float(v) for v in values])
        except ValueError as exc:
            raise SessrecError(f"not a word2vec text file: {exc}") from None
        if len(keys) != n:
            raise SessrecError(f"word2vec text file is truncated: header says {n} items, found {len(keys)}")
        vectors = finite_float32(rows, "word2vec text file holds").reshape(n, dims)
        return cls(np.array(keys, dtype=object), vectors)


def finite_float32(values: npt.ArrayLike, what: str) -> np.ndarray:
    """``values`` (floats or integers) as float32, refusing NaN and infinities.

    ``what`` starts the message, e.g. "emb.parquet: vectors hold".
    """
    with np.errstate(
        over="ignore"
    ):  # a value beyond float32's range becomes inf: refused below in one line, not a warning
        vectors = np.asarray(values, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise SessrecError(f"{what} NaN or infinite values (or values beyond float32's range, about 3.4e38)")
    return vectors


#: Float32 norms that squares could not have distorted: below 1e10 no square overflowed (float32 ends near
#: 3.4e38), and above 1e-10 squares that underflowed (below 1.2e-38) are negligible next to the norm's square.
_SAFE_NORMS = (1e-10, 1e10)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """The rows scaled to length 1; a zero vector stays zero (cosine 0 with everything).

    In float32, as gensim does, so scores match its most_similar. A row with components near 1e19 or beyond
    would get an infinite norm (scores 0 even with itself), so rows whose norms leave the safe range are
    normalised in float64 instead, where squares of float32 values neither overflow nor underflow.
    """
    with np.errstate(over="ignore"):  # the rows that overflow are redone below
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    extreme = ~((norms >= _SAFE_NORMS[0]) & (norms <= _SAFE_NORMS[1]))[:, 0]
    unit = vectors / np.where(extreme[:, None], np.float32(1), norms)
    if extreme.any():
        wide = vectors[extreme].astype(np.float64)
        wide_norms = np.linalg.norm(wide, axis=1, keepdims=True)
        unit[extreme] = wide / np.where(wide_norms == 0, 1.0, wide_norms)
    return unit


def word2vec_text_problem(keys: list[str]) -> str | None:
    """Why these item ids cannot go into the word2vec text format (space-separated), or None."""
    bad = [key for key in keys if not key or any(ch.isspace() for ch in key)]
    if not bad:
        return None
    return (
        f"{len(bad)} item id(s) contain whitespace (e.g. {bad[0]!r}), which the word2vec text format "
        "cannot hold; the Parquet embeddings keep them"
    )
