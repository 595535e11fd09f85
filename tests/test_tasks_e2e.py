"""Each task end to end: `hpo run` on small slices of ../shared/data with a tiny model, a push to the local
Hub, `pipeline(model="user/repo")` in a fresh process, then `hpo predict`.

One run per task: results.json has the task's metrics and tables, best-model/ has the task's head (and the
multi-label threshold), the report has the task's tables, the pushed repo gives the task's natural output
through a plain pipeline, and `hpo predict` writes it too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from task_helpers import shared_rows, tiny_base, write_jsonl

from conftest import run_cli
from hpo.cli import main
from hpo.testing.hub_server import LocalHub

pytestmark = pytest.mark.slow

TOKEN = "hf_tasksTOKEN4hpoTests2k9Wq"

SIZES = {"train": 160, "validation": 40, "test": 40}

TASKS: dict[str, dict[str, Any]] = {
    "token-classification": {
        "data": "wikiann", "dataset": {"tokens_column": "tokens", "tags_column": "ner_tags"},
        "metrics": {"f1", "precision", "recall", "accuracy"}, "table": "per_type",
        "report": "Per entity type (test)", "data_line": " rows; tags ",
        "predict": ["--text-column", "tokens", "--label-column", "ner_tags"],
        "out": "p.jsonl"},
    "text-regression": {
        "data": "stsb", "dataset": {"text_column": "sentence1", "text_pair_column": "sentence2",
                                    "label_column": "score"},
        "metrics": {"pearson", "spearman", "mse", "rmse", "mae"}, "table": "distribution",
        "report": "Predicted and true values (test)", "data_line": "; a value to predict (score)",
        "predict": ["--text-column", "sentence1", "--text-pair-column", "sentence2", "--label-column", "score"],
        "out": "p.csv"},
    "multi-label-classification": {
        "data": "goemotions", "dataset": {"text_column": "text", "label_column": "labels"},
        "metrics": {"f1_micro", "f1_macro", "precision_micro", "recall_micro", "subset_accuracy", "hamming_loss"},
        "table": "per_class", "report": "Per label (test)", "data_line": " rows; labels ",
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
        "hub": {"repo_id": f"user/tiny-{name}"},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_runs_end_to_end(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = TASKS[name]
    study = _study(tmp_path, name)
    assert main(["validate", str(study), "--data"]) == 0, capsys.readouterr().err[-2000:]  # in-process: same command
    with LocalHub(tmp_path / "hub", tokens={TOKEN}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
               "HF_HOME": str(tmp_path / "hf")}
        r = run_cli("run", str(study), env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert spec["data_line"] in r.stdout + r.stderr
        env["HF_HOME"], env["HF_TOKEN"] = str(tmp_path / "fresh"), ""  # a user's process: empty cache, no token
        first = shared_rows(spec["data"], "test", 3)
        texts = _texts(first)
        card = (tmp_path / "hub" / "user" / f"tiny-{name}" / "tree" / "main" / "README.md").read_text()
        from_hub = _pipeline_from_hub(f"user/tiny-{name}", first if name == "text-regression" else texts, env,
                                      card)
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

    natural = _natural_output(name, from_hub, config, texts)

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
        assert natural == pytest.approx([float(w["predicted"]) for w in written[:3]], abs=1e-4)
        return
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(written) == SIZES["test"]
    if name == "token-classification":
        assert all(len(w["predicted"]) == len(t["tokens"]) for w, t in zip(written, test_rows))
        assert all(set(w["predicted"]) <= set(config["id2label"].values()) for w in written)
        # from raw text the tokenizer splits words at punctuation ("*20px" -> "*", "20px"), so the Hub pipeline's
        # entities need not fall on the study's words; what counts is that it finds entities at all
        assert sum(natural) > 0 and any(set(w["predicted"]) != {"O"} for w in written)
    else:
        assert all(isinstance(w["predicted"], list) and set(w["scores"]) == set(config["id2label"].values())
                   for w in written)
        assert all(set(w["predicted"]) == {n for n, s in w["scores"].items() if s >= threshold} for w in written)
        assert natural == [sorted(w["predicted"]) for w in written[:3]]


def _pipeline_from_hub(repo: str, inputs: list[Any], env: dict[str, str], card: str) -> dict[str, Any]:
    """`pipeline(model=repo)` as the card says to call it, in a fresh process: the task comes from the card."""
    kwargs = dict(re.findall(r'(aggregation_strategy)="(\w+)"', card))
    code = textwrap.dedent("""
        import json, sys
        from transformers import pipeline
        pipe = pipeline(model=sys.argv[1], **json.loads(sys.argv[3]))
        inputs = json.loads(sys.argv[2])
        if pipe.task == "text-classification" and isinstance(inputs[0], dict):
            inputs = [{"text": r["sentence1"], "text_pair": r["sentence2"]} for r in inputs]
        kwargs = {"top_k": None} if pipe.model.config.problem_type == "multi_label_classification" else {}
        print(json.dumps({"task": pipe.task, "out": pipe(inputs, **kwargs)}, default=float))
    """)
    r = subprocess.run([sys.executable, "-c", code, repo, json.dumps(inputs), json.dumps(kwargs)],
                       capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _natural_output(name: str, from_hub: dict[str, Any], config: dict[str, Any], texts: list[str]) -> list[Any]:
    """Per row: entities with word spans, a raw float, or the labels whose sigmoid reaches the saved threshold."""
    labels = set(config["id2label"].values())
    out = from_hub["out"]
    assert len(out) == len(texts)
    if name == "token-classification":
        assert from_hub["task"] == "token-classification"
        for text, entities in zip(texts, out):
            assert all({"entity_group", "word", "start", "end"} <= set(e) for e in entities)  # aggregated
            assert all(e["entity_group"] in {n.split("-", 1)[-1] for n in labels} for e in entities)
            assert all(0 <= e["start"] < e["end"] <= len(text) and text[e["start"]:e["end"]].strip()
                       for e in entities)  # a span of the text
        return [len(entities) for entities in out]
    assert from_hub["task"] == "text-classification"
    if name == "text-regression":
        return [o[0]["score"] if isinstance(o, list) else o["score"] for o in out]
    assert all({o["label"] for o in row} == labels for row in out)
    assert all(0 < o["score"] < 1 for row in out for o in row)  # a sigmoid per label
    return [sorted(o["label"] for o in row if o["score"] >= config["multi_label_threshold"]) for row in out]
