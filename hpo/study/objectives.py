"""What a trial optimizes: the metric alone, or the metric plus costs (latency, size) as a multi-objective study.

Secondary objectives are costs, always minimized, so a study file never needs a direction for them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import optuna

    from hpo.spec.schema import StudySpec

LATENCY_BATCHES, LATENCY_BATCH_SIZE = 4, 16


def objective_names(spec: "StudySpec") -> list[str]:
    return [spec.objective.metric, *spec.objective.secondary]


def directions(spec: "StudySpec") -> list[str]:
    return [spec.objective.resolved_direction] + ["minimize"] * len(spec.objective.secondary)


def search_direction(spec: "StudySpec") -> str | list[str]:
    """What `Trainer.hyperparameter_search(direction=...)` takes: a list makes the study multi-objective."""
    return directions(spec) if spec.objective.secondary else spec.objective.resolved_direction


def is_multi(spec: "StudySpec") -> bool:
    return bool(spec.objective.secondary)


def primary_value(trial: "optuna.trial.FrozenTrial") -> float | None:
    """The metric's value of a trial of a single- or multi-objective study (None if not complete)."""
    return trial.values[0] if trial.values else None


def named_values(trial: "optuna.trial.FrozenTrial", names: list[str]) -> dict[str, float]:
    return dict(zip(names, trial.values or []))


def objective_key(metric: str) -> str:
    name = metric.rstrip("/").split("/")[-1].removesuffix(".py")
    return f"eval_{name}"


def make_objective(spec: "StudySpec", trainer: Any) -> Callable[[dict[str, float]], Any]:
    """compute_objective for the search: the metric, plus the costs measured once at the end of the trial."""
    key = objective_key(spec.objective.metric)
    if not is_multi(spec):
        return lambda metrics: metrics[key]

    def compute(metrics: dict[str, float]) -> list[float]:
        at_end = trainer.state.max_steps and trainer.state.global_step >= trainer.state.max_steps
        costs = [measure(name, trainer) if at_end else 0.0 for name in spec.objective.secondary]
        return [metrics[key], *costs]
    return compute


def measure(name: str, trainer: Any) -> float:
    if name == "parameters":
        return float(sum(p.numel() for p in trainer.model.parameters()))
    return latency_ms(trainer)


def latency_ms(trainer: Any) -> float:
    """Forward time per example on a few validation batches (batch 16, no gradients), median of batches."""
    import statistics

    import torch

    data = trainer.eval_dataset
    n = min(len(data), LATENCY_BATCHES * LATENCY_BATCH_SIZE)
    model = trainer.model
    # an encoder-decoder model's forward needs decoder inputs: the collator shifts them from the labels
    inputs = ("input_ids", "attention_mask", "token_type_ids") + (
        ("labels",) if getattr(model.config, "is_encoder_decoder", False) else ())
    columns = [c for c in inputs if c in data.column_names]
    rows = data.shuffle(seed=0).select(range(n)).select_columns(columns)  # the split is sorted by length
    was_training = model.training
    model.eval()
    per_example = []
    try:
        with torch.inference_mode():
            for start in range(0, n, LATENCY_BATCH_SIZE):
                batch = trainer.data_collator([rows[i] for i in range(start, min(n, start + LATENCY_BATCH_SIZE))])
                batch = {k: v.to(model.device) for k, v in batch.items()}
                began = time.perf_counter()
                model(**batch)
                per_example.append(1000 * (time.perf_counter() - began) / len(batch["input_ids"]))
    finally:
        model.train(was_training)
    return round(statistics.median(per_example), 4) if per_example else 0.0


def name_metrics(study: "optuna.Study", spec: "StudySpec") -> None:
    """Axis names for optuna-dashboard and plots; set once, by whoever creates the study."""
    import warnings

    import optuna

    if is_multi(spec) and study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective_names(spec))
