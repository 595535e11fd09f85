"""Search-space namespaces: plain keys are TrainingArguments fields, `peft.<field>` a LoraConfig field of the
study's `peft:` section, `model.<field>` a field of the model's configuration (dropouts, ...).

A trial's values are split here once, so TrainingArguments only ever sees its own fields and the model build
gets the rest (`hpo.adapters.build_model`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.errors import SpecError

if TYPE_CHECKING:
    from hpo.spec.loader import LoadedStudy

PEFT, MODEL = "peft", "model"
INSTALL_HINT = "pip install 'hpo[lora]'"
# LoraConfig fields hpo sets itself
PEFT_RESERVED = {"task_type": "hpo sets it from the study's task", "base_model_name_or_path": "set model instead",
                 "inference_mode": "hpo trains the adapter", "revision": "set model instead"}


def namespace(key: str) -> tuple[str | None, str]:
    """('peft' | 'model' | None, field name) of a search-space key."""
    prefix, dot, name = key.partition(".")
    return (prefix, name) if dot and prefix in (PEFT, MODEL) else (None, key)


@dataclass(frozen=True)
class SplitParams:
    training: dict[str, Any] = field(default_factory=dict)
    peft: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)


def split_params(params: dict[str, Any]) -> SplitParams:
    """A trial's values by where they go: TrainingArguments, LoraConfig, the model's configuration."""
    out = SplitParams()
    for key, value in params.items():
        space, name = namespace(key)
        {None: out.training, PEFT: out.peft, MODEL: out.model}[space][name] = value
    return out


def lora_config_fields(*, file: str | None = None) -> set[str]:
    """The installed peft's LoraConfig fields; SpecError naming the install when peft is missing."""
    import dataclasses

    try:
        from peft import LoraConfig
    except ImportError:
        raise SpecError("the peft section needs the peft package, which is not installed", file=file,
                        path="peft", hint=INSTALL_HINT) from None
    return {f.name for f in dataclasses.fields(LoraConfig) if f.init}


def check_peft(study: "LoadedStudy") -> None:
    """The peft section and every peft.* key name LoraConfig fields of the installed peft, with values it takes;
    final.save: adapter and peft.* keys need the section."""
    from pydantic import ValidationError

    from hpo.spec.lora import PeftSpec

    spec, f = study.spec, study.file
    keys = {name: (k, p) for k, p in spec.search.space.items() for s, name in [namespace(k)] if s == PEFT}
    if spec.peft is None:
        if keys:
            raise SpecError("peft.* keys search a LoRA adapter, but the study has no peft section", file=f,
                            path=f"search.space.{next(iter(keys.values()))[0]}", hint="add 'peft: {r: 8}'")
        if spec.final.save == "adapter":
            raise SpecError("final.save: adapter needs a peft section", file=f, path="final.save",
                            hint="add 'peft: {r: 8}' or remove final.save")
        return
    fields = lora_config_fields(file=f)
    given = list(spec.peft.lora_kwargs())
    for name, (key, param) in keys.items():
        path = f"search.space.{key}"
        if name in PEFT_RESERVED:
            raise SpecError("hpo sets this LoraConfig field itself", file=f, path=path, hint=PEFT_RESERVED[name])
        if name not in PeftSpec.model_fields:
            close = difflib.get_close_matches(name, list(PeftSpec.model_fields), n=1)
            hint = f"did you mean 'peft.{close[0]}'?" if close else f"use one of {', '.join(PeftSpec.model_fields)}"
            raise SpecError("not a searchable LoraConfig field", file=f, path=path, hint=hint)
        for sample in samples(param):
            try:
                PeftSpec(**{name: sample})
            except ValidationError as e:
                raise SpecError(e.errors()[0]["msg"].removeprefix("Value error, ") + f" (got {sample!r})", file=f,
                                path=path, hint="fix the range or choices") from None
        given.append(name)
    for name in given:
        if name not in fields:
            raise SpecError(f"the installed peft's LoraConfig has no field {name!r}", file=f, path=f"peft.{name}",
                            hint=f"remove it, or upgrade peft ({INSTALL_HINT} --upgrade)")


def check_model_keys(study: "LoadedStudy") -> None:
    """Every model.* key is a field of each model's configuration class, searched with values of its type."""
    keys = {name: (k, p) for k, p in study.spec.search.space.items() for s, name in [namespace(k)] if s == MODEL}
    if not keys:
        return
    from transformers import AutoConfig

    from hpo.models import resolve_model

    for model_id in study.spec.models:
        config = AutoConfig.from_pretrained(resolve_model(model_id, str(study.paths.base_dir)))
        known = {k for k in config.to_dict() if not k.startswith("_")}
        for name, (key, param) in keys.items():
            path = f"search.space.{key}"
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f"did you mean 'model.{close[0]}'?" if close else "see the model's config.json"
                raise SpecError(f"not a field of {type(config).__name__} ({model_id})", file=study.file, path=path,
                                hint=hint)
            current = getattr(config, name)
            if not (isinstance(current, float) or (current is None and "dropout" in name)):
                # integers there are sizes, counts and token ids: the pre-trained weights fix them
                raise SpecError(f"{name} is not a real-valued setting (it is {current!r}); model.* searches "
                                "dropouts and other real-valued settings", file=study.file, path=path,
                                hint="search a float field such as model.hidden_dropout_prob")
            for sample in samples(param):
                if isinstance(sample, bool) or not isinstance(sample, (int, float)):
                    raise SpecError(f"{name} takes a number, got {sample!r}", file=study.file, path=path,
                                    hint="give numeric values")


def samples(p: Any) -> list[Any]:
    """Values a range can take that validation tries: its ends, or every choice."""
    from hpo.spec.schema import CategoricalParam, IntParam

    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, IntParam):
        return [p.low, p.high]
    return [float(p.low), float(p.high)]


def baseline_value(study_peft: Any, key: str) -> tuple[bool, Any]:
    """(known, value) of a namespaced key in the baseline trial: the peft section's value, else LoraConfig's
    default; model.* keys have none here (the model's own value is not known without loading it)."""
    space, name = namespace(key)
    if space == PEFT:
        given = study_peft.lora_kwargs() if study_peft is not None else {}
        if name in given:
            return True, given[name]
        import dataclasses

        from peft import LoraConfig

        default = {f.name: f.default for f in dataclasses.fields(LoraConfig)}.get(name, dataclasses.MISSING)
        return default is not dataclasses.MISSING, default
    return False, None
