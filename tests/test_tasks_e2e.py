"""Each task end to end: `hpo run` on small slices of ../shared/data with a tiny model, then `hpo predict`.

One run per task: results.json has the task's metrics and tables, best-model/ has the task's head (and the
multi-label threshold), the report has the task's tables, and `hpo predict` writes the task's natural output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from task_helpers import shared_rows, tiny_base, write_jsonl

from conftest import run_cli

SIZES = {"train": 160, "validation": 40, "test": 40}

TASKS: dict[str, dict[str, Any]] = {
    "token-classification": {
        "data": "wikiann", "dataset": {"tokens_column": "tokens", "tags_column": "ner_tags"},
        "metrics": {"f1", "precision", "recall", "accuracy"}, "table": "per_type",
        "report": "Per entity type (test)", "predict": ["--text-column", "tokens", "--label-column", "ner_tags"],
        "out": "p.jsonl"},
    "text-regression": {
        "data": "stsb", "dataset": {"text_column": "sentence1", "text_pair_column": "sentence2",
                                    "label_column": "score"},
        "metrics": {"pearson", "spearman", "mse", "rmse", "mae"}, "table": "distribution",
        "report": "Predicted and true values (test)",
        "predict": ["--text-column", "sentence1", "--text-pair-column", "sentence2", "--label-column", "score"],
        "out": "p.csv"},
    "multi-label-classification": {
        "data": "goemotions", "dataset": {"text_column": "text", "label_column": "labels"},
        "metrics": {"f1_micro", "f1_macro", "precision_micro", "recall_micro", "subset_accuracy", "hamming_loss"},
        "table": "per_class", "report": "Per label (test)",
        "predict": ["--text-column", "text", "--label-column", "labels"], "out": "p.jsonl"},
}


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    return [" ".join(r["tokens"]) if "tokens" in r else " ".join(str(v) for v in r.values() if isinstance(v, str))
            for r in rows]


def _study(tmp_path: Path, name: str) -> Path:
    spec = TASKS[name]
    data = tmp_path / "data"
    data.mkdir()
    rows = {split: shared_rows(spec["data"], split, n) for split, n in SIZES.items()}
    for split, split_rows in rows.items():
        write_jsonl(data / f"{split}.jsonl", split_rows)
    model = tiny_base(tmp_path / "base", _texts(rows["train"]), vocab_size=600, hidden=16)
    doc = {
        "name": "tiny-task", "task": name, "model": str(model),
        "dataset": {"train": "data/train.jsonl", "validation": "data/validation.jsonl", "test": "data/test.jsonl",
                    "max_length": 32, **spec["dataset"]},
        "search": {"n_trials": 2, "evals_per_epoch": 1, "baseline": False,
                   "space": {"learning_rate": {"type": "float", "low": 5e-3, "high": 3e-2, "log": True}},
                   "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"}},
        "selection": {"top_k": 2},
        "training": {"num_train_epochs": 2, "per_device_train_batch_size": 16, "seed": 0},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_runs_end_to_end(tmp_path: Path, name: str) -> None:
    spec = TASKS[name]
    study = _study(tmp_path, name)
    r = run_cli("validate", str(study), "--data")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("run", str(study), "--no-push")
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "runs" / "tiny-task"
    results = json.loads((out / "results.json").read_text())
    final = results["final"]
    assert results["task"] == name and results["objective"]["metric"] in spec["metrics"]
    assert set(final["test_metrics"]) >= spec["metrics"], final["test_metrics"]
    assert final[spec["table"]], f"results.json has no {spec['table']}"
    assert "confusion_matrix" not in final  # a text-classification table only
    gate = results["selection"]["gate"]
    assert gate["test_metric"] == results["objective"]["metric"] and len(gate["rows"]) == 2

    config = json.loads((out / "best-model" / "config.json").read_text())
    if name == "token-classification":
        assert config["architectures"] == ["BertForTokenClassification"]
        assert {"O", "B-PER", "I-PER", "B-ORG", "B-LOC"} <= set(config["id2label"].values())
    elif name == "text-regression":
        assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    else:
        assert config["problem_type"] == "multi_label_classification"
        assert set(config["id2label"].values()) == {"ambiguous", "negative", "neutral", "positive"}
        threshold = config["multi_label_threshold"]
        assert 0 < threshold < 1 and final["finalized"] == {"threshold": threshold}

    report = (out / "report.md").read_text()
    assert spec["report"] in report and "Confusion matrix" not in report
    assert ("predicted_vs_true.png" in report) == (name == "text-regression")
    card = (out / "best-model" / "README.md").read_text()
    assert f"pipeline_tag: {'token' if name == 'token-classification' else 'text'}-classification" in card

    predictions = tmp_path / spec["out"]
    r = run_cli("predict", str(out / "best-model"), str(tmp_path / "data" / "test.jsonl"), *spec["predict"],
                "--out", str(predictions))
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["task"] == name and summary["rows"] == SIZES["test"]
    assert set(summary["metrics"]) >= spec["metrics"] - {"accuracy"}
    test_rows = shared_rows(spec["data"], "test", SIZES["test"])
    if name == "text-regression":
        import csv

        with open(predictions, newline="") as fh:
            written = list(csv.DictReader(fh))
        assert [float(w["label"]) for w in written] == [r["score"] for r in test_rows]
        assert all(isinstance(float(w["predicted"]), float) for w in written)
        return
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(written) == SIZES["test"]
    if name == "token-classification":
        assert all(len(w["predicted"]) == len(t["tokens"]) for w, t in zip(written, test_rows))
        assert all(set(w["predicted"]) <= set(config["id2label"].values()) for w in written)
    else:
        assert all(isinstance(w["predicted"], list) and set(w["scores"]) == set(config["id2label"].values())
                   for w in written)
        assert all(set(w["predicted"]) == {n for n, s in w["scores"].items() if s >= threshold} for w in written)
