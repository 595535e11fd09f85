"""The Task seam: the registry, each task's study-file options, metric directions, report sections and card
metadata; the text-classification adapter over today's functions."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from task_helpers import to_dataset

from hpo.errors import DataError, SpecError
from hpo.report import markdown
from hpo.tasks import TASKS, Columns, Where, get_task, task_of_model

FINALS = {
    "token-classification": {
        "validation_metrics": {"eval_f1": 0.71, "eval_precision": 0.7, "eval_recall": 0.72, "eval_accuracy": 0.93,
                               "eval_runtime": 1.0},
        "test_metrics": {"f1": 0.69, "precision": 0.68, "recall": 0.7, "accuracy": 0.92},
        "per_type": {"LOC": {"precision": 0.8, "recall": 0.7, "f1": 0.7467, "support": 56},
                     "PER": {"precision": 0.6, "recall": 0.65, "f1": 0.624, "support": 49}}},
    "text-regression": {
        "validation_metrics": {"eval_pearson": 0.81, "eval_mse": 0.9},
        "test_metrics": {"pearson": 0.8, "spearman": 0.79, "mse": 0.95, "rmse": 0.9747, "mae": 0.77},
        "distribution": {"predicted_mean": 2.4, "predicted_min": 0.3, "predicted_max": 4.6, "gold_mean": 2.5,
                         "gold_min": 0.0, "gold_max": 5.0}},
    "multi-label-classification": {
        "validation_metrics": {"eval_f1_micro": 0.6, "eval_hamming_loss": 0.2, "eval_threshold": 0.35},
        "test_metrics": {"f1_micro": 0.58, "f1_macro": 0.41, "subset_accuracy": 0.4, "hamming_loss": 0.22},
        "per_class": {"negative": {"precision": 0.5, "recall": 0.4, "f1": 0.4444, "support": 22}},
        "labels": ["negative", "neutral", "positive"], "threshold": 0.35},
}


def test_registry_knows_every_task_and_names_the_unknown_one() -> None:
    assert set(TASKS) == {"text-classification", "token-classification", "text-regression",
                          "multi-label-classification", "summarization", "causal-lm"}
    for name in TASKS:
        task = get_task(name)
        natural = "minimize" if task.default_metric == "loss" else "maximize"  # a language model's loss
        assert task.name == name and task.metric_direction(task.default_metric) == natural
        assert task.metric_direction("loss") == "minimize"
    from transformers import BertConfig

    assert task_of_model(BertConfig(architectures=["BertForTokenClassification"])) == "token-classification"
    assert task_of_model(BertConfig(problem_type="regression", num_labels=1)) == "text-regression"
    assert task_of_model(BertConfig(problem_type="multi_label_classification")) == "multi-label-classification"
    assert task_of_model(BertConfig(architectures=["BertForSequenceClassification"])) == "text-classification"
    from transformers import T5Config

    assert task_of_model(T5Config()) == "summarization"
    from transformers import GPT2Config, LlamaConfig

    assert task_of_model(GPT2Config(architectures=["GPT2LMHeadModel"])) == "causal-lm"
    assert task_of_model(LlamaConfig(architectures=["LlamaForCausalLM"])) == "causal-lm"
    with pytest.raises(SpecError, match="task: unknown task 'translation'") as err:
        get_task("translation")
    assert err.value.hint.startswith("use one of text-classification, token-classification")


def test_options_are_strict_and_described() -> None:
    for name in TASKS:
        options = get_task(name).Options
        assert options.model_config["extra"] == "forbid"
        assert all(f.description for f in options.model_fields.values()), name
        with pytest.raises(ValidationError):
            get_task(name, {"no_such_key": 1})
    with pytest.raises(ValidationError):
        get_task("token-classification", {"aggregation_strategy": "longest"})


@pytest.mark.parametrize("name", sorted(FINALS))
def test_report_sections_render(name: str) -> None:
    columns = Columns("sentence1", "sentence2", "score") if name == "text-regression" else Columns(label="labels")
    task = get_task(name, columns=columns)
    blocks = task.report_sections(FINALS[name], {"validation": 100, "test": 200}, model_ref="me/model",
                                  max_length=64)
    assert set(blocks) == {"how_to_use", "evaluation", "intended_use"}
    text = markdown.render([b for section in blocks.values() for b in section])
    assert f'pipeline("{task.pipeline_tag}", model="me/model"' in text
    assert "longer than 64 tokens" in text
    if name == "token-classification":
        assert "| LOC | 0.8000 | 0.7000 | 0.7467 | 56 |" in text and "| f1 | 0.7100 | 0.6900 |" in text
    if name == "text-regression":
        assert "| mse | 0.9000 | 0.9500 |" in text and "--text-pair-column sentence2" in text
    if name == "multi-label-classification":
        assert "threshold **0.35** (chosen on the validation split" in text
        assert "| hamming_loss | 0.2000 | 0.2200 |" in text and "| threshold |" not in text
    meta = task.card_metadata([{"text": "a", "tokens": ["a"]}, {"text": "b", "tokens": ["b"]}])
    assert meta["pipeline_tag"] == task.pipeline_tag and meta["widget"][1] == {"text": "b"}


def test_text_classification_adapter_uses_todays_label_checks() -> None:
    task = get_task("text-classification", columns=Columns(text="review", label="sentiment"))
    train = to_dataset([{"review": "good", "sentiment": "pos"}, {"review": "bad", "sentiment": "neg"}])
    prepared = task.prepare({"train": train, "validation": train}, where=Where(file="s.yaml"))
    assert prepared.label_names == ["neg", "pos"] and prepared.stratify == "label"
    assert prepared.splits["validation"]["label"] == [1, 0]
    unseen = to_dataset([{"review": "meh", "sentiment": "mixed"}])
    with pytest.raises(DataError, match="labels in test that train never has: mixed"):
        task.prepare({"train": train, "test": unseen}, where=Where(file="s.yaml"))

    from transformers import EvalPrediction

    compute = task.compute_metrics_fn(prepared.label_names, objective="accuracy")
    out = compute(EvalPrediction(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), np.array([1, 1, 1])))
    assert out["accuracy"] == pytest.approx(2 / 3)


def test_text_classification_adapter_predicts_with_todays_pipeline(tiny_model) -> None:
    task = get_task("text-classification", columns=Columns(text="review", label="sentiment"))
    rows = [{"review": "a fine film", "sentiment": 0}, {"review": "dull", "sentiment": "1"}]
    out = task.predict(str(tiny_model), rows, max_length=32)
    assert {r["predicted"] for r in out["rows"]} <= {"LABEL_0", "LABEL_1"}
    assert [r["label"] for r in out["rows"]] == ["LABEL_0", "LABEL_1"]  # integer labels read as the model's ids
    right = sum(r["predicted"] == r["label"] for r in out["rows"])
    assert out["metrics"]["accuracy"] == right / 2 and len(out["confusion_matrix"]) == 2
