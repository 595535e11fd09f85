"""text-classification on unseen data through `transformers.pipeline`: predictions, metrics, confusion
matrix, latency."""

from __future__ import annotations

from typing import Any, Sequence

from hpo import metrics as metric_lib
from hpo.tasks.base import in_length_order, make_pipeline, pair_inputs

ALL_METRICS = ["accuracy", "f1", "precision", "recall", "matthews_correlation"]


def classify(pipe: Any, texts: Sequence[str],
             pairs: Sequence[str] | None = None) -> tuple[list[str], list[float], float]:
    """Predicted label names and their scores, one per text, in input order; and the milliseconds per text."""
    inputs, lengths = pair_inputs(texts, pairs)
    outputs, ms = in_length_order(pipe, inputs, lengths, truncation=True, max_length=pipe.tokenizer.model_max_length)
    tops = [out[0] if isinstance(out, list) else out for out in outputs]
    return [str(t["label"]) for t in tops], [float(t["score"]) for t in tops], ms


def score(predicted: Sequence[str], references: Sequence[str], label_names: list[str],
          *, average: str = "macro") -> dict[str, Any]:
    """Metrics by label name (so string labels round-trip), confusion matrix and per-class report."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    index = {n: i for i, n in enumerate(label_names)}
    unknown = sorted({p for p in predicted if p not in index})
    for name in unknown:  # a model's label the data never uses still gets a column
        index[name] = len(index)
    names = list(index)
    pred = [index[p] for p in predicted]
    ref = [index.get(r, -1) for r in references]
    metrics = metric_lib.compute(ALL_METRICS, pred, ref, average=average)
    ids = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(ref, pred, labels=ids, zero_division=0)
    return {
        "metrics": metrics,
        "labels": names,
        "confusion_matrix": confusion_matrix(ref, pred, labels=ids).tolist(),
        "per_class": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, n in enumerate(names)},
    }


def evaluate_on(model: str, dataset: Any, label_names: list[str], *, max_length: int, batch_size: int = 64,
                average: str = "macro") -> dict[str, Any]:
    """Evaluate a saved model (folder or repo id) on a labelled split with columns text[, text_pair], label."""
    pipe = make_pipeline("text-classification", model, max_length=max_length, batch_size=batch_size)
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    predicted, _, ms = classify(pipe, dataset["text"], pairs)
    references = [label_names[i] for i in dataset["label"]]
    result = score(predicted, references, label_names, average=average)
    result["examples"] = len(references)
    result["latency_ms_per_example"] = ms
    return result
