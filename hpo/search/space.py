"""The Optuna search space, built from the validated spec objects."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from hpo.spec.namespaces import baseline_value, namespace, split_params
from hpo.spec.schema import CategoricalParam, FloatParam, IntParam

if TYPE_CHECKING:
    import optuna

    from hpo.spec.schema import SearchSpec


def make_hp_space(search: "SearchSpec") -> Callable[["optuna.Trial"], dict[str, Any]]:
    """Draws every key of the space; returns the TrainingArguments values only (the Trainer sets them on its
    arguments). peft.* and model.* values stay in `trial.params`, where the trial's model_init reads them."""
    def hp_space(trial: "optuna.Trial") -> dict[str, Any]:
        params: dict[str, Any] = {}
        for key, p in search.space.items():
            if isinstance(p, FloatParam):
                params[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, IntParam):
                params[key] = trial.suggest_int(key, p.low, p.high, log=p.log, step=p.step)
            else:
                params[key] = trial.suggest_categorical(key, p.choices)
        return split_params(params).training
    return hp_space


def trainer_defaults(search: "SearchSpec", fixed: dict[str, Any], peft: Any = None) -> dict[str, Any]:
    """The baseline trial: each searched field at its value without hpo (the file's, else the Trainer's; a
    peft.* key the peft section's, else peft's)."""
    from transformers import TrainingArguments

    defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    out = {}
    for key, p in search.space.items():
        if namespace(key)[0] is not None:
            known, value = baseline_value(peft, key)
            if not known:
                continue
        else:
            value = fixed.get(key, defaults[key])
        if isinstance(p, CategoricalParam) and value not in p.choices:
            continue  # the sampler draws it; a categorical cannot take a value outside its choices
        out[key] = float(value) if isinstance(p, FloatParam) else value
    return out
