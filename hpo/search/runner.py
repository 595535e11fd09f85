"""Run the search: `Trainer.hyperparameter_search` one trial at a time against the shared study.

One trial per call lets every worker recount the store before starting, so a study stopped, resumed
or shared by many workers ends with exactly `n_trials` finished trials and never repeats one.
A trial that raises is recorded as FAIL and the search goes on, until `search.max_failures` in a row
stop it; a trial stopped by Ctrl-C/SIGTERM is queued to run again when the study resumes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpo import interrupts, progress, upstream
from hpo.errors import SearchError
from hpo.study.counts import count_trials
from hpo.study.factory import load_or_create, study_kwargs
from hpo.study.stale import StaleTrials
from hpo.study.workers import claim_once

if TYPE_CHECKING:
    import optuna

    from hpo.data import Splits
    from hpo.search.budgeting import BudgetKeeper
    from hpo.spec import LoadedStudy

POLL_SECONDS = 2.0


@dataclass
class SearchContext:
    """What one process needs to run trials of one model's study, built once and reused."""

    study: "LoadedStudy"
    model_id: str
    splits: "Splits"
    storage: Any
    trainer: Any
    optuna_study: "optuna.Study"


def checkpoints_dir(study: "LoadedStudy", study_name: str) -> Path:
    return study.paths.output_dir / "trials" / study_name


def build_context(study: "LoadedStudy", model_id: str, splits: "Splits", storage: Any) -> SearchContext:
    from hpo.search.setup import build_trainer

    optuna_study = load_or_create(study, model_id, storage)
    trainer = build_trainer(study, model_id, splits, checkpoints=checkpoints_dir(study, optuna_study.study_name))
    return SearchContext(study, model_id, splits, storage, trainer, optuna_study)


def enqueue_initial(ctx: SearchContext) -> None:
    """Before the sampler: the Trainer-defaults baseline, then the study file's known configurations.

    Only into a new study, so a resumed or shared study never gets them twice.
    """
    from hpo.search.space import trainer_defaults
    from hpo.search.warm import enqueue_warm_start, warm_start

    s = ctx.study.spec
    if ctx.optuna_study.user_attrs.get("initial_enqueued") or ctx.optuna_study.get_trials(deepcopy=False):
        return
    warm = warm_start(ctx.study)  # before the claim: an unreadable source must not use up the one-time step
    if not claim_once(ctx.optuna_study, "hpo:initial_enqueued"):  # workers starting together enqueue once
        return
    ctx.optuna_study.set_user_attr("initial_enqueued", True)
    if s.search.baseline:
        ctx.optuna_study.enqueue_trial(trainer_defaults(s.search, s.training, s.peft), user_attrs={"baseline": True})
    for config in s.search.enqueue:
        ctx.optuna_study.enqueue_trial(dict(config), user_attrs={"enqueued": True})
    enqueue_warm_start(ctx.optuna_study, warm)


def _quiet_trial_failures(record: logging.LogRecord) -> bool:
    """Optuna logs each failed trial in two lines, with a traceback. hpo's own trial line says why it failed
    and a stop says 'interrupted', so they are dropped unless HPO_DEBUG=1."""
    if os.environ.get("HPO_DEBUG", "") not in ("", "0"):
        return True
    message = record.getMessage()
    return not (message.startswith("Trial ") and " failed with " in message)


def run_trials(ctx: SearchContext, *, max_trials: int | None = None, timeout: float | None = None,
               on_trial: Callable[..., None] | None = None, wait_for_others: bool = True,
               budget: "BudgetKeeper | None" = None) -> int:
    """Run trials until the study has n_trials finished (or this process ran max_trials). Returns trials run.

    Raises SearchError when `search.max_failures` trials of this process in a row failed with an error.
    `on_trial(study, trial, reason=...)` sees each trial this process ran; `reason` says why it failed.
    `budget`: asked before each trial whether it fits (`hpo.search.budgeting`).
    """
    with interrupts.handled_here():
        return _run_trials(ctx, max_trials=max_trials, timeout=timeout, on_trial=on_trial,
                           wait_for_others=wait_for_others, budget=budget)


def _run_trials(ctx: SearchContext, *, max_trials: int | None, timeout: float | None,
                on_trial: Callable[..., None] | None, wait_for_others: bool, budget: "BudgetKeeper | None") -> int:
    from hpo.study.objectives import make_objective, search_direction

    spec = ctx.study.spec
    n_trials = spec.search.trial_cap
    started = time.monotonic()
    ran = 0
    logging.getLogger(upstream.OPTIMIZE_LOGGER).addFilter(_quiet_trial_failures)
    kwargs = study_kwargs(ctx.study, ctx.model_id, ctx.storage)
    sampler = kwargs["sampler"]
    failures = FailureStreak(spec.search.max_failures)
    stale = StaleTrials(spec.search.stale_after)
    while True:
        interrupts.check()
        counts = count_trials(ctx.optuna_study)
        failures.study_finished(counts.finished)
        if counts.finished >= n_trials or (max_trials is not None and ran >= max_trials):
            return ran
        if timeout is not None and time.monotonic() - started > timeout:
            return ran
        if counts.finished + counts.running >= n_trials:
            if not wait_for_others:
                return ran
            stale.fail(ctx.optuna_study)  # a dead worker's trial frees its slot
            time.sleep(POLL_SECONDS)
            continue
        if budget is not None:
            if not budget.should_start(ctx):
                return ran
            if on_trial is not None:
                on_trial(ctx.optuna_study, None)  # the study bar shows the plan just made
        sampler.trial_id = None
        began = time.monotonic()
        error: Exception | None = None
        with interrupts.protected():  # a stop cuts the training only, never Optuna's writes around it
            try:
                # no `catch`: the trial's own exception reaches this loop, which tells errors from stops
                ctx.trainer.hyperparameter_search(
                    hp_space=ctx.trainer.hp_space_fn, compute_objective=make_objective(spec, ctx.trainer),
                    n_trials=1, direction=search_direction(spec), backend="optuna", **kwargs)
            except KeyboardInterrupt:
                _queue_stopped_trial(ctx.optuna_study, sampler.trial_id)
                raise
            except Exception as e:
                error = e
            ran += 1
            if sampler.trial_id is None:  # no trial was created: the store or the set-up failed
                if error is not None:
                    raise error
                continue
            trial = upstream.storage_of(ctx.optuna_study).get_trial(sampler.trial_id)
            if budget is not None:
                budget.trial_done(trial, time.monotonic() - began)
            reason = _failure(ctx, trial, sampler.told, error)
            if on_trial is not None and not trial.user_attrs.get("surplus"):
                on_trial(ctx.optuna_study, trial, reason=reason)
            if reason is not None:
                failures.add(trial.number, reason)


def _failure(ctx: SearchContext, trial: "optuna.trial.FrozenTrial", told: Any, error: Exception | None
             ) -> str | None:
    """Why this process's trial failed, if its configuration failed: None when it finished, when another
    worker failed it (no heartbeat) or when the study was full; re-raises what is no trial's doing."""
    import optuna

    from hpo.search.trainer import SurplusTrial

    if trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
        return None  # an error here came after the trial: the Trainer reads `best_trial`, absent until one completes
    if trial.state != optuna.trial.TrialState.FAIL:
        if error is not None:
            raise error
        return None
    if isinstance(error, SurplusTrial):
        return None
    if told != optuna.trial.TrialState.FAIL or isinstance(error, optuna.exceptions.UpdateFinishedTrialError):
        # Optuna could not record the trial's end: another worker had failed it already
        search = ctx.study.spec.search
        progress.say(f"trial {trial.number} was failed by another worker (no heartbeat within "
                     f"grace_period={search.stale_after}s; "
                     "raise it on a busy machine); its retry runs again")
        return None
    if error is not None and _raised_by_objective(error):
        if own := trial.system_attrs.get("fail_reason"):  # the trial said why itself (out of memory)
            return str(own)
        return f"{type(error).__name__}: {' '.join(str(error).split())}"[:300]
    value = getattr(ctx.trainer, "objective", None)
    return f"the trial's objective value {value!r} is not a number"  # Optuna fails NaN without raising


def _raised_by_objective(error: BaseException) -> bool:
    """Raised inside `Study.optimize` (by the trial), not by the Trainer reading `best_trial` after it."""
    import optuna

    code = optuna.Study.optimize.__code__
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def _queue_stopped_trial(study: "optuna.Study", trial_id: int | None) -> None:
    """A trial stopped by Ctrl-C/SIGTERM runs again, with its parameters, when the study resumes."""
    from hpo.study.retry import queue_again

    if trial_id is None:
        return
    trial = upstream.storage_of(study).get_trial(trial_id)
    if trial.state.name == "FAIL":
        queue_again(study, trial)


class FailureStreak:
    """Trials of this process that failed with an error since the study last gained a finished trial."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.failed: list[tuple[int, str]] = []
        self._finished: int | None = None

    def study_finished(self, finished: int) -> None:
        if self._finished is not None and finished > self._finished:
            self.failed.clear()
        self._finished = finished

    def add(self, number: int, reason: str) -> None:
        self.failed.append((number, reason))
        if self.limit is not None and len(self.failed) >= self.limit:
            raise SearchError(
                f"{len(self.failed)} trials in a row failed, none finished in between; the last, trial {number}: "
                f"{reason}", hint="fix the cause and rerun; search.max_failures sets how many failures stop it")
