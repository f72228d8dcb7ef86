"""Model names to builders and their parameters (defined once, in each model's module), so a sweep
spec or a command line can validate a model's parameters before anything is fitted.

    build("sr", {"steps": 20, "last_n": 3, "decay": 0.3})      # an unfitted SequentialRules
    build("hybrid", {"components": [{"model": "sr", "last_n": 3, "decay": 0.3},
                                    {"model": "repeat", "weight": 0.2, "normalise": "none"}]})
    arrays, params = model.to_arrays(), model.params()        # .npz + JSON, no pickle
    from_arrays(arrays, params)                                 # the fitted model again
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sessrec.core.recommenders import repeat, rules, transitions, word2vec_item, word2vec_session
from sessrec.core.recommenders.base import Param, SessionScorer
from sessrec.core.recommenders.hybrid import NORMALISATIONS, Component, Hybrid, check_weight, params_components
from sessrec.core.recommenders.repeat import Repeat
from sessrec.core.recommenders.rules import SequentialRules
from sessrec.core.recommenders.transitions import Transitions
from sessrec.core.recommenders.word2vec_item import Word2VecItem, model_kwargs
from sessrec.core.recommenders.word2vec_session import Word2VecSession
from sessrec.errors import SessrecError

#: name -> (class, parameters). The hybrid's one parameter, ``components``, is a list of
#: ``{"model": name, **its parameters, "weight": w, "normalise": "max" | "none"}``.
MODELS: dict[str, tuple[Any, dict[str, Param]]] = {
    "w2v_item": (Word2VecItem, word2vec_item.PARAMS),
    "w2v_session": (Word2VecSession, word2vec_session.PARAMS),
    "sr": (SequentialRules, rules.PARAMS),
    "transitions": (Transitions, transitions.PARAMS),
    "repeat": (Repeat, repeat.PARAMS),
    "hybrid": (Hybrid, {}),
}
WORD2VEC_MODELS = ("w2v_item", "w2v_session")


def model_class(name: Any) -> tuple[Any, dict[str, Param]]:
    """(class, parameters) of the recommender ``name``; an unknown name is a SessrecError listing
    the known ones."""
    if name not in MODELS:
        raise SessrecError(f"unknown recommender {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def check_params(name: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters checked against their bounds, defaults filled in (one-line SessrecError)."""
    _, spec = model_class(name)
    if name == "hybrid":
        unknown = sorted(set(params) - {"components"})
        if unknown:
            raise SessrecError(f"unknown hybrid parameter(s): {', '.join(unknown)}")
        checked = []
        for i, component in enumerate(params_components(params)):
            inner = {key: value for key, value in component.items() if key not in ("model", "weight", "normalise")}
            sub = component.get("model")
            if sub == "hybrid":
                raise SessrecError(f"hybrid component {i} is itself a hybrid; list its components instead")
            what = f"component {i} ({sub})"
            weight = check_weight(what, component.get("weight", 1.0))
            normalise = component.get("normalise", "max")
            if normalise not in NORMALISATIONS:
                raise SessrecError(
                    f"hybrid normalise of {what} must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}"
                )
            checked.append({"model": sub, **check_params(sub, inner), "weight": weight, "normalise": normalise})
        if not any(c["weight"] > 0 for c in checked):
            raise SessrecError("hybrid weights are all 0; give at least one component a positive weight")
        return {"components": checked}
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise SessrecError(f"unknown {name} parameter(s): {', '.join(unknown)}; it takes {', '.join(spec)}")
    return {key: param.check(f"{name} parameter {key}", params.get(key, param.default)) for key, param in spec.items()}


def build(name: str, params: Mapping[str, Any] | None = None) -> SessionScorer:
    """An unfitted recommender; fit it with ``.fit(train)``."""
    checked = check_params(name, dict(params or {}))
    cls, _ = MODELS[name]
    if name == "hybrid":
        return Hybrid(
            [
                Component(
                    build(c["model"], {k: v for k, v in c.items() if k not in ("model", "weight", "normalise")}),
                    c["weight"],
                    c["normalise"],
                )
                for c in checked["components"]
            ]
        )
    if name in WORD2VEC_MODELS:
        return cls(**model_kwargs(checked))
    return cls(**checked)


def from_arrays(arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> SessionScorer:
    """A fitted recommender from :meth:`to_arrays` and :meth:`params` (``params["model"]`` names it)."""
    name = params.get("model")
    cls, _ = model_class(name)
    if name != "hybrid":
        check_params(name, {key: value for key, value in params.items() if key != "model"})
    return cls.from_arrays(arrays, params)
