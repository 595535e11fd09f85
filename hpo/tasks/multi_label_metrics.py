"""Multi-label scores on boolean label matrices, and the decision threshold chosen on validation."""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLD_KEY = "multi_label_threshold"  # config.json attribute the threshold is saved under
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 … 0.95


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def multilabel_scores(gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Micro/macro F1, micro precision and recall, subset accuracy (whole label set right), Hamming loss."""
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_score, recall_score

    gold, pred = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    return {"f1_micro": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "f1_macro": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "precision_micro": float(precision_score(gold, pred, average="micro", zero_division=0)),
            "recall_micro": float(recall_score(gold, pred, average="micro", zero_division=0)),
            "subset_accuracy": float(accuracy_score(gold, pred)),
            "hamming_loss": float(hamming_loss(gold, pred))}


def one_score(metric: str, gold: np.ndarray, pred: np.ndarray) -> float:
    """One of multilabel_scores' metrics with numpy alone (the gate's bootstrap computes it hundreds of times)."""
    gold, pred = np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool)
    if metric == "subset_accuracy":
        return float((gold == pred).all(axis=1).mean())
    if metric == "hamming_loss":
        return float((gold != pred).mean())
    tp, fp, fn = ((gold & pred).sum(axis=0), (~gold & pred).sum(axis=0), (gold & ~pred).sum(axis=0))
    if metric == "f1_macro":
        denominator = 2 * tp + fp + fn
        return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)))
    tp, fp, fn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    part = {"f1_micro": (2 * tp, 2 * tp + fp + fn), "precision_micro": (tp, tp + fp),
            "recall_micro": (tp, tp + fn)}[metric]
    return part[0] / part[1] if part[1] else 0.0


def per_label(gold: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, dict[str, Any]]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(np.asarray(gold, dtype=bool), np.asarray(pred, dtype=bool),
                                                 average=None, zero_division=0)
    return {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, n in enumerate(names)}


def choose_threshold(probs: np.ndarray, gold: np.ndarray, metric: str = "f1_micro",
                     direction: str = "maximize") -> float:
    """The grid threshold (0.05 … 0.95) with the best `metric`; ties go to the one nearest 0.5."""
    sign = 1.0 if direction == "maximize" else -1.0
    best = max(THRESHOLDS, key=lambda t: (sign * multilabel_scores(gold, probs >= t)[metric], -abs(t - 0.5)))
    return float(best)
