"""text-regression: a number per text (or sentence pair), e.g. a similarity score.

The head is one output with `problem_type: regression` in the saved config, so `pipeline(model=folder)`
returns the raw value: transformers' text-classification pipeline applies no function for regression
(it would apply a sigmoid to a single-output model without it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from hpo.errors import DataError
from hpo.report.blocks import Block, Bullets, Heading, Para
from hpo.tasks import sections
from hpo.tasks.base import (Prepared, Task, TaskOptions, Where, check_columns, in_length_order, make_pipeline,
                            pair_inputs, read_texts, text_dataset, text_encode_fn, text_inputs, text_needs,
                            text_value, joined_texts,
                            widget_examples)
from hpo.tasks.bootstrap import paired_half_width

if TYPE_CHECKING:
    import datasets

METRIC_ORDER = ["pearson", "spearman", "mse", "rmse", "mae", "loss"]


class RegressionOptions(TaskOptions):
    """text-regression uses dataset.text_column, text_pair_column and label_column (the number); no own keys."""


def regression_scores(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation (0.0 where undefined: constant predictions or gold), MSE, RMSE, MAE."""
    from scipy.stats import pearsonr, spearmanr

    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    r = np.asarray(references, dtype=np.float64).reshape(-1)
    err = p - r
    mse = float(np.mean(err ** 2))
    constant = len(p) < 2 or np.ptp(p) == 0 or np.ptp(r) == 0
    return {"pearson": 0.0 if constant else float(pearsonr(p, r)[0]),
            "spearman": 0.0 if constant else float(spearmanr(p, r)[0]),
            "mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(err)))}


def one_score(metric: str, predicted: np.ndarray, gold: np.ndarray) -> float:
    """One of regression_scores' metrics, alone (the gate's bootstrap computes it hundreds of times)."""
    if metric in ("pearson", "spearman"):
        if metric == "spearman":
            from scipy.stats import rankdata

            predicted, gold = rankdata(predicted), rankdata(gold)
        if np.ptp(predicted) == 0 or np.ptp(gold) == 0:
            return 0.0
        return float(np.corrcoef(predicted, gold)[0, 1])
    err = predicted - gold
    return {"mse": lambda: float(np.mean(err ** 2)), "rmse": lambda: math.sqrt(float(np.mean(err ** 2))),
            "mae": lambda: float(np.mean(np.abs(err)))}[metric]()


def to_float(value: Any) -> float | None:
    """A finite number from a number or a numeric string; None otherwise (booleans are not numbers here)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class TextRegression(Task):
    name = "text-regression"
    pipeline_tag = "text-classification"  # the Hub and transformers serve regression heads through it
    description = "a text-regression model"
    Options = RegressionOptions
    metrics = {"pearson": "maximize", "spearman": "maximize", "mse": "minimize", "rmse": "minimize",
               "mae": "minimize"}
    default_metric = "pearson"

    def prepare(self, raw: dict[str, "datasets.Dataset"], *, where: Where) -> Prepared:
        import datasets

        c = self.columns
        needed = text_needs(c) | {c.label: "label_column"}
        out = {}
        for split, ds in raw.items():
            check_columns(ds, split, needed, where)
            values = []
            for i, v in enumerate(ds[c.label]):
                number = to_float(v)
                if number is None:
                    raise where.error(split, f"{where.row(split, ds, i)} has {c.label} {v!r}, not a number",
                                      key="label_column", hint="give a finite number (e.g. 3.8) in every row")
                values.append(number)
            texts = joined_texts(ds, split, c, where)
            pairs = [text_value(v, split, ds, i, where) for i, v in enumerate(ds[c.text_pair])] if c.text_pair else None
            out[split] = text_dataset(texts, pairs, {"label": (values, datasets.Value("float32"))})
        if len(set(out["train"]["label"])) < 2:
            raise where.error("train", "every train row has the same value; regression needs varied targets",
                              key="label_column", hint="check the label column")
        return Prepared(out, [c.label])

    def describe_labels(self, label_names: list[str]) -> str:
        return f"a value to predict ({', '.join(label_names)})"

    def encode_fn(self, tokenizer: Any, *, max_length: int, label_names: list[str]) -> Callable:
        return text_encode_fn(tokenizer, max_length, lambda values: [float(v) for v in values])

    @property
    def model_class(self) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def model_kwargs(self, label_names: list[str]) -> dict[str, Any]:
        name = label_names[0] if label_names else "score"
        return {"num_labels": 1, "problem_type": "regression", "id2label": {0: name}, "label2id": {name: 0}}

    def compute_metrics_fn(self, label_names: list[str], *, objective: str | None = None) -> Callable:
        def compute(pred: Any) -> dict[str, float]:
            out = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
            return regression_scores(np.asarray(out).reshape(-1), np.asarray(pred.label_ids).reshape(-1))
        return compute

    def _values(self, model: str, inputs: list[Any], lengths: list[int], *, max_length: int,
                batch_size: int) -> tuple[list[float], float]:
        pipe = make_pipeline("text-classification", model, max_length=max_length, batch_size=batch_size)
        outputs, ms = in_length_order(pipe, inputs, lengths, truncation=True, max_length=max_length)
        return [float((o[0] if isinstance(o, list) else o)["score"]) for o in outputs], ms

    def evaluate(self, model: str, dataset: "datasets.Dataset", label_names: list[str], *, max_length: int,
                 batch_size: int = 64) -> dict[str, Any]:
        inputs, lengths = text_inputs(dataset)
        predicted, ms = self._values(model, inputs, lengths, max_length=max_length, batch_size=batch_size)
        gold = [float(v) for v in dataset["label"]]
        return {"metrics": regression_scores(predicted, gold), "examples": len(gold), "latency_ms_per_example": ms,
                "distribution": distribution(predicted, gold),
                "points": [[round(g, 4), round(p, 4)] for g, p in zip(gold, predicted)]}  # the report's scatter

    def gate_noise(self, metric: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str] | None:
        """A paired bootstrap over the test rows (the binomial does not apply to correlations and errors)."""
        if metric not in self.metrics:
            return None
        return paired_half_width(lambda points: one_score(metric, points[:, 1], points[:, 0]),
                                 a.get("points") or [], b.get("points") or [])

    def predict(self, model: str, rows: list[dict[str, Any]], *, max_length: int,
                batch_size: int = 64) -> dict[str, Any]:
        texts, pairs = read_texts(rows, self.columns)
        inputs, lengths = pair_inputs(texts, pairs)
        predicted, ms = self._values(model, inputs, lengths, max_length=max_length, batch_size=batch_size)
        out = [{"text": t, **({"text_pair": pairs[i]} if pairs else {}), "predicted": v}
               for i, (t, v) in enumerate(zip(texts, predicted))]
        result: dict[str, Any] = {"rows": out, "summary": {"rows": len(rows), "latency_ms_per_example": ms,
                                                          "mean_predicted": float(np.mean(predicted))}}
        label = self.columns.label
        if rows and all(label in r for r in rows):
            gold = []
            for i, r in enumerate(rows):
                number = to_float(r[label])
                if number is None:
                    raise DataError(f"row {i + 1} has {label} {r[label]!r}, not a number",
                                    hint="give a number in every row, or no label column")
                gold.append(number)
                out[i]["label"] = number
            result["metrics"] = regression_scores(predicted, gold)
            result["distribution"] = distribution(predicted, gold)
        return result

    def report_sections(self, final: dict[str, Any], data: dict[str, Any], *, model_ref: str,
                        max_length: int) -> dict[str, list[Block]]:
        evaluation = sections.metrics_table(final, data, METRIC_ORDER)
        evaluation.insert(2, Para("Pearson and Spearman are correlations with the true values (higher is "
                                  "better); MSE, RMSE and MAE are errors in the target's unit (lower is better)."))
        dist = final.get("distribution")
        if dist:
            evaluation += [Heading(3, "Predicted and true values (test)"), Bullets([
                f"true: mean {dist['gold_mean']:.4g}, range {dist['gold_min']:.4g} … {dist['gold_max']:.4g}",
                f"predicted: mean {dist['predicted_mean']:.4g}, range {dist['predicted_min']:.4g} … "
                f"{dist['predicted_max']:.4g}"])]
        c = self.columns
        return {
            "how_to_use": sections.how_to_use("text-classification", model_ref, sections.text_call(c),
                                              sections.text_cli(c, c.label)),
            "evaluation": evaluation,
            "intended_use": sections.intended_use(
                f"Predicting `{c.label}` for texts like those of the training data; the pipeline's `score` is the "
                "predicted value.",
                ["Predictions are not bounded: they can leave the training range, most for unusual text.",
                 f"Inputs longer than {max_length} tokens are truncated."])}

    def card_metadata(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"pipeline_tag": self.pipeline_tag, "tags": ["text-regression", "text-classification"],
                "widget": widget_examples(examples), "task_type": "text-classification",
                "task_name": "Text Regression"}


def distribution(predicted: Sequence[float], gold: Sequence[float]) -> dict[str, float]:
    p, g = np.asarray(predicted, dtype=float), np.asarray(gold, dtype=float)
    return {"predicted_mean": float(p.mean()), "predicted_min": float(p.min()), "predicted_max": float(p.max()),
            "gold_mean": float(g.mean()), "gold_min": float(g.min()), "gold_max": float(g.max())}
