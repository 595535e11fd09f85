"""Planning a study to fit a time budget: pure functions of measured costs, data sizes and the pruning rungs.

The measurement is the study's own trials: their `profile` user attrs say how long training, evaluation and
the rest took, how many examples were trained and how many rows scored. The first trial (the Trainer-defaults
baseline) is the first measurement, and every trial after it refines the costs.

Successive halving over training progress (percent of an epoch) gives many configurations a short look and a
few the full training. A trial's expected cost follows Optuna's promotion rule: a trial goes on from a rung
when it is among the best 1/reduction_factor of the trials that reached that rung (the best one while fewer
than reduction_factor have), so the first trials, promoted more often, cost more than the later ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from hpo.spec.schema import PLANNED_TRIALS_CAP

ATTR = "hpo:budget"  # study user attr: the latest plan (deadlines, trials), for `hpo status` and workers
CLOSED = "hpo:budget_closed"  # study user attr: the budget (seconds) within which the search ended
REPORT_S = 3.0  # report.md/html with plots, results.json, the exit: 1.0-1.4 s then about 1 s to exit, measured here
FINAL_MARGIN = 1.1  # on final trainings, and on scorings the scorer was not timed for: their overheads vary
PIPELINE_FACTOR = 1.5  # unseen rows go through transformers.pipeline (tokenizing too) until it is timed


@dataclass(frozen=True)
class Costs:
    """Seconds measured on this machine for this model, data and precision."""

    train_per_example: float  # training, per example trained
    eval_per_row: float  # evaluation during the search, per validation row scored
    trial_overhead: float  # per trial besides training and evaluation: model set-up, reporting, saving, sampler
    test_overhead: float  # per scoring of a saved model in the final stages, besides its rows: loading, pipeline
    test_per_row: float  # scoring unseen rows in the final stages
    scorer_timed: bool = False  # the two above timed on a saved model (a sample's rows: an upper figure)


@dataclass(frozen=True)
class Shape:
    """What a trial does: its data, where it may be stopped, where it ends (percent of an epoch)."""

    train_rows: int
    validation_rows: int
    pruning_rows: int  # validation rows scored at a rung
    test_rows: int
    full: float  # progress at the end of a trial's training: 100 x epochs
    rungs: tuple[int, ...] = ()  # successive halving's rungs; none: every trial trains to the end
    reduction_factor: int = 3
    settle_rows: int = 0  # rows a saved model is scored on to settle it (a multi-label threshold) before its test


@dataclass(frozen=True)
class Finals:
    """What follows the search (see hpo.selection): gate, seeds, retraining, for each base model."""

    top_k: int = 1
    seeds: int = 1
    retrain: bool = False
    models: int = 1


@dataclass(frozen=True)
class Plan:
    trials: int  # trials the study will have when the search ends
    full: int  # of them, trained to the end
    to_start: int  # trials still to start
    next_trial_s: float  # expected seconds of the next trial
    search_s: float  # predicted seconds of the search from now
    final_s: float  # predicted seconds of the final stages, margin included
    search_left_s: float  # seconds the search may still use: the budget left less the final stages

    @property
    def ends_in_s(self) -> float:
        return self.search_s + self.final_s


def measure(profiles: Iterable[dict[str, Any]], *, between_trials_s: float = 0.0,
            scoring: tuple[float, float] | None = None) -> Costs | None:
    """Costs from trial profiles (those with `examples` trained); None before any has them.

    `between_trials_s`: seconds per trial spent outside its training (the sampler, the store);
    `scoring`: the final stages' scorer as timed on a saved model (seconds per row, seconds per scoring
    besides its rows); without it, the search's evaluation speed stands in for it.
    """
    rows = [p for p in profiles if (p.get("examples") or 0) > 0 and p.get("training") is not None]
    if not rows:
        return None
    train_s = sum(float(p["training"]) for p in rows)
    examples = sum(float(p["examples"]) for p in rows)
    eval_s = sum(float(p.get("evaluation") or 0.0) for p in rows)
    scored = sum(float(p.get("eval_rows") or 0.0) for p in rows)
    eval_per_row = eval_s / scored if scored else train_s / examples / 3  # a forward pass: ~1/3 of a step
    rest = [max(0.0, float(p.get("wall") or 0.0) - float(p["training"]) - float(p.get("evaluation") or 0.0))
            for p in rows]
    loads = [float(p.get("model_load") or 0.0) for p in rows]
    per_row, per_scoring = scoring or (eval_per_row * PIPELINE_FACTOR, max(loads))
    return Costs(train_per_example=train_s / examples, eval_per_row=eval_per_row,
                 trial_overhead=sum(rest) / len(rest) + between_trials_s, test_overhead=per_scoring,
                 test_per_row=per_row, scorer_timed=scoring is not None)


def budget_rungs(full: float, evals_per_epoch: int, reduction_factor: int = 3) -> tuple[int, ...]:
    """Successive halving for a budget: one rung below the end, at about full/rf, on the evaluation grid (where
    trials report). Earlier looks at a fine-tuning run decide by chance: at full/rf² (a quarter of an epoch of
    two) 93 of 94 SST-2 trials of MiniLM scored 0.50-0.53 on the pruning rows, chance, while at full/rf they spread
    over 0.67-0.85."""
    target = full / reduction_factor
    slot = 1
    while slot * 100 // evals_per_epoch < target:
        slot += 1
    return rungs_from(slot * 100 // evals_per_epoch, reduction_factor, full)


def rungs_from(min_resource: int, reduction_factor: int, below: float) -> tuple[int, ...]:
    """Optuna's rungs (min_early_stopping_rate 0): min_resource x rf^k, those below `below`."""
    out, rung = [], max(1, min_resource)
    while rung < below:
        out.append(int(rung))
        rung *= reduction_factor
    return tuple(out)


def promotion_chance(at_rung: float, reduction_factor: int) -> float:
    """Chance that a new trial goes on from a rung `at_rung` trials reached before it, its value being as likely
    to rank anywhere among the n = at_rung + 1: Optuna lets the best floor(n / rf) go on, at least the best one."""
    n = at_rung + 1
    return min(1.0, max(1, math.floor(n / reduction_factor)) / n)


def expected_trial(costs: Costs, shape: Shape, population: tuple[float, ...]) -> tuple[float, float, tuple[float, ...]]:
    """(expected seconds of the next trial, chance it trains to the end, rung populations after it).

    `population[k]`: trials that reached rung k so far (expected numbers for planned trials)."""
    per_pct = shape.train_rows / 100 * costs.train_per_example
    rungs = [r for r in shape.rungs if r < shape.full]
    pop = list(population) + [0.0] * max(0, len(rungs) - len(population))
    reach, seconds, done = 1.0, costs.trial_overhead, 0.0
    for k, rung in enumerate(rungs):
        seconds += reach * ((rung - done) * per_pct + shape.pruning_rows * costs.eval_per_row)
        chance = promotion_chance(pop[k], shape.reduction_factor)
        pop[k] += reach
        reach *= chance
        done = rung
    seconds += reach * ((shape.full - done) * per_pct + shape.validation_rows * costs.eval_per_row)
    return seconds, reach, tuple(pop)


def first_look_s(costs: Costs, shape: Shape) -> float | None:
    """Seconds of a trial up to its judgement at the first rung; None without rungs. The search's last trial may
    start when this fits, though its expected cost does not: judged there, it ends in time (most do); promoted,
    the budget cuts it at the search deadline."""
    rungs = [r for r in shape.rungs if r < shape.full]
    if not rungs:
        return None
    return costs.trial_overhead + rungs[0] * shape.train_rows / 100 * costs.train_per_example + \
        shape.pruning_rows * costs.eval_per_row


def full_training_s(costs: Costs, shape: Shape) -> float:
    return costs.trial_overhead + shape.full * shape.train_rows / 100 * costs.train_per_example + \
        shape.validation_rows * costs.eval_per_row


def final_seconds(costs: Costs, shape: Shape, finals: Finals) -> float:
    """The stages after the search, margins included: gate (top_k test scorings, each model settled first where
    the task settles one), seed retrains, a retrain, settling the final model, its test scoring when the gate has
    not done it, and the report. A timed scorer takes no margin: timed on a sample, it is slower per row than on
    a whole split sorted by length (4.7 against 4.0 ms, MiniLM, SST-2)."""
    def scoring(rows: int) -> float:
        return (costs.test_overhead + rows * costs.test_per_row) * (1.0 if costs.scorer_timed else FINAL_MARGIN)

    test = scoring(shape.test_rows)
    settle = scoring(shape.settle_rows) if shape.settle_rows else 0.0
    training = full_training_s(costs, shape) * FINAL_MARGIN
    gate = finals.top_k >= 2
    per_model = (settle + test) * finals.top_k if gate else 0.0
    per_model += settle  # the final model is settled once more, in its own folder
    if finals.seeds >= 2:
        per_model += finals.top_k * finals.seeds * training
    if finals.retrain:
        per_model += training
    if not gate or finals.seeds >= 2 or finals.retrain:  # the final model was not scored by the gate
        per_model += test
    return finals.models * per_model + REPORT_S


def make_plan(costs: Costs, shape: Shape, finals: Finals, *, left_s: float, done: int, full_done: int,
              population: tuple[float, ...] = (), parallel: int = 1, cap: int | None = None,
              observed: tuple[float, float] | None = None, share: float = 1.0) -> Plan:
    """Plan the rest of the search: how many more trials fit in `left_s` seconds with the final stages after.

    `done`: trials finished or running; `full_done`: of them, trained to the end; `parallel`: processes running
    trials at once; `cap`: n_trials when the file sets it. `observed`: (mean seconds, share trained to the end)
    of the finished trials, for pruners whose cost the rung model does not describe (median, percentile,
    hyperband); None: successive halving's rungs (or none: every trial trains to the end). `share`: this search's
    part of the search time left, when other base models' searches follow (their final stages are in `finals`).
    """
    plan = _fill(costs, shape, finals, left_s, done, full_done, population, parallel, cap, observed, share)
    if plan.full < finals.top_k:  # the gate scores the top_k trials that trained to the end, if there are so many
        fewer = Finals(top_k=max(1, plan.full), seeds=finals.seeds, retrain=finals.retrain, models=finals.models)
        plan = _fill(costs, shape, fewer, left_s, done, full_done, population, parallel, cap, observed, share)
    return plan


def _fill(costs: Costs, shape: Shape, finals: Finals, left_s: float, done: int, full_done: int,
          population: tuple[float, ...], parallel: int, cap: int | None, observed: tuple[float, float] | None,
          share: float) -> Plan:
    final = final_seconds(costs, shape, finals)
    search_left = (left_s - final) * share
    pop, used, started, full = population, 0.0, 0, 0.0

    def next_cost() -> tuple[float, float, tuple[float, ...]]:
        if observed is not None:
            return observed[0], observed[1], pop
        return expected_trial(costs, shape, pop)

    first = next_cost()[0]
    while (cap is None or done + started < cap) and started < PLANNED_TRIALS_CAP:
        cost, reach, after = next_cost()
        if used + cost / max(1, parallel) > search_left:
            break
        used += cost / max(1, parallel)
        started += 1
        full += reach
        pop = after
    return Plan(trials=done + started, full=full_done + int(round(full)), to_start=started, next_trial_s=first,
                search_s=used, final_s=final, search_left_s=search_left)


def rungs_text(shape: Shape) -> str:
    rungs = [r for r in shape.rungs if r < shape.full]
    if not rungs:
        return "no pruning: every trial trains to the end"
    keep = f"1/{shape.reduction_factor}"
    return (f"successive halving: every trial is judged at {rungs[0]}% of an epoch, the best {keep} go on"
            + (f" at each rung ({', '.join(f'{r}%' for r in rungs)})" if len(rungs) > 1 else "")
            + f", to the end at {shape.full:g}%")


def describe(plan: Plan, pruning: str) -> str:
    """'about 14 trials, 4 trained to the end (...); final stages ~40s' for the plan line."""
    from hpo.spec.duration import format_duration

    return (f"about {plan.trials} trial{'s' if plan.trials != 1 else ''}, {plan.full} trained to the end "
            f"({pruning}); final stages ~{format_duration(plan.final_s)}")

