"""How a sweep may end early by design: a wall-time budget (Tune's ``time_budget_s``) or an
objective goal on the spec's metric (Katib's ``objectiveGoal``). A sweep so ended is completed,
its best so far written, and its manifest says why (``"ended"``)."""

from __future__ import annotations

import math
from typing import Any

from ray import tune

#: The manifest's ``ended`` for each way.
TIME_BUDGET = "time budget"
GOAL_REACHED = "goal reached"


class GoalStopper(tune.Stopper):
    """Stops every trial once one reports ``metric`` at or above ``goal`` (validation)."""

    def __init__(self, metric: str, goal: float) -> None:
        self.metric, self.goal, self.reached = metric, goal, False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value) and value >= self.goal:
            self.reached = True
        return self.reached

    def stop_all(self) -> bool:
        return self.reached


def ended_by(
    results: Any, metric: str, stop_at: float | None, time_budget_s: float | None, elapsed_s: float
) -> str | None:
    """Why a run that left trials unfinished or unstarted ended by design, or None (it was
    interrupted). Read from the results, so it holds whatever copy of the stopper Tune used."""
    if stop_at is not None:
        for result in results:
            value = (result.metrics or {}).get(metric)
            if isinstance(value, (int, float)) and value >= stop_at:
                return GOAL_REACHED
    if time_budget_s is not None and elapsed_s >= time_budget_s * 0.98:
        return TIME_BUDGET
    return None
