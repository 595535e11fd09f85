"""Cross-field checks on a validated study, one named function each, run in order by `run_all`."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from hpo.errors import SpecError
from hpo.spec.namespaces import check_model_keys, check_peft, namespace
from hpo.spec.schema import CategoricalParam, FloatParam, IntParam, SearchSpec, StudySpec
from hpo.tasks.conll import CONLL_SUFFIXES
from hpo.tasks.options import DATASET_OPTIONS

if TYPE_CHECKING:
    from hpo.spec.loader import LoadedStudy

# TrainingArguments fields hpo sets itself: a study file may not set them.
RESERVED_TRAINING = {
    "output_dir": "set output_dir at the top level of the study file",
    "push_to_hub": "add a 'hub:' section instead",
    "hub_model_id": "set hub.repo_id instead", "hub_token": "use HF_TOKEN or 'hf auth login' instead",
    "hub_private_repo": "set hub.private instead", "hub_strategy": "hpo pushes the final model only",
    "hub_revision": "set hub.revision instead", "hub_always_push": "hpo pushes the final model only",
    "eval_strategy": "set search.evals_per_epoch instead", "eval_steps": "set search.evals_per_epoch instead",
    "save_strategy": "hpo keeps the best trials' models itself (search.keep_checkpoints)",
    "load_best_model_at_end": "hpo promotes the best trial itself", "resume_from_checkpoint": "rerun the study",
    "metric_for_best_model": "set objective.metric instead",
}
SUFFIX_EXTENSIONS = {".csv", ".json", ".jsonl", ".parquet"}


def _model_at(loc: tuple[Any, ...]) -> Any:
    """The schema model that holds the keys at `loc` (None when `loc` leaves the schema)."""
    params = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}
    model: Any = StudySpec
    for part in loc:
        if model == "space":  # a parameter name: any key
            model = "param"
            continue
        if model == "param":  # the tag pydantic puts in discriminated-union paths
            model = params.get(part)
            if model is None:
                return None
            continue
        if model is SearchSpec and part == "space":
            model = "space"
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            args = [a for a in getattr(model, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
            model = args[0] if args else None
        if model is None:
            return None
    return model


def describe_key(loc: tuple[Any, ...]) -> str | None:
    """The schema's description of the key at `loc`, if it has one."""
    model = _model_at(loc[:-1]) if loc else None
    field = getattr(model, "model_fields", {}).get(loc[-1]) if isinstance(model, type) else None
    return field.description if field is not None else None


def suggest_key(loc: tuple[Any, ...]) -> str:
    """' (did you mean X?)' for an unknown key at `loc`, looked up in the schema."""
    model = _model_at(loc[:-1])
    if not isinstance(model, type):
        return ""
    names = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f"; allowed: {', '.join(names)}"


@functools.lru_cache(maxsize=1)
def training_fields() -> dict[str, Any]:
    from transformers import TrainingArguments  # lazy: the only heavy import of validation
    return {f.name: f for f in dataclasses.fields(TrainingArguments) if f.init}


def coerce_training_value(key: str, value: Any) -> Any:
    """`value` as the TrainingArguments field `key` takes it ("1e-5" -> 1e-05); ValueError if it can't."""
    from pydantic import TypeAdapter

    field = training_fields()[key]
    try:
        adapter = TypeAdapter(field.type)
    except Exception:  # exotic annotations: TrainingArguments checks them itself at run time
        return value
    try:
        coerced = adapter.validate_python(value)
        if isinstance(coerced, float) and not math.isfinite(coerced):
            raise ValueError("not a finite number")
        return coerced
    except Exception:
        name = getattr(field.type, "__name__", None) or str(field.type).replace("transformers.trainer_utils.", "")
        raise ValueError(f"{value!r} is not a valid {name}") from None


def normalized_training(study: "LoadedStudy") -> dict[str, Any]:
    return {k: coerce_training_value(k, v) for k, v in study.spec.training.items()}


def check_training_keys(study: "LoadedStudy") -> None:
    """Every training and search-space key is a TrainingArguments field of the right type."""
    fields = training_fields()
    spec = study.spec
    sources = [("training", k, [v]) for k, v in spec.training.items()]
    sources += [("search.space", k, _param_samples(p)) for k, p in spec.search.space.items()
                if namespace(k)[0] is None]  # peft.* and model.* keys: namespaces.py
    for section, key, samples in sources:
        path = f"{section}.{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see the TrainingArguments documentation"
            raise SpecError("not a TrainingArguments field", file=study.file, path=path, hint=hint)
        if key in RESERVED_TRAINING:
            raise SpecError("hpo sets this field itself", file=study.file, path=path, hint=RESERVED_TRAINING[key])
        for sample in samples:
            try:
                coerce_training_value(key, sample)
            except ValueError as e:
                raise SpecError(str(e), file=study.file, path=path, hint="fix the value's type") from None


def _param_samples(p: Any) -> list[Any]:
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, IntParam):
        return [p.low, p.high]
    assert isinstance(p, FloatParam)
    return [float(p.low), float(p.high)]


def check_int_fields_get_ints(study: "LoadedStudy") -> None:
    """A float range on an int field would be silently truncated by the Trainer: refuse it."""
    fields = training_fields()
    for key, p in study.spec.search.space.items():
        if isinstance(p, FloatParam) and namespace(key)[0] is None and fields[key].type is int:
            raise SpecError(f"{key} is an integer field but the range is float", file=study.file,
                            path=f"search.space.{key}", hint="use type: int or type: categorical")


def check_dataset_source(study: "LoadedStudy") -> None:
    """Each data source names what it needs, and local files exist with a known extension."""
    d, f = study.spec.dataset, study.file
    if d.source == "files":
        if not d.train:
            raise SpecError("source 'files' needs a train file", file=f, path="dataset.train",
                            hint="add 'train: path/to/train.csv'")
        for split in ("train", "validation", "test"):
            given = getattr(d, split)
            if given is None:
                continue
            suffix = os.path.splitext(given)[1].lower()
            if suffix not in SUFFIX_EXTENSIONS and not (study.spec.task == "token-classification"
                                                        and suffix in CONLL_SUFFIXES):
                raise SpecError(f"unknown file type {suffix or '(none)'!r} for {given}", file=f,
                                path=f"dataset.{split}", hint="use .csv, .json, .jsonl or .parquet"
                                + (" (or .conll, .txt for task: token-classification)" if suffix in CONLL_SUFFIXES
                                   else ""))
            resolved = study.resolve(given)
            if resolved.is_dir():
                raise SpecError(f"{given} is a directory, not a data file", file=f, path=f"dataset.{split}",
                                hint="name the file inside it")
            if not resolved.is_file():
                raise SpecError(f"data file {given} does not exist", file=f, path=f"dataset.{split}",
                                hint="paths are relative to the study file")
    elif d.source == "hub" and not d.name:
        raise SpecError("source 'hub' needs a data set name", file=f, path="dataset.name",
                        hint="add 'name: glue' (and 'config: sst2')")
    elif d.source != "files" and (d.train or d.validation or d.test):
        raise SpecError(f"train/validation/test files are only for source 'files' (source is {d.source!r})",
                        file=f, path="dataset.source", hint="set source: files or drop the file paths")


def check_dataset_columns(study: "LoadedStudy") -> None:
    """A column plays one role: text, second text or label; the BBC News corpus has one text column."""
    d, f = study.spec.dataset, study.file
    if d.label_column in d.text_columns or d.label_column == d.text_pair_column:
        raise SpecError(f"column {d.label_column!r} is both the label and a text column", file=f,
                        path="dataset.label_column", hint="name the label column and the text columns apart")
    if d.text_pair_column in d.text_columns:
        raise SpecError(f"column {d.text_pair_column!r} is both the first and the second text", file=f,
                        path="dataset.text_pair_column", hint="name another column, or drop text_pair_column")
    if d.source == "bbc_news" and len(d.text_columns) > 1:
        raise SpecError("the BBC News corpus has one text per article", file=f, path="dataset.text_column",
                        hint="give one name (it names the corpus' text column)")


# dataset keys that only some tasks read (the tasks' own keys come from hpo/tasks/options.py)
TASK_ONLY_KEYS = {"label_names": ("text-classification",),
                  "text_pair_column": ("text-classification", "text-regression", "multi-label-classification"),
                  "label_column": ("text-classification", "text-regression", "multi-label-classification")}


def check_task_keys(study: "LoadedStudy") -> None:
    """Every dataset key given belongs to the study's task, and the task's options are valid together."""
    from pydantic import ValidationError

    spec, f = study.spec, study.file
    owners = {k: (t,) for t, options in DATASET_OPTIONS.items() for k in options.model_fields} | TASK_ONLY_KEYS
    for key in sorted(spec.dataset.model_fields_set):
        if key in owners and spec.task not in owners[key]:
            raise SpecError(f"{key} is a key of {' and '.join(owners[key])}, but the task is {spec.task}",
                            file=f, path=f"dataset.{key}", hint=f"remove it, or set task: {owners[key][0]}")
    if "average" in spec.objective.model_fields_set and spec.task != "text-classification":
        raise SpecError(f"average is for text-classification's f1/precision/recall, but the task is {spec.task}",
                        file=f, path="objective.average", hint="remove it")
    if spec.dataset.source == "bbc_news" and spec.task != "text-classification":
        raise SpecError(f"the BBC News corpus is a text-classification data set, but the task is {spec.task}",
                        file=f, path="dataset.source", hint="use source: files or hub")
    if spec.dataset.label_columns and "label_column" in spec.dataset.model_fields_set:
        raise SpecError("label_columns names one 0/1 column per label, so label_column is not read", file=f,
                        path="dataset.label_column", hint="give one of label_column, label_columns")
    try:
        study.task
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise SpecError(first["msg"].removeprefix("Value error, "), file=f,
                        path=f"dataset.{loc}" if loc else "dataset", hint="fix the value") from None


def check_objective(study: "LoadedStudy") -> None:
    """The metric is one the task computes (text-classification: also an evaluate module path), or loss."""
    study.task.check_objective(study.spec.objective.metric, file=study.file)


def check_task_source(study: "LoadedStudy") -> None:
    """The task's options fit the data source (a CoNLL file is a local file)."""
    study.task.check_source(study.spec.dataset.source, file=study.file)


def check_sampler_fits_space(study: "LoadedStudy") -> None:
    """Grid search needs a finite space; cmaes/gp need at least one numeric parameter."""
    s = study.spec.search
    if s.sampler.name == "grid":
        for key, p in s.space.items():
            if isinstance(p, FloatParam) and p.step is None:
                raise SpecError("grid sampler needs a finite space", file=study.file,
                                path=f"search.space.{key}", hint="give it a step, or use type: categorical")
    if not s.space and s.sampler.name in ("grid", "cmaes", "gp"):
        raise SpecError(f"sampler {s.sampler.name!r} needs a search space", file=study.file,
                        path="search.space", hint="add at least one parameter")


def check_enqueued_in_space(study: "LoadedStudy") -> None:
    """Enqueued configurations name searched parameters only."""
    space = study.spec.search.space
    for i, config in enumerate(study.spec.search.enqueue):
        for key in config:
            if key not in space:
                raise SpecError(f"{key!r} is not a searched parameter", file=study.file,
                                path=f"search.enqueue.{i}.{key}", hint=f"use keys of search.space: {', '.join(space)}")


def check_multi_objective(study: "LoadedStudy") -> None:
    """Secondary objectives are listed once, need a multi-objective sampler and run without pruning."""
    spec, f = study.spec, study.file
    secondary = spec.objective.secondary
    if len(set(secondary)) != len(secondary):
        raise SpecError("objective.secondary lists an objective twice", file=f, path="objective.secondary",
                        hint="list each of latency_ms, parameters once")
    if not secondary:
        return
    if spec.search.sampler.name == "cmaes":
        raise SpecError("the cmaes sampler cannot run a multi-objective study", file=f, path="search.sampler.name",
                        hint="use tpe, nsga2, random, gp or grid, or drop objective.secondary")
    if spec.search.pruner.name != "none":
        raise SpecError("multi-objective trials are never pruned (Optuna cannot rank them mid-training)", file=f,
                        path="search.pruner.name", hint="set search.pruner.name: none")


def check_pick_rule(study: "LoadedStudy") -> None:
    """selection.pick names declared objectives, and only for a multi-objective study."""
    spec, f = study.spec, study.file
    pick, secondary = spec.selection.pick, spec.objective.secondary
    if (pick.best is not None or pick.budget) and not secondary:
        raise SpecError("selection.pick only applies to a multi-objective study", file=f, path="selection.pick",
                        hint="add objective.secondary: [latency_ms] or drop selection.pick")
    names = [spec.objective.metric, *secondary]
    if pick.best is not None and pick.best not in names:
        raise SpecError(f"{pick.best!r} is not an objective of this study", file=f, path="selection.pick.best",
                        hint=f"use one of {', '.join(names)}")
    for key in pick.budget:
        if key not in secondary:
            raise SpecError(f"budget on {key!r}, which is not a secondary objective", file=f,
                            path=f"selection.pick.budget.{key}", hint=f"add {key} to objective.secondary")


def check_warm_start(study: "LoadedStudy") -> None:
    """A warm-start source is another study, in a storage URL that parses."""
    from hpo.study.storage import parse_storage_url

    ws = study.spec.search.warm_start
    if ws is None:
        return
    if ws.storage is None and ws.study == study.spec.name:
        raise SpecError("a study cannot warm-start from itself", file=study.file, path="search.warm_start.study",
                        hint="name another study, or give its storage")
    if ws.storage is not None:
        parse_storage_url(ws.storage, file=study.file)


def check_storage_url(study: "LoadedStudy") -> None:
    """The storage URL parses as an SQLAlchemy URL with a known backend."""
    from hpo.study.storage import parse_storage_url
    parse_storage_url(study.paths.storage_url, file=study.file)


def check_model_exists(study: "LoadedStudy") -> None:
    """A model given as a path (./x, /x, ~/x) must be a folder with a config.json."""
    for i, m in enumerate(study.spec.models):
        if m.startswith((".", "/", "~")) or os.sep in m.strip("/").replace("/", "", 1):
            p = study.resolve(m)
            path = "model" if isinstance(study.spec.model, str) else f"model.{i}"
            if not p.is_dir():
                raise SpecError(f"model folder {m} does not exist", file=study.file, path=path,
                                hint="give a Hub id or a folder made by save_pretrained")
            if not (p / "config.json").is_file():
                raise SpecError(f"{m} is not a model folder (no config.json)", file=study.file, path=path,
                                hint="give a folder made by save_pretrained")
            if not _is_model_config(p / "config.json"):
                raise SpecError(f"{m}/config.json is not a model configuration (no model_type)", file=study.file,
                                path=path, hint="give a folder made by save_pretrained")


def _is_model_config(path: Any) -> bool:
    import json

    try:
        config = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("model_type"), str)


def check_output_dir(study: "LoadedStudy") -> None:
    """The output folder can be created and written."""
    out = study.paths.output_dir
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SpecError(f"cannot write to {out}", file=study.file, path="output_dir",
                        hint="choose a folder you can write to")


def check_training_combination(study: "LoadedStudy") -> None:
    """The training section as a whole is one TrainingArguments (its own cross-field rules)."""
    import tempfile

    from hpo.search.setup import training_arguments

    try:
        with tempfile.TemporaryDirectory() as scratch:
            training_arguments(study, Path(scratch))
    except ValueError as e:
        message = " ".join(str(e).split())
        raise SpecError(f"TrainingArguments refuses these settings: {message[:240]}", file=study.file,
                        path="training", hint="change the fields it names") from None


ALL_CHECKS = (check_task_keys, check_dataset_source, check_task_source, check_dataset_columns, check_objective, check_sampler_fits_space,
              check_enqueued_in_space, check_multi_objective, check_pick_rule, check_warm_start, check_storage_url,
              check_model_exists, check_output_dir, check_training_keys, check_int_fields_get_ints,
              check_training_combination, check_peft, check_model_keys)


# They import transformers or peft (seconds); commands that only read the store (status, best) skip them.
TRAINING_CHECKS = (check_training_keys, check_int_fields_get_ints, check_training_combination, check_peft,
                   check_model_keys)


def run_all(study: "LoadedStudy", *, read_only: bool = False) -> None:
    for check in ALL_CHECKS:
        if not (read_only and check in TRAINING_CHECKS):
            check(study)
