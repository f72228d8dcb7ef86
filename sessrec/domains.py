"""One parameter's search domain in a sweep spec: the forms a spec's ``space`` entry takes
(a grid, ``range``, ``linspace``, ``choice``, ``uniform``, ``loguniform``, ``randint``, one
value), their checks against the parameter's type and bounds, and a draw from each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sessrec import recommender_space
from sessrec.core.word2vec import PARAMETERS
from sessrec.errors import SessrecError

#: Trials in one sweep at most: the plan is made up front, and Tune's driver holds every trial.
MAX_TRIALS = 100_000


@dataclass(frozen=True)
class Domain:
    """One parameter's search domain: ``values`` for a grid/choice, or a distribution."""

    kind: str  # fixed | grid | uniform | loguniform | randint | choice
    values: tuple = ()
    low: float = 0.0
    high: float = 0.0

    @property
    def grid_size(self) -> int:
        """The points this domain adds to a grid: its values for a grid, else 1."""
        return len(self.values) if self.kind == "grid" else 1

    def sample(self, rng: np.random.Generator) -> Any:
        """One value: a grid or choice gives one of its values, a distribution a draw."""
        if self.kind == "fixed":
            return self.values[0]
        if self.values:
            return self.values[int(rng.integers(len(self.values)))]
        if self.kind == "randint":
            return int(rng.integers(int(self.low), int(self.high)))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def bounds(self) -> tuple[float, float]:
        """The lowest and highest value this domain can give."""
        if self.kind in ("uniform", "loguniform", "randint"):
            return self.low, (self.high - 1 if self.kind == "randint" else self.high)
        return min(self.values), max(self.values)


def parse_domain(name: str, raw: Any) -> Domain:
    """The domain of parameter NAME from its spec value ``raw``: a list (grid), ``range``,
    ``linspace``, ``choice``, a distribution (``uniform``, ``loguniform``, ``randint``) or one
    value (fixed), checked against the parameter's type and bounds; else a one-line
    ``SessrecError`` naming ``space.NAME``."""
    kind, low, high = PARAMETERS[name] if name in PARAMETERS else recommender_space.bounds(name)
    if isinstance(raw, list):
        domain = Domain("grid", tuple(raw))
    elif isinstance(raw, dict):
        ((form, args),) = raw.items()
        if form == "range":
            if len(args) == 3 and args[2] == 0:
                raise SessrecError(f"space.{name}: range needs a step other than 0")
            values = range(*args)
            if not values:
                raise SessrecError(f"space.{name}: range{tuple(args)} is empty")
            _check_grid_size(name, len(values))  # before the values are made: range(1, 10**11) would fill the memory
            domain = Domain("grid", tuple(values))
        elif form == "linspace":
            start, stop, num = args
            if num < 1 or num != int(num):
                raise SessrecError(f"space.{name}: linspace needs a whole number of points >= 1")
            _check_grid_size(name, int(num))
            # Rounded so 0.2-steps give 0.2, not 0.20000000000000007, in configs and reports.
            domain = Domain("grid", tuple(round(float(v), 10) for v in np.linspace(start, stop, int(num))))
        elif form == "choice":
            domain = Domain("choice", tuple(args))
        else:
            lo, hi = args
            if not lo < hi:
                raise SessrecError(f"space.{name}: {form} needs low < high, got {lo}, {hi}")
            if form == "loguniform" and lo <= 0:
                raise SessrecError(f"space.{name}: loguniform needs low > 0, got {lo}")
            domain = Domain(form, low=lo, high=hi)
    else:
        domain = Domain("fixed", (raw,))
    names = [v for v in domain.values if isinstance(v, str)]
    if kind is str:
        if domain.kind not in ("grid", "choice", "fixed") or len(names) < len(domain.values):
            raise SessrecError(f"space.{name}: takes a name, a list of names or a choice of names")
        return domain
    if names:
        raise SessrecError(f"space.{name}: values must be numbers, got {names[0]!r}")
    if kind is int and domain.kind in ("grid", "choice", "fixed") and any(v != int(v) for v in domain.values):
        raise SessrecError(f"space.{name}: values must be integers")
    if kind is int and domain.kind in ("uniform", "loguniform"):
        raise SessrecError(f"space.{name}: an integer parameter takes a list, range, randint or choice")
    lo_seen, hi_seen = domain.bounds()
    if lo_seen < low or hi_seen > high:
        raise SessrecError(f"space.{name}: values must lie in [{low}, {high}], got [{lo_seen}, {hi_seen}]")
    if kind is int and domain.values:
        domain = Domain(domain.kind, tuple(int(v) for v in domain.values))
    elif domain.values:
        domain = Domain(domain.kind, tuple(float(v) for v in domain.values))
    return domain


def _check_grid_size(name: str, size: int) -> None:
    if size > MAX_TRIALS:
        raise SessrecError(f"space.{name}: {size:,} values, and a sweep has at most {MAX_TRIALS:,} trials")
