import re

import pytest
import yaml

from sessrec.errors import SessrecError
from sessrec.spec import BUILTIN_SPECS, SweepSpec, builtin_spec_text, parse_spec


def test_builtin_specs():
    specs = {name: parse_spec(builtin_spec_text(name)) for name in BUILTIN_SPECS}
    assert specs["reference"].num_trials == 25_872
    assert specs["seed3d"].num_trials == 539
    assert specs["reference"].space["ns_exponent"].values == (
        -1.0,
        -0.8,
        -0.6,
        -0.4,
        -0.2,
        0.0,
        0.2,
        0.4,
        0.6,
        0.8,
        1.0,
    )
    assert specs["reference"].space["vector_size"].values == tuple(range(10, 106, 6))
    assert (specs["reference"].max_t, specs["reference"].grace_period) == (100, 10)


def test_expected_epochs_under_asha():
    spec = parse_spec(builtin_spec_text("tiny"))  # 8 trials, max_t 6, grace 2, eta 2
    assert spec.expected_epochs() == (48, 8 * (2 + 2 / 2 + 2 / 4))
    fifo = SweepSpec.from_dict({**spec.raw, "scheduler": {**spec.raw["scheduler"], "type": "fifo"}})
    assert fifo.expected_epochs() == (48, 48)


def _spec(**changes):
    raw = yaml.safe_load(builtin_spec_text("tiny"))
    raw.update(changes)
    return raw


def test_random_search_counts_samples():
    spec = SweepSpec.from_dict(
        _spec(
            search={"method": "random", "num_samples": 5},
            space={"alpha": {"loguniform": [0.001, 0.1]}, "window": {"randint": [1, 10]}},
        )
    )
    assert spec.num_trials == 5


@pytest.mark.parametrize(
    "changes, message",
    [
        # Each message is matched literally (re.escape): the field's path and what is wrong with it.
        ({"space": {}}, "invalid sweep spec at space: {} should be non-empty"),
        (
            {"space": {"colour": [1]}},
            "invalid sweep spec at space: Additional properties are not allowed ('colour' was unexpected)",
        ),
        ({"space": {"window": []}}, "invalid sweep spec at space.window: [] should be non-empty"),
        ({"space": {"window": {"range": [5, 1]}}}, "space.window: range(5, 1) is empty"),
        ({"space": {"window": [0, 3]}}, "space.window: values must lie in [1, 200], got [0, 3]"),
        ({"space": {"window": [1.5]}}, "space.window: values must be integers"),
        ({"space": {"alpha": {"loguniform": [0, 0.1]}}}, "space.alpha: loguniform needs low > 0, got 0"),
        ({"space": {"alpha": {"uniform": [0.5, 0.1]}}}, "space.alpha: uniform needs low < high, got 0.5, 0.1"),
        (
            {"scheduler": {"max_t": 5, "grace_period": 10}},
            "scheduler.grace_period (10) exceeds the epoch budget scheduler.max_t (5)",
        ),
        (
            {"space": {"epochs": [10, 200]}, "scheduler": {"max_t": 100, "grace_period": 1}},
            "space.epochs reaches 200, beyond scheduler.max_t (100)",
        ),
        (
            {"space": {"alpha": [0.05, 0.00001]}},
            "space.alpha reaches 1e-05, below min_alpha 0.0001: the learning rate would grow",
        ),
        ({"k": 0}, "invalid sweep spec at k: 0 is less than the minimum of 1"),
        ({"metric": "accuracy"}, "invalid sweep spec at metric: 'accuracy' is not one of ['recall_at_k', 'mrr_at_k']"),
        ({"name": "Bad/Name"}, "invalid sweep spec at name: 'Bad/Name' does not match '^[a-z]([-a-z0-9]*[a-z0-9])?$'"),
        (
            {"search": {"method": "bayes"}},
            "invalid sweep spec at search.method: 'bayes' is not one of ['grid', 'random', 'optuna']",
        ),
        (
            {"search": {"method": "random", "num_samples": 3, "shuffle": True}},
            "search.shuffle orders a grid; search.method random samples in its own order",
        ),
        ({"search": {"shuffle": "yes"}}, "invalid sweep spec at search.shuffle: 'yes' is not of type 'boolean'"),
        # YAML's .nan and .inf are numbers to a schema, and NaN passes every range check.
        (
            {"space": {"vector_size": float("nan")}},
            "invalid sweep spec at space.vector_size: nan is not a finite number",
        ),
        (
            {"space": {"alpha": {"linspace": [0.01, 0.1, float("inf")]}}},
            "invalid sweep spec at space.alpha.linspace.2: inf is not a finite number",
        ),
        (
            {"scheduler": {"reduction_factor": float("nan")}},
            "invalid sweep spec at scheduler.reduction_factor: nan is not a finite number",
        ),
        ({"space": {"window": {"range": [1, 5, 0]}}}, "space.window: range needs a step other than 0"),
        (
            {"search": {"method": "random", "num_samples": 10**11}},
            "the sweep has 100,000,000,000 trials, more than 100,000",
        ),
        (
            {"scheduler": {"type": "fifo", "max_t": 5000}},
            "invalid sweep spec at scheduler.max_t: 5000 is greater than the maximum of 1000",
        ),
        # Refused before its values are made: they would fill the memory first.
        (
            {"space": {"window": {"range": [1, 10**11]}}},
            "space.window: 99,999,999,999 values, and a sweep has at most 100,000 trials",
        ),
        (
            {"space": {"ns_exponent": {"linspace": [-1, 1, 10**11]}}},
            "space.ns_exponent: 100,000,000,000 values, and a sweep has at most 100,000 trials",
        ),
        (
            {
                "space": {
                    "window": {"range": [1, 201]},
                    "negative": {"range": [1, 101]},
                    "ns_exponent": {"linspace": [-1, 1, 11]},
                }
            },
            "the sweep has 220,000 trials, more than 100,000",
        ),
    ],
)
def test_bad_specs(changes, message):
    with pytest.raises(SessrecError, match=re.escape(message)):
        SweepSpec.from_dict(_spec(**changes))


def test_not_yaml_or_not_a_mapping():
    not_yaml = r"^spec is not valid YAML: expected ',' or '\]', but got '<stream end>' at line 1, column 9$"
    with pytest.raises(SessrecError, match=not_yaml):
        parse_spec("a: [1, 2")
    with pytest.raises(SessrecError, match="^spec: a sweep spec must be a YAML mapping$"):
        parse_spec("- 1\n- 2\n")


def test_a_shuffled_grid_runs_every_point_once_in_a_seeded_order():
    def points(**search) -> list[tuple]:
        spec = SweepSpec.from_dict(
            _spec(search=search, space={"window": [1, 2, 3, 4], "negative": [5, 10, 15], "alpha": 0.05})
        )
        configs = spec.plan()
        assert all(config["alpha"] == 0.05 for config in configs)
        return [(config["window"], config["negative"]) for config in configs]

    ordered = points(method="grid")
    assert ordered[:4] == [(1, 5), (1, 10), (1, 15), (2, 5)]  # the last parameter fastest
    shuffled = points(method="grid", shuffle=True, seed=0)
    assert sorted(shuffled) == sorted(ordered) and len(set(shuffled)) == 12  # every point, once
    assert shuffled != ordered
    assert points(method="grid", shuffle=True, seed=0) == shuffled  # seeded: a resume sees the same order
    assert points(method="grid", shuffle=True, seed=1) != shuffled


def test_asha_over_a_grid_in_order_warns_only_when_its_first_rungs_would_see_one_corner():
    def warning(cpus: int, **changes) -> str | None:
        spec = SweepSpec.from_dict(_spec(**{"search": {"method": "grid"}, **changes}))  # tiny: 8 points, ASHA
        return spec.order_warning(spec.parallel_trials(cpus))

    text = warning(2)
    assert text is not None and "8-point grid" in text and "2 run at once" in text and "search.shuffle: true" in text
    assert warning(8) is None  # every point runs at once: no order to speak of
    assert warning(16, resources={"cpus_per_trial": 4}) is not None  # 4 at once
    assert warning(16, resources={"cpus_per_trial": 1, "max_concurrent_trials": 3}) is not None
    assert warning(2, search={"method": "grid", "shuffle": True}) is None
    assert warning(2, scheduler={"type": "fifo", "max_t": 6}) is None  # FIFO trains every trial fully
    assert warning(2, search={"method": "random", "num_samples": 20}) is None
    assert SweepSpec.from_dict(_spec()).order_warning(1) is None  # the built-in tiny spec shuffles its grid


def test_a_plan_is_every_trial_with_every_parameter_the_same_each_time_it_is_made():
    space = {
        "window": [2, 4],
        "negative": {"randint": [1, 20]},
        "alpha": {"loguniform": [0.001, 0.1]},
        "ns_exponent": {"choice": [-0.5, 0.5]},
    }
    grid = SweepSpec.from_dict(_spec(search={"method": "grid", "num_samples": 3, "seed": 7}, space=space))
    plan = grid.plan()
    assert len(plan) == grid.num_trials == 6 and [c["window"] for c in plan] == [2, 4] * 3
    random_spec = SweepSpec.from_dict(_spec(search={"method": "random", "num_samples": 40, "seed": 7}, space=space))
    for spec in (grid, random_spec):
        plan = spec.plan()
        assert plan == spec.plan() and len(plan) == spec.num_trials  # a resume makes the same plan
        for config in plan:
            assert (
                config["epochs"] == spec.max_t and config["window"] in (2, 4) and config["ns_exponent"] in (-0.5, 0.5)
            )
            assert isinstance(config["negative"], int) and 1 <= config["negative"] < 20
            assert 0.001 <= config["alpha"] <= 0.1
    alphas = [c["alpha"] for c in random_spec.plan()]
    assert len(set(alphas)) == 40 and sum(a < 0.01 for a in alphas) > 10  # log-uniform: a decade each
    other_seed = SweepSpec.from_dict(_spec(search={"method": "random", "num_samples": 40, "seed": 8}, space=space))
    assert other_seed.plan() != random_spec.plan()
    no_plan = "^an optuna sweep has no plan: it chooses each trial from the results so far$"
    with pytest.raises(SessrecError, match=no_plan):
        SweepSpec.from_dict(_spec(search={"method": "optuna", "num_samples": 4}, space=space)).plan()


def test_a_number_with_an_exponent_and_no_dot_is_a_number():
    # YAML 1.2, Helm and Kubernetes read 1e-3 as a number; PyYAML alone would read the text '1e-3'.
    spec = parse_spec(
        "dataset: demo\nsearch: {method: random, num_samples: 2}\n"
        "space: {alpha: {loguniform: [1e-3, 1e-1]}, window: 5}\nscheduler: {type: fifo, max_t: 10}\n"
    )
    assert spec.raw["space"]["alpha"] == {"loguniform": [0.001, 0.1]}
    not_an_integer = r"^spec: invalid sweep spec at scheduler\.max_t: 10\.0 is not of type 'integer'$"
    with pytest.raises(SessrecError, match=not_an_integer):
        parse_spec("space: {window: 5}\nscheduler: {type: asha, max_t: 1e1}\n")
    assert parse_spec("space: {window: 5, negative: 12}\n").raw["space"] == {
        "window": 5,
        "negative": 12,
    }  # integers stay integers
