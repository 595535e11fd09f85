"""multi-label-classification: the three label layouts, bad rows named, metrics, the threshold chosen on
validation and saved in the model, and a saved model whose pipeline output becomes label lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from task_helpers import shared_rows, tiny_base, to_dataset, train_briefly, write_jsonl

from hpo.errors import DataError
from hpo.tasks import Columns, Where, get_task
from hpo.tasks.multi_label_metrics import THRESHOLD_KEY, choose_threshold, multilabel_scores

LABELS = Columns(text="text", label="labels")
EXPECTED = [["negative", "positive"], ["neutral"], []]


def _check(prepared) -> None:
    assert prepared.label_names == ["negative", "neutral", "positive"]
    train = prepared.splits["train"]
    assert [[prepared.label_names[i] for i in row] for row in train["label"]] == EXPECTED
    assert train["text"] == ["good and bad", "so so", "nothing"]


def test_list_column(tmp_path: Path) -> None:
    import datasets

    rows = [{"text": "good and bad", "labels": ["positive", "negative"]}, {"text": "so so", "labels": ["neutral"]},
            {"text": "nothing", "labels": []}]
    ds = datasets.load_dataset("json", data_files=str(write_jsonl(tmp_path / "t.jsonl", rows)), split="train")
    _check(get_task("multi-label-classification", columns=LABELS).prepare({"train": ds}, where=Where()))


def test_delimited_string_column(tmp_path: Path) -> None:
    import datasets

    path = tmp_path / "train.csv"
    path.write_text('text,labels\ngood and bad,"positive, negative"\nso so,neutral\nnothing,\n')
    ds = datasets.load_dataset("csv", data_files=str(path), split="train")
    task = get_task("multi-label-classification", {"label_separator": ","}, columns=LABELS)
    _check(task.prepare({"train": ds}, where=Where()))
    with pytest.raises(DataError, match=r"dataset.label_separator: train row 2 has labels 'positive, negative', "
                                        r"a string, not a list of labels"):
        get_task("multi-label-classification", columns=LABELS).prepare({"train": ds},
                                                                        where=Where(header={"train": 1}))


def test_one_column_per_label(tmp_path: Path) -> None:
    import datasets

    path = tmp_path / "train.csv"
    path.write_text("text,negative,neutral,positive\ngood and bad,1,0,1\nso so,0,1,0\nnothing,0,0,0\n")
    ds = datasets.load_dataset("csv", data_files=str(path), split="train")
    task = get_task("multi-label-classification", {"label_columns": ["negative", "neutral", "positive"]},
                    columns=LABELS)
    _check(task.prepare({"train": ds}, where=Where()))
    path.write_text("text,negative,neutral,positive\ngood and bad,1,0,1\nso so,0,2,0\n")
    bad = datasets.load_dataset("csv", data_files=str(path), split="train")
    with pytest.raises(DataError, match=r"dataset.label_columns: train row 3 has neutral 2; label columns hold 0 or 1"):
        task.prepare({"train": bad}, where=Where(header={"train": 1}))


def test_unseen_label_and_conflicting_options_are_errors() -> None:
    task = get_task("multi-label-classification", columns=LABELS)
    train = to_dataset([{"text": "a", "labels": ["x"]}, {"text": "b", "labels": ["y"]}])
    validation = to_dataset([{"text": "c", "labels": ["x"]}, {"text": "d", "labels": ["y", "z"]}])
    with pytest.raises(DataError, match=r"dataset.validation: validation row 2 has label 'z', which train never has"):
        task.prepare({"train": train, "validation": validation}, where=Where())
    with pytest.raises(ValidationError, match="give one of them"):
        get_task("multi-label-classification", {"label_separator": ",", "label_columns": ["a", "b"]})
    with pytest.raises(ValidationError, match="threshold must be between 0 and 1"):
        get_task("multi-label-classification", {"threshold": 1.5})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        get_task("multi-label-classification", {"separator": ","})


def test_scores_against_hand_computed_values() -> None:
    gold = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    pred = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    # 2 true positives, 1 false positive, 1 false negative; label 3 has f1 0, labels 1 and 2 have f1 1
    assert multilabel_scores(gold, pred) == pytest.approx({
        "f1_micro": 2 / 3, "f1_macro": 2 / 3, "precision_micro": 2 / 3, "recall_micro": 2 / 3,
        "subset_accuracy": 0.0, "hamming_loss": 2 / 6})


def test_threshold_chosen_on_validation() -> None:
    gold = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], dtype=bool)
    probs = np.array([[0.62, 0.30], [0.58, 0.70], [0.10, 0.20], [0.90, 0.64]])
    # every positive scores >= 0.62 and every negative <= 0.58: only 0.60 on the grid separates them
    assert choose_threshold(probs, gold) == 0.6
    assert choose_threshold(probs, gold, "hamming_loss", "minimize") == 0.6
    separable = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.1], [0.9, 0.9]])
    assert choose_threshold(separable, gold) == 0.5  # 0.15 … 0.9 all perfect: the one nearest 0.5

    from transformers import EvalPrediction

    logits = np.log(probs / (1 - probs))
    auto = get_task("multi-label-classification", columns=LABELS).compute_metrics_fn(["a", "b"])
    assert auto(EvalPrediction(logits, gold.astype(float))) == pytest.approx({
        **multilabel_scores(gold, probs >= 0.6), "threshold": 0.6})
    fixed = get_task("multi-label-classification", {"threshold": 0.8}, columns=LABELS).compute_metrics_fn(["a", "b"])
    assert fixed(EvalPrediction(logits, gold.astype(float)))["f1_micro"] == pytest.approx(
        multilabel_scores(gold, probs >= 0.8)["f1_micro"])


def test_goemotions_training_lowers_the_loss(tmp_path: Path) -> None:
    train, val = shared_rows("goemotions", "train", 320), shared_rows("goemotions", "validation", 64)
    base = tiny_base(tmp_path / "base", [r["text"] for r in train], vocab_size=500)
    task = get_task("multi-label-classification", columns=LABELS)
    prepared = task.prepare({"train": to_dataset(train), "validation": to_dataset(val)}, where=Where())
    assert prepared.label_names == ["ambiguous", "negative", "neutral", "positive"]
    _, before, after = train_briefly(task, base, prepared, tmp_path / "model", max_steps=30)
    assert after < 0.9 * before


def test_saved_model_predicts_label_lists_with_its_threshold(tmp_path: Path) -> None:
    rows = []
    for s in ("the day", "my week", "this film", "our trip"):
        rows += [{"text": f"{s} was sunny", "labels": ["positive"]},
                 {"text": f"{s} was rainy", "labels": ["negative"]},
                 {"text": f"{s} was sunny and rainy", "labels": ["negative", "positive"]},
                 {"text": f"{s} was odd", "labels": ["ambiguous"]},
                 {"text": f"{s} was odd and sunny", "labels": ["ambiguous", "positive"]}]
    base = tiny_base(tmp_path / "base", [r["text"] for r in rows], vocab_size=100, hidden=32)
    task = get_task("multi-label-classification", columns=LABELS)
    prepared = task.prepare({"train": to_dataset(rows), "validation": to_dataset(rows)}, where=Where())
    model_dir = tmp_path / "model"
    train_briefly(task, base, prepared, model_dir, max_steps=60, learning_rate=2e-2)
    chosen = task.finalize(model_dir, prepared.splits["validation"], prepared.label_names, max_length=32)
    config = json.loads((model_dir / "config.json").read_text())
    assert config[THRESHOLD_KEY] == chosen["threshold"] and config["problem_type"] == "multi_label_classification"

    result = task.evaluate(str(model_dir), prepared.splits["validation"], prepared.label_names, max_length=32)
    assert result["threshold"] == chosen["threshold"] and result["metrics"]["f1_micro"] >= 0.9

    from transformers import pipeline

    scores = pipeline("text-classification", model=str(model_dir), top_k=None)(["my week was sunny and rainy"])[0]
    out = task.predict(str(model_dir), [{"text": "my week was sunny and rainy", "labels": ["negative", "positive"]}],
                       max_length=32)
    row = out["rows"][0]
    assert row["scores"] == pytest.approx({s["label"]: s["score"] for s in scores}, abs=1e-6)
    assert row["predicted"] == sorted(s["label"] for s in scores if s["score"] >= chosen["threshold"])
    assert row["predicted"] == ["negative", "positive"] and out["metrics"]["subset_accuracy"] == 1.0
