"""Running again a trial stopped before it finished: its worker died (heartbeat gone stale) or was stopped.

Like Optuna's `RetryHeartbeatStaleTrialCallback` (same `failed_trial` and `retry_history` system attrs, so
Optuna's tools read them), except that the retry carries its parameters as enqueued fixed params instead
of validated distributions: the Trainer-defaults baseline may lie outside the searched range, and
Optuna's version then raises inside the worker that noticed the stale trial, killing a second worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

# What the dead process measured or owned; the retry measures its own.
_NOT_INHERITED = ("worker", "metrics", "progress", "profile", "duration_s", "checkpoint")


class RetryStaleTrial:
    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
        if len(trial.system_attrs.get("retry_history", [])) < self.max_retry:
            queue_again(study, trial)


def queue_again(study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> None:
    """Enqueue a failed trial again with its parameters. Its number goes into the retry's `retry_history`,
    which also tells the sampler seeding (`hpo.study.seeding`) that the retry stands in for it."""
    import optuna

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    first = trial.system_attrs.get("failed_trial", trial.number)
    system = {k: v for k, v in trial.system_attrs.items() if k != "fail_reason"}
    # an enqueued trial (the baseline) stopped before it asked for its values keeps those it was given
    fixed = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    system.update(failed_trial=first, retry_history=history, fixed_params=fixed)
    user = {k: v for k, v in trial.user_attrs.items() if k not in _NOT_INHERITED}
    user["retry_of"] = first
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, user_attrs=user,
                                              system_attrs=system))
