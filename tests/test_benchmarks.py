"""The benchmarks' own arithmetic: the scheduling model behind the scaling projection and the
reader behind time to quality (their timings are taken by hand, never here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.catalogue import run_measured
from benchmarks.scaling import asha_epochs, driver_costs, makespan, project
from benchmarks.seed_sweep import asha_rungs, replay_asha
from benchmarks.time_to_quality import best_so_far, first_reached

COSTS = {
    "epoch_s": 1.0,
    "eval_s": 0.0,
    "per_epoch_overhead_s": 0.0,
    "startup_s": 0.0,
    "driver_cpu_per_result_s": 0.0,
    "driver_cpu_per_trial_s": 0.0,
}


def test_makespan_places_each_trial_on_the_first_free_cpu():
    assert makespan([3, 3, 3, 3], 2) == 6
    assert makespan([5, 1, 1, 1, 1, 1], 2) == 5  # the short trials fill the second CPU
    assert makespan([1, 1, 1, 1, 1, 5], 2) == 7  # the long one comes last and runs alone
    assert makespan([2], 4) == 2


def test_asha_epochs_keeps_one_in_reduction_at_every_rung():
    epochs = asha_epochs(27, grace=1, reduction=3, max_t=9)
    assert sorted(epochs) == [1] * 18 + [3] * 6 + [9] * 3
    assert epochs != sorted(epochs)  # scattered, as a shuffled grid's survivors are
    assert asha_epochs(27, 1, 3, 9, seed=5) != epochs
    assert sorted(asha_epochs(539, grace=5, reduction=3, max_t=40)) == [5] * 360 + [15] * 120 + [40] * 59


def test_projection_of_equal_trials_without_costs_is_perfect():
    result = project(COSTS, [10] * 32, cpus=16)
    assert result["wall_s"] == 20
    assert result["efficiency_vs_1_cpu"] == pytest.approx(1.0)
    assert result["driver_load"] == 0


def test_projection_charges_start_up_and_a_saturated_driver():
    started = project({**COSTS, "startup_s": 1.0}, [9] * 16, cpus=16)
    assert started["wall_s"] == 10
    assert started["compute_share"] == pytest.approx(0.9)
    # 64 trials reporting every second, 25 ms of driver CPU each: the driver is 1.6x over its
    # ceiling and paces the sweep.
    paced = project({**COSTS, "driver_cpu_per_result_s": 0.025}, [10] * 64, cpus=64)
    assert paced["driver_load"] == pytest.approx(1.6)
    assert paced["wall_s"] == pytest.approx(16)
    assert paced["efficiency_vs_1_cpu"] == pytest.approx(1 / 1.6)
    # Short trials: creating and ending 640 trials at 50 ms each keeps the driver busy 32 s.
    churned = project({**COSTS, "driver_cpu_per_trial_s": 0.05}, [1] * 640, cpus=64)
    assert churned["driver_load"] == pytest.approx(3.2)
    assert churned["wall_s"] == pytest.approx(32)


def test_driver_costs_split_the_loop_into_results_and_trials():
    short = {"driver_loop_cpu_s": 1.0, "results": 32, "trials": 8}  # 8 trials x 4 epochs
    long = {"driver_loop_cpu_s": 1.64, "results": 96, "trials": 8}  # the same trials, 12 epochs
    costs = driver_costs(short, long)
    assert costs["driver_cpu_per_result_s"] == pytest.approx(0.01)
    assert costs["driver_cpu_per_trial_s"] == pytest.approx((1.0 - 0.32) / 8)
    # Noise can make the longer run cheaper: no negative costs.
    assert driver_costs(short, {**long, "driver_loop_cpu_s": 0.9})["driver_cpu_per_result_s"] == 0.0


def test_best_so_far_reads_every_run_and_skips_a_line_being_written(tmp_path: Path):
    first = tmp_path / "run-1" / "point-00000-a"
    second = tmp_path / "run-2" / "point-00001-b"
    for folder in (first, second):
        folder.mkdir(parents=True)
    (first / "result.json").write_text(
        json.dumps({"recall_at_k": 0.21}) + "\n" + json.dumps({"recall_at_k": 0.24}) + "\n"
    )
    (second / "result.json").write_text(json.dumps({"recall_at_k": 0.22}) + "\n" + '{"recall_at_k": 0.3')
    assert best_so_far(tmp_path, "recall_at_k") == pytest.approx(0.24)
    assert best_so_far(tmp_path / "missing", "recall_at_k") == 0.0


def test_first_reached_is_the_first_time_the_best_so_far_got_there():
    timeline = [(10.0, 0.18), (40.0, 0.221), (95.0, 0.243)]
    assert first_reached(timeline, 0.22) == 40.0
    assert first_reached(timeline, 0.18) == 10.0
    assert first_reached(timeline, 0.25) is None


def test_a_stage_s_peak_memory_is_its_own_not_the_benchmark_s():
    ballast = np.ones(2**27)  # the benchmark process at 1 GiB
    _, peak_mb, stdout = run_measured([sys.executable, "-c", "import numpy; print(len(numpy.ones(2**24)))"])
    assert stdout == f"{2**24}\n"
    assert 128 < peak_mb < 300  # its 128 MiB array and Python, not the 1 GiB it was started from
    del ballast


@pytest.mark.parametrize("grace, reduction, max_t", [(3, 2, 10), (1, 3, 27), (2, 2.5, 20), (5, 2, 10)])
def test_the_asha_replay_decides_as_ray_s_bracket_does(grace, reduction, max_t):
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler
    from ray.tune.schedulers.async_hyperband import _Bracket

    rng = np.random.default_rng(grace)
    curves = rng.random((60, max_t)).cumsum(axis=1).tolist()
    order = list(rng.permutation(60))
    bracket = _Bracket(grace, max_t, reduction, 0)
    assert sorted(milestone for milestone, _ in bracket._rungs) == pytest.approx(
        asha_rungs(grace, reduction, max_t), abs=1
    )
    trained = [0] * len(curves)
    for index in order:  # each trial runs alone to its end or its stop, as the replay assumes
        trial = SimpleNamespace(trial_id=str(index))
        for epoch, value in enumerate(curves[index], start=1):
            if bracket.on_result(trial, epoch, value) == TrialScheduler.STOP or epoch == max_t:
                trained[index] = epoch
                break
    assert replay_asha(curves, order, grace, reduction, max_t) == trained
    assert min(trained) < max_t  # some trials were stopped


def test_folding_a_catalogue_keeps_every_session_and_shrinks_only_the_items():
    from benchmarks.catalogue import folded
    from sessrec.core.synth import synth_sessions

    sessions = synth_sessions(n_sessions=300, n_items=200, n_clusters=10, seed=3)
    small = folded(sessions, 40)
    np.testing.assert_array_equal(small.offsets, sessions.offsets)
    assert len(small.vocab) == 40
    # Events that shared an item still do, and each folded item is the original code modulo 40.
    items, small_items = sessions.vocab[sessions.codes], small.vocab[small.codes]
    assert all(small_items[items == item].size and len(set(small_items[items == item])) == 1 for item in sessions.vocab)
    codes = np.array([int(name[1:]) for name in small_items])
    np.testing.assert_array_equal(codes, sessions.codes % 40)
