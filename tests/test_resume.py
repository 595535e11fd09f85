"""A study stopped and resumed runs the configurations one uninterrupted run would have run, in order."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import search_context
from transformers import TrainerCallback

SPACE = {"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
         "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
         "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}}
GRID = {"learning_rate": {"type": "categorical", "choices": [1e-3, 3e-3, 1e-2, 3e-2]},
        "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32]}}
SAMPLERS = {  # model-based from the third trial on where the sampler has a start-up phase
    "tpe": {"name": "tpe", "seed": 0, "n_startup_trials": 2},
    "random": {"name": "random", "seed": 0},
    "cmaes": {"name": "cmaes", "seed": 0, "n_startup_trials": 2},
    "gp": {"name": "gp", "seed": 0, "n_startup_trials": 2},
    "grid": {"name": "grid", "seed": 0},
    "nsga2": {"name": "nsga2", "seed": 0},
}


def run(make_study: Callable[..., Path], store: Path, n_trials: int, sampler: dict[str, Any], *,
        callback: Any = None) -> list[Any]:
    """Run the study on `store` (a new process would build the same context) up to n_trials finished."""
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = search_context(make_study(
        storage=f"sqlite:///{store}", output_dir=str(store.with_suffix("")),
        search={"n_trials": n_trials, "evals_per_epoch": 1, "sampler": sampler, "pruner": {"name": "none"},
                "space": GRID if sampler["name"] == "grid" else SPACE},
        training={"max_steps": 3, "seed": 0}))
    if callback is not None:
        ctx.trainer.add_callback(callback(ctx.trainer))
    enqueue_initial(ctx)
    run_trials(ctx)
    return ctx.optuna_study.get_trials()


def finished_params(trials: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(sorted(t.params.items())) for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_a_resumed_study_runs_what_one_run_runs(make_study: Callable[..., Path], tmp_path: Path, name: str) -> None:
    if name == "cmaes":
        pytest.importorskip("cmaes")
    sampler = SAMPLERS[name]
    once = run(make_study, tmp_path / "once.db", 6, sampler)
    run(make_study, tmp_path / "resumed.db", 3, sampler)
    resumed = run(make_study, tmp_path / "resumed.db", 6, sampler)

    assert len(finished_params(once)) == 6
    assert finished_params(resumed) == finished_params(once)
    assert len(set(finished_params(once))) == 6, "a configuration was drawn twice"


class StopDuringTrial(TrainerCallback):
    """Ctrl-C in the middle of the training of trial `number`."""

    number = 2

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 1 and self.trainer._trial.number == self.number:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_trial_stopped_by_ctrl_c_runs_again_and_the_sequence_goes_on(make_study: Callable[..., Path],
                                                                        tmp_path: Path) -> None:
    sampler = SAMPLERS["tpe"]
    once = run(make_study, tmp_path / "once.db", 5, sampler)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(KeyboardInterrupt):
            run(make_study, tmp_path / "stopped.db", 5, sampler, callback=StopDuringTrial)
    finally:
        signal.signal(signal.SIGINT, previous)
    resumed = run(make_study, tmp_path / "stopped.db", 5, sampler)

    stopped = resumed[StopDuringTrial.number]
    assert stopped.state.name == "FAIL"
    retry = next(t for t in resumed if t.user_attrs.get("retry_of") == stopped.number)
    assert retry.state.name == "COMPLETE" and retry.params == stopped.params
    assert finished_params(resumed) == finished_params(once)


def test_a_rerun_of_a_trial_stopped_before_it_drew_repeats_no_other_trial() -> None:
    """A worker killed between the start of a trial and its first suggestion leaves a trial without values:
    the baseline's re-run keeps the baseline's values, and another re-run draws what its trial would have."""
    import optuna
    from optuna.samplers import RandomSampler

    from hpo.study.retry import queue_again
    from hpo.study.seeding import TrialSeeded

    def study_with(stopped: Callable[[optuna.Study], None]) -> list[optuna.trial.FrozenTrial]:
        study = optuna.create_study(sampler=TrialSeeded(lambda seed: RandomSampler(seed=seed), 0))
        stopped(study)
        for _ in range(4):
            trial = study.ask()
            study.tell(trial, trial.suggest_float("x", 0.0, 1.0))
        return study.trials

    def baseline_stopped(study: optuna.Study) -> None:
        study.enqueue_trial({"x": 0.5}, user_attrs={"baseline": True})
        study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
        queue_again(study, study.trials[0])

    def trial_stopped(study: optuna.Study) -> None:
        study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
        queue_again(study, study.trials[0])

    def nothing_stopped(study: optuna.Study) -> None:
        pass

    after_baseline = study_with(baseline_stopped)
    assert after_baseline[1].params == {"x": 0.5} and after_baseline[1].user_attrs["baseline"]
    drawn = [t.params["x"] for t in after_baseline[2:]]
    assert len(set(drawn)) == 3
    rerun = [t.params["x"] for t in study_with(trial_stopped)[1:]]
    one_go = [t.params["x"] for t in study_with(nothing_stopped)]
    assert rerun == one_go  # the re-run draws its trial's values, the next trials theirs
