"""Seeded synthetic sessions with planted structure that word2vec can learn.

Items fall into clusters; each cluster is a chain of items. A session picks a cluster (popular
clusters more often) and walks it: the next item is the chain's next item, a random item of
the same cluster, or (rarely) a random item from the whole catalogue. Co-occurrence inside a
cluster is what skip-gram learns, so a tuned model clearly beats global popularity.
"""

from __future__ import annotations

import math

import numpy as np

from sessrec.core.sessions import Sessions
from sessrec.errors import SessrecError

#: Bounds that keep a request within memory (a session of 10,000 purchases is already far-fetched).
MAX_MEAN_LENGTH = 10_000
MAX_EVENTS = 1_000_000_000


def synth_sessions(
    n_sessions: int = 2000,
    n_items: int = 500,
    n_clusters: int = 25,
    mean_length: float = 12.0,
    min_length: int = 3,
    p_next: float = 0.6,
    p_noise: float = 0.1,
    seed: int = 0,
) -> Sessions:
    """``n_sessions`` sessions over ``n_items`` items (ids ``I000000``, ...) in ``n_clusters``
    clusters, of at least ``min_length`` and on average ``mean_length`` items; each step follows the
    chain with probability ``p_next``, jumps anywhere with ``p_noise``, else stays in the cluster.
    The same arguments give the same sessions; out-of-range ones are a SessrecError."""
    if n_sessions < 1 or n_items < 2 or not 1 <= n_clusters <= n_items:
        raise SessrecError("synth needs n_sessions >= 1, n_items >= 2 and 1 <= n_clusters <= n_items")
    if not (math.isfinite(mean_length) and min_length <= mean_length <= MAX_MEAN_LENGTH) or min_length < 2:
        raise SessrecError(f"synth needs 2 <= min_length <= mean_length <= {MAX_MEAN_LENGTH}")
    if n_sessions * mean_length > MAX_EVENTS:
        raise SessrecError(
            f"synth makes at most {MAX_EVENTS:,} events; {n_sessions:,} sessions of mean length {mean_length} are more"
        )
    if not 0 <= seed < 2**63:
        raise SessrecError(f"synth seed must be from 0 to 2**63 - 1, got {seed}")
    if not (0 <= p_next <= 1 and 0 <= p_noise <= 1 and p_next + p_noise <= 1):
        raise SessrecError("synth needs probabilities p_next, p_noise in [0, 1] with p_next + p_noise <= 1")
    rng = np.random.default_rng(seed)
    # Items are shuffled into clusters so cluster membership is not visible in the item ids.
    item_order = rng.permutation(n_items)
    cluster_bounds = np.linspace(0, n_items, n_clusters + 1).astype(np.int64)
    cluster_of_pos = np.repeat(np.arange(n_clusters), np.diff(cluster_bounds))
    cluster_weights = 1.0 / np.arange(1, n_clusters + 1) ** 0.8
    cluster_weights /= cluster_weights.sum()

    lengths = min_length + rng.geometric(1.0 / (mean_length - min_length + 1), size=n_sessions) - 1
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    positions = np.empty(int(offsets[-1]), dtype=np.int64)

    clusters = rng.choice(n_clusters, size=n_sessions, p=cluster_weights)
    start, size = cluster_bounds[clusters], np.diff(cluster_bounds)[clusters]
    current = start + rng.integers(0, size)
    # Walk all sessions one step at a time: a vectorized loop over positions, not sessions.
    for step in range(int(lengths.max())):
        active = np.flatnonzero(lengths > step)
        positions[offsets[active] + step] = current[active]
        draw = rng.random(n_sessions)
        chained = start + (current - start + 1) % size
        same_cluster = start + rng.integers(0, size)
        anywhere = rng.integers(0, n_items, size=n_sessions)
        current = np.where(draw < p_next, chained, np.where(draw < p_next + p_noise, anywhere, same_cluster))
        # A noise step may leave the cluster; the walk continues in the cluster it landed in.
        cluster = cluster_of_pos[current]
        start, size = cluster_bounds[cluster], np.diff(cluster_bounds)[cluster]
    names = np.array([f"I{i:06d}" for i in range(n_items)], dtype=object)
    return Sessions.from_codes(names, item_order[positions], offsets)
