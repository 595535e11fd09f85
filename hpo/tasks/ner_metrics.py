"""Entity-level scores as seqeval computes them (default, conlleval-compatible mode), and the mapping of a
token-classification pipeline's entities back onto the input words."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def ner_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> tuple[dict[str, float], dict[str, Any]]:
    """Micro precision/recall/F1 over entities, token accuracy; and precision/recall/F1/support per type."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    metrics = {"precision": float(precision_score(gold, pred, zero_division=0)),
               "recall": float(recall_score(gold, pred, zero_division=0)),
               "f1": float(f1_score(gold, pred, zero_division=0)),
               "accuracy": float(accuracy_score(gold, pred))}
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {t: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
                    "support": int(v["support"])}
                for t, v in sorted(report.items()) if not t.endswith(" avg")}
    return metrics, per_type


def sentence_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> list[list[int]]:
    """Per sentence: [entities found, predicted, gold, words tagged right, words]. Their sums give
    ner_scores' micro metrics, so the gate's bootstrap can resample sentences without seqeval."""
    from seqeval.metrics.sequence_labeling import get_entities

    rows = []
    for g, p in zip(gold, pred):
        gold_entities, predicted = set(get_entities(list(g))), set(get_entities(list(p)))
        rows.append([len(gold_entities & predicted), len(predicted), len(gold_entities),
                     sum(a == b for a, b in zip(g, p)), len(g)])
    return rows


def count_score(metric: str, counts: np.ndarray) -> float:
    """One of ner_scores' metrics from sentence_counts rows."""
    tp, predicted, gold, right, words = (int(v) for v in np.asarray(counts).reshape(-1, 5).sum(axis=0))
    return {"precision": tp / predicted if predicted else 0.0, "recall": tp / gold if gold else 0.0,
            "f1": 2 * tp / (predicted + gold) if predicted + gold else 0.0,
            "accuracy": right / words if words else 0.0}[metric]


def tags_from_logits(predictions: Any, label_ids: Any, label_names: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tags of the labelled positions (label != -100: first piece of each word)."""
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    best = np.argmax(logits, axis=-1)
    gold, pred = [], []
    for p_row, l_row in zip(best, label_ids):
        keep = l_row != -100
        gold.append([label_names[i] for i in l_row[keep]])
        pred.append([label_names[i] for i in p_row[keep]])
    return gold, pred


def entities_to_tags(words: Sequence[str], entities: Sequence[dict[str, Any]],
                     delimiter: str = " ") -> tuple[list[str], list[dict[str, Any]]]:
    """BIO tags per word from a token-classification pipeline's output on `delimiter.join(words)`
    (is_split_into_words=True), and the entities as word spans {"entity", "start", "end" (exclusive),
    "text", "score"}.

    Grouped output (aggregation simple/first/average/max): a word takes the entity that covers its first
    character, the first word of an entity B-, the following ones I-. Ungrouped output (none): a word takes
    its first piece's tag, exactly as training labels words, so the scores equal the Trainer's.
    """
    from seqeval.metrics.sequence_labeling import get_entities

    starts, pos = {}, 0
    for i, w in enumerate(words):
        starts[pos] = i
        pos += len(w) + len(delimiter)
    tags = ["O"] * len(words)
    scores = [0.0] * len(words)
    for e in entities:
        if "entity_group" not in e:
            word = starts.get(int(e["start"]))
            if word is not None and tags[word] == "O":
                tags[word], scores[word] = str(e["entity"]), float(e["score"])
            continue
        covered = [starts[c] for c in range(int(e["start"]), int(e["end"])) if c in starts]
        covered = [i for i in covered if tags[i] == "O"]
        for n, i in enumerate(covered):
            tags[i], scores[i] = f"{'I' if n else 'B'}-{e['entity_group']}", float(e["score"])
    spans = [{"entity": kind, "start": a, "end": b + 1, "text": delimiter.join(words[a:b + 1]),
              "score": float(np.mean(scores[a:b + 1]))} for kind, a, b in get_entities(tags)]
    return tags, spans
