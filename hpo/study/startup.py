"""Start-up trials spread over the space: trial position i takes point i of a scrambled Sobol sequence.

TPE, GP and CMA-ES draw their first trials independently at random, and a few random draws can leave whole
regions unseen (eight draws with no small batch at a high learning rate). A Sobol sequence covers the space
evenly at every prefix: its first 2^k points split each dimension's range into 2^k equal parts, one point in
each. The point is the trial's position (`hpo.study.seeding`), so a resumed or shared study draws what one
uninterrupted run draws; the scramble comes from the study seed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from optuna.samplers import BaseSampler

from hpo.spec.schema import CategoricalParam, FloatParam, IntParam
from hpo.study.factory import param_grid

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from hpo.spec.schema import SamplerSpec, SearchSpec

DEFAULT_STARTUP = {"tpe": 10, "gp": 10, "cmaes": 1}  # Optuna's defaults for these samplers' random start


def startup_count(sampler: "SamplerSpec") -> int | None:
    """The sampler's start-up trials (the file's number, else Optuna's default); None if it has no start-up."""
    if sampler.name not in DEFAULT_STARTUP:
        return None
    return DEFAULT_STARTUP[sampler.name] if sampler.n_startup_trials is None else sampler.n_startup_trials


def startup_trials(search: "SearchSpec") -> int:
    """How many trials, by position, the Sobol sequence draws: the sampler's start-up (0 if it has none)."""
    s = search.sampler
    if s.startup != "sobol" or s.seed is None or not search.space:
        return 0
    return startup_count(s) or 0


def sobol_point(dimensions: int, index: int, seed: int) -> list[float]:
    """Point `index` of the scrambled Sobol sequence in [0, 1)^dimensions."""
    from scipy.stats import qmc

    points = qmc.Sobol(dimensions, scramble=True, rng=seed).random_base2(index.bit_length())  # 2^m > index
    return [float(u) for u in points[index]]


def from_unit(p: FloatParam | IntParam | CategoricalParam, u: float) -> Any:
    """The value at `u` in [0, 1) of a parameter's range: equal parts of the range (of its log with log=True)."""
    if isinstance(p, CategoricalParam) or p.step is not None:  # each choice or grid value an equal share
        values = param_grid(p)
        return values[min(int(u * len(values)), len(values) - 1)]
    if isinstance(p, IntParam):  # each integer an equal share (of the log range with log=True)
        lo, hi = (math.log(p.low), math.log(p.high + 1)) if p.log else (p.low, p.high + 1)
        x = lo + u * (hi - lo)
        return min(int(math.exp(x) if p.log else x), p.high)
    x = math.exp(math.log(p.low) + u * (math.log(p.high) - math.log(p.low))) if p.log else p.low + u * (p.high - p.low)
    return min(max(x, p.low), p.high)  # exp(log(x)) may round past the bounds


class SobolStartup(BaseSampler):
    """One start-up trial's sampler: the space's values at its Sobol point; anything else from `fallback`."""

    def __init__(self, space: Mapping[str, FloatParam | IntParam | CategoricalParam], *, position: int, seed: int,
                 fallback: BaseSampler) -> None:
        self._space = dict(space)
        self._point = dict(zip(self._space, sobol_point(len(self._space), position, seed)))
        self._fallback = fallback

    def infer_relative_search_space(self, study: "optuna.Study", trial: "FrozenTrial") -> dict[str, Any]:
        return {}

    def sample_relative(self, study: "optuna.Study", trial: "FrozenTrial",
                        search_space: dict[str, "BaseDistribution"]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: "optuna.Study", trial: "FrozenTrial", param_name: str,
                           param_distribution: "BaseDistribution") -> Any:
        if param_name not in self._point:
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        return from_unit(self._space[param_name], self._point[param_name])
