"""ROUGE of generated summaries against references, with Google's `rouge-score` package (no download: the
`evaluate` module fetches its script from the Hub).

Each score is the F-measure of one example (0..1), averaged over the examples. Words are lower-cased and
stemmed (Porter), as in transformers' summarization examples; rougeLsum compares sentence by sentence, with
sentences split at ., ! or ? followed by a space (rouge-score itself splits only at newlines).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

ROUGE = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> str:
    """The text with one sentence per line (rougeLsum's unit)."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(ROUGE, use_stemmer=True)


def rouge_rows(predictions: Sequence[str], references: Sequence[str]) -> list[list[float]]:
    """Per example: [rouge1, rouge2, rougeL, rougeLsum] F-measures."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references; give one per reference")
    scorer = _scorer()
    rows = []
    for p, r in zip(predictions, references):
        scores = scorer.score(sentences(r), sentences(p))  # (target, prediction)
        rows.append([float(scores[k].fmeasure) for k in ROUGE])
    return rows


def mean_scores(rows: Sequence[Sequence[float]]) -> dict[str, float]:
    """The mean of each ROUGE over the examples (0.0 for none)."""
    table = np.asarray(rows, dtype=float).reshape(-1, len(ROUGE))
    return {k: float(table[:, i].mean()) if len(table) else 0.0 for i, k in enumerate(ROUGE)}


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """rouge1, rouge2, rougeL, rougeLsum: mean F-measures."""
    return mean_scores(rouge_rows(predictions, references))


def one_score(metric: str, rows: np.ndarray) -> float:
    """One ROUGE's mean over rows of rouge_rows (the gate's bootstrap)."""
    return float(np.mean(rows[:, ROUGE.index(metric)]))
