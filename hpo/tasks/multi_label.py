"""multi-label-classification: any number of labels per text, one sigmoid output per label.

Labels come as a list column, a delimited string column (label_separator) or one 0/1 column per label
(label_columns). A label is predicted when its score reaches the decision threshold; the threshold is chosen
on validation (or fixed in the study file), saved in the model's config.json as `multi_label_threshold`
and applied to the pipeline's scores on unseen data and by `hpo predict`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from hpo.errors import DataError
from hpo.report.blocks import Block, Para
from hpo.tasks import sections
from hpo.tasks.base import (Columns, Prepared, Task, Where, check_columns, in_length_order, label_maps,
                            make_pipeline, pair_inputs, read_texts, text_dataset, text_encode_fn, text_inputs, text_needs,
                            text_value, joined_texts,
                            widget_examples)
from hpo.tasks.bootstrap import paired_half_width
from hpo.tasks.multi_label_metrics import (THRESHOLD_KEY, choose_threshold, multilabel_scores, one_score, per_label,
                                           sigmoid)
from hpo.tasks.options import MultiLabelOptions

if TYPE_CHECKING:
    import datasets

METRIC_ORDER = ["f1_micro", "f1_macro", "precision_micro", "recall_micro", "subset_accuracy", "hamming_loss",
                "loss"]


class MultiLabelClassification(Task):
    name = "multi-label-classification"
    pipeline_tag = "text-classification"
    description = "a multi-label text-classification model"
    Options = MultiLabelOptions
    metrics = {"f1_micro": "maximize", "f1_macro": "maximize", "precision_micro": "maximize",
               "recall_micro": "maximize", "subset_accuracy": "maximize", "hamming_loss": "minimize"}
    default_metric = "f1_micro"
    settles_on_validation = True
    options: MultiLabelOptions

    @classmethod
    def for_predict(cls, columns: Columns, *, label_separator: str | None = None) -> "Task":
        return cls({"label_separator": label_separator} if label_separator else {}, columns=columns)

    # -- data --------------------------------------------------------------------------------------
    def _label_keys(self) -> dict[str, str]:
        cols = self.options.label_columns
        return {c: "label_columns" for c in cols} if cols else {self.columns.label: "label_column"}

    def _row_labels(self, row: dict[str, Any], where_row: str, fail: Callable[[str, str, str], Exception]) -> list[str]:
        """The label names of one raw row, from whichever form the study file says."""
        o = self.options
        if o.label_columns:
            out = []
            for col in o.label_columns:
                v = row[col]
                flag = v.strip() if isinstance(v, str) else v
                if flag not in (0, 1, "0", "1", True, False):  # 0.0/1.0 compare equal to 0/1
                    raise fail(f"{where_row} has {col} {v!r}; label columns hold 0 or 1", "label_columns",
                               "mark each label 1 (present) or 0 (absent)")
                if flag in (1, "1", True):
                    out.append(col)
            return out
        v = row[self.columns.label]
        if v is None:
            return []
        if isinstance(v, str):
            if o.label_separator is None:
                raise fail(f"{where_row} has {self.columns.label} {v!r}, a string, not a list of labels",
                           "label_separator", "set label_separator (e.g. ',') or store the labels as a list")
            return [p.strip() for p in v.split(o.label_separator) if p.strip()]
        if not isinstance(v, (list, tuple)):
            raise fail(f"{where_row} has {self.columns.label} {v!r}, not a list of labels", "label_column",
                       "give a list of labels per row")
        return [str(x) for x in v if x is not None and str(x).strip()]

    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        import datasets

        c = self.columns
        needed = text_needs(c) | self._label_keys()
        labels: dict[str, list[list[str]]] = {}
        for split, ds in raw.items():
            check_columns(ds, split, needed, where)

            def fail(message: str, key: str, hint: str, split: str = split) -> Exception:
                return where.error(split, message, key=key, hint=hint)
            labels[split] = [self._row_labels(r, where.row(split, ds, i), fail) for i, r in enumerate(ds)]
        names = list(self.options.label_columns or sorted({n for row in labels["train"] for n in row}))
        if len(names) < 2:
            raise where.error("train", f"train has {len(names)} label(s); multi-label classification needs at "
                                       "least two", key="label_column", hint="check the label column")
        known, index = set(names), {n: i for i, n in enumerate(names)}
        out = {}
        for split, ds in raw.items():
            for i, row in enumerate(labels[split]):
                unseen = [n for n in row if n not in known]
                if unseen:
                    raise where.error(split, f"{where.row(split, ds, i)} has label {unseen[0]!r}, which train "
                                             "never has", hint="add examples of it to train or drop the row")
            texts = joined_texts(ds, split, c, where)
            pairs = [text_value(v, split, ds, i, where) for i, v in enumerate(ds[c.text_pair])] if c.text_pair else None
            ids = [sorted({index[n] for n in row}) for row in labels[split]]
            out[split] = text_dataset(texts, pairs, {"label": (ids, datasets.Sequence(datasets.ClassLabel(names=names)))})
        return Prepared(out, names)

    # -- training ----------------------------------------------------------------------------------
    def encode_fn(self, tokenizer: Any, *, max_length: int, label_names: list[str]) -> Callable:
        n = len(label_names)
        return text_encode_fn(tokenizer, max_length, lambda rows: [multi_hot(r, n) for r in rows])

    @property
    def model_class(self) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        return {**label_maps(label_names), "problem_type": "multi_label_classification"}

    def _choice_metric(self, objective: str | None) -> str:
        return objective if objective in self.metrics else "f1_micro"

    def compute_metrics_fn(self, label_names: list[str], *, objective: str | None = None) -> Callable:
        metric = self._choice_metric(objective)

        def compute(pred: Any) -> dict[str, float]:
            logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
            probs, gold = sigmoid(np.asarray(logits)), np.asarray(pred.label_ids) > 0.5
            threshold = self._threshold(probs, gold, metric)
            return {**multilabel_scores(gold, probs >= threshold), "threshold": threshold}
        return compute

    def _threshold(self, probs: np.ndarray, gold: np.ndarray, metric: str) -> float:
        t = self.options.threshold
        return float(t) if t != "auto" else choose_threshold(probs, gold, metric, self.metrics[metric])

    def finalize(self, model_dir: Path, validation: "datasets.Dataset", label_names: list[str], *,
                 max_length: int, objective: str | None = None) -> dict[str, Any]:
        probs, names, _, _ = self._scores(str(model_dir), *text_inputs(validation), max_length=max_length)
        gold = gold_matrix([[label_names[i] for i in row] for row in validation["label"]], names)
        threshold = self._threshold(probs, gold, self._choice_metric(objective))
        path = Path(model_dir) / "config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        config[THRESHOLD_KEY] = threshold
        tmp = path.with_name(f".config.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # a kill mid-write leaves the old config, never half a file
        return {"threshold": threshold}

    # -- unseen data -------------------------------------------------------------------------------
    def _scores(self, model: str, inputs: list[Any], lengths: list[int], *, max_length: int,
                batch_size: int = 64) -> tuple[np.ndarray, list[str], float, float]:
        """Sigmoid scores (rows x the model's labels in id order), the label names, the model's threshold
        (0.5 when its config has none) and the ms per input."""
        pipe = make_pipeline("text-classification", model, max_length=max_length, batch_size=batch_size, top_k=None)
        outputs, ms = in_length_order(pipe, inputs, lengths, truncation=True, max_length=max_length)
        config = pipe.model.config
        names = [str(config.id2label[i]) for i in sorted(config.id2label)]
        column = {n: i for i, n in enumerate(names)}
        probs = np.zeros((len(inputs), len(names)))
        for r, out in enumerate(outputs):
            for item in out:
                probs[r, column[str(item["label"])]] = float(item["score"])
        return probs, names, float(getattr(config, THRESHOLD_KEY, 0.5)), ms

    def evaluate(self, model: str, dataset: "datasets.Dataset", label_names: list[str], *, max_length: int,
                 batch_size: int = 64) -> dict[str, Any]:
        probs, names, threshold, ms = self._scores(model, *text_inputs(dataset), max_length=max_length,
                                                   batch_size=batch_size)
        gold = gold_matrix([[label_names[i] for i in row] for row in dataset["label"]], names)
        pred = probs >= threshold
        return {"metrics": multilabel_scores(gold, pred), "per_class": per_label(gold, pred, names),
                "labels": names, "threshold": threshold, "examples": len(gold), "latency_ms_per_example": ms,
                "label_rows": [[np.flatnonzero(g).tolist(), np.flatnonzero(p).tolist()] for g, p in zip(gold, pred)]}

    def gate_noise(self, metric: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str] | None:
        """A paired bootstrap over the test rows (F1 and Hamming loss are no proportions of examples)."""
        if metric not in self.metrics or a.get("labels") != b.get("labels") or not a.get("labels"):
            return None
        n = len(a["labels"])

        def matrices(result: dict[str, Any]) -> np.ndarray:  # rows x (gold, predicted) x labels
            out = np.zeros((len(result.get("label_rows") or []), 2, n), dtype=bool)
            for i, (gold, pred) in enumerate(result.get("label_rows") or []):
                out[i, 0, gold], out[i, 1, pred] = True, True
            return out
        return paired_half_width(lambda m: one_score(metric, m[:, 0], m[:, 1]), matrices(a), matrices(b))

    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        texts, pairs = read_texts(rows, self.columns)
        inputs, lengths = pair_inputs(texts, pairs)
        probs, names, threshold, ms = self._scores(model, inputs, lengths, max_length=max_length,
                                                   batch_size=batch_size)
        out = [{"text": t, **({"text_pair": pairs[i]} if pairs else {}),
                "predicted": [n for j, n in enumerate(names) if probs[i, j] >= threshold],
                "scores": {n: round(float(probs[i, j]), 6) for j, n in enumerate(names)}}
               for i, t in enumerate(texts)]
        counts = {n: int((probs[:, j] >= threshold).sum()) for j, n in enumerate(names)}
        result: dict[str, Any] = {"rows": out, "summary": {"rows": len(rows), "threshold": threshold,
                                                          "predicted": counts, "latency_ms_per_example": ms}}
        if rows and all(k in rows[0] for k in self._label_keys()):
            def fail(message: str, key: str, hint: str) -> Exception:
                return DataError(message, hint=hint)
            gold_names = [self._row_labels(r, f"row {i + 1}", fail) for i, r in enumerate(rows)]
            extra = sorted({n for row in gold_names for n in row} - set(names))  # never predicted: count as misses
            gold = gold_matrix(gold_names, names + extra)
            pred = np.hstack([probs >= threshold, np.zeros((len(rows), len(extra)), dtype=bool)])
            for row, g in zip(out, gold_names):
                row["labels"] = g
            result["metrics"] = multilabel_scores(gold, pred)
            result["per_class"] = per_label(gold, pred, names + extra)
        return result

    # -- report and card ---------------------------------------------------------------------------
    def report_sections(self, final: dict[str, Any], data: dict[str, Any], *, model_ref: str,
                        max_length: int) -> dict[str, list[Block]]:
        c = self.columns
        threshold = final.get("threshold")
        how = ("fixed in the study file" if self.options.threshold != "auto"
               else "chosen on the validation split")
        evaluation = sections.metrics_table(final, data, METRIC_ORDER, skip=("threshold",))
        evaluation.insert(2, Para(
            "A label is predicted when its score reaches the decision threshold"
            + (f" **{threshold:.2f}** ({how}, saved in config.json as `{THRESHOLD_KEY}`)" if threshold is not None
               else "") + ". Subset accuracy counts a text right only when its whole label set is; Hamming loss "
            "is the share of wrong label decisions (lower is better)."))
        if final.get("per_class"):
            evaluation += sections.per_label_table("Per label (test)", "label", final["per_class"])
        label = ",".join(self.options.label_columns) if self.options.label_columns else c.label
        return {
            "how_to_use": sections.how_to_use("text-classification", model_ref, sections.text_call(c),
                                              sections.text_cli(c, label), kwargs=", top_k=None")
            + [Para(f"The pipeline returns every label's score; keep those at or above the threshold "
                    f"(`model.config.{THRESHOLD_KEY}`). `hpo predict` applies it.")],
            "evaluation": evaluation,
            "intended_use": sections.intended_use(
                f"Tagging texts like those of the training data with any of: {', '.join(final.get('labels', []))}.",
                ["One threshold serves every label; rare labels may need another one.",
                 f"Inputs longer than {max_length} tokens are truncated."])}

    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"pipeline_tag": self.pipeline_tag, "tags": ["text-classification", "multi-label-classification"],
                "widget": widget_examples(examples), "task_type": "text-classification",
                "task_name": "Multi-label Text Classification"}


def multi_hot(ids: Sequence[int], n: int) -> list[float]:
    row = [0.0] * n
    for i in ids:
        row[i] = 1.0
    return row


def gold_matrix(rows: Sequence[Sequence[str]], names: list[str]) -> np.ndarray:
    column = {n: i for i, n in enumerate(names)}
    gold = np.zeros((len(rows), len(names)), dtype=bool)
    for r, row in enumerate(rows):
        for n in row:
            gold[r, column[n]] = True
    return gold
