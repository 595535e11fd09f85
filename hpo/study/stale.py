"""Trials whose process is gone: failed, and queued to run again (`hpo.study.retry`), so no trial stays RUNNING.

Optuna fails a trial as stale when its heartbeat is older than the grace period, but only a trial that has
recorded one: a worker killed between creating its trial and its first heartbeat would leave it RUNNING for
ever, and the workers and finalizers waiting for the study to fill would wait for ever too.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Iterable

from hpo import upstream
from hpo.study.counts import rdb_backend

if TYPE_CHECKING:
    import optuna


def fail_trials(study: "optuna.Study", trials: Iterable["optuna.trial.FrozenTrial"], reason: str) -> int:
    """Mark RUNNING trials FAIL with `reason` and queue them again (the storage's stale-trial callback)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = upstream.storage_of(study)
    callback = storage.get_heartbeat_stale_trial_callback() if hasattr(
        storage, "get_heartbeat_stale_trial_callback") else None
    n = 0
    for t in trials:
        try:
            storage.set_trial_system_attr(upstream.trial_id(t), "fail_reason", reason)  # a failed trial is frozen
            failed = storage.set_trial_state_values(upstream.trial_id(t), state=TrialState.FAIL)
        except UpdateFinishedTrialError:  # it ended meanwhile (another process failed or finished it)
            continue
        if failed:
            n += 1
            if callback is not None:
                callback(study, storage.get_trial(upstream.trial_id(t)))
    return n


def fail_orphans(study: "optuna.Study") -> int:
    """Mark every RUNNING trial FAIL and queue it again: only when no other process can own them."""
    from optuna.trial import TrialState

    return fail_trials(study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)), "its process died")


def trials_without_heartbeat(study: "optuna.Study") -> list[int]:
    """Ids of the study's RUNNING trials that never recorded a heartbeat (RDB storages; none for others)."""
    import sqlalchemy as sa
    from optuna.trial import TrialState

    rdb = rdb_backend(study)
    if rdb is None:
        return []
    models = upstream.rdb_models()
    trial, beat = models.TrialModel, models.TrialHeartbeatModel
    query = (sa.select(trial.trial_id)
             .where(trial.study_id == upstream.study_id(study), trial.state == TrialState.RUNNING,
                    ~sa.exists().where(beat.trial_id == trial.trial_id)))
    with rdb.engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


class StaleTrials:
    """Fails the trials of processes that died: Optuna's stale heartbeats, and trials seen RUNNING without
    any heartbeat for a whole `grace_period` by this process's clock (other machines' clocks may differ)."""

    def __init__(self, grace_period: float) -> None:
        self.grace_period = grace_period
        self._silent_since: dict[int, float] = {}

    def fail(self, study: "optuna.Study") -> int:
        """Fail what is stale now; returns how many trials without a heartbeat were failed."""
        import optuna

        storage = upstream.storage_of(study)
        if not upstream.heartbeat_enabled(storage):
            return 0
        with warnings.catch_warnings():  # heartbeats are marked experimental but are Optuna's fault tolerance
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        now = time.monotonic()
        silent = trials_without_heartbeat(study)
        self._silent_since = {t: self._silent_since.get(t, now) for t in silent}
        gone = [t for t, since in self._silent_since.items() if now - since >= self.grace_period]
        if not gone:
            return 0
        trials = [storage.get_trial(t) for t in gone]
        return fail_trials(study, trials, "its process died before its first heartbeat")
