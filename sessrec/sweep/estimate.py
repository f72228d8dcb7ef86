"""Time and epoch arithmetic of a sweep (no Ray): ASHA's rungs, the time a running sweep has
left, and the dry run's estimate from one epoch measured on the data.

The rung rule is defined here once: the scheduler (``search``), the progress line and the
benchmarks use it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from sessrec.core.metrics import evaluate
from sessrec.core.word2vec import PARAMETERS, Word2VecConfig, embeddings_of, new_model, train_epoch
from sessrec.pipeline import Dataset, split_dataset
from sessrec.spec import SweepSpec


def rung_epoch(milestone: float) -> int:
    """The epoch at which a trial meets an ASHA milestone: ASHA records the first result at or
    past it (a milestone may fall between epochs, with reduction 2.5)."""
    return math.ceil(milestone)


def asha_rungs(grace: int, reduction: float, max_t: int) -> list[int]:
    """The epochs at which Ray's ASHA (one bracket) judges a trial, as its bracket makes them."""
    count = int(np.log(max_t / grace) / np.log(reduction) + 1)
    return [rung_epoch(grace * reduction**k) for k in range(count)]


def first_rung(spec: SweepSpec) -> int:
    """The epochs every trial trains at least: ASHA's first rung, or a whole trial without ASHA."""
    return min(spec.grace_period, spec.max_t) if spec.scheduler == "asha" else round(spec.planned_epochs())


def time_left(
    elapsed: float, trained_here: int, epochs_done: float, epochs_expected: float, unstarted: int, first_rung: int
) -> float:
    """Seconds a sweep has left, from the epochs it has trained in this run so far (the pace)
    and the epochs it is expected to train in all (``SweepSpec.expected_epochs``: with ASHA most
    trials stop at an early rung, so counting trials would put the first, unstopped ones' time
    on every trial). A sweep that trained more than expected still has each unstarted trial's
    first rung to go."""
    if not trained_here:
        return math.nan
    to_train = max(epochs_expected - epochs_done, unstarted * first_rung)
    return elapsed / trained_here * to_train


#: Epochs the dry run trains and times.
MEASURED_EPOCHS = 3
#: Seconds an embedded Ray takes to start (a loaded 2-CPU machine: the high end).
RAY_START_S = (3.0, 25.0)
#: Tune's own cost per trial (actor start or reuse, placement, final checkpoint) and per epoch
#: (a report and an array checkpoint), low and high.
TRIAL_OVERHEAD_S = (0.2, 3.0)
EPOCH_OVERHEAD_S = (0.02, 0.4)
#: A trial without word2vec: its count parts fitted once (under 5 s on the real data) and one
#: evaluation, low and high.
COUNT_TRIAL_S = (0.2, 5.0)
#: Trials running side by side slow each other (memory bandwidth, Ray's own processes).
SHARED_CPU_SLOWDOWN = 1.6


def dry_run(spec: SweepSpec, dataset: Dataset, cpus: int, embedded: bool = True) -> dict[str, Any]:
    """Trial and epoch counts, and a wall-time estimate with its likely range, from a few epochs
    measured on this data. An estimate, not a bound: a busy machine runs slower."""
    share = spec.word2vec_share()
    times = _epoch_seconds(spec, dataset) if share else [0.0]
    epoch_seconds = float(np.median(times))
    # Count-only trials train no epochs: only the word2vec trials' epochs are counted.
    worst, expected = (epochs * share for epochs in spec.expected_epochs())
    parallel = spec.parallel_trials(cpus)
    trials = spec.num_trials
    count_only = round(trials * (1 - share))
    start_low, start_high = RAY_START_S if embedded else (0.0, RAY_START_S[0])
    low = (
        start_low
        + (expected * (min(times) + EPOCH_OVERHEAD_S[0]) + trials * TRIAL_OVERHEAD_S[0] + count_only * COUNT_TRIAL_S[0])
        / parallel
    )
    contention = SHARED_CPU_SLOWDOWN if parallel > 1 else 1.0
    high = (
        start_high
        + (
            worst * (max(times) * contention + EPOCH_OVERHEAD_S[1])
            + trials * TRIAL_OVERHEAD_S[1]
            + count_only * COUNT_TRIAL_S[1]
        )
        / parallel
    )
    return {
        # A range, not a bound: the measured epochs' spread, Ray's start-up, Tune's per-trial and
        # per-epoch costs (checkpoints, reports) and trials slowing each other on shared CPUs.
        "estimated_wall_seconds_range": [round(low, 1), round(high, 1)],
        "measured_epoch_seconds_range": [round(min(times), 4), round(max(times), 4)],
        "trials": spec.num_trials,
        "trials_without_word2vec": count_only,
        "epochs_worst_case": worst,
        "epochs_expected_with_asha": round(expected, 1),
        "measured_epoch_seconds": round(epoch_seconds, 4),
        "parallel_trials": parallel,
        "estimated_wall_seconds": round(expected * epoch_seconds / parallel, 1),
        "estimated_wall_seconds_worst_case": round(worst * epoch_seconds / parallel, 1),
        "warning": spec.order_warning(parallel),
    }


def _epoch_seconds(spec: SweepSpec, dataset: Dataset) -> list[float]:
    """Seconds of a few word2vec epochs and their evaluations, at the middle of the space."""
    split = split_dataset(dataset, spec.split_seed, spec.split_n)
    sentences = split.train.to_lists()
    config = Word2VecConfig.from_dict({**_middle_config(spec), "workers": spec.cpus_per_trial})
    model = new_model(config, sentences)
    times = []
    for epoch in range(MEASURED_EPOCHS):  # the spread of a few epochs, not one lucky or unlucky one
        started = time.perf_counter()
        train_epoch(model, sentences, config, epoch)
        evaluate(embeddings_of(model), split.validation.queries, split.validation.targets, spec.k)
        times.append(time.perf_counter() - started)
    return times


def _middle_config(spec: SweepSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"epochs": spec.max_t}
    for name, domain in spec.space.items():
        if name not in PARAMETERS:  # a recommender's parameter: no part of word2vec's epoch
            continue
        if domain.values:
            config[name] = sorted(domain.values)[len(domain.values) // 2]
        else:
            low, high = domain.bounds()
            config[name] = math.sqrt(low * high) if domain.kind == "loguniform" else (low + high) / 2
            if domain.kind == "randint":
                config[name] = int(config[name])
    return config
