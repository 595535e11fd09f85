"""The report from a synthetic study (no training): card metadata, report.md/html, plots and their guards."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo.report import write_report
from hpo.report.card import build_card, check_card
from hpo.report.facts import parameter_count
from hpo.report.plots import write_plots
from hpo.results import build_results
from hpo.spec import load_study
from hpo.testing.hub_server import LocalHub

LR = optuna.distributions.FloatDistribution(1e-5, 5e-2, log=True)  # holds the baseline default too
BS = optuna.distributions.CategoricalDistribution([16, 32])
TEST = {"metrics": {"accuracy": 0.8, "f1": 0.79}, "labels": ["negative", "positive"],
        "confusion_matrix": [[30, 8], [8, 34]], "latency_ms_per_example": 1.5,
        "per_class": {"negative": {"precision": 0.79, "recall": 0.79, "f1": 0.79, "support": 38},
                      "positive": {"precision": 0.81, "recall": 0.81, "f1": 0.81, "support": 42}}}


class FakeSplits:
    def summary(self) -> dict[str, Any]:
        return {"train": 240, "validation": 80, "test": 80, "labels": ["negative", "positive"],
                "carved_from_train": []}


def fake_study(storage: Any, name: str, values: list[float], *, pruned: int = 0, intermediate: bool = True) -> Any:
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for i, v in enumerate(values):
        attrs = {"duration_s": 10.0 + i, "metrics": {"eval_accuracy": v, "eval_loss": 0.5, "eval_runtime": 1.0},
                 "baseline": i == 0}
        study.add_trial(optuna.trial.create_trial(
            params={"learning_rate": 5e-5 if i == 0 else 0.01 * (i + 1), "per_device_train_batch_size": 16},
            distributions={"learning_rate": LR, "per_device_train_batch_size": BS}, value=v, user_attrs=attrs,
            intermediate_values={50: v - 0.1, 100: v} if intermediate else {}))
    for _ in range(pruned):
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, params={"learning_rate": 0.04, "per_device_train_batch_size": 32},
            distributions={"learning_rate": LR, "per_device_train_batch_size": BS}, intermediate_values={50: 0.3}))
    return study


def make_results(loaded: Any, studies: dict[str, Any], paths: dict[str, Path]) -> dict[str, Any]:
    rows = [{"model": m, "study_name": s.study_name, "path": str(paths[m]), "test": TEST, "optuna_study": s,
             "final": {"trial": s.best_trial.number, "how": "reused"}} for m, s in studies.items()]
    return build_results(loaded, FakeSplits(), rows, timings={"last_run_search_s": 40.0}, previous={})


@pytest.fixture
def reported(make_study: Any, tiny_model: Path) -> Any:
    loaded = load_study(make_study(hub={"repo_id": "user/tiny-sst2", "license": "mit"}))
    storage = optuna.storages.InMemoryStorage()
    study = fake_study(storage, "tiny", [0.6, 0.7, 0.9, 0.8], pruned=1)
    results = make_results(loaded, {str(tiny_model): study}, {str(tiny_model): tiny_model})
    results["final"]["path"] = str(tiny_model)  # the card goes next to the model
    return loaded, results, write_report(loaded, results, storage)


def test_report_files_have_the_content_a_reader_needs(reported: Any) -> None:
    loaded, results, written = reported
    out = loaded.paths.output_dir
    names = {p.name for p in written}
    assert {"README.md", "report.md", "report.html", "optimization_history.png", "param_importances.png",
            "intermediate_values.png"} <= names
    md = (out / "report.md").read_text()
    for text in ("## Evaluation", "Confusion matrix", "Per class", "## Baseline vs best", "## Hyperparameter search",
                 "4 complete, 1 pruned, 0 failed", "random (seed 0)", "## Training data", "## Intended use",
                 "## Limitations", 'pipeline("text-classification", model="user/tiny-sst2")',
                 "![Optimization history", "| negative | 30 | 8 |"):
        assert text in md, text
    assert re.search(r"\| best \| 2 \| complete \| 0\.9000 \| 0\.8000 \|", md)  # trial 2 beats the baseline
    assert re.search(r"\| baseline \(Trainer defaults\) \| 0 \| complete \| 0\.6000 \|", md)
    page = (out / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 3 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page))  # self-contained
    assert "<th>negative</th>" in page and "<strong>" in page


def test_card_metadata_passes_validation(reported: Any, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    loaded, results, written = reported
    card = ModelCard.load(next(p for p in written if p.name == "README.md"))
    meta = check_card(card)
    assert meta["license"] == "mit" and meta["pipeline_tag"] == "text-classification"
    assert "base_model" not in meta  # a local folder is not a Hub id
    evals = {e.metric_type: e.metric_value for e in card.data.eval_results}
    assert evals == {"accuracy": 0.8, "f1": 0.79}
    assert all(e.dataset_split == "test" and e.task_type == "text-classification" for e in card.data.eval_results)
    with LocalHub(tmp_path / "hub") as hub:
        req = urllib.request.Request(f"{hub.url}/api/validate-yaml", method="POST",
                                     data=json.dumps({"content": str(card), "repoType": "model"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            assert json.load(resp)["errors"] == []


def test_card_names_a_hub_base_model(reported: Any) -> None:
    loaded, results, _ = reported
    results["final"]["model"] = "sentence-transformers/all-MiniLM-L6-v2"
    meta = check_card(build_card(loaded, results))
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_plots_are_skipped_with_a_reason_when_the_study_cannot_support_them(tmp_path: Path) -> None:
    study = fake_study(optuna.storages.InMemoryStorage(), "one", [0.7], intermediate=False)
    images, skipped = write_plots({"m": study}, tmp_path, metric="accuracy")
    assert [name for name, _ in images] == ["optimization_history.png"]
    assert any("at least 2 complete trials" in s and "has 1" in s for s in skipped)
    assert any("Intermediate values" in s for s in skipped)


def test_several_base_models_get_one_row_each(make_study: Any, tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    other = tmp_path / "other-model"
    AutoModelForSequenceClassification.from_pretrained(tiny_model).save_pretrained(other)
    loaded = load_study(make_study(model=[str(tiny_model), str(other)]))
    storage = optuna.storages.InMemoryStorage()
    names = {str(tiny_model): "tiny--a", str(other): "tiny--b"}
    studies = {m: fake_study(storage, n, [0.6, v]) for (m, n), v in zip(names.items(), (0.7, 0.9))}
    results = make_results(loaded, studies, {str(tiny_model): tiny_model, str(other): other})
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model)
    assert parameter_count(tiny_model) == sum(p.numel() for p in model.parameters()) > 0
    md = build_card(loaded, results).content
    assert "### Base models compared" in md
    table = md.split("### Base models compared")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")][2:]  # after header and alignment
    size = f"| {parameter_count(tiny_model)} |"
    assert len(rows) == 2 and "(chosen)" in rows[1] and "(chosen)" not in rows[0] and size in rows[0]


def test_card_names_the_training_data_set(reported: Any, make_study: Any) -> None:
    """`datasets:` holds the Hub id of the data: a Hub source, or files and bbc_news that name one."""
    _, results, _ = reported

    def meta(**dataset: Any) -> dict[str, Any]:
        loaded = load_study(make_study(dataset=dataset, hub={"repo_id": "user/tiny-sst2"}))
        return check_card(build_card(loaded, results))

    files = {"train": "data/train.csv", "test": "data/test.csv", "text_column": "review", "label_column": "sentiment"}
    assert "datasets" not in meta(**files)  # local files with no Hub id: the card's Training data names them
    named = meta(**files, name="stanfordnlp/sst2")
    assert named["datasets"] == ["stanfordnlp/sst2"]
    assert named["model-index"][0]["results"][0]["dataset"]["type"] == "stanfordnlp/sst2"
    hub = meta(source="hub", name="glue", config="sst2")
    assert hub["datasets"] == ["glue"] and hub["model-index"][0]["results"][0]["dataset"]["config"] == "sst2"
    assert meta(source="bbc_news", name="SetFit/bbc-news")["datasets"] == ["SetFit/bbc-news"]
    assert "datasets" not in meta(source="bbc_news")
