"""text-classification (one label per text or sentence pair).

The classes are the label values present in train (strings are their own names; integers are named by
their value, or by dataset.label_names as a list for 0..n-1 or a mapping for any values). Metrics, the
pipeline evaluation and the report sections are those of hpo/metrics, hpo/tasks/classification_scores.py and
hpo/report/sections.py.
"""

from __future__ import annotations

import collections
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence, Union

import numpy as np
from pydantic import Field

from hpo.report.blocks import Block
from hpo.tasks.base import (Columns, Prepared, Task, TaskOptions, Where, check_columns, joined_texts, label_maps,
                            read_texts, text_encode_fn, text_needs, widget_examples)

if TYPE_CHECKING:
    import datasets

ALL_METRICS = ("accuracy", "f1", "precision", "recall", "matthews_correlation")


class TextClassificationOptions(TaskOptions):
    label_names: Union[list[str], dict[Union[int, str], str], None] = Field(
        None, description="Names for the labels (dataset.label_names): a list for integer labels 0..n-1, a "
                          "mapping for any values.")
    average: Literal["macro", "micro", "weighted", "binary"] = Field(
        "macro", description="Averaging for f1/precision/recall (objective.average).")


class TextClassification(Task):
    name = "text-classification"
    pipeline_tag = "text-classification"
    description = "a text-classification model"
    Options = TextClassificationOptions
    metrics = {m: "maximize" for m in ALL_METRICS}
    default_metric = "accuracy"
    binomial_metrics = frozenset({"accuracy", "f1", "precision", "recall"})
    options: TextClassificationOptions

    def check_objective(self, metric: str, *, file: str | None = None) -> None:
        """A shipped metric, loss, or a path to an `evaluate` module (loaded when training starts)."""
        import difflib
        import os

        from hpo.errors import SpecError

        if metric == "loss" or metric in self.metrics or os.sep in metric or metric.endswith(".py"):
            return
        known = sorted([*self.metrics, "loss"])
        close = difflib.get_close_matches(metric, known, n=1)
        raise SpecError(f"unknown metric {metric!r}", file=file, path="objective.metric",
                        hint=f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(known)}")

    def metric_direction(self, metric: str) -> str:
        return "minimize" if metric == "loss" else "maximize"

    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        import datasets

        c = self.columns
        for split, ds in raw.items():
            check_columns(ds, split, text_needs(c) | {c.label: "label_column"}, where)
        names, index = self._label_map(raw, where)
        splits = {}
        for split, ds in raw.items():
            data = {"text": joined_texts(ds, split, c, where)}
            if c.text_pair:
                data["text_pair"] = joined_texts(ds, split, Columns(text=c.text_pair), where)
            data["label"] = [index[str(v)] for v in ds[c.label]]
            features = datasets.Features({k: datasets.Value("string") for k in data if k != "label"})
            features["label"] = datasets.ClassLabel(names=names)
            splits[split] = datasets.Dataset.from_dict(data, features=features)
        if len(set(splits["train"]["label"])) < 2:
            raise where.error("train", "train has a single class; classification needs at least two",
                              key=c.label, hint="check the label column")
        return Prepared(splits, names, stratify="label")

    def _label_map(self, raw: dict[str, "datasets.Dataset"], where: Where) -> tuple[list[str], dict[str, int]]:
        """The class names in id order, and each label value (as text) -> its id.

        The classes are the label values present in train: labels 1..4 make four classes, not five.
        """
        col, given = self.columns.label, self.options.label_names

        def fail(message: str, hint: str, key: str = col, split: str = "train") -> Exception:
            return where.error(split, message, key=key, hint=hint)
        train_labels = raw["train"][col]
        if any(v is None for v in train_labels):
            raise fail(f"train row {train_labels.index(None) + 1 + where.header.get('train', 0)} has no label",
                       "fill or drop rows without labels")
        values = set(train_labels)
        integer = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        mapping = given if isinstance(given, dict) else {}
        negative = [v for v in values if integer and v < 0 and v not in mapping]  # -1 often marks unlabelled rows
        if negative:
            raise fail(f"integer label {min(negative)} is negative",
                       "drop rows with label -1 (unlabelled), or name it in a label_names mapping")
        present = sorted(values) if integer else sorted(str(v) for v in values)
        if given is None:
            named = {str(v): str(v) for v in present}
        elif isinstance(given, dict):
            named = {str(k): n for k, n in sorted(given.items(), key=lambda kv: _order(kv[0]))}
        elif not integer:
            raise fail("a list of label_names is for integer labels 0..n-1; these labels are strings",
                       "drop label_names, or map values to names: {value: name}", key="label_names")
        else:
            named = {str(i): n for i, n in enumerate(given)}
            if present[-1] >= len(named):
                raise fail(f"label {present[-1]} has no name in label_names ({len(named)} names for labels "
                           f"0..{len(named) - 1})", "give one name per label 0..n-1, or a mapping such as "
                           "{1: World, 2: Sports} for labels that do not start at 0", key="label_names")
        seen = {str(v) for v in present}
        unnamed = [v for v in map(str, present) if v not in named]
        if unnamed:
            raise fail(f"label {unnamed[0]} has no name in label_names", f"add {unnamed[0]}: <name> to the mapping",
                       key="label_names")
        empty = [(v, n) for v, n in named.items() if v not in seen]
        if empty:
            value, name = empty[0]
            raise fail(f"class {name!r} (label {value}) has no training row",
                       f"add rows with label {value} to train, or remove {name!r} from label_names"
                       + (" (a mapping {value: name} names only the labels present)" if isinstance(given, list)
                          else ""), key="label_names")
        for split, ds in raw.items():
            unseen = {str(v) for v in ds[col]} - seen if split != "train" else set()
            if unseen:
                raise where.error(split, f"labels in {split} that train never has: {', '.join(sorted(unseen)[:5])}",
                                  hint="add examples of them to train or drop those rows")
        return list(named.values()), {v: i for i, v in enumerate(named)}

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
        from hpo.tasks.classification_scores import evaluate_on

        return evaluate_on(model, dataset, label_names, max_length=max_length, batch_size=batch_size,
                           average=self.options.average)

    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        from hpo.predict import _map_labels
        from hpo.tasks.base import make_pipeline
        from hpo.tasks.classification_scores import classify, score

        texts, pairs = read_texts(rows, self.columns)
        pipe = make_pipeline("text-classification", model, max_length=max_length, batch_size=batch_size)
        predicted, scores, _ = classify(pipe, texts, pairs)
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
        spec = SimpleNamespace(dataset=SimpleNamespace(text_columns=c.texts, text_separator=c.separator,
                                                       text_pair_column=c.text_pair, label_column=c.label,
                                                       max_length=max_length))
        results = {"final": final, "data": data}
        return {"how_to_use": sections.how_to_use(model_ref, spec), "evaluation": sections.evaluation(results),
                "intended_use": sections.intended_use_and_limits(results, spec)}

    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"pipeline_tag": self.pipeline_tag, "tags": ["text-classification"], "widget": widget_examples(examples),
                "task_type": "text-classification", "task_name": "Text Classification"}


def _order(value: int | str) -> tuple[int, int | str]:
    """Integers in numeric order, then strings."""
    return (0, value) if isinstance(value, int) else (1, value)
