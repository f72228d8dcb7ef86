"""Hybrid: a weighted sum of normalised component scores.

In: fitted (or unfitted: :meth:`Hybrid.fit` fits them) component recommenders over one catalogue,
a weight each (finite, >= 0, not all 0) and a normalisation each: "max" divides a session's scores
by their largest absolute value (so each component's best item scores 1), "none" keeps them.
Out: ``sum(weight * normalised scores)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sessrec.core.recommenders.base import Fitted, SessionBatch, SessionScorer, check_choice
from sessrec.core.sessions import Sessions
from sessrec.errors import SessrecError

NORMALISATIONS = ("max", "none")


def check_weight(what: str, weight: Any) -> float:
    """A component's weight as a float; anything but a finite number >= 0 (a bool included) is a
    SessrecError naming ``what``."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise SessrecError(f"hybrid weight of {what} must be a number, got {weight!r}")
    if not math.isfinite(float(weight)) or weight < 0:
        raise SessrecError(f"hybrid weight of {what} must be a finite number >= 0, got {weight}")
    return float(weight)


@dataclass
class Component:
    """One part of a hybrid: a recommender, its weight and its normalisation ("max" or "none")."""

    model: SessionScorer
    weight: float = 1.0
    normalise: str = "max"


def normalised(scores: np.ndarray, how: str) -> np.ndarray:
    """``scores`` (sessions x items) as they are for "none"; for "max", each row divided by its
    largest absolute value (a row of zeros stays zeros)."""
    if how == "none":
        return scores
    top = np.abs(scores).max(axis=1, keepdims=True) if scores.shape[1] else np.zeros((len(scores), 1))
    return scores / np.where(top > 0, top, 1.0)


@dataclass
class Hybrid(Fitted):
    """A weighted sum of its components' normalised scores (see the module); the components share
    one catalogue, and none may itself be a hybrid (a SessrecError)."""

    name: ClassVar[str] = "hybrid"
    ties_possible: ClassVar[bool] = True
    components: list[Component] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.components = [c if isinstance(c, Component) else Component(*c) for c in self.components]
        if not self.components:
            raise SessrecError("a hybrid needs at least one component")
        for position, component in enumerate(self.components):
            what = f"component {position} ({getattr(component.model, 'name', type(component.model).__name__)})"
            if isinstance(component.model, Hybrid):
                raise SessrecError(f"hybrid {what} is itself a hybrid; list its components instead")
            if not hasattr(component.model, "scores") or not hasattr(component.model, "item_mode"):
                raise SessrecError(f"hybrid {what} is not a session recommender")
            component.weight = check_weight(what, component.weight)
            component.normalise = check_choice(f"hybrid normalise of {what}", component.normalise, NORMALISATIONS)
        if not any(c.weight > 0 for c in self.components):
            raise SessrecError("hybrid weights are all 0; give at least one component a positive weight")
        if all(hasattr(c.model, "keys") for c in self.components):
            self._share_catalogue()

    def _share_catalogue(self) -> None:
        keys = self.components[0].model.keys
        for component in self.components[1:]:
            other = component.model.keys
            if len(other) != len(keys) or not np.array_equal(other, keys):
                raise SessrecError(
                    "hybrid components were fitted on different catalogues; fit them on the same sessions"
                )
        self._set_catalogue(keys)

    @property
    def active(self) -> list[Component]:
        """The components with a weight above 0, the only ones scored."""
        return [c for c in self.components if c.weight > 0]

    @property
    def item_mode(self) -> bool:
        """True when every active component has an item mode."""
        return all(c.model.item_mode for c in self.active)

    def fit(self, train: Sessions) -> Hybrid:
        """Fit every component on ``train`` (those of weight 0 too); returns the hybrid."""
        for component in self.components:
            component.model.fit(train)
        self._share_catalogue()
        return self

    def scores(self, batch: SessionBatch) -> np.ndarray:
        """Dense (len(batch) x n_items) float64: the weighted sum of the active components'
        normalised scores."""
        self._check_fitted()
        out = np.zeros((len(batch), self.n_items), dtype=np.float64)
        for component in self.active:
            out += component.weight * normalised(component.model.scores(batch), component.normalise)
        return out

    def params(self) -> dict[str, Any]:
        """``{"model": "hybrid", "components": [...]}``: each component's own parameters plus its
        weight and normalisation."""
        return {
            "model": self.name,
            "components": [{**c.model.params(), "weight": c.weight, "normalise": c.normalise} for c in self.components],
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every component's arrays, each key prefixed with the component's position (``"0/keys"``,
        ...)."""
        self._check_fitted()
        return {
            f"{i}/{key}": value for i, c in enumerate(self.components) for key, value in c.model.to_arrays().items()
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> Hybrid:
        """The fitted hybrid from :meth:`to_arrays` and :meth:`params`, each component rebuilt from
        the arrays under its position."""
        from sessrec.core.recommenders.registry import from_arrays

        components = []
        for i, spec in enumerate(params_components(params)):
            prefix = f"{i}/"
            own = {key[len(prefix) :]: value for key, value in arrays.items() if key.startswith(prefix)}
            model_params = {key: value for key, value in spec.items() if key not in ("weight", "normalise")}
            components.append(
                Component(from_arrays(own, model_params), spec.get("weight", 1.0), spec.get("normalise", "max"))
            )
        return cls(components)


def params_components(params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """The ``components`` list of a hybrid's parameters; anything but a list of mappings is a
    SessrecError."""
    components = params.get("components")
    if not isinstance(components, (list, tuple)) or not all(isinstance(c, Mapping) for c in components):
        raise SessrecError("hybrid parameter components must be a list of mappings, each with a 'model'")
    return components
