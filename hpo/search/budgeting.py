"""The budget during a run: the deadline, a plan before each trial from the timings so far, the cut.

With `search.budget` (or `hpo run --budget 30m`) the run, from the command's launch to the report, ends by the
deadline. Before each new trial the keeper plans again with the costs measured on the trials so far
(`hpo.study.budget`) and starts no trial when it and the final stages after it would pass the deadline; a
trial still running when the search's share of the budget is up is cut (pruned) by `hpo.live.TrialWatch`.
The plan is kept in the study's user attrs (`hpo:budget`) for `hpo status` and for workers, which follow the
coordinator's search deadline. A search the budget ended is marked, so a rerun with the same budget goes
straight to the final stages (a larger budget searches on).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from hpo import progress
from hpo.spec.duration import format_duration
from hpo.study import budget as planning

if TYPE_CHECKING:
    import optuna

    from hpo.search.runner import SearchContext
    from hpo.spec import LoadedStudy

ATTR, CLOSED = planning.ATTR, planning.CLOSED
SCORING_ROWS = 128  # validation rows the final stages' scorer is timed on, once a trial's model is kept


def _clock(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))


def rung_population(trials: list["optuna.trial.FrozenTrial"], rungs: int) -> tuple[float, ...]:
    """Trials that reached each rung (Optuna's successive halving marks them `completed_rung_k`)."""
    return tuple(float(sum(f"completed_rung_{k}" in t.system_attrs for t in trials)) for k in range(rungs))


class BudgetKeeper:
    """One process's view of the budget. `lead`: the process that plans (hpo run); workers follow its plan."""

    def __init__(self, study: "LoadedStudy", *, started: float, parallel: int = 1, lead: bool = True,
                 say: Callable[[str], None] = progress.say) -> None:
        self.study, self.parallel, self.lead, self.say = study, max(1, parallel), lead, say
        self.seconds = float(study.spec.search.budget or 0.0)
        self.started, self.deadline = started, started + self.seconds
        self.plan: planning.Plan | None = None
        self.ends_at: float | None = None  # when the plan says the run ends (Unix seconds)
        self.models_after = 0  # base models still to search after this one (they share what is left)
        self.between: list[float] = []  # seconds per trial outside its training: the sampler, the store
        self.scoring: dict[str, tuple[float, float] | None] = {}  # study name -> the scorer's timing (measure())
        self._shown: tuple[int, int] | None = None
        self._said_measuring = False

    # -- what the runner asks ------------------------------------------------------------------------
    def total_text(self) -> str:
        """The trials the study runs to, for the trial lines: the plan's, or the file's cap."""
        if not self.study.spec.search.planned_trials:
            return str(self.study.spec.search.n_trials)
        return f"~{self.plan.trials}" if self.plan is not None else "?"

    def should_start(self, ctx: "SearchContext") -> bool:
        """Plan again and say whether another trial fits; sets the cut for it."""
        from hpo.live import watch_of

        study = ctx.optuna_study
        watch = watch_of(ctx.trainer)
        closed = study.user_attrs.get(CLOSED)
        if closed is not None and (not self.lead or closed >= self.seconds - 1e-6):
            if self.lead:
                self.say(f"budget: the search ended within a budget of {format_duration(closed)} in an earlier "
                         "run; going on to the final stages (a larger --budget searches on)")
            return False
        if not self.lead:
            return self._follow(ctx, watch)
        trials = study.get_trials(deepcopy=False)
        complete = any(t.state.name == "COMPLETE" for t in trials)
        if complete and study.study_name not in self.scoring:
            self._time_scoring(ctx, trials)
        now = time.time()
        costs = self._costs(trials, self.scoring.get(study.study_name))
        if costs is None:
            if not self._said_measuring:
                self._said_measuring = True
                self.say(f"budget {format_duration(self.seconds)}: the run ends by {_clock(self.deadline)}; the "
                         "first trial measures the speed, then hpo plans the rest")
            if watch is not None:
                watch.stop_at = None
            return not complete or now < self.deadline
        shape = self.shape(ctx, trials)
        plan, pruning = self._plan(costs, shape, trials, now)
        self.plan = plan
        self._record(study, plan, now)
        self._show(plan, pruning, now)
        if watch is not None:  # never cut before one trial has trained to the end: the final stages need it
            watch.stop_at = now + plan.search_left_s if complete else None
        if not complete:
            return True
        if plan.to_start == 0:
            look = planning.first_look_s(costs, shape)
            if look is not None and look <= plan.search_left_s:
                return True  # a look to the first rung fits; promoted past the time left, the trial is cut
            study.set_user_attr(CLOSED, self.seconds)
            late = now + plan.final_s - self.deadline
            self.say(f"budget: no further trial fits (the next would take ~{format_duration(plan.next_trial_s)}, "
                     f"{format_duration(max(0.0, plan.search_left_s))} are left for the search); final stages next"
                     + (f"; the run ends about {format_duration(late)} past the budget: the trials so far took "
                        "longer than it allows" if late > 0.1 * self.seconds else ""))
            return False
        return True

    def trial_done(self, trial: "optuna.trial.FrozenTrial", loop_s: float) -> None:
        wall = (trial.user_attrs.get("profile") or {}).get("wall")
        if isinstance(wall, (int, float)) and loop_s >= wall:
            self.between.append(loop_s - wall)

    # -- planning -------------------------------------------------------------------------------------
    def _costs(self, trials: list["optuna.trial.FrozenTrial"],
               scoring: tuple[float, float] | None = None) -> planning.Costs | None:
        profiles = [t.user_attrs.get("profile") or {} for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        return planning.measure(profiles, between_trials_s=self._between(), scoring=scoring)

    def _time_scoring(self, ctx: "SearchContext", trials: list["optuna.trial.FrozenTrial"]) -> None:
        """The final stages score saved models through `transformers.pipeline`, at a speed the search's
        evaluations do not tell (0.6-2.5x theirs per row, measured): time it once, on a kept trial model."""
        from hpo.final import time_scoring
        from hpo.search.trainer import kept_model
        from hpo.study.workers import study_uid

        uid = study_uid(ctx.optuna_study)
        folder = next((m for t in trials if t.state.name == "COMPLETE" and (m := kept_model(t, uid))), None)
        if folder is None:
            return
        name, timing = ctx.optuna_study.study_name, None
        try:
            timing = time_scoring(self.study, folder, ctx.splits, rows=min(SCORING_ROWS, len(ctx.splits.test)))
        except Exception as e:  # only a timing: the final stages say what is wrong with the scorer
            self.say(f"budget: timing the unseen-data scorer failed ({type(e).__name__}: {e}); planning with "
                     "the search's evaluation speed")
        self.scoring[name] = timing

    def _between(self) -> float:
        return sum(self.between) / len(self.between) if self.between else 0.0

    def shape(self, ctx: "SearchContext", trials: list["optuna.trial.FrozenTrial"]) -> planning.Shape:
        from hpo.study.factory import full_progress, resolved_pruner

        pruner = resolved_pruner(self.study)
        ends = [t.user_attrs.get("progress") for t in trials if t.state.name == "COMPLETE"]
        full = float(max((e for e in ends if isinstance(e, (int, float))), default=full_progress(self.study)))
        rungs: tuple[int, ...] = ()
        if pruner.name == "successive_halving" and isinstance(pruner.min_resource, int):
            rungs = planning.rungs_from(pruner.min_resource, pruner.reduction_factor, full)
        pruning = getattr(ctx.trainer, "pruning_eval_dataset", None)
        splits = ctx.splits
        return planning.Shape(train_rows=len(splits.train), validation_rows=len(splits.validation),
                              pruning_rows=len(pruning) if pruning is not None else len(splits.validation),
                              test_rows=len(splits.test), full=full, rungs=rungs,
                              reduction_factor=pruner.reduction_factor,
                              settle_rows=len(splits.validation) if self.study.task.settles_on_validation else 0)

    def finals(self) -> planning.Finals:
        spec = self.study.spec
        return planning.Finals(top_k=spec.selection.top_k, seeds=spec.selection.seeds,
                               retrain=spec.final.strategy == "retrain", models=1 + self.models_after)

    def _plan(self, costs: planning.Costs, shape: planning.Shape, trials: list["optuna.trial.FrozenTrial"],
              now: float) -> tuple[planning.Plan, str]:
        """The plan, and how trials are cut short, in words."""
        from hpo.study.factory import resolved_pruner

        finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        running = sum(t.state.name == "RUNNING" for t in trials)
        population = rung_population(trials, len(shape.rungs))
        observed, pruning = None, planning.rungs_text(shape)
        pruner = resolved_pruner(self.study)
        if pruner.name != "none" and not shape.rungs:  # a pruner the rung model does not describe
            walls = [float((t.user_attrs.get("profile") or {}).get("wall") or 0.0) for t in finished]
            whole = sum(t.state.name == "COMPLETE" for t in finished) / len(finished)
            observed = (sum(walls) / len(walls) + self._between(), whole)
            pruning = f"{pruner.name} pruner; so far {whole:.0%} of the trials trained to the end"
        search = self.study.spec.search
        return planning.make_plan(
            costs, shape, self.finals(), left_s=self.deadline - now, done=len(finished) + running,
            full_done=sum(t.state.name == "COMPLETE" for t in trials), population=population,
            parallel=self.parallel, cap=None if search.planned_trials else search.n_trials, observed=observed,
            share=1.0 / (1 + self.models_after)), pruning

    def _record(self, study: "optuna.Study", plan: planning.Plan, now: float) -> None:
        self.ends_at = now + plan.ends_in_s
        study.set_user_attr(ATTR, {
            "budget_s": self.seconds, "deadline": round(self.deadline, 1), "trials": plan.trials, "full": plan.full,
            "search_deadline": round(now + plan.search_left_s, 1), "ends_at": round(now + plan.ends_in_s, 1),
            "updated": round(now, 1)})

    def _show(self, plan: planning.Plan, pruning: str, now: float) -> None:
        """The first plan, then a new one when its numbers move (not every trial's small change)."""
        shown = self._shown
        if shown is not None and abs(plan.trials - shown[0]) < max(2, 0.1 * shown[0]) and abs(plan.full - shown[1]) < 2:
            return
        self._shown = (plan.trials, plan.full)
        self.say(f"{'plan' if shown is None else 're-plan'}: {planning.describe(plan, pruning)}; "
                 f"ends about {_clock(now + plan.ends_in_s)} (budget {format_duration(self.seconds)} ends "
                 f"{_clock(self.deadline)})")

    def _follow(self, ctx: "SearchContext", watch: Any) -> bool:
        """A worker: start a trial while its expected cost fits before the coordinator's search deadline."""
        record = ctx.optuna_study.user_attrs.get(ATTR)
        if not record:
            return True  # the coordinator is still measuring
        trials = ctx.optuna_study.get_trials(deepcopy=False)
        costs = self._costs(trials)
        complete = any(t.state.name == "COMPLETE" for t in trials)
        if watch is not None:
            watch.stop_at = float(record["search_deadline"]) if complete else None
        if costs is None or not complete:
            return True
        shape = self.shape(ctx, trials)
        next_s = planning.expected_trial(costs, shape, rung_population(trials, len(shape.rungs)))[0]
        look = planning.first_look_s(costs, shape)
        needed = next_s if look is None else min(next_s, look)
        return time.time() + needed <= float(record["search_deadline"])

    # -- the end --------------------------------------------------------------------------------------
    def summary(self, ended: float) -> dict[str, Any]:
        wall = ended - self.started
        return {"budget_s": self.seconds, "wall_s": round(wall, 1), "wall_vs_budget": round(wall / self.seconds, 3),
                "planned_trials": self.plan.trials if self.plan else None,
                "planned_full": self.plan.full if self.plan else None}
