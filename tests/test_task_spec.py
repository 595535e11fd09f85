"""The study file for each task: its own dataset keys, its metrics and directions, keys of another task refused
in one line; CoNLL files for token classification; the gate ranks unseen errors (mse) low-is-better."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpo.errors import SpecError
from hpo.spec import load_study

CONLL = "-DOCSTART- O\n\nAda B-PER\nLovelace I-PER\nwrote O\n\nParis B-LOC\nis O\nbig O\n\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.delenv("HPO_OUTPUT_DIR", raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"text": "a", "label": 1}\n')
    (tmp_path / "data" / "train.conll").write_text(CONLL * 10)
    return tmp_path


def study(folder: Path, task: str, dataset: str = "", objective: str = "", train: str = "data/train.jsonl") -> Path:
    path = folder / "s.yaml"
    path.write_text(f"name: s\ntask: {task}\nmodel: some/model\ndataset:\n  train: {train}\n{dataset}"
                    + (f"objective:\n{objective}" if objective else ""))
    return path


def refused(path: Path) -> str:
    with pytest.raises(SpecError) as e:
        load_study(path, read_only=True)
    return e.value.one_line()


def test_each_task_has_its_default_metric_and_direction(folder: Path) -> None:
    expect = {"text-classification": ("accuracy", "maximize"), "token-classification": ("f1", "maximize"),
              "text-regression": ("pearson", "maximize"), "multi-label-classification": ("f1_micro", "maximize"),
              "summarization": ("loss", "minimize")}
    for task, (metric, direction) in expect.items():
        o = load_study(study(folder, task), read_only=True).spec.objective
        assert (o.metric, o.resolved_direction) == (metric, direction), task
    o = load_study(study(folder, "text-regression", objective="  metric: mse\n"), read_only=True).spec.objective
    assert o.resolved_direction == "minimize"
    o = load_study(study(folder, "multi-label-classification", objective="  metric: hamming_loss\n"),
                   read_only=True).spec.objective
    assert o.resolved_direction == "minimize"


def test_keys_of_another_task_are_refused_naming_the_key_and_the_fix(folder: Path) -> None:
    line = refused(study(folder, "token-classification", "  threshold: 0.3\n"))
    assert line == (f"{folder / 's.yaml'}: dataset.threshold: threshold is a key of multi-label-classification, "
                    "but the task is token-classification (remove it, or set task: multi-label-classification)")
    assert "dataset.label_names: label_names is a key of text-classification" in refused(
        study(folder, "text-regression", "  label_names: [a, b]\n"))
    assert "dataset.tags_column: tags_column is a key of token-classification" in refused(
        study(folder, "text-classification", "  tags_column: tags\n"))
    assert "objective.average: average is for text-classification" in refused(
        study(folder, "token-classification", objective="  average: micro\n"))
    line = refused(study(folder, "text-regression", objective="  metric: accuracy\n"))
    assert "objective.metric: text-regression has no metric 'accuracy'" in line and "pearson" in line
    assert "dataset: threshold must be between 0 and 1" in refused(
        study(folder, "multi-label-classification", "  threshold: 1.5\n"))
    assert "dataset.label_column: label_columns names one 0/1 column per label" in refused(
        study(folder, "multi-label-classification", "  label_column: y\n  label_columns: [a, b]\n"))
    line = refused(study(folder, "token-classification", "  source: hub\n  name: x/y\n  format: conll\n",
                         train="null"))
    assert "dataset.format: format: conll reads local files" in line


def test_conll_files_are_for_token_classification(folder: Path, tiny_model: Path) -> None:
    line = refused(study(folder, "text-classification", train="data/train.conll"))
    assert "dataset.train: unknown file type '.conll'" in line and "task: token-classification" in line
    path = study(folder, "token-classification", train="data/train.conll")
    path.write_text(path.read_text().replace("some/model", str(tiny_model)))
    from hpo.data import prepare_splits

    splits = prepare_splits(load_study(path))
    assert splits.label_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 20
    row = next(r for r in splits.train if r["tokens"][0] == "Ada")
    assert row["tags"] == [3, 4, 0]


def test_the_gate_ranks_errors_lowest_first() -> None:
    from hpo.selection.gate import summarize

    rows = [{"trial": 1, "validation": 0.8, "test": 0.9}, {"trial": 2, "validation": 0.7, "test": 0.5}]
    gate = summarize([dict(r) for r in rows], maximize=True, metric="mse", validation_metric="pearson",
                     n_test=100, test_maximize=False)
    assert gate["unseen_winner"] == 2 and gate["gap"] == pytest.approx(0.4)
    assert [r["test_rank"] for r in gate["rows"]] == [2, 1] and gate["noise"] is None
    assert "validation winner #1 scores mse 0.9000" in gate["warning"]


def test_regression_gate_noise_is_a_paired_bootstrap_over_test_rows() -> None:
    import numpy as np

    from hpo.selection.gate import summarize
    from hpo.tasks import get_task

    task = get_task("text-regression")
    gold = np.linspace(0, 5, 400)
    rng = np.random.default_rng(3)
    good, bad = gold + 0.3 * rng.normal(size=400), gold + 1.5 * rng.normal(size=400)
    evaluations = {1: {"points": np.c_[gold, bad].tolist()}, 2: {"points": np.c_[gold, good].tolist()}}
    noise, kind = task.gate_noise("mse", evaluations[1], evaluations[2])
    gap = float(np.mean((bad - gold) ** 2) - np.mean((good - gold) ** 2))
    assert kind.startswith("95% bootstrap") and 0 < noise < gap
    assert task.gate_noise("mse", {"points": []}, evaluations[2]) is None
    rows = [{"trial": 1, "validation": 0.9, "test": gap + 0.1}, {"trial": 2, "validation": 0.8, "test": 0.1}]
    gate = summarize(rows, maximize=True, metric="mse", validation_metric="pearson", n_test=400,
                     test_maximize=False, noise_of=lambda a, b: task.gate_noise("mse", evaluations[a], evaluations[b]))
    assert gate["noise"] == pytest.approx(noise) and gate["noise_kind"] == kind
    assert "95% bootstrap on 400 examples" in gate["warning"]


def _ner_rows(rng: Any, n: int, wrong: float) -> tuple[list[list[str]], list[list[str]]]:
    """Sentences of 6 words with a PER or LOC entity, and predictions that miss or mistype some."""
    gold, pred = [], []
    for _ in range(n):
        start, kind = int(rng.integers(0, 5)), str(rng.choice(["PER", "LOC"]))
        tags = ["O"] * 6
        tags[start], tags[start + 1] = f"B-{kind}", f"I-{kind}"
        guess = list(tags)
        if rng.random() < wrong:
            other = "LOC" if kind == "PER" else "PER"
            guess[start], guess[start + 1] = ("O", "O") if rng.random() < 0.5 else (f"B-{other}", f"I-{other}")
        gold.append(tags)
        pred.append(guess)
    return gold, pred


def test_ner_gate_noise_is_a_paired_bootstrap_over_sentences() -> None:
    import numpy as np

    from hpo.tasks import get_task
    from hpo.tasks.ner_metrics import count_score, ner_scores, sentence_counts

    rng = np.random.default_rng(0)
    gold, good = _ner_rows(rng, 300, 0.1)
    rng = np.random.default_rng(0)
    _, bad = _ner_rows(rng, 300, 0.6)  # the same sentences (same draws), more mistakes
    for pred in (good, bad):
        expected, _ = ner_scores(gold, pred)
        counts = np.asarray(sentence_counts(gold, pred))
        assert {m: count_score(m, counts) for m in expected} == pytest.approx(expected)
    task = get_task("token-classification")
    a, b = {"sentence_counts": sentence_counts(gold, good)}, {"sentence_counts": sentence_counts(gold, bad)}
    noise, kind = task.gate_noise("f1", a, b)
    gap = ner_scores(gold, good)[0]["f1"] - ner_scores(gold, bad)[0]["f1"]
    assert kind.startswith("95% bootstrap") and 0 < noise < gap
    assert task.gate_noise("f1", a, {"sentence_counts": []}) is None
    # the gate takes the task's bootstrap for entity F1, not the binomial it uses for a classifier's F1
    from hpo.selection.gate import noise_rule, summarize

    good_f1, bad_f1 = ner_scores(gold, good)[0]["f1"], ner_scores(gold, bad)[0]["f1"]
    rows = [{"trial": 1, "validation": 0.9, "test": bad_f1}, {"trial": 2, "validation": 0.8, "test": good_f1}]
    gate = summarize([dict(r) for r in rows], maximize=True, metric="f1", validation_metric="f1", n_test=300,
                     **noise_rule(task, "f1", {1: b, 2: a}))
    assert gate["noise_kind"] == kind and gate["noise"] == pytest.approx(noise)
    classifier = summarize([dict(r) for r in rows], maximize=True, metric="f1", validation_metric="f1", n_test=300,
                           **noise_rule(get_task("text-classification"), "f1", {}))
    assert classifier["noise_kind"].startswith("95% binomial")


def test_multi_label_gate_noise_is_a_paired_bootstrap_and_matches_sklearn() -> None:
    import numpy as np

    from hpo.tasks import get_task
    from hpo.tasks.multi_label_metrics import multilabel_scores, one_score

    rng = np.random.default_rng(1)
    gold = rng.random((400, 5)) < 0.3
    gold[:, 4] = False  # a label nobody has: macro F1 counts it as 0, as sklearn does with zero_division=0
    good, bad = gold ^ (rng.random(gold.shape) < 0.05), gold ^ (rng.random(gold.shape) < 0.3)
    for pred in (good, bad):
        expected = multilabel_scores(gold, pred)
        assert {m: one_score(m, gold, pred) for m in expected} == pytest.approx(expected)
    task = get_task("multi-label-classification")

    def result(pred: Any) -> dict[str, Any]:
        return {"labels": list("abcde"), "label_rows": [[np.flatnonzero(g).tolist(), np.flatnonzero(p).tolist()]
                                                        for g, p in zip(gold, pred)]}
    noise, kind = task.gate_noise("f1_micro", result(good), result(bad))
    gap = multilabel_scores(gold, good)["f1_micro"] - multilabel_scores(gold, bad)["f1_micro"]
    assert kind.startswith("95% bootstrap") and 0 < noise < gap
    assert task.gate_noise("hamming_loss", result(good), result(bad))[0] > 0
    assert task.gate_noise("f1_micro", result(good), {"labels": list("abcde"), "label_rows": []}) is None
