"""text-regression: numeric targets checked row by row, correlation and error metrics, and a saved model
whose pipeline returns the raw predicted value."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from task_helpers import shared_rows, tiny_base, to_dataset, train_briefly

from hpo.errors import DataError
from hpo.tasks import Columns, Where, get_task
from hpo.tasks.regression import regression_scores

PAIR = Columns(text="sentence1", text_pair="sentence2", label="score")


def test_rows_become_text_pairs_with_float_labels(tmp_path: Path) -> None:
    import datasets

    path = tmp_path / "train.csv"
    path.write_text("sentence1,sentence2,score\na cat,a dog,1.5\na car,a truck, 3 \n")
    ds = datasets.load_dataset("csv", data_files=str(path), split="train")
    prepared = get_task("text-regression", columns=PAIR).prepare({"train": ds}, where=Where())
    train = prepared.splits["train"]
    assert train["text"] == ["a cat", "a car"] and train["text_pair"] == ["a dog", "a truck"]
    assert train["label"] == [1.5, 3.0] and prepared.label_names == ["score"] and prepared.stratify is None


@pytest.mark.parametrize(("value", "shown"), [("high", "'high'"), ("", "None"), ("inf", "inf"), ("True", "'True'")])
def test_a_value_that_is_not_a_number_names_the_row(tmp_path: Path, value: str, shown: str) -> None:
    import datasets

    path = tmp_path / "validation.csv"
    path.write_text(f"sentence1,sentence2,score\na,b,1.0\nc,d,2.0\ne,f,{value}\n")
    ds = datasets.load_dataset("csv", data_files=str(path), split="train")
    task = get_task("text-regression", columns=PAIR)
    with pytest.raises(DataError, match=rf"study.yaml: dataset.label_column: validation row 4 has score "
                                        rf"{shown}, not a number"):
        task.prepare({"train": ds.select([0, 1]), "validation": ds},
                     where=Where(file="study.yaml", header={"validation": 1}))


def test_constant_targets_and_missing_columns_are_errors() -> None:
    task = get_task("text-regression", columns=PAIR)
    same = to_dataset([{"sentence1": "a", "sentence2": "b", "score": 2.0}] * 3)
    with pytest.raises(DataError, match="every train row has the same value"):
        task.prepare({"train": same}, where=Where())
    with pytest.raises(DataError, match="dataset.text_pair_column: the train split has no column 'sentence2'"):
        task.prepare({"train": to_dataset([{"sentence1": "a", "score": 1.0}])}, where=Where())


def test_scores_against_hand_computed_values() -> None:
    # deviations from the means (2.5): predicted -1.5 -.5 .5 1.5, true -1.5 .5 -.5 1.5 -> r = 4 / 5
    scores = regression_scores([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    assert scores == pytest.approx({"pearson": 0.8, "spearman": 0.8, "mse": 0.5, "rmse": math.sqrt(0.5),
                                    "mae": 0.5})
    flat = regression_scores([2.0, 2.0, 2.0], [1.0, 2.0, 4.0])  # correlation undefined: 0.0, not NaN
    assert flat["pearson"] == 0.0 and flat["spearman"] == 0.0 and flat["mae"] == pytest.approx(1.0)


def test_compute_metrics_and_directions() -> None:
    from transformers import EvalPrediction

    task = get_task("text-regression", columns=PAIR)
    compute = task.compute_metrics_fn(["score"])
    out = compute(EvalPrediction(np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([1.0, 3.0, 2.0, 4.0])))
    assert out["pearson"] == pytest.approx(0.8) and out["mse"] == pytest.approx(0.5)
    assert {m: task.metric_direction(m) for m in task.metrics} == {
        "pearson": "maximize", "spearman": "maximize", "mse": "minimize", "rmse": "minimize", "mae": "minimize"}
    assert task.model_kwargs(["score"]) == {"num_labels": 1, "problem_type": "regression", "id2label": {0: "score"},
                                            "label2id": {"score": 0}}


def test_stsb_training_lowers_the_loss_and_the_pipeline_returns_the_raw_value(tmp_path: Path) -> None:
    train, val = shared_rows("stsb", "train", 320), shared_rows("stsb", "validation", 64)
    base = tiny_base(tmp_path / "base", [r["sentence1"] + " " + r["sentence2"] for r in train], vocab_size=500)
    task = get_task("text-regression", columns=PAIR)
    prepared = task.prepare({"train": to_dataset(train), "validation": to_dataset(val)}, where=Where())
    trainer, before, after = train_briefly(task, base, prepared, tmp_path / "model", max_steps=40)
    assert after < 0.5 * before  # from a head near 0 to targets around 2.5

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    model_dir = tmp_path / "model"
    assert json.loads((model_dir / "config.json").read_text())["problem_type"] == "regression"
    first = val[0]
    enc = AutoTokenizer.from_pretrained(model_dir)(first["sentence1"], first["sentence2"], return_tensors="pt")
    with torch.no_grad():
        raw = AutoModelForSequenceClassification.from_pretrained(model_dir)(**enc).logits.item()
    pipe = pipeline("text-classification", model=str(model_dir))
    out = pipe({"text": first["sentence1"], "text_pair": first["sentence2"]})
    assert out["label"] == "score" and out["score"] == pytest.approx(raw, abs=1e-5) and out["score"] > 1.0

    # without problem_type the same single output would go through a sigmoid: why the config must say it
    plain = tmp_path / "plain"
    shutil.copytree(model_dir, plain)
    config = json.loads((plain / "config.json").read_text())
    config.pop("problem_type")
    (plain / "config.json").write_text(json.dumps(config))
    squashed = pipeline("text-classification", model=str(plain))({"text": first["sentence1"],
                                                                   "text_pair": first["sentence2"]})
    assert squashed["score"] == pytest.approx(1 / (1 + math.exp(-raw)), abs=1e-5)

    result = task.evaluate(str(model_dir), prepared.splits["validation"], prepared.label_names, max_length=48)
    assert result["examples"] == 64 and set(result["metrics"]) == set(task.metrics)
    assert result["metrics"]["mse"] == pytest.approx(trainer.last_metrics["eval_mse"], rel=1e-4)
    predicted = task.predict(str(model_dir), val[:3], max_length=48)
    assert [r["predicted"] for r in predicted["rows"]][0] == pytest.approx(raw, abs=1e-5)
    assert [r["label"] for r in predicted["rows"]] == [r["score"] for r in val[:3]]
    assert predicted["metrics"]["mae"] == pytest.approx(
        np.mean([abs(r["predicted"] - r["label"]) for r in predicted["rows"]]))
    with pytest.raises(DataError, match="row 2 has score 'n/a', not a number"):
        task.predict(str(model_dir), [val[0], {**val[1], "score": "n/a"}], max_length=48)
