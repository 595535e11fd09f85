"""Unseen data through `transformers.pipeline`: predictions, metrics, confusion matrix, latency."""

from __future__ import annotations

import time
from typing import Any, Sequence

from hpo import metrics as metric_lib

ALL_METRICS = ["accuracy", "f1", "precision", "recall", "matthews_correlation"]


def make_pipeline(model: str, *, batch_size: int = 64, max_length: int | None = None) -> Any:
    from transformers import pipeline

    from hpo.devices import inference_device
    from hpo.search.setup import set_threads

    set_threads()
    pipe = pipeline("text-classification", model=model, device=inference_device(), batch_size=batch_size)
    pipe.hpo_max_length = max_length or getattr(pipe.tokenizer, "model_max_length", 512)
    if pipe.hpo_max_length > 4096:
        pipe.hpo_max_length = 512
    return pipe


def predict(pipe: Any, texts: Sequence[str], pairs: Sequence[str] | None = None) -> tuple[list[str], list[float]]:
    """Predicted label names and their scores, one per text."""
    inputs: list[Any] = list(texts) if pairs is None else [
        {"text": t, "text_pair": p} for t, p in zip(texts, pairs)]
    # Batches of texts of about one length pad little; the outputs go back to the input order.
    order = sorted(range(len(inputs)), key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs is not None else 0))
    outputs: list[Any] = [None] * len(inputs)
    for i, out in zip(order, pipe([inputs[i] for i in order], truncation=True, max_length=pipe.hpo_max_length)):
        outputs[i] = out
    labels, scores = [], []
    for out in outputs:
        top = out[0] if isinstance(out, list) else out
        labels.append(str(top["label"]))
        scores.append(float(top["score"]))
    return labels, scores


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


def evaluate_on(model: str, dataset: Any, label_names: list[str], *, max_length: int,
                average: str = "macro") -> dict[str, Any]:
    """Evaluate a saved model (folder or repo id) on a labelled split with columns text[, text_pair], label."""
    pipe = make_pipeline(model, max_length=max_length)
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    start = time.perf_counter()
    predicted, _ = predict(pipe, dataset["text"], pairs)
    elapsed = time.perf_counter() - start
    references = [label_names[i] for i in dataset["label"]]
    result = score(predicted, references, label_names, average=average)
    result["examples"] = len(references)
    result["latency_ms_per_example"] = round(1000 * elapsed / max(1, len(references)), 3)
    return result
