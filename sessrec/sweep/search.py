"""Which trials Tune runs and which it stops: the search space, the searcher (a spec's plan, or
Optuna's suggestions) and ASHA made resumable. Imports Ray Tune.

A resume rebuilds both from the spec and the trials' checkpoints, never from Tune's pickled
state: the searcher queues the points an earlier run left, and ``ResumableASHA`` starts its rungs
with what that run recorded.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from sessrec.errors import SessrecError
from sessrec.spec import SweepSpec
from sessrec.sweep.checkpoints import RecordedTrial
from sessrec.sweep.estimate import rung_epoch
from sessrec.sweep.trials import POINT


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """Optuna's search space as Tune domains (grid and random sweeps hand Tune their plan instead)."""
    space: dict[str, Any] = {}
    for name, domain in spec.space.items():
        if domain.kind == "fixed":
            space[name] = domain.values[0]
        elif domain.values:
            space[name] = tune.choice(list(domain.values))
        elif domain.kind == "randint":
            space[name] = tune.randint(int(domain.low), int(domain.high))
        else:
            space[name] = (tune.loguniform if domain.kind == "loguniform" else tune.uniform)(domain.low, domain.high)
    space.setdefault("epochs", spec.max_t)
    return space


class SweepSearcher(Searcher):
    """The trials Tune runs, in order: ``queued`` (point, config) first; then, for Optuna,
    ``fresh`` new points it suggests, learning from ``kept`` (trials an earlier run finished) and
    from each trial as it completes."""

    def __init__(
        self,
        spec: SweepSpec,
        queued: list[tuple[int, dict[str, Any]]],
        kept: list[RecordedTrial],
        fresh: int,
        optuna: Searcher | None,
    ) -> None:
        super().__init__(metric=spec.metric, mode="max")
        self.spec, self.kept = spec, kept
        self.optuna: Any = optuna
        self.searched = [name for name, domain in spec.space.items() if domain.kind != "fixed"]
        first_new_point = max([point for point, _ in queued] + [trial.point for trial in kept], default=-1) + 1
        self.queue, self.fresh, self.next_point = list(queued), fresh, first_new_point
        self.suggested_by_optuna: set[str] = set()
        self.continued: dict[str, dict[str, Any]] = {}  # trial id -> config (Optuna learns it when done)

    def _searched_part(self, config: dict[str, Any]) -> dict[str, Any]:
        return {name: config[name] for name in self.searched}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **tune_spec: Any) -> bool:
        if self.optuna is not None:
            self.optuna.set_search_properties(metric, mode, config, **tune_spec)
            for trial in self.kept:
                self.optuna.add_evaluated_point(
                    self._searched_part(trial.config), float(trial.history[-1][self.spec.metric])
                )
        return True

    def suggest(self, trial_id: str) -> Any:  # a config, None (wait) or Searcher.FINISHED
        if self.queue:
            point, config = self.queue.pop(0)
            self.continued[trial_id] = config
            return {POINT: point, **config}
        if self.fresh <= 0:
            return Searcher.FINISHED
        config = self.optuna.suggest(trial_id)
        if not isinstance(config, dict):  # None (wait) or FINISHED
            return config
        self.fresh -= 1
        self.suggested_by_optuna.add(trial_id)
        self.next_point += 1
        return {POINT: self.next_point - 1, **config}

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a resume rebuilds the searcher from the spec and the checkpoints."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.suggested_by_optuna:
            self.optuna.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        metric = self.spec.metric
        if trial_id in self.suggested_by_optuna:
            self.optuna.on_trial_complete(trial_id, result, error)
        elif self.optuna is not None and trial_id in self.continued and result and metric in result and not error:
            self.optuna.add_evaluated_point(self._searched_part(self.continued[trial_id]), float(result[metric]))


def searcher(
    spec: SweepSpec, queued: list[tuple[int, dict[str, Any]]], kept: list[RecordedTrial], fresh: int, verbose: bool
) -> Searcher:
    """A ``SweepSearcher``, with Optuna for ``search.method optuna``, under the spec's
    concurrency limit."""
    optuna = None
    if spec.method == "optuna":
        try:
            import optuna as _optuna  # (the extra must be installed)
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise SessrecError("search.method optuna needs the optuna extra: pip install 'sessrec[optuna]'") from None
        if not verbose:  # "A new study created in memory ..."
            _optuna.logging.set_verbosity(_optuna.logging.WARNING)
        optuna = OptunaSearch(seed=spec.search_seed)
    found = SweepSearcher(spec, queued, kept, fresh, optuna)
    return ConcurrencyLimiter(found, spec.max_concurrent_trials) if spec.max_concurrent_trials else found


class ResumableASHA(ASHAScheduler):
    """ASHA on the epoch count whose rungs start with what earlier runs recorded: a finished
    trial's value at every rung it reached, a continued one's at the rungs before its last
    epoch (it reports that epoch again, and is decided there).

    It fills the rungs of ASHA's bracket (``_brackets``, ``_Bracket._rungs``: Tune internals,
    as ASHA has no API to seed them) and nothing else of Tune's private state."""

    def __init__(self, spec: SweepSpec, recorded: dict[int, RecordedTrial], continued: set[int]) -> None:
        super().__init__(
            time_attr="epoch", max_t=spec.max_t, grace_period=spec.grace_period, reduction_factor=spec.reduction_factor
        )
        (bracket,) = self._brackets  # Tune internals: one bracket (Tune's default)
        for trial in recorded.values():
            last = trial.epochs - 1 if trial.point in continued else trial.epochs
            values: dict[int, Any] = {int(entry["epoch"]): entry.get(spec.metric) for entry in trial.history}
            for milestone, rung in bracket._rungs:  # Tune internals: (milestone, trial id -> value) per rung
                epoch = rung_epoch(milestone)
                if epoch <= last and values.get(epoch) is not None:
                    rung[_point_key(trial.point)] = float(values[epoch])

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        # A continued trial's earlier values become its own (ASHA keys them by trial id).
        key = _point_key(int(trial.config[POINT]))
        for _, rung in self._brackets[0]._rungs:  # Tune internals, as in __init__
            if key in rung:
                rung[trial.trial_id] = rung.pop(key)


def scheduler(spec: SweepSpec, recorded: dict[int, RecordedTrial], continued: set[int]) -> TrialScheduler:
    """FIFO, or ``ResumableASHA``."""
    if spec.scheduler == "fifo":
        return FIFOScheduler()
    return ResumableASHA(spec, recorded, continued)


def _point_key(point: int) -> str:
    return f"recorded-point-{point}"
