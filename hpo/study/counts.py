"""How far a study is: finished trials (complete or pruned), running ones, and what is still missing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    def missing(self, n_trials: int) -> int:
        return max(0, n_trials - self.finished)

    def as_dict(self) -> dict[str, int]:
        return {"complete": self.complete, "pruned": self.pruned, "failed": self.failed,
                "running": self.running, "waiting": self.waiting, "finished": self.finished}


def count_trials(study: "optuna.Study") -> TrialCounts:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    by = {s: 0 for s in TrialState}
    for t in trials:
        by[t.state] += 1
    return TrialCounts(complete=by[TrialState.COMPLETE], pruned=by[TrialState.PRUNED],
                       failed=by[TrialState.FAIL], running=by[TrialState.RUNNING],
                       waiting=by[TrialState.WAITING])
