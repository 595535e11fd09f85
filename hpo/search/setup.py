"""Build the search Trainer from the spec: arguments, data, collator, metrics and model_init."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo import metrics as metric_lib
from hpo.models import BaseModel, load_tokenizer, resolve_model
from hpo.search.space import make_hp_space
from hpo.spec.checks import normalized_training

if TYPE_CHECKING:
    from hpo.data import Splits
    from hpo.spec import LoadedStudy

_BASE_MODELS: dict[tuple[str, tuple[str, ...]], BaseModel] = {}


def base_model(source: str, label_names: list[str]) -> BaseModel:
    """One BaseModel per process and label set: the weights are read from disk once."""
    key = (source, tuple(label_names))
    if key not in _BASE_MODELS:
        _BASE_MODELS[key] = BaseModel(source, id2label=dict(enumerate(label_names)))
    return _BASE_MODELS[key]


def set_threads() -> None:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))


def training_arguments(study: "LoadedStudy", output_dir: Path, **overrides: Any) -> Any:
    from transformers import TrainingArguments

    values: dict[str, Any] = {
        "per_device_eval_batch_size": 128, "report_to": [], "disable_tqdm": True, "save_strategy": "no",
        "logging_strategy": "steps", "logging_steps": 50, "eval_strategy": "steps", "eval_steps": 50,
        "train_sampling_strategy": "group_by_length", "dataloader_num_workers": 0,
        "dataloader_pin_memory": False,
    }
    training = normalized_training(study)
    values.update(precision_defaults(training))
    values.update(training)
    values.update(overrides)
    if (values.get("bf16") or values.get("fp16")) and not _has_cuda():
        values.setdefault("use_cpu", True)  # mixed precision on a CPU-only machine needs it said
    return TrainingArguments(output_dir=str(output_dir), **values)


def precision_defaults(training: dict[str, Any]) -> dict[str, Any]:
    """bf16 autocast where the hardware computes in bf16 natively, unless the study file chooses. On an
    AVX512-BF16 CPU it trains ~1.5x faster than fp32 (bench/bare_loop.py); master weights stay fp32."""
    if {"bf16", "fp16", "bf16_full_eval", "fp16_full_eval"} & training.keys():
        return {}
    return {"bf16": True} if native_bf16() else {}


def precision_name(study: "LoadedStudy") -> str:
    """The arithmetic the trials train in: bf16, fp16 or fp32."""
    training = normalized_training(study)
    values = {**precision_defaults(training), **training}
    return "bf16" if values.get("bf16") else "fp16" if values.get("fp16") else "fp32"


def native_bf16() -> bool:
    import torch

    if _has_cuda():
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # no public API for this yet
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def compute_metrics_fn(study: "LoadedStudy") -> Any:
    names = metric_lib.metric_names(study.spec.objective.metric)
    for n in names:
        metric_lib.load_metric(n)  # fail before training, not at the first evaluation
    average = study.spec.objective.average

    def compute(pred: Any) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return metric_lib.compute(names, np.argmax(logits, axis=-1), pred.label_ids, average=average)
    return compute


def by_length(dataset: Any) -> Any:
    """Rows shortest first: the order does not change a metric, and each evaluation batch then pads only
    to about its own rows' length (random order pads most rows to the longest of 128)."""
    return dataset.select(np.argsort(np.asarray(dataset["length"]), kind="stable"))


def pruning_subset(validation: Any, n: int | None, *, seed: int) -> Any:
    """The seeded validation rows scored at pruning points; None when that is all of them."""
    if n is None or n >= len(validation):
        return None
    return by_length(validation.shuffle(seed=seed).select(range(n)))


def build_trainer(study: "LoadedStudy", model_id: str, splits: "Splits", *, checkpoints: Path | None) -> Any:
    from transformers import DataCollatorWithPadding

    from hpo.data import tokenize_splits
    from hpo.search.trainer import SearchTrainer
    from hpo.study.factory import decision_points, resolved_pruner

    set_threads()
    spec = study.spec
    source = resolve_model(model_id, str(study.paths.base_dir))
    tokenizer = load_tokenizer(source)
    tokenized = tokenize_splits(splits, tokenizer, max_length=spec.dataset.max_length,
                                cache_dir=study.paths.output_dir / "cache")
    base = base_model(source, splits.label_names)
    trainer = SearchTrainer(
        model_init=lambda trial=None: base.build(),
        args=training_arguments(study, study.paths.output_dir / "scratch"),
        train_dataset=tokenized["train"], eval_dataset=by_length(tokenized["validation"]),
        data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(study),
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
    return trainer
