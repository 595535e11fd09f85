"""How far a study is: finished trials (complete or pruned), running ones, and what is still missing.

On an RDB storage the counts come from one GROUP BY query and the listings from bounded queries, not
from loading every trial: workers recount before each trial and `hpo status` must stay fast at
thousands of trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo import upstream

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class TrialCounts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    @property
    def total(self) -> int:
        return self.finished + self.failed + self.running + self.waiting

    def missing(self, n_trials: int) -> int:
        return max(0, n_trials - self.finished)

    def as_dict(self) -> dict[str, int]:
        return {"complete": self.complete, "pruned": self.pruned, "failed": self.failed,
                "running": self.running, "waiting": self.waiting, "finished": self.finished}


def rdb_backend(study: "optuna.Study") -> Any:
    """The study's RDBStorage (under Optuna's cache), or None for other storages."""
    import optuna

    backend = upstream.backend_of(study)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def count_trials(study: "optuna.Study") -> TrialCounts:
    from optuna.trial import TrialState

    by = {s: 0 for s in TrialState}
    rdb = rdb_backend(study)
    if rdb is None:
        for t in study.get_trials(deepcopy=False):
            by[t.state] += 1
    else:
        import sqlalchemy as sa

        trial = upstream.rdb_models().TrialModel
        query = (sa.select(trial.state, sa.func.count()).where(trial.study_id == upstream.study_id(study))
                 .group_by(trial.state))
        with rdb.engine.connect() as conn:
            for state, n in conn.execute(query):
                by[TrialState[state] if isinstance(state, str) else state] += n
    return TrialCounts(complete=by[TrialState.COMPLETE], pruned=by[TrialState.PRUNED],
                       failed=by[TrialState.FAIL], running=by[TrialState.RUNNING],
                       waiting=by[TrialState.WAITING])


def latest_trials(study: "optuna.Study", limit: int) -> list["optuna.trial.FrozenTrial"]:
    """The `limit` trials with the highest numbers (all with limit 0), oldest first."""
    rdb = rdb_backend(study)
    if rdb is None or not limit:
        trials = study.get_trials(deepcopy=False)
        return trials[-limit:] if limit else trials
    import sqlalchemy as sa

    trial = upstream.rdb_models().TrialModel
    query = (sa.select(trial.trial_id).where(trial.study_id == upstream.study_id(study))
             .order_by(trial.number.desc()).limit(limit))
    with rdb.engine.connect() as conn:
        ids = [row[0] for row in conn.execute(query)]
    if not ids:
        return []
    # one range query from the smallest id holds them all (ids and numbers may interleave across workers)
    found = upstream.rdb_trials_after(rdb, study, min(ids) - 1)
    return sorted(found, key=lambda t: t.number)[-limit:]


def running_trials(study: "optuna.Study") -> list["optuna.trial.FrozenTrial"]:
    from optuna.trial import TrialState

    rdb = rdb_backend(study)
    if rdb is None:
        return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return rdb.get_all_trials(upstream.study_id(study), deepcopy=False, states=(TrialState.RUNNING,))
