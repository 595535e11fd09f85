"""Run the search: `Trainer.hyperparameter_search` one trial at a time against the shared study.

One trial per call lets every worker recount the store before starting, so a study stopped, resumed
or shared by many workers ends with exactly `n_trials` finished trials and never repeats one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hpo.study.counts import count_trials
from hpo.study.factory import load_or_create, study_kwargs

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
        if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
            storage.set_trial_system_attr(t._trial_id, "fail_reason", "its process died")
            n += 1
            if callback is not None:
                callback(optuna_study, storage.get_trial(t._trial_id))
    return n


def enqueue_baseline(ctx: SearchContext) -> None:
    """The Trainer-defaults trial goes first, once per study, for the report's comparison."""
    from hpo.search.space import trainer_defaults

    s = ctx.study.spec
    if not s.search.baseline or ctx.optuna_study.user_attrs.get("baseline_enqueued"):
        return
    if ctx.optuna_study.get_trials(deepcopy=False):
        return
    params = trainer_defaults(s.search, s.training)
    ctx.optuna_study.set_user_attr("baseline_enqueued", True)
    ctx.optuna_study.enqueue_trial(params, user_attrs={"baseline": True}, skip_if_exists=True)


def run_trials(ctx: SearchContext, *, max_trials: int | None = None, timeout: float | None = None,
               on_trial: Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None] | None = None,
               wait_for_others: bool = True) -> int:
    """Run trials until the study has n_trials finished (or this process ran max_trials). Returns trials run."""
    import optuna

    from hpo.metrics import metric_names  # noqa: F401  (import early: metric loading errors before training)

    spec = ctx.study.spec
    n_trials, direction = spec.search.n_trials, spec.objective.resolved_direction
    key = _objective_key(spec.objective.metric)
    started = time.monotonic()
    ran = 0
    kwargs = study_kwargs(ctx.study, ctx.model_id, ctx.storage)
    while True:
        counts = count_trials(ctx.optuna_study)
        if counts.finished >= n_trials or (max_trials is not None and ran >= max_trials):
            return ran
        if timeout is not None and time.monotonic() - started > timeout:
            return ran
        if counts.finished + counts.running >= n_trials:
            if not wait_for_others:
                return ran
            optuna.storages.fail_stale_trials(ctx.optuna_study)  # a dead worker's trial frees its slot
            time.sleep(POLL_SECONDS)
            continue
        before = {t.number for t in ctx.optuna_study.get_trials(deepcopy=False)}
        ctx.trainer.hyperparameter_search(
            hp_space=ctx.trainer.hp_space_fn, compute_objective=lambda m: m[key], n_trials=1,
            direction=direction, backend="optuna", catch=(Exception,), **kwargs)
        ran += 1
        if on_trial is not None:
            mine = [t for t in ctx.optuna_study.get_trials(deepcopy=False) if t.number not in before]
            for t in mine:
                on_trial(ctx.optuna_study, t)


def _objective_key(metric: str) -> str:
    name = metric.rstrip("/").split("/")[-1].removesuffix(".py")
    return f"eval_{name}"
