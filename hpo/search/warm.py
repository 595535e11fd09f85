"""Warm start: the best configurations of another study, in any storage, enqueued before the sampler."""

from __future__ import annotations


from typing import TYPE_CHECKING, Any

from hpo.errors import StageError
from hpo.study.storage import redact

if TYPE_CHECKING:
    import optuna

    from hpo.spec import LoadedStudy
    from hpo.spec.schema import Param


def source_url(study: "LoadedStudy") -> str:
    """The source study's storage: its own URL (env expanded, relative SQLite paths from the study file) or ours."""
    from hpo.spec.loader import expand_env

    ws = study.spec.search.warm_start
    assert ws is not None
    if ws.storage is None:
        return study.paths.storage_url
    url = expand_env(ws.storage, study.file)
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url[len(prefix):].startswith("/") and url != "sqlite:///:memory:":
        url = prefix + str(study.paths.base_dir / url[len(prefix):])
    return url


def in_space(value: Any, param: "Param") -> bool:
    from hpo.spec.schema import CategoricalParam

    if isinstance(param, CategoricalParam):
        return value in param.choices
    return isinstance(value, (int, float)) and not isinstance(value, bool) and param.low <= value <= param.high


def warm_configs(study: "LoadedStudy") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(configurations to enqueue, a record of where they came from); keys outside this space are dropped."""
    import optuna

    ws = study.spec.search.warm_start
    assert ws is not None
    url = source_url(study)
    try:
        source = optuna.load_study(study_name=ws.study, storage=url)
    except KeyError:
        raise StageError(f"warm start: no study {ws.study!r} in {redact(url)}", file=study.file,
                         path="search.warm_start.study", hint="check the study name and storage") from None
    space = study.spec.search.space
    configs = []
    for t in best_of(source, ws.top):
        config = {k: v for k, v in t.params.items() if k in space and in_space(v, space[k])}
        if config and config not in configs:
            configs.append(config)
    return configs, {"study": ws.study, "storage": redact(url), "top": ws.top, "enqueued": len(configs)}


def best_of(source: "optuna.Study", top: int) -> list["optuna.trial.FrozenTrial"]:
    """Its best completed trials: by value, or the Pareto front by the first objective when multi-objective."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    done = [t for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    pool = source.best_trials if len(source.directions) > 1 else done
    maximize = source.directions[0] == StudyDirection.MAXIMIZE
    return sorted(pool, key=lambda t: -t.values[0] if maximize else t.values[0])[:top]


def warm_start(study: "LoadedStudy") -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The configurations to enqueue and their record, or None without search.warm_start; raises if unreadable."""
    return None if study.spec.search.warm_start is None else warm_configs(study)


def enqueue_warm_start(optuna_study: "optuna.Study", found: tuple[list[dict[str, Any]], dict[str, Any]] | None) -> None:
    """Enqueue what `warm_start` found; called only for a new study (see runner.enqueue_initial)."""
    if found is None:
        return
    configs, record = found
    for config in configs:
        optuna_study.enqueue_trial(config, user_attrs={"enqueued": True, "warm_start": record["study"]})
    optuna_study.set_user_attr("warm_start", record)
