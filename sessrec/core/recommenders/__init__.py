"""Session recommenders: one interface (fit on training sessions, score a batch of sessions),
one small module per algorithm, a registry of names and parameters. Evaluation and top-K:
:mod:`sessrec.core.session_metrics`."""

from sessrec.core.recommenders.base import SessionBatch, SessionScorer, catalogue, encode
from sessrec.core.recommenders.hybrid import Component, Hybrid
from sessrec.core.recommenders.registry import MODELS, build, check_params, from_arrays
from sessrec.core.recommenders.repeat import Repeat
from sessrec.core.recommenders.rules import SequentialRules
from sessrec.core.recommenders.transitions import Transitions
from sessrec.core.recommenders.word2vec_item import Word2VecItem
from sessrec.core.recommenders.word2vec_session import Word2VecSession

__all__ = [
    "MODELS",
    "Component",
    "Hybrid",
    "Repeat",
    "SequentialRules",
    "SessionBatch",
    "SessionScorer",
    "Transitions",
    "Word2VecItem",
    "Word2VecSession",
    "build",
    "catalogue",
    "check_params",
    "encode",
    "from_arrays",
]
