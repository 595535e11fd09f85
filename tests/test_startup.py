"""Start-up trials cover the space evenly: trial position i takes point i of a scrambled Sobol sequence."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hpo.spec.schema import SearchSpec
from hpo.study.startup import from_unit, startup_trials

SPACE = {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
         "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]},
         "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
         "warmup_steps": {"type": "int", "low": 0, "high": 7}}


def search(**sampler: Any) -> SearchSpec:
    return SearchSpec.model_validate({"n_trials": 8, "space": SPACE, "sampler": {"name": "tpe", **sampler}})


def draws(spec: SearchSpec, n: int) -> list[dict[str, Any]]:
    """The configurations of the first `n` trials of a study with this search section."""
    import optuna

    from hpo.search.space import make_hp_space
    from hpo.study.factory import make_sampler

    hp_space = make_hp_space(spec)
    study = optuna.create_study(sampler=make_sampler(spec.sampler, spec))
    study.optimize(lambda trial: (hp_space(trial), 0.0)[1], n_trials=n)
    return [t.params for t in study.trials]


def octile(p: dict[str, Any]) -> int:
    return int(8 * math.log(p["learning_rate"] / 1e-5) / math.log(10))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_eight_start_up_trials_cover_each_range_evenly(seed: int) -> None:
    trials = draws(search(seed=seed), 8)
    assert sorted(octile(p) for p in trials) == list(range(8))  # one learning rate per eighth of its log range
    assert sorted(p["per_device_train_batch_size"] for p in trials) == [16] * 4 + [32] * 4
    assert sorted(p["warmup_steps"] for p in trials) == list(range(8))  # an integer is an equal share
    assert sorted(int(p["weight_decay"] / 0.0125) for p in trials) == list(range(8))
    for batch in (16, 32):  # each batch size gets one learning rate per quarter of the range
        assert sorted(octile(p) // 2 for p in trials if p["per_device_train_batch_size"] == batch) == [0, 1, 2, 3]


def test_the_sequence_is_the_studys_seeds_and_random_start_up_is_optunas() -> None:
    first = draws(search(seed=0), 8)
    assert draws(search(seed=0), 8) == first
    assert draws(search(seed=1), 8) != first
    randomly = draws(search(seed=0, startup="random"), 8)
    assert randomly != first and len({octile(p) for p in randomly}) < 8  # eight independent draws leave gaps


def test_which_trials_draw_from_the_sequence() -> None:
    assert startup_trials(search(seed=0)) == 10  # TPE's start-up
    assert startup_trials(search(seed=0, n_startup_trials=3)) == 3
    assert startup_trials(search(seed=0, startup="random")) == 0
    assert startup_trials(search(seed=None)) == 0  # no seed: nothing to scramble the same way in every process
    assert startup_trials(search(seed=0, name="random")) == 0
    assert startup_trials(search(seed=0, name="cmaes")) == 1


def test_after_the_start_up_the_sampler_takes_over() -> None:
    trials = draws(search(seed=0, n_startup_trials=2), 4)
    sequence = draws(search(seed=0, n_startup_trials=8), 4)
    assert trials[:2] == sequence[:2] and trials[2:] != sequence[2:]


@pytest.mark.parametrize("param, low_value, high_value", [
    ({"type": "float", "low": 1e-5, "high": 1e-4, "log": True}, 1e-5, 1e-4),
    ({"type": "float", "low": 0.0, "high": 0.2, "step": 0.05}, 0.0, 0.2),
    ({"type": "int", "low": 1, "high": 64, "log": True}, 1, 64),
    ({"type": "int", "low": 8, "high": 32, "step": 8}, 8, 32),
    ({"type": "categorical", "choices": ["a", "b", "c"]}, "a", "c"),
])
def test_the_unit_interval_maps_onto_the_whole_range(param: dict[str, Any], low_value: Any, high_value: Any) -> None:
    p = SearchSpec.model_validate({"n_trials": 1, "space": {"x": param}}).space["x"]
    assert from_unit(p, 0.0) == low_value
    assert from_unit(p, 1 - 1e-12) == pytest.approx(high_value)
    if param.get("log") and param["type"] == "float":
        assert from_unit(p, 0.5) == pytest.approx(math.sqrt(1e-5 * 1e-4))
