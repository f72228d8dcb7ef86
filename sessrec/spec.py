"""The sweep spec: one YAML schema for the CLI, the in-cluster job and the Helm chart.

The JSON Schema below is the single definition of the spec's shape; the Helm chart's
``values.schema.json`` embeds it under ``sweep`` (a test keeps the two identical). Rules a
schema cannot say (ranges that produce nothing, ASHA settings against the epoch budget) are
checked in ``SweepSpec.from_dict``.

Over 400 lines: the schema, its parsing and the rules it cannot say are one definition; one
parameter's domain (its forms, checks and draws) lives apart in ``sessrec.domains``, the
recommender parameters in ``sessrec.recommender_space``.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from sessrec import recommender_space, yaml_text
from sessrec.core.word2vec import PARAMETERS, Word2VecConfig
from sessrec.domains import MAX_TRIALS, Domain, parse_domain
from sessrec.errors import NotFoundError, SessrecError

METRICS = ("recall_at_k", "mrr_at_k")
#: K of Recall@K and MRR@K: the default, and the most a spec, a command or a served request takes.
DEFAULT_K, MAX_K = 10, 1000
#: Pairs in each of test and validation, by default.
DEFAULT_PAIRS = 1000

_number = {"type": "number"}
#: A value: a number, or a name (``model``, ``weighting``); which one a parameter takes is checked in Python.
_value = {"type": ["number", "string"]}
_pair = {"type": "array", "items": _number, "minItems": 2, "maxItems": 2}
PARAMETER_SCHEMA: dict[str, Any] = {
    "description": "A fixed value, a grid list, or one of range/linspace/uniform/loguniform/randint/choice.",
    "oneOf": [
        _value,
        {"type": "array", "items": _value, "minItems": 1},
        {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
                "linspace": {"type": "array", "items": _number, "minItems": 3, "maxItems": 3},
                "uniform": _pair,
                "loguniform": _pair,
                "randint": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                "choice": {"type": "array", "items": _value, "minItems": 1},
            },
        },
    ],
}

SWEEP_SPEC_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "sessrec sweep spec",
    "type": "object",
    "additionalProperties": False,
    "required": ["space"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$",
            "maxLength": 24,
            "description": "Short DNS-1035 name; sweep ids start with it.",
        },
        "dataset": {
            "type": "string",
            "minLength": 1,
            "description": "Dataset name in storage, or a sessions file URI.",
        },
        "split": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "seed": {"type": "integer", "minimum": 0},
                "n": {"type": "integer", "minimum": 1, "description": "Pairs in each of test and validation."},
            },
        },
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
        "metric": {"enum": list(METRICS)},
        "mode": {
            "enum": list(recommender_space.MODES),
            "description": "item: from the query alone (the protocol's figure); session: from the session so far.",
        },
        "exclude": {
            "enum": list(recommender_space.EXCLUDES),
            "description": "Items never recommended: the query, or every item of the session.",
        },
        "search": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "method": {"enum": ["grid", "random", "optuna"]},
                "num_samples": {"type": "integer", "minimum": 1},
                "seed": {"type": "integer", "minimum": 0},
                "shuffle": {
                    "type": "boolean",
                    "description": "grid only: run the grid's points in a seeded random order, so that ASHA's "
                    "first rungs compare a sample of the whole grid rather than its first corner",
                },
            },
        },
        "space": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": dict.fromkeys(recommender_space.SPACE_NAMES, PARAMETER_SCHEMA),
        },
        "scheduler": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["asha", "fifo"]},
                "max_t": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": PARAMETERS["epochs"][2],
                    "description": "Epoch budget of a trial.",
                },
                "grace_period": {"type": "integer", "minimum": 1, "maximum": PARAMETERS["epochs"][2]},
                "reduction_factor": {"type": "number", "exclusiveMinimum": 1},
            },
        },
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cpus_per_trial": {"type": "integer", "minimum": 1},
                "max_concurrent_trials": {"type": "integer", "minimum": 0},
                "max_failures": {"type": "integer", "minimum": 0},
            },
        },
    },
}

_DEFAULTS: dict[str, Any] = {
    "name": "sweep",
    "split": {"seed": 0, "n": DEFAULT_PAIRS},
    "k": DEFAULT_K,
    "metric": "recall_at_k",
    "search": {"method": "grid", "num_samples": 1, "seed": 0, "shuffle": False},
    "scheduler": {"type": "asha", "max_t": 100, "grace_period": 10, "reduction_factor": 3},
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 0, "max_failures": 3},
}


def _check_finite(value: Any, where: str) -> None:
    """YAML's .nan and .inf pass a schema's number type, and every range check (NaN compares false)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SessrecError(f"invalid sweep spec at {where or 'spec'}: {value} is not a finite number")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        _check_finite(item, f"{where}.{key}" if where else str(key))


def _merge_defaults(raw: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(_DEFAULTS)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "space":
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class SweepSpec:
    """A parsed and checked sweep spec (make one with :meth:`from_dict` or :func:`parse_spec`);
    ``raw`` is the spec with its defaults filled in."""

    name: str
    dataset: str | None
    split_seed: int
    split_n: int
    k: int
    metric: str
    method: str
    num_samples: int
    search_seed: int
    shuffle: bool
    space: dict[str, Domain]
    scheduler: str
    max_t: int
    grace_period: int
    reduction_factor: float
    cpus_per_trial: int
    max_concurrent_trials: int
    max_failures: int
    raw: dict[str, Any] = field(repr=False, compare=False)
    #: How trials are scored: from the query ("item", today's) or the session so far, and what is never recommended.
    mode: str = "item"
    exclude: str = "query"

    @classmethod
    def from_dict(cls, raw: Any) -> SweepSpec:
        """The spec of a YAML mapping, checked against the schema and the rules it cannot say,
        defaults filled in; anything invalid is a one-line SessrecError naming where."""
        if not isinstance(raw, dict):
            raise SessrecError("a sweep spec must be a YAML mapping")
        error = jsonschema.exceptions.best_match(_SPEC_VALIDATOR.iter_errors(raw))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "spec"
            raise SessrecError(f"invalid sweep spec at {where}: {_short(error)}")
        _check_finite(raw, "")
        merged = _merge_defaults(raw)
        space = {name: parse_domain(name, value) for name, value in merged["space"].items()}
        sched, search, res = merged["scheduler"], merged["search"], merged["resources"]
        spec = cls(
            name=merged["name"],
            dataset=merged.get("dataset"),
            split_seed=merged["split"]["seed"],
            split_n=merged["split"]["n"],
            k=merged["k"],
            metric=merged["metric"],
            method=search["method"],
            num_samples=search["num_samples"],
            search_seed=search["seed"],
            shuffle=search["shuffle"],
            space=space,
            scheduler=sched["type"],
            max_t=sched["max_t"],
            grace_period=sched["grace_period"],
            reduction_factor=float(sched["reduction_factor"]),
            cpus_per_trial=res["cpus_per_trial"],
            max_concurrent_trials=res["max_concurrent_trials"],
            max_failures=res["max_failures"],
            raw=merged,
            mode=merged.get("mode", "item"),
            exclude=merged.get("exclude", "query"),
        )
        spec._check_rules()
        return spec

    def _check_rules(self) -> None:
        if self.num_trials > MAX_TRIALS:
            raise SessrecError(
                f"the sweep has {self.num_trials:,} trials, more than {MAX_TRIALS:,}: narrow the space or num_samples"
            )
        if self.shuffle and self.method != "grid":
            raise SessrecError(f"search.shuffle orders a grid; search.method {self.method} samples in its own order")
        if self.scheduler == "asha" and self.grace_period > self.max_t:
            raise SessrecError(
                f"scheduler.grace_period ({self.grace_period}) exceeds the epoch budget scheduler.max_t ({self.max_t})"
            )
        epochs = self.space.get("epochs")
        if epochs is not None and epochs.bounds()[1] > self.max_t:
            raise SessrecError(f"space.epochs reaches {epochs.bounds()[1]}, beyond scheduler.max_t ({self.max_t})")
        alpha, min_alpha = self.space.get("alpha"), self.space.get("min_alpha")
        lowest_alpha = alpha.bounds()[0] if alpha else Word2VecConfig.alpha
        highest_min_alpha = min_alpha.bounds()[1] if min_alpha else Word2VecConfig.min_alpha
        if lowest_alpha < highest_min_alpha:
            raise SessrecError(
                f"space.alpha reaches {lowest_alpha}, below min_alpha {highest_min_alpha}: the learning rate would grow"
            )
        example = self.example_config()
        Word2VecConfig.from_dict({name: value for name, value in example.items() if name in PARAMETERS})
        values = {name: d.values if d.values else d.bounds() for name, d in self.space.items()}
        recommender_space.check_space(values, example, self.mode, self.exclude)

    def example_config(self) -> dict[str, Any]:
        """The first point of the space, to validate that a trial's config is accepted."""
        config: dict[str, Any] = {"epochs": self.max_t}
        for name, domain in self.space.items():
            config[name] = domain.values[0] if domain.values else domain.bounds()[0]
        return config

    @property
    def uses_recommenders(self) -> bool:
        """Scored by session recommenders (a model in the space, or session mode), not today's word2vec path alone."""
        return recommender_space.MODEL in self.space or self.mode != "item" or self.exclude != "query"

    @property
    def grid_size(self) -> int:
        """The grid's points: the product of every domain's grid size (1 for a domain that is not a
        grid)."""
        return math.prod(d.grid_size for d in self.space.values())

    def plan(self) -> list[dict[str, Any]]:
        """Every trial's configuration, in the order they start, the same each time it is made
        (a resume makes it again to know which trials are left). A grid is walked with the last
        parameter fastest (in a seeded random order with ``shuffle``: an ordered grid shows
        ASHA's first rungs only its first corner) and its other domains are drawn per point;
        random search draws every parameter. Optuna picks each trial from the results so far,
        so it has no plan."""
        if self.method == "optuna":
            raise SessrecError("an optuna sweep has no plan: it chooses each trial from the results so far")
        rng = np.random.default_rng(self.search_seed)
        names = list(self.space)
        if self.method == "grid":
            grid_names = [name for name in names if self.space[name].kind == "grid"]
            points = [
                dict(zip(grid_names, values))
                for values in itertools.product(*(self.space[n].values for n in grid_names))
            ]
            points = points * self.num_samples
        else:
            points = [{} for _ in range(self.num_samples)]
        configs = [
            {
                "epochs": self.max_t,
                **{name: point[name] if name in point else self.space[name].sample(rng) for name in names},
            }
            for point in points
        ]
        if self.shuffle:
            random.Random(self.search_seed).shuffle(configs)
        return configs

    def parallel_trials(self, cpus: int) -> int:
        """Trials that run at once on this many CPUs."""
        return max(1, min(cpus // self.cpus_per_trial, self.max_concurrent_trials or cpus))

    def order_warning(self, parallel_trials: int) -> str | None:
        """A warning for ASHA over a grid walked in order with more trials than run at once:
        asynchronous ASHA compares a trial only with those that reached its rung before it, so
        its first rungs hold the grid's first corner only (the seed's grid in order was still at
        window 1 after 15 minutes, a third of those trials promoted to the full budget)."""
        if self.scheduler != "asha" or self.method != "grid" or self.shuffle or self.num_trials <= parallel_trials:
            return None
        return (
            f"ASHA will judge the first trials of this {self.num_trials}-point grid against its first corner only "
            f"({parallel_trials} run at once, in grid order); "
            "set search.shuffle: true to run it in a seeded random order"
        )

    @property
    def num_trials(self) -> int:
        """Trials the search creates: the grid times num_samples, or num_samples for random/optuna."""
        if self.method == "grid":
            return self.grid_size * self.num_samples
        return self.num_samples

    def planned_epochs(self) -> float:
        """Epochs a trial trains when nothing stops it (the mean over the epochs domain)."""
        epochs = self.space.get("epochs")
        if epochs is None:
            return float(self.max_t)
        if epochs.values:
            return float(np.mean(epochs.values))
        low, high = epochs.bounds()
        return (low + high) / 2

    def word2vec_share(self) -> float:
        """The share of trials that train word2vec: every trial without a ``model`` in the space,
        else the share of its values (a grid's points, a choice's draws) with a word2vec part."""
        domain = self.space.get(recommender_space.MODEL)
        if domain is None:
            return 1.0
        names = tuple(self.space)
        return sum(recommender_space.has_word2vec(value, names) for value in domain.values) / len(domain.values)

    def expected_epochs(self) -> tuple[float, float]:
        """(worst case, ASHA-expected) epochs over the whole sweep.

        ASHA lets every trial reach the first rung (grace period) and about 1/eta of those
        reach each next rung (grace * eta^i), up to the epoch budget.
        """
        planned = self.planned_epochs()
        worst = self.num_trials * planned
        if self.scheduler != "asha":
            return worst, worst
        per_trial, rung, survivors = 0.0, float(self.grace_period), 1.0
        previous = 0.0
        while previous < planned:
            stop = min(rung, planned)
            per_trial += survivors * (stop - previous)
            previous = stop
            survivors /= self.reduction_factor
            rung *= self.reduction_factor
        return worst, self.num_trials * per_trial

    def to_yaml(self) -> str:
        """The spec with its defaults filled in (``raw``), as YAML."""
        return yaml.safe_dump(self.raw, sort_keys=False)


# An integer is an int: JSON Schema would take 10.0 too, and a float would reach Ray and the split.
_SCHEMA_VALIDATOR = jsonschema.validators.validator_for(SWEEP_SPEC_SCHEMA)
_SPEC_VALIDATOR = jsonschema.validators.extend(
    _SCHEMA_VALIDATOR,
    type_checker=_SCHEMA_VALIDATOR.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)(SWEEP_SPEC_SCHEMA)


def _short(exc: jsonschema.ValidationError) -> str:
    message = exc.message
    return message if len(message) <= 200 else message[:197] + "..."


def parse_spec(text: str, source: str = "spec") -> SweepSpec:
    """The spec in YAML ``text``; invalid YAML or an invalid spec is a SessrecError that starts with
    ``source``."""
    try:
        raw = yaml_text.load(text)
    except yaml.YAMLError as exc:
        raise SessrecError(f"{source} is not valid YAML: {yaml_text.error_text(exc)}") from None
    try:
        return SweepSpec.from_dict(raw)
    except SessrecError as exc:
        raise SessrecError(f"{source}: {exc}") from None


BUILTIN_SPECS = ("tiny", "seed3d", "reference", "retail", "session")


def builtin_spec_text(name: str) -> str:
    """The YAML text of the built-in spec ``name`` (one of :data:`BUILTIN_SPECS`)."""
    return resources.files("sessrec.specs").joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def read_spec(ref: str) -> tuple[str, SweepSpec]:
    """A spec file, or the name of a built-in spec: its text (verbatim) and the parsed spec."""
    path = Path(ref)
    if ref in BUILTIN_SPECS and not path.exists():
        text = builtin_spec_text(ref)
        return text, parse_spec(text, f"built-in spec {ref}")
    try:
        text = yaml_text.read_file(path, "spec")  # bounded; a device or FIFO is refused
    except NotFoundError:
        raise SessrecError(f"no spec file {ref!r} (built-in specs: {', '.join(BUILTIN_SPECS)})") from None
    return text, parse_spec(text, ref)


def load_spec(ref: str, num_samples: int | None = None, overrides: list[str] | None = None) -> SweepSpec:
    """A spec file or built-in spec, with the command line's overrides (``--set PATH=VALUE``)."""
    spec = read_spec(ref)[1]
    if num_samples is not None:
        spec = SweepSpec.from_dict(dict(spec.raw, search={**spec.raw["search"], "num_samples": num_samples}))
    return with_overrides(spec, overrides or [])


def with_overrides(spec: SweepSpec, pairs: list[str]) -> SweepSpec:
    """``spec`` with each ``PATH=VALUE`` applied (``scheduler.max_t=10``, ``space.window=[3,7]``):
    VALUE is YAML, PATH a dotted path the schema knows; the result is validated like a file."""
    if not pairs:
        return spec
    raw = copy.deepcopy(spec.raw)
    for pair in pairs:
        path, sep, text = pair.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise SessrecError(f"--set {pair!r}: expected PATH=VALUE, e.g. scheduler.max_t=10")
        try:
            value = yaml_text.load(text)
        except yaml.YAMLError as exc:
            raise SessrecError(f"--set {path}: the value is not valid YAML: {yaml_text.error_text(exc)}") from None
        schema: Any = SWEEP_SPEC_SCHEMA
        node = raw
        for depth, key in enumerate(keys):
            where = ".".join(keys[: depth + 1])
            known = schema.get("properties") if isinstance(schema, dict) else None
            if known is not None and key not in known and schema.get("additionalProperties") is False:
                raise SessrecError(f"--set {path}: unknown spec field {where!r} (known here: {', '.join(known)})")
            if depth == len(keys) - 1:
                node[key] = value
                break
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise SessrecError(f"--set {path}: {where} is a value, not a section")
            node, schema = child, (known or {}).get(key, {})
    try:
        return SweepSpec.from_dict(raw)
    except SessrecError as exc:
        raise SessrecError(f"--set: {exc}") from None
