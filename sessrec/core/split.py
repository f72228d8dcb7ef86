"""The protocol's next-item split: train on every session without its last item, and score
(second-to-last, last) pairs of 2N sampled sessions: the first N are test, the next N validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sessrec.core.sessions import Sessions
from sessrec.errors import SessrecError


@dataclass(frozen=True)
class Pairs:
    """Query items and the items that followed them."""

    queries: np.ndarray  # object array of item strings
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.queries)


@dataclass(frozen=True)
class Split:
    """The protocol's split: ``train`` (every session without its last item), N ``test`` and N
    ``validation`` pairs, and the ``seed`` and ``n`` that made it."""

    train: Sessions
    validation: Pairs
    test: Pairs
    seed: int
    n: int


def check_split_size(n_sessions: int, n: int) -> None:
    """N test and N validation pairs need N sessions each."""
    if n < 1:
        raise SessrecError(f"split size N must be at least 1, got {n}")
    if n_sessions < 2 * n:
        raise SessrecError(f"too few sessions for the split: {n_sessions} sessions, need at least 2 x N = {2 * n}")


def next_item_split(sessions: Sessions, n: int, seed: int) -> Split:
    """The split of ``sessions`` with ``n`` test and ``n`` validation pairs, its sessions drawn with
    ``seed``; too few sessions, a session of fewer than 2 items or a seed outside [0, 2**63) is a
    SessrecError."""
    check_split_size(len(sessions), n)
    if not 0 <= seed < 2**63:
        raise SessrecError(f"split seed must be a whole number from 0 to 2**63 - 1, got {seed}")
    short = np.flatnonzero(sessions.lengths < 2)
    if len(short):
        raise SessrecError(f"session {int(short[0])} has fewer than 2 items; every session needs a query and an answer")
    # Exactly this call, over sessions in file order, so figures compare across implementations.
    chosen = np.random.default_rng(seed).choice(len(sessions), 2 * n, replace=False)
    ends = sessions.offsets[1:][chosen]
    queries = sessions.vocab[sessions.codes[ends - 2]]
    targets = sessions.vocab[sessions.codes[ends - 1]]
    return Split(
        train=sessions.drop_last(),
        test=Pairs(queries[:n], targets[:n]),
        validation=Pairs(queries[n:], targets[n:]),
        seed=seed,
        n=n,
    )
