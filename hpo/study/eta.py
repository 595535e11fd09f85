"""When a study will end, from its trials' durations and the running trials' progress (or a budget's plan)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import optuna


def seconds_left(durations: Sequence[float], *, to_start: int, running: Sequence[tuple[float, float | None]],
                 workers: int = 1) -> float | None:
    """Seconds until the last trial ends: the running trials' rest (`(elapsed, fraction done)`, the fraction
    None when unknown) and `to_start` trials of the mean duration, shared by `workers`. None: nothing to go by."""
    mean = sum(durations) / len(durations) if durations else None
    left = 0.0
    for elapsed, done in running:
        if done:
            left += elapsed * (1 - done) / done
        elif mean is not None:
            left += max(0.0, mean - elapsed)
        else:
            return None
    if to_start > 0:
        if mean is None:
            return None
        left += to_start * mean
    return left / max(1, workers)


def study_ends_at(study: "optuna.Study", n_trials: int, now: float) -> float | None:
    """Wall clock (Unix seconds) when the study's search should end; None when there is nothing to go by.

    A budgeted run's plan (kept by `hpo.search.budgeting`) says it while a trial runs; otherwise the finished
    trials' mean duration and the running trials' steps (`steps` user attr) do."""
    from optuna.trial import TrialState

    from hpo.study.budget import ATTR

    trials = study.get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    plan = study.user_attrs.get(ATTR)
    if plan and running and plan.get("ends_at"):
        return float(plan["ends_at"])
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    durations = [float(t.user_attrs["duration_s"]) for t in finished
                 if isinstance(t.user_attrs.get("duration_s"), (int, float))]
    progress = []
    for t in running:
        steps = t.user_attrs.get("steps")
        fraction = steps[0] / steps[1] if isinstance(steps, list) and len(steps) == 2 and steps[1] else None
        elapsed = now - t.datetime_start.timestamp() if t.datetime_start else 0.0
        progress.append((elapsed, fraction))
    to_start = max(0, n_trials - len(finished) - len(running))
    if not running and not to_start:
        return None
    left = seconds_left(durations, to_start=to_start, running=progress, workers=max(1, len(running)))
    return None if left is None else now + left
