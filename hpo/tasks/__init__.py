"""The tasks hpo fine-tunes for, one module each, behind the `Task` interface (hpo/tasks/base.py)."""

from __future__ import annotations

import importlib
from typing import Any

from hpo.errors import SpecError
from hpo.tasks.base import Columns, Prepared, Task, TaskOptions, Where

# task name -> "module:class"; modules import on first use (transformers and seqeval load lazily)
TASKS = {
    "text-classification": "hpo.tasks.text_classification:TextClassification",
    "token-classification": "hpo.tasks.token_classification:TokenClassification",
    "text-regression": "hpo.tasks.regression:TextRegression",
    "multi-label-classification": "hpo.tasks.multi_label:MultiLabelClassification",
    "causal-lm": "hpo.tasks.causal_lm:CausalLM",
    "summarization": "hpo.tasks.summarization:Summarization",
}


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise SpecError(f"unknown task {name!r}", path="task", hint=f"use one of {', '.join(TASKS)}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get_task(name: str, options: TaskOptions | dict[str, Any] | None = None, *,
             columns: Columns | None = None) -> Task:
    """The task called `name` (the study file's `task:`), with its options and the shared columns."""
    return task_class(name)(options, columns=columns)


def study_task(spec: Any) -> Task:
    """The task of a validated study spec, with its options (from dataset.* and objective.average) and columns."""
    from hpo.tasks.options import DATASET_OPTIONS

    d = spec.dataset
    texts = d.text_columns
    columns = Columns(text=texts[0], text_pair=d.text_pair_column, label=d.label_column,
                      joined=tuple(texts) if len(texts) > 1 else (), separator=d.text_separator)
    if spec.task == "text-classification":
        options: dict[str, Any] = {"label_names": d.label_names, "average": spec.objective.average}
    else:
        keys = DATASET_OPTIONS[spec.task].model_fields if spec.task in DATASET_OPTIONS else {}
        options = {k: getattr(d, k) for k in keys if getattr(d, k) is not None}
    return get_task(spec.task, options, columns=columns)


def task_of_model(config: Any) -> str:
    """The task a saved model was trained for, from its config (what `hpo predict` needs to know)."""
    architectures = getattr(config, "architectures", None) or []
    if getattr(config, "is_encoder_decoder", False):
        return "summarization"
    if any(a.endswith("ForTokenClassification") for a in architectures):
        return "token-classification"
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures):
        return "causal-lm"
    return {"regression": "text-regression", "multi_label_classification": "multi-label-classification"}.get(
        getattr(config, "problem_type", None) or "", "text-classification")


__all__ = ["TASKS", "Columns", "Prepared", "Task", "TaskOptions", "Where", "get_task", "study_task", "task_class", "task_of_model"]
