"""Optuna objects from the validated spec: sampler, pruner, and the study itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.study.storage import make_storage

if TYPE_CHECKING:
    import optuna

    from hpo.spec import LoadedStudy
    from hpo.spec.schema import PrunerSpec, SamplerSpec, SearchSpec
    from hpo.study.seeding import TrialSeeded


def study_names(study: "LoadedStudy") -> dict[str, str]:
    """Model -> study name in the storage: the file's name, suffixed per model when comparing several."""
    models = study.spec.models
    if len(models) == 1:
        return {models[0]: study.spec.name}
    return {m: f"{study.spec.name}--{m.rstrip('/').replace('/', '_')}" for m in models}


def make_sampler(spec: "SamplerSpec", search: "SearchSpec") -> "TrialSeeded":
    """The study's sampler, seeded anew for each trial from the study seed and the trial's position (see
    `hpo.study.seeding`), so a resumed study draws what one uninterrupted run would have drawn."""
    from hpo.study.seeding import TrialSeeded
    from hpo.study.startup import SobolStartup, startup_trials

    def startup(position: int, fallback: "optuna.samplers.BaseSampler") -> SobolStartup:
        return SobolStartup(search.space, position=position, seed=spec.seed, fallback=fallback)

    return TrialSeeded(lambda seed: optuna_sampler(spec, search, seed), spec.seed, per_trial=spec.name != "grid",
                       startup=startup, n_startup=startup_trials(search))


def optuna_sampler(spec: "SamplerSpec", search: "SearchSpec", seed: int | None) -> "optuna.samplers.BaseSampler":
    import optuna

    from hpo.study.startup import startup_count

    s = optuna.samplers
    count = startup_count(spec)
    startup = {} if count is None else {"n_startup_trials": count}
    if spec.name == "tpe":
        return s.TPESampler(seed=seed, **startup)
    if spec.name == "random":
        return s.RandomSampler(seed=seed)
    if spec.name == "cmaes":
        return s.CmaEsSampler(seed=seed, **startup)
    if spec.name == "gp":
        return s.GPSampler(seed=seed, **startup)
    if spec.name == "nsga2":
        return s.NSGAIISampler(seed=seed)
    return s.GridSampler(grid_values(search), seed=seed)


def grid_values(search: "SearchSpec") -> dict[str, list[Any]]:
    return {key: param_grid(p) for key, p in search.space.items()}


def param_grid(p: Any) -> list[Any]:
    """A categorical's choices, or every value of a stepped range."""
    from hpo.spec.schema import CategoricalParam

    if isinstance(p, CategoricalParam):
        return list(p.choices)
    n = int(round((p.high - p.low) / p.step)) + 1
    return [type(p.low)(p.low + i * p.step) for i in range(n)]


def resolved_pruner(study: "LoadedStudy") -> "PrunerSpec":
    """The pruner spec with `auto` replaced by numbers: half of the shortest trial's training. A budgeted study
    whose file names no pruner gets successive halving with the budget's rungs (`hpo.study.budget`)."""
    search = study.spec.search
    if search.budget is not None and "pruner" not in search.model_fields_set:
        from hpo.spec.schema import PrunerSpec
        from hpo.study.budget import budget_rungs

        rungs = budget_rungs(full_progress(study), search.evals_per_epoch)
        if not rungs:
            return PrunerSpec(name="none")
        return PrunerSpec(name="successive_halving", min_resource=rungs[0], reduction_factor=3)
    spec = search.pruner
    half = max(1, round(50 * _epochs(study)))
    auto = {k: half for k in ("n_warmup_steps", "interval_steps") if getattr(spec, k) == "auto"}
    return spec.model_copy(update=auto)


def _epochs(study: "LoadedStudy", *, longest: bool = False) -> float:
    """The shortest (or longest) trial's epochs."""
    from hpo.spec.checks import normalized_training
    from hpo.spec.schema import CategoricalParam

    training = normalized_training(study)
    if training.get("max_steps", -1) > 0:
        return 1.0  # the epoch count follows from the data size; judge at half an epoch
    p = study.spec.search.space.get("num_train_epochs")
    if p is not None:
        pick = max if longest else min
        return float(pick(p.choices) if isinstance(p, CategoricalParam) else (p.high if longest else p.low))
    return float(training.get("num_train_epochs", 3.0))  # the TrainingArguments default


def full_progress(study: "LoadedStudy") -> float:
    """Where the longest trial's training ends on the progress scale (percent of an epoch)."""
    return 100 * _epochs(study, longest=True)


@dataclass(frozen=True)
class DecisionPoints:
    """Where on the progress scale (percent of an epoch) the pruner can stop a trial. The search evaluates
    there and at the end of a trial only: an evaluation that cannot stop anything is time not spent training."""
    every: bool = False  # hyperband, successive halving with `auto`: rungs are placed by Optuna as trials report
    warmup: int | None = None  # median / percentile: from here on, once per interval; None: never
    interval: int = 1
    rungs: tuple[int, ...] = ()  # successive halving with a number as min_resource: its rungs

    def wanted(self, progress: int, last: int | None) -> bool:
        if self.every:
            return True
        if self.rungs:  # the first grid point at or past a rung not judged yet
            return any((last is None or last < r) and r <= progress for r in self.rungs)
        if self.warmup is None or progress < self.warmup:
            return False
        if last is None or last < self.warmup:
            return True
        return (progress - self.warmup) // self.interval > (last - self.warmup) // self.interval


def decision_points(spec: "PrunerSpec") -> DecisionPoints:
    """For a resolved spec (see `resolved_pruner`)."""
    if spec.name in ("median", "percentile"):
        return DecisionPoints(warmup=int(spec.n_warmup_steps), interval=int(spec.interval_steps))
    if spec.name == "successive_halving" and isinstance(spec.min_resource, int):
        from hpo.study.budget import rungs_from

        return DecisionPoints(rungs=rungs_from(spec.min_resource, spec.reduction_factor, RUNGS_BELOW))
    return DecisionPoints(every=spec.name != "none")


RUNGS_BELOW = 100 * 10_000  # rungs past 10,000 epochs: never reached


def make_pruner(spec: "PrunerSpec") -> "optuna.pruners.BasePruner":
    """A pruner from a resolved spec (see `resolved_pruner`)."""
    import optuna

    p = optuna.pruners
    if spec.name == "none":
        return p.NopPruner()
    if spec.name == "median":
        return p.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps,
                              interval_steps=spec.interval_steps)
    if spec.name == "percentile":
        return p.PercentilePruner(spec.percentile, n_startup_trials=spec.n_startup_trials,
                                  n_warmup_steps=spec.n_warmup_steps, interval_steps=spec.interval_steps)
    if spec.name == "successive_halving":
        return p.SuccessiveHalvingPruner(min_resource=spec.min_resource, reduction_factor=spec.reduction_factor)
    return p.HyperbandPruner(min_resource=1 if spec.min_resource == "auto" else spec.min_resource,
                             max_resource=spec.max_resource, reduction_factor=spec.reduction_factor)


def open_storage(study: "LoadedStudy") -> Any:
    s = study.spec.search
    return make_storage(study.paths.storage_url, heartbeat_interval=s.heartbeat_interval,
                        grace_period=s.grace_period, max_retries=s.max_retries)


def study_kwargs(study: "LoadedStudy", model: str, storage: Any) -> dict[str, Any]:
    """What `Trainer.hyperparameter_search` passes on to `optuna.create_study`."""
    search = study.spec.search
    return {"storage": storage, "study_name": study_names(study)[model], "load_if_exists": True,
            "sampler": make_sampler(search.sampler, search), "pruner": make_pruner(resolved_pruner(study))}


def load_or_create(study: "LoadedStudy", model: str, storage: Any) -> "optuna.Study":
    import optuna

    from hpo.study.objectives import directions, name_metrics

    kw = study_kwargs(study, model, storage)
    created = optuna.create_study(directions=directions(study.spec), **kw)
    name_metrics(created, study.spec)
    return created


def load_existing(study: "LoadedStudy", model: str, storage: Any) -> "optuna.Study | None":
    import optuna

    name = study_names(study)[model]
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
