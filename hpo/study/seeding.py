"""One seed per trial, from the study's seed and the trial's place in the study.

A sampler built once per process with the study's seed starts its random stream afresh in every process, so
a resumed study drew again the configurations it had already run. Here the study's sampler is built anew for
each trial, seeded from the study seed and the trial's position: the number of trials before it, leaving
out the re-runs of trials stopped before they finished (Ctrl-C, SIGTERM, a dead worker), which carry their
parameters and draw, if anything, with the seed of the trial they re-run. A trial then sees the same seed
whether the study ran in one go or was stopped and resumed. Whether a trial is a re-run is fixed when it is
created, so a position never changes once given, and two trials that draw never share one: workers asking
at the same moment never draw alike.

Samplers keep what they learn in the store (CMA-ES its state in trial attributes, NSGA-II its populations
in study attributes), so a fresh instance per trial loses nothing. The grid sampler keeps the study seed: it
shuffles the grid with it and gives each trial the point of its number.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Callable, Sequence

from optuna.samplers import BaseSampler

from hpo import upstream

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState


def trial_seed(seed: int, position: int) -> int:
    digest = hashlib.sha256(f"{seed}:{position}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def position(study: "optuna.Study", trial: "FrozenTrial") -> int:
    """Trials numbered before `trial`, less the re-runs of stopped trials; a re-run takes the position of
    the trial it re-runs, so what it draws (values its stopped trial never asked for) is that trial's."""
    # from the storage: a pruner may hand the sampler a filtered study (Hyperband: one bracket)
    trials = upstream.storage_of(study).get_all_trials(upstream.study_id(study), deepcopy=False)
    number = trial.system_attrs.get("failed_trial", trial.number)
    return sum(1 for t in trials if t.number < number and "retry_history" not in t.system_attrs)


class TrialSeeded(BaseSampler):
    """The study's sampler, built for each trial with that trial's seed.

    It also remembers, for the trial loop, the last trial this process asked for (`trial_id`) and the state
    Optuna recorded it in (`told`; None while running, or when Optuna could not record it because another
    worker had already failed it).
    """

    def __init__(self, build: Callable[[int | None], BaseSampler], seed: int | None, *,
                 per_trial: bool = True, startup: Callable[[int, BaseSampler], BaseSampler] | None = None,
                 n_startup: int = 0) -> None:
        self._build, self._seed, self._per_trial = build, seed, per_trial
        self._startup, self._n_startup = startup, n_startup  # positions below n_startup: startup(position, ...)
        self._sampler = build(seed)
        self.trial_id: int | None = None
        self.told: "TrialState | None" = None

    def before_trial(self, study: "optuna.Study", trial: "FrozenTrial") -> None:
        self.trial_id, self.told = upstream.trial_id(trial), None
        if self._seed is not None and self._per_trial:
            at = position(study, trial)
            self._sampler = self._build(trial_seed(self._seed, at))
            if self._startup is not None and at < self._n_startup:
                self._sampler = self._startup(at, self._sampler)
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: "optuna.Study",
                                    trial: "FrozenTrial") -> dict[str, "BaseDistribution"]:
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: "optuna.Study", trial: "FrozenTrial",
                        search_space: dict[str, "BaseDistribution"]) -> dict[str, Any]:
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study: "optuna.Study", trial: "FrozenTrial", param_name: str,
                           param_distribution: "BaseDistribution") -> Any:
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: "optuna.Study", trial: "FrozenTrial", state: "TrialState",
                    values: Sequence[float] | None) -> None:
        if upstream.trial_id(trial) == self.trial_id:
            self.told = state
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()
