"""What a sweep run is asked to do (``SweepRequest``) and what it refuses before it loads data
or starts Ray (``preflight``), for ``tune run`` and its ``--dry-run`` alike (no Ray)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sessrec import layout, storage
from sessrec.errors import SessrecError
from sessrec.settings import check_patience
from sessrec.spec import SweepSpec
from sessrec.sweep.records import check_sweep_id

if TYPE_CHECKING:
    from sessrec.sweep.checkpoints import RecordedTrial


@dataclass(frozen=True)
class SweepRequest:
    """A run of a sweep: where its results go, which sweep, and on which Ray.

    ``sweep_id``: None for a new sweep (an id is made). ``dataset_ref``: overrides the spec's.
    ``address``: a Ray cluster to join, None for an embedded Ray of ``num_cpus`` CPUs.
    ``live``: redraw the progress line in place (a terminal). ``resume_existing``: a new
    sweep's id already in storage with the same spec and dataset is continued, not refused (a
    RayJob's retry re-runs the same command with the same id)."""

    root: str
    sweep_id: str | None = None
    dataset_ref: str | None = None
    address: str | None = None
    num_cpus: int | None = None
    verbose: bool = False
    live: bool = False
    resume_existing: bool = False
    #: More Tune callbacks on the driver (MLflow tracking, ``sessrec.tracking``); picklable.
    callbacks: tuple[Any, ...] = ()
    #: End the run after this many seconds (Tune's time_budget_s), completed with the best so far.
    time_budget_s: float | None = None
    #: End the run once a trial's validation metric reaches this (an objective goal).
    stop_at: float | None = None


def preflight(spec: SweepSpec, request: SweepRequest) -> str:
    """Refuse what a new sweep's run would refuse before it trains: a bad or taken id, no
    dataset. Returns the dataset reference."""
    check_patience()  # SESSREC_*_PATIENCE (sessrec.settings): refused before the id is claimed
    check_sweep_id(request.root, request.sweep_id, request.resume_existing)
    dataset_ref = request.dataset_ref or spec.dataset
    if not dataset_ref:
        raise SessrecError("no dataset: set 'dataset' in the spec or pass --dataset")
    return dataset_ref


def check_trials_fit(spec: SweepSpec, embedded_cpus: int) -> None:
    """An embedded Ray never grows: a trial that needs more CPUs than it has would wait forever
    (a cluster's autoscaler may add nodes, so there Tune waits and says why)."""
    if spec.cpus_per_trial > embedded_cpus:
        raise SessrecError(
            f"resources.cpus_per_trial is {spec.cpus_per_trial}, but the embedded Ray has {embedded_cpus} CPUs "
            "(--num-cpus): no trial could start"
        )


def check_recorded_configs(spec: SweepSpec, recorded: Mapping[int, RecordedTrial]) -> None:
    """Before Ray starts: every checkpoint record's config holds the spec's parameters, and no
    other (a trial would otherwise fail in Ray, or a finished one reach the best, with no file named)."""
    expected = {"epochs", *spec.space}
    for trial in recorded.values():
        config = set(trial.config)
        if config != expected:
            uri = storage.join(trial.checkpoint, layout.TRIAL_FILE)
            unknown, missing = sorted(config - expected), sorted(expected - config)
            what = "; ".join(
                part
                for part in (
                    f"parameter(s) not in the spec: {', '.join(unknown)}" if unknown else "",
                    f"missing: {', '.join(missing)}" if missing else "",
                )
                if part
            )
            raise SessrecError(
                f"{uri} does not match the sweep's spec ({what}); delete its checkpoint folder to "
                "resume from the one before"
            )
