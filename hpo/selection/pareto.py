"""The order in which trials are candidates for the final model, and the Pareto front of multi-objective studies.

Single objective: by validation value. Multi-objective: trials within the budget first, Pareto-front members
before dominated trials, then by the pick rule's objective (default the metric), then by each objective in
turn (ties in the metric go to the cheaper trial).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.study.objectives import directions, is_multi, named_values, objective_names

if TYPE_CHECKING:
    import optuna

    from hpo.spec.schema import StudySpec


def completed(study: "optuna.Study") -> list["optuna.trial.FrozenTrial"]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]


def within_budget(values: dict[str, float], budget: dict[str, float]) -> bool:
    return all(values.get(k, float("inf")) <= limit for k, limit in budget.items())


def ranked(study: "optuna.Study", spec: "StudySpec") -> list["optuna.trial.FrozenTrial"]:
    """Completed trials, best candidate first."""
    names, dirs = objective_names(spec), directions(spec)
    sign = {n: (-1.0 if d == "maximize" else 1.0) for n, d in zip(names, dirs)}
    pick = spec.selection.pick
    best = pick.best or names[0]

    on_front = front_numbers(study)

    def key(t: "optuna.trial.FrozenTrial") -> tuple[Any, ...]:
        v = named_values(t, names)
        return (not within_budget(v, pick.budget), bool(on_front) and t.number not in on_front,
                *[sign[n] * v[n] for n in [best, *names]], t.number)
    return sorted(completed(study), key=key)


def front(study: "optuna.Study", spec: "StudySpec") -> dict[str, Any] | None:
    """The Pareto front and the pick rule's choice, for results.json (None for single-objective studies)."""
    if not is_multi(spec):
        return None
    names, pick = objective_names(spec), spec.selection.pick
    members = sorted(study.best_trials, key=lambda t: t.number)
    order = ranked(study, spec)
    chosen = order[0] if order else None
    warning = None
    if chosen is not None and pick.budget and not within_budget(named_values(chosen, names), pick.budget):
        warning = (f"no trial meets the budget {budget_text(pick.budget)}; trial #{chosen.number} is the best "
                   f"by {pick.best or names[0]} without it")
    return {"objectives": names, "directions": directions(spec),
            "rule": {"best": pick.best or names[0], "budget": dict(pick.budget)},
            "front": [{"trial": t.number, "values": named_values(t, names),
                       "within_budget": within_budget(named_values(t, names), pick.budget)} for t in members],
            "picked": chosen.number if chosen is not None else None, "warning": warning}


def front_numbers(study: "optuna.Study") -> set[int]:
    """Numbers of the Pareto-front trials (empty for a single-objective study)."""
    if len(study.directions) < 2:
        return set()
    return {t.number for t in study.best_trials}


def budget_text(budget: dict[str, float]) -> str:
    return ", ".join(f"{k} <= {v:g}" for k, v in budget.items()) or "none"
