"""Build the Trainer from the spec: a configuration's arguments, data, collator, metrics and model_init."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo.adapters import build_model
from hpo.devices import precision_defaults  # the choice per device lives there
from hpo.models import BaseModel, load_tokenizer, packaged_copy, resolve_model
from hpo.search.space import make_hp_space
from hpo.spec.checks import coerce_training_value, normalized_training
from hpo.spec.namespaces import split_params

if TYPE_CHECKING:
    from hpo.data import Splits
    from hpo.spec import LoadedStudy

_BASE_MODELS: dict[tuple[str, str, tuple[str, ...]], BaseModel] = {}


def base_model(source: str, label_names: list[str], task: Any = None) -> BaseModel:
    """One BaseModel per process, task and label set: the weights are read from disk once."""
    key = (source, task.name if task is not None else "text-classification", tuple(label_names))
    if key not in _BASE_MODELS:
        _BASE_MODELS[key] = BaseModel(source, id2label=dict(enumerate(label_names)), task=task)
    return _BASE_MODELS[key]


def set_threads() -> None:
    """One thread per core this process may use; fewer when OMP_NUM_THREADS says so (processes sharing cores)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    asked = os.environ.get("OMP_NUM_THREADS", "")
    if asked.isdigit() and int(asked) > 0:
        cores = min(cores, int(asked))
    torch.set_num_threads(max(1, cores))


def training_arguments(study: "LoadedStudy", output_dir: Path, params: dict[str, Any] | None = None,
                       **overrides: Any) -> Any:
    """The TrainingArguments of one configuration: hpo's defaults, the study file's `training`, a trial's
    searched values (`params`), then `overrides` (a seed run's seed, no evaluation in a final training).

    The one place a configuration becomes arguments: the search's trials (`SearchTrainer.use_configuration`)
    and every training outside the search (`hpo.training`) take it."""
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    generation = study.task.generation_arguments()  # a task scored on generated text: Seq2SeqTrainingArguments
    values: dict[str, Any] = {
        "per_device_eval_batch_size": 128, "report_to": [], "disable_tqdm": True, "save_strategy": "no",
        "logging_strategy": "steps", "logging_steps": 50, "eval_strategy": "steps", "eval_steps": 50,
        "train_sampling_strategy": "group_by_length", "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,
    }
    training = normalized_training(study)
    values.update(precision_defaults(training))
    values.update(training)
    values.update(searched_values(params or {}))
    values.update(overrides)
    values.update(generation or {})
    if (values.get("bf16") or values.get("fp16")) and not _has_cuda():
        values.setdefault("use_cpu", True)  # mixed precision on a CPU-only machine needs it said
    return (Seq2SeqTrainingArguments if generation else TrainingArguments)(output_dir=str(output_dir), **values)


def _trial_params(trial: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    """The values a model is built with: the search trial's (model_init(trial)), else the configuration's."""
    return dict(getattr(trial, "params", None) or params or {})


def searched_values(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's TrainingArguments values (its peft.* and model.* values go to the model) as their fields take them. Numbers keep the type the space declares (the stock
    Trainer casts to the default's type: a float `warmup_steps` ratio would become int 0, and a field whose
    default is None could not be searched); a string choice is read as its field's type ("1e-5")."""
    training = split_params(params).training
    return {k: coerce_training_value(k, v) if isinstance(v, str) else v for k, v in training.items()}


def precision_name(study: "LoadedStudy") -> str:
    """The arithmetic the trials train in: bf16, fp16 or fp32."""
    training = normalized_training(study)
    values = {**precision_defaults(training), **training}
    return "bf16" if values.get("bf16") else "fp16" if values.get("fp16") else "fp32"


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def by_length(dataset: Any) -> Any:
    """Rows shortest first: the order does not change a metric, and each evaluation batch then pads only
    to about its own rows' length (random order pads most rows to the longest of 128)."""
    return dataset.select(np.argsort(np.asarray(dataset["length"]), kind="stable"))


def pruning_subset(validation: Any, n: int | None, *, seed: int) -> Any:
    """The seeded validation rows scored at pruning points; None when that is all of them."""
    if n is None or n >= len(validation):
        return None
    return by_length(validation.shuffle(seed=seed).select(range(n)))


def build_trainer(study: "LoadedStudy", model_id: str, splits: "Splits", *, checkpoints: Path | None,
                  params: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """The search's Trainer (no `params`), or one built for a configuration (see `training_arguments`)."""
    from hpo.data import tokenize_splits
    from hpo.search.trainer import search_trainer_class
    from hpo.study.factory import decision_points, resolved_pruner

    set_threads()
    spec = study.spec
    source = resolve_model(model_id, str(study.paths.base_dir))
    tokenizer = study.task.prepare_tokenizer(load_tokenizer(source))
    tokenized = tokenize_splits(splits, tokenizer, max_length=spec.dataset.max_length,
                                cache_dir=study.paths.output_dir / "cache", task=study.task)
    base = base_model(source, splits.label_names, study.task)
    scratch = study.paths.output_dir / "scratch"
    generates = study.task.generation_arguments() is not None  # its metrics decode generated tokens
    trainer = search_trainer_class(generates=generates)(
        model_init=lambda trial=None: build_model(base, peft=spec.peft, params=_trial_params(trial, params)),
        args=training_arguments(study, scratch, params, **overrides),
        configure=lambda values: training_arguments(study, scratch, values),
        train_dataset=tokenized["train"], eval_dataset=by_length(tokenized["validation"]),
        data_collator=study.task.collator(tokenizer), processing_class=tokenizer,
        compute_metrics=study.task.compute_metrics_fn(splits.label_names, objective=spec.objective.metric,
                                                      **({"tokenizer": tokenizer} if generates else {})),
        preprocess_logits_for_metrics=study.task.preprocess_logits_fn(),
        evals_per_epoch=spec.search.evals_per_epoch, points=decision_points(resolved_pruner(study)),
        objective_key=spec.objective.metric,
        direction=spec.objective.resolved_direction, checkpoints=checkpoints,
        keep_checkpoints=max(spec.search.keep_checkpoints, spec.selection.top_k), n_trials=spec.search.trial_cap,
        pruning_eval_dataset=pruning_subset(tokenized["validation"], spec.search.pruning_eval_samples,
                                            seed=spec.dataset.seed))
    from transformers.trainer_callback import PrinterCallback

    from hpo.live import TrialWatch

    trainer.remove_callback(PrinterCallback)  # per-step log dicts; progress.py prints one line per trial
    trainer.add_callback(TrialWatch(trainer))  # the live view, steps for `hpo status`, the budget's cut
    trainer.hp_space_fn = make_hp_space(spec.search)
    trainer.base_model = base
    # the base named in a saved adapter: the Hub id when it resolves to the Hub or a packaged copy of it
    trainer.base_name = model_id if source == model_id or packaged_copy(model_id) else str(Path(source).resolve())
    return trainer
