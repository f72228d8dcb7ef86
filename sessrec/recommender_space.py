"""A sweep's recommender as flat space parameters (no Ray): which recommender a trial's config
describes, and the rules a spec's space must keep.

The space names the recommender with ``model``: a registry name (``w2v_item``, today's default;
``w2v_session``, ``sr``, ``transitions``, ``repeat``), components joined by ``+`` for a hybrid
(``sr+repeat``, ``w2v_session+transitions+repeat``), or ``hybrid``, whose components are those
given a ``<part>_weight``. Its parameters are flat, so that Tune can search them like word2vec's:

- the scoring parameters ``last_n``, ``decay``, ``steps``, ``weighting``, ``transform`` go to every
  component that takes them; ``<part>_<name>`` (``sr_last_n``, ``w2v_decay``,
  ``transitions_last_n``...) to that part only, before the shared name;
- ``<part>_weight`` is a hybrid component's blend weight (1 when not given); each component is
  max-normalised per session before the blend, except the repeat part (:data:`NORMALISE`);
- word2vec's parameters go to the word2vec part (``w2v``: ``w2v_item`` or ``w2v_session``).

Bounds and choices come from the registry (``MODELS``), defined once in each model's module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sessrec.core.recommenders.base import Param
from sessrec.core.recommenders.registry import MODELS, WORD2VEC_MODELS, build, check_params
from sessrec.core.word2vec import PARAMETERS
from sessrec.errors import SessrecError

MODEL = "model"
#: Today's recommender: word2vec's cosine neighbours of the query item.
DEFAULT_MODEL = "w2v_item"
MODES = ("item", "session")
EXCLUDES = ("query", "session")
#: Each component's prefix in the flat names.
PREFIXES = {"w2v_item": "w2v", "w2v_session": "w2v", "sr": "sr", "transitions": "transitions", "repeat": "repeat"}
#: The component a ``<prefix>_weight`` adds to a bare ``hybrid``.
HYBRID_PARTS = {"w2v": "w2v_session", "sr": "sr", "transitions": "transitions", "repeat": "repeat"}
#: Parameters that change only how sessions are scored, or (``steps``, ``weighting``) the count fit.
SCORING = ("last_n", "decay", "steps", "weighting", "transform")
WEIGHT_SUFFIX = "_weight"
WEIGHT = Param("float", 1.0, 0.0, math.inf)
#: How a hybrid built from a space normalises each part (the rest: "max", each session's best item
#: scores 1). The repeat part is added raw: its log(1 + count) is already on a scale of its own, and
#: max-normalised the session's most bought item would score 1 whether bought twice or 20 times
#: (0.5 point of Recall@10 lower on the real sessions' split seeds 3 and 4).
NORMALISE = {"repeat": "none"}


def _merged(params: list[Param]) -> Param:
    """One Param spanning several models' (the loosest bounds; a model's own are checked per trial)."""
    first = params[0]
    choices = tuple(dict.fromkeys(c for p in params for c in p.choices))
    return Param(first.kind, first.default, min(p.low for p in params), max(p.high for p in params), choices)


def _space_params() -> dict[str, Param]:
    names: dict[str, Param] = {}
    for key in SCORING:
        takers = [part for part in PREFIXES if key in MODELS[part][1]]
        names[key] = _merged([MODELS[part][1][key] for part in takers])
        for prefix in dict.fromkeys(PREFIXES[part] for part in takers):
            names[f"{prefix}_{key}"] = _merged([MODELS[p][1][key] for p in takers if PREFIXES[p] == prefix])
    for prefix in HYBRID_PARTS:
        names[f"{prefix}{WEIGHT_SUFFIX}"] = WEIGHT
    return names


#: Every flat recommender parameter of a space (besides ``model``) and its loosest bounds.
SPACE_PARAMS: dict[str, Param] = _space_params()
#: Every name a space may hold: word2vec's, then the recommender's.
SPACE_NAMES: tuple[str, ...] = (*PARAMETERS, MODEL, *SPACE_PARAMS)


def bounds(name: str) -> tuple[type, float, float]:
    """(kind, lowest, highest) of a recommender parameter; ``str`` for a name or choice."""
    if name == MODEL:
        return str, 0.0, 0.0
    param = SPACE_PARAMS[name]
    if param.kind in ("choice", "bool"):
        return str, 0.0, 0.0
    return (int if param.kind == "int" else float), param.low, param.high


def parts(model: Any, weighted: Iterable[str] = ()) -> list[str]:
    """The registry models a ``model`` value is made of (one, or a hybrid's components);
    ``weighted``: the space's names, whose ``<part>_weight`` make a bare ``hybrid``."""
    if not isinstance(model, str):
        raise SessrecError(f"model must be a recommender name, got {model!r}")
    if model == "hybrid":
        found = [HYBRID_PARTS[n[: -len(WEIGHT_SUFFIX)]] for n in weighted if n.endswith(WEIGHT_SUFFIX)]
        if len(found) < 2:
            raise SessrecError(
                "model hybrid takes its components from the <part>_weight parameters "
                f"({', '.join(p + WEIGHT_SUFFIX for p in HYBRID_PARTS)}): give two or more, or name them (sr+repeat)"
            )
        return found
    found = model.split("+")
    for part in found:
        if part not in PREFIXES:
            raise SessrecError(
                f"unknown recommender {part!r}; choose one of {', '.join(MODELS)}, "
                "or join components with + (sr+repeat)"
            )
    prefixes = [PREFIXES[part] for part in found]
    if len(set(prefixes)) < len(prefixes):
        raise SessrecError(f"model {model}: a hybrid takes each kind of component once")
    return found


def has_word2vec(model: Any, weighted: Iterable[str] = ()) -> bool:
    return any(part in WORD2VEC_MODELS for part in parts(model, weighted))


def is_reference(config: Mapping[str, Any], mode: str, exclude: str) -> bool:
    """Today's trial: word2vec's query neighbours, item mode, query excluded."""
    return config.get(MODEL, DEFAULT_MODEL) == DEFAULT_MODEL and mode == "item" and exclude == "query"


def _own(part: str, config: Mapping[str, Any]) -> dict[str, Any]:
    prefix, own = PREFIXES[part], {}
    for key in MODELS[part][1]:
        if key in PARAMETERS and part in WORD2VEC_MODELS:
            if key in config:
                own[key] = config[key]
        elif key in SCORING:
            for name in (f"{prefix}_{key}", key):
                if name in config:
                    own[key] = config[name]
                    break
    return own


def recommender(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registry name and parameters a trial's flat config describes (``build``'s arguments)."""
    found = parts(config.get(MODEL, DEFAULT_MODEL), config)
    if len(found) == 1:
        return found[0], _own(found[0], config)
    components = [
        {
            "model": part,
            **_own(part, config),
            "weight": config.get(f"{PREFIXES[part]}{WEIGHT_SUFFIX}", WEIGHT.default),
            "normalise": NORMALISE.get(part, "max"),
        }
        for part in found
    ]
    return "hybrid", {"components": components}


def _takes(found: list[str], name: str) -> list[tuple[str, Param]]:
    """The parts of a model that take a space parameter, with its bounds there."""
    if name in PARAMETERS:
        return [(part, Param("float", 0.0)) for part in found if part in WORD2VEC_MODELS]
    if name.endswith(WEIGHT_SUFFIX):
        prefix = name[: -len(WEIGHT_SUFFIX)]
        return [(part, WEIGHT) for part in found if len(found) > 1 and PREFIXES[part] == prefix]
    out = []
    for part in found:
        spec = MODELS[part][1]
        if name in SCORING and name in spec:
            out.append((part, spec[name]))
        elif name.startswith(f"{PREFIXES[part]}_") and name[len(PREFIXES[part]) + 1 :] in SCORING:
            key = name[len(PREFIXES[part]) + 1 :]
            if key in spec:
                out.append((part, spec[key]))
    return out


def takes(model: Any, name: str, weighted: Iterable[str] = ()) -> bool:
    """Whether a model takes a space parameter (``model`` itself: always)."""
    return name == MODEL or bool(_takes(parts(model, weighted), name))


def check_space(values: Mapping[str, tuple[Any, ...]], example: Mapping[str, Any], mode: str, exclude: str) -> None:
    """A space's recommender rules, as one-line errors: every model valid, every parameter taken by
    some model of the sweep and within that model's bounds, item mode only for models that have one.
    ``values``: each parameter's values (a grid's or choice's; a distribution's two bounds)."""
    if mode == "item" and exclude == "session":
        raise SessrecError("exclude session needs mode session: item mode scores from the query alone")
    models = list(values.get(MODEL, (DEFAULT_MODEL,)))
    found: dict[str, list[str]] = {}
    for model in models:
        try:
            found[model] = parts(model, values)
        except SessrecError as exc:
            raise SessrecError(f"space.model: {exc}") from None
    for name, seen in values.items():
        if name == MODEL:
            continue
        takers = [taker for model in models for taker in _takes(found[model], name)]
        if not takers:
            raise SessrecError(f"space.{name}: no model of this sweep takes it (model: {', '.join(models)})")
        if name in PARAMETERS:
            continue
        for part, param in takers:
            for value in seen:
                try:
                    param.check(f"{part} parameter {name}", value)
                except SessrecError as exc:
                    raise SessrecError(f"space.{name}: {exc}") from None
    for model in models:
        name, params = recommender({**example, MODEL: model})
        try:
            checked = check_params(name, params)
            if mode == "item" and not build(name, checked).item_mode:
                raise SessrecError(
                    f"model {model} scores whole sessions (a repeat part, or last_n above 1): it needs mode session"
                )
        except SessrecError as exc:
            raise SessrecError(f"space.model: {exc}") from None
