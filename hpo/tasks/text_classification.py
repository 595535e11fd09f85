"""text-classification (one label per text or sentence pair): the Task interface over today's functions.

A thin adapter: label checks, metrics, the pipeline evaluation and the report sections are the existing
ones in hpo/data/prepare.py, hpo/metrics, hpo/evaluation.py and hpo/report/sections.py, called as they are.
"""

from __future__ import annotations

import collections
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
from pydantic import Field

from hpo.report.blocks import Block
from hpo.tasks.base import (Prepared, Task, TaskOptions, Where, check_columns, label_maps, read_texts,
                            text_encode_fn, widget_examples)

if TYPE_CHECKING:
    import datasets

ALL_METRICS = ("accuracy", "f1", "precision", "recall", "matthews_correlation")


class TextClassificationOptions(TaskOptions):
    label_names: list[str] | None = Field(
        None, description="Names for integer labels 0..n-1 (today dataset.label_names).")
    average: Literal["macro", "micro", "weighted", "binary"] = Field(
        "macro", description="Averaging for f1/precision/recall (today objective.average).")


class TextClassification(Task):
    name = "text-classification"
    pipeline_tag = "text-classification"
    description = "a text-classification model"
    Options = TextClassificationOptions
    metrics = {m: "maximize" for m in ALL_METRICS}
    default_metric = "accuracy"
    options: TextClassificationOptions

    def check_objective(self, metric: str, *, file: str | None = None) -> None:
        """Any metric: besides the shipped ones, a path to an `evaluate` module (loaded when training starts)."""

    def metric_direction(self, metric: str) -> str:
        return "minimize" if metric == "loss" else "maximize"

    def _study(self, where: Where) -> Any:
        """The slice of a loaded study that hpo.data.prepare's label functions read."""
        c = self.columns
        dataset = SimpleNamespace(text_column=c.text, text_pair_column=c.text_pair, label_column=c.label,
                                  label_names=self.options.label_names,
                                  train="train.csv" if where.header.get("train") else None)
        return SimpleNamespace(spec=SimpleNamespace(dataset=dataset), file=where.file)

    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        from hpo.data.prepare import _label_names, _normalize

        c = self.columns
        cols = [c.text] + ([c.text_pair] if c.text_pair else [])
        for split, ds in raw.items():
            check_columns(ds, split, {c.text: "text_column", c.label: "label_column"}
                          | ({c.text_pair: "text_pair_column"} if c.text_pair else {}), where)
        study = self._study(where)
        names = _label_names(study, raw)
        splits = {s: _normalize(study, s, ds, cols, names) for s, ds in raw.items()}
        if len(set(splits["train"]["label"])) < 2:
            raise where.error("train", "train has a single class; classification needs at least two",
                              key="label_column", hint="check the label column")
        return Prepared(splits, names, stratify="label")

    def encode_fn(self, tokenizer: Any, *, max_length: int, label_names: list[str]) -> Callable:
        return text_encode_fn(tokenizer, max_length, list)

    @property
    def model_class(self) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return label_maps(label_names)

    def compute_metrics_fn(self, label_names: list[str], *, objective: str | None = None) -> Callable:
        from hpo import metrics as metric_lib

        names = metric_lib.metric_names(objective or self.default_metric)
        for n in names:
            metric_lib.load_metric(n)  # fail before training, not at the first evaluation
        average = self.options.average

        def compute(pred: Any) -> dict[str, float]:
            logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
            return metric_lib.compute(names, np.argmax(logits, axis=-1), pred.label_ids, average=average)
        return compute

    def evaluate(self, model: str, dataset: "datasets.Dataset", label_names: list[str], *, max_length: int,
                 batch_size: int = 64) -> dict[str, Any]:
        from hpo.evaluation import evaluate_on

        return evaluate_on(model, dataset, label_names, max_length=max_length, average=self.options.average)

    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        from hpo.evaluation import make_pipeline, predict, score
        from hpo.predict import _map_labels

        texts, pairs = read_texts(rows, self.columns)
        pipe = make_pipeline(model, batch_size=batch_size, max_length=max_length)
        predicted, scores = predict(pipe, texts, pairs)
        out = [{"text": t, **({"text_pair": pairs[i]} if pairs else {}), "predicted": p, "score": s}
               for i, (t, p, s) in enumerate(zip(texts, predicted, scores))]
        result: dict[str, Any] = {"rows": out, "summary": {
            "rows": len(rows), "predicted": dict(collections.Counter(predicted).most_common())}}
        label = self.columns.label
        if rows and all(label in r for r in rows):
            config = pipe.model.config
            names = [str(config.id2label[i]) for i in sorted(config.id2label)]
            gold = _map_labels(["" if r[label] is None else str(r[label]) for r in rows], names)
            for row, g in zip(out, gold):
                row["label"] = g
            result.update(score(predicted, gold, names + [g for g in dict.fromkeys(gold) if g not in names],
                                average=self.options.average))
        return result

    def report_sections(self, final: dict[str, Any], data: dict[str, Any], *, model_ref: str,
                        max_length: int) -> dict[str, list[Block]]:
        from hpo.report import sections

        c = self.columns
        spec = SimpleNamespace(dataset=SimpleNamespace(text_column=c.text, text_pair_column=c.text_pair,
                                                       label_column=c.label, max_length=max_length))
        results = {"final": final, "data": data}
        return {"how_to_use": sections.how_to_use(model_ref, spec), "evaluation": sections.evaluation(results),
                "intended_use": sections.intended_use_and_limits(results, spec)}

    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        from hpo.report.card import TAGS

        return {"pipeline_tag": self.pipeline_tag, "tags": list(TAGS), "widget": widget_examples(examples),
                "task_type": "text-classification", "task_name": "Text Classification"}
