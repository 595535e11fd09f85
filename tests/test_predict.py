"""`hpo predict` on a local model folder: labels by name, integer ids, plain text lines, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import run_cli, sst2_rows
from hpo.errors import DataError
from hpo.predict import run_predict


@pytest.fixture(scope="module")
def named_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with label names, as hpo saves a final model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("named") / "model"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return out


def write_csv(path: Path, rows: list[dict[str, str]], label: dict[str, str]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence", "gold"])
        w.writerows([r["sentence"], label[r["label"]]] for r in rows)
    return path


def test_string_and_integer_labels_give_the_same_metrics(named_model: Path, tmp_path: Path) -> None:
    rows = sst2_rows("validation", 40)
    names = write_csv(tmp_path / "names.csv", rows, {"0": "negative", "1": "positive"})
    ids = write_csv(tmp_path / "ids.csv", rows, {"0": "0", "1": "1"})
    by_name = run_predict(str(named_model), names, text_column="sentence", label_column="gold",
                          out=tmp_path / "p.csv", max_length=32)
    by_id = run_predict(str(named_model), ids, text_column="sentence", label_column="gold", max_length=32)
    assert by_name["labels"] == ["negative", "positive"] and by_name["rows"] == 40
    assert by_name["metrics"] == by_id["metrics"] and by_name["confusion_matrix"] == by_id["confusion_matrix"]
    assert sum(map(sum, by_name["confusion_matrix"])) == 40
    truth = [r["label"] for r in rows]
    with open(tmp_path / "p.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    correct = sum(w["predicted"] == ("negative", "positive")[int(t)] for w, t in zip(written, truth))
    assert by_name["metrics"]["accuracy"] == pytest.approx(correct / 40)
    assert [w["text"] for w in written] == [r["sentence"] for r in rows]
    assert all(0.0 < float(w["score"]) <= 1.0 for w in written)
    assert sum(by_name["predicted"].values()) == 40


def test_text_lines_and_jsonl_pairs(named_model: Path, tmp_path: Path) -> None:
    lines = tmp_path / "new.txt"
    lines.write_text("a great film\n\nterrible plot\n")
    summary = run_predict(str(named_model), lines, max_length=32)
    assert summary["rows"] == 2 and "metrics" not in summary
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"premise": "a", "hypothesis": "b", "label": "positive"}) for _ in range(3)))
    summary = run_predict(str(named_model), pairs, text_column="premise", text_pair_column="hypothesis",
                          label_column="label", out=tmp_path / "o.csv", max_length=32)
    assert summary["rows"] == 3 and summary["per_class"]["positive"]["support"] == 3
    assert (tmp_path / "o.csv").read_text().splitlines()[0] == "text,text_pair,label,predicted,score"


def test_bad_input_is_one_line(named_model: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", sst2_rows("validation", 3), {"0": "negative", "1": "positive"})
    with pytest.raises(DataError, match="no column 'text'; columns are sentence, gold"):
        run_predict(str(named_model), data)
    with pytest.raises(DataError, match="no such file"):
        run_predict(str(named_model), tmp_path / "missing.csv")
    with pytest.raises(DataError, match="not a model folder"):
        run_predict(str(tmp_path), data, text_column="sentence")
    r = run_cli("predict", str(named_model), str(data), "--text-column", "sentence", "--label-column", "label")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: {data}: no column 'label'; columns are sentence, gold (pass --label-column with one of them)"]


def test_predictions_come_back_in_input_order(named_model: Path) -> None:
    from hpo.tasks.base import make_pipeline
    from hpo.tasks.classification_scores import classify

    pipe = make_pipeline("text-classification", str(named_model), max_length=64, batch_size=4)
    texts = [r["sentence"] for r in sst2_rows("validation", 12)]
    texts = sorted(texts, key=len, reverse=True)[:6] + sorted(texts, key=len)[:6]  # long and short mixed
    batched = classify(pipe, texts)
    one_by_one = [classify(pipe, [t]) for t in texts]
    assert batched[0] == [labels[0] for labels, _, _ in one_by_one]
    assert batched[1] == pytest.approx([scores[0] for _, scores, _ in one_by_one], abs=1e-5)


def test_max_length_defaults_to_the_trained_length(named_model: Path, tmp_path: Path) -> None:
    """hpo saves the study's max_length as the tokenizer's model_max_length; predict truncates there."""
    import shutil

    from transformers import AutoTokenizer

    trained = tmp_path / "trained"
    shutil.copytree(named_model, trained)
    tokenizer = AutoTokenizer.from_pretrained(trained)
    tokenizer.model_max_length = 16
    tokenizer.save_pretrained(trained)
    data = write_csv(tmp_path / "d.csv", sst2_rows("validation", 20), {"0": "negative", "1": "positive"})
    default = run_predict(str(trained), data, text_column="sentence", out=tmp_path / "a.csv")
    explicit = run_predict(str(trained), data, text_column="sentence", out=tmp_path / "b.csv", max_length=16)
    assert default["max_length"] == 16
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    # a model without a saved length: the tokenizer's own limit (capped at 512 when it has none)
    assert run_predict(str(named_model), data, text_column="sentence")["max_length"] == 512
    r = run_cli("predict", str(trained), str(data), "--text-column", "sentence")
    assert r.returncode == 0 and json.loads(r.stdout)["max_length"] == 16, r.stderr[-2000:]


def test_several_text_columns_are_joined(named_model: Path, tmp_path: Path) -> None:
    rows = sst2_rows("validation", 12)
    split = tmp_path / "split.csv"
    with open(split, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["title", "body", "gold"])
        w.writerows([" ".join(r["sentence"].split()[:3]), " ".join(r["sentence"].split()[3:]), r["label"]]
                    for r in rows)
    joined = tmp_path / "joined.csv"
    with open(split, newline="") as fh, open(joined, "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(["text", "gold"])
        w.writerows([" | ".join(p for p in (r["title"], r["body"]) if p), r["gold"]] for r in csv.DictReader(fh))
    r = run_cli("predict", str(named_model), str(split), "--text-column", "title", "--text-column", "body",
                "--text-separator", " | ", "--label-column", "gold", "--out", str(tmp_path / "a.csv"))
    assert r.returncode == 0, r.stderr[-2000:]
    whole = run_predict(str(named_model), joined, label_column="gold", out=tmp_path / "b.csv")
    assert json.loads(r.stdout)["metrics"] == whole["metrics"]
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert " | " in (tmp_path / "a.csv").read_text()
    with pytest.raises(DataError, match="no column 'summary'"):
        run_predict(str(named_model), split, text_column=["title", "summary"])
