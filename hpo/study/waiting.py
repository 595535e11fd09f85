"""`hpo finalize --wait`: a finalizer started with the workers (a Kubernetes Job) waits until they are done.

Done means every model's study has `n_trials` finished (with a budget: its search closed by the plan, see
`hpo.search.budgeting`) and nothing running; or, when the workers stopped short of that (a failure bound, or
all of them gone), no trial has been running or queued for `quiet` seconds. A worker that died mid-trial is
failed here as in the workers (heartbeat), so its retry is queued and the wait goes on until a worker runs it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from hpo.study.counts import TrialCounts, count_trials
from hpo.study.factory import load_existing, open_storage, study_names
from hpo.study.stale import StaleTrials

if TYPE_CHECKING:
    from hpo.spec import LoadedStudy

POLL_SECONDS = 10.0


def quiet_seconds(study: "LoadedStudy") -> float:
    """How long no trial may run before the workers count as stopped: three heartbeat grace periods, at
    least a minute (longer than a worker takes between two trials)."""
    s = study.spec.search
    return max(60.0, 3 * s.stale_after)


def wait_for_workers(study: "LoadedStudy", *, say: Callable[[str], None], poll: float = POLL_SECONDS,
                     quiet: float | None = None) -> None:
    from hpo.study.budget import CLOSED

    storage = open_storage(study)
    quiet = quiet_seconds(study) if quiet is None else quiet
    search = study.spec.search
    n_trials = search.trial_cap
    stale = StaleTrials(search.stale_after)
    idle_since: float | None = None
    shown = None
    while True:
        counts: list[TrialCounts] = []
        closed: list[bool] = []
        for model in study_names(study):
            existing = load_existing(study, model, storage)
            if existing is not None:
                stale.fail(existing)
            counts.append(count_trials(existing) if existing is not None else TrialCounts())
            closed.append(existing is not None and CLOSED in existing.user_attrs)
        if all((c.finished >= n_trials or shut) and not c.running for c, shut in zip(counts, closed)):
            return
        busy = any(c.running or c.waiting for c in counts)
        started = any(c.total for c in counts)
        now = time.monotonic()
        idle_since = None if busy or not started else (idle_since or now)
        if idle_since is not None and now - idle_since >= quiet:
            say(f"no trial has run for {quiet:.0f}s: finalizing the {sum(c.finished for c in counts)} "
                "finished trial(s)")
            return
        of = "" if search.planned_trials else f"/{n_trials}"
        line = ", ".join(f"{c.finished}{of} finished, {c.running} running" for c in counts)
        if line != shown:
            say(f"waiting for the workers: {line}")
            shown = line
        time.sleep(poll)
