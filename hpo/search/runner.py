"""Run the search: `Trainer.hyperparameter_search` one trial at a time against the shared study.

One trial per call lets every worker recount the store before starting, so a study stopped, resumed
or shared by many workers ends with exactly `n_trials` finished trials and never repeats one.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpo import interrupts, progress
from hpo.study.counts import count_trials
from hpo.study.factory import load_or_create, study_kwargs
from hpo.study.workers import claim_once, worker_id

if TYPE_CHECKING:
    import optuna

    from hpo.data import Splits
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


def fail_orphans(optuna_study: "optuna.Study") -> int:
    """Mark RUNNING trials FAIL (and re-queue them): only called when no other process can own them."""
    from optuna.trial import TrialState

    storage = optuna_study._storage
    callback = storage.get_heartbeat_stale_trial_callback() if hasattr(
        storage, "get_heartbeat_stale_trial_callback") else None
    n = 0
    for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_system_attr(t._trial_id, "fail_reason", "its process died")  # a failed trial is frozen
        if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
            n += 1
            if callback is not None:
                callback(optuna_study, storage.get_trial(t._trial_id))
    return n


def enqueue_initial(ctx: SearchContext) -> None:
    """Before the sampler: the Trainer-defaults baseline, then the study file's known configurations.

    Only into a new study, so a resumed or shared study never gets them twice.
    """
    from hpo.search.space import trainer_defaults
    from hpo.selection.warm import enqueue_warm_start, warm_start

    s = ctx.study.spec
    if ctx.optuna_study.user_attrs.get("initial_enqueued") or ctx.optuna_study.get_trials(deepcopy=False):
        return
    warm = warm_start(ctx.study)  # before the claim: an unreadable source must not use up the one-time step
    if not claim_once(ctx.optuna_study, "hpo:initial_enqueued"):  # workers starting together enqueue once
        return
    ctx.optuna_study.set_user_attr("initial_enqueued", True)
    if s.search.baseline:
        ctx.optuna_study.enqueue_trial(trainer_defaults(s.search, s.training), user_attrs={"baseline": True})
    for config in s.search.enqueue:
        ctx.optuna_study.enqueue_trial(dict(config), user_attrs={"enqueued": True})
    enqueue_warm_start(ctx.optuna_study, warm)


def _no_traceback_when_interrupted(record: logging.LogRecord) -> bool:
    """Optuna logs a trial stopped by Ctrl-C/SIGTERM with a traceback; the stop is deliberate: one line."""
    if record.exc_info and record.exc_info[0] is KeyboardInterrupt:
        record.exc_info = None
        record.exc_text = None
    return True


def run_trials(ctx: SearchContext, *, max_trials: int | None = None, timeout: float | None = None,
               on_trial: Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None] | None = None,
               wait_for_others: bool = True) -> int:
    """Run trials until the study has n_trials finished (or this process ran max_trials). Returns trials run."""
    import optuna

    from hpo.selection.objectives import make_objective, search_direction

    spec = ctx.study.spec
    n_trials = spec.search.n_trials
    started = time.monotonic()
    ran = 0
    logging.getLogger("optuna.study._optimize").addFilter(_no_traceback_when_interrupted)
    kwargs = study_kwargs(ctx.study, ctx.model_id, ctx.storage)
    me = worker_id()
    while True:
        counts = count_trials(ctx.optuna_study)
        if counts.finished >= n_trials or (max_trials is not None and ran >= max_trials):
            return ran
        if timeout is not None and time.monotonic() - started > timeout:
            return ran
        if counts.finished + counts.running >= n_trials:
            if not wait_for_others:
                return ran
            with warnings.catch_warnings():  # heartbeats are marked experimental but are Optuna's fault tolerance
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(ctx.optuna_study)  # a dead worker's trial frees its slot
            time.sleep(POLL_SECONDS)
            continue
        before = {t.number for t in ctx.optuna_study.get_trials(deepcopy=False) if t.state.name != "WAITING"}
        with interrupts.protected():  # a stop cuts the training only, never Optuna's writes around it
            try:
                ctx.trainer.hyperparameter_search(
                    hp_space=ctx.trainer.hp_space_fn, compute_objective=make_objective(spec, ctx.trainer),
                    n_trials=1, direction=search_direction(spec), backend="optuna", catch=(Exception,), **kwargs)
            except Exception:
                if not (taken := _taken_over(ctx.optuna_study, before, me)):
                    raise
                progress.say(f"trial {taken.number} was failed by another worker (no heartbeat within "
                             f"grace_period={spec.search.grace_period or 3 * spec.search.heartbeat_interval}s; "
                             "raise it on a busy machine); its retry runs again")
            ran += 1
            if on_trial is not None:
                mine = [t for t in ctx.optuna_study.get_trials(deepcopy=False)
                        if t.number not in before and t.user_attrs.get("worker") == me]
                for t in mine:
                    on_trial(ctx.optuna_study, t)


def _taken_over(study: "optuna.Study", before: set[int], me: str) -> "optuna.trial.FrozenTrial | None":
    """This process's trial, if another worker already failed it as stale (Optuna then cannot tell it)."""
    for t in study.get_trials(deepcopy=False):
        if t.number not in before and t.user_attrs.get("worker") == me and t.state.name == "FAIL":
            return t
    return None
