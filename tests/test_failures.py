"""Trials that fail: a study whose trials all raise stops with the error; a trial pruned, failed or taken over
by another worker before any trial completes is one trial among others, not the end of the search."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import run_cli, search_context
from transformers import TrainerCallback

# A real configuration that passes validation and raises in every trial: the scheduler takes no such argument.
BROKEN = {"num_train_epochs": 1, "seed": 0, "lr_scheduler_kwargs": {"bogus": 1}}


def states(study_file: Path, url: str | None = None) -> list[str]:
    import optuna

    url = url or f"sqlite:///{study_file.parent / 'tiny.db'}"
    return [t.state.name for t in optuna.load_study(study_name="tiny", storage=url).get_trials()]


def check_one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], stderr[-3000:]
    assert "Traceback" not in stderr and "another worker" not in stderr, stderr[-3000:]
    return errors[0]


@pytest.mark.slow
def test_a_study_whose_trials_all_fail_stops_with_their_error(make_study: Callable[..., Path]) -> None:
    study = make_study(search__n_trials=10, training=BROKEN)  # the default search.max_failures: 5
    r = run_cli("run", str(study), timeout=600)
    assert r.returncode == 1, r.stderr[-3000:]
    error = check_one_error_line(r.stderr)
    assert "5 trials in a row failed" in error and "TypeError" in error and "'bogus'" in error, error
    assert str(study) in error and "search.max_failures" in error
    assert r.stderr.count("FAIL     TypeError") == 5  # each trial's line names its error
    assert states(study) == ["FAIL"] * 5


@pytest.mark.slow
def test_a_worker_whose_trials_all_fail_stops_with_their_error(make_study: Callable[..., Path], pg_server: Any) -> None:
    url = pg_server.create_db("failing")
    study = make_study(storage=url, search__n_trials=10, search__max_failures=2, training=BROKEN)
    r = run_cli("worker", str(study), timeout=600)
    assert r.returncode == 1, r.stderr[-3000:]
    error = check_one_error_line(r.stderr)
    assert "2 trials in a row failed" in error and "'bogus'" in error, error
    assert states(study, url) == ["FAIL"] * 2


def run_in_process(study_file: Path) -> Any:
    from hpo import progress
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = search_context(study_file)
    enqueue_initial(ctx)
    spec = ctx.study.spec
    run_trials(ctx, on_trial=progress.trial_reporter(spec.search.n_trials, spec.objective.metric))
    return ctx.optuna_study.get_trials()


def test_a_trial_pruned_before_any_completes_is_one_trial_among_others(make_study: Callable[..., Path]) -> None:
    # The first trial's learning rate makes its loss nan; successive halving prunes it at its first rung,
    # while no trial has completed yet.
    trials = run_in_process(make_study(
        objective={"metric": "loss"}, training={"max_steps": 4, "seed": 0, "per_device_train_batch_size": 32},
        search={"n_trials": 2, "evals_per_epoch": 4, "baseline": False,
                "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e8, "log": True}},
                "enqueue": [{"learning_rate": 1e8}, {"learning_rate": 1e-3}],
                "pruner": {"name": "successive_halving", "min_resource": 25}}))
    assert [t.state.name for t in trials] == ["PRUNED", "COMPLETE"]


class FailedByAnotherWorker(TrainerCallback):
    """Half-way through the first trial, fail it and queue its retry, as a worker that found its heartbeat
    stale does (`optuna.storages.fail_stale_trials` with hpo's retry callback)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.done = trainer, False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from optuna.trial import TrialState

        from hpo.study.retry import RetryStaleTrial

        trial = self.trainer._trial
        if self.done or state.global_step != 1:
            return
        self.done = True
        storage = trial.study._storage
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        RetryStaleTrial(2)(trial.study, storage.get_trial(trial._trial_id))


def test_a_trial_failed_by_another_worker_does_not_count_as_a_failure(make_study: Callable[..., Path],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from hpo.search.runner import enqueue_initial, run_trials

    ctx = search_context(make_study(search__n_trials=2, search__max_failures=1, search__baseline=False,
                                    training={"max_steps": 3, "seed": 0}))
    ctx.trainer.add_callback(FailedByAnotherWorker(ctx.trainer))
    enqueue_initial(ctx)
    run_trials(ctx)  # max_failures 1: a failure of the study's own would raise
    trials = ctx.optuna_study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == trials[0].params
    err = capsys.readouterr().err
    assert "trial 0 was failed by another worker" in err


def test_a_trial_left_running_without_a_heartbeat_does_not_hold_the_study(make_study: Callable[..., Path]) -> None:
    """A worker killed between creating its trial and its first heartbeat: the others fail it after the grace
    period and run its retry, instead of waiting for it for ever."""
    from hpo.search.runner import run_trials

    ctx = search_context(make_study(search={"n_trials": 2, "baseline": False, "heartbeat_interval": 1,
                                            "grace_period": 2}, training={"max_steps": 2, "seed": 0}))
    silent = ctx.optuna_study.ask()  # RUNNING, never a heartbeat
    run_trials(ctx, timeout=120)
    trials = ctx.optuna_study.get_trials(deepcopy=False)
    assert trials[silent.number].state.name == "FAIL"
    assert [t.state.name for t in trials if t.number != silent.number] == ["COMPLETE", "COMPLETE"]
    assert [t.user_attrs.get("retry_of") for t in trials] == [None, None, silent.number]
